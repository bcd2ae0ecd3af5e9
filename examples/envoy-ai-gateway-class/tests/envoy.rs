//! The operator against the testkit, with stand-in Envoy AI Gateway CRDs and this test
//! playing Envoy AI Gateway's controller (it writes the children's status).

use std::time::Duration;

use aigateway_api::conditions::{self, types};
use aigateway_api::{AiGateway, AiGatewayClass, AiGatewayClassSpec, AiGatewaySpec, AiModel, crds};
use aigateway_runtime::Operator;
use aigateway_runtime::testing::eventually;
use aigateway_testkit::{ApiServer, parse_manifests};
use envoy_ai_gateway_class::{
    API_KEY_ANNOTATION, CONTROLLER_NAME, EnvoyAiGatewayClass, FIELD_MANAGER, ParentGateway,
    backend_resource, policy_resource, route_resource,
};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::oneshot;

const NS: &str = "team-a";
const URL: &str = "http://envoy-ai-gateway.envoy-gateway-system.svc.cluster.local.:80";
/// The field manager Envoy AI Gateway's controller would write status with.
const ENVOY_CONTROLLER: &str = "envoy-ai-gateway-controller";

async fn cluster() -> ApiServer {
    let server = ApiServer::new();
    for crd in crds::all() {
        server.install_crd(crd).await.expect("install our CRD");
    }
    let envoy_crds = include_str!("crds/envoy-ai-gateway.yaml");
    for crd in parse_manifests(envoy_crds).expect("CRD YAML") {
        server.install_crd(crd).await.expect("install an Envoy CRD");
    }
    server
        .apply_manifests(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NS}\n"
        ))
        .expect("create namespace");
    let class = AiGatewayClass::new(
        "envoy",
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

/// Waits until the gateway's Ready condition has `status` and a message containing
/// `needle`; returns the message.
async fn wait_ready(client: &Client, status: &str, needle: &str) -> String {
    let gateways = Api::<AiGateway>::namespaced(client.clone(), NS);
    eventually(&format!("Ready={status} mentioning {needle:?}"), || async {
        let gateway = gateways.get_opt("gw").await.ok()??;
        let conditions = gateway.status?.conditions;
        let ready = conditions::find_condition(&conditions, types::READY)?;
        (ready.status == status && ready.message.contains(needle)).then(|| ready.message.clone())
    })
    .await
}

fn api(client: &Client, resource: &ApiResource) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), NS, resource)
}

async fn names(client: &Client, resource: &ApiResource) -> Vec<String> {
    let mut names: Vec<String> = api(client, resource)
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .iter()
        .map(|o| o.name_any())
        .collect();
    names.sort();
    names
}

/// Plays Envoy AI Gateway's controller: sets one condition, as it does, for the object's
/// current generation.
async fn set_envoy_status(
    client: &Client,
    resource: &ApiResource,
    name: &str,
    type_: &str,
    message: &str,
) {
    let api = api(client, resource);
    let object = api.get(name).await.expect("child exists");
    let status = json!({"status": {"conditions": [{
        "type": type_, "status": "True", "reason": type_, "message": message,
        "observedGeneration": object.metadata.generation,
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }]}});
    api.patch_status(
        name,
        &PatchParams {
            field_manager: Some(ENVOY_CONTROLLER.into()),
            ..Default::default()
        },
        &Patch::Merge(&status),
    )
    .await
    .expect("write status");
}

async fn accept_all(client: &Client) {
    for resource in [route_resource(), backend_resource(), policy_resource()] {
        for name in names(client, &resource).await {
            set_envoy_status(client, &resource, &name, "Accepted", "accepted").await;
        }
    }
}

fn spec(object: &DynamicObject) -> &Value {
    &object.data["spec"]
}

