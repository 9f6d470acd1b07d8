//! See `vswitch::fuzzing::lacp`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vswitch::fuzzing::lacp(data));
