//! Frames get where they should, and only there.

use std::time::Duration;

use vswitch_tests::{Daemon, ThreeHosts};

/// Slack for frames on C that have nothing to do with the stream (none are expected: IPv6 is
/// off and the ARP entries are pinned).
const HANDFUL: u64 = 5;

#[test]
fn three_hosts_ping_each_other() {
    let d = Daemon::start("fwd-ping");
    let net = ThreeHosts::new(&d, "fwping", 1);
    net.ping_all_pairs(3);
}

#[test]
fn known_unicast_is_not_flooded() {
    let d = Daemon::start("fwd-flood");
    let net = ThreeHosts::new(&d, "fwflood", 2);
    let (a, b, c) = (&net.a, &net.b, &net.c);

    // Teach the switch where A and B are.
    a.ping(b, 3).assert_no_loss(3);
    b.ping(a, 3).assert_no_loss(3);
    d.wait_fdb(ThreeHosts::BRIDGE, "A's and B's MACs in the table", |fdb| {
        [&a.mac, &b.mac]
            .iter()
            .all(|m| fdb.iter().any(|e| e["mac"] == m.as_str()))
    });
    // No ARP (broadcast) during the stream.
    a.pin_neighbor(b);
    b.pin_neighbor(a);

    let c_before = c.counters();
    let b_before = b.counters();
    let pc_tx_before = d.tx_packets("pc");

    const STREAM: u32 = 300;
    let stream = a.ns.ping_every(&b.ip, STREAM, 0.01);
    assert!(
        stream.received >= STREAM * 95 / 100,
        "the A->B stream itself mostly failed: {}/{} replies",
        stream.received,
        stream.transmitted
    );

    // Let anything in flight land before reading counters.
    std::thread::sleep(Duration::from_millis(300));
    let b_rx = b.counters().rx_packets - b_before.rx_packets;
    let c_rx = c.counters().rx_packets - c_before.rx_packets;
    let pc_tx = d.tx_packets("pc") - pc_tx_before;
    eprintln!("B rx +{b_rx}, C rx +{c_rx}, port pc tx +{pc_tx}");
    assert!(
        b_rx >= u64::from(STREAM),
        "B got only {b_rx} frames of a {STREAM}-frame stream"
    );
    assert!(
        c_rx <= HANDFUL,
        "C received {c_rx} frames of a unicast stream between A and B"
    );
    assert!(
        pc_tx <= HANDFUL,
        "vsctl stats: port pc sent {pc_tx} frames during the A->B stream"
    );
}
