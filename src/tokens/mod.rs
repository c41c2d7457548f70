//! Token crypto: this node's signing keys and the JWTs it mints.

pub mod access;
pub mod id_token;
pub mod jwt;
pub mod keys;
