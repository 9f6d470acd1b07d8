//! Commands about a bridge that runs on every worker (`workers=all`) and
//! its ports: the commander picks the bridge and port indices every
//! replica uses, sends each worker its replica or its shard of a port,
//! fans changes out to every worker and merges what they report.
//!
//! What such a bridge cannot do is refused here with a reason: moving to
//! a worker, EVPN, captures, and serving as a tunnel's underlay.

use std::collections::HashMap;

use super::{Commander, Named};
use crate::control::protocol::{FdbEntryInfo, PortStatsReport};
use crate::datapath::{BridgeState, Command, DatapathError};
use crate::pipeline::admit::PortPolicy;
use crate::port::Port;

fn spread_error(what: &str) -> DatapathError {
    DatapathError::Spread(what.to_string())
}

impl Commander {
    /// Whether `cmd` names a bridge on every worker or one of its ports.
    pub(super) fn targets_spread(&self, cmd: &Command) -> bool {
        let p = self.placement();
        match super::named(cmd) {
            Some(Named::Bridge(bridge) | Named::Member { bridge, .. }) => {
                p.spread_slot(bridge).is_some()
            }
            Some(Named::Port(port)) => p.spread_port_slot(port).is_some(),
            None => false,
        }
    }

    /// Asks every worker, whatever each answers.
    async fn ask_each<T>(
        &self,
        make: impl Fn(crate::datapath::Reply<T>) -> Command,
    ) -> Vec<Result<T, DatapathError>> {
        let mut parts = Vec::with_capacity(self.workers());
        for w in 0..self.workers() {
            parts.push(self.ask(w, &make).await);
        }
        parts
    }

    /// Applies a command about a bridge on every worker (or one of its
    /// ports) on every worker, and answers it.
    pub(super) async fn fan_out(&self, cmd: Command) {
        match cmd {
            Command::SetBridge {
                bridge,
                aging_secs,
                worker,
                reply,
            } => {
                let r = if worker.is_some() {
                    Err(spread_error(
                        "a bridge on every worker (workers=all) cannot move to one worker",
                    ))
                } else {
                    all_ok(
                        self.ask_each(|reply| Command::SetBridge {
                            bridge: bridge.clone(),
                            aging_secs,
                            worker: None,
                            reply,
                        })
                        .await,
                    )
                };
                let _ = reply.send(r);
            }
            Command::DelBridge { name, reply } => {
                let _ = reply.send(self.del_spread_bridge(&name).await);
            }
            Command::DelPort { name, reply } => {
                let _ = reply.send(self.del_spread_port(&name).await);
            }
            Command::FdbAdd {
                bridge,
                vlan,
                mac,
                port,
                remote,
                reply,
            } => {
                let parts = self
                    .ask_each(|reply| Command::FdbAdd {
                        bridge: bridge.clone(),
                        vlan,
                        mac,
                        port: port.clone(),
                        remote,
                        reply,
                    })
                    .await;
                let _ = reply.send(all_ok(parts));
            }
            Command::FdbDel {
                bridge,
                vlan,
                mac,
                reply,
            } => {
                let parts = self
                    .ask_each(|reply| Command::FdbDel {
                        bridge: bridge.clone(),
                        vlan,
                        mac,
                        reply,
                    })
                    .await;
                // Gone from every replica; it was there if any had it.
                let r = match parts.iter().find(|r| r.is_ok()) {
                    Some(_) => Ok(()),
                    None => all_ok(parts),
                };
                let _ = reply.send(r);
            }
            Command::FdbFlush { bridge, reply } => {
                let parts = self
                    .ask_each(|reply| Command::FdbFlush {
                        bridge: bridge.clone(),
                        reply,
                    })
                    .await;
                let _ = reply.send(all_ok(parts));
            }
            Command::FdbDump { bridge, reply } => {
                let parts = self
                    .ask_each(|reply| Command::FdbDump {
                        bridge: bridge.clone(),
                        reply,
                    })
                    .await;
                let r = parts
                    .into_iter()
                    .collect::<Result<Vec<_>, _>>()
                    .map(merge_fdb_dumps);
                let _ = reply.send(r);
            }
            Command::SetPortPolicy {
                name,
                policy,
                reply,
            } => {
                let parts = self
                    .ask_each(|reply| Command::SetPortPolicy {
                        name: name.clone(),
                        policy: policy.clone(),
                        reply,
                    })
                    .await;
                let _ = reply.send(all_ok(parts));
            }
            Command::PortDetails { name, reply } => {
                let parts = self
                    .ask_each(|reply| Command::PortDetails {
                        name: name.clone(),
                        reply,
                    })
                    .await;
                let r = parts
                    .into_iter()
                    .collect::<Result<Vec<_>, _>>()
                    .map(|d| Some(serde_json::json!({ "workers": d.len(), "per_worker": d })));
                let _ = reply.send(r);
            }
            // Every replica has the same ports and settings; the first
            // answers for all.
            Command::Trace {
                bridge,
                in_port,
                frame,
                reply,
            } => {
                let r = self
                    .ask(0, |reply| Command::Trace {
                        bridge,
                        in_port,
                        frame,
                        reply,
                    })
                    .await;
                let _ = reply.send(r);
            }
            Command::CaptureStart { reply, .. } => {
                let _ = reply.send(Err(spread_error(
                    "capture does not follow a port of a bridge on every worker (workers=all): \
                     capture on its interface instead (tcpdump -i IFACE)",
                )));
            }
            Command::CaptureStop { reply, .. } => {
                let _ = reply.send(Ok(()));
            }
            Command::EvpnAttach { reply, .. } => {
                let _ = reply.send(Err(evpn_refused()));
            }
            Command::EvpnUpdate { reply, .. } => {
                let _ = reply.send(Err(evpn_refused()));
            }
            Command::EvpnLocalMacs { reply, .. } => {
                let _ = reply.send(Err(evpn_refused()));
            }
            other => super::refuse(other, DatapathError::Gone),
        }
    }

