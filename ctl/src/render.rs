//! Reply data as tables for people, or as JSON for scripts.

use anyhow::Context;
use serde::de::DeserializeOwned;
use vswitch::control::protocol::{
    BridgeInfo, FdbEntryInfo, FdbEntryKind, PortDetails, PortInfo, PortStatsReport, VersionInfo,
};

use crate::args::{BridgeCmd, Cmd, FdbCmd, PortCmd};

fn decode<T: DeserializeOwned>(data: serde_json::Value) -> anyhow::Result<T> {
    serde_json::from_value(data).context("unexpected reply shape from vswitchd")
}

/// Left-aligned columns, two spaces apart.
pub(crate) fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(header.to_vec())];
    for r in &rows {
        out.push(line(r.iter().map(String::as_str).collect()));
    }
    out.join("\n")
}

pub fn render(cmd: &Cmd, data: serde_json::Value, json: bool) -> anyhow::Result<String> {
    if let Cmd::Version = cmd {
        let v: VersionInfo = decode(data)?;
        let ctl = env!("CARGO_PKG_VERSION");
        return Ok(if json {
            serde_json::json!({"ctl": ctl, "daemon": v.daemon, "protocol": v.protocol}).to_string()
        } else {
            format!(
                "vsctl {ctl}\nvswitchd {} (protocol {})",
                v.daemon, v.protocol
            )
        });
    }
    if json {
        return Ok(serde_json::to_string_pretty(&data)?);
    }
    Ok(match cmd {
        Cmd::Trace { .. } => crate::trace::render(data)?,
        Cmd::Evpn(c) => crate::evpn::render(c, data)?,
        Cmd::Bridge(BridgeCmd::List) => {
            let rows: Vec<BridgeInfo> = decode(data)?;
            table(
                &[
                    "BRIDGE",
                    "AGING",
                    "MACS",
                    "MAX",
                    "MOVES",
                    "REFUSED",
                    "GUEST_VLANS",
                    "WORKER",
                    "PORTS",
                ],
                rows.into_iter()
                    .map(|b| {
                        vec![
                            b.name,
                            format!("{}s", b.aging_secs),
                            b.fdb_entries.to_string(),
                            b.mac_table_size.to_string(),
                            b.fdb_moves.to_string(),
                            b.learn_refused.to_string(),
                            b.guest_vlans.unwrap_or_else(|| "-".into()),
                            if b.all_workers {
                                "all".to_string()
                            } else {
                                b.worker.map_or_else(|| "-".into(), |w| w.to_string())
                            },
                            b.ports.join(","),
                        ]
                    })
                    .collect(),
            )
        }
        Cmd::Port(PortCmd::List { .. }) => {
            let rows: Vec<PortInfo> = decode(data)?;
            table(
                &["BRIDGE", "PORT", "TYPE", "IFACE", "VLAN", "STATUS"],
                rows.into_iter()
                    .map(|p| vec![p.bridge, p.name, p.kind, p.iface, p.vlan_mode, p.status])
                    .collect(),
            )
        }
        Cmd::Port(PortCmd::Show { .. }) => {
            let p: PortDetails = decode(data)?;
            let mut out = vec![
                format!("port:    {}", p.info.name),
                format!("bridge:  {}", p.info.bridge),
                format!("type:    {}", p.info.kind),
                format!("iface:   {}", p.info.iface),
                format!("status:  {}", p.info.status),
                format!("vlan:    {}", p.info.vlan_mode),
            ];
            let o = &p.info.options;
            let policy = [
                ("allowed_macs", "allowed source MACs"),
                ("max_macs", "MAC limit"),
                ("storm_pps", "flood limit (frames/s)"),
            ];
            for (key, what) in policy {
                out.push(format!(
                    "{what}: {}",
                    o.get(key).map(String::as_str).unwrap_or("none")
                ));
            }
            let options: Vec<String> = p
                .info
                .options
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            out.push(format!("options: {}", options.join(" ")));
            if let Some(d) = p.details {
                match crate::vhostuser::render(&d) {
                    Some(lines) => out.extend(lines),
                    None => out.push(format!("details: {}", serde_json::to_string_pretty(&d)?)),
                }
            }
            out.join("\n")
        }
        Cmd::Fdb(FdbCmd::Show { .. }) => {
            let rows: Vec<FdbEntryInfo> = decode(data)?;
            table(
                &["VLAN", "MAC", "PORT", "AGE", "TYPE", "REMOTE"],
                rows.into_iter()
                    .map(|e| {
                        let (age, kind) = match e.kind {
                            FdbEntryKind::Static => ("-".to_string(), "static"),
                            FdbEntryKind::Learned => (format!("{}s", e.age_secs), "learned"),
                            FdbEntryKind::Evpn => ("-".to_string(), "evpn"),
                        };
                        vec![
                            e.vlan.to_string(),
                            e.mac.to_string(),
                            e.port,
                            age,
                            kind.into(),
                            e.remote.unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect(),
            )
        }
        Cmd::Stats { .. } => {
            let rows: Vec<PortStatsReport> = decode(data)?;
            let mut out = table(
                &[
                    "BRIDGE", "PORT", "RX_PKTS", "RX_BYTES", "TX_PKTS", "TX_BYTES", "DROPS",
                ],
                rows.iter()
                    .map(|s| {
                        vec![
                            s.bridge.clone(),
                            s.port.clone(),
                            s.rx_packets.to_string(),
                            s.rx_bytes.to_string(),
                            s.tx_packets.to_string(),
                            s.tx_bytes.to_string(),
                            s.drops.values().sum::<u64>().to_string(),
                        ]
                    })
                    .collect(),
            );
            // Drops by reason, only the reasons that happened.
            for s in &rows {
                let nonzero: Vec<String> = s
                    .drops
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|(r, n)| format!("{r}={n}"))
                    .collect();
                if !nonzero.is_empty() {
                    out.push_str(&format!("\n  {} drops: {}", s.port, nonzero.join(" ")));
                }
            }
            out
        }
        // Changes print nothing on success, like ip(8).
        _ => String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let t = table(
            &["A", "LONGER"],
            vec![
                vec!["wide-cell".into(), "x".into()],
                vec!["y".into(), "z".into()],
            ],
        );
        assert_eq!(t, "A          LONGER\nwide-cell  x\ny          z");
    }

    #[test]
    fn fdb_rows_render() {
        let data = serde_json::json!([
            {"vlan":0,"mac":"02:00:00:00:00:01","port":"p1","age_secs":7,"type":"learned"},
            {"vlan":10,"mac":"02:00:00:00:00:02","port":"p2","age_secs":0,"type":"static"}
        ]);
        let out = render(
            &Cmd::Fdb(FdbCmd::Show {
                bridge: "b".into(),
                options: vec![],
            }),
            data,
            false,
        )
        .unwrap();
        assert!(
            out.contains("02:00:00:00:00:01  p1    7s   learned"),
            "{out}"
        );
        assert!(out.contains("static"));
    }
}
