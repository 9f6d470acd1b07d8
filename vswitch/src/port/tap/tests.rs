use super::*;
use crate::config::PortSpec;
use crate::port::sys::test_util::*;
use std::process::Command;

/// Every root test runs once per I/O mode.
macro_rules! both_modes {
    ($($name:ident),* $(,)?) => {
        mod uring {
            $(#[test] fn $name() { super::$name(super::TapIo::Uring) })*
        }
        mod syscalls {
            $(#[test] fn $name() { super::$name(super::TapIo::Syscalls) })*
        }
    };
}

both_modes!(
    opens_up_transmits_and_vanishes_on_close,
    receives_what_the_kernel_sends,
    refuses_tuns_busy_taps_and_bad_names,
    keeps_working_when_moved_to_another_netns,
    one_burst_takes_every_queued_frame_in_order,
    one_burst_sends_many_frames_in_order,
);

/// A name unique to the test and the mode.
fn name(tag: char, io: TapIo) -> String {
    let mode = if io == TapIo::Uring { 'u' } else { 's' };
    unique("vst", &format!("{tag}{mode}"))
}

/// Opens the tap; `io=uring` must really be in use unless the kernel
/// has io_uring switched off.
fn open(name: &str, io: TapIo) -> TapPort {
    let port = TapPort::open_with(name, io).expect("open tap");
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .is_ok_and(|s| s.trim() != "0");
    if !disabled {
        assert_eq!(port.io_in_use(), io, "{:?}", port.fallback);
    }
    port
}

fn disable_ipv6(name: &str) {
    let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), "1");
}

fn stat(name: &str, stat: &str) -> u64 {
    std::fs::read_to_string(format!("/sys/class/net/{name}/statistics/{stat}"))
        .map_or(0, |s| s.trim().parse().unwrap_or(0))
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

/// The markers of the test frames (EtherType 0x88b5) in `frames`.
fn markers<'a>(frames: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    frames
        .filter(|f| f.len() > 14 && f[12..14] == [0x88, 0xb5])
        .map(|f| f[14])
        .collect()
}

#[test]
fn port_moves_to_the_datapath_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<TapPort>();
}

