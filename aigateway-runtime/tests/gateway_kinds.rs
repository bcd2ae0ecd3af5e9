//! ToolGateway and AgentGateway classes through the same loop, and the status of
//! attached objects (ToolRoutes): written from the implementation's decision and the
//! gateway's state, only when it changes, never on routes of another controller's
//! gateway, cleared when a route detaches or its gateway goes.

mod fixtures;

use std::collections::BTreeMap;
use std::time::Duration;

use aigateway_api::conditions::{Reason, find_condition, reasons};
use aigateway_api::{
    AgentGateway, AgentGatewayClass, AgentGatewayClassSpec, AgentGatewaySpec, ExternalUpstream,
    ToolFilter, ToolGateway, ToolGatewayClass, ToolGatewayClassSpec, ToolGatewaySpec, ToolRoute,
    ToolRouteSpec, ToolRouteUpstream,
};
use aigateway_runtime::kind::AgentGatewayKind;
use aigateway_runtime::names::status_field_manager;
use aigateway_runtime::{
    AttachedDecision, AttachedKind, Context, DesiredState, GatewayImplementation,
    ImplementationError, Operator, ToolGatewayKind,
};
use aigateway_testkit::ApiServer;
use fixtures::{Cluster, eventually_within, on_real_cluster, start};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, ObjectReference, PodSpec, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, ObjectMeta};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

const TOOLS: &str = "example.com/tools";
const TOOLS_MANAGER: &str = "tools";
const AGENTS: &str = "example.com/agents";
const NS: &str = "default";
const ROUTES_NS: &str = "routes";
const OWNER: &str = "aigateway.agentic-layer.ai/conditions-owner";

