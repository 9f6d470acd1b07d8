//! The `vhost_queue` target's well-behaved guest: rings laid out cleanly,
//! buffers that never overlap, chains of random shapes; and a model of what
//! the device must then do, frame by frame. Against a guest that follows the
//! rules every outcome is predictable: which frames go or are dropped and
//! why, which chains go back used with how many bytes, the `num_buffers` of
//! merged frames, and the exact bytes the guest finds.

use std::collections::VecDeque;

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::guest::{configure, Desc, Driver, SplitRing};
use super::{frames, Setup, MEM_LEN};
use crate::packet::Batch;
use crate::pipeline::counters::{DropReason, PortCounters};
use crate::port::vhostuser::virtq::{Vring, MAX_USED_PER_BURST};
use crate::wire::vnet::VnetHdr;

/// Most bytes of one receive buffer the guest offers (besides the header).
const CHAIN_MAX: u64 = 800;

/// Buffer space handed out in ring order, freed in the order the device
/// uses the chains (which is the order they were published).
struct Space {
    lo: u64,
    hi: u64,
    next: u64,
    taken: u64,
}

impl Space {
    /// `n` contiguous bytes and what they cost (with the tail skipped when
    /// they would cross the end).
    fn take(&mut self, n: u64) -> Option<(u64, u64)> {
        let wrap = self.next + n > self.hi;
        let skip = if wrap { self.hi - self.next } else { 0 };
        if self.taken + skip + n > self.hi - self.lo {
            return None;
        }
        let at = if wrap { self.lo } else { self.next };
        self.next = at + n;
        self.taken += skip + n;
        Some((at, skip + n))
    }
}

/// A chain the guest published and the device has not used yet.
struct Pending {
    head: u16,
    descs: Vec<Desc>,
    cost: u64,
    /// Receive side: the frame it carries.
    frame: Vec<u8>,
}

struct Side {
    vring: Vring,
    driver: Driver,
    space: Space,
    pending: VecDeque<Pending>,
    /// The used index the guest has seen up to.
    seen: u16,
}

impl Side {
    fn new(mem: &GuestMemoryMmap, ring: SplitRing, lo: u64, hi: u64) -> Side {
        let mut vring = configure(&ring, 0, false);
        assert!(vring.activate(Some(mem)), "a clean ring runs");
        let space = Space {
            lo,
            hi,
            next: lo,
            taken: 0,
        };
        let driver = Driver::new(mem, ring, 0);
        Side {
            vring,
            driver,
            space,
            pending: VecDeque::new(),
            seen: 0,
        }
    }

    /// Publishes a chain over `len` bytes cut at `cuts`; false when the
    /// descriptor table or the buffer space is full.
    fn offer(&mut self, mem: &GuestMemoryMmap, len: u64, cuts: &[u64], write: bool) -> bool {
        // Descriptors are handed out in ring order and come back in the
        // same order, so at most a table's worth may be out.
        let out: usize = self.pending.iter().map(|p| p.descs.len()).sum();
        if out + cuts.len() + 1 > usize::from(self.driver.ring.size) {
            return false;
        }
        let Some((at, cost)) = self.space.take(len) else {
            return false;
        };
        let mut edges = vec![0];
        edges.extend(cuts.iter().map(|&c| c.min(len)));
        edges.push(len);
        let descs: Vec<Desc> = edges
            .windows(2)
            .map(|w| {
                let (addr, len) = (at + w[0], (w[1] - w[0]) as u32);
                if write {
                    Desc::writable(addr, len)
                } else {
                    Desc::readable(addr, len)
                }
            })
            .collect();
        let head = self.driver.add_chain(mem, &descs);
        self.pending.push_back(Pending {
            head,
            descs,
            cost,
            frame: Vec::new(),
        });
        true
    }

    /// The next used entry, which must be `head`'s with `len` bytes.
    fn used(&mut self, mem: &GuestMemoryMmap, head: u16, len: u32) -> Pending {
        let chain = self.pending.pop_front().expect("the device used a chain");
        assert_eq!(chain.head, head);
        let got = self.driver.ring.used_elem(mem, self.seen);
        assert_eq!(got, (u32::from(head), len), "used entry {}", self.seen);
        self.seen = self.seen.wrapping_add(1);
        self.space.taken -= chain.cost;
        chain
    }
}

fn rand(x: &mut u32) -> u32 {
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    *x
}

