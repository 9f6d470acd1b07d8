//! VXLAN against the kernel's own vxlan device, and between two vswitchd
//! instances with two VNIs that must stay apart.

use std::time::Duration;

use serde_json::Value;
use vswitch_tests::{entries_of, wait_for, Cable, Daemon, Host, Netns};

fn vxlan_port(d: &Daemon, port: &str) -> Value {
    let shown = d.ctl(&["vxlan", "show", port]);
    entries_of(shown)[0]["details"]["vxlan"].clone()
}

/// Namespace A: the kernel's vxlan device (VNI 42) bridged by the kernel
/// bridge to "VM" VMA. vswitchd: underlay port on the veth to A, VTEP
/// 10.79.0.2, and VM B on the overlay bridge.
#[test]
fn interoperates_with_the_kernel_vxlan_device() {
    let d = Daemon::start("vxlan-kernel");
    let a = Host::veth("vxka", "10.79.0.1/24");
    let vma = Netns::new("vxkvma");
    let ns = |args: &[&str]| a.ns.exec_ok(args);
    ns(&[
        "ip",
        "link",
        "add",
        "vx42",
        "type",
        "vxlan",
        "id",
        "42",
        "remote",
        "10.79.0.2",
        "local",
        "10.79.0.1",
        "dstport",
        "4789",
        "dev",
        "eth0",
    ]);
    ns(&["ip", "link", "add", "brA", "type", "bridge"]);
    ns(&["ip", "link", "set", "vx42", "master", "brA"]);
    ns(&[
        "ip",
        "link",
        "add",
        "vmA",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        vma.name(),
    ]);
    ns(&["ip", "link", "set", "vmA", "master", "brA"]);
    for dev in ["vx42", "vmA", "brA"] {
        ns(&["ip", "link", "set", dev, "up"]);
    }
    vma.exec_ok(&["ip", "link", "set", "eth0", "mtu", "1450"]);
    vma.exec_ok(&["ip", "addr", "add", "10.80.0.1/24", "dev", "eth0"]);
    vma.exec_ok(&["ip", "link", "set", "eth0", "up"]);
    let vma_mac = vma.mac("eth0");

    d.ctl(&["bridge", "add", "underlay"]);
    a.attach(&d, "underlay", "up");
    d.ctl(&["bridge", "add", "ov"]);
    d.ctl(&[
        "port",
        "add",
        "ov",
        "vx",
        "type=vxlan",
        "local=10.79.0.2",
        "remote=10.79.0.1",
        "vni=42",
        "underlay=up",
    ]);
    let b = Host::veth("vxkb", "10.80.0.2/24");
    b.ns.exec_ok(&["ip", "link", "set", "eth0", "mtu", "1450"]);
    b.attach(&d, "ov", "vm");

    // The VTEP resolves its remote by ARP, then the VMs talk.
    wait_for(
        Duration::from_secs(5),
        "the VTEP to resolve 10.79.0.1",
        || (vxlan_port(&d, "vx")["remotes"][0]["neighbor"] == "reachable").then_some(()),
    );
    let ping = b.ns.ping("10.80.0.1", 5);
    assert_eq!(ping.received, 5, "VM B -> VM A over VXLAN: {ping:?}");
    let ping = vma.ping("10.80.0.2", 5);
    assert_eq!(ping.received, 5, "VM A -> VM B over VXLAN: {ping:?}");

    // Our table knows VMA behind the tunnel, with the kernel VTEP's address;
    // the kernel learned VM B behind ours.
    let fdb = d.fdb("ov");
    let entry = fdb
        .iter()
        .find(|e| e["mac"] == vma_mac.as_str())
        .unwrap_or_else(|| panic!("VM A's MAC not learned: {fdb:?}"));
    assert_eq!(
        (entry["port"].as_str(), entry["remote"].as_str()),
        (Some("vx"), Some("10.79.0.1"))
    );
    let kernel_fdb = a.ns.exec_ok(&["bridge", "fdb", "show", "dev", "vx42"]);
    assert!(
        kernel_fdb.contains(&b.mac) && kernel_fdb.contains("dst 10.79.0.2"),
        "the kernel did not learn VM B behind our VTEP: {kernel_fdb}"
    );

    // TCP through the tunnel, measured by iperf3 (bounded).
    vma.spawn(&["iperf3", "-s", "-1", "-p", "5401"]);
    std::thread::sleep(Duration::from_millis(500));
    let out =
        b.ns.exec_ok(&["iperf3", "-c", "10.80.0.1", "-p", "5401", "-t", "3", "-J"]);
    let report: Value = serde_json::from_str(&out).expect("iperf3 JSON");
    let bps = report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0);
    eprintln!(
        "iperf3 TCP VM B -> VM A over VXLAN: {:.2} Gbit/s",
        bps / 1e9
    );
    assert!(bps > 10e6, "TCP through the tunnel: {bps} bit/s");

    let vx = vxlan_port(&d, "vx");
    let remote = &vx["remotes"][0];
    assert!(remote["tx_packets"].as_u64().unwrap() > 1000, "{vx}");
    assert!(remote["rx_packets"].as_u64().unwrap() > 100, "{vx}");
    assert_eq!(vx["inner_mtu"], 1450);
    // Nothing malformed, unresolved or oversize on the tunnel. (A flood
    // that arrived before the VM port existed may show as no_flood_ports.)
    let stats = d.port_stats("vx");
    for (reason, n) in stats["drops"].as_object().unwrap() {
        if reason.starts_with("vxlan_") || reason.starts_with("tx_") {
            assert_eq!(n, 0, "{reason} on the tunnel port: {stats}");
        }
    }
}