/// A Deployment named after the gateway, the only child of both minimal classes.
fn deployment(name: &str, replicas: i32) -> Deployment {
    let labels = BTreeMap::from([("app".to_owned(), name.to_owned())]);
    Deployment {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "gateway".into(),
                        image: Some("example/gateway:1".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A minimal ToolGateway class: a ConfigMap listing the attached routes, a Deployment,
/// and one URL per route; a route whose allow-list holds a glob is refused.
struct MinimalTools;

#[async_trait::async_trait]
impl GatewayImplementation<ToolGatewayKind> for MinimalTools {
    fn controller_name(&self) -> &str {
        TOOLS
    }

    fn attached(&self) -> Option<AttachedKind<ToolGatewayKind>> {
        Some(ToolGatewayKind::routes())
    }

    async fn desired_state(
        &self,
        gateway: &ToolGateway,
        ctx: &Context,
    ) -> Result<DesiredState, ImplementationError> {
        let name = gateway.name_any();
        let namespace = gateway.namespace().unwrap_or_default();
        let base = format!("http://{name}.{namespace}.svc.cluster.local");
        let routes: Vec<ToolRoute> = ctx.attached(gateway)?;
        let mut desired = DesiredState::new().with_url(base.clone());
        let mut served = Vec::new();
        for route in &routes {
            let key = format!(
                "{}__{}",
                route.namespace().unwrap_or_default(),
                route.name_any()
            );
            let globs = route
                .spec
                .tool_filter
                .as_ref()
                .is_some_and(|f| f.allow.iter().any(|tool| tool.contains('*')));
            let decision = if globs {
                AttachedDecision::refuse(
                    Reason::from_static("InvalidToolFilter"),
                    "tool names must be exact",
                )
            } else {
                served.push(key.clone());
                AttachedDecision::serve(format!("{base}/mcp/{key}"))
            };
            desired = desired.with_attached(route, decision);
        }
        let config = ConfigMap {
            metadata: ObjectMeta {
                name: Some(format!("{name}-routes")),
                ..Default::default()
            },
            data: Some(BTreeMap::from([("routes".to_owned(), served.join("\n"))])),
            ..Default::default()
        };
        // The pods read the routes at start: they roll when a route changes, as a real
        // proxy's would.
        let mut deployment = deployment(&name, 1);
        let specs: Vec<String> = routes
            .iter()
            .map(|r| serde_json::to_string(&r.spec).unwrap())
            .collect();
        deployment
            .spec
            .as_mut()
            .unwrap()
            .template
            .metadata
            .as_mut()
            .unwrap()
            .annotations = Some(BTreeMap::from([(
            "example.com/routes".to_owned(),
            specs.join("\n"),
        )]));
        Ok(desired.with(&config).with(&deployment))
    }
}

/// A minimal AgentGateway class: a Deployment with the gateway's replica count.
struct MinimalAgents;

#[async_trait::async_trait]
impl GatewayImplementation<AgentGatewayKind> for MinimalAgents {
    fn controller_name(&self) -> &str {
        AGENTS
    }

    async fn desired_state(
        &self,
        gateway: &AgentGateway,
        _ctx: &Context,
    ) -> Result<DesiredState, ImplementationError> {
        Ok(DesiredState::new().with(&deployment(&gateway.name_any(), gateway.spec.replicas())))
    }
}

/// An API server with our CRDs, Deployments left without status (tests roll them out),
/// and the routes namespace.
async fn cluster() -> ApiServer {
    let server = ApiServer::builder().simulate_deployments(false).build();
    for crd in aigateway_api::crds::all() {
        server.install_crd(crd).await.unwrap();
    }
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(ROUTES_NS.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(server.client())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    server
}

async fn tool_class(client: &Client, name: &str, controller: &str) {
    let class = ToolGatewayClass::new(
        name,
        ToolGatewayClassSpec {
            controller: controller.into(),
        },
    );
    Api::<ToolGatewayClass>::all(client.clone())
        .create(&PostParams::default(), &class)
        .await
        .unwrap();
}

async fn tool_gateway(client: &Client, name: &str, class: &str) {
    let gateway = ToolGateway::new(
        name,
        ToolGatewaySpec {
            tool_gateway_class_name: Some(class.into()),
            ..Default::default()
        },
    );
    Api::<ToolGateway>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &gateway)
        .await
        .unwrap();
}

fn route(namespace: &str, name: &str, gateway: Option<&str>) -> ToolRoute {
    let mut route = ToolRoute::new(
        name,
        ToolRouteSpec {
            tool_gateway_ref: gateway.map(|g| ObjectReference {
                name: Some(g.into()),
                namespace: Some(NS.into()),
                ..Default::default()
            }),
            upstream: ToolRouteUpstream {
                external: Some(ExternalUpstream {
                    url: format!("http://{name}.example.com/mcp"),
                }),
                ..Default::default()
            },
            tool_filter: None,
        },
    );
    route.metadata.namespace = Some(namespace.into());
    route
}

async fn create_route(client: &Client, route: &ToolRoute) {
    Api::<ToolRoute>::namespaced(client.clone(), &route.namespace().unwrap())
        .create(&PostParams::default(), route)
        .await
        .unwrap();
}

async fn get_route(client: &Client, namespace: &str, name: &str) -> ToolRoute {
    Api::<ToolRoute>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .unwrap()
}

fn route_conditions(route: &ToolRoute) -> Vec<Condition> {
    route
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default()
}

fn route_url(route: &ToolRoute) -> Option<String> {
    route.status.as_ref().and_then(|s| s.url.clone())
}

/// `(status, reason)` of condition `type_`.
fn condition_of(conditions: &[Condition], type_: &str) -> Option<(String, String)> {
    find_condition(conditions, type_).map(|c| (c.status.clone(), c.reason.clone()))
}

/// Marks Deployment `name` rolled out, as the deployment controller would.
async fn roll_out(client: &Client, name: &str) {
    let api = Api::<Deployment>::namespaced(client.clone(), NS);
    let live = eventually_within(Duration::from_secs(20), "the Deployment", || async {
        api.get_opt(name).await.ok().flatten()
    })
    .await;
    let replicas = live.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = json!({"status": {
        "observedGeneration": live.metadata.generation,
        "replicas": replicas, "updatedReplicas": replicas,
        "readyReplicas": replicas, "availableReplicas": replicas,
    }});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

/// Waits until route `namespace/name` satisfies `check`; returns it.
async fn wait_route(
    client: &Client,
    namespace: &str,
    name: &str,
    what: &str,
    check: impl Fn(&ToolRoute) -> bool,
) -> ToolRoute {
    eventually_within(Duration::from_secs(20), what, || async {
        let route = get_route(client, namespace, name).await;
        check(&route).then_some(route)
    })
    .await
}

fn ready_with_url(route: &ToolRoute) -> bool {
    condition_of(&route_conditions(route), "Ready").is_some_and(|(s, _)| s == "True")
        && route_url(route).is_some()
}

/// Successful writes (any verb but reads) to the ToolRoute `namespace/name`, split into
/// status writes and other writes.
fn route_writes(server: &ApiServer, namespace: &str, name: &str) -> (usize, usize) {
    let writes: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| {
            r.resource == "toolroutes"
                && r.namespace == namespace
                && r.name == name
                && ["patch", "update", "create", "delete"].contains(&r.verb.as_str())
                && [
                    TOOLS_MANAGER.to_owned(),
                    status_field_manager(TOOLS_MANAGER, TOOLS),
                ]
                .contains(&r.field_manager)
                && r.status < 300
        })
        .collect();
    let status = writes.iter().filter(|r| r.subresource == "status").count();
    (status, writes.len() - status)
}

const ALLOWED_ROUTES: &str = "aigateway.agentic-layer.ai/allowed-routes";

/// Sets (or with `None` removes) annotation `key` of ToolGateway `name`.
async fn annotate_gateway(client: &Client, name: &str, key: &str, value: Option<&str>) {
    Api::<ToolGateway>::namespaced(client.clone(), NS)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"annotations": {key: value}}})),
        )
        .await
        .unwrap();
}

