//! The HTTP surface over a real `warrant serve`: registration (RFC 7591) and health.

use super::support::{Server, export, http};
use serde_json::{Value, json};

fn health(server: &Server) -> Value {
    http()
        .get(format!("{}/healthz", server.base))
        .send()
        .unwrap()
        .json()
        .unwrap()
}

#[test]
fn registration_returns_the_secret_once_and_records_only_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let response = http()
        .post(format!("{}/register", server.base))
        .json(&json!({"redirect_uris": ["https://app.example/cb"], "client_name": "app"}))
        .send()
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().unwrap();
    let secret = body["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(body["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(body["grant_types"], json!(["authorization_code"]));
    assert!(
        body.get("scope").is_none(),
        "absent metadata is omitted: {body}"
    );
    let health = health(&server);
    assert_eq!(
        health["projections_position"], health["log_head"],
        "reads its own write"
    );
    server.stop();

    let log = export(dir.path(), &["--type", "client_registered"]);
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["payload"]["client_id"], body["client_id"]);
    let text = serde_json::to_string(&log).unwrap();
    assert!(!text.contains(&secret), "the secret reached the log");
    assert!(text.contains(&warrant::secret::SecretHash::of(&secret).to_string()));
}

#[test]
fn bad_registrations_are_refused_clearly_and_change_no_client() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let url = format!("{}/register", server.base);
    let cases: Vec<(&str, reqwest::blocking::RequestBuilder, &str)> = vec![
        (
            "fragment in redirect URI",
            http()
                .post(&url)
                .json(&json!({"redirect_uris": ["https://a.example/cb#x"]})),
            "invalid_redirect_uri",
        ),
        (
            "code grant without redirect URI",
            http().post(&url).json(&json!({"client_name": "x"})),
            "invalid_redirect_uri",
        ),
        (
            "unsupported auth method",
            http().post(&url).json(&json!({
                "redirect_uris": ["https://a.example/cb"],
                "token_endpoint_auth_method": "private_key_jwt"
            })),
            "invalid_client_metadata",
        ),
        (
            "malformed JSON",
            http()
                .post(&url)
                .header("content-type", "application/json")
                .body("{\"redirect_uris\":"),
            "invalid_client_metadata",
        ),
        (
            "wrong member type",
            http()
                .post(&url)
                .json(&json!({"redirect_uris": "https://a.example/cb"})),
            "invalid_client_metadata",
        ),
        (
            "body over the 16 KiB default limit",
            http().post(&url).json(&json!({
                "redirect_uris": ["https://a.example/cb"],
                "client_name": "x".repeat(20 * 1024)
            })),
            "invalid_request",
        ),
    ];
    for (what, request, code) in cases {
        let response = request.send().unwrap();
        let status = if what.starts_with("body over") {
            413
        } else {
            400
        };
        assert_eq!(response.status(), status, "{what}");
        assert_eq!(response.headers()["cache-control"], "no-store", "{what}");
        let body: Value = response.json().unwrap();
        assert_eq!(body["error"], code, "{what}: {body}");
        assert!(
            !body["error_description"].as_str().unwrap().is_empty(),
            "{what}"
        );
    }
    server.stop();
    assert!(
        export(dir.path(), &["--type", "client_registered"]).is_empty(),
        "no client was registered"
    );
    let log = export(dir.path(), &["--type", "request_denied"]);
    // Refusals decided by the client rules are recorded; shape errors at the edge are not.
    assert_eq!(log.len(), 3);
}

#[test]
fn shutdown_writes_a_checkpoint_and_restart_is_caught_up() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let start = health(&server)["log_head"].as_u64().unwrap();
    for i in 0..20 {
        let response = http()
            .post(format!("{}/register", server.base))
            .json(&json!({"redirect_uris": [format!("https://app{i}.example/cb")]}))
            .send()
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    server.stop();
    assert!(
        dir.path().join("checkpoints/projections.ckpt").exists(),
        "written at shutdown"
    );
    let server = Server::start(dir.path());
    let health = health(&server);
    assert_eq!(health["log_head"], start + 20);
    assert_eq!(health["projections_position"], start + 20);
}
