//! UDP request/response latency, for `bench/e2e.sh`: one request outstanding at a time.
//!
//! ```text
//! udp-rr server ADDR:PORT [--idle-secs N]     echo every datagram back; exit after N s of silence
//! udp-rr client ADDR:PORT --secs S [--rate R] [--size BYTES]
//! ```
//!
//! The client sends a request, waits up to 100 ms for its echo (a late or missing echo counts
//! as lost), and repeats for S seconds; with `--rate` it starts requests on a fixed schedule of
//! R per second (for measuring a switch's CPU at a known load) instead of back to back. It
//! prints one JSON object: requests answered, lost, achieved rate, and the p50/p99/max round
//! trip in microseconds.

use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const REPLY_TIMEOUT: Duration = Duration::from_millis(100);

fn usage() -> ExitCode {
    eprintln!(
        "usage: udp-rr server ADDR:PORT [--idle-secs N]\n       \
         udp-rr client ADDR:PORT --secs S [--rate R] [--size BYTES]"
    );
    ExitCode::from(2)
}

/// Value of `--name` in `args`, parsed.
fn opt<T: std::str::FromStr>(args: &[String], name: &str) -> Result<Option<T>, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(None),
        Some(i) => {
            let v = args.get(i + 1).ok_or(format!("{name} needs a value"))?;
            v.parse()
                .map(Some)
                .map_err(|_| format!("{name} {v:?}: not a valid value"))
        }
    }
}

fn server(addr: SocketAddr, idle: Duration) -> std::io::Result<()> {
    let sock = UdpSocket::bind(addr)?;
    sock.set_read_timeout(Some(idle))?;
    let mut buf = [0u8; 2048];
    loop {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if &buf[..n] == b"stop" {
            return Ok(());
        }
        sock.send_to(&buf[..n], from)?;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn client(dest: SocketAddr, secs: f64, rate: Option<f64>, size: usize) -> std::io::Result<()> {
    let bind: SocketAddr = if dest.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let sock = UdpSocket::bind(bind)?;
    sock.connect(dest)?;
    sock.set_read_timeout(Some(REPLY_TIMEOUT))?;
    let mut req = vec![0u8; size.max(8)];
    let mut buf = vec![0u8; 2048];
    let mut lat_us = Vec::with_capacity(1 << 20);
    let mut lost = 0u64;
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let period = rate.map(|r| Duration::from_secs_f64(1.0 / r));
    let mut seq: u64 = 0;
    let mut next = start;
    while Instant::now() < end {
        if let Some(p) = period {
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
            next += p;
        }
        seq += 1;
        req[..8].copy_from_slice(&seq.to_be_bytes());
        let t = Instant::now();
        sock.send(&req)?;
        // Wait for this request's echo; stale echoes of earlier, timed-out requests are skipped.
        loop {
            match sock.recv(&mut buf) {
                Ok(n) if n >= 8 && buf[..8] == seq.to_be_bytes() => {
                    lat_us.push(t.elapsed().as_secs_f64() * 1e6);
                    break;
                }
                Ok(_) => {
                    if t.elapsed() >= REPLY_TIMEOUT {
                        lost += 1;
                        break;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    lost += 1;
                    break;
                }
                // ICMP unreachable before the server is up, and the like.
                Err(_) => {
                    lost += 1;
                    std::thread::sleep(Duration::from_millis(1));
                    break;
                }
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat_us.sort_by(f64::total_cmp);
    // Percentiles of no answers at all are null, not 0.
    let pct = |p: f64| match lat_us.is_empty() {
        true => "null".to_string(),
        false => format!("{:.1}", percentile(&lat_us, p)),
    };
    println!(
        "{{\"requests\": {}, \"lost\": {lost}, \"rate\": {:.1}, \"p50_us\": {}, \"p99_us\": {}, \"max_us\": {}}}",
        lat_us.len(),
        lat_us.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        pct(1.0),
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(mode), Some(addr)) = (args.first(), args.get(1)) else {
        return usage();
    };
    let Ok(addr) = addr.parse::<SocketAddr>() else {
        eprintln!("udp-rr: {addr:?} is not ADDR:PORT");
        return usage();
    };
    let rest = &args[2..];
    let result = match mode.as_str() {
        "server" => match opt::<u64>(rest, "--idle-secs") {
            Ok(idle) => server(addr, Duration::from_secs(idle.unwrap_or(30))),
            Err(e) => {
                eprintln!("udp-rr: {e}");
                return usage();
            }
        },
        "client" => {
            let parsed = (|| {
                let secs = opt::<f64>(rest, "--secs")?.ok_or("--secs is required")?;
                let rate = opt::<f64>(rest, "--rate")?;
                let size = opt::<usize>(rest, "--size")?.unwrap_or(64);
                if !(secs > 0.0 && secs < 3600.0) || rate.is_some_and(|r| r <= 0.0) || size > 1472 {
                    return Err("--secs in (0, 3600), --rate > 0, --size <= 1472".to_string());
                }
                Ok((secs, rate, size))
            })();
            match parsed {
                Ok((secs, rate, size)) => client(addr, secs, rate, size),
                Err(e) => {
                    eprintln!("udp-rr: {e}");
                    return usage();
                }
            }
        }
        _ => return usage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("udp-rr: {e}");
            ExitCode::FAILURE
        }
    }
}
