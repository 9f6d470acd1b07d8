//! VLAN modes and L2 policy against independent peers: the kernel's 802.1Q
//! devices on a trunk, namespace hosts on access ports, and raw frames
//! written by hand (double tags, spoofed and random source MACs).

use std::time::Duration;

use serde_json::Value;
use vswitch_tests::{Daemon, Host, Netns};

const BR: &str = "br0";

/// Sends frames out of `ifname` in `ns` through a raw AF_PACKET socket.
/// `script` is Python that defines `frames()`, a generator of bytes objects;
/// `count` frames are taken from it.
fn send_raw(ns: &Netns, ifname: &str, script: &str, count: u32) {
    let program = format!(
        "import socket, os, random, struct\n\
         s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n\
         s.bind(({ifname:?}, 0))\n\
         {script}\n\
         n = 0\n\
         for f in frames():\n\
         \x20   if n == {count}: break\n\
         \x20   while True:\n\
         \x20       try:\n\
         \x20           s.send(f); break\n\
         \x20       except BlockingIOError:\n\
         \x20           pass\n\
         \x20       except OSError as e:\n\
         \x20           if e.errno != 105: raise\n\
         \x20   n += 1\n"
    );
    ns.exec_ok(&["python3", "-c", &program]);
}

fn mac_bytes(mac: &str) -> String {
    let hex: String = mac.split(':').collect();
    format!("bytes.fromhex({hex:?})")
}

fn drops(d: &Daemon, port: &str, reason: &str) -> u64 {
    d.port_stats(port)["drops"][reason]
        .as_u64()
        .unwrap_or_else(|| panic!("no drop reason {reason} in stats of {port}"))
}

fn fdb_has(fdb: &[Value], vlan: u16, mac: &str, port: &str) -> bool {
    fdb.iter()
        .any(|e| e["vlan"] == vlan && e["mac"] == mac && e["port"] == port)
}

/// The trunk host T on trunk port `pt` (trunk=10,20 native=30). This kernel
/// has no 802.1Q devices, so T speaks VLANs through scapy: an independent
/// 802.1Q implementation that builds the tagged frames and parses the
/// tagged replies.
fn trunk_host(d: &Daemon, tag: &str) -> Host {
    let t = Host::veth(tag, "10.77.99.1/24");
    let iface = format!("iface={}", t.root_if());
    d.ctl(&[
        "port",
        "add",
        BR,
        "pt",
        "type=afpacket",
        &iface,
        "trunk=10,20",
        "native=30",
    ]);
    t
}

/// From trunk host `t`, for each (name, vlan or 0 for untagged, our IP,
/// peer IP): an ARP request and then an ICMP echo in that VLAN. Returns per
/// name: the VLAN the ARP reply carried (`null` when untagged, absent when
/// there was no reply), the replying MAC, whether the echo was answered and
/// its reply's VLAN.
fn scapy_probes(t: &Host, probes: &[(&str, u16, &str, &str)]) -> Value {
    const SCRIPT: &str = r#"
import json, sys
from scapy.all import ARP, Dot1Q, Ether, ICMP, IP, conf, srp1
conf.verb = 0
iface, mine = sys.argv[1], sys.argv[2]
out = {}
for name, vlan, my_ip, peer_ip in json.loads(sys.argv[3]):
    def frame(dst, payload):
        f = Ether(src=mine, dst=dst)
        return f / Dot1Q(vlan=vlan) / payload if vlan else f / payload
    vid = lambda p: p[Dot1Q].vlan if Dot1Q in p else None
    r = srp1(frame("ff:ff:ff:ff:ff:ff", ARP(op=1, hwsrc=mine, psrc=my_ip, pdst=peer_ip)),
             iface=iface, timeout=2)
    if r is None or ARP not in r:
        out[name] = {}
        continue
    e = srp1(frame(r[ARP].hwsrc, IP(src=my_ip, dst=peer_ip) / ICMP()), iface=iface, timeout=2)
    out[name] = {
        "arp_vlan": vid(r),
        "peer": r[ARP].hwsrc,
        "echo": e is not None and ICMP in e and e[ICMP].type == 0,
        "echo_vlan": vid(e) if e is not None else None,
    }
print(json.dumps(out))
"#;
    let list: Vec<Value> = probes
        .iter()
        .map(|(n, v, mine, peer)| serde_json::json!([n, v, mine, peer]))
        .collect();
    let out = t.ns.exec_ok(&[
        "python3",
        "-c",
        SCRIPT,
        &t.ifname,
        &t.mac,
        &Value::Array(list).to_string(),
    ]);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("scapy said {out:?}: {e}"))
}

