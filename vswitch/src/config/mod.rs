//! Persisted configuration: what the operator asked for, saved atomically.
//!
//! The file keeps each bridge's and port's options exactly as they were
//! given (`key=value`), and every load re-validates them through the same
//! parsers the control requests use, so a restored switch is configured by
//! the same rules as a live one.

pub mod apply;
mod bond;
pub mod plan;
mod spec;
mod vxlan;

pub use spec::{validate_name, BridgeSpec, PortSpec};

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::control::protocol::Options;
use crate::wire::MacAddr;

/// Version of the file's layout.
pub const CONFIG_VERSION: u32 = 1;
pub const CONFIG_FILE: &str = "config.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub version: u32,
    pub bridges: Vec<BridgeConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeConfig {
    pub name: String,
    #[serde(default)]
    pub options: Options,
    #[serde(default)]
    pub ports: Vec<PortConfig>,
    #[serde(default)]
    pub static_fdb: Vec<StaticFdbEntry>,
    /// `vsctl evpn set` options, when the bridge runs EVPN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evpn: Option<Options>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    pub name: String,
    pub options: Options,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticFdbEntry {
    pub vlan: u16,
    pub mac: MacAddr,
    pub port: String,
    /// For a VXLAN port: the remote VTEP the MAC is behind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<std::net::Ipv4Addr>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: unsupported config version {found} (this vswitchd reads {CONFIG_VERSION})")]
    Version { path: PathBuf, found: u32 },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("saving {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Config {
    pub fn new() -> Config {
        Config {
            version: CONFIG_VERSION,
            bridges: Vec::new(),
        }
    }

    pub fn bridge(&self, name: &str) -> Option<&BridgeConfig> {
        self.bridges.iter().find(|b| b.name == name)
    }

    pub fn bridge_mut(&mut self, name: &str) -> Option<&mut BridgeConfig> {
        self.bridges.iter_mut().find(|b| b.name == name)
    }

    /// The port named `name` and the bridge it is on.
    pub fn port(&self, name: &str) -> Option<(&BridgeConfig, &PortConfig)> {
        self.bridges
            .iter()
            .find_map(|b| b.ports.iter().find(|p| p.name == name).map(|p| (b, p)))
    }

    /// The port that already uses kernel interface `iface` (as its
    /// interface, or as a bond member).
    pub fn port_using_iface(&self, iface: &str) -> Option<&PortConfig> {
        if iface.is_empty() {
            return None;
        }
        self.bridges.iter().flat_map(|b| b.ports.iter()).find(|p| {
            PortSpec::parse(&p.name, &p.options).is_ok_and(|s| s.ifaces().contains(&iface))
        })
    }

    /// Checks everything a request would check, for a file read from disk.
    pub fn validate(&self) -> Result<(), String> {
        let mut port_names = std::collections::HashSet::new();
        let mut ifaces = std::collections::HashSet::new();
        let mut bridge_names = std::collections::HashSet::new();
        for b in &self.bridges {
            validate_name("bridge", &b.name)?;
            if !bridge_names.insert(b.name.as_str()) {
                return Err(format!("bridge {:?} appears twice", b.name));
            }
            BridgeSpec::parse(&b.options).map_err(|e| format!("bridge {:?}: {e}", b.name))?;
            for p in &b.ports {
                let spec = PortSpec::parse(&p.name, &p.options)
                    .map_err(|e| format!("port {:?}: {e}", p.name))?;
                if !port_names.insert(p.name.as_str()) {
                    return Err(format!("port {:?} appears twice", p.name));
                }
                for iface in spec.ifaces() {
                    if !ifaces.insert(iface.to_string()) {
                        return Err(format!("interface {iface:?} is used by two ports"));
                    }
                }
            }
            for e in &b.static_fdb {
                if !b.ports.iter().any(|p| p.name == e.port) {
                    return Err(format!(
                        "static entry {} points at {:?}, not a port of bridge {:?}",
                        e.mac, e.port, b.name
                    ));
                }
                if e.vlan > 4095 {
                    return Err(format!(
                        "static entry {}: VLAN {} out of range",
                        e.mac, e.vlan
                    ));
                }
            }
            if let Some(evpn) = &b.evpn {
                crate::evpn::EvpnSpec::parse(evpn)
                    .map_err(|e| format!("bridge {:?}: evpn: {e}", b.name))?;
            }
        }
        Ok(())
    }

    /// Reads `dir/config.json`; a missing file is an empty configuration.
    pub fn load(dir: &Path) -> Result<Config, ConfigError> {
        let path = dir.join(CONFIG_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::new()),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let config: Config = serde_json::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.clone(),
            source,
        })?;
        if config.version != CONFIG_VERSION {
            return Err(ConfigError::Version {
                path,
                found: config.version,
            });
        }
        config
            .validate()
            .map_err(|message| ConfigError::Invalid { path, message })?;
        Ok(config)
    }

    /// Writes `dir/config.json` atomically: a temporary file in the same
    /// directory, flushed to disk, renamed over the old one, and the
    /// directory synced, so a crash leaves either the old or the new file.
    pub fn save(&self, dir: &Path) -> Result<(), ConfigError> {
        let path = dir.join(CONFIG_FILE);
        let tmp = dir.join(format!(".{CONFIG_FILE}.tmp"));
        let err = |source| ConfigError::Write {
            path: path.clone(),
            source,
        };
        let mut text = serde_json::to_string_pretty(self).map_err(|e| err(e.into()))?;
        text.push('\n');
        let mut f = fs::File::create(&tmp).map_err(err)?;
        f.write_all(text.as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
        drop(f);
        fs::rename(&tmp, &path).map_err(err)?;
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(err)?;
        Ok(())
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

    fn sample() -> Config {
        Config {
            version: CONFIG_VERSION,
            bridges: vec![BridgeConfig {
                name: "br0".into(),
                options: opts(&[("aging", "60")]),
                ports: vec![
                    PortConfig {
                        name: "vm1".into(),
                        options: opts(&[("type", "tap")]),
                    },
                    PortConfig {
                        name: "up0".into(),
                        options: opts(&[("type", "afpacket"), ("iface", "eth0")]),
                    },
                ],
                static_fdb: vec![StaticFdbEntry {
                    vlan: 0,
                    mac: "02:00:00:00:00:01".parse().unwrap(),
                    port: "vm1".into(),
                    remote: None,
                }],
                evpn: None,
            }],
        }
    }

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vswitch-config-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempdir("rt");
        assert_eq!(Config::load(&dir).unwrap(), Config::new());
        sample().save(&dir).unwrap();
        assert_eq!(Config::load(&dir).unwrap(), sample());
        assert!(!dir.join(".config.json.tmp").exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn corrupt_or_invalid_files_are_refused() {
        let dir = tempdir("bad");
        for text in [
            "{",
            r#"{"version":99,"bridges":[]}"#,
            r#"{"version":1,"bridges":[],"colour":"red"}"#,
            r#"{"version":1,"bridges":[{"name":"a"},{"name":"a"}]}"#,
            r#"{"version":1,"bridges":[{"name":"a","ports":[{"name":"p","options":{"type":"warp"}}]}]}"#,
            r#"{"version":1,"bridges":[{"name":"a","static_fdb":[{"vlan":0,"mac":"02:00:00:00:00:01","port":"nope"}]}]}"#,
        ] {
            fs::write(dir.join(CONFIG_FILE), text).unwrap();
            assert!(Config::load(&dir).is_err(), "{text} loaded");
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn validate_catches_duplicates() {
        let mut c = sample();
        c.bridges.push(BridgeConfig {
            name: "br1".into(),
            options: Options::new(),
            ports: vec![PortConfig {
                name: "vm1".into(),
                options: opts(&[("type", "tap"), ("iface", "other")]),
            }],
            static_fdb: vec![],
            evpn: None,
        });
        assert!(c.validate().unwrap_err().contains("twice"));
        c.bridges[1].ports[0].name = "vm2".into();
        c.bridges[1].ports[0].options = opts(&[("type", "tap"), ("iface", "eth0")]);
        assert!(c.validate().unwrap_err().contains("two ports"));
    }

    #[test]
    fn lookups() {
        let c = sample();
        assert_eq!(c.port("up0").unwrap().0.name, "br0");
        assert!(c.port("nope").is_none());
        assert_eq!(c.port_using_iface("eth0").unwrap().name, "up0");
        assert_eq!(c.port_using_iface("vm1").unwrap().name, "vm1");
    }

    #[test]
    fn bond_members_count_as_used_interfaces() {
        let mut c = sample();
        let bond = |name: &str, members: &str| PortConfig {
            name: name.into(),
            options: opts(&[("type", "bond"), ("members", members), ("mode", "lacp")]),
        };
        c.bridges[0].ports.push(bond("bond0", "eth1,eth2"));
        assert!(c.validate().is_ok());
        assert_eq!(c.port_using_iface("eth2").unwrap().name, "bond0");
        assert!(
            c.port_using_iface("bond0").is_none(),
            "a bond's name is no interface"
        );
        c.bridges[0].ports.push(bond("bond1", "eth3,eth0"));
        assert!(c
            .validate()
            .unwrap_err()
            .contains("\"eth0\" is used by two ports"));
    }
}
