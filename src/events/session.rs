//! Events of an authorization session's stream (`session-{session_id}`): one authorization
//! request and the code it produced.

use crate::clock::Timestamp;
use crate::identity::Profile;
use crate::secret::SecretHash;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An authorization code was issued to a client for a user (RFC 6749 §4.1.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationCodeIssued {
    /// The session this code belongs to.
    pub session_id: Uuid,
    /// SHA-256 of the code.
    pub code_hash: SecretHash,
    /// The client the code was issued to.
    pub client_id: String,
    /// Login of the user who approved it.
    pub subject: String,
    /// The user as known at login, with the capability rules then in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
    /// The redirect URI the code was sent to; redemption must repeat it exactly.
    pub redirect_uri: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// PKCE S256 challenge (RFC 7636 §4.2); required of public clients.
    #[serde(default)]
    pub code_challenge: Option<String>,
    /// OIDC nonce to repeat in the ID token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// RFC 8707 resource indicators requested.
    #[serde(default)]
    pub resources: Vec<String>,
    /// When the code stops being redeemable.
    pub expires_at: Timestamp,
}

/// An authorization code was redeemed, creating a grant. Carries what the grant is made
/// of, so nothing has to be looked up again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationCodeRedeemed {
    /// The session.
    pub session_id: Uuid,
    /// The grant created from it; replaying the code revokes this grant.
    pub grant_id: Uuid,
    /// The client that redeemed it.
    pub client_id: String,
    /// The user who approved it.
    pub subject: String,
    /// The user as known at login, with the capability rules then in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
    /// Granted scopes.
    pub scope: String,
    /// RFC 8707 resources requested.
    #[serde(default)]
    pub resources: Vec<String>,
    /// The OIDC nonce to repeat in the ID token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}
