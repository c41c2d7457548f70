//! Denials: requests that were refused, recorded so an auditor sees what was attempted.

use serde::{Deserialize, Serialize};

/// The stream every denial is appended to.
pub const DENIALS_STREAM: &str = "denials";

/// What was being asked for when the request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeniedRequest {
    /// Dynamic client registration (RFC 7591).
    Registration,
    /// Client update, secret rotation or deletion.
    ClientManagement,
    /// An authorization request or code redemption.
    Authorization,
    /// A token request (refresh, client credentials).
    Token,
    /// A token exchange (RFC 8693).
    Exchange,
    /// A revocation (RFC 7009).
    Revocation,
}

/// A request was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestDenied {
    /// What was asked for.
    pub request: DeniedRequest,
    /// The OAuth error code sent back (`invalid_grant`, `access_denied`, ...).
    pub error: String,
    /// Why, in words, without any secret.
    pub reason: String,
    /// The client that asked, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The user concerned, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}
