//! `warrant gateway` between a client and an MCP server, over real sockets: discovery by a
//! 401, introspection of the client's token, one exchange per subject token, no token
//! passthrough, revocation, and server-sent events streamed as they come.

use super::support::{App, Server, export, http, login, post_as, warrant};
use super::upstream::Upstream;
use serde_json::{Value, json};
use std::io::Read;

fn grants(dir: &std::path::Path, resources: Value) -> String {
    let path = dir.join("grants.json");
    std::fs::write(
        &path,
        json!({"grants": [{"src": ["*"], "dst": ["*"], "app": {"tailscale.com/cap/tsidp": [
            {"users": ["*"], "resources": resources, "allow_dcr": true}]}}]})
        .to_string(),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

/// warrant, an upstream MCP server, and the gateway between them.
struct Chain {
    dir: tempfile::TempDir,
    warrant: Server,
    upstream: Upstream,
    gateway: Server,
    /// The gateway's resource identifier.
    resource: String,
}

fn chain(resources: Value, gateway_flags: &[&str]) -> Chain {
    let dir = tempfile::tempdir().unwrap();
    let file = grants(dir.path(), resources);
    let warrant_server = Server::start_with(
        &dir.path().join("data"),
        &["--enable-sts", "--grants", &file],
    );
    let upstream = Upstream::start();
    let mut command = warrant();
    command
        .args([
            "gateway",
            "--port",
            "0",
            "--log",
            "warn",
            "--auth-server-url",
        ])
        .arg(&warrant_server.base)
        .args(["--mcp-server-url", &upstream.url])
        .args(gateway_flags);
    let gateway = Server::spawn_until(command, "gateway listening on ");
    let resource = gateway_flags
        .windows(2)
        .find(|w| w[0] == "--resource")
        .map(|w| w[1].to_owned())
        .unwrap_or_else(|| gateway.base.replace("127.0.0.1", "localhost"));
    Chain {
        dir,
        warrant: warrant_server,
        upstream,
        gateway,
        resource,
    }
}

fn call(chain: &Chain, token: &str) -> reqwest::blocking::Response {
    http()
        .post(format!("{}/mcp", chain.gateway.base))
        .bearer_auth(token)
        .header("mcp-session-id", "session-1")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .unwrap()
}

fn claims(token: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode::<Value>(token)
        .unwrap()
        .claims
}

#[test]
fn a_client_discovers_the_gateway_from_its_401_and_metadata() {
    let chain = chain(json!(["*"]), &[]);
    let response = http()
        .post(format!("{}/mcp", chain.gateway.base))
        .json(&json!({}))
        .send()
        .unwrap();
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    let metadata_url = format!("{}/.well-known/oauth-protected-resource", chain.resource);
    assert_eq!(
        challenge,
        format!("Bearer resource_metadata=\"{metadata_url}\"")
    );
    let issuer: Value = http()
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            chain.warrant.base
        ))
        .send()
        .unwrap()
        .json()
        .unwrap();
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let metadata: Value = http()
            .get(format!("{}{path}", chain.gateway.base))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(metadata["resource"], chain.resource.as_str());
        assert_eq!(metadata["authorization_servers"][0], issuer["issuer"]);
    }
    assert!(chain.upstream.seen().is_empty());
}

#[test]
fn requests_go_upstream_with_an_exchanged_token_exchanged_once() {
    let chain = chain(json!(["*"]), &[]);
    let tokens = login(&chain.warrant, &chain.resource);
    let user_token = tokens["access_token"].as_str().unwrap();
    let first = call(&chain, user_token);
    assert_eq!(first.status(), 200);
    let echoed: Value = first.json().unwrap();
    assert_eq!(
        echoed["mcp_session_id"], "session-1",
        "headers pass through"
    );
    assert!(echoed["body"].as_str().unwrap().contains("tools/list"));
    assert_eq!(call(&chain, user_token).status(), 200);

    let seen = chain.upstream.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0], seen[1], "the exchanged token is reused");
    let upstream_token = seen[0].strip_prefix("Bearer ").unwrap();
    assert_ne!(upstream_token, user_token, "no token passthrough");
    let upstream_claims = claims(upstream_token);
    assert_eq!(upstream_claims["aud"], json!([chain.upstream.url]));
    assert_eq!(upstream_claims["sub"], claims(user_token)["sub"]);
    let registered = export(
        &chain.dir.path().join("data"),
        &["--type", "client_registered"],
    );
    let gateway_id = registered
        .iter()
        .find(|e| e["payload"]["metadata"]["client_name"] == "warrant gateway")
        .unwrap()["payload"]["client_id"]
        .clone();
    assert_eq!(upstream_claims["act"]["sub"], gateway_id);
    let exchanged = export(
        &chain.dir.path().join("data"),
        &["--type", "token_exchanged"],
    );
    assert_eq!(exchanged.len(), 1, "one exchange for two requests");
}

#[test]
fn tokens_for_someone_else_or_revoked_are_refused_without_reaching_upstream() {
    let chain = chain(json!(["*"]), &[]);
    let elsewhere = login(&chain.warrant, "http://localhost:1");
    let response = call(&chain, elsewhere["access_token"].as_str().unwrap());
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("not addressed to this gateway")
    );
    assert_eq!(call(&chain, "not-a-token").status(), 401);

    let tokens = login(&chain.warrant, &chain.resource);
    let user_token = tokens["access_token"].as_str().unwrap();
    assert_eq!(call(&chain, user_token).status(), 200);
    let app = App {
        id: tokens["client_id"].as_str().unwrap().into(),
        secret: tokens["client_secret"].as_str().map(str::to_owned),
    };
    let revoked = post_as(&chain.warrant, &app, "/revoke", &[("token", user_token)]);
    assert_eq!(revoked.status(), 200);
    let after = call(&chain, user_token);
    assert_eq!(after.status(), 401);
    assert!(
        after.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("not active")
    );
    assert_eq!(
        chain.upstream.seen().len(),
        1,
        "only the request before revocation"
    );
}

#[test]
fn a_refused_exchange_refuses_the_request_instead_of_passing_the_token_through() {
    // The rules allow the gateway but not the server behind it.
    let chain = chain(
        json!(["http://gateway.test"]),
        &["--resource", "http://gateway.test"],
    );
    let tokens = login(&chain.warrant, "http://gateway.test");
    let response = call(&chain, tokens["access_token"].as_str().unwrap());
    assert_eq!(response.status(), 403);
    assert_eq!(response.json::<Value>().unwrap()["error"], "access_denied");
    assert!(chain.upstream.seen().is_empty(), "nothing went upstream");
}

#[test]
fn server_sent_events_are_streamed_as_they_come() {
    let chain = chain(json!(["*"]), &[]);
    let tokens = login(&chain.warrant, &chain.resource);
    let mut response = http()
        .get(format!("{}/stream", chain.gateway.base))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    // The upstream holds its second event back until released: the first one must arrive
    // on its own, so the gateway is not waiting for the whole body.
    let mut first = [0u8; 13];
    response.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"data: first\n\n");
    chain.upstream.release();
    let mut rest = String::new();
    response.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "data: second\n\n");
}
