//! One AF_XDP socket (XSK) with its own UMEM: the frame memory, registered
//! with the socket, and the fill, completion, rx and tx rings mapped from it
//! (Documentation/networking/af_xdp.rst).
//!
//! Frame ownership: a UMEM chunk (one frame) belongs to the kernel from the
//! moment its address is on the fill ring (rx) or tx ring until the address
//! comes back on the rx ring or completion ring. `Umem::frame` and
//! `Umem::frame_mut` hand out slices of a chunk only by address, bounds
//! checked; the caller (the port) keeps track of which chunks are its own
//! and lends them out only while it owns them.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;

use super::xsk_ring::{Consumer, Mapping, Producer, RingLayout};
use super::{getsockopt_fd, setsockopt, SysError, SysResult};

/// Offset the kernel puts a received frame at inside its chunk in copy
/// mode (XDP_PACKET_HEADROOM, include/uapi/linux/bpf.h), with no UMEM
/// headroom of ours.
pub const XDP_PACKET_HEADROOM: u32 = 256;

/// Sizes of one socket's UMEM and rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XskGeometry {
    /// Bytes per UMEM chunk: a power of two, 2048 to the page size.
    pub frame_size: u32,
    /// Chunks lent to the kernel for receiving; the fill and rx rings have
    /// this many entries (a power of two).
    pub rx_frames: u32,
    /// Chunks for transmitting; the tx and completion rings have this many
    /// entries (a power of two).
    pub tx_frames: u32,
}

impl XskGeometry {
    pub fn umem_len(&self) -> usize {
        self.frame_size as usize * (self.rx_frames + self.tx_frames) as usize
    }

    /// Address of chunk `i`: rx chunks first, then tx chunks.
    pub fn chunk_addr(&self, i: u32) -> u64 {
        u64::from(i) * u64::from(self.frame_size)
    }
}

/// How the socket was bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMode {
    Copy,
    ZeroCopy,
}

/// The frame memory shared with the kernel.
pub struct Umem {
    map: Mapping,
    frame_size: u32,
}

// SAFETY: the mapping is owned by this value alone (nothing else holds its
// address but the kernel, through the socket that owns this UMEM), so moving
// it to another thread is sound. It is not `Sync`.
unsafe impl Send for Umem {}

impl Umem {
    fn new(geo: &XskGeometry) -> SysResult<Umem> {
        let len = geo.umem_len();
        // SAFETY: a fresh anonymous private mapping; no existing memory is
        // affected.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(SysError::last("allocate the UMEM"));
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| SysError::last("map the UMEM"))?;
        Ok(Umem {
            map: Mapping { ptr, len },
            frame_size: geo.frame_size,
        })
    }

    /// Start and end of `len` bytes at `addr`, if they lie inside one chunk.
    #[inline]
    fn range(&self, addr: u64, len: usize) -> Option<usize> {
        let start = usize::try_from(addr).ok()?;
        let size = self.frame_size as usize;
        let chunk_end = (start / size).checked_add(1)?.checked_mul(size)?;
        (start.checked_add(len)? <= chunk_end.min(self.map.len)).then_some(start)
    }

    /// The `len` bytes at `addr` (a received frame), if inside one chunk.
    /// The caller must own the chunk (taken from the rx ring and not yet
    /// given back); the borrow of `self` keeps it from being given back
    /// meanwhile.
    #[inline]
    pub fn frame(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let start = self.range(addr, len)?;
        // SAFETY: in bounds (checked by `range`); the chunk is ours, so the
        // kernel does not write it while the slice lives.
        Some(unsafe { std::slice::from_raw_parts(self.map.ptr.as_ptr().add(start), len) })
    }

    /// The `len` bytes at `addr` to write a frame to be sent, if inside one
    /// chunk. The caller must own the chunk (a free tx chunk).
    #[inline]
    pub fn frame_mut(&mut self, addr: u64, len: usize) -> Option<&mut [u8]> {
        let start = self.range(addr, len)?;
        // SAFETY: in bounds (checked by `range`); the chunk is ours, so the
        // kernel neither reads nor writes it while the slice lives.
        Some(unsafe { std::slice::from_raw_parts_mut(self.map.ptr.as_ptr().add(start), len) })
    }
}

/// A bound AF_XDP socket and its rings.
pub struct XskSocket {
    pub fill: Producer<u64>,
    pub completion: Consumer<u64>,
    pub rx: Consumer<libc::xdp_desc>,
    pub tx: Producer<libc::xdp_desc>,
    // Dropped after the rings (unmapped first) and before the UMEM (the
    // kernel keeps its own page references until the socket closes anyway).
    fd: OwnedFd,
    pub umem: Umem,
    pub mode: BindMode,
}

