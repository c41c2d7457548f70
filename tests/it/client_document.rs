//! Client ID Metadata Documents over real sockets: a small HTTP server in the test serves
//! the documents; warrant fetches, checks, caches and records them.

use super::support::{Server, export, http, log_head};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use url::Url;
use warrant::actors::session::s256_challenge;

const REDIRECT: &str = "http://127.0.0.1:9/cb";
const VERIFIER: &str = "document-client-verifier-0123456789-0123456789";

/// A canned HTTP response.
#[derive(Clone)]
struct Canned {
    status: &'static str,
    headers: Vec<(&'static str, String)>,
    body: String,
}

/// An HTTP/1.1 server on loopback answering each path with its canned response.
struct Documents {
    base: String,
    routes: Arc<Mutex<HashMap<String, Canned>>>,
    hits: Arc<AtomicUsize>,
}

impl Documents {
    fn start() -> Documents {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let routes: Arc<Mutex<HashMap<String, Canned>>> = Arc::default();
        let hits = Arc::new(AtomicUsize::new(0));
        let (served, counted) = (routes.clone(), hits.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap() > 2 {
                    line.clear();
                }
                counted.fetch_add(1, Ordering::SeqCst);
                let path = request_line.split(' ').nth(1).unwrap_or("/").to_owned();
                let canned = served
                    .lock()
                    .unwrap()
                    .get(&path)
                    .cloned()
                    .unwrap_or(Canned {
                        status: "404 Not Found",
                        headers: vec![],
                        body: String::new(),
                    });
                let mut response = format!(
                    "HTTP/1.1 {}\r\ncontent-length: {}\r\nconnection: close\r\n",
                    canned.status,
                    canned.body.len()
                );
                for (name, value) in &canned.headers {
                    response.push_str(&format!("{name}: {value}\r\n"));
                }
                response.push_str("\r\n");
                response.push_str(&canned.body);
                let _ = stream.write_all(response.as_bytes());
            }
        });
        Documents { base, routes, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn serve(
        &self,
        path: &str,
        status: &'static str,
        headers: Vec<(&'static str, String)>,
        body: String,
    ) {
        self.routes.lock().unwrap().insert(
            path.to_owned(),
            Canned {
                status,
                headers,
                body,
            },
        );
    }

    fn document(&self, path: &str, cache: &str, members: Value) {
        let mut doc = json!({"client_id": self.url(path), "client_name": "Doc client",
                             "redirect_uris": [REDIRECT], "grant_types": ["authorization_code"],
                             "token_endpoint_auth_method": "none"});
        doc.as_object_mut()
            .unwrap()
            .extend(members.as_object().unwrap().clone());
        let headers = vec![
            ("content-type", "application/json".to_owned()),
            ("cache-control", cache.to_owned()),
        ];
        self.serve(path, "200 OK", headers, doc.to_string());
    }
}

fn authorize(server: &Server, client_id: &str, redirect: &str) -> reqwest::blocking::Response {
    let challenge = s256_challenge(VERIFIER);
    let url = Url::parse_with_params(
        &format!("{}/authorize", server.base),
        &[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap();
    http().get(url).send().unwrap()
}

fn code_of(response: reqwest::blocking::Response) -> String {
    assert_eq!(response.status(), 302, "{:?}", response.text());
    let location = Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned()
}

#[test]
fn a_metadata_document_client_logs_in_is_cached_and_recorded() {
    let docs = Documents::start();
    docs.document("/client.json", "max-age=60", json!({}));
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let doc: Value = http()
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            server.base
        ))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(doc["client_id_metadata_document_supported"], true);
    let client_id = docs.url("/client.json");

    let code = code_of(authorize(&server, &client_id, REDIRECT));
    code_of(authorize(&server, &client_id, REDIRECT));
    assert_eq!(
        docs.hits.load(Ordering::SeqCst),
        1,
        "fetched once, then cached for max-age"
    );
    let tokens = http()
        .post(format!("{}/token", server.base))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", &client_id),
        ])
        .send()
        .unwrap();
    assert_eq!(tokens.status(), 200);
    server.stop();
    let registered = export(dir.path(), &["--type", "client_registered"]);
    assert_eq!(registered.len(), 1);
    assert_eq!(registered[0]["payload"]["client_id"], client_id.as_str());
    assert_eq!(
        registered[0]["payload"]["metadata"]["client_name"],
        "Doc client"
    );
}

#[test]
fn a_changed_document_is_recorded_as_an_update() {
    let docs = Documents::start();
    docs.document("/client.json", "no-store", json!({}));
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client_id = docs.url("/client.json");
    code_of(authorize(&server, &client_id, REDIRECT));
    docs.document(
        "/client.json",
        "no-store",
        json!({"redirect_uris": ["http://127.0.0.1:9/moved"]}),
    );
    code_of(authorize(&server, &client_id, "http://127.0.0.1:9/moved"));
    let old = authorize(&server, &client_id, REDIRECT);
    assert_eq!(old.status(), 400, "the old redirect URI is gone");
    assert_eq!(
        docs.hits.load(Ordering::SeqCst),
        3,
        "no-store: fetched every time"
    );
    server.stop();
    assert_eq!(export(dir.path(), &["--type", "client_updated"]).len(), 1);
}

#[test]
fn bad_documents_get_an_error_page_and_record_nothing() {
    let docs = Documents::start();
    docs.document(
        "/wrong-id.json",
        "no-store",
        json!({"client_id": "https://someone.else/client.json"}),
    );
    docs.document(
        "/secret.json",
        "no-store",
        json!({"client_secret": "s3cret"}),
    );
    docs.document(
        "/confidential.json",
        "no-store",
        json!({"token_endpoint_auth_method": "client_secret_basic"}),
    );
    docs.document(
        "/bad-redirect.json",
        "no-store",
        json!({"redirect_uris": ["javascript:alert(1)"]}),
    );
    docs.document(
        "/huge.json",
        "no-store",
        json!({"client_name": "x".repeat(70 * 1024)}),
    );
    docs.serve(
        "/redirect.json",
        "302 Found",
        vec![("location", docs.url("/client.json"))],
        String::new(),
    );
    docs.serve("/not-json.json", "200 OK", vec![], "<html>".into());
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let head = log_head(&server);
    for (path, expect) in [
        ("/wrong-id.json", "client_id is not the URL"),
        ("/secret.json", "must not hold a secret"),
        ("/confidential.json", "only public clients"),
        ("/bad-redirect.json", "javascript:alert(1)"),
        ("/huge.json", "larger than"),
        ("/redirect.json", "302"),
        ("/not-json.json", "expected value"),
        ("/missing.json", "404"),
    ] {
        let response = authorize(&server, &docs.url(path), REDIRECT);
        assert_eq!(response.status(), 400, "{path}");
        assert!(
            response.headers().get("location").is_none(),
            "{path}: never redirect"
        );
        let page = response.text().unwrap();
        assert!(page.contains(expect), "{path}: {page}");
    }
    let plain_http = authorize(&server, "http://example.invalid/client.json", REDIRECT);
    assert_eq!(
        plain_http.status(),
        400,
        "non-loopback http is not a document id, so an unknown client"
    );
    // The document refused by the client rules (its redirect URI) is a recorded denial, as
    // a refused registration is; the others never reached them.
    assert_eq!(log_head(&server), head + 1);
    server.stop();
    let denials = export(dir.path(), &["--type", "request_denied"]);
    assert_eq!(denials.len(), 1);
    assert_eq!(denials[0]["payload"]["error"], "invalid_redirect_uri");
    assert!(export(dir.path(), &["--type", "client_registered"]).is_empty());
}
