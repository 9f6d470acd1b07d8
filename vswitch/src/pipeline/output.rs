//! Output stage: one burst per output port, each frame in the form the
//! port's VLAN mode wants and with the offload work the port cannot pass on
//! already done.
//!
//! Frames arrive untagged (input stripped their tag). A first pass hands
//! every port the frames it takes untagged; then the frames bound for a
//! tagged egress get their tag pushed in place (into the headroom) and a
//! second pass hands those out. So a frame is rewritten at most once however
//! many ports it floods to.
//!
//! Offloads (`packet::offload`): a checksum-partial frame bound for any port
//! that cannot take that is finished in place first (the result is right
//! for every port). A GSO frame goes whole to the ports that take it and is
//! cut into finished segments, in order with the port's other frames, for
//! each port that does not.

use super::vlan::Egress;
use super::{Disposition, PortSlot, Verdict};
use crate::fdb::PortId;
use crate::packet::offload;
use crate::packet::{Batch, PacketBuf, BATCH_SIZE};
use crate::pipeline::counters::DropReason;
use crate::wire::vnet::VnetHdr;

/// Sends the batch; returns, per frame, whether any port took it (or it was
/// left to a port's own drop counter). `segments` is scratch space for
/// segmentation.
pub fn transmit(
    batch: &mut Batch,
    verdicts: &[Verdict],
    in_port: PortId,
    members: &[PortId],
    ports: &mut [Option<PortSlot>],
    segments: &mut Batch,
) -> [bool; BATCH_SIZE] {
    let mut delivered = [false; BATCH_SIZE];
    let mut needs_tag = [false; BATCH_SIZE];
    let mut any_tagged = false;
    finish_checksums(batch, verdicts, in_port, members, ports);

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
            let mut burst = Burst::new();
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
                let Some(buf) = batch.get(i) else {
                    continue;
                };
                delivered[i] = true;
                if slot.caps.takes(&buf.meta.offload) {
                    burst.push(buf);
                } else {
                    // Checksums were finished above, so this is a GSO
                    // frame: what the port already has goes first.
                    burst.send(slot);
                    send_segments(buf, slot, segments);
                }
            }
            burst.send(slot);
        }
    }
    delivered
}

/// The frames one port gets, with their offload requests.
struct Burst<'a> {
    frames: [&'a [u8]; BATCH_SIZE],
    hdrs: [VnetHdr; BATCH_SIZE],
    len: usize,
    offloaded: bool,
}

impl<'a> Burst<'a> {
    fn new() -> Self {
        Burst {
            frames: [&[]; BATCH_SIZE],
            hdrs: [VnetHdr::default(); BATCH_SIZE],
            len: 0,
            offloaded: false,
        }
    }

    #[inline]
    fn push(&mut self, buf: &'a PacketBuf) {
        if self.len < BATCH_SIZE {
            self.frames[self.len] = buf.frame();
            self.hdrs[self.len] = buf.meta.offload;
            self.offloaded |= !buf.meta.offload.is_plain();
            self.len += 1;
        }
    }

    fn send(&mut self, slot: &mut PortSlot) {
        let n = self.len;
        if n == 0 {
            return;
        }
        if self.offloaded {
            slot.port
                .tx_burst_offload(&self.frames[..n], &self.hdrs[..n], &mut slot.counters);
        } else {
            slot.port.tx_burst(&self.frames[..n], &mut slot.counters);
        }
        if let Some(tap) = slot.capture.as_deref_mut() {
            tap.tx(&self.frames[..n]);
        }
        self.len = 0;
        self.offloaded = false;
    }
}

/// Finishes the checksum of every checksum-partial (non-GSO) frame that
/// some port it goes to cannot take as it is.
fn finish_checksums(
    batch: &mut Batch,
    verdicts: &[Verdict],
    in_port: PortId,
    members: &[PortId],
    ports: &[Option<PortSlot>],
) {
    let takes_csum = |p: PortId| {
        ports
            .get(p as usize)
            .and_then(Option::as_ref)
            .is_none_or(|slot| slot.caps.csum)
    };
    for (buf, v) in batch.iter_mut().zip(verdicts) {
        let hdr = buf.meta.offload;
        if !hdr.needs_csum() || hdr.is_gso() {
            continue;
        }
        let all_take = match v.disposition {
            Disposition::Drop(_) => true,
            Disposition::Unicast(p) => takes_csum(p),
            Disposition::Flood => members.iter().all(|&p| p == in_port || takes_csum(p)),
        };
        if !all_take && offload::finish_checksum(buf.frame_mut(), &hdr) {
            buf.meta.offload = VnetHdr::default();
        }
    }
}

/// Cuts a GSO frame into finished segments and sends them, a batch at a
/// time. A frame that cannot be cut is counted on the output port.
fn send_segments(buf: &PacketBuf, slot: &mut PortSlot, segments: &mut Batch) {
    let mut next = Some(0);
    while let Some(first) = next {
        segments.clear();
        next = match offload::segment(buf.frame(), &buf.meta.offload, first, segments) {
            Ok(next) => next,
            Err(_) => {
                slot.counters.count_drop(DropReason::OffloadUnsupported);
                None
            }
        };
        let mut frames: [&[u8]; BATCH_SIZE] = [&[]; BATCH_SIZE];
        let n = segments.len().min(BATCH_SIZE);
        for (f, seg) in frames.iter_mut().zip(segments.iter()) {
            *f = seg.frame();
        }
        if n > 0 {
            slot.port.tx_burst(&frames[..n], &mut slot.counters);
            if let Some(tap) = slot.capture.as_deref_mut() {
                tap.tx(&frames[..n]);
            }
        }
    }
    segments.clear();
}
