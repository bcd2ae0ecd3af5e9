//! ToolGateways served by the operator `litellm-impl run` builds (both kinds in one
//! process), against the in-memory API server: the Go operator's samples applied
//! unchanged, route status published only once the gateway is Ready, and each place
//! where the Go operator is wrong and we must not be.

mod support;

use std::time::Duration;

use aigateway_api::AiGateway;
use aigateway_runtime::testing::eventually_within;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use support::{
    DEFAULT_TOOL_CLASS, Running, WAIT, condition_of, gateway_condition, is_true, route_condition,
    route_url,
};

#[tokio::test]
async fn the_go_operators_samples_become_ready_with_route_urls_only_once_the_gateway_serves() {
    // Deployments roll out 3 s after each change: long enough to see a route before.
    let running = Running::start(Duration::from_secs(3)).await;
    running.apply_sample("toolgatewayclass.yaml");
    running.apply_sample("toolgateway.yaml");

    // The sample's route lives in another namespace than its gateway, which has not
    // consented: refused, without a URL.
    let route = eventually_within(WAIT, "route refused", || async {
        let route = running.route("tool-gateway-routes", "echo").await?;
        route_condition(&route, "Accepted")
            .is_some_and(|(status, _, _)| status == "False")
            .then_some(route)
    })
    .await;
    let (_, reason, message) = route_condition(&route, "Accepted").unwrap();
    assert_eq!(reason, "NotAllowedByGateway", "{message}");
    assert_eq!(route_url(&route), None);
    assert!(
        !running
            .config("tool-gateway", "tool-gateway")
            .await
            .contains("tool_gateway_routes__echo"),
        "a refused route reached the config"
    );
    // The migration guide's one line: the class admits routes from every namespace.
    running.apply(&GO_OPERATOR_CLASS.replace(
        "metadata:\n  name: litellm\n",
        "metadata:\n  name: litellm\n  annotations:\n    aigateway.agentic-layer.ai/allowed-routes: All\n",
    ));

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
    for (alias, source, reason) in [
        (
            "ToolGatewayConfigured",
            "Programmed",
            "ConfigurationApplied",
        ),
        ("ToolGatewayReady", "Ready", "ToolGatewayReady"),
    ] {
        let copy = gateway_condition(&gateway, alias).unwrap();
        let original = gateway_condition(&gateway, source).unwrap();
        assert_eq!((&copy.0, &copy.2), (&original.0, &original.2), "{alias}");
        assert_eq!(copy.1, reason, "the Go operator's reason on {alias}");
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

    // The patched sample: the pinned LiteLLM refuses `auth_type: oauth2` without
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

/// The Go operator's ToolGatewayClass sample.
const GO_OPERATOR_CLASS: &str =
    include_str!("../../../aigateway-api/tests/fixtures/samples/toolgatewayclass.yaml");

/// agent-runtime-operator's ToolRoute sample (a ToolServer, a route with glob tool
/// filters and an Agent), applied unchanged next to a ToolGateway of the name it names:
/// the route is served with its filter, enforced by the guardrail the ConfigMap ships.
#[tokio::test]
async fn agent_runtime_operators_tool_route_sample_is_served_with_its_glob_filter() {
    let running = Running::start(Duration::ZERO).await;
    // The sample declares an Agent: install its CRD (agent-runtime-operator's).
    let agents = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../aigateway-api/tests/fixtures/upstream-crds/agents.runtime.agentic-layer.ai.json"
    ))
    .unwrap();
    running.server.install_crd(agents.as_str()).await.unwrap();
    running.apply_sample("toolgatewayclass.yaml");
    running.apply_sample("agent-runtime-toolroute.yaml");
    running.apply(
        "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: ToolGateway\nmetadata:\n  name: example-toolgateway\n  namespace: test-tool-servers\nspec:\n  toolGatewayClassName: litellm\n",
    );
    let route = eventually_within(WAIT, "the sample route's URL", || async {
        let route = running
            .route("test-tool-servers", "example-toolroute")
            .await?;
        route_url(&route).is_some().then_some(route)
    })
    .await;
    assert_eq!(
        route_url(&route),
        Some(
            "http://example-toolgateway.test-tool-servers.svc.cluster.local/mcp/test_tool_servers__example_toolroute"
        )
    );
    assert!(is_true(route_condition(&route, "Ready")));
    assert!(is_true(route_condition(&route, "Accepted")));

    let config_map = Api::<ConfigMap>::namespaced(running.server.client(), "test-tool-servers")
        .get("example-toolgateway-config")
        .await
        .unwrap();
    let data = config_map.data.unwrap_or_default();
    assert_eq!(
        data.get(litellm_impl::tool_filter::MODULE_FILE)
            .map(String::as_str),
        Some(litellm_impl::tool_filter::MODULE_SOURCE),
        "the guardrail module ships next to config.yaml"
    );
    let config = &data["config.yaml"];
    for expected in [
        "test_tool_servers__example_toolroute:",
        "url: http://example-http-toolserver.test-tool-servers.svc.cluster.local:8080/mcp",
        "guardrail: aigateway_tool_filter.ToolFilterGuardrail",
        "route: test-tool-servers/example-toolroute",
    ] {
        assert!(config.contains(expected), "{expected}\n{config}");
    }
    // Patterns are not handed to LiteLLM's exact-name lists.
    assert!(!config.contains("allowed_tools"), "{config}");
    assert!(!config.contains("disallowed_tools"), "{config}");
    running.stop().await;
}

