//! TCP and UDP across the switch with the hosts' default offloads left on:
//! checksum-partial and 64 KiB GSO frames go through tap and AF_PACKET
//! ports whole, and are finished or cut in software for a port that cannot
//! take them (VXLAN). "Ping works, TCP fails" must never happen.

use std::time::Duration;

use serde_json::Value;
use vswitch_tests::{run, wait_for, Daemon, Host, Netns};

/// Runs iperf3 (TCP, or UDP with `udp_len`) from `from` to `to` for `secs`
/// and returns the receiver's rate in Mbit/s and the number of retransmits.
fn iperf(from: &Host, to: &Host, secs: u32, udp_len: Option<u32>) -> (f64, u64) {
    iperf_ns(&from.ns, &to.ns, &to.ip, secs, udp_len)
}

fn iperf_ns(from: &Netns, to: &Netns, to_ip: &str, secs: u32, udp_len: Option<u32>) -> (f64, u64) {
    to.spawn(&["iperf3", "-s", "-1", "-B", to_ip]);
    wait_for(Duration::from_secs(10), "iperf3 to listen", || {
        let out = to.exec(&["ss", "-Hltn", "sport = :5201"]);
        out.stdout.contains("5201").then_some(())
    });
    let t = secs.to_string();
    let mut args = vec!["iperf3", "-c", to_ip, "-t", &t, "-J"];
    let len;
    if let Some(l) = udp_len {
        len = l.to_string();
        args.extend(["-u", "-b", "200M", "-l", &len]);
    }
    let out = run(
        &mut from.command(&args),
        Duration::from_secs(u64::from(secs) + 20),
    );
    let v: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("iperf3 JSON: {e}\n{}", out.describe_failure()));
    if let Some(err) = v.get("error") {
        panic!("iperf3: {err}");
    }
    let end = &v["end"];
    let received = if udp_len.is_some() {
        &end["sum"]
    } else {
        &end["sum_received"]
    };
    let mbps = received["bits_per_second"].as_f64().unwrap_or(0.0) / 1e6;
    let retransmits = end["sum_sent"]["retransmits"].as_u64().unwrap_or(0);
    (mbps, retransmits)
}

/// Offloads as a VM's or container's NIC has them by default: on.
fn assert_offloads_on(h: &Host) {
    let out = h.ns.exec_ok(&["ethtool", "-k", &h.ifname]);
    for feature in ["tx-checksumming: on", "tcp-segmentation-offload: on"] {
        assert!(
            out.contains(feature),
            "{}: {feature} expected\n{out}",
            h.ifname
        );
    }
}

fn port_stats(d: &Daemon, port: &str) -> (u64, u64) {
    let s = d.port_stats(port);
    (
        s["rx_packets"].as_u64().unwrap_or(0),
        s["rx_bytes"].as_u64().unwrap_or(0),
    )
}

fn drops(d: &Daemon, port: &str) -> Value {
    d.port_stats(port)["drops"].clone()
}

#[test]
fn tcp_between_afpacket_ports_with_offloads_on() {
    let d = Daemon::start("offl-afp");
    let a = Host::veth("offla", "10.91.0.1/24");
    let b = Host::veth("offlb", "10.91.0.2/24");
    d.ctl(&["bridge", "add", "br0"]);
    a.attach(&d, "br0", "pa");
    b.attach(&d, "br0", "pb");
    assert_offloads_on(&a);
    a.ping(&b, 3).assert_no_loss(3);

    let (mbps, _) = iperf(&a, &b, 3, None);
    eprintln!("TCP afpacket -> afpacket, offloads on: {mbps:.0} Mbit/s");
    assert!(mbps > 100.0, "TCP carried {mbps} Mbit/s");
    // The stream crossed as GSO frames, not MTU-sized ones.
    let (packets, bytes) = port_stats(&d, "pa");
    assert!(
        bytes / packets.max(1) > 3000,
        "average frame {} bytes: GSO frames were not passed whole",
        bytes / packets.max(1)
    );
    let (mbps, _) = iperf(&b, &a, 2, None);
    assert!(mbps > 100.0, "reverse TCP carried {mbps} Mbit/s");
    let (mbps, _) = iperf(&a, &b, 2, Some(1400));
    assert!(mbps > 50.0, "UDP carried {mbps} Mbit/s");
    for port in ["pa", "pb"] {
        let drops = drops(&d, port);
        for reason in [
            "offload_invalid",
            "offload_unsupported",
            "tx_too_big",
            "rx_truncated",
        ] {
            assert_eq!(drops[reason], 0, "{port} {reason}: {drops}");
        }
    }
}

#[test]
fn tcp_between_a_tap_and_an_afpacket_port_with_offloads_on() {
    let d = Daemon::start("offl-tap");
    d.ctl(&["bridge", "add", "br0"]);
    let vm = Host::tap(&d, "br0", "vm", "offlt", "10.92.0.1/24");
    let b = Host::veth("offlu", "10.92.0.2/24");
    b.attach(&d, "br0", "up");
    assert_offloads_on(&vm);
    vm.ping(&b, 3).assert_no_loss(3);

    let (mbps, _) = iperf(&vm, &b, 3, None);
    eprintln!("TCP tap -> afpacket, offloads on: {mbps:.0} Mbit/s");
    assert!(mbps > 100.0, "TCP carried {mbps} Mbit/s");
    let (packets, bytes) = port_stats(&d, "vm");
    assert!(bytes / packets.max(1) > 3000, "tap handed over GSO frames");
    let (mbps, _) = iperf(&b, &vm, 3, None);
    eprintln!("TCP afpacket -> tap, offloads on: {mbps:.0} Mbit/s");
    assert!(mbps > 100.0, "reverse TCP carried {mbps} Mbit/s");
}

