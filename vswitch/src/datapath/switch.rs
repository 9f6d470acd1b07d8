//! The datapath's state: bridges and ports, and how commands change them.

use std::time::Duration;

use mio::Registry;

use super::command::{BridgeState, Command, DatapathError};
use super::slots::SlotIds;
use crate::control::protocol::PortStatsReport;
use crate::fdb::{Fdb, PortId};
use crate::metrics::{DatapathMetrics, LoopCounters};
use crate::packet::Batch;
use crate::pipeline::counters::PortCounters;
use crate::pipeline::{announce, process_batch, Bridge, PortSlot};

mod evpn;
mod handover;
mod members;
mod replicas;
pub use replicas::ReplicaLinks;
mod observe;
pub use handover::BridgeBundle;
mod tunnels;
use crate::port::PortEvent;

/// Every bridge and port the datapath runs. Slots of deleted bridges and
/// ports are `None` and reused by later additions.
#[derive(Default)]
pub struct Switch {
    bridges: Vec<Option<Bridge>>,
    ports: Vec<Option<PortSlot>>,
    /// The second of the last aging sweep.
    last_aging: u64,
    /// (underlay, tunnel) pairs: tunnel ports whose underlay port exists.
    tunnels: Vec<(PortId, PortId)>,
    /// Scratch space to move a tunnel's outbound frames to its underlay.
    scratch: Option<Batch>,
    /// The poll loop's figures (`Worker` counts iterations and sleeps).
    pub loop_counters: LoopCounters,
    /// Events for monitors, once the control side asked (`observe.rs`).
    events: Option<Box<observe::DatapathEvents>>,
    /// The bridge and port indices taken, shared with the other workers.
    ids: SlotIds,
    /// News channels to the other workers' replicas of bridges on every
    /// worker (`replicas.rs`).
    replica_links: Option<ReplicaLinks>,
}

impl Switch {
    pub fn new() -> Switch {
        Switch::default()
    }

    /// A switch drawing its bridge and port indices from `ids`, which the
    /// other workers of the datapath share.
    pub fn with_ids(ids: SlotIds) -> Switch {
        Switch {
            ids,
            ..Switch::default()
        }
    }

    /// Receives one burst from every port and forwards it. Returns the
    /// number of frames received.
    pub fn poll_once(&mut self, batch: &mut Batch, now: Duration) -> usize {
        self.apply_replica_news();
        let mut total = 0;
        for id in 0..self.ports.len() {
            let Some(slot) = self.ports[id].as_mut() else {
                continue;
            };
            batch.clear();
            let n = slot.port.rx_burst(batch, &mut slot.counters);
            if n == 0 {
                continue;
            }
            self.loop_counters.count_burst(n);
            if let Some(tap) = slot.capture.as_deref_mut() {
                tap.rx(batch);
            }
            total += n;
            let bridge_idx = slot.bridge;
            if self.tunnels.iter().any(|(u, _)| *u as usize == id) {
                self.offer_to_tunnels(id as PortId, batch, now);
            }
            self.process(id, bridge_idx, batch, now);
            self.handle_events(id, batch);
        }
        for slot in self.ports.iter_mut().flatten() {
            slot.port.flush(&mut slot.counters);
        }
        if total > 0 {
            self.send_replica_news();
        }
        total
    }

    /// Readies every port for the loop to block (`Port::prepare_to_block`);
    /// true when one has frames without a readable descriptor (a null
    /// source, a guest that queued frames meanwhile): no blocking then.
    pub fn prepare_to_block(&mut self) -> bool {
        let mut ready = false;
        for slot in self.ports.iter_mut().flatten() {
            ready |= slot.port.prepare_to_block();
        }
        ready
    }

    /// Runs a received batch through its bridge, then sends what tunnels
    /// queued meanwhile.
    fn process(&mut self, id: usize, bridge_idx: usize, batch: &mut Batch, now: Duration) {
        if batch.is_empty() {
            return;
        }
        if let Some(Some(bridge)) = self.bridges.get_mut(bridge_idx) {
            process_batch(batch, id as PortId, bridge, &mut self.ports, now);
        }
        self.emit_moves(bridge_idx);
        self.flush_tunnels();
    }

