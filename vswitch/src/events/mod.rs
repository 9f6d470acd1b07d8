//! Events for `vsctl monitor`: what changed, as it happens.
//!
//! Sources:
//! - the datapath: port links going up or down (`links.rs`, a netlink
//!   socket read every tick), bond member links, LACP member states and
//!   active-member changes (raised by the bond as `PortEvent::Status`), and
//!   MAC moves (`moves.rs`, rate-limited per bridge);
//! - the executor: every successful configuration change.
//!
//! The datapath never allocates, locks or waits for an event: it builds a
//! [`DpEvent`] (plain data, names inline) and pushes it on the hub's bounded
//! lock-free queue; when the queue is full the event is counted as lost.
//! The control thread drains that queue, turns each event into an [`Event`]
//! (the JSON shape shared with `vsctl`) and broadcasts it to every monitor
//! client; a client that falls behind is told how many events it missed
//! (`hub.rs`).

mod hub;
mod links;
mod moves;
mod time;

pub use hub::Hub;
pub use links::LinkWatch;
pub use moves::{MacMove, MoveLog, MOVES_PER_SEC};
pub use time::rfc3339;

use serde::{Deserialize, Serialize};

use crate::wire::MacAddr;

/// A port, bridge or interface name held inline (they are 15 bytes at
/// most), so events carry names without allocating.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Name {
    bytes: [u8; 15],
    len: u8,
}

impl Name {
    /// `s`, cut to 15 bytes at a character boundary.
    pub fn new(s: &str) -> Name {
        let mut len = s.len().min(15);
        while !s.is_char_boundary(len) {
            len -= 1;
        }
        let mut bytes = [0u8; 15];
        bytes[..len].copy_from_slice(&s.as_bytes()[..len]);
        Name {
            bytes,
            len: len as u8,
        }
    }

    pub fn as_str(&self) -> &str {
        // Built from a &str cut at a char boundary.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// A state change a port backend reports (a bond's members), without the
/// port's name: the datapath adds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusEvent {
    /// A member's link (carrier and admin state) changed.
    MemberLink { member: Name, up: bool },
    /// LACP let a member collect and/or distribute, or stopped it.
    LacpMember {
        member: Name,
        collecting: bool,
        distributing: bool,
    },
    /// Active-backup: the active member changed (`None`: no member is up).
    ActiveMember {
        member: Option<Name>,
        previous: Option<Name>,
    },
    /// A port without a kernel interface gained or lost its peer (a
    /// vhost-user front end connected with its queues running, or left):
    /// reported as a `link` event.
    PeerLink { up: bool },
}

/// An event as the datapath queues it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DpEvent {
    /// Nanoseconds since the Unix epoch.
    pub time_ns: u64,
    pub kind: DpEventKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpEventKind {
    Link {
        port: Name,
        up: bool,
    },
    Port {
        port: Name,
        status: StatusEvent,
    },
    MacMove {
        bridge: Name,
        vlan: u16,
        mac: MacAddr,
        from: Name,
        to: Name,
        /// Moves in this bridge left out since the last one reported.
        suppressed: u64,
    },
    MovesSuppressed {
        bridge: Name,
        count: u64,
    },
}

/// One line of `vsctl monitor --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// RFC 3339, UTC, microseconds.
    pub time: String,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// A port's interface went up or down.
    Link { port: String, up: bool },
    /// A bond member's link went up or down.
    MemberLink {
        port: String,
        member: String,
        up: bool,
    },
    /// A bond member's LACP state: whether it collects and distributes.
    Lacp {
        port: String,
        member: String,
        collecting: bool,
        distributing: bool,
    },
    /// An active-backup bond's active member changed: a failover when
    /// there was another one before.
    ActiveMember {
        port: String,
        member: Option<String>,
        previous: Option<String>,
    },
    /// A MAC was learned on another port than before.
    MacMove {
        bridge: String,
        vlan: u16,
        mac: MacAddr,
        from: String,
        to: String,
        /// Moves in this bridge not reported since the previous event
        /// (over the rate limit).
        suppressed: u64,
    },
    /// Moves not reported (over the rate limit) and not yet counted in a
    /// later `mac_move`.
    MacMovesSuppressed { bridge: String, count: u64 },
    /// A configuration change, with the request's arguments.
    Config {
        verb: String,
        args: serde_json::Value,
    },
    /// Events this client did not get: it read too slowly, or the
    /// datapath's queue was full.
    Lost { count: u64 },
}

impl Event {
    pub fn new(time_ns: u64, kind: EventKind) -> Event {
        Event {
            time: rfc3339(time_ns),
            kind,
        }
    }

    /// One JSON line, without the newline.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(
                r#"{{"time":"{}","event":"lost","count":1,"error":"{e}"}}"#,
                self.time
            )
        })
    }

    /// The line `vsctl monitor` prints for people.
    pub fn to_text(&self) -> String {
        format!(
            "{}  {:<14} {}",
            self.time,
            self.kind.name(),
            self.kind.text()
        )
    }
}

fn up_down(up: bool) -> &'static str {
    if up {
        "up"
    } else {
        "down"
    }
}

