//! Topologies several tests share.

use std::time::Duration;

use crate::daemon::Daemon;
use crate::net::Host;

/// One bridge `br0` with three hosts on 10.77.SUBNET.0/24:
/// - `a` (.1) and `b` (.2): namespaces wired by veths whose root ends are `afpacket` ports
///   `pa` and `pb`;
/// - `c` (.3): a namespace holding the device of `tap` port `pc`.
pub struct ThreeHosts {
    pub a: Host,
    pub b: Host,
    pub c: Host,
}

impl ThreeHosts {
    pub const BRIDGE: &'static str = "br0";

    /// Builds the topology on `d` and waits until all ports are up.
    pub fn new(d: &Daemon, tag: &str, subnet: u8) -> ThreeHosts {
        let br = Self::BRIDGE;
        d.ctl(&["bridge", "add", br]);
        let a = Host::veth(&format!("{tag}a"), &format!("10.77.{subnet}.1/24"));
        a.attach(d, br, "pa");
        let b = Host::veth(&format!("{tag}b"), &format!("10.77.{subnet}.2/24"));
        b.attach(d, br, "pb");
        let c = Host::tap(
            d,
            br,
            "pc",
            &format!("{tag}c"),
            &format!("10.77.{subnet}.3/24"),
        );
        d.wait_ports_up(Duration::from_secs(10));
        ThreeHosts { a, b, c }
    }

    /// Permanent ARP entries between all hosts: no ARP at all afterwards, including the
    /// unicast probe the kernel sends ~5 s after using a neighbour entry it only learned from
    /// a request. Tests that need silence (idle CPU) use this.
    pub fn pin_all_neighbors(&self) {
        let hosts = [&self.a, &self.b, &self.c];
        for from in hosts {
            for to in hosts {
                if !std::ptr::eq(from, to) {
                    from.pin_neighbor(to);
                }
            }
        }
    }

    /// Every host pings every other one `count` times, with no loss.
    pub fn ping_all_pairs(&self, count: u32) {
        let hosts = [("a", &self.a), ("b", &self.b), ("c", &self.c)];
        for (from_name, from) in hosts {
            for (to_name, to) in hosts {
                if from_name != to_name {
                    eprintln!("ping {from_name} -> {to_name}");
                    from.ping(to, count).assert_no_loss(count);
                }
            }
        }
    }
}

/// Two veth hosts on bridge `bridge` (which must exist): `a` at NET.1/24 behind afpacket port
/// `pa`, `b` at NET.2/24 behind `pb`; neighbours pinned (no ARP during a test) and a first
/// ping exchanged, so the table knows both.
pub fn two_pinned_hosts(d: &Daemon, bridge: &str, tag: &str, net: &str) -> (Host, Host) {
    let a = Host::veth(&format!("{tag}a"), &format!("{net}.1/24"));
    a.attach(d, bridge, "pa");
    let b = Host::veth(&format!("{tag}b"), &format!("{net}.2/24"));
    b.attach(d, bridge, "pb");
    d.wait_ports_up(Duration::from_secs(10));
    a.pin_neighbor(&b);
    b.pin_neighbor(&a);
    a.ping(&b, 2).assert_no_loss(2);
    (a, b)
}
