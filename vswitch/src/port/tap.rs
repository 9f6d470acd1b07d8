//! Tap port: a `/dev/net/tun` tap device, the usual way a VM's NIC (or a
//! container's veth-like endpoint) reaches the switch.
//!
//! The switch holds the tap's file descriptor: what the kernel (or the VM
//! behind the tap's netdev) transmits on the tap becomes readable on the fd,
//! and what the switch writes is received by the netdev. No
//! packet-information prefix; 802.1Q tags stay in line.
//!
//! Two ways to move frames (`io=`, see docs/tap-io.md for the measurements):
//! - `syscalls`: one `read` per received frame and one `writev` per sent
//!   frame.
//! - `uring`: a burst's reads (or writevs) go to the kernel in one
//!   `io_uring_enter` and are all complete when it returns (`sys::uring`).
//!   A receive tries as many reads as the last burst brought, doubled, plus
//!   one (at most the batch's free slots), and goes on in doubling rounds
//!   while every read brings a frame. Rounds of one read, and bursts of one
//!   frame to send, are plain syscalls, which cost less than a ring round
//!   of one: an idle or trickling tap costs what `syscalls` costs. If
//!   io_uring cannot be set up (an old kernel, `kernel.io_uring_disabled`),
//!   the port uses syscalls and says so in its details.
//!
//! Both count every drop the same way, frame by frame, with one difference
//! in a burst the tap refuses part-way: `syscalls` stops at the first
//! EAGAIN or error and counts the rest of the burst with that reason,
//! `uring` has tried every frame and counts each by its own outcome.
//!
//! Offloads: every frame comes and goes behind a virtio-net header
//! (IFF_VNET_HDR), and TUNSETOFFLOAD tells the kernel the switch takes
//! checksum-partial and TSO (and, from Linux 6.2, USO) frames. So a VM's or
//! container's TCP stream arrives as 64 KiB frames with the checksum left
//! undone, and leaves through any port that can pass that on (another tap,
//! an AF_PACKET port) unchanged; the output stage finishes or cuts it for
//! the others (`packet::offload`). A tap takes every request on output.
//!
//! The tap is created if missing and is not made persistent: it vanishes
//! when the port closes. An existing tap of that name (e.g. persistent,
//! made by `ip tuntap add`) is attached to and keeps its persistence.
//! Moving the tap's netdev to another network namespace (a VM's or a test's)
//! keeps the fd working; while the netdev is down, writes fail with EIO and
//! are counted as `TxError`.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use super::{sys, validate_ifname, Port, PortError, PortKind};
use crate::control::protocol::Options;
use crate::packet::offload::{self, OffloadCaps};
use crate::packet::{Batch, PacketBuf, BATCH_SIZE, MAX_FRAME_LEN};
use crate::pipeline::counters::{DropReason, PortCounters};
use crate::wire::vnet::{VnetHdr, VNET_HDR_LEN};

/// Every option a tap port takes besides the VLAN mode and policy.
pub const KEYS: &[&str] = &["type", "iface", "io"];

/// How a tap port moves frames to and from the kernel (`io=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TapIo {
    /// A burst per `io_uring_enter` (the default: 12 % more 64-byte
    /// frames per switch core, docs/tap-io.md).
    #[default]
    Uring,
    /// One `read` or `writev` per frame.
    Syscalls,
}

impl TapIo {
    pub fn as_str(self) -> &'static str {
        match self {
            TapIo::Uring => "uring",
            TapIo::Syscalls => "syscalls",
        }
    }

    /// Parses the `io` option (absent: the default).
    pub fn parse(options: &Options) -> Result<TapIo, String> {
        options
            .get("io")
            .map_or(Ok(TapIo::default()), |v| v.parse())
    }
}

impl std::str::FromStr for TapIo {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "uring" => Ok(TapIo::Uring),
            "syscalls" => Ok(TapIo::Syscalls),
            other => Err(format!("io={other:?}: expected uring or syscalls")),
        }
    }
}

