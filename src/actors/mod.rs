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

use crate::events::EventStore;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The registries of every kind of actor.
pub struct Actors {
    /// Client actors.
    pub clients: Registry<client::Client>,
    /// Authorization session actors.
    pub sessions: Registry<session::Session>,
    /// Grant actors.
    pub grants: Registry<grant::Grant>,
}

impl Actors {
    /// Registries over `store`, each keeping at most `capacity` actors, passivating those
    /// idle for `idle`.
    pub fn new(store: Arc<dyn EventStore>, capacity: usize, idle: Duration) -> Actors {
        Actors {
            clients: Registry::new(store.clone(), capacity, idle),
            sessions: Registry::new(store.clone(), capacity, idle),
            grants: Registry::new(store, capacity, idle),
        }
    }

    /// Passivates every idle actor; returns how many.
    pub fn passivate_idle(&self, now: Instant) -> usize {
        self.clients.passivate_idle(now)
            + self.sessions.passivate_idle(now)
            + self.grants.passivate_idle(now)
    }
}
