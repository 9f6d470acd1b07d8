//! A private `vswitchd` per test, and the two ways to talk to it: the real `vsctl`, and a raw
//! connection to its socket for requests `vsctl` would never send.

use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cmd::run;
use crate::{bin, poll, require_env, seq, wait_for};

/// How long the daemon gets to become ready (socket present and `vsctl version` answered).
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a `vsctl` call may take before it counts as hung.
const VSCTL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a raw socket read or write may block.
const RAW_TIMEOUT: Duration = Duration::from_secs(5);
/// Log lines shown when a test fails.
const LOG_TAIL_LINES: usize = 80;

/// A running `vswitchd` with its own socket and state directory under a fresh temp dir.
///
/// Dropping it stops the daemon (SIGTERM, then SIGKILL after 3 s) and removes the temp dir;
/// if the test is failing, the tail of the daemon's log is printed first (so panics in here
/// need not include it).
pub struct Daemon {
    dir: PathBuf,
    socket: PathBuf,
    state_dir: PathBuf,
    log: PathBuf,
    /// Extra `vswitchd` arguments, kept across restarts.
    args: Vec<String>,
    child: Option<Child>,
}

impl Daemon {
    /// Starts a daemon and waits until it answers.
    pub fn start(tag: &str) -> Daemon {
        Daemon::start_with(tag, &[])
    }

    /// Starts a daemon with extra command-line arguments (after `--socket` and `--state-dir`)
    /// and waits until it answers.
    pub fn start_with(tag: &str, args: &[&str]) -> Daemon {
        require_env();
        sweep_stale_dirs();
        let tag: String = tag
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(16)
            .collect();
        let dir = std::env::temp_dir().join(format!("vst-{tag}-{}-{}", std::process::id(), seq()));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let mut d = Daemon {
            socket: dir.join("vswitchd.sock"),
            // Not created here: the daemon must create its state dir (as /var/lib/vswitch on a
            // fresh machine).
            state_dir: dir.join("state"),
            log: dir.join("vswitchd.log"),
            dir,
            args: args.iter().map(|a| a.to_string()).collect(),
            child: None,
        };
        d.spawn();
        d
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The daemon's log (stdout and stderr), kept across restarts.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Pid of the running daemon.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("vswitchd is not running").id()
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "vswitchd is already running");
        // One log across restarts, so a failure shows both lives of the daemon.
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", self.log.display()));
        let log2 = log
            .try_clone()
            .expect("cannot duplicate the log file handle");
        let mut cmd = Command::new(bin("vswitchd"));
        cmd.arg("--socket")
            .arg(&self.socket)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(&self.args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        // The kernel kills the daemon if the thread that started it dies without running our
        // Drop, so no daemon outlives its test. Start a Daemon on the test's own thread.
        crate::sys::die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start vswitchd: {e}"));
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!("vswitchd exited during start-up ({status})");
            }
            if self.socket.exists() && self.vsctl(&["version"]).is_ok() {
                return;
            }
            if Instant::now() >= deadline {
                panic!("vswitchd not ready within {READY_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the daemon with SIGTERM and returns how it exited. Fails the test if it is still
    /// running 5 s later (it is SIGKILLed then).
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("vswitchd is not running");
        match terminate(&mut child, Duration::from_secs(5)) {
            Ok(status) => status,
            Err(()) => panic!("vswitchd ignored SIGTERM for 5 s"),
        }
    }

    /// Starts the daemon again on the same socket and state dir, after [`Daemon::stop`].
    pub fn start_again(&mut self) {
        self.spawn();
    }

    /// [`Daemon::stop`] then [`Daemon::start_again`]; returns how the old daemon exited.
    pub fn restart(&mut self) -> ExitStatus {
        let status = self.stop();
        self.start_again();
        status
    }

    /// Fails the test if the daemon has died (e.g. crashed on a bad request).
    #[track_caller]
    pub fn assert_alive(&mut self) {
        let child = self.child.as_mut().expect("vswitchd is not running");
        if let Ok(Some(status)) = child.try_wait() {
            self.child = None;
            panic!("vswitchd died ({status})");
        }
    }

    /// The last lines of the daemon's log.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
        format!(
            "--- last lines of {} ---\n{tail}\n--- end of log ---",
            self.log.display()
        )
    }

