//! Packet buffers and fixed-capacity batches.
//!
//! A `PacketBuf` is allocated once, when the datapath starts, and reused for
//! every frame after: ports copy received frames into it, the pipeline reads
//! and rewrites it in place. Each buffer keeps `HEADROOM` bytes in front of
//! the frame so a VLAN tag (or, later, tunnel headers) can be pushed without
//! moving the payload.

/// Frames per batch: the unit of work of every stage.
pub const BATCH_SIZE: usize = 32;
/// Bytes kept free in front of a received frame.
pub const HEADROOM: usize = 128;
/// Largest frame a buffer holds: a 64 KiB GSO frame (an IP packet of at
/// most 65535 bytes) with its Ethernet header, two VLAN tags and the
/// virtio-net header a tap reads in front of it. Buffers are allocated
/// zeroed and untouched pages cost no memory, so a buffer that only ever
/// holds small frames stays small.
pub const MAX_FRAME_LEN: usize = 65536 + 64;

pub mod offload;

/// Per-frame metadata set by the receiving port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameMeta {
    /// Checksum and segmentation work the sender left for its NIC (see
    /// `offload`); offsets count from the frame's first byte and follow
    /// every insert and removal in front of the L4 header.
    pub offload: crate::wire::vnet::VnetHdr,
}

/// One frame's storage, with headroom.
pub struct PacketBuf {
    data: Box<[u8]>,
    start: usize,
    len: usize,
    pub meta: FrameMeta,
}

impl Default for PacketBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl PacketBuf {
    pub fn new() -> Self {
        PacketBuf {
            data: vec![0u8; HEADROOM + MAX_FRAME_LEN].into_boxed_slice(),
            start: HEADROOM,
            len: 0,
            meta: FrameMeta::default(),
        }
    }

    /// Empties the buffer and restores the full headroom.
    #[inline]
    pub fn reset(&mut self) {
        self.start = HEADROOM;
        self.len = 0;
        self.meta = FrameMeta::default();
    }

    /// The space a port receives into: everything after the headroom.
    /// Call `set_len` with the number of bytes written.
    #[inline]
    pub fn rx_area(&mut self) -> &mut [u8] {
        &mut self.data[HEADROOM..]
    }

    /// Sets the frame length after a receive into `rx_area`; lengths past
    /// the buffer are clamped.
    #[inline]
    pub fn set_len(&mut self, len: usize) {
        self.start = HEADROOM;
        self.len = len.min(MAX_FRAME_LEN);
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub fn frame(&self) -> &[u8] {
        &self.data[self.start..self.start + self.len]
    }

    #[inline]
    pub fn frame_mut(&mut self) -> &mut [u8] {
        &mut self.data[self.start..self.start + self.len]
    }

    /// Bytes free in front of the frame.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.start
    }

    /// Grows the frame by `n` bytes at the front and returns the new frame;
    /// `None` (frame unchanged) when the headroom is too small.
    pub fn push_front(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.start {
            return None;
        }
        self.start -= n;
        self.len += n;
        self.meta.offload.shift(0, n, true);
        Some(self.frame_mut())
    }

    /// Drops `n` bytes from the front of the frame; `false` if it is shorter.
    pub fn pull_front(&mut self, n: usize) -> bool {
        if n > self.len {
            return false;
        }
        self.start += n;
        self.len -= n;
        self.meta.offload.shift(0, n, false);
        true
    }

    /// Inserts `bytes` at `offset` inside the frame, shifting the bytes
    /// before `offset` into the headroom (cheap for a header insert).
    pub fn insert_at(&mut self, offset: usize, bytes: &[u8]) -> bool {
        let n = bytes.len();
        if offset > self.len || n > self.start {
            return false;
        }
        let old_start = self.start;
        self.start -= n;
        self.len += n;
        self.data
            .copy_within(old_start..old_start + offset, self.start);
        self.data[self.start + offset..self.start + offset + n].copy_from_slice(bytes);
        self.meta.offload.shift(offset, n, true);
        true
    }

    /// Removes `n` bytes at `offset`, shifting the bytes before `offset`
    /// forward (cheap for a header removal).
    pub fn remove_at(&mut self, offset: usize, n: usize) -> bool {
        if offset + n > self.len {
            return false;
        }
        self.data
            .copy_within(self.start..self.start + offset, self.start + n);
        self.start += n;
        self.len -= n;
        self.meta.offload.shift(offset, n, false);
        true
    }

    /// Replaces the contents with a copy of `frame`, truncated to the capacity;
    /// returns false if it had to truncate.
    pub fn copy_from(&mut self, frame: &[u8]) -> bool {
        let n = frame.len().min(MAX_FRAME_LEN);
        self.reset();
        self.data[HEADROOM..HEADROOM + n].copy_from_slice(&frame[..n]);
        self.len = n;
        n == frame.len()
    }
}

