//! `vswitchd`: wiring of the datapath thread, the restored configuration and
//! the control server.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use crate::config::Config;
use crate::control::executor::Executor;
use crate::control::server;
use crate::datapath::{DatapathHandle, WorkerPlan};

mod notify;

pub const DEFAULT_SOCKET: &str = "/run/vswitch/vswitchd.sock";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/vswitch";

/// The vswitch daemon: a userspace L2 switch for hypervisor hosts.
#[derive(Debug, Parser)]
#[command(name = "vswitchd", version)]
pub struct Args {
    /// Control socket path (owner-only).
    #[arg(long, default_value = DEFAULT_SOCKET, env = "VSWITCH_SOCKET")]
    pub socket: PathBuf,
    /// Directory holding the persisted configuration.
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Let this group use the control socket too (mode 0660, group GROUP):
    /// a name from /etc/group or a numeric GID.
    #[arg(long, value_name = "GROUP")]
    pub socket_group: Option<String>,
    /// Close a control connection that sends no request for SECS seconds;
    /// a started request line must also complete within min(10, SECS).
    #[arg(long, value_name = "SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub control_idle_timeout: u64,
    /// Serve Prometheus metrics on http://ADDR:PORT/metrics (off unless
    /// given; port 0 picks a free port, logged at start).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Datapath worker threads. Each runs whole bridges (a bridge and its
    /// ports stay on one thread; bridges joined by a VXLAN tunnel share
    /// one); new bridges go to the worker with the fewest. Default: one,
    /// or one per CPU of --worker-cpus.
    #[arg(long, value_name = "N", env = "VSWITCH_WORKERS",
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: Option<u16>,
    /// Pin worker i to the i-th CPU of this list (e.g. 2,3).
    #[arg(long, value_name = "CPU,...", value_delimiter = ',')]
    pub worker_cpus: Vec<usize>,
    /// Check a configuration file (JSON or YAML, the schema `vsctl apply`
    /// takes) and exit: 0 if valid, 1 with the problem named. Starts no
    /// daemon and changes nothing.
    #[arg(long, value_name = "FILE")]
    pub check_config: Option<PathBuf>,
}

/// `vswitchd --check-config FILE`: the message to print and whether the
/// file is valid.
pub fn check_config(path: &std::path::Path) -> Result<String, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
    let config = crate::config::apply::parse(&text).map_err(|e| format!("{shown}: {e}"))?;
    crate::config::apply::validate(&config).map_err(|e| format!("{shown}: {e}"))?;
    let ports: usize = config.bridges.iter().map(|b| b.ports.len()).sum();
    Ok(format!(
        "{shown}: valid ({} bridges, {ports} ports)",
        config.bridges.len()
    ))
}

/// The datapath threads `--workers` and `--worker-cpus` ask for.
pub fn worker_plan(args: &Args) -> anyhow::Result<WorkerPlan> {
    let cpus = args.worker_cpus.clone();
    let workers = match args.workers {
        Some(n) => usize::from(n),
        None => cpus.len().max(1),
    };
    if !cpus.is_empty() && cpus.len() != workers {
        anyhow::bail!(
            "--worker-cpus names {} CPUs for {workers} workers: give one CPU per worker",
            cpus.len()
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(dup) = cpus.iter().find(|c| !seen.insert(**c)) {
        anyhow::bail!("--worker-cpus names CPU {dup} twice: two pinned workers would share it");
    }
    Ok(WorkerPlan { workers, cpus })
}

pub fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(path) = &args.check_config {
        match check_config(path) {
            Ok(msg) => {
                println!("{msg}");
                return Ok(());
            }
            Err(msg) => {
                eprintln!("vswitchd: invalid configuration: {msg}");
                std::process::exit(1);
            }
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    run(args)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let access = match &args.socket_group {
        None => server::SocketAccess::OwnerOnly,
        Some(group) => {
            let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
            let gid = server::resolve_group(group, &groups)
                .map_err(|e| anyhow::anyhow!("--socket-group: {e}"))?;
            server::SocketAccess::Group(gid)
        }
    };
    let limits = server::Limits::with_idle_timeout(Duration::from_secs(args.control_idle_timeout));
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("creating state dir {}", args.state_dir.display()))?;
    let config = Config::load(&args.state_dir)?;
    let plan = worker_plan(&args)?;
    let datapath = DatapathHandle::spawn_workers(&plan).context("starting the datapath threads")?;
    tracing::info!(workers = plan.workers, cpus = ?plan.cpus, "datapath started");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the control runtime")?;
    let result = runtime.block_on(async {
        // The metrics port first: failing there leaves no socket file.
        let metrics = match args.metrics_listen {
            Some(addr) => Some(
                crate::metrics::http::bind(addr)
                    .await
                    .with_context(|| format!("binding --metrics-listen {addr}"))?,
            ),
            None => None,
        };
        // Bind before restoring so a second daemon on the same socket fails
        // before it touches any interface.
        let listener = server::bind(&args.socket, access)
            .with_context(|| format!("binding control socket {}", args.socket.display()))?;
        let state_dir = args.state_dir.clone();
        let executor =
            tokio::task::spawn_blocking(move || Executor::restore(config, state_dir, datapath))
                .await
                .context("restoring the configuration")?;
        let mut executor = executor;
        executor.resume_evpn().await;
        let executor = Arc::new(tokio::sync::Mutex::new(executor));
        if let Some(listener) = metrics {
            let addr = listener.local_addr()?;
            tracing::info!("metrics listening on http://{addr}/metrics");
            tokio::spawn(crate::metrics::http::serve(listener, executor.clone()));
        }
        tracing::info!(socket = %args.socket.display(), "vswitchd ready");
        // Bound, listening and restored: clients are served from here on.
        notify::notify("READY=1\nSTATUS=serving the control socket");

        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = server::serve(listener, executor.clone(), limits) => {}
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
        }
        notify::notify("STOPPING=1");
        let _ = std::fs::remove_file(&args.socket);
        executor.lock().await.datapath_mut().shutdown();
        anyhow::Ok(())
    });
    // Client tasks may still hold the executor; dropping the runtime ends them.
    drop(runtime);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(argv: &[&str]) -> anyhow::Result<WorkerPlan> {
        let mut full = vec!["vswitchd"];
        full.extend_from_slice(argv);
        worker_plan(&Args::try_parse_from(full)?)
    }

    #[test]
    fn workers_and_their_cpus() {
        // The tests' environment may set VSWITCH_WORKERS; these give it.
        let p = plan(&["--workers", "1"]).unwrap();
        assert_eq!((p.workers, p.cpus.len()), (1, 0));
        let p = plan(&["--workers", "3"]).unwrap();
        assert_eq!((p.workers, p.cpus), (3, vec![]));
        let p = plan(&["--workers", "2", "--worker-cpus", "0,1"]).unwrap();
        assert_eq!((p.workers, p.cpus), (2, vec![0, 1]));
        let e = plan(&["--workers", "2", "--worker-cpus", "1"]).unwrap_err();
        assert!(e.to_string().contains("one CPU per worker"), "{e}");
        let e = plan(&["--workers", "2", "--worker-cpus", "1,1"]).unwrap_err();
        assert!(e.to_string().contains("CPU 1 twice"), "{e}");
        assert!(plan(&["--workers", "0"]).is_err());
        assert!(plan(&["--workers", "65"]).is_err());
    }
}
