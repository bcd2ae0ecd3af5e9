//! Unit tests of [`render_tool_gateway`]: the contract of the Go operator and every
//! "must not" of the ToolGateway issue that lives in rendering.

use aigateway_api::{ToolGateway, ToolRoute};
use k8s_openapi::api::core::v1::Container;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Value, json};

use super::*;
use crate::{InMemoryObjects, InputObject, ProblemReason, parse_documents};

const API: &str = "apiVersion: runtime.agentic-layer.ai/v1alpha1";

struct Input {
    lookup: InMemoryObjects,
    gateways: Vec<ToolGateway>,
    routes: Vec<ToolRoute>,
}

fn input(yaml: &str) -> Input {
    let objects = parse_documents(yaml, "test").unwrap();
    let mut lookup = InMemoryObjects::new();
    lookup.extend(&objects);
    let mut input = Input {
        lookup,
        gateways: Vec::new(),
        routes: Vec::new(),
    };
    for object in objects {
        match object {
            InputObject::ToolGateway(g) => input.gateways.push(g),
            InputObject::ToolRoute(r) => input.routes.push(r),
            _ => {}
        }
    }
    input
}

fn render_all(input: &Input) -> RenderedToolGateway {
    render_tool_gateway(
        &input.gateways[0],
        &input.routes,
        &input.lookup,
        &RenderSettings::default(),
    )
    .unwrap()
}

fn render_yaml(yaml: &str) -> RenderedToolGateway {
    render_all(&input(yaml))
}

/// An annotation of the rendered pod template.
fn pod_annotation(r: &RenderedToolGateway, key: &str) -> String {
    let template = &r.rendered.deployment.spec.as_ref().unwrap().template;
    template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap()[key]
        .clone()
}

const GATEWAY: &str = "---\napiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: ToolGateway\nmetadata: {name: tools, namespace: gw-ns}\nspec: {}\n";

fn route(namespace: &str, name: &str, rest: &str) -> String {
    format!(
        "---\n{API}\nkind: ToolRoute\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  toolGatewayRef: {{name: tools, namespace: gw-ns}}\n{rest}"
    )
}

fn external(url: &str) -> String {
    format!("  upstream: {{external: {{url: \"{url}\"}}}}\n")
}

fn config(r: &RenderedToolGateway) -> Value {
    serde_saphyr::from_str(&r.rendered.config_yaml).unwrap()
}

fn container(r: &RenderedToolGateway) -> &Container {
    &r.rendered
        .deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
}

fn outcome<'a>(r: &'a RenderedToolGateway, namespace: &str, name: &str) -> &'a RouteState {
    &r.routes
        .iter()
        .find(|o| o.route.namespace == namespace && o.route.name == name)
        .unwrap_or_else(|| panic!("no outcome for {namespace}/{name}: {:?}", r.routes))
        .state
}

fn served<'a>(r: &'a RenderedToolGateway, namespace: &str, name: &str) -> &'a ServedRoute {
    match outcome(r, namespace, name) {
        RouteState::Served(served) => served,
        other => panic!("{namespace}/{name} not served: {other:?}"),
    }
}

fn refused<'a>(r: &'a RenderedToolGateway, namespace: &str, name: &str) -> &'a RouteProblem {
    match outcome(r, namespace, name) {
        RouteState::NotServed(problem) => problem,
        other => panic!("{namespace}/{name} served: {other:?}"),
    }
}

