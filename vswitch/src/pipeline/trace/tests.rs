//! Each kind of verdict, the absence of side effects, and agreement with
//! what the real pipeline does with the same frame.

use super::*;
use crate::fdb::Fdb;
use crate::packet::Batch;
use crate::pipeline::admit::PortPolicy;
use crate::pipeline::process_batch;
use crate::pipeline::vlan::{VlanMode, VlanSet};
use crate::port::loopback::LoopbackPort;
use crate::wire::ethernet::build_frame;
use crate::wire::MacAddr;

fn mac(n: u8) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0, n])
}

fn setup(policies: Vec<PortPolicy>) -> (Bridge, Vec<Option<PortSlot>>) {
    let n = policies.len();
    let ports = policies
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let name = format!("p{i}");
            Some(PortSlot::new(
                name.clone(),
                0,
                Box::new(LoopbackPort::counting(&name)),
                p,
            ))
        })
        .collect();
    let bridge = Bridge::new("br".into(), Fdb::new(64, 300), (0..n as PortId).collect());
    (bridge, ports)
}

fn access(v: u16) -> PortPolicy {
    PortPolicy {
        vlan: VlanMode::Access(v),
        ..Default::default()
    }
}

fn trunk(list: &str) -> PortPolicy {
    PortPolicy {
        vlan: VlanMode::Trunk {
            allowed: VlanSet::parse(list).unwrap(),
            native: None,
        },
        ..Default::default()
    }
}

fn frame(dst: MacAddr, src: MacAddr) -> Vec<u8> {
    build_frame(dst, src, 0x0800, &[0x45; 46])
}

fn outputs(r: &TraceReport) -> Vec<(String, Option<u16>)> {
    r.outputs
        .iter()
        .map(|o| (o.port.clone(), o.vlan_tag))
        .collect()
}

/// Sends `f` through the real pipeline; returns which ports transmitted.
fn real(f: &[u8], in_port: PortId, b: &mut Bridge, ports: &mut [Option<PortSlot>]) -> Vec<String> {
    let before: Vec<u64> = ports
        .iter()
        .map(|p| p.as_ref().unwrap().counters.tx_packets)
        .collect();
    let mut batch = Batch::new();
    batch.push_copy(f);
    process_batch(&mut batch, in_port, b, ports, Duration::ZERO);
    ports
        .iter()
        .zip(before)
        .filter(|(p, b)| p.as_ref().unwrap().counters.tx_packets > *b)
        .map(|(p, _)| p.as_ref().unwrap().name.clone())
        .collect()
}

#[test]
fn unknown_unicast_floods_then_a_learned_one_hits_and_trace_changes_nothing() {
    let (mut b, mut ports) = setup(vec![PortPolicy::default(); 3]);
    let f = frame(mac(2), mac(1));
    let r = trace(&f, 0, &b, &mut ports, Duration::ZERO);
    assert_eq!(r.drop, None);
    assert_eq!(outputs(&r), [("p1".into(), None), ("p2".into(), None)]);
    assert!(r
        .stages
        .iter()
        .any(|s| s.decision.contains("unknown unicast")));
    assert!(r
        .stages
        .iter()
        .any(|s| s.decision.contains("would be learned")));
    // No side effects: nothing learned, sent or counted.
    assert!(b.fdb.is_empty());
    for p in ports.iter().flatten() {
        assert_eq!(p.counters, Default::default());
    }
    assert_eq!(real(&f, 0, &mut b, &mut ports), ["p1", "p2"]);

    // mac(2) answers from p2: now known.
    real(&frame(mac(1), mac(2)), 2, &mut b, &mut ports);
    let r = trace(&f, 0, &b, &mut ports, Duration::ZERO);
    assert_eq!(outputs(&r), [("p2".into(), None)]);
    assert!(r
        .stages
        .iter()
        .any(|s| s.decision.contains("hit: learned entry -> port p2")));
    assert_eq!(real(&f, 0, &mut b, &mut ports), ["p2"]);
}

#[test]
fn vlans_decide_tags_and_filtering() {
    let (mut b, mut ports) = setup(vec![access(10), trunk("10,20"), access(20), access(10)]);
    let f = frame(MacAddr::BROADCAST, mac(1));
    let r = trace(&f, 0, &b, &mut ports, Duration::ZERO);
    assert_eq!(r.vlan, Some(10));
    assert_eq!(
        outputs(&r),
        [("p1".into(), Some(10)), ("p3".into(), None)],
        "{r:#?}"
    );
    assert!(r
        .stages
        .iter()
        .any(|s| s.decision.contains("p2: does not carry vlan 10")));
    let mut sent = real(&f, 0, &mut b, &mut ports);
    sent.sort();
    assert_eq!(sent, ["p1", "p3"]);
}

