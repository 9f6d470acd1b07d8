//! How long the loop spins without traffic before it blocks in epoll.
//!
//! Spinning saves the wake-up (a syscall and a scheduler round trip, some
//! microseconds) when the next frame comes soon, and burns a core when it
//! does not. The budget adapts every `TICK` window:
//! - when idle spells are frequent (over `BUSY_SPELLS` a window: traffic
//!   dense enough that waking up for each frame would itself cost a good
//!   part of a core), the budget doubles, up to `MAX_SPIN`;
//! - otherwise, when the time spent spinning without a frame exceeded a
//!   twentieth of the window, it shrinks in proportion, down to zero
//!   (block at once).
//!
//! So a flood keeps the loop spinning, while sparse request/response
//! traffic (thousands of frames a second, each alone) costs a wake-up per
//! frame instead of a spinning core. Time is an argument: the logic is
//! tested without clocks.

use std::time::Duration;

/// The longest spin: a steady stream of one frame per ~100 us never pays
/// the wake-up latency.
pub const MAX_SPIN: Duration = Duration::from_micros(200);
/// The first step up from zero.
const MIN_SPIN: Duration = Duration::from_micros(10);
/// Idle spells per window above which spinning pays: 2000 per 100 ms is
/// 20k wake-ups a second, some 10% of a core in wake-ups alone.
const BUSY_SPELLS: u32 = 2000;
/// Fraction of a window the loop may spin in vain: 1/20.
const MAX_WASTE_DIVISOR: u32 = 20;

#[derive(Debug, Clone)]
pub struct SpinBudget {
    budget: Duration,
    window_start: Duration,
    spells: u32,
    wasted: Duration,
}

impl SpinBudget {
    pub fn new() -> SpinBudget {
        SpinBudget {
            budget: MAX_SPIN,
            window_start: Duration::ZERO,
            spells: 0,
            wasted: Duration::ZERO,
        }
    }

    /// How long to spin before blocking, now.
    #[inline]
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// One idle spell ended after spinning `spun` without a frame, either
    /// because a frame came or because the loop went to sleep.
    #[inline]
    pub fn record(&mut self, spun: Duration) {
        self.spells += 1;
        self.wasted += spun;
    }

    /// Closes the window that began at the last call (at every tick) and
    /// adapts the budget.
    pub fn end_window(&mut self, now: Duration) {
        let window = now.saturating_sub(self.window_start);
        if self.spells > BUSY_SPELLS {
            self.budget = (self.budget * 2).clamp(MIN_SPIN, MAX_SPIN);
        } else if self.wasted > window / MAX_WASTE_DIVISOR {
            // Shrink in proportion, so the next window would stay within
            // the allowance.
            let allowed = (window / MAX_WASTE_DIVISOR).as_nanos();
            let scaled = self.budget.as_nanos() * allowed / self.wasted.as_nanos().max(1);
            self.budget = Duration::from_nanos(scaled as u64);
            if self.budget < MIN_SPIN {
                self.budget = Duration::ZERO;
            }
        }
        tracing::trace!(
            spells = self.spells,
            wasted_us = self.wasted.as_micros() as u64,
            budget_us = self.budget.as_micros() as u64,
            "spin window"
        );
        self.window_start = now;
        self.spells = 0;
        self.wasted = Duration::ZERO;
    }
}

impl Default for SpinBudget {
    fn default() -> Self {
        SpinBudget::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_millis(100);

    /// Runs `windows` windows of traffic with `spells` idle spells each,
    /// every spell spinning `min(budget, gap)`.
    fn run(b: &mut SpinBudget, windows: u32, spells: u32, gap: Duration) {
        for _ in 0..windows {
            for _ in 0..spells {
                b.record(b.budget().min(gap));
            }
            let now = b.window_start + WINDOW;
            b.end_window(now);
        }
    }

    #[test]
    fn sparse_request_response_stops_spinning() {
        // 6k requests/s: 12k frames a second, each alone, ~80 us apart.
        let mut b = SpinBudget::new();
        run(&mut b, 10, 1200, Duration::from_micros(80));
        assert_eq!(b.budget(), Duration::ZERO);
    }

    #[test]
    fn dense_traffic_spins_again() {
        let mut b = SpinBudget::new();
        run(&mut b, 10, 1200, Duration::from_micros(80));
        assert_eq!(b.budget(), Duration::ZERO);
        // 100k frames a second: waking up for each would cost more.
        run(&mut b, 6, 10_000, Duration::from_micros(5));
        assert_eq!(b.budget(), MAX_SPIN);
    }

    #[test]
    fn a_quiet_switch_keeps_its_budget_until_it_wastes_time() {
        let mut b = SpinBudget::new();
        // A handful of pings a second: 10 spells of 200 us is 2 ms of
        // 100 ms, under the 5% allowance.
        run(&mut b, 5, 10, Duration::from_millis(10));
        assert_eq!(b.budget(), MAX_SPIN);
        // Idle: no spells, nothing wasted, nothing changes.
        run(&mut b, 5, 0, Duration::ZERO);
        assert_eq!(b.budget(), MAX_SPIN);
    }
}
