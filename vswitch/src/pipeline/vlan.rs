//! VLAN modes of a port: which network a received frame belongs to, and
//! whether (and how) a frame of a network may leave through the port.
//!
//! Networks are VLAN IDs 1..=4094, plus 0 for the untagged network of a
//! port left in the default mode. Inside the switch a frame travels
//! untagged with its VLAN beside it; the output stage adds a tag for ports
//! that want one.

use std::fmt;

/// Highest usable VLAN ID (4095 is reserved).
pub const MAX_VID: u16 = 4094;

/// A set of VLAN IDs as a 4096-bit bitmap: O(1) membership on the fast path.
#[derive(Clone, PartialEq, Eq)]
pub struct VlanSet([u64; 64]);

impl VlanSet {
    pub const fn empty() -> VlanSet {
        VlanSet([0; 64])
    }

    /// Every usable VLAN, 1..=4094.
    pub fn all() -> VlanSet {
        let mut s = VlanSet::empty();
        s.insert_range(1, MAX_VID);
        s
    }

    #[inline]
    pub fn contains(&self, vid: u16) -> bool {
        let vid = usize::from(vid & 0x0fff);
        self.0[vid / 64] & (1 << (vid % 64)) != 0
    }

    pub fn insert(&mut self, vid: u16) {
        let vid = usize::from(vid & 0x0fff);
        self.0[vid / 64] |= 1 << (vid % 64);
    }

    pub fn insert_range(&mut self, first: u16, last: u16) {
        for v in first..=last {
            self.insert(v);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    pub fn is_subset_of(&self, other: &VlanSet) -> bool {
        self.0.iter().zip(other.0.iter()).all(|(a, b)| a & !b == 0)
    }

    /// The members as inclusive ranges, ascending.
    pub fn ranges(&self) -> Vec<(u16, u16)> {
        let mut out: Vec<(u16, u16)> = Vec::new();
        for v in 0..=4095u16 {
            if !self.contains(v) {
                continue;
            }
            match out.last_mut() {
                Some((_, last)) if *last + 1 == v => *last = v,
                _ => out.push((v, v)),
            }
        }
        out
    }

    /// Parses `10,20,100-199` (IDs 1..=4094) or `all`.
    pub fn parse(text: &str) -> Result<VlanSet, String> {
        if text == "all" {
            return Ok(VlanSet::all());
        }
        let mut set = VlanSet::empty();
        for part in text.split(',') {
            let (first, last) = match part.split_once('-') {
                Some((a, b)) => (parse_vid(a)?, parse_vid(b)?),
                None => {
                    let v = parse_vid(part)?;
                    (v, v)
                }
            };
            if first > last {
                return Err(format!("VLAN range {part:?} is backwards"));
            }
            set.insert_range(first, last);
        }
        Ok(set)
    }
}

impl fmt::Display for VlanSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == VlanSet::all() {
            return f.write_str("all");
        }
        let parts: Vec<String> = self
            .ranges()
            .into_iter()
            .map(|(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

impl fmt::Debug for VlanSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VlanSet({self})")
    }
}

/// Parses one VLAN ID, 1..=4094.
pub fn parse_vid(text: &str) -> Result<u16, String> {
    match text.trim().parse::<u16>() {
        Ok(v) if (1..=MAX_VID).contains(&v) => Ok(v),
        _ => Err(format!("{text:?} is not a VLAN ID (1 to {MAX_VID})")),
    }
}

/// How a port treats VLAN tags.
// The trunk's 512-byte bitmap stays inline: there is one mode per port, it
// is never moved per frame, and the fast path reads it without a pointer hop.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VlanMode {
    /// Untagged frames only, all in this VLAN; they leave untagged.
    Access(u16),
    /// Tagged frames of `allowed` pass and leave tagged. Untagged (and
    /// priority-tagged) frames belong to `native` and `native` leaves
    /// untagged; without `native` they are dropped. A port with no VLAN
    /// options is `Trunk { allowed: all, native: Some(0) }`: every tag
    /// passes, and untagged frames form network 0.
    Trunk {
        allowed: VlanSet,
        native: Option<u16>,
    },
}

impl Default for VlanMode {
    fn default() -> Self {
        VlanMode::Trunk {
            allowed: VlanSet::all(),
            native: Some(0),
        }
    }
}

impl fmt::Display for VlanMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VlanMode::Access(v) => write!(f, "access {v}"),
            VlanMode::Trunk { allowed, native } => {
                write!(f, "trunk {allowed}")?;
                match native {
                    Some(0) => write!(f, ", untagged frames in network 0"),
                    Some(n) => write!(f, ", native {n}"),
                    None => write!(f, ", untagged frames dropped"),
                }
            }
        }
    }
}

/// Why a received frame has no network on this port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngressRefusal {
    /// A tagged frame on an access port.
    TaggedOnAccess,
    /// A tag the trunk does not carry.
    NotAllowed,
    /// An untagged frame on a trunk without a native VLAN.
    UntaggedOnTrunk,
}

/// How a frame of some network leaves a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Egress {
    /// The port does not carry the network.
    Filtered,
    Untagged,
    Tagged,
}

