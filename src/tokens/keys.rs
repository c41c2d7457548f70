//! This node's signing keys: an Ed25519 key for access tokens and an RSA-2048 key for ID
//! tokens (RS256, which OIDC requires). Generated on first start into `DIR/keys/` (mode
//! 0600); only their public halves are ever published, as events, and listed in JWKS.

use super::jwt::JwsHeaders;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::Algorithm;
use rand::RngCore;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Why the keys could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing a key file failed.
    #[error("{path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A key file does not hold a usable key.
    #[error("{path}: not a usable {kind} private key ({reason})")]
    Invalid {
        /// The key file.
        path: String,
        /// Ed25519 or RSA.
        kind: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// A key file is readable by others.
    #[error("{path}: mode {mode:o} lets others read a private key; chmod 600 it")]
    Exposed {
        /// The key file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
}

/// One private key, parsed once and ready to sign, with its public JWK.
pub struct SigningKey {
    /// Its key id: the RFC 7638 thumbprint of its public JWK.
    pub kid: String,
    /// The public key as a JWK with `kid`, `alg` and `use`.
    pub public_jwk: Value,
    /// Its JWS headers (its algorithm and `kid`), encoded once.
    pub headers: JwsHeaders,
    pair: KeyPair,
}

/// A parsed private key. Parsing derives and checks the public half, which costs about as
/// much as a signature: it is done once, not per token.
enum KeyPair {
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

impl SigningKey {
    fn new(kid: String, alg: Algorithm, public_jwk: Value, pair: KeyPair) -> SigningKey {
        SigningKey {
            headers: JwsHeaders::of(alg, &kid),
            kid,
            public_jwk,
            pair,
        }
    }

    /// Signs `message` (EdDSA, or RS256: RSASSA-PKCS1-v1_5 with SHA-256).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.pair {
            KeyPair::Ed25519(pair) => pair.sign(message).as_ref().to_vec(),
            KeyPair::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    message,
                    &mut signature,
                )
                .expect("RSA signing with a valid key does not fail");
                signature
            }
        }
    }
}

/// The keys this node signs with.
pub struct NodeKeys {
    /// Ed25519, for access tokens (and ID tokens of clients asking for EdDSA).
    pub ed25519: SigningKey,
    /// RSA-2048, for ID tokens (RS256).
    pub rsa: SigningKey,
}

impl NodeKeys {
    /// Loads the keys from `DIR/keys/`, generating each one that does not exist yet.
    pub fn load_or_generate(dir: &Path) -> Result<NodeKeys, KeyError> {
        let keys = dir.join("keys");
        fs::create_dir_all(&keys).map_err(io_error(&keys))?;
        let ed_path = keys.join(KEY_FILES[0]);
        let rsa_path = keys.join(KEY_FILES[1]);
        let ed = load_or_create(&ed_path, generate_ed25519)?;
        let rsa = load_or_create(&rsa_path, generate_rsa)?;
        Ok(NodeKeys {
            ed25519: ed25519_key(&ed).map_err(|reason| KeyError::Invalid {
                path: ed_path.display().to_string(),
                kind: "Ed25519",
                reason,
            })?,
            rsa: rsa_key(&rsa).map_err(|reason| KeyError::Invalid {
                path: rsa_path.display().to_string(),
                kind: "RSA",
                reason,
            })?,
        })
    }

    /// Both keys.
    pub fn all(&self) -> [&SigningKey; 2] {
        [&self.ed25519, &self.rsa]
    }

    /// Replaces the keys in `DIR/keys/` with new ones: the old private keys are deleted
    /// (tokens they signed stay verifiable through their published public halves).
    pub fn rotate(dir: &Path) -> Result<NodeKeys, KeyError> {
        let keys = dir.join("keys");
        for name in KEY_FILES {
            let path = keys.join(name);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(io_error(&path)(err)),
            }
        }
        if keys.is_dir() {
            crate::events::filelog::sync_dir(&keys).map_err(io_error(&keys))?;
        }
        NodeKeys::load_or_generate(dir)
    }

    /// How long ago the current keys were created, if they exist.
    pub fn age(dir: &Path) -> Option<std::time::Duration> {
        let created = fs::metadata(dir.join("keys").join(KEY_FILES[0]))
            .ok()?
            .modified()
            .ok()?;
        created.elapsed().ok()
    }
}

