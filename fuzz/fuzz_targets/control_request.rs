//! Arbitrary bytes as a control request line: parsing never panics, and
//! whatever parses encodes back to a line that parses to the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vswitch::control::protocol::Request;
use vswitch::control::server::parse_request;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = parse_request(data) {
        let line = serde_json::to_string(&request).unwrap();
        assert!(!line.contains('\n'));
        let again: Request = serde_json::from_str(&line).unwrap();
        assert_eq!(again, request);
    }
});
