//! One bridge's session with the host's gobgpd: reconcile, then follow.
//!
//! On every (re)connect the session attaches to the datapath, starts a
//! watch of GoBGP's best paths, reads the whole EVPN table once, takes it as
//! the truth for remote routes (what is gone from it is uninstalled), reads
//! the bridge's local MACs, and reconciles its own routes: paths it added
//! in an earlier life (paths added over gRPC outlive their client) that it
//! no longer wants are deleted, missing ones added. Then it follows: watch
//! events change remote state, the table's journal changes local state,
//! and every change is applied to GoBGP and the datapath at once.
//!
//! When gobgpd goes away the datapath keeps what is installed; the session
//! retries with backoff and reconciles again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tonic::transport::Channel;

use super::api::{self, gobgp_api_client::GobgpApiClient};
use super::routes::{self, Originator, Received};
use super::spec::{EvpnSpec, SessionState};
use super::state::{Action, EvpnState, Limits, LocalRoute, Nlri};
use super::{Shared, TunnelOp};
use crate::datapath::{Command, Commander};
use crate::fdb::{MacEvent, MacJournal};

mod rpc;
use rpc::{add, connect, delete, delete_received};

const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the table's journal is read: a MAC that appears locally is
/// advertised within this (plus the gRPC round trip).
const JOURNAL_EVERY: Duration = Duration::from_millis(50);
/// How often the datapath attachment is checked (a VXLAN port deleted and
/// added again, or its VNIs changed).
const ATTACH_EVERY: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// Tunnel changes per datapath command, so a burst of routes never holds
/// the datapath for long.
const OPS_PER_COMMAND: usize = 2048;
/// Watch messages already waiting that are taken in one round.
const WATCH_DRAIN: usize = 1024;

/// Why a session ended.
enum End {
    Stopped,
    Failed(String),
}

pub(super) struct Session {
    bridge: String,
    spec: EvpnSpec,
    dp: Commander,
    shared: Arc<Mutex<Shared>>,
    journal: Arc<MacJournal>,
    state: EvpnState,
    me: Option<Originator>,
    events: Vec<MacEvent>,
    /// Bumped whenever the published figures change (tests wait on it).
    progress: watch::Sender<u64>,
}

impl Session {
    pub(super) fn new(
        bridge: String,
        spec: EvpnSpec,
        dp: Commander,
        shared: Arc<Mutex<Shared>>,
    ) -> Session {
        let limits = Limits {
            max_macs: spec.max_macs,
            max_vteps: spec.max_vteps,
        };
        Session {
            bridge,
            spec,
            dp,
            shared,
            journal: Arc::new(MacJournal::default()),
            state: EvpnState::new(limits),
            me: None,
            events: Vec::new(),
            progress: watch::Sender::new(0),
        }
    }

    /// Changes whenever the session publishes new figures.
    #[cfg(test)]
    pub(super) fn progress(&self) -> watch::Receiver<u64> {
        self.progress.subscribe()
    }

    fn update(&self, f: impl FnOnce(&mut Shared)) {
        if let Ok(mut s) = self.shared.lock() {
            f(&mut s);
        }
    }

    /// Runs until `stop` turns true, then withdraws this bridge's routes
    /// and hands the datapath back.
    pub(super) async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut backoff = MIN_BACKOFF;
        let mut client: Option<GobgpApiClient<Channel>> = None;
        loop {
            let end = self.connected_life(&mut stop, &mut client).await;
            match end {
                End::Stopped => break,
                End::Failed(e) => {
                    tracing::warn!(bridge = %self.bridge, "EVPN session: {e}");
                    let established = self
                        .shared
                        .lock()
                        .is_ok_and(|s| s.session == SessionState::Established);
                    self.update(|s| {
                        if established {
                            s.counters.reconnects += 1;
                            backoff = MIN_BACKOFF;
                        }
                        s.session = SessionState::Connecting;
                        s.last_error = Some(e);
                    });
                    self.progress.send_modify(|n| *n += 1);
                }
            }
            client = None;
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => break,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        self.shut_down(client).await;
    }

