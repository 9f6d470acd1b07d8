//! `vsctl iface list`: the host's network interfaces, as the daemon sees
//! them (netlink), and which bridge and port of the switch uses each.

use std::path::Path;

use anyhow::Context;
use clap::Subcommand;
use vswitch::control::protocol::{HostIface, Request};

use crate::client;
use crate::render::table;

#[derive(Debug, Subcommand)]
pub enum IfaceCmd {
    /// List the host's interfaces: link state, carrier, speed, MTU, MAC, driver, and the bridge
    /// and port that use each.
    List,
}

pub fn list(socket: &Path, json: bool) -> anyhow::Result<String> {
    let data = client::call(socket, &Request::IfaceList)?;
    if json {
        return Ok(serde_json::to_string_pretty(&data)?);
    }
    let rows: Vec<HostIface> =
        serde_json::from_value(data).context("unexpected reply shape from vswitchd")?;
    let dash = || "-".to_string();
    Ok(table(
        &[
            "IFACE", "KIND", "STATE", "CARRIER", "SPEED", "MTU", "MAC", "DRIVER", "BRIDGE", "PORT",
        ],
        rows.into_iter()
            .map(|i| {
                let port = match (&i.port, i.role.as_deref()) {
                    (Some(p), Some("bond member")) => format!("{p} (member)"),
                    (Some(p), _) => p.clone(),
                    (None, _) => dash(),
                };
                vec![
                    i.name,
                    i.kind,
                    if i.admin_up { "up" } else { "down" }.to_string(),
                    if i.carrier { "yes" } else { "no" }.to_string(),
                    i.speed_mbps
                        .map(|s| format!("{s}Mb/s"))
                        .unwrap_or_else(dash),
                    i.mtu.to_string(),
                    i.mac.unwrap_or_else(dash),
                    i.driver.unwrap_or_else(dash),
                    i.bridge.unwrap_or_else(dash),
                    port,
                ]
            })
            .collect(),
    ))
}
