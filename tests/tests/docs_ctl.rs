//! docs/ctl.md's examples against real output: every table example has the
//! header vsctl prints, `port show` the same labels, and every JSON example
//! the same top-level fields (values differ from host to host).

use serde_json::Value;
use vswitch_tests::{bin, must, Daemon, Host};

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
