use super::*;

/// An LACPDU as a Linux bond sends it: actor 32768/00:11:22:33:44:55 key 13
/// port 255/1 state 0x3d; partner 65535/66:77:88:99:aa:bb key 5 port 1/2
/// state 0x3f.
fn lacpdu_fixture() -> Vec<u8> {
    let mut b = vec![
        0x01, 0x01, // subtype LACP, version 1
        0x01, 0x14, // actor TLV
        0x80, 0x00, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, // prio, system
        0x00, 0x0d, 0x00, 0xff, 0x00, 0x01, // key, port prio, port
        0x3d, 0x00, 0x00, 0x00, // state, reserved
        0x02, 0x14, // partner TLV
        0xff, 0xff, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, //
        0x00, 0x05, 0x00, 0x01, 0x00, 0x02, //
        0x3f, 0x00, 0x00, 0x00, //
        0x03, 0x10, 0x00, 0x00, // collector TLV, max delay 0
    ];
    b.extend_from_slice(&[0; 12]);
    b.extend_from_slice(&[0x00, 0x00]); // terminator
    b.extend_from_slice(&[0; 50]);
    assert_eq!(b.len(), PDU_LEN);
    b
}

/// A marker information PDU: requester port 3 of 00:11:22:33:44:55,
/// transaction 42.
fn marker_fixture() -> Vec<u8> {
    let mut b = vec![
        0x02, 0x01, 0x01, 0x10, // subtype marker, version 1, info TLV
        0x00, 0x03, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, // port, system
        0x00, 0x00, 0x00, 0x2a, 0x00, 0x00, // transaction, pad
        0x00, 0x00, // terminator
    ];
    b.extend_from_slice(&[0; 90]);
    assert_eq!(b.len(), PDU_LEN);
    b
}

#[test]
fn lacpdu_fields() {
    let Pdu::Lacp(l) = Pdu::parse(&lacpdu_fixture()).unwrap() else {
        panic!("not an LACPDU");
    };
    assert_eq!(l.actor.system_priority, 32768);
    assert_eq!(l.actor.system.to_string(), "00:11:22:33:44:55");
    assert_eq!(
        (l.actor.key, l.actor.port_priority, l.actor.port),
        (13, 255, 1)
    );
    assert_eq!(l.actor.state, PortState(0x3d));
    assert!(l.actor.state.has(PortState::SYNCHRONIZATION));
    assert!(!l.actor.state.has(PortState::TIMEOUT));
    assert_eq!(l.partner.system_priority, 0xffff);
    assert_eq!(l.partner.system.to_string(), "66:77:88:99:aa:bb");
    assert_eq!(
        (l.partner.key, l.partner.port_priority, l.partner.port),
        (5, 1, 2)
    );
    assert_eq!(l.partner.state.letters(), "ATGSCD..");
    assert_eq!(l.collector_max_delay, 0);
}

#[test]
fn lacpdu_round_trips_byte_for_byte() {
    let bytes = lacpdu_fixture();
    let pdu = Pdu::parse(&bytes).unwrap();
    let mut out = [0xeeu8; 200];
    assert_eq!(pdu.emit(&mut out), PDU_LEN);
    assert_eq!(&out[..PDU_LEN], &bytes[..]);
    assert_eq!(out[PDU_LEN], 0xee, "emit wrote past the PDU");
    assert_eq!(pdu.emit(&mut out[..PDU_LEN - 1]), 0);
}

#[test]
fn marker_fields_and_round_trip() {
    let bytes = marker_fixture();
    let pdu = Pdu::parse(&bytes).unwrap();
    assert_eq!(
        pdu,
        Pdu::Marker(MarkerPdu {
            kind: MarkerKind::Information,
            requester_port: 3,
            requester_system: "00:11:22:33:44:55".parse().unwrap(),
            transaction_id: 42,
        })
    );
    let mut out = [0u8; PDU_LEN];
    pdu.emit(&mut out);
    assert_eq!(&out[..], &bytes[..]);
    let mut resp = bytes.clone();
    resp[2] = 2;
    assert!(matches!(
        Pdu::parse(&resp),
        Ok(Pdu::Marker(MarkerPdu {
            kind: MarkerKind::Response,
            ..
        }))
    ));
}

#[test]
fn frame_has_slow_protocols_header() {
    let pdu = Pdu::parse(&lacpdu_fixture()).unwrap();
    let src: MacAddr = "02:00:00:00:00:07".parse().unwrap();
    let mut frame = [0u8; FRAME_LEN];
    assert_eq!(pdu.emit_frame(src, &mut frame), FRAME_LEN);
    assert_eq!(&frame[..6], &[0x01, 0x80, 0xc2, 0, 0, 2]);
    assert_eq!(&frame[6..12], &src.0);
    assert!(is_slow_protocols(&frame));
    assert_eq!(Pdu::parse(&frame[14..]).unwrap(), pdu);
    assert_eq!(pdu.emit_frame(src, &mut frame[..FRAME_LEN - 1]), 0);
    assert!(!is_slow_protocols(&frame[..13]));
    let mut tagged = frame;
    tagged[12..14].copy_from_slice(&[0x81, 0x00]);
    assert!(!is_slow_protocols(&tagged));
}

