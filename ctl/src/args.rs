//! The command line, and its translation into protocol requests.

use std::path::PathBuf;

use anyhow::{anyhow, bail};
use clap::{Parser, Subcommand};
use vswitch::control::protocol::{Options, Request};
use vswitch::wire::MacAddr;

#[derive(Debug, Parser)]
#[command(name = "vsctl", version, about = "Control a running vswitchd")]
pub struct Cli {
    /// The daemon's control socket.
    #[arg(
        long,
        global = true,
        env = "VSWITCH_SOCKET",
        default_value = "/run/vswitch/vswitchd.sock"
    )]
    pub socket: PathBuf,
    /// Print the reply as JSON, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Show the versions of vsctl and the daemon.
    Version,
    /// Bridges: isolated forwarding domains.
    #[command(subcommand)]
    Bridge(BridgeCmd),
    /// Ports: where frames enter and leave a bridge.
    #[command(subcommand)]
    Port(PortCmd),
    /// The forwarding table of a bridge.
    #[command(subcommand)]
    Fdb(FdbCmd),
    /// VXLAN tunnel endpoints: VNIs, remotes, neighbor state, counters.
    #[command(subcommand)]
    Vxlan(VxlanCmd),
    /// BGP EVPN for a bridge's VXLAN overlay, through the host's gobgpd.
    #[command(subcommand)]
    Evpn(crate::evpn::EvpnCmd),
    /// Bond ports: members and their state.
    #[command(subcommand)]
    Bond(crate::bond::BondCmd),
    /// LACP state of bond ports.
    #[command(subcommand)]
    Lacp(crate::bond::LacpCmd),
    /// Per-port counters, drops by reason.
    Stats {
        /// Only this port.
        port: Option<String>,
    },
    /// Run a synthetic frame through a bridge, with no side effects, and
    /// show each stage's decision: in_port=PORT and either src=MAC dst=MAC
    /// [vlan=N] [ethertype=0xNNNN] or hex=FRAME.
    Trace {
        bridge: String,
        /// in_port=PORT src=MAC dst=MAC [vlan=N] [ethertype=0xNNNN] | hex=FRAME
        options: Vec<String>,
    },
    /// Make the switch run the whole configuration in FILE (JSON or YAML, see docs/config.md;
    /// `-` reads standard input): only what differs changes, unchanged ports keep forwarding.
    Apply {
        file: PathBuf,
        /// Print the plan, one step per line, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the running configuration in the format `apply` takes (JSON, or YAML).
    Export {
        /// YAML instead of JSON.
        #[arg(long)]
        yaml: bool,
    },
    /// The host's network interfaces.
    #[command(subcommand)]
    Iface(crate::iface::IfaceCmd),
    /// Shell completions and man pages, for packaging.
    #[command(subcommand, hide = true)]
    Generate(crate::generate::GenerateCmd),
    /// Every metric in the Prometheus text format (what --metrics-listen serves).
    Metrics,
    /// Capture the frames passing a port as pcap: -w FILE, or -w - for stdout
    /// (`vsctl capture p1 -w - | tcpdump -r -`). Ctrl-C or --count ends it.
    Capture(crate::capture::CaptureArgs),
    /// Stream changes as they happen: port links, bonds and LACP, MAC moves,
    /// configuration changes. Ctrl-C ends it.
    Monitor,
}

#[derive(Debug, Subcommand)]
pub enum BridgeCmd {
    /// Create a bridge. Options: aging=SECS (default 300), mac_table_size=N (default 65536),
    /// guest_vlans=LIST (VLANs tap ports may use, e.g. 100-999).
    Add {
        bridge: String,
        /// KEY=VALUE options.
        options: Vec<String>,
    },
    /// Change a bridge's options: aging=SECS, guest_vlans=LIST (guest_vlans= removes it).
    Set {
        bridge: String,
        /// KEY=VALUE options.
        #[arg(required = true)]
        options: Vec<String>,
    },
    /// Delete a bridge and all its ports.
    Del { bridge: String },
    /// List bridges.
    List,
}

