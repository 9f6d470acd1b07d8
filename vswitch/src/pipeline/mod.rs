//! The per-batch packet pipeline of a bridge.
//!
//! A batch received on one port goes through the stages in order, each over
//! the whole batch: `input` classifies every frame (or picks its drop
//! reason), learning records the source, `forward` picks a disposition, and
//! `output` hands each output port all of its frames in one burst. No stage
//! allocates or locks.

pub mod admit;
pub mod announce;
pub mod counters;
pub mod forward;
pub mod input;
pub mod output;
pub mod trace;
pub mod vlan;

use std::time::Duration;

use crate::fdb::{Fdb, LearnOutcome, PortId};
use crate::packet::offload::OffloadCaps;
use crate::packet::{Batch, BATCH_SIZE};
use crate::port::Port;
use crate::wire::MacAddr;
use admit::{PortPolicy, StormBucket};
use counters::{DropReason, PortCounters};

/// What becomes of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Drop(DropReason),
    /// Known unicast: exactly this port.
    Unicast(PortId),
    /// Broadcast, multicast or unknown unicast: every port of the bridge
    /// but the ingress one that carries the frame's VLAN.
    Flood,
}

/// One frame's verdict and the network it travels in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub disposition: Disposition,
    pub vlan: u16,
    /// PCP and DEI bits to put back in a tag on egress.
    pub prio: u16,
}

impl Verdict {
    const DROPPED: Verdict = Verdict {
        disposition: Disposition::Drop(DropReason::Runt),
        vlan: 0,
        prio: 0,
    };
}

/// A bridge as the datapath runs it: its table and its member ports.
pub struct Bridge {
    pub name: String,
    pub fdb: Fdb,
    /// Member ports, in the order they were added: the flood set.
    pub ports: Vec<PortId>,
    /// Where the output stage cuts GSO frames for ports that cannot take
    /// them (allocated once; pages are touched only when used).
    pub segments: Batch,
    /// MAC moves noted for monitors (`events::MoveLog`, rate-limited).
    pub moves: crate::events::MoveLog,
}

impl Bridge {
    pub fn new(name: String, fdb: Fdb, ports: Vec<PortId>) -> Bridge {
        Bridge {
            name,
            fdb,
            ports,
            segments: Batch::new(),
            moves: crate::events::MoveLog::default(),
        }
    }
}

/// A port as the datapath runs it.
pub struct PortSlot {
    pub name: String,
    /// Index of the bridge the port belongs to.
    pub bridge: usize,
    pub port: Box<dyn Port>,
    /// `port.offload_caps()`, asked once.
    pub caps: OffloadCaps,
    pub counters: PortCounters,
    pub policy: PortPolicy,
    /// Storm control state, present when `policy.storm_pps` is set.
    pub storm: Option<StormBucket>,
    /// A running `vsctl capture` on this port: frames received and sent
    /// are copied to it (`capture::Tap`).
    pub capture: Option<Box<crate::capture::Tap>>,
}

impl PortSlot {
    pub fn new(name: String, bridge: usize, port: Box<dyn Port>, policy: PortPolicy) -> Self {
        let mut slot = PortSlot {
            name,
            bridge,
            caps: port.offload_caps(),
            port,
            counters: PortCounters::default(),
            policy: PortPolicy::default(),
            storm: None,
            capture: None,
        };
        slot.set_policy(policy, Duration::ZERO);
        slot
    }

    /// Replaces the policy; storm control starts with a full bucket.
    pub fn set_policy(&mut self, policy: PortPolicy, now: Duration) {
        self.storm = policy.storm_pps.map(|pps| StormBucket::new(pps, now));
        self.policy = policy;
    }
}

/// Learns a frame's source; a move is noted for monitors.
#[inline]
fn learn(
    bridge: &mut Bridge,
    frame: &input::Classified,
    in_port: PortId,
    now: Duration,
    port_limit: u32,
) -> LearnOutcome {
    let outcome = bridge
        .fdb
        .learn(frame.vlan, frame.src, in_port, now.as_secs(), port_limit);
    if let LearnOutcome::Moved { from } = outcome {
        bridge.moves.note(frame.vlan, frame.src, from, in_port, now);
    }
    outcome
}

/// ARP snooping while EVPN drives the bridge: the address a local MAC
/// claims goes into its MAC+IP route. Only ARP frames pay more than the
/// check that EVPN is on.
#[inline]
fn snoop_arp(bridge: &Bridge, frame: &input::Classified, bytes: &[u8], in_port: PortId) {
    if !bridge.fdb.snoops_arp() || bytes.get(12..14) != Some(&[0x08, 0x06]) {
        return;
    }
    if let Some(arp) = bytes.get(14..).and_then(crate::wire::arp::ArpRepr::parse) {
        if arp.sender_mac == frame.src {
            bridge
                .fdb
                .note_arp(frame.vlan, frame.src, arp.sender_ip, in_port);
        }
    }
}

