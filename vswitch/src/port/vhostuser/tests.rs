//! The vhost-user data path against fake guest memory: split rings laid out
//! by the guest driver of `fuzzing::vhost`, `Vring` driven directly, and the
//! device's protocol handlers called as the `vhost` crate would. No socket,
//! no front end, no sleeps.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::virtq::{RingFault, Vring};
use crate::fuzzing::vhost::{
    start_vring, Desc, Driver, SplitRing, AVAIL_F_NO_INTERRUPT, DESC_F_NEXT, DESC_F_WRITE,
};
use crate::packet::offload::OffloadCaps;
use crate::packet::Batch;
use crate::pipeline::counters::{DropReason, PortCounters};
use crate::wire::vnet::{VnetHdr, F_DATA_VALID, F_NEEDS_CSUM, GSO_NONE, GSO_TCPV4};

const MEM_LEN: u64 = 0x1_0000;
/// A 16-entry ring at 0x1000; buffers from 0x4000 on.
const RING_AT: u64 = 0x1000;
const BUFS: u64 = 0x4000;

/// A guest: memory, the driver's side of one ring, the device's `Vring`.
struct Guest {
    mem: GuestMemoryMmap,
    driver: Driver,
    vring: Vring,
    counters: PortCounters,
}

fn guest() -> Guest {
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_LEN as usize)]).unwrap();
    let ring = SplitRing::at(RING_AT, 16);
    let driver = Driver::new(&mem, ring, 0);
    let vring = start_vring(&mem, &ring, 0);
    let counters = PortCounters::default();
    Guest {
        mem,
        driver,
        vring,
        counters,
    }
}

impl Guest {
    fn put(&self, at: u64, bytes: &[u8]) {
        self.mem.write_slice(bytes, GuestAddress(at)).unwrap();
    }

    fn get(&self, at: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.mem.read_slice(&mut v, GuestAddress(at)).unwrap();
        v
    }

    fn chain(&mut self, bufs: &[Desc]) -> u16 {
        self.driver.add_chain(&self.mem, bufs)
    }

    fn receive(&mut self, batch: &mut Batch, allowed: OffloadCaps) -> Result<usize, RingFault> {
        let counters = &mut self.counters;
        self.vring.receive(&self.mem, batch, 12, allowed, counters)
    }

    fn transmit(&mut self, frames: &[&[u8]], merge: bool) -> Result<usize, RingFault> {
        let counters = &mut self.counters;
        self.vring
            .transmit(&self.mem, frames, None, 12, merge, counters)
    }

    fn used_idx(&self) -> u16 {
        self.driver.ring.used_idx(&self.mem)
    }

    fn used(&self, pos: u16) -> (u32, u32) {
        self.driver.ring.used_elem(&self.mem, pos)
    }

    fn drops(&self, reason: DropReason) -> u64 {
        self.counters.drops(reason)
    }
}

fn frame(len: usize, seed: u8) -> Vec<u8> {
    let mut f: Vec<u8> = (0..len).map(|i| seed.wrapping_add(i as u8)).collect();
    f[..14].copy_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]);
    f
}

/// A TCP/IPv4 frame with `payload` bytes after the headers.
fn tcp_frame(payload: usize) -> Vec<u8> {
    let mut f = frame(54 + payload, 0);
    f[14..34].fill(0);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&(40 + payload as u16).to_be_bytes());
    f[22] = 64;
    f[23] = 6;
    f[46] = 0x50;
    f
}

/// The 12-byte virtio-net header (num_buffers 0) in front of `frame`.
fn with_header(hdr: &VnetHdr, frame: &[u8]) -> Vec<u8> {
    let mut v = hdr.to_bytes().to_vec();
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(frame);
    v
}

