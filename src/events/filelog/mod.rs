//! The embedded backend: a directory of append-only segment files with group commit.
//!
//! ```text
//! DIR/log/00000000000000000001.seg    records 1..
//! DIR/log/00000000000000412907.seg    records 412907..   (a new segment past 64 MiB)
//! DIR/LOCK                            held by the one process that writes
//! ```
//!
//! Frames are described in [`frame`], record bodies in [`crate::events::envelope`], what
//! opening does with damage in [`recovery`], and how appends become durable in [`writer`].

pub mod frame;
pub mod index;
pub mod recovery;
pub mod writer;

use self::index::{Index, Run, Segment, Spill};
pub use self::recovery::TornTail;
use self::writer::{AppendRequest, Writer};
use super::envelope::{Envelope, NewEvent, RecordError, hash_body, parse_body, prev_hash_of};
use super::store::validate_append;
use super::{
    Appended, CommitListener, EventStore, ExpectedVersion, StoreError, StreamEvents, TypeFilter,
};
use async_trait::async_trait;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::{oneshot, watch};

/// A new segment is started once the current one reaches this size.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;

/// How to open a log directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Take the directory lock, truncate a torn tail, accept appends.
    ReadWrite,
    /// Read only: change nothing on disk, report a torn tail instead of truncating it.
    ReadOnly,
}

/// Options for [`FileLog::open`].
#[derive(Clone, Debug)]
pub struct FileLogOptions {
    /// Read-write or read-only.
    pub mode: OpenMode,
    /// The node name written into every record.
    pub node: String,
    /// Size at which a new segment is started.
    pub segment_bytes: u64,
    /// How many streams the index keeps in memory before it moves them to disk.
    pub index_streams_in_memory: usize,
}

impl FileLogOptions {
    /// Read-write, default segment size.
    pub fn writer(node: impl Into<String>) -> FileLogOptions {
        FileLogOptions {
            mode: OpenMode::ReadWrite,
            node: node.into(),
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            index_streams_in_memory: Spill::STREAMS,
        }
    }

    /// Read-only.
    pub fn reader() -> FileLogOptions {
        FileLogOptions {
            mode: OpenMode::ReadOnly,
            node: String::new(),
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            index_streams_in_memory: Spill::STREAMS,
        }
    }
}

/// State shared by the handle and the writer thread.
pub(crate) struct Shared {
    segment_dir: PathBuf,
    index: RwLock<Index>,
    head: watch::Sender<u64>,
    failure: Mutex<Option<String>>,
    /// Who is handed each committed batch ([`EventStore::listen`]). The writer holds it from
    /// indexing a batch to moving the head past it, so a listener is installed between
    /// batches and at a head its caller has read up to.
    listener: Mutex<Option<CommitListener>>,
}

impl Shared {
    fn failure(&self) -> Option<String> {
        self.failure.lock().unwrap().clone()
    }

    /// Marks the log as failed for good; returns the reason given to appenders.
    fn fail(&self, reason: String) -> String {
        tracing::error!(%reason, "event log failed; refusing all further appends");
        *self.failure.lock().unwrap() = Some(reason.clone());
        reason
    }
}

/// The embedded event log.
pub struct FileLog {
    shared: Arc<Shared>,
    queue: Option<Sender<AppendRequest>>,
    torn_tail: Option<TornTail>,
    _lock: Option<File>,
}

