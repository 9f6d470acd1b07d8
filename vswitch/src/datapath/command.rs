//! Commands the control thread sends to the datapath thread.
//!
//! Each carries a oneshot sender for its reply; the datapath answers after
//! applying the command between two bursts, so the control thread sees a
//! consistent state and the datapath never waits on anyone.

use tokio::sync::oneshot;

use crate::control::protocol::{FdbEntryInfo, PortStatsReport};
use crate::fdb::FdbCounters;
use crate::pipeline::admit::PortPolicy;
use crate::port::Port;
use crate::wire::MacAddr;

/// Why the datapath refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatapathError {
    #[error("no bridge {0:?}")]
    NoSuchBridge(String),
    #[error("bridge {0:?} exists already")]
    BridgeExists(String),
    #[error("no port {0:?}")]
    NoSuchPort(String),
    #[error("port {0:?} exists already")]
    PortExists(String),
    #[error("port {port:?} is not on bridge {bridge:?}")]
    PortNotOnBridge { port: String, bridge: String },
    #[error("no entry for {mac} in VLAN {vlan}")]
    NoSuchEntry { mac: MacAddr, vlan: u16 },
    #[error("the forwarding table of bridge {0:?} is full")]
    TableFull(String),
    #[error("could not register the port's descriptor for readiness: {0}")]
    Readiness(String),
    #[error("port {0:?} is not a tunnel, or does not carry that VLAN")]
    NotTunnel(String),
    #[error("worker={worker}: vswitchd runs {workers} datapath worker(s), 0 to {last}; start it with --workers {need} to use it", last = workers - 1, need = worker + 1)]
    NoSuchWorker { worker: usize, workers: usize },
    #[error("the datapath thread is not running")]
    Gone,
    #[error("port {0:?} already has a capture running (one capture per port)")]
    CaptureBusy(String),
    #[error("{0}")]
    Evpn(String),
    /// What a bridge on every worker (`workers=all`) cannot do.
    #[error("{0}")]
    Spread(String),
}

pub type Reply<T> = oneshot::Sender<Result<T, DatapathError>>;

/// What the datapath reports of a bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeState {
    pub name: String,
    pub ports: Vec<String>,
    pub fdb_entries: usize,
    pub fdb_counters: FdbCounters,
    pub aging_secs: u64,
    pub max_entries: usize,
    /// The datapath worker (thread) that runs the bridge and its ports
    /// (the first, for a bridge on every worker).
    pub worker: usize,
    /// Whether it runs on every worker (`workers=all`).
    pub spread: bool,
    /// For such a bridge: MACs a replica learned that did not reach the
    /// others (`fdb::replica`).
    pub macs_unshared: u64,
}

