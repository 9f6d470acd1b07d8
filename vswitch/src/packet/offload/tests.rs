//! Frames are built and checked with etherparse, an independent
//! implementation of the headers and checksums.

use super::*;
use crate::wire::vnet::{F_NEEDS_CSUM, GSO_TCPV4, GSO_TCPV6, GSO_UDP, GSO_UDP_L4};
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

const SRC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const DST: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + 3) as u8).collect()
}

/// A TCP/IPv4 frame with a correct checksum; (frame, l4 offset).
fn tcp4(data: &[u8], vlan: Option<u16>, flags_fin_psh_cwr: bool) -> (Vec<u8>, usize) {
    let b = PacketBuilder::ethernet2(SRC, DST);
    let b = match vlan {
        Some(v) => b.single_vlan(v.try_into().unwrap()),
        None => b.single_vlan(1.try_into().unwrap()),
    };
    let mut tcp = b
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(40000, 5201, 1_000_000, 512)
        .ack(77);
    if flags_fin_psh_cwr {
        tcp = tcp.fin().psh().cwr();
    }
    let mut out = Vec::new();
    tcp.write(&mut out, data).unwrap();
    if vlan.is_none() {
        out.drain(12..16);
    }
    let l4 = if vlan.is_some() { 38 } else { 34 };
    (out, l4)
}

/// Turns a finished checksum into what a checksum-offloading sender leaves:
/// the folded pseudo-header sum.
fn make_partial(frame: &mut [u8], l4: usize, field: usize, ipv6: bool, proto: u8) {
    let l3 = if ipv6 { l4 - 40 } else { l4 - 20 };
    let addrs = if ipv6 {
        &frame[l3 + 8..l3 + 40]
    } else {
        &frame[l3 + 12..l3 + 20]
    };
    let pseudo = add_bytes(0, addrs) + u64::from(proto) + (frame.len() - l4) as u64;
    let v = fold(pseudo);
    frame[l4 + field..l4 + field + 2].copy_from_slice(&v.to_be_bytes());
}

fn gso(kind: u8, l4: usize, field: u16, mss: u16) -> VnetHdr {
    VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: kind,
        hdr_len: 0,
        gso_size: mss,
        csum_start: l4 as u16,
        csum_offset: field,
    }
}

fn csum_only(l4: usize, field: u16) -> VnetHdr {
    VnetHdr {
        gso_type: 0,
        gso_size: 0,
        ..gso(0, l4, field, 0)
    }
}

/// The TCP checksum etherparse computes for a parsed frame, and the one it
/// carries.
fn tcp_checksums(frame: &[u8]) -> (u16, u16, Vec<u8>, u32, u8) {
    let p = SlicedPacket::from_ethernet(frame).unwrap();
    let Some(TransportSlice::Tcp(tcp)) = p.transport else {
        panic!("not TCP")
    };
    let payload = tcp.payload().to_vec();
    let expect = match p.net {
        Some(NetSlice::Ipv4(ip)) => tcp
            .to_header()
            .calc_checksum_ipv4(&ip.header().to_header(), &payload)
            .unwrap(),
        Some(NetSlice::Ipv6(ip)) => tcp
            .to_header()
            .calc_checksum_ipv6(&ip.header().to_header(), &payload)
            .unwrap(),
        _ => panic!("no IP"),
    };
    let flags = u8::from(tcp.fin()) | u8::from(tcp.psh()) << 3 | u8::from(tcp.cwr()) << 7;
    (
        expect,
        tcp.checksum(),
        payload,
        tcp.sequence_number(),
        flags,
    )
}

#[test]
fn a_partial_checksum_is_finished_exactly() {
    let (good, l4) = tcp4(&payload(999), None, false);
    let mut partial = good.clone();
    make_partial(&mut partial, l4, 16, false, TCP);
    assert_ne!(partial, good);
    let hdr = csum_only(l4, 16);
    assert_eq!(check_rx(&partial, &mut hdr.clone()), Ok(()));
    assert!(finish_checksum(&mut partial, &hdr));
    assert_eq!(partial, good);
}

#[test]
fn checksum_offsets_outside_the_frame_are_refused() {
    let (mut f, l4) = tcp4(&payload(10), None, false);
    let bad = VnetHdr {
        csum_offset: 4000,
        ..csum_only(l4, 16)
    };
    assert_eq!(
        check_rx(&f, &mut bad.clone()),
        Err(DropReason::OffloadInvalid)
    );
    let before = f.clone();
    assert!(!finish_checksum(&mut f, &bad));
    assert_eq!(f, before);
}

