//! Gratuitous announcements: one RARP frame per MAC, so switches upstream of
//! a port that just changed path (a bond failover) move the MAC at once.
//! The format is the one hypervisors send after a live migration.

use crate::wire::MacAddr;

/// Ethernet frames are padded to this length (without FCS).
const MIN_FRAME: usize = 60;
const ETHERTYPE_RARP: u16 = 0x8035;

/// Writes a RARP "reverse request" from `mac` (802.1Q-tagged when `vlan`
/// is not 0) into `out`; returns its length, or 0 if `out` is too short.
pub fn rarp(mac: MacAddr, vlan: u16, out: &mut [u8]) -> usize {
    if out.len() < MIN_FRAME + 4 {
        return 0;
    }
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        out[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(&MacAddr::BROADCAST.0);
    put(&mac.0);
    if vlan != 0 {
        put(&0x8100u16.to_be_bytes());
        put(&(vlan & 0x0fff).to_be_bytes());
    }
    put(&ETHERTYPE_RARP.to_be_bytes());
    put(&1u16.to_be_bytes()); // hardware type: Ethernet
    put(&0x0800u16.to_be_bytes()); // protocol type: IPv4
    put(&[6, 4]); // address lengths
    put(&3u16.to_be_bytes()); // reverse request
    put(&mac.0);
    put(&[0; 4]);
    put(&mac.0);
    put(&[0; 4]);
    let len = at.max(MIN_FRAME);
    out[at..len].fill(0);
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{EtherType, EthernetFrame};

    #[test]
    fn untagged_and_tagged() {
        let mac: MacAddr = "52:54:00:aa:bb:cc".parse().unwrap();
        let mut buf = [0xeeu8; 128];
        let n = rarp(mac, 0, &mut buf);
        assert_eq!(n, 60);
        let f = EthernetFrame::new_checked(&buf[..n]).unwrap();
        assert!(f.dst().is_broadcast());
        assert_eq!(f.src(), mac);
        assert_eq!(f.ethertype(), EtherType::Unknown(0x8035));
        assert_eq!(&f.payload()[8..14], &mac.0);
        assert!(buf[42..60].iter().all(|b| *b == 0));

        let n = rarp(mac, 100, &mut buf);
        let f = EthernetFrame::new_checked(&buf[..n]).unwrap();
        assert_eq!(f.vlan_tci().unwrap().vid(), 100);
        assert_eq!(f.payload_ethertype(), EtherType::Unknown(0x8035));
        assert_eq!(rarp(mac, 0, &mut buf[..10]), 0);
    }
}
