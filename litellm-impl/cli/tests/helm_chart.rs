//! The Helm chart under `deploy/helm/`: generated from the bundle code (stale means a
//! failure), accepted by the real `helm lint` and `helm template`, equal to `litellm-impl
//! manifests` with its default values (Helm's labels aside), every value visible in what
//! it renders, and a wrong value refused with a message naming it.
//!
//! `helm` is the real Helm v3, built from its Go module by `scripts/helm build` (cached
//! under ~/.cache; the first build takes minutes). Without Go these tests fail and say why.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use clap::Parser;
use common::{helm_binary, parse_yaml_stream, workspace};
use litellm_impl_cli::bundle::helm;
use serde_json::{Value, json};

const REGENERATE: &str = "UPDATE_GOLDEN=1 cargo test -p litellm-impl-cli --test helm_chart";
const NAMESPACE: &str = "ai-gateway-litellm-system";
use helm::HELM_LABELS;

fn chart_dir() -> PathBuf {
    workspace().join("deploy/helm")
}

/// Runs helm with `args`; returns success and stdout, stderr.
fn helm(args: &[&str]) -> (bool, String, String) {
    let home = tempfile::tempdir().unwrap();
    let output = Command::new(helm_binary())
        .args(args)
        // No user configuration or cache leaks in, nothing is written outside the test.
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `helm template` of the chart with `extra` arguments (`--set ...`); the objects.
fn template(extra: &[&str]) -> Vec<Value> {
    let chart = chart_dir();
    let mut args = vec![
        "template",
        "litellm-impl",
        chart.to_str().unwrap(),
        "--namespace",
        NAMESPACE,
    ];
    args.extend(extra);
    let (ok, stdout, stderr) = helm(&args);
    assert!(ok, "helm {} failed:\n{stderr}", args.join(" "));
    parse_yaml_stream(&stdout)
}

/// `helm template` that must fail; its error output.
fn template_error(extra: &[&str]) -> String {
    let chart = chart_dir();
    let mut args = vec!["template", "litellm-impl", chart.to_str().unwrap()];
    args.extend(extra);
    let (ok, stdout, stderr) = helm(&args);
    assert!(!ok, "helm {} succeeded:\n{stdout}", args.join(" "));
    stderr
}

fn key(object: &Value) -> String {
    format!(
        "{} {}/{}",
        object["kind"].as_str().unwrap_or_default(),
        object["metadata"]["namespace"].as_str().unwrap_or_default(),
        object["metadata"]["name"].as_str().unwrap_or_default()
    )
}

fn keyed(objects: &[Value]) -> BTreeMap<String, Value> {
    objects.iter().map(|o| (key(o), o.clone())).collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

fn get<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    find(objects, kind, name).unwrap_or_else(|| {
        panic!(
            "no {kind} {name} among {:?}",
            objects.iter().map(key).collect::<Vec<_>>()
        )
    })
}

fn manager(objects: &[Value]) -> &Value {
    get(objects, "Deployment", "litellm-impl")
}

fn manager_args(objects: &[Value]) -> Vec<String> {
    strings(&manager(objects)["spec"]["template"]["spec"]["containers"][0]["args"])
}

fn hook_args(objects: &[Value]) -> Vec<String> {
    strings(
        &get(objects, "Job", helm::UNINSTALL_NAME)["spec"]["template"]["spec"]["containers"][0]["args"],
    )
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// The manager's command line as the binary parses it.
fn parsed_run(objects: &[Value]) -> litellm_impl_cli::run::RunArgs {
    let args = manager_args(objects);
    match litellm_impl_cli::Cli::try_parse_from(
        std::iter::once("litellm-impl".to_owned()).chain(args.clone()),
    ) {
        Ok(litellm_impl_cli::Cli {
            command: litellm_impl_cli::Command::Run(run),
        }) => *run,
        Ok(other) => panic!("the manager's args {args:?} are not `run`: {other:?}"),
        Err(e) => panic!("the binary refuses the manager's args {args:?}: {e}"),
    }
}

/// The hook's command line as the binary parses it.
fn parsed_uninstall(objects: &[Value]) -> litellm_impl_cli::uninstall::UninstallArgs {
    let args = hook_args(objects);
    match litellm_impl_cli::Cli::try_parse_from(
        std::iter::once("litellm-impl".to_owned()).chain(args.clone()),
    ) {
        Ok(litellm_impl_cli::Cli {
            command: litellm_impl_cli::Command::Uninstall(uninstall),
        }) => uninstall,
        Ok(other) => panic!("the hook's args {args:?} are not `uninstall`: {other:?}"),
        Err(e) => panic!("the binary refuses the hook's args {args:?}: {e}"),
    }
}

fn without_helm_labels(mut object: Value) -> Value {
    let metadata = object["metadata"].as_object_mut().unwrap();
    if let Some(labels) = metadata.get_mut("labels").and_then(Value::as_object_mut) {
        for label in HELM_LABELS {
            labels.remove(*label);
        }
        if labels.is_empty() {
            metadata.remove("labels");
        }
    }
    object
}

#[test]
fn the_chart_is_generated_from_the_code() {
    let dir = chart_dir();
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let expected: BTreeMap<PathBuf, String> = helm::files()
        .into_iter()
        .map(|f| (dir.join(f.path), f.text))
        .collect();
    let mut stale = Vec::new();
    for (path, text) in &expected {
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        } else if std::fs::read_to_string(path).ok().as_deref() != Some(text.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    // A file the code no longer generates is stale too (Helm would still install it).
    let mut present = Vec::new();
    let mut pending = vec![dir.clone()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                present.push(path);
            }
        }
    }
    for path in present {
        if !expected.contains_key(&path) {
            if update {
                std::fs::remove_file(&path).unwrap();
            } else {
                stale.push(format!("{} (not generated)", path.display()));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "stale Helm chart files: {stale:?}\nRegenerate with:\n    {REGENERATE}"
    );
}

#[test]
fn helm_lint_passes_strictly() {
    let chart = chart_dir();
    let (ok, stdout, stderr) = helm(&["lint", "--strict", chart.to_str().unwrap()]);
    assert!(ok, "helm lint --strict failed:\n{stdout}{stderr}");
    assert!(
        stdout.contains("1 chart(s) linted, 0 chart(s) failed"),
        "{stdout}"
    );
}

/// With its default values the chart is the bundle: every object of `litellm-impl
/// manifests` but the Namespace (Helm installs into an existing one), equal apart from
/// Helm's labels and the classes' `helm.sh/resource-policy: keep`; plus only the
/// uninstall hook.
#[test]
fn default_values_render_exactly_the_manifests_output() {
    let rendered = template(&["--include-crds"]);
    let manifests = Command::new(env!("CARGO_BIN_EXE_litellm-impl"))
        .arg("manifests")
        .output()
        .unwrap();
    assert!(manifests.status.success());
    let printed: Vec<Value> = parse_yaml_stream(&String::from_utf8(manifests.stdout).unwrap())
        .into_iter()
        .filter(|o| o["kind"] != "Namespace")
        .collect();
    for object in &rendered {
        let labels = object["metadata"]["labels"].as_object();
        for label in HELM_LABELS {
            assert!(
                object["kind"] == "CustomResourceDefinition"
                    || labels.is_some_and(|l| l.contains_key(*label)),
                "{} lacks Helm's label {label}",
                key(object)
            );
        }
    }
    let (hooks, chart): (Vec<Value>, Vec<Value>) = rendered
        .into_iter()
        .partition(|o| o["metadata"]["annotations"]["helm.sh/hook"].is_string());
    // The classes are kept by Helm (shared with whatever serves them after us); no other
    // object is.
    let chart: Vec<Value> = chart
        .into_iter()
        .map(|mut object| {
            let is_class = object["kind"]
                .as_str()
                .is_some_and(|k| k.ends_with("GatewayClass"));
            let annotations = object["metadata"]["annotations"].take();
            if is_class {
                assert_eq!(
                    annotations,
                    json!({"helm.sh/resource-policy": "keep"}),
                    "{}",
                    key(&object)
                );
            } else {
                assert!(annotations.is_null(), "{}: {annotations}", key(&object));
            }
            object["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("annotations");
            object
        })
        .collect();
    let chart = keyed(
        &chart
            .into_iter()
            .map(without_helm_labels)
            .collect::<Vec<_>>(),
    );
    let printed = keyed(&printed);
    assert_eq!(
        chart.keys().collect::<Vec<_>>(),
        printed.keys().collect::<Vec<_>>()
    );
    for (key, object) in &printed {
        assert_eq!(
            &chart[key], object,
            "{key} differs between the chart and `manifests`"
        );
    }
    let hooks: BTreeSet<String> = hooks.iter().map(key).collect();
    let expected: BTreeSet<String> = [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Job",
    ]
    .iter()
    .map(|kind| {
        let namespace = if kind.starts_with("Cluster") {
            ""
        } else {
            NAMESPACE
        };
        format!("{kind} {namespace}/{}", helm::UNINSTALL_NAME)
    })
    .collect();
    assert_eq!(hooks, expected);
}

/// The uninstall hook: a pre-delete Job running our binary as its own ServiceAccount,
/// with rules for exactly what `uninstall` does, deleted once it succeeded.
#[test]
fn the_uninstall_hook_runs_our_binary_with_its_own_minimal_rbac() {
    let objects = template(&[]);
    let job = get(&objects, "Job", helm::UNINSTALL_NAME);
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], helm::UNINSTALL_NAME);
    assert_eq!(pod["restartPolicy"], "Never");
    let manager_pod = &manager(&objects)["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"][0]["image"],
        manager_pod["containers"][0]["image"]
    );
    assert_eq!(
        pod["containers"][0]["securityContext"],
        manager_pod["containers"][0]["securityContext"]
    );
    assert_eq!(pod["securityContext"], manager_pod["securityContext"]);
    // Its pods are not the operator's, which it waits to be gone.
    let selector = &manager(&objects)["spec"]["selector"]["matchLabels"];
    let labels = &job["spec"]["template"]["metadata"]["labels"];
    assert!(
        selector
            .as_object()
            .unwrap()
            .iter()
            .any(|(k, v)| labels[k] != *v),
        "the hook's pods match the operator's selector {selector}"
    );
    let uninstall = parsed_uninstall(&objects);
    assert_eq!(
        uninstall.stop_operator,
        Some((NAMESPACE.to_owned(), "litellm-impl".to_owned()))
    );
    assert!(!uninstall.dry_run);
    for object in &objects {
        if object["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with(helm::UNINSTALL_NAME))
        {
            let annotations = &object["metadata"]["annotations"];
            assert_eq!(annotations["helm.sh/hook"], "pre-delete", "{}", key(object));
            // A failed hook keeps its Job and ServiceAccount for inspection, never its
            // rights.
            let kept_on_failure =
                ["Job", "ServiceAccount"].contains(&object["kind"].as_str().unwrap());
            assert_eq!(
                annotations["helm.sh/hook-delete-policy"],
                if kept_on_failure {
                    "before-hook-creation,hook-succeeded"
                } else {
                    "before-hook-creation,hook-succeeded,hook-failed"
                },
                "{}",
                key(object)
            );
            // The RBAC exists before the Job.
            let weight: i32 = annotations["helm.sh/hook-weight"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(weight < 0, object["kind"] != "Job", "{}", key(object));
        }
    }
    let cluster_role = get(&objects, "ClusterRole", helm::UNINSTALL_NAME);
    assert_eq!(
        cluster_role["rules"],
        json!([{"apiGroups": ["runtime.agentic-layer.ai"],
                "resources": ["aigateways", "aigatewayclasses", "toolgateways", "toolgatewayclasses", "toolroutes"],
                "verbs": ["list", "patch"]}])
    );
    let role = get(&objects, "Role", helm::UNINSTALL_NAME);
    assert_eq!(
        role["rules"],
        json!([
            {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["litellm-impl"], "verbs": ["get"]},
            {"apiGroups": ["apps"], "resources": ["deployments/scale"], "resourceNames": ["litellm-impl"], "verbs": ["patch"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
        ])
    );
}

/// What one value changes, and a check of its effect on what the chart renders.
struct ValueCase {
    /// The value's path in values.yaml.
    path: &'static str,
    /// `--set`/`--set-json` arguments.
    set: &'static [&'static str],
    /// Checks the rendered objects (and what the binary parses from them).
    check: fn(&[Value]),
}

fn cases() -> Vec<ValueCase> {
    vec![
        ValueCase {
            path: "image.repository",
            set: &[
                "--set",
                "image.repository=registry.example/ops/litellm-impl",
            ],
            check: |o| {
                let image = format!(
                    "registry.example/ops/litellm-impl:{}",
                    env!("CARGO_PKG_VERSION")
                );
                assert_eq!(
                    manager(o)["spec"]["template"]["spec"]["containers"][0]["image"],
                    image.as_str()
                );
                assert_eq!(
                    get(o, "Job", helm::UNINSTALL_NAME)["spec"]["template"]["spec"]["containers"]
                        [0]["image"],
                    image.as_str()
                );
            },
        },
        ValueCase {
            path: "image.tag",
            set: &["--set", "image.tag=v9.9.9"],
            check: |o| {
                assert_eq!(
                    manager(o)["spec"]["template"]["spec"]["containers"][0]["image"],
                    "ghcr.io/aigateway-rs/litellm-impl:v9.9.9"
                );
            },
        },
        ValueCase {
            path: "image.pullPolicy",
            set: &["--set", "image.pullPolicy=Always"],
            check: |o| {
                assert_eq!(
                    manager(o)["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
                    "Always"
                );
                assert_eq!(
                    get(o, "Job", helm::UNINSTALL_NAME)["spec"]["template"]["spec"]["containers"]
                        [0]["imagePullPolicy"],
                    "Always"
                );
            },
        },
        ValueCase {
            path: "replicas",
            set: &["--set", "replicas=3"],
            check: |o| assert_eq!(manager(o)["spec"]["replicas"], 3),
        },
        ValueCase {
            path: "leaderElection.enabled",
            set: &[
                "--set",
                "leaderElection.enabled=false",
                "--set",
                "replicas=1",
            ],
            check: |o| {
                assert_eq!(parsed_run(o).leader_elect, Some(false));
                // Never two writers, not even during a rollout.
                assert_eq!(manager(o)["spec"]["strategy"], json!({"type": "Recreate"}));
                assert!(find(o, "Role", "litellm-impl-leader-election").is_none());
                assert!(find(o, "RoleBinding", "litellm-impl-leader-election").is_none());
            },
        },
        ValueCase {
            path: "watchNamespace",
            set: &["--set", "watchNamespace=team-a"],
            check: |o| {
                assert_eq!(parsed_run(o).operator.namespace.as_deref(), Some("team-a"));
                assert_eq!(parsed_uninstall(o).namespace.as_deref(), Some("team-a"));
                // Namespaced rights only there; cluster-wide only the classes.
                for (role, account) in [
                    ("litellm-impl-watch", "litellm-impl"),
                    ("litellm-impl-uninstall-watch", helm::UNINSTALL_NAME),
                ] {
                    let role_object = get(o, "Role", role);
                    assert_eq!(role_object["metadata"]["namespace"], "team-a");
                    let text = role_object["rules"].to_string();
                    assert!(
                        text.contains("aigateways") && !text.contains("classes"),
                        "{text}"
                    );
                    let binding = get(o, "RoleBinding", role);
                    assert_eq!(binding["subjects"][0]["name"], account);
                    assert_eq!(binding["subjects"][0]["namespace"], NAMESPACE);
                }
                for name in ["litellm-impl", helm::UNINSTALL_NAME] {
                    let rules = get(o, "ClusterRole", name)["rules"].to_string();
                    assert!(rules.contains("aigatewayclasses"), "{rules}");
                    for namespaced in ["\"aigateways\"", "secrets", "deployments", "toolroutes\""] {
                        assert!(
                            !rules.contains(namespaced),
                            "{name}: {namespaced} in {rules}"
                        );
                    }
                }
            },
        },
        ValueCase {
            path: "gatewayKinds",
            set: &["--set-json", r#"gatewayKinds=["ai-gateway"]"#],
            check: |o| {
                use litellm_impl_cli::run::ServedGatewayKind;
                assert_eq!(
                    parsed_run(o).operator.gateway_kinds,
                    [ServedGatewayKind::AiGateway]
                );
                assert_eq!(
                    parsed_uninstall(o).gateway_kinds,
                    [ServedGatewayKind::AiGateway]
                );
                assert!(find(o, "AiGatewayClass", "litellm").is_some());
                assert!(find(o, "ToolGatewayClass", "litellm").is_none());
                for name in ["litellm-impl", helm::UNINSTALL_NAME] {
                    let rules = get(o, "ClusterRole", name)["rules"].to_string();
                    assert!(!rules.contains("tool"), "{name}: {rules}");
                    assert!(rules.contains("aigateways"), "{name}: {rules}");
                }
            },
        },
        ValueCase {
            path: "logFormat",
            set: &["--set", "logFormat=text"],
            check: |o| {
                assert_eq!(
                    parsed_run(o).operator.log_format,
                    aigateway_runtime::logging::LogFormat::Text
                )
            },
        },
        ValueCase {
            path: "resources",
            set: &[
                "--set-json",
                r#"resources={"requests":{"cpu":"1","memory":"1Gi"}}"#,
            ],
            check: |o| {
                // Helm merges the value into the default: the limits stay.
                let expected = json!({"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "500m", "memory": "256Mi"}});
                assert_eq!(
                    manager(o)["spec"]["template"]["spec"]["containers"][0]["resources"],
                    expected
                );
                assert_eq!(
                    get(o, "Job", helm::UNINSTALL_NAME)["spec"]["template"]["spec"]["containers"]
                        [0]["resources"],
                    expected
                );
            },
        },
        ValueCase {
            path: "litellm.image",
            set: &["--set", "litellm.image=registry.example/litellm:v1.108.0"],
            check: |o| {
                assert_eq!(
                    parsed_run(o).operator.render.image,
                    "registry.example/litellm:v1.108.0"
                )
            },
        },
        ValueCase {
            path: "litellm.podSecurityContext",
            set: &[
                "--set-json",
                r#"litellm.podSecurityContext={"runAsUser":1001,"fsGroup":null}"#,
            ],
            check: |o| {
                let pod = parsed_run(o).operator.render.security.pod;
                assert_eq!(pod.run_as_user, Some(1001));
                // null drops a default field: the operator gets the object as a whole.
                assert_eq!(pod.fs_group, None);
                assert_eq!(pod.run_as_non_root, Some(true));
            },
        },
        ValueCase {
            path: "litellm.containerSecurityContext",
            set: &[
                "--set",
                "litellm.containerSecurityContext.readOnlyRootFilesystem=false",
            ],
            check: |o| {
                let container = parsed_run(o).operator.render.security.container;
                assert_eq!(container.read_only_root_filesystem, Some(false));
                // Helm merges a single key into the default: the rest stays.
                assert_eq!(container.allow_privilege_escalation, Some(false));
            },
        },
        ValueCase {
            path: "metrics.enabled",
            set: &[
                "--set",
                "metrics.enabled=false",
                "--api-versions",
                "monitoring.coreos.com/v1/ServiceMonitor",
            ],
            check: |o| {
                // On by default (as in `litellm-impl manifests`); off, neither the Service
                // nor a ServiceMonitor, even where monitoring.coreos.com is served.
                assert!(find(o, "Service", helm::METRICS_NAME).is_none());
                assert!(find(o, "ServiceMonitor", helm::METRICS_NAME).is_none());
            },
        },
        ValueCase {
            // On by default, but rendered only where the cluster serves ServiceMonitors:
            // the case sets it on such a cluster, and the check turns it off there.
            path: "metrics.serviceMonitor.enabled",
            set: &[
                "--set",
                "metrics.serviceMonitor.enabled=true",
                "--api-versions",
                "monitoring.coreos.com/v1/ServiceMonitor",
            ],
            check: |o| {
                assert!(find(o, "ServiceMonitor", helm::METRICS_NAME).is_some());
                let off = template(&[
                    "--set",
                    "metrics.serviceMonitor.enabled=false",
                    "--api-versions",
                    "monitoring.coreos.com/v1/ServiceMonitor",
                ]);
                assert!(find(&off, "Service", helm::METRICS_NAME).is_some());
                assert!(find(&off, "ServiceMonitor", helm::METRICS_NAME).is_none());
            },
        },
        ValueCase {
            path: "metrics.serviceMonitor.interval",
            set: &[
                "--set",
                "metrics.enabled=true",
                "--set",
                "metrics.serviceMonitor.interval=15s",
                "--api-versions",
                "monitoring.coreos.com/v1/ServiceMonitor",
            ],
            check: |o| {
                let monitor = get(o, "ServiceMonitor", helm::METRICS_NAME);
                assert_eq!(monitor["spec"]["endpoints"][0]["interval"], "15s");
                assert_eq!(monitor["spec"]["endpoints"][0]["port"], "https");
                assert_eq!(monitor["spec"]["endpoints"][0]["scheme"], "https");
                let service = get(o, "Service", helm::METRICS_NAME);
                assert_eq!(service["spec"]["ports"][0]["targetPort"], "metrics");
                assert_eq!(
                    service["spec"]["selector"],
                    manager(o)["spec"]["selector"]["matchLabels"]
                );
                for (k, v) in monitor["spec"]["selector"]["matchLabels"]
                    .as_object()
                    .unwrap()
                {
                    assert_eq!(
                        &service["metadata"]["labels"][k], v,
                        "the ServiceMonitor selects the Service"
                    );
                }
            },
        },
        ValueCase {
            path: "metrics.serviceMonitor.labels",
            set: &[
                "--set",
                "metrics.enabled=true",
                "--set",
                "metrics.serviceMonitor.labels.release=prometheus",
                "--api-versions",
                "monitoring.coreos.com/v1/ServiceMonitor",
            ],
            check: |o| {
                assert_eq!(
                    get(o, "ServiceMonitor", helm::METRICS_NAME)["metadata"]["labels"]["release"],
                    "prometheus"
                )
            },
        },
        ValueCase {
            path: "nodeSelector",
            set: &["--set", "nodeSelector.pool=ops"],
            check: |o| {
                for pod in [
                    &manager(o)["spec"]["template"]["spec"],
                    &get(o, "Job", helm::UNINSTALL_NAME)["spec"]["template"]["spec"],
                ] {
                    assert_eq!(pod["nodeSelector"], json!({"pool": "ops"}));
                }
            },
        },
        ValueCase {
            path: "tolerations",
            set: &[
                "--set-json",
                r#"tolerations=[{"key":"ops","operator":"Exists","effect":"NoSchedule"}]"#,
            ],
            check: |o| {
                for pod in [
                    &manager(o)["spec"]["template"]["spec"],
                    &get(o, "Job", helm::UNINSTALL_NAME)["spec"]["template"]["spec"],
                ] {
                    assert_eq!(
                        pod["tolerations"],
                        json!([{"key": "ops", "operator": "Exists", "effect": "NoSchedule"}])
                    );
                }
            },
        },
        ValueCase {
            path: "affinity",
            set: &[
                "--set-json",
                r#"affinity={"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"pool","operator":"In","values":["ops"]}]}]}}}"#,
            ],
            check: |o| {
                for pod in [
                    &manager(o)["spec"]["template"]["spec"],
                    &get(o, "Job", helm::UNINSTALL_NAME)["spec"]["template"]["spec"],
                ] {
                    assert_eq!(
                        pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
                            ["nodeSelectorTerms"][0]["matchExpressions"][0]["key"],
                        "pool"
                    );
                }
            },
        },
        ValueCase {
            path: "uninstallHook.enabled",
            set: &["--set", "uninstallHook.enabled=false"],
            check: |o| {
                assert!(o.iter().all(|x| {
                    !x["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .starts_with(helm::UNINSTALL_NAME)
                }));
            },
        },
    ]
}

/// Every leaf of the default values (a Kubernetes object counts as one).
fn value_paths(value: &Value, path: &str, out: &mut BTreeSet<String>) {
    let objects_as_leaves = [
        "resources",
        "litellm.podSecurityContext",
        "litellm.containerSecurityContext",
        "metrics.serviceMonitor.labels",
        "nodeSelector",
        "affinity",
    ];
    match value {
        Value::Object(map) if !objects_as_leaves.contains(&path) => {
            for (key, child) in map {
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                value_paths(child, &child_path, out);
            }
        }
        _ => {
            out.insert(path.to_owned());
        }
    }
}

#[test]
fn every_value_changes_what_the_chart_renders() {
    let defaults = template(&[]);
    let cases = cases();
    let mut covered = BTreeSet::new();
    for case in &cases {
        let changed = template(case.set);
        assert_ne!(
            keyed(&changed),
            keyed(&defaults),
            "{}: setting it renders the same objects",
            case.path
        );
        (case.check)(&changed);
        covered.insert(case.path.to_owned());
    }
    let mut all = BTreeSet::new();
    value_paths(&helm::default_values(), "", &mut all);
    assert_eq!(
        covered, all,
        "every value has a case here, and no case is for a value that does not exist"
    );
    // The default values pass the binary's own parsers unchanged.
    let run = parsed_run(&defaults);
    assert_eq!(
        run.operator.render.settings(),
        litellm_impl::RenderSettings::default()
    );
}

#[test]
fn a_wrong_value_is_refused_with_a_message_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("values.yaml");
    std::fs::write(&values, "replicas: \"two\"\n").unwrap();
    let error = template_error(&["-f", values.to_str().unwrap()]);
    assert!(
        error.contains("replicas") && error.contains("string"),
        "{error}"
    );
    for (set, named) in [
        (["--set", "replica=3"], "replica"),
        (["--set", "logFormat=yaml"], "logFormat"),
        (
            ["--set-json", r#"gatewayKinds=["ai-gateways"]"#],
            "gatewayKinds",
        ),
        (
            ["--set", "litellm.podSecurityContext.runAsUsr=1"],
            "runAsUsr",
        ),
        (["--set", "resources.limits.cpu=true"], "resources"),
        (["--set", "watchNamespace=Team_A"], "watchNamespace"),
        // A label the chart sets itself would be a duplicate key of the ServiceMonitor.
        (
            [
                "--set",
                "metrics.serviceMonitor.labels.app\\.kubernetes\\.io/name=x",
            ],
            "at '/metrics/serviceMonitor/labels/app.kubernetes.io~1name'",
        ),
    ] {
        let error = template_error(&set);
        assert!(error.contains(named), "{set:?}: {error}");
    }
    // Two writers without leader election: refused, not installed.
    let error = template_error(&["--set", "leaderElection.enabled=false"]);
    assert!(
        error.contains("leaderElection.enabled") && error.contains("replicas"),
        "{error}"
    );
}

#[test]
fn the_how_to_documents_every_value() {
    let how_to =
        std::fs::read_to_string(workspace().join("docs/how-to/install-with-helm.md")).unwrap();
    let mut all = BTreeSet::new();
    value_paths(&helm::default_values(), "", &mut all);
    let missing: Vec<&String> = all
        .iter()
        .filter(|path| !how_to.contains(&format!("`{path}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/how-to/install-with-helm.md does not document {missing:?}"
    );
}

/// The documented CRD upgrade applies, and the documented uninstall deletes, exactly
/// the served kinds' CRDs; the rollback's last step deletes only the operator's own
/// objects, never a CRD or a class.
#[test]
fn the_documented_commands_touch_only_what_we_own() {
    let how_to = "docs/how-to/install-with-helm.md";
    let upgrade = common::docs::sh_commands(how_to, "Upgrade");
    let apply = upgrade
        .iter()
        .find(|c| c.starts_with("kubectl apply"))
        .expect("the upgrade applies the CRDs");
    let words: Vec<&str> = apply.split_whitespace().collect();
    let applied: BTreeSet<String> = words
        .windows(2)
        .filter(|w| w[0] == "-f")
        .map(|w| {
            let file = w[1]
                .strip_prefix("deploy/helm/crds/")
                .unwrap_or_else(|| panic!("{apply}: {} is not a chart CRD", w[1]));
            assert!(
                workspace().join(w[1]).is_file(),
                "{apply}: {} does not exist",
                w[1]
            );
            file.strip_suffix(".yaml").unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        applied,
        common::served_crds()
            .into_iter()
            .collect::<BTreeSet<String>>(),
        "{apply}"
    );
    assert!(
        upgrade
            .iter()
            .any(|c| c.starts_with("helm upgrade") && c.contains("--reset-then-reuse-values")),
        "{upgrade:?}"
    );
    assert!(
        !upgrade.iter().any(|c| c.contains("--reuse-values")),
        "--reuse-values keeps the old chart's defaults: {upgrade:?}"
    );

    let uninstall = common::docs::sh_commands(how_to, "Uninstall");
    let delete = uninstall
        .iter()
        .find(|c| c.starts_with("kubectl delete crd "))
        .expect("the uninstall deletes the CRDs");
    let deleted: BTreeSet<String> = delete
        .trim_start_matches("kubectl delete crd ")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        deleted,
        common::served_crds()
            .into_iter()
            .collect::<BTreeSet<String>>(),
        "{delete}"
    );

    let rollback =
        common::docs::sh_commands("docs/how-to/migrate-from-go-operator.md", "Roll back");
    let step4 = rollback
        .iter()
        .find(|c| c.starts_with("kubectl delete"))
        .expect("the rollback removes our installation");
    assert!(!step4.contains(" -k "), "{step4}");
    let words: Vec<&str> = step4.split_whitespace().collect();
    let files: Vec<&str> = words
        .windows(2)
        .filter(|w| w[0] == "-f")
        .map(|w| w[1])
        .collect();
    assert!(!files.is_empty(), "{step4}");
    for file in files {
        let objects = parse_yaml_stream(&std::fs::read_to_string(workspace().join(file)).unwrap());
        for object in objects {
            let kind = object["kind"].as_str().unwrap();
            assert!(
                kind != "CustomResourceDefinition" && !kind.ends_with("GatewayClass"),
                "the rollback deletes {kind} {} from {file}",
                object["metadata"]["name"]
            );
        }
    }
}