#[test]
fn drops_name_their_counter() {
    let mut locked = PortPolicy {
        allowed_macs: vec![mac(9)],
        ..Default::default()
    };
    let (b, mut ports) = setup(vec![locked.clone(), PortPolicy::default()]);
    let r = trace(&frame(mac(2), mac(1)), 0, &b, &mut ports, Duration::ZERO);
    assert_eq!(r.drop.as_deref(), Some("src_mac_not_allowed"));
    assert!(r.outputs.is_empty());

    locked.allowed_macs.clear();
    locked.max_macs = Some(0);
    let (b, mut ports) = setup(vec![locked, PortPolicy::default()]);
    let r = trace(&frame(mac(2), mac(1)), 0, &b, &mut ports, Duration::ZERO);
    assert_eq!(r.drop.as_deref(), Some("port_mac_limit"));

    let (b, mut ports) = setup(vec![access(10), access(10)]);
    let mut tagged = frame(mac(2), mac(1));
    tagged.splice(12..12, [0x81, 0x00, 0x00, 0x0a]);
    let r = trace(&tagged, 0, &b, &mut ports, Duration::ZERO);
    assert_eq!(r.drop.as_deref(), Some("vlan_tagged_on_access"));

    let (mut b, mut ports) = setup(vec![PortPolicy::default(); 2]);
    b.fdb.learn(0, mac(2), 0, 0, u32::MAX);
    let r = trace(&frame(mac(2), mac(1)), 0, &b, &mut ports, Duration::ZERO);
    assert_eq!(r.drop.as_deref(), Some("same_port"));

    let (b, mut ports) = setup(vec![access(10), access(20)]);
    let r = trace(
        &frame(MacAddr::BROADCAST, mac(1)),
        0,
        &b,
        &mut ports,
        Duration::ZERO,
    );
    assert_eq!(r.drop.as_deref(), Some("no_flood_ports"));

    let (b, mut ports) = setup(vec![PortPolicy::default(); 2]);
    let r = trace(&[0u8; 5], 0, &b, &mut ports, Duration::ZERO);
    assert_eq!(r.drop.as_deref(), Some("runt"));
}

#[test]
fn storm_control_is_checked_without_spending_credit() {
    let policy = PortPolicy {
        storm_pps: Some(1),
        ..Default::default()
    };
    let (mut b, mut ports) = setup(vec![policy, PortPolicy::default()]);
    let f = frame(MacAddr::BROADCAST, mac(1));
    for _ in 0..3 {
        let r = trace(&f, 0, &b, &mut ports, Duration::ZERO);
        assert_eq!(r.drop, None, "{r:#?}");
    }
    // The real frame spends the one credit; the next is over the limit.
    assert_eq!(real(&f, 0, &mut b, &mut ports), ["p1"]);
    let r = trace(&f, 0, &b, &mut ports, Duration::ZERO);
    assert_eq!(r.drop.as_deref(), Some("storm_control"));
}

#[test]
fn predicted_learning_matches_learning() {
    let mut fdb = Fdb::new(3, 300);
    fdb.add_static(0, mac(7), 2).unwrap();
    let cases = [
        (mac(1), 0, u32::MAX),
        (mac(1), 0, u32::MAX),
        (mac(1), 1, u32::MAX),
        (mac(7), 0, u32::MAX),
        (mac(2), 1, 1),
        (mac(3), 0, u32::MAX),
        (mac(4), 0, u32::MAX),
    ];
    for (m, port, limit) in cases {
        let predicted = fdb.predict_learn(0, m, port, limit);
        assert_eq!(fdb.learn(0, m, port, 0, limit), predicted, "{m} on {port}");
    }
}

#[test]
fn a_vxlan_port_shows_its_vni_and_remotes() {
    use crate::port::vxlan::VxlanConfig;
    use crate::port::vxlan::VxlanPort;
    use std::net::Ipv4Addr;
    let local = Ipv4Addr::new(10, 79, 0, 2);
    let remotes = vec![Ipv4Addr::new(10, 79, 0, 1), Ipv4Addr::new(10, 79, 0, 3)];
    let cfg = VxlanConfig {
        local,
        prefix_len: 24,
        gateway: None,
        remotes: remotes.clone(),
        vnis: vec![(42, 0)],
        dst_port: crate::wire::vxlan::DEFAULT_PORT,
        underlay: "up".into(),
        mac: VxlanConfig::default_mac(local),
        underlay_mtu: 1500,
    };
    let (mut b, mut ports) = setup(vec![PortPolicy::default()]);
    ports.push(Some(PortSlot::new(
        "vx".into(),
        0,
        Box::new(VxlanPort::new("vx", cfg)),
        PortPolicy::default(),
    )));
    b.ports.push(1);
    let r = trace(
        &frame(MacAddr::BROADCAST, mac(1)),
        0,
        &b,
        &mut ports,
        Duration::ZERO,
    );
    assert_eq!(r.vni, Some(42));
    assert_eq!(r.outputs.len(), 1);
    assert_eq!(
        r.outputs[0].encap.as_deref(),
        Some("vxlan vni 42 to 10.79.0.1, 10.79.0.3")
    );
}
