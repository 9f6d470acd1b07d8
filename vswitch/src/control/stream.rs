//! Streaming verbs: `capture` and `monitor` answer one request with many
//! lines, on a connection of their own.
//!
//! Framing (JSON lines, like the rest of the protocol, so one parser
//! serves everything and a stream can be read with `socat`):
//!
//! ```text
//! -> {"verb":"capture","args":{"port":"p1","direction":"both","count":10}}
//! <- {"ok":{"port":"p1","direction":"both","snaplen":65535,"count":10,"buffers":128}}
//! <- {"frame":{"time_ns":1718000000123456789,"dir":"rx","orig_len":98,"data":"BASE64"}}
//! <- ...
//! <- {"end":{"frames":10,"lost":0,"reason":"count"}}
//!
//! -> {"verb":"monitor"}
//! <- {"ok":null}
//! <- {"time":"2025-01-01T10:00:00.000001Z","event":"link","port":"p1","up":false}
//! <- ...
//! ```
//!
//! The first line is an ordinary reply, so a refused request (no such
//! port, a capture already running on it) is `{"error": ...}` as usual. The
//! client ends a stream by closing its connection or its write side (or by
//! sending any line); a capture then detaches from the datapath, drains what
//! its ring still holds and sends its `end` line, which says how many frames
//! the capture lost to a slow reader. Frames are base64 (a third bigger than
//! binary, but any JSON reader can take the stream apart).
//!
//! Neither stream ever makes the datapath wait: a capture's ring and the
//! events' broadcast are bounded, and a client that does not read only
//! loses its own frames or events (counted). A streaming connection holds
//! no executor lock while it streams, so other clients are served as usual;
//! it counts against the client limit and is never evicted as idle.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::Mutex;

use super::executor::Executor;
use super::protocol::{Reply, Request};
use crate::capture::{
    default_buffers, CaptureEnd, CaptureInfo, CaptureLine, CapturedFrame, Direction, Ring, Tap,
    DEFAULT_SNAPLEN, MAX_BUFFERS, MAX_SNAPLEN,
};
use crate::datapath::Command;
use crate::events::{Event, EventKind};

/// How often a capture's ring is drained.
const DRAIN_EVERY: Duration = Duration::from_millis(5);
/// Bytes of frame lines gathered before one write.
const WRITE_CHUNK: usize = 64 * 1024;

/// Tells one capture from the next on the same port.
static NEXT_CAPTURE: AtomicU64 = AtomicU64::new(1);

/// Whether `request` is served by [`serve`] rather than the executor.
pub fn is_streaming(request: &Request) -> bool {
    matches!(request, Request::Capture { .. } | Request::Monitor)
}

/// Serves a streaming request until it ends; the connection closes after.
pub async fn serve(
    request: Request,
    executor: &Arc<Mutex<Executor>>,
    reader: &mut BufReader<OwnedReadHalf>,
    write: &mut OwnedWriteHalf,
) -> io::Result<()> {
    match request {
        Request::Capture {
            port,
            direction,
            count,
            snaplen,
            buffers,
        } => {
            let settings = match Settings::check(port, direction, count, snaplen, buffers) {
                Ok(s) => s,
                Err(e) => return send_line(write, &Reply::Error(e)).await,
            };
            capture(settings, executor, reader, write).await
        }
        Request::Monitor => monitor(executor, reader, write).await,
        _ => send_line(write, &Reply::Error("not a streaming request".into())).await,
    }
}

async fn send_line<T: serde::Serialize>(write: &mut OwnedWriteHalf, v: &T) -> io::Result<()> {
    let mut line = serde_json::to_vec(v).map_err(io::Error::other)?;
    line.push(b'\n');
    write.write_all(&line).await
}

/// A capture request, checked.
struct Settings {
    port: String,
    direction: Direction,
    count: Option<u64>,
    snaplen: u32,
    buffers: u32,
}

impl Settings {
    fn check(
        port: String,
        direction: Direction,
        count: Option<u64>,
        snaplen: Option<u32>,
        buffers: Option<u32>,
    ) -> Result<Settings, String> {
        let snaplen = snaplen.unwrap_or(DEFAULT_SNAPLEN);
        if !(1..=MAX_SNAPLEN).contains(&snaplen) {
            return Err(format!(
                "snaplen {snaplen} out of range: 1 to {MAX_SNAPLEN}"
            ));
        }
        if count == Some(0) {
            return Err("count must be at least 1".into());
        }
        let buffers = buffers.unwrap_or_else(|| default_buffers(snaplen));
        if !(1..=MAX_BUFFERS).contains(&buffers) {
            return Err(format!(
                "buffers {buffers} out of range: 1 to {MAX_BUFFERS}"
            ));
        }
        Ok(Settings {
            port,
            direction,
            count,
            snaplen,
            buffers,
        })
    }
}

