//! The poll loop's own figures: how often it found work, how full its
//! bursts were, how often it went to sleep.
//!
//! Plain integers the datapath thread alone writes (a few adds per loop
//! iteration and per non-empty burst; no locks, no allocation). The control
//! thread gets a copy in the reply to `Command::Metrics`.

use crate::packet::BATCH_SIZE;

/// Upper bounds of the frames-per-burst buckets: powers of two up to a
/// full batch. A burst larger than `BATCH_SIZE` (a backend that ignores the
/// batch's capacity) lands in the last, unbounded bucket.
pub const BURST_BUCKETS: [u64; 6] = [1, 2, 4, 8, 16, 32];

const _: () = assert!(BURST_BUCKETS[BURST_BUCKETS.len() - 1] == BATCH_SIZE as u64);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoopCounters {
    /// Loop iterations that received at least one frame.
    pub busy_iterations: u64,
    /// Loop iterations that received nothing (spinning or about to sleep).
    pub idle_iterations: u64,
    /// Blocking waits in epoll after an idle spell.
    pub sleeps: u64,
    /// Non-empty receive bursts by size: `bursts[i]` counts bursts of at
    /// most `BURST_BUCKETS[i]` frames and more than the bucket before;
    /// the last slot counts bursts above `BATCH_SIZE`. Not cumulative.
    pub bursts: [u64; BURST_BUCKETS.len() + 1],
    /// Frames received in all bursts (the histogram's sum).
    pub burst_frames: u64,
}

impl LoopCounters {
    /// Counts one loop iteration that received `frames` frames.
    #[inline]
    pub fn count_iteration(&mut self, frames: usize) {
        if frames > 0 {
            self.busy_iterations += 1;
        } else {
            self.idle_iterations += 1;
        }
    }

    /// Counts one blocking wait.
    #[inline]
    pub fn count_sleep(&mut self) {
        self.sleeps += 1;
    }

    /// Counts one receive burst of `n` frames (`n > 0`).
    #[inline]
    pub fn count_burst(&mut self, n: usize) {
        // Bucket of n: ceil(log2(n)), i.e. the bit length of n - 1.
        let i = (usize::BITS - n.saturating_sub(1).leading_zeros()) as usize;
        self.bursts[i.min(BURST_BUCKETS.len())] += 1;
        self.burst_frames += n as u64;
    }

    /// Adds another worker's figures to these.
    pub fn add(&mut self, other: &LoopCounters) {
        self.busy_iterations += other.busy_iterations;
        self.idle_iterations += other.idle_iterations;
        self.sleeps += other.sleeps;
        for (a, b) in self.bursts.iter_mut().zip(other.bursts) {
            *a += b;
        }
        self.burst_frames += other.burst_frames;
    }

    /// Non-empty bursts counted (the histogram's count).
    pub fn burst_count(&self) -> u64 {
        self.bursts.iter().sum()
    }

    /// (upper bound, bursts of at most that many frames): the cumulative
    /// buckets of a Prometheus histogram, without `+Inf` (which is
    /// `burst_count`).
    pub fn cumulative_buckets(&self) -> [(u64, u64); BURST_BUCKETS.len()] {
        let mut out = [(0, 0); BURST_BUCKETS.len()];
        let mut sum = 0;
        for (i, le) in BURST_BUCKETS.iter().enumerate() {
            sum += self.bursts[i];
            out[i] = (*le, sum);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_land_in_their_buckets() {
        let mut c = LoopCounters::default();
        for n in [1, 2, 3, 4, 5, 8, 9, 16, 17, 32, 33] {
            c.count_burst(n);
        }
        // le=1: {1}; le=2: {2}; le=4: {3,4}; le=8: {5,8}; le=16: {9,16};
        // le=32: {17,32}; above: {33}.
        assert_eq!(c.bursts, [1, 1, 2, 2, 2, 2, 1]);
        assert_eq!(c.burst_count(), 11);
        assert_eq!(c.burst_frames, 130);
        assert_eq!(
            c.cumulative_buckets(),
            [(1, 1), (2, 2), (4, 4), (8, 6), (16, 8), (32, 10)]
        );
    }

    #[test]
    fn iterations_split_busy_and_idle() {
        let mut c = LoopCounters::default();
        c.count_iteration(0);
        c.count_iteration(0);
        c.count_iteration(5);
        c.count_sleep();
        assert_eq!((c.busy_iterations, c.idle_iterations, c.sleeps), (1, 2, 1));
    }
}
