//! A VXLAN tunnel endpoint (RFC 7348) as a port of a bridge.
//!
//! One VXLAN port is one VTEP: a local underlay IPv4 address on an underlay
//! port of the switch (an uplink), a list of remote VTEPs, and one or more
//! VNIs, each mapped to a VLAN of the bridge (or to its untagged network 0).
//! To the bridge the port looks like a trunk of those VLANs: decapsulated
//! frames enter tagged with their VNI's VLAN, and frames leaving through
//! the port are encapsulated with the VNI of their VLAN.
//!
//! The datapath offers the VTEP every frame its underlay receives
//! (`Tunnel::offer`): ARP for the VTEP's address is answered, VXLAN to it is
//! decapsulated into `inbound`, and malformed tunnel traffic is counted. The
//! VTEP's own frames (encapsulated traffic, ARP) wait in `outbound` for the
//! datapath to send through the underlay. Broadcast, multicast and unknown
//! unicast are replicated to every remote (head-end replication); a known
//! inner MAC goes to the remote it was learned from. Next hops are resolved
//! by the VTEP's own ARP (`neighbor`), on the local subnet or through the
//! gateway.

mod arp;
mod details;
mod evpn;
pub mod neighbor;

use std::net::Ipv4Addr;
use std::os::fd::RawFd;
use std::time::Duration;

use hashbrown::HashMap;

use super::{Port, PortKind, Tunnel};
use crate::packet::offload;
use crate::packet::{Batch, BATCH_SIZE};
use crate::pipeline::counters::{DropReason, PortCounters};
use crate::pipeline::vlan::{VlanMode, VlanSet};
use crate::wire::ipv4::{self, Ipv4Header, UdpHeader, PROTO_UDP};
use crate::wire::vnet::VnetHdr;
use crate::wire::{vxlan, EtherType, EthernetFrame, MacAddr};

const ETH_HLEN: usize = 14;
use neighbor::NeighborTable;

/// Outer Ethernet + IPv4 + UDP + VXLAN.
pub const OVERHEAD: usize = 14 + 20 + 8 + 8;
/// Frames the VTEP may queue toward the underlay between two flushes: a
/// burst of 32 replicated to 16 remotes.
const OUTBOUND_CAPACITY: usize = 512;
/// Inner MACs remembered with their remote VTEP.
const MAX_REMOTE_MACS: usize = 16_384;
/// A learned inner MAC's remote is forgotten after this long unseen.
const REMOTE_MAC_AGING: Duration = Duration::from_secs(600);

/// What an operator configures for a VTEP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanConfig {
    pub local: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
    pub remotes: Vec<Ipv4Addr>,
    /// (VNI, VLAN) pairs; VLAN 0 is the bridge's untagged network.
    pub vnis: Vec<(u32, u16)>,
    pub dst_port: u16,
    /// Name of the underlay port.
    pub underlay: String,
    /// The VTEP's MAC on the underlay.
    pub mac: MacAddr,
    /// MTU of the underlay network.
    pub underlay_mtu: u16,
}

impl VxlanConfig {
    /// A locally administered MAC derived from the VTEP address: stable
    /// across restarts and distinct per VTEP.
    pub fn default_mac(local: Ipv4Addr) -> MacAddr {
        let o = local.octets();
        MacAddr([0x02, 0x56, o[0], o[1], o[2], o[3]])
    }

    /// The VLAN mode the port has in its bridge.
    pub fn vlan_mode(&self) -> VlanMode {
        let mut allowed = VlanSet::empty();
        let mut native = None;
        for &(_, vlan) in &self.vnis {
            if vlan == 0 {
                native = Some(0);
            } else {
                allowed.insert(vlan);
            }
        }
        VlanMode::Trunk { allowed, native }
    }

    /// Largest inner frame (Ethernet header included) that fits.
    pub fn max_inner_frame(&self) -> usize {
        usize::from(self.underlay_mtu).saturating_sub(OVERHEAD - 14)
    }