#[test]
fn io_option_parses_and_is_refused_elsewhere() {
    let opts = |kv: &[(&str, &str)]| -> Options {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let parse = |kv: &[(&str, &str)]| PortSpec::parse("vm1", &opts(kv));
    let tap = parse(&[("type", "tap")]).unwrap();
    assert_eq!(tap.tap_io, Some(TapIo::default()));
    for (v, io) in [("uring", TapIo::Uring), ("syscalls", TapIo::Syscalls)] {
        let spec = parse(&[("type", "tap"), ("io", v), ("access", "10")]).unwrap();
        assert_eq!(spec.tap_io, Some(io));
        assert_eq!(io.as_str(), v);
    }
    let err = parse(&[("type", "tap"), ("io", "epoll")]).unwrap_err();
    assert_eq!(err, "io=\"epoll\": expected uring or syscalls");
    let err = parse(&[("type", "afpacket"), ("iface", "eth0"), ("io", "uring")]).unwrap_err();
    assert!(err.contains("unknown option \"io\""), "{err}");
    let err = parse(&[("type", "tap"), ("queues", "2")]).unwrap_err();
    assert!(err.contains("unknown option \"queues\""), "{err}");
    let err =
        PortSpec::merge_options(&opts(&[("type", "tap")]), &opts(&[("io", "uring")])).unwrap_err();
    assert!(err.contains("cannot change"), "{err}");
}

fn opens_up_transmits_and_vanishes_on_close(io: TapIo) {
    let name = name('a', io);
    let mut port = open(&name, io);
    assert_eq!(port.iface(), name);
    assert_eq!(port.kind(), PortKind::Tap);
    let details = port.details().unwrap();
    assert_eq!(details["io"], io.as_str());
    assert_eq!(details["io_requested"], io.as_str());
    let flags = sysfs_flags(&name).expect("tap exists");
    assert_ne!(flags & libc::IFF_UP as u32, 0, "tap is up");

    let mut c = PortCounters::default();
    let frame = test_frame(0x5a, 60);
    assert_eq!(port.tx_burst(&[&frame], &mut c), 1);
    assert_eq!((c.tx_packets, c.tx_bytes), (1, 60));
    assert_eq!(c.total_drops(), 0);
    assert!(wait_until(|| stat(&name, "rx_packets") >= 1));

    let too_big = vec![0u8; MAX_FRAME_LEN];
    assert_eq!(port.tx_burst(&[&too_big], &mut c), 0);
    assert_eq!(c.drops(DropReason::TxTooBig), 1);
    assert_eq!(c.total_drops(), 1);

    drop(port);
    assert!(
        wait_until(|| sysfs_flags(&name).is_none()),
        "tap removed on close"
    );
}

fn receives_what_the_kernel_sends(io: TapIo) {
    let name = name('b', io);
    let mut port = open(&name, io);
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

fn refuses_tuns_busy_taps_and_bad_names(io: TapIo) {
    let tun = name('c', io);
    ip_quiet(&["link", "del", &tun]);
    ip(&["tuntap", "add", "dev", &tun, "mode", "tun"]);
    let _guard = LinkGuard(tun.clone());
    match TapPort::open_with(&tun, io) {
        Err(PortError::Os { what, iface, .. }) => {
            assert_eq!(iface, tun);
            assert!(what.contains("not a single-queue tap"), "{what}");
        }
        other => panic!("expected an error, got {:?}", other.map(|p| p.name)),
    }

    let name = name('d', io);
    let _first = open(&name, io);
    match TapPort::open_with(&name, io) {
        Err(e @ PortError::Os { .. }) => assert!(e.to_string().contains("in use"), "{e}"),
        other => panic!("expected busy, got {:?}", other.map(|p| p.name)),
    }

    assert!(matches!(
        TapPort::open_with("bad/name", io),
        Err(PortError::BadInterfaceName(_))
    ));
}

fn keeps_working_when_moved_to_another_netns(io: TapIo) {
    let ns = unique("vsn", if io == TapIo::Uring { "eu" } else { "es" });
    let name = name('e', io);
    ip_quiet(&["netns", "del", &ns]);
    ip(&["netns", "add", &ns]);
    let _ns_guard = NetnsGuard(ns.clone());
    let mut port = open(&name, io);
    ip(&["link", "set", &name, "netns", &ns]);

    // Down while moved: writes fail with EIO, counted, no panic.
    let mut c = PortCounters::default();
    let frame = test_frame(0x5e, 60);
    assert_eq!(port.tx_burst(&[&frame, &frame], &mut c), 0);
    assert_eq!(c.drops(DropReason::TxError), 2);
    let hdrs = [VnetHdr::default(); 3];
    assert_eq!(
        port.tx_burst_offload(&[&frame, &frame, &frame], &hdrs, &mut c),
        0
    );
    assert_eq!(c.drops(DropReason::TxError), 5);
    assert_eq!((c.tx_packets, c.total_drops()), (0, 5));

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

/// Queues `n` test frames (markers `first..`) on the tap's fd. A raw
/// socket's send hands the frame to the tap's transmit in the call
/// (tun counts it only when read), so a short pause covers a qdisc
/// that ran late.
fn queue_frames(port: &TapPort, peer: &RawSocket, first: u8, n: u8) {
    for m in first..first + n {
        peer.send(&test_frame(m, 60 + usize::from(m)));
    }
    let fd = port.readiness_fd().unwrap();
    assert_ne!(poll_fd(fd, libc::POLLIN, 2000) & libc::POLLIN, 0, "queued");
    std::thread::sleep(std::time::Duration::from_millis(50));
}

fn one_burst_takes_every_queued_frame_in_order(io: TapIo) {
    let name = name('f', io);
    let mut port = open(&name, io);
    disable_ipv6(&name);
    let peer = RawSocket::bind(&name);
    let mut c = PortCounters::default();
    let mut batch = Batch::new();
    // Whatever the kernel sent on its own before IPv6 went off.
    while port.rx_burst(&mut batch, &mut c) > 0 {
        batch.clear();
    }
    batch.clear();

    // An idle poll first: the uring side then tries one read, and
    // must still take every frame in one burst.
    assert_eq!(port.rx_burst(&mut batch, &mut c), 0);
    queue_frames(&port, &peer, 1, 20);
    let got = port.rx_burst(&mut batch, &mut c);
    assert_eq!(
        markers(batch.iter().map(|b| b.frame())),
        (1..=20).collect::<Vec<_>>()
    );
    assert_eq!(got, batch.len());
    let f = batch.get(3).unwrap();
    assert_eq!(f.frame(), &test_frame(4, 64)[..]);

    // Into a batch that already holds a frame: it stays first, and a
    // burst stops when the batch is full.
    batch.clear();
    batch.push_copy(&test_frame(0xee, 60));
    queue_frames(&port, &peer, 21, 40);
    let got = port.rx_burst(&mut batch, &mut c);
    assert_eq!(got, BATCH_SIZE - 1);
    assert_eq!(batch.get(0).unwrap().frame()[14], 0xee);
    let rest: Vec<u8> = markers(batch.iter().skip(1).map(|b| b.frame()));
    assert_eq!(rest, (21..21 + BATCH_SIZE as u8 - 1).collect::<Vec<_>>());
    batch.clear();
    assert_eq!(port.rx_burst(&mut batch, &mut c), 9);
    assert_eq!(
        markers(batch.iter().map(|b| b.frame())),
        (52..61).collect::<Vec<_>>()
    );
    assert_eq!(c.total_drops(), 0);
}

fn one_burst_sends_many_frames_in_order(io: TapIo) {
    let name = name('g', io);
    let mut port = open(&name, io);
    disable_ipv6(&name);
    let peer = RawSocket::bind(&name);
    let frames: Vec<Vec<u8>> = (1..=40u8)
        .map(|m| test_frame(m, 60 + usize::from(m)))
        .collect();
    let too_big = vec![0u8; MAX_FRAME_LEN];
    let mut refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    refs.insert(10, &too_big);
    let mut c = PortCounters::default();
    assert_eq!(port.tx_burst(&refs, &mut c), 40);
    assert_eq!(c.tx_packets, 40);
    assert_eq!(c.drops(DropReason::TxTooBig), 1);
    assert_eq!(c.total_drops(), 1);
    let mut seen = Vec::new();
    while seen.len() < 40 {
        let Some(f) = peer.recv_matching(|f| f.len() > 14 && f[12..14] == [0x88, 0xb5]) else {
            break;
        };
        assert_eq!(f, frames[usize::from(f[14]) - 1], "frame intact");
        seen.push(f[14]);
    }
    assert_eq!(seen, (1..=40).collect::<Vec<_>>());
}
