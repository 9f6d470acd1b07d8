//! A port with nothing behind it, like DPDK's null device: a *source* that
//! makes up frames and a *sink* that swallows them, so the real daemon's
//! loop, pipeline and tables can be measured with no kernel cost.
//!
//! `type=null role=source` receives frames built from one template made at
//! open: each frame is a copy of the template with its two MAC addresses
//! written in (flow `i` goes from source MAC `i % src_macs` to destination
//! MAC `i % dst_macs`, counted up from `src_mac` and `dst_mac`). No
//! allocation per frame, no clock per frame (one per burst when paced by
//! `rate_pps`). After `count` frames it is exhausted: `rx_burst` returns 0
//! and the port no longer asks the datapath to keep spinning.
//!
//! `type=null role=sink` counts and drops what it is sent. With
//! `learn_macs=N` it first "receives" N broadcast frames from the N MACs
//! counted up from `mac` (the source's default `dst_mac`), so its bridge
//! learns them behind the sink and the source's unicast frames hit the
//! table; it teaches them again every `RELEARN` so they never age out.
//!
//! Both roles count and drop what they transmit; neither has a descriptor.

use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use super::{Port, PortKind};
use crate::control::protocol::Options;
use crate::packet::Batch;
use crate::pipeline::counters::PortCounters;
use crate::wire::{ipv4, MacAddr};

/// Options of a null port (besides `type` and the VLAN/policy options).
pub const KEYS: &[&str] = &[
    "role",
    "frame_len",
    "flows",
    "src_macs",
    "dst_macs",
    "src_mac",
    "dst_mac",
    "vlan",
    "count",
    "rate_pps",
    "learn_macs",
    "mac",
];
const SOURCE_ONLY: &[&str] = &[
    "frame_len",
    "flows",
    "src_macs",
    "dst_macs",
    "src_mac",
    "dst_mac",
    "count",
    "rate_pps",
];
const SINK_ONLY: &[&str] = &["learn_macs", "mac"];

/// Default first source MAC of a source.
pub const DEFAULT_SRC_MAC: MacAddr = MacAddr([0x02, 0x00, 0x5c, 0x00, 0x00, 0x00]);
/// Default first destination MAC of a source, and first MAC a sink teaches.
pub const DEFAULT_DST_MAC: MacAddr = MacAddr([0x02, 0x00, 0xd5, 0x00, 0x00, 0x00]);
/// Frame lengths a source may make (without FCS): Ethernet's minimum to a
/// 1500-byte MTU's maximum.
pub const FRAME_LEN: std::ops::RangeInclusive<usize> = 60..=1514;
/// Most distinct MACs or flows: a bridge's largest table (`mac_table_size`).
pub const MAX_MACS: u64 = 4 * 1024 * 1024;
/// How often a sink teaches its MACs again (tables age entries after 300 s
/// by default).
pub const RELEARN: Duration = Duration::from_secs(60);
/// Most frames a paced source hands over at once: what the pace offered
/// beyond that while the datapath was away is missed (counted), as a NIC's
/// receive ring would overflow, so a late poll never gets a catch-up burst.
pub const PACE_BURST: u64 = crate::packet::BATCH_SIZE as u64;
/// EtherType of a sink's teaching frames (IEEE local experimental).
const LEARN_ETHERTYPE: u16 = 0x88b5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NullRole {
    Source,
    Sink,
}

/// A null port's settings, parsed from its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NullConfig {
    pub role: NullRole,
    pub frame_len: usize,
    pub flows: u64,
    pub src_macs: u64,
    pub dst_macs: u64,
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    /// 802.1Q tag on every frame (source) or teaching frame (sink).
    pub vlan: Option<u16>,
    /// Frames to make before the source is exhausted; `None`: no end.
    pub count: Option<u64>,
    pub rate_pps: Option<u64>,
    pub learn_macs: u64,
    pub mac: MacAddr,
}

