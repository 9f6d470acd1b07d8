//! Slow protocols PDUs of link aggregation (IEEE 802.1AX-2014, clause 6.4):
//! the LACPDU and the marker PDU. Both follow an untagged Ethernet header to
//! the slow protocols group address 01:80:c2:00:00:02 with EtherType 0x8809;
//! the views here start at the subtype octet, right after the EtherType.
//!
//! ```text
//! LACPDU (110 octets)                      Marker PDU (110 octets)
//!  0  subtype = 1 (LACP)                    0  subtype = 2 (Marker)
//!  1  version = 1                           1  version = 1
//!  2  TLV type = 1 (actor), 3 len = 20      2  TLV type = 1 (info) | 2 (response)
//!  4  system priority (2)                   3  length = 16
//!  6  system (MAC, 6)                       4  requester port (2)
//! 12  key (2)                               6  requester system (MAC, 6)
//! 14  port priority (2)                    12  requester transaction ID (4)
//! 16  port (2)                             16  pad (2)
//! 18  state (1), 19 reserved (3)           18  TLV type = 0 (terminator), 19 len = 0
//! 22  TLV type = 2 (partner), 23 len = 20  20  reserved (90)
//! 24..42 partner info, laid out as the actor's
//! 42  TLV type = 3 (collector), 43 len = 16
//! 44  collector max delay (2), 46 reserved (12)
//! 58  TLV type = 0 (terminator), 59 len = 0
//! 60  reserved (50)
//!
//! state bits: 0 activity  1 timeout  2 aggregation  3 synchronization
//!             4 collecting  5 distributing  6 defaulted  7 expired
//! ```
//!
//! Version: 0 is refused; 1 is this layout; higher versions (802.1AX-2014's
//! version 2 appends TLVs after the collector TLV) are read as version 1, as
//! the standard asks of version 1 receivers, so their terminator is not
//! checked. Reserved octets are ignored on receipt and sent as zero.

use super::MacAddr;

/// The slow protocols group address every LACPDU and marker PDU is sent to.
pub const SLOW_PROTOCOLS_MAC: MacAddr = MacAddr([0x01, 0x80, 0xc2, 0x00, 0x00, 0x02]);
/// EtherType of the slow protocols.
pub const SLOW_PROTOCOLS_ETHERTYPE: u16 = 0x8809;
/// Length of an LACPDU and of a marker PDU, after the EtherType.
pub const PDU_LEN: usize = 110;
/// Length of a whole slow protocols frame we send (Ethernet header + PDU).
pub const FRAME_LEN: usize = 14 + PDU_LEN;

const SUBTYPE_LACP: u8 = 1;
const SUBTYPE_MARKER: u8 = 2;

mod field {
    use std::ops::Range;
    pub const SUBTYPE: usize = 0;
    pub const VERSION: usize = 1;
    // LACPDU
    pub const ACTOR_TLV: usize = 2;
    pub const ACTOR: Range<usize> = 4..22;
    pub const PARTNER_TLV: usize = 22;
    pub const PARTNER: Range<usize> = 24..42;
    pub const COLLECTOR_TLV: usize = 42;
    pub const COLLECTOR_MAX_DELAY: Range<usize> = 44..46;
    pub const LACP_TERMINATOR: usize = 58;
    // Within an actor or partner information block (18 octets).
    pub const SYS_PRIORITY: Range<usize> = 0..2;
    pub const SYSTEM: Range<usize> = 2..8;
    pub const KEY: Range<usize> = 8..10;
    pub const PORT_PRIORITY: Range<usize> = 10..12;
    pub const PORT: Range<usize> = 12..14;
    pub const STATE: usize = 14;
    // Marker PDU
    pub const MARKER_TLV: usize = 2;
    pub const REQUESTER_PORT: Range<usize> = 4..6;
    pub const REQUESTER_SYSTEM: Range<usize> = 6..12;
    pub const TRANSACTION: Range<usize> = 12..16;
    pub const MARKER_TERMINATOR: usize = 18;
}

/// Why bytes are not a PDU we understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LacpError {
    #[error("slow protocols PDU truncated: {have} of {PDU_LEN} octets")]
    Truncated { have: usize },
    #[error("slow protocols subtype {0} is neither LACP (1) nor marker (2)")]
    UnknownSubtype(u8),
    #[error("unsupported version {0}")]
    BadVersion(u8),
    #[error("bad TLV at octet {at}: type {tlv_type}, length {len}")]
    BadTlv { at: usize, tlv_type: u8, len: u8 },
}

/// An actor or partner state octet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PortState(pub u8);

impl PortState {
    pub const ACTIVITY: u8 = 0x01;
    pub const TIMEOUT: u8 = 0x02;
    pub const AGGREGATION: u8 = 0x04;
    pub const SYNCHRONIZATION: u8 = 0x08;
    pub const COLLECTING: u8 = 0x10;
    pub const DISTRIBUTING: u8 = 0x20;
    pub const DEFAULTED: u8 = 0x40;
    pub const EXPIRED: u8 = 0x80;
    /// Bit names in bit order, for reports.
    pub const NAMES: [&'static str; 8] = [
        "activity",
        "short_timeout",
        "aggregation",
        "synchronization",
        "collecting",
        "distributing",
        "defaulted",
        "expired",
    ];

