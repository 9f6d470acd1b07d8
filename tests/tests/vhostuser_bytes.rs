//! Byte-exact frames through vhost-user ports: two testpmd VMs forward (`io`) between a pcap
//! file and their virtio-user port, so every frame a VM "sends" is read from a file we wrote
//! and every frame it receives lands in a file we read back. VM1's port is an access port of
//! VLAN 10, VM2's a trunk of VLANs 10 and 20: what crosses must come out byte for byte as sent,
//! with exactly the VLAN tag pushed or popped, and what may not cross is dropped and counted.

use std::time::Duration;

use vswitch_tests::testpmd::{
    self, add_vhost_port, port_counter, read_pcap, require_testpmd, wait_vhost_state, write_pcap,
    Fwd, Scratch, Testpmd, VirtioUser,
};
use vswitch_tests::{wait_for, Daemon};

const BR: &str = "br0";
const BCAST: [u8; 6] = [0xff; 6];
/// Unknown unicast: flooded.
const UNKNOWN: [u8; 6] = [0x02, 0, 0, 0, 0x99, 0x99];
const MCAST: [u8; 6] = [0x01, 0x00, 0x5e, 0x01, 0x02, 0x03];

fn mac(host: u8, n: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, host, n]
}

/// A frame of `len` bytes: addresses, an optional 802.1Q tag (PCP, VID), EtherType 0x88b5
/// (local experimental) and a payload that differs in every frame.
fn frame(dst: [u8; 6], src: [u8; 6], tag: Option<(u8, u16)>, len: usize, seed: u8) -> Vec<u8> {
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    if let Some((pcp, vid)) = tag {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&((u16::from(pcp) << 13) | vid).to_be_bytes());
    }
    f.extend_from_slice(&[0x88, 0xb5]);
    let mut x = u32::from(seed).wrapping_mul(2_654_435_761) | 1;
    while f.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        f.push(x as u8);
    }
    f.truncate(len);
    f
}

/// An ARP request as a Linux guest sends it on virtio: 42 bytes, not padded.
fn arp(src: [u8; 6]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&BCAST);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[10, 99, 0, 1, 0, 0, 0, 0, 0, 0, 10, 99, 0, 2]);
    f
}

/// `f` with an 802.1Q tag (PCP 0) for `vid` inserted after the addresses.
fn push(f: &[u8], vid: u16) -> Vec<u8> {
    let mut out = f[..12].to_vec();
    out.extend_from_slice(&[0x81, 0x00]);
    out.extend_from_slice(&vid.to_be_bytes());
    out.extend_from_slice(&f[12..]);
    out
}

/// `f` without its outer 802.1Q tag.
fn pop(f: &[u8]) -> Vec<u8> {
    let mut out = f[..12].to_vec();
    out.extend_from_slice(&f[16..]);
    out
}

#[track_caller]
fn assert_frames_eq(what: &str, got: &[Vec<u8>], want: &[Vec<u8>]) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g == w,
            "{what}: frame {i} differs\n got  ({} bytes) {g:02x?}\n want ({} bytes) {w:02x?}",
            g.len(),
            w.len()
        );
    }
    assert_eq!(got.len(), want.len(), "{what}: frame count");
}

