//! A namespace is a trust boundary on the ToolGateway side too: each attack of issue 20
//! that a tenant with ToolRoutes in its own namespace could run against another
//! tenant's ToolGateway, against the operator `litellm-impl run` builds and the
//! in-memory API server (the same scenarios against a real control plane, with RBAC,
//! are in `real_cluster_tenancy.rs`).
//!
//! The tenants: `victim` owns ToolGateway `victim/tools`; `attacker` may write ToolRoutes
//! in namespace `attacker` only.

mod support;

use std::time::Duration;

use aigateway_runtime::testing::eventually_within;
use aigateway_testkit::third_party;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use support::{
    DEFAULT_TOOL_CLASS, Running, WAIT, gateway_condition, is_true, route_condition, route_url,
};

/// The operator's field manager for ToolGateways and their routes.
const TOOL_MANAGER: &str = "tool-gateway-litellm-controller";

/// The two tenants' namespaces.
const TENANTS: &str = "apiVersion: v1
kind: Namespace
metadata:
  name: victim
---
apiVersion: v1
kind: Namespace
metadata:
  name: attacker
";

/// The victim's gateway, with `annotations` (YAML lines under `annotations:`, indented
/// four spaces) and `spec` (lines under `spec:`, indented two).
fn victim_gateway(annotations: &str, spec: &str) -> String {
    let annotations = if annotations.is_empty() {
        String::new()
    } else {
        format!("  annotations:\n{annotations}")
    };
    format!(
        "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: ToolGateway\nmetadata:\n  name: tools\n  namespace: victim\n{annotations}spec:\n  toolGatewayClassName: litellm\n{spec}"
    )
}

/// The annotation by which the victim admits routes from every namespace.
const ADMIT_ALL: &str = "    aigateway.agentic-layer.ai/allowed-routes: All\n";

/// A route `namespace/name` on `victim/tools` with `upstream` (YAML lines under
/// `upstream:`, indented four spaces) and `extra` (more lines under `spec:`).
fn route_with(namespace: &str, name: &str, upstream: &str, extra: &str) -> String {
    format!(
        "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: ToolRoute\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  toolGatewayRef:\n    name: tools\n    namespace: victim\n  upstream:\n{upstream}{extra}"
    )
}

fn external_route(namespace: &str, name: &str, url: &str) -> String {
    route_with(
        namespace,
        name,
        &format!("    external:\n      url: \"{url}\"\n"),
        "",
    )
}

async fn started(rollout: Duration, gateway: &str) -> Running {
    let running = Running::start(rollout).await;
    running.apply(DEFAULT_TOOL_CLASS);
    running.apply(TENANTS);
    running.apply(gateway);
    running
}

/// Waits until route `namespace/name` exists and `check` holds; returns it.
async fn wait_route(
    running: &Running,
    namespace: &str,
    name: &str,
    what: &str,
    check: impl Fn(&aigateway_api::ToolRoute) -> bool,
) -> aigateway_api::ToolRoute {
    eventually_within(WAIT, what, || async {
        let route = running.route(namespace, name).await?;
        check(&route).then_some(route)
    })
    .await
}

fn served(route: &aigateway_api::ToolRoute) -> bool {
    route_url(route).is_some() && is_true(route_condition(route, "Ready"))
}

/// `(reason, message)` of a route's `Accepted=False`, if so.
fn refusal(route: &aigateway_api::ToolRoute) -> Option<(String, String)> {
    let (status, reason, message) = route_condition(route, "Accepted")?;
    (status == "False").then_some((reason, message))
}

