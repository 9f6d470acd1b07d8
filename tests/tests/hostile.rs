//! Hostile input on the datapath: a host sends over 100k malformed frames into the switch
//! while two other hosts ping each other through it. The daemon stays up, the pings get
//! through, every frame the kernel handed the switch is counted (received, or dropped with a
//! reason), the table stays within its size and the daemon's memory does not grow.
//!
//! What the kernel does before the switch sees anything (found by this test, asserted so a
//! kernel that behaves differently is noticed):
//! - AF_PACKET refuses to send frames shorter than 14 bytes (EINVAL), so runts never leave
//!   the hostile host;
//! - frames of 14 to 17 bytes with an 802.1Q or 802.1ad TPID are sent, counted by the
//!   receiving veth, then dropped by the receive path (it cannot untag them) before any packet
//!   socket sees them: the switch's `runt` counter cannot see them either;
//! - when the switch's receive ring is full the kernel drops the frame and counts it in the
//!   socket's statistics, which the switch reports as `rx_ring_full`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use vswitch_tests::framegen::{Fate, FrameGen, Kind};
use vswitch_tests::sys::PacketSocket;
use vswitch_tests::{entries_of, must, Daemon, Host};

/// Frames the hostile host tries to send; about a tenth are runts the kernel refuses.
const ATTEMPTS: usize = 120_000;
/// Frames sent back to back before a 1 ms pause (the generator's pacing).
const BURST: usize = 64;
const MAC_TABLE_SIZE: u64 = 1024;
/// Pings between the two well-behaved hosts, 10 ms apart, during the abuse.
const PINGS: u32 = 400;
/// Attempts before the daemon's memory is measured: by then every ring slot has been used and
/// the table is full, so what grows after that grows per frame.
const WARMUP: usize = 15_000;
/// Growth of the daemon's resident memory allowed after the warm-up, over 100k more frames.
const RSS_GROWTH_KIB: u64 = 1024;
/// The daemon's resident memory may never exceed this. Most of it is the three afpacket
/// ports' rings: 256 rx slots of 68 KiB each (room for a 64 KiB GSO frame), about 17 MiB a
/// port, mapped and touched by the kernel.
const RSS_MAX_KIB: u64 = 96 * 1024;

fn sysfs_counter(iface: &str, counter: &str) -> u64 {
    let path = format!("/sys/class/net/{iface}/statistics/{counter}");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// VmRSS of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

fn parse_mac(s: &str) -> [u8; 6] {
    let octets: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).expect("hex octet"))
        .collect();
    octets.try_into().expect("six octets")
}

/// `stats` rows by port name.
fn stats(d: &Daemon) -> BTreeMap<String, Value> {
    entries_of(d.ctl(&["stats"]))
        .into_iter()
        .map(|row| (row["port"].as_str().expect("port name").to_string(), row))
        .collect()
}

fn num(row: &Value, path: &[&str]) -> u64 {
    let mut v = row;
    for key in path {
        v = &v[*key];
    }
    v.as_u64()
        .unwrap_or_else(|| panic!("no number at {path:?} in {row}"))
}

/// `after - before` of one counter of one port.
fn delta(
    before: &BTreeMap<String, Value>,
    after: &BTreeMap<String, Value>,
    port: &str,
    path: &[&str],
) -> u64 {
    num(&after[port], path) - num(&before[port], path)
}

