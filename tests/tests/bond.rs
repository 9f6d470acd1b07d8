//! Bonds between two switches: LACP negotiation, flow spreading, failover
//! with a measured gap, and active-backup with gratuitous announcements.
//!
//! Two vswitchd instances stand for two hosts (or a host and a top-of-rack
//! switch); two veth pairs in the root namespace are the cables between
//! them; a namespace host hangs behind each switch.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use vswitch_tests::{bin, run, seq, sh, wait_for, Cable, Daemon, Host};

fn link(iface: &str, state: &str) {
    sh(&["ip", "link", "set", iface, state]).check();
}

/// The backend details of bond `port`.
fn details(d: &Daemon, port: &str) -> Value {
    d.ctl(&["port", "show", port])["details"].clone()
}

fn members(details: &Value) -> Vec<Value> {
    details["members"]
        .as_array()
        .unwrap_or_else(|| panic!("no members in {details:#}"))
        .clone()
}

fn all_distributing(d: &Daemon, port: &str) -> bool {
    members(&details(d, port))
        .iter()
        .all(|m| m["collecting"] == true && m["distributing"] == true)
}

fn wait_lacp_up(d1: &Daemon, d2: &Daemon, what: &str) {
    let ok = vswitch_tests::poll(Duration::from_secs(15), Duration::from_millis(200), || {
        (all_distributing(d1, "bond0") && all_distributing(d2, "bond0")).then_some(())
    });
    if ok.is_none() {
        panic!(
            "{what}: LACP did not converge\nside 1: {:#}\nside 2: {:#}",
            details(d1, "bond0"),
            details(d2, "bond0")
        );
    }
}

fn member_tx(d: &Daemon, port: &str) -> Vec<u64> {
    members(&details(d, port))
        .iter()
        .map(|m| m["tx_packets"].as_u64().expect("tx_packets"))
        .collect()
}

/// `vsctl ARGS` without --json: the text an operator sees.
fn vsctl_text(d: &Daemon, args: &[&str]) -> String {
    let mut cmd = Command::new(bin("vsctl"));
    cmd.arg("--socket").arg(d.socket()).args(args);
    run(&mut cmd, Duration::from_secs(10)).check().stdout
}

/// Datagrams per second of the UDP stream a failover is measured with.
const UDP_PPS: u64 = 2000;
/// Most a failover may interrupt the stream. Link changes come by netlink
/// at once, but the kernel announces a carrier loss only after it has
/// deactivated the device's queues (an RCU grace period: tens of ms on a
/// busy machine); the bound only catches gross failures (LACP's 3 s
/// timeout, say). The unit tests show that the wake-up itself comes from
/// the link event, with no tick.
const MAX_GAP_MS: f64 = 250.0;

/// Streams UDP from `from` to `to` at `UDP_PPS` datagrams per second for
/// `secs` (iperf3, paced: unlike ping it does not slow down when replies go
/// missing) and runs `during` after `lead`. Returns the gap the losses
/// amount to, in milliseconds, after printing it.
fn udp_gap(
    what: &str,
    from: &Host,
    to: &Host,
    secs: u32,
    lead: Duration,
    during: impl FnOnce(),
) -> f64 {
    to.ns.spawn(&["iperf3", "-s", "-1", "-B", &to.ip]);
    wait_for(Duration::from_secs(10), "iperf3 to listen", || {
        let out = to.ns.exec(&["ss", "-Hltn", "sport = :5201"]);
        out.stdout.contains("5201").then_some(())
    });
    let rate = format!("{}", UDP_PPS * 500 * 8);
    let t = secs.to_string();
    let out = std::thread::scope(|s| {
        let client = s.spawn(|| {
            // The server may need a moment to listen.
            let mut last = None;
            for _ in 0..20 {
                let mut cmd = from.ns.command(&[
                    "iperf3", "-c", &to.ip, "-u", "-b", &rate, "-l", "500", "-t", &t, "-J",
                ]);
                let out = run(&mut cmd, Duration::from_secs(u64::from(secs) + 20));
                if out.success() {
                    return out.stdout;
                }
                last = Some(out);
                std::thread::sleep(Duration::from_millis(100));
            }
            panic!(
                "iperf3 failed: {}",
                last.map(|o| o.describe_failure()).unwrap_or_default()
            );
        });
        std::thread::sleep(lead);
        during();
        client.join().expect("iperf3 thread")
    });
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("iperf3 JSON: {e}\n{out}"));
    let sum = &v["end"]["sum"];
    let (sent, lost) = (sum["packets"].as_u64(), sum["lost_packets"].as_u64());
    let (Some(sent), Some(lost)) = (sent, lost) else {
        panic!(
            "no packet counts in iperf3's summary: {:#}",
            v.get("error").unwrap_or(&v["end"])
        );
    };
    let gap = lost as f64 * 1000.0 / UDP_PPS as f64;
    eprintln!("{what}: {lost} of {sent} UDP datagrams lost at {UDP_PPS}/s: gap about {gap} ms");
    gap
}

