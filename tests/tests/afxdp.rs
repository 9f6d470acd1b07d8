//! AF_XDP ports: hosts behind veths whose root ends the switch drives through AF_XDP sockets
//! and its own XDP program. The hosts keep their default offloads (tx checksum offload on):
//! the port must finish their partial checksums for TCP to flow.

use std::thread::sleep;
use std::time::Duration;

use serde_json::Value;
use vswitch_tests::daemon::clock_ticks_per_sec;
use vswitch_tests::{sh, wait_for, Daemon, Host};

const BRIDGE: &str = "br0";

/// `vsctl port add BR PORT type=afxdp iface=ROOT_END [extra...]`.
fn attach_afxdp(d: &Daemon, host: &Host, port: &str, extra: &[&str]) {
    let iface = format!("iface={}", host.root_if());
    let mut args = vec!["port", "add", BRIDGE, port, "type=afxdp", &iface];
    args.extend_from_slice(extra);
    d.ctl(&args);
}

/// Two hosts on 10.81.SUBNET.0/24, both on afxdp ports `pa` and `pb`.
fn two_hosts(d: &Daemon, tag: &str, subnet: u8, extra: &[&str]) -> (Host, Host) {
    d.ctl(&["bridge", "add", BRIDGE]);
    let a = Host::veth(&format!("{tag}a"), &format!("10.81.{subnet}.1/24"));
    attach_afxdp(d, &a, "pa", extra);
    let b = Host::veth(&format!("{tag}b"), &format!("10.81.{subnet}.2/24"));
    attach_afxdp(d, &b, "pb", extra);
    d.wait_ports_up(Duration::from_secs(10));
    (a, b)
}

/// The XDP program the kernel shows on `iface` (`prog/xdp id N`), if any: the kernel's own
/// view, independent of what the daemon reports.
fn xdp_prog_on(iface: &str) -> Option<u64> {
    let out = sh(&["ip", "-d", "link", "show", "dev", iface]).stdout;
    let rest = out.split("prog/xdp id ").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

fn details(d: &Daemon, port: &str) -> Value {
    d.ctl(&["port", "show", port])["details"].clone()
}

/// TCP from `from` to `to` for `secs` seconds (iperf3, bounded); bit/s received.
fn iperf_tcp(from: &Host, to: &Host, port: u16, secs: u32) -> f64 {
    let p = port.to_string();
    to.ns.spawn(&["iperf3", "-s", "-1", "-B", &to.ip, "-p", &p]);
    wait_for(Duration::from_secs(5), "iperf3 to listen", || {
        let ss = to.ns.exec(&["ss", "-ltn"]).stdout;
        ss.contains(&format!(":{p} ")).then_some(())
    });
    let t = secs.to_string();
    let out = from
        .ns
        .exec_ok(&["iperf3", "-c", &to.ip, "-p", &p, "-t", &t, "-J"]);
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("iperf3 JSON: {e}"));
    report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0)
}

#[test]
fn tcp_flows_with_the_hosts_offloads_on() {
    let d = Daemon::start("afxdp-tcp");
    let (a, b) = two_hosts(&d, "xdptcp", 1, &[]);
    a.ping(&b, 3).assert_no_loss(3);
    b.ping(&a, 3).assert_no_loss(3);

    // The hosts' tx checksum offload is on (their default): they send partial checksums.
    let features = a.ns.exec_ok(&["ethtool", "-k", "eth0"]);
    assert!(
        features.contains("tx-checksumming: on"),
        "host A has tx checksum offload off: {features}"
    );
    let bps = iperf_tcp(&a, &b, 5501, 3);
    eprintln!(
        "iperf3 TCP A -> B through afxdp ports: {:.2} Gbit/s",
        bps / 1e9
    );
    assert!(bps > 50e6, "TCP through afxdp ports: {bps} bit/s");
    let back = iperf_tcp(&b, &a, 5502, 1);
    assert!(back > 50e6, "TCP B -> A through afxdp ports: {back} bit/s");

    let pa = details(&d, "pa");
    eprintln!("port pa: {pa:#}");
    assert_eq!(pa["xdp_mode"], "native", "{pa}");
    assert!(pa["csum_repaired"].as_u64().unwrap_or(0) > 1000, "{pa}");
    // With native XDP on the root end, the kernel takes the segmentation offloads (TSO...)
    // away from its veth peer (veth_fix_features): the host's stack segments in software
    // before the driver, so frames reach XDP MTU-sized and fit a UMEM frame.
    let stats = d.port_stats("pa");
    let (pkts, bytes) = (
        stats["rx_packets"].as_u64().unwrap(),
        stats["rx_bytes"].as_u64().unwrap(),
    );
    assert!(
        bytes / pkts.max(1) <= 1514,
        "frames larger than the MTU: {stats}"
    );
    assert_eq!(stats["drops"]["xdp_rx_dropped"], 0, "{stats}");
    let features = a.ns.exec_ok(&["ethtool", "-k", "eth0"]);
    assert!(
        features.contains("tcp-segmentation-offload: off"),
        "TSO still on at the host: {features}"
    );

    // The program is the kernel's while the port exists, and gone with the port.
    let id = pa["prog_id"].as_u64().expect("prog_id");
    assert_eq!(xdp_prog_on(a.root_if()), Some(id));
    d.ctl(&["port", "del", BRIDGE, "pa"]);
    wait_for(
        Duration::from_secs(5),
        "the program to leave after port del",
        || xdp_prog_on(a.root_if()).is_none().then_some(()),
    );
}

