//! Client ID Metadata Documents (the MCP authorization spec's preferred way for a client to
//! identify itself): a `client_id` that is an https URL (or http on loopback) names a JSON
//! document describing the client. warrant fetches it with SSRF guards (no redirects, a
//! time and a size limit), checks that it names itself, caches it for as long as its
//! `Cache-Control` allows, and records it like a registration (an update when it changes).

use super::error::OAuthError;
use super::register::RegistrationRequest;
use crate::actors::client::{ClientCommand, ClientError, is_loopback};
use crate::actors::{CommandContext, CommandError};
use crate::clock::Timestamp;
use crate::server::Warrant;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use url::Url;

/// Largest document accepted.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;
/// How long a fetch may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a document is trusted when it says nothing about caching.
const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// The longest a document is trusted whatever it says.
const MAX_TTL: Duration = Duration::from_secs(86_400);
/// Longest client id URL (its stream name must stay under 256 bytes).
const MAX_URL: usize = 240;

/// When each fetched document must be fetched again.
#[derive(Default)]
pub struct DocumentCache {
    fresh_until: Mutex<HashMap<String, Instant>>,
}

/// An HTTP client for fetching documents: no redirects, a timeout.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(FETCH_TIMEOUT)
        .user_agent(concat!("warrant/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client builds")
}

/// Whether `client_id` names a metadata document: an https URL with a path, or http on a
/// loopback address; no fragment, no credentials.
pub fn is_document_id(client_id: &str) -> bool {
    let Ok(url) = Url::parse(client_id) else {
        return false;
    };
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && is_loopback(&url));
    scheme_ok
        && client_id.len() <= MAX_URL
        && url.path() != "/"
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none()
}

fn refused(reason: impl std::fmt::Display) -> OAuthError {
    OAuthError::InvalidClient(format!("client metadata document: {reason}"))
}

/// Makes sure the client a metadata document describes is registered and current.
pub async fn resolve(warrant: &Warrant, client_id: &str) -> Result<(), OAuthError> {
    let fresh = warrant
        .documents
        .fresh_until
        .lock()
        .unwrap()
        .get(client_id)
        .is_some_and(|until| Instant::now() < *until);
    if fresh && warrant.models.read().clients.get(client_id).is_some() {
        return Ok(());
    }
    let (request, ttl) = fetch(&warrant.http, client_id).await?;
    if request.client_id.as_deref() != Some(client_id) {
        return Err(refused("its client_id is not the URL it was fetched from"));
    }
    if request.client_secret.is_some() {
        return Err(refused("a metadata document must not hold a secret"));
    }
    let metadata = request.metadata_with_default_auth("none");
    if metadata.token_endpoint_auth_method != "none" {
        return Err(refused(
            "only public clients (token_endpoint_auth_method none) are supported",
        ));
    }
    let known = warrant.models.read().clients.get(client_id).is_some();
    // An update that changes nothing records nothing.
    let command = if known {
        ClientCommand::Update { metadata }
    } else {
        ClientCommand::Register {
            metadata,
            secret_hash: None,
            registered_by: None,
            registration_token_hash: None,
            funnel: false,
        }
    };
    let committed = warrant
        .actors
        .clients
        .execute(client_id, command, CommandContext::at(Timestamp::now()))
        .await
        .map_err(|err| match err {
            CommandError::Refused(ClientError::InvalidRedirectUri(d)) => refused(d),
            CommandError::Refused(other) => refused(other),
            CommandError::Store(err) => err.into(),
        })?;
    if let Some(position) = committed.last_position {
        warrant.models.wait_for(position).await;
    }
    warrant
        .documents
        .fresh_until
        .lock()
        .unwrap()
        .insert(client_id.to_owned(), Instant::now() + ttl);
    Ok(())
}

/// GETs the document: 200 only, at most [`MAX_DOCUMENT_BYTES`], JSON; returns it and how
/// long it may be cached.
async fn fetch(
    http: &reqwest::Client,
    url: &str,
) -> Result<(RegistrationRequest, Duration), OAuthError> {
    let mut response = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| refused(format!("cannot fetch {url}: {e}")))?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(refused(format!(
            "{url} answered {} (redirects are not followed)",
            response.status()
        )));
    }
    let ttl = cache_lifetime(response.headers().get(reqwest::header::CACHE_CONTROL));
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| refused(format!("reading {url}: {e}")))?
    {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(refused(format!(
                "{url} is larger than {MAX_DOCUMENT_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    let request = serde_json::from_slice(&body).map_err(|e| refused(format!("{url}: {e}")))?;
    Ok((request, ttl))
}

/// How long `Cache-Control` lets a document be reused: `max-age`, capped; nothing for
/// `no-store`/`no-cache`; a default when silent.
fn cache_lifetime(header: Option<&reqwest::header::HeaderValue>) -> Duration {
    let Some(value) = header.and_then(|v| v.to_str().ok()) else {
        return DEFAULT_TTL;
    };
    let directives: Vec<String> = value
        .split(',')
        .map(|d| d.trim().to_ascii_lowercase())
        .collect();
    if directives
        .iter()
        .any(|d| d == "no-store" || d == "no-cache")
    {
        return Duration::ZERO;
    }
    directives
        .iter()
        .find_map(|d| d.strip_prefix("max-age=")?.parse::<u64>().ok())
        .map_or(DEFAULT_TTL, |seconds| {
            Duration::from_secs(seconds).min(MAX_TTL)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_ids_are_https_urls_or_loopback_http() {
        assert!(is_document_id("https://app.example/oauth/client.json"));
        assert!(is_document_id("http://127.0.0.1:8080/client.json"));
        assert!(is_document_id("http://localhost/c"));
        for not in [
            "https://app.example/",
            "https://app.example",
            "http://app.example/c.json",
            "https://u:p@app.example/c",
            "https://app.example/c#f",
            "ftp://app.example/c",
            "c0ffee",
            "file:///etc/passwd",
        ] {
            assert!(!is_document_id(not), "{not}");
        }
        assert!(!is_document_id(&format!(
            "https://app.example/{}",
            "a".repeat(300)
        )));
    }

    #[test]
    fn cache_control_sets_the_lifetime() {
        let header = |v: &'static str| reqwest::header::HeaderValue::from_static(v);
        assert_eq!(cache_lifetime(None), DEFAULT_TTL);
        assert_eq!(
            cache_lifetime(Some(&header("public, max-age=60"))),
            Duration::from_secs(60)
        );
        assert_eq!(cache_lifetime(Some(&header("max-age=99999999"))), MAX_TTL);
        assert_eq!(cache_lifetime(Some(&header("no-store"))), Duration::ZERO);
    }
}
