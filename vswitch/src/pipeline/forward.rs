//! Forward stage: the table decides where a classified frame goes.

use super::counters::DropReason;
use super::input::Classified;
use super::Disposition;
use crate::fdb::{Fdb, PortId};

/// Picks the disposition of one frame received on `in_port`.
#[inline]
pub fn decide(frame: &Classified, in_port: PortId, fdb: &Fdb) -> Disposition {
    if frame.dst.is_multicast() {
        return Disposition::Flood;
    }
    match fdb.lookup(frame.vlan, frame.dst) {
        None => Disposition::Flood,
        // The destination sits behind the port the frame came from: the
        // segment there already delivered it.
        Some(port) if port == in_port => Disposition::Drop(DropReason::SamePort),
        Some(port) => Disposition::Unicast(port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::MacAddr;

    fn mac(n: u8) -> MacAddr {
        MacAddr([0x02, 0, 0, 0, 0, n])
    }

    fn frame(vlan: u16, dst: MacAddr) -> Classified {
        Classified {
            vlan,
            prio: 0,
            src: mac(1),
            dst,
        }
    }

    #[test]
    fn decisions() {
        let mut fdb = Fdb::new(16, 300);
        fdb.learn(0, mac(2), 2, 0, u32::MAX);
        fdb.learn(0, mac(3), 1, 0, u32::MAX);
        assert_eq!(decide(&frame(0, mac(2)), 1, &fdb), Disposition::Unicast(2));
        assert_eq!(decide(&frame(0, mac(9)), 1, &fdb), Disposition::Flood);
        assert_eq!(
            decide(&frame(0, MacAddr::BROADCAST), 1, &fdb),
            Disposition::Flood
        );
        let mcast: MacAddr = "33:33:00:00:00:01".parse().unwrap();
        assert_eq!(decide(&frame(0, mcast), 1, &fdb), Disposition::Flood);
        assert_eq!(
            decide(&frame(0, mac(3)), 1, &fdb),
            Disposition::Drop(DropReason::SamePort)
        );
        // Learned in VLAN 0 only: unknown in VLAN 5.
        assert_eq!(decide(&frame(5, mac(2)), 1, &fdb), Disposition::Flood);
    }
}
