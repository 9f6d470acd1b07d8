//! Output stage: one burst per output port, each frame in the form the
//! port's VLAN mode wants.
//!
//! Frames arrive untagged (input stripped their tag). A first pass hands
//! every port the frames it takes untagged; then the frames bound for a
//! tagged egress get their tag pushed in place (into the headroom) and a
//! second pass hands those out. So a frame is rewritten at most once however
//! many ports it floods to.

use super::vlan::Egress;
use super::{Disposition, PortSlot, Verdict};
use crate::fdb::PortId;
use crate::packet::{Batch, BATCH_SIZE};

/// Sends the batch; returns, per frame, whether any port took it.
pub fn transmit(
    batch: &mut Batch,
    verdicts: &[Verdict],
    in_port: PortId,
    members: &[PortId],
    ports: &mut [Option<PortSlot>],
) -> [bool; BATCH_SIZE] {
    let mut delivered = [false; BATCH_SIZE];
    let mut needs_tag = [false; BATCH_SIZE];
    let mut any_tagged = false;

    for pass in [Egress::Untagged, Egress::Tagged] {
        if pass == Egress::Tagged {
            if !any_tagged {
                break;
            }
            for (i, buf) in batch.iter_mut().enumerate() {
                if needs_tag[i] {
                    let tci = verdicts[i].prio | verdicts[i].vlan;
                    let [hi, lo] = tci.to_be_bytes();
                    buf.insert_at(12, &[0x81, 0x00, hi, lo]);
                }
            }
        }
        for &out in members {
            if out == in_port {
                continue;
            }
            let Some(Some(slot)) = ports.get_mut(out as usize) else {
                continue;
            };
            let mut frames: [&[u8]; BATCH_SIZE] = [&[]; BATCH_SIZE];
            let mut n = 0;
            for (i, v) in verdicts.iter().enumerate() {
                let bound_here = match v.disposition {
                    Disposition::Flood => true,
                    Disposition::Unicast(p) => p == out,
                    Disposition::Drop(_) => false,
                };
                if !bound_here {
                    continue;
                }
                let egress = slot.policy.vlan.egress(v.vlan);
                if pass == Egress::Untagged && egress == Egress::Tagged {
                    needs_tag[i] = true;
                    any_tagged = true;
                }
                if egress != pass {
                    continue;
                }
                if let Some(buf) = batch.get(i) {
                    frames[n] = buf.frame();
                    n += 1;
                    delivered[i] = true;
                }
            }
            if n > 0 {
                slot.port.tx_burst(&frames[..n], &mut slot.counters);
            }
        }
    }
    delivered
}
