//! Tap port: a `/dev/net/tun` tap device, the usual way a VM's NIC (or a
//! container's veth-like endpoint) reaches the switch.
//!
//! The switch holds the tap's file descriptor: what the kernel (or the VM
//! behind the tap's netdev) transmits on the tap becomes readable on the fd,
//! and what the switch writes is received by the netdev. One `read` per
//! received frame and one `writev` per sent frame. No packet-information
//! prefix; 802.1Q tags stay in line.
//!
//! Offloads: every frame comes and goes behind a virtio-net header
//! (IFF_VNET_HDR), and TUNSETOFFLOAD tells the kernel the switch takes
//! checksum-partial and TSO (and, from Linux 6.2, USO) frames. So a VM's or
//! container's TCP stream arrives as 64 KiB frames with the checksum left
//! undone, and leaves through any port that can pass that on (another tap,
//! an AF_PACKET port) unchanged; the output stage finishes or cuts it for
//! the others (`packet::offload`). A tap takes every request on output.
//!
//! The tap is created if missing and is not made persistent: it vanishes
//! when the port closes. An existing tap of that name (e.g. persistent,
//! made by `ip tuntap add`) is attached to and keeps its persistence.
//! Moving the tap's netdev to another network namespace (a VM's or a test's)
//! keeps the fd working; while the netdev is down, writes fail with EIO and
//! are counted as `TxError`.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use super::{sys, validate_ifname, Port, PortError, PortKind};
use crate::packet::offload::{self, OffloadCaps};
use crate::packet::{Batch, MAX_FRAME_LEN};
use crate::pipeline::counters::{DropReason, PortCounters};
use crate::wire::vnet::{VnetHdr, VNET_HDR_LEN};

/// A tap device owned by the switch.
pub struct TapPort {
    fd: OwnedFd,
    name: String,
    /// The kernel hands us UDP-segmentation frames too (Linux 6.2+).
    uso: bool,
}

impl TapPort {
    /// Creates the tap `iface` (or attaches to the existing tap of that
    /// name) and brings it up. Fails with a clear error if the name is taken
    /// by something that is not a tap, or if the tap is already in use.
    pub fn open(iface: &str) -> Result<TapPort, PortError> {
        validate_ifname(iface)?;
        let (fd, name) = sys::tun::open_tap(iface).map_err(|e| e.into_port_error(iface))?;
        let uso = sys::tun::set_offloads(fd.as_fd()).map_err(|e| e.into_port_error(&name))?;
        sys::link_up(&name).map_err(|e| e.into_port_error(&name))?;
        Ok(TapPort { fd, name, uso })
    }

    /// Sends one frame behind its header; false (counted) when the tap
    /// refuses it, and `Err` when the rest of the burst would fail too.
    #[inline]
    fn send(
        &mut self,
        frame: &[u8],
        hdr: &VnetHdr,
        counters: &mut PortCounters,
    ) -> Result<bool, DropReason> {
        if frame.len() > MAX_FRAME_LEN - VNET_HDR_LEN {
            counters.count_drop(DropReason::TxTooBig);
            return Ok(false);
        }
        match sys::write2(self.fd.as_fd(), &hdr.for_tx().to_bytes(), frame) {
            Ok(_) => {
                counters.count_tx(frame.len());
                Ok(true)
            }
            // The rest of the burst would fail the same way: the caller
            // counts it without more syscalls. EIO means the netdev is down
            // (e.g. while it moves to another namespace).
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Err(DropReason::TxRingFull),
            // A header the kernel refuses concerns that frame only.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                counters.count_drop(DropReason::TxError);
                Ok(false)
            }
            Err(_) => Err(DropReason::TxError),
        }
    }
}

impl Port for TapPort {
    fn kind(&self) -> PortKind {
        PortKind::Tap
    }

    fn iface(&self) -> &str {
        &self.name
    }

