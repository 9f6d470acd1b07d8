//! EVPN routes to and from GoBGP's API paths (RFC 7432 route types 2 and 3
//! with RFC 8365's VXLAN encoding: the VNI in the label field).
//!
//! What this host originates: RD `router_id:(VNI mod 65536)`, RT `ASN:VNI`,
//! the BGP encapsulation community for VXLAN, next hop the VTEP address;
//! type 3 carries a PMSI tunnel attribute (ingress replication, label the
//! VNI, tunnel id the VTEP address), type 2 a MAC mobility community when
//! its sequence is above 0.

use std::net::{IpAddr, Ipv4Addr};

use prost::Message;
use prost_types::Any;

use super::api;
use super::state::{LocalRoute, Nlri, RemoteRoute, RouteId};
use crate::wire::MacAddr;

const TYPE_PREFIX: &str = "type.googleapis.com/apipb.";
/// RFC 5512 / RFC 8365: tunnel type 8 is VXLAN.
const TUNNEL_TYPE_VXLAN: u32 = 8;
/// RFC 6514: PMSI tunnel type 6 is ingress replication.
const PMSI_INGRESS_REPLICATION: u32 = 6;
/// Route target: the two-octet AS specific extended community subtype 2.
const SUBTYPE_ROUTE_TARGET: u32 = 0x02;

/// Who originates this host's routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Originator {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    pub vtep: Ipv4Addr,
}

impl Originator {
    pub fn rd(&self, vni: u32) -> String {
        format!("{}:{}", self.router_id, vni & 0xffff)
    }

    pub fn rt(&self, vni: u32) -> String {
        format!("{}:{}", self.asn, vni)
    }
}

pub fn family() -> api::Family {
    api::Family {
        afi: api::family::Afi::L2vpn as i32,
        safi: api::family::Safi::Evpn as i32,
    }
}

fn any(name: &str, msg: &impl Message) -> Any {
    Any {
        type_url: format!("{TYPE_PREFIX}{name}"),
        value: msg.encode_to_vec(),
    }
}

fn type_name(a: &Any) -> &str {
    a.type_url.strip_prefix(TYPE_PREFIX).unwrap_or("")
}

fn decode_as<M: Message + Default>(a: &Any) -> Option<M> {
    M::decode(a.value.as_slice()).ok()
}

/// The API path that advertises (or, with `withdraw`, withdraws) `route`.
pub fn encode(route: &LocalRoute, me: &Originator, withdraw: bool) -> api::Path {
    let vni = match *route {
        LocalRoute::Mac { vni, .. } | LocalRoute::MacIp { vni, .. } | LocalRoute::Flood { vni } => {
            vni
        }
    };
    let rd = any(
        "RouteDistinguisherIPAddress",
        &api::RouteDistinguisherIpAddress {
            admin: me.router_id.to_string(),
            assigned: vni & 0xffff,
        },
    );
    let route_target = if me.asn <= u32::from(u16::MAX) {
        any(
            "TwoOctetAsSpecificExtended",
            &api::TwoOctetAsSpecificExtended {
                is_transitive: true,
                sub_type: SUBTYPE_ROUTE_TARGET,
                asn: me.asn,
                local_admin: vni,
            },
        )
    } else {
        any(
            "FourOctetAsSpecificExtended",
            &api::FourOctetAsSpecificExtended {
                is_transitive: true,
                sub_type: SUBTYPE_ROUTE_TARGET,
                asn: me.asn,
                local_admin: vni & 0xffff,
            },
        )
    };
    let mut communities = vec![
        route_target,
        any(
            "EncapExtended",
            &api::EncapExtended {
                tunnel_type: TUNNEL_TYPE_VXLAN,
            },
        ),
    ];
    let mut pattrs = vec![
        any("OriginAttribute", &api::OriginAttribute { origin: 0 }),
        any(
            "NextHopAttribute",
            &api::NextHopAttribute {
                next_hop: me.vtep.to_string(),
            },
        ),
    ];
    let nlri = match *route {
        LocalRoute::Mac { mac, seq, .. } | LocalRoute::MacIp { mac, seq, .. } => {
            let ip_address = match *route {
                LocalRoute::MacIp { ip, .. } => ip.to_string(),
                _ => String::new(),
            };
            if seq > 0 {
                communities.push(any(
                    "MacMobilityExtended",
                    &api::MacMobilityExtended {
                        is_sticky: false,
                        sequence_num: seq,
                    },
                ));
            }
            any(
                "EVPNMACIPAdvertisementRoute",
                &api::EvpnmacipAdvertisementRoute {
                    rd: Some(rd),
                    esi: Some(api::EthernetSegmentIdentifier {
                        r#type: 0,
                        value: vec![0; 9],
                    }),
                    ethernet_tag: 0,
                    mac_address: mac.to_string(),
                    ip_address,
                    labels: vec![vni],
                },
            )
        }
        LocalRoute::Flood { .. } => {
            pattrs.push(any(
                "PmsiTunnelAttribute",
                &api::PmsiTunnelAttribute {
                    flags: 0,
                    r#type: PMSI_INGRESS_REPLICATION,
                    label: vni,
                    id: me.vtep.octets().to_vec(),
                },
            ));
            any(
                "EVPNInclusiveMulticastEthernetTagRoute",
                &api::EvpnInclusiveMulticastEthernetTagRoute {
                    rd: Some(rd),
                    ethernet_tag: 0,
                    ip_address: me.vtep.to_string(),
                },
            )
        }
    };
    pattrs.push(any(
        "ExtendedCommunitiesAttribute",
        &api::ExtendedCommunitiesAttribute { communities },
    ));
    api::Path {
        nlri: Some(nlri),
        pattrs,
        family: Some(family()),
        is_withdraw: withdraw,
        ..Default::default()
    }
}

