//! `vsctl capture PORT -w FILE`: the frames passing a port, as a pcap file
//! (or a pcap stream on stdout with `-w -`, for `| tcpdump -r -`).
//!
//! The daemon streams JSON lines (see `vswitch::control::stream`); this
//! turns each frame line into a pcap record and flushes it at once. Ctrl-C
//! (or the output closing) asks the daemon to stop; it answers with an end
//! line saying how many frames the capture lost, and a summary goes to
//! stderr. A second Ctrl-C leaves at once.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::signal::unix::{signal, SignalKind};
use vswitch::capture::{pcap, CaptureEnd, CaptureInfo, CaptureLine, Direction};
use vswitch::control::protocol::{Reply, Request};

/// How long the daemon gets to answer the request, and to end a capture
/// after being asked to.
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, clap::Args)]
pub struct CaptureArgs {
    /// The port whose frames to capture.
    pub port: String,
    /// Which frames: received on the port (rx), sent through it (tx), or both.
    #[arg(long, default_value = "both")]
    pub direction: Direction,
    /// Stop after N frames.
    #[arg(short = 'c', long, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Keep at most N bytes of each frame (the original length is kept in
    /// the file). Default 65535.
    #[arg(short = 's', long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub snaplen: Option<u32>,
    /// Frames that may wait in the daemon for this reader before the
    /// capture loses some (default: 8 MiB worth of snaplen, 16 to 4096).
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub buffers: Option<u32>,
    /// Write the pcap to FILE; `-` for stdout.
    #[arg(short = 'w', value_name = "FILE", required = true)]
    pub write: PathBuf,
}

impl CaptureArgs {
    pub fn request(&self) -> Request {
        Request::Capture {
            port: self.port.clone(),
            direction: self.direction,
            count: self.count,
            snaplen: self.snaplen,
            buffers: self.buffers,
        }
    }
}

/// A streaming connection after its first (successful) reply line.
pub(crate) struct Stream {
    pub lines: Lines<BufReader<OwnedReadHalf>>,
    pub write: OwnedWriteHalf,
    pub data: serde_json::Value,
}

/// Connects, sends `request` and reads the first reply line: its data, or
/// the daemon's error.
pub(crate) async fn open_stream(socket: &Path, request: &Request) -> anyhow::Result<Stream> {
    let stream = UnixStream::connect(socket).await.with_context(|| {
        format!(
            "cannot reach vswitchd at {} (is it running? set --socket or VSWITCH_SOCKET)",
            socket.display()
        )
    })?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_string(request)?;
    line.push('\n');
    write
        .write_all(line.as_bytes())
        .await
        .context("sending the request")?;
    let mut lines = BufReader::new(read).lines();
    let first = tokio::time::timeout(TIMEOUT, lines.next_line())
        .await
        .map_err(|_| anyhow!("no reply from vswitchd within {TIMEOUT:?}"))?
        .context("reading the reply")?
        .ok_or_else(|| anyhow!("vswitchd closed the connection without a reply"))?;
    match serde_json::from_str::<Reply>(&first)
        .map_err(|e| anyhow!("unreadable reply from vswitchd: {e}"))?
    {
        Reply::Ok(data) => Ok(Stream { lines, write, data }),
        Reply::Error(message) => Err(anyhow!(message)),
    }
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting vsctl's event loop")
}

/// Runs the capture to its end; the summary goes to stderr.
pub fn run(socket: &Path, args: &CaptureArgs, json: bool) -> anyhow::Result<String> {
    let summary = runtime()?.block_on(capture(socket, args))?;
    if json {
        eprintln!("{}", serde_json::to_string(&summary.to_json())?);
    } else {
        eprintln!("vsctl: {}", summary.text());
    }
    Ok(String::new())
}

/// What a capture did, for the summary line.
struct Summary {
    port: String,
    written: u64,
    end: Option<CaptureEnd>,
    output_closed: bool,
}

impl Summary {
    fn reason(&self) -> String {
        match (&self.end, self.output_closed) {
            (_, true) => "output closed".into(),
            (Some(end), false) => end.reason.clone(),
            (None, false) => "connection to vswitchd lost".into(),
        }
    }

