//! An index of a slab's entries by a 24-bit tag of their key, in about 7.5 bytes an entry:
//! what the token model finds tokens (by hash) and grants (by id) with.
//!
//! A hash table costs more than its entries: `hashbrown` keeps a control byte beside each
//! one, fills at most 7/8 of a table whose size is a power of two and doubles it when full,
//! so an entry of 7 bytes took between 9 and 18 (16 MiB more at once, past 1,835,008 tokens).
//! Here each of 64 shards keeps its entries sorted by tag in a vector of exactly their size,
//! with a directory of where each group of about 8 to 16 tags starts (a quarter to half a
//! byte an entry); the newest entries wait in a small hash table of the shard and are merged
//! in when they are a sixteenth of it. A lookup reads that table, the directory and one
//! group; an insertion copies, amortized, about 16 entries, and a merge under the read
//! models' write lock copies one shard (a sixty-fourth of the index). Entries are never
//! removed one by one: a sweep builds the index anew ([`TagIndex::build`]).
//!
//! Tags must be uniform (a SHA-256 prefix, a keyed hash): the shard is the tag's top bits and
//! the group the next ones.

use hashbrown::HashTable;

/// The bits of a tag an index keeps.
const TAG_MASK: u32 = (1 << 24) - 1;

/// Shards, picked by the tag's top bits.
const SHARD_BITS: u32 = 6;

/// The tag's bits below those that pick the shard: they order a shard's entries and pick
/// their group.
const SHARD_TAG_BITS: u32 = 24 - SHARD_BITS;

/// Entries a directory group holds at least, on average.
const GROUP: usize = 8;

/// Entries a shard's table of the newest holds at least before they are merged...
const MIN_RECENT: usize = 448;

/// ... or, once the sorted entries are many, this fraction of them.
const RECENT_SHARE: usize = 16;

/// An entry, in 7 bytes: the number of a slab's entry (4) and its tag (3).
#[derive(Clone, Copy, Debug)]
struct Slot([u8; 7]);

impl Slot {
    fn new(number: u32, tag: u32) -> Slot {
        let mut slot = [0; 7];
        slot[..4].copy_from_slice(&number.to_le_bytes());
        slot[4..].copy_from_slice(&(tag & TAG_MASK).to_le_bytes()[..3]);
        Slot(slot)
    }

    fn number(&self) -> u32 {
        u32::from_le_bytes(self.0[..4].try_into().expect("4 bytes"))
    }

    fn tag(&self) -> u32 {
        u32::from_le_bytes([self.0[4], self.0[5], self.0[6], 0])
    }

    /// The hash of a tag in a shard's table of the newest: a multiplicative mix, so its top
    /// seven bits (the table's own tag) are not the ones every entry of the shard shares.
    fn hash(tag: u32) -> u64 {
        u64::from(tag).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    fn rehash(&self) -> u64 {
        Slot::hash(self.tag())
    }
}

/// The shard a tag belongs to.
fn shard_of(tag: u32) -> usize {
    (tag >> SHARD_TAG_BITS) as usize
}

/// One shard: the newest entries in a hash table, the others sorted by tag.
#[derive(Debug, Default)]
struct Shard {
    recent: HashTable<Slot>,
    /// Sorted by tag (but for the moment a build fills it), of exactly its length in
    /// capacity.
    sorted: Vec<Slot>,
    /// Where in `sorted` each group starts, and its end as the last element; empty until
    /// the first merge or build.
    starts: Vec<u32>,
    /// How many of the tag's bits below the shard's pick the group.
    group_bits: u32,
}

impl Shard {
    fn group(&self, tag: u32) -> usize {
        ((tag & ((1 << SHARD_TAG_BITS) - 1)) >> (SHARD_TAG_BITS - self.group_bits)) as usize
    }

    fn find(&self, tag: u32, mut is: impl FnMut(u32) -> bool) -> Option<u32> {
        let recent = self.recent.find(Slot::hash(tag), |slot| {
            slot.tag() == tag && is(slot.number())
        });
        if let Some(slot) = recent {
            return Some(slot.number());
        }
        let group = self.group(tag);
        let (from, to) = (self.starts.get(group)?, self.starts.get(group + 1)?);
        self.sorted[*from as usize..*to as usize]
            .iter()
            .filter(|slot| slot.tag() == tag)
            .map(Slot::number)
            .find(|&number| is(number))
    }

