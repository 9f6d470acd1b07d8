//! The declarative host configuration: a whole [`Config`] written by an
//! operator (JSON or YAML, the schema of the state file), read and checked
//! in full before anything is changed.
//!
//! `parse` turns text into a `Config`, naming the path of a field that does
//! not belong (`bridges[0].ports[1]: unknown field ...`); `validate` checks
//! everything a sequence of requests would check, and more that only shows
//! in a whole configuration (a NIC used twice, an underlay that is not
//! there), naming the bridge, the port and the option. Both are pure: no
//! daemon, no kernel, so `vswitchd --check-config` and unit tests run them
//! anywhere. `plan` (beside this file) computes the steps from the running
//! configuration to a checked one.

use std::collections::{HashMap, HashSet};

use super::{BridgeSpec, Config, PortSpec, CONFIG_VERSION};

/// The text formats a configuration may come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

impl Format {
    /// JSON when the text starts with `{` (after blanks), else YAML.
    pub fn sniff(text: &str) -> Format {
        if text.trim_start().starts_with('{') {
            Format::Json
        } else {
            Format::Yaml
        }
    }
}

/// Option values are strings; a YAML or JSON author writes `access: 10` or
/// `lacp_fallback: true` naturally, so scalars inside `options` maps become
/// their text before the strict (unknown fields refused) decoding.
fn stringify_options(v: &mut serde_json::Value) {
    use serde_json::Value;
    let Some(bridges) = v.get_mut("bridges").and_then(Value::as_array_mut) else {
        return;
    };
    let fix = |opts: Option<&mut Value>| {
        if let Some(map) = opts.and_then(Value::as_object_mut) {
            for val in map.values_mut() {
                match val {
                    Value::Number(n) => *val = Value::String(n.to_string()),
                    Value::Bool(b) => *val = Value::String(b.to_string()),
                    _ => {}
                }
            }
        }
    };
    for b in bridges {
        fix(b.get_mut("options"));
        fix(b.get_mut("evpn"));
        if let Some(ports) = b.get_mut("ports").and_then(Value::as_array_mut) {
            for p in ports {
                fix(p.get_mut("options"));
            }
        }
    }
}

/// Parses a configuration from JSON or YAML text. Errors name where in the
/// document the problem is.
pub fn parse(text: &str) -> Result<Config, String> {
    let mut value: serde_json::Value = match Format::sniff(text) {
        Format::Json => serde_json::from_str(text).map_err(|e| format!("JSON: {e}"))?,
        Format::Yaml => {
            let y: serde_norway::Value =
                serde_norway::from_str(text).map_err(|e| format!("YAML: {e}"))?;
            serde_json::to_value(y).map_err(|e| format!("YAML: {e}"))?
        }
    };
    if !value.is_object() {
        return Err("the configuration must be a map with `version` and `bridges`".into());
    }
    stringify_options(&mut value);
    let config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.into_inner().to_string()
        } else {
            format!("{path}: {}", e.into_inner())
        }
    })?;
    Ok(config)
}

/// The configuration as YAML text.
pub fn to_yaml(config: &Config) -> Result<String, String> {
    serde_norway::to_string(config).map_err(|e| e.to_string())
}

/// Checks a whole desired configuration. The first problem found is
/// returned, naming the bridge, port or entry and the option at fault.
pub fn validate(config: &Config) -> Result<(), String> {
    if config.version != CONFIG_VERSION {
        return Err(format!(
            "version: {} is not supported (this vswitchd reads version {CONFIG_VERSION})",
            config.version
        ));
    }
    let mut bridges = HashSet::new();
    let mut ports: HashMap<&str, String> = HashMap::new();
    let mut ifaces: HashMap<String, String> = HashMap::new();
    let mut specs: HashMap<&str, PortSpec> = HashMap::new();
    for (bi, b) in config.bridges.iter().enumerate() {
        let at = format!("bridges[{bi}] ({:?})", b.name);
        super::validate_name("bridge", &b.name).map_err(|e| format!("{at}.name: {e}"))?;
        if !bridges.insert(b.name.as_str()) {
            return Err(format!("{at}.name: bridge {:?} appears twice", b.name));
        }
        let bridge_spec =
            BridgeSpec::parse(&b.options).map_err(|e| format!("{at}.options: {e}"))?;
        if let Some(evpn) = &b.evpn {
            crate::evpn::EvpnSpec::parse(evpn).map_err(|e| format!("{at}.evpn: {e}"))?;
        }
        for (pi, p) in b.ports.iter().enumerate() {
            let pat = format!("{at}.ports[{pi}] ({:?})", p.name);
            let spec =
                PortSpec::parse(&p.name, &p.options).map_err(|e| format!("{pat}.options: {e}"))?;
            if let Some(first) = ports.insert(p.name.as_str(), pat.clone()) {
                return Err(format!(
                    "{pat}.name: port {:?} appears twice (also at {first}); port names are unique across bridges",
                    p.name
                ));
            }
            bridge_spec
                .admits(&p.name, &spec)
                .map_err(|e| format!("{pat}.options: {e}"))?;
            for iface in spec.ifaces() {
                let what = if spec.bond.is_some() {
                    "members"
                } else {
                    "iface"
                };
                if let Some(first) = ifaces.insert(iface.to_string(), pat.clone()) {
                    return Err(format!(
                        "{pat}.options.{what}: interface {iface:?} is already used by {first}"
                    ));
                }
            }
            specs.insert(p.name.as_str(), spec);
        }
    }
    validate_tunnels(config, &specs)?;
    validate_static_entries(config, &specs)?;
    // Whatever the checks above missed, the daemon's own load-time checks
    // would refuse too.
    config.validate()
}

