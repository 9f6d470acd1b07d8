use super::*;
use crate::config::apply::{parse, validate};

const BASE: &str = r#"
version: 1
bridges:
  - name: br0
    options: {aging: 60}
    ports:
      - name: up0
        options: {type: afpacket, iface: eth1, trunk: "10,20"}
      - name: vm1
        options: {type: tap, access: 10}
      - name: vm2
        options: {type: tap, access: 20}
      - name: vx0
        options: {type: vxlan, local: 10.0.0.1, remote: 10.0.0.2, vni: 42, underlay: up0}
    static_fdb:
      - {vlan: 10, mac: "52:54:00:00:00:01", port: vm1}
"#;

fn cfg(text: &str) -> Config {
    let c = parse(text).unwrap();
    validate(&c).unwrap();
    c
}

fn texts(running: &str, target: &str) -> Vec<String> {
    plan(&cfg(running), &cfg(target))
        .iter()
        .map(step_text)
        .collect()
}

#[test]
fn no_change_is_an_empty_plan() {
    assert!(texts(BASE, BASE).is_empty());
    // Order of bridges, ports and keys does not matter.
    let mut reordered = cfg(BASE);
    reordered.bridges[0].ports.reverse();
    assert!(plan(&cfg(BASE), &reordered).is_empty());
}

#[test]
fn from_nothing_bridges_then_underlays_then_tunnels() {
    let empty = "version: 1\nbridges: []\n";
    assert_eq!(
        texts(empty, BASE),
        [
            "bridge add br0 aging=60",
            "port add br0 up0 iface=eth1 trunk=10,20 type=afpacket",
            "port add br0 vm1 access=10 type=tap",
            "port add br0 vm2 access=20 type=tap",
            "port add br0 vx0 local=10.0.0.1 remote=10.0.0.2 type=vxlan underlay=up0 vni=42",
            "fdb add br0 52:54:00:00:00:01 vm1 vlan=10",
        ]
    );
}

#[test]
fn policy_change_is_an_in_place_set() {
    let t = BASE.replace(
        "{type: tap, access: 20}",
        "{type: tap, trunk: 30-40, max_macs: 5}",
    );
    assert_eq!(
        texts(BASE, &t),
        ["port set vm2 access= max_macs=5 trunk=30-40"]
    );
    let t = BASE.replace("options: {aging: 60}", "options: {aging: 90}");
    assert_eq!(texts(BASE, &t), ["bridge set br0 aging=90"]);
}

#[test]
fn iface_change_is_delete_and_add() {
    let t = BASE.replace(
        "{type: tap, access: 20}",
        "{type: tap, iface: tap9, access: 20}",
    );
    assert_eq!(
        texts(BASE, &t),
        [
            "port del br0 vm2",
            "port add br0 vm2 access=20 iface=tap9 type=tap"
        ]
    );
}

#[test]
fn rebuilt_underlay_takes_its_tunnels_along() {
    let t = BASE.replace("iface: eth1,", "iface: eth7,");
    let steps = texts(BASE, &t);
    assert_eq!(
        steps,
        [
            "port del br0 vx0",
            "port del br0 up0",
            "port add br0 up0 iface=eth7 trunk=10,20 type=afpacket",
            "port add br0 vx0 local=10.0.0.1 remote=10.0.0.2 type=vxlan underlay=up0 vni=42",
        ]
    );
}

#[test]
fn removed_bridge_loses_its_ports_first() {
    let two = format!(
        "{BASE}  - name: br1\n    ports:\n      - name: p9\n        options: {{type: afpacket, iface: eth9}}\n"
    );
    assert_eq!(texts(&two, BASE), ["port del br1 p9", "bridge del br1"]);
    assert_eq!(
        texts(BASE, &two),
        ["bridge add br1", "port add br1 p9 iface=eth9 type=afpacket"]
    );
}

#[test]
fn static_entries_go_before_and_come_after() {
    let t = BASE.replace(
        "{vlan: 10, mac: \"52:54:00:00:00:01\", port: vm1}",
        "{vlan: 20, mac: \"52:54:00:00:00:01\", port: vm2}",
    );
    assert_eq!(
        texts(BASE, &t),
        [
            "fdb del br0 52:54:00:00:00:01 vlan=10",
            "fdb add br0 52:54:00:00:00:01 vm2 vlan=20"
        ]
    );
    // An entry of a rebuilt port comes back after the port.
    let t = BASE.replace(
        "{type: tap, access: 10}",
        "{type: tap, iface: t1, access: 10}",
    );
    assert_eq!(
        texts(BASE, &t),
        [
            "port del br0 vm1",
            "port add br0 vm1 access=10 iface=t1 type=tap",
            "fdb add br0 52:54:00:00:00:01 vm1 vlan=10"
        ]
    );
}

