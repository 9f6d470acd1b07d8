//! Ports: where frames enter and leave the switch.
//!
//! Every backend implements `Port`. A backend owns its kernel resources
//! (file descriptors, mmap'd rings) and copies frames between them and the
//! datapath's preallocated `Batch` buffers; it never allocates per frame and
//! never blocks: a call that would block returns what it has, and a frame
//! that cannot be sent now is dropped and counted (`TxRingFull`).
//!
//! Backends are opened by the control thread (where errors such as a missing
//! interface become clear replies) and then moved into the datapath thread,
//! which alone calls `rx_burst`/`tx_burst`. Unsafe code lives in `sys/` only.

use std::os::fd::RawFd;
use std::time::Duration;

use crate::packet::offload::OffloadCaps;
use crate::packet::Batch;
use crate::pipeline::counters::PortCounters;
use crate::wire::vnet::VnetHdr;

pub mod afpacket;
pub mod afxdp;
pub mod bond;
pub mod loopback;
pub mod null;
pub mod sys;
pub mod tap;
pub mod vhostuser;
pub mod vxlan;

/// The backend kinds an operator can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortKind {
    Tap,
    Afpacket,
    Afxdp,
    Vxlan,
    Bond,
    Loopback,
    Null,
    Vhostuser,
}

impl PortKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PortKind::Tap => "tap",
            PortKind::Afpacket => "afpacket",
            PortKind::Afxdp => "afxdp",
            PortKind::Vxlan => "vxlan",
            PortKind::Bond => "bond",
            PortKind::Loopback => "loopback",
            PortKind::Null => "null",
            PortKind::Vhostuser => "vhostuser",
        }
    }
}

impl std::str::FromStr for PortKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tap" => Ok(PortKind::Tap),
            "afpacket" => Ok(PortKind::Afpacket),
            "afxdp" => Ok(PortKind::Afxdp),
            "vxlan" => Ok(PortKind::Vxlan),
            "bond" => Ok(PortKind::Bond),
            "null" => Ok(PortKind::Null),
            "vhostuser" => Ok(PortKind::Vhostuser),
            other => Err(format!(
                "unknown port type {other:?}: expected tap, afpacket, afxdp, vhostuser, bond, \
                 vxlan or null"
            )),
        }
    }
}

/// Errors opening or configuring a port.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("interface {0:?} does not exist")]
    NoSuchInterface(String),
    #[error("invalid interface name {0:?}: 1 to 15 characters, no '/', ':' or whitespace")]
    BadInterfaceName(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{what} on {iface}: {source}")]
    Os {
        what: &'static str,
        iface: String,
        #[source]
        source: std::io::Error,
    },
}

/// One port backend, driven by the datapath thread.
pub trait Port: Send {
    fn kind(&self) -> PortKind;

    /// The kernel interface this port is bound to or created.
    fn iface(&self) -> &str;

    /// Receives up to the batch's free room. Frames go into `batch.slot()`
    /// buffers and are kept with `batch.commit()`. Counts `rx_packets`,
    /// `rx_bytes` and receive-side drops in `counters`. Returns the number of
    /// frames added; 0 when nothing is waiting.
    fn rx_burst(&mut self, batch: &mut Batch, counters: &mut PortCounters) -> usize;

    /// Queues `frames` for transmission, in order. Counts `tx_packets`,
    /// `tx_bytes` and tx drops in `counters`; never blocks. Returns the
    /// number of frames accepted.
    fn tx_burst(&mut self, frames: &[&[u8]], counters: &mut PortCounters) -> usize;

    /// The offload requests (checksum partial, segmentation) this port
    /// passes on to its kernel side. Fixed for the port's life.
    fn offload_caps(&self) -> OffloadCaps {
        OffloadCaps::NONE
    }

    /// `tx_burst` for frames that carry offload requests, one header per
    /// frame. Called only on a port whose `offload_caps` take every header
    /// given; the output stage finishes or segments frames for the others.
    fn tx_burst_offload(
        &mut self,
        frames: &[&[u8]],
        _hdrs: &[VnetHdr],
        counters: &mut PortCounters,
    ) -> usize {
        self.tx_burst(frames, counters)
    }

    /// Pushes out whatever `tx_burst` queued (one kick per burst for ring
    /// backends). The datapath calls it once per loop iteration after
    /// transmitting.
    fn flush(&mut self, _counters: &mut PortCounters) {}

    /// The descriptor that becomes readable when frames wait, so an idle
    /// datapath can block on it. A backend with several descriptors (a bond)
    /// exposes one epoll descriptor that watches them all.
    fn readiness_fd(&self) -> Option<RawFd>;

    /// True while the port has frames to give without any descriptor
    /// becoming readable (a null source): the datapath does not block
    /// while a port says so.
    fn always_ready(&self) -> bool {
        false
    }