#[test]
fn frames_cross_byte_exact_with_vlan_push_and_pop() {
    require_testpmd();
    let _slots = testpmd::reserve(2);
    let dir = Scratch::new("vhbytes");
    let d = Daemon::start("vh-bytes");
    d.ctl(&["bridge", "add", BR]);
    let (s1, s2) = (dir.path("vm1.sock"), dir.path("vm2.sock"));
    add_vhost_port(&d, BR, "vm1", &s1, &["access=10"]);
    add_vhost_port(&d, BR, "vm2", &s2, &["trunk=10,20"]);

    // VM1 (access 10) sends untagged frames of every size class, which VM2 must get tagged
    // with VLAN 10, and three frames the port must refuse.
    let mut from1 = Vec::new();
    for (i, len) in [60usize, 61, 64, 100, 128, 512, 1000, 1499, 1500, 1514]
        .into_iter()
        .enumerate()
    {
        let dst = [BCAST, UNKNOWN, MCAST][i % 3];
        from1.push(frame(dst, mac(1, i as u8), None, len, i as u8));
    }
    from1.push(arp(mac(1, 0x40)));
    let want2: Vec<Vec<u8>> = from1.iter().map(|f| push(f, 10)).collect();
    let refused1 = [
        frame(BCAST, mac(1, 0x50), Some((0, 10)), 100, 50), // tagged on an access port
        frame(BCAST, [0x03, 0, 0, 0, 1, 1], None, 100, 51), // multicast source
        vec![0xff; 12],                                     // runt
    ];
    from1.extend(refused1.iter().cloned());

    // VM2 (trunk 10,20) sends frames tagged 10 (any priority), which VM1 must get untagged, and
    // frames of other VLANs, untagged or double-tagged, which must not reach VM1.
    let mut from2 = Vec::new();
    for (i, len) in [60usize, 64, 65, 200, 1024, 1500, 1518]
        .into_iter()
        .enumerate()
    {
        let dst = [BCAST, UNKNOWN, MCAST, mac(1, 3)][i % 4];
        let pcp = [0u8, 5, 7][i % 3];
        from2.push(frame(
            dst,
            mac(2, i as u8),
            Some((pcp, 10)),
            len,
            100 + i as u8,
        ));
    }
    let want1: Vec<Vec<u8>> = from2.iter().map(|f| pop(f)).collect();
    let vlan20 = 2;
    let mut inner = frame(BCAST, mac(2, 0x60), Some((0, 10)), 100, 160);
    inner.splice(16..16, [0x81, 0x00, 0x00, 0x0a]);
    let refused2 = [
        frame(BCAST, mac(2, 0x61), Some((0, 20)), 100, 161), // VLAN 20: nobody else in it
        frame(UNKNOWN, mac(2, 0x62), Some((3, 20)), 300, 162),
        frame(BCAST, mac(2, 0x63), Some((0, 30)), 100, 163), // VLAN not carried
        frame(BCAST, mac(2, 0x64), None, 100, 164),          // untagged on a trunk
        inner,                                               // double-tagged
    ];
    from2.extend(refused2.iter().cloned());

    let vm = |n: u8, sock: &std::path::Path, frames: &[Vec<u8>]| {
        let (rx, tx) = (
            dir.path(&format!("in{n}.pcap")),
            dir.path(&format!("out{n}.pcap")),
        );
        write_pcap(&rx, frames);
        let t = Testpmd::builder()
            .pcap(&rx, &tx)
            .virtio_user(VirtioUser::new(sock))
            .fwd(Fwd::Io)
            .no_flush_rx()
            .start();
        (t, tx)
    };
    let (mut vm1, out1) = vm(1, &s1, &from1);
    let (mut vm2, out2) = vm(2, &s2, &from2);
    for (t, port) in [(&mut vm1, "vm1"), (&mut vm2, "vm2")] {
        wait_vhost_state(&d, port, "ready", Duration::from_secs(10));
        t.wait_link_up(1, Duration::from_secs(10));
        t.clear_stats();
    }
    vm2.start_fwd();
    vm1.start_fwd();
    // Port 0 is the pcap file: its tx counts the frames written to out.pcap.
    vm2.wait_rx(1, want2.len() as u64, Duration::from_secs(10));
    vm1.wait_rx(1, want1.len() as u64, Duration::from_secs(10));
    wait_for(
        Duration::from_secs(10),
        "the refused frames counted",
        || {
            let counted = drops(&d, "vm1") >= refused1.len() as u64
                && drops(&d, "vm2") >= refused2.len() as u64;
            counted.then_some(())
        },
    );
    std::thread::sleep(Duration::from_millis(300));
    let (fwd1, fwd2) = (vm1.stop_fwd(), vm2.stop_fwd());
    eprintln!("VM1 {fwd1:?}\nVM2 {fwd2:?}");
    vm1.quit();
    vm2.quit();
    assert_frames_eq("VM1 -> VM2 (tag 10 pushed)", &read_pcap(&out2), &want2);
    assert_frames_eq("VM2 -> VM1 (tag popped)", &read_pcap(&out1), &want1);

    let (st1, st2) = (d.port_stats("vm1"), d.port_stats("vm2"));
    eprintln!("vm1 {st1}\nvm2 {st2}");
    assert_eq!(st1["drops"]["vlan_tagged_on_access"], 1, "{st1}");
    assert_eq!(st1["drops"]["invalid_src_mac"], 1, "{st1}");
    assert_eq!(st1["drops"]["runt"], 1, "{st1}");
    assert_eq!(drops(&d, "vm1"), refused1.len() as u64, "{st1}");
    assert_eq!(st2["drops"]["vlan_not_allowed"], 1, "{st2}");
    assert_eq!(st2["drops"]["vlan_untagged_on_trunk"], 1, "{st2}");
    assert_eq!(st2["drops"]["vlan_double_tagged"], 1, "{st2}");
    assert_eq!(st2["drops"]["no_flood_ports"], vlan20, "{st2}");
    assert_eq!(drops(&d, "vm2"), refused2.len() as u64, "{st2}");
    let bytes = |fs: &[Vec<u8>]| fs.iter().map(|f| f.len() as u64).sum::<u64>();
    // Every frame taken from a guest counts as received, the refused ones too.
    assert_eq!(port_counter(&d, "vm1", "rx_packets"), from1.len() as u64);
    assert_eq!(port_counter(&d, "vm2", "rx_packets"), from2.len() as u64);
    assert_eq!(port_counter(&d, "vm1", "rx_bytes"), bytes(&from1), "{st1}");
    assert_eq!(port_counter(&d, "vm2", "rx_bytes"), bytes(&from2), "{st2}");
    assert_eq!(port_counter(&d, "vm1", "tx_bytes"), bytes(&want1), "{st1}");
    assert_eq!(port_counter(&d, "vm2", "tx_bytes"), bytes(&want2), "{st2}");
}

