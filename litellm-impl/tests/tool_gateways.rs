//! ToolGateways served by the operator `litellm-impl run` builds (both kinds in one
//! process), against the in-memory API server: the Go operator's samples applied
//! unchanged, route status published only once the gateway is Ready, and each place
//! where the Go operator is wrong and we must not be.

use std::time::Duration;

use aigateway_api::conditions::find_condition;
use aigateway_api::{AiGateway, ToolGateway, ToolRoute};
use aigateway_runtime::testing::eventually_within;
use aigateway_testkit::ApiServer;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use litellm_impl::cli::run::{BindAddress, OperatorArgs, ServedGatewayKind, operator};

/// The Go operator's samples, imported unchanged (scripts/import-upstream.py).
/// How long a gateway or route may take to get where a test waits for it.
const WAIT: Duration = Duration::from_secs(30);

const SAMPLES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../aigateway-api/tests/fixtures/samples"
);

struct Running {
    server: ApiServer,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), aigateway_runtime::OperatorError>>,
}

impl Running {
    /// An API server with every CRD (Deployments roll out after `rollout`) and the
    /// operator of `litellm-impl run` serving both kinds.
    async fn start(rollout: Duration) -> Self {
        let server = ApiServer::builder().deployment_ready_delay(rollout).build();
        for crd in aigateway_api::crds::all() {
            server.install_crd(crd).await.unwrap();
        }
        let args = OperatorArgs {
            namespace: None,
            health_probe_bind_address: BindAddress::Off,
            metrics_bind_address: BindAddress::Off,
            metrics_secure: false,
            metrics_cert_path: None,
            metrics_cert_name: "tls.crt".into(),
            metrics_cert_key: "tls.key".into(),
            render: litellm_impl::RenderSettings::default(),
            concurrency: 4,
            log_format: aigateway_runtime::LogFormat::Text,
            gateway_kinds: vec![ServedGatewayKind::AiGateway, ServedGatewayKind::ToolGateway],
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(
            operator(server.client(), &args)
                .shutdown_on(async move {
                    let _ = stopped.await;
                })
                .run(),
        );
        Self {
            server,
            stop: Some(stop),
            task,
        }
    }

    fn apply(&self, yaml: &str) {
        self.server.apply_manifests(yaml).unwrap();
    }

    fn apply_sample(&self, file: &str) {
        let text = std::fs::read_to_string(format!("{SAMPLES}/{file}")).unwrap();
        self.apply(&text);
    }

    async fn tool_gateway(&self, namespace: &str, name: &str) -> Option<ToolGateway> {
        Api::<ToolGateway>::namespaced(self.server.client(), namespace)
            .get(name)
            .await
            .ok()
    }

    async fn route(&self, namespace: &str, name: &str) -> Option<ToolRoute> {
        Api::<ToolRoute>::namespaced(self.server.client(), namespace)
            .get(name)
            .await
            .ok()
    }

    async fn config(&self, namespace: &str, gateway: &str) -> String {
        Api::<ConfigMap>::namespaced(self.server.client(), namespace)
            .get(&format!("{gateway}-config"))
            .await
            .ok()
            .and_then(|c| c.data)
            .and_then(|mut d| d.remove("config.yaml"))
            .unwrap_or_default()
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the operator stops")
            .unwrap()
            .unwrap();
    }
}

/// `(status, reason, message)` of condition `type_`.
fn condition_of(
    conditions: Option<&Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>,
    type_: &str,
) -> Option<(String, String, String)> {
    let c = find_condition(conditions?, type_)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn gateway_condition(gateway: &ToolGateway, type_: &str) -> Option<(String, String, String)> {
    condition_of(gateway.status.as_ref().map(|s| &s.conditions), type_)
}

fn route_condition(route: &ToolRoute, type_: &str) -> Option<(String, String, String)> {
    condition_of(route.status.as_ref().map(|s| &s.conditions), type_)
}

fn route_url(route: &ToolRoute) -> Option<&str> {
    route.status.as_ref()?.url.as_deref()
}

fn is_true(condition: Option<(String, String, String)>) -> bool {
    condition.is_some_and(|(status, _, _)| status == "True")
}

#[tokio::test]
async fn the_go_operators_samples_become_ready_with_route_urls_only_once_the_gateway_serves() {
    // Deployments roll out 3 s after each change: long enough to see a route before.
    let running = Running::start(Duration::from_secs(3)).await;
    running.apply_sample("toolgatewayclass.yaml");
    running.apply_sample("toolgateway.yaml");

    // Programmed and attached, not Ready yet: the route has no URL.
    let route = eventually_within(WAIT, "route accepted", || async {
        let route = running.route("tool-gateway-routes", "echo").await?;
        is_true(route_condition(&route, "Accepted")).then_some(route)
    })
    .await;
    let gateway = running
        .tool_gateway("tool-gateway", "tool-gateway")
        .await
        .unwrap();
    assert!(
        !is_true(gateway_condition(&gateway, "Ready")),
        "the rollout delay is meant to outlast the first reconcile"
    );
    assert_eq!(route_url(&route), None, "a URL before the proxy serves");
    let (status, reason, _) = route_condition(&route, "Ready").unwrap();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "GatewayNotReady")
    );

