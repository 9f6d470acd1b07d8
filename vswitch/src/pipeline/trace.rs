//! `vsctl trace`: one synthetic frame through a bridge's pipeline, with no
//! side effects, reporting each stage's decision.
//!
//! The stages call the same functions real traffic goes through
//! (`input::classify`, `PortPolicy::source_allowed`, `forward::decide`,
//! `VlanMode::egress`); where the real path changes state (learning, storm
//! credit) the trace asks the side-effect-free twin (`Fdb::predict_learn`,
//! `StormBucket::would_allow`). Nothing is learned, sent or counted.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::counters::DropReason;
use super::vlan::Egress;
use super::{forward, input, Bridge, Disposition, PortSlot};
use crate::fdb::{LearnOutcome, PortId};
use crate::packet::PacketBuf;

/// One stage's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceStage {
    /// `classify`, `source`, `learn`, `lookup`, `storm_control`, `output`.
    pub stage: String,
    /// What it decided, in words an operator reads.
    pub decision: String,
}

/// One port the frame would leave through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceOutput {
    pub port: String,
    /// The 802.1Q tag it would carry (VID), or none for untagged.
    pub vlan_tag: Option<u16>,
    /// The encapsulation: "vxlan vni N to A.B.C.D, ...".
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub encap: Option<String>,
}

/// The whole answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceReport {
    pub bridge: String,
    pub in_port: String,
    pub frame_len: usize,
    /// The network the frame was classified into.
    pub vlan: Option<u16>,
    /// The VNI that carries that network, if a tunnel port of the bridge
    /// maps it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub vni: Option<u32>,
    pub stages: Vec<TraceStage>,
    pub outputs: Vec<TraceOutput>,
    /// Why the frame would be dropped: the name of the counter it would
    /// raise (on the ingress port).
    pub drop: Option<String>,
}

impl TraceReport {
    fn stage(&mut self, stage: &str, decision: String) {
        self.stages.push(TraceStage {
            stage: stage.into(),
            decision,
        });
    }

    fn dropped(mut self, stage: &str, reason: DropReason, why: &str) -> TraceReport {
        self.stage(stage, format!("drop: {why} ({})", reason.name()));
        self.drop = Some(reason.name().to_string());
        self
    }
}

fn name_of(ports: &[Option<PortSlot>], id: PortId) -> String {
    ports
        .get(id as usize)
        .and_then(Option::as_ref)
        .map_or_else(|| format!("#{id}"), |p| p.name.clone())
}

