//! Link events from the kernel: a NETLINK_ROUTE socket in the RTMGRP_LINK
//! multicast group, which receives an RTM_NEWLINK message whenever an
//! interface's flags (administrative state, carrier) change and
//! RTM_DELLINK when one goes away. Only the fixed `ifinfomsg` header after
//! each message header is read (index and flags); attributes are skipped,
//! so a hand parser of two fixed headers does the job of a netlink crate.
//!
//! Timing: an administrative change (`ip link set down`) is announced at
//! once. A carrier change goes through the kernel's linkwatch, which
//! announces it at once for stacked devices (veth, VLAN) but may batch it
//! by up to a second for a physical NIC.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::{setsockopt, SysError, SysResult};

const NLMSG_HDRLEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;
const RTM_NEWLINK: u16 = libc::RTM_NEWLINK;
const RTM_DELLINK: u16 = libc::RTM_DELLINK;
/// Receive buffer: a host creating and deleting many taps at once makes
/// bursts of link messages; an overrun is survived (see `LinkMonitor::drain`)
/// but costs a full re-read of the members' state.
const RCVBUF: libc::c_int = 1 << 20;
const BUF_LEN: usize = 32 * 1024;

/// One interface's new state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkEvent {
    pub ifindex: u32,
    /// Administratively up and operationally running (carrier).
    pub up: bool,
}

/// The kernel dropped messages (the socket's buffer overflowed): states
/// must be read afresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overrun;

/// Whether interface flags (as netlink reports them, 32 bits) mean "can
/// carry frames": administratively up with carrier (IFF_LOWER_UP). Not
/// IFF_RUNNING: that follows the operational state, which the kernel
/// updates asynchronously and reports as running ("unknown") for a moment
/// after an interface is brought up even without carrier.
pub fn flags_up(flags: u32) -> bool {
    let up = libc::IFF_UP as u32;
    let lower_up = libc::IFF_LOWER_UP as u32;
    flags & up != 0 && flags & lower_up != 0
}

/// The same test for an interface by name, now (for start-up and after
/// lost messages): its flags and its carrier as sysfs reports it.
pub fn link_up_now(name: &str) -> bool {
    let admin_up = super::link_flags(name).is_ok_and(|f| f & libc::IFF_UP as u32 != 0);
    let carrier = std::fs::read_to_string(format!("/sys/class/net/{name}/carrier"))
        .is_ok_and(|c| c.trim() == "1");
    admin_up && carrier
}

/// Calls `f` for every link message in one datagram. Malformed or
/// truncated messages end the walk; other message types are skipped.
pub fn parse_link_messages(mut bytes: &[u8], mut f: impl FnMut(LinkEvent)) {
    while bytes.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        let kind = u16::from_ne_bytes([bytes[4], bytes[5]]);
        if len < NLMSG_HDRLEN || len > bytes.len() {
            return;
        }
        let body = &bytes[NLMSG_HDRLEN..len];
        if (kind == RTM_NEWLINK || kind == RTM_DELLINK) && body.len() >= IFINFOMSG_LEN {
            let index = i32::from_ne_bytes([body[4], body[5], body[6], body[7]]);
            let flags = u32::from_ne_bytes([body[8], body[9], body[10], body[11]]);
            if let Ok(ifindex) = u32::try_from(index) {
                f(LinkEvent {
                    ifindex,
                    up: kind == RTM_NEWLINK && flags_up(flags),
                });
            }
        }
        // Messages are 4-byte aligned (NLMSG_ALIGN).
        let next = (len + 3) & !3;
        bytes = bytes.get(next..).unwrap_or(&[]);
    }
}

/// A socket that hears about every link of the network namespace.
pub struct LinkMonitor {
    fd: OwnedFd,
    buf: Box<[u8]>,
}

