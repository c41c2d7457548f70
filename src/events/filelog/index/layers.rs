//! The index's layers below its in-memory one, and the thread that moves them to disk.
//!
//! When the in-memory layer is full the writer freezes it here (a move, no copy) and starts
//! an empty one. A thread of the index's own writes each frozen layer into a [`Table`] on
//! disk, then merges the newest table into the one before it while the older is less than
//! twice its size, so a log of `n` streams keeps about `log2(n / full layer)` tables and
//! writes each stream's entry about as many times. Lookups see the frozen layers and the
//! tables as one consistent list (swapped under its lock), newest first. A layer that could
//! not be written stays in memory, still found, and is tried again at the next spill.

use super::streams::{Entry, StreamKey, Streams};
use super::table::Table;
use hashbrown::DefaultHashBuilder;
use std::hash::BuildHasher;
use std::io;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// The frozen layers and the tables, oldest first.
#[derive(Debug, Default)]
struct Stack {
    frozen: Vec<Arc<Streams>>,
    tables: Vec<Arc<Table>>,
}

/// What the index asks of its spilling thread.
enum Work {
    /// A layer was frozen.
    Frozen,
    /// Answer once everything frozen before has been handled.
    Settle(SyncSender<()>),
}

/// The layers below the in-memory one, shared with the thread that writes them to disk.
#[derive(Debug)]
pub struct Layers {
    stack: Arc<RwLock<Stack>>,
    work: Sender<Work>,
}

impl Layers {
    /// Layers spilled to unnamed files in `dir`, keyed by `hasher`'s hashes.
    pub fn new(dir: PathBuf, hasher: DefaultHashBuilder) -> io::Result<Layers> {
        let stack = Arc::new(RwLock::new(Stack::default()));
        let (work, queue) = mpsc::channel();
        let spiller = Spiller {
            stack: stack.clone(),
            dir,
            hasher,
        };
        std::thread::Builder::new()
            .name("warrant-log-index".into())
            .spawn(move || spiller.run(queue))?;
        Ok(Layers { stack, work })
    }

    /// Takes `full` over, to be written to disk.
    pub fn freeze(&self, full: Streams) {
        self.stack.write().unwrap().frozen.push(Arc::new(full));
        let _ = self.work.send(Work::Frozen);
    }

    /// Waits until every layer frozen so far is on disk (or failed to be written).
    pub fn settle(&self) {
        let (done, wait) = mpsc::sync_channel(1);
        if self.work.send(Work::Settle(done)).is_ok() {
            let _ = wait.recv();
        }
    }

    /// The stream's version in the newest layer holding any of it.
    pub fn version(&self, key: StreamKey, hash: u64) -> io::Result<Option<u32>> {
        let stack = self.stack.read().unwrap();
        if let Some(version) = stack.frozen.iter().rev().find_map(|f| f.version(key, hash)) {
            return Ok(Some(version));
        }
        for table in stack.tables.iter().rev() {
            if let Some(version) = table.version(key, hash)? {
                return Ok(Some(version));
            }
        }
        Ok(None)
    }

    /// What the layers hold of the stream, newest first, down to the layer holding its
    /// event at `version` (or its first event).
    pub fn entries(&self, key: StreamKey, hash: u64, version: u32) -> io::Result<Vec<Entry>> {
        let stack = self.stack.read().unwrap();
        let frozen = stack.frozen.iter().rev().map(|f| Ok(f.get(key, hash)));
        let tables = stack.tables.iter().rev().map(|t| t.get(key, hash));
        let mut found = Vec::new();
        for entry in frozen.chain(tables) {
            if let Some(entry) = entry? {
                let reaches = entry.first_version() <= version.max(1);
                found.push(entry);
                if reaches {
                    break;
                }
            }
        }
        Ok(found)
    }
}

/// The thread that writes frozen layers into tables and merges them.
struct Spiller {
    stack: Arc<RwLock<Stack>>,
    dir: PathBuf,
    hasher: DefaultHashBuilder,
}

impl Spiller {
    fn run(self, queue: Receiver<Work>) {
        for work in queue {
            if let Err(err) = self.spill() {
                tracing::warn!(
                    %err,
                    dir = %self.dir.display(),
                    "the log index could not write its streams to disk; keeping them in memory"
                );
            }
            if let Work::Settle(done) = work {
                let _ = done.send(());
            }
        }
    }

    fn hash_of(&self) -> impl Fn(StreamKey) -> u64 + '_ {
        |key| self.hasher.hash_one(key)
    }

    /// Writes every frozen layer into a table, oldest first, merging as it goes.
    fn spill(&self) -> io::Result<()> {
        loop {
            let oldest = self.stack.read().unwrap().frozen.first().cloned();
            let Some(oldest) = oldest else {
                return Ok(());
            };
            let started = Instant::now();
            let sorted = oldest.sorted().map(Ok);
            let table = Table::write(&self.dir, oldest.len(), sorted, self.hash_of())?;
            let elapsed = started.elapsed();
            tracing::debug!(
                streams = table.len(),
                ?elapsed,
                "log index: a table written"
            );
            let written = {
                let mut stack = self.stack.write().unwrap();
                stack.tables.push(Arc::new(table));
                stack.frozen.remove(0)
            };
            drop(written); // freed after the lock, which lookups wait on
            self.merge()?;
        }
    }

    /// Merges the newest table into the one before it while that one is less than twice its
    /// size. Only this thread changes the tables, so the two are still the last two when the
    /// merged table replaces them.
    fn merge(&self) -> io::Result<()> {
        loop {
            let (older, newer) = {
                let stack = self.stack.read().unwrap();
                match stack.tables.as_slice() {
                    [.., older, newer] if older.len() < 2 * newer.len() => {
                        (older.clone(), newer.clone())
                    }
                    _ => return Ok(()),
                }
            };
            let started = Instant::now();
            let merged = Table::merge(&self.dir, &older, &newer, self.hash_of())?;
            let elapsed = started.elapsed();
            tracing::debug!(
                streams = merged.len(),
                ?elapsed,
                "log index: two tables merged"
            );
            let replaced: Vec<Arc<Table>> = {
                let mut stack = self.stack.write().unwrap();
                let n = stack.tables.len();
                stack.tables.splice(n - 2.., [Arc::new(merged)]).collect()
            };
            // Closed after the lock: the kernel frees an unlinked file's pages on its last
            // close, milliseconds for a large table, which no lookup should wait for.
            drop((replaced, older, newer));
        }
    }
}
