//! Pipeline behaviour over loopback ports: flooding sets, unicast, learning,
//! drops, isolation between bridges.

use super::*;
use crate::port::loopback::LoopbackPort;
use crate::wire::ethernet::build_frame;
use crate::wire::MacAddr;
use std::time::Duration;
use vlan::{VlanMode, VlanSet};

fn mac(n: u8) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0, n])
}

/// Bridge 0 has ports 0,1,2; bridge 1 has ports 3,4.
fn setup() -> (Vec<Bridge>, Vec<Option<PortSlot>>) {
    let mut ports = Vec::new();
    for (i, bridge) in [0usize, 0, 0, 1, 1].into_iter().enumerate() {
        let name = format!("p{i}");
        ports.push(Some(PortSlot::new(
            name.clone(),
            bridge,
            Box::new(LoopbackPort::counting(&name)),
            PortPolicy::default(),
        )));
    }
    let bridges = vec![
        Bridge::new("br0".into(), Fdb::new(64, 300), vec![0, 1, 2]),
        Bridge::new("br1".into(), Fdb::new(64, 300), vec![3, 4]),
    ];
    (bridges, ports)
}

fn run(
    frames: &[Vec<u8>],
    in_port: PortId,
    bridges: &mut [Bridge],
    ports: &mut [Option<PortSlot>],
) {
    let mut batch = Batch::new();
    for f in frames {
        batch.push_copy(f);
    }
    let b = ports[in_port as usize].as_ref().unwrap().bridge;
    process_batch(&mut batch, in_port, &mut bridges[b], ports, Duration::ZERO);
}

fn tx(ports: &[Option<PortSlot>], p: usize) -> u64 {
    ports[p].as_ref().unwrap().counters.tx_packets
}

fn drops(ports: &[Option<PortSlot>], p: usize, r: DropReason) -> u64 {
    ports[p].as_ref().unwrap().counters.drops(r)
}

#[test]
fn unknown_unicast_floods_to_all_but_ingress() {
    let (mut bridges, mut ports) = setup();
    run(
        &[build_frame(mac(9), mac(1), 0x0800, &[0; 46])],
        0,
        &mut bridges,
        &mut ports,
    );
    assert_eq!([tx(&ports, 0), tx(&ports, 1), tx(&ports, 2)], [0, 1, 1]);
    // Never into the other bridge.
    assert_eq!(tx(&ports, 3) + tx(&ports, 4), 0);
    assert_eq!(bridges[0].fdb.lookup(0, mac(1)), Some(0));
    assert!(bridges[1].fdb.is_empty());
}

#[test]
fn known_unicast_goes_to_exactly_one_port() {
    let (mut bridges, mut ports) = setup();
    run(
        &[build_frame(MacAddr::BROADCAST, mac(2), 0x0806, &[0; 28])],
        1,
        &mut bridges,
        &mut ports,
    );
    let before = [tx(&ports, 0), tx(&ports, 1), tx(&ports, 2)];
    let stream: Vec<_> = (0..32)
        .map(|_| build_frame(mac(2), mac(1), 0x0800, &[0; 46]))
        .collect();
    run(&stream, 0, &mut bridges, &mut ports);
    assert_eq!(tx(&ports, 1) - before[1], 32);
    assert_eq!(tx(&ports, 2) - before[2], 0);
    assert_eq!(tx(&ports, 0) - before[0], 0);
}

#[test]
fn destination_behind_ingress_is_dropped_and_counted() {
    let (mut bridges, mut ports) = setup();
    run(
        &[build_frame(MacAddr::BROADCAST, mac(2), 0x0806, &[0; 28])],
        0,
        &mut bridges,
        &mut ports,
    );
    run(
        &[build_frame(mac(2), mac(1), 0x0800, &[0; 46])],
        0,
        &mut bridges,
        &mut ports,
    );
    assert_eq!(drops(&ports, 0, DropReason::SamePort), 1);
    assert_eq!(tx(&ports, 1), 1); // only the broadcast
}

#[test]
fn malformed_frames_are_counted_not_forwarded() {
    let (mut bridges, mut ports) = setup();
    let frames = vec![
        vec![0u8; 5],
        build_frame(mac(2), MacAddr::BROADCAST, 0x0800, &[]),
        build_frame(mac(2), mac(1), 0x8100, &[0x00]),
    ];
    run(&frames, 0, &mut bridges, &mut ports);
    assert_eq!(drops(&ports, 0, DropReason::Runt), 2);
    assert_eq!(drops(&ports, 0, DropReason::InvalidSourceMac), 1);
    assert_eq!(tx(&ports, 1) + tx(&ports, 2), 0);
    assert!(bridges[0].fdb.is_empty());
}

