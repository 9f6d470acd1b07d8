//! A bridge that runs on every worker (`bridge add NAME workers=all`):
//! each worker holds a replica of it with the same bridge and port indices
//! and its own share of each port's receive queues, so one bridge's
//! traffic is forwarded on every core. The replicas tell each other what
//! they learn (`fdb::replica`) over channels drained at each pass of the
//! loop and before each command.
//!
//! News is never a reason to wake a sleeping worker: one that sleeps has
//! no traffic to forward, and it reads its news at its next pass (within a
//! `TICK`), before anything else. Until then it floods frames to MACs it
//! has not heard of, which delivers them.

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::Switch;
use crate::fdb::replica::SharedMac;

/// Batches of news a worker may have waiting before the senders drop more
/// (counted as the bridge's unshared MACs; a worker stuck for that long
/// floods frames to MACs it missed, and no state is lost).
const INBOX_DEPTH: usize = 256;

/// MACs one replica of bridge `bridge` learned, for the others.
#[derive(Debug)]
pub struct ReplicaNews {
    pub bridge: usize,
    pub macs: Vec<SharedMac>,
}

/// One worker's ends of the news channels.
pub struct ReplicaLinks {
    inbox: Receiver<ReplicaNews>,
    peers: Vec<Sender<ReplicaNews>>,
    /// Worker 0: the one whose replica reports a shared port's link and
    /// status changes, so monitors see each once.
    first: bool,
}

impl ReplicaLinks {
    /// The links of `workers` workers: each its inbox and a sender to each
    /// of the others.
    pub fn mesh(workers: usize) -> Vec<ReplicaLinks> {
        let channels: Vec<_> = (0..workers)
            .map(|_| crossbeam_channel::bounded(INBOX_DEPTH))
            .collect();
        (0..workers)
            .map(|me| ReplicaLinks {
                inbox: channels[me].1.clone(),
                peers: (0..workers)
                    .filter(|w| *w != me)
                    .map(|w| channels[w].0.clone())
                    .collect(),
                first: me == 0,
            })
            .collect()
    }
}

impl Switch {
    /// Joins this worker to the others' replicas of bridges on every worker.
    pub fn set_replica_links(&mut self, links: ReplicaLinks) {
        self.replica_links = Some(links);
    }

    /// Applies the news of other replicas. A MAC behind a port this replica
    /// no longer has (deleted meanwhile) is skipped.
    pub(super) fn apply_replica_news(&mut self) {
        let Some(links) = self.replica_links.as_ref() else {
            return;
        };
        while let Ok(news) = links.inbox.try_recv() {
            let Some(Some(bridge)) = self.bridges.get_mut(news.bridge) else {
                continue;
            };
            if !bridge.fdb.shares_learning() {
                continue;
            }
            for m in &news.macs {
                let member = matches!(
                    self.ports.get(m.port as usize),
                    Some(Some(slot)) if slot.bridge == news.bridge
                );
                if member {
                    bridge.fdb.apply_shared(m);
                }
            }
        }
    }

    /// Sends what this worker's replicas learned to the others.
    pub(super) fn send_replica_news(&mut self) {
        let Some(links) = self.replica_links.as_ref() else {
            return;
        };
        for (i, bridge) in self.bridges.iter_mut().enumerate() {
            let Some(bridge) = bridge.as_mut().filter(|b| b.fdb.has_shared()) else {
                continue;
            };
            let mut news = Some(bridge.fdb.take_shared());
            let last = links.peers.len().saturating_sub(1);
            for (n, peer) in links.peers.iter().enumerate() {
                let macs = if n == last {
                    news.take().unwrap_or_default()
                } else {
                    news.clone().unwrap_or_default()
                };
                match peer.try_send(ReplicaNews { bridge: i, macs }) {
                    Ok(()) => {}
                    Err(TrySendError::Full(n)) | Err(TrySendError::Disconnected(n)) => {
                        bridge.fdb.count_unshared(n.macs.len() as u64);
                    }
                }
            }
        }
    }

