//! The control thread's end of the datapath: starts the workers, sends
//! them commands (`Commander`), stops them.

use std::sync::Arc;
use std::task::{Context, Poll as TaskPoll, Wake, Waker as TaskWaker};
use std::thread::JoinHandle;
use std::time::Instant;

use mio::{Poll, Waker};

use super::commander::WorkerLink;
use super::slots::SlotIds;
use super::{Command, DatapathError, Reply, Worker, WAKER_TOKEN};

pub use super::commander::Commander;

/// How the datapath's threads are laid out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerPlan {
    /// Poll-mode threads; each runs whole bridges (at least 1).
    pub workers: usize,
    /// CPUs to pin the workers to, in order (worker i on `cpus[i]`); empty:
    /// no pinning.
    pub cpus: Vec<usize>,
}

impl WorkerPlan {
    pub fn single() -> WorkerPlan {
        WorkerPlan {
            workers: 1,
            cpus: Vec::new(),
        }
    }
}

/// Starts, commands and stops the datapath threads.
pub struct DatapathHandle {
    commander: Commander,
    threads: Vec<JoinHandle<()>>,
}

impl DatapathHandle {
    /// Spawns one datapath thread.
    pub fn spawn() -> std::io::Result<DatapathHandle> {
        DatapathHandle::spawn_workers(&WorkerPlan::single())
    }

    /// Spawns the datapath threads `plan` asks for.
    pub fn spawn_workers(plan: &WorkerPlan) -> std::io::Result<DatapathHandle> {
        let ids = SlotIds::default();
        // One clock for all workers: a bridge that moves keeps its table's
        // ages and its ports' timers.
        let start = Instant::now();
        let mut links = Vec::new();
        let mut threads = Vec::new();
        let mut replica_links = super::switch::ReplicaLinks::mesh(plan.workers.max(1)).into_iter();
        for i in 0..plan.workers.max(1) {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER_TOKEN)?);
            // Commands are rare and small; the bound only stops a runaway
            // control thread from queueing without limit.
            let (tx, rx) = crossbeam_channel::bounded(1024);
            let mut worker = Worker::new(poll, rx, ids.clone(), start);
            if let Some(l) = replica_links.next() {
                worker.join_replicas(l);
            }
            let cpu = plan.cpus.get(i).copied();
            let thread = std::thread::Builder::new()
                .name(format!("vswitch-dp{i}"))
                .spawn(move || {
                    if let Some(cpu) = cpu {
                        match crate::port::sys::cpu::pin_current_thread(cpu) {
                            Ok(()) => tracing::info!(worker = i, cpu, "datapath worker pinned"),
                            Err(e) => tracing::warn!(worker = i, cpu, "not pinned: {e}"),
                        }
                    }
                    worker.run()
                })?;
            links.push(WorkerLink {
                commands: tx,
                waker,
            });
            threads.push(thread);
        }
        Ok(DatapathHandle {
            commander: Commander::new(links, ids),
            threads,
        })
    }

    /// Sends a command built around a fresh reply channel and awaits the
    /// datapath's answer.
    pub async fn call<T>(
        &self,
        make: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, DatapathError> {
        self.commander.call(make).await
    }

    /// The same, for callers outside the async runtime (startup, tests).
    pub fn call_blocking<T>(
        &self,
        make: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, DatapathError> {
        block_on(self.commander.call(make))
    }

    /// How many workers run.
    pub fn workers(&self) -> usize {
        self.commander.workers()
    }

    /// A sender of commands for other tasks (the EVPN sessions); it does
    /// not own the threads.
    pub fn commander(&self) -> Commander {
        self.commander.clone()
    }

    /// Stops the threads and waits for them; their ports close as they drop
    /// them.
    pub fn shutdown(&mut self) {
        self.commander.shutdown();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for DatapathHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Wakes the thread blocked in `block_on`.
struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs a future to completion on this thread. The commander's futures wait
/// only on the workers' replies and on the routing lock, so no runtime is
/// needed. Not for a runtime thread whose tasks may hold that lock: it would
/// wait for a task that cannot run (startup restores from `spawn_blocking`).
fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let waker = TaskWaker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let TaskPoll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}
