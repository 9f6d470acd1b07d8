//! The transmit machine (802.1AX-2014 6.4.16): sends an LACPDU when NTT
//! (need to transmit) is set and the link is up, at most three per
//! Fast_Periodic_Time; a PDU over the limit waits for the next call.

use std::time::Duration;

use super::member::Member;
use super::FAST_PERIODIC;

/// Most LACPDUs per `FAST_PERIODIC` on one link.
pub const MAX_TX_PER_PERIOD: usize = 3;

/// The times of the last `MAX_TX_PER_PERIOD` transmissions.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct TxLimiter {
    sent: [Option<Duration>; MAX_TX_PER_PERIOD],
    next: usize,
}

impl TxLimiter {
    /// Records a transmission at `now` if the limit allows it.
    fn take(&mut self, now: Duration) -> bool {
        let oldest = self.sent[self.next];
        if oldest.is_some_and(|t| now.saturating_sub(t) < FAST_PERIODIC) {
            return false;
        }
        self.sent[self.next] = Some(now);
        self.next = (self.next + 1) % MAX_TX_PER_PERIOD;
        true
    }
}

impl Member {
    /// Whether an LACPDU goes out now; clears NTT if so.
    pub(super) fn transmit(&mut self, now: Duration) -> bool {
        if !self.ntt || !self.port_enabled || !self.limiter.take(now) {
            return false;
        }
        self.ntt = false;
        self.counters.lacpdus_out += 1;
        true
    }
}
