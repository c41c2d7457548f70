//! The authorization code flow over real HTTP: PKCE for confidential and public clients, ID
//! tokens checked against JWKS, userinfo, refresh rotation, and the replays that revoke.

use super::support::{App, Server, export, http, log_head, post_as, register_app};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::blocking::Response;
use serde_json::{Value, json};
use url::Url;
use warrant::actors::session::s256_challenge;

const VERIFIER: &str = "a-very-long-code-verifier-of-at-least-43-characters-0123456789";
const REDIRECT: &str = "http://127.0.0.1:9/cb?app=1";

fn code_client(server: &Server, public: bool) -> App {
    register_app(
        server,
        json!({"redirect_uris": [REDIRECT], "grant_types": ["authorization_code", "refresh_token"],
               "token_endpoint_auth_method": if public { "none" } else { "client_secret_basic" }}),
    )
}

fn authorize(server: &Server, params: &[(&str, &str)]) -> Response {
    let url = Url::parse_with_params(&format!("{}/authorize", server.base), params).unwrap();
    http().get(url).send().unwrap()
}

/// Follows an authorization request to its redirect; returns the redirect's query.
fn redirect_params(response: Response) -> Vec<(String, String)> {
    assert_eq!(response.status(), 302, "{:?}", response.text());
    let location = Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(
        location.as_str().split('?').next(),
        Some("http://127.0.0.1:9/cb")
    );
    location
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn code_for(server: &Server, app: &App, scope: &str) -> String {
    let challenge = s256_challenge(VERIFIER);
    let params = redirect_params(authorize(
        server,
        &[
            ("response_type", "code"),
            ("client_id", &app.id),
            ("redirect_uri", REDIRECT),
            ("scope", scope),
            ("state", "xyz"),
            ("nonce", "n-0S6"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("resource", "https://gateway.example/mcp"),
        ],
    ));
    assert_eq!(param(&params, "state"), Some("xyz"));
    assert_eq!(
        param(&params, "app"),
        Some("1"),
        "the redirect URI's own query is kept"
    );
    assert!(param(&params, "iss").is_some(), "RFC 9207 iss");
    param(&params, "code").expect("a code").to_owned()
}

fn token(server: &Server, app: &App, form: &[(&str, &str)]) -> Response {
    let mut request = http().post(format!("{}/token", server.base));
    let mut form = form.to_vec();
    match &app.secret {
        Some(secret) => request = request.basic_auth(&app.id, Some(secret)),
        None => form.push(("client_id", &app.id)),
    }
    request.form(&form).send().unwrap()
}

fn redeem(server: &Server, app: &App, code: &str) -> Response {
    token(
        server,
        app,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
}

fn ok(response: Response) -> Value {
    assert_eq!(response.status(), 200, "{:?}", response.text());
    response.json().unwrap()
}

fn error_code(response: Response) -> String {
    assert_eq!(response.status(), 400);
    response.json::<Value>().unwrap()["error"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Introspects with a separate confidential client, as a resource server would.
fn active(server: &Server, inspector: &App, token: &str) -> bool {
    ok(post_as(
        server,
        inspector,
        "/introspect",
        &[("token", token)],
    ))["active"]
        .as_bool()
        .unwrap()
}

#[test]
fn confidential_client_code_flow_with_pkce_id_token_and_userinfo() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let app = code_client(&server, false);
    let code = code_for(&server, &app, "openid offline_access");
    let tokens = ok(redeem(&server, &app, &code));
    assert_eq!(tokens["scope"], "openid offline_access");
    assert!(tokens["refresh_token"].is_string());

    let id_token = tokens["id_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(id_token).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    let jwks = server.jwks();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header.kid.clone().unwrap().as_str())
        .unwrap();
    let key =
        DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap())
            .unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[&app.id]);
    let claims = jsonwebtoken::decode::<Value>(id_token, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["nonce"], "n-0S6");
    assert_eq!(claims["azp"], app.id.as_str());
    let user = claims["sub"].as_str().unwrap().to_owned();

    let access = tokens["access_token"].as_str().unwrap();
    let access_claims = jsonwebtoken::dangerous::insecure_decode::<Value>(access)
        .unwrap()
        .claims;
    assert_eq!(access_claims["aud"], json!(["https://gateway.example/mcp"]));
    assert_eq!(access_claims["sub"], user.as_str());

    let info: Value = ok(http()
        .get(format!("{}/userinfo", server.base))
        .bearer_auth(access)
        .send()
        .unwrap());
    assert_eq!(info["sub"], user.as_str());
    let no_token = http()
        .get(format!("{}/userinfo", server.base))
        .send()
        .unwrap();
    assert_eq!(no_token.status(), 401);
    assert_eq!(
        no_token.headers()["www-authenticate"],
        "Bearer realm=\"warrant\""
    );
    let bad = http()
        .get(format!("{}/userinfo", server.base))
        .bearer_auth("nope")
        .send()
        .unwrap();
    assert_eq!(bad.status(), 401);
    assert!(
        bad.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
}

#[test]
fn a_client_may_ask_for_eddsa_id_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let app = register_app(
        &server,
        json!({"redirect_uris": [REDIRECT], "id_token_signed_response_alg": "EdDSA"}),
    );
    let tokens = ok(redeem(
        &server,
        &app,
        &code_for(&server, &app, "openid profile"),
    ));
    let header = jsonwebtoken::decode_header(tokens["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    let seen = ok(post_as(
        &server,
        &app,
        "/introspect",
        &[("token", tokens["access_token"].as_str().unwrap())],
    ));
    let login = seen["sub"].as_str().expect("a user's token names the user");
    for claim in ["username", "name", "preferred_username"] {
        assert_eq!(seen[claim], login, "profile scope: {claim}");
    }
    assert!(seen.get("email").is_none(), "no email scope: {seen}");
    assert_eq!(seen["token_type"], "Bearer");
}

#[test]
fn public_client_code_flow_needs_pkce() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let app = code_client(&server, true);
    assert!(app.secret.is_none());
    let code = code_for(&server, &app, "openid");
    let tokens = ok(redeem(&server, &app, &code));
    assert!(tokens["access_token"].is_string());
    let params = redirect_params(authorize(
        &server,
        &[
            ("response_type", "code"),
            ("client_id", &app.id),
            ("redirect_uri", REDIRECT),
            ("state", "s1"),
        ],
    ));
    assert_eq!(param(&params, "error"), Some("invalid_request"));
    assert_eq!(param(&params, "state"), Some("s1"));
    assert!(param(&params, "code").is_none());
}

#[test]
fn code_replay_is_refused_and_revokes_every_token_of_the_first_redemption() {
    // RFC 6749 §4.1.2: the code may be used once; a second use revokes what the first got.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let app = code_client(&server, false);
    let code = code_for(&server, &app, "openid");
    let first = ok(redeem(&server, &app, &code));
    let access = first["access_token"].as_str().unwrap();
    assert!(active(&server, &app, access));
    assert_eq!(error_code(redeem(&server, &app, &code)), "invalid_grant");
    assert!(
        !active(&server, &app, access),
        "the replay revoked the first access token"
    );
    let refresh = first["refresh_token"].as_str().unwrap();
    let again = token(
        &server,
        &app,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    );
    assert_eq!(error_code(again), "invalid_grant");
    server.stop();
    let revoked = export(dir.path(), &["--type", "grant_revoked"]);
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["payload"]["reason"], "code_replay");
}

#[test]
fn refresh_tokens_rotate_and_a_reused_one_revokes_the_grant() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let app = code_client(&server, false);
    let first = ok(redeem(
        &server,
        &app,
        &code_for(&server, &app, "openid offline_access"),
    ));
    let r1 = first["refresh_token"].as_str().unwrap();
    let second = ok(token(
        &server,
        &app,
        &[("grant_type", "refresh_token"), ("refresh_token", r1)],
    ));
    let r2 = second["refresh_token"].as_str().unwrap();
    assert_ne!(r1, r2);
    assert!(second["id_token"].is_string());
    let a2 = second["access_token"].as_str().unwrap();
    assert!(active(&server, &app, a2));
    let narrowed = token(
        &server,
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", r2),
            ("scope", "admin"),
        ],
    );
    assert_eq!(error_code(narrowed), "invalid_scope");

    // r1 again: reuse. The whole family is revoked, r2 included.
    let reuse = token(
        &server,
        &app,
        &[("grant_type", "refresh_token"), ("refresh_token", r1)],
    );
    assert_eq!(error_code(reuse), "invalid_grant");
    assert!(!active(&server, &app, a2));
    let after = token(
        &server,
        &app,
        &[("grant_type", "refresh_token"), ("refresh_token", r2)],
    );
    assert_eq!(error_code(after), "invalid_grant");
}

