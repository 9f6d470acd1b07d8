//! DPDK's `testpmd` as a test peer: a virtio-user "VM" for vhost-user ports, and around it
//! tap, pcap and vhost devices.
//!
//! Each [`Testpmd`] is one `dpdk-testpmd` process in interactive mode, driven through its
//! stdin. Its stdout is line-buffered (`stdbuf -oL`, else printf output sits in a 4 KiB
//! buffer) and read by a thread. The command line library echoes each line it reads, so after
//! every command the harness sends a comment line `# vst-mark-N` and reads the command's output
//! up to that echo: no prompt parsing, no sleeps. Counters come from `show port stats N` and
//! from the forward statistics `stop` prints, so a test starts and stops forwarding itself and
//! compares exact numbers.
//!
//! The forwarding lcore busy-polls while forwarding runs, so at most [`MAX_RUNNING`] testpmd
//! processes run at once in a test process: [`Testpmd`] holds a slot of a process-wide
//! semaphore for its life. A test that needs two at once calls [`reserve`] first, so two tests
//! holding one slot each cannot wait on each other.
//!
//! Dropping a `Testpmd` (also when the test panics) kills its process group, removes the
//! sockets it served and its EAL runtime directory, and prints the tail of its output if the
//! test is failing.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{poll, seq, Daemon, Netns};

/// Where Debian's dpdk-dev package (installed by `.ci/run`) puts testpmd.
pub const TESTPMD: &str = "/usr/bin/dpdk-testpmd";
/// testpmd processes one test process runs at once (each keeps a core busy while forwarding).
pub const MAX_RUNNING: usize = 2;
/// How long start-up (EAL, ports, the vhost-user handshake) may take.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one interactive command may take.
const CMD_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a test may wait for a free slot.
const SLOT_TIMEOUT: Duration = Duration::from_secs(300);
/// Lines of output shown when a test fails.
const TAIL_LINES: usize = 60;

/// Whether testpmd is installed.
pub fn testpmd_available() -> bool {
    Path::new(TESTPMD).is_file()
}

/// Fails the test unless testpmd is installed: tests never skip.
#[track_caller]
pub fn require_testpmd() {
    crate::require_env();
    assert!(
        testpmd_available(),
        "{TESTPMD} is missing: the vhost-user tests drive DPDK's testpmd as the VM side. \
         `.ci/run` installs it (apt-get install dpdk-dev); do that, do not skip these tests"
    );
}

// ---------------------------------------------------------------------------------------------
// Slots: at most MAX_RUNNING processes per test process.

static SLOTS: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());

thread_local! {
    /// Free slots of this thread's [`Reservation`], if it holds one.
    static RESERVED: Cell<Option<usize>> = const { Cell::new(None) };
}

fn acquire(n: usize) {
    assert!(n <= MAX_RUNNING, "at most {MAX_RUNNING} testpmd at once");
    let (lock, cv) = &SLOTS;
    let deadline = Instant::now() + SLOT_TIMEOUT;
    let mut used = lock.lock().unwrap_or_else(|e| e.into_inner());
    while *used + n > MAX_RUNNING {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "waited {SLOT_TIMEOUT:?} for {n} free testpmd slot(s)"
        );
        used = cv
            .wait_timeout(used, left)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    *used += n;
}

fn release(n: usize) {
    let (lock, cv) = &SLOTS;
    let mut used = lock.lock().unwrap_or_else(|e| e.into_inner());
    *used = used.saturating_sub(n);
    cv.notify_all();
}

/// `n` slots taken at once for this thread: the testpmd processes it starts while the
/// reservation lives use them (restarts included) before taking any other.
pub struct Reservation {
    n: usize,
}

/// Takes `n` slots at once (waiting for them, bounded) for the calling thread.
pub fn reserve(n: usize) -> Reservation {
    assert!(
        RESERVED.with(Cell::get).is_none(),
        "this thread already holds a testpmd reservation"
    );
    acquire(n);
    RESERVED.with(|r| r.set(Some(n)));
    Reservation { n }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // Slots in use by live processes stay taken; each is released when its process goes.
        let free = RESERVED.with(|r| r.take()).unwrap_or(0);
        release(free.min(self.n));
    }
}

/// Which pool a process's slot came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Reserved,
    Global,
}

fn take_slot() -> Slot {
    let from_reservation = RESERVED.with(|r| match r.get() {
        Some(free) if free > 0 => {
            r.set(Some(free - 1));
            true
        }
        _ => false,
    });
    if from_reservation {
        Slot::Reserved
    } else {
        acquire(1);
        Slot::Global
    }
}