    fn insert(&mut self, slot: Slot) {
        self.recent.insert_unique(slot.rehash(), slot, Slot::rehash);
        if self.recent.len() >= MIN_RECENT.max(self.sorted.len() / RECENT_SHARE) {
            self.merge_recent();
        }
    }

    /// Moves the newest entries into the sorted ones, in a vector of their joint length.
    fn merge_recent(&mut self) {
        let mut recent: Vec<Slot> = self.recent.drain().collect();
        recent.sort_unstable_by_key(Slot::tag);
        let mut recent = recent.into_iter().peekable();
        let mut merged = Vec::with_capacity(self.sorted.len() + recent.len());
        for slot in &self.sorted {
            while let Some(newer) = recent.next_if(|newer| newer.tag() < slot.tag()) {
                merged.push(newer);
            }
            merged.push(*slot);
        }
        merged.extend(recent);
        self.sorted = merged;
        self.index_groups();
    }

    /// The directory of `sorted` (in order or not): as many groups as a power of two allows
    /// with at least [`GROUP`] entries each on average, and where each would start.
    fn index_groups(&mut self) {
        let groups = (self.sorted.len() / GROUP).max(1);
        self.group_bits = groups.ilog2().min(SHARD_TAG_BITS);
        let mut starts = vec![0u32; (1 << self.group_bits) + 1];
        for slot in &self.sorted {
            starts[self.group(slot.tag()) + 1] += 1;
        }
        for group in 1..starts.len() {
            starts[group] += starts[group - 1];
        }
        self.starts = starts;
    }

    /// Puts `sorted`'s entries, in any order, in order: each where the directory puts its
    /// group, then each group (8 to 16 entries) sorted. Linear, where a sort of the whole
    /// shard is not.
    fn sort(&mut self) {
        self.index_groups();
        let mut next = self.starts.clone();
        let mut placed = vec![Slot([0; 7]); self.sorted.len()];
        for slot in &self.sorted {
            let at = &mut next[self.group(slot.tag())];
            placed[*at as usize] = *slot;
            *at += 1;
        }
        for group in self.starts.windows(2) {
            placed[group[0] as usize..group[1] as usize].sort_unstable_by_key(Slot::tag);
        }
        self.sorted = placed;
    }
}

/// Entries (the numbers of a slab's entries) by a 24-bit tag of their key; see the module.
#[derive(Debug)]
pub struct TagIndex {
    shards: Vec<Shard>,
}

impl Default for TagIndex {
    fn default() -> TagIndex {
        TagIndex {
            shards: (0..1 << SHARD_BITS).map(|_| Shard::default()).collect(),
        }
    }
}

impl TagIndex {
    /// An index of `entries`, each a number and its tag, all at once (as a sweep or a
    /// checkpoint's load rebuilds it).
    pub fn build(entries: impl IntoIterator<Item = (u32, u32)>) -> TagIndex {
        let mut index = TagIndex::default();
        for (number, tag) in entries {
            index.shards[shard_of(tag & TAG_MASK)]
                .sorted
                .push(Slot::new(number, tag));
        }
        index.shards.iter_mut().for_each(Shard::sort);
        index
    }

    /// The first number filed under `tag` for which `is` holds; `is` sees only the numbers
    /// whose tag matches.
    pub fn find(&self, tag: u32, is: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = tag & TAG_MASK;
        self.shards[shard_of(tag)].find(tag, is)
    }

    /// Files `number` under `tag`.
    pub fn insert(&mut self, number: u32, tag: u32) {
        let tag = tag & TAG_MASK;
        self.shards[shard_of(tag)].insert(Slot::new(number, tag));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl TagIndex {
        fn len(&self) -> usize {
            let shard = |s: &Shard| s.recent.len() + s.sorted.len();
            self.shards.iter().map(shard).sum()
        }

        /// Heap bytes held.
        fn bytes(&self) -> usize {
            let shard = |s: &Shard| {
                s.recent.allocation_size()
                    + s.sorted.capacity() * size_of::<Slot>()
                    + s.starts.capacity() * size_of::<u32>()
            };
            let shards = self.shards.capacity() * size_of::<Shard>();
            self.shards.iter().map(shard).sum::<usize>() + shards
        }
    }

    /// A uniform tag for `i`, as a token's hash gives (SplitMix64's finalizer).
    fn tag(i: u32) -> u32 {
        let mut z = u64::from(i).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) as u32
    }

