//! The router class against the testkit's API server: Ready with a key, a missing key
//! reported, a rotated key rolling the pods, a silent steady state, and Secrets of other
//! names never reaching the operator.

use std::collections::BTreeMap;
use std::time::Duration;

use aigateway_api::conditions::{self, reasons, types};
use aigateway_api::{AiGateway, AiGatewayClass, AiGatewayClassSpec, AiGatewaySpec, AiModel};
use aigateway_runtime::rollout::ROLLOUT_HASH_ANNOTATION;
use aigateway_runtime::testing::{
    RunningOperator, api_server, eventually, touch, wait_condition, wait_ready,
};
use aigateway_runtime::{AiGatewayKind, Operator};
use aigateway_testkit::ApiServer;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use router_class::{CONTROLLER_NAME, KEYS_SECRET, RouterClass};

const NS: &str = "team-a";

async fn start() -> (ApiServer, Client, RunningOperator) {
    let builder = ApiServer::builder().deployment_ready_delay(Duration::from_millis(200));
    let server = api_server(builder, &[NS]).await;
    let client = server.client();
    let class = AiGatewayClass::new(
        "router",
        AiGatewayClassSpec {
            controller: CONTROLLER_NAME.into(),
        },
    );
    Api::<AiGatewayClass>::all(client.clone())
        .create(&PostParams::default(), &class)
        .await
        .expect("create class");
    let operator = RunningOperator::spawn(Operator::new(client.clone()).gateway(RouterClass));
    (server, client, operator)
}

async fn put_secret(client: &Client, name: &str, data: &[(&str, &str)]) {
    let mut secret = Secret::default();
    secret.metadata.name = Some(name.into());
    secret.data = Some(
        data.iter()
            .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
            .collect::<BTreeMap<_, _>>(),
    );
    Api::<Secret>::namespaced(client.clone(), NS)
        .patch(
            name,
            &PatchParams::apply("test").force(),
            &Patch::Apply(&secret),
        )
        .await
        .expect("apply secret");
}

async fn create_gateway(client: &Client, models: &[(&str, &str)]) {
    let mut gateway = AiGateway::new(
        "gw",
        AiGatewaySpec {
            ai_gateway_class_name: Some("router".into()),
            ai_models: models.iter().map(|(p, m)| AiModel::new(*p, *m)).collect(),
            ..Default::default()
        },
    );
    gateway.metadata.namespace = Some(NS.into());
    Api::<AiGateway>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &gateway)
        .await
        .expect("create gateway");
}

async fn rollout_hash(client: &Client) -> Option<String> {
    let deployment = Api::<Deployment>::namespaced(client.clone(), NS)
        .get_opt("gw")
        .await
        .ok()??;
    let annotations = deployment.spec?.template.metadata?.annotations?;
    annotations.get(ROLLOUT_HASH_ANNOTATION).cloned()
}

async fn routes(client: &Client) -> String {
    let config = Api::<ConfigMap>::namespaced(client.clone(), NS)
        .get("gw-routes")
        .await
        .expect("ConfigMap gw-routes");
    config.data.expect("data")["routes.json"].clone()
}

fn resolved_refs_message(gateway: &AiGateway) -> String {
    let status = gateway.status.as_ref().expect("status");
    conditions::find_condition(&status.conditions, types::RESOLVED_REFS)
        .expect("ResolvedRefs")
        .message
        .clone()
}

