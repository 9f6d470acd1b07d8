//! The control protocol, shared by `vswitchd` and `vsctl`.
//!
//! One JSON object per line each way over the unix socket. A request names a
//! verb and its arguments:
//!
//! ```text
//! {"verb":"port_add","args":{"bridge":"br0","port":"vm1","options":{"type":"tap"}}}
//! ```
//!
//! and every reply is either `{"ok": DATA}` or `{"error": "MESSAGE"}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::wire::MacAddr;

pub use crate::pipeline::counters::PortStatsReport;
pub use crate::pipeline::trace::{TraceOutput, TraceReport, TraceStage};

/// Longest request line the server reads; longer ones get an error.
pub const MAX_REQUEST_LEN: usize = 64 * 1024;

/// Bumped when a request or reply changes incompatibly.
pub const PROTOCOL_VERSION: u32 = 1;

/// `key=value` options, as given on the `vsctl` command line.
pub type Options = BTreeMap<String, String>;

/// Every request the daemon understands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "verb",
    content = "args",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum Request {
    Version,
    BridgeAdd {
        bridge: String,
        #[serde(default)]
        options: Options,
    },
    BridgeSet {
        bridge: String,
        options: Options,
    },
    BridgeDel {
        bridge: String,
    },
    BridgeList,
    PortAdd {
        bridge: String,
        port: String,
        options: Options,
    },
    PortDel {
        bridge: String,
        port: String,
    },
    PortList {
        #[serde(default)]
        bridge: Option<String>,
    },
    PortShow {
        port: String,
    },
    PortSet {
        port: String,
        options: Options,
    },
    FdbShow {
        bridge: String,
        #[serde(default)]
        vlan: Option<u16>,
    },
    FdbAdd {
        bridge: String,
        mac: MacAddr,
        port: String,
        #[serde(default)]
        vlan: u16,
        /// For a VXLAN port: the remote VTEP the MAC is behind.
        #[serde(default)]
        remote: Option<std::net::Ipv4Addr>,
    },
    FdbDel {
        bridge: String,
        mac: MacAddr,
        #[serde(default)]
        vlan: u16,
    },
    FdbFlush {
        bridge: String,
    },
    /// Runs EVPN on a bridge through the host's gobgpd (`docs/evpn.md`).
    EvpnSet {
        bridge: String,
        options: Options,
    },
    EvpnShow {
        bridge: String,
    },
    EvpnDel {
        bridge: String,
    },
    Stats {
        #[serde(default)]
        port: Option<String>,
    },
    /// A synthetic frame through a bridge's pipeline, with no side effects:
    /// either `hex` (the whole frame) or `src` and `dst` (and optionally
    /// `vlan`, a tag, and `ethertype`, default 0x0800).
    Trace {
        bridge: String,
        in_port: String,
        #[serde(default)]
        vlan: Option<u16>,
        #[serde(default)]
        src: Option<MacAddr>,
        #[serde(default)]
        dst: Option<MacAddr>,
        #[serde(default)]
        ethertype: Option<u16>,
        #[serde(default)]
        hex: Option<String>,
    },
    /// Makes the whole configuration `config` (see `docs/config.md`),
    /// changing only what differs; with `dry_run`, only says how.
    Apply {
        config: crate::config::Config,
        #[serde(default)]
        dry_run: bool,
    },
    /// The running configuration, in the schema `apply` takes.
    Export,
    /// The host's network interfaces and what of the switch uses each.
    IfaceList,
    /// Every metric in the Prometheus text format; the reply is one string.
    Metrics,
    /// Streams the frames passing a port (`control::stream`): a first reply
    /// line, then one line per frame, then an end line.
    Capture {
        port: String,
        #[serde(default)]
        direction: crate::capture::Direction,
        /// Stop after this many frames.
        #[serde(default)]
        count: Option<u64>,
        /// Bytes kept of each frame (1 to 65535, default 65535).
        #[serde(default)]
        snaplen: Option<u32>,
        /// Ring buffers: frames that may wait for the reader.
        #[serde(default)]
        buffers: Option<u32>,
    },
    /// Streams events (`events::Event`), one line each.
    Monitor,
}

/// A reply: exactly one of `ok` (with the verb's data) or `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reply {
    Ok(serde_json::Value),
    Error(String),
}

impl Reply {
    pub fn ok<T: Serialize>(data: &T) -> Reply {
        match serde_json::to_value(data) {
            Ok(v) => Reply::Ok(v),
            Err(e) => Reply::Error(format!("internal error encoding reply: {e}")),
        }
    }

    pub fn done() -> Reply {
        Reply::Ok(serde_json::Value::Null)
    }
}

/// Reply data of `version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    pub daemon: String,
    pub protocol: u32,
}

/// One row of `bridge_list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeInfo {
    pub name: String,
    pub aging_secs: u64,
    pub mac_table_size: usize,
    pub ports: Vec<String>,
    pub fdb_entries: usize,
    /// MACs that moved from one port to another since the bridge started.
    pub fdb_moves: u64,
    /// New MACs not learned because the table was full.
    pub learn_refused: u64,
    /// VLANs guest (tap) ports may use, if restricted.
    #[serde(default)]
    pub guest_vlans: Option<String>,
    /// The datapath worker running the bridge (`vswitchd --workers`);
    /// None if the datapath does not run it.
    #[serde(default)]
    pub worker: Option<usize>,
    /// Runs on every worker (`worker=all`); `worker` is then the first.
    #[serde(default)]
    pub all_workers: bool,
    /// For such a bridge: MACs one worker learned that did not reach the
    /// others (they flood to those until they learn them); absent when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub macs_unshared: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One row of `port_list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortInfo {
    pub bridge: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub iface: String,
    /// The VLAN mode in words, e.g. `access 10` or `trunk 10,20, native 5`.
    #[serde(default)]
    pub vlan_mode: String,
    /// `up` when the datapath runs the port; otherwise why not, e.g. the
    /// interface vanished while the daemon was down.
    pub status: String,
    pub options: Options,
}

