//! The tailscale identity over a real unix socket: users known by tailscaled's WhoIs, the
//! `X-Forwarded-For` of `tailscale serve`, tagged nodes and strangers refused, capability
//! rules from the policy (DCR, admin, exchange audiences, extra claims), and Funnel.

use super::support::{App, Server, export, http, post_as};
use super::tailscaled::{Peer, Tailscaled};
use serde_json::{Value, json};

const ALICE: &str = "100.64.0.1";
const BOB: &str = "100.64.0.2";
const TAGGED: &str = "100.64.0.3";
const MALLORY: &str = "100.64.0.4";
const CAROL: &str = "100.64.0.5";
const GATEWAY: &str = "http://localhost:8003";
const SERVER: &str = "http://localhost:8001";
const REDIRECT: &str = "http://127.0.0.1:9/cb";
const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";
const FUNNEL: &str = "Tailscale-Funnel-Request";

fn peers() -> Vec<Peer> {
    vec![
        Peer {
            ip: ALICE,
            login: "alice@example.com",
            display_name: "Alice Example",
            host: "alice-laptop",
            tags: &[],
            rules: json!([
                {"users": ["*"], "resources": [SERVER], "allow_dcr": true,
                 "extraClaims": {"groups": ["eng"], "team": "core"}, "includeInUserInfo": true},
                {"users": ["alice@example.com"], "resources": [GATEWAY],
                 "extraClaims": {"groups": ["admins", "eng"], "team": "other", "level": 3}}
            ]),
        },
        Peer {
            ip: BOB,
            login: "bob@example.com",
            display_name: "Bob",
            host: "bob-desktop",
            tags: &[],
            rules: json!([
                {"users": ["bob@example.com"], "resources": [GATEWAY]},
                {"users": ["carol@example.com"], "resources": ["*"]}
            ]),
        },
        Peer {
            ip: TAGGED,
            login: "tagged-devices",
            display_name: "tagged devices",
            host: "ci-runner",
            tags: &["tag:ci"],
            rules: json!([{"users": ["*"], "resources": ["*"], "allow_dcr": true}]),
        },
        Peer {
            ip: MALLORY,
            login: "mallory@example.com",
            display_name: "Mallory",
            host: "mallory-pc",
            tags: &[],
            rules: json!([{"users": ["*"], "extraClaims": {"email": "ceo@example.com"}}]),
        },
        Peer {
            ip: CAROL,
            login: "carol@example.com",
            display_name: "Carol",
            host: "carol-mac",
            tags: &[],
            rules: json!([{"users": ["*"], "allow_admin_ui": true}]),
        },
    ]
}

/// A warrant in tailscale mode in front of a LocalAPI double.
struct Tailnet {
    tailscaled: Option<Tailscaled>,
    server: Server,
    dir: tempfile::TempDir,
}

fn start(flags: &[&str]) -> Tailnet {
    let tailscaled = Tailscaled::start(&peers());
    let dir = tempfile::tempdir().unwrap();
    let socket = tailscaled.socket.to_str().unwrap().to_owned();
    let mut all = vec!["--identity", "tailscale", "--tailscaled-socket", &socket];
    all.extend_from_slice(flags);
    let server = Server::start_with(&dir.path().join("data"), &all);
    Tailnet {
        tailscaled: Some(tailscaled),
        server,
        dir,
    }
}

