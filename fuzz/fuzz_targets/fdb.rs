//! See `vswitch::fuzzing::fdb`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vswitch::fuzzing::fdb(data));
