//! EVPN route injector for `bench/evpn.sh`: plays a fleet of VTEPs into a gobgpd over its gRPC
//! API, as a route reflector would hand them to a host.
//!
//! ```text
//! evpn-inject add          --api HOST:PORT [--vteps 100] [--macs 1000] [--vnis 100[,200...]]
//!                          [--asn 65000] [--vtep-base 10.99.0.1] [--vtep-first 0] [--batch 1000]
//! evpn-inject withdraw     (same options: withdraws exactly what `add` announced)
//! evpn-inject withdraw-all --api HOST:PORT
//! evpn-inject count        --api HOST:PORT
//! evpn-inject wait         --api HOST:PORT (--min N | --max N) [--timeout SECS]
//! ```
//!
//! `add` streams (AddPathStream, `--batch` paths per message) for every VNI and every VTEP one
//! type-3 route (inclusive multicast: PMSI ingress replication, label = VNI, tunnel id = the
//! VTEP) and `--macs` type-2 routes (MAC only, label = VNI), each VTEP with its own RD
//! (VTEP:VNI) and next hop (the VTEP), RT ASN:VNI, and the VXLAN encapsulation community.
//! The VTEPs are numbered `--vtep-first` .. `--vtep-first + --vteps - 1` (so several injectors
//! can share out one fleet); VTEP `v` is `--vtep-base + v`, and its MAC number `m` in the VNI
//! numbered `n` (0-based, in `--vnis` order) is `02:nn:vv:vv:mm:mm`, so every run announces
//! the same routes. `withdraw` sends the same routes with `is_withdraw`. Both print one JSON
//! object: routes sent and seconds until gobgpd acknowledged the stream (it has them in its
//! RIB by then; its peers get them after). `withdraw-all` deletes every EVPN path added over
//! the API in one DeletePath call (a family and no path).
//!
//! gobgpd 3.10 (Debian 12) checks MAC mobility on every type-2 path added over the API
//! (`fixupApiPath`) and on every one received from a peer (`handleMacMobility`) by walking the
//! whole EVPN table, so both cost O(table) per route and a table filled route by route costs
//! O(n²): `withdraw` is quadratic on the injector's side, `withdraw-all` is not, and `add`
//! is, which is why bench/evpn.sh shares a fleet out over several injectors.
//!
//! `count` prints the EVPN table's size in the global RIB (GetTable): `{"paths": N,
//! "destinations": N}`. `wait` polls it every 20 ms until it holds at least `--min` (or at
//! most `--max`) paths, and prints the count, the seconds it took, the seconds until the count
//! first changed, and the Unix time it ended; it exits 1 on timeout.
//!
//! Built only with the `gobgp` feature of vswitch-bench (the gRPC client exists only when
//! vswitch was built with GoBGP's protos, see docs/evpn.md).

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prost::Message;
use prost_types::Any;
use vswitch::evpn::api::gobgp_api_client::GobgpApiClient;
use vswitch::evpn::api::{
    family, AddPathStreamRequest, DeletePathRequest, EncapExtended, EthernetSegmentIdentifier,
    EvpnInclusiveMulticastEthernetTagRoute, EvpnmacipAdvertisementRoute,
    ExtendedCommunitiesAttribute, Family, GetTableRequest, NextHopAttribute, OriginAttribute, Path,
    PmsiTunnelAttribute, RouteDistinguisherIpAddress, TableType, TwoOctetAsSpecificExtended,
};

/// Route target sub-type of the two-octet-AS extended community (RFC 4360).
const SUBTYPE_ROUTE_TARGET: u32 = 0x02;
/// Tunnel type VXLAN in the encapsulation extended community (RFC 9012 / RFC 8365).
const TUNNEL_TYPE_VXLAN: u32 = 8;
/// PMSI tunnel type ingress replication (RFC 6514, RFC 8365 section 9).
const PMSI_INGRESS_REPLICATION: u32 = 6;
const POLL: Duration = Duration::from_millis(20);

const USAGE: &str = "usage: evpn-inject add|withdraw --api HOST:PORT [--vteps N] [--macs N] \
                     [--vnis VNI[,VNI...]] [--asn N] [--vtep-base IP] [--vtep-first N] \
                     [--batch N]\n       \
                     evpn-inject withdraw-all|count --api HOST:PORT\n       \
                     evpn-inject wait --api HOST:PORT (--min N | --max N) [--timeout SECS]";

