//! vhost-user ports (`type=vhostuser`) with DPDK's testpmd as the VM: its virtio-user port is
//! the guest's driver, and the switch is the device.

use std::time::Duration;

use vswitch_tests::testpmd::{
    self, add_vhost_port, features, port_counter, port_drops, queue_sum, require_testpmd,
    vhost_details, wait_vhost_state, Fwd, Scratch, Testpmd, VirtioUser,
};
use vswitch_tests::{wait_for, Daemon, Host};

/// The harness itself, against DPDK's own vhost back end: a bounded txonly run from a
/// virtio-user port arrives whole at the back end, with the same counts on both sides, with
/// either side serving the socket.
#[test]
fn harness_counts_agree_with_dpdk_vhost() {
    require_testpmd();
    let _slots = testpmd::reserve(2);
    let dir = Scratch::new("vhself");
    for (round, virtio_serves) in [false, true].into_iter().enumerate() {
        let sock = dir.path(&format!("s{round}.sock"));
        let vhost = || {
            Testpmd::builder()
                .vhost(&sock, virtio_serves, 1)
                .fwd(Fwd::RxOnly)
                .start()
        };
        let mut virtio_user = VirtioUser::new(&sock);
        if virtio_serves {
            virtio_user = virtio_user.server();
        }
        let vm = || {
            Testpmd::builder()
                .virtio_user(virtio_user.clone())
                .fwd(Fwd::TxOnly)
                .txpkts(128)
                .start()
        };
        // Whoever serves the socket starts first.
        let (mut back, mut front) = if virtio_serves {
            let front = vm();
            (vhost(), front)
        } else {
            let back = vhost();
            (back, vm())
        };
        back.start_fwd();
        front.wait_link_up(0, Duration::from_secs(10));
        back.wait_link_up(0, Duration::from_secs(10));
        let fwd = front.burst(0, 50_000, Duration::from_secs(3));
        let sent = front.port_stats(0);
        eprintln!("virtio-user sent {sent:?}, engine {fwd:?}");
        assert!(sent.tx_packets > 0, "nothing sent: {sent:?}");
        assert_eq!(fwd[0].tx_packets, sent.tx_packets);
        assert_eq!(sent.tx_bytes, sent.tx_packets * 128);
        let got = back.wait_rx(0, sent.tx_packets, Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(200));
        let later = back.port_stats(0);
        assert_eq!(later, got, "more arrived than was sent");
        assert_eq!(
            (got.rx_packets, got.rx_bytes),
            (sent.tx_packets, sent.tx_bytes)
        );
        let rx = back.stop_fwd();
        assert_eq!(rx[0].rx_packets, sent.tx_packets, "{rx:?}");
        assert_eq!(rx[0].rx_dropped, 0, "{rx:?}");
        let out = front.quit();
        assert!(out.contains("Bye"), "no clean exit:\n{out}");
        back.kill();
        assert!(!sock.exists(), "the served socket was not removed");
    }
    // A virtio-user port with nobody on its socket: testpmd gives up, and so does the start.
    let err = Testpmd::builder()
        .virtio_user(VirtioUser::new(dir.path("nobody.sock")))
        .try_start()
        .err()
        .expect("testpmd started without its back end");
    assert!(err.contains("nobody.sock"), "{err}");
}

const BR: &str = "br0";
const VM1_MAC: &str = "02:00:00:00:01:01";
const VM2_MAC: &str = "02:00:00:00:02:02";
/// Length of the frames the VMs send: not a size anything else on the bridge sends.
const FRAME: u64 = 100;

fn sysfs_counter(path: &str) -> u64 {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{path}: {text:?}"))
}

/// Frames the kernel delivered to the namespace end of `host`'s veth, plus those it dropped
/// on the way (counted as tx_dropped of the root end): what the switch handed to the veth.
fn veth_delivered(host: &Host) -> u64 {
    let root = format!("/sys/class/net/{}/statistics/tx_dropped", host.root_if());
    host.counters().rx_packets + sysfs_counter(&root)
}

