//! Events of a signing key's stream (`key-{kid}`). Private keys never enter the log: each node
//! keeps its own key file and publishes only the public half.

use serde::{Deserialize, Serialize};

/// A node published the public half of a signing key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeyPublished {
    /// The key id (`kid`).
    pub kid: String,
    /// The JWS algorithm it signs with (`EdDSA`, `RS256`).
    pub alg: String,
    /// The node that holds the private half.
    pub node: String,
    /// The public key as a JWK (RFC 7517), without private members.
    pub public_jwk: serde_json::Value,
}

/// A signing key was retired: tokens it signed no longer verify.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeyRetired {
    /// The key id.
    pub kid: String,
}
