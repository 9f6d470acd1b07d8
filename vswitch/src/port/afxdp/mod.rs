//! AF_XDP port: attaches the switch to an existing interface through
//! AF_XDP sockets, one per receive queue, fed by our own XDP program
//! (`program.rs`, assembled in Rust and attached through a BPF link that
//! detaches it by itself when the daemon goes away, `attach.rs`).
//!
//! - One UMEM per socket, not one shared by the port's sockets
//!   (XDP_SHARED_UMEM): since Linux 5.10 each socket on another queue needs
//!   its own fill and completion rings anyway, so sharing would save only
//!   memory and cost an allocator shared across queues. With its own UMEM
//!   a socket's chunks are split once: the first `rx_frames` live in the
//!   fill/rx cycle, the rest are the tx pool.
//! - rx: `rx_burst` takes descriptors from the rx rings (queues in turn),
//!   copies each frame into the batch's `PacketBuf`, finishes the L4
//!   checksum of frames sent with checksum offload (`csum.rs`), and gives
//!   every chunk back to the fill ring, submitted once per burst.
//! - tx: `tx_burst` copies frames into free tx chunks of queue 0's socket
//!   and puts their descriptors on its tx ring; `flush` kicks the kernel
//!   (`sendto`) only while frames wait and the ring asks for a wake-up
//!   (XDP_USE_NEED_WAKEUP), and `flush`/`tick` take sent chunks back from
//!   the completion ring.
//! - Copy vs zero-copy: zero-copy is tried first in native mode and falls
//!   back to copy mode when the driver lacks it (veth does). The datapath
//!   copies every frame into its own buffers either way: that copy in and
//!   out of the UMEM is the price of backends sharing one buffer model.
//! - Drops the kernel makes (XDP_STATISTICS) are read every tick.

mod attach;
pub mod config;
pub mod csum;
pub mod program;

#[cfg(test)]
mod tests;

use std::os::fd::RawFd;
use std::sync::Arc;

use super::sys::epoll::Epoll;
use super::sys::xdp::{BindMode, XskGeometry, XskSocket, XDP_PACKET_HEADROOM};
use super::sys::{self, SysError};
use super::{validate_ifname, Port, PortError, PortKind};
use crate::packet::Batch;
use crate::pipeline::counters::{DropReason, PortCounters};
use attach::Attachment;
pub use config::{AfXdpConfig, XdpMode};

const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;
/// UMEM chunk size: one page, the most the kernel allows in aligned mode.
const FRAME_SIZE: u32 = 4096;
/// Chunks (and fill/rx ring entries) per socket for receiving.
const RX_FRAMES: u32 = 2048;
/// Chunks (and tx/completion ring entries) per socket for sending.
const TX_FRAMES: u32 = 1024;
/// Largest frame a chunk takes on receive (copy mode puts it after
/// XDP_PACKET_HEADROOM).
pub const MAX_RX_FRAME: usize = (FRAME_SIZE - XDP_PACKET_HEADROOM) as usize;
/// Most `sendto` calls one flush makes (copy mode sends at most 32 frames
/// per call).
const MAX_KICKS_PER_FLUSH: u32 = 16;

/// The kernel's drop counters of one socket, as last read.
#[derive(Debug, Clone, Copy, Default)]
struct XdpStats {
    rx_dropped: u64,
    rx_invalid_descs: u64,
    tx_invalid_descs: u64,
    rx_ring_full: u64,
    rx_fill_ring_empty_descs: u64,
    tx_ring_empty_descs: u64,
}

impl From<libc::xdp_statistics> for XdpStats {
    fn from(s: libc::xdp_statistics) -> Self {
        XdpStats {
            rx_dropped: s.rx_dropped,
            rx_invalid_descs: s.rx_invalid_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs,
            tx_ring_empty_descs: s.tx_ring_empty_descs,
        }
    }
}

/// One receive queue's socket and the chunks it owns.
struct Queue {
    id: u32,
    sock: XskSocket,
    /// Tx chunks not on the tx or completion ring (preallocated to hold
    /// them all, so it never grows).
    tx_free: Vec<u64>,
    stats: XdpStats,
}

impl Queue {
    fn open(ifindex: u32, id: u32, geo: &XskGeometry, zerocopy: bool) -> Result<Queue, SysError> {
        let mut sock = XskSocket::open(ifindex, id, geo, zerocopy)?;
        for i in 0..geo.rx_frames {
            sock.fill.push(geo.chunk_addr(i));
        }
        sock.fill.submit();
        let tx_free = (geo.rx_frames..geo.rx_frames + geo.tx_frames)
            .map(|i| geo.chunk_addr(i))
            .collect();
        Ok(Queue {
            id,
            sock,
            tx_free,
            stats: XdpStats::default(),
        })
    }