#[test]
fn lone_port_flood_is_counted() {
    let (mut bridges, mut ports) = setup();
    bridges[1].ports = vec![3];
    ports[4] = None;
    run(
        &[build_frame(MacAddr::BROADCAST, mac(5), 0x0806, &[0; 28])],
        3,
        &mut bridges,
        &mut ports,
    );
    assert_eq!(drops(&ports, 3, DropReason::NoFloodPorts), 1);
}

#[test]
fn mixed_batch_keeps_every_frame_accounted() {
    let (mut bridges, mut ports) = setup();
    bridges[0].fdb.add_static(0, mac(2), 1).unwrap();
    bridges[0].fdb.add_static(0, mac(3), 2).unwrap();
    let mut frames = Vec::new();
    for i in 0..30u8 {
        frames.push(match i % 5 {
            0 => build_frame(mac(2), mac(1), 0x0800, &[i; 46]),
            1 => build_frame(mac(3), mac(1), 0x0800, &[i; 46]),
            2 => build_frame(MacAddr::BROADCAST, mac(1), 0x0806, &[i; 28]),
            3 => vec![i; 3],
            _ => build_frame(mac(1), mac(1), 0x0800, &[i; 46]),
        });
    }
    run(&frames, 0, &mut bridges, &mut ports);
    let c0 = ports[0].as_ref().unwrap().counters;
    // Frames to port 1: 6 unicast + 6 flood; to port 2: 6 unicast + 6 flood.
    assert_eq!(tx(&ports, 1), 12);
    assert_eq!(tx(&ports, 2), 12);
    assert_eq!(c0.drops(DropReason::Runt), 6);
    assert_eq!(c0.drops(DropReason::SamePort), 6);
    assert_eq!(c0.total_drops(), 12);
}

/// A bridge of recording ports with the given VLAN modes.
fn vlan_setup(modes: &[VlanMode]) -> (Bridge, Vec<Option<PortSlot>>) {
    let ports = modes
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let name = format!("p{i}");
            Some(PortSlot::new(
                name.clone(),
                0,
                Box::new(LoopbackPort::new(&name)),
                PortPolicy {
                    vlan: m.clone(),
                    ..Default::default()
                },
            ))
        })
        .collect();
    let bridge = Bridge::new(
        "br".into(),
        Fdb::new(64, 300),
        (0..modes.len() as PortId).collect(),
    );
    (bridge, ports)
}

fn trunk(list: &str, native: Option<u16>) -> VlanMode {
    VlanMode::Trunk {
        allowed: VlanSet::parse(list).unwrap(),
        native,
    }
}

fn tagged_frame(dst: MacAddr, src: MacAddr, tci: u16) -> Vec<u8> {
    let mut payload = tci.to_be_bytes().to_vec();
    payload.extend_from_slice(&[0x08, 0x00]);
    payload.extend_from_slice(&[0x45; 46]);
    build_frame(dst, src, 0x8100, &payload)
}

/// Steps one batch through `bridge`, returning what each port sent.
fn step(
    bridge: &mut Bridge,
    ports: &mut [Option<PortSlot>],
    in_port: PortId,
    frames: &[Vec<u8>],
) -> Vec<u64> {
    let before: Vec<u64> = ports
        .iter()
        .map(|p| p.as_ref().unwrap().counters.tx_packets)
        .collect();
    let mut batch = Batch::new();
    for f in frames {
        batch.push_copy(f);
    }
    process_batch(&mut batch, in_port, bridge, ports, Duration::ZERO);
    ports
        .iter()
        .zip(before)
        .map(|(p, b)| p.as_ref().unwrap().counters.tx_packets - b)
        .collect()
}

