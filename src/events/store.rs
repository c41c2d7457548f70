//! The event store contract: append with an expected version, read a stream, read
//! everything from a position, subscribe (catch up, then follow live), and, where the
//! store commits in this process, listen (be handed each batch as it is committed).

use super::envelope::{Envelope, NewEvent};
use async_trait::async_trait;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::watch;

/// What the appender believes the stream's version to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Exactly this many events are in the stream (0: the stream does not exist yet).
    Exact(u64),
    /// Append whatever the stream holds (for streams nobody decides on, such as denials).
    Any,
}

/// Where an append landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// Global position of the first appended event.
    pub first_position: u64,
    /// Global position of the last appended event; wait for projections to reach it to read
    /// your own write.
    pub last_position: u64,
    /// The stream's version after the append.
    pub stream_version: u64,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Someone else appended first: reload the stream and decide again. Nothing was written.
    #[error(
        "version conflict on stream `{stream}`: expected version {expected}, but it is at {actual}"
    )]
    Conflict {
        /// The stream.
        stream: String,
        /// The version the appender expected.
        expected: u64,
        /// The version the stream is at.
        actual: u64,
    },
    /// The request itself is unusable (no events, a name too long, ...). Nothing was written.
    #[error("invalid append: {0}")]
    Invalid(String),
    /// Stored data is damaged; the message names where.
    #[error("{0}")]
    Corrupt(String),
    /// A record is intact but this build cannot read it (a newer event type or schema).
    #[error("record at position {position} cannot be read by this build: {reason}")]
    Undecodable {
        /// Its global position.
        position: u64,
        /// Why.
        reason: String,
    },
    /// The store cannot take writes any more (a failed fdatasync is fatal) or has shut down.
    #[error("event store unavailable: {0}")]
    Unavailable(String),
    /// An I/O error outside the write path.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// One failure can be the outcome of several commands (a batch appended at once); an I/O
/// error is copied by kind and message.
impl Clone for StoreError {
    fn clone(&self) -> StoreError {
        match self {
            StoreError::Conflict {
                stream,
                expected,
                actual,
            } => StoreError::Conflict {
                stream: stream.clone(),
                expected: *expected,
                actual: *actual,
            },
            StoreError::Invalid(message) => StoreError::Invalid(message.clone()),
            StoreError::Corrupt(message) => StoreError::Corrupt(message.clone()),
            StoreError::Undecodable { position, reason } => StoreError::Undecodable {
                position: *position,
                reason: reason.clone(),
            },
            StoreError::Unavailable(message) => StoreError::Unavailable(message.clone()),
            StoreError::Io { context, source } => StoreError::Io {
                context: context.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
        }
    }
}

impl StoreError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StoreError {
        let context = context.into();
        move |source| StoreError::Io { context, source }
    }
}

/// Which event types a stream read decodes (by wire name): see [`EventStore::read_stream_of`].
pub type TypeFilter = fn(&str) -> bool;

/// What [`EventStore::read_stream_of`] read of a stream.
#[derive(Debug, Default)]
pub struct StreamEvents {
    /// The events asked for, in stream order.
    pub envelopes: Vec<Envelope>,
    /// The version of the stream's last event, read or skipped (0: no such stream).
    pub version: u64,
}

