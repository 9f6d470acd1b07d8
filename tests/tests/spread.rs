//! `bridge add NAME worker=all` on `vswitchd --workers 2`: one bridge forwarding on both
//! datapath threads. The kernel spreads each afpacket port's frames over the two workers'
//! sockets by flow (PACKET_FANOUT), an afxdp port's receive queues are dealt out to the
//! workers, and a VM's tap becomes a multiqueue tap with a queue per worker; the workers' replicas of the bridge share what they learn, so `fdb show` lists one
//! table; a restart brings the bridge back on every worker.

use std::time::Duration;

use serde_json::Value;
use vswitch_tests::monitor::Monitor;
use vswitch_tests::{sh, wait_for, Daemon, Host};

/// Busy poll-loop iterations (at least one frame received) per worker, from `vsctl metrics`.
fn busy_iterations(d: &Daemon) -> Vec<u64> {
    let text = d.ctl(&["metrics"]);
    let text = text
        .as_str()
        .expect("vsctl --json metrics is one JSON string");
    let mut per_worker = Vec::new();
    for w in 0..2 {
        let worker = format!("worker=\"{w}\"");
        let value = text
            .lines()
            .filter(|l| l.starts_with("vswitch_datapath_iterations_total{"))
            .find(|l| l.contains(&worker) && l.contains("state=\"busy\""))
            .and_then(|l| l.rsplit(' ').next())
            .unwrap_or_else(|| panic!("no busy iterations of worker {w} in {text}"));
        per_worker.push(value.trim().parse::<f64>().expect("a number") as u64);
    }
    per_worker
}

/// TCP from `from` to `to` over `streams` connections for `secs` seconds (iperf3, bounded);
/// bit/s received.
fn iperf_tcp(from: &Host, to: &Host, streams: u32, secs: u32) -> f64 {
    let p = "5271";
    to.ns.spawn(&["iperf3", "-s", "-1", "-B", &to.ip, "-p", p]);
    wait_for(Duration::from_secs(5), "iperf3 to listen", || {
        let ss = to.ns.exec(&["ss", "-ltn"]).stdout;
        ss.contains(&format!(":{p} ")).then_some(())
    });
    let (t, n) = (secs.to_string(), streams.to_string());
    let out = from
        .ns
        .exec_ok(&["iperf3", "-c", &to.ip, "-p", p, "-t", &t, "-P", &n, "-J"]);
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("iperf3 JSON: {e}"));
    report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0)
}

