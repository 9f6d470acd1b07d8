//! Pipeline behaviour over loopback ports: flooding sets, unicast, learning,
//! drops, isolation between bridges.

use super::*;
use crate::port::loopback::LoopbackPort;
use crate::wire::ethernet::build_frame;
use crate::wire::MacAddr;

fn mac(n: u8) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0, n])
}

/// Bridge 0 has ports 0,1,2; bridge 1 has ports 3,4.
fn setup() -> (Vec<Bridge>, Vec<Option<PortSlot>>) {
    let mut ports = Vec::new();
    for (i, bridge) in [0usize, 0, 0, 1, 1].into_iter().enumerate() {
        let name = format!("p{i}");
        ports.push(Some(PortSlot {
            port: Box::new(LoopbackPort::new(&name)),
            name,
            bridge,
            counters: PortCounters::default(),
        }));
    }
    let bridges = vec![
        Bridge {
            name: "br0".into(),
            fdb: Fdb::new(64, 300),
            ports: vec![0, 1, 2],
        },
        Bridge {
            name: "br1".into(),
            fdb: Fdb::new(64, 300),
            ports: vec![3, 4],
        },
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
    process_batch(&batch, in_port, &mut bridges[b], ports, 0);
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
