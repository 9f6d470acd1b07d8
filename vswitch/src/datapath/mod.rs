//! The datapath: poll-mode worker threads (`vswitchd --workers N`, one by
//! default), each running whole bridges with their ports and tables, so a
//! frame never leaves the thread that received it. `placement` says which
//! worker runs which bridge; bridges joined by a VXLAN tunnel share one.
//!
//! Each worker's loop: receive a burst from each port in turn and run it through the
//! pipeline; flush the ports' transmit queues; every `TICK` run the ports'
//! timers (and, once a second, age the tables); drain the command channel.
//! While frames flow it spins. After a spell without a frame (at most
//! `IDLE_SPIN`, adapted to the traffic by `idle::SpinBudget`) it blocks in
//! epoll (mio) on the ports' descriptors and the command channel's waker,
//! with a timeout at the next tick, so an idle switch costs no CPU and
//! sparse traffic costs a wake-up per frame rather than a spinning core.
//!
//! Control -> datapath is a crossbeam channel of `Command`s plus a
//! `mio::Waker`: the sender pushes the command, then wakes the loop if it
//! sleeps. Replies travel back on the oneshot each command carries. The
//! `Commander` sends each command to the worker of the bridge or port it
//! names, and merges the answers of all workers for the ones about all.

mod command;
mod commander;
mod handle;
pub mod idle;
pub mod placement;
pub mod slots;
mod switch;

pub use command::{BridgeState, Command, DatapathError, Reply};
pub use handle::{Commander, DatapathHandle, WorkerPlan};
pub use slots::SlotIds;
pub use switch::{BridgeBundle, Switch};

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};
use mio::{Events, Poll, Token};

use crate::packet::Batch;

/// The longest the loop keeps spinning without traffic before it blocks;
/// the budget adapts to the traffic (`idle::SpinBudget`).
pub const IDLE_SPIN: Duration = idle::MAX_SPIN;

/// Period of the ports' timers (`Port::tick`) and of table aging checks.
/// An idle switch wakes this often: ten cheap passes a second.
pub const TICK: Duration = Duration::from_millis(100);

pub(crate) const WAKER_TOKEN: Token = Token(usize::MAX);

pub struct Worker {
    switch: Switch,
    commands: Receiver<Command>,
    poll: Poll,
    batch: Batch,
    start: Instant,
}

impl Worker {
    /// A worker drawing bridge and port indices from `ids` (shared with the
    /// other workers) and reading the clock from `start` (the same for all).
    pub(crate) fn new(
        poll: Poll,
        commands: Receiver<Command>,
        ids: SlotIds,
        start: Instant,
    ) -> Worker {
        Worker {
            switch: Switch::with_ids(ids),
            commands,
            poll,
            batch: Batch::new(),
            start,
        }
    }

    /// Links this worker with the others' replicas of bridges that run on
    /// every worker.
    pub(crate) fn join_replicas(&mut self, links: switch::ReplicaLinks) {
        self.switch.set_replica_links(links);
    }

    /// Runs until a `Shutdown` command arrives or the channel closes.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(64);
        let mut spin = idle::SpinBudget::new();
        // When the current idle spell (passes without a frame) began.
        let mut idle_since: Option<Instant> = None;
        let mut next_tick = TICK;
        loop {
            let now = self.start.elapsed();
            let frames = self.switch.poll_once(&mut self.batch, now);
            self.switch.loop_counters.count_iteration(frames);
            if frames > 0 {
                if let Some(since) = idle_since.take() {
                    spin.record(since.elapsed());
                }
            }

            if now >= next_tick {
                self.switch.tick(now, &mut self.batch);
                spin.end_window(now);
                next_tick = now + TICK;
            }

            if !self.drain_commands() {
                return;
            }
            if frames > 0 {
                continue;
            }
            let since = *idle_since.get_or_insert_with(Instant::now);
            // A port that has frames without a descriptor (a null source)
            // keeps the loop spinning.
            if since.elapsed() >= spin.budget() && !self.switch.prepare_to_block() {
                spin.record(since.elapsed());
                idle_since = None;
                let timeout = next_tick
                    .saturating_sub(self.start.elapsed())
                    .max(Duration::from_millis(1));
                // Interrupted waits and spurious wake-ups just mean one more
                // pass of the loop.
                self.switch.loop_counters.count_sleep();
                let _ = self.poll.poll(&mut events, Some(timeout));
                if !self.drain_commands() {
                    return;
                }
            } else {
                std::hint::spin_loop();
            }
        }
    }

    /// Applies every waiting command; false when it is time to stop.
    fn drain_commands(&mut self) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok(Command::Shutdown) => return false,
                Ok(cmd) => {
                    let now = self.start.elapsed();
                    self.switch.apply(cmd, self.poll.registry(), now);
                }
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
    }
}