    /// Every `TICK`: the ports' timers and the events they raise; when the
    /// second changes, table aging. `batch` is scratch space.
    pub fn tick(&mut self, now: Duration, batch: &mut Batch) {
        for id in 0..self.ports.len() {
            if let Some(slot) = self.ports[id].as_mut() {
                slot.port.tick(now, &mut slot.counters);
                self.handle_events(id, batch);
            }
        }
        self.flush_tunnels();
        for slot in self.ports.iter_mut().flatten() {
            slot.port.flush(&mut slot.counters);
        }
        self.observe_tick(now);
        let secs = now.as_secs();
        if secs != self.last_aging {
            self.last_aging = secs;
            self.housekeeping(secs);
        }
    }

    /// Ages the tables.
    pub fn housekeeping(&mut self, now: u64) {
        for bridge in self.bridges.iter_mut().flatten() {
            bridge.fdb.age(now);
        }
    }

    fn handle_events(&mut self, id: usize, batch: &mut Batch) {
        loop {
            let Some(slot) = self.ports[id].as_mut() else {
                return;
            };
            if let Some(status) = slot.port.take_status() {
                let port = crate::events::Name::new(&slot.name);
                let bridge = slot.bridge;
                if self.reports_port_changes(bridge) {
                    self.report(crate::events::DpEventKind::Port { port, status });
                }
                continue;
            }
            match slot.port.take_event() {
                None => return,
                Some(PortEvent::AnnounceMacs) => self.announce_macs(id, batch),
                Some(PortEvent::OffloadsChanged) => slot.caps = slot.port.offload_caps(),
            }
        }
    }

    /// Sends a RARP announcement through port `id` for every MAC its bridge
    /// knows behind its other ports.
    fn announce_macs(&mut self, id: usize, batch: &mut Batch) {
        let Some(slot) = self.ports[id].as_mut() else {
            return;
        };
        let Some(Some(bridge)) = self.bridges.get(slot.bridge) else {
            return;
        };
        let mut entries = bridge
            .fdb
            .iter()
            .filter(|(_, _, e)| e.port != id as PortId)
            .peekable();
        while entries.peek().is_some() {
            batch.clear();
            for (vlan, mac, _) in entries.by_ref() {
                let Some(buf) = batch.slot() else { break };
                let len = announce::rarp(mac, vlan, buf.rx_area());
                buf.set_len(len);
                batch.commit();
                if batch.is_full() {
                    break;
                }
            }
            let mut frames: [&[u8]; crate::packet::BATCH_SIZE] = [&[]; crate::packet::BATCH_SIZE];
            for (i, buf) in batch.iter().enumerate() {
                frames[i] = buf.frame();
            }
            slot.port
                .tx_burst(&frames[..batch.len()], &mut slot.counters);
            if let Some(tap) = slot.capture.as_deref_mut() {
                tap.tx(&frames[..batch.len()]);
            }
        }
        slot.port.flush(&mut slot.counters);
        batch.clear();
    }

    fn bridge_index(&self, name: &str) -> Result<usize, DatapathError> {
        self.bridges
            .iter()
            .position(|b| b.as_ref().is_some_and(|b| b.name == name))
            .ok_or_else(|| DatapathError::NoSuchBridge(name.to_string()))
    }

    fn port_index(&self, name: &str) -> Result<usize, DatapathError> {
        self.ports
            .iter()
            .position(|p| p.as_ref().is_some_and(|p| p.name == name))
            .ok_or_else(|| DatapathError::NoSuchPort(name.to_string()))
    }

    /// Counters of the port named `name`.
    pub fn port_counters(&self, name: &str) -> Option<PortCounters> {
        let id = self.port_index(name).ok()?;
        self.ports[id].as_ref().map(|p| p.counters)
    }

    /// The forwarding table of the bridge named `name`, for tests and fuzz
    /// targets that compare it with a model.
    pub fn fdb(&self, name: &str) -> Option<&Fdb> {
        let i = self.bridge_index(name).ok()?;
        self.bridges[i].as_ref().map(|b| &b.fdb)
    }

    fn bridge_mut(&mut self, name: &str) -> Result<&mut Bridge, DatapathError> {
        let i = self.bridge_index(name)?;
        Ok(self.bridges[i].as_mut().expect("index from bridge_index"))
    }