/// The io_uring side of a tap port.
struct Uring {
    ring: sys::uring::FdRing,
    /// Reads the next receive tries.
    rx_want: usize,
    results: [i32; BATCH_SIZE],
    /// Per result of a transmit: the index of its frame.
    tx_index: [u16; BATCH_SIZE],
    /// Per reserved buffer of a receive: keep it as a frame.
    keep: [bool; BATCH_SIZE],
}

/// A tap device owned by the switch.
pub struct TapPort {
    fd: OwnedFd,
    name: String,
    /// The kernel hands us UDP-segmentation frames too (Linux 6.2+).
    uso: bool,
    /// What the operator asked for.
    io: TapIo,
    /// `Some` when frames go through io_uring.
    uring: Option<Box<Uring>>,
    /// Why `io=uring` fell back to syscalls.
    fallback: Option<String>,
}

impl TapPort {
    /// Creates the tap `iface` (or attaches to the existing tap of that
    /// name) and brings it up, with the default I/O.
    pub fn open(iface: &str) -> Result<TapPort, PortError> {
        Self::open_with(iface, TapIo::default())
    }

    /// Creates the tap `iface` (or attaches to the existing tap of that
    /// name) and brings it up. Fails with a clear error if the name is taken
    /// by something that is not a tap, or if the tap is already in use.
    /// `io=uring` falls back to syscalls (logged, and said in the details)
    /// when io_uring cannot be set up; it never fails the open.
    pub fn open_with(iface: &str, io: TapIo) -> Result<TapPort, PortError> {
        Self::open_queue(iface, io, false)
    }

    /// `queues` queues of the multiqueue tap `iface` (created, or attached
    /// to if it exists as a multiqueue tap), one port each: the kernel
    /// hands each flow the host or VM sends to one queue, so each datapath
    /// worker reads its share (a bridge on every worker). The tap goes
    /// when the last queue closes.
    pub fn open_queues(iface: &str, io: TapIo, queues: usize) -> Result<Vec<TapPort>, PortError> {
        (0..queues)
            .map(|_| Self::open_queue(iface, io, true))
            .collect()
    }

    fn open_queue(iface: &str, io: TapIo, multi_queue: bool) -> Result<TapPort, PortError> {
        validate_ifname(iface)?;
        let (fd, name) =
            sys::tun::open_tap(iface, multi_queue).map_err(|e| e.into_port_error(iface))?;
        let uso = sys::tun::set_offloads(fd.as_fd()).map_err(|e| e.into_port_error(&name))?;
        sys::link_up(&name).map_err(|e| e.into_port_error(&name))?;
        let (mut uring, mut fallback) = (None, None);
        if io == TapIo::Uring {
            match sys::uring::FdRing::new(fd.as_fd()) {
                Ok(ring) => {
                    uring = Some(Box::new(Uring {
                        ring,
                        rx_want: BATCH_SIZE,
                        results: [0; BATCH_SIZE],
                        tx_index: [0; BATCH_SIZE],
                        keep: [false; BATCH_SIZE],
                    }))
                }
                Err(e) => {
                    tracing::warn!(tap = %name, error = %e, "io_uring unavailable: the tap uses read/writev syscalls");
                    fallback = Some(format!("io_uring unavailable ({e}): using syscalls"));
                }
            }
        }
        Ok(TapPort {
            fd,
            name,
            uso,
            io,
            uring,
            fallback,
        })
    }

    /// The I/O in use: `uring`, or `syscalls` (asked for, or fallen back to).
    pub fn io_in_use(&self) -> TapIo {
        if self.uring.is_some() {
            TapIo::Uring
        } else {
            TapIo::Syscalls
        }
    }

