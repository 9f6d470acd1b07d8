//! `vsctl evpn set BR key=value...`: what an operator configures for a
//! bridge's EVPN, checked in full before anything changes.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::control::protocol::Options;

/// Remote MACs one VNI may hold by default.
pub const DEFAULT_MAX_MACS: usize = 65_536;
/// Remote VTEPs one VNI may hold by default.
pub const DEFAULT_MAX_VTEPS: usize = 1024;
const MAX_LIMIT: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvpnSpec {
    /// gRPC address of the host's gobgpd (`HOST:PORT`).
    pub gobgp: String,
    pub asn: u32,
    pub router_id: Ipv4Addr,
    /// The bridge's VXLAN port; None: its only one.
    pub vtep: Option<String>,
    /// Whether tunnel traffic teaches the tables (off: BGP only).
    pub learning: bool,
    pub max_macs: usize,
    pub max_vteps: usize,
}

impl EvpnSpec {
    pub const KEYS: &'static [&'static str] = &[
        "gobgp",
        "asn",
        "router_id",
        "vtep",
        "learning",
        "max_macs",
        "max_vteps",
    ];

    pub fn parse(options: &Options) -> Result<EvpnSpec, String> {
        if let Some(k) = options.keys().find(|k| !Self::KEYS.contains(&k.as_str())) {
            return Err(format!(
                "unknown option {k:?} (known: {})",
                Self::KEYS.join(", ")
            ));
        }
        let need = |k: &str, what: &str| {
            options
                .get(k)
                .ok_or_else(|| format!("evpn needs {k}= ({what})"))
        };
        let gobgp = need("gobgp", "the gobgpd gRPC address, HOST:PORT")?.clone();
        match gobgp.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
            _ => return Err(format!("gobgp={gobgp:?} is not HOST:PORT")),
        }
        let asn_text = need("asn", "the BGP AS number")?;
        let asn: u32 = asn_text
            .parse()
            .ok()
            .filter(|a| *a != 0)
            .ok_or_else(|| format!("asn={asn_text:?} is not an AS number (1 to 4294967295)"))?;
        let rid = need("router_id", "an IPv4 address")?;
        let router_id: Ipv4Addr = rid
            .parse()
            .map_err(|_| format!("router_id={rid:?} is not an IPv4 address"))?;
        if router_id.is_unspecified() {
            return Err("router_id=0.0.0.0 is not a router ID".into());
        }
        let vtep = options.get("vtep").cloned();
        if let Some(v) = &vtep {
            crate::config::validate_name("vtep port", v)?;
        }
        let learning = match options.get("learning").map(String::as_str) {
            None | Some("off") | Some("false") | Some("no") => false,
            Some("on") | Some("true") | Some("yes") => true,
            Some(other) => return Err(format!("learning={other:?}: use on or off")),
        };
        let limit = |k: &str, default: usize| -> Result<usize, String> {
            match options.get(k) {
                None => Ok(default),
                Some(v) => v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| format!("{k}={v:?} out of range: 1 to {MAX_LIMIT}")),
            }
        };
        Ok(EvpnSpec {
            gobgp,
            asn,
            router_id,
            vtep,
            learning,
            max_macs: limit("max_macs", DEFAULT_MAX_MACS)?,
            max_vteps: limit("max_vteps", DEFAULT_MAX_VTEPS)?,
        })
    }
}

/// The session with gobgpd.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionState {
    /// Trying to reach gobgpd (first time, or again after a failure).
    #[default]
    Connecting,
    /// Routes flow both ways.
    Established,
    /// This vswitchd was built without the GoBGP API.
    Unavailable,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvpnCounters {
    /// Routes added to gobgpd (advertised).
    pub routes_sent: u64,
    /// Routes removed from gobgpd.
    pub routes_withdrawn: u64,
    /// Route updates and withdrawals received from gobgpd.
    pub routes_received: u64,
    /// Routes not installed: a limit, a full table, a static entry, or a
    /// malformed route.
    pub routes_refused: u64,
    /// Sessions with gobgpd lost and started again.
    pub reconnects: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VniReport {
    pub vni: u32,
    pub vlan: u16,
    pub rd: String,
    pub rt: String,
    pub local_macs: usize,
    pub remote_macs: usize,
    pub vteps: Vec<Ipv4Addr>,
}

/// `vsctl evpn show`: the configuration and what the session reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvpnReport {
    pub bridge: String,
    pub gobgp: String,
    pub asn: u32,
    pub router_id: String,
    /// The VXLAN port, once the session found it.
    pub vtep: Option<String>,
    pub local_ip: Option<Ipv4Addr>,
    pub learning: bool,
    pub max_macs: usize,
    pub max_vteps: usize,
    pub session: SessionState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub counters: EvpnCounters,
    pub vnis: Vec<VniReport>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Options {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const BASE: [(&str, &str); 3] = [
        ("gobgp", "127.0.0.1:50051"),
        ("asn", "65000"),
        ("router_id", "10.0.0.1"),
    ];

    #[test]
    fn defaults_and_every_option() {
        let s = EvpnSpec::parse(&opts(&BASE)).unwrap();
        assert_eq!(s.asn, 65000);
        assert!(!s.learning);
        assert_eq!(
            (s.max_macs, s.max_vteps),
            (DEFAULT_MAX_MACS, DEFAULT_MAX_VTEPS)
        );
        let mut all = BASE.to_vec();
        all.extend([
            ("vtep", "vx0"),
            ("learning", "on"),
            ("max_macs", "10"),
            ("max_vteps", "2"),
        ]);
        let s = EvpnSpec::parse(&opts(&all)).unwrap();
        assert_eq!(s.vtep.as_deref(), Some("vx0"));
        assert!(s.learning);
        assert_eq!((s.max_macs, s.max_vteps), (10, 2));
    }

    #[test]
    fn errors_name_the_option() {
        let bad = |k: &str, v: &str| {
            let mut o = opts(&BASE);
            o.insert(k.into(), v.into());
            EvpnSpec::parse(&o).unwrap_err()
        };
        assert!(bad("gobgp", "localhost").contains("HOST:PORT"));
        assert!(bad("asn", "0").contains("asn="));
        assert!(bad("asn", "x").contains("asn="));
        assert!(bad("router_id", "1.2.3").contains("router_id="));
        assert!(bad("learning", "maybe").contains("learning="));
        assert!(bad("max_macs", "0").contains("max_macs="));
        assert!(bad("colour", "blue").contains("unknown option"));
        let mut o = opts(&BASE);
        o.remove("asn");
        assert!(EvpnSpec::parse(&o).unwrap_err().contains("needs asn="));
    }
}
