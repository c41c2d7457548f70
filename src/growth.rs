//! Collections that grow a piece at a time. The read models and the log index add entries
//! under a write lock that every reader waits on. Growing a `Vec` copies all of it and
//! growing a hash table rehashes every entry: tens of milliseconds at a few hundred thousand
//! entries, with both copies in memory for that moment. [`Chunked`] grows by one fixed-size
//! chunk and never moves an element; [`Sharded`] spreads a table over independent shards, so
//! a growth rehashes one shard.

use hashbrown::HashTable;
use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::ops::{Index, IndexMut};

/// Elements per chunk of a [`Chunked`].
const CHUNK: usize = 1 << 14;

/// An append-only vector kept in chunks of [`CHUNK`] elements: a push allocates at most one
/// new chunk and never copies what is already there.
#[derive(Debug, PartialEq)]
pub struct Chunked<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Chunked<T> {
    fn default() -> Chunked<T> {
        Chunked {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Chunked<T> {
    /// How many elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `value` at index `len()`.
    pub fn push(&mut self, value: T) {
        if self.len.is_multiple_of(CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        self.chunks
            .last_mut()
            .expect("a chunk with room")
            .push(value);
        self.len += 1;
    }

    /// The elements in order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }
}

impl<T> Index<usize> for Chunked<T> {
    type Output = T;

    fn index(&self, index: usize) -> &T {
        &self.chunks[index / CHUNK][index % CHUNK]
    }
}

impl<T> IndexMut<usize> for Chunked<T> {
    fn index_mut(&mut self, index: usize) -> &mut T {
        &mut self.chunks[index / CHUNK][index % CHUNK]
    }
}

/// Serialized as a plain sequence.
impl<T: Serialize> Serialize for Chunked<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_seq_of(serializer, self.len, self.iter())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Chunked<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Chunked<T>, D::Error> {
        deserialize_seq_into(deserializer, Chunked::push)
    }
}

/// Writes `len` elements as one sequence (of known length, as postcard needs).
pub(crate) fn serialize_seq_of<S: Serializer, T: Serialize>(
    serializer: S,
    len: usize,
    elements: impl Iterator<Item = T>,
) -> Result<S::Ok, S::Error> {
    let mut seq = serializer.serialize_seq(Some(len))?;
    for element in elements {
        seq.serialize_element(&element)?;
    }
    seq.end()
}

/// Reads a sequence into a collection grown from empty by `push`, an element at a time.
pub(crate) fn deserialize_seq_into<'de, D, T, C>(
    deserializer: D,
    push: fn(&mut C, T),
) -> Result<C, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
    C: Default,
{
    struct Pushing<T, C>(fn(&mut C, T));
    impl<'de, T: Deserialize<'de>, C: Default> Visitor<'de> for Pushing<T, C> {
        type Value = C;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a sequence")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<C, A::Error> {
            let mut collection = C::default();
            while let Some(element) = seq.next_element()? {
                (self.0)(&mut collection, element);
            }
            Ok(collection)
        }
    }
    deserializer.deserialize_seq(Pushing(push))
}

/// Shards of a [`Sharded`] table.
const SHARDS: usize = 64;

/// A hash table in [`SHARDS`] independent shards, each entry in the shard its hash picks:
/// an insertion that makes a shard grow rehashes that shard alone. Entries' hashes are given
/// by the caller, as with [`HashTable`].
#[derive(Debug)]
pub struct Sharded<T> {
    shards: Vec<HashTable<T>>,
}

impl<T> Default for Sharded<T> {
    fn default() -> Sharded<T> {
        Sharded::with_capacity(0)
    }
}

/// The shard of an entry. Not the low bits, which pick the bucket within a shard, nor the top
/// seven, which the table keeps as a tag to filter candidates.
fn shard(hash: u64) -> usize {
    (hash >> 32) as usize % SHARDS
}

