//! `type=null` ports in the real daemon: a source's frames reach a sink through the bridge's
//! table, a paced source keeps the datapath awake, and an exhausted source lets it sleep.

use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;
use vswitch_tests::daemon::clock_ticks_per_sec;
use vswitch_tests::{wait_for, Daemon};

const BR: &str = "br0";
const LEARN: usize = 1000;
/// Frames of the unpaced source: enough to run the loop flat out for a while, even in a debug
/// build, not so many that the test drags.
const COUNT: u64 = 200_000;

fn null_details(d: &Daemon, port: &str) -> Value {
    d.ctl(&["port", "show", port])["details"]["null"].clone()
}

/// Entries of the bridge's table learned behind `port`.
fn learned_on(d: &Daemon, port: &str) -> usize {
    d.fdb(BR).iter().filter(|e| e["port"] == port).count()
}

#[test]
fn null_source_to_sink_hits_the_table_then_goes_idle() {
    let d = Daemon::start("null-port");
    d.ctl(&["bridge", "add", BR]);
    let learn = format!("learn_macs={LEARN}");
    d.ctl(&["port", "add", BR, "sink", "type=null", "role=sink", &learn]);
    wait_for(Duration::from_secs(10), "the sink's MACs learned", || {
        (learned_on(&d, "sink") == LEARN).then_some(())
    });
    let sink = null_details(&d, "sink");
    assert_eq!(sink["role"], "sink", "{sink}");
    assert_eq!(sink["learn_frames_sent"], LEARN as u64, "{sink}");

    let count = format!("count={COUNT}");
    let flows = format!("flows={LEARN}");
    d.ctl(&[
        "port",
        "add",
        BR,
        "gen",
        "type=null",
        "role=source",
        &count,
        &flows,
        "frame_len=64",
    ]);
    let started = Instant::now();
    wait_for(
        Duration::from_secs(60),
        "the sink to absorb every frame",
        || (d.tx_packets("sink") >= COUNT).then_some(()),
    );
    let took = started.elapsed();
    eprintln!(
        "{COUNT} frames source -> sink in {took:?} ({:.0} frames/s, debug build if run by cargo test)",
        COUNT as f64 / took.as_secs_f64()
    );
    // Every destination was known: nothing flooded, so the sink got exactly the source's frames.
    assert_eq!(d.tx_packets("sink"), COUNT);
    let gen = null_details(&d, "gen");
    assert_eq!(gen["generated"], COUNT, "{gen}");
    assert_eq!(gen["exhausted"], true, "{gen}");
    assert_eq!(d.port_stats("gen")["rx_packets"], COUNT);
    assert_eq!(learned_on(&d, "sink"), LEARN);
    assert_eq!(learned_on(&d, "gen"), LEARN, "the source's own MACs");

    // Exhausted, the source no longer keeps the loop spinning.
    sleep(Duration::from_secs(1));
    let window = Duration::from_secs(3);
    let t0 = d.cpu_ticks();
    sleep(window);
    let t1 = d.cpu_ticks();
    let used = Duration::from_secs_f64((t1 - t0) as f64 / clock_ticks_per_sec() as f64);
    let budget = window.mul_f64(0.05);
    eprintln!("vswitchd used {used:?} of CPU in {window:?} after the source ran dry");
    assert!(
        used < budget,
        "vswitchd used {used:?} of CPU in {window:?} after its only source ran dry: it must block"
    );
}

#[test]
fn paced_null_source_is_not_slowed_by_the_idle_sleep() {
    let d = Daemon::start("null-paced");
    d.ctl(&["bridge", "add", BR]);
    d.ctl(&["port", "add", BR, "sink", "type=null", "role=sink"]);
    // Unknown destinations: every frame floods to the sink. 1000 frames at 1000/s take 1 s. A
    // frame is due every 1 ms, longer than the loop's idle spin: a loop that then slept until
    // its next tick (100 ms) would find one burst (32) each time and need about 3 s.
    d.ctl(&[
        "port",
        "add",
        BR,
        "gen",
        "type=null",
        "role=source",
        "rate_pps=1000",
        "count=1000",
        "vlan=10",
    ]);
    let started = Instant::now();
    wait_for(
        Duration::from_secs(20),
        "the paced frames at the sink",
        || (d.tx_packets("sink") >= 1000).then_some(()),
    );
    let took = started.elapsed();
    eprintln!("1000 frames at rate_pps=1000 took {took:?}");
    assert!(
        took < Duration::from_millis(1600),
        "a paced source took {took:?} for 1 s of frames: the datapath slept between bursts"
    );
    assert!(
        took > Duration::from_millis(700),
        "1000 frames at 1000/s arrived in {took:?}: the source did not pace"
    );
    // Bad options are refused with a reason.
    let err = d.ctl_err(&[
        "port",
        "add",
        BR,
        "bad",
        "type=null",
        "role=source",
        "frame_len=20",
    ]);
    assert!(err.contains("frame_len"), "{err}");
    let err = d.ctl_err(&["port", "add", BR, "bad", "type=null"]);
    assert!(err.contains("role"), "{err}");
}