/// Every condition message of a route, joined.
fn messages(route: &aigateway_api::ToolRoute) -> String {
    route
        .status
        .as_ref()
        .map(|s| {
            s.conditions
                .iter()
                .map(|c| c.message.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// Waits until the victim's gateway is Ready at its current generation.
async fn wait_gateway_ready(running: &Running) -> aigateway_api::ToolGateway {
    eventually_within(WAIT, "victim/tools Ready", || async {
        let gateway = running.tool_gateway("victim", "tools").await?;
        let conditions = &gateway.status.as_ref()?.conditions;
        let ready = aigateway_api::conditions::find_condition(conditions, "Ready")?;
        (ready.status == "True" && ready.observed_generation == gateway.metadata.generation)
            .then_some(gateway)
    })
    .await
}

/// Attack 1, route injection: a route in `attacker` naming `victim/tools` put the
/// attacker's MCP server into the victim's config (served to every key), with a URL and
/// `Ready=True`. Now the gateway admits routes of its own namespace only, unless its
/// owner consents.
#[tokio::test]
async fn a_route_from_another_namespace_never_joins_a_gateway_that_did_not_consent() {
    let running = started(Duration::ZERO, &victim_gateway("", "")).await;
    running.apply(&external_route(
        "victim",
        "search",
        "http://search.victim/mcp",
    ));
    running.apply(&external_route(
        "attacker",
        "injected",
        "http://evil.attacker.example/mcp",
    ));
    wait_route(
        &running,
        "victim",
        "search",
        "the victim's route served",
        served,
    )
    .await;
    let injected = wait_route(
        &running,
        "attacker",
        "injected",
        "the injected route refused",
        |r| refusal(r).is_some(),
    )
    .await;
    let (reason, message) = refusal(&injected).unwrap();
    assert_eq!(reason, "NotAllowedByGateway", "{message}");
    assert_eq!(route_url(&injected), None);
    assert_eq!(
        route_condition(&injected, "Ready").map(|c| c.0).as_deref(),
        Some("False")
    );
    let config = running.config("victim", "tools").await;
    assert!(
        !config.contains("evil.attacker.example") && !config.contains("attacker__injected"),
        "the attacker's server reached the victim's config:\n{config}"
    );
    assert!(config.contains("victim__search"), "{config}");

    // The owner's consent admits it (here: every namespace).
    running.apply(&victim_gateway(ADMIT_ALL, ""));
    wait_route(
        &running,
        "attacker",
        "injected",
        "the route served once admitted",
        served,
    )
    .await;
    running.stop().await;
}

/// The victim's internal ToolServer, whose port and path the attacker must not learn.
const INTERNAL_SERVER: &str = "apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: ToolServer
metadata:
  name: internal
  namespace: victim
spec:
  protocol: mcp
  transportType: http
  image: example/internal-mcp:1
  port: 8443
  path: /very-secret-path
";

fn to_internal(name: &str, server: &str) -> String {
    route_with(
        "attacker",
        name,
        &format!("    toolServerRef:\n      name: {server}\n      namespace: victim\n"),
        "",
    )
}

const GRANT: &str = "apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata:
  name: attacker-may-use-internal
  namespace: victim
spec:
  from:
  - group: runtime.agentic-layer.ai
    kind: ToolRoute
    namespace: attacker
  to:
  - group: runtime.agentic-layer.ai
    kind: ToolServer
    name: internal
";

/// `(status, reason, message)` of a route's `ResolvedRefs`.
fn resolved_refs(route: &aigateway_api::ToolRoute) -> Option<(String, String, String)> {
    route_condition(route, "ResolvedRefs")
}

/// Attack 2, confused deputy: a route in `attacker` naming the victim's ToolServer made
/// the victim's gateway serve it to every key, past the victim's NetworkPolicies, and
/// its status told whether the server exists, its port and path. Now the ToolServer's
/// namespace must grant it with a Gateway API ReferenceGrant; without one (or without
/// the CRD) the route says nothing about the ToolServer.
#[tokio::test]
async fn a_route_may_name_a_tool_server_in_another_namespace_only_with_that_namespaces_grant() {
    // The victim admits routes from every namespace: the route is accepted; its
    // backend is another matter.
    let running = started(Duration::ZERO, &victim_gateway(ADMIT_ALL, "")).await;
    running.apply(INTERNAL_SERVER);
    running.apply(&to_internal("deputy", "internal"));
    running.apply(&to_internal("probe", "no-such-server"));

    // Gateway API is not installed: refused, and the message says what to install.
    let unresolved = |r: &aigateway_api::ToolRoute| {
        resolved_refs(r).is_some_and(|(s, reason, _)| s == "False" && reason == "RefNotPermitted")
    };
    let deputy = wait_route(
        &running,
        "attacker",
        "deputy",
        "refused without the CRD",
        unresolved,
    )
    .await;
    let (_, _, message) = resolved_refs(&deputy).unwrap();
    assert!(
        message.contains("referencegrants.gateway.networking.k8s.io")
            && message.contains("not installed"),
        "{message}"
    );
    assert_eq!(route_url(&deputy), None);
    assert!(!is_true(route_condition(&deputy, "Ready")));

    // Installed, without a grant: refused, and an existing ToolServer looks exactly like
    // a missing one.
    running.apply(&third_party::reference_grant_crd().unwrap());
    let deputy = wait_route(
        &running,
        "attacker",
        "deputy",
        "refused without a grant",
        |r| {
            resolved_refs(r).is_some_and(|(_, reason, m)| {
                reason == "RefNotPermitted" && m.contains("has not granted")
            })
        },
    )
    .await;
    let probe = wait_route(&running, "attacker", "probe", "the probe refused", |r| {
        resolved_refs(r).is_some_and(|(_, _, m)| m.contains("has not granted"))
    })
    .await;
    let all = format!("{}\n{}", messages(&deputy), messages(&probe));
    for leak in [
        "8443",
        "very-secret-path",
        "not found",
        "svc.cluster.local",
        "no spec.port",
    ] {
        assert!(!all.contains(leak), "{leak} told to the attacker:\n{all}");
    }
    assert_eq!(
        messages(&deputy).replace("internal", "X"),
        messages(&probe).replace("no-such-server", "X"),
        "the status tells an existing ToolServer from a missing one"
    );
    let config = running.config("victim", "tools").await;
    assert!(!config.contains("internal.victim"), "{config}");

    // The victim's grant, for that server: served.
    running.apply(GRANT);
    let deputy = wait_route(
        &running,
        "attacker",
        "deputy",
        "served with the grant",
        served,
    )
    .await;
    assert!(
        resolved_refs(&deputy).is_none(),
        "{:?}",
        resolved_refs(&deputy)
    );
    let config = running.config("victim", "tools").await;
    assert!(
        config.contains("http://internal.victim.svc.cluster.local:8443/very-secret-path"),
        "{config}"
    );
    let probe = running.route("attacker", "probe").await.unwrap();
    assert!(
        unresolved(&probe),
        "a grant for `internal` permits another name"
    );

    // Withdrawn: refused again.
    running
        .server
        .delete_object(
            "gateway.networking.k8s.io/v1beta1",
            "ReferenceGrant",
            Some("victim"),
            "attacker-may-use-internal",
        )
        .unwrap();
    wait_route(
        &running,
        "attacker",
        "deputy",
        "refused once the grant is gone",
        unresolved,
    )
    .await;
    eventually_within(WAIT, "the ToolServer out of the config", || async {
        let config = running.config("victim", "tools").await;
        (!config.contains("internal.victim")).then_some(())
    })
    .await;
    running.stop().await;
}

/// A route created on day `day` of a far future month (so after any route the test
/// makes itself) whose tool filters take about 70 KB of config.
fn bulky_route(namespace: &str, name: &str, day: u32) -> String {
    let tools = |prefix: &str| -> String {
        (0..litellm_impl::tool_filter::MAX_ENTRIES)
            .map(|i| {
                format!(
                    "      - {prefix}{i:03}_{}\n",
                    "x".repeat(litellm_impl::tool_filter::MAX_ENTRY_LENGTH - 8)
                )
            })
            .collect()
    };
    route_with(
        namespace,
        name,
        &format!("    external:\n      url: http://{name}.{namespace}/mcp\n"),
        &format!(
            "  toolFilter:\n    allow:\n{}    deny:\n{}",
            tools("a"),
            tools("d")
        ),
    )
    .replace(
        &format!("  namespace: {namespace}\n"),
        &format!("  namespace: {namespace}\n  creationTimestamp: \"2099-01-{day:02}T00:00:00Z\"\n"),
    )
}

/// Attack 4, undeployable victim: one foreign route with a ~1 MB URL pushed the
/// victim's config past the ConfigMap limit, and none of the victim's own changes
/// deployed until it was gone. Now every string a route adds is bounded, routes that
/// would overflow the config are refused newest first, and the victim keeps deploying.
#[tokio::test]
async fn one_tenants_routes_cannot_make_the_gateway_undeployable() {
    let running = started(Duration::ZERO, &victim_gateway(ADMIT_ALL, "")).await;
    running.apply(&external_route(
        "victim",
        "search",
        "http://search.victim/mcp",
    ));
    wait_route(
        &running,
        "victim",
        "search",
        "the victim's route served",
        served,
    )
    .await;

    let huge = format!("http://evil.example/{}", "a".repeat(1_000_000));
    running.apply(&external_route("attacker", "huge", &huge));
    let refused = wait_route(
        &running,
        "attacker",
        "huge",
        "the huge route refused",
        |r| refusal(r).is_some(),
    )
    .await;
    let (reason, message) = refusal(&refused).unwrap();
    assert_eq!(reason, "RouteTooLarge", "{message}");

    // Routes newer than the victim's that together overflow the config: the newest are
    // refused, the rest and the victim's route are served.
    for day in 1..=20 {
        running.apply(&bulky_route("attacker", &format!("bulk-{day:02}"), day));
    }
    let newest = wait_route(
        &running,
        "attacker",
        "bulk-20",
        "the newest bulky route refused",
        |r| refusal(r).is_some(),
    )
    .await;
    let (reason, message) = refusal(&newest).unwrap();
    assert_eq!(reason, "ConfigTooLarge", "{message}");
    wait_route(
        &running,
        "attacker",
        "bulk-01",
        "the oldest bulky route served",
        served,
    )
    .await;

    // The victim's own change still deploys.
    running.apply(&victim_gateway(
        ADMIT_ALL,
        "  env:\n  - name: LITELLM_LOG\n    value: DEBUG\n",
    ));
    let gateway = wait_gateway_ready(&running).await;
    assert!(is_true(gateway_condition(&gateway, "Programmed")));
    let deployments: Api<Deployment> = Api::namespaced(running.server.client(), "victim");
    let deployment = deployments.get("tools").await.unwrap();
    let env =
        serde_json::to_string(&deployment.spec.unwrap().template.spec.unwrap().containers[0].env)
            .unwrap();
    assert!(env.contains("LITELLM_LOG"), "{env}");
    let config = running.config("victim", "tools").await;
    assert!(
        config.contains("victim__search") && config.contains("attacker__bulk_01"),
        "config lost routes"
    );
    assert!(!config.contains("attacker__bulk_20") && !config.contains("evil.example"));
    assert!(
        config.len() <= 1024 * 1024,
        "{} bytes in a ConfigMap",
        config.len()
    );
    let search = running.route("victim", "search").await.unwrap();
    assert!(served(&search), "{:?}", search.status);
    running.stop().await;
}

/// Attack 5, frozen status: a foreign route whose status write the API server refuses
/// (422; it used to be a route whose annotations were at the API server's limit, which a
/// metadata mark of ours pushed over) stopped the pass there, so the victim's gateway
/// status froze and routes sorted after it were never published. Now the gateway's
/// status comes first and one failed write stops nothing else.
#[tokio::test]
async fn a_route_whose_status_cannot_be_written_holds_back_neither_the_gateway_nor_other_routes() {
    let running = started(Duration::ZERO, &victim_gateway("", "")).await;
    running.server.faults().fail_fraction(
        1.0,
        aigateway_testkit::RequestMatch::any()
            .resource("toolroutes")
            .subresource("status")
            .namespace("attacker"),
        422,
    );
    // Namespace `attacker` sorts before `victim`; the route is not even admitted.
    running.apply(&external_route(
        "attacker",
        "heavy",
        "http://evil.example/mcp",
    ));
    running.apply(&external_route(
        "victim",
        "search",
        "http://search.victim/mcp",
    ));
    let gateway = wait_gateway_ready(&running).await;
    assert!(is_true(gateway_condition(&gateway, "Programmed")));
    wait_route(
        &running,
        "victim",
        "search",
        "the route after it published",
        served,
    )
    .await;
    let failed = running
        .server
        .requests()
        .into_iter()
        .filter(|r| r.resource == "toolroutes" && r.namespace == "attacker" && r.status == 422)
        .count();
    assert!(
        failed > 0,
        "the heavy route's write did not fail: the test proves nothing"
    );

    // The victim's later changes reach the gateway's status too.
    running.apply(&victim_gateway(
        "",
        "  env:\n  - name: LITELLM_LOG\n    value: DEBUG\n",
    ));
    wait_gateway_ready(&running).await;
    running.apply(&external_route(
        "victim",
        "weather",
        "http://weather.victim/mcp",
    ));
    wait_route(
        &running,
        "victim",
        "weather",
        "a new route published",
        served,
    )
    .await;
    // Refused once, the heavy route is not tried again on the gateway's later passes
    // (two changes since): until its owner changes it, a write would fail the same way.
    let writes_to_heavy = running
        .server
        .requests()
        .into_iter()
        .filter(|r| {
            r.resource == "toolroutes"
                && r.namespace == "attacker"
                && is_tool_manager(&r.field_manager)
                && r.verb == "patch"
        })
        .count();
    assert_eq!(
        writes_to_heavy, failed,
        "the refused route was written again"
    );
    running.stop().await;
}

/// Whether `manager` is the ToolGateway operator's field manager or its status field
/// manager.
fn is_tool_manager(manager: &str) -> bool {
    manager == TOOL_MANAGER
        || manager
            == aigateway_runtime::names::status_field_manager(
                TOOL_MANAGER,
                litellm_impl::names::TOOL_GATEWAY_CONTROLLER_NAME,
            )
}

/// The operator's successful writes to ToolRoutes, as `(namespace/name, subresource)`.
fn route_writes(running: &Running) -> Vec<(String, String)> {
    running
        .server
        .requests()
        .into_iter()
        .filter(|r| {
            r.resource == "toolroutes"
                && is_tool_manager(&r.field_manager)
                && ["patch", "update", "create", "delete"].contains(&r.verb.as_str())
                && r.status < 300
        })
        .map(|r| (format!("{}/{}", r.namespace, r.name), r.subresource))
        .collect()
}

/// Attack 6, churn: any edit of any route removed `status.url` from every route of the
/// gateway until the rollout ended (agents using them failed meanwhile), with two
/// status writes per route. Now an edit writes the edited route's status once, every
/// route keeps its URL throughout, and pods roll only when the config changed.
#[tokio::test]
async fn editing_one_route_writes_that_route_only_and_no_route_loses_its_url() {
    const ROUTES: usize = 40;
    // Rollouts take 2 s: long enough to look at the routes while one runs.
    let running = started(Duration::from_secs(2), &victim_gateway("", "")).await;
    for i in 0..ROUTES {
        running.apply(&external_route(
            "victim",
            &format!("r{i:02}"),
            &format!("http://r{i:02}.victim/mcp"),
        ));
    }
    let routes: Api<aigateway_api::ToolRoute> = Api::namespaced(running.server.client(), "victim");
    let all_served = || async {
        let list = routes.list(&Default::default()).await.ok()?;
        (list.items.len() == ROUTES && list.items.iter().all(served)).then_some(list)
    };
    eventually_within(WAIT, "every route served", all_served).await;
    wait_gateway_ready(&running).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.server.reset_stats();
    let deployments: Api<Deployment> = Api::namespaced(running.server.client(), "victim");
    let generation = |d: Deployment| d.metadata.generation;
    let before = generation(deployments.get("tools").await.unwrap());

    // An edit that changes the config: the pods roll, the URLs stay.
    routes
        .patch(
            "r07",
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"spec": {"toolFilter": {"deny": ["drop_table"]}}})),
        )
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    while tokio::time::Instant::now() < deadline {
        let list = routes.list(&Default::default()).await.unwrap();
        let without: Vec<String> = list
            .items
            .iter()
            .filter(|r| route_url(r).is_none())
            .map(|r| r.metadata.name.clone().unwrap_or_default())
            .collect();
        assert!(
            without.is_empty(),
            "routes without a URL during the rollout: {without:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_gateway_ready(&running).await;
    assert!(
        running
            .config("victim", "tools")
            .await
            .contains("drop_table")
    );
    assert_ne!(
        generation(deployments.get("tools").await.unwrap()),
        before,
        "the pods did not roll"
    );
    assert_eq!(
        route_writes(&running),
        [("victim/r07".to_owned(), "status".to_owned())],
        "writes for one route's edit"
    );

    // A change the config does not see: nothing written, nothing rolled.
    running.server.reset_stats();
    let rolled = generation(deployments.get("tools").await.unwrap());
    routes
        .patch(
            "r11",
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"metadata": {"labels": {"team": "search"}}})),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        route_writes(&running).is_empty(),
        "{:?}",
        route_writes(&running)
    );
    assert_eq!(generation(deployments.get("tools").await.unwrap()), rolled);
    running.stop().await;
}

