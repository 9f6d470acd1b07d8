//! `vsctl evpn set|show|del`: a bridge's EVPN session with the host's
//! gobgpd. The options are persisted with the bridge; the session runs as a
//! task beside the control server and changes the datapath only through
//! commands.

use super::{Executor, Outcome};
use crate::config::PortSpec;
use crate::control::protocol::{Options, Reply};
use crate::evpn::{EvpnManager, EvpnSpec, UNAVAILABLE};
use crate::port::PortKind;

impl Executor {
    pub(super) async fn evpn_set(&mut self, bridge: String, options: Options) -> Outcome {
        let current = self.require_bridge(&bridge)?;
        // `set` changes the options given and keeps the others, like
        // `bridge set`; KEY= removes one.
        let mut merged = current.evpn.clone().unwrap_or_default();
        merged.extend(options);
        merged.retain(|_, v| !v.is_empty());
        let spec = EvpnSpec::parse(&merged)?;
        if !EvpnManager::AVAILABLE {
            return Err(UNAVAILABLE.into());
        }
        let vxlan_ports: Vec<&str> = current
            .ports
            .iter()
            .filter(|p| {
                PortSpec::parse(&p.name, &p.options).is_ok_and(|s| s.kind == PortKind::Vxlan)
            })
            .map(|p| p.name.as_str())
            .collect();
        match (&spec.vtep, vxlan_ports.as_slice()) {
            (Some(v), ports) if !ports.contains(&v.as_str()) => {
                return Err(format!("vtep={v}: not a VXLAN port of bridge {bridge:?}"));
            }
            (None, []) => {
                return Err(format!(
                    "bridge {bridge:?} has no VXLAN port: add one first (type=vxlan)"
                ))
            }
            (None, [_, _, ..]) => {
                return Err(format!(
                    "bridge {bridge:?} has several VXLAN ports: name one with vtep=PORT"
                ))
            }
            _ => {}
        }
        let mut next = self.config.clone();
        next.bridge_mut(&bridge).expect("checked above").evpn = Some(merged);
        next.save(&self.state_dir).map_err(|e| e.to_string())?;
        self.config = next;
        let dp = self.datapath.commander();
        self.evpn.start(&bridge, spec, dp).await;
        Ok(Reply::done())
    }

    pub(super) fn evpn_show(&self, bridge: String) -> Outcome {
        self.require_bridge(&bridge)?;
        match self.evpn.report(&bridge) {
            Some(report) => Ok(Reply::ok(&report)),
            None => Err(format!("EVPN is not configured on bridge {bridge:?}")),
        }
    }

    pub(super) async fn evpn_del(&mut self, bridge: String) -> Outcome {
        let current = self.require_bridge(&bridge)?;
        if current.evpn.is_none() {
            return Err(format!("EVPN is not configured on bridge {bridge:?}"));
        }
        let mut next = self.config.clone();
        next.bridge_mut(&bridge).expect("checked above").evpn = None;
        next.save(&self.state_dir).map_err(|e| e.to_string())?;
        self.config = next;
        self.evpn.stop(&bridge).await;
        Ok(Reply::done())
    }

    /// Starts the sessions of a restored configuration.
    pub async fn resume_evpn(&mut self) {
        let wanted: Vec<(String, EvpnSpec)> = self
            .config
            .bridges
            .iter()
            .filter_map(|b| {
                let spec = EvpnSpec::parse(b.evpn.as_ref()?).ok()?;
                Some((b.name.clone(), spec))
            })
            .collect();
        for (bridge, spec) in wanted {
            if !EvpnManager::AVAILABLE {
                tracing::error!(bridge, "EVPN not started: {UNAVAILABLE}");
            }
            let dp = self.datapath.commander();
            self.evpn.start(&bridge, spec, dp).await;
        }
    }
}
