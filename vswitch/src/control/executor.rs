//! Runs control requests: validate, persist, then change the datapath.
//!
//! The executor owns the desired configuration. Every change is checked in
//! full first (names, options, existence, interfaces opened), then saved
//! atomically, then sent to the datapath; if the datapath refuses, the old
//! file is written back. So an error leaves both the running switch and the
//! file as they were.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::config::{validate_name, BridgeConfig, BridgeSpec, Config, PortSpec, StaticFdbEntry};
use crate::control::protocol::{
    BridgeInfo, Options, Reply, Request, VersionInfo, PROTOCOL_VERSION,
};
use crate::datapath::{Command, DatapathHandle, Reply as DpReply};
use crate::wire::MacAddr;

type Outcome = Result<Reply, String>;

mod apply;
mod evpn;
mod ports;
mod trace;

pub struct Executor {
    config: Config,
    state_dir: PathBuf,
    datapath: DatapathHandle,
    /// Ports in the configuration that the datapath does not run, with why.
    not_running: HashMap<String, String>,
    /// Where configuration changes are announced to monitors.
    events: Option<std::sync::Arc<crate::events::Hub>>,
    /// Bridges' EVPN sessions (`evpn.rs`).
    evpn: crate::evpn::EvpnManager,
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
                worker: spec.worker,
                spread: spec.spread,
                reply,
            }) {
                tracing::error!(bridge = %b.name, "restoring bridge: {e}");
                continue;
            }
            for p in &b.ports {
                let port_spec = PortSpec::parse(&p.name, &p.options).expect("validated at load");
                let result = ports::open_port(&p.name, &port_spec, spec.spread, datapath.workers())
                    .map_err(|e| e.to_string())
                    .and_then(|opened| {
                        datapath
                            .call_blocking(|reply| {
                                opened.command(&b.name, &p.name, port_spec.policy.clone(), reply)
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
        let events = datapath
            .call_blocking(|reply| Command::EventHub { reply })
            .map_err(|e| tracing::warn!("no events for monitors: {e}"))
            .ok();
        Executor {
            config,
            state_dir,
            datapath,
            not_running,
            events,
            evpn: crate::evpn::EvpnManager::default(),
        }
    }

    pub fn datapath_mut(&mut self) -> &mut DatapathHandle {
        &mut self.datapath
    }

    /// The hub monitors subscribe to.
    pub fn events(&self) -> Option<std::sync::Arc<crate::events::Hub>> {
        self.events.clone()
    }

    pub async fn handle(&mut self, request: Request) -> Reply {
        let change = self
            .events
            .as_ref()
            .and_then(|_| crate::events::config_change(&request));
        let reply = self.run(request).await;
        if let (Some(hub), Some(change), Reply::Ok(_)) = (&self.events, change, &reply) {
            hub.publish(change);
        }
        reply
    }

    async fn run(&mut self, request: Request) -> Reply {
        let outcome = match request {
            Request::Version => Ok(Reply::ok(&VersionInfo {
                daemon: env!("CARGO_PKG_VERSION").to_string(),
                protocol: PROTOCOL_VERSION,
            })),
            Request::BridgeAdd { bridge, options } => self.bridge_add(bridge, options).await,
            Request::BridgeSet { bridge, options } => self.bridge_set(bridge, options).await,
            Request::BridgeDel { bridge } => self.bridge_del(bridge).await,
            Request::EvpnSet { bridge, options } => self.evpn_set(bridge, options).await,
            Request::EvpnShow { bridge } => self.evpn_show(bridge),
            Request::EvpnDel { bridge } => self.evpn_del(bridge).await,
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
            Request::Trace {
                bridge,
                in_port,
                vlan,
                src,
                dst,
                ethertype,
                hex,
            } => {
                let fields =
                    vlan.is_some() || ethertype.is_some() || src.is_some() || dst.is_some();
                let frame = match hex {
                    Some(_) if fields => Err(
                        "hex=FRAME cannot be combined with src, dst, vlan or ethertype".to_string(),
                    ),
                    Some(hex) => trace::frame_from_hex(&hex),
                    None => trace::frame_from_fields(vlan, src, dst, ethertype),
                };
                match frame {
                    Err(e) => Err(e),
                    Ok(frame) => self
                        .datapath
                        .call(|reply| Command::Trace {
                            bridge,
                            in_port,
                            frame,
                            reply,
                        })
                        .await
                        .map(|r| Reply::ok(&r))
                        .map_err(|e| e.to_string()),
                }
            }
            Request::Apply { config, dry_run } => self.apply(config, dry_run).await,
            Request::Export => self.export(),
            Request::IfaceList => self.iface_list().await,
            Request::Metrics => self.metrics_text().await.map(|text| Reply::ok(&text)),
            Request::Capture { .. } | Request::Monitor => {
                Err("capture and monitor stream on their own connection".into())
            }
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
        self.check_worker(spec.worker)?;
        let mut next = self.config.clone();
        next.bridges.push(BridgeConfig {
            name: bridge.clone(),
            options,
            ports: Vec::new(),
            static_fdb: Vec::new(),
            evpn: None,
        });
        self.commit(next, |reply| Command::AddBridge {
            name: bridge,
            aging_secs: spec.aging_secs,
            max_entries: spec.mac_table_size,
            worker: spec.worker,
            spread: spec.spread,
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
        if spec.spread != old_spec.spread {
            return Err(
                "worker=all can only be set when the bridge is created (bridge add), and not undone"
                    .into(),
            );
        }
        if spec.mac_table_size != old_spec.mac_table_size {
            return Err(
                "mac_table_size can only be set when the bridge is created (bridge add)".into(),
            );
        }
        self.check_worker(spec.worker)?;
        let mut next = self.config.clone();
        next.bridge_mut(&bridge).expect("checked above").options = merged;
        self.commit(next, |reply| Command::SetBridge {
            bridge,
            aging_secs: spec.aging_secs,
            worker: spec.worker,
            reply,
        })
        .await?;
        Ok(Reply::done())
    }

    /// A bridge's `worker=` must name one of the running workers.
    fn check_worker(&self, worker: Option<usize>) -> Result<(), String> {
        let workers = self.datapath.workers();
        match worker {
            Some(worker) if worker >= workers => {
                Err(crate::datapath::DatapathError::NoSuchWorker { worker, workers }.to_string())
            }
            _ => Ok(()),
        }
    }

    async fn bridge_del(&mut self, bridge: String) -> Outcome {
        let ports: Vec<String> = self
            .require_bridge(&bridge)?
            .ports
            .iter()
            .map(|p| p.name.clone())
            .collect();
        self.evpn.stop(&bridge).await;
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
                    worker: None,
                    spread: false,
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
                    worker: state.map(|s| s.worker),
                    all_workers: state.is_some_and(|s| s.spread),
                    macs_unshared: state.map_or(0, |s| s.macs_unshared),
                }
            })
            .collect();
        Ok(Reply::ok(&rows))
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

    /// Every metric as Prometheus text (`vsctl metrics`, `GET /metrics`):
    /// the running ports' counters and the state of the bonds and VTEPs
    /// among them, from the same replies as `stats` and `port show`.
    pub async fn metrics_text(&self) -> Result<String, String> {
        let ports: Vec<(String, String)> = (self.config.bridges.iter())
            .flat_map(|b| &b.ports)
            .filter(|p| !self.not_running.contains_key(&p.name))
            .map(|p| {
                (
                    p.name.clone(),
                    p.options.get("type").cloned().unwrap_or_default(),
                )
            })
            .collect();
        let mut snap = crate::metrics::gather(&self.datapath, &ports)
            .await
            .map_err(|e| e.to_string())?;
        snap.evpn = self.evpn.reports();
        crate::metrics::encode(&snap).map_err(|e| format!("encoding metrics: {e}"))
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
