//! `GET /metrics` over HTTP/1.1 for Prometheus (`vswitchd --metrics-listen
//! ADDR:PORT`), on the control thread's tokio runtime.
//!
//! A deliberately small responder: one request per connection, answered
//! and closed (`Connection: close`; Prometheus reconnects per scrape
//! anyway). The endpoint is read-only but reachable over the network, so a
//! client gets bounded room:
//!
//! - at most `MAX_CLIENTS` connections are served at once; more are told
//!   `503` (if the socket takes it at once) and closed;
//! - the request head (request line and headers) must fit in `MAX_HEAD`
//!   bytes (`431` otherwise) and arrive within `HEAD_TIMEOUT` (`408`);
//!   a body is never read;
//! - only `GET` and `HEAD` of `/metrics` (any query string) are served:
//!   another path is `404`, another method `405`, anything that is not an
//!   HTTP/1.x request line `400`;
//! - gathering waits for the executor (one request at a time, like the
//!   control socket) and the datapath's replies at most `GATHER_TIMEOUT`
//!   (`503`); the response must be taken within `WRITE_TIMEOUT`.
//!
//! The datapath never sees any of this: a scrape is a few commands on its
//! channel, like `vsctl stats`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, Semaphore};

use crate::control::executor::Executor;

pub const MAX_CLIENTS: usize = 16;
pub const MAX_HEAD: usize = 8 * 1024;
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
pub const GATHER_TIMEOUT: Duration = Duration::from_secs(10);
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// The content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds the metrics listener (port 0 picks a free port; see `local_addr`).
pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves scrapes until the runtime stops.
pub async fn serve(listener: TcpListener, executor: Arc<Mutex<Executor>>) {
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors and the like: wait a little rather
                // than spin on an accept that keeps failing.
                tracing::warn!("metrics listener: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            let _ = stream.try_write(&response(Status::Busy, "", b"too many clients\n", false));
            continue;
        };
        let executor = executor.clone();
        tokio::spawn(async move {
            handle(stream, &executor).await;
            drop(slot);
        });
    }
}

async fn handle(mut stream: TcpStream, executor: &Mutex<Executor>) {
    let (status, head_only) = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream)).await
    {
        Err(_) => (Err(Status::Timeout), false),
        Ok(Err(_)) => return,
        Ok(Ok(None)) => (Err(Status::TooLarge), false),
        Ok(Ok(Some(head))) => match parse_head(&head) {
            Ok(method) => (Ok(()), method == Method::Head),
            Err(s) => (Err(s), false),
        },
    };
    let reply = match status {
        Err(s) => response(s, "", s.reason_body().as_bytes(), false),
        Ok(()) => {
            let text = tokio::time::timeout(GATHER_TIMEOUT, async {
                executor.lock().await.metrics_text().await
            })
            .await;
            match text {
                Ok(Ok(text)) => response(Status::Ok, CONTENT_TYPE, text.as_bytes(), head_only),
                Ok(Err(e)) => {
                    tracing::warn!("metrics scrape failed: {e}");
                    response(Status::Busy, "", format!("{e}\n").as_bytes(), head_only)
                }
                Err(_) => response(
                    Status::Busy,
                    "",
                    b"metrics not gathered in time\n",
                    head_only,
                ),
            }
        }
    };
    let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
        stream.write_all(&reply).await?;
        stream.shutdown().await
    })
    .await;
}

/// Reads until the blank line that ends the head. `None`: the head did not
/// fit in `MAX_HEAD`; an error also when the client closed before it ended.
async fn read_head(stream: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = head_end(&buf) {
            buf.truncate(end);
            return Ok(Some(buf));
        }
        if buf.len() >= MAX_HEAD {
            return Ok(None);
        }
    }
}

/// Where the head ends (after CRLF CRLF, or LF LF from lenient clients),
/// if it does within `MAX_HEAD`.
fn head_end(buf: &[u8]) -> Option<usize> {
    let limit = buf.len().min(MAX_HEAD);
    let window = &buf[..limit];
    let crlf = window
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    let lf = window.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    Timeout,
    TooLarge,
    Busy,
}

