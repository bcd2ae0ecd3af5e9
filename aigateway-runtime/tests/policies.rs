//! Policy attachment through the loop, for any class: a minimal class with one policy
//! kind shows the policy in effect on its target, Gateway API's precedence (the older
//! wins, the newer says `Conflicted`), a reference to another namespace refused, a
//! missing target, the implementation's own refusal, `observedGeneration`, that a policy
//! change re-runs only the gateways it names (counted), that a policy naming another
//! controller's gateway gets no entry of ours, and that the converged state writes
//! nothing. The same scenario on the testkit and on the real control plane.

mod fixtures;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aigateway_api::policy::{PolicyStatus, PolicyTargetReference, TargetedPolicy};
use aigateway_api::{AiGateway, AiGatewaySpec, AiModel};
use aigateway_runtime::attached::{PolicyDecision, PolicyKind};
use aigateway_runtime::{
    AiGatewayKind, Context, DesiredState, GatewayImplementation, ImplementationError, Operator,
    Readiness,
};
use fixtures::{Cluster, create_class, eventually_within, on_real_cluster, start};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, CustomResource, CustomResourceExt, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

const CONTROLLER: &str = "example.com/timeouts";
const OTHER_CONTROLLER: &str = "example.com/someone-else";
const NS: &str = "default";
const GROUP: &str = "runtime.agentic-layer.ai";

/// The test's policy kind: a timeout for a gateway, or for one model of it
/// (`sectionName`).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "policies.example.com",
    version = "v1",
    kind = "TimeoutPolicy",
    namespaced,
    status = "PolicyStatus"
)]
#[serde(rename_all = "camelCase")]
struct TimeoutPolicySpec {
    target_refs: Vec<PolicyTargetReference>,
    seconds: u32,
}

impl TargetedPolicy for TimeoutPolicy {
    fn target_refs(&self) -> &[PolicyTargetReference] {
        &self.spec.target_refs
    }
}

/// Writes one ConfigMap per gateway with the timeouts of the policies in effect:
/// `timeout` for the gateway, `timeout.<model>` per model. Refuses a policy of 0 seconds
/// and one naming a model the gateway lacks. Counts its passes per gateway.
#[derive(Default)]
struct Timeouts {
    passes: Arc<Mutex<HashMap<String, u32>>>,
}

#[async_trait::async_trait]
impl GatewayImplementation for Timeouts {
    fn controller_name(&self) -> &str {
        CONTROLLER
    }

    fn policies(&self) -> Vec<PolicyKind<AiGatewayKind>> {
        vec![PolicyKind::of::<TimeoutPolicy>()]
    }

    fn readiness(
        &self,
        _gateway: &AiGateway,
        _observed: &aigateway_runtime::Observed,
    ) -> Readiness {
        Readiness::Ready("configured".into())
    }

    async fn desired_state(
        &self,
        gateway: &AiGateway,
        ctx: &Context,
    ) -> Result<DesiredState, ImplementationError> {
        *self
            .passes
            .lock()
            .unwrap()
            .entry(gateway.name_any())
            .or_default() += 1;
        let mut data = BTreeMap::new();
        let mut desired = DesiredState::new();
        for policy in ctx.policies::<TimeoutPolicy>(gateway)? {
            if policy.spec.seconds == 0 {
                desired = desired.with_policy(
                    &policy,
                    PolicyDecision::invalid("seconds must be at least 1"),
                );
                continue;
            }
            for reference in &policy.spec.target_refs {
                if reference.name != gateway.name_any() {
                    continue;
                }
                match &reference.section_name {
                    None => {
                        data.insert("timeout".to_owned(), policy.spec.seconds.to_string());
                    }
                    Some(model) if gateway.spec.ai_models.iter().any(|m| &m.name == model) => {
                        data.insert(format!("timeout.{model}"), policy.spec.seconds.to_string());
                    }
                    Some(model) => {
                        desired = desired.with_policy(
                            &policy,
                            PolicyDecision::refuse(
                                aigateway_api::conditions::Reason::from_static("TargetNotFound"),
                                format!("the gateway has no model {model}"),
                            ),
                        );
                    }
                }
            }
        }
        let settings = ConfigMap {
            metadata: ObjectMeta {
                name: Some(format!("{}-timeouts", gateway.name_any())),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        };
        Ok(desired.with(&settings))
    }
}

async fn install_policy_crd(cluster: &Cluster) {
    cluster.install_crd(TimeoutPolicy::crd()).await;
}

fn target(name: &str) -> PolicyTargetReference {
    PolicyTargetReference::new(GROUP, "AiGateway", name)
}

async fn create_policy(
    client: &Client,
    name: &str,
    refs: Vec<PolicyTargetReference>,
    seconds: u32,
) {
    let mut policy = TimeoutPolicy::new(
        name,
        TimeoutPolicySpec {
            target_refs: refs,
            seconds,
        },
    );
    policy.metadata.namespace = Some(NS.into());
    Api::<TimeoutPolicy>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &policy)
        .await
        .expect("create policy");
}

