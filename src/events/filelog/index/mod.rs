//! The index of a file log: where each record lives and which records each stream holds.
//! Rebuilt from the segments on every open; only the writer changes it.
//!
//! Where each record starts is kept per segment ([`segment`]): in memory (4 bytes a record)
//! for the last segment, in an unnamed file for the others. The streams are kept in layers,
//! as in a log-structured merge tree: those appended to lately in memory ([`streams`]), the
//! rest in sorted tables on disk ([`table`]) that a thread of the index's own writes and
//! merges ([`layers`]). So the index's memory does not grow with every record and stream
//! ever written: a stream on disk costs about 1.5 bytes of memory (its bits of a bloom filter
//! and its share of the pages' first keys), a record on disk none.

pub mod layers;
pub mod segment;
pub mod streams;
pub mod table;

use self::layers::Layers;
pub use self::segment::Segment;
use self::streams::{Entry, StreamKey, Streams};
use hashbrown::DefaultHashBuilder;
use std::fs::File;
use std::hash::BuildHasher;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Where a record's frame starts in its segment, and its body length. The index keeps only
/// the offset: a frame ends where the next one starts, or where its segment ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// Offset of the frame within the segment file.
    pub offset: u32,
    /// Length of the body (the frame is `HEADER` bytes longer).
    pub len: u32,
}

/// Every record's location and every stream's positions.
#[derive(Debug)]
pub struct Index {
    /// Segments ordered by base position.
    segments: Vec<Segment>,
    /// The last position indexed.
    head: u64,
    /// Where sealed segments' offsets and the streams' tables are written.
    dir: PathBuf,
    /// The streams appended to since the in-memory layer was last frozen.
    recent: Streams,
    /// The layers below it: frozen ones being written to disk, and tables on disk.
    layers: Layers,
    /// How many streams `recent` holds before it is frozen.
    spill_at: usize,
    /// How many streams exist.
    streams: usize,
    /// The prefixes of the streams named `{prefix}{uuid}`, numbered by first use.
    prefixes: Vec<Box<str>>,
    /// The streams with any other name, numbered by first use.
    named: hashbrown::HashMap<Box<str>, u32>,
    hasher: DefaultHashBuilder,
}

/// Where and when the index moves streams to disk.
#[derive(Clone, Debug)]
pub struct Spill {
    /// The directory of its tables (unnamed files, gone with the process).
    pub dir: PathBuf,
    /// How many streams the in-memory layer holds before it is written to disk.
    pub streams: usize,
}

impl Spill {
    /// Streams held in memory by default: about 3 MiB.
    pub const STREAMS: usize = 1 << 16;

    /// Tables in `dir`, after the default number of streams.
    pub fn to(dir: impl Into<PathBuf>) -> Spill {
        Spill {
            dir: dir.into(),
            streams: Spill::STREAMS,
        }
    }
}

/// Offset just past the frame at `location`.
fn frame_end(location: Location) -> u64 {
    u64::from(location.offset) + super::frame::HEADER as u64 + u64::from(location.len)
}

/// `name` split into a prefix and a UUID in the form `Uuid` prints, if it is one.
fn split_uuid(name: &str) -> Option<(&str, uuid::Uuid)> {
    let at = name.len().checked_sub(36)?;
    let (prefix, tail) = (name.get(..at)?, name.get(at..)?);
    let id = uuid::Uuid::try_parse(tail).ok()?;
    let mut printed = [0u8; 36];
    (id.hyphenated().encode_lower(&mut printed).as_bytes() == tail.as_bytes())
        .then_some((prefix, id))
}

/// A contiguous run of records inside one segment.
#[derive(Debug)]
pub struct Run {
    /// The segment's file.
    pub file: Arc<File>,
    /// The segment's path (for error messages).
    pub path: PathBuf,
    /// Position of the first record of the run.
    pub first: u64,
    /// Offset of the first frame.
    pub start: u64,
    /// Offset just past the last frame.
    pub end: u64,
}

impl Index {
    /// An empty index that spills as `spill` says.
    pub fn new(spill: Spill) -> io::Result<Index> {
        let hasher = DefaultHashBuilder::default();
        Ok(Index {
            segments: Vec::new(),
            head: 0,
            dir: spill.dir.clone(),
            recent: Streams::default(),
            layers: Layers::new(spill.dir, hasher.clone())?,
            spill_at: spill.streams.max(1),
            streams: 0,
            prefixes: Vec::new(),
            named: hashbrown::HashMap::new(),
            hasher,
        })
    }

    /// The last position indexed (0 when empty).
    pub fn head(&self) -> u64 {
        self.head
    }

    /// The segments, ordered by base position.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Adds the next segment, into which the next positions go; the last one is sealed.
    pub fn add_segment(&mut self, segment: Segment) {
        if let Some(last) = self.segments.last_mut() {
            last.seal(&self.dir);
        }
        self.segments.push(segment);
    }

