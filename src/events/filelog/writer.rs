//! The single writer thread: group commit. It takes every append waiting in its queue,
//! checks each one's expected version, frames them into one buffer, writes it, calls
//! fdatasync once, and only then publishes the records (to the index, and as envelopes to
//! the listener, see [`crate::events::EventStore::listen`]) and answers the appenders.
//!
//! Once durable, the log's pages are of little use in the page cache: a log is read back
//! rarely, and mostly near its end. The writer tells the kernel to drop them once they are
//! [`CACHED_TAIL_BYTES`] behind the end, as PostgreSQL does with its WAL. The page cache then
//! does not grow with the log, and each new page is written into memory the kernel just
//! freed (see BENCHMARKS.md for what growing it cost here).
//!
//! A failed write or fdatasync is fatal: the log refuses every later append, since what the
//! kernel kept of the failed write is unknown. The next start recovers from what is on disk.

use super::frame;
use super::index::{Location, Segment};
use super::recovery::segment_name;
use super::{Shared, sync_dir};
use crate::events::envelope::{ChainHash, Envelope, NewEvent, Placement, encode_body};
use crate::events::{Appended, ExpectedVersion, StoreError};
use rustix::fs::Advice;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::num::NonZeroU64;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use tokio::sync::oneshot;

/// Most appends committed by one fdatasync.
const MAX_BATCH_APPENDS: usize = 4096;
/// Most payload bytes committed by one fdatasync (one append may exceed it alone).
const MAX_BATCH_BYTES: usize = 8 << 20;
/// How much of the end of the log stays in the page cache after it is durable.
pub const CACHED_TAIL_BYTES: u64 = 8 << 20;
/// The log's pages are dropped from the page cache this many bytes at a time.
pub const DROP_STEP: u64 = 1 << 20;

/// One append waiting for the writer.
pub struct AppendRequest {
    /// The stream.
    pub stream: String,
    /// The version the appender expects.
    pub expected: ExpectedVersion,
    /// The events, each with its payload already encoded.
    pub events: Vec<(NewEvent, Vec<u8>)>,
    /// Where the outcome goes.
    pub reply: oneshot::Sender<Result<Appended, StoreError>>,
}

impl AppendRequest {
    fn payload_bytes(&self) -> usize {
        self.events.iter().map(|(_, p)| p.len()).sum()
    }
}

/// The writer's own state: the open tail segment and where the chain stands.
pub struct Writer {
    pub(super) shared: Arc<Shared>,
    pub(super) file: Arc<File>,
    pub(super) size: u64,
    pub(super) segment_bytes: u64,
    pub(super) next_position: u64,
    pub(super) last_hash: ChainHash,
    pub(super) node: String,
    pub(super) buf: Vec<u8>,
    /// The tail segment's pages before this offset were last dropped from the page cache
    /// (see [`CACHED_TAIL_BYTES`]).
    pub(super) dropped_to: u64,
    /// The previous segment, whose pages stay in the page cache until the tail segment holds
    /// the whole cached tail.
    pub(super) previous: Option<Arc<File>>,
}

/// Appends refused for a version conflict, waiting to be answered.
struct Conflicts(Vec<(oneshot::Sender<Result<Appended, StoreError>>, StoreError)>);

impl Conflicts {
    /// Answers every conflict; if the batch that caused them failed to write (`failure`),
    /// the log is unavailable instead.
    fn answer(self, failure: Option<&String>) {
        for (reply, conflict) in self.0 {
            let outcome = match failure {
                None => conflict,
                Some(reason) => StoreError::Unavailable(reason.clone()),
            };
            let _ = reply.send(Err(outcome));
        }
    }
}

/// An append that passed its version check and was framed into the buffer.
struct Placed {
    stream: String,
    reply: oneshot::Sender<Result<Appended, StoreError>>,
    appended: Appended,
    /// Where each of its records is.
    locations: Vec<Location>,
    /// Each of its events as a reader of the record would decode it.
    envelopes: Vec<Envelope>,
}

impl Writer {
    /// Serves the queue until every sender is gone.
    pub fn run(mut self, queue: Receiver<AppendRequest>) {
        while let Ok(first) = queue.recv() {
            let mut bytes = first.payload_bytes();
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH_APPENDS && bytes < MAX_BATCH_BYTES {
                match queue.try_recv() {
                    Ok(next) => {
                        bytes += next.payload_bytes();
                        batch.push(next);
                    }
                    Err(_) => break,
                }
            }
            self.commit(batch);
        }
    }

