//! Bond port: several member links (AF_PACKET ports) that act as one port
//! of the bridge, in one of two modes.
//!
//! - `lacp` (802.3ad / 802.1AX): the `lacp` state machine negotiates with
//!   the partner over every member; frames received on a member pass up
//!   only while it is collecting, and transmitted frames are spread over
//!   the distributing members by a flow hash (`hash.rs`), so one flow stays
//!   on one link.
//! - `active-backup`: one active member (`active_backup.rs`) sends and
//!   receives; on its carrier loss another takes over at once and the port
//!   raises `PortEvent::AnnounceMacs`, so the datapath announces the
//!   bridge's MACs through the new member and upstream switches relearn.
//!
//! Slow protocols frames (EtherType 0x8809) are taken out of the receive
//! stream here and never reach the forwarding table.
//!
//! Events: `readiness_fd` is one epoll descriptor (`sys::epoll`) watching
//! every member's socket and a netlink socket subscribed to link changes
//! (`sys::netlink`), so a member losing carrier wakes an idle datapath at
//! once. Link messages are read without blocking on every idle receive
//! poll, at least every `LINK_CHECK_EVERY` polls under load, and on every
//! tick. Time comes from `tick` (the datapath's clock, every 100 ms); frames
//! and link events between ticks use the last tick's time.

mod active_backup;
pub mod details;
pub mod hash;
mod rx;
mod tx;

#[cfg(test)]
mod tests;

use std::os::fd::RawFd;
use std::time::Duration;

use super::afpacket::AfPacketPort;
use super::sys::epoll::Epoll;
use super::sys::netlink::{link_up_now, LinkMonitor};
use super::sys::slow::SlowSocket;
use super::sys::{self, SysError};
use super::{Port, PortError, PortEvent, PortKind};
use crate::events::{Name, StatusEvent};
use crate::lacp::{Config as LacpConfig, Lacp, MemberSet, Rate, MAX_MEMBERS};
use crate::packet::offload::OffloadCaps;
use crate::packet::Batch;
use crate::pipeline::counters::PortCounters;
use crate::wire::lacp::FRAME_LEN;
use crate::wire::vnet::VnetHdr;
use crate::wire::MacAddr;
use details::{BondDetails, LacpMemberDetails, MemberDetails};
pub use hash::HashPolicy;

/// Under load, link messages are read at least every this many receive
/// polls (a few hundred microseconds of traffic).
const LINK_CHECK_EVERY: u32 = 32;

/// How a bond uses its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BondMode {
    Lacp,
    ActiveBackup,
}

impl BondMode {
    pub fn as_str(self) -> &'static str {
        match self {
            BondMode::Lacp => "lacp",
            BondMode::ActiveBackup => "active-backup",
        }
    }
}

/// A bond's settings (parsed from `vsctl port add` options by `config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BondConfig {
    /// Member interfaces, 1 to `MAX_MEMBERS`, no duplicates.
    pub members: Vec<String>,
    pub mode: BondMode,
    pub hash: HashPolicy,
    /// Index into `members`.
    pub primary: Option<usize>,
    pub lacp_rate: Rate,
    /// The LACP system ID; the first member's MAC if unset.
    pub lacp_system: Option<MacAddr>,
    pub lacp_system_priority: u16,
    pub lacp_key: u16,
    pub lacp_fallback: bool,
}

/// State changes waiting for the datapath to take them: a fixed ring, so
/// raising one never allocates; past `STATUS_QUEUE` waiting ones, the oldest
/// are kept and the newest dropped (monitors only).
#[derive(Default)]
struct StatusQueue {
    events: [Option<StatusEvent>; STATUS_QUEUE],
    head: usize,
    len: usize,
}

const STATUS_QUEUE: usize = 16;

impl StatusQueue {
    fn push(&mut self, e: StatusEvent) {
        if self.len < STATUS_QUEUE {
            self.events[(self.head + self.len) % STATUS_QUEUE] = Some(e);
            self.len += 1;
        }
    }

    fn pop(&mut self) -> Option<StatusEvent> {
        if self.len == 0 {
            return None;
        }
        let e = self.events[self.head].take();
        self.head = (self.head + 1) % STATUS_QUEUE;
        self.len -= 1;
        e
    }
}

#[cfg(test)]
mod status_queue_tests {
    use super::*;

    #[test]
    fn status_queue_is_fifo_and_bounded() {
        let mut q = StatusQueue::default();
        let ev = |i: usize| StatusEvent::MemberLink {
            member: Name::new(&format!("m{i}")),
            up: i % 2 == 0,
        };
        for i in 0..STATUS_QUEUE + 5 {
            q.push(ev(i));
        }
        for i in 0..STATUS_QUEUE {
            assert_eq!(q.pop(), Some(ev(i)), "oldest first, newest dropped");
        }
        assert_eq!(q.pop(), None);
        q.push(ev(99));
        assert_eq!(q.pop(), Some(ev(99)));
    }
}

