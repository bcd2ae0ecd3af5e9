//! The built `litellm-impl` binary: `render` from files and stdin, `--config-only`, exit
//! codes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_litellm-impl"));
    // `--image` and the security-context flags read them: the tests start from the
    // defaults.
    command
        .env_remove("LITELLM_IMAGE")
        .env_remove("LITELLM_POD_SECURITY_CONTEXT")
        .env_remove("LITELLM_CONTAINER_SECURITY_CONTEXT");
    command
}

fn golden(case: &str, file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(case)
        .join(file)
}

fn run_with_stdin(args: &[&str], stdin: &str) -> Output {
    run_with_env_and_stdin(args, &[], stdin)
}

fn run_with_env_and_stdin(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let mut child = bin()
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let written = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    // A command that refuses its arguments exits before reading its input.
    if let Err(error) = written {
        assert_eq!(error.kind(), std::io::ErrorKind::BrokenPipe, "{error}");
    }
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
            "1  at least one gateway cannot be rendered",
        ),
        (
            &["run", "--help"][..],
            "3  the operator could not start or failed",
        ),
        (
            &["demo", "--help"][..],
            "1  --exit-when-ready: not every sample gateway and route was Ready",
        ),
        (
            &["demo", "--help"][..],
            "4  --with-proxy: LiteLLM could not be installed, or a LiteLLM pod or the MCP server could not",
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

const ANNOTATED_GATEWAY: &str = "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: AiGateway\nmetadata:\n  name: custom\n  namespace: team\n  annotations:\n    ai-gateway-litellm.agentic-layer.ai/image: registry.local/litellm:custom\nspec:\n  aiModels: [{name: m, provider: openai}]\n";
const PLAIN_GATEWAY: &str = "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: AiGateway\nmetadata: {name: plain, namespace: team}\nspec:\n  aiModels: [{name: m, provider: openai}]\n";

fn images(rendered: &str) -> Vec<String> {
    rendered
        .lines()
        .filter_map(|l| l.trim().strip_prefix("image: "))
        .map(str::to_owned)
        .collect()
}

/// `render --allow-gateway-image` honours the image annotation, as `run` with the flag
/// does; without it the gateway cannot be rendered and the message names the flag.
#[test]
fn render_allow_gateway_image_honours_the_annotation() {
    let output = run_with_stdin(&["render", "-f", "-"], ANNOTATED_GATEWAY);
    assert_eq!(output.status.code(), Some(1));
    let err = text(&output.stderr);
    assert!(
        err.contains("AiGateway team/custom") && err.contains("--allow-gateway-image"),
        "{err}"
    );
    let output = run_with_stdin(
        &["render", "--allow-gateway-image", "-f", "-"],
        ANNOTATED_GATEWAY,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        images(&text(&output.stdout)),
        ["registry.local/litellm:custom"]
    );
}

/// `render --image` (and its variable `LITELLM_IMAGE`) set the LiteLLM image, as they do
/// for `run`.
#[test]
fn render_image_sets_the_litellm_image() {
    let output = run_with_stdin(
        &[
            "render",
            "--image",
            "registry.local/litellm:flag",
            "-f",
            "-",
        ],
        PLAIN_GATEWAY,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        images(&text(&output.stdout)),
        ["registry.local/litellm:flag"]
    );
    let output = run_with_env_and_stdin(
        &["render", "-f", "-"],
        &[("LITELLM_IMAGE", "registry.local/litellm:env")],
        PLAIN_GATEWAY,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        images(&text(&output.stdout)),
        ["registry.local/litellm:env"]
    );
}

const SECRET_VALUE: &str = "sk-live-4711-do-not-print";

/// Defect: a YAML error in a Secret document was shown with a snippet holding the
/// value, and a numeric Secret value was quoted in a type error.
#[test]
fn render_errors_never_print_a_secret_value() {
    let gateway = "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: AiGateway\nmetadata: {name: gw}\nspec:\n  aiModels: [{name: m, provider: openai}]\n";
    let broken = format!(
        "{gateway}---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: api-key-secrets\nstringData:\n  OPENAI_API_KEY: \"{SECRET_VALUE}\n  OTHER: [x\n"
    );
    let numeric = format!(
        "{gateway}---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: api-key-secrets\nstringData:\n  OPENAI_API_KEY: 4711000123\n"
    );
    for (input, expected) in [
        (broken.as_str(), "may be a Secret"),
        (numeric.as_str(), "stringData.OPENAI_API_KEY is a number"),
    ] {
        let output = run_with_stdin(&["render", "-f", "-"], input);
        assert_eq!(output.status.code(), Some(2));
        let err = text(&output.stderr);
        assert!(err.contains(expected), "{expected:?} missing: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        for fragment in ["4711", "sk-live", "do-not-print"] {
            assert!(!err.contains(fragment), "{fragment:?} printed: {err}");
        }
        assert!(output.stdout.is_empty());
    }
}

/// Defect: `render` ignored documents silently. It now says which it did not use and
/// why: another kind, a gateway of another class, a gateway of no class.
#[test]
fn render_says_which_documents_it_did_not_use() {
    let input = "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: team, namespace: team}\n---\n\
        apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: AiGatewayClass\nmetadata: {name: litellm}\nspec: {controller: aigateway.agentic-layer.ai/ai-gateway-litellm-controller}\n---\n\
        apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: AiGatewayClass\nmetadata: {name: envoy}\nspec: {controller: example.com/envoy}\n---\n\
        apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: AiGateway\nmetadata: {name: ours, namespace: team}\nspec: {aiGatewayClassName: litellm, aiModels: [{name: m, provider: openai}]}\n---\n\
        apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: AiGateway\nmetadata: {name: theirs, namespace: team}\nspec: {aiGatewayClassName: envoy, aiModels: [{name: m, provider: openai}]}\n---\n\
        apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: AiGateway\nmetadata: {name: classless, namespace: team}\nspec: {aiModels: [{name: m, provider: openai}]}\n";
    let output = run_with_stdin(&["render", "--config-only", "-f", "-"], input);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let err = text(&output.stderr);
    for expected in [
        "note: <stdin> document 1: ServiceAccount team not used",
        "note: <stdin> document 5: AiGateway team/theirs not rendered: other class: its class envoy belongs to controller example.com/envoy",
        "note: <stdin> document 6: AiGateway team/classless not rendered: no class",
    ] {
        assert!(err.contains(expected), "{expected:?} missing:\n{err}");
    }
    assert!(!err.contains("team/ours not rendered"), "{err}");
    // Only the claimed gateway is rendered (one config, without a separator).
    assert!(
        text(&output.stdout).starts_with("model_list:"),
        "{}",
        text(&output.stdout)
    );
}

fn upstream_sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../aigateway-api/tests/fixtures/samples")
        .join(name)
}

