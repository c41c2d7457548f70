//! The gateway's HTTP surface: its protected resource metadata, and every other request
//! checked, its token exchanged, and forwarded upstream.

use super::Gateway;
use crate::clock::Timestamp;
use crate::mcp::{AuthorityError, METADATA_PATH, challenge_header, resource_metadata};
use crate::secret::SecretHash;
use actix_web::http::header::{HeaderName, WWW_AUTHENTICATE};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde_json::json;

/// Mounts the gateway's routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route(METADATA_PATH, web::get().to(metadata))
        .route(
            &format!("{METADATA_PATH}/{{rest:.*}}"),
            web::get().to(metadata),
        )
        .default_service(web::to(forward));
}

/// `GET /.well-known/oauth-protected-resource`: the gateway's resource and warrant.
async fn metadata(gateway: web::Data<Gateway>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("access-control-allow-origin", "*"))
        .json(resource_metadata(
            &gateway.resource,
            &gateway.authority.issuer,
            "warrant MCP gateway",
        ))
}

/// A 401 that tells an MCP client where to discover everything (RFC 9728 §5.1).
fn challenge(gateway: &Gateway, error: Option<&str>) -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header((WWW_AUTHENTICATE, challenge_header(&gateway.resource, error)))
        .json(json!({"error": "invalid_token", "error_description": error.unwrap_or("a bearer token is required")}))
}

fn failure(status: u16, error: &str, description: String) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status).expect("a valid status");
    HttpResponse::build(status).json(json!({"error": error, "error_description": description}))
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1), and the ones the
/// gateway sets itself.
fn passes(name: &str) -> bool {
    !matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "authorization"
            | "content-length"
    )
}

/// Checks, exchanges and forwards one request.
async fn forward(
    gateway: web::Data<Gateway>,
    request: HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    let token = crate::http::bearer_token(&request);
    let Some(token) = token else {
        return challenge(&gateway, None);
    };
    let subject = SecretHash::of(token);
    let now = Timestamp::now();
    match gateway.authority.introspect(token).await {
        Ok(seen) if !seen.active() => {
            gateway.cache.forget(&subject);
            return challenge(&gateway, Some("the token is not active"));
        }
        Ok(seen) if !seen.addressed_to(&gateway.resource) => {
            return challenge(&gateway, Some("the token is not addressed to this gateway"));
        }
        Ok(_) => {}
        Err(err) => return failure(502, "temporarily_unavailable", err.to_string()),
    }
    let upstream_token = match gateway.cache.get(&subject, now) {
        Some(cached) => cached,
        None => match gateway.authority.exchange(token, &gateway.upstream).await {
            Ok(exchanged) => {
                let expires_at = now.unix_seconds() + exchanged.expires_in;
                gateway
                    .cache
                    .put(subject, exchanged.access_token.clone(), expires_at, now);
                exchanged.access_token
            }
            Err(AuthorityError::Refused(reason)) => {
                gateway.cache.forget(&subject);
                tracing::info!(%reason, "token exchange refused; request not forwarded");
                return failure(403, "access_denied", reason);
            }
            Err(err) => return failure(502, "temporarily_unavailable", err.to_string()),
        },
    };
    let body = match body.to_bytes_limited(gateway.max_body).await {
        Ok(Ok(body)) => body,
        Ok(Err(err)) => return failure(400, "invalid_request", err.to_string()),
        Err(_) => {
            let limit = gateway.max_body;
            return failure(
                413,
                "invalid_request",
                format!("the body exceeds {limit} bytes"),
            );
        }
    };
    let url = match gateway.upstream_url.join(&request.uri().to_string()) {
        Ok(url) => url,
        Err(err) => return failure(400, "invalid_request", err.to_string()),
    };
    let Ok(method) = reqwest::Method::from_bytes(request.method().as_str().as_bytes()) else {
        return failure(405, "invalid_request", "unsupported method".into());
    };
    let mut upstream = gateway.http.request(method, url);
    for (name, value) in request.headers() {
        if passes(name.as_str()) {
            upstream = upstream.header(name.as_str(), value.as_bytes());
        }
    }
    let response = match upstream.bearer_auth(upstream_token).body(body).send().await {
        Ok(response) => response,
        Err(err) => return failure(502, "temporarily_unavailable", format!("upstream: {err}")),
    };
    let mut reply = HttpResponse::build(
        actix_web::http::StatusCode::from_u16(response.status().as_u16())
            .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY),
    );
    for (name, value) in response.headers() {
        if passes(name.as_str())
            && let Ok(name) = HeaderName::from_bytes(name.as_str().as_bytes())
        {
            reply.append_header((name, value.as_bytes()));
        }
    }
    reply.streaming(
        response
            .bytes_stream()
            .map(|chunk| chunk.map_err(actix_web::error::ErrorBadGateway)),
    )
}
