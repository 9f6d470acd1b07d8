//! Helpers for the root-only tests of the kernel ports: unique interface
//! names, guards that delete what a test created, and a plain AF_PACKET
//! socket to play the peer. Every wait is bounded.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::packet::Batch;
use crate::pipeline::counters::PortCounters;
use crate::port::Port;

/// Longest a test waits for a frame or a state change.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// An interface name unique to this test process: `{prefix}{pid}{tag}`
/// (at most 15 bytes for prefixes of 3 and tags of 2 characters).
pub fn unique(prefix: &str, tag: &str) -> String {
    let name = format!("{prefix}{}{tag}", std::process::id());
    assert!(name.len() <= 15, "{name} is too long for an interface name");
    name
}

/// Runs `prog args...`; panics with its stderr if it fails.
pub fn run(prog: &str, args: &[&str]) {
    let out = Command::new(prog).args(args).output().expect("run command");
    assert!(
        out.status.success(),
        "{prog} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `ip args...`; panics with its stderr if it fails.
pub fn ip(args: &[&str]) {
    run("ip", args);
}

/// Runs `ip args...`, ignoring failure (for clean-up).
pub fn ip_quiet(args: &[&str]) {
    let _ = Command::new("ip").args(args).output();
}

/// Deletes a link when dropped (a veth pair goes with either end).
pub struct LinkGuard(pub String);

impl Drop for LinkGuard {
    fn drop(&mut self) {
        ip_quiet(&["link", "del", &self.0]);
    }
}

/// Deletes a network namespace when dropped.
pub struct NetnsGuard(pub String);

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        ip_quiet(&["netns", "del", &self.0]);
    }
}

/// Creates the veth pair `a`/`b` with `mtu`, IPv6 off (no router
/// solicitations as noise), both ends up.
pub fn veth_pair(a: &str, b: &str, mtu: u32) -> LinkGuard {
    ip_quiet(&["link", "del", a]);
    ip(&["link", "add", a, "type", "veth", "peer", "name", b]);
    let guard = LinkGuard(a.to_string());
    for end in [a, b] {
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{end}/disable_ipv6"), "1");
        ip(&["link", "set", end, "mtu", &mtu.to_string(), "up"]);
    }
    guard
}

/// The interface flags from sysfs (`None` if there is no such interface).
pub fn sysfs_flags(name: &str) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{name}/flags")).ok()?;
    u32::from_str_radix(text.trim().trim_start_matches("0x"), 16).ok()
}

/// Calls `f` every few milliseconds until it returns true or `TIMEOUT`
/// passes; returns whether it succeeded.
pub fn wait_until(mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() > TIMEOUT {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// An Ethernet frame with local MACs, EtherType 0x88b5 (local
/// experimental) and `marker` repeated to `len` bytes.
pub fn test_frame(marker: u8, len: usize) -> Vec<u8> {
    let mut f = vec![marker; len.max(14)];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xbb]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xaa]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f
}

/// `inner` with a VLAN tag (`tpid`, `tci`) inserted after the MACs.
pub fn tagged(tpid: u16, tci: u16, inner: &[u8]) -> Vec<u8> {
    let mut f = inner[..12].to_vec();
    f.extend_from_slice(&tpid.to_be_bytes());
    f.extend_from_slice(&tci.to_be_bytes());
    f.extend_from_slice(&inner[12..]);
    f
}

/// Calls `rx_burst` until a frame satisfies `want`, at most `TIMEOUT`.
pub fn rx_until(port: &mut dyn Port, c: &mut PortCounters, want: impl Fn(&[u8]) -> bool) -> bool {
    let mut batch = Batch::new();
    wait_until(|| {
        batch.clear();
        port.rx_burst(&mut batch, c);
        batch.iter().any(|b| want(b.frame()))
    })
}

/// A port on one end (`a`) of a fresh veth pair, deleted on drop, with a
/// plain socket on the other end as its peer.
pub struct VethRig<P: Port> {
    pub port: P,
    pub peer: RawSocket,
    pub c: PortCounters,
    pub a: String,
    _veth: LinkGuard,
}