    fn text(&self) -> String {
        let lost = match &self.end {
            Some(e) if e.lost > 0 => format!(
                "{} lost by the capture (the reader was slower than the traffic; \
                 traffic itself lost nothing)",
                e.lost
            ),
            Some(_) => "0 lost by the capture".into(),
            None => "frames lost by the capture unknown".into(),
        };
        format!(
            "capture on {} ended ({}): {} frames written, {lost}",
            self.port,
            self.reason(),
            self.written
        )
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "port": self.port,
            "frames": self.written,
            "lost": self.end.as_ref().map(|e| e.lost),
            "reason": self.reason(),
        })
    }
}

fn open_output(path: &Path) -> anyhow::Result<Box<dyn Write>> {
    if path == Path::new("-") {
        return Ok(Box::new(io::stdout().lock()));
    }
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(Box::new(BufWriter::new(file)))
}

async fn capture(socket: &Path, args: &CaptureArgs) -> anyhow::Result<Summary> {
    let mut sigint = signal(SignalKind::interrupt()).context("catching Ctrl-C")?;
    let mut sigterm = signal(SignalKind::terminate()).context("catching SIGTERM")?;
    let Stream {
        mut lines,
        mut write,
        data,
    } = open_stream(socket, &args.request()).await?;
    let info: CaptureInfo =
        serde_json::from_value(data).context("unexpected reply shape from vswitchd")?;
    let mut out = open_output(&args.write)?;
    let mut summary = Summary {
        port: info.port.clone(),
        written: 0,
        end: None,
        output_closed: false,
    };
    // The file is a valid (empty) capture from the start.
    if let Err(e) = out
        .write_all(&pcap::global_header(info.snaplen))
        .and_then(|()| out.flush())
    {
        if e.kind() != io::ErrorKind::BrokenPipe {
            bail!("writing {}: {e}", args.write.display());
        }
        summary.output_closed = true;
    }
    let mut deadline: Option<tokio::time::Instant> = None;
    if summary.output_closed {
        ask_to_stop(&mut write, &mut deadline).await;
    }
    loop {
        let give_up = async move {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sigint.recv() => {
                if deadline.is_some() {
                    break; // a second Ctrl-C: leave now
                }
                ask_to_stop(&mut write, &mut deadline).await;
            }
            _ = sigterm.recv() => break,
            _ = give_up => break,
            line = lines.next_line() => {
                let Some(line) = line.context("reading from vswitchd")? else {
                    break;
                };
                match serde_json::from_str::<CaptureLine>(&line)
                    .map_err(|e| anyhow!("unreadable line from vswitchd: {e}"))?
                {
                    CaptureLine::End(end) => {
                        summary.end = Some(end);
                        break;
                    }
                    CaptureLine::Frame(_) if summary.output_closed => {}
                    CaptureLine::Frame(f) => {
                        let bytes = f.bytes().map_err(|e| anyhow!(e))?;
                        let wrote = pcap::write_record(&mut out, info.snaplen, f.time_ns, &bytes, f.orig_len)
                            .and_then(|()| out.flush());
                        match wrote {
                            Ok(()) => summary.written += 1,
                            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                                summary.output_closed = true;
                                ask_to_stop(&mut write, &mut deadline).await;
                            }
                            Err(e) => bail!("writing {}: {e}", args.write.display()),
                        }
                    }
                }
            }
        }
    }
    let _ = out.flush();
    Ok(summary)
}

/// Closes our side of the connection, which tells the daemon to end the
/// capture, and gives it `TIMEOUT` to send its end line.
async fn ask_to_stop(write: &mut OwnedWriteHalf, deadline: &mut Option<tokio::time::Instant>) {
    if deadline.is_none() {
        *deadline = Some(tokio::time::Instant::now() + TIMEOUT);
        let _ = write.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_say_what_was_written_and_lost() {
        let mut s = Summary {
            port: "p1".into(),
            written: 10,
            end: Some(CaptureEnd {
                frames: 10,
                lost: 0,
                reason: "count".into(),
            }),
            output_closed: false,
        };
        assert_eq!(
            s.text(),
            "capture on p1 ended (count): 10 frames written, 0 lost by the capture"
        );
        s.end = Some(CaptureEnd {
            frames: 4,
            lost: 7,
            reason: "stopped".into(),
        });
        s.written = 4;
        assert!(s.text().contains("(stopped): 4 frames written, 7 lost"));
        assert_eq!(s.to_json()["lost"], 7);
        s.output_closed = true;
        assert!(s.text().contains("(output closed)"));
        s.end = None;
        s.output_closed = false;
        assert!(s.text().contains("connection to vswitchd lost"));
    }
}
