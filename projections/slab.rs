//! A slab of fixed-size records whose newest chunks stay in memory and whose older chunks
//! live in an unnamed file, read back a block of records at a time.
//!
//! The token model holds every live token, and a busy server issues tokens faster than they
//! expire: kept on the heap, a record costs its 49 bytes for the hour or more it lives, so
//! the process grows with the issuance rate. Most of those records are never asked for again
//! (a resource server introspects a token in the minutes after it is issued; a refresh token
//! is presented once, an hour later). So once [`Slab::spill_to`] names a directory, every
//! chunk of [`CHUNK`] records but the newest few is written to an unnamed file there, and a
//! lookup of an older record is at most one `pread` (from the page cache, which the kernel
//! may reclaim, rather than from memory the process holds for good).
//!
//! A record read from disk brings its block of [`BLOCK`] neighbours into a small cache: the
//! fold reads the record a request has just read (a refresh token's, and its grant's), and
//! records issued together are asked for together (a refresh token is presented about one
//! access token's lifetime after it was issued, so the refreshes of a minute present the
//! tokens issued in the same minute an hour before). A record changed in a cached block
//! (a refresh token's rotation, after the refresh read it) is written back with its block,
//! when another block takes its place or before the slab is read whole.
//!
//! The file is a cache of the events like the model itself: rebuilt at every start, never
//! synced, gone with the process. A chunk that cannot be written (a full disk) stays in
//! memory and is tried again at the next chunk. A record that cannot be read back or
//! written in place (an I/O error on a file this process wrote) stops the process: a read
//! model that cannot read itself cannot answer truly, and the next start rebuilds it from the
//! log.

use crate::growth::{deserialize_seq_into, serialize_seq_of};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

/// Records per chunk: what is written to the file at once (49 KiB of token records), small
/// enough that writing it under the read models' lock is brief and that its buffer is reused
/// by the allocator rather than handed back and forth with the system.
pub const CHUNK: usize = 1024;

/// Records a spilling slab keeps in memory unless told otherwise: the newest 65,536.
pub const IN_MEMORY: usize = 1 << 16;

/// The most bytes a [`Fixed`] record may take.
const MAX_SIZE: usize = 64;

/// Records per block: what one read of an older record brings into the cache (3 KiB of
/// token records). A chunk holds a whole number of blocks.
const BLOCK: usize = 64;
const _: () = assert!(CHUNK.is_multiple_of(BLOCK));

/// Blocks the cache holds, each in the one place its number picks.
const CACHED_BLOCKS: usize = 64;

/// A record written as exactly [`Fixed::SIZE`] bytes.
pub trait Fixed: Clone {
    /// Its size in the file (at most 64 bytes).
    const SIZE: usize;
    /// Writes it into `out`, which is `SIZE` bytes long.
    fn encode(&self, out: &mut [u8]);
    /// Reads it from `bytes`, which `encode` wrote.
    fn decode(bytes: &[u8]) -> Self;
}

enum Chunk<T> {
    Memory(Vec<T>),
    Disk,
}

/// One chunk's records, as [`Slab::iter`] yields them: copied from memory, or decoded one by
/// one from the chunk's bytes read from disk.
enum Records<'a, T> {
    Memory(std::slice::Iter<'a, T>),
    Disk { bytes: Vec<u8>, at: usize },
}

impl<T: Fixed> Iterator for Records<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        match self {
            Records::Memory(records) => records.next().cloned(),
            Records::Disk { bytes, at } => {
                let record = bytes.get(*at..*at + T::SIZE)?;
                *at += T::SIZE;
                Some(T::decode(record))
            }
        }
    }
}

/// Blocks of records on disk read lately, each in place `number % CACHED_BLOCKS`.
#[derive(Default)]
struct BlockCache(Vec<CachedBlock>);

/// One block's bytes, changed since read from the file if `dirty`.
struct CachedBlock {
    number: usize,
    dirty: bool,
    bytes: Vec<u8>,
}

impl CachedBlock {
    /// Where block `number` of blocks of `len` bytes starts in the file.
    fn offset(number: usize, len: usize) -> u64 {
        (number * len) as u64
    }

    /// Reads block `number` from `file` into this place (which names it only once read).
    fn read(&mut self, file: &File, number: usize) {
        self.number = usize::MAX;
        let offset = Self::offset(number, self.bytes.len());
        file.read_exact_at(&mut self.bytes, offset)
            .unwrap_or_else(|e| failed("read", e));
        self.number = number;
    }

    /// Writes the block back to `file` if it changed.
    fn write_back(&mut self, file: &File) {
        if self.dirty {
            let offset = Self::offset(self.number, self.bytes.len());
            file.write_all_at(&self.bytes, offset)
                .unwrap_or_else(|e| failed("write", e));
            self.dirty = false;
        }
    }
}