    /// The loop is about to block on `readiness_fd`: re-arm any wake-up
    /// the backend turned off while it was polled (a vhost-user port turns
    /// the guest's kicks back on). True when frames arrived meanwhile, so
    /// the loop must not block.
    fn prepare_to_block(&mut self) -> bool {
        self.always_ready()
    }

    /// Periodic work: protocol timers, link checks. The datapath calls it
    /// every `datapath::TICK` (100 ms) with the time since the datapath
    /// started; a backend may send control frames (e.g. LACPDUs) from here.
    fn tick(&mut self, _now: Duration, _counters: &mut PortCounters) {}

    /// An event the datapath must act on, taken after `tick` and after each
    /// receive burst.
    fn take_event(&mut self) -> Option<PortEvent> {
        None
    }

    /// A state change to tell monitors about (`vsctl monitor`): a bond's
    /// member link, LACP state or active member. Taken with `take_event`;
    /// monitors only, so a backend may drop some rather than queue without
    /// bound.
    fn take_status(&mut self) -> Option<crate::events::StatusEvent> {
        None
    }

    /// Backend state for `vsctl port show` (bond members, LACP partner...),
    /// as JSON. Called on the control path only.
    fn details(&self) -> Option<serde_json::Value> {
        None
    }

    /// The port as a tunnel, if it is one (a VXLAN VTEP).
    fn tunnel_mut(&mut self) -> Option<&mut dyn Tunnel> {
        None
    }
}

/// A port whose frames travel encapsulated through another port of the
/// switch, its underlay. The datapath offers the tunnel every frame the
/// underlay receives before the underlay's own bridge sees it, and sends the
/// tunnel's encapsulated frames (and its ARP) out of the underlay.
pub trait Tunnel {
    /// Name of the underlay port.
    fn underlay(&self) -> &str;

    /// Offers one frame received on the underlay. True when it was the
    /// tunnel's: decapsulated into the tunnel's receive queue, an ARP for
    /// its address, or a malformed frame sent to it (counted in
    /// `counters`, the tunnel port's). False leaves it to the underlay's
    /// bridge.
    fn offer(&mut self, frame: &[u8], now: Duration, counters: &mut PortCounters) -> bool {
        self.offer_with_offload(frame, &VnetHdr::default(), now, counters)
    }

    /// `offer` for a frame with offload requests: a checksum or
    /// segmentation request for the inner packet stays with the
    /// decapsulated frame.
    fn offer_with_offload(
        &mut self,
        frame: &[u8],
        offload: &VnetHdr,
        now: Duration,
        counters: &mut PortCounters,
    ) -> bool;

    /// Frames waiting to leave through the underlay; the datapath sends
    /// them and clears the batch.
    fn outbound(&mut self) -> &mut Batch;

    /// The VNI that carries VLAN `vlan`, if the tunnel carries it.
    fn vni_of(&self, _vlan: u16) -> Option<u32> {
        None
    }

    /// Every remote VTEP a flooded frame of VLAN `vlan` is copied to.
    fn flood_remotes(&self, _vlan: u16) -> Vec<std::net::Ipv4Addr> {
        Vec::new()
    }

    /// The remote VTEP a MAC of VLAN `vlan` was learned from (or pinned to).
    fn remote_of(&self, vlan: u16, mac: crate::wire::MacAddr) -> Option<std::net::Ipv4Addr>;

    /// Pins (or with `None` unpins) a MAC of VLAN `vlan` to a remote VTEP.
    /// False when the VLAN is not carried by the tunnel.
    fn set_static_remote(
        &mut self,
        vlan: u16,
        mac: crate::wire::MacAddr,
        remote: Option<std::net::Ipv4Addr>,
    ) -> bool;

    /// The VTEP's own underlay address and its (VNI, VLAN) pairs, when the
    /// tunnel is one EVPN can drive.
    fn evpn_topology(&self) -> Option<(std::net::Ipv4Addr, Vec<(u32, u16)>)> {
        None
    }

    /// Applies one change from the EVPN control plane; false when the
    /// tunnel does not carry the VNI.
    fn evpn_apply(&mut self, _op: &crate::evpn::TunnelOp) -> bool {
        false
    }

    /// Whether decapsulated traffic teaches the tunnel which remote a MAC
    /// is behind (on by default; EVPN turns it off).
    fn set_learning(&mut self, _on: bool) {}

    /// Forgets everything EVPN installed.
    fn evpn_clear(&mut self) {}

    /// Marks the tunnel as driven by EVPN; returns whether it already was
    /// (a port deleted and added again is a new, unmarked one).
    fn evpn_mark(&mut self) -> bool {
        false
    }
}

/// Events a port raises for the datapath.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortEvent {
    /// The port's path to the network changed (a bond's active member
    /// failed over): announce every MAC the bridge knows behind its other
    /// ports through this port, so upstream switches relearn at once.
    AnnounceMacs,
    /// The offload requests the port takes (`offload_caps`) changed: a
    /// vhost-user guest connected or renegotiated.
    OffloadsChanged,
}

