//! The four single-producer/single-consumer rings of an AF_XDP socket
//! (Documentation/networking/af_xdp.rst), mmap'd from the socket.
//!
//! Each ring is an array of `size` entries (a power of two) with a producer
//! and a consumer index beside it, both free-running `u32`s: entry `i` lives
//! at `i & (size - 1)`, the ring holds `producer - consumer` entries (wrapping
//! arithmetic), and each side writes only its own index. The fill and tx
//! rings are produced by us and consumed by the kernel; rx and completion
//! the other way round.
//!
//! Memory ordering follows the kernel's xsk_queue.h: a producer writes its
//! entries, then stores its index with Release; a consumer loads the
//! producer's index with Acquire before reading entries, and stores its own
//! index with Release after it is done with them, so the producer never
//! overwrites an entry still being read. Each side caches the other's index
//! and re-reads it only when the cached value says the ring is full (or
//! empty), as libxdp does, so a burst touches the shared cache line twice.

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// Entries a producer may still write, given both indexes.
#[inline]
pub fn free_entries(size: u32, producer: u32, consumer: u32) -> u32 {
    size.wrapping_sub(producer.wrapping_sub(consumer))
}

/// Entries a consumer may read, given both indexes.
#[inline]
pub fn filled_entries(producer: u32, consumer: u32) -> u32 {
    producer.wrapping_sub(consumer)
}

/// One mmap'd region, unmapped on drop.
pub(super) struct Mapping {
    pub(super) ptr: NonNull<u8>,
    pub(super) len: usize,
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned, and no
        // reference into the mapping outlives the ring that owns it.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Where a ring's parts sit in its mapping (from XDP_MMAP_OFFSETS).
pub(super) struct RingLayout {
    pub(super) producer: usize,
    pub(super) consumer: usize,
    pub(super) flags: usize,
    pub(super) desc: usize,
}

/// The raw parts of a mapped ring, shared by both ring kinds.
struct RawRing<T> {
    /// Keeps the memory the pointers below point into mapped.
    _map: Mapping,
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    desc: NonNull<T>,
    size: u32,
}

impl<T: Copy> RawRing<T> {
    /// # Safety
    /// `map` must be the mapping of one ring of `size` entries of `T` laid
    /// out as `layout` says (what the kernel reported for this socket), so
    /// that the indexes, the flags word and `size` entries lie inside it,
    /// suitably aligned.
    unsafe fn new(map: Mapping, layout: &RingLayout, size: u32) -> RawRing<T> {
        let base = map.ptr.as_ptr();
        // SAFETY: the caller guarantees the offsets lie inside the mapping,
        // so the pointers are in bounds and not null.
        unsafe {
            RawRing {
                producer: NonNull::new_unchecked(base.add(layout.producer).cast()),
                consumer: NonNull::new_unchecked(base.add(layout.consumer).cast()),
                flags: NonNull::new_unchecked(base.add(layout.flags).cast()),
                desc: NonNull::new_unchecked(base.add(layout.desc).cast()),
                size,
                _map: map,
            }
        }
    }

    #[inline]
    fn producer(&self) -> &AtomicU32 {
        // SAFETY: inside the mapping, which lives as long as `self`; the
        // kernel accesses it with READ_ONCE/WRITE_ONCE/smp_load_acquire.
        unsafe { self.producer.as_ref() }
    }

    #[inline]
    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { self.consumer.as_ref() }
    }

    #[inline]
    fn flags(&self) -> u32 {
        // SAFETY: as for `producer`.
        unsafe { self.flags.as_ref() }.load(Ordering::Relaxed)
    }

    #[inline]
    fn slot(&self, index: u32) -> *mut T {
        let i = (index & (self.size - 1)) as usize;
        // SAFETY: i < size, and the caller of `new` guaranteed `size`
        // entries after `desc`.
        unsafe { self.desc.as_ptr().add(i) }
    }
}

