//! The receive machine (802.1AX-2014 6.4.12, figure 6-18): records what
//! the partner says, and forgets it when the partner goes quiet.
//!
//! ```text
//! INITIALIZE -> PORT_DISABLED --link up--> EXPIRED --current_while--> DEFAULTED
//!                    ^                       |  ^                         |
//!               link down (any state)     PDU|  |current_while            |PDU
//!                                            v  |                         v
//!                                          CURRENT <----------------------'
//! ```
//! In EXPIRED the partner is out of sync and asked (by our short timeout)
//! to speak quickly; in DEFAULTED the partner is the admin default.

use std::time::Duration;

use super::member::{expired, Member, Selected};
use super::{LONG_TIMEOUT, SHORT_TIMEOUT};
use crate::wire::lacp::{Lacpdu, PortInfo, PortState};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxState {
    Initialize,
    PortDisabled,
    Expired,
    Defaulted,
    Current,
}

impl RxState {
    pub fn as_str(self) -> &'static str {
        match self {
            RxState::Initialize => "initialize",
            RxState::PortDisabled => "port_disabled",
            RxState::Expired => "expired",
            RxState::Defaulted => "defaulted",
            RxState::Current => "current",
        }
    }
}

/// The fields that identify a partner's port in the aggregation, compared
/// by update_Selected and recordPDU.
fn same_port(a: &PortInfo, b: &PortInfo) -> bool {
    a.port == b.port
        && a.port_priority == b.port_priority
        && a.system == b.system
        && a.system_priority == b.system_priority
        && a.key == b.key
        && a.state.has(PortState::AGGREGATION) == b.state.has(PortState::AGGREGATION)
}

impl Member {
    /// INITIALIZE, then PORT_DISABLED.
    pub(super) fn rx_initialize(&mut self) {
        self.selected = Selected::Unselected;
        self.record_default();
        self.actor.state.set(PortState::EXPIRED, false);
        self.rx = RxState::Initialize;
        self.rx_port_disabled();
    }

    fn rx_port_disabled(&mut self) {
        self.rx = RxState::PortDisabled;
        self.partner.state.set(PortState::SYNCHRONIZATION, false);
        self.current_while = None;
    }

    fn rx_expired(&mut self, now: Duration) {
        self.rx = RxState::Expired;
        self.partner.state.set(PortState::SYNCHRONIZATION, false);
        self.partner.state.set(PortState::TIMEOUT, true);
        self.current_while = Some(now + SHORT_TIMEOUT);
        self.actor.state.set(PortState::EXPIRED, true);
    }

    fn rx_defaulted(&mut self) {
        // update_Default_Selected
        if !same_port(&self.admin_partner, &self.partner) {
            self.selected = Selected::Unselected;
        }
        self.record_default();
        self.actor.state.set(PortState::EXPIRED, false);
        self.rx = RxState::Defaulted;
        self.current_while = None;
    }

    /// recordDefault: the partner becomes the admin default.
    fn record_default(&mut self) {
        self.partner = self.admin_partner;
        self.actor.state.set(PortState::DEFAULTED, true);
    }

    /// The link went up or down.
    pub(super) fn rx_port_enabled(&mut self, up: bool, now: Duration) {
        if up == self.port_enabled {
            return;
        }
        self.port_enabled = up;
        if up {
            if self.rx == RxState::PortDisabled {
                self.rx_expired(now);
            }
            // Speak at once rather than at the first periodic expiry.
            self.ntt = true;
        } else {
            self.rx_port_disabled();
        }
    }

    /// An LACPDU arrived: CURRENT.
    pub(super) fn rx_pdu(&mut self, pdu: &Lacpdu, now: Duration) {
        if !self.port_enabled || self.rx == RxState::PortDisabled {
            return;
        }
        // update_Selected: a different partner port means reselection.
        if !same_port(&pdu.actor, &self.partner) {
            self.selected = Selected::Unselected;
        }
        // update_NTT: tell the partner if its view of us is stale.
        let bits = PortState::ACTIVITY
            | PortState::TIMEOUT
            | PortState::SYNCHRONIZATION
            | PortState::AGGREGATION;
        if !same_port(&pdu.partner, &self.actor)
            || pdu.partner.state.0 & bits != self.actor.state.0 & bits
        {
            self.ntt = true;
        }
        self.record_pdu(pdu);
        let timeout = if self.actor.state.has(PortState::TIMEOUT) {
            SHORT_TIMEOUT
        } else {
            LONG_TIMEOUT
        };
        self.current_while = Some(now + timeout);
        self.actor.state.set(PortState::EXPIRED, false);
        self.rx = RxState::Current;
    }

    /// recordPDU: the partner's info is what it says of itself; it is in
    /// sync only if it has our info right (or is an individual link) and
    /// says it is in sync.
    fn record_pdu(&mut self, pdu: &Lacpdu) {
        self.partner = pdu.actor;
        self.actor.state.set(PortState::DEFAULTED, false);
        let knows_us = same_port(&pdu.partner, &self.actor);
        let individual = !pdu.actor.state.has(PortState::AGGREGATION);
        let sync = pdu.actor.state.has(PortState::SYNCHRONIZATION) && (knows_us || individual);
        self.partner.state.set(PortState::SYNCHRONIZATION, sync);
    }

    /// current_while expiry: CURRENT -> EXPIRED -> DEFAULTED.
    pub(super) fn rx_timer(&mut self, now: Duration) {
        if !expired(self.current_while, now) {
            return;
        }
        match self.rx {
            RxState::Current => self.rx_expired(now),
            RxState::Expired => self.rx_defaulted(),
            _ => self.current_while = None,
        }
    }
}
