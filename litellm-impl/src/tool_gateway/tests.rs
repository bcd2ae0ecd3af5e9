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

/// A Gateway API ReferenceGrant in `namespace` that lets ToolRoutes of `from` name its
/// ToolServers (only `name`, when given).
fn grant(namespace: &str, from: &str, name: Option<&str>) -> String {
    let name = name.map(|n| format!(", name: {n}")).unwrap_or_default();
    format!(
        "---\napiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {{name: routes-from-{from}, namespace: {namespace}}}\nspec:\n  from: [{{group: runtime.agentic-layer.ai, kind: ToolRoute, namespace: {from}}}]\n  to: [{{group: runtime.agentic-layer.ai, kind: ToolServer{name}}}]\n"
    )
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
        "{GATEWAY}{}{}{}{}{}{}\
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
        grant("servers", "team-a", Some("search")),
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

#[test]
fn routes_whose_go_keys_collide_get_keys_of_their_own_and_a_patch_reaches_one_of_them() {
    // The Go operator gives both `a__b__c`: whoever held that key would receive the
    // other route's patched fields (its upstream credentials, say).
    let patch = "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: patch, namespace: gw-ns}\ndata:\n  patch.yaml: \"mcp_servers:\\n  a__b__c__4:\\n    extra_headers: [x-team-secret]\\n\"\n";
    let gateway = "---\napiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: ToolGateway\nmetadata:\n  name: tools\n  namespace: gw-ns\n  annotations: {ai-gateway-litellm.agentic-layer.ai/config-patch: patch}\nspec: {}\n";
    let attacker = route("a", "b--c", &external("http://attacker.example/mcp"));
    let victim = route("a--b", "c", &external("http://victim.internal/mcp"));
    for yaml in [
        format!("{gateway}{patch}{attacker}{victim}"),
        format!("{gateway}{patch}{victim}{attacker}"),
    ] {
        let r = render_yaml(&yaml);
        assert_eq!(served(&r, "a", "b--c").key, "a__b__c__1");
        assert_eq!(served(&r, "a--b", "c").key, "a__b__c__4");
        let servers = &config(&r)["mcp_servers"];
        assert_eq!(servers["a__b__c__4"]["url"], "http://victim.internal/mcp");
        assert_eq!(
            servers["a__b__c__4"]["extra_headers"],
            json!(["x-team-secret"])
        );
        assert_eq!(servers["a__b__c__1"]["url"], "http://attacker.example/mcp");
        assert!(
            servers["a__b__c__1"].get("extra_headers").is_none(),
            "the patch of one route's key reached another route: {servers}"
        );
    }
}

/// A DNS-1123 label (a namespace) or subdomain (a ToolRoute name), `-`-rich so that
/// `--` runs and `.` occur often.
fn dns_name(max: usize, dots: bool) -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let inner = if dots { "[a-z0-9.-]" } else { "[a-z0-9-]" };
    proptest::string::string_regex(&format!("[a-z0-9]({inner}{{0,{max}}}[a-z0-9])?"))
        .unwrap()
        .prop_filter("no empty label", |s| {
            !s.contains("..") && !s.contains(".-") && !s.contains("-.")
        })
}

