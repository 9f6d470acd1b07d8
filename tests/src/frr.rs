//! An "FRR host": the standard Linux EVPN VTEP, for interoperability tests.
//!
//! A network namespace holding a kernel bridge with a `vxlan` device (one VNI, no learning)
//! and FRR's zebra and bgpd configured with `advertise-all-vni`, so that bgpd announces the
//! bridge's MACs as EVPN type-2 routes and the VNI as a type-3 route, and zebra programs the
//! routes it receives into the vxlan device's forwarding table (`bridge fdb`). "VMs" are
//! namespaces plugged into the bridge by a veth ([`Vm`]); the same VM can be re-plugged into
//! the switch under test, which is how a MAC moves between the two sides.
//!
//! Wiring (names inside the FRR namespace):
//! - `up0`, the underlay, carries the VTEP address (also bgpd's router id); its root end is
//!   unaddressed, for the switch's `afpacket` underlay port ([`FrrHost::underlay_root`]).
//! - `bgp0` carries the BGP session; its root end has a kernel address from 100.64.0.0/10
//!   ([`FrrHost::peer_ip`]), unique per test, where the root namespace's gobgpd listens.
//!
//! What FRR 8.4 needs to run several instances side by side, each inside `ip netns exec`:
//! every path given explicitly — config (`-f`), pid file (`-i`), vty sockets
//! (`--vty_socket DIR`, also given to `vtysh`), the zebra API socket (`-z`, to both daemons)
//! — and no TCP vty (`-P 0`). `-N NAME` is not needed then (it only moves the default paths
//! to `/var/run/frr/NAME/` and `/etc/frr/NAME/`, and leaves that empty run dir behind).
//! The daemons drop privileges to user `frr` (`-u root` fails: root is not in the `frrvty`
//! group), so the state dir belongs to `frr`. That privilege drop also clears the
//! parent-death signal, so `die_with_parent` cannot tie them to the test: they are killed by
//! pid on drop (and by the namespace's drop), and the pid files of a test process that died
//! without running its guards are swept by the next one ([`sweep_stale_instances`]).

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::time::Duration;

use serde_json::Value;

use crate::cmd::{run, sh, CmdOutput, CMD_TIMEOUT};
use crate::{poll, require_env, seq, unique_ifname, wait_for, Netns, Veth};

/// Where Debian installs FRR's daemons.
const FRR_SBIN: &str = "/usr/lib/frr";
/// Prefix of the state dirs, unlike `Daemon`'s `vst-` so that its sweep leaves them to ours
/// (which kills the daemons first).
const DIR_PREFIX: &str = "vsfrr-";
/// How long each daemon gets to open its vty socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Log lines of each daemon shown when a test fails.
const LOG_TAIL_LINES: usize = 40;
/// The MTU of every VM interface: 1500 less the VXLAN overhead.
pub const VM_MTU: &str = "1450";

