//! Port requests: add, set, delete, list, show.

use super::{Executor, Outcome};
use crate::config::{BridgeSpec, PortConfig, PortSpec, StaticFdbEntry};
use crate::control::protocol::{Options, PortDetails, PortInfo, Reply};
use crate::datapath::Command;
use crate::port;

/// A port's backends, ready for the datapath.
pub(super) enum Opened {
    One(Box<dyn port::Port>),
    /// One per worker, for a bridge on every worker.
    Shards(Vec<Box<dyn port::Port>>),
}

impl Opened {
    /// The command that adds them to bridge `bridge` as port `name`.
    pub(super) fn command(
        self,
        bridge: &str,
        name: &str,
        policy: crate::pipeline::admit::PortPolicy,
        reply: crate::datapath::Reply<()>,
    ) -> Command {
        let (bridge, name) = (bridge.to_string(), name.to_string());
        match self {
            Opened::One(port) => Command::AddPort {
                bridge,
                name,
                port,
                policy,
                reply,
            },
            Opened::Shards(shards) => Command::AddPortShards {
                bridge,
                name,
                shards,
                policy,
                reply,
            },
        }
    }
}

/// Opens port `name`: one backend, or one shard per worker when its bridge
/// runs on every worker (`spread`).
pub(super) fn open_port(
    name: &str,
    spec: &PortSpec,
    spread: bool,
    workers: usize,
) -> Result<Opened, port::PortError> {
    if spread {
        port::open_shards(name, spec, workers).map(Opened::Shards)
    } else {
        port::open(name, spec).map(Opened::One)
    }
}

impl Executor {
    pub(super) async fn port_add(
        &mut self,
        bridge: String,
        port: String,
        options: Options,
    ) -> Outcome {
        let bridge_spec = BridgeSpec::parse(&self.require_bridge(&bridge)?.options)?;
        let spec = PortSpec::parse(&port, &options)?;
        bridge_spec.admits(&port, &spec)?;
        if let Some((b, _)) = self.config.port(&port) {
            return Err(format!(
                "port {port:?} exists already (on bridge {:?})",
                b.name
            ));
        }
        for iface in spec.ifaces() {
            if let Some(other) = self.config.port_using_iface(iface) {
                return Err(format!(
                    "interface {iface:?} is already used by port {:?}",
                    other.name
                ));
            }
        }
        if let Some(vx) = &spec.vxlan {
            self.check_vtep(&port, vx)?;
        }
        let opened = open_port(&port, &spec, bridge_spec.spread, self.datapath.workers())
            .map_err(|e| e.to_string())?;
        let mut next = self.config.clone();
        next.bridge_mut(&bridge)
            .expect("checked above")
            .ports
            .push(PortConfig {
                name: port.clone(),
                options,
            });
        self.commit(next, |reply| {
            opened.command(&bridge, &port, spec.policy, reply)
        })
        .await?;
        Ok(Reply::done())
    }

