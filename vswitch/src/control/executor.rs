//! Runs control requests: validate, persist, then change the datapath.
//!
//! The executor owns the desired configuration. Every change is checked in
//! full first (names, options, existence, interfaces opened), then saved
//! atomically, then sent to the datapath; if the datapath refuses, the old
//! file is written back. So an error leaves both the running switch and the
//! file as they were.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::config::{
    validate_name, BridgeConfig, BridgeSpec, Config, PortConfig, PortSpec, StaticFdbEntry,
};
use crate::control::protocol::{
    BridgeInfo, Options, PortDetails, PortInfo, Reply, Request, VersionInfo, PROTOCOL_VERSION,
};
use crate::datapath::{Command, DatapathHandle, Reply as DpReply};
use crate::port;
use crate::wire::MacAddr;

type Outcome = Result<Reply, String>;

pub struct Executor {
    config: Config,
    state_dir: PathBuf,
    datapath: DatapathHandle,
    /// Ports in the configuration that the datapath does not run, with why.
    not_running: HashMap<String, String>,
}

impl Executor {
    /// Builds the running switch from a loaded configuration. A port whose
    /// interface cannot be opened stays configured (and listed with the
    /// reason) instead of failing the whole start.
    pub fn restore(config: Config, state_dir: PathBuf, datapath: DatapathHandle) -> Executor {
        let mut not_running = HashMap::new();
        for b in &config.bridges {
            let spec = BridgeSpec::parse(&b.options).expect("validated at load");
            if let Err(e) = datapath.call_blocking(|reply| Command::AddBridge {
                name: b.name.clone(),
                aging_secs: spec.aging_secs,
                max_entries: spec.mac_table_size,
                reply,
            }) {
                tracing::error!(bridge = %b.name, "restoring bridge: {e}");
                continue;
            }
            for p in &b.ports {
                let spec = PortSpec::parse(&p.name, &p.options).expect("validated at load");
                let result = port::open(&p.name, &spec)
                    .map_err(|e| e.to_string())
                    .and_then(|opened| {
                        datapath
                            .call_blocking(|reply| Command::AddPort {
                                bridge: b.name.clone(),
                                name: p.name.clone(),
                                port: opened,
                                policy: spec.policy.clone(),
                                reply,
                            })
                            .map_err(|e| e.to_string())
                    });
                if let Err(e) = result {
                    tracing::warn!(port = %p.name, "port not restored: {e}");
                    not_running.insert(p.name.clone(), e);
                }
            }
            for e in &b.static_fdb {
                if not_running.contains_key(&e.port) {
                    continue;
                }
                if let Err(err) = datapath.call_blocking(|reply| Command::FdbAdd {
                    bridge: b.name.clone(),
                    vlan: e.vlan,
                    mac: e.mac,
                    port: e.port.clone(),
                    remote: e.remote,
                    reply,
                }) {
                    tracing::warn!(mac = %e.mac, "static entry not restored: {err}");
                }
            }
        }
        tracing::info!(
            bridges = config.bridges.len(),
            not_running = not_running.len(),
            "configuration restored"
        );
        Executor {
            config,
            state_dir,
            datapath,
            not_running,
        }
    }

    pub fn datapath_mut(&mut self) -> &mut DatapathHandle {
        &mut self.datapath
    }

    pub async fn handle(&mut self, request: Request) -> Reply {
        let outcome = match request {
            Request::Version => Ok(Reply::ok(&VersionInfo {
                daemon: env!("CARGO_PKG_VERSION").to_string(),
                protocol: PROTOCOL_VERSION,
            })),
            Request::BridgeAdd { bridge, options } => self.bridge_add(bridge, options).await,
            Request::BridgeSet { bridge, options } => self.bridge_set(bridge, options).await,
            Request::BridgeDel { bridge } => self.bridge_del(bridge).await,
            Request::BridgeList => self.bridge_list().await,
            Request::PortAdd {
                bridge,
                port,
                options,
            } => self.port_add(bridge, port, options).await,
            Request::PortDel { bridge, port } => self.port_del(bridge, port).await,
            Request::PortList { bridge } => self.port_list(bridge),
            Request::PortShow { port } => self.port_show(port).await,
            Request::PortSet { port, options } => self.port_set(port, options).await,
            Request::FdbShow { bridge, vlan } => self
                .datapath
                .call(|reply| Command::FdbDump { bridge, reply })
                .await
                .map(|mut rows| {
                    if let Some(v) = vlan {
                        rows.retain(|r| r.vlan == v);
                    }
                    Reply::ok(&rows)
                })
                .map_err(|e| e.to_string()),
            Request::FdbAdd {
                bridge,
                mac,
                port,
                vlan,
                remote,
            } => self.fdb_add(bridge, mac, port, vlan, remote).await,
            Request::FdbDel { bridge, mac, vlan } => self.fdb_del(bridge, mac, vlan).await,
            Request::FdbFlush { bridge } => self
                .datapath
                .call(|reply| Command::FdbFlush { bridge, reply })
                .await
                .map(|()| Reply::done())
                .map_err(|e| e.to_string()),
            Request::Stats { port } => self.stats(port).await,
        };
        outcome.unwrap_or_else(Reply::Error)
    }

