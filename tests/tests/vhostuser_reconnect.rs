//! vhost-user ports across restarts, in both socket roles, and with the front end's ring and
//! buffer variants: the VM (testpmd's virtio-user port) sends bounded bursts into a `null`
//! sink, and every count is compared exactly.

use std::time::Duration;

use vswitch_tests::testpmd::{
    add_vhost_port, features, port_counter, port_drops, require_testpmd, vhost_details,
    wait_vhost_state, Fwd, Scratch, Testpmd, VirtioUser,
};
use vswitch_tests::{wait_for, Daemon};

const BR: &str = "br0";
const FRAME: u32 = 100;
/// Longest wait for a connection: the client's backoff tops out at 2 s, start-up takes ~1 s.
const CONNECT: Duration = Duration::from_secs(15);

fn bridge_with_sink(tag: &str) -> Daemon {
    let d = Daemon::start(tag);
    d.ctl(&["bridge", "add", BR]);
    d.ctl(&["port", "add", BR, "sink", "type=null", "role=sink"]);
    d
}

fn vm(vu: VirtioUser) -> Testpmd {
    Testpmd::builder()
        .virtio_user(vu)
        .fwd(Fwd::TxOnly)
        .txpkts(FRAME)
        .start()
}

/// The VM sends a bounded burst (its destination is unknown: flooded to the sink); the port
/// takes exactly what the VM's driver queued, and the sink gets exactly that. Returns it.
fn burst_through(d: &Daemon, vm: &mut Testpmd, port: &str) -> u64 {
    vm.wait_link_up(0, Duration::from_secs(10));
    let rx0 = port_counter(d, port, "rx_packets");
    let sink0 = port_counter(d, "sink", "tx_packets");
    vm.burst(0, 5_000, Duration::from_secs(3));
    let n = vm.port_stats(0).tx_packets;
    assert!(n > 0, "the VM could send nothing");
    wait_for(Duration::from_secs(10), "the burst at the sink", || {
        let sink = port_counter(d, "sink", "tx_packets") - sink0;
        (port_counter(d, port, "rx_packets") - rx0 >= n && sink >= n).then_some(())
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(port_counter(d, port, "rx_packets") - rx0, n, "{port} took");
    assert_eq!(port_counter(d, "sink", "tx_packets") - sink0, n, "sink got");
    n
}

/// `mode=client`: the switch connects to the VM's socket, waits (retrying) while nobody
/// serves it, and connects again when the VM restarts and when the switch itself restarts.
#[test]
fn client_mode_reconnects_after_either_side_restarts() {
    require_testpmd();
    let dir = Scratch::new("vhcli");
    let sock = dir.path("vm.sock");
    let mut d = bridge_with_sink("vh-client");
    add_vhost_port(&d, BR, "vm", &sock, &["mode=client"]);
    let det = vhost_details(&d, "vm");
    assert_eq!(det["mode"], "client", "{det}");
    assert_eq!(det["socket"], sock.display().to_string(), "{det}");
    assert_eq!(det["state"], "connecting", "{det}");
    // Nobody serves the socket yet: the switch keeps trying, and neither it nor the port fails.
    std::thread::sleep(Duration::from_millis(1500));
    d.assert_alive();
    let det = vhost_details(&d, "vm");
    assert_eq!(det["state"], "connecting", "{det}");
    assert_eq!(det["reconnects"], 0, "{det}");
    assert!(
        !sock.exists(),
        "the switch must not create the socket in client mode"
    );

    let serve = || vm(VirtioUser::new(&sock).server());
    let mut front = serve();
    let det = wait_vhost_state(&d, "vm", "ready", CONNECT);
    assert_eq!(det["reconnects"], 0, "{det}");
    burst_through(&d, &mut front, "vm");

    // The VM crashes: the port waits for it again, then takes it back.
    front.kill();
    wait_vhost_state(&d, "vm", "connecting", Duration::from_secs(10));
    let mut front = serve();
    let det = wait_vhost_state(&d, "vm", "ready", CONNECT);
    assert_eq!(det["reconnects"], 1, "{det}");
    burst_through(&d, &mut front, "vm");

    // The switch restarts under a running VM: the restored port connects to it again.
    d.restart();
    wait_vhost_state(&d, "vm", "ready", CONNECT);
    burst_through(&d, &mut front, "vm");
    d.assert_alive();
}

/// `mode=server`: the switch serves the socket; a VM that crashes or quits leaves the port
/// listening (frames toward it are counted as `port_not_ready`), and the next VM on the same
/// socket gets a working NIC.
#[test]
fn server_mode_takes_the_vm_back_after_it_restarts() {
    require_testpmd();
    let dir = Scratch::new("vhsrv");
    let sock = dir.path("vm.sock");
    let d = bridge_with_sink("vh-server");
    add_vhost_port(&d, BR, "vm", &sock, &["mode=server"]);
    assert!(
        sock.exists(),
        "the switch creates the socket in server mode"
    );
    assert_eq!(vhost_details(&d, "vm")["state"], "listening");
    let connect = || vm(VirtioUser::new(&sock));
    let mut front = connect();
    wait_vhost_state(&d, "vm", "ready", CONNECT);
    burst_through(&d, &mut front, "vm");

    front.kill();
    wait_vhost_state(&d, "vm", "listening", Duration::from_secs(10));
    // Frames flooded while the VM is away reach the sink, and are counted at the VM's port.
    let not_ready0 = d.port_stats("vm")["drops"]["port_not_ready"].as_u64();
    let sink0 = port_counter(&d, "sink", "tx_packets");
    d.ctl(&[
        "port",
        "add",
        BR,
        "gen",
        "type=null",
        "role=source",
        "count=200",
    ]);
    wait_for(Duration::from_secs(10), "the source's frames", || {
        (port_counter(&d, "sink", "tx_packets") - sink0 >= 200).then_some(())
    });
    let stats = d.port_stats("vm");
    assert_eq!(
        stats["drops"]["port_not_ready"].as_u64(),
        not_ready0.map(|n| n + 200),
        "{stats}"
    );
    assert_eq!(
        port_drops(&d, "vm"),
        not_ready0.unwrap_or(0) + 200,
        "{stats}"
    );

    let mut front = connect();
    let det = wait_vhost_state(&d, "vm", "ready", CONNECT);
    assert_eq!(det["reconnects"], 1, "{det}");
    burst_through(&d, &mut front, "vm");
    // A clean shutdown of the VM (rings stopped first) too.
    let out = front.quit();
    assert!(out.contains("Bye"), "testpmd did not quit cleanly:\n{out}");
    wait_vhost_state(&d, "vm", "listening", Duration::from_secs(10));
    let mut front = connect();
    let det = wait_vhost_state(&d, "vm", "ready", CONNECT);
    assert_eq!(det["reconnects"], 2, "{det}");
    burst_through(&d, &mut front, "vm");
}

/// A front end asking for packed rings (`packed_vq=1`) or declining mergeable receive
/// buffers (`mrg_rxbuf=0`). The switch offers split rings only, so the first falls back to
/// split rings; the second gets one buffer per frame, and full-size frames still fit. Both
/// carry frames both ways.
#[test]
fn packed_ring_and_no_mergeable_buffer_front_ends() {
    require_testpmd();
    let dir = Scratch::new("vhvar");
    let d = bridge_with_sink("vh-variants");
    let variants = [
        (
            "packed_vq=1",
            VirtioUser::new("").packed_vq(true),
            "RING_PACKED",
        ),
        (
            "mrg_rxbuf=0",
            VirtioUser::new("").mrg_rxbuf(false),
            "MRG_RXBUF",
        ),
    ];
    for (i, (label, variant, absent)) in variants.into_iter().enumerate() {
        let port = format!("vm{i}");
        let sock = dir.path(&format!("vm{i}.sock"));
        let mac = format!("02:00:00:00:00:{:02x}", 0x10 + i);
        add_vhost_port(&d, BR, &port, &sock, &[&format!("mac={mac}")]);
        let mut front = vm(VirtioUser {
            path: sock.clone(),
            ..variant
        });
        let det = wait_vhost_state(&d, &port, "ready", CONNECT);
        let feats = features(&det);
        eprintln!("{label}: {feats:?}");
        assert!(!feats.iter().any(|f| f == absent), "{label}: {feats:?}");
        assert!(feats.iter().any(|f| f == "VERSION_1"), "{label}: {feats:?}");
        // testpmd 22.11's virtio-user asks for no CONFIG protocol feature (it reads no
        // configuration space), so it cannot take the port's MAC: only the port shows it.
        assert_eq!(det["mac"], mac.as_str(), "{label}: {det}");
        burst_through(&d, &mut front, &port);
        to_guest(&d, &mut front, &port, label);
        front.quit();
        d.ctl(&["port", "del", BR, &port]);
    }
}

/// Full-size frames from a null source flood to the VM (receiving now): the VM gets exactly
/// what the port sent it, and the port sent or counted every frame. Paced at 5000/s, so a
/// receiving testpmd that a busy machine holds off the CPU for a while (its 256 receive buffers
/// last 50 ms) still takes nearly all of them.
fn to_guest(d: &Daemon, front: &mut Testpmd, port: &str, label: &str) {
    const COUNT: u64 = 1000;
    const LEN: u64 = 1514;
    front.set_fwd(Fwd::RxOnly);
    front.clear_stats();
    front.start_fwd();
    let tx0 = port_counter(d, port, "tx_packets");
    let drops0 = port_drops(d, port);
    let src = format!("src{port}");
    d.ctl(&[
        "port",
        "add",
        BR,
        &src,
        "type=null",
        "role=source",
        &format!("count={COUNT}"),
        &format!("frame_len={LEN}"),
        "rate_pps=5000",
    ]);
    wait_for(
        Duration::from_secs(10),
        "the source's frames at the VM port",
        || {
            let done = port_counter(d, port, "tx_packets") - tx0 + port_drops(d, port) - drops0;
            (done >= COUNT).then_some(())
        },
    );
    let sent = port_counter(d, port, "tx_packets") - tx0;
    let dropped = port_drops(d, port) - drops0;
    assert_eq!(sent + dropped, COUNT, "{label}: {}", d.port_stats(port));
    let got = front.wait_rx(0, sent, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(front.port_stats(0), got, "{label}: the VM kept receiving");
    assert_eq!(got.rx_bytes, sent * LEN, "{label}: {got:?}");
    eprintln!("{label}: {sent} of {COUNT} full-size frames to the VM, {dropped} dropped");
    assert!(
        sent >= COUNT * 9 / 10,
        "{label}: only {sent} of {COUNT} paced frames reached the VM: {}",
        d.port_stats(port)
    );
    front.stop_fwd();
    d.ctl(&["port", "del", BR, &src]);
}

/// Options are checked with a reason; a server port's socket lives as long as the port (one
/// port per socket), and a socket left by a killed switch is taken over on restart.
#[test]
fn options_are_checked_and_the_socket_follows_the_port() {
    let dir = Scratch::new("vhopt");
    let sock = dir.path("vm.sock");
    let mut d = bridge_with_sink("vh-options");
    let s = format!("socket={}", sock.display());
    let not_sock = dir.path("plain");
    std::fs::write(&not_sock, "x").expect("write a plain file");
    let plain = format!("socket={}", not_sock.display());
    for (opts, reason) in [
        (vec![], "socket"),
        (vec!["socket=vm.sock"], "absolute"),
        (vec![s.as_str(), "queues=0"], "queues"),
        (vec![s.as_str(), "queues=17"], "queues"),
        (vec![s.as_str(), "mode=listen"], "mode"),
        (vec![s.as_str(), "mac=01:00:00:00:00:01"], "mac"),
        (vec![plain.as_str()], "not a socket"),
    ] {
        let mut args = vec!["port", "add", BR, "bad", "type=vhostuser"];
        args.extend(&opts);
        let err = d.ctl_err(&args);
        assert!(err.contains(reason), "{opts:?}: {err}");
    }
    assert!(!sock.exists());
    add_vhost_port(&d, BR, "vm", &sock, &[]);
    assert!(sock.exists(), "no socket at {}", sock.display());
    let err = d.ctl_err(&["port", "add", BR, "vm2", "type=vhostuser", &s]);
    assert!(err.contains("listens"), "{err}");
    d.ctl(&["port", "del", BR, "vm"]);
    assert!(!sock.exists(), "the socket outlived its port");
    add_vhost_port(&d, BR, "vm", &sock, &[]);
    // A switch killed outright leaves its socket behind; the next one takes it over.
    vswitch_tests::sys::kill(d.pid() as i32, libc::SIGKILL);
    d.stop();
    assert!(sock.exists(), "a killed switch cannot remove its socket");
    d.start_again();
    wait_vhost_state(&d, "vm", "listening", Duration::from_secs(5));
    assert!(sock.exists());
}