impl FileLog {
    /// Opens (creating if needed, in read-write mode) the log in `dir`.
    pub fn open(dir: &Path, options: FileLogOptions) -> Result<FileLog, StoreError> {
        let segment_dir = dir.join("log");
        let lock = match options.mode {
            OpenMode::ReadWrite => {
                std::fs::create_dir_all(&segment_dir).map_err(StoreError::io(format!(
                    "creating {}",
                    segment_dir.display()
                )))?;
                Some(lock_dir(dir)?)
            }
            OpenMode::ReadOnly if !segment_dir.is_dir() => {
                return Err(StoreError::Unavailable(format!(
                    "no event log in {} (expected {})",
                    dir.display(),
                    segment_dir.display()
                )));
            }
            OpenMode::ReadOnly => None,
        };
        let segments = recovery::list_segments(&segment_dir)?;
        let spill = Spill {
            dir: match options.mode {
                OpenMode::ReadWrite => dir.to_owned(),
                OpenMode::ReadOnly => std::env::temp_dir(),
            },
            streams: options.index_streams_in_memory,
        };
        let mut recovered = recovery::scan(&segments, spill)?;
        let head = recovered.index.head();
        let tail = match options.mode {
            OpenMode::ReadWrite => Some(open_tail(&segment_dir, &mut recovered, head)?),
            OpenMode::ReadOnly => None,
        };
        let (head_tx, _) = watch::channel(head);
        let mut log = FileLog {
            shared: Arc::new(Shared {
                segment_dir,
                index: RwLock::new(recovered.index),
                head: head_tx,
                failure: Mutex::new(None),
                listener: Mutex::new(None),
            }),
            queue: None,
            torn_tail: recovered.torn_tail,
            _lock: lock,
        };
        if let Some(tail) = tail {
            if let Some(torn) = &log.torn_tail {
                tracing::warn!(
                    segment = %torn.segment.display(),
                    offset = torn.offset,
                    bytes = torn.bytes,
                    reason = %torn.reason,
                    "truncated a torn record at the end of the log (never acknowledged)"
                );
            }
            let (tx, rx) = mpsc::channel();
            let writer = Writer {
                shared: log.shared.clone(),
                file: tail,
                size: recovered.last_segment_len,
                segment_bytes: options.segment_bytes,
                next_position: head + 1,
                last_hash: recovered.last_hash,
                node: options.node,
                buf: Vec::new(),
                dropped_to: 0,
                previous: None,
            };
            std::thread::Builder::new()
                .name("warrant-log-writer".into())
                .spawn(move || writer.run(rx))
                .map_err(StoreError::io("starting the log writer thread"))?;
            log.queue = Some(tx);
        }
        Ok(log)
    }

    /// The torn tail found when opening: truncated in read-write mode, left alone read-only.
    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.torn_tail.as_ref()
    }

    /// How many segment files the log has.
    pub fn segment_count(&self) -> usize {
        self.shared.index.read().unwrap().segments().len()
    }

    /// How many streams the log has.
    pub fn stream_count(&self) -> usize {
        self.shared.index.read().unwrap().stream_count()
    }

    /// Reads every record of `runs`, checking each frame's CRC, and decodes those whose
    /// event type `wanted` accepts. A record's hash is taken from the next record's
    /// `prev_hash` (the chain was verified when the log was opened); only the last record of
    /// a run is hashed, and only if it is wanted.
    fn read_runs(
        &self,
        runs: Vec<Run>,
        wanted: TypeFilter,
        out: &mut Vec<Envelope>,
    ) -> Result<(), StoreError> {
        let mut buf = Vec::new();
        for run in runs {
            buf.resize((run.end - run.start) as usize, 0);
            run.file
                .read_exact_at(&mut buf, run.start)
                .map_err(|e| StoreError::io(format!("reading {}", run.path.display()))(e))?;
            let corrupt = |at: usize, position: u64, reason: &dyn std::fmt::Display| {
                StoreError::Corrupt(format!(
                    "corrupt record in segment {} at offset {} (position {position}): {reason}",
                    run.path.display(),
                    run.start + at as u64
                ))
            };
            let mut bodies = Vec::new();
            let mut offset = 0;
            while offset < buf.len() {
                let position = run.first + bodies.len() as u64;
                let body =
                    frame::read(&buf[offset..]).map_err(|e| corrupt(offset, position, &e))?;
                bodies.push((offset, body));
                offset += frame::HEADER + body.len();
            }
            for (i, &(at, body)) in bodies.iter().enumerate() {
                let position = run.first + i as u64;
                let raw = parse_body(body).map_err(|e| corrupt(at, position, &e))?;
                if !wanted(raw.event_type) {
                    continue;
                }
                let hash = bodies
                    .get(i + 1)
                    .and_then(|(_, next)| prev_hash_of(next))
                    .unwrap_or_else(|| hash_body(body));
                let envelope = Envelope::from_raw(raw, hash).map_err(|e| match e {
                    RecordError::Decode(reason) => StoreError::Undecodable {
                        position,
                        reason: reason.to_string(),
                    },
                    other => corrupt(at, position, &other),
                })?;
                out.push(envelope);
            }
        }
        Ok(())
    }
}