/// Per-member traffic counters.
#[derive(Debug, Clone, Copy, Default)]
struct MemberStats {
    rx_packets: u64,
    rx_bytes: u64,
    tx_packets: u64,
    tx_bytes: u64,
}

/// One member link.
struct MemberLink {
    name: String,
    ifindex: u32,
    mac: MacAddr,
    port: AfPacketPort,
    /// Where this member's LACPDUs arrive (its ring leaves them out).
    slow: SlowSocket,
    up: bool,
    stats: MemberStats,
}

pub struct BondPort {
    name: String,
    cfg: BondConfig,
    members: Vec<MemberLink>,
    lacp: Option<Lacp>,
    /// Members whose received frames pass up.
    rx_allowed: MemberSet,
    /// Members that carry transmitted frames, in member order.
    tx_members: [usize; MAX_MEMBERS],
    n_tx: usize,
    /// Active-backup: the active member, and the last one that was.
    active: Option<usize>,
    last_active: Option<usize>,
    failovers: u64,
    slow_ignored: u64,
    /// The member the next receive poll starts with.
    rx_next: usize,
    polls_since_link_check: u32,
    /// The datapath's clock as of the last tick; `None` before the first.
    now: Option<Duration>,
    event: Option<PortEvent>,
    /// State changes for monitors (`take_status`).
    status: StatusQueue,
    /// Scratch space for LACPDUs and marker responses.
    ctrl_frame: [u8; FRAME_LEN],
    links: LinkMonitor,
    // Last: closed after the descriptors it watches.
    epoll: Epoll,
}

impl BondPort {
    /// Opens every member (AF_PACKET, promiscuous, brought up) and the link
    /// monitor, and reads each member's link state.
    pub fn open(name: &str, cfg: &BondConfig) -> Result<BondPort, PortError> {
        if cfg.members.is_empty() || cfg.members.len() > MAX_MEMBERS {
            return Err(PortError::Invalid(format!(
                "bond {name}: needs 1 to {MAX_MEMBERS} members"
            )));
        }
        // The monitor first: a change after the states are read below is
        // then still heard.
        let links = LinkMonitor::open().map_err(|e| e.into_port_error(name))?;
        let epoll = Epoll::new().map_err(|e| e.into_port_error(name))?;
        epoll.add(links.fd()).map_err(|e| e.into_port_error(name))?;
        let mut members = Vec::with_capacity(cfg.members.len());
        for m in &cfg.members {
            let port = AfPacketPort::open(m)?;
            let err = |e: SysError| e.into_port_error(m);
            let ifindex = sys::if_index(m)
                .map_err(err)?
                .ok_or_else(|| PortError::NoSuchInterface(m.clone()))?;
            let slow = SlowSocket::open(ifindex).map_err(err)?;
            port.exclude_slow_protocols()?;
            epoll.add(slow.fd()).map_err(err)?;
            let mac = MacAddr(sys::link_mac(m).map_err(err)?);
            let up = link_up_now(m);
            if let Some(fd) = port.readiness_fd() {
                epoll.add(fd).map_err(err)?;
            }
            members.push(MemberLink {
                name: m.clone(),
                ifindex,
                mac,
                port,
                slow,
                up,
                stats: MemberStats::default(),
            });
        }
        let lacp = (cfg.mode == BondMode::Lacp).then(|| {
            let lc = LacpConfig {
                system_priority: cfg.lacp_system_priority,
                system: cfg.lacp_system.unwrap_or(members[0].mac),
                key: cfg.lacp_key,
                port_priority: 255,
                rate: cfg.lacp_rate,
                fallback: cfg.lacp_fallback,
                primary: cfg.primary,
            };
            Lacp::new(lc, members.len())
        });
        let mut bond = BondPort {
            name: name.to_string(),
            cfg: cfg.clone(),
            members,
            lacp,
            rx_allowed: MemberSet::default(),
            tx_members: [0; MAX_MEMBERS],
            n_tx: 0,
            active: None,
            last_active: None,
            failovers: 0,
            slow_ignored: 0,
            rx_next: 0,
            polls_since_link_check: 0,
            now: None,
            event: None,
            status: StatusQueue::default(),
            ctrl_frame: [0; FRAME_LEN],
            links,
            epoll,
        };
        if bond.cfg.mode == BondMode::ActiveBackup {
            bond.reselect_active();
        }
        Ok(bond)
    }