    /// How many events `stream` holds.
    pub fn stream_version(&self, stream: &str) -> io::Result<u64> {
        let Some(key) = self.key(stream) else {
            return Ok(0);
        };
        let hash = self.hasher.hash_one(key);
        let version = match self.recent.version(key, hash) {
            Some(version) => Some(version),
            None => self.layers.version(key, hash)?,
        };
        Ok(version.map_or(0, u64::from))
    }

    /// The key `stream` has, if the index knows its prefix (or its name).
    fn key(&self, stream: &str) -> Option<StreamKey> {
        match split_uuid(stream) {
            Some((prefix, id)) => Some(StreamKey {
                prefix: self.prefix_number(prefix)?,
                id: id.into_bytes(),
            }),
            None => self.named.get(stream).map(|&n| StreamKey::named(n)),
        }
    }

    /// The key of `stream`, numbering its prefix (or its name) if it is new.
    fn key_or_new(&mut self, stream: &str) -> StreamKey {
        let Some((prefix, id)) = split_uuid(stream) else {
            let number = self.named.get(stream).copied().unwrap_or_else(|| {
                let next = self.named.len() as u32;
                self.named.insert(stream.into(), next);
                next
            });
            return StreamKey::named(number);
        };
        let prefix = self.prefix_number(prefix).unwrap_or_else(|| {
            self.prefixes.push(prefix.into());
            self.prefixes.len() as u32 - 1
        });
        StreamKey {
            prefix,
            id: id.into_bytes(),
        }
    }

    fn prefix_number(&self, prefix: &str) -> Option<u32> {
        let number = self.prefixes.iter().position(|p| **p == *prefix)?;
        Some(number as u32)
    }

    /// How many streams exist.
    pub fn stream_count(&self) -> usize {
        self.streams
    }

    /// Records the next position, the event at `version` of `stream`, in the last segment.
    pub fn push(&mut self, stream: &str, version: u64, location: Location) {
        let segment = self.segments.last_mut().expect("a segment to index into");
        segment.push(location.offset, frame_end(location));
        self.head += 1;
        let position = self.head;
        let key = self.key_or_new(stream);
        let hasher = &self.hasher;
        let hash = hasher.hash_one(key);
        let version = u32::try_from(version).expect("a stream of fewer than 2^32 events");
        self.recent
            .push(key, hash, version, position, |k| hasher.hash_one(k));
        if version == 1 {
            self.streams += 1;
        }
        if self.recent.len() >= self.spill_at {
            self.layers.freeze(std::mem::take(&mut self.recent));
        }
    }

    /// Waits until every stream frozen so far is on disk (or failed to be written).
    pub fn settle(&self) {
        self.layers.settle();
    }

    /// The positions of `stream` from `from_version` on, and how many events it holds (its
    /// version). Reads the layers below the in-memory one only as far down as the event at
    /// `from_version`.
    pub fn stream_positions(&self, stream: &str, from_version: u64) -> io::Result<(Vec<u64>, u64)> {
        let Some(key) = self.key(stream) else {
            return Ok((Vec::new(), 0));
        };
        let hash = self.hasher.hash_one(key);
        let from = u32::try_from(from_version).unwrap_or(u32::MAX).max(1);
        let recent = self.recent.get(key, hash);
        let reaches = recent.as_ref().is_some_and(|e| e.first_version() <= from);
        let mut entries: Vec<Entry> = recent.into_iter().collect();
        if !reaches {
            entries.extend(self.layers.entries(key, hash, from)?);
        }
        let version = entries.first().map_or(0, |e| e.version);
        let mut positions = Vec::new();
        for entry in entries.iter().rev() {
            let skip = from.saturating_sub(entry.first_version()) as usize;
            positions.extend(entry.positions.iter().skip(skip));
        }
        Ok((positions, u64::from(version)))
    }