/// The Go operator's ToolGateway sample and class render; stderr tells each route's fate.
/// The sample's route lives in another namespace than its gateway: served only once the
/// class admits routes from every namespace (the migration guide's one line).
#[test]
fn render_handles_tool_gateways_and_reports_every_route() {
    let extra = "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: ToolRoute\nmetadata: {name: regex, namespace: tool-gateway-routes}\nspec:\n  toolGatewayRef: {name: tool-gateway, namespace: tool-gateway}\n  upstream: {external: {url: \"http://echo.default/mcp\"}}\n  toolFilter: {deny: [\"delete_[a-z]+\"]}\n---\napiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: ToolRoute\nmetadata: {name: orphan, namespace: elsewhere}\nspec:\n  toolGatewayRef: {name: nobody}\n  upstream: {external: {url: \"http://echo.default/mcp\"}}\n";
    // `class`: a ToolGatewayClass to use instead of the sample's.
    let render = |class: Option<&str>| {
        let sample_class = upstream_sample("toolgatewayclass.yaml");
        let sample = upstream_sample("toolgateway.yaml");
        let mut args = vec!["render", "--config-only", "-f", sample.to_str().unwrap()];
        if class.is_none() {
            args.extend(["-f", sample_class.to_str().unwrap()]);
        }
        args.extend(["-f", "-"]);
        let stdin = match class {
            Some(class) => format!("{extra}---\n{class}"),
            None => extra.to_owned(),
        };
        let output = run_with_stdin(&args, &stdin);
        (
            output.status.success(),
            text(&output.stdout),
            text(&output.stderr),
        )
    };
    // As published: the route is not admitted by the gateway and never reaches the config.
    let (ok, stdout, stderr) = render(None);
    assert!(ok, "{stderr}");
    let config: serde_json::Value = serde_saphyr::from_str(&stdout).unwrap();
    assert!(config.get("mcp_servers").is_none(), "{stdout}");
    assert!(
        stderr.contains("warning: ToolRoute tool-gateway-routes/echo not served (NotAllowedByGateway): ToolGateway tool-gateway/tool-gateway does not admit routes from namespace tool-gateway-routes"),
        "{stderr}"
    );

    // The class admits routes from every namespace.
    let admitting = "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: ToolGatewayClass\nmetadata:\n  name: litellm\n  annotations: {aigateway.agentic-layer.ai/allowed-routes: All}\nspec: {controller: litellm.agentic-layer.ai/tool-gateway-litellm-controller}\n";
    let (ok, stdout, stderr) = render(Some(admitting));
    assert!(ok, "{stderr}");
    let config: serde_json::Value = serde_saphyr::from_str(&stdout).unwrap();
    assert_eq!(
        config["mcp_servers"],
        serde_json::json!({"tool_gateway_routes__echo": {
            "url": "http://echo.default/mcp", "transport": "http", "allow_all_keys": true}}),
        "{stdout}"
    );
    assert!(
        stderr.contains("note: ToolRoute tool-gateway-routes/echo: served at http://tool-gateway.tool-gateway.svc.cluster.local/mcp/tool_gateway_routes__echo"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "warning: ToolRoute tool-gateway-routes/regex not served (InvalidToolFilter): spec.toolFilter.deny[0] \"delete_[a-z]+\" uses '[', which is not part of the API's pattern syntax"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("note: ToolRoute elsewhere/orphan not used: its ToolGateway elsewhere/nobody is not rendered"),
        "{stderr}"
    );

    // With a class of another controller the gateway is not rendered, and says why.
    let foreign = "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: ToolGatewayClass\nmetadata: {name: litellm}\nspec: {controller: example.com/other}\n";
    let output = run_with_stdin(
        &[
            "render",
            "-f",
            upstream_sample("toolgateway.yaml").to_str().unwrap(),
            "-f",
            "-",
        ],
        foreign,
    );
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("ToolGateway tool-gateway/tool-gateway not rendered: other class"),
        "{stderr}"
    );
    assert!(text(&output.stdout).is_empty());
}

