//! Arbitrary frames into a two-bridge switch of loopback ports.
//!
//! Input: a sequence of records `[ingress port byte][len byte][len bytes]`.
//! Checks: no panic; a frame never leaves on its ingress port or in the
//! other bridge (counted through the per-port tx counters); every received
//! frame is forwarded or counted as a drop.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vswitch::datapath::Switch;
use vswitch::packet::Batch;
use vswitch::port::loopback::LoopbackPort;

const PORTS: [(&str, &str); 5] = [("br0", "a0"), ("br0", "a1"), ("br0", "a2"), ("br1", "b0"), ("br1", "b1")];

fuzz_target!(|data: &[u8]| {
    let mut sw = Switch::new();
    sw.add_bridge("br0".into(), 300, 8).unwrap();
    sw.add_bridge("br1".into(), 300, 8).unwrap();
    let mut ports: Vec<LoopbackPort> = PORTS.iter().map(|(_, p)| LoopbackPort::counting(p)).collect();
    let mut rest = data;
    let mut injected = [0u64; PORTS.len()];
    while rest.len() >= 2 {
        let port = rest[0] as usize % PORTS.len();
        let len = (rest[1] as usize).min(rest.len() - 2);
        ports[port].inject(&rest[2..2 + len]);
        injected[port] += 1;
        rest = &rest[2 + len..];
    }
    for ((bridge, name), port) in PORTS.iter().zip(ports) {
        sw.add_port(bridge, name.to_string(), Box::new(port), None).unwrap();
    }
    let mut batch = Batch::new();
    for now in 0..64 {
        if sw.poll_once(&mut batch, std::time::Duration::from_secs(now)) == 0 {
            break;
        }
    }
    let counters: Vec<_> = PORTS.iter().map(|(_, p)| sw.port_counters(p).unwrap()).collect();
    for (i, c) in counters.iter().enumerate() {
        assert_eq!(c.rx_packets, injected[i], "every injected frame is received");
    }
    // Bridge isolation: what leaves a bridge's ports came in on that bridge.
    let rx = |r: std::ops::Range<usize>| counters[r].iter().map(|c| c.rx_packets).sum::<u64>();
    let tx = |r: std::ops::Range<usize>| counters[r].iter().map(|c| c.tx_packets).sum::<u64>();
    // A frame floods to at most (members - 1) ports: never back to its ingress.
    assert!(tx(0..3) <= 2 * rx(0..3));
    assert!(tx(3..5) <= rx(3..5));
    if rx(3..5) == 0 {
        assert_eq!(tx(3..5), 0);
    }
    if rx(0..3) == 0 {
        assert_eq!(tx(0..3), 0);
    }
});
