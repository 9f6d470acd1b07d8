//! Checksum and segmentation offloads, in software where a port cannot take
//! them.
//!
//! Hosts and VMs hand their NICs frames whose TCP/UDP checksum is left for
//! the NIC to fill in (checksum partial) and TCP/UDP frames of up to 64 KiB
//! for the NIC to cut into MSS-sized segments (GSO/TSO). Tap and AF_PACKET
//! ports read those requests from the virtio-net header (`VnetHdr`) and keep
//! them with the frame (`FrameMeta::offload`). An output port that can pass
//! them on (`OffloadCaps`) gets the frame as it is, so a TCP stream crosses
//! the switch as 64 KiB frames; for one that cannot (VXLAN, AF_XDP, a port
//! without a virtio-net header) the output stage finishes the checksum in
//! place (`finish_checksum`) or cuts the frame into finished segments
//! (`segment`). Received requests are checked first (`check_rx`), so a
//! request that does not match its frame is a counted drop, never a
//! malformed frame sent on.

use super::Batch;
use crate::pipeline::counters::DropReason;
use crate::wire::vnet::{GsoKind, UnsupportedGso, VnetHdr, F_UDP_TUNNEL};

/// The offload requests an output port passes on to its kernel side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OffloadCaps {
    pub csum: bool,
    pub tso4: bool,
    pub tso6: bool,
    pub uso: bool,
}

impl OffloadCaps {
    pub const NONE: OffloadCaps = OffloadCaps {
        csum: false,
        tso4: false,
        tso6: false,
        uso: false,
    };
    pub const ALL: OffloadCaps = OffloadCaps {
        csum: true,
        tso4: true,
        tso6: true,
        uso: true,
    };

    #[inline]
    pub fn any(&self) -> bool {
        self.csum
    }

    /// Whether a frame with these requests can go out as it is.
    #[inline]
    pub fn takes(&self, hdr: &VnetHdr) -> bool {
        if hdr.is_plain() {
            return true;
        }
        if !self.csum || hdr.is_udp_tunnel() {
            return false;
        }
        match hdr.gso() {
            Ok(None) => true,
            Ok(Some(GsoKind::TcpV4)) => self.tso4,
            Ok(Some(GsoKind::TcpV6)) => self.tso6,
            Ok(Some(GsoKind::UdpL4)) => self.uso,
            Err(UnsupportedGso) => false,
        }
    }
}

/// Segments one frame may be cut into; a request for more is refused (a
/// tiny `gso_size` would otherwise turn one frame into thousands).
const MAX_SEGMENTS: usize = 1024;

const ETH_HLEN: usize = 14;
const IPV6_HLEN: usize = 40;
const TCP: u8 = 6;
const UDP: u8 = 17;

/// Where the headers of a frame to segment are.
#[derive(Debug, Clone, Copy)]
struct Layout {
    l3: usize,
    l4: usize,
    /// End of the L4 header: where the payload starts.
    payload: usize,
    ipv6: bool,
    kind: GsoKind,
}

/// Checks received offload requests against the frame. Plain frames pass.
/// A GSO frame of a UDP-tunnelled packet (the kernel's VXLAN device sends
/// those) passes marked `F_UDP_TUNNEL`: a VTEP can decapsulate it into a
/// frame to check again; no port can take it as it is.
pub fn check_rx(frame: &[u8], hdr: &mut VnetHdr) -> Result<(), DropReason> {
    hdr.flags &= !F_UDP_TUNNEL;
    if hdr.is_plain() {
        return Ok(());
    }
    if hdr.needs_csum() {
        let field = usize::from(hdr.csum_start) + usize::from(hdr.csum_offset);
        if field + 2 > frame.len() {
            return Err(DropReason::OffloadInvalid);
        }
    }
    match hdr.gso() {
        Err(UnsupportedGso) => Err(DropReason::OffloadUnsupported),
        Ok(None) => Ok(()),
        Ok(Some(kind)) => {
            if !hdr.needs_csum() || hdr.gso_size == 0 {
                return Err(DropReason::OffloadInvalid);
            }
            let Some(layout) = layout(frame, hdr, kind) else {
                if udp_tunnel(frame, hdr) {
                    hdr.flags |= F_UDP_TUNNEL;
                    return Ok(());
                }
                return Err(DropReason::OffloadUnsupported);
            };
            let payload = frame.len() - layout.payload;
            if payload.div_ceil(usize::from(hdr.gso_size)) > MAX_SEGMENTS {
                return Err(DropReason::OffloadUnsupported);
            }
            Ok(())
        }
    }
}

