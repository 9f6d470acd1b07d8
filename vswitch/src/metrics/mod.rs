//! Metrics in the Prometheus text exposition format: `vsctl metrics` and,
//! with `vswitchd --metrics-listen ADDR:PORT`, `GET /metrics` over HTTP.
//!
//! Nothing here reads datapath memory. A scrape asks the datapath for the
//! same replies the other read commands use (`Command::Stats` as `vsctl
//! stats`, `Command::Bridges` as `bridge list`, `Command::PortDetails` of
//! bonds and VTEPs as `port show`) plus `Command::Metrics` for the poll
//! loop's own figures and the table's entries per VLAN, then encodes that
//! snapshot. So a scrape shows the numbers `vsctl` shows, and costs the
//! datapath a few command replies between two bursts, never a lock.
//!
//! The text encoder is the `prometheus` crate's (version 0.0.4 of the text
//! format, which `promtool check metrics` lints and every Prometheus
//! scrapes). The design named `prometheus-client`, but that crate writes
//! only OpenMetrics text, whose counters (`# TYPE x counter` over samples
//! named `x_total`) Debian's promtool rejects as untyped metrics without
//! help (prometheus/client_rust#51).

mod encode;
pub mod http;
mod loop_counters;

use std::collections::BTreeMap;

use serde::Deserialize;

pub use encode::encode;
pub use loop_counters::{LoopCounters, BURST_BUCKETS};

use crate::control::protocol::PortStatsReport;
use crate::datapath::{BridgeState, Command, DatapathError, DatapathHandle};
use crate::port::bond::details::BondDetails;

/// What `Command::Metrics` returns: the figures no other command reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatapathMetrics {
    /// Each datapath worker's poll-loop figures, in worker order.
    pub per_worker: Vec<LoopCounters>,
    /// Per bridge, the table's entries per VLAN (only VLANs with entries).
    pub fdb_entries: Vec<(String, BTreeMap<u16, usize>)>,
}

impl DatapathMetrics {
    /// The workers' figures summed.
    pub fn total(&self) -> LoopCounters {
        let mut sum = LoopCounters::default();
        for c in &self.per_worker {
            sum.add(c);
        }
        sum
    }
}

/// One remote VTEP of a VXLAN port, as its `port show` details report it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct VxlanRemote {
    pub remote: String,
    /// The next hop's MAC, once ARP resolved it.
    #[serde(default)]
    pub neighbor_mac: Option<String>,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

/// The part of a VXLAN port's `port show` details that metrics show.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct VxlanDetails {
    pub remotes: Vec<VxlanRemote>,
    /// MACs learned behind the VTEP's remotes.
    #[serde(default)]
    pub remote_macs: u64,
}

/// Everything one scrape shows, gathered from the datapath's replies.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub ports: Vec<PortStatsReport>,
    pub bridges: Vec<BridgeState>,
    pub datapath: DatapathMetrics,
    /// (bond port, its details).
    pub bonds: Vec<(String, BondDetails)>,
    /// (vxlan port, its details).
    pub vxlans: Vec<(String, VxlanDetails)>,
    /// Bridges' EVPN sessions (`vsctl evpn show`).
    pub evpn: Vec<crate::evpn::EvpnReport>,
}

/// Asks the datapath for a snapshot. `ports` lists the running ports as
/// (name, type); the details of those of type `bond` and `vxlan` are read
/// (a port deleted meanwhile, or details of an unexpected shape, are left
/// out rather than failing the scrape).
pub async fn gather(
    datapath: &DatapathHandle,
    ports: &[(String, String)],
) -> Result<Snapshot, DatapathError> {
    let mut snap = Snapshot {
        ports: datapath.call(|reply| Command::Stats { reply }).await?,
        bridges: datapath.call(|reply| Command::Bridges { reply }).await?,
        datapath: datapath.call(|reply| Command::Metrics { reply }).await?,
        ..Snapshot::default()
    };
    for (name, kind) in ports {
        if kind != "bond" && kind != "vxlan" {
            continue;
        }
        let details = match datapath
            .call(|reply| Command::PortDetails {
                name: name.clone(),
                reply,
            })
            .await
        {
            Ok(Some(d)) => d,
            Ok(None) | Err(DatapathError::NoSuchPort(_)) => continue,
            Err(e) => return Err(e),
        };
        if kind == "bond" {
            match serde_json::from_value::<BondDetails>(details) {
                Ok(b) => snap.bonds.push((name.clone(), b)),
                Err(e) => tracing::debug!(port = %name, "bond details not understood: {e}"),
            }
        } else {
            let vxlan = details.get("vxlan").cloned().unwrap_or_default();
            match serde_json::from_value::<VxlanDetails>(vxlan) {
                Ok(v) => snap.vxlans.push((name.clone(), v)),
                Err(e) => tracing::debug!(port = %name, "vxlan details not understood: {e}"),
            }
        }
    }
    Ok(snap)
}
