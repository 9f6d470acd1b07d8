//! The control socket under abuse, against the real daemon: thousands of connections, clients
//! that never send, hang up mid-line, trickle bytes, send over-long or non-UTF-8 lines. Each
//! gets an error line or is closed within its time limit, nothing they half-sent is run, and
//! meanwhile other clients are answered within a second and the datapath keeps forwarding.
//! (`control.rs` covers bad requests one at a time.)

use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use vswitch_tests::{bin, poll, run, Daemon, Host};

/// `--control-idle-timeout` of these daemons, in seconds; the request timeout is the same.
const IDLE_SECS: u64 = 2;
const IDLE: Duration = Duration::from_secs(IDLE_SECS);
/// The server's limit of clients served at once.
const MAX_CLIENTS: usize = 64;
/// Longest acceptable answer time for a well-behaved client while others misbehave.
const ANSWER_BOUND: Duration = Duration::from_secs(1);

fn daemon(tag: &str) -> Daemon {
    Daemon::start_with(tag, &["--control-idle-timeout", &IDLE_SECS.to_string()])
}

/// Raises this process's limit of open files to at least `want`.
fn raise_nofile(want: u64) {
    if let Err(e) = vswitch_tests::sys::raise_nofile(want) {
        panic!("cannot raise the open-file limit to {want}: {e}");
    }
}

/// Number of descriptors the process `pid` has open.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("list /proc/PID/fd")
        .count()
}

fn connect(socket: &Path) -> UnixStream {
    UnixStream::connect(socket)
        .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", socket.display()))
}

/// How the daemon ended a connection we misbehaved on.
#[derive(Debug, Clone, PartialEq)]
enum End {
    /// An `{"error": MESSAGE}` line.
    Error(String),
    /// Closed (or reset) without a line.
    Closed,
}

/// Reads what the daemon says on `s` until `deadline`: an error line or a hang-up. Anything
/// else (an `ok` reply, a line that is not a JSON error, silence past the deadline) is `Err`.
fn read_end(s: &mut UnixStream, deadline: Instant) -> Result<End, String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "no error and no hang-up by the deadline (got {:?})",
                String::from_utf8_lossy(&buf)
            ));
        }
        s.set_read_timeout(Some(left)).expect("set_read_timeout");
        match s.read(&mut chunk) {
            Ok(0) if buf.is_empty() => return Ok(End::Closed),
            Ok(0) => return Err(format!("hang-up after a partial line {buf:?}")),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset && buf.is_empty() => {
                return Ok(End::Closed)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) => return Err(format!("read error {e}")),
        }
        if let Some(nl) = buf.iter().position(|b| *b == b'\n') {
            let line = String::from_utf8_lossy(&buf[..nl]).into_owned();
            let v: Value = serde_json::from_str(&line).map_err(|e| format!("{line:?}: {e}"))?;
            return match v.get("error").and_then(Value::as_str) {
                Some(msg) if !msg.is_empty() && v.get("ok").is_none() => Ok(End::Error(msg.into())),
                _ => Err(format!("expected an error line, got {line}")),
            };
        }
    }
}

/// `vsctl version` timings, taken while something else goes on.
#[derive(Default)]
struct Probe {
    answers: Vec<Duration>,
    failures: Vec<String>,
}