impl BlockCache {
    /// Block `number`, if cached.
    fn get_mut(&mut self, number: usize) -> Option<&mut CachedBlock> {
        let cached = self.0.get_mut(number % CACHED_BLOCKS)?;
        (cached.number == number).then_some(cached)
    }

    /// Block `number`, of `len` bytes, read from `file` into its place; the block there
    /// before is written back first if it changed.
    fn load(&mut self, file: &File, number: usize, len: usize) -> &CachedBlock {
        if self.0.is_empty() {
            self.0.resize_with(CACHED_BLOCKS, || CachedBlock {
                number: usize::MAX,
                dirty: false,
                bytes: vec![0; len],
            });
        }
        let cached = &mut self.0[number % CACHED_BLOCKS];
        cached.write_back(file);
        cached.read(file, number);
        cached
    }

    /// Writes every changed block back to `file`.
    fn write_back(&mut self, file: &File) {
        self.0.iter_mut().for_each(|cached| cached.write_back(file));
    }
}

/// Where the chunks go: a directory, and the file once the first chunk is written.
struct Spill {
    dir: PathBuf,
    file: Option<File>,
}

/// An append-only vector of [`Fixed`] records in chunks of [`CHUNK`], all in memory until
/// [`Slab::spill_to`], then all but the newest few chunks in a file.
pub struct Slab<T> {
    chunks: Vec<Chunk<T>>,
    len: usize,
    spill: Option<Spill>,
    /// Chunks kept in memory once spilling, the one being filled among them.
    in_memory: usize,
    /// Every chunk below this one is on disk.
    spilled: usize,
    /// The buffer of the last chunk written out, for the next chunk to fill.
    spare: Option<Vec<T>>,
    /// Blocks of records on disk read lately (readers share the slab, so behind a lock).
    cache: Mutex<BlockCache>,
}

impl<T> Default for Slab<T> {
    fn default() -> Slab<T> {
        Slab {
            chunks: Vec::new(),
            len: 0,
            spill: None,
            in_memory: usize::MAX,
            spilled: 0,
            spare: None,
            cache: Mutex::default(),
        }
    }
}

fn failed(action: &str, err: std::io::Error) -> ! {
    panic!("the token model could not {action} its file of older records: {err}")
}

/// The file of a slab with chunks on disk.
fn spill_file(spill: &Option<Spill>) -> &File {
    let file = spill.as_ref().and_then(|s| s.file.as_ref());
    file.expect("a chunk on disk has a file")
}

impl<T: Fixed> Slab<T> {
    /// How many records.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// An empty slab that spills where this one does.
    pub fn empty_like(&self) -> Slab<T> {
        Slab {
            spill: self.spill.as_ref().map(|s| Spill {
                dir: s.dir.clone(),
                file: None,
            }),
            in_memory: self.in_memory,
            ..Slab::default()
        }
    }

    /// From now on keeps only about the newest `records` in memory (whole chunks, at least
    /// one) and writes the others to an unnamed file in `dir` (now, and as the slab grows).
    pub fn spill_to(&mut self, dir: &Path, records: usize) {
        self.spill = Some(Spill {
            dir: dir.to_path_buf(),
            file: None,
        });
        self.in_memory = records.div_ceil(CHUNK).max(1);
        self.write_out();
    }

    /// How many records are on disk.
    pub fn on_disk(&self) -> usize {
        self.spilled * CHUNK
    }

    /// Appends `value` at index `len()`.
    pub fn push(&mut self, value: T) {
        if self.len.is_multiple_of(CHUNK) {
            let chunk = self
                .spare
                .take()
                .unwrap_or_else(|| Vec::with_capacity(CHUNK));
            self.chunks.push(Chunk::Memory(chunk));
            self.write_out();
        }
        match self.chunks.last_mut() {
            Some(Chunk::Memory(chunk)) => chunk.push(value),
            _ => unreachable!("the newest chunk stays in memory"),
        }
        self.len += 1;
    }

    /// The record at `index` (which must be below `len()`).
    pub fn get(&self, index: usize) -> T {
        match &self.chunks[index / CHUNK] {
            Chunk::Memory(chunk) => chunk[index % CHUNK].clone(),
            Chunk::Disk => {
                let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
                let number = index / BLOCK;
                let at = (index % BLOCK) * T::SIZE;
                if let Some(cached) = cache.get_mut(number) {
                    return T::decode(&cached.bytes[at..at + T::SIZE]);
                }
                let cached = cache.load(spill_file(&self.spill), number, BLOCK * T::SIZE);
                T::decode(&cached.bytes[at..at + T::SIZE])
            }
        }
    }

