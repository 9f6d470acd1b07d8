//! Parsing and validation of bridge and port options.

use crate::control::protocol::Options;
use crate::fdb::{DEFAULT_AGING_SECS, DEFAULT_MAX_ENTRIES};
use crate::pipeline::admit::PortPolicy;
use crate::pipeline::vlan::{parse_vid, VlanMode, VlanSet};
use crate::port::afxdp::AfXdpConfig;
use crate::port::bond::BondConfig;
use crate::port::tap::{self, TapIo};
use crate::port::vxlan::VxlanConfig;
use crate::port::{validate_ifname, PortKind};
use crate::wire::MacAddr;

/// Most MACs one port's `allowed_macs` may list.
pub const MAX_ALLOWED_MACS: usize = 64;

/// Largest table an operator may ask for per bridge (about 100 MiB).
pub const MAX_MAC_TABLE_SIZE: usize = 4 * 1024 * 1024;
/// Most datapath workers `vswitchd --workers` starts.
pub const MAX_WORKERS: usize = 64;

/// Longest aging time accepted: a day. Longer is almost surely a typo.
pub const MAX_AGING_SECS: u64 = 86_400;

/// Bridge and port names: 1 to 15 characters of `[A-Za-z0-9_.-]`, starting
/// with a letter or digit (so a port name can also name its tap device).
pub fn validate_name(what: &str, name: &str) -> Result<(), String> {
    let ok = (1..=15).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid {what} name {name:?}: 1 to 15 letters, digits, '_', '.' or '-', starting with a letter or digit"
        ))
    }
}

pub(super) fn parse_number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{key}={value:?} is not a number"))
}

fn reject_unknown(options: &Options, known: &[&str]) -> Result<(), String> {
    match options.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "unknown option {k:?} (known: {})",
            known.join(", ")
        )),
        None => Ok(()),
    }
}

/// A bridge's settings, parsed from its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSpec {
    pub aging_secs: u64,
    pub mac_table_size: usize,
    /// The VLANs guest (tap) ports may use, when the operator set a range.
    pub guest_vlans: Option<VlanSet>,
    /// The datapath worker to run the bridge on (`vswitchd --workers`);
    /// None: the least loaded one.
    pub worker: Option<usize>,
    /// `worker=all`: a replica on every worker, each with a share of the
    /// ports' receive queues.
    pub spread: bool,
}

impl BridgeSpec {
    pub const KEYS: &'static [&'static str] = &["aging", "mac_table_size", "guest_vlans", "worker"];

    pub fn parse(options: &Options) -> Result<BridgeSpec, String> {
        reject_unknown(options, Self::KEYS)?;
        let aging_secs = match options.get("aging") {
            Some(v) => parse_number("aging", v)?,
            None => DEFAULT_AGING_SECS,
        };
        if !(1..=MAX_AGING_SECS).contains(&aging_secs) {
            return Err(format!(
                "aging={aging_secs} out of range: 1 to {MAX_AGING_SECS} seconds"
            ));
        }
        let mac_table_size = match options.get("mac_table_size") {
            Some(v) => parse_number("mac_table_size", v)?,
            None => DEFAULT_MAX_ENTRIES,
        };
        if !(1..=MAX_MAC_TABLE_SIZE).contains(&mac_table_size) {
            return Err(format!(
                "mac_table_size={mac_table_size} out of range: 1 to {MAX_MAC_TABLE_SIZE}"
            ));
        }
        let guest_vlans = options
            .get("guest_vlans")
            .map(|v| VlanSet::parse(v).map_err(|e| format!("guest_vlans: {e}")))
            .transpose()?;
        let spread = options.get("worker").is_some_and(|v| v == "all");
        let worker = match options.get("worker") {
            Some(v) if v != "all" => Some(parse_number::<usize>("worker", v)?),
            _ => None,
        };
        if let Some(w) = worker.filter(|w| *w >= MAX_WORKERS) {
            return Err(format!("worker={w} out of range: 0 to {}", MAX_WORKERS - 1));
        }
        Ok(BridgeSpec {
            aging_secs,
            mac_table_size,
            guest_vlans,
            worker,
            spread,
        })
    }

    /// Checks a port against the bridge's guest VLAN range: a tap port (a
    /// VM's vNIC) must stay inside it, in access or trunk mode.
    /// On a bridge on every worker, only ports whose receive side splits
    /// into one shard per worker (afpacket, afxdp, tap, null) are admitted.
    pub fn admits(&self, port_name: &str, port: &PortSpec) -> Result<(), String> {
        let splits = matches!(
            port.kind,
            PortKind::Afpacket | PortKind::Afxdp | PortKind::Tap | PortKind::Null
        );
        if self.spread && !splits {
            return Err(format!(
                "port {port_name:?}: a {} port cannot join a bridge on every worker (worker=all); afpacket, afxdp, tap and null ports can",
                port.kind.as_str()
            ));
        }
        let Some(range) = &self.guest_vlans else {
            return Ok(());
        };
        if port.kind != PortKind::Tap {
            return Ok(());
        }
        if port.policy.vlan == VlanMode::default() {
            return Err(format!(
                "tap port {port_name:?} needs access=N or trunk=LIST within the bridge's guest_vlans ({range})"
            ));
        }
        let networks = port.policy.vlan.networks();
        if !networks.is_subset_of(range) {
            return Err(format!(
                "tap port {port_name:?} asks for VLAN(s) {networks}, outside the bridge's guest_vlans ({range})"
            ));
        }
        Ok(())
    }
}