/// Up to `BATCH_SIZE` frames, in preallocated buffers.
///
/// A port fills it with `slot` + `commit`: `slot` lends the next free buffer
/// (reset), `commit` keeps what was written into it as the next frame.
pub struct Batch {
    bufs: Vec<PacketBuf>,
    len: usize,
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl Batch {
    pub fn new() -> Self {
        Self::with_capacity(BATCH_SIZE)
    }

    /// A batch of `n` buffers, for queues that gather more than one burst
    /// (a tunnel's replicated frames).
    pub fn with_capacity(n: usize) -> Self {
        Batch {
            bufs: (0..n).map(|_| PacketBuf::new()).collect(),
            len: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.bufs.len()
    }

    /// Keeps only the frames for which `keep` is true, in order. Buffers
    /// are swapped, not copied.
    pub fn retain(&mut self, keep: impl FnMut(&PacketBuf) -> bool) {
        self.retain_from(0, keep);
    }

    #[inline]
    pub fn clear(&mut self) {
        self.len = 0;
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == self.bufs.len()
    }

    /// The next free buffer, reset, or `None` when the batch is full.
    #[inline]
    pub fn slot(&mut self) -> Option<&mut PacketBuf> {
        let buf = self.bufs.get_mut(self.len)?;
        buf.reset();
        Some(buf)
    }

    /// Keeps the buffer last lent by `slot` as a frame of the batch.
    #[inline]
    pub fn commit(&mut self) {
        if self.len < self.bufs.len() {
            self.len += 1;
        }
    }

    /// Forgets the last committed frame.
    #[inline]
    pub fn uncommit_last(&mut self) {
        self.len = self.len.saturating_sub(1);
    }

    /// Appends a copy of `frame` (truncated to a buffer's capacity); false if
    /// the batch is full or the frame had to be truncated.
    pub fn push_copy(&mut self, frame: &[u8]) -> bool {
        match self.slot() {
            Some(buf) => {
                let complete = buf.copy_from(frame);
                self.commit();
                complete
            }
            None => false,
        }
    }

    /// Keeps, of the frames from index `start` on, those `keep` accepts,
    /// in order; the others' buffers go back to the free part.
    pub fn retain_from(&mut self, start: usize, mut keep: impl FnMut(&PacketBuf) -> bool) {
        let first = start.min(self.len);
        let mut kept = first;
        for i in first..self.len {
            if keep(&self.bufs[i]) {
                self.bufs.swap(kept, i);
                kept += 1;
            }
        }
        self.len = kept;
    }

    #[inline]
    pub fn get(&self, i: usize) -> Option<&PacketBuf> {
        self.bufs[..self.len].get(i)
    }

    #[inline]
    pub fn get_mut(&mut self, i: usize) -> Option<&mut PacketBuf> {
        self.bufs[..self.len].get_mut(i)
    }

    pub fn iter(&self) -> impl Iterator<Item = &PacketBuf> {
        self.bufs[..self.len].iter()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut PacketBuf> {
        self.bufs[..self.len].iter_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_fills_to_capacity() {
        let mut b = Batch::new();
        for i in 0..BATCH_SIZE {
            assert!(b.push_copy(&[i as u8; 60]));
        }
        assert!(b.is_full());
        assert!(!b.push_copy(&[0; 60]));
        assert!(b.slot().is_none());
        assert_eq!(b.get(7).unwrap().frame(), &[7u8; 60][..]);
        b.clear();
        assert!(b.is_empty());
        assert!(b.get(0).is_none());
    }

    #[test]
    fn retain_keeps_order() {
        let mut b = Batch::with_capacity(40);
        for i in 0..40u8 {
            b.push_copy(&[i; 20]);
        }
        assert!(b.is_full());
        b.retain(|p| p.frame()[0] % 3 == 0);
        let firsts: Vec<u8> = b.iter().map(|p| p.frame()[0]).collect();
        assert_eq!(firsts, (0..40).filter(|i| i % 3 == 0).collect::<Vec<u8>>());
    }

    #[test]
    fn retain_keeps_order_and_frees_the_rest() {
        let mut b = Batch::new();
        for i in 0..6u8 {
            b.push_copy(&[i; 20]);
        }
        b.retain_from(2, |p| p.frame()[0] % 2 == 1);
        let firsts: Vec<u8> = b.iter().map(|p| p.frame()[0]).collect();
        assert_eq!(firsts, [0, 1, 3, 5]);
        b.retain_from(10, |_| false);
        assert_eq!(b.len(), 4);
        b.retain_from(0, |_| false);
        assert!(b.is_empty());
    }

    #[test]
    fn slot_without_commit_is_not_a_frame() {
        let mut b = Batch::new();
        b.slot().unwrap().set_len(10);
        assert_eq!(b.len(), 0);
        b.slot().unwrap().set_len(20);
        b.commit();
        assert_eq!(b.get(0).unwrap().len(), 20);
    }

    #[test]
    fn insert_and_pull_keep_bytes() {
        let mut p = PacketBuf::new();
        p.copy_from(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x00, 0xaa]);
        assert!(p.insert_at(12, &[0x81, 0x00, 0x00, 0x0a]));
        assert_eq!(
            p.frame(),
            &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x81, 0x00, 0x00, 0x0a, 0x08, 0x00, 0xaa]
        );
        assert!(p.remove_at(12, 4));
        assert_eq!(
            p.frame(),
            &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x00, 0xaa]
        );
        assert!(!p.remove_at(12, 4));
        assert!(p.insert_at(12, &[0x81, 0x00, 0x00, 0x0a]));
        assert!(p.pull_front(4));
        assert_eq!(p.len(), 15);
        assert!(!p.pull_front(100));
        assert!(!p.insert_at(100, &[0]));
    }

    #[test]
    fn headroom_is_bounded() {
        let mut p = PacketBuf::new();
        p.set_len(10);
        assert!(p.push_front(HEADROOM + 1).is_none());
        assert_eq!(p.len(), 10);
        assert!(p.push_front(HEADROOM).is_some());
        assert_eq!(p.headroom(), 0);
    }

    #[test]
    fn oversize_copies_are_truncated_and_reported() {
        let mut p = PacketBuf::new();
        assert!(!p.copy_from(&vec![0u8; MAX_FRAME_LEN + 5]));
        assert_eq!(p.len(), MAX_FRAME_LEN);
    }
}
