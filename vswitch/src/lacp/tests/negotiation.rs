//! Bringing aggregates up: negotiation, rates, markers, link flaps.

use super::*;

#[test]
fn two_systems_negotiate_both_links() {
    let mut w = World::pair(config(1, Rate::Fast), config(2, Rate::Fast), 2);
    // Partners exchange PDUs at once, but a selected link waits
    // AGGREGATE_WAIT before it attaches.
    w.secs(1.5);
    for s in 0..2 {
        for m in 0..2 {
            let mem = w.member(s, m);
            assert_eq!(mem.rx_state(), RxState::Current);
            assert_eq!(mem.selected(), Selected::Selected);
            assert_eq!(mem.mux_state(), MuxState::Waiting);
            assert!(!w.collecting(s, m));
        }
    }
    w.secs(1.0);
    for s in 0..2 {
        for m in 0..2 {
            assert!(w.distributing(s, m), "system {s} member {m}");
            assert!(w.collecting(s, m));
            let mem = w.member(s, m);
            assert_eq!(mem.mux_state(), MuxState::Distributing);
            let bits = PortState::SYNCHRONIZATION | PortState::COLLECTING | PortState::DISTRIBUTING;
            assert_eq!(mem.actor().state.0 & bits, bits);
            assert_eq!(mem.partner().state.0 & bits, bits, "partner view converged");
            assert!(!mem.actor().state.has(PortState::DEFAULTED));
        }
    }
    assert_eq!(w.systems[0].partner(), Some((65535, mac(2), 1)));
    assert_eq!(w.systems[1].partner(), Some((65535, mac(1), 1)));
    assert_eq!(w.member(0, 1).partner().port, 2);
}

#[test]
fn actions_report_the_members_that_changed() {
    let mut lacp = Lacp::new(config(1, Rate::Fast), 2);
    let up = lacp.link_changed(1, true, Duration::ZERO);
    assert!(up.send.contains(1), "a link that comes up speaks at once");
    assert!(up.changed.is_empty());

    let mut w = World::new(vec![
        Lacp::new(config(1, Rate::Fast), 2),
        Lacp::new(config(2, Rate::Fast), 2),
    ]);
    w.connect((0, 1), (1, 1));
    w.secs(3.0);
    assert!(w.distributing(0, 1) && !w.collecting(0, 0));
    assert_eq!(w.changed[0].iter().collect::<Vec<_>>(), [1]);
    w.changed[0] = MemberSet::default();
    w.set_cable(0, false);
    assert_eq!(w.changed[0].iter().collect::<Vec<_>>(), [1]);
    assert!(!w.collecting(0, 1));
}

#[test]
fn fast_and_slow_rates() {
    // A asks for fast PDUs, B for slow ones.
    let mut w = World::pair(config(1, Rate::Fast), config(2, Rate::Slow), 1);
    w.secs(5.0);
    assert!(w.distributing(0, 0) && w.distributing(1, 0));
    assert_eq!(w.member(0, 0).periodic_state(), PeriodicState::SlowPeriodic);
    assert_eq!(w.member(1, 0).periodic_state(), PeriodicState::FastPeriodic);
    let a0 = w.member(0, 0).counters.lacpdus_out;
    let b0 = w.member(1, 0).counters.lacpdus_out;
    w.secs(60.0);
    let a = w.member(0, 0).counters.lacpdus_out - a0;
    let b = w.member(1, 0).counters.lacpdus_out - b0;
    // A sends every 30 s to the slow partner, B every second to the fast one.
    assert!((1..=3).contains(&a), "A sent {a} PDUs in 60 s");
    assert!((58..=61).contains(&b), "B sent {b} PDUs in 60 s");

    // Each side times the other out by its own timeout: A after 3 s, B
    // after 90 s.
    w.cables[0].a_to_b = false;
    w.cables[0].b_to_a = false;
    w.secs(2.5);
    assert!(w.distributing(0, 0), "A timed B out too early");
    w.secs(1.0);
    assert!(!w.distributing(0, 0), "A kept a silent partner past 3 s");
    // A sends only every 30 s, so B heard it last up to 30 s ago.
    let last = w.last_rx[1][0];
    w.run((last + Duration::from_secs(89)).saturating_sub(w.now));
    assert!(w.distributing(1, 0), "B timed A out before 90 s");
    w.secs(1.5);
    assert!(!w.distributing(1, 0), "B kept a silent partner past 90 s");
}

#[test]
fn marker_information_is_answered() {
    let mut lacp = Lacp::new(config(1, Rate::Fast), 2);
    let info = MarkerPdu {
        kind: MarkerKind::Information,
        requester_port: 9,
        requester_system: mac(2),
        transaction_id: 0xdead_beef,
    };
    let mut b = [0u8; PDU_LEN];
    Pdu::Marker(info).emit(&mut b);
    let before = state_of(&lacp);
    let acts = lacp.handle_pdu(1, &b, Duration::ZERO);
    let resp = acts.marker_response.expect("a response");
    assert_eq!(resp.kind, MarkerKind::Response);
    assert_eq!(
        (
            resp.requester_port,
            resp.requester_system,
            resp.transaction_id
        ),
        (9, mac(2), 0xdead_beef)
    );
    let mut resp_bytes = [0u8; PDU_LEN];
    Pdu::Marker(resp).emit(&mut resp_bytes);
    assert!(lacp
        .handle_pdu(1, &resp_bytes, Duration::ZERO)
        .marker_response
        .is_none());
    let c = lacp.members()[1].counters;
    assert_eq!((c.markers_in, c.marker_responses_out), (2, 1));
    assert_eq!(state_of(&lacp), before, "markers do not touch LACP state");
}

#[test]
fn at_most_three_pdus_a_second() {
    let mut lacp = Lacp::new(config(1, Rate::Fast), 1);
    lacp.link_changed(0, true, Duration::ZERO);
    // A partner whose view of us is always wrong makes every PDU set NTT.
    let mut pdu = Lacp::new(config(2, Rate::Fast), 1).lacpdu(0).unwrap();
    pdu.partner.key = 99;
    let mut b = [0u8; PDU_LEN];
    Pdu::Lacp(pdu).emit(&mut b);
    let mut sent = 0;
    let mut t = Duration::ZERO;
    for _ in 0..19 {
        t += Duration::from_millis(50);
        sent += lacp.handle_pdu(0, &b, t).send.iter().count();
    }
    // One PDU went out at link up (t = 0); 19 PDUs within that second.
    assert_eq!(sent + 1, 3, "rate limit exceeded");
    t += Duration::from_millis(1000);
    assert!(
        lacp.handle_timer(t).send.contains(0),
        "held-back PDU goes out later"
    );
}

#[test]
fn a_member_link_flap_leaves_and_rejoins() {
    let mut w = World::pair(config(1, Rate::Fast), config(2, Rate::Fast), 2);
    w.secs(3.0);
    assert!(w.distributing(0, 0) && w.distributing(0, 1));
    w.set_cable(0, false);
    // No time passes: the link event takes the member out at once.
    assert!(!w.distributing(0, 0) && !w.collecting(0, 0));
    assert!(!w.distributing(1, 0));
    assert!(w.distributing(0, 1) && w.distributing(1, 1));
    assert_eq!(w.member(0, 0).rx_state(), RxState::PortDisabled);
    w.secs(1.0);
    w.set_cable(0, true);
    w.secs(1.0);
    assert!(!w.distributing(0, 0), "rejoined without waiting");
    w.secs(2.0);
    assert!(w.distributing(0, 0) && w.distributing(1, 0), "rejoined");
}