async fn create_gateway(client: &Client, name: &str, class: &str) {
    let mut gateway = AiGateway::new(
        name,
        AiGatewaySpec {
            ai_gateway_class_name: Some(class.into()),
            ai_models: vec![AiModel::new("openai", "gpt")],
            ..Default::default()
        },
    );
    gateway.metadata.namespace = Some(NS.into());
    Api::<AiGateway>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &gateway)
        .await
        .expect("create gateway");
}

/// The Accepted condition of our entry for `gateway` on `policy`: status, reason,
/// message, observedGeneration.
type Accepted = (String, String, String, Option<i64>);

async fn accepted(client: &Client, policy: &str, gateway: &str) -> Option<Accepted> {
    let policy = Api::<TimeoutPolicy>::namespaced(client.clone(), NS)
        .get_opt(policy)
        .await
        .ok()??;
    let entry = (policy.status?.ancestors.into_iter())
        .find(|e| e.controller_name == CONTROLLER && e.ancestor_ref.name == gateway)?;
    let condition = entry
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Accepted")?;
    Some((
        condition.status,
        condition.reason,
        condition.message,
        condition.observed_generation,
    ))
}

async fn wait_accepted(
    client: &Client,
    policy: &str,
    gateway: &str,
    want: impl Fn(&Accepted) -> bool,
    what: &str,
) -> Accepted {
    eventually_within(
        Duration::from_secs(60),
        &format!("policy {policy} on {gateway}: {what}"),
        || async { accepted(client, policy, gateway).await.filter(|a| want(a)) },
    )
    .await
}

async fn timeouts(client: &Client, gateway: &str) -> Option<BTreeMap<String, String>> {
    Api::<ConfigMap>::namespaced(client.clone(), NS)
        .get_opt(&format!("{gateway}-timeouts"))
        .await
        .ok()?
        .map(|cm| cm.data.unwrap_or_default())
}

async fn wait_timeout(client: &Client, gateway: &str, key: &str, value: Option<&str>) {
    eventually_within(
        Duration::from_secs(60),
        &format!("{gateway}: {key}={value:?}"),
        || async {
            let data = timeouts(client, gateway).await?;
            (data.get(key).map(String::as_str) == value).then_some(())
        },
    )
    .await
}