/// Value of `--name` in `args`, parsed.
fn opt<T: std::str::FromStr>(args: &[String], name: &str) -> Result<Option<T>, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(None),
        Some(i) => {
            let v = args.get(i + 1).ok_or(format!("{name} needs a value"))?;
            v.parse()
                .map(Some)
                .map_err(|_| format!("{name} {v:?}: not a valid value"))
        }
    }
}

/// The simulated fleet: what `add` announces and `withdraw` takes back.
#[derive(Clone, Debug)]
struct Fleet {
    vteps: u32,
    vtep_first: u32,
    macs: u32,
    vnis: Vec<u32>,
    asn: u32,
    vtep_base: Ipv4Addr,
}

impl Fleet {
    fn from_args(args: &[String]) -> Result<Self, String> {
        let vnis = match opt::<String>(args, "--vnis")? {
            None => vec![100],
            Some(s) => s
                .split(',')
                .map(|v| v.parse().map_err(|_| format!("--vnis: {v:?} is not a VNI")))
                .collect::<Result<Vec<u32>, _>>()?,
        };
        let fleet = Fleet {
            vteps: opt(args, "--vteps")?.unwrap_or(100),
            vtep_first: opt(args, "--vtep-first")?.unwrap_or(0),
            macs: opt(args, "--macs")?.unwrap_or(1000),
            vnis,
            asn: opt(args, "--asn")?.unwrap_or(65000),
            vtep_base: opt(args, "--vtep-base")?.unwrap_or(Ipv4Addr::new(10, 99, 0, 1)),
        };
        // The MAC layout 02:nn:vv:vv:mm:mm bounds the numbers.
        if fleet.vteps == 0 || u64::from(fleet.vtep_first) + u64::from(fleet.vteps) > 0x1_0000 {
            return Err("--vtep-first + --vteps: at most 65536 VTEPs".into());
        }
        if fleet.macs > 0x1_0000 {
            return Err("--macs: 0..65536".into());
        }
        if fleet.vnis.is_empty() || fleet.vnis.len() > 256 {
            return Err("--vnis: 1..256 VNIs".into());
        }
        if let Some(v) = fleet.vnis.iter().find(|&&v| v == 0 || v >= 1 << 24) {
            return Err(format!("--vnis: {v} is not a VNI (1..16777215)"));
        }
        let last = u32::from(fleet.vtep_base).checked_add(fleet.vtep_first + fleet.vteps - 1);
        if last.is_none() {
            return Err("--vtep-base: the VTEPs run past 255.255.255.255".into());
        }
        if fleet.asn == 0 || fleet.asn > 0xffff {
            return Err("--asn: 1..65535 (a two-octet AS: the RT is ASN:VNI)".into());
        }
        Ok(fleet)
    }

