//! The pattern to copy for your own class operator: run it against the in-memory API
//! server of `aigateway-testkit`, create a class and a gateway, wait for `Ready`, check
//! the children, then check that a converged operator writes nothing.

use std::time::Duration;

use aigateway_api::conditions::{self, types};
use aigateway_api::{AiGateway, AiGatewayClass, AiGatewayClassSpec, AiGatewaySpec, AiModel};
use aigateway_runtime::rollout::ROLLOUT_HASH_ANNOTATION;
use aigateway_runtime::testing::{RunningOperator, api_server, eventually, touch, wait_ready};
use aigateway_runtime::{AiGatewayKind, GatewayImplementation, Operator};
use aigateway_testkit::ApiServer;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use minimal_class::{CONTROLLER_NAME, IMAGE, MinimalClass};
use serde_json::json;

const NS: &str = "demo";

/// An API server with our CRDs, namespace `demo` and a class `minimal` of our controller.
async fn cluster() -> ApiServer {
    // A short delay makes the Deployment roll out like a real one: Ready=False first.
    let builder = ApiServer::builder().deployment_ready_delay(Duration::from_millis(300));
    let server = api_server(builder, &[NS]).await;
    let class = AiGatewayClass::new(
        "minimal",
        AiGatewayClassSpec {
            controller: CONTROLLER_NAME.into(),
        },
    );
    Api::<AiGatewayClass>::all(server.client())
        .create(&PostParams::default(), &class)
        .await
        .expect("create class");
    server
}

fn gateway(name: &str, port: i32, models: &[(&str, &str)]) -> AiGateway {
    let mut gateway = AiGateway::new(
        name,
        AiGatewaySpec {
            ai_gateway_class_name: Some("minimal".into()),
            port: Some(port),
            ai_models: models.iter().map(|(p, m)| AiModel::new(*p, *m)).collect(),
            ..Default::default()
        },
    );
    gateway.metadata.namespace = Some(NS.into());
    gateway
}

/// Every child carries the runtime's labels and a controller owner reference to `gateway`.
fn assert_owned_by<K: Resource<DynamicType = ()>>(child: &K, gateway: &AiGateway) {
    let what = format!("{} {}", K::kind(&()), child.name_any());
    let labels = child.labels();
    assert_eq!(
        labels["app.kubernetes.io/managed-by"],
        MinimalClass.field_manager(),
        "{what}"
    );
    assert_eq!(labels["app.kubernetes.io/part-of"], "aigateway", "{what}");
    assert_eq!(
        labels["aigateway.agentic-layer.ai/gateway"],
        gateway.name_any(),
        "{what}"
    );
    let owners = child.owner_references();
    assert_eq!(owners.len(), 1, "{what}: {owners:?}");
    assert_eq!(owners[0].kind, "AiGateway", "{what}");
    assert_eq!(owners[0].name, gateway.name_any(), "{what}");
    assert_eq!(Some(&owners[0].uid), gateway.uid().as_ref(), "{what}");
    assert_eq!(owners[0].controller, Some(true), "{what}");
}

/// The model ids the mock lists on `GET /v1/models`, read from the stubs ConfigMap.
fn listed_models(config_map: &ConfigMap) -> Vec<String> {
    let text = &config_map.data.as_ref().expect("data")["mappings.json"];
    let mappings: serde_json::Value = serde_json::from_str(text).expect("mappings are JSON");
    mappings["mappings"][0]["response"]["jsonBody"]["data"]
        .as_array()
        .expect("a model list")
        .iter()
        .map(|m| m["id"].as_str().expect("an id").to_owned())
        .collect()
}

/// The rollout hash on the pod template of a Deployment.
fn rollout_hash(deployment: &Deployment) -> Option<String> {
    let template = deployment.spec.as_ref()?.template.metadata.as_ref()?;
    template
        .annotations
        .as_ref()?
        .get(ROLLOUT_HASH_ANNOTATION)
        .cloned()
}

