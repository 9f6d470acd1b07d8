//! The host's network interfaces, for `vsctl iface list`.
//!
//! Names, flags, MTU, MAC, operational state and link kind come from one
//! RTM_GETLINK dump over NETLINK_ROUTE (netlink-packet-route parses it, so
//! this module makes no raw syscalls and parses no `ip` output). Two things
//! rtnetlink does not carry are read from sysfs, as ethtool would report
//! them: the speed (`/sys/class/net/IF/speed`, meaningful only for a NIC
//! with carrier) and the driver (the `device/driver` link's name).
//!
//! The executor adds which bridge and port use each interface.

use std::path::Path;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::control::protocol::HostIface;

/// Receive buffer for the dump: the kernel sends at most a few pages per
/// datagram.
const RECV_BUF: usize = 256 * 1024;

/// Every interface of the host (of the daemon's network namespace), by
/// index.
pub fn list() -> Result<Vec<HostIface>, String> {
    let mut out: Vec<HostIface> = dump_links()?.iter().map(from_message).collect();
    for i in &mut out {
        let sys = Path::new("/sys/class/net").join(&i.name);
        i.speed_mbps = read_speed(&sys);
        i.driver = std::fs::read_link(sys.join("device/driver"))
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    }
    out.sort_by_key(|i| i.index);
    Ok(out)
}

/// `speed` in Mb/s; absent, unknown (-1) or unreadable (no carrier) is None.
fn read_speed(sys: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(sys.join("speed")).ok()?;
    text.trim()
        .parse::<i64>()
        .ok()
        .and_then(|s| u32::try_from(s).ok())
        .filter(|s| *s > 0 && *s != u32::MAX)
}

fn dump_links() -> Result<Vec<LinkMessage>, String> {
    let err = |what: &str, e: std::io::Error| format!("netlink: {what}: {e}");
    let mut socket = Socket::new(NETLINK_ROUTE).map_err(|e| err("socket", e))?;
    socket.bind_auto().map_err(|e| err("bind", e))?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(|e| err("connect", e))?;
    let mut request = NetlinkMessage::new(
        NetlinkHeader::default(),
        NetlinkPayload::from(RouteNetlinkMessage::GetLink(LinkMessage::default())),
    );
    request.header.flags = NLM_F_DUMP | NLM_F_REQUEST;
    request.header.sequence_number = 1;
    request.finalize();
    let mut buf = vec![0; request.buffer_len()];
    request.serialize(&mut buf);
    socket.send(&buf, 0).map_err(|e| err("send", e))?;

    let mut links = Vec::new();
    let mut rx = vec![0u8; RECV_BUF];
    loop {
        let n = socket
            .recv(&mut &mut rx[..], 0)
            .map_err(|e| err("receive", e))?;
        let mut bytes = &rx[..n.min(rx.len())];
        while !bytes.is_empty() {
            let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes)
                .map_err(|e| format!("netlink: unreadable link message: {e}"))?;
            let len = msg.header.length as usize;
            match msg.payload {
                NetlinkPayload::Done(_) => return Ok(links),
                NetlinkPayload::Error(e) => return Err(format!("netlink: link dump refused: {e}")),
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                    links.push(link)
                }
                _ => {}
            }
            if len == 0 || len > bytes.len() {
                break;
            }
            // Messages are 4-byte aligned within a datagram.
            let next = len.next_multiple_of(4).min(bytes.len());
            bytes = &bytes[next..];
        }
    }
}

fn from_message(link: &LinkMessage) -> HostIface {
    let flags = link.header.flags;
    let mut i = HostIface {
        name: String::new(),
        index: link.header.index,
        kind: "device".into(),
        admin_up: flags.contains(LinkFlags::Up),
        carrier: flags.contains(LinkFlags::LowerUp),
        oper_state: "unknown".into(),
        mtu: 0,
        mac: None,
        speed_mbps: None,
        driver: None,
        bridge: None,
        port: None,
        role: None,
    };
    for attr in &link.attributes {
        match attr {
            LinkAttribute::IfName(n) => i.name = n.clone(),
            LinkAttribute::Mtu(m) => i.mtu = *m,
            LinkAttribute::OperState(s) => i.oper_state = s.to_string().to_lowercase(),
            LinkAttribute::Address(a) if a.len() == 6 => {
                i.mac = Some(
                    a.iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<Vec<_>>()
                        .join(":"),
                )
            }
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(k) = info {
                        i.kind = k.to_string();
                    }
                }
            }
            _ => {}
        }
    }
    if flags.contains(LinkFlags::Loopback) {
        i.kind = "loopback".into();
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_the_loopback_interface() {
        let all = list().unwrap();
        let lo = all.iter().find(|i| i.name == "lo").expect("lo listed");
        assert_eq!(lo.index, 1);
        assert_eq!(lo.kind, "loopback");
        assert!(lo.mtu > 0);
        assert!(all.windows(2).all(|w| w[0].index < w[1].index));
    }

    #[test]
    fn speed_parsing() {
        let dir = std::env::temp_dir().join(format!("vswitch-speed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (text, want) in [("10000\n", Some(10000)), ("-1\n", None), ("x", None)] {
            std::fs::write(dir.join("speed"), text).unwrap();
            assert_eq!(read_speed(&dir), want, "{text:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