    /// Best effort, bounded: withdraw what we advertised, then detach.
    async fn shut_down(&mut self, client: Option<GobgpApiClient<Channel>>) {
        let withdrawals = self.state.withdraw_all();
        let client = match client {
            Some(c) => Some(c),
            None => connect(&self.spec.gobgp).await.ok(),
        };
        if let (Some(mut c), Some(me)) = (client, self.me) {
            let work = async {
                for a in &withdrawals {
                    if let Action::Withdraw(r) = a {
                        let _ = delete(&mut c, &routes::encode(r, &me, true)).await;
                    }
                }
            };
            let _ = tokio::time::timeout(RPC_TIMEOUT, work).await;
        }
        let bridge = self.bridge.clone();
        let _ = self
            .dp
            .call(|reply| Command::EvpnAttach {
                bridge,
                vtep: None,
                journal: None,
                learning: true,
                reply,
            })
            .await;
    }

    /// Attaches to the datapath; applies a change of topology.
    async fn attach(&mut self) -> Result<(), String> {
        let bridge = self.bridge.clone();
        let topo = self
            .dp
            .call(|reply| Command::EvpnAttach {
                bridge,
                vtep: self.spec.vtep.clone(),
                journal: Some(self.journal.clone()),
                learning: self.spec.learning,
                reply,
            })
            .await
            .map_err(|e| e.to_string())?;
        self.me = Some(Originator {
            asn: self.spec.asn,
            router_id: self.spec.router_id,
            vtep: topo.local_ip,
        });
        // A fresh datapath (or a new topology) gets every install again in
        // these actions.
        let actions = self
            .state
            .set_topology(topo.local_ip, &topo.vnis, topo.fresh);
        let ops: Vec<TunnelOp> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Tunnel(op) => Some(*op),
                _ => None,
            })
            .collect();
        self.install(ops).await?;
        self.update(|s| {
            s.vtep = Some(topo.vtep.clone());
            s.local_ip = Some(topo.local_ip);
        });
        Ok(())
    }

    async fn install(&mut self, ops: Vec<TunnelOp>) -> Result<(), String> {
        for chunk in ops.chunks(OPS_PER_COMMAND) {
            let bridge = self.bridge.clone();
            let ops = chunk.to_vec();
            let outcome = self
                .dp
                .call(|reply| Command::EvpnUpdate { bridge, ops, reply })
                .await
                .map_err(|e| e.to_string())?;
            self.update(|s| s.counters.routes_refused += outcome.refused as u64);
        }
        Ok(())
    }

    /// Applies decisions: routes to GoBGP (when connected), tunnel changes
    /// to the datapath.
    async fn apply(
        &mut self,
        actions: Vec<Action>,
        client: Option<&mut GobgpApiClient<Channel>>,
    ) -> Result<(), String> {
        let mut ops = Vec::new();
        let mut routes_out = Vec::new();
        for a in actions {
            match a {
                Action::Tunnel(op) => ops.push(op),
                other => routes_out.push(other),
            }
        }
        self.install(ops).await?;
        let (Some(c), Some(me)) = (client, self.me) else {
            return Ok(());
        };
        for a in routes_out {
            match a {
                Action::Advertise(r) => {
                    add(c, &routes::encode(&r, &me, false)).await?;
                    self.update(|s| s.counters.routes_sent += 1);
                }
                Action::Withdraw(r) => {
                    delete(c, &routes::encode(&r, &me, true)).await?;
                    self.update(|s| s.counters.routes_withdrawn += 1);
                }
                Action::Tunnel(_) => {}
            }
        }
        Ok(())
    }

    fn publish_figures(&self) {
        let figures = self.state.figures();
        let refused = self.state.refused;
        self.update(|s| {
            s.vnis = figures;
            s.state_refused = refused;
        });
        self.progress.send_modify(|n| *n += 1);
    }

    /// Whether a path read from GoBGP is one this session added.
    fn is_own(&self, r: &Received) -> bool {
        r.local && r.rd_admin == self.spec.router_id.to_string()
    }

    async fn connected_life(
        &mut self,
        stop: &mut watch::Receiver<bool>,
        client_slot: &mut Option<GobgpApiClient<Channel>>,
    ) -> End {
        if *stop.borrow() {
            return End::Stopped;
        }
        if let Err(e) = self.attach().await {
            return End::Failed(format!("datapath: {e}"));
        }
        let mut client = match connect(&self.spec.gobgp).await {
            Ok(c) => c,
            Err(e) => return End::Failed(e),
        };
        let result = self.converge_and_follow(&mut client, stop).await;
        *client_slot = Some(client);
        match result {
            Ok(()) => End::Stopped,
            Err(e) => End::Failed(e),
        }
    }

    async fn converge_and_follow(
        &mut self,
        client: &mut GobgpApiClient<Channel>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), String> {
        // The watch starts with GoBGP's whole table of best paths (`init`),
        // registered and dumped in one step inside gobgpd, so no change
        // falls between the dump and the events that follow. gRPC-Go sends
        // the stream's headers with its first message: the dump.
        let request = api::WatchEventRequest {
            peer: None,
            table: Some(api::watch_event_request::Table {
                filters: vec![api::watch_event_request::table::Filter {
                    r#type: api::watch_event_request::table::filter::Type::Best as i32,
                    init: true,
                }],
            }),
        };
        let first = async {
            let mut watch = client
                .watch_event(request)
                .await
                .map_err(|e| format!("watching gobgpd: {}", e.message()))?
                .into_inner();
            let dump = watch
                .message()
                .await
                .map_err(|e| format!("reading gobgpd's table: {}", e.message()))?
                .ok_or("gobgpd closed the watch")?;
            Ok::<_, String>((watch, dump))
        };
        let (mut watch, dump) = tokio::time::timeout(RPC_TIMEOUT, first)
            .await
            .map_err(|_| "gobgpd sent no table (is its global AS configured?)".to_string())??;
        let (remote, owned) = self.split_dump(dump);
        // Local MACs: the journal is emptied first, then the table read, so
        // no change falls between the two.
        self.events.clear();
        self.journal.drain(&mut self.events);
        self.events.clear();
        let bridge = self.bridge.clone();
        let local = self
            .dp
            .call(|reply| Command::EvpnLocalMacs { bridge, reply })
            .await
            .map_err(|e| e.to_string())?;
        let mut actions = self.state.replace_local(&local);
        actions.extend(self.state.replace_remote(remote));
        let tunnel: Vec<Action> = actions
            .into_iter()
            .filter(|a| matches!(a, Action::Tunnel(_)))
            .collect();
        self.apply(tunnel, None).await?;
        self.reconcile(client, owned).await?;
        self.update(|s| {
            s.session = SessionState::Established;
            s.last_error = None;
        });
        self.publish_figures();
        tracing::info!(bridge = %self.bridge, gobgp = %self.spec.gobgp, "EVPN session established");

        let mut journal_tick = tokio::time::interval(JOURNAL_EVERY);
        let mut attach_tick = tokio::time::interval(ATTACH_EVERY);
        loop {
            tokio::select! {
                msg = watch.message() => {
                    let msg = msg.map_err(|e| format!("gobgpd watch: {}", e.message()))?;
                    let Some(msg) = msg else {
                        return Err("gobgpd closed the watch".into());
                    };
                    let mut actions = self.on_watch(msg);
                    // What already arrived joins this round: a burst of
                    // routes costs a datapath command per chunk of changes,
                    // not one per route. (`message` is cancel safe.)
                    for _ in 0..WATCH_DRAIN {
                        match tokio::time::timeout(Duration::ZERO, watch.message()).await {
                            Ok(Ok(Some(more))) => actions.extend(self.on_watch(more)),
                            Ok(Ok(None)) => return Err("gobgpd closed the watch".into()),
                            Ok(Err(e)) => return Err(format!("gobgpd watch: {}", e.message())),
                            Err(_) => break,
                        }
                    }
                    self.apply(actions, Some(client)).await?;
                    self.publish_figures();
                }
                _ = journal_tick.tick() => {
                    let actions = self.on_journal().await?;
                    if !actions.is_empty() {
                        self.apply(actions, Some(client)).await?;
                        self.publish_figures();
                    }
                }
                _ = attach_tick.tick() => {
                    let before = self.state.desired_routes();
                    self.attach().await.map_err(|e| format!("datapath: {e}"))?;
                    if self.state.desired_routes() != before {
                        // The VNIs changed: start over with GoBGP too.
                        return Err("the VXLAN port changed".into());
                    }
                    self.publish_figures();
                }
                _ = stop.changed() => return Ok(()),
            }
        }
    }

    /// GoBGP's best paths: remote EVPN routes, and the paths we own.
    fn split_dump(
        &mut self,
        dump: api::WatchEventResponse,
    ) -> (Vec<super::state::RemoteRoute>, Vec<Received>) {
        let mut remote = Vec::new();
        let mut owned = Vec::new();
        if let Some(api::watch_event_response::Event::Table(table)) = dump.event {
            for path in &table.paths {
                if path.family.as_ref().is_some_and(|f| *f != routes::family()) {
                    continue;
                }
                let Ok(r) = routes::decode(path) else {
                    continue;
                };
                if self.is_own(&r) {
                    owned.push(r);
                } else if !r.withdraw {
                    remote.push(r.route);
                }
            }
        }
        self.update(|s| s.counters.routes_received += remote.len() as u64);
        (remote, owned)
    }

    /// Deletes owned paths no longer wanted, adds wanted ones missing.
    async fn reconcile(
        &mut self,
        client: &mut GobgpApiClient<Channel>,
        owned: Vec<Received>,
    ) -> Result<(), String> {
        let Some(me) = self.me else {
            return Ok(());
        };
        let mut present = Vec::new();
        for r in owned {
            let wanted = match r.route.id.nlri {
                Nlri::Flood { origin, .. } => {
                    let vni = r.route.vni;
                    origin == me.vtep
                        && self
                            .state
                            .desired_routes()
                            .contains(&LocalRoute::Flood { vni })
                }
                Nlri::Mac { vni, mac, ip } => {
                    let same_ip = match ip {
                        None => true,
                        Some(std::net::IpAddr::V4(v4)) => {
                            self.state.advertised_ip(vni, mac) == Some(v4)
                        }
                        Some(_) => false,
                    };
                    same_ip
                        && r.route.vtep == me.vtep
                        && self.state.adopt_own(vni, mac, r.route.seq)
                }
            };
            if wanted {
                present.push(r.route);
                continue;
            }
            delete_received(client, &r).await?;
            self.update(|s| s.counters.routes_withdrawn += 1);
        }
        for want in self.state.desired_routes() {
            let there = present.iter().any(|p| match (want, p.id.nlri) {
                (LocalRoute::Flood { vni }, Nlri::Flood { .. }) => vni == p.vni,
                (
                    LocalRoute::Mac { vni, mac, seq },
                    Nlri::Mac {
                        vni: v,
                        mac: m,
                        ip: None,
                    },
                ) => vni == v && mac == m && seq == p.seq,
                (
                    LocalRoute::MacIp { vni, mac, ip, seq },
                    Nlri::Mac {
                        vni: v,
                        mac: m,
                        ip: Some(i),
                    },
                ) => vni == v && mac == m && i == std::net::IpAddr::V4(ip) && seq == p.seq,
                _ => false,
            });
            if !there {
                add(client, &routes::encode(&want, &me, false)).await?;
                self.update(|s| s.counters.routes_sent += 1);
            }
        }
        Ok(())
    }

    fn on_watch(&mut self, msg: api::WatchEventResponse) -> Vec<Action> {
        let Some(api::watch_event_response::Event::Table(table)) = msg.event else {
            return Vec::new();
        };
        let mut actions = Vec::new();
        let mut received = 0;
        let mut malformed = 0;
        for path in &table.paths {
            let fam = path.family.as_ref();
            if fam.is_some_and(|f| *f != routes::family()) {
                continue;
            }
            let r = match routes::decode(path) {
                Ok(r) => r,
                Err(routes::Unusable::OtherRouteType) => continue,
                Err(_) => {
                    malformed += 1;
                    continue;
                }
            };
            if self.is_own(&r) {
                continue;
            }
            received += 1;
            if r.withdraw {
                actions.extend(self.state.remote_withdraw(&r.route.id));
            } else {
                actions.extend(self.state.remote_update(r.route));
            }
        }
        self.update(|s| {
            s.counters.routes_received += received;
            s.counters.routes_refused += malformed;
        });
        actions
    }

    async fn on_journal(&mut self) -> Result<Vec<Action>, String> {
        self.events.clear();
        let complete = self.journal.drain(&mut self.events);
        if !complete {
            // Events were lost: read the whole table instead.
            self.events.clear();
            let bridge = self.bridge.clone();
            let local = self
                .dp
                .call(|reply| Command::EvpnLocalMacs { bridge, reply })
                .await
                .map_err(|e| e.to_string())?;
            return Ok(self.state.replace_local(&local));
        }
        let mut actions = Vec::new();
        for e in std::mem::take(&mut self.events) {
            actions.extend(self.state.local_change(e.vlan, e.mac, e.local, e.ip));
        }
        Ok(actions)
    }
}

#[cfg(test)]
mod tests;
