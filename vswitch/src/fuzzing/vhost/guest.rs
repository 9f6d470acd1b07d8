//! The guest driver's side of a split virtqueue (virtio 1.2, 2.7): the
//! descriptor table, the available ring and the used ring laid out in guest
//! memory, written and read with `vm-memory` as a guest kernel would. The
//! `vhost_queue` target and the unit tests of `port::vhostuser` share it.

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::port::vhostuser::virtq::Vring;

/// Descriptor flags (virtio 1.2, 2.7.5).
pub const DESC_F_NEXT: u16 = 1;
pub const DESC_F_WRITE: u16 = 2;
pub const DESC_F_INDIRECT: u16 = 4;
/// Available ring flags: the driver wants no interrupt.
pub const AVAIL_F_NO_INTERRUPT: u16 = 1;

/// One split-ring descriptor as the guest writes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Desc {
    pub addr: u64,
    pub len: u32,
    pub flags: u16,
    pub next: u16,
}

impl Desc {
    /// A buffer the device reads (a frame the guest sends).
    pub fn readable(addr: u64, len: u32) -> Desc {
        Desc {
            addr,
            len,
            flags: 0,
            next: 0,
        }
    }

    /// A buffer the device writes (room for a frame to the guest).
    pub fn writable(addr: u64, len: u32) -> Desc {
        Desc {
            addr,
            len,
            flags: DESC_F_WRITE,
            next: 0,
        }
    }

    pub fn read(mem: &GuestMemoryMmap, at: u64) -> Option<Desc> {
        let mut b = [0u8; 16];
        mem.read_slice(&mut b, GuestAddress(at)).ok()?;
        let le16 = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Some(Desc {
            addr: u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
            len: u32::from_le_bytes(b[8..12].try_into().expect("4 bytes")),
            flags: le16(12),
            next: le16(14),
        })
    }

    pub fn write(&self, mem: &GuestMemoryMmap, at: u64) {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.addr.to_le_bytes());
        b[8..12].copy_from_slice(&self.len.to_le_bytes());
        b[12..14].copy_from_slice(&self.flags.to_le_bytes());
        b[14..].copy_from_slice(&self.next.to_le_bytes());
        put(mem, at, &b);
    }
}

pub(super) fn put(mem: &GuestMemoryMmap, at: u64, bytes: &[u8]) {
    mem.write_slice(bytes, GuestAddress(at))
        .unwrap_or_else(|e| panic!("guest write at {at:#x}: {e}"));
}

pub(super) fn get16(mem: &GuestMemoryMmap, at: u64) -> u16 {
    let mut b = [0u8; 2];
    mem.read_slice(&mut b, GuestAddress(at))
        .unwrap_or_else(|e| panic!("guest read at {at:#x}: {e}"));
    u16::from_le_bytes(b)
}

/// Where a split ring's three parts lie in guest memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitRing {
    pub size: u16,
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
}

impl SplitRing {
    /// The descriptor table at `base`, the available ring right after it,
    /// the used ring after that on a 4-byte boundary.
    pub fn at(base: u64, size: u16) -> SplitRing {
        let avail = base + 16 * u64::from(size);
        let used = (avail + 6 + 2 * u64::from(size) + 3) & !3;
        SplitRing {
            size,
            desc: base,
            avail,
            used,
        }
    }

    pub fn desc_bytes(&self) -> u64 {
        16 * u64::from(self.size)
    }

    /// flags, idx, the ring, used_event.
    pub fn avail_bytes(&self) -> u64 {
        6 + 2 * u64::from(self.size)
    }

    /// flags, idx, the ring, avail_event.
    pub fn used_bytes(&self) -> u64 {
        6 + 8 * u64::from(self.size)
    }

    /// The first byte after the used ring.
    pub fn end(&self) -> u64 {
        self.used + self.used_bytes()
    }

    /// Whether all three parts lie below `limit`.
    pub fn fits(&self, limit: u64) -> bool {
        self.desc + self.desc_bytes() <= limit
            && self.avail + self.avail_bytes() <= limit
            && self.used + self.used_bytes() <= limit
    }

    pub fn write_desc(&self, mem: &GuestMemoryMmap, index: u16, desc: Desc) {
        desc.write(mem, self.desc + 16 * u64::from(index));
    }

    pub fn avail_idx(&self, mem: &GuestMemoryMmap) -> u16 {
        get16(mem, self.avail + 2)
    }

    pub fn set_avail_idx(&self, mem: &GuestMemoryMmap, idx: u16) {
        put(mem, self.avail + 2, &idx.to_le_bytes());
    }

    pub fn set_avail_flags(&self, mem: &GuestMemoryMmap, flags: u16) {
        put(mem, self.avail, &flags.to_le_bytes());
    }

    /// Puts `head` in the available ring's entry for index `pos`.
    pub fn set_avail_entry(&self, mem: &GuestMemoryMmap, pos: u16, head: u16) {
        let at = self.avail + 4 + 2 * u64::from(pos % self.size);
        put(mem, at, &head.to_le_bytes());
    }