    /// Sends one frame behind its header; false (counted) when the tap
    /// refuses it, and `Err` when the rest of the burst would fail too.
    #[inline]
    fn send(
        &mut self,
        frame: &[u8],
        hdr: &VnetHdr,
        counters: &mut PortCounters,
    ) -> Result<bool, DropReason> {
        if frame.len() > MAX_TX_LEN {
            counters.count_drop(DropReason::TxTooBig);
            return Ok(false);
        }
        match sys::write2(self.fd.as_fd(), &hdr.for_tx().to_bytes(), frame) {
            Ok(_) => {
                counters.count_tx(frame.len());
                Ok(true)
            }
            // The rest of the burst would fail the same way: the caller
            // counts it without more syscalls. EIO means the netdev is down
            // (e.g. while it moves to another namespace).
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Err(DropReason::TxRingFull),
            // A header the kernel refuses concerns that frame only.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                counters.count_drop(DropReason::TxError);
                Ok(false)
            }
            Err(_) => Err(DropReason::TxError),
        }
    }

    /// The syscall transmit: one writev per frame until the tap refuses.
    fn tx_syscalls(
        &mut self,
        frames: &[&[u8]],
        hdrs: Option<&[VnetHdr]>,
        counters: &mut PortCounters,
    ) -> usize {
        let plain = VnetHdr::default();
        let mut sent = 0;
        for (i, frame) in frames.iter().enumerate() {
            let hdr = hdrs.and_then(|h| h.get(i)).unwrap_or(&plain);
            match self.send(frame, hdr, counters) {
                Ok(ok) => sent += usize::from(ok),
                Err(reason) => {
                    counters.count_drops(reason, (frames.len() - i) as u64);
                    break;
                }
            }
        }
        sent
    }

    /// The syscall receive: reads until the tap is empty or the batch full.
    fn rx_syscalls(&mut self, batch: &mut Batch, counters: &mut PortCounters) -> usize {
        let mut got = 0;
        while !batch.is_full() {
            let (n, drained) = rx_one(self.fd.as_fd(), batch, counters);
            got += n;
            if drained {
                break;
            }
        }
        got
    }
}

/// Largest frame a tap takes (with its header, it must fit a buffer).
const MAX_TX_LEN: usize = MAX_FRAME_LEN - VNET_HDR_LEN;

/// Checks a frame read into `buf` (`len` bytes as tun reported them, the
/// area `room` bytes long): takes the header off and keeps its offload
/// requests; false (counted) when the frame is dropped.
#[inline]
fn accept_rx(buf: &mut PacketBuf, len: usize, room: usize, counters: &mut PortCounters) -> bool {
    // tun returns the frame's full length even when it had to cut it to
    // fit the buffer.
    if len > room {
        counters.count_drop(DropReason::RxTruncated);
        return false;
    }
    if len < VNET_HDR_LEN {
        counters.count_drop(DropReason::Runt);
        return false;
    }
    let mut hdr = VnetHdr::parse(buf.rx_area()).unwrap_or_default();
    buf.set_len(len);
    buf.pull_front(VNET_HDR_LEN);
    if let Err(reason) = offload::check_rx(buf.frame(), &mut hdr) {
        counters.count_drop(reason);
        return false;
    }
    buf.meta.offload = hdr;
    counters.count_rx(len - VNET_HDR_LEN);
    true
}

/// One read syscall into the batch's next buffer: what a receive round of
/// one costs least as (an idle or trickling tap). Returns the frames kept
/// (0 or 1) and whether the tap is empty.
fn rx_one(fd: BorrowedFd<'_>, batch: &mut Batch, counters: &mut PortCounters) -> (usize, bool) {
    let Some(buf) = batch.slot() else {
        return (0, true);
    };
    let area = buf.rx_area();
    let room = area.len();
    match sys::read(fd, area) {
        Ok(0) => (0, true),
        Ok(len) => {
            if accept_rx(buf, len, room, counters) {
                batch.commit();
                (1, false)
            } else {
                (0, false)
            }
        }
        Err(e) => {
            let kind = e.kind();
            if kind != std::io::ErrorKind::WouldBlock && kind != std::io::ErrorKind::Interrupted {
                counters.count_drop(DropReason::RxError);
            }
            (0, true)
        }
    }
}

