//! Signing key rotation: by command and on schedule; tokens signed before stay verifiable
//! through JWKS until they expire, new ones are signed with the new keys.

use super::support::{Server, post_as, register_app, run_in, text};
use serde_json::{Value, json};
use std::time::Duration;

fn jwks_kids(server: &Server) -> Vec<String> {
    server.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

fn issue(server: &Server) -> (super::support::App, String) {
    let app = register_app(server, json!({"grant_types": ["client_credentials"]}));
    let token: Value = post_as(
        server,
        &app,
        "/token",
        &[("grant_type", "client_credentials")],
    )
    .json()
    .unwrap();
    (app, token["access_token"].as_str().unwrap().to_owned())
}

#[test]
fn keys_rotate_by_command_and_old_tokens_stay_valid() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (app, old_token) = issue(&server);
    let before = jwks_kids(&server);
    assert_eq!(before.len(), 2);
    let refused = run_in(dir.path(), &["keys", "rotate"]);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "refused while serve holds the directory"
    );
    server.stop();

    let rotated = run_in(dir.path(), &["keys", "rotate"]);
    let (stdout, stderr) = text(&rotated);
    assert!(rotated.status.success(), "{stderr}");
    for kid in &before {
        assert!(
            stdout.contains("retired") && stdout.contains(kid.as_str()),
            "{stdout}"
        );
    }

    let server = Server::start(dir.path());
    let after = jwks_kids(&server);
    assert_eq!(
        after.len(),
        4,
        "old keys stay listed while their tokens may live: {after:?}"
    );
    assert!(after.contains(&kid_of(&old_token)));
    let (_, new_token) = issue(&server);
    assert_ne!(kid_of(&new_token), kid_of(&old_token));
    assert!(!before.contains(&kid_of(&new_token)));
    let seen: Value = post_as(&server, &app, "/introspect", &[("token", &old_token)])
        .json()
        .unwrap();
    assert_eq!(seen["active"], true, "rotation does not revoke");
}

#[test]
fn keys_older_than_the_schedule_rotate_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let before = jwks_kids(&server);
    server.stop();
    let key = std::fs::File::options()
        .write(true)
        .open(dir.path().join("keys/ed25519.pk8"))
        .unwrap();
    key.set_modified(
        key.metadata().unwrap().modified().unwrap() - Duration::from_secs(100 * 86_400),
    )
    .unwrap();
    drop(key);

    let server = Server::start_with(dir.path(), &["--key-rotation-days", "0"]);
    assert_eq!(jwks_kids(&server), before, "0 days: never rotate");
    server.stop();
    let server = Server::start(dir.path());
    let after = jwks_kids(&server);
    assert_eq!(after.len(), 4, "{after:?}");
    let (_, token) = issue(&server);
    assert!(!before.contains(&kid_of(&token)), "signed with a new key");
}
