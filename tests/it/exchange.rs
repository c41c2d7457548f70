//! RFC 8693 token exchange over real HTTP, as the MCP gateway pattern uses it: granted,
//! narrowed, denied, chained through several gateways, and revoked with its subject's grant.

use super::support::{App, Server, export, login, post_as, register_app};
use serde_json::{Value, json};

const GATEWAY: &str = "http://localhost:8003";
const SERVER: &str = "http://localhost:8001";
const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";

fn start(dir: &std::path::Path) -> Server {
    let grants = dir.join("grants.json");
    std::fs::write(
        &grants,
        json!({"grants": [{"src": ["*"], "dst": ["*"], "app": {"tailscale.com/cap/tsidp": [
            {"users": ["*"], "resources": [GATEWAY, SERVER, "http://localhost:8005"], "allow_dcr": true}]}}]})
        .to_string(),
    )
    .unwrap();
    Server::start_with(
        &dir.join("data"),
        &["--enable-sts", "--grants", grants.to_str().unwrap()],
    )
}

fn gateway(server: &Server) -> App {
    register_app(
        server,
        json!({"grant_types": [EXCHANGE], "token_endpoint_auth_method": "client_secret_post"}),
    )
}

fn exchange(
    server: &Server,
    by: &App,
    subject: &str,
    targets: &[(&str, &str)],
) -> reqwest::blocking::Response {
    let mut form = vec![
        ("grant_type", EXCHANGE),
        ("subject_token", subject),
        ("subject_token_type", ACCESS),
    ];
    form.extend_from_slice(targets);
    post_as(server, by, "/token", &form)
}

fn ok(response: reqwest::blocking::Response) -> Value {
    assert_eq!(response.status(), 200, "{:?}", response.text());
    response.json().unwrap()
}

fn claims(token: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode::<Value>(token)
        .unwrap()
        .claims
}

/// The access token of a user's login for the gateway.
fn user_token(server: &Server) -> String {
    login(server, GATEWAY)["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn introspect(server: &Server, by: &App, token: &str) -> Value {
    ok(post_as(server, by, "/introspect", &[("token", token)]))
}

#[test]
fn gateway_exchanges_a_user_token_for_the_server_audience() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let user = login(&server, GATEWAY);
    let subject = user["access_token"].as_str().unwrap();
    let gw = gateway(&server);
    // The Python gateway sends audience and resource with the same value.
    let issued = ok(exchange(
        &server,
        &gw,
        subject,
        &[("audience", SERVER), ("resource", SERVER)],
    ));
    assert_eq!(issued["issued_token_type"], ACCESS);
    assert_eq!(issued["token_type"], "Bearer");
    let token = issued["access_token"].as_str().unwrap();
    let (new, old) = (claims(token), claims(subject));
    assert_eq!(new["aud"], json!([SERVER]));
    assert_eq!(new["sub"], old["sub"]);
    assert_eq!(new["act"], json!({"sub": gw.id, "client_id": gw.id}));
    assert!(
        new["exp"].as_i64() <= old["exp"].as_i64(),
        "never outlives the subject token"
    );
    assert_eq!(new["scope"], old["scope"]);

    let mcp_server = register_app(&server, json!({"grant_types": ["client_credentials"]}));
    let seen = introspect(&server, &mcp_server, token);
    assert_eq!(seen["active"], true);
    assert_eq!(seen["aud"], json!([SERVER]));
    assert_eq!(seen["act"]["sub"], gw.id.as_str());
    assert!(
        seen["scope"]
            .as_str()
            .unwrap()
            .split(' ')
            .any(|s| s == "openid")
    );
}

#[test]
fn audiences_are_normalized_for_the_rules_but_keep_their_spelling() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let subject = user_token(&server);
    let gw = gateway(&server);
    let issued = ok(exchange(
        &server,
        &gw,
        &subject,
        &[("audience", "http://localhost:8001/"), ("resource", SERVER)],
    ));
    assert_eq!(
        claims(issued["access_token"].as_str().unwrap())["aud"],
        json!(["http://localhost:8001/"])
    );
}

