//! Two VTEPs wired back to back through their underlay queues.

use super::*;
use crate::wire::arp::{ArpOp, ArpRepr};
use crate::wire::ethernet::build_frame;

const A_IP: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 1);
const B_IP: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 2);
const C_IP: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 3);

fn cfg(local: Ipv4Addr, remotes: &[Ipv4Addr]) -> VxlanConfig {
    VxlanConfig {
        local,
        prefix_len: 24,
        gateway: None,
        remotes: remotes.to_vec(),
        vnis: vec![(42, 0), (100, 10)],
        dst_port: vxlan::DEFAULT_PORT,
        underlay: "up".into(),
        mac: VxlanConfig::default_mac(local),
        underlay_mtu: 1500,
    }
}

fn mac(n: u8) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0, n])
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Moves every frame queued by `from` into `to` via `offer`; returns how
/// many `to` took as its own.
fn deliver(from: &mut VxlanPort, to: &mut VxlanPort, now: Duration, c: &mut PortCounters) -> usize {
    let frames: Vec<Vec<u8>> = from.outbound().iter().map(|b| b.frame().to_vec()).collect();
    from.outbound().clear();
    frames.iter().filter(|f| to.offer(f, now, c)).count()
}

fn received(port: &mut VxlanPort) -> Vec<Vec<u8>> {
    let mut batch = Batch::new();
    port.rx_burst(&mut batch, &mut PortCounters::default());
    batch.iter().map(|b| b.frame().to_vec()).collect()
}

/// Two VTEPs that have resolved each other by ARP.
fn pair() -> (VxlanPort, VxlanPort, PortCounters) {
    let mut a = VxlanPort::new("vxa", cfg(A_IP, &[B_IP]));
    let mut b = VxlanPort::new("vxb", cfg(B_IP, &[A_IP]));
    let mut c = PortCounters::default();
    a.tick(secs(0), &mut c);
    b.tick(secs(0), &mut c);
    // Each request is answered by the other: both resolve.
    assert_eq!(deliver(&mut a, &mut b, secs(0), &mut c), 1);
    assert_eq!(
        deliver(&mut b, &mut a, secs(0), &mut c),
        2,
        "B's request and its reply"
    );
    assert_eq!(deliver(&mut a, &mut b, secs(0), &mut c), 1, "A's reply");
    (a, b, c)
}

#[test]
fn arp_resolves_both_ways() {
    let (a, b, _) = pair();
    assert_eq!(a.neighbors.lookup(B_IP, secs(0)), Some(b.cfg.mac));
    assert_eq!(b.neighbors.lookup(A_IP, secs(0)), Some(a.cfg.mac));
}

