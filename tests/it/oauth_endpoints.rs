//! Discovery, JWKS, client credentials, introspection and revocation over real HTTP, with
//! every bad input answered by the RFC's error and no change to the log.

use super::support::{App, Server, http, log_head, login, post_as, register};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::blocking::{RequestBuilder, Response};
use serde_json::{Value, json};

struct Client {
    id: String,
    secret: String,
}

fn service_client(server: &Server) -> Client {
    let body = register(
        server,
        json!({"grant_types": ["client_credentials"], "scope": "api:read api:write",
               "token_endpoint_auth_method": "client_secret_basic"}),
    );
    Client {
        id: body["client_id"].as_str().unwrap().into(),
        secret: body["client_secret"].as_str().unwrap().into(),
    }
}

fn post_form(
    server: &Server,
    path: &str,
    client: &Client,
    form: &[(&str, &str)],
) -> RequestBuilder {
    http()
        .post(format!("{}{path}", server.base))
        .basic_auth(&client.id, Some(&client.secret))
        .form(form)
}

fn ok_json(response: Response) -> Value {
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().unwrap()
}

fn client_credentials(server: &Server, client: &Client, extra: &[(&str, &str)]) -> Value {
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend_from_slice(extra);
    ok_json(post_form(server, "/token", client, &form).send().unwrap())
}

fn introspect(server: &Server, client: &Client, token: &str) -> Value {
    ok_json(
        post_form(server, "/introspect", client, &[("token", token)])
            .send()
            .unwrap(),
    )
}

#[test]
fn discovery_documents_are_public_and_complete() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    for path in ["openid-configuration", "oauth-authorization-server"] {
        let url = format!("{}/.well-known/{path}", server.base);
        let response = http().get(&url).send().unwrap();
        assert_eq!(response.headers()["access-control-allow-origin"], "*");
        let doc: Value = response.json().unwrap();
        assert_eq!(
            doc["issuer"].as_str().unwrap(),
            server.base.replace("127.0.0.1", "localhost")
        );
        assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
        for field in [
            "token_endpoint",
            "introspection_endpoint",
            "revocation_endpoint",
            "registration_endpoint",
            "jwks_uri",
        ] {
            assert!(
                doc[field]
                    .as_str()
                    .unwrap()
                    .starts_with("http://localhost:"),
                "{field}"
            );
        }
        let text = doc.to_string();
        assert!(
            !text.contains("auth_signing_alg_values_supported"),
            "{text}"
        );
        let preflight = http()
            .request(reqwest::Method::OPTIONS, &url)
            .send()
            .unwrap();
        assert_eq!(preflight.status(), 204);
        assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
        assert_eq!(http().delete(&url).send().unwrap().status(), 405);
    }
}

#[test]
fn access_tokens_verify_against_jwks_and_introspect_until_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = service_client(&server);
    let token = client_credentials(
        &server,
        &client,
        &[("scope", "api:read"), ("resource", "https://api.example")],
    );
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["expires_in"], 3600);
    assert_eq!(token["scope"], "api:read");
    assert!(token.get("refresh_token").is_none());
    let access = token["access_token"].as_str().unwrap();

    let header = jsonwebtoken::decode_header(access).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let jwks = server.jwks();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{jwks}");
    let jwk = keys
        .iter()
        .find(|k| k["kid"] == header.kid.clone().unwrap().as_str())
        .unwrap();
    assert!(jwk.get("d").is_none());
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&["https://api.example"]);
    let claims = jsonwebtoken::decode::<Value>(
        access,
        &DecodingKey::from_ed_components(jwk["x"].as_str().unwrap()).unwrap(),
        &validation,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["client_id"], client.id.as_str());
    assert_eq!(claims["sub"], client.id.as_str());

    let active = introspect(&server, &client, access);
    assert_eq!(active["active"], true);
    assert_eq!(active["aud"], json!(["https://api.example"]));
    assert_eq!(active["jti"], claims["jti"]);
    assert_eq!(active["scope"], "api:read");
    assert_eq!(active["exp"], claims["exp"]);
    let mut fields: Vec<&str> = active
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "active",
            "aud",
            "client_id",
            "exp",
            "iat",
            "iss",
            "jti",
            "nbf",
            "scope",
            "sub",
            "token_type"
        ],
        "a client's own token: no user, no actor"
    );
    assert_eq!(
        (active["iat"].as_i64(), active["nbf"].as_i64()),
        (claims["iat"].as_i64(), claims["iat"].as_i64())
    );
    assert_eq!(active["token_type"], "Bearer");

    let revoked = post_form(&server, "/revoke", &client, &[("token", access)])
        .send()
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(
        introspect(&server, &client, access),
        json!({"active": false})
    );
    let unknown = post_form(&server, "/revoke", &client, &[("token", "never-issued")])
        .send()
        .unwrap();
    assert_eq!(
        unknown.status(),
        200,
        "RFC 7009 §2.2: unknown tokens answer 200"
    );
    assert_eq!(
        introspect(&server, &client, "garbage"),
        json!({"active": false})
    );
}

