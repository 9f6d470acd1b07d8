//! `vsctl generate`: shell completions and man pages for packaging
//! (`packaging/install.sh`), made from the same clap definitions the
//! binaries parse with, so they cannot drift from the real options. vsctl
//! links the daemon's library, so it writes vswitchd's as well: one
//! generator, no build script, nothing generated at build time.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{CommandFactory, Subcommand, ValueEnum};
use clap_complete::Shell;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Program {
    Vsctl,
    Vswitchd,
}

#[derive(Debug, Subcommand)]
pub enum GenerateCmd {
    /// Print the completion script of vsctl (or vswitchd) for SHELL.
    Completions {
        shell: Shell,
        #[arg(long, value_enum, default_value = "vsctl")]
        program: Program,
    },
    /// Write man pages into DIR: vsctl.1 (and one per subcommand, vsctl-bridge.1...) and
    /// vswitchd.8.
    Man { dir: PathBuf },
}

fn command(p: Program) -> clap::Command {
    match p {
        Program::Vsctl => crate::Cli::command(),
        Program::Vswitchd => vswitch::daemon::Args::command(),
    }
}

pub fn run(cmd: &GenerateCmd) -> anyhow::Result<String> {
    match cmd {
        GenerateCmd::Completions { shell, program } => {
            let mut c = command(*program);
            let name = c.get_name().to_string();
            let mut out = Vec::new();
            clap_complete::generate(*shell, &mut c, name, &mut out);
            Ok(String::from_utf8(out)?.trim_end().to_string())
        }
        GenerateCmd::Man { dir } => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let mut written = Vec::new();
            let daemon = command(Program::Vswitchd);
            write_page(&daemon, "vswitchd", "8", dir, &mut written)?;
            let mut ctl = command(Program::Vsctl);
            ctl.build();
            write_tree(&ctl, "vsctl", dir, &mut written)?;
            Ok(written.join("\n"))
        }
    }
}

/// The page of `cmd` and of each visible subcommand (`vsctl-port-add.1`).
fn write_tree(
    cmd: &clap::Command,
    name: &str,
    dir: &Path,
    written: &mut Vec<String>,
) -> anyhow::Result<()> {
    write_page(cmd, name, "1", dir, written)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        let sub_name = format!("{name}-{}", sub.get_name());
        let sub = sub.clone().name(sub_name.clone());
        write_tree(&sub, &sub_name, dir, written)?;
    }
    Ok(())
}

fn write_page(
    cmd: &clap::Command,
    name: &str,
    section: &str,
    dir: &Path,
    written: &mut Vec<String>,
) -> anyhow::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone()).section(section);
    let mut out = Vec::new();
    man.render(&mut out)?;
    let path = dir.join(format!("{name}.{section}"));
    std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
    written.push(path.display().to_string());
    Ok(())
}