#[test]
fn attached_routes_become_mcp_servers_keyed_and_addressed_as_the_go_operator_does() {
    let yaml = format!(
        "{GATEWAY}{}{}{}{}{}\
---\n{API}\nkind: ToolServer\nmetadata: {{name: search, namespace: servers}}\nspec: {{image: x, protocol: mcp, transportType: http, port: 8080}}\n\
---\n{API}\nkind: ToolServer\nmetadata: {{name: events, namespace: team-b}}\nspec: {{image: x, protocol: mcp, transportType: sse, port: 9000, path: /events/sse}}\n\
---\n{API}\nkind: ToolServer\nmetadata: {{name: published, namespace: team-b}}\nspec: {{image: x, protocol: mcp, transportType: http}}\nstatus: {{url: \"http://published.team-b.svc.cluster.local:7000/mcp\"}}\n",
        route(
            "team-a",
            "web-search",
            "  upstream: {toolServerRef: {name: search, namespace: servers}}\n  toolFilter: {allow: [search, fetch], deny: [delete_all]}\n"
        ),
        route(
            "team-b",
            "events",
            "  upstream: {toolServerRef: {name: events}}\n"
        ),
        route(
            "team-b",
            "published",
            "  upstream: {toolServerRef: {name: published}}\n"
        ),
        route(
            "team-c",
            "remote-sse",
            &external("https://tools.example.com/v1/sse?x=1")
        ),
        // Attached to another gateway: not this gateway's business.
        "---\napiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: ToolRoute\nmetadata: {name: other, namespace: gw-ns}\nspec:\n  toolGatewayRef: {name: elsewhere}\n  upstream: {external: {url: \"http://x/mcp\"}}\n",
    );
    let r = render_yaml(&yaml);
    assert_eq!(
        config(&r)["mcp_servers"],
        json!({
            "team_a__web_search": {
                "url": "http://search.servers.svc.cluster.local:8080/mcp",
                "transport": "http",
                "allow_all_keys": true,
                "allowed_tools": ["search", "fetch"],
                "disallowed_tools": ["delete_all"],
            },
            "team_b__events": {
                "url": "http://events.team-b.svc.cluster.local:9000/events/sse",
                "transport": "sse",
                "allow_all_keys": true,
            },
            "team_b__published": {
                "url": "http://published.team-b.svc.cluster.local:7000/mcp",
                "transport": "http",
                "allow_all_keys": true,
            },
            "team_c__remote_sse": {
                "url": "https://tools.example.com/v1/sse?x=1",
                "transport": "sse",
                "allow_all_keys": true,
            },
        })
    );
    assert_eq!(r.routes.len(), 4, "{:?}", r.routes);
    let web = served(&r, "team-a", "web-search");
    assert_eq!(web.key, "team_a__web_search");
    assert_eq!(
        web.url,
        "http://tools.gw-ns.svc.cluster.local/mcp/team_a__web_search"
    );
    assert_eq!(r.url, "http://tools.gw-ns.svc.cluster.local");
    let config = config(&r);
    assert!(config.get("model_list").is_none(), "{config:#}");
    assert_eq!(
        config["litellm_settings"],
        json!({"request_timeout": 600, "callbacks": ["otel", "prometheus"]})
    );
}

#[test]
fn a_route_namespace_defaults_to_its_own_and_no_route_means_no_mcp_servers() {
    let yaml = format!(
        "{GATEWAY}---\n{API}\nkind: ToolRoute\nmetadata: {{name: local, namespace: gw-ns}}\nspec:\n  toolGatewayRef: {{name: tools}}\n{}",
        external("http://echo.default/mcp")
    );
    let r = render_yaml(&yaml);
    assert_eq!(served(&r, "gw-ns", "local").key, "gw_ns__local");
    let empty = render_yaml(GATEWAY);
    assert!(empty.routes.is_empty());
    assert!(config(&empty).get("mcp_servers").is_none());
}

fn timestamped_route(namespace: &str, name: &str, created: &str) -> String {
    format!(
        "---\n{API}\nkind: ToolRoute\nmetadata: {{name: {name}, namespace: {namespace}, creationTimestamp: \"{created}\"}}\nspec:\n  toolGatewayRef: {{name: tools, namespace: gw-ns}}\n{}",
        external(&format!("http://{name}.{namespace}/mcp"))
    )
}