/// VXLAN ports ride an existing, non-tunnel port; one VTEP per address and
/// underlay.
fn validate_tunnels(config: &Config, specs: &HashMap<&str, PortSpec>) -> Result<(), String> {
    let mut vteps = HashMap::new();
    for (bi, b) in config.bridges.iter().enumerate() {
        for (pi, p) in b.ports.iter().enumerate() {
            let Some(vx) = specs.get(p.name.as_str()).and_then(|s| s.vxlan.as_ref()) else {
                continue;
            };
            let pat = format!("bridges[{bi}] ({:?}).ports[{pi}] ({:?})", b.name, p.name);
            match specs.get(vx.underlay.as_str()) {
                None => {
                    return Err(format!(
                        "{pat}.options.underlay: no port {:?} in the configuration",
                        vx.underlay
                    ))
                }
                Some(u) if u.vxlan.is_some() => {
                    return Err(format!(
                        "{pat}.options.underlay: {:?} is itself a vxlan port",
                        vx.underlay
                    ))
                }
                Some(_) => {}
            }
            if let Some(other) = vteps.insert((vx.underlay.clone(), vx.local), p.name.clone()) {
                return Err(format!(
                    "{pat}.options.local: port {other:?} already is the VTEP {} on {:?}",
                    vx.local, vx.underlay
                ));
            }
        }
    }
    Ok(())
}