pub enum Command {
    AddBridge {
        name: String,
        aging_secs: u64,
        max_entries: usize,
        /// The worker to run it on; None, or one that does not exist (a
        /// configuration from a daemon with more workers): the least
        /// loaded.
        worker: Option<usize>,
        /// Run it on every worker (`workers=all`), each with a share of its
        /// ports' queues, instead of on one.
        spread: bool,
        reply: Reply<()>,
    },
    /// The commander's order to one worker: hold a replica of a bridge on
    /// every worker, at the bridge index `slot` (the same on all).
    AddBridgeReplica {
        name: String,
        aging_secs: u64,
        max_entries: usize,
        slot: usize,
        reply: Reply<()>,
    },
    SetBridge {
        bridge: String,
        aging_secs: u64,
        /// Move the bridge (and every bridge joined to it by a tunnel) to
        /// this worker; None: leave it where it runs.
        worker: Option<usize>,
        reply: Reply<()>,
    },
    DelBridge {
        name: String,
        reply: Reply<()>,
    },
    AddPort {
        bridge: String,
        name: String,
        port: Box<dyn Port>,
        policy: PortPolicy,
        reply: Reply<()>,
    },
    /// A port of a bridge on every worker: one shard (its own queues or
    /// socket) per worker, in worker order.
    AddPortShards {
        bridge: String,
        name: String,
        shards: Vec<Box<dyn Port>>,
        policy: PortPolicy,
        reply: Reply<()>,
    },
    /// The commander's order to one worker: add its shard of such a port,
    /// at the port index `slot` (the same on all).
    AddPortReplica {
        bridge: String,
        name: String,
        port: Box<dyn Port>,
        policy: PortPolicy,
        slot: usize,
        reply: Reply<()>,
    },
    SetPortPolicy {
        name: String,
        policy: PortPolicy,
        reply: Reply<()>,
    },
    /// Removes a port; the reply hands the backend (every shard of a port
    /// on every worker) back so the control thread closes it (closing a
    /// tap or ring can take a while).
    DelPort {
        name: String,
        reply: Reply<Vec<Box<dyn Port>>>,
    },
    FdbAdd {
        bridge: String,
        vlan: u16,
        mac: MacAddr,
        port: String,
        /// For a tunnel port: the remote endpoint the MAC is behind.
        remote: Option<std::net::Ipv4Addr>,
        reply: Reply<()>,
    },
    FdbDel {
        bridge: String,
        vlan: u16,
        mac: MacAddr,
        reply: Reply<()>,
    },
    FdbFlush {
        bridge: String,
        reply: Reply<()>,
    },
    FdbDump {
        bridge: String,
        reply: Reply<Vec<FdbEntryInfo>>,
    },
    Bridges {
        reply: Reply<Vec<BridgeState>>,
    },
    Stats {
        reply: Reply<Vec<PortStatsReport>>,
    },
    /// `frame` through `bridge` as if received on `in_port`, changing
    /// nothing.
    Trace {
        bridge: String,
        in_port: String,
        frame: Vec<u8>,
        reply: Reply<crate::pipeline::trace::TraceReport>,
    },
    /// What the port's backend reports of itself (`Port::details`).
    PortDetails {
        name: String,
        reply: Reply<Option<serde_json::Value>>,
    },
    /// The poll loop's own figures and the tables' entries per VLAN, for
    /// metrics (the other figures come from `Stats`, `Bridges` and
    /// `PortDetails`).
    Metrics {
        reply: Reply<crate::metrics::DatapathMetrics>,
    },
    /// Attaches a capture to a port (`vsctl capture`).
    CaptureStart {
        port: String,
        tap: Box<crate::capture::Tap>,
        reply: Reply<()>,
    },
    /// Detaches capture `id` from a port; the ring is the caller's again.
    CaptureStop {
        port: String,
        id: u64,
        reply: Reply<()>,
    },
    /// The hub monitors read events from (`vsctl monitor`); created at the
    /// first call.
    EventHub {
        reply: Reply<std::sync::Arc<crate::events::Hub>>,
    },
    /// Makes this worker report to the hub another worker created (every
    /// worker's events reach the same monitors).
    AdoptEventHub {
        hub: std::sync::Arc<crate::events::Hub>,
        reply: Reply<()>,
    },
    /// Takes bridges, their ports and tables out of this worker, to hand
    /// them to another (`ImportBridges`).
    ExportBridges {
        names: Vec<String>,
        reply: Reply<Vec<super::BridgeBundle>>,
    },
    ImportBridges {
        bundles: Vec<super::BridgeBundle>,
        reply: Reply<()>,
    },
    /// Hands a bridge's table and VXLAN port to the EVPN control plane
    /// (`journal` Some), or takes them back (None: every EVPN entry goes).
    EvpnAttach {
        bridge: String,
        /// The VXLAN port; None: the bridge's only one.
        vtep: Option<String>,
        journal: Option<std::sync::Arc<crate::fdb::MacJournal>>,
        /// Whether tunnel traffic still teaches the tables.
        learning: bool,
        reply: Reply<crate::evpn::Topology>,
    },
    /// Remote MACs and flood lists from BGP.
    EvpnUpdate {
        bridge: String,
        ops: Vec<crate::evpn::TunnelOp>,
        reply: Reply<crate::evpn::UpdateOutcome>,
    },
    /// Every MAC behind a local port of the bridge, as (VLAN, MAC).
    EvpnLocalMacs {
        bridge: String,
        reply: Reply<Vec<(u16, MacAddr)>>,
    },
    Shutdown,
}
