use std::collections::BTreeMap;

use super::*;
use crate::datapath::BridgeState;
use crate::fdb::FdbCounters;
use crate::metrics::{DatapathMetrics, LoopCounters, VxlanDetails, VxlanRemote};
use crate::pipeline::counters::{PortCounters, PortStatsReport};
use crate::port::bond::details::{BondDetails, LacpMemberDetails, MemberDetails, PortInfoDetails};
use crate::wire::MacAddr;

fn port(bridge: &str, name: &str) -> PortStatsReport {
    let mut c = PortCounters::default();
    for _ in 0..10 {
        c.count_rx(100);
    }
    for _ in 0..5 {
        c.count_tx(60);
    }
    c.count_drops(DropReason::Runt, 2);
    PortStatsReport::new(bridge, name, &c)
}

fn port_info(state: u8) -> PortInfoDetails {
    PortInfoDetails {
        system_priority: 65535,
        system: MacAddr([2, 0, 0, 0, 0, 1]),
        key: 1,
        port_priority: 255,
        port: 1,
        state,
        state_flags: String::new(),
        state_names: Vec::new(),
    }
}

fn member(name: &str, up: bool, partner_state: u8) -> MemberDetails {
    MemberDetails {
        name: name.into(),
        link_up: up,
        active: false,
        collecting: up,
        distributing: up,
        rx_packets: 7,
        rx_bytes: 700,
        tx_packets: 3,
        tx_bytes: 300,
        lacp: Some(LacpMemberDetails {
            rx_state: "current".into(),
            mux_state: "collecting_distributing".into(),
            periodic_state: "fast".into(),
            selected: "selected".into(),
            actor: port_info(0x3d),
            partner: port_info(partner_state),
            lacpdus_in: 12,
            lacpdus_out: 13,
            bad_in: 1,
            markers_in: 0,
            marker_responses_out: 0,
        }),
    }
}

