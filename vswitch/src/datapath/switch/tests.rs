//! The switch state driven through commands, over loopback ports.

use super::*;
use crate::control::protocol::FdbEntryKind;
use crate::pipeline::admit::PortPolicy;
use crate::port::loopback::LoopbackPort;
use crate::wire::ethernet::build_frame;
use crate::wire::MacAddr;
use tokio::sync::oneshot;

fn call<T>(
    sw: &mut Switch,
    poll: &mio::Poll,
    make: impl FnOnce(super::super::Reply<T>) -> Command,
) -> Result<T, DatapathError> {
    let (tx, mut rx) = oneshot::channel();
    sw.apply(make(tx), poll.registry(), Duration::ZERO);
    rx.try_recv().expect("apply always replies")
}

fn mac(n: u8) -> MacAddr {
    MacAddr([2, 0, 0, 0, 0, n])
}

#[test]
fn commands_build_and_tear_down() {
    let poll = mio::Poll::new().unwrap();
    let mut sw = Switch::new();
    for br in ["a", "b"] {
        call(&mut sw, &poll, |reply| Command::AddBridge {
            name: br.into(),
            aging_secs: 300,
            max_entries: 100,
            worker: None,
            spread: false,
            reply,
        })
        .unwrap();
    }
    let dup = call(&mut sw, &poll, |reply| Command::AddBridge {
        name: "a".into(),
        aging_secs: 300,
        max_entries: 100,
        worker: None,
        spread: false,
        reply,
    });
    assert_eq!(dup, Err(DatapathError::BridgeExists("a".into())));
    for (br, p) in [("a", "p1"), ("a", "p2"), ("b", "p3")] {
        call(&mut sw, &poll, |reply| Command::AddPort {
            bridge: br.into(),
            name: p.into(),
            port: Box::new(LoopbackPort::new(p)),
            policy: PortPolicy::default(),
            reply,
        })
        .unwrap();
    }
    let wrong_bridge = call(&mut sw, &poll, |reply| Command::FdbAdd {
        bridge: "a".into(),
        vlan: 0,
        mac: mac(1),
        port: "p3".into(),
        remote: None,
        reply,
    });
    assert!(matches!(
        wrong_bridge,
        Err(DatapathError::PortNotOnBridge { .. })
    ));
    call(&mut sw, &poll, |reply| Command::FdbAdd {
        bridge: "a".into(),
        vlan: 0,
        mac: mac(1),
        port: "p2".into(),
        remote: None,
        reply,
    })
    .unwrap();
    let rows = call(&mut sw, &poll, |reply| Command::FdbDump {
        bridge: "a".into(),
        reply,
    })
    .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].port, "p2");
    assert_eq!(rows[0].kind, FdbEntryKind::Static);

    // Deleting a port drops its table entries and frees its slot.
    call(&mut sw, &poll, |reply| Command::DelPort {
        name: "p2".into(),
        reply,
    })
    .unwrap();
    let rows = call(&mut sw, &poll, |reply| Command::FdbDump {
        bridge: "a".into(),
        reply,
    })
    .unwrap();
    assert!(rows.is_empty());
    call(&mut sw, &poll, |reply| Command::DelBridge {
        name: "b".into(),
        reply,
    })
    .unwrap();
    let stats = call(&mut sw, &poll, |reply| Command::Stats { reply }).unwrap();
    let names: Vec<_> = stats.iter().map(|s| s.port.as_str()).collect();
    assert_eq!(names, ["p1"]);
    let bridges = call(&mut sw, &poll, |reply| Command::Bridges { reply }).unwrap();
    assert_eq!(bridges.len(), 1);
    assert_eq!(bridges[0].ports, ["p1"]);
}

