//! LACP interop: Open vSwitch's userspace datapath (Debian's
//! `openvswitch-switch`) as the partner of a vswitch bond.
//!
//! OVS runs in its own network namespace with a private database, sockets,
//! pid files and logs under a temp dir (OVS_RUNDIR etc. point there), so it
//! never touches a system instance. Its bridge uses `datapath_type=netdev`
//! (no kernel module) and bonds two veth ends with `bond_mode=balance-tcp
//! lacp=active lacp-time=fast`; the other ends are our bond's members. The
//! bridge's internal port carries the far host's address.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use vswitch_tests::{poll, run, seq, sh, wait_for, Daemon, Host, Netns, Veth};

const OVS_PACKAGE: &str = "openvswitch-switch";
const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

/// Fails the test (never skips) when Open vSwitch is not installed.
fn require_ovs() {
    for tool in [
        "ovsdb-tool",
        "ovsdb-server",
        "ovs-vswitchd",
        "ovs-vsctl",
        "ovs-appctl",
    ] {
        let ok = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "`{tool}` is missing: apt-get install {OVS_PACKAGE}");
    }
    assert!(
        Path::new(SCHEMA).is_file(),
        "{SCHEMA} is missing: apt-get install {OVS_PACKAGE}"
    );
}

/// A private ovsdb-server + ovs-vswitchd inside `ns`; stopped on drop.
struct Ovs {
    dir: PathBuf,
    children: Vec<Child>,
    ns_name: String,
}

