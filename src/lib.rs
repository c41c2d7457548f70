//! warrant: an OpenID Connect / OAuth identity provider for tailnets, built as actors over
//! an append-only event log.
#![deny(missing_docs)]

pub mod actors;
pub mod capabilities;
pub mod cli;
pub mod clock;
pub mod config;
pub mod events;
pub mod growth;
pub mod http;
pub mod identity;
pub mod mcp;
#[path = "../projections/mod.rs"]
pub mod projections;
pub mod secret;
pub mod server;
pub mod tokens;
