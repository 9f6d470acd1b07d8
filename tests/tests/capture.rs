//! `vsctl capture`: pcap that tshark and tcpdump read, holding the frames that really crossed
//! the port; and a capture whose reader never reads costs the traffic nothing.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use vswitch_tests::{bin, run, sh, wait_for, CmdOutput, Daemon, Host};

const BRIDGE: &str = "br0";

/// The shared two-host topology on 10.78.SUBNET.0/24, bridge created here.
fn two_hosts(d: &Daemon, tag: &str, subnet: u8) -> (Host, Host) {
    d.ctl(&["bridge", "add", BRIDGE]);
    vswitch_tests::topo::two_pinned_hosts(d, BRIDGE, tag, &format!("10.78.{subnet}"))
}

/// Fails the test if a tool that .ci/run installs is missing.
fn require_tool(tool: &str, version_flag: &str, package: &str) {
    let ok = Command::new(tool)
        .arg(version_flag)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "`{tool}` is missing: .ci/run must install it (apt-get install {package}); \
         these tests read captures with it"
    );
}

fn vsctl_capture(d: &Daemon, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin("vsctl"));
    cmd.arg("--socket")
        .arg(d.socket())
        .arg("capture")
        .args(args);
    cmd
}

/// `tshark -r FILE -T fields -e icmp.type -e ip.src`: one (type, source) per frame.
fn tshark_icmp(file: &Path) -> Vec<(String, String)> {
    let out = run(
        Command::new("tshark").args(["-n", "-r"]).arg(file).args([
            "-T",
            "fields",
            "-e",
            "icmp.type",
            "-e",
            "ip.src",
        ]),
        Duration::from_secs(20),
    )
    .check();
    out.stdout
        .lines()
        .map(|l| {
            let mut f = l.split('\t');
            let t = f.next().unwrap_or("").to_string();
            (t, f.next().unwrap_or("").to_string())
        })
        .collect()
}

#[track_caller]
fn assert_summary(out: &CmdOutput, frames: u64) {
    assert!(out.success(), "{}", out.describe_failure());
    let want = format!("{frames} frames written, 0 lost by the capture");
    assert!(
        out.stderr.contains(&want),
        "summary should say {want:?}:\n{}",
        out.describe_failure()
    );
}

#[test]
fn capture_files_hold_the_pings_and_tshark_reads_them() {
    require_tool("tshark", "-v", "tshark");
    let d = Daemon::start("cap-file");
    let (a, b) = two_hosts(&d, "capf", 1);
    let dir = tempdir("capf");
    let both = dir.path.join("pa.pcap");
    let rx = dir.path.join("pb-rx.pcap");

    // Pings flow while two captures run at once, on two ports.
    a.ns.spawn(&["ping", "-n", "-i", "0.02", "-c", "300", &b.ip]);
    let (both_s, rx_s) = (both.display().to_string(), rx.display().to_string());
    let t1 = std::thread::scope(|s| {
        let t = s.spawn(|| {
            run(
                &mut vsctl_capture(&d, &["pa", "--count", "10", "-w", &both_s]),
                Duration::from_secs(15),
            )
        });
        let t2 = run(
            &mut vsctl_capture(&d, &["pb", "--direction", "rx", "-c", "6", "-w", &rx_s]),
            Duration::from_secs(15),
        );
        (t.join().expect("capture thread"), t2)
    });
    assert_summary(&t1.0, 10);
    assert_summary(&t1.1, 6);

    // pa, both directions: A's echo requests (received) and B's replies (sent), 10 in all.
    let frames = tshark_icmp(&both);
    eprintln!("tshark pa: {frames:?}");
    assert_eq!(frames.len(), 10, "{frames:?}");
    assert!(
        frames.iter().all(|(t, _)| t == "8" || t == "0"),
        "{frames:?}"
    );
    assert!(frames.iter().any(|(t, src)| t == "8" && *src == a.ip));
    assert!(frames.iter().any(|(t, src)| t == "0" && *src == b.ip));
    // pb, rx only: B's replies only.
    let frames = tshark_icmp(&rx);
    assert_eq!(frames.len(), 6, "{frames:?}");
    assert!(
        frames.iter().all(|(t, src)| t == "0" && *src == b.ip),
        "{frames:?}"
    );
    // tshark's own summary line of a frame names it.
    let text = run(
        Command::new("tshark").arg("-n").arg("-r").arg(&both),
        Duration::from_secs(20),
    )
    .check()
    .stdout;
    eprintln!("{text}");
    assert!(text.contains("Echo (ping) request"), "{text}");
    assert!(text.contains("Echo (ping) reply"), "{text}");

    // A bad port is a clear error and leaves no capture behind.
    let out = run(
        &mut vsctl_capture(&d, &["nope", "-w", &both_s]),
        Duration::from_secs(10),
    );
    assert!(!out.success() && out.stderr.contains("no port"), "{out:?}");
}