    #[test]
    fn a_slot_keeps_its_number_and_24_bits_of_its_tag_in_7_bytes() {
        assert_eq!(size_of::<Slot>(), 7);
        for (number, tag) in [(0, 0), (u32::MAX, u32::MAX), (0x0102_0304, 0xabcd_ef12)] {
            let slot = Slot::new(number, tag);
            assert_eq!((slot.number(), slot.tag()), (number, tag & TAG_MASK));
            assert_eq!(slot.rehash(), Slot::hash(tag & TAG_MASK));
        }
        assert_ne!(Slot::hash(1) >> 57, Slot::hash(2) >> 57, "top bits differ");
    }

    #[test]
    fn every_entry_inserted_is_found_by_its_tag_across_merges() {
        let mut index = TagIndex::default();
        let n = 300_000u32;
        for i in 0..n {
            index.insert(i, tag(i));
        }
        assert_eq!(index.len(), n as usize);
        let merged: usize = index.shards.iter().map(|s| s.sorted.len()).sum();
        assert!(
            merged > n as usize * 9 / 10,
            "most entries merged: {merged}"
        );
        for i in 0..n {
            assert_eq!(index.find(tag(i), |number| number == i), Some(i), "{i}");
        }
        assert_eq!(index.find(tag(n), |number| number == n), None);
        // A tag that matches but a key that does not: not found, and only matching tags asked.
        assert_eq!(
            index.find(tag(7), |number| {
                assert_eq!(tag(number) & TAG_MASK, tag(7) & TAG_MASK);
                false
            }),
            None
        );
    }

    #[test]
    fn entries_sharing_a_tag_are_each_found() {
        let mut index = TagIndex::default();
        for i in 0..2_000u32 {
            index.insert(i, tag(i));
        }
        // Many entries under one tag, some merged into the sorted ones and some newest.
        for i in 2_000..2_600u32 {
            index.insert(i, tag(5));
        }
        for i in (2_000..2_600u32).chain([5]) {
            assert_eq!(index.find(tag(5), |number| number == i), Some(i));
        }
        let built = TagIndex::build((0..2_600u32).map(|i| (i, tag(if i < 2_000 { i } else { 5 }))));
        assert_eq!(built.find(tag(5), |number| number == 2_599), Some(2_599));
    }

    #[test]
    fn a_built_index_finds_what_an_inserted_one_does() {
        let entries: Vec<(u32, u32)> = (0..100_000u32).map(|i| (i * 3, tag(i))).collect();
        let built = TagIndex::build(entries.iter().copied());
        let mut inserted = TagIndex::default();
        entries
            .iter()
            .for_each(|&(number, tag)| inserted.insert(number, tag));
        for &(number, tag) in &entries {
            assert_eq!(built.find(tag, |n| n == number), Some(number));
            assert_eq!(inserted.find(tag, |n| n == number), Some(number));
        }
        assert_eq!(built.find(tag(100_000), |_| true), None);
        assert_eq!(TagIndex::build([]).find(tag(1), |_| true), None);
        let sorted = |index: &TagIndex| {
            index
                .shards
                .iter()
                .all(|s| s.sorted.is_sorted_by_key(Slot::tag))
        };
        assert!(
            sorted(&built) && sorted(&inserted),
            "each shard in order of tag"
        );
        // Entries inserted after a build are merged into what it sorted.
        let mut built = built;
        let later: Vec<(u32, u32)> = (100_000..200_000u32).map(|i| (i * 3, tag(i))).collect();
        later
            .iter()
            .for_each(|&(number, tag)| built.insert(number, tag));
        assert!(sorted(&built));
        for &(number, tag) in entries.iter().chain(&later) {
            assert_eq!(built.find(tag, |n| n == number), Some(number));
        }
    }

    #[test]
    fn an_entry_costs_under_nine_bytes_at_any_size() {
        let mut index = TagIndex::default();
        let mut worst: f64 = 0.0;
        for i in 0..2_000_000u32 {
            index.insert(i, tag(i));
            if i >= 200_000 && i % 50_000 == 0 {
                worst = worst.max(index.bytes() as f64 / f64::from(i + 1));
            }
        }
        assert!(worst < 9.0, "{worst:.2} bytes an entry");
        let built = TagIndex::build((0..2_000_000u32).map(|i| (i, tag(i))));
        let per_entry = built.bytes() as f64 / 2e6;
        assert!(per_entry < 7.6, "{per_entry:.2} bytes an entry when built");
        let largest_group = built
            .shards
            .iter()
            .flat_map(|s| s.starts.windows(2).map(|w| w[1] - w[0]))
            .max()
            .unwrap();
        assert!(largest_group < 64, "groups stay small: {largest_group}");
    }
}
