//! The bodies of the fuzz targets.
//!
//! They live in the library, not in `fuzz/`, so that the same code runs two
//! ways: under libFuzzer (the cargo-fuzz targets in `fuzz/` are one-line
//! wrappers, built with a nightly-only sanitizer setup), and as a plain test
//! on the stable toolchain (`vswitch/tests/fuzz_corpus.rs` feeds every file
//! of `fuzz/corpus/TARGET/` and `fuzz/regressions/TARGET/` through them). A
//! crash the fuzzer finds becomes a regression input in the repository and
//! stays fixed in every `cargo test` after.
//!
//! Each function takes arbitrary bytes. Bad input must never make the code
//! under test panic; the functions themselves panic only when an invariant
//! they check is broken, which is what the fuzzer reports.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use crate::control::protocol::{Reply, Request};
use crate::control::server::parse_request;
use crate::datapath::Switch;
use crate::packet::{Batch, PacketBuf, MAX_FRAME_LEN};
use crate::pipeline::admit::PortPolicy;
use crate::pipeline::announce;
use crate::pipeline::counters::{DropReason, PortCounters};
use crate::pipeline::input::classify;
use crate::pipeline::vlan::{VlanMode, VlanSet};
use crate::port::loopback::{LoopbackLink, LoopbackPort};
use crate::wire::{EtherType, EthernetFrame, EthernetRepr, MacAddr};

/// A control request line: parsing never panics; what parses encodes back to
/// one line that parses to the same request; what does not gets an error
/// reply with a message, itself one line of JSON.
pub fn control_request(data: &[u8]) {
    match parse_request(data) {
        Ok(request) => {
            let line = serde_json::to_string(&request).expect("a request always encodes");
            assert!(!line.contains('\n'), "encoded request spans lines: {line}");
            let again: Request = parse_request(line.as_bytes())
                .unwrap_or_else(|e| panic!("{line} does not parse back: {e:?}"));
            assert_eq!(again, request);
        }
        Err(Reply::Error(message)) => {
            assert!(!message.trim().is_empty(), "error reply without a message");
            let line = serde_json::to_string(&Reply::Error(message)).expect("replies encode");
            assert!(!line.contains('\n'), "encoded reply spans lines: {line}");
        }
        Err(other) => panic!("parse_request failed with a non-error reply {other:?}"),
    }
}

/// Ethernet and 802.1Q views, the owned header, MAC addresses as bytes and
/// as text, and the RARP announcement built from the input's first bytes.
pub fn ethernet(data: &[u8]) {
    match EthernetFrame::new_checked(data) {
        Err(_) => {
            assert!(data.len() < 18, "a {}-byte frame was refused", data.len());
            let unchecked = EthernetFrame::new_unchecked(data);
            assert!(EthernetRepr::parse(&unchecked).is_err());
            assert_eq!(classify_default(data), Err(DropReason::Runt));
        }
        Ok(frame) => check_frame(data, &frame),
    }

    if let Some(mac) = MacAddr::from_slice(data) {
        assert_eq!(mac.to_string().parse::<MacAddr>(), Ok(mac));
        assert_eq!(MacAddr::from_u64(mac.to_u64()), mac);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(mac) = text.parse::<MacAddr>() {
            // Accepted text is six two-digit hex octets, ':' or '-' apart.
            assert_eq!(mac.to_string(), text.to_ascii_lowercase().replace('-', ":"));
        }
    }

    if let Some(mac) = MacAddr::from_slice(data) {
        let vlan = data
            .get(6..8)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
        let room = data.get(8).map_or(64, |b| usize::from(*b) % 80);
        check_rarp(mac, vlan, room);
    }
}

