//! A private GoBGP speaker (`gobgpd`, Debian's package) per simulated hypervisor, for the EVPN
//! tests.
//!
//! The BGP control plane runs over loopback in the root namespace: each [`GoBgpd`] owns one
//! address of 127.0.0.0/8 ([`unique_loopback`], made from the test process's id and a counter,
//! so parallel tests and test processes never meet), where it listens for BGP on port 179
//! (`local-address-list`, and `transport.local-address` so that its own connections come from
//! that address too, which is how its iBGP peers recognise it) and serves its gRPC API on port
//! 50051 (`--api-hosts`). The kernel routes all of 127.0.0.0/8 to `lo`, so no address has to be
//! added. The data plane (VXLAN) runs elsewhere, between vswitchd's uplinks.
//!
//! Like [`crate::Daemon`], a guard: the daemon is SIGKILLed on drop (and by the kernel should
//! the thread that started it die, see [`crate::sys::die_with_parent`]), its temp dir removed,
//! and its log's tail printed when the test is failing. Every `gobgp` CLI call runs under a time
//! limit.
//!
//! Timing worth knowing when choosing wait limits: gobgpd makes its first outgoing connection
//! attempt 5 to 10 s (random) after a neighbour becomes active, and retries every 5 to 10 s
//! (`connect-retry` below 5 s is raised to 5 s; see `connectLoop` in gobgp's `pkg/server/fsm.go`),
//! so a session takes up to ~10 s to come up, and as long to come back after a peer restarts.
//! A killed peer, on the other hand, is noticed at once: its TCP connection is reset.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cmd::{run, CmdOutput};
use crate::{poll, require_env, seq};

/// BGP port every gobgpd listens on (each on its own address).
pub const BGP_PORT: u16 = 179;
/// gRPC API port every gobgpd serves (each on its own address).
pub const API_PORT: u16 = 50051;
/// How long gobgpd gets to answer its API after start.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Time limit of one `gobgp` CLI call.
const CLI_TIMEOUT: Duration = Duration::from_secs(10);
/// Log lines shown when a test fails.
const LOG_TAIL_LINES: usize = 40;
/// `state.session_state` of `gobgp neighbor -j` when established (the API's enum:
/// 1 idle, 2 connect, 3 active, 4 opensent, 5 openconfirm, 6 established).
const ESTABLISHED: u64 = 6;

/// A loopback address no other gobgpd of any running test uses: 127.X.Y.Z with X.Y from the
/// process id and Z from a per-process counter (X never 0, so never 127.0.0.1).
pub fn unique_loopback() -> String {
    let pid = std::process::id() % (254 * 256);
    let n = seq() % 254;
    format!("127.{}.{}.{}", 1 + pid / 256, pid % 256, 1 + n)
}

/// One BGP neighbour of a gobgpd, all in the same AS (iBGP), address family l2vpn-evpn.
#[derive(Debug, Clone)]
pub struct Neighbor {
    /// The neighbour's address (its [`GoBgpd::addr`]).
    pub address: String,
    /// Whether this gobgpd reflects routes to that neighbour (it is the route reflector and the
    /// neighbour one of its clients).
    pub route_reflector_client: bool,
}

impl Neighbor {
    /// A plain iBGP peer (full mesh, or a client's session to its route reflector).
    pub fn peer(address: &str) -> Neighbor {
        Neighbor {
            address: address.to_string(),
            route_reflector_client: false,
        }
    }

    /// A route reflector's client.
    pub fn rr_client(address: &str) -> Neighbor {
        Neighbor {
            address: address.to_string(),
            route_reflector_client: true,
        }
    }
}

/// One path of `gobgp global rib -a evpn -j`, the fields the tests look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvpnRoute {
    /// The destination as gobgp prints it, e.g. `[type:macadv][rd:..][etag:0][mac:..][ip:..]`.
    pub prefix: String,
    /// 2 (MAC/IP advertisement) or 3 (inclusive multicast), or any other EVPN type.
    pub route_type: u64,
    /// `ADMIN:ASSIGNED`, e.g. `10.0.0.1:100`.
    pub rd: String,
    /// Type 2 only, lower case.
    pub mac: Option<String>,
    /// Type 2: the IP, if the route carries one; type 3: the originator's IP.
    pub ip: Option<String>,
    pub labels: Vec<u64>,
    /// From MP_REACH_NLRI: the VTEP for type 2; for type 3 gobgp may show the peer's address.
    pub nexthop: Option<String>,
    /// PMSI tunnel attribute (type 3): tunnel id (the VTEP) and label (the VNI).
    pub pmsi_tunnel_id: Option<String>,
    pub pmsi_label: Option<u64>,
    /// Route-target extended communities, `ASN:N`.
    pub route_targets: Vec<String>,
    /// Whether the VXLAN encapsulation extended community is present.
    pub encap_vxlan: bool,
    /// MAC mobility extended community's sequence number, if present.
    pub mac_mobility_seq: Option<u64>,
    /// The BGP neighbour the path came from; `None` for a path this gobgpd originated (added
    /// over its API).
    pub neighbor: Option<String>,
    pub best: bool,
}

