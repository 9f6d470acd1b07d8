//! The forwarding table of one bridge: (VLAN, MAC) -> port.
//!
//! Keys pack the 12-bit VLAN and the 48-bit MAC into one u64; values are a
//! port id, the second the MAC was last seen and a static flag. The table is
//! sized once for `max_entries` and never grows past it: when full, new MACs
//! are not learned (counted in `learn_refused`) and their frames still flood,
//! so a MAC flood from a VM costs bounded memory. Aging compares the
//! last-seen second with the datapath clock in a sweep the datapath runs once
//! a second, so the per-packet path only stores a timestamp (and only when
//! the second changed). The entries live in `table::MacTable`, laid out for
//! a batch's look-ups to be prefetched together (`Fdb::prefetch`).
//!
//! Time is always an argument (`now`, seconds on the datapath's monotonic
//! clock): tests drive aging with no sleeps.

use crate::wire::MacAddr;

pub mod evpn;
pub mod replica;
pub mod table;
pub use evpn::{MacEvent, MacJournal};

/// Index of a port in the datapath's port slab.
pub type PortId = u32;

/// Default seconds a learned MAC lives without being seen.
pub const DEFAULT_AGING_SECS: u64 = 300;
/// Default upper bound of entries per bridge.
pub const DEFAULT_MAX_ENTRIES: usize = 65536;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdbEntry {
    pub port: PortId,
    pub last_seen: u64,
    pub is_static: bool,
    /// Installed by the EVPN control plane (a MAC behind a remote VTEP):
    /// never aged, replaced when the MAC is learned on a local port.
    pub evpn: bool,
}

/// What `learn` did with a source address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LearnOutcome {
    /// Already known on this port; refreshed.
    Refreshed,
    /// A new entry.
    Learned,
    /// Was known on another port; now points at this one.
    Moved { from: PortId },
    /// Table full: not learned.
    Refused,
    /// The port may teach no more MACs (its `max_macs`): not learned.
    PortLimit,
    /// A static entry pins the MAC to another port: left alone.
    StaticConflict,
    /// The port does not teach the table (a tunnel whose remote MACs come
    /// from EVPN): not learned, forwarded.
    NotLearning,
}

/// Table-wide counters, read by the control thread as a copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FdbCounters {
    pub learned: u64,
    pub moves: u64,
    pub learn_refused: u64,
    pub static_conflicts: u64,
    pub aged_out: u64,
}

#[inline]
fn key(vlan: u16, mac: MacAddr) -> u64 {
    (u64::from(vlan & 0x0fff) << 48) | mac.to_u64()
}

#[inline]
fn unkey(k: u64) -> (u16, MacAddr) {
    ((k >> 48) as u16, MacAddr::from_u64(k & 0xffff_ffff_ffff))
}

pub struct Fdb {
    table: table::MacTable,
    max_entries: usize,
    aging_secs: u64,
    /// Learned (not static) entries per port, indexed by `PortId`.
    learned_per_port: Vec<u32>,
    pub counters: FdbCounters,
    /// The EVPN control plane's view of the table (`evpn.rs`).
    evpn: Option<evpn::Hook>,
    /// For a bridge that runs on several workers: what this replica
    /// learned, for the others (`replica.rs`).
    replica: Option<Box<replica::Outbox>>,
}

impl Fdb {
    /// A table for up to `max_entries`, allocated now so learning never
    /// allocates.
    pub fn new(max_entries: usize, aging_secs: u64) -> Fdb {
        Fdb {
            table: table::MacTable::new(max_entries),
            max_entries,
            aging_secs,
            learned_per_port: Vec::new(),
            counters: FdbCounters::default(),
            evpn: None,
            replica: None,
        }
    }

    /// Makes room to count port `port`'s MACs; called when a port is
    /// added, so learning never allocates.
    pub fn reserve_port(&mut self, port: PortId) {
        let need = port as usize + 1;
        if self.learned_per_port.len() < need {
            self.learned_per_port.resize(need, 0);
        }
    }

