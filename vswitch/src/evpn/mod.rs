//! BGP EVPN (RFC 7432, RFC 8365) for the VXLAN overlay, through the host's
//! GoBGP.

#[cfg(gobgp_api)]
pub mod api;
#[cfg(gobgp_api)]
pub mod routes;
#[cfg(gobgp_api)]
mod session;
pub mod spec;
pub mod state;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use spec::{EvpnCounters, EvpnReport, EvpnSpec, SessionState, VniReport};

use crate::datapath::Commander;
use crate::wire::MacAddr;

/// A change the EVPN control plane makes to a VXLAN port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelOp {
    /// `mac` of `vni` lives behind `vtep` (None: no longer known by BGP).
    Mac {
        vni: u32,
        mac: MacAddr,
        vtep: Option<Ipv4Addr>,
    },
    /// `vtep` joins (or leaves) `vni`'s flood list (a type-3 route).
    Flood {
        vni: u32,
        vtep: Ipv4Addr,
        member: bool,
    },
}

/// The VXLAN port a bridge's EVPN drives, as the datapath reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub vtep: String,
    pub local_ip: Ipv4Addr,
    /// (VNI, VLAN) pairs.
    pub vnis: Vec<(u32, u16)>,
    /// True when the datapath (re)attached now: it holds no EVPN state, and
    /// every remote route must be installed again.
    pub fresh: bool,
}

/// What became of an `EvpnUpdate`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpdateOutcome {
    pub applied: usize,
    /// Not installed: the table was full, a static entry pins the MAC, or
    /// the VXLAN port does not carry the VNI.
    pub refused: usize,
}

/// What a session publishes for `vsctl evpn show`.
#[derive(Debug, Clone, Default)]
pub struct Shared {
    pub session: SessionState,
    pub last_error: Option<String>,
    pub counters: EvpnCounters,
    /// Routes the decisions refused (limits), on top of `counters`.
    pub state_refused: u64,
    pub vtep: Option<String>,
    pub local_ip: Option<Ipv4Addr>,
    pub vnis: Vec<state::VniFigures>,
}

struct Running {
    spec: EvpnSpec,
    shared: Arc<Mutex<Shared>>,
    stop: tokio::sync::watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// The EVPN sessions of every bridge, owned by the control executor.
#[derive(Default)]
pub struct EvpnManager {
    running: HashMap<String, Running>,
}

/// How long `evpn del` waits for a session to withdraw its routes.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

impl EvpnManager {
    /// Whether this build can talk to GoBGP.
    pub const AVAILABLE: bool = cfg!(gobgp_api);

    /// Starts (or restarts with a new spec) the session of `bridge`. Must
    /// be called inside the tokio runtime.
    pub async fn start(&mut self, bridge: &str, spec: EvpnSpec, dp: Commander) {
        if self.running.get(bridge).is_some_and(|r| r.spec == spec) {
            return;
        }
        self.stop(bridge).await;
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let task = Self::spawn(bridge, &spec, dp, shared.clone(), stop_rx);
        self.running.insert(
            bridge.to_string(),
            Running {
                spec,
                shared,
                stop,
                task,
            },
        );
    }

    #[cfg(gobgp_api)]
    fn spawn(
        bridge: &str,
        spec: &EvpnSpec,
        dp: Commander,
        shared: Arc<Mutex<Shared>>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let s = session::Session::new(bridge.to_string(), spec.clone(), dp, shared);
        Some(tokio::spawn(s.run(stop)))
    }

    #[cfg(not(gobgp_api))]
    fn spawn(
        _bridge: &str,
        _spec: &EvpnSpec,
        _dp: Commander,
        shared: Arc<Mutex<Shared>>,
        _stop: tokio::sync::watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if let Ok(mut s) = shared.lock() {
            s.session = SessionState::Unavailable;
            s.last_error = Some(UNAVAILABLE.into());
        }
        None
    }

    /// Stops `bridge`'s session: it withdraws its routes from gobgpd (if
    /// reachable) and removes what it installed in the datapath.
    pub async fn stop(&mut self, bridge: &str) {
        let Some(mut r) = self.running.remove(bridge) else {
            return;
        };
        let _ = r.stop.send(true);
        if let Some(task) = r.task.take() {
            if tokio::time::timeout(STOP_TIMEOUT, task).await.is_err() {
                tracing::warn!(bridge, "EVPN session did not stop in time");
            }
        }
    }

    /// Every bridge's report, for metrics.
    pub fn reports(&self) -> Vec<EvpnReport> {
        let mut bridges: Vec<&String> = self.running.keys().collect();
        bridges.sort();
        bridges.into_iter().filter_map(|b| self.report(b)).collect()
    }

    /// What `vsctl evpn show` prints: the configuration and the session.
    pub fn report(&self, bridge: &str) -> Option<EvpnReport> {
        let r = self.running.get(bridge)?;
        let shared = r.shared.lock().ok()?.clone();
        let me_rd = |vni: u32| format!("{}:{}", r.spec.router_id, vni & 0xffff);
        let mut counters = shared.counters;
        counters.routes_refused += shared.state_refused;
        Some(EvpnReport {
            bridge: bridge.to_string(),
            gobgp: r.spec.gobgp.clone(),
            asn: r.spec.asn,
            router_id: r.spec.router_id.to_string(),
            vtep: shared.vtep.clone(),
            local_ip: shared.local_ip,
            learning: r.spec.learning,
            max_macs: r.spec.max_macs,
            max_vteps: r.spec.max_vteps,
            session: shared.session,
            last_error: shared.last_error.clone(),
            counters,
            vnis: shared
                .vnis
                .iter()
                .map(|v| VniReport {
                    vni: v.vni,
                    vlan: v.vlan,
                    rd: me_rd(v.vni),
                    rt: format!("{}:{}", r.spec.asn, v.vni),
                    local_macs: v.local_macs,
                    remote_macs: v.remote_macs,
                    vteps: v.vteps.clone(),
                })
                .collect(),
        })
    }
}

/// Why a build without the GoBGP API cannot run EVPN.
pub const UNAVAILABLE: &str = "this vswitchd was built without the GoBGP API: install \
     golang-github-osrg-gobgp-dev, protobuf-compiler and libprotobuf-dev and rebuild \
     (docs/evpn.md)";
