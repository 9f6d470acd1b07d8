//! Which datapath worker runs which bridge: the control side's map, used to
//! route commands and decided here without any I/O.
//!
//! A bridge and all its ports run on one worker, so the per-frame path
//! never crosses threads. A new bridge goes to the worker with the fewest
//! bridges. Bridges joined by a tunnel (a VXLAN port on one bridge whose
//! underlay port is on another) must share a worker, since the underlay
//! hands the tunnel its frames within one pass of the loop: when a tunnel
//! and its underlay would end up on different workers, the tunnel's bridge,
//! with every bridge already joined to it, moves to the underlay's worker.

use std::collections::{BTreeSet, HashMap};

#[derive(Debug, Clone)]
pub struct Placement {
    workers: usize,
    /// Bridge name -> worker.
    bridges: HashMap<String, usize>,
    /// Port name -> its bridge's name.
    ports: HashMap<String, String>,
    /// Tunnel port name -> its underlay port's name (which may not exist).
    underlays: HashMap<String, String>,
    /// Bridges on every worker (`workers=all`) -> their bridge index, the
    /// same in every worker's replica. Recorded on worker 0 in `bridges`.
    spread: HashMap<String, usize>,
    /// Ports of such bridges -> their port index.
    spread_ports: HashMap<String, usize>,
}

/// Bridges to move, all from one worker to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub bridges: Vec<String>,
    pub from: usize,
    pub to: usize,
}

