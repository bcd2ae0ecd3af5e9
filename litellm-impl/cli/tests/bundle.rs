//! The install bundle: `deploy/` is generated from `litellm_impl_cli::bundle`, builds with
//! kustomize into exactly what `litellm-impl manifests` prints, applies cleanly with
//! `kubectl apply --server-side`, and its RBAC grants exactly what the operator uses.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use aigateway_api::{AiGateway, ToolGateway, ToolRoute};
use aigateway_runtime::{LeaderElection, Operator};
use aigateway_testkit::ApiServer;
use common::parse_yaml_stream;
use kube::api::Api;
use litellm_impl::{LiteLlmGateway, LiteLlmToolGateway, RenderSettings};
use litellm_impl_cli::bundle;
use serde_json::Value;

const REGENERATE: &str = "UPDATE_GOLDEN=1 cargo test -p litellm-impl-cli --test bundle";
const OPERATOR_NAMESPACE: &str = "ai-gateway-litellm-system";
const RUNTIME_API: &str = "runtime.agentic-layer.ai/v1alpha1";
/// Written by operators of earlier releases; ours removes it on release.
const LEGACY_OWNER: &str = "aigateway.agentic-layer.ai/conditions-owner";

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn kubectl_available() -> bool {
    let found = Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("SKIPPED: kubectl is not installed; install kubectl 1.32 to run this test");
    }
    found
}

/// Objects keyed by (apiVersion, kind, namespace, name) so order does not matter.
fn keyed(objects: Vec<Value>) -> BTreeMap<String, Value> {
    objects
        .into_iter()
        .map(|o| {
            let key = format!(
                "{} {} {}/{}",
                o["apiVersion"].as_str().unwrap_or_default(),
                o["kind"].as_str().unwrap_or_default(),
                o["metadata"]["namespace"].as_str().unwrap_or_default(),
                o["metadata"]["name"].as_str().unwrap_or_default()
            );
            (key, o)
        })
        .collect()
}

#[test]
fn deploy_is_generated_from_the_code() {
    let dir = deploy_dir();
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut expected: Vec<(PathBuf, String)> =
        vec![(dir.join("kustomization.yaml"), bundle::kustomization())];
    // Upstream's CRDs in deploy/crds/ are generated (and guarded) by aigateway-api's
    // crd_files test; the implementation's own policy kinds here.
    for file in bundle::files().into_iter().filter(|f| {
        !f.path.starts_with("crds/") || f.path.ends_with(".litellm.aigateway.agentic-layer.ai.yaml")
    }) {
        expected.push((dir.join(&file.path), bundle::to_yaml(&file.objects)));
    }
    let mut stale = Vec::new();
    for (path, text) in expected {
        if update {
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale install bundle files: {stale:?}\nRegenerate with:\n    {REGENERATE}"
    );
}

#[test]
fn kustomize_builds_exactly_the_manifests_output() {
    if !kubectl_available() {
        return;
    }
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(deploy_dir())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "kubectl kustomize deploy/ failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let built = keyed(parse_yaml_stream(
        &String::from_utf8(output.stdout).unwrap(),
    ));

    let manifests = Command::new(env!("CARGO_BIN_EXE_litellm-impl"))
        .arg("manifests")
        .output()
        .unwrap();
    assert!(manifests.status.success());
    let printed = keyed(parse_yaml_stream(
        &String::from_utf8(manifests.stdout).unwrap(),
    ));
    assert_eq!(
        built.keys().collect::<Vec<_>>(),
        printed.keys().collect::<Vec<_>>()
    );
    for (key, object) in &printed {
        assert_eq!(
            &built[key], object,
            "{key} differs between deploy/ and `litellm-impl manifests`"
        );
    }
}

