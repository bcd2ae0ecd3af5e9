//! Never touch what is not ours: objects that already hold a child's name.

mod fixtures;

use std::time::Duration;

use aigateway_api::AiGateway;
use fixtures::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

const SECOND: Duration = Duration::from_secs(1);

/// Creates an object of someone else (no owner, no labels of ours).
async fn create_foreign<K>(client: &Client, object: serde_json::Value) -> K
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let object: K = serde_json::from_value(object).expect("a valid object");
    Api::<K>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &object)
        .await
        .expect("create the foreign object")
}

async fn live<K>(client: &Client, name: &str) -> Option<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), NS)
        .get_opt(name)
        .await
        .unwrap()
}

/// The `Programmed` condition's reason and message on gateway `name`.
async fn programmed(client: &Client, name: &str) -> Option<(String, String)> {
    let gateway = Api::<AiGateway>::namespaced(client.clone(), NS)
        .get(name)
        .await
        .ok()?;
    let conditions = gateway.status?.conditions;
    aigateway_api::conditions::find_condition(&conditions, "Programmed")
        .map(|c| (c.reason.clone(), c.message.clone()))
}

#[tokio::test]
async fn objects_holding_child_names_are_reported_never_written_nor_deleted() {
    let server = server(Duration::ZERO).await;
    let client = server.client();
    create_class(&client, "minimal", CONTROLLER, true).await;
    let deployment: Deployment = create_foreign(
        &client,
        json!({
            "metadata": {"name": "payments", "labels": {"app": "payments"}},
            "spec": {
                "selector": {"matchLabels": {"app": "payments"}},
                "template": {
                    "metadata": {"labels": {"app": "payments"}},
                    "spec": {"containers": [{"name": "payments", "image": "example/payments:7"}]}
                }
            }
        }),
    )
    .await;
    let service: Service = create_foreign(
        &client,
        json!({"metadata": {"name": "payments"}, "spec": {"selector": {"app": "payments"}, "ports": [{"port": 8080}]}}),
    )
    .await;
    let config_map: ConfigMap = create_foreign(
        &client,
        json!({"metadata": {"name": "payments-models"}, "data": {"owner": "the payments team"}}),
    )
    .await;
    // Only the ConfigMap of `partial` is taken: its free Deployment and Service must not
    // be created either (all children are checked before any write).
    let _taken: ConfigMap = create_foreign(
        &client,
        json!({"metadata": {"name": "partial-models"}, "data": {"mine": "yes"}}),
    )
    .await;
    let _running = start(operator(client.clone(), Minimal::default()));
    create_gateway(&client, &gateway("payments", None, &["m"])).await;
    create_gateway(&client, &gateway("partial", None, &["m"])).await;
    create_gateway(&client, &gateway("fine", None, &["m"])).await;

    let (reason, message) =
        eventually_within(10 * SECOND, "payments reports NameConflict", || async {
            programmed(&client, "payments")
                .await
                .filter(|(reason, _)| reason == "NameConflict")
        })
        .await;
    assert_eq!(reason, "NameConflict");
    for named in [
        "Deployment default/payments",
        "Service default/payments",
        "ConfigMap default/payments-models",
    ] {
        assert!(message.contains(named), "{named} not named in: {message}");
    }
    eventually_within(10 * SECOND, "partial reports NameConflict", || async {
        programmed(&client, "partial")
            .await
            .filter(|(reason, m)| reason == "NameConflict" && m.contains("partial-models"))
    })
    .await;
    wait_condition(&client, "fine", "Ready", "True").await;
    assert_eq!(
        condition(&client, "payments", "Accepted").await.unwrap().0,
        "True",
        "the gateway is ours, only its children cannot be written"
    );
    assert!(live::<Deployment>(&client, "partial").await.is_none());
    assert!(live::<Service>(&client, "partial").await.is_none());

    // Same labels, annotations, owners and spec as created (the testkit's simulated
    // Deployment controller may write the Deployment's status, nothing else may change).
    let same = |before: serde_json::Value, after: serde_json::Value, what: &str| {
        for field in [
            "/metadata/labels",
            "/metadata/annotations",
            "/metadata/ownerReferences",
            "/metadata/generation",
            "/spec",
            "/data",
        ] {
            assert_eq!(
                before.pointer(field),
                after.pointer(field),
                "{what}: {field} changed"
            );
        }
    };
    let check = || async {
        let d = live::<Deployment>(&client, "payments")
            .await
            .expect("the foreign Deployment still exists");
        let s = live::<Service>(&client, "payments")
            .await
            .expect("the foreign Service still exists");
        let c = live::<ConfigMap>(&client, "payments-models")
            .await
            .expect("the foreign ConfigMap still exists");
        same(json!(deployment), json!(d), "the Deployment");
        same(json!(service), json!(s), "the Service");
        same(json!(config_map), json!(c), "the ConfigMap");
        let ours = server
            .requests()
            .into_iter()
            .filter(|r| {
                r.name.starts_with("payments")
                    && !r.resource.starts_with("aigateway")
                    && aigateway_testkit::WRITE_VERBS.contains(&r.verb.as_str())
                    && !r.field_manager.is_empty()
            })
            .map(|r| format!("{} {} {}", r.verb, r.resource, r.name))
            .collect::<Vec<_>>();
        assert!(ours.is_empty(), "the operator wrote them: {ours:?}");
    };
    check().await;

    // Deleting the gateway deletes nothing of theirs.
    let gateways = Api::<AiGateway>::namespaced(client.clone(), NS);
    gateways
        .delete("payments", &DeleteParams::default())
        .await
        .unwrap();
    gateways
        .delete("partial", &DeleteParams::default())
        .await
        .unwrap();
    eventually_within(10 * SECOND, "the gateways are gone", || async {
        (gateways.get_opt("payments").await.ok()?.is_none()
            && gateways.get_opt("partial").await.ok()?.is_none())
        .then_some(())
    })
    .await;
    tokio::time::sleep(SECOND).await;
    check().await;
    assert!(live::<ConfigMap>(&client, "partial-models").await.is_some());
}

