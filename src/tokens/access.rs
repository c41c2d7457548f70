//! Issuing an access token: the JWT handed to the client and the event that records it.

use super::jwt::{AccessClaims, mint_access};
use super::keys::NodeKeys;
use crate::clock::Timestamp;
use crate::events::AccessTokenIssued;
use crate::secret::SecretHash;
use uuid::Uuid;

/// How long access tokens live, in seconds.
pub const ACCESS_TOKEN_SECONDS: i64 = 3600;

/// What an access token is for.
#[derive(Clone, Debug)]
pub struct AccessGrant<'a> {
    /// The grant it belongs to.
    pub grant_id: Uuid,
    /// The client it is issued to.
    pub client_id: &'a str,
    /// The user, if any (the token's `sub` is the client otherwise).
    pub subject: Option<&'a str>,
    /// Space-separated scopes.
    pub scope: &'a str,
    /// Its `aud`.
    pub audience: &'a [String],
}

/// A freshly minted access token and the event recording it (which holds only its hash).
pub struct Minted {
    /// The JWT to give the client.
    pub token: String,
    /// The event to record.
    pub event: AccessTokenIssued,
}

/// Mints an access token valid from `now` for [`ACCESS_TOKEN_SECONDS`].
pub fn issue(keys: &NodeKeys, issuer: &str, grant: &AccessGrant<'_>, now: Timestamp) -> Minted {
    let jti = Uuid::new_v4();
    let expires_at = now.plus_seconds(ACCESS_TOKEN_SECONDS);
    let token = mint_access(
        &keys.ed25519,
        &AccessClaims {
            iss: issuer,
            sub: grant.subject.unwrap_or(grant.client_id),
            aud: grant.audience,
            exp: expires_at.unix_seconds(),
            iat: now.unix_seconds(),
            nbf: now.unix_seconds(),
            jti,
            client_id: grant.client_id,
            scope: grant.scope,
            act: None,
        },
    );
    let event = AccessTokenIssued {
        grant_id: grant.grant_id,
        jti,
        token_hash: SecretHash::of(&token),
        client_id: grant.client_id.to_owned(),
        subject: grant.subject.map(str::to_owned),
        scope: grant.scope.to_owned(),
        audience: grant.audience.to_vec(),
        issued_at: now,
        expires_at,
    };
    Minted { token, event }
}