/// A namespace running FRR (zebra + bgpd) as an EVPN VTEP for one VNI over a kernel bridge.
///
/// Dropping it stops the daemons (SIGTERM, SIGKILL after 3 s), then deletes the links, the
/// namespace and the state dir; if the test is failing, FRR's view (BGP table, EVPN MACs, the
/// vxlan device's fdb) and the daemons' logs are printed first.
pub struct FrrHost {
    /// zebra then bgpd; stopped in `Drop` before the fields below go.
    daemons: Vec<(&'static str, Child)>,
    dir: PathBuf,
    // Fields drop in declaration order: the links before their namespace.
    underlay: Veth,
    bgp_link: Veth,
    pub ns: Netns,
    pub asn: u32,
    pub vni: u32,
    /// The VTEP address (without prefix length), on `up0`; also bgpd's router id.
    pub vtep_ip: String,
    /// The vxlan device inside the namespace: `vxVNI`.
    pub vxlan_dev: String,
    /// The kernel bridge inside the namespace.
    pub bridge: String,
    /// FRR's BGP address, on `bgp0` (gobgpd's neighbor address).
    pub bgp_ip: String,
    /// The root-namespace end of the BGP link's address (where gobgpd listens).
    pub peer_ip: String,
    /// Counter for the names of VM links inside the namespace.
    links: AtomicU32,
}

impl FrrHost {
    /// Builds the namespace, its links, bridge and vxlan device, then starts zebra and bgpd
    /// (AS `asn`, `advertise-all-vni`) and waits until both know the VNI. `vtep_cidr` is the
    /// VTEP address with its prefix on the underlay link, e.g. `10.79.0.1/24`. No neighbor
    /// yet: see [`FrrHost::peer`].
    pub fn new(tag: &str, asn: u32, vni: u32, vtep_cidr: &str) -> FrrHost {
        require_env();
        require_frr();
        sweep_stale_instances();
        let ns = Netns::new(tag);
        let underlay = Veth::new(&ns, "up0", vtep_cidr);
        // A /24 of 100.64.0.0/10 per FrrHost: unique among this process's parallel tests, and
        // apart from the 10/8 subnets the other tests use in the root namespace.
        let (hi, lo) = (64 + std::process::id() % 64, seq() % 256);
        let bgp_ip = format!("100.{hi}.{lo}.1");
        let peer_ip = format!("100.{hi}.{lo}.254");
        let bgp_link = Veth::new(&ns, "bgp0", &format!("{bgp_ip}/24"));
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("{peer_ip}/24"),
            "dev",
            bgp_link.root(),
        ])
        .check();
        sh(&["ip", "link", "set", bgp_link.root(), "up"]).check();

        let vtep_ip = vtep_cidr.split('/').next().unwrap_or(vtep_cidr).to_string();
        let vxlan_dev = format!("vx{vni}");
        let bridge = "br0".to_string();
        let vni_s = vni.to_string();
        let cmds: [&[&str]; 6] = [
            &["ip", "link", "add", &bridge, "type", "bridge"],
            &[
                "ip",
                "link",
                "add",
                &vxlan_dev,
                "type",
                "vxlan",
                "id",
                &vni_s,
                "local",
                &vtep_ip,
                "dstport",
                "4789",
                "nolearning",
            ],
            &["ip", "link", "set", &vxlan_dev, "master", &bridge],
            // Remote MACs come from BGP only: the bridge must not learn them from the tunnel.
            &[
                "ip",
                "link",
                "set",
                "dev",
                &vxlan_dev,
                "type",
                "bridge_slave",
                "learning",
                "off",
            ],
            &["ip", "link", "set", &vxlan_dev, "up"],
            &["ip", "link", "set", &bridge, "up"],
        ];
        for cmd in cmds {
            ns.exec_ok(cmd);
        }

