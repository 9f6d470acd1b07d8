//! What the EVPN control plane tells a VTEP: each VNI's flood list (type-3
//! routes) and the remote VTEP of each MAC (type-2 routes). Configured
//! remotes stay as they are; EVPN's VTEPs come on top, and traffic from
//! them is accepted for as long as a route refers to them.

use std::net::Ipv4Addr;

use hashbrown::HashMap;

use super::{RemoteMac, VxlanPort};
use crate::evpn::TunnelOp;
use crate::pipeline::counters::PortCounters;

#[derive(Default)]
pub(super) struct EvpnRemotes {
    /// VNI -> VTEPs that asked for its broadcast, multicast and unknown
    /// unicast.
    flood: HashMap<u32, Vec<Ipv4Addr>>,
    /// VTEP -> how many flood memberships and MAC entries name it.
    refs: HashMap<Ipv4Addr, u32>,
}

impl EvpnRemotes {
    #[inline]
    pub(super) fn knows(&self, vtep: Ipv4Addr) -> bool {
        !self.refs.is_empty() && self.refs.contains_key(&vtep)
    }

    pub(super) fn flood_list(&self, vni: u32) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.flood.get(&vni).into_iter().flatten().copied()
    }

    /// Every VTEP EVPN named, with its reference count.
    pub(super) fn vteps(&self) -> impl Iterator<Item = (Ipv4Addr, u32)> + '_ {
        self.refs.iter().map(|(v, n)| (*v, *n))
    }
}

impl VxlanPort {
    fn hold(&mut self, vtep: Ipv4Addr) {
        let n = self.evpn.refs.entry(vtep).or_insert(0);
        *n += 1;
        if *n == 1 {
            if let Some(nh) = self.cfg.next_hop(vtep) {
                self.neighbors.want(nh);
            }
            self.per_remote.entry(vtep).or_default();
        }
    }

    fn release(&mut self, vtep: Ipv4Addr) {
        let Some(n) = self.evpn.refs.get_mut(&vtep) else {
            return;
        };
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.evpn.refs.remove(&vtep);
            if !self.cfg.remotes.contains(&vtep) {
                self.per_remote.remove(&vtep);
            }
        }
    }

    pub(super) fn apply_evpn(&mut self, op: &TunnelOp) -> bool {
        match *op {
            TunnelOp::Mac { vni, mac, vtep } => {
                if self.cfg.vlan_of_vni(vni).is_none() {
                    return false;
                }
                let old = match self.macs.get(&(vni, mac)) {
                    Some(e) if e.from_evpn => Some(e.remote),
                    _ => None,
                };
                if let Some(old) = old {
                    self.macs.remove(&(vni, mac));
                    self.release(old);
                }
                if let Some(vtep) = vtep {
                    // A static pin wins over BGP, as in the bridge's table.
                    if self.macs.get(&(vni, mac)).is_some_and(|e| e.is_static) {
                        return true;
                    }
                    self.macs.insert(
                        (vni, mac),
                        RemoteMac {
                            remote: vtep,
                            last_seen: self.now,
                            is_static: false,
                            from_evpn: true,
                        },
                    );
                    self.hold(vtep);
                }
                true
            }
            TunnelOp::Flood { vni, vtep, member } => {
                if self.cfg.vlan_of_vni(vni).is_none() {
                    return false;
                }
                let list = self.evpn.flood.entry(vni).or_default();
                let present = list.contains(&vtep);
                if member && !present {
                    list.push(vtep);
                    self.hold(vtep);
                } else if !member && present {
                    list.retain(|v| *v != vtep);
                    self.release(vtep);
                }
                true
            }
        }
    }

    pub(super) fn clear_evpn(&mut self) {
        self.macs.retain(|_, e| !e.from_evpn);
        let vteps: Vec<Ipv4Addr> = self.evpn.refs.keys().copied().collect();
        for v in vteps {
            if !self.cfg.remotes.contains(&v) {
                self.per_remote.remove(&v);
            }
        }
        self.evpn = EvpnRemotes::default();
    }

    /// Head-end replication of one frame to `vni`'s EVPN flood list
    /// (configured remotes were served already).
    pub(super) fn flood_evpn(
        &mut self,
        vni: u32,
        frame: &[u8],
        tagged: bool,
        counters: &mut PortCounters,
    ) {
        let n = self.evpn.flood.get(&vni).map_or(0, Vec::len);
        for i in 0..n {
            let Some(&vtep) = self.evpn.flood.get(&vni).and_then(|l| l.get(i)) else {
                break;
            };
            if !self.cfg.remotes.contains(&vtep) {
                self.encap(vtep, vni, frame, tagged, counters);
            }
        }
    }
}