#[test]
fn flooding_stays_inside_the_vlan_and_tags_follow_the_egress_port() {
    // p0 access 10, p1 access 20, p2 trunk 10,20 native 30, p3 access 30.
    let (mut br, mut ports) = vlan_setup(&[
        VlanMode::Access(10),
        VlanMode::Access(20),
        trunk("10,20", Some(30)),
        VlanMode::Access(30),
    ]);
    let sent = step(
        &mut br,
        &mut ports,
        0,
        &[build_frame(MacAddr::BROADCAST, mac(1), 0x0806, &[0; 28])],
    );
    assert_eq!(sent, [0, 0, 1, 0]);
    // Untagged on the trunk = native 30: only p3, untagged.
    let sent = step(
        &mut br,
        &mut ports,
        2,
        &[build_frame(MacAddr::BROADCAST, mac(2), 0x0806, &[0; 28])],
    );
    assert_eq!(sent, [0, 0, 0, 1]);
    // Tagged 20 on the trunk: only p1.
    let sent = step(
        &mut br,
        &mut ports,
        2,
        &[tagged_frame(MacAddr::BROADCAST, mac(3), 0xa014)],
    );
    assert_eq!(sent, [0, 1, 0, 0]);
    assert_eq!(br.fdb.lookup(10, mac(1)), Some(0));
    assert_eq!(br.fdb.lookup(30, mac(2)), Some(2));
    assert_eq!(br.fdb.lookup(20, mac(3)), Some(2));
}

#[test]
fn frames_leave_with_exactly_the_tag_their_egress_port_wants() {
    let (p0, sent0) = LoopbackPort::linked("p0");
    let (p1, sent1) = LoopbackPort::linked("p1");
    let (p2, sent2) = LoopbackPort::linked("p2");
    // p1 is a trunk (10, native 30); p2 access 10; p0 access 30.
    let from_trunk = tagged_frame(MacAddr::BROADCAST, mac(1), 0xa00a); // PCP 5, VID 10
    let from_access = build_frame(MacAddr::BROADCAST, mac(2), 0x0800, &[0x45; 46]);
    sent1.inject(&from_trunk);
    sent2.inject(&from_access);
    let mut sw = crate::datapath::Switch::new();
    sw.add_bridge("br".into(), 300, 64).unwrap();
    let policy = |m: VlanMode| PortPolicy {
        vlan: m,
        ..Default::default()
    };
    for (name, port, mode) in [
        ("p0", p0, VlanMode::Access(30)),
        ("p1", p1, trunk("10", Some(30))),
        ("p2", p2, VlanMode::Access(10)),
    ] {
        sw.add_port_with_policy("br", name.into(), Box::new(port), policy(mode), None)
            .unwrap();
    }
    let mut batch = Batch::new();
    while sw.poll_once(&mut batch, Duration::ZERO) > 0 {}

    // The trunk's frame reaches the access port untagged, payload intact.
    let untagged = build_frame(MacAddr::BROADCAST, mac(1), 0x0800, &[0x45; 46]);
    assert_eq!(sent2.take_sent(), vec![untagged]);
    // The access port's frame reaches the trunk tagged 10, priority 0.
    let tagged = tagged_frame(MacAddr::BROADCAST, mac(2), 0x000a);
    assert_eq!(sent1.take_sent(), vec![tagged]);
    // VLAN 30's only other member saw neither.
    assert!(sent0.take_sent().is_empty());
}

#[test]
fn priority_bits_survive_trunk_to_trunk() {
    let mut a = LoopbackPort::new("a");
    let (b, sent_b) = LoopbackPort::linked("b");
    a.inject(&tagged_frame(MacAddr::BROADCAST, mac(1), 0xb064)); // PCP 5, DEI, VID 100
    let mut sw = crate::datapath::Switch::new();
    sw.add_bridge("br".into(), 300, 64).unwrap();
    sw.add_port("br", "a".into(), Box::new(a), None).unwrap();
    sw.add_port("br", "b".into(), Box::new(b), None).unwrap();
    let mut batch = Batch::new();
    while sw.poll_once(&mut batch, Duration::ZERO) > 0 {}
    assert_eq!(
        sent_b.take_sent(),
        vec![tagged_frame(MacAddr::BROADCAST, mac(1), 0xb064)]
    );
}

#[test]
fn vlan_refusals_are_counted_on_ingress() {
    let (mut br, mut ports) = vlan_setup(&[
        VlanMode::Access(10),
        trunk("20", None),
        VlanMode::Access(10),
    ]);
    step(
        &mut br,
        &mut ports,
        0,
        &[tagged_frame(mac(2), mac(1), 0x0014)],
    );
    step(
        &mut br,
        &mut ports,
        1,
        &[tagged_frame(mac(2), mac(3), 0x0015)],
    );
    step(
        &mut br,
        &mut ports,
        1,
        &[build_frame(mac(2), mac(3), 0x0800, &[0; 46])],
    );
    let c = |p: usize| ports[p].as_ref().unwrap().counters;
    assert_eq!(c(0).drops(DropReason::VlanTaggedOnAccess), 1);
    assert_eq!(c(1).drops(DropReason::VlanNotAllowed), 1);
    assert_eq!(c(1).drops(DropReason::VlanUntaggedOnTrunk), 1);
    assert!(br.fdb.is_empty());
}

