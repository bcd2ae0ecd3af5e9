//! Every sample manifest deserialises into our types and serialises back unchanged.
//!
//! `tests/fixtures/samples/` holds the manifests upstream's users apply (imported by
//! `scripts/import-upstream.py`) and `all-fields.yaml`, which uses every spec field.

use aigateway_api::{AiGateway, AiGatewayClass, Guard, GuardrailProvider};
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
fn every_field_round_trips() {
    assert_eq!(check("all-fields.yaml"), 7);
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
    // A present spec is still read strictly.
    let bad = serde_json::from_value::<AiGateway>(serde_json::json!({
        "apiVersion": "runtime.agentic-layer.ai/v1alpha1", "kind": "AiGateway",
        "metadata": {"name": "bad"}, "spec": {"aiModels": "not a list"}
    }));
    assert!(bad.is_err());
}
