//! The datapath's side of a capture and of events never allocates: copying
//! frames into the ring (full or not), noting MAC moves and queuing events
//! are counted here under an allocator that counts this thread's calls.

use std::time::Duration;

use vswitch::capture::{Direction, Ring, Tap};
use vswitch::events::{DpEventKind, Hub, MoveLog, Name};
use vswitch::packet::Batch;
use vswitch::wire::MacAddr;

mod sys;
use sys::counting_alloc::allocations;

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

/// The counter itself works: an allocation on this thread is seen.
#[test]
fn the_counter_sees_an_allocation() {
    let n = allocations(|| {
        std::hint::black_box(Vec::<u8>::with_capacity(64));
    });
    assert!(n >= 1, "counted {n} allocations for a Vec::with_capacity");
}
