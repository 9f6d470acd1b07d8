//! Hostile frames, made and sent by hand: a raw AF_PACKET socket inside a test namespace and
//! a generator of malformed frames of many kinds.
//!
//! The socket is opened by a short-lived thread that enters the namespace (`setns`) first: a
//! socket belongs to the namespace it was created in for good, so the test can then send from
//! any thread at full speed, with no helper process and no scapy (far too slow for 100k
//! frames).

/// What the switch's pipeline should do with a frame, should it see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fate {
    /// Sent on (unicast or flooded).
    Forward,
    /// Dropped at ingress and counted under this drop reason.
    Drop(&'static str),
}

/// The kinds of bad frame the generator makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// 1 to 13 bytes: shorter than an Ethernet header.
    Runt,
    /// 14 to 17 bytes with an 802.1Q or 802.1ad TPID: the tag is cut.
    TruncatedTag,
    /// Well-formed header, EtherType from the unassigned or 802.3-length range.
    BogusEtherType,
    /// Broadcast, longer than a 1500-byte MTU (up to 4000 bytes).
    Oversize,
    /// Random bytes after valid unicast addresses, some to the sender's own MACs.
    GarbageValidMacs,
    /// Source MAC multicast, broadcast or all-zero.
    BadSourceMac,
    /// A new random unicast source MAC each time: a MAC flood.
    MacFlood,
    /// IPv4/UDP to port 4789 with a broken VXLAN header, IP header or lengths.
    BadVxlan,
    /// To the Slow Protocols address with a broken LACPDU.
    BadLacpdu,
    /// 802.1Q-tagged with a random VID and priority, random payload.
    RandomVlan,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::Runt,
        Kind::TruncatedTag,
        Kind::BogusEtherType,
        Kind::Oversize,
        Kind::GarbageValidMacs,
        Kind::BadSourceMac,
        Kind::MacFlood,
        Kind::BadVxlan,
        Kind::BadLacpdu,
        Kind::RandomVlan,
    ];
}

/// A small deterministic PRNG (xorshift64*): the same seed makes the same frames.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo) as u64) as usize
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let r = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }
}

const BROADCAST: [u8; 6] = [0xff; 6];
const SLOW_PROTOCOLS: [u8; 6] = [0x01, 0x80, 0xc2, 0x00, 0x00, 0x02];

/// Makes bad frames of every kind. `own` are the unicast source MACs the sender uses for the
/// kinds that need a valid source; `others` are MACs of other hosts (unicast destinations).
pub struct FrameGen {
    rng: Rng,
    own: Vec<[u8; 6]>,
    others: Vec<[u8; 6]>,
}

impl FrameGen {
    pub fn new(seed: u64, own: Vec<[u8; 6]>, others: Vec<[u8; 6]>) -> FrameGen {
        assert!(!own.is_empty() && !others.is_empty());
        FrameGen {
            rng: Rng::new(seed),
            own,
            others,
        }
    }

    /// One of the sender's own MACs.
    fn own(&mut self) -> [u8; 6] {
        self.own[self.rng.range(0, self.own.len())]
    }

    /// One of the other hosts' MACs.
    fn other(&mut self) -> [u8; 6] {
        self.others[self.rng.range(0, self.others.len())]
    }

    /// A random unicast, locally administered MAC that is not all-zero.
    fn random_unicast(&mut self) -> [u8; 6] {
        let mut m = [0u8; 6];
        self.rng.fill(&mut m);
        m[0] = (m[0] & 0xfc) | 0x02;
        m
    }

    fn header(&mut self, out: &mut Vec<u8>, dst: [u8; 6], src: [u8; 6], ethertype: u16) {
        out.clear();
        out.extend_from_slice(&dst);
        out.extend_from_slice(&src);
        out.extend_from_slice(&ethertype.to_be_bytes());
    }

    fn random_bytes(&mut self, out: &mut Vec<u8>, n: usize) {
        let at = out.len();
        out.resize(at + n, 0);
        self.rng.fill(&mut out[at..]);
    }

