//! How the EVPN control plane changes a bridge: it attaches to the table
//! and the VXLAN port, then installs remote MACs and flood lists. Applied
//! between bursts like every command.

use std::sync::Arc;

use hashbrown::HashMap;

use super::Switch;
use crate::datapath::command::DatapathError;
use crate::evpn::{Topology, TunnelOp, UpdateOutcome};
use crate::fdb::{MacJournal, PortId};

impl Switch {
    /// The VXLAN port of bridge `b` EVPN drives: `name`, or the only one.
    fn evpn_vtep(&mut self, b: usize, name: Option<&str>) -> Result<PortId, DatapathError> {
        if let Some(name) = name {
            let id = self.member_port(b, name)?;
            let is_vtep = self.ports[id as usize]
                .as_mut()
                .and_then(|s| s.port.tunnel_mut())
                .is_some_and(|t| t.evpn_topology().is_some());
            return if is_vtep {
                Ok(id)
            } else {
                Err(DatapathError::Evpn(format!(
                    "port {name:?} is not a VXLAN port"
                )))
            };
        }
        let bridge = self.bridges[b].as_ref().expect("bridge index");
        let mut found = Vec::new();
        for &id in &bridge.ports {
            let is_vtep = self.ports[id as usize]
                .as_mut()
                .and_then(|s| s.port.tunnel_mut())
                .is_some_and(|t| t.evpn_topology().is_some());
            if is_vtep {
                found.push(id);
            }
        }
        match found[..] {
            [id] => Ok(id),
            [] => Err(DatapathError::Evpn(format!(
                "bridge {:?} has no VXLAN port",
                bridge.name
            ))),
            _ => Err(DatapathError::Evpn(format!(
                "bridge {:?} has several VXLAN ports: name one with vtep=",
                bridge.name
            ))),
        }
    }

    pub(super) fn evpn_attach(
        &mut self,
        bridge: &str,
        vtep: Option<&str>,
        journal: Option<Arc<MacJournal>>,
        learning: bool,
    ) -> Result<Topology, DatapathError> {
        let b = self.bridge_index(bridge)?;
        let Some(journal) = journal else {
            self.evpn_detach(b);
            return Ok(Topology {
                vtep: String::new(),
                local_ip: std::net::Ipv4Addr::UNSPECIFIED,
                vnis: Vec::new(),
                fresh: false,
            });
        };
        let id = match self.evpn_vtep(b, vtep) {
            Ok(id) => id,
            Err(e) => {
                // The VXLAN port went: a stale tunnel id must not make a
                // port that reuses its slot look like the tunnel.
                self.evpn_detach(b);
                return Err(e);
            }
        };
        let name = self.port_name(id);
        // A port deleted and added again may reuse the slot: it is a new
        // port, unmarked, holding nothing of what was installed.
        let marked = self.ports[id as usize]
            .as_mut()
            .and_then(|s| s.port.tunnel_mut())
            .is_some_and(|t| t.evpn_mark());
        let br = self.bridges[b].as_mut().expect("bridge index");
        let same = marked
            && br.fdb.evpn_tunnel() == Some((id, learning))
            && br
                .fdb
                .evpn_journal()
                .is_some_and(|j| Arc::ptr_eq(j, &journal));
        if !same {
            // Whatever an earlier attachment installed is stale now.
            br.fdb.detach_evpn();
            br.fdb.attach_evpn(journal, id, learning);
        }
        let t = self.ports[id as usize]
            .as_mut()
            .and_then(|s| s.port.tunnel_mut())
            .expect("checked by evpn_vtep");
        if !same {
            t.evpn_clear();
            t.evpn_mark();
        }
        t.set_learning(learning);
        let (local_ip, vnis) = t.evpn_topology().expect("checked by evpn_vtep");
        Ok(Topology {
            vtep: name,
            local_ip,
            vnis,
            fresh: !same,
        })
    }

    /// Takes the bridge's table and VXLAN port back from EVPN.
    fn evpn_detach(&mut self, b: usize) {
        let attached = self.bridges[b].as_ref().and_then(|br| br.fdb.evpn_tunnel());
        if let Some(br) = self.bridges[b].as_mut() {
            br.fdb.detach_evpn();
        }
        if let Some((id, _)) = attached {
            if let Some(t) = self.ports[id as usize]
                .as_mut()
                .and_then(|s| s.port.tunnel_mut())
            {
                t.evpn_clear();
                t.set_learning(true);
            }
        }
    }

    pub(super) fn evpn_update(
        &mut self,
        bridge: &str,
        ops: &[TunnelOp],
    ) -> Result<UpdateOutcome, DatapathError> {
        let b = self.bridge_index(bridge)?;
        let Some((tunnel, _)) = self.bridges[b].as_ref().and_then(|br| br.fdb.evpn_tunnel()) else {
            return Err(DatapathError::Evpn(format!(
                "EVPN is not attached to bridge {bridge:?}"
            )));
        };
        let Some(Some(slot)) = self.ports.get_mut(tunnel as usize) else {
            return Err(DatapathError::Evpn("the VXLAN port is gone".into()));
        };
        let Some(t) = slot.port.tunnel_mut() else {
            return Err(DatapathError::Evpn("the VXLAN port is gone".into()));
        };
        let vlans: HashMap<u32, u16> = t
            .evpn_topology()
            .map(|(_, v)| v.into_iter().collect())
            .unwrap_or_default();
        let fdb = &mut self.bridges[b].as_mut().expect("bridge index").fdb;
        let mut outcome = UpdateOutcome::default();
        for op in ops {
            if !t.evpn_apply(op) {
                outcome.refused += 1;
                continue;
            }
            let TunnelOp::Mac { vni, mac, vtep } = *op else {
                outcome.applied += 1;
                continue;
            };
            let Some(&vlan) = vlans.get(&vni) else {
                outcome.refused += 1;
                continue;
            };
            if vtep.is_none() {
                fdb.remove_evpn(vlan, mac);
                outcome.applied += 1;
                continue;
            }
            match fdb.install_evpn(vlan, mac, tunnel) {
                Ok(true) => outcome.applied += 1,
                Ok(false) | Err(_) => {
                    // Not in the bridge's table: the tunnel must not keep
                    // it either, or the two would disagree.
                    t.evpn_apply(&TunnelOp::Mac {
                        vni,
                        mac,
                        vtep: None,
                    });
                    outcome.refused += 1;
                }
            }
        }
        Ok(outcome)
    }
}