#[tokio::test]
async fn children_created_for_the_gateway_by_someone_else_are_adopted_in_place() {
    let server = server(Duration::ZERO).await;
    let client = server.client();
    create_class(&client, "minimal", CONTROLLER, true).await;
    // The gateway exists before our operator, with a Service the previous (Go) operator
    // created for it: controller owner = the gateway, none of our labels.
    create_gateway(&client, &gateway("migrated", None, &["m"])).await;
    let gateway = Api::<AiGateway>::namespaced(client.clone(), NS)
        .get("migrated")
        .await
        .unwrap();
    let mut service: Service = serde_json::from_value(json!({
        "metadata": {"name": "migrated", "labels": {"app.kubernetes.io/managed-by": "go-operator"}},
        "spec": {"selector": {"app": "migrated"}, "ports": [{"port": 80}]}
    }))
    .unwrap();
    service.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "runtime.agentic-layer.ai/v1alpha1".into(),
        kind: "AiGateway".into(),
        name: "migrated".into(),
        uid: gateway.uid().unwrap(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    let before = Api::<Service>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
    let cluster_ip = before.spec.as_ref().unwrap().cluster_ip.clone();
    assert!(cluster_ip.is_some(), "the testkit allocates ClusterIPs");

    let _running = start(operator(client.clone(), Minimal::default()));
    wait_condition(&client, "migrated", "Ready", "True").await;
    let after = live::<Service>(&client, "migrated").await.unwrap();
    assert_eq!(after.uid(), before.uid(), "adopted, not recreated");
    assert_eq!(after.spec.clone().unwrap().cluster_ip, cluster_ip);
    assert_eq!(
        after.labels().get("app.kubernetes.io/managed-by").unwrap(),
        MANAGER,
        "now labelled as ours"
    );
}