fn tools_operator(client: Client) -> Operator {
    Operator::new(client).gateway(MinimalTools)
}

#[tokio::test]
async fn a_tool_gateway_publishes_route_urls_once_ready_and_then_stays_silent() {
    let server = cluster().await;
    let client = server.client();
    tool_class(&client, "tools", TOOLS).await;
    tool_gateway(&client, "gw", "tools").await;
    annotate_gateway(&client, "gw", ALLOWED_ROUTES, Some("All")).await;
    create_route(&client, &route(ROUTES_NS, "search", Some("gw"))).await;
    create_route(&client, &route(NS, "weather", Some("gw"))).await;
    let mut globbed = route(NS, "globbed", Some("gw"));
    globbed.spec.tool_filter = Some(ToolFilter {
        allow: vec!["search_*".into()],
        deny: Vec::new(),
    });
    create_route(&client, &globbed).await;
    let running = start(tools_operator(client.clone()));

    // Before the gateway is Ready: accepted, not ready, no URL.
    let search = wait_route(
        &client,
        ROUTES_NS,
        "search",
        "search accepted, gateway not ready",
        |r| {
            condition_of(&route_conditions(r), "Ready")
                .is_some_and(|(_, reason)| reason == reasons::GATEWAY_NOT_READY)
        },
    )
    .await;
    assert_eq!(route_url(&search), None);
    assert_eq!(
        condition_of(&route_conditions(&search), "Accepted"),
        Some(("True".into(), "Accepted".into()))
    );
    assert_eq!(
        fixtures::condition_writers(&search.metadata),
        [status_field_manager(TOOLS_MANAGER, TOOLS)]
    );
    assert_eq!(search.annotations().get(OWNER), None, "never written");

    roll_out(&client, "gw").await;
    let search = wait_route(&client, ROUTES_NS, "search", "search ready", ready_with_url).await;
    assert_eq!(
        route_url(&search).as_deref(),
        Some("http://gw.default.svc.cluster.local/mcp/routes__search")
    );
    let conditions = route_conditions(&search);
    let ready = find_condition(&conditions, "Ready").unwrap();
    assert_eq!(ready.observed_generation, search.metadata.generation);
    wait_route(&client, NS, "weather", "weather ready", ready_with_url).await;
    // The refused route says why and gets no URL, even with the gateway Ready.
    let globbed = get_route(&client, NS, "globbed").await;
    assert_eq!(
        condition_of(&route_conditions(&globbed), "Accepted"),
        Some(("False".into(), "InvalidToolFilter".into()))
    );
    assert_eq!(route_url(&globbed), None);

    // The gateway itself went through the same loop.
    let gateway = eventually_within(Duration::from_secs(20), "gateway Ready", || async {
        let gateway = Api::<ToolGateway>::namespaced(client.clone(), NS)
            .get("gw")
            .await
            .ok()?;
        let conditions = gateway.status.clone()?.conditions;
        condition_of(&conditions, "Ready")
            .is_some_and(|(s, _)| s == "True")
            .then_some(gateway)
    })
    .await;
    let status = gateway.status.clone().unwrap();
    for type_ in ["Accepted", "ResolvedRefs", "Programmed", "Ready"] {
        let condition = find_condition(&status.conditions, type_).unwrap();
        assert_eq!(condition.status, "True", "{type_}");
        assert_eq!(condition.observed_generation, gateway.metadata.generation);
    }
    assert_eq!(
        status.url.as_deref(),
        Some("http://gw.default.svc.cluster.local")
    );
    // Its desired state depends on the attached routes.
    let config = Api::<ConfigMap>::namespaced(client.clone(), NS)
        .get("gw-routes")
        .await
        .unwrap();
    assert_eq!(
        config.data.unwrap()["routes"],
        "default__weather\nroutes__search"
    );

    // Converged: each route's status written once per change (not ready, then ready)
    // and nothing else (no mark: the status write itself records whose conditions they
    // are); nothing more is written while nothing changes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(route_writes(&server, ROUTES_NS, "search"), (2, 0));
    assert_eq!(route_writes(&server, NS, "globbed"), (1, 0));
    server.reset_stats();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = server.stats();
    assert_eq!(
        stats.writes_by_manager(TOOLS_MANAGER)
            + stats.writes_by_manager(&status_field_manager(TOOLS_MANAGER, TOOLS)),
        0,
        "writes while converged: {:?}",
        stats.counts
    );
    running.stop().await;
}

