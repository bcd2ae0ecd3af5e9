//! The generated schema rejects invalid objects, as an API server with our CRDs would.
//! Checked against the testkit's API server, which validates custom resources with the
//! CRD's openAPIV3Schema and answers 422 with Kubernetes-style field errors.

use aigateway_api::{AiGateway, AiGatewayClass, crds};
use aigateway_testkit::ApiServer;
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::{Value, json};

async fn server() -> ApiServer {
    let server = ApiServer::new();
    for crd in crds::all() {
        server.install_crd(crd).await.unwrap();
    }
    server
}

/// Creates `spec` as an AiGateway; returns the 422 message, or `None` when accepted.
async fn create_gateway(server: &ApiServer, name: &str, spec: Value) -> Option<String> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        server.client(),
        "default",
        &kube::api::ApiResource::erase::<AiGateway>(&()),
    );
    let object: DynamicObject = serde_json::from_value(
        json!({"apiVersion": "runtime.agentic-layer.ai/v1alpha1", "kind": "AiGateway", "metadata": {"name": name}, "spec": spec}),
    )
    .unwrap();
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => None,
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{status:?}");
            Some(status.message)
        }
        Err(other) => panic!("unexpected error: {other}"),
    }
}

#[tokio::test]
async fn invalid_gateways_are_rejected_by_the_rule_that_applies() {
    let server = server().await;
    let model = json!([{"name": "gpt-4o", "provider": "openai"}]);
    for (name, spec, field, rule) in [
        (
            "no-models",
            json!({"aiModels": []}),
            "spec.aiModels",
            "should have at least 1 items",
        ),
        (
            "missing-models",
            json!({}),
            "spec.aiModels",
            "Required value",
        ),
        (
            "port-zero",
            json!({"aiModels": model, "port": 0}),
            "spec.port",
            "should be greater than or equal to 1",
        ),
        (
            "port-high",
            json!({"aiModels": model, "port": 65536}),
            "spec.port",
            "should be less than or equal to 65535",
        ),
        (
            "empty-name",
            json!({"aiModels": [{"name": "", "provider": "openai"}]}),
            "spec.aiModels[0].name",
            "should be at least 1 chars long",
        ),
        (
            "empty-provider",
            json!({"aiModels": [{"name": "m", "provider": ""}]}),
            "spec.aiModels[0].provider",
            "should be at least 1 chars long",
        ),
    ] {
        let message = create_gateway(&server, name, spec)
            .await
            .unwrap_or_else(|| panic!("{name} was accepted"));
        assert!(
            message.contains(field) && message.contains(rule),
            "{name}: expected `{field}` / `{rule}` in: {message}"
        );
    }
}

#[tokio::test]
async fn a_valid_gateway_is_accepted_and_defaulted() {
    let server = server().await;
    assert_eq!(
        create_gateway(
            &server,
            "ok",
            json!({"aiModels": [{"name": "gpt-4o", "provider": "openai"}]})
        )
        .await,
        None
    );
    let stored: AiGateway = Api::namespaced(server.client(), "default")
        .get("ok")
        .await
        .unwrap();
    assert_eq!(stored.spec.port, Some(80), "the CRD defaults the port");
}

#[tokio::test]
async fn class_controller_names_must_be_domain_prefixed() {
    let server = server().await;
    let api: Api<AiGatewayClass> = Api::all(server.client());
    let class = |controller: &str| -> AiGatewayClass {
        serde_json::from_value(json!({"metadata": {"name": controller.replace(['/', '.'], "-")}, "spec": {"controller": controller}})).unwrap()
    };
    assert!(
        api.create(&PostParams::default(), &class("example.com/gateway"))
            .await
            .is_ok()
    );
    match api.create(&PostParams::default(), &class("litellm")).await {
        Err(kube::Error::Api(status)) => assert!(
            status.message.contains("spec.controller"),
            "{}",
            status.message
        ),
        other => panic!("a bare controller name was accepted: {other:?}"),
    }
}