fn give_slot(slot: Slot) {
    let back_to_reservation = slot == Slot::Reserved
        && RESERVED.with(|r| match r.get() {
            Some(free) => {
                r.set(Some(free + 1));
                true
            }
            None => false,
        });
    if !back_to_reservation {
        release(1);
    }
}

// ---------------------------------------------------------------------------------------------
// Devices and options.

/// A virtio-user port: the "VM" side of a vhost-user socket.
#[derive(Debug, Clone)]
pub struct VirtioUser {
    pub path: PathBuf,
    /// `server=1`: testpmd serves the socket (the switch's port is then `mode=client`).
    pub server: bool,
    pub queues: Option<u16>,
    pub mrg_rxbuf: Option<bool>,
    pub packed_vq: Option<bool>,
    pub mac: Option<String>,
}

impl VirtioUser {
    pub fn new(path: impl Into<PathBuf>) -> VirtioUser {
        VirtioUser {
            path: path.into(),
            server: false,
            queues: None,
            mrg_rxbuf: None,
            packed_vq: None,
            mac: None,
        }
    }
    pub fn server(mut self) -> Self {
        self.server = true;
        self
    }
    pub fn queues(mut self, n: u16) -> Self {
        self.queues = Some(n);
        self
    }
    pub fn mrg_rxbuf(mut self, on: bool) -> Self {
        self.mrg_rxbuf = Some(on);
        self
    }
    pub fn packed_vq(mut self, on: bool) -> Self {
        self.packed_vq = Some(on);
        self
    }
    pub fn mac(mut self, mac: &str) -> Self {
        self.mac = Some(mac.to_string());
        self
    }
}

/// One `--vdev`, in port order (the first is port 0).
#[derive(Debug, Clone)]
pub enum Vdev {
    VirtioUser(VirtioUser),
    /// A kernel tap device the PMD creates (in testpmd's namespace).
    Tap {
        iface: String,
        mac: Option<String>,
    },
    /// Frames read from one pcap file and written to another.
    Pcap {
        rx: PathBuf,
        tx: PathBuf,
    },
    /// Any other device, its `--vdev` argument given whole (its name must be unique).
    Other(String),
    /// DPDK's own vhost-user back end (a reference for the harness's self-tests).
    Vhost {
        iface: PathBuf,
        client: bool,
        queues: u16,
    },
}

impl Vdev {
    /// The `--vdev` argument; `n` makes the device name unique among those of its driver.
    fn arg(&self, n: usize) -> String {
        match self {
            Vdev::VirtioUser(v) => {
                let mut s = format!("net_virtio_user{n},path={}", v.path.display());
                let flag = |b: bool| if b { "1" } else { "0" };
                if v.server {
                    s.push_str(",server=1");
                }
                if let Some(q) = v.queues {
                    s.push_str(&format!(",queues={q}"));
                }
                if let Some(m) = v.mrg_rxbuf {
                    s.push_str(&format!(",mrg_rxbuf={}", flag(m)));
                }
                if let Some(p) = v.packed_vq {
                    s.push_str(&format!(",packed_vq={}", flag(p)));
                }
                if let Some(mac) = &v.mac {
                    s.push_str(&format!(",mac={mac}"));
                }
                s
            }
            Vdev::Tap { iface, mac: None } => format!("net_tap{n},iface={iface}"),
            Vdev::Tap {
                iface,
                mac: Some(mac),
            } => format!("net_tap{n},iface={iface},mac={mac}"),
            Vdev::Other(arg) => arg.clone(),
            Vdev::Pcap { rx, tx } => format!(
                "net_pcap{n},rx_pcap={},tx_pcap={}",
                rx.display(),
                tx.display()
            ),
            Vdev::Vhost {
                iface,
                client,
                queues,
            } => format!(
                "net_vhost{n},iface={},queues={queues},client={}",
                iface.display(),
                u8::from(*client)
            ),
        }
    }

    fn driver(&self) -> u8 {
        match self {
            Vdev::VirtioUser(_) => 0,
            Vdev::Tap { .. } => 1,
            Vdev::Pcap { .. } => 2,
            Vdev::Vhost { .. } => 3,
            Vdev::Other(_) => 4,
        }
    }

    /// A socket this process creates and should remove when it goes.
    fn served_socket(&self) -> Option<&Path> {
        match self {
            Vdev::VirtioUser(v) if v.server => Some(&v.path),
            Vdev::Vhost {
                iface,
                client: false,
                ..
            } => Some(iface),
            _ => None,
        }
    }
}

