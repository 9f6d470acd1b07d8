//! An AF_PACKET socket with TPACKET_V2 rx and tx rings in one mapping,
//! with PACKET_VNET_HDR: every frame in either ring sits behind a 10-byte
//! virtio-net header carrying its offload requests (see `wire::vnet`).
//!
//! Ownership protocol (Documentation/networking/packet_mmap.rst): each ring
//! slot starts with a `tpacket2_hdr` whose `tp_status` says who owns the
//! slot. rx: the kernel fills slots whose status is `TP_STATUS_KERNEL` and
//! hands them over by setting `TP_STATUS_USER`; we give them back by storing
//! `TP_STATUS_KERNEL`. tx: we fill `TP_STATUS_AVAILABLE` slots and hand them
//! over with `TP_STATUS_SEND_REQUEST`; during `sendto` the kernel turns them
//! into `TP_STATUS_SENDING`, and back to `TP_STATUS_AVAILABLE` when the skb
//! is freed (or `TP_STATUS_WRONG_FORMAT` if it refused the frame). Status
//! words are read with Acquire and written with Release, so the frame bytes
//! are visible before the hand-over. The methods below check the status
//! before they let a slice touch a slot, so no reference ever covers memory
//! the kernel may be writing.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{getsockopt_fd, setsockopt, SysError, SysResult};
use crate::wire::vnet::{VnetHdr, VNET_HDR_LEN};

/// Offset of the frame in a tx slot: TPACKET_ALIGN(sizeof(tpacket2_hdr)).
/// (Without PACKET_TX_HAS_OFF the kernel expects the frame right there.)
pub const TX_DATA_OFFSET: usize =
    (std::mem::size_of::<libc::tpacket2_hdr>() + libc::TPACKET_ALIGNMENT - 1)
        & !(libc::TPACKET_ALIGNMENT - 1);

/// Upper bound of the kernel's offset of the MAC header in an rx slot for
/// Ethernet: TPACKET_ALIGN(TPACKET2_HDRLEN + 16) plus the virtio-net header
/// (the kernel uses `netoff - maclen`, which is 76 for a 14-byte header).
pub const RX_HEADER_ROOM: usize = ((libc::TPACKET2_HDRLEN + 16 + libc::TPACKET_ALIGNMENT - 1)
    & !(libc::TPACKET_ALIGNMENT - 1))
    + VNET_HDR_LEN;

/// PACKET_IGNORE_OUTGOING (Linux 4.20): libc has it, named here so the
/// value the design relies on (23) is visible.
const PACKET_IGNORE_OUTGOING: libc::c_int = libc::PACKET_IGNORE_OUTGOING;

/// Frame and block sizes of the rings: rx slots hold the largest frame the
/// kernel may hand over (a 64 KiB GSO frame), tx slots the common case
/// (an MTU-sized frame); larger frames leave through `send_direct`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingGeometry {
    /// Bytes per rx slot, a multiple of 16 that divides `block_size`.
    pub frame_size: u32,
    /// Bytes per rx kernel block, a multiple of the page size.
    pub block_size: u32,
    /// Slots in the rx ring, a multiple of the frames per block.
    pub rx_frames: u32,
    /// Bytes per tx slot, a multiple of 16 that divides `tx_block_size`.
    pub tx_frame_size: u32,
    /// Bytes per tx kernel block, a multiple of the page size.
    pub tx_block_size: u32,
    /// Slots in the tx ring, a multiple of the tx frames per block.
    pub tx_frames: u32,
}

impl RingGeometry {
    fn rx_request(&self) -> libc::tpacket_req {
        let per_block = self.block_size / self.frame_size;
        libc::tpacket_req {
            tp_block_size: self.block_size,
            tp_block_nr: self.rx_frames / per_block,
            tp_frame_size: self.frame_size,
            tp_frame_nr: self.rx_frames,
        }
    }

    fn tx_request(&self) -> libc::tpacket_req {
        let per_block = self.tx_block_size / self.tx_frame_size;
        libc::tpacket_req {
            tp_block_size: self.tx_block_size,
            tp_block_nr: self.tx_frames / per_block,
            tp_frame_size: self.tx_frame_size,
            tp_frame_nr: self.tx_frames,
        }
    }

    fn rx_bytes(&self) -> usize {
        self.frame_size as usize * self.rx_frames as usize
    }

