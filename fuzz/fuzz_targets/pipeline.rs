//! The whole ingress pipeline: frames from loopback ports into a two-bridge
//! switch, checked against a model (see `vswitch::fuzzing::pipeline`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vswitch::fuzzing::pipeline(data));
