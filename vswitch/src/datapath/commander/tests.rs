//! Commands routed to two real worker threads, over loopback ports.

use super::*;
use crate::datapath::{DatapathHandle, WorkerPlan};
use crate::pipeline::admit::PortPolicy;
use crate::port::loopback::LoopbackPort;
use crate::wire::MacAddr;

/// A datapath of two real worker threads.
pub(super) fn two_workers() -> DatapathHandle {
    DatapathHandle::spawn_workers(&WorkerPlan {
        workers: 2,
        cpus: Vec::new(),
    })
    .unwrap()
}

fn add_bridge(dp: &DatapathHandle, name: &str) -> Result<(), DatapathError> {
    dp.call_blocking(|reply| Command::AddBridge {
        name: name.into(),
        aging_secs: 300,
        max_entries: 64,
        worker: None,
        spread: false,
        reply,
    })
}

fn add_port(dp: &DatapathHandle, bridge: &str, name: &str) -> Result<(), DatapathError> {
    dp.call_blocking(|reply| Command::AddPort {
        bridge: bridge.into(),
        name: name.into(),
        port: Box::new(LoopbackPort::new(name)),
        policy: PortPolicy::default(),
        reply,
    })
}

fn workers(dp: &DatapathHandle) -> Vec<(String, usize, Vec<String>)> {
    let mut v: Vec<_> = dp
        .call_blocking(|reply| Command::Bridges { reply })
        .unwrap()
        .into_iter()
        .map(|b| (b.name, b.worker, b.ports))
        .collect();
    v.sort();
    v
}

#[test]
fn commands_reach_the_worker_of_what_they_name() {
    let dp = two_workers();
    add_bridge(&dp, "x").unwrap();
    add_bridge(&dp, "y").unwrap();
    assert_eq!(
        add_bridge(&dp, "y"),
        Err(DatapathError::BridgeExists("y".into()))
    );
    add_port(&dp, "x", "p1").unwrap();
    add_port(&dp, "y", "p2").unwrap();
    add_port(&dp, "y", "p3").unwrap();
    assert_eq!(
        add_port(&dp, "x", "p2"),
        Err(DatapathError::PortExists("p2".into())),
        "names are unique across workers"
    );
    assert_eq!(
        add_port(&dp, "z", "p9"),
        Err(DatapathError::NoSuchBridge("z".into()))
    );
    assert_eq!(
        workers(&dp),
        vec![
            ("x".into(), 0, vec!["p1".into()]),
            ("y".into(), 1, vec!["p2".into(), "p3".into()]),
        ]
    );
    let stats = dp.call_blocking(|reply| Command::Stats { reply }).unwrap();
    let mut names: Vec<_> = stats.iter().map(|s| s.port.clone()).collect();
    names.sort();
    assert_eq!(names, ["p1", "p2", "p3"]);

    let fdb_add = |bridge: &str, port: &str| {
        dp.call_blocking(|reply| Command::FdbAdd {
            bridge: bridge.into(),
            vlan: 0,
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            port: port.into(),
            remote: None,
            reply,
        })
    };
    assert_eq!(
        fdb_add("x", "p2"),
        Err(DatapathError::PortNotOnBridge {
            port: "p2".into(),
            bridge: "x".into()
        })
    );
    assert_eq!(
        fdb_add("x", "p7"),
        Err(DatapathError::NoSuchPort("p7".into()))
    );
    fdb_add("y", "p3").unwrap();
    let rows = dp
        .call_blocking(|reply| Command::FdbDump {
            bridge: "y".into(),
            reply,
        })
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].port, "p3");
    let details = dp.call_blocking(|reply| Command::PortDetails {
        name: "nope".into(),
        reply,
    });
    assert_eq!(details, Err(DatapathError::NoSuchPort("nope".into())));
    let stopped = dp.call_blocking(|reply| Command::CaptureStop {
        port: "nope".into(),
        id: 1,
        reply,
    });
    assert_eq!(stopped, Ok(()), "a gone port's capture is stopped");

    // Every worker reports to one hub.
    let hub = dp
        .call_blocking(|reply| Command::EventHub { reply })
        .unwrap();
    let again = dp
        .call_blocking(|reply| Command::EventHub { reply })
        .unwrap();
    assert!(Arc::ptr_eq(&hub, &again));

    // Deletions go to the right worker and free the place for the next bridge.
    let port = dp.call_blocking(|reply| Command::DelPort {
        name: "p2".into(),
        reply,
    });
    assert!(port.is_ok());
    assert_eq!(
        dp.call_blocking(|reply| Command::DelPort {
            name: "p2".into(),
            reply,
        })
        .err(),
        Some(DatapathError::NoSuchPort("p2".into()))
    );
    dp.call_blocking(|reply| Command::DelBridge {
        name: "y".into(),
        reply,
    })
    .unwrap();
    add_port(&dp, "x", "p3").expect("p3 went with its bridge");

    // An operator's placement: x moves to worker 1 with its port and table.
    let set = |worker: Option<usize>| {
        dp.call_blocking(|reply| Command::SetBridge {
            bridge: "x".into(),
            aging_secs: 60,
            worker,
            reply,
        })
    };
    assert_eq!(
        set(Some(2)),
        Err(DatapathError::NoSuchWorker {
            worker: 2,
            workers: 2
        })
    );
    set(Some(1)).unwrap();
    assert_eq!(
        workers(&dp),
        vec![("x".into(), 1, vec!["p1".into(), "p3".into()])]
    );
    set(None).unwrap();
    let states = dp
        .call_blocking(|reply| Command::Bridges { reply })
        .unwrap();
    assert_eq!(
        (states[0].worker, states[0].aging_secs),
        (1, 60),
        "stays put"
    );
    add_bridge(&dp, "w").unwrap();
    assert_eq!(workers(&dp)[0], ("w".into(), 0, vec![]));
    let explicit = dp.call_blocking(|reply| Command::AddBridge {
        name: "v".into(),
        aging_secs: 300,
        max_entries: 64,
        worker: Some(1),
        spread: false,
        reply,
    });
    explicit.unwrap();
    let gone_worker = dp.call_blocking(|reply| Command::AddBridge {
        name: "u".into(),
        aging_secs: 300,
        max_entries: 64,
        worker: Some(9),
        spread: false,
        reply,
    });
    gone_worker.expect("a worker that does not exist: the least loaded instead");
    let placed: Vec<(String, usize)> = workers(&dp).into_iter().map(|(b, w, _)| (b, w)).collect();
    assert_eq!(
        placed,
        vec![
            ("u".into(), 0),
            ("v".into(), 1),
            ("w".into(), 0),
            ("x".into(), 1)
        ]
    );
    let m = dp
        .call_blocking(|reply| Command::Metrics { reply })
        .unwrap();
    assert_eq!(m.per_worker.len(), 2, "each worker's loop counters");
    let mut sum = m.per_worker[0];
    sum.add(&m.per_worker[1]);
    assert_eq!(sum, m.total());
    let mut tables: Vec<_> = m.fdb_entries.iter().map(|(b, _)| b.clone()).collect();
    tables.sort();
    assert_eq!(tables, ["u", "v", "w", "x"]);
}