fn check_frame(data: &[u8], frame: &EthernetFrame<&[u8]>) {
    let header_len = frame.header_len();
    assert!(header_len <= data.len());
    assert_eq!(frame.payload(), &data[header_len..]);
    let tagged = frame.ethertype() == EtherType::Vlan;
    assert_eq!(frame.vlan_tci().is_some(), tagged);
    if !tagged {
        assert_eq!(frame.payload_ethertype(), frame.ethertype());
    }

    let repr = EthernetRepr::parse(frame).expect("a checked frame parses");
    assert_eq!(repr.buffer_len(), header_len);
    let mut out = vec![0u8; data.len()];
    assert_eq!(repr.emit(&mut out), Ok(header_len));
    assert_eq!(
        &out[..header_len],
        &data[..header_len],
        "emit changed the header"
    );
    let again = EthernetRepr::parse(&EthernetFrame::new_unchecked(&out[..])).expect("reparse");
    assert_eq!(again, repr);

    // The pipeline's classification (default VLAN mode: every tag passes,
    // untagged is network 0) reads the same fields.
    let vid = repr.vlan.map_or(0, |t| t.vid());
    let inner_tpid = tagged
        && matches!(
            frame.payload_ethertype(),
            EtherType::Vlan | EtherType::QinQ | EtherType::Unknown(0x9100)
        );
    match classify_default(data) {
        Ok(c) => {
            assert_eq!((c.src, c.dst), (repr.src, repr.dst));
            assert_eq!(c.vlan, vid);
        }
        Err(DropReason::InvalidSourceMac) => assert!(!repr.src.is_learnable()),
        Err(DropReason::ReservedMulticast) => assert!(repr.dst.is_link_local_reserved()),
        Err(DropReason::VlanNotAllowed) => assert_eq!(vid, 4095),
        Err(DropReason::VlanDoubleTagged) => assert!(vid != 0 && inner_tpid),
        Err(other) => panic!("a well-formed frame was classified as {other:?}"),
    }
}

/// The input stage on a copy of `data`, for a port in the default mode.
fn classify_default(data: &[u8]) -> Result<crate::pipeline::input::Classified, DropReason> {
    let mut buf = PacketBuf::new();
    buf.copy_from(data);
    classify(&mut buf, &VlanMode::default())
}

fn check_rarp(mac: MacAddr, vlan: u16, room: usize) {
    let mut buf = [0xeeu8; 80];
    let n = announce::rarp(mac, vlan, &mut buf[..room]);
    if room < 64 {
        assert_eq!(n, 0, "rarp wrote into a {room}-byte buffer");
        return;
    }
    // Padded to the 60-byte minimum, tagged or not.
    assert_eq!(n, 60);
    let frame = EthernetFrame::new_checked(&buf[..n]).expect("an announcement parses");
    let repr = EthernetRepr::parse(&frame).expect("an announcement parses");
    assert!(repr.dst.is_broadcast());
    assert_eq!(repr.src, mac);
    // Tagged when `vlan` is not 0, with its low 12 bits as the VID.
    let tag = repr.vlan.map(|t| t.0);
    assert_eq!(tag, (vlan != 0).then_some(vlan & 0x0fff));
    assert_eq!(repr.ethertype, EtherType::Unknown(0x8035));
    let arp = frame.payload();
    assert_eq!(&arp[..8], &[0, 1, 8, 0, 6, 4, 0, 3]);
    assert_eq!((&arp[8..14], &arp[18..24]), (&mac.0[..], &mac.0[..]));
}

/// The fixed switch the pipeline target drives: (bridge, port), in the order
/// the ports are added, which makes the index of a port here its `PortId`.
const PORTS: [(&str, &str); 5] = [
    ("br0", "a0"),
    ("br0", "a1"),
    ("br0", "a2"),
    ("br1", "b0"),
    ("br1", "b1"),
];

