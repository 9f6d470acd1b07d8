//! The datapath's side of a capture and of events never allocates: copying
//! frames into the ring (full or not), noting MAC moves and queuing events
//! are counted here under an allocator that counts this thread's calls.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use vswitch::capture::{Direction, Ring, Tap};
use vswitch::events::{DpEventKind, Hub, MoveLog, Name};
use vswitch::packet::Batch;
use vswitch::wire::MacAddr;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: defers every call to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // try_with: the thread-locals may be gone while a thread exits.
        let _ = COUNTING.try_with(|c| {
            if c.get() {
                ALLOCS.with(|a| a.set(a.get() + 1));
            }
        });
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above, i.e. from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations `f` makes on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    ALLOCS.with(|a| a.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCS.with(|a| a.get())
}

#[test]
fn capturing_frames_allocates_nothing_even_when_the_ring_is_full() {
    let ring = Ring::new(8, 256);
    let mut tap = Tap::new(ring.clone(), Direction::Both, None, 1);
    let frame = vec![0xabu8; 1500];
    let frames: [&[u8]; 32] = [&frame; 32];
    let mut batch = Batch::new();
    for _ in 0..32 {
        batch.push_copy(&frame);
    }
    let n = allocations(|| {
        for _ in 0..100 {
            tap.tx(&frames);
            tap.rx(&batch);
        }
    });
    assert_eq!(n, 0, "the capture copy allocated {n} times");
    assert_eq!(ring.captured(), 8);
    assert_eq!(ring.lost(), 100 * 64 - 8);

    // Drained buffers come back without allocating either.
    let n = allocations(|| {
        while let Some(rec) = ring.pop() {
            ring.recycle(rec);
        }
        tap.tx(&frames);
    });
    assert_eq!(n, 0);
}

#[test]
fn noting_moves_and_queuing_events_allocates_nothing() {
    let hub = Hub::new();
    let mut log = MoveLog::default();
    log.set_enabled(true);
    let mac = MacAddr([2, 0, 0, 0, 0, 1]);
    let n = allocations(|| {
        for i in 0..5000u32 {
            log.note(
                0,
                mac,
                i % 3,
                (i + 1) % 3,
                Duration::from_millis(u64::from(i)),
            );
            for m in log.take().iter() {
                hub.push(DpEventKind::MacMove {
                    bridge: Name::new("br0"),
                    vlan: m.vlan,
                    mac: m.mac,
                    from: Name::new("p1"),
                    to: Name::new("p2"),
                    suppressed: m.suppressed,
                });
            }
            hub.push(DpEventKind::Link {
                port: Name::new("p1"),
                up: i % 2 == 0,
            });
        }
    });
    assert_eq!(n, 0, "moves and events allocated {n} times");
}
