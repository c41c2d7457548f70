//! The event schema, the envelope every event is recorded in, and the [`EventStore`]
//! contract with its backends.

mod catalog;
pub mod client;
pub mod contract;
pub mod denial;
pub mod envelope;
pub mod filelog;
pub mod grant;
pub mod key;
pub mod session;
pub mod store;
pub mod synthetic;

pub use catalog::{DecodeError, Event};
pub use client::*;
pub use denial::*;
pub use envelope::{ChainHash, Envelope, NewEvent};
pub use grant::*;
pub use key::*;
pub use session::*;
pub use store::{
    Appended, CommitListener, EventStore, ExpectedVersion, StoreError, StreamEvents, Subscription,
    TypeFilter,
};
