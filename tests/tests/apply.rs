//! Declarative host configuration: `vsctl apply`, `apply --dry-run`, `export`, and
//! `vswitchd --check-config`, against a real daemon and real traffic.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use vswitch_tests::{bin, entries_of, sh, CmdOutput, Daemon, Host};

/// A temp file removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str, ext: &str, text: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!(
            "vst-apply-{tag}-{}-{}.{ext}",
            std::process::id(),
            vswitch_tests::seq()
        ));
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("temp path is UTF-8")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `vswitchd --check-config FILE`.
fn check_config(file: &TempFile) -> CmdOutput {
    let vswitchd = bin("vswitchd");
    sh(&[
        vswitchd.to_str().expect("UTF-8 path"),
        "--check-config",
        file.path(),
    ])
}

fn afpacket(iface: &str) -> Value {
    json!({"type": "afpacket", "iface": iface})
}

fn config(bridges: Value) -> String {
    serde_json::to_string_pretty(&json!({"version": 1, "bridges": bridges})).unwrap()
}

/// The step lines of `vsctl --json apply [--dry-run] FILE`.
fn steps(d: &Daemon, file: &TempFile, dry_run: bool) -> Vec<String> {
    let mut args = vec!["apply", file.path()];
    if dry_run {
        args.insert(1, "--dry-run");
    }
    entries_of(d.ctl(&args))
        .iter()
        .map(|s| s["step"].as_str().expect("step text").to_string())
        .collect()
}

#[test]
fn a_changed_config_leaves_unchanged_ports_forwarding() {
    let d = Daemon::start("apply-live");
    let a = Host::veth("apla", "10.78.1.1/24");
    let b = Host::veth("aplb", "10.78.1.2/24");
    let c = Host::veth("aplc", "10.78.1.3/24");
    let e = Host::veth("aple", "10.78.2.1/24");
    let first = TempFile::new(
        "first",
        "json",
        &config(json!([{
            "name": "br0",
            "ports": [
                {"name": "pa", "options": afpacket(a.root_if())},
                {"name": "pb", "options": afpacket(b.root_if())},
                {"name": "pc", "options": afpacket(c.root_if())},
            ]
        }])),
    );
    assert_eq!(steps(&d, &first, false).len(), 4, "bridge + three ports");
    d.wait_ports_up(Duration::from_secs(10));
    a.ping(&b, 3).assert_no_loss(3);

    // Second config: pc gets a policy, a new bridge gets a port; pa and pb are untouched.
    let mut pc = afpacket(c.root_if());
    pc["max_macs"] = json!("8");
    let second = TempFile::new(
        "second",
        "json",
        &config(json!([
            {
                "name": "br0",
                "ports": [
                    {"name": "pa", "options": afpacket(a.root_if())},
                    {"name": "pb", "options": afpacket(b.root_if())},
                    {"name": "pc", "options": pc},
                ]
            },
            {"name": "br1", "ports": [{"name": "pe", "options": afpacket(e.root_if())}]}
        ])),
    );
    let plan = steps(&d, &second, true);
    assert_eq!(
        plan,
        [
            "bridge add br1".to_string(),
            "port set pc max_macs=8".to_string(),
            format!("port add br1 pe iface={} type=afpacket", e.root_if()),
        ],
        "dry run plan"
    );
    assert_eq!(
        d.ctl(&["port", "list"]).as_array().map(Vec::len),
        Some(3),
        "the dry run changed nothing"
    );

    const COUNT: u32 = 300;
    let stats = std::thread::scope(|s| {
        let pinger = s.spawn(|| a.ns.ping_every(&b.ip, COUNT, 0.01));
        std::thread::sleep(Duration::from_millis(800));
        assert_eq!(steps(&d, &second, false), plan);
        pinger.join().expect("ping thread")
    });
    eprintln!(
        "A->B during apply: {}/{} replies",
        stats.received, stats.transmitted
    );
    stats.assert_no_loss(COUNT);
    let pc_row = d.ctl(&["port", "show", "pc"]);
    assert_eq!(pc_row["options"]["max_macs"], "8", "{pc_row}");
    d.wait_ports_up(Duration::from_secs(10));
    // The applied file is what export gives back; applying it again does nothing.
    let exported = d.ctl(&["export"]);
    let applied: Value =
        serde_json::from_str(&std::fs::read_to_string(&second.0).unwrap()).unwrap();
    assert_eq!(exported["bridges"][1]["name"], "br1");
    assert_eq!(
        exported["bridges"][0]["ports"],
        applied["bridges"][0]["ports"]
    );
    assert!(steps(&d, &second, false).is_empty());
}

