//! The `vhost_queue` target: a vhost-user port's two virtqueues (`Vring`)
//! run against guest memory the input writes. The guest driver's side of a
//! split ring (`guest`) is shared with the unit tests of `port::vhostuser`.
//!
//! Guest memory here is 64 KiB at address 0, filled from the input, then a
//! 4 KiB gap, then a 4 KiB guard region. The input picks where the rings
//! lie, their sizes and starting indices, the features, and a list of
//! operations (take frames from the guest, send frames to it, the guest
//! publishing buffers or rewriting a byte, notifications off and on, a
//! GET_VRING_BASE stop and restart). Memory safety itself comes from
//! `vm-memory`; what the target checks is what the device may do to the
//! guest, whatever the guest wrote:
//! - a ring runs exactly when its three parts lie in the guest's memory (and
//!   its available ring is not at 0, virtio-queue's "not set up");
//! - taking frames writes nothing but the used ring; sending writes nothing
//!   but the used ring and buffers some device-writable descriptor names
//!   (so the guard region stays intact unless a descriptor points into it);
//! - every chain taken goes back used once, in the same call, and the used
//!   index in memory says so;
//! - every frame is received, sent or counted in one drop reason, and an
//!   available index that jumps past the ring stops it (`BadRing`);
//! - GET_VRING_BASE returns where the ring stopped.
//!
//! With bit 7 of the first byte the guest behaves instead (`model`): clean
//! rings, chains of random shapes, and every frame, used entry and byte the
//! guest sees compared with a model of the device.

use std::cell::RefCell;

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::packet::offload::OffloadCaps;
use crate::packet::{Batch, MAX_FRAME_LEN};
use crate::pipeline::counters::{DropReason, PortCounters};
use crate::port::vhostuser::virtq::{RingFault, Vring};
use crate::wire::vnet::{VnetHdr, F_DATA_VALID, F_NEEDS_CSUM, F_UDP_TUNNEL, GSO_TCPV4};

mod guest;
mod model;

#[cfg(test)]
pub(crate) use guest::start_vring;
use guest::{configure, get16, put};
pub use guest::{
    Desc, Driver, SplitRing, AVAIL_F_NO_INTERRUPT, DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE,
};

/// The target's guest memory: region 0 is filled from the input, the guard
/// region (after a gap) with `GUARD_BYTE`.
pub const MEM_LEN: u64 = 0x1_0000;
pub const GUARD_AT: u64 = 0x1_1000;
pub const GUARD_LEN: u64 = 0x1000;
const GUARD_BYTE: u8 = 0xa5;
const SPAN: usize = (GUARD_AT + GUARD_LEN) as usize;
/// Input layout: flags, then per ring (0: to the guest, 1: from it)
/// `[log2 size][desc u16][avail u16][used u16][base u16]`, then `OPS`
/// operations of 4 bytes, then the memory image.
pub const HEADER_LEN: usize = 19;
pub const OPS: usize = 16;
pub const IMAGE_AT: usize = HEADER_LEN + OPS * 4;
/// Indirect descriptors the write check follows per call, at most.
const INDIRECT_BUDGET: usize = 8192;

/// What the input's first byte negotiated.
struct Setup {
    merge: bool,
    hdr_len: usize,
    allowed: OffloadCaps,
    offload_tx: bool,
}

struct Ring {
    vring: Vring,
    layout: SplitRing,
}

impl Ring {
    fn start(&mut self, mem: &GuestMemoryMmap) {
        let active = self.vring.activate(Some(mem));
        // An available ring at 0 is "never set up" to virtio-queue: such a
        // ring does not start.
        let fits = self.layout.fits(MEM_LEN) && self.layout.avail != 0;
        assert_eq!(
            active, fits,
            "{:?}: active {active}, fits {fits}",
            self.layout
        );
    }
}

