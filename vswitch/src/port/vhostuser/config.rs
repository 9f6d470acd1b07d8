//! `type=vhostuser` options: `socket=PATH [mode=server|client] [queues=N]
//! [mac=MAC]`.

use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use crate::control::protocol::Options;
use crate::wire::MacAddr;

pub const KEYS: &[&str] = &["type", "socket", "mode", "queues", "mac"];

/// Most queue pairs a port takes (each pair is polled by the datapath).
pub const MAX_QUEUE_PAIRS: u16 = 16;

/// Who creates the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketMode {
    /// The switch listens; the front end (QEMU `server=off`) connects.
    Server,
    /// The front end listens (QEMU `server=on`, virtio-user `server=1`);
    /// the switch connects and reconnects.
    Client,
}

impl SocketMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SocketMode::Server => "server",
            SocketMode::Client => "client",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VhostUserConfig {
    pub socket: PathBuf,
    pub mode: SocketMode,
    pub queue_pairs: u16,
    /// Given to the guest through the configuration space.
    pub mac: Option<MacAddr>,
}

pub fn parse(options: &Options) -> Result<VhostUserConfig, String> {
    let socket = options
        .get("socket")
        .ok_or("type=vhostuser needs socket=PATH")?;
    let path = PathBuf::from(socket);
    if !path.is_absolute() || path.file_name().is_none() {
        return Err(format!(
            "socket={socket:?}: expected an absolute path to a file"
        ));
    }
    if socket.len() >= 108 {
        return Err(format!(
            "socket={socket:?}: a unix socket path has at most 107 bytes"
        ));
    }
    let mode = match options.get("mode").map(String::as_str) {
        None | Some("server") => SocketMode::Server,
        Some("client") => SocketMode::Client,
        Some(other) => return Err(format!("mode={other:?}: expected server or client")),
    };
    let queue_pairs = match options.get("queues") {
        None => 1,
        Some(v) => match v.parse::<u16>() {
            Ok(n) if (1..=MAX_QUEUE_PAIRS).contains(&n) => n,
            _ => return Err(format!("queues={v:?}: expected 1 to {MAX_QUEUE_PAIRS}")),
        },
    };
    let mac = match options.get("mac") {
        None => None,
        Some(v) => {
            let mac: MacAddr = v
                .parse()
                .map_err(|_| format!("mac={v:?}: not a MAC address"))?;
            if mac.0[0] & 1 != 0 || mac.0 == [0; 6] {
                return Err(format!(
                    "mac={v}: a NIC's address must be unicast and not zero"
                ));
            }
            Some(mac)
        }
    };
    Ok(VhostUserConfig {
        socket: path,
        mode,
        queue_pairs,
        mac,
    })
}

/// Makes room for a server socket: removes a socket file nobody listens on
/// (left by a switch that was killed), refuses anything else.
pub fn clear_stale_socket(path: &Path) -> Result<(), String> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err(format!("{}: exists and is not a socket", path.display()));
    }
    if UnixStream::connect(path).is_ok() {
        return Err(format!(
            "{}: something already listens on it (another port or process)",
            path.display()
        ));
    }
    std::fs::remove_file(path).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> Options {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_and_full_options() {
        let c = parse(&opts(&[("socket", "/run/vm1.sock")])).unwrap();
        assert_eq!(c.socket, PathBuf::from("/run/vm1.sock"));
        assert_eq!(
            (c.mode, c.queue_pairs, c.mac),
            (SocketMode::Server, 1, None)
        );
        let c = parse(&opts(&[
            ("socket", "/run/vm1.sock"),
            ("mode", "client"),
            ("queues", "4"),
            ("mac", "52:54:00:00:00:01"),
        ]))
        .unwrap();
        assert_eq!((c.mode, c.queue_pairs), (SocketMode::Client, 4));
        assert_eq!(c.mac.unwrap().to_string(), "52:54:00:00:00:01");
    }

    #[test]
    fn bad_options_name_the_problem() {
        let err = |kv: &[(&str, &str)]| parse(&opts(kv)).unwrap_err();
        assert!(err(&[]).contains("socket=PATH"));
        assert!(err(&[("socket", "vm1.sock")]).contains("absolute"));
        let long = format!("/{}", "a".repeat(120));
        assert!(err(&[("socket", &long)]).contains("107"));
        assert!(err(&[("socket", "/s"), ("mode", "both")]).contains("server or client"));
        for q in ["0", "17", "x"] {
            assert!(
                err(&[("socket", "/s"), ("queues", q)]).contains("1 to 16"),
                "{q}"
            );
        }
        assert!(err(&[("socket", "/s"), ("mac", "01:00:5e:00:00:01")]).contains("unicast"));
        assert!(err(&[("socket", "/s"), ("mac", "nope")]).contains("not a MAC"));
    }

    #[test]
    fn stale_socket_is_replaced_but_a_live_one_or_a_file_is_not() {
        let dir = std::env::temp_dir().join(format!("vhu-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        assert!(clear_stale_socket(&path).is_ok(), "nothing there");
        let live = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert!(clear_stale_socket(&path).unwrap_err().contains("listens"));
        drop(live);
        assert!(clear_stale_socket(&path).is_ok());
        assert!(!path.exists());
        std::fs::write(&path, b"data").unwrap();
        assert!(clear_stale_socket(&path)
            .unwrap_err()
            .contains("not a socket"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