/// testpmd's `--forward-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fwd {
    TxOnly,
    RxOnly,
    Io,
    MacSwap,
}

impl Fwd {
    fn as_str(self) -> &'static str {
        match self {
            Fwd::TxOnly => "txonly",
            Fwd::RxOnly => "rxonly",
            Fwd::Io => "io",
            Fwd::MacSwap => "macswap",
        }
    }
}

/// Builds the command line of one testpmd.
#[derive(Debug, Clone)]
pub struct Builder {
    vdevs: Vec<Vdev>,
    fwd: Fwd,
    txpkts: Option<u32>,
    no_flush_rx: bool,
    netns: Option<String>,
    queues: Option<u16>,
    eth_peers: Vec<(u16, String)>,
    lcores: String,
    extra: Vec<String>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            vdevs: Vec::new(),
            fwd: Fwd::Io,
            txpkts: None,
            no_flush_rx: false,
            netns: None,
            queues: None,
            eth_peers: Vec::new(),
            lcores: "0,1".into(),
            extra: Vec::new(),
        }
    }
}

impl Builder {
    pub fn vdev(mut self, v: Vdev) -> Self {
        self.vdevs.push(v);
        self
    }
    pub fn virtio_user(self, v: VirtioUser) -> Self {
        self.vdev(Vdev::VirtioUser(v))
    }
    pub fn tap(self, iface: &str) -> Self {
        self.vdev(Vdev::Tap {
            iface: iface.into(),
            mac: None,
        })
    }
    pub fn pcap(self, rx: &Path, tx: &Path) -> Self {
        self.vdev(Vdev::Pcap {
            rx: rx.into(),
            tx: tx.into(),
        })
    }
    /// DPDK's vhost back end serving `iface` (`client`: connecting to it instead).
    pub fn vhost(self, iface: &Path, client: bool, queues: u16) -> Self {
        self.vdev(Vdev::Vhost {
            iface: iface.into(),
            client,
            queues,
        })
    }
    pub fn fwd(mut self, fwd: Fwd) -> Self {
        self.fwd = fwd;
        self
    }
    /// Length of the frames txonly sends (without FCS).
    pub fn txpkts(mut self, len: u32) -> Self {
        self.txpkts = Some(len);
        self
    }
    /// Keep what the ports hold at start (a pcap's frames) instead of flushing it.
    pub fn no_flush_rx(mut self) -> Self {
        self.no_flush_rx = true;
        self
    }
    /// Runs testpmd inside `ns` (`ip netns exec`), e.g. so a tap it creates lives there.
    pub fn netns(mut self, ns: &Netns) -> Self {
        self.netns = Some(ns.name().to_string());
        self
    }
    /// `--rxq=N --txq=N` (a virtio-user port with `queues=N` needs them to use its queues).
    pub fn queues(mut self, n: u16) -> Self {
        self.queues = Some(n);
        self
    }
    /// Destination MAC of port `port`'s txonly/io/mac frames (`--eth-peer`).
    pub fn eth_peer(mut self, port: u16, mac: &str) -> Self {
        self.eth_peers.push((port, mac.to_string()));
        self
    }
    /// EAL `-l` (main lcore first, then the forwarding one); default `0,1`.
    pub fn lcores(mut self, lcores: &str) -> Self {
        self.lcores = lcores.to_string();
        self
    }
    /// Further testpmd (application) arguments.
    pub fn arg(mut self, arg: &str) -> Self {
        self.extra.push(arg.to_string());
        self
    }