    fn rx_burst(&mut self, batch: &mut Batch, counters: &mut PortCounters) -> usize {
        let mut got = 0;
        while let Some(buf) = batch.slot() {
            let area = buf.rx_area();
            let room = area.len();
            match sys::read(self.fd.as_fd(), area) {
                // tun returns the frame's full length even when it had to
                // cut it to fit the buffer.
                Ok(len) if len > room => counters.count_drop(DropReason::RxTruncated),
                Ok(0) => break,
                Ok(len) if len < VNET_HDR_LEN => counters.count_drop(DropReason::Runt),
                Ok(len) => {
                    let mut hdr = VnetHdr::parse(area).unwrap_or_default();
                    buf.set_len(len);
                    buf.pull_front(VNET_HDR_LEN);
                    if let Err(reason) = offload::check_rx(buf.frame(), &mut hdr) {
                        counters.count_drop(reason);
                        continue;
                    }
                    buf.meta.offload = hdr;
                    batch.commit();
                    counters.count_rx(len - VNET_HDR_LEN);
                    got += 1;
                }
                Err(e) => match e.kind() {
                    std::io::ErrorKind::WouldBlock => break,
                    std::io::ErrorKind::Interrupted => continue,
                    _ => {
                        counters.count_drop(DropReason::RxError);
                        break;
                    }
                },
            }
        }
        got
    }

    fn tx_burst(&mut self, frames: &[&[u8]], counters: &mut PortCounters) -> usize {
        let plain = VnetHdr::default();
        let mut sent = 0;
        for (i, frame) in frames.iter().enumerate() {
            match self.send(frame, &plain, counters) {
                Ok(ok) => sent += usize::from(ok),
                Err(reason) => {
                    counters.count_drops(reason, (frames.len() - i) as u64);
                    break;
                }
            }
        }
        sent
    }

    fn offload_caps(&self) -> OffloadCaps {
        OffloadCaps::ALL
    }

    fn tx_burst_offload(
        &mut self,
        frames: &[&[u8]],
        hdrs: &[VnetHdr],
        counters: &mut PortCounters,
    ) -> usize {
        let mut sent = 0;
        for (i, (frame, hdr)) in frames.iter().zip(hdrs).enumerate() {
            match self.send(frame, hdr, counters) {
                Ok(ok) => sent += usize::from(ok),
                Err(reason) => {
                    counters.count_drops(reason, (frames.len() - i) as u64);
                    break;
                }
            }
        }
        sent
    }

    fn readiness_fd(&self) -> Option<RawFd> {
        Some(self.fd.as_raw_fd())
    }

    fn details(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({
            "offloads_received": {
                "checksum": true,
                "tso": true,
                "uso": self.uso,
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::sys::test_util::*;
    use std::process::Command;

    fn disable_ipv6(name: &str) {
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), "1");
    }

    fn netns_stat(ns: &str, name: &str, stat: &str) -> u64 {
        let path = format!("/sys/class/net/{name}/statistics/{stat}");
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "cat", &path])
            .output()
            .expect("run ip netns exec");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    }