/// Attack 7, key collision: `a/b--c` and `a--b/c` both became `a__b__c`, so the victim's
/// config patch for its key was merged into the attacker's entry, sending the victim's
/// upstream credential to the attacker's URL. Now the two routes get keys of their
/// own, and a patch reaches one of them.
#[tokio::test]
async fn routes_whose_go_keys_collide_never_share_an_entry_or_a_patch() {
    // A central gateway in `a--b` that admits every namespace; its owner's patch adds a
    // credential header to its own route's entry, keyed as the route's URL says.
    let namespaces = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a--b\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n";
    let gateway = |annotations: &str| {
        victim_gateway(&format!("{ADMIT_ALL}{annotations}"), "")
            .replace("namespace: victim", "namespace: a--b")
    };
    let route = |namespace: &str, name: &str, url: &str| {
        external_route(namespace, name, url)
            .replace("    namespace: victim\n", "    namespace: a--b\n")
    };
    let running = Running::start(Duration::ZERO).await;
    running.apply(DEFAULT_TOOL_CLASS);
    running.apply(TENANTS);
    running.apply(namespaces);
    running.apply(&gateway(""));
    running.apply(&route("a", "b--c", "http://attacker.example/mcp"));
    running.apply(&route("a--b", "c", "http://victim.internal/mcp"));
    let victim = wait_route(&running, "a--b", "c", "the victim's route served", served).await;
    let attacker = wait_route(&running, "a", "b--c", "the attacker's route served", served).await;
    let victim_url = route_url(&victim).unwrap().to_owned();
    let attacker_url = route_url(&attacker).unwrap().to_owned();
    assert_ne!(victim_url, attacker_url);
    let victim_key = victim_url.rsplit('/').next().unwrap().to_owned();
    running.apply(&format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: patch\n  namespace: a--b\ndata:\n  patch.yaml: |\n    mcp_servers:\n      {victim_key}:\n        extra_headers: [x-victim-credential]\n"
    ));
    running.apply(&gateway(
        "    ai-gateway-litellm.agentic-layer.ai/config-patch: patch\n",
    ));
    let config = eventually_within(WAIT, "the patch applied", || async {
        let config = running.config("a--b", "tools").await;
        config.contains("x-victim-credential").then_some(config)
    })
    .await;
    let parsed: serde_json::Value = serde_saphyr::from_str(&config).unwrap();
    let servers = parsed["mcp_servers"].as_object().unwrap();
    assert_eq!(servers.len(), 2, "{config}");
    let with_header: Vec<&str> = servers
        .values()
        .filter(|entry| entry.get("extra_headers").is_some())
        .map(|entry| entry["url"].as_str().unwrap())
        .collect();
    assert_eq!(with_header, ["http://victim.internal/mcp"], "{config}");
    running.stop().await;
}