/// Whether the L4 header `csum_start` points at lies beyond an outer IPv4
/// UDP header (a tunnelled packet).
fn udp_tunnel(frame: &[u8], hdr: &VnetHdr) -> bool {
    let (l3, ethertype) = match frame.get(12..14) {
        Some([0x81, 0x00]) => (18, frame.get(16..18)),
        _ => (ETH_HLEN, frame.get(12..14)),
    };
    let Some(ip) = frame.get(l3..l3 + 20) else {
        return false;
    };
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    ethertype == Some(&[0x08, 0x00])
        && ip[0] >> 4 == 4
        && ip[9] == UDP
        && usize::from(hdr.csum_start) >= l3 + ihl + 8
}

/// Finds the headers of a frame to segment: Ethernet (at most one VLAN
/// tag), IPv4 without options' surprises or IPv6, then the TCP or UDP
/// header that `csum_start` points at. `None` when the frame is not one the
/// switch can cut (a tunnelled packet, a fragment, headers that disagree
/// with the request).
fn layout(frame: &[u8], hdr: &VnetHdr, kind: GsoKind) -> Option<Layout> {
    let mut l3 = ETH_HLEN;
    let mut ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    if ethertype == 0x8100 || ethertype == 0x88a8 {
        l3 += 4;
        ethertype = u16::from_be_bytes([*frame.get(16)?, *frame.get(17)?]);
    }
    let l4 = usize::from(hdr.csum_start);
    let proto = if kind == GsoKind::UdpL4 { UDP } else { TCP };
    let ipv6 = match (ethertype, kind) {
        (0x0800, GsoKind::TcpV4 | GsoKind::UdpL4) => {
            let ip = frame.get(l3..l3 + 20)?;
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0;
            if ip[0] >> 4 != 4 || ihl < 20 || l3 + ihl != l4 || ip[9] != proto || fragment {
                return None;
            }
            false
        }
        (0x86dd, GsoKind::TcpV6 | GsoKind::UdpL4) => {
            let ip = frame.get(l3..l3 + IPV6_HLEN)?;
            // Extension headers are carried along unchanged; without them
            // the next header must be the L4 protocol itself.
            if ip[0] >> 4 != 6 || l4 < l3 + IPV6_HLEN || (l4 == l3 + IPV6_HLEN && ip[6] != proto) {
                return None;
            }
            true
        }
        _ => return None,
    };
    let (l4_len, csum_offset) = if proto == TCP {
        let doff = usize::from(*frame.get(l4 + 12)? >> 4) * 4;
        (doff, 16)
    } else {
        (8, 6)
    };
    if l4_len < 8 || usize::from(hdr.csum_offset) != csum_offset || l4 + l4_len > frame.len() {
        return None;
    }
    Some(Layout {
        l3,
        l4,
        payload: l4 + l4_len,
        ipv6,
        kind,
    })
}

/// Adds `data` to a ones'-complement sum as big-endian 32-bit words (which
/// folds to the same 16-bit sum as 16-bit words). `data` must start at an
/// even offset of the checksummed range; an odd tail is padded with zero.
#[inline]
fn add_bytes(mut acc: u64, data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    acc + u64::from(u32::from_be_bytes(tail))
}

#[inline]
fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum to store for a sum: its complement, with 0 sent as 0xffff
/// (the same value in ones' complement, and the only form UDP allows).
#[inline]
fn complement(acc: u64) -> [u8; 2] {
    let c = !fold(acc);
    if c == 0 { 0xffff_u16 } else { c }.to_be_bytes()
}

/// Computes the checksum a checksum-partial frame left undone: the sum over
/// `csum_start..` (whose checksum field holds the pseudo-header sum), stored
/// at `csum_start + csum_offset`. False (frame unchanged) if the offsets are
/// out of the frame.
pub fn finish_checksum(frame: &mut [u8], hdr: &VnetHdr) -> bool {
    let start = usize::from(hdr.csum_start);
    let field = start + usize::from(hdr.csum_offset);
    if field + 2 > frame.len() {
        return false;
    }
    let sum = complement(add_bytes(0, &frame[start..]));
    frame[field..field + 2].copy_from_slice(&sum);
    true
}

