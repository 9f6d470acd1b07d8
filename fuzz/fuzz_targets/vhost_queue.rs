//! See `vswitch::fuzzing::vhost_queue`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vswitch::fuzzing::vhost_queue(data));