#[test]
fn capture_streams_to_tcpdump_and_ctrl_c_ends_it_with_a_summary() {
    require_tool("tcpdump", "--version", "tcpdump");
    let d = Daemon::start("cap-pipe");
    let (a, b) = two_hosts(&d, "capp", 2);
    a.ns.spawn(&["ping", "-n", "-i", "0.02", "-c", "300", &b.ip]);

    let line = format!(
        "{} --socket {} capture pb --count 8 -w - | tcpdump -n -r -",
        bin("vsctl").display(),
        d.socket().display()
    );
    let out = run(
        Command::new("sh").args(["-c", &line]),
        Duration::from_secs(15),
    )
    .check();
    eprintln!("{}\n{}", out.stdout, out.stderr);
    let replies = out.stdout.matches("ICMP echo reply").count();
    let requests = out.stdout.matches("ICMP echo request").count();
    assert_eq!(replies + requests, 8, "{}", out.stdout);
    assert!(requests > 0 && replies > 0, "{}", out.stdout);
    assert!(out.stderr.contains("8 frames written"), "{}", out.stderr);

    // Without --count it runs until Ctrl-C, then says what it wrote.
    let dir = tempdir("capp");
    let file = dir.path.join("ctrlc.pcap");
    let mut child = vsctl_capture(&d, &["pa", "-w"])
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vsctl capture");
    // Frames arrive: the file grows past its 24-byte header.
    let grew = vswitch_tests::poll(Duration::from_secs(5), Duration::from_millis(50), || {
        (std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0) > 200).then_some(())
    });
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    vswitch_tests::sys::kill(pid, libc::SIGINT);
    let status = wait_child(&mut child, Duration::from_secs(5));
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    assert!(grew.is_some(), "no frames captured before Ctrl-C");
    assert!(status.success(), "vsctl capture exited {status}: {stderr}");
    assert!(
        stderr.contains("capture on pa ended (stopped)") && stderr.contains("frames written"),
        "{stderr}"
    );
    // The file is complete: tcpdump reads every record.
    let read = sh(&["tcpdump", "-n", "-r", &file.display().to_string()]).check();
    assert!(read.stdout.contains("ICMP echo"), "{}", read.stdout);
    // The capture is gone from the datapath: a new one on the same port is accepted.
    let again = run(
        &mut vsctl_capture(&d, &["pa", "-c", "1", "-w", "/dev/null"]),
        Duration::from_secs(10),
    );
    assert_summary(&again, 1);

    // Deleting the port ends its capture, and vsctl says why.
    let mut child = vsctl_capture(&d, &["pa", "-w", "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vsctl capture");
    std::thread::sleep(Duration::from_millis(300));
    d.ctl(&["port", "del", "br0", "pa"]);
    let status = wait_child(&mut child, Duration::from_secs(5));
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains("ended (port deleted)"), "{stderr}");
}

#[test]
fn a_capture_nobody_reads_loses_capture_frames_never_traffic() {
    let d = Daemon::start("cap-slow");
    let (a, b) = two_hosts(&d, "caps", 3);

    // A client that starts a capture with room for 8 frames and then never reads.
    let stream = UnixStream::connect(d.socket()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    writer
        .write_all(b"{\"verb\":\"capture\",\"args\":{\"port\":\"pa\",\"buffers\":8}}\n")
        .expect("send");
    let mut reader = BufReader::new(stream);
    let mut first = String::new();
    reader.read_line(&mut first).expect("first line");
    let first: Value = serde_json::from_str(&first).expect("json");
    assert_eq!(first["ok"]["buffers"], 8, "{first}");

    // One capture per port.
    let busy = run(
        &mut vsctl_capture(&d, &["pa", "-c", "1", "-w", "/dev/null"]),
        Duration::from_secs(10),
    );
    assert!(
        !busy.success() && busy.stderr.contains("already has a capture"),
        "{busy:?}"
    );

    // Big pings: the unread lines fill the socket, then the ring, then frames are lost.
    let stats = a.ns.command(&[
        "ping", "-n", "-q", "-c", "100", "-i", "0.01", "-s", "1400", "-W", "1", &b.ip,
    ]);
    let started = Instant::now();
    let out = run(&mut { stats }, Duration::from_secs(20)).check();
    eprintln!("{}", out.stdout);
    assert!(
        out.stdout
            .contains("100 packets transmitted, 100 received, 0% packet loss"),
        "pings were lost while a capture's reader did not read:\n{}",
        out.stdout
    );
    eprintln!("100 pings took {:?}", started.elapsed());

    // Now stop it and read the rest: the end line counts what the capture lost.
    writer
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    let mut frames = 0u64;
    let end = loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).expect("read capture line");
        assert!(n > 0, "connection closed without an end line");
        let v: Value = serde_json::from_str(&line).expect("json line");
        if v.get("frame").is_some() {
            frames += 1;
        } else {
            break v["end"].clone();
        }
    };
    eprintln!("end: {end}, frame lines read: {frames}");
    assert_eq!(end["frames"].as_u64(), Some(frames));
    let lost = end["lost"].as_u64().expect("lost count");
    assert!(lost > 0, "the capture lost nothing: {end}");
    assert!(
        frames + lost >= 200,
        "every request and reply was captured or counted lost: {end}"
    );
    assert_eq!(end["reason"], "stopped");
    // The daemon says so too.
    wait_for(
        Duration::from_secs(5),
        "the capture's end in the log",
        || {
            std::fs::read_to_string(d.log_path())
                .ok()
                .filter(|l| l.contains("capture ended") && l.contains(&format!("lost={lost}")))
                .map(|_| ())
        },
    );
    // No frame was dropped for want of room on the ports either.
    for port in ["pa", "pb"] {
        let row = d.port_stats(port);
        for reason in ["tx_ring_full", "rx_ring_full"] {
            assert_eq!(row["drops"][reason], 0, "{port}: {row}");
        }
    }
}

fn wait_child(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("vsctl capture did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A temp dir removed on drop.
struct TempDir {
    path: std::path::PathBuf,
}

fn tempdir(tag: &str) -> TempDir {
    let path = std::env::temp_dir().join(format!(
        "vst-{tag}-{}-{}",
        std::process::id(),
        vswitch_tests::seq()
    ));
    std::fs::create_dir_all(&path).expect("create temp dir");
    TempDir { path }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