    #[inline]
    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    #[inline]
    pub fn set(&mut self, bit: u8, on: bool) {
        if on {
            self.0 |= bit;
        } else {
            self.0 &= !bit;
        }
    }

    /// One letter per bit, `.` when clear: `ATGSCDFE` all set.
    pub fn letters(self) -> String {
        b"ATGSCDFE"
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if self.0 & (1 << i) != 0 {
                    *c as char
                } else {
                    '.'
                }
            })
            .collect()
    }

    /// Names of the bits that are set.
    pub fn names(self) -> Vec<&'static str> {
        (0..8)
            .filter(|i| self.0 & (1 << i) != 0)
            .map(|i| Self::NAMES[i])
            .collect()
    }
}

/// The actor or partner information of an LACPDU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PortInfo {
    pub system_priority: u16,
    pub system: MacAddr,
    pub key: u16,
    pub port_priority: u16,
    pub port: u16,
    pub state: PortState,
}

impl PortInfo {
    fn parse(b: &[u8]) -> PortInfo {
        let u16_at = |r: std::ops::Range<usize>| u16::from_be_bytes([b[r.start], b[r.start + 1]]);
        let mut system = [0u8; 6];
        system.copy_from_slice(&b[field::SYSTEM]);
        PortInfo {
            system_priority: u16_at(field::SYS_PRIORITY),
            system: MacAddr(system),
            key: u16_at(field::KEY),
            port_priority: u16_at(field::PORT_PRIORITY),
            port: u16_at(field::PORT),
            state: PortState(b[field::STATE]),
        }
    }

    fn emit(&self, b: &mut [u8]) {
        b[field::SYS_PRIORITY].copy_from_slice(&self.system_priority.to_be_bytes());
        b[field::SYSTEM].copy_from_slice(&self.system.0);
        b[field::KEY].copy_from_slice(&self.key.to_be_bytes());
        b[field::PORT_PRIORITY].copy_from_slice(&self.port_priority.to_be_bytes());
        b[field::PORT].copy_from_slice(&self.port.to_be_bytes());
        b[field::STATE] = self.state.0;
        b[field::STATE + 1..field::STATE + 4].fill(0);
    }
}

/// A zero-copy view of a slow protocols PDU (from the subtype octet on).
#[derive(Debug, Clone, Copy)]
pub struct SlowPdu<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> SlowPdu<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        SlowPdu { buffer }
    }

    /// Wraps `buffer` after checking it holds a whole PDU: after this no
    /// accessor panics.
    pub fn new_checked(buffer: T) -> Result<Self, LacpError> {
        let pdu = Self::new_unchecked(buffer);
        pdu.check_len()?;
        Ok(pdu)
    }

    pub fn check_len(&self) -> Result<(), LacpError> {
        let have = self.buffer.as_ref().len();
        if have < PDU_LEN {
            return Err(LacpError::Truncated { have });
        }
        Ok(())
    }

    pub fn subtype(&self) -> u8 {
        self.buffer.as_ref()[field::SUBTYPE]
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }

    /// The TLV header (type, length) at octet `at`.
    fn tlv(&self, at: usize) -> (u8, u8) {
        let b = self.buffer.as_ref();
        (b[at], b[at + 1])
    }

    fn expect_tlv(&self, at: usize, want: (u8, u8)) -> Result<(), LacpError> {
        let (tlv_type, len) = self.tlv(at);
        if (tlv_type, len) == want {
            Ok(())
        } else {
            Err(LacpError::BadTlv { at, tlv_type, len })
        }
    }

    pub fn actor(&self) -> PortInfo {
        PortInfo::parse(&self.buffer.as_ref()[field::ACTOR])
    }

    pub fn partner(&self) -> PortInfo {
        PortInfo::parse(&self.buffer.as_ref()[field::PARTNER])
    }

    pub fn collector_max_delay(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::COLLECTOR_MAX_DELAY];
        u16::from_be_bytes([b[0], b[1]])
    }
}

/// An LACPDU, owned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lacpdu {
    pub actor: PortInfo,
    pub partner: PortInfo,
    /// Tens of microseconds the actor's collector may delay a frame.
    pub collector_max_delay: u16,
}

/// Whether a marker PDU asks or answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerKind {
    Information,
    Response,
}

/// A marker PDU, owned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkerPdu {
    pub kind: MarkerKind,
    pub requester_port: u16,
    pub requester_system: MacAddr,
    pub transaction_id: u32,
}

/// A slow protocols PDU this switch understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pdu {
    Lacp(Lacpdu),
    Marker(MarkerPdu),
}