        let dir = std::env::temp_dir().join(format!(
            "{DIR_PREFIX}{}-{}-{}",
            tag.chars()
                .filter(char::is_ascii_alphanumeric)
                .take(16)
                .collect::<String>(),
            std::process::id(),
            seq()
        ));
        let mut frr = FrrHost {
            daemons: Vec::new(),
            dir,
            underlay,
            bgp_link,
            ns,
            asn,
            vni,
            vtep_ip,
            vxlan_dev,
            bridge,
            bgp_ip,
            peer_ip,
            links: AtomicU32::new(0),
        };
        frr.write_configs();
        frr.start_daemon("zebra");
        frr.start_daemon("bgpd");
        // zebra reads the vxlan device and hands the VNI to bgpd, which only then originates
        // its type-3 route.
        wait_for(START_TIMEOUT, "bgpd to know the VNI from zebra", || {
            let vnis = frr.vtysh_json("show bgp l2vpn evpn vni json");
            vnis.get(frr.vni.to_string()).map(|_| ())
        });
        frr
    }

    fn write_configs(&self) {
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&self.dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", self.dir.display()));
        let hostname = format!("hostname {}\n", self.ns.name());
        let zebra = hostname.clone();
        // Defaults worth spelling out: eBGP needs no policy (FRR 8 refuses to send or accept
        // anything on an eBGP session without one), no IPv4 unicast session by default.
        let bgpd = format!(
            "{hostname}router bgp {asn}\n bgp router-id {rid}\n bgp log-neighbor-changes\n no bgp default ipv4-unicast\n \
             no bgp ebgp-requires-policy\n address-family l2vpn evpn\n  advertise-all-vni\n \
             exit-address-family\n",
            asn = self.asn,
            rid = self.vtep_ip,
        );
        for (name, text) in [("zebra.conf", zebra), ("bgpd.conf", bgpd)] {
            let path = self.dir.join(name);
            fs::write(&path, text)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        }
        // The daemons run as `frr` and create their sockets and pid files here.
        sh(&["chown", "-R", "frr:frr", &self.path_str("")]).check();
    }

    fn path_str(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    fn start_daemon(&mut self, name: &'static str) {
        let bin = format!("{FRR_SBIN}/{name}");
        let (conf, pid, vty, zapi, log) = (
            self.path_str(&format!("{name}.conf")),
            self.path_str(&format!("{name}.pid")),
            self.path_str(""),
            self.path_str("zserv.api"),
            format!("file:{}", self.path_str(&format!("{name}.log"))),
        );
        let out = fs::File::create(self.dir.join(format!("{name}.out")))
            .unwrap_or_else(|e| panic!("cannot create {name}.out: {e}"));
        let err = out.try_clone().expect("cannot duplicate a file handle");
        let mut cmd = self.ns.command(&[
            &bin,
            "-f",
            &conf,
            "-i",
            &pid,
            "--vty_socket",
            &vty,
            "-z",
            &zapi,
            "-P",
            "0",
            "--log",
            &log,
            "--log-level",
            "info",
        ]);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        // `ip netns exec` execs the daemon: the child's pid is the daemon's.
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        self.daemons.push((name, child));
        let socket = self.dir.join(format!("{name}.vty"));
        let ready = poll(START_TIMEOUT, Duration::from_millis(50), || {
            if let Some((_, child)) = self.daemons.last_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "{name} exited during start-up ({status}):\n{}",
                        self.daemon_output(name)
                    );
                }
            }
            (socket.exists() && self.vtysh_on(name, &["show version"]).success()).then_some(())
        });
        if ready.is_none() {
            panic!(
                "{name} not answering within {START_TIMEOUT:?}:\n{}",
                self.daemon_output(name)
            );
        }
    }

    fn daemon_output(&self, name: &str) -> String {
        let mut text = String::new();
        for file in [format!("{name}.out"), format!("{name}.log")] {
            let body = fs::read_to_string(self.dir.join(&file)).unwrap_or_default();
            let lines: Vec<&str> = body.lines().collect();
            let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
            text.push_str(&format!("--- {file} ---\n{tail}\n"));
        }
        text
    }

    /// `vtysh --vty_socket DIR [-d DAEMON] -c CMD...` under the command time limit.
    fn vtysh_on(&self, daemon: &str, cmds: &[&str]) -> CmdOutput {
        let mut cmd = std::process::Command::new("vtysh");
        cmd.arg("--vty_socket").arg(&self.dir);
        if !daemon.is_empty() {
            cmd.args(["-d", daemon]);
        }
        for c in cmds {
            cmd.args(["-c", c]);
        }
        run(&mut cmd, CMD_TIMEOUT)
    }

    /// Runs vtysh commands (each a `-c`, in one session) that must succeed; returns stdout.
    #[track_caller]
    pub fn vtysh(&self, cmds: &[&str]) -> String {
        let out = self.vtysh_on("", cmds);
        // vtysh reports a bad command with "% ..." and, depending on the command, exit 0.
        if !out.success() || out.stdout.lines().any(|l| l.starts_with("% ")) {
            panic!("{}", out.describe_failure());
        }
        out.stdout
    }

    /// One vtysh `show ... json` command, parsed.
    #[track_caller]
    pub fn vtysh_json(&self, cmd: &str) -> Value {
        let out = self.vtysh(&[cmd]);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("`vtysh -c '{cmd}'` printed no JSON ({e}):\n{out}"))
    }

    /// Configuration lines under `router bgp ASN`, in one vtysh session. A line opening a
    /// sub-mode (`address-family l2vpn evpn`) applies to the lines after it.
    #[track_caller]
    pub fn configure_bgp(&self, lines: &[&str]) {
        let router = format!("router bgp {}", self.asn);
        let mut cmds = vec!["configure terminal", router.as_str()];
        cmds.extend_from_slice(lines);
        self.vtysh(&cmds);
    }

    /// Adds a BGP neighbor on the BGP link (normally [`FrrHost::peer_ip`]) in AS `asn` that
    /// listens on `port`, with the EVPN address family active. Same AS as ours is iBGP, any
    /// other eBGP. bgpd connects itself (retrying every second) as well as accepting the
    /// peer's connection on 179.
    #[track_caller]
    pub fn peer(&self, ip: &str, asn: u32, port: u16) {
        // vtysh applies one line at a time: a session that came up between `remote-as` and
        // `activate` would offer no address family (IPv4 unicast is off), fail its OPEN
        // ("Unsupported Capability") and wait out bgpd's idle hold of 5 s. So the neighbor
        // stays shut down until it is fully configured.
        let lines = [
            format!("neighbor {ip} remote-as {asn}"),
            format!("neighbor {ip} shutdown"),
            format!("neighbor {ip} port {port}"),
            format!("neighbor {ip} timers connect 1"),
            // Send updates at once (FRR's default for eBGP was 30 s in older releases).
            format!("neighbor {ip} advertisement-interval 0"),
            "address-family l2vpn evpn".to_string(),
            format!("neighbor {ip} activate"),
            "exit-address-family".to_string(),
            format!("no neighbor {ip} shutdown"),
        ];
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        self.configure_bgp(&lines);
    }

    /// The BGP state of neighbor `ip` as FRR sees it ("Established", "Active", ...).
    pub fn neighbor_state(&self, ip: &str) -> String {
        let v = self.vtysh_json(&format!("show bgp neighbors {ip} json"));
        v[ip]["bgpState"].as_str().unwrap_or("").to_string()
    }

    /// Waits until the session with `ip` is established.
    pub fn wait_established(&self, ip: &str, limit: Duration) {
        let mut last = String::new();
        let up = poll(limit, Duration::from_millis(100), || {
            last = self.neighbor_state(ip);
            (last == "Established").then_some(())
        });
        if up.is_none() {
            panic!("BGP session with {ip} not established after {limit:?} (state {last:?})");
        }
    }

    /// Every EVPN path in bgpd's table (`show bgp l2vpn evpn route json`), flattened.
    pub fn evpn_routes(&self) -> Vec<FrrRoute> {
        let table = self.vtysh_json("show bgp l2vpn evpn route json");
        let mut routes = Vec::new();
        let Some(rds) = table.as_object() else {
            return routes;
        };
        for (rd, prefixes) in rds {
            let Some(prefixes) = prefixes.as_object() else {
                continue; // "numPrefix", "numPaths"
            };
            for (prefix, entry) in prefixes {
                let Some(paths) = entry["paths"].as_array() else {
                    continue; // "rd"
                };
                // Each element is a path, or (FRR 8) a list of paths.
                let flat = paths
                    .iter()
                    .flat_map(|p| p.as_array().cloned().unwrap_or_else(|| vec![p.clone()]));
                for path in flat {
                    routes.push(FrrRoute {
                        rd: rd.clone(),
                        prefix: prefix.clone(),
                        route_type: path["routeType"].as_u64().unwrap_or(0),
                        mac: path["mac"].as_str().map(str::to_ascii_lowercase),
                        ip: path["ip"].as_str().map(str::to_string),
                        next_hop: path["nexthops"][0]["ip"].as_str().map(str::to_string),
                        communities: path["extendedCommunity"]["string"]
                            .as_str()
                            .unwrap_or("")
                            .to_string(),
                        best: path["bestpath"].as_bool().unwrap_or(false),
                        local: path["peerId"] == "(unspec)",
                    });
                }
            }
        }
        routes
    }

    /// zebra's EVPN MAC table of the VNI (`show evpn mac vni VNI json`): MAC -> entry with
    /// `type` ("local" / "remote"), `remoteVtep`, `intf`, `localSequence`, `remoteSequence`.
    pub fn evpn_macs(&self) -> serde_json::Map<String, Value> {
        let v = self.vtysh_json(&format!("show evpn mac vni {} json", self.vni));
        v["macs"].as_object().cloned().unwrap_or_default()
    }

    /// zebra's entry for one MAC, if any.
    pub fn evpn_mac(&self, mac: &str) -> Option<Value> {
        self.evpn_macs().get(&mac.to_ascii_lowercase()).cloned()
    }

    /// zebra's EVPN neighbor table of the VNI (`show evpn arp-cache vni VNI json`), from
    /// MAC+IP routes and local ARP: IP -> entry with `type`, `mac`, `remoteVtep`, sequences.
    pub fn evpn_neighbors(&self) -> serde_json::Map<String, Value> {
        let mut v = self.vtysh_json(&format!("show evpn arp-cache vni {} json", self.vni));
        let mut map = v.as_object_mut().map(std::mem::take).unwrap_or_default();
        map.remove("numArpNd");
        map
    }

    /// The vxlan device's forwarding entries (`bridge -j fdb show dev vxVNI`).
    pub fn vxlan_fdb(&self) -> Vec<Value> {
        let out = self
            .ns
            .exec_ok(&["bridge", "-j", "fdb", "show", "dev", &self.vxlan_dev]);
        serde_json::from_str::<Value>(&out)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }

    /// The VTEP the vxlan device sends `mac` to (its own "self" entry's `dst`), if any.
    pub fn vxlan_dst(&self, mac: &str) -> Option<String> {
        let mac = mac.to_ascii_lowercase();
        self.vxlan_fdb()
            .into_iter()
            .find(|e| e["mac"] == mac.as_str() && e["dst"].is_string())
            .and_then(|e| e["dst"].as_str().map(str::to_string))
    }

    /// The VTEPs on the vxlan device's flood list (the all-zero MAC's `dst`s, one per type-3
    /// route received).
    pub fn flood_list(&self) -> Vec<String> {
        let mut dsts: Vec<String> = self
            .vxlan_fdb()
            .into_iter()
            .filter(|e| e["mac"] == "00:00:00:00:00:00")
            .filter_map(|e| e["dst"].as_str().map(str::to_string))
            .collect();
        dsts.sort();
        dsts
    }

    /// The bridge port the kernel bridge forwards `mac` to (`vxVNI` for a remote MAC, a VM's
    /// link for a local one), if it knows the MAC.
    pub fn bridge_port_of(&self, mac: &str) -> Option<String> {
        let mac = mac.to_ascii_lowercase();
        let out = self
            .ns
            .exec_ok(&["bridge", "-j", "fdb", "show", "br", &self.bridge]);
        let entries: Vec<Value> = serde_json::from_str::<Value>(&out)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default();
        entries
            .into_iter()
            .find(|e| e["mac"] == mac.as_str() && e["master"] == self.bridge.as_str())
            .and_then(|e| e["ifname"].as_str().map(str::to_string))
    }

    /// Root end of the underlay link, for the switch's `afpacket` underlay port. It is down
    /// until someone brings it up (attaching it does): until then FRR's underlay subnet has no
    /// carrier, so no remote VTEP resolves as a next hop and every route received is invalid.
    pub fn underlay_root(&self) -> &str {
        self.underlay.root()
    }

    /// Root end of the BGP link (it carries [`FrrHost::peer_ip`]).
    pub fn bgp_root(&self) -> &str {
        self.bgp_link.root()
    }

    /// What FRR sees, for a failure message.
    pub fn dump(&self) -> String {
        let mut text = String::new();
        for cmd in [
            "show bgp l2vpn evpn summary",
            "show bgp l2vpn evpn route",
            &format!("show evpn mac vni {}", self.vni),
            &format!("show evpn vni {}", self.vni),
        ] {
            let out = self.vtysh_on("", &[cmd]);
            text.push_str(&format!(
                "--- vtysh -c '{cmd}' ---\n{}{}",
                out.stdout, out.stderr
            ));
        }
        for args in [
            &["bridge", "fdb", "show", "dev", &self.vxlan_dev][..],
            &["bridge", "fdb", "show", "br", &self.bridge][..],
        ] {
            let out = self.ns.exec(args);
            text.push_str(&format!("--- {} ---\n{}", args.join(" "), out.stdout));
        }
        text
    }

    fn next_link_name(&self) -> String {
        format!("vm{}", self.links.fetch_add(1, Ordering::Relaxed))
    }
}

