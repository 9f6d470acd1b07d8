//! The session against a fake GoBGP (a tonic server in the test) and a real
//! datapath thread with a VXLAN port: reconciliation, remote routes, MAC
//! mobility and reconnection. Every wait is for an event (a figure the
//! session publishes, a call the fake receives), bounded by a deadline.

use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;

use tokio::sync::{mpsc, oneshot, Notify};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::*;
use crate::control::protocol::{FdbEntryInfo, FdbEntryKind};
use crate::datapath::DatapathHandle;
use crate::evpn::api::gobgp_api_server::{GobgpApi, GobgpApiServer};
use crate::evpn::state::RemoteRoute;
use crate::pipeline::admit::PortPolicy;
use crate::port::loopback::LoopbackPort;
use crate::port::vxlan::{VxlanConfig, VxlanPort};
use crate::wire::MacAddr;

const LOCAL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 9);
const ROUTER_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const DEADLINE: Duration = Duration::from_secs(20);

fn mac(n: u8) -> MacAddr {
    MacAddr([0x52, 0x54, 0, 0, 0, n])
}

/// GoBGP's RIB as far as the session can tell: paths, and watchers that
/// get every change.
#[derive(Default)]
struct Rib {
    paths: Vec<api::Path>,
    adds: Vec<api::Path>,
    deletes: Vec<api::Path>,
    watchers: Vec<mpsc::UnboundedSender<Result<api::WatchEventResponse, Status>>>,
}

#[derive(Clone, Default)]
struct FakeGobgp {
    rib: Arc<Mutex<Rib>>,
    changed: Arc<Notify>,
}

fn event(paths: Vec<api::Path>) -> api::WatchEventResponse {
    api::WatchEventResponse {
        event: Some(api::watch_event_response::Event::Table(
            api::watch_event_response::TableEvent { paths },
        )),
    }
}

impl FakeGobgp {
    fn publish(&self, path: api::Path) {
        let mut rib = self.rib.lock().unwrap();
        rib.watchers
            .retain(|w| w.send(Ok(event(vec![path.clone()]))).is_ok());
        drop(rib);
        self.changed.notify_waiters();
    }

    /// A route from a BGP peer: stored and announced.
    fn peer_adds(&self, mut path: api::Path) {
        path.neighbor_ip = "10.0.0.2".into();
        path.best = true;
        self.rib.lock().unwrap().paths.push(path.clone());
        self.publish(path);
    }

    fn peer_withdraws(&self, path: &api::Path) {
        let mut gone = path.clone();
        gone.is_withdraw = true;
        gone.neighbor_ip = "10.0.0.2".into();
        self.rib
            .lock()
            .unwrap()
            .paths
            .retain(|p| p.nlri != path.nlri);
        self.publish(gone);
    }

    fn added(&self) -> Vec<Received> {
        let rib = self.rib.lock().unwrap();
        rib.adds
            .iter()
            .map(|p| routes::decode(p).unwrap())
            .collect()
    }

    fn deleted(&self) -> Vec<Received> {
        let rib = self.rib.lock().unwrap();
        rib.deletes
            .iter()
            .map(|p| routes::decode(p).unwrap())
            .collect()
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<api::WatchEventResponse, Status>> + Send>>;

#[tonic::async_trait]
impl GobgpApi for FakeGobgp {
    async fn add_path(
        &self,
        request: Request<api::AddPathRequest>,
    ) -> Result<Response<api::AddPathResponse>, Status> {
        let mut path = request
            .into_inner()
            .path
            .ok_or(Status::invalid_argument("no path"))?;
        path.best = true;
        {
            let mut rib = self.rib.lock().unwrap();
            rib.paths.retain(|p| p.nlri != path.nlri);
            rib.paths.push(path.clone());
            rib.adds.push(path.clone());
        }
        self.publish(path);
        Ok(Response::new(api::AddPathResponse { uuid: Vec::new() }))
    }

    async fn delete_path(
        &self,
        request: Request<api::DeletePathRequest>,
    ) -> Result<Response<()>, Status> {
        let path = request
            .into_inner()
            .path
            .ok_or(Status::invalid_argument("no path"))?;
        {
            let mut rib = self.rib.lock().unwrap();
            rib.paths.retain(|p| p.nlri != path.nlri);
            rib.deletes.push(path.clone());
        }
        self.publish(path);
        Ok(Response::new(()))
    }

    async fn watch_event(
        &self,
        _request: Request<api::WatchEventRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut rib = self.rib.lock().unwrap();
        // As gobgpd does with `init`: the whole table first.
        let _ = tx.send(Ok(event(rib.paths.clone())));
        rib.watchers.push(tx);
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::UnboundedReceiverStream::new(rx),
        )))
    }
}

/// Serves `fake` on `addr` (port 0: any) until the sender is dropped.
async fn serve(fake: FakeGobgp, addr: SocketAddr) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let bound = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(GobgpApiServer::new(fake))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            }),
    );
    (bound, stop)
}

