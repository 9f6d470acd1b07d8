//! The bodies of the fuzz targets.
//!
//! They live in the library, not in `fuzz/`, so that the same code runs two
//! ways: under libFuzzer (the cargo-fuzz targets in `fuzz/` are one-line
//! wrappers, built with a nightly-only sanitizer setup), and as a plain test
//! on the stable toolchain (`vswitch/tests/fuzz_corpus.rs` feeds every file
//! of `fuzz/corpus/TARGET/` and `fuzz/regressions/TARGET/` through them). A
//! crash the fuzzer finds becomes a regression input in the repository and
//! stays fixed in every `cargo test` after.
//!
//! Each function takes arbitrary bytes. Bad input must never make the code
//! under test panic; the functions themselves panic only when an invariant
//! they check is broken, which is what the fuzzer reports.

use std::time::Duration;

use crate::control::protocol::{Reply, Request};
use crate::control::server::parse_request;
use crate::packet::{Batch, PacketBuf};
use crate::pipeline::announce;
use crate::pipeline::counters::{DropReason, PortCounters};
use crate::pipeline::input::classify;
use crate::pipeline::vlan::VlanMode;
use crate::wire::{EtherType, EthernetFrame, EthernetRepr, MacAddr};

mod evpn;
mod fdb;
mod pipeline;
pub mod vhost;

pub use evpn::evpn;
pub use fdb::fdb;
pub use pipeline::pipeline;
pub use vhost::vhost_queue;

/// A control request line: parsing never panics; what parses encodes back to
/// one line that parses to the same request; what does not gets an error
/// reply with a message, itself one line of JSON.
pub fn control_request(data: &[u8]) {
    match parse_request(data) {
        Ok(request) => {
            let line = serde_json::to_string(&request).expect("a request always encodes");
            assert!(!line.contains('\n'), "encoded request spans lines: {line}");
            let again: Request = parse_request(line.as_bytes())
                .unwrap_or_else(|e| panic!("{line} does not parse back: {e:?}"));
            assert_eq!(again, request);
        }
        Err(Reply::Error(message)) => {
            assert!(!message.trim().is_empty(), "error reply without a message");
            let line = serde_json::to_string(&Reply::Error(message)).expect("replies encode");
            assert!(!line.contains('\n'), "encoded reply spans lines: {line}");
        }
        Err(other) => panic!("parse_request failed with a non-error reply {other:?}"),
    }
}

/// Ethernet and 802.1Q views, the owned header, MAC addresses as bytes and
/// as text, and the RARP announcement built from the input's first bytes.
pub fn ethernet(data: &[u8]) {
    match EthernetFrame::new_checked(data) {
        Err(_) => {
            assert!(data.len() < 18, "a {}-byte frame was refused", data.len());
            let unchecked = EthernetFrame::new_unchecked(data);
            assert!(EthernetRepr::parse(&unchecked).is_err());
            assert_eq!(classify_default(data), Err(DropReason::Runt));
        }
        Ok(frame) => check_frame(data, &frame),
    }

    if let Some(mac) = MacAddr::from_slice(data) {
        assert_eq!(mac.to_string().parse::<MacAddr>(), Ok(mac));
        assert_eq!(MacAddr::from_u64(mac.to_u64()), mac);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(mac) = text.parse::<MacAddr>() {
            // Accepted text is six two-digit hex octets, ':' or '-' apart.
            assert_eq!(mac.to_string(), text.to_ascii_lowercase().replace('-', ":"));
        }
    }

    if let Some(mac) = MacAddr::from_slice(data) {
        let vlan = data
            .get(6..8)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
        let room = data.get(8).map_or(64, |b| usize::from(*b) % 80);
        check_rarp(mac, vlan, room);
    }
}

fn check_frame(data: &[u8], frame: &EthernetFrame<&[u8]>) {
    let header_len = frame.header_len();
    assert!(header_len <= data.len());
    assert_eq!(frame.payload(), &data[header_len..]);
    let tagged = frame.ethertype() == EtherType::Vlan;
    assert_eq!(frame.vlan_tci().is_some(), tagged);
    if !tagged {
        assert_eq!(frame.payload_ethertype(), frame.ethertype());
    }

    let repr = EthernetRepr::parse(frame).expect("a checked frame parses");
    assert_eq!(repr.buffer_len(), header_len);
    let mut out = vec![0u8; data.len()];
    assert_eq!(repr.emit(&mut out), Ok(header_len));
    assert_eq!(
        &out[..header_len],
        &data[..header_len],
        "emit changed the header"
    );
    let again = EthernetRepr::parse(&EthernetFrame::new_unchecked(&out[..])).expect("reparse");
    assert_eq!(again, repr);

    // The pipeline's classification (default VLAN mode: every tag passes,
    // untagged is network 0) reads the same fields.
    let vid = repr.vlan.map_or(0, |t| t.vid());
    let inner_tpid = tagged
        && matches!(
            frame.payload_ethertype(),
            EtherType::Vlan | EtherType::QinQ | EtherType::Unknown(0x9100)
        );
    match classify_default(data) {
        Ok(c) => {
            assert_eq!((c.src, c.dst), (repr.src, repr.dst));
            assert_eq!(c.vlan, vid);
        }
        Err(DropReason::InvalidSourceMac) => assert!(!repr.src.is_learnable()),
        Err(DropReason::ReservedMulticast) => assert!(repr.dst.is_link_local_reserved()),
        Err(DropReason::VlanNotAllowed) => assert_eq!(vid, 4095),
        Err(DropReason::VlanDoubleTagged) => assert!(vid != 0 && inner_tpid),
        Err(other) => panic!("a well-formed frame was classified as {other:?}"),
    }
}