fn access_host(d: &Daemon, tag: &str, port: &str, vlan: u16, cidr: &str) -> Host {
    let h = Host::veth(tag, cidr);
    let iface = format!("iface={}", h.root_if());
    let access = format!("access={vlan}");
    d.ctl(&["port", "add", BR, port, "type=afpacket", &iface, &access]);
    h
}

#[test]
fn trunk_and_access_ports_against_scapy_and_kernel_hosts() {
    let mut d = Daemon::start("vlan-trunk");
    d.ctl(&["bridge", "add", BR]);
    let t = trunk_host(&d, "vlant");
    let a = access_host(&d, "vlana", "pa", 10, "10.77.10.2/24");
    let b = access_host(&d, "vlanb", "pb", 20, "10.77.20.2/24");
    let n = access_host(&d, "vlann", "pn", 30, "10.77.30.2/24");
    // A VM on VLAN 10 through a tap, moved to access 10 while running.
    let e = Host::tap(&d, BR, "pe", "vlane", "10.77.10.3/24");
    d.ctl(&["port", "set", "pe", "access=10"]);
    // X sits in A's IP subnet but in VLAN 20: only the switch separates them.
    let x = access_host(&d, "vlanx", "px", 20, "10.77.10.9/24");

    let r = scapy_probes(
        &t,
        &[
            ("a", 10, "10.77.10.1", "10.77.10.2"),
            ("e", 10, "10.77.10.1", "10.77.10.3"),
            ("b", 20, "10.77.20.1", "10.77.20.2"),
            ("n", 0, "10.77.30.1", "10.77.30.2"),
            ("x_in_vlan10", 10, "10.77.10.1", "10.77.10.9"),
            ("not_allowed", 40, "10.77.10.1", "10.77.10.2"),
        ],
    );
    eprintln!("scapy probes: {r}");
    for (name, host, vlan) in [
        ("a", &a, Some(10)),
        ("e", &e, Some(10)),
        ("b", &b, Some(20)),
    ] {
        assert_eq!(r[name]["peer"], host.mac.as_str(), "{name}: {r}");
        assert_eq!(r[name]["arp_vlan"], serde_json::json!(vlan), "{name}: {r}");
        assert_eq!(r[name]["echo"], true, "{name}: {r}");
        assert_eq!(r[name]["echo_vlan"], serde_json::json!(vlan), "{name}: {r}");
    }
    // The native VLAN enters and leaves untagged.
    assert_eq!(r["n"]["peer"], n.mac.as_str(), "{r}");
    assert_eq!(r["n"]["arp_vlan"], Value::Null, "{r}");
    assert_eq!(r["n"]["echo"], true, "{r}");
    assert_eq!(r["n"]["echo_vlan"], Value::Null, "{r}");
    // X is in VLAN 20: a VLAN 10 request for its address finds nobody, and
    // a VLAN the trunk does not carry is dropped and counted.
    assert_eq!(r["x_in_vlan10"], serde_json::json!({}), "{r}");
    assert_eq!(r["not_allowed"], serde_json::json!({}), "{r}");
    assert!(drops(&d, "pt", "vlan_not_allowed") >= 1);

    // Access hosts of one VLAN reach each other; different VLAN, same
    // subnet: nothing gets through, and X hears none of A's broadcasts.
    assert_eq!(a.ping(&e, 3).received, 3);
    let x_rx0 = x.counters().rx_packets;
    a.ping(&x, 3).assert_all_lost();
    a.ns.ping_broadcast("10.77.10.255", 30, 0.01);
    std::thread::sleep(Duration::from_millis(300));
    let x_rx = x.counters().rx_packets - x_rx0;
    assert!(
        x_rx <= 3,
        "host in VLAN 20 received {x_rx} frames from VLAN 10"
    );

    // The table is per VLAN: T's one MAC sits behind pt in three networks.
    let fdb = d.fdb(BR);
    for vlan in [10, 20, 30] {
        assert!(
            fdb_has(&fdb, vlan, &t.mac, "pt"),
            "T in VLAN {vlan}: {fdb:?}"
        );
    }
    assert!(fdb_has(&fdb, 10, &a.mac, "pa"));
    let only10 = vswitch_tests::entries_of(d.ctl(&["fdb", "show", BR, "vlan=10"]));
    assert!(
        !only10.is_empty() && only10.iter().all(|e| e["vlan"] == 10),
        "{only10:?}"
    );

    // Port show describes the modes.
    let pt = d.ctl(&["port", "show", "pt"]);
    assert_eq!(pt["vlan_mode"], "trunk 10,20, native 30", "{pt}");
    assert_eq!(d.ctl(&["port", "show", "pe"])["vlan_mode"], "access 10");

    // Modes survive a restart, and tagged traffic flows again.
    d.restart();
    d.wait_ports_up(Duration::from_secs(10));
    assert_eq!(
        d.ctl(&["port", "show", "pt"])["vlan_mode"],
        "trunk 10,20, native 30"
    );
    let again = scapy_probes(&t, &[("b", 20, "10.77.20.1", "10.77.20.2")]);
    assert_eq!(again["b"]["echo_vlan"], 20, "after restart: {again}");
    a.ping(&x, 2).assert_all_lost();
}

