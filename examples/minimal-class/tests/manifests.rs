//! Every manifest in `examples/manifests/` is accepted by our CRD schemas as written, so
//! the samples cannot rot when the API changes.
//!
//! An API server prunes fields its schema does not know instead of refusing them, so a
//! typo'd field name would be accepted silently. Each document is therefore checked
//! twice: the testkit API server must accept it (server-side dry run of a create), and
//! nothing we sent may be missing from what the server would store. Built-in kinds,
//! which the testkit does not prune, are compared with a round trip through their
//! k8s-openapi type instead.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use aigateway_api::class::DEFAULT_CLASS_ANNOTATION;
use aigateway_api::{AiGateway, AiGatewayClass, GROUP, Guard, resolve};
use aigateway_testkit::{ApiServer, parse_manifests};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{Scope, pinned_kind};
use kube::{Client, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The controller of the LiteLLM class (`litellm_impl::CONTROLLER_NAME`).
const LITELLM_CONTROLLER: &str = "aigateway.agentic-layer.ai/ai-gateway-litellm-controller";

/// The files the examples README describes; a missing one fails the test.
const EXPECTED_FILES: &[&str] = &[
    "agent-snippet.yaml",
    "basic-gateway.yaml",
    "config-patched-gateway.yaml",
    "demo-tool-gateway.yaml",
    "guarded-gateway.yaml",
    "litellm-class-default.yaml",
    "litellm-class.yaml",
    "multi-provider-gateway.yaml",
    "tool-gateway.yaml",
];

/// Why a document is not valid as written.
#[derive(Debug)]
enum Rejection {
    /// The API server refused it (422 for schema violations).
    Refused { code: u16, message: String },
    /// The server (or the built-in type) would not keep these fields: typos, usually.
    Dropped(Vec<String>),
    /// A built-in document does not even deserialise into its type.
    Malformed(String),
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::Refused { code, message } => write!(f, "refused ({code}): {message}"),
            Rejection::Dropped(fields) => {
                write!(f, "fields not kept (typos?): {}", fields.join(", "))
            }
            Rejection::Malformed(error) => write!(f, "not a valid object of its kind: {error}"),
        }
    }
}

fn manifests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests")
}

/// Every document of every `.yaml` file, with its file name, in file order.
fn documents() -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(manifests_dir())
        .expect("examples/manifests exists")
        .map(|entry| entry.expect("readable directory").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    let mut documents = Vec::new();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).expect("readable manifest");
        let parsed = parse_manifests(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!parsed.is_empty(), "{name} has no documents");
        documents.extend(parsed.into_iter().map(|doc| (name.clone(), doc)));
    }
    documents
}

/// A fresh API server with our CRDs installed.
async fn server() -> ApiServer {
    let server = ApiServer::new();
    for crd in aigateway_api::crds::all() {
        server.install_crd(crd).await.expect("install CRD");
    }
    server
}

/// Paths of the fields of `sent` that are missing from, or different in, `kept`.
/// Fields only in `kept` (defaults, server-set metadata) are fine.
fn dropped_fields(sent: &Value, kept: &Value, path: &str, out: &mut Vec<String>) {
    match (sent, kept) {
        (Value::Object(sent), Value::Object(kept)) => {
            for (key, value) in sent {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match kept.get(key) {
                    Some(kept) => dropped_fields(value, kept, &child, out),
                    None => out.push(child),
                }
            }
        }
        (Value::Array(sent), Value::Array(kept)) => {
            for (index, value) in sent.iter().enumerate() {
                let child = format!("{path}[{index}]");
                match kept.get(index) {
                    Some(kept) => dropped_fields(value, kept, &child, out),
                    None => out.push(child),
                }
            }
        }
        (sent, kept) if sent == kept => {}
        (sent, kept) => out.push(format!("{path} (sent {sent}, kept {kept})")),
    }
}

fn round_trip<T: Serialize + DeserializeOwned>(document: &Value) -> Result<Value, Rejection> {
    let typed: T = serde_json::from_value(document.clone())
        .map_err(|e| Rejection::Malformed(e.to_string()))?;
    Ok(serde_json::to_value(typed).expect("k8s-openapi types serialise"))
}