/// Splits ascending positions into ranges of consecutive ones: the events of one append are
/// adjacent in the log, so each range is read with one `pread` (per segment it spans).
fn consecutive(positions: &[u64]) -> impl Iterator<Item = (u64, u64)> + '_ {
    positions
        .chunk_by(|a, b| a + 1 == *b)
        .map(|range| (range[0], range[range.len() - 1]))
}

/// Takes the exclusive lock on `DIR/LOCK`, so two processes never write one log.
fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join("LOCK");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(StoreError::io(format!("opening {}", path.display())))?;
    file.try_lock().map_err(|_| {
        StoreError::Unavailable(format!(
            "{} is locked: another warrant process is using this data directory",
            path.display()
        ))
    })?;
    Ok(file)
}

/// Opens the last segment for appending (truncating a torn tail), creating the first
/// segment of an empty log.
fn open_tail(
    segment_dir: &Path,
    recovered: &mut recovery::Recovered,
    head: u64,
) -> Result<Arc<File>, StoreError> {
    let index = &mut recovered.index;
    if index.segments().is_empty() {
        let path = segment_dir.join(recovery::segment_name(1));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(StoreError::io(format!("creating {}", path.display())))?;
        sync_dir(segment_dir)
            .map_err(StoreError::io(format!("syncing {}", segment_dir.display())))?;
        let file = Arc::new(file);
        index.add_segment(Segment::with_file(head + 1, path, file.clone()));
        return Ok(file);
    }
    let last = index.segments().last().expect("not empty");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&last.path)
        .map_err(StoreError::io(format!("opening {}", last.path.display())))?;
    if recovered.torn_tail.is_some() {
        file.set_len(recovered.last_segment_len)
            .and_then(|()| file.sync_all())
            .map_err(StoreError::io(format!(
                "truncating {}",
                last.path.display()
            )))?;
    }
    let file = Arc::new(file);
    last.keep_open(file.clone());
    Ok(file)
}