/// The VLAN mode of each port of `PORTS`, as the model reads it: `a0`
/// access 10, `a1` trunk 10,20 with native 30, `a2` access 30, `b0` the
/// default mode, `b1` trunk 5 without native.
#[derive(Debug, Clone, Copy)]
enum ModelMode {
    Access(u16),
    Trunk(&'static [u16], Option<u16>),
    Default,
}

const MODES: [ModelMode; 5] = [
    ModelMode::Access(10),
    ModelMode::Trunk(&[10, 20], Some(30)),
    ModelMode::Access(30),
    ModelMode::Default,
    ModelMode::Trunk(&[5], None),
];

/// The switch's own configuration for the same modes.
fn vlan_mode(mode: ModelMode) -> VlanMode {
    match mode {
        ModelMode::Access(n) => VlanMode::Access(n),
        ModelMode::Trunk(list, native) => {
            let mut allowed = VlanSet::empty();
            for v in list {
                allowed.insert(*v);
            }
            VlanMode::Trunk { allowed, native }
        }
        ModelMode::Default => VlanMode::default(),
    }
}

/// (name, table size, aging seconds). `br0` is small and ages fast so short
/// inputs reach a full table and aging.
const BRIDGES: [(&str, usize, u64); 2] = [("br0", 8, 3), ("br1", 300, 300)];

/// Frames per burst at most; a longer run from one port is split.
const MAX_BURST: usize = 64;

/// The whole datapath fed from loopback ports.
///
/// Input: records `[op][len][len bytes of frame]`, the last one cut short
/// by the end of the input. `op`:
/// - bits 0-2: ingress port, an index into `PORTS` (modulo its length);
/// - bit 6: before this frame, advance the clock by one second and run the
///   datapath's tick (table aging);
/// - bit 7: pad the frame with zeros past `MAX_FRAME_LEN` (oversized).
///
/// Consecutive records on one port form a burst: queued, then polled until
/// the switch is idle, so one or more full batches go through the pipeline.
/// After each burst every port's transmitted frames, every counter and both
/// tables are checked against a model of the switch (see `Model`), and
/// against invariants that hold whatever the model says: nothing leaves on
/// the ingress port or in the other bridge, every frame received is either
/// sent on or counted in exactly one drop reason, and no table grows past
/// its size.
pub fn pipeline(data: &[u8]) {
    thread_local! {
        // Scratch buffers only (cleared before each use); allocating a
        // batch's 300 KB per input would cost more than the input's run.
        static BATCH: RefCell<Batch> = RefCell::new(Batch::new());
    }
    BATCH.with_borrow_mut(|batch| run_pipeline(data, batch));
}

fn run_pipeline(data: &[u8], batch: &mut Batch) {
    let mut rig = Rig::new(batch);
    let mut burst: Vec<Vec<u8>> = Vec::new();
    let mut burst_port = 0;
    let mut rest = data;
    while rest.len() >= 2 {
        let (op, len) = (rest[0], usize::from(rest[1]).min(rest.len() - 2));
        let mut frame = rest[2..2 + len].to_vec();
        rest = &rest[2 + len..];
        let port = usize::from(op & 0x07) % PORTS.len();
        let advance = op & 0x40 != 0;
        if op & 0x80 != 0 {
            frame.resize(MAX_FRAME_LEN + 1 + len, 0);
        }
        if !burst.is_empty() && (advance || port != burst_port || burst.len() == MAX_BURST) {
            rig.burst(burst_port, &burst);
            burst.clear();
        }
        if advance {
            rig.advance_clock();
        }
        burst_port = port;
        burst.push(frame);
    }
    if !burst.is_empty() {
        rig.burst(burst_port, &burst);
    }
}

/// The switch under test, the ends of its ports, and the model.
struct Rig<'b> {
    switch: Switch,
    links: Vec<LoopbackLink>,
    batch: &'b mut Batch,
    now: u64,
    model: Model,
}

