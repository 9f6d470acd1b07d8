//! IPv4 and UDP headers: just what a VXLAN tunnel endpoint needs to read
//! and write outer headers.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version|  IHL  |    DSCP/ECN   |          Total Length         |
//! |         Identification        |Flags|     Fragment Offset     |
//! |  Time to Live |    Protocol   |         Header Checksum       |
//! |                       Source Address                          |
//! |                    Destination Address                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Source Port          |       Destination Port        |
//! |            Length             |           Checksum            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use std::net::Ipv4Addr;

use super::WireError;

pub const HEADER_LEN: usize = 20;
pub const UDP_HEADER_LEN: usize = 8;
pub const PROTO_UDP: u8 = 17;

/// The parts of an IPv4 header a VTEP reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Header {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    /// Header length in bytes (IHL * 4).
    pub header_len: usize,
    /// Total length from the header.
    pub total_len: usize,
    /// More-fragments flag or a non-zero offset: a fragment.
    pub is_fragment: bool,
}

/// Why an IPv4 packet was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv4Error {
    Truncated,
    NotVersion4,
    BadHeaderLength,
    BadChecksum,
}

impl Ipv4Header {
    /// Parses and checks an IPv4 header (version, lengths, checksum).
    pub fn parse(bytes: &[u8]) -> Result<Ipv4Header, Ipv4Error> {
        if bytes.len() < HEADER_LEN {
            return Err(Ipv4Error::Truncated);
        }
        if bytes[0] >> 4 != 4 {
            return Err(Ipv4Error::NotVersion4);
        }
        let header_len = usize::from(bytes[0] & 0x0f) * 4;
        let total_len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
        if header_len < HEADER_LEN || header_len > total_len {
            return Err(Ipv4Error::BadHeaderLength);
        }
        if bytes.len() < header_len || bytes.len() < total_len {
            return Err(Ipv4Error::Truncated);
        }
        if checksum(&bytes[..header_len]) != 0 {
            return Err(Ipv4Error::BadChecksum);
        }
        let frag = u16::from_be_bytes([bytes[6], bytes[7]]);
        Ok(Ipv4Header {
            src: Ipv4Addr::new(bytes[12], bytes[13], bytes[14], bytes[15]),
            dst: Ipv4Addr::new(bytes[16], bytes[17], bytes[18], bytes[19]),
            protocol: bytes[9],
            header_len,
            total_len,
            is_fragment: frag & 0x3fff != 0,
        })
    }
}

/// The Internet checksum (RFC 1071) of `data`: 0 over a header that
/// carries a correct checksum.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Writes an IPv4 + UDP header pair (no options, DF set, TTL 64, UDP
/// checksum 0 as RFC 7348 allows over IPv4) for `payload_len` bytes of UDP
/// payload into `out[..28]`.
pub fn emit_udp(
    out: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    src_port: u16,
    dst_port: u16,
    payload_len: usize,
) -> Result<(), WireError> {
    let needed = HEADER_LEN + UDP_HEADER_LEN;
    if out.len() < needed {
        return Err(WireError::Truncated {
            needed,
            have: out.len(),
        });
    }
    let udp_len = UDP_HEADER_LEN + payload_len;
    let total = HEADER_LEN + udp_len;
    let (total, udp_len) = match (u16::try_from(total), u16::try_from(udp_len)) {
        (Ok(t), Ok(u)) => (t, u),
        _ => {
            return Err(WireError::Truncated {
                needed: total,
                have: usize::from(u16::MAX),
            })
        }
    };
    let ip = &mut out[..HEADER_LEN];
    ip[0] = 0x45;
    ip[1] = 0;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[4..6].copy_from_slice(&[0, 0]);
    ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = PROTO_UDP;
    ip[10..12].copy_from_slice(&[0, 0]);
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let sum = checksum(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let udp = &mut out[HEADER_LEN..needed];
    udp[0..2].copy_from_slice(&src_port.to_be_bytes());
    udp[2..4].copy_from_slice(&dst_port.to_be_bytes());
    udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]);
    Ok(())
}

/// The parts of a UDP header a VTEP reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpHeader {
    pub src_port: u16,
    pub dst_port: u16,
    /// Length from the header (header included).
    pub len: usize,
}

impl UdpHeader {
    pub fn parse(bytes: &[u8]) -> Option<UdpHeader> {
        let h = bytes.get(..UDP_HEADER_LEN)?;
        let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
        if len < UDP_HEADER_LEN || len > bytes.len() {
            return None;
        }
        Some(UdpHeader {
            src_port: u16::from_be_bytes([h[0], h[1]]),
            dst_port: u16::from_be_bytes([h[2], h[3]]),
            len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header from RFC 1071-style worked examples: 45 00 00 73 00 00 40 00
    /// 40 11 b8 61 c0 a8 00 01 c0 a8 00 c7.
    const HDR: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    #[test]
    fn parses_a_known_header() {
        let mut pkt = HDR.to_vec();
        pkt.resize(0x73, 0);
        let h = Ipv4Header::parse(&pkt).unwrap();
        assert_eq!(h.src, Ipv4Addr::new(192, 168, 0, 1));
        assert_eq!(h.dst, Ipv4Addr::new(192, 168, 0, 199));
        assert_eq!((h.protocol, h.header_len, h.total_len), (17, 20, 0x73));
        assert!(!h.is_fragment);
    }

    #[test]
    fn rejects_bad_headers() {
        let mut pkt = HDR.to_vec();
        pkt.resize(0x73, 0);
        assert_eq!(Ipv4Header::parse(&pkt[..19]), Err(Ipv4Error::Truncated));
        assert_eq!(Ipv4Header::parse(&pkt[..0x72]), Err(Ipv4Error::Truncated));
        let mut v6 = pkt.clone();
        v6[0] = 0x65;
        assert_eq!(Ipv4Header::parse(&v6), Err(Ipv4Error::NotVersion4));
        let mut ihl = pkt.clone();
        ihl[0] = 0x44;
        assert_eq!(Ipv4Header::parse(&ihl), Err(Ipv4Error::BadHeaderLength));
        let mut sum = pkt.clone();
        sum[11] ^= 1;
        assert_eq!(Ipv4Header::parse(&sum), Err(Ipv4Error::BadChecksum));
    }

    #[test]
    fn emitted_headers_parse_back() {
        let mut out = [0u8; 28 + 10];
        let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        emit_udp(&mut out, a, b, 49152, 4789, 10).unwrap();
        let ip = Ipv4Header::parse(&out).unwrap();
        assert_eq!((ip.src, ip.dst, ip.total_len, ip.protocol), (a, b, 38, 17));
        let udp = UdpHeader::parse(&out[20..]).unwrap();
        assert_eq!((udp.src_port, udp.dst_port, udp.len), (49152, 4789, 18));
        assert!(emit_udp(&mut out[..27], a, b, 1, 2, 0).is_err());
        assert!(emit_udp(&mut [0u8; 64], a, b, 1, 2, 70_000).is_err());
    }

    #[test]
    fn udp_lengths_are_checked() {
        assert!(UdpHeader::parse(&[0; 7]).is_none());
        assert!(UdpHeader::parse(&[0, 1, 0, 2, 0, 7, 0, 0]).is_none());
        assert!(UdpHeader::parse(&[0, 1, 0, 2, 0, 9, 0, 0]).is_none());
        assert!(UdpHeader::parse(&[0, 1, 0, 2, 0, 8, 0, 0]).is_some());
    }
}
