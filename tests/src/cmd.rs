//! Running external commands with a time limit.
//!
//! `std::process` has no timeout, and a test must never hang on a stuck `ip`, `ping` or
//! `vsctl`: [`run`] kills the child when its time is up and reports it as timed out.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Time limit of the plain setup commands (`ip link ...`): generous, they take milliseconds.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(20);

/// What a finished (or killed) command left behind.
#[derive(Debug)]
pub struct CmdOutput {
    /// The command line, for messages.
    pub what: String,
    /// `None` when the command overran its time limit and was killed.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        matches!(self.status, Some(s) if s.success())
    }

    pub fn timed_out(&self) -> bool {
        self.status.is_none()
    }

    /// Fails the test unless the command succeeded.
    #[track_caller]
    pub fn check(self) -> CmdOutput {
        if !self.success() {
            panic!("{}", self.describe_failure());
        }
        self
    }

    pub fn describe_failure(&self) -> String {
        let how = match self.status {
            Some(s) => format!("failed ({s})"),
            None => "timed out and was killed".to_string(),
        };
        format!(
            "`{}` {how}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` with stdin closed and stdout/stderr captured, killing it after `limit`.
pub fn run(cmd: &mut Command, limit: Duration) -> CmdOutput {
    let what = describe(cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{what}`: {e}"));
    // Read both pipes on threads so a chatty child cannot block on a full pipe.
    let stdout_rx = drain(child.stdout.take());
    let stderr_rx = drain(child.stderr.take());
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                // Our own child, not yet reaped, so its pid cannot have been reused.
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("waiting for `{what}`: {e}"),
        }
    };
    // A grandchild that inherited the pipes could keep them open: don't wait for it forever.
    // But the readers are threads: on a loaded machine (a benchmark, a fuzzer and the test
    // suite at once) one can take more than 2 s to be scheduled after the child exits, and a
    // short grace then loses output the child wrote (seen: `vsctl --json stats` "succeeded
    // with an empty stdout").
    let grace = Duration::from_secs(15);
    CmdOutput {
        what,
        status,
        stdout: stdout_rx.recv_timeout(grace).unwrap_or_default(),
        stderr: stderr_rx.recv_timeout(grace).unwrap_or_default(),
    }
}

/// Runs `args[0]` with the other `args`, under [`CMD_TIMEOUT`].
pub fn sh(args: &[&str]) -> CmdOutput {
    let (prog, rest) = args.split_first().expect("empty command");
    run(Command::new(prog).args(rest), CMD_TIMEOUT)
}

/// Runs a command that must succeed and returns its stdout.
#[track_caller]
pub fn must(args: &[&str]) -> String {
    sh(args).check().stdout
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
        });
    }
    rx
}

fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}