    /// Writes one frame of `kind` into `out` (cleared first); says what the switch should do
    /// with it, given that the sender's own MACs are known behind its port.
    pub fn frame(&mut self, kind: Kind, out: &mut Vec<u8>) -> Fate {
        let mut fate = Fate::Forward;
        match kind {
            Kind::Runt => {
                out.clear();
                let n = self.rng.range(1, 14);
                self.random_bytes(out, n);
                fate = Fate::Drop("runt");
            }
            Kind::TruncatedTag => {
                let (dst, src) = (self.other(), self.own());
                let tpid = if self.rng.next_u64() % 2 == 0 {
                    0x8100
                } else {
                    0x88a8
                };
                self.header(out, dst, src, tpid);
                let n = self.rng.range(0, 4);
                self.random_bytes(out, n);
                fate = Fate::Drop("runt");
            }
            Kind::BogusEtherType => {
                let dst = self.other();
                let src = self.own();
                let ethertype = match self.rng.next_u64() % 3 {
                    0 => self.rng.range(0, 0x600) as u16, // an 802.3 length, often wrong
                    1 => self.rng.range(0x0600, 0x0800) as u16,
                    _ => self.rng.range(0xf000, 0x10000) as u16,
                };
                self.header(out, dst, src, ethertype);
                let n = self.rng.range(0, 200);
                self.random_bytes(out, n);
            }
            Kind::Oversize => {
                let src = self.own();
                self.header(out, BROADCAST, src, 0x0800);
                let n = self.rng.range(1501, 4000);
                self.random_bytes(out, n);
            }
            Kind::GarbageValidMacs => {
                let dst = if self.rng.next_u64() % 4 == 0 {
                    fate = Fate::Drop("same_port"); // known behind the sender
                    self.own()
                } else {
                    self.other()
                };
                let src = self.own();
                out.clear();
                out.extend_from_slice(&dst);
                out.extend_from_slice(&src);
                let n = self.rng.range(2, 120);
                self.random_bytes(out, n);
                // Never a VLAN TPID by accident: that is TruncatedTag's and RandomVlan's job.
                if out[12..14] == [0x81, 0x00] || out[12..14] == [0x88, 0xa8] {
                    out[12] = 0x12;
                }
            }
            Kind::BadSourceMac => {
                let src = match self.rng.next_u64() % 3 {
                    0 => [0; 6],
                    1 => BROADCAST,
                    _ => {
                        let mut m = self.random_unicast();
                        m[0] |= 0x01;
                        m
                    }
                };
                let dst = self.other();
                self.header(out, dst, src, 0x0800);
                let n = self.rng.range(46, 100);
                self.random_bytes(out, n);
                fate = Fate::Drop("invalid_src_mac");
            }
            Kind::MacFlood => {
                let src = self.random_unicast();
                let dst = if self.rng.next_u64() % 2 == 0 {
                    BROADCAST
                } else {
                    self.random_unicast()
                };
                self.header(out, dst, src, 0x0800);
                let n = self.rng.range(46, 64);
                self.random_bytes(out, n);
            }
            Kind::BadVxlan => {
                let dst = self.other();
                let src = self.own();
                self.header(out, dst, src, 0x0800);
                self.bad_vxlan(out);
            }
            Kind::BadLacpdu => {
                let src = self.own();
                self.header(out, SLOW_PROTOCOLS, src, 0x8809);
                self.bad_lacpdu(out);
            }
            Kind::RandomVlan => {
                let dst = if self.rng.next_u64() % 2 == 0 {
                    BROADCAST
                } else {
                    self.other()
                };
                let src = self.own();
                self.header(out, dst, src, 0x8100);
                let tci = self.rng.next_u64() as u16;
                out.extend_from_slice(&tci.to_be_bytes());
                out.extend_from_slice(&0x0800u16.to_be_bytes());
                let n = self.rng.range(42, 100);
                self.random_bytes(out, n);
            }
        }
        fate
    }