#[test]
fn tcp_between_taps_with_offloads_on() {
    let d = Daemon::start("offl-2tap");
    d.ctl(&["bridge", "add", "br0"]);
    let vm1 = Host::tap(&d, "br0", "vm1", "offlv", "10.93.0.1/24");
    let vm2 = Host::tap(&d, "br0", "vm2", "offlw", "10.93.0.2/24");
    vm1.ping(&vm2, 3).assert_no_loss(3);
    let (mbps, _) = iperf(&vm1, &vm2, 3, None);
    eprintln!("TCP tap -> tap, offloads on: {mbps:.0} Mbit/s");
    assert!(mbps > 100.0, "TCP carried {mbps} Mbit/s");
}

/// VM A (veth, offloads on) on an overlay bridge whose VXLAN port rides an
/// underlay to namespace P, where the kernel's vxlan device and bridge lead
/// to VM B. The VTEP cannot take GSO or partial checksums: the switch cuts
/// and finishes A's frames in software before it encapsulates them.
#[test]
fn tcp_into_vxlan_is_segmented_in_software() {
    let d = Daemon::start("offl-vx");
    let p = Host::veth("offlp", "10.94.0.1/24");
    let vmb = Netns::new("offlvmb");
    let sh = |ns: &Netns, cmd: &str| {
        ns.exec_ok(&["sh", "-c", cmd]);
    };
    sh(
        &p.ns,
        "ip link add vx42 type vxlan id 42 remote 10.94.0.2 local 10.94.0.1 dstport 4789 dev eth0 \
         && ip link add brP type bridge && ip link set vx42 master brP \
         && ip link set vx42 up && ip link set brP up",
    );
    p.ns.exec_ok(&[
        "ip",
        "link",
        "add",
        "vmB",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        vmb.name(),
    ]);
    sh(&p.ns, "ip link set vmB master brP && ip link set vmB up");
    sh(
        &vmb,
        "ip link set eth0 mtu 1450 && ip addr add 10.95.0.2/24 dev eth0 && ip link set eth0 up",
    );

    d.ctl(&["bridge", "add", "underlay"]);
    p.attach(&d, "underlay", "up");
    d.ctl(&["bridge", "add", "ov"]);
    d.ctl(&[
        "port",
        "add",
        "ov",
        "vx",
        "type=vxlan",
        "underlay=up",
        "local=10.94.0.2",
        "remote=10.94.0.1",
        "vni=42",
    ]);
    let a = Host::veth("offlva", "10.95.0.1/24");
    a.ns.exec_ok(&["ip", "link", "set", "eth0", "mtu", "1450"]);
    a.attach(&d, "ov", "vma");
    assert_offloads_on(&a);

    wait_for(
        Duration::from_secs(10),
        "the overlay to carry pings",
        || (a.ns.ping("10.95.0.2", 1).received == 1).then_some(()),
    );
    let (mbps, _) = iperf_ns(&a.ns, &vmb, "10.95.0.2", 3, None);
    eprintln!("TCP into VXLAN, offloads on, software segmentation: {mbps:.0} Mbit/s");
    assert!(mbps > 50.0, "TCP over VXLAN carried {mbps} Mbit/s");
    let (rev, _) = iperf_ns(&vmb, &a.ns, "10.95.0.1", 3, None);
    eprintln!("TCP out of VXLAN (kernel VTEP with offloads on): {rev:.0} Mbit/s");
    eprintln!("underlay: {}", d.port_stats("up"));
    let vx = d.port_stats("vx");
    for reason in ["tx_too_big", "offload_unsupported", "offload_invalid"] {
        assert_eq!(vx["drops"][reason], 0, "{reason}: {vx}");
    }
}

/// An AF_XDP port takes no offload requests: GSO frames from an afpacket
/// host are cut and checksummed in software on their way to it, and its
/// own receive side repairs the partial checksums of its host.
#[test]
fn tcp_between_afpacket_and_afxdp_ports_with_offloads_on() {
    let d = Daemon::start("offl-xdp");
    let a = Host::veth("offlxa", "10.96.0.1/24");
    let b = Host::veth("offlxb", "10.96.0.2/24");
    d.ctl(&["bridge", "add", "br0"]);
    a.attach(&d, "br0", "pa");
    let iface = format!("iface={}", b.root_if());
    d.ctl(&["port", "add", "br0", "pb", "type=afxdp", &iface]);
    assert_offloads_on(&a);
    wait_for(Duration::from_secs(10), "pings across", || {
        (a.ping(&b, 1).received == 1).then_some(())
    });
    let (mbps, _) = iperf(&a, &b, 3, None);
    eprintln!("TCP afpacket -> afxdp, offloads on: {mbps:.0} Mbit/s");
    assert!(mbps > 100.0, "TCP carried {mbps} Mbit/s");
    let (mbps, _) = iperf(&b, &a, 3, None);
    eprintln!("TCP afxdp -> afpacket, offloads on: {mbps:.0} Mbit/s");
    assert!(mbps > 100.0, "TCP carried {mbps} Mbit/s");
    for port in ["pa", "pb"] {
        let drops = drops(&d, port);
        for reason in ["offload_invalid", "offload_unsupported", "tx_too_big"] {
            assert_eq!(drops[reason], 0, "{port} {reason}: {drops}");
        }
    }
}