    /// Adds a replica of bridge `name` to every worker, at one index.
    pub(super) async fn add_spread_bridge(
        &self,
        name: String,
        aging_secs: u64,
        max_entries: usize,
    ) -> Result<(), DatapathError> {
        if self.placement().bridge_worker(&name).is_some() {
            return Err(DatapathError::BridgeExists(name));
        }
        let slot = self.shared.ids.claim_bridge();
        for w in 0..self.workers() {
            let r = self
                .ask(w, |reply| Command::AddBridgeReplica {
                    name: name.clone(),
                    aging_secs,
                    max_entries,
                    slot,
                    reply,
                })
                .await;
            if let Err(e) = r {
                for undo in 0..w {
                    let _ = self
                        .ask(undo, |reply| Command::DelBridge {
                            name: name.clone(),
                            reply,
                        })
                        .await;
                }
                self.shared.ids.release_bridge(slot);
                return Err(e);
            }
        }
        self.placement().add_spread_bridge(&name, slot);
        Ok(())
    }

    async fn del_spread_bridge(&self, name: &str) -> Result<(), DatapathError> {
        let (slot, ports) = {
            let p = self.placement();
            let slot = p
                .spread_slot(name)
                .ok_or_else(|| DatapathError::NoSuchBridge(name.to_string()))?;
            (slot, p.spread_port_slots(name))
        };
        let parts = self
            .ask_each(|reply| Command::DelBridge {
                name: name.to_string(),
                reply,
            })
            .await;
        all_ok(parts)?;
        for port in ports {
            self.shared.ids.release_port(port);
        }
        self.shared.ids.release_bridge(slot);
        self.placement().remove_bridge(name);
        Ok(())
    }

    /// Adds a port to a bridge on every worker: shard i to worker i, all
    /// at one port index.
    pub(super) async fn add_port_shards(
        &self,
        bridge: String,
        name: String,
        shards: Vec<Box<dyn Port>>,
        policy: PortPolicy,
    ) -> Result<(), DatapathError> {
        {
            let p = self.placement();
            if p.bridge_worker(&bridge).is_none() {
                return Err(DatapathError::NoSuchBridge(bridge));
            }
            if p.spread_slot(&bridge).is_none() {
                return Err(spread_error(&format!(
                    "bridge {bridge:?} runs on one worker: its ports take one backend"
                )));
            }
            if p.port_bridge(&name).is_some() {
                return Err(DatapathError::PortExists(name));
            }
            if p.is_underlay(&name) {
                return Err(underlay_refused(&name));
            }
        }
        if shards.len() != self.workers() {
            return Err(spread_error(&format!(
                "port {name:?} has {} shards for {} workers",
                shards.len(),
                self.workers()
            )));
        }
        let slot = self.shared.ids.claim_port();
        for (w, shard) in shards.into_iter().enumerate() {
            let r = self
                .ask(w, |reply| Command::AddPortReplica {
                    bridge: bridge.clone(),
                    name: name.clone(),
                    port: shard,
                    policy: policy.clone(),
                    slot,
                    reply,
                })
                .await;
            if let Err(e) = r {
                for undo in 0..w {
                    let _ = self
                        .ask(undo, |reply| Command::DelPort {
                            name: name.clone(),
                            reply,
                        })
                        .await;
                }
                self.shared.ids.release_port(slot);
                return Err(e);
            }
        }
        self.placement().add_spread_port(&name, &bridge, slot);
        Ok(())
    }

