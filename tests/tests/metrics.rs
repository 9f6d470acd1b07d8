//! Metrics: `GET /metrics` on `vswitchd --metrics-listen` and `vsctl metrics`, checked with
//! Debian's `promtool` and against `vsctl stats`; and an HTTP endpoint that bad clients cannot
//! break.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use vswitch_tests::{bin, entries_of, run, seq, wait_for, Cable, CmdOutput, Daemon, Host};

const BR: &str = "br0";
const CURL_TIMEOUT: Duration = Duration::from_secs(10);

/// A daemon serving metrics on a port of its choosing, and that address (from its log).
fn start(tag: &str) -> (Daemon, SocketAddr) {
    let d = Daemon::start_with(tag, &["--metrics-listen", "127.0.0.1:0"]);
    let log = std::fs::read_to_string(d.log_path()).expect("read the daemon's log");
    let addr = log
        .lines()
        .find_map(|l| l.split("metrics listening on http://").nth(1))
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no 'metrics listening on' line in the log:\n{log}"));
    let addr = addr
        .parse()
        .unwrap_or_else(|e| panic!("bad address {addr:?} in the log: {e}"));
    (d, addr)
}

fn curl(args: &[&str]) -> CmdOutput {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "5"]).args(args);
    run(&mut cmd, CURL_TIMEOUT)
}

/// `GET /metrics` that must answer 200; returns the body.
#[track_caller]
fn scrape(addr: SocketAddr) -> String {
    curl(&["--fail", &format!("http://{addr}/metrics")])
        .check()
        .stdout
}

/// The HTTP status curl got for `path` with `method`.
fn status(addr: SocketAddr, method: &str, path: &str) -> String {
    let out = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        method,
        &format!("http://{addr}{path}"),
    ]);
    out.stdout.trim().to_string()
}

/// A file removed on drop.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `promtool check metrics` on `text`: must pass (exit 0, no lint problems).
#[track_caller]
fn promtool_check(text: &str) {
    let file = TempFile(std::env::temp_dir().join(format!(
        "vst-metrics-{}-{}.txt",
        std::process::id(),
        seq()
    )));
    std::fs::write(&file.0, text).expect("write the scrape to a temp file");
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "promtool check metrics < \"$0\"",
        &file.0.to_string_lossy(),
    ]);
    let out = run(&mut cmd, CURL_TIMEOUT);
    assert!(
        out.success() && out.stdout.trim().is_empty() && out.stderr.trim().is_empty(),
        "promtool check metrics failed (promtool comes with Debian's `prometheus` package; \
         .ci/run installs it):\n{}\n--- scrape ---\n{text}",
        out.describe_failure()
    );
}

/// The value of the sample `name{labels}` (labels in the order the family declares them).
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    let key = if labels.is_empty() {
        format!("{name} ")
    } else {
        format!("{name}{{{}}} ", labels.join(","))
    };
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .map(|v| v.trim().parse().expect("a sample value is a number"))
}

#[track_caller]
fn must_sample(text: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    sample(text, name, labels).unwrap_or_else(|| panic!("no sample {name}{labels:?} in:\n{text}"))
        as u64
}

/// The families a text declares (`# TYPE` lines).
fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(String::from)
        .collect()
}

/// Where the scrape and `vsctl stats` disagree about the port counters (empty: they agree).
fn mismatches(text: &str, stats: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for row in stats {
        let bridge = row["bridge"].as_str().expect("bridge");
        let port = row["port"].as_str().expect("port");
        let l = [("bridge", bridge), ("port", port)];
        for field in ["rx_packets", "rx_bytes", "tx_packets", "tx_bytes"] {
            let scraped = sample(text, &format!("vswitch_port_{field}_total"), &l);
            let want = row[field].as_u64();
            if scraped.map(|v| v as u64) != want {
                out.push(format!(
                    "{port} {field}: scrape {scraped:?}, stats {want:?}"
                ));
            }
        }
        let drops = row["drops"].as_object().expect("drops by reason");
        for (reason, n) in drops {
            let l = [
                ("bridge", bridge),
                ("port", port),
                ("reason", reason.as_str()),
            ];
            let scraped = sample(text, "vswitch_port_drops_total", &l);
            if scraped.map(|v| v as u64) != n.as_u64() {
                out.push(format!(
                    "{port} drops {reason}: scrape {scraped:?}, stats {n}"
                ));
            }
        }
    }
    out
}