impl<'b> Rig<'b> {
    fn new(batch: &'b mut Batch) -> Rig<'b> {
        let mut switch = Switch::new();
        for (name, size, aging) in BRIDGES {
            switch
                .add_bridge(name.to_string(), aging, size)
                .expect("fixed config");
        }
        let mut links = Vec::new();
        for ((bridge, name), mode) in PORTS.into_iter().zip(MODES) {
            let (port, link) = LoopbackPort::linked(name);
            let policy = PortPolicy {
                vlan: vlan_mode(mode),
                ..Default::default()
            };
            switch
                .add_port_with_policy(bridge, name.to_string(), Box::new(port), policy, None)
                .expect("fixed config");
            links.push(link);
        }
        Rig {
            switch,
            links,
            batch,
            now: 0,
            model: Model::new(),
        }
    }

    fn counters(&self) -> Vec<PortCounters> {
        PORTS
            .iter()
            .map(|(_, name)| self.switch.port_counters(name).expect("port exists"))
            .collect()
    }

    fn advance_clock(&mut self) {
        self.now += 1;
        self.switch.tick(Duration::from_secs(self.now), self.batch);
        self.model.age(self.now);
        self.check_tables();
    }

    /// Receives `frames` on port `ingress`, runs the switch until it is
    /// idle, and checks everything that came out.
    fn burst(&mut self, ingress: usize, frames: &[Vec<u8>]) {
        let before = self.counters();
        for f in frames {
            self.links[ingress].inject(f);
        }
        // Each poll with frames waiting receives at least one, and a poll
        // that receives none leaves the queue empty (oversized frames are
        // dropped without taking a batch slot): this ends.
        for _ in 0..=frames.len() {
            if self
                .switch
                .poll_once(self.batch, Duration::from_secs(self.now))
                == 0
            {
                break;
            }
        }
        let sent: Vec<Vec<Vec<u8>>> = self.links.iter().map(LoopbackLink::take_sent).collect();
        let after = self.counters();
        check_invariants(ingress, frames.len(), &sent, &before, &after);

        let expected = self.model.receive(ingress, frames, self.now);
        for (port, (got, want)) in sent.iter().zip(&expected.sent).enumerate() {
            assert!(
                got == want,
                "port {} sent {} frames, the model {}:\n got {:02x?}\nwant {:02x?}",
                PORTS[port].1,
                got.len(),
                want.len(),
                got,
                want
            );
        }
        for (port, (b, a)) in before.iter().zip(&after).enumerate() {
            let name = PORTS[port].1;
            let rx = if port == ingress { expected.rx } else { 0 };
            assert_eq!(a.rx_packets - b.rx_packets, rx, "rx_packets of {name}");
            assert_eq!(
                a.tx_packets - b.tx_packets,
                expected.sent[port].len() as u64,
                "tx_packets of {name}"
            );
            for &reason in DropReason::ALL {
                let want = if port == ingress {
                    expected.drops.get(&reason).copied().unwrap_or(0)
                } else {
                    0
                };
                assert_eq!(
                    a.drops(reason) - b.drops(reason),
                    want,
                    "{} drops of {name}",
                    reason.name()
                );
            }
        }
        self.check_tables();
    }

    /// Both tables hold what the model holds, and no more than their size.
    fn check_tables(&self) {
        for (b, (name, size, _)) in BRIDGES.iter().enumerate() {
            let fdb = self.switch.fdb(name).expect("bridge exists");
            assert!(fdb.len() <= *size, "{name} holds {} > {size}", fdb.len());
            let mut got: Vec<_> = fdb
                .iter()
                .map(|(vlan, mac, e)| (vlan, mac, e.port as usize, e.last_seen))
                .collect();
            got.sort();
            let mut want: Vec<_> = self.model.bridges[b]
                .table
                .iter()
                .map(|(&(vlan, mac), &(port, seen))| (vlan, mac, port, seen))
                .collect();
            want.sort();
            assert_eq!(got, want, "table of {name}");
        }
    }
}

/// Checks what must hold whatever the switch decided: after a burst on
/// `ingress`, nothing left on `ingress` or on a port of another bridge, the
/// other ports counted no drops, and no more frames were dropped or sent
/// out of one port than came in.
fn check_invariants(
    ingress: usize,
    frames: usize,
    sent: &[Vec<Vec<u8>>],
    before: &[PortCounters],
    after: &[PortCounters],
) {
    let bridge = PORTS[ingress].0;
    for (port, out) in sent.iter().enumerate() {
        let name = PORTS[port].1;
        if port == ingress {
            assert!(
                out.is_empty(),
                "{} frames left on their ingress port {name}",
                out.len()
            );
        } else if PORTS[port].0 != bridge {
            assert!(
                out.is_empty(),
                "{} frames crossed from {bridge} to {name}",
                out.len()
            );
        }
        assert!(
            out.len() <= frames,
            "{name} sent {} of {frames} frames",
            out.len()
        );
        if port != ingress {
            assert_eq!(
                after[port].total_drops(),
                before[port].total_drops(),
                "drops counted on {name}, which received nothing"
            );
        }
    }
    let dropped = after[ingress].total_drops() - before[ingress].total_drops();
    assert!(
        dropped <= frames as u64,
        "{dropped} drops for {frames} frames"
    );
}

/// What a burst should have done, per the model.
struct Expected {
    /// Per port, the frames it should have sent, in order.
    sent: Vec<Vec<Vec<u8>>>,
    rx: u64,
    drops: HashMap<DropReason, u64>,
}

/// The model's reading of one frame: what the pipeline's input stage must
/// conclude from it on its ingress port.
struct Class {
    vlan: u16,
    /// PCP and DEI bits of the tag the frame came with.
    prio: u16,
    src: MacAddr,
    dst: MacAddr,
    /// The frame without its outer tag (as it travels inside the switch).
    untagged: Vec<u8>,
}

/// A second, naive implementation of the switch's behaviour, written from
/// the rules rather than from the code: classify, learn (per bridge, VLAN
/// and MAC, refusing new MACs when full), forward (flood group addresses
/// and unknown destinations to every other port of the bridge, drop what
/// goes back out of its ingress port), and egress. The rules that depend on
/// port configuration are `classify`, `flood_set` and `egress`: VLAN modes
/// go there (and in `PORTS`), with the check that a frame leaves only in the
/// VLAN it was classified into (`egress_vlan`).
struct Model {
    bridges: Vec<ModelBridge>,
}

struct ModelBridge {
    size: usize,
    aging: u64,
    /// (VLAN, MAC) -> (port, second last seen).
    table: HashMap<(u16, MacAddr), (usize, u64)>,
}

impl Model {
    fn new() -> Model {
        Model {
            bridges: BRIDGES
                .iter()
                .map(|&(_, size, aging)| ModelBridge {
                    size,
                    aging,
                    table: HashMap::new(),
                })
                .collect(),
        }
    }