fn drops(d: &Daemon, port: &str) -> u64 {
    testpmd::port_drops(d, port)
}

const VM1_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x01];
const MSS: usize = 1448;

/// The Internet checksum of `b`.
fn inet_csum(b: &[u8]) -> u16 {
    let mut s: u32 = b
        .chunks(2)
        .map(|c| (u32::from(c[0]) << 8) | u32::from(*c.get(1).unwrap_or(&0)))
        .sum();
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Whether the TCP checksum of an IPv4/TCP frame (no options in IP) is right.
fn tcp_csum_ok(f: &[u8]) -> bool {
    let mut ph = f[26..34].to_vec();
    ph.extend_from_slice(&[0, 6]);
    ph.extend_from_slice(&((f.len() - 34) as u16).to_be_bytes());
    ph.extend_from_slice(&f[34..]);
    inet_csum(&ph) == 0
}

/// An IPv4/TCP frame from VM1 to UNKNOWN with `payload` bytes at sequence number `seq`, its
/// checksums right, PSH and ACK set.
fn tcp_frame(payload: usize, seq: u32) -> Vec<u8> {
    let mut f = UNKNOWN.to_vec();
    f.extend_from_slice(&VM1_MAC);
    f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
    f.extend_from_slice(&((40 + payload) as u16).to_be_bytes());
    f.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    let c = inet_csum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&[0x13, 0x88, 0x00, 0x50]);
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend((0..payload).map(|i| (i * 7 % 251) as u8));
    let mut ph = f[26..34].to_vec();
    ph.extend_from_slice(&[0, 6]);
    ph.extend_from_slice(&((20 + payload) as u16).to_be_bytes());
    ph.extend_from_slice(&f[34..]);
    let c = inet_csum(&ph);
    f[50..52].copy_from_slice(&c.to_be_bytes());
    f
}

