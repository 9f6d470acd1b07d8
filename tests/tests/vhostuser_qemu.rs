//! A real VM on a vhost-user port: QEMU boots Debian's kernel with a virtio-net NIC whose
//! back end is the switch, and the guest kernel's own virtio-net driver (EVENT_IDX, merged
//! receive buffers, checksum and TSO offloads as it negotiates them) pings and moves TCP data
//! both ways to a namespace behind an afpacket port, checked by MD5 on both ends.
//!
//! QEMU runs under TCG (software emulation): nested KVM here does not boot the kernel. TCG in
//! QEMU 7.2 crashes starting vhost-user with MSI-X (msix_set_vector_notifiers), so the NIC uses
//! INTx (`vectors=0`); KVM guests use MSI-X as usual. Needs qemu-system-x86, linux-image-amd64,
//! busybox-static and cpio (`.ci/run` installs them).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vswitch_tests::testpmd::{add_vhost_port, Scratch};
use vswitch_tests::{must, wait_for, Daemon, Host};

const BR: &str = "br0";
const GUEST_IP: &str = "10.93.0.1";
const BLOB_LEN: usize = 4 << 20;
/// Guest modules for its NIC, in load order (Debian builds them as modules).
const MODULES: &[&str] = &[
    "virtio_ring",
    "virtio",
    "virtio_pci_modern_dev",
    "virtio_pci_legacy_dev",
    "virtio_pci",
    "failover",
    "net_failover",
    "virtio_net",
];

/// Debian's kernel and its modules directory, or a panic saying what to install.
fn guest_kernel() -> (PathBuf, PathBuf) {
    let mut kernels: Vec<PathBuf> = std::fs::read_dir("/boot")
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    kernels.retain(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("vmlinuz-"))
    });
    kernels.sort();
    let kernel = kernels
        .pop()
        .unwrap_or_else(|| panic!("no /boot/vmlinuz-*: install linux-image-amd64 (.ci/run does)"));
    let version = kernel.file_name().unwrap().to_str().unwrap()["vmlinuz-".len()..].to_string();
    (kernel, PathBuf::from(format!("/lib/modules/{version}")))
}

/// An initramfs: busybox, the NIC's modules, and an init that configures eth0, pings the
/// host, downloads a file from it and uploads one to it, prints what it saw, and powers off.
fn build_initramfs(dir: &Path, modules: &Path, host_ip: &str) -> PathBuf {
    let root = dir.join("root");
    for sub in ["bin", "m", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .expect("/bin/busybox: install busybox-static (.ci/run does)");
    for m in MODULES {
        let found = must(&[
            "find",
            modules.to_str().unwrap(),
            "-name",
            &format!("{m}.ko"),
        ]);
        let path = found
            .lines()
            .next()
            .unwrap_or_else(|| panic!("module {m}.ko not found under {}", modules.display()));
        std::fs::copy(path, root.join(format!("m/{m}.ko"))).unwrap();
    }
    let init = format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in {mods}; do insmod /m/$m.ko; done
ip link set lo up; ip link set eth0 up; ip addr add {GUEST_IP}/24 dev eth0
echo "GUEST features $(cat /sys/class/net/eth0/device/features)"
ping -c 20 -i 0.1 -W 2 {host_ip} | grep 'packets transmitted' | sed 's/^/GUEST ping /'
echo "GUEST download $(wget -q -O - http://{host_ip}:8000/blob | md5sum)"
head -c {BLOB_LEN} /dev/urandom > /tmp/up
echo "GUEST upload $(md5sum < /tmp/up)"
nc {host_ip} 5001 < /tmp/up
echo "GUEST done"
poweroff -f
"#,
        mods = MODULES.join(" "),
    );
    std::fs::write(root.join("init"), init).unwrap();
    must(&["chmod", "+x", root.join("init").to_str().unwrap()]);
    let out = dir.join("initramfs.gz");
    let script = format!(
        "cd {} && find . | cpio -o -H newc 2>/dev/null | gzip > {}",
        root.display(),
        out.display()
    );
    must(&["sh", "-c", &script]);
    out
}

/// QEMU, killed by PID when dropped.
struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn md5_of(bytes: &[u8], dir: &Path) -> String {
    let path = dir.join("md5-input");
    std::fs::write(&path, bytes).unwrap();
    must(&["md5sum", path.to_str().unwrap()])
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// The value after `GUEST KEY ` in the guest's serial output.
fn guest_line<'a>(serial: &'a str, key: &str) -> &'a str {
    let tag = format!("GUEST {key} ");
    serial
        .lines()
        .find_map(|l| l.trim_end_matches('\r').strip_prefix(tag.as_str()))
        .unwrap_or_else(|| panic!("no {tag:?} line from the guest:\n{serial}"))
}

