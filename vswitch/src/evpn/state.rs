//! The EVPN decisions, with no sockets and no clock: which routes this
//! host advertises, which remote MACs and flood lists the datapath gets,
//! and MAC mobility (RFC 7432 section 15).
//!
//! Inputs are what BGP says (remote routes and their withdrawals, or a whole
//! table after a reconnect) and what the bridge's table says (a MAC became
//! local, or stopped being). Every input returns the actions that bring
//! GoBGP and the datapath in line: routes to advertise or withdraw, and
//! tunnel changes. Decisions are made per (VNI, MAC) from everything known
//! about it, so the order of inputs never matters for the outcome.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use hashbrown::{HashMap, HashSet};

use super::TunnelOp;
use crate::wire::MacAddr;

/// Bounds on what BGP peers can make this host store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Remote MACs per VNI.
    pub max_macs: usize,
    /// Remote VTEPs per VNI.
    pub max_vteps: usize,
}

/// The identity of a route in BGP: its RD and NLRI. A MAC-only and a
/// MAC+IP route of one MAC are two routes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteId {
    pub rd: String,
    pub nlri: Nlri,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Nlri {
    /// Type 2.
    Mac {
        vni: u32,
        mac: MacAddr,
        ip: Option<std::net::IpAddr>,
    },
    /// Type 3, originated by `origin`. Its VNI is an attribute (the PMSI
    /// label), not part of its identity: a withdrawal may come without it.
    Flood { etag: u32, origin: Ipv4Addr },
}

/// A route another VTEP advertises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRoute {
    pub id: RouteId,
    pub vni: u32,
    /// The next hop: where the VTEP is.
    pub vtep: Ipv4Addr,
    /// MAC mobility sequence number (0 without the community).
    pub seq: u32,
}

/// A route this host advertises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LocalRoute {
    Mac {
        vni: u32,
        mac: MacAddr,
        seq: u32,
    },
    /// The same MAC with the IPv4 address ARP snooping saw it use.
    MacIp {
        vni: u32,
        mac: MacAddr,
        ip: Ipv4Addr,
        seq: u32,
    },
    Flood {
        vni: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Advertise(LocalRoute),
    Withdraw(LocalRoute),
    Tunnel(TunnelOp),
}

/// Per-VNI figures for `vsctl evpn show`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VniFigures {
    pub vni: u32,
    pub vlan: u16,
    pub local_macs: usize,
    pub remote_macs: usize,
    pub vteps: Vec<Ipv4Addr>,
}

#[derive(Default)]
pub struct EvpnState {
    limits: Option<Limits>,
    local_ip: Option<Ipv4Addr>,
    /// VNI -> VLAN.
    vnis: BTreeMap<u32, u16>,
    /// VLAN -> VNI.
    vlans: HashMap<u16, u32>,
    /// Every remote route, by identity.
    remote: HashMap<RouteId, RemoteRoute>,
    /// (VNI, MAC) -> the remote routes about it.
    by_mac: HashMap<(u32, MacAddr), Vec<RouteId>>,
    /// VNI -> distinct remote MACs, for the limit.
    macs_per_vni: HashMap<u32, usize>,
    /// VNI -> VTEP -> remote routes naming it, for the limit.
    vtep_refs: HashMap<u32, HashMap<Ipv4Addr, u32>>,
    /// VNI -> VTEP -> type-3 routes from it: the flood lists.
    flood_refs: HashMap<u32, HashMap<Ipv4Addr, u32>>,
    /// MACs the bridge has behind local ports.
    local: HashSet<(u32, MacAddr)>,
    /// Addresses local MACs were seen using (ARP), for MAC+IP routes.
    snooped: HashMap<(u32, MacAddr), Ipv4Addr>,
    /// What GoBGP has from us.
    advertised: HashMap<(u32, MacAddr), u32>,
    advertised_ip: HashMap<(u32, MacAddr), (Ipv4Addr, u32)>,
    flood_advertised: BTreeSet<u32>,
    /// What the datapath has from us.
    installed: HashMap<(u32, MacAddr), Ipv4Addr>,
    /// VNI -> (MACs advertised, MACs installed): kept as they change, so
    /// figures cost nothing however large the tables.
    counts: HashMap<u32, (usize, usize)>,
    flood_installed: HashMap<u32, BTreeSet<Ipv4Addr>>,
    /// Routes not stored because of a limit.
    pub refused: u64,
}

impl EvpnState {
    pub fn new(limits: Limits) -> EvpnState {
        EvpnState {
            limits: Some(limits),
            ..EvpnState::default()
        }
    }

