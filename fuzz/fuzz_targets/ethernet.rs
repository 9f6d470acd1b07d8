//! Ethernet/802.1Q views and header round trips, MAC text, RARP
//! announcements (see `vswitch::fuzzing::ethernet`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vswitch::fuzzing::ethernet(data));