/// Clean mode: records `[op][x][seed u16]` from byte 1 on, op modulo 4: 0
/// the guest offers `x` % 17 receive buffers, 1 the switch sends frames
/// (drawn as in the hostile mode), 2 the guest sends frames (drawn the
/// same way), 3 the switch takes frames (`x` % 33 batch slots already used).
pub(super) fn run(data: &[u8], setup: &Setup, batch: &mut Batch) {
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_LEN as usize)])
        .expect("map the guest memory");
    let mut to_guest = Side::new(&mem, SplitRing::at(0x100, 64), 0x1000, 0x8000);
    let mut from_guest = Side::new(&mem, SplitRing::at(0x800, 64), 0x8000, MEM_LEN);
    let mut counters = PortCounters::default();
    for rec in data.get(1..).unwrap_or_default().chunks_exact(4).take(64) {
        let (x, seed) = (rec[1], u16::from_le_bytes([rec[2], rec[3]]));
        let mut r = u32::from(seed) | 0x2_0000;
        match rec[0] % 4 {
            0 => {
                for _ in 0..x % 17 {
                    let len = setup.hdr_len as u64 + u64::from(rand(&mut r)) % CHAIN_MAX;
                    let mut cuts: Vec<u64> = (0..rand(&mut r) % 3)
                        .map(|_| setup.hdr_len as u64 + u64::from(rand(&mut r)) % len)
                        .collect();
                    cuts.sort_unstable();
                    to_guest.offer(&mem, len, &cuts, true);
                }
            }
            1 => transmit(&mut to_guest, &mem, &frames(x, seed), setup, &mut counters),
            2 => {
                for f in frames(x, seed) {
                    let mut wire = vec![0u8; setup.hdr_len];
                    wire.extend_from_slice(&f);
                    let len = wire.len() as u64;
                    let mut cuts: Vec<u64> = (0..rand(&mut r) % 4)
                        .map(|_| u64::from(rand(&mut r)) % len)
                        .collect();
                    cuts.sort_unstable();
                    if !from_guest.offer(&mem, len, &cuts, false) {
                        break;
                    }
                    let chain = from_guest.pending.back_mut().expect("just offered");
                    let at = chain.descs[0].addr;
                    mem.write_slice(&wire, GuestAddress(at)).expect("in memory");
                    chain.frame = f;
                }
            }
            _ => receive(
                &mut from_guest,
                &mem,
                batch,
                usize::from(x % 33),
                setup,
                &mut counters,
            ),
        }
    }
}

fn transmit(
    side: &mut Side,
    mem: &GuestMemoryMmap,
    frames: &[Vec<u8>],
    setup: &Setup,
    c: &mut PortCounters,
) {
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    let before = *c;
    let sent = side
        .vring
        .transmit(mem, &refs, None, setup.hdr_len, setup.merge, c);
    let (mut want_sent, mut full, mut too_big) = (0, 0, 0);
    // The model: chains in order, each frame over as many as it needs.
    let mut burst_chains = 0;
    for (i, frame) in frames.iter().enumerate() {
        let need = (setup.hdr_len + frame.len()) as u64;
        let caps: Vec<u64> = side
            .pending
            .iter()
            .map(|p| p.descs.iter().map(|d| u64::from(d.len)).sum())
            .collect();
        let chains = if setup.merge {
            let mut total = 0;
            caps.iter().position(|&cap| {
                total += cap;
                total >= need
            })
        } else {
            caps.first().map(|_| 0)
        };
        let Some(last) = chains else {
            full = frames.len() - i;
            break;
        };
        // The device keeps room for one more used entry per burst.
        if burst_chains + last + 1 >= MAX_USED_PER_BURST {
            full = frames.len() - i;
            break;
        }
        if caps[last] < need && !setup.merge {
            too_big += 1;
            continue;
        }
        // The guest's view: the header (num_buffers = chains used), then
        // the frame, over the chains' descriptors in order.
        let mut wire = VnetHdr::default().to_bytes().to_vec();
        if setup.hdr_len == 12 {
            wire.extend_from_slice(&(last as u16 + 1).to_le_bytes());
        }
        wire.extend_from_slice(frame);
        let mut off = 0;
        for _ in 0..=last {
            let head = side.pending[0].head;
            let cap: u64 = side.pending[0].descs.iter().map(|d| u64::from(d.len)).sum();
            let len = cap.min(wire.len() as u64 - off) as u32;
            let chain = side.used(mem, head, len);
            for d in &chain.descs {
                let n = u64::from(d.len).min(wire.len() as u64 - off) as usize;
                let mut got = vec![0u8; n];
                mem.read_slice(&mut got, GuestAddress(d.addr))
                    .expect("in memory");
                assert_eq!(
                    got,
                    wire[off as usize..off as usize + n],
                    "frame {i} as the guest sees it"
                );
                off += n as u64;
            }
        }
        burst_chains += last + 1;
        want_sent += 1;
    }
    assert_eq!(sent, Ok(want_sent), "frames sent");
    assert_eq!(side.driver.ring.used_idx(mem), side.seen, "used index");
    let delta = |r| c.drops(r) - before.drops(r);
    assert_eq!(delta(DropReason::TxRingFull), full as u64, "tx_ring_full");
    assert_eq!(delta(DropReason::TxTooBig), too_big, "tx_too_big");
    assert_eq!(
        c.total_drops() - before.total_drops(),
        full as u64 + too_big
    );
}

fn receive(
    side: &mut Side,
    mem: &GuestMemoryMmap,
    batch: &mut Batch,
    prefill: usize,
    setup: &Setup,
    c: &mut PortCounters,
) {
    batch.clear();
    for _ in 0..prefill {
        batch.push_copy(&[]);
    }
    let before = c.total_drops();
    let got = side
        .vring
        .receive(mem, batch, setup.hdr_len, setup.allowed, c);
    let want = side.pending.len().min(batch.capacity() - prefill);
    assert_eq!(got, Ok(want), "frames taken");
    for k in 0..want {
        let head = side.pending[0].head;
        let chain = side.used(mem, head, 0);
        let buf = batch.get(prefill + k).expect("received");
        assert_eq!(buf.frame(), &chain.frame[..], "frame {k} from the guest");
        assert_eq!(buf.meta.offload, VnetHdr::default());
    }
    assert_eq!(side.driver.ring.used_idx(mem), side.seen, "used index");
    assert_eq!(c.total_drops(), before, "a clean guest's frame dropped");
}