    async fn del_spread_port(&self, name: &str) -> Result<Vec<Box<dyn Port>>, DatapathError> {
        let slot = self
            .placement()
            .spread_port_slot(name)
            .ok_or_else(|| DatapathError::NoSuchPort(name.to_string()))?;
        let parts = self
            .ask_each(|reply| Command::DelPort {
                name: name.to_string(),
                reply,
            })
            .await;
        let mut closed = Vec::new();
        let mut first_err = None;
        for part in parts {
            match part {
                Ok(ports) => closed.extend(ports),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        self.shared.ids.release_port(slot);
        self.placement().remove_port(name);
        Ok(closed)
    }
}

pub(super) fn underlay_refused(port: &str) -> DatapathError {
    spread_error(&format!(
        "port {port:?}: a tunnel's underlay must be a port of a bridge on one worker, \
         not on every worker (workers=all)"
    ))
}

fn evpn_refused() -> DatapathError {
    spread_error("EVPN needs a bridge on one worker, not on every worker (workers=all)")
}

/// Ok when every worker said Ok; the first error otherwise.
fn all_ok<T>(parts: Vec<Result<T, DatapathError>>) -> Result<(), DatapathError> {
    for part in parts {
        part?;
    }
    Ok(())
}

/// The replicas' tables as one: each MAC once, as last seen.
fn merge_fdb_dumps(parts: Vec<Vec<FdbEntryInfo>>) -> Vec<FdbEntryInfo> {
    let mut best: HashMap<(u16, crate::wire::MacAddr), FdbEntryInfo> = HashMap::new();
    for e in parts.into_iter().flatten() {
        match best.get(&(e.vlan, e.mac)) {
            Some(have) if have.age_secs <= e.age_secs => {}
            _ => {
                best.insert((e.vlan, e.mac), e);
            }
        }
    }
    let mut all: Vec<FdbEntryInfo> = best.into_values().collect();
    all.sort_by_key(|e| (e.vlan, e.mac.to_u64()));
    all
}

/// Every worker's bridges as one list: a bridge on every worker once, its
/// table counters summed over the replicas (entries and aged-out MACs are
/// the largest replica's, since every replica holds and ages them).
pub(super) fn merge_bridge_states(parts: Vec<Vec<BridgeState>>) -> Vec<BridgeState> {
    let mut all: Vec<BridgeState> = Vec::new();
    for (w, states) in parts.into_iter().enumerate() {
        for mut s in states {
            s.worker = w;
            let seen = s
                .spread
                .then(|| all.iter_mut().find(|b| b.spread && b.name == s.name))
                .flatten();
            match seen {
                Some(b) => {
                    b.fdb_entries = b.fdb_entries.max(s.fdb_entries);
                    let (c, n) = (&mut b.fdb_counters, &s.fdb_counters);
                    c.learned += n.learned;
                    c.moves += n.moves;
                    c.learn_refused += n.learn_refused;
                    c.static_conflicts += n.static_conflicts;
                    c.aged_out = c.aged_out.max(n.aged_out);
                    b.macs_unshared += s.macs_unshared;
                }
                None => all.push(s),
            }
        }
    }
    all
}

/// Every worker's port counters as one list: the shards of a port on
/// every worker summed into one row.
pub(super) fn merge_port_stats(parts: Vec<Vec<PortStatsReport>>) -> Vec<PortStatsReport> {
    let mut all: Vec<PortStatsReport> = Vec::new();
    for row in parts.into_iter().flatten() {
        match all
            .iter_mut()
            .find(|r| r.port == row.port && r.bridge == row.bridge)
        {
            Some(r) => {
                r.rx_packets += row.rx_packets;
                r.rx_bytes += row.rx_bytes;
                r.tx_packets += row.tx_packets;
                r.tx_bytes += row.tx_bytes;
                for (reason, n) in row.drops {
                    *r.drops.entry(reason).or_insert(0) += n;
                }
            }
            None => all.push(row),
        }
    }
    all
}
