//! How the switch carries tunnel ports (VXLAN) over their underlay ports.

use std::time::Duration;

use super::Switch;
use crate::fdb::PortId;
use crate::packet::{Batch, BATCH_SIZE};
use crate::pipeline::PortSlot;

impl Switch {
    /// Gives each tunnel on underlay `id` the frames that are its own (they
    /// leave the batch), then runs what the tunnels decapsulated through
    /// their bridges at once.
    pub(super) fn offer_to_tunnels(&mut self, id: PortId, batch: &mut Batch, now: Duration) {
        for i in 0..self.tunnels.len() {
            let (underlay, tunnel) = self.tunnels[i];
            if underlay != id {
                continue;
            }
            let Some(Some(slot)) = self.ports.get_mut(tunnel as usize) else {
                continue;
            };
            let PortSlot { port, counters, .. } = slot;
            if let Some(t) = port.tunnel_mut() {
                batch.retain(|buf| {
                    !t.offer_with_offload(buf.frame(), &buf.meta.offload, now, counters)
                });
            }
        }
        let mut inner = self.scratch.take().unwrap_or_default();
        for i in 0..self.tunnels.len() {
            let (underlay, tunnel) = self.tunnels[i];
            if underlay != id {
                continue;
            }
            let Some(Some(slot)) = self.ports.get_mut(tunnel as usize) else {
                continue;
            };
            inner.clear();
            if slot.port.rx_burst(&mut inner, &mut slot.counters) > 0 {
                if let Some(tap) = slot.capture.as_deref_mut() {
                    tap.rx(&inner);
                }
                let bridge_idx = slot.bridge;
                self.process(tunnel as usize, bridge_idx, &mut inner, now);
            }
        }
        self.flush_tunnels();
        self.scratch = Some(inner);
    }

    /// Sends every tunnel's queued frames out of its underlay.
    pub(super) fn flush_tunnels(&mut self) {
        for i in 0..self.tunnels.len() {
            let (underlay, tunnel) = self.tunnels[i];
            let Some(Some(t)) = self.ports.get_mut(tunnel as usize) else {
                continue;
            };
            let Some(tun) = t.port.tunnel_mut() else {
                continue;
            };
            let queued = tun.outbound();
            if queued.is_empty() {
                continue;
            }
            // Swap the queue out for an empty zero-capacity batch so the
            // underlay (another slot) can be borrowed: two Vecs change
            // places, no frame is copied and nothing is allocated.
            let mut out = std::mem::replace(queued, Batch::with_capacity(0));
            if let Some(Some(u)) = self.ports.get_mut(underlay as usize) {
                let mut start = 0;
                while start < out.len() {
                    let n = (out.len() - start).min(BATCH_SIZE);
                    let mut frames: [&[u8]; BATCH_SIZE] = [&[]; BATCH_SIZE];
                    for (k, f) in frames.iter_mut().enumerate().take(n) {
                        if let Some(buf) = out.get(start + k) {
                            *f = buf.frame();
                        }
                    }
                    u.port.tx_burst(&frames[..n], &mut u.counters);
                    if let Some(tap) = u.capture.as_deref_mut() {
                        tap.tx(&frames[..n]);
                    }
                    start += n;
                }
            }
            out.clear();
            if let Some(Some(t)) = self.ports.get_mut(tunnel as usize) {
                if let Some(tun) = t.port.tunnel_mut() {
                    *tun.outbound() = out;
                }
            }
        }
    }

    /// Recomputes which tunnel rides which underlay (after ports change).
    pub(super) fn relink_tunnels(&mut self) {
        let mut links = Vec::new();
        for id in 0..self.ports.len() {
            let Some(slot) = self.ports[id].as_mut() else {
                continue;
            };
            let Some(underlay) = slot.port.tunnel_mut().map(|t| t.underlay().to_string()) else {
                continue;
            };
            if let Ok(u) = self.port_index(&underlay) {
                links.push((u as PortId, id as PortId));
            }
        }
        self.tunnels = links;
    }
}