impl Tailnet {
    /// Every `addr` warrant asked tailscaled about.
    fn asked(&self) -> Vec<String> {
        self.tailscaled.as_ref().unwrap().asked()
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    /// `POST /register` as if `tailscale serve` forwarded it from `peer`.
    fn register(&self, peer: &str, metadata: Value) -> reqwest::blocking::Response {
        http()
            .post(format!("{}/register", self.server.base))
            .header("X-Forwarded-For", peer)
            .json(&metadata)
            .send()
            .unwrap()
    }

    fn register_app(&self, peer: &str, metadata: Value) -> App {
        let response = self.register(peer, metadata);
        assert_eq!(response.status(), 201, "{:?}", response.text());
        let body: Value = response.json().unwrap();
        App {
            id: body["client_id"].as_str().unwrap().into(),
            secret: body["client_secret"].as_str().map(str::to_owned),
        }
    }

    /// `GET /authorize` for `app` with `headers` (the forwarding and funnel headers).
    fn authorize(
        &self,
        app: &App,
        headers: &[(&str, &str)],
        resource: &str,
    ) -> reqwest::blocking::Response {
        let url = url::Url::parse_with_params(
            &format!("{}/authorize", self.server.base),
            &[
                ("response_type", "code"),
                ("client_id", &app.id),
                ("redirect_uri", REDIRECT),
                ("scope", "openid profile offline_access"),
                ("state", "s1"),
                ("resource", resource),
            ],
        )
        .unwrap();
        let mut request = http().get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().unwrap()
    }

    /// Logs `peer` in to `app`; returns the token response.
    fn login(&self, app: &App, peer: &str, resource: &str) -> Value {
        let code = redirect_query(&self.authorize(app, &[("X-Forwarded-For", peer)], resource))
            .into_iter()
            .find(|(k, _)| k == "code")
            .expect("a code")
            .1;
        let response = post_as(
            &self.server,
            app,
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
            ],
        );
        assert_eq!(response.status(), 200);
        response.json().unwrap()
    }

    fn events_of_type(&self, kind: &str) -> Vec<Value> {
        export(&self.data(), &["--type", kind])
    }
}