impl Pdu {
    /// Parses the bytes after the EtherType of a slow protocols frame.
    pub fn parse(bytes: &[u8]) -> Result<Pdu, LacpError> {
        let pdu = SlowPdu::new_checked(bytes)?;
        let subtype = pdu.subtype();
        if subtype != SUBTYPE_LACP && subtype != SUBTYPE_MARKER {
            return Err(LacpError::UnknownSubtype(subtype));
        }
        let version = pdu.version();
        if version == 0 {
            return Err(LacpError::BadVersion(version));
        }
        if subtype == SUBTYPE_LACP {
            pdu.expect_tlv(field::ACTOR_TLV, (1, 20))?;
            pdu.expect_tlv(field::PARTNER_TLV, (2, 20))?;
            pdu.expect_tlv(field::COLLECTOR_TLV, (3, 16))?;
            if version == 1 {
                pdu.expect_tlv(field::LACP_TERMINATOR, (0, 0))?;
            }
            return Ok(Pdu::Lacp(Lacpdu {
                actor: pdu.actor(),
                partner: pdu.partner(),
                collector_max_delay: pdu.collector_max_delay(),
            }));
        }
        let (tlv_type, len) = pdu.tlv(field::MARKER_TLV);
        let kind = match (tlv_type, len) {
            (1, 16) => MarkerKind::Information,
            (2, 16) => MarkerKind::Response,
            _ => {
                return Err(LacpError::BadTlv {
                    at: field::MARKER_TLV,
                    tlv_type,
                    len,
                })
            }
        };
        if version == 1 {
            pdu.expect_tlv(field::MARKER_TERMINATOR, (0, 0))?;
        }
        let b = bytes;
        let mut system = [0u8; 6];
        system.copy_from_slice(&b[field::REQUESTER_SYSTEM]);
        let t = &b[field::TRANSACTION];
        Ok(Pdu::Marker(MarkerPdu {
            kind,
            requester_port: u16::from_be_bytes([
                b[field::REQUESTER_PORT.start],
                b[field::REQUESTER_PORT.start + 1],
            ]),
            requester_system: MacAddr(system),
            transaction_id: u32::from_be_bytes([t[0], t[1], t[2], t[3]]),
        }))
    }

    /// Writes the PDU (version 1, reserved octets zero) into `out`'s first
    /// `PDU_LEN` octets; returns `PDU_LEN`, or 0 if `out` is too short.
    pub fn emit(&self, out: &mut [u8]) -> usize {
        let Some(b) = out.get_mut(..PDU_LEN) else {
            return 0;
        };
        b.fill(0);
        b[field::VERSION] = 1;
        match self {
            Pdu::Lacp(l) => {
                b[field::SUBTYPE] = SUBTYPE_LACP;
                b[field::ACTOR_TLV..field::ACTOR_TLV + 2].copy_from_slice(&[1, 20]);
                l.actor
                    .emit(&mut b[field::ACTOR.start..field::ACTOR.end + 3]);
                b[field::PARTNER_TLV..field::PARTNER_TLV + 2].copy_from_slice(&[2, 20]);
                l.partner
                    .emit(&mut b[field::PARTNER.start..field::PARTNER.end + 3]);
                b[field::COLLECTOR_TLV..field::COLLECTOR_TLV + 2].copy_from_slice(&[3, 16]);
                b[field::COLLECTOR_MAX_DELAY].copy_from_slice(&l.collector_max_delay.to_be_bytes());
            }
            Pdu::Marker(m) => {
                b[field::SUBTYPE] = SUBTYPE_MARKER;
                b[field::MARKER_TLV] = match m.kind {
                    MarkerKind::Information => 1,
                    MarkerKind::Response => 2,
                };
                b[field::MARKER_TLV + 1] = 16;
                b[field::REQUESTER_PORT].copy_from_slice(&m.requester_port.to_be_bytes());
                b[field::REQUESTER_SYSTEM].copy_from_slice(&m.requester_system.0);
                b[field::TRANSACTION].copy_from_slice(&m.transaction_id.to_be_bytes());
            }
        }
        PDU_LEN
    }

    /// Writes a whole frame: slow protocols group address, `src`, EtherType
    /// 0x8809 and the PDU. Returns `FRAME_LEN`, or 0 if `out` is too short.
    pub fn emit_frame(&self, src: MacAddr, out: &mut [u8]) -> usize {
        if out.len() < FRAME_LEN {
            return 0;
        }
        out[0..6].copy_from_slice(&SLOW_PROTOCOLS_MAC.0);
        out[6..12].copy_from_slice(&src.0);
        out[12..14].copy_from_slice(&SLOW_PROTOCOLS_ETHERTYPE.to_be_bytes());
        self.emit(&mut out[14..]);
        FRAME_LEN
    }
}

/// Whether `frame` is an untagged slow protocols frame (EtherType 0x8809),
/// which a bridge must never forward.
#[inline]
pub fn is_slow_protocols(frame: &[u8]) -> bool {
    frame.len() >= 14 && frame[12..14] == SLOW_PROTOCOLS_ETHERTYPE.to_be_bytes()
}

#[cfg(test)]
mod tests;
