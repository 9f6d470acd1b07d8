//! Bridges are separate forwarding domains, even for hosts in one IP subnet.

use std::time::Duration;

use vswitch_tests::{Daemon, Host};

/// All four hosts share this /24: only the switch keeps them apart.
const SUBNET: &str = "10.77.20";
/// Broadcast frames each host of one bridge sends per phase.
const BLAST: u32 = 50;
/// Frames a host may get from its own bridge meanwhile (e.g. a delayed ARP probe of a peer),
/// far below the BLAST that a leak would deliver.
const HANDFUL: u64 = 5;

/// One bridge's hosts try to reach, and flood broadcasts toward, the other bridge's hosts; the
/// latter must see (almost) nothing, and the switch must count (almost) nothing sent to them.
fn assert_isolated(
    d: &Daemon,
    senders: [(&Host, &str); 2],
    receivers: [(&Host, &str); 2],
    what: &str,
) {
    let rx0: Vec<u64> = receivers
        .iter()
        .map(|(h, _)| h.counters().rx_packets)
        .collect();
    let tx0: Vec<u64> = receivers.iter().map(|(_, p)| d.tx_packets(p)).collect();
    let peer_rx0 = senders[1].0.counters().rx_packets;

    for (sender, _) in senders {
        // Unicast attempts (ARP broadcasts that find nobody), then a broadcast burst.
        for (receiver, _) in receivers {
            sender.ping(receiver, 3).assert_all_lost();
        }
        sender
            .ns
            .ping_broadcast(&format!("{SUBNET}.255"), BLAST, 0.01);
    }
    std::thread::sleep(Duration::from_millis(300));

    // The burst did go out: the sender's own bridge peer got it.
    let peer_rx = senders[1].0.counters().rx_packets - peer_rx0;
    assert!(
        peer_rx >= u64::from(BLAST),
        "{what}: the broadcast burst did not reach the sender's own bridge ({peer_rx} frames)"
    );
    for (i, (host, port)) in receivers.iter().enumerate() {
        let rx = host.counters().rx_packets - rx0[i];
        let tx = d.tx_packets(port) - tx0[i];
        eprintln!("{what}: {} rx +{rx}, port {port} tx +{tx}", host.ns.name());
        assert!(
            rx <= HANDFUL,
            "{what}: host on port {port} received {rx} frames from the other bridge"
        );
        assert!(
            tx <= HANDFUL,
            "{what}: port {port} sent {tx} frames from the other bridge"
        );
    }
}

#[test]
fn bridges_are_isolated() {
    let d = Daemon::start("isolation");
    d.ctl(&["bridge", "add", "br-a"]);
    d.ctl(&["bridge", "add", "br-b"]);
    let a = Host::veth("isoa", &format!("{SUBNET}.1/24"));
    let b = Host::veth("isob", &format!("{SUBNET}.2/24"));
    let c = Host::veth("isoc", &format!("{SUBNET}.3/24"));
    let dd = Host::veth("isod", &format!("{SUBNET}.4/24"));
    a.attach(&d, "br-a", "pa");
    b.attach(&d, "br-a", "pb");
    c.attach(&d, "br-b", "pc");
    dd.attach(&d, "br-b", "pd");
    d.wait_ports_up(Duration::from_secs(10));

    a.ping(&b, 3).assert_no_loss(3);
    c.ping(&dd, 3).assert_no_loss(3);

    assert_isolated(
        &d,
        [(&c, "pc"), (&dd, "pd")],
        [(&a, "pa"), (&b, "pb")],
        "br-b -> br-a",
    );
    assert_isolated(
        &d,
        [(&a, "pa"), (&b, "pb")],
        [(&c, "pc"), (&dd, "pd")],
        "br-a -> br-b",
    );

    // Each table knows only its own bridge's hosts.
    let has = |br: &str, h: &Host| {
        d.fdb(br).iter().any(|e| {
            e["mac"]
                .as_str()
                .is_some_and(|m| m.eq_ignore_ascii_case(&h.mac))
        })
    };
    for h in [&c, &dd] {
        assert!(!has("br-a", h), "br-a learned {} of br-b", h.mac);
    }
    for h in [&a, &b] {
        assert!(!has("br-b", h), "br-b learned {} of br-a", h.mac);
    }
    assert!(
        has("br-a", &a) && has("br-b", &c),
        "tables lost their own hosts"
    );

    // Still working inside each bridge.
    b.ping(&a, 3).assert_no_loss(3);
    dd.ping(&c, 3).assert_no_loss(3);
}
