//! `vsctl evpn set|show|del`: a bridge's BGP EVPN session with the host's
//! gobgpd (docs/evpn.md).

use clap::Subcommand;
use vswitch::control::protocol::Request;
use vswitch::evpn::EvpnReport;

use crate::args::parse_options;
use crate::render::table;

#[derive(Debug, Subcommand)]
pub enum EvpnCmd {
    /// Run EVPN on a bridge: gobgp=HOST:PORT asn=N router_id=IP [vtep=PORT]
    /// [learning=on|off] [max_macs=N] [max_vteps=N]. Given options change,
    /// others stay; KEY= removes one.
    Set {
        bridge: String,
        /// gobgp=HOST:PORT asn=N router_id=IP [vtep=PORT] [learning=on|off]
        /// [max_macs=N] [max_vteps=N]
        options: Vec<String>,
    },
    /// The session, counters, and per VNI: RD, RT, local and remote MACs,
    /// remote VTEPs.
    Show { bridge: String },
    /// Stop EVPN on a bridge: its routes are withdrawn, remote MACs and
    /// flood lists removed.
    Del { bridge: String },
}

impl EvpnCmd {
    pub fn request(&self) -> anyhow::Result<Request> {
        Ok(match self {
            EvpnCmd::Set { bridge, options } => Request::EvpnSet {
                bridge: bridge.clone(),
                options: parse_options(options)?,
            },
            EvpnCmd::Show { bridge } => Request::EvpnShow {
                bridge: bridge.clone(),
            },
            EvpnCmd::Del { bridge } => Request::EvpnDel {
                bridge: bridge.clone(),
            },
        })
    }
}

/// `evpn show` for people; the other verbs print nothing.
pub fn render(cmd: &EvpnCmd, data: serde_json::Value) -> anyhow::Result<String> {
    if !matches!(cmd, EvpnCmd::Show { .. }) {
        return Ok(String::new());
    }
    let r: EvpnReport = serde_json::from_value(data)?;
    let session = serde_json::to_value(r.session)?
        .as_str()
        .unwrap_or("?")
        .to_string();
    let c = &r.counters;
    let mut out = vec![
        format!("bridge:    {}", r.bridge),
        format!(
            "gobgp:     {}  (asn {}, router id {})",
            r.gobgp, r.asn, r.router_id
        ),
        format!(
            "vtep:      {} {}  (tunnel learning {})",
            r.vtep.as_deref().unwrap_or("-"),
            r.local_ip.map(|i| i.to_string()).unwrap_or_default(),
            if r.learning { "on" } else { "off" }
        ),
        format!(
            "session:   {session}{}",
            r.last_error
                .as_deref()
                .map(|e| format!("  ({e})"))
                .unwrap_or_default()
        ),
        format!(
            "routes:    sent {} withdrawn {} received {} refused {}  reconnects {}",
            c.routes_sent, c.routes_withdrawn, c.routes_received, c.routes_refused, c.reconnects
        ),
        format!(
            "limits:    {} remote MACs and {} VTEPs per VNI",
            r.max_macs, r.max_vteps
        ),
        String::new(),
    ];
    out.push(table(
        &[
            "VNI",
            "VLAN",
            "RD",
            "RT",
            "LOCAL_MACS",
            "REMOTE_MACS",
            "VTEPS",
        ],
        r.vnis
            .iter()
            .map(|v| {
                let vteps: Vec<String> = v.vteps.iter().map(|i| i.to_string()).collect();
                vec![
                    v.vni.to_string(),
                    v.vlan.to_string(),
                    v.rd.clone(),
                    v.rt.clone(),
                    v.local_macs.to_string(),
                    v.remote_macs.to_string(),
                    if vteps.is_empty() {
                        "-".into()
                    } else {
                        vteps.join(",")
                    },
                ]
            })
            .collect(),
    ));
    Ok(out.join("\n"))
}
