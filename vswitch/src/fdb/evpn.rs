//! What the EVPN control plane needs of a bridge's table: a journal of
//! local MACs coming and going (to advertise them), entries for MACs
//! behind remote VTEPs (installed from BGP), and a tunnel port that may not
//! teach the table.
//!
//! The journal is a bounded lock-free queue the datapath pushes to and the
//! EVPN session drains. Only changes are journaled (a new MAC, a move, an
//! entry removed), never a refresh, so the per-packet path is untouched.
//! When the queue is full the journal says it overflowed and the session
//! reads the whole table instead: an event may be lost, never the state.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use super::{key, Fdb, FdbEntry, FdbFull, PortId};
use crate::wire::MacAddr;

/// Events the journal holds before it overflows.
pub const JOURNAL_CAPACITY: usize = 8192;

/// A MAC of the bridge changed where it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacEvent {
    pub vlan: u16,
    pub mac: MacAddr,
    /// True: now behind a local port. False: gone, or now behind the tunnel.
    pub local: bool,
    /// The IPv4 address an ARP packet from the MAC claimed (local only).
    pub ip: Option<std::net::Ipv4Addr>,
}

/// The datapath's side pushes, the EVPN session drains.
pub struct MacJournal {
    queue: ArrayQueue<MacEvent>,
    overflowed: AtomicBool,
}

impl Default for MacJournal {
    fn default() -> Self {
        MacJournal::with_capacity(JOURNAL_CAPACITY)
    }
}

impl MacJournal {
    pub fn with_capacity(capacity: usize) -> MacJournal {
        MacJournal {
            queue: ArrayQueue::new(capacity.max(1)),
            overflowed: AtomicBool::new(false),
        }
    }

    fn push(&self, event: MacEvent) {
        if self.queue.push(event).is_err() {
            self.overflowed.store(true, Ordering::Release);
        }
    }

    /// Takes every queued event. Returns false when events were lost since
    /// the last call: the caller must then read the whole table.
    pub fn drain(&self, out: &mut Vec<MacEvent>) -> bool {
        let lost = self.overflowed.swap(false, Ordering::AcqRel);
        while let Some(e) = self.queue.pop() {
            out.push(e);
        }
        !lost
    }
}

/// How a bridge's table serves EVPN.
pub(super) struct Hook {
    journal: Arc<MacJournal>,
    /// The VXLAN port: MACs behind it are not local.
    tunnel: PortId,
    /// Whether traffic from the tunnel teaches the table.
    tunnel_learning: bool,
}

impl Hook {
    pub(super) fn note(&self, vlan: u16, mac: MacAddr, port: Option<PortId>) {
        self.journal.push(MacEvent {
            vlan,
            mac,
            local: port.is_some_and(|p| p != self.tunnel),
            ip: None,
        });
    }
}

impl Fdb {
    /// Starts journaling for EVPN, with `tunnel` as the VXLAN port.
    pub fn attach_evpn(&mut self, journal: Arc<MacJournal>, tunnel: PortId, tunnel_learning: bool) {
        self.evpn = Some(Hook {
            journal,
            tunnel,
            tunnel_learning,
        });
    }

    /// Stops journaling and removes every entry EVPN installed.
    pub fn detach_evpn(&mut self) {
        self.evpn = None;
        self.table.retain(|_, e| !e.evpn);
    }

    /// The tunnel port EVPN drives, and whether it teaches the table.
    pub fn evpn_tunnel(&self) -> Option<(PortId, bool)> {
        self.evpn.as_ref().map(|h| (h.tunnel, h.tunnel_learning))
    }

    /// The attached journal, if any.
    pub fn evpn_journal(&self) -> Option<&Arc<MacJournal>> {
        self.evpn.as_ref().map(|h| &h.journal)
    }

    #[inline]
    pub(super) fn is_not_learning(&self, port: PortId) -> bool {
        self.evpn
            .as_ref()
            .is_some_and(|h| !h.tunnel_learning && h.tunnel == port)
    }

    /// ARP snooping for MAC+IP routes: a local port's ARP packet says its
    /// sender `mac` uses `ip`. Called for ARP frames only, while EVPN is
    /// attached.
    pub fn note_arp(&self, vlan: u16, mac: MacAddr, ip: std::net::Ipv4Addr, port: PortId) {
        if let Some(h) = &self.evpn {
            if port != h.tunnel && !ip.is_unspecified() {
                h.journal.push(MacEvent {
                    vlan,
                    mac,
                    local: true,
                    ip: Some(ip),
                });
            }
        }
    }

    /// Whether ARP snooping is wanted (EVPN attached).
    #[inline]
    pub fn snoops_arp(&self) -> bool {
        self.evpn.is_some()
    }

    #[inline]
    pub(super) fn note(&self, vlan: u16, mac: MacAddr, port: Option<PortId>) {
        if let Some(h) = &self.evpn {
            h.note(vlan, mac, port);
        }
    }

    /// Points `mac` at the tunnel port `port` because BGP says it lives
    /// behind a remote VTEP. A learned entry is replaced (the MAC moved
    /// away: the control plane decided); a static entry wins. Not journaled:
    /// the control plane made this change itself.
    pub fn install_evpn(&mut self, vlan: u16, mac: MacAddr, port: PortId) -> Result<bool, FdbFull> {
        let k = key(vlan, mac);
        match self.table.get(k) {
            Some(e) if e.is_static => return Ok(false),
            Some(e) if !e.evpn => self.count(e.port, false),
            Some(_) => {}
            None if self.table.len() >= self.max_entries => {
                self.counters.learn_refused += 1;
                return Err(FdbFull);
            }
            None => {}
        }
        self.table.insert(
            k,
            FdbEntry {
                port,
                last_seen: 0,
                is_static: false,
                evpn: true,
            },
        );
        Ok(true)
    }