    /// The port `port`, checked to be a member of bridge `bridge_idx`.
    fn member_port(&self, bridge_idx: usize, port: &str) -> Result<PortId, DatapathError> {
        let id = self.port_index(port)?;
        let slot = self.ports[id].as_ref().expect("index from port_index");
        if slot.bridge != bridge_idx {
            let bridge = self.bridges[bridge_idx]
                .as_ref()
                .map(|b| b.name.clone())
                .unwrap_or_default();
            return Err(DatapathError::PortNotOnBridge {
                port: port.to_string(),
                bridge,
            });
        }
        Ok(id as PortId)
    }

    fn port_name(&self, id: PortId) -> String {
        self.ports
            .get(id as usize)
            .and_then(|p| p.as_ref())
            .map(|p| p.name.clone())
            .unwrap_or_else(|| format!("#{id}"))
    }

    /// Applies one command and sends its reply. Never panics on bad input:
    /// every refusal is a `DatapathError` in the reply.
    pub fn apply(&mut self, cmd: Command, registry: &Registry, now: Duration) {
        // News sent before a change the commander ordered must meet the
        // state it was sent from: a port deleted and its index reused.
        self.apply_replica_news();
        let secs = now.as_secs();
        // A dropped reply receiver means the client went away; the change
        // stands either way, so send errors are ignored throughout.
        match cmd {
            Command::AddBridge {
                name,
                aging_secs,
                max_entries,
                reply,
                ..
            } => {
                let _ = reply.send(self.add_bridge(name, aging_secs, max_entries));
            }
            Command::AddBridgeReplica {
                name,
                aging_secs,
                max_entries,
                slot,
                reply,
            } => {
                let r = self.add_bridge_at(name, aging_secs, max_entries, Some(slot));
                let _ = reply.send(r);
            }
            Command::SetBridge {
                bridge,
                aging_secs,
                reply,
                ..
            } => {
                let r = self
                    .bridge_mut(&bridge)
                    .map(|b| b.fdb.set_aging_secs(aging_secs));
                let _ = reply.send(r);
            }
            Command::DelBridge { name, reply } => {
                let r = self.del_bridge(&name, registry);
                let _ = reply.send(r);
            }
            Command::AddPort {
                bridge,
                name,
                port,
                policy,
                reply,
            } => {
                let r = self.add_port_with_policy(&bridge, name, port, policy, Some(registry));
                let _ = reply.send(r);
            }
            Command::AddPortReplica {
                bridge,
                name,
                port,
                policy,
                slot,
                reply,
            } => {
                let r = self.add_port_at(&bridge, name, port, policy, Some(registry), Some(slot));
                let _ = reply.send(r);
            }
            // The commander splits it into `AddPortReplica`s.
            Command::AddPortShards { reply, .. } => {
                let _ = reply.send(Err(DatapathError::Gone));
            }
            Command::SetPortPolicy {
                name,
                policy,
                reply,
            } => {
                let _ = reply.send(self.set_port_policy(&name, policy, now));
            }
            Command::DelPort { name, reply } => {
                let _ = reply.send(self.del_port(&name, registry).map(|p| vec![p]));
            }
            Command::FdbAdd {
                bridge,
                vlan,
                mac,
                port,
                remote,
                reply,
            } => {
                let r = (|| {
                    let b = self.bridge_index(&bridge)?;
                    let id = self.member_port(b, &port)?;
                    if let Some(remote) = remote {
                        let slot = self.ports[id as usize].as_mut().expect("member port");
                        let pinned = slot
                            .port
                            .tunnel_mut()
                            .is_some_and(|t| t.set_static_remote(vlan, mac, Some(remote)));
                        if !pinned {
                            return Err(DatapathError::NotTunnel(port.clone()));
                        }
                    }
                    let br = self.bridges[b].as_mut().expect("index from bridge_index");
                    br.fdb
                        .add_static(vlan, mac, id)
                        .map_err(|_| DatapathError::TableFull(bridge.clone()))
                })();
                let _ = reply.send(r);
            }
            Command::FdbDel {
                bridge,
                vlan,
                mac,
                reply,
            } => {
                let r = self.bridge_mut(&bridge).and_then(|b| {
                    b.fdb
                        .remove(vlan, mac)
                        .ok_or(DatapathError::NoSuchEntry { mac, vlan })
                });
                if let Ok(entry) = &r {
                    if let Some(Some(slot)) = self.ports.get_mut(entry.port as usize) {
                        if let Some(t) = slot.port.tunnel_mut() {
                            t.set_static_remote(vlan, mac, None);
                        }
                    }
                }
                let _ = reply.send(r.map(|_| ()));
            }
            Command::FdbFlush { bridge, reply } => {
                let r = self.bridge_mut(&bridge).map(|b| b.fdb.flush_learned());
                let _ = reply.send(r);
            }
            Command::FdbDump { bridge, reply } => {
                let _ = reply.send(self.fdb_dump(&bridge, secs));
            }
            Command::Bridges { reply } => {
                let states = self
                    .bridges
                    .iter()
                    .flatten()
                    .map(|b| BridgeState {
                        name: b.name.clone(),
                        ports: b.ports.iter().map(|p| self.port_name(*p)).collect(),
                        fdb_entries: b.fdb.len(),
                        fdb_counters: b.fdb.counters,
                        aging_secs: b.fdb.aging_secs(),
                        max_entries: b.fdb.max_entries(),
                        worker: 0,
                        spread: b.fdb.shares_learning(),
                        macs_unshared: b.fdb.shared_dropped(),
                    })
                    .collect();
                let _ = reply.send(Ok(states));
            }
            Command::Trace {
                bridge,
                in_port,
                frame,
                reply,
            } => {
                let _ = reply.send(self.trace(&bridge, &in_port, &frame, now));
            }
            Command::Stats { reply } => {
                let rows = self
                    .ports
                    .iter()
                    .flatten()
                    .map(|slot| {
                        let bridge = self.bridges[slot.bridge]
                            .as_ref()
                            .map(|b| b.name.as_str())
                            .unwrap_or("");
                        PortStatsReport::new(bridge, &slot.name, &slot.counters)
                    })
                    .collect();
                let _ = reply.send(Ok(rows));
            }
            Command::PortDetails { name, reply } => {
                let r = self.port_index(&name).map(|id| {
                    let slot = self.ports[id].as_ref()?;
                    if !self.is_replica(slot.bridge) {
                        return slot.port.details();
                    }
                    // One worker's shard: its share of the traffic too.
                    Some(serde_json::json!({
                        "rx_packets": slot.counters.rx_packets,
                        "tx_packets": slot.counters.tx_packets,
                        "details": slot.port.details(),
                    }))
                });
                let _ = reply.send(r);
            }
            Command::Metrics { reply } => {
                let fdb_entries = self
                    .bridges
                    .iter()
                    .flatten()
                    .map(|b| (b.name.clone(), b.fdb.entries_per_vlan()))
                    .collect();
                let _ = reply.send(Ok(DatapathMetrics {
                    per_worker: vec![self.loop_counters],
                    fdb_entries,
                }));
            }
            Command::CaptureStart { port, tap, reply } => {
                let _ = reply.send(self.capture_start(&port, tap));
            }
            Command::CaptureStop { port, id, reply } => {
                self.capture_stop(&port, id);
                let _ = reply.send(Ok(()));
            }
            Command::EventHub { reply } => {
                let _ = reply.send(Ok(self.event_hub(None)));
            }
            Command::AdoptEventHub { hub, reply } => {
                self.event_hub(Some(hub));
                let _ = reply.send(Ok(()));
            }
            Command::ExportBridges { names, reply } => {
                let _ = reply.send(self.export_bridges(&names, registry));
            }
            Command::ImportBridges { bundles, reply } => {
                self.import_bridges(bundles, registry);
                let _ = reply.send(Ok(()));
            }
            Command::EvpnAttach {
                bridge,
                vtep,
                journal,
                learning,
                reply,
            } => {
                let _ = reply.send(self.evpn_attach(&bridge, vtep.as_deref(), journal, learning));
            }
            Command::EvpnUpdate { bridge, ops, reply } => {
                let _ = reply.send(self.evpn_update(&bridge, &ops));
            }
            Command::EvpnLocalMacs { bridge, reply } => {
                let r = self.bridge_mut(&bridge).map(|b| b.fdb.local_macs());
                let _ = reply.send(r);
            }
            Command::Shutdown => {}
        }
    }
}

#[cfg(test)]
mod tests;
