//! `vswitchd --workers 2`: bridges spread over two datapath threads, each forwarding its own
//! traffic; a VXLAN port's bridge joins its underlay's worker with its table; and a restart
//! puts everything back.

use std::time::Duration;

use serde_json::Value;
use vswitch_tests::{wait_for, Cable, Daemon, Host};

/// Bridge name -> worker, from `vsctl --json bridge list`.
fn workers_of(d: &Daemon) -> Vec<(String, u64)> {
    let rows = d.ctl(&["bridge", "list"]);
    let mut out: Vec<(String, u64)> = rows
        .as_array()
        .expect("bridge list is an array")
        .iter()
        .map(|b| {
            let w = b["worker"]
                .as_u64()
                .unwrap_or_else(|| panic!("bridge without a worker: {b}"));
            (b["name"].as_str().unwrap_or_default().to_string(), w)
        })
        .collect();
    out.sort();
    out
}

fn worker_of(d: &Daemon, bridge: &str) -> u64 {
    workers_of(d)
        .into_iter()
        .find(|(b, _)| b == bridge)
        .unwrap_or_else(|| panic!("no bridge {bridge}"))
        .1
}

/// The CPUs this process may run on (`Cpus_allowed_list`, e.g. `0-3,6`).
fn allowed_cpus() -> Vec<usize> {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list")
        .trim();
    let mut cpus = Vec::new();
    for part in list.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        cpus.extend(a.parse::<usize>().unwrap()..=b.parse::<usize>().unwrap());
    }
    cpus
}

/// Datapath thread name -> the CPUs it may run on.
fn datapath_threads(d: &Daemon) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{}/task", d.pid()))
        .expect("tasks")
        .flatten()
    {
        let name = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let name = name.trim();
        if !name.starts_with("vswitch-dp") {
            continue;
        }
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        let cpus = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap_or_default()
            .trim()
            .to_string();
        out.push((name.to_string(), cpus));
    }
    out.sort();
    out
}

#[test]
fn two_workers_each_forward_their_own_bridge() {
    // Pinned to the last two CPUs the tests may use (if there are two).
    let allowed = allowed_cpus();
    let pin = (allowed.len() >= 2).then(|| allowed[allowed.len() - 2..].to_vec());
    let cpus = pin
        .as_ref()
        .map(|p| format!("{},{}", p[0], p[1]))
        .unwrap_or_default();
    let args: Vec<&str> = if pin.is_some() {
        vec!["--worker-cpus", &cpus]
    } else {
        vec!["--workers", "2"]
    };
    let d = Daemon::start_with("workers-two", &args);
    let dp = datapath_threads(&d);
    let names: Vec<&str> = dp.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["vswitch-dp0", "vswitch-dp1"], "datapath threads");
    if let Some(p) = &pin {
        assert_eq!(dp[0].1, p[0].to_string(), "worker 0 pinned: {dp:?}");
        assert_eq!(dp[1].1, p[1].to_string(), "worker 1 pinned: {dp:?}");
    }

    d.ctl(&["bridge", "add", "mgmt"]);
    d.ctl(&["bridge", "add", "storage"]);
    assert_eq!(
        workers_of(&d),
        [("mgmt".to_string(), 0), ("storage".to_string(), 1)],
        "a new bridge goes to the least loaded worker"
    );
    let m1 = Host::veth("wkm1", "10.97.1.1/24");
    let m2 = Host::veth("wkm2", "10.97.1.2/24");
    let s1 = Host::veth("wks1", "10.97.2.1/24");
    m1.attach(&d, "mgmt", "m1");
    m2.attach(&d, "mgmt", "m2");
    s1.attach(&d, "storage", "s1");
    let tap = Host::tap(&d, "storage", "s2", "wks2", "10.97.2.2/24");
    m1.ping(&m2, 3).assert_no_loss(3);
    s1.ping(&tap, 3).assert_no_loss(3);

    // What the commands about one port or bridge reach is that bridge's worker; the ones
    // about all see both workers.
    let stats = d.ctl(&["stats"]);
    let names: Vec<&str> = stats
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["port"].as_str())
        .collect();
    for p in ["m1", "m2", "s1", "s2"] {
        assert!(names.contains(&p), "stats lacks {p}: {names:?}");
    }
    assert!(d.port_stats("s2")["rx_packets"].as_u64().unwrap_or(0) >= 3);
    let fdb = d.fdb("storage");
    assert!(
        fdb.iter()
            .any(|e| e["mac"] == tap.mac.as_str() && e["port"] == "s2"),
        "{fdb:?}"
    );
    let e = d.ctl_err(&["port", "add", "mgmt", "s1", "type=null", "role=sink"]);
    assert!(
        e.contains("exists"),
        "a port name is unique across workers: {e}"
    );
    let e = d.ctl_err(&["fdb", "add", "mgmt", "02:00:00:00:00:01", "s1"]);
    assert!(e.contains("is on bridge \"storage\""), "{e}");

    // Deleting routes to the right worker too, and frees the place.
    d.ctl(&["port", "del", "mgmt", "m2"]);
    d.ctl(&["bridge", "del", "mgmt"]);
    d.ctl(&["bridge", "add", "guests"]);
    assert_eq!(worker_of(&d, "guests"), 0);
    let e = d.ctl_err(&["port", "del", "storage", "m2"]);
    assert!(e.contains("no port"), "{e}");
    s1.ping(&tap, 2).assert_no_loss(2);

    // The operator's placement: storage moves to worker 0 with its ports and table, keeps
    // forwarding, and stays there across a restart; a worker that does not run is refused.
    d.ctl(&["bridge", "set", "storage", "worker=0"]);
    assert_eq!(worker_of(&d, "storage"), 0);
    assert!(
        d.fdb("storage")
            .iter()
            .any(|e| e["mac"] == tap.mac.as_str()),
        "the table moved with the bridge"
    );
    s1.ping(&tap, 3).assert_no_loss(3);
    let e = d.ctl_err(&["bridge", "add", "extra", "worker=2"]);
    assert!(e.contains("--workers 3"), "{e}");
    let e = d.ctl_err(&["bridge", "set", "guests", "worker=7"]);
    assert!(e.contains("0 to 1"), "{e}");
    d.ctl(&["bridge", "add", "pinned", "worker=0"]);
    let mut d = d;
    d.restart();
    assert_eq!(
        workers_of(&d),
        [
            ("guests".to_string(), 1),
            ("pinned".to_string(), 0),
            ("storage".to_string(), 0)
        ],
        "explicit places kept, guests to the least loaded"
    );
}

