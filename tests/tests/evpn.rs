//! BGP EVPN for the VXLAN overlay (issue 11), through a GoBGP sidecar per host.
//!
//! First the harness on its own (`gobgp.rs`): two gobgpd exchange both route types, and a route
//! reflector passes routes between its clients. Then three hypervisors, each a vswitchd and a
//! gobgpd in the root namespace: the gobgpds speak iBGP over loopback (AS 65000, host 1
//! reflecting routes), the vswitchds' uplinks meet on a kernel bridge in a "fabric" namespace
//! (the underlay, VTEPs 192.0.2.1-3), VMs in two VNIs hang off each host. The test checks what
//! the issue asks: MACs learned from BGP rather than from flooding, pings across hosts within a
//! VNI and none between VNIs, `evpn show`, a VM moving between hosts (re-attached, and migrated
//! with MAC mobility) with its pings resuming within 1 s, and a gobgpd killed and restarted.
//!
//! Figures (session times, move outages, convergence) go to stderr: run with `--nocapture`.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use vswitch_tests::gobgp::{unique_loopback, EvpnRoute, GoBgpd, Neighbor};
use vswitch_tests::sys::PacketSocket;
use vswitch_tests::{entries_of, poll, seq, wait_for, Daemon, Host, Netns, Veth};

const ASN: u32 = 65000;
/// gobgpd opens a session 5 to 10 s after both ends run (see `gobgp.rs`); twice that, plus room
/// for a loaded machine.
const SESSION_LIMIT: Duration = Duration::from_secs(30);
/// Routes to travel once the sessions are up, and the switches to act on them.
const ROUTE_LIMIT: Duration = Duration::from_secs(10);
/// The overlay subnet: both VNIs use it (VNI 100 VMs at .1x, VNI 200 VMs at .2x), so only the
/// switch keeps them apart.
const NET: &str = "10.83.0";

// ---------------------------------------------------------------------------------------------
// The harness alone.

/// Two gobgpd peering over loopback: routes added with the CLI on one show on the other with
/// their attributes; a withdrawal and a killed speaker remove them; a restart re-establishes.
#[test]
fn gobgpd_pair_exchanges_evpn_routes() {
    let (a1, a2) = (unique_loopback(), unique_loopback());
    let mut g1 = GoBgpd::start(&a1, ASN, "10.255.1.1", &[Neighbor::peer(&a2)]);
    let g2 = GoBgpd::start(&a2, ASN, "10.255.1.2", &[Neighbor::peer(&a1)]);
    let took = g1.wait_established(&a2, SESSION_LIMIT);
    g2.wait_established(&a1, SESSION_LIMIT);
    eprintln!("gobgpd pair {a1} <-> {a2}: session established {took:?} after start");

    let mac = "02:00:5e:10:00:01";
    let macadv = [
        "macadv",
        mac,
        "0.0.0.0",
        "etag",
        "0",
        "label",
        "100",
        "rd",
        "10.255.1.1:100",
    ];
    let extra = [
        "rt",
        "65000:100",
        "encap",
        "vxlan",
        "nexthop",
        "192.0.2.101",
    ];
    g1.add_evpn(&[&macadv[..], &extra[..]].concat());
    g1.add_evpn(&[
        "multicast",
        "192.0.2.101",
        "etag",
        "0",
        "rd",
        "10.255.1.1:100",
        "rt",
        "65000:100",
        "encap",
        "vxlan",
        "pmsi",
        "ingress-repl",
        "100",
        "192.0.2.101",
    ]);
    let routes = wait_for(ROUTE_LIMIT, "g2 to receive both routes", || {
        let r = g2.evpn_routes();
        (r.len() == 2).then_some(r)
    });
    let t2 = routes.iter().find(|r| r.route_type == 2).expect("type 2");
    assert_eq!(t2.mac.as_deref(), Some(mac), "{t2:?}");
    assert_eq!(
        (t2.rd.as_str(), t2.labels.as_slice(), t2.vtep()),
        ("10.255.1.1:100", &[100][..], Some("192.0.2.101")),
        "{t2:?}"
    );
    assert_eq!(t2.route_targets, ["65000:100"], "{t2:?}");
    assert!(t2.encap_vxlan && t2.best, "{t2:?}");
    assert_eq!(t2.neighbor.as_deref(), Some(a1.as_str()), "{t2:?}");
    let t3 = routes.iter().find(|r| r.route_type == 3).expect("type 3");
    assert_eq!(
        (t3.ip.as_deref(), t3.vtep(), t3.pmsi_label),
        (Some("192.0.2.101"), Some("192.0.2.101"), Some(100)),
        "{t3:?}"
    );
    // The originator shows its own paths with no neighbour.
    assert!(g1.evpn_routes().iter().all(|r| r.neighbor.is_none()));

    g1.del_evpn(&macadv);
    wait_for(ROUTE_LIMIT, "the withdrawal to reach g2", || {
        let r = g2.evpn_routes();
        (r.len() == 1 && r[0].route_type == 3).then_some(())
    });

    // A killed speaker's routes go at once (its TCP connection is reset); restarted, it comes
    // back empty: what was added over its API died with it.
    g1.kill();
    assert!(!g1.is_running());
    wait_for(ROUTE_LIMIT, "g2 to drop the killed peer's routes", || {
        g2.evpn_routes().is_empty().then_some(())
    });
    g1.restart();
    let took = g2.wait_established(&a1, SESSION_LIMIT);
    eprintln!("gobgpd pair: session back {took:?} after the restart");
    assert!(g2.evpn_routes().is_empty());
    assert!(g1.evpn_routes().is_empty());
}

