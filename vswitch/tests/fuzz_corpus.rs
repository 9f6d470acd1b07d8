//! Every stored fuzz input, replayed through the fuzz targets' code on the
//! stable toolchain: the seed corpus (`fuzz/corpus/TARGET/`) and every crash
//! input ever found (`fuzz/regressions/TARGET/`). libFuzzer is not needed;
//! a panic here is a finding, with the file named in the message.

use std::path::{Path, PathBuf};

use vswitch::fuzzing;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files of `dir`, sorted; none if it does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("read a corpus directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Feeds every stored input of `target` to `run`. The seed corpus must not
/// be empty: a replay of nothing would pass whatever the code does.
fn replay(target: &str, run: fn(&[u8])) {
    let corpus = inputs(&fuzz_dir().join("corpus").join(target));
    assert!(
        corpus.len() >= 5,
        "fuzz/corpus/{target} has {} seeds; it should hold hand-made valid and edge-case inputs",
        corpus.len()
    );
    let regressions = inputs(&fuzz_dir().join("regressions").join(target));
    for file in corpus.iter().chain(&regressions) {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let outcome = std::panic::catch_unwind(|| run(&data));
        if let Err(e) = outcome {
            let msg = e
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| e.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            panic!("{target} failed on {}: {msg}", file.display());
        }
    }
    eprintln!(
        "{target}: {} seeds and {} regression inputs replayed",
        corpus.len(),
        regressions.len()
    );
}

#[test]
fn pipeline_corpus() {
    replay("pipeline", fuzzing::pipeline);
}

#[test]
fn control_request_corpus() {
    replay("control_request", fuzzing::control_request);
}

#[test]
fn ethernet_corpus() {
    replay("ethernet", fuzzing::ethernet);
}

#[test]
fn vxlan_corpus() {
    replay("vxlan", fuzzing::vxlan);
}

#[test]
fn lacp_corpus() {
    replay("lacp", fuzzing::lacp);
}

#[test]
fn vhost_queue_corpus() {
    replay("vhost_queue", fuzzing::vhost_queue);
}

#[test]
fn evpn_corpus() {
    replay("evpn", fuzzing::evpn);
}

#[test]
fn fdb_corpus() {
    replay("fdb", fuzzing::fdb);
}