/// Flags byte: bit 0 MRG_RXBUF, 1 EVENT_IDX, 2 VERSION_1 (12-byte header
/// without merging), 3 the guest may send checksum-partial frames, 4 and
/// TSO, 5 frames to the guest carry offload requests, 7 a well-behaved
/// guest instead, checked against a model (`model::run`).
///
/// Operations `[kind][a][b][c]`, kind modulo 8: 1 take frames from ring 1
/// (`a` % 33 batch slots already used), 2 send (`a` & 0x7f) % 9 frames to ring 0
/// (lengths from `b`,`c`; `a` bit 7 jumbo), 3 the guest moves ring `a`&1's
/// available index (by `b`, or to `b`,`c` with `a` bit 1), 4 the guest
/// writes `c` at address `a`,`b`, 5 ring `a`&1's notifications off (`b`
/// even) or on, 6 GET_VRING_BASE on ring `a`&1 then a restart (at `b`,`c`
/// with `a` bit 1); others do nothing.
pub fn vhost_queue(data: &[u8]) {
    let at = |i: usize| data.get(i).copied().unwrap_or(0);
    let u16_at = |i: usize| u16::from_le_bytes([at(i), at(i + 1)]);
    let ranges = [
        (GuestAddress(0), MEM_LEN as usize),
        (GuestAddress(GUARD_AT), GUARD_LEN as usize),
    ];
    let mem = GuestMemoryMmap::from_ranges(&ranges).expect("map the guest memory");
    let image = data.get(IMAGE_AT..).unwrap_or_default();
    put(&mem, 0, &image[..image.len().min(MEM_LEN as usize)]);
    put(&mem, GUARD_AT, &[GUARD_BYTE; GUARD_LEN as usize]);

    let flags = at(0);
    let merge = flags & 1 != 0;
    let setup = Setup {
        merge,
        hdr_len: if merge || flags & 4 != 0 { 12 } else { 10 },
        allowed: OffloadCaps {
            csum: flags & 8 != 0,
            tso4: flags & 0x18 == 0x18,
            tso6: flags & 0x18 == 0x18,
            uso: false,
        },
        offload_tx: flags & 0x20 != 0,
    };
    if flags & 0x80 != 0 {
        BATCH.with_borrow_mut(|batch| model::run(data, &setup, batch));
        return;
    }
    let mut rings = [1, 10].map(|o| {
        let layout = SplitRing {
            size: 1 << (at(o) % 16),
            desc: u64::from(u16_at(o + 1) & !0xf),
            avail: u64::from(u16_at(o + 3) & !1),
            used: u64::from(u16_at(o + 5) & !3),
        };
        let vring = configure(&layout, u16_at(o + 7), flags & 2 != 0);
        let mut ring = Ring { vring, layout };
        ring.start(&mem);
        ring
    });

    let mut counters = PortCounters::default();
    BATCH.with_borrow_mut(|batch| {
        for k in 0..OPS {
            run_op(data, k, &mem, &mut rings, batch, &setup, &mut counters);
        }
    });
}

thread_local! {
    /// 2 MiB of buffers, allocated once rather than for every input.
    static BATCH: RefCell<Batch> = RefCell::new(Batch::new());
}

