//! The virtio-net data path on split virtqueues: frames from the guest's
//! transmit queues into the switch's batch, and frames from the switch into
//! the guest's receive queues (with merged receive buffers).
//!
//! Guest memory is untrusted. Every access goes through `vm-memory`, which
//! checks it against the regions the front end shared; `virtio-queue` bounds
//! a descriptor chain by the queue size (so a loop ends) and refuses an
//! available index that jumps further than the ring. A bad chain is a
//! counted drop (`vhost_bad_descriptor`) and goes back to the guest used; a
//! bad ring stops the queue and resets the connection (`vhost_ring_error`).

use std::fs::File;
use std::io::Write;
use std::sync::atomic::{fence, Ordering};

use vhost::vhost_user::{Error, Result};
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryMmap};

use crate::packet::offload::{self, OffloadCaps};
use crate::packet::Batch;
use crate::pipeline::counters::{DropReason, PortCounters};
use crate::wire::vnet::{VnetHdr, VNET_HDR_LEN};

/// `flags` of the available ring: the driver polls and wants no interrupt.
const VRING_AVAIL_F_NO_INTERRUPT: u16 = 1;

/// Chains of one burst waiting to be returned used: (head, bytes written).
pub const MAX_USED_PER_BURST: usize = 256;

/// What went wrong with a queue as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingFault {
    /// The available index moved further than the ring holds, or a ring
    /// structure is outside the guest's memory.
    BadRing,
}

/// One virtqueue and its eventfds.
pub struct Vring {
    queue: Queue,
    pub kick: Option<File>,
    pub call: Option<File>,
    /// Enabled by the front end (always, without protocol features).
    pub enabled: bool,
    /// Has a kick descriptor and was not stopped by GET_VRING_BASE.
    started: bool,
    /// Checked against the memory table and running.
    active: bool,
    /// Whether the guest's kicks are on (only while the datapath sleeps).
    notify_on: bool,
    used: Vec<(u16, u32)>,
    pub frames: u64,
    pub bytes: u64,
    pub drops: u64,
}

impl Vring {
    pub fn new(max_size: u16) -> Vring {
        Vring {
            queue: Queue::new(max_size).expect("the maximum queue size is a power of two"),
            kick: None,
            call: None,
            enabled: false,
            started: false,
            active: false,
            notify_on: true,
            used: Vec::with_capacity(MAX_USED_PER_BURST),
            frames: 0,
            bytes: 0,
            drops: 0,
        }
    }

    pub fn reset(&mut self) {
        self.queue.reset();
        self.kick = None;
        self.call = None;
        self.enabled = false;
        self.started = false;
        self.active = false;
        self.notify_on = true;
    }

    pub fn set_size(&mut self, size: u16) -> Result<()> {
        self.queue
            .try_set_size(size)
            .map_err(|_| Error::InvalidParam)
    }

    pub fn set_addresses(
        &mut self,
        desc: GuestAddress,
        avail: GuestAddress,
        used: GuestAddress,
    ) -> Result<()> {
        self.queue
            .try_set_desc_table_address(desc)
            .and_then(|()| self.queue.try_set_avail_ring_address(avail))
            .and_then(|()| self.queue.try_set_used_ring_address(used))
            .map_err(|_| Error::InvalidParam)
    }

    pub fn set_base(&mut self, base: u16) {
        self.queue.set_next_avail(base);
        self.queue.set_next_used(base);
    }

    pub fn set_event_idx(&mut self, on: bool) {
        self.queue.set_event_idx(on);
    }

    pub fn set_kick(&mut self, kick: Option<File>) {
        self.kick = kick;
        self.started = true;
    }

    /// Stops the ring (GET_VRING_BASE) and gives the index to resume at.
    pub fn stop(&mut self) -> u16 {
        self.started = false;
        self.active = false;
        self.queue.set_ready(false);
        self.queue.next_avail()
    }

    pub fn size(&self) -> u16 {
        self.queue.size()
    }

    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Where the ring stands: the next available entry to take and the
    /// next used entry to fill (what the fuzz target checks the counters
    /// and the guest's memory against).
    pub fn position(&self) -> (u16, u16) {
        (self.queue.next_avail(), self.queue.next_used())
    }

