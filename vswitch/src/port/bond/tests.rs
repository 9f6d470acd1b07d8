//! Root-only tests of the bond over real veth pairs: two bonds back to back
//! negotiate LACP and spread flows; carrier loss wakes the readiness
//! descriptor and fails over.

use std::time::{Duration, Instant};

use super::*;
use crate::pipeline::counters::DropReason;
use crate::port::sys::test_util::*;
use etherparse::PacketBuilder;

fn cfg(members: &[&str], mode: BondMode) -> BondConfig {
    BondConfig {
        members: members.iter().map(|m| m.to_string()).collect(),
        mode,
        hash: HashPolicy::L34,
        primary: None,
        lacp_rate: Rate::Fast,
        lacp_system: None,
        lacp_system_priority: 65535,
        lacp_key: 1,
        lacp_fallback: false,
    }
}

fn udp(sport: u16) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(sport, 7)
        .write(&mut out, &[0u8; 18])
        .unwrap();
    out
}

fn details(b: &BondPort) -> BondDetails {
    serde_json::from_value(b.details().unwrap()).unwrap()
}

/// Two bonds whose members are the two ends of `n` veth pairs.
struct BackToBack {
    a: BondPort,
    b: BondPort,
    ca: PortCounters,
    cb: PortCounters,
    now: Duration,
    a_ends: Vec<String>,
    _veths: Vec<LinkGuard>,
}

impl BackToBack {
    fn new(tag: &str, n: usize, mode: BondMode) -> BackToBack {
        let mut veths = Vec::new();
        let (mut a_ends, mut b_ends) = (Vec::new(), Vec::new());
        for i in 0..n {
            let a = unique("vba", &format!("{tag}{i}"));
            let b = unique("vbb", &format!("{tag}{i}"));
            veths.push(veth_pair(&a, &b, 1500));
            a_ends.push(a);
            b_ends.push(b);
        }
        fn refs(v: &[String]) -> Vec<&str> {
            v.iter().map(|s| s.as_str()).collect()
        }
        let a = BondPort::open("ba", &cfg(&refs(&a_ends), mode)).expect("open bond a");
        let b = BondPort::open("bb", &cfg(&refs(&b_ends), mode)).expect("open bond b");
        BackToBack {
            a,
            b,
            ca: PortCounters::default(),
            cb: PortCounters::default(),
            now: Duration::ZERO,
            a_ends,
            _veths: veths,
        }
    }

    /// One datapath round on both sides: tick (every call: 100 ms of
    /// simulated time), receive everything, flush.
    fn round(&mut self) {
        self.now += Duration::from_millis(100);
        let mut batch = Batch::new();
        for (bond, c) in [(&mut self.a, &mut self.ca), (&mut self.b, &mut self.cb)] {
            bond.tick(self.now, c);
            loop {
                batch.clear();
                if bond.rx_burst(&mut batch, c) == 0 {
                    break;
                }
            }
            bond.flush(c);
        }
        std::thread::sleep(Duration::from_millis(2));
    }

    fn until(&mut self, rounds: usize, mut f: impl FnMut(&Self) -> bool) -> bool {
        for _ in 0..rounds {
            self.round();
            if f(self) {
                return true;
            }
        }
        false
    }
}

fn all_distributing(b: &BondPort) -> bool {
    details(b)
        .members
        .iter()
        .all(|m| m.distributing && m.collecting)
}

