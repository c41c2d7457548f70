//! Dynamic client registration as MCP SDKs use it (RFC 7591), its validation, and client
//! management with the registration access token (RFC 7592).

use super::support::{Server, export, http, post_as, register_app};
use serde_json::{Value, json};

#[test]
fn mcp_sdk_style_registration_of_a_public_client() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let response = http()
        .post(format!("{}/register", server.base))
        .json(&json!({
            "redirect_uris": ["http://localhost:3030/callback"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "client_name": "MCP Inspector",
            "client_uri": "https://github.com/modelcontextprotocol/inspector",
            "logo_uri": null,
            "contacts": null,
            "scope": "openid offline_access",
            "software_id": "ignored-unknown-member"
        }))
        .send()
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().unwrap();
    assert!(
        body.get("client_secret").is_none(),
        "public clients get no secret"
    );
    assert_eq!(body["token_endpoint_auth_method"], "none");
    assert_eq!(
        body["client_uri"],
        "https://github.com/modelcontextprotocol/inspector"
    );
    assert!(body.get("logo_uri").is_none());
    assert!(body["registration_access_token"].is_string());
    let id = body["client_id"].as_str().unwrap();
    assert_eq!(
        body["registration_client_uri"],
        format!(
            "{}/register/{id}",
            server.base.replace("127.0.0.1", "localhost")
        )
    );
}

#[test]
fn redirect_uris_follow_rfc_8252() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let register = |uri: &str| {
        http()
            .post(format!("{}/register", server.base))
            .json(&json!({"redirect_uris": [uri]}))
            .send()
            .unwrap()
    };
    for refused in [
        "javascript:alert(1)",
        "http://app.example/cb",
        "file:///tmp/x",
        "data:text/plain,x",
        "https://a.example/cb#f",
    ] {
        let response = register(refused);
        assert_eq!(response.status(), 400, "{refused}");
        assert_eq!(
            response.json::<Value>().unwrap()["error"],
            "invalid_redirect_uri",
            "{refused}"
        );
    }
    for accepted in [
        "https://app.example/cb",
        "http://127.0.0.1:8765/cb",
        "com.example.app:/oauth2redirect",
    ] {
        assert_eq!(register(accepted).status(), 201, "{accepted}");
    }
}

struct Managed {
    uri: String,
    token: String,
    body: Value,
}

fn registered(server: &Server) -> Managed {
    let body: Value = http()
        .post(format!("{}/register", server.base))
        .json(
            &json!({"redirect_uris": ["https://app.example/cb"], "client_name": "first",
                      "grant_types": ["authorization_code", "client_credentials"]}),
        )
        .send()
        .unwrap()
        .json()
        .unwrap();
    Managed {
        uri: format!(
            "{}/register/{}",
            server.base,
            body["client_id"].as_str().unwrap()
        ),
        token: body["registration_access_token"].as_str().unwrap().into(),
        body,
    }
}

#[test]
fn registration_is_read_and_updated_with_its_access_token_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = registered(&server);
    let read: Value = http()
        .get(&client.uri)
        .bearer_auth(&client.token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(read["client_name"], "first");
    assert_eq!(read["client_id"], client.body["client_id"]);
    assert!(read.get("client_secret").is_none(), "only the hash is kept");
    let lower_case_scheme = http()
        .get(&client.uri)
        .header("authorization", format!("bearer {}", client.token))
        .send()
        .unwrap();
    assert_eq!(
        lower_case_scheme.status(),
        200,
        "the scheme is case-insensitive"
    );

    for (what, request) in [
        ("no token", http().get(&client.uri)),
        (
            "the token in another scheme",
            http()
                .get(&client.uri)
                .header("authorization", format!("Basic {}", client.token)),
        ),
        ("wrong token", http().get(&client.uri).bearer_auth("nope")),
        (
            "the client secret instead",
            http()
                .get(&client.uri)
                .bearer_auth(client.body["client_secret"].as_str().unwrap()),
        ),
    ] {
        let response = request.send().unwrap();
        assert_eq!(response.status(), 401, "{what}");
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer"),
            "{what}"
        );
        assert_eq!(
            response.json::<Value>().unwrap()["error"],
            "invalid_token",
            "{what}"
        );
    }
    let other = registered(&server);
    let crossed = http()
        .get(&client.uri)
        .bearer_auth(&other.token)
        .send()
        .unwrap();
    assert_eq!(
        crossed.status(),
        401,
        "one client's token does not manage another"
    );

    let update = json!({"client_id": client.body["client_id"], "redirect_uris": ["https://app.example/new"],
                        "client_name": "renamed", "grant_types": ["authorization_code"]});
    let updated = http()
        .put(&client.uri)
        .bearer_auth(&client.token)
        .json(&update)
        .send()
        .unwrap();
    assert_eq!(updated.status(), 200);
    let read: Value = http()
        .get(&client.uri)
        .bearer_auth(&client.token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(read["client_name"], "renamed");
    assert_eq!(read["redirect_uris"], json!(["https://app.example/new"]));

    let mut wrong_id = update.clone();
    wrong_id["client_id"] = "someone-else".into();
    let refused = http()
        .put(&client.uri)
        .bearer_auth(&client.token)
        .json(&wrong_id)
        .send()
        .unwrap();
    assert_eq!(refused.status(), 400);
    let mut bad_uri = update;
    bad_uri["redirect_uris"] = json!(["javascript:x"]);
    let refused = http()
        .put(&client.uri)
        .bearer_auth(&client.token)
        .json(&bad_uri)
        .send()
        .unwrap();
    assert_eq!(
        refused.json::<Value>().unwrap()["error"],
        "invalid_redirect_uri"
    );
}

#[test]
fn deleting_a_client_revokes_its_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = registered(&server);
    let app = super::support::App {
        id: client.body["client_id"].as_str().unwrap().into(),
        secret: client.body["client_secret"].as_str().map(str::to_owned),
    };
    let token: Value = post_as(
        &server,
        &app,
        "/token",
        &[("grant_type", "client_credentials")],
    )
    .json()
    .unwrap();
    let access = token["access_token"].as_str().unwrap();
    let inspector = register_app(&server, json!({"grant_types": ["client_credentials"]}));
    let active = |t: &str| {
        post_as(&server, &inspector, "/introspect", &[("token", t)])
            .json::<Value>()
            .unwrap()["active"]
            .clone()
    };
    assert_eq!(active(access), true);

    let deleted = http()
        .delete(&client.uri)
        .bearer_auth(&client.token)
        .send()
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(active(access), false);
    assert_eq!(
        http()
            .get(&client.uri)
            .bearer_auth(&client.token)
            .send()
            .unwrap()
            .status(),
        401
    );
    let again = post_as(
        &server,
        &app,
        "/token",
        &[("grant_type", "client_credentials")],
    );
    assert_eq!(again.status(), 401, "a deleted client cannot authenticate");
    server.stop();
    let revoked = export(dir.path(), &["--type", "grant_revoked"]);
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["payload"]["reason"], "client_deleted");
}
