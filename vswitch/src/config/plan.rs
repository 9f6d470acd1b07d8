//! The steps from the running configuration to a desired one, as the same
//! requests an operator would type (`port set`, `port del`, ...), so that
//! running a plan goes through the executor's usual checks and code paths.
//!
//! What counts as unchanged: a port is untouched when it stays on the same
//! bridge with exactly the same options (and, for a VXLAN port, its
//! underlay port is untouched too). A port whose differences are all
//! settable on a running port (VLAN mode and policy, `PortSpec::SETTABLE`)
//! gets one `port set`; any other difference (type, interface, bond
//! members, VTEP settings, bridge) is a delete and an add. A bridge whose
//! `mac_table_size` changes, or that goes to or from `worker=all`, is
//! rebuilt, with its ports; other bridge options are set in place.
//!
//! Order: static entries that go, ports that go (tunnels before their
//! underlays), bridges that go, new bridges, bridge settings, port
//! settings, new ports (underlays before tunnels), then new static
//! entries. A bridge's guest VLAN range is set before the port changes
//! when the ports it keeps fit the new range, after them when the new and
//! changed ports fit the old range, and otherwise lifted for the changes
//! and set afterwards (the executor holds every other request off while a
//! plan runs, so nothing else sees the gap).

use std::collections::{HashMap, HashSet};

use super::{BridgeConfig, BridgeSpec, Config, PortConfig, PortSpec, StaticFdbEntry};
use crate::control::protocol::{Options, Request};

/// The steps that turn `running` into `target` (which must have passed
/// [`super::apply::validate`]). Empty when they already agree.
pub fn plan(running: &Config, target: &Config) -> Vec<Request> {
    let mut p = Planner::new(running, target);
    p.bridges();
    p.ports();
    p.emit()
}

/// One step as the `vsctl` command line that does the same.
pub fn step_text(step: &Request) -> String {
    fn kv(options: &Options) -> String {
        options
            .iter()
            .map(|(k, v)| format!(" {k}={v}"))
            .collect::<String>()
    }
    match step {
        Request::BridgeAdd { bridge, options } => format!("bridge add {bridge}{}", kv(options)),
        Request::BridgeSet { bridge, options } => format!("bridge set {bridge}{}", kv(options)),
        Request::BridgeDel { bridge } => format!("bridge del {bridge}"),
        Request::PortAdd {
            bridge,
            port,
            options,
        } => format!("port add {bridge} {port}{}", kv(options)),
        Request::PortSet { port, options } => format!("port set {port}{}", kv(options)),
        Request::PortDel { bridge, port } => format!("port del {bridge} {port}"),
        Request::FdbAdd {
            bridge,
            mac,
            port,
            vlan,
            remote,
        } => {
            let remote = remote.map(|r| format!(" remote={r}")).unwrap_or_default();
            format!("fdb add {bridge} {mac} {port} vlan={vlan}{remote}")
        }
        Request::FdbDel { bridge, mac, vlan } => format!("fdb del {bridge} {mac} vlan={vlan}"),
        Request::EvpnSet { bridge, options } => format!("evpn set {bridge}{}", kv(options)),
        Request::EvpnDel { bridge } => format!("evpn del {bridge}"),
        other => format!("{other:?}"),
    }
}

/// The changes that turn options `old` into `new`: changed and new keys
/// with their value, removed keys with an empty one.
fn option_changes(old: &Options, new: &Options) -> Options {
    let mut out = Options::new();
    for (k, v) in new {
        if old.get(k) != Some(v) {
            out.insert(k.clone(), v.clone());
        }
    }
    for k in old.keys() {
        if !new.contains_key(k) {
            out.insert(k.clone(), String::new());
        }
    }
    out
}

/// The `port set` changes turning `old` into `new`, if a running port can
/// take them; `None` when the port must be deleted and added again.
fn settable(name: &str, old: &Options, new: &Options) -> Option<Options> {
    let changes = option_changes(old, new);
    let merged = PortSpec::merge_options(old, &changes).ok()?;
    (merged == *new && PortSpec::parse(name, &merged).is_ok()).then_some(changes)
}

fn is_vxlan(p: &PortConfig) -> bool {
    p.options.get("type").map(String::as_str) == Some("vxlan")
}

struct Planner<'a> {
    running: &'a Config,
    target: &'a Config,
    /// Running bridges that go (removed or rebuilt).
    bridges_gone: HashSet<&'a str>,
    bridges_new: Vec<&'a BridgeConfig>,
    bridge_early: Vec<Request>,
    bridge_late: Vec<Request>,
    /// Running ports deleted (by name; with their bridge).
    ports_gone: Vec<(&'a str, &'a str, bool)>,
    port_sets: Vec<Request>,
    /// Target ports added (bridge, port).
    ports_new: Vec<(&'a str, &'a PortConfig)>,
}