async fn policies_through_the_loop(cluster: Cluster) {
    let client = cluster.client();
    install_policy_crd(&cluster).await;
    create_class(&client, "timeouts", CONTROLLER, false).await;
    create_class(&client, "others", OTHER_CONTROLLER, false).await;
    for name in ["gw-a", "gw-b", "gw-c"] {
        create_gateway(&client, name, "timeouts").await;
    }
    create_gateway(&client, "gw-theirs", "others").await;
    let implementation = Timeouts::default();
    let passes = implementation.passes.clone();
    let running = start(Operator::new(client.clone()).gateway(implementation));
    for name in ["gw-a", "gw-b", "gw-c"] {
        wait_timeout(&client, name, "timeout", None).await;
    }

    // In effect: the gateway's config follows it, its status says so with the
    // generation it saw.
    create_policy(&client, "old", vec![target("gw-a")], 30).await;
    wait_timeout(&client, "gw-a", "timeout", Some("30")).await;
    let (_, reason, message, generation) =
        wait_accepted(&client, "old", "gw-a", |a| a.0 == "True", "Accepted").await;
    assert_eq!(
        (reason.as_str(), generation),
        ("Accepted", Some(1)),
        "{message}"
    );

    // A change re-runs the gateways the policy names, and no other.
    tokio::time::sleep(Duration::from_millis(500)).await;
    passes.lock().unwrap().clear();
    Api::<TimeoutPolicy>::namespaced(client.clone(), NS)
        .patch(
            "old",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"seconds": 45}})),
        )
        .await
        .unwrap();
    wait_timeout(&client, "gw-a", "timeout", Some("45")).await;
    wait_accepted(
        &client,
        "old",
        "gw-a",
        |a| a.3 == Some(2),
        "observedGeneration 2",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    {
        let passes = passes.lock().unwrap();
        assert!(passes.get("gw-a").copied().unwrap_or(0) >= 1, "{passes:?}");
        assert_eq!(passes.get("gw-b"), None, "{passes:?}");
        assert_eq!(passes.get("gw-c"), None, "{passes:?}");
    }

    // A newer policy on the same target: Conflicted, naming the older; no effect.
    create_policy(&client, "new", vec![target("gw-a")], 99).await;
    let (_, reason, message, _) =
        wait_accepted(&client, "new", "gw-a", |a| a.0 == "False", "Conflicted").await;
    assert_eq!(reason, "Conflicted");
    assert!(
        message.contains("TimeoutPolicy default/old is older"),
        "{message}"
    );

    // Another namespace's gateway is refused visibly and changes nothing; a missing
    // target says so; the implementation's refusal reaches the status.
    let mut foreign = target("gw-b");
    foreign.namespace = Some("kube-system".into());
    create_policy(&client, "foreign", vec![foreign], 5).await;
    create_policy(&client, "missing", vec![target("gw-nowhere")], 5).await;
    create_policy(&client, "zero", vec![target("gw-c")], 0).await;
    let mut model = target("gw-b");
    model.section_name = Some("claude".into());
    create_policy(&client, "no-model", vec![model], 7).await;
    let (_, reason, message, _) = eventually_within(
        Duration::from_secs(60),
        "policy foreign refused",
        || async {
            let policy = Api::<TimeoutPolicy>::namespaced(client.clone(), NS)
                .get("foreign")
                .await
                .ok()?;
            let entry = policy
                .status?
                .ancestors
                .into_iter()
                .find(|e| e.controller_name == CONTROLLER)?;
            assert_eq!(entry.ancestor_ref.namespace.as_deref(), Some("kube-system"));
            let c = entry
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Accepted")?;
            Some((c.status, c.reason, c.message, c.observed_generation))
        },
    )
    .await;
    assert_eq!(reason, "Invalid");
    assert!(message.contains("own namespace only"), "{message}");
    let (_, reason, _, _) = wait_accepted(
        &client,
        "missing",
        "gw-nowhere",
        |a| a.0 == "False",
        "TargetNotFound",
    )
    .await;
    assert_eq!(reason, "TargetNotFound");
    let (_, reason, message, _) =
        wait_accepted(&client, "zero", "gw-c", |a| a.0 == "False", "Invalid").await;
    assert_eq!(
        (reason.as_str(), message.as_str()),
        ("Invalid", "seconds must be at least 1")
    );
    let (_, reason, message, _) =
        wait_accepted(&client, "no-model", "gw-b", |a| a.0 == "False", "refused").await;
    assert_eq!(reason, "TargetNotFound", "{message}");
    assert_eq!(
        timeouts(&client, "gw-b").await.unwrap(),
        BTreeMap::new(),
        "nothing reached gw-b"
    );
    assert_eq!(
        timeouts(&client, "gw-c").await.unwrap(),
        BTreeMap::new(),
        "nothing reached gw-c"
    );

    // Another controller's gateway: no entry of ours, beside ours on gw-c.
    create_policy(
        &client,
        "both",
        vec![target("gw-theirs"), target("gw-c")],
        0,
    )
    .await;
    wait_accepted(
        &client,
        "both",
        "gw-c",
        |a| a.0 == "False",
        "refused on gw-c",
    )
    .await;
    assert_eq!(accepted(&client, "both", "gw-theirs").await, None);

    // The older goes: the newer takes effect.
    Api::<TimeoutPolicy>::namespaced(client.clone(), NS)
        .delete("old", &DeleteParams::default())
        .await
        .unwrap();
    wait_timeout(&client, "gw-a", "timeout", Some("99")).await;
    wait_accepted(
        &client,
        "new",
        "gw-a",
        |a| a.0 == "True",
        "Accepted once old is gone",
    )
    .await;

    // Its gateway goes: the policy says its target is missing.
    Api::<AiGateway>::namespaced(client.clone(), NS)
        .delete("gw-c", &DeleteParams::default())
        .await
        .unwrap();
    wait_accepted(
        &client,
        "zero",
        "gw-c",
        |a| a.1 == "TargetNotFound",
        "TargetNotFound once gw-c is gone",
    )
    .await;

    // Another controller takes the gateway: our entry goes, and the gateway runs
    // without the policy (another controller's business now).
    Api::<AiGateway>::namespaced(client.clone(), NS)
        .patch(
            "gw-a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"aiGatewayClassName": "others"}})),
        )
        .await
        .unwrap();
    eventually_within(
        Duration::from_secs(60),
        "our entry on policy new removed once gw-a is another controller's",
        || async {
            let policy = Api::<TimeoutPolicy>::namespaced(client.clone(), NS)
                .get("new")
                .await
                .ok()?;
            let ours = (policy.status.unwrap_or_default().ancestors.iter())
                .any(|e| e.controller_name == CONTROLLER);
            (!ours).then_some(())
        },
    )
    .await;

    // Converged: nothing is written.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let writes = cluster.writes_during(Duration::from_secs(3)).await;
    assert!(writes.is_empty(), "the converged state wrote: {writes:?}");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_attach_to_gateways_with_precedence_and_refusals() {
    policies_through_the_loop(Cluster::testkit().await).await;
}

#[test]
fn real_cluster_policies_attach_to_gateways_with_precedence_and_refusals() {
    on_real_cluster(policies_through_the_loop);
}

/// A status the API server refuses as invalid (422) is not tried again until the
/// policy's owner changes it; a conflict (409) is retried at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_status_write_waits_for_the_owner_and_a_conflict_is_retried() {
    let cluster = Cluster::testkit().await;
    let Cluster::Testkit(server) = &cluster else {
        unreachable!("a testkit cluster")
    };
    let client = cluster.client();
    install_policy_crd(&cluster).await;
    create_class(&client, "timeouts", CONTROLLER, false).await;
    create_gateway(&client, "gw", "timeouts").await;
    let running = start(Operator::new(client.clone()).gateway(Timeouts::default()));
    wait_timeout(&client, "gw", "timeout", None).await;
    let status_writes = |name: &'static str| {
        (server.requests().into_iter())
            .filter(|r| {
                r.resource == "timeoutpolicies"
                    && r.subresource == "status"
                    && r.verb == "patch"
                    && r.name == name
            })
            .count()
    };
    let matcher = |name: &str| {
        aigateway_testkit::RequestMatch::any()
            .verb("patch")
            .resource("timeoutpolicies")
            .subresource("status")
            .name(name)
    };

    server.faults().fail_next(1_000, matcher("refused"), 422);
    create_policy(&client, "refused", vec![target("gw")], 5).await;
    eventually_within(
        Duration::from_secs(30),
        "the first status write",
        || async { (status_writes("refused") == 1).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(status_writes("refused"), 1, "a 422 is not retried");
    // The owner changes it: one more try (refused again).
    Api::<TimeoutPolicy>::namespaced(client.clone(), NS)
        .patch(
            "refused",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"seconds": 6}})),
        )
        .await
        .unwrap();
    eventually_within(
        Duration::from_secs(30),
        "a second try after the change",
        || async { (status_writes("refused") == 2).then_some(()) },
    )
    .await;

    server.faults().fail_next(2, matcher("contended"), 409);
    create_policy(&client, "contended", vec![target("gw")], 5).await;
    wait_accepted(
        &client,
        "contended",
        "gw",
        // `refused` is older on the same gateway.
        |a| a.1 == "Conflicted",
        "Conflicted, written after two conflicts",
    )
    .await;
    assert_eq!(
        status_writes("contended"),
        3,
        "two conflicts, then the write"
    );
    running.stop().await;
}