impl Ovs {
    fn start(ns: &Netns) -> Ovs {
        require_ovs();
        let dir = std::env::temp_dir().join(format!("vst-ovs-{}-{}", std::process::id(), seq()));
        std::fs::create_dir_all(&dir).expect("create the OVS temp dir");
        let mut ovs = Ovs {
            dir,
            children: Vec::new(),
            ns_name: ns.name().to_string(),
        };
        let db = ovs.path("conf.db");
        sh(&["ovsdb-tool", "create", &db, SCHEMA]).check();
        ovs.spawn(
            ns,
            &[
                "ovsdb-server",
                &db,
                &format!("--remote=punix:{}", ovs.path("db.sock")),
                &format!("--unixctl={}", ovs.path("ovsdb.ctl")),
                &format!("--log-file={}", ovs.path("ovsdb.log")),
                "--no-chdir",
            ],
        );
        ovs.wait_socket("db.sock");
        ovs.vsctl(&["--no-wait", "init"]);
        ovs.spawn(
            ns,
            &[
                "ovs-vswitchd",
                &format!("unix:{}", ovs.path("db.sock")),
                &format!("--unixctl={}", ovs.path("vswitchd.ctl")),
                &format!("--log-file={}", ovs.path("vswitchd.log")),
                "--no-chdir",
            ],
        );
        ovs.wait_socket("vswitchd.ctl");
        ovs
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    fn spawn(&mut self, ns: &Netns, args: &[&str]) {
        let mut cmd = ns.command(args);
        // Everything OVS writes (management sockets, pid files) stays here.
        for var in ["OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"] {
            cmd.env(var, &self.dir);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", args[0]));
        self.children.push(child);
    }

    fn wait_socket(&self, name: &str) {
        let p = self.dir.join(name);
        let up = poll(Duration::from_secs(10), Duration::from_millis(50), || {
            p.exists().then_some(())
        });
        if up.is_none() {
            panic!("OVS did not create {}:\n{}", p.display(), self.logs());
        }
    }

    fn logs(&self) -> String {
        ["ovsdb.log", "vswitchd.log"]
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                format!(
                    "--- {f} ---\n{}",
                    lines[lines.len().saturating_sub(30)..].join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn vsctl(&self, args: &[&str]) -> String {
        let db = format!("--db=unix:{}", self.path("db.sock"));
        let mut cmd = Command::new("ovs-vsctl");
        cmd.args([db.as_str(), "--timeout=10"]).args(args);
        let out = run(&mut cmd, Duration::from_secs(20));
        if !out.success() {
            panic!("{}\n{}", out.describe_failure(), self.logs());
        }
        out.stdout
    }

    fn appctl(&self, args: &[&str]) -> String {
        let target = self.path("vswitchd.ctl");
        let mut cmd = Command::new("ovs-appctl");
        cmd.args(["-t", target.as_str()]).args(args);
        run(&mut cmd, Duration::from_secs(10)).check().stdout
    }
}

impl Drop for Ovs {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("OVS in namespace {}:\n{}", self.ns_name, self.logs());
        }
        for c in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn bond_members(d: &Daemon) -> Vec<Value> {
    d.ctl(&["port", "show", "bond0"])["details"]["members"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn member_tx(d: &Daemon) -> Vec<u64> {
    bond_members(d)
        .iter()
        .map(|m| m["tx_packets"].as_u64().unwrap_or(0))
        .collect()
}

#[test]
fn lacp_with_open_vswitch() {
    let ovs_ns = Netns::new("ovs");
    let ovs = Ovs::start(&ovs_ns);
    let links = [Veth::bare(&ovs_ns, "ovs0"), Veth::bare(&ovs_ns, "ovs1")];
    ovs.vsctl(&[
        "add-br",
        "br0",
        "--",
        "set",
        "bridge",
        "br0",
        "datapath_type=netdev",
    ]);
    ovs.vsctl(&[
        "add-bond",
        "br0",
        "bond0",
        "ovs0",
        "ovs1",
        "bond_mode=balance-tcp",
        "lacp=active",
        "other_config:lacp-time=fast",
    ]);
    // The far host is OVS's internal port. Only it answers ARP for its
    // address (the bond members are kernel interfaces in the same
    // namespace).
    ovs_ns.exec_ok(&["sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1"]);
    ovs_ns.exec_ok(&["ip", "addr", "add", "10.78.9.2/24", "dev", "br0"]);
    ovs_ns.exec_ok(&["ip", "link", "set", "br0", "up"]);

    let mut d = Daemon::start("ovs");
    d.ctl(&["bridge", "add", "br0"]);
    let members = format!("members={},{}", links[0].root(), links[1].root());
    d.ctl(&[
        "port",
        "add",
        "br0",
        "bond0",
        "type=bond",
        &members,
        "mode=lacp",
        "lacp_rate=fast",
    ]);
    let a = Host::veth("ovsa", "10.78.9.1/24");
    a.attach(&d, "br0", "pa");
    d.wait_ports_up(Duration::from_secs(10));

    // Both ends agree: every member collecting and distributing here, and
    // OVS reports the bond negotiated with both members attached.
    let converged = poll(Duration::from_secs(20), Duration::from_millis(200), || {
        let ours = bond_members(&d)
            .iter()
            .all(|m| m["collecting"] == true && m["distributing"] == true);
        let theirs = ovs.appctl(&["bond/show", "bond0"]);
        (ours && theirs.contains("lacp_status: negotiated")).then_some(())
    });
    if converged.is_none() {
        panic!(
            "no LACP agreement with OVS\nours: {:#}\nOVS lacp/show:\n{}\nOVS bond/show:\n{}",
            d.ctl(&["port", "show", "bond0"]),
            ovs.appctl(&["lacp/show", "bond0"]),
            ovs.appctl(&["bond/show", "bond0"])
        );
    }
    let lacp_show = ovs.appctl(&["lacp/show", "bond0"]);
    assert_eq!(
        lacp_show.matches("current attached").count(),
        2,
        "OVS members not both attached:\n{lacp_show}"
    );
    let details = d.ctl(&["port", "show", "bond0"])["details"].clone();
    let ovs_sys = lacp_show
        .lines()
        .find_map(|l| l.trim().strip_prefix("sys_id: "))
        .expect("sys_id in OVS lacp/show")
        .to_string();
    assert_eq!(details["lacp"]["partner"]["system"], ovs_sys.as_str());
    let our_sys = details["lacp"]["actor"]["system"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        lacp_show.contains(&format!("partner sys_id: {our_sys}")),
        "OVS does not see us ({our_sys}) as its partner:\n{lacp_show}"
    );

    // Traffic passes, from several source addresses over both links.
    a.ns.ping("10.78.9.2", 5).assert_no_loss(5);
    let before = member_tx(&d);
    for i in 10..18 {
        let src = format!("10.78.9.{i}");
        a.ns.exec_ok(&["ip", "addr", "add", &format!("{src}/24"), "dev", "eth0"]);
        a.ns.exec_ok(&[
            "ping",
            "-n",
            "-q",
            "-c",
            "5",
            "-i",
            "0.02",
            "-W",
            "1",
            "-I",
            &src,
            "10.78.9.2",
        ]);
    }
    let spread: Vec<u64> = member_tx(&d)
        .iter()
        .zip(&before)
        .map(|(a, b)| a - b)
        .collect();
    eprintln!("to OVS, 8 flows x 5 pings: per member tx {spread:?}");
    assert!(
        spread.iter().all(|n| *n >= 5),
        "flows did not spread: {spread:?}"
    );

    // A member goes down under a ping stream; the other carries on.
    let (tx, rx) = std::thread::scope(|s| {
        let pinger = s.spawn(|| a.ns.ping_every("10.78.9.2", 1500, 0.002));
        std::thread::sleep(Duration::from_secs(1));
        sh(&["ip", "link", "set", links[0].root(), "down"]).check();
        let p = pinger.join().expect("ping thread");
        (p.transmitted, p.received)
    });
    let lost = tx.saturating_sub(rx);
    eprintln!(
        "OVS partner, member down: {lost} of {tx} pings lost at 2 ms intervals: gap about {} ms",
        lost * 2
    );
    assert!(lost <= 100, "failover lost {lost} pings");
    sh(&["ip", "link", "set", links[0].root(), "up"]).check();
    wait_for(
        Duration::from_secs(15),
        "the member to rejoin with OVS",
        || {
            bond_members(&d)
                .iter()
                .all(|m| m["distributing"] == true)
                .then_some(())
        },
    );
    a.ns.ping("10.78.9.2", 5).assert_no_loss(5);
    d.assert_alive();
}