fn parse_vlan_mode(options: &Options) -> Result<VlanMode, String> {
    let access = options.get("access");
    let trunk = options.get("trunk");
    let native = options.get("native");
    match (access, trunk, native) {
        (Some(_), Some(_), _) => Err("access and trunk are exclusive".into()),
        (Some(_), None, Some(_)) => Err("native applies to trunk ports only".into()),
        (Some(a), None, None) => Ok(VlanMode::Access(
            parse_vid(a).map_err(|e| format!("access: {e}"))?,
        )),
        (None, Some(t), native) => Ok(VlanMode::Trunk {
            allowed: VlanSet::parse(t).map_err(|e| format!("trunk: {e}"))?,
            native: native
                .map(|n| parse_vid(n).map_err(|e| format!("native: {e}")))
                .transpose()?,
        }),
        (None, None, Some(_)) => Err("native needs trunk=LIST".into()),
        (None, None, None) => Ok(VlanMode::default()),
    }
}

fn parse_policy(options: &Options) -> Result<PortPolicy, String> {
    let vlan = parse_vlan_mode(options)?;
    let mut allowed_macs = Vec::new();
    if let Some(list) = options.get("allowed_macs") {
        for m in list.split(',') {
            let mac: MacAddr = m.parse().map_err(|e| format!("allowed_macs: {e}"))?;
            if !mac.is_learnable() {
                return Err(format!("allowed_macs: {mac} is not a unicast address"));
            }
            if !allowed_macs.contains(&mac) {
                allowed_macs.push(mac);
            }
        }
        if allowed_macs.len() > MAX_ALLOWED_MACS {
            return Err(format!(
                "allowed_macs: at most {MAX_ALLOWED_MACS} addresses"
            ));
        }
    }
    let max_macs = options
        .get("max_macs")
        .map(|v| parse_number::<u32>("max_macs", v))
        .transpose()?;
    if max_macs == Some(0) {
        return Err("max_macs=0 would drop everything: use at least 1".into());
    }
    let storm_pps = options
        .get("storm_pps")
        .map(|v| parse_number::<u32>("storm_pps", v))
        .transpose()?;
    if storm_pps == Some(0) {
        return Err("storm_pps=0 would drop every broadcast (ARP too): use at least 1".into());
    }
    Ok(PortPolicy {
        vlan,
        allowed_macs,
        max_macs,
        storm_pps,
    })
}

/// A port's settings, parsed from its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    pub kind: PortKind,
    /// The kernel interface: the tap to create or attach to, or the
    /// interface an afpacket port binds; a bond's own name; empty for a
    /// VXLAN or null port.
    pub iface: String,
    pub policy: PortPolicy,
    /// The VTEP settings of a VXLAN port.
    pub vxlan: Option<VxlanConfig>,
    /// A bond's members and mode.
    pub bond: Option<BondConfig>,
    /// An afxdp port's queues and XDP mode.
    pub afxdp: Option<AfXdpConfig>,
    /// A null port's role and traffic (`type=null`, for benchmarks).
    pub null: Option<crate::port::null::NullConfig>,
    /// A vhost-user port's socket and queues.
    pub vhostuser: Option<crate::port::vhostuser::VhostUserConfig>,
    /// A tap port's I/O (`io=uring|syscalls`).
    pub tap_io: Option<crate::port::tap::TapIo>,
}

/// Options of the VLAN mode and policy, for every port kind.
const POLICY_KEYS: &[&str] = &[
    "access",
    "trunk",
    "native",
    "allowed_macs",
    "max_macs",
    "storm_pps",
];