/// A path read from GoBGP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub route: RemoteRoute,
    pub withdraw: bool,
    /// Originated on this gobgpd (added through its API), not learned from
    /// a peer.
    pub local: bool,
    /// The RD's administrator field (an address or an AS number).
    pub rd_admin: String,
    /// The NLRI as GoBGP has it, to delete the path by.
    pub nlri: Option<Any>,
}

/// Why a path is not an EVPN route this switch uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    #[error("not a MAC/IP or inclusive multicast route")]
    OtherRouteType,
    #[error("malformed NLRI")]
    Malformed,
    #[error("no IPv4 next hop")]
    NoNextHop,
}

fn rd_of(rd: Option<&Any>) -> Option<(String, String)> {
    let rd = rd?;
    let (admin, assigned) = match type_name(rd) {
        "RouteDistinguisherIPAddress" => {
            let r: api::RouteDistinguisherIpAddress = decode_as(rd)?;
            (r.admin, r.assigned)
        }
        "RouteDistinguisherTwoOctetASN" => {
            let r: api::RouteDistinguisherTwoOctetAsn = decode_as(rd)?;
            (r.admin.to_string(), r.assigned)
        }
        "RouteDistinguisherFourOctetASN" => {
            let r: api::RouteDistinguisherFourOctetAsn = decode_as(rd)?;
            (r.admin.to_string(), r.assigned)
        }
        _ => return None,
    };
    Some((format!("{admin}:{assigned}"), admin))
}

/// Attributes this switch reads: next hop, MAC mobility sequence, PMSI.
#[derive(Default)]
struct Attrs {
    next_hop: Option<Ipv4Addr>,
    seq: u32,
    pmsi: Option<(u32, Option<Ipv4Addr>)>,
}

