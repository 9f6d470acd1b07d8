//! The classic libpcap file format, as `vsctl capture -w` writes it.
//!
//! ```text
//! global header (24 bytes, once)
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 magic 0xa1b23c4d (nanoseconds)                |
//! +-------------------------------+-------------------------------+
//! |        major version 2        |        minor version 4        |
//! +-------------------------------+-------------------------------+
//! |                     thiszone (0: UTC)                         |
//! |                     sigfigs (0)                               |
//! |                     snaplen                                   |
//! |                     link type (1: Ethernet)                   |
//! +---------------------------------------------------------------+
//! record header (16 bytes, before each frame)
//! |                     seconds since the epoch                   |
//! |                     nanoseconds within the second             |
//! |                     captured length (<= snaplen)              |
//! |                     original length                           |
//! +---------------------------------------------------------------+
//! ```
//!
//! Every field is written little-endian; readers tell the byte order from
//! the magic. Nanosecond timestamps (magic 0xa1b23c4d) are read by tcpdump,
//! tshark and Wireshark alike.

use std::io::{self, Write};

/// Magic of a pcap file with nanosecond timestamps.
pub const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
/// LINKTYPE_ETHERNET: frames start with the destination MAC.
pub const LINKTYPE_ETHERNET: u32 = 1;
pub const GLOBAL_HEADER_LEN: usize = 24;
pub const RECORD_HEADER_LEN: usize = 16;

/// The file's global header.
pub fn global_header(snaplen: u32) -> [u8; GLOBAL_HEADER_LEN] {
    let mut h = [0u8; GLOBAL_HEADER_LEN];
    h[0..4].copy_from_slice(&MAGIC_NANOS.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    // thiszone and sigfigs stay 0.
    h[16..20].copy_from_slice(&snaplen.to_le_bytes());
    h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    h
}

/// The header of one record.
pub fn record_header(time_ns: u64, incl_len: u32, orig_len: u32) -> [u8; RECORD_HEADER_LEN] {
    let secs = u32::try_from(time_ns / 1_000_000_000).unwrap_or(u32::MAX);
    let nanos = (time_ns % 1_000_000_000) as u32;
    let mut h = [0u8; RECORD_HEADER_LEN];
    h[0..4].copy_from_slice(&secs.to_le_bytes());
    h[4..8].copy_from_slice(&nanos.to_le_bytes());
    h[8..12].copy_from_slice(&incl_len.to_le_bytes());
    h[12..16].copy_from_slice(&orig_len.max(incl_len).to_le_bytes());
    h
}

/// Writes one record: at most `snaplen` bytes of `data`, and the original
/// length (never less than what is written).
pub fn write_record(
    w: &mut impl Write,
    snaplen: u32,
    time_ns: u64,
    data: &[u8],
    orig_len: u32,
) -> io::Result<()> {
    let incl = data.len().min(snaplen as usize);
    let header = record_header(time_ns, incl as u32, orig_len);
    w.write_all(&header)?;
    w.write_all(&data[..incl])
}
