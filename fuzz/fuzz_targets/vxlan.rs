//! See `vswitch::fuzzing::vxlan`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vswitch::fuzzing::vxlan(data));