    /// The driver's used_event (with EVENT_IDX): interrupt after this one.
    pub fn set_used_event(&self, mem: &GuestMemoryMmap, idx: u16) {
        put(
            mem,
            self.avail + 4 + 2 * u64::from(self.size),
            &idx.to_le_bytes(),
        );
    }

    pub fn used_flags(&self, mem: &GuestMemoryMmap) -> u16 {
        get16(mem, self.used)
    }

    pub fn used_idx(&self, mem: &GuestMemoryMmap) -> u16 {
        get16(mem, self.used + 2)
    }

    /// The used ring's entry for index `pos`: (head, bytes written).
    pub fn used_elem(&self, mem: &GuestMemoryMmap, pos: u16) -> (u32, u32) {
        let at = self.used + 4 + 8 * u64::from(pos % self.size);
        let mut b = [0u8; 8];
        mem.read_slice(&mut b, GuestAddress(at))
            .unwrap_or_else(|e| panic!("guest read at {at:#x}: {e}"));
        let (id, len) = b.split_at(4);
        (
            u32::from_le_bytes(id.try_into().expect("4 bytes")),
            u32::from_le_bytes(len.try_into().expect("4 bytes")),
        )
    }

    /// The device's avail_event (with EVENT_IDX).
    pub fn avail_event(&self, mem: &GuestMemoryMmap) -> u16 {
        get16(mem, self.used + 4 + 8 * u64::from(self.size))
    }
}

/// The guest driver's side of one ring: descriptors handed out in order,
/// chains published in the available ring.
pub struct Driver {
    pub ring: SplitRing,
    next_desc: u16,
    avail_idx: u16,
}

impl Driver {
    /// Starts publishing at index `start` (the ring's base).
    pub fn new(mem: &GuestMemoryMmap, ring: SplitRing, start: u16) -> Driver {
        ring.set_avail_idx(mem, start);
        Driver {
            ring,
            next_desc: 0,
            avail_idx: start,
        }
    }

    fn take_desc(&mut self) -> u16 {
        let i = self.next_desc;
        self.next_desc = (i + 1) % self.ring.size;
        i
    }

    /// Publishes a chain of `bufs` (linked here) and returns its head.
    pub fn add_chain(&mut self, mem: &GuestMemoryMmap, bufs: &[Desc]) -> u16 {
        let indices: Vec<u16> = bufs.iter().map(|_| self.take_desc()).collect();
        for (k, (&i, d)) in indices.iter().zip(bufs).enumerate() {
            let mut d = *d;
            if let Some(&next) = indices.get(k + 1) {
                d.flags |= DESC_F_NEXT;
                d.next = next;
            }
            self.ring.write_desc(mem, i, d);
        }
        self.publish(mem, indices[0]);
        indices[0]
    }

    /// Publishes one ring descriptor naming an indirect table at `table`
    /// that holds `bufs`.
    pub fn add_indirect(&mut self, mem: &GuestMemoryMmap, table: u64, bufs: &[Desc]) -> u16 {
        for (k, d) in bufs.iter().enumerate() {
            let mut d = *d;
            if k + 1 < bufs.len() {
                d.flags |= DESC_F_NEXT;
                d.next = k as u16 + 1;
            }
            d.write(mem, table + 16 * k as u64);
        }
        let head = self.take_desc();
        let len = 16 * bufs.len() as u32;
        let ind = Desc {
            addr: table,
            len,
            flags: DESC_F_INDIRECT,
            next: 0,
        };
        self.ring.write_desc(mem, head, ind);
        self.publish(mem, head);
        head
    }

    /// Publishes `head` as it is (for descriptors written by hand).
    pub fn publish(&mut self, mem: &GuestMemoryMmap, head: u16) {
        self.ring.set_avail_entry(mem, self.avail_idx, head);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.ring.set_avail_idx(mem, self.avail_idx);
    }
}

/// A running `Vring` on `ring`, as the device has it after the front end's
/// SET_VRING_NUM/ADDR/BASE/KICK (without protocol features, so enabled).
/// Panics when the ring does not activate.
#[cfg(test)]
pub(crate) fn start_vring(mem: &GuestMemoryMmap, ring: &SplitRing, base: u16) -> Vring {
    let mut vring = configure(ring, base, false);
    assert!(vring.activate(Some(mem)), "{ring:?} did not activate");
    vring
}

pub(super) fn configure(ring: &SplitRing, base: u16, event_idx: bool) -> Vring {
    let mut vring = Vring::new(32768);
    vring.set_size(ring.size).expect("a power of two size");
    let (desc, avail, used) = (ring.desc, ring.avail, ring.used);
    vring
        .set_addresses(GuestAddress(desc), GuestAddress(avail), GuestAddress(used))
        .expect("aligned ring addresses");
    vring.set_base(base);
    vring.set_event_idx(event_idx);
    vring.enabled = true;
    vring.set_kick(None);
    vring
}
