//! Keeps the read models current: follows the log, folds each new batch, checkpoints now and
//! then, and lets a handler wait until its own write is visible.

use super::{ReadModels, checkpoint};
use crate::events::{EventStore, StoreError, Subscription};
use std::path::PathBuf;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How many events the follower folds under one write lock.
const FOLD_BATCH: usize = 4096;

/// When the follower writes checkpoints.
#[derive(Clone, Debug)]
pub struct CheckpointPolicy {
    /// The checkpoint file.
    pub path: PathBuf,
    /// Write one after this many events since the last...
    pub every_events: u64,
    /// ...but no sooner than this after the last one: writing holds the models' read lock
    /// for as long as serializing them takes.
    pub min_interval: Duration,
}

/// Read models shared by every handler, updated by one follower.
pub struct LiveModels {
    models: RwLock<ReadModels>,
    applied: watch::Sender<u64>,
}

impl LiveModels {
    /// Shares `models` (already caught up to some position).
    pub fn new(models: ReadModels) -> Arc<LiveModels> {
        let (applied, _) = watch::channel(models.position);
        Arc::new(LiveModels {
            models: RwLock::new(models),
            applied,
        })
    }

    /// Read access to the models. Hold it briefly: the follower waits for it.
    pub fn read(&self) -> RwLockReadGuard<'_, ReadModels> {
        self.models.read().unwrap()
    }

    /// The last position folded in.
    pub fn position(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Waits until the models reflect `position` (a position an append returned).
    pub async fn wait_for(&self, position: u64) {
        let mut applied = self.applied.subscribe();
        // The sender lives as long as `self`, so this cannot fail while we hold `&self`.
        let _ = applied.wait_for(|p| *p >= position).await;
    }

    /// Follows the log from the models' position forever, checkpointing per `policy`.
    /// Returns only when the store fails.
    pub async fn follow(
        self: Arc<Self>,
        store: Arc<dyn EventStore>,
        policy: Option<CheckpointPolicy>,
    ) -> Result<(), StoreError> {
        let mut subscription = Subscription::new(store, self.position() + 1);
        let mut checkpointed = self.position();
        let mut last_written = Instant::now();
        loop {
            let batch = subscription.next_batch(FOLD_BATCH).await?;
            // Only this task changes the models, so the room made under the read lock still
            // fits when the write lock is taken.
            let room = self.read().room_for(batch.len());
            let (position, replaced) = {
                let mut models = self.models.write().unwrap();
                let replaced = models.make_room(room);
                for envelope in &batch {
                    models.apply(envelope);
                }
                (models.position, replaced)
            };
            drop(replaced);
            self.applied.send_replace(position);
            if let Some(policy) = &policy
                && position - checkpointed >= policy.every_events
                && last_written.elapsed() >= policy.min_interval
            {
                self.checkpoint(policy);
                checkpointed = position;
                last_written = Instant::now();
            }
        }
    }

    /// Writes a checkpoint of the current models now; a failure is logged, not fatal (a
    /// checkpoint is only a cache).
    pub fn checkpoint(&self, policy: &CheckpointPolicy) {
        let models = self.read();
        match checkpoint::save(&policy.path, &models) {
            Ok(()) => tracing::debug!(position = models.position, "checkpoint written"),
            Err(err) => tracing::warn!(%err, path = %policy.path.display(), "checkpoint failed"),
        }
    }
}
