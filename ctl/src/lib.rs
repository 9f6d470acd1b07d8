//! `vsctl`: talks to vswitchd over its unix socket.
//!
//! Parses the command line into a protocol `Request`, sends it as one JSON
//! line, and prints the reply as a table (or as JSON with `--json`). Any
//! error exits non-zero with a message on stderr.

mod apply;
mod args;
mod bond;
mod capture;
mod client;
mod evpn;
mod generate;
mod iface;
mod metrics;
mod monitor;
mod render;
mod trace;
mod vhostuser;
mod vxlan;

use clap::Parser;

pub use args::{to_request, Cli, Cmd};

/// Runs vsctl with the process arguments; returns the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(out) => {
            if !out.is_empty() {
                println!("{out}");
            }
            0
        }
        Err(e) => {
            eprintln!("vsctl: error: {e:#}");
            1
        }
    }
}

/// Runs one command and returns what to print.
pub fn run(cli: &Cli) -> anyhow::Result<String> {
    match &cli.command {
        Cmd::Vxlan(args::VxlanCmd::Show { port }) => {
            return vxlan::show(&cli.socket, port.as_deref(), cli.json)
        }
        Cmd::Bond(bond::BondCmd::Show { port }) => {
            return bond::bond_show(&cli.socket, port.as_deref(), cli.json)
        }
        Cmd::Lacp(bond::LacpCmd::Show { port }) => {
            return bond::lacp_show(&cli.socket, port.as_deref(), cli.json)
        }
        Cmd::Apply { file, dry_run } => return apply::apply(&cli.socket, file, *dry_run, cli.json),
        Cmd::Export { yaml } => return apply::export(&cli.socket, *yaml),
        Cmd::Iface(iface::IfaceCmd::List) => return iface::list(&cli.socket, cli.json),
        Cmd::Generate(g) => return generate::run(g),
        Cmd::Metrics => return metrics::show(&cli.socket, cli.json),
        Cmd::Capture(args) => return capture::run(&cli.socket, args, cli.json),
        Cmd::Monitor => return monitor::run(&cli.socket, cli.json),
        _ => {}
    }
    let request = args::to_request(&cli.command)?;
    let data = client::call(&cli.socket, &request)?;
    render::render(&cli.command, data, cli.json)
}