/// An append-only log of streams of events, with one global order.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` to `stream` if its version is `expected`, all or nothing.
    /// Returns only once the events are durable.
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Appended, StoreError>;

    /// The events of `stream` with version `from_version` or later, in order.
    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
    ) -> Result<Vec<Envelope>, StoreError> {
        Ok(self
            .read_stream_of(stream, from_version, |_| true)
            .await?
            .envelopes)
    }

    /// The events of `stream` with version `from_version` or later whose type `wanted`
    /// accepts, in order, and the stream's version. The others are skipped without being
    /// decoded: an aggregate reads its stream this way, leaving out the events its state
    /// does not depend on.
    async fn read_stream_of(
        &self,
        stream: &str,
        from_version: u64,
        wanted: TypeFilter,
    ) -> Result<StreamEvents, StoreError>;

    /// Up to `max` events from global position `from` on, in global order.
    async fn read_all(&self, from: u64, max: usize) -> Result<Vec<Envelope>, StoreError>;

    /// The last durable global position (0 for an empty log), watched.
    fn head(&self) -> watch::Receiver<u64>;

    /// Hands every batch of events committed after position `after` to `listener`, in
    /// global order, on the thread that commits them: once the batch is durable and before
    /// any of its appends is answered, so an appender finds what the listener made of its
    /// events as soon as its append returns. Gives `listener` back when the store cannot:
    /// it has no writer in this process, or its head is no longer `after` (read up to the
    /// head and ask again). The listener holds up every append while it runs.
    fn listen(&self, after: u64, listener: CommitListener) -> Result<(), CommitListener> {
        let _ = after;
        Err(listener)
    }
}

/// What [`EventStore::listen`] calls with each committed batch.
pub type CommitListener = Box<dyn FnMut(&[Envelope]) + Send>;

/// Most events in one append.
pub const MAX_EVENTS_PER_APPEND: usize = 1024;

/// Rejects appends that no backend would store.
pub fn validate_append(stream: &str, events: &[NewEvent]) -> Result<(), StoreError> {
    if events.is_empty() {
        return Err(StoreError::Invalid("no events to append".into()));
    }
    if events.len() > MAX_EVENTS_PER_APPEND {
        return Err(StoreError::Invalid(format!(
            "{} events in one append; at most {MAX_EVENTS_PER_APPEND}",
            events.len()
        )));
    }
    if stream.is_empty() || stream.len() > 255 {
        return Err(StoreError::Invalid(format!(
            "stream names have 1 to 255 bytes; got {}",
            stream.len()
        )));
    }
    Ok(())
}

/// Follows the global log from a position: catches up on what is stored, then waits for
/// what is appended. Never skips an event, never repeats one.
pub struct Subscription {
    store: Arc<dyn EventStore>,
    head: watch::Receiver<u64>,
    next: u64,
    buffer: VecDeque<Envelope>,
}

/// How many events a subscription reads from the store at once.
const SUBSCRIPTION_BATCH: usize = 4096;

impl Subscription {
    /// A subscription whose first event is at position `from` (1 for everything).
    pub fn new(store: Arc<dyn EventStore>, from: u64) -> Subscription {
        let head = store.head();
        Subscription {
            store,
            head,
            next: from.max(1),
            buffer: VecDeque::new(),
        }
    }

    /// The next event, waiting for it if it is not yet appended.
    pub async fn next(&mut self) -> Result<Envelope, StoreError> {
        loop {
            if let Some(envelope) = self.buffer.pop_front() {
                return Ok(envelope);
            }
            let batch = self.next_batch(SUBSCRIPTION_BATCH).await?;
            self.buffer.extend(batch);
        }
    }

    /// The next events (at least one, at most `max`), waiting if none is appended yet.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<Envelope>, StoreError> {
        if !self.buffer.is_empty() {
            let take = self.buffer.len().min(max);
            return Ok(self.buffer.drain(..take).collect());
        }
        let next = self.next;
        self.head
            .wait_for(|head| *head >= next)
            .await
            .map_err(|_| StoreError::Unavailable("the store has shut down".into()))?;
        let batch = self.store.read_all(next, max).await?;
        if let Some(last) = batch.last() {
            if batch[0].position != next || last.position != next + batch.len() as u64 - 1 {
                return Err(StoreError::Corrupt(format!(
                    "read_all({next}) returned positions {}..={}, not a gap-free run",
                    batch[0].position, last.position
                )));
            }
            self.next = last.position + 1;
        }
        Ok(batch)
    }

    /// The position of the next event this subscription will deliver.
    pub fn position(&self) -> u64 {
        self.next
    }
}
