//! The unix-socket server: one JSON request per line, one reply per line.
//!
//! Anyone who can open the socket can reconfigure the switch, so the socket
//! is owner-only (0600), or 0660 with a group set by `vswitchd
//! --socket-group`. Within that, limits keep one misbehaving client from
//! hurting the others or the daemon:
//!
//! - **Clients**: at most `Limits::max_clients` (64) connections are served
//!   at once. When all are taken, a new client gets the slot of the one that
//!   has waited longest for its next request (that one is told why and
//!   closed), so idle or stalled connections can never lock an operator out.
//!   Only if every client is in the middle of a request is the new one told
//!   to try again.
//! - **Size**: a request line holds at most `MAX_REQUEST_LEN` (64 KiB)
//!   bytes; a longer one gets an error and the connection closes, since the
//!   stream cannot be resynced.
//! - **Time**: a connection may wait `Limits::idle_timeout` (60 s,
//!   `--control-idle-timeout`) for its next request to start. Once a request
//!   has started, its whole line must arrive within
//!   `Limits::request_timeout` (10 s, or the idle timeout if shorter), so a
//!   client trickling bytes is cut off; the reply must be taken within the
//!   same time. A client that hangs up in the middle of a line has nothing
//!   executed: only complete, newline-terminated lines are requests.
//! - **Content**: lines that are not UTF-8, not JSON, or not a known request
//!   get an error reply and the connection stays usable (`parse_request`).
//!
//! Every connection that breaks a limit gets an `{"error": ...}` line saying
//! which (when it can still be written) and is closed. Requests from all
//! clients run one at a time through the executor; the datapath is only ever
//! reached through its command channel, so nothing here can stall it.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex as StdMutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Mutex, Notify};

use super::executor::Executor;
use super::protocol::{Reply, Request, MAX_REQUEST_LEN};

/// Default of `Limits::max_clients`.
pub const MAX_CLIENTS: usize = 64;
/// Default of `Limits::idle_timeout`.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest `Limits::request_timeout`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a goodbye error line may take to write before the connection
/// is dropped anyway.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(1);

/// What the server allows each client (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_clients: usize,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::with_idle_timeout(IDLE_TIMEOUT)
    }
}

impl Limits {
    /// The default limits with another idle timeout; the request timeout is
    /// never longer than it.
    pub fn with_idle_timeout(idle: Duration) -> Limits {
        Limits {
            max_clients: MAX_CLIENTS,
            idle_timeout: idle,
            request_timeout: REQUEST_TIMEOUT.min(idle),
        }
    }
}

/// Who may connect besides the socket's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SocketAccess {
    /// Mode 0600.
    #[default]
    OwnerOnly,
    /// Mode 0660, group set to this GID.
    Group(u32),
}

/// Binds the control socket at `path` with the permissions `access` asks
/// for. An existing socket file is replaced only when no daemon answers on
/// it; any other kind of file there is an error.
pub fn bind(path: &Path, access: SocketAccess) -> io::Result<UnixListener> {
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
    let mode = match access {
        SocketAccess::OwnerOnly => 0o600,
        SocketAccess::Group(gid) => {
            std::os::unix::fs::chown(path, None, Some(gid))?;
            0o660
        }
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(listener)
}

/// Looks a group up by name in `group_file` (the text of `/etc/group`), or
/// takes a numeric GID as it is. Groups known only to other NSS sources
/// (LDAP, sssd) are given by number.
pub fn resolve_group(name: &str, group_file: &str) -> Result<u32, String> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    group_file
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let group = fields.next()?;
            let gid = fields.nth(1)?.parse::<u32>().ok()?;
            Some((group, gid))
        })
        .find(|(group, _)| *group == name)
        .map(|(_, gid)| gid)
        .ok_or_else(|| {
            format!("no group {name:?} in /etc/group (give a numeric GID for other sources)")
        })
}

/// The connections being served, for choosing whom to evict.
#[derive(Default)]
struct Clients {
    next_id: u64,
    table: HashMap<u64, Client>,
}

struct Client {
    /// Since when the client has been waiting for its next request to
    /// arrive; `None` while a request is being run or answered.
    waiting_since: Option<Instant>,
    /// Told to close when evicted.
    evict: Arc<Notify>,
}

