//! A bridge on every worker, driven through the commander over two real
//! worker threads and linked loopback shards.

use std::time::{Duration, Instant};

use super::tests::two_workers;
use super::*;
use crate::datapath::DatapathHandle;
use crate::pipeline::admit::PortPolicy;
use crate::port::loopback::{LoopbackLink, LoopbackPort};
use crate::wire::ethernet::build_frame;
use crate::wire::MacAddr;

fn mac(n: u8) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0, n])
}

fn add_spread_bridge(dp: &DatapathHandle, name: &str) -> Result<(), DatapathError> {
    dp.call_blocking(|reply| Command::AddBridge {
        name: name.into(),
        aging_secs: 300,
        max_entries: 64,
        worker: None,
        spread: true,
        reply,
    })
}

/// Adds port `name` with one linked loopback shard per worker; returns the
/// links, in worker order.
fn add_shards(dp: &DatapathHandle, bridge: &str, name: &str) -> Vec<LoopbackLink> {
    let (mut shards, mut links) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let (port, link) = LoopbackPort::linked(name);
        shards.push(Box::new(port) as Box<dyn crate::port::Port>);
        links.push(link);
    }
    dp.call_blocking(|reply| Command::AddPortShards {
        bridge: bridge.into(),
        name: name.into(),
        shards,
        policy: PortPolicy::default(),
        reply,
    })
    .unwrap();
    links
}

/// Waits (bounded) until `link` sent `n` frames; returns them.
fn sent(link: &LoopbackLink, n: usize) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        got.extend(link.take_sent());
        std::thread::sleep(Duration::from_millis(5));
    }
    got
}

fn dump(dp: &DatapathHandle, bridge: &str) -> Vec<(u16, MacAddr, String)> {
    dp.call_blocking(|reply| Command::FdbDump {
        bridge: bridge.into(),
        reply,
    })
    .unwrap()
    .into_iter()
    .map(|e| (e.vlan, e.mac, e.port))
    .collect()
}

#[test]
fn one_bridge_forwards_on_both_workers_with_one_table() {
    let dp = two_workers();
    add_spread_bridge(&dp, "all").unwrap();
    let a = add_shards(&dp, "all", "a");
    let b = add_shards(&dp, "all", "b");

    // Worker 0 hears mac(1) behind a and floods it to b.
    a[0].inject(&build_frame(mac(9), mac(1), 0x0800, &[0; 46]));
    assert_eq!(sent(&b[0], 1).len(), 1);
    // Worker 1 never saw mac(1), yet sends the reply to a only: the
    // replicas share what they learn.
    let deadline = Instant::now() + Duration::from_secs(5);
    while dump(&dp, "all").is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    // The news reaches worker 1 at its next pass; a few frames make sure
    // one went by.
    std::thread::sleep(Duration::from_millis(250));
    b[1].inject(&build_frame(mac(1), mac(2), 0x0800, &[0; 46]));
    assert_eq!(sent(&a[1], 1).len(), 1);
    assert!(b[1].take_sent().is_empty() && a[0].take_sent().is_empty());

    // One table, one row per port: the replicas' figures merged.
    let deadline = Instant::now() + Duration::from_secs(5);
    while dump(&dp, "all").len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        dump(&dp, "all"),
        vec![(0, mac(1), "a".to_string()), (0, mac(2), "b".to_string())]
    );
    let bridges = dp
        .call_blocking(|reply| Command::Bridges { reply })
        .unwrap();
    assert_eq!(bridges.len(), 1);
    assert!(bridges[0].spread);
    assert_eq!(bridges[0].fdb_entries, 2);
    assert_eq!(bridges[0].fdb_counters.learned, 2, "each learned once");
    let stats = dp.call_blocking(|reply| Command::Stats { reply }).unwrap();
    let rx = |port: &str| {
        stats
            .iter()
            .filter(|r| r.port == port)
            .map(|r| r.rx_packets)
            .collect::<Vec<_>>()
    };
    assert_eq!((rx("a"), rx("b")), (vec![1], vec![1]));
}

#[test]
fn changes_reach_every_replica_and_what_it_cannot_do_is_refused() {
    let dp = two_workers();
    add_spread_bridge(&dp, "all").unwrap();
    assert_eq!(
        add_spread_bridge(&dp, "all"),
        Err(DatapathError::BridgeExists("all".into()))
    );
    let a = add_shards(&dp, "all", "a");
    let _b = add_shards(&dp, "all", "b");

    // A static entry is in every replica: both workers send to b only.
    dp.call_blocking(|reply| Command::FdbAdd {
        bridge: "all".into(),
        vlan: 0,
        mac: mac(5),
        port: "b".into(),
        remote: None,
        reply,
    })
    .unwrap();
    assert_eq!(dump(&dp, "all"), vec![(0, mac(5), "b".to_string())]);
    dp.call_blocking(|reply| Command::FdbDel {
        bridge: "all".into(),
        vlan: 0,
        mac: mac(5),
        reply,
    })
    .unwrap();
    assert!(dump(&dp, "all").is_empty());
    let _ = a;

    // A single backend cannot join; the bridge does not move.
    let single = dp.call_blocking(|reply| Command::AddPort {
        bridge: "all".into(),
        name: "c".into(),
        port: Box::new(LoopbackPort::new("c")),
        policy: PortPolicy::default(),
        reply,
    });
    assert!(matches!(single, Err(DatapathError::Spread(_))));
    let moved = dp.call_blocking(|reply| Command::SetBridge {
        bridge: "all".into(),
        aging_secs: 60,
        worker: Some(1),
        reply,
    });
    assert!(matches!(moved, Err(DatapathError::Spread(_))));
    dp.call_blocking(|reply| Command::SetBridge {
        bridge: "all".into(),
        aging_secs: 60,
        worker: None,
        reply,
    })
    .unwrap();

    // Deleting a port hands back every shard; deleting the bridge frees
    // its indices for the next one.
    let closed = dp
        .call_blocking(|reply| Command::DelPort {
            name: "a".into(),
            reply,
        })
        .unwrap();
    assert_eq!(closed.len(), 2);
    dp.call_blocking(|reply| Command::DelBridge {
        name: "all".into(),
        reply,
    })
    .unwrap();
    assert!(dp
        .call_blocking(|reply| Command::Bridges { reply })
        .unwrap()
        .is_empty());
    add_spread_bridge(&dp, "again").unwrap();
    let _c = add_shards(&dp, "again", "b");
}