#[test]
fn disallowed_audiences_are_dropped_and_none_left_is_access_denied() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let subject = user_token(&server);
    let gw = gateway(&server);
    let narrowed = ok(exchange(
        &server,
        &gw,
        &subject,
        &[("audience", SERVER), ("audience", "https://evil.example")],
    ));
    assert_eq!(
        claims(narrowed["access_token"].as_str().unwrap())["aud"],
        json!([SERVER])
    );
    let scoped = ok(exchange(
        &server,
        &gw,
        &subject,
        &[("audience", SERVER), ("scope", "openid")],
    ));
    assert_eq!(scoped["scope"], "openid");
    // Asking for more than the subject token has gives the overlap, and says so.
    let overlap = ok(exchange(
        &server,
        &gw,
        &subject,
        &[("audience", SERVER), ("scope", "openid email admin")],
    ));
    assert_eq!(overlap["scope"], "openid");
    let wider = exchange(
        &server,
        &gw,
        &subject,
        &[("audience", SERVER), ("scope", "admin")],
    );
    assert_eq!(wider.status(), 400);

    let denied = exchange(
        &server,
        &gw,
        &subject,
        &[("audience", "https://evil.example")],
    );
    assert_eq!(denied.status(), 403);
    assert_eq!(denied.json::<Value>().unwrap()["error"], "access_denied");
    server.stop();
    let denials = export(&dir.path().join("data"), &["--type", "request_denied"]);
    assert_eq!(denials.len(), 1);
    assert_eq!(denials[0]["payload"]["request"], "exchange");
    assert_eq!(denials[0]["payload"]["client_id"], gw.id.as_str());
    let granted = export(&dir.path().join("data"), &["--type", "token_exchanged"]);
    assert_eq!(granted.len(), 3, "each granted exchange is an event");
}

#[test]
fn exchanged_tokens_chain_with_nested_act_up_to_a_cap() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let mut token = user_token(&server);
    let hops: Vec<App> = (0..6).map(|_| gateway(&server)).collect();
    for (depth, hop) in hops.iter().enumerate().take(5) {
        let issued = ok(exchange(&server, hop, &token, &[("audience", SERVER)]));
        token = issued["access_token"].as_str().unwrap().to_owned();
        let act = &claims(&token)["act"];
        assert_eq!(
            act["sub"],
            hop.id.as_str(),
            "the current actor is outermost"
        );
        if depth > 0 {
            assert_eq!(
                act["act"]["sub"],
                hops[depth - 1].id.as_str(),
                "the previous actor nests inside"
            );
        }
    }
    let too_deep = exchange(&server, &hops[5], &token, &[("audience", SERVER)]);
    assert_eq!(too_deep.status(), 400);
    assert!(too_deep.text().unwrap().contains("actor chain"));
}

#[test]
fn an_inactive_subject_token_cannot_be_exchanged_and_revocation_reaches_exchanged_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let user = login(&server, GATEWAY);
    let subject = user["access_token"].as_str().unwrap();
    let gw = gateway(&server);
    let exchanged = ok(exchange(&server, &gw, subject, &[("audience", SERVER)]));
    let exchanged = exchanged["access_token"].as_str().unwrap();
    assert_eq!(introspect(&server, &gw, exchanged)["active"], true);

    // The user's client revokes its refresh token: the whole grant goes, exchanges included.
    let owner = App {
        id: user["client_id"].as_str().unwrap().into(),
        secret: user["client_secret"].as_str().map(str::to_owned),
    };
    let revoked = post_as(
        &server,
        &owner,
        "/revoke",
        &[("token", user["refresh_token"].as_str().unwrap())],
    );
    assert_eq!(revoked.status(), 200);
    assert_eq!(introspect(&server, &gw, exchanged)["active"], false);
    let again = exchange(&server, &gw, subject, &[("audience", SERVER)]);
    assert_eq!(again.status(), 400);
    assert_eq!(again.json::<Value>().unwrap()["error"], "invalid_request");
    let garbage = exchange(&server, &gw, "not-a-token", &[("audience", SERVER)]);
    assert_eq!(garbage.status(), 400);
}

#[test]
fn exchange_requests_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let subject = user_token(&server);
    let gw = gateway(&server);
    let no_target = exchange(&server, &gw, &subject, &[]);
    assert_eq!(no_target.status(), 400);
    let wrong_type = post_as(
        &server,
        &gw,
        "/token",
        &[
            ("grant_type", EXCHANGE),
            ("subject_token", &subject),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:saml2",
            ),
            ("audience", SERVER),
        ],
    );
    assert_eq!(
        wrong_type.json::<Value>().unwrap()["error"],
        "invalid_request"
    );
    let public = register_app(
        &server,
        json!({"redirect_uris": ["http://127.0.0.1:9/cb"], "token_endpoint_auth_method": "none"}),
    );
    let by_public = reqwest::blocking::Client::new()
        .post(format!("{}/token", server.base))
        .form(&[
            ("grant_type", EXCHANGE),
            ("client_id", &public.id),
            ("subject_token", &subject),
            ("subject_token_type", ACCESS),
            ("audience", SERVER),
        ])
        .send()
        .unwrap();
    assert_eq!(by_public.status(), 401);
}

#[test]
fn without_enable_sts_exchange_is_an_unsupported_grant_type() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let subject = user_token(&server);
    let gw = gateway(&server);
    let response = exchange(&server, &gw, &subject, &[("audience", SERVER)]);
    assert_eq!(
        response.json::<Value>().unwrap()["error"],
        "unsupported_grant_type"
    );
    let doc: Value = reqwest::blocking::get(format!(
        "{}/.well-known/oauth-authorization-server",
        server.base
    ))
    .unwrap()
    .json()
    .unwrap();
    assert!(
        !doc["grant_types_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g == EXCHANGE)
    );
}