/// Issue 20, item 8: the victim gateway's problem messages (with the values of its
/// annotations) were copied into other tenants' route status. A route now learns only
/// that its gateway is not programmed.
#[tokio::test]
async fn route_status_never_carries_the_gateway_owners_messages() {
    // A config patch naming a ConfigMap that does not exist: the gateway is not
    // programmed, and its own status says why, with the name.
    let gateway = victim_gateway(
        &format!(
            "{ADMIT_ALL}    ai-gateway-litellm.agentic-layer.ai/config-patch: credentials-of-team-x\n"
        ),
        "",
    );
    let running = started(Duration::ZERO, &gateway).await;
    running.apply(&external_route(
        "attacker",
        "listener",
        "http://listener.attacker/mcp",
    ));
    let gateway = eventually_within(WAIT, "the gateway reports the missing patch", || async {
        let gateway = running.tool_gateway("victim", "tools").await?;
        let (status, _, message) = gateway_condition(&gateway, "ResolvedRefs")?;
        (status == "False" && message.contains("credentials-of-team-x")).then_some(gateway)
    })
    .await;
    let listener = wait_route(&running, "attacker", "listener", "the route told", |r| {
        route_condition(r, "Ready").is_some_and(|(s, _, _)| s == "False")
    })
    .await;
    let told = messages(&listener);
    assert!(
        !told.contains("credentials-of-team-x"),
        "the gateway owner's message in another tenant's route: {told}\n(gateway: {:?})",
        gateway.status
    );
    assert_eq!(route_url(&listener), None);
    running.stop().await;
}