    fn tx_bytes(&self) -> usize {
        self.tx_frame_size as usize * self.tx_frames as usize
    }
}

/// A received frame, borrowed from its rx slot.
#[derive(Debug)]
pub struct RxFrame<'a> {
    /// The slot's status word (TP_STATUS_USER plus flags).
    pub status: u32,
    /// Length of the frame on the wire (without a stripped VLAN tag).
    pub len: u32,
    /// The captured bytes, starting at the MAC header (at most `len`).
    pub data: &'a [u8],
    pub vlan_tci: u16,
    pub vlan_tpid: u16,
    /// The offload requests from the virtio-net header in front of `data`;
    /// offsets count from `data`'s first byte (without the stripped tag).
    pub vnet: VnetHdr,
}

/// The shared mapping of both rings.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned; no reference
        // into the mapping outlives `PacketRing`, which owns this.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// An AF_PACKET socket with virtio-net headers that receives nothing
/// (protocol 0, never bound), for `send_direct`.
fn open_direct() -> SysResult<OwnedFd> {
    let flags = libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: plain socket(2) call with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_PACKET, flags, 0) };
    if fd < 0 {
        return Err(SysError::last("open an AF_PACKET socket"));
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    let what = "set PACKET_VNET_HDR";
    setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_VNET_HDR, &one, what)?;
    Ok(fd)
}

/// A bound AF_PACKET socket and its mapped rx and tx rings.
pub struct PacketRing {
    map: Mapping,
    geo: RingGeometry,
    // Declared after `map`, so the rings are unmapped before the socket
    // closes (closing also drops the PROMISC membership).
    fd: OwnedFd,
    /// A second socket without rings, for frames larger than a tx slot: a
    /// socket with a tx ring sends only from its ring.
    direct: OwnedFd,
    ifindex: u32,
}

// SAFETY: the mapping is owned by this value alone (nothing else holds its
// address) and the kernel's side of it is tied to `fd`, also owned here, so
// moving the whole to another thread is sound. It is not `Sync`.
unsafe impl Send for PacketRing {}

impl PacketRing {
    /// Opens the socket, sets TPACKET_V2 and IGNORE_OUTGOING, sets up and
    /// maps both rings, binds to `ifindex` for every protocol and joins
    /// promiscuous mode. Nothing is received before the bind (protocol 0).
    pub fn open(ifindex: u32, geo: RingGeometry) -> SysResult<PacketRing> {
        let flags = libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        // SAFETY: plain socket(2) call with constant arguments.
        let fd = unsafe { libc::socket(libc::AF_PACKET, flags, 0) };
        if fd < 0 {
            return Err(SysError::last("open an AF_PACKET socket"));
        }
        // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };

        let version = libc::tpacket_versions::TPACKET_V2 as libc::c_int;
        let sol = libc::SOL_PACKET;
        setsockopt(&fd, sol, libc::PACKET_VERSION, &version, "set TPACKET_V2")?;
        let one: libc::c_int = 1;
        // Before the rings exist (the kernel refuses it after).
        let what = "set PACKET_VNET_HDR";
        setsockopt(&fd, sol, libc::PACKET_VNET_HDR, &one, what)?;
        let what = "set PACKET_IGNORE_OUTGOING (needs Linux 4.20)";
        setsockopt(&fd, sol, PACKET_IGNORE_OUTGOING, &one, what)?;
        // No PACKET_QDISC_BYPASS: frames go through the qdisc and
        // dev_queue_xmit_nit, so `tcpdump` on the interface still sees what
        // the switch sends and tc shaping applies; the bypass is faster but
        // would hide both.
        // No PACKET_LOSS either: a refused frame stops the kernel at its slot
        // (TP_STATUS_WRONG_FORMAT) and sendto reports the error, which the
        // port counts and recovers from (see `AfPacketPort::flush`).
        let rx_req = geo.rx_request();
        setsockopt(
            &fd,
            sol,
            libc::PACKET_RX_RING,
            &rx_req,
            "set up the rx ring",
        )?;
        let tx_req = geo.tx_request();
        setsockopt(
            &fd,
            sol,
            libc::PACKET_TX_RING,
            &tx_req,
            "set up the tx ring",
        )?;
        // Let the whole tx ring be in flight at once; best effort (FORCE
        // needs CAP_NET_ADMIN, the plain option is capped by wmem_max).
        let sndbuf = geo.tx_bytes() as libc::c_int;
        let sol_sock = libc::SOL_SOCKET;
        if setsockopt(&fd, sol_sock, libc::SO_SNDBUFFORCE, &sndbuf, "").is_err() {
            let _ = setsockopt(&fd, sol_sock, libc::SO_SNDBUF, &sndbuf, "");
        }

        let len = geo.rx_bytes() + geo.tx_bytes();
        // SAFETY: a fresh shared mapping of the socket's rings (rx first,
        // then tx, as the kernel lays them out); no existing memory is
        // affected.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(SysError::last("map the packet rings"));
        }
        let Some(ptr) = NonNull::new(ptr.cast::<u8>()) else {
            return Err(SysError::last("map the packet rings"));
        };
        let ring = PacketRing {
            map: Mapping { ptr, len },
            geo,
            fd,
            direct: open_direct()?,
            ifindex,
        };