#[tokio::test]
async fn ready_with_a_key_then_a_rotation_rolls_the_pods_and_the_steady_state_is_silent() {
    let (server, client, operator) = start().await;
    put_secret(&client, KEYS_SECRET, &[("OPENAI_API_KEY", "sk-first")]).await;
    create_gateway(&client, &[("openai", "gpt-4o")]).await;
    let gateway = wait_ready::<AiGatewayKind>(&client, NS, "gw").await;
    let status = gateway.status.as_ref().expect("status");
    assert!(conditions::is_true(
        &status.conditions,
        types::RESOLVED_REFS
    ));
    assert_eq!(
        status.url.as_deref(),
        Some("http://gw.team-a.svc.cluster.local.:80")
    );
    let table = routes(&client).await;
    assert!(table.contains("\"model\":\"gpt-4o\""), "{table}");
    assert!(
        !table.contains("sk-first"),
        "no key in the ConfigMap: {table}"
    );
    let deployment = Api::<Deployment>::namespaced(client.clone(), NS)
        .get("gw")
        .await
        .expect("Deployment gw");
    let pod = deployment
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod spec");
    let env = &pod.containers[0].env.as_ref().expect("env")[0];
    let key_ref = env
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref());
    assert_eq!(
        key_ref.map(|r| (r.name.as_str(), r.key.as_str())),
        Some((KEYS_SECRET, "OPENAI_API_KEY"))
    );
    let first = rollout_hash(&client).await.expect("a rollout hash");

    // Steady state: an event on the gateway and one on the Secret each make it reconcile;
    // neither may cause a write.
    operator
        .assert_silent_after(&server, touch::<AiGateway>(&client, NS, "gw"))
        .await;
    operator
        .assert_silent_after(&server, touch::<Secret>(&client, NS, KEYS_SECRET))
        .await;
    assert_eq!(
        rollout_hash(&client).await.as_ref(),
        Some(&first),
        "no roll without a change"
    );

    // Rotation: a new key value rolls the pods.
    put_secret(&client, KEYS_SECRET, &[("OPENAI_API_KEY", "sk-second")]).await;
    eventually("the rotated key to roll the pods", || async {
        rollout_hash(&client).await.filter(|hash| *hash != first)
    })
    .await;
    wait_ready::<AiGatewayKind>(&client, NS, "gw").await;
    operator.stop().await;
}

#[tokio::test]
async fn a_missing_secret_and_a_missing_key_are_reported_and_the_rest_is_served() {
    let (server, client, operator) = start().await;
    create_gateway(
        &client,
        &[("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4")],
    )
    .await;
    let gateway =
        wait_condition::<AiGatewayKind>(&client, NS, "gw", types::RESOLVED_REFS, "False").await;
    assert_eq!(
        resolved_refs_message(&gateway),
        "Secret team-a/router-keys not found: create it or fix the reference"
    );

    put_secret(
        &client,
        KEYS_SECRET,
        &[("OPENAI_API_KEY", "sk-only-openai")],
    )
    .await;
    let gateway = eventually("the missing key reported", || async {
        let gateway = Api::<AiGateway>::namespaced(client.clone(), NS)
            .get("gw")
            .await
            .ok()?;
        let message = resolved_refs_message(&gateway);
        message.contains("ANTHROPIC_API_KEY").then_some(gateway)
    })
    .await;
    let status = gateway.status.as_ref().expect("status");
    let refs =
        conditions::find_condition(&status.conditions, types::RESOLVED_REFS).expect("ResolvedRefs");
    assert_eq!(refs.reason, reasons::INVALID_REF);
    assert!(
        !format!("{status:?}").contains("sk-only-openai"),
        "no key value in status"
    );
    let table = routes(&client).await;
    assert!(
        table.contains("gpt-4o") && !table.contains("claude"),
        "{table}"
    );
    wait_ready::<AiGatewayKind>(&client, NS, "gw").await;

    // Secrets of other names are neither listed nor watched: creating and changing one
    // reconciles nothing.
    operator.wait_idle(&server).await;
    let secret_events = || operator.metrics().watch_events("shared", "related Secret");
    assert!(secret_events() > 0, "the operator sees {KEYS_SECRET}");
    let (before, events_before) = (operator.reconciles(), secret_events());
    put_secret(
        &client,
        "unrelated",
        &[("ANTHROPIC_API_KEY", "sk-elsewhere")],
    )
    .await;
    put_secret(&client, "unrelated", &[("ANTHROPIC_API_KEY", "sk-changed")]).await;
    operator.wait_idle(&server).await;
    assert_eq!(
        operator.reconciles(),
        before,
        "another Secret woke the operator"
    );
    assert_eq!(
        secret_events(),
        events_before,
        "another Secret reached the cache"
    );

    put_secret(
        &client,
        KEYS_SECRET,
        &[
            ("OPENAI_API_KEY", "sk-only-openai"),
            ("ANTHROPIC_API_KEY", "sk-ant"),
        ],
    )
    .await;
    wait_condition::<AiGatewayKind>(&client, NS, "gw", types::RESOLVED_REFS, "True").await;
    assert!(routes(&client).await.contains("claude-sonnet-4"));
    operator.stop().await;
}

#[test]
fn its_cluster_role_reads_no_secret_but_the_keys() {
    let rules = aigateway_runtime::rbac::ClusterRules::new().gateway(&RouterClass);
    assert!(rules.allows_named("", "secrets", "watch", KEYS_SECRET));
    assert!(!rules.allows("", "secrets", "list"), "every Secret");
    assert!(!rules.allows_named("", "secrets", "get", "other"));
    assert!(rules.allows("apps", "deployments", "patch"));
}