/// The pseudo-header sum of a segment's L4 header plus payload.
fn pseudo_header(seg: &[u8], at: &Layout, proto: u8) -> u64 {
    let l4_len = (seg.len() - at.l4) as u64;
    let addrs = if at.ipv6 {
        &seg[at.l3 + 8..at.l3 + 40]
    } else {
        &seg[at.l3 + 12..at.l3 + 20]
    };
    add_bytes(0, addrs) + u64::from(proto) + l4_len
}

/// Cuts a GSO frame into finished segments (every length, IPv4 id, TCP
/// sequence number, flag and checksum as the kernel would set them),
/// starting with segment `first`, into `out` until it is full. Returns the
/// next segment to cut when `out` filled up first, `None` when all are cut,
/// and `Err` for a frame `check_rx` would have refused.
pub fn segment(
    frame: &[u8],
    hdr: &VnetHdr,
    first: usize,
    out: &mut Batch,
) -> Result<Option<usize>, UnsupportedGso> {
    let kind = hdr.gso()?.ok_or(UnsupportedGso)?;
    let at = layout(frame, hdr, kind).ok_or(UnsupportedGso)?;
    let mss = usize::from(hdr.gso_size);
    if mss == 0 {
        return Err(UnsupportedGso);
    }
    let payload = frame.len() - at.payload;
    let segments = payload.div_ceil(mss).max(1);
    if segments > MAX_SEGMENTS {
        return Err(UnsupportedGso);
    }
    for k in first..segments {
        let Some(buf) = out.slot() else {
            return Ok(Some(k));
        };
        let from = at.payload + k * mss;
        let chunk = mss.min(frame.len() - from);
        let len = at.payload + chunk;
        let area = buf.rx_area();
        if len > area.len() {
            return Err(UnsupportedGso);
        }
        area[..at.payload].copy_from_slice(&frame[..at.payload]);
        area[at.payload..len].copy_from_slice(&frame[from..from + chunk]);
        fix_segment(&mut area[..len], &at, k, k + 1 == segments, mss);
        buf.set_len(len);
        out.commit();
    }
    Ok(None)
}

/// Rewrites the copied headers of segment `k` of a frame cut at `mss`.
fn fix_segment(seg: &mut [u8], at: &Layout, k: usize, last: bool, mss: usize) {
    let l3_len = seg.len() - at.l3;
    if at.ipv6 {
        let payload_len = (l3_len - IPV6_HLEN) as u16;
        seg[at.l3 + 4..at.l3 + 6].copy_from_slice(&payload_len.to_be_bytes());
    } else {
        let ip = &mut seg[at.l3..at.l4];
        ip[2..4].copy_from_slice(&(l3_len as u16).to_be_bytes());
        let id = u16::from_be_bytes([ip[4], ip[5]]).wrapping_add(k as u16);
        ip[4..6].copy_from_slice(&id.to_be_bytes());
        ip[10..12].copy_from_slice(&[0, 0]);
        let sum = crate::wire::ipv4::checksum(ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
    }
    let l4 = at.l4;
    let (proto, field) = match at.kind {
        GsoKind::TcpV4 | GsoKind::TcpV6 => {
            let seq = u32::from_be_bytes([seg[l4 + 4], seg[l4 + 5], seg[l4 + 6], seg[l4 + 7]])
                .wrapping_add((k * mss) as u32);
            seg[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
            const FIN: u8 = 0x01;
            const PSH: u8 = 0x08;
            const CWR: u8 = 0x80;
            if !last {
                seg[l4 + 13] &= !(FIN | PSH);
            }
            if k > 0 {
                seg[l4 + 13] &= !CWR;
            }
            (TCP, l4 + 16)
        }
        GsoKind::UdpL4 => {
            let udp_len = (seg.len() - l4) as u16;
            seg[l4 + 4..l4 + 6].copy_from_slice(&udp_len.to_be_bytes());
            (UDP, l4 + 6)
        }
    };
    seg[field..field + 2].copy_from_slice(&[0, 0]);
    let sum = add_bytes(pseudo_header(seg, at, proto), &seg[l4..]);
    seg[field..field + 2].copy_from_slice(&complement(sum));
}

#[cfg(test)]
mod tests;