#[test]
fn frames_from_the_guest_arrive_whole_however_split() {
    let mut g = guest();
    let frames: Vec<Vec<u8>> = (1..=4).map(|n| frame(60 * n, n as u8)).collect();
    let plain = VnetHdr::default();
    // Header in its own descriptor, then the frame.
    g.put(BUFS, &with_header(&plain, &[]));
    g.put(BUFS + 0x100, &frames[0]);
    let h0 = g.chain(&[Desc::readable(BUFS, 12), Desc::readable(BUFS + 0x100, 60)]);
    // Header and frame in one descriptor.
    g.put(BUFS + 0x400, &with_header(&plain, &frames[1]));
    let h1 = g.chain(&[Desc::readable(BUFS + 0x400, 132)]);
    // Four descriptors cut anywhere, the header's across the first two.
    let whole = with_header(&plain, &frames[2]);
    let cuts = [0usize, 5, 40, 100, whole.len()];
    let pieces: Vec<Desc> = cuts
        .windows(2)
        .enumerate()
        .map(|(i, w)| {
            let at = BUFS + 0x800 + 0x200 * i as u64;
            g.put(at, &whole[w[0]..w[1]]);
            Desc::readable(at, (w[1] - w[0]) as u32)
        })
        .collect();
    let h2 = g.chain(&pieces);
    // An indirect table of three descriptors.
    let whole = with_header(&plain, &frames[3]);
    g.put(BUFS + 0x1000, &whole[..100]);
    g.put(BUFS + 0x1400, &whole[100..]);
    let rest = (whole.len() - 100) as u32;
    let table = [
        Desc::readable(BUFS + 0x1000, 70),
        Desc::readable(BUFS + 0x1000 + 70, 30),
        Desc::readable(BUFS + 0x1400, rest),
    ];
    let h3 = g.driver.add_indirect(&g.mem, 0x3000, &table);

    let mut batch = Batch::new();
    assert_eq!(g.receive(&mut batch, OffloadCaps::NONE), Ok(4));
    for (buf, f) in batch.iter().zip(&frames) {
        assert_eq!(buf.frame(), &f[..]);
        assert_eq!(buf.meta.offload, plain);
    }
    assert_eq!(g.counters.rx_packets, 4);
    assert_eq!(g.counters.rx_bytes, 600);
    assert_eq!(g.counters.total_drops(), 0);
    assert_eq!(g.used_idx(), 4);
    for (pos, head) in [h0, h1, h2, h3].into_iter().enumerate() {
        assert_eq!(
            g.used(pos as u16),
            (u32::from(head), 0),
            "tx chains go back with len 0"
        );
    }
    assert_eq!(g.vring.frames, 4);
}

#[test]
fn checksum_and_segmentation_requests_ride_with_the_frame() {
    let mut g = guest();
    let f = tcp_frame(3000);
    let csum = VnetHdr {
        flags: F_NEEDS_CSUM,
        csum_start: 34,
        csum_offset: 16,
        ..VnetHdr::default()
    };
    let tso = VnetHdr {
        gso_type: GSO_TCPV4,
        hdr_len: 54,
        gso_size: 1448,
        ..csum
    };
    for (i, hdr) in [csum, tso].iter().enumerate() {
        let at = BUFS + 0x2000 * i as u64;
        g.put(at, &with_header(hdr, &f));
        g.chain(&[Desc::readable(at, 12 + f.len() as u32)]);
    }
    let mut batch = Batch::new();
    let caps = OffloadCaps {
        csum: true,
        tso4: true,
        tso6: false,
        uso: false,
    };
    assert_eq!(g.receive(&mut batch, caps), Ok(2));
    assert_eq!(batch.get(0).unwrap().meta.offload, csum);
    assert_eq!(batch.get(1).unwrap().meta.offload, tso);
    assert_eq!(batch.get(1).unwrap().frame(), &f[..]);
}

#[test]
fn offload_requests_not_negotiated_are_invalid() {
    let mut g = guest();
    let f = tcp_frame(100);
    for (i, gso_type) in [GSO_NONE, GSO_TCPV4].into_iter().enumerate() {
        let hdr = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
            hdr_len: 54,
        };
        let at = BUFS + 0x1000 * i as u64;
        g.put(at, &with_header(&hdr, &f));
        g.chain(&[Desc::readable(at, 12 + f.len() as u32)]);
    }
    let mut batch = Batch::new();
    assert_eq!(g.receive(&mut batch, OffloadCaps::NONE), Ok(0));
    assert!(batch.is_empty());
    assert_eq!(g.drops(DropReason::OffloadInvalid), 2);
    assert_eq!(g.used_idx(), 2, "refused chains still go back");
    assert_eq!((g.used(0).1, g.used(1).1), (0, 0));
}