/// Two vswitchd "hosts" joined by a wire, VNI 100 <-> VLAN 10 and VNI 200
/// <-> VLAN 20 on both; four VMs in one IP subnet, two per VNI.
#[test]
fn two_switches_two_vnis_stay_isolated() {
    let wire = Cable::new();
    let mut d1 = Daemon::start("vxlan-h1");
    let d2 = Daemon::start("vxlan-h2");
    let mut vms = Vec::new();
    for (d, under, local, remote, tag, last) in [
        (&d1, &wire.a, "10.79.1.1", "10.79.1.2", "vx2h1", 1),
        (&d2, &wire.b, "10.79.1.2", "10.79.1.1", "vx2h2", 2),
    ] {
        d.ctl(&["bridge", "add", "underlay"]);
        d.ctl(&[
            "port",
            "add",
            "underlay",
            "up",
            "type=afpacket",
            &format!("iface={under}"),
        ]);
        d.ctl(&["bridge", "add", "ov"]);
        d.ctl(&[
            "port",
            "add",
            "ov",
            "vx",
            "type=vxlan",
            &format!("local={local}"),
            &format!("remote={remote}"),
            "vni=100:10,200:20",
            "underlay=up",
        ]);
        for (vlan, host) in [(10u16, last), (20, last + 10)] {
            let h = Host::veth(&format!("{tag}v{vlan}"), &format!("10.81.0.{host}/24"));
            h.ns.exec_ok(&["ip", "link", "set", "eth0", "mtu", "1450"]);
            let iface = format!("iface={}", h.root_if());
            let port = format!("vm{vlan}");
            d.ctl(&[
                "port",
                "add",
                "ov",
                &port,
                "type=afpacket",
                &iface,
                &format!("access={vlan}"),
            ]);
            vms.push(h);
        }
    }
    let (h1a, h1b, h2a, h2b) = (&vms[0], &vms[1], &vms[2], &vms[3]);
    for d in [&d1, &d2] {
        wait_for(
            Duration::from_secs(5),
            "the VTEPs to resolve each other",
            || (vxlan_port(d, "vx")["remotes"][0]["neighbor"] == "reachable").then_some(()),
        );
    }
    assert_eq!(h1a.ping(h2a, 3).received, 3, "VNI 100 across hosts");
    assert_eq!(h1b.ping(h2b, 3).received, 3, "VNI 200 across hosts");
    let rx0 = h2b.counters().rx_packets;
    h1a.ping(h2b, 3).assert_all_lost();
    h1a.ns.ping_broadcast("10.81.0.255", 20, 0.01);
    std::thread::sleep(Duration::from_millis(300));
    let leaked = h2b.counters().rx_packets - rx0;
    assert!(
        leaked <= 2,
        "VNI 200's host received {leaked} frames from VNI 100"
    );

    // Each VNI's MACs are learned in its own VLAN behind the tunnel.
    let fdb = d1.fdb("ov");
    let has = |vlan: u16, mac: &str| {
        fdb.iter().any(|e| {
            e["vlan"] == vlan && e["mac"] == mac && e["port"] == "vx" && e["remote"] == "10.79.1.2"
        })
    };
    assert!(has(10, &h2a.mac) && has(20, &h2b.mac), "{fdb:?}");
    assert!(!has(10, &h2b.mac) && !has(20, &h2a.mac), "{fdb:?}");

    // A static remote MAC persists and shows with its VTEP.
    d1.ctl(&[
        "fdb",
        "add",
        "ov",
        "02:00:00:00:77:01",
        "vx",
        "vlan=10",
        "remote=10.79.1.2",
    ]);
    let err = d1.ctl_err(&[
        "fdb",
        "add",
        "ov",
        "02:00:00:00:77:02",
        "vx",
        "vlan=10",
        "remote=10.79.1.9",
    ]);
    assert!(err.contains("not a remote"), "{err}");
    let fdb = d1.fdb("ov");
    assert!(
        fdb.iter().any(|e| e["mac"] == "02:00:00:00:77:01"
            && e["type"] == "static"
            && e["remote"] == "10.79.1.2"),
        "{fdb:?}"
    );

    // A restart restores the VTEP, its VNI map and the static remote MAC,
    // and the tunnel carries traffic again.
    d1.restart();
    wait_for(
        Duration::from_secs(5),
        "the restored VTEP to resolve its remote",
        || (vxlan_port(&d1, "vx")["remotes"][0]["neighbor"] == "reachable").then_some(()),
    );
    assert_eq!(vms[0].ping(&vms[2], 3).received, 3, "VNI 100 after restart");
    let fdb = d1.fdb("ov");
    assert!(
        fdb.iter()
            .any(|e| e["mac"] == "02:00:00:00:77:01" && e["remote"] == "10.79.1.2"),
        "static remote MAC after restart: {fdb:?}"
    );
}

