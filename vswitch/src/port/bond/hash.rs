//! Flow hashes that pick a bond member for each transmitted frame, so one
//! flow always leaves on one link (no reordering) while many flows spread.
//!
//! - `l2`: source and destination MAC and the outer VLAN ID.
//! - `l23`: `l2` plus the IPv4/IPv6 source and destination addresses.
//! - `l34`: the IP addresses plus the TCP/UDP ports (like Linux's
//!   layer3+4): flows between the same two hosts spread by port. Every
//!   fragment of a datagram (the first one too) hashes by the addresses
//!   alone, so all its fragments take one link. Frames that are not IP
//!   fall back to `l2`.
//!
//! Frames are parsed with etherparse's lax slicer (no copy, no allocation;
//! a cut-off payload still yields its headers). The hash is FNV-1a with a
//! final avalanche: cheap, deterministic across restarts and between the
//! two ends, and good enough to spread a handful of links.

use etherparse::{LaxNetSlice, LaxSlicedPacket, TransportSlice, VlanSlice};

/// Which headers a flow is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashPolicy {
    L2,
    L23,
    L34,
}

impl HashPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            HashPolicy::L2 => "l2",
            HashPolicy::L23 => "l23",
            HashPolicy::L34 => "l34",
        }
    }
}

impl std::str::FromStr for HashPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "l2" => Ok(HashPolicy::L2),
            "l23" => Ok(HashPolicy::L23),
            "l34" => Ok(HashPolicy::L34),
            other => Err(format!("hash={other:?}: expected l2, l23 or l34")),
        }
    }
}

struct Fnv(u32);

impl Fnv {
    const BASIS: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;

    #[inline]
    fn bytes(&mut self, b: &[u8]) {
        for x in b {
            self.0 = (self.0 ^ u32::from(*x)).wrapping_mul(Self::PRIME);
        }
    }

    /// Mixes the high bits down, so `hash % n` uses all of them.
    #[inline]
    fn finish(self) -> u32 {
        let mut h = self.0;
        h ^= h >> 16;
        h = h.wrapping_mul(0x7feb_352d);
        h ^= h >> 15;
        h
    }
}

