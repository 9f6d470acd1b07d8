//! Options of `type=bond` ports.

use super::spec::parse_number;
use crate::control::protocol::Options;
use crate::lacp::{Rate, MAX_MEMBERS};
use crate::port::bond::{BondConfig, BondMode, HashPolicy};
use crate::port::validate_ifname;
use crate::wire::MacAddr;

/// Every option a bond port takes.
pub const KEYS: &[&str] = &[
    "type",
    "members",
    "mode",
    "hash",
    "primary",
    "lacp_rate",
    "lacp_system",
    "lacp_system_priority",
    "lacp_key",
    "lacp_fallback",
];

/// Options that only mean something with `mode=lacp`.
const LACP_ONLY: &[&str] = &[
    "hash",
    "lacp_rate",
    "lacp_system",
    "lacp_system_priority",
    "lacp_key",
    "lacp_fallback",
];

/// A priority or key: 1 to 65535 (0 is reserved).
fn parse_u16(key: &str, value: &str) -> Result<u16, String> {
    let v: u32 = parse_number(key, value)?;
    u16::try_from(v)
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("{key}={v} out of range: 1 to 65535"))
}

/// Parses the options of bond port `name` (`type=bond` already checked).
pub fn parse(options: &Options) -> Result<BondConfig, String> {
    let members_opt = options
        .get("members")
        .ok_or("type=bond needs members=IF1,IF2[,...]")?;
    let members: Vec<String> = members_opt.split(',').map(str::to_string).collect();
    if members.len() > MAX_MEMBERS {
        return Err(format!(
            "members: {} interfaces, at most {MAX_MEMBERS}",
            members.len()
        ));
    }
    for (i, m) in members.iter().enumerate() {
        validate_ifname(m).map_err(|e| format!("members: {e}"))?;
        if members[..i].contains(m) {
            return Err(format!("members: {m:?} appears twice"));
        }
    }
    let mode = match options.get("mode").map(String::as_str) {
        Some("lacp") => BondMode::Lacp,
        Some("active-backup") => BondMode::ActiveBackup,
        Some(other) => return Err(format!("mode={other:?}: expected lacp or active-backup")),
        None => return Err("type=bond needs mode=lacp|active-backup".into()),
    };
    if mode == BondMode::ActiveBackup {
        if let Some(k) = LACP_ONLY.iter().find(|k| options.contains_key(**k)) {
            return Err(format!("{k} applies to mode=lacp only"));
        }
    }
    let primary = match options.get("primary") {
        None => None,
        Some(p) => Some(
            members
                .iter()
                .position(|m| m == p)
                .ok_or_else(|| format!("primary={p:?} is not one of the members"))?,
        ),
    };
    let lacp_rate = match options.get("lacp_rate").map(String::as_str) {
        None | Some("slow") => Rate::Slow,
        Some("fast") => Rate::Fast,
        Some(other) => return Err(format!("lacp_rate={other:?}: expected fast or slow")),
    };
    let hash = match options.get("hash") {
        None => HashPolicy::L34,
        Some(h) => h.parse()?,
    };
    let lacp_system = match options.get("lacp_system") {
        None => None,
        Some(s) => {
            let mac: MacAddr = s.parse().map_err(|e| format!("lacp_system={s:?}: {e}"))?;
            if !mac.is_learnable() {
                return Err(format!(
                    "lacp_system={mac}: must be a unicast, non-zero MAC"
                ));
            }
            Some(mac)
        }
    };
    let lacp_system_priority = match options.get("lacp_system_priority") {
        None => 65535,
        Some(v) => parse_u16("lacp_system_priority", v)?,
    };
    let lacp_key = match options.get("lacp_key") {
        None => 1,
        Some(v) => parse_u16("lacp_key", v)?,
    };
    let lacp_fallback = match options.get("lacp_fallback").map(String::as_str) {
        None | Some("off") => false,
        Some("on") => true,
        Some(other) => return Err(format!("lacp_fallback={other:?}: expected on or off")),
    };
    if mode == BondMode::Lacp && primary.is_some() && !lacp_fallback {
        return Err("primary with mode=lacp picks the fallback link: set lacp_fallback=on".into());
    }
    Ok(BondConfig {
        members,
        mode,
        hash,
        primary,
        lacp_rate,
        lacp_system,
        lacp_system_priority,
        lacp_key,
        lacp_fallback,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> Options {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_and_full_options() {
        let b = parse(&opts(&[("members", "eth0,eth1"), ("mode", "lacp")])).unwrap();
        assert_eq!(b.members, ["eth0", "eth1"]);
        assert_eq!(
            (b.mode, b.hash, b.lacp_rate),
            (BondMode::Lacp, HashPolicy::L34, Rate::Slow)
        );
        assert_eq!(
            (b.lacp_system, b.lacp_system_priority, b.lacp_key),
            (None, 65535, 1)
        );
        assert!(!b.lacp_fallback && b.primary.is_none());
        let b = parse(&opts(&[
            ("members", "a,b,c"),
            ("mode", "lacp"),
            ("hash", "l2"),
            ("lacp_rate", "fast"),
            ("lacp_system", "02:00:00:00:00:09"),
            ("lacp_system_priority", "100"),
            ("lacp_key", "7"),
            ("lacp_fallback", "on"),
            ("primary", "c"),
        ]))
        .unwrap();
        assert_eq!(
            (b.hash, b.lacp_rate, b.primary),
            (HashPolicy::L2, Rate::Fast, Some(2))
        );
        assert_eq!(b.lacp_system, Some("02:00:00:00:00:09".parse().unwrap()));
        assert_eq!(
            (b.lacp_system_priority, b.lacp_key, b.lacp_fallback),
            (100, 7, true)
        );
        let ab = parse(&opts(&[
            ("members", "a,b"),
            ("mode", "active-backup"),
            ("primary", "b"),
        ]))
        .unwrap();
        assert_eq!((ab.mode, ab.primary), (BondMode::ActiveBackup, Some(1)));
        let one = parse(&opts(&[("members", "a"), ("mode", "active-backup")])).unwrap();
        assert_eq!(one.members.len(), 1);
    }

    #[test]
    fn bad_options_are_refused() {
        let nine = "a,b,c,d,e,f,g,h,i";
        for (bad, why) in [
            (opts(&[("mode", "lacp")]), "members"),
            (opts(&[("members", "a,b")]), "mode"),
            (opts(&[("members", ""), ("mode", "lacp")]), "members"),
            (opts(&[("members", "a,,b"), ("mode", "lacp")]), "members"),
            (opts(&[("members", "a,a"), ("mode", "lacp")]), "twice"),
            (opts(&[("members", nine), ("mode", "lacp")]), "at most 8"),
            (opts(&[("members", "a/b"), ("mode", "lacp")]), "members"),
            (opts(&[("members", "a,b"), ("mode", "roundrobin")]), "mode"),
            (
                opts(&[("members", "a,b"), ("mode", "lacp"), ("hash", "l5")]),
                "hash",
            ),
            (
                opts(&[("members", "a,b"), ("mode", "lacp"), ("lacp_rate", "x")]),
                "lacp_rate",
            ),
            (
                opts(&[("members", "a,b"), ("mode", "lacp"), ("lacp_key", "0")]),
                "lacp_key",
            ),
            (
                opts(&[("members", "a,b"), ("mode", "lacp"), ("lacp_key", "70000")]),
                "lacp_key",
            ),
            (
                opts(&[
                    ("members", "a,b"),
                    ("mode", "lacp"),
                    ("lacp_system", "ff:ff:ff:ff:ff:ff"),
                ]),
                "unicast",
            ),
            (
                opts(&[
                    ("members", "a,b"),
                    ("mode", "lacp"),
                    ("lacp_fallback", "yes"),
                ]),
                "fallback",
            ),
            (
                opts(&[
                    ("members", "a,b"),
                    ("mode", "active-backup"),
                    ("primary", "c"),
                ]),
                "members",
            ),
            (
                opts(&[
                    ("members", "a,b"),
                    ("mode", "active-backup"),
                    ("hash", "l2"),
                ]),
                "lacp only",
            ),
            (
                opts(&[("members", "a,b"), ("mode", "lacp"), ("primary", "a")]),
                "lacp_fallback",
            ),
        ] {
            match parse(&bad) {
                Err(e) => assert!(e.contains(why), "{bad:?}: {e}"),
                Ok(b) => panic!("{bad:?} accepted: {b:?}"),
            }
        }
    }
}