#[test]
fn colliding_keys_go_to_the_oldest_route_whatever_the_order_and_both_routes_are_told() {
    let older = timestamped_route("a", "b--c", "2026-01-01T00:00:00Z");
    let newer = timestamped_route("a--b", "c", "2026-02-01T00:00:00Z");
    for yaml in [
        format!("{GATEWAY}{older}{newer}"),
        format!("{GATEWAY}{newer}{older}"),
    ] {
        let mut parsed = input(&yaml);
        let forward = render_all(&parsed);
        parsed.routes.reverse();
        let backward = render_all(&parsed);
        assert_eq!(forward, backward, "the list order must not matter");

        let winner = served(&forward, "a", "b--c");
        assert_eq!(winner.key, "a__b__c");
        assert!(
            winner.warnings[0].contains("ToolRoute a--b/c"),
            "{:?}",
            winner.warnings
        );
        let loser = refused(&forward, "a--b", "c");
        assert_eq!(loser.reason, RouteProblemReason::DuplicateServerName);
        assert!(
            loser.message.contains("ToolRoute a/b--c") && loser.message.contains("a__b__c"),
            "{}",
            loser.message
        );
        assert_eq!(
            config(&forward)["mcp_servers"]["a__b__c"]["url"],
            "http://b--c.a/mcp",
            "the older route's upstream is served"
        );
    }
    // Without creation times (offline input) the smaller namespace/name keeps the key.
    let yaml = format!(
        "{GATEWAY}{}{}",
        route("a--b", "c", &external("http://one/mcp")),
        route("a", "b--c", &external("http://two/mcp"))
    );
    let r = render_yaml(&yaml);
    assert_eq!(served(&r, "a", "b--c").key, "a__b__c");
    assert_eq!(
        refused(&r, "a--b", "c").reason,
        RouteProblemReason::DuplicateServerName
    );
}

#[test]
fn a_colliding_route_keeps_its_key_even_while_its_upstream_is_broken() {
    let yaml = format!(
        "{GATEWAY}{}{}",
        route(
            "a",
            "b--c",
            "  upstream: {toolServerRef: {name: missing}}\n"
        ),
        route("a--b", "c", &external("http://newer/mcp"))
    );
    let r = render_yaml(&yaml);
    assert_eq!(
        refused(&r, "a", "b--c").reason,
        RouteProblemReason::UpstreamUnresolved
    );
    assert_eq!(
        refused(&r, "a--b", "c").reason,
        RouteProblemReason::DuplicateServerName,
        "fixing the older route later must not move the URL the newer one's agents use"
    );
}

#[test]
fn tool_filter_syntax_the_api_does_not_define_fails_closed_with_the_rule_on_the_route() {
    for (filter, says) in [
        ("{deny: [\"delete_[a-z]+\"]}", "uses '['"),
        ("{allow: [\"^search.*$\"]}", "uses '^'"),
        ("{deny: [\"delete everything\"]}", "holds ' '"),
        ("{deny: [\"\"]}", "is empty"),
    ] {
        let yaml = format!(
            "{GATEWAY}{}",
            route(
                "team",
                "r",
                &format!("{}  toolFilter: {filter}\n", external("http://x/mcp"))
            )
        );
        let r = render_yaml(&yaml);
        let problem = refused(&r, "team", "r");
        assert_eq!(
            problem.reason,
            RouteProblemReason::InvalidToolFilter,
            "{filter}"
        );
        assert!(
            problem.message.contains(says),
            "{filter}: {}",
            problem.message
        );
        assert!(
            problem.message.contains(crate::tool_filter::RULE),
            "{}",
            problem.message
        );
        assert!(!problem.message.contains('\n'), "{}", problem.message);
        assert!(
            config(&r).get("mcp_servers").is_none(),
            "{filter}: a route whose filter cannot be read must not be served at all"
        );
        assert!(config(&r).get("guardrails").is_none(), "{filter}");
    }
}