    /// A VTEP needs an existing, non-tunnel underlay port, and one address
    /// serves one VTEP per underlay (two would both answer its ARP).
    pub(super) fn check_vtep(
        &self,
        port: &str,
        vx: &crate::port::vxlan::VxlanConfig,
    ) -> Result<(), String> {
        let Some((_, under)) = self.config.port(&vx.underlay) else {
            return Err(format!(
                "underlay port {:?} does not exist: add the uplink port first",
                vx.underlay
            ));
        };
        if under.options.get("type").map(String::as_str) == Some("vxlan") {
            return Err(format!("underlay {:?} is itself a vxlan port", vx.underlay));
        }
        for b in &self.config.bridges {
            for p in &b.ports {
                if p.name == port {
                    continue;
                }
                if let Ok(PortSpec {
                    vxlan: Some(other), ..
                }) = PortSpec::parse(&p.name, &p.options)
                {
                    if other.underlay == vx.underlay && other.local == vx.local {
                        return Err(format!(
                            "port {:?} already is the VTEP {} on {:?}",
                            p.name, vx.local, vx.underlay
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    pub(super) async fn port_set(&mut self, port: String, changes: Options) -> Outcome {
        if changes.is_empty() {
            return Err("nothing to set: give KEY=VALUE options (KEY= removes one)".into());
        }
        let (b, p) = self
            .config
            .port(&port)
            .ok_or_else(|| format!("no port {port:?}"))?;
        let bridge = b.name.clone();
        let merged = PortSpec::merge_options(&p.options, &changes)?;
        let spec = PortSpec::parse(&port, &merged)?;
        BridgeSpec::parse(&b.options)?.admits(&port, &spec)?;
        let mut next = self.config.clone();
        let nb = next.bridge_mut(&bridge).expect("port's bridge");
        if let Some(np) = nb.ports.iter_mut().find(|np| np.name == port) {
            np.options = merged;
        }
        // Static entries in networks the port no longer carries go: the
        // datapath drops them too when the VLAN mode changes.
        let networks = spec.policy.vlan.networks();
        nb.static_fdb
            .retain(|e| e.port != port || networks.contains(e.vlan));
        if self.not_running.contains_key(&port) {
            next.save(&self.state_dir).map_err(|e| e.to_string())?;
            self.config = next;
            return Ok(Reply::done());
        }
        let vlan_changed = {
            let old = PortSpec::parse(&port, &p.options).map_err(|e| e.to_string())?;
            old.policy.vlan != spec.policy.vlan
        };
        let statics: Vec<StaticFdbEntry> = next
            .bridge(&bridge)
            .map(|b| {
                b.static_fdb
                    .iter()
                    .filter(|e| e.port == port)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        self.commit(next, |reply| Command::SetPortPolicy {
            name: port,
            policy: spec.policy,
            reply,
        })
        .await?;
        // A VLAN mode change flushes the port's entries in the datapath;
        // the static ones still valid go back in.
        if vlan_changed {
            for e in statics {
                let bridge = bridge.clone();
                if let Err(err) = self
                    .datapath
                    .call(|reply| Command::FdbAdd {
                        bridge,
                        vlan: e.vlan,
                        mac: e.mac,
                        port: e.port.clone(),
                        remote: e.remote,
                        reply,
                    })
                    .await
                {
                    tracing::warn!(mac = %e.mac, "static entry not reinstalled: {err}");
                }
            }
        }
        Ok(Reply::done())
    }

    pub(super) async fn port_del(&mut self, bridge: String, port: String) -> Outcome {
        match self.config.port(&port) {
            Some((b, _)) if b.name == bridge => {}
            Some((b, _)) => {
                return Err(format!(
                    "port {port:?} is on bridge {:?}, not {bridge:?}",
                    b.name
                ))
            }
            None => return Err(format!("no port {port:?}")),
        }
        let mut next = self.config.clone();
        let b = next.bridge_mut(&bridge).expect("checked above");
        b.ports.retain(|p| p.name != port);
        b.static_fdb.retain(|e| e.port != port);
        if self.not_running.contains_key(&port) {
            next.save(&self.state_dir).map_err(|e| e.to_string())?;
            self.config = next;
            self.not_running.remove(&port);
            return Ok(Reply::done());
        }
        let closed = self
            .commit(next, |reply| Command::DelPort { name: port, reply })
            .await?;
        drop(closed);
        Ok(Reply::done())
    }

    /// The row `port list` shows for port `p` of bridge `bridge`.
    pub(super) fn port_info(&self, bridge: &str, p: &PortConfig) -> PortInfo {
        let spec = PortSpec::parse(&p.name, &p.options);
        PortInfo {
            bridge: bridge.to_string(),
            name: p.name.clone(),
            kind: spec
                .as_ref()
                .map(|s| s.kind.as_str().to_string())
                .unwrap_or_default(),
            vlan_mode: spec
                .as_ref()
                .map(|s| s.policy.vlan.to_string())
                .unwrap_or_default(),
            iface: spec.map(|s| s.iface).unwrap_or_default(),
            status: match self.not_running.get(&p.name) {
                Some(why) => format!("down: {why}"),
                None => "up".to_string(),
            },
            options: p.options.clone(),
        }
    }

    pub(super) fn port_list(&self, bridge: Option<String>) -> Outcome {
        if let Some(b) = &bridge {
            self.require_bridge(b)?;
        }
        let rows: Vec<PortInfo> = self
            .config
            .bridges
            .iter()
            .filter(|b| bridge.as_ref().is_none_or(|want| *want == b.name))
            .flat_map(|b| b.ports.iter().map(|p| self.port_info(&b.name, p)))
            .collect();
        Ok(Reply::ok(&rows))
    }

    pub(super) async fn port_show(&mut self, port: String) -> Outcome {
        let (b, p) = self
            .config
            .port(&port)
            .ok_or_else(|| format!("no port {port:?}"))?;
        let info = self.port_info(&b.name, p);
        let details = if self.not_running.contains_key(&port) {
            None
        } else {
            self.datapath
                .call(|reply| Command::PortDetails { name: port, reply })
                .await
                .map_err(|e| e.to_string())?
        };
        Ok(Reply::ok(&PortDetails { info, details }))
    }
}
