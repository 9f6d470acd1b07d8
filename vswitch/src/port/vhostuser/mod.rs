//! vhost-user ports: the switch as the virtio-net device of a VM (QEMU's
//! `-netdev vhost-user`) or of DPDK's virtio-user.
//!
//! The front end shares the guest's memory and the virtqueues over a unix
//! socket; frames then move by copying between the guest's buffers and the
//! switch's batches, with no system call per frame. The datapath polls the
//! queues like any other port: the protocol messages are served from the
//! same thread between bursts, the guest's kicks are turned off while the
//! loop spins and on before it sleeps, so an idle VM port costs nothing.
//!
//! The `vhost` crate parses the protocol, `virtio-queue` walks the rings and
//! `vm-memory` maps the guest's memory; the `vhost-user-backend` crate is
//! not used because it serves each device from threads of its own.
//!
//! Server mode creates the socket and waits for the front end; client mode
//! connects to a socket the front end serves and, when either side
//! restarts, connects again with backoff, so a switch restart never takes a
//! VM's NIC away.

mod config;
mod device;
mod features;
mod messages;
// The fuzz target (`crate::fuzzing::vhost`) drives the rings directly.
pub(crate) mod virtq;

pub use config::{parse, SocketMode, VhostUserConfig, KEYS};

use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use vhost::vhost_user::BackendReqHandler;

use self::device::Device;
use self::virtq::RingFault;
use super::bond::hash::{flow_hash, HashPolicy};
use super::sys::epoll::Epoll;
use super::{Port, PortError, PortEvent, PortKind};
use crate::packet::offload::OffloadCaps;
use crate::packet::Batch;
use crate::pipeline::counters::{DropReason, PortCounters};
use crate::wire::vnet::VnetHdr;

/// A protocol message that does not arrive whole within this is a broken
/// front end: the connection is reset rather than the datapath held up.
const MESSAGE_TIMEOUT: Duration = Duration::from_millis(20);

/// The datapath checks the socket for protocol messages every this many
/// polls while frames flow (and always before it sleeps).
const CONTROL_EVERY: u32 = 32;

/// Client mode: first and longest wait between connection attempts.
const RECONNECT_MIN: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(2);

/// Protocol messages served per check, so a chatty front end cannot hold
/// the datapath.
const MESSAGES_PER_CHECK: usize = 64;

type Handler = BackendReqHandler<Mutex<Device>>;

pub struct VhostUserPort {
    name: String,
    cfg: VhostUserConfig,
    socket_text: String,
    device: Arc<Mutex<Device>>,
    epoll: Arc<Epoll>,
    listener: Option<UnixListener>,
    conn: Option<Handler>,
    /// The connection's socket again, to look at a message before the
    /// vhost crate takes it (`serve_early_enable`).
    conn_stream: Option<UnixStream>,
    conn_fd: RawFd,
    /// The device generation the port last acted on.
    seen_generation: u64,
    control_countdown: u32,
    next_connect: Duration,
    backoff: Duration,
    now: Duration,
    connects: u64,
    ring_faults: u64,
    protocol_errors: u64,
    /// Why the last front end went away, and why connecting fails now.
    last_disconnect: Option<String>,
    connect_error: Option<String>,
    caps: OffloadCaps,
    event: Option<PortEvent>,
    /// Readiness last reported to monitors, and the report not yet taken.
    reported_ready: bool,
    status: Option<crate::events::StatusEvent>,
    /// Receive rings (to the guest) that run, for spreading flows.
    to_guest: Vec<usize>,
    from_guest: Vec<usize>,
    /// Per frame of a burst, the receive queue its flow goes to.
    queue_of: Vec<u8>,
}

impl VhostUserPort {
    pub fn open(name: &str, cfg: &VhostUserConfig) -> Result<VhostUserPort, PortError> {
        let epoll = Epoll::new().map_err(|e| e.into_port_error(name))?;
        let epoll = Arc::new(epoll);
        let device = Device::new(cfg.queue_pairs, cfg.mac, Arc::clone(&epoll));
        let mut port = VhostUserPort {
            name: name.to_string(),
            socket_text: cfg.socket.display().to_string(),
            cfg: cfg.clone(),
            device: Arc::new(Mutex::new(device)),
            epoll,
            listener: None,
            conn: None,
            conn_stream: None,
            conn_fd: -1,
            seen_generation: 0,
            control_countdown: 0,
            next_connect: Duration::ZERO,
            backoff: RECONNECT_MIN,
            now: Duration::ZERO,
            connects: 0,
            ring_faults: 0,
            protocol_errors: 0,
            last_disconnect: None,
            connect_error: None,
            caps: OffloadCaps::NONE,
            event: None,
            reported_ready: false,
            status: None,
            to_guest: Vec::new(),
            from_guest: Vec::new(),
            queue_of: Vec::with_capacity(crate::packet::BATCH_SIZE),
        };
        match cfg.mode {
            SocketMode::Server => port.listen()?,
            SocketMode::Client => port.try_connect(),
        }
        Ok(port)
    }

