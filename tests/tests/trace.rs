//! `vsctl trace` against real traffic: the ports trace names are the ports
//! the frames reach, and tracing changes nothing.

use serde_json::Value;
use vswitch_tests::{Daemon, Host};

fn outputs(report: &Value) -> Vec<String> {
    report["outputs"]
        .as_array()
        .unwrap_or_else(|| panic!("no outputs in {report:#}"))
        .iter()
        .map(|o| o["port"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn tx(d: &Daemon, port: &str) -> u64 {
    d.tx_packets(port)
}

#[test]
fn trace_names_the_ports_real_frames_reach() {
    let d = Daemon::start("trace");
    let a = Host::veth("trca", "10.97.0.1/24");
    let b = Host::veth("trcb", "10.97.0.2/24");
    let c = Host::veth("trcc", "10.97.0.3/24");
    d.ctl(&["bridge", "add", "br0"]);
    a.attach(&d, "br0", "pa");
    b.attach(&d, "br0", "pb");
    c.attach(&d, "br0", "pc");
    a.pin_neighbor(&b);
    b.pin_neighbor(&a);

    // Before anything is learned: A -> B floods.
    let src = format!("src={}", a.mac);
    let dst = format!("dst={}", b.mac);
    let flood = d.ctl(&["trace", "br0", "in_port=pa", &src, &dst]);
    assert_eq!(outputs(&flood), ["pb", "pc"], "{flood:#}");
    assert_eq!(flood["vlan"], 0);
    assert!(flood["drop"].is_null());

    a.ping(&b, 3).assert_no_loss(3);
    let fdb_before = d.fdb("br0");
    let stats_before = d.ctl(&["stats"]);

    let hit = d.ctl(&["trace", "br0", "in_port=pa", &src, &dst]);
    assert_eq!(outputs(&hit), ["pb"], "{hit:#}");
    let lookup = hit["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "lookup")
        .unwrap_or_else(|| panic!("no lookup stage: {hit:#}"));
    assert!(
        lookup["decision"].as_str().unwrap().contains("pb"),
        "{lookup}"
    );

    // Tracing learned, sent and counted nothing.
    assert_eq!(normalize_ages(d.fdb("br0")), normalize_ages(fdb_before));
    assert_eq!(d.ctl(&["stats"]), stats_before);

    // Real frames go where trace said: pb, not pc.
    let (pb0, pc0) = (tx(&d, "pb"), tx(&d, "pc"));
    a.ping(&b, 5).assert_no_loss(5);
    assert!(tx(&d, "pb") >= pb0 + 5);
    assert_eq!(tx(&d, "pc"), pc0, "pc got frames trace did not name");

    // A drop names its counter; bad requests are clear errors.
    d.ctl(&["port", "set", "pa", "allowed_macs=02:00:00:00:00:99"]);
    let refused = d.ctl(&["trace", "br0", "in_port=pa", &src, &dst]);
    assert_eq!(refused["drop"], "src_mac_not_allowed", "{refused:#}");
    let err = d.ctl_err(&["trace", "br0", "in_port=nope", &src, &dst]);
    assert!(err.contains("nope"), "{err}");
    let err = d.ctl_err(&["trace", "br0", "in_port=pa", "hex=zz"]);
    assert!(err.contains("hex"), "{err}");

    // A whole frame as hex, and the table form.
    let hex = format!(
        "hex=ffffffffffff{}0806{}",
        b.mac.replace(':', ""),
        "00".repeat(46)
    );
    let arp = d.ctl(&["trace", "br0", "in_port=pb", &hex]);
    assert_eq!(outputs(&arp), ["pa", "pc"], "{arp:#}");
    let vsctl = vswitch_tests::bin("vsctl");
    let socket = d.socket().to_str().unwrap().to_string();
    let text = vswitch_tests::must(&[
        vsctl.to_str().unwrap(),
        "--socket",
        &socket,
        "trace",
        "br0",
        "in_port=pb",
        &hex,
    ]);
    eprintln!("{text}");
    assert!(text.contains("=> out pa, pc"), "{text}");
}

/// Entries' ages move with the clock; compare the rest.
fn normalize_ages(mut rows: Vec<Value>) -> Vec<Value> {
    for r in &mut rows {
        if let Some(o) = r.as_object_mut() {
            o.remove("age");
            o.remove("age_secs");
        }
    }
    rows
}
