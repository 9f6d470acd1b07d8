//! The VTEP's state as JSON, for `vsctl port show` and `vsctl vxlan show`.

use serde_json::json;

use super::VxlanPort;

impl VxlanPort {
    /// What `vsctl port show` and `vxlan show` report of the VTEP.
    pub(super) fn details_json(&self) -> serde_json::Value {
        let mut listed: Vec<(std::net::Ipv4Addr, &str)> =
            self.cfg.remotes.iter().map(|r| (*r, "config")).collect();
        let mut from_evpn: Vec<std::net::Ipv4Addr> = self
            .evpn
            .vteps()
            .map(|(v, _)| v)
            .filter(|v| !self.cfg.remotes.contains(v))
            .collect();
        from_evpn.sort();
        listed.extend(from_evpn.into_iter().map(|v| (v, "evpn")));
        let remotes: Vec<serde_json::Value> = listed
            .iter()
            .map(|(r, origin)| {
                let c = self.per_remote.get(r).copied().unwrap_or_default();
                let next_hop = self.cfg.next_hop(*r);
                let (state, mac) = next_hop
                    .and_then(|nh| self.neighbors.state(nh, self.now))
                    .map(|(s, m)| (s.as_str(), m.map(|m| m.to_string())))
                    .unwrap_or(("no route", None));
                json!({
                    "remote": r.to_string(),
                    "origin": origin,
                    "next_hop": next_hop.map(|n| n.to_string()),
                    "neighbor": state,
                    "neighbor_mac": mac,
                    "tx_packets": c.tx_packets,
                    "tx_bytes": c.tx_bytes,
                    "rx_packets": c.rx_packets,
                    "rx_bytes": c.rx_bytes,
                })
            })
            .collect();
        let vnis: Vec<serde_json::Value> = self
            .cfg
            .vnis
            .iter()
            .map(|(vni, vlan)| json!({"vni": vni, "vlan": vlan}))
            .collect();
        json!({
            "vxlan": {
                "local": self.cfg.local.to_string(),
                "prefix_len": self.cfg.prefix_len,
                "gateway": self.cfg.gateway.map(|g| g.to_string()),
                "mac": self.cfg.mac.to_string(),
                "underlay": self.cfg.underlay,
                "dst_port": self.cfg.dst_port,
                "underlay_mtu": self.cfg.underlay_mtu,
                "inner_mtu": self.cfg.max_inner_frame().saturating_sub(14),
                "vnis": vnis,
                "remotes": remotes,
                "remote_macs": self.macs.len(),
            }
        })
    }
}
