//! Which conditions are ours is recorded structurally, never read from messages. Each
//! scenario runs against the testkit and against a real control plane (named
//! `real_cluster_*`, see `aigateway_testkit::real_cluster`).

mod fixtures;

use std::time::Duration;

use aigateway_api::AiGateway;
use aigateway_runtime::names::status_field_manager;
use fixtures::*;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};

const SECOND: Duration = Duration::from_secs(1);
const V2: &str = "example.com/minimal-v2";

fn accepted_message(gateway: &AiGateway) -> Option<String> {
    gateway
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Accepted")
        .map(|c| c.message.clone())
}

#[tokio::test]
async fn controllers_whose_names_share_a_prefix_do_not_fight() {
    prefix_sharing_controllers(Cluster::testkit().await).await;
}

#[test]
fn real_cluster_controllers_whose_names_share_a_prefix_do_not_fight() {
    on_real_cluster(prefix_sharing_controllers);
}

async fn prefix_sharing_controllers(cluster: Cluster) {
    let client = cluster.client();
    create_class(&client, "v1", CONTROLLER, false).await;
    create_class(&client, "v2", V2, false).await;
    let _v1 = start(operator(client.clone(), Minimal::default()));
    let _v2 = start(operator(
        client.clone(),
        Minimal {
            controller: Some(V2),
            ..Default::default()
        },
    ));
    create_gateway(&client, &gateway("a", Some("v1"), &["m"])).await;
    create_gateway(&client, &gateway("b", Some("v2"), &["m"])).await;
    wait_condition(&client, "a", "Ready", "True").await;
    wait_condition(&client, "b", "Ready", "True").await;
    tokio::time::sleep(SECOND).await;
    let writes = cluster.writes_during(2 * SECOND).await;
    assert!(writes.is_empty(), "the operators fight: {writes:#?}");
    let gateways = Api::<AiGateway>::namespaced(client.clone(), NS);
    let b = gateways.get("b").await.unwrap();
    assert!(accepted_message(&b).unwrap().contains(V2));
    // The API server's record says whose conditions they are; no annotation is written.
    assert_eq!(
        condition_writers(&b.metadata),
        [status_field_manager("minimal-v2", V2)]
    );
    assert_eq!(
        b.annotations()
            .get("aigateway.agentic-layer.ai/conditions-owner"),
        None
    );
}

#[tokio::test]
async fn a_long_invalid_message_still_lets_us_remove_our_conditions() {
    long_invalid_message(Cluster::testkit().await).await;
}

#[test]
fn real_cluster_a_long_invalid_message_still_lets_us_remove_our_conditions() {
    on_real_cluster(long_invalid_message);
}

async fn long_invalid_message(cluster: Cluster) {
    let client = cluster.client();
    create_class(&client, "minimal", CONTROLLER, false).await;
    create_class(&client, "other", "example.com/other", false).await;
    let _running = start(operator(client.clone(), Minimal::default()));
    let mut long = gateway("long", Some("minimal"), &["invalid-model"]);
    long.metadata.annotations = Some([(PADDING_ANNOTATION.to_owned(), "5000".to_owned())].into());
    create_gateway(&client, &long).await;
    wait_condition(&client, "long", "Accepted", "False").await;
    let gateways = Api::<AiGateway>::namespaced(client.clone(), NS);
    let message = accepted_message(&gateways.get("long").await.unwrap()).unwrap();
    assert!(
        message.ends_with("(truncated)") && !message.contains(CONTROLLER),
        "the message is cut before it could name the controller"
    );

    gateways
        .patch(
            "long",
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"spec": {"aiGatewayClassName": "other"}})),
        )
        .await
        .unwrap();
    eventually_within(10 * SECOND, "our conditions removed", || async {
        let gateway = gateways.get("long").await.ok()?;
        let conditions = gateway
            .status
            .clone()
            .map(|s| s.conditions)
            .unwrap_or_default();
        (conditions.is_empty()
            && !gateway
                .annotations()
                .contains_key("aigateway.agentic-layer.ai/conditions-owner"))
        .then_some(())
    })
    .await;
}

/// The conditions of gateway `name` (empty without a status).
async fn conditions_of(client: &kube::Client, name: &str) -> Vec<(String, String)> {
    Api::<AiGateway>::namespaced(client.clone(), NS)
        .get(name)
        .await
        .unwrap()
        .status
        .map(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.type_, c.status))
        .collect()
}