    #[inline]
    fn vni_of_vlan(&self, vlan: u16) -> Option<u32> {
        self.vnis.iter().find(|(_, v)| *v == vlan).map(|(n, _)| *n)
    }

    #[inline]
    fn vlan_of_vni(&self, vni: u32) -> Option<u16> {
        self.vnis.iter().find(|(n, _)| *n == vni).map(|(_, v)| *v)
    }

    fn on_subnet(&self, ip: Ipv4Addr) -> bool {
        let mask = if self.prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix_len.min(32)))
        };
        u32::from(ip) & mask == u32::from(self.local) & mask
    }

    /// The underlay next hop toward `remote`: itself on the local subnet,
    /// else the gateway.
    pub fn next_hop(&self, remote: Ipv4Addr) -> Option<Ipv4Addr> {
        if self.on_subnet(remote) {
            Some(remote)
        } else {
            self.gateway
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct RemoteCounters {
    tx_packets: u64,
    tx_bytes: u64,
    rx_packets: u64,
    rx_bytes: u64,
}

#[derive(Debug, Clone, Copy)]
struct RemoteMac {
    remote: Ipv4Addr,
    last_seen: Duration,
    is_static: bool,
    /// Installed by EVPN: never aged, never overwritten by learning.
    from_evpn: bool,
}

pub struct VxlanPort {
    name: String,
    cfg: VxlanConfig,
    neighbors: NeighborTable,
    macs: HashMap<(u32, MacAddr), RemoteMac>,
    per_remote: HashMap<Ipv4Addr, RemoteCounters>,
    inbound: Batch,
    outbound: Batch,
    due: Vec<Ipv4Addr>,
    /// The datapath clock as of the last `offer` or `tick`: the transmit
    /// path, which gets no clock, judges neighbor freshness by it.
    now: Duration,
    last_sweep: Duration,
    /// What EVPN added (`evpn.rs`): remote VTEPs per VNI and how many
    /// routes refer to each VTEP.
    evpn: evpn::EvpnRemotes,
    /// Whether decapsulated frames teach `macs`.
    learning: bool,
    /// Whether an EVPN session attached to this port.
    evpn_marked: bool,
}

impl VxlanPort {
    pub fn new(name: &str, cfg: VxlanConfig) -> VxlanPort {
        let mut neighbors = NeighborTable::default();
        let mut per_remote = HashMap::new();
        for r in &cfg.remotes {
            if let Some(nh) = cfg.next_hop(*r) {
                neighbors.want(nh);
            }
            per_remote.insert(*r, RemoteCounters::default());
        }
        VxlanPort {
            name: name.to_string(),
            neighbors,
            macs: HashMap::with_capacity(MAX_REMOTE_MACS),
            per_remote,
            inbound: Batch::with_capacity(BATCH_SIZE),
            outbound: Batch::with_capacity(OUTBOUND_CAPACITY),
            due: Vec::new(),
            now: Duration::ZERO,
            last_sweep: Duration::ZERO,
            evpn: evpn::EvpnRemotes::default(),
            learning: true,
            evpn_marked: false,
            cfg,
        }
    }

    pub fn config(&self) -> &VxlanConfig {
        &self.cfg
    }

    /// Decapsulates a UDP/VXLAN packet sent to the VTEP's MAC and address.
    /// `offload` is the outer frame's (an untagged Ethernet header in front
    /// of `ip_packet`): a request about the inner packet moves with it, one
    /// about the outer headers ends here.
    fn decap(
        &mut self,
        ip_packet: &[u8],
        offload: &VnetHdr,
        now: Duration,
        counters: &mut PortCounters,
    ) {
        let bad = |counters: &mut PortCounters| counters.count_drop(DropReason::VxlanBadHeader);
        let Ok(ip) = Ipv4Header::parse(ip_packet) else {
            return bad(counters);
        };
        if ip.protocol != PROTO_UDP || ip.is_fragment {
            return bad(counters);
        }
        let l4 = &ip_packet[ip.header_len..ip.total_len];
        let Some(udp) = UdpHeader::parse(l4) else {
            return bad(counters);
        };
        if udp.dst_port != self.cfg.dst_port {
            return counters.count_drop(DropReason::VxlanWrongPort);
        }
        let vx = &l4[ipv4::UDP_HEADER_LEN..udp.len];
        let Ok(vni) = vxlan::parse(vx) else {
            return bad(counters);
        };
        let Some(vlan) = self.cfg.vlan_of_vni(vni) else {
            return counters.count_drop(DropReason::VxlanUnknownVni);
        };
        if !self.cfg.remotes.contains(&ip.src) && !self.evpn.knows(ip.src) {
            return counters.count_drop(DropReason::VxlanUnknownRemote);
        }
        let inner = &vx[vxlan::HEADER_LEN..];
        let Ok(eth) = EthernetFrame::new_checked(inner) else {
            return counters.count_drop(DropReason::Runt);
        };
        // The VNI decides the VLAN. An inner tag would be read by the
        // bridge instead, letting a remote put VNI A's traffic into VNI B's
        // VLAN; RFC 7348 says to discard such frames.
        if matches!(
            eth.ethertype(),
            EtherType::Vlan | EtherType::QinQ | EtherType::Unknown(0x9100)
        ) {
            return counters.count_drop(DropReason::VxlanInnerTagged);
        }
        let src = eth.src();
        if src.is_learnable() && self.learning {
            self.learn_remote(vni, src, ip.src, now);
        }
        if let Some(c) = self.per_remote.get_mut(&ip.src) {
            c.rx_packets += 1;
            c.rx_bytes += inner.len() as u64;
        }
        let Some(buf) = self.inbound.slot() else {
            return counters.count_drop(DropReason::RxError);
        };
        let area = buf.rx_area();
        let len = if vlan == 0 {
            area[..inner.len()].copy_from_slice(inner);
            inner.len()
        } else {
            // Enter the bridge tagged with the VNI's VLAN: the port is a
            // trunk of its VNIs' VLANs.
            area[..12].copy_from_slice(&inner[..12]);
            area[12..14].copy_from_slice(&[0x81, 0x00]);
            area[14..16].copy_from_slice(&vlan.to_be_bytes());
            area[16..inner.len() + 4].copy_from_slice(&inner[12..]);
            inner.len() + 4
        };
        buf.set_len(len);
        let outer_len = ETH_HLEN + ip.header_len + ipv4::UDP_HEADER_LEN + vxlan::HEADER_LEN;
        let mut inner_offload = VnetHdr::default();
        if usize::from(offload.csum_start) >= outer_len + ETH_HLEN && !offload.is_plain() {
            inner_offload = *offload;
            inner_offload.shift(0, outer_len, false);
            if vlan != 0 {
                inner_offload.shift(12, 4, true);
            }
            if let Err(reason) = offload::check_rx(buf.frame(), &mut inner_offload) {
                return counters.count_drop(reason);
            }
        } else if offload.is_gso() {
            return counters.count_drop(DropReason::OffloadUnsupported);
        }
        buf.meta.offload = inner_offload;
        self.inbound.commit();
    }

    fn learn_remote(&mut self, vni: u32, mac: MacAddr, remote: Ipv4Addr, now: Duration) {
        let full = self.macs.len() >= MAX_REMOTE_MACS;
        match self.macs.get_mut(&(vni, mac)) {
            Some(e) if e.is_static || e.from_evpn => {}
            Some(e) => {
                e.remote = remote;
                e.last_seen = now;
            }
            None if full => {}
            None => {
                self.macs.insert(
                    (vni, mac),
                    RemoteMac {
                        remote,
                        last_seen: now,
                        is_static: false,
                        from_evpn: false,
                    },
                );
            }
        }
    }

    /// Encapsulates `frame` (an inner frame whose outer tag, if `tagged`, is
    /// dropped) toward `remote`.
    fn encap(
        &mut self,
        remote: Ipv4Addr,
        vni: u32,
        frame: &[u8],
        tagged: bool,
        counters: &mut PortCounters,
    ) {
        let Some(next_hop) = self.cfg.next_hop(remote) else {
            return counters.count_drop(DropReason::VxlanNoRoute);
        };
        let Some(next_mac) = self.neighbors.lookup(next_hop, self.now) else {
            return counters.count_drop(DropReason::VxlanNoNeighbor);
        };
        let Some(buf) = self.outbound.slot() else {
            return counters.count_drop(DropReason::TxRingFull);
        };
        let rest = if tagged { &frame[16..] } else { &frame[12..] };
        let inner_len = 12 + rest.len();
        let area = buf.rx_area();
        area[0..6].copy_from_slice(&next_mac.0);
        area[6..12].copy_from_slice(&self.cfg.mac.0);
        area[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        area[OVERHEAD..OVERHEAD + 12].copy_from_slice(&frame[..12]);
        area[OVERHEAD + 12..OVERHEAD + inner_len].copy_from_slice(rest);
        // The source port carries a hash of the inner addresses so the
        // underlay's ECMP and bonds spread flows (RFC 7348 section 5).
        let hash = frame[..12].iter().fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
        });
        let src_port = 49152 | (hash as u16 & 0x3fff);
        let udp_payload = vxlan::HEADER_LEN + inner_len;
        if ipv4::emit_udp(
            &mut area[14..42],
            self.cfg.local,
            remote,
            src_port,
            self.cfg.dst_port,
            udp_payload,
        )
        .is_err()
        {
            return counters.count_drop(DropReason::TxTooBig);
        }
        vxlan::emit(vni, &mut area[42..50]);
        buf.set_len(OVERHEAD + inner_len);
        self.outbound.commit();
        if let Some(c) = self.per_remote.get_mut(&remote) {
            c.tx_packets += 1;
            c.tx_bytes += inner_len as u64;
        }
    }
}

impl Port for VxlanPort {
    fn kind(&self) -> PortKind {
        PortKind::Vxlan
    }

    fn iface(&self) -> &str {
        &self.name
    }

    fn rx_burst(&mut self, batch: &mut Batch, counters: &mut PortCounters) -> usize {
        let mut n = 0;
        for buf in self.inbound.iter() {
            if batch.is_full() {
                counters.count_drop(DropReason::RxError);
                continue;
            }
            batch.push_copy(buf.frame());
            if let Some(copy) = batch.get_mut(batch.len() - 1) {
                copy.meta = buf.meta;
            }
            counters.count_rx(buf.len());
            n += 1;
        }
        self.inbound.clear();
        n
    }

    fn tx_burst(&mut self, frames: &[&[u8]], counters: &mut PortCounters) -> usize {
        let max_inner = self.cfg.max_inner_frame();
        let mut accepted = 0;
        for frame in frames {
            let Ok(eth) = EthernetFrame::new_checked(*frame) else {
                counters.count_drop(DropReason::Runt);
                continue;
            };
            let (vlan, tagged) = match eth.vlan_tci() {
                Some(t) => (t.vid(), true),
                None => (0, false),
            };
            let Some(vni) = self.cfg.vni_of_vlan(vlan) else {
                counters.count_drop(DropReason::EgressVlanFiltered);
                continue;
            };
            let inner_len = frame.len() - if tagged { 4 } else { 0 };
            if inner_len > max_inner {
                // Never fragmented: the inner MTU is the underlay's minus 50.
                counters.count_drop(DropReason::TxTooBig);
                continue;
            }
            let dst = eth.dst();
            let known = if dst.is_multicast() {
                None
            } else {
                self.macs.get(&(vni, dst)).map(|e| e.remote)
            };
            counters.count_tx(inner_len);
            accepted += 1;
            match known {
                Some(remote) => self.encap(remote, vni, frame, tagged, counters),
                None => {
                    for i in 0..self.cfg.remotes.len() {
                        let remote = self.cfg.remotes[i];
                        self.encap(remote, vni, frame, tagged, counters);
                    }
                    self.flood_evpn(vni, frame, tagged, counters);
                }
            }
        }
        accepted
    }

    fn readiness_fd(&self) -> Option<RawFd> {
        None
    }

    fn tick(&mut self, now: Duration, _counters: &mut PortCounters) {
        self.now = now;
        self.send_due_requests(now);
        if now.saturating_sub(self.last_sweep) >= Duration::from_secs(1) {
            self.last_sweep = now;
            self.macs.retain(|_, e| {
                e.is_static || e.from_evpn || now.saturating_sub(e.last_seen) < REMOTE_MAC_AGING
            });
        }
    }

    fn details(&self) -> Option<serde_json::Value> {
        Some(self.details_json())
    }

    fn tunnel_mut(&mut self) -> Option<&mut dyn Tunnel> {
        Some(self)
    }
}

impl Tunnel for VxlanPort {
    fn underlay(&self) -> &str {
        &self.cfg.underlay
    }

    fn offer_with_offload(
        &mut self,
        frame: &[u8],
        offload: &VnetHdr,
        now: Duration,
        counters: &mut PortCounters,
    ) -> bool {
        self.now = now;
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return false;
        };
        match eth.ethertype() {
            EtherType::Arp => self.handle_arp(eth.payload(), now),
            EtherType::Ipv4 if eth.dst() == self.cfg.mac => {
                let payload = eth.payload();
                // Only what is addressed to the VTEP's IP is the VTEP's.
                let for_us = payload.len() >= 20 && payload[16..20] == self.cfg.local.octets();
                if for_us {
                    self.decap(payload, offload, now, counters);
                }
                for_us
            }
            _ => false,
        }
    }

    fn outbound(&mut self) -> &mut Batch {
        &mut self.outbound
    }

    fn vni_of(&self, vlan: u16) -> Option<u32> {
        self.cfg.vni_of_vlan(vlan)
    }

    fn flood_remotes(&self, vlan: u16) -> Vec<Ipv4Addr> {
        let mut all = self.cfg.remotes.clone();
        if let Some(vni) = self.cfg.vni_of_vlan(vlan) {
            for v in self.evpn.flood_list(vni) {
                if !all.contains(&v) {
                    all.push(v);
                }
            }
        }
        all
    }

    fn evpn_topology(&self) -> Option<(Ipv4Addr, Vec<(u32, u16)>)> {
        Some((self.cfg.local, self.cfg.vnis.clone()))
    }

    fn evpn_apply(&mut self, op: &crate::evpn::TunnelOp) -> bool {
        self.apply_evpn(op)
    }

    fn set_learning(&mut self, on: bool) {
        self.learning = on;
    }

    fn evpn_clear(&mut self) {
        self.clear_evpn();
        self.evpn_marked = false;
    }

    fn evpn_mark(&mut self) -> bool {
        std::mem::replace(&mut self.evpn_marked, true)
    }

    fn remote_of(&self, vlan: u16, mac: MacAddr) -> Option<Ipv4Addr> {
        let vni = self.cfg.vni_of_vlan(vlan)?;
        self.macs.get(&(vni, mac)).map(|e| e.remote)
    }

    fn set_static_remote(&mut self, vlan: u16, mac: MacAddr, remote: Option<Ipv4Addr>) -> bool {
        let Some(vni) = self.cfg.vni_of_vlan(vlan) else {
            return false;
        };
        match remote {
            Some(remote) => {
                self.macs.insert(
                    (vni, mac),
                    RemoteMac {
                        remote,
                        last_seen: self.now,
                        is_static: true,
                        from_evpn: false,
                    },
                );
            }
            None => {
                self.macs.remove(&(vni, mac));
            }
        }
        true
    }
}

#[cfg(test)]
mod tests;
