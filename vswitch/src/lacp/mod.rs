//! Link Aggregation Control Protocol (IEEE 802.1AX-2014, clause 6.4) for
//! one bond, as a pure state machine.
//!
//! `Lacp` holds the actor (this switch) and one `Member` per link. It is
//! driven by three events — a received slow protocols PDU, a clock tick and
//! a link going up or down — each with the current time as an argument; it
//! never reads a clock and does no I/O. Each event returns `Actions`: which
//! members must send an LACPDU now (built with `Lacp::lacpdu`), a marker
//! response to send, and which members started or stopped collecting or
//! distributing. So tests drive it frame by frame with no sockets or sleeps.
//!
//! The machines, one file each, run in the standard's order after every
//! event: receive (`receive.rs`, on the event itself), then selection
//! (`selection.rs`), mux (`mux.rs`) and periodic (`periodic.rs`) until
//! nothing changes, then transmit (`transmit.rs`, at most 3 LACPDUs a
//! second per link). The marker responder is `marker.rs`.
//!
//! One bond is one aggregator: selection picks one partner (system, key) and
//! only members whose partner matches it may distribute; the others stay
//! detached and tell the partner so (synchronization off). Choices beyond
//! the standard:
//! - Selection is "stable": the chosen partner keeps the aggregator while
//!   any of its links is usable; otherwise the partner with the most usable
//!   links wins (ties: the lowest member).
//! - Fallback (`Config::fallback`, off by default): when no member has heard
//!   a partner (all defaulted), one member (the primary if it is up) collects
//!   and distributes alone, like active-backup, until a partner speaks. It is
//!   done the standard's way: the default ("admin") partner of a defaulted
//!   member is an individual, synchronized, collecting partner.
//! - The mux also sets NTT when it starts distributing, so the partner's
//!   view of our distributing bit is current at once.
//! - Churn detection (which only reports) is not implemented.

mod marker;
mod member;
mod mux;
mod periodic;
mod receive;
mod selection;
mod transmit;

#[cfg(test)]
mod tests;

use std::time::Duration;

use crate::wire::lacp::{Lacpdu, Pdu, PortInfo, PortState};
use crate::wire::MacAddr;

pub use member::{Member, MemberCounters, Selected};
pub use mux::MuxState;
pub use periodic::PeriodicState;
pub use receive::RxState;

/// Most members a bond may have (fits `MemberSet`).
pub const MAX_MEMBERS: usize = 8;
/// Fast_Periodic_Time: LACPDU period when the partner asks for short timeouts.
pub const FAST_PERIODIC: Duration = Duration::from_secs(1);
/// Slow_Periodic_Time: LACPDU period when the partner asks for long timeouts.
pub const SLOW_PERIODIC: Duration = Duration::from_secs(30);
/// Short_Timeout_Time: partner info expires after 3 fast periods.
pub const SHORT_TIMEOUT: Duration = Duration::from_secs(3);
/// Long_Timeout_Time: partner info expires after 3 slow periods.
pub const LONG_TIMEOUT: Duration = Duration::from_secs(90);
/// Aggregate_Wait_Time: a selected link waits this long before attaching,
/// so links coming up together join together.
pub const AGGREGATE_WAIT: Duration = Duration::from_secs(2);

/// How often we ask the partner to send: our actor's LACP_Timeout bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    /// Every second (short timeout: 3 s).
    Fast,
    /// Every 30 seconds (long timeout: 90 s).
    Slow,
}

impl Rate {
    pub fn as_str(self) -> &'static str {
        match self {
            Rate::Fast => "fast",
            Rate::Slow => "slow",
        }
    }
}

/// The actor's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub system_priority: u16,
    /// The system ID: a member's MAC unless configured.
    pub system: MacAddr,
    /// The key every member carries (they all may aggregate together).
    pub key: u16,
    pub port_priority: u16,
    pub rate: Rate,
    /// Use one link when no partner answers (see the module doc).
    pub fallback: bool,
    /// The member preferred for fallback.
    pub primary: Option<usize>,
}

/// A set of member indexes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberSet(u16);

impl MemberSet {
    pub fn insert(&mut self, m: usize) {
        self.0 |= 1 << m;
    }

    pub fn contains(self, m: usize) -> bool {
        m < 16 && self.0 & (1 << m) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..16).filter(move |m| self.0 & (1 << m) != 0)
    }
}

/// What the owner of the machine must do after an event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Actions {
    /// Members that must send an LACPDU now (`Lacp::lacpdu`).
    pub send: MemberSet,
    /// A marker response to send on the member the marker came in on.
    pub marker_response: Option<crate::wire::lacp::MarkerPdu>,
    /// Members whose collecting or distributing state changed.
    pub changed: MemberSet,
}

