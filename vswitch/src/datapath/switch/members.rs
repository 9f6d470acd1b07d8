//! Adding and removing bridges and ports.

use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use super::Switch;
use crate::datapath::command::DatapathError;
use crate::datapath::slots::slot_at;
use crate::fdb::{Fdb, PortId};
use crate::pipeline::admit::PortPolicy;
use crate::pipeline::{Bridge, PortSlot};

impl Switch {
    /// Adds a bridge. Also the setup path of benches and fuzz targets.
    pub fn add_bridge(
        &mut self,
        name: String,
        aging_secs: u64,
        max_entries: usize,
    ) -> Result<(), DatapathError> {
        self.add_bridge_at(name, aging_secs, max_entries, None)
    }

    /// Adds a bridge; with `replica_slot`, as this worker's replica of a
    /// bridge that runs on every worker, at the index the commander chose
    /// for all replicas (its table then shares what it learns).
    pub(in crate::datapath) fn add_bridge_at(
        &mut self,
        name: String,
        aging_secs: u64,
        max_entries: usize,
        replica_slot: Option<usize>,
    ) -> Result<(), DatapathError> {
        if self.bridge_index(&name).is_ok() {
            return Err(DatapathError::BridgeExists(name));
        }
        if replica_slot.is_some_and(|i| matches!(self.bridges.get(i), Some(Some(_)))) {
            return Err(DatapathError::BridgeExists(name));
        }
        let i = replica_slot.unwrap_or_else(|| self.ids.claim_bridge());
        let mut fdb = Fdb::new(max_entries, aging_secs);
        fdb.share_learning(replica_slot.is_some());
        *slot_at(&mut self.bridges, i) = Some(Bridge::new(name, fdb, Vec::new()));
        self.observe_bridge_added(i);
        Ok(())
    }

    /// Whether bridge `b` is a replica of a bridge on every worker, whose
    /// bridge and port indices the commander owns.
    pub(in crate::datapath) fn is_replica(&self, b: usize) -> bool {
        matches!(self.bridges.get(b), Some(Some(br)) if br.fdb.shares_learning())
    }

    /// Adds a port, in the default VLAN mode with no policy, to a bridge;
    /// with a registry, its descriptor is watched for readiness (benches and
    /// fuzz targets pass none).
    pub fn add_port(
        &mut self,
        bridge: &str,
        name: String,
        port: Box<dyn crate::port::Port>,
        registry: Option<&Registry>,
    ) -> Result<(), DatapathError> {
        self.add_port_with_policy(bridge, name, port, PortPolicy::default(), registry)
    }

    /// Adds a port with its policy.
    pub fn add_port_with_policy(
        &mut self,
        bridge: &str,
        name: String,
        port: Box<dyn crate::port::Port>,
        policy: PortPolicy,
        registry: Option<&Registry>,
    ) -> Result<(), DatapathError> {
        self.add_port_at(bridge, name, port, policy, registry, None)
    }

    /// Adds a port; `slot` is the index the commander chose for a port of
    /// a bridge on every worker (this worker's share of its queues).
    pub(in crate::datapath) fn add_port_at(
        &mut self,
        bridge: &str,
        name: String,
        port: Box<dyn crate::port::Port>,
        policy: PortPolicy,
        registry: Option<&Registry>,
        slot: Option<usize>,
    ) -> Result<(), DatapathError> {
        let b = self.bridge_index(bridge)?;
        if self.port_index(&name).is_ok() {
            return Err(DatapathError::PortExists(name));
        }
        if slot.is_some() != self.is_replica(b) {
            return Err(DatapathError::Spread(format!(
                "port {name:?}: bridge {bridge:?} and the port disagree on running on every worker"
            )));
        }
        if slot.is_some_and(|i| matches!(self.ports.get(i), Some(Some(_)))) {
            return Err(DatapathError::PortExists(name));
        }
        let id = slot.unwrap_or_else(|| self.ids.claim_port());
        if let (Some(fd), Some(registry)) = (port.readiness_fd(), registry) {
            if let Err(e) = registry.register(&mut SourceFd(&fd), Token(id), Interest::READABLE) {
                if slot.is_none() {
                    self.ids.release_port(id);
                }
                return Err(DatapathError::Readiness(e.to_string()));
            }
        }
        *slot_at(&mut self.ports, id) = Some(PortSlot::new(name, b, port, policy));
        let bridge = self.bridges[b].as_mut().expect("index from bridge_index");
        bridge.ports.push(id as PortId);
        bridge.fdb.reserve_port(id as PortId);
        self.relink_tunnels();
        self.observe_port_added(id);
        Ok(())
    }

    /// Replaces a port's policy. When its VLAN mode changes, the table
    /// forgets what the port taught it (those entries may sit in networks
    /// the port no longer carries).
    pub fn set_port_policy(
        &mut self,
        name: &str,
        policy: PortPolicy,
        now: Duration,
    ) -> Result<(), DatapathError> {
        let id = self.port_index(name)?;
        let slot = self.ports[id].as_mut().expect("index from port_index");
        if slot.policy.vlan != policy.vlan {
            if let Some(Some(bridge)) = self.bridges.get_mut(slot.bridge) {
                let statics = bridge.fdb.flush_port(id as PortId);
                if statics > 0 {
                    tracing::info!(
                        port = name,
                        statics,
                        "VLAN mode changed: static entries removed"
                    );
                }
            }
        }
        slot.set_policy(policy, now);
        Ok(())
    }

    pub(super) fn del_port(
        &mut self,
        name: &str,
        registry: &Registry,
    ) -> Result<Box<dyn crate::port::Port>, DatapathError> {
        let id = self.port_index(name)?;
        let slot = self.ports[id].take().expect("index from port_index");
        let replica = self.is_replica(slot.bridge);
        if let Some(fd) = slot.port.readiness_fd() {
            // The descriptor closes right after; a failed deregister only
            // means epoll forgets it then.
            let _ = registry.deregister(&mut SourceFd(&fd));
        }
        if let Some(Some(bridge)) = self.bridges.get_mut(slot.bridge) {
            bridge.ports.retain(|p| *p != id as PortId);
            bridge.fdb.flush_port(id as PortId);
        }
        // A replica's indices are the commander's, released once every
        // worker let go of them.
        if !replica {
            self.ids.release_port(id);
        }
        self.relink_tunnels();
        self.observe_port_removed(id);
        Ok(slot.port)
    }

    pub(super) fn del_bridge(
        &mut self,
        name: &str,
        registry: &Registry,
    ) -> Result<(), DatapathError> {
        let b = self.bridge_index(name)?;
        let members: Vec<String> = self.bridges[b]
            .as_ref()
            .expect("index from bridge_index")
            .ports
            .iter()
            .map(|p| self.port_name(*p))
            .collect();
        for port in members {
            self.del_port(&port, registry)?;
        }
        let replica = self.is_replica(b);
        self.bridges[b] = None;
        if !replica {
            self.ids.release_bridge(b);
        }
        Ok(())
    }
}
