//! The service: the systemd unit verifies once installed, install.sh puts everything in place,
//! and readiness (sd_notify READY=1) comes only once the socket answers and the saved
//! configuration is restored.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use vswitch_tests::{bin, bin_dir, require_env, run, seq, sh, unique_ifname};

/// A temp dir removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("vst-{tag}-{}-{}", std::process::id(), seq()));
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn install(prefix: &Path, destdir: Option<&Path>) {
    let script = repo().join("packaging/install.sh");
    let mut cmd = Command::new("bash");
    cmd.arg(script)
        .arg("--prefix")
        .arg(prefix)
        .arg("--bin-dir")
        .arg(bin_dir());
    if let Some(d) = destdir {
        cmd.env("DESTDIR", d);
    }
    run(&mut cmd, Duration::from_secs(60)).check();
}

fn assert_installed(root: &Path) {
    for f in [
        "bin/vswitchd",
        "bin/vsctl",
        "lib/systemd/system/vswitchd.service",
        "share/man/man8/vswitchd.8",
        "share/man/man1/vsctl.1",
        "share/man/man1/vsctl-apply.1",
        "share/bash-completion/completions/vsctl",
        "share/bash-completion/completions/vswitchd",
        "share/zsh/site-functions/_vsctl",
        "share/fish/vendor_completions.d/vsctl.fish",
    ] {
        let p = root.join(f);
        let meta = std::fs::metadata(&p).unwrap_or_else(|e| panic!("{} missing: {e}", p.display()));
        assert!(meta.len() > 0, "{} is empty", p.display());
    }
    let bash =
        std::fs::read_to_string(root.join("share/bash-completion/completions/vsctl")).unwrap();
    assert!(
        bash.contains("apply") && bash.contains("export"),
        "bash completion lacks commands"
    );
    let man = std::fs::read_to_string(root.join("share/man/man8/vswitchd.8")).unwrap();
    assert!(
        man.contains("check\\-config"),
        "vswitchd.8 lacks --check-config"
    );
}

#[test]
fn install_then_systemd_analyze_verify() {
    let t = TempDir::new("svc-inst");
    let prefix = t.0.join("prefix");
    install(&prefix, None);
    assert_installed(&prefix);
    let unit = prefix.join("lib/systemd/system/vswitchd.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    let exec = format!("ExecStart={}/bin/vswitchd ", prefix.display());
    assert!(
        text.contains(&exec),
        "ExecStart not pointed at the prefix:\n{text}"
    );
    assert!(text.contains("Type=notify"));

    // verify checks that ExecStart exists and, with `man` present, that the Documentation= man
    // pages resolve: point MANPATH at the installed ones.
    let has_man = sh(&["sh", "-c", "command -v man"]).success();
    let mut cmd = Command::new("systemd-analyze");
    cmd.arg("verify");
    if !has_man {
        cmd.arg("--man=no");
    }
    cmd.arg(&unit)
        .env("MANPATH", prefix.join("share/man"))
        .env("SYSTEMD_LOG_LEVEL", "notice");
    let out = run(&mut cmd, Duration::from_secs(60));
    assert!(out.success(), "{}", out.describe_failure());
    assert!(
        !out.stderr.contains("vswitchd.service"),
        "verify complained about the unit:\n{}",
        out.stderr
    );

    // DESTDIR: staged under a root, unit pointing at the final prefix.
    let stage = t.0.join("stage");
    install(Path::new("/usr/local"), Some(&stage));
    assert_installed(&stage.join("usr/local"));
    let staged =
        std::fs::read_to_string(stage.join("usr/local/lib/systemd/system/vswitchd.service"))
            .unwrap();
    assert!(
        staged.contains("ExecStart=/usr/local/bin/vswitchd "),
        "{staged}"
    );
}

/// Kills the daemon on drop (even when the test fails).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn ready_comes_after_the_socket_serves_and_config_is_restored() {
    require_env();
    let t = TempDir::new("svc-ready");
    let state = t.0.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let tap = unique_ifname("vn");
    std::fs::write(
        state.join("config.json"),
        format!(
            r#"{{"version":1,"bridges":[{{"name":"br0","options":{{}},"ports":[{{"name":"p1","options":{{"type":"tap","iface":"{tap}"}}}}],"static_fdb":[]}}]}}"#
        ),
    )
    .unwrap();
    let notify_path = t.0.join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let socket = t.0.join("ctl.sock");
    let log = std::fs::File::create(t.0.join("log")).unwrap();
    let mut cmd = Command::new(bin("vswitchd"));
    cmd.arg("--socket")
        .arg(&socket)
        .arg("--state-dir")
        .arg(&state)
        .env("NOTIFY_SOCKET", &notify_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    vswitch_tests::sys::die_with_parent(&mut cmd);
    let mut daemon = Proc(cmd.spawn().expect("start vswitchd"));

    let mut buf = [0u8; 512];
    let n = notify
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no READY=1 within 10 s: {e}"));
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(
        msg.lines().any(|l| l == "READY=1"),
        "first notification {msg:?}"
    );
    // At READY: the restored tap exists and the socket answers with the restored port, up.
    assert!(
        Path::new("/sys/class/net").join(&tap).exists(),
        "READY before the saved port's tap {tap} was restored"
    );
    let vsctl = bin("vsctl");
    let out = sh(&[
        vsctl.to_str().unwrap(),
        "--socket",
        socket.to_str().unwrap(),
        "--json",
        "port",
        "list",
    ])
    .check();
    let ports: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(ports[0]["name"], "p1", "{ports}");
    assert_eq!(ports[0]["status"], "up", "{ports}");

    // A clean stop says so.
    let pid = libc::pid_t::try_from(daemon.0.id()).unwrap();
    vswitch_tests::sys::kill(pid, libc::SIGTERM);
    let n = notify.recv(&mut buf).expect("STOPPING=1 on SIGTERM");
    assert_eq!(&buf[..n], b"STOPPING=1");
    let status = daemon.0.wait().unwrap();
    assert!(status.success(), "vswitchd exited {status}");
}

#[test]
fn check_config_needs_no_daemon() {
    let t = TempDir::new("svc-check");
    let good = t.0.join("good.yaml");
    std::fs::write(&good, "version: 1\nbridges:\n  - name: br0\n").unwrap();
    let bad = t.0.join("bad.json");
    std::fs::write(
        &bad,
        r#"{"version":1,"bridges":[{"name":"br0","aging":5}]}"#,
    )
    .unwrap();
    let vswitchd = bin("vswitchd");
    let ok = sh(&[
        vswitchd.to_str().unwrap(),
        "--check-config",
        good.to_str().unwrap(),
    ])
    .check();
    assert!(
        ok.stdout.contains("valid (1 bridges, 0 ports)"),
        "{}",
        ok.stdout
    );
    let no = sh(&[
        vswitchd.to_str().unwrap(),
        "--check-config",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(
        no.status.and_then(|s| s.code()),
        Some(1),
        "{}",
        no.describe_failure()
    );
    assert!(
        no.stderr.contains("bridges[0]") && no.stderr.contains("aging"),
        "{}",
        no.stderr
    );
}