#[test]
fn glob_filters_are_served_through_the_guardrail_shipped_in_the_config_map() {
    let yaml = format!(
        "{GATEWAY}{}{}{}",
        route(
            "team",
            "sample",
            &format!(
                "{}  toolFilter: {{allow: [\"get_*\", \"list_*\"], deny: [\"*delete*\"]}}\n",
                external("http://x/mcp")
            )
        ),
        route(
            "team",
            "exact",
            &format!(
                "{}  toolFilter: {{allow: [echo], deny: [drop]}}\n",
                external("http://y/mcp")
            )
        ),
        route("team", "open", &external("http://z/mcp")),
    );
    let r = render_yaml(&yaml);
    let rendered = config(&r);
    assert_eq!(
        rendered["guardrails"][0],
        json!({
            "guardrail_name": "aigateway_tool_filter",
            "litellm_params": {
                "guardrail": "aigateway_tool_filter.ToolFilterGuardrail",
                "mode": "pre_mcp_call",
                "default_on": true,
                "routes": [
                    {"route": "team/exact", "servers": ["team__exact"], "allow": ["echo"], "deny": ["drop"]},
                    {"route": "team/sample", "servers": ["team__sample"], "allow": ["get_*", "list_*"], "deny": ["*delete*"]},
                ],
                // Every server's names, the unfiltered route's too: a name outside them
                // is refused.
                "servers": ["team__exact", "team__open", "team__sample"],
            },
        })
    );
    let servers = &rendered["mcp_servers"];
    // Patterns are never handed to LiteLLM's exact-name lists; exact names are.
    assert!(
        servers["team__sample"].get("allowed_tools").is_none(),
        "{servers}"
    );
    assert!(
        servers["team__sample"].get("disallowed_tools").is_none(),
        "{servers}"
    );
    assert_eq!(servers["team__exact"]["allowed_tools"], json!(["echo"]));
    assert_eq!(servers["team__exact"]["disallowed_tools"], json!(["drop"]));
    assert!(servers["team__open"].is_object());
    let data = r.rendered.config_map.data.as_ref().unwrap();
    assert_eq!(
        data.get(crate::tool_filter::MODULE_FILE)
            .map(String::as_str),
        Some(crate::tool_filter::MODULE_SOURCE)
    );

    // Without filters, neither the guardrail nor the module.
    let plain = render_yaml(&format!(
        "{GATEWAY}{}",
        route("team", "open", &external("http://z/mcp"))
    ));
    assert!(config(&plain).get("guardrails").is_none());
    let data = plain.rendered.config_map.data.as_ref().unwrap();
    assert_eq!(data.keys().collect::<Vec<_>>(), ["config.yaml"]);
    // The module is part of what rolls the pods.
    let hash = |r: &RenderedToolGateway| pod_annotation(r, names::CONFIG_HASH_ANNOTATION);
    assert_ne!(hash(&r), hash(&plain));
}

#[test]
fn hostile_strings_are_refused_as_for_ai_gateways() {
    let yaml = format!(
        "{GATEWAY}{}{}{}{}\
---\n{API}\nkind: ToolServer\nmetadata: {{name: sneaky, namespace: team}}\nspec: {{image: x, protocol: mcp, transportType: http, port: 80}}\nstatus: {{url: \"os.environ/LITELLM_MASTER_KEY\"}}\n",
        route(
            "team",
            "environ-filter",
            &format!(
                "{}  toolFilter: {{deny: [\"os.environ/LITELLM_MASTER_KEY\"]}}\n",
                external("http://x/mcp")
            )
        ),
        route(
            "team",
            "oidc-filter",
            &format!(
                "{}  toolFilter: {{allow: [\"oidc/file/etc/passwd\"]}}\n",
                external("http://x/mcp")
            )
        ),
        route("team", "environ-url", &external("os.environ/SECRET")),
        route(
            "team",
            "published",
            "  upstream: {toolServerRef: {name: sneaky}}\n"
        ),
    );
    let r = render_yaml(&yaml);
    for name in ["environ-filter", "oidc-filter"] {
        assert_eq!(
            refused(&r, "team", name).reason,
            RouteProblemReason::InvalidToolFilter
        );
    }
    for name in ["environ-url", "published"] {
        assert_eq!(
            refused(&r, "team", name).reason,
            RouteProblemReason::UpstreamUnresolved
        );
    }
    assert!(
        !r.rendered
            .config_yaml
            .contains("os.environ/LITELLM_MASTER_KEY")
            && !r.rendered.config_yaml.contains("oidc/"),
        "{}",
        r.rendered.config_yaml
    );
    // A route name no API server would store cannot form a key.
    let mut parsed = input(&format!(
        "{GATEWAY}{}",
        route("team", "ok", &external("http://x/mcp"))
    ));
    parsed.routes[0].metadata.name = Some("Bad\nName".into());
    let r = render_all(&parsed);
    let problem = refused(&r, "team", "Bad\nName");
    assert_eq!(problem.reason, RouteProblemReason::InvalidRoute);
    assert!(!problem.message.contains('\n'), "{}", problem.message);
}