impl XskSocket {
    /// Creates a socket on queue `queue` of `ifindex` with a fresh UMEM of
    /// `geo`, every ring mapped, bound with XDP_USE_NEED_WAKEUP; in
    /// zero-copy mode when `try_zerocopy` and the driver takes it, else in
    /// copy mode. The fill ring starts empty.
    pub fn open(
        ifindex: u32,
        queue: u32,
        geo: &XskGeometry,
        try_zerocopy: bool,
    ) -> SysResult<XskSocket> {
        if try_zerocopy {
            // A failed bind leaves the socket half set up: start afresh for
            // the copy-mode attempt.
            if let Ok(sock) = Self::open_with(ifindex, queue, geo, BindMode::ZeroCopy) {
                return Ok(sock);
            }
        }
        Self::open_with(ifindex, queue, geo, BindMode::Copy)
    }

    fn open_with(
        ifindex: u32,
        queue: u32,
        geo: &XskGeometry,
        mode: BindMode,
    ) -> SysResult<XskSocket> {
        // SAFETY: plain socket(2) call with constant arguments.
        let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(SysError::last("open an AF_XDP socket"));
        }
        // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let umem = Umem::new(geo)?;
        let reg = libc::xdp_umem_reg {
            addr: umem.map.ptr.as_ptr() as u64,
            len: umem.map.len as u64,
            chunk_size: geo.frame_size,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        let sol = libc::SOL_XDP;
        setsockopt(&fd, sol, libc::XDP_UMEM_REG, &reg, "register the UMEM")?;
        let (rx_n, tx_n) = (geo.rx_frames as libc::c_int, geo.tx_frames as libc::c_int);
        let what = "size the fill ring";
        setsockopt(&fd, sol, libc::XDP_UMEM_FILL_RING, &rx_n, what)?;
        let what = "size the completion ring";
        setsockopt(&fd, sol, libc::XDP_UMEM_COMPLETION_RING, &tx_n, what)?;
        setsockopt(&fd, sol, libc::XDP_RX_RING, &rx_n, "size the rx ring")?;
        setsockopt(&fd, sol, libc::XDP_TX_RING, &tx_n, "size the tx ring")?;
        let off = mmap_offsets(&fd)?;

        let desc = std::mem::size_of::<libc::xdp_desc>();
        let addr = std::mem::size_of::<u64>();
        let fill_map = map_ring(&fd, &off.fr, geo.rx_frames, addr, pgoff_fill())?;
        let comp_map = map_ring(&fd, &off.cr, geo.tx_frames, addr, pgoff_completion())?;
        let rx_map = map_ring(&fd, &off.rx, geo.rx_frames, desc, libc::XDP_PGOFF_RX_RING)?;
        let tx_map = map_ring(&fd, &off.tx, geo.tx_frames, desc, libc::XDP_PGOFF_TX_RING)?;
        // SAFETY: each of the four mappings is the ring the offsets
        // describe, of the size set above, as the kernel laid it out for
        // this socket.
        let fill = unsafe { Producer::new(fill_map, &layout(&off.fr), geo.rx_frames) };
        // SAFETY: as above.
        let completion = unsafe { Consumer::new(comp_map, &layout(&off.cr), geo.tx_frames) };
        // SAFETY: as above.
        let rx = unsafe { Consumer::new(rx_map, &layout(&off.rx), geo.rx_frames) };
        // SAFETY: as above.
        let tx = unsafe { Producer::new(tx_map, &layout(&off.tx), geo.tx_frames) };

        let mode_flag = match mode {
            BindMode::Copy => libc::XDP_COPY,
            BindMode::ZeroCopy => libc::XDP_ZEROCOPY,
        };
        let addr = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: libc::XDP_USE_NEED_WAKEUP | mode_flag,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: 0,
        };
        // SAFETY: `addr` is a valid sockaddr_xdp and the length matches it.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_xdp).cast(),
                std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(SysError::last("bind the AF_XDP socket to the queue"));
        }
        Ok(XskSocket {
            fill,
            completion,
            rx,
            tx,
            fd,
            umem,
            mode,
        })
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Asks the kernel to send what the tx ring holds, without waiting
    /// (in copy mode the kernel sends only inside this call).
    pub fn kick_tx(&self) -> io::Result<()> {
        super::kick_tx_ring(std::os::fd::AsFd::as_fd(&self.fd))
    }

    /// Wakes the driver to look at the fill ring again (zero-copy drivers
    /// stop when it ran dry and set NEED_WAKEUP on it).
    pub fn wake_rx(&self) {
        // SAFETY: recvfrom with no buffer: only the wake-up side effect.
        unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
    }

    /// The socket's XDP_STATISTICS (cumulative since it was created).
    pub fn statistics(&self) -> io::Result<libc::xdp_statistics> {
        let mut stats = libc::xdp_statistics {
            rx_dropped: 0,
            rx_invalid_descs: 0,
            tx_invalid_descs: 0,
            rx_ring_full: 0,
            rx_fill_ring_empty_descs: 0,
            tx_ring_empty_descs: 0,
        };
        getsockopt_fd(
            self.fd.as_fd(),
            libc::SOL_XDP,
            libc::XDP_STATISTICS,
            &mut stats,
        )?;
        Ok(stats)
    }
}

