//! Syscall wrappers for the kernel port backends: the only unsafe code of
//! the crate.
//!
//! Everything here presents a safe interface to `tap.rs` and `afpacket.rs`:
//! file descriptors are `OwnedFd`s, the AF_PACKET ring is only reachable
//! through methods that check the slot's ownership first, and errors come
//! back as `io::Error` (or `SysError`, which names the failed step so the
//! control thread can say what went wrong).

#![allow(unsafe_code)]

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::PortError;

pub mod bpf;
pub mod cpu;
pub mod epoll;
pub mod mem;
pub mod netlink;
pub mod packet_ring;
pub mod slow;
#[cfg(test)]
pub mod test_util;
pub mod tun;
pub mod uring;
pub mod xdp;
pub mod xsk_ring;

/// A failed setup step: what was being done, and the kernel's answer.
#[derive(Debug)]
pub struct SysError {
    pub what: &'static str,
    pub source: io::Error,
}

pub type SysResult<T> = Result<T, SysError>;

impl SysError {
    /// The error of the last syscall, described by `what`.
    pub(crate) fn last(what: &'static str) -> SysError {
        SysError {
            what,
            source: io::Error::last_os_error(),
        }
    }

    /// Whether the kernel reported that the interface does not exist.
    pub fn is_no_device(&self) -> bool {
        matches!(self.source.raw_os_error(), Some(libc::ENODEV | libc::ENXIO))
    }

    /// The port error for this failure on `iface`.
    pub fn into_port_error(self, iface: &str) -> PortError {
        PortError::Os {
            what: self.what,
            iface: iface.to_string(),
            source: self.source,
        }
    }
}

/// An `ifreq` carrying `name` (already checked by `validate_ifname`, so it
/// fits with its NUL; longer names are cut, which makes the lookup fail).
fn ifreq_for(name: &str) -> libc::ifreq {
    // SAFETY: `ifreq` is plain old data (a name array and a union of
    // integers, sockaddrs and a pointer); all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *dst = src as libc::c_char;
    }
    req
}

/// The interface name the kernel wrote back into an `ifreq`.
fn ifreq_name(req: &libc::ifreq) -> String {
    let bytes: Vec<u8> = req
        .ifr_name
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A datagram socket to hang interface ioctls on.
fn ioctl_socket() -> SysResult<OwnedFd> {
    // SAFETY: plain socket(2) call with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(SysError::last(
            "open an AF_INET socket for interface ioctls",
        ));
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The ifindex of `name` in the current network namespace, `None` if there
/// is no such interface.
pub fn if_index(name: &str) -> SysResult<Option<u32>> {
    let mut buf = [0u8; libc::IFNAMSIZ];
    let n = name.len().min(libc::IFNAMSIZ - 1);
    buf[..n].copy_from_slice(&name.as_bytes()[..n]);
    let Ok(cname) = CStr::from_bytes_until_nul(&buf) else {
        return Ok(None);
    };
    // SAFETY: `cname` is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if index != 0 {
        return Ok(Some(index));
    }
    let err = SysError::last("look up the interface index");
    if err.is_no_device() {
        Ok(None)
    } else {
        Err(err)
    }
}

/// Sets IFF_UP on `name` unless it is already up.
pub fn link_up(name: &str) -> SysResult<()> {
    let sock = ioctl_socket()?;
    let mut req = ifreq_for(name);
    // SAFETY: SIOCGIFFLAGS reads the name from and writes the flags into
    // `req`, a valid, exclusively borrowed ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(SysError::last("read interface flags (SIOCGIFFLAGS)"));
    }
    // SAFETY: the kernel filled `ifru_flags` for SIOCGIFFLAGS.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    if flags & libc::IFF_UP as libc::c_short != 0 {
        return Ok(());
    }
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads the name and flags from `req`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &mut req) } < 0 {
        return Err(SysError::last("bring the interface up (SIOCSIFFLAGS)"));
    }
    Ok(())
}

/// The MTU of `name`.
pub fn link_mtu(name: &str) -> SysResult<u32> {
    let sock = ioctl_socket()?;
    let mut req = ifreq_for(name);
    // SAFETY: SIOCGIFMTU reads the name from and writes the MTU into `req`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFMTU, &mut req) } < 0 {
        return Err(SysError::last("read the interface MTU (SIOCGIFMTU)"));
    }
    // SAFETY: the kernel filled `ifru_mtu` for SIOCGIFMTU.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    Ok(mtu.max(0) as u32)
}

