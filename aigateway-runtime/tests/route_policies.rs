//! Policies that target objects attached to a gateway (ToolRoutes), not the gateway:
//! offered to the pass of the gateway the route is attached to, re-running only that
//! gateway when they change, with Gateway API's status per route (`Accepted`,
//! `Conflicted`, a route the gateway does not serve, a missing route that appears).

mod fixtures;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aigateway_api::policy::{PolicyStatus, PolicyTargetReference, TargetedPolicy};
use aigateway_api::{
    ExternalUpstream, ToolGateway, ToolGatewayClass, ToolGatewayClassSpec, ToolGatewaySpec,
    ToolRoute, ToolRouteSpec, ToolRouteUpstream,
};
use aigateway_runtime::attached::{PolicyDecision, PolicyKind};
use aigateway_runtime::{
    AttachedDecision, AttachedKind, Context, DesiredState, GatewayImplementation,
    ImplementationError, Operator, Readiness, ToolGatewayKind,
};
use fixtures::{Cluster, eventually_within, on_real_cluster, start};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, CustomResource, CustomResourceExt, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

const CONTROLLER: &str = "example.com/route-timeouts";
const NS: &str = "default";
const OTHER_NS: &str = "route-policies-elsewhere";
const GROUP: &str = "runtime.agentic-layer.ai";

/// A timeout for the routes a policy names.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "policies.example.com",
    version = "v1",
    kind = "RouteTimeoutPolicy",
    namespaced,
    status = "PolicyStatus"
)]
#[serde(rename_all = "camelCase")]
struct RouteTimeoutPolicySpec {
    target_refs: Vec<PolicyTargetReference>,
    seconds: u32,
}

impl TargetedPolicy for RouteTimeoutPolicy {
    fn target_refs(&self) -> &[PolicyTargetReference] {
        &self.spec.target_refs
    }
}

/// One ConfigMap per ToolGateway: each served route, with the timeout of the policy in
/// effect on it. Refuses a policy of 0 seconds. Counts its passes per gateway.
#[derive(Default)]
struct RouteTimeouts {
    passes: Arc<Mutex<HashMap<String, u32>>>,
}

#[async_trait::async_trait]
impl GatewayImplementation<ToolGatewayKind> for RouteTimeouts {
    fn controller_name(&self) -> &str {
        CONTROLLER
    }

    fn attached(&self) -> Option<AttachedKind<ToolGatewayKind>> {
        Some(ToolGatewayKind::routes())
    }

    fn policies(&self) -> Vec<PolicyKind<ToolGatewayKind>> {
        vec![PolicyKind::of::<RouteTimeoutPolicy>()]
    }

    fn readiness(
        &self,
        _gateway: &ToolGateway,
        _observed: &aigateway_runtime::Observed,
    ) -> Readiness {
        Readiness::Ready("configured".into())
    }

    async fn desired_state(
        &self,
        gateway: &ToolGateway,
        ctx: &Context,
    ) -> Result<DesiredState, ImplementationError> {
        *self
            .passes
            .lock()
            .unwrap()
            .entry(gateway.name_any())
            .or_default() += 1;
        let mut desired = DesiredState::new();
        let mut data = BTreeMap::new();
        for route in ctx.attached::<ToolRoute>(gateway)? {
            let key = format!("{}.{}", route.namespace().unwrap(), route.name_any());
            let mut timeout = "none".to_owned();
            for policy in ctx.policies::<RouteTimeoutPolicy>(&route)? {
                if policy.spec.seconds == 0 {
                    desired = desired.with_policy(
                        &policy,
                        PolicyDecision::invalid("seconds must be at least 1"),
                    );
                } else {
                    timeout = policy.spec.seconds.to_string();
                }
            }
            data.insert(key, timeout);
            desired = desired.with_attached(&route, AttachedDecision::serve("http://route"));
        }
        let routes = ConfigMap {
            metadata: ObjectMeta {
                name: Some(format!("{}-routes", gateway.name_any())),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        };
        Ok(desired.with(&routes))
    }
}

async fn install_policy_crd(cluster: &Cluster) {
    cluster.install_crd(RouteTimeoutPolicy::crd()).await;
}

async fn create_gateway(client: &Client, name: &str) {
    let gateway = ToolGateway::new(
        name,
        ToolGatewaySpec {
            tool_gateway_class_name: Some("route-timeouts".into()),
            ..Default::default()
        },
    );
    Api::<ToolGateway>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &gateway)
        .await
        .unwrap();
}

