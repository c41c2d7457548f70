//! Keeps the read models current: follows the log, folds each new batch, checkpoints now and
//! then, and lets a handler wait until its own write is visible.

use super::{ReadModels, checkpoint};
use crate::events::{EventStore, StoreError, Subscription};
use std::path::PathBuf;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How many events the follower folds under one write lock.
const FOLD_BATCH: usize = 4096;

/// When the follower writes checkpoints. Writing one holds the models' read lock for as
/// long as serializing them takes (about 80 ms for the models of a million events; syncing
/// the file comes after, on another thread), and the follower folds nothing meanwhile, so
/// every answer waiting for its write to become visible waits too: checkpoints wait for a
/// quiet moment.
#[derive(Clone, Debug)]
pub struct CheckpointPolicy {
    /// The checkpoint file.
    pub path: PathBuf,
    /// One is due after this many events since the last...
    pub every_events: u64,
    /// ...and no sooner than this after the last one.
    pub min_interval: Duration,
    /// A due checkpoint is written once nothing has been appended for this long...
    pub quiet: Duration,
    /// ...or, under load that never pauses, once the last one is this old.
    pub max_interval: Duration,
}

/// Read models shared by every handler, updated by one follower.
pub struct LiveModels {
    models: RwLock<ReadModels>,
    applied: watch::Sender<u64>,
    /// Held from the start of a checkpoint until it is durable and in place, so that two
    /// never share the temporary file.
    checkpoint_file: Arc<tokio::sync::Mutex<()>>,
}

impl LiveModels {
    /// Shares `models` (already caught up to some position).
    pub fn new(models: ReadModels) -> Arc<LiveModels> {
        let (applied, _) = watch::channel(models.position);
        Arc::new(LiveModels {
            models: RwLock::new(models),
            applied,
            checkpoint_file: Arc::default(),
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
            let due = policy.as_ref().filter(|policy| {
                self.position() - checkpointed >= policy.every_events
                    && last_written.elapsed() >= policy.min_interval
            });
            let batch = match due {
                None => subscription.next_batch(FOLD_BATCH).await?,
                Some(policy) => {
                    let next = subscription.next_batch(FOLD_BATCH);
                    match tokio::time::timeout(policy.quiet, next).await {
                        Ok(batch) => batch?,
                        Err(_quiet) => {
                            self.start_checkpoint(policy).await;
                            checkpointed = self.position();
                            last_written = Instant::now();
                            continue;
                        }
                    }
                }
            };
            let position = {
                let mut models = self.models.write().unwrap();
                for envelope in &batch {
                    models.apply(envelope);
                }
                models.position
            };
            self.applied.send_replace(position);
            if let Some(policy) = due
                && last_written.elapsed() >= policy.max_interval
            {
                self.start_checkpoint(policy).await;
                checkpointed = position;
                last_written = Instant::now();
            }
        }
    }

    /// Writes a checkpoint of the current models now and waits until it is durable; a
    /// failure is logged, not fatal (a checkpoint is only a cache).
    pub async fn checkpoint(&self, policy: &CheckpointPolicy) {
        // The commit's task ends when the checkpoint is durable or has failed, and logs which.
        let _ = self.start_checkpoint(policy).await.await;
    }

    /// Writes a checkpoint of the current models and leaves making it durable to a blocking
    /// thread: the models are held (and the follower folds nothing) only while the file is
    /// written, not while it is synced.
    async fn start_checkpoint(&self, policy: &CheckpointPolicy) -> JoinHandle<()> {
        let file = self.checkpoint_file.clone().lock_owned().await;
        let started = Instant::now();
        let (position, written) = {
            let models = self.read();
            (models.position, checkpoint::write(&policy.path, &models))
        };
        let held = started.elapsed();
        let path = policy.path.clone();
        tokio::task::spawn_blocking(move || {
            let _file = file;
            match written.and_then(checkpoint::Written::commit) {
                Ok(()) => tracing::debug!(
                    position,
                    held_ms = held.as_millis(),
                    total_ms = started.elapsed().as_millis(),
                    "checkpoint written"
                ),
                Err(err) => tracing::warn!(%err, path = %path.display(), "checkpoint failed"),
            }
        })
    }
}