impl Placement {
    pub fn new(workers: usize) -> Placement {
        Placement {
            workers: workers.max(1),
            bridges: HashMap::new(),
            ports: HashMap::new(),
            underlays: HashMap::new(),
            spread: HashMap::new(),
            spread_ports: HashMap::new(),
        }
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The worker a new bridge goes to: the one with the fewest bridges
    /// (the lowest index among equals).
    pub fn pick_worker(&self) -> usize {
        let mut count = vec![0usize; self.workers];
        for (b, &w) in &self.bridges {
            if !self.spread.contains_key(b) {
                count[w] += 1;
            }
        }
        (0..self.workers).min_by_key(|&w| count[w]).unwrap_or(0)
    }

    pub fn bridge_worker(&self, bridge: &str) -> Option<usize> {
        self.bridges.get(bridge).copied()
    }

    pub fn port_bridge(&self, port: &str) -> Option<&str> {
        self.ports.get(port).map(String::as_str)
    }

    pub fn port_worker(&self, port: &str) -> Option<usize> {
        self.bridge_worker(self.port_bridge(port)?)
    }

    pub fn add_bridge(&mut self, bridge: &str, worker: usize) {
        self.bridges.insert(bridge.to_string(), worker);
    }

    /// Records a bridge that runs on every worker, at bridge index `slot`.
    pub fn add_spread_bridge(&mut self, bridge: &str, slot: usize) {
        self.bridges.insert(bridge.to_string(), 0);
        self.spread.insert(bridge.to_string(), slot);
    }

    /// The bridge index of a bridge on every worker; None for others.
    pub fn spread_slot(&self, bridge: &str) -> Option<usize> {
        self.spread.get(bridge).copied()
    }

    /// The port index of a port of a bridge on every worker.
    pub fn spread_port_slot(&self, port: &str) -> Option<usize> {
        self.spread_ports.get(port).copied()
    }

    /// Records a port of a bridge on every worker, at port index `slot`.
    pub fn add_spread_port(&mut self, port: &str, bridge: &str, slot: usize) {
        self.add_port(port, bridge, None);
        self.spread_ports.insert(port.to_string(), slot);
    }

    /// Whether a tunnel names `port` as its underlay.
    pub fn is_underlay(&self, port: &str) -> bool {
        self.underlays.values().any(|u| u == port)
    }

    /// The port indices of a bridge on every worker's ports.
    pub fn spread_port_slots(&self, bridge: &str) -> Vec<usize> {
        self.ports
            .iter()
            .filter(|(_, b)| *b == bridge)
            .filter_map(|(p, _)| self.spread_port_slot(p))
            .collect()
    }

    /// Forgets a bridge and its ports.
    pub fn remove_bridge(&mut self, bridge: &str) {
        self.bridges.remove(bridge);
        self.spread.remove(bridge);
        let gone: Vec<String> = self
            .ports
            .iter()
            .filter(|(_, b)| *b == bridge)
            .map(|(p, _)| p.clone())
            .collect();
        for p in gone {
            self.remove_port(&p);
        }
    }

    /// Records a port; `underlay` for a tunnel port.
    pub fn add_port(&mut self, port: &str, bridge: &str, underlay: Option<&str>) {
        self.ports.insert(port.to_string(), bridge.to_string());
        if let Some(u) = underlay {
            self.underlays.insert(port.to_string(), u.to_string());
        }
    }

    pub fn remove_port(&mut self, port: &str) {
        self.ports.remove(port);
        self.underlays.remove(port);
        self.spread_ports.remove(port);
    }

    pub fn set_worker(&mut self, bridge: &str, worker: usize) {
        if let Some(w) = self.bridges.get_mut(bridge) {
            *w = worker;
        }
    }

    /// The bridges joined to `bridge` by tunnels whose both ends exist,
    /// `bridge` included, sorted.
    pub fn joined(&self, bridge: &str) -> Vec<String> {
        let mut seen = BTreeSet::from([bridge.to_string()]);
        let mut todo = vec![bridge.to_string()];
        while let Some(b) = todo.pop() {
            for (tunnel, underlay) in &self.underlays {
                let (Some(tb), Some(ub)) = (self.ports.get(tunnel), self.ports.get(underlay))
                else {
                    continue;
                };
                let other = if *tb == b {
                    ub
                } else if *ub == b {
                    tb
                } else {
                    continue;
                };
                if seen.insert(other.clone()) {
                    todo.push(other.clone());
                }
            }
        }
        seen.into_iter().collect()
    }

    /// What must move for `bridge` to run on worker `to`: it and every
    /// bridge joined to it. None if it runs there already (or is unknown).
    pub fn move_to(&self, bridge: &str, to: usize) -> Option<Move> {
        if self.spread.contains_key(bridge) {
            return None;
        }
        let from = self.bridge_worker(bridge)?;
        (from != to && to < self.workers).then(|| Move {
            bridges: self.joined(bridge),
            from,
            to,
        })
    }

    /// What must move before tunnel port `tunnel` joins `bridge` with its
    /// underlay `underlay`: the tunnel's bridge, and every bridge joined to
    /// it, to the underlay's worker. None if they share one already, or
    /// the underlay does not exist (yet).
    pub fn move_for_tunnel(&self, bridge: &str, underlay: &str) -> Option<Move> {
        let from = self.bridge_worker(bridge)?;
        let to = self.port_worker(underlay)?;
        (from != to).then(|| Move {
            bridges: self.joined(bridge),
            from,
            to,
        })
    }

    /// What must move now that port `port` exists on `bridge`: every
    /// tunnel that names it as underlay and runs elsewhere brings its
    /// bridge (and what is joined to that) to `bridge`'s worker.
    pub fn moves_for_underlay(&self, port: &str, bridge: &str) -> Vec<Move> {
        let Some(to) = self.bridge_worker(bridge) else {
            return Vec::new();
        };
        let mut moves: Vec<Move> = Vec::new();
        let mut tunnels: Vec<&String> = self
            .underlays
            .iter()
            .filter(|(_, u)| *u == port)
            .map(|(t, _)| t)
            .collect();
        tunnels.sort();
        for t in tunnels {
            let Some(tb) = self.ports.get(t) else {
                continue;
            };
            let Some(from) = self.bridge_worker(tb) else {
                continue;
            };
            if from == to || moves.iter().any(|m| m.bridges.contains(tb)) {
                continue;
            }
            // `joined` would already follow the new port to `bridge`; the
            // bridges to move are those on the tunnel's side.
            let bridges = self
                .joined(tb)
                .into_iter()
                .filter(|b| self.bridge_worker(b) == Some(from))
                .collect();
            moves.push(Move { bridges, from, to });
        }
        moves
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_workers() -> Placement {
        let mut p = Placement::new(2);
        p.add_bridge("underlay", 0);
        p.add_bridge("guests", 1);
        p.add_port("up0", "underlay", None);
        p.add_port("tap0", "guests", None);
        p
    }

    #[test]
    fn new_bridges_go_to_the_least_loaded_worker() {
        let mut p = Placement::new(3);
        for (name, want) in [("a", 0), ("b", 1), ("c", 2), ("d", 0)] {
            let w = p.pick_worker();
            assert_eq!(w, want, "{name}");
            p.add_bridge(name, w);
        }
        p.remove_bridge("b");
        assert_eq!(p.pick_worker(), 1, "a freed worker is filled first");
        assert_eq!(Placement::new(0).pick_worker(), 0, "at least one worker");
    }

    #[test]
    fn an_operator_moves_a_bridge_with_what_is_joined_to_it() {
        let mut p = two_workers();
        assert_eq!(
            p.move_to("guests", 0),
            Some(Move {
                bridges: vec!["guests".into()],
                from: 1,
                to: 0
            })
        );
        assert_eq!(p.move_to("guests", 1), None, "already there");
        assert_eq!(p.move_to("guests", 2), None, "no worker 2");
        assert_eq!(p.move_to("nope", 0), None);
        p.add_port("vx0", "guests", Some("up0"));
        p.set_worker("guests", 0);
        let m = p.move_to("underlay", 1).unwrap();
        assert_eq!(m.bridges, vec!["guests", "underlay"]);
    }

    #[test]
    fn a_tunnel_brings_its_bridge_to_the_underlay() {
        let p = two_workers();
        assert_eq!(
            p.move_for_tunnel("guests", "up0"),
            Some(Move {
                bridges: vec!["guests".into()],
                from: 1,
                to: 0
            })
        );
        assert_eq!(p.move_for_tunnel("guests", "nope"), None, "no underlay yet");
        assert_eq!(p.move_for_tunnel("underlay", "up0"), None, "same worker");
    }

    #[test]
    fn bridges_joined_to_the_tunnels_bridge_move_with_it() {
        let mut p = two_workers();
        // guests is itself the underlay of a tunnel on "inner" (worker 1).
        p.add_bridge("inner", 1);
        p.add_port("vx-inner", "inner", Some("tap0"));
        assert_eq!(p.joined("guests"), vec!["guests", "inner"]);
        let m = p.move_for_tunnel("guests", "up0").unwrap();
        assert_eq!(m.bridges, vec!["guests", "inner"]);
        assert_eq!((m.from, m.to), (1, 0));
    }

    #[test]
    fn a_chain_of_tunnels_moves_as_one() {
        // c's tunnel rides a port of b, b's tunnel rides a port of a.
        let mut p = Placement::new(3);
        for (b, w) in [("a", 0), ("b", 0), ("c", 0), ("d", 1)] {
            p.add_bridge(b, w);
        }
        p.add_port("a0", "a", None);
        p.add_port("b0", "b", None);
        p.add_port("vb", "b", Some("a0"));
        p.add_port("vc", "c", Some("b0"));
        assert_eq!(p.joined("c"), vec!["a", "b", "c"]);
        let m = p.move_to("a", 2).unwrap();
        assert_eq!(m.bridges, vec!["a", "b", "c"]);
        // d joins the chain through a tunnel over c's... port c0 once it exists.
        p.add_port("vd", "d", Some("c0"));
        p.add_port("c0", "c", None);
        assert_eq!(
            p.joined("a"),
            vec!["a", "b", "c", "d"],
            "three tunnels deep"
        );
        let moves = p.moves_for_underlay("c0", "c");
        assert_eq!(
            moves,
            vec![Move {
                bridges: vec!["d".into()],
                from: 1,
                to: 0
            }]
        );
    }

    #[test]
    fn an_underlay_added_after_its_tunnel_pulls_the_tunnel_over() {
        let mut p = Placement::new(2);
        p.add_bridge("underlay", 0);
        p.add_bridge("guests", 1);
        p.add_port("vx0", "guests", Some("up0"));
        assert!(p.joined("guests") == vec!["guests"], "no underlay, no join");
        p.add_port("up0", "underlay", None);
        assert_eq!(
            p.moves_for_underlay("up0", "underlay"),
            vec![Move {
                bridges: vec!["guests".into()],
                from: 1,
                to: 0
            }]
        );
        p.set_worker("guests", 0);
        assert!(p.moves_for_underlay("up0", "underlay").is_empty());
    }

    /// One step of the property test, as the commander takes it.
    #[derive(Debug, Clone)]
    enum Op {
        AddBridge(u8, Option<u8>),
        DelBridge(u8),
        AddPort(u8, u8),
        /// A tunnel port on a bridge, over an underlay port (which may not exist).
        AddTunnel(u8, u8, u8),
        DelPort(u8),
        SetWorker(u8, u8),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0..6u8, proptest::option::of(0..4u8)).prop_map(|(b, w)| Op::AddBridge(b, w)),
            (0..6u8).prop_map(Op::DelBridge),
            (0..6u8, 0..12u8).prop_map(|(b, p)| Op::AddPort(b, p)),
            (0..6u8, 0..12u8, 0..12u8).prop_map(|(b, t, u)| Op::AddTunnel(b, t, u)),
            (0..12u8).prop_map(Op::DelPort),
            (0..6u8, 0..4u8).prop_map(|(b, w)| Op::SetWorker(b, w)),
        ]
    }

