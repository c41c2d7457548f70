//! Secrets: generating them, hashing them for the log, and comparing them in constant time.
//!
//! Client secrets, codes, refresh tokens and opaque tokens never enter the event log;
//! only their SHA-256 [`SecretHash`] does.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::fmt;

/// A fresh random secret: 32 bytes from the OS generator, base64url without padding.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The SHA-256 of a secret, as stored in events and read models.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretHash(pub [u8; 32]);

impl SecretHash {
    /// Hashes a presented secret.
    pub fn of(secret: &str) -> SecretHash {
        SecretHash(Sha256::digest(secret.as_bytes()).into())
    }

    /// Whether `secret` hashes to this value, comparing every byte whatever the outcome.
    pub fn matches(&self, secret: &str) -> bool {
        constant_time_eq(&self.0, &SecretHash::of(secret).0)
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretHash({self})")
    }
}

impl fmt::Display for SecretHash {
    /// Lower-case hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.hex(&mut [0; 64]))
    }
}

impl SecretHash {
    /// Lower-case hex, written into `buf`.
    fn hex<'b>(&self, buf: &'b mut [u8; 64]) -> &'b str {
        hex_into(&self.0, buf)
    }
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Writes the lower-case hex of `bytes` into `out` (twice as long) and returns it.
fn hex_into<'o>(bytes: &[u8], out: &'o mut [u8]) -> &'o str {
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX_DIGITS[usize::from(b >> 4)];
        pair[1] = HEX_DIGITS[usize::from(b & 0xf)];
    }
    std::str::from_utf8(out).expect("hex digits are ASCII")
}

/// Lower-case hex of any bytes.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut out = vec![0; bytes.len() * 2];
    hex_into(bytes, &mut out);
    String::from_utf8(out).expect("hex digits are ASCII")
}

impl Serialize for SecretHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(self.hex(&mut [0; 64]))
        } else {
            self.0.serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for SecretHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if !deserializer.is_human_readable() {
            return <[u8; 32]>::deserialize(deserializer).map(SecretHash);
        }
        struct Hex;
        impl serde::de::Visitor<'_> for Hex {
            type Value = SecretHash;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("64 hex digits")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<SecretHash, E> {
                parse_hex32(text)
                    .map(SecretHash)
                    .ok_or_else(|| E::custom("expected 64 hex digits"))
            }
        }
        deserializer.deserialize_str(Hex)
    }
}

/// Parses exactly 64 hex digits (either case) into 32 bytes.
pub fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_distinct_and_url_safe() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }

    #[test]
    fn hash_matches_only_its_secret() {
        let hash = SecretHash::of("s3cret");
        assert!(hash.matches("s3cret"));
        assert!(!hash.matches("s3cres"));
        assert!(!hash.matches(""));
    }

    #[test]
    fn hex_is_lower_case_two_digits_a_byte() {
        assert_eq!(to_hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        let hash = SecretHash::of("abc");
        assert_eq!(
            hash.to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(parse_hex32(&hash.to_string()), Some(hash.0));
    }

    #[test]
    fn hash_round_trips_through_json_as_hex() {
        let hash = SecretHash::of("x");
        let json = serde_json::to_string(&hash).unwrap();
        assert_eq!(json.len(), 66);
        assert_eq!(serde_json::from_str::<SecretHash>(&json).unwrap(), hash);
        assert!(serde_json::from_str::<SecretHash>("\"zz\"").is_err());
        let upper = serde_json::to_string(&hash).unwrap().to_uppercase();
        assert_eq!(serde_json::from_str::<SecretHash>(&upper).unwrap(), hash);
        let bad = format!("\"{}g\"", &hash.to_string()[..63]);
        assert!(serde_json::from_str::<SecretHash>(&bad).is_err());
    }
}