    /// Runs `vsctl --socket S --json ARGS...`: the parsed JSON on success, stderr on failure.
    pub fn vsctl(&self, args: &[&str]) -> Result<Value, String> {
        let mut cmd = Command::new(bin("vsctl"));
        cmd.arg("--socket")
            .arg(&self.socket)
            .arg("--json")
            .args(args);
        let out = run(&mut cmd, VSCTL_TIMEOUT);
        if out.timed_out() {
            panic!("{}", out.describe_failure());
        }
        if !out.success() {
            return Err(out.stderr);
        }
        match serde_json::from_str(out.stdout.trim()) {
            Ok(v) => Ok(v),
            Err(e) => panic!(
                "`{}` succeeded but its stdout is not JSON ({e}):\n{}",
                out.what, out.stdout
            ),
        }
    }

    /// A `vsctl` call that must succeed.
    #[track_caller]
    pub fn ctl(&self, args: &[&str]) -> Value {
        self.vsctl(args)
            .unwrap_or_else(|e| panic!("`vsctl {}` failed: {e}", args.join(" ")))
    }

    /// A `vsctl` call that must fail with a message on stderr; returns the message.
    #[track_caller]
    pub fn ctl_err(&self, args: &[&str]) -> String {
        match self.vsctl(args) {
            Ok(v) => panic!(
                "`vsctl {}` should have failed, but returned {v}",
                args.join(" ")
            ),
            Err(e) => {
                assert!(
                    !e.trim().is_empty(),
                    "`vsctl {}` failed with an empty stderr",
                    args.join(" ")
                );
                e
            }
        }
    }

    /// `vsctl fdb show BRIDGE` as a list of entries.
    pub fn fdb(&self, bridge: &str) -> Vec<Value> {
        crate::entries_of(self.ctl(&["fdb", "show", bridge]))
    }

    /// The `vsctl stats PORT` row of one port.
    pub fn port_stats(&self, port: &str) -> Value {
        let rows = crate::entries_of(self.ctl(&["stats", port]));
        rows.into_iter()
            .find(|r| r["port"] == port)
            .unwrap_or_else(|| panic!("`vsctl stats {port}` has no row for {port}"))
    }

    /// tx_packets of a port per `vsctl stats`.
    pub fn tx_packets(&self, port: &str) -> u64 {
        let row = self.port_stats(port);
        row["tx_packets"]
            .as_u64()
            .unwrap_or_else(|| panic!("no tx_packets in {row}"))
    }

    /// Waits until every port reports status "up".
    pub fn wait_ports_up(&self, limit: Duration) {
        let mut last = Value::Null;
        let up = poll(limit, Duration::from_millis(100), || {
            last = self.ctl(&["port", "list"]);
            let ports = crate::entries_of(last.clone());
            ports.iter().all(|p| p["status"] == "up").then_some(())
        });
        if up.is_none() {
            panic!("ports not all up after {limit:?}: {last:#}");
        }
    }

    /// Waits until `pred` holds for `fdb show BRIDGE`; returns that table.
    pub fn wait_fdb(
        &self,
        bridge: &str,
        what: &str,
        pred: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        wait_for(Duration::from_secs(5), what, || {
            let fdb = self.fdb(bridge);
            pred(&fdb).then_some(fdb)
        })
    }

    /// CPU time used by the daemon so far (user + system, all threads), in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        let stat =
            fs::read_to_string(format!("/proc/{}/stat", self.pid())).expect("read /proc/PID/stat");
        // The command name (field 2) may contain spaces; fields after it are plain numbers.
        // After ")" come field 3 (state) onward, so utime and stime (fields 14, 15) are at
        // indexes 11 and 12.
        let after = &stat[stat.rfind(')').expect("malformed /proc/PID/stat") + 1..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        let utime: u64 = fields[11].parse().expect("utime");
        let stime: u64 = fields[12].parse().expect("stime");
        utime + stime
    }
}