    /// Applies a move as the workers would: every bridge named was on
    /// `from` and is on `to` afterwards.
    fn apply(p: &mut Placement, m: &Move) {
        for b in &m.bridges {
            assert_eq!(
                p.bridge_worker(b),
                Some(m.from),
                "{b} moves from where it runs: {m:?}"
            );
            p.set_worker(b, m.to);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]
        /// Whatever the operators and the configuration do, a tunnel whose underlay exists
        /// runs on its underlay's worker, and every move takes bridges from where they run.
        #[test]
        fn joined_bridges_always_share_a_worker(
            workers in 1..4usize,
            ops in proptest::collection::vec(op(), 1..60),
        ) {
            let mut p = Placement::new(workers);
            let bridge = |b: u8| format!("b{b}");
            let port = |x: u8| format!("p{x}");
            for op in ops {
                match op {
                    Op::AddBridge(b, w) => {
                        if p.bridge_worker(&bridge(b)).is_none() {
                            let w = w.map(usize::from).filter(|w| *w < workers);
                            p.add_bridge(&bridge(b), w.unwrap_or_else(|| p.pick_worker()));
                        }
                    }
                    Op::DelBridge(b) => p.remove_bridge(&bridge(b)),
                    Op::AddPort(b, x) => {
                        if p.bridge_worker(&bridge(b)).is_some() && p.port_bridge(&port(x)).is_none() {
                            p.add_port(&port(x), &bridge(b), None);
                            for m in p.moves_for_underlay(&port(x), &bridge(b)) {
                                apply(&mut p, &m);
                            }
                        }
                    }
                    Op::AddTunnel(b, t, u) => {
                        let (b, t, u) = (bridge(b), port(t), port(u));
                        if p.bridge_worker(&b).is_some() && p.port_bridge(&t).is_none() && t != u {
                            if let Some(m) = p.move_for_tunnel(&b, &u) {
                                apply(&mut p, &m);
                            }
                            p.add_port(&t, &b, Some(&u));
                            for m in p.moves_for_underlay(&t, &b) {
                                apply(&mut p, &m);
                            }
                        }
                    }
                    Op::DelPort(x) => p.remove_port(&port(x)),
                    Op::SetWorker(b, w) => {
                        if let Some(m) = p.move_to(&bridge(b), usize::from(w)) {
                            apply(&mut p, &m);
                        }
                    }
                }
                for (tunnel, underlay) in &p.underlays {
                    let (Some(tb), Some(ub)) = (p.ports.get(tunnel), p.ports.get(underlay)) else {
                        continue;
                    };
                    proptest::prop_assert_eq!(
                        p.bridge_worker(tb),
                        p.bridge_worker(ub),
                        "tunnel {} on {} and its underlay {} on {}",
                        tunnel, tb, underlay, ub
                    );
                }
                for w in p.bridges.values() {
                    proptest::prop_assert!(*w < workers);
                }
            }
        }
    }

