//! See `vswitch::fuzzing::evpn`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vswitch::fuzzing::evpn(data));