impl Uring {
    /// Receives until the tap is empty or the batch full, in rounds. The
    /// first round tries `rx_want` reads; a round whose every read brought
    /// a frame is followed by one twice as large. A round of one is a plain
    /// read syscall, which costs less than a ring round of one: an idle
    /// poll, and the first two reads after one (a request/response frame
    /// and the EAGAIN behind it), cost what `io=syscalls` costs. Larger
    /// rounds are one `io_uring_enter` each.
    fn rx(&mut self, fd: BorrowedFd<'_>, batch: &mut Batch, counters: &mut PortCounters) -> usize {
        let mut got = 0;
        let mut want = self.rx_want;
        loop {
            let (round, drained) = if want == 1 {
                rx_one(fd, batch, counters)
            } else {
                self.rx_round(batch, want, counters)
            };
            got += round;
            if drained || batch.is_full() {
                break;
            }
            want = if got < 2 {
                1
            } else {
                (2 * want).min(BATCH_SIZE)
            };
        }
        self.rx_want = if got < 2 {
            1
        } else {
            (2 * got + 1).min(BATCH_SIZE)
        };
        got
    }

    /// One round of at most `want` reads; returns the frames kept and
    /// whether the tap is empty (a read found nothing, or failed).
    fn rx_round(
        &mut self,
        batch: &mut Batch,
        want: usize,
        counters: &mut PortCounters,
    ) -> (usize, bool) {
        let start = batch.len();
        let want = want.min(batch.capacity() - start).min(BATCH_SIZE);
        for _ in 0..want {
            if batch.slot().is_none() {
                break;
            }
            batch.commit();
        }
        let reserved = batch.len() - start;
        let bufs = batch.iter_mut().skip(start).map(PacketBuf::rx_area);
        self.ring.read_all(bufs, &mut self.results[..reserved]);
        let (mut got, mut drained, mut error) = (0, reserved == 0, false);
        for i in 0..reserved {
            let res = self.results.get(i).copied().unwrap_or(-libc::ECANCELED);
            let keep = match (usize::try_from(res), batch.get_mut(start + i)) {
                (Ok(len), Some(buf)) if len > 0 => {
                    let room = buf.rx_area().len();
                    accept_rx(buf, len, room, counters)
                }
                (Ok(_), _) => {
                    // A zero-length read: nothing more to read now.
                    drained = true;
                    false
                }
                // A signal: the next poll reads again.
                (Err(_), _) if -res == libc::EINTR => false,
                (Err(_), _) if -res == libc::EAGAIN || -res == libc::ECANCELED => {
                    drained = true;
                    false
                }
                // Like the syscall path: one count, then the burst ends.
                (Err(_), _) => {
                    if !error {
                        counters.count_drop(DropReason::RxError);
                    }
                    (drained, error) = (true, true);
                    false
                }
            };
            if let Some(k) = self.keep.get_mut(i) {
                *k = keep;
            }
            got += usize::from(keep);
        }
        let mut i = 0;
        let keep = &self.keep;
        batch.retain_from(start, |_| {
            let k = keep.get(i).copied().unwrap_or(false);
            i += 1;
            k
        });
        (got, drained)
    }

