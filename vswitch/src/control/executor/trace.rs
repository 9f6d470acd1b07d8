//! The frame `vsctl trace` sends through the pipeline, from its fields or
//! from hex.

use crate::wire::MacAddr;

/// The frame `vsctl trace` describes with fields: Ethernet header (with an
/// 802.1Q tag if `vlan` is given), `ethertype`, zero padding to 60 bytes.
pub(super) fn frame_from_fields(
    vlan: Option<u16>,
    src: Option<MacAddr>,
    dst: Option<MacAddr>,
    ethertype: Option<u16>,
) -> Result<Vec<u8>, String> {
    let (Some(src), Some(dst)) = (src, dst) else {
        return Err("trace needs src=MAC and dst=MAC, or hex=FRAME".into());
    };
    let mut frame = Vec::with_capacity(64);
    frame.extend_from_slice(&dst.0);
    frame.extend_from_slice(&src.0);
    if let Some(v) = vlan {
        if v > 4095 {
            return Err(format!("vlan={v}: expected 0 to 4095"));
        }
        frame.extend_from_slice(&[0x81, 0x00]);
        frame.extend_from_slice(&v.to_be_bytes());
    }
    frame.extend_from_slice(&ethertype.unwrap_or(0x0800).to_be_bytes());
    frame.resize(60.max(frame.len()), 0);
    Ok(frame)
}

/// A whole frame given as hex digits (spaces and ':' allowed between
/// bytes).
pub(super) fn frame_from_hex(hex: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = hex
        .bytes()
        .filter(|b| !matches!(b, b' ' | b':' | b'-' | b'\t'))
        .collect();
    if digits.len() % 2 != 0 {
        return Err("hex=FRAME: odd number of hex digits".into());
    }
    let frame = digits
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|s| u8::from_str_radix(s, 16).ok())
                .ok_or_else(|| {
                    format!(
                        "hex=FRAME: {:?} is not a hex byte",
                        String::from_utf8_lossy(pair)
                    )
                })
        })
        .collect::<Result<Vec<u8>, String>>()?;
    if frame.len() < 14 || frame.len() > crate::packet::MAX_FRAME_LEN {
        return Err(format!(
            "hex=FRAME: {} bytes; a frame has 14 to {} bytes",
            frame.len(),
            crate::packet::MAX_FRAME_LEN
        ));
    }
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_from_fields() {
        let a: MacAddr = "02:00:00:00:00:01".parse().unwrap();
        let b: MacAddr = "02:00:00:00:00:02".parse().unwrap();
        let f = frame_from_fields(Some(10), Some(a), Some(b), Some(0x0806)).unwrap();
        assert_eq!(f.len(), 60);
        assert_eq!(&f[..6], &b.0);
        assert_eq!(&f[6..12], &a.0);
        assert_eq!(&f[12..18], &[0x81, 0x00, 0x00, 0x0a, 0x08, 0x06]);
        assert!(frame_from_fields(None, Some(a), None, None).is_err());
        assert!(frame_from_fields(Some(5000), Some(a), Some(b), None).is_err());
    }

    #[test]
    fn frames_from_hex() {
        let f = frame_from_hex("ff:ff:ff:ff:ff:ff 02 00 00 00 00 01 0806").unwrap();
        assert_eq!(f.len(), 14);
        for bad in ["fff", "zz", "00", ""] {
            assert!(frame_from_hex(bad).is_err(), "{bad}");
        }
    }
}