    /// Saves `next`, then runs the datapath command; on refusal restores
    /// the previous file. `self.config` becomes `next` only on success.
    async fn commit<T>(
        &mut self,
        next: Config,
        make: impl FnOnce(DpReply<T>) -> Command,
    ) -> Result<T, String> {
        next.save(&self.state_dir).map_err(|e| e.to_string())?;
        match self.datapath.call(make).await {
            Ok(v) => {
                self.config = next;
                Ok(v)
            }
            Err(e) => {
                if let Err(save) = self.config.save(&self.state_dir) {
                    tracing::error!("restoring the previous configuration file: {save}");
                }
                Err(e.to_string())
            }
        }
    }

    fn require_bridge(&self, bridge: &str) -> Result<&BridgeConfig, String> {
        self.config
            .bridge(bridge)
            .ok_or_else(|| format!("no bridge {bridge:?}"))
    }

    async fn bridge_add(&mut self, bridge: String, options: Options) -> Outcome {
        validate_name("bridge", &bridge)?;
        if self.config.bridge(&bridge).is_some() {
            return Err(format!("bridge {bridge:?} exists already"));
        }
        let spec = BridgeSpec::parse(&options)?;
        let mut next = self.config.clone();
        next.bridges.push(BridgeConfig {
            name: bridge.clone(),
            options,
            ports: Vec::new(),
            static_fdb: Vec::new(),
        });
        self.commit(next, |reply| Command::AddBridge {
            name: bridge,
            aging_secs: spec.aging_secs,
            max_entries: spec.mac_table_size,
            reply,
        })
        .await?;
        Ok(Reply::done())
    }

    async fn bridge_set(&mut self, bridge: String, options: Options) -> Outcome {
        let current = self.require_bridge(&bridge)?;
        if options.is_empty() {
            return Err("nothing to set: give KEY=VALUE options".into());
        }
        let old_spec = BridgeSpec::parse(&current.options).map_err(|e| e.to_string())?;
        let mut merged = current.options.clone();
        merged.extend(options);
        merged.retain(|_, v| !v.is_empty());
        let spec = BridgeSpec::parse(&merged)?;
        for p in &current.ports {
            let port = PortSpec::parse(&p.name, &p.options).map_err(|e| e.to_string())?;
            spec.admits(&p.name, &port)?;
        }
        if spec.mac_table_size != old_spec.mac_table_size {
            return Err(
                "mac_table_size can only be set when the bridge is created (bridge add)".into(),
            );
        }
        let mut next = self.config.clone();
        next.bridge_mut(&bridge).expect("checked above").options = merged;
        self.commit(next, |reply| Command::SetAging {
            bridge,
            secs: spec.aging_secs,
            reply,
        })
        .await?;
        Ok(Reply::done())
    }

    async fn bridge_del(&mut self, bridge: String) -> Outcome {
        let ports: Vec<String> = self
            .require_bridge(&bridge)?
            .ports
            .iter()
            .map(|p| p.name.clone())
            .collect();
        let mut next = self.config.clone();
        next.bridges.retain(|b| b.name != bridge);
        self.commit(next, |reply| Command::DelBridge {
            name: bridge,
            reply,
        })
        .await?;
        for p in ports {
            self.not_running.remove(&p);
        }
        Ok(Reply::done())
    }

    async fn bridge_list(&mut self) -> Outcome {
        let states = self
            .datapath
            .call(|reply| Command::Bridges { reply })
            .await
            .map_err(|e| e.to_string())?;
        let rows: Vec<BridgeInfo> = self
            .config
            .bridges
            .iter()
            .map(|b| {
                let spec = BridgeSpec::parse(&b.options).unwrap_or(BridgeSpec {
                    aging_secs: 0,
                    mac_table_size: 0,
                    guest_vlans: None,
                });
                let state = states.iter().find(|s| s.name == b.name);
                BridgeInfo {
                    name: b.name.clone(),
                    aging_secs: spec.aging_secs,
                    mac_table_size: spec.mac_table_size,
                    ports: b.ports.iter().map(|p| p.name.clone()).collect(),
                    fdb_entries: state.map_or(0, |s| s.fdb_entries),
                    fdb_moves: state.map_or(0, |s| s.fdb_counters.moves),
                    learn_refused: state.map_or(0, |s| s.fdb_counters.learn_refused),
                    guest_vlans: spec.guest_vlans.map(|g| g.to_string()),
                }
            })
            .collect();
        Ok(Reply::ok(&rows))
    }

