//! `vsctl monitor`: configuration changes, link changes and MAC moves each show up as an event
//! line; a monitor that never reads costs forwarding nothing and is told what it missed.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use serde_json::Value;
use vswitch_tests::monitor::Monitor;
use vswitch_tests::sys::PacketSocket;
use vswitch_tests::{Daemon, Host, Netns, RawConn, Veth};

const BRIDGE: &str = "br0";

/// The shared two-host topology on 10.79.SUBNET.0/24, bridge created here.
fn two_hosts(d: &Daemon, tag: &str, subnet: u8) -> (Host, Host) {
    d.ctl(&["bridge", "add", BRIDGE]);
    vswitch_tests::topo::two_pinned_hosts(d, BRIDGE, tag, &format!("10.79.{subnet}"))
}

/// An IPv4-typed broadcast frame from `src` (a MAC string), 60 bytes.
fn frame_from(src: &str) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend(
        src.split(':')
            .map(|b| u8::from_str_radix(b, 16).expect("MAC")),
    );
    f.extend([0x08, 0x00]);
    f.resize(60, 0);
    f
}

#[test]
fn config_link_and_mac_move_events_show_up() {
    let d = Daemon::start("mon-events");
    let (a, b) = two_hosts(&d, "mone", 1);
    let mut m = Monitor::start(&d);

    // Port add and del.
    let c = Host::veth("monec", "10.79.1.3/24");
    c.attach(&d, BRIDGE, "pc");
    m.expect("port add", |e| {
        e["event"] == "config"
            && e["verb"] == "port_add"
            && e["args"]["port"] == "pc"
            && e["args"]["options"]["type"] == "afpacket"
    });
    d.ctl(&["port", "del", BRIDGE, "pc"]);
    m.expect("port del", |e| {
        e["event"] == "config" && e["verb"] == "port_del" && e["args"]["port"] == "pc"
    });

    // The far end of pb's veth goes down, then up: pb loses and regains its carrier.
    b.ns.exec_ok(&["ip", "link", "set", "eth0", "down"]);
    m.expect("pb down", |e| {
        e["event"] == "link" && e["port"] == "pb" && e["up"] == false
    });
    b.ns.exec_ok(&["ip", "link", "set", "eth0", "up"]);
    m.expect("pb up", |e| {
        e["event"] == "link" && e["port"] == "pb" && e["up"] == true
    });

    // A's MAC shows up behind pb: a move from pa to pb.
    let sock = PacketSocket::open(&b.ns, "eth0");
    sock.send(&frame_from(&a.mac))
        .expect("send from B with A's MAC");
    let mv = m.expect("A's MAC moving to pb", |e| {
        e["event"] == "mac_move" && e["mac"] == a.mac.as_str()
    });
    assert_eq!(mv["from"], "pa", "{mv}");
    assert_eq!(mv["to"], "pb", "{mv}");
    assert_eq!(mv["bridge"], BRIDGE, "{mv}");
    assert_eq!(mv["vlan"], 0, "{mv}");
    // A speaks again: it moves back.
    a.ping(&b, 1).assert_no_loss(1);
    m.expect("A's MAC moving back to pa", |e| {
        e["event"] == "mac_move" && e["mac"] == a.mac.as_str() && e["to"] == "pa"
    });

    // A storm of moves is rate-limited, and what was left out is counted.
    let from_a = PacketSocket::open(&a.ns, "eth0");
    for _ in 0..100 {
        sock.send(&frame_from(&a.mac)).expect("send from B");
        std::thread::sleep(Duration::from_millis(1));
        from_a.send(&frame_from(&a.mac)).expect("send from A");
        std::thread::sleep(Duration::from_millis(1));
    }
    let counted = m.expect("suppressed moves counted", |e| {
        (e["event"] == "mac_move" && e["suppressed"].as_u64().unwrap_or(0) > 0)
            || e["event"] == "mac_moves_suppressed"
    });
    eprintln!("rate limit: {counted}");
    let reported = m.seen.iter().filter(|e| e["event"] == "mac_move").count();
    assert!(
        reported < 100,
        "{reported} moves reported: not rate-limited"
    );
}

