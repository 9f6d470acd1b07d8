//! Criterion benchmarks of the datapath's per-batch work, ports excluded.
//!
//! Each benchmark runs `Switch::poll_once` (receive a batch, classify,
//! learn, forward, transmit) over loopback ports that replay prepared frames
//! and only count what they send, so what is measured is the switch's own
//! code. The `baseline/copy_batch` case measures only filling a batch from
//! the same frames (the copy every real port pays too): compare the other
//! cases against it in the same run, as a ratio, since these machines are
//! shared and absolute numbers drift.
//!
//! Every case moves one batch of 32 frames per iteration and reports
//! `Throughput::Elements(32)`: criterion's rate is frames per second on one
//! core. `null_ports/*` run the same loop over the daemon's own `type=null`
//! ports (a source with 1024 flows, or half a million for a 1M-entry table,
//! and a sink that taught the bridge their destinations), as `vswitchd` does
//! with no kernel underneath.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vswitch::datapath::Switch;
use vswitch::packet::{Batch, BATCH_SIZE};
use vswitch::pipeline::admit::PortPolicy;
use vswitch::pipeline::vlan::{VlanMode, VlanSet};
use vswitch::port::loopback::LoopbackPort;
use vswitch::port::null::{self, NullPort};
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
    // 32 hosts behind an access port (VLAN 10) talking to 32 hosts behind a
    // trunk: every frame is classified, its source learned (refreshed), its
    // destination looked up, and a tag pushed on the way out.
    let mut sw = vlan_switch();
    g.bench_function("learn_lookup_push_tag_64B", |b| {
        let mut batch = Batch::new();
        b.iter(|| sw.poll_once(&mut batch, Duration::from_secs(1)))
    });

    for (name, frame_len, macs) in [
        ("null_ports/unicast_1024_flows_64B", 64, 1024),
        ("null_ports/unicast_1024_flows_1514B", 1514, 1024),
        // Half a million sources behind the source and as many destinations
        // behind the sink: a 1M-entry table, every frame's two look-ups at
        // places in it the caches have not seen for a million frames.
        ("null_ports/unicast_1M_table_64B", 64, 512 * 1024),
    ] {
        let mut sw = null_switch(frame_len, macs);
        g.bench_function(name, |b| {
            let mut batch = Batch::new();
            b.iter(|| sw.poll_once(&mut batch, Duration::from_secs(1)))
        });
    }
    g.finish();
}

fn policy(vlan: VlanMode) -> PortPolicy {
    PortPolicy {
        vlan,
        ..PortPolicy::default()
    }
}

/// Port a (access 10) replays frames from 32 sources to 32 hosts that port b
/// (trunk 10) taught the table with tagged broadcasts.
fn vlan_switch() -> Switch {
    let mut sw = Switch::new();
    sw.add_bridge("br0".into(), 300, 65536).unwrap();
    let mut trunk = LoopbackPort::counting("b");
    for i in 0..BATCH_SIZE as u32 {
        let mut hello = build_frame(MacAddr::BROADCAST, mac(2000 + i), 0x0806, &[0; 46]);
        hello.splice(12..12, [0x81, 0x00, 0x00, 10]);
        trunk.inject(&hello);
    }
    let allowed = VlanSet::parse("10").unwrap();
    let mode = VlanMode::Trunk {
        allowed,
        native: None,
    };
    sw.add_port_with_policy("br0", "b".into(), Box::new(trunk), policy(mode), None)
        .unwrap();
    let mut batch = Batch::new();
    sw.poll_once(&mut batch, Duration::ZERO);
    let frames = frames_to(|i| mac(2000 + i), |i| mac(1000 + i), 64);
    let access = LoopbackPort::replaying("a", frames);
    sw.add_port_with_policy(
        "br0",
        "a".into(),
        Box::new(access),
        policy(VlanMode::Access(10)),
        None,
    )
    .unwrap();
    sw
}

/// A null sink that taught the bridge `macs` MACs, and a null source sending
/// to them from `macs` sources (one flow each): a table of 2 x `macs`.
fn null_switch(frame_len: usize, macs: u32) -> Switch {
    let opts = |kv: &[(&str, String)]| {
        let o = kv.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        null::parse(&o).unwrap()
    };
    let mut sw = Switch::new();
    let table = (2 * macs as usize).max(65536);
    sw.add_bridge("br0".into(), 300, table).unwrap();
    let sink = opts(&[("role", "sink".into()), ("learn_macs", macs.to_string())]);
    sw.add_port(
        "br0",
        "sink".into(),
        Box::new(NullPort::new("sink", sink)),
        None,
    )
    .unwrap();
    let mut batch = Batch::new();
    while sw.poll_once(&mut batch, Duration::ZERO) > 0 {}
    let source = opts(&[
        ("role", "source".into()),
        ("flows", macs.to_string()),
        ("frame_len", frame_len.to_string()),
    ]);
    sw.add_port(
        "br0",
        "gen".into(),
        Box::new(NullPort::new("gen", source)),
        None,
    )
    .unwrap();
    sw
}

criterion_group!(benches, bench);
criterion_main!(benches);