impl<T> Sharded<T> {
    /// A table with room for about `capacity` entries.
    pub fn with_capacity(capacity: usize) -> Sharded<T> {
        Sharded {
            shards: (0..SHARDS)
                .map(|_| HashTable::with_capacity(capacity.div_ceil(SHARDS)))
                .collect(),
        }
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.shards.iter().map(HashTable::len).sum()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(HashTable::is_empty)
    }

    /// The entry with this `hash` for which `eq` holds.
    pub fn find(&self, hash: u64, eq: impl FnMut(&T) -> bool) -> Option<&T> {
        self.shards[shard(hash)].find(hash, eq)
    }

    /// The entry with this `hash` for which `eq` holds, to change.
    pub fn find_mut(&mut self, hash: u64, eq: impl FnMut(&T) -> bool) -> Option<&mut T> {
        self.shards[shard(hash)].find_mut(hash, eq)
    }

    /// Adds `value`, which no entry equals, with its `hash`; `hasher` hashes the entries of
    /// its shard if it has to grow.
    pub fn insert_unique(&mut self, hash: u64, value: T, hasher: impl Fn(&T) -> u64) {
        self.shards[shard(hash)].insert_unique(hash, value, hasher);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn chunked_pushes_never_move_an_element_and_index_across_chunks() {
        let mut chunked = Chunked::default();
        chunked.push(0u64);
        let first: *const u64 = &chunked[0];
        for i in 1..3 * CHUNK as u64 + 5 {
            chunked.push(i);
        }
        assert!(std::ptr::eq(first, &chunked[0]), "the first element moved");
        assert_eq!(chunked.len(), 3 * CHUNK + 5);
        assert_eq!(chunked.chunks.len(), 4);
        assert!(chunked.chunks.iter().all(|c| c.capacity() == CHUNK));
        assert_eq!(chunked[CHUNK], CHUNK as u64);
        chunked[CHUNK + 1] = 7;
        assert_eq!(chunked[CHUNK + 1], 7);
        assert!(
            chunked
                .iter()
                .enumerate()
                .all(|(i, &v)| v == i as u64 || i == CHUNK + 1)
        );
    }

    #[test]
    fn chunked_round_trips_as_a_plain_sequence() {
        let mut chunked = Chunked::default();
        (0..CHUNK as u32 + 3).for_each(|i| chunked.push(i));
        let bytes = postcard::to_stdvec(&chunked).unwrap();
        let as_vec: Vec<u32> = (0..CHUNK as u32 + 3).collect();
        assert_eq!(bytes, postcard::to_stdvec(&as_vec).unwrap());
        assert_eq!(
            postcard::from_bytes::<Chunked<u32>>(&bytes).unwrap(),
            chunked
        );
    }

    #[test]
    fn a_sharded_insertion_grows_one_shard_at_most() {
        let hasher = hashbrown::DefaultHashBuilder::default();
        let mut table = Sharded::default();
        for i in 0..100_000u64 {
            let before: Vec<usize> = table.shards.iter().map(HashTable::capacity).collect();
            let h = hasher.hash_one(i);
            table.insert_unique(h, i, |v| hasher.hash_one(v));
            let grown = table
                .shards
                .iter()
                .zip(&before)
                .filter(|(shard, before)| shard.capacity() != **before)
                .count();
            assert!(grown <= 1, "inserting {i} grew {grown} shards");
        }
        assert_eq!(table.len(), 100_000);
        for i in (0..100_000u64).step_by(7) {
            assert_eq!(table.find(hasher.hash_one(i), |&v| v == i), Some(&i));
        }
        assert_eq!(
            table.find_mut(hasher.hash_one(5u64), |&v| v == 5),
            Some(&mut 5)
        );
        assert_eq!(
            table.find(hasher.hash_one(100_000u64), |&v| v == 100_000),
            None
        );
        let largest = table.shards.iter().map(HashTable::len).max().unwrap();
        assert!(
            largest < 100_000 / SHARDS * 2,
            "entries spread over the shards: {largest}"
        );
    }
}
