//! Harness for vswitch's root-only integration tests.
//!
//! Each test builds its own small world: network namespaces standing in for hosts, veth pairs
//! and taps as their cables, and a private `vswitchd` with its own socket and state directory.
//! Every piece is an RAII guard, so a failing (panicking) test still tears its world down, and
//! every external command runs under a time limit, so a wedged daemon fails a test instead of
//! hanging CI.
//!
//! Tests run in parallel threads of one process (and several test binaries one after another),
//! so every name that lives outside a test's own namespaces — namespace names, root-namespace
//! interface names, temp dirs — is made unique from the process id and a counter.
//!
//! The tests need root (namespaces, veths, taps) and fail loudly, never skip, without it.
//!
//! The binaries under test are found next to the test executable (`target/debug/`); build them
//! first with `cargo build --workspace`, or point `VSWITCH_BIN_DIR` at another build
//! (e.g. `VSWITCH_BIN_DIR=target/release`).

pub mod cmd;
pub mod daemon;
pub mod framegen;
pub mod frr;
pub mod gobgp;
pub mod json;
pub mod monitor;
pub mod net;
pub mod sys;
pub mod testpmd;
pub mod topo;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

pub use cmd::{must, run, sh, CmdOutput};
pub use daemon::{Daemon, RawConn};
pub use json::{entries_of, normalize};
pub use net::{Cable, Host, IfCounters, Netns, PingStats, Veth};
pub use topo::ThreeHosts;

/// Directory holding `vswitchd` and `vsctl`.
///
/// A test executable is `target/<profile>/deps/NAME-HASH`; cargo puts the workspace's binaries
/// in `target/<profile>/`, two levels up. `VSWITCH_BIN_DIR` overrides this.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("VSWITCH_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("cannot find the test executable's path");
    exe.parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("unexpected test executable path {}", exe.display()))
        .to_path_buf()
}

/// Path of one of the workspace's binaries, or a panic that says how to build it.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    if !path.is_file() {
        panic!(
            "{} not found. `cargo test` builds only the test package's own targets: run \
             `cargo build --workspace` first (or set VSWITCH_BIN_DIR to a directory holding \
             vswitchd and vsctl)",
            path.display()
        );
    }
    path
}

/// Checks, once per test process, everything a test needs from the machine. Panics (the test
/// fails) rather than skipping: a green run without these tests would be a lie.
pub fn require_env() {
    static CHECK: Once = Once::new();
    CHECK.call_once(|| {
        let euid = sys::geteuid();
        assert_eq!(
            euid, 0,
            "vswitch integration tests need root (network namespaces, veths, taps); \
             run them as root, e.g. `sudo -E cargo test -p vswitch-tests`"
        );
        for (tool, package) in [("ip", "iproute2"), ("ping", "iputils-ping")] {
            let ok = std::process::Command::new(tool)
                .arg("-V")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "`{tool}` is missing: apt-get install {package}");
        }
        bin("vswitchd");
        bin("vsctl");
    });
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A number unique within this test process.
pub fn seq() -> u32 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// A root-namespace interface name unique across parallel tests (and test processes):
/// `PREFIX` + pid + counter, within the kernel's 15-character limit.
pub fn unique_ifname(prefix: &str) -> String {
    let name = format!("{prefix}{}x{}", std::process::id(), seq());
    assert!(
        name.len() <= 15,
        "interface name {name} is too long; use a shorter prefix"
    );
    name
}

/// Calls `f` every `every` until it returns `Some`, for at most `limit`.
pub fn poll<T>(limit: Duration, every: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// Like [`poll`], but a timeout fails the test with `what` in the message.
pub fn wait_for<T>(limit: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
    poll(limit, Duration::from_millis(100), f)
        .unwrap_or_else(|| panic!("timed out after {limit:?} waiting for {what}"))
}