/// One order on every exit of a pass: the gateway's status, then its routes', then the
/// event. So whoever sees the event of a gateway turning Ready (`kubectl get events -w`,
/// a deploy pipeline) finds the URLs of the routes it serves already published.
#[tokio::test]
async fn the_ready_event_of_a_gateway_comes_after_its_routes_are_written() {
    let server = cluster().await;
    let client = server.client();
    tool_class(&client, "tools", TOOLS).await;
    tool_gateway(&client, "gw", "tools").await;
    create_route(&client, &route(NS, "weather", Some("gw"))).await;
    let running = start(tools_operator(client.clone()));
    wait_route(&client, NS, "weather", "weather accepted", |r| {
        condition_of(&route_conditions(r), "Accepted").is_some_and(|(s, _)| s == "True")
    })
    .await;

    roll_out(&client, "gw").await;
    let weather = wait_route(&client, NS, "weather", "weather ready", ready_with_url).await;
    let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), NS);
    let ready_event = eventually_within(Duration::from_secs(20), "the Ready event", || async {
        let list = events.list(&Default::default()).await.ok()?;
        list.items.into_iter().find(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("gw")
                && e.note.as_deref().is_some_and(|n| n.contains("Ready=True"))
        })
    })
    .await;
    let version = |object: &ObjectMeta| -> u64 {
        object.resource_version.as_deref().unwrap().parse().unwrap()
    };
    assert!(
        version(&ready_event.metadata) > version(&weather.metadata),
        "the Ready event ({}) was published before the route's URL ({})",
        version(&ready_event.metadata),
        version(&weather.metadata)
    );
    running.stop().await;
}

/// `(status, reason, message)` of a route's `Accepted`.
fn accepted(route: &ToolRoute) -> Option<(String, String, String)> {
    find_condition(&route_conditions(route), "Accepted")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn refused_not_allowed(route: &ToolRoute) -> bool {
    accepted(route).is_some_and(|(s, reason, _)| s == "False" && reason == "NotAllowedByGateway")
}

fn admitted(route: &ToolRoute) -> bool {
    accepted(route).is_some_and(|(s, _, _)| s == "True")
}

async fn served_routes(client: &Client) -> String {
    Api::<ConfigMap>::namespaced(client.clone(), NS)
        .get("gw-routes")
        .await
        .ok()
        .and_then(|c| c.data)
        .and_then(|mut d| d.remove("routes"))
        .unwrap_or_default()
}

async fn label_namespace(client: &Client, name: &str, labels: serde_json::Value) {
    Api::<Namespace>::all(client.clone())
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": labels}})),
        )
        .await
        .unwrap();
}

