//! What the switch shows of itself while it runs: captures on ports
//! (`capture`), events for monitors (`events`) and traces (`vsctl trace`).
//!
//! Costs on the per-frame path: without a capture, one `Option` check per
//! burst per port; without a MAC move, nothing (the move log is looked at
//! only when a batch noted one).

use std::sync::Arc;
use std::time::Duration;

use super::Switch;
use crate::capture::Tap;
use crate::control::protocol::{FdbEntryInfo, FdbEntryKind};
use crate::datapath::command::DatapathError;
use crate::events::{DpEventKind, Hub, LinkWatch, Name};
use crate::fdb::PortId;

/// The datapath's end of the event hub, present once the control side
/// asked for it (the daemon does at start; benches and fuzz targets never).
pub(super) struct DatapathEvents {
    hub: Arc<Hub>,
    links: Option<LinkWatch>,
}

impl Switch {
    /// The hub monitors read from; created (with the link watch) at the
    /// first call, or `shared` (another worker's) if given.
    pub(super) fn event_hub(&mut self, shared: Option<Arc<Hub>>) -> Arc<Hub> {
        if let Some(ev) = &self.events {
            return ev.hub.clone();
        }
        let mut links = LinkWatch::open();
        if let Some(l) = &mut links {
            for (id, slot) in self.ports.iter().enumerate() {
                if let Some(slot) = slot
                    .as_ref()
                    .filter(|s| self.reports_port_changes(s.bridge))
                {
                    l.port_added(id, &slot.name, slot.port.iface());
                }
            }
        }
        for b in self.bridges.iter_mut().flatten() {
            b.moves.set_enabled(true);
        }
        let hub = shared.unwrap_or_else(Hub::new);
        self.events = Some(Box::new(DatapathEvents {
            hub: hub.clone(),
            links,
        }));
        hub
    }

    /// Queues an event for monitors, if anyone can hear it.
    pub(super) fn report(&self, kind: DpEventKind) {
        if let Some(ev) = &self.events {
            ev.hub.push(kind);
        }
    }

    pub(super) fn observe_bridge_added(&mut self, idx: usize) {
        let on = self.events.is_some();
        if let Some(Some(b)) = self.bridges.get_mut(idx) {
            b.moves.set_enabled(on);
        }
    }

    pub(super) fn observe_port_added(&mut self, id: usize) {
        let reports = match self.ports.get(id) {
            Some(Some(slot)) => self.reports_port_changes(slot.bridge),
            _ => false,
        };
        let (true, Some(ev), Some(Some(slot))) =
            (reports, self.events.as_mut(), self.ports.get(id))
        else {
            return;
        };
        if let Some(l) = &mut ev.links {
            l.port_added(id, &slot.name, slot.port.iface());
        }
    }

    pub(super) fn observe_port_removed(&mut self, id: usize) {
        if let Some(l) = self.events.as_mut().and_then(|e| e.links.as_mut()) {
            l.port_removed(id);
        }
    }

    /// Reports the MAC moves the last batch through bridge `idx` noted.
    #[inline]
    pub(super) fn emit_moves(&mut self, idx: usize) {
        let Some(Some(bridge)) = self.bridges.get_mut(idx) else {
            return;
        };
        if !bridge.moves.has_pending() {
            return;
        }
        let moves = bridge.moves.take();
        let bridge_name = Name::new(&bridge.name);
        let name = |id: PortId| {
            self.ports
                .get(id as usize)
                .and_then(|p| p.as_ref())
                .map(|p| Name::new(&p.name))
                .unwrap_or_else(|| Name::new("?"))
        };
        for m in moves.iter() {
            self.report(DpEventKind::MacMove {
                bridge: bridge_name,
                vlan: m.vlan,
                mac: m.mac,
                from: name(m.from),
                to: name(m.to),
                suppressed: m.suppressed,
            });
        }
    }