/// The input stage on a copy of `data`, for a port in the default mode.
fn classify_default(data: &[u8]) -> Result<crate::pipeline::input::Classified, DropReason> {
    let mut buf = PacketBuf::new();
    buf.copy_from(data);
    classify(&mut buf, &VlanMode::default())
}

fn check_rarp(mac: MacAddr, vlan: u16, room: usize) {
    let mut buf = [0xeeu8; 80];
    let n = announce::rarp(mac, vlan, &mut buf[..room]);
    if room < 64 {
        assert_eq!(n, 0, "rarp wrote into a {room}-byte buffer");
        return;
    }
    // Padded to the 60-byte minimum, tagged or not.
    assert_eq!(n, 60);
    let frame = EthernetFrame::new_checked(&buf[..n]).expect("an announcement parses");
    let repr = EthernetRepr::parse(&frame).expect("an announcement parses");
    assert!(repr.dst.is_broadcast());
    assert_eq!(repr.src, mac);
    // Tagged when `vlan` is not 0, with its low 12 bits as the VID.
    let tag = repr.vlan.map(|t| t.0);
    assert_eq!(tag, (vlan != 0).then_some(vlan & 0x0fff));
    assert_eq!(repr.ethertype, EtherType::Unknown(0x8035));
    let arp = frame.payload();
    assert_eq!(&arp[..8], &[0, 1, 8, 0, 6, 4, 0, 3]);
    assert_eq!((&arp[8..14], &arp[18..24]), (&mac.0[..], &mac.0[..]));
}

/// A VTEP's underlay input: arbitrary frames offered to a VXLAN port as its
/// underlay would (ARP for its address, VXLAN to it, anything else), then
/// whatever it decapsulated received and encapsulated back.
///
/// Input: records `[len][len bytes]`, each one frame. The first record's
/// frames are sent as they are; the port also gets a valid ARP reply for
/// its remote first so that its transmit path runs too.
///
/// Checks: nothing panics; the VTEP takes only frames addressed to it (its
/// MAC and address, or ARP); a frame it decapsulates enters in the VLAN of
/// its VNI and at most the frame's size plus a tag; every frame it takes is
/// either received or counted in exactly one drop reason; what it sends to
/// the underlay is well-formed IPv4/UDP/VXLAN or ARP from its own MAC.
pub fn vxlan(data: &[u8]) {
    use crate::port::vxlan::{VxlanConfig, VxlanPort};
    use crate::port::{Port, Tunnel};
    use crate::wire::arp::{ArpOp, ArpRepr};
    use crate::wire::ipv4::{Ipv4Header, UdpHeader};
    use std::net::Ipv4Addr;

    let local = Ipv4Addr::new(10, 79, 0, 2);
    let remote = Ipv4Addr::new(10, 79, 0, 1);
    let cfg = VxlanConfig {
        local,
        prefix_len: 24,
        gateway: None,
        remotes: vec![remote],
        vnis: vec![(42, 0), (100, 10)],
        dst_port: crate::wire::vxlan::DEFAULT_PORT,
        underlay: "up".into(),
        mac: VxlanConfig::default_mac(local),
        underlay_mtu: 1500,
    };
    let vtep_mac = cfg.mac;
    let mut port = VxlanPort::new("vx", cfg);
    let mut counters = PortCounters::default();
    let now = Duration::from_secs(1);
    // Resolve the remote so that encapsulation runs.
    let remote_mac = MacAddr([2, 0, 0, 0, 0, 1]);
    let mut arp = [0u8; 28];
    ArpRepr {
        op: ArpOp::Reply,
        sender_mac: remote_mac,
        sender_ip: remote,
        target_mac: vtep_mac,
        target_ip: local,
    }
    .emit(&mut arp);
    port.tick(now, &mut counters);
    let reply = crate::wire::ethernet::build_frame(vtep_mac, remote_mac, 0x0806, &arp);
    assert!(
        port.offer(&reply, now, &mut counters),
        "an ARP reply to the VTEP is its own"
    );
    port.outbound().clear();

    let mut batch = Batch::new();
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        let (frame, next) = tail.split_at(len);
        rest = next;
        let drops_before = counters.total_drops();
        let to_us = frame.len() >= 14 && frame[..6] == vtep_mac.0;
        let taken = port.offer(frame, now, &mut counters);
        let is_arp = frame.len() >= 14 && frame[12..14] == [0x08, 0x06];
        assert!(
            !taken || to_us || is_arp,
            "the VTEP took a frame not sent to it"
        );
        batch.clear();
        let got = port.rx_burst(&mut batch, &mut counters);
        let dropped = counters.total_drops() - drops_before;
        if taken && !is_arp {
            assert_eq!(
                got as u64 + dropped,
                1,
                "a frame taken is received or dropped, once"
            );
        } else {
            assert_eq!((got, dropped), (0, 0), "a frame not taken had effects");
        }
        for buf in batch.iter() {
            let inner = buf.frame();
            assert!(
                inner.len() + 50 <= frame.len() + 4,
                "decapsulated frame grew"
            );
            let eth = EthernetFrame::new_checked(inner).expect("decapsulated frames parse");
            // The VNI alone decides the VLAN: 100 enters tagged 10, 42
            // untagged, and no second tag hides under it.
            let ihl = usize::from(frame[14] & 0x0f) * 4;
            let at = 14 + ihl + 8 + 4;
            let vni = u32::from_be_bytes([0, frame[at], frame[at + 1], frame[at + 2]]);
            let want = if vni == 100 { 10 } else { 0 };
            let vid = eth.vlan_tci().map_or(0, |t| t.vid());
            assert_eq!(vid, want, "VNI {vni} entered in VLAN {vid}");
            assert!(
                !matches!(
                    eth.payload_ethertype(),
                    EtherType::Vlan | EtherType::QinQ | EtherType::Unknown(0x9100)
                ),
                "a second tag under the VNI's VLAN"
            );
        }
        // Send the decapsulated frames back: they must encapsulate cleanly.
        let frames: Vec<&[u8]> = batch.iter().map(|b| b.frame()).collect();
        port.tx_burst(&frames, &mut counters);
        for out in port.outbound().iter() {
            let f = out.frame();
            assert_eq!(&f[6..12], &vtep_mac.0, "sent from another MAC");
            match [f[12], f[13]] {
                [0x08, 0x06] => assert!(ArpRepr::parse(&f[14..]).is_some()),
                [0x08, 0x00] => {
                    let ip = Ipv4Header::parse(&f[14..]).expect("emitted IPv4 parses");
                    assert_eq!((ip.src, ip.dst), (local, remote));
                    let udp = UdpHeader::parse(&f[34..]).expect("emitted UDP parses");
                    assert_eq!(udp.dst_port, 4789);
                    assert!(crate::wire::vxlan::parse(&f[42..]).is_ok());
                }
                other => panic!("the VTEP sent EtherType {other:02x?}"),
            }
        }
        port.outbound().clear();
    }
}