impl EventKind {
    /// The value of the `event` key.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Link { .. } => "link",
            EventKind::MemberLink { .. } => "member_link",
            EventKind::Lacp { .. } => "lacp",
            EventKind::ActiveMember { .. } => "active_member",
            EventKind::MacMove { .. } => "mac_move",
            EventKind::MacMovesSuppressed { .. } => "mac_moves_suppressed",
            EventKind::Config { .. } => "config",
            EventKind::Lost { .. } => "lost",
        }
    }

    fn text(&self) -> String {
        match self {
            EventKind::Link { port, up } => format!("port {port} {}", up_down(*up)),
            EventKind::MemberLink { port, member, up } => {
                format!("bond {port} member {member} {}", up_down(*up))
            }
            EventKind::Lacp {
                port,
                member,
                collecting,
                distributing,
            } => {
                let state = match (collecting, distributing) {
                    (true, true) => "collecting, distributing",
                    (true, false) => "collecting",
                    (false, true) => "distributing",
                    (false, false) => "detached",
                };
                format!("bond {port} member {member}: {state}")
            }
            EventKind::ActiveMember {
                port,
                member,
                previous,
            } => match (member, previous) {
                (Some(m), Some(p)) => format!("bond {port} failover: {p} -> {m}"),
                (Some(m), None) => format!("bond {port} active member {m}"),
                (None, _) => format!("bond {port}: no member link is up"),
            },
            EventKind::MacMove {
                bridge,
                vlan,
                mac,
                from,
                to,
                suppressed,
            } => {
                let mut s = format!("{bridge} vlan {vlan} {mac} {from} -> {to}");
                if *suppressed > 0 {
                    s.push_str(&format!(" ({suppressed} more moves not shown)"));
                }
                s
            }
            EventKind::MacMovesSuppressed { bridge, count } => {
                format!("{bridge}: {count} more moves not shown (rate limit)")
            }
            EventKind::Config { verb, args } => {
                let mut words = vec![verb.clone()];
                flatten_args(args, &mut words);
                words.join(" ")
            }
            EventKind::Lost { count } => format!("{count} events lost"),
        }
    }
}

/// `key=value` words of a request's arguments (options inline).
fn flatten_args(v: &serde_json::Value, out: &mut Vec<String>) {
    let Some(map) = v.as_object() else {
        return;
    };
    for (k, v) in map {
        match v {
            serde_json::Value::Object(_) => flatten_args(v, out),
            serde_json::Value::String(s) => out.push(format!("{k}={s}")),
            serde_json::Value::Null => {}
            other => out.push(format!("{k}={other}")),
        }
    }
}

/// Verbs that change the configuration: each success is a `config` event.
/// (`apply` is not one: each step of its plan is, as the verb it runs.)
const CONFIG_VERBS: &[&str] = &[
    "bridge_add",
    "bridge_set",
    "bridge_del",
    "port_add",
    "port_del",
    "port_set",
    "fdb_add",
    "fdb_del",
    "fdb_flush",
    "evpn_set",
    "evpn_del",
];

/// The `config` event a request makes if it succeeds; `None` for reads.
pub fn config_change<T: Serialize>(request: &T) -> Option<EventKind> {
    let v = serde_json::to_value(request).ok()?;
    let verb = v.get("verb")?.as_str()?;
    if !CONFIG_VERBS.contains(&verb) {
        return None;
    }
    Some(EventKind::Config {
        verb: verb.to_string(),
        args: v.get("args").cloned().unwrap_or(serde_json::Value::Null),
    })
}

impl DpEvent {
    /// The shared shape of a datapath event.
    pub fn to_event(&self) -> Event {
        let s = |n: &Name| n.as_str().to_string();
        let kind = match self.kind {
            DpEventKind::Link { port, up } => EventKind::Link { port: s(&port), up },
            DpEventKind::Port { port, status } => match status {
                StatusEvent::MemberLink { member, up } => EventKind::MemberLink {
                    port: s(&port),
                    member: s(&member),
                    up,
                },
                StatusEvent::LacpMember {
                    member,
                    collecting,
                    distributing,
                } => EventKind::Lacp {
                    port: s(&port),
                    member: s(&member),
                    collecting,
                    distributing,
                },
                StatusEvent::ActiveMember { member, previous } => EventKind::ActiveMember {
                    port: s(&port),
                    member: member.as_ref().map(s),
                    previous: previous.as_ref().map(s),
                },
                StatusEvent::PeerLink { up } => EventKind::Link { port: s(&port), up },
            },
            DpEventKind::MacMove {
                bridge,
                vlan,
                mac,
                from,
                to,
                suppressed,
            } => EventKind::MacMove {
                bridge: s(&bridge),
                vlan,
                mac,
                from: s(&from),
                to: s(&to),
                suppressed,
            },
            DpEventKind::MovesSuppressed { bridge, count } => EventKind::MacMovesSuppressed {
                bridge: s(&bridge),
                count,
            },
        };
        Event::new(self.time_ns, kind)
    }
}

#[cfg(test)]
mod tests;