    fn listen(&mut self) -> Result<(), PortError> {
        let path = &self.cfg.socket;
        config::clear_stale_socket(path).map_err(PortError::Invalid)?;
        let listener = UnixListener::bind(path).map_err(|source| PortError::Os {
            what: "create the vhost-user socket",
            iface: self.socket_text.clone(),
            source,
        })?;
        let os = |source| PortError::Os {
            what: "set up the vhost-user socket",
            iface: self.socket_text.clone(),
            source,
        };
        listener.set_nonblocking(true).map_err(os)?;
        self.epoll
            .add(listener.as_raw_fd())
            .map_err(|e| e.into_port_error(&self.name))?;
        self.listener = Some(listener);
        Ok(())
    }

    fn device(&self) -> MutexGuard<'_, Device> {
        // The datapath thread is the only user; a poisoned lock cannot
        // happen with panic = abort, and the state stays usable anyway.
        self.device.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a new front end's connection (server or client mode).
    fn attach(&mut self, stream: UnixStream) {
        // The socket stays blocking, but only read when it is readable and
        // with a deadline for the rest of a message.
        let ok = stream.set_nonblocking(false).is_ok()
            && stream.set_read_timeout(Some(MESSAGE_TIMEOUT)).is_ok()
            && stream.set_write_timeout(Some(MESSAGE_TIMEOUT)).is_ok();
        let fd = stream.as_raw_fd();
        if !ok || self.epoll.add(fd).is_err() {
            return;
        }
        if let Some(listener) = &self.listener {
            // One front end at a time; the next waits in the backlog.
            let _ = self.epoll.remove(listener.as_raw_fd());
        }
        self.conn_stream = stream.try_clone().ok();
        self.conn = Some(BackendReqHandler::from_stream(
            stream,
            Arc::clone(&self.device),
        ));
        self.conn_fd = fd;
        self.connects += 1;
        self.connect_error = None;
        self.backoff = RECONNECT_MIN;
    }

    /// Drops the front end: the rings stop, the guest's memory is unmapped,
    /// and the port waits for the next connection.
    fn detach(&mut self, why: String) {
        if self.conn.is_none() {
            return;
        }
        tracing::info!(port = %self.name, "vhost-user front end gone: {why}");
        let _ = self.epoll.remove(self.conn_fd);
        self.conn = None;
        self.conn_stream = None;
        self.conn_fd = -1;
        self.last_disconnect = Some(why);
        self.device().reset();
        if let Some(listener) = &self.listener {
            let _ = self.epoll.add(listener.as_raw_fd());
        }
        self.next_connect = self.now + self.backoff;
        self.sync();
    }

    fn try_connect(&mut self) {
        match UnixStream::connect(&self.cfg.socket) {
            Ok(stream) => self.attach(stream),
            Err(e) => {
                self.connect_error = Some(e.to_string());
                self.next_connect = self.now + self.backoff;
                self.backoff = (self.backoff * 2).min(RECONNECT_MAX);
            }
        }
    }

    /// Serves what is waiting on the socket and the eventfds: a new
    /// connection, protocol messages, kicks to clear.
    fn service(&mut self) {
        let mut ready = [0 as RawFd; 16];
        for _ in 0..MESSAGES_PER_CHECK {
            let n = self.epoll.ready_now(&mut ready);
            if n == 0 {
                break;
            }
            let mut progressed = false;
            for &fd in &ready[..n] {
                if self.conn.is_some() && fd == self.conn_fd {
                    self.serve_message();
                    progressed = true;
                } else if let Some(listener) =
                    self.listener.as_ref().filter(|l| l.as_raw_fd() == fd)
                {
                    if let Ok((stream, _)) = listener.accept() {
                        self.attach(stream);
                        progressed = true;
                    }
                } else {
                    self.device().clear_kick(fd);
                }
            }
            if !progressed {
                break;
            }
        }
        self.sync();
    }