    /// Decides whether the ring runs, after the front end changed
    /// something: started, enabled, and its structures inside `mem`.
    pub fn activate(&mut self, mem: Option<&GuestMemoryMmap>) -> bool {
        // virtio-queue takes an available ring at 0 for "never set up" and
        // would fail every burst: such a ring does not start.
        let wanted = self.started && self.enabled && mem.is_some() && self.queue.avail_ring() != 0;
        self.queue.set_ready(wanted);
        self.active = wanted && mem.is_some_and(|m| self.queue.is_valid(m));
        self.queue.set_ready(self.active);
        if let (true, Some(mem)) = (self.active, mem) {
            self.resume_at_used(mem);
        }
        self.active
    }

    /// Starts from the guest's used index when it differs from ours: a
    /// front end that outlived a switch restart (virtio-user in server
    /// mode) sends the base it last knew, not where the old switch
    /// stopped. Chains the old switch took but never returned are given
    /// up (a transmit resent, a receive lost), as DPDK's back end does.
    fn resume_at_used(&mut self, mem: &GuestMemoryMmap) {
        let Ok(used) = self.queue.used_idx(mem, Ordering::Acquire) else {
            return;
        };
        if used.0 != self.queue.next_used() {
            tracing::info!(
                base = self.queue.next_used(),
                used = used.0,
                "vhost-user ring resumes at the guest's used index"
            );
            self.queue.set_next_avail(used.0);
            self.queue.set_next_used(used.0);
        }
    }

    /// Turns the guest's kicks off while the datapath polls the ring.
    pub fn quiet(&mut self, mem: &GuestMemoryMmap) {
        if self.notify_on && self.active {
            let _ = self.queue.disable_notification(mem);
            self.notify_on = false;
        }
    }

    /// Turns the guest's kicks back on before the datapath sleeps; true
    /// when buffers arrived meanwhile, so it must not sleep.
    pub fn wake_on_kick(&mut self, mem: &GuestMemoryMmap) -> bool {
        if !self.active {
            return false;
        }
        self.notify_on = true;
        self.queue.enable_notification(mem).unwrap_or(false)
    }

    fn stop_on_fault(&mut self) -> RingFault {
        self.active = false;
        self.queue.set_ready(false);
        RingFault::BadRing
    }

    /// Returns the burst's chains used and interrupts the guest if it
    /// asked for it.
    fn complete(&mut self, mem: &GuestMemoryMmap) -> std::result::Result<(), RingFault> {
        if self.used.is_empty() {
            return Ok(());
        }
        for &(head, len) in &self.used {
            if self.queue.add_used(mem, head, len).is_err() {
                self.used.clear();
                return Err(self.stop_on_fault());
            }
        }
        self.used.clear();
        if self.needs_interrupt(mem) {
            if let Some(call) = &self.call {
                // A full eventfd counter still wakes the guest.
                let _ = (&*call).write(&1u64.to_ne_bytes());
            }
        }
        Ok(())
    }

    fn needs_interrupt(&mut self, mem: &GuestMemoryMmap) -> bool {
        if self.queue.event_idx_enabled() {
            return self.queue.needs_notification(mem).unwrap_or(true);
        }
        fence(Ordering::SeqCst);
        let flags: u16 = mem
            .read_obj(GuestAddress(self.queue.avail_ring()))
            .map(u16::from_le)
            .unwrap_or(0);
        flags & VRING_AVAIL_F_NO_INTERRUPT == 0
    }

