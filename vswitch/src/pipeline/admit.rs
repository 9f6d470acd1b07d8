//! Admission policy of a port: which source MACs may use it, how many MACs
//! it may teach the table, and how many flooded frames per second it may
//! send (storm control).

use std::time::Duration;

use super::vlan::VlanMode;
use crate::wire::MacAddr;

/// Everything an operator sets on a port that the pipeline enforces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortPolicy {
    pub vlan: VlanMode,
    /// When not empty, the only source MACs the port may send from.
    pub allowed_macs: Vec<MacAddr>,
    /// How many MACs the port may teach the table (learned, not static).
    pub max_macs: Option<u32>,
    /// Flooded frames (broadcast, multicast, unknown unicast) per second.
    pub storm_pps: Option<u32>,
}

impl PortPolicy {
    #[inline]
    pub fn source_allowed(&self, src: MacAddr) -> bool {
        self.allowed_macs.is_empty() || self.allowed_macs.contains(&src)
    }
}

/// A token bucket for storm control: `pps` frames a second, bursts of up to
/// one second's worth. Credit is kept in nanoseconds so the arithmetic is
/// exact integers; time is an argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StormBucket {
    cost_ns: u64,
    credit_ns: u64,
    last_ns: u64,
}

const BURST_NS: u64 = 1_000_000_000;

impl StormBucket {
    /// A full bucket for `pps` (at least 1) frames a second.
    pub fn new(pps: u32, now: Duration) -> StormBucket {
        StormBucket {
            cost_ns: BURST_NS / u64::from(pps.max(1)),
            credit_ns: BURST_NS,
            last_ns: now.as_nanos() as u64,
        }
    }

    /// Whether `allow` would let a frame through now, changing nothing.
    pub fn would_allow(&self, now: Duration) -> bool {
        let elapsed = (now.as_nanos() as u64).saturating_sub(self.last_ns);
        (self.credit_ns + elapsed).min(BURST_NS) >= self.cost_ns
    }

    /// Takes one frame's worth of credit if there is enough.
    #[inline]
    pub fn allow(&mut self, now: Duration) -> bool {
        let now_ns = now.as_nanos() as u64;
        let elapsed = now_ns.saturating_sub(self.last_ns);
        self.last_ns = self.last_ns.max(now_ns);
        self.credit_ns = (self.credit_ns + elapsed).min(BURST_NS);
        if self.credit_ns >= self.cost_ns {
            self.credit_ns -= self.cost_ns;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn bucket_allows_a_second_of_burst_then_the_rate() {
        let mut b = StormBucket::new(100, ms(0));
        let burst = (0..1000).filter(|_| b.allow(ms(0))).count();
        assert_eq!(burst, 100);
        assert!(!b.allow(ms(0)));
        // 10 ms later: one frame's worth.
        assert!(b.allow(ms(10)));
        assert!(!b.allow(ms(10)));
        // Over 10 s at 1000 offered per second: about 100 per second pass.
        let mut passed = 0;
        for i in 0..10_000u64 {
            if b.allow(ms(10 + i)) {
                passed += 1;
            }
        }
        assert!((999..=1001).contains(&passed), "{passed}");
    }

    #[test]
    fn bucket_never_holds_more_than_a_second() {
        let mut b = StormBucket::new(10, ms(0));
        let first = (0..100).filter(|_| b.allow(ms(0))).count();
        assert_eq!(first, 10);
        let later = (0..100).filter(|_| b.allow(ms(3_600_000))).count();
        assert_eq!(later, 10);
        // Time going backwards (it should not) is treated as no time.
        assert!(!b.allow(ms(5)));
    }

    #[test]
    fn allowed_macs() {
        let a: MacAddr = "02:00:00:00:00:01".parse().unwrap();
        let b: MacAddr = "02:00:00:00:00:02".parse().unwrap();
        let mut p = PortPolicy::default();
        assert!(p.source_allowed(b));
        p.allowed_macs = vec![a];
        assert!(p.source_allowed(a));
        assert!(!p.source_allowed(b));
    }
}
