//! Deleting a class in use is not an outage.

mod fixtures;

use std::time::Duration;

use aigateway_api::{AiGateway, AiGatewayClass, AiGatewayClassSpec};
use fixtures::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};

const SECOND: Duration = Duration::from_secs(1);
const CLASS_FINALIZER: &str = "aigateway.agentic-layer.ai/gateway-exists";

async fn service_identity(client: &Client, name: &str) -> (String, String) {
    let service = Api::<Service>::namespaced(client.clone(), NS)
        .get(name)
        .await
        .unwrap();
    (
        service.uid().unwrap(),
        service.spec.unwrap().cluster_ip.unwrap(),
    )
}

#[tokio::test]
async fn a_deleted_class_keeps_its_gateways_served_until_they_go() {
    let server = server(Duration::ZERO).await;
    let client = server.client();
    create_class(&client, "minimal", CONTROLLER, false).await;
    let _running = start(operator(client.clone(), Minimal::default()));
    for name in ["a", "b"] {
        create_gateway(&client, &gateway(name, Some("minimal"), &["m"])).await;
    }
    wait_condition(&client, "a", "Ready", "True").await;
    wait_condition(&client, "b", "Ready", "True").await;
    let classes = Api::<AiGatewayClass>::all(client.clone());
    eventually_within(10 * SECOND, "the class holds our finalizer", || async {
        let class = classes.get("minimal").await.ok()?;
        class
            .finalizers()
            .iter()
            .any(|f| f == CLASS_FINALIZER)
            .then_some(())
    })
    .await;
    let a_before = service_identity(&client, "a").await;

    classes
        .delete("minimal", &DeleteParams::default())
        .await
        .unwrap();
    for name in ["a", "b"] {
        eventually_within(10 * SECOND, "Accepted says the class is going", || async {
            condition(&client, name, "Accepted")
                .await
                .filter(|(status, reason, _)| status == "True" && reason == "ClassDeleting")
        })
        .await;
    }
    tokio::time::sleep(SECOND).await;
    let deployments = Api::<Deployment>::namespaced(client.clone(), NS);
    for name in ["a", "b"] {
        assert!(
            deployments.get_opt(name).await.unwrap().is_some(),
            "{name} lost its proxy"
        );
        assert_eq!(condition(&client, name, "Ready").await.unwrap().0, "True");
    }
    assert!(
        classes.get_opt("minimal").await.unwrap().is_some(),
        "the class stays while gateways use it"
    );

    // One gateway goes, the other still holds the class.
    let gateways = Api::<AiGateway>::namespaced(client.clone(), NS);
    gateways
        .delete("b", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(SECOND).await;
    assert!(classes.get_opt("minimal").await.unwrap().is_some());

    // An administrator forces the class away: the gateway naming it keeps its children.
    classes
        .patch(
            "minimal",
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    eventually_within(10 * SECOND, "the class is gone", || async {
        classes
            .get_opt("minimal")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    tokio::time::sleep(SECOND).await;
    assert!(deployments.get_opt("a").await.unwrap().is_some());

    // Recreating the class resumes service with the very same Service.
    create_class(&client, "minimal", CONTROLLER, false).await;
    eventually_within(10 * SECOND, "a accepted again", || async {
        condition(&client, "a", "Accepted")
            .await
            .filter(|(status, reason, _)| status == "True" && reason == "Accepted")
    })
    .await;
    wait_condition(&client, "a", "Ready", "True").await;
    assert_eq!(
        service_identity(&client, "a").await,
        a_before,
        "the Service was recreated (new uid or ClusterIP)"
    );
}

#[tokio::test]
async fn the_class_finalizer_goes_with_the_last_gateway() {
    let server = server(Duration::ZERO).await;
    let client = server.client();
    create_class(&client, "spare", CONTROLLER, false).await;
    let _running = start(operator(client.clone(), Minimal::default()));
    create_gateway(&client, &gateway("only", Some("spare"), &["m"])).await;
    wait_condition(&client, "only", "Ready", "True").await;
    let classes = Api::<AiGatewayClass>::all(client.clone());
    eventually_within(10 * SECOND, "the class holds our finalizer", || async {
        let class = classes.get("spare").await.ok()?;
        (!class.finalizers().is_empty()).then_some(())
    })
    .await;
    classes
        .delete("spare", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(SECOND).await;
    assert!(classes.get_opt("spare").await.unwrap().is_some());
    Api::<AiGateway>::namespaced(client.clone(), NS)
        .delete("only", &DeleteParams::default())
        .await
        .unwrap();
    eventually_within(5 * SECOND, "the class is deleted", || async {
        classes.get_opt("spare").await.ok()?.is_none().then_some(())
    })
    .await;
}

/// A restart while a class in use is being deleted: the new operator must not read its
/// not-yet-listed gateway cache as "no gateway uses the class" and let the class go.
#[tokio::test]
async fn a_restart_keeps_the_finalizer_of_a_class_being_deleted() {
    let server = server(Duration::ZERO).await;
    let client = server.client();
    create_class(&client, "minimal", CONTROLLER, false).await;
    let running = start(operator(client.clone(), Minimal::default()));
    create_gateway(&client, &gateway("a", Some("minimal"), &["m"])).await;
    wait_condition(&client, "a", "Ready", "True").await;
    let classes = Api::<AiGatewayClass>::all(client.clone());
    eventually_within(10 * SECOND, "the class holds our finalizer", || async {
        let class = classes.get("minimal").await.ok()?;
        class
            .finalizers()
            .iter()
            .any(|f| f == CLASS_FINALIZER)
            .then_some(())
    })
    .await;
    running.stop().await;
    classes
        .delete("minimal", &DeleteParams::default())
        .await
        .unwrap();
    for _ in 0..5 {
        let restarted = start(operator(client.clone(), Minimal::default()));
        eventually_within(10 * SECOND, "Accepted says the class is going", || async {
            condition(&client, "a", "Accepted")
                .await
                .filter(|(status, reason, _)| status == "True" && reason == "ClassDeleting")
        })
        .await;
        restarted.stop().await;
        assert!(
            classes.get_opt("minimal").await.unwrap().is_some(),
            "a restart let the class in use go"
        );
    }
}

/// A class already being deleted (another finalizer holds it) when a gateway starts to
/// use it: the API server refuses new finalizers on an object being deleted, so we add
/// none, fail no write, and serve the gateway, saying the class is going.
async fn a_class_deleted_before_its_gateway_came(cluster: Cluster) {
    let client = cluster.client();
    let classes = Api::<AiGatewayClass>::all(client.clone());
    let mut class = AiGatewayClass::new(
        "held",
        AiGatewayClassSpec {
            controller: CONTROLLER.into(),
        },
    );
    class.metadata.finalizers = Some(vec!["example.com/hold".to_owned()]);
    classes
        .create(&PostParams::default(), &class)
        .await
        .unwrap();
    classes
        .delete("held", &DeleteParams::default())
        .await
        .unwrap();
    create_gateway(&client, &gateway("late", Some("held"), &["m"])).await;
    let operator = operator(client.clone(), Minimal::default());
    let metrics = operator.metrics();
    let _running = start(operator);

    eventually_within(60 * SECOND, "Accepted says the class is going", || async {
        condition(&client, "late", "Accepted")
            .await
            .filter(|(status, reason, _)| status == "True" && reason == "ClassDeleting")
    })
    .await;
    wait_condition(&client, "late", "Ready", "True").await;
    tokio::time::sleep(2 * SECOND).await;
    let errors: Vec<String> = metrics
        .encode()
        .lines()
        .filter(|l| l.starts_with("aigateway_reconcile_errors_total{"))
        .map(str::to_owned)
        .collect();
    assert_eq!(errors, Vec::<String>::new(), "failed reconciles");
    let class = classes.get("held").await.unwrap();
    assert_eq!(class.finalizers(), ["example.com/hold".to_owned()]);

    classes
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_class_deleted_before_its_gateway_came_gets_no_finalizer_and_serves() {
    a_class_deleted_before_its_gateway_came(Cluster::testkit().await).await;
}

#[test]
fn real_cluster_a_class_deleted_before_its_gateway_came_gets_no_finalizer_and_serves() {
    on_real_cluster(a_class_deleted_before_its_gateway_came);
}
