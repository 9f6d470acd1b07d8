//! AF_PACKET port: attaches the switch to an existing interface (a host NIC
//! as uplink, or one end of a veth pair) through mmap'd TPACKET_V2 rx and tx
//! rings, so receiving costs no syscall and sending one `sendto` per burst.
//!
//! - rx: the kernel strips the outer 802.1Q/802.1ad tag of every received
//!   frame into the slot header before a packet socket sees it; `rx_burst`
//!   puts it back in line while copying, so the pipeline sees the frame as
//!   it was on the wire. PACKET_IGNORE_OUTGOING keeps the switch from
//!   receiving what it (or the host) transmits on the interface.
//! - tx: `tx_burst` copies frames into free tx slots and marks them
//!   SEND_REQUEST; `flush` kicks the kernel once.
//! - Frames the kernel drops because the rx ring is full are read from the
//!   socket's PACKET_STATISTICS every tick and counted as `RxRingFull`.
//! - Offloads (PACKET_VNET_HDR): each frame comes with a virtio-net header,
//!   so checksum-partial and GSO frames (up to 64 KiB) from the host or a
//!   veth peer arrive whole, with their requests; on output the kernel
//!   finishes or segments what the switch passes on (`offload_caps`: all).
//!   Slots are therefore 68 KiB each: 256 rx and 128 tx slots, about 26 MiB
//!   of ring per port. The kernel's TPACKET_V3 ring packs frames tighter,
//!   but hands a block over only when it is full or its timer (1 ms at the
//!   least) fires, which would put milliseconds on every request/response
//!   exchange at low rates; V2 hands over each frame at once.
//! - Sizes come from the MTU at open time: a later MTU change past 64 KiB
//!   needs the port to be reopened (bigger frames are counted as
//!   `RxTruncated`/`TxTooBig`).

use std::io::ErrorKind;
use std::os::fd::RawFd;

use super::sys::packet_ring::{PacketRing, RingGeometry, RxFrame, RX_HEADER_ROOM};
use super::sys::{self, SysError};
use super::{validate_ifname, Port, PortError, PortKind};
use crate::packet::offload::{self, OffloadCaps};
use crate::packet::{Batch, PacketBuf};
use crate::pipeline::counters::{DropReason, PortCounters};
use crate::wire::vnet::VnetHdr;

const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;
/// The largest frame with offloads: a 64 KiB GSO packet with its Ethernet
/// header and two tags.
const GSO_MAX_FRAME: usize = 65535 + ETH_HLEN + 2 * VLAN_HLEN;
const RX_FRAMES: u32 = 256;
/// Bytes of tx ring (MTU-sized slots; larger frames are sent directly).
const TX_RING_BYTES: usize = 1 << 20;
const MIN_TX_FRAMES: usize = 64;
const MIN_TX_FRAME_SIZE: usize = 2048;
/// After this many empty polls in a row, clear the socket's pending error
/// (the ENETDOWN left by a link flap keeps it signalling POLLERR, which
/// would wake an idle datapath forever).
const IDLE_POLLS_BEFORE_ERROR_CHECK: u32 = 64;

/// Ring sizes for an interface of `mtu`. rx: slots of whole pages holding
/// the slot and virtio-net headers and the largest GSO frame (or the MTU,
/// if larger), one slot per block. tx: slots of a power of two bytes
/// holding an MTU-sized frame with two tags, blocks of one page or one
/// slot, whichever is larger.
pub(crate) fn ring_geometry(mtu: u32, page_size: usize) -> RingGeometry {
    let largest = (ETH_HLEN + 2 * VLAN_HLEN + mtu as usize).max(GSO_MAX_FRAME);
    let rx_slot = (RX_HEADER_ROOM + largest).next_multiple_of(page_size.max(16));
    let tx_need = RX_HEADER_ROOM + ETH_HLEN + 2 * VLAN_HLEN + mtu as usize;
    let tx_slot = tx_need.next_power_of_two().max(MIN_TX_FRAME_SIZE);
    let tx_block = tx_slot.max(page_size.next_power_of_two());
    let per_block = tx_block / tx_slot;
    let tx_frames = (TX_RING_BYTES / tx_slot)
        .max(MIN_TX_FRAMES)
        .div_ceil(per_block)
        * per_block;
    RingGeometry {
        frame_size: rx_slot as u32,
        block_size: rx_slot as u32,
        rx_frames: RX_FRAMES,
        tx_frame_size: tx_slot as u32,
        tx_block_size: tx_block as u32,
        tx_frames: tx_frames as u32,
    }
}