    /// Every tick: ends captures whose reader has gone, reads link changes,
    /// reports suppressed MAC moves.
    pub(super) fn observe_tick(&mut self, now: Duration) {
        for slot in self.ports.iter_mut().flatten() {
            if slot.capture.as_ref().is_some_and(|t| t.orphaned()) {
                tracing::info!(port = %slot.name, "capture reader gone: capture stopped");
                slot.capture = None;
            }
        }
        let Some(ev) = self.events.as_mut() else {
            return;
        };
        if let Some(l) = &mut ev.links {
            let hub = &ev.hub;
            l.poll(|kind| hub.push(kind));
        }
        for b in self.bridges.iter_mut().flatten() {
            if let Some(count) = b.moves.take_suppressed(now) {
                ev.hub.push(DpEventKind::MovesSuppressed {
                    bridge: Name::new(&b.name),
                    count,
                });
            }
        }
    }

    /// Attaches a capture to port `port`. One capture per port: a second
    /// one is refused while the first runs.
    pub(super) fn capture_start(&mut self, port: &str, tap: Box<Tap>) -> Result<(), DatapathError> {
        let id = self.port_index(port)?;
        let slot = self.ports[id].as_mut().expect("index from port_index");
        if slot.capture.as_ref().is_some_and(|t| !t.orphaned()) {
            return Err(DatapathError::CaptureBusy(port.to_string()));
        }
        slot.capture = Some(tap);
        Ok(())
    }

    /// Detaches capture `id` from port `port` (if it is still there: the
    /// port may be gone, or the capture ended already).
    pub(super) fn capture_stop(&mut self, port: &str, id: u64) {
        if let Ok(i) = self.port_index(port) {
            if let Some(slot) = self.ports[i].as_mut() {
                if slot.capture.as_ref().is_some_and(|t| t.id() == id) {
                    slot.capture = None;
                }
            }
        }
    }
}

impl Switch {
    /// `vsctl trace`: `frame` through bridge `bridge` as if received on
    /// `in_port` (a member), with no side effects.
    pub fn trace(
        &mut self,
        bridge: &str,
        in_port: &str,
        frame: &[u8],
        now: Duration,
    ) -> Result<crate::pipeline::trace::TraceReport, DatapathError> {
        let b = self.bridge_index(bridge)?;
        let port = self.member_port(b, in_port)?;
        let bridge = self.bridges[b].as_ref().expect("index from bridge_index");
        Ok(crate::pipeline::trace::trace(
            frame,
            port,
            bridge,
            &mut self.ports,
            now,
        ))
    }
}

impl Switch {
    /// `vsctl fdb show`: every entry with its port's name, age and type, and
    /// for entries behind a tunnel the remote VTEP.
    pub(super) fn fdb_dump(
        &mut self,
        bridge: &str,
        secs: u64,
    ) -> Result<Vec<FdbEntryInfo>, DatapathError> {
        self.bridge_index(bridge).map(|b| {
            let br = self.bridges[b].as_ref().expect("index from bridge_index");
            let ports = &mut self.ports;
            let mut rows: Vec<FdbEntryInfo> = br
                .fdb
                .iter()
                .map(|(vlan, mac, e)| FdbEntryInfo {
                    remote: ports
                        .get_mut(e.port as usize)
                        .and_then(|p| p.as_mut())
                        .and_then(|p| p.port.tunnel_mut())
                        .and_then(|t| t.remote_of(vlan, mac))
                        .map(|ip| ip.to_string()),
                    vlan,
                    mac,
                    port: ports
                        .get(e.port as usize)
                        .and_then(|p| p.as_ref())
                        .map(|p| p.name.clone())
                        .unwrap_or_else(|| format!("#{}", e.port)),
                    age_secs: if e.is_static || e.evpn {
                        0
                    } else {
                        secs.saturating_sub(e.last_seen)
                    },
                    kind: if e.is_static {
                        FdbEntryKind::Static
                    } else if e.evpn {
                        FdbEntryKind::Evpn
                    } else {
                        FdbEntryKind::Learned
                    },
                })
                .collect();
            rows.sort_by_key(|r| (r.vlan, r.mac));
            rows
        })
    }
}
