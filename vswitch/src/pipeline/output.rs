//! Output stage: one burst per output port.

use super::{Disposition, PortSlot};
use crate::fdb::PortId;
use crate::packet::{Batch, BATCH_SIZE};

/// Which frames found at least one port to go to.
pub struct Delivery {
    /// Some flood frame had another port in the bridge.
    pub flood: bool,
    /// Per frame: the unicast frame's output port exists.
    pub unicast: [bool; BATCH_SIZE],
}

/// Hands each member port of the bridge (but `in_port`) the frames meant
/// for it, in batch order, in one `tx_burst`.
pub fn transmit(
    batch: &Batch,
    dispositions: &[Disposition],
    in_port: PortId,
    members: &[PortId],
    ports: &mut [Option<PortSlot>],
) -> Delivery {
    let mut delivery = Delivery {
        flood: false,
        unicast: [false; BATCH_SIZE],
    };
    let any_flood = dispositions.contains(&Disposition::Flood);
    for &out in members {
        if out == in_port {
            continue;
        }
        let Some(Some(slot)) = ports.get_mut(out as usize) else {
            continue;
        };
        let mut frames: [&[u8]; BATCH_SIZE] = [&[]; BATCH_SIZE];
        let mut n = 0;
        for (i, d) in dispositions.iter().enumerate() {
            let wanted = match d {
                Disposition::Flood => true,
                Disposition::Unicast(p) if *p == out => {
                    delivery.unicast[i] = true;
                    true
                }
                _ => false,
            };
            if wanted {
                if let Some(buf) = batch.get(i) {
                    frames[n] = buf.frame();
                    n += 1;
                }
            }
        }
        if any_flood {
            delivery.flood = true;
        }
        if n > 0 {
            slot.port.tx_burst(&frames[..n], &mut slot.counters);
        }
    }
    delivery
}