/// Checks a Linux interface name: 1..=15 bytes, no '/', ':' or whitespace.
pub fn validate_ifname(name: &str) -> Result<(), PortError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0);
    if ok {
        Ok(())
    } else {
        Err(PortError::BadInterfaceName(name.to_string()))
    }
}

/// Opens the backend an operator asked for, on the control thread.
pub fn open(name: &str, spec: &crate::config::PortSpec) -> Result<Box<dyn Port>, PortError> {
    let iface = spec.iface.as_str();
    match (spec.kind, &spec.bond, &spec.vxlan) {
        (PortKind::Tap, _, _) => Ok(Box::new(tap::TapPort::open_with(
            iface,
            spec.tap_io.unwrap_or_default(),
        )?)),
        (PortKind::Afpacket, _, _) => Ok(Box::new(afpacket::AfPacketPort::open(iface)?)),
        (PortKind::Afxdp, _, _) => {
            let cfg = spec.afxdp.unwrap_or_default();
            Ok(Box::new(afxdp::AfXdpPort::open(iface, &cfg)?))
        }
        (PortKind::Bond, Some(cfg), _) => {
            validate_ifname(iface)?;
            Ok(Box::new(bond::BondPort::open(iface, cfg)?))
        }
        (PortKind::Bond, None, _) => Err(PortError::Invalid(format!("bond {iface}: no members"))),
        (PortKind::Vxlan, _, Some(cfg)) => Ok(Box::new(vxlan::VxlanPort::new(name, cfg.clone()))),
        (PortKind::Vxlan, _, None) => Err(PortError::Invalid(format!("{name}: no VTEP settings"))),
        (PortKind::Loopback, _, _) => Ok(Box::new(loopback::LoopbackPort::new(iface))),
        (PortKind::Vhostuser, _, _) => match &spec.vhostuser {
            Some(cfg) => Ok(Box::new(vhostuser::VhostUserPort::open(name, cfg)?)),
            None => Err(PortError::Invalid(format!(
                "{name}: no vhost-user settings"
            ))),
        },
        (PortKind::Null, _, _) => match &spec.null {
            Some(cfg) => Ok(Box::new(null::NullPort::new(name, cfg.clone()))),
            None => Err(PortError::Invalid(format!("{name}: no null port settings"))),
        },
    }
}

/// The backends of port `name` of a bridge on every worker: one shard per
/// worker, each receiving its share of the port's frames (afpacket: one
/// PACKET_FANOUT group; afxdp: the receive queues dealt out; tap: one
/// multiqueue tap, a queue per worker). Only
/// port kinds whose receive side the kernel (or the port) can split are
/// accepted.
pub fn open_shards(
    name: &str,
    spec: &crate::config::PortSpec,
    shards: usize,
) -> Result<Vec<Box<dyn Port>>, PortError> {
    match spec.kind {
        PortKind::Afpacket => Ok(afpacket::AfPacketPort::open_fanout(&spec.iface, shards)?
            .into_iter()
            .map(|p| Box::new(p) as Box<dyn Port>)
            .collect()),
        PortKind::Tap => {
            Ok(
                tap::TapPort::open_queues(&spec.iface, spec.tap_io.unwrap_or_default(), shards)?
                    .into_iter()
                    .map(|p| Box::new(p) as Box<dyn Port>)
                    .collect(),
            )
        }
        PortKind::Afxdp => Ok(afxdp::AfXdpPort::open_shards(
            &spec.iface,
            &spec.afxdp.unwrap_or_default(),
            shards,
        )?
        .into_iter()
        .map(|p| Box::new(p) as Box<dyn Port>)
        .collect()),
        PortKind::Null => (0..shards).map(|_| open(name, spec)).collect(),
        other => Err(PortError::Invalid(format!(
            "{name}: a {} port cannot join a bridge on every worker (worker=all); \
             afpacket, afxdp, tap and null ports can",
            other.as_str()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names() {
        for good in ["eth0", "vm1-nic", "a", "abcdefghijklmno"] {
            assert!(validate_ifname(good).is_ok(), "{good}");
        }
        for bad in ["", "abcdefghijklmnop", "a/b", "a b", "a:1", ".", ".."] {
            assert!(validate_ifname(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn kinds_parse() {
        assert_eq!("tap".parse::<PortKind>().unwrap(), PortKind::Tap);
        assert_eq!("afpacket".parse::<PortKind>().unwrap(), PortKind::Afpacket);
        assert_eq!("afxdp".parse::<PortKind>().unwrap(), PortKind::Afxdp);
        assert!("loopback".parse::<PortKind>().is_err());
        assert!("geneve".parse::<PortKind>().unwrap_err().contains("geneve"));
        assert_eq!("bond".parse::<PortKind>().unwrap(), PortKind::Bond);
        assert_eq!("vxlan".parse::<PortKind>().unwrap(), PortKind::Vxlan);
    }
}