#[test]
fn a_tool_server_without_a_port_is_reported_and_never_routed_to_port_zero() {
    let yaml = format!(
        "{GATEWAY}{}{}---\n{API}\nkind: ToolServer\nmetadata: {{name: portless, namespace: team}}\nspec: {{image: x, protocol: mcp, transportType: http}}\n",
        route(
            "team",
            "portless",
            "  upstream: {toolServerRef: {name: portless}}\n"
        ),
        route(
            "team",
            "missing",
            "  upstream: {toolServerRef: {name: nowhere, namespace: other}}\n"
        ),
    );
    let r = render_yaml(&yaml);
    let problem = refused(&r, "team", "portless");
    assert_eq!(problem.reason, RouteProblemReason::UpstreamUnresolved);
    assert!(
        problem
            .message
            .contains("ToolServer team/portless has no spec.port"),
        "{}",
        problem.message
    );
    let problem = refused(&r, "team", "missing");
    assert!(
        problem.message.contains("ToolServer other/nowhere")
            && problem.message.contains("not found"),
        "{}",
        problem.message
    );
    assert!(
        !r.rendered.config_yaml.contains(":0"),
        "{}",
        r.rendered.config_yaml
    );
}

#[test]
fn tool_gateway_pods_carry_no_provider_keys_and_roll_only_for_secrets_they_read() {
    let with = |provider_key: &str, token: &str| {
        format!(
            "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: api-key-secrets, namespace: gw-ns}}\nstringData: {{OPENAI_API_KEY: {provider_key}}}\n\
---\napiVersion: v1\nkind: Secret\nmetadata: {{name: mcp-token, namespace: gw-ns}}\nstringData: {{TOKEN: {token}}}\n\
---\n{API}\nkind: ToolGateway\nmetadata: {{name: tools, namespace: gw-ns}}\nspec:\n  env: [{{name: MCP_TOKEN, valueFrom: {{secretKeyRef: {{name: mcp-token, key: TOKEN}}}}}}]\n"
        )
    };
    let hash = |r: &RenderedToolGateway| pod_annotation(r, names::SECRET_HASH_ANNOTATION);
    let first = render_yaml(&with("sk-one", "t-one"));
    let rotated_provider_key = render_yaml(&with("sk-two", "t-one"));
    let rotated_token = render_yaml(&with("sk-one", "t-two"));
    assert_eq!(
        hash(&first),
        hash(&rotated_provider_key),
        "a provider key rotation must not restart ToolGateway pods"
    );
    assert_ne!(
        hash(&first),
        hash(&rotated_token),
        "its own Secret rolls the pods"
    );
    let env = container(&first).env.clone().unwrap_or_default();
    assert!(
        env.iter().all(|e| !e.name.ends_with("_API_KEY")
            && e.value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref())
                .is_none_or(|s| s.name != names::API_KEY_SECRET)),
        "{env:?}"
    );
}

