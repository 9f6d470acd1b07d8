//! Options of `type=vxlan` ports.

use super::spec::{parse_number, validate_name};
use crate::control::protocol::Options;
use crate::pipeline::vlan::parse_vid;
use crate::port::vxlan::VxlanConfig;
use crate::wire::vxlan::{DEFAULT_PORT as VXLAN_PORT, MAX_VNI};
use crate::wire::MacAddr;

/// Options of `type=vxlan` ports.
pub const KEYS: &[&str] = &[
    "local", "remote", "vni", "vlan", "dst_port", "underlay", "gateway", "prefix", "mtu", "mac",
];

fn parse_ip(key: &str, v: &str) -> Result<std::net::Ipv4Addr, String> {
    v.parse()
        .map_err(|_| format!("{key}={v:?} is not an IPv4 address"))
}

/// `vni=N[:VLAN][,N[:VLAN]...]` (and `vlan=M` for a single VNI): each VNI
/// maps to a VLAN of the bridge, or without one to its untagged network.
fn parse_vnis(options: &Options) -> Result<Vec<(u32, u16)>, String> {
    let text = options.get("vni").ok_or("type=vxlan needs vni=N")?;
    let mut out: Vec<(u32, u16)> = Vec::new();
    for part in text.split(',') {
        let (vni, vlan) = match part.split_once(':') {
            Some((n, v)) => (n, parse_vid(v).map_err(|e| format!("vni: {e}"))?),
            None => (part, 0),
        };
        let vni: u32 = vni
            .parse()
            .ok()
            .filter(|v| (1..=MAX_VNI).contains(v))
            .ok_or_else(|| format!("vni: {vni:?} is not a VNI (1 to {MAX_VNI})"))?;
        if out.iter().any(|(n, _)| *n == vni) {
            return Err(format!("vni {vni} given twice"));
        }
        out.push((vni, vlan));
    }
    if let Some(v) = options.get("vlan") {
        if out.len() != 1 || out[0].1 != 0 {
            return Err("vlan=M goes with a single vni=N (else use vni=N:M,...)".into());
        }
        out[0].1 = parse_vid(v).map_err(|e| format!("vlan: {e}"))?;
    }
    let mut vlans: Vec<u16> = out.iter().map(|(_, v)| *v).collect();
    vlans.sort_unstable();
    if vlans.windows(2).any(|w| w[0] == w[1]) {
        return Err("two VNIs map to the same VLAN".into());
    }
    Ok(out)
}

pub fn parse(options: &Options) -> Result<VxlanConfig, String> {
    let local = parse_ip(
        "local",
        options.get("local").ok_or("type=vxlan needs local=IP")?,
    )?;
    let underlay = options
        .get("underlay")
        .ok_or("type=vxlan needs underlay=PORT (the uplink port that carries the tunnel)")?
        .clone();
    validate_name("underlay port", &underlay)?;
    // With EVPN the flood lists come from BGP, so no remote is needed.
    let mut remotes = Vec::new();
    for r in options
        .get("remote")
        .map(String::as_str)
        .unwrap_or("")
        .split(',')
        .filter(|r| !r.is_empty())
    {
        let ip = parse_ip("remote", r)?;
        if ip == local {
            return Err(format!("remote {ip} is the local address"));
        }
        if !remotes.contains(&ip) {
            remotes.push(ip);
        }
    }
    let prefix_len = match options.get("prefix") {
        Some(v) => parse_number::<u8>("prefix", v).and_then(|p| {
            if p <= 32 {
                Ok(p)
            } else {
                Err(format!("prefix={p}: 0 to 32"))
            }
        })?,
        None => 24,
    };
    let underlay_mtu = match options.get("mtu") {
        Some(v) => parse_number::<u16>("mtu", v)?,
        None => 1500,
    };
    if !(576..=9000).contains(&underlay_mtu) {
        return Err(format!("mtu={underlay_mtu}: 576 to 9000"));
    }
    let mac = match options.get("mac") {
        Some(m) => {
            let mac: MacAddr = m.parse().map_err(|e| format!("mac: {e}"))?;
            if !mac.is_learnable() {
                return Err(format!("mac: {mac} is not a unicast address"));
            }
            mac
        }
        None => VxlanConfig::default_mac(local),
    };
    Ok(VxlanConfig {
        local,
        prefix_len,
        gateway: options
            .get("gateway")
            .map(|g| parse_ip("gateway", g))
            .transpose()?,
        remotes,
        vnis: parse_vnis(options)?,
        dst_port: match options.get("dst_port") {
            Some(v) => parse_number("dst_port", v)?,
            None => VXLAN_PORT,
        },
        underlay,
        mac,
        underlay_mtu,
    })
}
