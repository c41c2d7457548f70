//! OpenID Connect ID tokens (OIDC Core §2): who logged in, for which client.

use super::jwt::mint_id;
use super::keys::SigningKey;
use crate::clock::Timestamp;
use serde::Serialize;

/// How long ID tokens live, in seconds.
pub const ID_TOKEN_SECONDS: i64 = 3600;

/// The claims of an ID token.
#[derive(Debug, Serialize)]
pub struct IdClaims<'a> {
    /// Issuer.
    pub iss: &'a str,
    /// The user's login.
    pub sub: &'a str,
    /// The client.
    pub aud: &'a str,
    /// The authorized party (the client).
    pub azp: &'a str,
    /// Expiry.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// When the user authenticated (here: when the token was issued; the network is the
    /// authentication).
    pub auth_time: i64,
    /// The nonce of the authorization request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<&'a str>,
    /// The login, as a username.
    pub preferred_username: &'a str,
    /// The login as a display name.
    pub name: &'a str,
    /// The login when it is an e-mail address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<&'a str>,
}

/// Mints an ID token for `subject` and `client_id`, with `extra` claims from the capability
/// rules (which never replace a standard claim).
pub fn issue(
    key: &SigningKey,
    issuer: &str,
    subject: &str,
    client_id: &str,
    nonce: Option<&str>,
    extra: serde_json::Map<String, serde_json::Value>,
    now: Timestamp,
) -> String {
    let iat = now.unix_seconds();
    let mut claims = serde_json::to_value(IdClaims {
        iss: issuer,
        sub: subject,
        aud: client_id,
        azp: client_id,
        exp: iat + ID_TOKEN_SECONDS,
        iat,
        auth_time: iat,
        nonce,
        preferred_username: subject,
        name: subject,
        email: subject.contains('@').then_some(subject),
    })
    .expect("claims serialize");
    if let Some(members) = claims.as_object_mut() {
        for (name, value) in extra {
            members.entry(name).or_insert(value);
        }
    }
    mint_id(key, &claims)
}