fn number(
    options: &Options,
    key: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Option<u64>, String> {
    let Some(v) = options.get(key) else {
        return Ok(None);
    };
    let n: u64 = v
        .parse()
        .map_err(|_| format!("{key}={v:?} is not a number"))?;
    if !range.contains(&n) {
        return Err(format!(
            "{key}={n} out of range: {} to {}",
            range.start(),
            range.end()
        ));
    }
    Ok(Some(n))
}

fn unicast(options: &Options, key: &str, default: MacAddr) -> Result<MacAddr, String> {
    let Some(v) = options.get(key) else {
        return Ok(default);
    };
    let mac: MacAddr = v.parse().map_err(|e| format!("{key}: {e}"))?;
    if !mac.is_learnable() {
        return Err(format!("{key}: {mac} is not a unicast address"));
    }
    Ok(mac)
}

/// Parses the null options of `options` (unknown keys are the caller's).
pub fn parse(options: &Options) -> Result<NullConfig, String> {
    let role = match options.get("role").map(String::as_str) {
        Some("source") => NullRole::Source,
        Some("sink") => NullRole::Sink,
        Some(other) => return Err(format!("role={other:?}: expected source or sink")),
        None => return Err("type=null needs role=source or role=sink".into()),
    };
    let wrong = match role {
        NullRole::Source => SINK_ONLY,
        NullRole::Sink => SOURCE_ONLY,
    };
    if let Some(k) = wrong.iter().find(|k| options.contains_key(**k)) {
        let r = if role == NullRole::Source {
            "source"
        } else {
            "sink"
        };
        return Err(format!("{k} does not apply to a null {r}"));
    }
    let len = *FRAME_LEN.start() as u64..=*FRAME_LEN.end() as u64;
    let flows = number(options, "flows", 1..=MAX_MACS)?.unwrap_or(1);
    let cfg = NullConfig {
        role,
        frame_len: number(options, "frame_len", len)?.unwrap_or(64) as usize,
        flows,
        src_macs: number(options, "src_macs", 1..=MAX_MACS)?.unwrap_or(flows),
        dst_macs: number(options, "dst_macs", 1..=MAX_MACS)?.unwrap_or(flows),
        src_mac: unicast(options, "src_mac", DEFAULT_SRC_MAC)?,
        dst_mac: unicast(options, "dst_mac", DEFAULT_DST_MAC)?,
        vlan: number(options, "vlan", 1..=4094)?.map(|v| v as u16),
        count: number(options, "count", 1..=u64::MAX)?,
        rate_pps: number(options, "rate_pps", 1..=1_000_000_000)?,
        learn_macs: number(options, "learn_macs", 0..=MAX_MACS)?.unwrap_or(0),
        mac: unicast(options, "mac", DEFAULT_DST_MAC)?,
    };
    Ok(cfg)
}

/// `base` + `i` in the low 40 bits (the first octet, with its unicast and
/// locally-administered bits, stays).
#[inline]
fn nth_mac(base: MacAddr, i: u64) -> [u8; 6] {
    let b = base.to_u64();
    let low = (b + i) & 0xff_ffff_ffff;
    MacAddr::from_u64((b & 0xff00_0000_0000) | low).0
}

/// Writes the template frame: `dst`/`src` left zero, an optional tag, and
/// an IPv4/UDP header so hashes and parsers see a real packet.
fn template(len: usize, vlan: Option<u16>) -> Vec<u8> {
    let mut f = vec![0u8; len];
    let mut off = 12;
    if let Some(v) = vlan {
        f[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
        f[14..16].copy_from_slice(&v.to_be_bytes());
        off = 16;
    }
    f[off..off + 2].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = off + 2;
    let payload = len - ip - ipv4::HEADER_LEN - ipv4::UDP_HEADER_LEN;
    let src = std::net::Ipv4Addr::new(198, 18, 0, 1);
    let dst = std::net::Ipv4Addr::new(198, 18, 0, 2);
    // Always fits: the shortest frame (60, tagged) leaves 42 bytes for 28.
    let _ = ipv4::emit_udp(&mut f[ip..], src, dst, 1024, 1024, payload);
    f
}

pub struct NullPort {
    name: String,
    cfg: NullConfig,
    template: Vec<u8>,
    /// Indexes of the next flow and of its source and destination MACs.
    flow: u64,
    src_i: u64,
    dst_i: u64,
    generated: u64,
    absorbed: u64,
    /// Teaching frames a sink still has to give in this round.
    learn_left: u64,
    learn_sent: u64,
    next_relearn: Duration,
    /// Start of pacing, at the first burst of a `rate_pps` source.
    paced_since: Option<Instant>,
    /// Frames of the pace handed over or missed since `paced_since`.
    paced_taken: u64,
    missed: u64,
}

impl NullPort {
    pub fn new(name: &str, cfg: NullConfig) -> NullPort {
        let template = match cfg.role {
            NullRole::Source => template(cfg.frame_len, cfg.vlan),
            NullRole::Sink => {
                let mut t = template(60, cfg.vlan);
                t[..6].copy_from_slice(&MacAddr::BROADCAST.0);
                let et = if cfg.vlan.is_some() { 16 } else { 12 };
                t[et..et + 2].copy_from_slice(&LEARN_ETHERTYPE.to_be_bytes());
                t
            }
        };
        NullPort {
            name: name.to_string(),
            learn_left: cfg.learn_macs,
            template,
            cfg,
            flow: 0,
            src_i: 0,
            dst_i: 0,
            generated: 0,
            absorbed: 0,
            learn_sent: 0,
            next_relearn: RELEARN,
            paced_since: None,
            paced_taken: 0,
            missed: 0,
        }
    }

    /// True once a source has made its `count` frames.
    pub fn exhausted(&self) -> bool {
        self.cfg.role == NullRole::Source && self.cfg.count.is_some_and(|c| self.generated >= c)
    }

    /// Frames the source may make now: its count's remainder, and what its
    /// pace allows since it started.
    fn allowance(&mut self) -> u64 {
        let left = match self.cfg.count {
            Some(c) => c.saturating_sub(self.generated),
            None => u64::MAX,
        };
        let Some(rate) = self.cfg.rate_pps else {
            return left;
        };
        let since = *self.paced_since.get_or_insert_with(Instant::now);
        let due = (since.elapsed().as_nanos() * u128::from(rate) / 1_000_000_000) as u64;
        let mut avail = due.saturating_sub(self.paced_taken);
        if avail > PACE_BURST {
            self.missed += avail - PACE_BURST;
            self.paced_taken += avail - PACE_BURST;
            avail = PACE_BURST;
        }
        left.min(avail)
    }

    fn rx_source(&mut self, batch: &mut Batch, counters: &mut PortCounters) -> usize {
        let mut allowed = self.allowance();
        let len = self.template.len();
        let mut n = 0;
        while allowed > 0 {
            let Some(buf) = batch.slot() else { break };
            let area = &mut buf.rx_area()[..len];
            area.copy_from_slice(&self.template);
            area[..6].copy_from_slice(&nth_mac(self.cfg.dst_mac, self.dst_i));
            area[6..12].copy_from_slice(&nth_mac(self.cfg.src_mac, self.src_i));
            buf.set_len(len);
            batch.commit();
            self.flow += 1;
            self.src_i += 1;
            self.dst_i += 1;
            if self.flow == self.cfg.flows {
                (self.flow, self.src_i, self.dst_i) = (0, 0, 0);
            }
            if self.src_i == self.cfg.src_macs {
                self.src_i = 0;
            }
            if self.dst_i == self.cfg.dst_macs {
                self.dst_i = 0;
            }
            allowed -= 1;
            n += 1;
        }
        self.generated += n as u64;
        self.paced_taken += n as u64;
        counters.rx_packets += n as u64;
        counters.rx_bytes += (n * len) as u64;
        n
    }

    fn rx_sink(&mut self, batch: &mut Batch, counters: &mut PortCounters) -> usize {
        let len = self.template.len();
        let mut n = 0;
        while self.learn_left > 0 {
            let Some(buf) = batch.slot() else { break };
            let area = &mut buf.rx_area()[..len];
            area.copy_from_slice(&self.template);
            let i = self.cfg.learn_macs - self.learn_left;
            area[6..12].copy_from_slice(&nth_mac(self.cfg.mac, i));
            buf.set_len(len);
            batch.commit();
            self.learn_left -= 1;
            n += 1;
        }
        self.learn_sent += n as u64;
        counters.rx_packets += n as u64;
        counters.rx_bytes += (n * len) as u64;
        n
    }
}

impl Port for NullPort {
    fn kind(&self) -> PortKind {
        PortKind::Null
    }

    fn iface(&self) -> &str {
        &self.name
    }

    fn rx_burst(&mut self, batch: &mut Batch, counters: &mut PortCounters) -> usize {
        match self.cfg.role {
            NullRole::Source => self.rx_source(batch, counters),
            NullRole::Sink => self.rx_sink(batch, counters),
        }
    }

    fn tx_burst(&mut self, frames: &[&[u8]], counters: &mut PortCounters) -> usize {
        let bytes: usize = frames.iter().map(|f| f.len()).sum();
        counters.tx_packets += frames.len() as u64;
        counters.tx_bytes += bytes as u64;
        self.absorbed += frames.len() as u64;
        frames.len()
    }

    fn readiness_fd(&self) -> Option<RawFd> {
        None
    }

    fn always_ready(&self) -> bool {
        match self.cfg.role {
            NullRole::Source => !self.exhausted(),
            NullRole::Sink => self.learn_left > 0,
        }
    }

    fn tick(&mut self, now: Duration, _counters: &mut PortCounters) {
        if self.cfg.role == NullRole::Sink && now >= self.next_relearn {
            self.next_relearn = now + RELEARN;
            self.learn_left = self.cfg.learn_macs;
        }
    }

    fn details(&self) -> Option<serde_json::Value> {
        let c = &self.cfg;
        let v = match c.role {
            NullRole::Source => serde_json::json!({
                "role": "source",
                "generated": self.generated,
                "absorbed": self.absorbed,
                "exhausted": self.exhausted(),
                "frame_len": c.frame_len,
                "flows": c.flows,
                "src_macs": c.src_macs,
                "dst_macs": c.dst_macs,
                "src_mac": c.src_mac.to_string(),
                "dst_mac": c.dst_mac.to_string(),
                "vlan": c.vlan,
                "count": c.count,
                "rate_pps": c.rate_pps,
                "missed": self.missed,
            }),
            NullRole::Sink => serde_json::json!({
                "role": "sink",
                "absorbed": self.absorbed,
                "learn_macs": c.learn_macs,
                "learn_frames_sent": self.learn_sent,
                "mac": c.mac.to_string(),
                "vlan": c.vlan,
            }),
        };
        Some(serde_json::json!({ "null": v }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ethernet::EthernetFrame;

    fn opts(kv: &[(&str, &str)]) -> Options {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn port(kv: &[(&str, &str)]) -> NullPort {
        NullPort::new("n0", parse(&opts(kv)).unwrap())
    }

    fn frames(p: &mut NullPort, c: &mut PortCounters) -> Vec<Vec<u8>> {
        let mut batch = Batch::new();
        p.rx_burst(&mut batch, c);
        batch.iter().map(|b| b.frame().to_vec()).collect()
    }

    #[test]
    fn null_options() {
        let s = parse(&opts(&[("role", "source")])).unwrap();
        assert_eq!(
            (s.frame_len, s.flows, s.src_macs, s.dst_macs),
            (64, 1, 1, 1)
        );
        assert_eq!((s.count, s.rate_pps, s.vlan), (None, None, None));
        let s = parse(&opts(&[
            ("role", "source"),
            ("flows", "8"),
            ("dst_macs", "2"),
        ]))
        .unwrap();
        assert_eq!((s.flows, s.src_macs, s.dst_macs), (8, 8, 2));
        let k = parse(&opts(&[("role", "sink"), ("learn_macs", "1000")])).unwrap();
        assert_eq!(
            (k.role, k.learn_macs, k.mac),
            (NullRole::Sink, 1000, DEFAULT_DST_MAC)
        );
        for bad in [
            &[][..],
            &[("role", "drain")],
            &[("role", "source"), ("frame_len", "59")],
            &[("role", "source"), ("frame_len", "1515")],
            &[("role", "source"), ("flows", "0")],
            &[("role", "source"), ("count", "0")],
            &[("role", "source"), ("count", "-1")],
            &[("role", "source"), ("vlan", "4095")],
            &[("role", "source"), ("dst_mac", "ff:ff:ff:ff:ff:ff")],
            &[("role", "source"), ("learn_macs", "5")],
            &[("role", "sink"), ("count", "5")],
            &[("role", "sink"), ("learn_macs", "99999999")],
            &[("role", "sink"), ("mac", "nope")],
        ] {
            assert!(parse(&opts(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn null_source_cycles_flows_and_stops_at_count() {
        let mut p = port(&[
            ("role", "source"),
            ("flows", "3"),
            ("count", "40"),
            ("frame_len", "100"),
        ]);
        let mut c = PortCounters::default();
        assert!(p.always_ready());
        let first = frames(&mut p, &mut c);
        assert_eq!(first.len(), 32);
        for (i, f) in first.iter().enumerate() {
            assert_eq!(f.len(), 100);
            let e = EthernetFrame::new_checked(&f[..]).unwrap();
            let k = (i % 3) as u8;
            assert_eq!(e.dst(), MacAddr([0x02, 0, 0xd5, 0, 0, k]));
            assert_eq!(e.src(), MacAddr([0x02, 0, 0x5c, 0, 0, k]));
            assert_eq!(u16::from_be_bytes([f[12], f[13]]), 0x0800);
            let ip = ipv4::Ipv4Header::parse(&f[14..]).unwrap();
            assert_eq!(ip.total_len, 86);
        }
        assert_eq!(frames(&mut p, &mut c).len(), 8);
        assert!(p.exhausted() && !p.always_ready());
        assert!(frames(&mut p, &mut c).is_empty());
        assert_eq!((c.rx_packets, c.rx_bytes), (40, 4000));
    }

    #[test]
    fn null_source_tags_and_spreads_macs_independently() {
        let mut p = port(&[
            ("role", "source"),
            ("flows", "4"),
            ("src_macs", "1"),
            ("dst_macs", "2"),
            ("vlan", "10"),
            ("frame_len", "60"),
        ]);
        let f = frames(&mut p, &mut PortCounters::default());
        let dsts: Vec<u8> = f.iter().take(6).map(|f| f[5]).collect();
        assert_eq!(dsts, [0, 1, 0, 1, 0, 1]);
        assert!(f.iter().all(|f| f[11] == 0 && f.len() == 60));
        let e = EthernetFrame::new_checked(&f[0][..]).unwrap();
        assert_eq!(e.vlan_tci().map(|t| t.vid()), Some(10));
    }

    #[test]
    fn null_macs_carry_into_higher_octets() {
        let base: MacAddr = "02:00:00:00:00:ff".parse().unwrap();
        assert_eq!(nth_mac(base, 1), [0x02, 0, 0, 0, 1, 0]);
        let top: MacAddr = "02:ff:ff:ff:ff:ff".parse().unwrap();
        assert_eq!(nth_mac(top, 1), [0x02, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn null_source_paced() {
        let mut p = port(&[("role", "source"), ("rate_pps", "1000")]);
        let mut c = PortCounters::default();
        assert!(
            frames(&mut p, &mut c).is_empty(),
            "nothing due at the start"
        );
        std::thread::sleep(Duration::from_millis(12));
        let n = frames(&mut p, &mut c).len();
        assert!((10..=32).contains(&n), "{n} frames after 12 ms at 1000 pps");
        assert!(p.always_ready());
        // Away for 50 ms: one burst's worth is handed over, the rest missed.
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(frames(&mut p, &mut c).len(), 32);
        assert!(p.missed >= 50 - 32, "missed {}", p.missed);
    }

    #[test]
    fn null_sink_teaches_then_counts_and_drops() {
        let mut p = port(&[("role", "sink"), ("learn_macs", "40"), ("vlan", "7")]);
        let mut c = PortCounters::default();
        assert!(p.always_ready());
        let a = frames(&mut p, &mut c);
        let b = frames(&mut p, &mut c);
        assert_eq!((a.len(), b.len()), (32, 8));
        assert!(!p.always_ready());
        assert!(frames(&mut p, &mut c).is_empty());
        let e = EthernetFrame::new_checked(&b[7][..]).unwrap();
        assert_eq!(e.src(), MacAddr([0x02, 0, 0xd5, 0, 0, 39]));
        assert!(e.dst().is_broadcast());
        assert_eq!(e.vlan_tci().map(|t| t.vid()), Some(7));
        assert_eq!(p.tx_burst(&[&[0; 64], &[0; 100]], &mut c), 2);
        assert_eq!((c.tx_packets, c.tx_bytes, c.rx_packets), (2, 164, 40));
        // It teaches again after RELEARN.
        p.tick(RELEARN, &mut c);
        assert_eq!(frames(&mut p, &mut c).len(), 32);
        let d = p.details().unwrap();
        assert_eq!(d["null"]["absorbed"], 2);
        assert_eq!(d["null"]["learn_frames_sent"], 72);
    }

    #[test]
    fn null_port_opens_from_its_options() {
        let o = opts(&[("type", "null"), ("role", "source"), ("access", "10")]);
        let spec = crate::config::PortSpec::parse("gen0", &o).unwrap();
        assert_eq!((spec.kind, spec.iface.as_str()), (PortKind::Null, ""));
        assert!(spec.ifaces().is_empty());
        let p = super::super::open("gen0", &spec).unwrap();
        assert_eq!((p.kind(), p.iface()), (PortKind::Null, "gen0"));
        assert_eq!("null".parse::<PortKind>().unwrap().as_str(), "null");
        let mut bad = o.clone();
        bad.insert("iface".into(), "eth0".into());
        assert!(crate::config::PortSpec::parse("gen0", &bad).is_err());
    }
}