/// One-entry caches for one batch: the frames of a burst mostly belong to
/// a few flows, and consecutive frames of one flow skip the table.
#[derive(Default)]
struct BatchCache {
    /// The (VLAN, source) last learned or refreshed on the ingress port.
    learned: Option<(u16, MacAddr)>,
    /// The last (VLAN, destination) looked up, and its disposition.
    lookup: Option<(u16, MacAddr, Disposition)>,
}

impl BatchCache {
    /// Notes what learning did with `frame`'s source.
    #[inline]
    fn learnt(&mut self, frame: &input::Classified, outcome: LearnOutcome) {
        let key = (frame.vlan, frame.src);
        match outcome {
            LearnOutcome::Refreshed => self.learned = Some(key),
            LearnOutcome::Learned | LearnOutcome::Moved { .. } => {
                self.learned = Some(key);
                // The table changed for this MAC: a cached look-up of it is
                // stale.
                if self.lookup.is_some_and(|(v, m, _)| (v, m) == key) {
                    self.lookup = None;
                }
            }
            _ => self.learned = None,
        }
    }

    /// `forward::decide`, through the cache.
    #[inline]
    fn decide(&mut self, frame: &input::Classified, in_port: PortId, fdb: &Fdb) -> Disposition {
        if let Some((vlan, dst, d)) = self.lookup {
            if (vlan, dst) == (frame.vlan, frame.dst) {
                return d;
            }
        }
        let d = forward::decide(frame, in_port, fdb);
        self.lookup = Some((frame.vlan, frame.dst, d));
        d
    }
}

/// Runs one batch received on `in_port` through the bridge: classify,
/// admit, learn, forward, transmit. `ports` is the datapath's whole port
/// slab, indexed by `PortId`; `now` the datapath clock.
pub fn process_batch(
    batch: &mut Batch,
    in_port: PortId,
    bridge: &mut Bridge,
    ports: &mut [Option<PortSlot>],
    now: Duration,
) {
    let Some(Some(ingress)) = ports.get_mut(in_port as usize) else {
        return;
    };
    let mut verdicts = [Verdict::DROPPED; BATCH_SIZE];
    let n = batch.len();
    let port_limit = ingress.policy.max_macs.unwrap_or(u32::MAX);
    let mut cache = BatchCache::default();

    // The whole batch is classified first, then the table buckets of every
    // frame's source and destination start loading at once: in a table of
    // a million MACs each look-up misses the caches, and 64 misses that
    // overlap cost little more than one (3-4x the frame rate, see
    // docs/performance.md).
    let mut classified = [Err(DropReason::Runt); BATCH_SIZE];
    for (c, buf) in classified.iter_mut().zip(batch.iter_mut()) {
        *c = input::classify(buf, &ingress.policy.vlan);
    }
    for c in classified[..n].iter().flatten() {
        bridge.fdb.prefetch(c.vlan, c.src);
        bridge.fdb.prefetch(c.vlan, c.dst);
    }
    for (i, buf) in batch.iter_mut().enumerate() {
        verdicts[i] = match classified[i] {
            Err(reason) => Verdict {
                disposition: Disposition::Drop(reason),
                ..Verdict::DROPPED
            },
            Ok(frame) => {
                let allowed = ingress.policy.source_allowed(frame.src);
                if allowed {
                    snoop_arp(bridge, &frame, buf.frame(), in_port);
                }
                let disposition = if !allowed {
                    Disposition::Drop(DropReason::SrcMacNotAllowed)
                } else if cache.learned == Some((frame.vlan, frame.src)) {
                    // Learned or refreshed on this port earlier in the
                    // batch, at the same second: learning again changes
                    // nothing.
                    cache.decide(&frame, in_port, &bridge.fdb)
                } else {
                    match learn(bridge, &frame, in_port, now, port_limit) {
                        LearnOutcome::PortLimit => Disposition::Drop(DropReason::PortMacLimit),
                        outcome => {
                            cache.learnt(&frame, outcome);
                            cache.decide(&frame, in_port, &bridge.fdb)
                        }
                    }
                };
                let disposition = match disposition {
                    Disposition::Flood => {
                        if ingress.storm.as_mut().is_none_or(|b| b.allow(now)) {
                            Disposition::Flood
                        } else {
                            Disposition::Drop(DropReason::StormControl)
                        }
                    }
                    d => d,
                };
                Verdict {
                    disposition,
                    vlan: frame.vlan,
                    prio: frame.prio,
                }
            }
        };
    }

    let delivered = output::transmit(
        batch,
        &verdicts[..n],
        in_port,
        &bridge.ports,
        ports,
        &mut bridge.segments,
    );

    if let Some(Some(ingress)) = ports.get_mut(in_port as usize) {
        for (i, v) in verdicts[..n].iter().enumerate() {
            match v.disposition {
                Disposition::Drop(reason) => ingress.counters.count_drop(reason),
                Disposition::Flood if !delivered[i] => {
                    ingress.counters.count_drop(DropReason::NoFloodPorts)
                }
                Disposition::Unicast(_) if !delivered[i] => {
                    ingress.counters.count_drop(DropReason::EgressVlanFiltered)
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests;