/// The interface flags of `name` (`IFF_*`, the low 16 bits).
pub fn link_flags(name: &str) -> SysResult<u32> {
    let sock = ioctl_socket()?;
    let mut req = ifreq_for(name);
    // SAFETY: SIOCGIFFLAGS reads the name from and writes the flags into
    // `req`, a valid, exclusively borrowed ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(SysError::last("read interface flags (SIOCGIFFLAGS)"));
    }
    // SAFETY: the kernel filled `ifru_flags` for SIOCGIFFLAGS.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    Ok(u32::from(flags as u16))
}

/// The MAC address of `name`.
pub fn link_mac(name: &str) -> SysResult<[u8; 6]> {
    let sock = ioctl_socket()?;
    let mut req = ifreq_for(name);
    // SAFETY: SIOCGIFHWADDR reads the name from and writes the hardware
    // address into `req`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) } < 0 {
        return Err(SysError::last("read the MAC address (SIOCGIFHWADDR)"));
    }
    // SAFETY: the kernel filled `ifru_hwaddr` for SIOCGIFHWADDR.
    let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
    let mut mac = [0u8; 6];
    for (m, d) in mac.iter_mut().zip(data.iter()) {
        *m = *d as u8;
    }
    Ok(mac)
}

/// The link-layer type of `name` (`ARPHRD_*`, 1 for Ethernet).
pub fn link_type(name: &str) -> SysResult<u16> {
    let sock = ioctl_socket()?;
    let mut req = ifreq_for(name);
    // SAFETY: SIOCGIFHWADDR reads the name from and writes the hardware
    // address into `req`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) } < 0 {
        return Err(SysError::last("read the link type (SIOCGIFHWADDR)"));
    }
    // SAFETY: the kernel filled `ifru_hwaddr` for SIOCGIFHWADDR.
    Ok(unsafe { req.ifr_ifru.ifru_hwaddr.sa_family })
}

/// The system page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as usize
    } else {
        4096
    }
}

/// Sets O_NONBLOCK on a descriptor (one another process handed us, such as
/// a vhost-user kick eventfd, whose flags we cannot trust).
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on a descriptor the caller keeps open; no
    // memory is passed.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Copies what a socket has waiting into `buf` without taking it off the
/// socket and without waiting (recv with MSG_PEEK | MSG_DONTWAIT).
pub fn peek(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the call.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// read(2) into `buf`.
#[inline]
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the call.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// write(2) of `buf`.
#[inline]
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the call.
    let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// A zero-length `sendto` without waiting: makes the kernel send what a
/// socket's mmap'd tx ring holds (AF_PACKET and AF_XDP alike).
pub fn kick_tx_ring(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: sendto with no buffer and no address: the kernel takes the
    // frames from the socket's tx ring.
    let rc = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            std::ptr::null(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null(),
            0,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// writev(2) of `head` then `body`: one frame behind its virtio-net header.
#[inline]
pub fn write2(fd: BorrowedFd<'_>, head: &[u8], body: &[u8]) -> io::Result<usize> {
    let iov = [
        libc::iovec {
            iov_base: head.as_ptr() as *mut libc::c_void,
            iov_len: head.len(),
        },
        libc::iovec {
            iov_base: body.as_ptr() as *mut libc::c_void,
            iov_len: body.len(),
        },
    ];
    // SAFETY: both iovecs describe live slices valid for reads for the
    // call; the kernel does not write through them.
    let n = unsafe { libc::writev(fd.as_raw_fd(), iov.as_ptr(), iov.len() as libc::c_int) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// setsockopt(2) with a plain-old-data option value.
fn setsockopt<T: Copy>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
    what: &'static str,
) -> SysResult<()> {
    setsockopt_fd(fd.as_fd(), level, name, value).map_err(|source| SysError { what, source })
}

/// getsockopt(2) into a plain-old-data `value`; returns the bytes the
/// kernel wrote (an older kernel may write fewer than `size_of::<T>()`).
fn getsockopt_fd<T: Copy>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &mut T,
) -> io::Result<usize> {
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for writes, `len` is the size of
    // `value`, and `T: Copy` has no drop glue nor invalid bit patterns the
    // callers use (plain integers and C structs of them).
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *mut T).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(len as usize)
    }
}

/// setsockopt(2) on a borrowed descriptor.
fn setsockopt_fd<T: Copy>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` points to a valid `T` of `size_of::<T>()` bytes that
    // the kernel only reads; `T: Copy` keeps it free of drop glue.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
