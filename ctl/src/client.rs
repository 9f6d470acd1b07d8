//! One request, one reply over the daemon's socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use vswitch::control::protocol::{Reply, Request};

/// How long vsctl waits for the daemon's answer.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `request` and returns the reply's data, or the daemon's error.
pub fn call(socket: &Path, request: &Request) -> anyhow::Result<serde_json::Value> {
    let mut stream = UnixStream::connect(socket).with_context(|| {
        format!(
            "cannot reach vswitchd at {} (is it running? set --socket or VSWITCH_SOCKET)",
            socket.display()
        )
    })?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let mut line = serde_json::to_string(request)?;
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .context("sending the request")?;
    let mut reply = String::new();
    BufReader::new(&stream)
        .read_line(&mut reply)
        .context("reading the reply")?;
    if reply.is_empty() {
        bail!("vswitchd closed the connection without a reply");
    }
    match serde_json::from_str::<Reply>(&reply)
        .map_err(|e| anyhow!("unreadable reply from vswitchd: {e}"))?
    {
        Reply::Ok(data) => Ok(data),
        Reply::Error(message) => Err(anyhow!(message)),
    }
}