#[test]
fn tcp4_segments_are_what_the_kernel_sends() {
    for vlan in [None, Some(10)] {
        let data = payload(4000);
        let (mut frame, l4) = tcp4(&data, vlan, true);
        make_partial(&mut frame, l4, 16, false, TCP);
        let hdr = gso(GSO_TCPV4, l4, 16, 1448);
        assert_eq!(check_rx(&frame, &mut hdr.clone()), Ok(()));
        let mut out = Batch::new();
        assert_eq!(segment(&frame, &hdr, 0, &mut out), Ok(None));
        assert_eq!(out.len(), 3);
        let mut joined = Vec::new();
        for (k, seg) in out.iter().enumerate() {
            let seg = seg.frame();
            let (expect, carried, part, seq, flags) = tcp_checksums(seg);
            assert_eq!(carried, expect, "segment {k} checksum");
            assert_eq!(seq, 1_000_000 + 1448 * k as u32);
            let last = k == 2;
            assert_eq!(flags & 0x09 != 0, last, "FIN/PSH only on the last");
            assert_eq!(flags & 0x80 != 0, k == 0, "CWR only on the first");
            let p = SlicedPacket::from_ethernet(seg).unwrap();
            let Some(NetSlice::Ipv4(ip)) = p.net else {
                panic!()
            };
            assert_eq!(usize::from(ip.header().total_len()), seg.len() - (l4 - 20));
            assert_eq!(ip.header().identification(), k as u16);
            assert_eq!(ip.header().header_checksum(), {
                ip.header().to_header().calc_header_checksum()
            });
            joined.extend_from_slice(&part);
        }
        assert_eq!(joined, data);
    }
}

#[test]
fn segmentation_resumes_where_the_batch_filled() {
    let data = payload(10_000);
    let (mut frame, l4) = tcp4(&data, None, false);
    make_partial(&mut frame, l4, 16, false, TCP);
    let hdr = gso(GSO_TCPV4, l4, 16, 100);
    let mut out = Batch::new();
    let mut joined = Vec::new();
    let mut next = Some(0);
    let mut rounds = 0;
    while let Some(k) = next {
        out.clear();
        next = segment(&frame, &hdr, k, &mut out).unwrap();
        for seg in out.iter() {
            joined.extend_from_slice(&tcp_checksums(seg.frame()).2);
        }
        rounds += 1;
    }
    assert_eq!(rounds, 4, "100 segments in batches of 32");
    assert_eq!(joined, data);
}

#[test]
fn tcp6_and_udp_segments() {
    let data = payload(3000);
    let mut f6 = Vec::new();
    PacketBuilder::ethernet2(SRC, DST)
        .ipv6([1; 16], [2; 16], 64)
        .tcp(1, 2, 42, 100)
        .write(&mut f6, &data)
        .unwrap();
    make_partial(&mut f6, 54, 16, true, TCP);
    let hdr = gso(GSO_TCPV6, 54, 16, 1000);
    let mut out = Batch::new();
    assert_eq!(segment(&f6, &hdr, 0, &mut out), Ok(None));
    assert_eq!(out.len(), 3);
    for seg in out.iter() {
        let (expect, carried, part, _, _) = tcp_checksums(seg.frame());
        assert_eq!((carried, part.len()), (expect, 1000));
    }

    let mut udp = Vec::new();
    PacketBuilder::ethernet2(SRC, DST)
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(5000, 6000)
        .write(&mut udp, &data)
        .unwrap();
    make_partial(&mut udp, 34, 6, false, UDP);
    let hdr = gso(GSO_UDP_L4, 34, 6, 1200);
    out.clear();
    assert_eq!(segment(&udp, &hdr, 0, &mut out), Ok(None));
    let sizes: Vec<usize> = out
        .iter()
        .map(|seg| {
            let p = SlicedPacket::from_ethernet(seg.frame()).unwrap();
            let Some(TransportSlice::Udp(u)) = p.transport else {
                panic!()
            };
            let Some(NetSlice::Ipv4(ip)) = p.net else {
                panic!()
            };
            let expect = u
                .to_header()
                .calc_checksum_ipv4(&ip.header().to_header(), u.payload())
                .unwrap();
            assert_eq!(u.checksum(), expect);
            assert_eq!(usize::from(u.length()), u.payload().len() + 8);
            u.payload().len()
        })
        .collect();
    assert_eq!(sizes, [1200, 1200, 600]);
}