#[test]
fn poll_once_forwards_between_loopback_ports() {
    let poll = mio::Poll::new().unwrap();
    let mut sw = Switch::new();
    call(&mut sw, &poll, |reply| Command::AddBridge {
        name: "a".into(),
        aging_secs: 2,
        max_entries: 100,
        worker: None,
        spread: false,
        reply,
    })
    .unwrap();
    let mut p1 = LoopbackPort::new("p1");
    p1.inject(&build_frame(MacAddr::BROADCAST, mac(1), 0x0806, &[0; 28]));
    for (name, port) in [("p1", p1), ("p2", LoopbackPort::new("p2"))] {
        call(&mut sw, &poll, |reply| Command::AddPort {
            bridge: "a".into(),
            name: name.into(),
            port: Box::new(port),
            policy: PortPolicy::default(),
            reply,
        })
        .unwrap();
    }
    let mut batch = Batch::new();
    assert_eq!(sw.poll_once(&mut batch, Duration::ZERO), 1);
    assert_eq!(sw.poll_once(&mut batch, Duration::ZERO), 0);
    let stats = call(&mut sw, &poll, |reply| Command::Stats { reply }).unwrap();
    assert_eq!(stats[0].rx_packets, 1);
    assert_eq!(stats[1].tx_packets, 1);
    // The learned entry ages out at housekeeping.
    sw.housekeeping(2);
    assert_eq!(sw.bridges[0].as_ref().unwrap().fdb.len(), 1);
    sw.housekeeping(3);
    assert_eq!(sw.bridges[0].as_ref().unwrap().fdb.len(), 0);
}

#[test]
fn announce_event_sends_one_rarp_per_mac_behind_other_ports() {
    let mut sw = Switch::new();
    sw.add_bridge("a".into(), 300, 100).unwrap();
    let mut p1 = LoopbackPort::counting("p1");
    for n in 1..=40 {
        p1.inject(&build_frame(MacAddr::BROADCAST, mac(n), 0x0806, &[0; 28]));
    }
    let mut p2 = LoopbackPort::counting("p2");
    p2.inject(&build_frame(MacAddr::BROADCAST, mac(99), 0x0806, &[0; 28]));
    sw.add_port("a", "p1".into(), Box::new(p1), None).unwrap();
    sw.add_port("a", "p2".into(), Box::new(p2), None).unwrap();
    let mut batch = Batch::new();
    while sw.poll_once(&mut batch, Duration::ZERO) > 0 {}
    let before = sw.port_counters("p2").unwrap().tx_packets;
    assert_eq!(before, 40); // the 40 broadcasts flooded from p1

    let mut p3 = LoopbackPort::counting("p3");
    p3.pending_event = Some(PortEvent::AnnounceMacs);
    sw.add_port("a", "p3".into(), Box::new(p3), None).unwrap();
    sw.tick(Duration::from_millis(100), &mut batch);
    // 40 MACs behind p1 and one behind p2, in two bursts; none echoed
    // elsewhere.
    assert_eq!(sw.port_counters("p3").unwrap().tx_packets, 41);
    assert_eq!(sw.port_counters("p1").unwrap().tx_packets, 1);
    assert_eq!(sw.port_counters("p2").unwrap().tx_packets, before);
}

