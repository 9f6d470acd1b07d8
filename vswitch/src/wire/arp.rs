//! ARP for IPv4 over Ethernet (RFC 826), as a VTEP uses it to resolve its
//! next hops and answer for its own address.
//!
//! ```text
//! +---------------+---------------+-------+-------+---------------+
//! | HTYPE (1)     | PTYPE (0x0800)| HLEN 6| PLEN 4| OPER (1 or 2) |
//! +---------------+---------------+-------+-------+---------------+
//! | sender MAC (6) | sender IP (4) | target MAC (6) | target IP (4)|
//! +----------------------------------------------------------------+
//! ```

use std::net::Ipv4Addr;

use super::MacAddr;

pub const PACKET_LEN: usize = 28;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOp {
    Request,
    Reply,
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    pub op: ArpOp,
    pub sender_mac: MacAddr,
    pub sender_ip: Ipv4Addr,
    pub target_mac: MacAddr,
    pub target_ip: Ipv4Addr,
}

impl ArpRepr {
    /// Parses an ARP payload; anything but Ethernet/IPv4 requests and
    /// replies is `None`.
    pub fn parse(bytes: &[u8]) -> Option<ArpRepr> {
        let b = bytes.get(..PACKET_LEN)?;
        if b[0..2] != [0, 1] || b[2..4] != [0x08, 0x00] || b[4] != 6 || b[5] != 4 {
            return None;
        }
        let op = match u16::from_be_bytes([b[6], b[7]]) {
            1 => ArpOp::Request,
            2 => ArpOp::Reply,
            _ => return None,
        };
        let ip = |at: usize| Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]);
        Some(ArpRepr {
            op,
            sender_mac: MacAddr::from_slice(&b[8..14])?,
            sender_ip: ip(14),
            target_mac: MacAddr::from_slice(&b[18..24])?,
            target_ip: ip(24),
        })
    }

    /// Writes the packet into `out[..28]`; false if `out` is shorter.
    pub fn emit(&self, out: &mut [u8]) -> bool {
        let Some(b) = out.get_mut(..PACKET_LEN) else {
            return false;
        };
        b[0..6].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
        let op: u16 = match self.op {
            ArpOp::Request => 1,
            ArpOp::Reply => 2,
        };
        b[6..8].copy_from_slice(&op.to_be_bytes());
        b[8..14].copy_from_slice(&self.sender_mac.0);
        b[14..18].copy_from_slice(&self.sender_ip.octets());
        b[18..24].copy_from_slice(&self.target_mac.0);
        b[24..28].copy_from_slice(&self.target_ip.octets());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request "who has 10.0.0.2? tell 10.0.0.1" as captured.
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 10, 0,
        0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2,
    ];

    #[test]
    fn round_trip() {
        let r = ArpRepr::parse(&REQUEST).unwrap();
        assert_eq!(r.op, ArpOp::Request);
        assert_eq!(r.sender_ip, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(r.target_ip, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(r.sender_mac, MacAddr([2, 0, 0, 0, 0, 1]));
        let mut out = [0u8; 28];
        assert!(r.emit(&mut out));
        assert_eq!(out, REQUEST);
        assert!(!r.emit(&mut out[..27]));
    }

    #[test]
    fn rejects_other_kinds() {
        assert!(ArpRepr::parse(&REQUEST[..27]).is_none());
        for (at, v) in [(1, 6), (3, 0xdd), (4, 8), (5, 16), (7, 3)] {
            let mut b = REQUEST;
            b[at] = v;
            assert!(ArpRepr::parse(&b).is_none(), "byte {at} = {v}");
        }
    }
}