    async fn port_add(&mut self, bridge: String, port: String, options: Options) -> Outcome {
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
        let opened = port::open(&port, &spec).map_err(|e| e.to_string())?;
        let mut next = self.config.clone();
        next.bridge_mut(&bridge)
            .expect("checked above")
            .ports
            .push(PortConfig {
                name: port.clone(),
                options,
            });
        self.commit(next, |reply| Command::AddPort {
            bridge,
            name: port,
            port: opened,
            policy: spec.policy,
            reply,
        })
        .await?;
        Ok(Reply::done())
    }

    /// A VTEP needs an existing, non-tunnel underlay port, and one address
    /// serves one VTEP per underlay (two would both answer its ARP).
    fn check_vtep(&self, port: &str, vx: &crate::port::vxlan::VxlanConfig) -> Result<(), String> {
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

    async fn port_set(&mut self, port: String, changes: Options) -> Outcome {
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

    async fn port_del(&mut self, bridge: String, port: String) -> Outcome {
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
    fn port_info(&self, bridge: &str, p: &PortConfig) -> PortInfo {
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

    fn port_list(&self, bridge: Option<String>) -> Outcome {
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

    async fn port_show(&mut self, port: String) -> Outcome {
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

    async fn fdb_add(
        &mut self,
        bridge: String,
        mac: MacAddr,
        port: String,
        vlan: u16,
        remote: Option<std::net::Ipv4Addr>,
    ) -> Outcome {
        let b = self.require_bridge(&bridge)?;
        if vlan > 4095 {
            return Err(format!("vlan={vlan} out of range: 0 to 4095"));
        }
        if !mac.is_learnable() {
            return Err(format!(
                "{mac} is a group or zero address: only unicast MACs can be table entries"
            ));
        }
        if !b.ports.iter().any(|p| p.name == port) {
            return Err(match self.config.port(&port) {
                Some((other, _)) => {
                    format!(
                        "port {port:?} is on bridge {:?}, not {bridge:?}",
                        other.name
                    )
                }
                None => format!("no port {port:?}"),
            });
        }
        if let Some(why) = self.not_running.get(&port) {
            return Err(format!("port {port:?} is not running: {why}"));
        }
        let (_, pc) = self.config.port(&port).expect("checked above");
        let port_spec = PortSpec::parse(&port, &pc.options).map_err(|e| e.to_string())?;
        match (&port_spec.vxlan, remote) {
            (None, Some(_)) => {
                return Err(format!(
                    "remote= applies to vxlan ports; {port:?} is not one"
                ))
            }
            (Some(vx), Some(r)) if !vx.remotes.contains(&r) => {
                return Err(format!("{r} is not a remote of {port:?}"))
            }
            _ => {}
        }
        let carried = port_spec.policy.vlan;
        if !carried.networks().contains(vlan) {
            return Err(format!(
                "port {port:?} does not carry VLAN {vlan} ({carried})"
            ));
        }
        let mut next = self.config.clone();
        let nb = next.bridge_mut(&bridge).expect("checked above");
        nb.static_fdb.retain(|e| !(e.vlan == vlan && e.mac == mac));
        nb.static_fdb.push(StaticFdbEntry {
            vlan,
            mac,
            port: port.clone(),
            remote,
        });
        self.commit(next, |reply| Command::FdbAdd {
            bridge,
            vlan,
            mac,
            port,
            remote,
            reply,
        })
        .await?;
        Ok(Reply::done())
    }

    async fn fdb_del(&mut self, bridge: String, mac: MacAddr, vlan: u16) -> Outcome {
        let b = self.require_bridge(&bridge)?;
        let is_static = b.static_fdb.iter().any(|e| e.vlan == vlan && e.mac == mac);
        if !is_static {
            // A learned entry: nothing persisted to change.
            self.datapath
                .call(|reply| Command::FdbDel {
                    bridge,
                    vlan,
                    mac,
                    reply,
                })
                .await
                .map_err(|e| e.to_string())?;
            return Ok(Reply::done());
        }
        let mut next = self.config.clone();
        next.bridge_mut(&bridge)
            .expect("checked above")
            .static_fdb
            .retain(|e| !(e.vlan == vlan && e.mac == mac));
        self.commit(next, |reply| Command::FdbDel {
            bridge,
            vlan,
            mac,
            reply,
        })
        .await?;
        Ok(Reply::done())
    }

    async fn stats(&mut self, port: Option<String>) -> Outcome {
        if let Some(p) = &port {
            if self.config.port(p).is_none() {
                return Err(format!("no port {p:?}"));
            }
            if let Some(why) = self.not_running.get(p) {
                return Err(format!("port {p:?} is not running: {why}"));
            }
        }
        let mut rows = self
            .datapath
            .call(|reply| Command::Stats { reply })
            .await
            .map_err(|e| e.to_string())?;
        if let Some(p) = port {
            rows.retain(|r| r.port == p);
        }
        Ok(Reply::ok(&rows))
    }
}