#[test]
fn moved_port_and_table_size_rebuild() {
    let two = format!("{BASE}  - name: br1\n");
    let moved = two
        .replace(
            "      - name: vm2\n        options: {type: tap, access: 20}\n",
            "",
        )
        .replace(
            "  - name: br1\n",
            "  - name: br1\n    ports:\n      - name: vm2\n        options: {type: tap, access: 20}\n",
        );
    assert_eq!(
        texts(&two, &moved),
        ["port del br0 vm2", "port add br1 vm2 access=20 type=tap"]
    );
    let bigger = two.replace(
        "  - name: br1\n",
        "  - name: br1\n    options: {mac_table_size: 1024}\n",
    );
    let moved_big = moved.replace(
        "  - name: br1\n",
        "  - name: br1\n    options: {mac_table_size: 1024}\n",
    );
    assert_eq!(
        texts(&moved, &moved_big),
        [
            "port del br1 vm2",
            "bridge del br1",
            "bridge add br1 mac_table_size=1024",
            "port add br1 vm2 access=20 type=tap"
        ]
    );
    assert_eq!(
        texts(&two, &bigger),
        ["bridge del br1", "bridge add br1 mac_table_size=1024"]
    );
    let on_one = format!(
        "{BASE}  - name: br1\n    options: {{worker: 1}}\n    ports:\n      - name: up1\n        options: {{type: afpacket, iface: eth2}}\n"
    );
    let on_all = on_one.replace("{worker: 1}", "{worker: all}");
    assert_eq!(
        texts(&on_one, &on_all),
        [
            "port del br1 up1",
            "bridge del br1",
            "bridge add br1 worker=all",
            "port add br1 up1 iface=eth2 type=afpacket"
        ]
    );
    let bond_on_all = on_all.replace(
        "{type: afpacket, iface: eth2}",
        "{type: bond, members: \"eth2,eth3\", mode: lacp}",
    );
    let err = validate(&parse(&bond_on_all).unwrap()).unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot join a bridge on every worker"),
        "{err}"
    );
}

#[test]
fn guest_range_goes_where_the_ports_allow() {
    let ranged = |range: &str, a: &str, b: &str| {
        BASE.replace(
            "options: {aging: 60}",
            &format!("options: {{aging: 60, guest_vlans: \"{range}\"}}"),
        )
        .replace(
            "{type: tap, access: 10}",
            &format!("{{type: tap, access: {a}}}"),
        )
        .replace(
            "{type: tap, access: 20}",
            &format!("{{type: tap, access: {b}}}"),
        )
        .replace("{vlan: 10,", &format!("{{vlan: {a},"))
    };
    // Widening: before the ports change.
    assert_eq!(
        texts(&ranged("1-20", "10", "20"), &ranged("1-40", "10", "30")),
        ["bridge set br0 guest_vlans=1-40", "port set vm2 access=30"]
    );
    // Narrowing away from a port that moves inside the old range: after.
    assert_eq!(
        texts(&ranged("1-20", "10", "20"), &ranged("1-15", "10", "12")),
        ["port set vm2 access=12", "bridge set br0 guest_vlans=1-15"]
    );
    // Neither: lifted for the change.
    let steps = texts(&ranged("1-20", "10", "20"), &ranged("30-40", "35", "36"));
    assert_eq!(
        steps.first().unwrap(),
        "fdb del br0 52:54:00:00:00:01 vlan=10"
    );
    assert!(
        steps.contains(&"bridge set br0 guest_vlans=".to_string()),
        "{steps:?}"
    );
    assert_eq!(
        steps.last().unwrap(),
        "fdb add br0 52:54:00:00:00:01 vm1 vlan=35"
    );
    assert_eq!(steps[steps.len() - 2], "bridge set br0 guest_vlans=30-40");
}

#[test]
fn evpn_is_set_last_changed_in_place_and_removed_first() {
    let with = |opts: &str| format!("{BASE}    evpn: {{{opts}}}\n");
    let on = with("gobgp: \"127.0.0.1:50051\", asn: 65000, router_id: 10.0.0.1");
    let steps = texts(BASE, &on);
    assert_eq!(
        steps,
        ["evpn set br0 asn=65000 gobgp=127.0.0.1:50051 router_id=10.0.0.1"]
    );
    assert!(texts(&on, &on).is_empty());
    let changed = with("gobgp: \"127.0.0.1:50051\", asn: 65001, router_id: 10.0.0.1, max_macs: 10");
    assert_eq!(texts(&on, &changed), ["evpn set br0 asn=65001 max_macs=10"]);
    let without_vxlan = BASE.replace(
        "      - name: vx0\n        options: {type: vxlan, local: 10.0.0.1, remote: 10.0.0.2, vni: 42, underlay: up0}\n",
        "",
    );
    let steps = texts(&on, &without_vxlan);
    assert_eq!(steps.first().map(String::as_str), Some("evpn del br0"));
    assert!(steps.iter().any(|s| s == "port del br0 vx0"));
    // A bad option is caught before anything runs.
    let bad = with("gobgp: nowhere, asn: 65000, router_id: 10.0.0.1");
    let e = validate(&parse(&bad).unwrap()).unwrap_err();
    assert!(e.contains("gobgp="), "{e}");
}
