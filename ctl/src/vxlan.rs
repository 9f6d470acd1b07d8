//! `vsctl vxlan show`: the VTEPs, from each VXLAN port's `port show`.

use std::path::Path;

use anyhow::bail;
use serde_json::Value;
use vswitch::control::protocol::{PortDetails, PortInfo, Request};

use crate::client::call;

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn show(socket: &Path, only: Option<&str>, json: bool) -> anyhow::Result<String> {
    let ports: Vec<PortInfo> =
        serde_json::from_value(call(socket, &Request::PortList { bridge: None })?)?;
    let mut shown = Vec::new();
    for p in ports.iter().filter(|p| p.kind == "vxlan") {
        if only.is_some_and(|o| o != p.name) {
            continue;
        }
        let d: PortDetails = serde_json::from_value(call(
            socket,
            &Request::PortShow {
                port: p.name.clone(),
            },
        )?)?;
        shown.push(d);
    }
    if let Some(o) = only {
        if shown.is_empty() {
            bail!("no vxlan port {o:?}");
        }
    }
    if json {
        return Ok(serde_json::to_string_pretty(&shown)?);
    }
    let mut out = Vec::new();
    for d in &shown {
        let Some(v) = d.details.as_ref().and_then(|d| d.get("vxlan")) else {
            out.push(format!(
                "{} ({}): {}",
                d.info.name, d.info.bridge, d.info.status
            ));
            continue;
        };
        let vnis: Vec<String> = v["vnis"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| match m["vlan"].as_u64() {
                Some(0) | None => format!("{} (untagged)", m["vni"]),
                Some(vlan) => format!("{} (vlan {vlan})", m["vni"]),
            })
            .collect();
        out.push(format!(
            "{} on bridge {}: VTEP {}/{} mac {} via underlay {}, udp {}, gateway {}",
            d.info.name,
            d.info.bridge,
            text(&v["local"]),
            text(&v["prefix_len"]),
            text(&v["mac"]),
            text(&v["underlay"]),
            text(&v["dst_port"]),
            text(&v["gateway"]),
        ));
        out.push(format!(
            "  VNIs: {}   inner MTU {}   remote MACs {}",
            vnis.join(", "),
            text(&v["inner_mtu"]),
            text(&v["remote_macs"])
        ));
        out.push(format!(
            "  {:<16} {:<16} {:<11} {:<18} {:>10} {:>10}",
            "REMOTE", "NEXT_HOP", "NEIGHBOR", "NEIGHBOR_MAC", "TX_PKTS", "RX_PKTS"
        ));
        for r in v["remotes"].as_array().into_iter().flatten() {
            out.push(format!(
                "  {:<16} {:<16} {:<11} {:<18} {:>10} {:>10}",
                text(&r["remote"]),
                text(&r["next_hop"]),
                text(&r["neighbor"]),
                text(&r["neighbor_mac"]),
                text(&r["tx_packets"]),
                text(&r["rx_packets"]),
            ));
        }
    }
    Ok(out.join("\n"))
}