/// Runs operation `k` of the input.
fn run_op(
    data: &[u8],
    k: usize,
    mem: &GuestMemoryMmap,
    rings: &mut [Ring; 2],
    batch: &mut Batch,
    setup: &Setup,
    counters: &mut PortCounters,
) {
    let at = |i: usize| data.get(i).copied().unwrap_or(0);
    let u16_at = |i: usize| u16::from_le_bytes([at(i), at(i + 1)]);
    let o = HEADER_LEN + 4 * k;
    let (a, b, c) = (at(o + 1), at(o + 2), at(o + 3));
    let ring = &mut rings[usize::from(a & 1)];
    match at(o) % 8 {
        1 => receive(
            &mut rings[1],
            mem,
            batch,
            usize::from(a % 33),
            setup,
            counters,
        ),
        2 => transmit(
            &mut rings[0],
            mem,
            &frames(a, u16_at(o + 2)),
            setup,
            counters,
        ),
        3 => {
            let idx_at = ring.layout.avail + 2;
            if idx_at + 2 <= MEM_LEN {
                let new = if a & 2 == 0 {
                    get16(mem, idx_at).wrapping_add(u16::from(b))
                } else {
                    u16_at(o + 2)
                };
                put(mem, idx_at, &new.to_le_bytes());
            }
        }
        4 => put(mem, u64::from(u16::from_le_bytes([a, b])), &[c]),
        5 => notifications(ring, mem, b & 1 == 1),
        6 => {
            let (next_avail, _) = ring.vring.position();
            assert_eq!(ring.vring.stop(), next_avail, "GET_VRING_BASE");
            assert!(!ring.vring.is_active() && !ring.vring.activate(Some(mem)));
            let base = if a & 2 == 0 {
                next_avail
            } else {
                u16_at(o + 2)
            };
            ring.vring.set_base(base);
            ring.vring.set_kick(None);
            ring.start(mem);
        }
        _ => {}
    }
}

/// Up to 8 frames of 14 bytes and more, lengths drawn from `seed`.
fn frames(a: u8, seed: u16) -> Vec<Vec<u8>> {
    let mut x = u32::from(seed) | 0x1_0000;
    let max = if a & 0x80 != 0 { 9200 } else { 1600 };
    (0..usize::from(a & 0x7f) % 9)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let len = 14 + x as usize % max;
            (0..len).map(|j| (i * 31 + j) as u8).collect()
        })
        .collect()
}

/// The guest memory the target checks, as one array (the gap reads zero).
fn snapshot(mem: &GuestMemoryMmap) -> Vec<u8> {
    let mut all = vec![0u8; SPAN];
    let (low, rest) = all.split_at_mut(MEM_LEN as usize);
    mem.read_slice(low, GuestAddress(0)).expect("read region 0");
    let guard = &mut rest[(GUARD_AT - MEM_LEN) as usize..];
    mem.read_slice(guard, GuestAddress(GUARD_AT))
        .expect("read the guard");
    all
}

/// Byte ranges the device may write in one call, sorted and merged.
struct Writable(Vec<(u64, u64)>);