/// A kind `run` does not serve, or none, is refused before anything connects: exit code
/// 2 and one error naming the valid kinds.
#[test]
fn run_refuses_an_unknown_or_empty_gateway_kind() {
    for value in ["agent-gateway", "", "ai-gateway,bogus"] {
        let output = bin()
            .args([
                "run",
                "--kubeconfig",
                "/nonexistent",
                "--gateway-kinds",
                value,
            ])
            .env_remove("GATEWAY_KINDS")
            .output()
            .unwrap();
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{value:?}: {stderr}");
        assert!(
            stderr.starts_with("error: ")
                && stderr.contains("--gateway-kinds")
                && stderr.contains("[possible values: ai-gateway, tool-gateway]"),
            "{value:?}: {stderr}"
        );
    }
}

/// `--pod-security-context` and `--container-security-context` (env
/// `LITELLM_POD_SECURITY_CONTEXT`, `LITELLM_CONTAINER_SECURITY_CONTEXT`; `run` shares
/// them): each replaces the default as a whole; a misspelt field is refused by name.
#[test]
fn render_security_contexts_replace_the_defaults_and_refuse_unknown_fields() {
    let deployment = |rendered: &str| -> serde_json::Value {
        serde_saphyr::from_multiple::<serde_json::Value>(rendered)
            .unwrap()
            .into_iter()
            .find(|o| o["kind"] == "Deployment")
            .unwrap()
    };
    let output = run_with_stdin(&["render", "-f", "-"], PLAIN_GATEWAY);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let default = deployment(&text(&output.stdout));
    assert_eq!(
        default["spec"]["template"]["spec"]["securityContext"]["runAsUser"],
        65534
    );
    // The help names the user the default really sets.
    let help = bin().args(["render", "--help"]).output().unwrap();
    let help = text(&help.stdout);
    assert!(
        help.contains("runAsUser, runAsGroup and fsGroup 65534,"),
        "{help}"
    );

    let output = run_with_stdin(
        &[
            "render",
            "--pod-security-context",
            r#"{"runAsNonRoot":true,"seccompProfile":{"type":"RuntimeDefault"}}"#,
            "--container-security-context",
            r#"{"readOnlyRootFilesystem":false,"allowPrivilegeEscalation":false}"#,
            "-f",
            "-",
        ],
        PLAIN_GATEWAY,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let changed = deployment(&text(&output.stdout));
    let pod = &changed["spec"]["template"]["spec"];
    assert_eq!(
        pod["securityContext"],
        serde_json::json!({"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}})
    );
    assert_eq!(
        pod["containers"][0]["securityContext"],
        serde_json::json!({"readOnlyRootFilesystem": false, "allowPrivilegeEscalation": false})
    );

    let output = run_with_env_and_stdin(
        &["render", "-f", "-"],
        &[("LITELLM_POD_SECURITY_CONTEXT", r#"{"runAsUsr":1000}"#)],
        PLAIN_GATEWAY,
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("--pod-security-context") && stderr.contains("unknown field .runAsUsr"),
        "{stderr}"
    );

    let output = run_with_stdin(
        &[
            "render",
            "--container-security-context",
            r#"{"runAsUser":"root"}"#,
            "-f",
            "-",
        ],
        PLAIN_GATEWAY,
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("--container-security-context"),
        "{}",
        text(&output.stderr)
    );
}

/// Defect: `render` printed a 1.13 MB config for 10,000 models and exited 0, while the
/// API server refuses a ConfigMap over 1 MiB. It now fails as the operator does.
#[test]
fn render_fails_on_a_config_that_no_config_map_can_hold() {
    let models: String = (0..10_000)
        .map(|i| format!("  - {{name: model-{i:05}, provider: openai}}\n"))
        .collect();
    let input = format!(
        "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: AiGateway\nmetadata: {{name: huge, namespace: team}}\nspec:\n  aiModels:\n{models}"
    );
    let output = run_with_stdin(&["render", "-f", "-"], &input);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let err = text(&output.stderr);
    assert!(
        err.contains("AiGateway team/huge: the rendered LiteLLM config is")
            && err.contains("over the 1048576-byte limit of a ConfigMap's data")
            && err.contains("list fewer models per gateway"),
        "{err}"
    );
    assert!(
        output.stdout.is_empty(),
        "a config the API server refuses was printed"
    );
    // A thousand models fit.
    let thousand: String = models
        .lines()
        .take(1_000)
        .map(|l| format!("{l}\n"))
        .collect();
    let input = input.replace(&models, &thousand);
    let output = run_with_stdin(&["render", "--config-only", "-f", "-"], &input);
    assert!(output.status.success(), "{}", text(&output.stderr));
}

#[test]
fn render_applies_the_policies_the_operator_would_and_says_what_became_of_each() {
    let input = r#"
apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: AiGateway
metadata: {name: gw, namespace: team}
spec:
  aiModels:
  - {name: gpt-4o, provider: openai}
  - {name: gpt-4o-mini, provider: openai}
---
apiVersion: litellm.aigateway.agentic-layer.ai/v1alpha1
kind: LiteLLMRoutingPolicy
metadata: {name: older, namespace: team, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  targetRefs: [{group: runtime.agentic-layer.ai, kind: AiGateway, name: gw}]
  fallbacks: [{model: gpt-4o, to: [gpt-4o-mini]}]
---
apiVersion: litellm.aigateway.agentic-layer.ai/v1alpha1
kind: LiteLLMRoutingPolicy
metadata: {name: newer, namespace: team, creationTimestamp: "2026-02-01T00:00:00Z"}
spec:
  targetRefs: [{group: runtime.agentic-layer.ai, kind: AiGateway, name: gw}]
  retries: 9
---
apiVersion: litellm.aigateway.agentic-layer.ai/v1alpha1
kind: LiteLLMModelPolicy
metadata: {name: hostile, namespace: team}
spec:
  targetRefs: [{group: runtime.agentic-layer.ai, kind: AiGateway, name: gw, sectionName: gpt-4o}]
  apiBase: os.environ/AWS_SECRET_ACCESS_KEY
---
apiVersion: litellm.aigateway.agentic-layer.ai/v1alpha1
kind: LiteLLMAvailabilityPolicy
metadata: {name: available, namespace: team}
spec:
  targetRefs: [{group: runtime.agentic-layer.ai, kind: AiGateway, name: gw}]
  autoscaling: {maxReplicas: 4}
  disruptionBudget: {maxUnavailable: 1}
"#;
    let output = run_with_stdin(&["render", "-f", "-"], input);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stderr}");
    assert!(
        stdout.contains("fallbacks:") && stdout.contains("- gpt-4o-mini"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("num_retries: 9"),
        "the newer policy is not in effect: {stdout}"
    );
    assert!(!stdout.contains("AWS_SECRET"), "{stdout}");
    assert!(stdout.contains("kind: HorizontalPodAutoscaler"), "{stdout}");
    assert!(stdout.contains("kind: PodDisruptionBudget"), "{stdout}");
    for says in [
        "note: LiteLLMRoutingPolicy older applied to AiGateway team/gw",
        "note: LiteLLMRoutingPolicy team/newer not in effect on AiGateway team/gw: older is older",
        "warning: LiteLLMModelPolicy hostile not applied to AiGateway team/gw: apiBase starts with os.environ/",
        "note: LiteLLMAvailabilityPolicy available applied to AiGateway team/gw",
    ] {
        assert!(stderr.contains(says), "{says}\n{stderr}");
    }
}

#[test]
fn render_applies_tool_route_policies_and_never_prints_the_credentials() {
    let input = r#"
apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: ToolGateway
metadata: {name: tools, namespace: gw}
spec: {}
---
apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: ToolRoute
metadata: {name: web, namespace: gw}
spec:
  toolGatewayRef: {name: tools}
  upstream: {external: {url: "https://mcp.example.com/mcp"}}
---
apiVersion: v1
kind: Secret
metadata: {name: upstream, namespace: gw}
stringData: {token: "Bearer s3cret-token"}
---
apiVersion: litellm.aigateway.agentic-layer.ai/v1alpha1
kind: LiteLLMToolRoutePolicy
metadata: {name: web-auth, namespace: gw, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  targetRefs: [{group: runtime.agentic-layer.ai, kind: ToolRoute, name: web}]
  timeoutSeconds: 120
  upstreamAuth: {header: {secretName: upstream, key: token}}
---
apiVersion: litellm.aigateway.agentic-layer.ai/v1alpha1
kind: LiteLLMToolRoutePolicy
metadata: {name: newer, namespace: gw, creationTimestamp: "2026-02-01T00:00:00Z"}
spec:
  targetRefs: [{group: runtime.agentic-layer.ai, kind: ToolRoute, name: web}]
  timeoutSeconds: 5
---
apiVersion: litellm.aigateway.agentic-layer.ai/v1alpha1
kind: LiteLLMToolRoutePolicy
metadata: {name: on-gateway, namespace: gw}
spec:
  targetRefs: [{group: runtime.agentic-layer.ai, kind: ToolGateway, name: tools}]
  timeoutSeconds: 5
"#;
    let output = run_with_stdin(&["render", "-f", "-"], input);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("timeout: 120.0"), "{stdout}");
    assert!(
        stdout.contains("Authorization: os.environ/MCP_UPSTREAM_"),
        "{stdout}"
    );
    assert!(stdout.contains("name: tools-route-credentials"), "{stdout}");
    assert!(!stdout.contains("kind: Secret"), "{stdout}");
    for says in [
        "note: LiteLLMToolRoutePolicy gw/web-auth applied to ToolRoute gw/web",
        "note: LiteLLMToolRoutePolicy gw/newer not in effect on ToolRoute gw/web: web-auth is older",
        "warning: LiteLLMToolRoutePolicy gw/on-gateway not applied to ToolGateway gw/tools: it configures ToolRoutes",
        "note: ToolGateway gw/tools: Secret gw/tools-route-credentials (keys MCP_UPSTREAM_",
    ] {
        assert!(stderr.contains(says), "{says}\n{stderr}");
    }
    assert!(
        !stdout.contains("s3cret") && !stderr.contains("s3cret"),
        "no Secret value is printed"
    );
}

/// The how-to's YAML, as a reader copies it, renders with every policy applied.
#[test]
fn the_production_how_to_renders_with_every_policy_applied() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/how-to/run-a-gateway-in-production.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let mut yaml = String::new();
    let mut in_yaml = false;
    for line in doc.lines() {
        match line.trim() {
            "```yaml" => in_yaml = true,
            "```" if in_yaml => {
                in_yaml = false;
                yaml.push_str("---\n");
            }
            _ if in_yaml => {
                yaml.push_str(line);
                yaml.push('\n');
            }
            _ => {}
        }
    }
    let output = run_with_stdin(&["render", "-f", "-"], &yaml);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stderr}");
    for kind in [
        "LiteLLMModelPolicy vllm",
        "LiteLLMRoutingPolicy resilient",
        "LiteLLMAvailabilityPolicy production",
        "LiteLLMObservabilityPolicy traces",
    ] {
        assert!(
            stderr.contains(&format!(
                "note: {kind} applied to AiGateway team-a/ai-gateway"
            )),
            "{kind}\n{stderr}"
        );
    }
    assert!(
        stderr.contains(
            "note: LiteLLMToolRoutePolicy team-a/github applied to ToolRoute team-a/github"
        ),
        "{stderr}"
    );
    assert!(
        !stderr.contains("not applied") && !stderr.contains("PerReplicaLimits"),
        "{stderr}"
    );
    assert!(!stderr.contains("without its credential"), "{stderr}");
    assert!(stdout.contains("kind: HorizontalPodAutoscaler"), "{stdout}");
    assert!(
        !stdout.contains("replace-me"),
        "no Secret value reaches the output"
    );
}

#[test]
fn render_says_the_name_decides_when_the_input_has_no_creation_times() {
    let input = r#"
apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: AiGateway
metadata: {name: gw, namespace: team}
spec:
  aiModels:
  - {name: gpt-4o, provider: openai}
---
apiVersion: litellm.aigateway.agentic-layer.ai/v1alpha1
kind: LiteLLMRoutingPolicy
metadata: {name: b-retries, namespace: team}
spec:
  targetRefs: [{group: runtime.agentic-layer.ai, kind: AiGateway, name: gw}]
  retries: 3
---
apiVersion: litellm.aigateway.agentic-layer.ai/v1alpha1
kind: LiteLLMRoutingPolicy
metadata: {name: a-retries, namespace: team}
spec:
  targetRefs: [{group: runtime.agentic-layer.ai, kind: AiGateway, name: gw}]
  retries: 1
"#;
    let output = run_with_stdin(&["render", "-f", "-"], input);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("num_retries: 1"), "{stdout}");
    let says = "note: LiteLLMRoutingPolicy team/b-retries not in effect on AiGateway team/gw: a-retries comes first by name (without creationTimestamp in the input; in the cluster the older wins)";
    assert!(stderr.contains(says), "{says}\n{stderr}");
}
