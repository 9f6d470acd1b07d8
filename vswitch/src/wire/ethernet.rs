//! Ethernet II frames with an optional 802.1Q tag.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                  destination MAC (6 octets)                   |
//! +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                               |                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//! |                    source MAC (6 octets)                      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   EtherType / TPID 0x8100     | PCP |D|   VID (if tagged)     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use super::{MacAddr, WireError};

mod field {
    use std::ops::Range;
    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const HEADER_LEN: usize = 14;
    pub const TCI: Range<usize> = 14..16;
    pub const INNER_ETHERTYPE: Range<usize> = 16..18;
    pub const TAGGED_HEADER_LEN: usize = 18;
}

/// Length of an untagged Ethernet header.
pub const HEADER_LEN: usize = field::HEADER_LEN;
/// Length of one 802.1Q tag (TPID + TCI).
pub const VLAN_TAG_LEN: usize = 4;

/// EtherType codes the switch cares about; every other value is kept as-is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtherType {
    Ipv4,
    Arp,
    Vlan,
    QinQ,
    Ipv6,
    SlowProtocols,
    Unknown(u16),
}

impl From<u16> for EtherType {
    fn from(v: u16) -> Self {
        match v {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x8100 => EtherType::Vlan,
            0x88a8 => EtherType::QinQ,
            0x86dd => EtherType::Ipv6,
            0x8809 => EtherType::SlowProtocols,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    fn from(t: EtherType) -> u16 {
        match t {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Vlan => 0x8100,
            EtherType::QinQ => 0x88a8,
            EtherType::Ipv6 => 0x86dd,
            EtherType::SlowProtocols => 0x8809,
            EtherType::Unknown(v) => v,
        }
    }
}

/// An 802.1Q tag control information word: priority, DEI and VLAN ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanTci(pub u16);

impl VlanTci {
    #[inline]
    pub fn vid(self) -> u16 {
        self.0 & 0x0fff
    }
    #[inline]
    pub fn pcp(self) -> u8 {
        (self.0 >> 13) as u8
    }
}

/// A zero-copy view of an Ethernet frame.
#[derive(Debug, Clone, Copy)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps `buffer` without checking its length; use `new_checked` for
    /// untrusted input.
    pub fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wraps `buffer` after checking it holds at least an Ethernet header,
    /// and the whole tag when the frame is 802.1Q tagged.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    pub fn check_len(&self) -> Result<(), WireError> {
        let have = self.buffer.as_ref().len();
        let needed = if have >= field::HEADER_LEN && self.raw_ethertype() == 0x8100 {
            field::TAGGED_HEADER_LEN
        } else {
            field::HEADER_LEN
        };
        if have < needed {
            return Err(WireError::Truncated { needed, have });
        }
        Ok(())
    }

    #[inline]
    fn raw_ethertype(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[field::ETHERTYPE.start], b[field::ETHERTYPE.start + 1]])
    }

    #[inline]
    pub fn dst(&self) -> MacAddr {
        let mut m = [0u8; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::DESTINATION]);
        MacAddr(m)
    }

    #[inline]
    pub fn src(&self) -> MacAddr {
        let mut m = [0u8; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::SOURCE]);
        MacAddr(m)
    }

    /// The outer EtherType (0x8100 for a tagged frame).
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        self.raw_ethertype().into()
    }

    /// The outer 802.1Q tag, if the frame carries one.
    #[inline]
    pub fn vlan_tci(&self) -> Option<VlanTci> {
        if self.raw_ethertype() != 0x8100 {
            return None;
        }
        let b = self.buffer.as_ref();
        Some(VlanTci(u16::from_be_bytes([
            b[field::TCI.start],
            b[field::TCI.start + 1],
        ])))
    }

    /// The EtherType of the payload, after the tag if there is one.
    #[inline]
    pub fn payload_ethertype(&self) -> EtherType {
        if self.raw_ethertype() != 0x8100 {
            return self.ethertype();
        }
        let b = self.buffer.as_ref();
        let r = field::INNER_ETHERTYPE;
        u16::from_be_bytes([b[r.start], b[r.start + 1]]).into()
    }

    pub fn header_len(&self) -> usize {
        if self.raw_ethertype() == 0x8100 {
            field::TAGGED_HEADER_LEN
        } else {
            field::HEADER_LEN
        }
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    pub fn set_dst(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&mac.0);
    }
    pub fn set_src(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&mac.0);
    }
    pub fn set_ethertype(&mut self, t: EtherType) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&u16::from(t).to_be_bytes());
    }
}

/// An Ethernet header as an owned value: what `EthernetFrame` shows of it,
/// parsed once, and written back by `emit`.
///
/// `ethertype` is the payload's EtherType: the one after the tag when
/// `vlan` is `Some`. An untagged repr whose `ethertype` is 0x8100 emits the
/// TPID where the EtherType goes and so reads back as a tagged frame; it
/// describes no untagged frame, and `parse` never returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetRepr {
    pub dst: MacAddr,
    pub src: MacAddr,
    pub vlan: Option<VlanTci>,
    pub ethertype: EtherType,
}

