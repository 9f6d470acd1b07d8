//! `vswitchd`: wiring of the datapath thread, the restored configuration and
//! the control server.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;

use crate::config::Config;
use crate::control::executor::Executor;
use crate::control::server;
use crate::datapath::DatapathHandle;

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
}

pub fn main() -> anyhow::Result<()> {
    let args = Args::parse();
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
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("creating state dir {}", args.state_dir.display()))?;
    let config = Config::load(&args.state_dir)?;
    let datapath = DatapathHandle::spawn().context("starting the datapath thread")?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the control runtime")?;
    let result = runtime.block_on(async {
        // Bind before restoring so a second daemon on the same socket fails
        // before it touches any interface.
        let listener = server::bind(&args.socket)
            .with_context(|| format!("binding control socket {}", args.socket.display()))?;
        let state_dir = args.state_dir.clone();
        let executor =
            tokio::task::spawn_blocking(move || Executor::restore(config, state_dir, datapath))
                .await
                .context("restoring the configuration")?;
        let executor = Arc::new(tokio::sync::Mutex::new(executor));
        tracing::info!(socket = %args.socket.display(), "vswitchd ready");

        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = server::serve(listener, executor.clone()) => {}
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
        }
        let _ = std::fs::remove_file(&args.socket);
        executor.lock().await.datapath_mut().shutdown();
        anyhow::Ok(())
    });
    // Client tasks may still hold the executor; dropping the runtime ends them.
    drop(runtime);
    result
}
