//! One link of the bond: its actor and partner information, the state of
//! each machine and its timers (as deadlines on the caller's clock).

use std::time::Duration;

use super::mux::MuxState;
use super::periodic::PeriodicState;
use super::receive::RxState;
use super::transmit::TxLimiter;
use super::{admin_partner, Config, Rate};
use crate::wire::lacp::{Lacpdu, PortInfo, PortState};

/// Whether the selection logic put the member in the aggregator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selected {
    Selected,
    Unselected,
}

impl Selected {
    pub fn as_str(self) -> &'static str {
        match self {
            Selected::Selected => "selected",
            Selected::Unselected => "unselected",
        }
    }
}

/// What the member counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberCounters {
    pub lacpdus_in: u64,
    pub lacpdus_out: u64,
    /// Slow protocols PDUs that did not parse (short, unknown subtype or
    /// version, bad TLV): dropped without any effect.
    pub bad_in: u64,
    pub markers_in: u64,
    pub marker_responses_out: u64,
}

/// One link's LACP state.
#[derive(Debug, Clone)]
pub struct Member {
    /// The link is up (carrier and administratively).
    pub(super) port_enabled: bool,
    /// Actor_Oper: what we say about ourselves on this link.
    pub(super) actor: PortInfo,
    /// Partner_Oper: what we know of the other end.
    pub(super) partner: PortInfo,
    /// Partner_Admin: the partner assumed when none speaks.
    pub(super) admin_partner: PortInfo,
    pub(super) rx: RxState,
    pub(super) mux: MuxState,
    pub(super) periodic: PeriodicState,
    pub(super) selected: Selected,
    /// Need To Transmit.
    pub(super) ntt: bool,
    pub(super) current_while: Option<Duration>,
    pub(super) periodic_timer: Option<Duration>,
    pub(super) wait_while: Option<Duration>,
    pub(super) limiter: TxLimiter,
    pub counters: MemberCounters,
}

impl Member {
    /// Member `index` (LACP port number `index + 1`), link down.
    pub(super) fn new(cfg: &Config, index: usize) -> Member {
        let mut state = PortState(PortState::ACTIVITY | PortState::AGGREGATION);
        state.set(PortState::TIMEOUT, cfg.rate == Rate::Fast);
        let mut m = Member {
            port_enabled: false,
            actor: PortInfo {
                system_priority: cfg.system_priority,
                system: cfg.system,
                key: cfg.key,
                port_priority: cfg.port_priority,
                port: index as u16 + 1,
                state,
            },
            partner: PortInfo::default(),
            admin_partner: admin_partner(cfg),
            rx: RxState::Initialize,
            mux: MuxState::Detached,
            periodic: PeriodicState::NoPeriodic,
            selected: Selected::Unselected,
            ntt: false,
            current_while: None,
            periodic_timer: None,
            wait_while: None,
            limiter: TxLimiter::default(),
            counters: MemberCounters::default(),
        };
        m.rx_initialize();
        m
    }

    pub fn link_up(&self) -> bool {
        self.port_enabled
    }

    pub fn actor(&self) -> &PortInfo {
        &self.actor
    }

    pub fn partner(&self) -> &PortInfo {
        &self.partner
    }

    pub fn rx_state(&self) -> RxState {
        self.rx
    }

    pub fn mux_state(&self) -> MuxState {
        self.mux
    }

    pub fn periodic_state(&self) -> PeriodicState {
        self.periodic
    }

    pub fn selected(&self) -> Selected {
        self.selected
    }

    /// Whether a partner has spoken on this link and its information has
    /// not been replaced by the defaults.
    pub fn has_partner(&self) -> bool {
        !self.actor.state.has(PortState::DEFAULTED)
    }

    pub fn collecting(&self) -> bool {
        matches!(self.mux, MuxState::Collecting | MuxState::Distributing)
    }

    pub fn distributing(&self) -> bool {
        self.mux == MuxState::Distributing
    }

    pub(super) fn partner_sync(&self) -> bool {
        self.partner.state.has(PortState::SYNCHRONIZATION)
    }

    pub(super) fn partner_collecting(&self) -> bool {
        self.partner.state.has(PortState::COLLECTING)
    }

    pub(super) fn partner_short_timeout(&self) -> bool {
        self.partner.state.has(PortState::TIMEOUT)
    }

    /// The LACPDU this member sends: our info and what we know of the
    /// partner.
    pub(super) fn lacpdu(&self) -> Lacpdu {
        Lacpdu {
            actor: self.actor,
            partner: self.partner,
            collector_max_delay: 0,
        }
    }
}

/// Whether `deadline` has passed at `now`.
#[inline]
pub(super) fn expired(deadline: Option<Duration>, now: Duration) -> bool {
    deadline.is_some_and(|d| now >= d)
}