#[test]
fn client_secret_post_works_too() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = service_client(&server);
    let response = http()
        .post(format!("{}/token", server.base))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &client.id),
            ("client_secret", &client.secret),
        ])
        .send()
        .unwrap();
    assert!(ok_json(response)["access_token"].is_string());
}

#[test]
fn tokens_stay_valid_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = service_client(&server);
    let token = client_credentials(&server, &client, &[]);
    server.stop();
    let server = Server::start(dir.path());
    let access = token["access_token"].as_str().unwrap();
    assert_eq!(introspect(&server, &client, access)["active"], true);
}

#[test]
fn bad_requests_get_rfc_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = service_client(&server);
    let public = register(
        &server,
        json!({"redirect_uris": ["http://127.0.0.1:9/cb"], "token_endpoint_auth_method": "none"}),
    );
    let code_only = register(
        &server,
        json!({"redirect_uris": ["https://app.example/cb"]}),
    );
    let wrong = Client {
        id: client.id.clone(),
        secret: "wrong".into(),
    };
    let stranger = Client {
        id: "nobody".into(),
        secret: "x".into(),
    };
    let code_client = Client {
        id: code_only["client_id"].as_str().unwrap().into(),
        secret: code_only["client_secret"].as_str().unwrap().into(),
    };
    let token_url = format!("{}/token", server.base);
    let cc = [("grant_type", "client_credentials")];
    let head = log_head(&server);
    let cases: Vec<(&str, RequestBuilder, u16, &str)> = vec![
        (
            "wrong secret",
            post_form(&server, "/token", &wrong, &cc),
            401,
            "invalid_client",
        ),
        (
            "unknown client",
            post_form(&server, "/token", &stranger, &cc),
            401,
            "invalid_client",
        ),
        (
            "no credentials",
            http().post(&token_url).form(&cc),
            401,
            "invalid_client",
        ),
        (
            "public client",
            http().post(&token_url).form(&[
                ("grant_type", "client_credentials"),
                ("client_id", public["client_id"].as_str().unwrap()),
            ]),
            400,
            "unauthorized_client",
        ),
        (
            "grant not registered",
            post_form(&server, "/token", &code_client, &cc),
            400,
            "unauthorized_client",
        ),
        (
            "unregistered scope",
            post_form(&server, "/token", &client, &[cc[0], ("scope", "admin")]),
            400,
            "invalid_scope",
        ),
        (
            "relative resource",
            post_form(&server, "/token", &client, &[cc[0], ("resource", "/api")]),
            400,
            "invalid_target",
        ),
        (
            "resource with fragment",
            post_form(
                &server,
                "/token",
                &client,
                &[cc[0], ("resource", "https://a/#x")],
            ),
            400,
            "invalid_target",
        ),
        (
            "unknown grant type",
            post_form(&server, "/token", &client, &[("grant_type", "password")]),
            400,
            "unsupported_grant_type",
        ),
        (
            "missing grant type",
            post_form(&server, "/token", &client, &[("scope", "api:read")]),
            400,
            "invalid_request",
        ),
        (
            "duplicated parameter",
            post_form(
                &server,
                "/token",
                &client,
                &[cc[0], ("scope", "api:read"), ("scope", "api:write")],
            ),
            400,
            "invalid_request",
        ),
        (
            "non-UTF-8 value",
            http()
                .post(&token_url)
                .basic_auth(&client.id, Some(&client.secret))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("grant_type=client_credentials&scope=%ff%fe"),
            400,
            "invalid_request",
        ),
        (
            "JSON instead of a form",
            http()
                .post(&token_url)
                .basic_auth(&client.id, Some(&client.secret))
                .json(&json!({"grant_type": "client_credentials"})),
            400,
            "invalid_request",
        ),
        (
            "oversized body",
            post_form(
                &server,
                "/token",
                &client,
                &[cc[0], ("scope", &"a".repeat(20_000))],
            ),
            413,
            "invalid_request",
        ),
        (
            "basic and post credentials together",
            post_form(
                &server,
                "/token",
                &client,
                &[
                    cc[0],
                    ("client_id", &client.id),
                    ("client_secret", &client.secret),
                ],
            ),
            400,
            "invalid_request",
        ),
        (
            "GET on the token endpoint",
            http().get(&token_url),
            405,
            "invalid_request",
        ),
        (
            "introspection without credentials",
            http()
                .post(format!("{}/introspect", server.base))
                .form(&[("token", "x")]),
            401,
            "invalid_client",
        ),
        (
            "introspection without token",
            post_form(&server, "/introspect", &client, &[]),
            400,
            "invalid_request",
        ),
        (
            "revocation with a wrong secret",
            post_form(&server, "/revoke", &wrong, &[("token", "x")]),
            401,
            "invalid_client",
        ),
    ];
    for (what, request, status, code) in cases {
        let response = request.send().unwrap();
        assert_eq!(response.status().as_u16(), status, "{what}");
        assert_eq!(response.headers()["cache-control"], "no-store", "{what}");
        if status == 401 {
            assert_eq!(
                response.headers()["www-authenticate"],
                "Basic realm=\"warrant\"",
                "{what}"
            );
        }
        let body: Value = response
            .json()
            .unwrap_or_else(|e| panic!("{what}: not JSON: {e}"));
        assert_eq!(body["error"], code, "{what}: {body}");
    }
    assert_eq!(log_head(&server), head, "no bad request wrote to the log");
}

