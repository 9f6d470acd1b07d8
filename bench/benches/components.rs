//! Criterion benchmarks of the datapath's parts, one stage at a time: parse and classify,
//! forwarding-table lookups at three table sizes, VXLAN encapsulation and decapsulation, and
//! the bond's flow hash. Every case handles 32 frames (or keys) per iteration and reports
//! `Throughput::Elements(32)`, so criterion prints frames (or look-ups) per second on one core.
//!
//! As in `pipeline.rs`, compare cases with each other (and with `pipeline`'s
//! `baseline/copy_batch_64B`) from the same run: these machines are shared.

use std::net::Ipv4Addr;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use vswitch::fdb::Fdb;
use vswitch::packet::{PacketBuf, BATCH_SIZE};
use vswitch::pipeline::counters::PortCounters;
use vswitch::pipeline::input::classify;
use vswitch::pipeline::vlan::{VlanMode, VlanSet};
use vswitch::port::bond::hash::{flow_hash, HashPolicy};
use vswitch::port::vxlan::{VxlanConfig, VxlanPort};
use vswitch::port::{Port, Tunnel};
use vswitch::wire::ethernet::build_frame;
use vswitch::wire::{ipv4, MacAddr};

const N: u64 = BATCH_SIZE as u64;

fn mac(n: u32) -> MacAddr {
    let b = n.to_be_bytes();
    MacAddr([0x02, 0x00, b[0], b[1], b[2], b[3]])
}

/// A 64-byte IPv4/UDP frame from `src` to `dst`, UDP ports from `flow`, tagged if `vlan`.
fn udp_frame(dst: MacAddr, src: MacAddr, flow: u16, vlan: Option<u16>) -> Vec<u8> {
    let mut l3 = vec![0u8; 64 - 14 - vlan.map_or(0, |_| 4)];
    let payload = l3.len() - ipv4::HEADER_LEN - ipv4::UDP_HEADER_LEN;
    let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    ipv4::emit_udp(&mut l3, a, b, 1024 + flow, 4791, payload).expect("room for headers");
    let mut f = build_frame(dst, src, 0x0800, &l3);
    if let Some(v) = vlan {
        f.splice(12..12, [0x81, 0x00, (v >> 8) as u8, v as u8]);
    }
    f
}

/// A deterministic pseudo-random sequence (64-bit LCG), so runs compare.
fn lcg(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    *seed >> 33
}

fn classify_bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("classify");
    g.throughput(Throughput::Elements(N));
    // Untagged frames on a default-mode port: parse only, nothing to strip.
    let mut bufs: Vec<PacketBuf> = (0..N as u32)
        .map(|i| {
            let mut b = PacketBuf::new();
            b.copy_from(&udp_frame(mac(1), mac(100 + i), 0, None));
            b
        })
        .collect();
    let default_mode = VlanMode::default();
    g.bench_function("untagged_default_mode", |b| {
        b.iter(|| {
            let mut ok = 0;
            for buf in bufs.iter_mut() {
                ok += classify(buf, &default_mode).is_ok() as u32;
            }
            std::hint::black_box(ok)
        })
    });
    // Tagged frames on a trunk: parse, check the allowed set, strip the tag. The strip
    // changes the buffer, so each iteration copies the frames back in first (the copy is
    // `pipeline/baseline/copy_batch_64B`'s cost).
    let tagged: Vec<Vec<u8>> = (0..N as u32)
        .map(|i| udp_frame(mac(1), mac(100 + i), 0, Some(10 + (i % 4) as u16)))
        .collect();
    let trunk = VlanMode::Trunk {
        allowed: VlanSet::parse("10-13").expect("VLAN list"),
        native: None,
    };
    g.bench_function("tagged_trunk_copy_and_strip", |b| {
        b.iter(|| {
            let mut ok = 0;
            for (buf, f) in bufs.iter_mut().zip(&tagged) {
                buf.copy_from(f);
                ok += classify(buf, &trunk).is_ok() as u32;
            }
            std::hint::black_box(ok)
        })
    });
    g.finish();
}

fn fdb_bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("fdb_lookup");
    g.throughput(Throughput::Elements(N));
    g.sample_size(30);
    for entries in [1_000u32, 100_000, 1_000_000] {
        let mut fdb = Fdb::new(entries as usize * 2, 300);
        for i in 0..entries {
            fdb.learn(0, mac(i), i % 4, 0, u32::MAX);
        }
        // 64k look-up keys drawn at random from the table: beyond the caches for the big ones.
        let mut seed = 1;
        let keys: Vec<MacAddr> = (0..65_536)
            .map(|_| mac((lcg(&mut seed) % u64::from(entries)) as u32))
            .collect();
        let mut at = 0usize;
        g.bench_with_input(BenchmarkId::new("hit", entries), &entries, |b, _| {
            b.iter(|| {
                let mut sum = 0u32;
                for k in &keys[at..at + BATCH_SIZE] {
                    sum += fdb.lookup(0, *k).unwrap_or(0);
                }
                at = (at + BATCH_SIZE) % keys.len();
                std::hint::black_box(sum)
            })
        });
        // Learning a known source (the refresh every frame pays).
        g.bench_with_input(BenchmarkId::new("refresh", entries), &entries, |b, _| {
            b.iter(|| {
                for (i, k) in keys[at..at + BATCH_SIZE].iter().enumerate() {
                    let port = (k.to_u64() % 4) as u32;
                    std::hint::black_box(fdb.learn(0, *k, port, 1 + i as u64, u32::MAX));
                }
                at = (at + BATCH_SIZE) % keys.len();
            })
        });
    }
    g.finish();
}