async fn capture(
    s: Settings,
    executor: &Arc<Mutex<Executor>>,
    reader: &mut BufReader<OwnedReadHalf>,
    write: &mut OwnedWriteHalf,
) -> io::Result<()> {
    let ring = Ring::new(s.buffers, s.snaplen);
    let id = NEXT_CAPTURE.fetch_add(1, Ordering::Relaxed);
    let tap = Box::new(Tap::new(ring.clone(), s.direction, s.count, id));
    let port = s.port.clone();
    let started = executor
        .lock()
        .await
        .datapath_mut()
        .call(|reply| Command::CaptureStart { port, tap, reply })
        .await;
    if let Err(e) = started {
        return send_line(write, &Reply::Error(e.to_string())).await;
    }
    let info = CaptureInfo {
        port: s.port.clone(),
        direction: s.direction,
        snaplen: s.snaplen,
        count: s.count,
        buffers: s.buffers,
    };
    tracing::info!(port = %s.port, direction = s.direction.as_str(), "capture started");
    let mut written = 0u64;
    let mut client_gone = send_line(write, &Reply::ok(&info)).await.is_err();

    let mut tick = tokio::time::interval(DRAIN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let reason = loop {
        if client_gone {
            break "client gone";
        }
        tokio::select! {
            biased;
            // End of stream, or any line: the client wants it to end.
            _ = reader.fill_buf() => break "stopped",
            _ = tick.tick() => {}
        }
        if drain(&ring, write, &mut written, s.count).await.is_err() {
            client_gone = true;
            continue;
        }
        if s.count.is_some_and(|c| written >= c) {
            break "count";
        }
        if !ring.is_attached() {
            break "port deleted";
        }
    };

    // Detach from the datapath; after the reply, nothing fills the ring.
    let port = s.port.clone();
    let _ = executor
        .lock()
        .await
        .datapath_mut()
        .call(|reply| Command::CaptureStop { port, id, reply })
        .await;
    if !client_gone && drain(&ring, write, &mut written, s.count).await.is_err() {
        client_gone = true;
    }
    let end = CaptureEnd {
        frames: written,
        lost: ring.lost(),
        reason: reason.to_string(),
    };
    tracing::info!(
        port = %s.port,
        frames = end.frames,
        lost = end.lost,
        reason,
        "capture ended"
    );
    if !client_gone {
        send_line(write, &CaptureLine::End(end)).await?;
        write.shutdown().await?;
    }
    Ok(())
}

/// Sends every frame waiting in the ring (up to `limit` in all), giving
/// each buffer back as soon as its line is made.
async fn drain(
    ring: &Ring,
    write: &mut OwnedWriteHalf,
    written: &mut u64,
    limit: Option<u64>,
) -> io::Result<()> {
    let mut out = Vec::new();
    while limit.is_none_or(|c| *written < c) {
        let Some(rec) = ring.pop() else { break };
        let line = CaptureLine::Frame(CapturedFrame::from_record(&rec));
        ring.recycle(rec);
        serde_json::to_writer(&mut out, &line).map_err(io::Error::other)?;
        out.push(b'\n');
        *written += 1;
        if out.len() >= WRITE_CHUNK {
            write.write_all(&out).await?;
            out.clear();
        }
    }
    if !out.is_empty() {
        write.write_all(&out).await?;
    }
    Ok(())
}

async fn monitor(
    executor: &Arc<Mutex<Executor>>,
    reader: &mut BufReader<OwnedReadHalf>,
    write: &mut OwnedWriteHalf,
) -> io::Result<()> {
    let Some(hub) = executor.lock().await.events() else {
        return send_line(
            write,
            &Reply::Error("events are not available in this daemon".into()),
        )
        .await;
    };
    let mut lines = hub.subscribe();
    send_line(write, &Reply::done()).await?;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        tokio::select! {
            biased;
            _ = reader.fill_buf() => return Ok(()),
            next = lines.recv() => match next {
                Ok(line) => buf.extend_from_slice(line.as_bytes()),
                Err(RecvError::Lagged(n)) => {
                    let lost = Event::new(crate::capture::wall_clock_ns(), EventKind::Lost { count: n });
                    buf.extend_from_slice(lost.to_json().as_bytes());
                }
                Err(RecvError::Closed) => return Ok(()),
            },
        }
        buf.push(b'\n');
        write.write_all(&buf).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        snaplen: Option<u32>,
        count: Option<u64>,
        buffers: Option<u32>,
    ) -> Result<Settings, String> {
        Settings::check("p1".into(), Direction::Both, count, snaplen, buffers)
    }

    #[test]
    fn capture_settings_are_checked_and_defaulted() {
        let s = check(None, None, None).unwrap();
        assert_eq!(
            (s.snaplen, s.buffers),
            (DEFAULT_SNAPLEN, default_buffers(DEFAULT_SNAPLEN))
        );
        let s = check(Some(128), Some(5), Some(8)).unwrap();
        assert_eq!((s.snaplen, s.count, s.buffers), (128, Some(5), 8));
        assert!(check(Some(0), None, None)
            .err()
            .unwrap()
            .contains("snaplen"));
        assert!(check(Some(MAX_SNAPLEN + 1), None, None)
            .err()
            .unwrap()
            .contains("snaplen"));
        assert!(check(None, Some(0), None).err().unwrap().contains("count"));
        assert!(check(None, None, Some(0))
            .err()
            .unwrap()
            .contains("buffers"));
        assert!(check(None, None, Some(MAX_BUFFERS + 1))
            .err()
            .unwrap()
            .contains("buffers"));
    }

    #[test]
    fn only_capture_and_monitor_stream() {
        assert!(is_streaming(&Request::Monitor));
        assert!(is_streaming(&Request::Capture {
            port: "p1".into(),
            direction: Direction::Rx,
            count: None,
            snaplen: None,
            buffers: None,
        }));
        assert!(!is_streaming(&Request::Version));
    }
}