/// Whether every worker's shard of `port` received frames (`port show`'s `per_worker`).
fn each_worker_received(d: &Daemon, port: &str) -> bool {
    let shown = d.ctl(&["port", "show", port]);
    let shards = shown["details"]["per_worker"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    shards.len() == 2
        && shards
            .iter()
            .all(|s| s["rx_packets"].as_u64().unwrap_or(0) > 0)
}

#[test]
fn one_bridge_forwards_on_both_workers_with_one_table() {
    let mut d = Daemon::start_with("spread", &["--workers", "2"]);
    d.ctl(&["bridge", "add", "guests", "worker=all"]);
    let listed = d.ctl(&["bridge", "list"]);
    assert_eq!(listed[0]["all_workers"], true, "{listed}");
    let a = Host::veth("spra", "10.97.30.1/24");
    let b = Host::veth("sprb", "10.97.30.2/24");
    a.attach(&d, "guests", "a");
    b.attach(&d, "guests", "b");
    a.ping(&b, 3).assert_no_loss(3);

    // Sixteen TCP flows: the kernel hashes them over both workers' sockets, and each
    // worker forwards its own share, with the hosts' offloads on (64 KB segments).
    let before = busy_iterations(&d);
    let bps = iperf_tcp(&a, &b, 16, 2);
    let after = busy_iterations(&d);
    assert!(bps > 1e8, "16 TCP streams through the bridge: {bps} bit/s");
    for w in 0..2 {
        assert!(
            after[w] > before[w] + 100,
            "worker {w} forwarded no share: busy iterations {before:?} -> {after:?}"
        );
    }

    // One table: each host's MAC once, behind its port, whichever worker saw it.
    let fdb = d.fdb("guests");
    for (host, port) in [(&a, "a"), (&b, "b")] {
        let rows: Vec<&Value> = fdb
            .iter()
            .filter(|e| e["mac"] == host.mac.as_str())
            .collect();
        assert_eq!(rows.len(), 1, "{fdb:?}");
        assert_eq!(rows[0]["port"], port, "{fdb:?}");
    }
    // One row per port in the counters; `port show` says it runs on both workers.
    let rx = d.port_stats("a")["rx_packets"].as_u64().unwrap_or(0);
    assert!(rx > 1000, "port a received {rx} frames");
    let shown = d.ctl(&["port", "show", "a"]);
    assert_eq!(shown["details"]["workers"], 2, "{shown}");
    assert!(each_worker_received(&d, "a"), "{shown}");

    // A port's link going down is one event, not one per worker's socket.
    let mut monitor = Monitor::start(&d);
    b.ns.exec_ok(&["ip", "link", "set", "eth0", "down"]);
    let link_down = |e: &Value| e["event"] == "link" && e["port"] == "b" && e["up"] == false;
    monitor.expect("port b's link down", link_down);
    assert_eq!(monitor.count_within(Duration::from_secs(1), link_down), 1);
    b.ns.exec_ok(&["ip", "link", "set", "eth0", "up"]);
    drop(monitor);

    // What a bridge on every worker cannot do is refused with the reason.
    let e = d.ctl_err(&[
        "port",
        "add",
        "guests",
        "v",
        "type=vhostuser",
        "socket=/tmp/spr.sock",
    ]);
    assert!(e.contains("cannot join a bridge on every worker"), "{e}");
    let e = d.ctl_err(&["bridge", "set", "guests", "worker=1"]);
    assert!(e.contains("worker=all"), "{e}");
    let e = d.ctl_err(&["capture", "a", "-w", "/dev/null", "--count", "1"]);
    assert!(e.contains("every worker"), "{e}");

    // A restart brings it back on every worker, forwarding.
    d.restart();
    assert_eq!(d.ctl(&["bridge", "list"])[0]["all_workers"], true);
    a.ping(&b, 3).assert_no_loss(3);
    b.ping(&a, 3).assert_no_loss(3);
}

#[test]
fn a_vms_tap_is_a_multiqueue_tap_with_a_queue_per_worker() {
    let d = Daemon::start_with("spread-tap", &["--workers", "2"]);
    d.ctl(&["bridge", "add", "guests", "worker=all"]);
    let vm = Host::tap(&d, "guests", "vm", "sprvm", "10.97.31.1/24");
    let peer = Host::veth("sprpeer", "10.97.31.2/24");
    peer.attach(&d, "guests", "up");
    vm.ping(&peer, 3).assert_no_loss(3);

    // The VM's side sees two queues; its flows spread over them, one worker each.
    let queues = vm
        .ns
        .exec_ok(&["ls", &format!("/sys/class/net/{}/queues", vm.ifname)]);
    let rx_queues = queues
        .split_whitespace()
        .filter(|q| q.starts_with("rx-"))
        .count();
    assert_eq!(rx_queues, 2, "queues of the VM's tap: {queues}");
    let bps = iperf_tcp(&vm, &peer, 16, 2);
    assert!(bps > 1e8, "16 TCP streams from the VM: {bps} bit/s");
    assert!(
        each_worker_received(&d, "vm"),
        "{}",
        d.ctl(&["port", "show", "vm"])
    );

    // Deleting the port closes every queue: the tap goes.
    let tap = vm.ifname.clone();
    d.ctl(&["port", "del", "guests", "vm"]);
    wait_for(Duration::from_secs(5), "the tap to go", || {
        let links = vm.ns.exec(&["ip", "-o", "link"]).stdout;
        (!links.contains(&format!(" {tap}:")) && !links.contains(&format!(" {tap}@"))).then_some(())
    });
}

#[test]
fn an_afxdp_ports_queues_are_dealt_out_to_the_workers() {
    let d = Daemon::start_with("spread-xdp", &["--workers", "2"]);
    d.ctl(&["bridge", "add", "guests", "worker=all"]);
    let a = Host::veth_with_queues("sprxa", "10.97.32.1/24", 2);
    let b = Host::veth_with_queues("sprxb", "10.97.32.2/24", 2);
    // One queue cannot serve two workers: each sends on queues of its own.
    let iface_a = format!("iface={}", a.root_if());
    let e = d.ctl_err(&[
        "port",
        "add",
        "guests",
        "a",
        "type=afxdp",
        &iface_a,
        "queues=1",
    ]);
    assert!(e.contains("at least 2"), "{e}");
    for (host, port) in [(&a, "a"), (&b, "b")] {
        let iface = format!("iface={}", host.root_if());
        d.ctl(&[
            "port",
            "add",
            "guests",
            port,
            "type=afxdp",
            &iface,
            "queues=2",
        ]);
    }
    d.wait_ports_up(Duration::from_secs(10));
    a.ping(&b, 3).assert_no_loss(3);

    // Worker 0 polls queue 0, worker 1 queue 1; the hosts' flows leave on both queues.
    let shown = d.ctl(&["port", "show", "a"]);
    let queues: Vec<&Value> = shown["details"]["per_worker"]
        .as_array()
        .map(|w| w.iter().map(|s| &s["details"]["queues"]).collect())
        .unwrap_or_default();
    assert_eq!(
        queues,
        [&serde_json::json!([0]), &serde_json::json!([1])],
        "{shown}"
    );
    let bps = iperf_tcp(&a, &b, 16, 2);
    assert!(bps > 1e7, "16 TCP streams over afxdp ports: {bps} bit/s");
    for port in ["a", "b"] {
        assert!(
            each_worker_received(&d, port),
            "{}",
            d.ctl(&["port", "show", port])
        );
    }

    // The shards share one XDP program, which leaves with the port.
    let root = a.root_if().to_string();
    d.ctl(&["port", "del", "guests", "a"]);
    let shown = sh(&["ip", "-d", "link", "show", "dev", &root]).stdout;
    assert!(
        !shown.contains("prog/xdp"),
        "the XDP program left with the port: {shown}"
    );
}
