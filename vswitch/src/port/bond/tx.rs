//! The bond's transmit side: frames spread over the distributing members
//! by flow hash, and control frames (LACPDUs, marker responses).

use super::hash::flow_hash;
use super::BondPort;
use crate::packet::BATCH_SIZE;
use crate::pipeline::counters::{DropReason, PortCounters};
use crate::port::Port;
use crate::wire::lacp::Pdu;
use crate::wire::vnet::VnetHdr;

impl BondPort {
    /// Each frame goes to the distributing member its flow hashes to, in
    /// one burst per member; with no member distributing, every frame is
    /// dropped and counted (`bond_no_link`). `hdrs` holds each frame's
    /// offload requests, or is empty for plain frames.
    pub(super) fn transmit(
        &mut self,
        frames: &[&[u8]],
        hdrs: &[VnetHdr],
        counters: &mut PortCounters,
    ) -> usize {
        match self.n_tx {
            0 => {
                counters.count_drops(DropReason::BondNoLink, frames.len() as u64);
                0
            }
            1 => self.send_on(self.tx_members[0], frames, hdrs, counters),
            n => {
                let mut sent = 0;
                for (c, chunk) in frames.chunks(BATCH_SIZE).enumerate() {
                    let chunk_hdrs = hdrs.get(c * BATCH_SIZE..).unwrap_or_default();
                    let mut pick = [0usize; BATCH_SIZE];
                    for (p, f) in pick.iter_mut().zip(chunk) {
                        *p = (flow_hash(f, self.cfg.hash) % n as u32) as usize;
                    }
                    for slot in 0..n {
                        let mut out: [&[u8]; BATCH_SIZE] = [&[]; BATCH_SIZE];
                        let mut out_hdrs = [VnetHdr::default(); BATCH_SIZE];
                        let mut k = 0;
                        for (j, (p, f)) in pick.iter().zip(chunk).enumerate() {
                            if *p == slot {
                                out[k] = f;
                                out_hdrs[k] = chunk_hdrs.get(j).copied().unwrap_or_default();
                                k += 1;
                            }
                        }
                        if k > 0 {
                            let h = if hdrs.is_empty() {
                                &[][..]
                            } else {
                                &out_hdrs[..k]
                            };
                            sent += self.send_on(self.tx_members[slot], &out[..k], h, counters);
                        }
                    }
                }
                sent
            }
        }
    }

    fn send_on(
        &mut self,
        m: usize,
        frames: &[&[u8]],
        hdrs: &[VnetHdr],
        counters: &mut PortCounters,
    ) -> usize {
        let (p0, b0) = (counters.tx_packets, counters.tx_bytes);
        let member = &mut self.members[m];
        let n = if hdrs.is_empty() {
            member.port.tx_burst(frames, counters)
        } else {
            member.port.tx_burst_offload(frames, hdrs, counters)
        };
        member.stats.tx_packets += counters.tx_packets - p0;
        member.stats.tx_bytes += counters.tx_bytes - b0;
        n
    }

    /// Sends one slow protocols PDU from member `m`'s own MAC.
    pub(super) fn send_control(&mut self, m: usize, pdu: Pdu, counters: &mut PortCounters) {
        let Some(member) = self.members.get_mut(m) else {
            return;
        };
        let len = pdu.emit_frame(member.mac, &mut self.ctrl_frame);
        let (p0, b0) = (counters.tx_packets, counters.tx_bytes);
        member.port.tx_burst(&[&self.ctrl_frame[..len]], counters);
        member.stats.tx_packets += counters.tx_packets - p0;
        member.stats.tx_bytes += counters.tx_bytes - b0;
    }
}