fn attrs_of(path: &api::Path) -> Attrs {
    let mut a = Attrs::default();
    for p in &path.pattrs {
        match type_name(p) {
            "NextHopAttribute" => {
                if let Some(n) = decode_as::<api::NextHopAttribute>(p) {
                    a.next_hop = n.next_hop.parse().ok().or(a.next_hop);
                }
            }
            "MpReachNLRIAttribute" => {
                if let Some(m) = decode_as::<api::MpReachNlriAttribute>(p) {
                    if let Some(ip) = m.next_hops.iter().find_map(|h| h.parse().ok()) {
                        a.next_hop = Some(ip);
                    }
                }
            }
            "ExtendedCommunitiesAttribute" => {
                let Some(e) = decode_as::<api::ExtendedCommunitiesAttribute>(p) else {
                    continue;
                };
                for c in &e.communities {
                    if type_name(c) == "MacMobilityExtended" {
                        if let Some(m) = decode_as::<api::MacMobilityExtended>(c) {
                            a.seq = m.sequence_num;
                        }
                    }
                }
            }
            "PmsiTunnelAttribute" => {
                if let Some(t) = decode_as::<api::PmsiTunnelAttribute>(p) {
                    let id = <[u8; 4]>::try_from(t.id.as_slice())
                        .ok()
                        .map(Ipv4Addr::from);
                    a.pmsi = Some((t.label, id));
                }
            }
            _ => {}
        }
    }
    a
}