/// Checks that `segs` are `orig` cut at MSS as a kernel would: same addresses and header
/// fields, consecutive sequence numbers, PSH only on the last, every checksum right, and the
/// payloads together exactly the original's.
#[track_caller]
fn assert_segments_of(orig: &[u8], segs: &[Vec<u8>]) {
    let payload = &orig[54..];
    assert_eq!(segs.len(), payload.len().div_ceil(MSS), "segment count");
    let seq0 = u32::from_be_bytes([orig[38], orig[39], orig[40], orig[41]]);
    for (i, s) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        let part = &payload[i * MSS..payload.len().min((i + 1) * MSS)];
        assert_eq!(s.len(), 54 + part.len(), "segment {i} length");
        assert_eq!(s[..16], orig[..16], "segment {i}: Ethernet and IP start");
        assert_eq!(
            s[16..18],
            ((40 + part.len()) as u16).to_be_bytes(),
            "segment {i}: IP length"
        );
        assert_eq!(
            s[20..24],
            orig[20..24],
            "segment {i}: IP flags, TTL, protocol"
        );
        assert_eq!(s[26..38], orig[26..38], "segment {i}: addresses and ports");
        assert_eq!(inet_csum(&s[14..34]), 0, "segment {i}: IP checksum");
        let seq = seq0.wrapping_add((i * MSS) as u32);
        assert_eq!(s[38..42], seq.to_be_bytes(), "segment {i}: sequence number");
        assert_eq!(s[42..47], orig[42..47], "segment {i}: ack, data offset");
        let flags = if last { orig[47] } else { orig[47] & !0x08 };
        assert_eq!(s[47], flags, "segment {i}: TCP flags");
        assert_eq!(s[48..50], orig[48..50], "segment {i}: window");
        assert!(tcp_csum_ok(s), "segment {i}: TCP checksum");
        assert_eq!(&s[54..], part, "segment {i}: payload");
    }
}