#[test]
fn scrape_during_traffic_passes_promtool_and_matches_stats() {
    let (d, addr) = start("metrics-scrape");
    d.ctl(&["bridge", "add", BR]);
    let a = Host::veth("mtra", "10.77.60.1/24");
    a.attach(&d, BR, "pa");
    let b = Host::veth("mtrb", "10.77.60.2/24");
    b.attach(&d, BR, "pb");
    d.wait_ports_up(Duration::from_secs(10));
    // No ARP after the pings: the counters stand still once the pings end.
    a.pin_neighbor(&b);
    b.pin_neighbor(&a);

    // Scrape while pings flow.
    let during = std::thread::scope(|s| {
        let pings = s.spawn(|| a.ns.ping_every(&b.ip, 40, 0.05));
        let text = wait_for(Duration::from_secs(5), "pa's rx counter to move", || {
            let text = scrape(addr);
            let rx = sample(
                &text,
                "vswitch_port_rx_packets_total",
                &[("bridge", BR), ("port", "pa")],
            );
            (rx.unwrap_or(0.0) >= 5.0).then_some(text)
        });
        pings.join().expect("ping thread").assert_no_loss(40);
        text
    });
    promtool_check(&during);
    for family in [
        "vswitch_port_rx_packets_total",
        "vswitch_port_rx_bytes_total",
        "vswitch_port_tx_packets_total",
        "vswitch_port_tx_bytes_total",
        "vswitch_port_drops_total",
        "vswitch_fdb_entries",
        "vswitch_fdb_learning_refused_total",
        "vswitch_datapath_iterations_total",
        "vswitch_datapath_frames_per_batch",
        "vswitch_datapath_sleeps_total",
    ] {
        assert!(
            families(&during).contains(family),
            "no {family} in:\n{during}"
        );
    }
    assert!(
        must_sample(
            &during,
            "vswitch_datapath_iterations_total",
            &[("state", "busy"), ("worker", "0")]
        ) > 0
    );
    assert!(must_sample(&during, "vswitch_datapath_frames_per_batch_count", &[]) > 0);

    // Traffic stopped: the scrape and `vsctl stats` taken right after it agree exactly.
    let mut last = Vec::new();
    let agreed = vswitch_tests::poll(Duration::from_secs(3), Duration::from_millis(200), || {
        let text = scrape(addr);
        let stats = entries_of(d.ctl(&["stats"]));
        last = mismatches(&text, &stats);
        last.is_empty().then_some((text, stats))
    });
    let (text, stats) = agreed.unwrap_or_else(|| panic!("scrape != vsctl stats: {last:#?}"));
    assert_eq!(stats.len(), 2, "{stats:?}");
    for row in &stats {
        assert!(row["rx_packets"].as_u64().unwrap() >= 40, "{row}");
    }
    promtool_check(&text);

    // The table: two MACs, untagged (VLAN 0), as `fdb show` has them.
    let fdb = d.fdb(BR);
    assert_eq!(
        must_sample(
            &text,
            "vswitch_fdb_entries",
            &[("bridge", BR), ("vlan", "0")]
        ),
        fdb.len() as u64,
        "{fdb:?}"
    );
    assert_eq!(
        must_sample(
            &text,
            "vswitch_fdb_learning_refused_total",
            &[("bridge", BR)]
        ),
        d.ctl(&["bridge", "list"])[0]["learn_refused"]
            .as_u64()
            .unwrap()
    );

    // `vsctl metrics` prints the same families through the control socket.
    let json = d.ctl(&["metrics"]);
    let via_socket = json
        .as_str()
        .expect("vsctl --json metrics is one JSON string");
    assert_eq!(families(via_socket), families(&text));
    let mut cmd = Command::new(bin("vsctl"));
    cmd.arg("--socket").arg(d.socket()).arg("metrics");
    let plain = run(&mut cmd, CURL_TIMEOUT).check().stdout;
    assert_eq!(families(&plain), families(&text));
    promtool_check(&plain);
    assert!(
        plain.contains("vswitch_port_rx_packets_total{bridge=\"br0\",port=\"pa\"} "),
        "{plain}"
    );
}

/// Sends `bytes` on a fresh connection and returns what the server answered (empty if it
/// closed without answering).
fn raw_http(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics port");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    // The server may answer and close before it read everything (an oversized head).
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn bad_http_requests_get_errors_and_the_daemon_stays_healthy() {
    let (mut d, addr) = start("metrics-bad");
    d.ctl(&["bridge", "add", BR]);

    assert_eq!(status(addr, "GET", "/"), "404");
    assert_eq!(status(addr, "GET", "/metricsx"), "404");
    assert_eq!(status(addr, "GET", "/metrics/../etc"), "404");
    assert_eq!(status(addr, "POST", "/metrics"), "405");
    assert_eq!(status(addr, "GET", "/metrics?x=1"), "200");

    let r = raw_http(addr, b"garbage\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 400 "), "{r:?}");
    let r = raw_http(addr, b"GET /metrics HTTP/9.9\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 400 "), "{r:?}");
    let r = raw_http(addr, b"\x00\xff\xfe binary \x01\n\n");
    assert!(r.starts_with("HTTP/1.1 400 "), "{r:?}");
    // A head that never ends within 8 KiB: refused (or cut off), never buffered on and on.
    let mut huge = b"GET /metrics HTTP/1.1\r\n".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 64 * 1024));
    let r = raw_http(addr, &huge);
    assert!(r.is_empty() || r.starts_with("HTTP/1.1 431 "), "{r:?}");
    // A client that connects and says nothing does not hold up a scrape.
    let silent = TcpStream::connect(addr).expect("connect");
    let t = Instant::now();
    let text = scrape(addr);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "scrape took {:?}",
        t.elapsed()
    );
    assert!(
        text.contains("vswitch_fdb_max_entries{bridge=\"br0\"} 65536"),
        "{text}"
    );
    drop(silent);

    d.assert_alive();
    assert_eq!(d.ctl(&["version"])["protocol"], 1);
    promtool_check(&scrape(addr));
}

