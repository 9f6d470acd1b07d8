//! Sending commands to the datapath's workers: each goes to the worker that
//! runs the bridge or port it names (`placement`), the ones about every
//! bridge or port go to all workers and their answers are merged.
//!
//! Commands are routed one at a time: changes of what exists (bridges and
//! ports added or deleted, and the moves they cause) complete before the
//! next command reads the map, so the map always says what the workers run.

use std::sync::{Arc, Mutex};

use crossbeam_channel::Sender;
use mio::Waker;
use tokio::sync::oneshot;

use super::placement::{Move, Placement};
use super::slots::SlotIds;
use super::{Command, DatapathError, Reply};
use crate::metrics::DatapathMetrics;

/// One worker's command channel and the waker that ends its sleep.
pub(super) struct WorkerLink {
    pub commands: Sender<Command>,
    pub waker: Arc<Waker>,
}

struct Shared {
    workers: Vec<WorkerLink>,
    placement: Mutex<Placement>,
    /// Held while a command is routed (and, for a change, applied).
    routing: tokio::sync::Mutex<()>,
    /// The workers' bridge and port indices: the commander claims those of
    /// bridges on every worker (`spread.rs`).
    ids: SlotIds,
}

/// Sends commands to the datapath from any task; cheap to clone.
#[derive(Clone)]
pub struct Commander {
    shared: Arc<Shared>,
}

/// Where a command goes.
enum Route {
    Worker(usize),
    /// The named bridge or port does not exist: the error to answer.
    Refuse(DatapathError),
}

impl Commander {
    pub(super) fn new(workers: Vec<WorkerLink>, ids: SlotIds) -> Commander {
        let placement = Mutex::new(Placement::new(workers.len()));
        Commander {
            shared: Arc::new(Shared {
                workers,
                placement,
                routing: tokio::sync::Mutex::new(()),
                ids,
            }),
        }
    }