#[test]
fn double_tagged_frames_from_an_access_port_go_nowhere() {
    let d = Daemon::start("vlan-hop");
    d.ctl(&["bridge", "add", BR]);
    let t = trunk_host(&d, "hopt");
    let a = access_host(&d, "hopa", "pa", 10, "10.77.10.2/24");
    let b = access_host(&d, "hopb", "pb", 20, "10.77.20.2/24");

    let t_rx0 = t.counters().rx_packets;
    let b_rx0 = b.counters().rx_packets;
    // Outer tag 10 (A's own VLAN) or a priority tag, inner tag 20, then an
    // ARP request for T's VLAN 20 address, broadcast.
    let script = format!(
        "def frames():\n\
         \x20   src = {src}\n\
         \x20   arp = bytes.fromhex('0001080006040001') + src + bytes([10,77,20,2]) + bytes(6) + bytes([10,77,20,1])\n\
         \x20   for outer in (0x000a, 0x0000):\n\
         \x20       for _ in range(50):\n\
         \x20           yield b'\\xff'*6 + src + struct.pack('!HHHH', 0x8100, outer, 0x8100, 20) + bytes.fromhex('0806') + arp\n",
        src = mac_bytes(&a.mac)
    );
    send_raw(&a.ns, "eth0", &script, 100);
    std::thread::sleep(Duration::from_millis(300));

    assert_eq!(drops(&d, "pa", "vlan_tagged_on_access"), 50);
    assert_eq!(drops(&d, "pa", "vlan_double_tagged"), 50);
    let t_rx = t.counters().rx_packets - t_rx0;
    let b_rx = b.counters().rx_packets - b_rx0;
    assert!(
        t_rx <= 2 && b_rx <= 2,
        "the frames got through: trunk +{t_rx}, B +{b_rx}"
    );
}

