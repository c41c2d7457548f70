//! A table of streams on disk: what a full in-memory layer of the index held, or two tables
//! merged, written once and never changed. Entries are sorted by key and fixed-size, so a
//! stream is found by a binary search among the first keys of the table's pages (kept in
//! memory, 20 bytes a page) and one read of a page; a bloom filter (10 bits a stream in
//! memory) answers most lookups of a stream the table does not hold, such as every new
//! stream's, without reading anything. The last few pages read are kept: streams named by
//! UUIDv7s (grants) sort by their creation, and those created together are asked for
//! together (a refresh comes about one access token's lifetime after its grant's last), so
//! most of those lookups find their page already read.
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
use std::sync::{Mutex, PoisonError};

/// Bytes of one entry.
const ENTRY: usize = 44;
/// Entries in a page, the unit read to find a stream: 4,092 bytes.
const PAGE: usize = 4096 / ENTRY;
/// Pages a table keeps once read, the latest first.
const CACHED_PAGES: usize = 8;
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
    /// The pages read last (their number and entries), the latest first.
    cached: Mutex<Vec<(usize, Vec<u8>)>>,
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
            cached: Mutex::new(Vec::with_capacity(CACHED_PAGES)),
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

    /// The encoded entry of the stream with `key`: one read of the page it would be in,
    /// none if the bloom filter rules it out.
    fn find(&self, key: StreamKey, hash: u64) -> io::Result<Option<[u8; ENTRY]>> {
        if !self.bloom.may_contain(hash) {
            return Ok(None);
        }
        let Some(page) = self
            .fences
            .partition_point(|fence| *fence <= key)
            .checked_sub(1)
        else {
            return Ok(None);
        };
        self.with_page(page, |entries| {
            let found = entries.binary_search_by(|entry| key_of(entry).cmp(&key));
            found.ok().map(|i| entries[i])
        })
    }

    /// `look` at the entries of page `page`: a kept one, or one read and then kept in place
    /// of the page used longest ago. The read is made without holding the kept pages, so a
    /// read from disk holds up no other lookup (the log's writer checks versions here).
    fn with_page<R>(&self, page: usize, look: impl FnOnce(&[[u8; ENTRY]]) -> R) -> io::Result<R> {
        let kept = || self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        {
            let mut cached = kept();
            if let Some(at) = cached.iter().position(|(number, _)| *number == page) {
                cached[..=at].rotate_right(1);
                return Ok(look(cached[0].1.as_chunks().0));
            }
        }
        let first = page * PAGE;
        let mut buf = vec![0; PAGE.min(self.len - first) * ENTRY];
        self.entries
            .read_exact_at(&mut buf, (first * ENTRY) as u64)?;
        let seen = look(buf.as_chunks().0);
        let mut cached = kept();
        // Another lookup may have read and kept it meanwhile.
        if cached.iter().all(|(number, _)| *number != page) {
            cached.truncate(CACHED_PAGES - 1);
            cached.insert(0, (page, buf));
        }
        Ok(seen)
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
    fn the_pages_read_last_are_kept_and_the_rest_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let table = table(
            dir.path(),
            (0..3_000).map(|n| entry(n, n, 1, 1, 1)).collect(),
        );
        // Keys 0, 3, 6, ... share prefix 0 and sort by id: neighbours share a page.
        let pages: Vec<u32> = (0..CACHED_PAGES as u32)
            .map(|p| p * 3 * PAGE as u32)
            .collect();
        let version = |n: u32| table.version(key(n), hash_of(key(n)));
        for &n in &pages {
            assert_eq!(version(n).unwrap(), Some(n));
        }
        // The file gone: what the kept pages hold is still found, anything else is an error.
        table.entries.set_len(0).unwrap();
        for &n in &pages {
            assert_eq!(version(n + 3).unwrap(), Some(n + 3), "a kept page");
        }
        let elsewhere = CACHED_PAGES as u32 * 3 * PAGE as u32;
        assert_eq!(
            version(elsewhere).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        // The read that failed took the place of no page.
        for &n in pages.iter().rev() {
            assert_eq!(version(n).unwrap(), Some(n), "still kept");
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