    fn command(&self, prefix: &str) -> Command {
        let mut args: Vec<String> = vec![
            "stdbuf".into(),
            "-oL".into(),
            TESTPMD.into(),
            "--no-huge".into(),
            "--no-pci".into(),
            "-m".into(),
            "512".into(),
            "--file-prefix".into(),
            prefix.into(),
            "-l".into(),
            self.lcores.clone(),
        ];
        let mut per_driver = [0usize; 5];
        for v in &self.vdevs {
            let n = &mut per_driver[usize::from(v.driver())];
            args.push("--vdev".into());
            args.push(v.arg(*n));
            *n += 1;
        }
        args.push("--".into());
        args.push("-i".into());
        args.push("--total-num-mbufs=16384".into());
        args.push(format!("--forward-mode={}", self.fwd.as_str()));
        if let Some(len) = self.txpkts {
            args.push(format!("--txpkts={len}"));
        }
        if self.no_flush_rx {
            args.push("--no-flush-rx".into());
        }
        if let Some(q) = self.queues {
            args.push(format!("--rxq={q}"));
            args.push(format!("--txq={q}"));
        }
        for (port, mac) in &self.eth_peers {
            args.push(format!("--eth-peer={port},{mac}"));
        }
        args.extend(self.extra.iter().cloned());
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]);
                c.args(&args);
                c
            }
            None => {
                let mut c = Command::new(&args[0]);
                c.args(&args[1..]);
                c
            }
        };
        // `ip netns exec` and `stdbuf` exec testpmd in place: the child's pid is testpmd's, and
        // the group it leads holds everything it starts.
        cmd.process_group(0);
        crate::sys::die_with_parent(&mut cmd);
        cmd
    }

    /// Starts testpmd and waits until its command line answers; panics if it cannot.
    #[track_caller]
    pub fn start(self) -> Testpmd {
        match self.try_start() {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }

    /// Starts testpmd and waits until its command line answers; `Err` (with its output) if it
    /// exits first, e.g. because a virtio-user port found nobody on its socket.
    pub fn try_start(self) -> Result<Testpmd, String> {
        require_testpmd();
        let slot = take_slot();
        let prefix = format!("vst{}x{}", std::process::id(), seq());
        let mut cmd = self.command(&prefix);
        let what = format!("{cmd:?}");
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                give_slot(slot);
                return Err(format!("cannot start {what}: {e}"));
            }
        };
        let stdin = child.stdin.take();
        let out = Arc::new(Output::default());
        let err = Arc::new(Output::default());
        read_into(child.stdout.take(), Arc::clone(&out));
        read_into(child.stderr.take(), Arc::clone(&err));
        let sockets = self
            .vdevs
            .iter()
            .filter_map(|v| v.served_socket().map(Path::to_path_buf))
            .collect();
        let mut t = Testpmd {
            what,
            child: Some(child),
            stdin,
            out,
            err,
            cursor: 0,
            prefix,
            sockets,
            slot: Some(slot),
            ports: self.vdevs.len(),
            ready: false,
        };
        let serves_virtio = self
            .vdevs
            .iter()
            .any(|v| matches!(v, Vdev::VirtioUser(u) if u.server));
        if !serves_virtio {
            return t.try_wait_ready().map(|()| t);
        }
        // A virtio-user port with server=1 holds start-up until a back end connects: it is
        // enough that the socket is there.
        let sockets = t.sockets.clone();
        let listening = poll(START_TIMEOUT, Duration::from_millis(20), || {
            sockets.iter().all(|s| s.exists()).then_some(())
        });
        match listening {
            Some(()) => Ok(t),
            None => Err(format!(
                "testpmd did not create {sockets:?} within {START_TIMEOUT:?}\n{}",
                t.tail()
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The running process.

/// What a process wrote on one of its pipes so far.
#[derive(Default)]
struct Output {
    text: Mutex<(String, bool)>,
    grew: Condvar,
}

fn read_into<R: Read + Send + 'static>(pipe: Option<R>, out: Arc<Output>) {
    let Some(mut pipe) = pipe else { return };
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            let n = pipe.read(&mut buf).unwrap_or(0);
            let mut text = out.text.lock().unwrap_or_else(|e| e.into_inner());
            if n == 0 {
                text.1 = true;
            } else {
                text.0.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            out.grew.notify_all();
            if n == 0 {
                return;
            }
        }
    });
}

/// NIC counters of one port (`show port stats N`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub rx_nombuf: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_errors: u64,
}

/// Forward-engine counters of one port since the last `start` (printed by `stop`):
/// `tx_dropped` are frames the engine made or received but the port would not take.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FwdStats {
    pub rx_packets: u64,
    pub rx_dropped: u64,
    pub tx_packets: u64,
    pub tx_dropped: u64,
}

/// One running `dpdk-testpmd`.
pub struct Testpmd {
    what: String,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    out: Arc<Output>,
    err: Arc<Output>,
    /// Where the next command's output starts in `out`.
    cursor: usize,
    prefix: String,
    sockets: Vec<PathBuf>,
    slot: Option<Slot>,
    ports: usize,
    /// Start-up is over: the command line answered once.
    ready: bool,
}