    /// Takes frames the guest queued for transmission into `batch`.
    /// `hdr_len` is the negotiated virtio_net_hdr length; `allowed` the
    /// offload requests the guest may make.
    pub fn receive(
        &mut self,
        mem: &GuestMemoryMmap,
        batch: &mut Batch,
        hdr_len: usize,
        allowed: OffloadCaps,
        counters: &mut PortCounters,
    ) -> std::result::Result<usize, RingFault> {
        if !self.active {
            return Ok(0);
        }
        let mut got = 0;
        let mut iter = match self.queue.iter(mem) {
            Ok(iter) => iter,
            Err(_) => return Err(self.stop_on_fault()),
        };
        while let Some(buf) = batch.slot() {
            // Dropped chains count too: `used` never grows past its
            // preallocated room.
            if self.used.len() >= MAX_USED_PER_BURST {
                break;
            }
            let Some(chain) = iter.next() else { break };
            let head = chain.head_index();
            self.used.push((head, 0));
            let area = buf.rx_area();
            let mut len = 0usize;
            let mut fault = None;
            // Whether the last descriptor pointed on: the chain was cut
            // (a loop, a next index past the ring, an unreadable table).
            let mut cut = false;
            for desc in chain {
                cut = desc.has_next();
                if desc.is_write_only() {
                    fault = Some(DropReason::VhostBadDescriptor);
                    break;
                }
                let want = desc.len() as usize;
                let Some(dst) = area.get_mut(len..len + want) else {
                    fault = Some(DropReason::RxTruncated);
                    break;
                };
                if mem.read_slice(dst, desc.addr()).is_err() {
                    fault = Some(DropReason::VhostBadDescriptor);
                    break;
                }
                len += want;
            }
            if cut && fault.is_none() {
                fault = Some(DropReason::VhostBadDescriptor);
            }
            if let Some(reason) = fault {
                counters.count_drop(reason);
                self.drops += 1;
                continue;
            }
            if len < hdr_len {
                counters.count_drop(DropReason::VhostBadDescriptor);
                self.drops += 1;
                continue;
            }
            let mut hdr = VnetHdr::parse(&area[..VNET_HDR_LEN]).unwrap_or_default();
            buf.set_len(len);
            buf.pull_front(hdr_len);
            if !hdr.is_plain() && !allowed.takes(&hdr) {
                counters.count_drop(DropReason::OffloadInvalid);
                self.drops += 1;
                continue;
            }
            if let Err(reason) = offload::check_rx(buf.frame(), &mut hdr) {
                counters.count_drop(reason);
                self.drops += 1;
                continue;
            }
            buf.meta.offload = hdr;
            let frame_len = len - hdr_len;
            counters.count_rx(frame_len);
            self.frames += 1;
            self.bytes += frame_len as u64;
            batch.commit();
            got += 1;
        }
        self.complete(mem)?;
        Ok(got)
    }

    /// Copies frames into the guest's receive buffers, a frame over as many
    /// buffers as it needs when `merge` (MRG_RXBUF) is on. Returns how many
    /// frames went; the rest are counted as drops.
    pub fn transmit(
        &mut self,
        mem: &GuestMemoryMmap,
        frames: &[&[u8]],
        hdrs: Option<&[VnetHdr]>,
        hdr_len: usize,
        merge: bool,
        counters: &mut PortCounters,
    ) -> std::result::Result<usize, RingFault> {
        let all = |_| true;
        self.transmit_selected(mem, frames, hdrs, hdr_len, merge, &all, counters)
    }

