//! Every Markdown file of the project: `yaml` blocks parse and relative links resolve.

use std::path::{Path, PathBuf};

fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" {
                markdown_files(&path, out);
            }
        } else if name.ends_with(".md") {
            out.push(path);
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// (starting line, text) of each fenced block whose info string is `yaml`.
fn yaml_blocks(text: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match current.as_mut() {
            None if trimmed.starts_with("```yaml") || trimmed.starts_with("```yml") => {
                current = Some((number + 1, String::new()))
            }
            Some(_) if trimmed.starts_with("```") => blocks.push(current.take().unwrap()),
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
            None => {}
        }
    }
    blocks
}

#[test]
fn yaml_blocks_in_docs_parse() {
    let mut files = Vec::new();
    markdown_files(&root(), &mut files);
    assert!(
        files.iter().any(|f| f.ends_with("docs/README.md")),
        "docs/README.md exists"
    );
    let mut failures = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (line, block) in yaml_blocks(&text) {
            checked += 1;
            if let Err(error) = serde_saphyr::from_multiple::<serde_json::Value>(&block) {
                failures.push(format!("{}:{line}: {error}", file.display()));
            }
        }
    }
    assert!(checked > 0, "no yaml blocks found");
    assert!(
        failures.is_empty(),
        "yaml blocks that do not parse:\n{}",
        failures.join("\n")
    );
}

#[test]
fn relative_links_in_docs_resolve() {
    let link = regex::Regex::new(r"\]\(([^)\s]+)\)").unwrap();
    let mut files = Vec::new();
    markdown_files(&root(), &mut files);
    let mut broken = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for capture in link.captures_iter(&text) {
            let target = &capture[1];
            if target.contains("://") || target.starts_with('#') || target.starts_with("mailto:") {
                continue;
            }
            let path = target.split('#').next().unwrap();
            if !file.parent().unwrap().join(path).exists() {
                broken.push(format!("{}: {target}", file.display()));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "relative links that do not resolve:\n{}",
        broken.join("\n")
    );
}
