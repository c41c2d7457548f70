//! The in-memory index of a file log: where each record lives and which records each
//! stream holds. Rebuilt from the segments on every open; only the writer changes it, a
//! piece at a time (see [`crate::growth`]), so no append waits for the whole index to be
//! copied or rehashed.

use crate::growth::{Chunked, Sharded};
use hashbrown::DefaultHashBuilder;
use std::fs::File;
use std::hash::BuildHasher;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// Where a record's frame starts in its segment, and its body length. The index keeps only
/// the offset: a frame ends where the next one starts, or where its segment ends.
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
    /// Offset just past its last indexed frame.
    end: u64,
}

impl Segment {
    /// A segment not opened for reading yet.
    pub fn new(base: u64, path: PathBuf) -> Segment {
        Segment {
            base,
            path,
            file: OnceLock::new(),
            end: 0,
        }
    }

    /// A segment with its file already open.
    pub fn with_file(base: u64, path: PathBuf, file: Arc<File>) -> Segment {
        let segment = Segment::new(base, path);
        segment.keep_open(file);
        segment
    }

    /// Reads through `file` from now on, unless the segment was opened for reading already.
    pub fn keep_open(&self, file: Arc<File>) {
        let _ = self.file.set(file);
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
    /// `offsets[p - 1]` is where position `p`'s frame starts in its segment.
    offsets: Chunked<u32>,
    /// Every stream, densely, in order of first appearance.
    streams: Chunked<Stream>,
    /// Each stream's number in `streams`, found by its key.
    by_key: Sharded<u32>,
    /// The positions of the streams whose positions are not inline (see [`Stream`]).
    long: Chunked<Vec<u64>>,
    /// The prefixes of the streams named `{prefix}{uuid}`, numbered by first use.
    prefixes: Vec<Box<str>>,
    /// The streams with any other name, numbered by first use.
    named: hashbrown::HashMap<Box<str>, u32>,
    hasher: DefaultHashBuilder,
}

/// A stream's name, compactly. The aggregates name their streams `{prefix}{uuid}` (a UUID in
/// its lower-case hyphenated form): those are kept as the prefix's number and the UUID's 16
/// bytes instead of a 40-odd byte string on the heap. Any other name is numbered (in
/// `Index::named`) and keyed by [`NAMED`] and its number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct StreamKey {
    prefix: u32,
    id: [u8; 16],
}

/// The prefix number of the keys of streams not named `{prefix}{uuid}`.
const NAMED: u32 = u32::MAX;

impl StreamKey {
    fn named(number: u32) -> StreamKey {
        StreamKey {
            prefix: NAMED,
            id: u128::from(number).to_le_bytes(),
        }
    }
}

/// One stream: its key and its positions in 40 bytes. Most streams hold one to three
/// events, kept inline: the first position whole, the others as their distance from it
/// (never 0). A longer stream, or one whose events lie more than `u32::MAX` positions apart,
/// has all its positions in `Index::long`: `first` is their number there and `later` is
/// zero. Packed to 4-byte alignment so the positions leave no padding beside the 20-byte key.
#[derive(Clone, Copy, Debug)]
#[repr(C, packed(4))]
struct Stream {
    key: StreamKey,
    events: u32,
    first: u64,
    later: [u32; 2],
}

impl Stream {
    fn new(key: StreamKey, position: u64) -> Stream {
        Stream {
            key,
            events: 1,
            first: position,
            later: [0; 2],
        }
    }

    /// Whether its positions are in `Index::long`.
    fn spilled(&self) -> bool {
        self.events > 1 && self.later[0] == 0
    }

    /// Adds `position` (after all it holds), spilling into `long` when it no longer fits.
    fn push(&mut self, position: u64, long: &mut Chunked<Vec<u64>>) {
        let slot = self.events as usize - 1;
        match self.inline() {
            None => long[self.first as usize].push(position),
            Some(inline) => match u32::try_from(position - self.first) {
                Ok(delta) if slot < 2 => self.later[slot] = delta,
                _ => {
                    let all = inline.chain([position]).collect();
                    self.first = long.len() as u64;
                    self.later = [0; 2];
                    long.push(all);
                }
            },
        }
        self.events += 1;
    }

    /// Its positions after the first `skip`, wherever they are.
    fn positions(&self, long: &Chunked<Vec<u64>>, skip: usize) -> Vec<u64> {
        match self.inline() {
            Some(inline) => inline.skip(skip).collect(),
            None => long[self.first as usize]
                .get(skip..)
                .unwrap_or_default()
                .to_vec(),
        }
    }