type SharedClients = Arc<StdMutex<Clients>>;

fn lock(clients: &SharedClients) -> MutexGuard<'_, Clients> {
    // Nothing panics while holding it; if something did, the table is still
    // a valid table.
    clients.lock().unwrap_or_else(|e| e.into_inner())
}

impl Clients {
    /// Takes a slot for a new client, evicting the one that has waited
    /// longest if all `max` are taken. `None` when every client is busy.
    fn admit(&mut self, max: usize) -> Option<(u64, Arc<Notify>)> {
        if self.table.len() >= max {
            let (&oldest, _) = self
                .table
                .iter()
                .filter_map(|(id, c)| c.waiting_since.map(|t| (id, t)))
                .min_by_key(|(_, t)| *t)?;
            if let Some(c) = self.table.remove(&oldest) {
                c.evict.notify_one();
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let evict = Arc::new(Notify::new());
        self.table.insert(
            id,
            Client {
                waiting_since: Some(Instant::now()),
                evict: evict.clone(),
            },
        );
        Some((id, evict))
    }

    fn set_waiting(&mut self, id: u64, waiting: bool) {
        if let Some(c) = self.table.get_mut(&id) {
            c.waiting_since = waiting.then(Instant::now);
        }
    }
}

/// Frees a client's slot when its task ends, however it ends.
struct Slot {
    clients: SharedClients,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.clients).table.remove(&self.id);
    }
}

/// Accepts clients until the task is dropped.
pub async fn serve(listener: UnixListener, executor: Arc<Mutex<Executor>>, limits: Limits) {
    let clients = SharedClients::default();
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
        let Some((id, evict)) = lock(&clients).admit(limits.max_clients) else {
            tokio::spawn(goodbye(
                stream.into_split().1,
                format!(
                    "too many control clients busy (limit {}); try again",
                    limits.max_clients
                ),
            ));
            continue;
        };
        let slot = Slot {
            clients: clients.clone(),
            id,
        };
        let executor = executor.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_client(stream, executor, limits, &slot, &evict).await {
                tracing::debug!("control client: {e}");
            }
            drop(slot);
        });
        // Let the new client read the request it has most likely sent
        // already (and so become busy, never evicted) before the next
        // accept: a burst of connections then cannot push it out.
        tokio::task::yield_now().await;
    }
}

/// Writes a last error line, if the client takes it soon, and closes.
async fn goodbye(mut write: OwnedWriteHalf, message: String) {
    let line = encode(&Reply::Error(message));
    let _ = tokio::time::timeout(GOODBYE_TIMEOUT, write.write_all(line.as_bytes())).await;
}