#[tokio::test]
async fn a_gateway_becomes_ready_with_owned_children_then_a_reconcile_writes_nothing() {
    let server = cluster().await;
    let client = server.client();
    let operator = RunningOperator::spawn(Operator::new(client.clone()).gateway(MinimalClass));

    let models = [("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4")];
    Api::<AiGateway>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &gateway("team-gw", 4000, &models))
        .await
        .expect("create gateway");
    let gateway = wait_ready::<AiGatewayKind>(&client, NS, "team-gw").await;

    let status = gateway.status.as_ref().expect("status");
    for type_ in [types::ACCEPTED, types::RESOLVED_REFS, types::PROGRAMMED] {
        assert!(
            conditions::is_true(&status.conditions, type_),
            "{type_}: {status:?}"
        );
    }
    assert_eq!(
        status.url.as_deref(),
        Some("http://team-gw.demo.svc.cluster.local.:4000")
    );

    let stubs = Api::<ConfigMap>::namespaced(client.clone(), NS)
        .get("team-gw-mock")
        .await
        .expect("ConfigMap team-gw-mock");
    assert_owned_by(&stubs, &gateway);
    assert_eq!(listed_models(&stubs), ["gpt-4o", "claude-sonnet-4"]);

    let deployment = Api::<Deployment>::namespaced(client.clone(), NS)
        .get("team-gw")
        .await
        .expect("Deployment team-gw");
    assert_owned_by(&deployment, &gateway);
    assert!(
        rollout_hash(&deployment).is_some(),
        "the stubs roll the pods"
    );
    let template = &deployment.spec.as_ref().expect("spec").template;
    let pod = template.spec.as_ref().expect("pod spec");
    assert_eq!(pod.containers[0].image.as_deref(), Some(IMAGE));
    let volume = &pod.volumes.as_ref().expect("volumes")[0];
    assert_eq!(
        volume.config_map.as_ref().map(|c| c.name.as_str()),
        Some("team-gw-mock")
    );

    let service = Api::<Service>::namespaced(client.clone(), NS)
        .get("team-gw")
        .await
        .expect("Service team-gw");
    assert_owned_by(&service, &gateway);
    let port = &service
        .spec
        .as_ref()
        .expect("spec")
        .ports
        .as_ref()
        .expect("ports")[0];
    assert_eq!(port.port, 4000);
    assert_eq!(port.target_port, Some(IntOrString::String("http".into())));

    // Steady state: a watch event that makes the gateway reconcile again (an annotation
    // on it) must not make the operator write anything.
    operator
        .assert_silent_after(&server, touch::<AiGateway>(&client, NS, "team-gw"))
        .await;
    operator.stop().await;
}

#[tokio::test]
async fn a_model_change_rolls_the_proxy_and_deleting_the_gateway_collects_its_children() {
    let server = cluster().await;
    let client = server.client();
    let operator = RunningOperator::spawn(Operator::new(client.clone()).gateway(MinimalClass));
    let gateways = Api::<AiGateway>::namespaced(client.clone(), NS);
    gateways
        .create(
            &PostParams::default(),
            &gateway("gw", 80, &[("openai", "gpt-4o")]),
        )
        .await
        .expect("create gateway");
    wait_ready::<AiGatewayKind>(&client, NS, "gw").await;
    let deployments = Api::<Deployment>::namespaced(client.clone(), NS);
    let first_hash = rollout_hash(&deployments.get("gw").await.expect("Deployment gw"));

    let patch = json!({"spec": {"aiModels": [{"provider": "openai", "name": "gpt-4o"}, {"provider": "openai", "name": "o3"}]}});
    gateways
        .patch("gw", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch models");
    let config_maps = Api::<ConfigMap>::namespaced(client.clone(), NS);
    eventually("the stubs list both models and the pods roll", || async {
        let stubs = config_maps.get("gw-mock").await.ok()?;
        let deployment = deployments.get("gw").await.ok()?;
        (listed_models(&stubs) == ["gpt-4o", "o3"] && rollout_hash(&deployment) != first_hash)
            .then_some(())
    })
    .await;
    wait_ready::<AiGatewayKind>(&client, NS, "gw").await;

    // Owner references let Kubernetes garbage-collect the children; the operator needs
    // no cleanup code.
    gateways
        .delete("gw", &DeleteParams::default())
        .await
        .expect("delete gateway");
    eventually("children garbage-collected", || async {
        let gone = config_maps.get_opt("gw-mock").await.ok()?.is_none()
            && deployments.get_opt("gw").await.ok()?.is_none()
            && Api::<Service>::namespaced(client.clone(), NS)
                .get_opt("gw")
                .await
                .ok()?
                .is_none();
        gone.then_some(())
    })
    .await;

    operator.stop().await;
}