/// Static entries point at a port of their bridge that carries their VLAN.
fn validate_static_entries(config: &Config, specs: &HashMap<&str, PortSpec>) -> Result<(), String> {
    for (bi, b) in config.bridges.iter().enumerate() {
        let mut seen = HashSet::new();
        for (ei, e) in b.static_fdb.iter().enumerate() {
            let at = format!("bridges[{bi}] ({:?}).static_fdb[{ei}] ({})", b.name, e.mac);
            if !e.mac.is_learnable() {
                return Err(format!("{at}.mac: {} is not a unicast address", e.mac));
            }
            if e.vlan > 4095 {
                return Err(format!("{at}.vlan: {} out of range (0 to 4095)", e.vlan));
            }
            if !seen.insert((e.vlan, e.mac)) {
                return Err(format!("{at}: {} in VLAN {} appears twice", e.mac, e.vlan));
            }
            let spec = match specs.get(e.port.as_str()) {
                Some(s) if b.ports.iter().any(|p| p.name == e.port) => s,
                _ => {
                    return Err(format!(
                        "{at}.port: {:?} is not a port of bridge {:?}",
                        e.port, b.name
                    ))
                }
            };
            if !spec.policy.vlan.networks().contains(e.vlan) {
                return Err(format!(
                    "{at}.vlan: port {:?} does not carry VLAN {} ({})",
                    e.port, e.vlan, spec.policy.vlan
                ));
            }
            match (&spec.vxlan, e.remote) {
                (None, Some(_)) => {
                    return Err(format!(
                        "{at}.remote: applies to vxlan ports; {:?} is not one",
                        e.port
                    ))
                }
                (Some(vx), Some(r)) if !vx.remotes.contains(&r) => {
                    return Err(format!("{at}.remote: {r} is not a remote of {:?}", e.port))
                }
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &str = r#"{
      "version": 1,
      "bridges": [
        {
          "name": "br0",
          "options": {"aging": "120"},
          "ports": [
            {"name": "up0", "options": {"type": "afpacket", "iface": "eth1", "trunk": "10,20"}},
            {"name": "vm1", "options": {"type": "tap", "access": "10", "max_macs": "4"}},
            {"name": "vx0", "options": {"type": "vxlan", "local": "10.0.0.1",
              "remote": "10.0.0.2", "vni": "5000:20", "underlay": "up0"}}
          ],
          "static_fdb": [{"vlan": 10, "mac": "52:54:00:00:00:01", "port": "vm1"}]
        },
        {
          "name": "br1",
          "ports": [
            {"name": "bond0", "options": {"type": "bond", "members": "eth2,eth3", "mode": "lacp"}}
          ]
        }
      ]
    }"#;

    const YAML: &str = r#"
version: 1
bridges:
  - name: br0
    options:
      aging: 120
    ports:
      - name: up0
        options: {type: afpacket, iface: eth1, trunk: "10,20"}
      - name: vm1
        options:
          type: tap
          access: 10
          max_macs: 4
      - name: vx0
        options:
          type: vxlan
          local: 10.0.0.1
          remote: 10.0.0.2
          vni: "5000:20"
          underlay: up0
    static_fdb:
      - {vlan: 10, mac: "52:54:00:00:00:01", port: vm1}
  - name: br1
    ports:
      - name: bond0
        options: {type: bond, members: "eth2,eth3", mode: lacp}
"#;

    fn err(text: &str) -> String {
        let c = match parse(text) {
            Ok(c) => c,
            Err(e) => return e,
        };
        validate(&c).expect_err("should be refused")
    }

    #[test]
    fn yaml_and_json_give_the_same_config() {
        let j = parse(JSON).unwrap();
        let y = parse(YAML).unwrap();
        assert_eq!(j, y);
        validate(&j).unwrap();
        assert_eq!(parse(&to_yaml(&j).unwrap()).unwrap(), j);
        assert_eq!(parse(&serde_json::to_string(&j).unwrap()).unwrap(), j);
    }

    #[test]
    fn unknown_fields_are_named_with_their_path() {
        let e = err(&JSON.replace(r#""name": "vm1", "options""#, r#""name": "vm1", "optons""#));
        assert!(
            e.contains("bridges[0].ports[1]") && e.contains("optons"),
            "{e}"
        );
        let e = err(&YAML.replace("    static_fdb:", "    colour: red\n    static_fdb:"));
        assert!(e.contains("bridges[0]") && e.contains("colour"), "{e}");
        let e = err(&JSON.replace(r#""max_macs": "4""#, r#""max_mac": "4""#));
        assert!(e.contains("\"vm1\"") && e.contains("max_mac"), "{e}");
        assert!(err("version: 1\n").contains("bridges"));
        assert!(err("[1, 2]").contains("map"));
        assert!(err("{").starts_with("JSON"));
        assert!(err("a: [").starts_with("YAML"));
    }

    #[test]
    fn bad_vlans_are_named() {
        let e = err(&JSON.replace(r#""trunk": "10,20""#, r#""trunk": "5000""#));
        assert!(
            e.contains("\"up0\"") && e.contains("trunk") && e.contains("5000"),
            "{e}"
        );
        let e = err(&YAML.replace("access: 10", "access: 0"));
        assert!(e.contains("\"vm1\"") && e.contains("access"), "{e}");
        let e = err(&JSON.replace(r#""vlan": 10,"#, r#""vlan": 30,"#));
        assert!(e.contains("static_fdb[0]") && e.contains("VLAN 30"), "{e}");
    }

    #[test]
    fn a_nic_in_two_places_is_refused() {
        let e = err(&JSON.replace("eth2,eth3", "eth2,eth1"));
        assert!(
            e.contains("\"bond0\"")
                && e.contains("members")
                && e.contains("\"eth1\"")
                && e.contains("\"up0\""),
            "{e}"
        );
        let e = err(&JSON.replace(r#""type": "tap","#, r#""type": "tap", "iface": "eth1","#));
        assert!(e.contains("\"vm1\"") && e.contains("iface"), "{e}");
    }

    #[test]
    fn duplicate_names_are_refused() {
        let e = err(&JSON.replace(r#""name": "bond0""#, r#""name": "vm1""#));
        assert!(
            e.contains("appears twice") && e.contains("bridges[1]"),
            "{e}"
        );
        let e = err(&JSON.replace(r#""name": "br1""#, r#""name": "br0""#));
        assert!(e.contains("bridge \"br0\" appears twice"), "{e}");
    }

    #[test]
    fn tunnels_need_their_underlay() {
        let e = err(&JSON.replace(r#""underlay": "up0""#, r#""underlay": "up9""#));
        assert!(e.contains("\"vx0\"") && e.contains("underlay"), "{e}");
        let e = err(&JSON.replace(r#""underlay": "up0""#, r#""underlay": "vx0""#));
        assert!(e.contains("itself a vxlan"), "{e}");
    }

    #[test]
    fn version_and_guest_ranges() {
        let e = err(&JSON.replace(r#""version": 1"#, r#""version": 2"#));
        assert!(e.starts_with("version"), "{e}");
        let e = err(&JSON.replace(r#""aging": "120""#, r#""guest_vlans": "100-199""#));
        assert!(e.contains("\"vm1\"") && e.contains("guest_vlans"), "{e}");
    }
}