/// Defect: a ToolRoute in any namespace could join any ToolGateway. The runtime now
/// offers `desired_state` only the routes the gateway's owner admits (annotation
/// `aigateway.agentic-layer.ai/allowed-routes`, default `Same`, a class-wide default on
/// the class), and refuses the others itself, for every ToolGateway class.
#[tokio::test]
async fn a_gateway_admits_routes_of_other_namespaces_only_with_its_owners_consent() {
    let server = cluster().await;
    let client = server.client();
    tool_class(&client, "tools", TOOLS).await;
    tool_gateway(&client, "gw", "tools").await;
    create_route(&client, &route(ROUTES_NS, "foreign", Some("gw"))).await;
    create_route(&client, &route(NS, "local", Some("gw"))).await;
    let running = start(tools_operator(client.clone()));

    // Same, by default: the foreign route is refused and never reaches the config.
    let foreign = wait_route(
        &client,
        ROUTES_NS,
        "foreign",
        "foreign refused",
        refused_not_allowed,
    )
    .await;
    assert_eq!(route_url(&foreign), None);
    wait_route(&client, NS, "local", "local admitted", admitted).await;
    assert_eq!(served_routes(&client).await, "default__local");

    // A selector of namespace labels: the routes namespace is admitted once labelled,
    // and (as in Gateway API) the gateway's own namespace only if it matches too.
    let selector = "{from: Selector, selector: {matchLabels: {tools: shared}}}";
    annotate_gateway(&client, "gw", ALLOWED_ROUTES, Some(selector)).await;
    wait_route(
        &client,
        NS,
        "local",
        "local refused under a selector",
        refused_not_allowed,
    )
    .await;
    let foreign = get_route(&client, ROUTES_NS, "foreign").await;
    assert!(refused_not_allowed(&foreign), "{:?}", accepted(&foreign));
    let (_, _, message) = accepted(&foreign).unwrap();
    assert!(
        !message.contains("tools") && !message.contains("Selector"),
        "the refusal quotes the gateway owner's annotation: {message}"
    );
    label_namespace(&client, ROUTES_NS, json!({"tools": "shared"})).await;
    wait_route(
        &client,
        ROUTES_NS,
        "foreign",
        "foreign admitted by label",
        admitted,
    )
    .await;
    eventually_within(Duration::from_secs(20), "foreign in the config", || async {
        (served_routes(&client).await == "routes__foreign").then_some(())
    })
    .await;
    label_namespace(&client, ROUTES_NS, json!({"tools": null})).await;
    wait_route(
        &client,
        ROUTES_NS,
        "foreign",
        "foreign refused once unlabelled",
        refused_not_allowed,
    )
    .await;

    // A value that cannot be read fails closed (Same) and says so on the gateway.
    annotate_gateway(
        &client,
        "gw",
        ALLOWED_ROUTES,
        Some("{from: Selector, selector: {matchLabel: {tools: shared}}}"),
    )
    .await;
    let gateway = eventually_within(
        Duration::from_secs(20),
        "the gateway reports the annotation",
        || async {
            let gateway = Api::<ToolGateway>::namespaced(client.clone(), NS)
                .get("gw")
                .await
                .ok()?;
            let conditions = gateway.status.clone()?.conditions;
            let resolved = find_condition(&conditions, "ResolvedRefs")?;
            (resolved.reason == "InvalidAllowedRoutes").then_some(resolved.message.clone())
        },
    )
    .await;
    assert!(
        gateway.contains(ALLOWED_ROUTES) && gateway.contains("of the gateway"),
        "{gateway}"
    );
    wait_route(&client, NS, "local", "local admitted again", admitted).await;
    assert!(refused_not_allowed(
        &get_route(&client, ROUTES_NS, "foreign").await
    ));

    // The class's annotation is the default of gateways without one.
    annotate_gateway(&client, "gw", ALLOWED_ROUTES, None).await;
    Api::<ToolGatewayClass>::all(client.clone())
        .patch(
            "tools",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"annotations": {ALLOWED_ROUTES: "All"}}})),
        )
        .await
        .unwrap();
    wait_route(
        &client,
        ROUTES_NS,
        "foreign",
        "foreign admitted by the class",
        admitted,
    )
    .await;
    wait_route(
        &client,
        NS,
        "local",
        "local admitted by the class",
        admitted,
    )
    .await;
    running.stop().await;
}

/// Defect: every change of any route removed `status.url` from every route of the
/// gateway until the rollout ended (agents reading it failed meanwhile), and cost a
/// status write per route twice. Now a published URL stays through rollouts, a new route's
/// URL waits for the pods that serve it, and an edit writes the edited route only.
#[tokio::test]
async fn a_published_url_stays_through_rollouts_and_an_edit_writes_its_route_only() {
    let server = cluster().await;
    let client = server.client();
    tool_class(&client, "tools", TOOLS).await;
    tool_gateway(&client, "gw", "tools").await;
    create_route(&client, &route(NS, "search", Some("gw"))).await;
    create_route(&client, &route(NS, "maps", Some("gw"))).await;
    let running = start(tools_operator(client.clone()));
    roll_out(&client, "gw").await;
    let search = wait_route(&client, NS, "search", "search ready", ready_with_url).await;
    wait_route(&client, NS, "maps", "maps ready", ready_with_url).await;
    let url = route_url(&search).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.reset_stats();

    // A new route: the pods roll; the others keep their URL, unwritten.
    create_route(&client, &route(NS, "weather", Some("gw"))).await;
    let weather = wait_route(
        &client,
        NS,
        "weather",
        "weather accepted, not served yet",
        |r| {
            condition_of(&route_conditions(r), "Ready")
                .is_some_and(|(_, reason)| reason == reasons::GATEWAY_NOT_READY)
        },
    )
    .await;
    assert_eq!(
        route_url(&weather),
        None,
        "a URL before the pods serve the route"
    );
    assert_eq!(
        route_url(&get_route(&client, NS, "search").await),
        Some(url.clone())
    );
    roll_out(&client, "gw").await;
    wait_route(&client, NS, "weather", "weather served", ready_with_url).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(route_writes(&server, NS, "search"), (0, 0));
    assert_eq!(route_writes(&server, NS, "maps"), (0, 0));
    server.reset_stats();

    // An edit: one status write (its observedGeneration), the URL stays throughout.
    Api::<ToolRoute>::namespaced(client.clone(), NS)
        .patch(
            "search",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"toolFilter": {"allow": ["lookup"]}}})),
        )
        .await
        .unwrap();
    let edited = wait_route(&client, NS, "search", "the edit observed", |r| {
        find_condition(&route_conditions(r), "Ready")
            .is_some_and(|c| c.observed_generation == r.metadata.generation)
    })
    .await;
    assert_eq!(route_url(&edited), Some(url.clone()));
    roll_out(&client, "gw").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        route_url(&get_route(&client, NS, "search").await),
        Some(url)
    );
    assert_eq!(route_writes(&server, NS, "search"), (1, 0));
    assert_eq!(route_writes(&server, NS, "maps"), (0, 0));
    assert_eq!(route_writes(&server, NS, "weather"), (0, 0));
    running.stop().await;
}

