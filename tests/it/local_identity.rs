//! The local identity (the embedded default): its one user, for loopback connections only;
//! tsidp's flags and environment variables; and `warrant import-tsidp`.

use super::support::{
    App, Server, code_from, export, http, redeem, register_app, run_in, text, warrant,
};
use serde_json::{Value, json};
use std::net::{IpAddr, UdpSocket};

const REDIRECT: &str = "http://127.0.0.1:9/cb";

/// This machine's address on its default route: a peer that is not loopback. (Connecting a
/// UDP socket sends nothing; it only picks the source address.)
fn non_loopback_address() -> IpAddr {
    let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
    socket
        .connect("198.51.100.1:9")
        .expect("this machine needs a route off loopback for this test");
    let ip = socket.local_addr().unwrap().ip();
    assert!(!ip.is_loopback(), "no non-loopback address: {ip}");
    ip
}

fn authorize_url(base: &str, client_id: &str) -> String {
    url::Url::parse_with_params(
        &format!("{base}/authorize"),
        &[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("scope", "openid"),
            ("code_challenge", &"a".repeat(43)),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap()
    .to_string()
}

#[test]
fn the_local_user_is_approved_for_loopback_callers_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        &[
            "--listen",
            "0.0.0.0",
            "--local-user",
            "alice@example.com",
            "--local-user-name",
            "Alice Example",
            "--local-user-picture",
            "https://pics.example/alice.png",
        ],
    );
    let port = url::Url::parse(&server.base).unwrap().port().unwrap();
    let remote = format!("http://{}:{port}", non_loopback_address());
    let app = register_app(&server, json!({"redirect_uris": [REDIRECT]}));
    let before = export(&dir.path().join("data"), &[]).len();

    let page = http().get(authorize_url(&remote, &app.id)).send().unwrap();
    assert_eq!(page.status(), 403);
    assert!(page.text().unwrap().contains("loopback connections only"));
    let register = http()
        .post(format!("{remote}/register"))
        .json(&json!({"redirect_uris": [REDIRECT]}))
        .send()
        .unwrap();
    assert_eq!(register.status(), 403);
    assert_eq!(register.json::<Value>().unwrap()["error"], "access_denied");
    // Public documents are served to anyone who can connect.
    let document = http()
        .get(format!("{remote}/.well-known/openid-configuration"))
        .send()
        .unwrap();
    assert_eq!(document.status(), 200);
    // Nothing but the two denials was recorded.
    let after = export(&dir.path().join("data"), &[]);
    assert_eq!(after.len(), before + 2);
    assert!(
        after[before..]
            .iter()
            .all(|e| e["type"] == "request_denied")
    );

    // From loopback, the configured user is approved, with their name and picture.
    let verifier = "v".repeat(50);
    let challenge = warrant::actors::session::s256_challenge(&verifier);
    let url = authorize_url(&server.base, &app.id).replace(&"a".repeat(43), &challenge);
    let code = code_from(&http().get(url).send().unwrap());
    let tokens = redeem(&server, &app, &code, REDIRECT, Some(&verifier));
    let id =
        jsonwebtoken::dangerous::insecure_decode::<Value>(tokens["id_token"].as_str().unwrap())
            .unwrap()
            .claims;
    assert_eq!(id["sub"], "alice@example.com");
    assert_eq!(id["name"], "Alice Example");
    assert_eq!(id["picture"], "https://pics.example/alice.png");
    assert!(id.get("node").is_none(), "no tailnet node in local mode");
}

