//! The built `litellm-impl` binary: `render` from files and stdin, `--config-only`, exit
//! codes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_litellm-impl"))
}

fn golden(case: &str, file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(case)
        .join(file)
}

fn run_with_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn render_prints_the_golden_objects() {
    let output = bin()
        .args(["render", "-f"])
        .arg(golden("guarded", "input.yaml"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        std::fs::read_to_string(golden("guarded", "expected.yaml")).unwrap()
    );
    assert!(
        text(&output.stderr).contains("warning: Unauthenticated"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn config_only_prints_the_litellm_config() {
    let output = bin()
        .args(["render", "--config-only", "-f"])
        .arg(golden("patched", "input.yaml"))
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(
        text(&output.stdout),
        std::fs::read_to_string(golden("patched", "expected-config.yaml")).unwrap()
    );
}

#[test]
fn stdin_and_several_files_combine() {
    // The gateway from stdin, the Guard and provider it references from a file.
    let input = std::fs::read_to_string(golden("guarded", "input.yaml")).unwrap();
    let (objects, gateway) = input.split_at(input.find("kind: AiGateway\n").unwrap());
    let objects = objects.rsplit_once("---").unwrap().0;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("guards.yaml");
    std::fs::write(&file, objects).unwrap();
    let output = run_with_stdin(
        &["render", "-f", file.to_str().unwrap(), "-f", "-"],
        &format!("apiVersion: runtime.agentic-layer.ai/v1alpha1\n{gateway}"),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        std::fs::read_to_string(golden("guarded", "expected.yaml")).unwrap()
    );
}

#[test]
fn several_gateways_with_config_only_are_separated() {
    let gateways = "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: AiGateway\nmetadata: {name: a}\nspec: {aiModels: [{name: m, provider: openai}]}\n---\n\
        apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: AiGateway\nmetadata: {name: b, namespace: x}\nspec: {aiModels: [{name: second, provider: openai}]}\n";
    let output = run_with_stdin(&["render", "--config-only", "-f", "-"], gateways);
    assert!(output.status.success());
    let out = text(&output.stdout);
    assert!(
        out.starts_with("---\n# AiGateway default/a\nmodel_list:"),
        "{out}"
    );
    assert!(out.contains("---\n# AiGateway x/b\nmodel_list:"), "{out}");
}

#[test]
fn an_invalid_gateway_exits_1_naming_object_and_field() {
    let bad = "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: AiGateway\nmetadata:\n  name: broken\n  namespace: team\n  annotations:\n    ai-gateway-litellm.agentic-layer.ai/config-patch: missing-patch\nspec:\n  aiModels: [{name: m, provider: openai}]\n";
    let output = run_with_stdin(&["render", "-f", "-"], bad);
    assert_eq!(output.status.code(), Some(1));
    let err = text(&output.stderr);
    assert!(
        err.contains("AiGateway team/broken")
            && err.contains("config-patch")
            && err.contains("ConfigMap team/missing-patch"),
        "{err}"
    );
    assert!(output.stdout.is_empty());

    let no_models = "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: AiGateway\nmetadata: {name: empty}\nspec: {aiModels: []}\n";
    let output = run_with_stdin(&["render", "-f", "-"], no_models);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("AiGateway default/empty: spec.aiModels is empty"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn unreadable_input_exits_2() {
    let output = bin()
        .args(["render", "-f", "/nonexistent/input.yaml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("/nonexistent/input.yaml"));
    let output = run_with_stdin(&["render", "-f", "-"], "kind: [\n");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("<stdin>"),
        "{}",
        text(&output.stderr)
    );
    let output = bin().args(["render"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "missing -f is a usage error");
}

#[test]
fn help_documents_exit_codes() {
    for (args, code_one) in [
        (&["--help"][..], "1  render: a gateway cannot be rendered"),
        (
            &["render", "--help"][..],
            "1  at least one AiGateway cannot be rendered",
        ),
        (
            &["run", "--help"][..],
            "3  the operator could not start or failed",
        ),
        (
            &["demo", "--help"][..],
            "1  --exit-when-ready: not every sample gateway was Ready",
        ),
    ] {
        let output = bin().args(args).output().unwrap();
        assert!(output.status.success());
        let help = text(&output.stdout);
        assert!(
            help.contains("Exit codes:") && help.contains(code_one),
            "{help}"
        );
    }
}
