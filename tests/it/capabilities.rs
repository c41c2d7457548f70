//! Capability rules from a grants file: extra claims in ID tokens and userinfo, `resource`
//! values at authorization, and a bad grants file stopping the start.

use super::support::{Server, http, post_as, register_app, text, warrant};
use serde_json::{Value, json};
use url::Url;
use warrant::actors::session::s256_challenge;

const REDIRECT: &str = "http://127.0.0.1:9/cb";

fn grants(dir: &std::path::Path, rules: Value) -> String {
    let path = dir.join("grants.json");
    std::fs::write(&path, json!({"grants": [{"src": ["*"], "dst": ["*"], "app": {"tailscale.com/cap/tsidp": rules}}]}).to_string()).unwrap();
    path.to_str().unwrap().to_owned()
}

fn authorize(server: &Server, client_id: &str, resource: &str) -> Vec<(String, String)> {
    let verifier = "v".repeat(43);
    let challenge = s256_challenge(&verifier);
    let url = Url::parse_with_params(
        &format!("{}/authorize", server.base),
        &[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("scope", "openid"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("resource", resource),
        ],
    )
    .unwrap();
    let response = http().get(url).send().unwrap();
    assert_eq!(response.status(), 302);
    let location = Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    location
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[test]
fn extra_claims_reach_id_tokens_and_userinfo_and_resources_follow_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let file = grants(
        dir.path(),
        json!([
            {"users": ["*"], "resources": ["https://mcp.example"], "extraClaims": {"groups": ["eng"], "team": "core"}, "includeInUserInfo": true, "allow_dcr": true},
            {"users": ["*"], "extraClaims": {"groups": ["ops", "eng"], "clearance": "low"}}
        ]),
    );
    let server = Server::start_with(&dir.path().join("data"), &["--grants", &file]);
    let app = register_app(&server, json!({"redirect_uris": [REDIRECT]}));

    let refused = authorize(&server, &app.id, "https://other.example");
    assert!(
        refused.contains(&("error".into(), "invalid_target".into())),
        "{refused:?}"
    );

    let granted = authorize(&server, &app.id, "https://mcp.example");
    let code = &granted.iter().find(|(k, _)| k == "code").expect("a code").1;
    let tokens: Value = post_as(
        &server,
        &app,
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &"v".repeat(43)),
        ],
    )
    .json()
    .unwrap();
    let id =
        jsonwebtoken::dangerous::insecure_decode::<Value>(tokens["id_token"].as_str().unwrap())
            .unwrap()
            .claims;
    assert_eq!(
        id["groups"],
        json!(["eng", "ops"]),
        "arrays unioned in stable order"
    );
    assert_eq!(id["team"], "core");
    assert_eq!(id["clearance"], "low");

    let info: Value = http()
        .get(format!("{}/userinfo", server.base))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        info["groups"],
        json!(["eng"]),
        "only rules with includeInUserInfo"
    );
    assert!(info.get("clearance").is_none());
    assert_eq!(info["username"], info["sub"]);
}

#[test]
fn a_bad_grants_file_stops_the_start_with_file_line_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    for (rules, reason) in [
        (
            "[{\"users\": [\"*\"],\n \"extraClaims\": {\"sub\": \"root\"}}]",
            "must not set the standard claim `sub`",
        ),
        ("[{\"users\": \"*\"}]", "invalid type"),
    ] {
        let path = dir.path().join("grants.json");
        std::fs::write(
            &path,
            format!("{{\"grants\": [{{\"app\": {{\"tailscale.com/cap/tsidp\": {rules}}}}}]}}"),
        )
        .unwrap();
        let output = warrant()
            .args(["serve", "--port", "0", "--grants"])
            .arg(&path)
            .arg("--dir")
            .arg(dir.path().join("data"))
            .output()
            .unwrap();
        let (_, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!("{}:", path.display())) && stderr.contains(reason),
            "{stderr}"
        );
    }
}

#[test]
fn the_body_limit_is_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--max-body-bytes", "2048"]);
    let app = register_app(&server, json!({"grant_types": ["client_credentials"]}));
    let big = "a".repeat(3000);
    let response = post_as(
        &server,
        &app,
        "/token",
        &[("grant_type", "client_credentials"), ("scope", &big)],
    );
    assert_eq!(response.status(), 413);
    assert_eq!(
        response.json::<Value>().unwrap()["error"],
        "invalid_request"
    );
}