    /// `transmit` of the frames whose index `pick` accepts (the ones a
    /// multiqueue port sends through this queue).
    #[allow(clippy::too_many_arguments)]
    pub fn transmit_selected(
        &mut self,
        mem: &GuestMemoryMmap,
        frames: &[&[u8]],
        hdrs: Option<&[VnetHdr]>,
        hdr_len: usize,
        merge: bool,
        pick: &dyn Fn(usize) -> bool,
        counters: &mut PortCounters,
    ) -> std::result::Result<usize, RingFault> {
        let picked_from = |i: usize| (i..frames.len()).filter(|&j| pick(j)).count() as u64;
        if !self.active {
            counters.count_drops(DropReason::PortNotReady, picked_from(0));
            return Ok(0);
        }
        let mut sent = 0;
        let mut iter = match self.queue.iter(mem) {
            Ok(iter) => iter,
            Err(_) => return Err(self.stop_on_fault()),
        };
        for (i, frame) in frames.iter().enumerate() {
            if !pick(i) {
                continue;
            }
            if self.used.len() + 1 >= MAX_USED_PER_BURST {
                counters.count_drops(DropReason::TxRingFull, picked_from(i));
                self.drops += picked_from(i);
                break;
            }
            let hdr = hdrs.and_then(|h| h.get(i)).copied().unwrap_or_default();
            let mut head_bytes = [0u8; 12];
            head_bytes[..VNET_HDR_LEN].copy_from_slice(&hdr.for_tx().to_bytes());
            // num_buffers: 1 unless the frame spreads over more buffers
            // (rewritten then), so a frame that fits writes it once.
            head_bytes[VNET_HDR_LEN..].copy_from_slice(&1u16.to_le_bytes());
            let header = &head_bytes[..hdr_len];
            let mut outcome = ToGuest::default();
            let start = self.used.len();
            // Fill chains until the frame is in.
            loop {
                let Some(chain) = iter.next() else {
                    outcome.short = true;
                    break;
                };
                let head = chain.head_index();
                let mut written = 0u32;
                // A chain that yields nothing, or ends on a descriptor that
                // points on (cut: a loop, a next index past the ring), is
                // bad unless the frame was in before its end.
                let mut yielded = false;
                let mut cut = false;
                let mut frame_done = false;
                for desc in chain {
                    yielded = true;
                    cut = desc.has_next();
                    if !desc.is_write_only() {
                        outcome.bad = true;
                        break;
                    }
                    let room = desc.len() as usize;
                    let mut at = desc.addr();
                    let mut left = room;
                    if outcome.header_at.is_none() {
                        if room < hdr_len {
                            outcome.bad = true;
                            break;
                        }
                        if mem.write_slice(header, at).is_err() {
                            outcome.bad = true;
                            break;
                        }
                        outcome.header_at = Some(at);
                        at = at.unchecked_add(hdr_len as u64);
                        left -= hdr_len;
                        written += hdr_len as u32;
                    }
                    let take = left.min(frame.len() - outcome.copied);
                    if take > 0 {
                        let src = &frame[outcome.copied..outcome.copied + take];
                        if mem.write_slice(src, at).is_err() {
                            outcome.bad = true;
                            break;
                        }
                        outcome.copied += take;
                        written += take as u32;
                    }
                    if outcome.copied == frame.len() {
                        frame_done = true;
                        break;
                    }
                }
                if !yielded || (cut && !frame_done) {
                    outcome.bad = true;
                }
                self.used.push((head, written));
                outcome.buffers += 1;
                if outcome.bad || outcome.copied == frame.len() || !merge {
                    break;
                }
                if self.used.len() + 1 >= MAX_USED_PER_BURST {
                    outcome.short = true;
                    break;
                }
            }
            if outcome.bad {
                // The chains are the guest's again, with nothing in them.
                for entry in &mut self.used[start..] {
                    entry.1 = 0;
                }
                counters.count_drop(DropReason::VhostBadDescriptor);
                self.drops += 1;
                continue;
            }
            if outcome.copied < frame.len() {
                // Out of buffers (or one buffer too small without merging):
                // give the chains back unused for the next burst.
                for _ in start..self.used.len() {
                    iter.go_to_previous_position();
                }
                self.used.truncate(start);
                let reason = if outcome.short {
                    DropReason::TxRingFull
                } else {
                    DropReason::TxTooBig
                };
                let rest = if outcome.short { picked_from(i) } else { 1 };
                counters.count_drops(reason, rest);
                self.drops += rest;
                if outcome.short {
                    break;
                }
                continue;
            }
            if hdr_len == 12 && outcome.buffers != 1 {
                // A frame that went in has its header in the first buffer.
                let count = (outcome.buffers as u16).to_le_bytes();
                let written = outcome
                    .header_at
                    .is_some_and(|at| mem.write_slice(&count, at.unchecked_add(10)).is_ok());
                if !written {
                    counters.count_drop(DropReason::VhostBadDescriptor);
                    self.drops += 1;
                    continue;
                }
            }
            counters.count_tx(frame.len());
            self.frames += 1;
            self.bytes += frame.len() as u64;
            sent += 1;
        }
        self.complete(mem)?;
        Ok(sent)
    }
}

/// How one frame's copy into the guest went.
#[derive(Default)]
struct ToGuest {
    copied: usize,
    buffers: usize,
    header_at: Option<GuestAddress>,
    /// A chain with a device-readable or unreachable buffer.
    bad: bool,
    /// The ring ran out of buffers before the frame was in.
    short: bool,
}