/// EVPN through commands: attach, ARP snooping into the journal, remote
/// MACs and flood lists in and out, detach.
#[test]
fn evpn_attaches_snoops_installs_and_detaches() {
    use crate::evpn::TunnelOp;
    use crate::fdb::MacJournal;
    use crate::port::vxlan::{VxlanConfig, VxlanPort};
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    let poll = mio::Poll::new().unwrap();
    let mut sw = Switch::new();
    for br in ["up", "g"] {
        call(&mut sw, &poll, |reply| Command::AddBridge {
            name: br.into(),
            aging_secs: 300,
            max_entries: 100,
            worker: None,
            spread: false,
            reply,
        })
        .unwrap();
    }
    let local = Ipv4Addr::new(192, 0, 2, 1);
    let vx = VxlanPort::new(
        "vx",
        VxlanConfig {
            local,
            prefix_len: 24,
            gateway: None,
            remotes: Vec::new(),
            vnis: vec![(100, 0)],
            dst_port: 4789,
            underlay: "u".into(),
            mac: VxlanConfig::default_mac(local),
            underlay_mtu: 1500,
        },
    );
    let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
    arp.extend_from_slice(&mac(1).0);
    arp.extend_from_slice(&[10, 0, 0, 5]);
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&[10, 0, 0, 6]);
    let mut vm = LoopbackPort::new("vm");
    let ports: [(&str, &str, Box<dyn crate::port::Port>); 3] = [
        ("up", "u", Box::new(LoopbackPort::new("u"))),
        ("g", "vx", Box::new(vx)),
        ("g", "vm", {
            vm.inject(&build_frame(MacAddr::BROADCAST, mac(1), 0x0806, &arp));
            Box::new(vm)
        }),
    ];
    for (br, name, port) in ports {
        call(&mut sw, &poll, |reply| Command::AddPort {
            bridge: br.into(),
            name: name.into(),
            port,
            policy: PortPolicy::default(),
            reply,
        })
        .unwrap();
    }
    let journal = Arc::new(MacJournal::default());
    let topo = call(&mut sw, &poll, |reply| Command::EvpnAttach {
        bridge: "g".into(),
        vtep: None,
        journal: Some(journal.clone()),
        learning: false,
        reply,
    })
    .unwrap();
    assert_eq!((topo.vtep.as_str(), topo.local_ip), ("vx", local));
    assert_eq!(topo.vnis, [(100, 0)]);
    assert!(topo.fresh);
    let again = call(&mut sw, &poll, |reply| Command::EvpnAttach {
        bridge: "g".into(),
        vtep: None,
        journal: Some(journal.clone()),
        learning: false,
        reply,
    })
    .unwrap();
    assert!(!again.fresh, "attaching again changes nothing");

    let mut batch = Batch::new();
    sw.poll_once(&mut batch, Duration::ZERO);
    let mut events = Vec::new();
    assert!(journal.drain(&mut events));
    let ips: Vec<Option<Ipv4Addr>> = events.iter().map(|e| e.ip).collect();
    assert_eq!(ips, [Some(Ipv4Addr::new(10, 0, 0, 5)), None]);
    assert!(events.iter().all(|e| e.local && e.mac == mac(1)));

    let vtep = Ipv4Addr::new(192, 0, 2, 9);
    let outcome = call(&mut sw, &poll, |reply| Command::EvpnUpdate {
        bridge: "g".into(),
        ops: vec![
            TunnelOp::Flood {
                vni: 100,
                vtep,
                member: true,
            },
            TunnelOp::Mac {
                vni: 100,
                mac: mac(9),
                vtep: Some(vtep),
            },
            TunnelOp::Mac {
                vni: 555,
                mac: mac(8),
                vtep: Some(vtep),
            },
        ],
        reply,
    })
    .unwrap();
    assert_eq!((outcome.applied, outcome.refused), (2, 1));
    let rows = call(&mut sw, &poll, |reply| Command::FdbDump {
        bridge: "g".into(),
        reply,
    })
    .unwrap();
    let remote = rows.iter().find(|r| r.mac == mac(9)).unwrap();
    assert_eq!(remote.kind, crate::control::protocol::FdbEntryKind::Evpn);
    assert_eq!(remote.remote.as_deref(), Some("192.0.2.9"));
    let locals = call(&mut sw, &poll, |reply| Command::EvpnLocalMacs {
        bridge: "g".into(),
        reply,
    })
    .unwrap();
    assert_eq!(locals, [(0, mac(1))]);

    call(&mut sw, &poll, |reply| Command::EvpnAttach {
        bridge: "g".into(),
        vtep: None,
        journal: None,
        learning: true,
        reply,
    })
    .unwrap();
    let rows = call(&mut sw, &poll, |reply| Command::FdbDump {
        bridge: "g".into(),
        reply,
    })
    .unwrap();
    assert!(
        rows.iter().all(|r| r.mac != mac(9)),
        "detach removes EVPN's entries"
    );
}
