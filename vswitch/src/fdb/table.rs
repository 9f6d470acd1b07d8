//! Where the forwarding table keeps its entries: a hash table built for the
//! datapath's access pattern, a batch of look-ups at a time into a table
//! that may hold millions of MACs.
//!
//! - **One cache line per look-up.** Entries are 16 bytes (key and flags in
//!   one word; port and last-seen second in the other), four to a 64-byte
//!   bucket. A key's bucket follows from its hash alone, so the pipeline
//!   can `prefetch` the buckets of a whole batch before it needs them, and
//!   the misses of 32 frames overlap instead of queueing one after another.
//! - **Open addressing by bucket.** A key lives in its home bucket or, when
//!   that is full, in the next one with room; a full bucket that sent a key
//!   on is marked *overflowed*, and a search stops at the first bucket not
//!   so marked, usually the home bucket itself. Removing a key just frees
//!   its slot. Marks only become stale (a search looks one bucket too far);
//!   `retain`, which the aging sweep runs every second, recomputes them
//!   once removals pass a quarter of the entries. A bit per bucket in use
//!   lets the sweep skip the empty ones.
//! - **Fixed size, lazily backed.** Room for twice the entries asked for
//!   (at most half full, so chains stay short), allocated once and never
//!   grown; the memory is zeroed by the kernel on first touch, so a table
//!   sized for millions costs only what it holds, and large tables are
//!   backed by huge pages where the kernel allows (`sys::mem`), which saves
//!   a TLB miss per look-up.
//! - **Seeded hash** (hashbrown's default, foldhash): a VM cannot choose
//!   MACs that pile into one bucket without knowing the seed.

use std::hash::BuildHasher;

use hashbrown::DefaultHashBuilder;

use super::{FdbEntry, PortId};
use crate::port::sys::mem;

const SLOTS: usize = 4;
/// u64 words per slot and per bucket.
const SLOT_WORDS: usize = 2;
const BUCKET_WORDS: usize = SLOTS * SLOT_WORDS;
/// Bits of a slot's first word: the key (VLAN and MAC) below, flags above.
const KEY_BITS: u64 = (1 << 60) - 1;
const STATIC: u64 = 1 << 60;
const EVPN: u64 = 1 << 61;
/// Kept in the first slot's word of a bucket, for the whole bucket.
const OVERFLOW: u64 = 1 << 62;
const OCCUPIED: u64 = 1 << 63;
const IDENTITY: u64 = OCCUPIED | KEY_BITS;
/// Tables of at least this many bytes ask for huge pages.
const HUGE_PAGE_MIN_BYTES: usize = 4 << 20;

/// Where an entry lives: an index into the table's words, valid until the
/// table is next changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotRef(usize);

pub struct MacTable {
    /// The buckets, `BUCKET_WORDS` words each, from `base` on (the first
    /// word index that is 64-byte aligned).
    words: Vec<u64>,
    base: usize,
    mask: usize,
    len: usize,
    /// Entries removed since the overflow marks were last recomputed.
    removed_since_marks: usize,
    /// One bit per bucket that holds an entry or an overflow mark, so a
    /// sweep of a large, mostly empty table reads only the buckets in use.
    in_use: Vec<u64>,
    hasher: DefaultHashBuilder,
}

#[inline]
fn decode(word: u64, data: u64) -> FdbEntry {
    FdbEntry {
        port: data as u32,
        last_seen: data >> 32,
        is_static: word & STATIC != 0,
        evpn: word & EVPN != 0,
    }
}

#[inline]
fn encode(key: u64, e: &FdbEntry) -> (u64, u64) {
    let mut word = OCCUPIED | (key & KEY_BITS);
    if e.is_static {
        word |= STATIC;
    }
    if e.evpn {
        word |= EVPN;
    }
    let seen = e.last_seen.min(u64::from(u32::MAX));
    (word, (seen << 32) | u64::from(e.port))
}