/// fsyncs a directory so that a file created in it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[async_trait]
impl EventStore for FileLog {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Appended, StoreError> {
        let queue = self
            .queue
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("the log was opened read-only".into()))?;
        validate_append(stream, &events)?;
        let events = events
            .into_iter()
            .map(|e| {
                let payload = e.event.encode_payload();
                (e, payload)
            })
            .collect::<Vec<_>>();
        if let Some((_, too_big)) = events
            .iter()
            .find(|(_, p)| p.len() + stream.len() + 512 > frame::MAX_BODY)
        {
            return Err(StoreError::Invalid(format!(
                "an event payload of {} bytes exceeds the record limit of {} bytes",
                too_big.len(),
                frame::MAX_BODY
            )));
        }
        let (reply, outcome) = oneshot::channel();
        queue
            .send(AppendRequest {
                stream: stream.to_owned(),
                expected,
                events,
                reply,
            })
            .map_err(|_| StoreError::Unavailable("the log writer has stopped".into()))?;
        outcome
            .await
            .map_err(|_| StoreError::Unavailable("the log writer has stopped".into()))?
    }

    async fn read_stream_of(
        &self,
        stream: &str,
        from_version: u64,
        wanted: TypeFilter,
    ) -> Result<StreamEvents, StoreError> {
        let (runs, version) = {
            let index = self.shared.index.read().unwrap();
            let (positions, version) = index
                .stream_positions(stream, from_version)
                .map_err(StoreError::io("reading the log index"))?;
            let mut runs = Vec::new();
            for (first, last) in consecutive(&positions) {
                runs.extend(
                    index
                        .runs(first, last)
                        .map_err(StoreError::io("opening a segment or reading its offsets"))?,
                );
            }
            (runs, version)
        };
        let mut envelopes = Vec::new();
        self.read_runs(runs, wanted, &mut envelopes)?;
        Ok(StreamEvents { envelopes, version })
    }

    async fn read_all(&self, from: u64, max: usize) -> Result<Vec<Envelope>, StoreError> {
        let from = from.max(1);
        let runs = {
            let index = self.shared.index.read().unwrap();
            let last = index
                .head()
                .min(from.saturating_add(max as u64).saturating_sub(1));
            if max == 0 || from > last {
                return Ok(Vec::new());
            }
            index
                .runs(from, last)
                .map_err(StoreError::io("opening a segment or reading its offsets"))?
        };
        let mut out = Vec::new();
        self.read_runs(runs, |_| true, &mut out)?;
        Ok(out)
    }

    fn head(&self) -> watch::Receiver<u64> {
        self.shared.head.subscribe()
    }

    fn listen(&self, after: u64, listener: CommitListener) -> Result<(), CommitListener> {
        let mut slot = self.shared.listener.lock().unwrap();
        if self.queue.is_none() || slot.is_some() || *self.shared.head.borrow() != after {
            return Err(listener);
        }
        *slot = Some(listener);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::events::{Event, synthetic};
    use writer::{CACHED_TAIL_BYTES, DROP_STEP};

    /// A listener of `log` from position `after` that keeps what it is handed, with the
    /// head each batch found (the head moves past a batch only after its listener).
    fn keeping_listener(log: &FileLog, after: u64) -> Arc<Mutex<Vec<(u64, Envelope)>>> {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let (into, head) = (kept.clone(), log.head());
        let listener = Box::new(move |batch: &[Envelope]| {
            let head = *head.borrow();
            into.lock()
                .unwrap()
                .extend(batch.iter().map(|e| (head, e.clone())));
        });
        assert!(log.listen(after, listener).is_ok());
        kept
    }

    #[tokio::test]
    async fn a_listener_is_handed_every_batch_before_it_is_answered_as_it_is_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let options = FileLogOptions {
            segment_bytes: 4096,
            ..FileLogOptions::writer("n".repeat(300))
        };
        let log = FileLog::open(dir.path(), options).unwrap();
        let kept = keeping_listener(&log, 0);
        let now = Timestamp(1_795_000_000_000);
        let histories =
            (0..20).flat_map(|i| [synthetic::client(i, now), synthetic::token_family(i, now)]);
        for (stream, events) in histories {
            let appended = log
                .append(&stream, ExpectedVersion::Exact(0), events)
                .await
                .unwrap();
            let kept = kept.lock().unwrap();
            let (head, last) = kept.last().unwrap();
            assert_eq!(last.position, appended.last_position, "handed over first");
            assert!(*head < appended.first_position, "before the head moved");
        }
        let handed_over: Vec<Envelope> = kept.lock().unwrap().drain(..).map(|(_, e)| e).collect();
        let total = 20 * 4;
        assert_eq!(handed_over.len(), total);
        assert_eq!(handed_over[0].node.len(), 255, "clipped as in the record");

        let reader = FileLog::open(dir.path(), FileLogOptions::reader()).unwrap();
        assert!(reader.segment_count() > 1);
        let from_disk = reader.read_all(1, 10_000).await.unwrap();
        assert_eq!(handed_over, from_disk);
        for from in 1..=total {
            let page = reader.read_all(from as u64, 7).await.unwrap();
            assert_eq!(
                page,
                from_disk[from - 1..(from + 6).min(total)],
                "page at {from}"
            );
        }
    }

    #[tokio::test]
    async fn a_listener_is_taken_only_at_the_head_one_at_a_time_and_by_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::open(dir.path(), FileLogOptions::writer("node-a")).unwrap();
        let now = Timestamp(1_795_000_000_000);
        for i in 0..3 {
            let (stream, events) = synthetic::token_family(i, now);
            log.append(&stream, ExpectedVersion::Exact(0), events)
                .await
                .unwrap();
        }
        let ignore = || Box::new(|_: &[Envelope]| {}) as CommitListener;
        assert!(log.listen(5, ignore()).is_err(), "behind the head");
        assert!(log.listen(10, ignore()).is_err(), "past the head");
        let kept = keeping_listener(&log, 9);
        assert!(log.listen(9, ignore()).is_err(), "a second listener");
        let (stream, events) = synthetic::token_family(3, now);
        log.append(&stream, ExpectedVersion::Exact(0), events)
            .await
            .unwrap();
        let positions: Vec<u64> = kept
            .lock()
            .unwrap()
            .iter()
            .map(|(_, e)| e.position)
            .collect();
        assert_eq!(positions, [10, 11, 12], "the first listener still has them");

        drop(log);
        let reader = FileLog::open(dir.path(), FileLogOptions::reader()).unwrap();
        assert!(reader.listen(12, ignore()).is_err(), "read-only");
    }

    /// How many of the pages of the file at `path` are in the page cache (`mincore` of a
    /// mapping, which reads nothing in), and how many it has.
    fn resident_pages(path: &Path) -> (usize, usize) {
        let file = File::open(path).unwrap();
        let len = file.metadata().unwrap().len() as usize;
        let page = 4096;
        let pages = len.div_ceil(page);
        let mut vec = vec![0u8; pages];
        // SAFETY: a read-only shared mapping of the whole file, unmapped before return; the
        // kernel writes one byte per page into `vec`, which has that many.
        unsafe {
            let map = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                std::os::fd::AsRawFd::as_raw_fd(&file),
                0,
            );
            assert_ne!(map, libc::MAP_FAILED);
            assert_eq!(libc::mincore(map, len, vec.as_mut_ptr()), 0);
            libc::munmap(map, len);
        }
        (vec.iter().filter(|&&b| b & 1 == 1).count(), pages)
    }

    #[tokio::test]
    async fn durable_pages_behind_the_end_leave_the_page_cache_and_still_read_back() {
        // Beside the sources rather than in the temporary directory, which may be a tmpfs,
        // whose pages are memory and cannot be dropped.
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let segment_bytes = 3 * CACHED_TAIL_BYTES / 2;
        let options = FileLogOptions {
            segment_bytes,
            ..FileLogOptions::writer("node-a")
        };
        let log = FileLog::open(dir.path(), options).unwrap();
        let now = Timestamp(1_795_000_000_000);
        let name_bytes = 600 << 10;
        // Three segments: the first full, the second full, the third under the cached tail.
        let appends = (2 * segment_bytes + CACHED_TAIL_BYTES / 2) as usize / name_bytes;
        let mut appended = Vec::new();
        for i in 0..appends {
            let (stream, mut events) = synthetic::client(i, now);
            if let Event::ClientRegistered(e) = &mut events[0].event {
                e.metadata.client_name = Some("x".repeat(name_bytes));
            }
            appended.push(events[0].event.clone());
            log.append(&stream, ExpectedVersion::Exact(0), events)
                .await
                .unwrap();
        }
        let segments = recovery::list_segments(&dir.path().join("log")).unwrap();
        assert_eq!(segments.len(), 3);
        let [first, second, third] = [0, 1, 2].map(|i| resident_pages(&segments[i].1));
        assert_eq!(first.0, 0, "the first segment left the cache: {first:?}");
        // The second keeps its end: the cached tail, at most one step of dropping more, and
        // the page cache's unit of memory (a folio, up to 2 MiB) that the last step cut.
        let cached = second.0 as u64 * 4096;
        assert!(
            cached + 4096 >= CACHED_TAIL_BYTES
                && cached <= CACHED_TAIL_BYTES + DROP_STEP + (2 << 20),
            "the second segment keeps only its end: {second:?}"
        );
        assert_eq!(third.0, third.1, "the third stays whole: {third:?}");

        let read: Vec<Event> = log
            .read_all(1, appends)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event)
            .collect();
        assert_eq!(read, appended, "what left the cache reads back from disk");
    }
}