/// A datapath with bridge `guests`: VXLAN port `vx0` (VNIs 100 and 200 on
/// VLANs 10 and 20) over underlay `up0`, and a local port `vm1`.
async fn datapath() -> DatapathHandle {
    let dp = DatapathHandle::spawn().unwrap();
    for b in ["underlay", "guests"] {
        dp.call(|reply| Command::AddBridge {
            name: b.into(),
            aging_secs: 300,
            max_entries: 1024,
            worker: None,
            spread: false,
            reply,
        })
        .await
        .unwrap();
    }
    let cfg = VxlanConfig {
        local: LOCAL,
        prefix_len: 24,
        gateway: None,
        remotes: Vec::new(),
        vnis: vec![(100, 10), (200, 20)],
        dst_port: 4789,
        underlay: "up0".into(),
        mac: VxlanConfig::default_mac(LOCAL),
        underlay_mtu: 1500,
    };
    let ports: [(&str, &str, Box<dyn crate::port::Port>); 3] = [
        ("underlay", "up0", Box::new(LoopbackPort::new("up0"))),
        ("guests", "vx0", Box::new(VxlanPort::new("vx0", cfg))),
        ("guests", "vm1", Box::new(LoopbackPort::new("vm1"))),
    ];
    for (bridge, name, port) in ports {
        dp.call(|reply| Command::AddPort {
            bridge: bridge.into(),
            name: name.into(),
            port,
            policy: PortPolicy::default(),
            reply,
        })
        .await
        .unwrap();
    }
    dp
}

fn spec(addr: SocketAddr) -> EvpnSpec {
    EvpnSpec {
        gobgp: addr.to_string(),
        asn: 65000,
        router_id: ROUTER_ID,
        vtep: None,
        learning: false,
        max_macs: 100,
        max_vteps: 10,
    }
}

/// The paths a peer VTEP would send.
fn peer_route(route: LocalRoute) -> api::Path {
    let peer = Originator {
        asn: 65000,
        router_id: Ipv4Addr::new(10, 0, 0, 9),
        vtep: PEER,
    };
    routes::encode(&route, &peer, false)
}

struct World {
    dp: DatapathHandle,
    shared: Arc<Mutex<Shared>>,
    progress: watch::Receiver<u64>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl World {
    async fn start(addr: SocketAddr) -> World {
        let dp = datapath().await;
        let shared = Arc::new(Mutex::new(Shared::default()));
        let session = Session::new("guests".into(), spec(addr), dp.commander(), shared.clone());
        let progress = session.progress();
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(session.run(stop_rx));
        World {
            dp,
            shared,
            progress,
            stop,
            task,
        }
    }

    fn shared(&self) -> Shared {
        self.shared.lock().unwrap().clone()
    }

    /// Waits, one published change at a time, until `cond` holds.
    async fn until(&mut self, what: &str, mut cond: impl FnMut(&Shared) -> bool) {
        let wait = async {
            while !cond(&self.shared()) {
                self.progress.changed().await.unwrap();
            }
        };
        tokio::time::timeout(DEADLINE, wait)
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}: {:?}", self.shared()));
    }