#[test]
fn locked_port_drops_spoofed_source_macs() {
    let d = Daemon::start("vlan-lock");
    d.ctl(&["bridge", "add", BR]);
    let b = access_host(&d, "lockb", "pb", 10, "10.77.10.1/24");
    let a = access_host(&d, "locka", "pa", 10, "10.77.10.2/24");
    let allowed = format!("allowed_macs={}", a.mac);
    d.ctl(&["port", "set", "pa", &allowed]);
    assert_eq!(a.ping(&b, 3).received, 3);

    // The VM changes its MAC: everything it sends is dropped.
    a.ns.exec_ok(&["ip", "link", "set", "eth0", "address", "02:66:66:66:66:66"]);
    b.ns.exec_ok(&["ip", "neigh", "flush", "all"]);
    let b_rx0 = b.counters().rx_packets;
    assert_eq!(a.ping(&b, 3).received, 0);
    let b_rx = b.counters().rx_packets - b_rx0;
    assert_eq!(b_rx, 0, "B received {b_rx} frames from the spoofed MAC");
    let dropped = drops(&d, "pa", "src_mac_not_allowed");
    assert!(dropped >= 1, "src_mac_not_allowed = {dropped}");
    let fdb = d.fdb(BR);
    assert!(
        !fdb.iter().any(|e| e["mac"] == "02:66:66:66:66:66"),
        "the spoofed MAC was learned: {fdb:?}"
    );
    // Unlocking (allowed_macs= removes it) lets it through again.
    d.ctl(&["port", "set", "pa", "allowed_macs="]);
    assert_eq!(a.ping(&b, 3).received, 3);
}

fn vm_rss_kb(d: &Daemon) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

#[test]
fn mac_flood_fills_the_table_to_its_limit_and_no_further() {
    const LIMIT: u64 = 10_000;
    const FLOOD: u32 = 100_000;
    let d = Daemon::start("vlan-flood");
    d.ctl(&["bridge", "add", BR, &format!("mac_table_size={LIMIT}")]);
    let a = access_host(&d, "flooda", "pa", 10, "10.77.10.2/24");
    let b = access_host(&d, "floodb", "pb", 10, "10.77.10.3/24");
    let m = access_host(&d, "floodm", "pm", 10, "10.77.10.4/24");
    d.ctl(&[
        "port",
        "add",
        BR,
        "pl",
        "type=tap",
        "iface=vsflim",
        "access=10",
        "max_macs=50",
    ]);
    assert_eq!(a.ping(&b, 2).received, 2);
    let rss0 = vm_rss_kb(&d);

    // 100k frames from random unicast source MACs.
    let script = "def frames():\n\
                  \x20   while True:\n\
                  \x20       src = bytes([random.randrange(0, 256) & 0xfe | 0x02]) + os.urandom(5)\n\
                  \x20       yield b'\\xff'*6 + src + bytes.fromhex('88b5') + bytes(46)\n";
    send_raw(&m.ns, "eth0", script, FLOOD);
    std::thread::sleep(Duration::from_millis(500));

    let bridge = &vswitch_tests::entries_of(d.ctl(&["bridge", "list"]))[0];
    let entries = bridge["fdb_entries"].as_u64().unwrap();
    let refused = bridge["learn_refused"].as_u64().unwrap();
    let rx = d.port_stats("pm")["rx_packets"].as_u64().unwrap();
    eprintln!("flood: switch received {rx} of {FLOOD}, table {entries}/{LIMIT}, refused {refused}");
    assert_eq!(entries, LIMIT, "the table did not stop at its limit");
    assert!(
        refused > 0 && refused + LIMIT >= rx / 2,
        "refused {refused}, received {rx}"
    );
    let rss = vm_rss_kb(&d);
    eprintln!("RSS {rss0} kB -> {rss} kB");
    assert!(
        rss < rss0 + 16 * 1024,
        "RSS grew from {rss0} kB to {rss} kB"
    );

    // Known hosts still talk (their entries were learned before the flood),
    // and a new one is flooded to, not lost.
    assert_eq!(a.ping(&b, 3).received, 3);
    assert_eq!(a.ns.ping("10.77.10.4", 3).received, 3);
}

