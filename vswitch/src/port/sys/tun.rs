//! `/dev/net/tun`: creating or attaching a tap device.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::{ifreq_for, ifreq_name, SysError, SysResult};

/// Opens `/dev/net/tun` non-blocking and attaches it to the tap `name`
/// (created if missing; not made persistent, so a tap created here vanishes
/// when the returned fd closes). Frames carry no packet-information prefix;
/// each starts with a 10-byte virtio-net header (IFF_VNET_HDR). With
/// `multi_queue`, the tap is a multiqueue one (IFF_MULTI_QUEUE) and the fd
/// one of its queues: each further call adds a queue, and the kernel hands
/// each flow the host sends to one queue. Returns the fd and the name the
/// kernel used.
pub fn open_tap(name: &str, multi_queue: bool) -> SysResult<(OwnedFd, String)> {
    // SAFETY: open(2) with a NUL-terminated literal path and constant flags.
    let fd = unsafe {
        libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(SysError::last("open /dev/net/tun"));
    }
    // SAFETY: `fd` was just returned by open(2) and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };

    let mut req = ifreq_for(name);
    let queues = if multi_queue {
        libc::IFF_MULTI_QUEUE
    } else {
        0
    };
    req.ifr_ifru.ifru_flags =
        (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR | queues) as libc::c_short;
    // SAFETY: TUNSETIFF reads the name and flags from `req` and writes the
    // final name back into it; `req` is a valid, exclusively borrowed ifreq.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut req) } < 0 {
        let err = SysError::last("create or attach the tap (TUNSETIFF)");
        let what = match err.source.raw_os_error() {
            Some(libc::EINVAL) if multi_queue => {
                "attach the tap (TUNSETIFF): an interface of that name exists \
                 and is not a multiqueue tap"
            }
            Some(libc::EINVAL) => {
                "attach the tap (TUNSETIFF): an interface of that name exists \
                 and is not a single-queue tap"
            }
            Some(libc::EBUSY) => "attach the tap (TUNSETIFF): it is already in use",
            Some(libc::EPERM) => {
                "attach the tap (TUNSETIFF): not permitted \
                 (needs CAP_NET_ADMIN or the tap's owner)"
            }
            _ => err.what,
        };
        return Err(SysError {
            what,
            source: err.source,
        });
    }
    Ok((fd, ifreq_name(&req)))
}

/// Tells the tap which offloads its reader (the switch) takes: the kernel
/// then hands it checksum-partial and GSO frames instead of finishing and
/// cutting them first. Asks for UDP segmentation too (Linux 6.2) and falls
/// back to checksum + TCP when the kernel refuses it. Returns whether UDP
/// segmentation was granted.
pub fn set_offloads(fd: BorrowedFd<'_>) -> SysResult<bool> {
    let tcp = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6 | libc::TUN_F_TSO_ECN;
    for (flags, uso) in [
        (tcp | libc::TUN_F_USO4 | libc::TUN_F_USO6, true),
        (tcp, false),
    ] {
        // SAFETY: TUNSETOFFLOAD takes its argument by value (an unsigned
        // long of flags); no memory is passed.
        let rc =
            unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETOFFLOAD, flags as libc::c_ulong) };
        if rc == 0 {
            return Ok(uso);
        }
    }
    Err(SysError::last("enable the tap's offloads (TUNSETOFFLOAD)"))
}
