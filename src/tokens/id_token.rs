//! OpenID Connect ID tokens (OIDC Core §2): who logged in, for which client.

use super::jwt::mint_id;
use super::keys::SigningKey;
use crate::clock::Timestamp;
use crate::identity::Profile;
use serde::Serialize;

/// How long ID tokens live, in seconds.
pub const ID_TOKEN_SECONDS: i64 = 3600;

/// The claims of an ID token that are warrant's own, before the user's.
#[derive(Debug, Serialize)]
struct IdClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    azp: &'a str,
    exp: i64,
    iat: i64,
    /// When the user authenticated: here when the token was issued (the network is the
    /// authentication).
    auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
}

/// Mints an ID token for `user` and `client_id`: the user's claims (names, picture, tailnet
/// node) and the extra claims of the rules recorded at login, which never replace a
/// standard claim.
pub fn issue(
    key: &SigningKey,
    issuer: &str,
    user: &Profile,
    client_id: &str,
    nonce: Option<&str>,
    now: Timestamp,
) -> String {
    let iat = now.unix_seconds();
    let mut claims = serde_json::to_value(IdClaims {
        iss: issuer,
        sub: &user.login,
        aud: client_id,
        azp: client_id,
        exp: iat + ID_TOKEN_SECONDS,
        iat,
        auth_time: iat,
        nonce,
    })
    .expect("claims serialize");
    if let Some(members) = claims.as_object_mut() {
        members.extend(user.released_claims(false));
    }
    mint_id(key, &claims)
}