/// Reads a path GoBGP reported (a best path, or its withdrawal).
pub fn decode(path: &api::Path) -> Result<Received, Unusable> {
    let nlri = path.nlri.as_ref().ok_or(Unusable::Malformed)?;
    let attrs = attrs_of(path);
    let (id, vni, rd_admin, vtep) = match type_name(nlri) {
        "EVPNMACIPAdvertisementRoute" => {
            let r: api::EvpnmacipAdvertisementRoute = decode_as(nlri).ok_or(Unusable::Malformed)?;
            let (rd, admin) = rd_of(r.rd.as_ref()).ok_or(Unusable::Malformed)?;
            let mac: MacAddr = r.mac_address.parse().map_err(|_| Unusable::Malformed)?;
            let ip: Option<IpAddr> = match r.ip_address.as_str() {
                "" | "<nil>" | "0.0.0.0" | "::" => None,
                s => Some(s.parse().map_err(|_| Unusable::Malformed)?),
            };
            // RFC 8365: the VNI rides in the label; a VLAN-aware bundle
            // would use the Ethernet tag.
            let vni = match r.labels.first() {
                Some(&l) if l != 0 => l,
                _ => r.ethernet_tag,
            };
            let id = RouteId {
                rd,
                nlri: Nlri::Mac { vni, mac, ip },
            };
            (id, vni, admin, attrs.next_hop)
        }
        "EVPNInclusiveMulticastEthernetTagRoute" => {
            let r: api::EvpnInclusiveMulticastEthernetTagRoute =
                decode_as(nlri).ok_or(Unusable::Malformed)?;
            let (rd, admin) = rd_of(r.rd.as_ref()).ok_or(Unusable::Malformed)?;
            let origin: Ipv4Addr = r.ip_address.parse().map_err(|_| Unusable::NoNextHop)?;
            let (vni, tunnel) = match attrs.pmsi {
                Some((label, id)) if label != 0 => (label, id),
                Some((_, id)) => (r.ethernet_tag, id),
                None => (r.ethernet_tag, None),
            };
            let id = RouteId {
                rd,
                nlri: Nlri::Flood {
                    etag: r.ethernet_tag,
                    origin,
                },
            };
            // Replicate to the PMSI tunnel's address, else the next hop.
            (id, vni, admin, tunnel.or(attrs.next_hop).or(Some(origin)))
        }
        _ => return Err(Unusable::OtherRouteType),
    };
    // A withdrawal carries no attributes worth reading.
    let vtep = match (vtep, path.is_withdraw) {
        (Some(v), _) => v,
        (None, true) => Ipv4Addr::UNSPECIFIED,
        (None, false) => return Err(Unusable::NoNextHop),
    };
    Ok(Received {
        route: RemoteRoute {
            id,
            vni,
            vtep,
            seq: attrs.seq,
        },
        withdraw: path.is_withdraw,
        local: path.neighbor_ip.is_empty() || path.neighbor_ip == "<nil>",
        rd_admin,
        nlri: path.nlri.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: Originator = Originator {
        asn: 65000,
        router_id: Ipv4Addr::new(10, 0, 0, 1),
        vtep: Ipv4Addr::new(192, 0, 2, 1),
    };

    fn mac(n: u8) -> MacAddr {
        MacAddr([0x52, 0x54, 0, 0, 0, n])
    }

    #[test]
    fn a_mac_route_reads_back_as_it_was_written() {
        let path = encode(
            &LocalRoute::Mac {
                vni: 100,
                mac: mac(1),
                seq: 3,
            },
            &ME,
            false,
        );
        let got = decode(&path).unwrap();
        assert_eq!(
            got.route,
            RemoteRoute {
                id: RouteId {
                    rd: "10.0.0.1:100".into(),
                    nlri: Nlri::Mac {
                        vni: 100,
                        mac: mac(1),
                        ip: None
                    },
                },
                vni: 100,
                vtep: ME.vtep,
                seq: 3,
            }
        );
        assert!(got.local && !got.withdraw);
        assert_eq!(got.rd_admin, "10.0.0.1");
    }

    #[test]
    fn a_mac_ip_route_carries_the_address() {
        let ip = Ipv4Addr::new(10, 1, 0, 5);
        let path = encode(
            &LocalRoute::MacIp {
                vni: 100,
                mac: mac(1),
                ip,
                seq: 0,
            },
            &ME,
            false,
        );
        let got = decode(&path).unwrap();
        assert_eq!(
            got.route.id.nlri,
            Nlri::Mac {
                vni: 100,
                mac: mac(1),
                ip: Some(IpAddr::V4(ip))
            }
        );
    }

    #[test]
    fn a_flood_route_carries_ingress_replication_to_the_vtep() {
        let path = encode(&LocalRoute::Flood { vni: 70_000 }, &ME, true);
        let got = decode(&path).unwrap();
        assert_eq!(
            got.route.id.rd, "10.0.0.1:4464",
            "RD uses the VNI mod 65536"
        );
        assert_eq!(
            got.route.id.nlri,
            Nlri::Flood {
                etag: 0,
                origin: ME.vtep
            }
        );
        assert_eq!(got.route.vni, 70_000);
        assert_eq!(got.route.vtep, ME.vtep);
        assert!(got.withdraw);
        let pmsi = path
            .pattrs
            .iter()
            .find(|a| type_name(a) == "PmsiTunnelAttribute")
            .and_then(decode_as::<api::PmsiTunnelAttribute>)
            .unwrap();
        assert_eq!((pmsi.r#type, pmsi.label), (6, 70_000));
    }

    #[test]
    fn peer_routes_read_their_next_hop_from_mp_reach() {
        let mut path = encode(
            &LocalRoute::Mac {
                vni: 100,
                mac: mac(2),
                seq: 0,
            },
            &ME,
            false,
        );
        path.pattrs.retain(|a| type_name(a) != "NextHopAttribute");
        path.pattrs.push(any(
            "MpReachNLRIAttribute",
            &api::MpReachNlriAttribute {
                family: Some(family()),
                next_hops: vec!["192.0.2.7".into()],
                ..Default::default()
            },
        ));
        path.neighbor_ip = "10.0.0.2".into();
        let got = decode(&path).unwrap();
        assert_eq!(got.route.vtep, Ipv4Addr::new(192, 0, 2, 7));
        assert!(!got.local);
    }

    #[test]
    fn garbage_is_refused_not_trusted() {
        let mut path = encode(&LocalRoute::Flood { vni: 1 }, &ME, false);
        path.nlri = Some(any("IPAddressPrefix", &api::NextHopAttribute::default()));
        assert_eq!(decode(&path), Err(Unusable::OtherRouteType));
        path.nlri = Some(Any {
            type_url: format!("{TYPE_PREFIX}EVPNMACIPAdvertisementRoute"),
            value: vec![0xff, 0xff, 0xff],
        });
        assert_eq!(decode(&path), Err(Unusable::Malformed));
        path.nlri = None;
        assert_eq!(decode(&path), Err(Unusable::Malformed));
        let mut no_hop = encode(
            &LocalRoute::Mac {
                vni: 1,
                mac: mac(1),
                seq: 0,
            },
            &ME,
            false,
        );
        no_hop.pattrs.clear();
        assert_eq!(decode(&no_hop), Err(Unusable::NoNextHop));
    }
}