    let expected =
        "http://tool-gateway.tool-gateway.svc.cluster.local/mcp/tool_gateway_routes__echo";
    let route = eventually_within(WAIT, "route url", || async {
        let route = running.route("tool-gateway-routes", "echo").await?;
        route_url(&route).is_some().then_some(route)
    })
    .await;
    assert_eq!(route_url(&route), Some(expected));
    assert!(is_true(route_condition(&route, "Ready")));
    let gateway = running
        .tool_gateway("tool-gateway", "tool-gateway")
        .await
        .unwrap();
    assert!(is_true(gateway_condition(&gateway, "Ready")));
    assert_eq!(
        gateway.status.as_ref().and_then(|s| s.url.as_deref()),
        Some("http://tool-gateway.tool-gateway.svc.cluster.local")
    );
    for (alias, source) in [
        ("ToolGatewayConfigured", "Programmed"),
        ("ToolGatewayReady", "Ready"),
    ] {
        assert_eq!(
            gateway_condition(&gateway, alias).map(|c| c.0),
            gateway_condition(&gateway, source).map(|c| c.0),
            "{alias}"
        );
    }
    let config = running.config("tool-gateway", "tool-gateway").await;
    assert!(config.contains("tool_gateway_routes__echo:"), "{config}");
    assert!(config.contains("url: http://echo.default/mcp"), "{config}");

    // The guarded sample: Guards across namespaces become MCP hooks.
    running.apply_sample("toolgateway-guarded.yaml");
    eventually_within(WAIT, "guarded route url", || async {
        let route = running
            .route("tool-gateway-guarded-routes", "echo-guarded")
            .await?;
        route_url(&route).map(str::to_owned)
    })
    .await;
    let config = running
        .config("tool-gateway-guarded", "tool-gateway-guarded")
        .await;
    assert!(config.contains("- pre_mcp_call"), "{config}");

    // The patched sample: LiteLLM 1.106.2 refuses `auth_type: oauth2` without
    // `oauth2_flow` at startup, so the gateway says so; the route itself is served.
    running.apply_sample("toolgateway-with-patch.yaml");
    let gateway = eventually_within(WAIT, "the patched gateway's ResolvedRefs", || async {
        let gateway = running
            .tool_gateway("tool-gateway-patched", "tool-gateway")
            .await?;
        gateway_condition(&gateway, "ResolvedRefs")
            .is_some_and(|(status, _, _)| status == "False")
            .then_some(gateway)
    })
    .await;
    let (_, _, message) = gateway_condition(&gateway, "ResolvedRefs").unwrap();
    assert!(message.contains("oauth2_flow"), "{message}");
    assert!(
        !message.contains("sk-sample-tool-1234"),
        "a patch value in status: {message}"
    );
    eventually_within(WAIT, "patched route url", || async {
        let route = running.route("tool-gateway-patched-routes", "echo").await?;
        route_url(&route).map(str::to_owned)
    })
    .await;
    running.stop().await;
}

/// The default AiGatewayClass, as the examples install it.
const AI_GATEWAY_CLASS: &str = include_str!("../../examples/manifests/litellm-class-default.yaml");

const CLASSES: &str = "apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: ToolGatewayClass
metadata:
  name: litellm
  annotations:
    toolgatewayclass.kubernetes.io/is-default-class: \"true\"