#[derive(Debug, Subcommand)]
pub enum PortCmd {
    /// Add a port: type=tap [iface=TAPNAME] | type=afpacket iface=IFNAME |
    /// type=afxdp iface=IFNAME [queues=N] [xdp_mode=native|generic|auto] |
    /// type=vhostuser socket=PATH [mode=server|client] [queues=N] [mac=MAC].
    Add {
        bridge: String,
        port: String,
        /// KEY=VALUE options.
        #[arg(required = true)]
        options: Vec<String>,
    },
    /// Delete a port (a tap the switch created goes with it).
    Del { bridge: String, port: String },
    /// List ports, of one bridge or all.
    List { bridge: Option<String> },
    /// Show one port: its settings, status and backend state.
    Show { port: String },
    /// Change a running port: access=N | trunk=LIST [native=N], allowed_macs=MAC[,MAC],
    /// max_macs=N, storm_pps=N. KEY= (empty) removes an option; access replaces trunk/native
    /// and trunk replaces access.
    Set {
        port: String,
        /// KEY=VALUE options.
        #[arg(required = true)]
        options: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum VxlanCmd {
    /// Show every VXLAN port, or one.
    Show { port: Option<String> },
}

#[derive(Debug, Subcommand)]
pub enum FdbCmd {
    /// Show the table: VLAN, MAC, port, age, static or learned. Option: vlan=N.
    Show {
        bridge: String,
        /// vlan=N: only that VLAN.
        options: Vec<String>,
    },
    /// Add a static entry: MAC always behind PORT. Options: vlan=N, and for a vxlan port
    /// remote=IP (the remote VTEP the MAC is behind).
    Add {
        bridge: String,
        mac: String,
        port: String,
        /// vlan=N (default 0, untagged), remote=IP.
        options: Vec<String>,
    },
    /// Delete an entry (static or learned). Option: vlan=N.
    Del {
        bridge: String,
        mac: String,
        /// vlan=N (default 0, untagged).
        options: Vec<String>,
    },
    /// Forget all learned entries of a bridge (static ones stay).
    Flush { bridge: String },
}

/// Parses `KEY=VALUE` words; a key given twice is an error.
pub fn parse_options(words: &[String]) -> anyhow::Result<Options> {
    let mut out = Options::new();
    for w in words {
        let (k, v) = w
            .split_once('=')
            .ok_or_else(|| anyhow!("expected KEY=VALUE, got {w:?}"))?;
        if k.is_empty() {
            bail!("empty option name in {w:?}");
        }
        if out.insert(k.to_string(), v.to_string()).is_some() {
            bail!("option {k:?} given twice");
        }
    }
    Ok(out)
}

fn parse_mac(s: &str) -> anyhow::Result<MacAddr> {
    s.parse().map_err(|e| anyhow!("{e}"))
}

/// `vlan=N` is the only option of most fdb commands.
fn parse_vlan(words: &[String]) -> anyhow::Result<u16> {
    let options = parse_options(words)?;
    vlan_from(options)
}

fn vlan_from(mut options: Options) -> anyhow::Result<u16> {
    let vlan = match options.remove("vlan") {
        Some(v) => v
            .parse::<u16>()
            .ok()
            .filter(|v| *v <= 4095)
            .ok_or_else(|| anyhow!("vlan={v:?}: expected 0 to 4095"))?,
        None => 0,
    };
    if let Some(k) = options.keys().next() {
        bail!("unknown option {k:?} (known: vlan)");
    }
    Ok(vlan)
}

pub fn to_request(cmd: &Cmd) -> anyhow::Result<Request> {
    Ok(match cmd {
        Cmd::Version => Request::Version,
        Cmd::Bridge(b) => match b {
            BridgeCmd::Add { bridge, options } => Request::BridgeAdd {
                bridge: bridge.clone(),
                options: parse_options(options)?,
            },
            BridgeCmd::Set { bridge, options } => Request::BridgeSet {
                bridge: bridge.clone(),
                options: parse_options(options)?,
            },
            BridgeCmd::Del { bridge } => Request::BridgeDel {
                bridge: bridge.clone(),
            },
            BridgeCmd::List => Request::BridgeList,
        },
        Cmd::Port(p) => match p {
            PortCmd::Add {
                bridge,
                port,
                options,
            } => Request::PortAdd {
                bridge: bridge.clone(),
                port: port.clone(),
                options: parse_options(options)?,
            },
            PortCmd::Del { bridge, port } => Request::PortDel {
                bridge: bridge.clone(),
                port: port.clone(),
            },
            PortCmd::List { bridge } => Request::PortList {
                bridge: bridge.clone(),
            },
            PortCmd::Show { port } => Request::PortShow { port: port.clone() },
            PortCmd::Set { port, options } => Request::PortSet {
                port: port.clone(),
                options: parse_options(options)?,
            },
        },
        Cmd::Fdb(f) => match f {
            FdbCmd::Show { bridge, options } => Request::FdbShow {
                bridge: bridge.clone(),
                vlan: if options.is_empty() {
                    None
                } else {
                    Some(parse_vlan(options)?)
                },
            },
            FdbCmd::Add {
                bridge,
                mac,
                port,
                options,
            } => {
                let mut options = parse_options(options)?;
                let remote = options
                    .remove("remote")
                    .map(|r| {
                        r.parse::<std::net::Ipv4Addr>()
                            .map_err(|_| anyhow!("remote={r:?} is not an IPv4 address"))
                    })
                    .transpose()?;
                Request::FdbAdd {
                    bridge: bridge.clone(),
                    mac: parse_mac(mac)?,
                    port: port.clone(),
                    vlan: vlan_from(options)?,
                    remote,
                }
            }
            FdbCmd::Del {
                bridge,
                mac,
                options,
            } => Request::FdbDel {
                bridge: bridge.clone(),
                mac: parse_mac(mac)?,
                vlan: parse_vlan(options)?,
            },
            FdbCmd::Flush { bridge } => Request::FdbFlush {
                bridge: bridge.clone(),
            },
        },
        Cmd::Stats { port } => Request::Stats { port: port.clone() },
        Cmd::Trace { bridge, options } => crate::trace::request(bridge, options)?,
        Cmd::Metrics => Request::Metrics,
        // vxlan show reads the port list first; see vxlan.rs.
        Cmd::Vxlan(VxlanCmd::Show { .. }) => Request::PortList { bridge: None },
        Cmd::Capture(c) => c.request(),
        Cmd::Evpn(c) => c.request()?,
        Cmd::Monitor => Request::Monitor,
        // Several requests each: run by `bond::bond_show` / `lacp_show`.
        Cmd::Bond(_) | Cmd::Lacp(_) => bail!("bond and lacp commands are not one request"),
        // Run by `apply.rs`, `iface.rs`, `generate.rs`.
        Cmd::Apply { .. } | Cmd::Export { .. } | Cmd::Iface(_) | Cmd::Generate(_) => {
            bail!("apply, export, iface and generate are run on their own")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(args: &[&str]) -> anyhow::Result<Request> {
        let cli = Cli::try_parse_from(std::iter::once("vsctl").chain(args.iter().copied()))?;
        to_request(&cli.command)
    }

    #[test]
    fn commands_map_to_requests() {
        assert_eq!(
            req(&["port", "add", "br0", "vm1", "type=tap"]).unwrap(),
            Request::PortAdd {
                bridge: "br0".into(),
                port: "vm1".into(),
                options: Options::from([("type".into(), "tap".into())]),
            }
        );
        assert_eq!(
            req(&["fdb", "add", "br0", "02:00:00:00:00:01", "p1", "vlan=10"]).unwrap(),
            Request::FdbAdd {
                bridge: "br0".into(),
                mac: "02:00:00:00:00:01".parse().unwrap(),
                port: "p1".into(),
                vlan: 10,
                remote: None,
            }
        );
        assert_eq!(req(&["stats"]).unwrap(), Request::Stats { port: None });
        assert_eq!(req(&["metrics"]).unwrap(), Request::Metrics);
        assert_eq!(
            req(&["fdb", "show", "br0", "vlan=10"]).unwrap(),
            Request::FdbShow {
                bridge: "br0".into(),
                vlan: Some(10)
            }
        );
        assert_eq!(
            req(&["port", "set", "vm1", "access=10", "max_macs="]).unwrap(),
            Request::PortSet {
                port: "vm1".into(),
                options: Options::from([
                    ("access".into(), "10".into()),
                    ("max_macs".into(), "".into())
                ]),
            }
        );
        assert_eq!(
            req(&["--json", "bridge", "list"]).unwrap(),
            Request::BridgeList
        );
        assert_eq!(
            req(&[
                "capture",
                "p1",
                "--direction",
                "rx",
                "-c",
                "10",
                "-s",
                "128",
                "-w",
                "-"
            ])
            .unwrap(),
            Request::Capture {
                port: "p1".into(),
                direction: vswitch::capture::Direction::Rx,
                count: Some(10),
                snaplen: Some(128),
                buffers: None,
            }
        );
        assert_eq!(
            req(&["capture", "p1", "-w", "f.pcap"]).unwrap(),
            Request::Capture {
                port: "p1".into(),
                direction: vswitch::capture::Direction::Both,
                count: None,
                snaplen: None,
                buffers: None,
            }
        );
        assert_eq!(req(&["monitor"]).unwrap(), Request::Monitor);
    }

    #[test]
    fn bad_command_lines_are_errors() {
        for bad in [
            &["port", "add", "br0", "vm1"][..],
            &["port", "add", "br0", "vm1", "typetap"],
            &["port", "add", "br0", "vm1", "type=tap", "type=afpacket"],
            &["port", "add", "br0", "vm1", "=tap"],
            &["fdb", "add", "br0", "zz:00:00:00:00:01", "p1"],
            &["fdb", "add", "br0", "02:00:00:00:00:01", "p1", "vlan=4096"],
            &["fdb", "del", "br0", "02:00:00:00:00:01", "colour=red"],
            &["bridge", "set", "br0"],
            &["port", "set", "vm1"],
            &["fdb", "show", "br0", "vlan=x"],
            &["frobnicate"],
            &["capture", "p1"],
            &["capture", "p1", "-w", "-", "--direction", "in"],
            &["capture", "p1", "-w", "-", "--count", "0"],
            &["capture", "p1", "-w", "-", "--snaplen", "70000"],
            &["bridge"],
        ] {
            assert!(req(bad).is_err(), "{bad:?} accepted");
        }
    }
}