    fn vtep_ip(&self, v: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.vtep_base) + v)
    }

    fn type2_routes(&self) -> u64 {
        u64::from(self.vteps) * u64::from(self.macs) * self.vnis.len() as u64
    }

    fn type3_routes(&self) -> u64 {
        u64::from(self.vteps) * self.vnis.len() as u64
    }

    /// Every route, VNI by VNI and VTEP by VTEP: the VTEP's type-3, then its type-2s. Lazy, so
    /// a large fleet is never held in memory at once.
    fn paths(&self, withdraw: bool) -> impl Iterator<Item = Path> + Send + 'static {
        let fleet = self.clone();
        let vnis = fleet.vnis.clone();
        vnis.into_iter().enumerate().flat_map(move |(n, vni)| {
            let fleet = fleet.clone();
            (fleet.vtep_first..fleet.vtep_first + fleet.vteps).flat_map(move |v| {
                let fleet = fleet.clone();
                let vtep = fleet.vtep_ip(v);
                let type3 = fleet.type3(vtep, vni, withdraw);
                std::iter::once(type3).chain((0..fleet.macs).map(move |m| {
                    let mac = mac_of(n as u8, v as u16, m as u16);
                    fleet.type2(vtep, vni, &mac, withdraw)
                }))
            })
        })
    }

    fn common_attrs(&self, vtep: Ipv4Addr, vni: u32) -> Vec<Any> {
        let rt = TwoOctetAsSpecificExtended {
            is_transitive: true,
            sub_type: SUBTYPE_ROUTE_TARGET,
            asn: self.asn,
            local_admin: vni,
        };
        let encap = EncapExtended {
            tunnel_type: TUNNEL_TYPE_VXLAN,
        };
        vec![
            any("OriginAttribute", &OriginAttribute { origin: 0 }),
            any(
                "NextHopAttribute",
                &NextHopAttribute {
                    next_hop: vtep.to_string(),
                },
            ),
            any(
                "ExtendedCommunitiesAttribute",
                &ExtendedCommunitiesAttribute {
                    communities: vec![
                        any("TwoOctetAsSpecificExtended", &rt),
                        any("EncapExtended", &encap),
                    ],
                },
            ),
        ]
    }

    fn type3(&self, vtep: Ipv4Addr, vni: u32, withdraw: bool) -> Path {
        let nlri = EvpnInclusiveMulticastEthernetTagRoute {
            rd: Some(rd(vtep, vni)),
            ethernet_tag: 0,
            ip_address: vtep.to_string(),
        };
        let mut pattrs = self.common_attrs(vtep, vni);
        pattrs.push(any(
            "PmsiTunnelAttribute",
            &PmsiTunnelAttribute {
                flags: 0,
                r#type: PMSI_INGRESS_REPLICATION,
                label: vni,
                id: vtep.octets().to_vec(),
            },
        ));
        path(
            any("EVPNInclusiveMulticastEthernetTagRoute", &nlri),
            pattrs,
            withdraw,
        )
    }

    fn type2(&self, vtep: Ipv4Addr, vni: u32, mac: &str, withdraw: bool) -> Path {
        let nlri = EvpnmacipAdvertisementRoute {
            rd: Some(rd(vtep, vni)),
            // Single-homed: ESI 0. gobgpd 3.10 dereferences the ESI without a nil check, so a
            // type-2 without one kills the daemon.
            esi: Some(EthernetSegmentIdentifier {
                r#type: 0,
                value: vec![0; 9],
            }),
            ethernet_tag: 0,
            mac_address: mac.to_string(),
            ip_address: String::new(),
            labels: vec![vni],
        };
        path(
            any("EVPNMACIPAdvertisementRoute", &nlri),
            self.common_attrs(vtep, vni),
            withdraw,
        )
    }
}

/// MAC number `m` of VTEP `v` in the `n`th VNI.
fn mac_of(n: u8, v: u16, m: u16) -> String {
    let [v1, v0] = v.to_be_bytes();
    let [m1, m0] = m.to_be_bytes();
    format!("02:{n:02x}:{v1:02x}:{v0:02x}:{m1:02x}:{m0:02x}")
}

/// A message packed as GoBGP's API wants it: `google.protobuf.Any` of `apipb.NAME`.
fn any(name: &str, msg: &impl Message) -> Any {
    Any {
        type_url: format!("type.googleapis.com/apipb.{name}"),
        value: msg.encode_to_vec(),
    }
}

/// RD type 1: the VTEP's address and the VNI (its low 16 bits: the field is two octets).
fn rd(vtep: Ipv4Addr, vni: u32) -> Any {
    any(
        "RouteDistinguisherIPAddress",
        &RouteDistinguisherIpAddress {
            admin: vtep.to_string(),
            assigned: vni & 0xffff,
        },
    )
}

fn evpn_family() -> Family {
    Family {
        afi: family::Afi::L2vpn as i32,
        safi: family::Safi::Evpn as i32,
    }
}

fn path(nlri: Any, pattrs: Vec<Any>, withdraw: bool) -> Path {
    Path {
        nlri: Some(nlri),
        pattrs,
        is_withdraw: withdraw,
        family: Some(evpn_family()),
        ..Path::default()
    }
}

type Client = GobgpApiClient<tonic::transport::Channel>;

async fn connect(api: &str) -> Result<Client, String> {
    GobgpApiClient::connect(format!("http://{api}"))
        .await
        .map_err(|e| format!("connecting to gobgpd at {api}: {e}"))
}

