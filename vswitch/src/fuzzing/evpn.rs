//! Fuzz target `evpn`: the EVPN decisions (`evpn::state`) driven by any
//! sequence of inputs, and the route decoder fed any bytes.
//!
//! Input: records of one op byte and a few argument bytes (a short record
//! reads zeros). The ops are every input the session gives the state:
//! local MACs coming and going (with ARP-snooped addresses), remote routes
//! and withdrawals, whole-table replacements, topology changes, adoption of
//! an earlier life's sequence, and withdrawing everything. Small value sets
//! (8 MACs, 4 RDs, 4 VTEPs including our own, 3 VNIs of which one is not
//! carried) make collisions, moves and ties common.
//!
//! Checked after every op:
//! - the actions returned, applied to a model of GoBGP and of the datapath,
//!   give exactly what the state says they should hold (`desired_routes`,
//!   `installs`): no action lost, none extra;
//! - no MAC is both advertised by us and installed behind the tunnel;
//! - nothing is installed toward our own VTEP;
//! - the per-VNI limits hold, and the per-VNI figures agree with a count
//!   from scratch.
//!
//! With the GoBGP API built in, the input's bytes are also decoded as an API
//! path (protobuf) and, when that works, as an EVPN route: never a panic.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use crate::evpn::state::{Action, EvpnState, Limits, LocalRoute, Nlri, RemoteRoute, RouteId};
use crate::evpn::TunnelOp;
use crate::wire::MacAddr;

const ME: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const VTEPS: [Ipv4Addr; 4] = [
    ME,
    Ipv4Addr::new(192, 0, 2, 2),
    Ipv4Addr::new(192, 0, 2, 3),
    Ipv4Addr::new(192, 0, 2, 0),
];
const VNIS: [u32; 3] = [100, 200, 300];
const LIMITS: Limits = Limits {
    max_macs: 5,
    max_vteps: 2,
};

struct Reader<'a> {
    data: &'a [u8],
}

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    fn mac(&mut self) -> MacAddr {
        MacAddr([0x52, 0x54, 0, 0, 0, self.byte() % 8])
    }

    fn vni(&mut self) -> u32 {
        VNIS[usize::from(self.byte()) % VNIS.len()]
    }

    fn vtep(&mut self) -> Ipv4Addr {
        VTEPS[usize::from(self.byte()) % VTEPS.len()]
    }

    fn ip(&mut self) -> Option<Ipv4Addr> {
        match self.byte() % 3 {
            0 => None,
            n => Some(Ipv4Addr::new(10, 0, 0, n)),
        }
    }

    fn route(&mut self) -> RemoteRoute {
        let rd = format!("rd{}", self.byte() % 4);
        let vni = self.vni();
        let vtep = self.vtep();
        let nlri = if self.byte() % 3 == 0 {
            Nlri::Flood {
                etag: 0,
                origin: vtep,
            }
        } else {
            Nlri::Mac {
                vni,
                mac: self.mac(),
                ip: self.ip().map(std::net::IpAddr::V4),
            }
        };
        RemoteRoute {
            id: RouteId { rd, nlri },
            vni,
            vtep,
            seq: u32::from(self.byte() % 4),
        }
    }
}

/// The identity of one of our routes in GoBGP (a new sequence replaces).
fn identity(r: &LocalRoute) -> (u32, Option<MacAddr>, Option<Ipv4Addr>) {
    match *r {
        LocalRoute::Flood { vni } => (vni, None, None),
        LocalRoute::Mac { vni, mac, .. } => (vni, Some(mac), None),
        LocalRoute::MacIp { vni, mac, ip, .. } => (vni, Some(mac), Some(ip)),
    }
}

#[derive(Default)]
struct Model {
    gobgp: BTreeMap<(u32, Option<MacAddr>, Option<Ipv4Addr>), LocalRoute>,
    macs: BTreeMap<(u32, MacAddr), Ipv4Addr>,
    floods: BTreeSet<(u32, Ipv4Addr)>,
}