/// The query of a redirect response's `Location`.
fn redirect_query(response: &reqwest::blocking::Response) -> Vec<(String, String)> {
    assert_eq!(response.status(), 302, "not a redirect");
    let location = response.headers()["location"].to_str().unwrap();
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn get(query: &[(String, String)], name: &str) -> Option<String> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

fn claims(token: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode::<Value>(token)
        .unwrap()
        .claims
}

fn code_flow_client(tailnet: &Tailnet) -> App {
    tailnet.register_app(
        ALICE,
        json!({"redirect_uris": [REDIRECT], "grant_types": ["authorization_code", "refresh_token"]}),
    )
}

#[test]
fn a_tailnet_user_logs_in_with_their_node_claims_and_merged_extra_claims() {
    let tailnet = start(&[]);
    let app = code_flow_client(&tailnet);
    // Behind `tailscale serve`: the last non-empty value of the last header is the peer.
    let response = tailnet.authorize(
        &app,
        &[("X-Forwarded-For", &format!("203.0.113.7, {ALICE}, "))],
        SERVER,
    );
    let query = redirect_query(&response);
    let code = get(&query, "code").expect("a code");
    assert_eq!(get(&query, "state").as_deref(), Some("s1"));
    let tokens: Value = post_as(
        &tailnet.server,
        &app,
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .json()
    .unwrap();
    let id = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["sub"], "alice@example.com");
    assert_eq!(id["email"], "alice@example.com");
    assert_eq!(id["name"], "Alice Example");
    assert_eq!(id["picture"], "https://pics.example/alice-laptop.png");
    assert_eq!(id["node"], "alice-laptop.tail1234.ts.net.");
    assert_eq!(id["tailnet"], "tail1234.ts.net");
    assert_eq!(id["nid"], 1000);
    assert_eq!(id["uid"], 500);
    assert_eq!(id["addresses"][0], "100.64.0.1/32");
    // Extra claims: the first scalar wins, arrays are unioned in a stable order.
    assert_eq!(id["team"], "core");
    assert_eq!(id["groups"], json!(["eng", "admins"]));
    assert_eq!(id["level"], 3);
    let userinfo: Value = http()
        .get(format!("{}/userinfo", tailnet.server.base))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(userinfo["sub"], "alice@example.com");
    assert_eq!(
        userinfo["groups"],
        json!(["eng"]),
        "includeInUserInfo rules only"
    );
    assert!(userinfo.get("level").is_none());
    assert_eq!(userinfo["node"], "alice-laptop.tail1234.ts.net.");
    // warrant asked tailscaled about the forwarded peer, not about loopback.
    assert!(tailnet.asked().iter().all(|a| a == ALICE));
    // The rules in force at login are recorded with the grant.
    let created = tailnet.events_of_type("grant_created");
    let rules = &created[0]["payload"]["profile"]["rules"];
    assert_eq!(rules.as_array().unwrap().len(), 2, "{created:?}");
    assert_eq!(rules[1]["resources"], json!([GATEWAY]));
}

#[test]
fn tagged_nodes_strangers_and_bare_loopback_cannot_log_in() {
    let tailnet = start(&[]);
    let app = code_flow_client(&tailnet);

    let tagged = redirect_query(&tailnet.authorize(&app, &[("X-Forwarded-For", TAGGED)], SERVER));
    assert_eq!(get(&tagged, "error").as_deref(), Some("access_denied"));
    assert!(
        get(&tagged, "error_description")
            .unwrap()
            .contains("tagged node")
    );
    assert!(get(&tagged, "code").is_none());
    // Of two headers, the last one counts: here it names the tagged node.
    let url = format!(
        "{}/authorize?response_type=code&client_id={}&redirect_uri={REDIRECT}&resource={SERVER}",
        tailnet.server.base, app.id
    );
    let two = http()
        .get(&url)
        .header("X-Forwarded-For", ALICE)
        .header("X-Forwarded-For", TAGGED)
        .send()
        .unwrap();
    assert_eq!(
        get(&redirect_query(&two), "error").as_deref(),
        Some("access_denied")
    );

    for headers in [
        vec![],                                      // loopback, unforwarded
        vec![("X-Forwarded-For", "100.64.0.99")],    // not in the tailnet
        vec![("X-Forwarded-For", "not-an-address")], // not an IP
    ] {
        let page = tailnet.authorize(&app, &headers, SERVER);
        assert_eq!(page.status(), 403, "{headers:?}");
        assert!(page.headers().get("location").is_none());
        let body = page.text().unwrap();
        assert!(
            body.contains("tailscaled does not know") || body.contains("not an IP"),
            "{body}"
        );
    }
    // Loopback was put to tailscaled like any peer, and tailscaled did not know it.
    assert!(tailnet.asked().iter().any(|a| a.starts_with("127.0.0.1:")));
    assert!(
        tailnet
            .events_of_type("authorization_code_issued")
            .is_empty()
    );
    let denials = tailnet.events_of_type("request_denied");
    assert_eq!(denials.len(), 5, "{denials:?}");
    assert!(
        denials
            .iter()
            .all(|d| d["payload"]["request"] == "authorization")
    );
}

#[test]
fn registration_needs_allow_dcr() {
    let tailnet = start(&[]);
    let metadata = json!({"redirect_uris": [REDIRECT]});
    let before = tailnet.events_of_type("client_registered").len();
    for peer in [BOB, TAGGED, "127.0.0.1"] {
        let response = tailnet.register(peer, metadata.clone());
        assert_eq!(response.status(), 403, "{peer}");
        let body: Value = response.json().unwrap();
        assert_eq!(body["error"], "access_denied");
    }
    let denied: Value = tailnet.register(BOB, metadata.clone()).json().unwrap();
    assert!(
        denied["error_description"]
            .as_str()
            .unwrap()
            .contains("allow_dcr")
    );
    assert_eq!(tailnet.events_of_type("client_registered").len(), before);
    let denials = tailnet.events_of_type("request_denied");
    assert!(
        denials
            .iter()
            .any(|d| d["payload"]["request"] == "registration"
                && d["payload"]["subject"] == "bob@example.com")
    );
    // Alice holds allow_dcr; the registration records who made it.
    tailnet.register_app(ALICE, metadata);
    let registered = tailnet.events_of_type("client_registered");
    assert_eq!(registered.len(), before + 1);
    assert_eq!(
        registered.last().unwrap()["payload"]["registered_by"],
        "alice@example.com"
    );
}

#[test]
fn exchanges_follow_the_users_and_resources_recorded_at_login() {
    let tailnet = start(&["--enable-sts"]);
    let app = code_flow_client(&tailnet);
    let gateway = tailnet.register_app(
        ALICE,
        json!({"grant_types": [EXCHANGE], "token_endpoint_auth_method": "client_secret_post"}),
    );
    let exchange = |subject: &str, audience: &str| {
        http()
            .post(format!("{}/token", tailnet.server.base))
            .form(&[
                ("grant_type", EXCHANGE),
                ("client_id", &gateway.id),
                ("client_secret", gateway.secret.as_deref().unwrap()),
                ("subject_token", subject),
                ("subject_token_type", ACCESS),
                ("audience", audience),
            ])
            .send()
            .unwrap()
    };
    let alice = tailnet.login(&app, ALICE, GATEWAY);
    let alice_token = alice["access_token"].as_str().unwrap();
    let allowed = exchange(alice_token, SERVER);
    assert_eq!(allowed.status(), 200);
    let allowed: Value = allowed.json().unwrap();
    assert_eq!(
        claims(allowed["access_token"].as_str().unwrap())["aud"],
        json!([SERVER])
    );

    // Bob's rules give him the gateway only; the rule naming carol does not apply to him.
    let bob = tailnet.login(&app, BOB, GATEWAY);
    let bob_token = bob["access_token"].as_str().unwrap();
    let refused = exchange(bob_token, SERVER);
    assert_eq!(refused.status(), 403);
    let refused: Value = refused.json().unwrap();
    assert_eq!(refused["error"], "access_denied");
    assert_eq!(exchange(bob_token, GATEWAY).status(), 200);
    // Bob cannot even ask for the server at authorization.
    let denied = redirect_query(&tailnet.authorize(&app, &[("X-Forwarded-For", BOB)], SERVER));
    assert_eq!(get(&denied, "error").as_deref(), Some("invalid_target"));

    let exchanged = tailnet.events_of_type("token_exchanged");
    assert_eq!(exchanged.len(), 2);
    let denials = tailnet.events_of_type("request_denied");
    assert!(
        denials.iter().any(|d| d["payload"]["request"] == "exchange"
            && d["payload"]["subject"] == "bob@example.com")
    );
}

#[test]
fn extra_claims_that_would_overwrite_standard_claims_refuse_the_login() {
    let tailnet = start(&[]);
    let app = code_flow_client(&tailnet);
    let query = redirect_query(&tailnet.authorize(&app, &[("X-Forwarded-For", MALLORY)], SERVER));
    assert_eq!(get(&query, "error").as_deref(), Some("access_denied"));
    assert!(
        get(&query, "error_description")
            .unwrap()
            .contains("must not set the standard claim `email`")
    );
    assert!(
        tailnet
            .events_of_type("authorization_code_issued")
            .is_empty()
    );
}

#[test]
fn the_admin_api_needs_allow_admin_ui() {
    let tailnet = start(&[]);
    let base = &tailnet.server.base;
    let list = |peer: &str| {
        http()
            .get(format!("{base}/clients/"))
            .header("X-Forwarded-For", peer)
            .send()
            .unwrap()
    };
    assert_eq!(list(ALICE).status(), 403);
    assert_eq!(
        http()
            .post(format!("{base}/clients/new"))
            .header("X-Forwarded-For", ALICE)
            .form(&[("name", "x"), ("redirect_uri", REDIRECT)])
            .send()
            .unwrap()
            .status(),
        403
    );
    // Carol's browser, sent there by another site's form, is refused.
    let cross_site = http()
        .post(format!("{base}/clients/new"))
        .header("X-Forwarded-For", CAROL)
        .header("Origin", "https://evil.example")
        .form(&[("name", "x"), ("redirect_uri", REDIRECT)])
        .send()
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    let created = http()
        .post(format!("{base}/clients/new"))
        .header("X-Forwarded-For", CAROL)
        .header("Origin", base.as_str()) // the admin page's own form
        .form(&[
            ("name", "Proxmox"),
            (
                "redirect_uri",
                "https://pve.example/cb\nhttps://pve2.example/cb",
            ),
            ("funnel", "on"),
        ])
        .send()
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().unwrap();
    let id = created["client_id"].as_str().unwrap();
    assert_eq!(created["redirect_uris"].as_array().unwrap().len(), 2);
    assert_eq!(created["funnel"], true);
    assert_eq!(created["registered_by"], "carol@example.com");
    let listed: Value = list(CAROL).json().unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(listed[0].get("client_secret").is_none());
    let page = http()
        .get(format!("{base}/"))
        .header("X-Forwarded-For", CAROL)
        .send()
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().unwrap().contains("Proxmox"));
    let delete = |peer: &str| {
        http()
            .delete(format!("{base}/clients/{id}"))
            .header("X-Forwarded-For", peer)
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(delete(BOB), 403);
    assert_eq!(delete(CAROL), 204);
    assert!(
        list(CAROL)
            .json::<Value>()
            .unwrap()
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(tailnet.events_of_type("client_deleted").len(), 1);
}

#[test]
fn funnel_requests_reach_only_public_endpoints_and_funnel_clients() {
    let tailnet = start(&["--funnel"]);
    let base = &tailnet.server.base;
    let funnel = [(FUNNEL, "?1")];
    let app = code_flow_client(&tailnet);
    // What a public relying party may not use.
    let authorize = tailnet.authorize(&app, &funnel, SERVER);
    assert_eq!(authorize.status(), 401);
    assert_eq!(authorize.json::<Value>().unwrap()["error"], "access_denied");
    let register = http()
        .post(format!("{base}/register"))
        .header(FUNNEL, "?1")
        .header("X-Forwarded-For", ALICE)
        .json(&json!({"redirect_uris": [REDIRECT]}))
        .send()
        .unwrap();
    assert_eq!(register.status(), 401);
    for path in ["/clients/", "/"] {
        let admin = http()
            .get(format!("{base}{path}"))
            .header(FUNNEL, "yes")
            .header("X-Forwarded-For", CAROL)
            .send()
            .unwrap();
        assert_eq!(admin.status(), 401, "{path}");
    }
    // Discovery through Funnel has no registration endpoint.
    let document = |headers: &[(&str, &str)]| -> Value {
        let mut request = http().get(format!("{base}/.well-known/openid-configuration"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().unwrap().json().unwrap()
    };
    assert!(document(&funnel).get("registration_endpoint").is_none());
    assert!(document(&[]).get("registration_endpoint").is_some());
    // Only funnel clients may be used through Funnel.
    let make = |funnel: &str| -> App {
        let created: Value = http()
            .post(format!("{base}/clients/new"))
            .header("X-Forwarded-For", CAROL)
            .form(&[
                ("name", "rp"),
                ("redirect_uri", REDIRECT),
                ("funnel", funnel),
            ])
            .send()
            .unwrap()
            .json()
            .unwrap();
        App {
            id: created["client_id"].as_str().unwrap().into(),
            secret: created["client_secret"].as_str().map(str::to_owned),
        }
    };
    let public_rp = make("on");
    let tailnet_rp = make("off");
    let introspect = |app: &App| {
        http()
            .post(format!("{base}/introspect"))
            .header(FUNNEL, "?1")
            .basic_auth(&app.id, app.secret.as_ref())
            .form(&[("token", "unknown")])
            .send()
            .unwrap()
    };
    assert_eq!(introspect(&public_rp).status(), 200);
    let refused = introspect(&tailnet_rp);
    assert_eq!(refused.status(), 401);
    assert!(refused.text().unwrap().contains("not a funnel client"));
    // The same client is fine from inside the tailnet.
    assert_eq!(
        post_as(
            &tailnet.server,
            &tailnet_rp,
            "/introspect",
            &[("token", "x")]
        )
        .status(),
        200
    );
}

#[test]
fn without_the_funnel_flag_funnel_requests_are_refused_everywhere() {
    let tailnet = start(&[]);
    let response = http()
        .get(format!("{}/.well-known/jwks.json", tailnet.server.base))
        .header(FUNNEL, "?1")
        .send()
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.json::<Value>().unwrap()["error"], "access_denied");
    let inside = http()
        .get(format!("{}/.well-known/jwks.json", tailnet.server.base))
        .send()
        .unwrap();
    assert_eq!(inside.status(), 200);
}

#[test]
fn when_tailscaled_cannot_be_asked_the_browser_gets_a_clear_page() {
    let mut tailnet = start(&[]);
    let app = code_flow_client(&tailnet);
    drop(tailnet.tailscaled.take()); // its socket goes with it
    let page = tailnet.authorize(&app, &[("X-Forwarded-For", ALICE)], SERVER);
    assert_eq!(page.status(), 503);
    let body = page.text().unwrap();
    assert!(body.contains("cannot reach tailscaled"), "{body}");
    assert!(
        tailnet
            .events_of_type("authorization_code_issued")
            .is_empty()
    );
}