impl<P: Port> VethRig<P> {
    /// Names end in `tag`; `open` opens the port on the given end.
    pub fn new(tag: &str, mtu: u32, open: impl FnOnce(&str) -> P) -> Self {
        let (a, b) = (unique("vpa", tag), unique("vpb", tag));
        let veth = veth_pair(&a, &b, mtu);
        let port = open(&a);
        let peer = RawSocket::bind(&b);
        let c = PortCounters::default();
        VethRig {
            port,
            peer,
            c,
            a,
            _veth: veth,
        }
    }

    /// Receives through the port until `frame` arrives.
    pub fn rx_expect(&mut self, frame: &[u8]) -> bool {
        rx_until(&mut self.port, &mut self.c, |f| f == frame)
    }

    /// Sends `frame` through the port and checks the peer receives `seen`
    /// (the frame without its outer tag, which the peer's kernel strips).
    pub fn send_seen(&mut self, frame: &[u8], seen: &[u8]) -> bool {
        let sent = self.port.tx_burst(&[frame], &mut self.c) == 1;
        self.port.flush(&mut self.c);
        sent && self.peer.recv_matching(|f| f == seen).is_some()
    }

    pub fn send(&mut self, frame: &[u8]) -> bool {
        self.send_seen(frame, frame)
    }
}

/// A plain, blocking-free AF_PACKET socket bound to one interface, which
/// ignores its own outgoing frames.
pub struct RawSocket {
    fd: OwnedFd,
}

impl RawSocket {
    pub fn bind(iface: &str) -> RawSocket {
        let index = super::if_index(iface).unwrap().expect("interface exists");
        let proto = (libc::ETH_P_ALL as u16).to_be();
        let flags = libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        // SAFETY: plain socket(2) call.
        let fd = unsafe { libc::socket(libc::AF_PACKET, flags, proto as libc::c_int) };
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let one: libc::c_int = 1;
        let opt = libc::PACKET_IGNORE_OUTGOING;
        super::setsockopt(&fd, libc::SOL_PACKET, opt, &one, "ignore outgoing").unwrap();
        // Room for a whole tx ring's worth of small frames.
        let rcvbuf: libc::c_int = 8 << 20;
        let (sol, force) = (libc::SOL_SOCKET, libc::SO_RCVBUFFORCE);
        super::setsockopt(&fd, sol, force, &rcvbuf, "receive buffer").unwrap();
        // SAFETY: `sockaddr_ll` is plain old data; all-zero is valid.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = proto;
        addr.sll_ifindex = index as libc::c_int;
        // SAFETY: `addr` is a valid sockaddr_ll and the length matches it.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        assert!(rc == 0, "bind: {}", std::io::Error::last_os_error());
        RawSocket { fd }
    }

    pub fn send(&self, frame: &[u8]) {
        let n = super::write(self.fd.as_fd(), frame).expect("send on the raw socket");
        assert_eq!(n, frame.len());
    }

    /// Receives frames until one satisfies `want` (returned) or `TIMEOUT`.
    pub fn recv_matching(&self, want: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 65536];
        let mut found = None;
        wait_until(|| {
            while let Ok(n) = super::read(self.fd.as_fd(), &mut buf) {
                if want(&buf[..n]) {
                    found = Some(buf[..n].to_vec());
                    return true;
                }
            }
            false
        });
        found
    }
}

/// Sets SO_SNDBUF of the socket `fd` (the kernel doubles it and applies a
/// floor of a few KiB).
pub fn set_sndbuf(fd: std::os::fd::RawFd, bytes: libc::c_int) {
    // SAFETY: borrowing a descriptor the caller keeps open for the call.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let rc = super::setsockopt_fd(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &bytes);
    assert!(rc.is_ok(), "SO_SNDBUFFORCE: {rc:?}");
}

/// poll(2) on `fd` for up to `ms` milliseconds; returns the revents.
pub fn poll_fd(fd: std::os::fd::RawFd, events: libc::c_short, ms: libc::c_int) -> libc::c_short {
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: `pfd` is one valid pollfd, exclusively borrowed for the call.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    if rc > 0 {
        pfd.revents
    } else {
        0
    }
}