    /// Takes sent chunks back from the completion ring.
    #[inline]
    fn reap(&mut self) {
        let mut any = false;
        while let Some(addr) = self.sock.completion.pop() {
            if self.tx_free.len() < self.tx_free.capacity() {
                self.tx_free.push(addr);
            }
            any = true;
        }
        if any {
            self.sock.completion.release();
        }
    }
}

/// An interface driven through AF_XDP sockets.
pub struct AfXdpPort {
    // Dropped first: the program leaves the interface before its sockets
    // close (shared by the shards of a port on every worker: the last one
    // dropped detaches it).
    attachment: Arc<Attachment>,
    queues: Vec<Queue>,
    ready: Epoll,
    name: String,
    mtu: usize,
    geo: XskGeometry,
    /// The queue whose rx ring the next burst starts with.
    next_rx: usize,
    /// Frames were put on the tx ring that the kernel may not have taken.
    tx_pending: bool,
    csum_repaired: u64,
}

/// The largest frame an interface of `mtu` sends: the MTU plus the
/// Ethernet header, plus one tag for 802.1Q frames (the kernel's rule), and
/// no more than a UMEM chunk.
#[inline]
fn max_tx_len(mtu: usize, chunk: usize, frame: &[u8]) -> usize {
    let tagged = frame.len() >= ETH_HLEN && frame[12..14] == [0x81, 0x00];
    (mtu + ETH_HLEN + if tagged { VLAN_HLEN } else { 0 }).min(chunk)
}

/// Receive queues of `iface` (its `queues/rx-N` entries in sysfs).
fn rx_queue_count(iface: &str) -> Option<u32> {
    let dir = std::fs::read_dir(format!("/sys/class/net/{iface}/queues")).ok()?;
    let n = dir
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count();
    u32::try_from(n).ok()
}

impl AfXdpPort {
    /// Attaches the XDP program to the existing interface `iface`, opens a
    /// socket on each of its first `cfg.queues` receive queues and brings
    /// the interface up.
    pub fn open(iface: &str, cfg: &AfXdpConfig) -> Result<AfXdpPort, PortError> {
        let mut ports = Self::open_shards(iface, cfg, 1)?;
        Ok(ports.remove(0))
    }

    /// The same, as `shards` ports sharing the program: shard i takes
    /// queues i, i + shards, ... (each worker of a bridge on every worker
    /// polls its own queues and sends on them), so `cfg.queues` must be at
    /// least `shards`.
    pub fn open_shards(
        iface: &str,
        cfg: &AfXdpConfig,
        shards: usize,
    ) -> Result<Vec<AfXdpPort>, PortError> {
        validate_ifname(iface)?;
        let err = |e: SysError| {
            if e.is_no_device() {
                PortError::NoSuchInterface(iface.to_string())
            } else {
                e.into_port_error(iface)
            }
        };
        let Some(ifindex) = sys::if_index(iface).map_err(err)? else {
            return Err(PortError::NoSuchInterface(iface.to_string()));
        };
        if sys::link_type(iface).map_err(err)? != libc::ARPHRD_ETHER {
            return Err(PortError::Invalid(format!(
                "{iface:?} is not an Ethernet interface"
            )));
        }
        let mtu = sys::link_mtu(iface).map_err(err)? as usize;
        if mtu + ETH_HLEN + VLAN_HLEN > MAX_RX_FRAME {
            return Err(PortError::Invalid(format!(
                "{iface:?} has MTU {mtu}: an afxdp port takes frames of at most {MAX_RX_FRAME} \
                 bytes (MTU {}; multi-buffer AF_XDP is not supported)",
                MAX_RX_FRAME - ETH_HLEN - VLAN_HLEN
            )));
        }
        if let Some(have) = rx_queue_count(iface) {
            if cfg.queues > have {
                return Err(PortError::Invalid(format!(
                    "queues={} but {iface:?} has {have} receive queue(s)",
                    cfg.queues
                )));
            }
        }
        if (cfg.queues as usize) < shards {
            return Err(PortError::Invalid(format!(
                "queues={} on a bridge on every worker: give {iface:?} at least {shards} \
                 (each of the {shards} workers receives and sends on queues of its own)",
                cfg.queues
            )));
        }
        let attachment = Arc::new(attach::attach(iface, ifindex, cfg.queues, cfg.mode)?);
        let geo = XskGeometry {
            frame_size: FRAME_SIZE,
            rx_frames: RX_FRAMES,
            tx_frames: TX_FRAMES,
        };
        let zerocopy = attachment.mode == XdpMode::Native;
        let mut ports = Vec::with_capacity(shards);
        for shard in 0..shards {
            let ready = Epoll::new().map_err(err)?;
            let mut queues = Vec::new();
            for id in (shard as u32..cfg.queues).step_by(shards) {
                let q = Queue::open(ifindex, id, &geo, zerocopy).map_err(err)?;
                sys::bpf::xskmap_set(&attachment.map, id, q.sock.fd()).map_err(err)?;
                ready.add(q.sock.fd()).map_err(err)?;
                queues.push(q);
            }
            ports.push(AfXdpPort {
                attachment: attachment.clone(),
                queues,
                ready,
                name: iface.to_string(),
                mtu,
                geo,
                next_rx: 0,
                tx_pending: false,
                csum_repaired: 0,
            });
        }
        sys::link_up(iface).map_err(err)?;
        Ok(ports)
    }

