//! The VTEP's own ARP on the underlay: it answers for its address and
//! resolves the next hops toward its remotes.

use std::time::Duration;

use super::VxlanPort;
use crate::wire::arp::{ArpOp, ArpRepr};
use crate::wire::MacAddr;

impl VxlanPort {
    /// Queues an Ethernet frame carrying an ARP packet to the underlay.
    pub(super) fn queue_arp(&mut self, dst: MacAddr, arp: ArpRepr) -> bool {
        let Some(buf) = self.outbound.slot() else {
            return false;
        };
        let area = buf.rx_area();
        area[0..6].copy_from_slice(&dst.0);
        area[6..12].copy_from_slice(&self.cfg.mac.0);
        area[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        arp.emit(&mut area[14..42]);
        area[42..60].fill(0);
        buf.set_len(60);
        self.outbound.commit();
        true
    }

    pub(super) fn handle_arp(&mut self, payload: &[u8], now: Duration) -> bool {
        let Some(arp) = ArpRepr::parse(payload) else {
            return false;
        };
        self.neighbors.learn(arp.sender_ip, arp.sender_mac, now);
        if arp.target_ip != self.cfg.local {
            return false;
        }
        if arp.op == ArpOp::Request && arp.sender_mac.is_learnable() {
            let reply = ArpRepr {
                op: ArpOp::Reply,
                sender_mac: self.cfg.mac,
                sender_ip: self.cfg.local,
                target_mac: arp.sender_mac,
                target_ip: arp.sender_ip,
            };
            self.queue_arp(arp.sender_mac, reply);
        }
        true
    }

    /// Asks for the next hops whose answers are missing or getting old.
    pub(super) fn send_due_requests(&mut self, now: Duration) {
        let mut due = std::mem::take(&mut self.due);
        self.neighbors.due_requests(now, &mut due);
        for ip in &due {
            let request = ArpRepr {
                op: ArpOp::Request,
                sender_mac: self.cfg.mac,
                sender_ip: self.cfg.local,
                target_mac: MacAddr::ZERO,
                target_ip: *ip,
            };
            self.queue_arp(MacAddr::BROADCAST, request);
        }
        self.due = due;
    }
}
