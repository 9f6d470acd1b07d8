//! The bond's receive side: member rings in turn, slow protocols frames to
//! LACP, link events; and applying what LACP asks for.

use std::time::Duration;

use super::{BondPort, LINK_CHECK_EVERY};
use crate::lacp::{Actions, MAX_MEMBERS};
use crate::packet::{Batch, BATCH_SIZE};
use crate::pipeline::counters::{DropReason, PortCounters};
use crate::port::sys::netlink::link_up_now;
use crate::port::Port;
use crate::wire::lacp::is_slow_protocols;

impl BondPort {
    /// Reads the members in turn (starting one further each call, so a
    /// busy member cannot starve the others) until the batch is full. Slow
    /// protocols frames go to LACP; frames of members that may not collect
    /// are dropped and counted.
    pub(super) fn receive(&mut self, batch: &mut Batch, counters: &mut PortCounters) -> usize {
        let first = batch.len();
        let n = self.members.len();
        for k in 0..n {
            if batch.is_full() {
                break;
            }
            let i = (self.rx_next + k) % n;
            let start = batch.len();
            let (p0, b0) = (counters.rx_packets, counters.rx_bytes);
            let m = &mut self.members[i];
            m.port.rx_burst(batch, counters);
            m.stats.rx_packets += counters.rx_packets - p0;
            m.stats.rx_bytes += counters.rx_bytes - b0;
            let allowed = self.rx_allowed.contains(i);
            let has_slow = batch
                .iter()
                .skip(start)
                .any(|b| is_slow_protocols(b.frame()));
            if batch.len() == start || (allowed && !has_slow) {
                continue;
            }
            self.filter(batch, start, i, allowed, counters);
        }
        self.rx_next = (self.rx_next + 1) % n.max(1);
        let got = batch.len() - first;
        self.polls_since_link_check += 1;
        if got == 0 || self.polls_since_link_check >= LINK_CHECK_EVERY {
            self.check_links(counters);
        }
        if got == 0 {
            // Idle: LACPDUs are handled at once. Busy: at every tick.
            self.read_slow(counters);
        }
        got
    }

    /// Hands LACP the slow protocols frames waiting in the members' side
    /// channels (a bounded number per member per call).
    pub(super) fn read_slow(&mut self, counters: &mut PortCounters) {
        const PER_MEMBER: usize = 16;
        let mut buf = [0u8; 256];
        for i in 0..self.members.len() {
            for _ in 0..PER_MEMBER {
                let len = match self.members[i].slow.recv(&mut buf) {
                    None | Some(Err(_)) => break,
                    Some(Ok(len)) => len,
                };
                let frame = &buf[..len.min(buf.len())];
                match (self.lacp.as_mut(), self.now) {
                    (Some(l), Some(now)) if len <= buf.len() && is_slow_protocols(frame) => {
                        let a = l.handle_pdu(i, &frame[14..], now);
                        self.apply(a, Some(i), counters);
                    }
                    _ => self.slow_ignored += 1,
                }
            }
        }
    }

    /// Takes the frames of member `i` from index `start` on out of the
    /// batch unless they may pass: slow protocols frames always, others if
    /// the member may not collect.
    fn filter(
        &mut self,
        batch: &mut Batch,
        start: usize,
        i: usize,
        allowed: bool,
        counters: &mut PortCounters,
    ) {
        let mut pending = [Actions::default(); BATCH_SIZE];
        let mut n_pending = 0;
        let lacp = &mut self.lacp;
        let now = self.now;
        let slow_ignored = &mut self.slow_ignored;
        batch.retain_from(start, |buf| {
            let f = buf.frame();
            if is_slow_protocols(f) {
                match (lacp.as_mut(), now) {
                    (Some(l), Some(now)) if n_pending < BATCH_SIZE => {
                        pending[n_pending] = l.handle_pdu(i, &f[14..], now);
                        n_pending += 1;
                    }
                    _ => *slow_ignored += 1,
                }
                false
            } else if !allowed {
                counters.count_drop(DropReason::BondNotCollecting);
                false
            } else {
                true
            }
        });
        for a in &pending[..n_pending] {
            self.apply(*a, Some(i), counters);
        }
    }

    /// Sends what LACP asked for (`from`: the member a PDU came in on, for
    /// a marker response) and follows collecting/distributing changes.
    pub(super) fn apply(&mut self, a: Actions, from: Option<usize>, counters: &mut PortCounters) {
        for m in a.send.iter() {
            if let Some(pdu) = self.lacp.as_ref().and_then(|l| l.lacpdu(m)) {
                self.send_control(m, crate::wire::lacp::Pdu::Lacp(pdu), counters);
            }
        }
        if let (Some(resp), Some(m)) = (a.marker_response, from) {
            self.send_control(m, crate::wire::lacp::Pdu::Marker(resp), counters);
        }
        if !a.changed.is_empty() {
            self.refresh();
            for m in a.changed.iter() {
                self.status.push(crate::events::StatusEvent::LacpMember {
                    member: crate::events::Name::new(&self.members[m].name),
                    collecting: self.rx_allowed.contains(m),
                    distributing: self.tx_members[..self.n_tx].contains(&m),
                });
                tracing::info!(
                    bond = %self.name,
                    member = %self.members[m].name,
                    collecting = self.rx_allowed.contains(m),
                    distributing = self.tx_members[..self.n_tx].contains(&m),
                    "LACP member state"
                );
            }
        }
    }

    /// At the first tick, when the clock is known: LACP hears of the
    /// members whose links are up.
    pub(super) fn start_lacp(&mut self, now: Duration, counters: &mut PortCounters) {
        for i in 0..self.members.len() {
            if !self.members[i].up {
                continue;
            }
            if let Some(l) = &mut self.lacp {
                let a = l.link_changed(i, true, now);
                self.apply(a, None, counters);
            }
        }
    }

    /// Reads waiting link messages and acts on the members' changes.
    pub(super) fn check_links(&mut self, counters: &mut PortCounters) {
        self.polls_since_link_check = 0;
        let mut latest: [Option<bool>; MAX_MEMBERS] = [None; MAX_MEMBERS];
        let members = &self.members;
        let drained = self.links.drain(|ev| {
            if let Some(i) = members.iter().position(|m| m.ifindex == ev.ifindex) {
                latest[i] = Some(ev.up);
            }
        });
        if drained.is_err() {
            // Messages were lost: ask the kernel for every member's state.
            tracing::warn!(bond = %self.name, "link messages lost; re-reading member states");
            for (l, m) in latest.iter_mut().zip(&self.members) {
                *l = Some(link_up_now(&m.name));
            }
        }
        for (i, up) in latest.iter().enumerate() {
            if let Some(up) = *up {
                if self.members.get(i).is_some_and(|m| m.up != up) {
                    self.set_link(i, up, counters);
                }
            }
        }
    }

    fn set_link(&mut self, i: usize, up: bool, counters: &mut PortCounters) {
        self.members[i].up = up;
        self.status.push(crate::events::StatusEvent::MemberLink {
            member: crate::events::Name::new(&self.members[i].name),
            up,
        });
        tracing::info!(bond = %self.name, member = %self.members[i].name, up, "member link");
        match (&mut self.lacp, self.now) {
            (Some(l), Some(now)) => {
                let a = l.link_changed(i, up, now);
                self.apply(a, None, counters);
            }
            // Told at the first tick.
            (Some(_), None) => {}
            (None, _) => self.reselect_active(),
        }
        self.refresh();
    }
}
