//! Finishing the L4 checksums of frames that left their sender with
//! checksum offload (CHECKSUM_PARTIAL).
//!
//! A host behind a veth (or a tap) that offloads its tx checksum hands the
//! kernel TCP and UDP packets whose checksum field holds only the sum of the
//! pseudo-header (folded, not complemented: `~csum_tcpudp_magic(..., 0)`),
//! expecting the device to finish the job. An AF_XDP socket receives such a
//! frame as bare bytes, with no metadata saying the checksum is unfinished;
//! sent on as it is, the receiver drops it as corrupt, and TCP stalls.
//!
//! `repair` recognises the case cheaply: it computes the pseudo-header sum
//! and compares it with the field. Only on a match does it checksum the
//! whole segment, exactly as the kernel's `skb_checksum_help` would: the
//! ones' complement sum of the segment with the field as it is (which adds
//! in the pseudo-header sum already there), complemented, 0 sent as 0xffff.
//! A frame whose correct checksum happens to equal its pseudo-header sum
//! (1 in 65536) gets the same value written back.
//!
//! Frames it understands: Ethernet, optionally one 802.1Q tag, then IPv4
//! (not a fragment) or IPv6 (TCP or UDP as the first next header) carrying
//! TCP or UDP. Everything else, and every frame whose lengths do not add
//! up, is left untouched.

const ETH_HLEN: usize = 14;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const TCP_CSUM_OFFSET: usize = 16;
const UDP_CSUM_OFFSET: usize = 6;

/// Ones' complement sum of `bytes` as big-endian 16-bit words (an odd last
/// byte padded with zero), added to `acc`, not folded.
#[inline]
fn sum_words(bytes: &[u8], mut acc: u64) -> u64 {
    let mut chunks = bytes.chunks_exact(4);
    for c in &mut chunks {
        acc += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    }
    let rest = chunks.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    acc + u64::from(u32::from_be_bytes(tail))
}

