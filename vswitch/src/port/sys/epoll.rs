//! An epoll instance that gathers several descriptors into one, so a port
//! with several (a bond: its members and a netlink socket) can hand the
//! datapath a single readiness descriptor. The datapath registers it in its
//! own epoll; the kernel wakes the outer one whenever an inner descriptor
//! becomes ready. The port never waits on it: it reads its descriptors
//! without blocking whenever it is polled.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::{SysError, SysResult};

pub struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    pub fn new() -> SysResult<Epoll> {
        // SAFETY: plain epoll_create1(2) call with a constant flag.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(SysError::last("create an epoll instance"));
        }
        // SAFETY: `fd` was just returned by epoll_create1 and is owned by
        // nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Epoll { fd })
    }

    /// Watches `fd` for input (level-triggered). The caller keeps `fd` open
    /// at least as long as this instance, or the kernel drops it silently.
    pub fn add(&self, fd: RawFd) -> SysResult<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: fd as u64,
        };
        // SAFETY: `ev` is a valid epoll_event for the call; the kernel
        // copies it.
        let rc = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
        if rc < 0 {
            return Err(SysError::last("add a descriptor to the epoll instance"));
        }
        Ok(())
    }

    /// Stops watching `fd`. Must be called while `fd` is still open: the
    /// kernel keeps a watch on a descriptor another process shares (a
    /// vhost-user kick eventfd) after our copy closes.
    pub fn remove(&self, fd: RawFd) -> SysResult<()> {
        // SAFETY: EPOLL_CTL_DEL ignores the event argument; a null pointer
        // is allowed since Linux 2.6.9.
        let rc = unsafe {
            libc::epoll_ctl(
                self.fd.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            return Err(SysError::last(
                "remove a descriptor from the epoll instance",
            ));
        }
        Ok(())
    }

    /// The watched descriptors that are ready now, without waiting: fills
    /// `ready` and returns how many.
    pub fn ready_now(&self, ready: &mut [RawFd]) -> usize {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 16];
        let max = events.len().min(ready.len()) as i32;
        // SAFETY: `events` is valid for writes of `max` entries.
        let n = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), events.as_mut_ptr(), max, 0) };
        if n <= 0 {
            return 0;
        }
        let n = n as usize;
        for (slot, ev) in ready.iter_mut().zip(&events[..n]) {
            *slot = ev.u64 as RawFd;
        }
        n
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
