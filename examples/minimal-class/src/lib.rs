//! A complete AiGateway class operator: every gateway of a class whose `spec.controller`
//! is [`CONTROLLER_NAME`] gets an OpenAI-compatible mock proxy serving the gateway's
//! models (WireMock with one stub per model), reachable at the gateway's Service URL.
//!
//! The runtime does everything else: claiming gateways, server-side apply with owner
//! references and labels, pruning, conditions, events, metrics and shutdown.
#![warn(missing_docs)]

use std::collections::BTreeMap;

use aigateway_api::AiGateway;
use aigateway_runtime::{
    Context, DesiredState, GatewayImplementation, ImplementationError, Observed, Readiness,
    deployments_rolled_out, roll_pods_on,
};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::api::DynamicObject;
use serde_json::{Value, json};

/// The `spec.controller` of the AiGatewayClasses this operator implements. The field
/// manager (`MinimalClass.field_manager()`) is derived from it.
pub const CONTROLLER_NAME: &str = "example.com/minimal-class";
/// The proxy image: WireMock, which serves the stubs in [`mappings`] as an OpenAI API.
pub const IMAGE: &str = "wiremock/wiremock:3.13.1";
/// The port WireMock listens on inside the pod (its default).
pub const CONTAINER_PORT: i32 = 8080;
/// Where the WireMock image reads stub files from.
pub const MAPPINGS_DIR: &str = "/home/wiremock/mappings";

/// The class operator. It has no state: everything it needs is in the gateway.
#[derive(Debug, Default, Clone, Copy)]
pub struct MinimalClass;

#[async_trait::async_trait]
impl GatewayImplementation for MinimalClass {
    fn controller_name(&self) -> &str {
        CONTROLLER_NAME
    }

    async fn desired_state(
        &self,
        gateway: &AiGateway,
        _ctx: &Context,
    ) -> Result<DesiredState, ImplementationError> {
        Ok(desired_state(gateway))
    }

    // The default already is "every child Deployment rolled out"; it is spelled out
    // because this is where a class with other kinds of children judges their status.
    fn readiness(&self, _gateway: &AiGateway, observed: &Observed) -> Readiness {
        deployments_rolled_out(observed)
    }
}

/// The children of one gateway: ConfigMap `<gw>-mock` with the stubs, and Deployment and
/// Service `<gw>`. Pure, so it can be tested without a cluster.
pub fn desired_state(gateway: &AiGateway) -> DesiredState {
    let name = gateway.name_any();
    let labels = json!({ "app": name });
    let stubs_json = mappings(gateway).to_string();
    let stubs = ConfigMap {
        metadata: ObjectMeta {
            name: Some(format!("{name}-mock")),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "mappings.json".to_owned(),
            stubs_json.clone(),
        )])),
        ..Default::default()
    };
    let mut deployment = dynamic(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": name },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": labels },
            "template": {
                "metadata": { "labels": labels },
                "spec": {
                    "containers": [{
                        "name": "mock",
                        "image": IMAGE,
                        "args": ["--port", CONTAINER_PORT.to_string()],
                        "ports": [{ "name": "http", "containerPort": CONTAINER_PORT }],
                        "readinessProbe": { "httpGet": { "path": "/v1/models", "port": "http" } },
                        "volumeMounts": [{ "name": "mappings", "mountPath": MAPPINGS_DIR }],
                    }],
                    "volumes": [{ "name": "mappings", "configMap": { "name": format!("{name}-mock") } }],
                },
            },
        },
    }));
    // WireMock reads its stubs only at start: new stubs must roll the pods.
    roll_pods_on(&mut deployment, &stubs_json);
    let service = dynamic(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": { "name": name },
        "spec": {
            "selector": labels,
            "ports": [{ "name": "http", "port": gateway.spec.port(), "targetPort": "http" }],
        },
    }));
    DesiredState::new()
        .with(&stubs)
        .with_dynamic(deployment)
        .with_dynamic(service)
        .with_url(gateway.service_url().unwrap_or_default())
}

/// WireMock stubs: `GET /v1/models` lists the gateway's models, and `POST
/// /v1/chat/completions` answers for each of them (any other model gets a 404).
pub fn mappings(gateway: &AiGateway) -> Value {
    let listed: Vec<Value> = gateway
        .spec
        .ai_models
        .iter()
        .map(|m| json!({ "id": m.name, "object": "model", "owned_by": m.provider }))
        .collect();
    let mut stubs = vec![json!({
        "request": { "method": "GET", "urlPathPattern": "(/v1)?/models" },
        "response": { "status": 200, "jsonBody": { "object": "list", "data": listed } },
    })];
    stubs.extend(gateway.spec.ai_models.iter().map(|m| {
        json!({
            "request": {
                "method": "POST",
                "urlPathPattern": "(/v1)?/chat/completions",
                "bodyPatterns": [{ "equalToJson": { "model": m.name }, "ignoreExtraElements": true }],
            },
            "response": {
                "status": 200,
                "headers": { "Content-Type": "application/json" },
                "jsonBody": {
                    "id": "chatcmpl-mock", "object": "chat.completion", "model": m.name,
                    "choices": [{ "index": 0, "finish_reason": "stop",
                        "message": { "role": "assistant", "content": format!("Hello from the {} mock.", m.name) } }],
                },
            },
        })
    }));
    json!({ "mappings": stubs })
}

fn dynamic(object: Value) -> DynamicObject {
    serde_json::from_value(object).expect("an object literal with apiVersion and kind")
}