impl<'a> Planner<'a> {
    fn new(running: &'a Config, target: &'a Config) -> Planner<'a> {
        Planner {
            running,
            target,
            bridges_gone: HashSet::new(),
            bridges_new: Vec::new(),
            bridge_early: Vec::new(),
            bridge_late: Vec::new(),
            ports_gone: Vec::new(),
            port_sets: Vec::new(),
            ports_new: Vec::new(),
        }
    }

    fn bridges(&mut self) {
        for b in &self.running.bridges {
            match self.target.bridge(&b.name) {
                None => {
                    self.bridges_gone.insert(&b.name);
                }
                Some(t) => {
                    // What only `bridge add` sets.
                    let shape = |o: &Options| {
                        BridgeSpec::parse(o)
                            .map(|s| (s.mac_table_size, s.spread))
                            .ok()
                    };
                    if shape(&b.options) != shape(&t.options) {
                        self.bridges_gone.insert(&b.name);
                        self.bridges_new.push(t);
                    }
                }
            }
        }
        for t in &self.target.bridges {
            if self.running.bridge(&t.name).is_none() {
                self.bridges_new.push(t);
            }
        }
    }

    fn ports(&mut self) {
        let target_ports: HashMap<&str, (&str, &PortConfig)> = self
            .target
            .bridges
            .iter()
            .flat_map(|b| {
                b.ports
                    .iter()
                    .map(move |p| (p.name.as_str(), (b.name.as_str(), p)))
            })
            .collect();
        let mut recreate: HashSet<&str> = HashSet::new();
        let mut keep: Vec<(&str, &PortConfig, &PortConfig)> = Vec::new();
        for b in &self.running.bridges {
            for p in &b.ports {
                let same_bridge = !self.bridges_gone.contains(b.name.as_str());
                match target_ports.get(p.name.as_str()) {
                    Some((tb, tp)) if same_bridge && *tb == b.name => {
                        keep.push((&b.name, p, tp));
                    }
                    Some(_) => {
                        recreate.insert(&p.name);
                        self.ports_gone.push((&b.name, &p.name, is_vxlan(p)));
                    }
                    None => self.ports_gone.push((&b.name, &p.name, is_vxlan(p))),
                }
            }
        }
        // Ports whose options changed: set in place, or delete and add.
        let mut kept = Vec::new();
        for (bridge, old, new) in keep {
            if old.options == new.options {
                kept.push((bridge, old, new));
            } else if let Some(changes) = settable(&new.name, &old.options, &new.options) {
                self.port_sets.push(Request::PortSet {
                    port: new.name.clone(),
                    options: changes,
                });
            } else {
                recreate.insert(&new.name);
                self.ports_gone.push((bridge, &old.name, is_vxlan(old)));
            }
        }
        // A tunnel whose underlay port is rebuilt is rebuilt with it.
        let gone: HashSet<&str> = self.ports_gone.iter().map(|(_, p, _)| *p).collect();
        for (bridge, old, _) in kept {
            let underlay = PortSpec::parse(&old.name, &old.options)
                .ok()
                .and_then(|s| s.vxlan)
                .map(|v| v.underlay);
            if underlay.is_some_and(|u| gone.contains(u.as_str())) {
                self.port_sets
                    .retain(|s| !matches!(s, Request::PortSet { port, .. } if *port == old.name));
                recreate.insert(&old.name);
                self.ports_gone.push((bridge, &old.name, true));
            }
        }
        for b in &self.target.bridges {
            let rebuilt = self.bridges_new.iter().any(|n| n.name == b.name);
            for p in &b.ports {
                let exists = self.running.port(&p.name).is_some();
                if rebuilt || !exists || recreate.contains(p.name.as_str()) {
                    self.ports_new.push((&b.name, p));
                }
            }
        }
        self.guest_ranges();
    }

    /// Bridge settings, placed around the port changes (see the module doc).
    fn guest_ranges(&mut self) {
        for t in &self.target.bridges {
            let Some(old) = self.running.bridge(&t.name) else {
                continue;
            };
            if self.bridges_gone.contains(t.name.as_str()) || old.options == t.options {
                continue;
            }
            let changes = option_changes(&old.options, &t.options);
            let range_changes = changes.contains_key("guest_vlans");
            let admitted = |bridge: &Options, ports: &[&PortConfig]| {
                let Ok(spec) = BridgeSpec::parse(bridge) else {
                    return false;
                };
                ports.iter().all(|p| {
                    PortSpec::parse(&p.name, &p.options)
                        .is_ok_and(|s| spec.admits(&p.name, &s).is_ok())
                })
            };
            let gone: HashSet<&str> = self.ports_gone.iter().map(|(_, p, _)| *p).collect();
            let kept: Vec<&PortConfig> = old
                .ports
                .iter()
                .filter(|p| !gone.contains(p.name.as_str()))
                .collect();
            let kept_ok = admitted(&t.options, &kept);
            let changed: Vec<&PortConfig> =
                t.ports
                    .iter()
                    .filter(|p| {
                        self.ports_new.iter().any(|(_, n)| n.name == p.name)
                            || self.port_sets.iter().any(
                                |s| matches!(s, Request::PortSet { port, .. } if *port == p.name),
                            )
                    })
                    .collect();
            let set = |options| Request::BridgeSet {
                bridge: t.name.clone(),
                options,
            };
            if !range_changes || kept_ok {
                self.bridge_early.push(set(changes));
            } else if admitted(&old.options, &changed) {
                self.bridge_late.push(set(changes));
            } else {
                let mut lift = changes.clone();
                lift.insert("guest_vlans".into(), String::new());
                let range = changes["guest_vlans"].clone();
                self.bridge_early.push(set(lift));
                self.bridge_late
                    .push(set(Options::from([("guest_vlans".into(), range)])));
            }
        }
    }

    fn emit(self) -> Vec<Request> {
        let mut steps = Vec::new();
        // EVPN that goes from a bridge that stays: first, while its VXLAN
        // port is still there to withdraw from.
        for b in &self.running.bridges {
            let stays = self.target.bridge(&b.name);
            if b.evpn.is_some() && stays.is_some_and(|t| t.evpn.is_none()) {
                steps.push(Request::EvpnDel {
                    bridge: b.name.clone(),
                });
            }
        }
        // Static entries that go, where their port and bridge stay (the
        // others go with them).
        let gone_ports: HashSet<&str> = self.ports_gone.iter().map(|(_, p, _)| *p).collect();
        let entry_key = |e: &StaticFdbEntry| (e.vlan, e.mac, e.port.clone(), e.remote);
        let mut surviving: HashSet<(&str, (u16, _, String, _))> = HashSet::new();
        for b in &self.running.bridges {
            if self.bridges_gone.contains(b.name.as_str()) {
                continue;
            }
            let wanted: HashSet<_> = self
                .target
                .bridge(&b.name)
                .map(|t| t.static_fdb.iter().map(entry_key).collect())
                .unwrap_or_default();
            for e in &b.static_fdb {
                if gone_ports.contains(e.port.as_str()) {
                    continue;
                }
                if wanted.contains(&entry_key(e)) {
                    surviving.insert((b.name.as_str(), entry_key(e)));
                } else {
                    steps.push(Request::FdbDel {
                        bridge: b.name.clone(),
                        mac: e.mac,
                        vlan: e.vlan,
                    });
                }
            }
        }
        // Ports that go: tunnels first, so no tunnel outlives its underlay.
        let mut gone = self.ports_gone.clone();
        gone.sort_by_key(|(_, _, vxlan)| !vxlan);
        for (bridge, port, _) in gone {
            steps.push(Request::PortDel {
                bridge: bridge.to_string(),
                port: port.to_string(),
            });
        }
        for b in &self.running.bridges {
            if self.bridges_gone.contains(b.name.as_str()) {
                steps.push(Request::BridgeDel {
                    bridge: b.name.clone(),
                });
            }
        }
        for b in &self.bridges_new {
            steps.push(Request::BridgeAdd {
                bridge: b.name.clone(),
                options: b.options.clone(),
            });
        }
        steps.extend(self.bridge_early);
        steps.extend(self.port_sets);
        let mut new = self.ports_new.clone();
        new.sort_by_key(|(_, p)| is_vxlan(p));
        for (bridge, p) in new {
            steps.push(Request::PortAdd {
                bridge: bridge.to_string(),
                port: p.name.clone(),
                options: p.options.clone(),
            });
        }
        steps.extend(self.bridge_late);
        for b in &self.target.bridges {
            for e in &b.static_fdb {
                if !surviving.contains(&(b.name.as_str(), entry_key(e))) {
                    steps.push(Request::FdbAdd {
                        bridge: b.name.clone(),
                        mac: e.mac,
                        port: e.port.clone(),
                        vlan: e.vlan,
                        remote: e.remote,
                    });
                }
            }
        }
        // EVPN last: it needs the bridge's VXLAN port.
        for b in &self.target.bridges {
            let Some(want) = &b.evpn else { continue };
            let had = self.running.bridge(&b.name).and_then(|r| r.evpn.as_ref());
            let options = match had {
                Some(old) if old == want => continue,
                Some(old) => option_changes(old, want),
                None => want.clone(),
            };
            steps.push(Request::EvpnSet {
                bridge: b.name.clone(),
                options,
            });
        }
        steps
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
