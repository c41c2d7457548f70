//! OAuth error responses: one type whose variants cite their RFC, rendered as JSON
//! `{"error","error_description"}` with `Cache-Control: no-store`.

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, HeaderValue, PRAGMA};
use actix_web::{HttpResponse, ResponseError};
use std::fmt;

/// An OAuth error: the wire code is the variant, the description says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuthError {
    /// RFC 6749 §5.2 `invalid_request`; 400.
    InvalidRequest(String),
    /// RFC 6749 §5.2 `invalid_client`; 401.
    InvalidClient(String),
    /// RFC 6749 §5.2 `invalid_grant`; 400.
    InvalidGrant(String),
    /// RFC 6749 §5.2 `unauthorized_client`; 400.
    UnauthorizedClient(String),
    /// RFC 6749 §5.2 `unsupported_grant_type`; 400.
    UnsupportedGrantType(String),
    /// RFC 6749 §5.2 `invalid_scope`; 400.
    InvalidScope(String),
    /// RFC 6749 §4.1.2.1 `unsupported_response_type`; 400.
    UnsupportedResponseType(String),
    /// RFC 8707 §2 `invalid_target`; 400.
    InvalidTarget(String),
    /// RFC 6749 §5.2 `invalid_request` for a body over the limit; 413.
    TooLarge(String),
    /// `invalid_request` for a method the endpoint does not serve; 405.
    MethodNotAllowed(String),
    /// RFC 7591 §3.2.2 `invalid_redirect_uri`; 400.
    InvalidRedirectUri(String),
    /// RFC 7591 §3.2.2 `invalid_client_metadata`; 400.
    InvalidClientMetadata(String),
    /// RFC 6750 §3.1 `invalid_token` (a bad registration access token, RFC 7592 §3); 401.
    InvalidToken(String),
    /// RFC 6749 §4.1.2.1 `access_denied`; 403.
    AccessDenied(String),
    /// `access_denied` for a request through Tailscale Funnel to a tailnet-only endpoint; 401.
    NotThroughFunnel(String),
    /// RFC 6749 §4.1.2.1 `temporarily_unavailable`; 503 (the event store cannot write).
    TemporarilyUnavailable(String),
}

impl OAuthError {
    /// The wire code.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient(_) => "invalid_client",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::UnauthorizedClient(_) => "unauthorized_client",
            OAuthError::UnsupportedGrantType(_) => "unsupported_grant_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
            OAuthError::InvalidTarget(_) => "invalid_target",
            OAuthError::UnsupportedResponseType(_) => "unsupported_response_type",
            OAuthError::TooLarge(_) | OAuthError::MethodNotAllowed(_) => "invalid_request",
            OAuthError::InvalidRedirectUri(_) => "invalid_redirect_uri",
            OAuthError::InvalidClientMetadata(_) => "invalid_client_metadata",
            OAuthError::AccessDenied(_) | OAuthError::NotThroughFunnel(_) => "access_denied",
            OAuthError::InvalidToken(_) => "invalid_token",
            OAuthError::TemporarilyUnavailable(_) => "temporarily_unavailable",
        }
    }

    /// The human-readable description.
    pub fn description(&self) -> &str {
        match self {
            OAuthError::InvalidRequest(d)
            | OAuthError::InvalidClient(d)
            | OAuthError::InvalidGrant(d)
            | OAuthError::UnauthorizedClient(d)
            | OAuthError::UnsupportedGrantType(d)
            | OAuthError::InvalidScope(d)
            | OAuthError::InvalidTarget(d)
            | OAuthError::UnsupportedResponseType(d)
            | OAuthError::TooLarge(d)
            | OAuthError::MethodNotAllowed(d)
            | OAuthError::InvalidRedirectUri(d)
            | OAuthError::InvalidClientMetadata(d)
            | OAuthError::AccessDenied(d)
            | OAuthError::NotThroughFunnel(d)
            | OAuthError::InvalidToken(d)
            | OAuthError::TemporarilyUnavailable(d) => d,
        }
    }
}

impl fmt::Display for OAuthError {
    /// The wire code.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            OAuthError::InvalidClient(_)
            | OAuthError::InvalidToken(_)
            | OAuthError::NotThroughFunnel(_) => StatusCode::UNAUTHORIZED,
            OAuthError::AccessDenied(_) => StatusCode::FORBIDDEN,
            OAuthError::TemporarilyUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            OAuthError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            OAuthError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        no_store(&mut response);
        // A 401 names the scheme to authenticate with (RFC 6749 §5.2, RFC 6750 §3).
        let challenge = match self {
            OAuthError::InvalidClient(_) => Some("Basic realm=\"warrant\""),
            OAuthError::InvalidToken(_) => {
                Some("Bearer realm=\"warrant\", error=\"invalid_token\"")
            }
            _ => None,
        };
        if let Some(challenge) = challenge {
            response.insert_header((
                actix_web::http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            ));
        }
        response.json(serde_json::json!({
            "error": self.code(),
            "error_description": self.description(),
        }))
    }
}

/// A JSON response marked never to be cached.
pub fn no_store_json(
    mut response: actix_web::HttpResponseBuilder,
    body: serde_json::Value,
) -> HttpResponse {
    no_store(&mut response);
    response.json(body)
}

/// Marks a response as never to be cached (RFC 6749 §5.1).
pub fn no_store(response: &mut actix_web::HttpResponseBuilder) {
    response
        .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((PRAGMA, HeaderValue::from_static("no-cache")));
}

impl From<crate::events::StoreError> for OAuthError {
    fn from(err: crate::events::StoreError) -> OAuthError {
        tracing::error!(%err, "event store error");
        OAuthError::TemporarilyUnavailable("the event log cannot record this request now".into())
    }
}

impl From<crate::identity::IdentityError> for OAuthError {
    fn from(err: crate::identity::IdentityError) -> OAuthError {
        use crate::identity::IdentityError;
        tracing::warn!(%err, "caller refused");
        match err {
            IdentityError::Unavailable(_) => OAuthError::TemporarilyUnavailable(err.to_string()),
            _ => OAuthError::AccessDenied(err.to_string()),
        }
    }
}
