//! Root-only tests of the AF_PACKET port over real veth pairs.

use super::*;
use crate::port::sys::test_util::*;
use std::time::{Duration, Instant};

fn rig(tag: &str, mtu: u32) -> VethRig<AfPacketPort> {
    VethRig::new(tag, mtu, |a| {
        AfPacketPort::open(a).expect("open afpacket port")
    })
}

#[test]
fn port_moves_to_the_datapath_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<AfPacketPort>();
}

#[test]
fn geometry_follows_the_mtu() {
    // Every rx slot holds a 64 KiB GSO frame behind both headers; tx
    // slots hold the MTU.
    for mtu in [68, 1500, 9000] {
        let g = ring_geometry(mtu, 4096);
        assert_eq!((g.frame_size, g.block_size), (69632, 69632), "mtu {mtu}");
        assert_eq!(g.rx_frames, RX_FRAMES);
    }
    let g = ring_geometry(1500, 4096);
    assert_eq!(
        (g.tx_frame_size, g.tx_block_size, g.tx_frames),
        (2048, 4096, 512)
    );
    let g = ring_geometry(9000, 4096);
    assert_eq!(
        (g.tx_frame_size, g.tx_block_size, g.tx_frames),
        (16384, 16384, 64)
    );
    let g = ring_geometry(65535, 4096);
    assert!(g.frame_size as usize >= RX_HEADER_ROOM + 65535);
    assert_eq!(ring_geometry(68, 65536).block_size, 131072);
}

#[test]
fn receives_byte_for_byte() {
    let mut r = rig("r", 1500);
    let frame = test_frame(0x11, 100);
    r.peer.send(&frame);
    let fd = r.port.readiness_fd().unwrap();
    assert_ne!(
        poll_fd(fd, libc::POLLIN, 2000) & libc::POLLIN,
        0,
        "fd readable"
    );
    assert!(r.rx_expect(&frame));
    let small = test_frame(0x12, 60);
    r.peer.send(&small);
    assert!(r.rx_expect(&small));
    assert!(r.c.rx_packets >= 2 && r.c.rx_bytes >= 160);
    assert_eq!(r.c.total_drops(), 0);
}

