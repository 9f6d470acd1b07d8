//! `vsctl port show` for a vhost-user port: the connection, the negotiated
//! features and a row per virtqueue, instead of the raw JSON.

use serde_json::Value;

use crate::render::table;

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    }
}

/// The lines for `details.vhostuser`, or `None` when `details` has none.
pub fn render(details: &Value) -> Option<Vec<String>> {
    let v = details.get("vhostuser")?;
    let mut out = vec![
        format!(
            "vhost-user: {} ({} socket {})",
            text(&v["state"]),
            text(&v["mode"]),
            text(&v["socket"])
        ),
        format!(
            "queue pairs: {} active of {}   connects: {}   ring faults: {}   protocol errors: {}",
            text(&v["active_queue_pairs"]),
            text(&v["queue_pairs"]),
            text(&v["connects"]),
            text(&v["ring_faults"]),
            text(&v["protocol_errors"])
        ),
    ];
    let features: Vec<String> = v["features"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    out.push(format!(
        "features: {}",
        if features.is_empty() {
            "-".to_string()
        } else {
            features.join(" ")
        }
    ));
    for (key, label) in [
        ("mac", "guest MAC offered"),
        ("last_disconnect", "last disconnect"),
        ("connect_error", "connect error"),
    ] {
        if !v[key].is_null() {
            out.push(format!("{label}: {}", text(&v[key])));
        }
    }
    let rows = v["queues"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|q| {
            vec![
                text(&q["index"]),
                text(&q["direction"]),
                if q["enabled"] == Value::Bool(true) {
                    "yes".into()
                } else {
                    "no".into()
                },
                text(&q["size"]),
                text(&q["frames"]),
                text(&q["bytes"]),
                text(&q["drops"]),
            ]
        })
        .collect();
    out.push(table(
        &[
            "QUEUE",
            "DIRECTION",
            "RUNNING",
            "SIZE",
            "FRAMES",
            "BYTES",
            "DROPS",
        ],
        rows,
    ));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_state_features_and_queues() {
        let d = serde_json::json!({"vhostuser": {
        "state": "ready", "mode": "client", "socket": "/run/vm1.sock",
        "active_queue_pairs": 1, "queue_pairs": 1, "connects": 2, "ring_faults": 0,
        "protocol_errors": 0, "features": ["MRG_RXBUF", "VERSION_1"], "mac": null,
        "last_disconnect": "peer disconnected", "connect_error": null,
        "queues": [
            {"index": 0, "direction": "to_guest", "enabled": true, "size": 256,
             "frames": 5, "bytes": 320, "drops": 1},
            {"index": 1, "direction": "from_guest", "enabled": true, "size": 256,
             "frames": 7, "bytes": 448, "drops": 0}
        ]}});
        let text = render(&d).unwrap().join("\n");
        assert!(
            text.contains("vhost-user: ready (client socket /run/vm1.sock)"),
            "{text}"
        );
        assert!(text.contains("features: MRG_RXBUF VERSION_1"), "{text}");
        assert!(
            text.contains("last disconnect: peer disconnected"),
            "{text}"
        );
        assert!(!text.contains("guest MAC"), "{text}");
        assert!(text.contains("from_guest"), "{text}");
        assert!(render(&serde_json::json!({"null": {}})).is_none());
    }
}