impl Writable {
    /// The used ring, and with `buffers` every device-writable descriptor
    /// of the table and its indirect tables. `None` when that cannot be
    /// known in advance: a writable byte lies in a descriptor table or the
    /// available ring, so the device's own writes may change what it does.
    fn of(ring: &Ring, mem: &GuestMemoryMmap, buffers: bool) -> Option<Writable> {
        let mut ranges = Vec::new();
        let mut tables = Vec::new();
        let mut add = |addr: u64, len: u64| {
            let end = addr.saturating_add(len).min(SPAN as u64);
            if addr < end {
                ranges.push((addr, end));
            }
        };
        let layout = &ring.layout;
        let active = ring.vring.is_active();
        if active {
            add(layout.used, layout.used_bytes());
        }
        if buffers && active {
            tables.push((layout.desc, layout.desc_bytes()));
            tables.push((layout.avail, layout.avail_bytes()));
            let mut budget = INDIRECT_BUDGET;
            for i in 0..u64::from(layout.size) {
                let d = Desc::read(mem, layout.desc + 16 * i).expect("the table is in memory");
                if d.flags & DESC_F_INDIRECT == 0 {
                    if d.flags & DESC_F_WRITE != 0 {
                        add(d.addr, u64::from(d.len));
                    }
                    continue;
                }
                if d.len % 16 != 0 {
                    continue;
                }
                let n = (d.len / 16).min(u32::from(u16::MAX)) as usize;
                budget = budget.checked_sub(n)?;
                tables.push((d.addr, u64::from(d.len)));
                for j in 0..n as u64 {
                    let Some(e) = Desc::read(mem, d.addr.wrapping_add(16 * j)) else {
                        break;
                    };
                    if e.flags & DESC_F_WRITE != 0 {
                        add(e.addr, u64::from(e.len));
                    }
                }
            }
        }
        ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
        for (start, end) in ranges {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        let w = Writable(merged);
        let self_modifying = tables
            .iter()
            .any(|&(addr, len)| w.touches(addr, addr.saturating_add(len)));
        (!self_modifying).then_some(w)
    }

    /// Whether any byte of `start..end` may be written.
    fn touches(&self, start: u64, end: u64) -> bool {
        let i = self.0.partition_point(|&(_, e)| e <= start);
        self.0.get(i).is_some_and(|&(s, _)| s < end)
    }
}

/// Every byte the call changed is one it could write.
fn check_writes(before: &[u8], mem: &GuestMemoryMmap, writable: &Writable, what: &str) {
    let after = snapshot(mem);
    for (k, (b, a)) in before.chunks(64).zip(after.chunks(64)).enumerate() {
        if b == a {
            continue;
        }
        for at in (0..b.len())
            .filter(|&i| b[i] != a[i])
            .map(|i| (64 * k + i) as u64)
        {
            if !writable.touches(at, at + 1) {
                let place = if at >= GUARD_AT {
                    "the guard region"
                } else {
                    "guest memory"
                };
                panic!(
                    "{what} wrote {place} at {at:#x}, outside the used ring and writable buffers"
                );
            }
        }
    }
}

/// The state around one call, for the checks after it.
struct Before {
    active: bool,
    position: (u16, u16),
    /// How far the available index is ahead of the ring.
    jump: u16,
    counters: PortCounters,
    memory: Vec<u8>,
}

impl Before {
    fn take(ring: &Ring, mem: &GuestMemoryMmap, counters: &PortCounters) -> Before {
        let active = ring.vring.is_active();
        let position = ring.vring.position();
        let jump = if active {
            ring.layout.avail_idx(mem).wrapping_sub(position.0)
        } else {
            0
        };
        let memory = snapshot(mem);
        Before {
            active,
            position,
            jump,
            counters: *counters,
            memory,
        }
    }

    /// Whether the ring must refuse this call: the index jumped past the
    /// ring, or the available ring is at 0 (which `virtio-queue` takes for
    /// a ring never set up).
    fn must_fail(&self, ring: &Ring) -> bool {
        self.active && (self.jump > ring.layout.size || ring.layout.avail == 0)
    }

    /// A chain taken in this call named a descriptor past the ring, which
    /// cannot go back used.
    fn took_bad_head(&self, ring: &Ring) -> bool {
        let l = &ring.layout;
        let taken = ring.vring.position().0.wrapping_sub(self.position.0);
        (0..taken).any(|k| {
            let pos = self.position.0.wrapping_add(k) % l.size;
            let at = (l.avail + 4 + 2 * u64::from(pos)) as usize;
            u16::from_le_bytes([self.memory[at], self.memory[at + 1]]) >= l.size
        })
    }