#[test]
fn revoking_another_clients_token_is_refused_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (owner, other) = (service_client(&server), service_client(&server));
    let token = client_credentials(&server, &owner, &[]);
    let access = token["access_token"].as_str().unwrap();
    let response = post_form(&server, "/revoke", &other, &[("token", access)])
        .send()
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        introspect(&server, &owner, access)["active"],
        true,
        "still active"
    );
    server.stop();
    let denials = super::support::export(dir.path(), &["--type", "request_denied"]);
    assert_eq!(denials.len(), 1);
    assert_eq!(denials[0]["payload"]["request"], "revocation");
}

#[test]
fn an_issuer_with_a_path_serves_everything_under_it() {
    // RFC 8414 §3.1: metadata at the path-inserted location; endpoints under the path.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--issuer", "https://idp.example/tenant/"]);
    for path in [
        "/.well-known/oauth-authorization-server/tenant",
        "/.well-known/openid-configuration/tenant",
        "/tenant/.well-known/openid-configuration",
    ] {
        let doc: Value = http()
            .get(format!("{}{path}", server.base))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(doc["issuer"], "https://idp.example/tenant", "{path}");
        assert_eq!(
            doc["token_endpoint"], "https://idp.example/tenant/token",
            "{path}"
        );
    }
    let registered: Value = http()
        .post(format!("{}/tenant/register", server.base))
        .json(&json!({"grant_types": ["client_credentials"]}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let client = Client {
        id: registered["client_id"].as_str().unwrap().into(),
        secret: registered["client_secret"].as_str().unwrap().into(),
    };
    let token = post_form(
        &server,
        "/tenant/token",
        &client,
        &[("grant_type", "client_credentials")],
    )
    .send()
    .unwrap();
    let token = ok_json(token);
    let claims =
        jsonwebtoken::dangerous::insecure_decode::<Value>(token["access_token"].as_str().unwrap())
            .unwrap()
            .claims;
    assert_eq!(claims["iss"], "https://idp.example/tenant");
    assert_eq!(
        http()
            .get(format!("{}/.well-known/openid-configuration", server.base))
            .send()
            .unwrap()
            .status(),
        404
    );
}

#[test]
fn an_unusable_issuer_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let output = super::support::warrant()
        .args([
            "serve",
            "--port",
            "0",
            "--issuer",
            "https://idp.example/?x=1",
            "--dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--issuer"));
}

/// The unnamed files a running server holds open in `dir` (the token model's older records
/// and grants, here, where the log's index keeps everything in memory).
fn unnamed_files_in(server: &Server, dir: &std::path::Path) -> usize {
    let fds = std::fs::read_dir(format!("/proc/{}/fd", server.pid())).unwrap();
    fds.filter_map(|fd| std::fs::read_link(fd.unwrap().path()).ok())
        .filter(|target| {
            let target = target.to_string_lossy();
            target.starts_with(&*dir.to_string_lossy()) && target.ends_with("(deleted)")
        })
        .count()
}

#[test]
fn tokens_whose_records_moved_to_disk_answer_as_before_and_after_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--token-records-in-memory", "1024"];
    let server = Server::start_with(dir.path(), &flags);
    let user = login(&server, "http://localhost:8003");
    let client = service_client(&server);
    assert_eq!(unnamed_files_in(&server, dir.path()), 0);
    let issue = || {
        let token = client_credentials(&server, &client, &[])["access_token"].clone();
        token.as_str().unwrap().to_owned()
    };
    // Two tokens, then more than a chunk of 1,024 records and grants from eight threads at
    // once, then one more: the first two (and the user's) are on disk, the last in memory.
    let mut tokens = vec![issue(), issue()];
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| (0..130).for_each(|_| drop(issue())));
        }
    });
    tokens.push(issue());
    assert_eq!(
        unnamed_files_in(&server, dir.path()),
        2,
        "the oldest token records and grants are in their files"
    );
    let active =
        |server: &Server, token: &str| introspect(server, &client, token)["active"].clone();
    assert_eq!(active(&server, &tokens[0]), json!(true));
    let first = introspect(&server, &client, &tokens[0]);
    assert_eq!(first["client_id"], json!(client.id));
    assert_eq!(first["scope"], json!("api:read api:write"));
    // Revoked on disk.
    let revoked = post_form(&server, "/revoke", &client, &[("token", &tokens[1])]);
    assert_eq!(revoked.send().unwrap().status(), 200);
    assert_eq!(active(&server, &tokens[1]), json!(false));
    // The user's refresh token and its grant are on disk too: it rotates once, and its reuse
    // revokes the grant.
    let app = App {
        id: user["client_id"].as_str().unwrap().into(),
        secret: user["client_secret"].as_str().map(str::to_owned),
    };
    let refresh = |token: &str| {
        post_as(
            &server,
            &app,
            "/token",
            &[("grant_type", "refresh_token"), ("refresh_token", token)],
        )
    };
    let old = user["refresh_token"].as_str().unwrap();
    let rotated: Value = refresh(old).json().unwrap();
    let new_access = rotated["access_token"].as_str().unwrap().to_owned();
    assert_eq!(active(&server, &new_access), json!(true));
    assert_eq!(refresh(old).status(), 400, "a reused refresh token");
    assert_eq!(
        active(&server, &new_access),
        json!(false),
        "its grant is revoked"
    );

    // The same answers after a clean restart (from the checkpoint) and after a kill -9 (from
    // the log).
    server.stop();
    let server = Server::start_with(dir.path(), &flags);
    let answers = |server: &Server| {
        [&tokens[0], &tokens[1], &tokens[2], &new_access].map(|t| active(server, t))
    };
    let expected = [json!(true), json!(false), json!(true), json!(false)];
    assert_eq!(answers(&server), expected);
    assert_eq!(unnamed_files_in(&server, dir.path()), 2);
    server.kill9();
    let server = Server::start_with(dir.path(), &flags);
    assert_eq!(answers(&server), expected);
}