/// What k8s-openapi keeps of a built-in document (the schema a real API server applies).
fn built_in(kind: &str, document: &Value) -> Result<Value, Rejection> {
    match kind {
        "Namespace" => round_trip::<Namespace>(document),
        "Secret" => round_trip::<Secret>(document),
        "ConfigMap" => round_trip::<ConfigMap>(document),
        "Pod" => round_trip::<Pod>(document),
        other => panic!("no built-in check for kind {other}: add its k8s-openapi type here"),
    }
}

/// Checks one document: accepted by the server (created for real when `dry_run` is
/// false) and nothing it says lost on the way.
async fn check(client: &Client, document: &Value, dry_run: bool) -> Result<(), Rejection> {
    let api_version = document["apiVersion"].as_str().expect("apiVersion");
    let kind = document["kind"].as_str().expect("kind");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let ours = group == GROUP;
    // The testkit serves no Pods: for them the k8s-openapi schema is the whole check.
    if kind != "Pod" {
        let (resource, capabilities) =
            pinned_kind(client, &GroupVersionKind::gvk(group, version, kind))
                .await
                .unwrap_or_else(|e| panic!("{api_version} {kind} is not served: {e}"));
        let api: Api<DynamicObject> = match capabilities.scope {
            Scope::Namespaced => {
                let namespace = document["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("default");
                Api::namespaced_with(client.clone(), namespace, &resource)
            }
            Scope::Cluster => Api::all_with(client.clone(), &resource),
        };
        let object: DynamicObject =
            serde_json::from_value(document.clone()).expect("a Kubernetes object");
        let params = PostParams {
            dry_run,
            ..Default::default()
        };
        let stored = api
            .create(&params, &object)
            .await
            .map_err(|error| match error {
                kube::Error::Api(status) => Rejection::Refused {
                    code: status.code,
                    message: status.message,
                },
                other => panic!("the API server failed: {other}"),
            })?;
        if ours {
            let mut dropped = Vec::new();
            dropped_fields(
                document,
                &serde_json::to_value(stored).unwrap(),
                "",
                &mut dropped,
            );
            return if dropped.is_empty() {
                Ok(())
            } else {
                Err(Rejection::Dropped(dropped))
            };
        }
    }
    let mut dropped = Vec::new();
    dropped_fields(document, &built_in(kind, document)?, "", &mut dropped);
    if dropped.is_empty() {
        Ok(())
    } else {
        Err(Rejection::Dropped(dropped))
    }
}

fn describe(file: &str, document: &Value) -> String {
    format!(
        "{file}: {} {}/{}",
        document["kind"].as_str().unwrap_or("?"),
        document["metadata"]["namespace"].as_str().unwrap_or("-"),
        document["metadata"]["name"].as_str().unwrap_or("?"),
    )
}

#[tokio::test]
async fn every_manifest_is_valid_as_written() {
    let documents = documents();
    let files: BTreeSet<&str> = documents.iter().map(|(file, _)| file.as_str()).collect();
    for expected in EXPECTED_FILES {
        assert!(
            files.contains(expected),
            "examples/manifests/{expected} is missing"
        );
    }

    // Each file applies on its own: it declares every namespace its objects use.
    let mut declared: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (file, document) in &documents {
        if document["kind"] == "Namespace" {
            let name = document["metadata"]["name"]
                .as_str()
                .expect("namespace name");
            declared.entry(file).or_default().insert(name);
        }
    }
    for (file, document) in &documents {
        if let Some(namespace) = document["metadata"]["namespace"].as_str() {
            assert!(
                declared
                    .get(file.as_str())
                    .is_some_and(|d| d.contains(namespace)),
                "{}: namespace {namespace} is not declared in the same file",
                describe(file, document)
            );
        }
    }

    let server = server().await;
    let client = server.client();
    // Namespaces first, for real (each once), so that the other objects can be created.
    let mut created = BTreeSet::new();
    for (file, document) in documents.iter().filter(|(_, d)| d["kind"] == "Namespace") {
        if created.insert(document["metadata"]["name"].to_string())
            && let Err(rejection) = check(&client, document, false).await
        {
            panic!("{}: {rejection}", describe(file, document));
        }
    }
    // Everything else as a dry run: both class files define `litellm`, both must pass.
    let mut failures = Vec::new();
    for (file, document) in documents.iter().filter(|(_, d)| d["kind"] != "Namespace") {
        if let Err(rejection) = check(&client, document, true).await {
            failures.push(format!("{}: {rejection}", describe(file, document)));
        }
    }
    assert!(
        failures.is_empty(),
        "invalid manifests:\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
async fn broken_documents_are_caught() {
    let server = server().await;
    let client = server.client();
    let gateway = |spec: Value| {
        json!({
            "apiVersion": "runtime.agentic-layer.ai/v1alpha1", "kind": "AiGateway",
            "metadata": {"name": "broken", "namespace": "default"}, "spec": spec,
        })
    };

    // A typo'd field name: the server accepts the object but prunes the field.
    let typo = gateway(json!({
        "aiGatewayClass": "litellm",
        "aiModels": [{"provider": "openai", "name": "gpt-4o"}],
    }));
    match check(&client, &typo, true).await {
        Err(Rejection::Dropped(fields)) => assert_eq!(fields, ["spec.aiGatewayClass"]),
        other => panic!("a typo'd field must be reported as dropped, got {other:?}"),
    }

    // Values outside the schema are refused with 422 Unprocessable Entity.
    let bad_port =
        gateway(json!({"port": 70000, "aiModels": [{"provider": "openai", "name": "m"}]}));
    let no_models = gateway(json!({"aiModels": []}));
    let bad_mode = json!({
        "apiVersion": "runtime.agentic-layer.ai/v1alpha1", "kind": "Guard",
        "metadata": {"name": "broken", "namespace": "default"},
        "spec": {"mode": ["pre-call"], "providerRef": {"name": "presidio"}},
    });
    let bad_controller = json!({
        "apiVersion": "runtime.agentic-layer.ai/v1alpha1", "kind": "AiGatewayClass",
        "metadata": {"name": "broken"}, "spec": {"controller": "litellm"},
    });
    for (what, document) in [
        ("port 70000", bad_port),
        ("no models", no_models),
        ("guard mode pre-call", bad_mode),
        ("controller without domain", bad_controller),
    ] {
        match check(&client, &document, true).await {
            Err(Rejection::Refused { code: 422, .. }) => {}
            other => panic!("{what}: expected 422, got {other:?}"),
        }
    }

    // Built-in kinds: a typo'd field is dropped by the k8s-openapi schema.
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "api-key-secrets", "namespace": "default"},
        "stringdata": {"OPENAI_API_KEY": "FAKE"},
    });
    match check(&client, &secret, true).await {
        Err(Rejection::Dropped(fields)) => assert_eq!(fields, ["stringdata"]),
        other => panic!("a typo'd Secret field must be reported, got {other:?}"),
    }
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "agent", "namespace": "default"},
        "spec": {"containers": [{"name": "agent", "image": "busybox", "evn": []}]},
    });
    match check(&client, &pod, true).await {
        Err(Rejection::Dropped(fields)) => assert_eq!(fields, ["spec.containers[0].evn"]),
        other => panic!("a typo'd Pod field must be reported, got {other:?}"),
    }
}