/// A route reflector passes each client's routes to the other, next hop untouched.
#[test]
fn gobgpd_route_reflector_reflects_between_clients() {
    let (rr_addr, c1_addr, c2_addr) = (unique_loopback(), unique_loopback(), unique_loopback());
    let rr = GoBgpd::start(
        &rr_addr,
        ASN,
        "10.255.2.1",
        &[Neighbor::rr_client(&c1_addr), Neighbor::rr_client(&c2_addr)],
    );
    let c1 = GoBgpd::start(&c1_addr, ASN, "10.255.2.2", &[Neighbor::peer(&rr_addr)]);
    let c2 = GoBgpd::start(&c2_addr, ASN, "10.255.2.3", &[Neighbor::peer(&rr_addr)]);
    rr.wait_established(&c1_addr, SESSION_LIMIT);
    rr.wait_established(&c2_addr, SESSION_LIMIT);

    for (g, mac, rd, vtep) in [
        (&c1, "02:00:5e:20:00:01", "10.255.2.2:100", "192.0.2.102"),
        (&c2, "02:00:5e:20:00:02", "10.255.2.3:100", "192.0.2.103"),
    ] {
        g.add_evpn(&[
            "macadv",
            mac,
            "0.0.0.0",
            "etag",
            "0",
            "label",
            "100",
            "rd",
            rd,
            "rt",
            "65000:100",
            "encap",
            "vxlan",
            "nexthop",
            vtep,
        ]);
    }
    for (g, other_mac, other_vtep) in [
        (&c1, "02:00:5e:20:00:02", "192.0.2.103"),
        (&c2, "02:00:5e:20:00:01", "192.0.2.102"),
    ] {
        let route = wait_for(ROUTE_LIMIT, "the reflected route", || {
            g.evpn_routes()
                .into_iter()
                .find(|r| r.mac.as_deref() == Some(other_mac))
        });
        assert_eq!(route.vtep(), Some(other_vtep), "{route:?}");
        assert_eq!(
            route.neighbor.as_deref(),
            Some(rr_addr.as_str()),
            "{route:?}"
        );
    }
    assert_eq!(rr.evpn_routes().len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Three hypervisors.

/// One hypervisor: a vswitchd with bridges `underlay` (uplink `up0`, a veth into the fabric)
/// and `guests` (VXLAN port `vx0`, VTEP 192.0.2.N, VNI 100 <-> VLAN 10, VNI 200 <-> VLAN 20,
/// no configured remotes), and its gobgpd.
struct Hv {
    n: usize,
    vtep: String,
    d: Daemon,
    bgp: GoBgpd,
    _uplink: Veth,
}

impl Hv {
    fn new(fabric: &Netns, n: usize, bgp: GoBgpd) -> Hv {
        let vtep = format!("192.0.2.{n}");
        let d = Daemon::start(&format!("evpn-h{n}"));
        let in_fabric = format!("h{n}");
        let uplink = Veth::bare(fabric, &in_fabric);
        fabric.exec_ok(&["ip", "link", "set", &in_fabric, "master", "fab"]);
        d.ctl(&["bridge", "add", "underlay"]);
        d.ctl(&[
            "port",
            "add",
            "underlay",
            "up0",
            "type=afpacket",
            &format!("iface={}", uplink.root()),
        ]);
        d.ctl(&["bridge", "add", "guests"]);
        d.ctl(&[
            "port",
            "add",
            "guests",
            "vx0",
            "type=vxlan",
            &format!("local={vtep}"),
            "underlay=up0",
            "vni=100:10,200:20",
        ]);
        Hv {
            n,
            vtep,
            d,
            bgp,
            _uplink: uplink,
        }
    }

    fn evpn_set(&self) {
        self.d.ctl(&[
            "evpn",
            "set",
            "guests",
            &format!("gobgp={}", self.bgp.api_addr()),
            &format!("asn={ASN}"),
            &format!("router_id={}", self.vtep),
        ]);
    }

    fn evpn_show(&self) -> Value {
        self.d.ctl(&["evpn", "show", "guests"])
    }

    fn fdb(&self) -> Vec<Value> {
        self.d.fdb("guests")
    }

    /// Attaches a VM's veth as access port `port` of `vlan`.
    fn attach(&self, vm: &Host, port: &str, vlan: u16) {
        self.d.ctl(&[
            "port",
            "add",
            "guests",
            port,
            "type=afpacket",
            &format!("iface={}", vm.root_if()),
            &format!("access={vlan}"),
        ]);
    }

    /// Waits (polling every 10 ms, this is on the clock of a move) until port `port` is up.
    fn wait_port_up(&self, port: &str) {
        let up = poll(Duration::from_secs(5), Duration::from_millis(10), || {
            entries_of(self.d.ctl(&["port", "list"]))
                .iter()
                .any(|p| p["name"] == port && p["bridge"] == "guests" && p["status"] == "up")
                .then_some(())
        });
        assert!(up.is_some(), "h{}: port {port} not up within 5 s", self.n);
    }
}

/// A VM: a namespace with `eth0` (MTU 1450, for the VXLAN header) behind access port `port`.
struct Vm {
    name: &'static str,
    /// Index of its current hypervisor in the test's array.
    at: usize,
    port: &'static str,
    vlan: u16,
    vni: u32,
    host: Host,
}

impl Vm {
    fn new(hvs: &[Hv], at: usize, name: &'static str, port: &'static str, vni: u32, ip: u8) -> Vm {
        let host = Host::veth(&format!("ev{name}"), &format!("{NET}.{ip}/24"));
        host.ns
            .exec_ok(&["ip", "link", "set", "eth0", "mtu", "1450"]);
        let vlan = vlan_of(vni);
        hvs[at].attach(&host, port, vlan);
        Vm {
            name,
            at,
            port,
            vlan,
            vni,
            host,
        }
    }

    fn mac(&self) -> &str {
        &self.host.mac
    }
}

/// Index of the VM called `name`.
fn idx(vms: &[Vm], name: &str) -> usize {
    vms.iter()
        .position(|v| v.name == name)
        .unwrap_or_else(|| panic!("no VM {name}"))
}

fn vlan_of(vni: u32) -> u16 {
    match vni {
        100 => 10,
        200 => 20,
        _ => panic!("no VLAN for VNI {vni}"),
    }
}

/// The table entry of (vlan, mac), if any.
fn fdb_entry<'a>(fdb: &'a [Value], vlan: u16, mac: &str) -> Option<&'a Value> {
    fdb.iter().find(|e| e["vlan"] == vlan && e["mac"] == mac)
}

