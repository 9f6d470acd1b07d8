//! A port with no kernel behind it: for tests, benchmarks and fuzzing.
//!
//! Received frames come from a queue the owner fills (or, for benchmarks, a
//! fixed list replayed forever); transmitted frames are counted and, if
//! asked, recorded. The recording allocates, so benchmarks leave it off.
//! A *linked* port keeps its queue and its record behind a `LoopbackLink`
//! the owner holds on to, so frames can be fed in and looked at after the
//! port has moved into a `Switch` (the fuzz targets work that way).

use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex, MutexGuard};

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
    /// Frames transmitted, when recording.
    pub sent: Vec<Vec<u8>>,
    /// Frames transmitted, always.
    pub sent_count: u64,
    /// An event to hand the datapath at its next look.
    pub pending_event: Option<super::PortEvent>,
    link: Option<LoopbackLink>,
}

/// The owner's end of a linked `LoopbackPort`: frames queued here are
/// received by the port at its next `rx_burst`, and every frame the port
/// transmits is recorded here.
#[derive(Clone, Default)]
pub struct LoopbackLink {
    shared: Arc<Mutex<LinkState>>,
}

#[derive(Default)]
struct LinkState {
    rx: VecDeque<Vec<u8>>,
    sent: Vec<Vec<u8>>,
}

impl LoopbackLink {
    fn state(&self) -> MutexGuard<'_, LinkState> {
        // The state stays consistent whatever a panicking holder did.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues one frame for the port to receive.
    pub fn inject(&self, frame: &[u8]) {
        self.state().rx.push_back(frame.to_vec());
    }

    /// The frames the port transmitted since the last call, in order.
    pub fn take_sent(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.state().sent)
    }
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

    /// A port fed and watched through the returned link.
    pub fn linked(name: &str) -> (Self, LoopbackLink) {
        let link = LoopbackLink::default();
        let port = LoopbackPort {
            name: name.to_string(),
            link: Some(link.clone()),
            ..Default::default()
        };
        (port, link)
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
        if let Some(link) = &self.link {
            self.rx_queue.append(&mut link.state().rx);
        }
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
        let mut link = self.link.as_ref().map(LoopbackLink::state);
        for f in frames {
            counters.count_tx(f.len());
            if let Some(link) = link.as_mut() {
                link.sent.push(f.to_vec());
            } else if self.record_tx {
                self.sent.push(f.to_vec());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linked_port_is_fed_and_watched_through_its_link() {
        let (mut port, link) = LoopbackPort::linked("l0");
        let mut counters = PortCounters::default();
        let mut batch = Batch::new();
        link.inject(&[1; 60]);
        link.inject(&[2; 60]);
        assert_eq!(port.rx_burst(&mut batch, &mut counters), 2);
        assert_eq!(batch.get(1).unwrap().frame(), &[2; 60][..]);
        assert_eq!(port.tx_burst(&[&[3; 20], &[4; 30]], &mut counters), 2);
        assert_eq!(link.take_sent(), vec![vec![3; 20], vec![4; 30]]);
        assert!(link.take_sent().is_empty());
        assert!(port.sent.is_empty());
        assert_eq!((counters.rx_packets, counters.tx_packets), (2, 2));
    }
}
