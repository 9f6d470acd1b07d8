//! The forwarding table as `vsctl fdb` shows and changes it.

use std::time::{Duration, Instant};

use serde_json::Value;
use vswitch_tests::{poll, Daemon, Host};

const BR: &str = "br0";
const STATIC_MAC: &str = "02:77:00:00:00:aa";

fn is_mac(e: &Value, mac: &str) -> bool {
    e["mac"]
        .as_str()
        .is_some_and(|m| m.eq_ignore_ascii_case(mac))
}

fn entry<'a>(fdb: &'a [Value], mac: &str) -> Option<&'a Value> {
    fdb.iter().find(|e| is_mac(e, mac))
}

/// Two veth hosts A (port pa) and B (port pb) on `br0`, on 10.77.SUBNET.0/24.
fn two_hosts(d: &Daemon, tag: &str, subnet: u8) -> (Host, Host) {
    let a = Host::veth(&format!("{tag}a"), &format!("10.77.{subnet}.1/24"));
    a.attach(d, BR, "pa");
    let b = Host::veth(&format!("{tag}b"), &format!("10.77.{subnet}.2/24"));
    b.attach(d, BR, "pb");
    d.wait_ports_up(Duration::from_secs(10));
    (a, b)
}

/// Permanent ARP entries both ways: the switch learns from the pings alone, and no ARP probe
/// (sent ~5 s after a ping otherwise) re-learns a flushed entry or refreshes an aging one.
fn quiet_arp(a: &Host, b: &Host) {
    a.pin_neighbor(b);
    b.pin_neighbor(a);
}

#[test]
fn fdb_shows_learned_and_static_entries() {
    let d = Daemon::start("fdb-show");
    d.ctl(&["bridge", "add", BR]);
    let (a, b) = two_hosts(&d, "fdbshow", 10);
    quiet_arp(&a, &b);
    a.ping(&b, 3).assert_no_loss(3);

    let fdb = d.wait_fdb(BR, "A's and B's MACs learned", |fdb| {
        entry(fdb, &a.mac).is_some() && entry(fdb, &b.mac).is_some()
    });
    for (host, port) in [(&a, "pa"), (&b, "pb")] {
        let e = entry(&fdb, &host.mac).unwrap();
        assert_eq!(
            e["port"], port,
            "{} learned on the wrong port: {e}",
            host.mac
        );
        assert_eq!(e["type"], "learned", "{e}");
        assert_eq!(e["vlan"], 0, "untagged frames are VLAN 0: {e}");
        assert!(e["age_secs"].is_u64(), "age_secs missing: {e}");
    }

    // A static entry, and one on another VLAN.
    d.ctl(&["fdb", "add", BR, STATIC_MAC, "pb"]);
    d.ctl(&["fdb", "add", BR, STATIC_MAC, "pa", "vlan=7"]);
    let fdb = d.fdb(BR);
    let statics: Vec<&Value> = fdb.iter().filter(|e| is_mac(e, STATIC_MAC)).collect();
    assert_eq!(
        statics.len(),
        2,
        "expected {STATIC_MAC} on VLAN 0 and 7: {fdb:?}"
    );
    for e in &statics {
        assert_eq!(e["type"], "static", "{e}");
        let want_port = if e["vlan"] == 7 { "pa" } else { "pb" };
        assert_eq!(e["port"], want_port, "{e}");
    }

    // flush drops what was learned and keeps what was configured.
    d.ctl(&["fdb", "flush", BR]);
    let fdb = d.fdb(BR);
    assert!(
        entry(&fdb, &a.mac).is_none() && entry(&fdb, &b.mac).is_none(),
        "flush kept learned entries: {fdb:?}"
    );
    assert_eq!(
        fdb.iter().filter(|e| is_mac(e, STATIC_MAC)).count(),
        2,
        "flush removed static entries: {fdb:?}"
    );

    // del removes exactly the (VLAN, MAC) it names.
    d.ctl(&["fdb", "del", BR, STATIC_MAC]);
    let fdb = d.fdb(BR);
    let left: Vec<&Value> = fdb.iter().filter(|e| is_mac(e, STATIC_MAC)).collect();
    assert!(
        left.len() == 1 && left[0]["vlan"] == 7,
        "after fdb del (VLAN 0): {fdb:?}"
    );
    d.ctl(&["fdb", "del", BR, STATIC_MAC, "vlan=7"]);
    assert!(
        entry(&d.fdb(BR), STATIC_MAC).is_none(),
        "fdb del left {STATIC_MAC}"
    );

    // The bridge keeps forwarding after all that (relearning as it goes).
    a.ping(&b, 3).assert_no_loss(3);
}

#[test]
fn learned_entries_age_out() {
    let d = Daemon::start("fdb-aging");
    d.ctl(&["bridge", "add", BR, "aging=2"]);
    let bridges = d.ctl(&["bridge", "list"]);
    assert_eq!(bridges[0]["aging_secs"], 2, "{bridges}");
    let (a, b) = two_hosts(&d, "fdbage", 11);
    quiet_arp(&a, &b);

    a.ping(&b, 3).assert_no_loss(3);
    let silent_since = Instant::now();
    assert!(
        entry(&d.fdb(BR), &a.mac).is_some(),
        "A's MAC not learned right after a ping"
    );

    // From here on nothing talks: A's entry must go after ~2 s (at most 3x the aging time).
    let gone = poll(Duration::from_secs(8), Duration::from_millis(200), || {
        entry(&d.fdb(BR), &a.mac).is_none().then(Instant::now)
    });
    let Some(gone) = gone else {
        panic!(
            "A's MAC still in the table 8 s after the last frame: {:?}",
            d.fdb(BR)
        );
    };
    let after = gone - silent_since;
    eprintln!("A's entry aged out after {after:?}");
    // The last frame (a ping reply) crossed the switch just before
    // `silent_since`, so the entry must outlive the aging time measured from
    // there, within the poll interval; the sweep runs once a second, so it
    // may go up to ~1 s late.
    assert!(
        after >= Duration::from_millis(1800),
        "aged out after {after:?}, before the 2 s aging time"
    );
    assert!(
        after <= Duration::from_secs(4),
        "aged out only after {after:?} with aging=2"
    );
}