/// Streams the fleet's routes, announced or withdrawn; prints what was sent and how long it took.
async fn inject(api: &str, fleet: &Fleet, batch: usize, withdraw: bool) -> Result<(), String> {
    let mut client = connect(api).await?;
    let mut paths = fleet.paths(withdraw);
    let batches = std::iter::from_fn(move || {
        let chunk: Vec<Path> = paths.by_ref().take(batch).collect();
        (!chunk.is_empty()).then(|| AddPathStreamRequest {
            table_type: TableType::Global as i32,
            vrf_id: String::new(),
            paths: chunk,
        })
    });
    let t0 = Instant::now();
    client
        .add_path_stream(tokio_stream::iter(batches))
        .await
        .map_err(|e| format!("AddPathStream: {e}"))?;
    let secs = t0.elapsed().as_secs_f64();
    let total = fleet.type2_routes() + fleet.type3_routes();
    println!(
        "{{\"mode\": \"{}\", \"vteps\": {}, \"macs_per_vtep\": {}, \"vnis\": {:?}, \
         \"type2\": {}, \"type3\": {}, \"paths\": {total}, \"batch\": {batch}, \
         \"secs\": {secs:.3}, \"paths_per_sec\": {:.0}}}",
        if withdraw { "withdraw" } else { "add" },
        fleet.vteps,
        fleet.macs,
        fleet.vnis,
        fleet.type2_routes(),
        fleet.type3_routes(),
        total as f64 / secs.max(1e-9),
    );
    Ok(())
}

async fn table_size(client: &mut Client) -> Result<(u64, u64), String> {
    let t = client
        .get_table(GetTableRequest {
            table_type: TableType::Global as i32,
            family: Some(evpn_family()),
            name: String::new(),
        })
        .await
        .map_err(|e| format!("GetTable: {e}"))?
        .into_inner();
    Ok((t.num_path, t.num_destination))
}

async fn count(api: &str) -> Result<(), String> {
    let mut client = connect(api).await?;
    let (paths, dests) = table_size(&mut client).await?;
    println!("{{\"paths\": {paths}, \"destinations\": {dests}}}");
    Ok(())
}

/// Deletes every path of the EVPN family that was added over the API.
async fn withdraw_all(api: &str) -> Result<(), String> {
    let mut client = connect(api).await?;
    let t0 = Instant::now();
    client
        .delete_path(DeletePathRequest {
            table_type: TableType::Global as i32,
            family: Some(evpn_family()),
            ..DeletePathRequest::default()
        })
        .await
        .map_err(|e| format!("DeletePath: {e}"))?;
    let secs = t0.elapsed().as_secs_f64();
    println!("{{\"mode\": \"withdraw-all\", \"secs\": {secs:.3}}}");
    Ok(())
}