impl VlanMode {
    /// The network of a received frame whose outer tag carries `vid`
    /// (`None` for an untagged frame; VID 0, a priority tag, counts as
    /// untagged).
    #[inline]
    pub fn ingress(&self, vid: Option<u16>) -> Result<u16, IngressRefusal> {
        let vid = vid.filter(|v| *v != 0);
        match (self, vid) {
            (VlanMode::Access(n), None) => Ok(*n),
            (VlanMode::Access(_), Some(_)) => Err(IngressRefusal::TaggedOnAccess),
            (VlanMode::Trunk { native, .. }, None) => native.ok_or(IngressRefusal::UntaggedOnTrunk),
            (VlanMode::Trunk { allowed, native }, Some(v)) => {
                if allowed.contains(v) || *native == Some(v) {
                    Ok(v)
                } else {
                    Err(IngressRefusal::NotAllowed)
                }
            }
        }
    }

    /// How a frame of network `vlan` leaves this port.
    #[inline]
    pub fn egress(&self, vlan: u16) -> Egress {
        match self {
            VlanMode::Access(n) if *n == vlan => Egress::Untagged,
            VlanMode::Access(_) => Egress::Filtered,
            VlanMode::Trunk { native, .. } if *native == Some(vlan) => Egress::Untagged,
            VlanMode::Trunk { allowed, .. } if vlan != 0 && allowed.contains(vlan) => {
                Egress::Tagged
            }
            VlanMode::Trunk { .. } => Egress::Filtered,
        }
    }

    /// Every network the port carries.
    pub fn networks(&self) -> VlanSet {
        match self {
            VlanMode::Access(n) => {
                let mut s = VlanSet::empty();
                s.insert(*n);
                s
            }
            VlanMode::Trunk { allowed, native } => {
                let mut s = allowed.clone();
                if let Some(n) = native {
                    s.insert(*n);
                }
                s
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use IngressRefusal::*;

    fn trunk(list: &str, native: Option<u16>) -> VlanMode {
        VlanMode::Trunk {
            allowed: VlanSet::parse(list).unwrap(),
            native,
        }
    }

    #[test]
    fn sets_parse_and_print() {
        let s = VlanSet::parse("10,20,100-199").unwrap();
        assert!(s.contains(10) && s.contains(150) && s.contains(199));
        assert!(!s.contains(11) && !s.contains(200) && !s.contains(0));
        assert_eq!(s.to_string(), "10,20,100-199");
        assert_eq!(VlanSet::parse("all").unwrap().to_string(), "all");
        assert_eq!(VlanSet::parse("5,6,7").unwrap().to_string(), "5-7");
        for bad in [
            "", "0", "4095", "4096", "1-", "-5", "20-10", "a", "1,,2", "1 2",
        ] {
            assert!(VlanSet::parse(bad).is_err(), "{bad:?}");
        }
        assert!(s.is_subset_of(&VlanSet::parse("1-300").unwrap()));
        assert!(!s.is_subset_of(&VlanSet::parse("1-150").unwrap()));
    }

    /// Every mode against untagged, priority-tagged, allowed, other and
    /// reserved tags. (A double-tagged frame is classified by its outer tag.)
    #[test]
    fn ingress_table() {
        let access = VlanMode::Access(10);
        let trunk_native = trunk("10,20", Some(30));
        let trunk_bare = trunk("10,20", None);
        let default = VlanMode::default();
        let cases: [(&VlanMode, Option<u16>, Result<u16, IngressRefusal>); 20] = [
            (&access, None, Ok(10)),
            (&access, Some(0), Ok(10)),
            (&access, Some(10), Err(TaggedOnAccess)),
            (&access, Some(20), Err(TaggedOnAccess)),
            (&access, Some(4095), Err(TaggedOnAccess)),
            (&trunk_native, None, Ok(30)),
            (&trunk_native, Some(0), Ok(30)),
            (&trunk_native, Some(10), Ok(10)),
            (&trunk_native, Some(30), Ok(30)),
            (&trunk_native, Some(40), Err(NotAllowed)),
            (&trunk_native, Some(4095), Err(NotAllowed)),
            (&trunk_bare, None, Err(UntaggedOnTrunk)),
            (&trunk_bare, Some(0), Err(UntaggedOnTrunk)),
            (&trunk_bare, Some(20), Ok(20)),
            (&trunk_bare, Some(21), Err(NotAllowed)),
            (&default, None, Ok(0)),
            (&default, Some(0), Ok(0)),
            (&default, Some(7), Ok(7)),
            (&default, Some(4094), Ok(4094)),
            (&default, Some(4095), Err(NotAllowed)),
        ];
        for (mode, vid, want) in cases {
            assert_eq!(mode.ingress(vid), want, "{mode} with {vid:?}");
        }
    }

    #[test]
    fn egress_table() {
        let access = VlanMode::Access(10);
        assert_eq!(access.egress(10), Egress::Untagged);
        assert_eq!(access.egress(20), Egress::Filtered);
        assert_eq!(access.egress(0), Egress::Filtered);
        let t = trunk("10,20", Some(30));
        assert_eq!(t.egress(10), Egress::Tagged);
        assert_eq!(t.egress(30), Egress::Untagged);
        assert_eq!(t.egress(40), Egress::Filtered);
        assert_eq!(t.egress(0), Egress::Filtered);
        let d = VlanMode::default();
        assert_eq!(d.egress(0), Egress::Untagged);
        assert_eq!(d.egress(99), Egress::Tagged);
        assert_eq!(trunk("10", None).egress(0), Egress::Filtered);
    }

    #[test]
    fn networks_and_display() {
        let t = trunk("10,20", Some(30));
        assert_eq!(t.networks().to_string(), "10,20,30");
        assert_eq!(t.to_string(), "trunk 10,20, native 30");
        assert_eq!(VlanMode::Access(5).to_string(), "access 5");
    }
}
