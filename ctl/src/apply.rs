//! `vsctl apply FILE` and `vsctl export`: the whole host configuration.
//!
//! The file is read and parsed here (so a syntax error or an unknown field
//! is reported with its place before the daemon is asked anything), then
//! sent as one `apply` request: the daemon validates it again, plans and
//! runs the steps, so the plan is computed in one place only.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context};
use vswitch::config::{apply, Config};
use vswitch::control::protocol::{PlanStep, Request, MAX_REQUEST_LEN};

use crate::client;

/// Reads a configuration from `file` (`-` is standard input).
pub fn read_config(file: &Path) -> anyhow::Result<Config> {
    let text = if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading standard input")?;
        s
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
    };
    apply::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
}

pub fn apply(socket: &Path, file: &Path, dry_run: bool, json: bool) -> anyhow::Result<String> {
    let config = read_config(file)?;
    let request = Request::Apply { config, dry_run };
    let len = serde_json::to_string(&request)?.len();
    if len >= MAX_REQUEST_LEN {
        bail!(
            "{}: the configuration is {len} bytes as one request line; the daemon takes at most {MAX_REQUEST_LEN}",
            file.display()
        );
    }
    let data = client::call(socket, &request)?;
    let steps: Vec<PlanStep> =
        serde_json::from_value(data).context("unexpected reply shape from vswitchd")?;
    if json {
        return Ok(serde_json::to_string_pretty(&steps)?);
    }
    if steps.is_empty() {
        return Ok("no changes: the switch already runs this configuration".into());
    }
    let mut out: Vec<String> = steps.into_iter().map(|s| s.step).collect();
    if !dry_run {
        out.push(format!("applied {} steps", out.len()));
    }
    Ok(out.join("\n"))
}

pub fn export(socket: &Path, yaml: bool) -> anyhow::Result<String> {
    let data = client::call(socket, &Request::Export)?;
    let config: Config =
        serde_json::from_value(data).context("unexpected reply shape from vswitchd")?;
    if yaml {
        let text = apply::to_yaml(&config).map_err(|e| anyhow::anyhow!(e))?;
        Ok(text.trim_end().to_string())
    } else {
        Ok(serde_json::to_string_pretty(&config)?)
    }
}
