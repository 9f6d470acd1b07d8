//! Root-only tests of the AF_XDP port on veth pairs.

use super::*;
use crate::port::sys::test_util::*;
use std::process::Command;

fn rig(tag: &str, mode: XdpMode) -> VethRig<AfXdpPort> {
    VethRig::new(tag, 1500, |a| {
        AfXdpPort::open(a, &AfXdpConfig { queues: 1, mode }).expect("open afxdp port")
    })
}

/// `ip -d link show` of `iface`, to see what XDP program the kernel has
/// attached to it (an independent view, not our own bookkeeping).
fn ip_link(iface: &str) -> String {
    let out = Command::new("ip")
        .args(["-d", "link", "show", "dev", iface])
        .output()
        .expect("run ip");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn port_moves_to_the_datapath_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<AfXdpPort>();
}

#[test]
fn receives_byte_for_byte_and_wakes_the_readiness_fd() {
    let mut r = rig("r", XdpMode::Auto);
    let fd = r.port.readiness_fd().unwrap();
    assert_eq!(poll_fd(fd, libc::POLLIN, 0) & libc::POLLIN, 0, "idle fd");
    let frame = test_frame(0x11, 100);
    r.peer.send(&frame);
    assert_ne!(
        poll_fd(fd, libc::POLLIN, 2000) & libc::POLLIN,
        0,
        "fd readable when a frame waits"
    );
    assert!(r.rx_expect(&frame));
    let big = test_frame(0x12, 1514);
    r.peer.send(&big);
    assert!(r.rx_expect(&big));
    assert_eq!(r.c.total_drops(), 0);
    let d = r.port.details().unwrap();
    assert_eq!(d["xdp_mode"], "native", "veth has native XDP: {d}");
    assert_eq!(d["bind"], "copy", "veth has no zero-copy: {d}");
}

#[test]
fn many_frames_cycle_through_the_fill_ring() {
    // More frames than rx chunks: every chunk must come back to the fill
    // ring for this to pass.
    let mut r = rig("c", XdpMode::Auto);
    let mut batch = Batch::new();
    let mut received = 0;
    for round in 0..(RX_FRAMES as usize * 2 / 64) {
        for i in 0..64u8 {
            r.peer.send(&test_frame(i ^ round as u8, 60));
        }
        assert!(wait_until(|| {
            batch.clear();
            received += r.port.rx_burst(&mut batch, &mut r.c);
            received >= (round + 1) * 64
        }));
    }
    assert_eq!(r.c.total_drops(), 0);
}

#[test]
fn sends_and_reuses_tx_chunks() {
    let mut r = rig("t", XdpMode::Auto);
    let frame = test_frame(0x21, 200);
    assert!(r.send(&frame), "peer got the frame");
    assert_eq!((r.c.tx_packets, r.c.tx_bytes), (1, 200));
    // More frames than tx chunks, a burst at a time, each flushed.
    for i in 0..(TX_FRAMES / 32 * 3) {
        let f = test_frame(i as u8, 64);
        let burst = vec![&f[..]; 32];
        assert_eq!(r.port.tx_burst(&burst, &mut r.c), 32, "burst {i}");
        r.port.flush(&mut r.c);
    }
    assert_eq!(r.c.drops(DropReason::TxRingFull), 0);
    let last = test_frame(0x22, 300);
    assert!(wait_until(|| {
        r.port.flush(&mut r.c);
        r.port.queues[0].tx_free.len() == TX_FRAMES as usize
    }));
    assert!(r.send(&last));
}

#[test]
fn too_big_and_ring_full_are_counted() {
    let mut r = rig("f", XdpMode::Auto);
    let big = test_frame(0x51, 1515);
    assert_eq!(r.port.tx_burst(&[&big], &mut r.c), 0);
    assert_eq!(r.c.drops(DropReason::TxTooBig), 1);
    let tagged_max = tagged(0x8100, 5, &test_frame(0x52, 1514));
    assert_eq!(r.port.tx_burst(&[&tagged_max], &mut r.c), 1);
    // No flush: the ring fills up.
    let frame = test_frame(0x53, 60);
    let burst = vec![&frame[..]; TX_FRAMES as usize + 4];
    assert_eq!(r.port.tx_burst(&burst, &mut r.c), TX_FRAMES as usize - 1);
    assert_eq!(r.c.drops(DropReason::TxRingFull), 5);
}