#[test]
fn a_monitor_that_never_reads_slows_nothing_and_hears_of_its_losses() {
    let d = Daemon::start("mon-slow");
    let (a, b) = two_hosts(&d, "mons", 2);

    // A monitor client that reads its first line and then nothing.
    let stream = UnixStream::connect(d.socket()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    writer.write_all(b"{\"verb\":\"monitor\"}\n").expect("send");
    let mut reader = BufReader::new(stream);
    let mut first = String::new();
    reader.read_line(&mut first).expect("first line");
    assert_eq!(first.trim(), r#"{"ok":null}"#);

    // Thousands of events (table flushes are configuration events that touch no file) while
    // pings cross the switch.
    let socket = d.socket().to_path_buf();
    let flood = std::thread::spawn(move || {
        let mut conn = RawConn::connect(&socket);
        let started = Instant::now();
        let mut n = 0;
        while n < 6000 && started.elapsed() < Duration::from_secs(8) {
            conn.request_ok(r#"{"verb":"fdb_flush","args":{"bridge":"br0"}}"#);
            n += 1;
        }
        n
    });
    let pings = a.ns.ping_every(&b.ip, 100, 0.01);
    let flushes = flood.join().expect("flood thread");
    eprintln!("{flushes} fdb_flush events during 100 pings");
    pings.assert_no_loss(100);
    assert!(flushes > 3000, "only {flushes} events made");

    // The daemon still answers, and a new monitor hears new events at once.
    let mut fresh = Monitor::start(&d);
    d.ctl(&["bridge", "del", "brsync"]);
    fresh.expect("bridge del", |e| e["verb"] == "bridge_del");

    // The slow one, reading at last, is told how many events it missed.
    let deadline = Instant::now() + Duration::from_secs(10);
    let lost = loop {
        assert!(
            Instant::now() < deadline,
            "no lost line for the slow monitor"
        );
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).expect("read") > 0,
            "monitor closed"
        );
        let v: Value = serde_json::from_str(&line).expect("json");
        if v["event"] == "lost" {
            break v;
        }
    };
    eprintln!("slow monitor: {lost}");
    assert!(lost["count"].as_u64().unwrap_or(0) > 0, "{lost}");
}

#[test]
fn bond_member_links_and_failovers_show_up() {
    let d = Daemon::start("mon-bond");
    d.ctl(&["bridge", "add", BRIDGE]);
    let peer = Netns::new("monbond");
    let (m1, m2) = (Veth::bare(&peer, "e1"), Veth::bare(&peer, "e2"));
    let mut m = Monitor::start(&d);
    let members = format!("members={},{}", m1.root(), m2.root());
    let primary = format!("primary={}", m1.root());
    d.ctl(&[
        "port",
        "add",
        BRIDGE,
        "bond0",
        "type=bond",
        &members,
        "mode=active-backup",
        &primary,
    ]);
    m.expect("the bond's first active member", |e| {
        e["event"] == "active_member" && e["port"] == "bond0" && e["member"] == m1.root()
    });

    // The primary's far end goes down: its link event, then the failover.
    peer.exec_ok(&["ip", "link", "set", "e1", "down"]);
    m.expect("member e1 down", |e| {
        e["event"] == "member_link" && e["member"] == m1.root() && e["up"] == false
    });
    let f = m.expect("failover", |e| {
        e["event"] == "active_member" && e["member"] == m2.root()
    });
    assert_eq!(f["previous"], m1.root(), "{f}");
    // And back: the primary takes over again.
    peer.exec_ok(&["ip", "link", "set", "e1", "up"]);
    m.expect("member e1 up", |e| {
        e["event"] == "member_link" && e["member"] == m1.root() && e["up"] == true
    });
    m.expect("failback to the primary", |e| {
        e["event"] == "active_member" && e["member"] == m1.root() && e["previous"] == m2.root()
    });
}
