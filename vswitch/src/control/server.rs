//! The unix-socket server: one JSON request per line, one reply per line.
//!
//! Limits keep a misbehaving client from hurting others: at most
//! `MAX_CLIENTS` connections at once (more are told so and closed), a
//! request line of at most `MAX_REQUEST_LEN` bytes (a longer one gets an
//! error and the connection closes, since the stream cannot be resynced),
//! and a connection idle for `IDLE_TIMEOUT` is closed. Requests from all
//! clients run one at a time through the executor; the datapath is only ever
//! reached through its command channel.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Mutex, Semaphore};

use super::executor::Executor;
use super::protocol::{Reply, Request, MAX_REQUEST_LEN};

pub const MAX_CLIENTS: usize = 64;
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Binds the control socket at `path`, owner-only (0600). An existing
/// socket file is replaced only when no daemon answers on it; any other
/// kind of file there is an error.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            std::fs::create_dir_all(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("another vswitchd is serving {}", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a socket; not replacing it",
                    path.display()
                ),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Accepts clients until the task is dropped.
pub async fn serve(listener: UnixListener, executor: Arc<Mutex<Executor>>) {
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Usually EMFILE: back off instead of spinning on accept.
                tracing::warn!("accepting a control client: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tokio::spawn(refuse(stream));
            continue;
        };
        let executor = executor.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_client(stream, executor).await {
                tracing::debug!("control client: {e}");
            }
            drop(permit);
        });
    }
}

async fn refuse(mut stream: UnixStream) {
    let line = encode(&Reply::Error(format!(
        "too many control clients (limit {MAX_CLIENTS}); try again"
    )));
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(line.as_bytes())).await;
}

fn encode(reply: &Reply) -> String {
    let mut line = serde_json::to_string(reply)
        .unwrap_or_else(|_| r#"{"error":"internal error encoding reply"}"#.to_string());
    line.push('\n');
    line
}

/// Reads one request line of at most `MAX_REQUEST_LEN` bytes. `Ok(None)` at
/// end of stream; `Err` with `InvalidData` for an over-long line.
async fn read_line(
    reader: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
    buf: &mut Vec<u8>,
) -> io::Result<Option<()>> {
    buf.clear();
    let n = reader
        .take(MAX_REQUEST_LEN as u64 + 1)
        .read_until(b'\n', buf)
        .await?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') && buf.len() > MAX_REQUEST_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "request too long",
        ));
    }
    Ok(Some(()))
}

/// Turns a request line into a request, or the error reply explaining why not.
pub fn parse_request(line: &[u8]) -> Result<Request, Reply> {
    let text = std::str::from_utf8(line)
        .map_err(|_| Reply::Error("request is not UTF-8".into()))?
        .trim();
    if text.is_empty() {
        return Err(Reply::Error("empty request".into()));
    }
    serde_json::from_str(text).map_err(|e| Reply::Error(format!("bad request: {e}")))
}

async fn serve_client(stream: UnixStream, executor: Arc<Mutex<Executor>>) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::with_capacity(256);
    loop {
        let got = match tokio::time::timeout(IDLE_TIMEOUT, read_line(&mut reader, &mut line)).await
        {
            Err(_) => return Ok(()), // idle too long
            Ok(Err(e)) if e.kind() == io::ErrorKind::InvalidData => {
                let reply = Reply::Error(format!(
                    "request longer than {MAX_REQUEST_LEN} bytes; closing the connection"
                ));
                write.write_all(encode(&reply).as_bytes()).await?;
                return Ok(());
            }
            Ok(r) => r?,
        };
        if got.is_none() {
            return Ok(());
        }
        let reply = match parse_request(&line) {
            Ok(request) => {
                tracing::debug!(?request, "control request");
                executor.lock().await.handle(request).await
            }
            Err(reply) => reply,
        };
        write.write_all(encode(&reply).as_bytes()).await?;
    }
}