/// An interface driven through a TPACKET_V2 socket.
pub struct AfPacketPort {
    ring: PacketRing,
    name: String,
    mtu: usize,
    rx_frames: u32,
    tx_frames: u32,
    /// Next rx slot to look at (the kernel fills them in order).
    rx_next: u32,
    /// Next tx slot to fill; kept equal to the kernel's own tx head whenever
    /// no frame waits (the kernel sends slots in order from its head).
    tx_next: u32,
    /// Slots were requested and not yet taken by the kernel.
    tx_pending: bool,
    idle_polls: u32,
}

impl AfPacketPort {
    /// Opens a packet socket on the existing interface `iface`, maps its
    /// rings, puts the interface in promiscuous mode and brings it up.
    pub fn open(iface: &str) -> Result<AfPacketPort, PortError> {
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
            return Err(PortError::Os {
                what: "check the link type",
                iface: iface.to_string(),
                source: std::io::Error::new(ErrorKind::InvalidInput, "not an Ethernet interface"),
            });
        }
        let mtu = sys::link_mtu(iface).map_err(err)?;
        let geo = ring_geometry(mtu, sys::page_size());
        let ring = PacketRing::open(ifindex, geo).map_err(err)?;
        sys::link_up(iface).map_err(err)?;
        Ok(AfPacketPort {
            ring,
            name: iface.to_string(),
            mtu: mtu as usize,
            rx_frames: geo.rx_frames,
            tx_frames: geo.tx_frames,
            rx_next: 0,
            tx_next: 0,
            tx_pending: false,
            idle_polls: 0,
        })
    }

    /// `shards` sockets on `iface` in one PACKET_FANOUT group: the kernel
    /// hands each flow's frames to one of them, so each datapath worker
    /// receives its share of the interface (a bridge on every worker).
    /// Each sends on its own tx ring.
    pub fn open_fanout(iface: &str, shards: usize) -> Result<Vec<AfPacketPort>, PortError> {
        let mut ports: Vec<AfPacketPort> = Vec::with_capacity(shards);
        let mut group = None;
        for _ in 0..shards {
            let port = AfPacketPort::open(iface)?;
            let id = port
                .ring
                .join_fanout(group)
                .map_err(|e| e.into_port_error(iface))?;
            group = Some(id);
            ports.push(port);
        }
        Ok(ports)
    }

    /// Leaves slow protocols frames (LACP) out of the rx ring, for a bond
    /// member whose side channel receives them.
    pub fn exclude_slow_protocols(&self) -> Result<(), PortError> {
        self.ring
            .exclude_slow_protocols()
            .map_err(|e| e.into_port_error(&self.name))
    }

    /// The largest frame the kernel accepts for sending: the MTU plus the
    /// Ethernet header, plus one tag for 802.1Q frames (the kernel's rule);
    /// a GSO frame up to 64 KiB.
    #[inline]
    fn max_tx_len(&self, frame: &[u8], vnet: &VnetHdr) -> usize {
        if vnet.is_gso() {
            return GSO_MAX_FRAME;
        }
        let tagged = frame.len() >= ETH_HLEN && frame[12..14] == [0x81, 0x00];
        self.mtu + ETH_HLEN + if tagged { VLAN_HLEN } else { 0 }
    }

    /// Sends a frame too large for a tx slot outside the ring, after the
    /// frames queued before it.
    fn send_large(&mut self, frame: &[u8], vnet: &VnetHdr, counters: &mut PortCounters) -> bool {
        self.flush(counters);
        match self.ring.send_direct(frame, vnet) {
            Ok(()) => {
                counters.count_tx(frame.len());
                true
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                counters.count_drop(DropReason::TxRingFull);
                false
            }
            Err(_) => {
                counters.count_drop(DropReason::TxError);
                false
            }
        }
    }

    /// Takes back every slot the kernel has not taken: walking back from
    /// the last one filled over SEND_REQUEST slots, and the WRONG_FORMAT
    /// slot the kernel stopped at, if any. Those are contiguous and start at
    /// the kernel's tx head, so `tx_next` rewinds to it. Returns how many.
    fn reclaim_pending(&mut self) -> u64 {
        let n = self.tx_frames;
        let mut reclaimed = 0;
        for _ in 0..n {
            let prev = (self.tx_next + n - 1) % n;
            let status = self.ring.tx_status(prev);
            if status != libc::TP_STATUS_SEND_REQUEST && status != libc::TP_STATUS_WRONG_FORMAT {
                break;
            }
            self.ring.tx_reclaim(prev);
            self.tx_next = prev;
            reclaimed += 1;
            if status == libc::TP_STATUS_WRONG_FORMAT {
                break;
            }
        }
        reclaimed
    }

    /// Queues `frames` in the tx ring, each behind its header from `hdrs`
    /// (plain where `hdrs` has none).
    fn send(&mut self, frames: &[&[u8]], hdrs: &[VnetHdr], counters: &mut PortCounters) -> usize {
        let mut sent = 0;
        let plain = VnetHdr::default();
        for (i, frame) in frames.iter().enumerate() {
            let vnet = hdrs.get(i).map_or(plain, VnetHdr::for_tx);
            if frame.len() > self.max_tx_len(frame, &vnet) {
                counters.count_drop(DropReason::TxTooBig);
                continue;
            }
            if frame.len() < ETH_HLEN {
                // The kernel would refuse it and stop the ring at its slot.
                counters.count_drop(DropReason::TxError);
                continue;
            }
            if frame.len() > self.ring.tx_room() {
                sent += usize::from(self.send_large(frame, &vnet, counters));
                continue;
            }
            match self.ring.tx_status(self.tx_next) {
                libc::TP_STATUS_AVAILABLE => {}
                // Refused by the kernel earlier and not reclaimed: count it
                // and reuse the slot.
                libc::TP_STATUS_WRONG_FORMAT => counters.count_drop(DropReason::TxError),
                // SEND_REQUEST or SENDING: the ring is full; so is it for
                // the rest of the burst.
                _ => {
                    counters.count_drops(DropReason::TxRingFull, (frames.len() - i) as u64);
                    break;
                }
            }
            if self.ring.tx_put(self.tx_next, frame, &vnet) {
                counters.count_tx(frame.len());
                self.tx_next = (self.tx_next + 1) % self.tx_frames;
                self.tx_pending = true;
                sent += 1;
            } else {
                counters.count_drop(DropReason::TxError);
            }
        }
        sent
    }

    /// Whether the last slot filled still waits for the kernel.
    fn last_still_requested(&self) -> bool {
        let last = (self.tx_next + self.tx_frames - 1) % self.tx_frames;
        self.ring.tx_status(last) == libc::TP_STATUS_SEND_REQUEST
    }
}