    /// Replaces the record at `index` (which must be below `len()`): in memory, in its cached
    /// block (written back when the block leaves the cache or the slab is read whole), or in
    /// the file.
    pub fn set(&mut self, index: usize, value: T) {
        if let Chunk::Memory(chunk) = &mut self.chunks[index / CHUNK] {
            chunk[index % CHUNK] = value;
            return;
        }
        let at = (index % BLOCK) * T::SIZE;
        let cache = self.cache.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(cached) = cache.get_mut(index / BLOCK) {
            value.encode(&mut cached.bytes[at..at + T::SIZE]);
            cached.dirty = true;
            return;
        }
        let mut bytes = [0; MAX_SIZE];
        let bytes = &mut bytes[..T::SIZE];
        value.encode(bytes);
        spill_file(&self.spill)
            .write_all_at(bytes, Self::offset(index))
            .unwrap_or_else(|e| failed("write", e));
    }

    /// The records in order (a chunk on disk read with one `pread`, once the cached blocks
    /// that changed are written back).
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        if self.spilled > 0 {
            let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            cache.write_back(spill_file(&self.spill));
        }
        let chunks = self.chunks.iter().enumerate();
        chunks.flat_map(move |(number, chunk)| match chunk {
            Chunk::Memory(chunk) => Records::Memory(chunk.iter()),
            Chunk::Disk => {
                let mut bytes = vec![0; CHUNK * T::SIZE];
                spill_file(&self.spill)
                    .read_exact_at(&mut bytes, Self::offset(number * CHUNK))
                    .unwrap_or_else(|e| failed("read", e));
                Records::Disk { bytes, at: 0 }
            }
        })
    }

    fn offset(index: usize) -> u64 {
        (index * T::SIZE) as u64
    }

    /// Writes every full chunk older than the newest `in_memory` to the file, oldest first;
    /// stops at the first that cannot be written, which stays in memory for the next try.
    fn write_out(&mut self) {
        let Some(spill) = &mut self.spill else {
            return;
        };
        let keep_from = self.chunks.len().saturating_sub(self.in_memory);
        while self.spilled < keep_from {
            let number = self.spilled;
            let Chunk::Memory(mut records) =
                std::mem::replace(&mut self.chunks[number], Chunk::Disk)
            else {
                unreachable!("chunks from `spilled` on are in memory");
            };
            if let Err(err) = write_chunk(spill, number, &records) {
                tracing::warn!(
                    dir = %spill.dir.display(),
                    %err,
                    "could not move older token records to disk; they stay in memory"
                );
                self.chunks[number] = Chunk::Memory(records);
                return;
            }
            records.clear();
            self.spare = Some(records);
            self.spilled += 1;
        }
    }
}

/// Writes chunk `number` into the spill file, creating the file first if need be.
fn write_chunk<T: Fixed>(spill: &mut Spill, number: usize, records: &[T]) -> std::io::Result<()> {
    let file = match &mut spill.file {
        Some(file) => file,
        None => spill.file.insert(tempfile::tempfile_in(&spill.dir)?),
    };
    let mut bytes = vec![0; records.len() * T::SIZE];
    for (record, out) in records.iter().zip(bytes.chunks_exact_mut(T::SIZE)) {
        record.encode(out);
    }
    file.write_all_at(&bytes, (number * CHUNK * T::SIZE) as u64)
}

impl<T: Fixed + PartialEq> PartialEq for Slab<T> {
    fn eq(&self, other: &Slab<T>) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<T> fmt::Debug for Slab<T> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_struct("Slab")
            .field("len", &self.len)
            .field("chunks on disk", &self.spilled)
            .finish()
    }
}

/// Serialized as a plain sequence, as [`crate::growth::Chunked`] is.
impl<T: Fixed + Serialize> Serialize for Slab<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_seq_of(serializer, self.len, self.iter())
    }
}

