//! The per-batch packet pipeline of a bridge.
//!
//! A batch received on one port goes through the stages in order, each over
//! the whole batch: `input` classifies every frame (or picks its drop
//! reason), learning records the source, `forward` picks a disposition, and
//! `output` hands each output port all of its frames in one burst. No stage
//! allocates or locks.

pub mod announce;
pub mod counters;
pub mod forward;
pub mod input;
pub mod output;

use crate::fdb::{Fdb, PortId};
use crate::packet::{Batch, BATCH_SIZE};
use crate::port::Port;
use counters::{DropReason, PortCounters};

/// What becomes of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Drop(DropReason),
    /// Known unicast: exactly this port.
    Unicast(PortId),
    /// Broadcast, multicast or unknown unicast: every port of the bridge but
    /// the ingress one.
    Flood,
}

/// A bridge as the datapath runs it: its table and its member ports.
pub struct Bridge {
    pub name: String,
    pub fdb: Fdb,
    /// Member ports, in the order they were added: the flood set.
    pub ports: Vec<PortId>,
}

/// A port as the datapath runs it.
pub struct PortSlot {
    pub name: String,
    /// Index of the bridge the port belongs to.
    pub bridge: usize,
    pub port: Box<dyn Port>,
    pub counters: PortCounters,
}

/// Runs one received batch through the bridge: learns, forwards, transmits.
/// `ports` is the datapath's whole port slab, indexed by `PortId`.
pub fn process_batch(
    batch: &Batch,
    in_port: PortId,
    bridge: &mut Bridge,
    ports: &mut [Option<PortSlot>],
    now: u64,
) {
    let mut dispositions = [Disposition::Drop(DropReason::Runt); BATCH_SIZE];
    let n = batch.len();

    for (i, buf) in batch.iter().enumerate() {
        dispositions[i] = match input::classify(buf.frame()) {
            Err(reason) => Disposition::Drop(reason),
            Ok(frame) => {
                bridge.fdb.learn(frame.vlan, frame.src, in_port, now);
                forward::decide(&frame, in_port, &bridge.fdb)
            }
        };
    }

    let sent_somewhere = output::transmit(batch, &dispositions[..n], in_port, &bridge.ports, ports);

    if let Some(Some(ingress)) = ports.get_mut(in_port as usize) {
        for (i, d) in dispositions[..n].iter().enumerate() {
            match d {
                Disposition::Drop(reason) => ingress.counters.count_drop(*reason),
                Disposition::Flood if !sent_somewhere.flood => {
                    ingress.counters.count_drop(DropReason::NoFloodPorts)
                }
                Disposition::Unicast(_) if !sent_somewhere.unicast[i] => {
                    // The output port vanished between learning and now; the
                    // frame still needs a counter.
                    ingress.counters.count_drop(DropReason::NoFloodPorts)
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests;