/// Copies a received frame into `buf`, putting a stripped VLAN tag back
/// after the MAC addresses. Returns the frame length, or why it is dropped.
#[inline]
fn copy_rx(f: &RxFrame<'_>, buf: &mut PacketBuf) -> Result<usize, DropReason> {
    if f.status & libc::TP_STATUS_COPY != 0 || (f.data.len() as u64) < u64::from(f.len) {
        return Err(DropReason::RxTruncated);
    }
    let data = f.data;
    let out = buf.rx_area();
    let len = if f.status & libc::TP_STATUS_VLAN_VALID != 0 {
        let tpid = if f.status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
            f.vlan_tpid
        } else {
            0x8100
        };
        let len = data.len() + VLAN_HLEN;
        if len > out.len() {
            return Err(DropReason::RxTruncated);
        }
        let macs = data.len().min(12);
        out[..macs].copy_from_slice(&data[..macs]);
        out[macs..macs + 2].copy_from_slice(&tpid.to_be_bytes());
        out[macs + 2..macs + 4].copy_from_slice(&f.vlan_tci.to_be_bytes());
        out[macs + 4..len].copy_from_slice(&data[macs..]);
        len
    } else {
        if data.len() > out.len() {
            return Err(DropReason::RxTruncated);
        }
        out[..data.len()].copy_from_slice(data);
        data.len()
    };
    buf.set_len(len);
    let mut vnet = f.vnet;
    if f.status & libc::TP_STATUS_VLAN_VALID != 0 {
        // The kernel's offsets count without the tag put back above.
        vnet.shift(12, VLAN_HLEN, true);
    }
    offload::check_rx(buf.frame(), &mut vnet)?;
    buf.meta.offload = vnet;
    Ok(len)
}

