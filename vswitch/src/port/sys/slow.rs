//! A side channel for slow protocols frames (LACP, marker: ethertype
//! 0x8809), so a bond's control traffic never waits behind data.
//!
//! A bond member's ring socket gets a classic BPF filter that leaves those
//! frames out, and a second, ringless packet socket bound to ETH_P_SLOW on
//! the member receives only them, in its own socket buffer. When the
//! datapath falls behind and the member's ring overflows, data frames are
//! lost (and counted); LACPDUs wait in the side socket until the next tick,
//! so an overloaded link does not flap.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::{setsockopt, SysError, SysResult};

const ETH_P_SLOW: u16 = libc::ETH_P_SLOW as u16;

/// Makes the packet socket `fd` drop slow protocols frames: load the
/// ethertype (offset 12 from the MAC header; a VLAN tag the NIC stripped
/// is not in line), return 0 (drop) for 0x8809, else keep everything.
pub fn exclude_slow_protocols(fd: &OwnedFd) -> SysResult<()> {
    let insn = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let mut program = [
        insn(libc::BPF_LD | libc::BPF_H | libc::BPF_ABS, 0, 0, 12),
        insn(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            0,
            1,
            u32::from(ETH_P_SLOW),
        ),
        insn(libc::BPF_RET | libc::BPF_K, 0, 0, 0),
        insn(libc::BPF_RET | libc::BPF_K, 0, 0, u32::MAX),
    ];
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    let what = "filter slow protocols out of the ring (SO_ATTACH_FILTER)";
    // The kernel copies the program during the call; `program` outlives it.
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog, what)
}

/// A packet socket that receives only the slow protocols frames of one
/// interface.
pub struct SlowSocket {
    fd: OwnedFd,
}

impl SlowSocket {
    pub fn open(ifindex: u32) -> SysResult<SlowSocket> {
        let flags = libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        let proto = libc::c_int::from(ETH_P_SLOW.to_be());
        // SAFETY: plain socket(2) call with constant arguments.
        let fd = unsafe { libc::socket(libc::AF_PACKET, flags, proto) };
        if fd < 0 {
            return Err(SysError::last("open the slow protocols socket"));
        }
        // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let one: libc::c_int = 1;
        let what = "set PACKET_IGNORE_OUTGOING on the slow protocols socket";
        setsockopt(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_IGNORE_OUTGOING,
            &one,
            what,
        )?;
        // SAFETY: `sockaddr_ll` is plain old data; all-zero is valid.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = ETH_P_SLOW.to_be();
        addr.sll_ifindex = ifindex as libc::c_int;
        // SAFETY: `addr` is a valid sockaddr_ll and the length matches it.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(SysError::last("bind the slow protocols socket"));
        }
        Ok(SlowSocket { fd })
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// One waiting frame into `buf` (its length), or `None` when none waits.
    pub fn recv(&self, buf: &mut [u8]) -> Option<io::Result<usize>> {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the call.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        if n >= 0 {
            return Some(Ok(n as usize));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock => None,
            io::ErrorKind::Interrupted => Some(Ok(0)),
            _ => Some(Err(e)),
        }
    }
}
