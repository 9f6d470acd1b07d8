//! Criterion benchmarks of the datapath's per-batch work, ports excluded.
//!
//! Each benchmark runs `Switch::poll_once` (receive a batch, classify,
//! learn, forward, transmit) over loopback ports that replay prepared frames
//! and only count what they send, so what is measured is the switch's own
//! code. The `baseline/copy_batch` case measures only filling a batch from
//! the same frames (the copy every real port pays too): compare the other
//! cases against it in the same run, as a ratio, since these machines are
//! shared and absolute numbers drift.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vswitch::datapath::Switch;
use vswitch::packet::{Batch, BATCH_SIZE};
use vswitch::port::loopback::LoopbackPort;
use vswitch::wire::ethernet::build_frame;
use vswitch::wire::MacAddr;

fn mac(n: u32) -> MacAddr {
    let b = n.to_be_bytes();
    MacAddr([0x02, 0x00, b[0], b[1], b[2], b[3]])
}

/// A bridge with `nports` loopback ports; port 0 replays `frames`, and every
/// other port `i` already has MAC `mac(i)` learned behind it.
fn switch_with(frames: Vec<Vec<u8>>, nports: u32) -> Switch {
    let mut sw = Switch::new();
    sw.add_bridge("br0".into(), 300, 65536).unwrap();
    sw.add_port(
        "br0",
        "p0".into(),
        Box::new(LoopbackPort::replaying("p0", frames)),
        None,
    )
    .unwrap();
    let mut batch = Batch::new();
    for i in 1..nports {
        // Each port announces its MAC once so the table knows it.
        let hello = build_frame(MacAddr::BROADCAST, mac(i), 0x0806, &[0; 46]);
        let name = format!("p{i}");
        let mut port = LoopbackPort::counting(&name);
        port.inject(&hello);
        sw.add_port("br0", name, Box::new(port), None).unwrap();
        sw.poll_once(&mut batch, Duration::ZERO);
    }
    sw
}

fn frames_to(
    dst: impl Fn(u32) -> MacAddr,
    src: impl Fn(u32) -> MacAddr,
    len: usize,
) -> Vec<Vec<u8>> {
    (0..BATCH_SIZE as u32)
        .map(|i| build_frame(dst(i), src(i), 0x0800, &vec![0x45; len - 14]))
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(BATCH_SIZE as u64));

    let frames = frames_to(|_| mac(1), |i| mac(1000 + i % 4), 64);
    g.bench_function("baseline/copy_batch_64B", |b| {
        let mut batch = Batch::new();
        b.iter(|| {
            batch.clear();
            for f in &frames {
                batch.push_copy(f);
            }
            std::hint::black_box(batch.len())
        })
    });

    let mut sw = switch_with(frames.clone(), 4);
    g.bench_function("unicast_known_64B", |b| {
        let mut batch = Batch::new();
        b.iter(|| sw.poll_once(&mut batch, Duration::from_secs(1)))
    });

    let big = frames_to(|_| mac(1), |i| mac(1000 + i % 4), 1514);
    let mut sw = switch_with(big, 4);
    g.bench_function("unicast_known_1514B", |b| {
        let mut batch = Batch::new();
        b.iter(|| sw.poll_once(&mut batch, Duration::from_secs(1)))
    });

    let bcast = frames_to(|_| MacAddr::BROADCAST, |i| mac(1000 + i % 4), 64);
    let mut sw = switch_with(bcast, 4);
    g.bench_function("flood_3_ports_64B", |b| {
        let mut batch = Batch::new();
        b.iter(|| sw.poll_once(&mut batch, Duration::from_secs(1)))
    });

    // 4096 hosts behind port 0 talking to the hosts behind the others: the
    // table works beyond the CPU's first-level cache, as on a busy bridge.
    let many: Vec<Vec<u8>> = (0..4096u32)
        .map(|i| build_frame(mac(1 + i % 3), mac(100_000 + i), 0x0800, &[0x45; 50]))
        .collect();
    let mut sw = switch_with(many, 4);
    g.bench_function("unicast_4096_sources_64B", |b| {
        let mut batch = Batch::new();
        b.iter(|| sw.poll_once(&mut batch, Duration::from_secs(1)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
