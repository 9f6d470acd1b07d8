//! The periodic transmission machine (802.1AX-2014 6.4.13, figure 6-19):
//! an LACPDU every second while the partner asks for short timeouts (or we
//! know nothing of it yet), every 30 seconds when it asks for long ones.
//! We are always an active LACP participant, so it runs whenever the link
//! is up.

use std::time::Duration;

use super::member::{expired, Member};
use super::{FAST_PERIODIC, SLOW_PERIODIC};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodicState {
    NoPeriodic,
    FastPeriodic,
    SlowPeriodic,
}

impl PeriodicState {
    pub fn as_str(self) -> &'static str {
        match self {
            PeriodicState::NoPeriodic => "no_periodic",
            PeriodicState::FastPeriodic => "fast_periodic",
            PeriodicState::SlowPeriodic => "slow_periodic",
        }
    }
}

impl Member {
    /// One transition, if one is due; returns whether the state changed.
    /// PERIODIC_TX is transient: it sets NTT and goes straight on to the
    /// fast or slow state.
    pub(super) fn periodic_step(&mut self, now: Duration) -> bool {
        let short = self.partner_short_timeout();
        match self.periodic {
            _ if !self.port_enabled => {
                if self.periodic == PeriodicState::NoPeriodic {
                    return false;
                }
                self.periodic = PeriodicState::NoPeriodic;
                self.periodic_timer = None;
            }
            PeriodicState::NoPeriodic => self.enter_periodic(PeriodicState::FastPeriodic, now),
            PeriodicState::FastPeriodic if !short => {
                self.enter_periodic(PeriodicState::SlowPeriodic, now)
            }
            PeriodicState::SlowPeriodic if short => self.periodic_tx(now),
            PeriodicState::FastPeriodic | PeriodicState::SlowPeriodic
                if expired(self.periodic_timer, now) =>
            {
                self.periodic_tx(now)
            }
            _ => return false,
        }
        true
    }

    fn periodic_tx(&mut self, now: Duration) {
        self.ntt = true;
        let next = if self.partner_short_timeout() {
            PeriodicState::FastPeriodic
        } else {
            PeriodicState::SlowPeriodic
        };
        self.enter_periodic(next, now);
    }

    fn enter_periodic(&mut self, state: PeriodicState, now: Duration) {
        self.periodic = state;
        let period = match state {
            PeriodicState::FastPeriodic => FAST_PERIODIC,
            _ => SLOW_PERIODIC,
        };
        self.periodic_timer = Some(now + period);
    }
}