fn pgoff_fill() -> libc::off_t {
    libc::XDP_UMEM_PGOFF_FILL_RING as libc::off_t
}

fn pgoff_completion() -> libc::off_t {
    libc::XDP_UMEM_PGOFF_COMPLETION_RING as libc::off_t
}

fn layout(off: &libc::xdp_ring_offset) -> RingLayout {
    RingLayout {
        producer: off.producer as usize,
        consumer: off.consumer as usize,
        flags: off.flags as usize,
        desc: off.desc as usize,
    }
}

fn mmap_offsets(fd: &OwnedFd) -> SysResult<libc::xdp_mmap_offsets> {
    let zero = libc::xdp_ring_offset {
        producer: 0,
        consumer: 0,
        desc: 0,
        flags: 0,
    };
    let mut off = libc::xdp_mmap_offsets {
        rx: zero,
        tx: zero,
        fr: zero,
        cr: zero,
    };
    let len = getsockopt_fd(fd.as_fd(), libc::SOL_XDP, libc::XDP_MMAP_OFFSETS, &mut off).map_err(
        |source| SysError {
            what: "read the ring offsets (XDP_MMAP_OFFSETS)",
            source,
        },
    )?;
    if len != std::mem::size_of::<libc::xdp_mmap_offsets>() {
        // Kernels before 5.4 have no flags word (no need_wakeup either).
        return Err(SysError {
            what: "read the ring offsets (XDP_MMAP_OFFSETS)",
            source: io::Error::new(io::ErrorKind::Unsupported, "kernel older than 5.4"),
        });
    }
    Ok(off)
}

/// Maps one ring: its indexes and `entries` descriptors of `entry_size`.
fn map_ring(
    fd: &OwnedFd,
    off: &libc::xdp_ring_offset,
    entries: u32,
    entry_size: usize,
    pgoff: libc::off_t,
) -> SysResult<Mapping> {
    let len = off.desc as usize + entries as usize * entry_size;
    // SAFETY: a fresh shared mapping of one of the socket's rings; no
    // existing memory is affected.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            fd.as_raw_fd(),
            pgoff,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(SysError::last("map an AF_XDP ring"));
    }
    let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| SysError::last("map an AF_XDP ring"))?;
    Ok(Mapping { ptr, len })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_laid_out_in_order() {
        let g = XskGeometry {
            frame_size: 4096,
            rx_frames: 4,
            tx_frames: 2,
        };
        assert_eq!(g.umem_len(), 6 * 4096);
        assert_eq!(g.chunk_addr(5), 5 * 4096);
    }

    #[test]
    fn umem_slices_stay_inside_one_chunk() {
        let g = XskGeometry {
            frame_size: 2048,
            rx_frames: 2,
            tx_frames: 2,
        };
        let mut u = Umem::new(&g).unwrap();
        assert_eq!(u.frame(0, 2048).map(<[u8]>::len), Some(2048));
        assert!(u.frame(100, 2048).is_none(), "crosses into the next chunk");
        assert!(u.frame(3 * 2048 + 10, 2038).is_some());
        assert!(u.frame(3 * 2048 + 10, 2039).is_none(), "past the end");
        assert!(u.frame(4 * 2048, 1).is_none());
        assert!(u.frame(u64::MAX, 1).is_none());
        u.frame_mut(2048, 3).unwrap().copy_from_slice(b"abc");
        assert_eq!(u.frame(2048, 3).unwrap(), b"abc");
    }
}