#[test]
fn the_listener_is_off_by_default_and_vsctl_metrics_needs_none() {
    let d = Daemon::start("metrics-off");
    let log = std::fs::read_to_string(d.log_path()).expect("read the daemon's log");
    assert!(!log.contains("metrics listening"), "{log}");
    let text = d.ctl(&["metrics"]);
    let text = text.as_str().expect("one JSON string");
    assert!(
        families(text).contains("vswitch_datapath_iterations_total"),
        "{text}"
    );
    promtool_check(text);
}

#[test]
fn bond_and_vxlan_state_as_port_show_reports_it() {
    let (d, addr) = start("metrics-bondvx");
    d.ctl(&["bridge", "add", BR]);
    let cables = [Cable::new(), Cable::new()];
    let members = format!("members={},{}", cables[0].a, cables[1].a);
    let primary = format!("primary={}", cables[0].a);
    d.ctl(&[
        "port",
        "add",
        BR,
        "bond0",
        "type=bond",
        &members,
        "mode=active-backup",
        &primary,
    ]);
    let under = Host::veth("mbvu", "10.77.61.1/24");
    d.ctl(&["bridge", "add", "ul"]);
    under.attach(&d, "ul", "up0");
    d.ctl(&[
        "port",
        "add",
        BR,
        "vx0",
        "type=vxlan",
        "local=10.77.61.2",
        "remote=10.77.61.1,10.77.61.3",
        "vni=42",
        "underlay=up0",
    ]);
    d.wait_ports_up(Duration::from_secs(10));
    wait_for(
        Duration::from_secs(5),
        "the primary to become active",
        || {
            let b = d.ctl(&["port", "show", "bond0"])["details"].clone();
            (b["active"] == cables[0].a.as_str()).then_some(())
        },
    );

    let text = scrape(addr);
    promtool_check(&text);
    for (i, c) in cables.iter().enumerate() {
        let l = [("bond", "bond0"), ("member", c.a.as_str())];
        assert_eq!(
            must_sample(&text, "vswitch_bond_member_up", &l),
            1,
            "{text}"
        );
        assert_eq!(
            must_sample(&text, "vswitch_bond_member_active", &l),
            u64::from(i == 0),
            "{text}"
        );
        assert_eq!(
            must_sample(&text, "vswitch_bond_member_distributing", &l),
            u64::from(i == 0),
            "{text}"
        );
    }
    let bond = d.ctl(&["port", "show", "bond0"])["details"].clone();
    assert_eq!(
        must_sample(&text, "vswitch_bond_failovers_total", &[("bond", "bond0")]),
        bond["failovers"].as_u64().unwrap(),
        "{bond:#}"
    );
    // Per remote, the counters `vxlan show` has (the VTEP's ARP toward the remotes is real
    // traffic, so compare with a `port show` taken right after the scrape, and allow for it).
    let vx = d.ctl(&["port", "show", "vx0"])["details"]["vxlan"].clone();
    for r in vx["remotes"].as_array().expect("remotes") {
        let remote = r["remote"].as_str().unwrap();
        let l = [("port", "vx0"), ("remote", remote)];
        for field in ["rx_packets", "tx_packets"] {
            let scraped = must_sample(&text, &format!("vswitch_vxlan_remote_{field}_total"), &l);
            assert!(
                scraped <= r[field].as_u64().unwrap(),
                "{remote} {field}: {r}"
            );
        }
        let resolved = must_sample(&text, "vswitch_vxlan_remote_resolved", &l);
        assert!(resolved <= 1, "{text}");
    }
    // The underlay host answers ARP for 10.77.61.1; nobody is 10.77.61.3.
    wait_for(Duration::from_secs(5), "remote 10.77.61.1 resolved", || {
        let text = scrape(addr);
        let l = |r| [("port", "vx0"), ("remote", r)];
        let one = sample(&text, "vswitch_vxlan_remote_resolved", &l("10.77.61.1"));
        let three = sample(&text, "vswitch_vxlan_remote_resolved", &l("10.77.61.3"));
        (one == Some(1.0) && three == Some(0.0)).then_some(())
    });
    assert_eq!(vx["remotes"].as_array().unwrap().len(), 2, "{vx:#}");
    assert!(sample(&text, "vswitch_vxlan_remote_macs", &[("port", "vx0")]).is_some());
}