/// The aging sweep the datapath runs once a second on every bridge, on a
/// table of the default size and of the largest, each holding 1000 MACs
/// that do not age: what a sweep costs the datapath thread (one sweep per
/// iteration).
fn fdb_sweep_bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("fdb_sweep");
    g.sample_size(10);
    for size in [65_536usize, 4 * 1024 * 1024] {
        let mut fdb = Fdb::new(size, 300);
        for i in 0..1000 {
            fdb.learn(0, mac(i), i % 4, 0, u32::MAX);
        }
        g.bench_with_input(BenchmarkId::new("age_1000_of", size), &size, |b, _| {
            b.iter(|| std::hint::black_box(fdb.age(1)))
        });
    }
    g.finish();
}

const A_IP: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 1);
const B_IP: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 2);

fn vtep(local: Ipv4Addr, remote: Ipv4Addr) -> VxlanPort {
    VxlanPort::new(
        "vx",
        VxlanConfig {
            local,
            prefix_len: 24,
            gateway: None,
            remotes: vec![remote],
            vnis: vec![(42, 0)],
            dst_port: 4789,
            underlay: "up".into(),
            mac: VxlanConfig::default_mac(local),
            underlay_mtu: 1500,
        },
    )
}

/// Hands every frame `from` queued for its underlay to `to`.
fn deliver(from: &mut VxlanPort, to: &mut VxlanPort, c: &mut PortCounters) {
    let frames: Vec<Vec<u8>> = from.outbound().iter().map(|b| b.frame().to_vec()).collect();
    from.outbound().clear();
    for f in frames {
        to.offer(&f, Duration::ZERO, c);
    }
}

/// Two VTEPs that resolved each other by ARP, and know host mac(2) behind B.
fn vtep_pair() -> (VxlanPort, VxlanPort) {
    let (mut a, mut b) = (vtep(A_IP, B_IP), vtep(B_IP, A_IP));
    let mut c = PortCounters::default();
    a.tick(Duration::ZERO, &mut c);
    b.tick(Duration::ZERO, &mut c);
    for _ in 0..2 {
        deliver(&mut a, &mut b, &mut c);
        deliver(&mut b, &mut a, &mut c);
    }
    let hello = udp_frame(mac(1), mac(2), 0, None);
    b.tx_burst(&[&hello], &mut c);
    deliver(&mut b, &mut a, &mut c);
    let mut scratch = vswitch::packet::Batch::new();
    a.rx_burst(&mut scratch, &mut c);
    (a, b)
}

fn vxlan_bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("vxlan");
    g.throughput(Throughput::Elements(N));
    let (mut a, mut b) = vtep_pair();
    let mut counters = PortCounters::default();
    let inner: Vec<Vec<u8>> = (0..N as u32)
        .map(|i| udp_frame(mac(2), mac(100 + i), i as u16, None))
        .collect();
    let refs: Vec<&[u8]> = inner.iter().map(Vec::as_slice).collect();
    g.bench_function("encap_known_remote_64B", |bch| {
        bch.iter(|| {
            let n = a.tx_burst(&refs, &mut counters);
            a.outbound().clear();
            std::hint::black_box(n)
        })
    });
    a.tx_burst(&refs, &mut counters);
    let outer: Vec<Vec<u8>> = a.outbound().iter().map(|f| f.frame().to_vec()).collect();
    a.outbound().clear();
    assert_eq!(outer.len(), BATCH_SIZE, "every frame encapsulated");
    let mut batch = vswitch::packet::Batch::new();
    g.bench_function("decap_64B", |bch| {
        bch.iter(|| {
            for f in &outer {
                b.offer(f, Duration::ZERO, &mut counters);
            }
            batch.clear();
            std::hint::black_box(b.rx_burst(&mut batch, &mut counters))
        })
    });
    g.finish();
}

fn bond_hash_bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("bond_hash");
    g.throughput(Throughput::Elements(N));
    let frames: Vec<Vec<u8>> = (0..N as u32)
        .map(|i| udp_frame(mac(1), mac(100 + i), i as u16, Some(10)))
        .collect();
    for policy in [HashPolicy::L2, HashPolicy::L23, HashPolicy::L34] {
        g.bench_function(policy.as_str(), |b| {
            b.iter(|| {
                let mut h = 0u32;
                for f in &frames {
                    h ^= flow_hash(f, policy);
                }
                std::hint::black_box(h)
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    classify_bench,
    fdb_bench,
    fdb_sweep_bench,
    vxlan_bench,
    bond_hash_bench
);
criterion_main!(benches);
