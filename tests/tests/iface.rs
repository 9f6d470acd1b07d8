//! `vsctl iface list`: the host's interfaces with their state, and what of the switch uses each.

use std::time::Duration;

use serde_json::Value;
use vswitch_tests::{entries_of, sh, Daemon, Host, Netns, Veth};

fn row<'a>(rows: &'a [Value], name: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no row for {name} in {rows:#?}"))
}

#[test]
fn lists_interfaces_with_their_users() {
    let d = Daemon::start("iface-list");
    let a = Host::veth("ifla", "10.78.9.1/24");
    d.ctl(&["bridge", "add", "br0"]);
    a.attach(&d, "br0", "pa");
    let ns = Netns::new("iflb");
    let m1 = Veth::bare(&ns, "m1");
    let m2 = Veth::bare(&ns, "m2");
    let members = format!("members={},{}", m1.root(), m2.root());
    d.ctl(&[
        "port",
        "add",
        "br0",
        "bond0",
        "type=bond",
        &members,
        "mode=active-backup",
    ]);
    sh(&["ip", "link", "set", m2.root(), "mtu", "1400"]).check();
    sh(&["ip", "link", "set", m2.root(), "down"]).check();
    d.wait_ports_up(Duration::from_secs(10));

    let rows = entries_of(d.ctl(&["iface", "list"]));
    let lo = row(&rows, "lo");
    assert_eq!(lo["kind"], "loopback");
    assert!(lo["bridge"].is_null(), "{lo}");

    let pa = row(&rows, a.root_if());
    assert_eq!(pa["kind"], "veth", "{pa}");
    assert_eq!(
        (&pa["bridge"], &pa["port"], &pa["role"]),
        (&"br0".into(), &"pa".into(), &"iface".into()),
        "{pa}"
    );
    assert_eq!(
        pa["admin_up"], true,
        "attaching brings the port's link up: {pa}"
    );
    assert_eq!(pa["carrier"], true, "{pa}");
    assert_eq!(pa["mtu"], 1500);
    let mac = std::fs::read_to_string(format!("/sys/class/net/{}/address", a.root_if())).unwrap();
    assert_eq!(pa["mac"], mac.trim(), "{pa}");
    assert_eq!(pa["speed_mbps"], 10000, "veth reports 10 Gb/s: {pa}");

    let m = row(&rows, m1.root());
    assert_eq!(
        (&m["port"], &m["role"]),
        (&"bond0".into(), &"bond member".into()),
        "{m}"
    );
    let m = row(&rows, m2.root());
    assert_eq!(m["role"], "bond member", "{m}");
    assert_eq!(
        (&m["admin_up"], &m["carrier"], &m["mtu"]),
        (&false.into(), &false.into(), &1400.into()),
        "{m}"
    );

    // The table has a row per interface, with the same facts.
    let table = sh(&[
        vswitch_tests::bin("vsctl").to_str().unwrap(),
        "--socket",
        d.socket().to_str().unwrap(),
        "iface",
        "list",
    ])
    .check()
    .stdout;
    let header = table.lines().next().unwrap_or("");
    assert!(
        header.starts_with("IFACE") && header.contains("DRIVER") && header.contains("PORT"),
        "{table}"
    );
    let line = table
        .lines()
        .find(|l| l.starts_with(&format!("{} ", m1.root())))
        .unwrap_or_else(|| panic!("no line for {} in\n{table}", m1.root()));
    assert!(
        line.contains("bond0 (member)") && line.contains("br0"),
        "{line}"
    );

    // docs/ctl.md shows this table's header and a JSON row with the same keys.
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/ctl.md"),
    )
    .expect("docs/ctl.md");
    let words: Vec<&str> = header.split_whitespace().collect();
    assert!(
        doc.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == words),
        "docs/ctl.md lacks the iface list header {header:?}"
    );
    let keys: Vec<&String> = pa.as_object().unwrap().keys().collect();
    let section = &doc[doc
        .find("## Host interfaces")
        .expect("Host interfaces section")..];
    for k in keys {
        assert!(
            section.contains(&format!("\"{k}\":")),
            "docs/ctl.md's iface list JSON lacks {k:?}"
        );
    }
}