    /// Recomputes which members receive and transmit.
    fn refresh(&mut self) {
        self.rx_allowed = MemberSet::default();
        self.n_tx = 0;
        for (i, m) in self.members.iter().enumerate() {
            let (collect, distribute) = match &self.lacp {
                Some(l) => (l.collecting(i), l.distributing(i)),
                None => (self.active == Some(i), self.active == Some(i)),
            };
            if collect && m.up {
                self.rx_allowed.insert(i);
            }
            if distribute && m.up {
                self.tx_members[self.n_tx] = i;
                self.n_tx += 1;
            }
        }
    }

    /// Active-backup: picks the active member from the link states; a
    /// change raises `AnnounceMacs`.
    fn reselect_active(&mut self) {
        let mut up = [false; MAX_MEMBERS];
        for (u, m) in up.iter_mut().zip(&self.members) {
            *u = m.up;
        }
        let next = active_backup::choose(&up[..self.members.len()], self.active, self.cfg.primary);
        if next != self.active {
            let previous = self.active.map(|a| Name::new(&self.members[a].name));
            self.status.push(StatusEvent::ActiveMember {
                member: next.map(|n| Name::new(&self.members[n].name)),
                previous,
            });
            if let Some(n) = next {
                if self.last_active.is_some_and(|l| l != n) {
                    self.failovers += 1;
                }
                self.last_active = Some(n);
                self.event = Some(PortEvent::AnnounceMacs);
                tracing::info!(bond = %self.name, member = %self.members[n].name, "active member");
            } else {
                tracing::warn!(bond = %self.name, "no member link is up");
            }
            self.active = next;
        }
        self.refresh();
    }

    fn member_details(&self, i: usize, m: &MemberLink) -> MemberDetails {
        let lacp = self.lacp.as_ref();
        MemberDetails {
            name: m.name.clone(),
            link_up: m.up,
            active: self.active == Some(i),
            collecting: self.rx_allowed.contains(i),
            distributing: self.tx_members[..self.n_tx].contains(&i),
            rx_packets: m.stats.rx_packets,
            rx_bytes: m.stats.rx_bytes,
            tx_packets: m.stats.tx_packets,
            tx_bytes: m.stats.tx_bytes,
            lacp: lacp
                .and_then(|l| l.members().get(i))
                .map(LacpMemberDetails::from),
        }
    }
}

impl Port for BondPort {
    fn kind(&self) -> PortKind {
        PortKind::Bond
    }

    fn iface(&self) -> &str {
        &self.name
    }

    fn rx_burst(&mut self, batch: &mut Batch, counters: &mut PortCounters) -> usize {
        self.receive(batch, counters)
    }

    fn tx_burst(&mut self, frames: &[&[u8]], counters: &mut PortCounters) -> usize {
        self.transmit(frames, &[], counters)
    }

    /// Members are AF_PACKET ports, which pass every request on.
    fn offload_caps(&self) -> OffloadCaps {
        OffloadCaps::ALL
    }

    fn tx_burst_offload(
        &mut self,
        frames: &[&[u8]],
        hdrs: &[VnetHdr],
        counters: &mut PortCounters,
    ) -> usize {
        self.transmit(frames, hdrs, counters)
    }

    fn flush(&mut self, counters: &mut PortCounters) {
        for m in &mut self.members {
            m.port.flush(counters);
        }
    }

    fn readiness_fd(&self) -> Option<RawFd> {
        Some(self.epoll.fd())
    }

    fn tick(&mut self, now: Duration, counters: &mut PortCounters) {
        let first = self.now.is_none();
        self.now = Some(now);
        if first {
            self.start_lacp(now, counters);
        }
        self.read_slow(counters);
        // The members' own timers: frames their rings had no room for.
        for m in &mut self.members {
            m.port.tick(now, counters);
        }
        self.check_links(counters);
        if let Some(lacp) = &mut self.lacp {
            let actions = lacp.handle_timer(now);
            self.apply(actions, None, counters);
        }
    }

    fn take_event(&mut self) -> Option<PortEvent> {
        self.event.take()
    }

    fn take_status(&mut self) -> Option<StatusEvent> {
        self.status.pop()
    }

    fn details(&self) -> Option<serde_json::Value> {
        let d = BondDetails {
            mode: self.cfg.mode.as_str().into(),
            hash: self.lacp.as_ref().map(|_| self.cfg.hash.as_str().into()),
            primary: self.cfg.primary.map(|p| self.members[p].name.clone()),
            active: self.active.map(|a| self.members[a].name.clone()),
            failovers: self.failovers,
            slow_ignored: self.slow_ignored,
            members: self
                .members
                .iter()
                .enumerate()
                .map(|(i, m)| self.member_details(i, m))
                .collect(),
            lacp: self.lacp.as_ref().map(Into::into),
        };
        serde_json::to_value(d).ok()
    }
}
