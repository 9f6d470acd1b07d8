//! Packet capture on a port (`vsctl capture`).
//!
//! While a capture runs, its port's slot in the datapath holds a [`Tap`]:
//! after each receive burst, and after each burst handed to the port for
//! sending, the datapath copies the frames the capture wants into the
//! capture's [`Ring`]. Without a capture the cost is one `Option` check per
//! burst per port.
//!
//! The ring is two bounded lock-free queues of fixed-size buffers
//! allocated when the capture starts: `free` (empty buffers) and `filled`
//! (captured frames). The datapath pops a free buffer, copies at most
//! `snaplen` bytes of the frame into it and pushes it on `filled`; the
//! control thread pops filled buffers, streams them to the client and pushes
//! them back on `free`. When no buffer is free the frame is left out of the
//! capture and counted (`lost`): a slow reader loses capture frames, never
//! traffic, and the datapath never waits, locks or allocates for it.
//!
//! The capture ends when the control side detaches the tap (a command), or
//! by itself within a tick once the control side has dropped its end of
//! the ring (`Tap::orphaned`).

pub mod pcap;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crossbeam_queue::ArrayQueue;
use serde::{Deserialize, Serialize};

use crate::packet::Batch;

/// Snapshot length when none is asked for: whole frames up to 64 KiB (a
/// GSO frame is cut there, its `orig_len` kept).
pub const DEFAULT_SNAPLEN: u32 = 65535;
/// Longest snapshot length.
pub const MAX_SNAPLEN: u32 = 65535;
/// Memory a capture's buffers may take when the client does not choose
/// their number: `RING_BUDGET / snaplen` buffers, within the bounds below.
pub const RING_BUDGET: usize = 8 << 20;
pub const MIN_BUFFERS: u32 = 16;
pub const MAX_BUFFERS: u32 = 4096;

/// Which frames of a port a capture takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Frames received on the port (after its backend took them).
    Rx,
    /// Frames handed to the port to send.
    Tx,
    #[default]
    Both,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Rx => "rx",
            Direction::Tx => "tx",
            Direction::Both => "both",
        }
    }

    /// Whether a capture in direction `self` takes frames going `way`.
    #[inline]
    pub fn takes(self, way: Direction) -> bool {
        self == Direction::Both || self == way
    }
}

impl std::str::FromStr for Direction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rx" => Ok(Direction::Rx),
            "tx" => Ok(Direction::Tx),
            "both" => Ok(Direction::Both),
            other => Err(format!(
                "unknown direction {other:?}: expected rx, tx or both"
            )),
        }
    }
}

/// The number of buffers a capture gets for `snaplen` when the client does
/// not say.
pub fn default_buffers(snaplen: u32) -> u32 {
    let n = RING_BUDGET / (snaplen.max(1) as usize);
    (n as u32).clamp(MIN_BUFFERS, MAX_BUFFERS)
}

/// One captured frame in a ring buffer.
pub struct Record {
    /// Wall-clock time of the burst the frame was in, in nanoseconds since
    /// the Unix epoch.
    pub time_ns: u64,
    /// The frame's length on the wire (`data` may hold less: snaplen).
    pub orig_len: u32,
    /// `Rx` or `Tx`.
    pub dir: Direction,
    len: usize,
    buf: Box<[u8]>,
}

impl Record {
    fn new(snaplen: usize) -> Record {
        Record {
            time_ns: 0,
            orig_len: 0,
            dir: Direction::Rx,
            len: 0,
            buf: vec![0u8; snaplen].into_boxed_slice(),
        }
    }

    /// The captured bytes (at most snaplen).
    pub fn data(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    #[inline]
    fn fill(&mut self, frame: &[u8], dir: Direction, time_ns: u64) {
        let n = frame.len().min(self.buf.len());
        self.buf[..n].copy_from_slice(&frame[..n]);
        self.len = n;
        self.orig_len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        self.dir = dir;
        self.time_ns = time_ns;
    }
}

/// The buffers of one capture, shared by the datapath (which fills them)
/// and the control thread (which drains them).
pub struct Ring {
    free: ArrayQueue<Box<Record>>,
    filled: ArrayQueue<Box<Record>>,
    /// Frames the capture wanted but had no free buffer for.
    lost: AtomicU64,
    /// Frames copied into the ring.
    captured: AtomicU64,
    /// True while a datapath tap fills this ring.
    attached: AtomicBool,
    snaplen: usize,
}

impl Ring {
    /// Allocates `buffers` buffers of `snaplen` bytes (both at least 1).
    pub fn new(buffers: u32, snaplen: u32) -> Arc<Ring> {
        let n = buffers.max(1) as usize;
        let snaplen = snaplen.max(1) as usize;
        let ring = Ring {
            free: ArrayQueue::new(n),
            filled: ArrayQueue::new(n),
            lost: AtomicU64::new(0),
            captured: AtomicU64::new(0),
            attached: AtomicBool::new(false),
            snaplen,
        };
        for _ in 0..n {
            // The queue has room for exactly n.
            let _ = ring.free.push(Box::new(Record::new(snaplen)));
        }
        Arc::new(ring)
    }

