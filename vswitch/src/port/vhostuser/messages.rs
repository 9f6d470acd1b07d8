//! Serving the front end's protocol messages: the `vhost` crate's handler,
//! with the one request it gets wrong for QEMU served here first.

use std::io::{Read, Write};
use std::os::fd::AsFd;

use vhost::vhost_user::VhostUserBackendReqHandlerMut;

use super::{features, VhostUserPort};

impl VhostUserPort {
    /// Serves one protocol message waiting on the connection; a broken
    /// connection is dropped, a request refused for a missing feature is not.
    pub(super) fn serve_message(&mut self) {
        if self.serve_early_enable() {
            return;
        }
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        use vhost::vhost_user::Error as E;
        match conn.handle_request() {
            Ok(()) => {}
            // A request that needs a feature not negotiated on this
            // connection yet. DPDK's virtio-user, reconnecting to a
            // restarted switch, first stops its old rings (SET_VRING_ENABLE,
            // GET_VRING_BASE) and only then negotiates: refuse the one
            // message and keep the connection, as DPDK's own back end does.
            Err(e @ (E::InactiveFeature(_) | E::InactiveOperation(_))) => {
                self.protocol_errors += 1;
                tracing::debug!(port = %self.name, "vhost-user request refused: {e}");
            }
            Err(e) => {
                if !matches!(e, E::Disconnected | E::PartialMessage | E::SocketBroken(_)) {
                    self.protocol_errors += 1;
                }
                self.detach(e.to_string());
            }
        }
    }

    /// Serves a SET_VRING_ENABLE that comes before the features are acked.
    /// QEMU's virtio-net enables its rings as soon as the back end offered
    /// VHOST_USER_F_PROTOCOL_FEATURES, before SET_FEATURES; the vhost crate
    /// refuses the request until that ack, without the reply QEMU waits for
    /// (which then fails the device). True when the message was this one.
    fn serve_early_enable(&mut self) -> bool {
        const SET_VRING_ENABLE: u32 = 18;
        const VERSION_1: u32 = 0x1;
        const REPLY: u32 = 0x4;
        const NEED_REPLY: u32 = 0x8;
        let Some(stream) = self.conn_stream.as_ref() else {
            return false;
        };
        let mut msg = [0u8; 20];
        if crate::port::sys::peek(stream.as_fd(), &mut msg).ok() != Some(msg.len()) {
            return false;
        }
        let word =
            |m: &[u8; 20], i: usize| u32::from_le_bytes([m[i], m[i + 1], m[i + 2], m[i + 3]]);
        let is_enable = word(&msg, 0) == SET_VRING_ENABLE && word(&msg, 8) == 8;
        if !is_enable
            || self
                .device()
                .acked()
                .has(features::VHOST_USER_F_PROTOCOL_FEATURES)
        {
            return false;
        }
        let mut stream = stream;
        if let Err(e) = stream.read_exact(&mut msg) {
            self.detach(e.to_string());
            return true;
        }
        let (index, num) = (word(&msg, 12), word(&msg, 16));
        let ok = num <= 1 && self.device().set_vring_enable(index, num == 1).is_ok();
        if word(&msg, 4) & NEED_REPLY != 0 {
            let mut reply = [0u8; 20];
            reply[..4].copy_from_slice(&SET_VRING_ENABLE.to_le_bytes());
            reply[4..8].copy_from_slice(&(VERSION_1 | REPLY).to_le_bytes());
            reply[8..12].copy_from_slice(&8u32.to_le_bytes());
            reply[12..].copy_from_slice(&u64::from(!ok).to_le_bytes());
            if let Err(e) = stream.write_all(&reply) {
                self.detach(e.to_string());
                return true;
            }
        }
        self.sync();
        true
    }
}
