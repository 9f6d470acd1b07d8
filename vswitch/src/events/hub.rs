//! Where events meet their monitors.
//!
//! The datapath pushes [`DpEvent`]s on a bounded lock-free queue
//! (`QUEUE_LEN`); when it is full the event is dropped and counted, and the
//! monitors get a `lost` event. A tokio task (the pump, started with the
//! first monitor) drains the queue every `PUMP_EVERY`, turns each event into
//! its JSON line once, and sends the line on a broadcast channel that every
//! monitor client reads. The channel keeps the last `CLIENT_BACKLOG` lines:
//! a client that falls further behind skips to the oldest kept line and is
//! told how many it lost. Nobody ever waits for a slow client.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use tokio::sync::broadcast;

use super::{DpEvent, DpEventKind, Event, EventKind};
use crate::capture::wall_clock_ns;

/// Datapath events waiting for the pump.
pub const QUEUE_LEN: usize = 1024;
/// Lines a monitor client may fall behind before it loses some: room for a
/// full datapath queue and as many configuration changes.
pub const CLIENT_BACKLOG: usize = 2 * QUEUE_LEN;
/// How often the pump drains the datapath's queue while monitors listen.
const PUMP_EVERY: Duration = Duration::from_millis(20);
/// ... and while none does (the queue is then emptied and forgotten).
const PUMP_IDLE: Duration = Duration::from_millis(250);

pub struct Hub {
    queue: ArrayQueue<DpEvent>,
    /// Datapath events dropped because the queue was full.
    overflow: AtomicU64,
    lines: broadcast::Sender<Arc<str>>,
    pump_started: AtomicBool,
}

impl Hub {
    pub fn new() -> Arc<Hub> {
        let (lines, _) = broadcast::channel(CLIENT_BACKLOG);
        Arc::new(Hub {
            queue: ArrayQueue::new(QUEUE_LEN),
            overflow: AtomicU64::new(0),
            lines,
            pump_started: AtomicBool::new(false),
        })
    }

    /// Datapath: queues an event, stamped now. Never blocks or allocates.
    pub fn push(&self, kind: DpEventKind) {
        let ev = DpEvent {
            time_ns: wall_clock_ns(),
            kind,
        };
        if self.queue.push(ev).is_err() {
            self.overflow.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Control thread: sends an event to every monitor now.
    pub fn publish(&self, kind: EventKind) {
        self.send(&Event::new(wall_clock_ns(), kind));
    }

    fn send(&self, ev: &Event) {
        // No receivers is not an error: nobody is monitoring.
        let _ = self.lines.send(Arc::from(ev.to_json()));
    }

    /// A new monitor's stream of JSON lines. The first call starts the pump
    /// (it must run inside the tokio runtime), dropping what queued before.
    pub fn subscribe(self: &Arc<Self>) -> broadcast::Receiver<Arc<str>> {
        let rx = self.lines.subscribe();
        if !self.pump_started.swap(true, Ordering::AcqRel) {
            while self.queue.pop().is_some() {}
            self.overflow.store(0, Ordering::Relaxed);
            tokio::spawn(pump(Arc::downgrade(self)));
        }
        rx
    }

    /// Moves every queued datapath event to the monitors; returns how many
    /// there were (a `lost` line counts for the dropped ones).
    pub fn pump_once(&self) -> usize {
        let mut n = 0;
        let lost = self.overflow.swap(0, Ordering::Relaxed);
        if lost > 0 {
            self.publish(EventKind::Lost { count: lost });
            n += 1;
        }
        while let Some(ev) = self.queue.pop() {
            self.send(&ev.to_event());
            n += 1;
        }
        n
    }

    /// Monitors listening now.
    pub fn monitors(&self) -> usize {
        self.lines.receiver_count()
    }
}

async fn pump(hub: Weak<Hub>) {
    loop {
        let every = match hub.upgrade() {
            None => return,
            Some(h) => {
                h.pump_once();
                if h.monitors() > 0 {
                    PUMP_EVERY
                } else {
                    PUMP_IDLE
                }
            }
        };
        tokio::time::sleep(every).await;
    }
}