    fn limits(&self) -> Limits {
        self.limits.unwrap_or(Limits {
            max_macs: usize::MAX,
            max_vteps: usize::MAX,
        })
    }

    pub fn local_ip(&self) -> Option<Ipv4Addr> {
        self.local_ip
    }

    pub fn vnis(&self) -> &BTreeMap<u32, u16> {
        &self.vnis
    }

    /// The VTEP's address and VNIs, as the datapath reports them. A change
    /// starts over: everything advertised is withdrawn and re-derived.
    /// `fresh` says the datapath holds no EVPN state (re-attached): every
    /// install is sent again.
    pub fn set_topology(
        &mut self,
        local_ip: Ipv4Addr,
        vnis: &[(u32, u16)],
        fresh: bool,
    ) -> Vec<Action> {
        let map: BTreeMap<u32, u16> = vnis.iter().copied().collect();
        let mut actions = Vec::new();
        let changed = self.local_ip != Some(local_ip) || self.vnis != map;
        if changed {
            for (&(vni, mac), &seq) in &self.advertised {
                actions.push(Action::Withdraw(LocalRoute::Mac { vni, mac, seq }));
            }
            for (&(vni, mac), &(ip, seq)) in &self.advertised_ip {
                actions.push(Action::Withdraw(LocalRoute::MacIp { vni, mac, ip, seq }));
            }
            self.advertised_ip.clear();
            self.snooped.clear();
            for &vni in &self.flood_advertised {
                actions.push(Action::Withdraw(LocalRoute::Flood { vni }));
            }
            self.advertised.clear();
            self.flood_advertised.clear();
            self.local.clear();
            for c in self.counts.values_mut() {
                c.0 = 0;
            }
            self.local_ip = Some(local_ip);
            self.vlans = map.iter().map(|(n, v)| (*v, *n)).collect();
            self.vnis = map;
        }
        if changed || fresh {
            self.installed.clear();
            self.flood_installed.clear();
            for c in self.counts.values_mut() {
                c.1 = 0;
            }
            // Routes that named us, or a VNI we no longer carry, are
            // dropped; the rest are installed again. (Not on every call:
            // the session checks the topology each second, and a table of
            // 100k routes would be walked each time.)
            let keep: Vec<RemoteRoute> = self.remote.values().cloned().collect();
            self.replace_remote_inner(keep, &mut actions);
        }
        self.sync_floods(&mut actions);
        actions
    }

    /// Whether a received route is ours or about a VNI we do not carry:
    /// either way it is not a remote route.
    fn concerns_us(&self, r: &RemoteRoute) -> bool {
        Some(r.vtep) != self.local_ip && self.vnis.contains_key(&r.vni)
    }

    fn insert_remote(&mut self, r: RemoteRoute) -> bool {
        if !self.concerns_us(&r) {
            return false;
        }
        let limits = self.limits();
        let vni = r.vni;
        if !self.vtep_allowed(vni, r.vtep) {
            self.refused += 1;
            return false;
        }
        match r.id.nlri {
            Nlri::Mac { vni, mac, .. } => {
                let known = self.by_mac.contains_key(&(vni, mac));
                let count = self.macs_per_vni.get(&vni).copied().unwrap_or(0);
                if !known && count >= limits.max_macs {
                    self.refused += 1;
                    return false;
                }
                let ids = self.by_mac.entry((vni, mac)).or_default();
                if !ids.contains(&r.id) {
                    ids.push(r.id.clone());
                }
                if !known {
                    *self.macs_per_vni.entry(vni).or_insert(0) += 1;
                }
            }
            Nlri::Flood { .. } => {
                *self
                    .flood_refs
                    .entry(vni)
                    .or_default()
                    .entry(r.vtep)
                    .or_insert(0) += 1;
            }
        }
        *self
            .vtep_refs
            .entry(vni)
            .or_default()
            .entry(r.vtep)
            .or_insert(0) += 1;
        self.remote.insert(r.id.clone(), r);
        true
    }

