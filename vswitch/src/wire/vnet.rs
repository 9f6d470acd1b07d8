//! The virtio-net header (`struct virtio_net_hdr`, 10 bytes) that the kernel
//! puts in front of frames on a tap opened with IFF_VNET_HDR and on a packet
//! socket with PACKET_VNET_HDR. It carries the two offload requests the
//! sender left for someone else to do: finish the L4 checksum (checksum
//! partial), and cut one large TCP/UDP frame into MSS-sized segments (GSO).
//!
//! Legacy virtio byte order: the host's own (both the tap and the packet
//! socket use it unless told otherwise).

/// Bytes of the header on the wire.
pub const VNET_HDR_LEN: usize = 10;

/// `flags`: the L4 checksum must be computed over `csum_start..` and stored
/// at `csum_start + csum_offset`; the field holds the pseudo-header sum.
pub const F_NEEDS_CSUM: u8 = 1;
/// `flags`: the receiver already verified the checksum.
pub const F_DATA_VALID: u8 = 2;
/// `flags`, the switch's own (never on the wire): a GSO frame of a
/// UDP-tunnelled (VXLAN) packet, whose segmentation request concerns the
/// inner packet. Only decapsulation makes it a frame that can be cut or
/// passed on.
pub const F_UDP_TUNNEL: u8 = 0x80;

/// `gso_type` values.
pub const GSO_NONE: u8 = 0;
pub const GSO_TCPV4: u8 = 1;
/// UDP fragmentation offload (IP fragments): never produced for us, refused.
pub const GSO_UDP: u8 = 3;
pub const GSO_TCPV6: u8 = 4;
/// UDP segmentation (each segment a datagram of `gso_size` bytes).
pub const GSO_UDP_L4: u8 = 5;
/// Bit or'ed into the TCP types: the segments carry ECN (CWR only on the
/// first).
pub const GSO_ECN: u8 = 0x80;

/// The kinds of segmentation the switch knows how to do or pass on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GsoKind {
    TcpV4,
    TcpV6,
    UdpL4,
}

/// A segmentation request the switch does not carry out or pass on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnsupportedGso;

/// One frame's offload requests, as decoded from (or encoded into) a
/// virtio-net header. All-zero means a plain frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    /// Length of the headers (Ethernet to L4), a hint.
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    /// Where the L4 checksum coverage starts, from the frame's first byte.
    pub csum_start: u16,
    /// Where the checksum field is, from `csum_start`.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Decodes the first `VNET_HDR_LEN` bytes of `bytes`.
    pub fn parse(bytes: &[u8]) -> Option<VnetHdr> {
        let b: &[u8; VNET_HDR_LEN] = bytes.get(..VNET_HDR_LEN)?.try_into().ok()?;
        let u16_at = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        Some(VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        })
    }

    /// The header's wire bytes.
    pub fn to_bytes(&self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }

    #[inline]
    pub fn is_plain(&self) -> bool {
        self.flags & F_NEEDS_CSUM == 0 && self.gso_type == GSO_NONE
    }

    #[inline]
    pub fn needs_csum(&self) -> bool {
        self.flags & F_NEEDS_CSUM != 0
    }

    #[inline]
    pub fn is_gso(&self) -> bool {
        self.gso_type != GSO_NONE
    }

    /// The segmentation asked for; `Err` for a type the switch does not
    /// do (UFO, unknown codes).
    pub fn gso(&self) -> Result<Option<GsoKind>, UnsupportedGso> {
        match self.gso_type & !GSO_ECN {
            GSO_NONE if self.gso_type == GSO_NONE => Ok(None),
            GSO_TCPV4 => Ok(Some(GsoKind::TcpV4)),
            GSO_TCPV6 => Ok(Some(GsoKind::TcpV6)),
            GSO_UDP_L4 if self.gso_type == GSO_UDP_L4 => Ok(Some(GsoKind::UdpL4)),
            _ => Err(UnsupportedGso),
        }
    }

    /// A GSO frame of a UDP-tunnelled packet (see `F_UDP_TUNNEL`).
    #[inline]
    pub fn is_udp_tunnel(&self) -> bool {
        self.flags & F_UDP_TUNNEL != 0
    }

    /// What a sender may pass on: the requests alone, without DATA_VALID
    /// (a statement about our receive side that means nothing on output)
    /// or the switch's own flags.
    #[inline]
    pub fn for_tx(&self) -> VnetHdr {
        VnetHdr {
            flags: self.flags & F_NEEDS_CSUM,
            ..*self
        }
    }

    /// Moves the offsets after `n` bytes were inserted (`grow`) or removed
    /// at `offset` of the frame, if that was in front of the L4 header.
    #[inline]
    pub fn shift(&mut self, offset: usize, n: usize, grow: bool) {
        if self.is_plain() || offset > usize::from(self.csum_start) {
            return;
        }
        let n = n as u16;
        if grow {
            self.csum_start = self.csum_start.wrapping_add(n);
            self.hdr_len = self.hdr_len.wrapping_add(n);
        } else {
            self.csum_start = self.csum_start.wrapping_sub(n);
            self.hdr_len = self.hdr_len.saturating_sub(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4 | GSO_ECN,
            hdr_len: 66,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        assert_eq!(VnetHdr::parse(&h.to_bytes()), Some(h));
        assert_eq!(VnetHdr::parse(&[0; 9]), None);
        assert!(VnetHdr::default().is_plain());
        assert_eq!(h.gso(), Ok(Some(GsoKind::TcpV4)));
    }

    #[test]
    fn unsupported_segmentation_is_refused() {
        for t in [GSO_UDP, GSO_UDP_L4 | GSO_ECN, 2, 6, 0x7f, GSO_ECN] {
            let h = VnetHdr {
                gso_type: t,
                ..VnetHdr::default()
            };
            assert_eq!(h.gso(), Err(UnsupportedGso), "type {t}");
        }
    }

    #[test]
    fn offsets_follow_tag_changes() {
        let mut h = VnetHdr {
            flags: F_NEEDS_CSUM | F_DATA_VALID,
            csum_start: 38,
            csum_offset: 16,
            hdr_len: 70,
            ..VnetHdr::default()
        };
        h.shift(12, 4, false);
        assert_eq!((h.csum_start, h.hdr_len), (34, 66));
        h.shift(12, 4, true);
        assert_eq!((h.csum_start, h.hdr_len), (38, 70));
        // Changes behind the L4 header move nothing.
        h.shift(50, 4, true);
        assert_eq!(h.csum_start, 38);
        assert_eq!(h.for_tx().flags, F_NEEDS_CSUM);
    }
}