#[tokio::test]
async fn a_gateway_is_ready_once_envoy_accepts_its_children_and_dropped_providers_are_pruned() {
    let server = cluster().await;
    let client = server.client();
    let implementation = EnvoyAiGatewayClass::new(ParentGateway {
        name: "envoy-ai-gateway".into(),
        namespace: Some("envoy-gateway-system".into()),
    })
    .with_url(URL);
    let (stop, stopped) = oneshot::channel::<()>();
    let operator = Operator::new(client.clone())
        .gateway(implementation)
        .shutdown_on(async move {
            let _ = stopped.await;
        });
    let task = tokio::spawn(operator.run());

    let mut gateway = AiGateway::new(
        "gw",
        AiGatewaySpec {
            ai_gateway_class_name: Some("envoy".into()),
            ai_models: vec![
                AiModel::new("openai", "gpt-4o"),
                AiModel::new("anthropic", "claude-sonnet-4"),
                AiModel::new("openai", "o3"),
            ],
            ..Default::default()
        },
    );
    gateway.metadata.namespace = Some(NS.into());
    let gateways = Api::<AiGateway>::namespaced(client.clone(), NS);
    gateways
        .create(&PostParams::default(), &gateway)
        .await
        .expect("create gateway");

    // Programmed, but not Ready: Envoy AI Gateway has not looked at the children yet.
    wait_ready(&client, "False", "waiting for Envoy AI Gateway").await;
    assert_eq!(names(&client, &route_resource()).await, ["gw"]);
    assert_eq!(
        names(&client, &backend_resource()).await,
        ["gw-anthropic", "gw-openai"]
    );
    assert_eq!(
        names(&client, &policy_resource()).await,
        ["gw-anthropic-apikey", "gw-openai-apikey"]
    );

    let gateway = gateways.get("gw").await.expect("gateway");
    let route = api(&client, &route_resource())
        .get("gw")
        .await
        .expect("route");
    let models: Vec<(&str, &str)> = spec(&route)["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|rule| {
            let header = &rule["matches"][0]["headers"][0];
            assert_eq!(header["name"], "x-ai-eg-model");
            (
                header["value"].as_str().expect("model"),
                rule["backendRefs"][0]["name"].as_str().expect("backend"),
            )
        })
        .collect();
    assert_eq!(
        models,
        [
            ("gpt-4o", "gw-openai"),
            ("claude-sonnet-4", "gw-anthropic"),
            ("o3", "gw-openai")
        ]
    );
    assert_eq!(spec(&route)["parentRefs"][0]["name"], "envoy-ai-gateway");

    let backend = api(&client, &backend_resource())
        .get("gw-anthropic")
        .await
        .expect("backend");
    assert_eq!(spec(&backend)["schema"]["name"], "Anthropic");
    let policy = api(&client, &policy_resource())
        .get("gw-anthropic-apikey")
        .await
        .expect("policy");
    assert_eq!(spec(&policy)["type"], "APIKey");
    assert_eq!(spec(&policy)["targetRefs"][0]["name"], "gw-anthropic");
    assert_eq!(
        spec(&policy)["apiKey"]["secretRef"]["name"],
        "api-key-secrets"
    );
    assert_eq!(
        policy.annotations()[API_KEY_ANNOTATION],
        "ANTHROPIC_API_KEY"
    );
    for child in [&route, &backend, &policy] {
        assert_eq!(
            child.labels()["app.kubernetes.io/managed-by"],
            FIELD_MANAGER
        );
        let owner = &child.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("AiGateway", "gw")
        );
        assert_eq!(Some(&owner.uid), gateway.uid().as_ref());
    }

    // Envoy rejects one backend: the gateway says which and why.
    accept_all(&client).await;
    set_envoy_status(
        &client,
        &backend_resource(),
        "gw-anthropic",
        "NotAccepted",
        "Backend anthropic not found",
    )
    .await;
    let message = wait_ready(&client, "False", "Backend anthropic not found").await;
    assert!(
        message.contains("AIServiceBackend gw-anthropic"),
        "{message}"
    );

    // Envoy accepts everything: Ready, with the platform's URL.
    accept_all(&client).await;
    wait_ready(&client, "True", "").await;
    let status = gateways
        .get("gw")
        .await
        .expect("gateway")
        .status
        .expect("status");
    assert_eq!(status.url.as_deref(), Some(URL));

    // Status written by Envoy's controller must not make us write anything.
    server.reset_stats();
    accept_all(&client).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = server.stats();
    assert!(
        stats.writes_by_manager(ENVOY_CONTROLLER) > 0,
        "the simulated controller wrote"
    );
    assert_eq!(
        stats.writes_by_manager(FIELD_MANAGER)
            + stats.writes_by_manager(&aigateway_runtime::names::status_field_manager(
                FIELD_MANAGER,
                envoy_ai_gateway_class::CONTROLLER_NAME
            )),
        0,
        "{:?}",
        stats.counts
    );

    // Dropping the only anthropic model prunes its backend and policy and reroutes.
    let patch = json!({"spec": {"aiModels": [{"provider": "openai", "name": "gpt-4o"}, {"provider": "openai", "name": "o3"}]}});
    gateways
        .patch("gw", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch gateway");
    eventually("anthropic's backend and policy pruned", || async {
        let backends = names(&client, &backend_resource()).await;
        let policies = names(&client, &policy_resource()).await;
        (backends == ["gw-openai"] && policies == ["gw-openai-apikey"]).then_some(())
    })
    .await;
    let route = eventually("the route without the anthropic rule", || async {
        let route = api(&client, &route_resource()).get("gw").await.ok()?;
        (spec(&route)["rules"].as_array()?.len() == 2).then_some(route)
    })
    .await;
    assert!(!route.data.to_string().contains("anthropic"), "{route:?}");
    // The changed route is a new generation: not Ready until Envoy accepts it again.
    wait_ready(
        &client,
        "False",
        "AIGatewayRoute gw: Envoy AI Gateway has not processed",
    )
    .await;
    accept_all(&client).await;
    wait_ready(&client, "True", "").await;

    let _ = stop.send(());
    task.await
        .expect("operator task")
        .expect("operator stops cleanly");
}