/// The side of a ring we produce into (fill, tx).
pub struct Producer<T> {
    raw: RawRing<T>,
    /// Our producer index, including entries written but not submitted.
    local: u32,
    /// The kernel's consumer index, as last read.
    cached_cons: u32,
    _entries: PhantomData<T>,
}

// SAFETY: the ring memory is reachable only through this value (which owns
// the mapping) and the kernel, so moving it to another thread is sound.
unsafe impl<T: Send> Send for Producer<T> {}

impl<T: Copy> Producer<T> {
    /// # Safety
    /// As `RawRing::new`, for a ring this process produces into.
    pub(super) unsafe fn new(map: Mapping, layout: &RingLayout, size: u32) -> Producer<T> {
        // SAFETY: forwarded from the caller.
        let raw = unsafe { RawRing::new(map, layout, size) };
        let local = raw.producer().load(Ordering::Relaxed);
        let cached_cons = raw.consumer().load(Ordering::Acquire);
        Producer {
            raw,
            local,
            cached_cons,
            _entries: PhantomData,
        }
    }

    /// Entries that can be written now (re-reads the kernel's index only
    /// when the cached one says fewer than `want` are free).
    #[inline]
    pub fn free(&mut self, want: u32) -> u32 {
        let free = free_entries(self.raw.size, self.local, self.cached_cons);
        if free >= want {
            return free;
        }
        self.cached_cons = self.raw.consumer().load(Ordering::Acquire);
        free_entries(self.raw.size, self.local, self.cached_cons)
    }

    /// Writes one entry (not visible to the kernel before `submit`); false
    /// when the ring is full.
    #[inline]
    pub fn push(&mut self, entry: T) -> bool {
        if self.free(1) == 0 {
            return false;
        }
        // SAFETY: the slot lies between the kernel's consumer and our
        // producer + size, so the kernel does not read it until we submit.
        unsafe { self.raw.slot(self.local).write(entry) };
        self.local = self.local.wrapping_add(1);
        true
    }

    /// Publishes every entry pushed so far.
    #[inline]
    pub fn submit(&mut self) {
        self.raw.producer().store(self.local, Ordering::Release);
    }

    /// Entries submitted that the kernel has not consumed yet.
    #[inline]
    pub fn outstanding(&mut self) -> u32 {
        self.cached_cons = self.raw.consumer().load(Ordering::Acquire);
        filled_entries(self.local, self.cached_cons)
    }

    /// The kernel asked to be woken up (XDP_RING_NEED_WAKEUP) before it
    /// looks at this ring again.
    #[inline]
    pub fn needs_wakeup(&self) -> bool {
        self.raw.flags() & libc::XDP_RING_NEED_WAKEUP != 0
    }

    pub fn size(&self) -> u32 {
        self.raw.size
    }
}

/// The side of a ring we consume from (rx, completion).
pub struct Consumer<T> {
    raw: RawRing<T>,
    /// Our consumer index, including entries read but not released.
    local: u32,
    /// The kernel's producer index, as last read.
    cached_prod: u32,
    _entries: PhantomData<T>,
}

// SAFETY: as for `Producer`.
unsafe impl<T: Send> Send for Consumer<T> {}

impl<T: Copy> Consumer<T> {
    /// # Safety
    /// As `RawRing::new`, for a ring this process consumes from.
    pub(super) unsafe fn new(map: Mapping, layout: &RingLayout, size: u32) -> Consumer<T> {
        // SAFETY: forwarded from the caller.
        let raw = unsafe { RawRing::new(map, layout, size) };
        let local = raw.consumer().load(Ordering::Relaxed);
        let cached_prod = raw.producer().load(Ordering::Acquire);
        Consumer {
            raw,
            local,
            cached_prod,
            _entries: PhantomData,
        }
    }