impl Status {
    fn line(self) -> &'static str {
        match self {
            Status::Ok => "200 OK",
            Status::BadRequest => "400 Bad Request",
            Status::NotFound => "404 Not Found",
            Status::MethodNotAllowed => "405 Method Not Allowed",
            Status::Timeout => "408 Request Timeout",
            Status::TooLarge => "431 Request Header Fields Too Large",
            Status::Busy => "503 Service Unavailable",
        }
    }

    fn reason_body(self) -> String {
        match self {
            Status::NotFound => "not found: metrics are at /metrics\n".into(),
            _ => format!("{}\n", self.line()),
        }
    }
}

/// Checks the request line of `head`: an HTTP/1.x `GET` or `HEAD` of
/// `/metrics`. Headers are not needed and not looked at.
pub fn parse_head(head: &[u8]) -> Result<Method, Status> {
    let line_end = head.iter().position(|b| *b == b'\n').unwrap_or(head.len());
    let line = std::str::from_utf8(&head[..line_end]).map_err(|_| Status::BadRequest)?;
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Status::BadRequest);
    };
    if !matches!(version, "HTTP/1.0" | "HTTP/1.1") || !target.starts_with('/') {
        return Err(Status::BadRequest);
    }
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        m if !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()) => {
            return Err(Status::MethodNotAllowed)
        }
        _ => return Err(Status::BadRequest),
    };
    let path = target.split('?').next().unwrap_or_default();
    if path != "/metrics" {
        return Err(Status::NotFound);
    }
    Ok(method)
}

/// A whole response; `head_only` leaves the body out (but not its length).
fn response(status: Status, content_type: &str, body: &[u8], head_only: bool) -> Vec<u8> {
    let content_type = if content_type.is_empty() {
        "text/plain; charset=utf-8"
    } else {
        content_type
    };
    let allow = if status == Status::MethodNotAllowed {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let mut out = format!(
        "HTTP/1.1 {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        status.line(),
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        let ok = |s: &str| parse_head(s.as_bytes());
        assert_eq!(
            ok("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Ok(Method::Get)
        );
        assert_eq!(ok("GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Ok(Method::Get));
        assert_eq!(ok("HEAD /metrics HTTP/1.1\r\n\r\n"), Ok(Method::Head));
        assert_eq!(ok("GET / HTTP/1.1\r\n\r\n"), Err(Status::NotFound));
        assert_eq!(ok("GET /metricsx HTTP/1.1\r\n\r\n"), Err(Status::NotFound));
        assert_eq!(
            ok("POST /metrics HTTP/1.1\r\n\r\n"),
            Err(Status::MethodNotAllowed)
        );
        for bad in [
            "",
            "\r\n\r\n",
            "GET\r\n\r\n",
            "GET /metrics\r\n\r\n",
            "GET /metrics HTTP/2\r\n\r\n",
            "GET  /metrics HTTP/1.1\r\n\r\n",
            "GET metrics HTTP/1.1\r\n\r\n",
            "get /metrics HTTP/1.1\r\n\r\n",
            "GET /metrics HTTP/1.1 extra\r\n\r\n",
        ] {
            assert_eq!(ok(bad), Err(Status::BadRequest), "{bad:?}");
        }
        assert_eq!(
            parse_head(b"GET /\xff HTTP/1.1\r\n"),
            Err(Status::BadRequest)
        );
    }

    #[test]
    fn heads_end_at_the_blank_line_within_the_limit() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nbody"), Some(24));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\n"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n"), None);
        let mut long = vec![b'a'; MAX_HEAD];
        long.extend_from_slice(b"\r\n\r\n");
        assert_eq!(head_end(&long), None);
    }

    #[test]
    fn responses_carry_length_and_close() {
        let r = String::from_utf8(response(Status::Ok, CONTENT_TYPE, b"a 1\n", false)).unwrap();
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
        assert!(r.contains("Content-Length: 4\r\n"));
        assert!(r.contains("Connection: close\r\n"));
        assert!(r.ends_with("\r\n\r\na 1\n"), "{r}");
        let head = String::from_utf8(response(Status::Ok, CONTENT_TYPE, b"a 1\n", true)).unwrap();
        assert!(head.ends_with("Content-Length: 4\r\nConnection: close\r\n\r\n"));
        let r = String::from_utf8(response(Status::MethodNotAllowed, "", b"x", false)).unwrap();
        assert!(r.contains("Allow: GET, HEAD\r\n"), "{r}");
    }
}
