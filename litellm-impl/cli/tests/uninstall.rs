//! `litellm-impl uninstall` (the built binary) against the in-memory API server over
//! HTTP, after the operator of `litellm-impl run` marked the example gateways: it
//! releases exactly our finalizers and marks, within the namespace and kinds asked,
//! leaves everyone else's, writes nothing on a dry run or a second run, and says so.
//! The same on a real control plane, with deleting the classes and CRDs timed:
//! `real_cluster_helm.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use aigateway_api::{AiGateway, AiGatewayClass, ToolGateway, ToolGatewayClass, ToolRoute};
use aigateway_runtime::testing::{RunningOperator, eventually_within};
use aigateway_testkit::{ApiServer, HttpServer};
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use litellm_impl_cli::run::{BindAddress, OperatorArgs, ServedGatewayKind, operator};

const CLASS_FINALIZER: &str = "aigateway.agentic-layer.ai/gateway-exists";
const OWNER: &str = "aigateway.agentic-layer.ai/conditions-owner";
const AI_CONTROLLER: &str = "aigateway.agentic-layer.ai/ai-gateway-litellm-controller";

fn manifest(path: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(path),
    )
    .unwrap()
}

struct Cluster {
    server: ApiServer,
    _http: HttpServer,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

/// The example AiGateway and ToolGateway (with its two routes) served by our operator,
/// which is then stopped, and marked as an operator of an earlier release marked them
/// (the conditions-owner annotation); a class and a gateway of another controller
/// beside them.
async fn marked_cluster() -> Cluster {
    let server = ApiServer::builder()
        .deployment_ready_delay(Duration::from_millis(50))
        .build();
    for crd in aigateway_api::crds::all() {
        server.install_crd(crd).await.unwrap();
    }
    for file in [
        "examples/manifests/litellm-class.yaml",
        "examples/manifests/basic-gateway.yaml",
        "examples/manifests/tool-gateway.yaml",
    ] {
        server.apply_manifests(&manifest(file)).unwrap();
    }
    let args = OperatorArgs {
        namespace: None,
        health_probe_bind_address: BindAddress::Off,
        metrics_bind_address: BindAddress::Off,
        metrics_secure: false,
        metrics_cert_path: None,
        metrics_cert_name: "tls.crt".into(),
        metrics_cert_key: "tls.key".into(),
        render: litellm_impl_cli::flags::RenderFlags::default(),
        concurrency: 4,
        log_format: aigateway_runtime::logging::LogFormat::Text,
        gateway_kinds: vec![ServedGatewayKind::AiGateway, ServedGatewayKind::ToolGateway],
    };
    let running = RunningOperator::spawn(operator(server.client(), &args));
    let client = server.client();
    eventually_within(Duration::from_secs(60), "our marks on the examples", || {
        let client = client.clone();
        async move {
            let class = Api::<AiGatewayClass>::all(client.clone())
                .get("litellm")
                .await
                .ok()?;
            let tool_class = Api::<ToolGatewayClass>::all(client.clone())
                .get("litellm")
                .await
                .ok()?;
            let routes = Api::<ToolRoute>::all(client.clone())
                .list(&Default::default())
                .await
                .ok()?;
            let marked = class.finalizers().iter().any(|f| f == CLASS_FINALIZER)
                && tool_class.finalizers().iter().any(|f| f == CLASS_FINALIZER)
                && routes.items.len() == 2
                && routes
                    .items
                    .iter()
                    .all(|r| r.status.as_ref().is_some_and(|s| !s.conditions.is_empty()));
            marked.then_some(())
        }
    })
    .await;
    running.wait_idle(&server).await;
    running.stop().await;
    // An operator of an earlier release marked the gateways and routes whose conditions
    // it wrote with an annotation; ours only reads it and leaves it to `uninstall`.
    let legacy = |controller: &str| {
        Patch::Merge(serde_json::json!({"metadata": {"annotations": {OWNER: controller}}}))
    };
    let tools_controller = litellm_impl::names::TOOL_GATEWAY_CONTROLLER_NAME;
    Api::<AiGateway>::namespaced(client.clone(), "ai-gateway")
        .patch(
            "ai-gateway",
            &PatchParams::default(),
            &legacy(AI_CONTROLLER),
        )
        .await
        .unwrap();
    Api::<ToolGateway>::namespaced(client.clone(), "tool-gateway")
        .patch("tools", &PatchParams::default(), &legacy(tools_controller))
        .await
        .unwrap();
    for route in Api::<ToolRoute>::all(client.clone())
        .list(&Default::default())
        .await
        .unwrap()
    {
        Api::<ToolRoute>::namespaced(client.clone(), &route.namespace().unwrap())
            .patch(
                &route.name_any(),
                &PatchParams::default(),
                &legacy(tools_controller),
            )
            .await
            .unwrap();
    }
    // Once ours is stopped: someone else's class (with our finalizer key, as their
    // runtime would add it) and a gateway of theirs whose conditions they own.
    server
        .apply_manifests(&format!(
            "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: AiGatewayClass\nmetadata:\n  name: theirs\n  finalizers: [{CLASS_FINALIZER}]\nspec:\n  controller: example.com/theirs\n---\n\
             apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: AiGateway\nmetadata:\n  name: theirs\n  namespace: ai-gateway\n  finalizers: [aigateway.agentic-layer.ai/cleanup]\n  annotations:\n    {OWNER}: example.com/theirs\nspec:\n  aiGatewayClassName: theirs\n  aiModels:\n    - {{provider: openai, name: gpt-4o}}\n"
        ))
        .unwrap();
    let http = server
        .serve_http("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    http.write_kubeconfig(&kubeconfig).unwrap();
    Cluster {
        server,
        _http: http,
        _dir: dir,
        kubeconfig,
    }
}

/// Runs the binary off the async runtime; success and all output.
async fn uninstall(cluster: &Cluster, args: &[&str]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_litellm-impl"));
    command
        .arg("uninstall")
        .arg("--kubeconfig")
        .arg(&cluster.kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        .env_remove("WATCH_NAMESPACE")
        .env_remove("GATEWAY_KINDS");
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

async fn cluster_object<K>(cluster: &Cluster, name: &str) -> K
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::ClusterResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
{
    Api::<K>::all(cluster.server.client())
        .get(name)
        .await
        .unwrap()
}

async fn namespaced<K>(cluster: &Cluster, namespace: &str, name: &str) -> K
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
{
    Api::<K>::namespaced(cluster.server.client(), namespace)
        .get(name)
        .await
        .unwrap()
}

#[tokio::test]
async fn uninstall_releases_exactly_our_marks_once() {
    let cluster = marked_cluster().await;
    let writes = || cluster.server.stats().writes();

    let before = writes();
    let (ok, dry) = uninstall(&cluster, &["--dry-run"]).await;
    assert!(ok, "{dry}");
    assert_eq!(writes(), before, "--dry-run wrote:\n{dry}");
    assert!(
        dry.contains(&format!(
            "would release AiGatewayClass litellm: finalizer {CLASS_FINALIZER}"
        )),
        "{dry}"
    );
    assert!(
        dry.contains(&format!(
            "would release AiGateway ai-gateway/ai-gateway: annotation {OWNER}"
        )),
        "{dry}"
    );

    let (ok, out) = uninstall(&cluster, &[]).await;
    assert!(ok, "{out}");
    let released: Vec<&str> = out.lines().filter(|l| l.starts_with("released ")).collect();
    // Two classes, two gateways, two routes.
    assert_eq!(released.len(), 6, "{out}");
    assert_eq!(writes() - before, 6, "one write per object:\n{out}");
    assert!(!out.contains("theirs"), "{out}");

    let class: AiGatewayClass = cluster_object(&cluster, "litellm").await;
    assert!(class.finalizers().is_empty(), "{class:?}");
    let gateway: AiGateway = namespaced(&cluster, "ai-gateway", "ai-gateway").await;
    assert!(!gateway.annotations().contains_key(OWNER));
    // Nothing else: our conditions stay (so does every child).
    assert!(
        gateway
            .status
            .as_ref()
            .is_some_and(|s| !s.conditions.is_empty())
    );
    let tools: ToolGateway = namespaced(&cluster, "tool-gateway", "tools").await;
    assert!(!tools.annotations().contains_key(OWNER));
    // Another controller's marks stay, finalizer key or not.
    let theirs: AiGatewayClass = cluster_object(&cluster, "theirs").await;
    assert_eq!(theirs.finalizers(), [CLASS_FINALIZER]);
    let theirs: AiGateway = namespaced(&cluster, "ai-gateway", "theirs").await;
    assert_eq!(theirs.annotations()[OWNER], "example.com/theirs");
    assert_eq!(theirs.finalizers(), ["aigateway.agentic-layer.ai/cleanup"]);

    let before = writes();
    let (ok, again) = uninstall(&cluster, &[]).await;
    assert!(ok, "{again}");
    assert!(again.contains("nothing to release"), "{again}");
    assert_eq!(writes(), before, "a second run wrote:\n{again}");
}

#[tokio::test]
async fn uninstall_keeps_to_the_namespace_and_kinds_it_is_given() {
    let cluster = marked_cluster().await;
    let (ok, out) = uninstall(
        &cluster,
        &["--gateway-kinds", "ai-gateway", "--namespace", "elsewhere"],
    )
    .await;
    assert!(ok, "{out}");
    // The class is cluster-wide; the gateway is in another namespace; ToolGateways are
    // not asked for.
    assert!(
        out.contains(&format!(
            "released AiGatewayClass litellm: finalizer {CLASS_FINALIZER}"
        )),
        "{out}"
    );
    assert!(
        !out.contains("AiGateway ai-gateway/") && !out.contains("Tool"),
        "{out}"
    );
    let gateway: AiGateway = namespaced(&cluster, "ai-gateway", "ai-gateway").await;
    assert_eq!(gateway.annotations()[OWNER], AI_CONTROLLER);
    let tool_class: ToolGatewayClass = cluster_object(&cluster, "litellm").await;
    assert_eq!(tool_class.finalizers(), [CLASS_FINALIZER]);
}

#[tokio::test]
async fn an_unreachable_api_server_is_one_line_and_exit_code_5() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: secret-token-value\n"
        ),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_litellm-impl"))
        .args(["uninstall", "--kubeconfig"])
        .arg(&kubeconfig)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(5));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: could not list aigatewayclasses.runtime.agentic-layer.ai"),
        "{stderr}"
    );
    assert!(!stderr.contains("secret-token-value"), "{stderr}");
}

/// A kubeconfig that cannot be read is exit code 3, as for `run` (5 means a mark could
/// not be released, which a script may retry).
#[test]
fn an_unusable_kubeconfig_is_exit_code_3() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_litellm-impl"))
        .args(["uninstall", "--kubeconfig"])
        .arg(dir.path().join("missing"))
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    let help = Command::new(env!("CARGO_BIN_EXE_litellm-impl"))
        .args(["uninstall", "--help"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&help.stdout)
            .contains("3  no usable kubeconfig or in-cluster config"),
        "the help lists exit code 3"
    );
}
