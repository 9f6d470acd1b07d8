//! Property tests: every wire format the switch emits reads back as what
//! was written, and parsing arbitrary input never panics.
//!
//! - Ethernet / 802.1Q headers (`EthernetRepr` and the `EthernetFrame` view);
//! - the RARP announcement (`pipeline::announce::rarp`);
//! - MAC addresses as text and as JSON;
//! - control protocol requests and replies, through the server's own parser.

use std::collections::BTreeMap;

use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use vswitch::control::protocol::{Reply, Request};
use vswitch::control::server::parse_request;
use vswitch::pipeline::announce;
use vswitch::wire::ethernet::HEADER_LEN;
use vswitch::wire::{EtherType, EthernetFrame, EthernetRepr, MacAddr, VlanTci};

fn mac() -> impl Strategy<Value = MacAddr> {
    any::<[u8; 6]>().prop_map(MacAddr)
}

/// Every header `parse` can return: an untagged header never carries the
/// 802.1Q TPID as its EtherType (that would be a tagged frame).
fn ethernet_repr() -> impl Strategy<Value = EthernetRepr> {
    (mac(), mac(), option::of(any::<u16>()), any::<u16>())
        .prop_filter("untagged with EtherType 0x8100", |(_, _, tci, et)| {
            tci.is_some() || *et != 0x8100
        })
        .prop_map(|(dst, src, tci, et)| EthernetRepr {
            dst,
            src,
            vlan: tci.map(VlanTci),
            ethertype: EtherType::from(et),
        })
}

proptest! {
    #[test]
    fn ethernet_repr_emits_what_it_parses(repr in ethernet_repr(), payload in vec(any::<u8>(), 0..64)) {
        let mut buf = vec![0u8; repr.buffer_len() + payload.len()];
        buf[repr.buffer_len()..].copy_from_slice(&payload);
        prop_assert_eq!(repr.emit(&mut buf), Ok(repr.buffer_len()));
        let frame = EthernetFrame::new_checked(&buf[..]).expect("an emitted header parses");
        prop_assert_eq!(frame.header_len(), repr.buffer_len());
        prop_assert_eq!(frame.payload(), &payload[..]);
        prop_assert_eq!(EthernetRepr::parse(&frame), Ok(repr));
        // Too small a buffer is an error, never a panic or a partial write.
        let mut short = vec![0u8; repr.buffer_len() - 1];
        prop_assert!(repr.emit(&mut short).is_err());
        prop_assert!(short.iter().all(|b| *b == 0));
    }

    #[test]
    fn ethernet_bytes_parse_and_emit_back(bytes in vec(any::<u8>(), 0..40)) {
        match EthernetFrame::new_checked(&bytes[..]) {
            Ok(frame) => {
                let repr = EthernetRepr::parse(&frame).expect("a checked frame parses");
                let mut out = vec![0u8; repr.buffer_len()];
                repr.emit(&mut out).expect("room for the header");
                prop_assert_eq!(&out[..], &bytes[..repr.buffer_len()]);
            }
            Err(_) => {
                let tagged = bytes.len() >= HEADER_LEN && bytes[12..14] == [0x81, 0x00];
                prop_assert!(bytes.len() < HEADER_LEN || (tagged && bytes.len() < 18));
            }
        }
    }

    #[test]
    fn rarp_announcement_reads_back(mac in mac(), vlan in any::<u16>(), room in 0usize..100) {
        let mut buf = vec![0xeeu8; room];
        let n = announce::rarp(mac, vlan, &mut buf);
        if room < 64 {
            prop_assert_eq!(n, 0);
            prop_assert!(buf.iter().all(|b| *b == 0xee), "wrote into a short buffer");
            return Ok(());
        }
        prop_assert_eq!(n, 60);
        let frame = EthernetFrame::new_checked(&buf[..n]).expect("announcement parses");
        let repr = EthernetRepr::parse(&frame).expect("announcement parses");
        prop_assert_eq!(repr.dst, MacAddr::BROADCAST);
        prop_assert_eq!(repr.src, mac);
        prop_assert_eq!(repr.vlan.map(|t| t.0), (vlan != 0).then_some(vlan & 0x0fff));
        prop_assert_eq!(repr.ethertype, EtherType::Unknown(0x8035));
        let rarp = frame.payload();
        // Ethernet/IPv4, reverse request, sender and target hardware = mac.
        prop_assert_eq!(&rarp[..8], &[0, 1, 8, 0, 6, 4, 0, 3][..]);
        prop_assert_eq!(&rarp[8..14], &mac.0[..]);
        prop_assert_eq!(&rarp[18..24], &mac.0[..]);
        prop_assert!(rarp[28..].iter().all(|b| *b == 0), "padding is zero");
        prop_assert!(buf[n..].iter().all(|b| *b == 0xee), "wrote past the frame");
    }

    #[test]
    fn mac_text_round_trips(mac in mac(), upper in any::<bool>(), dash in any::<bool>()) {
        let text = mac.to_string();
        prop_assert_eq!(text.len(), 17);
        prop_assert_eq!(text.parse::<MacAddr>(), Ok(mac));
        let mut variant = if upper { text.to_ascii_uppercase() } else { text.clone() };
        if dash {
            variant = variant.replace(':', "-");
        }
        prop_assert_eq!(variant.parse::<MacAddr>(), Ok(mac));
        let json = serde_json::to_string(&mac).expect("encode");
        prop_assert_eq!(&json, &format!("\"{text}\""));
        prop_assert_eq!(serde_json::from_str::<MacAddr>(&json).expect("decode"), mac);
    }

    #[test]
    fn mac_text_parser_takes_only_canonical_shapes(
        s in prop_oneof!["([0-9a-fA-F]{1,3}[:-]){4,6}[0-9a-fA-F]{0,3}", "[0-9a-fA-F:\\-xz+ ]{0,20}"]
    ) {
        if let Ok(mac) = s.parse::<MacAddr>() {
            prop_assert_eq!(mac.to_string(), s.to_ascii_lowercase().replace('-', ":"));
        }
    }

    #[test]
    fn requests_round_trip_through_the_server_parser(request in request()) {
        let line = serde_json::to_string(&request).expect("encode");
        prop_assert!(!line.contains('\n'), "{}", line);
        let parsed = parse_request(format!("{line}\n").as_bytes());
        prop_assert_eq!(parsed, Ok(request));
    }

    #[test]
    fn replies_round_trip(reply in reply()) {
        let line = serde_json::to_string(&reply).expect("encode");
        prop_assert!(!line.contains('\n'), "{}", line);
        prop_assert_eq!(serde_json::from_str::<Reply>(&line).expect("decode"), reply);
    }

    #[test]
    fn arbitrary_request_bytes_never_panic(bytes in vec(any::<u8>(), 0..200)) {
        vswitch::fuzzing::control_request(&bytes);
    }
}