#[test]
fn kernel_guest_pings_and_moves_tcp_both_ways() {
    for tool in ["qemu-system-x86_64", "cpio"] {
        assert!(
            Command::new("which")
                .arg(tool)
                .output()
                .is_ok_and(|o| o.status.success()),
            "{tool} is missing: install qemu-system-x86 and cpio (.ci/run does)"
        );
    }
    let (kernel, modules) = guest_kernel();
    let dir = Scratch::new("vhqemu");
    let sock = dir.path("vm.sock");
    let mut d = Daemon::start("vh-qemu");
    d.ctl(&["bridge", "add", BR]);
    add_vhost_port(&d, BR, "vm", &sock, &[]);
    let host = Host::veth("vhqh", "10.93.0.2/24");
    host.attach(&d, BR, "up");

    // The host serves a random blob over HTTP and takes an upload, writing its MD5.
    let blob: Vec<u8> = (0..BLOB_LEN).map(|i| (i * 7 + i / 4093) as u8).collect();
    let served = dir.path("www");
    std::fs::create_dir_all(&served).unwrap();
    std::fs::write(served.join("blob"), &blob).unwrap();
    let blob_md5 = md5_of(&blob, &dir.path(""));
    host.ns.spawn(&[
        "python3",
        "-m",
        "http.server",
        "8000",
        "--bind",
        &host.ip,
        "--directory",
        served.to_str().unwrap(),
    ]);
    let upload_md5 = dir.path("upload.md5");
    let receiver = format!(
        "import socket,hashlib\n\
         s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('{ip}', 5001)); s.listen(1); c,_=s.accept(); h=hashlib.md5(); n=0\n\
         while n < {BLOB_LEN}:\n\
         \x20   b=c.recv(65536)\n\
         \x20   if not b: break\n\
         \x20   h.update(b); n+=len(b)\n\
         c.close(); open('{out}','w').write(h.hexdigest() + ' ' + str(n))\n",
        ip = host.ip,
        out = upload_md5.display()
    );
    host.ns.spawn(&["python3", "-c", &receiver]);
    wait_for(
        Duration::from_secs(10),
        "the host's servers to listen",
        || {
            let out = host.ns.exec(&["ss", "-Hltn"]);
            (out.stdout.contains(":8000") && out.stdout.contains(":5001")).then_some(())
        },
    );

    let initramfs = build_initramfs(&dir.path(""), &modules, &host.ip);
    let serial = dir.path("serial.log");
    let netdev_sock = format!("socket,id=c0,path={}", sock.display());
    let serial_arg = format!("file:{}", serial.display());
    let child = Command::new("qemu-system-x86_64")
        .args([
            "-machine",
            "accel=tcg",
            "-cpu",
            "max",
            "-m",
            "512",
            "-smp",
            "1",
        ])
        .args(["-display", "none", "-no-reboot", "-serial", &serial_arg])
        .args(["-kernel", kernel.to_str().unwrap()])
        .args(["-initrd", initramfs.to_str().unwrap()])
        .args(["-append", "console=ttyS0 panic=-1 loglevel=3"])
        .args(["-object", "memory-backend-memfd,id=mem,size=512M,share=on"])
        .args(["-numa", "node,memdev=mem", "-chardev", &netdev_sock])
        .args(["-netdev", "vhost-user,id=n0,chardev=c0"])
        .args([
            "-device",
            "virtio-net-pci,netdev=n0,mac=52:54:00:93:00:01,vectors=0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start qemu-system-x86_64");
    let mut qemu = Qemu(child);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = qemu.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the guest did not finish in 180 s:\n{}",
            std::fs::read_to_string(&serial).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = std::fs::read_to_string(&serial).unwrap_or_default();
    assert!(status.success(), "qemu: {status}\n{out}");
    eprintln!(
        "guest finished in {} s:\n{out}",
        started.elapsed().as_secs()
    );

    // The guest's driver negotiated merged buffers (bit 15) and EVENT_IDX (bit 29): those
    // paths of the port carried its traffic.
    let bits = guest_line(&out, "features");
    for (bit, name) in [(15, "MRG_RXBUF"), (29, "EVENT_IDX"), (32, "VERSION_1")] {
        assert_eq!(
            bits.as_bytes().get(bit),
            Some(&b'1'),
            "{name} not negotiated: {bits}"
        );
    }
    let ping = guest_line(&out, "ping");
    assert!(ping.contains("20 packets received"), "{ping}");
    let download = guest_line(&out, "download");
    assert!(
        download.starts_with(&blob_md5),
        "downloaded {download}, served {blob_md5}"
    );
    let sent = guest_line(&out, "upload");
    wait_for(Duration::from_secs(10), "the host's upload digest", || {
        std::fs::read_to_string(&upload_md5).ok()
    });
    let got = std::fs::read_to_string(&upload_md5).unwrap();
    assert_eq!(
        got,
        format!("{} {BLOB_LEN}", sent.split_whitespace().next().unwrap())
    );
    assert!(out.contains("GUEST done"), "{out}");

    let stats = d.port_stats("vm");
    assert!(stats["rx_packets"].as_u64() > Some(100), "{stats}");
    let drops = &stats["drops"];
    for reason in [
        "vhost_bad_descriptor",
        "vhost_ring_error",
        "offload_invalid",
    ] {
        assert_eq!(drops[reason], 0, "{reason}: {stats}");
    }
    d.assert_alive();
}