/// Whether `fdb` has `vm` as an EVPN entry behind vx0 toward `vtep`.
fn has_evpn(fdb: &[Value], vm: &Vm, vtep: &str) -> bool {
    fdb_entry(fdb, vm.vlan, vm.mac())
        .is_some_and(|e| e["type"] == "evpn" && e["port"] == "vx0" && e["remote"] == vtep)
}

/// What is wrong with hypervisor `hv`'s table, given where the VMs are: each must be learned
/// on its port at home and an EVPN entry toward its home VTEP elsewhere.
fn table_problems(hvs: &[Hv], hv: usize, vms: &[&Vm]) -> Option<String> {
    let fdb = hvs[hv].fdb();
    let mut problems = Vec::new();
    for vm in vms {
        let entry = fdb_entry(&fdb, vm.vlan, vm.mac());
        let ok = if vm.at == hv {
            entry.is_some_and(|e| e["type"] == "learned" && e["port"] == vm.port)
        } else {
            has_evpn(&fdb, vm, &hvs[vm.at].vtep)
        };
        if !ok {
            problems.push(format!(
                "{} (vlan {} {} at h{}): {entry:?}",
                vm.name,
                vm.vlan,
                vm.mac(),
                hvs[vm.at].n
            ));
        }
    }
    (!problems.is_empty()).then(|| {
        format!(
            "h{}'s table: wrong or missing {}\nfull table: {fdb:#?}",
            hvs[hv].n,
            problems.join("; ")
        )
    })
}

/// Waits until `check` finds nothing wrong; the last complaint is the failure message.
#[track_caller]
fn wait_ok(limit: Duration, what: &str, mut check: impl FnMut() -> Option<String>) -> Duration {
    let t0 = Instant::now();
    let mut last = String::new();
    let ok = poll(limit, Duration::from_millis(50), || {
        match check() {
            None => return Some(()),
            Some(p) => last = p,
        }
        None
    });
    if ok.is_none() {
        panic!("timed out after {limit:?} waiting for {what}: {last}");
    }
    t0.elapsed()
}

fn mac_bytes(mac: &str) -> [u8; 6] {
    let v: Vec<u8> = mac
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap_or_else(|_| panic!("bad MAC {mac}")))
        .collect();
    v.try_into().unwrap_or_else(|_| panic!("bad MAC {mac}"))
}

/// One frame from `vm` to itself (EtherType 0x88b5, local experimental): the switch learns
/// the source on the VM's port and, the destination being that same port, sends it nowhere.
/// It makes the switch learn the VM without any frame crossing the underlay.
fn hello_to_self(vm: &Vm) {
    let mac = mac_bytes(vm.mac());
    let mut frame = Vec::with_capacity(60);
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&[0x88, 0xb5]);
    frame.resize(60, 0);
    PacketSocket::open(&vm.host.ns, "eth0")
        .send(&frame)
        .unwrap_or_else(|e| panic!("{}: sending a frame to itself: {e}", vm.name));
}

/// A gratuitous ARP from `vm`, as a hypervisor sends for a VM that just migrated.
fn gratuitous_arp(vm: &Vm) {
    let mac = mac_bytes(vm.mac());
    let ip: Vec<u8> = vm
        .host
        .ip
        .split('.')
        .map(|o| o.parse().expect("IPv4 octet"))
        .collect();
    let mut frame = Vec::with_capacity(60);
    frame.extend_from_slice(&[0xff; 6]);
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&[0x08, 0x06]);
    // Ethernet, IPv4, hlen 6, plen 4, request; sender = target = the VM's own address.
    frame.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&ip);
    frame.resize(60, 0);
    PacketSocket::open(&vm.host.ns, "eth0")
        .send(&frame)
        .unwrap_or_else(|e| panic!("{}: sending a gratuitous ARP: {e}", vm.name));
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock before 1970")
        .as_secs_f64()
}

/// A `ping -D` running in the background into a file: the outage of a move is the longest
/// time between two consecutive replies.
struct PingStream {
    child: Option<Child>,
    dir: PathBuf,
    what: String,
}

impl PingStream {
    /// Starts pinging `dst` from `ns` every `interval` seconds, and waits for the first reply.
    fn start(ns: &Netns, dst: &str, interval: f64) -> PingStream {
        let dir = std::env::temp_dir().join(format!("vst-evping-{}-{}", std::process::id(), seq()));
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let out = fs::File::create(dir.join("ping.out")).expect("create ping.out");
        let interval_s = interval.to_string();
        let mut cmd = ns.command(&["ping", "-n", "-D", "-W", "1", "-i", &interval_s, dst]);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::null());
        vswitch_tests::sys::die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start ping: {e}"));
        let s = PingStream {
            child: Some(child),
            dir,
            what: format!("ping {dst} from {}", ns.name()),
        };
        wait_for(
            Duration::from_secs(5),
            "the first reply of a ping stream",
            || (!s.replies().is_empty()).then_some(()),
        );
        s
    }

    fn output(&self) -> String {
        fs::read_to_string(self.dir.join("ping.out")).unwrap_or_default()
    }

    /// (time, icmp_seq) of every reply so far, from lines like
    /// `[1700000000.123456] 64 bytes from 10.0.0.1: icmp_seq=3 ttl=64 time=0.1 ms`.
    fn replies(&self) -> Vec<(f64, u32)> {
        self.output()
            .lines()
            .filter(|l| l.contains(" bytes from "))
            .filter_map(|l| {
                let ts = l.strip_prefix('[')?.split(']').next()?.parse().ok()?;
                let seq = l
                    .split("icmp_seq=")
                    .nth(1)?
                    .split(' ')
                    .next()?
                    .parse()
                    .ok()?;
                Some((ts, seq))
            })
            .collect()
    }

    /// Waits until `n` replies arrived after unix time `since`.
    fn wait_replies_after(&self, since: f64, n: usize, limit: Duration) {
        let ok = poll(limit, Duration::from_millis(20), || {
            (self.replies().iter().filter(|(t, _)| *t > since).count() >= n).then_some(())
        });
        if ok.is_none() {
            panic!(
                "{}: fewer than {n} replies within {limit:?} after the event\n{}",
                self.what,
                self.output()
            );
        }
    }

    /// Stops ping (SIGINT, so it prints its summary): (longest time between two consecutive
    /// replies, transmitted, received).
    fn stop(mut self) -> (Duration, u32, u32) {
        let mut child = self.child.take().expect("ping already stopped");
        let pid = libc::pid_t::try_from(child.id()).expect("pid");
        // `ip netns exec` execs ping: the pid is ping's. Our child, not yet reaped.
        vswitch_tests::sys::kill(pid, libc::SIGINT);
        let exited = poll(Duration::from_secs(5), Duration::from_millis(20), || {
            child.try_wait().ok().flatten()
        });
        if exited.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let out = self.output();
        let replies = self.replies();
        let gap = replies
            .windows(2)
            .map(|w| w[1].0 - w[0].0)
            .fold(0.0, f64::max);
        let summary = out
            .lines()
            .find(|l| l.contains(" packets transmitted, "))
            .unwrap_or_else(|| panic!("{}: no summary\n{out}", self.what));
        let mut nums = summary
            .split(", ")
            .map(|p| p.split_whitespace().next().and_then(|n| n.parse().ok()));
        let transmitted = nums.next().flatten().expect("transmitted");
        let received = nums.next().flatten().expect("received");
        (Duration::from_secs_f64(gap), transmitted, received)
    }
}

