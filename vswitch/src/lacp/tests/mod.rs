//! Scenario tests: two (or more) `Lacp` machines wired back to back by a
//! simulated clock and simulated links; no sockets, no sleeps.

mod failures;
mod negotiation;

use std::collections::VecDeque;
use std::time::Duration;

use super::*;
use crate::wire::lacp::{MarkerKind, MarkerPdu, PortState, PDU_LEN};

pub(super) const TICK: Duration = Duration::from_millis(100);

pub(super) fn mac(n: u8) -> MacAddr {
    MacAddr([2, 0, 0, 0, 0, n])
}

pub(super) fn config(system: u8, rate: Rate) -> Config {
    Config {
        system_priority: 65535,
        system: mac(system),
        key: 1,
        port_priority: 255,
        rate,
        fallback: false,
        primary: None,
    }
}

/// A cable between member `am` of system `a` and member `bm` of system `b`,
/// each direction can be cut on its own (a partner that stops talking).
#[derive(Debug, Clone, Copy)]
pub(super) struct Cable {
    pub a: (usize, usize),
    pub b: (usize, usize),
    pub up: bool,
    /// Frames from `a` to `b` get through.
    pub a_to_b: bool,
    pub b_to_a: bool,
}

/// Several systems, cables between their members, and a clock.
pub(super) struct World {
    pub systems: Vec<Lacp>,
    pub cables: Vec<Cable>,
    pub now: Duration,
    /// PDUs delivered per (system, member), both kinds.
    pub delivered: Vec<Vec<u64>>,
    /// Members whose collecting/distributing changed, per system, since
    /// the test last cleared it.
    pub changed: Vec<MemberSet>,
    /// When each (system, member) last received a PDU.
    pub last_rx: Vec<Vec<Duration>>,
}

impl World {
    pub fn new(systems: Vec<Lacp>) -> World {
        let delivered = systems.iter().map(|s| vec![0; s.members().len()]).collect();
        World {
            last_rx: systems
                .iter()
                .map(|s| vec![Duration::ZERO; s.members().len()])
                .collect(),
            changed: vec![MemberSet::default(); systems.len()],
            systems,
            cables: Vec::new(),
            now: Duration::ZERO,
            delivered,
        }
    }

    /// Two systems with `n` cables between member i and member i.
    pub fn pair(a: Config, b: Config, n: usize) -> World {
        let mut w = World::new(vec![Lacp::new(a, n), Lacp::new(b, n)]);
        for i in 0..n {
            w.connect((0, i), (1, i));
        }
        w
    }

    /// Plugs a cable in: both ends' links come up.
    pub fn connect(&mut self, a: (usize, usize), b: (usize, usize)) {
        self.cables.push(Cable {
            a,
            b,
            up: true,
            a_to_b: true,
            b_to_a: true,
        });
        for end in [a, b] {
            let acts = self.systems[end.0].link_changed(end.1, true, self.now);
            self.deliver(end.0, acts);
        }
    }

    /// Takes cable `i` down or up: both ends see it.
    pub fn set_cable(&mut self, i: usize, up: bool) {
        self.cables[i].up = up;
        let Cable { a, b, .. } = self.cables[i];
        for end in [a, b] {
            let acts = self.systems[end.0].link_changed(end.1, up, self.now);
            self.deliver(end.0, acts);
        }
    }

    /// Unplugs cable `i` for good (links stay up on both ends: a partner
    /// replaced behind a media converter, say).
    pub fn remove_cable(&mut self, i: usize) {
        self.cables.remove(i);
    }

    fn peer_of(&self, end: (usize, usize)) -> Option<(usize, usize)> {
        self.cables.iter().find_map(|c| {
            if !c.up {
                None
            } else if c.a == end && c.a_to_b {
                Some(c.b)
            } else if c.b == end && c.b_to_a {
                Some(c.a)
            } else {
                None
            }
        })
    }

    /// Sends what `actions` asks of system `s`, and what that triggers.
    pub fn deliver(&mut self, s: usize, actions: Actions) {
        let mut queue = VecDeque::from([(s, actions)]);
        while let Some((s, acts)) = queue.pop_front() {
            self.changed[s].0 |= acts.changed.0;
            let mut out: Vec<((usize, usize), Pdu)> = Vec::new();
            for m in acts.send.iter() {
                let pdu = self.systems[s].lacpdu(m).expect("member exists");
                out.push(((s, m), Pdu::Lacp(pdu)));
            }
            assert!(acts.marker_response.is_none(), "unexpected marker response");
            for (from, pdu) in out {
                let Some(to) = self.peer_of(from) else {
                    continue;
                };
                let mut bytes = [0u8; PDU_LEN];
                pdu.emit(&mut bytes);
                self.delivered[to.0][to.1] += 1;
                self.last_rx[to.0][to.1] = self.now;
                let next = self.systems[to.0].handle_pdu(to.1, &bytes, self.now);
                queue.push_back((to.0, next));
            }
        }
    }

    /// Lets `d` pass in ticks of 100 ms.
    pub fn run(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now += TICK;
            for s in 0..self.systems.len() {
                let acts = self.systems[s].handle_timer(self.now);
                self.deliver(s, acts);
            }
        }
    }

    pub fn secs(&mut self, s: f64) {
        self.run(Duration::from_secs_f64(s));
    }

    pub fn distributing(&self, s: usize, m: usize) -> bool {
        self.systems[s].distributing(m)
    }

    pub fn collecting(&self, s: usize, m: usize) -> bool {
        self.systems[s].collecting(m)
    }

    pub fn member(&self, s: usize, m: usize) -> &Member {
        &self.systems[s].members()[m]
    }
}

/// Everything of `lacp` but its counters, to check that nothing changed.
pub(super) fn state_of(lacp: &Lacp) -> String {
    let mut copy = lacp.clone();
    for m in &mut copy.members {
        m.counters = MemberCounters::default();
    }
    format!("{copy:?}")
}

#[test]
fn member_sets() {
    let mut s = MemberSet::default();
    assert!(s.is_empty());
    s.insert(0);
    s.insert(7);
    assert!(s.contains(7) && !s.contains(1) && !s.contains(99));
    assert_eq!(s.iter().collect::<Vec<_>>(), [0, 7]);
}

#[test]
fn actor_info_follows_the_config() {
    let mut cfg = config(1, Rate::Fast);
    cfg.key = 7;
    cfg.port_priority = 100;
    let lacp = Lacp::new(cfg, 3);
    let pdu = lacp.lacpdu(2).unwrap();
    assert_eq!(pdu.actor.system, mac(1));
    assert_eq!(
        (pdu.actor.key, pdu.actor.port, pdu.actor.port_priority),
        (7, 3, 100)
    );
    let s = pdu.actor.state;
    assert!(s.has(PortState::ACTIVITY) && s.has(PortState::AGGREGATION));
    assert!(s.has(PortState::TIMEOUT) && s.has(PortState::DEFAULTED));
    assert!(!s.has(PortState::SYNCHRONIZATION));
    let slow = Lacp::new(config(1, Rate::Slow), 1);
    assert!(!slow.lacpdu(0).unwrap().actor.state.has(PortState::TIMEOUT));
    assert!(lacp.lacpdu(3).is_none());
    assert_eq!(Lacp::new(cfg, 20).members().len(), MAX_MEMBERS);
}