    /// The next captured frame, oldest first.
    pub fn pop(&self) -> Option<Box<Record>> {
        self.filled.pop()
    }

    /// Gives a drained buffer back to the datapath.
    pub fn recycle(&self, rec: Box<Record>) {
        // Every buffer is in one place at a time (free, filled, or the
        // caller's hand), so there is room.
        let _ = self.free.push(rec);
    }

    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    pub fn captured(&self) -> u64 {
        self.captured.load(Ordering::Relaxed)
    }

    /// False once the datapath has let go of the capture (stopped, or its
    /// port deleted).
    pub fn is_attached(&self) -> bool {
        self.attached.load(Ordering::Acquire)
    }

    pub fn snaplen(&self) -> usize {
        self.snaplen
    }

    pub fn buffers(&self) -> usize {
        self.free.capacity()
    }
}

/// The datapath's end of a capture, held in the port's slot.
pub struct Tap {
    ring: Arc<Ring>,
    dir: Direction,
    /// Frames still to capture (`--count`); `u64::MAX` for no limit.
    remaining: u64,
    /// Tells this capture from a later one on the same port.
    id: u64,
}

impl Tap {
    /// A tap filling `ring`; `count` frames at most.
    pub fn new(ring: Arc<Ring>, dir: Direction, count: Option<u64>, id: u64) -> Tap {
        ring.attached.store(true, Ordering::Release);
        Tap {
            ring,
            dir,
            remaining: count.unwrap_or(u64::MAX),
            id,
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether the control side has gone (it holds the other reference).
    pub fn orphaned(&self) -> bool {
        Arc::strong_count(&self.ring) == 1
    }

    /// Captures a received burst.
    #[inline]
    pub fn rx(&mut self, batch: &Batch) {
        if self.dir.takes(Direction::Rx) {
            self.copy(Direction::Rx, batch.iter().map(|b| b.frame()));
        }
    }

    /// Captures a burst handed to the port for sending.
    #[inline]
    pub fn tx(&mut self, frames: &[&[u8]]) {
        if self.dir.takes(Direction::Tx) {
            self.copy(Direction::Tx, frames.iter().copied());
        }
    }

    /// Copies frames into free buffers; frames without one are counted as
    /// lost. No allocation, no lock, no wait.
    fn copy<'a>(&mut self, dir: Direction, frames: impl Iterator<Item = &'a [u8]>) {
        if self.remaining == 0 {
            return;
        }
        let now = wall_clock_ns();
        let (mut copied, mut lost) = (0u64, 0u64);
        for frame in frames {
            if self.remaining == 0 {
                break;
            }
            let Some(mut rec) = self.ring.free.pop() else {
                lost += 1;
                continue;
            };
            rec.fill(frame, dir, now);
            if let Err(rec) = self.ring.filled.push(rec) {
                // Cannot happen (as many slots as buffers); keep the
                // buffer and count the frame rather than drop either.
                let _ = self.ring.free.push(rec);
                lost += 1;
                continue;
            }
            copied += 1;
            self.remaining -= 1;
        }
        if copied > 0 {
            self.ring.captured.fetch_add(copied, Ordering::Relaxed);
        }
        if lost > 0 {
            self.ring.lost.fetch_add(lost, Ordering::Relaxed);
        }
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.ring.attached.store(false, Ordering::Release);
    }
}

/// Nanoseconds since the Unix epoch (0 if the clock is before it).
pub fn wall_clock_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// What the first line of a capture stream carries (`{"ok": CaptureInfo}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureInfo {
    pub port: String,
    pub direction: Direction,
    pub snaplen: u32,
    #[serde(default)]
    pub count: Option<u64>,
    /// Ring buffers: how many frames may wait for the reader.
    pub buffers: u32,
}

/// Every line after the first of a capture stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptureLine {
    Frame(CapturedFrame),
    End(CaptureEnd),
}

/// One captured frame on the wire of the control protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedFrame {
    /// Nanoseconds since the Unix epoch.
    pub time_ns: u64,
    pub dir: Direction,
    /// Length on the wire; `data` holds at most snaplen bytes of it.
    pub orig_len: u32,
    /// The bytes, base64 (standard alphabet, padded).
    pub data: String,
}

/// The last line of a capture stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureEnd {
    /// Frames sent to the client.
    pub frames: u64,
    /// Frames the capture lost because its buffers were full (the reader
    /// was slower than the traffic). Traffic itself lost nothing.
    pub lost: u64,
    /// Why it ended: `count`, `stopped`, `port deleted`.
    pub reason: String,
}

impl CapturedFrame {
    /// The line for one record.
    pub fn from_record(rec: &Record) -> CapturedFrame {
        use base64::Engine as _;
        CapturedFrame {
            time_ns: rec.time_ns,
            dir: rec.dir,
            orig_len: rec.orig_len,
            data: base64::engine::general_purpose::STANDARD.encode(rec.data()),
        }
    }

    /// The frame's bytes; an error for data that is not base64.
    pub fn bytes(&self) -> Result<Vec<u8>, String> {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(&self.data)
            .map_err(|e| format!("captured frame is not base64: {e}"))
    }
}

#[cfg(test)]
mod tests;