#[test]
fn sends_and_never_receives_its_own_frames() {
    let mut r = rig("t", 1500);
    let frame = test_frame(0x21, 200);
    assert!(r.send(&frame), "peer got the frame");
    assert_eq!((r.c.tx_packets, r.c.tx_bytes), (1, 200));
    let mut batch = Batch::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(300) {
        batch.clear();
        r.port.rx_burst(&mut batch, &mut r.c);
        assert!(
            batch.iter().all(|b| b.frame() != frame),
            "own frame came back"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn vlan_tags_stripped_by_the_kernel_are_put_back() {
    let mut r = rig("v", 1500);
    let inner = test_frame(0x31, 80);
    let dot1q = tagged(0x8100, 0x0064, &inner);
    r.peer.send(&dot1q);
    assert!(r.rx_expect(&dot1q), "802.1Q frame in line");
    let qinq = tagged(0x88a8, 0x00c8, &dot1q);
    r.peer.send(&qinq);
    assert!(r.rx_expect(&qinq), "802.1ad + 802.1Q frame in line");
    let prio = tagged(0x8100, 0xe000, &inner);
    r.peer.send(&prio);
    assert!(r.rx_expect(&prio), "priority tag (VID 0) in line");
    // A full-size tagged frame still fits both ways.
    let untagged = test_frame(0x32, 1514);
    let big = tagged(0x8100, 0x0064, &untagged);
    assert!(r.send_seen(&big, &untagged), "1518-byte tagged frame sent");
    r.peer.send(&big);
    assert!(r.rx_expect(&big));
    assert_eq!(r.c.total_drops(), 0);
}

#[test]
fn open_errors_are_clear() {
    let missing = unique("vpx", "");
    assert!(matches!(
        AfPacketPort::open(&missing),
        Err(PortError::NoSuchInterface(n)) if n == missing
    ));
    assert!(matches!(
        AfPacketPort::open("a:b"),
        Err(PortError::BadInterfaceName(_))
    ));
    match AfPacketPort::open("lo") {
        Err(e @ PortError::Os { .. }) => assert!(e.to_string().contains("Ethernet"), "{e}"),
        _ => panic!("lo must be refused"),
    }
}

#[test]
fn jumbo_frames_pass_both_ways() {
    let mut r = rig("j", 9000);
    let frame = test_frame(0x41, 8000);
    r.peer.send(&frame);
    assert!(r.rx_expect(&frame), "8000-byte frame received");
    assert!(r.send(&frame), "8000-byte frame sent");
    let max = test_frame(0x42, 9014);
    r.peer.send(&max);
    assert!(r.rx_expect(&max), "9014-byte frame received");
    assert_eq!(r.c.total_drops(), 0);
}

#[test]
fn too_big_and_ring_full_are_counted() {
    let mut r = rig("f", 1500);
    let big = test_frame(0x51, 1515);
    assert_eq!(r.port.tx_burst(&[&big], &mut r.c), 0);
    assert_eq!(r.c.drops(DropReason::TxTooBig), 1);

    let frame = test_frame(0x52, 60);
    let n = r.port.tx_frames as usize;
    let burst = vec![&frame[..]; n + 5];
    assert_eq!(r.port.tx_burst(&burst, &mut r.c), n);
    assert_eq!(r.c.drops(DropReason::TxRingFull), 5);
    // Flushing drains the ring (over several kicks if the socket's send
    // buffer fills) and the ring takes frames again.
    let last = test_frame(0x53, 60);
    assert!(wait_until(|| {
        r.port.flush(&mut r.c);
        r.port.ring.tx_status(r.port.tx_next) == libc::TP_STATUS_AVAILABLE
    }));
    assert!(r.send(&last));
    assert_eq!(r.c.drops(DropReason::TxError), 0);
}

#[test]
fn frames_the_kernel_drops_on_a_full_ring_are_counted() {
    // 9000-byte MTU: 128 rx slots. Nothing drains the ring meanwhile.
    let mut r = rig("k", 9000);
    let slots = u64::from(r.port.rx_frames);
    let extra = 20;
    for i in 0..slots + extra {
        r.peer.send(&test_frame(0x61 ^ i as u8, 100));
    }
    assert!(
        wait_until(|| {
            r.port.tick(Duration::ZERO, &mut r.c);
            r.c.drops(DropReason::RxRingFull) >= extra
        }),
        "ring drops counted: {}",
        r.c.drops(DropReason::RxRingFull)
    );
    assert_eq!(r.c.drops(DropReason::RxRingFull), extra);
    let mut batch = Batch::new();
    let mut received = 0;
    loop {
        batch.clear();
        let n = r.port.rx_burst(&mut batch, &mut r.c);
        if n == 0 {
            break;
        }
        received += n as u64;
    }
    assert_eq!(received, slots);
    // The kernel's counter was reset when read: nothing counted twice.
    r.port.tick(Duration::ZERO, &mut r.c);
    assert_eq!(r.c.drops(DropReason::RxRingFull), extra);
}

#[test]
fn backpressure_keeps_frames_until_sent() {
    let mut r = rig("b", 1500);
    // A slow qdisc and a small send buffer make sendto stop midway
    // (EAGAIN) or drop at the qdisc (ENOBUFS): frames must wait in the
    // ring and all go out on later flushes, in order.
    let tbf = ["rate", "8mbit", "burst", "4000", "limit", "4000"];
    run(
        "tc",
        &[&["qdisc", "add", "dev", &r.a, "root", "tbf"][..], &tbf].concat(),
    );
    set_sndbuf(r.port.readiness_fd().unwrap(), 4096);
    let frames: Vec<Vec<u8>> = (0..100u8)
        .map(|i| {
            let mut f = test_frame(0x80, 1000);
            f[14] = i;
            f
        })
        .collect();
    let refs: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
    assert_eq!(r.port.tx_burst(&refs, &mut r.c), 100);
    let mut kicks = 0;
    assert!(wait_until(|| {
        r.port.flush(&mut r.c);
        kicks += 1;
        !r.port.tx_pending
    }));
    assert!(kicks > 1, "the kernel took everything in one kick");
    let mut seen = 0u8;
    while let Some(f) = r.peer.recv_matching(|f| f.len() == 1000 && f[13] == 0xb5) {
        assert_eq!(f[14], seen, "frames out of order or lost");
        seen += 1;
        if seen == 100 {
            break;
        }
    }
    assert_eq!(seen, 100);
    assert_eq!(r.c.total_drops(), 0);
}

#[test]
fn refused_frames_do_not_wedge_the_ring() {
    let mut r = rig("w", 1500);
    // A checksum request past the frame's end: the kernel refuses it
    // (EINVAL, WRONG_FORMAT slot).
    let bad = VnetHdr {
        flags: crate::wire::vnet::F_NEEDS_CSUM,
        csum_start: 2000,
        csum_offset: 16,
        ..VnetHdr::default()
    };
    let stale = test_frame(0x61, 60);
    let after = test_frame(0x62, 60);
    let hdrs = [bad, VnetHdr::default()];
    assert_eq!(
        r.port.tx_burst_offload(&[&stale, &after], &hdrs, &mut r.c),
        2
    );
    r.port.flush(&mut r.c);
    assert_eq!(r.c.drops(DropReason::TxError), 2);
    for i in 0..3u8 {
        assert!(r.send(&test_frame(0x63 + i, 60)), "ring still sends");
    }
    assert_eq!(r.c.drops(DropReason::TxError), 2);
}

#[test]
fn link_down_is_counted_and_recovers() {
    let mut r = rig("d", 1500);
    ip(&["link", "set", &r.a, "down"]);
    let frame = test_frame(0x71, 60);
    assert_eq!(r.port.tx_burst(&[&frame, &frame], &mut r.c), 2);
    r.port.flush(&mut r.c);
    assert_eq!(r.c.drops(DropReason::TxError), 2);
    ip(&["link", "set", &r.a, "up"]);
    // The ENETDOWN the kernel left on the socket is cleared by idle
    // polls, so the readiness fd stops signalling POLLERR.
    let mut batch = Batch::new();
    for _ in 0..IDLE_POLLS_BEFORE_ERROR_CHECK {
        batch.clear();
        r.port.rx_burst(&mut batch, &mut r.c);
    }
    let fd = r.port.readiness_fd().unwrap();
    assert_eq!(poll_fd(fd, libc::POLLIN, 0) & libc::POLLERR, 0);
    // Frames flow again once the veth has carrier.
    let carrier = format!("/sys/class/net/{}/carrier", r.a);
    assert!(wait_until(
        || std::fs::read_to_string(&carrier).is_ok_and(|s| s.trim() == "1")
    ));
    let again = test_frame(0x72, 60);
    assert!(r.send(&again));
    r.peer.send(&again);
    assert!(r.rx_expect(&again));
}