#[tokio::test]
async fn a_route_of_another_controllers_gateway_is_never_written() {
    let server = cluster().await;
    let client = server.client();
    tool_class(&client, "tools", TOOLS).await;
    tool_class(&client, "theirs", "example.com/theirs").await;
    tool_gateway(&client, "ours", "tools").await;
    tool_gateway(&client, "foreign", "theirs").await;
    create_route(&client, &route(NS, "mine", Some("ours"))).await;
    create_route(&client, &route(NS, "their-route", Some("foreign"))).await;
    // The other controller's status on its route, recorded as theirs.
    let api = Api::<ToolRoute>::namespaced(client.clone(), NS);
    api.patch(
        "their-route",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"annotations": {OWNER: "example.com/theirs"}}})),
    )
    .await
    .unwrap();
    api.patch_status(
        "their-route",
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": {
            "url": "http://foreign.default/mcp/x",
            "conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "theirs", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
        }})),
    )
    .await
    .unwrap();
    let before = get_route(&client, NS, "their-route").await;
    let running = start(tools_operator(client.clone()));
    roll_out(&client, "ours").await;
    wait_route(&client, NS, "mine", "our route ready", ready_with_url).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(route_writes(&server, NS, "their-route"), (0, 0));
    let after = get_route(&client, NS, "their-route").await;
    assert_eq!(after.status, before.status);
    assert_eq!(after.annotations(), before.annotations());
    running.stop().await;
}

#[tokio::test]
async fn a_detached_route_is_cleared_and_leaves_the_gateway_config() {
    let server = cluster().await;
    let client = server.client();
    tool_class(&client, "tools", TOOLS).await;
    tool_gateway(&client, "gw", "tools").await;
    create_route(&client, &route(NS, "search", Some("gw"))).await;
    let running = start(tools_operator(client.clone()));
    roll_out(&client, "gw").await;
    wait_route(&client, NS, "search", "route ready", ready_with_url).await;
    // Someone else's condition on the route must survive our clean-up.
    let api = Api::<ToolRoute>::namespaced(client.clone(), NS);
    let mut conditions = route_conditions(&get_route(&client, NS, "search").await);
    conditions.push(Condition {
        type_: "example.com/Audited".into(),
        status: "True".into(),
        reason: "Audited".into(),
        message: String::new(),
        observed_generation: None,
        last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::now(),
        ),
    });
    api.patch_status(
        "search",
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": {"conditions": conditions}})),
    )
    .await
    .unwrap();

    api.patch(
        "search",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"toolGatewayRef": null}})),
    )
    .await
    .unwrap();
    let cleared = wait_route(&client, NS, "search", "route cleared", |r| {
        find_condition(&route_conditions(r), "Ready").is_none()
            && r.annotations().get(OWNER).is_none()
    })
    .await;
    assert_eq!(route_url(&cleared), None);
    assert!(find_condition(&route_conditions(&cleared), "Accepted").is_none());
    assert!(find_condition(&route_conditions(&cleared), "example.com/Audited").is_some());
    // The gateway it left no longer serves it.
    eventually_within(
        Duration::from_secs(20),
        "route dropped from the config",
        || async {
            let config = Api::<ConfigMap>::namespaced(client.clone(), NS)
                .get("gw-routes")
                .await
                .ok()?;
            config.data?.get("routes")?.is_empty().then_some(())
        },
    )
    .await;
    running.stop().await;
}

#[tokio::test]
async fn attached_routes_are_offered_oldest_first() {
    let server = cluster().await;
    let client = server.client();
    tool_class(&client, "tools", TOOLS).await;
    tool_gateway(&client, "gw", "tools").await;
    create_route(&client, &route(NS, "zeta", Some("gw"))).await;
    // creationTimestamp has a resolution of one second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    create_route(&client, &route(NS, "alpha", Some("gw"))).await;
    let running = start(tools_operator(client.clone()));
    // MinimalTools lists the routes in the order the runtime offers them: the older
    // route first, although its name sorts last.
    let routes = eventually_within(Duration::from_secs(20), "both routes served", || async {
        let config = Api::<ConfigMap>::namespaced(client.clone(), NS)
            .get("gw-routes")
            .await
            .ok()?;
        let routes = config.data?.remove("routes")?;
        (routes.lines().count() == 2).then_some(routes)
    })
    .await;
    assert_eq!(routes, format!("{NS}__zeta\n{NS}__alpha"));
    running.stop().await;
}