#[test]
fn static_entry_outside_the_ports_vlan_is_filtered() {
    let (mut br, mut ports) = vlan_setup(&[VlanMode::Access(10), VlanMode::Access(20)]);
    br.fdb.add_static(10, mac(2), 1).unwrap();
    let sent = step(
        &mut br,
        &mut ports,
        0,
        &[build_frame(mac(2), mac(1), 0x0800, &[0; 46])],
    );
    assert_eq!(sent, [0, 0]);
    let c = ports[0].as_ref().unwrap().counters;
    assert_eq!(c.drops(DropReason::EgressVlanFiltered), 1);
}

#[test]
fn port_security_and_limits() {
    let (mut br, mut ports) = vlan_setup(&[VlanMode::Access(10), VlanMode::Access(10)]);
    {
        let p0 = ports[0].as_mut().unwrap();
        p0.set_policy(
            PortPolicy {
                vlan: VlanMode::Access(10),
                allowed_macs: vec![mac(1)],
                ..Default::default()
            },
            Duration::ZERO,
        );
        let p1 = ports[1].as_mut().unwrap();
        p1.set_policy(
            PortPolicy {
                vlan: VlanMode::Access(10),
                max_macs: Some(2),
                ..Default::default()
            },
            Duration::ZERO,
        );
    }
    br.fdb.reserve_port(1);
    let sent = step(
        &mut br,
        &mut ports,
        0,
        &[
            build_frame(MacAddr::BROADCAST, mac(1), 0x0806, &[0; 28]),
            build_frame(MacAddr::BROADCAST, mac(66), 0x0806, &[0; 28]),
        ],
    );
    assert_eq!(sent, [0, 1]);
    assert_eq!(
        ports[0]
            .as_ref()
            .unwrap()
            .counters
            .drops(DropReason::SrcMacNotAllowed),
        1
    );
    assert_eq!(br.fdb.lookup(10, mac(66)), None);

    let flood: Vec<_> = (10..20)
        .map(|n| build_frame(MacAddr::BROADCAST, mac(n), 0x0806, &[0; 28]))
        .collect();
    let sent = step(&mut br, &mut ports, 1, &flood);
    assert_eq!(sent, [2, 0]);
    assert_eq!(
        ports[1]
            .as_ref()
            .unwrap()
            .counters
            .drops(DropReason::PortMacLimit),
        8
    );
    assert_eq!(br.fdb.learned_on(1), 2);
}

#[test]
fn storm_control_limits_flooded_frames_only() {
    let (mut br, mut ports) = vlan_setup(&[VlanMode::default(), VlanMode::default()]);
    ports[0].as_mut().unwrap().set_policy(
        PortPolicy {
            storm_pps: Some(10),
            ..Default::default()
        },
        Duration::ZERO,
    );
    // Learn a unicast destination behind p1.
    step(
        &mut br,
        &mut ports,
        1,
        &[build_frame(MacAddr::BROADCAST, mac(2), 0x0806, &[0; 28])],
    );
    let bcast: Vec<_> = (0..30)
        .map(|_| build_frame(MacAddr::BROADCAST, mac(1), 0x0806, &[0; 28]))
        .collect();
    let uni: Vec<_> = (0..30)
        .map(|_| build_frame(mac(2), mac(1), 0x0800, &[0; 46]))
        .collect();
    let sent = step(&mut br, &mut ports, 0, &bcast);
    assert_eq!(sent[1], 10);
    let sent = step(&mut br, &mut ports, 0, &uni);
    assert_eq!(sent[1], 30, "known unicast is not limited");
    let c = ports[0].as_ref().unwrap().counters;
    assert_eq!(c.drops(DropReason::StormControl), 20);
    // Half a second later, five more broadcasts may pass.
    let mut batch = Batch::new();
    for f in &bcast {
        batch.push_copy(f);
    }
    process_batch(
        &mut batch,
        0,
        &mut br,
        &mut ports,
        Duration::from_millis(500),
    );
    assert_eq!(
        ports[0]
            .as_ref()
            .unwrap()
            .counters
            .drops(DropReason::StormControl),
        45
    );
}
