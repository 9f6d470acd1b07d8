//! `vsctl monitor`: changes as they happen, one line each.
//!
//! Without `--json` each event is a line for people (time, kind, what);
//! with `--json` the daemon's JSON lines pass through unchanged. Ctrl-C
//! ends it. A client that reads too slowly gets a `lost` line saying how
//! many events it missed; the daemon never waits for it.

use std::io::{self, Write};
use std::path::Path;

use anyhow::{bail, Context};
use tokio::signal::unix::{signal, SignalKind};
use vswitch::control::protocol::Request;
use vswitch::events::Event;

use crate::capture::{open_stream, runtime};

/// The line printed for one JSON event line.
pub fn render(line: &str, json: bool) -> String {
    if json {
        return line.to_string();
    }
    match serde_json::from_str::<Event>(line) {
        Ok(ev) => ev.to_text(),
        // A newer daemon's event: show it as it came.
        Err(_) => line.to_string(),
    }
}

pub fn run(socket: &Path, json: bool) -> anyhow::Result<String> {
    runtime()?.block_on(async {
        let mut sigint = signal(SignalKind::interrupt()).context("catching Ctrl-C")?;
        let mut sigterm = signal(SignalKind::terminate()).context("catching SIGTERM")?;
        let mut stream = open_stream(socket, &Request::Monitor).await?;
        let mut out = io::stdout().lock();
        loop {
            tokio::select! {
                _ = sigint.recv() => return Ok(String::new()),
                _ = sigterm.recv() => return Ok(String::new()),
                line = stream.lines.next_line() => {
                    let Some(line) = line.context("reading from vswitchd")? else {
                        bail!("vswitchd closed the monitor connection");
                    };
                    let wrote = writeln!(out, "{}", render(&line, json)).and_then(|()| out.flush());
                    match wrote {
                        Ok(()) => {}
                        // The reader went away (`vsctl monitor | head`).
                        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(String::new()),
                        Err(e) => bail!("writing to stdout: {e}"),
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_render_for_people_or_pass_through() {
        let line = r#"{"time":"2025-01-01T00:00:00.000001Z","event":"link","port":"p1","up":true}"#;
        assert_eq!(render(line, true), line);
        assert_eq!(
            render(line, false),
            "2025-01-01T00:00:00.000001Z  link           port p1 up"
        );
        let future = r#"{"time":"t","event":"teleport","port":"p1"}"#;
        assert_eq!(render(future, false), future);
    }
}