#[test]
fn a_frame_to_the_guest_fits_one_buffer() {
    let mut g = guest();
    g.put(BUFS, &[0xee; 2048]);
    let head = g.chain(&[Desc::writable(BUFS, 2048)]);
    let f = frame(100, 7);
    assert_eq!(g.transmit(&[&f], true), Ok(1));
    let mut hdr = [0u8; 12];
    hdr[10] = 1; // num_buffers
    assert_eq!(g.get(BUFS, 12), hdr);
    assert_eq!(g.get(BUFS + 12, 100), f);
    assert_eq!(
        g.get(BUFS + 112, 1),
        [0xee],
        "nothing written past the frame"
    );
    assert_eq!(g.used_idx(), 1);
    assert_eq!(g.used(0), (u32::from(head), 112));
    assert_eq!((g.counters.tx_packets, g.counters.tx_bytes), (1, 100));
}

#[test]
fn offload_requests_reach_the_guest_without_data_valid() {
    let mut g = guest();
    g.chain(&[Desc::writable(BUFS, 2048)]);
    let f = tcp_frame(100);
    let hdr = VnetHdr {
        flags: F_NEEDS_CSUM | F_DATA_VALID,
        csum_start: 34,
        csum_offset: 16,
        ..VnetHdr::default()
    };
    let counters = &mut g.counters;
    let sent = g
        .vring
        .transmit(&g.mem, &[&f], Some(&[hdr]), 12, true, counters);
    assert_eq!(sent, Ok(1));
    let written = VnetHdr::parse(&g.get(BUFS, 10)).unwrap();
    assert_eq!(
        written,
        VnetHdr {
            flags: F_NEEDS_CSUM,
            ..hdr
        }
    );
}

#[test]
fn merged_buffers_carry_a_frame_over_several_chains() {
    let mut g = guest();
    let heads: Vec<u16> = (0..4)
        .map(|i| g.chain(&[Desc::writable(BUFS + 0x100 * i, 128)]))
        .collect();
    let big = frame(300, 1);
    let small = frame(50, 2);
    assert_eq!(g.transmit(&[&big, &small], true), Ok(2));
    // 312 bytes with the header: 128 + 128 + 56.
    assert_eq!(g.get(BUFS + 10, 2), 3u16.to_le_bytes());
    let mut got = g.get(BUFS + 12, 116);
    got.extend(g.get(BUFS + 0x100, 128));
    got.extend(g.get(BUFS + 0x200, 56));
    assert_eq!(got, big);
    let used: Vec<_> = (0..4).map(|p| g.used(p)).collect();
    let want: Vec<_> = [128, 128, 56, 62]
        .iter()
        .zip(&heads)
        .map(|(&len, &h)| (u32::from(h), len))
        .collect();
    assert_eq!(used, want);
    assert_eq!(g.get(BUFS + 0x300 + 10, 2), 1u16.to_le_bytes());
    assert_eq!(g.get(BUFS + 0x300 + 12, 50), small);
}

#[test]
fn without_merging_a_small_buffer_is_too_small_and_kept() {
    let mut g = guest();
    let head = g.chain(&[Desc::writable(BUFS, 100)]);
    assert_eq!(g.transmit(&[&frame(200, 0)], false), Ok(0));
    assert_eq!(g.drops(DropReason::TxTooBig), 1);
    assert_eq!(g.used_idx(), 0, "the buffer stays the guest's to use");
    let f = frame(60, 3);
    assert_eq!(g.transmit(&[&f], false), Ok(1));
    assert_eq!(g.used(0), (u32::from(head), 72));
    assert_eq!(g.get(BUFS + 12, 60), f);
}

#[test]
fn an_empty_ring_counts_every_frame_full_and_takes_nothing() {
    let mut g = guest();
    let f = frame(300, 0);
    assert_eq!(g.transmit(&[&f, &f, &f], true), Ok(0));
    assert_eq!(g.drops(DropReason::TxRingFull), 3);
    // Buffers for only part of a frame: given back, not consumed.
    g.chain(&[Desc::writable(BUFS, 128)]);
    assert_eq!(g.transmit(&[&f, &f], true), Ok(0));
    assert_eq!(g.drops(DropReason::TxRingFull), 5);
    assert_eq!((g.used_idx(), g.vring.position()), (0, (0, 0)));
    g.chain(&[Desc::writable(BUFS + 0x100, 128)]);
    g.chain(&[Desc::writable(BUFS + 0x200, 128)]);
    assert_eq!(g.transmit(&[&f], true), Ok(1));
    assert_eq!(g.used_idx(), 3);
}