impl Port for AfPacketPort {
    fn kind(&self) -> PortKind {
        PortKind::Afpacket
    }

    fn iface(&self) -> &str {
        &self.name
    }

    fn rx_burst(&mut self, batch: &mut Batch, counters: &mut PortCounters) -> usize {
        let mut got = 0;
        while let Some(buf) = batch.slot() {
            let Some(frame) = self.ring.rx_frame(self.rx_next) else {
                break;
            };
            let copied = copy_rx(&frame, buf);
            self.ring.rx_release(self.rx_next);
            self.rx_next = (self.rx_next + 1) % self.rx_frames;
            match copied {
                Ok(len) => {
                    batch.commit();
                    counters.count_rx(len);
                    got += 1;
                }
                Err(reason) => counters.count_drop(reason),
            }
        }
        if got == 0 {
            self.idle_polls += 1;
            if self.idle_polls >= IDLE_POLLS_BEFORE_ERROR_CHECK {
                self.idle_polls = 0;
                let _ = self.ring.take_error();
            }
        } else {
            self.idle_polls = 0;
        }
        got
    }

    fn tx_burst(&mut self, frames: &[&[u8]], counters: &mut PortCounters) -> usize {
        self.send(frames, &[], counters)
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
        self.send(frames, hdrs, counters)
    }

    /// Kicks the kernel once if frames wait. What the kernel does with the
    /// ring when `sendto` fails (net/packet/af_packet.c, tpacket_snd):
    /// - EAGAIN (socket send buffer full) and ENOBUFS (qdisc or driver
    ///   dropped the skb): the slot at its head is set back to SEND_REQUEST
    ///   and its head stays; the frames go out on a later kick, so they stay
    ///   pending and the next flush kicks again.
    /// - ENETDOWN/ENXIO (link down or gone): nothing is touched.
    /// - A frame it refuses (EMSGSIZE, EINVAL): that slot becomes
    ///   WRONG_FORMAT and its head stays there, which would stop the ring
    ///   for good, since the kernel only ever sends from its head.
    ///
    /// For the last two (and any other error) the port takes back every
    /// pending slot, counts each frame as `TxError` (at least one error per
    /// failed flush), and rewinds to the kernel's head, so the ring never
    /// wedges. A sendto that succeeds may still leave frames behind (the
    /// send buffer filled midway): they stay pending too.
    fn flush(&mut self, counters: &mut PortCounters) {
        if !self.tx_pending {
            return;
        }
        match self.ring.kick() {
            Ok(()) => self.tx_pending = self.last_still_requested(),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::ENOBUFS)) => {
                self.tx_pending = self.last_still_requested();
            }
            Err(_) => {
                let lost = self.reclaim_pending();
                counters.count_drops(DropReason::TxError, lost.max(1));
                self.tx_pending = false;
            }
        }
    }

    fn readiness_fd(&self) -> Option<RawFd> {
        Some(self.ring.fd())
    }

    /// Counts what the kernel dropped because the rx ring was full: those
    /// frames never reach `rx_burst`, and would vanish without a counter.
    fn tick(&mut self, _now: std::time::Duration, counters: &mut PortCounters) {
        if let Ok(n) = self.ring.take_rx_drops() {
            counters.count_drops(DropReason::RxRingFull, u64::from(n));
        }
    }
}

#[cfg(test)]
mod tests;