    /// How many learned entries point at `port`.
    pub fn learned_on(&self, port: PortId) -> u32 {
        self.learned_per_port
            .get(port as usize)
            .copied()
            .unwrap_or(0)
    }

    fn count(&mut self, port: PortId, up: bool) {
        if let Some(n) = self.learned_per_port.get_mut(port as usize) {
            *n = if up {
                n.saturating_add(1)
            } else {
                n.saturating_sub(1)
            };
        }
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    pub fn aging_secs(&self) -> u64 {
        self.aging_secs
    }

    pub fn set_aging_secs(&mut self, secs: u64) {
        self.aging_secs = secs;
        self.replica_aging_changed();
    }

    #[inline]
    pub fn lookup(&self, vlan: u16, mac: MacAddr) -> Option<PortId> {
        self.table.port_of(key(vlan, mac))
    }

    /// Starts loading where (`vlan`, `mac`) would be, for a look-up or a
    /// learn a little later: the pipeline does this for a whole batch first,
    /// so the cache misses of its frames overlap.
    #[inline]
    pub fn prefetch(&self, vlan: u16, mac: MacAddr) {
        self.table.prefetch(key(vlan, mac));
    }

    pub fn get(&self, vlan: u16, mac: MacAddr) -> Option<FdbEntry> {
        self.table.get(key(vlan, mac))
    }

    /// What `learn` would do with these arguments, changing nothing (for
    /// `vsctl trace`). Kept beside `learn`, in the same order of checks.
    pub fn predict_learn(
        &self,
        vlan: u16,
        mac: MacAddr,
        port: PortId,
        port_limit: u32,
    ) -> LearnOutcome {
        if self.is_not_learning(port) {
            return LearnOutcome::NotLearning;
        }
        let at_limit = self.learned_on(port) >= port_limit;
        match self.table.get(key(vlan, mac)) {
            Some(e) if e.port == port => LearnOutcome::Refreshed,
            Some(e) if e.is_static => LearnOutcome::StaticConflict,
            Some(_) if at_limit => LearnOutcome::PortLimit,
            Some(e) => LearnOutcome::Moved { from: e.port },
            None if at_limit => LearnOutcome::PortLimit,
            None if self.table.len() >= self.max_entries => LearnOutcome::Refused,
            None => LearnOutcome::Learned,
        }
    }

    /// Records that `mac` was seen on `port` in `vlan` at `now`. `port_limit`
    /// is how many learned MACs `port` may have (`u32::MAX`: no limit).
    #[inline]
    pub fn learn(
        &mut self,
        vlan: u16,
        mac: MacAddr,
        port: PortId,
        now: u64,
        port_limit: u32,
    ) -> LearnOutcome {
        if self.is_not_learning(port) {
            return LearnOutcome::NotLearning;
        }
        let k = key(vlan, mac);
        let at_limit = self.learned_on(port) >= port_limit;
        if let Some(at) = self.table.find(k) {
            if self.table.port_at(at) == port {
                let before = self.table.refresh(at, now);
                if let Some(r) = self.replica.as_mut() {
                    r.refreshed(vlan, mac, port, before, now);
                }
                return LearnOutcome::Refreshed;
            }
            let mut e = self.table.entry(at);
            if e.is_static {
                self.counters.static_conflicts += 1;
                return LearnOutcome::StaticConflict;
            }
            if at_limit {
                return LearnOutcome::PortLimit;
            }
            let from = e.port;
            let was_evpn = e.evpn;
            e.port = port;
            e.last_seen = now;
            e.evpn = false;
            self.table.set(at, &e);
            self.counters.moves += 1;
            if !was_evpn {
                self.count(from, false);
            }
            self.count(port, true);
            self.note(vlan, mac, Some(port));
            self.share(vlan, mac, port, now);
            return LearnOutcome::Moved { from };
        }
        if at_limit {
            return LearnOutcome::PortLimit;
        }
        if self.table.len() >= self.max_entries {
            self.counters.learn_refused += 1;
            return LearnOutcome::Refused;
        }
        self.table.insert(
            k,
            FdbEntry {
                port,
                last_seen: now,
                is_static: false,
                evpn: false,
            },
        );
        self.count(port, true);
        self.counters.learned += 1;
        self.note(vlan, mac, Some(port));
        self.share(vlan, mac, port, now);
        LearnOutcome::Learned
    }

    /// Pins `mac` to `port`, replacing any learned or static entry. Fails
    /// only when the table is full and the key is new.
    pub fn add_static(&mut self, vlan: u16, mac: MacAddr, port: PortId) -> Result<(), FdbFull> {
        let k = key(vlan, mac);
        if !self.table.contains_key(k) && self.table.len() >= self.max_entries {
            return Err(FdbFull);
        }
        if let Some(old) = self.table.get(k) {
            if !old.is_static && !old.evpn {
                self.count(old.port, false);
            }
        }
        self.table.insert(
            k,
            FdbEntry {
                port,
                last_seen: 0,
                is_static: true,
                evpn: false,
            },
        );
        self.note(vlan, mac, Some(port));
        Ok(())
    }

    pub fn remove(&mut self, vlan: u16, mac: MacAddr) -> Option<FdbEntry> {
        let e = self.table.remove(key(vlan, mac))?;
        if !e.is_static && !e.evpn {
            self.count(e.port, false);
        }
        self.note(vlan, mac, None);
        Some(e)
    }

    /// Forgets every learned entry; static ones, and those EVPN
    /// installed, stay.
    pub fn flush_learned(&mut self) {
        let hook = self.evpn.as_ref();
        self.table.retain(|k, e| {
            let keep = e.is_static || e.evpn;
            if !keep {
                if let Some(h) = hook {
                    let (vlan, mac) = unkey(k);
                    h.note(vlan, mac, None);
                }
            }
            keep
        });
        self.learned_per_port.fill(0);
    }

    /// Forgets every entry, static included, that points at `port` (the port
    /// is going away). Returns the static entries removed, for the caller to
    /// report.
    pub fn flush_port(&mut self, port: PortId) -> usize {
        let mut statics = 0;
        let hook = self.evpn.as_ref();
        self.table.retain(|k, e| {
            let gone = e.port == port;
            if gone && e.is_static {
                statics += 1;
            }
            if gone {
                if let Some(h) = hook {
                    let (vlan, mac) = unkey(k);
                    h.note(vlan, mac, None);
                }
            }
            !gone
        });
        if let Some(n) = self.learned_per_port.get_mut(port as usize) {
            *n = 0;
        }
        statics
    }

    /// Removes learned entries not seen for more than `aging_secs`.
    ///
    /// Timestamps are whole seconds, truncated: a MAC stamped `t` was last
    /// seen somewhere in `[t, t+1)`. Keeping it while `now - t <= aging`
    /// makes it live at least `aging` seconds and at most one more.
    pub fn age(&mut self, now: u64) -> usize {
        let aging = self.aging_secs;
        let before = self.table.len();
        let counts = &mut self.learned_per_port;
        let hook = self.evpn.as_ref();
        self.table.retain(|k, e| {
            let keep = e.is_static || e.evpn || now.saturating_sub(e.last_seen) <= aging;
            if !keep {
                if let Some(n) = counts.get_mut(e.port as usize) {
                    *n = n.saturating_sub(1);
                }
                if let Some(h) = hook {
                    let (vlan, mac) = unkey(k);
                    h.note(vlan, mac, None);
                }
            }
            keep
        });
        let removed = before - self.table.len();
        self.counters.aged_out += removed as u64;
        removed
    }

    /// Entries (learned and static) per VLAN, for VLANs that have any.
    /// Walks the whole table: for replies to the control thread, not for
    /// the per-packet path.
    pub fn entries_per_vlan(&self) -> std::collections::BTreeMap<u16, usize> {
        let mut per_vlan = std::collections::BTreeMap::new();
        for (k, _) in self.table.iter() {
            *per_vlan.entry(unkey(k).0).or_insert(0) += 1;
        }
        per_vlan
    }

    /// Every entry as (vlan, mac, entry), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u16, MacAddr, FdbEntry)> + '_ {
        self.table.iter().map(|(k, e)| {
            let (vlan, mac) = unkey(k);
            (vlan, mac, e)
        })
    }
}