/// The default AiGatewayClass, as the examples install it.
const AI_GATEWAY_CLASS: &str =
    include_str!("../../../examples/manifests/litellm-class-default.yaml");

const TEAM: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n";

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
    running.apply(DEFAULT_TOOL_CLASS);
    running.apply(TEAM);
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
    running.apply(DEFAULT_TOOL_CLASS);
    running.apply(TEAM);
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
    running.apply(DEFAULT_TOOL_CLASS);
    running.apply(TEAM);
    running.apply(AI_GATEWAY_CLASS);
    running.apply(&tool_gateway("tools", ""));
    // A regular expression: not the API's pattern syntax, and taken literally it would
    // deny nothing.
    running.apply(&external_route(
        "team",
        "regex",
        "  toolFilter:\n    deny:\n    - ^delete_.*$\n",
    ));
    // A ToolServer without a port.
    running.apply(
        "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: ToolServer\nmetadata:\n  name: portless\n  namespace: team\nspec:\n  protocol: mcp\n  transportType: http\n  image: example/mcp:1\n---\napiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: ToolRoute\nmetadata:\n  name: portless\n  namespace: team\nspec:\n  toolGatewayRef:\n    name: tools\n  upstream:\n    toolServerRef:\n      name: portless\n",
    );
    for (name, reason) in [
        ("regex", "InvalidToolFilter"),
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
    assert!(!config.contains("team__regex"), "{config}");
    assert!(!config.contains("team__portless"), "{config}");
    running.stop().await;
}