#[test]
fn short_pdus_are_refused() {
    let bytes = lacpdu_fixture();
    for n in 0..PDU_LEN {
        assert_eq!(
            Pdu::parse(&bytes[..n]),
            Err(LacpError::Truncated { have: n }),
            "{n} octets"
        );
    }
    let marker = marker_fixture();
    assert!(Pdu::parse(&marker[..PDU_LEN - 1]).is_err());
    // Longer is fine (Ethernet padding, or a version 2 PDU's extra TLVs).
    let mut long = bytes.clone();
    long.extend_from_slice(&[0xaa; 30]);
    assert!(Pdu::parse(&long).is_ok());
}

#[test]
fn wrong_subtype_or_version_is_refused() {
    for subtype in [0u8, 3, 10, 0xff] {
        let mut b = lacpdu_fixture();
        b[0] = subtype;
        assert_eq!(Pdu::parse(&b), Err(LacpError::UnknownSubtype(subtype)));
    }
    let mut b = lacpdu_fixture();
    b[1] = 0;
    assert_eq!(Pdu::parse(&b), Err(LacpError::BadVersion(0)));
    let mut m = marker_fixture();
    m[1] = 0;
    assert_eq!(Pdu::parse(&m), Err(LacpError::BadVersion(0)));
}

#[test]
fn bad_tlvs_are_refused() {
    // (octet, new value) pairs that break one TLV header each.
    let cases = [
        (2, 2u8), // actor TLV type
        (3, 19),  // actor length
        (22, 1),  // partner TLV type
        (23, 21), // partner length
        (42, 0),  // collector TLV type
        (43, 20), // collector length
        (58, 1),  // terminator type
        (59, 4),  // terminator length
    ];
    for (at, value) in cases {
        let mut b = lacpdu_fixture();
        b[at] = value;
        match Pdu::parse(&b) {
            Err(LacpError::BadTlv { at: got, .. }) => assert_eq!(got, at & !1, "octet {at}"),
            other => panic!("octet {at}={value}: {other:?}"),
        }
    }
    for (at, value) in [(2, 3u8), (2, 0), (3, 15), (18, 1), (19, 2)] {
        let mut m = marker_fixture();
        m[at] = value;
        assert!(
            matches!(Pdu::parse(&m), Err(LacpError::BadTlv { .. })),
            "marker octet {at}={value}"
        );
    }
}

#[test]
fn version_2_is_read_as_version_1() {
    let mut b = lacpdu_fixture();
    b[1] = 2;
    // A version 2 PDU carries more TLVs where version 1 has its terminator.
    b[58] = 4;
    b[59] = 6;
    let Pdu::Lacp(l) = Pdu::parse(&b).unwrap() else {
        panic!("not an LACPDU");
    };
    assert_eq!(l.actor.key, 13);
}

#[test]
fn reserved_octets_are_ignored_and_sent_as_zero() {
    let mut b = lacpdu_fixture();
    for at in [19, 20, 21, 39, 40, 41, 50, 100] {
        b[at] = 0xa5;
    }
    let pdu = Pdu::parse(&b).unwrap();
    let mut out = [0xffu8; PDU_LEN];
    pdu.emit(&mut out);
    assert_eq!(&out[..], &lacpdu_fixture()[..]);
}

#[test]
fn no_input_panics() {
    // Every length up to a bit past a PDU, with patterns that hit both
    // subtypes and every TLV check.
    let patterns: [fn(usize) -> u8; 4] = [
        |_| 0,
        |_| 0xff,
        |i| i as u8,
        |i| [1u8, 2, 1, 20, 16, 0][i % 6],
    ];
    for pattern in patterns {
        for len in 0..PDU_LEN + 8 {
            let b: Vec<u8> = (0..len).map(pattern).collect();
            let _ = Pdu::parse(&b);
            let mut lacp = b.clone();
            if len > 1 {
                lacp[0] = 1;
                lacp[1] = 1;
                let _ = Pdu::parse(&lacp);
                lacp[0] = 2;
                let _ = Pdu::parse(&lacp);
            }
        }
    }
}

#[test]
fn state_bits_render() {
    let mut s = PortState::default();
    s.set(PortState::ACTIVITY, true);
    s.set(PortState::EXPIRED, true);
    assert_eq!(s.letters(), "A......E");
    assert_eq!(s.names(), ["activity", "expired"]);
    s.set(PortState::EXPIRED, false);
    assert_eq!(s, PortState(1));
}