/// Names as a client might send them: any Unicode, control characters and
/// quotes included (the protocol carries them; validation is the executor's).
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,14}",
        any::<String>(),
        "[\"\\\\\\n\\t\\u{0}-\\u{1f}]{0,4}",
    ]
}

fn options() -> impl Strategy<Value = BTreeMap<String, String>> {
    btree_map(name(), name(), 0..4)
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        Just(Request::Version),
        (name(), options()).prop_map(|(bridge, options)| Request::BridgeAdd { bridge, options }),
        (name(), options()).prop_map(|(bridge, options)| Request::BridgeSet { bridge, options }),
        name().prop_map(|bridge| Request::BridgeDel { bridge }),
        Just(Request::BridgeList),
        (name(), name(), options()).prop_map(|(bridge, port, options)| Request::PortAdd {
            bridge,
            port,
            options
        }),
        (name(), name()).prop_map(|(bridge, port)| Request::PortDel { bridge, port }),
        option::of(name()).prop_map(|bridge| Request::PortList { bridge }),
        name().prop_map(|port| Request::PortShow { port }),
        (name(), option::of(any::<u16>()))
            .prop_map(|(bridge, vlan)| Request::FdbShow { bridge, vlan }),
        (name(), name(), options())
            .prop_map(|(port, _, options)| Request::PortSet { port, options }),
        (
            name(),
            mac(),
            name(),
            any::<u16>(),
            option::of(any::<u32>())
        )
            .prop_map(|(bridge, mac, port, vlan, remote)| Request::FdbAdd {
                bridge,
                mac,
                port,
                vlan,
                remote: remote.map(std::net::Ipv4Addr::from),
            }),
        (name(), mac(), any::<u16>()).prop_map(|(bridge, mac, vlan)| Request::FdbDel {
            bridge,
            mac,
            vlan
        }),
        name().prop_map(|bridge| Request::FdbFlush { bridge }),
        option::of(name()).prop_map(|port| Request::Stats { port }),
    ]
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            btree_map(any::<String>(), inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        json_value().prop_map(Reply::Ok),
        any::<String>().prop_map(Reply::Error),
    ]
}
