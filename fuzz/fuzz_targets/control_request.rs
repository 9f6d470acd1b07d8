//! A control request line: parse, encode, parse again
//! (see `vswitch::fuzzing::control_request`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vswitch::fuzzing::control_request(data));
