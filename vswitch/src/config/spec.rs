//! Parsing and validation of bridge and port options.

use crate::control::protocol::Options;
use crate::fdb::{DEFAULT_AGING_SECS, DEFAULT_MAX_ENTRIES};
use crate::port::bond::BondConfig;
use crate::port::{validate_ifname, PortKind};

/// Largest table an operator may ask for per bridge (about 100 MiB).
pub const MAX_MAC_TABLE_SIZE: usize = 4 * 1024 * 1024;
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BridgeSpec {
    pub aging_secs: u64,
    pub mac_table_size: usize,
}

impl BridgeSpec {
    pub const KEYS: &'static [&'static str] = &["aging", "mac_table_size"];

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
        Ok(BridgeSpec {
            aging_secs,
            mac_table_size,
        })
    }
}

/// A port's settings, parsed from its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    pub kind: PortKind,
    /// The kernel interface: the tap to create or attach to, or the
    /// interface an afpacket port binds; a bond's own name.
    pub iface: String,
    /// A bond's members and mode.
    pub bond: Option<BondConfig>,
}

impl PortSpec {
    pub const KEYS: &'static [&'static str] = &["type", "iface"];

    pub fn parse(name: &str, options: &Options) -> Result<PortSpec, String> {
        validate_name("port", name)?;
        let kind: PortKind = options
            .get("type")
            .ok_or("missing option type=tap|afpacket|bond")?
            .parse()?;
        if kind == PortKind::Bond {
            reject_unknown(options, super::bond::KEYS)?;
            return Ok(PortSpec {
                kind,
                iface: name.to_string(),
                bond: Some(super::bond::parse(options)?),
            });
        }
        reject_unknown(options, Self::KEYS)?;
        let iface = match (kind, options.get("iface")) {
            (_, Some(i)) => i.clone(),
            (PortKind::Tap, None) => name.to_string(),
            (_, None) => return Err(format!("type={} needs iface=INTERFACE", kind.as_str())),
        };
        validate_ifname(&iface).map_err(|e| e.to_string())?;
        Ok(PortSpec {
            kind,
            iface,
            bond: None,
        })
    }

    /// The kernel interfaces the port uses: a bond's members, or its iface.
    pub fn ifaces(&self) -> Vec<&str> {
        match &self.bond {
            Some(b) => b.members.iter().map(String::as_str).collect(),
            None => vec![self.iface.as_str()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> Options {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn names() {
        for good in ["br0", "a", "vm-1.2_x", "123456789012345"] {
            assert!(validate_name("bridge", good).is_ok(), "{good}");
        }
        for bad in ["", "-a", ".a", "a b", "a/b", "1234567890123456", "é"] {
            assert!(validate_name("bridge", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bridge_options() {
        assert_eq!(
            BridgeSpec::parse(&Options::new()).unwrap(),
            BridgeSpec {
                aging_secs: 300,
                mac_table_size: 65536
            }
        );
        let s = BridgeSpec::parse(&opts(&[("aging", "10"), ("mac_table_size", "8")])).unwrap();
        assert_eq!((s.aging_secs, s.mac_table_size), (10, 8));
        for bad in [
            opts(&[("aging", "abc")]),
            opts(&[("aging", "0")]),
            opts(&[("aging", "-5")]),
            opts(&[("aging", "86401")]),
            opts(&[("mac_table_size", "0")]),
            opts(&[("colour", "red")]),
        ] {
            assert!(BridgeSpec::parse(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn port_options() {
        let tap = PortSpec::parse("vm1", &opts(&[("type", "tap")])).unwrap();
        assert_eq!((tap.kind, tap.iface.as_str()), (PortKind::Tap, "vm1"));
        let named = PortSpec::parse("vm1", &opts(&[("type", "tap"), ("iface", "tap9")])).unwrap();
        assert_eq!(named.iface, "tap9");
        let up = PortSpec::parse("up", &opts(&[("type", "afpacket"), ("iface", "eth0")])).unwrap();
        assert_eq!((up.kind, up.iface.as_str()), (PortKind::Afpacket, "eth0"));
        let errors = [
            ("p", opts(&[])),
            ("p", opts(&[("type", "afpacket")])),
            ("p", opts(&[("type", "warp")])),
            ("p", opts(&[("type", "loopback")])),
            ("p", opts(&[("type", "tap"), ("colour", "red")])),
            ("p", opts(&[("type", "tap"), ("iface", "has space")])),
            ("bad name", opts(&[("type", "tap")])),
        ];
        for (name, o) in errors {
            assert!(PortSpec::parse(name, &o).is_err(), "{name} {o:?}");
        }
        assert!(PortSpec::parse("p", &opts(&[("type", "afpacket")]))
            .unwrap_err()
            .contains("iface"));
    }

    #[test]
    fn bond_ports() {
        let o = opts(&[("type", "bond"), ("members", "eth0,eth1"), ("mode", "lacp")]);
        let b = PortSpec::parse("bond0", &o).unwrap();
        assert_eq!((b.kind, b.iface.as_str()), (PortKind::Bond, "bond0"));
        assert_eq!(b.ifaces(), ["eth0", "eth1"]);
        let up = PortSpec::parse("up", &opts(&[("type", "afpacket"), ("iface", "eth0")])).unwrap();
        assert_eq!(up.ifaces(), ["eth0"]);
        let mut iface = o.clone();
        iface.insert("iface".into(), "x".into());
        assert!(PortSpec::parse("bond0", &iface)
            .unwrap_err()
            .contains("unknown option"));
        let mut members_on_tap = opts(&[("type", "tap")]);
        members_on_tap.insert("members".into(), "a,b".into());
        assert!(PortSpec::parse("t", &members_on_tap).is_err());
    }
}
