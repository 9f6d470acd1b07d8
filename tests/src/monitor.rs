//! `vsctl --json monitor` as a test reads it: a child process whose event lines a thread
//! collects, waited on with a bound; killed on drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{bin, Daemon};

/// How long an event may take to show up.
pub const EVENT_WAIT: Duration = Duration::from_secs(5);

/// A running `vsctl --json monitor`, its lines collected by a thread; killed on drop.
pub struct Monitor {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every event line read so far.
    pub seen: Vec<Value>,
}

impl Monitor {
    pub fn start(d: &Daemon) -> Monitor {
        let mut child = Command::new(bin("vsctl"))
            .arg("--socket")
            .arg(d.socket())
            .args(["--json", "monitor"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start vsctl monitor");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let m = Monitor {
            child,
            lines: rx,
            seen: Vec::new(),
        };
        // It listens once a change made now is heard (vsctl takes a moment to connect).
        d.ctl(&["bridge", "add", "brsync"]);
        for aging in 100.. {
            let aging_opt = format!("aging={aging}");
            d.ctl(&["bridge", "set", "brsync", &aging_opt]);
            if let Ok(line) = m.lines.recv_timeout(Duration::from_millis(300)) {
                eprintln!("monitor: {line}");
                break;
            }
            assert!(aging < 130, "vsctl monitor heard nothing for 9 s");
        }
        m
    }

    /// Waits for an event line matching `pred`; returns it.
    #[track_caller]
    pub fn expect(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + EVENT_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let v: Value = serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("monitor line {line:?} is not JSON: {e}"));
                    assert!(
                        v["time"].as_str().is_some_and(|t| t.ends_with('Z')),
                        "event without a timestamp: {line}"
                    );
                    eprintln!("monitor: {line}");
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(_) => panic!(
                    "no event for {what} within {EVENT_WAIT:?}; saw:\n{:#?}",
                    self.seen
                ),
            }
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Monitor {
    /// Reads events for `window`; returns how many matched `pred` (those read before
    /// included).
    pub fn count_within(&mut self, window: Duration, pred: impl Fn(&Value) -> bool) -> usize {
        let deadline = Instant::now() + window;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Ok(v) = serde_json::from_str::<Value>(&line) {
                        eprintln!("monitor: {line}");
                        self.seen.push(v);
                    }
                }
                Err(_) => break,
            }
        }
        self.seen.iter().filter(|v| pred(v)).count()
    }
}
