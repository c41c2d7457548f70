//! Keeps the read models current: follows the log, folds each new batch, checkpoints now and
//! then, and lets a handler wait until its own write is visible.

use super::{ReadModels, checkpoint};
use crate::events::{Envelope, EventStore, StoreError, Subscription};
use std::path::PathBuf;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How many events the follower folds under one write lock.
const FOLD_BATCH: usize = 4096;

/// When the follower writes checkpoints. Writing one holds the models' read lock for as
/// long as serializing them takes (about 80 ms for the models of a million events; syncing
/// the file comes after, on another thread), and nothing is folded meanwhile (where the
/// log's writer folds, nothing is committed either), so every answer waiting for its write
/// to become visible waits too: checkpoints wait for a quiet moment.
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

/// Read models shared by every handler, updated by one follower (see [`LiveModels::follow`]).
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

    /// Read access to the models. Hold it briefly: folding waits for it, and where the log's
    /// writer folds, so does every append.
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

    /// Follows the log from the models' position forever, checkpointing per `policy`. Folds
    /// what is stored up to the head, then has the store hand it each batch it commits
    /// ([`EventStore::listen`]) where it can: the batch is folded on the writer's thread
    /// before its appends are answered, so an answer rarely waits in [`Self::wait_for`] and no
    /// thread is woken to fold. Where the store cannot, it reads each batch after it is
    /// appended. Returns only when the store fails while it reads.
    pub async fn follow(
        self: Arc<Self>,
        store: Arc<dyn EventStore>,
        policy: Option<CheckpointPolicy>,
    ) -> Result<(), StoreError> {
        let mut schedule = policy.map(|policy| Schedule::new(policy, self.position()));
        let mut subscription = Subscription::new(store.clone(), self.position() + 1);
        loop {
            let folder = self.clone();
            let listener = Box::new(move |batch: &[Envelope]| folder.fold(batch));
            if store.listen(self.position(), listener).is_ok() {
                return match schedule {
                    Some(schedule) => self.checkpoint_while_listening(schedule).await,
                    None => std::future::pending().await,
                };
            }
            let due = schedule.as_ref().is_some_and(|s| s.due(self.position()));
            let batch = match schedule.as_mut() {
                Some(schedule) if due => {
                    let next = subscription.next_batch(FOLD_BATCH);
                    match tokio::time::timeout(schedule.policy.quiet, next).await {
                        Ok(batch) => batch?,
                        Err(_quiet) => {
                            self.checkpoint_on(schedule).await;
                            continue;
                        }
                    }
                }
                _ => subscription.next_batch(FOLD_BATCH).await?,
            };
            self.fold(&batch);
            if let Some(schedule) = schedule.as_mut().filter(|s| due && s.overdue()) {
                self.checkpoint_on(schedule).await;
            }
        }
    }

    /// Folds `batch` (the events right after the models' position) and tells the waiting.
    fn fold(&self, batch: &[Envelope]) {
        let position = {
            let mut models = self.models.write().unwrap();
            for envelope in batch {
                models.apply(envelope);
            }
            models.position
        };
        self.applied.send_replace(position);
    }

    /// Writes checkpoints per `schedule` while the store's writer folds. Looks, four times
    /// in the shorter of `quiet` and `max_interval`, at how far the models have come: they
    /// are quiet once they have not moved for `quiet`. Never returns.
    async fn checkpoint_while_listening(&self, mut schedule: Schedule) -> Result<(), StoreError> {
        let (quiet, max_interval) = (schedule.policy.quiet, schedule.policy.max_interval);
        let look = (quiet.min(max_interval) / 4).max(Duration::from_millis(1));
        let (mut seen, mut still_since) = (self.position(), Instant::now());
        loop {
            tokio::time::sleep(look).await;
            let position = self.position();
            if position != seen {
                (seen, still_since) = (position, Instant::now());
            }
            if schedule.due(position) && (still_since.elapsed() >= quiet || schedule.overdue()) {
                self.checkpoint_on(&mut schedule).await;
            }
        }
    }

    /// Writes a checkpoint per `schedule` and notes it there.
    async fn checkpoint_on(&self, schedule: &mut Schedule) {
        self.start_checkpoint(&schedule.policy).await;
        schedule.written(self.position());
    }

    /// Writes a checkpoint of the current models now and waits until it is durable; a
    /// failure is logged, not fatal (a checkpoint is only a cache).
    pub async fn checkpoint(&self, policy: &CheckpointPolicy) {
        // The commit's task ends when the checkpoint is durable or has failed, and logs which.
        let _ = self.start_checkpoint(policy).await.await;
    }

    /// Writes a checkpoint of the current models and leaves making it durable to a blocking
    /// thread: the models are held (and nothing is folded) only while the file is written,
    /// not while it is synced.
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

/// When the next checkpoint is due under a policy.
struct Schedule {
    policy: CheckpointPolicy,
    /// The position of the last checkpoint.
    checkpointed: u64,
    last_written: Instant,
}

impl Schedule {
    /// As if a checkpoint at `position` had just been written.
    fn new(policy: CheckpointPolicy, position: u64) -> Schedule {
        Schedule {
            policy,
            checkpointed: position,
            last_written: Instant::now(),
        }
    }

    /// Whether enough events and time have passed since the last checkpoint.
    fn due(&self, position: u64) -> bool {
        position - self.checkpointed >= self.policy.every_events
            && self.last_written.elapsed() >= self.policy.min_interval
    }

    /// Whether the last checkpoint is so old that the next should not wait for quiet.
    fn overdue(&self) -> bool {
        self.last_written.elapsed() >= self.policy.max_interval
    }

    fn written(&mut self, position: u64) {
        self.checkpointed = position;
        self.last_written = Instant::now();
    }
}
