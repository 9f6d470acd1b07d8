//! Partners that go quiet, change, disagree, or send garbage; fallback.

use super::*;

fn converged_pair() -> World {
    let mut w = World::pair(config(1, Rate::Fast), config(2, Rate::Fast), 2);
    w.secs(3.0);
    for s in 0..2 {
        for m in 0..2 {
            assert!(w.distributing(s, m), "system {s} member {m} not up");
        }
    }
    w
}

#[test]
fn partner_timeout_takes_the_member_out() {
    let mut w = converged_pair();
    // B stops talking on link 0; the link stays up.
    w.cables[0].b_to_a = false;
    w.secs(2.5);
    assert!(w.distributing(0, 0), "timed out before 3 s");
    w.secs(0.7);
    assert!(!w.distributing(0, 0) && !w.collecting(0, 0));
    assert_eq!(w.member(0, 0).rx_state(), RxState::Expired);
    assert!(w.member(0, 0).actor().state.has(PortState::EXPIRED));
    // A tells B it is out of sync, so B stops using the link too.
    assert!(!w.distributing(1, 0));
    assert!(
        w.distributing(0, 1) && w.distributing(1, 1),
        "link 1 unaffected"
    );
    w.secs(3.0);
    let m = w.member(0, 0);
    assert_eq!(m.rx_state(), RxState::Defaulted);
    assert_eq!(m.selected(), Selected::Unselected);
    assert_eq!(m.mux_state(), MuxState::Detached);
    assert!(!m.has_partner());
    // B talks again: the link rejoins.
    w.cables[0].b_to_a = true;
    w.secs(4.0);
    assert!(w.distributing(0, 0) && w.distributing(1, 0));
}

#[test]
fn partner_change_moves_the_aggregator_only_when_the_old_one_is_gone() {
    let mut w = converged_pair();
    // Link 1 of A is re-cabled to another system C.
    w.systems.push(Lacp::new(config(3, Rate::Fast), 2));
    w.delivered.push(vec![0; 2]);
    w.last_rx.push(vec![Duration::ZERO; 2]);
    w.changed.push(MemberSet::default());
    w.remove_cable(1);
    w.connect((0, 1), (2, 0));
    w.secs(3.0);
    // A stays with B (stable selection): member 1 is out.
    assert_eq!(w.systems[0].partner(), Some((65535, mac(2), 1)));
    assert!(w.distributing(0, 0));
    assert!(!w.collecting(0, 1));
    assert_eq!(w.member(0, 1).selected(), Selected::Unselected);
    assert_eq!(w.member(0, 1).partner().system, mac(3));
    // C sees A out of sync on that link and does not use it either.
    assert!(!w.collecting(2, 0));
    // B's link goes away: the aggregator moves to C.
    w.set_cable(0, false);
    w.secs(3.0);
    assert_eq!(w.systems[0].partner(), Some((65535, mac(3), 1)));
    assert!(w.distributing(0, 1) && w.distributing(2, 0));
    assert!(!w.collecting(0, 0));
}

#[test]
fn key_mismatch_keeps_one_group() {
    // The partner switch put its two ports in different LAGs: same system,
    // different keys (two machines sharing a system ID model that).
    let mut b1 = config(2, Rate::Fast);
    b1.key = 5;
    let mut b2 = b1;
    b2.key = 6;
    let mut w = World::new(vec![
        Lacp::new(config(1, Rate::Fast), 2),
        Lacp::new(b1, 1),
        Lacp::new(b2, 1),
    ]);
    w.connect((0, 0), (1, 0));
    w.connect((0, 1), (2, 0));
    w.secs(5.0);
    assert_eq!(w.systems[0].partner(), Some((65535, mac(2), 5)));
    assert!(w.distributing(0, 0) && w.distributing(1, 0));
    assert!(!w.collecting(0, 1), "member with the other key joined");
    assert!(!w.collecting(2, 0), "partner used a link we did not attach");
    assert_eq!(w.member(0, 1).mux_state(), MuxState::Detached);
}