#[test]
fn requests_that_do_not_match_the_frame_are_refused() {
    let (frame, l4) = tcp4(&payload(3000), None, false);
    let cases = [
        // UFO is never cut.
        (gso(GSO_UDP, l4, 6, 1000), DropReason::OffloadUnsupported),
        // TCP segmentation of a frame whose L4 offset is elsewhere (as for
        // a tunnelled packet).
        (
            gso(GSO_TCPV4, l4 - 4, 16, 1000),
            DropReason::OffloadUnsupported,
        ),
        // IPv6 segmentation of an IPv4 frame.
        (gso(GSO_TCPV6, l4, 16, 1000), DropReason::OffloadUnsupported),
        (gso(GSO_TCPV4, l4, 16, 0), DropReason::OffloadInvalid),
        // Would make 3000 segments.
        (gso(GSO_TCPV4, l4, 16, 1), DropReason::OffloadUnsupported),
        (
            VnetHdr {
                flags: 0,
                ..gso(GSO_TCPV4, l4, 16, 1000)
            },
            DropReason::OffloadInvalid,
        ),
    ];
    for (hdr, reason) in cases {
        assert_eq!(check_rx(&frame, &mut hdr.clone()), Err(reason), "{hdr:?}");
        let mut out = Batch::new();
        if reason == DropReason::OffloadUnsupported {
            assert!(segment(&frame, &hdr, 0, &mut out).is_err() || hdr.gso_size == 1);
        }
    }
}

#[test]
fn garbage_never_panics() {
    let mut out = Batch::new();
    let mut seed = 0x1234_5678_u32;
    for len in 0..200 {
        let frame: Vec<u8> = (0..len)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (seed >> 16) as u8
            })
            .collect();
        for kind in [GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4, 0x77] {
            let hdr = gso(
                kind,
                (seed % 64) as usize,
                (seed % 20) as u16,
                1 + (seed % 9) as u16,
            );
            let _ = check_rx(&frame, &mut hdr.clone());
            out.clear();
            let _ = segment(&frame, &hdr, 0, &mut out);
            let mut f = frame.clone();
            let _ = finish_checksum(&mut f, &hdr);
        }
    }
}

#[test]
fn caps_say_what_passes() {
    let (_, l4) = tcp4(&payload(1), None, false);
    let none = OffloadCaps::NONE;
    assert!(none.takes(&VnetHdr::default()));
    assert!(!none.takes(&csum_only(l4, 16)));
    let csum = OffloadCaps {
        csum: true,
        ..OffloadCaps::NONE
    };
    assert!(csum.takes(&csum_only(l4, 16)));
    assert!(!csum.takes(&gso(GSO_TCPV4, l4, 16, 1000)));
    assert!(OffloadCaps::ALL.takes(&gso(GSO_TCPV6, l4, 16, 1000)));
    assert!(!OffloadCaps::ALL.takes(&gso(GSO_UDP, l4, 16, 1000)));
}

#[test]
fn gso_of_a_tunnelled_packet_is_marked_for_the_vtep() {
    let (inner, inner_l4) = tcp4(&payload(3000), None, false);
    let mut vxlan_payload = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
    vxlan_payload.extend_from_slice(&inner);
    let mut outer = Vec::new();
    PacketBuilder::ethernet2(SRC, DST)
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(50000, 4789)
        .write(&mut outer, &vxlan_payload)
        .unwrap();
    let mut hdr = gso(GSO_TCPV4, 50 + inner_l4, 16, 1400);
    assert_eq!(check_rx(&outer, &mut hdr), Ok(()));
    assert!(hdr.is_udp_tunnel());
    assert!(!OffloadCaps::ALL.takes(&hdr), "no port takes it as it is");
    assert!(hdr.for_tx().flags & crate::wire::vnet::F_UDP_TUNNEL == 0);
    let mut out = Batch::new();
    assert!(segment(&outer, &hdr, 0, &mut out).is_err());
    // Decapsulated (offsets moved by the outer headers), it is an ordinary
    // GSO frame again.
    hdr.shift(0, 50, false);
    assert_eq!(check_rx(&inner, &mut hdr), Ok(()));
    assert!(!hdr.is_udp_tunnel());
    assert_eq!(segment(&inner, &hdr, 0, &mut out), Ok(None));
    assert_eq!(out.len(), 3);
}