    fn bridge_of(port: usize) -> usize {
        BRIDGES
            .iter()
            .position(|(name, _, _)| *name == PORTS[port].0)
            .expect("every port's bridge is in BRIDGES")
    }

    fn age(&mut self, now: u64) {
        for b in &mut self.bridges {
            let aging = b.aging;
            b.table.retain(|_, (_, seen)| now - *seen <= aging);
        }
    }

    /// Frames are handled in order, each one learned before the next is
    /// looked up, as the pipeline does within and across batches.
    fn receive(&mut self, ingress: usize, frames: &[Vec<u8>], now: u64) -> Expected {
        let mut out = Expected {
            sent: vec![Vec::new(); PORTS.len()],
            rx: 0,
            drops: HashMap::new(),
        };
        let mut drops = HashMap::new();
        let mut drop = |reason| *drops.entry(reason).or_insert(0) += 1;
        for frame in frames {
            if frame.len() > MAX_FRAME_LEN {
                drop(DropReason::RxTruncated);
                continue;
            }
            out.rx += 1;
            let class = match Self::classify(ingress, frame) {
                Ok(c) => c,
                Err(reason) => {
                    drop(reason);
                    continue;
                }
            };
            let bridge = &mut self.bridges[Self::bridge_of(ingress)];
            let key = (class.vlan, class.src);
            if let Some(entry) = bridge.table.get_mut(&key) {
                *entry = (ingress, now);
            } else if bridge.table.len() < bridge.size {
                bridge.table.insert(key, (ingress, now));
            }
            let known = if class.dst.is_multicast() {
                None
            } else {
                bridge.table.get(&(class.vlan, class.dst)).map(|e| e.0)
            };
            let targets = match known {
                Some(port) if port == ingress => {
                    drop(DropReason::SamePort);
                    continue;
                }
                Some(port) => vec![port],
                None => Self::flood_set(ingress, &class),
            };
            if targets.is_empty() {
                drop(DropReason::NoFloodPorts);
            }
            for port in targets {
                let egress = Self::egress(&class, port, frame);
                assert_eq!(
                    Self::egress_vlan(port, &egress),
                    class.vlan,
                    "the model sends a frame out of {} in another VLAN",
                    PORTS[port].1
                );
                out.sent[port].push(egress);
            }
        }
        out.drops = drops;
        out
    }

