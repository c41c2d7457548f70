//! Events of a client's stream (`client-{client_id}`).

use crate::secret::SecretHash;
use serde::{Deserialize, Serialize};

/// What a client registered (RFC 7591 §2): everything but its secret. No member is skipped
/// when absent, so the struct also round-trips through the binary checkpoint format.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientMetadata {
    /// Human-readable name, if given.
    #[serde(default)]
    pub client_name: Option<String>,
    /// Redirect URIs, matched exactly.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Grant types the client may use.
    #[serde(default)]
    pub grant_types: Vec<String>,
    /// Response types the client may use.
    #[serde(default)]
    pub response_types: Vec<String>,
    /// `client_secret_basic`, `client_secret_post` or `none`.
    pub token_endpoint_auth_method: String,
    /// Space-separated scopes the client may ask for, if limited.
    #[serde(default)]
    pub scope: Option<String>,
    /// Home page of the client.
    #[serde(default)]
    pub client_uri: Option<String>,
    /// Logo of the client.
    #[serde(default)]
    pub logo_uri: Option<String>,
    /// People responsible for the client.
    #[serde(default)]
    pub contacts: Vec<String>,
    /// `web` or `native` (OIDC Dynamic Registration §2).
    #[serde(default)]
    pub application_type: Option<String>,
    /// `RS256` (default) or `EdDSA` for this client's ID tokens.
    #[serde(default)]
    pub id_token_signed_response_alg: Option<String>,
}

/// A client was registered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRegistered {
    /// The issued client identifier.
    pub client_id: String,
    /// Its registered metadata.
    pub metadata: ClientMetadata,
    /// SHA-256 of the client secret; `None` for public clients.
    pub secret_hash: Option<SecretHash>,
    /// SHA-256 of the RFC 7592 registration access token, when one was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_token_hash: Option<SecretHash>,
    /// Login of the user who registered it, when a user did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_by: Option<String>,
    /// Whether the client may be used through Tailscale Funnel, from the public internet.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub funnel: bool,
}

/// A client's metadata was replaced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientUpdated {
    /// The client.
    pub client_id: String,
    /// The new metadata, replacing the old as a whole.
    pub metadata: ClientMetadata,
}

/// A client's secret was replaced; the old one no longer authenticates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSecretRotated {
    /// The client.
    pub client_id: String,
    /// SHA-256 of the new secret.
    pub secret_hash: SecretHash,
}

/// A client was deleted; its grants are revoked separately, each with its own event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientDeleted {
    /// The client.
    pub client_id: String,
}
