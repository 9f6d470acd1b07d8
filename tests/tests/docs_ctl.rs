//! docs/ctl.md's examples against real output: every table example has the
//! header vsctl prints, `port show` the same labels, and every JSON example
//! the same top-level fields (values differ from host to host).

use serde_json::Value;
use vswitch_tests::{bin, must, wait_for, Cable, Daemon, Host};

fn ctl_md() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/ctl.md");
    std::fs::read_to_string(path).expect("docs/ctl.md")
}

/// The output lines shown after `$ vsctl CMD` in a code block of the doc.
fn example(doc: &str, cmd: &str) -> Vec<String> {
    let prompt = format!("$ vsctl {cmd}");
    let mut lines = doc.lines();
    if !lines.by_ref().any(|l| l.trim_end() == prompt) {
        panic!("docs/ctl.md has no example `{prompt}`");
    }
    lines
        .take_while(|l| !l.starts_with("$ ") && !l.starts_with("```"))
        .map(str::to_string)
        .collect()
}

fn text(d: &Daemon, args: &[&str]) -> String {
    let vsctl = bin("vsctl");
    let socket = d.socket().to_str().unwrap().to_string();
    let mut argv = vec![vsctl.to_str().unwrap(), "--socket", &socket];
    argv.extend_from_slice(args);
    must(&argv)
}

fn top_level_keys(v: &Value) -> Vec<String> {
    let obj = match v {
        Value::Array(rows) => rows.first().and_then(Value::as_object),
        other => other.as_object(),
    };
    obj.unwrap_or_else(|| panic!("no object in {v:#}"))
        .keys()
        .cloned()
        .collect()
}

#[test]
fn ctl_md_examples_match_real_output() {
    let doc = ctl_md();
    let d = Daemon::start("docs");
    let a = Host::veth("docsa", "10.98.0.1/24");
    let b = Host::veth("docsb", "10.98.0.2/24");
    d.ctl(&["bridge", "add", "br0"]);
    a.attach(&d, "br0", "pa");
    b.attach(&d, "br0", "pb");
    a.ping(&b, 2).assert_no_loss(2);

    for cmd in ["bridge list", "port list", "fdb show br0", "stats"] {
        let args: Vec<&str> = cmd.split(' ').collect();
        let real = text(&d, &args);
        // Column names; the widths follow the data.
        let columns = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        let header = columns(real.lines().next().unwrap_or_default());
        let shown = example(&doc, cmd);
        assert_eq!(
            shown.first().map(|l| columns(l)),
            Some(header),
            "`vsctl {cmd}`: docs/ctl.md's table header differs from the real one"
        );
    }

    let labels = |out: &[String]| -> Vec<String> {
        out.iter()
            .filter_map(|l| l.split_once(':').map(|(k, _)| k.to_string()))
            .collect()
    };
    let real: Vec<String> = text(&d, &["port", "show", "pa"])
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(labels(&example(&doc, "port show pa")), labels(&real));

    for cmd in [
        "bridge list",
        "port list",
        "port show pa",
        "fdb show br0",
        "stats pa",
        "version",
    ] {
        let args: Vec<&str> = cmd.split(' ').collect();
        let mut json_args = vec!["--json"];
        json_args.extend_from_slice(&args);
        let real: Value = serde_json::from_str(&text(&d, &json_args))
            .unwrap_or_else(|e| panic!("vsctl --json {cmd}: {e}"));
        let shown = example(&doc, &format!("--json {cmd}")).join("\n");
        for key in top_level_keys(&real) {
            assert!(
                shown.contains(&format!("\"{key}\"")),
                "`vsctl --json {cmd}`: docs/ctl.md's example lacks field {key:?}"
            );
        }
    }
}

/// Table headers (the line after the first of each example) and JSON fields
/// of the bond, LACP and VXLAN views.
#[test]
fn ctl_md_bond_and_vxlan_examples_match_real_output() {
    let doc = ctl_md();
    let d = Daemon::start("docs-bond");
    let (c1, c2, c3) = (Cable::new(), Cable::new(), Cable::new());
    for b in ["br0", "br1", "ov"] {
        d.ctl(&["bridge", "add", b]);
    }
    let members = |x: &str, y: &str| format!("members={x},{y}");
    let m0 = members(&c1.a, &c2.a);
    let m1 = members(&c1.b, &c2.b);
    for (br, name, m) in [("br0", "bond0", &m0), ("br1", "bond1", &m1)] {
        d.ctl(&[
            "port",
            "add",
            br,
            name,
            "type=bond",
            m,
            "mode=lacp",
            "lacp_rate=fast",
        ]);
    }
    let up = format!("iface={}", c3.a);
    d.ctl(&["port", "add", "br0", "up0", "type=afpacket", &up]);
    d.ctl(&[
        "port",
        "add",
        "ov",
        "vx0",
        "type=vxlan",
        "local=192.0.2.11",
        "remote=192.0.2.12",
        "vni=42",
        "underlay=up0",
    ]);
    wait_for(
        std::time::Duration::from_secs(10),
        "LACP to converge",
        || {
            let out = text(&d, &["bond", "show", "bond0"]);
            (out.matches("yes         yes").count() == 2).then_some(())
        },
    );
    let columns = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    for cmd in ["bond show bond0", "lacp show bond0", "vxlan show vx0"] {
        let args: Vec<&str> = cmd.split(' ').collect();
        let real = text(&d, &args);
        let real_header = real
            .lines()
            .nth(if cmd.starts_with("vxlan") { 2 } else { 1 });
        let shown = example(&doc, cmd);
        let shown_header = shown.get(if cmd.starts_with("vxlan") { 2 } else { 1 });
        assert_eq!(
            shown_header.map(|l| columns(l)),
            real_header.map(columns),
            "`vsctl {cmd}`: docs/ctl.md's table header differs from the real one"
        );
    }
    for cmd in ["bond show bond0", "vxlan show vx0"] {
        let args: Vec<&str> = cmd.split(' ').collect();
        let mut json_args = vec!["--json"];
        json_args.extend_from_slice(&args);
        let real: Value = serde_json::from_str(&text(&d, &json_args))
            .unwrap_or_else(|e| panic!("vsctl --json {cmd}: {e}"));
        let shown = example(&doc, &format!("--json {cmd}")).join("\n");
        for key in top_level_keys(&real) {
            assert!(
                shown.contains(&format!("\"{key}\"")),
                "`vsctl --json {cmd}`: docs/ctl.md's example lacks field {key:?}"
            );
        }
    }
}
