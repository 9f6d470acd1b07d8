use super::*;

const ME: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 5);
const A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 9);

fn mac(n: u8) -> MacAddr {
    MacAddr([0x52, 0x54, 0, 0, 0, n])
}

fn state() -> EvpnState {
    let mut s = EvpnState::new(Limits {
        max_macs: 3,
        max_vteps: 2,
    });
    s.set_topology(ME, &[(100, 10), (200, 20)], true);
    s
}

fn mac_route(vtep: Ipv4Addr, vni: u32, m: MacAddr, seq: u32) -> RemoteRoute {
    RemoteRoute {
        id: RouteId {
            rd: format!("{vtep}:{vni}"),
            nlri: Nlri::Mac {
                vni,
                mac: m,
                ip: None,
            },
        },
        vni,
        vtep,
        seq,
    }
}

fn flood_route(vtep: Ipv4Addr, vni: u32) -> RemoteRoute {
    RemoteRoute {
        id: RouteId {
            rd: format!("{vtep}:{vni}"),
            nlri: Nlri::Flood {
                etag: 0,
                origin: vtep,
            },
        },
        vni,
        vtep,
        seq: 0,
    }
}

fn install(vni: u32, m: MacAddr, vtep: Option<Ipv4Addr>) -> Action {
    Action::Tunnel(TunnelOp::Mac { vni, mac: m, vtep })
}

fn adv(vni: u32, m: MacAddr, seq: u32) -> Action {
    Action::Advertise(LocalRoute::Mac { vni, mac: m, seq })
}

fn wd(vni: u32, m: MacAddr, seq: u32) -> Action {
    Action::Withdraw(LocalRoute::Mac { vni, mac: m, seq })
}

#[test]
fn topology_advertises_one_flood_route_per_vni() {
    let mut s = EvpnState::new(Limits {
        max_macs: 10,
        max_vteps: 10,
    });
    let a = s.set_topology(ME, &[(100, 10), (200, 20)], true);
    assert_eq!(
        a,
        [
            Action::Advertise(LocalRoute::Flood { vni: 100 }),
            Action::Advertise(LocalRoute::Flood { vni: 200 })
        ]
    );
    assert_eq!(s.set_topology(ME, &[(100, 10), (200, 20)], false), []);
    // A VNI less: everything is withdrawn and advertised again.
    let a = s.set_topology(ME, &[(100, 10)], false);
    assert!(a.contains(&Action::Withdraw(LocalRoute::Flood { vni: 200 })));
    assert_eq!(s.desired_routes(), [LocalRoute::Flood { vni: 100 }]);
}

#[test]
fn local_macs_are_advertised_and_withdrawn() {
    let mut s = state();
    assert_eq!(
        s.local_change(10, mac(1), true, None),
        [adv(100, mac(1), 0)]
    );
    assert_eq!(s.local_change(10, mac(1), true, None), []);
    assert_eq!(
        s.local_change(99, mac(2), true, None),
        [],
        "VLAN without a VNI"
    );
    assert_eq!(s.local_change(10, MacAddr::BROADCAST, true, None), []);
    assert_eq!(
        s.local_change(10, mac(1), false, None),
        [wd(100, mac(1), 0)]
    );
}

#[test]
fn remote_macs_are_installed_and_removed() {
    let mut s = state();
    let r = mac_route(A, 100, mac(1), 0);
    assert_eq!(s.remote_update(r.clone()), [install(100, mac(1), Some(A))]);
    assert_eq!(s.remote_update(r.clone()), [], "the same route again");
    assert_eq!(
        s.remote_update(mac_route(A, 300, mac(1), 0)),
        [],
        "VNI not carried"
    );
    assert_eq!(
        s.remote_update(mac_route(ME, 100, mac(7), 0)),
        [],
        "our own route"
    );
    assert_eq!(s.remote_withdraw(&r.id), [install(100, mac(1), None)]);
    assert_eq!(s.remote_withdraw(&r.id), []);
}

#[test]
fn flood_lists_follow_type3_routes() {
    let mut s = state();
    let fa = flood_route(A, 100);
    let flood = |vtep, member| {
        Action::Tunnel(TunnelOp::Flood {
            vni: 100,
            vtep,
            member,
        })
    };
    assert_eq!(s.remote_update(fa.clone()), [flood(A, true)]);
    assert_eq!(s.remote_update(flood_route(B, 100)), [flood(B, true)]);
    assert_eq!(s.figures()[0].vteps, [A, B]);
    assert_eq!(s.remote_withdraw(&fa.id), [flood(A, false)]);
}

#[test]
fn a_mac_that_arrives_here_outbids_the_remote_sequence() {
    let mut s = state();
    s.remote_update(mac_route(A, 100, mac(1), 0));
    // The VM shows up locally: advertised one above what A said, and the
    // tunnel entry goes.
    assert_eq!(
        s.local_change(10, mac(1), true, None),
        [adv(100, mac(1), 1), install(100, mac(1), None)]
    );
    // A withdraws: nothing changes here.
    assert_eq!(s.remote_withdraw(&mac_route(A, 100, mac(1), 0).id), []);
    // A stale route with a lower sequence changes nothing either.
    assert_eq!(s.remote_update(mac_route(B, 100, mac(1), 0)), []);
}

#[test]
fn a_mac_that_moves_away_is_withdrawn_and_installed() {
    let mut s = state();
    s.local_change(10, mac(1), true, None);
    assert_eq!(
        s.remote_update(mac_route(B, 100, mac(1), 1)),
        [wd(100, mac(1), 0), install(100, mac(1), Some(B))]
    );
    // It comes back: one above B's sequence.
    assert_eq!(
        s.local_change(10, mac(1), true, None),
        [adv(100, mac(1), 2), install(100, mac(1), None)]
    );
}