    /// Acts on what the front end changed: which rings run, the offloads
    /// the guest takes.
    fn sync(&mut self) {
        let mut dev = self.device.lock().unwrap_or_else(|e| e.into_inner());
        if dev.generation == self.seen_generation {
            return;
        }
        self.seen_generation = dev.generation;
        let caps = dev.acked().guest_caps();
        let (mem, rings) = dev.memory_and_rings();
        self.to_guest.clear();
        self.from_guest.clear();
        for (i, ring) in rings.iter_mut().enumerate() {
            if ring.activate(mem) {
                if i % 2 == 0 {
                    // The switch never waits for receive buffers (a frame
                    // without one is dropped), so the guest need not kick
                    // when it adds them: each kick is a VM exit.
                    if let Some(mem) = mem {
                        ring.quiet(mem);
                    }
                    self.to_guest.push(i);
                } else {
                    self.from_guest.push(i);
                }
            }
        }
        drop(dev);
        if caps != self.caps {
            self.caps = caps;
            self.event = Some(PortEvent::OffloadsChanged);
        }
        let ready = self.ready();
        if ready != self.reported_ready {
            self.reported_ready = ready;
            // Only the latest state matters to a monitor.
            self.status = Some(crate::events::StatusEvent::PeerLink { up: ready });
            tracing::info!(port = %self.name, up = ready, "vhost-user queues {}", if ready { "running" } else { "stopped" });
        }
    }

    fn ring_fault(&mut self, index: usize, fault: RingFault) {
        self.ring_faults += 1;
        self.detach(format!("queue {index}: {fault:?}"));
    }

    /// Whether frames can flow: a front end and at least one running
    /// queue each way.
    fn ready(&self) -> bool {
        self.conn.is_some() && !self.to_guest.is_empty() && !self.from_guest.is_empty()
    }

    fn state(&self) -> &'static str {
        match (&self.conn, self.cfg.mode) {
            (Some(_), _) if self.ready() => "ready",
            (Some(_), _) => "connected",
            (None, SocketMode::Server) => "listening",
            (None, SocketMode::Client) => "connecting",
        }
    }

    fn send(
        &mut self,
        frames: &[&[u8]],
        hdrs: Option<&[VnetHdr]>,
        counters: &mut PortCounters,
    ) -> usize {
        if self.to_guest.is_empty() {
            counters.count_drops(DropReason::PortNotReady, frames.len() as u64);
            return 0;
        }
        let mut dev = self.device.lock().unwrap_or_else(|e| e.into_inner());
        let acked = dev.acked();
        if let Some(hdrs) = hdrs {
            let caps = acked.guest_caps();
            if hdrs.iter().any(|h| !h.is_plain() && !caps.takes(h)) {
                // The guest renegotiated since the switch last asked.
                counters.count_drops(DropReason::OffloadUnsupported, frames.len() as u64);
                return 0;
            }
        }
        let (mem, rings) = dev.memory_and_rings();
        let Some(mem) = mem else {
            counters.count_drops(DropReason::PortNotReady, frames.len() as u64);
            return 0;
        };
        let merge = acked.has(features::NET_F_MRG_RXBUF);
        let hdr_len = acked.header_len();
        let mut sent = 0;
        let mut fault = None;
        if let [index] = self.to_guest[..] {
            match rings[index].transmit(mem, frames, hdrs, hdr_len, merge, counters) {
                Ok(n) => sent = n,
                Err(f) => fault = Some((index, f)),
            }
        } else {
            // Each frame to the queue its flow hashes to, so a flow stays
            // in order.
            let queues = self.to_guest.len();
            self.queue_of.clear();
            self.queue_of.extend(
                frames
                    .iter()
                    .map(|f| (flow_hash(f, HashPolicy::L34) as usize % queues) as u8),
            );
            let queue_of = &self.queue_of;
            for (q, &index) in self.to_guest.iter().enumerate() {
                let pick = |i: usize| usize::from(queue_of[i]) == q;
                match rings[index]
                    .transmit_selected(mem, frames, hdrs, hdr_len, merge, &pick, counters)
                {
                    Ok(n) => sent += n,
                    Err(f) => {
                        fault = Some((index, f));
                        break;
                    }
                }
            }
        }
        drop(dev);
        if let Some((index, f)) = fault {
            counters.count_drop(DropReason::VhostRingError);
            self.ring_fault(index, f);
        }
        sent
    }
}