    fn unref(map: &mut HashMap<u32, HashMap<Ipv4Addr, u32>>, vni: u32, vtep: Ipv4Addr) {
        if let Some(per_vni) = map.get_mut(&vni) {
            if let Some(n) = per_vni.get_mut(&vtep) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    per_vni.remove(&vtep);
                }
            }
            if per_vni.is_empty() {
                map.remove(&vni);
            }
        }
    }

    /// A VTEP new to `vni` must fit its limit.
    fn vtep_allowed(&self, vni: u32, vtep: Ipv4Addr) -> bool {
        match self.vtep_refs.get(&vni) {
            None => self.limits().max_vteps > 0,
            Some(v) => v.contains_key(&vtep) || v.len() < self.limits().max_vteps,
        }
    }

    fn remove_remote(&mut self, id: &RouteId) -> Option<RemoteRoute> {
        let r = self.remote.remove(id)?;
        let vni = r.vni;
        Self::unref(&mut self.vtep_refs, vni, r.vtep);
        if matches!(id.nlri, Nlri::Flood { .. }) {
            Self::unref(&mut self.flood_refs, vni, r.vtep);
        }
        if let Nlri::Mac { vni, mac, .. } = id.nlri {
            if let Some(ids) = self.by_mac.get_mut(&(vni, mac)) {
                ids.retain(|i| i != id);
                if ids.is_empty() {
                    self.by_mac.remove(&(vni, mac));
                    if let Some(n) = self.macs_per_vni.get_mut(&vni) {
                        *n = n.saturating_sub(1);
                    }
                }
            }
        }
        Some(r)
    }

    /// A route from BGP (new or replacing one with the same identity).
    pub fn remote_update(&mut self, r: RemoteRoute) -> Vec<Action> {
        let mut actions = Vec::new();
        let key = match r.id.nlri {
            Nlri::Mac { vni, mac, .. } => Some((vni, mac)),
            Nlri::Flood { .. } => None,
        };
        // Replaced as a whole: the VTEP or sequence may have changed.
        self.remove_remote(&r.id);
        self.insert_remote(r);
        match key {
            Some(k) => self.decide(k, &mut actions),
            None => self.sync_floods(&mut actions),
        }
        actions
    }

    /// A route BGP no longer has.
    pub fn remote_withdraw(&mut self, id: &RouteId) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.remove_remote(id).is_some() {
            match id.nlri {
                Nlri::Mac { vni, mac, .. } => self.decide((vni, mac), &mut actions),
                Nlri::Flood { .. } => self.sync_floods(&mut actions),
            }
        }
        actions
    }

    /// BGP's whole table (after a reconnect): what is not in it is gone.
    pub fn replace_remote(&mut self, routes: Vec<RemoteRoute>) -> Vec<Action> {
        let mut actions = Vec::new();
        self.replace_remote_inner(routes, &mut actions);
        self.sync_floods(&mut actions);
        actions
    }

    fn replace_remote_inner(&mut self, routes: Vec<RemoteRoute>, actions: &mut Vec<Action>) {
        let mut keys: HashSet<(u32, MacAddr)> = self.by_mac.keys().copied().collect();
        keys.extend(self.installed.keys().copied());
        self.remote.clear();
        self.by_mac.clear();
        self.macs_per_vni.clear();
        self.vtep_refs.clear();
        self.flood_refs.clear();
        for r in routes {
            if let Nlri::Mac { vni, mac, .. } = r.id.nlri {
                keys.insert((vni, mac));
            }
            self.insert_remote(r);
        }
        let mut keys: Vec<_> = keys.into_iter().collect();
        keys.sort();
        for k in keys {
            self.decide(k, actions);
        }
    }

    /// The bridge learned `mac` of `vlan` behind a local port (`local`), or
    /// it is gone from there; `ip` is the address ARP showed it using.
    pub fn local_change(
        &mut self,
        vlan: u16,
        mac: MacAddr,
        local: bool,
        ip: Option<Ipv4Addr>,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        let Some(&vni) = self.vlans.get(&vlan) else {
            return actions;
        };
        if !mac.is_learnable() {
            return actions;
        }
        let mut changed = if local {
            self.local.insert((vni, mac))
        } else {
            self.local.remove(&(vni, mac))
        };
        match (local, ip) {
            (true, Some(ip)) => changed |= self.snooped.insert((vni, mac), ip) != Some(ip),
            (false, _) => changed |= self.snooped.remove(&(vni, mac)).is_some(),
            (true, None) => {}
        }
        if changed {
            self.decide((vni, mac), &mut actions);
        }
        actions
    }

    /// Every local MAC the bridge has (after the journal overflowed).
    pub fn replace_local(&mut self, macs: &[(u16, MacAddr)]) -> Vec<Action> {
        let now: HashSet<(u32, MacAddr)> = macs
            .iter()
            .filter(|(_, m)| m.is_learnable())
            .filter_map(|(vlan, mac)| self.vlans.get(vlan).map(|vni| (*vni, *mac)))
            .collect();
        let mut keys: Vec<(u32, MacAddr)> =
            now.symmetric_difference(&self.local).copied().collect();
        keys.sort();
        self.snooped.retain(|k, _| now.contains(k));
        self.local = now;
        let mut actions = Vec::new();
        for k in keys {
            self.decide(k, &mut actions);
        }
        actions
    }

    /// The remote route that wins for a MAC: the highest sequence, then the
    /// lowest VTEP address (RFC 7432 section 15.1).
    fn best_remote(&self, key: (u32, MacAddr)) -> Option<(u32, Ipv4Addr)> {
        self.by_mac
            .get(&key)?
            .iter()
            .filter_map(|id| self.remote.get(id))
            .map(|r| (r.seq, r.vtep))
            .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
    }

    /// Brings one MAC's advertisement and installation in line with what
    /// is known about it.
    fn decide(&mut self, key: (u32, MacAddr), actions: &mut Vec<Action>) {
        let (vni, mac) = key;
        let best = self.best_remote(key);
        let mut advertise = None;
        if self.local.contains(&key) {
            match (self.advertised.get(&key).copied(), best) {
                // Someone advertised it after us with a higher sequence (or
                // the same one from a lower address): it moved away.
                (Some(ours), Some((seq, vtep)))
                    if seq > ours || (seq == ours && self.local_ip.is_some_and(|me| vtep < me)) =>
                {
                    self.local.remove(&key);
                }
                (Some(ours), _) => advertise = Some(ours),
                // Newly local: one above whatever was seen elsewhere.
                (None, Some((seq, _))) => advertise = Some(seq.saturating_add(1)),
                (None, None) => advertise = Some(0),
            }
        }
        match (advertise, self.advertised.get(&key).copied()) {
            (Some(seq), Some(old)) if seq == old => {}
            (Some(seq), had) => {
                self.advertised.insert(key, seq);
                if had.is_none() {
                    self.counts.entry(vni).or_default().0 += 1;
                }
                actions.push(Action::Advertise(LocalRoute::Mac { vni, mac, seq }));
            }
            (None, Some(old)) => {
                self.advertised.remove(&key);
                let c = self.counts.entry(vni).or_default();
                c.0 = c.0.saturating_sub(1);
                actions.push(Action::Withdraw(LocalRoute::Mac { vni, mac, seq: old }));
            }
            (None, None) => {}
        }
        let with_ip = advertise.and_then(|seq| self.snooped.get(&key).map(|ip| (*ip, seq)));
        let had_ip = self.advertised_ip.get(&key).copied();
        if with_ip != had_ip {
            if let Some((ip, seq)) = had_ip.filter(|(old, _)| with_ip.map(|w| w.0) != Some(*old)) {
                actions.push(Action::Withdraw(LocalRoute::MacIp { vni, mac, ip, seq }));
            }
            match with_ip {
                Some((ip, seq)) => {
                    self.advertised_ip.insert(key, (ip, seq));
                    actions.push(Action::Advertise(LocalRoute::MacIp { vni, mac, ip, seq }));
                }
                None => {
                    self.advertised_ip.remove(&key);
                }
            }
        }
        let want = match advertise {
            Some(_) => None,
            None => best.map(|(_, vtep)| vtep),
        };
        if self.installed.get(&key).copied() != want {
            let had = match want {
                Some(vtep) => self.installed.insert(key, vtep),
                None => self.installed.remove(&key),
            };
            let c = self.counts.entry(vni).or_default();
            match (had, want) {
                (None, Some(_)) => c.1 += 1,
                (Some(_), None) => c.1 = c.1.saturating_sub(1),
                _ => {}
            }
            actions.push(Action::Tunnel(TunnelOp::Mac {
                vni,
                mac,
                vtep: want,
            }));
        }
    }

    /// Flood lists from type-3 routes, and our own type-3 per VNI.
    fn sync_floods(&mut self, actions: &mut Vec<Action>) {
        let vnis: Vec<u32> = self.vnis.keys().copied().collect();
        for vni in vnis {
            let new: BTreeSet<Ipv4Addr> = self
                .flood_refs
                .get(&vni)
                .map(|m| m.keys().copied().collect())
                .unwrap_or_default();
            let old = self.flood_installed.remove(&vni).unwrap_or_default();
            for &vtep in old.difference(&new) {
                actions.push(Action::Tunnel(TunnelOp::Flood {
                    vni,
                    vtep,
                    member: false,
                }));
            }
            for &vtep in new.difference(&old) {
                actions.push(Action::Tunnel(TunnelOp::Flood {
                    vni,
                    vtep,
                    member: true,
                }));
            }
            if !new.is_empty() {
                self.flood_installed.insert(vni, new);
            }
            if self.flood_advertised.insert(vni) {
                actions.push(Action::Advertise(LocalRoute::Flood { vni }));
            }
        }
    }
}

mod views;

#[cfg(test)]
mod tests;