#[test]
fn generic_mode_works() {
    let mut r = rig("g", XdpMode::Generic);
    let frame = test_frame(0x31, 80);
    r.peer.send(&frame);
    assert!(r.rx_expect(&frame));
    assert!(r.send(&test_frame(0x32, 90)));
    assert_eq!(r.port.details().unwrap()["xdp_mode"], "generic");
    assert!(ip_link(&r.a).contains("xdpgeneric"), "{}", ip_link(&r.a));
}

#[test]
fn program_is_attached_while_the_port_lives_and_refuses_a_second() {
    let r = rig("a", XdpMode::Native);
    let id = r.port.details().unwrap()["prog_id"].as_u64().unwrap();
    let shown = ip_link(&r.a);
    assert!(
        shown.contains(&format!("prog/xdp id {id}")),
        "program {id} not on {}: {shown}",
        r.a
    );
    for mode in [XdpMode::Native, XdpMode::Generic, XdpMode::Auto] {
        let cfg = AfXdpConfig { queues: 1, mode };
        let e = AfXdpPort::open(&r.a, &cfg)
            .err()
            .expect("second port refused");
        assert!(e.to_string().contains("already has an XDP program"), "{e}");
    }
    let VethRig { port, a, .. } = r;
    drop(port);
    assert!(!ip_link(&a).contains("prog/xdp"), "{}", ip_link(&a));
}

#[test]
fn open_errors_are_clear() {
    let cfg = AfXdpConfig::default();
    let missing = unique("vxx", "");
    assert!(matches!(
        AfXdpPort::open(&missing, &cfg),
        Err(PortError::NoSuchInterface(n)) if n == missing
    ));
    let e = AfXdpPort::open("lo", &cfg).err().unwrap().to_string();
    assert!(e.contains("Ethernet"), "{e}");
    let r = rig("q", XdpMode::Auto);
    let cfg = AfXdpConfig {
        queues: 2,
        mode: XdpMode::Auto,
    };
    drop(r.port);
    let e = AfXdpPort::open(&r.a, &cfg).err().unwrap().to_string();
    assert!(
        e.contains("queues=2") && e.contains("1 receive queue"),
        "{e}"
    );
}

#[test]
fn jumbo_mtu_is_refused() {
    let (a, b) = (unique("vpa", "m"), unique("vpb", "m"));
    let _veth = veth_pair(&a, &b, 9000);
    let e = AfXdpPort::open(&a, &AfXdpConfig::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("MTU 9000") && e.contains("multi-buffer"), "{e}");
}

#[test]
fn two_queues_receive_through_one_readiness_fd() {
    let (a, b) = (unique("vpa", "2q"), unique("vpb", "2q"));
    ip_quiet(&["link", "del", &a]);
    ip(&[
        "link",
        "add",
        &a,
        "numrxqueues",
        "2",
        "numtxqueues",
        "2",
        "type",
        "veth",
        "peer",
        "name",
        &b,
        "numrxqueues",
        "2",
        "numtxqueues",
        "2",
    ]);
    let _veth = LinkGuard(a.clone());
    ip(&["link", "set", &b, "up"]);
    let cfg = AfXdpConfig {
        queues: 2,
        mode: XdpMode::Auto,
    };
    let mut port = AfXdpPort::open(&a, &cfg).expect("open with two queues");
    assert_eq!(port.details().unwrap()["queues"], serde_json::json!([0, 1]));
    let peer = RawSocket::bind(&b);
    let mut c = PortCounters::default();
    // The peer spreads frames over its tx queues by flow hash, so either
    // socket may get each; all must arrive through the one port.
    let frames: Vec<Vec<u8>> = (0..64u8)
        .map(|i| {
            let mut f = test_frame(0x40, 100);
            f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 1, i]);
            f
        })
        .collect();
    for f in &frames {
        peer.send(f);
    }
    let fd = port.readiness_fd().unwrap();
    assert_ne!(poll_fd(fd, libc::POLLIN, 2000) & libc::POLLIN, 0);
    let mut batch = Batch::new();
    let mut seen = 0;
    assert!(wait_until(|| {
        batch.clear();
        port.rx_burst(&mut batch, &mut c);
        seen += batch
            .iter()
            .filter(|b| frames.iter().any(|f| b.frame() == &f[..]))
            .count();
        seen == frames.len()
    }));
    assert_eq!(c.total_drops(), 0);
}
