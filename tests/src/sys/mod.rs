//! The harness's system calls: the only unsafe code of the test crate, each
//! block with its `// SAFETY:` reason (the project keeps unsafe code in
//! `sys/` modules).
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::Netns;

/// The effective user id of this process.
pub fn geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Clock ticks per second (the unit of /proc/PID/stat's CPU times).
pub fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz).ok().filter(|&hz| hz > 0).unwrap_or(100)
}

/// Sends `signal` to `pid`; the caller makes sure the pid is one of its own
/// (a child not yet reaped, or a process inside its own namespace).
pub fn kill(pid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe { libc::kill(pid, signal) };
}

/// Makes the kernel kill the process `cmd` starts if the thread that started
/// it dies without cleaning up (e.g. the test process is SIGKILLed).
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and only calls
    // prctl(2), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Raises this process's limit of open files to at least `want`.
pub fn raise_nofile(want: u64) -> io::Result<()> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass, which lives across the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur >= want {
        return Ok(());
    }
    lim.rlim_cur = want;
    // Root may raise the hard limit too.
    lim.rlim_max = lim.rlim_max.max(want);
    // SAFETY: setrlimit only reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A raw AF_PACKET socket bound to one interface of a namespace. It only sends: bound with
/// protocol 0, the kernel hands it no received frames.
pub struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    /// Opens the socket on `ifname` inside `ns`.
    pub fn open(ns: &Netns, ifname: &str) -> PacketSocket {
        let netns_path = format!("/run/netns/{}", ns.name());
        let iface = ifname.to_string();
        std::thread::spawn(move || -> io::Result<OwnedFd> {
            let netns = File::open(&netns_path)?;
            // SAFETY: setns takes a namespace descriptor we own (open for the whole call) and a
            // constant; it changes the namespace of this thread only, which exits right after.
            if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            let flags = libc::SOCK_RAW | libc::SOCK_CLOEXEC;
            // SAFETY: plain socket(2) with constant arguments.
            let raw = unsafe { libc::socket(libc::AF_PACKET, flags, 0) };
            if raw < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `raw` was just returned by socket(2) and nothing else owns it.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            let name = std::ffi::CString::new(iface.as_str()).expect("interface name has no NUL");
            // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
            let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
            if ifindex == 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: sockaddr_ll is plain data; all-zero is a valid value to fill in.
            let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_ifindex = ifindex as i32;
            // SAFETY: `addr` is a properly initialised sockaddr_ll and the length passed is its
            // size; `fd` is an open socket.
            let rc = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&addr as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(fd)
        })
        .join()
        .expect("the socket-opening thread panicked")
        .map(|fd| PacketSocket { fd })
        .unwrap_or_else(|e| {
            panic!(
                "cannot open a packet socket on {ifname} in {}: {e}",
                ns.name()
            )
        })
    }

    /// Sends one frame as it is (the kernel adds nothing but may refuse it).
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: `frame` is a valid readable buffer of the length passed; the fd is open.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}
