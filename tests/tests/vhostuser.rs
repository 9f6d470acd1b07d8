//! vhost-user ports (`type=vhostuser`) with DPDK's testpmd as the VM: its virtio-user port is
//! the guest's driver, and the switch is the device.

use std::time::Duration;

use vswitch_tests::testpmd::{self, require_testpmd, Fwd, Scratch, Testpmd, VirtioUser};

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
}