/// Removes temp dirs left by test processes that died before their guards ran (the name
/// carries the pid of the process that made it). Runs once per test process.
fn sweep_stale_dirs() {
    static SWEEP: std::sync::Once = std::sync::Once::new();
    SWEEP.call_once(|| {
        let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix("vst-") else {
                continue;
            };
            // vst-TAG-PID-N: the pid is the second field from the end.
            let pid = rest.rsplit('-').nth(1).and_then(|p| p.parse::<u32>().ok());
            if let Some(pid) = pid {
                if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = fs::remove_dir_all(entry.path());
                }
            }
        }
    });
}

/// Clock ticks per second, the unit of [`Daemon::cpu_ticks`].
pub fn clock_ticks_per_sec() -> u64 {
    crate::sys::clock_ticks_per_sec()
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
        if let Some(mut child) = self.child.take() {
            if terminate(&mut child, Duration::from_secs(3)).is_err() {
                eprintln!("vswitchd ignored SIGTERM for 3 s; killed it");
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// SIGTERM, then wait up to `grace`; past that SIGKILL and `Err`.
fn terminate(child: &mut Child, grace: Duration) -> Result<ExitStatus, ()> {
    if let Ok(Some(status)) = child.try_wait() {
        return Ok(status);
    }
    let pid = libc::pid_t::try_from(child.id()).expect("pid out of range");
    // Our own child, not yet reaped: the pid cannot have been reused.
    crate::sys::kill(pid, libc::SIGTERM);
    if let Some(status) = poll(grace, Duration::from_millis(20), || {
        child.try_wait().ok().flatten()
    }) {
        return Ok(status);
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(())
}

/// A raw connection to the control socket, speaking JSON lines by hand.
pub struct RawConn {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl RawConn {
    /// Connects, with reads and writes limited to 5 s each.
    pub fn connect(socket: &Path) -> RawConn {
        let stream = UnixStream::connect(socket)
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", socket.display()));
        stream
            .set_read_timeout(Some(RAW_TIMEOUT))
            .expect("set_read_timeout");
        stream
            .set_write_timeout(Some(RAW_TIMEOUT))
            .expect("set_write_timeout");
        let writer = stream.try_clone().expect("clone unix stream");
        RawConn {
            reader: BufReader::new(stream),
            writer,
        }
    }

    /// Sends `line` and a newline.
    pub fn send_line(&mut self, line: &str) -> io::Result<()> {
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        self.writer.write_all(&buf)?;
        self.writer.flush()
    }

    /// Reads one reply line: `Ok(None)` if the daemon closed the connection.
    pub fn read_reply(&mut self) -> io::Result<Option<Value>> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        serde_json::from_str(line.trim_end())
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("reply {line:?}: {e}")))
    }

    /// Sends one line and returns the one reply line; any failure fails the test.
    #[track_caller]
    pub fn request(&mut self, line: &str) -> Value {
        if let Err(e) = self.send_line(line) {
            panic!("sending {line:?}: {e}");
        }
        match self.read_reply() {
            Ok(Some(v)) => v,
            Ok(None) => panic!("daemon closed the connection after {line:?}"),
            Err(e) => panic!("no reply to {line:?}: {e}"),
        }
    }

    /// A request that must get `{"error": "non-empty message"}`; returns the message.
    #[track_caller]
    pub fn request_err(&mut self, line: &str) -> String {
        let reply = self.request(line);
        assert!(
            reply.get("ok").is_none(),
            "{line:?} should have failed, got {reply}"
        );
        match reply.get("error").and_then(Value::as_str) {
            Some(msg) if !msg.trim().is_empty() => msg.to_string(),
            _ => panic!("{line:?}: expected {{\"error\": MESSAGE}}, got {reply}"),
        }
    }

    /// A request that must get `{"ok": DATA}`; returns DATA.
    #[track_caller]
    pub fn request_ok(&mut self, line: &str) -> Value {
        let reply = self.request(line);
        match reply.get("ok") {
            Some(data) if reply.get("error").is_none() => data.clone(),
            _ => panic!("{line:?}: expected {{\"ok\": DATA}}, got {reply}"),
        }
    }
}

/// One request on a fresh connection.
pub fn raw_request(socket: &Path, line: &str) -> Value {
    RawConn::connect(socket).request(line)
}