    /// IPv4 + UDP to 4789 + a VXLAN header, with one thing or another wrong.
    fn bad_vxlan(&mut self, out: &mut Vec<u8>) {
        let inner_len = self.rng.range(0, 80);
        let udp_len = 8 + 8 + inner_len;
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + udp_len) as u16).to_be_bytes());
        ip[8] = 64;
        ip[9] = 17; // UDP
        ip[12..16].copy_from_slice(&[10, 99, 0, 1]);
        ip[16..20].copy_from_slice(&[10, 99, 0, 2]);
        let mut udp = [0u8; 8];
        udp[0..2].copy_from_slice(&49152u16.to_be_bytes());
        udp[2..4].copy_from_slice(&4789u16.to_be_bytes());
        udp[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
        // VXLAN: flags 0x08 (I bit), 24 reserved bits, VNI, 8 reserved bits.
        let mut vxlan = [0x08, 0, 0, 0, 0, 0, 42, 0];
        match self.rng.next_u64() % 6 {
            0 => vxlan[0] = 0x00,                                  // I flag missing
            1 => vxlan[0] = self.rng.next_u64() as u8 | 0x80,      // reserved flags set
            2 => vxlan[1..4].copy_from_slice(&[0xff; 3]),          // reserved bits set
            3 => udp[4..6].copy_from_slice(&3u16.to_be_bytes()),   // UDP length too small
            4 => ip[2..4].copy_from_slice(&9000u16.to_be_bytes()), // IP length past the frame
            _ => ip[0] = 0x4f,                                     // IHL past the header
        }
        out.extend_from_slice(&ip);
        out.extend_from_slice(&udp);
        // Sometimes the frame ends inside the VXLAN header.
        let cut = if self.rng.next_u64() % 4 == 0 {
            self.rng.range(0, 8)
        } else {
            8
        };
        out.extend_from_slice(&vxlan[..cut]);
        if cut == 8 {
            self.random_bytes(out, inner_len);
        }
    }

    /// A LACPDU (subtype 1) broken in one way or another.
    fn bad_lacpdu(&mut self, out: &mut Vec<u8>) {
        let mut pdu = [0u8; 110];
        pdu[0] = 1; // subtype LACP
        pdu[1] = 1; // version
        pdu[2] = 1; // actor TLV
        pdu[3] = 20;
        pdu[22] = 2; // partner TLV
        pdu[23] = 20;
        pdu[42] = 3; // collector TLV
        pdu[43] = 16;
        self.rng.fill(&mut pdu[4..22]);
        self.rng.fill(&mut pdu[24..42]);
        let len = match self.rng.next_u64() % 5 {
            0 => self.rng.range(0, 20), // truncated
            1 => {
                pdu[3] = self.rng.next_u64() as u8; // actor TLV length wrong
                110
            }
            2 => {
                pdu[1] = self.rng.next_u64() as u8; // unknown version
                110
            }
            3 => {
                pdu[0] = self.rng.range(2, 256) as u8; // another subtype
                110
            }
            _ => {
                self.rng.fill(&mut pdu[2..]); // TLVs of random bytes
                110
            }
        };
        out.extend_from_slice(&pdu[..len]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gen() -> FrameGen {
        FrameGen::new(7, vec![[2, 0, 0, 0, 0, 1]], vec![[2, 0, 0, 0, 0, 2]])
    }

    #[test]
    fn kinds_have_their_shape() {
        let mut g = gen();
        let mut f = Vec::new();
        for _ in 0..200 {
            g.frame(Kind::Runt, &mut f);
            assert!((1..14).contains(&f.len()));
            g.frame(Kind::TruncatedTag, &mut f);
            assert!(
                (14..18).contains(&f.len()) && [[0x81, 0], [0x88, 0xa8]].contains(&[f[12], f[13]])
            );
            g.frame(Kind::Oversize, &mut f);
            assert!(f.len() > 1514 && f[..6] == BROADCAST);
            assert_eq!(
                g.frame(Kind::BadSourceMac, &mut f),
                Fate::Drop("invalid_src_mac")
            );
            assert!(f[6] & 1 == 1 || f[6..12] == [0; 6]);
            g.frame(Kind::MacFlood, &mut f);
            assert!(f[6] & 1 == 0 && f[6..12] != [0; 6]);
            g.frame(Kind::BadLacpdu, &mut f);
            assert_eq!(
                (&f[..6], &f[12..14]),
                (&SLOW_PROTOCOLS[..], &[0x88, 0x09][..])
            );
            let fate = g.frame(Kind::GarbageValidMacs, &mut f);
            assert!(f.len() >= 14 && f[12..14] != [0x81, 0] && f[12..14] != [0x88, 0xa8]);
            assert_eq!(
                fate == Fate::Drop("same_port"),
                f[..6] == [2, 0, 0, 0, 0, 1]
            );
            g.frame(Kind::RandomVlan, &mut f);
            assert!(f.len() >= 60 && f[12..14] == [0x81, 0]);
            g.frame(Kind::BadVxlan, &mut f);
            assert!(f.len() >= 14 + 28 && f[12..14] == [0x08, 0] && f[23] == 17);
        }
    }

    #[test]
    fn same_seed_same_frames() {
        let (mut a, mut b) = (gen(), gen());
        let (mut fa, mut fb) = (Vec::new(), Vec::new());
        for kind in Kind::ALL {
            assert_eq!(a.frame(kind, &mut fa), b.frame(kind, &mut fb));
            assert_eq!(fa, fb);
        }
    }
}