    /// The VLAN and addresses of a frame received on `port`, or why the
    /// input stage drops it, from the rules of docs/vlans.md: an access
    /// port takes untagged (or priority-tagged) frames into its VLAN; a
    /// trunk takes its listed tags and puts untagged frames in its native
    /// VLAN if it has one; the default mode takes every tag up to 4094 and
    /// puts untagged frames in network 0. Inside a VLAN (not network 0) a
    /// second tag under the classifying one is refused.
    fn classify(port: usize, frame: &[u8]) -> Result<Class, DropReason> {
        let tagged = frame.len() >= 14 && frame[12..14] == [0x81, 0x00];
        if frame.len() < 14 || (tagged && frame.len() < 18) {
            return Err(DropReason::Runt);
        }
        let mac = |at: usize| MacAddr(frame[at..at + 6].try_into().expect("six bytes"));
        let (dst, src) = (mac(0), mac(6));
        if src.0[0] & 1 == 1 || src == MacAddr::ZERO {
            return Err(DropReason::InvalidSourceMac);
        }
        // IEEE 802.1D link-local group addresses are never forwarded.
        if dst.0[..5] == [0x01, 0x80, 0xc2, 0, 0] && dst.0[5] < 0x10 {
            return Err(DropReason::ReservedMulticast);
        }
        let (vid, prio) = if tagged {
            let tci = u16::from_be_bytes([frame[14], frame[15]]);
            (tci & 0x0fff, tci & 0xf000)
        } else {
            (0, 0)
        };
        let vlan = match (MODES[port], vid) {
            (ModelMode::Access(n), 0) => n,
            (ModelMode::Access(_), _) => return Err(DropReason::VlanTaggedOnAccess),
            (ModelMode::Trunk(_, Some(native)), 0) => native,
            (ModelMode::Trunk(_, None), 0) => return Err(DropReason::VlanUntaggedOnTrunk),
            (ModelMode::Trunk(list, native), v) => {
                if list.contains(&v) || native == Some(v) {
                    v
                } else {
                    return Err(DropReason::VlanNotAllowed);
                }
            }
            (ModelMode::Default, v) if v <= 4094 => v,
            (ModelMode::Default, _) => return Err(DropReason::VlanNotAllowed),
        };
        let untagged: Vec<u8> = if tagged {
            [&frame[..12], &frame[16..]].concat()
        } else {
            frame.to_vec()
        };
        let inner = [untagged[12], untagged[13]];
        if vlan != 0 && [[0x81, 0x00], [0x88, 0xa8], [0x91, 0x00]].contains(&inner) {
            return Err(DropReason::VlanDoubleTagged);
        }
        Ok(Class {
            vlan,
            prio,
            src,
            dst,
            untagged,
        })
    }

    /// Whether `port` carries `vlan`, and tagged (`Some(true)`) or
    /// untagged (`Some(false)`).
    fn carries(port: usize, vlan: u16) -> Option<bool> {
        match MODES[port] {
            ModelMode::Access(n) => (n == vlan).then_some(false),
            ModelMode::Trunk(_, Some(native)) if native == vlan => Some(false),
            ModelMode::Trunk(list, _) => list.contains(&vlan).then_some(true),
            ModelMode::Default => Some(vlan != 0),
        }
    }

    /// The ports a flooded frame goes to: every other port of the bridge
    /// that carries its VLAN.
    fn flood_set(ingress: usize, class: &Class) -> Vec<usize> {
        (0..PORTS.len())
            .filter(|&p| p != ingress && PORTS[p].0 == PORTS[ingress].0)
            .filter(|&p| Self::carries(p, class.vlan).is_some())
            .collect()
    }