spec:
  controller: litellm.agentic-layer.ai/tool-gateway-litellm-controller
---
apiVersion: v1
kind: Namespace
metadata:
  name: team
";

fn tool_gateway(name: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: ToolGateway\nmetadata:\n  name: {name}\n  namespace: team\nspec:\n  toolGatewayClassName: litellm\n{extra_spec}"
    )
}

/// A route in `namespace` to an external MCP server, attached to `team/tools`.
fn external_route(namespace: &str, name: &str, filter: &str) -> String {
    format!(
        "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: ToolRoute\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  toolGatewayRef:\n    name: tools\n    namespace: team\n  upstream:\n    external:\n      url: http://mcp.example.com/mcp\n{filter}"
    )
}

#[tokio::test]
async fn an_ai_gateway_and_a_tool_gateway_of_one_name_do_not_fight_over_children() {
    let running = Running::start(Duration::ZERO).await;
    running.apply(CLASSES);
    running.apply(AI_GATEWAY_CLASS);
    running.apply(
        "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: AiGateway\nmetadata:\n  name: shared\n  namespace: team\nspec:\n  aiModels:\n  - name: gpt-4o\n    provider: openai\n",
    );
    let ai_gateways: Api<AiGateway> = Api::namespaced(running.server.client(), "team");
    eventually_within(WAIT, "the AiGateway Ready", || async {
        let gateway = ai_gateways.get("shared").await.ok()?;
        let conditions = gateway.status.map(|s| s.conditions);
        is_true(condition_of(conditions.as_ref(), "Ready")).then_some(())
    })
    .await;
    let config_before = running.config("team", "shared").await;
    assert!(config_before.contains("model_list"), "{config_before}");

    running.apply(&tool_gateway("shared", ""));
    let gateway = eventually_within(WAIT, "the ToolGateway reports the conflict", || async {
        let gateway = running.tool_gateway("team", "shared").await?;
        gateway_condition(&gateway, "Programmed")
            .is_some_and(|(status, _, _)| status == "False")
            .then_some(gateway)
    })
    .await;
    let (_, reason, message) = gateway_condition(&gateway, "Programmed").unwrap();
    assert_eq!(reason, "NameConflict", "{message}");
    // The AiGateway keeps its children and stays Ready while the conflict lasts.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(running.config("team", "shared").await, config_before);
    let gateway = ai_gateways.get("shared").await.unwrap();
    let conditions = gateway.status.map(|s| s.conditions);
    assert!(is_true(condition_of(conditions.as_ref(), "Ready")));
    running.stop().await;
}

