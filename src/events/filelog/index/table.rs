//! A table of streams on disk: what a full in-memory layer of the index held, or two tables
//! merged, written once and never changed. Entries are sorted by key and fixed-size, so a
//! stream is found by a binary search among the first keys of the table's pages (kept in
//! memory, 20 bytes a page) and one read: of the entries around where the key's value puts
//! it between its page's first key and the next page's (UUIDs are spread evenly), or of the
//! whole page when it is not among them. A bloom filter (10 bits a stream in
//! memory) answers most lookups of a stream the table does not hold, such as every new
//! stream's, without reading anything.
//!
//! ```text
//! entries   [prefix u32 | id 16 | version u32 | count u32 | first u64 | later u32 u32] ...
//! overflow  [position u64] ...   (the positions of entries that do not fit inline)
//! ```
//!
//! Both are unnamed temporary files: the index is rebuilt on every open, so a table outlives
//! neither its process nor its last reader.

use super::streams::{Entry, StreamKey};
use std::cmp::Ordering;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Bytes of one entry.
const ENTRY: usize = 44;
/// Entries in a page, the unit read to find a stream: 4,092 bytes.
const PAGE: usize = 4096 / ENTRY;
/// Entries read around the place a key's value gives it in its page (704 bytes).
const WINDOW: usize = 16;
/// Entries read at a time when a table is read whole (to be merged).
const CHUNK: usize = 16 * PAGE;
/// Bits of the bloom filter per stream, and probes per lookup: about 1 % false positives.
const BLOOM_BITS_PER_STREAM: usize = 10;
const BLOOM_PROBES: u64 = 7;

/// A bloom filter over the hashes of a table's keys.
#[derive(Debug)]
struct Bloom {
    words: Vec<u64>,
}

impl Bloom {
    fn new(streams: usize) -> Bloom {
        let bits = (streams * BLOOM_BITS_PER_STREAM).max(64);
        Bloom {
            words: vec![0; bits.div_ceil(64)],
        }
    }

    /// The bits of `hash`, by double hashing.
    fn bits(&self, hash: u64) -> impl Iterator<Item = usize> + use<> {
        let bits = self.words.len() as u64 * 64;
        let step = hash.rotate_left(32) | 1;
        (0..BLOOM_PROBES).map(move |i| (hash.wrapping_add(i.wrapping_mul(step)) % bits) as usize)
    }

    fn insert(&mut self, hash: u64) {
        for bit in self.bits(hash) {
            self.words[bit / 64] |= 1 << (bit % 64);
        }
    }

    fn may_contain(&self, hash: u64) -> bool {
        self.bits(hash)
            .all(|bit| self.words[bit / 64] & (1 << (bit % 64)) != 0)
    }
}

/// A table of streams on disk (see the module's documentation).
#[derive(Debug)]
pub struct Table {
    entries: File,
    overflow: File,
    len: usize,
    /// The first key of each page.
    fences: Vec<StreamKey>,
    bloom: Bloom,
}

