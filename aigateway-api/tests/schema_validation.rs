//! The generated schema rejects invalid objects, as an API server with our CRDs would.
//! Checked against the testkit's API server, which validates custom resources with the
//! CRD's openAPIV3Schema and answers 422 with Kubernetes-style field errors.

use aigateway_api::{
    AgentGateway, AiGateway, AiGatewayClass, ToolRoute, ToolServer, ToolServerTransport, crds,
};
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
    create::<AiGateway>(server, name, spec).await
}

/// Creates `spec` as a namespaced `K`; returns the 422 message, or `None` when accepted.
async fn create<K: kube::Resource<DynamicType = ()>>(
    server: &ApiServer,
    name: &str,
    spec: Value,
) -> Option<String> {
    let resource = kube::api::ApiResource::erase::<K>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(server.client(), "default", &resource);
    let object: DynamicObject = serde_json::from_value(
        json!({"apiVersion": resource.api_version, "kind": resource.kind, "metadata": {"name": name}, "spec": spec}),
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

#[tokio::test]
async fn invalid_tool_servers_routes_and_agent_gateways_are_rejected() {
    let server = server().await;
    let image = "ghcr.io/example/mcp:1";
    let rejected = [
        (
            create::<ToolServer>(&server, "no-image", json!({})).await,
            "spec.image",
            "Required value",
        ),
        (
            create::<ToolServer>(&server, "empty-image", json!({"image": ""})).await,
            "spec.image",
            "should be at least 1 chars long",
        ),
        (
            create::<ToolServer>(&server, "port-zero", json!({"image": image, "port": 0})).await,
            "spec.port",
            "should be greater than or equal to 1",
        ),
        (
            create::<ToolServer>(
                &server,
                "relative-path",
                json!({"image": image, "path": "mcp"}),
            )
            .await,
            "spec.path",
            "should match",
        ),
        (
            create::<ToolServer>(
                &server,
                "grpc",
                json!({"image": image, "transportType": "grpc"}),
            )
            .await,
            "spec.transportType",
            "Unsupported value",
        ),
        (
            create::<ToolRoute>(&server, "no-upstream", json!({})).await,
            "spec.upstream",
            "Required value",
        ),
        (
            create::<ToolRoute>(
                &server,
                "ftp",
                json!({"upstream": {"external": {"url": "ftp://files.example.com/mcp"}}}),
            )
            .await,
            "spec.upstream.external.url",
            "should match",
        ),
        (
            create::<AgentGateway>(&server, "no-replicas", json!({"replicas": 0})).await,
            "spec.replicas",
            "should be greater than or equal to 1",
        ),
    ];
    for (answer, field, rule) in rejected {
        let message = answer.unwrap_or_else(|| panic!("{field} was accepted"));
        assert!(
            message.contains(field) && message.contains(rule),
            "expected `{field}` / `{rule}` in: {message}"
        );
    }
}

#[tokio::test]
async fn tool_servers_and_agent_gateways_are_defaulted_as_upstream_does() {
    let server = server().await;
    assert_eq!(
        create::<ToolServer>(&server, "echo", json!({"image": "ghcr.io/example/mcp:1"})).await,
        None
    );
    let stored: ToolServer = Api::namespaced(server.client(), "default")
        .get("echo")
        .await
        .unwrap();
    assert_eq!(stored.spec.transport_type, ToolServerTransport::Http);
    assert_eq!(stored.spec.path(), "/mcp");
    assert_eq!(
        create::<AgentGateway>(&server, "agents", json!({})).await,
        None
    );
    let stored: AgentGateway = Api::namespaced(server.client(), "default")
        .get("agents")
        .await
        .unwrap();
    assert_eq!(stored.spec.replicas, Some(1));
    assert_eq!(stored.spec.timeout.as_deref(), Some("360s"));
}