    #[test]
    fn port_moves_to_the_datapath_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<TapPort>();
    }

    #[test]
    fn opens_up_transmits_and_vanishes_on_close() {
        let name = unique("vst", "a");
        let mut port = TapPort::open(&name).expect("open tap");
        assert_eq!(port.iface(), name);
        assert_eq!(port.kind(), PortKind::Tap);
        let flags = sysfs_flags(&name).expect("tap exists");
        assert_ne!(flags & libc::IFF_UP as u32, 0, "tap is up");

        let mut c = PortCounters::default();
        let frame = test_frame(0x5a, 60);
        assert_eq!(port.tx_burst(&[&frame], &mut c), 1);
        assert_eq!((c.tx_packets, c.tx_bytes), (1, 60));
        assert_eq!(c.total_drops(), 0);
        let stat = format!("/sys/class/net/{name}/statistics/rx_packets");
        assert!(wait_until(|| std::fs::read_to_string(&stat)
            .is_ok_and(|s| s.trim().parse::<u64>().unwrap_or(0) >= 1)));

        let too_big = vec![0u8; MAX_FRAME_LEN];
        assert_eq!(port.tx_burst(&[&too_big], &mut c), 0);
        assert_eq!(c.drops(DropReason::TxTooBig), 1);

        drop(port);
        assert!(
            wait_until(|| sysfs_flags(&name).is_none()),
            "tap removed on close"
        );
    }

    #[test]
    fn receives_what_the_kernel_sends() {
        let name = unique("vst", "b");
        let mut port = TapPort::open(&name).expect("open tap");
        disable_ipv6(&name);
        let peer = RawSocket::bind(&name);
        let frame = test_frame(0x5b, 100);
        peer.send(&frame);
        let fd = port.readiness_fd().unwrap();
        assert_ne!(
            poll_fd(fd, libc::POLLIN, 2000) & libc::POLLIN,
            0,
            "fd readable"
        );
        let mut c = PortCounters::default();
        assert!(
            rx_until(&mut port, &mut c, |f| f == frame),
            "frame received"
        );
        assert!(c.rx_packets >= 1 && c.rx_bytes >= 100);
        assert_eq!(c.total_drops(), 0);
    }

    #[test]
    fn refuses_tuns_busy_taps_and_bad_names() {
        let tun = unique("vst", "c");
        ip_quiet(&["link", "del", &tun]);
        ip(&["tuntap", "add", "dev", &tun, "mode", "tun"]);
        let _guard = LinkGuard(tun.clone());
        match TapPort::open(&tun) {
            Err(PortError::Os { what, iface, .. }) => {
                assert_eq!(iface, tun);
                assert!(what.contains("not a single-queue tap"), "{what}");
            }
            other => panic!("expected an error, got {:?}", other.map(|p| p.name)),
        }

        let name = unique("vst", "d");
        let _first = TapPort::open(&name).expect("open tap");
        match TapPort::open(&name) {
            Err(e @ PortError::Os { .. }) => assert!(e.to_string().contains("in use"), "{e}"),
            other => panic!("expected busy, got {:?}", other.map(|p| p.name)),
        }

        assert!(matches!(
            TapPort::open("bad/name"),
            Err(PortError::BadInterfaceName(_))
        ));
    }

    #[test]
    fn keeps_working_when_moved_to_another_netns() {
        let ns = unique("vsn", "e");
        let name = unique("vst", "e");
        ip_quiet(&["netns", "del", &ns]);
        ip(&["netns", "add", &ns]);
        let _ns_guard = NetnsGuard(ns.clone());
        let mut port = TapPort::open(&name).expect("open tap");
        ip(&["link", "set", &name, "netns", &ns]);

        // Down while moved: writes fail with EIO, counted, no panic.
        let mut c = PortCounters::default();
        let frame = test_frame(0x5e, 60);
        assert_eq!(port.tx_burst(&[&frame, &frame], &mut c), 0);
        assert_eq!(c.drops(DropReason::TxError), 2);

        ip(&["-n", &ns, "link", "set", &name, "up"]);
        ip(&["-n", &ns, "addr", "add", "10.213.0.1/24", "dev", &name]);
        assert_eq!(port.tx_burst(&[&frame], &mut c), 1);
        assert!(wait_until(|| netns_stat(&ns, &name, "rx_packets") >= 1));

        // A ping inside the namespace makes the tap send an ARP request.
        let mut ping = Command::new("ip")
            .args(["netns", "exec", &ns, "ping", "-c1", "-W1", "10.213.0.2"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run ping");
        let arp = rx_until(&mut port, &mut c, |f| {
            f.len() >= 14 && f[12..14] == [0x08, 0x06]
        });
        let _ = ping.wait();
        assert!(arp, "ARP request from the namespace received");
        drop(port);
    }
}