/// LACPDUs and marker PDUs: what parses emits to bytes that parse to the
/// same PDU; and fed to a two-member LACP machine with the clock moving,
/// a PDU that does not parse changes nothing but its counter, and the
/// machine never distributes on a member that does not collect.
///
/// Input: records `[op][len][len bytes]`: bit 0 of `op` is the member,
/// bits 1-3 advance the clock by that many half-seconds first, bit 4 flaps
/// that member's link.
pub fn lacp(data: &[u8]) {
    use crate::lacp::{Config, Lacp, Rate};
    use crate::wire::lacp::Pdu;

    if let Ok(pdu) = Pdu::parse(data) {
        let mut out = [0u8; 128];
        let n = pdu.emit(&mut out);
        assert!(n > 0);
        assert_eq!(
            Pdu::parse(&out[..n]),
            Ok(pdu),
            "emit then parse changed the PDU"
        );
    }

    let cfg = Config {
        system_priority: 65535,
        system: MacAddr([2, 0, 0, 0, 0, 0x10]),
        key: 1,
        port_priority: 255,
        rate: Rate::Fast,
        fallback: data.first().is_some_and(|b| b & 0x80 != 0),
        primary: None,
    };
    let mut lacp = Lacp::new(cfg, 2);
    let mut now = Duration::ZERO;
    lacp.link_changed(0, true, now);
    lacp.link_changed(1, true, now);
    let mut rest = data;
    while rest.len() >= 2 {
        let (op, len) = (rest[0], usize::from(rest[1]).min(rest.len() - 2));
        let pdu = &rest[2..2 + len];
        rest = &rest[2 + len..];
        let m = usize::from(op & 1);
        now += Duration::from_millis(500 * u64::from((op >> 1) & 0x7));
        lacp.handle_timer(now);
        if op & 0x10 != 0 {
            let up = !lacp.members()[m].link_up();
            lacp.link_changed(m, up, now);
        }
        let before = format!("{:?}", lacp.members());
        let bad_before = lacp.members()[m].counters.bad_in;
        lacp.handle_pdu(m, pdu, now);
        if Pdu::parse(pdu).is_err() {
            assert_eq!(lacp.members()[m].counters.bad_in, bad_before + 1);
            let mut after_members = lacp.members().to_vec();
            after_members[m].counters.bad_in = bad_before;
            assert_eq!(
                format!("{after_members:?}"),
                before,
                "a bad PDU changed the state"
            );
        }
        for i in 0..2 {
            assert!(
                !lacp.distributing(i) || lacp.collecting(i),
                "member {i} distributes without collecting"
            );
        }
    }
}
