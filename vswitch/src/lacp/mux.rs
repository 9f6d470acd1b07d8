//! The mux machine, independent control (802.1AX-2014 6.4.15, figure
//! 6-21): attaches a selected link to the aggregator and turns collecting,
//! then distributing, on as the partner follows.
//!
//! ```text
//! DETACHED --selected--> WAITING --wait_while over--> ATTACHED
//!    ^                      |                           |  ^
//!    '-----unselected-------'----unselected-------------'  |partner out of sync
//!                                            partner in sync|  |
//!                                                          v  |
//!              DISTRIBUTING <--partner collecting-- COLLECTING
//!                   '-------partner stops collecting---->'
//! ```

use std::time::Duration;

use super::member::{expired, Member, Selected};
use super::AGGREGATE_WAIT;
use crate::wire::lacp::PortState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MuxState {
    Detached,
    Waiting,
    Attached,
    Collecting,
    Distributing,
}

impl MuxState {
    pub fn as_str(self) -> &'static str {
        match self {
            MuxState::Detached => "detached",
            MuxState::Waiting => "waiting",
            MuxState::Attached => "attached",
            MuxState::Collecting => "collecting",
            MuxState::Distributing => "distributing",
        }
    }
}

impl Member {
    /// One transition, if one is due; returns whether the state changed.
    pub(super) fn mux_step(&mut self, now: Duration) -> bool {
        let selected = self.selected == Selected::Selected;
        let next = match self.mux {
            MuxState::Detached if selected => MuxState::Waiting,
            MuxState::Waiting if !selected => MuxState::Detached,
            MuxState::Waiting if expired(self.wait_while, now) => MuxState::Attached,
            MuxState::Attached if !selected => MuxState::Detached,
            MuxState::Attached if self.partner_sync() => MuxState::Collecting,
            MuxState::Collecting if !selected || !self.partner_sync() => MuxState::Attached,
            MuxState::Collecting if self.partner_collecting() => MuxState::Distributing,
            MuxState::Distributing
                if !selected || !self.partner_sync() || !self.partner_collecting() =>
            {
                MuxState::Collecting
            }
            _ => return false,
        };
        self.enter_mux(next, now);
        true
    }

    fn enter_mux(&mut self, state: MuxState, now: Duration) {
        self.mux = state;
        let s = &mut self.actor.state;
        match state {
            MuxState::Detached => {
                s.set(PortState::SYNCHRONIZATION, false);
                s.set(PortState::COLLECTING, false);
                s.set(PortState::DISTRIBUTING, false);
                self.wait_while = None;
                self.ntt = true;
            }
            MuxState::Waiting => self.wait_while = Some(now + AGGREGATE_WAIT),
            MuxState::Attached => {
                s.set(PortState::SYNCHRONIZATION, true);
                s.set(PortState::COLLECTING, false);
                s.set(PortState::DISTRIBUTING, false);
                self.wait_while = None;
                self.ntt = true;
            }
            MuxState::Collecting => {
                s.set(PortState::COLLECTING, true);
                s.set(PortState::DISTRIBUTING, false);
                self.ntt = true;
            }
            MuxState::Distributing => {
                s.set(PortState::DISTRIBUTING, true);
                self.ntt = true;
            }
        }
    }
}