impl Probe {
    /// Calls `vsctl version` every 100 ms until `stop` is set.
    fn run(d: &Daemon, stop: &AtomicBool) -> Probe {
        let mut p = Probe::default();
        while !stop.load(Ordering::Relaxed) {
            let t = Instant::now();
            match d.vsctl(&["version"]) {
                Ok(v) if v["protocol"] == 1 => p.answers.push(t.elapsed()),
                Ok(v) => p.failures.push(format!("odd version reply {v}")),
                Err(e) => p.failures.push(e),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    /// Adds the outcomes of other `vsctl version` calls.
    fn with(mut self, calls: Vec<(Result<Value, String>, Duration)>) -> Probe {
        for (outcome, took) in calls {
            match outcome {
                Ok(v) if v["protocol"] == 1 => self.answers.push(took),
                Ok(v) => self.failures.push(format!("odd version reply {v}")),
                Err(e) => self.failures.push(e),
            }
        }
        self
    }

    #[track_caller]
    fn check(&self, min_answers: usize) {
        assert!(
            self.failures.is_empty(),
            "vsctl version failed during the abuse: {:?}",
            self.failures
        );
        let slowest = self.answers.iter().max().copied().unwrap_or_default();
        eprintln!(
            "vsctl version answered {} times, slowest {slowest:?}",
            self.answers.len()
        );
        assert!(
            self.answers.len() >= min_answers,
            "only {} answers",
            self.answers.len()
        );
        assert!(
            slowest < ANSWER_BOUND,
            "vsctl version took {slowest:?} (bound {ANSWER_BOUND:?})"
        );
    }
}

/// The kinds of bad client in the crowd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// Connects and never sends.
    Silent,
    /// Sends half a request line, then hangs up.
    HalfLineThenClose,
    /// Sends a line that is not UTF-8.
    NotUtf8,
    /// Sends a line over the 64 KiB limit.
    OverLimit,
    /// Trickles a request one byte a second.
    Slowloris,
}

fn kind_of(i: usize) -> Kind {
    match i % 20 {
        0 => Kind::HalfLineThenClose,
        1 => Kind::NotUtf8,
        2 => Kind::OverLimit,
        3 => Kind::Slowloris,
        _ => Kind::Silent,
    }
}

/// 2000 connections opened at once, in five kinds of misbehaviour, while `vsctl version` is
/// timed and two hosts ping each other through the switch.
#[test]
fn a_crowd_of_bad_clients_stalls_neither_control_nor_datapath() {
    const CONNECTIONS: usize = 2000;
    const STORM_PROBES: usize = 5;
    raise_nofile(CONNECTIONS as u64 + 1024);
    let mut d = daemon("ctl-crowd");
    d.ctl(&["bridge", "add", "br0"]);
    let a = Host::veth("crowdA", "10.77.60.1/24");
    let b = Host::veth("crowdB", "10.77.60.2/24");
    a.attach(&d, "br0", "pa");
    b.attach(&d, "br0", "pb");
    d.wait_ports_up(Duration::from_secs(10));
    a.ping(&b, 2).assert_no_loss(2);
    let bridges_before = d.ctl(&["bridge", "list"]);
    let fds_before = open_fds(d.pid());

    let stop = AtomicBool::new(false);
    let half_line = br#"{"verb":"bridge_add","args":{"bridge":"brHalf"#;
    let slow_line = b"{\"verb\":\"bridge_add\",\"args\":{\"bridge\":\"brSlow\"}}\n";
    let over_limit = {
        let mut l = br#"{"verb":"bridge_add","args":{"bridge":""#.to_vec();
        l.extend(std::iter::repeat_n(b'x', 70 * 1024));
        l.extend_from_slice(b"\"}}\n");
        l
    };
    let slow: Mutex<Vec<UnixStream>> = Mutex::new(Vec::new());

    let (probe, ping, ends, open_time) = std::thread::scope(|s| {
        let prober = s.spawn(|| Probe::run(&d, &stop));
        // 150 pings, 50 ms apart: 7.5 s, spanning the whole abuse.
        let pinger = s.spawn(|| a.ns.ping_every(&b.ip, 150, 0.05));
        std::thread::sleep(Duration::from_millis(300));

        // The connection burst takes some tens of milliseconds: these clients, started 10 ms
        // apart as it begins, must be answered in the middle of it.
        let storm_probes: Vec<_> = (0..STORM_PROBES)
            .map(|i| {
                let d = &d;
                s.spawn(move || {
                    std::thread::sleep(Duration::from_millis(10 * i as u64));
                    let t = Instant::now();
                    (d.vsctl(&["version"]), t.elapsed())
                })
            })
            .collect();
        let t = Instant::now();
        let mut conns: Vec<(Kind, UnixStream)> = Vec::with_capacity(CONNECTIONS);
        for i in 0..CONNECTIONS {
            let mut c = connect(d.socket());
            c.set_write_timeout(Some(Duration::from_secs(5)))
                .expect("set_write_timeout");
            let kind = kind_of(i);
            // A write may fail if the daemon already closed this connection to make room:
            // that is one of the answers allowed.
            match kind {
                Kind::Silent => {}
                Kind::HalfLineThenClose => {
                    let _ = c.write_all(half_line);
                    continue; // dropped: hung up mid-line
                }
                Kind::NotUtf8 => {
                    let _ = c.write_all(b"{\"verb\":\"\xff\xfe\"}\n");
                }
                Kind::OverLimit => {
                    let _ = c.write_all(&over_limit);
                }
                Kind::Slowloris => {
                    let _ = c.write_all(&slow_line[..1]);
                    slow.lock()
                        .unwrap()
                        .push(c.try_clone().expect("clone a stream"));
                }
            }
            conns.push((kind, c));
        }
        let open_time = t.elapsed();
        let storm = storm_probes
            .into_iter()
            .map(|h| h.join().expect("storm probe"))
            .collect::<Vec<_>>();

        // One more byte a second to every trickling client, until the daemon has cut them off.
        let trickler = s.spawn(|| {
            for at in 1..slow_line.len() {
                std::thread::sleep(Duration::from_secs(1));
                let mut alive = 0;
                for c in slow.lock().unwrap().iter_mut() {
                    if c.write_all(&slow_line[at..at + 1]).is_ok() {
                        alive += 1;
                    }
                }
                if alive == 0 {
                    return at;
                }
            }
            slow_line.len()
        });

        // Every connection ends, each within the idle (or request) limit plus slack.
        let deadline = Instant::now() + IDLE + Duration::from_secs(4);
        let ends: Vec<(Kind, Result<End, String>)> = conns
            .iter_mut()
            .map(|(kind, c)| (*kind, read_end(c, deadline)))
            .collect();
        let trickled = trickler.join().expect("trickler");
        eprintln!("trickling clients cut off after {trickled} bytes");
        assert!(
            trickled < slow_line.len(),
            "a client trickling a byte a second sent its whole line"
        );
        stop.store(true, Ordering::Relaxed);
        (
            prober.join().expect("prober").with(storm),
            pinger.join().expect("pinger"),
            ends,
            open_time,
        )
    });

    eprintln!("{CONNECTIONS} connections opened in {open_time:?}");
    let mut tally = std::collections::BTreeMap::new();
    for (kind, end) in &ends {
        match end {
            Ok(End::Error(msg)) => {
                let msg: String = msg.chars().take(40).collect();
                *tally.entry(format!("{kind:?}: error {msg}")).or_insert(0) += 1;
            }
            Ok(End::Closed) => *tally.entry(format!("{kind:?}: closed")).or_insert(0) += 1,
            Err(e) => panic!("a {kind:?} connection: {e}"),
        }
    }
    for (what, n) in &tally {
        eprintln!("{n:5}  {what}");
    }
    assert!(
        open_time < Duration::from_secs(20),
        "opening {CONNECTIONS} connections took {open_time:?}"
    );
    probe.check(10 + STORM_PROBES);
    eprintln!(
        "ping during the abuse: {}/{}",
        ping.received, ping.transmitted
    );
    assert!(
        ping.transmitted == 150 && ping.received >= 143,
        "the datapath lost pings while the control socket was abused: {}/{}",
        ping.received,
        ping.transmitted
    );

    // Nothing half-sent was run, and the daemon is whole.
    d.assert_alive();
    assert_eq!(d.ctl(&["bridge", "list"]), bridges_before);
    // Every connection is gone on the daemon's side too.
    let fds = poll(Duration::from_secs(5), Duration::from_millis(100), || {
        let n = open_fds(d.pid());
        (n <= fds_before).then_some(n)
    });
    assert!(
        fds.is_some(),
        "the daemon holds {} descriptors, {fds_before} before the abuse",
        open_fds(d.pid())
    );
}

/// Each kind of bad client on its own, with the exact answer it gets.
#[test]
fn each_bad_client_gets_its_answer() {
    let mut d = daemon("ctl-each");
    d.ctl(&["bridge", "add", "br0"]);
    let bridges_before = d.ctl(&["bridge", "list"]);
    let soon = || Instant::now() + IDLE + Duration::from_secs(3);

    // Silent: closed after the idle timeout, not before, with a reason.
    let t = Instant::now();
    let mut silent = connect(d.socket());
    let end = read_end(&mut silent, soon()).expect("silent client");
    let waited = t.elapsed();
    assert!(
        matches!(&end, End::Error(m) if m.contains("no request")),
        "{end:?}"
    );
    assert!(
        waited >= IDLE - Duration::from_millis(200),
        "closed after {waited:?}"
    );

    // Slowloris: cut off once a started line takes longer than the request timeout.
    let mut slow = connect(d.socket());
    let line = b"{\"verb\":\"bridge_add\",\"args\":{\"bridge\":\"brSlow\"}}\n";
    let t = Instant::now();
    let mut sent = 0;
    for byte in line {
        if slow.write_all(&[*byte]).is_err() {
            break;
        }
        sent += 1;
        std::thread::sleep(Duration::from_millis(500));
        if t.elapsed() > IDLE + Duration::from_secs(2) {
            break;
        }
    }
    assert!(sent < line.len(), "the trickled line went through");
    let end = read_end(&mut slow, soon()).expect("trickling client");
    assert!(
        matches!(&end, End::Error(m) if m.contains("not complete")),
        "{end:?}"
    );

    // Half a line, then a hang-up: nothing is run.
    let mut half = connect(d.socket());
    half.write_all(br#"{"verb":"bridge_add","args":{"bridge":"brHalf"#)
        .expect("write");
    drop(half);
    // A whole request without its newline, then end of input: an error, nothing run.
    let mut unterminated = connect(d.socket());
    unterminated
        .write_all(br#"{"verb":"bridge_add","args":{"bridge":"brNoNewline"}}"#)
        .expect("write");
    unterminated
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    let end = read_end(&mut unterminated, soon()).expect("unterminated line");
    assert!(
        matches!(&end, End::Error(m) if m.contains("without a newline")),
        "{end:?}"
    );

    // Not UTF-8: an error, and the same connection still answers.
    let mut conn = connect(d.socket());
    conn.write_all(b"{\"verb\":\"bridge_add\",\"args\":{\"bridge\":\"\xc3\x28\"}}\n")
        .expect("write");
    let mut reader = std::io::BufReader::new(conn.try_clone().expect("clone"));
    let mut reply = String::new();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    std::io::BufRead::read_line(&mut reader, &mut reply).expect("reply");
    assert!(reply.contains("not UTF-8"), "{reply}");
    conn.write_all(b"{\"verb\":\"version\"}\n").expect("write");
    reply.clear();
    std::io::BufRead::read_line(&mut reader, &mut reply).expect("reply");
    assert!(reply.starts_with(r#"{"ok":"#), "{reply}");

    // A full house of idle clients: a new one is still served at once, and the one that
    // waited longest is told why it goes.
    let mut idle: Vec<UnixStream> = (0..MAX_CLIENTS).map(|_| connect(d.socket())).collect();
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    d.ctl(&["version"]);
    assert!(t.elapsed() < ANSWER_BOUND, "took {:?}", t.elapsed());
    let end = read_end(&mut idle[0], soon()).expect("evicted client");
    assert!(
        matches!(&end, End::Error(m) if m.contains("new client")),
        "{end:?}"
    );

    d.assert_alive();
    assert_eq!(d.ctl(&["bridge", "list"]), bridges_before);
}

/// `--socket-group`: the socket is 0660 and group-owned, members of the group can use it,
/// other users cannot.
#[test]
fn socket_group_lets_its_members_in() {
    const GID: u32 = 4242; // numeric: needs no entry in /etc/group
    const NOBODY: u32 = 65534;
    let d = Daemon::start_with("ctl-group", &["--socket-group", &GID.to_string()]);
    let meta = std::fs::metadata(d.socket()).expect("stat the socket");
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), GID);
    // The test's private directory is root-only; let others through to the socket.
    let dir = d.socket().parent().expect("socket dir");
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).expect("chmod");

    let vsctl_as = |gid: u32| {
        let mut cmd = std::process::Command::new(bin("vsctl"));
        cmd.arg("--socket")
            .arg(d.socket())
            .args(["--json", "version"])
            .uid(NOBODY)
            .gid(gid);
        // (As root with a uid set, Command also drops the supplementary groups.)
        run(&mut cmd, Duration::from_secs(10))
    };
    let member = vsctl_as(GID);
    assert!(member.success(), "{}", member.describe_failure());
    let outsider = vsctl_as(NOBODY);
    assert!(!outsider.success(), "a non-member used the socket");
    assert!(
        outsider.stderr.contains("ermission denied"),
        "{}",
        outsider.stderr
    );

    // A group name is looked up in /etc/group; an unknown one stops the daemon at start.
    let out = run(
        std::process::Command::new(bin("vswitchd"))
            .args([
                "--socket",
                "/nonexistent/x.sock",
                "--state-dir",
                "/nonexistent/state",
            ])
            .arg("--socket-group")
            .arg("no-such-group-vst"),
        Duration::from_secs(10),
    );
    assert!(!out.success());
    assert!(out.stderr.contains("no-such-group-vst"), "{}", out.stderr);
}