#[test]
fn a_partner_with_our_key_wrong_is_not_in_sync() {
    let mut lacp = Lacp::new(config(1, Rate::Fast), 1);
    lacp.link_changed(0, true, Duration::ZERO);
    // A partner in sync and collecting, but with a stale key for us.
    let mut pdu = Lacp::new(config(2, Rate::Fast), 1).lacpdu(0).unwrap();
    pdu.actor.state = PortState(0x3f);
    pdu.partner = lacp.lacpdu(0).unwrap().actor;
    pdu.partner.key = 42;
    let mut b = [0u8; PDU_LEN];
    Pdu::Lacp(pdu).emit(&mut b);
    let mut t = Duration::ZERO;
    for _ in 0..50 {
        t += TICK;
        lacp.handle_pdu(0, &b, t);
        lacp.handle_timer(t);
    }
    let m = &lacp.members()[0];
    assert_eq!(m.selected(), Selected::Selected);
    assert_eq!(
        m.mux_state(),
        MuxState::Attached,
        "attached, waiting for sync"
    );
    assert!(!m.partner().state.has(PortState::SYNCHRONIZATION));
    assert!(!lacp.collecting(0));
    // Once the partner gets us right, collecting and distributing follow.
    pdu.partner.key = 1;
    pdu.partner.state.set(PortState::SYNCHRONIZATION, true);
    Pdu::Lacp(pdu).emit(&mut b);
    lacp.handle_pdu(0, &b, t + TICK);
    assert!(lacp.distributing(0));
}

#[test]
fn garbage_pdus_change_nothing_and_are_counted() {
    let mut w = converged_pair();
    let before = state_of(&w.systems[0]);
    let mut good = [0u8; PDU_LEN];
    Pdu::Lacp(w.systems[1].lacpdu(0).unwrap()).emit(&mut good);
    let mut garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![1],
        good[..PDU_LEN - 1].to_vec(),
        vec![0xff; PDU_LEN],
        vec![0; PDU_LEN],
    ];
    for (at, value) in [
        (0usize, 3u8),
        (0, 0),
        (1, 0),
        (2, 9),
        (3, 0),
        (23, 1),
        (43, 15),
        (59, 1),
    ] {
        let mut b = good.to_vec();
        b[at] = value;
        garbage.push(b);
    }
    let n = garbage.len() as u64;
    for g in &garbage {
        let acts = w.systems[0].handle_pdu(0, g, w.now);
        assert_eq!(acts, Actions::default(), "garbage {g:?} caused actions");
    }
    assert_eq!(state_of(&w.systems[0]), before, "garbage changed the state");
    assert_eq!(w.member(0, 0).counters.bad_in, n);
    // An out-of-range member is ignored too.
    assert_eq!(w.systems[0].handle_pdu(7, &good, w.now), Actions::default());
    w.secs(1.0);
    assert!(w.distributing(0, 0));
}

#[test]
fn without_fallback_no_partner_means_no_traffic() {
    let mut lacp = Lacp::new(config(1, Rate::Fast), 2);
    let mut t = Duration::ZERO;
    lacp.link_changed(0, true, t);
    lacp.link_changed(1, true, t);
    for _ in 0..100 {
        t += TICK;
        lacp.handle_timer(t);
    }
    assert!(!lacp.collecting(0) && !lacp.collecting(1));
    assert_eq!(lacp.members()[0].rx_state(), RxState::Defaulted);
    assert_eq!(lacp.partner(), None);
}

#[test]
fn fallback_uses_one_link_until_a_partner_speaks() {
    let mut cfg = config(1, Rate::Fast);
    cfg.fallback = true;
    cfg.primary = Some(1);
    let mut w = World::new(vec![Lacp::new(cfg, 2), Lacp::new(config(2, Rate::Fast), 2)]);
    // Links up, but the far end does not speak LACP yet.
    w.connect((0, 0), (1, 0));
    w.connect((0, 1), (1, 1));
    for c in &mut w.cables {
        c.b_to_a = false;
    }
    w.secs(4.0);
    assert!(
        !w.collecting(0, 0) && !w.collecting(0, 1),
        "fell back before defaulting"
    );
    w.secs(2.0);
    // Defaulted at 3 s, then AGGREGATE_WAIT: the primary alone carries traffic.
    assert!(w.distributing(0, 1) && w.collecting(0, 1));
    assert!(!w.collecting(0, 0));
    // The primary fails: the other link takes over.
    w.set_cable(1, false);
    assert!(!w.collecting(0, 1));
    w.secs(2.5);
    assert!(w.distributing(0, 0));
    // The primary returns and takes over again.
    w.set_cable(1, true);
    for c in &mut w.cables {
        c.b_to_a = false;
    }
    w.secs(6.0);
    assert!(w.distributing(0, 1) && !w.collecting(0, 0));
    // A partner speaks: both links aggregate with it.
    for c in &mut w.cables {
        c.b_to_a = true;
    }
    w.secs(4.0);
    assert_eq!(w.systems[0].partner(), Some((65535, mac(2), 1)));
    assert!(w.distributing(0, 0) && w.distributing(0, 1));
}
