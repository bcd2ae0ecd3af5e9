//! The shell commands a how-to documents, taken from its markdown so that the tests run
//! exactly what a reader copies.

/// The commands of the `sh` code blocks of the document at `path` (relative to the
/// workspace), one per line; `\` continuations joined, comments and blank lines dropped.
pub fn sh_commands(path: &str) -> Vec<String> {
    let text = std::fs::read_to_string(super::workspace().join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut commands = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(info) = trimmed.strip_prefix("```") {
            in_sh = !in_sh && info.trim() == "sh";
            continue;
        }
        if !in_sh {
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
    commands
}

/// The one documented command of `path` that starts with `prefix`.
pub fn sh_command(path: &str, prefix: &str) -> String {
    let matching: Vec<String> = sh_commands(path)
        .into_iter()
        .filter(|c| c.starts_with(prefix))
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "{path} should document one command starting with {prefix:?}: {matching:?}"
    );
    matching.into_iter().next().unwrap()
}