#[test]
fn an_inactive_ring_is_not_ready() {
    let mut g = guest();
    g.vring.stop();
    assert_eq!(g.transmit(&[&frame(60, 0)], true), Ok(0));
    assert_eq!(g.drops(DropReason::PortNotReady), 1);
    assert_eq!(g.receive(&mut Batch::new(), OffloadCaps::NONE), Ok(0));
}

#[test]
fn descriptors_outside_memory_are_bad_and_go_back() {
    let mut g = guest();
    let good = with_header(&VnetHdr::default(), &frame(60, 9));
    g.put(BUFS, &good);
    let bad = [
        vec![Desc::readable(0x2_0000, 72)],
        vec![Desc::readable(u64::MAX - 8, 72)],
        vec![Desc::readable(MEM_LEN - 16, 72)],
        vec![Desc::readable(BUFS, 12), Desc::writable(BUFS + 12, 60)],
        vec![Desc::readable(BUFS, 8)],
    ];
    let heads: Vec<u16> = bad.iter().map(|chain| g.chain(chain)).collect();
    g.chain(&[Desc::readable(BUFS, 72)]);
    let mut batch = Batch::new();
    assert_eq!(g.receive(&mut batch, OffloadCaps::NONE), Ok(1));
    assert_eq!(batch.get(0).unwrap().frame(), &good[12..]);
    assert_eq!(g.drops(DropReason::VhostBadDescriptor), 5);
    for (pos, head) in heads.into_iter().enumerate() {
        assert_eq!(g.used(pos as u16), (u32::from(head), 0));
    }
    assert_eq!(g.used_idx(), 6);
}

#[test]
fn buffers_to_the_guest_outside_memory_or_read_only_are_bad() {
    let mut g = guest();
    let bad = [
        vec![Desc::writable(0x7000_0000, 2048)],
        vec![Desc::writable(MEM_LEN - 64, 2048)],
        vec![Desc::readable(BUFS, 2048)],
        vec![Desc::writable(BUFS, 8)],
    ];
    let heads: Vec<u16> = bad.iter().map(|chain| g.chain(chain)).collect();
    let f = frame(200, 0);
    assert_eq!(g.transmit(&[&f, &f, &f, &f], true), Ok(0));
    assert_eq!(g.drops(DropReason::VhostBadDescriptor), 4);
    for (pos, head) in heads.into_iter().enumerate() {
        assert_eq!(
            g.used(pos as u16),
            (u32::from(head), 0),
            "back with nothing in it"
        );
    }
    assert_eq!(
        g.get(BUFS, 8),
        [0; 8],
        "a read-only buffer is never written"
    );
}

#[test]
fn a_descriptor_loop_ends() {
    let mut g = guest();
    g.put(BUFS, &with_header(&VnetHdr::default(), &frame(60, 0)));
    let ring = g.driver.ring;
    // 0 -> 1 -> 0 -> ...
    let link = |next| Desc {
        flags: DESC_F_NEXT,
        next,
        ..Desc::readable(BUFS, 72)
    };
    ring.write_desc(&g.mem, 0, link(1));
    ring.write_desc(&g.mem, 1, link(0));
    g.driver.publish(&g.mem, 0);
    let mut batch = Batch::new();
    assert!(g.receive(&mut batch, OffloadCaps::NONE).is_ok());
    // The chain went back once, as a frame or a drop (virtio-queue cuts it
    // at the queue size).
    assert_eq!(g.used_idx(), 1);
    assert_eq!(batch.len() as u64 + g.counters.total_drops(), 1);
    // The same loop offered as receive buffers.
    let w = |next| Desc {
        flags: DESC_F_NEXT | DESC_F_WRITE,
        next,
        ..Desc::writable(BUFS, 64)
    };
    ring.write_desc(&g.mem, 2, w(3));
    ring.write_desc(&g.mem, 3, w(2));
    g.driver.publish(&g.mem, 2);
    assert_eq!(g.transmit(&[&frame(600, 0)], true), Ok(1));
    assert_eq!(g.used_idx(), 2);
}

#[test]
fn an_index_jump_past_the_ring_stops_it() {
    let mut g = guest();
    g.chain(&[Desc::readable(BUFS, 72)]);
    g.driver.ring.set_avail_idx(&g.mem, 17);
    let mut batch = Batch::new();
    assert_eq!(
        g.receive(&mut batch, OffloadCaps::NONE),
        Err(RingFault::BadRing)
    );
    assert!(!g.vring.is_active());
    assert_eq!(g.receive(&mut batch, OffloadCaps::NONE), Ok(0));
    assert_eq!(g.used_idx(), 0);

    let mut g = guest();
    g.driver.ring.set_avail_idx(&g.mem, 0x8000);
    assert_eq!(g.transmit(&[&frame(60, 0)], true), Err(RingFault::BadRing));
    assert!(!g.vring.is_active());
}