#[test]
fn malformed_flood_is_survived_counted_and_bounded() {
    let started = Instant::now();
    let mut d = Daemon::start("hostile");
    d.ctl(&[
        "bridge",
        "add",
        "br0",
        &format!("mac_table_size={MAC_TABLE_SIZE}"),
    ]);
    let a = Host::veth("hosA", "10.77.70.1/24");
    let b = Host::veth("hosB", "10.77.70.2/24");
    // The hostile host has a 9000-byte MTU on both ends of its cable, so its oversized frames
    // reach the switch, which must not pass them to the 1500-byte ports of the others.
    let x = Host::veth("hosX", "10.77.70.3/24");
    must(&["ip", "link", "set", x.root_if(), "mtu", "9000"]);
    x.ns.exec_ok(&["ip", "link", "set", "eth0", "mtu", "9000"]);
    a.attach(&d, "br0", "pa");
    b.attach(&d, "br0", "pb");
    x.attach(&d, "br0", "px");
    d.wait_ports_up(Duration::from_secs(10));
    a.ping(&b, 2).assert_no_loss(2);

    let root = x.root_if().to_string();
    let veth_rx0 = sysfs_counter(&root, "rx_packets");
    let veth_dropped0 = sysfs_counter(&root, "rx_dropped");
    let before = stats(&d);
    let rss_before = rss_kib(d.pid());

    let sock = PacketSocket::open(&x.ns, "eth0");
    let own = vec![
        parse_mac(&x.mac),
        [0x02, 0x66, 0, 0, 0, 1],
        [0x02, 0x66, 0, 0, 0, 2],
    ];
    let others = vec![
        parse_mac(&a.mac),
        parse_mac(&b.mac),
        [0x02, 0x77, 0, 0, 0, 9],
    ];
    let mut gen = FrameGen::new(0x5eed, own, others);
    // (kind, fate) -> frames the kernel accepted; kind -> send errors.
    let mut sent: BTreeMap<(Kind, Fate), u64> = BTreeMap::new();
    let mut refused: BTreeMap<(Kind, String), u64> = BTreeMap::new();

    let mut rss_warm = 0;
    let t = Instant::now();
    let ping = std::thread::scope(|s| {
        let pinger = s.spawn(|| a.ns.ping_every(&b.ip, PINGS, 0.01));
        let mut frame = Vec::new();
        for i in 0..ATTEMPTS {
            if i == WARMUP {
                rss_warm = rss_kib(d.pid());
            }

            // Round robin over the kinds, so any loss in bursts hits every kind alike.
            let kind = Kind::ALL[i % Kind::ALL.len()];
            let fate = gen.frame(kind, &mut frame);
            match sock.send(&frame) {
                Ok(()) => *sent.entry((kind, fate)).or_insert(0) += 1,
                Err(e) => *refused.entry((kind, e.to_string())).or_insert(0) += 1,
            }
            if i % BURST == BURST - 1 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        pinger.join().expect("pinger")
    });
    let send_time = t.elapsed();
    // The switch reads the kernel's ring drops every 100 ms: let it catch up.
    std::thread::sleep(Duration::from_millis(500));
    d.assert_alive();
    // Measured before the checks below: their big control replies (stats, a full table) grow
    // the control thread's heap, which is not what this watches.
    let rss_after = rss_kib(d.pid());

    let total_sent: u64 = sent.values().sum();
    let sent_of = |pred: &dyn Fn(Kind, Fate) -> bool| -> u64 {
        sent.iter()
            .filter(|((k, f), _)| pred(*k, *f))
            .map(|(_, n)| n)
            .sum()
    };
    eprintln!("{ATTEMPTS} attempts in {send_time:?}: {total_sent} sent");
    for ((kind, fate), n) in &sent {
        eprintln!("{n:7}  sent     {kind:?} ({fate:?})");
    }
    for ((kind, err), n) in &refused {
        eprintln!("{n:7}  refused  {kind:?}: {err}");
    }
    assert!(total_sent >= 100_000, "only {total_sent} frames sent");
    // The kernel refuses runts at the sender, and nothing else.
    assert_eq!(
        sent_of(&|k, _| k == Kind::Runt),
        0,
        "the kernel sent a runt"
    );
    assert!(
        refused
            .keys()
            .all(|(k, e)| *k == Kind::Runt && e.contains("os error 22")),
        "unexpected send errors: {refused:?}"
    );

    // The valid traffic flowed throughout.
    eprintln!(
        "ping during the flood: {}/{}",
        ping.received, ping.transmitted
    );
    assert_eq!(ping.transmitted, PINGS);
    assert!(
        u64::from(ping.received) * 100 >= u64::from(PINGS) * 95,
        "ping lost more than 5% during the flood: {}/{PINGS}",
        ping.received
    );

    // Every frame the kernel delivered is accounted for.
    let after = stats(&d);
    let veth_rx = sysfs_counter(&root, "rx_packets") - veth_rx0;
    let veth_dropped = sysfs_counter(&root, "rx_dropped") - veth_dropped0;
    let px_rx = delta(&before, &after, "px", &["rx_packets"]);
    let px_drop = |reason: &str| delta(&before, &after, "px", &["drops", reason]);
    let ring_full = px_drop("rx_ring_full");
    let cut_tags = sent_of(&|k, _| k == Kind::TruncatedTag);
    eprintln!(
        "veth rx {veth_rx} (dropped {veth_dropped}); switch rx {px_rx}, rx_ring_full {ring_full}, \
         rx_truncated {}; cut tags {cut_tags}",
        px_drop("rx_truncated")
    );
    // (The hostile host itself sends nothing else: no IPv6, no traffic to its address.)
    assert!(
        (total_sent..=total_sent + 10).contains(&(veth_rx + veth_dropped)),
        "the switch's veth received {veth_rx} (+{veth_dropped} dropped) of {total_sent}"
    );
    assert_eq!(
        px_rx + ring_full + px_drop("rx_truncated") + cut_tags,
        veth_rx,
        "frames the veth received are neither received nor counted by the switch (beyond the \
         {cut_tags} cut tags the kernel drops)"
    );
    assert_eq!(px_drop("runt"), 0, "the kernel let a runt through");

    // Drop reasons: the frames of each kind reach the pipeline in the same proportion (round
    // robin), so each reason must have moved by that share of the frames meant for it.
    let reached = px_rx as f64 / (veth_rx - cut_tags) as f64;
    eprintln!(
        "{:.1}% of the delivered frames reached the pipeline",
        reached * 100.0
    );
    assert!(
        reached > 0.5,
        "the datapath kept up with only {reached:.2} of the flood"
    );
    let expect = |what: &str, got: u64, meant: u64| {
        let want = meant as f64 * reached;
        eprintln!("{what}: {got} (expected ~{want:.0} of {meant})");
        assert!(
            (got as f64 - want).abs() <= meant as f64 * 0.03 + 30.0,
            "{what} is {got}, expected about {want:.0} ({meant} frames x {reached:.3})"
        );
    };
    expect(
        "invalid_src_mac",
        px_drop("invalid_src_mac"),
        sent_of(&|_, f| f == Fate::Drop("invalid_src_mac")),
    );
    expect(
        "same_port",
        px_drop("same_port"),
        sent_of(&|_, f| f == Fate::Drop("same_port")),
    );
    // Oversized broadcasts flood to both other ports, whose 1500-byte MTU refuses them.
    let oversize = sent_of(&|k, _| k == Kind::Oversize);
    for port in ["pa", "pb"] {
        let too_big = delta(&before, &after, port, &["drops", "tx_too_big"]);
        expect(&format!("tx_too_big on {port}"), too_big, oversize);
    }
    for (port, row) in &after {
        eprintln!("{port}: {row}");
    }

    // The table holds at most its size, and the flood was refused beyond it.
    let bridges = entries_of(d.ctl(&["bridge", "list"]));
    let br0 = &bridges[0];
    eprintln!("br0: {br0}");
    assert!(num(br0, &["fdb_entries"]) <= MAC_TABLE_SIZE, "{br0}");
    assert!(num(br0, &["learn_refused"]) > 0, "{br0}");
    let fdb = d.fdb("br0");
    assert!(fdb.len() as u64 <= MAC_TABLE_SIZE);

    // Memory stays bounded: nothing grows per frame.
    eprintln!(
        "daemon VmRSS {rss_before} KiB before, {rss_warm} KiB after {WARMUP} frames (rings and \
         table in use), {rss_after} KiB at the end"
    );
    assert!(
        rss_after <= rss_warm + RSS_GROWTH_KIB,
        "the daemon grew from {rss_warm} KiB to {rss_after} KiB over {} frames",
        ATTEMPTS - WARMUP
    );
    let rss_end = rss_kib(d.pid());
    assert!(rss_end <= RSS_MAX_KIB, "the daemon uses {rss_end} KiB");

    // Still a switch: the hosts talk, the control socket answers.
    a.ping(&b, 3).assert_no_loss(3);
    d.ctl(&["version"]);
    d.assert_alive();
    let elapsed = started.elapsed();
    eprintln!("test took {elapsed:?}");
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");
}