async fn wait(api: &str, min: Option<u64>, max: Option<u64>, timeout: f64) -> Result<bool, String> {
    let mut client = connect(api).await?;
    let t0 = Instant::now();
    let mut first = None;
    let mut changed = None;
    loop {
        let (paths, dests) = table_size(&mut client).await?;
        let secs = t0.elapsed().as_secs_f64();
        if *first.get_or_insert(paths) != paths && changed.is_none() {
            changed = Some(secs);
        }
        let done = min.is_none_or(|n| paths >= n) && max.is_none_or(|n| paths <= n);
        if done || secs >= timeout {
            let at = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            let changed = changed.map_or("null".to_string(), |c| format!("{c:.3}"));
            println!(
                "{{\"paths\": {paths}, \"destinations\": {dests}, \"secs\": {secs:.3}, \
                 \"first_change_secs\": {changed}, \"at\": {at:.3}, \"timed_out\": {}}}",
                !done
            );
            return Ok(done);
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn run(args: &[String]) -> Result<bool, String> {
    let api: String = opt(args, "--api")?.ok_or("--api HOST:PORT is required")?;
    match args.first().map(String::as_str) {
        Some(mode @ ("add" | "withdraw")) => {
            let fleet = Fleet::from_args(args)?;
            let batch: usize = opt(args, "--batch")?.unwrap_or(1000);
            if batch == 0 {
                return Err("--batch: at least 1".into());
            }
            inject(&api, &fleet, batch, mode == "withdraw").await?;
            Ok(true)
        }
        Some("withdraw-all") => withdraw_all(&api).await.map(|()| true),
        Some("count") => count(&api).await.map(|()| true),
        Some("wait") => {
            let (min, max) = (opt(args, "--min")?, opt(args, "--max")?);
            if min.is_none() && max.is_none() {
                return Err("wait: --min N or --max N".into());
            }
            wait(&api, min, max, opt(args, "--timeout")?.unwrap_or(60.0)).await
        }
        _ => Err(USAGE.into()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("evpn-inject: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(&args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("evpn-inject: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet() -> Fleet {
        Fleet {
            vteps: 3,
            vtep_first: 0,
            macs: 2,
            vnis: vec![100, 70000],
            asn: 65000,
            vtep_base: Ipv4Addr::new(10, 99, 0, 1),
        }
    }

    #[test]
    fn every_route_once_in_order() {
        let f = fleet();
        let paths: Vec<Path> = f.paths(false).collect();
        assert_eq!(paths.len() as u64, f.type2_routes() + f.type3_routes());
        assert_eq!(paths.len(), 2 * 3 * (1 + 2));
        let nlri = |p: &Path| p.nlri.clone().unwrap();
        // The second VNI's second VTEP: its type-3, then its MACs.
        let p = &paths[9 + 3];
        assert!(nlri(p)
            .type_url
            .ends_with("EVPNInclusiveMulticastEthernetTagRoute"));
        let t3 = EvpnInclusiveMulticastEthernetTagRoute::decode(&nlri(p).value[..]).unwrap();
        assert_eq!(t3.ip_address, "10.99.0.2");
        let rd = RouteDistinguisherIpAddress::decode(&t3.rd.unwrap().value[..]).unwrap();
        assert_eq!(
            (rd.admin.as_str(), rd.assigned),
            ("10.99.0.2", 70000 & 0xffff)
        );
        let t2 = EvpnmacipAdvertisementRoute::decode(&nlri(&paths[9 + 5]).value[..]).unwrap();
        assert_eq!(t2.mac_address, "02:01:00:01:00:01");
        assert_eq!(t2.labels, vec![70000]);
        assert!(paths.iter().all(|p| !p.is_withdraw));
        assert!(f.paths(true).all(|p| p.is_withdraw));
    }

    #[test]
    fn type3_carries_pmsi_and_communities() {
        let p = fleet().type3(Ipv4Addr::new(10, 99, 0, 7), 100, false);
        let pmsi = p
            .pattrs
            .iter()
            .find(|a| a.type_url.ends_with("PmsiTunnelAttribute"))
            .unwrap();
        let pmsi = PmsiTunnelAttribute::decode(&pmsi.value[..]).unwrap();
        assert_eq!((pmsi.r#type, pmsi.label), (6, 100));
        assert_eq!(pmsi.id, vec![10, 99, 0, 7]);
        let ec = p
            .pattrs
            .iter()
            .find(|a| a.type_url.ends_with("ExtendedCommunitiesAttribute"))
            .unwrap();
        let ec = ExtendedCommunitiesAttribute::decode(&ec.value[..]).unwrap();
        let rt = TwoOctetAsSpecificExtended::decode(&ec.communities[0].value[..]).unwrap();
        assert_eq!((rt.sub_type, rt.asn, rt.local_admin), (2, 65000, 100));
        let encap = EncapExtended::decode(&ec.communities[1].value[..]).unwrap();
        assert_eq!(encap.tunnel_type, 8);
    }

    #[test]
    fn rejects_what_the_mac_layout_cannot_hold() {
        let args = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert!(Fleet::from_args(&args("add --vteps 65537")).is_err());
        assert!(Fleet::from_args(&args("add --vnis 0")).is_err());
        assert!(Fleet::from_args(&args("add --vteps 2 --vtep-base 255.255.255.255")).is_err());
        assert!(Fleet::from_args(&args("add --vteps 2 --vtep-first 65535")).is_err());
        let f = Fleet::from_args(&args("add --vnis 100,200 --macs 5")).unwrap();
        assert_eq!((f.vteps, f.macs, f.vnis.len()), (100, 5, 2));
        let f = Fleet::from_args(&args("add --vteps 10 --vtep-first 300 --macs 1")).unwrap();
        let t2 = f.paths(false).nth(1).unwrap().nlri.unwrap();
        let t2 = EvpnmacipAdvertisementRoute::decode(&t2.value[..]).unwrap();
        assert_eq!(t2.mac_address, "02:00:01:2c:00:00");
        let last = f.paths(false).last().unwrap().nlri.unwrap();
        let last = EvpnmacipAdvertisementRoute::decode(&last.value[..]).unwrap();
        assert_eq!(last.mac_address, "02:00:01:35:00:00", "VTEP 309's MAC");
    }
}