    /// The frame `port` sends: untagged, or tagged with the frame's VLAN
    /// and the priority bits it came with.
    fn egress(class: &Class, port: usize, _frame: &[u8]) -> Vec<u8> {
        match Self::carries(port, class.vlan) {
            Some(true) => {
                let tci = (class.prio | class.vlan).to_be_bytes();
                let u = &class.untagged;
                [&u[..12], &[0x81, 0x00, tci[0], tci[1]][..], &u[12..]].concat()
            }
            _ => class.untagged.clone(),
        }
    }

    /// The VLAN a frame sent out of `port` is in, as the next hop (a port
    /// in the same mode) reads it.
    fn egress_vlan(port: usize, frame: &[u8]) -> u16 {
        Self::classify(port, frame).map_or(u16::MAX, |c| c.vlan)
    }
}

/// A VTEP's underlay input: arbitrary frames offered to a VXLAN port as its
/// underlay would (ARP for its address, VXLAN to it, anything else), then
/// whatever it decapsulated received and encapsulated back.
///
/// Input: records `[len][len bytes]`, each one frame. The first record's
/// frames are sent as they are; the port also gets a valid ARP reply for
/// its remote first so that its transmit path runs too.
///
/// Checks: nothing panics; the VTEP takes only frames addressed to it (its
/// MAC and address, or ARP); a frame it decapsulates enters in the VLAN of
/// its VNI and at most the frame's size plus a tag; every frame it takes is
/// either received or counted in exactly one drop reason; what it sends to
/// the underlay is well-formed IPv4/UDP/VXLAN or ARP from its own MAC.
pub fn vxlan(data: &[u8]) {
    use crate::port::vxlan::{VxlanConfig, VxlanPort};
    use crate::port::{Port, Tunnel};
    use crate::wire::arp::{ArpOp, ArpRepr};
    use crate::wire::ipv4::{Ipv4Header, UdpHeader};
    use std::net::Ipv4Addr;

    let local = Ipv4Addr::new(10, 79, 0, 2);
    let remote = Ipv4Addr::new(10, 79, 0, 1);
    let cfg = VxlanConfig {
        local,
        prefix_len: 24,
        gateway: None,
        remotes: vec![remote],
        vnis: vec![(42, 0), (100, 10)],
        dst_port: crate::wire::vxlan::DEFAULT_PORT,
        underlay: "up".into(),
        mac: VxlanConfig::default_mac(local),
        underlay_mtu: 1500,
    };
    let vtep_mac = cfg.mac;
    let mut port = VxlanPort::new("vx", cfg);
    let mut counters = PortCounters::default();
    let now = Duration::from_secs(1);
    // Resolve the remote so that encapsulation runs.
    let remote_mac = MacAddr([2, 0, 0, 0, 0, 1]);
    let mut arp = [0u8; 28];
    ArpRepr {
        op: ArpOp::Reply,
        sender_mac: remote_mac,
        sender_ip: remote,
        target_mac: vtep_mac,
        target_ip: local,
    }
    .emit(&mut arp);
    port.tick(now, &mut counters);
    let reply = crate::wire::ethernet::build_frame(vtep_mac, remote_mac, 0x0806, &arp);
    assert!(
        port.offer(&reply, now, &mut counters),
        "an ARP reply to the VTEP is its own"
    );
    port.outbound().clear();

    let mut batch = Batch::new();
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        let (frame, next) = tail.split_at(len);
        rest = next;
        let drops_before = counters.total_drops();
        let to_us = frame.len() >= 14 && frame[..6] == vtep_mac.0;
        let taken = port.offer(frame, now, &mut counters);
        let is_arp = frame.len() >= 14 && frame[12..14] == [0x08, 0x06];
        assert!(
            !taken || to_us || is_arp,
            "the VTEP took a frame not sent to it"
        );
        batch.clear();
        let got = port.rx_burst(&mut batch, &mut counters);
        let dropped = counters.total_drops() - drops_before;
        if taken && !is_arp {
            assert_eq!(
                got as u64 + dropped,
                1,
                "a frame taken is received or dropped, once"
            );
        } else {
            assert_eq!((got, dropped), (0, 0), "a frame not taken had effects");
        }
        for buf in batch.iter() {
            let inner = buf.frame();
            assert!(
                inner.len() + 50 <= frame.len() + 4,
                "decapsulated frame grew"
            );
            let eth = EthernetFrame::new_checked(inner).expect("decapsulated frames parse");
            // VNI 100 enters tagged 10; VNI 42 untagged.
            let vid = eth.vlan_tci().map_or(0, |t| t.vid());
            assert!(vid == 0 || vid == 10, "entered in VLAN {vid}");
        }
        // Send the decapsulated frames back: they must encapsulate cleanly.
        let frames: Vec<&[u8]> = batch.iter().map(|b| b.frame()).collect();
        port.tx_burst(&frames, &mut counters);
        for out in port.outbound().iter() {
            let f = out.frame();
            assert_eq!(&f[6..12], &vtep_mac.0, "sent from another MAC");
            match [f[12], f[13]] {
                [0x08, 0x06] => assert!(ArpRepr::parse(&f[14..]).is_some()),
                [0x08, 0x00] => {
                    let ip = Ipv4Header::parse(&f[14..]).expect("emitted IPv4 parses");
                    assert_eq!((ip.src, ip.dst), (local, remote));
                    let udp = UdpHeader::parse(&f[34..]).expect("emitted UDP parses");
                    assert_eq!(udp.dst_port, 4789);
                    assert!(crate::wire::vxlan::parse(&f[42..]).is_ok());
                }
                other => panic!("the VTEP sent EtherType {other:02x?}"),
            }
        }
        port.outbound().clear();
    }
}