#[test]
fn bad_code_redemptions_are_invalid_grant_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let app = code_client(&server, false);
    let other = code_client(&server, false);
    let code = code_for(&server, &app, "openid");
    let cases = [
        (
            "wrong verifier",
            token(
                &server,
                &app,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", &"b".repeat(43)),
                ],
            ),
        ),
        (
            "missing verifier",
            token(
                &server,
                &app,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT),
                ],
            ),
        ),
        (
            "other redirect",
            token(
                &server,
                &app,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", "http://127.0.0.1:9/cb"),
                    ("code_verifier", VERIFIER),
                ],
            ),
        ),
        ("other client", redeem(&server, &other, &code)),
        (
            "made-up code",
            redeem(&server, &app, "00000000000000000000000000000000.nope"),
        ),
        ("not even a code", redeem(&server, &app, "garbage")),
    ];
    for (what, response) in cases {
        assert_eq!(error_code(response), "invalid_grant", "{what}");
    }
    assert!(
        ok(redeem(&server, &app, &code))["access_token"].is_string(),
        "the code survived the failures"
    );
    server.stop();
    assert_eq!(
        export(dir.path(), &["--type", "request_denied"]).len(),
        5,
        "each refusal by the session is recorded"
    );
}

#[test]
fn bad_authorization_requests_get_a_page_or_a_redirect_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let app = code_client(&server, false);
    let challenge = s256_challenge(VERIFIER);
    let head = log_head(&server);
    let pages: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "unknown client",
            vec![
                ("response_type", "code"),
                ("client_id", "nobody"),
                ("redirect_uri", REDIRECT),
            ],
        ),
        (
            "no client",
            vec![("response_type", "code"), ("redirect_uri", REDIRECT)],
        ),
        (
            "missing redirect",
            vec![("response_type", "code"), ("client_id", &app.id)],
        ),
        (
            "unregistered redirect",
            vec![
                ("response_type", "code"),
                ("client_id", &app.id),
                ("redirect_uri", "http://127.0.0.1:9/evil"),
            ],
        ),
        (
            "duplicated parameter",
            vec![
                ("client_id", &app.id),
                ("client_id", &app.id),
                ("redirect_uri", REDIRECT),
            ],
        ),
    ];
    for (what, params) in pages {
        let response = authorize(&server, &params);
        assert_eq!(response.status(), 400, "{what}");
        assert!(
            response.headers().get("location").is_none(),
            "{what}: never redirect"
        );
        assert!(
            response.text().unwrap().contains("Authorization failed"),
            "{what}"
        );
    }
    let base = vec![
        ("client_id", app.id.as_str()),
        ("redirect_uri", REDIRECT),
        ("state", "st"),
    ];
    let with = |extra: &[(&'static str, &str)]| {
        let mut params = base.clone();
        params.extend_from_slice(extra);
        params
            .into_iter()
            .map(|(k, v)| (k, v.to_owned()))
            .collect::<Vec<_>>()
    };
    let redirects = vec![
        (
            "token response type",
            with(&[("response_type", "token")]),
            "unsupported_response_type",
        ),
        ("no response type", with(&[]), "invalid_request"),
        (
            "plain PKCE",
            with(&[
                ("response_type", "code"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "plain"),
            ]),
            "invalid_request",
        ),
        (
            "PKCE without method",
            with(&[("response_type", "code"), ("code_challenge", &challenge)]),
            "invalid_request",
        ),
        (
            "malformed challenge",
            with(&[
                ("response_type", "code"),
                ("code_challenge", "short"),
                ("code_challenge_method", "S256"),
            ]),
            "invalid_request",
        ),
        (
            "relative resource",
            with(&[("response_type", "code"), ("resource", "/mcp")]),
            "invalid_target",
        ),
    ];
    for (what, params, code) in redirects {
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let redirect = redirect_params(authorize(&server, &params));
        assert_eq!(param(&redirect, "error"), Some(code), "{what}");
        assert_eq!(param(&redirect, "state"), Some("st"), "{what}");
        assert!(param(&redirect, "error_description").is_some(), "{what}");
    }
    assert_eq!(
        log_head(&server),
        head,
        "no refused authorization wrote to the log"
    );
}