    /// Whether this worker reports the link and status changes of the
    /// ports of bridge `b`: every worker for its own bridges, worker 0
    /// alone for the shards of a bridge on every worker.
    pub(super) fn reports_port_changes(&self, b: usize) -> bool {
        !self.is_replica(b) || self.replica_links.as_ref().is_none_or(|l| l.first)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::datapath::slots::SlotIds;
    use crate::packet::Batch;
    use crate::pipeline::admit::PortPolicy;
    use crate::port::loopback::{LoopbackLink, LoopbackPort};
    use crate::wire::ethernet::build_frame;
    use crate::wire::MacAddr;

    fn mac(n: u8) -> MacAddr {
        MacAddr([0x02, 0, 0, 0, 0, n])
    }

    /// Two workers' replicas of bridge "spread" (index 0) with ports "a"
    /// (index 0) and "b" (index 1), each worker with its own loopback shard.
    fn two_replicas() -> (Switch, Switch, Vec<LoopbackLink>) {
        let ids = SlotIds::default();
        let mut links = ReplicaLinks::mesh(2).into_iter();
        let mut workers = [Switch::with_ids(ids.clone()), Switch::with_ids(ids)];
        let mut shards = Vec::new();
        for sw in workers.iter_mut() {
            sw.set_replica_links(links.next().unwrap());
            sw.add_bridge_at("spread".into(), 300, 1024, Some(0))
                .unwrap();
            for (i, name) in ["a", "b"].iter().enumerate() {
                let (port, link) = LoopbackPort::linked(name);
                shards.push(link);
                sw.add_port_at(
                    "spread",
                    name.to_string(),
                    Box::new(port),
                    PortPolicy::default(),
                    None,
                    Some(i),
                )
                .unwrap();
            }
        }
        let [w0, w1] = workers;
        (w0, w1, shards)
    }

    #[test]
    fn what_one_replica_learns_the_other_forwards_by() {
        let (mut w0, mut w1, shards) = two_replicas();
        let (a0, b0, a1) = (&shards[0], &shards[1], &shards[2]);
        let b1 = &shards[3];
        let mut batch = Batch::new();
        let now = Duration::from_secs(1);
        // Worker 0 hears mac(1) on port a: it floods to b and learns.
        a0.inject(&build_frame(mac(9), mac(1), 0x0800, &[0; 46]));
        w0.poll_once(&mut batch, now);
        assert_eq!(b0.take_sent().len(), 1);
        // Worker 1 gets a frame for mac(1) on port b: it knows where it is
        // without having seen it, and sends it to a only.
        b1.inject(&build_frame(mac(1), mac(2), 0x0800, &[0; 46]));
        w1.poll_once(&mut batch, now);
        assert_eq!(a1.take_sent().len(), 1);
        assert_eq!(w1.fdb("spread").unwrap().lookup(0, mac(1)), Some(0));
        // And worker 0 learns mac(2) from worker 1 in turn.
        w0.poll_once(&mut batch, now);
        assert_eq!(w0.fdb("spread").unwrap().lookup(0, mac(2)), Some(1));
        for w in [&w0, &w1] {
            assert_eq!(w.fdb("spread").unwrap().shared_dropped(), 0);
        }
    }

    #[test]
    fn a_full_inbox_counts_the_macs_it_could_not_take() {
        // Worker 1 never runs a pass: its inbox fills with one batch per pass of worker 0.
        let (mut w0, _w1, shards) = two_replicas();
        let mut batch = Batch::new();
        for i in 0..INBOX_DEPTH as u64 + 3 {
            let src = MacAddr::from_u64(0x0200_0000_1000 + i);
            shards[0].inject(&build_frame(mac(9), src, 0x0800, &[0; 46]));
            w0.poll_once(&mut batch, Duration::from_secs(1));
        }
        let fdb = w0.fdb("spread").unwrap();
        assert_eq!(fdb.len(), INBOX_DEPTH + 3, "learned all the same");
        assert_eq!(fdb.shared_dropped(), 3);
    }

    #[test]
    fn news_of_a_port_deleted_meanwhile_is_skipped() {
        let (mut w0, mut w1, shards) = two_replicas();
        let mut batch = Batch::new();
        shards[0].inject(&build_frame(mac(9), mac(1), 0x0800, &[0; 46]));
        w0.poll_once(&mut batch, Duration::from_secs(1));
        let registry = mio::Poll::new().unwrap();
        w1.del_port("a", registry.registry()).unwrap();
        w1.poll_once(&mut batch, Duration::from_secs(1));
        assert_eq!(w1.fdb("spread").unwrap().lookup(0, mac(1)), None);
    }

    #[test]
    fn ports_and_bridges_disagreeing_on_replicas_are_refused() {
        let (mut w0, _, _) = two_replicas();
        let err = w0
            .add_port_at(
                "spread",
                "c".into(),
                Box::new(LoopbackPort::new("x")),
                PortPolicy::default(),
                None,
                None,
            )
            .unwrap_err();
        assert!(matches!(err, crate::datapath::DatapathError::Spread(_)));
        w0.add_bridge("plain".into(), 300, 64).unwrap();
        let err = w0
            .add_port_at(
                "plain",
                "d".into(),
                Box::new(LoopbackPort::new("x")),
                PortPolicy::default(),
                None,
                Some(5),
            )
            .unwrap_err();
        assert!(matches!(err, crate::datapath::DatapathError::Spread(_)));
        // A replica slot taken already is refused, not overwritten.
        let err = w0.add_bridge_at("other".into(), 300, 64, Some(0));
        assert!(err.is_err());
    }
}