/// LACPDUs and marker PDUs: what parses emits to bytes that parse to the
/// same PDU; and fed to a two-member LACP machine with the clock moving,
/// a PDU that does not parse changes nothing but its counter, and the
/// machine never distributes on a member that does not collect.
///
/// Input: records `[op][len][len bytes]`: bit 0 of `op` is the member,
/// bits 1-3 advance the clock by that many half-seconds first, bit 4 flaps
/// that member's link.
pub fn lacp(data: &[u8]) {
    use crate::lacp::{Config, Lacp, Rate};
    use crate::wire::lacp::Pdu;

    if let Ok(pdu) = Pdu::parse(data) {
        let mut out = [0u8; 128];
        let n = pdu.emit(&mut out);
        assert!(n > 0);
        assert_eq!(
            Pdu::parse(&out[..n]),
            Ok(pdu),
            "emit then parse changed the PDU"
        );
    }

    let cfg = Config {
        system_priority: 65535,
        system: MacAddr([2, 0, 0, 0, 0, 0x10]),
        key: 1,
        port_priority: 255,
        rate: Rate::Fast,
        fallback: data.first().is_some_and(|b| b & 0x80 != 0),
        primary: None,
    };
    let mut lacp = Lacp::new(cfg, 2);
    let mut now = Duration::ZERO;
    lacp.link_changed(0, true, now);
    lacp.link_changed(1, true, now);
    let mut rest = data;
    while rest.len() >= 2 {
        let (op, len) = (rest[0], usize::from(rest[1]).min(rest.len() - 2));
        let pdu = &rest[2..2 + len];
        rest = &rest[2 + len..];
        let m = usize::from(op & 1);
        now += Duration::from_millis(500 * u64::from((op >> 1) & 0x7));
        lacp.handle_timer(now);
        if op & 0x10 != 0 {
            let up = !lacp.members()[m].link_up();
            lacp.link_changed(m, up, now);
        }
        let before = format!("{:?}", lacp.members());
        let bad_before = lacp.members()[m].counters.bad_in;
        lacp.handle_pdu(m, pdu, now);
        if Pdu::parse(pdu).is_err() {
            assert_eq!(lacp.members()[m].counters.bad_in, bad_before + 1);
            let mut after_members = lacp.members().to_vec();
            after_members[m].counters.bad_in = bad_before;
            assert_eq!(
                format!("{after_members:?}"),
                before,
                "a bad PDU changed the state"
            );
        }
        for i in 0..2 {
            assert!(
                !lacp.distributing(i) || lacp.collecting(i),
                "member {i} distributes without collecting"
            );
        }
    }
}
