//! The MCP gateway pattern end to end through the binary: `warrant demo` runs warrant, the
//! rmcp demo server, the gateway and the rmcp demo client; the demo server refuses tokens
//! that are not addressed to it.

use super::support::{Server, http, login, warrant};
use serde_json::{Value, json};

#[test]
fn warrant_demo_runs_every_step_and_leaves_an_audit_trail() {
    let dir = tempfile::tempdir().unwrap();
    let output = warrant()
        .args(["demo", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for step in [
        "registration",
        "authorization",
        "token",
        "tools",
        "exchange",
        "introspection",
        "multiply(6, 7) = 42",
        "every step succeeded",
    ] {
        assert!(stdout.contains(step), "{step} missing from:\n{stdout}");
    }
    assert!(stdout.contains("listed through the gateway: multiply, oauth_details"));
    // The run's event log holds the exchange, with the gateway as actor.
    let exchanged =
        super::support::export(&dir.path().join("data"), &["--type", "token_exchanged"]);
    assert_eq!(exchanged.len(), 1, "one exchange for the whole session");
    assert!(exchanged[0]["payload"]["actor"]["sub"].is_string());
}

#[test]
fn the_demo_server_wants_tokens_addressed_to_itself() {
    let dir = tempfile::tempdir().unwrap();
    let grants = dir.path().join("grants.json");
    std::fs::write(
        &grants,
        json!({"grants": [{"src": ["*"], "dst": ["*"], "app": {"tailscale.com/cap/tsidp": [
            {"users": ["*"], "resources": ["*"], "allow_dcr": true}]}}]})
        .to_string(),
    )
    .unwrap();
    let authority = Server::start_with(
        &dir.path().join("data"),
        &["--grants", grants.to_str().unwrap()],
    );
    let mut command = warrant();
    command
        .args([
            "demo-server",
            "--port",
            "0",
            "--log",
            "warn",
            "--auth-server-url",
        ])
        .arg(&authority.base);
    let server = Server::spawn_until(command, "demo-server listening on ");
    let resource = server.base.replace("127.0.0.1", "localhost");
    let metadata: Value = http()
        .get(format!(
            "{}/.well-known/oauth-protected-resource/mcp",
            server.base
        ))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(metadata["resource"], resource.as_str());
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}});
    let post = |token: Option<&str>| {
        let mut request = http()
            .post(format!("{}/mcp", server.base))
            .header("accept", "application/json, text/event-stream")
            .json(&initialize);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().unwrap()
    };
    let bare = post(None);
    assert_eq!(bare.status(), 401);
    assert!(
        bare.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("resource_metadata=")
    );
    let elsewhere = login(&authority, "http://localhost:1");
    let refused = post(elsewhere["access_token"].as_str());
    assert_eq!(refused.status(), 401);
    assert!(
        refused.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("not addressed to this server")
    );
    // With a trailing slash, as MCP SDKs derive the resource, the token is still its own.
    let own = login(&authority, &format!("{resource}/"));
    let accepted = post(own["access_token"].as_str());
    assert_eq!(accepted.status(), 200, "{:?}", accepted.text());
}
