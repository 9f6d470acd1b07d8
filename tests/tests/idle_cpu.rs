//! An idle switch blocks instead of spinning.

use std::thread::sleep;
use std::time::Duration;

use vswitch_tests::daemon::clock_ticks_per_sec;
use vswitch_tests::{Daemon, ThreeHosts};

#[test]
fn idle_daemon_uses_almost_no_cpu() {
    let d = Daemon::start("idle-cpu");
    let net = ThreeHosts::new(&d, "idlecpu", 50);
    // Some traffic first, so the datapath has been busy and must notice it went idle. ARP is
    // pinned so that no late ARP probe lands in the measured window.
    net.pin_all_neighbors();
    net.ping_all_pairs(3);
    sleep(Duration::from_secs(3));

    // Nothing of ours touches the daemon during the window.
    let window = Duration::from_secs(3);
    let t0 = d.cpu_ticks();
    sleep(window);
    let t1 = d.cpu_ticks();

    let used = Duration::from_secs_f64((t1 - t0) as f64 / clock_ticks_per_sec() as f64);
    let budget = window.mul_f64(0.05);
    eprintln!("vswitchd used {used:?} of CPU in an idle {window:?} (budget {budget:?})");
    assert!(
        used < budget,
        "idle vswitchd used {used:?} of CPU in {window:?}: it must block when idle"
    );
}