/// The key files, Ed25519 first.
const KEY_FILES: [&str; 2] = ["ed25519.pk8", "rsa.pk8"];

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Reads a PKCS#8 key file, or creates it (0600, fsynced) with `generate`.
fn load_or_create(path: &Path, generate: fn() -> Vec<u8>) -> Result<Vec<u8>, KeyError> {
    match fs::read(path) {
        Ok(der) => {
            let mode = fs::metadata(path)
                .map_err(io_error(path))?
                .permissions()
                .mode()
                & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyError::Exposed {
                    path: path.display().to_string(),
                    mode,
                });
            }
            Ok(der)
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let der = generate();
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(io_error(path))?;
            file.write_all(&der)
                .and_then(|()| file.sync_all())
                .map_err(io_error(path))?;
            crate::events::filelog::sync_dir(path.parent().expect("key files are in a folder"))
                .map_err(io_error(path))?;
            Ok(der)
        }
        Err(err) => Err(io_error(path)(err)),
    }
}

fn generate_ed25519() -> Vec<u8> {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let key = ed25519_dalek::SigningKey::from_bytes(&secret);
    key.to_pkcs8_der()
        .expect("an Ed25519 key always encodes")
        .as_bytes()
        .to_vec()
}

fn generate_rsa() -> Vec<u8> {
    use aws_lc_rs::encoding::AsDer;
    let key =
        RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("RSA key generation works");
    key.as_der()
        .expect("an RSA key always encodes")
        .as_ref()
        .to_vec()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The RFC 7638 thumbprint of a JWK given its required members in lexicographic order.
fn thumbprint(required: &[(&str, &str)]) -> String {
    let members: Vec<String> = required
        .iter()
        .map(|(name, value)| format!("\"{name}\":\"{value}\""))
        .collect();
    b64(&Sha256::digest(format!("{{{}}}", members.join(","))))
}

fn ed25519_key(pkcs8: &[u8]) -> Result<SigningKey, String> {
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    let key = ed25519_dalek::SigningKey::from_pkcs8_der(pkcs8).map_err(|e| e.to_string())?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|e| e.to_string())?;
    let x = b64(key.verifying_key().as_bytes());
    let kid = thumbprint(&[("crv", "Ed25519"), ("kty", "OKP"), ("x", &x)]);
    let public_jwk =
        json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"});
    Ok(SigningKey::new(
        kid,
        Algorithm::EdDSA,
        public_jwk,
        KeyPair::Ed25519(pair),
    ))
}

fn rsa_key(pkcs8: &[u8]) -> Result<SigningKey, String> {
    let key = RsaKeyPair::from_pkcs8(pkcs8).map_err(|e| e.to_string())?;
    let public = aws_lc_rs::signature::KeyPair::public_key(&key);
    let n = b64(public.modulus().big_endian_without_leading_zero());
    let e = b64(public.exponent().big_endian_without_leading_zero());
    let kid = thumbprint(&[("e", &e), ("kty", "RSA"), ("n", &n)]);
    let public_jwk =
        json!({"kty": "RSA", "n": n, "e": e, "kid": kid, "alg": "RS256", "use": "sig"});
    Ok(SigningKey::new(
        kid,
        Algorithm::RS256,
        public_jwk,
        KeyPair::Rsa(key),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7638_thumbprint_example() {
        // RFC 7638 §3.1: the example RSA key's thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            thumbprint(&[("e", "AQAB"), ("kty", "RSA"), ("n", n)]),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn keys_are_generated_once_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let first = NodeKeys::load_or_generate(dir.path()).unwrap();
        let again = NodeKeys::load_or_generate(dir.path()).unwrap();
        assert_eq!(first.ed25519.kid, again.ed25519.kid);
        assert_eq!(first.rsa.kid, again.rsa.kid);
        assert_ne!(first.ed25519.kid, first.rsa.kid);
        let mode = fs::metadata(dir.path().join("keys/rsa.pk8"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let jwk = first.ed25519.public_jwk.to_string();
        assert!(!jwk.contains("\"d\""), "no private member in {jwk}");
    }

    #[test]
    fn rotation_replaces_both_keys() {
        let dir = tempfile::tempdir().unwrap();
        let old = NodeKeys::load_or_generate(dir.path()).unwrap();
        let new = NodeKeys::rotate(dir.path()).unwrap();
        assert_ne!(old.ed25519.kid, new.ed25519.kid);
        assert_ne!(old.rsa.kid, new.rsa.kid);
        let again = NodeKeys::load_or_generate(dir.path()).unwrap();
        assert_eq!(again.rsa.kid, new.rsa.kid, "the new keys persist");
        assert!(NodeKeys::age(dir.path()).unwrap() < std::time::Duration::from_secs(60));
    }

    #[test]
    fn a_key_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        NodeKeys::load_or_generate(dir.path()).unwrap();
        let path = dir.path().join("keys/ed25519.pk8");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = NodeKeys::load_or_generate(dir.path()).err().unwrap();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
}
