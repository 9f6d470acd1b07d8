//! The `pipeline` target: the whole datapath fed from loopback ports and
//! checked, burst by burst, against a model written from the rules.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use crate::datapath::Switch;
use crate::packet::{Batch, MAX_FRAME_LEN};
use crate::pipeline::admit::PortPolicy;
use crate::pipeline::counters::{DropReason, PortCounters};
use crate::pipeline::vlan::{VlanMode, VlanSet};
use crate::port::loopback::{LoopbackLink, LoopbackPort};
use crate::wire::MacAddr;

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