/// The flow hash of `frame` under `policy`.
#[inline]
pub fn flow_hash(frame: &[u8], policy: HashPolicy) -> u32 {
    let mut h = Fnv(Fnv::BASIS);
    let Ok(p) = LaxSlicedPacket::from_ethernet(frame) else {
        // Shorter than an Ethernet header: whatever bytes there are.
        h.bytes(frame);
        return h.finish();
    };
    let l2 = |h: &mut Fnv| {
        h.bytes(&frame[..12.min(frame.len())]);
        let vid = match &p.vlan {
            Some(VlanSlice::SingleVlan(v)) => v.vlan_identifier().value(),
            Some(VlanSlice::DoubleVlan(v)) => v.outer().vlan_identifier().value(),
            None => 0,
        };
        h.bytes(&vid.to_be_bytes());
    };
    let ip = match &p.net {
        Some(LaxNetSlice::Ipv4(v4)) => {
            let hdr = v4.header();
            h.bytes(&hdr.source());
            h.bytes(&hdr.destination());
            true
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            let hdr = v6.header();
            h.bytes(&hdr.source());
            h.bytes(&hdr.destination());
            true
        }
        None => false,
    };
    match policy {
        HashPolicy::L2 => {
            h = Fnv(Fnv::BASIS);
            l2(&mut h);
        }
        HashPolicy::L23 => l2(&mut h),
        HashPolicy::L34 if !ip => l2(&mut h),
        HashPolicy::L34 => {
            let ports = match &p.transport {
                Some(TransportSlice::Tcp(t)) => Some((t.source_port(), t.destination_port())),
                Some(TransportSlice::Udp(u)) => Some((u.source_port(), u.destination_port())),
                _ => None,
            };
            if let Some((s, d)) = ports {
                h.bytes(&s.to_be_bytes());
                h.bytes(&d.to_be_bytes());
            }
        }
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    const A: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const FIXED: u32 = 1_193_413_705;

    fn udp(src_mac: [u8; 6], src_ip: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(src_mac, B)
            .ipv4(src_ip, [10, 0, 0, 2], 64)
            .udp(sport, dport);
        let mut out = Vec::new();
        b.write(&mut out, &[0u8; 20]).unwrap();
        out
    }

    fn tcp6(sport: u16) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(A, B)
            .ipv6([1; 16], [2; 16], 64)
            .tcp(sport, 80, 1, 1000);
        let mut out = Vec::new();
        b.write(&mut out, &[0u8; 10]).unwrap();
        out
    }

    /// How many of `n` buckets `frames` land in.
    fn buckets(frames: &[Vec<u8>], policy: HashPolicy, n: u32) -> usize {
        let mut used = std::collections::HashSet::new();
        for f in frames {
            used.insert(flow_hash(f, policy) % n);
        }
        used.len()
    }

    #[test]
    fn one_flow_one_hash() {
        let f = udp(A, [10, 0, 0, 1], 1000, 53);
        for p in [HashPolicy::L2, HashPolicy::L23, HashPolicy::L34] {
            assert_eq!(flow_hash(&f, p), flow_hash(&f.clone(), p));
        }
        // The payload does not matter.
        let mut g = f.clone();
        let last = g.len() - 1;
        g[last] = 0x55;
        assert_eq!(
            flow_hash(&f, HashPolicy::L34),
            flow_hash(&g, HashPolicy::L34)
        );
        // A fixed value: the hash must not change between builds.
        assert_eq!(flow_hash(&f, HashPolicy::L34), FIXED);
    }

    #[test]
    fn policies_see_what_they_should() {
        let base = udp(A, [10, 0, 0, 1], 1000, 53);
        let other_port = udp(A, [10, 0, 0, 1], 1001, 53);
        let other_ip = udp(A, [10, 0, 0, 9], 1000, 53);
        let other_mac = udp([2, 0, 0, 0, 0, 9], [10, 0, 0, 1], 1000, 53);
        let h = |f: &[u8], p| flow_hash(f, p);
        assert_eq!(h(&base, HashPolicy::L2), h(&other_port, HashPolicy::L2));
        assert_eq!(h(&base, HashPolicy::L2), h(&other_ip, HashPolicy::L2));
        assert_ne!(h(&base, HashPolicy::L2), h(&other_mac, HashPolicy::L2));
        assert_eq!(h(&base, HashPolicy::L23), h(&other_port, HashPolicy::L23));
        assert_ne!(h(&base, HashPolicy::L23), h(&other_ip, HashPolicy::L23));
        assert_ne!(h(&base, HashPolicy::L34), h(&other_port, HashPolicy::L34));
        assert_ne!(h(&base, HashPolicy::L34), h(&other_ip, HashPolicy::L34));
        assert_eq!(h(&base, HashPolicy::L34), h(&other_mac, HashPolicy::L34));
        assert_ne!(h(&tcp6(1), HashPolicy::L34), h(&tcp6(2), HashPolicy::L34));
    }

    #[test]
    fn flows_spread_over_links() {
        let by_port: Vec<Vec<u8>> = (0..64)
            .map(|p| udp(A, [10, 0, 0, 1], 5000 + p, 53))
            .collect();
        assert_eq!(buckets(&by_port, HashPolicy::L34, 2), 2);
        assert!(buckets(&by_port, HashPolicy::L34, 4) >= 4);
        assert_eq!(buckets(&by_port, HashPolicy::L2, 4), 1);
        let by_mac: Vec<Vec<u8>> = (0..64u8)
            .map(|m| udp([2, 0, 0, 0, 1, m], [10, 0, 0, 1], 1, 2))
            .collect();
        assert_eq!(buckets(&by_mac, HashPolicy::L2, 2), 2);
        assert!(buckets(&by_mac, HashPolicy::L2, 8) >= 7);
    }

    #[test]
    fn non_ip_and_fragments_and_garbage() {
        // ARP hashes by MACs under every policy.
        let mut arp = vec![0u8; 42];
        arp[..6].copy_from_slice(&B);
        arp[6..12].copy_from_slice(&A);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        let l2 = flow_hash(&arp, HashPolicy::L2);
        assert_eq!(
            flow_hash(&arp, HashPolicy::L34),
            flow_hash(&arp, HashPolicy::L23)
        );
        assert_ne!(l2, 0);
        // A non-first fragment has no ports: it hashes by addresses, like
        // a first fragment does.
        let mut first = udp(A, [10, 0, 0, 1], 1000, 53);
        first[20] = 0x20; // MF
        let mut later = first.clone();
        later[20] = 0x00;
        later[21] = 0x10; // offset 16 * 8
        assert_eq!(
            flow_hash(&first, HashPolicy::L34),
            flow_hash(&later, HashPolicy::L34)
        );
        for n in 0..60 {
            let _ = flow_hash(&first[..n.min(first.len())], HashPolicy::L34);
            let _ = flow_hash(&tcp6(7)[..n], HashPolicy::L34);
        }
    }
}
