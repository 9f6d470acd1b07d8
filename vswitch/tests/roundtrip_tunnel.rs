//! Property tests for the formats the VXLAN VTEP and the bonds emit: ARP,
//! IPv4/UDP outer headers, the VXLAN header, LACPDUs and marker PDUs. What
//! is emitted parses back to what was written; arbitrary bytes never panic
//! a parser.

use std::net::Ipv4Addr;

use proptest::collection::vec;
use proptest::prelude::*;
use vswitch::wire::arp::{ArpOp, ArpRepr};
use vswitch::wire::ipv4::{self, Ipv4Header, UdpHeader};
use vswitch::wire::lacp::{Lacpdu, MarkerKind, MarkerPdu, Pdu, PortInfo, PortState};
use vswitch::wire::{vxlan, MacAddr};

fn mac() -> impl Strategy<Value = MacAddr> {
    any::<[u8; 6]>().prop_map(MacAddr)
}

fn ip() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

fn port_info() -> impl Strategy<Value = PortInfo> {
    (
        any::<u16>(),
        mac(),
        any::<u16>(),
        any::<u16>(),
        any::<u16>(),
        any::<u8>(),
    )
        .prop_map(
            |(system_priority, system, key, port_priority, port, state)| PortInfo {
                system_priority,
                system,
                key,
                port_priority,
                port,
                state: PortState(state),
            },
        )
}

fn pdu() -> impl Strategy<Value = Pdu> {
    prop_oneof![
        (port_info(), port_info(), any::<u16>()).prop_map(|(actor, partner, delay)| {
            Pdu::Lacp(Lacpdu {
                actor,
                partner,
                collector_max_delay: delay,
            })
        }),
        (any::<bool>(), any::<u16>(), mac(), any::<u32>()).prop_map(|(info, port, system, id)| {
            Pdu::Marker(MarkerPdu {
                kind: if info {
                    MarkerKind::Information
                } else {
                    MarkerKind::Response
                },
                requester_port: port,
                requester_system: system,
                transaction_id: id,
            })
        }),
    ]
}

proptest! {
    #[test]
    fn arp_reads_back(request in any::<bool>(), sm in mac(), si in ip(), tm in mac(), ti in ip()) {
        let repr = ArpRepr {
            op: if request { ArpOp::Request } else { ArpOp::Reply },
            sender_mac: sm,
            sender_ip: si,
            target_mac: tm,
            target_ip: ti,
        };
        let mut out = [0u8; 28];
        prop_assert!(repr.emit(&mut out));
        prop_assert_eq!(ArpRepr::parse(&out), Some(repr));
    }

    #[test]
    fn ipv4_udp_headers_read_back(
        src in ip(), dst in ip(), sport in any::<u16>(), dport in any::<u16>(),
        payload in vec(any::<u8>(), 0..200),
    ) {
        let mut pkt = vec![0u8; 28 + payload.len()];
        ipv4::emit_udp(&mut pkt, src, dst, sport, dport, payload.len()).unwrap();
        pkt[28..].copy_from_slice(&payload);
        let h = Ipv4Header::parse(&pkt).unwrap();
        prop_assert_eq!((h.src, h.dst, h.protocol, h.header_len), (src, dst, ipv4::PROTO_UDP, 20));
        prop_assert_eq!(h.total_len, pkt.len());
        prop_assert!(!h.is_fragment);
        let u = UdpHeader::parse(&pkt[20..]).unwrap();
        prop_assert_eq!((u.src_port, u.dst_port, u.len), (sport, dport, 8 + payload.len()));
    }

    #[test]
    fn vxlan_header_reads_back(vni in 0u32..=vxlan::MAX_VNI) {
        let mut out = [0u8; 8];
        prop_assert!(vxlan::emit(vni, &mut out));
        prop_assert_eq!(vxlan::parse(&out), Ok(vni));
    }

    #[test]
    fn slow_protocol_pdus_read_back(pdu in pdu()) {
        let mut out = [0u8; 128];
        let n = pdu.emit(&mut out);
        prop_assert!(n > 0);
        prop_assert_eq!(Pdu::parse(&out[..n]), Ok(pdu));
    }

    #[test]
    fn parsers_never_panic(bytes in vec(any::<u8>(), 0..160)) {
        let _ = ArpRepr::parse(&bytes);
        let _ = Ipv4Header::parse(&bytes);
        let _ = UdpHeader::parse(&bytes);
        let _ = vxlan::parse(&bytes);
        let _ = Pdu::parse(&bytes);
    }
}
