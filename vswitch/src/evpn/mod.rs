//! BGP EVPN (RFC 7432, RFC 8365) for the VXLAN overlay, through the host's
//! GoBGP.

#[cfg(gobgp_api)]
pub mod api;
pub mod state;

use std::net::Ipv4Addr;

use crate::wire::MacAddr;

/// A change the EVPN control plane makes to a VXLAN port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelOp {
    /// `mac` of `vni` lives behind `vtep` (None: no longer known by BGP).
    Mac {
        vni: u32,
        mac: MacAddr,
        vtep: Option<Ipv4Addr>,
    },
    /// `vtep` joins (or leaves) `vni`'s flood list (a type-3 route).
    Flood {
        vni: u32,
        vtep: Ipv4Addr,
        member: bool,
    },
}

/// The VXLAN port a bridge's EVPN drives, as the datapath reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub vtep: String,
    pub local_ip: Ipv4Addr,
    /// (VNI, VLAN) pairs.
    pub vnis: Vec<(u32, u16)>,
    /// True when the datapath (re)attached now: it holds no EVPN state, and
    /// every remote route must be installed again.
    pub fresh: bool,
}

/// What became of an `EvpnUpdate`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpdateOutcome {
    pub applied: usize,
    /// Not installed: the table was full, a static entry pins the MAC, or
    /// the VXLAN port does not carry the VNI.
    pub refused: usize,
}