fn encode(reply: &Reply) -> String {
    let mut line = serde_json::to_string(reply)
        .unwrap_or_else(|_| r#"{"error":"internal error encoding reply"}"#.to_string());
    line.push('\n');
    line
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

/// How waiting for the next request ended.
enum Next {
    /// A complete line is in the buffer.
    Line,
    /// The client hung up between requests.
    Closed,
    /// The client hung up in the middle of a line.
    ClosedMidLine,
    Idle,
    TooSlow,
    TooLong,
    Evicted,
}

/// Waits for the first byte of a request (`idle_timeout`), then for the
/// rest of its line (`request_timeout`), unless the client is evicted.
async fn next_request(
    reader: &mut BufReader<OwnedReadHalf>,
    line: &mut Vec<u8>,
    limits: &Limits,
    evict: &Notify,
) -> io::Result<Next> {
    line.clear();
    tokio::select! {
        biased;
        _ = evict.notified() => return Ok(Next::Evicted),
        started = tokio::time::timeout(limits.idle_timeout, reader.fill_buf()) => match started {
            Err(_) => return Ok(Next::Idle),
            Ok(Err(e)) => return Err(e),
            Ok(Ok([])) => return Ok(Next::Closed),
            Ok(Ok(_)) => {}
        },
    }
    let mut limited = reader.take(MAX_REQUEST_LEN as u64 + 1);
    let read = limited.read_until(b'\n', line);
    tokio::select! {
        biased;
        _ = evict.notified() => Ok(Next::Evicted),
        read = tokio::time::timeout(limits.request_timeout, read) => match read {
            Err(_) => Ok(Next::TooSlow),
            Ok(Err(e)) => Err(e),
            Ok(Ok(_)) if line.last() == Some(&b'\n') => Ok(Next::Line),
            Ok(Ok(_)) if line.len() > MAX_REQUEST_LEN => Ok(Next::TooLong),
            Ok(Ok(_)) => Ok(Next::ClosedMidLine),
        },
    }
}

async fn serve_client(
    stream: UnixStream,
    executor: Arc<Mutex<Executor>>,
    limits: Limits,
    slot: &Slot,
    evict: &Notify,
) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::with_capacity(256);
    loop {
        lock(&slot.clients).set_waiting(slot.id, true);
        let farewell = match next_request(&mut reader, &mut line, &limits, evict).await? {
            Next::Line => None,
            Next::Closed => return Ok(()),
            Next::ClosedMidLine => {
                Some("request line ended without a newline; not run".to_string())
            }
            Next::Idle => Some(format!(
                "no request for {} s; closing the connection",
                limits.idle_timeout.as_secs_f32()
            )),
            Next::TooSlow => Some(format!(
                "request line not complete within {} s; closing the connection",
                limits.request_timeout.as_secs_f32()
            )),
            Next::TooLong => Some(format!(
                "request longer than {MAX_REQUEST_LEN} bytes; closing the connection"
            )),
            Next::Evicted => Some(format!(
                "closing this idle connection to serve a new client (limit {} clients)",
                limits.max_clients
            )),
        };
        if let Some(message) = farewell {
            goodbye(write, message).await;
            return Ok(());
        }
        lock(&slot.clients).set_waiting(slot.id, false);
        let reply = match parse_request(&line) {
            Ok(request) if super::stream::is_streaming(&request) => {
                // Capture and monitor: many lines, then the connection ends.
                return super::stream::serve(request, &executor, &mut reader, &mut write).await;
            }
            Ok(request) => {
                tracing::debug!(?request, "control request");
                executor.lock().await.handle(request).await
            }
            Err(reply) => reply,
        };
        let sent = tokio::time::timeout(
            limits.request_timeout,
            write.write_all(encode(&reply).as_bytes()),
        )
        .await;
        match sent {
            Ok(r) => r?,
            // The client does not read its replies: nothing more to say.
            Err(_) => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_by_name_or_number() {
        let file = "root:x:0:\n# comment\nbroken\nkvm:x:993:alice,bob\nlibvirt:x:994:\n";
        assert_eq!(resolve_group("kvm", file), Ok(993));
        assert_eq!(resolve_group("libvirt", file), Ok(994));
        assert_eq!(resolve_group("4242", file), Ok(4242));
        assert!(resolve_group("nobody-here", file)
            .unwrap_err()
            .contains("nobody-here"));
        assert!(resolve_group("broken", file).is_err());
    }

    #[test]
    fn request_timeout_never_exceeds_idle() {
        assert_eq!(Limits::default().request_timeout, REQUEST_TIMEOUT);
        let short = Limits::with_idle_timeout(Duration::from_secs(2));
        assert_eq!(short.request_timeout, Duration::from_secs(2));
    }

    #[test]
    fn a_full_table_evicts_the_longest_waiting_client() {
        let mut c = Clients::default();
        let (first, first_evict) = c.admit(2).unwrap();
        let (second, _) = c.admit(2).unwrap();
        c.set_waiting(second, false); // busy: never evicted
        let (third, _) = c.admit(2).unwrap();
        assert!(!c.table.contains_key(&first));
        assert!(c.table.contains_key(&second) && c.table.contains_key(&third));
        // The evicted client's notification is stored until it looks.
        let notified = first_evict.notified();
        tokio::pin!(notified);
        assert!(futures_ready(notified.as_mut()));
        // Now the only waiting client is the third; with both busy, no room.
        c.set_waiting(third, false);
        assert!(c.admit(2).is_none());
        assert_eq!(c.table.len(), 2);
    }

    /// Whether a future is ready at its first poll.
    fn futures_ready<F: std::future::Future>(f: std::pin::Pin<&mut F>) -> bool {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        f.poll(&mut cx).is_ready()
    }
}