impl Testpmd {
    pub fn builder() -> Builder {
        Builder::default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Number of ports (vdevs) it was started with.
    pub fn ports(&self) -> usize {
        self.ports
    }

    /// Whether the process still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Everything it printed so far (stdout, then stderr).
    pub fn output(&self) -> String {
        let out = self.out.text.lock().unwrap_or_else(|e| e.into_inner());
        let err = self.err.text.lock().unwrap_or_else(|e| e.into_inner());
        format!("{}\n--- stderr ---\n{}", out.0, err.0)
    }

    /// The last lines of its output, for failure messages.
    pub fn tail(&self) -> String {
        let all = self.output();
        let lines: Vec<&str> = all.lines().collect();
        format!(
            "--- last lines of `{}` ---\n{}\n--- end ---",
            self.what,
            lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
        )
    }

    /// Waits (bounded) until start-up is over and the command line answers. Commands wait for
    /// this themselves; a test calls it to wait for a virtio-user server's back end.
    #[track_caller]
    pub fn wait_ready(&mut self) {
        if let Err(e) = self.try_wait_ready() {
            panic!("{e}");
        }
    }

    fn try_wait_ready(&mut self) -> Result<(), String> {
        if self.ready {
            return Ok(());
        }
        self.try_cmd("", START_TIMEOUT)
            .map_err(|e| format!("testpmd did not start: {e}\n{}", self.tail()))?;
        // A device that fails to probe leaves testpmd running without it.
        let summary = self.try_cmd("show port summary all", CMD_TIMEOUT)?;
        let ports = summary
            .lines()
            .find_map(|l| l.trim().strip_prefix("Number of available ports:"))
            .and_then(|n| n.trim().parse::<usize>().ok());
        if ports != Some(self.ports) {
            return Err(format!(
                "testpmd has {ports:?} ports, not the {} it was given\n{}",
                self.ports,
                self.tail()
            ));
        }
        self.ready = true;
        Ok(())
    }

    /// Runs one interactive command and returns what it printed.
    #[track_caller]
    pub fn cmd(&mut self, line: &str) -> String {
        self.wait_ready();
        match self.try_cmd(line, CMD_TIMEOUT) {
            Ok(out) => out,
            Err(e) => panic!("testpmd `{line}`: {e}\n{}", self.tail()),
        }
    }

    fn try_cmd(&mut self, line: &str, limit: Duration) -> Result<String, String> {
        let marker = format!("# vst-mark-{}", seq());
        let stdin = self.stdin.as_mut().ok_or("testpmd was stopped")?;
        let mut input = String::new();
        if !line.is_empty() {
            input.push_str(line);
            input.push('\n');
        }
        input.push_str(&marker);
        input.push('\n');
        stdin
            .write_all(input.as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("writing to its stdin: {e}"))?;
        let deadline = Instant::now() + limit;
        let mut text = self.out.text.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(at) = text.0[self.cursor..].find(&marker) {
                let reply = text.0[self.cursor..self.cursor + at].to_string();
                self.cursor += at + marker.len();
                return Ok(reply);
            }
            if text.1 {
                return Err("testpmd exited".into());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("no answer within {limit:?}"));
            }
            text = self
                .out
                .grew
                .wait_timeout(text, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// `show port stats PORT`.
    #[track_caller]
    pub fn port_stats(&mut self, port: u16) -> PortStats {
        let text = self.cmd(&format!("show port stats {port}"));
        let Some(m) = number_fields(&text).into_values().next() else {
            panic!("no NIC statistics in {text:?}");
        };
        let get = |k: &str| {
            *m.get(k)
                .unwrap_or_else(|| panic!("no {k} in NIC statistics {text:?}"))
        };
        PortStats {
            rx_packets: get("RX-packets"),
            rx_bytes: get("RX-bytes"),
            rx_missed: get("RX-missed"),
            rx_errors: get("RX-errors"),
            rx_nombuf: get("RX-nombuf"),
            tx_packets: get("TX-packets"),
            tx_bytes: get("TX-bytes"),
            tx_errors: get("TX-errors"),
        }
    }

    /// Zeroes the NIC counters of every port.
    pub fn clear_stats(&mut self) {
        self.cmd("clear port stats all");
    }

    /// Starts forwarding.
    pub fn start_fwd(&mut self) {
        let out = self.cmd("start");
        assert!(
            out.contains("packet forwarding") && !out.contains("already started"),
            "`start` said: {out}"
        );
    }

    /// Stops forwarding and returns each port's forward statistics since `start`.
    #[track_caller]
    pub fn stop_fwd(&mut self) -> Vec<FwdStats> {
        let out = self.cmd("stop");
        let per_port = number_fields(&out);
        let stats: Vec<FwdStats> = (0..self.ports)
            .map(|p| {
                let Some(m) = per_port.get(&Some(p)) else {
                    panic!("`stop` printed no forward statistics for port {p}:\n{out}");
                };
                let get = |k: &str| m.get(k).copied().unwrap_or(0);
                FwdStats {
                    rx_packets: get("RX-packets"),
                    rx_dropped: get("RX-dropped"),
                    tx_packets: get("TX-packets"),
                    tx_dropped: get("TX-dropped"),
                }
            })
            .collect();
        stats
    }

    /// Changes the forwarding mode (while forwarding is stopped).
    pub fn set_fwd(&mut self, fwd: Fwd) {
        let out = self.cmd(&format!("set fwd {}", fwd.as_str()));
        assert!(out.contains("forwarding mode"), "`set fwd`: {out}");
    }

    /// The MAC address of port `port`, lower case.
    #[track_caller]
    pub fn mac(&mut self, port: u16) -> String {
        let info = self.cmd(&format!("show port info {port}"));
        info.lines()
            .find_map(|l| l.trim().strip_prefix("MAC address: "))
            .unwrap_or_else(|| panic!("no MAC address in {info}"))
            .trim()
            .to_ascii_lowercase()
    }

    /// Whether port `port` reports its link up.
    pub fn link_up(&mut self, port: u16) -> bool {
        let info = self.cmd(&format!("show port info {port}"));
        info.lines()
            .any(|l| l.trim() == "Link status: up" || l.trim() == "Link status: Up")
    }

    /// Waits (bounded) until port `port`'s link is up.
    #[track_caller]
    pub fn wait_link_up(&mut self, port: u16, limit: Duration) {
        if poll(limit, Duration::from_millis(50), || {
            self.link_up(port).then_some(())
        })
        .is_none()
        {
            panic!(
                "testpmd port {port}: link not up after {limit:?}\n{}",
                self.tail()
            );
        }
    }

    /// A bounded txonly (or io) run: starts forwarding, stops once port `port` has sent at
    /// least `count` frames or `limit` has passed, and returns the forward statistics. The NIC
    /// counters are cleared first, so [`Testpmd::port_stats`] afterwards tells exactly what
    /// went into the port's queues.
    #[track_caller]
    pub fn burst(&mut self, port: u16, count: u64, limit: Duration) -> Vec<FwdStats> {
        self.clear_stats();
        self.start_fwd();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline && self.port_stats(port).tx_packets < count {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop_fwd()
    }

    /// Waits (bounded) until port `port` has received `count` frames; returns its counters.
    #[track_caller]
    pub fn wait_rx(&mut self, port: u16, count: u64, limit: Duration) -> PortStats {
        let mut last = PortStats::default();
        let done = poll(limit, Duration::from_millis(50), || {
            last = self.port_stats(port);
            (last.rx_packets >= count).then_some(last)
        });
        match done {
            Some(stats) => stats,
            None => panic!(
                "testpmd port {port} received {} of {count} frames in {limit:?}: {last:?}",
                last.rx_packets
            ),
        }
    }

    /// Quits cleanly (`quit`: ports stopped and closed, a vhost-user peer sees the rings
    /// stopped); killed if it takes more than 10 s. Returns the whole output.
    pub fn quit(mut self) -> String {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"quit\n");
        }
        let exited = self.child.as_mut().and_then(|c| {
            poll(Duration::from_secs(10), Duration::from_millis(20), || {
                c.try_wait().ok().flatten()
            })
        });
        if exited.is_some() {
            self.child = None;
        }
        self.finish();
        self.output()
    }

    /// Kills it now (SIGKILL to its process group), as a crashing VM would go.
    pub fn kill(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        self.stdin = None;
        if let Some(mut child) = self.child.take() {
            if let Ok(pid) = libc::pid_t::try_from(child.id()) {
                // Our own child (not yet reaped) leads this group: no other process can own it.
                crate::sys::kill(-pid, libc::SIGKILL);
            }
            let _ = poll(Duration::from_secs(10), Duration::from_millis(10), || {
                child.try_wait().ok().flatten()
            });
        }
        for s in &self.sockets {
            let _ = std::fs::remove_file(s);
        }
        let _ = std::fs::remove_dir_all(Path::new("/var/run/dpdk").join(&self.prefix));
        if let Some(slot) = self.slot.take() {
            give_slot(slot);
        }
    }
}

impl Drop for Testpmd {
    fn drop(&mut self) {
        if std::thread::panicking() && self.slot.is_some() {
            eprintln!("{}", self.tail());
        }
        self.finish();
    }
}

/// The `Key: number` pairs of testpmd's statistics, by the port whose section they are in:
/// `Some(N)` under "Forward statistics for port N", `None` elsewhere (NIC statistics, and the
/// per-stream and accumulated sections, which a test reads per port instead). For NIC
/// statistics of one port, the only entry is the one to read.
fn number_fields(text: &str) -> BTreeMap<Option<usize>, BTreeMap<String, u64>> {
    let mut all: BTreeMap<Option<usize>, BTreeMap<String, u64>> = BTreeMap::new();
    let mut section: Option<usize> = None;
    let mut skip = false;
    for line in text.lines() {
        if let Some(rest) = line.split("Forward statistics for port").nth(1) {
            section = rest.split_whitespace().next().and_then(|n| n.parse().ok());
            skip = false;
            continue;
        }
        if line.contains("Accumulated forward statistics") || line.contains("Forward Stats for") {
            skip = true;
            continue;
        }
        if line.contains("NIC statistics for port") {
            skip = false;
            section = None;
            continue;
        }
        if skip {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        for pair in words.windows(2) {
            if let (Some(key), Ok(n)) = (pair[0].strip_suffix(':'), pair[1].parse::<u64>()) {
                all.entry(section)
                    .or_default()
                    .entry(key.to_string())
                    .or_insert(n);
            }
        }
    }
    all
}

// ---------------------------------------------------------------------------------------------
// The switch's side of a vhost-user port.

/// `vsctl port add BRIDGE PORT type=vhostuser socket=SOCK OPTS...`.
#[track_caller]
pub fn add_vhost_port(d: &Daemon, bridge: &str, port: &str, sock: &Path, opts: &[&str]) {
    let socket = format!("socket={}", sock.display());
    let mut args = vec!["port", "add", bridge, port, "type=vhostuser", &socket];
    args.extend_from_slice(opts);
    d.ctl(&args);
}

/// One counter of `vsctl stats PORT` (`rx_packets`, `tx_bytes`, ...).
#[track_caller]
pub fn port_counter(d: &Daemon, port: &str, key: &str) -> u64 {
    let s = d.port_stats(port);
    s[key].as_u64().unwrap_or_else(|| panic!("no {key} in {s}"))
}

/// Every drop reason counted on a port, summed.
#[track_caller]
pub fn port_drops(d: &Daemon, port: &str) -> u64 {
    let s = d.port_stats(port);
    let reasons = s["drops"]
        .as_object()
        .unwrap_or_else(|| panic!("no drops in {s}"));
    reasons.values().map(|n| n.as_u64().unwrap_or(0)).sum()
}

/// The negotiated feature names of a vhost-user port's details.
#[track_caller]
pub fn features(details: &Value) -> Vec<String> {
    details["features"]
        .as_array()
        .unwrap_or_else(|| panic!("no features array in {details}"))
        .iter()
        .map(|f| {
            f.as_str()
                .unwrap_or_else(|| panic!("feature {f}"))
                .to_string()
        })
        .collect()
}

/// `details.vhostuser` of `vsctl port show PORT`.
#[track_caller]
pub fn vhost_details(d: &Daemon, port: &str) -> Value {
    let shown = d.ctl(&["port", "show", port]);
    let v = shown["details"]["vhostuser"].clone();
    assert!(v.is_object(), "{port} has no details.vhostuser: {shown}");
    v
}

/// Waits (bounded) until the port's `state` is `state`; returns its details then.
#[track_caller]
pub fn wait_vhost_state(d: &Daemon, port: &str, state: &str, limit: Duration) -> Value {
    let mut last = Value::Null;
    let found = poll(limit, Duration::from_millis(50), || {
        last = vhost_details(d, port);
        (last["state"] == state).then(|| last.clone())
    });
    match found {
        Some(v) => v,
        None => panic!("{port} not {state:?} after {limit:?}: {last:#}"),
    }
}

/// Sum of one counter (`frames`, `bytes`, `drops`) over a port's queues in `direction`
/// (`to_guest` or `from_guest`).
#[track_caller]
pub fn queue_sum(details: &Value, direction: &str, counter: &str) -> u64 {
    let queues = details["queues"]
        .as_array()
        .unwrap_or_else(|| panic!("no queues array in {details}"));
    queues
        .iter()
        .filter(|q| q["direction"] == direction)
        .map(|q| {
            q[counter]
                .as_u64()
                .unwrap_or_else(|| panic!("no {counter} in {q}"))
        })
        .sum()
}

/// A private directory for a test's sockets and pcap files, removed on drop. Its path is short:
/// a unix socket's path has at most 107 bytes.
pub struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("vst-{tag}-{}-{}", std::process::id(), seq()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        Scratch { dir }
    }

    /// `DIR/name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------------------------
// pcap files for the pcap PMD.

/// Writes `frames` as a pcap file (microsecond timestamps, Ethernet link type).
pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut buf = Vec::new();
    buf.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    buf.extend_from_slice(&2u16.to_le_bytes());
    buf.extend_from_slice(&4u16.to_le_bytes());
    for word in [0u32, 0, 65535, 1] {
        buf.extend_from_slice(&word.to_le_bytes());
    }
    for (i, f) in frames.iter().enumerate() {
        let len = u32::try_from(f.len()).expect("frame too long");
        let usec = u32::try_from(i).expect("too many frames");
        for word in [1u32, usec, len, len] {
            buf.extend_from_slice(&word.to_le_bytes());
        }
        buf.extend_from_slice(f);
    }
    std::fs::write(path, buf).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// The frames of a pcap file (either byte order, micro- or nanosecond timestamps).
pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert!(data.len() >= 24, "{}: no pcap header", path.display());
    let magic = [data[0], data[1], data[2], data[3]];
    let le = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => panic!("{}: not a pcap file (magic {magic:02x?})", path.display()),
    };
    let word = |at: usize| {
        let b = [data[at], data[at + 1], data[at + 2], data[at + 3]];
        if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let caplen = word(at + 8) as usize;
        let start = at + 16;
        assert!(
            start + caplen <= data.len(),
            "{}: truncated record",
            path.display()
        );
        frames.push(data[start..start + caplen].to_vec());
        at = start + caplen;
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nic_and_forward_statistics() {
        let nic = "
  ######################## NIC statistics for port 0  ########################
  RX-packets: 12         RX-missed: 0          RX-bytes:  768
  RX-errors: 0
  RX-nombuf:  3
  TX-packets: 63520      TX-errors: 0          TX-bytes:  4065280
";
        let m = number_fields(nic);
        assert_eq!(m[&None]["RX-packets"], 12);
        assert_eq!(m[&None]["RX-nombuf"], 3);
        assert_eq!(m[&None]["TX-bytes"], 4065280);
        let stop = "
  ------- Forward Stats for RX Port= 0/Queue= 0 -> TX Port= 0/Queue= 0 -------
  RX-packets: 7              TX-packets: 7              TX-dropped: 0
  ---------------------- Forward statistics for port 0  ----------------------
  RX-packets: 0              RX-dropped: 0             RX-total: 0
  TX-packets: 63520          TX-dropped: 56355712      TX-total: 56419232
  ---------------------- Forward statistics for port 1  ----------------------
  RX-packets: 5              RX-dropped: 1             RX-total: 6
  TX-packets: 0              TX-dropped: 0             TX-total: 0
  +++++++++++++++ Accumulated forward statistics for all ports+++++++++++++++
  RX-packets: 99             RX-dropped: 0             RX-total: 0
";
        let m = number_fields(stop);
        assert_eq!(m[&Some(0)]["TX-packets"], 63520);
        assert_eq!(m[&Some(0)]["TX-dropped"], 56355712);
        assert_eq!(m[&Some(1)]["RX-dropped"], 1);
        assert!(!m.contains_key(&None), "{m:?}");
    }

    #[test]
    fn pcap_round_trip() {
        let path = std::env::temp_dir().join(format!("vst-pcap-{}-{}", std::process::id(), seq()));
        let frames = vec![vec![1u8; 60], (0..=255).collect::<Vec<u8>>()];
        write_pcap(&path, &frames);
        assert_eq!(read_pcap(&path), frames);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn vdev_arguments() {
        let v = Vdev::VirtioUser(
            VirtioUser::new("/tmp/s")
                .server()
                .queues(2)
                .mrg_rxbuf(false)
                .packed_vq(true)
                .mac("02:00:00:00:00:01"),
        );
        assert_eq!(
            v.arg(1),
            "net_virtio_user1,path=/tmp/s,server=1,queues=2,mrg_rxbuf=0,packed_vq=1,\
             mac=02:00:00:00:00:01"
        );
    }
}