    fn bind_mode(&self) -> BindMode {
        self.queues.first().map_or(BindMode::Copy, |q| q.sock.mode)
    }

    /// Drains one queue's rx ring into `batch`; returns the frames added.
    #[inline]
    fn rx_queue(&mut self, qi: usize, batch: &mut Batch, counters: &mut PortCounters) -> usize {
        let chunk_mask = !(u64::from(self.geo.frame_size) - 1);
        let q = &mut self.queues[qi];
        let (mut got, mut taken) = (0, 0);
        while let Some(buf) = batch.slot() {
            let Some(desc) = q.sock.rx.pop() else {
                break;
            };
            taken += 1;
            let len = desc.len as usize;
            match q.sock.umem.frame(desc.addr, len) {
                Some(frame) if len <= buf.rx_area().len() => {
                    buf.rx_area()[..len].copy_from_slice(frame);
                    buf.set_len(len);
                    if csum::repair(buf.frame_mut()) {
                        self.csum_repaired += 1;
                    }
                    batch.commit();
                    counters.count_rx(len);
                    got += 1;
                }
                _ => counters.count_drop(DropReason::RxTruncated),
            }
            // The fill ring has room for every rx chunk, so this succeeds.
            q.sock.fill.push(desc.addr & chunk_mask);
        }
        if taken > 0 {
            q.sock.rx.release();
            q.sock.fill.submit();
        }
        if q.sock.fill.needs_wakeup() {
            // A zero-copy driver stopped on an empty fill ring.
            q.sock.wake_rx();
        }
        got
    }

    /// The sum of every socket's kernel counters.
    fn total_stats(&self) -> XdpStats {
        let mut t = XdpStats::default();
        for q in &self.queues {
            let s = q.stats;
            t.rx_dropped += s.rx_dropped;
            t.rx_invalid_descs += s.rx_invalid_descs;
            t.tx_invalid_descs += s.tx_invalid_descs;
            t.rx_ring_full += s.rx_ring_full;
            t.rx_fill_ring_empty_descs += s.rx_fill_ring_empty_descs;
            t.tx_ring_empty_descs += s.tx_ring_empty_descs;
        }
        t
    }
}

impl Port for AfXdpPort {
    fn kind(&self) -> PortKind {
        PortKind::Afxdp
    }

    fn iface(&self) -> &str {
        &self.name
    }

    fn rx_burst(&mut self, batch: &mut Batch, counters: &mut PortCounters) -> usize {
        let n = self.queues.len();
        let mut got = 0;
        for k in 0..n {
            if batch.is_full() {
                break;
            }
            got += self.rx_queue((self.next_rx + k) % n, batch, counters);
        }
        self.next_rx = (self.next_rx + 1) % n.max(1);
        got
    }

