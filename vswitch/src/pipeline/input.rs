//! Input stage: parse a frame's Ethernet header, find its network by the
//! ingress port's VLAN mode, and strip the outer tag so the frame travels
//! untagged through the rest of the pipeline.

use super::counters::DropReason;
use super::vlan::{IngressRefusal, VlanMode};
use crate::packet::PacketBuf;
use crate::wire::{EthernetFrame, MacAddr};

/// What the later stages need to know of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classified {
    /// The network: a VLAN ID, or 0 for a default-mode port's untagged
    /// frames.
    pub vlan: u16,
    /// Priority and drop-eligible bits of the tag it came with (in their
    /// TCI positions), so a frame that leaves tagged keeps them.
    pub prio: u16,
    pub src: MacAddr,
    pub dst: MacAddr,
}

/// TPIDs of 802.1Q, 802.1ad and the old pre-standard QinQ.
const TPIDS: [[u8; 2]; 3] = [[0x81, 0x00], [0x88, 0xa8], [0x91, 0x00]];

/// Classifies the frame in `buf` for a port in `mode` and strips its outer
/// 802.1Q tag, or says why it must be dropped (leaving `buf` as it was).
#[inline(always)]
pub fn classify(buf: &mut PacketBuf, mode: &VlanMode) -> Result<Classified, DropReason> {
    let frame = buf.frame();
    let eth = EthernetFrame::new_checked(frame).map_err(|_| DropReason::Runt)?;
    let src = eth.src();
    if !src.is_learnable() {
        return Err(DropReason::InvalidSourceMac);
    }
    if eth.dst().is_link_local_reserved() {
        return Err(DropReason::ReservedMulticast);
    }
    let tci = eth.vlan_tci();
    let vlan = mode.ingress(tci.map(|t| t.vid())).map_err(|r| match r {
        IngressRefusal::TaggedOnAccess => DropReason::VlanTaggedOnAccess,
        IngressRefusal::NotAllowed => DropReason::VlanNotAllowed,
        IngressRefusal::UntaggedOnTrunk => DropReason::VlanUntaggedOnTrunk,
    })?;
    let dst = eth.dst();
    let inner_type_at = eth.header_len() - 2;
    // A second tag under the one that placed the frame in a VLAN would be
    // exposed when the frame leaves untagged elsewhere: the double-tagging
    // VLAN hop. Stacked tags are not supported inside VLANs; only the
    // default mode's network 0 carries frames as they are.
    if vlan != 0 {
        let inner: [u8; 2] = [frame[inner_type_at], frame[inner_type_at + 1]];
        if TPIDS.contains(&inner) {
            return Err(DropReason::VlanDoubleTagged);
        }
    }
    let prio = tci.map_or(0, |t| t.0 & 0xf000);
    if tci.is_some() {
        buf.remove_at(12, 4);
    }
    Ok(Classified {
        vlan,
        prio,
        src,
        dst,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::vlan::VlanSet;
    use crate::wire::ethernet::build_frame;

    fn mac(n: u8) -> MacAddr {
        MacAddr([0x02, 0, 0, 0, 0, n])
    }

    fn buf(frame: &[u8]) -> PacketBuf {
        let mut b = PacketBuf::new();
        b.copy_from(frame);
        b
    }

    fn tagged(tci: u16, inner_type: u16) -> Vec<u8> {
        let mut payload = tci.to_be_bytes().to_vec();
        payload.extend_from_slice(&inner_type.to_be_bytes());
        payload.extend_from_slice(&[0xab; 46]);
        build_frame(mac(2), mac(1), 0x8100, &payload)
    }

    #[test]
    fn default_mode_untagged_is_network_zero() {
        let f = build_frame(mac(2), mac(1), 0x0800, &[0; 46]);
        let mut b = buf(&f);
        let c = classify(&mut b, &VlanMode::default()).unwrap();
        assert_eq!((c.vlan, c.src, c.dst, c.prio), (0, mac(1), mac(2), 0));
        assert_eq!(b.frame(), &f[..]);
    }

    #[test]
    fn tags_are_stripped_and_priority_kept() {
        let mut b = buf(&tagged(0xa00a, 0x0800));
        let c = classify(&mut b, &VlanMode::default()).unwrap();
        assert_eq!((c.vlan, c.prio), (10, 0xa000));
        let plain = build_frame(mac(2), mac(1), 0x0800, &[0xab; 46]);
        assert_eq!(b.frame(), &plain[..]);
        // A priority tag on an access port: untagged, stripped.
        let mut b = buf(&tagged(0xe000, 0x0806));
        let c = classify(&mut b, &VlanMode::Access(7)).unwrap();
        assert_eq!((c.vlan, c.prio), (7, 0xe000));
        assert_eq!(&b.frame()[12..14], &[0x08, 0x06]);
    }

    #[test]
    fn refusals_leave_the_frame_alone() {
        let f = tagged(0x0014, 0x0800);
        let mut b = buf(&f);
        assert_eq!(
            classify(&mut b, &VlanMode::Access(10)),
            Err(DropReason::VlanTaggedOnAccess)
        );
        assert_eq!(b.frame(), &f[..]);
        let trunk = VlanMode::Trunk {
            allowed: VlanSet::parse("10").unwrap(),
            native: None,
        };
        assert_eq!(classify(&mut b, &trunk), Err(DropReason::VlanNotAllowed));
        let untagged = build_frame(mac(2), mac(1), 0x0800, &[0; 46]);
        assert_eq!(
            classify(&mut buf(&untagged), &trunk),
            Err(DropReason::VlanUntaggedOnTrunk)
        );
    }

    #[test]
    fn double_tags_inside_a_vlan_are_dropped() {
        // Priority tag outside, a real tag inside, on an access port.
        let mut b = buf(&tagged(0x0000, 0x8100));
        assert_eq!(
            classify(&mut b, &VlanMode::Access(10)),
            Err(DropReason::VlanDoubleTagged)
        );
        // 802.1ad inside an allowed trunk tag.
        let mut b = buf(&tagged(0x000a, 0x88a8));
        assert_eq!(
            classify(&mut b, &VlanMode::default()),
            Err(DropReason::VlanDoubleTagged)
        );
        // An untagged 802.1ad frame on an access port.
        let qinq = build_frame(mac(2), mac(1), 0x88a8, &[0, 20, 8, 0, 0, 0]);
        assert_eq!(
            classify(&mut buf(&qinq), &VlanMode::Access(10)),
            Err(DropReason::VlanDoubleTagged)
        );
        // The default mode's untagged network carries it as it is.
        assert!(classify(&mut buf(&qinq), &VlanMode::default()).is_ok());
    }

    #[test]
    fn bad_frames_have_reasons() {
        let d = VlanMode::default();
        assert_eq!(classify(&mut buf(&[0u8; 13]), &d), Err(DropReason::Runt));
        let truncated_tag = build_frame(mac(2), mac(1), 0x8100, &[0x00]);
        assert_eq!(
            classify(&mut buf(&truncated_tag), &d),
            Err(DropReason::Runt)
        );
        let bcast_src = build_frame(mac(2), MacAddr::BROADCAST, 0x0800, &[]);
        assert_eq!(
            classify(&mut buf(&bcast_src), &d),
            Err(DropReason::InvalidSourceMac)
        );
        let zero_src = build_frame(mac(2), MacAddr::ZERO, 0x0800, &[]);
        assert_eq!(
            classify(&mut buf(&zero_src), &d),
            Err(DropReason::InvalidSourceMac)
        );
    }
}