impl MacTable {
    /// A table that holds `entries` keys at half its room.
    pub fn new(entries: usize) -> MacTable {
        let buckets = (entries.max(1) * 2)
            .div_ceil(SLOTS)
            .next_power_of_two()
            .max(2);
        // Zeroed words come straight from the kernel, untouched (a Vec of
        // integers is allocated zeroed): nothing is resident until used.
        // One bucket more to align the first one to a cache line.
        let words = vec![0u64; (buckets + 1) * BUCKET_WORDS];
        let misalign = (words.as_ptr() as usize % 64) / std::mem::size_of::<u64>();
        let base = (BUCKET_WORDS - misalign) % BUCKET_WORDS;
        if std::mem::size_of_val(words.as_slice()) >= HUGE_PAGE_MIN_BYTES {
            mem::advise_huge_pages(words.as_slice());
        }
        MacTable {
            words,
            base,
            mask: buckets - 1,
            len: 0,
            removed_since_marks: 0,
            in_use: vec![0; buckets.div_ceil(64)],
            hasher: DefaultHashBuilder::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slots in all: fixed when the table is made.
    pub fn capacity(&self) -> usize {
        self.buckets() * SLOTS
    }

    fn buckets(&self) -> usize {
        self.mask + 1
    }

    #[inline]
    fn home(&self, key: u64) -> usize {
        (self.hasher.hash_one(key & KEY_BITS) as usize) & self.mask
    }

    #[inline]
    fn bucket(&self, b: usize) -> &[u64] {
        let at = self.base + b * BUCKET_WORDS;
        &self.words[at..at + BUCKET_WORDS]
    }

    #[inline]
    fn next(&self, b: usize) -> usize {
        (b + 1) & self.mask
    }

    /// Starts loading the bucket where `key` would be.
    #[inline]
    pub fn prefetch(&self, key: u64) {
        mem::prefetch(&self.words[self.base + self.home(key) * BUCKET_WORDS]);
    }

    /// Where `key`'s entry is, if it has one.
    #[inline]
    pub fn find(&self, key: u64) -> Option<SlotRef> {
        let want = OCCUPIED | (key & KEY_BITS);
        let mut b = self.home(key);
        for _ in 0..self.buckets() {
            let bucket = self.bucket(b);
            // All four slots compared without a branch each: which slot
            // holds a key is random, and a mispredicted branch per look-up
            // would cost more than the compares.
            let hits = (0..SLOTS).fold(0u32, |hits, s| {
                hits | (u32::from(bucket[s * SLOT_WORDS] & IDENTITY == want) << s)
            });
            if hits != 0 {
                let s = hits.trailing_zeros() as usize;
                return Some(SlotRef(self.base + b * BUCKET_WORDS + s * SLOT_WORDS));
            }
            if bucket[0] & OVERFLOW == 0 {
                return None;
            }
            b = self.next(b);
        }
        None
    }

    #[inline]
    pub fn entry(&self, at: SlotRef) -> FdbEntry {
        decode(self.words[at.0], self.words[at.0 + 1])
    }

    /// Replaces the entry at `at` (same key).
    #[inline]
    pub fn set(&mut self, at: SlotRef, e: &FdbEntry) {
        let keep = self.words[at.0] & (KEY_BITS | OVERFLOW);
        let (word, data) = encode(keep & KEY_BITS, e);
        self.words[at.0] = word | (keep & OVERFLOW);
        self.words[at.0 + 1] = data;
    }

    /// The port of the entry at `at`.
    #[inline]
    pub fn port_at(&self, at: SlotRef) -> PortId {
        self.words[at.0 + 1] as u32
    }

    /// Stamps the entry at `at` as seen at `now`, when it was not already:
    /// an unchanged line stays clean. Returns the stamp it had.
    #[inline]
    pub fn refresh(&mut self, at: SlotRef, now: u64) -> u64 {
        let data = self.words[at.0 + 1];
        let seen = now.min(u64::from(u32::MAX));
        let before = data >> 32;
        if before != seen {
            self.words[at.0 + 1] = (seen << 32) | (data & u64::from(u32::MAX));
        }
        before
    }

    #[inline]
    pub fn get(&self, key: u64) -> Option<FdbEntry> {
        self.find(key).map(|at| self.entry(at))
    }

    pub fn contains_key(&self, key: u64) -> bool {
        self.find(key).is_some()
    }

    /// Stores `e` under `key`; returns the entry it replaced. The caller
    /// keeps the table within the entries it was made for: past that, a
    /// new key is stored as long as a slot is free anywhere, and dropped
    /// (returning `None`) only when none is.
    pub fn insert(&mut self, key: u64, e: FdbEntry) -> Option<FdbEntry> {
        if let Some(at) = self.find(key) {
            let old = self.entry(at);
            self.set(at, &e);
            return Some(old);
        }
        let (word, data) = encode(key, &e);
        let mut b = self.home(key);
        for _ in 0..self.buckets() {
            let at = self.base + b * BUCKET_WORDS;
            for s in 0..SLOTS {
                let w = at + s * SLOT_WORDS;
                if self.words[w] & OCCUPIED == 0 {
                    self.words[w] = word | (self.words[w] & OVERFLOW);
                    self.words[w + 1] = data;
                    self.len += 1;
                    self.in_use[b / 64] |= 1 << (b % 64);
                    return None;
                }
            }
            self.words[at] |= OVERFLOW;
            b = self.next(b);
        }
        None
    }

    fn clear_slot(&mut self, w: usize) {
        self.words[w] &= OVERFLOW;
        self.words[w + 1] = 0;
        self.len -= 1;
        self.removed_since_marks += 1;
        self.forget_if_blank((w - self.base) / BUCKET_WORDS);
    }

    /// Takes bucket `b` out of `in_use` when it holds neither an entry nor
    /// an overflow mark.
    fn forget_if_blank(&mut self, b: usize) {
        if self.bucket(b).iter().step_by(SLOT_WORDS).all(|&w| w == 0) {
            self.in_use[b / 64] &= !(1 << (b % 64));
        }
    }

    /// Calls `f` with every bucket in `in_use` (as it was when the bucket's
    /// group of 64 was reached; `f` may take buckets out).
    fn each_bucket_in_use(&mut self, mut f: impl FnMut(&mut Self, usize)) {
        for i in 0..self.in_use.len() {
            let mut bits = self.in_use[i];
            while bits != 0 {
                f(self, i * 64 + bits.trailing_zeros() as usize);
                bits &= bits - 1;
            }
        }
    }

    pub fn remove(&mut self, key: u64) -> Option<FdbEntry> {
        let at = self.find(key)?;
        let old = self.entry(at);
        self.clear_slot(at.0);
        Some(old)
    }

    /// Keeps the entries `keep` says yes to. Once the entries removed
    /// since the overflow marks were last recomputed pass a quarter of
    /// those left, the marks are recomputed: stale marks only lengthen
    /// searches, and recomputing hashes every entry, which the aging sweep
    /// should not pay every second for a few MACs aged out.
    pub fn retain(&mut self, mut keep: impl FnMut(u64, &FdbEntry) -> bool) {
        self.each_bucket_in_use(|t, b| {
            for s in 0..SLOTS {
                let w = t.base + b * BUCKET_WORDS + s * SLOT_WORDS;
                let word = t.words[w];
                if word & OCCUPIED != 0 && !keep(word & KEY_BITS, &decode(word, t.words[w + 1])) {
                    t.clear_slot(w);
                }
            }
        });
        if self.removed_since_marks > 0 && self.removed_since_marks >= self.len / 4 {
            self.recompute_overflow();
        }
    }

    /// Marks exactly the buckets that some entry had to pass on its way
    /// from its home bucket to where it is.
    fn recompute_overflow(&mut self) {
        self.removed_since_marks = 0;
        self.each_bucket_in_use(|t, b| {
            t.words[t.base + b * BUCKET_WORDS] &= !OVERFLOW;
            t.forget_if_blank(b);
        });
        self.each_bucket_in_use(|t, b| {
            for s in 0..SLOTS {
                let word = t.words[t.base + b * BUCKET_WORDS + s * SLOT_WORDS];
                if word & OCCUPIED == 0 {
                    continue;
                }
                let mut h = t.home(word);
                while h != b {
                    t.words[t.base + h * BUCKET_WORDS] |= OVERFLOW;
                    t.in_use[h / 64] |= 1 << (h % 64);
                    h = t.next(h);
                }
            }
        });
    }

    /// Every entry as (key, entry), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, FdbEntry)> + '_ {
        let slots = &self.words[self.base..self.base + self.buckets() * BUCKET_WORDS];
        slots
            .chunks_exact(SLOT_WORDS)
            .filter(|s| s[0] & OCCUPIED != 0)
            .map(|s| (s[0] & KEY_BITS, decode(s[0], s[1])))
    }

    /// The port of `key`'s entry.
    #[inline]
    pub fn port_of(&self, key: u64) -> Option<PortId> {
        self.find(key).map(|at| self.port_at(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn entry(port: PortId, seen: u64) -> FdbEntry {
        FdbEntry {
            port,
            last_seen: seen,
            is_static: port % 3 == 0,
            evpn: port % 5 == 0,
        }
    }

    #[test]
    fn buckets_are_cache_lines() {
        let t = MacTable::new(100);
        assert_eq!(t.words[t.base..].as_ptr() as usize % 64, 0);
        assert!(t.buckets() * SLOTS >= 200);
    }

    #[test]
    fn stores_replaces_and_removes() {
        let mut t = MacTable::new(16);
        let k = (10u64 << 48) | 0x0200_0000_0001;
        assert_eq!(t.get(k), None);
        assert_eq!(t.insert(k, entry(3, 7)), None);
        assert_eq!(t.get(k), Some(entry(3, 7)));
        assert_eq!(t.port_of(k), Some(3));
        assert_eq!(t.insert(k, entry(5, 9)), Some(entry(3, 7)));
        assert_eq!(t.len(), 1);
        let at = t.find(k).unwrap();
        t.set(at, &entry(1, u64::MAX));
        assert_eq!(t.get(k).unwrap().last_seen, u64::from(u32::MAX));
        assert_eq!(t.remove(k), Some(entry(1, u64::from(u32::MAX))));
        assert_eq!((t.get(k), t.len()), (None, 0));
        assert_eq!(t.remove(k), None);
    }

    /// The all-zero key (VLAN 0, MAC 00:00:00:00:00:00) is a key like any
    /// other: an empty slot is told by its OCCUPIED bit, not by a zero key.
    #[test]
    fn zero_key_is_storable() {
        let mut t = MacTable::new(4);
        assert_eq!(t.get(0), None);
        t.insert(0, entry(1, 1));
        assert_eq!(t.get(0), Some(entry(1, 1)));
    }

    /// Against a std HashMap under a long random mix of inserts, removes
    /// and sweeps, in a table so small that chains form and wrap around.
    #[test]
    fn behaves_like_a_map_under_churn() {
        let mut t = MacTable::new(64);
        let mut model: HashMap<u64, FdbEntry> = HashMap::new();
        let mut x = 0x1234_5678_9abc_def1u64;
        let mut rand = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..20_000u64 {
            let k = rand() % 200;
            match rand() % 10 {
                0..=4 if model.len() < 128 || model.contains_key(&k) => {
                    let e = entry((rand() % 7) as u32, round);
                    assert_eq!(t.insert(k, e), model.insert(k, e));
                }
                5..=7 => assert_eq!(t.remove(k), model.remove(&k)),
                8 if round % 50 == 0 => {
                    let cut = rand() % 7;
                    t.retain(|_, e| u64::from(e.port) != cut);
                    model.retain(|_, e| u64::from(e.port) != cut);
                }
                _ => assert_eq!(t.get(k), model.get(&k).copied()),
            }
            assert_eq!(t.len(), model.len());
        }
        let mut all: Vec<_> = t.iter().collect();
        all.sort_by_key(|(k, _)| *k);
        let mut want: Vec<_> = model.into_iter().collect();
        want.sort_by_key(|(k, _)| *k);
        assert_eq!(all, want);
    }

    /// Filling every slot still finds every key, and one more is dropped
    /// rather than looping.
    #[test]
    fn full_table_neither_loops_nor_loses_keys() {
        let mut t = MacTable::new(4);
        let room = t.buckets() * SLOTS;
        for k in 0..room as u64 {
            assert_eq!(t.insert(k, entry(1, k)), None);
        }
        assert_eq!(t.len(), room);
        for k in 0..room as u64 {
            assert_eq!(t.get(k), Some(entry(1, k)), "key {k}");
        }
        assert_eq!(t.insert(room as u64, entry(1, 0)), None);
        assert_eq!((t.len(), t.get(room as u64)), (room, None));
        t.retain(|k, _| k % 2 == 0);
        for k in 0..room as u64 {
            assert_eq!(t.get(k).is_some(), k % 2 == 0, "key {k}");
        }
    }
}
