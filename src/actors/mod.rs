//! The write side: one actix actor per aggregate (client, authorization session, grant),
//! each with its own mailbox so commands on one aggregate are serialized, and registries
//! that start them on first use and passivate idle ones.

pub mod aggregate;
pub mod client;
pub mod grant;
pub mod registry;
pub mod session;

pub use aggregate::{Aggregate, CommandContext, CommandError, Committed, Loaded, Refusal};
pub use registry::{AggregateActor, Execute, Registry};
