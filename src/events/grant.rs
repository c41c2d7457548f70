//! Events of a grant's stream (`grant-{grant_id}`): a token family, from its creation to its
//! revocation, with every access token, refresh token and exchange issued under it.

use crate::clock::Timestamp;
use crate::identity::Profile;
use crate::secret::SecretHash;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A grant's stream is named this followed by its id.
pub const GRANT_STREAM_PREFIX: &str = "grant-";

/// How a grant came to be.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GrantOrigin {
    /// An authorization code of this session was redeemed.
    AuthorizationCode {
        /// The session whose code it was.
        session_id: Uuid,
    },
    /// A confidential client asked for itself (RFC 6749 §4.4).
    ClientCredentials,
}

/// A grant (token family) was created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantCreated {
    /// The grant.
    pub grant_id: Uuid,
    /// The client it was granted to.
    pub client_id: String,
    /// The user's login; `None` when the client acts for itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The user as known at login, with the capability rules then in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// Granted resources (RFC 8707), the audiences its tokens may carry.
    #[serde(default)]
    pub resources: Vec<String>,
    /// How it was created.
    pub origin: GrantOrigin,
}

/// An access token was issued under a grant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenIssued {
    /// The grant.
    pub grant_id: Uuid,
    /// The token's `jti`.
    pub jti: Uuid,
    /// SHA-256 of the token as presented.
    pub token_hash: SecretHash,
    /// The client it was issued to.
    pub client_id: String,
    /// Its `sub`, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Its scopes, space-separated.
    pub scope: String,
    /// Its `aud`.
    #[serde(default)]
    pub audience: Vec<String>,
    /// Its `iat`.
    pub issued_at: Timestamp,
    /// Its `exp`.
    pub expires_at: Timestamp,
}

/// The first refresh token of a grant was issued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshTokenIssued {
    /// The grant.
    pub grant_id: Uuid,
    /// SHA-256 of the refresh token.
    pub token_hash: SecretHash,
    /// When it stops being usable.
    pub expires_at: Timestamp,
}

/// A refresh token was used once and replaced by a new one (OAuth 2.1 §4.3.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshTokenRotated {
    /// The grant.
    pub grant_id: Uuid,
    /// SHA-256 of the token that was used; presenting it again revokes the grant.
    pub previous_hash: SecretHash,
    /// SHA-256 of its replacement.
    pub token_hash: SecretHash,
    /// When the replacement stops being usable.
    pub expires_at: Timestamp,
}

/// The acting party of an exchanged token, nested as RFC 8693 §4.1 `act` claims are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorClaim {
    /// The actor's subject (the acting client).
    pub sub: String,
    /// The actor's client identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The actor before this one, for a chain of exchanges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<ActorClaim>>,
}

impl ActorClaim {
    /// How many actors the chain holds, this one included.
    pub fn depth(&self) -> usize {
        1 + self.act.as_ref().map_or(0, |inner| inner.depth())
    }
}

/// A token was exchanged for a new one (RFC 8693); recorded in the subject token's grant, so
/// revoking that grant revokes the exchanged token too.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenExchanged {
    /// The subject token's grant.
    pub grant_id: Uuid,
    /// The subject token's `jti`.
    pub subject_jti: Uuid,
    /// The new token's `jti`.
    pub jti: Uuid,
    /// SHA-256 of the new token.
    pub token_hash: SecretHash,
    /// The client that asked for the exchange.
    pub client_id: String,
    /// The user the new token speaks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The `act` claim of the new token.
    pub actor: ActorClaim,
    /// The new token's `aud`.
    pub audience: Vec<String>,
    /// Its scopes, space-separated.
    pub scope: String,
    /// Its `iat`.
    pub issued_at: Timestamp,
    /// Its `exp`, never later than the subject token's.
    pub expires_at: Timestamp,
}

/// Which kind of token a revocation names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// An access token (issued or exchanged).
    Access,
    /// A refresh token.
    Refresh,
}

/// One token was revoked (RFC 7009).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRevoked {
    /// The grant.
    pub grant_id: Uuid,
    /// SHA-256 of the revoked token.
    pub token_hash: SecretHash,
    /// Its kind.
    pub kind: TokenKind,
}

/// Why a whole grant was revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationReason {
    /// The client asked (RFC 7009 revocation of a refresh token).
    ClientRequest,
    /// Its authorization code was presented a second time (RFC 6749 §4.1.2).
    CodeReplay,
    /// A rotated refresh token was presented again (OAuth 2.1 §4.3.1).
    RefreshTokenReuse,
    /// Its client was deleted.
    ClientDeleted,
    /// An operator revoked it.
    Operator,
}

/// A grant and every token under it were revoked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRevoked {
    /// The grant.
    pub grant_id: Uuid,
    /// Why.
    pub reason: RevocationReason,
}
