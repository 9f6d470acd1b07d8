//! Moving bridges, with their ports and tables, from one worker to another.
//!
//! A bridge keeps its index and its ports keep theirs (`slots::SlotIds`),
//! so the table, the flood list and the tunnel links travel as they are.
//! Frames waiting in a port's receive ring stay there and are read by the
//! new worker; frames queued for sending are flushed before the move.

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use super::Switch;
use crate::datapath::command::DatapathError;
use crate::datapath::slots::slot_at;
use crate::pipeline::{Bridge, PortSlot};

/// A bridge on its way to another worker.
pub struct BridgeBundle {
    index: usize,
    bridge: Bridge,
    ports: Vec<(usize, PortSlot)>,
}

impl BridgeBundle {
    pub fn name(&self) -> &str {
        &self.bridge.name
    }
}

impl Switch {
    /// Takes the bridges named `names` and their ports out of this switch;
    /// nothing is taken if one of them is not here.
    pub fn export_bridges(
        &mut self,
        names: &[String],
        registry: &Registry,
    ) -> Result<Vec<BridgeBundle>, DatapathError> {
        let indices = names
            .iter()
            .map(|n| self.bridge_index(n))
            .collect::<Result<Vec<_>, _>>()?;
        self.flush_tunnels();
        let mut bundles = Vec::with_capacity(indices.len());
        for index in indices {
            let Some(bridge) = self.bridges[index].take() else {
                continue; // a name given twice
            };
            let mut ports = Vec::with_capacity(bridge.ports.len());
            for &id in &bridge.ports {
                let id = id as usize;
                let Some(mut slot) = self.ports.get_mut(id).and_then(Option::take) else {
                    continue;
                };
                slot.port.flush(&mut slot.counters);
                if let Some(fd) = slot.port.readiness_fd() {
                    // The new worker registers it with its own epoll; a
                    // failure here only means this one may wake for it once.
                    let _ = registry.deregister(&mut SourceFd(&fd));
                }
                self.observe_port_removed(id);
                ports.push((id, slot));
            }
            bundles.push(BridgeBundle {
                index,
                bridge,
                ports,
            });
        }
        self.relink_tunnels();
        Ok(bundles)
    }

    /// Puts bridges another worker exported into this switch, at the same
    /// indices.
    pub fn import_bridges(&mut self, bundles: Vec<BridgeBundle>, registry: &Registry) {
        for BridgeBundle {
            index,
            bridge,
            ports,
        } in bundles
        {
            for (id, slot) in ports {
                if let Some(fd) = slot.port.readiness_fd() {
                    if let Err(e) =
                        registry.register(&mut SourceFd(&fd), Token(id), Interest::READABLE)
                    {
                        // The loop still polls the port on every pass while
                        // awake; only its frames cannot end a sleep early
                        // (the tick does, within 100 ms).
                        tracing::warn!(port = %slot.name, "moved port not watched for readiness: {e}");
                    }
                }
                *slot_at(&mut self.ports, id) = Some(slot);
                self.observe_port_added(id);
            }
            *slot_at(&mut self.bridges, index) = Some(bridge);
            self.observe_bridge_added(index);
        }
        self.relink_tunnels();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::datapath::slots::SlotIds;
    use crate::packet::Batch;
    use crate::port::loopback::LoopbackPort;
    use crate::wire::ethernet::build_frame;
    use crate::wire::MacAddr;

    fn mac(n: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, n])
    }

    #[test]
    fn a_bridge_moves_with_its_ports_table_and_indices() {
        let poll = mio::Poll::new().unwrap();
        let ids = SlotIds::default();
        let (mut a, mut b) = (Switch::with_ids(ids.clone()), Switch::with_ids(ids));
        // b holds index 0 of bridges and ports, so the moving ones are not at 0.
        b.add_bridge("stay".into(), 300, 64).unwrap();
        b.add_port("stay", "s".into(), Box::new(LoopbackPort::new("s")), None)
            .unwrap();
        a.add_bridge("go".into(), 300, 64).unwrap();
        let (p1, link1) = LoopbackPort::linked("p1");
        let (p2, link2) = LoopbackPort::linked("p2");
        a.add_port("go", "p1".into(), Box::new(p1), None).unwrap();
        a.add_port("go", "p2".into(), Box::new(p2), None).unwrap();
        link2.inject(&build_frame(MacAddr::BROADCAST, mac(2), 0x0806, &[0; 28]));
        let mut batch = Batch::new();
        assert_eq!(a.poll_once(&mut batch, Duration::ZERO), 1);
        assert_eq!(link1.take_sent().len(), 1, "flooded to p1");

        let missing = a.export_bridges(&["go".into(), "nope".into()], poll.registry());
        assert!(matches!(missing, Err(DatapathError::NoSuchBridge(_))));
        assert!(a.fdb("go").is_some(), "nothing taken when one is missing");
        let bundles = a.export_bridges(&["go".into()], poll.registry()).unwrap();
        assert_eq!(bundles[0].name(), "go");
        assert!(a.fdb("go").is_none());
        b.import_bridges(bundles, poll.registry());

        // mac(2) was learned on worker a; on b the frame to it goes to p2 alone.
        link1.inject(&build_frame(mac(2), mac(1), 0x0800, &[0; 46]));
        assert_eq!(a.poll_once(&mut batch, Duration::ZERO), 0);
        assert_eq!(b.poll_once(&mut batch, Duration::ZERO), 1);
        assert_eq!(
            link2.take_sent().len(),
            1,
            "known destination, from the moved table"
        );
        assert!(link1.take_sent().is_empty());
        assert_eq!(b.fdb("go").unwrap().len(), 2);
        assert_eq!(b.port_counters("p1").unwrap().rx_packets, 1);
        assert_eq!(
            b.port_counters("p2").unwrap().rx_packets,
            1,
            "counters moved too"
        );
        // A port added after the move takes a fresh index, on either switch.
        b.add_port("go", "p3".into(), Box::new(LoopbackPort::new("p3")), None)
            .unwrap();
        a.add_bridge("new".into(), 300, 64).unwrap();
        a.add_port("new", "p4".into(), Box::new(LoopbackPort::new("p4")), None)
            .unwrap();
        let slots = |sw: &Switch| -> Vec<usize> {
            (0..sw.ports.len())
                .filter(|&i| sw.ports[i].is_some())
                .collect()
        };
        assert_eq!(slots(&b), vec![0, 1, 2, 3]);
        assert_eq!(slots(&a), vec![4]);
    }
}