/// A status written under field manager `manager`: the standard conditions plus
/// `example.com/Audited`, which belongs to nobody we know.
async fn write_conditions(client: &kube::Client, name: &str, manager: &str, message: &str) {
    let condition = |type_: &str| {
        serde_json::json!({"type": type_, "status": "True", "reason": "Fine",
            "message": message, "lastTransitionTime": "2026-01-01T00:00:00Z"})
    };
    Api::<AiGateway>::namespaced(client.clone(), NS)
        .patch_status(
            name,
            &PatchParams {
                field_manager: Some(manager.to_owned()),
                ..Default::default()
            },
            &Patch::Merge(serde_json::json!({"status": {"conditions": [
                condition("Accepted"), condition("Ready"), condition("example.com/Audited"),
            ]}})),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_released_gateway_of_an_earlier_release_loses_our_conditions_and_its_annotation() {
    released_legacy_gateway(Cluster::testkit().await).await;
}

#[test]
fn real_cluster_a_released_gateway_of_an_earlier_release_loses_our_conditions_and_its_annotation() {
    on_real_cluster(released_legacy_gateway);
}

/// An operator of an earlier release wrote the conditions under its plain field manager
/// and marked them with the annotation; another controller has the gateway now.
async fn released_legacy_gateway(cluster: Cluster) {
    let client = cluster.client();
    create_class(&client, "other", "example.com/other", false).await;
    let mut legacy = gateway("legacy", Some("other"), &["m"]);
    legacy.metadata.annotations = Some(
        [(
            "aigateway.agentic-layer.ai/conditions-owner".to_owned(),
            CONTROLLER.to_owned(),
        )]
        .into(),
    );
    create_gateway(&client, &legacy).await;
    write_conditions(&client, "legacy", MANAGER, "written by an earlier release").await;
    let _running = start(operator(client.clone(), Minimal::default()));

    let gateways = Api::<AiGateway>::namespaced(client.clone(), NS);
    eventually_within(
        10 * SECOND,
        "our conditions and the annotation removed",
        || async {
            let gateway = gateways.get("legacy").await.ok()?;
            gateway
                .annotations()
                .get("aigateway.agentic-layer.ai/conditions-owner")
                .is_none()
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        conditions_of(&client, "legacy").await,
        [("example.com/Audited".to_owned(), "True".to_owned())],
        "ours go, the foreign one stays"
    );
}

#[tokio::test]
async fn conditions_another_controller_rewrote_after_us_are_left_alone_on_release() {
    rewritten_by_another(Cluster::testkit().await).await;
}

#[test]
fn real_cluster_conditions_another_controller_rewrote_after_us_are_left_alone_on_release() {
    on_real_cluster(rewritten_by_another);
}

/// Which conditions are ours follows the API server's record: once the gateway's new
/// controller wrote `Ready` (before the class change reached us), it is theirs, and
/// releasing the gateway removes none of what they wrote.
async fn rewritten_by_another(cluster: Cluster) {
    let client = cluster.client();
    create_class(&client, "minimal", CONTROLLER, false).await;
    create_class(&client, "other", "example.com/other", false).await;
    let running = start(operator(client.clone(), Minimal::default()));
    create_gateway(&client, &gateway("moving", Some("minimal"), &["m"])).await;
    wait_condition(&client, "moving", "Ready", "True").await;
    running.stop().await;

    write_conditions(&client, "moving", "other-controller", "theirs").await;
    let gateways = Api::<AiGateway>::namespaced(client.clone(), NS);
    gateways
        .patch(
            "moving",
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"spec": {"aiGatewayClassName": "other"}})),
        )
        .await
        .unwrap();
    let _running = start(operator(client.clone(), Minimal::default()));
    // Its children go: the release ran.
    eventually_within(10 * SECOND, "children deleted", || async {
        Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), NS)
            .get_opt("moving")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    let kept = conditions_of(&client, "moving").await;
    for type_ in ["Accepted", "Ready", "example.com/Audited"] {
        assert!(
            kept.contains(&(type_.to_owned(), "True".to_owned())),
            "{type_} was removed: {kept:?}"
        );
    }
}