/// Host `n` of the overlay test: a daemon with two workers, bridges "underlay" (worker 0) and
/// "guests" (worker 1), a VM on guests, then the underlay port and the tunnel.
fn overlay_host(d: &Daemon, n: u8, underlay_if: &str) -> Host {
    d.ctl(&["bridge", "add", "underlay"]);
    d.ctl(&["bridge", "add", "guests"]);
    assert_eq!(worker_of(d, "guests"), 1);
    let vm = Host::veth(&format!("wkvm{n}"), &format!("10.97.9.{n}/24"));
    vm.ns.exec_ok(&["ip", "link", "set", "eth0", "mtu", "1450"]);
    vm.attach(d, "guests", "vm");
    let (local, remote) = if n == 1 {
        ("10.97.8.1", "10.97.8.2")
    } else {
        ("10.97.8.2", "10.97.8.1")
    };
    let underlay = || {
        let iface = format!("iface={underlay_if}");
        d.ctl(&["port", "add", "underlay", "up", "type=afpacket", &iface]);
    };
    let tunnel = || {
        d.ctl(&[
            "port",
            "add",
            "guests",
            "vx",
            "type=vxlan",
            &format!("local={local}"),
            &format!("remote={remote}"),
            "vni=77",
            "underlay=up",
        ]);
    };
    // A static entry made on worker 1 must travel with the bridge.
    d.ctl(&["fdb", "add", "guests", "02:00:00:00:77:01", "vm"]);
    underlay();
    assert_eq!(worker_of(d, "guests"), 1, "no tunnel yet: nothing moves");
    tunnel();
    assert_eq!(
        workers_of(d),
        [("guests".to_string(), 0), ("underlay".to_string(), 0)],
        "the tunnel's bridge joins its underlay's worker"
    );
    vm
}

fn vtep_resolved(d: &Daemon) -> bool {
    let shown = d.ctl(&["vxlan", "show", "vx"]);
    let port: &Value = &vswitch_tests::entries_of(shown)[0]["details"]["vxlan"];
    port["remotes"][0]["neighbor"] == "reachable"
}

#[test]
fn a_tunnels_bridge_moves_to_its_underlays_worker_and_keeps_working() {
    let wire = Cable::new();
    let mut d1 = Daemon::start_with("workers-vx1", &["--workers", "2"]);
    let d2 = Daemon::start_with("workers-vx2", &["--workers", "2"]);
    let vm1 = overlay_host(&d1, 1, &wire.a);
    let vm2 = overlay_host(&d2, 2, &wire.b);
    let moved = d1
        .fdb("guests")
        .into_iter()
        .find(|e| e["mac"] == "02:00:00:00:77:01")
        .expect("the static entry moved with its bridge");
    assert_eq!(moved["port"], "vm", "{moved}");

    wait_for(Duration::from_secs(5), "both VTEPs to resolve", || {
        (vtep_resolved(&d1) && vtep_resolved(&d2)).then_some(())
    });
    vm1.ping(&vm2, 5).assert_no_loss(5);
    assert!(
        d1.fdb("guests")
            .iter()
            .any(|e| e["mac"] == vm2.mac.as_str() && e["port"] == "vx"),
        "VM 2 learned behind the tunnel"
    );

    // A restart restores both bridges on one worker, whatever order it adds them in.
    d1.restart();
    assert_eq!(worker_of(&d1, "guests"), worker_of(&d1, "underlay"));
    wait_for(Duration::from_secs(5), "the VTEP to resolve again", || {
        vtep_resolved(&d1).then_some(())
    });
    vm2.ping(&vm1, 3).assert_no_loss(3);
}
