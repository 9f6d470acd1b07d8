//! Configuration survives a restart of the daemon.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use vswitch_tests::{normalize, unique_ifname, Daemon, Host};

/// The configuration as the daemon reports it, minus what may differ across a restart: port
/// status, entry ages, learned entries and the entry counts that include them.
fn config_snapshot(d: &Daemon) -> Value {
    let bridges = d.ctl(&["bridge", "list"]);
    let mut fdb = serde_json::Map::new();
    for br in bridges.as_array().expect("bridge list is an array") {
        let name = br["name"].as_str().expect("bridge name").to_string();
        let statics: Vec<Value> = d
            .fdb(&name)
            .into_iter()
            .filter(|e| e["type"] == "static")
            .collect();
        fdb.insert(name, Value::Array(statics));
    }
    let strip = ["status", "age_secs", "fdb_entries"];
    json!({
        "bridges": normalize(&bridges, &strip),
        "ports": normalize(&d.ctl(&["port", "list"]), &strip),
        "fdb": normalize(&Value::Object(fdb), &strip),
    })
}

/// Whether `path` is gone within 3 s: the daemon may close a tap (which removes it) just after
/// it replied or exited.
fn gone_soon(path: &str) -> bool {
    vswitch_tests::poll(Duration::from_secs(3), Duration::from_millis(50), || {
        (!Path::new(path).exists()).then_some(())
    })
    .is_some()
}

#[test]
fn restart_restores_configuration() {
    let mut d = Daemon::start("restart");
    d.ctl(&["bridge", "add", "br0", "aging=120", "mac_table_size=1024"]);
    d.ctl(&["bridge", "add", "br1"]);
    d.ctl(&["bridge", "set", "br1", "aging=45"]);
    let a = Host::veth("rsta", "10.77.30.1/24");
    let b = Host::veth("rstb", "10.77.30.2/24");
    a.attach(&d, "br0", "pa");
    b.attach(&d, "br0", "pb");
    // A tap left in the root namespace: the daemon removes it on stop and must re-create it.
    let tap = unique_ifname("vp");
    d.ctl(&[
        "port",
        "add",
        "br1",
        "pt",
        "type=tap",
        &format!("iface={tap}"),
    ]);
    d.ctl(&["fdb", "add", "br0", "02:77:00:00:00:01", "pa"]);
    d.ctl(&["fdb", "add", "br0", "02:77:00:00:00:02", "pb", "vlan=7"]);
    d.ctl(&["fdb", "add", "br1", "02:77:00:00:00:03", "pt"]);
    d.wait_ports_up(Duration::from_secs(10));
    a.ping(&b, 3).assert_no_loss(3);

    let before = config_snapshot(&d);
    assert_eq!(
        before["bridges"].as_array().map(Vec::len),
        Some(2),
        "{before:#}"
    );
    assert_eq!(
        before["ports"].as_array().map(Vec::len),
        Some(3),
        "{before:#}"
    );
    let tap_path = format!("/sys/class/net/{tap}");

    let status = d.stop();
    assert!(
        status.success(),
        "vswitchd did not exit cleanly on SIGTERM: {status}"
    );
    assert!(!d.socket().exists(), "vswitchd left its socket behind");
    assert!(
        d.state_dir().join("config.json").is_file(),
        "no STATE_DIR/config.json after stop"
    );
    assert!(
        gone_soon(&tap_path),
        "stopping vswitchd left its tap {tap} behind"
    );

    d.start_again();
    let after = config_snapshot(&d);
    assert!(
        after == before,
        "configuration changed across restart\nbefore: {before:#}\nafter: {after:#}"
    );
    d.wait_ports_up(Duration::from_secs(10));
    assert!(
        Path::new(&tap_path).exists(),
        "tap {tap} not re-created after restart"
    );
    a.ping(&b, 3).assert_no_loss(3);
    b.ping(&a, 3).assert_no_loss(3);

    // Deleting the tap port removes the tap it created.
    d.ctl(&["port", "del", "br1", "pt"]);
    assert!(gone_soon(&tap_path), "port del left tap {tap} behind");
    d.assert_alive();
}

#[test]
fn restart_with_vanished_interface() {
    let mut d = Daemon::start("rst-vanish");
    d.ctl(&["bridge", "add", "br0"]);
    let a = Host::veth("rsva", "10.77.31.1/24");
    let mut b = Host::veth("rsvb", "10.77.31.2/24");
    a.attach(&d, "br0", "pa");
    b.attach(&d, "br0", "pb");
    d.wait_ports_up(Duration::from_secs(10));

    let status = d.stop();
    assert!(
        status.success(),
        "vswitchd did not exit cleanly on SIGTERM: {status}"
    );
    let pb_iface = b.root_if().to_string();
    b.unplug(); // B's veth disappears while the daemon is down.
    d.start_again();

    let ports = d.ctl(&["port", "list"]);
    let port = |name: &str| -> Value {
        ports
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name))
            .unwrap_or_else(|| panic!("port {name} not restored: {ports:#}"))
            .clone()
    };
    let pb = port("pb");
    assert_eq!(pb["bridge"], "br0", "{pb}");
    assert_eq!(pb["iface"], pb_iface.as_str(), "{pb}");
    assert_ne!(
        pb["status"], "up",
        "port pb is 'up' though its interface is gone: {pb}"
    );
    assert!(pb["status"].is_string(), "{pb}");
    assert_eq!(port("pa")["bridge"], "br0");
    let bridges = d.ctl(&["bridge", "list"]);
    assert_eq!(bridges[0]["name"], "br0", "{bridges}");

    // pa still comes up, and the broken port can be removed.
    vswitch_tests::wait_for(Duration::from_secs(10), "port pa up", || {
        let ports = d.ctl(&["port", "list", "br0"]);
        ports
            .as_array()?
            .iter()
            .any(|p| p["name"] == "pa" && p["status"] == "up")
            .then_some(())
    });
    d.ctl(&["port", "del", "br0", "pb"]);
    let ports = d.ctl(&["port", "list"]);
    assert_eq!(ports.as_array().map(Vec::len), Some(1), "{ports:#}");
    d.assert_alive();
}