impl<'de, T: Fixed + Deserialize<'de>> Deserialize<'de> for Slab<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Slab<T>, D::Error> {
        deserialize_seq_into(deserializer, Slab::push)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Pair(u32, u64);

    impl Fixed for Pair {
        const SIZE: usize = 12;
        fn encode(&self, out: &mut [u8]) {
            out[..4].copy_from_slice(&self.0.to_le_bytes());
            out[4..].copy_from_slice(&self.1.to_le_bytes());
        }
        fn decode(bytes: &[u8]) -> Pair {
            Pair(
                u32::from_le_bytes(bytes[..4].try_into().unwrap()),
                u64::from_le_bytes(bytes[4..].try_into().unwrap()),
            )
        }
    }

    /// Chunks the tests keep in memory.
    const KEEP: usize = 4;

    fn pair(i: usize) -> Pair {
        Pair(i as u32, (i as u64) << 33 | 7)
    }

    #[test]
    fn records_read_the_same_in_memory_and_on_disk_and_change_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let n = (KEEP + 3) * CHUNK + 10;
        let mut slab = Slab::default();
        (0..2 * CHUNK).for_each(|i| slab.push(pair(i)));
        assert_eq!(
            slab.on_disk(),
            0,
            "nothing spills until a directory is named"
        );
        slab.spill_to(dir.path(), KEEP * CHUNK);
        (2 * CHUNK..n).for_each(|i| slab.push(pair(i)));
        assert_eq!(slab.len(), n);
        assert_eq!(
            slab.on_disk(),
            4 * CHUNK,
            "all but the newest {KEEP} chunks"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "the file has no name"
        );
        for i in [0, 1, CHUNK - 1, CHUNK, 3 * CHUNK + 5, 4 * CHUNK, n - 1] {
            assert_eq!(slab.get(i), pair(i), "record {i}");
        }
        for i in [2, 3 * CHUNK + 5, n - 2] {
            slab.set(i, Pair(i as u32, 99));
        }
        let expected = |i: usize| match i {
            2 => Pair(2, 99),
            i if i == 3 * CHUNK + 5 || i == n - 2 => Pair(i as u32, 99),
            i => pair(i),
        };
        assert_eq!(slab.get(2), Pair(2, 99));
        assert!(slab.iter().enumerate().all(|(i, p)| p == expected(i)));
        assert_eq!(slab.iter().count(), n);

        let mut like = slab.empty_like();
        (0..(KEEP + 1) * CHUNK).for_each(|i| like.push(pair(i)));
        assert_eq!(like.on_disk(), CHUNK, "an empty slab like it spills too");
    }

    #[test]
    fn records_read_through_the_block_cache_are_what_the_file_holds_after_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let mut slab = Slab::default();
        slab.spill_to(dir.path(), CHUNK);
        let n = 2 * CACHED_BLOCKS * BLOCK + 2 * CHUNK;
        (0..n).for_each(|i| slab.push(pair(i)));
        assert!(slab.on_disk() >= 2 * CACHED_BLOCKS * BLOCK);
        // Blocks 0 and CACHED_BLOCKS take the same place in the cache.
        let (a, b) = (5, CACHED_BLOCKS * BLOCK + 5);
        assert_eq!(slab.get(a), pair(a));
        slab.set(a + 1, Pair(1, 1));
        slab.set(b, Pair(2, 2));
        assert_eq!(
            slab.get(a + 1),
            Pair(1, 1),
            "a cached block changes with its record"
        );
        assert_eq!(
            slab.get(b),
            Pair(2, 2),
            "an uncached block is read as written"
        );
        assert_eq!(
            slab.get(a + 1),
            Pair(1, 1),
            "a changed block is written back when another takes its place"
        );
        assert_eq!(slab.get(a), pair(a));
        let from_file: Vec<Pair> = slab.iter().collect();
        for i in (0..slab.on_disk()).rev().step_by(7) {
            assert_eq!(slab.get(i), from_file[i], "record {i}");
        }
    }

    #[test]
    fn a_slab_round_trips_as_the_sequence_a_chunked_vector_writes() {
        let dir = tempfile::tempdir().unwrap();
        let n = (KEEP + 2) * CHUNK + 3;
        let mut slab = Slab::default();
        slab.spill_to(dir.path(), KEEP * CHUNK);
        let mut chunked = crate::growth::Chunked::default();
        for i in 0..n {
            slab.push(pair(i));
            chunked.push(pair(i));
        }
        assert!(slab.on_disk() > 0);
        let bytes = postcard::to_stdvec(&slab).unwrap();
        assert_eq!(bytes, postcard::to_stdvec(&chunked).unwrap());
        let read: Slab<Pair> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(read, slab);
        assert_eq!(
            read.on_disk(),
            0,
            "read back in memory until told where to spill"
        );
    }

    #[test]
    fn chunks_that_cannot_be_written_stay_in_memory_and_are_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("gone");
        let n = (KEEP + 2) * CHUNK;
        let mut slab = Slab::default();
        slab.spill_to(&missing, KEEP * CHUNK);
        (0..n).for_each(|i| slab.push(pair(i)));
        assert_eq!(slab.on_disk(), 0);
        assert!(slab.iter().enumerate().all(|(i, p)| p == pair(i)));
        slab.set(1, Pair(1, 5));
        assert_eq!(slab.get(1), Pair(1, 5));

        // Once the directory is there, the next chunk takes the waiting ones out too.
        std::fs::create_dir(&missing).unwrap();
        (n..n + CHUNK).for_each(|i| slab.push(pair(i)));
        assert_eq!(slab.on_disk(), 3 * CHUNK);
        assert_eq!(slab.get(1), Pair(1, 5));
        assert_eq!(slab.get(n), pair(n));
    }
}
