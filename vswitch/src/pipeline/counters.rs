//! Per-port counters and drop reasons.
//!
//! The datapath owns every counter and writes it without locks; the control
//! thread reads copies (`PortCounters` is `Copy`) sent back in command
//! replies. A frame that vanishes without a counter here is a bug.

use serde::{Deserialize, Serialize};

macro_rules! drop_reasons {
    ($($variant:ident => $name:literal, $doc:literal;)*) => {
        /// Why a frame was dropped. Each reason has its own counter, named by
        /// `name()` in `vsctl stats` and metrics.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason {
            $(#[doc = $doc] $variant,)*
        }

        impl DropReason {
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];
            pub const COUNT: usize = Self::ALL.len();

            /// The stable name used in stats output and metrics.
            pub fn name(self) -> &'static str {
                match self {
                    $(DropReason::$variant => $name,)*
                }
            }

            pub fn from_name(name: &str) -> Option<DropReason> {
                match name {
                    $($name => Some(DropReason::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

drop_reasons! {
    RxTruncated => "rx_truncated", "Received frame larger than the port's receive buffer.";
    RxError => "rx_error", "The port's receive call failed with an error other than 'try again'.";
    RxRingFull => "rx_ring_full", "The kernel dropped a received frame because the port's receive ring was full (the datapath fell behind).";
    XdpRxDropped => "xdp_rx_dropped", "The kernel dropped a frame for an AF_XDP port: no free buffer on the fill ring, or larger than a UMEM frame.";
    Runt => "runt", "Frame shorter than an Ethernet header (or a truncated 802.1Q tag).";
    InvalidSourceMac => "invalid_src_mac", "Source MAC is multicast, broadcast or all-zero.";
    ReservedMulticast => "reserved_multicast", "Link-local frame (01:80:c2:00:00:0x: STP, LACP, 802.1X, LLDP) a bridge must not forward.";
    VlanTaggedOnAccess => "vlan_tagged_on_access", "Tagged frame (VID not 0) on an access port.";
    VlanNotAllowed => "vlan_not_allowed", "Tag of a VLAN the trunk port does not carry.";
    VlanUntaggedOnTrunk => "vlan_untagged_on_trunk", "Untagged frame on a trunk port without a native VLAN.";
    VlanDoubleTagged => "vlan_double_tagged", "A second VLAN tag under the one that placed the frame in a VLAN.";
    SrcMacNotAllowed => "src_mac_not_allowed", "Source MAC not in the port's allowed_macs.";
    PortMacLimit => "port_mac_limit", "New source MAC on a port that has taught the table its max_macs.";
    StormControl => "storm_control", "Flooded frame over the port's storm_pps limit.";
    EgressVlanFiltered => "vlan_egress_filtered", "Destination port does not carry the frame's VLAN.";
    VxlanBadHeader => "vxlan_bad_header", "Packet to the VTEP with a bad IPv4, UDP or VXLAN header (or a fragment).";
    VxlanWrongPort => "vxlan_wrong_port", "UDP packet to the VTEP on another port than its VXLAN port.";
    VxlanUnknownVni => "vxlan_unknown_vni", "VXLAN packet with a VNI the VTEP does not carry.";
    VxlanUnknownRemote => "vxlan_unknown_remote", "VXLAN packet from a VTEP not in the remote list.";
    VxlanInnerTagged => "vxlan_inner_tagged", "Decapsulated frame carrying its own VLAN tag (RFC 7348: discard), which could hop VNIs.";
    VxlanNoNeighbor => "vxlan_no_neighbor", "Next hop toward a remote VTEP not resolved by ARP yet.";
    VxlanNoRoute => "vxlan_no_route", "Remote VTEP off the local subnet and no gateway configured.";
    SamePort => "same_port", "Destination was learned on the port the frame came in on.";
    NoFloodPorts => "no_flood_ports", "Flooded frame had no other port in its bridge to go to.";
    OffloadInvalid => "offload_invalid", "Frame whose offload request (checksum or segmentation, from its virtio-net header) does not fit the frame.";
    OffloadUnsupported => "offload_unsupported", "Received frame asking for segmentation the switch cannot do or check (UDP fragmentation, or GSO of a tunnelled packet).";
    TxRingFull => "tx_ring_full", "The output port could not take the frame now (ring or socket buffer full).";
    TxError => "tx_error", "The output port's send call failed.";
    TxTooBig => "tx_too_big", "Frame larger than the output port can send.";
    BondNotCollecting => "bond_not_collecting", "Received on a bond member that may not pass frames up (LACP not collecting, or not the active member).";
    PortNotReady => "port_not_ready", "Sent to a port that cannot carry frames yet (a vhost-user port with no front end, or its queues not running).";
    VhostBadDescriptor => "vhost_bad_descriptor", "A vhost-user guest's buffer was outside its shared memory, of the wrong direction, or too short for a virtio-net header; the buffer goes back to the guest unused.";
    VhostRingError => "vhost_ring_error", "A vhost-user queue's ring was broken (its index jumped past the ring size, or the ring left the guest's memory): the connection is reset.";
    BondNoLink => "bond_no_link", "Sent to a bond with no member able to carry it (none distributing, or no active member).";
}

/// A copy of one port's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    drops: [u64; DropReason::COUNT],
}

// Arrays longer than 32 have no derived Default.
impl Default for PortCounters {
    fn default() -> Self {
        PortCounters {
            rx_packets: 0,
            rx_bytes: 0,
            tx_packets: 0,
            tx_bytes: 0,
            drops: [0; DropReason::COUNT],
        }
    }
}

impl PortCounters {
    #[inline]
    pub fn count_drop(&mut self, reason: DropReason) {
        self.drops[reason as usize] += 1;
    }

    #[inline]
    pub fn count_drops(&mut self, reason: DropReason, n: u64) {
        self.drops[reason as usize] += n;
    }

    #[inline]
    pub fn count_rx(&mut self, bytes: usize) {
        self.rx_packets += 1;
        self.rx_bytes += bytes as u64;
    }

    #[inline]
    pub fn count_tx(&mut self, bytes: usize) {
        self.tx_packets += 1;
        self.tx_bytes += bytes as u64;
    }

    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Every reason with its count, in declaration order.
    pub fn drop_list(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|r| (*r, self.drops[*r as usize]))
    }
}

/// Counters of one port as the control protocol reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStatsReport {
    pub bridge: String,
    pub port: String,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Every drop reason by name, zeros included, so scripts can rely on keys.
    pub drops: std::collections::BTreeMap<String, u64>,
}

impl PortStatsReport {
    pub fn new(bridge: &str, port: &str, c: &PortCounters) -> Self {
        PortStatsReport {
            bridge: bridge.to_string(),
            port: port.to_string(),
            rx_packets: c.rx_packets,
            rx_bytes: c.rx_bytes,
            tx_packets: c.tx_packets,
            tx_bytes: c.tx_bytes,
            drops: c
                .drop_list()
                .map(|(r, n)| (r.name().to_string(), n))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for r in DropReason::ALL {
            assert!(seen.insert(r.name()));
            assert_eq!(DropReason::from_name(r.name()), Some(*r));
        }
        assert_eq!(DropReason::from_name("nope"), None);
    }

    #[test]
    fn drops_add_up() {
        let mut c = PortCounters::default();
        c.count_drop(DropReason::Runt);
        c.count_drops(DropReason::TxRingFull, 3);
        assert_eq!(c.drops(DropReason::Runt), 1);
        assert_eq!(c.total_drops(), 4);
        let r = PortStatsReport::new("br0", "p1", &c);
        assert_eq!(r.drops["tx_ring_full"], 3);
        assert_eq!(r.drops.len(), DropReason::COUNT);
    }
}