#[test]
fn port_mac_limit_and_storm_control() {
    let d = Daemon::start("vlan-limits");
    d.ctl(&["bridge", "add", BR]);
    let a = access_host(&d, "lima", "pa", 10, "10.77.10.2/24");
    let b = access_host(&d, "limb", "pb", 10, "10.77.10.3/24");
    d.ctl(&["port", "set", "pa", "max_macs=5"]);

    // 200 new source MACs from A: 4 more may be learned (A's own is the first).
    assert_eq!(a.ping(&b, 1).received, 1);
    let script = "def frames():\n\
                  \x20   i = 0\n\
                  \x20   while True:\n\
                  \x20       i += 1\n\
                  \x20       yield b'\\xff'*6 + bytes([2, 0x55, 0, 0, i >> 8, i & 0xff]) + bytes.fromhex('88b5') + bytes(46)\n";
    send_raw(&a.ns, "eth0", script, 200);
    std::thread::sleep(Duration::from_millis(300));
    let on_pa = d.fdb(BR).iter().filter(|e| e["port"] == "pa").count();
    assert_eq!(
        on_pa, 5,
        "port pa taught the table {on_pa} MACs with max_macs=5"
    );
    assert_eq!(drops(&d, "pa", "port_mac_limit"), 196);

    // Storm control: 300 broadcasts as fast as ping sends them through a
    // 50/s limit. The bucket holds one second's worth, then refills at 50/s:
    // at most 50 + 50 per second of burst pass.
    d.ctl(&["port", "set", "pa", "max_macs=", "storm_pps=50"]);
    let b_rx0 = b.counters().rx_packets;
    let started = std::time::Instant::now();
    a.ns.ping_broadcast("10.77.10.255", 300, 0.003);
    let secs = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(300));
    let b_rx = b.counters().rx_packets - b_rx0;
    let limited = drops(&d, "pa", "storm_control");
    let bound = 50 + (50.0 * secs).ceil() as u64 + 5;
    eprintln!(
        "storm: {secs:.2} s burst, B received {b_rx} of 300, {limited} dropped (bound {bound})"
    );
    assert!(
        b_rx <= bound,
        "storm_pps=50 let {b_rx} broadcasts through in {secs:.2} s"
    );
    assert!(
        b_rx >= 50,
        "storm control dropped inside the first second's burst: {b_rx}"
    );
    assert_eq!(
        limited + b_rx,
        300,
        "every broadcast is delivered or counted"
    );
    // Unicast is not limited.
    assert_eq!(a.ns.ping_every(&b.ip, 100, 0.005).received, 100);
}

#[test]
fn guest_vlan_ranges_bind_tap_ports() {
    let d = Daemon::start("vlan-guest");
    d.ctl(&["bridge", "add", BR, "guest_vlans=100-199"]);
    let err = d.ctl_err(&[
        "port",
        "add",
        BR,
        "vm1",
        "type=tap",
        "iface=vsgst1",
        "access=50",
    ]);
    assert!(err.contains("guest_vlans"), "{err}");
    let err = d.ctl_err(&["port", "add", BR, "vm1", "type=tap", "iface=vsgst1"]);
    assert!(err.contains("access=N"), "{err}");
    d.ctl(&[
        "port",
        "add",
        BR,
        "vm1",
        "type=tap",
        "iface=vsgst1",
        "access=150",
    ]);
    let err = d.ctl_err(&["port", "set", "vm1", "access=250"]);
    assert!(err.contains("outside"), "{err}");
    // The range cannot shrink under a running VM.
    let err = d.ctl_err(&["bridge", "set", BR, "guest_vlans=300-399"]);
    assert!(err.contains("vm1"), "{err}");
    d.ctl(&["bridge", "set", BR, "guest_vlans=100-299"]);
    d.ctl(&["port", "set", "vm1", "access=250"]);
    let bridges = vswitch_tests::entries_of(d.ctl(&["bridge", "list"]));
    assert_eq!(bridges[0]["guest_vlans"], "100-299");
    assert_eq!(d.ctl(&["port", "show", "vm1"])["vlan_mode"], "access 250");
}
