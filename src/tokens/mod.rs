//! Token crypto: this node's signing keys and the JWTs it mints.

pub mod keys;