#[test]
fn encap_decap_round_trip_per_vni() {
    let (mut a, mut b, mut c) = pair();
    let untagged = build_frame(mac(2), mac(1), 0x0800, &[0x45; 100]);
    let mut tagged = untagged[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
    tagged.extend_from_slice(&untagged[12..]);
    assert_eq!(a.tx_burst(&[&untagged, &tagged], &mut c), 2);

    // The wire format: outer Ethernet/IPv4/UDP 4789/VXLAN with the VNI.
    let outer: Vec<Vec<u8>> = a.outbound().iter().map(|f| f.frame().to_vec()).collect();
    assert_eq!(outer.len(), 2);
    assert_eq!(&outer[0][0..6], &b.cfg.mac.0);
    let ip = Ipv4Header::parse(&outer[0][14..]).unwrap();
    assert_eq!((ip.src, ip.dst, ip.protocol), (A_IP, B_IP, 17));
    let udp = UdpHeader::parse(&outer[0][34..]).unwrap();
    assert_eq!(udp.dst_port, 4789);
    assert!(udp.src_port >= 49152);
    assert_eq!(vxlan::parse(&outer[0][42..]), Ok(42));
    assert_eq!(vxlan::parse(&outer[1][42..]), Ok(100));
    assert_eq!(
        &outer[1][50..],
        &untagged[..],
        "the tag is not carried inside"
    );

    assert_eq!(deliver(&mut a, &mut b, secs(1), &mut c), 2);
    let got = received(&mut b);
    assert_eq!(
        got,
        vec![untagged, tagged],
        "VNI 100 enters tagged with VLAN 10"
    );
    assert_eq!(b.remote_of(0, mac(1)), Some(A_IP));
    assert_eq!(b.remote_of(10, mac(1)), Some(A_IP));
    assert_eq!(c.total_drops(), 0);
}

#[test]
fn flood_replicates_and_known_unicast_goes_to_one_remote() {
    let mut a = VxlanPort::new("vxa", cfg(A_IP, &[B_IP, C_IP]));
    let mut c = PortCounters::default();
    a.neighbors.learn(B_IP, mac(0xb), secs(0));
    a.neighbors.learn(C_IP, mac(0xc), secs(0));
    let bcast = build_frame(MacAddr::BROADCAST, mac(1), 0x0806, &[0; 28]);
    a.tx_burst(&[&bcast], &mut c);
    assert_eq!(a.outbound().len(), 2);
    a.outbound().clear();
    a.set_static_remote(0, mac(7), Some(C_IP));
    let uni = build_frame(mac(7), mac(1), 0x0800, &[0; 46]);
    a.tx_burst(&[&uni], &mut c);
    assert_eq!(a.outbound().len(), 1);
    assert_eq!(&a.outbound().get(0).unwrap().frame()[0..6], &mac(0xc).0);
    assert_eq!(c.tx_packets, 2, "one per inner frame, not per copy");
}

#[test]
fn unresolved_or_unroutable_next_hops_are_counted() {
    let mut a = VxlanPort::new("vxa", cfg(A_IP, &[B_IP, Ipv4Addr::new(192, 0, 2, 1)]));
    let mut c = PortCounters::default();
    let f = build_frame(MacAddr::BROADCAST, mac(1), 0x0806, &[0; 28]);
    a.tx_burst(&[&f], &mut c);
    assert_eq!(c.drops(DropReason::VxlanNoNeighbor), 1);
    assert_eq!(c.drops(DropReason::VxlanNoRoute), 1);
    // With a gateway the off-subnet remote goes through it.
    let mut g = cfg(A_IP, &[Ipv4Addr::new(192, 0, 2, 1)]);
    g.gateway = Some(Ipv4Addr::new(10, 79, 0, 254));
    let mut a = VxlanPort::new("vxa", g);
    a.neighbors
        .learn(Ipv4Addr::new(10, 79, 0, 254), mac(0xfe), secs(0));
    a.tx_burst(&[&f], &mut c);
    assert_eq!(&a.outbound().get(0).unwrap().frame()[0..6], &mac(0xfe).0);
}

#[test]
fn oversize_frames_are_dropped_not_fragmented() {
    let (mut a, _, mut c) = pair();
    let max = a.cfg.max_inner_frame();
    assert_eq!(max, 1464);
    let fits = build_frame(mac(2), mac(1), 0x0800, &vec![0; max - 14]);
    let too_big = build_frame(mac(2), mac(1), 0x0800, &vec![0; max - 13]);
    a.tx_burst(&[&fits, &too_big], &mut c);
    assert_eq!(c.drops(DropReason::TxTooBig), 1);
    assert_eq!(a.outbound().len(), 1);
    assert_eq!(a.outbound().get(0).unwrap().len(), 1514);
}

/// A valid outer frame from A to B for VNI `vni`, then `mutate` applied.
fn outer_frame(a: &mut VxlanPort, vni_vlan: u16, mutate: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let inner = build_frame(mac(2), mac(1), 0x0800, &[0x45; 46]);
    let frame = if vni_vlan == 0 {
        inner
    } else {
        let mut t = inner[..12].to_vec();
        t.extend_from_slice(&[0x81, 0x00, 0x00, vni_vlan as u8]);
        t.extend_from_slice(&inner[12..]);
        t
    };
    a.tx_burst(&[&frame], &mut PortCounters::default());
    let mut f = a.outbound().get(0).unwrap().frame().to_vec();
    a.outbound().clear();
    mutate(&mut f);
    f
}

fn fix_ip_checksum(f: &mut [u8]) {
    f[24] = 0;
    f[25] = 0;
    let sum = ipv4::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&sum.to_be_bytes());
}