/// Folds a sum to 16 bits with end-around carry.
#[inline]
fn fold(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[inline]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Where the L4 segment of a frame is and what its pseudo-header sums to.
struct Segment {
    start: usize,
    len: usize,
    proto: u8,
    pseudo: u64,
}

fn segment(frame: &[u8]) -> Option<Segment> {
    let mut l3 = ETH_HLEN;
    let mut ethertype = be16(frame, 12)?;
    if ethertype == ETHERTYPE_VLAN {
        ethertype = be16(frame, 16)?;
        l3 += 4;
    }
    let ip = frame.get(l3..)?;
    match ethertype {
        ETHERTYPE_IPV4 => {
            let first = *ip.first()?;
            let ihl = usize::from(first & 0x0f) * 4;
            let total = usize::from(be16(ip, 2)?);
            let frag = be16(ip, 6)?;
            let proto = *ip.get(9)?;
            // Version 4, header fits, not a fragment (MF or an offset).
            if first >> 4 != 4 || ihl < 20 || total < ihl || total > ip.len() || frag & 0x3fff != 0
            {
                return None;
            }
            let len = total - ihl;
            let pseudo = sum_words(&ip[12..20], u64::from(proto) + len as u64);
            Some(Segment {
                start: l3 + ihl,
                len,
                proto,
                pseudo,
            })
        }
        ETHERTYPE_IPV6 => {
            if ip.len() < 40 || ip[0] >> 4 != 6 {
                return None;
            }
            let len = usize::from(be16(ip, 4)?);
            let proto = ip[6];
            if 40 + len > ip.len() {
                return None;
            }
            let pseudo = sum_words(&ip[8..40], u64::from(proto) + len as u64);
            Some(Segment {
                start: l3 + 40,
                len,
                proto,
                pseudo,
            })
        }
        _ => None,
    }
}

/// Finishes the checksum of a TCP or UDP frame whose checksum field holds
/// only its pseudo-header sum. Returns whether it wrote the field.
pub fn repair(frame: &mut [u8]) -> bool {
    let Some(seg) = segment(frame) else {
        return false;
    };
    let field = match seg.proto {
        IPPROTO_TCP if seg.len >= 20 => TCP_CSUM_OFFSET,
        IPPROTO_UDP if seg.len >= 8 => UDP_CSUM_OFFSET,
        _ => return false,
    };
    let at = seg.start + field;
    let Some(current) = be16(frame, at) else {
        return false;
    };
    if current != fold(seg.pseudo) {
        // A finished checksum, or UDP's "none" (0): leave it alone.
        return false;
    }
    let Some(l4) = frame.get(seg.start..seg.start + seg.len) else {
        return false;
    };
    let csum = match !fold(sum_words(l4, 0)) {
        0 => 0xffff,
        c => c,
    };
    frame[at..at + 2].copy_from_slice(&csum.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    const MACS: ([u8; 6], [u8; 6]) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);

    fn tcp4(payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(MACS.0, MACS.1)
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 5201, 12345, 64240)
            .ack(777);
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    fn udp6(payload: &[u8]) -> Vec<u8> {
        let src = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let dst = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        let b = PacketBuilder::ethernet2(MACS.0, MACS.1)
            .ipv6(src, dst, 64)
            .udp(5353, 53);
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    fn tcp6(payload: &[u8]) -> Vec<u8> {
        let src = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let dst = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        let b = PacketBuilder::ethernet2(MACS.0, MACS.1)
            .ipv6(src, dst, 64)
            .tcp(40000, 22, 1, 1000);
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    /// What a sender with tx checksum offload puts in the field: the
    /// pseudo-header sum, folded, not complemented.
    fn make_partial(frame: &mut [u8]) -> usize {
        let seg = segment(frame).unwrap();
        let off = if seg.proto == IPPROTO_TCP { 16 } else { 6 };
        let at = seg.start + off;
        frame[at..at + 2].copy_from_slice(&fold(seg.pseudo).to_be_bytes());
        at
    }

    fn with_vlan(frame: &[u8]) -> Vec<u8> {
        let mut f = frame[..12].to_vec();
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
        f.extend_from_slice(&frame[12..]);
        f
    }

    #[test]
    fn a_correct_checksum_stays() {
        for frame in [tcp4(b"hello"), udp6(b"q"), tcp6(&[7; 1000])] {
            let mut f = frame.clone();
            assert!(!repair(&mut f));
            assert_eq!(f, frame);
        }
    }

    #[test]
    fn partial_checksums_become_what_the_kernel_computes() {
        let payload: Vec<u8> = (0..1448u32).map(|i| (i * 7) as u8).collect();
        for good in [
            tcp4(&payload),
            tcp4(b""),
            tcp4(b"odd"),
            udp6(&payload[..333]),
            tcp6(&payload),
            with_vlan(&tcp4(&payload[..99])),
            with_vlan(&udp6(b"x")),
        ] {
            let mut f = good.clone();
            make_partial(&mut f);
            assert_ne!(f, good, "partial differs from finished");
            assert!(repair(&mut f));
            assert_eq!(f, good, "repaired to the finished checksum");
            assert!(!repair(&mut f), "a repaired frame is left alone");
        }
    }

    #[test]
    fn a_repaired_zero_is_sent_as_all_ones() {
        // A finished sum never folds to 0, so a field of 0xffff after the
        // repair can only be a computed 0 sent as 0xffff; search for one.
        let found = (0..=u16::MAX).any(|x| {
            let mut f = udp6(&x.to_be_bytes());
            let at = make_partial(&mut f);
            assert!(repair(&mut f));
            let seg = segment(&f).unwrap();
            let valid = fold(sum_words(&f[seg.start..seg.start + seg.len], seg.pseudo)) == 0xffff;
            assert!(valid, "repaired checksum verifies");
            f[at..at + 2] == [0xff, 0xff]
        });
        assert!(found, "no payload with a zero checksum found");
    }

    #[test]
    fn udp_without_checksum_is_left_alone() {
        let mut frame = Vec::new();
        PacketBuilder::ethernet2(MACS.0, MACS.1)
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1, 2)
            .write(&mut frame, b"abc")
            .unwrap();
        let at = ETH_HLEN + 20 + 6;
        frame[at..at + 2].copy_from_slice(&[0, 0]);
        let before = frame.clone();
        assert!(!repair(&mut frame));
        assert_eq!(frame, before);
    }

    #[test]
    fn fragments_and_other_protocols_are_left_alone() {
        let mut frag = tcp4(b"data");
        make_partial(&mut frag);
        frag[ETH_HLEN + 6] = 0x20; // More Fragments
        let before = frag.clone();
        assert!(!repair(&mut frag));
        assert_eq!(frag, before);
        let mut arp = vec![0xff; 42];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(!repair(&mut arp));
    }

    #[test]
    fn truncated_and_garbage_frames_do_not_panic() {
        let mut good = tcp4(&[1; 200]);
        make_partial(&mut good);
        for cut in 0..good.len() {
            let mut f = good[..cut].to_vec();
            let before = f.clone();
            assert!(!repair(&mut f), "cut at {cut}");
            assert_eq!(f, before);
        }
        // Lengths that lie: IPv4 total length and IHL, IPv6 payload length.
        let mut lying = good.clone();
        lying[ETH_HLEN + 2..ETH_HLEN + 4].copy_from_slice(&0xffffu16.to_be_bytes());
        assert!(!repair(&mut lying));
        let mut ihl = good.clone();
        ihl[ETH_HLEN] = 0x4f;
        let _ = repair(&mut ihl);
        let mut v6 = udp6(b"abc");
        v6[ETH_HLEN + 4..ETH_HLEN + 6].copy_from_slice(&0x0400u16.to_be_bytes());
        assert!(!repair(&mut v6));
        let mut seed = 0x1234_5678u32;
        for len in 0..300 {
            let mut f: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (seed >> 16) as u8
                })
                .collect();
            if len > 14 {
                f[12..14].copy_from_slice(&[0x08, 0x00]);
            }
            let _ = repair(&mut f);
        }
    }
}