impl PortSpec {
    pub const KEYS: &'static [&'static str] = &[
        "type",
        "iface",
        "access",
        "trunk",
        "native",
        "allowed_macs",
        "max_macs",
        "storm_pps",
    ];

    /// Options that `port set` may change on a running port.
    pub const SETTABLE: &'static [&'static str] = &[
        "access",
        "trunk",
        "native",
        "allowed_macs",
        "max_macs",
        "storm_pps",
    ];

    /// Merges `changes` into a port's `current` options for `port set`: an
    /// empty value removes a key; `access` replaces `trunk`/`native` and
    /// `trunk` replaces `access`, so switching modes takes one command.
    pub fn merge_options(current: &Options, changes: &Options) -> Result<Options, String> {
        if let Some(k) = changes
            .keys()
            .find(|k| !Self::SETTABLE.contains(&k.as_str()))
        {
            return Err(
                if Self::KEYS.contains(&k.as_str()) || tap::KEYS.contains(&k.as_str()) {
                    format!("{k} cannot change on an existing port: delete and re-add it")
                } else {
                    format!(
                        "unknown option {k:?} (settable: {})",
                        Self::SETTABLE.join(", ")
                    )
                },
            );
        }
        let mut merged = current.clone();
        if changes.get("access").is_some_and(|v| !v.is_empty()) {
            merged.remove("trunk");
            merged.remove("native");
        }
        if changes.get("trunk").is_some_and(|v| !v.is_empty()) {
            merged.remove("access");
        }
        for (k, v) in changes {
            if v.is_empty() {
                merged.remove(k);
            } else {
                merged.insert(k.clone(), v.clone());
            }
        }
        Ok(merged)
    }

    pub fn parse(name: &str, options: &Options) -> Result<PortSpec, String> {
        validate_name("port", name)?;
        let kind: PortKind = options
            .get("type")
            .ok_or("missing option type=tap|afpacket|afxdp|vhostuser|bond|vxlan|null")?
            .parse()?;
        if kind == PortKind::Vxlan {
            let mut known: Vec<&str> = vec!["type", "allowed_macs", "max_macs", "storm_pps"];
            known.extend_from_slice(super::vxlan::KEYS);
            reject_unknown(options, &known)?;
            let cfg = super::vxlan::parse(options)?;
            let mut policy = parse_policy(options)?;
            policy.vlan = cfg.vlan_mode();
            return Ok(PortSpec {
                kind,
                iface: String::new(),
                policy,
                vxlan: Some(cfg),
                bond: None,
                afxdp: None,
                null: None,
                vhostuser: None,
                tap_io: None,
            });
        }
        if kind == PortKind::Bond {
            let mut known: Vec<&str> = super::bond::KEYS.to_vec();
            known.extend_from_slice(POLICY_KEYS);
            reject_unknown(options, &known)?;
            return Ok(PortSpec {
                kind,
                iface: name.to_string(),
                policy: parse_policy(options)?,
                vxlan: None,
                bond: Some(super::bond::parse(options)?),
                afxdp: None,
                null: None,
                vhostuser: None,
                tap_io: None,
            });
        }
        if kind == PortKind::Null {
            let mut known: Vec<&str> = vec!["type"];
            known.extend_from_slice(crate::port::null::KEYS);
            known.extend_from_slice(POLICY_KEYS);
            reject_unknown(options, &known)?;
            return Ok(PortSpec {
                kind,
                iface: String::new(),
                policy: parse_policy(options)?,
                vxlan: None,
                bond: None,
                afxdp: None,
                null: Some(crate::port::null::parse(options)?),
                vhostuser: None,
                tap_io: None,
            });
        }
        if kind == PortKind::Vhostuser {
            let mut known: Vec<&str> = crate::port::vhostuser::KEYS.to_vec();
            known.extend_from_slice(POLICY_KEYS);
            reject_unknown(options, &known)?;
            return Ok(PortSpec {
                kind,
                iface: String::new(),
                policy: parse_policy(options)?,
                vxlan: None,
                bond: None,
                afxdp: None,
                null: None,
                vhostuser: Some(crate::port::vhostuser::parse(options)?),
                tap_io: None,
            });
        }
        let (afxdp, tap_io) = match kind {
            PortKind::Afxdp => {
                let mut known: Vec<&str> = crate::port::afxdp::config::KEYS.to_vec();
                known.extend_from_slice(POLICY_KEYS);
                reject_unknown(options, &known)?;
                (Some(AfXdpConfig::parse(options)?), None)
            }
            PortKind::Tap => {
                let mut known: Vec<&str> = crate::port::tap::KEYS.to_vec();
                known.extend_from_slice(POLICY_KEYS);
                reject_unknown(options, &known)?;
                (None, Some(TapIo::parse(options)?))
            }
            _ => {
                reject_unknown(options, Self::KEYS)?;
                (None, None)
            }
        };
        let iface = match (kind, options.get("iface")) {
            (_, Some(i)) => i.clone(),
            (PortKind::Tap, None) => name.to_string(),
            (_, None) => return Err(format!("type={} needs iface=INTERFACE", kind.as_str())),
        };
        validate_ifname(&iface).map_err(|e| e.to_string())?;
        let policy = parse_policy(options)?;
        Ok(PortSpec {
            kind,
            iface,
            policy,
            vxlan: None,
            bond: None,
            afxdp,
            null: None,
            vhostuser: None,
            tap_io,
        })
    }

    /// The kernel interfaces the port uses: a bond's members, or its iface
    /// (none for a VXLAN port, which rides another port).
    pub fn ifaces(&self) -> Vec<&str> {
        match &self.bond {
            Some(b) => b.members.iter().map(String::as_str).collect(),
            None if self.iface.is_empty() => Vec::new(),
            None => vec![self.iface.as_str()],
        }
    }
}

#[cfg(test)]
mod tests;
