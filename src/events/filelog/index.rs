//! The in-memory index of a file log: where each record lives and which records each
//! stream holds. Rebuilt from the segments on every open; only the writer changes it, a
//! piece at a time (see [`crate::growth`]), so no append waits for the whole index to be
//! copied or rehashed.

use crate::growth::{Chunked, Sharded};
use hashbrown::{DefaultHashBuilder, Equivalent};
use smallvec::SmallVec;
use std::fs::File;
use std::hash::BuildHasher;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// Where a record's frame starts in its segment, and its body length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// Offset of the frame within the segment file.
    pub offset: u32,
    /// Length of the body (the frame is `HEADER` bytes longer).
    pub len: u32,
}

/// One segment file.
#[derive(Debug)]
pub struct Segment {
    /// Position of its first record.
    pub base: u64,
    /// Its path.
    pub path: PathBuf,
    file: OnceLock<Arc<File>>,
}

impl Segment {
    /// A segment not opened for reading yet.
    pub fn new(base: u64, path: PathBuf) -> Segment {
        Segment {
            base,
            path,
            file: OnceLock::new(),
        }
    }

    /// A segment with its file already open.
    pub fn with_file(base: u64, path: PathBuf, file: Arc<File>) -> Segment {
        let segment = Segment::new(base, path);
        let _ = segment.file.set(file);
        segment
    }

    /// The file, opened on first use.
    pub fn file(&self) -> std::io::Result<Arc<File>> {
        if let Some(file) = self.file.get() {
            return Ok(file.clone());
        }
        let file = Arc::new(File::open(&self.path)?);
        Ok(self.file.get_or_init(|| file).clone())
    }
}

/// Every record's location and every stream's positions.
#[derive(Debug, Default)]
pub struct Index {
    /// Segments ordered by base position.
    pub segments: Vec<Segment>,
    /// `locations[p - 1]` is where position `p` is.
    locations: Chunked<Location>,
    /// Each stream and the positions of its events, in version order.
    streams: Sharded<(StreamKey, Positions)>,
    /// The prefixes of the streams named `{prefix}{uuid}`, numbered by first use.
    prefixes: Vec<Box<str>>,
    hasher: DefaultHashBuilder,
}

/// A stream's positions; most streams hold one or two events, kept inline.
type Positions = SmallVec<[u64; 2]>;

/// A stream's name, compactly. The aggregates name their streams `{prefix}{uuid}` (a UUID in
/// its lower-case hyphenated form): those are kept as the prefix's number and the UUID's 16
/// bytes instead of a 40-odd byte string on the heap; any other name is kept as it is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum StreamKey {
    Uuid { prefix: u32, id: [u8; 16] },
    Other(Box<str>),
}

/// A [`StreamKey`] to look up, borrowing the name; it hashes as the key it stands for.
#[derive(Hash)]
enum KeyRef<'a> {
    Uuid { prefix: u32, id: [u8; 16] },
    Other(&'a str),
}

impl Equivalent<StreamKey> for KeyRef<'_> {
    fn equivalent(&self, key: &StreamKey) -> bool {
        match (self, key) {
            (KeyRef::Uuid { prefix, id }, StreamKey::Uuid { prefix: p, id: i }) => {
                prefix == p && id == i
            }
            (KeyRef::Other(name), StreamKey::Other(other)) => **name == **other,
            _ => false,
        }
    }
}

