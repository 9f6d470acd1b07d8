//! Wire formats: zero-copy views over byte slices plus owned values.
//!
//! Panic contract: every view is built with `new_checked`, which verifies the
//! length once; after that no accessor panics, whatever the bytes are. Values
//! that come off the wire as codes are total enums (`EtherType::Unknown`).

pub mod arp;
pub mod ethernet;
pub mod ipv4;
pub mod lacp;
pub mod mac;
pub mod vnet;
pub mod vxlan;

pub use ethernet::{EtherType, EthernetFrame, EthernetRepr, VlanTci};
pub use mac::MacAddr;

/// A frame or header too short or malformed to parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("truncated: need {needed} bytes, have {have}")]
    Truncated { needed: usize, have: usize },
}