    fn tx_burst(&mut self, frames: &[&[u8]], counters: &mut PortCounters) -> usize {
        let (mtu, chunk) = (self.mtu, self.geo.frame_size as usize);
        let Some(q) = self.queues.first_mut() else {
            return 0;
        };
        if q.tx_free.len() < frames.len() {
            q.reap();
        }
        let mut sent = 0;
        for (i, frame) in frames.iter().enumerate() {
            if frame.len() > max_tx_len(mtu, chunk, frame) {
                counters.count_drop(DropReason::TxTooBig);
                continue;
            }
            if frame.len() < ETH_HLEN {
                counters.count_drop(DropReason::TxError);
                continue;
            }
            let Some(addr) = q.tx_free.pop() else {
                counters.count_drops(DropReason::TxRingFull, (frames.len() - i) as u64);
                break;
            };
            let Some(dst) = q.sock.umem.frame_mut(addr, frame.len()) else {
                q.tx_free.push(addr);
                counters.count_drop(DropReason::TxError);
                continue;
            };
            dst.copy_from_slice(frame);
            let desc = libc::xdp_desc {
                addr,
                len: frame.len() as u32,
                options: 0,
            };
            // The tx ring has an entry for every tx chunk, so this succeeds
            // while a chunk was free.
            if !q.sock.tx.push(desc) {
                q.tx_free.push(addr);
                counters.count_drops(DropReason::TxRingFull, (frames.len() - i) as u64);
                break;
            }
            counters.count_tx(frame.len());
            sent += 1;
        }
        if sent > 0 {
            q.sock.tx.submit();
            self.tx_pending = true;
        }
        sent
    }

    /// Kicks the kernel while frames wait on the tx ring and it asked for a
    /// wake-up (always, in copy mode: it sends only inside `sendto`, at
    /// most 32 frames a call). A kick that fails (EAGAIN, ENOBUFS: the
    /// device is busy; ENETDOWN: the link is down) leaves the frames on the
    /// ring for a later flush; frames beyond the ring are counted as
    /// `TxRingFull` by `tx_burst`.
    fn flush(&mut self, _counters: &mut PortCounters) {
        let Some(q) = self.queues.first_mut() else {
            return;
        };
        if self.tx_pending {
            let mut waiting = q.sock.tx.outstanding();
            let mut kicks = 0;
            while waiting > 0 && kicks < MAX_KICKS_PER_FLUSH && q.sock.tx.needs_wakeup() {
                kicks += 1;
                if q.sock.kick_tx().is_err() {
                    break;
                }
                let now = q.sock.tx.outstanding();
                if now >= waiting {
                    break;
                }
                waiting = now;
            }
            self.tx_pending = waiting > 0;
        }
        q.reap();
    }

    fn readiness_fd(&self) -> Option<RawFd> {
        Some(self.ready.fd())
    }

    /// Counts what the kernel dropped (XDP_STATISTICS, cumulative: the
    /// increase since the last tick), and takes back sent chunks.
    fn tick(&mut self, _now: std::time::Duration, counters: &mut PortCounters) {
        for q in &mut self.queues {
            q.reap();
            let Ok(now) = q.sock.statistics().map(XdpStats::from) else {
                continue;
            };
            let was = q.stats;
            let d = |now: u64, was: u64| now.saturating_sub(was);
            counters.count_drops(DropReason::XdpRxDropped, d(now.rx_dropped, was.rx_dropped));
            counters.count_drops(
                DropReason::RxRingFull,
                d(now.rx_ring_full, was.rx_ring_full),
            );
            counters.count_drops(
                DropReason::RxError,
                d(now.rx_invalid_descs, was.rx_invalid_descs),
            );
            counters.count_drops(
                DropReason::TxError,
                d(now.tx_invalid_descs, was.tx_invalid_descs),
            );
            q.stats = now;
        }
    }

    fn details(&self) -> Option<serde_json::Value> {
        let s = self.total_stats();
        Some(serde_json::json!({
            "xdp_mode": self.attachment.mode.as_str(),
            "bind": match self.bind_mode() {
                BindMode::Copy => "copy",
                BindMode::ZeroCopy => "zerocopy",
            },
            "attach": "bpf_link",
            "prog_id": self.attachment.prog_id,
            "queues": self.queues.iter().map(|q| q.id).collect::<Vec<_>>(),
            "frame_size": self.geo.frame_size,
            "rings": {
                "fill": self.geo.rx_frames,
                "rx": self.geo.rx_frames,
                "tx": self.geo.tx_frames,
                "completion": self.geo.tx_frames,
            },
            "xdp_statistics": {
                "rx_dropped": s.rx_dropped,
                "rx_invalid_descs": s.rx_invalid_descs,
                "rx_ring_full": s.rx_ring_full,
                "rx_fill_ring_empty_descs": s.rx_fill_ring_empty_descs,
                "tx_invalid_descs": s.tx_invalid_descs,
                "tx_ring_empty_descs": s.tx_ring_empty_descs,
            },
            "csum_repaired": self.csum_repaired,
        }))
    }
}