    /// Writes every frame (too big ones aside) with one `io_uring_enter`
    /// and counts each by its own outcome.
    fn tx(
        &mut self,
        fd: BorrowedFd<'_>,
        frames: &[&[u8]],
        hdrs: Option<&[VnetHdr]>,
        counters: &mut PortCounters,
    ) -> usize {
        let mut sent = 0;
        for (chunk_no, chunk) in frames.chunks(BATCH_SIZE).enumerate() {
            let base = chunk_no * BATCH_SIZE;
            let mut n = 0;
            for (i, frame) in chunk.iter().enumerate() {
                if frame.len() > MAX_TX_LEN {
                    counters.count_drop(DropReason::TxTooBig);
                } else {
                    self.tx_index[n] = i as u16;
                    n += 1;
                }
            }
            let plain = VnetHdr::default();
            let mut heads = [[0u8; VNET_HDR_LEN]; BATCH_SIZE];
            for (k, &i) in self.tx_index[..n].iter().enumerate() {
                let hdr = hdrs
                    .and_then(|h| h.get(base + usize::from(i)))
                    .unwrap_or(&plain);
                heads[k] = hdr.for_tx().to_bytes();
            }
            if n == 1 {
                // One frame: a plain writev is cheaper than a ring round.
                let frame = chunk[usize::from(self.tx_index[0])];
                self.results[0] = match sys::write2(fd, &heads[0], frame) {
                    Ok(len) => i32::try_from(len).unwrap_or(i32::MAX),
                    Err(e) => -e.raw_os_error().unwrap_or(libc::EIO),
                };
            } else {
                let items = self.tx_index[..n]
                    .iter()
                    .zip(heads.iter())
                    .map(|(&i, head)| (&head[..], chunk[usize::from(i)]));
                self.ring.writev_all(items, &mut self.results[..n]);
            }
            for (k, &res) in self.results[..n].iter().enumerate() {
                let len = chunk[usize::from(self.tx_index[k])].len();
                match -res {
                    _ if res >= 0 => {
                        counters.count_tx(len);
                        sent += 1;
                    }
                    libc::EAGAIN => counters.count_drop(DropReason::TxRingFull),
                    // EIO: the netdev is down; EINVAL: a header the kernel
                    // refuses; anything else.
                    _ => counters.count_drop(DropReason::TxError),
                }
            }
        }
        sent
    }
}
impl Port for TapPort {
    fn kind(&self) -> PortKind {
        PortKind::Tap
    }

    fn iface(&self) -> &str {
        &self.name
    }

    fn rx_burst(&mut self, batch: &mut Batch, counters: &mut PortCounters) -> usize {
        match self.uring.as_mut() {
            Some(u) => u.rx(self.fd.as_fd(), batch, counters),
            None => self.rx_syscalls(batch, counters),
        }
    }

    fn tx_burst(&mut self, frames: &[&[u8]], counters: &mut PortCounters) -> usize {
        match self.uring.as_mut() {
            Some(u) => u.tx(self.fd.as_fd(), frames, None, counters),
            None => self.tx_syscalls(frames, None, counters),
        }
    }

    fn offload_caps(&self) -> OffloadCaps {
        OffloadCaps::ALL
    }

    fn tx_burst_offload(
        &mut self,
        frames: &[&[u8]],
        hdrs: &[VnetHdr],
        counters: &mut PortCounters,
    ) -> usize {
        // Frames beyond the headers given are not sent (as a zip would).
        let frames = &frames[..frames.len().min(hdrs.len())];
        match self.uring.as_mut() {
            Some(u) => u.tx(self.fd.as_fd(), frames, Some(hdrs), counters),
            None => self.tx_syscalls(frames, Some(hdrs), counters),
        }
    }

    fn readiness_fd(&self) -> Option<RawFd> {
        Some(self.fd.as_raw_fd())
    }

    fn details(&self) -> Option<serde_json::Value> {
        let mut d = serde_json::json!({
            "offloads_received": {
                "checksum": true,
                "tso": true,
                "uso": self.uso,
            },
            "io": self.io_in_use().as_str(),
            "io_requested": self.io.as_str(),
        });
        if let Some(u) = &self.uring {
            d["io_uring_fixed_file"] = u.ring.fixed_file().into();
        }
        if let Some(why) = &self.fallback {
            d["io_fallback"] = why.as_str().into();
        }
        Some(d)
    }
}

#[cfg(test)]
mod tests;
