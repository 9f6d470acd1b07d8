//! Option parsing and validation of port and bridge specs.

use super::*;

fn opts(kv: &[(&str, &str)]) -> Options {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn names() {
    for good in ["br0", "a", "vm-1.2_x", "123456789012345"] {
        assert!(validate_name("bridge", good).is_ok(), "{good}");
    }
    for bad in ["", "-a", ".a", "a b", "a/b", "1234567890123456", "é"] {
        assert!(validate_name("bridge", bad).is_err(), "{bad}");
    }
}

#[test]
fn bridge_options() {
    assert_eq!(
        BridgeSpec::parse(&Options::new()).unwrap(),
        BridgeSpec {
            aging_secs: 300,
            mac_table_size: 65536,
            guest_vlans: None,
            worker: None,
            spread: false,
        }
    );
    let all = BridgeSpec::parse(&opts(&[("worker", "all")])).unwrap();
    assert!(all.spread && all.worker.is_none());
    let one = BridgeSpec::parse(&opts(&[("worker", "1")])).unwrap();
    assert!(!one.spread && one.worker == Some(1));
    assert!(BridgeSpec::parse(&opts(&[("worker", "some")])).is_err());
    let s = BridgeSpec::parse(&opts(&[("aging", "10"), ("mac_table_size", "8")])).unwrap();
    assert_eq!((s.aging_secs, s.mac_table_size), (10, 8));
    let s = BridgeSpec::parse(&opts(&[("worker", "63")])).unwrap();
    assert_eq!(s.worker, Some(63));
    for bad in [
        opts(&[("aging", "abc")]),
        opts(&[("aging", "0")]),
        opts(&[("aging", "-5")]),
        opts(&[("aging", "86401")]),
        opts(&[("mac_table_size", "0")]),
        opts(&[("worker", "64")]),
        opts(&[("worker", "-1")]),
        opts(&[("colour", "red")]),
    ] {
        assert!(BridgeSpec::parse(&bad).is_err(), "{bad:?}");
    }
}

#[test]
fn port_options() {
    let tap = PortSpec::parse("vm1", &opts(&[("type", "tap")])).unwrap();
    assert_eq!((tap.kind, tap.iface.as_str()), (PortKind::Tap, "vm1"));
    let named = PortSpec::parse("vm1", &opts(&[("type", "tap"), ("iface", "tap9")])).unwrap();
    assert_eq!(named.iface, "tap9");
    let up = PortSpec::parse("up", &opts(&[("type", "afpacket"), ("iface", "eth0")])).unwrap();
    assert_eq!((up.kind, up.iface.as_str()), (PortKind::Afpacket, "eth0"));
    let errors = [
        ("p", opts(&[])),
        ("p", opts(&[("type", "afpacket")])),
        ("p", opts(&[("type", "warp")])),
        ("p", opts(&[("type", "loopback")])),
        ("p", opts(&[("type", "tap"), ("colour", "red")])),
        ("p", opts(&[("type", "tap"), ("iface", "has space")])),
        ("bad name", opts(&[("type", "tap")])),
    ];
    for (name, o) in errors {
        assert!(PortSpec::parse(name, &o).is_err(), "{name} {o:?}");
    }
    assert!(PortSpec::parse("p", &opts(&[("type", "afpacket")]))
        .unwrap_err()
        .contains("iface"));
}

#[test]
fn vlan_and_policy_options() {
    let p = |kv: &[(&str, &str)]| {
        let mut o = opts(kv);
        o.insert("type".into(), "tap".into());
        PortSpec::parse("p", &o)
    };
    assert_eq!(
        p(&[("access", "10")]).unwrap().policy.vlan,
        VlanMode::Access(10)
    );
    let t = p(&[("trunk", "10,20-30"), ("native", "5")]).unwrap().policy;
    assert_eq!(t.vlan.to_string(), "trunk 10,20-30, native 5");
    let sec = p(&[
        ("allowed_macs", "52:54:00:00:00:01,52:54:00:00:00:02"),
        ("max_macs", "4"),
        ("storm_pps", "100"),
    ])
    .unwrap()
    .policy;
    assert_eq!(sec.allowed_macs.len(), 2);
    assert_eq!((sec.max_macs, sec.storm_pps), (Some(4), Some(100)));
    for bad in [
        &[("access", "0")][..],
        &[("access", "4095")],
        &[("access", "10"), ("trunk", "20")],
        &[("access", "10"), ("native", "20")],
        &[("native", "20")],
        &[("trunk", "20-10")],
        &[("trunk", "")],
        &[("allowed_macs", "ff:ff:ff:ff:ff:ff")],
        &[("allowed_macs", "nope")],
        &[("max_macs", "0")],
        &[("max_macs", "-1")],
        &[("storm_pps", "0")],
    ] {
        assert!(p(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn guest_ranges_bind_tap_ports_only() {
    let br = BridgeSpec::parse(&opts(&[("guest_vlans", "100-199")])).unwrap();
    let tap = |kv: &[(&str, &str)]| {
        let mut o = opts(kv);
        o.insert("type".into(), "tap".into());
        PortSpec::parse("vm", &o).unwrap()
    };
    assert!(br.admits("vm", &tap(&[("access", "150")])).is_ok());
    assert!(br
        .admits("vm", &tap(&[("trunk", "100-120"), ("native", "199")]))
        .is_ok());
    let err = br.admits("vm", &tap(&[("access", "99")])).unwrap_err();
    assert!(err.contains("outside") && err.contains("100-199"), "{err}");
    assert!(br
        .admits("vm", &tap(&[("trunk", "150"), ("native", "5")]))
        .is_err());
    assert!(br.admits("vm", &tap(&[])).is_err());
    let uplink = PortSpec::parse(
        "up",
        &opts(&[("type", "afpacket"), ("iface", "eth0"), ("trunk", "1-4094")]),
    )
    .unwrap();
    assert!(br.admits("up", &uplink).is_ok());
    assert!(BridgeSpec::parse(&opts(&[("guest_vlans", "0-5")])).is_err());

    // A bridge on every worker takes afpacket, tap and null ports only.
    let all = BridgeSpec::parse(&opts(&[("worker", "all")])).unwrap();
    assert!(all.admits("up", &uplink).is_ok());
    assert!(all.admits("vm", &tap(&[("access", "150")])).is_ok());
    let vhost = PortSpec::parse(
        "vh",
        &opts(&[("type", "vhostuser"), ("socket", "/run/vh.sock")]),
    )
    .unwrap();
    let err = all.admits("vh", &vhost).unwrap_err();
    assert!(err.contains("vhostuser port cannot join"), "{err}");
}

#[test]
fn port_set_merges() {
    let cur = opts(&[
        ("type", "tap"),
        ("trunk", "10"),
        ("native", "5"),
        ("max_macs", "3"),
    ]);
    let m = PortSpec::merge_options(&cur, &opts(&[("access", "20")])).unwrap();
    assert_eq!(
        m,
        opts(&[("type", "tap"), ("access", "20"), ("max_macs", "3")])
    );
    let m = PortSpec::merge_options(&m, &opts(&[("trunk", "30"), ("max_macs", "")])).unwrap();
    assert_eq!(m, opts(&[("type", "tap"), ("trunk", "30")]));
    assert!(
        PortSpec::merge_options(&cur, &opts(&[("type", "afpacket")]))
            .unwrap_err()
            .contains("cannot change")
    );
    assert!(PortSpec::merge_options(&cur, &opts(&[("colour", "red")])).is_err());
}

#[test]
fn vxlan_options() {
    let base = [
        ("type", "vxlan"),
        ("local", "10.79.0.2"),
        ("remote", "10.79.0.1,10.79.0.3"),
        ("underlay", "up0"),
    ];
    let with = |extra: &[(&str, &str)]| {
        let mut o = opts(&base);
        o.extend(opts(extra));
        PortSpec::parse("vx0", &o)
    };
    let s = with(&[("vni", "42")]).unwrap();
    let cfg = s.vxlan.unwrap();
    assert_eq!(cfg.vnis, [(42, 0)]);
    assert_eq!(cfg.remotes.len(), 2);
    assert_eq!(
        (cfg.dst_port, cfg.prefix_len, cfg.underlay_mtu),
        (4789, 24, 1500)
    );
    assert_eq!(
        s.policy.vlan.to_string(),
        "trunk , untagged frames in network 0"
    );
    let s = with(&[("vni", "42"), ("vlan", "10")]).unwrap();
    assert_eq!(s.vxlan.unwrap().vnis, [(42, 10)]);
    let s = with(&[("vni", "100:10,200:20,300"), ("dst_port", "8472")]).unwrap();
    assert_eq!(
        s.policy.vlan.to_string(),
        "trunk 10,20, untagged frames in network 0"
    );
    for bad in [
        &[][..],
        &[("vni", "0")],
        &[("vni", "16777216")],
        &[("vni", "5,5")],
        &[("vni", "5:10,6:10")],
        &[("vni", "5,6"), ("vlan", "10")],
        &[("vni", "5"), ("access", "10")],
        &[("vni", "5"), ("iface", "eth0")],
        &[("vni", "5"), ("prefix", "33")],
        &[("vni", "5"), ("mtu", "100")],
        &[("vni", "5"), ("gateway", "nope")],
        &[("vni", "5"), ("remote", "10.79.0.2")],
        &[("vni", "5"), ("mac", "ff:ff:ff:ff:ff:ff")],
    ] {
        assert!(with(bad).is_err(), "{bad:?}");
    }
    let mut no_underlay = opts(&base);
    no_underlay.remove("underlay");
    no_underlay.insert("vni".into(), "5".into());
    assert!(PortSpec::parse("vx0", &no_underlay)
        .unwrap_err()
        .contains("underlay"));
}

#[test]
fn afxdp_ports() {
    use crate::port::afxdp::XdpMode;
    let base = [("type", "afxdp"), ("iface", "eth0")];
    let with = |extra: &[(&str, &str)]| {
        let mut o = opts(&base);
        o.extend(opts(extra));
        PortSpec::parse("x0", &o)
    };
    let s = with(&[]).unwrap();
    assert_eq!((s.kind, s.iface.as_str()), (PortKind::Afxdp, "eth0"));
    assert_eq!(s.afxdp, Some(AfXdpConfig::default()));
    let s = with(&[("queues", "2"), ("xdp_mode", "native"), ("access", "5")]).unwrap();
    let cfg = s.afxdp.unwrap();
    assert_eq!((cfg.queues, cfg.mode), (2, XdpMode::Native));
    assert!(with(&[("xdp_mode", "hw")])
        .unwrap_err()
        .contains("xdp_mode"));
    assert!(with(&[("queues", "0")]).unwrap_err().contains("queues"));
    assert!(with(&[("members", "a")])
        .unwrap_err()
        .contains("unknown option"));
    let afpacket_queues = opts(&[("type", "afpacket"), ("iface", "e"), ("queues", "2")]);
    assert!(PortSpec::parse("p", &afpacket_queues).is_err());
}

#[test]
fn bond_ports() {
    let o = opts(&[("type", "bond"), ("members", "eth0,eth1"), ("mode", "lacp")]);
    let b = PortSpec::parse("bond0", &o).unwrap();
    assert_eq!((b.kind, b.iface.as_str()), (PortKind::Bond, "bond0"));
    assert_eq!(b.ifaces(), ["eth0", "eth1"]);
    let up = PortSpec::parse("up", &opts(&[("type", "afpacket"), ("iface", "eth0")])).unwrap();
    assert_eq!(up.ifaces(), ["eth0"]);
    let mut iface = o.clone();
    iface.insert("iface".into(), "x".into());
    assert!(PortSpec::parse("bond0", &iface)
        .unwrap_err()
        .contains("unknown option"));
    let mut members_on_tap = opts(&[("type", "tap")]);
    members_on_tap.insert("members".into(), "a,b".into());
    assert!(PortSpec::parse("t", &members_on_tap).is_err());
}