    /// Its positions, if they are inline.
    fn inline(&self) -> Option<impl Iterator<Item = u64> + use<>> {
        let (first, later, events) = (self.first, self.later, self.events as usize);
        let rest = later.into_iter().take(events - 1);
        (!self.spilled())
            .then(|| std::iter::once(first).chain(rest.map(move |d| first + u64::from(d))))
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
    /// The last position indexed (0 when empty).
    pub fn head(&self) -> u64 {
        self.offsets.len() as u64
    }

    /// How many events `stream` holds.
    pub fn stream_version(&self, stream: &str) -> u64 {
        self.find(stream)
            .map_or(0, |n| u64::from(self.streams[n as usize].events))
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

    /// The number of the stream with `key`.
    fn find_key(&self, key: StreamKey, hash: u64) -> Option<u32> {
        let streams = &self.streams;
        let found = self.by_key.find(hash, |&n| {
            let stream = streams[n as usize];
            stream.key == key
        });
        found.copied()
    }

    fn find(&self, stream: &str) -> Option<u32> {
        let key = self.key(stream)?;
        self.find_key(key, self.hasher.hash_one(key))
    }

    /// How many streams exist.
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// Records the next position, belonging to `stream`, in the last segment.
    pub fn push(&mut self, stream: &str, location: Location) {
        self.offsets.push(location.offset);
        if let Some(segment) = self.segments.last_mut() {
            segment.end = frame_end(location);
        }
        let position = self.head();
        let key = self.key_or_new(stream);
        let hash = self.hasher.hash_one(key);
        match self.find_key(key, hash) {
            Some(n) => self.streams[n as usize].push(position, &mut self.long),
            None => {
                let n = self.streams.len() as u32;
                self.streams.push(Stream::new(key, position));
                let (streams, hasher) = (&self.streams, &self.hasher);
                self.by_key.insert_unique(hash, n, |&n| {
                    let stream = streams[n as usize];
                    hasher.hash_one(stream.key)
                });
            }
        }
    }

    /// The positions of `stream` from `from_version` on, and how many events it holds (its
    /// version), found with one lookup.
    pub fn stream_positions(&self, stream: &str, from_version: u64) -> (Vec<u64>, u64) {
        let Some(n) = self.find(stream) else {
            return (Vec::new(), 0);
        };
        let stream = &self.streams[n as usize];
        let skip = from_version.saturating_sub(1) as usize;
        (stream.positions(&self.long, skip), u64::from(stream.events))
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
                false => u64::from(self.offsets[seg_last as usize]),
            };
            runs.push(Run {
                file: segment.file()?,
                path: segment.path.clone(),
                first: position,
                start: u64::from(self.offsets[(position - 1) as usize]),
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
        assert_eq!(index.stream_positions(&names[1], 2), (vec![3], 2));
        assert_eq!(
            index.stream_positions(&names[4], 1),
            (vec![11, 12, 13, 14, 15], 5)
        );
        assert_eq!(index.stream_positions(&names[5], 4), (vec![19, 20, 21], 6));
        assert_eq!(index.stream_positions(&names[5], 7), (vec![], 6));
        assert_eq!(index.stream_version(&format!("client-{id}")), 0);
        assert_eq!(
            index.stream_positions(&format!("client-{id}"), 1),
            (vec![], 0)
        );
        assert_eq!(index.stream_count(), names.len());
        let compact = index
            .streams
            .iter()
            .filter(|s| s.key.prefix != NAMED)
            .count();
        assert_eq!(compact, 3, "grant-, session- and the bare UUID");
        assert_eq!(index.prefixes.len(), 3);
        assert_eq!(index.named.len(), 3);
    }

    #[test]
    fn up_to_three_close_positions_stay_inline_and_others_spill() {
        let key = StreamKey::named(0);
        let positions = |stream: &Stream, long: &Chunked<Vec<u64>>| stream.positions(long, 0);
        let mut long = Chunked::default();
        let mut close = Stream::new(key, 7);
        for p in [9, 1 << 20] {
            close.push(p, &mut long);
        }
        assert!(!close.spilled());
        assert_eq!(positions(&close, &long), [7, 9, 1 << 20]);
        close.push((1 << 20) + 1, &mut long);
        assert!(close.spilled());
        assert_eq!(positions(&close, &long), [7, 9, 1 << 20, (1 << 20) + 1]);

        let far = 7 + u64::from(u32::MAX) + 1;
        let mut apart = Stream::new(key, 7);
        apart.push(far, &mut long);
        assert!(apart.spilled());
        apart.push(far + 1, &mut long);
        assert_eq!(positions(&apart, &long), [7, far, far + 1]);
        assert_eq!(long.len(), 2);
        assert_eq!(std::mem::size_of::<Stream>(), 40);
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
                (vec![2 * i as u64 + 1, 2 * i as u64 + 2], 2)
            );
        }
    }
}