#[tokio::test]
async fn routes_are_cleared_when_their_gateway_is_deleted_or_taken_by_another_controller() {
    let server = cluster().await;
    let client = server.client();
    tool_class(&client, "tools", TOOLS).await;
    tool_class(&client, "theirs", "example.com/theirs").await;
    tool_gateway(&client, "doomed", "tools").await;
    tool_gateway(&client, "moving", "tools").await;
    create_route(&client, &route(NS, "on-doomed", Some("doomed"))).await;
    create_route(&client, &route(NS, "on-moving", Some("moving"))).await;
    let running = start(tools_operator(client.clone()));
    roll_out(&client, "doomed").await;
    roll_out(&client, "moving").await;
    wait_route(&client, NS, "on-doomed", "route ready", ready_with_url).await;
    wait_route(&client, NS, "on-moving", "route ready", ready_with_url).await;

    let gateways = Api::<ToolGateway>::namespaced(client.clone(), NS);
    gateways
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    let cleared = wait_route(
        &client,
        NS,
        "on-doomed",
        "route of a deleted gateway cleared",
        |r| route_conditions(r).is_empty() && r.annotations().get(OWNER).is_none(),
    )
    .await;
    assert_eq!(route_url(&cleared), None);

    gateways
        .patch(
            "moving",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"toolGatewayClassName": "theirs"}})),
        )
        .await
        .unwrap();
    let cleared = wait_route(
        &client,
        NS,
        "on-moving",
        "route of a taken gateway cleared",
        |r| route_conditions(r).is_empty() && r.annotations().get(OWNER).is_none(),
    )
    .await;
    assert_eq!(route_url(&cleared), None);
    running.stop().await;
}

#[tokio::test]
async fn an_agent_gateway_runs_through_the_same_loop() {
    agent_gateway_through_the_loop(Cluster::Testkit(cluster().await), Rollout::ByTest).await;
}

#[test]
fn real_cluster_an_agent_gateway_runs_through_the_same_loop() {
    on_real_cluster(|cluster| agent_gateway_through_the_loop(cluster, Rollout::ByControllers));
}

/// Who makes Deployments available.
#[derive(PartialEq)]
enum Rollout {
    /// The test (the testkit here simulates no deployment controller), so the gateway
    /// is seen Programmed and not yet Ready first.
    ByTest,
    /// The real deployment controller and kwok.
    ByControllers,
}

async fn agent_gateway_through_the_loop(cluster: Cluster, rollout: Rollout) {
    let client = cluster.client();
    let mut class = AgentGatewayClass::new(
        "agents",
        AgentGatewayClassSpec {
            controller: AGENTS.into(),
        },
    );
    class.metadata.annotations = Some(
        [(
            "agentgatewayclass.kubernetes.io/is-default-class".to_owned(),
            "true".to_owned(),
        )]
        .into(),
    );
    Api::<AgentGatewayClass>::all(client.clone())
        .create(&PostParams::default(), &class)
        .await
        .unwrap();
    // No class name: the default class applies.
    let gateway = AgentGateway::new(
        "edge",
        AgentGatewaySpec {
            replicas: Some(2),
            ..Default::default()
        },
    );
    let gateways = Api::<AgentGateway>::namespaced(client.clone(), NS);
    gateways
        .create(&PostParams::default(), &gateway)
        .await
        .unwrap();
    let running = start(Operator::new(client.clone()).gateway(MinimalAgents));

    let conditions_of = |gateway: &AgentGateway| {
        gateway
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default()
    };
    let pending = eventually_within(Duration::from_secs(20), "gateway programmed", || async {
        let gateway = gateways.get("edge").await.ok()?;
        condition_of(&conditions_of(&gateway), "Programmed")
            .is_some_and(|(s, _)| s == "True")
            .then_some(gateway)
    })
    .await;
    if rollout == Rollout::ByTest {
        assert_eq!(
            condition_of(&conditions_of(&pending), "Ready").map(|(s, _)| s),
            Some("False".into())
        );
    }
    let deployment = Api::<Deployment>::namespaced(client.clone(), NS)
        .get("edge")
        .await
        .unwrap();
    assert_eq!(deployment.spec.unwrap().replicas, Some(2));
    assert_eq!(
        deployment.metadata.owner_references.unwrap()[0].kind,
        "AgentGateway"
    );

    if rollout == Rollout::ByTest {
        roll_out(&client, "edge").await;
    }
    let ready = eventually_within(Duration::from_secs(60), "gateway ready", || async {
        let gateway = gateways.get("edge").await.ok()?;
        condition_of(&conditions_of(&gateway), "Ready")
            .is_some_and(|(s, _)| s == "True")
            .then_some(gateway)
    })
    .await;
    let conditions = conditions_of(&ready);
    for type_ in ["Accepted", "ResolvedRefs", "Programmed", "Ready"] {
        let condition = find_condition(&conditions, type_).unwrap();
        assert_eq!(condition.status, "True", "{type_}");
        assert_eq!(condition.observed_generation, ready.metadata.generation);
    }
    let class = eventually_within(Duration::from_secs(20), "class accepted", || async {
        let class = Api::<AgentGatewayClass>::all(client.clone())
            .get("agents")
            .await
            .ok()?;
        let accepted = condition_of(&class.status.clone()?.conditions, "Accepted")?;
        (accepted.0 == "True").then_some(class)
    })
    .await;
    assert!(
        class
            .finalizers()
            .iter()
            .any(|f| f.contains("gateway-exists"))
    );
    running.stop().await;
}