async fn create_route(client: &Client, namespace: &str, name: &str, gateway: &str) {
    let mut route = ToolRoute::new(
        name,
        ToolRouteSpec {
            tool_gateway_ref: Some(ObjectReference {
                name: Some(gateway.into()),
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
    Api::<ToolRoute>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &route)
        .await
        .unwrap();
}

fn route_ref(name: &str) -> PolicyTargetReference {
    PolicyTargetReference::new(GROUP, "ToolRoute", name)
}

async fn create_policy(
    client: &Client,
    namespace: &str,
    name: &str,
    refs: Vec<PolicyTargetReference>,
    seconds: u32,
) {
    let mut policy = RouteTimeoutPolicy::new(
        name,
        RouteTimeoutPolicySpec {
            target_refs: refs,
            seconds,
        },
    );
    policy.metadata.namespace = Some(namespace.into());
    Api::<RouteTimeoutPolicy>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &policy)
        .await
        .expect("create policy");
}

/// `(status, reason, observedGeneration)` of our `Accepted` on `policy`'s entry for
/// ToolRoute `route`.
async fn accepted(
    client: &Client,
    namespace: &str,
    policy: &str,
    route: &str,
) -> Option<(String, String, Option<i64>)> {
    let policy = Api::<RouteTimeoutPolicy>::namespaced(client.clone(), namespace)
        .get(policy)
        .await
        .ok()?;
    let entry = (policy.status?.ancestors.into_iter()).find(|e| {
        e.controller_name == CONTROLLER
            && e.ancestor_ref.name == route
            && e.ancestor_ref.kind.as_deref() == Some("ToolRoute")
    })?;
    let condition = entry
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Accepted")?;
    Some((
        condition.status,
        condition.reason,
        condition.observed_generation,
    ))
}

async fn wait_accepted(
    client: &Client,
    namespace: &str,
    policy: &str,
    route: &str,
    status: &str,
    reason: &str,
) {
    eventually_within(
        Duration::from_secs(60),
        &format!("policy {policy} on route {route}: Accepted={status} ({reason})"),
        || async {
            let (s, r, _) = accepted(client, namespace, policy, route).await?;
            (s == status && r == reason).then_some(())
        },
    )
    .await;
}

async fn routes_of(client: &Client, gateway: &str) -> Option<BTreeMap<String, String>> {
    Api::<ConfigMap>::namespaced(client.clone(), NS)
        .get_opt(&format!("{gateway}-routes"))
        .await
        .ok()??
        .data
}

async fn wait_timeout(client: &Client, gateway: &str, route: &str, value: &str) {
    eventually_within(
        Duration::from_secs(60),
        &format!("gateway {gateway}: route {route} with timeout {value}"),
        || async {
            let routes = routes_of(client, gateway).await?;
            (routes.get(route).map(String::as_str) == Some(value)).then_some(())
        },
    )
    .await;
}

async fn route_policies_through_the_loop(cluster: Cluster) {
    let client = cluster.client();
    install_policy_crd(&cluster).await;
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(OTHER_NS.into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .expect("create namespace");
    Api::<ToolGatewayClass>::all(client.clone())
        .create(
            &PostParams::default(),
            &ToolGatewayClass::new(
                "route-timeouts",
                ToolGatewayClassSpec {
                    controller: CONTROLLER.into(),
                },
            ),
        )
        .await
        .unwrap();
    create_gateway(&client, "gw-a").await;
    create_gateway(&client, "gw-b").await;
    create_route(&client, NS, "search", "gw-a").await;
    create_route(&client, NS, "files", "gw-b").await;
    // A route from a namespace gw-a does not admit (its consent is the default, Same).
    create_route(&client, OTHER_NS, "outsider", "gw-a").await;
    create_policy(&client, NS, "slow-search", vec![route_ref("search")], 30).await;
    create_policy(
        &client,
        OTHER_NS,
        "outsider",
        vec![route_ref("outsider")],
        5,
    )
    .await;
    // A policy naming a route that does not exist yet.
    create_policy(&client, NS, "early", vec![route_ref("later")], 7).await;

    let implementation = RouteTimeouts::default();
    let passes = implementation.passes.clone();
    let running = start(Operator::new(client.clone()).gateway(implementation));

    wait_timeout(&client, "gw-a", "default.search", "30").await;
    wait_accepted(&client, NS, "slow-search", "search", "True", "Accepted").await;
    let (_, _, observed) = accepted(&client, NS, "slow-search", "search")
        .await
        .unwrap();
    assert_eq!(observed, Some(1), "observedGeneration is the policy's");
    wait_accepted(
        &client,
        OTHER_NS,
        "outsider",
        "outsider",
        "False",
        "NotAllowedByGateway",
    )
    .await;
    wait_accepted(&client, NS, "early", "later", "False", "TargetNotFound").await;

    // The route appears: the policy waiting for it is in effect, without a change of
    // its own.
    create_route(&client, NS, "later", "gw-a").await;
    wait_timeout(&client, "gw-a", "default.later", "7").await;
    wait_accepted(&client, NS, "early", "later", "True", "Accepted").await;

    // A change of the policy re-runs the gateway of its route, and no other.
    tokio::time::sleep(Duration::from_secs(1)).await;
    passes.lock().unwrap().clear();
    let policies = Api::<RouteTimeoutPolicy>::namespaced(client.clone(), NS);
    policies
        .patch(
            "slow-search",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"seconds": 45}})),
        )
        .await
        .unwrap();
    wait_timeout(&client, "gw-a", "default.search", "45").await;
    eventually_within(Duration::from_secs(60), "observedGeneration 2", || async {
        let (_, _, observed) = accepted(&client, NS, "slow-search", "search").await?;
        (observed == Some(2)).then_some(())
    })
    .await;
    assert_eq!(
        passes.lock().unwrap().get("gw-b"),
        None,
        "a policy on a route of gw-a never runs gw-b"
    );

    // A newer policy on the same route: Conflicted, and the older stays in effect.
    create_policy(&client, NS, "newer", vec![route_ref("search")], 99).await;
    wait_accepted(&client, NS, "newer", "search", "False", "Conflicted").await;
    assert_eq!(
        routes_of(&client, "gw-a").await.unwrap()["default.search"],
        "45"
    );

    // Refused by the implementation: Invalid, and the route runs without it.
    policies
        .patch(
            "slow-search",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"seconds": 0}})),
        )
        .await
        .unwrap();
    wait_accepted(&client, NS, "slow-search", "search", "False", "Invalid").await;

    // A policy naming a route of another namespace is refused, and reaches nothing.
    create_policy(
        &client,
        NS,
        "reaching",
        vec![PolicyTargetReference {
            namespace: Some(OTHER_NS.into()),
            ..route_ref("outsider")
        }],
        1,
    )
    .await;
    eventually_within(
        Duration::from_secs(60),
        "the cross-namespace policy refused",
        || async {
            let policy = policies.get("reaching").await.ok()?;
            let entry = policy.status?.ancestors.into_iter().next()?;
            let condition = entry
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Accepted")?;
            (condition.status == "False").then_some(())
        },
    )
    .await;

    // The route goes: its policy says so.
    Api::<ToolRoute>::namespaced(client.clone(), NS)
        .delete("later", &DeleteParams::default())
        .await
        .unwrap();
    wait_accepted(&client, NS, "early", "later", "False", "TargetNotFound").await;

    // Converged: nothing is written.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let writes = cluster.writes_during(Duration::from_secs(3)).await;
    assert!(writes.is_empty(), "the converged state wrote: {writes:?}");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_attach_to_routes_of_a_gateway() {
    route_policies_through_the_loop(Cluster::testkit().await).await;
}

#[test]
fn real_cluster_policies_attach_to_routes_of_a_gateway() {
    on_real_cluster(route_policies_through_the_loop);
}