    /// Takes the next entry, if the kernel has produced one. It stays the
    /// kernel's to overwrite only after `release`.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        if filled_entries(self.cached_prod, self.local) == 0 {
            self.cached_prod = self.raw.producer().load(Ordering::Acquire);
            if filled_entries(self.cached_prod, self.local) == 0 {
                return None;
            }
        }
        // SAFETY: the slot lies between our consumer and the producer index
        // loaded with Acquire, so the kernel has written it and will not
        // touch it before we release it.
        let entry = unsafe { self.raw.slot(self.local).read() };
        self.local = self.local.wrapping_add(1);
        Some(entry)
    }

    /// Hands every entry taken so far back to the kernel.
    #[inline]
    pub fn release(&mut self) {
        self.raw.consumer().store(self.local, Ordering::Release);
    }

    /// Whether entries wait (re-reads the kernel's index).
    pub fn is_empty(&mut self) -> bool {
        self.cached_prod = self.raw.producer().load(Ordering::Acquire);
        filled_entries(self.cached_prod, self.local) == 0
    }

    pub fn size(&self) -> u32 {
        self.raw.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_arithmetic_wraps() {
        assert_eq!(free_entries(8, 0, 0), 8);
        assert_eq!(free_entries(8, 5, 1), 4);
        assert_eq!(free_entries(8, 8, 0), 0);
        // Indexes run freely past u32::MAX.
        assert_eq!(free_entries(8, 2, u32::MAX - 1), 4);
        assert_eq!(filled_entries(2, u32::MAX - 1), 4);
        assert_eq!(filled_entries(7, 7), 0);
        assert_eq!(
            free_entries(2048, 3u32.wrapping_sub(1), 3u32.wrapping_sub(2049)),
            0
        );
    }

    /// A ring in plain memory (what the kernel would map), driven from
    /// both sides.
    fn anon_ring<T: Copy>(size: u32) -> (Mapping, RingLayout) {
        let len = 64 + size as usize * std::mem::size_of::<T>();
        // SAFETY: fresh anonymous private mapping.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED);
        let map = Mapping {
            ptr: NonNull::new(ptr.cast()).unwrap(),
            len,
        };
        let layout = RingLayout {
            producer: 0,
            consumer: 8,
            flags: 16,
            desc: 64,
        };
        (map, layout)
    }

    #[test]
    fn producer_fills_to_size_and_sees_consumption() {
        let (map, layout) = anon_ring::<u64>(4);
        // SAFETY: the layout matches the anonymous mapping made for it.
        let mut p: Producer<u64> = unsafe { Producer::new(map, &layout, 4) };
        for i in 0..4 {
            assert!(p.push(i));
        }
        assert!(!p.push(9), "a full ring refuses");
        p.submit();
        assert_eq!(p.outstanding(), 4);
        // Play the kernel: consume two.
        p.raw.consumer().store(2, Ordering::Release);
        assert_eq!(p.free(1), 2);
        assert!(p.push(4) && p.push(5) && !p.push(6));
        // SAFETY: slot 0 was rewritten by the fifth push (index 4 & 3).
        assert_eq!(unsafe { p.raw.slot(4).read() }, 4);
    }

    #[test]
    fn consumer_takes_what_was_produced() {
        let (map, layout) = anon_ring::<u64>(4);
        // SAFETY: the layout matches the anonymous mapping made for it.
        let mut c: Consumer<u64> = unsafe { Consumer::new(map, &layout, 4) };
        assert!(c.pop().is_none() && c.is_empty());
        for i in 0..3u32 {
            // SAFETY: plays the kernel writing entries before publishing.
            unsafe { c.raw.slot(i).write(u64::from(i) + 10) };
        }
        c.raw.producer().store(3, Ordering::Release);
        assert_eq!((c.pop(), c.pop()), (Some(10), Some(11)));
        c.release();
        assert_eq!(c.raw.consumer().load(Ordering::Relaxed), 2);
        assert_eq!((c.pop(), c.pop()), (Some(12), None));
    }
}