impl Model {
    fn apply(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Advertise(r) => {
                    self.gobgp.insert(identity(&r), r);
                }
                Action::Withdraw(r) => {
                    let gone = self.gobgp.remove(&identity(&r));
                    assert_eq!(gone, Some(r), "withdrew a route not advertised as such");
                }
                Action::Tunnel(TunnelOp::Mac { vni, mac, vtep }) => match vtep {
                    Some(v) => {
                        self.macs.insert((vni, mac), v);
                    }
                    None => {
                        assert!(
                            self.macs.remove(&(vni, mac)).is_some(),
                            "uninstalled a MAC never installed"
                        );
                    }
                },
                Action::Tunnel(TunnelOp::Flood { vni, vtep, member }) => {
                    let changed = if member {
                        self.floods.insert((vni, vtep))
                    } else {
                        self.floods.remove(&(vni, vtep))
                    };
                    assert!(changed, "a flood-list change that changes nothing");
                }
            }
        }
    }

    /// A datapath that re-attached starts empty.
    fn datapath_reset(&mut self) {
        self.macs.clear();
        self.floods.clear();
    }

    fn check(&self, s: &EvpnState) {
        let want: BTreeSet<LocalRoute> = s.desired_routes().into_iter().collect();
        let have: BTreeSet<LocalRoute> = self.gobgp.values().copied().collect();
        assert_eq!(have, want, "GoBGP model and desired routes differ");
        let mut macs = BTreeMap::new();
        let mut floods = BTreeSet::new();
        for op in s.installs() {
            match op {
                TunnelOp::Mac {
                    vni,
                    mac,
                    vtep: Some(v),
                } => {
                    macs.insert((vni, mac), v);
                }
                TunnelOp::Flood { vni, vtep, .. } => {
                    floods.insert((vni, vtep));
                }
                TunnelOp::Mac { vtep: None, .. } => panic!("an install without a VTEP"),
            }
        }
        assert_eq!(self.macs, macs, "datapath model and installs differ");
        assert_eq!(self.floods, floods, "flood lists differ");
        for (&(vni, mac), &vtep) in &self.macs {
            assert_ne!(vtep, ME, "installed toward our own VTEP");
            let advertised = want.iter().any(
                |r| matches!(*r, LocalRoute::Mac { vni: v, mac: m, .. } if (v, m) == (vni, mac)),
            );
            assert!(
                !advertised,
                "{mac} in VNI {vni} both advertised and installed"
            );
        }
        for f in s.figures() {
            assert!(f.remote_macs <= LIMITS.max_macs, "{f:?}");
            assert!(f.vteps.len() <= LIMITS.max_vteps, "{f:?}");
            // The figures are counted as things change: they must agree
            // with a count from scratch.
            let local = want
                .iter()
                .filter(|r| matches!(r, LocalRoute::Mac { vni, .. } if *vni == f.vni))
                .count();
            let remote = self.macs.keys().filter(|(vni, _)| *vni == f.vni).count();
            assert_eq!((f.local_macs, f.remote_macs), (local, remote), "{f:?}");
        }
    }
}

pub fn evpn(data: &[u8]) {
    decode_any(data);
    let mut r = Reader { data };
    let mut s = EvpnState::new(LIMITS);
    let mut m = Model::default();
    let topologies: [&[(u32, u16)]; 2] = [&[(100, 10), (200, 20)], &[(100, 10)]];
    m.apply(s.set_topology(ME, topologies[0], true));
    m.check(&s);
    for _ in 0..256 {
        if r.data.is_empty() {
            break;
        }
        let actions = match r.byte() % 9 {
            0 => {
                let vlan = [10, 20, 99][usize::from(r.byte()) % 3];
                let mac = r.mac();
                let local = r.byte() % 2 == 0;
                let ip = r.ip();
                s.local_change(vlan, mac, local, ip)
            }
            1 | 2 => s.remote_update(r.route()),
            3 => s.remote_withdraw(&r.route().id),
            4 => {
                let n = r.byte() % 6;
                let routes = (0..n).map(|_| r.route()).collect();
                s.replace_remote(routes)
            }
            5 => {
                let n = r.byte() % 6;
                let macs: Vec<(u16, MacAddr)> = (0..n)
                    .map(|_| ([10, 20, 99][usize::from(r.byte()) % 3], r.mac()))
                    .collect();
                s.replace_local(&macs)
            }
            6 => {
                let topo = topologies[usize::from(r.byte()) % 2];
                let fresh = r.byte() % 2 == 0;
                let before = (s.local_ip(), s.vnis().clone());
                let actions = s.set_topology(ME, topo, fresh);
                if fresh || before != (s.local_ip(), s.vnis().clone()) {
                    // A re-attached datapath starts empty; the actions
                    // install everything again.
                    m.datapath_reset();
                }
                actions
            }
            7 => s.withdraw_all(),
            _ => {
                let (vni, mac, seq) = (r.vni(), r.mac(), u32::from(r.byte() % 8));
                if s.adopt_own(vni, mac, seq) {
                    // The route GoBGP holds now carries the adopted sequence.
                    resync_gobgp(&mut m, &s);
                }
                Vec::new()
            }
        };
        m.apply(actions);
        m.check(&s);
    }
}

fn resync_gobgp(m: &mut Model, s: &EvpnState) {
    m.gobgp = s
        .desired_routes()
        .into_iter()
        .map(|r| (identity(&r), r))
        .collect();
}

#[cfg(gobgp_api)]
fn decode_any(data: &[u8]) {
    use prost::Message;
    if let Ok(path) = crate::evpn::api::Path::decode(data) {
        let _ = crate::evpn::routes::decode(&path);
    }
}

#[cfg(not(gobgp_api))]
fn decode_any(_data: &[u8]) {}
