//! A port with no kernel behind it: for tests, benchmarks and fuzzing.
//!
//! Received frames come from a queue the owner fills (or, for benchmarks, a
//! fixed list replayed forever); transmitted frames are counted and, if
//! asked, recorded. The recording allocates, so benchmarks leave it off.

use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};

use super::{Port, PortKind};
use crate::packet::Batch;
use crate::pipeline::counters::PortCounters;

#[derive(Default)]
pub struct LoopbackPort {
    name: String,
    rx_queue: VecDeque<Vec<u8>>,
    replay: Vec<Vec<u8>>,
    replay_next: usize,
    record_tx: bool,
    /// Frames transmitted, when recording; shared so a test can read them
    /// after the port moved into a switch.
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
    /// Frames transmitted, always.
    pub sent_count: u64,
    /// An event to hand the datapath at its next look.
    pub pending_event: Option<super::PortEvent>,
}

impl LoopbackPort {
    /// A port that records what it transmits.
    pub fn new(name: &str) -> Self {
        LoopbackPort {
            name: name.to_string(),
            record_tx: true,
            ..Default::default()
        }
    }

    /// A port that only counts what it transmits (frames can still be
    /// injected): a sink for benchmarks and fuzzing.
    pub fn counting(name: &str) -> Self {
        LoopbackPort {
            name: name.to_string(),
            ..Default::default()
        }
    }

    /// A port that receives `frames` over and over and only counts what it
    /// transmits: a traffic source and sink for benchmarks.
    pub fn replaying(name: &str, frames: Vec<Vec<u8>>) -> Self {
        LoopbackPort {
            name: name.to_string(),
            replay: frames,
            ..Default::default()
        }
    }

    /// A handle on the frames this port records as sent.
    pub fn sent(&self) -> Arc<Mutex<Vec<Vec<u8>>>> {
        self.sent.clone()
    }

    /// Queues one frame to be received.
    pub fn inject(&mut self, frame: &[u8]) {
        self.rx_queue.push_back(frame.to_vec());
    }
}

impl Port for LoopbackPort {
    fn kind(&self) -> PortKind {
        PortKind::Loopback
    }

    fn iface(&self) -> &str {
        &self.name
    }

    fn rx_burst(&mut self, batch: &mut Batch, counters: &mut PortCounters) -> usize {
        let mut n = 0;
        while !batch.is_full() {
            let frame = if !self.replay.is_empty() {
                let f = &self.replay[self.replay_next];
                self.replay_next = (self.replay_next + 1) % self.replay.len();
                f.as_slice()
            } else if let Some(f) = self.rx_queue.front() {
                f.as_slice()
            } else {
                break;
            };
            let len = frame.len();
            let complete = batch.push_copy(frame);
            if self.replay.is_empty() {
                self.rx_queue.pop_front();
            }
            if complete {
                counters.count_rx(len);
                n += 1;
            } else {
                // push_copy kept a truncated copy: un-keep it.
                counters.count_drop(crate::pipeline::counters::DropReason::RxTruncated);
                batch.uncommit_last();
            }
        }
        n
    }

    fn tx_burst(&mut self, frames: &[&[u8]], counters: &mut PortCounters) -> usize {
        for f in frames {
            counters.count_tx(f.len());
            if self.record_tx {
                if let Ok(mut sent) = self.sent.lock() {
                    sent.push(f.to_vec());
                }
            }
        }
        self.sent_count += frames.len() as u64;
        frames.len()
    }

    fn readiness_fd(&self) -> Option<RawFd> {
        None
    }

    fn take_event(&mut self) -> Option<super::PortEvent> {
        self.pending_event.take()
    }
}