    fn commit(&mut self, batch: Vec<AppendRequest>) {
        if let Some(reason) = self.shared.failure() {
            for request in batch {
                let _ = request
                    .reply
                    .send(Err(StoreError::Unavailable(reason.clone())));
            }
            return;
        }
        if self.size >= self.segment_bytes
            && let Err(err) = self.roll()
        {
            let reason = self
                .shared
                .fail(format!("creating a new segment failed: {err}"));
            for request in batch {
                let _ = request
                    .reply
                    .send(Err(StoreError::Unavailable(reason.clone())));
            }
            return;
        }
        let (placed, conflicts) = self.place(batch);
        if placed.is_empty() {
            conflicts.answer(None);
            return;
        }
        let written = self
            .file
            .write_all_at(&self.buf, self.size)
            .and_then(|()| self.file.sync_data());
        if let Err(err) = written {
            let reason = self
                .shared
                .fail(format!("write or fdatasync failed: {err}"));
            for p in placed {
                let _ = p.reply.send(Err(StoreError::Unavailable(reason.clone())));
            }
            conflicts.answer(Some(&reason));
            return;
        }
        self.size += self.buf.len() as u64;
        let mut listener = self.shared.listener.lock().unwrap();
        {
            let mut index = self.shared.index.write().unwrap();
            for p in &placed {
                let first_version = p.appended.stream_version + 1 - p.locations.len() as u64;
                for (version, location) in (first_version..).zip(&p.locations) {
                    index.push(&p.stream, version, *location);
                }
            }
        }
        let mut replies = Vec::with_capacity(placed.len());
        let mut committed = Vec::with_capacity(placed.len());
        for p in placed {
            replies.push((p.reply, p.appended));
            committed.extend(p.envelopes);
        }
        if let Some(listener) = listener.as_mut() {
            listener(&committed);
        }
        self.shared.head.send_replace(self.next_position - 1);
        drop(listener);
        for (reply, appended) in replies {
            let _ = reply.send(Ok(appended));
        }
        conflicts.answer(None);
        self.drop_cached_behind();
    }

    /// Checks versions and frames every acceptable append into `self.buf`. The conflicting
    /// ones (nothing of theirs is written) are answered after the batch is durable, so an
    /// appender told of a conflict then reads the record that caused it.
    fn place(&mut self, batch: Vec<AppendRequest>) -> (Vec<Placed>, Conflicts) {
        self.buf.clear();
        let mut pending: HashMap<String, u64> = HashMap::new();
        let mut placed = Vec::with_capacity(batch.len());
        let mut conflicts = Conflicts(Vec::new());
        let index = self.shared.index.read().unwrap();
        for request in batch {
            let current = match pending.get(&request.stream) {
                Some(&version) => version,
                None => match index.stream_version(&request.stream) {
                    Ok(version) => version,
                    Err(err) => {
                        let err = StoreError::io("reading the log index")(err);
                        let _ = request.reply.send(Err(err));
                        continue;
                    }
                },
            };
            if let ExpectedVersion::Exact(expected) = request.expected
                && expected != current
            {
                conflicts.0.push((
                    request.reply,
                    StoreError::Conflict {
                        stream: request.stream,
                        expected,
                        actual: current,
                    },
                ));
                continue;
            }
            let first_position = self.next_position;
            let events = request.events.len();
            let mut locations = Vec::with_capacity(events);
            let mut envelopes = Vec::with_capacity(events);
            for (i, (event, payload)) in request.events.into_iter().enumerate() {
                let offset = self.size + self.buf.len() as u64;
                let place = Placement {
                    position: self.next_position,
                    version: current + 1 + i as u64,
                    stream: &request.stream,
                    node: &self.node,
                    prev_hash: self.last_hash,
                };
                let (len, hash) = frame::append(&mut self.buf, |out| {
                    encode_body(out, &place, &event, &payload)
                });
                locations.push(Location {
                    offset: offset as u32,
                    len,
                });
                envelopes.push(Envelope::placed(&place, event, hash));
                self.last_hash = hash;
                self.next_position += 1;
            }
            let stream_version = current + events as u64;
            pending.insert(request.stream.clone(), stream_version);
            placed.push(Placed {
                stream: request.stream,
                reply: request.reply,
                appended: Appended {
                    first_position,
                    last_position: self.next_position - 1,
                    stream_version,
                },
                locations,
                envelopes,
            });
        }
        (placed, conflicts)
    }

    /// Asks the kernel to drop the durable pages more than [`CACHED_TAIL_BYTES`] behind the
    /// end of the log from its page cache. Each time from the segment's start: the kernel
    /// drops only the units of memory it caches a file in (folios, up to 2 MiB) that lie
    /// wholly in the range, so the one the last range cut is dropped with the next.
    fn drop_cached_behind(&mut self) {
        if self.size >= CACHED_TAIL_BYTES
            && let Some(previous) = self.previous.take()
        {
            drop_cached(&previous, None);
        }
        let until = self.size.saturating_sub(CACHED_TAIL_BYTES);
        if until >= self.dropped_to + DROP_STEP {
            drop_cached(&self.file, NonZeroU64::new(until));
            self.dropped_to = until;
        }
    }

    /// Starts a new segment at the next position; durable (directory synced) before use.
    fn roll(&mut self) -> std::io::Result<()> {
        let path = self
            .shared
            .segment_dir
            .join(segment_name(self.next_position));
        let file = Arc::new(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)?,
        );
        sync_dir(&self.shared.segment_dir)?;
        self.shared
            .index
            .write()
            .unwrap()
            .add_segment(Segment::with_file(self.next_position, path, file.clone()));
        self.previous = Some(std::mem::replace(&mut self.file, file));
        self.dropped_to = 0;
        self.size = 0;
        Ok(())
    }
}

/// Advises the kernel to drop the first `len` bytes of `file` (all of it if `None`) from the
/// page cache; they are durable, so clean. Advice only: a failure changes nothing on disk.
fn drop_cached(file: &File, len: Option<NonZeroU64>) {
    if let Err(err) = rustix::fs::fadvise(file, 0, len, Advice::DontNeed) {
        tracing::debug!(%err, "dropping the log's durable pages from the page cache failed");
    }
}