impl Drop for FrrHost {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.daemons.is_empty() {
            eprintln!("=== FRR host {} ===\n{}", self.ns.name(), self.dump());
            for (name, _) in &self.daemons {
                eprintln!("{}", self.daemon_output(name));
            }
        }
        // bgpd first: it leaves on its own, telling its peer, while zebra still answers it.
        for (name, mut child) in self.daemons.drain(..).rev() {
            let pid = child.id();
            if let Ok(pid) = libc::pid_t::try_from(pid) {
                // Our own child, not yet reaped: the pid cannot have been reused.
                crate::sys::kill(pid, libc::SIGTERM);
            }
            let done = poll(Duration::from_secs(3), Duration::from_millis(20), || {
                child.try_wait().ok().flatten()
            });
            if done.is_none() {
                eprintln!("FRR {name} ignored SIGTERM for 3 s; killed it");
                let _ = child.kill();
                let _ = child.wait();
            }
            // FRR keeps per-process state (crash logs) here and removes it on a clean exit.
            let _ = fs::remove_dir_all(format!("/var/tmp/frr/{name}.{pid}"));
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// One path of bgpd's EVPN table.
#[derive(Debug, Clone)]
pub struct FrrRoute {
    pub rd: String,
    /// FRR's prefix string, e.g. `[2]:[0]:[48]:[02:00:00:00:0a:01]` or `[3]:[0]:[32]:[IP]`.
    pub prefix: String,
    /// 2 (MAC/IP) or 3 (inclusive multicast), ...
    pub route_type: u64,
    pub mac: Option<String>,
    pub ip: Option<String>,
    pub next_hop: Option<String>,
    /// FRR's rendering of the extended communities, e.g. `RT:65000:100 ET:8 MM:1`.
    pub communities: String,
    pub best: bool,
    /// Originated by this FRR (not received from a peer).
    pub local: bool,
}

impl FrrRoute {
    /// The MAC mobility sequence number, if the path carries the extended community.
    pub fn mobility_seq(&self) -> Option<u32> {
        self.communities
            .split_whitespace()
            .find_map(|c| c.strip_prefix("MM:"))
            .and_then(|s| s.split(',').next())
            .and_then(|s| s.parse().ok())
    }
}

/// A "VM": a namespace whose interface (MAC and IPv4 address fixed for its life) is plugged
/// into the FRR host's bridge ([`FrrHost::plug`]) or into the switch ([`Vm::plug_root`]), and
/// can move from one to the other.
///
/// Moving comes in two kinds. [`Vm::unplug`] deletes the link: the old side sees the port go
/// and forgets the MAC at once. [`Vm::go_stale`] is what a live migration looks like to the
/// old side: the link stays up, so the old side keeps the MAC as local until something tells
/// it otherwise (EVPN MAC mobility), while the VM neither sends on it nor accepts what
/// arrives on it (no address, ARP off, strict reverse-path filter).
pub struct Vm {
    /// Root-namespace ends of the links plugged into the switch (deleted on drop).
    root_links: Vec<String>,
    /// The links (names inside `ns`) that went stale and still exist.
    stale: Vec<String>,
    pub ns: Netns,
    /// The current interface inside `ns`, if plugged.
    pub ifname: Option<String>,
    /// IPv4 address with prefix length.
    pub cidr: String,
    /// IPv4 address without prefix length.
    pub ip: String,
    /// MAC, lower case.
    pub mac: String,
    links: u32,
}

impl Vm {
    /// A VM namespace with no link yet.
    pub fn new(tag: &str, cidr: &str, mac: &str) -> Vm {
        let ns = Netns::new(tag);
        // Strict reverse-path filtering, so a stale link (whose address moved to the new one)
        // drops what still arrives on it. The effective value is the max of "all" and the
        // device's own, so "all" is enough.
        ns.exec_ok(&["sysctl", "-q", "-w", "net.ipv4.conf.all.rp_filter=1"]);
        Vm {
            root_links: Vec::new(),
            stale: Vec::new(),
            ns,
            ifname: None,
            cidr: cidr.to_string(),
            ip: cidr.split('/').next().unwrap_or(cidr).to_string(),
            mac: mac.to_ascii_lowercase(),
            links: 0,
        }
    }

    fn next_ifname(&mut self) -> String {
        self.links += 1;
        format!("eth{}", self.links - 1)
    }

    /// Addresses and brings up a freshly created link inside the VM.
    fn activate(&mut self, ifname: String) {
        assert!(
            self.ifname.is_none(),
            "VM {} is still plugged in: unplug it or let it go stale first",
            self.ns.name()
        );
        let ns = &self.ns;
        ns.exec_ok(&["ip", "link", "set", &ifname, "mtu", VM_MTU]);
        ns.exec_ok(&["ip", "addr", "add", &self.cidr, "dev", &ifname]);
        ns.exec_ok(&["ip", "link", "set", &ifname, "up"]);
        self.ifname = Some(ifname);
    }

    /// Plugs the VM into the switch: a new veth whose root end (returned, down until the
    /// switch attaches it) is for an `afpacket` port.
    pub fn plug_root(&mut self) -> String {
        let root = unique_ifname("vm");
        let ifname = self.next_ifname();
        sh(&[
            "ip",
            "link",
            "add",
            &root,
            "type",
            "veth",
            "peer",
            "name",
            &ifname,
            "address",
            &self.mac,
            "netns",
            self.ns.name(),
        ])
        .check();
        self.root_links.push(root.clone());
        let _ = fs::write(format!("/proc/sys/net/ipv6/conf/{root}/disable_ipv6"), "1");
        self.activate(ifname);
        root
    }

    /// Deletes the current link (both ends): the side it was plugged into sees the port go.
    pub fn unplug(&mut self) {
        if let Some(ifname) = self.ifname.take() {
            self.ns.exec_ok(&["ip", "link", "del", &ifname]);
        }
    }

    /// Leaves the current link plugged in and up but dead, as a migrated VM's old port looks
    /// to its old host: the VM sends nothing on it and drops what arrives. A link that went
    /// stale before is deleted now (one stale link at a time).
    pub fn go_stale(&mut self) {
        for old in self.stale.drain(..) {
            let _ = self.ns.exec(&["ip", "link", "del", &old]);
        }
        if let Some(ifname) = self.ifname.take() {
            self.ns.exec_ok(&["ip", "addr", "flush", "dev", &ifname]);
            self.ns
                .exec_ok(&["ip", "link", "set", &ifname, "arp", "off"]);
            self.stale.push(ifname);
        }
    }

    /// Announces the VM on its link as a migrated VM does (QEMU sends a few RARPs): waits for
    /// the link's carrier, then sends three broadcast frames from the VM's MAC 100 ms apart
    /// (pings to the limited broadcast address, which nobody answers), so the switches on the
    /// way learn the MAC on the new port even if the first frame comes too early for one.
    pub fn announce(&self) {
        let ifname = self.ifname.as_deref().expect("VM not plugged in");
        let operstate = format!("/sys/class/net/{ifname}/operstate");
        wait_for(
            Duration::from_secs(5),
            &format!("carrier on {ifname} of {}", self.ns.name()),
            || (self.ns.exec_ok(&["cat", &operstate]).trim() == "up").then_some(()),
        );
        let _ = self.ns.exec(&[
            "ping",
            "-n",
            "-q",
            "-b",
            "-c",
            "3",
            "-i",
            "0.1",
            "-W",
            "0.1",
            "-I",
            ifname,
            "255.255.255.255",
        ]);
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        for root in &self.root_links {
            // Gone already if the VM's end was deleted: the error is expected then.
            let _ = sh(&["ip", "link", "del", root]);
        }
    }
}

impl FrrHost {
    /// Plugs `vm` into the FRR host's bridge by a new veth.
    pub fn plug(&self, vm: &mut Vm) {
        let port = self.next_link_name();
        let ifname = vm.next_ifname();
        self.ns.exec_ok(&[
            "ip",
            "link",
            "add",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            &ifname,
            "address",
            &vm.mac,
            "netns",
            vm.ns.name(),
        ]);
        self.ns
            .exec_ok(&["ip", "link", "set", &port, "master", &self.bridge]);
        self.ns.exec_ok(&["ip", "link", "set", &port, "up"]);
        vm.activate(ifname);
    }
}

/// Fails the test (it never skips) when FRR is missing.
fn require_frr() {
    for bin in ["zebra", "bgpd"] {
        let path = format!("{FRR_SBIN}/{bin}");
        assert!(
            Path::new(&path).is_file(),
            "{path} is missing: apt-get install --no-install-recommends frr (and keep its \
             service disabled: the tests run their own daemons)"
        );
    }
    let vtysh = std::process::Command::new("vtysh")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(vtysh.is_ok(), "vtysh is missing: apt-get install frr");
}

/// Kills the FRR daemons of test processes that died before their guards ran, and removes
/// their state dirs: `vsfrr-NETNS-PID-N`, the pid being the test process's. Only pids from the
/// dir's own pid files whose command line names that dir are killed. Once per test process.
fn sweep_stale_instances() {
    static SWEEP: Once = Once::new();
    SWEEP.call_once(|| {
        let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with(DIR_PREFIX) {
                continue;
            }
            let owner = name.rsplit('-').nth(1).and_then(|p| p.parse::<u32>().ok());
            let Some(owner) = owner else { continue };
            if owner == std::process::id() || Path::new(&format!("/proc/{owner}")).exists() {
                continue;
            }
            let dir = entry.path();
            let dir_s = dir.to_string_lossy().into_owned();
            for daemon in ["bgpd", "zebra"] {
                let pid = fs::read_to_string(dir.join(format!("{daemon}.pid")))
                    .ok()
                    .and_then(|p| p.trim().parse::<libc::pid_t>().ok());
                let Some(pid) = pid else { continue };
                let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmdline).contains(&dir_s) {
                    crate::sys::kill(pid, libc::SIGKILL);
                    let _ = fs::remove_dir_all(format!("/var/tmp/frr/{daemon}.{pid}"));
                }
            }
            let _ = fs::remove_dir_all(&dir);
        }
    });
}
