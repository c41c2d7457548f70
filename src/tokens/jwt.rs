//! Minting JWTs: RFC 9068 access tokens (`typ: at+jwt`, EdDSA) and OpenID Connect ID tokens
//! (RS256 by default).

use super::keys::SigningKey;
use crate::events::ActorClaim;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Header};
use serde::Serialize;
use uuid::Uuid;

/// The claims of an access token (RFC 9068 §2.2, RFC 8693 §4.1 for `act`).
#[derive(Debug, Serialize)]
pub struct AccessClaims<'a> {
    /// Issuer.
    pub iss: &'a str,
    /// The user, or the client itself for client credentials.
    pub sub: &'a str,
    /// The resources the token is for.
    pub aud: &'a [String],
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before (= `iat`).
    pub nbf: i64,
    /// Token id.
    pub jti: Uuid,
    /// The client it was issued to.
    pub client_id: &'a str,
    /// Space-separated scopes.
    pub scope: &'a str,
    /// The acting party of an exchanged token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub act: Option<&'a ActorClaim>,
}

/// An Ed25519 signature in base64url (64 bytes), with the `.` before it.
const ED25519_SIGNATURE_TEXT: usize = 1 + 86;

/// A signing key's JWS protected headers (RFC 7515 §4), base64url-encoded JSON: the same
/// for every token the key signs, so encoded once when the key is loaded.
pub struct JwsHeaders {
    /// `alg` and `kid`, for ID tokens.
    id: String,
    /// With `typ: at+jwt` too, for access tokens (RFC 9068 §2.1).
    access: String,
}

impl JwsHeaders {
    /// The headers of a key of algorithm `alg` and id `kid`.
    pub fn of(alg: Algorithm, kid: &str) -> JwsHeaders {
        let mut header = Header::new(alg);
        header.kid = Some(kid.to_owned());
        let id = part(&header);
        header.typ = Some("at+jwt".into());
        JwsHeaders {
            id,
            access: part(&header),
        }
    }
}

/// Signs access-token claims with the node's Ed25519 key.
pub fn mint_access(key: &SigningKey, claims: &AccessClaims<'_>) -> String {
    compact(key, &key.headers.access, claims)
}

/// Signs ID-token claims (any serializable claim set) with `key`.
pub fn mint_id(key: &SigningKey, claims: &impl Serialize) -> String {
    compact(key, &key.headers.id, claims)
}

/// The JWS compact serialization (RFC 7515 §7.1) signed with the already parsed `key`
/// (jsonwebtoken's `encode` parses the private key again for every token), written into
/// one string with room for an Ed25519 signature.
fn compact(key: &SigningKey, header: &str, claims: &impl Serialize) -> String {
    let claims = serde_json::to_vec(claims).expect("claims are plain data");
    let mut token = String::with_capacity(
        header.len() + 1 + claims.len().div_ceil(3) * 4 + ED25519_SIGNATURE_TEXT,
    );
    token.push_str(header);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&claims, &mut token);
    let signature = key.sign(token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
    token
}

/// One base64url-encoded JSON part of a JWS.
fn part(value: &impl Serialize) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("headers are plain data"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::keys::NodeKeys;
    use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};

    #[test]
    fn access_token_verifies_against_its_public_jwk() {
        let dir = tempfile::tempdir().unwrap();
        let keys = NodeKeys::load_or_generate(dir.path()).unwrap();
        let aud = vec!["https://mcp.example".to_owned()];
        let claims = AccessClaims {
            iss: "http://localhost:8080",
            sub: "alice@example.com",
            aud: &aud,
            exp: 4_000_000_000,
            iat: 1_795_000_000,
            nbf: 1_795_000_000,
            jti: Uuid::new_v4(),
            client_id: "c1",
            scope: "openid",
            act: None,
        };
        let token = mint_access(&keys.ed25519, &claims);
        let header = decode_header(&token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(header.kid.as_deref(), Some(keys.ed25519.kid.as_str()));
        let x = keys.ed25519.public_jwk["x"].as_str().unwrap();
        let mut validation = Validation::new(jsonwebtoken::Algorithm::EdDSA);
        validation.set_audience(&["https://mcp.example"]);
        let decoded = decode::<serde_json::Value>(
            &token,
            &DecodingKey::from_ed_components(x).unwrap(),
            &validation,
        )
        .unwrap();
        assert_eq!(decoded.claims["sub"], "alice@example.com");
        assert!(decoded.claims.get("act").is_none());
    }

    #[test]
    fn id_token_verifies_with_rs256() {
        let dir = tempfile::tempdir().unwrap();
        let keys = NodeKeys::load_or_generate(dir.path()).unwrap();
        let token = mint_id(
            &keys.rsa,
            &serde_json::json!({"iss": "i", "sub": "s", "aud": "c1", "exp": 4_000_000_000i64}),
        );
        let jwk = &keys.rsa.public_jwk;
        let key = DecodingKey::from_rsa_components(
            jwk["n"].as_str().unwrap(),
            jwk["e"].as_str().unwrap(),
        )
        .unwrap();
        let mut validation = Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_audience(&["c1"]);
        assert!(decode::<serde_json::Value>(&token, &key, &validation).is_ok());
    }
}