#[test]
fn authorization_and_userinfo_also_answer_post() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let app = code_client(&server, false);
    let challenge = s256_challenge(VERIFIER);
    let response = http()
        .post(format!("{}/authorize", server.base))
        .form(&[
            ("response_type", "code"),
            ("client_id", app.id.as_str()),
            ("redirect_uri", REDIRECT),
            ("scope", "openid"),
            ("state", "p"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .unwrap();
    let params = redirect_params(response);
    assert_eq!(param(&params, "state"), Some("p"));
    let code = param(&params, "code").unwrap().to_owned();
    let tokens = ok(redeem(&server, &app, &code));
    let info = http()
        .post(format!("{}/userinfo", server.base))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .unwrap();
    assert!(ok(info)["sub"].is_string());
    let put = http()
        .put(format!("{}/authorize", server.base))
        .send()
        .unwrap();
    assert_eq!(put.status(), 405);
}

#[test]
fn a_login_without_a_scope_is_an_openid_login() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let app = code_client(&server, false);
    let challenge = s256_challenge(VERIFIER);
    let params = redirect_params(authorize(
        &server,
        &[
            ("response_type", "code"),
            ("client_id", &app.id),
            ("redirect_uri", REDIRECT),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    ));
    let code = param(&params, "code").expect("a code");
    let tokens = ok(redeem(&server, &app, code));
    assert_eq!(tokens["scope"], "openid");
    assert!(tokens["id_token"].is_string());
}
