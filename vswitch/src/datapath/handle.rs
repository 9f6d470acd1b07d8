//! The control thread's end of the datapath.

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use mio::{Poll, Waker};
use tokio::sync::oneshot;

use super::{Command, DatapathError, Reply, Worker, WAKER_TOKEN};

/// Starts, commands and stops the datapath thread.
pub struct DatapathHandle {
    commander: Commander,
    thread: Option<JoinHandle<()>>,
}

impl DatapathHandle {
    /// Spawns the datapath thread.
    pub fn spawn() -> std::io::Result<DatapathHandle> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER_TOKEN)?);
        // Commands are rare and small; the bound only stops a runaway
        // control thread from queueing without limit.
        let (tx, rx) = crossbeam_channel::bounded(1024);
        let worker = Worker::new(poll, rx);
        let thread = std::thread::Builder::new()
            .name("vswitch-datapath".into())
            .spawn(move || worker.run())?;
        Ok(DatapathHandle {
            commander: Commander {
                commands: tx,
                waker,
            },
            thread: Some(thread),
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
        let (tx, rx) = oneshot::channel();
        self.send(make(tx))?;
        rx.blocking_recv().map_err(|_| DatapathError::Gone)?
    }

    fn send(&self, cmd: Command) -> Result<(), DatapathError> {
        self.commander.send(cmd)
    }

    /// A sender of commands for other tasks (the EVPN sessions); it does
    /// not own the thread.
    pub fn commander(&self) -> Commander {
        self.commander.clone()
    }

    /// Stops the thread and waits for it; its ports close as it drops them.
    pub fn shutdown(&mut self) {
        let _ = self.send(Command::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for DatapathHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Sends commands to the datapath, like `DatapathHandle::call`, from any
/// task; cheap to clone.
#[derive(Clone)]
pub struct Commander {
    commands: Sender<Command>,
    waker: Arc<Waker>,
}

impl Commander {
    pub async fn call<T>(
        &self,
        make: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, DatapathError> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx))?;
        rx.await.map_err(|_| DatapathError::Gone)?
    }

    fn send(&self, cmd: Command) -> Result<(), DatapathError> {
        self.commands.send(cmd).map_err(|_| DatapathError::Gone)?;
        self.waker.wake().map_err(|_| DatapathError::Gone)
    }
}