fn snapshot() -> Snapshot {
    let mut loop_counters = LoopCounters::default();
    loop_counters.count_iteration(3);
    loop_counters.count_iteration(0);
    loop_counters.count_iteration(0);
    loop_counters.count_sleep();
    loop_counters.count_burst(1);
    loop_counters.count_burst(3);
    loop_counters.count_burst(32);
    Snapshot {
        ports: vec![port("br0", "p1")],
        bridges: vec![BridgeState {
            name: "br0".into(),
            ports: vec!["p1".into()],
            fdb_entries: 3,
            fdb_counters: FdbCounters {
                learned: 9,
                moves: 1,
                learn_refused: 4,
                static_conflicts: 0,
                aged_out: 2,
            },
            aging_secs: 300,
            max_entries: 64,
            worker: 0,
            spread: false,
            macs_unshared: 0,
        }],
        datapath: DatapathMetrics {
            per_worker: vec![loop_counters],
            fdb_entries: vec![("br0".into(), BTreeMap::from([(0, 2), (10, 1)]))],
        },
        bonds: vec![(
            "bond0".into(),
            BondDetails {
                mode: "lacp".into(),
                hash: Some("l34".into()),
                primary: None,
                active: None,
                failovers: 2,
                slow_ignored: 0,
                members: vec![member("e0", true, 0x3d), member("e1", false, 0x05)],
                lacp: None,
            },
        )],
        vxlans: vec![(
            "vx0".into(),
            VxlanDetails {
                remotes: vec![
                    VxlanRemote {
                        remote: "192.0.2.2".into(),
                        neighbor_mac: Some("02:00:00:00:00:02".into()),
                        rx_packets: 8,
                        rx_bytes: 800,
                        tx_packets: 9,
                        tx_bytes: 900,
                    },
                    VxlanRemote {
                        remote: "192.0.2.3".into(),
                        ..VxlanRemote::default()
                    },
                ],
                remote_macs: 5,
            },
        )],
        evpn: vec![crate::evpn::EvpnReport {
            bridge: "ov".into(),
            session: crate::evpn::SessionState::Established,
            counters: crate::evpn::EvpnCounters {
                routes_sent: 3,
                reconnects: 1,
                ..Default::default()
            },
            vnis: vec![crate::evpn::VniReport {
                vni: 100,
                vlan: 10,
                local_macs: 2,
                remote_macs: 7,
                vteps: vec!["192.0.2.2".parse().unwrap()],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The lines of `text` that belong to family `name` (HELP, TYPE, samples).
fn family<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| {
            let l = l
                .strip_prefix("# HELP ")
                .or_else(|| l.strip_prefix("# TYPE "))
                .unwrap_or(l);
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with([' ', '{']) || rest.starts_with("_bucket"))
                || l.starts_with(&format!("{name}_sum "))
                || l.starts_with(&format!("{name}_count "))
        })
        .collect()
}

#[test]
fn port_counters_with_help_and_type() {
    let text = encode(&snapshot()).unwrap();
    assert_eq!(
        family(&text, "vswitch_port_rx_packets_total"),
        [
            "# HELP vswitch_port_rx_packets_total Frames received on the port (vsctl stats rx_packets).",
            "# TYPE vswitch_port_rx_packets_total counter",
            r#"vswitch_port_rx_packets_total{bridge="br0",port="p1"} 10"#,
        ]
    );
    assert!(text.contains("\nvswitch_port_rx_bytes_total{bridge=\"br0\",port=\"p1\"} 1000\n"));
    assert!(text.contains("\nvswitch_port_tx_packets_total{bridge=\"br0\",port=\"p1\"} 5\n"));
    assert!(text.contains("\nvswitch_port_tx_bytes_total{bridge=\"br0\",port=\"p1\"} 300\n"));
    let drops = family(&text, "vswitch_port_drops_total");
    assert_eq!(drops[1], "# TYPE vswitch_port_drops_total counter");
    // Every reason, zeros included.
    assert_eq!(drops.len(), 2 + DropReason::COUNT);
    assert!(drops.contains(&r#"vswitch_port_drops_total{bridge="br0",port="p1",reason="runt"} 2"#));
    assert!(
        drops.contains(&r#"vswitch_port_drops_total{bridge="br0",port="p1",reason="tx_error"} 0"#)
    );
}

#[test]
fn table_bond_vxlan_and_loop_families() {
    let text = encode(&snapshot()).unwrap();
    for line in [
        "# TYPE vswitch_fdb_entries gauge",
        r#"vswitch_fdb_entries{bridge="br0",vlan="0"} 2"#,
        r#"vswitch_fdb_entries{bridge="br0",vlan="10"} 1"#,
        r#"vswitch_fdb_max_entries{bridge="br0"} 64"#,
        "# TYPE vswitch_fdb_learning_refused_total counter",
        r#"vswitch_fdb_learning_refused_total{bridge="br0"} 4"#,
        r#"vswitch_fdb_moves_total{bridge="br0"} 1"#,
        r#"vswitch_fdb_aged_out_total{bridge="br0"} 2"#,
        r#"vswitch_bond_failovers_total{bond="bond0"} 2"#,
        "# TYPE vswitch_bond_member_up gauge",
        r#"vswitch_bond_member_up{bond="bond0",member="e0"} 1"#,
        r#"vswitch_bond_member_up{bond="bond0",member="e1"} 0"#,
        r#"vswitch_bond_member_collecting{bond="bond0",member="e1"} 0"#,
        r#"vswitch_bond_member_distributing{bond="bond0",member="e0"} 1"#,
        r#"vswitch_bond_member_rx_packets_total{bond="bond0",member="e0"} 7"#,
        r#"vswitch_lacp_rx_pdus_total{bond="bond0",member="e0"} 12"#,
        r#"vswitch_lacp_tx_pdus_total{bond="bond0",member="e0"} 13"#,
        r#"vswitch_lacp_bad_pdus_total{bond="bond0",member="e0"} 1"#,
        r#"vswitch_lacp_partner_synchronized{bond="bond0",member="e0"} 1"#,
        r#"vswitch_lacp_partner_synchronized{bond="bond0",member="e1"} 0"#,
        r#"vswitch_vxlan_remote_rx_packets_total{port="vx0",remote="192.0.2.2"} 8"#,
        r#"vswitch_vxlan_remote_tx_bytes_total{port="vx0",remote="192.0.2.2"} 900"#,
        r#"vswitch_vxlan_remote_resolved{port="vx0",remote="192.0.2.2"} 1"#,
        r#"vswitch_vxlan_remote_resolved{port="vx0",remote="192.0.2.3"} 0"#,
        r#"vswitch_vxlan_remote_macs{port="vx0"} 5"#,
        r#"vswitch_evpn_session_established{bridge="ov"} 1"#,
        r#"vswitch_evpn_routes_sent_total{bridge="ov"} 3"#,
        r#"vswitch_evpn_reconnects_total{bridge="ov"} 1"#,
        r#"vswitch_evpn_local_macs{bridge="ov",vni="100"} 2"#,
        r#"vswitch_evpn_remote_macs{bridge="ov",vni="100"} 7"#,
        r#"vswitch_evpn_remote_vteps{bridge="ov",vni="100"} 1"#,
        r#"vswitch_datapath_iterations_total{state="busy",worker="0"} 1"#,
        r#"vswitch_datapath_iterations_total{state="idle",worker="0"} 2"#,
        r#"vswitch_datapath_sleeps_total{worker="0"} 1"#,
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
    assert_eq!(
        family(&text, "vswitch_datapath_frames_per_batch"),
        [
            "# HELP vswitch_datapath_frames_per_batch Frames per non-empty receive burst (one port's rx_burst, at most 32).",
            "# TYPE vswitch_datapath_frames_per_batch histogram",
            r#"vswitch_datapath_frames_per_batch_bucket{le="1"} 1"#,
            r#"vswitch_datapath_frames_per_batch_bucket{le="2"} 1"#,
            r#"vswitch_datapath_frames_per_batch_bucket{le="4"} 2"#,
            r#"vswitch_datapath_frames_per_batch_bucket{le="8"} 2"#,
            r#"vswitch_datapath_frames_per_batch_bucket{le="16"} 2"#,
            r#"vswitch_datapath_frames_per_batch_bucket{le="32"} 3"#,
            r#"vswitch_datapath_frames_per_batch_bucket{le="+Inf"} 3"#,
            "vswitch_datapath_frames_per_batch_sum 36",
            "vswitch_datapath_frames_per_batch_count 3",
        ]
    );
}

#[test]
fn every_family_has_help_and_type_and_counters_end_in_total() {
    let text = encode(&snapshot()).unwrap();
    let mut families = 0;
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        families += 1;
        let mut parts = line["# TYPE ".len()..].split(' ');
        let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
        assert!(name.starts_with("vswitch_"), "{line}");
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} has no HELP"
        );
        assert_eq!(name.ends_with("_total"), kind == "counter", "{line}");
    }
    assert_eq!(families, 41, "{text}");
}

#[test]
fn odd_label_values_are_escaped() {
    let mut snap = Snapshot::default();
    snap.ports.push(port("br\"0", "p\\1\nx"));
    let text = encode(&snap).unwrap();
    assert!(
        text.lines()
            .any(|l| l == r#"vswitch_port_rx_packets_total{bridge="br\"0",port="p\\1\nx"} 10"#),
        "{text}"
    );
    // One sample per line: the newline in the name did not break a line.
    assert!(text
        .lines()
        .all(|l| l.is_empty() || l.starts_with('#') || l.starts_with("vswitch_")));
}

#[test]
fn an_empty_switch_still_shows_the_loop() {
    let text = encode(&Snapshot::default()).unwrap();
    assert!(text.contains("# TYPE vswitch_datapath_iterations_total counter"));
    assert!(text.contains("vswitch_datapath_frames_per_batch_count 0"));
    assert!(!text.contains("vswitch_port_"), "{text}");
}
