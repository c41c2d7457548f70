//! The read side: read models as pure folds over the log (clients, tokens, signing keys, the
//! audit trail), checkpoints so start-up does not replay all history, and the live follower
//! that keeps them current. Projections depend on events only, never on actors or HTTP.

pub mod audit;
pub mod checkpoint;
pub mod clients;
mod interner;
pub mod keys;
pub mod live;
pub mod slab;
mod tag_index;
pub mod tokens;

use crate::events::{ChainHash, Envelope, EventStore, StoreError};
use serde::{Deserialize, Serialize};

/// Every read model, and the log position they all reflect.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReadModels {
    /// The last position folded in (0: none).
    pub position: u64,
    /// The hash of the record at `position`, tying a checkpoint to its log.
    pub last_hash: ChainHash,
    /// Clients.
    pub clients: clients::Clients,
    /// Tokens, for introspection and revocation.
    pub tokens: tokens::Tokens,
    /// Signing keys, for JWKS.
    pub keys: keys::Keys,
    /// The audit trail index.
    pub audit: audit::Audit,
}

impl ReadModels {
    /// Folds the next event. Events must come in position order, each exactly once.
    pub fn apply(&mut self, envelope: &Envelope) {
        debug_assert_eq!(
            envelope.position,
            self.position + 1,
            "events folded out of order"
        );
        self.clients.apply(envelope);
        self.tokens.apply(envelope);
        self.keys.apply(envelope);
        self.audit.apply(envelope, &self.tokens);
        self.position = envelope.position;
        self.last_hash = envelope.hash;
    }

    /// Keeps only about the newest `records` token records (and as many grants) in memory
    /// from now on, and the others in unnamed files in `dir` (see `slab`): what a running
    /// server holds for every live token then is the indexes' few bytes, not the whole record.
    pub fn spill_to(&mut self, dir: &std::path::Path, records: usize) {
        self.tokens.spill_to(dir, records);
    }

    /// Folds everything after `self.position` up to `until` (inclusive; `None`: the head),
    /// calling `progress` with the position reached after each batch.
    pub async fn catch_up(
        &mut self,
        store: &dyn EventStore,
        until: Option<u64>,
        mut progress: impl FnMut(u64),
    ) -> Result<(), StoreError> {
        const BATCH: usize = 8192;
        let until = until.unwrap_or_else(|| *store.head().borrow());
        while self.position < until {
            let want = (until - self.position).min(BATCH as u64) as usize;
            let batch = store.read_all(self.position + 1, want).await?;
            if batch.is_empty() {
                break;
            }
            for envelope in &batch {
                self.apply(envelope);
            }
            progress(self.position);
        }
        Ok(())
    }

    /// Builds every read model from scratch, up to `until` (`None`: the head).
    pub async fn rebuild(
        store: &dyn EventStore,
        until: Option<u64>,
        progress: impl FnMut(u64),
    ) -> Result<ReadModels, StoreError> {
        let mut models = ReadModels::default();
        models.catch_up(store, until, progress).await?;
        Ok(models)
    }
}