#[test]
fn sigkill_leaves_no_program_behind() {
    let d = Daemon::start("afxdp-kill");
    let (a, b) = two_hosts(&d, "xdpkill", 2, &[]);
    let id = details(&d, "pb")["prog_id"].as_u64().expect("prog_id");
    assert_eq!(xdp_prog_on(b.root_if()), Some(id));
    assert!(xdp_prog_on(a.root_if()).is_some());
    vswitch_tests::sys::kill(d.pid() as libc::pid_t, libc::SIGKILL);
    wait_for(
        Duration::from_secs(5),
        "the programs to leave after SIGKILL",
        || (xdp_prog_on(a.root_if()).is_none() && xdp_prog_on(b.root_if()).is_none()).then_some(()),
    );
    // The interfaces are free for someone else (another daemon here).
    let d2 = Daemon::start("afxdp-kill2");
    d2.ctl(&["bridge", "add", BRIDGE]);
    attach_afxdp(&d2, &b, "pb", &[]);
}

#[test]
fn generic_mode_forwards() {
    let d = Daemon::start("afxdp-generic");
    let (a, b) = two_hosts(&d, "xdpgen", 3, &["xdp_mode=generic"]);
    a.ping(&b, 3).assert_no_loss(3);
    b.ping(&a, 3).assert_no_loss(3);
    assert_eq!(details(&d, "pa")["xdp_mode"], "generic");
    let shown = sh(&["ip", "-d", "link", "show", "dev", a.root_if()]).stdout;
    assert!(shown.contains("xdpgeneric"), "{shown}");
}

#[test]
fn a_mixed_bridge_forwards_and_idles() {
    let d = Daemon::start("afxdp-mixed");
    d.ctl(&["bridge", "add", BRIDGE]);
    let a = Host::veth("xdpmixa", "10.81.4.1/24");
    attach_afxdp(&d, &a, "pa", &[]);
    let b = Host::veth("xdpmixb", "10.81.4.2/24");
    b.attach(&d, BRIDGE, "pb");
    d.wait_ports_up(Duration::from_secs(10));
    a.ping(&b, 3).assert_no_loss(3);
    b.ping(&a, 3).assert_no_loss(3);

    // Idle: the datapath blocks on the afxdp port's readiness fd instead of spinning. ARP is
    // pinned so no probe lands in the window.
    a.pin_neighbor(&b);
    b.pin_neighbor(&a);
    sleep(Duration::from_secs(1));
    let window = Duration::from_secs(2);
    let t0 = d.cpu_ticks();
    sleep(window);
    let used = Duration::from_secs_f64((d.cpu_ticks() - t0) as f64 / clock_ticks_per_sec() as f64);
    eprintln!("vswitchd used {used:?} of CPU in an idle {window:?}");
    assert!(
        used < window.mul_f64(0.05),
        "idle vswitchd used {used:?} in {window:?}"
    );
    // And wakes up for the next frame.
    a.ping(&b, 2).assert_no_loss(2);
}

#[test]
fn bad_options_are_refused_clearly() {
    let d = Daemon::start("afxdp-bad");
    d.ctl(&["bridge", "add", BRIDGE]);
    let a = Host::veth("xdpbad", "10.81.5.1/24");
    let iface = format!("iface={}", a.root_if());
    let add = |extra: &str| d.ctl_err(&["port", "add", BRIDGE, "p", "type=afxdp", &iface, extra]);
    assert!(add("xdp_mode=offload").contains("native, generic or auto"));
    assert!(add("queues=0").contains("queues"));
    assert!(add("queues=4").contains("receive queue"));
    assert!(
        xdp_prog_on(a.root_if()).is_none(),
        "a refused port left its program"
    );
}
