//! The control socket: permissions, protocol, and bad requests that must change nothing.

use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use vswitch_tests::daemon::raw_request;
use vswitch_tests::{bin, normalize, run, unique_ifname, Daemon, Host, RawConn};

#[test]
fn socket_is_owner_only() {
    let d = Daemon::start("ctl-mode");
    let meta = std::fs::metadata(d.socket()).expect("stat the socket");
    assert!(
        meta.file_type().is_socket(),
        "{} is not a socket",
        d.socket().display()
    );
    let mode = meta.permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket mode is {mode:o}, want 600");
}

#[test]
fn version_over_vsctl_raw_and_env() {
    let d = Daemon::start("ctl-version");
    let v = d.ctl(&["version"]);
    assert_eq!(v["protocol"], 1, "{v}");
    assert!(v["daemon"].is_string() && v["ctl"].is_string(), "{v}");
    assert_eq!(v["daemon"], v["ctl"], "one workspace, one version: {v}");

    let raw = raw_request(d.socket(), r#"{"verb":"version"}"#);
    assert_eq!(raw["ok"]["protocol"], 1, "{raw}");

    // VSWITCH_SOCKET stands in for --socket.
    let mut cmd = std::process::Command::new(bin("vsctl"));
    cmd.env("VSWITCH_SOCKET", d.socket())
        .args(["--json", "version"]);
    let out = run(&mut cmd, Duration::from_secs(10)).check();
    let v: Value = serde_json::from_str(out.stdout.trim()).expect("vsctl --json output");
    assert_eq!(v["protocol"], 1, "{v}");

    // Commands that return nothing print `null` with --json.
    assert_eq!(d.ctl(&["bridge", "add", "br0"]), Value::Null);
    assert_eq!(
        d.ctl(&["bridge", "list"])[0]["aging_secs"],
        300,
        "default aging"
    );
}

/// Everything a bad request could have changed, as JSON (ages stripped: they tick).
fn snapshot(d: &Daemon) -> Value {
    json!({
        "bridges": normalize(&d.ctl(&["bridge", "list"]), &["age_secs"]),
        "ports": normalize(&d.ctl(&["port", "list"]), &["age_secs"]),
        "fdb_br0": normalize(&d.ctl(&["fdb", "show", "br0"]), &["age_secs"]),
        "fdb_br1": normalize(&d.ctl(&["fdb", "show", "br1"]), &["age_secs"]),
    })
}

fn iface_exists(name: &str) -> bool {
    Path::new(&format!("/sys/class/net/{name}")).exists()
}

#[test]
fn bad_requests_change_nothing() {
    let mut d = Daemon::start("ctl-bad");
    d.ctl(&["bridge", "add", "br0", "aging=100"]);
    d.ctl(&["bridge", "add", "br1"]);
    let a = Host::veth("badA", "10.77.40.1/24");
    let b = Host::veth("badB", "10.77.40.2/24");
    // An existing interface no port uses: attempts on it fail only for the reason under test.
    let spare = Host::veth("badS", "10.77.40.3/24");
    a.attach(&d, "br0", "pa");
    b.attach(&d, "br1", "pb");
    let tap = unique_ifname("vp");
    d.ctl(&[
        "port",
        "add",
        "br0",
        "pt",
        "type=tap",
        &format!("iface={tap}"),
    ]);
    d.ctl(&["fdb", "add", "br0", "02:77:00:00:00:01", "pa"]);
    d.wait_ports_up(Duration::from_secs(10));
    let before = snapshot(&d);

    // --- Raw requests, all on one connection that must keep answering. ---
    let mut conn = RawConn::connect(d.socket());
    let raw_bad = [
        // unknown verbs
        r#"{"verb":"frobnicate","args":{}}"#,
        r#"{"verb":"bridge_delete","args":{"bridge":"br0"}}"#,
        // invalid JSON, including a valid request followed by garbage
        r#"{"verb":"version""#,
        "this is not json",
        r#"{"verb":"bridge_del","args":{"bridge":"br0"}}}"#,
        r#"[]"#,
        r#""bridge_list""#,
        // wrong types
        r#"{"verb":42}"#,
        r#"{"verb":"bridge_del","args":{"bridge":["br0"]}}"#,
        r#"{"verb":"bridge_del","args":"br0"}"#,
        r#"{"verb":"bridge_add","args":{"bridge":"br9","options":{"aging":60}}}"#,
        r#"{"verb":"fdb_add","args":{"bridge":"br0","mac":"02:77:00:00:00:09","port":"pa","vlan":"seven"}}"#,
        r#"{"verb":"fdb_add","args":{"bridge":"br0","mac":"02:77:00:00:00:09","port":"pa","vlan":-1}}"#,
        // unknown fields, in args and beside them
        r#"{"verb":"bridge_del","args":{"bridge":"br1","force":true}}"#,
        r#"{"verb":"port_del","args":{"bridge":"br0","port":"pa"},"really":true}"#,
        r#"{"verb":"bridge_add","args":{"bridge":"br9","options":{},"colour":"red"}}"#,
        // missing arguments
        r#"{"verb":"bridge_add","args":{}}"#,
        r#"{"verb":"bridge_del"}"#,
        r#"{"verb":"port_del","args":{"bridge":"br0"}}"#,
        r#"{"verb":"port_add","args":{"bridge":"br0","port":"px"}}"#,
        r#"{"verb":"fdb_add","args":{"bridge":"br0","mac":"02:77:00:00:00:09"}}"#,
        r#"{"verb":"fdb_del","args":{"bridge":"br0"}}"#,
        r#"{"verb":"fdb_flush","args":{}}"#,
        r#"{"args":{"bridge":"br0"}}"#,
        // a bad MAC
        r#"{"verb":"fdb_add","args":{"bridge":"br0","mac":"02:77:00:00:00","port":"pa"}}"#,
    ];
    for line in raw_bad {
        let msg = conn.request_err(line);
        eprintln!("raw {line} -> {msg}");
    }
    let v = conn.request_ok(r#"{"verb":"version"}"#);
    assert_eq!(v["protocol"], 1, "connection unusable after errors: {v}");
    d.assert_alive();

    // --- The same kinds of mistakes through vsctl. ---
    let spare_if = format!("iface={}", spare.root_if());
    let missing_if = format!("iface={}", unique_ifname("vn")); // never created
    let tap_colour = unique_ifname("vp");
    let tap_dup = unique_ifname("vp");
    let tap_colour_if = format!("iface={tap_colour}");
    let tap_dup_if = format!("iface={tap_dup}");
    let vsctl_bad: Vec<Vec<&str>> = vec![
        // unknown commands and missing arguments
        vec!["frobnicate"],
        vec!["bridge", "add"],
        vec!["bridge", "del"],
        vec!["port", "add", "br0"],
        vec!["port", "add", "br0", "px"],
        vec!["port", "del", "br0"],
        vec!["fdb", "show"],
        vec!["fdb", "add", "br0", "02:77:00:00:00:09"],
        vec!["fdb", "del", "br0"],
        // bad values
        vec!["bridge", "add", "br9", "aging=abc"],
        vec!["bridge", "add", "br9", "aging=-5"],
        vec!["bridge", "add", "br9", "mac_table_size=lots"],
        vec!["bridge", "add", "br9", "colour=red"],
        vec!["bridge", "set", "br0", "aging=abc"],
        vec!["bridge", "set", "nobr", "aging=10"],
        vec!["fdb", "add", "br0", "zz:zz:zz:zz:zz:zz", "pa"],
        vec!["fdb", "add", "br0", "02:77:00:00:00", "pa"],
        vec!["fdb", "add", "br0", "02:77:00:00:00:09:0a", "pa"],
        vec!["fdb", "add", "br0", "02:77:00:00:00:09", "pa", "vlan=abc"],
        // duplicates
        vec!["bridge", "add", "br0"],
        vec!["port", "add", "br0", "pa", "type=afpacket", &spare_if],
        vec!["port", "add", "br1", "pa", "type=afpacket", &spare_if],
        vec!["port", "add", "br1", "pt", "type=tap", &tap_dup_if],
        // ports that cannot be
        vec!["port", "add", "br0", "px", "type=afpacket", &missing_if],
        vec!["port", "add", "br0", "px", "type=afpacket"],
        vec!["port", "add", "br0", "px", "type=bogus", &spare_if],
        vec![
            "port",
            "add",
            "br0",
            "px",
            "type=afpacket",
            &spare_if,
            "colour=red",
        ],
        vec![
            "port",
            "add",
            "br0",
            "px",
            "type=tap",
            &tap_colour_if,
            "colour=red",
        ],
        vec!["port", "add", "nobr", "px", "type=afpacket", &spare_if],
        // table entries that cannot be
        vec!["fdb", "add", "br0", "02:77:00:00:00:09", "pb"], // pb is on br1
        vec!["fdb", "add", "br0", "02:77:00:00:00:09", "nosuch"],
        vec!["fdb", "add", "nobr", "02:77:00:00:00:09", "pa"],
        // deleting or reading what does not exist
        vec!["bridge", "del", "nobr"],
        vec!["port", "del", "br0", "nosuch"],
        vec!["port", "del", "br0", "pb"], // exists, but on br1
        vec!["port", "del", "nobr", "pa"],
        vec!["fdb", "del", "br0", "02:77:00:00:00:99"],
        vec!["fdb", "del", "br0", "02:77:00:00:00:01", "vlan=9"],
        vec!["fdb", "del", "nobr", "02:77:00:00:00:01"],
        vec!["fdb", "show", "nobr"],
        vec!["fdb", "flush", "nobr"],
    ];
    for args in &vsctl_bad {
        let msg = d.ctl_err(args);
        eprintln!("vsctl {} -> {}", args.join(" "), msg.trim());
    }
    d.assert_alive();

    let after = snapshot(&d);
    assert!(
        after == before,
        "a failed request changed the configuration\nbefore: {before:#}\nafter: {after:#}"
    );
    for t in [&tap_colour, &tap_dup] {
        assert!(!iface_exists(t), "a failed port add left tap {t} behind");
    }
    // The old connection still answers too.
    conn.request_ok(r#"{"verb":"bridge_list"}"#);
}

#[test]
fn oversized_request_line_is_refused() {
    let mut d = Daemon::start("ctl-big");
    d.ctl(&["bridge", "add", "br0"]);
    // A client that connects and says nothing must not block anyone.
    let idle = RawConn::connect(d.socket());

    let mut big = RawConn::connect(d.socket());
    let name = "b".repeat(70 * 1024);
    let line = format!(r#"{{"verb":"bridge_add","args":{{"bridge":"{name}"}}}}"#);
    match big.send_line(&line) {
        // The daemon hung up mid-line: fine.
        Err(e) if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => {}
        // It neither read on nor hung up (or we sent it all): its reply decides.
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            check_big_reply(&mut big)
        }
        Err(e) => panic!("unexpected error sending a long line: {e}"),
        Ok(()) => check_big_reply(&mut big),
    }

    // Everyone else is still served.
    let v = raw_request(d.socket(), r#"{"verb":"version"}"#);
    assert_eq!(v["ok"]["protocol"], 1, "{v}");
    let bridges = d.ctl(&["bridge", "list"]);
    assert_eq!(
        bridges.as_array().map(Vec::len),
        Some(1),
        "the long request created something: {bridges}"
    );
    drop(idle);
    drop(big);
    d.ctl(&["version"]);
    d.assert_alive();
}

fn check_big_reply(conn: &mut RawConn) {
    match conn.read_reply() {
        Ok(None) => {}
        Ok(Some(reply)) => assert!(
            reply.get("error").is_some(),
            "a >64 KiB request got {reply}"
        ),
        Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {}
        Err(e) => panic!("no reply and no hang-up after a >64 KiB request: {e}"),
    }
}