#[test]
fn invalid_configs_change_nothing() {
    let d = Daemon::start("apply-bad");
    let a = Host::veth("aplba", "10.78.3.1/24");
    let b = Host::veth("aplbb", "10.78.3.2/24");
    let good = json!([{
        "name": "br0",
        "ports": [
            {"name": "pa", "options": afpacket(a.root_if())},
            {"name": "pb", "options": afpacket(b.root_if())},
        ]
    }]);
    let file = TempFile::new("good", "json", &config(good.clone()));
    steps(&d, &file, false);
    let before = d.ctl(&["export"]);

    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        config(v)
    };
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            with(&|v| v[0]["ports"][1]["optons"] = json!({})),
            vec!["bridges[0].ports[1]", "optons"],
        ),
        (
            with(&|v| v[0]["ports"][0]["options"]["trunk"] = json!("5000")),
            vec!["\"pa\"", "trunk", "5000"],
        ),
        (
            with(&|v| v[0]["ports"][1]["options"]["iface"] = json!(a.root_if())),
            vec!["\"pb\"", "iface", a.root_if()],
        ),
        (
            with(&|v| {
                v.as_array_mut()
                    .unwrap()
                    .push(json!({"name": "br1", "ports": [
                        {"name": "pa", "options": {"type": "tap", "iface": "vst-dup0"}}
                    ]}))
            }),
            vec!["\"pa\"", "appears twice"],
        ),
        (
            with(&|v| {
                v[0]["ports"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"name": "px", "options": afpacket("vst-nosuch0")}))
            }),
            vec!["\"px\"", "vst-nosuch0"],
        ),
    ];
    for (text, want) in cases {
        let bad = TempFile::new("bad", "json", &text);
        let err = d.ctl_err(&["apply", bad.path()]);
        for w in &want {
            assert!(err.contains(w), "error {err:?} should name {w:?}");
        }
        let offline = check_config(&bad);
        if !offline.success() {
            assert!(
                offline.stderr.contains(want[0]),
                "{}",
                offline.describe_failure()
            );
        } else {
            // Only what needs the host (an interface that is not there) passes offline.
            assert!(err.contains("no interface"), "check-config accepted {text}");
        }
        assert_eq!(
            d.ctl(&["export"]),
            before,
            "{err}: the configuration changed"
        );
    }
    // YAML with an unknown field, through the same path.
    let yaml = TempFile::new(
        "bad",
        "yaml",
        "version: 1\nbridges:\n  - name: br0\n    colour: red\n",
    );
    let err = d.ctl_err(&["apply", yaml.path()]);
    assert!(
        err.contains("bridges[0]") && err.contains("colour"),
        "{err}"
    );
    assert_eq!(d.ctl(&["export"]), before);
    a.ping(&b, 2).assert_no_loss(2);
}