#[test]
fn malformed_tunnel_traffic_is_counted_and_never_delivered() {
    let (mut a, mut b, _) = pair();
    let cases: Vec<(&str, Vec<u8>, Option<DropReason>)> = vec![
        ("valid", outer_frame(&mut a, 0, |_| {}), None),
        (
            "I flag clear",
            outer_frame(&mut a, 0, |f| f[42] = 0),
            Some(DropReason::VxlanBadHeader),
        ),
        (
            "unknown VNI",
            outer_frame(&mut a, 0, |f| f[48] = 7),
            Some(DropReason::VxlanUnknownVni),
        ),
        (
            "wrong UDP port",
            outer_frame(&mut a, 0, |f| f[37] = 0x99),
            Some(DropReason::VxlanWrongPort),
        ),
        (
            "bad IP checksum",
            outer_frame(&mut a, 0, |f| f[24] ^= 0xff),
            Some(DropReason::VxlanBadHeader),
        ),
        (
            "not UDP",
            outer_frame(&mut a, 0, |f| {
                f[23] = 6;
                fix_ip_checksum(f)
            }),
            Some(DropReason::VxlanBadHeader),
        ),
        (
            "fragment",
            outer_frame(&mut a, 0, |f| {
                f[20] = 0x20;
                fix_ip_checksum(f)
            }),
            Some(DropReason::VxlanBadHeader),
        ),
        (
            "truncated",
            outer_frame(&mut a, 0, |f| f.truncate(40)),
            Some(DropReason::VxlanBadHeader),
        ),
        (
            "UDP length past the packet",
            outer_frame(&mut a, 0, |f| f[38] = 0xff),
            Some(DropReason::VxlanBadHeader),
        ),
        (
            "inner runt",
            outer_frame(&mut a, 0, |f| {
                f.truncate(50 + 10);
                let ip_len = (f.len() - 14) as u16;
                f[16..18].copy_from_slice(&ip_len.to_be_bytes());
                fix_ip_checksum(f);
                let udp_len = ip_len - 20;
                f[38..40].copy_from_slice(&udp_len.to_be_bytes());
            }),
            Some(DropReason::Runt),
        ),
        (
            "unknown remote",
            outer_frame(&mut a, 0, |f| {
                f[29] = 9;
                fix_ip_checksum(f)
            }),
            Some(DropReason::VxlanUnknownRemote),
        ),
        // VNI 42 (the untagged network) carrying an inner tag of VLAN 10,
        // which is VNI 100's: it must not enter VLAN 10.
        (
            "inner tag",
            outer_frame(&mut a, 0, |f| {
                f.splice(62..62, [0x81, 0x00, 0x00, 0x0a]);
                let ip_len = (f.len() - 14) as u16;
                f[16..18].copy_from_slice(&ip_len.to_be_bytes());
                fix_ip_checksum(f);
                f[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
            }),
            Some(DropReason::VxlanInnerTagged),
        ),
    ];
    for (what, frame, reason) in cases {
        let mut c = PortCounters::default();
        assert!(
            b.offer(&frame, secs(1), &mut c),
            "{what}: not taken by the VTEP"
        );
        let got = received(&mut b);
        match reason {
            None => assert_eq!((got.len(), c.total_drops()), (1, 0), "{what}"),
            Some(r) => {
                assert!(got.is_empty(), "{what}: delivered");
                assert_eq!((c.drops(r), c.total_drops()), (1, 1), "{what}: {c:?}");
            }
        }
    }
    // Frames for other hosts on the underlay are left to its bridge.
    let mut c = PortCounters::default();
    let mut other_ip = outer_frame(&mut a, 0, |_| {});
    other_ip[33] = 77;
    assert!(!b.offer(&other_ip, secs(1), &mut c));
    let mut other_mac = outer_frame(&mut a, 0, |_| {});
    other_mac[5] ^= 1;
    assert!(!b.offer(&other_mac, secs(1), &mut c));
    assert!(!b.offer(&[0u8; 5], secs(1), &mut c));
    assert_eq!(c.total_drops(), 0);
}

#[test]
fn arp_for_other_addresses_is_not_taken() {
    let mut b = VxlanPort::new("vxb", cfg(B_IP, &[A_IP]));
    let req = ArpRepr {
        op: ArpOp::Request,
        sender_mac: mac(9),
        sender_ip: Ipv4Addr::new(10, 79, 0, 9),
        target_mac: MacAddr::ZERO,
        target_ip: Ipv4Addr::new(10, 79, 0, 8),
    };
    let mut payload = [0u8; 28];
    req.emit(&mut payload);
    let frame = build_frame(MacAddr::BROADCAST, mac(9), 0x0806, &payload);
    let mut c = PortCounters::default();
    assert!(!b.offer(&frame, secs(0), &mut c));
    assert!(b.outbound().is_empty());
}

#[test]
fn vlan_mode_follows_the_vni_map() {
    let c = cfg(A_IP, &[B_IP]);
    assert_eq!(
        c.vlan_mode().to_string(),
        "trunk 10, untagged frames in network 0"
    );
    assert_eq!(c.next_hop(Ipv4Addr::new(10, 80, 0, 1)), None);
}
