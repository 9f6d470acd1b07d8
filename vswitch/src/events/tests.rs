use std::time::Duration;

use tokio::sync::broadcast::error::TryRecvError;

use super::hub::{CLIENT_BACKLOG, QUEUE_LEN};
use super::*;

fn mac(last: u8) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0, last])
}

#[test]
fn names_are_inline_and_cut_at_15_bytes() {
    assert_eq!(Name::new("br0").as_str(), "br0");
    assert_eq!(Name::new("abcdefghijklmnopq").as_str(), "abcdefghijklmno");
    // Never cut inside a character.
    assert_eq!(Name::new("abcdefghijklmné").as_str(), "abcdefghijklmn");
    assert_eq!(Name::new("").as_str(), "");
    assert_eq!(format!("{}", Name::new("p1")), "p1");
}

#[test]
fn event_lines_are_one_json_object_with_time_and_kind() {
    let ev = DpEvent {
        time_ns: 1_735_689_600_000_001_000,
        kind: DpEventKind::Link {
            port: Name::new("p1"),
            up: false,
        },
    }
    .to_event();
    let line = ev.to_json();
    assert_eq!(
        line,
        r#"{"time":"2025-01-01T00:00:00.000001Z","event":"link","port":"p1","up":false}"#
    );
    assert_eq!(serde_json::from_str::<Event>(&line).unwrap(), ev);
    assert_eq!(
        ev.to_text(),
        "2025-01-01T00:00:00.000001Z  link           port p1 down"
    );

    let mv = DpEvent {
        time_ns: 0,
        kind: DpEventKind::MacMove {
            bridge: Name::new("br0"),
            vlan: 10,
            mac: mac(1),
            from: Name::new("pa"),
            to: Name::new("pb"),
            suppressed: 4,
        },
    }
    .to_event();
    let v: serde_json::Value = serde_json::from_str(&mv.to_json()).unwrap();
    assert_eq!(v["event"], "mac_move");
    assert_eq!(v["mac"], "02:00:00:00:00:01");
    assert_eq!(v["from"], "pa");
    assert_eq!(v["to"], "pb");
    assert_eq!(v["suppressed"], 4);
    assert!(mv.to_text().ends_with(
        "mac_move       br0 vlan 10 02:00:00:00:00:01 pa -> pb (4 more moves not shown)"
    ));
}

#[test]
fn bond_events_name_the_port_and_member() {
    let port = Name::new("bond0");
    let cases = [
        (
            StatusEvent::MemberLink {
                member: Name::new("eth1"),
                up: true,
            },
            "member_link",
            "bond bond0 member eth1 up",
        ),
        (
            StatusEvent::LacpMember {
                member: Name::new("eth1"),
                collecting: true,
                distributing: false,
            },
            "lacp",
            "bond bond0 member eth1: collecting",
        ),
        (
            StatusEvent::ActiveMember {
                member: Some(Name::new("eth2")),
                previous: Some(Name::new("eth1")),
            },
            "active_member",
            "bond bond0 failover: eth1 -> eth2",
        ),
        (
            StatusEvent::ActiveMember {
                member: None,
                previous: Some(Name::new("eth1")),
            },
            "active_member",
            "bond bond0: no member link is up",
        ),
    ];
    for (status, name, text) in cases {
        let ev = DpEvent {
            time_ns: 0,
            kind: DpEventKind::Port { port, status },
        }
        .to_event();
        let v: serde_json::Value = serde_json::from_str(&ev.to_json()).unwrap();
        assert_eq!(v["event"], name);
        assert_eq!(v["port"], "bond0");
        assert!(ev.to_text().ends_with(text), "{}", ev.to_text());
    }
}

#[test]
fn config_events_come_from_changing_verbs_only() {
    #[derive(serde::Serialize)]
    #[serde(tag = "verb", content = "args", rename_all = "snake_case")]
    enum Req {
        PortAdd {
            bridge: String,
            port: String,
            options: std::collections::BTreeMap<String, String>,
        },
        PortList,
    }
    let add = Req::PortAdd {
        bridge: "br0".into(),
        port: "p3".into(),
        options: [("type".to_string(), "afpacket".to_string())].into(),
    };
    let kind = config_change(&add).expect("port_add is a change");
    let ev = Event::new(0, kind);
    let v: serde_json::Value = serde_json::from_str(&ev.to_json()).unwrap();
    assert_eq!(v["event"], "config");
    assert_eq!(v["verb"], "port_add");
    assert_eq!(v["args"]["port"], "p3");
    // Options inline, keys in order.
    assert!(
        ev.to_text()
            .ends_with("config         port_add bridge=br0 type=afpacket port=p3"),
        "{}",
        ev.to_text()
    );
    assert!(config_change(&Req::PortList).is_none());
}