/// A testkit without the policy CRD, gateway `gw` of our class, and the operator serving
/// it.
async fn one_gateway_without_the_policy_crd() -> (Cluster, Client, fixtures::Running) {
    let cluster = Cluster::testkit().await;
    let client = cluster.client();
    create_class(&client, "timeouts", CONTROLLER, false).await;
    create_gateway(&client, "gw", "timeouts").await;
    let running = start(Operator::new(client.clone()).gateway(Timeouts::default()));
    wait_timeout(&client, "gw", "timeout", None).await;
    (cluster, client, running)
}

/// An upgrade that has not applied the policy kind's CRD yet still serves gateways; the
/// kind is picked up once the CRD appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_policy_crd_holds_nothing_back_and_is_picked_up_when_installed() {
    let (cluster, client, running) = one_gateway_without_the_policy_crd().await;
    install_policy_crd(&cluster).await;
    create_policy(&client, "late", vec![target("gw")], 12).await;
    // The list is retried with a growing delay while the kind is missing (at most 20 s).
    eventually_within(
        Duration::from_secs(60),
        "the late policy in effect",
        || async {
            let data = timeouts(&client, "gw").await?;
            (data.get("timeout").map(String::as_str) == Some("12")).then_some(())
        },
    )
    .await;
    wait_accepted(&client, "late", "gw", |a| a.0 == "True", "Accepted").await;
    running.stop().await;
}

