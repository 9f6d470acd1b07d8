//! Port link up/down for monitors: the datapath reads a netlink link
//! socket (`port::sys::netlink`) at every tick and reports the ports whose
//! interface changed state since it last looked.
//!
//! Ports are tracked by the ifindex their interface had when the port was
//! added (or when the watch opened). Ports without a kernel interface of
//! their own in the daemon's namespace (bonds, VXLAN) are not tracked here;
//! bonds report their members themselves. Reading is non-blocking: one
//! `recv` per tick when nothing changed.

use crate::events::{DpEventKind, Name};
use crate::port::sys::if_index;
use crate::port::sys::netlink::{link_up_now, LinkMonitor};

struct Tracked {
    port: Name,
    iface: String,
    ifindex: u32,
    up: bool,
}

/// The datapath's view of its ports' links.
pub struct LinkWatch {
    monitor: LinkMonitor,
    /// Indexed by port id.
    ports: Vec<Option<Tracked>>,
}

impl LinkWatch {
    /// Opens the netlink socket; `None` (with a warning) if it cannot be.
    pub fn open() -> Option<LinkWatch> {
        match LinkMonitor::open() {
            Ok(monitor) => Some(LinkWatch {
                monitor,
                ports: Vec::new(),
            }),
            Err(e) => {
                tracing::warn!("no link events for monitors: {e:?}");
                None
            }
        }
    }

    /// Starts tracking port `id` (named `port`) on interface `iface`, if the
    /// interface exists here. Runs on the command path (a syscall or two).
    pub fn port_added(&mut self, id: usize, port: &str, iface: &str) {
        if self.ports.len() <= id {
            self.ports.resize_with(id + 1, || None);
        }
        self.ports[id] = match if_index(iface) {
            Ok(Some(ifindex)) => Some(Tracked {
                port: Name::new(port),
                iface: iface.to_string(),
                ifindex,
                up: link_up_now(iface),
            }),
            _ => None,
        };
    }

    pub fn port_removed(&mut self, id: usize) {
        if let Some(t) = self.ports.get_mut(id) {
            *t = None;
        }
    }

    /// Reads waiting link messages; calls `emit` for every tracked port
    /// whose state changed.
    pub fn poll(&mut self, mut emit: impl FnMut(DpEventKind)) {
        let ports = &mut self.ports;
        let drained = self.monitor.drain(|ev| {
            for t in ports.iter_mut().flatten() {
                if t.ifindex == ev.ifindex && t.up != ev.up {
                    t.up = ev.up;
                    emit(DpEventKind::Link {
                        port: t.port,
                        up: ev.up,
                    });
                }
            }
        });
        if drained.is_err() {
            // Messages were lost: read every tracked link afresh.
            for t in self.ports.iter_mut().flatten() {
                let up = link_up_now(&t.iface);
                if up != t.up {
                    t.up = up;
                    emit(DpEventKind::Link { port: t.port, up });
                }
            }
        }
    }
}