impl Drop for PingStream {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The routes of `rib` for `mac`, best paths only.
/// The best MAC-only type-2 routes for `mac` (a MAC+IP route, from ARP snooping, may come
/// beside each: `mac_ip_routes_for`).
fn routes_for<'a>(rib: &'a [EvpnRoute], mac: &str) -> Vec<&'a EvpnRoute> {
    rib.iter()
        .filter(|r| r.best && r.route_type == 2 && r.mac.as_deref() == Some(mac) && r.ip.is_none())
        .collect()
}

/// The best MAC+IP type-2 routes for `mac`.
fn mac_ip_routes_for<'a>(rib: &'a [EvpnRoute], mac: &str) -> Vec<&'a EvpnRoute> {
    rib.iter()
        .filter(|r| r.best && r.route_type == 2 && r.mac.as_deref() == Some(mac) && r.ip.is_some())
        .collect()
}

/// `vsctl evpn show guests` of one hypervisor against what it must say: session established,
/// learning off, and per VNI its RD/RT, its local and remote MAC counts and the other VTEPs.
fn evpn_show_problems(
    hv: &Hv,
    vtep_sets: &[(u32, Vec<&str>)],
    macs: &[(u32, u64, u64)],
) -> Option<String> {
    let show = hv.evpn_show();
    let mut problems = Vec::new();
    let expect = |key: &str, want: Value, problems: &mut Vec<String>| {
        if show[key] != want {
            problems.push(format!("{key} is {} (want {want})", show[key]));
        }
    };
    expect("bridge", "guests".into(), &mut problems);
    expect("gobgp", hv.bgp.api_addr().into(), &mut problems);
    expect("asn", ASN.into(), &mut problems);
    expect("router_id", hv.vtep.clone().into(), &mut problems);
    expect("vtep", "vx0".into(), &mut problems);
    expect("local_ip", hv.vtep.clone().into(), &mut problems);
    expect("learning", false.into(), &mut problems);
    expect("session", "established".into(), &mut problems);
    let vnis = show["vnis"].as_array().cloned().unwrap_or_default();
    for (vni, vteps) in vtep_sets {
        let Some(v) = vnis.iter().find(|v| v["vni"] == *vni) else {
            problems.push(format!("no VNI {vni}"));
            continue;
        };
        let vlan = vlan_of(*vni);
        let rd = format!("{}:{vni}", hv.vtep);
        let rt = format!("{ASN}:{vni}");
        if v["vlan"] != vlan || v["rd"] != rd.as_str() || v["rt"] != rt.as_str() {
            problems.push(format!("VNI {vni}: want vlan {vlan} rd {rd} rt {rt}: {v}"));
        }
        let mut got: Vec<&str> = v["vteps"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        got.sort_unstable();
        let mut want = vteps.clone();
        want.sort_unstable();
        if got != want {
            problems.push(format!("VNI {vni}: vteps {got:?}, want {want:?}"));
        }
        if let Some((_, local, remote)) = macs.iter().find(|(x, _, _)| x == vni) {
            if v["local_macs"] != *local || v["remote_macs"] != *remote {
                problems.push(format!(
                    "VNI {vni}: local_macs {} remote_macs {}, want {local} {remote}",
                    v["local_macs"], v["remote_macs"]
                ));
            }
        }
    }
    (!problems.is_empty()).then(|| format!("h{}: {}\n{show:#}", hv.n, problems.join("; ")))
}

/// The other hypervisors' VTEPs.
fn others(hvs: &[Hv], n: usize) -> Vec<&str> {
    hvs.iter()
        .filter(|h| h.n != n)
        .map(|h| h.vtep.as_str())
        .collect()
}

#[test]
fn three_hosts_evpn_over_gobgp() {
    let t_start = Instant::now();
    let fabric = Netns::new("evfab");
    fabric.exec_ok(&["ip", "link", "add", "fab", "type", "bridge"]);
    fabric.exec_ok(&["ip", "link", "set", "fab", "up"]);

    // gobgpd: host 1's reflects routes between hosts 2 and 3.
    let addr: Vec<String> = (0..3).map(|_| unique_loopback()).collect();
    let g1 = GoBgpd::start(
        &addr[0],
        ASN,
        "192.0.2.1",
        &[Neighbor::rr_client(&addr[1]), Neighbor::rr_client(&addr[2])],
    );
    let g2 = GoBgpd::start(&addr[1], ASN, "192.0.2.2", &[Neighbor::peer(&addr[0])]);
    let g3 = GoBgpd::start(&addr[2], ASN, "192.0.2.3", &[Neighbor::peer(&addr[0])]);
    let mut hvs: Vec<Hv> = Vec::new();
    for (n, g) in [(1, g1), (2, g2), (3, g3)] {
        hvs.push(Hv::new(&fabric, n, g));
    }

    // VMs: one per VNI on each host, a second VNI 100 VM on host 3 (local traffic while its
    // gobgpd is down), and `m`, the VM that moves, on host 1.
    let mut vms = vec![
        Vm::new(&hvs, 0, "a1", "a", 100, 11),
        Vm::new(&hvs, 1, "a2", "a", 100, 12),
        Vm::new(&hvs, 2, "a3", "a", 100, 13),
        Vm::new(&hvs, 2, "x3", "x", 100, 14),
        Vm::new(&hvs, 0, "b1", "b", 200, 21),
        Vm::new(&hvs, 1, "b2", "b", 200, 22),
        Vm::new(&hvs, 2, "b3", "b", 200, 23),
        Vm::new(&hvs, 0, "m", "m", 100, 50),
    ];
    for hv in &hvs {
        hv.d.wait_ports_up(Duration::from_secs(10));
        hv.evpn_set();
    }

    // Control plane up: BGP sessions, each vswitchd's gRPC session, and the type-3 routes that
    // make every host a VTEP of both VNIs everywhere.
    for peer in [&addr[1], &addr[2]] {
        hvs[0].bgp.wait_established(peer, SESSION_LIMIT);
    }
    let t_sessions = t_start.elapsed();
    let took = wait_ok(ROUTE_LIMIT, "type-3 routes on every host", || {
        hvs.iter().find_map(|hv| {
            let vteps = others(&hvs, hv.n);
            evpn_show_problems(hv, &[(100, vteps.clone()), (200, vteps)], &[])
        })
    });
    eprintln!("BGP sessions up {t_sessions:?} after start; flood lists complete {took:?} later");

    // Every VM sends one frame to itself: each switch learns its own VMs, nothing crosses the
    // underlay, and yet every remote MAC appears, from BGP, with its VTEP.
    let rx0: Vec<u64> = vms.iter().map(|vm| vm.host.counters().rx_packets).collect();
    let vx_rx0: Vec<u64> = hvs.iter().map(|hv| rx_of(hv, "vx0")).collect();
    let t0 = Instant::now();
    for vm in &vms {
        hello_to_self(vm);
    }
    for hv in 0..hvs.len() {
        let all: Vec<&Vm> = vms.iter().collect();
        wait_ok(ROUTE_LIMIT, "remote MACs from BGP", || {
            table_problems(&hvs, hv, &all)
        });
    }
    eprintln!(
        "MACs in every table {:?} after the VMs' first frames",
        t0.elapsed()
    );
    for (vm, rx) in vms.iter().zip(&rx0) {
        assert_eq!(
            vm.host.counters().rx_packets,
            *rx,
            "{} received frames: something crossed before the tables filled",
            vm.name
        );
    }
    for (hv, rx) in hvs.iter().zip(&vx_rx0) {
        assert_eq!(
            rx_of(hv, "vx0"),
            *rx,
            "h{}: vx0 received tunnel frames",
            hv.n
        );
    }
    // No VM has ARPed yet: MAC-only routes.
    check_rib(&hvs, &vms, false);

    // evpn show: local and remote MAC counts per VNI (VNI 100: a1..a3, x3, m; VNI 200:
    // b1..b3).
    let counts = [
        [(100, 2, 3), (200, 1, 2)],
        [(100, 1, 4), (200, 1, 2)],
        [(100, 2, 3), (200, 1, 2)],
    ];
    for (hv, c) in hvs.iter().zip(&counts) {
        let vteps = others(&hvs, hv.n);
        wait_ok(ROUTE_LIMIT, "evpn show's counts", || {
            evpn_show_problems(hv, &[(100, vteps.clone()), (200, vteps.clone())], c)
        });
        let counters = &hv.evpn_show()["counters"];
        for key in ["routes_sent", "routes_received"] {
            assert!(
                counters[key].as_u64().unwrap_or(0) > 0,
                "h{}: {key} in {counters}",
                hv.n
            );
        }
        assert_eq!(counters["routes_refused"], 0, "h{}: {counters}", hv.n);
    }

    // Pings across hosts within each VNI (ARP floods go to the type-3 VTEPs)... VNI 100 first.
    for (from, to) in [("a1", "a2"), ("a2", "a3"), ("a3", "a1"), ("x3", "m")] {
        let (f, t) = (&vms[idx(&vms, from)], &vms[idx(&vms, to)]);
        f.host.ping(&t.host, 3).assert_no_loss(3);
    }

    // ...then isolation, while the VNI 200 VMs have been silent: a VNI 100 VM cannot reach
    // them in the same subnet, and its broadcasts do not reach them at all.
    let quiet: Vec<usize> = ["b1", "b2", "b3"].iter().map(|n| idx(&vms, n)).collect();
    let rx_b: Vec<u64> = quiet
        .iter()
        .map(|&i| vms[i].host.counters().rx_packets)
        .collect();
    let a1 = &vms[idx(&vms, "a1")];
    a1.host
        .ping(&vms[idx(&vms, "b2")].host, 3)
        .assert_all_lost();
    a1.host
        .ping(&vms[idx(&vms, "b3")].host, 3)
        .assert_all_lost();
    a1.host.ns.ping_broadcast(&format!("{NET}.255"), 20, 0.01);
    for (&i, rx) in quiet.iter().zip(&rx_b) {
        let leaked = vms[i].host.counters().rx_packets - rx;
        assert_eq!(
            leaked, 0,
            "{} got {leaked} frames from VNI 100",
            vms[i].name
        );
    }
    for (from, to) in [("b1", "b2"), ("b2", "b3"), ("b3", "b1")] {
        vms[idx(&vms, from)]
            .host
            .ping(&vms[idx(&vms, to)].host, 3)
            .assert_no_loss(3);
    }

    // Move 1: `m` re-attached from host 1 to host 2 (its port deleted on 1, its veth added on
    // 2), announcing itself with a gratuitous ARP as a migrated VM does; a3 on host 3 pings it
    // every 50 ms throughout.
    let mi = idx(&vms, "m");
    let a3 = idx(&vms, "a3");
    vms[a3].host.ping(&vms[mi].host, 2).assert_no_loss(2);
    let stream = PingStream::start(&vms[a3].host.ns, &vms[mi].host.ip, 0.05);
    let t_move = unix_now();
    let clock = Instant::now();
    hvs[0].d.ctl(&["port", "del", "guests", "m"]);
    hvs[1].attach(&vms[mi].host, "m", 10);
    hvs[1].wait_port_up("m");
    gratuitous_arp(&vms[mi]);
    vms[mi].at = 1;
    wait_ok(ROUTE_LIMIT, "host 3 to follow m to host 2", || {
        let fdb = hvs[2].fdb();
        (!has_evpn(&fdb, &vms[mi], &hvs[1].vtep)).then(|| format!("{fdb:#?}"))
    });
    let settled = clock.elapsed();
    stream.wait_replies_after(t_move, 10, Duration::from_secs(5));
    let (gap, sent, got) = stream.stop();
    let seq1 = wait_route_moved(&hvs, vms[mi].mac(), &hvs[0].vtep, &hvs[1].vtep);
    eprintln!(
        "move 1 (re-attach h1 -> h2): pings every 50 ms stopped for {} ms at most ({} of {sent} \
         lost); host 3's table followed {} ms after the move began; host 2's MAC mobility \
         sequence {seq1}",
        gap.as_millis(),
        sent - got,
        settled.as_millis()
    );
    assert!(
        gap < Duration::from_secs(1),
        "move 1: pings stopped for {gap:?}"
    );
    assert_withdrew(&hvs[0]);
    for hv in 0..hvs.len() {
        let all: Vec<&Vm> = vms.iter().collect();
        wait_ok(ROUTE_LIMIT, "the tables after move 1", || {
            table_problems(&hvs, hv, &all)
        });
    }

    // Move 2: `m` migrates back to host 1, make-before-break: a twin (same MAC and IP) waits
    // on host 1 with its link down; the original goes silent (address removed) but stays in
    // host 2's table and BGP; the twin comes up and announces itself. Host 1 learns a MAC
    // that host 2 advertises, so it must advertise a higher MAC mobility sequence number, and
    // host 2 must withdraw (RFC 7432 section 15).
    let mut twin = Host::veth("evm1", &format!("{NET}.50/24"));
    twin.ns.exec_ok(&["ip", "link", "set", "eth0", "down"]);
    twin.ns.exec_ok(&[
        "ip",
        "link",
        "set",
        "eth0",
        "address",
        vms[mi].mac(),
        "mtu",
        "1450",
    ]);
    twin.mac = vms[mi].mac().to_string();
    hvs[0].attach(&twin, "m", 10);
    let stream = PingStream::start(&vms[a3].host.ns, &vms[mi].host.ip, 0.05);
    let t_move = unix_now();
    let clock = Instant::now();
    vms[mi]
        .host
        .ns
        .exec_ok(&["ip", "addr", "flush", "dev", "eth0"]);
    twin.ns.exec_ok(&["ip", "link", "set", "eth0", "up"]);
    hvs[0].wait_port_up("m");
    // The original stays attached to host 2 (silent) until the end.
    let _original = std::mem::replace(
        &mut vms[mi],
        Vm {
            name: "m",
            at: 0,
            port: "m",
            vlan: 10,
            vni: 100,
            host: twin,
        },
    );
    gratuitous_arp(&vms[mi]);
    wait_ok(ROUTE_LIMIT, "host 3 to follow m back to host 1", || {
        let fdb = hvs[2].fdb();
        (!has_evpn(&fdb, &vms[mi], &hvs[0].vtep)).then(|| format!("{fdb:#?}"))
    });
    let settled = clock.elapsed();
    stream.wait_replies_after(t_move, 10, Duration::from_secs(5));
    let (gap, sent, got) = stream.stop();
    let seq2 = wait_route_moved(&hvs, vms[mi].mac(), &hvs[1].vtep, &hvs[0].vtep);
    eprintln!(
        "move 2 (migration h2 -> h1): pings every 50 ms stopped for {} ms at most ({} of {sent} \
         lost); host 3's table followed {} ms after the move began; host 1's MAC mobility \
         sequence {seq2}",
        gap.as_millis(),
        sent - got,
        settled.as_millis()
    );
    assert!(
        gap < Duration::from_secs(1),
        "move 2: pings stopped for {gap:?}"
    );
    assert_withdrew(&hvs[1]);
    assert!(
        seq2 > seq1,
        "host 1 took over a MAC host 2 advertised: its sequence {seq2} must exceed {seq1}"
    );
    for hv in 0..hvs.len() {
        let all: Vec<&Vm> = vms.iter().collect();
        wait_ok(ROUTE_LIMIT, "the tables after move 2", || {
            table_problems(&hvs, hv, &all)
        });
    }

    // gobgpd killed on host 3: hosts 1 and 2 withdraw host 3's routes, while host 3's two VNI
    // 100 VMs keep talking through its switch.
    let (a3, x3) = (idx(&vms, "a3"), idx(&vms, "x3"));
    vms[x3].host.ping(&vms[a3].host, 2).assert_no_loss(2);
    let local = PingStream::start(&vms[x3].host.ns, &vms[a3].host.ip, 0.05);
    hvs[2].bgp.kill();
    let withdrawn = wait_ok(ROUTE_LIMIT, "hosts 1 and 2 to drop host 3's MACs", || {
        hvs[..2].iter().find_map(|hv| {
            let fdb = hv.fdb();
            let stale: Vec<&Value> = fdb.iter().filter(|e| e["remote"] == "192.0.2.3").collect();
            (!stale.is_empty()).then(|| format!("h{} still has {stale:?}", hv.n))
        })
    });
    wait_ok(ROUTE_LIMIT, "host 3 to leave the flood lists", || {
        hvs[..2].iter().find_map(|hv| {
            let vteps: Vec<&str> = others(&hvs, hv.n)
                .into_iter()
                .filter(|v| *v != "192.0.2.3")
                .collect();
            evpn_show_problems(hv, &[(100, vteps.clone()), (200, vteps)], &[])
        })
    });
    let rib = hvs[0].bgp.evpn_routes();
    assert!(
        rib.iter().all(|r| r.vtep() != Some("192.0.2.3")),
        "the route reflector still has host 3's routes: {rib:#?}"
    );
    wait_ok(ROUTE_LIMIT, "host 3 to notice its gobgpd is gone", || {
        let show = hvs[2].evpn_show();
        (show["session"] == "established").then(|| format!("{show:#}"))
    });
    // What host 3 had installed stays in use.
    let fdb = hvs[2].fdb();
    assert!(
        has_evpn(&fdb, &vms[idx(&vms, "a1")], "192.0.2.1"),
        "host 3 lost its installed routes with its gobgpd: {fdb:#?}"
    );
    eprintln!(
        "gobgpd on host 3 killed: hosts 1 and 2 dropped its MACs within {} ms",
        withdrawn.as_millis()
    );

    // Restarted: the session comes back, host 3 replays its routes, everything converges.
    let clock = Instant::now();
    hvs[2].bgp.restart();
    wait_ok(
        SESSION_LIMIT,
        "host 3's switch to reconnect to its gobgpd",
        || {
            let show = hvs[2].evpn_show();
            (show["session"] != "established").then(|| format!("{show:#}"))
        },
    );
    let t_grpc = clock.elapsed();
    hvs[0].bgp.wait_established(&addr[2], SESSION_LIMIT);
    let t_bgp = clock.elapsed();
    let all: Vec<&Vm> = vms.iter().collect();
    for hv in 0..hvs.len() {
        wait_ok(SESSION_LIMIT, "the tables after the restart", || {
            table_problems(&hvs, hv, &all)
        });
    }
    let t_tables = clock.elapsed();
    for hv in &hvs {
        let vteps = others(&hvs, hv.n);
        wait_ok(ROUTE_LIMIT, "evpn show after the restart", || {
            evpn_show_problems(hv, &[(100, vteps.clone()), (200, vteps.clone())], &[])
        });
    }
    let (gap, sent, got) = local.stop();
    eprintln!(
        "gobgpd on host 3 restarted: its switch reconnected {} ms, the BGP session {} ms, all \
         tables {} ms after the restart; host 3's local pings meanwhile: {got}/{sent}, longest \
         gap {} ms",
        t_grpc.as_millis(),
        t_bgp.as_millis(),
        t_tables.as_millis(),
        gap.as_millis()
    );
    assert_eq!(
        got, sent,
        "host 3's local traffic lost pings while its gobgpd was away"
    );
    assert!(
        hvs[2].evpn_show()["counters"]["reconnects"]
            .as_u64()
            .unwrap_or(0)
            >= 1,
        "{:#}",
        hvs[2].evpn_show()
    );
    check_rib(&hvs, &vms, true);
    for (from, to) in [
        ("a1", "a3"),
        ("a3", "a2"),
        ("x3", "m"),
        ("b2", "b3"),
        ("b3", "b1"),
    ] {
        vms[idx(&vms, from)]
            .host
            .ping(&vms[idx(&vms, to)].host, 3)
            .assert_no_loss(3);
    }
    eprintln!("three hosts over EVPN: done in {:?}", t_start.elapsed());
}

/// `evpn show`'s routes_withdrawn counter of `hv` is above zero: it withdrew the MAC that moved
/// away.
fn assert_withdrew(hv: &Hv) {
    let show = hv.evpn_show();
    assert!(
        show["counters"]["routes_withdrawn"].as_u64().unwrap_or(0) > 0,
        "h{} withdrew a route but does not count it: {show:#}",
        hv.n
    );
}

/// rx packets of a port per `vsctl stats`.
fn rx_of(hv: &Hv, port: &str) -> u64 {
    let row = hv.d.port_stats(port);
    row["rx_packets"]
        .as_u64()
        .unwrap_or_else(|| panic!("no rx_packets in {row}"))
}

/// The route reflector's RIB holds the routes the spec describes: a type-3 per host and VNI
/// (RD router_id:VNI, RT ASN:VNI, VXLAN encapsulation, PMSI ingress replication with label VNI
/// and the VTEP as tunnel id) and a type-2 per VM (label VNI, next hop its VTEP, same RD/RT).
/// With `arped` (the VMs have sent ARP), each VM also has one MAC+IP route from ARP snooping.
fn check_rib(hvs: &[Hv], vms: &[Vm], arped: bool) {
    let rib = hvs[0].bgp.evpn_routes();
    for hv in hvs {
        for vni in [100u64, 200] {
            let rd = format!("{}:{vni}", hv.vtep);
            let found = rib.iter().find(|r| r.route_type == 3 && r.rd == rd);
            let ok = found.is_some_and(|r| {
                r.best
                    && r.ip.as_deref() == Some(hv.vtep.as_str())
                    && r.pmsi_tunnel_id.as_deref() == Some(hv.vtep.as_str())
                    && r.pmsi_label == Some(vni)
                    && r.route_targets == [format!("{ASN}:{vni}")]
                    && r.encap_vxlan
            });
            assert!(ok, "type-3 route of h{} VNI {vni}: {found:#?}", hv.n);
        }
    }
    for vm in vms {
        let hv = &hvs[vm.at];
        let found = routes_for(&rib, vm.mac());
        let ok = found.len() == 1 && {
            let r = found[0];
            r.rd == format!("{}:{}", hv.vtep, vm.vni)
                && r.labels == [u64::from(vm.vni)]
                && r.vtep() == Some(hv.vtep.as_str())
                && r.route_targets == [format!("{ASN}:{}", vm.vni)]
                && r.encap_vxlan
        };
        assert!(ok, "type-2 route of {} (h{}): {found:#?}", vm.name, hv.n);
        // ARP snooping adds one MAC+IP route with the VM's address, from the same VTEP and
        // with the same sequence, once the VM has ARPed.
        let with_ip = mac_ip_routes_for(&rib, vm.mac());
        let ok = if !arped {
            with_ip.is_empty()
        } else {
            with_ip.len() == 1 && {
                let r = with_ip[0];
                r.ip.as_deref() == Some(vm.host.ip.as_str())
                    && r.vtep() == Some(hv.vtep.as_str())
                    && r.mac_mobility_seq == found[0].mac_mobility_seq
            }
        };
        assert!(ok, "MAC+IP route of {} (h{}): {with_ip:#?}", vm.name, hv.n);
    }
}

/// Waits until every gobgpd has exactly one best type-2 route for `mac`, from `to`, and none
/// from `from`; returns its MAC mobility sequence number (0 if absent).
fn wait_route_moved(hvs: &[Hv], mac: &str, from: &str, to: &str) -> u64 {
    let mut seqn = 0;
    wait_ok(ROUTE_LIMIT, "the route of the moved MAC", || {
        for hv in hvs {
            let rib = hv.bgp.evpn_routes();
            let all: Vec<&EvpnRoute> = rib
                .iter()
                .filter(|r| r.route_type == 2 && r.mac.as_deref() == Some(mac))
                .collect();
            let stale = all.iter().any(|r| r.vtep() == Some(from));
            let best = routes_for(&rib, mac);
            if stale || best.len() != 1 || best[0].vtep() != Some(to) {
                return Some(format!(
                    "gobgpd of h{}: routes for {mac}: {all:#?} (want one from {to}, none from \
                     {from})",
                    hv.n
                ));
            }
            seqn = best[0].mac_mobility_seq.unwrap_or(0);
        }
        None
    });
    seqn
}

/// A vswitchd restart reconciles with what gobgpd holds: a route of its own it no longer has
/// (left by an "earlier life": our RD, a MAC no VM uses) is deleted, the flood routes are kept
/// (not doubled), and the VM's routes come back as soon as it speaks again.
#[test]
fn vswitchd_restart_reconciles_its_routes() {
    let fabric = Netns::new("evrst");
    fabric.exec_ok(&["ip", "link", "add", "fab", "type", "bridge"]);
    fabric.exec_ok(&["ip", "link", "set", "fab", "up"]);
    let addr = unique_loopback();
    let bgp = GoBgpd::start(&addr, ASN, "192.0.2.1", &[]);
    let mut hv = Hv::new(&fabric, 1, bgp);
    let hvs = std::slice::from_ref(&hv);
    let vm = Vm::new(hvs, 0, "r1", "r", 100, 31);
    hv.d.wait_ports_up(Duration::from_secs(10));
    hv.evpn_set();

    let ours = |r: &&EvpnRoute| r.rd.starts_with("192.0.2.1:");
    let flood_routes = |rib: &[EvpnRoute]| {
        rib.iter()
            .filter(ours)
            .filter(|r| r.route_type == 3)
            .count()
    };
    let vm_routes = |rib: &[EvpnRoute]| {
        (
            routes_for(rib, vm.mac()).len(),
            mac_ip_routes_for(rib, vm.mac()).len(),
        )
    };
    // The session first (its flood routes say it is attached): an ARP seen before that
    // teaches the table the MAC but leaves no address for a MAC+IP route.
    wait_ok(ROUTE_LIMIT, "the flood routes", || {
        let n = flood_routes(&hv.bgp.evpn_routes());
        (n != 2).then(|| format!("{n} flood routes"))
    });
    gratuitous_arp(&vm);
    wait_ok(ROUTE_LIMIT, "the flood and VM routes", || {
        let rib = hv.bgp.evpn_routes();
        let got = (flood_routes(&rib), vm_routes(&rib));
        (got != (2, (1, 1))).then(|| format!("flood routes, (MAC, MAC+IP) routes: {got:?}"))
    });

    let stale = "02:00:5e:00:99:99";
    hv.bgp.add_evpn(&[
        "macadv",
        stale,
        "0.0.0.0",
        "etag",
        "0",
        "label",
        "100",
        "rd",
        "192.0.2.1:100",
        "rt",
        "65000:100",
        "encap",
        "vxlan",
        "nexthop",
        "192.0.2.1",
    ]);
    assert_eq!(routes_for(&hv.bgp.evpn_routes(), stale).len(), 1);

    let t = Instant::now();
    hv.d.restart();
    wait_ok(ROUTE_LIMIT, "the stale route to go", || {
        let rib = hv.bgp.evpn_routes();
        let problems = (
            routes_for(&rib, stale).len(),
            flood_routes(&rib),
            hv.evpn_show()["session"].clone(),
        );
        (problems != (0, 2, Value::from("established")))
            .then(|| format!("(stale routes, flood routes, session): {problems:?}"))
    });
    eprintln!(
        "vswitchd restart: reconciled {:?} after the restart began",
        t.elapsed()
    );

    // The table starts empty, so the VM's routes went too; it speaks, they return.
    gratuitous_arp(&vm);
    wait_ok(ROUTE_LIMIT, "the VM's routes again", || {
        let rib = hv.bgp.evpn_routes();
        let got = (flood_routes(&rib), vm_routes(&rib));
        (got != (2, (1, 1))).then(|| format!("flood routes, (MAC, MAC+IP) routes: {got:?}"))
    });
    let counters = &hv.evpn_show()["counters"];
    assert!(
        counters["routes_withdrawn"].as_u64().unwrap_or(0) >= 1,
        "{counters}"
    );
    drop(vm);
    hv.d.stop();
}
