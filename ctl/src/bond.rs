//! `vsctl bond show [PORT]` and `vsctl lacp show [PORT]`: the `port_show`
//! details of bond ports as tables (all bond ports when PORT is omitted);
//! `--json` prints the `port_show` replies as a list.

use std::path::Path;

use anyhow::{bail, Context};
use clap::Subcommand;
use vswitch::control::protocol::{PortDetails, PortInfo, Request};
use vswitch::port::bond::details::{BondDetails, PortInfoDetails, SystemInfo};

use crate::client;
use crate::render::table;

#[derive(Debug, Subcommand)]
pub enum BondCmd {
    /// Bond ports: mode, members, link state, active/collecting/distributing, traffic.
    Show {
        /// Only this bond port.
        port: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum LacpCmd {
    /// LACP of bond ports: actor and partner system/key/port/state, machine states, PDU counters.
    Show {
        /// Only this bond port.
        port: Option<String>,
    },
}

/// The port_show replies of one bond port, or of every one.
fn fetch(socket: &Path, port: Option<&str>) -> anyhow::Result<Vec<PortDetails>> {
    let show = |p: &str| -> anyhow::Result<PortDetails> {
        let data = client::call(socket, &Request::PortShow { port: p.into() })?;
        serde_json::from_value(data).context("unexpected reply shape from vswitchd")
    };
    if let Some(p) = port {
        let d = show(p)?;
        if d.info.kind != "bond" {
            bail!("port {p:?} is not a bond (type {})", d.info.kind);
        }
        return Ok(vec![d]);
    }
    let list = client::call(socket, &Request::PortList { bridge: None })?;
    let ports: Vec<PortInfo> =
        serde_json::from_value(list).context("unexpected reply shape from vswitchd")?;
    ports
        .iter()
        .filter(|p| p.kind == "bond")
        .map(|p| show(&p.name))
        .collect()
}

fn bond_of(p: &PortDetails) -> anyhow::Result<Option<BondDetails>> {
    p.details
        .clone()
        .map(serde_json::from_value)
        .transpose()
        .context("unexpected bond details from vswitchd")
}

fn yes(b: bool) -> String {
    if b { "yes" } else { "-" }.to_string()
}

fn system(s: &SystemInfo) -> String {
    format!("{},{} key {}", s.system_priority, s.system, s.key)
}

fn port_info(p: &PortInfoDetails) -> String {
    format!(
        "{},{} key {} port {},{}",
        p.system_priority, p.system, p.key, p.port_priority, p.port
    )
}

pub fn bond_show(socket: &Path, port: Option<&str>, json: bool) -> anyhow::Result<String> {
    let ports = fetch(socket, port)?;
    if json {
        return Ok(serde_json::to_string_pretty(&ports)?);
    }
    render_bonds(&ports)
}

pub fn lacp_show(socket: &Path, port: Option<&str>, json: bool) -> anyhow::Result<String> {
    let mut ports = fetch(socket, port)?;
    let lacp_mode =
        |p: &PortDetails| p.info.options.get("mode").map(String::as_str) == Some("lacp");
    if let (Some(p), Some(d)) = (port, ports.first()) {
        if !lacp_mode(d) {
            bail!("bond {p:?} is not in mode=lacp");
        }
    }
    ports.retain(lacp_mode);
    if json {
        return Ok(serde_json::to_string_pretty(&ports)?);
    }
    render_lacp(&ports)
}

pub fn render_bonds(ports: &[PortDetails]) -> anyhow::Result<String> {
    let mut out = Vec::new();
    for p in ports {
        let Some(b) = bond_of(p)? else {
            out.push(format!(
                "{} (bridge {}): {}",
                p.info.name, p.info.bridge, p.info.status
            ));
            continue;
        };
        let mut head = format!(
            "{} (bridge {}): mode {}",
            p.info.name, p.info.bridge, b.mode
        );
        if let Some(h) = &b.hash {
            head.push_str(&format!(", hash {h}"));
        }
        if b.mode == "active-backup" {
            head.push_str(&format!(
                ", active {}, failovers {}",
                b.active.as_deref().unwrap_or("none"),
                b.failovers
            ));
        }
        if let Some(pr) = &b.primary {
            head.push_str(&format!(", primary {pr}"));
        }
        out.push(head);
        out.push(table(
            &[
                "MEMBER",
                "LINK",
                "ACTIVE",
                "COLLECTING",
                "DISTRIBUTING",
                "RX_PKTS",
                "TX_PKTS",
            ],
            b.members
                .iter()
                .map(|m| {
                    vec![
                        m.name.clone(),
                        if m.link_up { "up" } else { "down" }.into(),
                        yes(m.active),
                        yes(m.collecting),
                        yes(m.distributing),
                        m.rx_packets.to_string(),
                        m.tx_packets.to_string(),
                    ]
                })
                .collect(),
        ));
    }
    Ok(out.join("\n"))
}

pub fn render_lacp(ports: &[PortDetails]) -> anyhow::Result<String> {
    let mut out = Vec::new();
    for p in ports {
        let Some(b) = bond_of(p)? else {
            out.push(format!("{}: {}", p.info.name, p.info.status));
            continue;
        };
        let Some(l) = &b.lacp else {
            continue;
        };
        out.push(format!(
            "{}: actor {}, partner {}, rate {}, fallback {}",
            p.info.name,
            system(&l.actor),
            l.partner
                .as_ref()
                .map(system)
                .unwrap_or_else(|| "none".into()),
            l.rate,
            if l.fallback { "on" } else { "off" }
        ));
        let mut rows = Vec::new();
        let mut ports_line = Vec::new();
        for m in &b.members {
            let Some(lm) = &m.lacp else { continue };
            rows.push(vec![
                m.name.clone(),
                lm.rx_state.clone(),
                lm.mux_state.clone(),
                lm.selected.clone(),
                lm.actor.state_flags.clone(),
                lm.partner.state_flags.clone(),
                lm.lacpdus_in.to_string(),
                lm.lacpdus_out.to_string(),
                lm.bad_in.to_string(),
            ]);
            ports_line.push(format!(
                "  {}: actor {}; partner {}",
                m.name,
                port_info(&lm.actor),
                port_info(&lm.partner)
            ));
        }
        out.push(table(
            &[
                "MEMBER", "RX", "MUX", "SELECTED", "ACTOR", "PARTNER", "PDUS_IN", "PDUS_OUT", "BAD",
            ],
            rows,
        ));
        out.extend(ports_line);
    }
    if !out.is_empty() {
        out.push(
            "state: A activity, T short timeout, G aggregation, S sync, C collecting, \
             D distributing, F defaulted, E expired"
                .into(),
        );
    }
    Ok(out.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<PortDetails> {
        let info = |state: u8, flags: &str| {
            serde_json::json!({
                "system_priority": 65535, "system": "02:00:00:00:00:01", "key": 1,
                "port_priority": 255, "port": 1, "state": state, "state_flags": flags,
                "state_names": []
            })
        };
        let v = serde_json::json!([{
            "bridge": "br0", "name": "bond0", "type": "bond", "iface": "bond0", "status": "up",
            "options": {"type": "bond", "members": "e0,e1", "mode": "lacp"},
            "details": {
                "mode": "lacp", "hash": "l34", "primary": null, "active": null,
                "failovers": 0, "slow_ignored": 0,
                "lacp": {"rate": "fast", "fallback": false,
                         "actor": {"system_priority": 65535, "system": "02:00:00:00:00:01", "key": 1},
                         "partner": {"system_priority": 100, "system": "02:00:00:00:00:02", "key": 7}},
                "members": [{
                    "name": "e0", "link_up": true, "active": false, "collecting": true,
                    "distributing": true, "rx_packets": 10, "rx_bytes": 1000,
                    "tx_packets": 20, "tx_bytes": 2000,
                    "lacp": {"rx_state": "current", "mux_state": "distributing",
                             "periodic_state": "fast_periodic", "selected": "selected",
                             "actor": info(0x3f, "ATGSCD.."), "partner": info(0x3d, "A.GSCD.."),
                             "lacpdus_in": 5, "lacpdus_out": 6, "bad_in": 1,
                             "markers_in": 0, "marker_responses_out": 0}
                }, {
                    "name": "e1", "link_up": false, "active": false, "collecting": false,
                    "distributing": false, "rx_packets": 0, "rx_bytes": 0,
                    "tx_packets": 0, "tx_bytes": 0, "lacp": null
                }]
            }
        }]);
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn bond_table() {
        let out = render_bonds(&sample()).unwrap();
        assert!(
            out.starts_with("bond0 (bridge br0): mode lacp, hash l34"),
            "{out}"
        );
        assert!(
            out.contains("e0      up    -       yes         yes           10       20"),
            "{out}"
        );
        assert!(out.contains("e1      down"), "{out}");
    }

    #[test]
    fn lacp_table() {
        let out = render_lacp(&sample()).unwrap();
        assert!(
            out.contains("partner 100,02:00:00:00:00:02 key 7, rate fast"),
            "{out}"
        );
        assert!(
            out.contains("current  distributing  selected  ATGSCD..  A.GSCD..  5"),
            "{out}"
        );
        assert!(
            out.contains("e0: actor 65535,02:00:00:00:00:01 key 1 port 255,1"),
            "{out}"
        );
    }
}
