//! Golden tests: `render` output for the upstream samples, compared byte for byte with
//! the files in `tests/golden/<case>/`.
//!
//! Regenerate after an intended change with
//! `UPDATE_GOLDEN=1 cargo test -p litellm-impl-cli --test golden` and review the diff.

use std::path::{Path, PathBuf};

use litellm_impl_cli::render::{RenderArgs, execute};

const UPDATE_HINT: &str = "UPDATE_GOLDEN=1 cargo test -p litellm-impl-cli --test golden";

fn case_dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(case)
}

/// Runs `render` on the case's `input.yaml` and returns (exit code, stdout, stderr).
fn run(case: &str, config_only: bool) -> (u8, String, String) {
    let args = RenderArgs {
        files: vec![case_dir(case).join("input.yaml")],
        config_only,
        settings: litellm_impl_cli::flags::RenderFlags::default(),
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = execute(&args, &mut std::io::empty(), &mut out, &mut err);
    let err = String::from_utf8(err)
        .unwrap()
        .replace(case_dir(case).to_str().unwrap(), "<case>");
    (code, String::from_utf8(out).unwrap(), err)
}

fn compare(case: &str, file: &str, actual: &str) {
    let path = case_dir(case).join(file);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {}: {e}; create it with {UPDATE_HINT}", path.display()));
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from the rendered output (first difference at line {}):\n--- expected: {:?}\n+++ actual:   {:?}\nIf the change is intended, regenerate with: {UPDATE_HINT}",
            path.display(),
            line + 1,
            expected.lines().nth(line),
            actual.lines().nth(line),
        );
    }
}

fn golden(case: &str) {
    let (code, out, err) = run(case, false);
    assert_eq!(code, 0, "render {case} failed:\n{err}");
    compare(case, "expected.yaml", &out);
    compare(case, "expected.stderr", &err);
    let (code, out, _) = run(case, true);
    assert_eq!(code, 0);
    compare(case, "expected-config.yaml", &out);
}

#[test]
fn plain_sample() {
    golden("plain");
}

#[test]
fn guarded_sample_across_namespaces() {
    golden("guarded");
}

#[test]
fn patched_sample() {
    golden("patched");
}

#[test]
fn every_field() {
    golden("all-fields");
}

/// The golden outputs are valid multi-document YAML of exactly the three objects per
/// gateway, and the ConfigMap's config equals `--config-only`.
#[test]
fn golden_outputs_parse_back() {
    for case in ["plain", "guarded", "patched", "all-fields"] {
        let (_, out, _) = run(case, false);
        let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(&out).unwrap();
        let kinds: Vec<&str> = documents
            .iter()
            .filter(|d| !d.is_null())
            .map(|d| d["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["ConfigMap", "Deployment", "Service"], "{case}");
        let (_, config_only, _) = run(case, true);
        let in_map =
            documents.iter().find(|d| d["kind"] == "ConfigMap").unwrap()["data"]["config.yaml"]
                .as_str()
                .unwrap()
                .to_owned();
        assert_eq!(in_map, config_only, "{case}");
    }
}
