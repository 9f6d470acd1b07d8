//! A snapshot as Prometheus text: every family, its labels and its help.
//! `docs/metrics.md` lists the same families; keep the two in step.

use std::collections::HashMap;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Bucket, Histogram, Metric, MetricFamily, MetricType};
use prometheus::{Encoder, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

use super::{LoopCounters, Snapshot};
use crate::pipeline::counters::DropReason;

/// The LACP state bit "Synchronization" (802.1AX-2014, 6.4.2.3).
const LACP_STATE_SYNC: u8 = 0x08;

type Result<T> = std::result::Result<T, prometheus::Error>;

/// A registry built for one scrape.
struct Families(Registry);

impl Families {
    fn counter(&self, name: &str, help: &str, labels: &[&str]) -> Result<IntCounterVec> {
        let v = IntCounterVec::new(Opts::new(name, help), labels)?;
        self.0.register(Box::new(v.clone()))?;
        Ok(v)
    }

    fn gauge(&self, name: &str, help: &str, labels: &[&str]) -> Result<IntGaugeVec> {
        let v = IntGaugeVec::new(Opts::new(name, help), labels)?;
        self.0.register(Box::new(v.clone()))?;
        Ok(v)
    }
}

fn add(v: &IntCounterVec, labels: &[&str], n: u64) -> Result<()> {
    v.get_metric_with_label_values(labels)?.inc_by(n);
    Ok(())
}

fn set(v: &IntGaugeVec, labels: &[&str], n: u64) -> Result<()> {
    v.get_metric_with_label_values(labels)?
        .set(i64::try_from(n).unwrap_or(i64::MAX));
    Ok(())
}

fn flag(v: &IntGaugeVec, labels: &[&str], on: bool) -> Result<()> {
    set(v, labels, u64::from(on))
}

/// Encodes `snap` in the Prometheus text format (version 0.0.4).
pub fn encode(snap: &Snapshot) -> Result<String> {
    let f = Families(Registry::new());
    ports(&f, snap)?;
    fdb(&f, snap)?;
    bonds(&f, snap)?;
    vxlan(&f, snap)?;
    evpn(&f, snap)?;
    datapath(&f, snap)?;
    let mut out = Vec::new();
    TextEncoder::new().encode(&f.0.gather(), &mut out)?;
    String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
}

fn ports(f: &Families, snap: &Snapshot) -> Result<()> {
    let l = &["bridge", "port"];
    let rx_p = f.counter(
        "vswitch_port_rx_packets_total",
        "Frames received on the port (vsctl stats rx_packets).",
        l,
    )?;
    let rx_b = f.counter(
        "vswitch_port_rx_bytes_total",
        "Bytes of the frames received on the port (vsctl stats rx_bytes).",
        l,
    )?;
    let tx_p = f.counter(
        "vswitch_port_tx_packets_total",
        "Frames sent out of the port (vsctl stats tx_packets).",
        l,
    )?;
    let tx_b = f.counter(
        "vswitch_port_tx_bytes_total",
        "Bytes of the frames sent out of the port (vsctl stats tx_bytes).",
        l,
    )?;
    let drops = f.counter(
        "vswitch_port_drops_total",
        "Frames dropped on the port, by reason (the drop reasons of vsctl stats).",
        &["bridge", "port", "reason"],
    )?;
    for p in &snap.ports {
        let l = &[p.bridge.as_str(), p.port.as_str()];
        add(&rx_p, l, p.rx_packets)?;
        add(&rx_b, l, p.rx_bytes)?;
        add(&tx_p, l, p.tx_packets)?;
        add(&tx_b, l, p.tx_bytes)?;
        // Every reason, zeros included, so a rate() never starts from a gap.
        for reason in DropReason::ALL {
            let n = p.drops.get(reason.name()).copied().unwrap_or(0);
            add(&drops, &[&p.bridge, &p.port, reason.name()], n)?;
        }
    }
    Ok(())
}

fn fdb(f: &Families, snap: &Snapshot) -> Result<()> {
    let entries = f.gauge(
        "vswitch_fdb_entries",
        "Forwarding table entries (learned and static) per bridge and VLAN (0: untagged in the default mode).",
        &["bridge", "vlan"],
    )?;
    let max = f.gauge(
        "vswitch_fdb_max_entries",
        "Size of the bridge's forwarding table (mac_table_size).",
        &["bridge"],
    )?;
    let refused = f.counter(
        "vswitch_fdb_learning_refused_total",
        "New source MACs not learned because the bridge's table was full (bridge list learn_refused).",
        &["bridge"],
    )?;
    let moves = f.counter(
        "vswitch_fdb_moves_total",
        "Learned MACs that moved from one port to another.",
        &["bridge"],
    )?;
    let aged = f.counter(
        "vswitch_fdb_aged_out_total",
        "Learned entries removed because they were not seen for the bridge's aging time.",
        &["bridge"],
    )?;
    for b in &snap.bridges {
        let l = &[b.name.as_str()];
        set(&max, l, b.max_entries as u64)?;
        add(&refused, l, b.fdb_counters.learn_refused)?;
        add(&moves, l, b.fdb_counters.moves)?;
        add(&aged, l, b.fdb_counters.aged_out)?;
    }
    for (bridge, per_vlan) in &snap.datapath.fdb_entries {
        for (vlan, n) in per_vlan {
            set(&entries, &[bridge, &vlan.to_string()], *n as u64)?;
        }
    }
    Ok(())
}

fn bonds(f: &Families, snap: &Snapshot) -> Result<()> {
    let failovers = f.counter(
        "vswitch_bond_failovers_total",
        "Times another member of the bond became active (active-backup).",
        &["bond"],
    )?;
    let m = &["bond", "member"];
    let up = f.gauge(
        "vswitch_bond_member_up",
        "1 when the member's link is up (administratively and carrier), else 0.",
        m,
    )?;
    let active = f.gauge(
        "vswitch_bond_member_active",
        "1 when the member is the bond's active member (active-backup), else 0.",
        m,
    )?;
    let collecting = f.gauge(
        "vswitch_bond_member_collecting",
        "1 when frames received on the member are passed up to the bridge, else 0.",
        m,
    )?;
    let distributing = f.gauge(
        "vswitch_bond_member_distributing",
        "1 when the bond may send frames through the member, else 0.",
        m,
    )?;
    let member_counter =
        |what: &str, help: &str| f.counter(&format!("vswitch_bond_member_{what}_total"), help, m);
    let rx_p = member_counter("rx_packets", "Frames received on the member.")?;
    let rx_b = member_counter("rx_bytes", "Bytes received on the member.")?;
    let tx_p = member_counter("tx_packets", "Frames sent through the member.")?;
    let tx_b = member_counter("tx_bytes", "Bytes sent through the member.")?;
    let pdus_in = f.counter(
        "vswitch_lacp_rx_pdus_total",
        "LACPDUs received on the member.",
        m,
    )?;
    let pdus_out = f.counter(
        "vswitch_lacp_tx_pdus_total",
        "LACPDUs sent through the member.",
        m,
    )?;
    let bad = f.counter(
        "vswitch_lacp_bad_pdus_total",
        "Malformed or unknown slow protocols PDUs received on the member, dropped.",
        m,
    )?;
    let sync = f.gauge(
        "vswitch_lacp_partner_synchronized",
        "1 when the LACP partner reports the member's link in sync (state bit S), else 0.",
        m,
    )?;
    for (bond, d) in &snap.bonds {
        add(&failovers, &[bond], d.failovers)?;
        for mem in &d.members {
            let l = &[bond.as_str(), mem.name.as_str()];
            flag(&up, l, mem.link_up)?;
            flag(&active, l, mem.active)?;
            flag(&collecting, l, mem.collecting)?;
            flag(&distributing, l, mem.distributing)?;
            add(&rx_p, l, mem.rx_packets)?;
            add(&rx_b, l, mem.rx_bytes)?;
            add(&tx_p, l, mem.tx_packets)?;
            add(&tx_b, l, mem.tx_bytes)?;
            if let Some(lacp) = &mem.lacp {
                add(&pdus_in, l, lacp.lacpdus_in)?;
                add(&pdus_out, l, lacp.lacpdus_out)?;
                add(&bad, l, lacp.bad_in)?;
                flag(&sync, l, lacp.partner.state & LACP_STATE_SYNC != 0)?;
            }
        }
    }
    Ok(())
}

fn vxlan(f: &Families, snap: &Snapshot) -> Result<()> {
    let l = &["port", "remote"];
    let rx_p = f.counter(
        "vswitch_vxlan_remote_rx_packets_total",
        "Frames decapsulated from the remote VTEP.",
        l,
    )?;
    let rx_b = f.counter(
        "vswitch_vxlan_remote_rx_bytes_total",
        "Bytes decapsulated from the remote VTEP.",
        l,
    )?;
    let tx_p = f.counter(
        "vswitch_vxlan_remote_tx_packets_total",
        "Frames encapsulated toward the remote VTEP.",
        l,
    )?;
    let tx_b = f.counter(
        "vswitch_vxlan_remote_tx_bytes_total",
        "Bytes encapsulated toward the remote VTEP.",
        l,
    )?;
    let resolved = f.gauge(
        "vswitch_vxlan_remote_resolved",
        "1 when ARP has resolved the next hop toward the remote VTEP, else 0.",
        l,
    )?;
    let macs = f.gauge(
        "vswitch_vxlan_remote_macs",
        "MACs the VTEP knows behind its remotes.",
        &["port"],
    )?;
    for (port, d) in &snap.vxlans {
        set(&macs, &[port], d.remote_macs)?;
        for r in &d.remotes {
            let l = &[port.as_str(), r.remote.as_str()];
            add(&rx_p, l, r.rx_packets)?;
            add(&rx_b, l, r.rx_bytes)?;
            add(&tx_p, l, r.tx_packets)?;
            add(&tx_b, l, r.tx_bytes)?;
            flag(&resolved, l, r.neighbor_mac.is_some())?;
        }
    }
    Ok(())
}

fn evpn(f: &Families, snap: &Snapshot) -> Result<()> {
    let b = &["bridge"];
    let established = f.gauge(
        "vswitch_evpn_session_established",
        "1 when the bridge's EVPN session with gobgpd is established, else 0.",
        b,
    )?;
    let counters = [
        ("vswitch_evpn_routes_sent_total", "Routes added to gobgpd."),
        (
            "vswitch_evpn_routes_withdrawn_total",
            "Routes removed from gobgpd.",
        ),
        (
            "vswitch_evpn_routes_received_total",
            "Route updates and withdrawals read from gobgpd.",
        ),
        (
            "vswitch_evpn_routes_refused_total",
            "Routes not installed: a limit, a full table, a static entry or a malformed route.",
        ),
        (
            "vswitch_evpn_reconnects_total",
            "Sessions with gobgpd lost and started again.",
        ),
    ]
    .iter()
    .map(|(name, help)| f.counter(name, help, b))
    .collect::<Result<Vec<_>>>()?;
    let v = &["bridge", "vni"];
    let local = f.gauge(
        "vswitch_evpn_local_macs",
        "MACs of the VNI advertised by this host.",
        v,
    )?;
    let remote = f.gauge(
        "vswitch_evpn_remote_macs",
        "MACs of the VNI installed from other VTEPs' routes.",
        v,
    )?;
    let vteps = f.gauge(
        "vswitch_evpn_remote_vteps",
        "Remote VTEPs in the VNI's flood list.",
        v,
    )?;
    for r in &snap.evpn {
        let br = r.bridge.as_str();
        flag(
            &established,
            &[br],
            r.session == crate::evpn::SessionState::Established,
        )?;
        let c = &r.counters;
        let values = [
            c.routes_sent,
            c.routes_withdrawn,
            c.routes_received,
            c.routes_refused,
            c.reconnects,
        ];
        for (family, n) in counters.iter().zip(values) {
            add(family, &[br], n)?;
        }
        for vni in &r.vnis {
            let l = &[br, &vni.vni.to_string()];
            set(&local, l, vni.local_macs as u64)?;
            set(&remote, l, vni.remote_macs as u64)?;
            set(&vteps, l, vni.vteps.len() as u64)?;
        }
    }
    Ok(())
}

fn datapath(f: &Families, snap: &Snapshot) -> Result<()> {
    // A datapath always has a worker; a snapshot without one shows zeros.
    let idle = [LoopCounters::default()];
    let workers = match &snap.datapath.per_worker[..] {
        [] => &idle[..],
        w => w,
    };
    let iterations = f.counter(
        "vswitch_datapath_iterations_total",
        "Poll loop iterations per datapath worker: busy ones received at least one frame, idle ones none.",
        &["worker", "state"],
    )?;
    let sleeps = f.counter(
        "vswitch_datapath_sleeps_total",
        "Times a datapath worker's poll loop blocked in epoll after an idle spell.",
        &["worker"],
    )?;
    for (w, c) in workers.iter().enumerate() {
        let w = w.to_string();
        add(&iterations, &[&w, "busy"], c.busy_iterations)?;
        add(&iterations, &[&w, "idle"], c.idle_iterations)?;
        add(&sleeps, &[&w], c.sleeps)?;
    }
    f.0.register(Box::new(BurstHistogram::new(snap)?))?;
    Ok(())
}

/// `vswitch_datapath_frames_per_batch`: a histogram whose buckets were
/// counted by the datapath, so it is built here rather than observed.
struct BurstHistogram {
    desc: Desc,
    family: MetricFamily,
}

const BURST_NAME: &str = "vswitch_datapath_frames_per_batch";
const BURST_HELP: &str = "Frames per non-empty receive burst (one port's rx_burst, at most 32).";

impl BurstHistogram {
    fn new(snap: &Snapshot) -> Result<Self> {
        let c = &snap.datapath.total();
        let desc = Desc::new(
            BURST_NAME.into(),
            BURST_HELP.into(),
            Vec::new(),
            HashMap::new(),
        )?;
        let buckets = c
            .cumulative_buckets()
            .iter()
            .map(|(le, n)| {
                let mut b = Bucket::default();
                b.set_upper_bound(*le as f64);
                b.set_cumulative_count(*n);
                b
            })
            .collect();
        let mut h = Histogram::default();
        h.set_bucket(buckets);
        h.set_sample_count(c.burst_count());
        h.set_sample_sum(c.burst_frames as f64);
        let mut m = Metric::default();
        m.set_histogram(h);
        let mut family = MetricFamily::default();
        family.set_name(BURST_NAME.into());
        family.set_help(BURST_HELP.into());
        family.set_field_type(MetricType::HISTOGRAM);
        family.set_metric(vec![m]);
        Ok(BurstHistogram { desc, family })
    }
}

impl Collector for BurstHistogram {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        vec![self.family.clone()]
    }
}

#[cfg(test)]
mod tests;
