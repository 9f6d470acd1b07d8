//! Keeping in step the tables of a bridge that runs on several workers
//! (`bridge add NAME workers=all`). Each worker runs a replica of the
//! bridge over its own share of the ports' receive queues, learns from the
//! frames it receives, and tells the other replicas what it learned.
//!
//! A replica shares a MAC when it learns it or sees it move and, while the
//! MAC keeps sending, once per `period` (a quarter of the aging time, at
//! least a second), so that the others do not age out an entry that is
//! alive elsewhere. The others apply a shared MAC without sharing it again,
//! without the per-port MAC limit (the replica that learned it enforced
//! it) and without counting it as learned. Applying is idempotent and
//! order-tolerant: a stamp only moves forward, and of two sightings on
//! different ports the later one wins (the higher port on a tie, so every
//! replica picks the same).
//!
//! The outbox is bounded: beyond `OUTBOX_CAPACITY` MACs in one pass (a
//! flood of new sources), the rest are not shared and `dropped` counts
//! them (`bridge list` shows it as `macs_unshared`); the other replicas
//! flood frames to those MACs until they learn them from their own
//! traffic or from a later share.

use super::{key, Fdb, PortId};
use crate::wire::MacAddr;

/// MACs one replica queues for the others within one pass of its loop.
pub const OUTBOX_CAPACITY: usize = 4096;

/// A MAC one replica saw, for the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedMac {
    pub vlan: u16,
    pub mac: MacAddr,
    pub port: PortId,
    /// The second it was seen.
    pub seen: u64,
}

pub(super) struct Outbox {
    pending: Vec<SharedMac>,
    /// Seconds between two shares of a MAC that keeps sending.
    period: u64,
    dropped: u64,
}

/// A quarter of the aging time, at least a second.
fn period_for(aging_secs: u64) -> u64 {
    (aging_secs / 4).max(1)
}

impl Outbox {
    fn push(&mut self, m: SharedMac) {
        if self.pending.len() < OUTBOX_CAPACITY {
            self.pending.push(m);
        } else {
            self.dropped += 1;
        }
    }

    /// A known MAC was seen again: shared when its stamp entered a new
    /// period.
    #[inline]
    pub(super) fn refreshed(
        &mut self,
        vlan: u16,
        mac: MacAddr,
        port: PortId,
        before: u64,
        now: u64,
    ) {
        if before != now && before / self.period != now / self.period {
            self.push(SharedMac {
                vlan,
                mac,
                port,
                seen: now,
            });
        }
    }
}

impl Fdb {
    /// Starts (or stops) queuing what this table learns for other replicas.
    pub fn share_learning(&mut self, on: bool) {
        self.replica = on.then(|| {
            Box::new(Outbox {
                pending: Vec::new(),
                period: period_for(self.aging_secs),
                dropped: 0,
            })
        });
    }

    /// Whether this table shares what it learns.
    pub fn shares_learning(&self) -> bool {
        self.replica.is_some()
    }

    pub(super) fn replica_aging_changed(&mut self) {
        let period = period_for(self.aging_secs);
        if let Some(r) = self.replica.as_mut() {
            r.period = period;
        }
    }

    #[inline]
    pub(super) fn share(&mut self, vlan: u16, mac: MacAddr, port: PortId, now: u64) {
        if let Some(r) = self.replica.as_mut() {
            r.push(SharedMac {
                vlan,
                mac,
                port,
                seen: now,
            });
        }
    }

    /// Whether MACs wait to be shared.
    #[inline]
    pub fn has_shared(&self) -> bool {
        self.replica.as_ref().is_some_and(|r| !r.pending.is_empty())
    }

    /// Takes the MACs waiting to be shared.
    pub fn take_shared(&mut self) -> Vec<SharedMac> {
        self.replica
            .as_mut()
            .map(|r| std::mem::take(&mut r.pending))
            .unwrap_or_default()
    }

    /// MACs not shared: the outbox was full, or a batch found another
    /// worker's inbox full (`count_unshared`).
    pub fn shared_dropped(&self) -> u64 {
        self.replica.as_ref().map_or(0, |r| r.dropped)
    }

    /// Counts `n` MACs of a batch that did not reach another worker.
    pub fn count_unshared(&mut self, n: u64) {
        if let Some(r) = self.replica.as_mut() {
            r.dropped += n;
        }
    }