/// The table has no room for another entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("forwarding table is full")]
pub struct FdbFull;

#[cfg(test)]
mod tests {
    use super::*;

    const NO_LIMIT: u32 = u32::MAX;

    fn mac(n: u8) -> MacAddr {
        MacAddr([0x02, 0, 0, 0, 0, n])
    }

    #[test]
    fn learns_and_looks_up_per_vlan() {
        let mut t = Fdb::new(16, 300);
        assert_eq!(t.learn(0, mac(1), 7, 0, NO_LIMIT), LearnOutcome::Learned);
        assert_eq!(t.learn(10, mac(1), 8, 0, NO_LIMIT), LearnOutcome::Learned);
        assert_eq!(t.lookup(0, mac(1)), Some(7));
        assert_eq!(t.lookup(10, mac(1)), Some(8));
        assert_eq!(t.lookup(20, mac(1)), None);
        assert_eq!(t.learn(0, mac(1), 7, 5, NO_LIMIT), LearnOutcome::Refreshed);
        assert_eq!(t.get(0, mac(1)).unwrap().last_seen, 5);
        assert_eq!(t.counters.learned, 2);
    }

    #[test]
    fn moves_are_counted() {
        let mut t = Fdb::new(16, 300);
        t.learn(0, mac(1), 1, 0, NO_LIMIT);
        assert_eq!(
            t.learn(0, mac(1), 2, 1, NO_LIMIT),
            LearnOutcome::Moved { from: 1 }
        );
        assert_eq!(t.lookup(0, mac(1)), Some(2));
        assert_eq!(t.counters.moves, 1);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn aging_with_injected_clock() {
        let mut t = Fdb::new(16, 300);
        t.learn(0, mac(1), 1, 0, NO_LIMIT);
        t.learn(0, mac(2), 1, 100, NO_LIMIT);
        t.add_static(0, mac(3), 2).unwrap();
        // Stamped 0 means seen in [0, 1): alive through second 300.
        assert_eq!(t.age(300), 0);
        assert_eq!(t.age(301), 1);
        assert_eq!(t.lookup(0, mac(1)), None);
        assert_eq!(t.lookup(0, mac(2)), Some(1));
        // Refreshing keeps an entry alive past its first deadline.
        t.learn(0, mac(2), 1, 350, NO_LIMIT);
        assert_eq!(t.age(650), 0);
        assert_eq!(t.age(651), 1);
        // Static entries never age.
        assert_eq!(t.age(u64::MAX), 0);
        assert_eq!(t.lookup(0, mac(3)), Some(2));
        assert_eq!(t.counters.aged_out, 2);
    }

    #[test]
    fn aging_time_can_change() {
        let mut t = Fdb::new(16, 300);
        t.learn(0, mac(1), 1, 0, NO_LIMIT);
        t.set_aging_secs(10);
        assert_eq!(t.age(10), 0);
        assert_eq!(t.age(11), 1);
    }

    #[test]
    fn full_table_refuses_and_keeps_memory_bounded() {
        let mut t = Fdb::new(4, 300);
        for n in 0..4 {
            assert_eq!(t.learn(0, mac(n), 1, 0, NO_LIMIT), LearnOutcome::Learned);
        }
        let cap = t.table.capacity();
        for n in 4..200 {
            assert_eq!(t.learn(0, mac(n), 1, 0, NO_LIMIT), LearnOutcome::Refused);
        }
        assert_eq!(t.len(), 4);
        assert_eq!(t.table.capacity(), cap);
        assert_eq!(t.counters.learn_refused, 196);
        // Known MACs still refresh and move when full.
        assert_eq!(
            t.learn(0, mac(0), 2, 1, NO_LIMIT),
            LearnOutcome::Moved { from: 1 }
        );
        assert_eq!(t.add_static(0, mac(99), 1), Err(FdbFull));
        assert!(t.add_static(0, mac(1), 3).is_ok());
    }

    #[test]
    fn static_entries_win_over_learning() {
        let mut t = Fdb::new(16, 300);
        t.learn(0, mac(1), 1, 0, NO_LIMIT);
        t.add_static(0, mac(1), 2).unwrap();
        assert_eq!(
            t.learn(0, mac(1), 1, 5, NO_LIMIT),
            LearnOutcome::StaticConflict
        );
        assert_eq!(t.lookup(0, mac(1)), Some(2));
        assert_eq!(t.counters.static_conflicts, 1);
        assert!(t.get(0, mac(1)).unwrap().is_static);
        t.flush_learned();
        assert_eq!(t.lookup(0, mac(1)), Some(2));
        assert!(t.remove(0, mac(1)).is_some());
        assert_eq!(t.lookup(0, mac(1)), None);
    }

    #[test]
    fn flush_port_removes_everything_on_it() {
        let mut t = Fdb::new(16, 300);
        t.learn(0, mac(1), 1, 0, NO_LIMIT);
        t.learn(0, mac(2), 2, 0, NO_LIMIT);
        t.add_static(5, mac(3), 1).unwrap();
        assert_eq!(t.flush_port(1), 1);
        assert_eq!(t.len(), 1);
        assert_eq!(t.lookup(0, mac(2)), Some(2));
    }

    #[test]
    fn keys_round_trip() {
        let m: MacAddr = "fe:ff:ff:ff:ff:ff".parse().unwrap();
        let entries: Vec<_> = {
            let mut t = Fdb::new(4, 1);
            t.learn(4095, m, 1, 0, NO_LIMIT);
            t.iter().collect()
        };
        assert_eq!(entries[0].0, 4095);
        assert_eq!(entries[0].1, m);
    }

    #[test]
    fn per_port_limits_and_counts() {
        let mut t = Fdb::new(64, 10);
        t.reserve_port(3);
        for n in 0..2 {
            assert_eq!(t.learn(0, mac(n), 1, 0, 2), LearnOutcome::Learned);
        }
        assert_eq!(t.learn(0, mac(9), 1, 0, 2), LearnOutcome::PortLimit);
        assert_eq!(t.learn(0, mac(0), 1, 1, 2), LearnOutcome::Refreshed);
        assert_eq!(t.learned_on(1), 2);
        // A MAC may not move onto a port at its limit.
        t.learn(0, mac(5), 2, 0, 2);
        assert_eq!(t.learn(0, mac(5), 1, 0, 2), LearnOutcome::PortLimit);
        // Moving away frees a slot on the old port.
        assert_eq!(t.learn(0, mac(0), 2, 1, 2), LearnOutcome::Moved { from: 1 });
        assert_eq!((t.learned_on(1), t.learned_on(2)), (1, 2));
        // Removal, aging and static replacement all give slots back.
        t.remove(0, mac(1));
        assert_eq!(t.learned_on(1), 0);
        t.add_static(0, mac(5), 3).unwrap();
        assert_eq!(t.learned_on(2), 1);
        assert_eq!(t.age(100), 1);
        assert_eq!(t.learned_on(2), 0);
        t.learn(0, mac(7), 3, 100, 1);
        t.flush_port(3);
        assert_eq!(t.learned_on(3), 0);
        t.learn(0, mac(7), 3, 100, 1);
        t.flush_learned();
        assert_eq!(t.learned_on(3), 0);
    }

    #[test]
    fn entries_counted_per_vlan() {
        let mut t = Fdb::new(64, 10);
        t.reserve_port(2);
        assert!(t.entries_per_vlan().is_empty());
        t.learn(0, mac(1), 1, 0, NO_LIMIT);
        t.learn(10, mac(1), 1, 0, NO_LIMIT);
        t.learn(10, mac(2), 2, 0, NO_LIMIT);
        t.add_static(4094, mac(3), 2).unwrap();
        let per_vlan: Vec<(u16, usize)> = t.entries_per_vlan().into_iter().collect();
        assert_eq!(per_vlan, [(0, 1), (10, 2), (4094, 1)]);
        assert_eq!(per_vlan.iter().map(|(_, n)| n).sum::<usize>(), t.len());
    }
}
