//! Growing a large collection without stopping its readers. Growing a vector copies it and
//! growing a hash table rehashes every entry: tens of milliseconds at a few hundred thousand
//! entries. Where readers wait on a lock that the one writer takes to add entries, the
//! writer makes a grown copy under the read lock ([`grown_vec`], [`grown_table`],
//! [`grown_map`]), swaps it in under the write lock ([`swap_in`]), and frees the old one
//! after unlocking.

use hashbrown::{HashMap, HashTable};
use std::hash::Hash;

/// The capacity of a grown copy: room for `incoming` more, and at least double.
fn grown_capacity(len: usize, capacity: usize, incoming: usize) -> Option<usize> {
    (capacity - len < incoming).then(|| (len + incoming).max(2 * capacity))
}

/// A copy of `vec` with room for `incoming` more, if it has not.
pub fn grown_vec<T: Clone>(vec: &Vec<T>, incoming: usize) -> Option<Vec<T>> {
    let capacity = grown_capacity(vec.len(), vec.capacity(), incoming)?;
    let mut grown = Vec::with_capacity(capacity);
    grown.extend_from_slice(vec);
    Some(grown)
}

/// A copy of `table` with room for `incoming` more, if it has not; `hash` hashes an entry.
pub fn grown_table<T: Copy>(
    table: &HashTable<T>,
    incoming: usize,
    hash: impl Fn(&T) -> u64,
) -> Option<HashTable<T>> {
    let capacity = grown_capacity(table.len(), table.capacity(), incoming)?;
    let mut grown = HashTable::with_capacity(capacity);
    for &entry in table {
        grown.insert_unique(hash(&entry), entry, &hash);
    }
    Some(grown)
}

/// A copy of `map` with room for `incoming` more, if it has not.
pub fn grown_map<K: Clone + Eq + Hash, V: Clone>(
    map: &HashMap<K, V>,
    incoming: usize,
) -> Option<HashMap<K, V>> {
    let capacity = grown_capacity(map.len(), map.capacity(), incoming)?;
    let mut grown = HashMap::with_capacity(capacity);
    grown.extend(map.iter().map(|(k, v)| (k.clone(), v.clone())));
    Some(grown)
}

/// Puts the grown copy in `grown`, if there is one, in place of `current`, and the old one
/// in `grown`, to be dropped after the lock is released.
pub fn swap_in<T: Entries>(current: &mut T, grown: &mut Option<T>) {
    if let Some(grown) = grown {
        debug_assert_eq!(
            grown.entries(),
            current.entries(),
            "changed while it was copied"
        );
        std::mem::swap(current, grown);
    }
}

/// What [`swap_in`] checks: the copy holds as many entries as the original.
pub trait Entries {
    /// How many entries.
    fn entries(&self) -> usize;
}

impl<T> Entries for Vec<T> {
    fn entries(&self) -> usize {
        Vec::len(self)
    }
}

impl<T> Entries for HashTable<T> {
    fn entries(&self) -> usize {
        HashTable::len(self)
    }
}

impl<K, V> Entries for HashMap<K, V> {
    fn entries(&self) -> usize {
        HashMap::len(self)
    }
}
