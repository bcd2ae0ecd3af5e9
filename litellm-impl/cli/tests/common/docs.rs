//! The shell commands a how-to documents, taken from its markdown so that the tests run
//! exactly what a reader copies.

use std::path::Path;
use std::process::{Command, Output};

/// The commands of the `sh` code blocks under the heading `heading` (up to the next
/// heading) of the document at `path` (relative to the workspace), one per line; `\`
/// continuations joined, comments and blank lines dropped. Panics when there is none.
pub fn sh_commands(path: &str, heading: &str) -> Vec<String> {
    let text = std::fs::read_to_string(super::workspace().join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut commands = Vec::new();
    let mut in_section = false;
    let mut in_sh = false;
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(info) = trimmed.strip_prefix("```") {
            in_sh = !in_sh && info.trim() == "sh";
            continue;
        }
        if !in_sh && trimmed.starts_with('#') {
            in_section = trimmed.trim_start_matches('#').trim() == heading;
            continue;
        }
        if !in_sh || !in_section {
            continue;
        }
        let code = match trimmed.find(" #") {
            Some(at) => trimmed[..at].trim_end(),
            None if trimmed.starts_with('#') => "",
            None => trimmed,
        };
        if let Some(start) = code.strip_suffix('\\') {
            pending.push_str(start);
            continue;
        }
        pending.push_str(code);
        if !pending.trim().is_empty() {
            commands.push(pending.trim().to_owned());
        }
        pending.clear();
    }
    assert!(
        !commands.is_empty(),
        "{path} has no sh commands under the heading {heading:?}"
    );
    commands
}

/// Runs a documented `command` with `sh` in `dir` (the docs' paths are relative to the
/// workspace's root, or to a copy of what it holds), with `path_dirs` first on `PATH`
/// and `env` set.
pub fn run_sh(command: &str, dir: &Path, path_dirs: &[&Path], env: &[(&str, &Path)]) -> Output {
    let mut path: Vec<std::path::PathBuf> = path_dirs.iter().map(|d| d.to_path_buf()).collect();
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg(command)
        .current_dir(dir)
        .env("PATH", std::env::join_paths(path).unwrap())
        .env_remove("WATCH_NAMESPACE")
        .env_remove("GATEWAY_KINDS");
    for (name, value) in env {
        sh.env(name, value);
    }
    sh.output().unwrap()
}