#[tokio::test]
async fn one_operator_serves_ai_gateways_and_tool_gateways_behind_one_admin_server() {
    let server = cluster().await;
    let client = server.client();
    fixtures::create_class(&client, "minimal", fixtures::CONTROLLER, true).await;
    fixtures::create_gateway(&client, &fixtures::gateway("models", None, &["gpt-4o"])).await;
    tool_class(&client, "tools", TOOLS).await;
    tool_gateway(&client, "tools", "tools").await;
    create_route(&client, &route(NS, "search", Some("tools"))).await;

    let operator = fixtures::operator(client.clone(), fixtures::Minimal::default())
        .gateway(MinimalTools)
        .admin("127.0.0.1:0".parse().unwrap());
    let running = operator.start().await.expect("the operator starts");

    roll_out(&client, "models").await;
    roll_out(&client, "tools").await;
    fixtures::wait_condition(&client, "models", "Ready", "True").await;
    wait_route(&client, NS, "search", "route ready", ready_with_url).await;
    let addr = running.admin_addr().expect("admin server bound");
    assert_eq!(fixtures::http_get(addr, "/readyz").await.0, 200);
    let (_, metrics) = fixtures::http_get(addr, "/metrics").await;
    for kind in ["AiGateway", "ToolGateway"] {
        let ready =
            format!(r#"aigateway_gateways{{kind="{kind}",condition="Ready",status="True"}} 1"#);
        assert!(metrics.contains(&ready), "{ready} missing from:\n{metrics}");
    }
    running.stop().await.expect("the operator stops cleanly");
}

#[tokio::test]
async fn two_implementations_of_one_kind_are_refused_before_anything_runs() {
    let server = cluster().await;
    let error = Operator::new(server.client())
        .gateway(MinimalTools)
        .gateway(MinimalTools)
        .run()
        .await
        .expect_err("a second ToolGateway implementation");
    assert_eq!(
        error.to_string(),
        "two implementations serve ToolGateway: call Operator::gateway(..) once per gateway kind"
    );
}

/// Declares Secrets twice: all of them, and the one named `keys`.
struct SecretsTwice;

#[async_trait::async_trait]
impl GatewayImplementation for SecretsTwice {
    fn controller_name(&self) -> &str {
        "example.com/secrets-twice"
    }

    fn related(&self) -> Vec<aigateway_runtime::RelatedWatch> {
        vec![
            aigateway_runtime::RelatedWatch::new::<k8s_openapi::api::core::v1::Secret>(),
            aigateway_runtime::RelatedWatch::new::<k8s_openapi::api::core::v1::Secret>()
                .named("keys"),
        ]
    }

    async fn desired_state(
        &self,
        _gateway: &aigateway_api::AiGateway,
        _ctx: &Context,
    ) -> Result<DesiredState, ImplementationError> {
        Ok(DesiredState::new())
    }
}

/// Two declarations of one related kind would start two watches (and need the RBAC of
/// the broader one) while lookups used only one: refused before anything runs.
#[tokio::test]
async fn a_related_kind_declared_twice_is_refused_before_anything_runs() {
    let server = cluster().await;
    server.reset_stats();
    let error = Operator::new(server.client())
        .gateway(SecretsTwice)
        .run()
        .await
        .expect_err("Secret declared twice");
    assert_eq!(
        error.to_string(),
        "the implementation of AiGateway declares related kind Secret twice: declare each kind once in related() (one RelatedWatch, named or not)"
    );
    assert_eq!(server.stats().writes(), 0);
}