fn typed<T: DeserializeOwned>(document: &Value) -> T {
    serde_json::from_value(document.clone()).expect("a valid document")
}

#[test]
fn the_classes_are_the_litellm_class_plain_and_default() {
    let documents = documents();
    let class_in = |file: &str| -> AiGatewayClass {
        let (_, document) = documents
            .iter()
            .find(|(f, d)| f == file && d["kind"] == "AiGatewayClass")
            .unwrap_or_else(|| panic!("{file} defines an AiGatewayClass"));
        typed(document)
    };
    let plain = class_in("litellm-class.yaml");
    let default = class_in("litellm-class-default.yaml");
    for class in [&plain, &default] {
        assert_eq!(class.name_any(), "litellm");
        assert_eq!(class.spec.controller, LITELLM_CONTROLLER);
    }
    assert!(!plain.is_default());
    assert!(
        default.is_default(),
        "{DEFAULT_CLASS_ANNOTATION} must be \"true\""
    );
}

#[test]
fn references_resolve_within_the_manifests() {
    let documents = documents();
    let exists = |kind: &str, namespace: &str, name: &str| {
        documents.iter().any(|(_, d)| {
            d["kind"] == kind
                && d["metadata"]["namespace"] == namespace
                && d["metadata"]["name"] == name
        })
    };
    let mut gateway_urls = BTreeSet::new();
    for (file, document) in documents.iter().filter(|(_, d)| d["kind"] == "AiGateway") {
        let gateway: AiGateway = typed(document);
        let namespace = gateway.namespace().expect("gateways name their namespace");
        gateway_urls.insert(gateway.service_url().expect("name and namespace"));
        for guard in &gateway.spec.guardrails {
            let guard_namespace = guard.namespace.as_deref().unwrap_or(&namespace);
            let guard_name = guard.name.as_deref().expect("guard name");
            assert!(
                exists("Guard", guard_namespace, guard_name),
                "{file}: Guard {guard_namespace}/{guard_name}"
            );
        }
        if let Some(patch) = gateway
            .annotations()
            .get("ai-gateway-litellm.agentic-layer.ai/config-patch")
        {
            let (_, config_map) = documents
                .iter()
                .find(|(_, d)| {
                    d["kind"] == "ConfigMap"
                        && d["metadata"]["namespace"] == namespace.as_str()
                        && d["metadata"]["name"] == patch.as_str()
                })
                .unwrap_or_else(|| panic!("{file}: config-patch ConfigMap {namespace}/{patch}"));
            let text = config_map["data"]["patch.yaml"]
                .as_str()
                .expect("key patch.yaml");
            let parsed = parse_manifests(text).expect("patch.yaml is YAML");
            assert!(
                parsed.len() == 1 && parsed[0].is_object(),
                "{file}: patch.yaml is one mapping"
            );
        }
    }
    for (file, document) in documents.iter().filter(|(_, d)| d["kind"] == "Guard") {
        let guard: Guard = typed(document);
        let namespace = guard.namespace().expect("guards name their namespace");
        let provider = &guard.spec.provider_ref;
        let provider_namespace = provider.namespace.as_deref().unwrap_or(&namespace);
        let provider_name = provider.name.as_deref().expect("provider name");
        assert!(
            exists("GuardrailProvider", provider_namespace, provider_name),
            "{file}: GuardrailProvider {provider_namespace}/{provider_name}"
        );
    }

    // What agents receive points at a gateway defined here, on that gateway's port.
    let mut handed_out = 0;
    for (file, document) in documents.iter().filter(|(_, d)| d["kind"] == "Pod") {
        let pod: Pod = typed(document);
        for container in pod.spec.expect("pod spec").containers {
            for var in container.env.unwrap_or_default() {
                if var.name == resolve::GATEWAY_URL_ENV {
                    let url = var.value.expect("a literal URL");
                    assert!(
                        gateway_urls.contains(&url),
                        "{file}: {url} is no gateway's URL; gateways: {gateway_urls:?}"
                    );
                    handed_out += 1;
                }
            }
        }
    }
    assert!(
        handed_out >= 2,
        "the agent snippet shows the default and an explicit gateway"
    );
    // An agent without aiGatewayRef gets the first gateway by name in namespace ai-gateway.
    let defaults: Vec<AiGateway> = documents
        .iter()
        .filter(|(_, d)| {
            d["kind"] == "AiGateway"
                && d["metadata"]["namespace"] == resolve::DEFAULT_GATEWAY_NAMESPACE
        })
        .map(|(_, d)| typed(d))
        .collect();
    let default = resolve::pick_default(&defaults).expect("a gateway in namespace ai-gateway");
    assert_eq!(
        default.service_url().as_deref(),
        Some("http://ai-gateway.ai-gateway.svc.cluster.local.:80")
    );
}