        // SAFETY: `sockaddr_ll` is plain old data; all-zero is valid.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        addr.sll_ifindex = ifindex as libc::c_int;
        // SAFETY: `addr` is a valid sockaddr_ll and the length matches it.
        let rc = unsafe {
            libc::bind(
                ring.fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(SysError::last("bind the AF_PACKET socket"));
        }

        // SAFETY: `packet_mreq` is plain old data; all-zero is valid.
        let mut mreq: libc::packet_mreq = unsafe { std::mem::zeroed() };
        mreq.mr_ifindex = ifindex as libc::c_int;
        mreq.mr_type = libc::PACKET_MR_PROMISC as u16;
        let what = "enable promiscuous mode (PACKET_ADD_MEMBERSHIP)";
        setsockopt(&ring.fd, sol, libc::PACKET_ADD_MEMBERSHIP, &mreq, what)?;
        Ok(ring)
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Leaves slow protocols frames out of the rx ring (a bond member's
    /// side channel takes them).
    pub fn exclude_slow_protocols(&self) -> SysResult<()> {
        super::slow::exclude_slow_protocols(&self.fd)
    }

    pub fn geometry(&self) -> RingGeometry {
        self.geo
    }

    /// Frame bytes a tx slot holds after its header and the virtio-net
    /// header.
    pub fn tx_room(&self) -> usize {
        self.geo.tx_frame_size as usize - TX_DATA_OFFSET - VNET_HDR_LEN
    }

    /// Start of rx slot `i` (taken modulo the ring size).
    fn rx_slot(&self, i: u32) -> *mut u8 {
        let i = (i % self.geo.rx_frames) as usize;
        // SAFETY: i < rx_frames, so the offset is inside the rx part of the
        // mapping.
        unsafe { self.map.ptr.as_ptr().add(i * self.geo.frame_size as usize) }
    }

    /// Start of tx slot `i` (taken modulo the ring size).
    fn tx_slot(&self, i: u32) -> *mut u8 {
        let i = (i % self.geo.tx_frames) as usize;
        let offset = self.geo.rx_bytes() + i * self.geo.tx_frame_size as usize;
        // SAFETY: the tx ring follows the rx ring in the mapping and
        // i < tx_frames, so the offset is inside the mapping.
        unsafe { self.map.ptr.as_ptr().add(offset) }
    }

    /// The status word of the slot starting at `slot` (from `rx_slot` or
    /// `tx_slot`), borrowed for as long as the mapping is.
    fn status(&self, slot: *mut u8) -> &AtomicU32 {
        // SAFETY: `slot` starts a slot of the mapping, which lives as long as
        // `self` (frame-aligned, so 4-byte aligned); `tp_status` is its first
        // field, accessed atomically by us and with READ_ONCE/WRITE_ONCE by
        // the kernel.
        unsafe { &*slot.cast::<AtomicU32>() }
    }

    /// The frame in rx slot `i` if the kernel has handed it to user space.
    #[inline]
    pub fn rx_frame(&self, i: u32) -> Option<RxFrame<'_>> {
        let slot = self.rx_slot(i);
        let status = self.status(slot).load(Ordering::Acquire);
        if status & libc::TP_STATUS_USER == 0 {
            return None;
        }
        // SAFETY: the slot is ours until `rx_release` (status USER, read with
        // Acquire after the kernel's Release-ordered hand-over), so its
        // header is initialised and not written concurrently.
        let hdr = unsafe { std::ptr::read(slot.cast::<libc::tpacket2_hdr>()) };
        let frame_size = self.geo.frame_size as usize;
        let start = (hdr.tp_mac as usize).min(frame_size);
        let snap = (hdr.tp_snaplen as usize).min(frame_size - start);
        // SAFETY: `start + snap <= frame_size`, inside this slot, which the
        // kernel does not touch while it is ours; the borrow of `self` keeps
        // `rx_release` (which needs `&mut self`) from running meanwhile.
        let data = unsafe { std::slice::from_raw_parts(slot.add(start), snap) };
        let vnet = match start.checked_sub(VNET_HDR_LEN) {
            Some(at) => {
                // SAFETY: the header's 10 bytes end where the frame starts,
                // inside this slot, which is ours (as above).
                let bytes = unsafe { std::slice::from_raw_parts(slot.add(at), VNET_HDR_LEN) };
                VnetHdr::parse(bytes).unwrap_or_default()
            }
            None => VnetHdr::default(),
        };
        Some(RxFrame {
            vnet,
            status,
            len: hdr.tp_len,
            data,
            vlan_tci: hdr.tp_vlan_tci,
            vlan_tpid: hdr.tp_vlan_tpid,
        })
    }

    /// Gives rx slot `i` back to the kernel (only if it is ours).
    #[inline]
    pub fn rx_release(&mut self, i: u32) {
        let status = self.status(self.rx_slot(i));
        if status.load(Ordering::Relaxed) & libc::TP_STATUS_USER != 0 {
            status.store(libc::TP_STATUS_KERNEL, Ordering::Release);
        }
    }

    /// The status of tx slot `i`.
    #[inline]
    pub fn tx_status(&self, i: u32) -> u32 {
        self.status(self.tx_slot(i)).load(Ordering::Acquire)
    }

    /// Copies `frame` behind its virtio-net header `vnet` into tx slot `i`
    /// and requests its transmission. Does nothing and returns false unless
    /// the slot is ours (AVAILABLE or WRONG_FORMAT) and the frame fits.
    #[inline]
    pub fn tx_put(&mut self, i: u32, frame: &[u8], vnet: &VnetHdr) -> bool {
        let slot = self.tx_slot(i);
        let s = self.status(slot).load(Ordering::Acquire);
        if (s != libc::TP_STATUS_AVAILABLE && s != libc::TP_STATUS_WRONG_FORMAT)
            || frame.len() > self.tx_room()
        {
            return false;
        }
        let hdr = slot.cast::<libc::tpacket2_hdr>();
        let vnet = vnet.to_bytes();
        let len = (VNET_HDR_LEN + frame.len()) as u32;
        // SAFETY: the slot is ours (AVAILABLE: the kernel freed its skb;
        // WRONG_FORMAT: the kernel gave up on it), so nothing reads it
        // concurrently; header and frame fit after the slot header
        // (`tx_room` leaves room for the virtio-net header).
        unsafe {
            let data = slot.add(TX_DATA_OFFSET);
            std::ptr::copy_nonoverlapping(vnet.as_ptr(), data, VNET_HDR_LEN);
            std::ptr::copy_nonoverlapping(frame.as_ptr(), data.add(VNET_HDR_LEN), frame.len());
            std::ptr::addr_of_mut!((*hdr).tp_len).write(len);
            std::ptr::addr_of_mut!((*hdr).tp_snaplen).write(len);
        }
        self.status(slot)
            .store(libc::TP_STATUS_SEND_REQUEST, Ordering::Release);
        true
    }

    /// Takes back tx slot `i` if it waits for sending or was refused
    /// (SEND_REQUEST or WRONG_FORMAT), making it AVAILABLE. Returns whether
    /// it did. The kernel reads SEND_REQUEST slots only inside `kick`, which
    /// runs on this thread, so between kicks they are safe to take back.
    pub fn tx_reclaim(&mut self, i: u32) -> bool {
        let status = self.status(self.tx_slot(i));
        let s = status.load(Ordering::Acquire);
        if s == libc::TP_STATUS_SEND_REQUEST || s == libc::TP_STATUS_WRONG_FORMAT {
            status.store(libc::TP_STATUS_AVAILABLE, Ordering::Release);
            true
        } else {
            false
        }
    }

    /// Sends one frame behind its virtio-net header at once, outside the
    /// ring (for frames larger than a tx slot: GSO frames). The caller
    /// kicks the ring first so frames keep their order.
    pub fn send_direct(&self, frame: &[u8], vnet: &VnetHdr) -> io::Result<()> {
        let vnet = vnet.to_bytes();
        let mut iov = [
            libc::iovec {
                iov_base: vnet.as_ptr() as *mut libc::c_void,
                iov_len: VNET_HDR_LEN,
            },
            libc::iovec {
                iov_base: frame.as_ptr() as *mut libc::c_void,
                iov_len: frame.len(),
            },
        ];
        // SAFETY: `sockaddr_ll` is plain old data; all-zero is valid.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = self.ifindex as libc::c_int;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(frame.get(..6).unwrap_or(&[0; 6]));
        // SAFETY: `msghdr` is plain old data; all-zero is valid.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&mut addr as *mut libc::sockaddr_ll).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = iov.len();
        // SAFETY: every pointer in `msg` (address, iovecs and the buffers
        // they describe) is valid for the call; the kernel only reads them.
        let rc = unsafe { libc::sendmsg(self.direct.as_raw_fd(), &msg, libc::MSG_DONTWAIT) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Asks the kernel to send the requested tx slots, without waiting.
    pub fn kick(&self) -> io::Result<()> {
        super::kick_tx_ring(std::os::fd::AsFd::as_fd(&self.fd))
    }

    /// Reads and clears the socket's pending error (SO_ERROR), e.g. the
    /// ENETDOWN the kernel records when the interface goes down, which
    /// otherwise keeps the socket signalling POLLERR.
    /// Frames the kernel dropped since the last call because the rx ring
    /// had no free slot (`tp_drops` of PACKET_STATISTICS, which the kernel
    /// resets when it is read).
    pub fn take_rx_drops(&self) -> io::Result<u32> {
        let mut stats = libc::tpacket_stats {
            tp_packets: 0,
            tp_drops: 0,
        };
        // The struct PACKET_STATISTICS fills for TPACKET_V2.
        getsockopt_fd(
            self.fd.as_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            &mut stats,
        )?;
        Ok(stats.tp_drops)
    }

    /// Joins a fanout group that spreads received frames over its sockets
    /// by flow hash (each flow to one socket, in order). `group` None: a
    /// new group with an id no other group in the namespace has; returns
    /// the id, for the other sockets to join with.
    pub fn join_fanout(&self, group: Option<u16>) -> SysResult<u16> {
        // The group's own receive hook replaces the sockets' ones, so their
        // PACKET_IGNORE_OUTGOING no longer applies: the group must be told
        // (Linux 4.20 too), or every frame the switch sends on the
        // interface would come back to it as received.
        let hash = (libc::PACKET_FANOUT_HASH | libc::PACKET_FANOUT_FLAG_IGNORE_OUTGOING) << 16;
        let arg = match group {
            Some(id) => hash | libc::c_uint::from(id),
            None => hash | (libc::PACKET_FANOUT_FLAG_UNIQUEID << 16),
        };
        let what = "join a PACKET_FANOUT group";
        setsockopt(&self.fd, libc::SOL_PACKET, libc::PACKET_FANOUT, &arg, what)?;
        if let Some(id) = group {
            return Ok(id);
        }
        // PACKET_FANOUT reads back id | type << 16.
        let mut got: libc::c_uint = 0;
        getsockopt_fd(
            self.fd.as_fd(),
            libc::SOL_PACKET,
            libc::PACKET_FANOUT,
            &mut got,
        )
        .map_err(|source| SysError {
            what: "read the PACKET_FANOUT group id",
            source,
        })?;
        Ok((got & 0xffff) as u16)
    }

    pub fn take_error(&self) -> Option<io::Error> {
        let mut err: libc::c_int = 0;
        match getsockopt_fd(self.fd.as_fd(), libc::SOL_SOCKET, libc::SO_ERROR, &mut err) {
            Err(e) => Some(e),
            Ok(_) if err == 0 => None,
            Ok(_) => Some(io::Error::from_raw_os_error(err)),
        }
    }
}
