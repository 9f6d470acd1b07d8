//! The VTEP's neighbor table: IPv4 next hop -> MAC, learned by ARP.
//!
//! Entries exist only for next hops the VTEP needs (its remotes, or the
//! gateway toward them), so the table stays as small as the remote list
//! whatever the underlay sends. A resolved entry is refreshed by a new
//! request after `REFRESH` and forgotten after `REACHABLE` without an
//! answer; an unresolved one is asked for again every `RETRY`. Time is an
//! argument: tests drive it.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::wire::MacAddr;

/// How long an answer stays valid.
pub const REACHABLE: Duration = Duration::from_secs(300);
/// Age at which a resolved entry is asked for again, ahead of expiry.
pub const REFRESH: Duration = Duration::from_secs(240);
/// Minimum spacing between two requests for one address.
pub const RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbor {
    pub mac: Option<MacAddr>,
    /// When the MAC was last confirmed.
    pub confirmed: Duration,
    pub last_request: Option<Duration>,
}

/// What `vsctl vxlan show` says of a neighbor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighborState {
    Incomplete,
    Reachable,
    /// Resolved, but a refresh request is out.
    Refreshing,
}

impl NeighborState {
    pub fn as_str(self) -> &'static str {
        match self {
            NeighborState::Incomplete => "incomplete",
            NeighborState::Reachable => "reachable",
            NeighborState::Refreshing => "refreshing",
        }
    }
}

#[derive(Debug, Default)]
pub struct NeighborTable {
    entries: HashMap<Ipv4Addr, Neighbor>,
}

impl NeighborTable {
    /// Starts tracking `ip` (a next hop the VTEP will need).
    pub fn want(&mut self, ip: Ipv4Addr) {
        self.entries.entry(ip).or_insert(Neighbor {
            mac: None,
            confirmed: Duration::ZERO,
            last_request: None,
        });
    }

    /// Records an ARP answer (or a request from `ip`). Only tracked
    /// addresses are recorded; returns whether it was one.
    pub fn learn(&mut self, ip: Ipv4Addr, mac: MacAddr, now: Duration) -> bool {
        match self.entries.get_mut(&ip) {
            Some(n) if mac.is_learnable() => {
                n.mac = Some(mac);
                n.confirmed = now;
                n.last_request = None;
                true
            }
            _ => false,
        }
    }

    /// The MAC of `ip` if it is known and not expired.
    #[inline]
    pub fn lookup(&self, ip: Ipv4Addr, now: Duration) -> Option<MacAddr> {
        let n = self.entries.get(&ip)?;
        n.mac
            .filter(|_| now.saturating_sub(n.confirmed) < REACHABLE)
    }

    /// Addresses to send a request for now; marks them as asked.
    pub fn due_requests(&mut self, now: Duration, out: &mut Vec<Ipv4Addr>) {
        out.clear();
        for (ip, n) in self.entries.iter_mut() {
            let age = now.saturating_sub(n.confirmed);
            if n.mac.is_some() && age >= REACHABLE {
                n.mac = None;
            }
            let needs = n.mac.is_none() || age >= REFRESH;
            let may = n
                .last_request
                .is_none_or(|t| now.saturating_sub(t) >= RETRY);
            if needs && may {
                n.last_request = Some(now);
                out.push(*ip);
            }
        }
        out.sort();
    }

    pub fn state(&self, ip: Ipv4Addr, now: Duration) -> Option<(NeighborState, Option<MacAddr>)> {
        let n = self.entries.get(&ip)?;
        let mac = self.lookup(ip, now);
        let state = match (mac, n.last_request) {
            (None, _) => NeighborState::Incomplete,
            (Some(_), Some(_)) => NeighborState::Refreshing,
            (Some(_), None) => NeighborState::Reachable,
        };
        Some((state, mac))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 9);
    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 9]);

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn resolve_refresh_expire() {
        let mut t = NeighborTable::default();
        let mut due = Vec::new();
        assert!(
            !t.learn(IP, MAC, secs(0)),
            "untracked addresses are ignored"
        );
        t.want(IP);
        t.due_requests(secs(0), &mut due);
        assert_eq!(due, [IP]);
        // Not again within RETRY.
        t.due_requests(Duration::from_millis(500), &mut due);
        assert!(due.is_empty());
        t.due_requests(secs(1), &mut due);
        assert_eq!(due, [IP]);
        assert_eq!(t.state(IP, secs(1)).unwrap().0, NeighborState::Incomplete);

        assert!(t.learn(IP, MAC, secs(2)));
        assert_eq!(t.lookup(IP, secs(2)), Some(MAC));
        assert_eq!(t.state(IP, secs(3)).unwrap().0, NeighborState::Reachable);
        t.due_requests(secs(200), &mut due);
        assert!(due.is_empty());
        // Refresh ahead of expiry, still usable meanwhile.
        t.due_requests(secs(242), &mut due);
        assert_eq!(due, [IP]);
        assert_eq!(t.state(IP, secs(243)).unwrap().0, NeighborState::Refreshing);
        assert_eq!(t.lookup(IP, secs(243)), Some(MAC));
        // No answer: gone at REACHABLE.
        assert_eq!(t.lookup(IP, secs(302)), None);
        t.due_requests(secs(302), &mut due);
        assert_eq!(due, [IP]);
        assert_eq!(t.state(IP, secs(302)).unwrap().0, NeighborState::Incomplete);
        // An answer brings it back.
        t.learn(IP, MAC, secs(303));
        assert_eq!(t.lookup(IP, secs(303)), Some(MAC));
    }

    #[test]
    fn group_addresses_are_not_learned() {
        let mut t = NeighborTable::default();
        t.want(IP);
        assert!(!t.learn(IP, MacAddr::BROADCAST, secs(0)));
        assert_eq!(t.lookup(IP, secs(0)), None);
    }
}