    /// Removes `mac`'s EVPN entry; an entry learned or pinned since stays.
    pub fn remove_evpn(&mut self, vlan: u16, mac: MacAddr) -> bool {
        let k = key(vlan, mac);
        if self.table.get(k).is_some_and(|e| e.evpn) {
            self.table.remove(k);
            return true;
        }
        false
    }

    /// Every MAC behind a local port (learned or static), for a full
    /// resynchronisation of the journal's reader.
    pub fn local_macs(&self) -> Vec<(u16, MacAddr)> {
        let tunnel = self.evpn.as_ref().map(|h| h.tunnel);
        self.iter()
            .filter(|(_, _, e)| !e.evpn && Some(e.port) != tunnel)
            .map(|(vlan, mac, _)| (vlan, mac))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fdb::LearnOutcome;

    const TUNNEL: PortId = 9;

    fn mac(n: u8) -> MacAddr {
        MacAddr([0x02, 0, 0, 0, 0, n])
    }

    fn attached(learning: bool) -> (Fdb, Arc<MacJournal>) {
        let mut t = Fdb::new(4, 300);
        t.reserve_port(TUNNEL);
        let j = Arc::new(MacJournal::with_capacity(4));
        t.attach_evpn(j.clone(), TUNNEL, learning);
        (t, j)
    }

    fn drained(j: &MacJournal) -> (Vec<MacEvent>, bool) {
        let mut v = Vec::new();
        let complete = j.drain(&mut v);
        (v, complete)
    }

    #[test]
    fn journals_changes_not_refreshes() {
        let (mut t, j) = attached(true);
        t.learn(10, mac(1), 1, 0, u32::MAX);
        t.learn(10, mac(1), 1, 1, u32::MAX);
        t.learn(10, mac(1), TUNNEL, 2, u32::MAX);
        t.remove(10, mac(1));
        let (events, complete) = drained(&j);
        assert!(complete);
        let local: Vec<bool> = events.iter().map(|e| e.local).collect();
        assert_eq!(local, [true, false, false]);
    }

    #[test]
    fn arp_from_local_ports_is_journaled_with_its_address() {
        let (t, j) = attached(false);
        let ip = std::net::Ipv4Addr::new(10, 0, 0, 5);
        t.note_arp(10, mac(1), ip, 1);
        t.note_arp(10, mac(2), ip, TUNNEL);
        t.note_arp(10, mac(3), std::net::Ipv4Addr::UNSPECIFIED, 1);
        let (events, _) = drained(&j);
        assert_eq!(
            events,
            [MacEvent {
                vlan: 10,
                mac: mac(1),
                local: true,
                ip: Some(ip)
            }]
        );
        let plain = Fdb::new(4, 300);
        assert!(!plain.snoops_arp());
    }

    #[test]
    fn overflow_is_reported_once() {
        let (mut t, j) = attached(true);
        for n in 0..4 {
            t.learn(10, mac(n), 1, 0, u32::MAX);
        }
        t.flush_learned();
        let (events, complete) = drained(&j);
        assert_eq!(events.len(), 4);
        assert!(!complete, "four flush events did not fit");
        assert!(drained(&j).1);
    }

    #[test]
    fn tunnel_without_learning_teaches_nothing() {
        let (mut t, _j) = attached(false);
        assert_eq!(
            t.learn(10, mac(1), TUNNEL, 0, u32::MAX),
            LearnOutcome::NotLearning
        );
        assert_eq!(
            t.predict_learn(10, mac(1), TUNNEL, u32::MAX),
            LearnOutcome::NotLearning
        );
        assert!(t.is_empty());
    }

    #[test]
    fn evpn_entries_move_on_local_learning_and_never_age() {
        let (mut t, j) = attached(false);
        assert_eq!(t.install_evpn(10, mac(1), TUNNEL), Ok(true));
        assert_eq!(t.age(10_000), 0);
        assert_eq!(t.learned_on(TUNNEL), 0);
        assert_eq!(
            t.learn(10, mac(1), 3, 10_000, u32::MAX),
            LearnOutcome::Moved { from: TUNNEL }
        );
        assert_eq!(t.learned_on(3), 1);
        let (events, _) = drained(&j);
        assert_eq!(
            events,
            [MacEvent {
                vlan: 10,
                mac: mac(1),
                local: true,
                ip: None
            }]
        );
        // A withdrawal that comes after the move leaves the local entry.
        assert!(!t.remove_evpn(10, mac(1)));
        assert_eq!(t.lookup(10, mac(1)), Some(3));
        // BGP says it moved away again: the learned entry is replaced.
        assert_eq!(t.install_evpn(10, mac(1), TUNNEL), Ok(true));
        assert_eq!(t.learned_on(3), 0);
        assert_eq!(t.local_macs(), []);
    }

    #[test]
    fn static_entries_win_and_the_table_stays_bounded() {
        let (mut t, _j) = attached(false);
        t.add_static(10, mac(1), 2).unwrap();
        assert_eq!(t.install_evpn(10, mac(1), TUNNEL), Ok(false));
        assert_eq!(t.lookup(10, mac(1)), Some(2));
        for n in 2..5 {
            t.install_evpn(10, mac(n), TUNNEL).unwrap();
        }
        assert_eq!(t.install_evpn(10, mac(9), TUNNEL), Err(FdbFull));
        t.flush_learned();
        assert_eq!(t.len(), 4, "flush keeps static and EVPN entries");
        t.detach_evpn();
        assert_eq!(t.len(), 1);
    }
}