/// Writes `entry` into `out` as 44 bytes, its positions into `overflow` unless they fit
/// inline (up to three, each within `u32::MAX` of the first).
fn encode(
    entry: &Entry,
    overflow: &mut impl Write,
    overflowed: &mut u64,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let (first, rest) = (entry.positions[0], &entry.positions[1..]);
    let inline = rest.len() <= 2 && rest.iter().all(|p| u32::try_from(p - first).is_ok());
    let (first, later) = match inline {
        true => {
            let mut later = [0u32; 2];
            for (slot, position) in later.iter_mut().zip(rest) {
                *slot = (position - first) as u32;
            }
            (first, later)
        }
        false => {
            for position in &entry.positions {
                overflow.write_all(&position.to_le_bytes())?;
            }
            let at = *overflowed;
            *overflowed += entry.positions.len() as u64;
            (at, [0; 2])
        }
    };
    out.extend_from_slice(&entry.key.prefix.to_le_bytes());
    out.extend_from_slice(&entry.key.id);
    out.extend_from_slice(&entry.version.to_le_bytes());
    out.extend_from_slice(&(entry.positions.len() as u32).to_le_bytes());
    out.extend_from_slice(&first.to_le_bytes());
    out.extend_from_slice(&later[0].to_le_bytes());
    out.extend_from_slice(&later[1].to_le_bytes());
    Ok(())
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn key_of(bytes: &[u8]) -> StreamKey {
    StreamKey {
        prefix: u32_at(bytes, 0),
        id: bytes[4..20].try_into().expect("16 bytes"),
    }
}

impl Table {
    /// Writes `entries` (in key order, about `streams` of them) into a new table in `dir`;
    /// `hash_of` is the index's hash of a key.
    pub fn write(
        dir: &Path,
        streams: usize,
        entries: impl Iterator<Item = io::Result<Entry>>,
        hash_of: impl Fn(StreamKey) -> u64,
    ) -> io::Result<Table> {
        let (entries_file, overflow_file) =
            (tempfile::tempfile_in(dir)?, tempfile::tempfile_in(dir)?);
        let mut out = BufWriter::with_capacity(CHUNK * ENTRY, &entries_file);
        let mut overflow = BufWriter::new(&overflow_file);
        let (mut len, mut overflowed) = (0, 0);
        let mut fences = Vec::with_capacity(streams.div_ceil(PAGE));
        let mut bloom = Bloom::new(streams);
        let mut bytes = Vec::with_capacity(ENTRY);
        for entry in entries {
            let entry = entry?;
            if len % PAGE == 0 {
                fences.push(entry.key);
            }
            bloom.insert(hash_of(entry.key));
            bytes.clear();
            encode(&entry, &mut overflow, &mut overflowed, &mut bytes)?;
            out.write_all(&bytes)?;
            len += 1;
        }
        out.flush()?;
        overflow.flush()?;
        drop((out, overflow));
        Ok(Table {
            entries: entries_file,
            overflow: overflow_file,
            len,
            fences,
            bloom,
        })
    }

    /// Merges two tables into a new one in `dir`: a stream in both keeps `older`'s positions
    /// followed by `newer`'s, at `newer`'s version.
    pub fn merge(
        dir: &Path,
        older: &Table,
        newer: &Table,
        hash_of: impl Fn(StreamKey) -> u64,
    ) -> io::Result<Table> {
        let (mut a, mut b) = (older.iter().peekable(), newer.iter().peekable());
        let merged = std::iter::from_fn(move || {
            let order = match (a.peek(), b.peek()) {
                (None, None) => return None,
                (Some(Err(_)), _) | (Some(_), None) => Ordering::Less,
                (_, Some(Err(_))) | (None, Some(_)) => Ordering::Greater,
                (Some(Ok(x)), Some(Ok(y))) => x.key.cmp(&y.key),
            };
            match order {
                Ordering::Less => a.next(),
                Ordering::Greater => b.next(),
                Ordering::Equal => {
                    let (Some(Ok(mut x)), Some(Ok(y))) = (a.next(), b.next()) else {
                        unreachable!("both peeked as entries")
                    };
                    x.positions.extend(y.positions);
                    x.version = y.version;
                    Some(Ok(x))
                }
            }
        });
        Table::write(dir, older.len + newer.len, merged, hash_of)
    }

    /// How many streams it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// What the table holds of the stream with `key` (whose hash is `hash`).
    pub fn get(&self, key: StreamKey, hash: u64) -> io::Result<Option<Entry>> {
        match self.find(key, hash)? {
            Some(bytes) => self.decode(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// The stream's version, if the table holds any of it: its entry alone is read, not its
    /// positions in the overflow.
    pub fn version(&self, key: StreamKey, hash: u64) -> io::Result<Option<u32>> {
        Ok(self.find(key, hash)?.map(|bytes| u32_at(&bytes, 20)))
    }

    /// The encoded entry of the stream with `key`: one read of the [`WINDOW`] entries around
    /// where its key puts it in its page, or of the whole page when the key is not among them
    /// and could be elsewhere in it; none if the bloom filter rules it out.
    fn find(&self, key: StreamKey, hash: u64) -> io::Result<Option<[u8; ENTRY]>> {
        if !self.bloom.may_contain(hash) {
            return Ok(None);
        }
        let Some(page) = self.page_of(key) else {
            return Ok(None);
        };
        let first = page * PAGE;
        let count = PAGE.min(self.len - first);
        if let Some(start) = self.window_start(page, count, key) {
            match self.search(first + start, WINDOW, key)? {
                Ok(found) => return Ok(Some(found)),
                // The window's neighbours of the key's place are the page's: it is absent.
                Err(at) if (at > 0 || start == 0) && (at < WINDOW || start + WINDOW == count) => {
                    return Ok(None);
                }
                Err(_) => {}
            }
        }
        Ok(self.search(first, count, key)?.ok())
    }

    /// The page `key` would be in, if any.
    fn page_of(&self, key: StreamKey) -> Option<usize> {
        self.fences
            .partition_point(|fence| *fence <= key)
            .checked_sub(1)
    }

    /// Where the window for `key` starts in `page` (of `count` entries): centred on the place
    /// its key's first eight id bytes give it between the page's first key and the next
    /// page's, as the keys of UUID-named streams are spread evenly. `None` (read the page)
    /// when the page is not much bigger than a window, is the last, or spans other prefixes.
    fn window_start(&self, page: usize, count: usize, key: StreamKey) -> Option<usize> {
        let (low, high) = (self.fences[page], *self.fences.get(page + 1)?);
        if count < 2 * WINDOW || low.prefix != key.prefix || high.prefix != key.prefix {
            return None;
        }
        let value = |k: StreamKey| u64::from_be_bytes(k.id[..8].try_into().expect("8 bytes"));
        let (low, high, at) = (value(low), value(high), value(key));
        let span = high.checked_sub(low).filter(|&span| span > 0)?;
        let place = u128::from(at.saturating_sub(low)) * count as u128 / u128::from(span);
        Some(
            (place as usize)
                .saturating_sub(WINDOW / 2)
                .min(count - WINDOW),
        )
    }

    /// Binary search for `key` among the `count` entries from entry `from`, read at once: the
    /// entry, or where the key would be among them.
    fn search(
        &self,
        from: usize,
        count: usize,
        key: StreamKey,
    ) -> io::Result<Result<[u8; ENTRY], usize>> {
        let mut buf = [0u8; PAGE * ENTRY];
        let buf = &mut buf[..count * ENTRY];
        self.entries.read_exact_at(buf, (from * ENTRY) as u64)?;
        let (entries, _) = buf.as_chunks::<ENTRY>();
        let found = entries.binary_search_by(|entry| key_of(entry).cmp(&key));
        Ok(found.map(|i| entries[i]))
    }

    /// The entry encoded in `bytes`, its positions read from the overflow if they are there.
    fn decode(&self, bytes: &[u8]) -> io::Result<Entry> {
        let (version, count) = (u32_at(bytes, 20), u32_at(bytes, 24) as usize);
        let first = u64::from_le_bytes(bytes[28..36].try_into().expect("8 bytes"));
        let later = [u32_at(bytes, 36), u32_at(bytes, 40)];
        let positions = if count > 1 && later[0] == 0 {
            let mut raw = vec![0u8; count * 8];
            self.overflow.read_exact_at(&mut raw, first * 8)?;
            raw.chunks_exact(8)
                .map(|p| u64::from_le_bytes(p.try_into().expect("8 bytes")))
                .collect()
        } else {
            let rest = later[..count - 1].iter().map(|&d| first + u64::from(d));
            std::iter::once(first).chain(rest).collect()
        };
        Ok(Entry {
            key: key_of(bytes),
            version,
            positions,
        })
    }

    /// Every entry, in key order, read a chunk at a time.
    pub fn iter(&self) -> impl Iterator<Item = io::Result<Entry>> + '_ {
        let mut buf = Vec::new();
        let mut next = 0;
        std::iter::from_fn(move || {
            if next == self.len {
                return None;
            }
            let in_buf = next % CHUNK;
            if in_buf == 0 {
                buf.resize(CHUNK.min(self.len - next) * ENTRY, 0);
                if let Err(err) = self.entries.read_exact_at(&mut buf, (next * ENTRY) as u64) {
                    next = self.len;
                    return Some(Err(err));
                }
            }
            next += 1;
            Some(self.decode(&buf[in_buf * ENTRY..(in_buf + 1) * ENTRY]))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    fn key(n: u32) -> StreamKey {
        StreamKey {
            prefix: n % 3,
            id: u128::from(n).to_be_bytes(),
        }
    }

    /// A hash with fixed keys, as the index's is for its lifetime.
    fn hash_of(key: StreamKey) -> u64 {
        std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default().hash_one(key)
    }

    /// A stream's entry of `events` positions from `first` on, every `gap` positions.
    fn entry(n: u32, version: u32, first: u64, gap: u64, events: u64) -> Entry {
        Entry {
            key: key(n),
            version,
            positions: (0..events).map(|i| first + i * gap).collect(),
        }
    }

    fn table(dir: &Path, mut entries: Vec<Entry>) -> Table {
        entries.sort_by_key(|e| e.key);
        Table::write(dir, entries.len(), entries.into_iter().map(Ok), hash_of).unwrap()
    }

    #[test]
    fn every_stream_is_found_across_pages_and_absent_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let entries: Vec<Entry> = (0..1_000)
            .map(|n| match n % 4 {
                0 => entry(n, 1, u64::from(n), 1, 1),
                1 => entry(n, 9, u64::from(n), 5, 3),
                2 => entry(n, 12, u64::from(n), 1, 7),
                _ => entry(n, 2, u64::from(n), 1 << 33, 2),
            })
            .collect();
        let table = table(dir.path(), entries.clone());
        assert_eq!(table.len(), 1_000);
        assert!(table.fences.len() > 10, "several pages");
        for e in &entries {
            assert_eq!(table.get(e.key, hash_of(e.key)).unwrap().as_ref(), Some(e));
            assert_eq!(
                table.version(e.key, hash_of(e.key)).unwrap(),
                Some(e.version)
            );
        }
        for n in 1_000..3_000 {
            assert_eq!(table.get(key(n), hash_of(key(n))).unwrap(), None);
            assert_eq!(table.version(key(n), hash_of(key(n))).unwrap(), None);
        }
        let mut sorted = entries;
        sorted.sort_by_key(|e| e.key);
        let read: Vec<Entry> = table.iter().map(Result::unwrap).collect();
        assert_eq!(read, sorted);
    }

    #[test]
    fn uuid_named_streams_are_found_from_the_window_their_key_gives_them_or_their_page() {
        let dir = tempfile::tempdir().unwrap();
        // Random ids, spread evenly as UUIDs are, and a run of consecutive ids that are not,
        // which puts keys far from where their value says in their pages.
        let mut ids: Vec<u128> = (0..3_000).map(|_| uuid::Uuid::new_v4().as_u128()).collect();
        let run = ids[0];
        ids.extend((1..300).map(|i| run + i));
        let entries: Vec<Entry> = (0u32..)
            .zip(&ids)
            .map(|(n, id)| Entry {
                key: StreamKey {
                    prefix: 1,
                    id: id.to_be_bytes(),
                },
                version: n + 1,
                positions: vec![u64::from(n)],
            })
            .collect();
        let table = table(dir.path(), entries.clone());
        let in_window = entries
            .iter()
            .filter(|e| {
                let page = table.page_of(e.key).unwrap();
                let count = PAGE.min(table.len - page * PAGE);
                table.window_start(page, count, e.key).is_some_and(|start| {
                    table
                        .search(page * PAGE + start, WINDOW, e.key)
                        .unwrap()
                        .is_ok()
                })
            })
            .count();
        assert!(
            in_window > entries.len() * 3 / 4,
            "most keys are in their window ({in_window} of {})",
            entries.len()
        );
        for e in &entries {
            assert_eq!(
                table.version(e.key, hash_of(e.key)).unwrap(),
                Some(e.version)
            );
        }
        let absent = ids
            .iter()
            .flat_map(|id| [id.wrapping_sub(1), id.wrapping_add(1)])
            .chain((0..3_000).map(|_| uuid::Uuid::new_v4().as_u128()))
            .filter(|id| !ids.contains(id));
        for id in absent {
            let key = StreamKey {
                prefix: 1,
                id: id.to_be_bytes(),
            };
            assert_eq!(table.version(key, hash_of(key)).unwrap(), None, "{id:x}");
        }
    }

    #[test]
    fn merging_joins_a_streams_positions_at_the_newer_version() {
        let dir = tempfile::tempdir().unwrap();
        let older = table(
            dir.path(),
            (0..600)
                .map(|n| entry(n, 2, u64::from(n) * 10, 1, 2))
                .collect(),
        );
        let newer = table(
            dir.path(),
            (300..900)
                .map(|n| match n < 600 {
                    true => entry(n, 4, 100_000 + u64::from(n), 1, 2),
                    false => entry(n, 1, 100_000 + u64::from(n), 1, 1),
                })
                .collect(),
        );
        let merged = Table::merge(dir.path(), &older, &newer, hash_of).unwrap();
        assert_eq!(merged.len(), 900);
        let get = |n| merged.get(key(n), hash_of(key(n))).unwrap().unwrap();
        assert_eq!(get(5), entry(5, 2, 50, 1, 2));
        assert_eq!(get(700), entry(700, 1, 100_700, 1, 1));
        let both = get(400);
        assert_eq!(both.version, 4);
        assert_eq!(both.first_version(), 1);
        assert_eq!(both.positions, [4_000, 4_001, 100_400, 100_401]);
        let keys: Vec<StreamKey> = merged.iter().map(|e| e.unwrap().key).collect();
        assert!(keys.is_sorted());
    }

    #[test]
    fn the_bloom_filter_misses_about_one_in_a_hundred() {
        let mut bloom = Bloom::new(10_000);
        for n in 0..10_000 {
            bloom.insert(hash_of(key(n)));
        }
        assert!((0..10_000).all(|n| bloom.may_contain(hash_of(key(n)))));
        let false_positives = (10_000..110_000)
            .filter(|&n| bloom.may_contain(hash_of(key(n))))
            .count();
        assert!(false_positives < 2_000, "{false_positives} of 100,000");
    }
}
