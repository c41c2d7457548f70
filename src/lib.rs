//! warrant: an OpenID Connect / OAuth identity provider for tailnets, built as actors over
//! an append-only event log.
#![deny(missing_docs)]

pub mod actors;
pub mod clock;
pub mod events;
#[path = "../projections/mod.rs"]
pub mod projections;
pub mod secret;