#[test]
fn vxlan_ports_refuse_bad_configuration() {
    let d = Daemon::start("vxlan-config");
    d.ctl(&["bridge", "add", "ov"]);
    let base = [
        "port",
        "add",
        "ov",
        "vx",
        "type=vxlan",
        "local=10.79.2.1",
        "remote=10.79.2.2",
        "vni=5",
    ];
    let err = d.ctl_err(&[&base[..], &["underlay=nope"]].concat());
    assert!(err.contains("underlay"), "{err}");
    d.ctl(&["port", "add", "ov", "up", "type=tap", "iface=vsvxcfg0"]);
    let err = d.ctl_err(&[&base[..], &["underlay=up", "access=10"]].concat());
    assert!(err.contains("access"), "{err}");
    d.ctl(&[&base[..], &["underlay=up"]].concat());
    let err = d.ctl_err(&[
        "port",
        "add",
        "ov",
        "vx2",
        "type=vxlan",
        "local=10.79.2.1",
        "remote=10.79.2.3",
        "vni=6",
        "underlay=up",
    ]);
    assert!(err.contains("already"), "{err}");
    let err = d.ctl_err(&[
        "port",
        "add",
        "ov",
        "vx3",
        "type=vxlan",
        "local=10.79.2.9",
        "remote=10.79.2.3",
        "vni=6",
        "underlay=vx",
    ]);
    assert!(err.contains("itself a vxlan"), "{err}");
    let shown = vxlan_port(&d, "vx");
    assert_eq!(shown["local"], "10.79.2.1");
    assert_eq!(shown["vnis"][0]["vni"], 5);
}