    async fn fdb(&self) -> Vec<FdbEntryInfo> {
        self.dp
            .commander()
            .call(|reply| Command::FdbDump {
                bridge: "guests".into(),
                reply,
            })
            .await
            .unwrap()
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

fn established(s: &Shared) -> bool {
    s.session == SessionState::Established
}

fn remote_macs(s: &Shared, vni: u32) -> usize {
    s.vnis
        .iter()
        .find(|v| v.vni == vni)
        .map_or(0, |v| v.remote_macs)
}

#[tokio::test]
async fn reconciles_what_an_earlier_life_left_in_gobgp() {
    let fake = FakeGobgp::default();
    let me = Originator {
        asn: 65000,
        router_id: ROUTER_ID,
        vtep: LOCAL,
    };
    // Our flood route for VNI 100 (still wanted), one for VNI 300 (no
    // longer carried) and a MAC that is no longer here.
    for stale in [
        LocalRoute::Flood { vni: 100 },
        LocalRoute::Flood { vni: 300 },
        LocalRoute::Mac {
            vni: 100,
            mac: mac(7),
            seq: 2,
        },
    ] {
        fake.rib
            .lock()
            .unwrap()
            .paths
            .push(routes::encode(&stale, &me, false));
    }
    let (addr, _server) = serve(fake.clone(), "127.0.0.1:0".parse().unwrap()).await;
    let mut w = World::start(addr).await;
    w.until("the session", established).await;
    let added: Vec<String> = fake.added().iter().map(|r| r.route.id.rd.clone()).collect();
    assert_eq!(added, ["10.0.0.1:200"], "only the missing flood route");
    let mut deleted: Vec<String> = fake
        .deleted()
        .iter()
        .map(|r| r.route.id.rd.clone())
        .collect();
    deleted.sort();
    assert_eq!(
        deleted,
        ["10.0.0.1:100", "10.0.0.1:300"],
        "the MAC and VNI 300's"
    );
    assert!(fake
        .deleted()
        .iter()
        .any(|r| matches!(r.route.id.nlri, Nlri::Mac { mac: m, .. } if m == mac(7))));
    let c = w.shared().counters;
    assert_eq!((c.routes_sent, c.routes_withdrawn), (1, 2));
    w.stop().await;
    // Stopping withdraws everything this bridge advertised.
    assert!(fake.rib.lock().unwrap().paths.is_empty());
}

#[tokio::test]
async fn remote_routes_come_and_go_and_a_mac_that_arrives_outbids_them() {
    let fake = FakeGobgp::default();
    let (addr, _server) = serve(fake.clone(), "127.0.0.1:0".parse().unwrap()).await;
    let mut w = World::start(addr).await;
    w.until("the session", established).await;

    let flood = peer_route(LocalRoute::Flood { vni: 100 });
    let remote = peer_route(LocalRoute::Mac {
        vni: 100,
        mac: mac(1),
        seq: 4,
    });
    fake.peer_adds(flood.clone());
    fake.peer_adds(remote.clone());
    w.until("the remote MAC", |s| remote_macs(s, 100) == 1)
        .await;
    assert_eq!(w.shared().vnis[0].vteps, [PEER]);
    let fdb = w.fdb().await;
    assert_eq!(fdb.len(), 1);
    assert_eq!((fdb[0].vlan, fdb[0].mac), (10, mac(1)));
    assert_eq!(fdb[0].kind, FdbEntryKind::Evpn);
    assert_eq!(fdb[0].remote.as_deref(), Some("192.0.2.9"));

    // The MAC shows up on a local port: advertised with sequence 5, and
    // the EVPN entry is replaced.
    w.dp.commander()
        .call(|reply| Command::FdbAdd {
            bridge: "guests".into(),
            vlan: 10,
            mac: mac(1),
            port: "vm1".into(),
            remote: None,
            reply,
        })
        .await
        .unwrap();
    w.until("the local MAC", |s| s.vnis[0].local_macs == 1)
        .await;
    let ours = fake
        .added()
        .into_iter()
        .find(|r| matches!(r.route.id.nlri, Nlri::Mac { .. }))
        .expect("a MAC route");
    assert_eq!(ours.route.seq, 5);
    assert_eq!(ours.route.vtep, LOCAL);
    assert_eq!(remote_macs(&w.shared(), 100), 0);

    // The peer withdraws its stale route and its flood route.
    fake.peer_withdraws(&remote);
    fake.peer_withdraws(&flood);
    w.until("the flood list to empty", |s| s.vnis[0].vteps.is_empty())
        .await;
    let fdb = w.fdb().await;
    assert_eq!(fdb[0].port, "vm1", "the local entry stays");
    w.stop().await;
}

#[tokio::test]
async fn a_gobgpd_restart_keeps_forwarding_and_reconverges() {
    let fake = FakeGobgp::default();
    let (addr, server) = serve(fake.clone(), "127.0.0.1:0".parse().unwrap()).await;
    let mut w = World::start(addr).await;
    w.until("the session", established).await;
    let gone_later = peer_route(LocalRoute::Mac {
        vni: 100,
        mac: mac(1),
        seq: 0,
    });
    fake.peer_adds(gone_later);
    w.until("the remote MAC", |s| remote_macs(s, 100) == 1)
        .await;

    // gobgpd goes away: the session says so, the entry stays.
    drop(server);
    fake.rib.lock().unwrap().watchers.clear();
    w.until("the session to drop", |s| {
        s.session == SessionState::Connecting
    })
    .await;
    assert_eq!(w.fdb().await.len(), 1, "forwarding keeps what it has");

    // A new gobgpd on the same address, with an empty table but another
    // peer's MAC: the old entry goes, the new one comes, our routes return.
    let fresh = FakeGobgp::default();
    fresh.rib.lock().unwrap().paths.push({
        let mut p = peer_route(LocalRoute::Mac {
            vni: 200,
            mac: mac(2),
            seq: 0,
        });
        p.neighbor_ip = "10.0.0.2".into();
        p.best = true;
        p
    });
    let (_, _server) = serve(fresh.clone(), addr).await;
    w.until("the new table", |s| {
        established(s) && remote_macs(s, 100) == 0 && remote_macs(s, 200) == 1
    })
    .await;
    assert_eq!(w.shared().counters.reconnects, 1);
    let fdb = w.fdb().await;
    assert_eq!((fdb.len(), fdb[0].mac), (1, mac(2)));
    let replayed: Vec<u32> = fresh.added().iter().map(|r| r.route.vni).collect();
    assert_eq!(replayed.len(), 2, "both flood routes again: {replayed:?}");
    w.stop().await;
}

#[test]
fn a_peer_route_is_decoded_as_remote() {
    let p = peer_route(LocalRoute::Flood { vni: 100 });
    let r = routes::decode(&p).unwrap();
    assert_eq!(
        r.route,
        RemoteRoute {
            id: r.route.id.clone(),
            vni: 100,
            vtep: PEER,
            seq: 0
        }
    );
}
