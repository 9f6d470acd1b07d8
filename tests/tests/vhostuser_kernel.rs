//! A VM with a kernel network stack behind a vhost-user port: testpmd in the VM's namespace
//! forwards (`io`) between its virtio-user port (the VM's NIC, on the switch's socket) and a
//! tap device `eth0` it creates there, so the namespace's kernel sends and receives through the
//! virtio rings. Ping and TCP (offloads left on everywhere) reach a veth host and a tap VM on
//! the same bridge, and VLAN access rules on the vhost-user port isolate it like any port.

use std::time::Duration;

use serde_json::Value;
use vswitch_tests::testpmd::{
    add_vhost_port, features, require_testpmd, wait_vhost_state, Fwd, Scratch, Testpmd, VirtioUser,
};
use vswitch_tests::{run, wait_for, Daemon, Host, Netns};

const BR: &str = "br0";

/// iperf3 (TCP) from `from` to `to_ip` (served in `to`) for `secs`: the receiver's Mbit/s.
fn iperf(from: &Netns, to: &Netns, to_ip: &str, secs: u32) -> f64 {
    to.spawn(&["iperf3", "-s", "-1", "-B", to_ip]);
    wait_for(Duration::from_secs(10), "iperf3 to listen", || {
        let out = to.exec(&["ss", "-Hltn", "sport = :5201"]);
        out.stdout.contains("5201").then_some(())
    });
    let t = secs.to_string();
    let args = ["iperf3", "-c", to_ip, "-t", &t, "-J"];
    let out = run(
        &mut from.command(&args),
        Duration::from_secs(u64::from(secs) + 20),
    );
    let v: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("iperf3 JSON: {e}\n{}", out.describe_failure()));
    if let Some(err) = v.get("error") {
        panic!("iperf3: {err}");
    }
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0)
        / 1e6
}

#[test]
fn kernel_stack_vm_pings_and_carries_tcp_and_obeys_vlans() {
    require_testpmd();
    let dir = Scratch::new("vhkern");
    let sock = dir.path("vm.sock");
    let d = Daemon::start("vh-kernel");
    d.ctl(&["bridge", "add", BR]);
    add_vhost_port(&d, BR, "vm", &sock, &[]);
    let a = Host::veth("vhka", "10.98.0.2/24");
    a.attach(&d, BR, "pa");
    let c = Host::tap(&d, BR, "pc", "vhkc", "10.98.0.3/24");

    // The VM: its kernel's eth0 is a tap that testpmd creates inside the namespace (one made
    // elsewhere and moved in loses traffic), bridged by io forwarding to the virtio-user port.
    let vmns = Netns::new("vhkvm");
    let mut vm = Testpmd::builder()
        .netns(&vmns)
        .virtio_user(VirtioUser::new(&sock))
        .tap("eth0")
        .fwd(Fwd::Io)
        .start();
    let det = wait_vhost_state(&d, "vm", "ready", Duration::from_secs(10));
    // testpmd configures no receive offloads, so its driver takes no checksum or segmentation
    // offload: the switch must finish and cut the veth host's GSO frames itself.
    let feats = features(&det);
    for f in ["GUEST_CSUM", "GUEST_TSO4"] {
        assert!(!feats.iter().any(|g| g == f), "{f} in {feats:?}");
    }
    vm.wait_link_up(0, Duration::from_secs(10));
    vm.start_fwd();
    vmns.exec_ok(&["ip", "addr", "add", "10.98.0.1/24", "dev", "eth0"]);
    vmns.exec_ok(&["ip", "link", "set", "eth0", "up"]);
    let offloads = a.ns.exec_ok(&["ethtool", "-k", &a.ifname]);
    assert!(
        offloads.contains("tcp-segmentation-offload: on"),
        "the veth host should send GSO frames:\n{offloads}"
    );

    // The first pings also resolve ARP through the switch.
    wait_for(
        Duration::from_secs(10),
        "the VM to reach the veth host",
        || (vmns.ping(&a.ip, 1).received == 1).then_some(()),
    );
    vmns.ping(&a.ip, 3).assert_no_loss(3);
    vmns.ping(&c.ip, 3).assert_no_loss(3);
    a.ns.ping("10.98.0.1", 3).assert_no_loss(3);
    c.ns.ping("10.98.0.1", 3).assert_no_loss(3);

    let up = iperf(&vmns, &a.ns, &a.ip, 3);
    eprintln!("TCP VM (vhost-user) -> veth host: {up:.0} Mbit/s");
    let down = iperf(&a.ns, &vmns, "10.98.0.1", 3);
    eprintln!("TCP veth host (GSO frames) -> VM (vhost-user): {down:.0} Mbit/s");
    let tap = iperf(&c.ns, &vmns, "10.98.0.1", 3);
    eprintln!("TCP tap VM -> VM (vhost-user): {tap:.0} Mbit/s");
    for (what, mbps) in [("VM -> host", up), ("host -> VM", down), ("tap -> VM", tap)] {
        assert!(mbps > 10.0, "TCP {what} carried only {mbps:.1} Mbit/s");
    }
    let stats = d.port_stats("vm");
    eprintln!("vm port: {stats}");
    let (tx, tx_bytes) = (stats["tx_packets"].as_u64(), stats["tx_bytes"].as_u64());
    let avg = tx_bytes.unwrap_or(0) / tx.unwrap_or(0).max(1);
    assert!(
        avg <= 1514,
        "frames of {avg} bytes on average to a VM that takes no GSO"
    );
    for reason in [
        "offload_invalid",
        "offload_unsupported",
        "tx_too_big",
        "vhost_bad_descriptor",
        "vhost_ring_error",
    ] {
        assert_eq!(stats["drops"][reason], 0, "{reason}: {stats}");
    }

    // VLANs: the VM and the veth host in VLAN 10, the tap VM in VLAN 20.
    d.ctl(&["port", "set", "vm", "access=10"]);
    d.ctl(&["port", "set", "pa", "access=10"]);
    d.ctl(&["port", "set", "pc", "access=20"]);
    vmns.ping(&a.ip, 3).assert_no_loss(3);
    a.ns.ping("10.98.0.1", 3).assert_no_loss(3);
    vmns.ping(&c.ip, 3).assert_all_lost();
    c.ns.ping("10.98.0.1", 3).assert_all_lost();
    // Back in one VLAN, the tap VM is reachable again.
    d.ctl(&["port", "set", "pc", "access=10"]);
    vmns.ping(&c.ip, 3).assert_no_loss(3);
    vm.stop_fwd();
}