/// An API server that answers 404 for the policy kind for a while after it was listed
/// (one restarting registers CRDs late) does not make the gateways lose their policies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_404_after_the_first_list_keeps_the_policies() {
    let (cluster, client, running) = one_gateway_without_the_policy_crd().await;
    install_policy_crd(&cluster).await;
    create_policy(&client, "kept", vec![target("gw")], 12).await;
    wait_accepted(&client, "kept", "gw", |a| a.0 == "True", "Accepted").await;
    wait_timeout(&client, "gw", "timeout", Some("12")).await;
    let Cluster::Testkit(server) = &cluster else {
        unreachable!("a testkit cluster")
    };
    for verb in ["list", "watch"] {
        let matcher = aigateway_testkit::RequestMatch::any()
            .verb(verb)
            .resource("timeoutpolicies");
        server.faults().fail_next(1_000, matcher, 404);
    }
    server.faults().cut_watches();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        timeouts(&client, "gw")
            .await
            .unwrap()
            .get("timeout")
            .map(String::as_str),
        Some("12"),
        "the gateway kept its policy through the 404s"
    );
    server.faults().clear();
    running.stop().await;
}

/// Stopping while the policy kind's CRD is missing (its list retried with a growing
/// delay) is as quick as ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_without_the_policy_crd_stops_promptly() {
    let (_cluster, _client, running) = one_gateway_without_the_policy_crd().await;
    // Past the first refusals, into the growing delay.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let started = std::time::Instant::now();
    running.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn the_cluster_role_reads_policies_and_writes_only_their_status() {
    let rules = aigateway_runtime::rbac::ClusterRules::new().gateway(&Timeouts::default());
    let group = "policies.example.com";
    for verb in ["list", "watch"] {
        assert!(rules.allows(group, "timeoutpolicies", verb), "{verb}");
    }
    assert!(rules.allows(group, "timeoutpolicies/status", "patch"));
    for verb in ["create", "update", "patch", "delete"] {
        assert!(
            !rules.allows(group, "timeoutpolicies", verb),
            "a policy is its owner's: no {verb}"
        );
    }
}
