//! The selection logic (802.1AX-2014 6.4.14) for a bond that is one
//! aggregator: which partner the aggregator is bound to, and so which
//! members are SELECTED.
//!
//! Members are grouped by their partner's (system priority, system, key);
//! a partner that marks its link individual (aggregation off) forms a group
//! of that one link. A member is a candidate if its link is up and a
//! partner has spoken on it (CURRENT, or EXPIRED with the partner's info
//! still held), or, with fallback, if it is DEFAULTED (then its partner is
//! the admin default: an individual link, so a group of one).
//!
//! The aggregator keeps its group while the group has a candidate
//! ("stable", as Linux's default ad_select), unless it is a fallback group
//! and a real partner has appeared. Otherwise the group with the most
//! candidates wins, real partners before fallback, ties to the group with
//! the lowest member; among fallback groups the primary member wins. Only
//! the members of the chosen group are SELECTED; every other member is
//! UNSELECTED and its mux detaches it.

use super::member::{Member, Selected};
use super::{Config, RxState, MAX_MEMBERS};
use crate::wire::lacp::PortState;
use crate::wire::MacAddr;

/// What members must share to aggregate together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct GroupKey {
    pub system_priority: u16,
    pub system: MacAddr,
    pub key: u16,
    /// For an individual link, the member it is alone with.
    pub individual: Option<usize>,
    /// The partner is the admin default (fallback), not a real one.
    pub fallback: bool,
}

/// The group member `i` belongs to, if it is a candidate.
fn candidate(i: usize, m: &Member, cfg: &Config) -> Option<GroupKey> {
    if !m.port_enabled {
        return None;
    }
    let real = m.has_partner() && matches!(m.rx, RxState::Current | RxState::Expired);
    let fallback = cfg.fallback && m.rx == RxState::Defaulted;
    if !real && !fallback {
        return None;
    }
    let p = &m.partner;
    Some(GroupKey {
        system_priority: p.system_priority,
        system: p.system,
        key: p.key,
        individual: (!p.state.has(PortState::AGGREGATION)).then_some(i),
        fallback: !real,
    })
}

/// Binds the aggregator to a group and marks every member.
pub(super) fn select(members: &mut [Member], aggregator: &mut Option<GroupKey>, cfg: &Config) {
    let mut keys: [Option<GroupKey>; MAX_MEMBERS] = [None; MAX_MEMBERS];
    for (i, m) in members.iter().enumerate().take(MAX_MEMBERS) {
        keys[i] = candidate(i, m, cfg);
    }
    let keys = &keys[..members.len().min(MAX_MEMBERS)];
    let any_real = keys.iter().flatten().any(|k| !k.fallback);
    let size = |k: &GroupKey| keys.iter().flatten().filter(|o| *o == k).count();

    // With fallback and no real partner, the primary link is the one.
    let primary = cfg
        .primary
        .and_then(|p| keys.get(p).copied().flatten())
        .filter(|k| k.fallback && !any_real);
    let keep = aggregator.filter(|k| size(k) > 0 && !(k.fallback && any_real));
    let chosen = primary.or(keep).or_else(|| {
        // Candidates in member order: on equal size the first group (the
        // one with the lowest member) wins.
        let mut best: Option<GroupKey> = None;
        for k in keys.iter().flatten() {
            let better = match &best {
                None => true,
                Some(b) => (!k.fallback, size(k)) > (!b.fallback, size(b)),
            };
            if better {
                best = Some(*k);
            }
        }
        best
    });
    *aggregator = chosen;
    for (i, m) in members.iter_mut().enumerate() {
        let key = keys.get(i).copied().flatten();
        m.selected = if key.is_some() && key == chosen {
            Selected::Selected
        } else {
            Selected::Unselected
        };
    }
}
