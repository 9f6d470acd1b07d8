//! `/dev/net/tun`: creating or attaching a tap device.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::{ifreq_for, ifreq_name, SysError, SysResult};

/// Opens `/dev/net/tun` non-blocking and attaches it to the tap `name`
/// (created if missing; not made persistent, so a tap created here vanishes
/// when the returned fd closes). Frames carry no packet-information prefix
/// and no virtio-net header. Returns the fd and the name the kernel used.
pub fn open_tap(name: &str) -> SysResult<(OwnedFd, String)> {
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
    req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads the name and flags from `req` and writes the
    // final name back into it; `req` is a valid, exclusively borrowed ifreq.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut req) } < 0 {
        let err = SysError::last("create or attach the tap (TUNSETIFF)");
        let what = match err.source.raw_os_error() {
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