#[test]
fn lacp_bonds_negotiate_spread_and_fail_over() {
    let mut t = BackToBack::new("l", 2, BondMode::Lacp);
    assert!(
        t.until(80, |t| all_distributing(&t.a) && all_distributing(&t.b)),
        "no convergence: {:#?}",
        details(&t.a)
    );
    let d = details(&t.a);
    let partner = d.lacp.as_ref().unwrap().partner.clone().unwrap();
    assert_eq!(partner.system, details(&t.b).lacp.unwrap().actor.system);
    assert!(d
        .members
        .iter()
        .all(|m| m.lacp.as_ref().unwrap().lacpdus_in > 0));

    // 64 flows spread over both members; each flow keeps to one.
    let frames: Vec<Vec<u8>> = (0..64).map(|p| udp(4000 + p)).collect();
    let refs: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
    let before: Vec<u64> = details(&t.a).members.iter().map(|m| m.tx_packets).collect();
    assert_eq!(t.a.tx_burst(&refs, &mut t.ca), 64);
    t.a.flush(&mut t.ca);
    let after: Vec<u64> = details(&t.a).members.iter().map(|m| m.tx_packets).collect();
    let per: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(per.iter().sum::<u64>(), 64);
    assert!(per.iter().all(|n| *n >= 16), "poor spread: {per:?}");
    // B receives them all, as one port.
    let mut got = 0;
    let mut batch = Batch::new();
    let start = Instant::now();
    while got < 64 && start.elapsed() < TIMEOUT {
        batch.clear();
        got += t.b.rx_burst(&mut batch, &mut t.cb);
        assert!(batch
            .iter()
            .all(|f| !crate::wire::lacp::is_slow_protocols(f.frame())));
    }
    assert_eq!(got, 64);

    // Member 0's link goes down: the readiness descriptor wakes at once
    // and traffic moves to member 1.
    let fd = t.a.readiness_fd().unwrap();
    let mut batch = Batch::new();
    while t.a.rx_burst(&mut batch, &mut t.ca) > 0 {
        batch.clear();
    }
    ip(&["link", "set", &t.a_ends[0], "down"]);
    assert_ne!(
        poll_fd(fd, libc::POLLIN, 1000) & libc::POLLIN,
        0,
        "no wake-up"
    );
    batch.clear();
    t.a.rx_burst(&mut batch, &mut t.ca);
    let d = details(&t.a);
    assert!(!d.members[0].link_up && !d.members[0].distributing);
    assert!(d.members[1].distributing);
    let before = details(&t.a).members[1].tx_packets;
    assert_eq!(t.a.tx_burst(&refs, &mut t.ca), 64);
    assert_eq!(details(&t.a).members[1].tx_packets - before, 64);

    // It comes back and rejoins after the aggregate wait.
    ip(&["link", "set", &t.a_ends[0], "up"]);
    assert!(
        t.until(80, |t| all_distributing(&t.a) && all_distributing(&t.b)),
        "member did not rejoin: {:#?}",
        details(&t.a)
    );
}

#[test]
fn active_backup_fails_over_on_carrier_loss() {
    let mut t = BackToBack::new("a", 2, BondMode::ActiveBackup);
    t.round();
    assert_eq!(t.a.take_event(), Some(PortEvent::AnnounceMacs));
    let d = details(&t.a);
    assert_eq!(d.active.as_deref(), Some(t.a_ends[0].as_str()));
    assert_eq!(d.failovers, 0);
    assert!(t.a.take_event().is_none());

    // Only the active member carries frames.
    let f = udp(1);
    assert_eq!(t.a.tx_burst(&[&f], &mut t.ca), 1);
    assert_eq!(details(&t.a).members[0].tx_packets, 1);
    assert_eq!(details(&t.a).members[1].tx_packets, 0);

    // The far end of the active member goes down: carrier loss on ours.
    let fd = t.a.readiness_fd().unwrap();
    let mut batch = Batch::new();
    while t.a.rx_burst(&mut batch, &mut t.ca) > 0 {
        batch.clear();
    }
    let peer = t.a_ends[0].replacen("vba", "vbb", 1);
    ip(&["link", "set", &peer, "down"]);
    assert_ne!(
        poll_fd(fd, libc::POLLIN, 1000) & libc::POLLIN,
        0,
        "no wake-up"
    );
    // The wake-up may come from a frame ahead of the link event: keep
    // receiving (bounded) until the event is seen.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut event = None;
    while event.is_none() && std::time::Instant::now() < deadline {
        batch.clear();
        t.a.rx_burst(&mut batch, &mut t.ca);
        event = t.a.take_event();
        if event.is_none() {
            poll_fd(fd, libc::POLLIN, 100);
        }
    }
    assert_eq!(event, Some(PortEvent::AnnounceMacs));
    let d = details(&t.a);
    assert_eq!(d.active.as_deref(), Some(t.a_ends[1].as_str()));
    assert_eq!(d.failovers, 1);
    assert!(!d.members[0].link_up);
    assert_eq!(t.a.tx_burst(&[&f], &mut t.ca), 1);
    assert_eq!(details(&t.a).members[1].tx_packets, 1);

    // No member up: frames are dropped and counted.
    let peer1 = t.a_ends[1].replacen("vba", "vbb", 1);
    ip(&["link", "set", &peer1, "down"]);
    assert!(t.until(20, |t| details(&t.a).active.is_none()));
    assert_eq!(t.a.tx_burst(&[&f], &mut t.ca), 0);
    assert_eq!(t.ca.drops(DropReason::BondNoLink), 1);
}