    /// Sends a command built around a fresh reply channel and awaits the
    /// answer.
    pub async fn call<T>(
        &self,
        make: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, DatapathError> {
        let (tx, rx) = oneshot::channel();
        self.dispatch(make(tx)).await?;
        rx.await.map_err(|_| DatapathError::Gone)?
    }

    /// Tells every worker to stop.
    pub(super) fn shutdown(&self) {
        for w in 0..self.shared.workers.len() {
            let _ = self.send_to(w, Command::Shutdown);
        }
    }

    fn placement(&self) -> std::sync::MutexGuard<'_, Placement> {
        // Never held across an await or a panic-prone call.
        self.shared
            .placement
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn send_to(&self, worker: usize, cmd: Command) -> Result<(), DatapathError> {
        let link = self.shared.workers.get(worker).ok_or(DatapathError::Gone)?;
        link.commands.send(cmd).map_err(|_| DatapathError::Gone)?;
        link.waker.wake().map_err(|_| DatapathError::Gone)
    }

    /// Sends `make`'s command to one worker and awaits its answer.
    async fn ask<T>(
        &self,
        worker: usize,
        make: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, DatapathError> {
        let (tx, rx) = oneshot::channel();
        self.send_to(worker, make(tx))?;
        rx.await.map_err(|_| DatapathError::Gone)?
    }

    /// Asks the worker `route` names, or answers its refusal.
    async fn ask_route<T>(
        &self,
        route: Route,
        make: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, DatapathError> {
        match route {
            Route::Worker(w) => self.ask(w, make).await,
            Route::Refuse(e) => Err(e),
        }
    }

    /// Asks every worker, in order.
    async fn ask_all<T>(
        &self,
        make: impl Fn(Reply<T>) -> Command,
    ) -> Result<Vec<T>, DatapathError> {
        let mut parts = Vec::with_capacity(self.shared.workers.len());
        for w in 0..self.shared.workers.len() {
            parts.push(self.ask(w, &make).await?);
        }
        Ok(parts)
    }

    fn bridge_route(&self, bridge: &str) -> Route {
        match self.placement().bridge_worker(bridge) {
            Some(w) => Route::Worker(w),
            None => Route::Refuse(DatapathError::NoSuchBridge(bridge.to_string())),
        }
    }

    fn port_route(&self, port: &str) -> Route {
        match self.placement().port_worker(port) {
            Some(w) => Route::Worker(w),
            None => Route::Refuse(DatapathError::NoSuchPort(port.to_string())),
        }
    }

    /// For a command naming a bridge and one of its ports: the bridge's
    /// worker, or the error the worker would give.
    fn member_route(&self, bridge: &str, port: &str) -> Route {
        let p = self.placement();
        let Some(w) = p.bridge_worker(bridge) else {
            return Route::Refuse(DatapathError::NoSuchBridge(bridge.to_string()));
        };
        match p.port_bridge(port) {
            None => Route::Refuse(DatapathError::NoSuchPort(port.to_string())),
            Some(b) if b != bridge => Route::Refuse(DatapathError::PortNotOnBridge {
                port: port.to_string(),
                bridge: bridge.to_string(),
            }),
            Some(_) => Route::Worker(w),
        }
    }

    /// Sends `cmd` where it belongs, or answers it here; Err only if the
    /// datapath is gone.
    async fn dispatch(&self, cmd: Command) -> Result<(), DatapathError> {
        // One command at a time is routed: a change (and the move it may
        // cause) completes before the next command reads the map, so none
        // is sent to a worker a bridge just left, and no listing misses a
        // bridge in transit. Routed commands hold it only until sent.
        let _routing = self.shared.routing.lock().await;
        if self.targets_spread(&cmd) {
            self.fan_out(cmd).await;
            return Ok(());
        }
        let route = match cmd {
            Command::AddBridge {
                name,
                aging_secs,
                max_entries,
                spread: true,
                reply,
                ..
            } => {
                let r = self.add_spread_bridge(name, aging_secs, max_entries).await;
                let _ = reply.send(r);
                return Ok(());
            }
            Command::AddBridge {
                name,
                aging_secs,
                max_entries,
                worker,
                reply,
                ..
            } => {
                let r = if self.placement().bridge_worker(&name).is_some() {
                    Err(DatapathError::BridgeExists(name))
                } else {
                    let workers = self.shared.workers.len();
                    let w = match worker {
                        Some(w) if w < workers => w,
                        Some(w) => {
                            tracing::warn!(
                                bridge = %name,
                                "worker={w} does not exist ({workers} workers): the bridge goes to the least loaded"
                            );
                            self.placement().pick_worker()
                        }
                        None => self.placement().pick_worker(),
                    };
                    let r = self
                        .ask(w, |reply| Command::AddBridge {
                            name: name.clone(),
                            aging_secs,
                            max_entries,
                            worker: Some(w),
                            spread: false,
                            reply,
                        })
                        .await;
                    if r.is_ok() {
                        self.placement().add_bridge(&name, w);
                    }
                    r
                };
                let _ = reply.send(r);
                return Ok(());
            }
            Command::SetBridge {
                bridge,
                aging_secs,
                worker,
                reply,
            } => {
                let r = self.set_bridge(bridge, aging_secs, worker).await;
                let _ = reply.send(r);
                return Ok(());
            }
            Command::DelBridge { name, reply } => {
                let route = self.bridge_route(&name);
                let r = self
                    .ask_route(route, |reply| Command::DelBridge {
                        name: name.clone(),
                        reply,
                    })
                    .await;
                if r.is_ok() {
                    self.placement().remove_bridge(&name);
                }
                let _ = reply.send(r);
                return Ok(());
            }
            Command::AddPort {
                bridge,
                name,
                port,
                policy,
                reply,
            } => {
                let r = self.add_port(bridge, name, port, policy).await;
                let _ = reply.send(r);
                return Ok(());
            }
            Command::AddPortShards {
                bridge,
                name,
                shards,
                policy,
                reply,
            } => {
                let r = self.add_port_shards(bridge, name, shards, policy).await;
                let _ = reply.send(r);
                return Ok(());
            }
            // Only the commander orders replicas.
            Command::AddBridgeReplica { reply, .. } | Command::AddPortReplica { reply, .. } => {
                let _ = reply.send(Err(DatapathError::Gone));
                return Ok(());
            }
            Command::DelPort { name, reply } => {
                let route = self.port_route(&name);
                let r = self
                    .ask_route(route, |reply| Command::DelPort {
                        name: name.clone(),
                        reply,
                    })
                    .await;
                if r.is_ok() {
                    self.placement().remove_port(&name);
                }
                let _ = reply.send(r);
                return Ok(());
            }
            Command::Bridges { reply } => {
                let parts = self.ask_all(|reply| Command::Bridges { reply }).await;
                let _ = reply.send(parts.map(spread::merge_bridge_states));
                return Ok(());
            }
            Command::Stats { reply } => {
                let parts = self.ask_all(|reply| Command::Stats { reply }).await;
                let _ = reply.send(parts.map(spread::merge_port_stats));
                return Ok(());
            }
            Command::Metrics { reply } => {
                let parts = self.ask_all(|reply| Command::Metrics { reply }).await;
                let _ = reply.send(parts.map(merge_metrics));
                return Ok(());
            }
            Command::EventHub { reply } => {
                let r = self.event_hub().await;
                let _ = reply.send(r);
                return Ok(());
            }
            // Moves are the commander's own business.
            Command::ExportBridges { reply, .. } => {
                let _ = reply.send(Err(DatapathError::Gone));
                return Ok(());
            }
            Command::ImportBridges { reply, .. } => {
                let _ = reply.send(Err(DatapathError::Gone));
                return Ok(());
            }
            Command::Shutdown => {
                self.shutdown();
                return Ok(());
            }
            ref c => self.route_of(c),
        };
        match route {
            Route::Worker(w) => self.send_to(w, cmd),
            Route::Refuse(e) => {
                refuse(cmd, e);
                Ok(())
            }
        }
    }

    /// Where a command that changes nothing of what exists goes.
    fn route_of(&self, cmd: &Command) -> Route {
        match named(cmd) {
            Some(Named::Bridge(bridge)) => self.bridge_route(bridge),
            Some(Named::Member { bridge, port }) => self.member_route(bridge, port),
            Some(Named::Port(port)) => self.port_route(port),
            // Handled in `dispatch`; worker 0 would do for any of them.
            None => Route::Worker(0),
        }
    }

    async fn add_port(
        &self,
        bridge: String,
        name: String,
        mut port: Box<dyn crate::port::Port>,
        policy: crate::pipeline::admit::PortPolicy,
    ) -> Result<(), DatapathError> {
        let underlay = port.tunnel_mut().map(|t| t.underlay().to_string());
        let tunnel_move = {
            let p = self.placement();
            if p.bridge_worker(&bridge).is_none() {
                return Err(DatapathError::NoSuchBridge(bridge));
            }
            if p.spread_slot(&bridge).is_some() {
                return Err(DatapathError::Spread(format!(
                    "bridge {bridge:?} runs on every worker (workers=all): port {name:?} needs one shard per worker"
                )));
            }
            if let Some(u) = underlay
                .as_deref()
                .filter(|u| p.spread_port_slot(u).is_some())
            {
                return Err(spread::underlay_refused(u));
            }
            if p.port_bridge(&name).is_some() {
                return Err(DatapathError::PortExists(name));
            }
            underlay
                .as_deref()
                .and_then(|u| p.move_for_tunnel(&bridge, u))
        };
        if let Some(m) = tunnel_move {
            self.move_bridges(m).await?;
        }
        let w = self
            .placement()
            .bridge_worker(&bridge)
            .ok_or_else(|| DatapathError::NoSuchBridge(bridge.clone()))?;
        self.ask(w, |reply| Command::AddPort {
            bridge: bridge.clone(),
            name: name.clone(),
            port,
            policy,
            reply,
        })
        .await?;
        let moves = {
            let mut p = self.placement();
            p.add_port(&name, &bridge, underlay.as_deref());
            p.moves_for_underlay(&name, &bridge)
        };
        for m in moves {
            // The port is in; a failed move only leaves a tunnel idle (its
            // underlay's frames never reach it), which the log says.
            if let Err(e) = self.move_bridges(m).await {
                tracing::warn!(port = %name, "tunnels over this port stay idle: {e}");
            }
        }
        Ok(())
    }

    /// `bridge set`: the bridge (with what is joined to it) moves to
    /// `worker` if given, then its worker sets its aging.
    async fn set_bridge(
        &self,
        bridge: String,
        aging_secs: u64,
        worker: Option<usize>,
    ) -> Result<(), DatapathError> {
        let workers = self.shared.workers.len();
        if let Some(w) = worker.filter(|w| *w >= workers) {
            return Err(DatapathError::NoSuchWorker { worker: w, workers });
        }
        let planned = {
            let p = self.placement();
            if p.bridge_worker(&bridge).is_none() {
                return Err(DatapathError::NoSuchBridge(bridge));
            }
            worker.and_then(|w| p.move_to(&bridge, w))
        };
        if let Some(m) = planned {
            self.move_bridges(m).await?;
        }
        let w = self
            .placement()
            .bridge_worker(&bridge)
            .ok_or_else(|| DatapathError::NoSuchBridge(bridge.clone()))?;
        self.ask(w, |reply| Command::SetBridge {
            bridge: bridge.clone(),
            aging_secs,
            worker,
            reply,
        })
        .await
    }

    /// The number of workers.
    pub fn workers(&self) -> usize {
        self.shared.workers.len()
    }

    /// Moves bridges, ports and tables from one worker to another.
    async fn move_bridges(&self, m: Move) -> Result<(), DatapathError> {
        let names = m.bridges.clone();
        let bundles = self
            .ask(m.from, |reply| Command::ExportBridges { names, reply })
            .await?;
        let moved: Vec<String> = bundles.iter().map(|b| b.name().to_string()).collect();
        self.ask(m.to, |reply| Command::ImportBridges { bundles, reply })
            .await?;
        let mut p = self.placement();
        for b in &moved {
            p.set_worker(b, m.to);
        }
        tracing::info!(
            bridges = ?moved,
            from = m.from,
            to = m.to,
            "bridges moved to another datapath worker"
        );
        Ok(())
    }

    /// The events hub: worker 0 creates it, the others report to it too.
    async fn event_hub(&self) -> Result<Arc<crate::events::Hub>, DatapathError> {
        let hub = self.ask(0, |reply| Command::EventHub { reply }).await?;
        for w in 1..self.shared.workers.len() {
            let hub = hub.clone();
            self.ask(w, |reply| Command::AdoptEventHub { hub, reply })
                .await?;
        }
        Ok(hub)
    }
}

/// The workers' figures as one: loop counters per worker, tables listed
/// (a bridge on every worker once: its first replica's).
fn merge_metrics(parts: Vec<DatapathMetrics>) -> DatapathMetrics {
    let mut all = DatapathMetrics::default();
    for m in parts {
        all.per_worker.extend(m.per_worker);
        for (bridge, entries) in m.fdb_entries {
            if !all.fdb_entries.iter().any(|(b, _)| *b == bridge) {
                all.fdb_entries.push((bridge, entries));
            }
        }
    }
    all
}

/// What a command is about.
enum Named<'a> {
    Bridge(&'a str),
    Port(&'a str),
    /// A bridge and one of its ports.
    Member {
        bridge: &'a str,
        port: &'a str,
    },
}

/// The bridge or port a command names, for the commands about one.
fn named(cmd: &Command) -> Option<Named<'_>> {
    Some(match cmd {
        Command::FdbDel { bridge, .. }
        | Command::FdbFlush { bridge, .. }
        | Command::FdbDump { bridge, .. }
        | Command::SetBridge { bridge, .. }
        | Command::DelBridge { name: bridge, .. }
        | Command::EvpnAttach { bridge, .. }
        | Command::EvpnUpdate { bridge, .. }
        | Command::EvpnLocalMacs { bridge, .. } => Named::Bridge(bridge),
        Command::FdbAdd { bridge, port, .. }
        | Command::Trace {
            bridge,
            in_port: port,
            ..
        } => Named::Member { bridge, port },
        Command::SetPortPolicy { name: port, .. }
        | Command::PortDetails { name: port, .. }
        | Command::DelPort { name: port, .. }
        | Command::CaptureStart { port, .. }
        | Command::CaptureStop { port, .. } => Named::Port(port),
        _ => return None,
    })
}

/// Answers a command with `e` without sending it anywhere.
fn refuse(cmd: Command, e: DatapathError) {
    match cmd {
        Command::FdbDel { reply, .. }
        | Command::FdbFlush { reply, .. }
        | Command::FdbAdd { reply, .. }
        | Command::SetPortPolicy { reply, .. }
        | Command::CaptureStart { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        // A capture of a port that is gone has stopped already.
        Command::CaptureStop { reply, .. } => {
            let _ = reply.send(Ok(()));
        }
        Command::FdbDump { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        Command::EvpnAttach { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        Command::EvpnUpdate { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        Command::EvpnLocalMacs { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        Command::Trace { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        Command::PortDetails { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        // Every other command is answered in `dispatch`.
        _ => {}
    }
}

mod spread;
#[cfg(test)]
mod spread_tests;
#[cfg(test)]
mod tests;