#[test]
fn export_then_apply_is_a_no_op() {
    let d = Daemon::start("apply-export");
    let a = Host::veth("aplea", "10.78.4.1/24");
    d.ctl(&["bridge", "add", "br0", "aging=30"]);
    a.attach(&d, "br0", "pa");
    d.ctl(&["port", "set", "pa", "trunk=10-20", "native=5"]);
    d.ctl(&["fdb", "add", "br0", "52:54:00:00:00:09", "pa", "vlan=10"]);
    let json_text = serde_json::to_string_pretty(&d.ctl(&["export"])).unwrap();
    let json_file = TempFile::new("exp", "json", &json_text);
    assert!(steps(&d, &json_file, true).is_empty());
    assert!(steps(&d, &json_file, false).is_empty());
    let vsctl = bin("vsctl");
    let socket = d.socket().to_str().expect("UTF-8 path").to_string();
    let yaml = sh(&[
        vsctl.to_str().unwrap(),
        "--socket",
        &socket,
        "export",
        "--yaml",
    ])
    .check()
    .stdout;
    assert!(yaml.contains("version: 1"), "{yaml}");
    let yaml_file = TempFile::new("exp", "yaml", &yaml);
    assert!(steps(&d, &yaml_file, true).is_empty());
    let check = check_config(&yaml_file).check();
    assert!(check.stdout.contains("valid"), "{}", check.stdout);
}

/// The example in docs/config.md validates offline, plans against a daemon, applies, and
/// exports back to itself.
#[test]
fn the_documented_example_applies() {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/config.md");
    let text = std::fs::read_to_string(&doc).expect("docs/config.md");
    let example = doc_example(&text);
    let file = TempFile::new("doc", "yaml", &example);
    let check = check_config(&file).check();
    assert!(check.stdout.contains("valid"), "{}", check.stdout);

    // Give the example's interfaces real veths, under unique names.
    let d = Daemon::start("apply-doc");
    let ns = vswitch_tests::Netns::new("apldoc");
    let mut localized = example.clone();
    let mut veths = Vec::new();
    for name in example_ifaces(&example) {
        let v = vswitch_tests::Veth::bare(&ns, &format!("x{}", veths.len()));
        localized = replace_word(&localized, &name, v.root());
        veths.push(v);
    }
    let file = TempFile::new("doc-local", "yaml", &localized);
    let plan = steps(&d, &file, true);
    assert!(
        plan.first().is_some_and(|s| s.starts_with("bridge add")),
        "{plan:?}"
    );
    assert_eq!(steps(&d, &file, false), plan);
    assert!(
        steps(&d, &file, true).is_empty(),
        "applied example re-plans empty"
    );
}

/// The ```yaml block after the `<!-- example: host.yaml -->` marker.
fn doc_example(text: &str) -> String {
    let start = text
        .find("<!-- example: host.yaml -->")
        .expect("docs/config.md has no `<!-- example: host.yaml -->` marker");
    let rest = &text[start..];
    let open = rest
        .find("```yaml\n")
        .expect("```yaml block after the marker")
        + 8;
    let close = rest[open..].find("```").expect("closing ```") + open;
    rest[open..close].to_string()
}

/// Interface names the example binds: `iface:` values and `members:` lists of non-tap ports.
fn example_ifaces(yaml: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in yaml.lines() {
        for key in ["iface:", "members:"] {
            for (i, _) in line.match_indices(key) {
                let v = line[i + key.len()..].trim_start();
                let value = match v.strip_prefix('"') {
                    Some(q) => q.split('"').next().unwrap_or(""),
                    // Unquoted: up to a blank or `}`; a trailing comma ends a flow map's entry.
                    None => v
                        .split(['}', ' '])
                        .next()
                        .unwrap_or("")
                        .trim_end_matches(','),
                };
                for name in value.split(',') {
                    if !name.is_empty() && !out.iter().any(|o| o == name) {
                        out.push(name.to_string());
                    }
                }
            }
        }
    }
    assert!(!out.is_empty(), "the example binds no interface");
    out
}

/// Replaces `word` where it is not part of a longer name.
fn replace_word(text: &str, word: &str, with: &str) -> String {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.';
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(word) {
        let before = rest[..i].chars().last();
        let after = rest[i + word.len()..].chars().next();
        out.push_str(&rest[..i]);
        if before.is_some_and(is_name) || after.is_some_and(is_name) {
            out.push_str(word);
        } else {
            out.push_str(with);
        }
        rest = &rest[i + word.len()..];
    }
    out.push_str(rest);
    out
}