/// Runs `frame`, as if received on `in_port`, through `bridge`.
pub fn trace(
    frame: &[u8],
    in_port: PortId,
    bridge: &Bridge,
    ports: &mut [Option<PortSlot>],
    now: Duration,
) -> TraceReport {
    let mut report = TraceReport {
        bridge: bridge.name.clone(),
        in_port: name_of(ports, in_port),
        frame_len: frame.len(),
        vlan: None,
        vni: None,
        stages: Vec::new(),
        outputs: Vec::new(),
        drop: None,
    };
    let Some(Some(ingress)) = ports.get(in_port as usize) else {
        return report.dropped("classify", DropReason::Runt, "no such port");
    };
    let mut buf = PacketBuf::new();
    buf.copy_from(frame);
    let tagged = frame.len() >= 14 && matches!(frame[12..14], [0x81, 0x00] | [0x88, 0xa8]);
    let classified = match input::classify(&mut buf, &ingress.policy.vlan) {
        Ok(c) => c,
        Err(reason) => return report.dropped("classify", reason, "refused on input"),
    };
    report.vlan = Some(classified.vlan);
    report.vni = bridge.ports.iter().find_map(|&p| {
        ports
            .get_mut(p as usize)
            .and_then(Option::as_mut)
            .and_then(|s| s.port.tunnel_mut())
            .and_then(|t| t.vni_of(classified.vlan))
    });
    let Some(Some(ingress)) = ports.get(in_port as usize) else {
        return report;
    };
    let how = if tagged { "tagged" } else { "untagged" };
    let vni = report.vni.map(|v| format!(", vni {v}")).unwrap_or_default();
    report.stage(
        "classify",
        format!(
            "{how} frame {} -> {} in vlan {}{vni} (port mode {})",
            classified.src, classified.dst, classified.vlan, ingress.policy.vlan
        ),
    );

    if !ingress.policy.source_allowed(classified.src) {
        return report.dropped(
            "source",
            DropReason::SrcMacNotAllowed,
            "source MAC not in allowed_macs",
        );
    }
    let allowed = if ingress.policy.allowed_macs.is_empty() {
        "any source MAC allowed"
    } else {
        "source MAC in allowed_macs"
    };
    report.stage("source", allowed.into());

    let limit = ingress.policy.max_macs.unwrap_or(u32::MAX);
    let learn = match bridge
        .fdb
        .predict_learn(classified.vlan, classified.src, in_port, limit)
    {
        LearnOutcome::Refreshed => "already known here: refreshed".to_string(),
        LearnOutcome::Learned => "new: would be learned on this port".to_string(),
        LearnOutcome::Moved { from } => {
            format!(
                "would move from port {} (counted as a move)",
                name_of(ports, from)
            )
        }
        LearnOutcome::Refused => "table full: not learned (learn_refused), forwarded".to_string(),
        LearnOutcome::StaticConflict => "pinned elsewhere by a static entry: not learned".into(),
        LearnOutcome::NotLearning => {
            "tunnel port with EVPN and learning off: not learned, forwarded".into()
        }
        LearnOutcome::PortLimit => {
            return report.dropped(
                "learn",
                DropReason::PortMacLimit,
                "new source MAC over the port's max_macs",
            )
        }
    };
    report.stage("learn", learn);

    let disposition = forward::decide(&classified, in_port, &bridge.fdb);
    match disposition {
        Disposition::Drop(reason) => {
            return report.dropped("lookup", reason, "destination learned on the ingress port")
        }
        Disposition::Unicast(p) => {
            let entry = bridge.fdb.get(classified.vlan, classified.dst);
            let kind = if entry.is_some_and(|e| e.is_static) {
                "static"
            } else {
                "learned"
            };
            report.stage(
                "lookup",
                format!("hit: {kind} entry -> port {}", name_of(ports, p)),
            );
        }
        Disposition::Flood => {
            let why = if classified.dst.is_multicast() {
                "broadcast/multicast"
            } else {
                "unknown unicast"
            };
            report.stage("lookup", format!("{why}: flood"));
            if let Some(bucket) = ingress.storm.as_ref() {
                if !bucket.would_allow(now) {
                    return report.dropped(
                        "storm_control",
                        DropReason::StormControl,
                        "over the port's storm_pps",
                    );
                }
                report.stage("storm_control", "within storm_pps".into());
            }
        }
    }

    let candidates: Vec<PortId> = match disposition {
        Disposition::Unicast(p) => vec![p],
        _ => bridge
            .ports
            .iter()
            .copied()
            .filter(|&p| p != in_port)
            .collect(),
    };
    for out in candidates {
        let Some(Some(slot)) = ports.get_mut(out as usize) else {
            continue;
        };
        let vlan = classified.vlan;
        let vlan_tag = match slot.policy.vlan.egress(vlan) {
            Egress::Filtered => {
                report.stage(
                    "output",
                    format!(
                        "{}: does not carry vlan {vlan} (vlan_egress_filtered)",
                        slot.name
                    ),
                );
                continue;
            }
            Egress::Untagged => None,
            Egress::Tagged => Some(vlan),
        };
        let dst = classified.dst;
        let encap = slot.port.tunnel_mut().map(|t| {
            let vni = t.vni_of(vlan).map_or("?".into(), |v| v.to_string());
            let remotes = match t.remote_of(vlan, dst) {
                Some(r) if !dst.is_multicast() => vec![r],
                _ => t.flood_remotes(vlan),
            };
            let list: Vec<String> = remotes.iter().map(|r| r.to_string()).collect();
            format!("vxlan vni {vni} to {}", list.join(", "))
        });
        let form = match (vlan_tag, &encap) {
            (_, Some(e)) => e.clone(),
            (Some(v), None) => format!("tagged {v}"),
            (None, None) => "untagged".into(),
        };
        report.stage("output", format!("{}: {form}", slot.name));
        report.outputs.push(TraceOutput {
            port: slot.name.clone(),
            vlan_tag: if encap.is_some() { None } else { vlan_tag },
            encap,
        });
    }
    if report.outputs.is_empty() {
        let reason = match disposition {
            Disposition::Flood => DropReason::NoFloodPorts,
            _ => DropReason::EgressVlanFiltered,
        };
        report.drop = Some(reason.name().to_string());
    }
    report
}

#[cfg(test)]
mod tests;