    /// Chains taken in the call all went back used, once, and the used
    /// index in memory is the ring's.
    fn check_returned(&self, ring: &Ring, mem: &GuestMemoryMmap, checkable: bool) -> u16 {
        let (avail, used) = ring.vring.position();
        let taken = avail.wrapping_sub(self.position.0);
        assert_eq!(
            taken,
            used.wrapping_sub(self.position.1),
            "chains taken != returned"
        );
        assert!(
            taken <= ring.layout.size.min(self.jump),
            "took {taken} of {}",
            self.jump
        );
        if taken > 0 && checkable {
            assert_eq!(ring.layout.used_idx(mem), used, "used index in memory");
        }
        taken
    }
}

fn receive(
    ring: &mut Ring,
    mem: &GuestMemoryMmap,
    batch: &mut Batch,
    prefill: usize,
    setup: &Setup,
    counters: &mut PortCounters,
) {
    batch.clear();
    for _ in 0..prefill {
        batch.push_copy(&[]);
    }
    let before = Before::take(ring, mem, counters);
    let cover = Writable::of(ring, mem, false).expect("without buffers always known");
    let result = ring
        .vring
        .receive(mem, batch, setup.hdr_len, setup.allowed, counters);
    check_writes(&before.memory, mem, &cover, "receive");
    let failed = before.must_fail(ring) || before.took_bad_head(ring);
    match result {
        Err(RingFault::BadRing) => {
            assert!(failed, "receive failed on a sound ring");
            assert!(!ring.vring.is_active(), "a faulty ring still runs");
        }
        Ok(got) => {
            assert!(!failed, "receive took a ring it must refuse");
            let taken = before.check_returned(ring, mem, true);
            let c0 = &before.counters;
            assert_eq!(batch.len(), prefill + got);
            assert_eq!(counters.rx_packets - c0.rx_packets, got as u64);
            let dropped = counters.total_drops() - c0.total_drops();
            assert_eq!(
                got as u64 + dropped,
                u64::from(taken),
                "chains taken vs outcomes"
            );
            let mut bytes = 0;
            for buf in batch.iter().skip(prefill) {
                assert!(buf.len() <= MAX_FRAME_LEN);
                bytes += buf.len() as u64;
                let mut hdr = buf.meta.offload;
                hdr.flags &= !F_UDP_TUNNEL;
                assert!(
                    setup.allowed.takes(&hdr),
                    "an offload the guest may not ask"
                );
            }
            assert_eq!(counters.rx_bytes - c0.rx_bytes, bytes);
        }
    }
}

fn transmit(
    ring: &mut Ring,
    mem: &GuestMemoryMmap,
    frames: &[Vec<u8>],
    setup: &Setup,
    counters: &mut PortCounters,
) {
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    let hdrs: Vec<VnetHdr> = (0..frames.len())
        .map(|i| VnetHdr {
            flags: F_NEEDS_CSUM | F_DATA_VALID,
            gso_type: if i % 2 == 1 { GSO_TCPV4 } else { 0 },
            hdr_len: 54,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        })
        .collect();
    let hdrs = setup.offload_tx.then_some(hdrs.as_slice());
    let before = Before::take(ring, mem, counters);
    let cover = Writable::of(ring, mem, true);
    let result = ring
        .vring
        .transmit(mem, &refs, hdrs, setup.hdr_len, setup.merge, counters);
    if let Some(cover) = &cover {
        check_writes(&before.memory, mem, cover, "transmit");
    }
    let c0 = &before.counters;
    let dropped = counters.total_drops() - c0.total_drops();
    match result {
        Err(RingFault::BadRing) => {
            let known = cover.is_some();
            assert!(!known || before.must_fail(ring) || before.took_bad_head(ring));
            assert!(!ring.vring.is_active(), "a faulty ring still runs");
        }
        Ok(sent) => {
            assert!(
                !before.must_fail(ring),
                "transmit took a ring it must refuse"
            );
            assert_eq!(
                sent as u64 + dropped,
                frames.len() as u64,
                "frames vs outcomes"
            );
            assert_eq!(counters.tx_packets - c0.tx_packets, sent as u64);
            if !before.active {
                let not_ready = counters.drops(DropReason::PortNotReady);
                assert_eq!(not_ready - c0.drops(DropReason::PortNotReady), dropped);
            }
            let taken = before.check_returned(ring, mem, cover.is_some());
            assert!(
                sent <= usize::from(taken),
                "{sent} frames in {taken} chains"
            );
        }
    }
}

fn notifications(ring: &mut Ring, mem: &GuestMemoryMmap, on: bool) {
    let before = snapshot(mem);
    let cover = Writable::of(ring, mem, false).expect("without buffers always known");
    if on {
        let pending = ring.vring.wake_on_kick(mem);
        let waiting =
            ring.vring.is_active() && ring.layout.avail_idx(mem) != ring.vring.position().0;
        assert_eq!(pending, waiting, "buffers pending");
    } else {
        ring.vring.quiet(mem);
    }
    check_writes(&before, mem, &cover, "notifications");
}
