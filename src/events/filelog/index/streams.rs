//! The streams appended to since the index last spilled to disk, in memory: a dense table of
//! compact entries behind a sharded table of their numbers (see [`crate::growth`]), so that
//! no append waits for the whole of it to be copied or rehashed.

use crate::growth::{Chunked, Sharded};

/// A stream's name, compactly. The aggregates name their streams `{prefix}{uuid}` (a UUID in
/// its lower-case hyphenated form): those are kept as the prefix's number and the UUID's 16
/// bytes instead of a 40-odd byte string on the heap. Any other name is numbered by the index
/// and keyed by [`NAMED`] and its number. Ordered by prefix, then id: the order of the
/// entries of a table on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    /// The prefix's number, or [`NAMED`].
    pub prefix: u32,
    /// The UUID's bytes, or the name's number.
    pub id: [u8; 16],
}

/// The prefix number of the keys of streams not named `{prefix}{uuid}`.
pub const NAMED: u32 = u32::MAX;

impl StreamKey {
    /// The key of the named stream numbered `number`.
    pub fn named(number: u32) -> StreamKey {
        StreamKey {
            prefix: NAMED,
            id: u128::from(number).to_le_bytes(),
        }
    }
}

/// What one layer of the index holds of a stream: some of its positions, the last ones of
/// them at `version`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The stream.
    pub key: StreamKey,
    /// The stream's version at the last of `positions`.
    pub version: u32,
    /// Its positions in this layer, ascending; never empty.
    pub positions: Vec<u64>,
}

impl Entry {
    /// The stream's version at the first of `positions`.
    pub fn first_version(&self) -> u32 {
        self.version + 1 - self.positions.len() as u32
    }
}

/// One stream's positions in this layer in 44 bytes. Most streams gain one to three events
/// between two spills, kept inline: the first position whole, the others as their distance
/// from it (never 0). More, or events more than `u32::MAX` positions apart, are kept in
/// `Streams::long`: `first` is their number there and `later` is zero. Packed to 4-byte
/// alignment so the positions leave no padding beside the 20-byte key.
#[derive(Clone, Copy, Debug)]
#[repr(C, packed(4))]
pub struct Stream {
    key: StreamKey,
    version: u32,
    count: u32,
    first: u64,
    later: [u32; 2],
}

impl Stream {
    fn new(key: StreamKey, version: u32, position: u64) -> Stream {
        Stream {
            key,
            version,
            count: 1,
            first: position,
            later: [0; 2],
        }
    }

    /// Whether its positions are in `Streams::long`.
    fn spilled(&self) -> bool {
        self.count > 1 && self.later[0] == 0
    }

    /// Adds `position` (after all it holds), at `version`, spilling into `long` when it no
    /// longer fits.
    fn push(&mut self, version: u32, position: u64, long: &mut Chunked<Vec<u64>>) {
        let slot = self.count as usize - 1;
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
        self.count += 1;
        self.version = version;
    }

    /// Its positions, wherever they are.
    fn positions(&self, long: &Chunked<Vec<u64>>) -> Vec<u64> {
        match self.inline() {
            Some(inline) => inline.collect(),
            None => long[self.first as usize].clone(),
        }
    }

    /// Its positions, if they are inline.
    fn inline(&self) -> Option<impl Iterator<Item = u64> + use<>> {
        let (first, later, count) = (self.first, self.later, self.count as usize);
        let rest = later.into_iter().take(count - 1);
        (!self.spilled())
            .then(|| std::iter::once(first).chain(rest.map(move |d| first + u64::from(d))))
    }
}

/// The streams of the in-memory layer. Hashes are the index's, given by the caller.
#[derive(Debug, Default)]
pub struct Streams {
    /// Every stream, in order of first appearance here.
    entries: Chunked<Stream>,
    /// Each stream's number in `entries`, found by its key's hash.
    by_key: Sharded<u32>,
    /// The positions of the streams whose positions are not inline (see [`Stream`]).
    long: Chunked<Vec<u64>>,
}

impl Streams {
    /// How many streams.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The stream's number in `entries`.
    fn number(&self, key: StreamKey, hash: u64) -> Option<u32> {
        let entries = &self.entries;
        let found = self.by_key.find(hash, |&n| entries[n as usize].key == key);
        found.copied()
    }