impl KeyRef<'_> {
    /// The key it stands for, as the table stores it (owning its name).
    fn stored(&self) -> StreamKey {
        match *self {
            KeyRef::Uuid { prefix, id } => StreamKey::Uuid { prefix, id },
            KeyRef::Other(name) => StreamKey::Other(name.into()),
        }
    }
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
    /// The last position indexed (0 when empty).
    pub fn head(&self) -> u64 {
        self.locations.len() as u64
    }

    /// How many events `stream` holds.
    pub fn stream_version(&self, stream: &str) -> u64 {
        self.positions(stream).map_or(0, |p| p.len() as u64)
    }

    /// The key `stream` has, if the index knows its prefix.
    fn key<'a>(&self, stream: &'a str) -> Option<KeyRef<'a>> {
        Some(match split_uuid(stream) {
            Some((prefix, id)) => KeyRef::Uuid {
                prefix: self.prefix_number(prefix)?,
                id: id.into_bytes(),
            },
            None => KeyRef::Other(stream),
        })
    }

    /// The key of `stream`, numbering its prefix if it is new.
    fn key_or_new<'a>(&mut self, stream: &'a str) -> KeyRef<'a> {
        let Some((prefix, id)) = split_uuid(stream) else {
            return KeyRef::Other(stream);
        };
        let prefix = self.prefix_number(prefix).unwrap_or_else(|| {
            self.prefixes.push(prefix.into());
            self.prefixes.len() as u32 - 1
        });
        KeyRef::Uuid {
            prefix,
            id: id.into_bytes(),
        }
    }

    fn prefix_number(&self, prefix: &str) -> Option<u32> {
        let number = self.prefixes.iter().position(|p| **p == *prefix)?;
        Some(number as u32)
    }

    fn positions(&self, stream: &str) -> Option<&Positions> {
        let key = self.key(stream)?;
        self.streams
            .find(self.hasher.hash_one(&key), |(k, _)| key.equivalent(k))
            .map(|(_, positions)| positions)
    }

    /// How many streams exist.
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// Records the next position, belonging to `stream`.
    pub fn push(&mut self, stream: &str, location: Location) {
        self.locations.push(location);
        let position = self.head();
        let key = self.key_or_new(stream);
        let hash = self.hasher.hash_one(&key);
        if let Some((_, positions)) = self.streams.find_mut(hash, |(k, _)| key.equivalent(k)) {
            positions.push(position);
            return;
        }
        let hasher = &self.hasher;
        self.streams.insert_unique(
            hash,
            (key.stored(), smallvec::smallvec![position]),
            |(k, _)| hasher.hash_one(k),
        );
    }

    /// The positions of `stream` from `from_version` on.
    pub fn stream_positions(&self, stream: &str, from_version: u64) -> Vec<u64> {
        let skip = from_version.saturating_sub(1) as usize;
        self.positions(stream)
            .map(|p| p.get(skip..).unwrap_or_default().to_vec())
            .unwrap_or_default()
    }

    /// Splits positions `first..=last` into runs, one per segment touched.
    pub fn runs(&self, first: u64, last: u64) -> std::io::Result<Vec<Run>> {
        let mut runs = Vec::new();
        let mut position = first;
        while position <= last {
            let seg = self.segments.partition_point(|s| s.base <= position) - 1;
            let segment = &self.segments[seg];
            let seg_last = self
                .segments
                .get(seg + 1)
                .map_or(last, |next| (next.base - 1).min(last));
            let from = self.locations[(position - 1) as usize];
            let to = self.locations[(seg_last - 1) as usize];
            runs.push(Run {
                file: segment.file()?,
                path: segment.path.clone(),
                first: position,
                start: u64::from(from.offset),
                end: u64::from(to.offset) + super::frame::HEADER as u64 + u64::from(to.len),
            });
            position = seg_last + 1;
        }
        Ok(runs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: Location = Location { offset: 0, len: 1 };

    #[test]
    fn uuid_named_streams_are_keyed_compactly_and_others_by_name() {
        let id = uuid::Uuid::from_u128(0xabc);
        let mut index = Index::default();
        let names = [
            format!("grant-{id}"),
            format!("session-{id}"),
            format!("grant-{}", id.hyphenated().to_string().to_uppercase()),
            format!("grant-{}", id.simple()),
            "denials".to_owned(),
            id.to_string(),
        ];
        for (i, name) in names.iter().enumerate() {
            for _ in 0..=i {
                index.push(name, AT);
            }
        }
        for (i, name) in names.iter().enumerate() {
            assert_eq!(index.stream_version(name), i as u64 + 1, "{name}");
        }
        assert_eq!(index.stream_positions(&names[1], 2), [3]);
        assert_eq!(index.stream_version(&format!("client-{id}")), 0);
        assert_eq!(index.stream_count(), names.len());
        let compact = index
            .streams
            .iter()
            .filter(|(k, _)| matches!(k, StreamKey::Uuid { .. }))
            .count();
        assert_eq!(compact, 3, "grant-, session- and the bare UUID");
        assert_eq!(index.prefixes.len(), 3);
    }

    #[test]
    fn many_streams_each_keep_their_positions() {
        let mut index = Index::default();
        for i in 0..5_000 {
            let stream = format!("grant-{}", uuid::Uuid::from_u128(i));
            index.push(&stream, AT);
            index.push(&stream, AT);
        }
        assert_eq!(index.head(), 10_000);
        assert_eq!(index.stream_count(), 5_000);
        for i in (0..5_000).step_by(99) {
            let stream = format!("grant-{}", uuid::Uuid::from_u128(i));
            assert_eq!(
                index.stream_positions(&stream, 1),
                [2 * i as u64 + 1, 2 * i as u64 + 2]
            );
        }
    }
}