    /// Applies a MAC another replica saw. Returns whether the table
    /// changed. Static and EVPN entries win; a full table takes no new MAC.
    pub fn apply_shared(&mut self, m: &SharedMac) -> bool {
        let k = key(m.vlan, m.mac);
        if let Some(at) = self.table.find(k) {
            let mut e = self.table.entry(at);
            if e.is_static || e.evpn {
                return false;
            }
            if e.port == m.port {
                if m.seen > e.last_seen {
                    let _ = self.table.refresh(at, m.seen);
                    return true;
                }
                return false;
            }
            let later = m.seen > e.last_seen || (m.seen == e.last_seen && m.port > e.port);
            if !later {
                return false;
            }
            let from = e.port;
            e.port = m.port;
            e.last_seen = m.seen;
            self.table.set(at, &e);
            self.count(from, false);
            self.count(m.port, true);
            return true;
        }
        if self.table.len() >= self.max_entries {
            return false;
        }
        self.table.insert(
            k,
            super::FdbEntry {
                port: m.port,
                last_seen: m.seen,
                is_static: false,
                evpn: false,
            },
        );
        self.count(m.port, true);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fdb::LearnOutcome;

    const NO_LIMIT: u32 = u32::MAX;

    fn mac(n: u8) -> MacAddr {
        MacAddr([0x02, 0, 0, 0, 0, n])
    }

    fn replica() -> Fdb {
        let mut t = Fdb::new(64, 300);
        t.reserve_port(8);
        t.share_learning(true);
        t
    }

    #[test]
    fn learns_and_moves_are_shared_once_and_apply_elsewhere() {
        let (mut a, mut b) = (replica(), replica());
        assert_eq!(a.learn(10, mac(1), 3, 5, NO_LIMIT), LearnOutcome::Learned);
        assert_eq!(a.learn(10, mac(1), 3, 5, NO_LIMIT), LearnOutcome::Refreshed);
        let shared = a.take_shared();
        assert_eq!(shared.len(), 1);
        assert!(!a.has_shared());
        for m in &shared {
            assert!(b.apply_shared(m));
        }
        assert_eq!(b.lookup(10, mac(1)), Some(3));
        assert_eq!(b.learned_on(3), 1);
        // Applying is not learning: nothing to share back, nothing counted.
        assert!(!b.has_shared());
        assert_eq!(b.counters.learned, 0);

        assert!(matches!(
            a.learn(10, mac(1), 4, 6, NO_LIMIT),
            LearnOutcome::Moved { from: 3 }
        ));
        for m in &a.take_shared() {
            assert!(b.apply_shared(m));
        }
        assert_eq!(b.lookup(10, mac(1)), Some(4));
        assert_eq!((b.learned_on(3), b.learned_on(4)), (0, 1));
        // The same news again changes nothing.
        let again = SharedMac {
            vlan: 10,
            mac: mac(1),
            port: 4,
            seen: 6,
        };
        assert!(!b.apply_shared(&again));
    }

    #[test]
    fn a_mac_that_keeps_sending_is_shared_once_a_period() {
        // aging 300 s: a share every 75 s.
        let mut a = replica();
        a.learn(0, mac(1), 1, 0, NO_LIMIT);
        a.take_shared();
        let mut shares = Vec::new();
        for now in 1..=300 {
            a.learn(0, mac(1), 1, now, NO_LIMIT);
            shares.extend(a.take_shared().into_iter().map(|m| m.seen));
        }
        assert_eq!(shares, vec![75, 150, 225, 300]);

        // So another replica keeps the entry through its own aging.
        let mut b = replica();
        b.apply_shared(&SharedMac {
            vlan: 0,
            mac: mac(1),
            port: 1,
            seen: 0,
        });
        for seen in &shares {
            b.apply_shared(&SharedMac {
                vlan: 0,
                mac: mac(1),
                port: 1,
                seen: *seen,
            });
            // Alive up to the aging time after the last share: without the
            // shares, the stamp 0 would have gone at 301.
            b.age(seen + 300);
            assert_eq!(b.lookup(0, mac(1)), Some(1), "share at {seen}");
        }
        // When it stops, the others age it out as they would their own.
        b.age(300 + 301);
        assert_eq!(b.lookup(0, mac(1)), None);
    }

    #[test]
    fn the_later_sighting_wins_and_ties_agree() {
        let mut b = replica();
        let at = |port, seen| SharedMac {
            vlan: 0,
            mac: mac(1),
            port,
            seen,
        };
        b.learn(0, mac(1), 2, 10, NO_LIMIT);
        // Older news of another port does not undo a newer local sighting.
        assert!(!b.apply_shared(&at(5, 9)));
        assert_eq!(b.lookup(0, mac(1)), Some(2));
        // A tie goes to the higher port, on every replica.
        assert!(b.apply_shared(&at(5, 10)));
        assert!(!b.apply_shared(&at(2, 10)));
        assert_eq!(b.lookup(0, mac(1)), Some(5));
    }

    #[test]
    fn static_entries_and_a_full_table_win() {
        let mut b = Fdb::new(1, 300);
        b.reserve_port(4);
        b.add_static(0, mac(1), 1).unwrap();
        let m = SharedMac {
            vlan: 0,
            mac: mac(1),
            port: 2,
            seen: 50,
        };
        assert!(!b.apply_shared(&m));
        assert_eq!(b.lookup(0, mac(1)), Some(1));
        let other = SharedMac { mac: mac(2), ..m };
        assert!(!b.apply_shared(&other));
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn a_full_outbox_counts_what_it_drops_and_only_shares_when_on() {
        let mut plain = Fdb::new(16, 300);
        plain.learn(0, mac(1), 1, 0, NO_LIMIT);
        assert!(!plain.has_shared());
        assert!(plain.take_shared().is_empty());

        let mut a = Fdb::new(OUTBOX_CAPACITY + 10, 300);
        a.reserve_port(1);
        a.share_learning(true);
        for i in 0..OUTBOX_CAPACITY as u64 + 10 {
            let m = MacAddr::from_u64(0x0200_0000_0000 | i);
            a.learn(0, m, 1, 0, NO_LIMIT);
        }
        assert_eq!(a.take_shared().len(), OUTBOX_CAPACITY);
        assert_eq!(a.shared_dropped(), 10);
    }
}