/// Seconds since midnight UTC, now.
fn time_of_day() -> f64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (t.as_secs() % 86_400) as f64 + f64::from(t.subsec_micros()) / 1e6
}

/// Watches link messages of `iface` (`ip -ts monitor link`), to tell how
/// much of a failover gap is the kernel announcing the change.
struct LinkWatch {
    child: std::process::Child,
    out: std::path::PathBuf,
}

impl LinkWatch {
    fn start(iface: &str) -> LinkWatch {
        let out = std::env::temp_dir().join(format!("vst-mon-{}-{}", std::process::id(), seq()));
        let file = std::fs::File::create(&out).expect("monitor output file");
        let child = Command::new("ip")
            .args(["-ts", "monitor", "link", "dev", iface])
            .env("TZ", "UTC")
            .stdout(file)
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start ip monitor");
        // Let it subscribe before anything happens.
        std::thread::sleep(Duration::from_millis(200));
        LinkWatch { child, out }
    }

    /// Seconds of day of the first message at or after `after` that says
    /// the link cannot carry frames (no carrier, or down).
    fn first_down(&mut self, after: f64) -> Option<f64> {
        std::thread::sleep(Duration::from_millis(100));
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .filter(|l| l.contains("NO-CARRIER") || l.contains("state DOWN"))
            .filter_map(|l| {
                let t = l.get(12..27)?; // [YYYY-MM-DDTHH:MM:SS.micros]
                let mut parts = t.split(':');
                let h: f64 = parts.next()?.parse().ok()?;
                let m: f64 = parts.next()?.parse().ok()?;
                let s: f64 = parts.next()?.parse().ok()?;
                Some(h * 3600.0 + m * 60.0 + s)
            })
            .find(|t| *t >= after)
    }
}

impl Drop for LinkWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.out);
    }
}

/// Takes `iface` down; returns when (seconds of day) the command started.
fn take_down(iface: &str) -> f64 {
    let t = time_of_day();
    link(iface, "down");
    t
}

/// Prints how long the kernel took to announce the change on `watch`.
fn report_kernel(what: &str, watch: &mut LinkWatch, at: f64) {
    match watch.first_down(at) {
        Some(t) => eprintln!(
            "{what}: the kernel announced it {:.1} ms after the command started",
            (t - at) * 1000.0
        ),
        None => eprintln!(
            "{what}: no link message seen:\n{}",
            std::fs::read_to_string(&watch.out).unwrap_or_default()
        ),
    }
}

/// Two switches with bond0 over two cables in lacp mode, a host behind each.
struct LacpPair {
    d1: Daemon,
    d2: Daemon,
    a: Host,
    b: Host,
    cables: [Cable; 2],
}

impl LacpPair {
    fn new(tag: &str, subnet: u8) -> LacpPair {
        let d1 = Daemon::start(&format!("{tag}1"));
        let d2 = Daemon::start(&format!("{tag}2"));
        let cables = [Cable::new(), Cable::new()];
        let a = Host::veth(&format!("{tag}a"), &format!("10.78.{subnet}.1/24"));
        let b = Host::veth(&format!("{tag}b"), &format!("10.78.{subnet}.2/24"));
        for (d, host, port, ends) in [
            (&d1, &a, "pa", [&cables[0].a, &cables[1].a]),
            (&d2, &b, "pb", [&cables[0].b, &cables[1].b]),
        ] {
            d.ctl(&["bridge", "add", "br0"]);
            let members = format!("members={},{}", ends[0], ends[1]);
            d.ctl(&[
                "port",
                "add",
                "br0",
                "bond0",
                "type=bond",
                &members,
                "mode=lacp",
                "lacp_rate=fast",
            ]);
            host.attach(d, "br0", port);
            d.wait_ports_up(Duration::from_secs(10));
        }
        LacpPair {
            d1,
            d2,
            a,
            b,
            cables,
        }
    }
}