impl Port for VhostUserPort {
    fn kind(&self) -> PortKind {
        PortKind::Vhostuser
    }

    fn iface(&self) -> &str {
        &self.socket_text
    }

    fn rx_burst(&mut self, batch: &mut Batch, counters: &mut PortCounters) -> usize {
        if self.control_countdown == 0 {
            self.control_countdown = CONTROL_EVERY;
            self.service();
        }
        self.control_countdown -= 1;
        if self.from_guest.is_empty() {
            return 0;
        }
        let mut dev = self.device.lock().unwrap_or_else(|e| e.into_inner());
        let acked = dev.acked();
        let (hdr_len, allowed) = (acked.header_len(), acked.host_caps());
        let (mem, rings) = dev.memory_and_rings();
        let Some(mem) = mem else {
            return 0;
        };
        let mut got = 0;
        let mut fault = None;
        for &index in &self.from_guest {
            let ring = &mut rings[index];
            ring.quiet(mem);
            match ring.receive(mem, batch, hdr_len, allowed, counters) {
                Ok(n) => got += n,
                Err(f) => {
                    fault = Some((index, f));
                    break;
                }
            }
        }
        drop(dev);
        if let Some((index, f)) = fault {
            counters.count_drop(DropReason::VhostRingError);
            self.ring_fault(index, f);
        }
        got
    }

    fn tx_burst(&mut self, frames: &[&[u8]], counters: &mut PortCounters) -> usize {
        self.send(frames, None, counters)
    }

    fn offload_caps(&self) -> OffloadCaps {
        self.caps
    }

    fn tx_burst_offload(
        &mut self,
        frames: &[&[u8]],
        hdrs: &[VnetHdr],
        counters: &mut PortCounters,
    ) -> usize {
        self.send(frames, Some(hdrs), counters)
    }

    fn readiness_fd(&self) -> Option<RawFd> {
        Some(self.epoll.fd())
    }

    fn prepare_to_block(&mut self) -> bool {
        self.service();
        if self.from_guest.is_empty() {
            return false;
        }
        let mut dev = self.device.lock().unwrap_or_else(|e| e.into_inner());
        let (mem, rings) = dev.memory_and_rings();
        let Some(mem) = mem else {
            return false;
        };
        let mut pending = false;
        for &index in &self.from_guest {
            pending |= rings[index].wake_on_kick(mem);
        }
        pending
    }

    fn tick(&mut self, now: Duration, _counters: &mut PortCounters) {
        self.now = now;
        if self.cfg.mode == SocketMode::Client && self.conn.is_none() && now >= self.next_connect {
            self.try_connect();
        }
        self.service();
    }

    fn take_event(&mut self) -> Option<PortEvent> {
        self.event.take()
    }

    fn take_status(&mut self) -> Option<crate::events::StatusEvent> {
        self.status.take()
    }

    fn details(&self) -> Option<serde_json::Value> {
        let dev = self.device();
        let acked = dev.acked();
        let queues: Vec<_> = dev
            .vrings
            .iter()
            .enumerate()
            .map(|(i, r)| {
                serde_json::json!({
                    "index": i,
                    "direction": if i % 2 == 0 { "to_guest" } else { "from_guest" },
                    "enabled": r.is_active(),
                    "size": if r.is_active() { r.size() } else { 0 },
                    "frames": r.frames,
                    "bytes": r.bytes,
                    "drops": r.drops,
                })
            })
            .collect();
        let v = serde_json::json!({
            "socket": self.socket_text,
            "mode": self.cfg.mode.as_str(),
            "state": self.state(),
            "features": acked.names(),
            "queue_pairs": self.cfg.queue_pairs,
            "active_queue_pairs": self.to_guest.len().min(self.from_guest.len()),
            "mac": self.cfg.mac.map(|m| m.to_string()),
            "queues": queues,
            "connects": self.connects,
            "reconnects": self.connects.saturating_sub(1),
            "ring_faults": self.ring_faults,
            "protocol_errors": self.protocol_errors,
            "last_disconnect": self.last_disconnect,
            "connect_error": self.connect_error,
        });
        Some(serde_json::json!({ "vhostuser": v }))
    }
}

impl Drop for VhostUserPort {
    fn drop(&mut self) {
        if self.listener.is_some() {
            let _ = std::fs::remove_file(&self.cfg.socket);
        }
    }
}

#[cfg(test)]
mod tests;
