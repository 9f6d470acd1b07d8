//! `vsctl trace BR in_port=PORT ...`: the request from its options, and the
//! report as stage lines.

use anyhow::{anyhow, bail};
use vswitch::control::protocol::{Request, TraceReport};

use crate::args::parse_options;

pub const USAGE: &str =
    "in_port=PORT and either src=MAC dst=MAC [vlan=N] [ethertype=0xNNNN] or hex=FRAME";

pub fn request(bridge: &str, words: &[String]) -> anyhow::Result<Request> {
    let mut o = parse_options(words)?;
    let in_port = o
        .remove("in_port")
        .ok_or_else(|| anyhow!("trace needs {USAGE}"))?;
    let mac = |v: Option<String>, key: &str| {
        v.map(|m| m.parse().map_err(|e| anyhow!("{key}={m:?}: {e}")))
            .transpose()
    };
    let src = mac(o.remove("src"), "src")?;
    let dst = mac(o.remove("dst"), "dst")?;
    let vlan = o
        .remove("vlan")
        .map(|v| {
            v.parse::<u16>()
                .ok()
                .filter(|v| *v <= 4095)
                .ok_or_else(|| anyhow!("vlan={v:?}: expected 0 to 4095"))
        })
        .transpose()?;
    let ethertype = o
        .remove("ethertype")
        .map(|t| {
            let digits = t.trim_start_matches("0x").trim_start_matches("0X");
            u16::from_str_radix(digits, 16)
                .map_err(|_| anyhow!("ethertype={t:?}: expected hex like 0x0800"))
        })
        .transpose()?;
    let hex = o.remove("hex");
    if let Some(k) = o.keys().next() {
        bail!("unknown option {k:?}: trace takes {USAGE}");
    }
    Ok(Request::Trace {
        bridge: bridge.to_string(),
        in_port,
        vlan,
        src,
        dst,
        ethertype,
        hex,
    })
}

pub fn render(data: serde_json::Value) -> anyhow::Result<String> {
    let r: TraceReport = serde_json::from_value(data)
        .map_err(|e| anyhow!("unexpected reply shape from vswitchd: {e}"))?;
    let mut out = vec![format!(
        "bridge {}, in_port {}, {}-byte frame",
        r.bridge, r.in_port, r.frame_len
    )];
    for s in &r.stages {
        out.push(format!("  {:<14} {}", s.stage, s.decision));
    }
    match (&r.drop, r.outputs.is_empty()) {
        (Some(reason), _) => out.push(format!("=> dropped ({reason})")),
        (None, true) => out.push("=> no output".into()),
        (None, false) => {
            let ports: Vec<String> = r
                .outputs
                .iter()
                .map(|o| match (&o.encap, o.vlan_tag) {
                    (Some(e), _) => format!("{} ({e})", o.port),
                    (None, Some(v)) => format!("{} (tagged {v})", o.port),
                    (None, None) => o.port.clone(),
                })
                .collect();
            out.push(format!("=> out {}", ports.join(", ")));
        }
    }
    Ok(out.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_become_a_request() {
        let r = request(
            "br0",
            &words(&[
                "in_port=p1",
                "src=02:00:00:00:00:01",
                "dst=ff:ff:ff:ff:ff:ff",
                "vlan=10",
                "ethertype=0x0806",
            ]),
        )
        .unwrap();
        let Request::Trace {
            in_port,
            vlan,
            ethertype,
            ..
        } = r
        else {
            panic!("{r:?}")
        };
        assert_eq!(
            (in_port.as_str(), vlan, ethertype),
            ("p1", Some(10), Some(0x0806))
        );
        for bad in [
            vec!["src=02:00:00:00:00:01"],
            vec!["in_port=p1", "vlan=4096"],
            vec!["in_port=p1", "src=nope"],
            vec!["in_port=p1", "colour=red"],
            vec!["in_port=p1", "ethertype=zz"],
        ] {
            assert!(request("br0", &words(&bad)).is_err(), "{bad:?}");
        }
    }
}
