//! Every concrete `vsctl` command shown in the docs' code blocks must be a
//! command vsctl accepts: it parses, and when it is one request, its
//! options are valid. Syntax summaries (with `[...]`, `A|B` or
//! placeholders in capitals) are skipped; so is output.

use std::path::{Path, PathBuf};

use clap::Parser;
use vsctl::{to_request, Cli, Cmd};

fn docs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).expect("docs/ exists") {
        let path = entry.expect("readable docs/").path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The vsctl command lines in the code blocks of `text` (continuation
/// lines joined), each with its line number.
fn commands(text: &str) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    let mut block: Vec<(usize, &str)> = Vec::new();
    let mut in_block = false;
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            if in_block {
                out.extend(block_commands(&block));
                block.clear();
            }
            in_block = !in_block;
        } else if in_block {
            block.push((n + 1, line));
        }
    }
    out
}

/// The commands of one code block. In a block with `$ ` prompts only the
/// prompted lines are commands (the rest is output).
fn block_commands(block: &[(usize, &str)]) -> Vec<(usize, Vec<String>)> {
    let prompted = block.iter().any(|(_, l)| l.trim_start().starts_with("$ "));
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for &(n, line) in block {
        let (start, mut joined) = match pending.take() {
            Some((start, before)) => (start, format!("{before} {}", line.trim())),
            None => {
                let t = line.trim_start();
                let t = match t.strip_prefix("$ ") {
                    Some(rest) => rest,
                    None if prompted => continue,
                    None => t,
                };
                let Some(first) = t.split_whitespace().next() else {
                    continue;
                };
                if first != "vsctl" && !first.ends_with("/vsctl") {
                    continue;
                }
                (n, t.to_string())
            }
        };
        if joined.ends_with('\\') {
            joined.pop();
            pending = Some((start, joined));
            continue;
        }
        let mut words = Vec::new();
        for w in joined.split_whitespace().skip(1) {
            if w.starts_with('#')
                || matches!(w, "|" | ">" | "<" | "&&" | "||" | ";")
                || w.starts_with("2>")
            {
                break;
            }
            words.push(w.to_string());
        }
        out.push((start, words));
    }
    out
}

/// A syntax summary rather than an example.
fn is_summary(words: &[String]) -> bool {
    words.iter().any(|w| {
        !w.is_ascii()
            || w.contains('[')
            || w.contains("...")
            || (w.contains('|') && !w.starts_with("hex="))
            || w.split('=').any(|part| {
                part.len() > 1
                    && part
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
                    && part.chars().any(|c| c.is_ascii_uppercase())
            })
    })
}

#[test]
fn documented_commands_are_accepted() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in docs() {
        let text = std::fs::read_to_string(&file).expect("readable doc");
        for (line, words) in commands(&text) {
            if is_summary(&words) {
                continue;
            }
            let argv = std::iter::once("vsctl".to_string()).chain(words.iter().cloned());
            let cli = match Cli::try_parse_from(argv) {
                Ok(cli) => cli,
                Err(e) => {
                    failures.push(format!(
                        "{}:{line}: vsctl {}: {e}",
                        file.display(),
                        words.join(" ")
                    ));
                    continue;
                }
            };
            let single_request = !matches!(
                cli.command,
                Cmd::Vxlan(_)
                    | Cmd::Bond(_)
                    | Cmd::Lacp(_)
                    | Cmd::Apply { .. }
                    | Cmd::Export { .. }
                    | Cmd::Iface(_)
                    | Cmd::Generate(_)
            );
            if single_request {
                if let Err(e) = to_request(&cli.command) {
                    failures.push(format!(
                        "{}:{line}: vsctl {}: {e}",
                        file.display(),
                        words.join(" ")
                    ));
                }
            }
            checked += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "documented commands vsctl refuses:\n{}",
        failures.join("\n")
    );
    assert!(
        checked >= 15,
        "only {checked} documented commands found: is the parser right?"
    );
    eprintln!("{checked} documented vsctl commands accepted");
}
