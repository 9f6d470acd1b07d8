//! virtio-net feature bits (virtio 1.2, 5.1.3) and what the switch offers.

use crate::packet::offload::OffloadCaps;

pub const NET_F_CSUM: u32 = 0;
pub const NET_F_GUEST_CSUM: u32 = 1;
pub const NET_F_MAC: u32 = 5;
pub const NET_F_GUEST_TSO4: u32 = 7;
pub const NET_F_GUEST_TSO6: u32 = 8;
pub const NET_F_GUEST_ECN: u32 = 9;
pub const NET_F_HOST_TSO4: u32 = 11;
pub const NET_F_HOST_TSO6: u32 = 12;
pub const NET_F_HOST_ECN: u32 = 13;
pub const NET_F_MRG_RXBUF: u32 = 15;
pub const NET_F_STATUS: u32 = 16;
pub const NET_F_MQ: u32 = 22;
pub const RING_F_INDIRECT_DESC: u32 = 28;
pub const RING_F_EVENT_IDX: u32 = 29;
pub const VHOST_USER_F_PROTOCOL_FEATURES: u32 = 30;
pub const F_VERSION_1: u32 = 32;
pub const F_RING_PACKED: u32 = 34;

/// `status` field of the configuration space: the link is up.
pub const NET_S_LINK_UP: u16 = 1;

/// Names for `vsctl port show`, in bit order.
const NAMES: &[(u32, &str)] = &[
    (NET_F_CSUM, "CSUM"),
    (NET_F_GUEST_CSUM, "GUEST_CSUM"),
    (NET_F_MAC, "MAC"),
    (NET_F_GUEST_TSO4, "GUEST_TSO4"),
    (NET_F_GUEST_TSO6, "GUEST_TSO6"),
    (NET_F_GUEST_ECN, "GUEST_ECN"),
    (NET_F_HOST_TSO4, "HOST_TSO4"),
    (NET_F_HOST_TSO6, "HOST_TSO6"),
    (NET_F_HOST_ECN, "HOST_ECN"),
    (NET_F_MRG_RXBUF, "MRG_RXBUF"),
    (NET_F_STATUS, "STATUS"),
    (NET_F_MQ, "MQ"),
    (RING_F_INDIRECT_DESC, "INDIRECT_DESC"),
    (RING_F_EVENT_IDX, "EVENT_IDX"),
    (VHOST_USER_F_PROTOCOL_FEATURES, "PROTOCOL_FEATURES"),
    (F_VERSION_1, "VERSION_1"),
    (F_RING_PACKED, "RING_PACKED"),
];

const fn bit(n: u32) -> u64 {
    1 << n
}

/// What the switch offers a front end. Packed rings are not offered: a
/// front end asking for them (virtio-user `packed_vq=1`) falls back to split
/// rings. MQ only with more than one queue pair; MAC (read through the
/// configuration space) only when the port has one set.
pub fn offered(queue_pairs: u16, has_mac: bool) -> u64 {
    let mut bits = bit(F_VERSION_1)
        | bit(VHOST_USER_F_PROTOCOL_FEATURES)
        | bit(RING_F_EVENT_IDX)
        | bit(RING_F_INDIRECT_DESC)
        | bit(NET_F_MRG_RXBUF)
        | bit(NET_F_CSUM)
        | bit(NET_F_GUEST_CSUM)
        | bit(NET_F_HOST_TSO4)
        | bit(NET_F_HOST_TSO6)
        | bit(NET_F_HOST_ECN)
        | bit(NET_F_GUEST_TSO4)
        | bit(NET_F_GUEST_TSO6)
        | bit(NET_F_GUEST_ECN)
        | bit(NET_F_STATUS);
    if queue_pairs > 1 {
        bits |= bit(NET_F_MQ);
    }
    if has_mac {
        bits |= bit(NET_F_MAC);
    }
    bits
}

/// A negotiated feature set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features(pub u64);

impl Features {
    #[inline]
    pub fn has(self, feature: u32) -> bool {
        self.0 & bit(feature) != 0
    }

    /// Length of the virtio_net_hdr on both queues: 12 bytes (with
    /// `num_buffers`) under VERSION_1 or MRG_RXBUF, else 10.
    #[inline]
    pub fn header_len(self) -> usize {
        if self.has(F_VERSION_1) || self.has(NET_F_MRG_RXBUF) {
            12
        } else {
            10
        }
    }

    /// The offload requests the guest takes on frames sent to it.
    pub fn guest_caps(self) -> OffloadCaps {
        let csum = self.has(NET_F_GUEST_CSUM);
        OffloadCaps {
            csum,
            tso4: csum && self.has(NET_F_GUEST_TSO4),
            tso6: csum && self.has(NET_F_GUEST_TSO6),
            uso: false,
        }
    }

    /// Whether the guest may send frames with these requests.
    pub fn host_caps(self) -> OffloadCaps {
        let csum = self.has(NET_F_CSUM);
        OffloadCaps {
            csum,
            tso4: csum && self.has(NET_F_HOST_TSO4),
            tso6: csum && self.has(NET_F_HOST_TSO6),
            uso: false,
        }
    }

    pub fn names(self) -> Vec<&'static str> {
        NAMES
            .iter()
            .filter(|(b, _)| self.has(*b))
            .map(|(_, n)| *n)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_length_follows_the_version() {
        assert_eq!(Features(0).header_len(), 10);
        assert_eq!(Features(bit(F_VERSION_1)).header_len(), 12);
        assert_eq!(Features(bit(NET_F_MRG_RXBUF)).header_len(), 12);
    }

    #[test]
    fn offers_no_packed_rings_and_mq_only_with_queues() {
        let one = Features(offered(1, false));
        assert!(!one.has(F_RING_PACKED) && !one.has(NET_F_MQ) && !one.has(NET_F_MAC));
        assert!(Features(offered(4, true)).has(NET_F_MQ));
        assert!(Features(offered(1, true)).has(NET_F_MAC));
    }

    #[test]
    fn offload_caps_need_the_checksum_feature() {
        let tso_only = Features(bit(NET_F_GUEST_TSO4) | bit(NET_F_HOST_TSO4));
        assert_eq!(tso_only.guest_caps(), OffloadCaps::NONE);
        assert_eq!(tso_only.host_caps(), OffloadCaps::NONE);
        let all = Features(offered(1, false));
        assert!(all.guest_caps().tso4 && all.guest_caps().tso6 && all.guest_caps().csum);
        assert_eq!(all.names()[..3], ["CSUM", "GUEST_CSUM", "GUEST_TSO4"]);
    }
}