/// One VM sends a bounded txonly burst of unknown-unicast frames; they flood to a second VM
/// (rxonly) and to a veth host. Every count agrees exactly: what VM1's driver put in its ring,
/// what the switch took from it, what it gave each output or counted as dropped there, and
/// what VM2's driver and the host's kernel received.
#[test]
fn vm_burst_floods_to_a_vm_and_a_host_with_exact_counts() {
    require_testpmd();
    let _slots = testpmd::reserve(2);
    let dir = Scratch::new("vhflood");
    let d = Daemon::start("vh-flood");
    d.ctl(&["bridge", "add", BR]);
    let (s1, s2) = (dir.path("vm1.sock"), dir.path("vm2.sock"));
    add_vhost_port(&d, BR, "vm1", &s1, &["mode=server"]);
    add_vhost_port(&d, BR, "vm2", &s2, &[]);
    let a = Host::veth("vhfa", "10.97.0.1/24");
    a.attach(&d, BR, "pa");
    assert_eq!(vhost_details(&d, "vm1")["state"], "listening");
    assert_eq!(
        vhost_details(&d, "vm2")["mode"],
        "server",
        "the default mode"
    );

    let mut vm2 = Testpmd::builder()
        .virtio_user(VirtioUser::new(&s2).mac(VM2_MAC))
        .fwd(Fwd::RxOnly)
        .start();
    let mut vm1 = Testpmd::builder()
        .virtio_user(VirtioUser::new(&s1).mac(VM1_MAC))
        .fwd(Fwd::TxOnly)
        .txpkts(FRAME as u32)
        .start();
    let det = wait_vhost_state(&d, "vm1", "ready", Duration::from_secs(10));
    wait_vhost_state(&d, "vm2", "ready", Duration::from_secs(10));
    eprintln!("vm1 ready: {det}");
    assert_eq!(det["socket"], s1.display().to_string());
    assert_eq!(det["queue_pairs"], 1);
    let features = features(&det);
    assert!(features.iter().any(|f| f == "VERSION_1"), "{features:?}");
    for q in det["queues"].as_array().expect("queues") {
        assert_eq!(q["enabled"], true, "{q}");
        assert!(q["size"].as_u64() > Some(0), "{q}");
    }
    d.wait_ports_up(Duration::from_secs(5));
    vm1.wait_link_up(0, Duration::from_secs(10));
    vm2.wait_link_up(0, Duration::from_secs(10));
    vm2.start_fwd();
    // Nothing has moved yet: the counts below are the burst's alone.
    for port in ["vm1", "vm2", "pa"] {
        let s = d.port_stats(port);
        assert_eq!(
            (s["rx_packets"].as_u64(), s["tx_packets"].as_u64()),
            (Some(0), Some(0)),
            "{s}"
        );
    }
    assert_eq!(veth_delivered(&a), 0);

    let fwd = vm1.burst(0, 20_000, Duration::from_secs(5));
    let sent = vm1.port_stats(0);
    eprintln!("VM1 sent {sent:?} (engine: {fwd:?})");
    assert!(sent.tx_packets >= 1000, "VM1 could send only {sent:?}");
    assert_eq!(sent.tx_bytes, sent.tx_packets * FRAME);
    let n = sent.tx_packets;
    wait_for(
        Duration::from_secs(20),
        "the switch to take VM1's frames",
        || (port_counter(&d, "vm1", "rx_packets") >= n).then_some(()),
    );
    let settled = |port: &str| port_counter(&d, port, "tx_packets") + port_drops(&d, port);
    wait_for(
        Duration::from_secs(20),
        "every flooded copy sent or counted",
        || (settled("vm2") >= n && settled("pa") >= n).then_some(()),
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        port_counter(&d, "vm1", "rx_packets"),
        n,
        "switch took exactly what VM1 sent"
    );
    assert_eq!(port_counter(&d, "vm1", "rx_bytes"), sent.tx_bytes);
    assert_eq!(port_drops(&d, "vm1"), 0, "{}", d.port_stats("vm1"));
    for port in ["vm2", "pa"] {
        assert_eq!(settled(port), n, "{port}: {}", d.port_stats(port));
    }
    let to_vm2 = port_counter(&d, "vm2", "tx_packets");
    let got = vm2.wait_rx(0, to_vm2, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(vm2.port_stats(0), got, "VM2 kept receiving");
    assert_eq!(got.rx_packets, to_vm2, "VM2 got what the switch gave it");
    assert_eq!(got.rx_bytes, port_counter(&d, "vm2", "tx_bytes"));
    assert_eq!(got.rx_bytes, to_vm2 * FRAME);
    let to_pa = port_counter(&d, "pa", "tx_packets");
    wait_for(Duration::from_secs(5), "the host's kernel to count", || {
        (veth_delivered(&a) >= to_pa).then_some(())
    });
    assert_eq!(
        veth_delivered(&a),
        to_pa,
        "the host got what the switch sent it"
    );
    eprintln!(
        "{n} frames from VM1: {to_vm2} to VM2 ({} dropped), {to_pa} to the host ({} dropped)",
        port_drops(&d, "vm2"),
        port_drops(&d, "pa")
    );
    assert!(to_vm2 > 0 && to_pa > 0);

    // The port's own view: per queue, the same numbers.
    let det1 = vhost_details(&d, "vm1");
    assert_eq!(queue_sum(&det1, "from_guest", "frames"), n, "{det1}");
    assert_eq!(
        queue_sum(&det1, "from_guest", "bytes"),
        sent.tx_bytes,
        "{det1}"
    );
    let det2 = vhost_details(&d, "vm2");
    assert_eq!(queue_sum(&det2, "to_guest", "frames"), to_vm2, "{det2}");
    assert_eq!(
        queue_sum(&det2, "to_guest", "drops"),
        port_drops(&d, "vm2"),
        "{det2}"
    );
    let rx = vm2.stop_fwd();
    assert_eq!(rx[0].rx_packets, to_vm2);
}

/// `queues=2`: a VM with two queue pairs sends on both of its transmit queues (txonly with
/// several flows); the switch takes from both, and a second two-queue VM gets every frame the
/// switch gives it, over its receive queues.
#[test]
fn two_queue_pairs_carry_frames_on_every_queue() {
    require_testpmd();
    let _slots = testpmd::reserve(2);
    let dir = Scratch::new("vhmq");
    let d = Daemon::start("vh-mq");
    d.ctl(&["bridge", "add", BR]);
    let (s1, s2) = (dir.path("vm1.sock"), dir.path("vm2.sock"));
    add_vhost_port(&d, BR, "vm1", &s1, &["queues=2"]);
    add_vhost_port(&d, BR, "vm2", &s2, &["queues=2"]);
    let vm = |sock: &std::path::Path, fwd: Fwd| {
        Testpmd::builder()
            .virtio_user(VirtioUser::new(sock).queues(2))
            .queues(2)
            .fwd(fwd)
            .txpkts(FRAME as u32)
            .arg("--txonly-multi-flow")
            .start()
    };
    let mut vm2 = vm(&s2, Fwd::RxOnly);
    let mut vm1 = vm(&s1, Fwd::TxOnly);
    for port in ["vm1", "vm2"] {
        let det = wait_vhost_state(&d, port, "ready", Duration::from_secs(10));
        assert_eq!(det["queue_pairs"], 2, "{det}");
        assert!(features(&det).iter().any(|f| f == "MQ"), "{det}");
        let queues = det["queues"].as_array().expect("queues");
        assert_eq!(queues.len(), 4, "{det}");
        for (i, q) in queues.iter().enumerate() {
            assert_eq!(q["index"], i, "{det}");
            let dir = if i % 2 == 0 { "to_guest" } else { "from_guest" };
            assert_eq!(q["direction"], dir, "{det}");
            assert_eq!(q["enabled"], true, "{det}");
        }
    }
    vm1.wait_link_up(0, Duration::from_secs(10));
    vm2.wait_link_up(0, Duration::from_secs(10));
    vm2.start_fwd();
    vm1.burst(0, 20_000, Duration::from_secs(5));
    let sent = vm1.port_stats(0);
    let n = sent.tx_packets;
    assert!(n >= 1000, "VM1 could send only {sent:?}");
    wait_for(
        Duration::from_secs(20),
        "the switch to take VM1's frames",
        || {
            let to_vm2 = port_counter(&d, "vm2", "tx_packets") + port_drops(&d, "vm2");
            (port_counter(&d, "vm1", "rx_packets") >= n && to_vm2 >= n).then_some(())
        },
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(port_counter(&d, "vm1", "rx_packets"), n);
    let to_vm2 = port_counter(&d, "vm2", "tx_packets");
    assert_eq!(to_vm2 + port_drops(&d, "vm2"), n, "{}", d.port_stats("vm2"));
    let got = vm2.wait_rx(0, to_vm2, Duration::from_secs(10));
    assert_eq!(got.rx_packets, to_vm2);
    let det1 = vhost_details(&d, "vm1");
    let det2 = vhost_details(&d, "vm2");
    eprintln!(
        "{n} frames; vm1 queues {}; vm2 queues {}",
        det1["queues"], det2["queues"]
    );
    assert_eq!(queue_sum(&det1, "from_guest", "frames"), n);
    for q in det1["queues"].as_array().expect("queues") {
        if q["direction"] == "from_guest" {
            assert!(
                q["frames"].as_u64() > Some(0),
                "a transmit queue unused: {det1}"
            );
        }
    }
    assert_eq!(queue_sum(&det2, "to_guest", "frames"), to_vm2);
    // The frames' flows (source addresses vary) spread over VM2's receive queues.
    for q in det2["queues"].as_array().expect("queues") {
        if q["direction"] == "to_guest" {
            assert!(
                q["frames"].as_u64() > Some(0),
                "a receive queue unused: {det2}"
            );
        }
    }
}
