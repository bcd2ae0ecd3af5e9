//! Every sample manifest deserialises into our types and serialises back unchanged.
//!
//! `tests/fixtures/samples/` holds the manifests upstream's users apply (imported by
//! `scripts/import-upstream.py`) and `all-fields.yaml`, which uses every spec field.

use aigateway_api::{
    AgentGateway, AgentGatewayClass, AiGateway, AiGatewayClass, Guard, GuardrailProvider,
    ToolGateway, ToolGatewayClass, ToolRoute, ToolServer,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn documents(file: &str) -> Vec<Value> {
    let path = format!(
        "{}/tests/fixtures/samples/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("parse {path}: {e}"))
}

fn round_trip<T: DeserializeOwned + Serialize>(document: &Value) -> Value {
    let typed: T = serde_json::from_value(document.clone()).unwrap_or_else(|e| {
        panic!(
            "{} does not deserialise: {e}\n{document:#}",
            document["metadata"]["name"]
        )
    });
    serde_json::to_value(typed).unwrap()
}

/// Round-trips every document of a kind we own; returns how many there were.
fn check(file: &str) -> usize {
    let mut checked = 0;
    for document in documents(file) {
        let back = match document["kind"].as_str() {
            Some("AiGateway") => round_trip::<AiGateway>(&document),
            Some("AiGatewayClass") => round_trip::<AiGatewayClass>(&document),
            Some("Guard") => round_trip::<Guard>(&document),
            Some("GuardrailProvider") => round_trip::<GuardrailProvider>(&document),
            Some("ToolGateway") => round_trip::<ToolGateway>(&document),
            Some("ToolGatewayClass") => round_trip::<ToolGatewayClass>(&document),
            Some("ToolRoute") => round_trip::<ToolRoute>(&document),
            Some("ToolServer") => round_trip::<ToolServer>(&document),
            Some("AgentGateway") => round_trip::<AgentGateway>(&document),
            Some("AgentGatewayClass") => round_trip::<AgentGatewayClass>(&document),
            _ => continue,
        };
        assert_eq!(
            back,
            as_stored(document.clone()),
            "{file}: {} changed in a round trip",
            document["metadata"]["name"]
        );
        checked += 1;
    }
    checked
}

/// The document as the API server stores it: the CRD defaults `name` to `""` in
/// references to Secrets and ConfigMaps (controller-gen's rendering of Kubernetes'
/// `LocalObjectReference`), and k8s-openapi always writes that field. Nothing else may
/// differ.
fn as_stored(mut document: Value) -> Value {
    fn walk(value: &mut Value, key: Option<&str>) {
        match value {
            Value::Object(object) => {
                let defaulted = [
                    "apiKeySecretRef",
                    "secretKeyRef",
                    "configMapKeyRef",
                    "secretRef",
                    "configMapRef",
                ];
                if key.is_some_and(|k| defaulted.contains(&k)) {
                    object
                        .entry("name")
                        .or_insert_with(|| Value::String(String::new()));
                }
                for (k, v) in object.iter_mut() {
                    walk(v, Some(k));
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| walk(v, None)),
            _ => {}
        }
    }
    walk(&mut document, None);
    document
}

#[test]
fn upstream_samples_round_trip() {
    assert_eq!(check("aigateway.yaml"), 1);
    assert_eq!(check("aigateway-guarded.yaml"), 3);
    assert_eq!(check("aigateway-with-patch.yaml"), 1);
    assert_eq!(check("aigatewayclass.yaml"), 1);
}

#[test]
fn upstream_tool_gateway_samples_round_trip() {
    assert_eq!(check("toolgatewayclass.yaml"), 1);
    // A ToolGateway and its ToolRoute in another namespace.
    assert_eq!(check("toolgateway.yaml"), 2);
    // GuardrailProvider, Guard, ToolGateway, ToolRoute.
    assert_eq!(check("toolgateway-guarded.yaml"), 4);
    assert_eq!(check("toolgateway-with-patch.yaml"), 2);
    // Only built-in kinds (the echo MCP server's Deployment and Service).
    assert_eq!(check("backends-tool-server.yaml"), 0);
}

#[test]
fn agent_runtime_operator_samples_round_trip() {
    // Namespace, ToolServer, ToolRoute (glob tool filters), Agent (not ours).
    assert_eq!(check("agent-runtime-toolroute.yaml"), 2);
    assert_eq!(check("agent-runtime-toolserver.yaml"), 1);
    assert_eq!(check("agent-runtime-guard.yaml"), 4);
    assert_eq!(check("agent-runtime-guardrailprovider.yaml"), 4);
    let route: ToolRoute = documents("agent-runtime-toolroute.yaml")
        .into_iter()
        .find(|d| d["kind"] == "ToolRoute")
        .map(|d| serde_json::from_value(d).unwrap())
        .unwrap();
    let filter = route.spec.tool_filter.as_ref().unwrap();
    assert_eq!(
        (filter.allow.as_slice(), filter.deny.as_slice()),
        (
            &["get_*".to_owned(), "list_*".to_owned()][..],
            &["*delete*".to_owned()][..]
        )
    );
    let gateway = route.gateway().unwrap();
    assert_eq!(
        (gateway.namespace.as_str(), gateway.name.as_str()),
        ("test-tool-servers", "example-toolgateway")
    );
}

#[test]
fn a_tool_route_finds_its_gateway_as_upstream_does() {
    let routes: Vec<ToolRoute> = documents("toolgateway.yaml")
        .into_iter()
        .filter(|d| d["kind"] == "ToolRoute")
        .map(|d| serde_json::from_value(d).unwrap())
        .collect();
    let gateway = routes[0]
        .gateway()
        .expect("the sample route names its gateway");
    assert_eq!(
        (gateway.namespace.as_str(), gateway.name.as_str()),
        ("tool-gateway", "tool-gateway")
    );
    let same_namespace = documents("all-fields.yaml")
        .into_iter()
        .find(|d| d["kind"] == "ToolRoute" && d["metadata"]["name"] == "weather")
        .map(|d| serde_json::from_value::<ToolRoute>(d).unwrap())
        .unwrap();
    let gateway = same_namespace.gateway().unwrap();
    assert_eq!(
        (gateway.namespace.as_str(), gateway.name.as_str()),
        ("team-a", "tools")
    );
    let mut unattached = same_namespace.clone();
    unattached.spec.tool_gateway_ref = None;
    assert_eq!(unattached.gateway(), None);
}

#[test]
fn every_field_round_trips() {
    assert_eq!(check("all-fields.yaml"), 14);
}

#[test]
fn a_renamed_field_is_caught() {
    let mut document = documents("aigateway.yaml")
        .into_iter()
        .find(|d| d["kind"] == "AiGateway")
        .unwrap();
    let spec = document["spec"].as_object_mut().unwrap();
    let class = spec.remove("aiGatewayClassName").unwrap();
    spec.insert("gatewayClassName".into(), class);
    // Unknown fields are ignored on read, so the round trip loses the renamed one.
    assert_ne!(round_trip::<AiGateway>(&document), document);
}

#[test]
fn objects_without_spec_read_as_the_default_spec() {
    // The CRDs (ours and upstream's) accept these; one unreadable object would stop a
    // typed watch of the whole kind.
    let gateway: AiGateway = serde_json::from_value(serde_json::json!({
        "apiVersion": "runtime.agentic-layer.ai/v1alpha1", "kind": "AiGateway",
        "metadata": {"name": "empty", "namespace": "default"}
    }))
    .unwrap();
    assert!(gateway.spec.ai_models.is_empty());
    let null_spec: AiGateway = serde_json::from_value(serde_json::json!({
        "apiVersion": "runtime.agentic-layer.ai/v1alpha1", "kind": "AiGateway",
        "metadata": {"name": "null"}, "spec": null
    }))
    .unwrap();
    assert_eq!(null_spec.spec.port(), 80);
    let class: AiGatewayClass = serde_json::from_value(serde_json::json!({
        "apiVersion": "runtime.agentic-layer.ai/v1alpha1", "kind": "AiGatewayClass", "metadata": {"name": "bare"}
    }))
    .unwrap();
    assert_eq!(class.spec.controller, "");
    for kind in ["ToolGateway", "ToolRoute", "ToolServer", "AgentGateway"] {
        let object = serde_json::json!({
            "apiVersion": "runtime.agentic-layer.ai/v1alpha1", "kind": kind,
            "metadata": {"name": "empty", "namespace": "default"}
        });
        let readable = match kind {
            "ToolGateway" => serde_json::from_value::<ToolGateway>(object).is_ok(),
            "ToolRoute" => serde_json::from_value::<ToolRoute>(object).is_ok(),
            "ToolServer" => serde_json::from_value::<ToolServer>(object).is_ok(),
            _ => serde_json::from_value::<AgentGateway>(object).is_ok(),
        };
        assert!(readable, "a {kind} without spec must be readable");
    }
    // A present spec is still read strictly.
    let bad = serde_json::from_value::<AiGateway>(serde_json::json!({
        "apiVersion": "runtime.agentic-layer.ai/v1alpha1", "kind": "AiGateway",
        "metadata": {"name": "bad"}, "spec": {"aiModels": "not a list"}
    }));
    assert!(bad.is_err());
}