#[test]
fn a_head_past_the_ring_stops_it() {
    let mut g = guest();
    g.driver.publish(&g.mem, 40);
    let mut batch = Batch::new();
    assert_eq!(
        g.receive(&mut batch, OffloadCaps::NONE),
        Err(RingFault::BadRing)
    );
    assert!(!g.vring.is_active());
}

#[test]
fn rings_outside_memory_never_activate() {
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_LEN as usize)]).unwrap();
    let inside = SplitRing::at(RING_AT, 16);
    let outside = [
        SplitRing::at(MEM_LEN - 0x100, 16),
        SplitRing {
            used: MEM_LEN - 8,
            ..inside
        },
        SplitRing {
            avail: 0x2_0000,
            ..inside
        },
        SplitRing {
            desc: 0xffff_ffff_ffff_fff0,
            ..inside
        },
        SplitRing::at(0, 4096),
    ];
    for ring in outside {
        let mut vring = Vring::new(32768);
        vring.set_size(ring.size).unwrap();
        let (d, a, u) = (ring.desc, ring.avail, ring.used);
        vring
            .set_addresses(GuestAddress(d), GuestAddress(a), GuestAddress(u))
            .unwrap();
        vring.enabled = true;
        vring.set_kick(None);
        assert!(!vring.activate(Some(&mem)), "{ring:?} activated");
    }
    let mut vring = start_vring(&mem, &inside, 0);
    assert!(!vring.activate(None), "no memory table");
    vring.enabled = false;
    assert!(!vring.activate(Some(&mem)), "disabled");
    let misaligned = vring.set_addresses(GuestAddress(0x1008), GuestAddress(0), GuestAddress(0));
    assert!(misaligned.is_err());
    assert!(vring.set_size(24).is_err());
}

/// A pipe standing in for the call eventfd: the device's end, and ours.
fn call_pipe() -> (File, UnixStream) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    (File::from(OwnedFd::from(theirs)), ours)
}

fn interrupts(ours: &mut UnixStream) -> usize {
    let mut buf = [0u8; 64];
    match ours.read(&mut buf) {
        Ok(n) => n / 8,
        Err(e) if e.kind() == ErrorKind::WouldBlock => 0,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn interrupts_follow_the_guests_suppression_flag() {
    let mut g = guest();
    let (call, mut ours) = call_pipe();
    g.vring.call = Some(call);
    g.put(BUFS, &with_header(&VnetHdr::default(), &frame(60, 0)));
    let mut batch = Batch::new();
    g.driver.ring.set_avail_flags(&g.mem, AVAIL_F_NO_INTERRUPT);
    g.chain(&[Desc::readable(BUFS, 72)]);
    assert_eq!(g.receive(&mut batch, OffloadCaps::NONE), Ok(1));
    assert_eq!(interrupts(&mut ours), 0);
    g.driver.ring.set_avail_flags(&g.mem, 0);
    g.chain(&[Desc::readable(BUFS, 72)]);
    batch.clear();
    assert_eq!(g.receive(&mut batch, OffloadCaps::NONE), Ok(1));
    assert_eq!(interrupts(&mut ours), 1);
    // Nothing returned, nothing to signal.
    assert_eq!(g.receive(&mut batch, OffloadCaps::NONE), Ok(0));
    assert_eq!(interrupts(&mut ours), 0);
}

#[test]
fn with_event_idx_interrupts_come_at_the_used_event() {
    let mut g = guest();
    g.vring.set_event_idx(true);
    let (call, mut ours) = call_pipe();
    g.vring.call = Some(call);
    g.driver.ring.set_used_event(&g.mem, 1);
    let mut sent = Vec::new();
    for i in 0..3 {
        g.chain(&[Desc::writable(BUFS + 0x800 * i, 2048)]);
        assert_eq!(g.transmit(&[&frame(60, 0)], true), Ok(1));
        sent.push(interrupts(&mut ours));
    }
    // The guest asked for one once the used index passes 1.
    assert_eq!(sent, [0, 1, 0]);
}

mod device;