#[test]
fn the_workload_listens_on_4000_behind_service_port_80_with_a_startup_probe() {
    let r = render_yaml(GATEWAY);
    let container = container(&r);
    assert_eq!(
        container.ports.as_ref().unwrap()[0].container_port,
        names::CONTAINER_PORT
    );
    let startup = container.startup_probe.as_ref().expect("a startupProbe");
    assert_eq!(
        startup.http_get.as_ref().unwrap().path.as_deref(),
        Some(names::LIVENESS_PATH)
    );
    assert!(
        startup.period_seconds.unwrap() * startup.failure_threshold.unwrap() >= 300,
        "LiteLLM lists every MCP server's tools before it answers: give it minutes"
    );
    let port = &r
        .rendered
        .service
        .spec
        .as_ref()
        .unwrap()
        .ports
        .as_ref()
        .unwrap()[0];
    assert_eq!(port.port, 80);
    assert_eq!(
        port.target_port,
        Some(IntOrString::String(names::PORT_NAME.into()))
    );
    // Children are named as the Go operator names them (see the module docs).
    assert_eq!(
        r.rendered.deployment.metadata.name.as_deref(),
        Some("tools")
    );
    assert_eq!(r.rendered.service.metadata.name.as_deref(), Some("tools"));
    assert_eq!(
        r.rendered.config_map.metadata.name.as_deref(),
        Some("tools-config")
    );
    // An AiGateway's container gets the same probes.
    let ai = crate::render(
        &serde_saphyr::from_str(&format!("{API}\nkind: AiGateway\nmetadata: {{name: gw, namespace: ns}}\nspec: {{aiModels: [{{name: m, provider: openai}}]}}\n")).unwrap(),
        &InMemoryObjects::new(),
        &RenderSettings::default(),
    )
    .unwrap();
    let ai_container = &ai
        .deployment
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers[0];
    assert_eq!(ai_container.startup_probe, container.startup_probe);
    assert_eq!(ai_container.liveness_probe, container.liveness_probe);
    assert_eq!(ai_container.readiness_probe, container.readiness_probe);
}

#[test]
fn guard_modes_map_to_mcp_modes() {
    let yaml = format!(
        "---\n{API}\nkind: GuardrailProvider\nmetadata: {{name: presidio, namespace: guards}}\nspec: {{type: presidio-api, presidio: {{baseUrl: \"http://presidio:80\"}}}}\n\
---\n{API}\nkind: Guard\nmetadata: {{name: pii, namespace: guards}}\nspec: {{mode: [pre_call, during_call, post_call], providerRef: {{name: presidio}}}}\n\
---\n{API}\nkind: ToolGateway\nmetadata: {{name: tools, namespace: gw-ns}}\nspec:\n  guardrails: [{{name: pii, namespace: guards}}]\n"
    );
    let r = render_yaml(&yaml);
    assert_eq!(
        config(&r)["guardrails"][0]["litellm_params"]["mode"],
        json!(["pre_mcp_call", "during_mcp_call", "post_mcp_call"])
    );
}

#[test]
fn errors_and_problems_name_the_tool_gateway() {
    let mut parsed = input(GATEWAY);
    parsed.gateways[0].metadata.name = Some("Not_A_Name".into());
    let error = render_tool_gateway(
        &parsed.gateways[0],
        &[],
        &parsed.lookup,
        &RenderSettings::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.starts_with("ToolGateway gw-ns/Not_A_Name:"),
        "{error}"
    );
    let r = render_yaml(GATEWAY);
    let open = r
        .rendered
        .problems
        .iter()
        .find(|p| p.reason == ProblemReason::Unauthenticated)
        .expect("no master key is reported");
    assert_eq!(open.object.kind, "ToolGateway");
}