/// Runs kubectl with `kubeconfig` off the async runtime; returns success and all output.
async fn kubectl(kubeconfig: &Path, args: &[&str]) -> (bool, String) {
    let kubeconfig = kubeconfig.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let output = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(&args)
            .output()
            .unwrap();
        (
            output.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_bundle_applies_cleanly_with_server_side_apply() {
    if !kubectl_available() {
        return;
    }
    let server = ApiServer::new();
    let http = server
        .serve_http("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    http.write_kubeconfig(&kubeconfig).unwrap();
    let deploy = deploy_dir();
    // CRDs first, so that the class in the bundle has its kind when kubectl maps it.
    let (ok, out) = kubectl(
        &kubeconfig,
        &[
            "apply",
            "--server-side",
            "-f",
            deploy.join("crds").to_str().unwrap(),
        ],
    )
    .await;
    assert!(ok, "{out}");
    let (ok, out) = kubectl(
        &kubeconfig,
        &[
            "wait",
            "--for=condition=Established",
            "crd",
            "--all",
            "--timeout=30s",
        ],
    )
    .await;
    assert!(ok, "{out}");
    let (ok, out) = kubectl(
        &kubeconfig,
        &["apply", "--server-side", "-k", deploy.to_str().unwrap()],
    )
    .await;
    assert!(ok, "kubectl apply --server-side -k deploy/ failed:\n{out}");
    for expected in [
        "deployment.apps/litellm-impl serverside-applied",
        "aigatewayclass.runtime.agentic-layer.ai/litellm serverside-applied",
        "clusterrole.rbac.authorization.k8s.io/litellm-impl serverside-applied",
    ] {
        assert!(out.contains(expected), "{expected} missing from:\n{out}");
    }
    let stored = server.get_object(
        "apps/v1",
        "Deployment",
        Some(OPERATOR_NAMESPACE),
        "litellm-impl",
    );
    assert!(stored.is_some(), "the manager Deployment is stored");
    http.shutdown().await;
}

/// Whether `rules` grant `verb` on `group`/`resource`.
fn allows(rules: &Value, group: &str, resource: &str, verb: &str) -> bool {
    rules.as_array().unwrap().iter().any(|rule| {
        let has = |field: &str, value: &str| {
            rule[field]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v == value || v == "*")
        };
        has("apiGroups", group) && has("resources", resource) && has("verbs", verb)
    })
}

#[tokio::test]
async fn rbac_grants_exactly_what_the_operator_uses() {
    let server = ApiServer::new();
    for crd in aigateway_api::crds::all() {
        server.install_crd(crd).await.unwrap();
    }
    // Installed, so that the operator's ReferenceGrant watch is exercised too.
    server
        .apply_manifests(&aigateway_testkit::third_party::reference_grant_crd().unwrap())
        .unwrap();
    server
        .apply_manifests(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {OPERATOR_NAMESPACE}\n"
        ))
        .unwrap();
    // Setup goes straight to the store: every logged request is then the operator's.
    for file in [
        "litellm-class-default.yaml",
        "multi-provider-gateway.yaml",
        "guarded-gateway.yaml",
        "config-patched-gateway.yaml",
        "tool-gateway.yaml",
    ] {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../examples/manifests")
                .join(file),
        )
        .unwrap();
        server.apply_manifests(&text).unwrap();
    }
    // prometheus-operator's ServiceMonitor and PodMonitor kinds (their schemas left open
    // here; the real CRDs are installed by the real-cluster scenario), for the monitor an
    // observability policy asks for.
    for kind in ["ServiceMonitor", "PodMonitor"] {
        server.apply_manifests(&monitor_crd(kind)).unwrap();
    }
    // A policy of each kind, so that their watches and status writes are exercised.
    for crd in litellm_impl::policy::crds() {
        server.install_crd(crd).await.unwrap();
    }
    server
        .apply_manifests(&format!(
            "apiVersion: {0}/v1alpha1\nkind: LiteLLMModelPolicy\nmetadata:\n  name: timeouts\n  namespace: team-a\nspec:\n  targetRefs:\n  - group: runtime.agentic-layer.ai\n    kind: AiGateway\n    name: multi-provider\n  timeoutSeconds: 30\n---\napiVersion: {0}/v1alpha1\nkind: LiteLLMRoutingPolicy\nmetadata:\n  name: retries\n  namespace: team-a\nspec:\n  targetRefs:\n  - group: runtime.agentic-layer.ai\n    kind: AiGateway\n    name: multi-provider\n  retries: 2\n---\napiVersion: {0}/v1alpha1\nkind: LiteLLMObservabilityPolicy\nmetadata:\n  name: traces\n  namespace: team-a\nspec:\n  targetRefs:\n  - group: runtime.agentic-layer.ai\n    kind: AiGateway\n    name: multi-provider\n  tracing:\n    endpoint: http://otel-collector.observability:4318\n---\napiVersion: {0}/v1alpha1\nkind: LiteLLMAvailabilityPolicy\nmetadata:\n  name: available\n  namespace: ai-gateway-patched\nspec:\n  targetRefs:\n  - group: runtime.agentic-layer.ai\n    kind: AiGateway\n    name: ai-gateway\n  autoscaling: {{maxReplicas: 3}}\n  disruptionBudget: {{maxUnavailable: 1}}\n---\napiVersion: {0}/v1alpha1\nkind: LiteLLMObservabilityPolicy\nmetadata:\n  name: scraped\n  namespace: ai-gateway-patched\nspec:\n  targetRefs:\n  - group: runtime.agentic-layer.ai\n    kind: AiGateway\n    name: ai-gateway\n  monitoring: {{interval: 30s}}\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: web-search-token\n  namespace: team-tools\nstringData:\n  token: Bearer replace-me\n---\napiVersion: {0}/v1alpha1\nkind: LiteLLMToolRoutePolicy\nmetadata:\n  name: web-search-auth\n  namespace: team-tools\nspec:\n  targetRefs:\n  - group: runtime.agentic-layer.ai\n    kind: ToolRoute\n    name: web-search\n  upstreamAuth:\n    header: {{secretName: web-search-token, key: token}}\n---\napiVersion: {0}/v1alpha1\nkind: LiteLLMToolRoutePolicy\nmetadata:\n  name: on-the-gateway\n  namespace: tool-gateway\nspec:\n  targetRefs:\n  - group: runtime.agentic-layer.ai\n    kind: ToolGateway\n    name: tools\n  timeoutSeconds: 30\n",
            litellm_impl::policy::GROUP
        ))
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let operator = Operator::new(server.client())
        .gateway(LiteLlmGateway::new(RenderSettings::default()))
        .gateway(LiteLlmToolGateway::new(RenderSettings::default()))
        .leader_election(
            LeaderElection::new("litellm-impl", OPERATOR_NAMESPACE)
                .identity("rbac-test")
                .timing(5, 2),
        )
        .shutdown_on(async move {
            let _ = stopped.await;
        });
    let task = tokio::spawn(operator.run());

    let gateways: Api<AiGateway> = Api::all(server.client());
    let tool_gateways: Api<ToolGateway> = Api::all(server.client());
    let routes: Api<ToolRoute> = Api::all(server.client());
    let all_ready = || async {
        let list = gateways.list(&Default::default()).await.unwrap();
        let tools = tool_gateways.list(&Default::default()).await.unwrap();
        let routes = routes.list(&Default::default()).await.unwrap();
        list.items.len() == 3
            && list.items.iter().all(|g| {
                g.status
                    .as_ref()
                    .is_some_and(|s| aigateway_api::conditions::is_true(&s.conditions, "Ready"))
            })
            && tools.items.len() == 1
            && tools.items.iter().all(|g| {
                g.status
                    .as_ref()
                    .is_some_and(|s| aigateway_api::conditions::is_true(&s.conditions, "Ready"))
            })
            && routes.items.len() == 2
            && routes
                .items
                .iter()
                .all(|r| r.status.as_ref().is_some_and(|s| s.url.is_some()))
            && server
                .get_object(
                    &format!("{}/v1alpha1", litellm_impl::policy::GROUP),
                    "LiteLLMModelPolicy",
                    Some("team-a"),
                    "timeouts",
                )
                .is_some_and(|p| !p["status"]["ancestors"].is_null())
            && server
                .get_object(
                    &format!("{}/v1alpha1", litellm_impl::policy::GROUP),
                    "LiteLLMRoutingPolicy",
                    Some("team-a"),
                    "retries",
                )
                .is_some_and(|p| !p["status"]["ancestors"].is_null())
            && server
                .get_object(
                    &format!("{}/v1alpha1", litellm_impl::policy::GROUP),
                    "LiteLLMObservabilityPolicy",
                    Some("team-a"),
                    "traces",
                )
                .is_some_and(|p| !p["status"]["ancestors"].is_null())
            && server
                .get_object(
                    &format!("{}/v1alpha1", litellm_impl::policy::GROUP),
                    "LiteLLMAvailabilityPolicy",
                    Some("ai-gateway-patched"),
                    "available",
                )
                .is_some_and(|p| !p["status"]["ancestors"].is_null())
            && server
                .get_object(
                    &format!("{}/v1alpha1", litellm_impl::policy::GROUP),
                    "LiteLLMToolRoutePolicy",
                    Some("tool-gateway"),
                    "on-the-gateway",
                )
                .is_some_and(|p| !p["status"]["ancestors"].is_null())
            // The copy of the route's credential: a child Secret of the ToolGateway.
            && server
                .get_object("v1", "Secret", Some("tool-gateway"), "tools-route-credentials")
                .is_some()
            && server
                .get_object(
                    "monitoring.coreos.com/v1",
                    "ServiceMonitor",
                    Some("ai-gateway-patched"),
                    "ai-gateway",
                )
                .is_some()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !all_ready().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gateways did not become Ready: {:#?}",
            gateways
                .list(&Default::default())
                .await
                .unwrap()
                .items
                .iter()
                .map(|g| (
                    g.metadata.name.clone(),
                    g.status.as_ref().map(|s| s.conditions.clone())
                ))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The policy asks for a PodMonitor instead: made, and the ServiceMonitor pruned.
    let mut scraped = server
        .get_object(
            &format!("{}/v1alpha1", litellm_impl::policy::GROUP),
            "LiteLLMObservabilityPolicy",
            Some("ai-gateway-patched"),
            "scraped",
        )
        .unwrap();
    scraped["spec"]["monitoring"]["kind"] = "PodMonitor".into();
    server.put_object(scraped).unwrap();
    let monitor = |kind: &str| {
        server
            .get_object(
                "monitoring.coreos.com/v1",
                kind,
                Some("ai-gateway-patched"),
                "ai-gateway",
            )
            .is_some()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !monitor("PodMonitor") || monitor("ServiceMonitor") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the PodMonitor did not replace the ServiceMonitor (PodMonitor: {}, ServiceMonitor: {}): {:#}",
            monitor("PodMonitor"),
            monitor("ServiceMonitor"),
            server
                .get_object(
                    &format!("{}/v1alpha1", litellm_impl::policy::GROUP),
                    "LiteLLMObservabilityPolicy",
                    Some("ai-gateway-patched"),
                    "scraped",
                )
                .unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A gateway and a ToolGateway that move to another controller's class: their
    // children are deleted (prune permissions). They and the routes carry the
    // conditions-owner annotation of an earlier release, which the release removes
    // (patch permissions). A class that does not exist would leave them alone.
    server
        .apply_manifests(
            "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: AiGatewayClass\nmetadata:\n  name: someone-else\nspec:\n  controller: example.com/someone-else\n---\napiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: ToolGatewayClass\nmetadata:\n  name: someone-else\nspec:\n  controller: example.com/someone-else\n",
        )
        .unwrap();
    let legacy = |api_version: &str,
                  kind: &str,
                  namespace: &str,
                  name: &str,
                  controller: &str,
                  class: Option<(&str, &str)>| {
        let mut object = server
            .get_object(api_version, kind, Some(namespace), name)
            .unwrap_or_else(|| panic!("{kind} {namespace}/{name} exists"));
        object["metadata"]["annotations"][LEGACY_OWNER] = controller.into();
        if let Some((field, class)) = class {
            object["spec"][field] = class.into();
        }
        server.put_object(object).unwrap();
    };
    let tools_controller = litellm_impl::names::TOOL_GATEWAY_CONTROLLER_NAME;
    for route in ["echo", "web-search"] {
        legacy(
            RUNTIME_API,
            "ToolRoute",
            "team-tools",
            route,
            tools_controller,
            None,
        );
    }
    legacy(
        RUNTIME_API,
        "ToolGateway",
        "tool-gateway",
        "tools",
        tools_controller,
        Some(("toolGatewayClassName", "someone-else")),
    );
    legacy(
        RUNTIME_API,
        "AiGateway",
        "ai-gateway-patched",
        "ai-gateway",
        litellm_impl::names::CONTROLLER_NAME,
        Some(("aiGatewayClassName", "someone-else")),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let annotated = |kind: &str, namespace: &str, name: &str| {
        server
            .get_object(RUNTIME_API, kind, Some(namespace), name)
            .is_some_and(|o| !o["metadata"]["annotations"][LEGACY_OWNER].is_null())
    };
    while annotated("AiGateway", "ai-gateway-patched", "ai-gateway")
        || annotated("ToolGateway", "tool-gateway", "tools")
        || annotated("ToolRoute", "team-tools", "echo")
        || annotated("ToolRoute", "team-tools", "web-search")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the legacy annotations of released objects were not removed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let children = [
        ("apps/v1", "Deployment"),
        ("policy/v1", "PodDisruptionBudget"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ("monitoring.coreos.com/v1", "ServiceMonitor"),
        ("monitoring.coreos.com/v1", "PodMonitor"),
    ];
    while children.iter().any(|(api_version, kind)| {
        server
            .get_object(api_version, kind, Some("ai-gateway-patched"), "ai-gateway")
            .is_some()
    }) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "children of a released gateway were not deleted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The released ToolGateway's Secret of copied credentials goes with its other
    // children.
    while server
        .get_object(
            "v1",
            "Secret",
            Some("tool-gateway"),
            "tools-route-credentials",
        )
        .is_some()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the Secret of a released ToolGateway was not deleted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    let cluster = bundle::cluster_rules();
    let namespaced = bundle::namespace_rules();
    let mut used: BTreeSet<(String, String, String)> = BTreeSet::new();
    let mut denied = Vec::new();
    for request in server.requests().into_iter().filter(|r| !r.verb.is_empty()) {
        let resource = if request.subresource.is_empty() {
            request.resource.clone()
        } else {
            format!("{}/{}", request.resource, request.subresource)
        };
        // A real API server authorises a patch that creates the object (server-side
        // apply of a new child answers 201) as `create` too.
        let mut verbs = vec![request.verb.clone()];
        if request.verb == "patch" && request.status == 201 {
            verbs.push("create".into());
        }
        for verb in verbs {
            let allowed = allows(&cluster, &request.group, &resource, &verb)
                || (request.namespace == OPERATOR_NAMESPACE
                    && allows(&namespaced, &request.group, &resource, &verb));
            if !allowed {
                denied.push(format!(
                    "{verb} {} {}/{} in {:?}",
                    request.group, resource, request.name, request.namespace
                ));
            }
            used.insert((request.group.clone(), resource.clone(), verb));
        }
    }
    assert!(
        denied.is_empty(),
        "the operator made requests its RBAC does not allow:\n{}",
        denied.join("\n")
    );
    // kube's event Recorder patches an event only when the same event repeats (a series),
    // which a healthy run does not produce; the grant is still needed for that path. The
    // Secret metadata cache lists only on an API server that cannot stream lists
    // (Kubernetes 1.33 by default); the testkit streams them.
    const RARELY_USED: &[(&str, &str, &str)] = &[
        ("events.k8s.io", "events", "patch"),
        ("", "secrets", "list"),
    ];
    for (group, resource, verb) in RARELY_USED {
        assert!(
            allows(&cluster, group, resource, verb),
            "{group}/{resource} {verb} must stay granted"
        );
        used.insert((
            (*group).to_owned(),
            (*resource).to_owned(),
            (*verb).to_owned(),
        ));
    }
    let mut unused = Vec::new();
    for rules in [&cluster, &namespaced] {
        for rule in rules.as_array().unwrap() {
            for group in rule["apiGroups"].as_array().unwrap() {
                for resource in rule["resources"].as_array().unwrap() {
                    for verb in rule["verbs"].as_array().unwrap() {
                        let key = (
                            group.as_str().unwrap().to_owned(),
                            resource.as_str().unwrap().to_owned(),
                            verb.as_str().unwrap().to_owned(),
                        );
                        if !used.contains(&key) {
                            unused.push(format!("{key:?}"));
                        }
                    }
                }
            }
        }
    }
    assert!(
        unused.is_empty(),
        "RBAC grants what the operator never used (drop it):\n{}",
        unused.join("\n")
    );
}

/// A CustomResourceDefinition of prometheus-operator's `kind` (ServiceMonitor or
/// PodMonitor) with an open schema.
fn monitor_crd(kind: &str) -> String {
    let plural = format!("{}s", kind.to_lowercase());
    format!(
        "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {{plural: {plural}, singular: {singular}, kind: {kind}, listKind: {kind}List}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}
",
        singular = kind.to_lowercase(),
    )
}
