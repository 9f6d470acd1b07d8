use super::pcap::{self, GLOBAL_HEADER_LEN, RECORD_HEADER_LEN};
use super::*;

fn frame(tag: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| tag.wrapping_add(i as u8)).collect()
}

fn drain(ring: &Ring) -> Vec<(Direction, Vec<u8>, u32)> {
    let mut out = Vec::new();
    while let Some(rec) = ring.pop() {
        out.push((rec.dir, rec.data().to_vec(), rec.orig_len));
        ring.recycle(rec);
    }
    out
}

#[test]
fn a_full_ring_loses_and_counts_frames_and_recovers_when_drained() {
    let ring = Ring::new(4, 128);
    let mut tap = Tap::new(ring.clone(), Direction::Both, None, 1);
    let frames: Vec<Vec<u8>> = (0..10).map(|i| frame(i, 60)).collect();
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    tap.tx(&refs);
    assert_eq!(ring.captured(), 4);
    assert_eq!(ring.lost(), 6);
    let got = drain(&ring);
    // The first four, in order.
    assert_eq!(got.len(), 4);
    for (i, (dir, data, orig)) in got.iter().enumerate() {
        assert_eq!(*dir, Direction::Tx);
        assert_eq!(data, &frames[i]);
        assert_eq!(*orig, 60);
    }
    // Drained buffers serve again.
    tap.tx(&refs[..3]);
    assert_eq!(ring.captured(), 7);
    assert_eq!(ring.lost(), 6);
    assert_eq!(drain(&ring).len(), 3);
    assert_eq!(ring.buffers(), 4);
}

#[test]
fn snaplen_cuts_frames_and_keeps_their_length() {
    let ring = Ring::new(2, 64);
    let mut tap = Tap::new(ring.clone(), Direction::Tx, None, 1);
    let big = frame(7, 1500);
    tap.tx(&[&big]);
    let got = drain(&ring);
    assert_eq!(got[0].1, big[..64].to_vec());
    assert_eq!(got[0].2, 1500);
}

#[test]
fn direction_filters_and_count_limits() {
    let ring = Ring::new(16, 128);
    let mut tap = Tap::new(ring.clone(), Direction::Rx, Some(3), 1);
    let f = frame(1, 60);
    tap.tx(&[&f, &f]);
    assert_eq!(ring.captured(), 0, "an rx capture takes no tx frames");
    let mut batch = Batch::new();
    for i in 0..5 {
        batch.push_copy(&frame(i, 60 + i as usize));
    }
    tap.rx(&batch);
    tap.rx(&batch);
    assert_eq!(ring.captured(), 3, "--count 3 stops after three frames");
    assert_eq!(ring.lost(), 0, "frames past the count are not losses");
    let got = drain(&ring);
    assert!(got.iter().all(|(d, _, _)| *d == Direction::Rx));
    assert_eq!(got[2].1.len(), 62);
}

#[test]
fn attachment_follows_the_tap_and_orphans_are_seen() {
    let ring = Ring::new(2, 64);
    assert!(!ring.is_attached());
    let tap = Tap::new(ring.clone(), Direction::Both, None, 9);
    assert!(ring.is_attached());
    assert!(!tap.orphaned());
    assert_eq!(tap.id(), 9);
    drop(tap);
    assert!(!ring.is_attached());

    let tap = Tap::new(Ring::new(2, 64), Direction::Both, None, 1);
    assert!(tap.orphaned(), "nobody drains this ring");
}

#[test]
fn default_buffers_stay_within_bounds() {
    assert_eq!(default_buffers(65535), 128);
    assert_eq!(default_buffers(1), MAX_BUFFERS);
    assert_eq!(default_buffers(0), MAX_BUFFERS);
    assert!(default_buffers(1514) <= MAX_BUFFERS);
    assert_eq!(
        "both".parse::<Direction>().unwrap(),
        Direction::Both,
        "direction names"
    );
    assert!("in"
        .parse::<Direction>()
        .unwrap_err()
        .contains("rx, tx or both"));
}

#[test]
fn pcap_global_header_is_the_nanosecond_ethernet_one() {
    let h = pcap::global_header(1234);
    assert_eq!(h.len(), GLOBAL_HEADER_LEN);
    assert_eq!(&h[0..4], &[0x4d, 0x3c, 0xb2, 0xa1]);
    assert_eq!(&h[4..8], &[2, 0, 4, 0]);
    assert_eq!(&h[8..16], &[0; 8]);
    assert_eq!(u32::from_le_bytes(h[16..20].try_into().unwrap()), 1234);
    assert_eq!(u32::from_le_bytes(h[20..24].try_into().unwrap()), 1);
}

#[test]
fn pcap_records_carry_time_lengths_and_cut_data() {
    let mut out = Vec::new();
    let t = 1_700_000_000_123_456_789u64;
    let data = frame(3, 100);
    pcap::write_record(&mut out, 64, t, &data, 100).unwrap();
    assert_eq!(out.len(), RECORD_HEADER_LEN + 64);
    let word = |i: usize| u32::from_le_bytes(out[i * 4..i * 4 + 4].try_into().unwrap());
    assert_eq!(word(0), 1_700_000_000);
    assert_eq!(word(1), 123_456_789);
    assert_eq!(word(2), 64, "captured length is cut to snaplen");
    assert_eq!(word(3), 100, "original length kept");
    assert_eq!(&out[RECORD_HEADER_LEN..], &data[..64]);

    // An original length below what is written is raised to it.
    let h = pcap::record_header(0, 60, 10);
    assert_eq!(u32::from_le_bytes(h[12..16].try_into().unwrap()), 60);
}

#[test]
fn frame_lines_round_trip_through_json_and_base64() {
    let ring = Ring::new(1, 256);
    let mut tap = Tap::new(ring.clone(), Direction::Both, None, 1);
    let f = frame(200, 98);
    tap.tx(&[&f]);
    let rec = ring.pop().unwrap();
    let line =
        serde_json::to_string(&CaptureLine::Frame(CapturedFrame::from_record(&rec))).unwrap();
    assert!(line.starts_with(r#"{"frame":{"time_ns":"#), "{line}");
    assert!(line.contains(r#""dir":"tx""#), "{line}");
    let back: CaptureLine = serde_json::from_str(&line).unwrap();
    let CaptureLine::Frame(cf) = back else {
        panic!("not a frame: {line}")
    };
    assert_eq!(cf.bytes().unwrap(), f);
    assert_eq!(cf.orig_len, 98);
    assert!(cf.time_ns > 1_600_000_000_000_000_000, "wall clock time");

    let end = serde_json::to_string(&CaptureLine::End(CaptureEnd {
        frames: 3,
        lost: 1,
        reason: "count".into(),
    }))
    .unwrap();
    assert_eq!(end, r#"{"end":{"frames":3,"lost":1,"reason":"count"}}"#);
    let bad = CapturedFrame {
        data: "!!".into(),
        ..cf
    };
    assert!(bad.bytes().is_err());
}