/// A route of another namespace with a LiteLLMToolRoutePolicy: its Secret's value is
/// copied into the gateway's own Secret (the pods cannot read the route's namespace),
/// the pods read it from there, the ConfigMap only names the env var, and rotating the
/// route's Secret updates the copy and rolls the pods.
#[tokio::test]
async fn a_routes_upstream_credential_is_copied_into_the_gateways_secret_and_follows_rotation() {
    use k8s_openapi::api::core::v1::Secret;
    let running = Running::start(Duration::ZERO).await;
    for crd in litellm_impl::policy::crds() {
        running.server.install_crd(crd).await.unwrap();
    }
    running.apply(DEFAULT_TOOL_CLASS);
    running.apply(TEAM);
    let secret = |value: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: upstream\n  namespace: tenant\nstringData:\n  token: {value}\n"
        )
    };
    running.apply("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: tenant\n");
    running.apply(&secret("Bearer first-s3cret"));
    running.apply(
        "apiVersion: litellm.aigateway.agentic-layer.ai/v1alpha1\nkind: LiteLLMToolRoutePolicy\nmetadata:\n  name: auth\n  namespace: tenant\nspec:\n  targetRefs:\n  - {group: runtime.agentic-layer.ai, kind: ToolRoute, name: web}\n  timeoutSeconds: 90\n  upstreamAuth:\n    header: {secretName: upstream, key: token}\n",
    );
    running.apply(
        "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: ToolGateway\nmetadata:\n  name: tools\n  namespace: team\n  annotations:\n    aigateway.agentic-layer.ai/allowed-routes: All\nspec:\n  toolGatewayClassName: litellm\n",
    );
    running.apply(&external_route("tenant", "web", ""));

    let secrets: Api<Secret> = Api::namespaced(running.server.client(), "team");
    let copy = || async {
        let secret = secrets.get("tools-route-credentials").await.ok()?;
        let (key, value) = secret.data?.into_iter().next()?;
        Some((key, String::from_utf8(value.0).unwrap()))
    };
    let (var, value) = eventually_within(WAIT, "the gateway's Secret of copies", copy).await;
    assert_eq!(value, "Bearer first-s3cret");
    let config = running.config("team", "tools").await;
    assert!(
        config.contains(&format!("Authorization: os.environ/{var}")),
        "{config}"
    );
    assert!(config.contains("timeout: 90.0"), "{config}");
    assert!(!config.contains("s3cret"), "{config}");

    let deployments: Api<Deployment> = Api::namespaced(running.server.client(), "team");
    let template = || async {
        deployments
            .get("tools")
            .await
            .ok()?
            .spec
            .map(|s| s.template)
    };
    let before = eventually_within(WAIT, "the Deployment", template).await;
    let env = before.spec.as_ref().unwrap().containers[0]
        .env
        .clone()
        .unwrap_or_default();
    let read = env.iter().find(|e| e.name == var).expect("the env var");
    let selector = read
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(
        (selector.name.as_str(), selector.key.as_str()),
        ("tools-route-credentials", var.as_str())
    );
    let route = eventually_within(WAIT, "the route served", || async {
        let route = running.route("tenant", "web").await?;
        is_true(route_condition(&route, "Accepted")).then_some(route)
    })
    .await;
    assert!(!format!("{:?}", route.status).contains("s3cret"));

    // Rotation in the route's namespace: the copy follows, and the pods roll.
    running.apply(&secret("Bearer second-s3cret"));
    eventually_within(WAIT, "the copy rotated", || async {
        (copy().await?.1 == "Bearer second-s3cret").then_some(())
    })
    .await;
    let hash = |t: &k8s_openapi::api::core::v1::PodTemplateSpec| {
        t.metadata.as_ref().unwrap().annotations.as_ref().unwrap()
            [litellm_impl::names::SECRET_HASH_ANNOTATION]
            .clone()
    };
    eventually_within(WAIT, "the pods roll", || async {
        (hash(&template().await?) != hash(&before)).then_some(())
    })
    .await;
    assert!(!running.config("team", "tools").await.contains("s3cret"));
    let gateway = running.tool_gateway("team", "tools").await.unwrap();
    assert!(!format!("{:?}", gateway.status).contains("s3cret"));

    // The policy's status has an entry for its route, and a change of the policy alone
    // reaches the gateway the route is attached to.
    let policies: Api<litellm_impl::policy::LiteLlmToolRoutePolicy> =
        Api::namespaced(running.server.client(), "tenant");
    let accepted = || async {
        let policy = policies.get("auth").await.ok()?;
        let entry = (policy.status?.ancestors.into_iter())
            .find(|e| e.ancestor_ref.kind.as_deref() == Some("ToolRoute"))?;
        assert_eq!(entry.ancestor_ref.name, "web");
        let accepted = entry.conditions.iter().find(|c| c.type_ == "Accepted")?;
        Some((accepted.status.clone(), accepted.observed_generation))
    };
    eventually_within(WAIT, "the policy accepted on its route", || async {
        (accepted().await? == ("True".to_owned(), Some(1))).then_some(())
    })
    .await;
    policies
        .patch(
            "auth",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"spec": {"timeoutSeconds": 30}})),
        )
        .await
        .unwrap();
    eventually_within(WAIT, "the new timeout in the route's entry", || async {
        running
            .config("team", "tools")
            .await
            .contains("timeout: 30.0")
            .then_some(())
    })
    .await;
    eventually_within(WAIT, "generation 2 observed", || async {
        (accepted().await? == ("True".to_owned(), Some(2))).then_some(())
    })
    .await;
    running.stop().await;
}
