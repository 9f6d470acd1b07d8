//! MAC moves, rate-limited per bridge.
//!
//! A MAC that moves between ports is worth telling an operator (a VM
//! migrated, or a loop), but a loop moves MACs thousands of times a second:
//! each bridge reports at most `MOVES_PER_SEC` moves a second and counts the
//! rest. The next reported move carries that count (`suppressed`); if moves
//! stop, the count goes out on its own at the next tick.
//!
//! `note` runs on the per-packet path (only when `learn` says `Moved`): no
//! allocation, a few compares. The datapath takes the noted moves after
//! each batch (`take`) and resolves port names then.

use std::time::Duration;

use crate::fdb::PortId;
use crate::wire::MacAddr;

/// Moves a bridge reports per second.
pub const MOVES_PER_SEC: u32 = 10;
/// Moves noted between two `take`s (one batch); more are suppressed.
const PENDING: usize = 8;

/// One reported move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacMove {
    pub vlan: u16,
    pub mac: MacAddr,
    pub from: PortId,
    pub to: PortId,
    /// Moves left out since the previous reported one.
    pub suppressed: u64,
}

impl MacMove {
    const NONE: MacMove = MacMove {
        vlan: 0,
        mac: MacAddr([0; 6]),
        from: 0,
        to: 0,
        suppressed: 0,
    };
}

/// Moves noted in one batch.
#[derive(Debug, Clone, Copy)]
pub struct Pending {
    moves: [MacMove; PENDING],
    n: usize,
}

impl Pending {
    pub fn iter(&self) -> impl Iterator<Item = &MacMove> {
        self.moves[..self.n].iter()
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
}

/// A bridge's rate limiter and the moves noted since the last `take`.
#[derive(Debug, Clone)]
pub struct MoveLog {
    /// Off unless someone can hear events (the daemon); then `note` is one
    /// branch.
    enabled: bool,
    pending: Pending,
    /// The second the tokens were last refilled in.
    second: u64,
    tokens: u32,
    suppressed: u64,
}

impl Default for MoveLog {
    fn default() -> Self {
        MoveLog {
            enabled: false,
            pending: Pending {
                moves: [MacMove::NONE; PENDING],
                n: 0,
            },
            second: u64::MAX,
            tokens: 0,
            suppressed: 0,
        }
    }
}

impl MoveLog {
    pub fn set_enabled(&mut self, enabled: bool) {
        self.enabled = enabled;
    }

    fn refill(&mut self, now: Duration) {
        let s = now.as_secs();
        if s != self.second {
            self.second = s;
            self.tokens = MOVES_PER_SEC;
        }
    }

    /// `mac` of `vlan` moved from port `from` to `to`.
    #[inline]
    pub fn note(&mut self, vlan: u16, mac: MacAddr, from: PortId, to: PortId, now: Duration) {
        if !self.enabled {
            return;
        }
        self.refill(now);
        if self.tokens > 0 && self.pending.n < PENDING {
            self.tokens -= 1;
            self.pending.moves[self.pending.n] = MacMove {
                vlan,
                mac,
                from,
                to,
                suppressed: std::mem::take(&mut self.suppressed),
            };
            self.pending.n += 1;
        } else {
            self.suppressed += 1;
        }
    }

    /// Whether `take` has anything.
    #[inline]
    pub fn has_pending(&self) -> bool {
        self.pending.n > 0
    }

    /// The moves noted since the last call.
    pub fn take(&mut self) -> Pending {
        let p = self.pending;
        self.pending.n = 0;
        p
    }

    /// At a tick: the count of suppressed moves not yet reported, if the
    /// rate allows an event now.
    pub fn take_suppressed(&mut self, now: Duration) -> Option<u64> {
        if !self.enabled || self.suppressed == 0 {
            return None;
        }
        self.refill(now);
        if self.tokens == 0 {
            return None;
        }
        self.tokens -= 1;
        Some(std::mem::take(&mut self.suppressed))
    }
}