#[test]
fn mac_moves_are_rate_limited_and_suppressed_moves_counted() {
    let mut log = MoveLog::default();
    let t0 = Duration::from_millis(1500);
    log.note(0, mac(1), 1, 2, t0);
    assert!(!log.has_pending(), "disabled: nothing noted");
    log.set_enabled(true);

    // A storm within one second: MOVES_PER_SEC reported, the rest counted.
    let mut reported = Vec::new();
    for i in 0..100u32 {
        log.note(0, mac(1), 1 + i % 2, 2 - i % 2, t0);
        if log.has_pending() {
            reported.extend(log.take().iter().copied());
        }
    }
    assert_eq!(reported.len(), MOVES_PER_SEC as usize);
    assert!(reported.iter().all(|m| m.suppressed == 0));
    // Nothing more this second, not even the suppressed count.
    assert_eq!(log.take_suppressed(t0), None);
    // Next second: the count goes out at the tick...
    let t1 = t0 + Duration::from_secs(1);
    assert_eq!(
        log.take_suppressed(t1),
        Some(100 - u64::from(MOVES_PER_SEC))
    );
    assert_eq!(log.take_suppressed(t1), None, "reported once");
    // ... or with the next reported move. One batch notes at most 8.
    for _ in 0..15 {
        log.note(0, mac(2), 1, 2, t1);
    }
    assert_eq!(log.take().iter().count(), 8);
    let t2 = t1 + Duration::from_secs(1);
    log.note(0, mac(3), 2, 1, t2);
    let got: Vec<MacMove> = log.take().iter().copied().collect();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].mac, mac(3));
    assert_eq!(got[0].suppressed, 7, "the suppressed moves ride along");
    assert_eq!((got[0].from, got[0].to), (2, 1));
}

#[test]
fn a_batch_notes_a_bounded_number_of_moves() {
    let mut log = MoveLog::default();
    log.set_enabled(true);
    for i in 0..32 {
        log.note(0, mac(i), 1, 2, Duration::ZERO);
    }
    let n = log.take().iter().count();
    assert!(n <= MOVES_PER_SEC as usize);
    assert!(log.take().is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn a_full_queue_counts_and_monitors_hear_of_losses() {
    let hub = Hub::new();
    let mut rx = hub.subscribe();
    let link = |up| DpEventKind::Link {
        port: Name::new("p1"),
        up,
    };
    for i in 0..(QUEUE_LEN + 7) {
        hub.push(link(i % 2 == 0));
    }
    assert_eq!(hub.pump_once(), QUEUE_LEN + 1);
    let first: Event = serde_json::from_str(&rx.try_recv().unwrap()).unwrap();
    assert_eq!(first.kind, EventKind::Lost { count: 7 });
    let second: Event = serde_json::from_str(&rx.try_recv().unwrap()).unwrap();
    assert!(matches!(second.kind, EventKind::Link { up: true, .. }));
}

#[tokio::test(flavor = "current_thread")]
async fn a_lagging_monitor_is_told_how_many_it_missed_and_others_are_not_slowed() {
    let hub = Hub::new();
    let mut slow = hub.subscribe();
    let mut fast = hub.subscribe();
    let extra = 10;
    for i in 0..(CLIENT_BACKLOG + extra) {
        hub.publish(EventKind::Lost { count: i as u64 });
        // The fast one keeps up.
        assert!(fast.try_recv().is_ok());
    }
    match slow.try_recv() {
        Err(TryRecvError::Lagged(n)) => assert_eq!(n, extra as u64),
        other => panic!("expected a lag, got {other:?}"),
    }
    // Then it goes on from the oldest kept line.
    assert!(slow.try_recv().is_ok());
    assert_eq!(hub.monitors(), 2);
}