impl EvpnRoute {
    /// The VTEP the route points at: PMSI tunnel id for type 3, next hop otherwise.
    pub fn vtep(&self) -> Option<&str> {
        match self.route_type {
            3 => self.pmsi_tunnel_id.as_deref().or(self.nexthop.as_deref()),
            _ => self.nexthop.as_deref(),
        }
    }

    /// Parses every path of a `gobgp global rib -a evpn -j` reply (an object from prefix to an
    /// array of paths).
    pub fn parse_rib(rib: &Value) -> Vec<EvpnRoute> {
        let Some(map) = rib.as_object() else {
            panic!("gobgp evpn rib is not a JSON object: {rib}");
        };
        let mut out = Vec::new();
        for (prefix, paths) in map {
            let Some(paths) = paths.as_array() else {
                panic!("paths of {prefix} are not an array: {paths}");
            };
            out.extend(paths.iter().map(|p| EvpnRoute::parse_path(prefix, p)));
        }
        out
    }

    fn parse_path(prefix: &str, path: &Value) -> EvpnRoute {
        let nlri = &path["nlri"];
        let value = &nlri["value"];
        let rd = &value["rd"];
        let text = |v: &Value| v.as_str().filter(|s| *s != "<nil>").map(str::to_string);
        let mut route = EvpnRoute {
            prefix: prefix.to_string(),
            route_type: nlri["type"].as_u64().unwrap_or(0),
            rd: format!(
                "{}:{}",
                rd["admin"]
                    .as_str()
                    .map_or(rd["admin"].to_string(), str::to_string),
                rd["assigned"]
            ),
            mac: text(&value["mac"]).map(|m| m.to_ascii_lowercase()),
            ip: text(&value["ip"]),
            labels: value["labels"]
                .as_array()
                .map(|l| l.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default(),
            nexthop: None,
            pmsi_tunnel_id: None,
            pmsi_label: None,
            route_targets: Vec::new(),
            encap_vxlan: false,
            mac_mobility_seq: None,
            neighbor: text(&path["neighbor-ip"]),
            best: path["best"].as_bool().unwrap_or(false),
        };
        for attr in path["attrs"].as_array().into_iter().flatten() {
            match attr["type"].as_u64() {
                // MP_REACH_NLRI
                Some(14) => route.nexthop = text(&attr["nexthop"]),
                // PMSI tunnel
                Some(22) => {
                    route.pmsi_tunnel_id = text(&attr["tunnel-id"]);
                    route.pmsi_label = attr["label"].as_u64();
                }
                // Extended communities
                Some(16) => {
                    for c in attr["value"].as_array().into_iter().flatten() {
                        match (c["type"].as_u64(), c["subtype"].as_u64()) {
                            // Route target: transitive two-octet AS, IPv4 or four-octet AS.
                            (Some(0..=2), Some(2)) => {
                                if let Some(rt) = text(&c["value"]) {
                                    route.route_targets.push(rt);
                                }
                            }
                            // Opaque, encapsulation (RFC 9012): tunnel type 8 = VXLAN.
                            (Some(3), Some(12)) => {
                                route.encap_vxlan |= c["tunnel_type"].as_u64() == Some(8);
                            }
                            // EVPN, MAC mobility.
                            (Some(6), Some(0)) => route.mac_mobility_seq = c["sequence"].as_u64(),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        route
    }
}

/// A running gobgpd with its own config, log and temp dir.
pub struct GoBgpd {
    dir: PathBuf,
    config: PathBuf,
    log: PathBuf,
    addr: String,
    asn: u32,
    router_id: String,
    child: Option<Child>,
}

impl GoBgpd {
    /// Writes the config of an iBGP speaker in AS `asn` listening on `addr` (see
    /// [`unique_loopback`]) with `neighbors` (all in `asn`, family l2vpn-evpn), starts gobgpd
    /// and waits until its API answers. Sessions come up later: see [`GoBgpd::wait_established`].
    pub fn start(addr: &str, asn: u32, router_id: &str, neighbors: &[Neighbor]) -> GoBgpd {
        require_env();
        let dir = std::env::temp_dir().join(format!(
            // `vst-TAG-PID-N`: Daemon's sweep removes it should this process die unclean.
            "vst-gobgp{}-{}-{}",
            addr.replace('.', "_"),
            std::process::id(),
            seq()
        ));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let mut g = GoBgpd {
            config: dir.join("gobgpd.toml"),
            log: dir.join("gobgpd.log"),
            dir,
            addr: addr.to_string(),
            asn,
            router_id: router_id.to_string(),
            child: None,
        };
        let text = g.render_config(neighbors);
        fs::write(&g.config, text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", g.config.display()));
        g.spawn();
        g
    }

    fn render_config(&self, neighbors: &[Neighbor]) -> String {
        let mut t = format!(
            "[global.config]\n  as = {asn}\n  router-id = \"{rid}\"\n  port = {BGP_PORT}\n  \
             local-address-list = [\"{addr}\"]\n",
            asn = self.asn,
            rid = self.router_id,
            addr = self.addr,
        );
        for n in neighbors {
            t.push_str(&format!(
                "\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{peer}\"\n    \
                 peer-as = {asn}\n  [neighbors.transport.config]\n    \
                 local-address = \"{addr}\"\n    remote-port = {BGP_PORT}\n  \
                 [neighbors.timers.config]\n    connect-retry = 5\n    hold-time = 9\n    \
                 keepalive-interval = 3\n",
                peer = n.address,
                asn = self.asn,
                addr = self.addr,
            ));
            if n.route_reflector_client {
                t.push_str(&format!(
                    "  [neighbors.route-reflector.config]\n    route-reflector-client = true\n    \
                     route-reflector-cluster-id = \"{}\"\n",
                    self.router_id
                ));
            }
            t.push_str(
                "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      \
                 afi-safi-name = \"l2vpn-evpn\"\n",
            );
        }
        t
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "gobgpd is already running");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", self.log.display()));
        let log2 = log
            .try_clone()
            .expect("cannot duplicate the log file handle");
        let mut cmd = Command::new("gobgpd");
        cmd.arg("-f")
            .arg(&self.config)
            .args(["-t", "toml", "-p", "--pprof-disable"])
            .arg(format!("--api-hosts={}", self.api_addr()))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        crate::sys::die_with_parent(&mut cmd);
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot start gobgpd ({e}); it comes with Debian's package `gobgpd`")
        });
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
                panic!(
                    "gobgpd on {} exited during start-up ({status})\n{}",
                    self.addr,
                    self.log_tail()
                );
            }
            if self.cli(&["global", "-j"]).success() {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "gobgpd's API on {} not ready within {READY_TIMEOUT:?}",
                    self.api_addr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The loopback address it speaks BGP from and serves its API on.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `ADDR:50051`, what `vsctl evpn set BR gobgp=` takes.
    pub fn api_addr(&self) -> String {
        format!("{}:{API_PORT}", self.addr)
    }

    /// `ADDR:179`.
    pub fn bgp_addr(&self) -> String {
        format!("{}:{BGP_PORT}", self.addr)
    }

    pub fn asn(&self) -> u32 {
        self.asn
    }

    pub fn router_id(&self) -> &str {
        &self.router_id
    }

    /// Whether the daemon runs (it has not been killed, nor died).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(c) => c.try_wait().ok().flatten().is_none(),
        }
    }

    /// `gobgp -u ADDR -p 50051 ARGS...` under a time limit.
    pub fn cli(&self, args: &[&str]) -> CmdOutput {
        let mut cmd = Command::new("gobgp");
        cmd.args(["-u", &self.addr, "-p", &API_PORT.to_string()])
            .args(args);
        run(&mut cmd, CLI_TIMEOUT)
    }

    /// A `gobgp` CLI call that must succeed; its stdout.
    #[track_caller]
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        if !out.success() {
            panic!("{}\n{}", out.describe_failure(), self.log_tail());
        }
        out.stdout
    }

    /// A `gobgp ... -j` call that must succeed and print JSON.
    #[track_caller]
    fn cli_json(&self, args: &[&str]) -> Value {
        let out = self.cli_ok(args);
        serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("`gobgp {}` printed no JSON ({e}): {out}", args.join(" ")))
    }

    /// `gobgp neighbor -j`: one object per configured neighbour.
    pub fn neighbors(&self) -> Vec<Value> {
        crate::entries_of(self.cli_json(&["neighbor", "-j"]))
    }

    /// The session state of the neighbour at `peer` (1 idle .. 6 established), 0 if unknown.
    pub fn session_state(&self, peer: &str) -> u64 {
        let all = self.neighbors();
        let n = all
            .iter()
            .find(|n| n["conf"]["neighbor_address"] == peer)
            .unwrap_or_else(|| panic!("{} has no neighbour {peer}: {all:?}", self.addr));
        n["state"]["session_state"].as_u64().unwrap_or(0)
    }

    pub fn is_established(&self, peer: &str) -> bool {
        self.session_state(peer) == ESTABLISHED
    }

    /// Waits until the session to `peer` is established; returns how long that took.
    #[track_caller]
    pub fn wait_established(&self, peer: &str, limit: Duration) -> Duration {
        let t0 = Instant::now();
        let up = poll(limit, Duration::from_millis(100), || {
            self.is_established(peer).then_some(())
        });
        if up.is_none() {
            panic!(
                "BGP session {} -> {peer} not established within {limit:?} (state {})\n{}",
                self.addr,
                self.session_state(peer),
                self.log_tail()
            );
        }
        t0.elapsed()
    }

    /// `gobgp global rib -a evpn -j` as gobgp prints it: prefix -> array of paths.
    pub fn evpn_rib(&self) -> Value {
        self.cli_json(&["global", "rib", "-a", "evpn", "-j"])
    }

    /// Every path of the EVPN RIB, parsed.
    pub fn evpn_routes(&self) -> Vec<EvpnRoute> {
        EvpnRoute::parse_rib(&self.evpn_rib())
    }

    /// `gobgp global rib -a evpn add ARGS...`, e.g. `macadv MAC 0.0.0.0 etag 0 label 100 rd
    /// RD rt RT encap vxlan nexthop VTEP`.
    #[track_caller]
    pub fn add_evpn(&self, args: &[&str]) {
        self.cli_ok(&[&["global", "rib", "-a", "evpn", "add"], args].concat());
    }

    /// `gobgp global rib -a evpn del ARGS...`.
    #[track_caller]
    pub fn del_evpn(&self, args: &[&str]) {
        self.cli_ok(&[&["global", "rib", "-a", "evpn", "del"], args].concat());
    }

    /// SIGKILLs the daemon (no NOTIFICATION to its peers, no clean-up: a crash).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Our own child, not yet reaped: the pid cannot have been reused.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the daemon if it runs, then starts it again with the same config (and so an empty
    /// RIB: whatever was added over its API is gone) and waits until its API answers.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The daemon's log (all its lives).
    pub fn log_path(&self) -> &Path {
        &self.log
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
}

impl Drop for GoBgpd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
        self.kill();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_type2_and_type3_paths() {
        let rib = json!({
            "[type:macadv][rd:10.0.0.1:100][etag:0][mac:02:00:00:00:00:01][ip:<nil>]": [{
                "nlri": {"type": 2, "value": {"rd": {"type": 1, "admin": "10.0.0.1",
                    "assigned": 100}, "esi": "single-homed", "etag": 0,
                    "mac": "02:00:00:00:00:01", "ip": "<nil>", "labels": [100]}},
                "best": true,
                "attrs": [{"type": 1, "value": 2},
                    {"type": 16, "value": [{"type": 0, "subtype": 2, "value": "65000:100"},
                        {"type": 3, "subtype": 12, "tunnel_type": 8},
                        {"type": 6, "subtype": 0, "sequence": 2, "is_sticky": false}]},
                    {"type": 14, "nexthop": "192.0.2.1", "afi": 25, "safi": 70}],
                "stale": false, "source-id": "10.0.0.1", "neighbor-ip": "127.9.0.1"}],
            "[type:multicast][rd:10.0.0.1:100][etag:0][ip:192.0.2.1]": [{
                "nlri": {"type": 3, "value": {"rd": {"type": 1, "admin": "10.0.0.1",
                    "assigned": 100}, "etag": 0, "ip": "192.0.2.1"}},
                "best": true,
                "attrs": [{"type": 22, "is-leaf-info-required": false, "tunnel-type": 6,
                    "label": 100, "tunnel-id": "192.0.2.1"},
                    {"type": 14, "nexthop": "0.0.0.0", "afi": 25, "safi": 70}],
                "stale": false}]
        });
        let mut routes = EvpnRoute::parse_rib(&rib);
        routes.sort_by_key(|r| r.route_type);
        let (t2, t3) = (&routes[0], &routes[1]);
        assert_eq!(t2.route_type, 2);
        assert_eq!(t2.rd, "10.0.0.1:100");
        assert_eq!(t2.mac.as_deref(), Some("02:00:00:00:00:01"));
        assert_eq!(t2.ip, None);
        assert_eq!(t2.labels, vec![100]);
        assert_eq!(t2.vtep(), Some("192.0.2.1"));
        assert_eq!(t2.route_targets, vec!["65000:100".to_string()]);
        assert!(t2.encap_vxlan && t2.best);
        assert_eq!(t2.mac_mobility_seq, Some(2));
        assert_eq!(t2.neighbor.as_deref(), Some("127.9.0.1"));
        assert_eq!(t3.route_type, 3);
        assert_eq!(t3.ip.as_deref(), Some("192.0.2.1"));
        assert_eq!((t3.vtep(), t3.pmsi_label), (Some("192.0.2.1"), Some(100)));
        assert_eq!(t3.neighbor, None);
        assert!(!t3.encap_vxlan);
    }
}