    /// Splits positions `first..=last` into runs, one per segment touched.
    pub fn runs(&self, first: u64, last: u64) -> std::io::Result<Vec<Run>> {
        let mut runs = Vec::new();
        let mut position = first;
        while position <= last {
            let seg = self.segments.partition_point(|s| s.base <= position) - 1;
            let segment = &self.segments[seg];
            let next_base = self.segments.get(seg + 1).map(|next| next.base);
            let seg_last = next_base.map_or(last, |base| (base - 1).min(last));
            let ends_segment =
                next_base.map_or(seg_last == self.head(), |base| seg_last + 1 == base);
            let end = match ends_segment {
                true => segment.end,
                false => u64::from(segment.offset(seg_last + 1)?),
            };
            runs.push(Run {
                file: segment.file()?,
                path: segment.path.clone(),
                first: position,
                start: u64::from(segment.offset(position)?),
                end,
            });
            position = seg_last + 1;
        }
        Ok(runs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::collections::HashMap;

    const AT: Location = Location { offset: 0, len: 1 };

    /// An index of one segment (never read), spilling after `streams` streams.
    fn index(dir: &tempfile::TempDir, streams: usize) -> Index {
        let mut index = Index::new(Spill {
            dir: dir.path().to_owned(),
            streams,
        })
        .unwrap();
        index.add_segment(Segment::new(1, dir.path().join("segment")));
        index
    }

    #[test]
    fn uuid_named_streams_are_keyed_compactly_and_others_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let id = uuid::Uuid::from_u128(0xabc);
        let mut index = index(&dir, Spill::STREAMS);
        let names = [
            format!("grant-{id}"),
            format!("session-{id}"),
            format!("grant-{}", id.hyphenated().to_string().to_uppercase()),
            format!("grant-{}", id.simple()),
            "denials".to_owned(),
            id.to_string(),
        ];
        for (i, name) in names.iter().enumerate() {
            for version in 1..=i + 1 {
                index.push(name, version as u64, AT);
            }
        }
        let version = |name: &str| index.stream_version(name).unwrap();
        let positions = |name: &str, from| index.stream_positions(name, from).unwrap();
        for (i, name) in names.iter().enumerate() {
            assert_eq!(version(name), i as u64 + 1, "{name}");
        }
        assert_eq!(positions(&names[1], 2), (vec![3], 2));
        assert_eq!(positions(&names[4], 1), (vec![11, 12, 13, 14, 15], 5));
        assert_eq!(positions(&names[5], 4), (vec![19, 20, 21], 6));
        assert_eq!(positions(&names[5], 7), (vec![], 6));
        assert_eq!(version(&format!("client-{id}")), 0);
        assert_eq!(positions(&format!("client-{id}"), 1), (vec![], 0));
        assert_eq!(index.stream_count(), names.len());
        assert_eq!(
            index.prefixes.len(),
            3,
            "grant-, session- and the bare UUID's"
        );
        assert_eq!(index.named.len(), 3);
    }

    #[test]
    fn streams_that_cannot_be_written_to_disk_stay_found_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = Index::new(Spill {
            dir: dir.path().join("gone"),
            streams: 4,
        })
        .unwrap();
        index.add_segment(Segment::new(1, dir.path().join("segment")));
        for n in 0..100 {
            let stream = format!("grant-{}", uuid::Uuid::from_u128(n));
            index.push(&stream, 1, AT);
            index.push(&stream, 2, AT);
        }
        index.settle();
        for n in 0..100u64 {
            let stream = format!("grant-{}", uuid::Uuid::from_u128(n.into()));
            let expected = (vec![2 * n + 1, 2 * n + 2], 2);
            assert_eq!(index.stream_positions(&stream, 1).unwrap(), expected);
        }
        assert_eq!(index.stream_count(), 100);
    }

    /// A history in which most streams are written once and a few all along (as grants that
    /// are exchanged or refreshed), read back at every stage: in memory, frozen, in tables
    /// being merged, against a plain map of what was pushed.
    #[test]
    fn every_stream_reads_the_same_from_memory_frozen_layers_and_tables() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = index(&dir, 16);
        let mut rng = StdRng::seed_from_u64(7);
        let mut pushed: HashMap<String, Vec<u64>> = HashMap::new();
        let name = |n: u64| match n % 5 {
            0 => format!("session-{}", uuid::Uuid::from_u64_pair(n, n)),
            4 if n < 40 => format!("named-{n}"),
            _ => format!("grant-{}", uuid::Uuid::from_u64_pair(0, n)),
        };
        let check = |index: &Index, pushed: &HashMap<String, Vec<u64>>, rng: &mut StdRng| {
            for (stream, positions) in pushed {
                let version = positions.len() as u64;
                assert_eq!(index.stream_version(stream).unwrap(), version, "{stream}");
                let from = rng.random_range(0..=version + 1);
                let skip = from.saturating_sub(1) as usize;
                let expected = positions.get(skip..).unwrap_or_default().to_vec();
                assert_eq!(
                    index.stream_positions(stream, from).unwrap(),
                    (expected, version),
                    "{stream} from {from}"
                );
            }
            assert_eq!(index.stream_count(), pushed.len());
            let absent = name(1 << 40);
            assert_eq!(index.stream_positions(&absent, 0).unwrap(), (vec![], 0));
        };
        let mut next_new = 0u64;
        for round in 0..30 {
            for _ in 0..200 {
                let n = match rng.random_range(0..10) {
                    0..3 if next_new > 0 => rng.random_range(0..next_new.min(40)),
                    3 if next_new > 0 => rng.random_range(0..next_new),
                    _ => {
                        next_new += 1;
                        next_new - 1
                    }
                };
                let stream = name(n);
                let positions = pushed.entry(stream.clone()).or_default();
                positions.push(index.head() + 1);
                index.push(&stream, positions.len() as u64, AT);
            }
            if round % 3 == 0 {
                index.settle();
            }
            check(&index, &pushed, &mut rng);
        }
        index.settle();
        check(&index, &pushed, &mut rng);
        assert!(index.recent.len() < 16);
        assert_eq!(index.head(), 6_000);
    }
}