#[test]
fn frames_of_inactive_members_and_slow_frames_do_not_pass() {
    let mut t = BackToBack::new("s", 2, BondMode::ActiveBackup);
    t.round();
    // B sends on its member 1 (not A's active one) and a slow protocols
    // frame on member 0.
    let f = udp(9);
    t.b.cfg.primary = Some(1);
    t.b.reselect_active();
    assert_eq!(t.b.tx_burst(&[&f], &mut t.cb), 1);
    t.b.flush(&mut t.cb);
    t.b.send_control(
        0,
        crate::wire::lacp::Pdu::Lacp(Default::default()),
        &mut t.cb,
    );
    t.b.flush(&mut t.cb);
    let mut batch = Batch::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(300) {
        t.a.rx_burst(&mut batch, &mut t.ca);
    }
    assert!(batch.is_empty(), "a frame passed");
    assert_eq!(t.ca.drops(DropReason::BondNotCollecting), 1);
    assert_eq!(details(&t.a).slow_ignored, 1);
}

#[test]
fn missing_member_is_a_clear_error() {
    let missing = unique("vbx", "");
    match BondPort::open("b", &cfg(&[&missing], BondMode::Lacp)) {
        Err(PortError::NoSuchInterface(n)) => assert_eq!(n, missing),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("opened a bond over a missing interface"),
    }
    assert!(matches!(
        BondPort::open("b", &cfg(&[], BondMode::Lacp)),
        Err(PortError::Invalid(_))
    ));
}

/// A is overloaded: it never reads its members' rings, which B fills with
/// data; only A's ticks run. LACPDUs reach LACP through the side channel,
/// so A's members stay in the aggregate for 6 s of (simulated) time, twice
/// the fast-rate timeout.
#[test]
fn lacp_holds_while_the_rings_overflow() {
    let mut t = BackToBack::new("o", 2, BondMode::Lacp);
    assert!(
        t.until(80, |t| all_distributing(&t.a) && all_distributing(&t.b)),
        "no convergence"
    );
    let lacpdus_in = |b: &BondPort| -> u64 {
        details(b)
            .members
            .iter()
            .map(|m| m.lacp.as_ref().unwrap().lacpdus_in)
            .sum()
    };
    let before = lacpdus_in(&t.a);
    let frames: Vec<Vec<u8>> = (0..32).map(|p| udp(5000 + p)).collect();
    let refs: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
    let mut batch = Batch::new();
    for _ in 0..60 {
        t.now += Duration::from_millis(100);
        t.a.tick(t.now, &mut t.ca);
        t.a.flush(&mut t.ca);
        t.b.tick(t.now, &mut t.cb);
        for _ in 0..20 {
            t.b.tx_burst(&refs, &mut t.cb);
            t.b.flush(&mut t.cb);
        }
        loop {
            batch.clear();
            if t.b.rx_burst(&mut batch, &mut t.cb) == 0 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    t.a.tick(t.now, &mut t.ca);
    assert!(
        t.ca.drops(DropReason::RxRingFull) > 0,
        "A's rings overflowed"
    );
    assert!(lacpdus_in(&t.a) >= before + 6, "LACPDUs kept arriving");
    assert!(all_distributing(&t.a), "{:#?}", details(&t.a));
    assert!(all_distributing(&t.b), "{:#?}", details(&t.b));
}