    #[test]
    fn forgetting_a_bridge_forgets_its_ports_and_tunnels() {
        let mut p = two_workers();
        p.add_port("vx0", "guests", Some("up0"));
        p.remove_bridge("guests");
        assert_eq!(p.port_worker("vx0"), None);
        assert_eq!(p.port_worker("tap0"), None);
        assert_eq!(p.joined("underlay"), vec!["underlay"]);
        assert_eq!(p.port_worker("up0"), Some(0));
        p.remove_port("up0");
        assert_eq!(p.port_bridge("up0"), None);
    }

    #[test]
    fn a_bridge_on_every_worker_never_moves_nor_weighs_on_one() {
        let mut p = Placement::new(2);
        p.add_spread_bridge("all", 3);
        p.add_spread_port("a", "all", 5);
        p.add_spread_port("b", "all", 6);
        assert_eq!(p.pick_worker(), 0, "not counted on worker 0");
        p.add_bridge("one", 0);
        assert_eq!(p.pick_worker(), 1);
        assert_eq!(p.move_to("all", 1), None);
        assert_eq!(
            (p.spread_slot("all"), p.spread_port_slot("b")),
            (Some(3), Some(6))
        );
        let mut slots = p.spread_port_slots("all");
        slots.sort();
        assert_eq!(slots, vec![5, 6]);
        p.add_port("vx", "one", Some("a"));
        assert!(p.is_underlay("a") && !p.is_underlay("b"));
        p.remove_bridge("all");
        assert_eq!(
            (p.spread_slot("all"), p.spread_port_slot("a")),
            (None, None)
        );
    }
}
