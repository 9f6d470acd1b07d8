//! The VXLAN header (RFC 7348).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |R|R|R|R|I|R|R|R|            Reserved                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                VXLAN Network Identifier (VNI) |   Reserved    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

pub const HEADER_LEN: usize = 8;
pub const DEFAULT_PORT: u16 = 4789;
/// The "VNI present" flag.
const FLAG_I: u8 = 0x08;
/// Largest VNI (24 bits).
pub const MAX_VNI: u32 = 0x00ff_ffff;

/// Why a VXLAN header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VxlanError {
    Truncated,
    /// The I flag is clear: no valid VNI.
    NoVni,
}

/// Reads the VNI of a VXLAN header. Per RFC 7348 reserved bits are ignored
/// on receipt; only the I flag must be set.
pub fn parse(bytes: &[u8]) -> Result<u32, VxlanError> {
    let h = bytes.get(..HEADER_LEN).ok_or(VxlanError::Truncated)?;
    if h[0] & FLAG_I == 0 {
        return Err(VxlanError::NoVni);
    }
    Ok(u32::from_be_bytes([0, h[4], h[5], h[6]]))
}

/// Writes a header for `vni` into `out[..8]`; false if `out` is shorter.
pub fn emit(vni: u32, out: &mut [u8]) -> bool {
    let Some(h) = out.get_mut(..HEADER_LEN) else {
        return false;
    };
    let v = (vni & MAX_VNI).to_be_bytes();
    h.copy_from_slice(&[FLAG_I, 0, 0, 0, v[1], v[2], v[3], 0]);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures() {
        // VNI 42 as the kernel's vxlan device sends it.
        let h = [0x08, 0, 0, 0, 0, 0, 0x2a, 0];
        assert_eq!(parse(&h), Ok(42));
        let mut out = [0xffu8; 8];
        assert!(emit(42, &mut out));
        assert_eq!(out, h);
        assert!(emit(MAX_VNI, &mut out));
        assert_eq!(parse(&out), Ok(MAX_VNI));
        // Reserved bits set are ignored; a clear I flag is not.
        assert_eq!(parse(&[0xff, 1, 2, 3, 0, 0, 7, 9]), Ok(7));
        assert_eq!(parse(&[0x00, 0, 0, 0, 0, 0, 7, 0]), Err(VxlanError::NoVni));
        assert_eq!(parse(&h[..7]), Err(VxlanError::Truncated));
        assert!(!emit(1, &mut out[..7]));
    }
}