/// Reply data of `port_show`: the port's row plus what its backend reports
/// of itself (bond members, LACP state...), if anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortDetails {
    #[serde(flatten)]
    pub info: PortInfo,
    #[serde(default)]
    pub details: Option<serde_json::Value>,
}

/// One step of an `apply` plan: the `vsctl` command line that does the
/// same, and the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanStep {
    pub step: String,
    pub request: Request,
}

/// One row of `iface_list`: a network interface of the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostIface {
    pub name: String,
    pub index: u32,
    /// The link kind the kernel reports (`veth`, `tun`, `bridge`...), or
    /// `device` for a plain NIC.
    pub kind: String,
    /// Administratively up.
    pub admin_up: bool,
    /// Has carrier (IFF_LOWER_UP).
    pub carrier: bool,
    /// The kernel's operational state (`up`, `down`, `unknown`...).
    pub oper_state: String,
    pub mtu: u32,
    #[serde(default)]
    pub mac: Option<String>,
    /// Link speed in Mb/s, where the driver reports one.
    #[serde(default)]
    pub speed_mbps: Option<u32>,
    #[serde(default)]
    pub driver: Option<String>,
    /// The bridge and port of the switch that use the interface.
    #[serde(default)]
    pub bridge: Option<String>,
    #[serde(default)]
    pub port: Option<String>,
    /// How the port uses it: `iface` (its interface, or a tap it made) or
    /// `bond member`.
    #[serde(default)]
    pub role: Option<String>,
}

/// Whether a table entry was configured or learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FdbEntryKind {
    Static,
    Learned,
    /// A MAC behind a remote VTEP, from a BGP EVPN route.
    Evpn,
}

/// One row of `fdb_show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdbEntryInfo {
    pub vlan: u16,
    pub mac: MacAddr,
    pub port: String,
    /// Seconds since the MAC was last seen (0 for static entries).
    pub age_secs: u64,
    #[serde(rename = "type")]
    pub kind: FdbEntryKind,
    /// For entries behind a VXLAN port: the remote VTEP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Request, serde_json::Error> {
        serde_json::from_str(s)
    }

    #[test]
    fn requests_round_trip() {
        let reqs = [
            Request::Version,
            Request::BridgeAdd {
                bridge: "br0".into(),
                options: Options::from([("aging".into(), "60".into())]),
            },
            Request::PortAdd {
                bridge: "br0".into(),
                port: "p1".into(),
                options: Options::from([("type".into(), "afpacket".into())]),
            },
            Request::FdbAdd {
                bridge: "br0".into(),
                mac: "02:00:00:00:00:01".parse().unwrap(),
                port: "p1".into(),
                vlan: 0,
                remote: None,
            },
            Request::Stats { port: None },
            Request::Metrics,
        ];
        for r in reqs {
            let line = serde_json::to_string(&r).unwrap();
            assert!(!line.contains('\n'));
            assert_eq!(parse(&line).unwrap(), r);
        }
    }

    #[test]
    fn wire_shape_is_verb_and_args() {
        let r = parse(r#"{"verb":"bridge_del","args":{"bridge":"br9"}}"#).unwrap();
        assert_eq!(
            r,
            Request::BridgeDel {
                bridge: "br9".into()
            }
        );
        assert_eq!(parse(r#"{"verb":"version"}"#).unwrap(), Request::Version);
        assert_eq!(
            parse(r#"{"verb":"port_list","args":{}}"#).unwrap(),
            Request::PortList { bridge: None }
        );
    }

    #[test]
    fn bad_requests_are_errors() {
        for bad in [
            "",
            "{",
            "[]",
            r#"{"verb":"reboot"}"#,
            r#"{"verb":"bridge_add"}"#,
            r#"{"verb":"bridge_add","args":{}}"#,
            r#"{"verb":"bridge_add","args":{"bridge":7}}"#,
            r#"{"verb":"bridge_add","args":{"bridge":"b","extra":1}}"#,
            r#"{"verb":"fdb_add","args":{"bridge":"b","mac":"nope","port":"p"}}"#,
            r#"{"verb":"fdb_add","args":{"bridge":"b","mac":"02:00:00:00:00:01","port":"p","vlan":70000}}"#,
            r#"{"args":{}}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn replies_have_one_key() {
        let ok = serde_json::to_string(&Reply::ok(&VersionInfo {
            daemon: "0.1.0".into(),
            protocol: 1,
        }))
        .unwrap();
        assert!(ok.starts_with(r#"{"ok":"#), "{ok}");
        let err = serde_json::to_string(&Reply::Error("no such bridge".into())).unwrap();
        assert_eq!(err, r#"{"error":"no such bridge"}"#);
        assert_eq!(
            serde_json::from_str::<Reply>(&err).unwrap(),
            Reply::Error("no such bridge".into())
        );
    }
}
