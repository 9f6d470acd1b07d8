//! Input stage: parse a frame's Ethernet header and classify it.

use super::counters::DropReason;
use crate::wire::{EthernetFrame, MacAddr};

/// What the later stages need to know of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classified {
    /// The VLAN the frame belongs to: its outer 802.1Q VID, 0 if untagged or
    /// priority-tagged.
    pub vlan: u16,
    pub src: MacAddr,
    pub dst: MacAddr,
}

/// Classifies a frame, or says why it must be dropped.
#[inline]
pub fn classify(frame: &[u8]) -> Result<Classified, DropReason> {
    let eth = EthernetFrame::new_checked(frame).map_err(|_| DropReason::Runt)?;
    let src = eth.src();
    if !src.is_learnable() {
        return Err(DropReason::InvalidSourceMac);
    }
    Ok(Classified {
        vlan: eth.vlan_tci().map_or(0, |t| t.vid()),
        src,
        dst: eth.dst(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ethernet::build_frame;

    fn mac(n: u8) -> MacAddr {
        MacAddr([0x02, 0, 0, 0, 0, n])
    }

    #[test]
    fn untagged_is_vlan_zero() {
        let f = build_frame(mac(2), mac(1), 0x0800, &[0; 46]);
        let c = classify(&f).unwrap();
        assert_eq!((c.vlan, c.src, c.dst), (0, mac(1), mac(2)));
    }

    #[test]
    fn tagged_uses_outer_vid() {
        let f = build_frame(mac(2), mac(1), 0x8100, &[0x20, 0x0a, 0x08, 0x00, 0, 0]);
        assert_eq!(classify(&f).unwrap().vlan, 10);
        let prio = build_frame(mac(2), mac(1), 0x8100, &[0xe0, 0x00, 0x08, 0x00]);
        assert_eq!(classify(&prio).unwrap().vlan, 0);
    }

    #[test]
    fn bad_frames_have_reasons() {
        assert_eq!(classify(&[0u8; 13]), Err(DropReason::Runt));
        let truncated_tag = build_frame(mac(2), mac(1), 0x8100, &[0x00]);
        assert_eq!(classify(&truncated_tag), Err(DropReason::Runt));
        let bcast_src = build_frame(mac(2), MacAddr::BROADCAST, 0x0800, &[]);
        assert_eq!(classify(&bcast_src), Err(DropReason::InvalidSourceMac));
        let zero_src = build_frame(mac(2), MacAddr::ZERO, 0x0800, &[]);
        assert_eq!(classify(&zero_src), Err(DropReason::InvalidSourceMac));
    }
}