#[test]
fn equal_sequences_go_to_the_lowest_address() {
    let mut s = state();
    s.local_change(10, mac(1), true, None);
    s.local_change(10, mac(2), true, None);
    // B is above us: we keep ours.
    assert_eq!(s.remote_update(mac_route(B, 100, mac(1), 0)), []);
    // A is below us: A wins.
    assert_eq!(
        s.remote_update(mac_route(A, 100, mac(2), 0)),
        [wd(100, mac(2), 0), install(100, mac(2), Some(A))]
    );
}

#[test]
fn a_local_mac_that_goes_falls_back_to_the_remote_route() {
    let mut s = state();
    s.remote_update(mac_route(A, 100, mac(1), 0));
    s.local_change(10, mac(1), true, None);
    assert_eq!(
        s.local_change(10, mac(1), false, None),
        [wd(100, mac(1), 1), install(100, mac(1), Some(A))]
    );
}

#[test]
fn limits_bound_what_peers_can_store() {
    let mut s = state();
    for n in 0..3 {
        s.remote_update(mac_route(A, 100, mac(n), 0));
    }
    assert_eq!(s.remote_update(mac_route(A, 100, mac(9), 0)), []);
    assert_eq!(s.refused, 1);
    // Another route for a known MAC is not a new MAC.
    assert_eq!(s.remote_update(mac_route(B, 100, mac(0), 0)), []);
    assert_eq!(s.refused, 1);
    // A third VTEP in VNI 100 is one too many.
    let c = Ipv4Addr::new(192, 0, 2, 30);
    assert_eq!(s.remote_update(flood_route(c, 100)), []);
    assert_eq!(s.refused, 2);
    // Other VNIs have their own budget.
    assert_eq!(
        s.remote_update(mac_route(c, 200, mac(9), 0)),
        [install(200, mac(9), Some(c))]
    );
    let f = &s.figures();
    assert_eq!((f[0].remote_macs, f[1].remote_macs), (3, 1));
}

#[test]
fn a_new_table_replaces_the_old_one() {
    let mut s = state();
    s.remote_update(mac_route(A, 100, mac(1), 0));
    s.remote_update(mac_route(A, 100, mac(2), 0));
    s.remote_update(flood_route(A, 100));
    let a = s.replace_remote(vec![mac_route(B, 100, mac(2), 0), flood_route(B, 100)]);
    assert_eq!(
        a,
        [
            install(100, mac(1), None),
            install(100, mac(2), Some(B)),
            Action::Tunnel(TunnelOp::Flood {
                vni: 100,
                vtep: A,
                member: false
            }),
            Action::Tunnel(TunnelOp::Flood {
                vni: 100,
                vtep: B,
                member: true
            }),
        ]
    );
    let mut installs = s.installs();
    installs.sort_by_key(|op| format!("{op:?}"));
    assert_eq!(installs.len(), 2);
}

#[test]
fn a_full_local_resync_finds_what_the_journal_lost() {
    let mut s = state();
    s.local_change(10, mac(1), true, None);
    let a = s.replace_local(&[(10, mac(2)), (20, mac(3)), (99, mac(4))]);
    assert_eq!(
        a,
        [wd(100, mac(1), 0), adv(100, mac(2), 0), adv(200, mac(3), 0)]
    );
}

#[test]
fn a_route_left_in_gobgp_sets_the_sequence_floor() {
    let mut s = state();
    s.local_change(10, mac(1), true, None);
    assert!(s.adopt_own(100, mac(1), 4));
    assert!(!s.adopt_own(100, mac(2), 4));
    assert!(s.desired_routes().contains(&LocalRoute::Mac {
        vni: 100,
        mac: mac(1),
        seq: 4
    }));
    let all = s.withdraw_all();
    assert_eq!(all.len(), 3);
    assert!(s.desired_routes().is_empty());
}

#[test]
fn an_address_seen_in_arp_gets_its_own_mac_ip_route() {
    let mut s = state();
    let ip1 = Ipv4Addr::new(10, 1, 0, 5);
    let ip2 = Ipv4Addr::new(10, 1, 0, 6);
    let macip = |ip, seq| LocalRoute::MacIp {
        vni: 100,
        mac: mac(1),
        ip,
        seq,
    };
    assert_eq!(
        s.local_change(10, mac(1), true, Some(ip1)),
        [adv(100, mac(1), 0), Action::Advertise(macip(ip1, 0))]
    );
    assert_eq!(s.local_change(10, mac(1), true, Some(ip1)), []);
    assert_eq!(s.local_change(10, mac(1), true, None), []);
    assert_eq!(
        s.local_change(10, mac(1), true, Some(ip2)),
        [
            Action::Withdraw(macip(ip1, 0)),
            Action::Advertise(macip(ip2, 0))
        ]
    );
    assert_eq!(s.advertised_ip(100, mac(1)), Some(ip2));
    // Moving away withdraws both routes.
    assert_eq!(
        s.remote_update(mac_route(B, 100, mac(1), 1)),
        [
            wd(100, mac(1), 0),
            Action::Withdraw(macip(ip2, 0)),
            install(100, mac(1), Some(B))
        ]
    );
    // Back again: both with the new sequence.
    assert_eq!(
        s.local_change(10, mac(1), true, Some(ip2)),
        [
            adv(100, mac(1), 2),
            Action::Advertise(macip(ip2, 2)),
            install(100, mac(1), None)
        ]
    );
    assert_eq!(s.desired_routes().len(), 4, "two floods, MAC and MAC+IP");
    assert_eq!(
        s.local_change(10, mac(1), false, None),
        [
            wd(100, mac(1), 2),
            Action::Withdraw(macip(ip2, 2)),
            install(100, mac(1), Some(B))
        ]
    );
}