proptest::proptest! {
    #[test]
    fn no_two_routes_share_a_key(
        a in (dns_name(8, false), dns_name(8, true)),
        b in (dns_name(8, false), dns_name(8, true)),
    ) {
        if a != b {
            proptest::prop_assert_ne!(route_key(&a.0, &a.1), route_key(&b.0, &b.1));
        }
    }

    #[test]
    fn the_go_operators_key_is_kept_unless_a_name_holds_a_double_dash(
        namespace in dns_name(8, false),
        name in dns_name(8, true),
    ) {
        let go_key = format!("{namespace}__{name}").replace('-', "_");
        let key = route_key(&namespace, &name);
        if namespace.contains("--") || name.contains("--") {
            proptest::prop_assert_ne!(key, go_key);
        } else {
            proptest::prop_assert_eq!(key, go_key);
        }
    }
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
        "{GATEWAY}{}{}{}---\n{API}\nkind: ToolServer\nmetadata: {{name: portless, namespace: team}}\nspec: {{image: x, protocol: mcp, transportType: http}}\n",
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
        grant("other", "team", None),
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

#[test]
fn a_tool_server_in_another_namespace_needs_that_namespaces_grant_and_its_refusal_tells_nothing() {
    let server = format!(
        "---\n{API}\nkind: ToolServer\nmetadata: {{name: internal, namespace: victim}}\nspec: {{image: x, protocol: mcp, transportType: http, port: 8443, path: /very-secret-path}}\n"
    );
    let to = |name: &str| {
        route(
            "attacker",
            "r",
            &format!("  upstream: {{toolServerRef: {{name: {name}, namespace: victim}}}}\n"),
        )
    };
    // No grant: refused, and the message is the same whether the server exists or not.
    let existing = refused(
        &render_yaml(&format!("{GATEWAY}{server}{}", to("internal"))),
        "attacker",
        "r",
    )
    .clone();
    let missing = refused(
        &render_yaml(&format!("{GATEWAY}{server}{}", to("nothing"))),
        "attacker",
        "r",
    )
    .clone();
    assert_eq!(existing.reason, RouteProblemReason::RefNotPermitted);
    assert_eq!(missing.reason, RouteProblemReason::RefNotPermitted);
    assert_eq!(
        existing.message.replace("internal", "X"),
        missing.message.replace("nothing", "X"),
        "the refusal depends on the ToolServer"
    );
    for leak in ["8443", "very-secret-path", "not found", "svc.cluster.local"] {
        assert!(
            !existing.message.contains(leak),
            "{leak}: {}",
            existing.message
        );
    }
    assert!(
        existing
            .message
            .contains("ReferenceGrant in namespace victim"),
        "{}",
        existing.message
    );
    // A grant for another server, or from another namespace, permits nothing.
    for other in [
        grant("victim", "attacker", Some("public")),
        grant("victim", "friend", None),
        grant("attacker", "attacker", None),
    ] {
        let r = render_yaml(&format!("{GATEWAY}{server}{other}{}", to("internal")));
        assert_eq!(
            refused(&r, "attacker", "r").reason,
            RouteProblemReason::RefNotPermitted,
            "{other}"
        );
        assert!(config(&r).get("mcp_servers").is_none());
    }
    // The victim's grant, for that server or for all, lets the route use it.
    for consent in [
        grant("victim", "attacker", Some("internal")),
        grant("victim", "attacker", None),
    ] {
        let r = render_yaml(&format!("{GATEWAY}{server}{consent}{}", to("internal")));
        served(&r, "attacker", "r");
        assert_eq!(
            config(&r)["mcp_servers"]["attacker__r"]["url"],
            "http://internal.victim.svc.cluster.local:8443/very-secret-path"
        );
    }
}

/// Tenants' routes cannot crowd out the gateway owner's: when the config would not
/// fit, routes of other namespaces are refused before the owner's, even the owner's
/// newest. Reported in review: 15 early foreign routes filled the ConfigMap and the
/// owner's next route was the one refused.
#[test]
fn the_gateway_owners_routes_are_refused_last() {
    let mut yaml = GATEWAY.to_owned();
    for day in 1..=20 {
        yaml.push_str(&bulky_route(&format!("r{day:02}"), day));
    }
    yaml.push_str(&bulky_route("own", 25).replace(
        "namespace: team, creationTimestamp",
        "namespace: gw-ns, creationTimestamp",
    ));
    let r = render_yaml(&yaml);
    served(&r, "gw-ns", "own");
    let problem = refused(&r, "team", "r20");
    assert_eq!(problem.reason, RouteProblemReason::ConfigTooLarge);
    served(&r, "team", "r01");
}

/// An external URL naming a Service or Pod of another namespace through the cluster's
/// DNS reaches it from the gateway's pods, past that namespace's NetworkPolicies: it
/// needs that namespace's grant, as a ToolServer reference does. Reported in review:
/// `http://db.victim.svc.cluster.local:8000/mcp` was served to every key of a gateway
/// that admits other namespaces.
#[test]
fn an_external_url_into_another_namespace_needs_that_namespaces_grant() {
    let to = |url: &str| route("attacker", "r", &external(url));
    let service_grant = |name: &str| {
        format!(
            "---\napiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {{name: g, namespace: victim}}\nspec:\n  from: [{{group: runtime.agentic-layer.ai, kind: ToolRoute, namespace: attacker}}]\n  to: [{{group: \"\", kind: Service, name: {name}}}]\n"
        )
    };
    for url in [
        "http://db.victim.svc.cluster.local:8000/mcp",
        "http://db.victim.svc:8000/mcp",
        "https://user@DB.Victim.SVC.cluster.local./mcp",
        "http://db-0.db.victim.svc.cluster.local/mcp",
        "http://10-0-0-7.victim.pod.cluster.local/mcp",
        // The gateway's own namespace is another namespace too.
        "http://admin.gw-ns.svc.cluster.local/mcp",
    ] {
        let r = render_yaml(&format!("{GATEWAY}{}", to(url)));
        let problem = refused(&r, "attacker", "r");
        assert_eq!(problem.reason, RouteProblemReason::RefNotPermitted, "{url}");
        assert!(
            problem.message.contains("ReferenceGrant in namespace"),
            "{url}: {}",
            problem.message
        );
        assert!(config(&r).get("mcp_servers").is_none(), "{url}");
    }
    // With the namespace's grant for that Service, or in the route's own namespace, or
    // outside the cluster's DNS schema: served.
    let r = render_yaml(&format!(
        "{GATEWAY}{}{}",
        service_grant("db"),
        to("http://db.victim.svc.cluster.local:8000/mcp")
    ));
    served(&r, "attacker", "r");
    let r = render_yaml(&format!(
        "{GATEWAY}{}{}",
        service_grant("other"),
        to("http://db.victim.svc.cluster.local:8000/mcp")
    ));
    assert_eq!(
        refused(&r, "attacker", "r").reason,
        RouteProblemReason::RefNotPermitted
    );
    for url in [
        "http://tools.attacker.svc.cluster.local/mcp",
        "https://mcp.example.com/mcp",
        "https://svc.example.com/mcp",
        "http://[fd00::1]:8000/mcp",
    ] {
        served(
            &render_yaml(&format!("{GATEWAY}{}", to(url))),
            "attacker",
            "r",
        );
    }
}

#[test]
fn every_string_a_route_adds_is_bounded() {
    let long_url = format!(
        "http://example.com/{}",
        "a".repeat(bounds::MAX_UPSTREAM_URL_BYTES)
    );
    let r = render_yaml(&format!(
        "{GATEWAY}{}",
        route("team", "long", &external(&long_url))
    ));
    let problem = refused(&r, "team", "long");
    assert_eq!(problem.reason, RouteProblemReason::RouteTooLarge);
    assert!(
        problem.message.contains("upstream URL"),
        "{}",
        problem.message
    );
    assert!(!problem.message.contains("aaaa"), "{}", problem.message);
    assert!(config(&r).get("mcp_servers").is_none());

    let many: Vec<String> = (0..=crate::tool_filter::MAX_ENTRIES)
        .map(|i| format!("t{i}"))
        .collect();
    for field in ["allow", "deny"] {
        let filter = format!("  toolFilter: {{{field}: [{}]}}\n", many.join(", "));
        let r = render_yaml(&format!(
            "{GATEWAY}{}",
            route(
                "team",
                "many",
                &format!("{}{filter}", external("http://x/mcp"))
            )
        ));
        let problem = refused(&r, "team", "many");
        assert_eq!(
            problem.reason,
            RouteProblemReason::InvalidToolFilter,
            "{field}"
        );
        assert!(
            problem
                .message
                .contains(&format!("spec.toolFilter.{field}")),
            "{}",
            problem.message
        );
    }
    // At the bounds a route is served.
    let at_bound = format!(
        "http://example.com/{}",
        "a".repeat(bounds::MAX_UPSTREAM_URL_BYTES - 19)
    );
    assert_eq!(at_bound.len(), bounds::MAX_UPSTREAM_URL_BYTES);
    let filter = format!("  toolFilter: {{allow: [{}]}}\n", many[1..].join(", "));
    let r = render_yaml(&format!(
        "{GATEWAY}{}",
        route("team", "full", &format!("{}{filter}", external(&at_bound)))
    ));
    served(&r, "team", "full");
}

/// A route created on day `day` of 2026 whose filters take about 70 KB of config: a
/// bit more than a fifteenth of the ConfigMap limit.
fn bulky_route(name: &str, day: u32) -> String {
    let tools = |prefix: &str| -> String {
        (0..crate::tool_filter::MAX_ENTRIES)
            .map(|i| {
                format!(
                    "{prefix}{i:03}_{}",
                    "x".repeat(crate::tool_filter::MAX_ENTRY_LENGTH - 8)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "---\n{API}\nkind: ToolRoute\nmetadata: {{name: {name}, namespace: team, creationTimestamp: \"2026-01-{day:02}T00:00:00Z\"}}\nspec:\n  toolGatewayRef: {{name: tools, namespace: gw-ns}}\n{}  toolFilter: {{allow: [{}], deny: [{}]}}\n",
        external(&format!("http://{name}.team/mcp")),
        tools("a"),
        tools("d"),
    )
}

#[test]
fn routes_that_would_overflow_the_config_map_are_refused_newest_first_and_the_rest_is_served() {
    // Listed in an order that is neither oldest nor newest first.
    let days = [
        3, 17, 1, 20, 9, 12, 5, 15, 2, 19, 8, 11, 4, 16, 7, 13, 6, 18, 10, 14,
    ];
    let mut yaml = GATEWAY.to_owned();
    for day in days {
        yaml.push_str(&bulky_route(&format!("r{day:02}"), day));
    }
    let r = render_yaml(&yaml);
    // The ConfigMap's data: the config, and the tool-filter guardrail's module beside it.
    let data_bytes = r.rendered.config_yaml.len()
        + names::CONFIG_KEY.len()
        + crate::tool_filter::MODULE_FILE.len()
        + crate::tool_filter::MODULE_SOURCE.len();
    assert!(
        data_bytes <= crate::MAX_CONFIG_MAP_DATA_BYTES,
        "{data_bytes} bytes"
    );
    let refused_days: Vec<u32> = (1..=20)
        .filter(|day| {
            matches!(
                outcome(&r, "team", &format!("r{day:02}")),
                RouteState::NotServed(_)
            )
        })
        .collect();
    assert!(
        !refused_days.is_empty(),
        "20 bulky routes fit into one ConfigMap"
    );
    let newest: Vec<u32> = (21 - refused_days.len() as u32..=20).collect();
    assert_eq!(
        refused_days, newest,
        "the newest routes are the ones refused"
    );
    // No more than needed: the oldest refused route would not have fitted.
    let alone = render_yaml(GATEWAY).rendered.config_yaml.len();
    let with_one = render_yaml(&format!("{GATEWAY}{}", bulky_route("r01", 1)))
        .rendered
        .config_yaml
        .len();
    let one_more = data_bytes + (with_one - alone);
    assert!(
        one_more > crate::MAX_CONFIG_MAP_DATA_BYTES,
        "{data_bytes} bytes with room for one more route"
    );
    let problem = refused(&r, "team", "r20");
    assert_eq!(problem.reason, RouteProblemReason::ConfigTooLarge);
    assert!(
        problem.message.contains("newest first"),
        "{}",
        problem.message
    );
    served(&r, "team", "r01");
}

#[test]
fn every_route_reason_is_one_a_condition_accepts() {
    use aigateway_api::conditions::Reason;
    for reason in RouteProblemReason::ALL {
        assert_eq!(Reason::new(reason.as_str()), Ok(Reason::from(reason)));
    }
}

mod route_policies {
    //! [`LiteLlmToolRoutePolicy`]s applied to their routes' entries, and the Secret of
    //! copied credentials.

    use super::*;
    use crate::tool_gateway::policies::{MAX_COPIED_BYTES, RoutePolicyVerdict};

    const POLICY_API: &str = "apiVersion: litellm.aigateway.agentic-layer.ai/v1alpha1";
    const SECRET_VALUE: &str = "Bearer s3cret-value";

    fn render_with(yaml: &str) -> RenderedToolGateway {
        let objects = parse_documents(yaml, "test").unwrap();
        let policies: Vec<LiteLlmToolRoutePolicy> = (objects.iter())
            .filter_map(|o| match o {
                InputObject::ToolRoutePolicy(p) => Some(p.clone()),
                _ => None,
            })
            .collect();
        let input = input(yaml);
        render_tool_gateway_with_policies(
            &input.gateways[0],
            &input.routes,
            &policies,
            &input.lookup,
            &RenderSettings::default(),
        )
        .unwrap()
    }

    fn policy(namespace: &str, name: &str, target_kind: &str, target: &str, rest: &str) -> String {
        format!(
            "---\n{POLICY_API}\nkind: LiteLLMToolRoutePolicy\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  targetRefs: [{{group: runtime.agentic-layer.ai, kind: {target_kind}, name: {target}}}]\n{rest}"
        )
    }

    fn header_auth(name: Option<&str>) -> String {
        let name = name.map(|n| format!("name: {n}, ")).unwrap_or_default();
        format!("  upstreamAuth: {{header: {{{name}secretName: upstream, key: token}}}}\n")
    }

    fn secret(namespace: &str, name: &str, key: &str, value: &str) -> String {
        format!(
            "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {namespace}}}\nstringData: {{{key}: {value:?}}}\n"
        )
    }

    fn web_route() -> String {
        route("team", "web", &external("https://mcp.example.com/mcp"))
    }

    fn entry(r: &RenderedToolGateway) -> Value {
        config(r)["mcp_servers"]["team__web"].clone()
    }

    fn verdicts(r: &RenderedToolGateway) -> Vec<(String, RoutePolicyVerdict)> {
        (r.policies.iter())
            .map(|o| (o.policy.name.clone(), o.verdict.clone()))
            .collect()
    }

    /// Everything of the render that may be shown or stored outside the Secret.
    fn public_text(r: &RenderedToolGateway) -> String {
        format!(
            "{}\n{}\n{}\n{:?}\n{:?}\n{:?}",
            r.rendered.config_yaml,
            serde_json::to_string(&r.rendered.config_map).unwrap(),
            serde_json::to_string(&r.rendered.deployment).unwrap(),
            r.routes,
            r.policies,
            r.credentials,
        )
    }

    #[test]
    fn a_header_policy_sends_the_secrets_whole_value_through_the_gateways_copy() {
        let yaml = format!(
            "{GATEWAY}{}{}{}",
            web_route(),
            secret("team", "upstream", "token", SECRET_VALUE),
            policy(
                "team",
                "auth",
                "ToolRoute",
                "web",
                &format!("  timeoutSeconds: 30\n{}", header_auth(None))
            )
        );
        let r = render_with(&yaml);
        assert_eq!(verdicts(&r), [("auth".into(), RoutePolicyVerdict::Applied)]);
        served(&r, "team", "web");
        let entry = entry(&r);
        assert_eq!(entry["timeout"], json!(30.0));
        let reference = entry["static_headers"]["Authorization"]
            .as_str()
            .unwrap()
            .to_owned();
        let var = reference.strip_prefix("os.environ/").unwrap().to_owned();
        assert!(
            var.starts_with("MCP_UPSTREAM_") && var.ends_with("_HEADER"),
            "{var}"
        );
        assert!(
            r.rendered.config_yaml.contains("timeout: 30.0"),
            "a float: {}",
            r.rendered.config_yaml
        );

        // The pod reads the copy, never optional; the copy is in the gateway's namespace.
        let env = container(&r).env.clone().unwrap_or_default();
        let read = env.iter().find(|e| e.name == var).expect("env var");
        let selector = read
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!(
            (
                selector.name.as_str(),
                selector.key.as_str(),
                selector.optional
            ),
            ("tools-route-credentials", var.as_str(), None)
        );
        let copy = r.credentials.as_ref().expect("a Secret of copies").secret();
        assert_eq!(copy.metadata.namespace.as_deref(), Some("gw-ns"));
        assert_eq!(copy.metadata.labels.as_ref().unwrap()["app"], "tools");
        assert_eq!(copy.data.as_ref().unwrap()[&var].0, SECRET_VALUE.as_bytes());

        // No value anywhere else, not even in Debug output.
        assert!(!public_text(&r).contains("s3cret"), "{}", public_text(&r));

        // A changed value rolls the pods; the config stays the same.
        let rotated = render_with(&yaml.replace(SECRET_VALUE, "Bearer rotated"));
        let hash = |r: &RenderedToolGateway| pod_annotation(r, names::SECRET_HASH_ANNOTATION);
        assert_ne!(hash(&r), hash(&rotated));
        assert_eq!(r.rendered.config_yaml, rotated.rendered.config_yaml);
    }

    #[test]
    fn without_any_credential_there_is_no_secret_and_the_hash_is_unchanged() {
        let plain = render_with(&format!("{GATEWAY}{}", web_route()));
        let timeout_only = render_with(&format!(
            "{GATEWAY}{}{}",
            web_route(),
            policy(
                "team",
                "slow",
                "ToolRoute",
                "web",
                "  timeoutSeconds: 600\n"
            )
        ));
        assert!(plain.credentials.is_none() && timeout_only.credentials.is_none());
        assert_eq!(entry(&timeout_only)["timeout"], json!(600.0));
        let hash = |r: &RenderedToolGateway| pod_annotation(r, names::SECRET_HASH_ANNOTATION);
        assert_eq!(hash(&plain), hash(&timeout_only));
    }

    #[test]
    fn a_credential_that_cannot_be_copied_leaves_the_route_served_without_it() {
        let with_secret = |secret_yaml: &str| {
            render_with(&format!(
                "{GATEWAY}{}{secret_yaml}{}",
                web_route(),
                policy(
                    "team",
                    "auth",
                    "ToolRoute",
                    "web",
                    &format!("  timeoutSeconds: 30\n{}", header_auth(Some("X-Api-Key")))
                )
            ))
        };
        let cases = [
            ("", "Secret team/upstream not found"),
            (
                &secret("team", "upstream", "other", SECRET_VALUE) as &str,
                "has no key token",
            ),
            (
                &secret("team", "upstream", "token", "s3cret\n"),
                "ends with a line break",
            ),
            (&secret("team", "upstream", "token", "True"), "boolean"),
            (
                &secret("team", "upstream", "token", &"s3cret".repeat(2000)),
                "bytes, over the 8192",
            ),
            // A Secret of the gateway's namespace is not the policy's.
            (
                &secret("gw-ns", "upstream", "token", SECRET_VALUE),
                "not found",
            ),
        ];
        for (secret_yaml, why) in cases {
            let r = with_secret(secret_yaml);
            let found = verdicts(&r);
            let [(_, RoutePolicyVerdict::Unresolved(message))] = found.as_slice() else {
                panic!("not unresolved: {:?}", r.policies)
            };
            assert!(message.contains(why), "{message}");
            assert!(
                message.contains("without the policy's credential"),
                "{message}"
            );
            assert!(!message.contains("s3cret"), "{message}");
            served(&r, "team", "web");
            let entry = entry(&r);
            assert_eq!(entry["timeout"], json!(30.0), "the rest applies");
            assert!(entry.get("static_headers").is_none(), "{entry}");
            assert!(r.credentials.is_none());
            assert!(!r.rendered.config_yaml.contains("os.environ/MCP_UPSTREAM"));
        }
    }

    #[test]
    fn an_invalid_policy_is_refused_and_nothing_of_it_applies() {
        for (auth, why) in [
            (header_auth(Some("X-MCP-web-Authorization")), "x-mcp-"),
            (header_auth(Some("Host")), "sets itself"),
            (header_auth(Some("\"Bad Name\"")), "HTTP header name"),
            (
                "  upstreamAuth: {oauth2ClientCredentials: {tokenUrl: \"ftp://idp/token\", clientId: c, clientSecret: {secretName: upstream, key: token}}}\n".to_owned(),
                "http:// or https://",
            ),
            (
                "  upstreamAuth: {oauth2ClientCredentials: {tokenUrl: \"https://idp/token\", clientId: os.environ/LITELLM_MASTER_KEY, clientSecret: {secretName: upstream, key: token}}}\n".to_owned(),
                "os.environ/",
            ),
        ] {
            let r = render_with(&format!(
                "{GATEWAY}{}{}{}",
                web_route(),
                secret("team", "upstream", "token", SECRET_VALUE),
                policy("team", "bad", "ToolRoute", "web", &format!("  timeoutSeconds: 30\n{auth}"))
            ));
            let found = verdicts(&r);
            let [(_, RoutePolicyVerdict::Refused(refusal))] = found.as_slice() else {
                panic!("not refused: {:?}", r.policies)
            };
            assert!(refusal.to_string().contains(why), "{refusal}");
            served(&r, "team", "web");
            assert_eq!(
                entry(&r),
                json!({"url": "https://mcp.example.com/mcp", "transport": "http", "allow_all_keys": true})
            );
            assert!(r.credentials.is_none());
        }
    }

    #[test]
    fn oauth2_client_credentials_become_litellms_machine_to_machine_grant() {
        let r = render_with(&format!(
            "{GATEWAY}{}{}{}",
            web_route(),
            secret("team", "idp", "client-secret", "c1ient-s3cret"),
            policy(
                "team",
                "m2m",
                "ToolRoute",
                "web",
                "  upstreamAuth:\n    oauth2ClientCredentials:\n      tokenUrl: https://idp.example.com/oauth/token\n      clientId: tools-gateway\n      clientSecret: {secretName: idp, key: client-secret}\n      scopes: [tools.read, tools.call]\n      audience: mcp\n"
            )
        ));
        assert_eq!(verdicts(&r), [("m2m".into(), RoutePolicyVerdict::Applied)]);
        let entry = entry(&r);
        let secret_ref = entry["client_secret"].as_str().unwrap();
        let var = secret_ref.strip_prefix("os.environ/").unwrap();
        assert!(var.ends_with("_CLIENT_SECRET"), "{var}");
        assert_eq!(
            entry,
            json!({
                "url": "https://mcp.example.com/mcp", "transport": "http", "allow_all_keys": true,
                "auth_type": "oauth2", "oauth2_flow": "client_credentials",
                "token_url": "https://idp.example.com/oauth/token", "client_id": "tools-gateway",
                "client_secret": secret_ref, "scopes": ["tools.read", "tools.call"], "audience": "mcp",
            })
        );
        assert!(
            r.rendered.problems.is_empty()
                || !r
                    .rendered
                    .problems
                    .iter()
                    .any(|p| p.message.contains("oauth2"))
        );
        assert_eq!(
            r.credentials
                .as_ref()
                .unwrap()
                .secret()
                .data
                .as_ref()
                .unwrap()[var]
                .0,
            b"c1ient-s3cret"
        );
        assert!(!public_text(&r).contains("c1ient-s3cret"));
    }

    #[test]
    fn a_token_url_into_another_namespace_needs_that_namespaces_grant() {
        let yaml = |grant_yaml: &str| {
            format!(
                "{GATEWAY}{}{}{grant_yaml}{}",
                web_route(),
                secret("team", "idp", "s", "c1ient-s3cret"),
                policy(
                    "team",
                    "m2m",
                    "ToolRoute",
                    "web",
                    "  upstreamAuth: {oauth2ClientCredentials: {tokenUrl: \"http://keycloak.idp.svc.cluster.local/token\", clientId: c, clientSecret: {secretName: idp, key: s}}}\n"
                )
            )
        };
        let r = render_with(&yaml(""));
        let found = verdicts(&r);
        let [(_, RoutePolicyVerdict::NotPermitted(message))] = found.as_slice() else {
            panic!("not refused: {:?}", r.policies)
        };
        assert!(message.contains("tokenUrl names a Service"), "{message}");
        assert!(!message.contains("not served"), "{message}");
        assert!(entry(&r).get("auth_type").is_none());
        assert!(r.credentials.is_none());
        let granted = "---\napiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: g, namespace: idp}\nspec:\n  from: [{group: runtime.agentic-layer.ai, kind: ToolRoute, namespace: team}]\n  to: [{group: \"\", kind: Service}]\n";
        let r = render_with(&yaml(granted));
        assert_eq!(verdicts(&r), [("m2m".into(), RoutePolicyVerdict::Applied)]);
        assert_eq!(entry(&r)["auth_type"], "oauth2");
    }

    #[test]
    fn only_policies_naming_the_route_in_its_own_namespace_configure_it() {
        let r = render_with(&format!(
            "{GATEWAY}{}{}{}{}",
            web_route(),
            secret("team", "upstream", "token", SECRET_VALUE),
            // Naming the gateway: configures no route.
            policy(
                "team",
                "on-gateway",
                "ToolGateway",
                "tools",
                &header_auth(None)
            ),
            // Another namespace's policy naming a route called web: its own, not this.
            policy("other", "foreign", "ToolRoute", "web", &header_auth(None)),
        ));
        assert!(r.policies.is_empty(), "{:?}", r.policies);
        assert!(entry(&r).get("static_headers").is_none());
        assert!(r.credentials.is_none());
    }

    #[test]
    fn a_policy_on_a_route_that_is_not_served_is_only_checked() {
        let r = render_with(&format!(
            "{GATEWAY}{}{}{}",
            route(
                "team",
                "web",
                "  upstream: {toolServerRef: {name: missing}}\n"
            ),
            secret("team", "upstream", "token", SECRET_VALUE),
            policy("team", "auth", "ToolRoute", "web", &header_auth(None)),
        ));
        refused(&r, "team", "web");
        assert_eq!(verdicts(&r), [("auth".into(), RoutePolicyVerdict::Applied)]);
        assert!(r.credentials.is_none());
    }

    #[test]
    fn one_routes_broken_policy_leaves_the_others_alone() {
        let r = render_with(&format!(
            "{GATEWAY}{}{}{}{}{}",
            web_route(),
            route("team", "docs", &external("https://docs.example.com/mcp")),
            secret("team", "upstream", "token", SECRET_VALUE),
            policy("team", "good", "ToolRoute", "web", &header_auth(None)),
            policy(
                "team",
                "broken",
                "ToolRoute",
                "docs",
                &header_auth(Some("Content-Length"))
            ),
        ));
        served(&r, "team", "docs");
        served(&r, "team", "web");
        let mut verdicts = verdicts(&r);
        verdicts.sort_by(|a, b| a.0.cmp(&b.0));
        assert!(matches!(verdicts[0], (ref n, RoutePolicyVerdict::Refused(_)) if n == "broken"));
        assert_eq!(verdicts[1], ("good".into(), RoutePolicyVerdict::Applied));
        assert!(entry(&r).get("static_headers").is_some());
        assert_eq!(r.credentials.as_ref().unwrap().keys().len(), 1);
    }

    #[test]
    fn the_copies_are_bounded_and_the_newest_foreign_routes_go_first() {
        let big = "b".repeat(8000);
        let mut yaml = GATEWAY.to_owned();
        let count = MAX_COPIED_BYTES / 8000 + 3;
        for i in 0..count {
            yaml.push_str(&route(
                "team",
                &format!("r{i:02}"),
                &external(&format!("https://mcp{i}.example.com/mcp")),
            ));
            yaml.push_str(&secret("team", &format!("s{i:02}"), "token", &big));
            yaml.push_str(&policy(
                "team",
                &format!("p{i:02}"),
                "ToolRoute",
                &format!("r{i:02}"),
                &format!("  upstreamAuth: {{header: {{secretName: s{i:02}, key: token}}}}\n"),
            ));
        }
        let r = render_with(&yaml);
        let copies = r
            .credentials
            .as_ref()
            .unwrap()
            .secret()
            .data
            .as_ref()
            .unwrap();
        let bytes: usize = copies.iter().map(|(k, v)| k.len() + v.0.len()).sum();
        assert!(bytes <= MAX_COPIED_BYTES, "{bytes}");
        let left_out: Vec<_> = (r.policies.iter())
            .filter(|o| matches!(&o.verdict, RoutePolicyVerdict::Unresolved(m) if m.contains("already copies")))
            .collect();
        assert_eq!(left_out.len(), count - copies.len());
        assert!(!left_out.is_empty());
        // Every route whose credential is left out has no header referring to it.
        let config = config(&r);
        for outcome in left_out {
            let key = route_key(&outcome.route.namespace, &outcome.route.name);
            assert!(config["mcp_servers"][&key].get("static_headers").is_none());
        }
    }
}
