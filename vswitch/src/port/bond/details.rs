//! What `vsctl port show` (and `bond show`, `lacp show`) report of a bond:
//! the JSON shape of `Port::details` for bonds, shared with vsctl.

use serde::{Deserialize, Serialize};

use crate::lacp::{Lacp, Member};
use crate::wire::lacp::PortInfo;
use crate::wire::MacAddr;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BondDetails {
    /// `lacp` or `active-backup`.
    pub mode: String,
    /// The transmit hash (`l2`, `l23`, `l34`); LACP only.
    pub hash: Option<String>,
    pub primary: Option<String>,
    /// The active member (active-backup).
    pub active: Option<String>,
    /// Times another member became active (active-backup).
    pub failovers: u64,
    /// Slow protocols frames received and not handed to LACP (active-backup
    /// mode, or before the datapath's first tick).
    pub slow_ignored: u64,
    pub members: Vec<MemberDetails>,
    pub lacp: Option<LacpDetails>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberDetails {
    pub name: String,
    /// Up administratively and operationally (carrier).
    pub link_up: bool,
    pub active: bool,
    pub collecting: bool,
    pub distributing: bool,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub lacp: Option<LacpMemberDetails>,
}

/// The bond's side of LACP and the partner its aggregator is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LacpDetails {
    pub rate: String,
    pub fallback: bool,
    pub actor: SystemInfo,
    pub partner: Option<SystemInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemInfo {
    pub system_priority: u16,
    pub system: MacAddr,
    pub key: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LacpMemberDetails {
    pub rx_state: String,
    pub mux_state: String,
    pub periodic_state: String,
    pub selected: String,
    pub actor: PortInfoDetails,
    pub partner: PortInfoDetails,
    pub lacpdus_in: u64,
    pub lacpdus_out: u64,
    /// Malformed or unknown slow protocols PDUs, dropped.
    pub bad_in: u64,
    pub markers_in: u64,
    pub marker_responses_out: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortInfoDetails {
    pub system_priority: u16,
    pub system: MacAddr,
    pub key: u16,
    pub port_priority: u16,
    pub port: u16,
    /// The state octet.
    pub state: u8,
    /// One letter per state bit, `.` when clear: A(ctivity) T(imeout,
    /// short) G (aggregation) S(ynchronization) C(ollecting)
    /// D(istributing) F (defaulted) E(xpired).
    pub state_flags: String,
    pub state_names: Vec<String>,
}

impl From<&PortInfo> for PortInfoDetails {
    fn from(p: &PortInfo) -> Self {
        PortInfoDetails {
            system_priority: p.system_priority,
            system: p.system,
            key: p.key,
            port_priority: p.port_priority,
            port: p.port,
            state: p.state.0,
            state_flags: p.state.letters(),
            state_names: p.state.names().into_iter().map(String::from).collect(),
        }
    }
}

impl From<&Member> for LacpMemberDetails {
    fn from(m: &Member) -> Self {
        LacpMemberDetails {
            rx_state: m.rx_state().as_str().into(),
            mux_state: m.mux_state().as_str().into(),
            periodic_state: m.periodic_state().as_str().into(),
            selected: m.selected().as_str().into(),
            actor: m.actor().into(),
            partner: m.partner().into(),
            lacpdus_in: m.counters.lacpdus_in,
            lacpdus_out: m.counters.lacpdus_out,
            bad_in: m.counters.bad_in,
            markers_in: m.counters.markers_in,
            marker_responses_out: m.counters.marker_responses_out,
        }
    }
}

impl From<&Lacp> for LacpDetails {
    fn from(l: &Lacp) -> Self {
        let c = l.config();
        LacpDetails {
            rate: c.rate.as_str().into(),
            fallback: c.fallback,
            actor: SystemInfo {
                system_priority: c.system_priority,
                system: c.system,
                key: c.key,
            },
            partner: l
                .partner()
                .map(|(system_priority, system, key)| SystemInfo {
                    system_priority,
                    system,
                    key,
                }),
        }
    }
}