/// LACP for one bond.
#[derive(Debug, Clone)]
pub struct Lacp {
    cfg: Config,
    members: Vec<Member>,
    /// The partner group the aggregator is bound to.
    aggregator: Option<selection::GroupKey>,
}

impl Lacp {
    /// A bond of `members` links (clamped to `MAX_MEMBERS`), all down until
    /// `link_changed` says otherwise.
    pub fn new(cfg: Config, members: usize) -> Lacp {
        let n = members.min(MAX_MEMBERS);
        let members = (0..n).map(|i| Member::new(&cfg, i)).collect();
        Lacp {
            cfg,
            members,
            aggregator: None,
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Whether member `m` may pass received frames up.
    pub fn collecting(&self, m: usize) -> bool {
        self.members.get(m).is_some_and(Member::collecting)
    }

    /// Whether member `m` may carry transmitted frames.
    pub fn distributing(&self, m: usize) -> bool {
        self.members.get(m).is_some_and(Member::distributing)
    }

    /// The partner the aggregator is bound to (system priority, system,
    /// key), if any member has been selected.
    pub fn partner(&self) -> Option<(u16, MacAddr, u16)> {
        self.aggregator
            .map(|k| (k.system_priority, k.system, k.key))
    }

    /// The LACPDU member `m` sends now.
    pub fn lacpdu(&self, m: usize) -> Option<Lacpdu> {
        self.members.get(m).map(Member::lacpdu)
    }

    /// A slow protocols PDU (the bytes after the EtherType) received on
    /// member `m`. A PDU that does not parse is counted and changes nothing.
    pub fn handle_pdu(&mut self, m: usize, bytes: &[u8], now: Duration) -> Actions {
        let mut actions = Actions::default();
        let Some(member) = self.members.get_mut(m) else {
            return actions;
        };
        match Pdu::parse(bytes) {
            Err(_) => {
                member.counters.bad_in += 1;
                return actions;
            }
            Ok(Pdu::Marker(pdu)) => {
                actions.marker_response = marker::respond(member, &pdu);
                return actions;
            }
            Ok(Pdu::Lacp(pdu)) => {
                member.counters.lacpdus_in += 1;
                member.rx_pdu(&pdu, now);
            }
        }
        self.run(now, actions)
    }

    /// The clock: expires timers and sends what is due. Call it often (the
    /// datapath does every 100 ms); timers are as precise as the calls.
    pub fn handle_timer(&mut self, now: Duration) -> Actions {
        for m in &mut self.members {
            m.rx_timer(now);
        }
        self.run(now, Actions::default())
    }

    /// Member `m`'s link went up or down (carrier, or administratively).
    pub fn link_changed(&mut self, m: usize, up: bool, now: Duration) -> Actions {
        if let Some(member) = self.members.get_mut(m) {
            member.rx_port_enabled(up, now);
        }
        self.run(now, Actions::default())
    }

    /// Runs selection, mux and periodic until they settle, then transmit.
    fn run(&mut self, now: Duration, mut actions: Actions) -> Actions {
        let mut before = [(false, false); MAX_MEMBERS];
        for (b, m) in before.iter_mut().zip(&self.members) {
            *b = (m.collecting(), m.distributing());
        }
        // Each pass moves some machine one state; a handful of passes reach
        // a fixed point (DETACHED -> ... -> DISTRIBUTING is four steps).
        for _ in 0..16 {
            selection::select(&mut self.members, &mut self.aggregator, &self.cfg);
            let mut moved = false;
            for m in &mut self.members {
                moved |= m.mux_step(now);
                moved |= m.periodic_step(now);
            }
            if !moved {
                break;
            }
        }
        for (i, m) in self.members.iter_mut().enumerate() {
            if m.transmit(now) {
                actions.send.insert(i);
            }
            if before[i] != (m.collecting(), m.distributing()) {
                actions.changed.insert(i);
            }
        }
        actions
    }
}

/// The partner a defaulted member assumes: nobody, or, with fallback, an
/// individual partner that is in sync and collecting.
fn admin_partner(cfg: &Config) -> PortInfo {
    let mut state = PortState(PortState::TIMEOUT);
    if cfg.fallback {
        state.set(PortState::SYNCHRONIZATION, true);
        state.set(PortState::COLLECTING, true);
        state.set(PortState::DISTRIBUTING, true);
    }
    PortInfo {
        state,
        ..PortInfo::default()
    }
}