#[test]
fn tsidp_environment_variables_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("tsidp-state");
    let mut command = warrant();
    command
        .args(["serve", "--port", "0", "--log", "warn"])
        .env_remove("WARRANT_DIR")
        .env("TS_STATE_DIR", &state)
        .env("TS_HOSTNAME", "idp.tail1234.ts.net")
        .env("TSIDP_ENABLE_STS", "1")
        .env("TSIDP_LOG", "warn");
    let server = Server::spawn(command);
    let document: Value = http()
        .get(format!("{}/.well-known/openid-configuration", server.base))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(document["issuer"], "https://idp.tail1234.ts.net");
    assert!(
        document["grant_types_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g == "urn:ietf:params:oauth:grant-type:token-exchange")
    );
    assert!(state.join("log").is_dir(), "the log lives in TS_STATE_DIR");
    // A tsidp flag for the tailscale identity refuses local-only flags.
    let refused = warrant()
        .args([
            "serve",
            "--port",
            "0",
            "--use-local-tailscaled",
            "--local-user",
            "x",
        ])
        .arg("--dir")
        .arg(dir.path().join("other"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        text(&refused)
            .1
            .contains("--local-user applies to --identity local")
    );
}

/// tsidp's clients file: one current client and one in the legacy single-URI format.
const TSIDP_CLIENTS: &str = r#"{
  "3f2a9c": {"client_id": "3f2a9c", "client_secret": "s3cret-current", "client_name": "Grafana",
             "redirect_uris": ["https://grafana.example/login/generic_oauth", "http://127.0.0.1:9/cb"],
             "created_at": "2025-06-01T10:00:00Z", "redirect_uri": "https://grafana.example/login/generic_oauth"},
  "77b1e0": {"client_id": "77b1e0", "client_secret": "s3cret-legacy", "client_name": "Proxmox",
             "redirect_uri": "http://127.0.0.1:9/cb", "created_at": "2024-01-01T00:00:00Z"}
}"#;

#[test]
fn import_tsidp_keeps_the_relying_parties_with_hashed_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let tsidp = dir.path().join("tsidp");
    std::fs::create_dir(&tsidp).unwrap();
    std::fs::write(tsidp.join("oidc-funnel-clients.json"), TSIDP_CLIENTS).unwrap();
    let data = dir.path().join("data");
    let tsidp_dir = tsidp.to_str().unwrap();

    let first = run_in(&data, &["import-tsidp", tsidp_dir]);
    assert!(first.status.success(), "{:?}", text(&first));
    assert!(text(&first).0.contains("2 imported, 0 already present"));
    let again = run_in(&data, &["import-tsidp", tsidp_dir]);
    assert!(text(&again).0.contains("0 imported, 2 already present"));

    let registered = export(&data, &["--type", "client_registered"]);
    assert_eq!(registered.len(), 2);
    let legacy = registered
        .iter()
        .find(|e| e["payload"]["client_id"] == "77b1e0")
        .unwrap();
    assert_eq!(
        legacy["payload"]["metadata"]["redirect_uris"],
        json!([REDIRECT])
    );
    assert_eq!(legacy["payload"]["funnel"], true);
    let whole_log = export(&data, &[]);
    assert!(
        !serde_json::to_string(&whole_log)
            .unwrap()
            .contains("s3cret"),
        "no secret in the log"
    );

    // The legacy client works with its old secret.
    let server = Server::start(&data);
    let app = App {
        id: "77b1e0".into(),
        secret: Some("s3cret-legacy".into()),
    };
    let response = http()
        .get(authorize_url(&server.base, &app.id).replace("&code_challenge", "&x_unused"))
        .send()
        .unwrap();
    redeem(&server, &app, &code_from(&response), REDIRECT, None);
}

#[test]
fn a_bad_tsidp_file_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let tsidp = dir.path().join("tsidp");
    std::fs::create_dir(&tsidp).unwrap();
    let data = dir.path().join("data");
    let file = tsidp.join("oidc-funnel-clients.json");
    for (content, reason) in [
        (
            r#"{"a1": {"client_id": "b2", "client_secret": "x", "redirect_uris": ["https://a.example/cb"]}}"#,
            "must match",
        ),
        (
            r#"{"a1": {"client_id": "a1", "redirect_uris": ["https://a.example/cb"]}}"#,
            "no client_secret",
        ),
        (
            r#"{"a1": {"client_id": "a1", "client_secret": "x", "redirect_uris": ["https://a.example/cb"]},
            "c3": {"client_id": "c3", "client_secret": "y", "token_endpoint_auth_method": "private_key_jwt"}}"#,
            "token_endpoint_auth_method",
        ),
        ("{\"a1\": ", "oidc-funnel-clients.json:1:"),
    ] {
        std::fs::write(&file, content).unwrap();
        let output = run_in(&data, &["import-tsidp", tsidp.to_str().unwrap()]);
        assert!(!output.status.success(), "{content}");
        assert!(text(&output).1.contains(reason), "{:?}", text(&output));
        assert!(!data.join("log").exists(), "nothing was written");
    }
    let missing = run_in(
        &data,
        &["import-tsidp", dir.path().join("nowhere").to_str().unwrap()],
    );
    assert!(!missing.status.success());
    assert!(text(&missing).1.contains("oidc-funnel-clients.json"));
}