#[tokio::test]
async fn rotating_provider_keys_leaves_tool_gateway_pods_alone_and_guards_rerender_them() {
    let running = Running::start(Duration::ZERO).await;
    running.apply(CLASSES);
    running.apply(AI_GATEWAY_CLASS);
    let secret = |key: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: api-key-secrets\n  namespace: team\nstringData:\n  OPENAI_API_KEY: {key}\n"
        )
    };
    running.apply(&secret("first"));
    running.apply(
        "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: AiGateway\nmetadata:\n  name: models\n  namespace: team\nspec:\n  aiModels:\n  - name: gpt-4o\n    provider: openai\n",
    );
    running.apply(&tool_gateway(
        "tools",
        "  guardrails:\n  - name: pii\n    namespace: guards\n",
    ));
    running.apply(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: guards\n---\napiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: GuardrailProvider\nmetadata:\n  name: presidio\n  namespace: guards\nspec:\n  type: presidio-api\n  presidio:\n    baseUrl: http://presidio.guards:80\n---\napiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: Guard\nmetadata:\n  name: pii\n  namespace: guards\nspec:\n  mode: [pre_call]\n  providerRef:\n    name: presidio\n",
    );
    eventually_within(WAIT, "the guard rendered as an MCP hook", || async {
        running
            .config("team", "tools")
            .await
            .contains("- pre_mcp_call")
            .then_some(())
    })
    .await;

    let deployments: Api<Deployment> = Api::namespaced(running.server.client(), "team");
    let template = |name: &'static str| {
        let deployments = deployments.clone();
        async move {
            let deployment = deployments.get(name).await.ok()?;
            Some(
                deployment
                    .spec?
                    .template
                    .metadata?
                    .annotations
                    .unwrap_or_default(),
            )
        }
    };
    let models_before = eventually_within(WAIT, "models deployed", || template("models")).await;
    let tools_before = eventually_within(WAIT, "tools deployed", || template("tools")).await;

    // Rotation: the AiGateway's pods roll (its secret hash changes), ToolGateway's do not.
    running.apply(&secret("second"));
    eventually_within(WAIT, "the AiGateway's pods roll", || async {
        (template("models").await? != models_before).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(template("tools").await, Some(tools_before));

    // The Guard in another namespace changes mode: the ToolGateway re-renders.
    running.apply(
        "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: Guard\nmetadata:\n  name: pii\n  namespace: guards\nspec:\n  mode: [post_call]\n  providerRef:\n    name: presidio\n",
    );
    eventually_within(WAIT, "the guard's new mode rendered", || async {
        running
            .config("team", "tools")
            .await
            .contains("- post_mcp_call")
            .then_some(())
    })
    .await;
    running.stop().await;
}

#[tokio::test]
async fn routes_the_proxy_would_mishandle_are_refused_on_the_route_and_kept_out_of_the_config() {
    let running = Running::start(Duration::ZERO).await;
    running.apply(CLASSES);
    running.apply(AI_GATEWAY_CLASS);
    running.apply(&tool_gateway("tools", ""));
    // A glob that LiteLLM would not honour: `deny: [delete_*]` would deny nothing.
    running.apply(&external_route(
        "team",
        "globbed",
        "  toolFilter:\n    deny:\n    - delete_*\n",
    ));
    // A ToolServer without a port.
    running.apply(
        "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: ToolServer\nmetadata:\n  name: portless\n  namespace: team\nspec:\n  protocol: mcp\n  transportType: http\n  image: example/mcp:1\n---\napiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: ToolRoute\nmetadata:\n  name: portless\n  namespace: team\nspec:\n  toolGatewayRef:\n    name: tools\n  upstream:\n    toolServerRef:\n      name: portless\n",
    );
    // Routes whose keys collide (`x--y/z` and `x/y--z` are both `x__y__z`): the older
    // keeps the key and is told, the newer is refused, whatever the list order.
    running.apply("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x--y\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n");
    running.apply(&external_route("x--y", "z", ""));
    eventually_within(WAIT, "the older route served", || async {
        let route = running.route("x--y", "z").await?;
        route_url(&route).map(str::to_owned)
    })
    .await;
    // Creation timestamps have one-second resolution.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    running.apply(&external_route("x", "y--z", ""));
    let newer = eventually_within(WAIT, "the newer route refused", || async {
        let route = running.route("x", "y--z").await?;
        route_condition(&route, "Accepted")
            .is_some_and(|(status, _, _)| status == "False")
            .then_some(route)
    })
    .await;
    let (_, reason, message) = route_condition(&newer, "Accepted").unwrap();
    assert_eq!(reason, "DuplicateServerName", "{message}");
    assert!(message.contains("x--y/z"), "{message}");
    let older = eventually_within(WAIT, "the older route told", || async {
        let route = running.route("x--y", "z").await?;
        route_condition(&route, "Accepted")
            .is_some_and(|(_, _, message)| message.contains("x/y--z"))
            .then_some(route)
    })
    .await;
    assert_eq!(
        route_url(&older),
        Some("http://tools.team.svc.cluster.local/mcp/x__y__z")
    );

    for (name, reason) in [
        ("globbed", "UnsupportedToolFilter"),
        ("portless", "UpstreamUnresolved"),
    ] {
        let route = eventually_within(WAIT, reason, || async {
            let route = running.route("team", name).await?;
            route_condition(&route, "Accepted")
                .is_some_and(|(status, _, _)| status == "False")
                .then_some(route)
        })
        .await;
        let (_, got, message) = route_condition(&route, "Accepted").unwrap();
        assert_eq!(got, reason, "{name}: {message}");
        assert_eq!(route_url(&route), None, "{name}");
    }
    let config = running.config("team", "tools").await;
    assert!(!config.contains("team__globbed"), "{config}");
    assert!(!config.contains("team__portless"), "{config}");
    assert_eq!(config.matches("x__y__z:").count(), 1, "{config}");
    running.stop().await;
}
