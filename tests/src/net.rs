//! Hosts made of network namespaces, and the veths that connect them to the switch.

use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, Once};
use std::time::Duration;

use crate::cmd::{run, sh, CmdOutput, CMD_TIMEOUT};
use crate::daemon::Daemon;
use crate::{require_env, seq, unique_ifname, wait_for};

/// Prefix of every namespace the tests create; [`sweep_stale_namespaces`] relies on it.
const NETNS_PREFIX: &str = "vst-";

/// `ip netns add` mounts /run/netns on its first use, and parallel first uses race each other,
/// so namespaces are created one at a time.
static NETNS_ADD: Mutex<()> = Mutex::new(());

/// A network namespace owned by one test: deleted on drop, with every process started in it.
pub struct Netns {
    name: String,
    children: Mutex<Vec<Child>>,
}

impl Netns {
    /// Creates `vst-TAG-PID-N`, with loopback up and IPv6 off. IPv6 is off so that router
    /// solicitations, DAD and MLD reports do not show up in the packet counters the tests read.
    pub fn new(tag: &str) -> Netns {
        require_env();
        sweep_stale_namespaces();
        let tag: String = tag
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(16)
            .collect();
        let name = format!("{NETNS_PREFIX}{tag}-{}-{}", std::process::id(), seq());
        {
            let _one_at_a_time = NETNS_ADD.lock().unwrap_or_else(|e| e.into_inner());
            sh(&["ip", "netns", "add", &name]).check();
        }
        // The guard exists from here on, so a failure below still deletes the namespace.
        let ns = Netns {
            name,
            children: Mutex::new(Vec::new()),
        };
        ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
        // A kernel without IPv6 has no such files; then there is nothing to silence.
        let _ = ns.exec(&[
            "sh",
            "-c",
            "for f in all default; do echo 1 > /proc/sys/net/ipv6/conf/$f/disable_ipv6; done",
        ]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip netns exec NAME ARGS...`, not yet run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(args);
        cmd
    }

    /// Runs a command inside the namespace under [`CMD_TIMEOUT`].
    pub fn exec(&self, args: &[&str]) -> CmdOutput {
        run(&mut self.command(args), CMD_TIMEOUT)
    }

    /// Runs a command inside the namespace that must succeed; returns its stdout.
    #[track_caller]
    pub fn exec_ok(&self, args: &[&str]) -> String {
        self.exec(args).check().stdout
    }

    /// Starts a background command inside the namespace; it is killed when the namespace is
    /// dropped. Returns its pid.
    pub fn spawn(&self, args: &[&str]) -> u32 {
        let child = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {args:?} in {}: {e}", self.name));
        let pid = child.id();
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child);
        pid
    }

    /// `count` pings 0.2 s apart, each waiting at most 1 s for its reply.
    pub fn ping(&self, dst: &str, count: u32) -> PingStats {
        self.ping_every(dst, count, 0.2)
    }

    /// `count` pings `interval` seconds apart (root may go below 0.2 s).
    pub fn ping_every(&self, dst: &str, count: u32, interval: f64) -> PingStats {
        let count_s = count.to_string();
        let interval_s = interval.to_string();
        let mut cmd = self.command(&[
            "ping",
            "-n",
            "-q",
            "-c",
            &count_s,
            "-W",
            "1",
            "-i",
            &interval_s,
            dst,
        ]);
        // ping is bounded by -c/-W already; this limit only catches a ping that wedges.
        let limit = Duration::from_secs_f64(f64::from(count) * interval + 10.0);
        PingStats::parse(run(&mut cmd, limit))
    }

    /// `count` pings to a broadcast address, `interval` seconds apart: a burst of broadcast
    /// frames that needs no ARP and that nobody answers (Linux ignores broadcast echo requests
    /// by default). Counting them where they must not arrive makes a strong isolation check.
    pub fn ping_broadcast(&self, broadcast: &str, count: u32, interval: f64) -> PingStats {
        let count_s = count.to_string();
        let interval_s = interval.to_string();
        let mut cmd = self.command(&[
            "ping",
            "-n",
            "-q",
            "-b",
            "-c",
            &count_s,
            "-W",
            "1",
            "-i",
            &interval_s,
            broadcast,
        ]);
        let limit = Duration::from_secs_f64(f64::from(count) * interval + 10.0);
        PingStats::parse(run(&mut cmd, limit))
    }

    /// The packet counters of an interface inside the namespace.
    pub fn counters(&self, ifname: &str) -> IfCounters {
        let dir = format!("/sys/class/net/{ifname}/statistics");
        let out = self.exec_ok(&[
            "cat",
            &format!("{dir}/rx_packets"),
            &format!("{dir}/tx_packets"),
        ]);
        let nums: Vec<u64> = out
            .split_whitespace()
            .map(|n| {
                n.parse()
                    .unwrap_or_else(|_| panic!("bad counter {n:?} of {ifname}"))
            })
            .collect();
        assert_eq!(nums.len(), 2, "unexpected counters of {ifname}: {out:?}");
        IfCounters {
            rx_packets: nums[0],
            tx_packets: nums[1],
        }
    }

    /// The MAC address of an interface inside the namespace, lower case.
    pub fn mac(&self, ifname: &str) -> String {
        self.exec_ok(&["cat", &format!("/sys/class/net/{ifname}/address")])
            .trim()
            .to_ascii_lowercase()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for mut child in self
            .children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Whatever else still runs inside was started by this test too (the namespace name is
        // unique to it), e.g. a command that was killed for overrunning left a child behind.
        let pids = sh(&["ip", "netns", "pids", &self.name]).stdout;
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<libc::pid_t>().ok())
        {
            crate::sys::kill(pid, libc::SIGKILL);
        }
        let _ = sh(&["ip", "netns", "del", &self.name]);
    }
}

/// Deletes namespaces left behind by test processes that were killed before their guards ran
/// (the name carries the pid of the process that made it). Runs once per test process.
fn sweep_stale_namespaces() {
    static SWEEP: Once = Once::new();
    SWEEP.call_once(|| {
        let list = sh(&["ip", "netns", "list"]).stdout;
        for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
            let Some(rest) = name.strip_prefix(NETNS_PREFIX) else {
                continue;
            };
            let mut fields = rest.rsplitn(3, '-');
            let (_n, pid) = (fields.next(), fields.next());
            let Some(pid) = pid.and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let _ = sh(&["ip", "netns", "del", name]);
            }
        }
    });
}

/// rx/tx packet counters of one interface, as the kernel counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfCounters {
    pub rx_packets: u64,
    pub tx_packets: u64,
}

/// The summary of one `ping` run.
#[derive(Debug)]
pub struct PingStats {
    pub transmitted: u32,
    pub received: u32,
    pub output: CmdOutput,
}

impl PingStats {
    fn parse(output: CmdOutput) -> PingStats {
        // "3 packets transmitted, 3 received, 0% packet loss, time 404ms"
        // "3 packets transmitted, 0 received, +3 errors, 100% packet loss, time 2043ms"
        let summary = output
            .stdout
            .lines()
            .find(|l| l.contains(" packets transmitted, "));
        let Some(summary) = summary else {
            panic!("ping printed no summary:\n{}", output.describe_failure());
        };
        let mut parts = summary.split(", ");
        let mut number = |what: &str| -> u32 {
            parts
                .next()
                .and_then(|p| p.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no {what} count in ping summary {summary:?}"))
        };
        let transmitted = number("transmitted");
        let received = number("received");
        PingStats {
            transmitted,
            received,
            output,
        }
    }

    /// Every one of `count` pings got its reply.
    #[track_caller]
    pub fn assert_no_loss(&self, count: u32) {
        assert!(
            self.transmitted == count && self.received == count,
            "expected {count}/{count} replies, got {}/{}: `{}`\n{}",
            self.received,
            self.transmitted,
            self.output.what,
            self.output.stdout
        );
    }

    /// No ping got a reply.
    #[track_caller]
    pub fn assert_all_lost(&self) {
        assert!(
            self.transmitted > 0 && self.received == 0,
            "expected 100% loss, got {}/{} replies: `{}`\n{}",
            self.received,
            self.transmitted,
            self.output.what,
            self.output.stdout
        );
    }
}

/// A veth pair: one end in the root namespace (where the switch attaches to it), the other
/// inside a test namespace with an address. Deleting the root end deletes both.
pub struct Veth {
    root: String,
}

impl Veth {
    /// Creates the pair with the peer born inside `ns` as `peer`, addressed `cidr` and up.
    /// The root end stays down: attaching it as an `afpacket` port must bring it up.
    pub fn new(ns: &Netns, peer: &str, cidr: &str) -> Veth {
        Veth::with_queues(ns, peer, cidr, 1)
    }

    /// The same with `queues` receive and transmit queues at each end: the peer's flows
    /// leave on (and the root end receives them on) one queue each, by flow hash.
    pub fn with_queues(ns: &Netns, peer: &str, cidr: &str, queues: u32) -> Veth {
        let root = unique_ifname("vt");
        let q = queues.to_string();
        sh(&[
            "ip",
            "link",
            "add",
            &root,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            peer,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "netns",
            ns.name(),
        ])
        .check();
        let veth = Veth { root };
        // The root namespace must not talk IPv6 through the end the switch reads from.
        let _ = std::fs::write(
            format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", veth.root),
            "1",
        );
        ns.exec_ok(&["ip", "addr", "add", cidr, "dev", peer]);
        ns.exec_ok(&["ip", "link", "set", peer, "up"]);
        veth
    }

    /// A pair with no address: `peer` inside `ns` and the root end, both
    /// up (e.g. a bond member facing a switch in `ns`).
    pub fn bare(ns: &Netns, peer: &str) -> Veth {
        let root = unique_ifname("vt");
        sh(&[
            "ip",
            "link",
            "add",
            &root,
            "type",
            "veth",
            "peer",
            "name",
            peer,
            "netns",
            ns.name(),
        ])
        .check();
        let veth = Veth { root };
        let _ = std::fs::write(
            format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", veth.root),
            "1",
        );
        sh(&["ip", "link", "set", &veth.root, "up"]).check();
        ns.exec_ok(&["ip", "link", "set", peer, "up"]);
        veth
    }

    /// Name of the root-namespace end.
    pub fn root(&self) -> &str {
        &self.root
    }
}

/// A cable between two switches on this host: a veth pair with both ends
/// in the root namespace, up, IPv6 off; deleted on drop.
pub struct Cable {
    pub a: String,
    pub b: String,
}

impl Cable {
    pub fn new() -> Cable {
        let (a, b) = (unique_ifname("vca"), unique_ifname("vcb"));
        sh(&["ip", "link", "add", &a, "type", "veth", "peer", "name", &b]).check();
        let cable = Cable { a, b };
        for end in [&cable.a, &cable.b] {
            let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{end}/disable_ipv6"), "1");
            sh(&["ip", "link", "set", end, "up"]).check();
        }
        cable
    }
}

impl Default for Cable {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Cable {
    fn drop(&mut self) {
        let _ = sh(&["ip", "link", "del", &self.a]);
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        // Already gone if its namespace was deleted first: the error is expected then.
        let _ = sh(&["ip", "link", "del", &self.root]);
    }
}

/// A simulated host: a namespace with one interface toward the switch.
pub struct Host {
    // Fields drop in declaration order: the veth goes before its namespace.
    veth: Option<Veth>,
    pub ns: Netns,
    /// The host's interface, inside `ns`.
    pub ifname: String,
    /// IPv4 address without prefix length.
    pub ip: String,
    /// MAC of `ifname`, lower case `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
}

impl Host {
    /// A host wired by a veth pair; attach its root end with [`Host::attach`].
    pub fn veth(tag: &str, cidr: &str) -> Host {
        Host::veth_with_queues(tag, cidr, 1)
    }

    /// The same over a veth pair with `queues` queues at each end.
    pub fn veth_with_queues(tag: &str, cidr: &str, queues: u32) -> Host {
        let ns = Netns::new(tag);
        let veth = Veth::with_queues(&ns, "eth0", cidr, queues);
        let mac = ns.mac("eth0");
        Host {
            veth: Some(veth),
            ns,
            ifname: "eth0".into(),
            ip: ip_of(cidr),
            mac,
        }
    }

    /// A host whose interface is a tap of the switch: the port is created (which creates the
    /// tap in the root namespace), then the tap is moved into the host's namespace, brought up
    /// and addressed there.
    pub fn tap(d: &Daemon, bridge: &str, port: &str, tag: &str, cidr: &str) -> Host {
        let ns = Netns::new(tag);
        let tap = unique_ifname("vp");
        d.ctl(&[
            "port",
            "add",
            bridge,
            port,
            "type=tap",
            &format!("iface={tap}"),
        ]);
        let sys = format!("/sys/class/net/{tap}");
        wait_for(
            Duration::from_secs(5),
            &format!("tap {tap} to appear"),
            || std::path::Path::new(&sys).exists().then_some(()),
        );
        sh(&["ip", "link", "set", &tap, "netns", ns.name()]).check();
        // Moving re-creates the interface's IPv6 state from the namespace's defaults (off);
        // turn it off explicitly as well in case the kernel keeps per-device settings.
        let _ = ns.exec(&[
            "sh",
            "-c",
            &format!("echo 1 > /proc/sys/net/ipv6/conf/{tap}/disable_ipv6"),
        ]);
        ns.exec_ok(&["ip", "addr", "add", cidr, "dev", &tap]);
        ns.exec_ok(&["ip", "link", "set", &tap, "up"]);
        let mac = ns.mac(&tap);
        Host {
            veth: None,
            ns,
            ifname: tap,
            ip: ip_of(cidr),
            mac,
        }
    }

    /// The veth's root-namespace end (what an `afpacket` port attaches to).
    pub fn root_if(&self) -> &str {
        self.veth
            .as_ref()
            .expect("a tap host has no root-side veth")
            .root()
    }

    /// `vsctl port add BRIDGE PORT type=afpacket iface=ROOT_END`.
    pub fn attach(&self, d: &Daemon, bridge: &str, port: &str) {
        let iface = format!("iface={}", self.root_if());
        d.ctl(&["port", "add", bridge, port, "type=afpacket", &iface]);
    }

    /// Deletes the veth pair now (the interface "vanishes" under the switch).
    pub fn unplug(&mut self) {
        drop(self.veth.take());
    }

    pub fn ping(&self, other: &Host, count: u32) -> PingStats {
        self.ns.ping(&other.ip, count)
    }

    /// This host's interface counters.
    pub fn counters(&self) -> IfCounters {
        self.ns.counters(&self.ifname)
    }

    /// A permanent ARP entry for `other`, so that traffic to it sends no ARP broadcast.
    pub fn pin_neighbor(&self, other: &Host) {
        self.ns.exec_ok(&[
            "ip",
            "neigh",
            "replace",
            &other.ip,
            "lladdr",
            &other.mac,
            "dev",
            &self.ifname,
            "nud",
            "permanent",
        ]);
    }
}

fn ip_of(cidr: &str) -> String {
    cidr.split('/').next().unwrap_or(cidr).to_string()
}