#[test]
fn a_patch_that_removes_a_route_entry_unserves_the_route() {
    let yaml = format!(
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: patch, namespace: gw-ns}}\ndata:\n  patch.yaml: \"mcp_servers:\\n  team__gone: null\\n  team__kept:\\n    timeout: 30\\n\"\n\
---\n{API}\nkind: ToolGateway\nmetadata:\n  name: tools\n  namespace: gw-ns\n  annotations: {{ai-gateway-litellm.agentic-layer.ai/config-patch: patch}}\nspec: {{}}\n{}{}",
        route("team", "gone", &external("http://gone/mcp")),
        route("team", "kept", &external("http://kept/mcp")),
    );
    let r = render_yaml(&yaml);
    assert_eq!(
        refused(&r, "team", "gone").reason,
        RouteProblemReason::RemovedByPatch
    );
    served(&r, "team", "kept");
    assert_eq!(config(&r)["mcp_servers"]["team__kept"]["timeout"], 30);
}

/// The upstream samples (aigateway-api/tests/fixtures, imported from
/// agent-runtime-operator) render with their routes served at the URLs the Go operator
/// publishes.
#[test]
fn upstream_samples_render_with_their_routes_served() {
    for (sample, route_ns, route_name, url) in [
        (
            include_str!("../../../aigateway-api/tests/fixtures/samples/toolgateway.yaml"),
            "tool-gateway-routes",
            "echo",
            "http://tool-gateway.tool-gateway.svc.cluster.local/mcp/tool_gateway_routes__echo",
        ),
        (
            include_str!("../../../aigateway-api/tests/fixtures/samples/toolgateway-guarded.yaml"),
            "tool-gateway-guarded-routes",
            "echo-guarded",
            "http://tool-gateway-guarded.tool-gateway-guarded.svc.cluster.local/mcp/tool_gateway_guarded_routes__echo_guarded",
        ),
        (
            include_str!(
                "../../../aigateway-api/tests/fixtures/samples/toolgateway-with-patch.yaml"
            ),
            "tool-gateway-patched-routes",
            "echo",
            "http://tool-gateway.tool-gateway-patched.svc.cluster.local/mcp/tool_gateway_patched_routes__echo",
        ),
    ] {
        let r = render_yaml(sample);
        assert_eq!(served(&r, route_ns, route_name).url, url);
        let unresolved: Vec<_> = r
            .rendered
            .problems
            .iter()
            .filter(|p| p.reason.is_unresolved_ref())
            .collect();
        if route_ns == "tool-gateway-patched-routes" {
            // The sample's patch sets auth_type oauth2 without oauth2_flow: LiteLLM
            // 1.106.2 and 1.108.7 exit at startup on it (checked by hand against the proxy).
            assert_eq!(unresolved.len(), 1, "{unresolved:?}");
            assert_eq!(
                unresolved[0].object.to_string(),
                "ConfigMap tool-gateway-patched/tool-gateway-patch"
            );
            assert!(
                unresolved[0].message.contains("without oauth2_flow"),
                "{}",
                unresolved[0].message
            );
        } else {
            assert!(unresolved.is_empty(), "{unresolved:?}");
        }
    }
}

#[test]
fn a_tool_prefix_separator_that_occurs_in_keys_unserves_the_routes_instead_of_breaking_litellm() {
    let yaml = format!(
        "---\n{API}\nkind: ToolGateway\nmetadata: {{name: tools, namespace: gw-ns}}\nspec:\n  env: [{{name: MCP_TOOL_PREFIX_SEPARATOR, value: _}}]\n{}",
        route("team", "r", &external("http://x/mcp"))
    );
    let r = render_yaml(&yaml);
    let problem = refused(&r, "team", "r");
    assert_eq!(problem.reason, RouteProblemReason::InvalidRoute);
    assert!(
        problem.message.contains("MCP_TOOL_PREFIX_SEPARATOR"),
        "{}",
        problem.message
    );
    assert!(config(&r).get("mcp_servers").is_none());
    // A separator no key contains is harmless.
    let r = render_yaml(&yaml.replace("value: _", "value: \"~\""));
    served(&r, "team", "r");
}