#[test]
fn lacp_bond_between_two_switches() {
    let mut t = LacpPair::new("lacp", 1);
    wait_lacp_up(&t.d1, &t.d2, "start");
    let d1 = details(&t.d1, "bond0");
    let d2 = details(&t.d2, "bond0");
    assert_eq!(
        d1["lacp"]["partner"]["system"], d2["lacp"]["actor"]["system"],
        "side 1's partner is side 2"
    );
    for m in members(&d1) {
        assert_eq!(m["lacp"]["mux_state"], "distributing", "{m:#}");
        assert_eq!(m["lacp"]["actor"]["state_flags"], "ATGSCD..", "{m:#}");
        assert_eq!(m["lacp"]["partner"]["state_flags"], "ATGSCD..", "{m:#}");
        assert!(m["lacp"]["lacpdus_in"].as_u64() > Some(0));
        assert_eq!(m["lacp"]["bad_in"], 0);
    }
    let text = vsctl_text(&t.d1, &["bond", "show"]);
    assert!(text.contains("mode lacp, hash l34"), "{text}");
    let text = vsctl_text(&t.d1, &["lacp", "show", "bond0"]);
    assert!(
        text.contains("current  distributing  selected  ATGSCD..  ATGSCD.."),
        "{text}"
    );

    let p = t.a.ping(&t.b, 5);
    p.assert_no_loss(5);
    // An idle datapath sleeps in epoll: the bond's one descriptor must wake
    // it for every frame, or round trips take up to a 100 ms tick.
    let rtt = p
        .output
        .stdout
        .lines()
        .find(|l| l.starts_with("rtt"))
        .unwrap_or("");
    eprintln!("A -> B through two bonds: {rtt}");
    let avg_ms: f64 = rtt
        .split('=')
        .nth(1)
        .and_then(|v| v.trim().split('/').nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no rtt in {:?}", p.output.stdout));
    assert!(avg_ms < 20.0, "slow round trips through idle bonds: {rtt}");
    t.b.ping(&t.a, 5).assert_no_loss(5);
    // LACPDUs never reach the forwarding table: only the hosts' MACs.
    let fdb = t.d1.fdb("br0");
    assert_eq!(fdb.len(), 2, "{fdb:#?}");

    // Several flows (eight source addresses; l34 hashes ICMP by address)
    // spread over both links.
    let before = member_tx(&t.d1, "bond0");
    for i in 10..18 {
        let src = format!("10.78.1.{i}");
        t.a.ns
            .exec_ok(&["ip", "addr", "add", &format!("{src}/24"), "dev", "eth0"]);
        t.a.ns.exec_ok(&[
            "ping", "-n", "-q", "-c", "10", "-i", "0.02", "-W", "1", "-I", &src, &t.b.ip,
        ]);
    }
    let spread: Vec<u64> = member_tx(&t.d1, "bond0")
        .iter()
        .zip(&before)
        .map(|(a, b)| a - b)
        .collect();
    eprintln!("8 flows x 10 pings: per member tx {spread:?}");
    assert!(
        spread.iter().all(|n| *n >= 10),
        "flows did not spread: {spread:?}"
    );

    // Take down the link that carries a UDP stream A -> B; it moves to the
    // other link.
    let mut busy = 0;
    let mut watches = [
        LinkWatch::start(&t.cables[0].a),
        LinkWatch::start(&t.cables[1].a),
    ];
    let mut at = 0.0;
    let gap = udp_gap(
        "LACP member down",
        &t.a,
        &t.b,
        4,
        Duration::from_secs(1),
        || {
            let before = member_tx(&t.d1, "bond0");
            std::thread::sleep(Duration::from_millis(300));
            let after = member_tx(&t.d1, "bond0");
            busy = usize::from(after[1] - before[1] > after[0] - before[0]);
            at = take_down(&t.cables[busy].a);
        },
    );
    report_kernel("LACP member down", &mut watches[busy], at);
    assert!(gap <= MAX_GAP_MS, "failover gap {gap} ms");
    let d = details(&t.d1, "bond0");
    let m = &members(&d)[busy];
    assert!(m["link_up"] == false && m["distributing"] == false, "{m:#}");
    t.a.ping(&t.b, 5).assert_no_loss(5);

    // Back up: the member rejoins on both sides.
    link(&t.cables[busy].a, "up");
    wait_lacp_up(&t.d1, &t.d2, "rejoin");
    t.a.ping(&t.b, 5).assert_no_loss(5);
    t.d1.assert_alive();
    t.d2.assert_alive();
}

#[test]
fn lacp_partner_gone_quiet_leaves_distribution() {
    let t = LacpPair::new("lacpq", 2);
    wait_lacp_up(&t.d1, &t.d2, "start");
    // Side 2's bond goes away but its links stay up: side 1 hears no more
    // LACPDUs and takes the members out after 3 s (fast rate).
    t.d2.ctl(&["port", "del", "br0", "bond0"]);
    // The links stay up: the closed packet sockets do not touch them.
    let start = std::time::Instant::now();
    wait_for(
        Duration::from_secs(10),
        "side 1 to stop distributing",
        || {
            members(&details(&t.d1, "bond0"))
                .iter()
                .all(|m| m["distributing"] == false && m["link_up"] == true)
                .then_some(())
        },
    );
    let took = start.elapsed();
    eprintln!("partner timeout noticed after {took:?}");
    assert!(
        took >= Duration::from_millis(2000),
        "timed out too early: {took:?}"
    );
    // 3 s later the partner's info is replaced by the defaults.
    wait_for(
        Duration::from_secs(10),
        "side 1 to forget the partner",
        || {
            let d = details(&t.d1, "bond0");
            let defaulted = members(&d)
                .iter()
                .all(|m| m["lacp"]["rx_state"] == "defaulted");
            (d["lacp"]["partner"].is_null() && defaulted).then_some(())
        },
    );
    t.a.ping(&t.b, 1).assert_all_lost();
}

#[test]
fn active_backup_bond_to_a_top_of_rack_stand_in() {
    // Side 1: a bond in active-backup. Side 2: a plain switch (the ToR)
    // with one port per cable, as an upstream switch pair would be.
    let d1 = Daemon::start("ab1");
    let d2 = Daemon::start("ab2");
    let cables = [Cable::new(), Cable::new()];
    let a = Host::veth("aba", "10.78.3.1/24");
    let b = Host::veth("abb", "10.78.3.2/24");
    d1.ctl(&["bridge", "add", "br0"]);
    let members = format!("members={},{}", cables[0].a, cables[1].a);
    let primary = format!("primary={}", cables[0].a);
    d1.ctl(&[
        "port",
        "add",
        "br0",
        "bond0",
        "type=bond",
        &members,
        "mode=active-backup",
        &primary,
    ]);
    a.attach(&d1, "br0", "pa");
    d2.ctl(&["bridge", "add", "br0"]);
    for (i, c) in cables.iter().enumerate() {
        let iface = format!("iface={}", c.b);
        d2.ctl(&[
            "port",
            "add",
            "br0",
            &format!("p{i}"),
            "type=afpacket",
            &iface,
        ]);
    }
    b.attach(&d2, "br0", "pb");
    d1.wait_ports_up(Duration::from_secs(10));
    d2.wait_ports_up(Duration::from_secs(10));

    a.ping(&b, 3).assert_no_loss(3);
    b.ping(&a, 3).assert_no_loss(3);
    let d = details(&d1, "bond0");
    assert_eq!(d["active"], cables[0].a.as_str(), "{d:#}");
    let mac_port = |want: &str| {
        d2.fdb("br0")
            .iter()
            .any(|e| e["mac"] == a.mac.as_str() && e["port"] == want)
    };
    assert!(mac_port("p0"), "ToR did not learn A on p0");
    let text = vsctl_text(&d1, &["bond", "show", "bond0"]);
    assert!(text.contains("mode active-backup"), "{text}");

    // With both hosts silent (ARP pinned), the ToR port of the active link
    // fails: side 1 fails over, and its RARP for A reaches the ToR through
    // the new member, which moves A to p1 without A sending anything.
    a.pin_neighbor(&b);
    b.pin_neighbor(&a);
    std::thread::sleep(Duration::from_millis(300));
    let p1_rx = d2.port_stats("p1")["rx_packets"].as_u64().unwrap_or(0);
    let a_tx = a.counters().tx_packets;
    link(&cables[0].b, "down");
    wait_for(
        Duration::from_secs(2),
        "the ToR to learn A on p1 from the RARP",
        || mac_port("p1").then_some(()),
    );
    assert_eq!(a.counters().tx_packets, a_tx, "host A sent something");
    let p1_rx_now = d2.port_stats("p1")["rx_packets"].as_u64().unwrap_or(0);
    assert!(p1_rx_now > p1_rx, "nothing arrived on p1");
    let d = details(&d1, "bond0");
    assert_eq!(d["active"], cables[1].a.as_str(), "{d:#}");
    assert_eq!(d["failovers"], 1);
    a.ping(&b, 3).assert_no_loss(3);

    // The primary comes back and takes over again (traffic flowing).
    let gap = udp_gap(
        "active-backup back to the primary",
        &a,
        &b,
        3,
        Duration::from_secs(1),
        || link(&cables[0].b, "up"),
    );
    assert!(gap <= MAX_GAP_MS, "failback gap {gap} ms");
    assert_eq!(details(&d1, "bond0")["active"], cables[0].a.as_str());
    assert!(mac_port("p0"));

    // And fails over again while traffic flows.
    let mut watch = LinkWatch::start(&cables[0].a);
    let mut at = 0.0;
    let gap = udp_gap(
        "active-backup carrier loss",
        &a,
        &b,
        3,
        Duration::from_secs(1),
        || at = take_down(&cables[0].b),
    );
    report_kernel("active-backup carrier loss", &mut watch, at);
    assert!(gap <= MAX_GAP_MS, "failover gap {gap} ms");
    assert_eq!(details(&d1, "bond0")["failovers"], 3);
    let mut d1 = d1;
    d1.assert_alive();
}

#[test]
fn bond_options_are_checked() {
    let d = Daemon::start("bondopts");
    let cables = [Cable::new(), Cable::new()];
    d.ctl(&["bridge", "add", "br0"]);
    let members = format!("members={},{}", cables[0].a, cables[1].a);
    for (opts, why) in [
        (vec!["type=bond", "mode=lacp"], "members"),
        (vec!["type=bond", members.as_str()], "mode"),
        (
            vec!["type=bond", members.as_str(), "mode=lacp", "colour=red"],
            "unknown option",
        ),
        (
            vec![
                "type=bond",
                members.as_str(),
                "mode=active-backup",
                "primary=eth9",
            ],
            "primary",
        ),
        (
            vec!["type=bond", "members=nosuchif0", "mode=lacp"],
            "nosuchif0",
        ),
    ] {
        let mut args = vec!["port", "add", "br0", "bond0"];
        args.extend(opts.iter().copied());
        let err = d.ctl_err(&args);
        assert!(err.contains(why), "{opts:?}: {err}");
    }
    d.ctl(&[
        "port",
        "add",
        "br0",
        "bond0",
        "type=bond",
        &members,
        "mode=lacp",
    ]);
    // A member interface cannot serve another port.
    let iface = format!("iface={}", cables[1].a);
    let err = d.ctl_err(&["port", "add", "br0", "p1", "type=afpacket", &iface]);
    assert!(err.contains("already used by port \"bond0\""), "{err}");
    let other = format!("members={}", cables[0].a);
    let err = d.ctl_err(&[
        "port",
        "add",
        "br0",
        "bond1",
        "type=bond",
        &other,
        "mode=lacp",
    ]);
    assert!(err.contains("already used"), "{err}");
    let err = d.ctl_err(&["lacp", "show", "nosuch"]);
    assert!(err.contains("nosuch"), "{err}");
    // Bonds survive a restart like any port.
    let mut d = d;
    d.restart();
    d.wait_ports_up(Duration::from_secs(10));
    let list = d.ctl(&["bond", "show"]);
    assert_eq!(list[0]["name"], "bond0", "{list:#}");
    assert_eq!(list[0]["details"]["mode"], "lacp");
}