impl LinkMonitor {
    pub fn open() -> SysResult<LinkMonitor> {
        let flags = libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        // SAFETY: plain socket(2) call with constant arguments.
        let fd = unsafe { libc::socket(libc::AF_NETLINK, flags, libc::NETLINK_ROUTE) };
        if fd < 0 {
            return Err(SysError::last("open a NETLINK_ROUTE socket"));
        }
        // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // Best effort: FORCE needs CAP_NET_ADMIN, the plain one is capped.
        let sol = libc::SOL_SOCKET;
        if setsockopt(&fd, sol, libc::SO_RCVBUFFORCE, &RCVBUF, "").is_err() {
            let _ = setsockopt(&fd, sol, libc::SO_RCVBUF, &RCVBUF, "");
        }
        // SAFETY: `sockaddr_nl` is plain old data; all-zero is valid.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        addr.nl_groups = libc::RTMGRP_LINK as u32;
        // SAFETY: `addr` is a valid sockaddr_nl and the length matches it.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(SysError::last("join the netlink link group (RTMGRP_LINK)"));
        }
        Ok(LinkMonitor {
            fd,
            buf: vec![0u8; BUF_LEN].into_boxed_slice(),
        })
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Reads every waiting message without blocking and calls `f` for each
    /// link event. `Err(Overrun)` if the kernel dropped some: the caller
    /// re-reads the states it cares about.
    pub fn drain(&mut self, mut f: impl FnMut(LinkEvent)) -> Result<(), Overrun> {
        let mut overrun = false;
        loop {
            // SAFETY: `buf` is valid for writes of its length for the call.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                match io::Error::last_os_error().raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::ENOBUFS) => overrun = true,
                    // EAGAIN: drained. Anything else: nothing more to read.
                    _ => break,
                }
                continue;
            }
            if n == 0 {
                break;
            }
            parse_link_messages(&self.buf[..n as usize], &mut f);
        }
        if overrun {
            Err(Overrun)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u16, index: i32, flags: u32, extra: usize) -> Vec<u8> {
        let len = NLMSG_HDRLEN + IFINFOMSG_LEN + extra;
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0; 10]); // flags, seq, pid
        m.extend_from_slice(&[0, 0, 1, 0]); // family, pad, type
        m.extend_from_slice(&index.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes()); // change
        m.extend_from_slice(&vec![0xaa; extra]);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    fn events(bytes: &[u8]) -> Vec<LinkEvent> {
        let mut v = Vec::new();
        parse_link_messages(bytes, |e| v.push(e));
        v
    }

    #[test]
    fn link_messages_parse() {
        let up = (libc::IFF_UP | libc::IFF_LOWER_UP) as u32;
        let mut d = message(RTM_NEWLINK, 7, up, 5);
        d.extend(message(RTM_NEWLINK, 8, libc::IFF_UP as u32, 0));
        d.extend(message(20, 9, up, 0)); // RTM_NEWADDR: skipped
        d.extend(message(RTM_DELLINK, 10, up, 3));
        assert_eq!(
            events(&d),
            [
                LinkEvent {
                    ifindex: 7,
                    up: true
                },
                LinkEvent {
                    ifindex: 8,
                    up: false
                },
                LinkEvent {
                    ifindex: 10,
                    up: false
                },
            ]
        );
    }

    #[test]
    fn malformed_messages_end_the_walk() {
        let up = (libc::IFF_UP | libc::IFF_LOWER_UP) as u32;
        let good = message(RTM_NEWLINK, 7, up, 0);
        for cut in 0..good.len() {
            let _ = events(&good[..cut]);
        }
        let mut bad_len = good.clone();
        bad_len[..4].copy_from_slice(&3u32.to_ne_bytes());
        assert!(events(&bad_len).is_empty());
        let mut too_long = good.clone();
        too_long[..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(events(&too_long).is_empty());
        let short_body = &message(RTM_NEWLINK, 7, up, 0)[..NLMSG_HDRLEN + 8];
        let mut s = short_body.to_vec();
        let len = s.len() as u32;
        s[..4].copy_from_slice(&len.to_ne_bytes());
        assert!(events(&s).is_empty());
        assert!(events(&message(RTM_NEWLINK, -1, up, 0)).is_empty());
    }
}
