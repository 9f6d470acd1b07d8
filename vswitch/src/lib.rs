//! vswitch: a userspace virtual switch for hypervisor hosts.
//!
//! See `docs/architecture.md` for how a frame travels through the switch.
//! Unsafe code is confined to `port::sys`.
#![deny(unsafe_code)]

pub mod capture;
pub mod config;
pub mod control;
pub mod daemon;
pub mod datapath;
pub mod events;
pub mod evpn;
pub mod fdb;
pub mod fuzzing;
pub mod hostnic;
pub mod lacp;
pub mod metrics;
pub mod packet;
pub mod pipeline;
pub mod port;
pub mod wire;
