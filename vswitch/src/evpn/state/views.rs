//! What the decisions say the world should hold: for reconciliation with
//! GoBGP, a fresh datapath, turning EVPN off, and `vsctl evpn show`.

use std::net::Ipv4Addr;

use super::{Action, EvpnState, LocalRoute, VniFigures};
use crate::evpn::TunnelOp;
use crate::wire::MacAddr;

impl EvpnState {
    /// GoBGP still holds our route for a MAC with sequence `seq` (from
    /// before a restart, or set by GoBGP itself): a sequence below it would
    /// be refused, so ours continues from it. True when the route is one we
    /// want.
    pub fn adopt_own(&mut self, vni: u32, mac: MacAddr, seq: u32) -> bool {
        if let Some((_, ours)) = self.advertised_ip.get_mut(&(vni, mac)) {
            *ours = (*ours).max(seq);
        }
        match self.advertised.get_mut(&(vni, mac)) {
            Some(ours) => {
                *ours = (*ours).max(seq);
                true
            }
            None => false,
        }
    }

    /// The address advertised with `mac`, if any.
    pub fn advertised_ip(&self, vni: u32, mac: MacAddr) -> Option<Ipv4Addr> {
        self.advertised_ip.get(&(vni, mac)).map(|(ip, _)| *ip)
    }

    /// Everything this host should have in GoBGP, for reconciliation.
    pub fn desired_routes(&self) -> Vec<LocalRoute> {
        let mut v: Vec<LocalRoute> = self
            .flood_advertised
            .iter()
            .map(|&vni| LocalRoute::Flood { vni })
            .chain(
                self.advertised
                    .iter()
                    .map(|(&(vni, mac), &seq)| LocalRoute::Mac { vni, mac, seq }),
            )
            .chain(
                self.advertised_ip
                    .iter()
                    .map(|(&(vni, mac), &(ip, seq))| LocalRoute::MacIp { vni, mac, ip, seq }),
            )
            .collect();
        v.sort();
        v
    }

    /// Everything the datapath should have, for a re-attached datapath.
    pub fn installs(&self) -> Vec<TunnelOp> {
        let mut ops: Vec<TunnelOp> = Vec::new();
        for (&vni, vteps) in &self.flood_installed {
            for &vtep in vteps {
                ops.push(TunnelOp::Flood {
                    vni,
                    vtep,
                    member: true,
                });
            }
        }
        for (&(vni, mac), &vtep) in &self.installed {
            ops.push(TunnelOp::Mac {
                vni,
                mac,
                vtep: Some(vtep),
            });
        }
        ops
    }

    /// Withdraws everything (EVPN turned off).
    pub fn withdraw_all(&mut self) -> Vec<Action> {
        let actions: Vec<Action> = self
            .desired_routes()
            .into_iter()
            .map(Action::Withdraw)
            .collect();
        self.advertised.clear();
        self.advertised_ip.clear();
        self.flood_advertised.clear();
        for c in self.counts.values_mut() {
            c.0 = 0;
        }
        actions
    }

    pub fn figures(&self) -> Vec<VniFigures> {
        self.vnis
            .iter()
            .map(|(&vni, &vlan)| VniFigures {
                vni,
                vlan,
                local_macs: self.counts.get(&vni).map_or(0, |c| c.0),
                remote_macs: self.counts.get(&vni).map_or(0, |c| c.1),
                vteps: self
                    .flood_installed
                    .get(&vni)
                    .map(|s| s.iter().copied().collect())
                    .unwrap_or_default(),
            })
            .collect()
    }
}
