//! Which conditions are ours is recorded structurally, never read from messages. Each
//! scenario runs against the testkit and against a real control plane (named
//! `real_cluster_*`, see `aigateway_testkit::real_cluster`).

mod fixtures;

use std::time::Duration;

use aigateway_api::AiGateway;
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
    assert_eq!(
        b.annotations()
            .get("aigateway.agentic-layer.ai/conditions-owner"),
        Some(&V2.to_owned())
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