    fn find(&self, key: StreamKey, hash: u64) -> Option<&Stream> {
        Some(&self.entries[self.number(key, hash)? as usize])
    }

    /// The stream's version, if this layer holds any of its positions.
    pub fn version(&self, key: StreamKey, hash: u64) -> Option<u32> {
        self.find(key, hash).map(|stream| stream.version)
    }

    /// What this layer holds of the stream.
    pub fn get(&self, key: StreamKey, hash: u64) -> Option<Entry> {
        self.find(key, hash).map(|stream| self.entry(stream))
    }

    fn entry(&self, stream: &Stream) -> Entry {
        Entry {
            key: stream.key,
            version: stream.version,
            positions: stream.positions(&self.long),
        }
    }

    /// Records `position` as the stream's event at `version`; `hash_of` hashes a key as
    /// `hash` was.
    pub fn push(
        &mut self,
        key: StreamKey,
        hash: u64,
        version: u32,
        position: u64,
        hash_of: impl Fn(StreamKey) -> u64,
    ) {
        match self.number(key, hash) {
            Some(n) => self.entries[n as usize].push(version, position, &mut self.long),
            None => {
                let n = self.entries.len() as u32;
                self.entries.push(Stream::new(key, version, position));
                let entries = &self.entries;
                self.by_key.insert_unique(hash, n, |&n| {
                    let stream = entries[n as usize];
                    hash_of(stream.key)
                });
            }
        }
    }

    /// Every entry, in key order.
    pub fn sorted(&self) -> impl Iterator<Item = Entry> + '_ {
        let mut order: Vec<u32> = (0..self.entries.len() as u32).collect();
        order.sort_unstable_by_key(|&n| self.entries[n as usize].key);
        order
            .into_iter()
            .map(|n| self.entry(&self.entries[n as usize]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_to_three_close_positions_stay_inline_and_others_spill() {
        let key = StreamKey::named(0);
        let mut long = Chunked::default();
        let mut close = Stream::new(key, 1, 7);
        for (version, p) in [(2, 9), (3, 1 << 20)] {
            close.push(version, p, &mut long);
        }
        assert!(!close.spilled());
        assert_eq!(close.positions(&long), [7, 9, 1 << 20]);
        close.push(4, (1 << 20) + 1, &mut long);
        assert!(close.spilled());
        assert_eq!(close.positions(&long), [7, 9, 1 << 20, (1 << 20) + 1]);
        assert_eq!({ close.version }, 4);

        let far = 7 + u64::from(u32::MAX) + 1;
        let mut apart = Stream::new(key, 5, 7);
        apart.push(6, far, &mut long);
        assert!(apart.spilled());
        apart.push(7, far + 1, &mut long);
        assert_eq!(apart.positions(&long), [7, far, far + 1]);
        assert_eq!(long.len(), 2);
        assert_eq!(std::mem::size_of::<Stream>(), 44);
    }

    #[test]
    fn entries_come_out_in_key_order_with_their_versions() {
        let mut streams = Streams::default();
        let key = |n: u8| StreamKey {
            prefix: 0,
            id: [n; 16],
        };
        let hash = |k: StreamKey| u64::from(k.id[0]).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for (position, n) in [(10, 3u8), (11, 1), (12, 3), (13, 2)] {
            let version = if n == 3 && position == 12 { 6 } else { 5 };
            streams.push(key(n), hash(key(n)), version, position, hash);
        }
        let sorted: Vec<Entry> = streams.sorted().collect();
        assert_eq!(
            sorted,
            [
                Entry {
                    key: key(1),
                    version: 5,
                    positions: vec![11]
                },
                Entry {
                    key: key(2),
                    version: 5,
                    positions: vec![13]
                },
                Entry {
                    key: key(3),
                    version: 6,
                    positions: vec![10, 12]
                },
            ]
        );
        assert_eq!(sorted[2].first_version(), 5);
        assert_eq!(streams.version(key(3), hash(key(3))), Some(6));
        assert_eq!(streams.get(key(4), hash(key(4))), None);
    }
}