/// A VM that sends TSO frames and checksum-offloaded frames (testpmd's csum engine with its
/// virtio-user port's offloads on: the switch negotiates CSUM and HOST_TSO4). To a VM that
/// takes no offloads, the switch cuts each TSO frame into MSS segments and finishes every
/// checksum, as a kernel would; to a VM that takes them (GUEST_CSUM, GUEST_TSO4: LRO on its
/// virtio-user port) it hands them on whole.
#[test]
fn offloads_from_a_vm_are_finished_or_handed_on() {
    require_testpmd();
    let _slots = testpmd::reserve(2);
    let dir = Scratch::new("vhoffl");
    let d = Daemon::start("vh-offl");
    d.ctl(&["bridge", "add", BR]);
    let (s1, s2) = (dir.path("vm1.sock"), dir.path("vm2.sock"));
    add_vhost_port(&d, BR, "vm1", &s1, &[]);
    add_vhost_port(&d, BR, "vm2", &s2, &[]);
    let sent = [
        tcp_frame(4000, 1000),
        tcp_frame(1000, 5000),
        tcp_frame(8000, 6000),
    ];
    let empty = dir.path("empty.pcap");
    write_pcap(&empty, &[]);
    let vm1_in = dir.path("vm1in.pcap");
    write_pcap(&vm1_in, &sent);
    for guest_offloads in [false, true] {
        let (out1, out2) = (
            dir.path("out1.pcap"),
            dir.path(&format!("out2{guest_offloads}.pcap")),
        );
        let mut vm2 = Testpmd::builder()
            .pcap(&empty, &out2)
            .virtio_user(VirtioUser::new(&s2))
            .fwd(Fwd::Io)
            .start();
        if guest_offloads {
            for cmd in [
                "port stop all",
                "port config 1 rx_offload tcp_lro on",
                "port config 1 rx_offload tcp_cksum on",
                "port start all",
            ] {
                vm2.cmd(cmd);
            }
        }
        let mac = VM1_MAC.map(|b| format!("{b:02x}")).join(":");
        let peer = UNKNOWN.map(|b| format!("{b:02x}")).join(":");
        let mut vm1 = Testpmd::builder()
            .pcap(&vm1_in, &out1)
            .virtio_user(VirtioUser::new(&s1).mac(&mac))
            .eth_peer(1, &peer)
            .fwd(Fwd::Io)
            .no_flush_rx()
            .start();
        for cmd in [
            "set fwd csum",
            "port stop all",
            "port config 1 tx_offload tcp_cksum on",
            "port config 1 tx_offload tcp_tso on",
            "port config 1 tx_offload multi_segs on",
            "csum set ip sw 1",
            "csum set tcp hw 1",
            "tso set 1448 1",
            "port start all",
        ] {
            vm1.cmd(cmd);
        }
        vm1.wait_link_up(1, Duration::from_secs(10));
        vm2.wait_link_up(1, Duration::from_secs(10));
        let f1 = testpmd::features(&wait_vhost_state(
            &d,
            "vm1",
            "ready",
            Duration::from_secs(10),
        ));
        let f2 = testpmd::features(&wait_vhost_state(
            &d,
            "vm2",
            "ready",
            Duration::from_secs(10),
        ));
        eprintln!("guest offloads {guest_offloads}: vm1 {f1:?}, vm2 {f2:?}");
        for f in ["CSUM", "HOST_TSO4"] {
            assert!(f1.iter().any(|g| g == f), "vm1 lacks {f}: {f1:?}");
        }
        for f in ["GUEST_CSUM", "GUEST_TSO4"] {
            assert_eq!(f2.iter().any(|g| g == f), guest_offloads, "vm2 {f}: {f2:?}");
        }
        let rx0 = port_counter(&d, "vm1", "rx_packets");
        let tx0 = port_counter(&d, "vm2", "tx_packets");
        let want = if guest_offloads {
            3
        } else {
            1 + 4000usize.div_ceil(MSS) + 8000usize.div_ceil(MSS)
        };
        vm2.start_fwd();
        vm1.start_fwd();
        vm2.wait_rx(1, want as u64, Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(300));
        vm1.stop_fwd();
        vm2.stop_fwd();
        vm1.quit();
        vm2.quit();
        assert_eq!(port_counter(&d, "vm1", "rx_packets") - rx0, 3);
        assert_eq!(port_counter(&d, "vm2", "tx_packets") - tx0, want as u64);
        let got = read_pcap(&out2);
        assert_eq!(got.len(), want, "frames at VM2");
        if guest_offloads {
            // Whole, as sent: only the checksums may differ (VM1's csum engine leaves them to
            // the offload, and VM2 takes them unfinished).
            for (g, s) in got.iter().zip(&sent) {
                let mask = |f: &[u8]| {
                    let mut f = f.to_vec();
                    f[24..26].fill(0);
                    f[50..52].fill(0);
                    f
                };
                assert!(
                    mask(g) == mask(s),
                    "a frame changed: {} vs {} bytes",
                    g.len(),
                    s.len()
                );
            }
        } else {
            let n1 = 4000usize.div_ceil(MSS);
            assert_segments_of(&sent[0], &got[..n1]);
            assert_frames_eq("checksum-offloaded frame", &got[n1..n1 + 1], &sent[1..2]);
            assert_segments_of(&sent[2], &got[n1 + 1..]);
        }
        for port in ["vm1", "vm2"] {
            assert_eq!(drops(&d, port), 0, "{}", d.port_stats(port));
        }
    }
}