impl EthernetRepr {
    /// Reads the header of `frame`, checking its length first (so a view
    /// made with `new_unchecked` is fine too).
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> Result<Self, WireError> {
        frame.check_len()?;
        Ok(EthernetRepr {
            dst: frame.dst(),
            src: frame.src(),
            vlan: frame.vlan_tci(),
            ethertype: frame.payload_ethertype(),
        })
    }

    /// Length of the header `emit` writes: 14 bytes, or 18 with a tag.
    pub fn buffer_len(&self) -> usize {
        if self.vlan.is_some() {
            field::TAGGED_HEADER_LEN
        } else {
            field::HEADER_LEN
        }
    }

    /// Writes the header at the start of `buf` and returns its length; the
    /// payload after it is left alone.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let len = self.buffer_len();
        if buf.len() < len {
            return Err(WireError::Truncated {
                needed: len,
                have: buf.len(),
            });
        }
        buf[field::DESTINATION].copy_from_slice(&self.dst.0);
        buf[field::SOURCE].copy_from_slice(&self.src.0);
        let ethertype = u16::from(self.ethertype).to_be_bytes();
        match self.vlan {
            Some(tci) => {
                buf[field::ETHERTYPE].copy_from_slice(&0x8100u16.to_be_bytes());
                buf[field::TCI].copy_from_slice(&tci.0.to_be_bytes());
                buf[field::INNER_ETHERTYPE].copy_from_slice(&ethertype);
            }
            None => buf[field::ETHERTYPE].copy_from_slice(&ethertype),
        }
        Ok(len)
    }
}

/// Builds a minimal Ethernet frame, for tests, benches and fuzz seeds.
pub fn build_frame(dst: MacAddr, src: MacAddr, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_LEN + payload.len());
    v.extend_from_slice(&dst.0);
    v.extend_from_slice(&src.0);
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNTAGGED: [u8; 16] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst
        0x52, 0x54, 0x00, 0x00, 0x00, 0x01, // src
        0x08, 0x06, // ARP
        0xaa, 0xbb,
    ];
    const TAGGED: [u8; 20] = [
        0x52, 0x54, 0x00, 0x00, 0x00, 0x02, // dst
        0x52, 0x54, 0x00, 0x00, 0x00, 0x01, // src
        0x81, 0x00, 0xa0, 0x64, // PCP 5, VID 100
        0x08, 0x00, 0x45, 0x00,
    ];

    #[test]
    fn untagged_fields() {
        let f = EthernetFrame::new_checked(&UNTAGGED[..]).unwrap();
        assert!(f.dst().is_broadcast());
        assert_eq!(f.src().to_string(), "52:54:00:00:00:01");
        assert_eq!(f.ethertype(), EtherType::Arp);
        assert_eq!(f.vlan_tci(), None);
        assert_eq!(f.payload(), &[0xaa, 0xbb]);
    }

    #[test]
    fn tagged_fields() {
        let f = EthernetFrame::new_checked(&TAGGED[..]).unwrap();
        let tci = f.vlan_tci().unwrap();
        assert_eq!(tci.vid(), 100);
        assert_eq!(tci.pcp(), 5);
        assert_eq!(f.payload_ethertype(), EtherType::Ipv4);
        assert_eq!(f.header_len(), 18);
    }

    #[test]
    fn truncated_frames_are_refused() {
        for n in 0..14 {
            assert!(EthernetFrame::new_checked(&UNTAGGED[..n]).is_err());
        }
        for n in 14..18 {
            assert!(EthernetFrame::new_checked(&TAGGED[..n]).is_err());
        }
    }

    #[test]
    fn ethertype_codes_are_total() {
        for v in [0u16, 0x0800, 0x8100, 0x8809, 0xffff, 0x1234] {
            assert_eq!(u16::from(EtherType::from(v)), v);
        }
    }

    #[test]
    fn repr_parses_and_emits_the_same_bytes() {
        for bytes in [&UNTAGGED[..], &TAGGED[..]] {
            let f = EthernetFrame::new_checked(bytes).unwrap();
            let repr = EthernetRepr::parse(&f).unwrap();
            assert_eq!(repr.buffer_len(), f.header_len());
            let mut out = [0u8; 18];
            assert_eq!(repr.emit(&mut out), Ok(f.header_len()));
            assert_eq!(&out[..f.header_len()], &bytes[..f.header_len()]);
        }
        let tagged = EthernetRepr::parse(&EthernetFrame::new_unchecked(&TAGGED[..])).unwrap();
        assert_eq!(tagged.vlan, Some(VlanTci(0xa064)));
        assert_eq!(tagged.ethertype, EtherType::Ipv4);
        assert!(EthernetRepr::parse(&EthernetFrame::new_unchecked(&TAGGED[..15])).is_err());
        assert_eq!(
            tagged.emit(&mut [0u8; 17]),
            Err(WireError::Truncated {
                needed: 18,
                have: 17
            })
        );
    }

    #[test]
    fn setters_write_in_place() {
        let mut buf = UNTAGGED;
        let mut f = EthernetFrame::new_checked(&mut buf[..]).unwrap();
        f.set_dst(MacAddr([2, 0, 0, 0, 0, 9]));
        f.set_ethertype(EtherType::Ipv6);
        assert_eq!(f.dst(), MacAddr([2, 0, 0, 0, 0, 9]));
        assert_eq!(f.ethertype(), EtherType::Ipv6);
    }
}
