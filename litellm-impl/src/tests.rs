//! Unit tests of [`render`](crate::render): every parity fact with the Go operator and
//! every improvement over it.

use std::collections::BTreeMap;

use aigateway_api::AiGateway;
use k8s_openapi::api::core::v1::{Container, EnvVar, PodTemplateSpec};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::names;
use crate::{
    InMemoryObjects, InputObject, ProblemReason, RenderError, RenderSettings, Rendered,
    parse_documents, render,
};

const API: &str = "apiVersion: runtime.agentic-layer.ai/v1alpha1";

fn setup(yaml: &str) -> (InMemoryObjects, AiGateway) {
    let objects = parse_documents(yaml, "test").unwrap();
    let mut lookup = InMemoryObjects::new();
    lookup.extend(&objects);
    let gateway = objects
        .into_iter()
        .find_map(|o| match o {
            InputObject::AiGateway(g) => Some(g),
            _ => None,
        })
        .expect("a gateway in the test input");
    (lookup, gateway)
}

fn try_render(yaml: &str) -> Result<Rendered, RenderError> {
    let (lookup, gateway) = setup(yaml);
    render(&gateway, &lookup, &RenderSettings::default())
}

fn rendered(yaml: &str) -> Rendered {
    try_render(yaml).unwrap()
}

fn gateway(spec: &str) -> String {
    format!("{API}\nkind: AiGateway\nmetadata:\n  name: gw\n  namespace: ns\nspec:\n{spec}")
}

fn config(r: &Rendered) -> Value {
    serde_saphyr::from_str(&r.config_yaml).unwrap()
}

fn template(r: &Rendered) -> &PodTemplateSpec {
    &r.deployment.spec.as_ref().unwrap().template
}

fn container(r: &Rendered) -> &Container {
    &template(r).spec.as_ref().unwrap().containers[0]
}

fn env(r: &Rendered) -> Vec<EnvVar> {
    container(r).env.clone().unwrap_or_default()
}

fn env_names(r: &Rendered) -> Vec<String> {
    env(r).into_iter().map(|e| e.name).collect()
}

fn reasons(r: &Rendered) -> Vec<(ProblemReason, String)> {
    r.problems
        .iter()
        .map(|p| (p.reason, p.object.to_string()))
        .collect()
}

const ONE_MODEL: &str = "  aiModels: [{provider: openai, name: gpt-4o}]\n";
const SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata: {name: api-key-secrets, namespace: ns}\nstringData: {OPENAI_API_KEY: sk-1, ANTHROPIC_API_KEY: sk-2}\n";

// ----------------------------------------------------------------------------- parity

#[test]
fn config_map_is_named_gw_config_with_key_config_yaml_and_app_label() {
    let r = rendered(&gateway(ONE_MODEL));
    assert_eq!(r.config_map.metadata.name.as_deref(), Some("gw-config"));
    assert_eq!(r.config_map.metadata.namespace.as_deref(), Some("ns"));
    assert_eq!(
        r.config_map.metadata.labels,
        Some(BTreeMap::from([("app".to_owned(), "gw".to_owned())]))
    );
    assert_eq!(
        r.config_map.data.as_ref().unwrap()["config.yaml"],
        r.config_yaml
    );
}

#[test]
fn model_list_has_one_entry_per_model_in_order() {
    let r = rendered(&gateway(
        "  aiModels:\n  - {provider: openai, name: gpt-4o}\n  - {provider: anthropic, name: claude}\n  - {provider: openai, name: gpt-3.5-turbo}\n",
    ));
    assert_eq!(
        config(&r)["model_list"],
        json!([
            {"model_name": "gpt-4o", "litellm_params": {"model": "openai/gpt-4o", "api_key": "os.environ/OPENAI_API_KEY"}},
            {"model_name": "claude", "litellm_params": {"model": "anthropic/claude", "api_key": "os.environ/ANTHROPIC_API_KEY"}},
            {"model_name": "gpt-3.5-turbo", "litellm_params": {"model": "openai/gpt-3.5-turbo", "api_key": "os.environ/OPENAI_API_KEY"}},
        ])
    );
    assert_eq!(
        config(&r)["litellm_settings"],
        json!({"request_timeout": 600, "callbacks": ["otel", "prometheus"]})
    );
    assert!(config(&r).get("guardrails").is_none());
}

#[test]
fn one_api_key_env_per_distinct_provider_from_api_key_secrets() {
    let r = rendered(&format!(
        "{SECRET}---\n{}",
        gateway(
            "  aiModels:\n  - {provider: openai, name: a}\n  - {provider: anthropic, name: b}\n  - {provider: openai, name: c}\n"
        )
    ));
    let keys: Vec<_> = env(&r)
        .into_iter()
        .filter(|e| e.name.ends_with("_API_KEY"))
        .collect();
    assert_eq!(keys.len(), 2);
    for (var, name) in keys.iter().zip(["OPENAI_API_KEY", "ANTHROPIC_API_KEY"]) {
        assert_eq!(var.name, name);
        let selector = var
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!(
            (
                selector.name.as_str(),
                selector.key.as_str(),
                selector.optional
            ),
            ("api-key-secrets", name, Some(true))
        );
    }
    assert!(
        !r.problems
            .iter()
            .any(|p| p.reason == ProblemReason::RefNotFound),
        "{:?}",
        r.problems
    );
}

#[test]
fn user_env_overrides_generated_by_name_and_env_from_passes_through() {
    let r = rendered(&gateway(&format!(
        "{ONE_MODEL}  env:\n  - {{name: OPENAI_API_KEY, value: user-key}}\n  - {{name: PROMETHEUS_MULTIPROC_DIR, value: /elsewhere}}\n  envFrom:\n  - secretRef: {{name: extra, optional: true}}\n    prefix: X_\n"
    )));
    let openai: Vec<_> = env(&r)
        .into_iter()
        .filter(|e| e.name == "OPENAI_API_KEY")
        .collect();
    assert_eq!(openai.len(), 1);
    assert_eq!(openai[0].value.as_deref(), Some("user-key"));
    let prometheus: Vec<_> = env(&r)
        .into_iter()
        .filter(|e| e.name == "PROMETHEUS_MULTIPROC_DIR")
        .collect();
    assert_eq!(prometheus.len(), 1);
    assert_eq!(prometheus[0].value.as_deref(), Some("/elsewhere"));
    let env_from = container(&r).env_from.clone().unwrap();
    assert_eq!(env_from.len(), 1);
    assert_eq!(env_from[0].prefix.as_deref(), Some("X_"));
    assert_eq!(env_from[0].secret_ref.as_ref().unwrap().name, "extra");
}

#[test]
fn deployment_matches_the_go_operator() {
    let r = rendered(&gateway(&format!("  port: 4000\n{ONE_MODEL}")));
    let d = &r.deployment;
    let app = BTreeMap::from([("app".to_owned(), "gw".to_owned())]);
    assert_eq!(d.metadata.name.as_deref(), Some("gw"));
    assert_eq!(d.metadata.namespace.as_deref(), Some("ns"));
    assert_eq!(d.metadata.labels.as_ref(), Some(&app));
    let spec = d.spec.as_ref().unwrap();
    assert_eq!(spec.selector.match_labels.as_ref(), Some(&app));
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(
        template(&r).metadata.as_ref().unwrap().labels.as_ref(),
        Some(&app)
    );
    let c = container(&r);
    assert_eq!(c.name, "litellm");
    assert_eq!(
        c.command.as_deref().unwrap(),
        [
            "litellm",
            "--config",
            "/app/config/config.yaml",
            "--port",
            "4000"
        ]
    );
    let port = &c.ports.as_ref().unwrap()[0];
    assert_eq!(
        (
            port.name.as_deref(),
            port.container_port,
            port.protocol.as_deref()
        ),
        (Some("http"), 4000, Some("TCP"))
    );
    let mounts: Vec<_> = c
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| (m.name.as_str(), m.mount_path.as_str(), m.read_only))
        .collect();
    assert_eq!(
        mounts,
        [
            ("config", "/app/config", Some(true)),
            ("prometheus-multiproc", "/prometheus_multiproc", None),
            ("tmp", "/tmp", None)
        ]
    );
    let volumes = template(&r).spec.as_ref().unwrap().volumes.clone().unwrap();
    assert_eq!(volumes[0].name, "config");
    assert_eq!(volumes[0].config_map.as_ref().unwrap().name, "gw-config");
    assert_eq!(volumes[1].name, "prometheus-multiproc");
    assert!(volumes[1].empty_dir.is_some());
    let prometheus = env(&r)
        .into_iter()
        .find(|e| e.name == "PROMETHEUS_MULTIPROC_DIR")
        .unwrap();
    assert_eq!(prometheus.value.as_deref(), Some("/prometheus_multiproc"));
    let path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .clone()
            .unwrap()
    };
    assert_eq!(path(&c.liveness_probe), "/health/liveliness");
    assert_eq!(path(&c.readiness_probe), "/health/readiness");
    let resources = c.resources.as_ref().unwrap();
    let q =
        |l: &Option<BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
         k: &str| l.as_ref().unwrap()[k].0.clone();
    assert_eq!(
        [
            q(&resources.requests, "cpu"),
            q(&resources.requests, "memory")
        ],
        ["100m", "250M"]
    );
    assert_eq!(
        [q(&resources.limits, "cpu"), q(&resources.limits, "memory")],
        ["500m", "2G"]
    );
    // No ownerReferences or managed-by labels: the runtime adds those.
    assert!(
        d.metadata.owner_references.is_none()
            && r.service.metadata.owner_references.is_none()
            && r.config_map.metadata.owner_references.is_none()
    );
}

#[test]
fn hash_annotations_roll_pods_on_config_and_secret_changes() {
    let with_secret = |value: &str| {
        rendered(&format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: api-key-secrets, namespace: ns}}\nstringData: {{OPENAI_API_KEY: {value}, B: x}}\n---\n{}",
            gateway(ONE_MODEL)
        ))
    };
    let r = with_secret("sk-1");
    let annotations = template(&r)
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .clone()
        .unwrap();
    let config_hash: String = Sha256::digest(r.config_yaml.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        annotations["gateway.agentic-layer.ai/config-hash"],
        config_hash
    );
    // The Go operator's formula: SHA-256 over sorted key+value pairs, first 16 hex chars.
    let go_secret_hash: String = Sha256::digest(b"Bx" as &[u8])
        .iter()
        .chain(std::iter::empty())
        .take(0)
        .map(|b: &u8| format!("{b:02x}"))
        .collect::<String>()
        + &Sha256::digest(b"BxOPENAI_API_KEYsk-1")
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
    assert_eq!(
        annotations["gateway.agentic-layer.ai/secret-hash"],
        go_secret_hash
    );
    let changed = with_secret("sk-2");
    let changed_annotations = template(&changed)
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .clone()
        .unwrap();
    assert_ne!(
        changed_annotations["gateway.agentic-layer.ai/secret-hash"],
        go_secret_hash
    );
    assert_eq!(changed.config_yaml, r.config_yaml);
    // Without the Secret: the hash of nothing, as the Go operator.
    let r = rendered(&gateway(ONE_MODEL));
    let annotations = template(&r)
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .clone()
        .unwrap();
    assert_eq!(
        annotations["gateway.agentic-layer.ai/secret-hash"],
        "e3b0c44298fc1c14"
    );
    let other_model = rendered(&gateway("  aiModels: [{provider: openai, name: other}]\n"));
    let other = template(&other_model)
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .clone()
        .unwrap();
    assert_ne!(
        other["gateway.agentic-layer.ai/config-hash"],
        annotations["gateway.agentic-layer.ai/config-hash"]
    );
}

#[test]
fn service_exposes_http_on_spec_port() {
    for (spec, port) in [
        (format!("  port: 8080\n{ONE_MODEL}"), 8080),
        (ONE_MODEL.to_owned(), 80),
    ] {
        let r = rendered(&gateway(&spec));
        let s = &r.service;
        assert_eq!(s.metadata.name.as_deref(), Some("gw"));
        let spec = s.spec.as_ref().unwrap();
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        assert_eq!(
            spec.selector,
            Some(BTreeMap::from([("app".to_owned(), "gw".to_owned())]))
        );
        let p = &spec.ports.as_ref().unwrap()[0];
        assert_eq!(p.name.as_deref(), Some("http"));
        assert_eq!(p.port, port);
        assert_eq!(
            p.target_port,
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("http".into()))
        );
    }
}

#[test]
fn common_and_pod_metadata_layer_with_reserved_keys_winning() {
    let r = rendered(&gateway(&format!(
        "{ONE_MODEL}  commonMetadata:\n    labels: {{team: a, app: hijack, shared: common}}\n    annotations: {{owner: platform, gateway.agentic-layer.ai/config-hash: forged}}\n  podMetadata:\n    labels: {{shared: pod, sidecar: 'false'}}\n    annotations: {{scrape: 'true'}}\n"
    )));
    let labels = |m: &Option<BTreeMap<String, String>>| m.clone().unwrap();
    let d = &r.deployment.metadata;
    assert_eq!(
        labels(&d.labels),
        BTreeMap::from([
            ("app".into(), "gw".into()),
            ("shared".into(), "common".into()),
            ("team".into(), "a".into())
        ])
    );
    assert_eq!(labels(&d.annotations)["owner"], "platform");
    assert!(
        !labels(&d.annotations).contains_key("scrape"),
        "podMetadata is for the pod template only"
    );
    let s = &r.service.metadata;
    assert_eq!(labels(&s.labels)["team"], "a");
    assert_eq!(labels(&s.labels)["app"], "gw");
    assert!(!labels(&s.labels).contains_key("sidecar"));
    let t = template(&r).metadata.clone().unwrap();
    let t_labels = labels(&t.labels);
    assert_eq!(
        (
            t_labels["app"].as_str(),
            t_labels["shared"].as_str(),
            t_labels["team"].as_str(),
            t_labels["sidecar"].as_str()
        ),
        ("gw", "pod", "a", "false")
    );
    let t_annotations = labels(&t.annotations);
    assert_eq!(t_annotations["scrape"], "true");
    assert_eq!(t_annotations["owner"], "platform");
    assert_ne!(
        t_annotations["gateway.agentic-layer.ai/config-hash"],
        "forged"
    );
    assert!(r.config_map.metadata.annotations.is_none());
}

const PRESIDIO: &str = "\
apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: GuardrailProvider
metadata: {name: presidio, namespace: providers}
spec: {type: presidio-api, presidio: {baseUrl: 'http://presidio.providers:80'}}
";

#[test]
fn presidio_guard_renders_like_the_go_operator_with_namespace_defaults() {
    // The Guard's namespace defaults to the gateway's, the provider's to the Guard's.
    let r = rendered(&format!(
        "{PRESIDIO}---\n{API}\nkind: GuardrailProvider\nmetadata: {{name: local, namespace: ns}}\nspec: {{type: presidio-api, presidio: {{baseUrl: 'http://local'}}}}\n---\n\
         {API}\nkind: Guard\nmetadata: {{name: pii, namespace: guards}}\nspec:\n  mode: [pre_call, post_call]\n  providerRef: {{name: presidio, namespace: providers}}\n  presidio:\n    language: de\n    scoreThresholds: {{ALL: '0.5', PERSON: '0.8'}}\n    entityActions: {{PERSON: MASK, CREDIT_CARD: BLOCK}}\n---\n\
         {API}\nkind: Guard\nmetadata: {{name: simple, namespace: ns}}\nspec: {{mode: [during_call], providerRef: {{name: local}}}}\n---\n{}",
        gateway(&format!(
            "{ONE_MODEL}  guardrails:\n  - {{name: pii, namespace: guards}}\n  - {{name: simple}}\n"
        ))
    ));
    assert_eq!(
        config(&r)["guardrails"],
        json!([
            {"guardrail_name": "pii", "litellm_params": {
                "guardrail": "presidio", "mode": ["pre_call", "post_call"], "default_on": true, "output_parse_pii": true,
                "presidio_analyzer_api_base": "http://presidio.providers:80", "presidio_anonymizer_api_base": "http://presidio.providers:80",
                "presidio_language": "de", "presidio_score_thresholds": {"ALL": 0.5, "PERSON": 0.8},
                "pii_entities_config": {"CREDIT_CARD": "BLOCK", "PERSON": "MASK"}}},
            {"guardrail_name": "simple", "litellm_params": {
                "guardrail": "presidio", "mode": ["during_call"], "default_on": true, "output_parse_pii": true,
                "presidio_analyzer_api_base": "http://local", "presidio_anonymizer_api_base": "http://local"}},
        ])
    );
}

const PATCH_GATEWAY: &str = "\
apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: AiGateway
metadata:
  name: gw
  namespace: ns
  annotations: {ai-gateway-litellm.agentic-layer.ai/config-patch: patch}
spec:
  aiModels: [{provider: openai, name: gpt-4o}]
";

fn patch_map(data: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: patch, namespace: ns}}\ndata:\n{data}---\n{PATCH_GATEWAY}"
    )
}

#[test]
fn config_patch_merges_maps_replaces_scalars_and_lists_and_deletes_nulls() {
    let r = rendered(&patch_map(
        "  patch.yaml: |\n    litellm_settings: {request_timeout: 30, callbacks: [prometheus], drop_params: true}\n    router_settings: {routing_strategy: simple-shuffle}\n    guardrails: null\n",
    ));
    let c = config(&r);
    assert_eq!(
        c["litellm_settings"],
        json!({"request_timeout": 30, "callbacks": ["prometheus"], "drop_params": true})
    );
    assert_eq!(
        c["router_settings"],
        json!({"routing_strategy": "simple-shuffle"})
    );
    assert_eq!(c["model_list"][0]["model_name"], "gpt-4o");
    let r = rendered(&patch_map(
        "  patch.yaml: |\n    litellm_settings: {callbacks: null}\n",
    ));
    assert_eq!(
        config(&r)["litellm_settings"],
        json!({"request_timeout": 600})
    );
}

#[test]
fn config_patch_errors_name_the_config_map() {
    let err = try_render(PATCH_GATEWAY).unwrap_err();
    assert!(
        matches!(&err, RenderError::PatchConfigMapNotFound { name, namespace, .. } if name == "patch" && namespace == "ns"),
        "{err}"
    );
    assert!(err.to_string().contains("ConfigMap ns/patch"));
    let err = try_render(&patch_map("  other.yaml: 'a: 1'\n")).unwrap_err();
    assert!(matches!(err, RenderError::PatchKeyMissing { .. }), "{err}");
    assert!(
        err.to_string().contains("ConfigMap ns/patch") && err.to_string().contains("patch.yaml"),
        "{err}"
    );
    for bad in [
        "  patch.yaml: 'a: [unclosed'\n",
        "  patch.yaml: '- a list'\n",
    ] {
        let err = try_render(&patch_map(bad)).unwrap_err();
        assert!(matches!(err, RenderError::InvalidPatch { .. }), "{err}");
        assert!(err.to_string().contains("ConfigMap ns/patch"), "{err}");
    }
}

// ----------------------------------------------------------------------------- beyond

#[test]
fn missing_and_broken_guards_are_reported_not_dropped_silently() {
    let r = rendered(&format!(
        "{API}\nkind: Guard\nmetadata: {{name: orphan, namespace: ns}}\nspec: {{mode: [pre_call], providerRef: {{name: nowhere}}}}\n---\n\
         {API}\nkind: GuardrailProvider\nmetadata: {{name: empty, namespace: ns}}\nspec: {{type: presidio-api}}\n---\n\
         {API}\nkind: Guard\nmetadata: {{name: incomplete, namespace: ns}}\nspec: {{mode: [pre_call], providerRef: {{name: empty}}}}\n---\n\
         {API}\nkind: GuardrailProvider\nmetadata: {{name: bedrock, namespace: ns}}\nspec: {{type: bedrock-api, bedrock: {{region: eu-west-1}}}}\n---\n\
         {API}\nkind: Guard\nmetadata: {{name: no-id, namespace: ns}}\nspec: {{mode: [pre_call], providerRef: {{name: bedrock}}}}\n---\n{}",
        gateway(&format!(
            "{ONE_MODEL}  guardrails:\n  - {{name: missing}}\n  - {{name: orphan}}\n  - {{name: incomplete}}\n  - {{name: no-id}}\n  - {{name: x, kind: ConfigMap}}\n  - {{name: ''}}\n"
        ))
    ));
    assert!(config(&r).get("guardrails").is_none(), "{}", r.config_yaml);
    let got = reasons(&r);
    for expected in [
        (ProblemReason::RefNotFound, "Guard ns/missing"),
        (ProblemReason::RefNotFound, "GuardrailProvider ns/nowhere"),
        (ProblemReason::InvalidRef, "GuardrailProvider ns/empty"),
        (ProblemReason::InvalidRef, "Guard ns/no-id"),
    ] {
        assert!(
            got.contains(&(expected.0, expected.1.to_owned())),
            "{expected:?} in {got:#?}"
        );
    }
    let gateway_problems = r
        .problems
        .iter()
        .filter(|p| p.object.kind == "AiGateway" && p.reason == ProblemReason::InvalidRef)
        .count();
    assert_eq!(
        gateway_problems, 2,
        "kind ConfigMap and an empty name: {:#?}",
        r.problems
    );
    assert!(r.problems.iter().all(|p| !p.message.is_empty()));
}

const MODERATION: &str = "\
apiVersion: v1
kind: Secret
metadata: {name: moderation, namespace: ns}
stringData: {key: sk-moderation-value}
---
apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: GuardrailProvider
metadata: {name: moderation, namespace: ns}
spec:
  type: openai-moderation-api
  openaiModeration: {baseUrl: 'https://moderation.example/v1', apiKeySecretRef: {name: moderation, key: key}}
---
apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: Guard
metadata: {name: moderation, namespace: ns}
spec: {mode: [pre_call, post_call], providerRef: {name: moderation}, openaiModeration: {model: omni-moderation-latest}}
---
apiVersion: v1
kind: Secret
metadata: {name: aws, namespace: ns}
stringData: {AWS_ACCESS_KEY_ID: AKIA-value, AWS_SECRET_ACCESS_KEY: aws-secret-value, AWS_SESSION_TOKEN: token-value}
---
apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: GuardrailProvider
metadata: {name: bedrock, namespace: ns}
spec: {type: bedrock-api, bedrock: {region: eu-central-1, credentialsSecretRef: {name: aws}}}
---
apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: Guard
metadata: {name: bedrock, namespace: ns}
spec: {mode: [during_call], providerRef: {name: bedrock}, bedrock: {guardrailId: gr-1, guardrailVersion: '2'}}
";

#[test]
fn openai_moderation_and_bedrock_guards_render_with_credentials_as_env_references() {
    let r = rendered(&format!(
        "{MODERATION}---\n{}",
        gateway(&format!(
            "{ONE_MODEL}  guardrails: [{{name: moderation}}, {{name: bedrock}}]\n"
        ))
    ));
    assert_eq!(
        config(&r)["guardrails"],
        json!([
            {"guardrail_name": "moderation", "litellm_params": {"guardrail": "openai_moderation", "mode": ["pre_call", "post_call"], "default_on": true,
                "api_base": "https://moderation.example/v1", "model": "omni-moderation-latest", "api_key": "os.environ/GUARDRAIL_MODERATION_API_KEY"}},
            {"guardrail_name": "bedrock", "litellm_params": {"guardrail": "bedrock", "mode": ["during_call"], "default_on": true,
                "guardrailIdentifier": "gr-1", "guardrailVersion": "2", "aws_region_name": "eu-central-1",
                "aws_access_key_id": "os.environ/GUARDRAIL_BEDROCK_AWS_ACCESS_KEY_ID",
                "aws_secret_access_key": "os.environ/GUARDRAIL_BEDROCK_AWS_SECRET_ACCESS_KEY",
                "aws_session_token": "os.environ/GUARDRAIL_BEDROCK_AWS_SESSION_TOKEN"}},
        ])
    );
    let refs: Vec<(String, String, String)> = env(&r)
        .into_iter()
        .filter_map(|e| {
            e.value_from
                .and_then(|v| v.secret_key_ref)
                .map(|s| (e.name, s.name, s.key))
        })
        .filter(|(name, _, _)| name.starts_with("GUARDRAIL_"))
        .collect();
    assert_eq!(
        refs,
        [
            (
                "GUARDRAIL_MODERATION_API_KEY".into(),
                "moderation".into(),
                "key".into()
            ),
            (
                "GUARDRAIL_BEDROCK_AWS_ACCESS_KEY_ID".into(),
                "aws".into(),
                "AWS_ACCESS_KEY_ID".into()
            ),
            (
                "GUARDRAIL_BEDROCK_AWS_SECRET_ACCESS_KEY".into(),
                "aws".into(),
                "AWS_SECRET_ACCESS_KEY".into()
            ),
            (
                "GUARDRAIL_BEDROCK_AWS_SESSION_TOKEN".into(),
                "aws".into(),
                "AWS_SESSION_TOKEN".into()
            ),
        ]
    );
}

#[test]
fn no_secret_value_reaches_objects_or_problems() {
    let r = rendered(&format!(
        "{SECRET}---\n{MODERATION}---\n{}",
        gateway(&format!(
            "{ONE_MODEL}  guardrails: [{{name: moderation}}, {{name: bedrock}}, {{name: missing}}]\n"
        ))
    ));
    let everything = format!(
        "{}{}{}{}{:?}",
        serde_json::to_string(&r.config_map).unwrap(),
        serde_json::to_string(&r.deployment).unwrap(),
        serde_json::to_string(&r.service).unwrap(),
        r.config_yaml,
        r.problems
    );
    for secret in [
        "sk-1",
        "sk-2",
        "sk-moderation-value",
        "AKIA-value",
        "aws-secret-value",
        "token-value",
    ] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
}

#[test]
fn credential_secrets_the_pod_cannot_read_are_reported_and_the_guard_skipped() {
    let r = rendered(&format!(
        "{API}\nkind: GuardrailProvider\nmetadata: {{name: moderation, namespace: providers}}\nspec: {{type: openai-moderation-api, openaiModeration: {{apiKeySecretRef: {{name: key, key: k}}}}}}\n---\n\
         {API}\nkind: Guard\nmetadata: {{name: moderation, namespace: ns}}\nspec: {{mode: [pre_call], providerRef: {{name: moderation, namespace: providers}}}}\n---\n\
         {API}\nkind: GuardrailProvider\nmetadata: {{name: bedrock, namespace: ns}}\nspec: {{type: bedrock-api, bedrock: {{region: us-east-1, credentialsSecretRef: {{name: aws, namespace: elsewhere}}}}}}\n---\n\
         {API}\nkind: Guard\nmetadata: {{name: bedrock, namespace: ns}}\nspec: {{mode: [pre_call], providerRef: {{name: bedrock}}, bedrock: {{guardrailId: g}}}}\n---\n\
         {API}\nkind: GuardrailProvider\nmetadata: {{name: bedrock-missing, namespace: ns}}\nspec: {{type: bedrock-api, bedrock: {{region: us-east-1, credentialsSecretRef: {{name: absent}}}}}}\n---\n\
         {API}\nkind: Guard\nmetadata: {{name: bedrock-missing, namespace: ns}}\nspec: {{mode: [pre_call], providerRef: {{name: bedrock-missing}}, bedrock: {{guardrailId: g}}}}\n---\n{}",
        gateway(&format!(
            "{ONE_MODEL}  guardrails: [{{name: moderation}}, {{name: bedrock}}, {{name: bedrock-missing}}]\n"
        ))
    ));
    assert!(config(&r).get("guardrails").is_none(), "{}", r.config_yaml);
    let got = reasons(&r);
    assert!(
        got.contains(&(
            ProblemReason::InvalidRef,
            "GuardrailProvider providers/moderation".into()
        )),
        "{got:#?}"
    );
    assert!(
        got.contains(&(
            ProblemReason::InvalidRef,
            "GuardrailProvider ns/bedrock".into()
        )),
        "{got:#?}"
    );
    assert!(
        got.contains(&(ProblemReason::RefNotFound, "Secret ns/absent".into())),
        "{got:#?}"
    );
    assert!(!env_names(&r).iter().any(|n| n.starts_with("GUARDRAIL_")));
}

#[test]
fn openai_moderation_without_a_key_needs_openai_api_key_in_the_container() {
    let input = |spec_env: &str| {
        format!(
            "{API}\nkind: GuardrailProvider\nmetadata: {{name: m, namespace: ns}}\nspec: {{type: openai-moderation-api, openaiModeration: {{}}}}\n---\n\
             {API}\nkind: Guard\nmetadata: {{name: m, namespace: ns}}\nspec: {{mode: [pre_call], providerRef: {{name: m}}}}\n---\n{}",
            gateway(&format!(
                "  aiModels: [{{provider: anthropic, name: c}}]\n  guardrails: [{{name: m}}]\n{spec_env}"
            ))
        )
    };
    let r = rendered(&input(""));
    assert!(config(&r).get("guardrails").is_none());
    assert!(
        reasons(&r).contains(&(ProblemReason::InvalidRef, "Guard ns/m".into())),
        "{:#?}",
        r.problems
    );
    let r = rendered(&input("  env: [{name: OPENAI_API_KEY, value: sk}]\n"));
    assert_eq!(
        config(&r)["guardrails"][0]["litellm_params"]["guardrail"],
        "openai_moderation"
    );
    assert!(
        config(&r)["guardrails"][0]["litellm_params"]
            .get("api_key")
            .is_none()
    );
}

#[test]
fn presidio_api_keys_are_reported_as_unsupported_and_bad_values_skip_the_guard() {
    let provider = format!(
        "{API}\nkind: GuardrailProvider\nmetadata: {{name: p, namespace: ns}}\nspec: {{type: presidio-api, presidio: {{baseUrl: 'http://p', apiKeySecretRef: {{name: s, key: k}}}}}}\n"
    );
    let guard = |name: &str, presidio: &str| {
        format!(
            "{API}\nkind: Guard\nmetadata: {{name: {name}, namespace: ns}}\nspec: {{mode: [pre_call], providerRef: {{name: p}}, presidio: {presidio}}}\n"
        )
    };
    let r = rendered(&format!(
        "{provider}---\n{}---\n{}---\n{}---\n{}",
        guard("ok", "{language: en}"),
        guard("bad-score", "{scoreThresholds: {ALL: high}}"),
        guard("bad-action", "{entityActions: {PERSON: REDACT}}"),
        gateway(&format!(
            "{ONE_MODEL}  guardrails: [{{name: ok}}, {{name: bad-score}}, {{name: bad-action}}]\n"
        ))
    ));
    let names: Vec<_> = config(&r)["guardrails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["guardrail_name"].clone())
        .collect();
    assert_eq!(names, [json!("ok")]);
    let got = reasons(&r);
    assert!(
        got.contains(&(ProblemReason::Unsupported, "GuardrailProvider ns/p".into())),
        "{got:#?}"
    );
    assert!(
        got.contains(&(ProblemReason::InvalidRef, "Guard ns/bad-score".into())),
        "{got:#?}"
    );
    assert!(
        got.contains(&(ProblemReason::InvalidRef, "Guard ns/bad-action".into())),
        "{got:#?}"
    );
}

#[test]
fn missing_provider_keys_are_reported_unless_the_user_supplies_them() {
    let r = rendered(&gateway(
        "  aiModels: [{provider: openai, name: a}, {provider: anthropic, name: b}]\n",
    ));
    let got = reasons(&r);
    assert_eq!(
        got.iter()
            .filter(|(reason, object)| *reason == ProblemReason::RefNotFound
                && object == "Secret ns/api-key-secrets")
            .count(),
        2,
        "{got:#?}"
    );
    // The Secret exists but lacks ANTHROPIC_API_KEY.
    let r = rendered(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: api-key-secrets, namespace: ns}}\nstringData: {{OPENAI_API_KEY: sk}}\n---\n{}",
        gateway("  aiModels: [{provider: openai, name: a}, {provider: anthropic, name: b}]\n")
    ));
    let missing: Vec<_> = r
        .problems
        .iter()
        .filter(|p| p.reason == ProblemReason::RefNotFound)
        .collect();
    assert_eq!(missing.len(), 1);
    assert!(missing[0].message.contains("ANTHROPIC_API_KEY"));
    // Supplied through envFrom: no generated entry, no problem.
    let r = rendered(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: keys, namespace: ns}}\nstringData: {{API_KEY: sk}}\n---\n{}",
        gateway(&format!(
            "{ONE_MODEL}  envFrom: [{{secretRef: {{name: keys}}, prefix: OPENAI_}}]\n"
        ))
    ));
    assert!(!env_names(&r).contains(&"OPENAI_API_KEY".to_owned()));
    assert!(
        !reasons(&r)
            .iter()
            .any(|(reason, _)| *reason == ProblemReason::RefNotFound),
        "{:#?}",
        r.problems
    );
}

/// A ToolGateway without routes, rendered.
fn plain_tool_gateway() -> Rendered {
    crate::render_tool_gateway(
        &serde_saphyr::from_str(&format!(
            "{API}\nkind: ToolGateway\nmetadata: {{name: tools, namespace: ns}}\nspec: {{}}\n"
        ))
        .unwrap(),
        &[],
        &InMemoryObjects::new(),
        &RenderSettings::default(),
    )
    .unwrap()
    .rendered
}

/// The earliest moment after a container starts at which the kubelet may restart it
/// for failed probes, with these probes: the first probe that may run during start-up
/// (the startup probe when there is one, else liveness) fails `failureThreshold` times
/// in a row, `periodSeconds` apart, from `initialDelaySeconds` on.
fn seconds_before_a_restart(
    startup: Option<&k8s_openapi::api::core::v1::Probe>,
    liveness: Option<&k8s_openapi::api::core::v1::Probe>,
) -> i32 {
    let probe = startup
        .or(liveness)
        .expect("a probe that restarts the container");
    probe.initial_delay_seconds.unwrap_or(0)
        + probe.period_seconds.unwrap_or(10) * (probe.failure_threshold.unwrap_or(3) - 1)
}

fn probe(
    path: &str,
    initial_delay: i32,
    period: i32,
    failures: i32,
) -> k8s_openapi::api::core::v1::Probe {
    k8s_openapi::api::core::v1::Probe {
        http_get: Some(k8s_openapi::api::core::v1::HTTPGetAction {
            path: Some(path.to_owned()),
            ..Default::default()
        }),
        initial_delay_seconds: Some(initial_delay),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

#[test]
fn a_litellm_that_starts_in_100_seconds_is_never_killed() {
    let tool = plain_tool_gateway();
    let ai = rendered(&gateway(ONE_MODEL));
    // The Go operator's probes (liveness from 30 s, 10 failures 10 s apart; no startup
    // probe) and LiteLLM's helm chart's (startup probe, 30 failures 10 s apart).
    let go = seconds_before_a_restart(None, Some(&probe(names::LIVENESS_PATH, 30, 10, 10)));
    let chart = seconds_before_a_restart(Some(&probe(names::READINESS_PATH, 0, 10, 30)), None);
    for r in [&ai, &tool] {
        let c = container(r);
        let budget = seconds_before_a_restart(c.startup_probe.as_ref(), c.liveness_probe.as_ref());
        assert!(budget > 100, "a 100 s start is killed after {budget} s");
        assert!(
            budget >= go && budget >= chart,
            "{budget} s < Go operator {go} s or chart {chart} s"
        );
        // Liveness and readiness run only after the startup probe succeeded: the startup
        // probe must poll the liveness endpoint, so it cannot succeed before liveness would.
        let startup = c.startup_probe.as_ref().unwrap();
        assert_eq!(
            startup.http_get.as_ref().unwrap().path.as_deref(),
            Some(names::LIVENESS_PATH)
        );
        assert!(c.liveness_probe.is_some() && c.readiness_probe.is_some());
    }
    // Without the startup probe, today's liveness alone would kill it far earlier.
    let c = container(&ai);
    assert!(seconds_before_a_restart(None, c.liveness_probe.as_ref()) < 100);
}

#[test]
fn the_price_map_is_read_offline_unless_the_users_env_says_otherwise() {
    let value = |r: &Rendered| {
        env(r)
            .into_iter()
            .filter(|e| e.name == names::LOCAL_MODEL_COST_MAP_ENV)
            .map(|e| e.value.unwrap_or_default())
            .collect::<Vec<_>>()
    };
    assert_eq!(value(&rendered(&gateway(ONE_MODEL))), ["True"]);
    let overridden = rendered(&gateway(&format!(
        "{ONE_MODEL}  env:\n  - {{name: {}, value: \"False\"}}\n",
        names::LOCAL_MODEL_COST_MAP_ENV
    )));
    assert_eq!(value(&overridden), ["False"]);
    // A variable from an envFrom source wins too: the generated one is left out.
    let (mut lookup, gw) = setup(&gateway(&format!(
        "{ONE_MODEL}  envFrom:\n  - configMapRef: {{name: settings}}\n"
    )));
    lookup.extend(&crate::parse_documents(
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings, namespace: ns}}\ndata: {{{}: \"False\"}}\n",
            names::LOCAL_MODEL_COST_MAP_ENV
        ),
        "test",
    )
    .unwrap());
    let from_source = render(&gw, &lookup, &RenderSettings::default()).unwrap();
    assert!(value(&from_source).is_empty());
    // ToolGateways get it too.
    let tool = plain_tool_gateway();
    assert_eq!(value(&tool), ["True"]);
}

#[test]
fn env_is_generated_first_then_the_users_in_their_order() {
    let r = rendered(&gateway(&format!(
        "{ONE_MODEL}  env:\n  - {{name: Z_FIRST, value: '1'}}\n  - {{name: A_COPY, value: '$(OPENAI_API_KEY)'}}\n  - {{name: M_LAST, value: '$(Z_FIRST)'}}\n"
    )));
    assert_eq!(
        env_names(&r),
        [
            "OPENAI_API_KEY",
            names::PERMIT_UNSET_MASTER_KEY_ENV,
            names::LOCAL_MODEL_COST_MAP_ENV,
            "PROMETHEUS_MULTIPROC_DIR",
            "Z_FIRST",
            "A_COPY",
            "M_LAST"
        ]
    );
    let again = rendered(&gateway(&format!(
        "{ONE_MODEL}  env:\n  - {{name: Z_FIRST, value: '1'}}\n  - {{name: A_COPY, value: '$(OPENAI_API_KEY)'}}\n  - {{name: M_LAST, value: '$(Z_FIRST)'}}\n"
    )));
    assert_eq!(again, r, "rendering is stable");
}

#[test]
fn without_a_master_key_the_gateway_is_open_and_says_so() {
    let r = rendered(&gateway(ONE_MODEL));
    let permit = env(&r)
        .into_iter()
        .find(|e| e.name == names::PERMIT_UNSET_MASTER_KEY_ENV)
        .unwrap();
    assert_eq!(permit.value.as_deref(), Some("true"));
    assert!(reasons(&r).contains(&(ProblemReason::Unauthenticated, "AiGateway ns/gw".into())));
}

#[test]
fn a_master_key_from_env_env_from_or_the_patch_authenticates() {
    let cases = [
        gateway(&format!(
            "{ONE_MODEL}  env: [{{name: LITELLM_MASTER_KEY, valueFrom: {{secretKeyRef: {{name: mk, key: k, optional: true}}}}}}]\n"
        )),
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: mk, namespace: ns}}\nstringData: {{LITELLM_MASTER_KEY: x}}\n---\n{}",
            gateway(&format!(
                "{ONE_MODEL}  envFrom: [{{secretRef: {{name: mk}}}}]\n"
            ))
        ),
        patch_map("  patch.yaml: |\n    general_settings: {master_key: os.environ/MK}\n"),
    ];
    for input in cases {
        let r = rendered(&input);
        assert!(
            !env_names(&r).contains(&names::PERMIT_UNSET_MASTER_KEY_ENV.to_owned()),
            "{input}"
        );
        assert!(
            !reasons(&r)
                .iter()
                .any(|(reason, _)| *reason == ProblemReason::Unauthenticated),
            "{input}: {:#?}",
            r.problems
        );
    }
}

#[test]
fn guards_with_the_same_name_in_different_namespaces_are_disambiguated() {
    let guard = |ns: &str| {
        format!(
            "{API}\nkind: Guard\nmetadata: {{name: pii, namespace: {ns}}}\nspec: {{mode: [pre_call], providerRef: {{name: presidio, namespace: providers}}}}\n"
        )
    };
    let r = rendered(&format!(
        "{PRESIDIO}---\n{}---\n{}---\n{}",
        guard("ns"),
        guard("other"),
        gateway(&format!(
            "{ONE_MODEL}  guardrails: [{{name: pii}}, {{name: pii, namespace: other}}, {{name: pii, namespace: ns}}]\n"
        ))
    ));
    let names: Vec<_> = config(&r)["guardrails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["guardrail_name"].clone())
        .collect();
    assert_eq!(names, [json!("ns/pii"), json!("other/pii")]);
    assert!(
        reasons(&r).contains(&(ProblemReason::SuspiciousConfig, "Guard ns/pii".into())),
        "listed twice: {:#?}",
        r.problems
    );
}

#[test]
fn config_text_is_the_same_with_an_empty_patch() {
    let plain = rendered(&gateway(ONE_MODEL));
    let patched = rendered(&patch_map("  patch.yaml: '{}'\n"));
    assert_eq!(plain.config_yaml, patched.config_yaml);
}

#[test]
fn restricted_security_context_and_overridable_workload_settings() {
    let r = rendered(&gateway(ONE_MODEL));
    let sc = container(&r).security_context.clone().unwrap();
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    let capabilities = sc.capabilities.unwrap();
    assert_eq!(capabilities.drop.unwrap(), ["ALL"]);
    // LiteLLM listens on 4000 whatever spec.port is: no capability to bind low ports.
    assert_eq!(capabilities.add, None);
    assert_eq!(sc.seccomp_profile.unwrap().type_, "RuntimeDefault");
    assert_eq!(
        container(&r).image.as_deref(),
        Some(crate::settings::DEFAULT_IMAGE)
    );

    // Operator-wide settings.
    let (lookup, gw) = setup(&gateway(ONE_MODEL));
    let settings = RenderSettings {
        image: "registry.local/litellm:pinned".into(),
        replicas: None,
        ..Default::default()
    };
    let r = render(&gw, &lookup, &settings).unwrap();
    assert_eq!(
        container(&r).image.as_deref(),
        Some("registry.local/litellm:pinned")
    );
    assert_eq!(
        r.deployment.spec.as_ref().unwrap().replicas,
        None,
        "left to an HPA"
    );
    let yaml = serde_saphyr::to_string(&r.deployment).unwrap();
    assert!(!yaml.contains("replicas"), "{yaml}");

    // Per-gateway annotations win.
    let annotated = format!(
        "{API}\nkind: AiGateway\nmetadata:\n  name: gw\n  namespace: ns\n  annotations:\n    ai-gateway-litellm.agentic-layer.ai/image: mine:1\n    ai-gateway-litellm.agentic-layer.ai/replicas: '3'\n    ai-gateway-litellm.agentic-layer.ai/memory-limit: 4Gi\n    ai-gateway-litellm.agentic-layer.ai/replica: '2'\nspec:\n{ONE_MODEL}"
    );
    let (lookup, gw) = setup(&annotated);
    let allowed = RenderSettings {
        allow_image_annotation: true,
        ..settings.clone()
    };
    let r = render(&gw, &lookup, &allowed).unwrap();
    assert_eq!(container(&r).image.as_deref(), Some("mine:1"));
    assert_eq!(r.deployment.spec.as_ref().unwrap().replicas, Some(3));
    assert_eq!(
        container(&r)
            .resources
            .as_ref()
            .unwrap()
            .limits
            .as_ref()
            .unwrap()["memory"]
            .0,
        "4Gi"
    );
    assert!(
        r.problems
            .iter()
            .any(|p| p.reason == ProblemReason::SuspiciousConfig && p.message.contains("replica ")),
        "misspelt annotation: {:#?}",
        r.problems
    );
}

#[test]
fn invalid_gateways_are_errors_naming_object_and_field() {
    let err = try_render(&gateway("  aiModels: []\n")).unwrap_err();
    assert_eq!(
        err,
        RenderError::NoModels {
            gateway: "ns/gw".into()
        }
    );
    let err = try_render(&gateway("  aiModels: [{provider: openai, name: ''}]\n")).unwrap_err();
    assert!(err.to_string().contains("spec.aiModels[0].name"), "{err}");
    let err = try_render(&gateway(&format!("  port: 70000\n{ONE_MODEL}"))).unwrap_err();
    assert!(err.to_string().contains("spec.port 70000"), "{err}");
}

/// Strings YAML could misread if written unquoted; each is used whole as a value and as a
/// key. (`tests/real_litellm.rs` also loads such a config with LiteLLM's own parser.)
static HOSTILE: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
    serde_json::from_str(include_str!("../tests/fixtures/hostile-strings.json"))
        .expect("the hostile-strings fixture is a JSON list of strings")
});

/// A gateway whose model names, providers, Guard names and Guard fields are all
/// [`HOSTILE`] strings, with the objects it references.
fn hostile_gateway() -> (AiGateway, InMemoryObjects) {
    let models: Vec<Value> = HOSTILE
        .iter()
        .map(|h| json!({"name": h, "provider": h}))
        .collect();
    let refs: Vec<Value> = HOSTILE.iter().map(|h| json!({"name": h})).collect();
    let mut gw = AiGateway::new(
        "gw",
        aigateway_api::AiGatewaySpec {
            ai_models: serde_json::from_value(Value::Array(models)).unwrap(),
            guardrails: serde_json::from_value(Value::Array(refs)).unwrap(),
            env: vec![EnvVar {
                name: names::MASTER_KEY_ENV.into(),
                value: Some("sk-test".into()),
                value_from: None,
            }],
            ..Default::default()
        },
    );
    gw.metadata.namespace = Some("ns".into());
    let mut lookup = InMemoryObjects::new();
    lookup.insert_guardrail_provider(
        serde_json::from_value(json!({
            "apiVersion": "runtime.agentic-layer.ai/v1alpha1", "kind": "GuardrailProvider",
            "metadata": {"name": "p: {x}\n", "namespace": "ns"},
            "spec": {"type": "presidio-api", "presidio": {"baseUrl": "http://x/?a=b&c: d #e"}}
        }))
        .unwrap(),
    );
    for h in HOSTILE.iter() {
        lookup.insert_guard(serde_json::from_value(json!({
            "apiVersion": "runtime.agentic-layer.ai/v1alpha1", "kind": "Guard",
            "metadata": {"name": h, "namespace": "ns"},
            "spec": {"mode": ["pre_call"], "providerRef": {"name": "p: {x}\n"},
                     "presidio": {"language": h, "scoreThresholds": {h.as_str(): "0.5"}, "entityActions": {h.as_str(): "MASK"}}}
        })).unwrap());
    }
    (gw, lookup)
}

/// What the hostile config must read back as.
fn assert_hostile_config(parsed: &Value) {
    let models = parsed["model_list"].as_array().unwrap();
    assert_eq!(models.len(), HOSTILE.len());
    for (entry, h) in models.iter().zip(HOSTILE.iter()) {
        assert_eq!(entry["model_name"], json!(h));
        assert_eq!(entry["litellm_params"]["model"], json!(format!("{h}/{h}")));
        assert_eq!(
            entry["litellm_params"]["api_key"],
            json!(format!("os.environ/{}_API_KEY", h.to_uppercase()))
        );
    }
    let guards = parsed["guardrails"].as_array().unwrap();
    assert_eq!(guards.len(), HOSTILE.len());
    for (guard, h) in guards.iter().zip(HOSTILE.iter()) {
        assert_eq!(guard["guardrail_name"], json!(h));
        assert_eq!(guard["litellm_params"]["presidio_language"], json!(h));
        assert_eq!(
            guard["litellm_params"]["pii_entities_config"],
            json!({h.as_str(): "MASK"})
        );
        assert_eq!(
            guard["litellm_params"]["presidio_score_thresholds"],
            json!({h.as_str(): 0.5})
        );
        assert_eq!(
            guard["litellm_params"]["presidio_analyzer_api_base"],
            json!("http://x/?a=b&c: d #e")
        );
    }
}

#[test]
fn hostile_strings_stay_valid_yaml_with_the_same_values() {
    let (gw, lookup) = hostile_gateway();
    let r = render(&gw, &lookup, &RenderSettings::default()).unwrap();
    assert_hostile_config(&config(&r));
    // Providers whose key name cannot be a Secret key are reported, not rendered as env.
    assert!(
        r.problems
            .iter()
            .any(|p| p.reason == ProblemReason::InvalidSpec
                && p.message.contains("cannot be a Secret key"))
    );
    // The whole objects survive a YAML round trip too.
    let yaml = serde_saphyr::to_string(&r.config_map).unwrap();
    let back: k8s_openapi::api::core::v1::ConfigMap = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(back, r.config_map);
    let yaml = serde_saphyr::to_string(&r.deployment).unwrap();
    let back: k8s_openapi::api::apps::v1::Deployment = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(back, r.deployment);
}

#[test]
fn the_offline_check_reports_what_validate_config_misses() {
    let r = rendered(&patch_map(
        "  patch.yaml: |\n    model_list:\n    - {model_name: a, litellm_params: {model: openai/a, api_key: os.environ/OPENAI_API_KEY}}\n    - {model_name: a, litellm_params: {model: openai/a, api_key: os.environ/OPENAI_API_KEY}}\n    - {model_name: b, litellm_params: {model: /b, api_key: os.environ/UNSET_KEY}}\n    litellm_settings: {drop_param: true, drop_params: true}\n    general_settings: {master_key: sk-literal, master_kye: x}\n    router_settings: {routing_strategy: simple-shuffle, routing_stratgy: y}\n    custom_section: {anything: 1}\n",
    ));
    let messages: Vec<&str> = r
        .problems
        .iter()
        .filter(|p| p.reason == ProblemReason::SuspiciousConfig)
        .map(|p| p.message.as_str())
        .collect();
    let has = |needle: &str| messages.iter().any(|m| m.contains(needle));
    assert!(has("model_list[1] (a) repeats"), "{messages:#?}");
    assert!(has("empty provider"), "{messages:#?}");
    assert!(has("os.environ/UNSET_KEY"), "{messages:#?}");
    assert!(!has("os.environ/OPENAI_API_KEY"), "{messages:#?}");
    for typo in [
        "litellm_settings.drop_param,",
        "general_settings.master_kye",
        "router_settings.routing_stratgy",
    ] {
        assert!(has(typo), "{typo}: {messages:#?}");
    }
    assert!(
        !has("drop_params,") && !has("routing_strategy,") && !has("custom_section"),
        "{messages:#?}"
    );
    assert!(has("master_key is written in plain text"), "{messages:#?}");
    assert!(
        has("includes otel but the container sets neither"),
        "{messages:#?}"
    );
    let r = rendered(&gateway(&format!(
        "{ONE_MODEL}  env: [{{name: OTEL_EXPORTER_OTLP_PROTOCOL, value: http/json}}]\n"
    )));
    assert!(
        !r.problems.iter().any(|p| p.message.contains("otel")),
        "{:#?}",
        r.problems
    );
    assert!(
        !messages.iter().any(|m| m.contains("sk-literal")),
        "never echo the key"
    );
    // An empty provider in the spec skips that model and says so.
    let r = rendered(&gateway(
        "  aiModels: [{provider: '', name: x}, {provider: openai, name: why}]\n",
    ));
    assert_eq!(config(&r)["model_list"].as_array().unwrap().len(), 1);
    assert!(
        r.problems
            .iter()
            .any(|p| p.reason == ProblemReason::InvalidSpec
                && p.message.contains("spec.aiModels[0]"))
    );
}

#[test]
fn missing_user_env_sources_are_reported() {
    let r = rendered(&gateway(&format!(
        "{ONE_MODEL}  env: [{{name: X, valueFrom: {{secretKeyRef: {{name: nope, key: k}}}}}}, {{name: WHY, valueFrom: {{configMapKeyRef: {{name: nocm, key: k, optional: true}}}}}}]\n  envFrom: [{{configMapRef: {{name: gone}}}}]\n"
    )));
    let got = reasons(&r);
    assert!(
        got.contains(&(ProblemReason::RefNotFound, "Secret ns/nope".into())),
        "{got:#?}"
    );
    assert!(
        got.contains(&(ProblemReason::RefNotFound, "ConfigMap ns/gone".into())),
        "{got:#?}"
    );
    assert!(
        !got.iter().any(|(_, o)| o == "ConfigMap ns/nocm"),
        "optional: {got:#?}"
    );
}

#[test]
fn the_secret_hash_covers_guard_credentials() {
    let input = |key: &str| {
        format!(
            "{}---\n{}",
            MODERATION.replace("sk-moderation-value", key),
            gateway(&format!(
                "{ONE_MODEL}  guardrails: [{{name: moderation}}]\n"
            ))
        )
    };
    let hash = |r: &Rendered| {
        template(r)
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .as_ref()
            .unwrap()[names::SECRET_HASH_ANNOTATION]
            .clone()
    };
    assert_ne!(
        hash(&rendered(&input("one"))),
        hash(&rendered(&input("two")))
    );
}

#[test]
fn literal_credentials_in_spec_env_are_reported_without_their_value() {
    let r = rendered(&gateway(&format!(
        "{ONE_MODEL}  env:\n  - {{name: OPENAI_API_KEY, value: sk-literal-value}}\n  - {{name: LITELLM_MASTER_KEY, value: sk-master-literal}}\n  - {{name: OPENAI_API_BASE, value: 'http://x'}}\n  - {{name: GITHUB_TOKEN, valueFrom: {{secretKeyRef: {{name: s, key: k, optional: true}}}}}}\n"
    )));
    let flagged: Vec<&str> = r
        .problems
        .iter()
        .filter(|p| p.message.contains("holds a literal value"))
        .map(|p| p.message.as_str())
        .collect();
    assert_eq!(flagged.len(), 2, "{flagged:#?}");
    assert!(
        flagged[0].contains("spec.env[0] (OPENAI_API_KEY)")
            && flagged[1].contains("spec.env[1] (LITELLM_MASTER_KEY)")
    );
    assert!(
        !flagged
            .iter()
            .any(|m| m.contains("sk-literal-value") || m.contains("sk-master-literal"))
    );
}

mod model_policies {
    use super::*;
    use crate::policy::{LiteLlmModelPolicy, LiteLlmModelPolicySpec, SecretKeyReference};
    use crate::{PolicyVerdict, render_with_policies};
    use aigateway_api::policy::PolicyTargetReference;

    const SECRETS: &str = "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: big-key\n  namespace: ns\nstringData:\n  key: s3cr3t-value\n";

    fn policy(name: &str, model: Option<&str>, spec: LiteLlmModelPolicySpec) -> LiteLlmModelPolicy {
        let mut reference =
            PolicyTargetReference::new("runtime.agentic-layer.ai", "AiGateway", "gw");
        reference.section_name = model.map(Into::into);
        let mut policy = LiteLlmModelPolicy::new(
            name,
            LiteLlmModelPolicySpec {
                target_refs: vec![reference],
                ..spec
            },
        );
        policy.metadata.namespace = Some("ns".into());
        policy
    }

    fn render_policies(extra: &str, policies: &[LiteLlmModelPolicy]) -> Rendered {
        let yaml = gateway(
            "  aiModels:\n  - provider: openai\n    name: gpt\n  - provider: azure\n    name: big\n",
        ) + extra;
        let (lookup, gateway) = setup(&yaml);
        let policies = crate::GatewayPolicies {
            models: policies,
            ..Default::default()
        };
        render_with_policies(&gateway, policies, &lookup, &RenderSettings::default()).unwrap()
    }

    fn params(r: &Rendered, model: &str) -> Value {
        let config = config(r);
        let entry = (config["model_list"].as_array().unwrap().iter())
            .find(|e| e["model_name"] == model)
            .unwrap()
            .clone();
        entry["litellm_params"].clone()
    }

    #[test]
    fn a_model_policy_sets_its_models_endpoint_key_and_limits_and_the_others_keep_the_gateway_wide_one()
     {
        let whole = policy(
            "defaults",
            None,
            LiteLlmModelPolicySpec {
                timeout_seconds: Some(30),
                ..Default::default()
            },
        );
        let big = policy(
            "big",
            Some("big"),
            LiteLlmModelPolicySpec {
                api_base: Some("https://team.openai.azure.com".into()),
                api_version: Some("2024-10-21".into()),
                credentials: Some(SecretKeyReference {
                    name: "big-key".into(),
                    key: "key".into(),
                }),
                rpm: Some(6),
                ..Default::default()
            },
        );
        let r = render_policies(SECRETS, &[whole, big]);
        let gpt = params(&r, "gpt");
        assert_eq!(gpt["timeout"], 30);
        assert_eq!(gpt["api_key"], "os.environ/OPENAI_API_KEY");
        assert!(gpt.get("api_base").is_none());
        let big = params(&r, "big");
        assert_eq!(big["api_base"], "https://team.openai.azure.com");
        assert_eq!(big["api_version"], "2024-10-21");
        assert_eq!(big["rpm"], 6);
        assert!(
            big.get("timeout").is_none(),
            "a model's own policy replaces the gateway-wide one"
        );
        let var = big["api_key"]
            .as_str()
            .unwrap()
            .strip_prefix("os.environ/")
            .unwrap()
            .to_owned();
        let from_secret = env(&r)
            .into_iter()
            .find(|e| e.name == var)
            .expect("the key's env var");
        let selector = from_secret.value_from.unwrap().secret_key_ref.unwrap();
        assert_eq!(
            (selector.name.as_str(), selector.key.as_str()),
            ("big-key", "key")
        );
        assert!(
            !r.config_yaml.contains("s3cr3t"),
            "the key's value never reaches the ConfigMap"
        );
        assert!(
            !env_names(&r).contains(&"AZURE_API_KEY".to_owned())
                && !r
                    .problems
                    .iter()
                    .any(|p| p.message.contains("AZURE_API_KEY")),
            "the only azure model has its own key: no provider key is asked for: {:?}",
            r.problems
        );
        assert!(
            r.policies
                .iter()
                .all(|o| o.verdict == PolicyVerdict::Applied),
            "{:?}",
            r.policies
        );
    }

    #[test]
    fn an_invalid_policy_is_left_out_and_a_missing_secret_is_unresolved() {
        let hostile = policy(
            "hostile",
            None,
            LiteLlmModelPolicySpec {
                api_base: Some("os.environ/AWS_SECRET".into()),
                ..Default::default()
            },
        );
        let keyless = policy(
            "keyless",
            Some("big"),
            LiteLlmModelPolicySpec {
                credentials: Some(SecretKeyReference {
                    name: "absent".into(),
                    key: "key".into(),
                }),
                ..Default::default()
            },
        );
        let r = render_policies("", &[hostile, keyless]);
        assert!(!r.config_yaml.contains("AWS_SECRET"));
        assert!(
            matches!(r.policies[0].verdict, PolicyVerdict::Refused(_)),
            "{:?}",
            r.policies
        );
        let PolicyVerdict::Unresolved(message) = &r.policies[1].verdict else {
            panic!("{:?}", r.policies)
        };
        assert!(message.contains("Secret ns/absent not found"), "{message}");
        // The model is still served, with its own (empty) key: never the provider's.
        assert_ne!(params(&r, "big")["api_key"], "os.environ/AZURE_API_KEY");
    }
}

mod routing_policies {
    use super::*;
    use crate::policy::{
        Fallback, LiteLlmModelPolicy, LiteLlmModelPolicySpec, LiteLlmRoutingPolicy,
        LiteLlmRoutingPolicySpec, RedisReference, SharedLimits,
    };
    use crate::{GatewayPolicies, PolicyVerdict, ProblemReason, render_with_policies};
    use aigateway_api::policy::PolicyTargetReference;

    const REDIS: &str = "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: redis\n  namespace: ns\nstringData:\n  host: redis.ns.svc\n  port: '6379'\n  password: r3dis-pass\n";

    fn target() -> PolicyTargetReference {
        PolicyTargetReference::new("runtime.agentic-layer.ai", "AiGateway", "gw")
    }

    fn routing(name: &str, mut spec: LiteLlmRoutingPolicySpec) -> LiteLlmRoutingPolicy {
        if spec.target_refs.is_empty() {
            spec.target_refs = vec![target()];
        }
        let mut policy = LiteLlmRoutingPolicy::new(name, spec);
        policy.metadata.namespace = Some("ns".into());
        policy
    }

    fn limited() -> LiteLlmModelPolicy {
        let mut policy = LiteLlmModelPolicy::new(
            "limits",
            LiteLlmModelPolicySpec {
                target_refs: vec![target()],
                rpm: Some(6),
                ..Default::default()
            },
        );
        policy.metadata.namespace = Some("ns".into());
        policy
    }

    fn fallback(model: &str, to: &[&str]) -> Fallback {
        Fallback {
            model: model.into(),
            to: to.iter().map(|m| m.to_string()).collect(),
        }
    }

    fn render_routing(
        extra: &str,
        models: &[LiteLlmModelPolicy],
        routing: &[LiteLlmRoutingPolicy],
        settings: &RenderSettings,
    ) -> Rendered {
        let yaml = gateway(
            "  aiModels:\n  - provider: openai\n    name: gpt\n  - provider: anthropic\n    name: claude\n",
        ) + extra;
        let (lookup, gateway) = setup(&yaml);
        let policies = GatewayPolicies {
            models,
            routing,
            ..Default::default()
        };
        render_with_policies(&gateway, policies, &lookup, settings).unwrap()
    }

    fn shared() -> Option<SharedLimits> {
        Some(SharedLimits {
            redis: RedisReference {
                secret_name: "redis".into(),
            },
        })
    }

    #[test]
    fn a_routing_policy_sets_fallbacks_retries_and_cooldown_in_router_settings() {
        let policy = routing(
            "routing",
            LiteLlmRoutingPolicySpec {
                fallbacks: vec![fallback("gpt", &["claude"])],
                context_window_fallbacks: vec![fallback("claude", &["gpt"])],
                retries: Some(2),
                timeout_seconds: Some(45),
                allowed_fails: Some(3),
                cooldown_seconds: Some(20),
                ..Default::default()
            },
        );
        let r = render_routing("", &[], &[policy], &RenderSettings::default());
        let router = &config(&r)["router_settings"];
        assert_eq!(router["fallbacks"], json!([{"gpt": ["claude"]}]));
        assert_eq!(
            router["context_window_fallbacks"],
            json!([{"claude": ["gpt"]}])
        );
        assert_eq!(
            (
                &router["num_retries"],
                &router["timeout"],
                &router["allowed_fails"],
                &router["cooldown_time"]
            ),
            (&json!(2), &json!(45), &json!(3), &json!(20))
        );
        assert!(router.get("redis_host").is_none());
        assert!(
            router.get("routing_strategy").is_none(),
            "no model has limits: LiteLLM's default strategy"
        );
        assert_eq!(r.policies[0].verdict, PolicyVerdict::Applied);
    }

    #[test]
    fn shared_limits_read_redis_from_the_secret_and_never_put_its_values_in_the_config() {
        let policy = routing(
            "shared",
            LiteLlmRoutingPolicySpec {
                shared_limits: shared(),
                ..Default::default()
            },
        );
        let settings = RenderSettings {
            replicas: Some(3),
            ..Default::default()
        };
        let r = render_routing(REDIS, &[limited()], &[policy], &settings);
        let router = &config(&r)["router_settings"];
        assert_eq!(router["redis_host"], "os.environ/LITELLM_REDIS_HOST");
        assert_eq!(
            router["redis_password"],
            "os.environ/LITELLM_REDIS_PASSWORD"
        );
        assert_eq!(
            router["routing_strategy"], "usage-based-routing-v2",
            "the only strategy that enforces rpm and tpm per minute"
        );
        let from_secret: Vec<(String, String)> = env(&r)
            .into_iter()
            .filter_map(|e| {
                let selector = e.value_from?.secret_key_ref?;
                (selector.name == "redis").then_some((e.name, selector.key))
            })
            .collect();
        assert_eq!(from_secret.len(), 3, "{from_secret:?}");
        assert!(!r.config_yaml.contains("r3dis-pass"));
        assert!(!r.config_yaml.contains("redis.ns.svc"));
        assert_eq!(r.policies[0].verdict, PolicyVerdict::Applied);
        assert!(
            r.problems
                .iter()
                .all(|p| p.reason != ProblemReason::PerReplicaLimits),
            "{:?}",
            r.problems
        );
    }

    #[test]
    fn limits_without_redis_on_several_replicas_are_reported_per_replica() {
        let per_replica = |replicas: Option<i32>, routing: &[LiteLlmRoutingPolicy]| {
            let settings = RenderSettings {
                replicas,
                ..Default::default()
            };
            let r = render_routing(REDIS, &[limited()], routing, &settings);
            r.problems
                .into_iter()
                .find(|p| p.reason == ProblemReason::PerReplicaLimits)
                .map(|p| p.message)
        };
        let message = per_replica(Some(3), &[]).expect("3 replicas without Redis");
        assert!(
            message.contains("gpt, claude") && message.contains("3 replicas"),
            "{message}"
        );
        let autoscaled = per_replica(None, &[]).expect("an autoscaler without Redis");
        assert!(autoscaled.contains("autoscaler"), "{autoscaled}");
        assert_eq!(
            per_replica(Some(1), &[]),
            None,
            "one replica counts alone anyway"
        );
        let shared = routing(
            "shared",
            LiteLlmRoutingPolicySpec {
                shared_limits: shared(),
                ..Default::default()
            },
        );
        assert_eq!(per_replica(Some(3), &[shared]), None);
    }

    #[test]
    fn a_missing_redis_secret_or_key_leaves_the_policy_unresolved() {
        let policy = routing(
            "shared",
            LiteLlmRoutingPolicySpec {
                shared_limits: shared(),
                ..Default::default()
            },
        );
        let r = render_routing(
            "",
            &[],
            std::slice::from_ref(&policy),
            &RenderSettings::default(),
        );
        let PolicyVerdict::Unresolved(message) = &r.policies[0].verdict else {
            panic!("{:?}", r.policies)
        };
        assert!(message.contains("Secret ns/redis not found"), "{message}");
        let partial = REDIS.replace("  port: '6379'\n", "");
        let r = render_routing(
            &partial,
            &[],
            std::slice::from_ref(&policy),
            &RenderSettings::default(),
        );
        let PolicyVerdict::Unresolved(message) = &r.policies[0].verdict else {
            panic!("{:?}", r.policies)
        };
        assert!(message.contains("has no key port"), "{message}");

        // A Redis without a password: no password setting, nothing unresolved.
        let passwordless = REDIS.replace("  password: r3dis-pass\n", "");
        let r = render_routing(&passwordless, &[], &[policy], &RenderSettings::default());
        assert_eq!(r.policies[0].verdict, PolicyVerdict::Applied);
        let router = &config(&r)["router_settings"];
        assert_eq!(router["redis_host"], "os.environ/LITELLM_REDIS_HOST");
        assert!(router.get("redis_password").is_none(), "{}", r.config_yaml);
        let container = &r
            .deployment
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0];
        let env = container.env.as_ref().unwrap();
        assert!(!env.iter().any(|e| e.name == "LITELLM_REDIS_PASSWORD"));
    }

    #[test]
    fn hostile_routing_policies_are_refused_and_change_nothing() {
        let refused = |spec: LiteLlmRoutingPolicySpec| {
            let policy = routing("hostile", spec);
            let r = render_routing("", &[], &[policy], &RenderSettings::default());
            assert!(
                config(&r).get("router_settings").is_none(),
                "{}",
                r.config_yaml
            );
            match &r.policies[0].verdict {
                PolicyVerdict::Refused(refusal) => refusal.to_string(),
                other => panic!("not refused: {other:?}"),
            }
        };
        let fallbacks = |list: Vec<Fallback>| LiteLlmRoutingPolicySpec {
            fallbacks: list,
            ..Default::default()
        };
        assert!(
            refused(fallbacks(vec![fallback("gpt", &["os.environ/X"])])).contains("does not serve")
        );
        assert!(refused(fallbacks(vec![fallback("nope", &["gpt"])])).contains("does not serve"));
        assert!(refused(fallbacks(vec![fallback("gpt", &["gpt"])])).contains("itself"));
        assert!(refused(fallbacks(vec![fallback("gpt", &[])])).contains("1 to 8"));
        assert!(
            refused(fallbacks(vec![
                fallback("gpt", &["claude"]),
                fallback("gpt", &["claude"])
            ]))
            .contains("twice")
        );
        let huge = vec![fallback("gpt", &["claude"]); 1000];
        assert!(refused(fallbacks(huge)).contains("more than 64"));
        let retries = LiteLlmRoutingPolicySpec {
            retries: Some(1_000_000),
            ..Default::default()
        };
        assert!(refused(retries).contains("retries"));
        let cooldown = LiteLlmRoutingPolicySpec {
            cooldown_seconds: Some(0),
            ..Default::default()
        };
        assert!(refused(cooldown).contains("cooldownSeconds"));
        let secret = LiteLlmRoutingPolicySpec {
            shared_limits: Some(SharedLimits {
                redis: RedisReference {
                    secret_name: "../kube-system/x".into(),
                },
            }),
            ..Default::default()
        };
        assert!(refused(secret).contains("secretName"));
        let mut section = target();
        section.section_name = Some("gpt".into());
        let sectioned = LiteLlmRoutingPolicySpec {
            target_refs: vec![section],
            ..Default::default()
        };
        assert!(refused(sectioned).contains("sectionName"));

        let mut foreign = routing("foreign", Default::default());
        foreign.metadata.namespace = Some("other".into());
        let r = render_routing("", &[], &[foreign], &RenderSettings::default());
        assert!(matches!(r.policies[0].verdict, PolicyVerdict::Refused(_)));
    }
}

mod observability_policies {
    use super::*;
    use crate::policy::{LiteLlmObservabilityPolicy, LiteLlmObservabilityPolicySpec, Tracing};
    use crate::{GatewayPolicies, PolicyVerdict, render_with_policies};
    use aigateway_api::policy::PolicyTargetReference;

    fn observability(tracing: Tracing) -> LiteLlmObservabilityPolicy {
        let mut policy = LiteLlmObservabilityPolicy::new(
            "traces",
            LiteLlmObservabilityPolicySpec {
                target_refs: vec![PolicyTargetReference::new(
                    "runtime.agentic-layer.ai",
                    "AiGateway",
                    "gw",
                )],
                tracing: Some(tracing),
                monitoring: None,
            },
        );
        policy.metadata.namespace = Some("ns".into());
        policy
    }

    fn render_observed(extra: &str, policy: LiteLlmObservabilityPolicy) -> Rendered {
        let yaml = gateway("  aiModels:\n  - provider: openai\n    name: gpt\n") + extra;
        let (lookup, gateway) = setup(&yaml);
        let policies = GatewayPolicies {
            observability: &[policy],
            ..Default::default()
        };
        render_with_policies(&gateway, policies, &lookup, &RenderSettings::default()).unwrap()
    }

    fn value_of(r: &Rendered, name: &str) -> Option<String> {
        env(r).into_iter().find(|e| e.name == name)?.value
    }

    #[test]
    fn tracing_exports_to_the_collector_as_the_gateway_without_prompts_by_default() {
        let r = render_observed(
            "",
            observability(Tracing {
                endpoint: "http://otel-collector.observability:4318".into(),
                ..Default::default()
            }),
        );
        assert_eq!(
            value_of(&r, "OTEL_EXPORTER_OTLP_ENDPOINT").as_deref(),
            Some("http://otel-collector.observability:4318")
        );
        assert_eq!(value_of(&r, "OTEL_SERVICE_NAME").as_deref(), Some("gw"));
        assert_eq!(
            value_of(&r, "OTEL_EXPORTER_OTLP_PROTOCOL").as_deref(),
            Some("http/protobuf")
        );
        assert_eq!(
            config(&r)["litellm_settings"]["turn_off_message_logging"],
            true
        );
        assert!(
            !r.problems.iter().any(|p| p.message.contains("otel")),
            "the exporter is chosen: {:?}",
            r.problems
        );
        assert_eq!(r.policies[0].verdict, PolicyVerdict::Applied);
    }

    #[test]
    fn an_endpoint_can_never_expand_another_env_var_such_as_a_provider_key() {
        let r = render_observed(
            "",
            observability(Tracing {
                endpoint: "http://collector.evil:4318/$(OPENAI_API_KEY)".into(),
                ..Default::default()
            }),
        );
        assert_eq!(
            value_of(&r, "OTEL_EXPORTER_OTLP_ENDPOINT").as_deref(),
            Some("http://collector.evil:4318/$$(OPENAI_API_KEY)"),
            "the kubelet reads $$ as a literal $: the URL arrives as written, without the key"
        );
    }

    #[test]
    fn content_is_logged_only_when_asked_and_headers_come_from_a_secret() {
        let secret = "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: otel\n  namespace: ns\nstringData:\n  headers: Authorization=Bearer t0ken\n";
        let r = render_observed(
            secret,
            observability(Tracing {
                endpoint: "https://collector.example".into(),
                service_name: Some("team-a/llm".into()),
                headers_secret_name: Some("otel".into()),
                log_content: true,
            }),
        );
        assert!(
            config(&r)["litellm_settings"]
                .get("turn_off_message_logging")
                .is_none()
        );
        assert_eq!(
            value_of(&r, "OTEL_SERVICE_NAME").as_deref(),
            Some("team-a/llm")
        );
        let headers = env(&r)
            .into_iter()
            .find(|e| e.name == "OTEL_EXPORTER_OTLP_HEADERS")
            .and_then(|e| e.value_from?.secret_key_ref)
            .expect("headers from the Secret");
        assert_eq!(
            (headers.name.as_str(), headers.key.as_str()),
            ("otel", "headers")
        );
        assert!(!r.config_yaml.contains("t0ken"));
        assert_eq!(r.policies[0].verdict, PolicyVerdict::Applied);

        let r = render_observed(
            "",
            observability(Tracing {
                endpoint: "https://collector.example".into(),
                headers_secret_name: Some("otel".into()),
                ..Default::default()
            }),
        );
        assert!(
            matches!(&r.policies[0].verdict, PolicyVerdict::Unresolved(m) if m.contains("Secret ns/otel not found")),
            "{:?}",
            r.policies
        );
    }

    #[test]
    fn hostile_tracing_settings_are_refused_and_change_nothing() {
        for (tracing, says) in [
            (
                Tracing {
                    endpoint: "os.environ/COLLECTOR".into(),
                    ..Default::default()
                },
                "tracing.endpoint",
            ),
            (
                Tracing {
                    endpoint: "grpc://collector:4317".into(),
                    ..Default::default()
                },
                "http:// or https://",
            ),
            (
                Tracing {
                    endpoint: "http://c".into(),
                    service_name: Some("a b\nc".into()),
                    ..Default::default()
                },
                "serviceName",
            ),
            (
                Tracing {
                    endpoint: "http://c".into(),
                    headers_secret_name: Some("Not_A_Name".into()),
                    ..Default::default()
                },
                "headersSecretName",
            ),
        ] {
            let r = render_observed("", observability(tracing));
            let PolicyVerdict::Refused(refusal) = &r.policies[0].verdict else {
                panic!("not refused: {:?}", r.policies)
            };
            assert!(refusal.to_string().contains(says), "{refusal}");
            assert!(value_of(&r, "OTEL_EXPORTER_OTLP_ENDPOINT").is_none());
            assert!(
                config(&r)["litellm_settings"]
                    .get("turn_off_message_logging")
                    .is_none()
            );
        }
    }
}

mod availability_policies {
    use super::*;
    use crate::policy::{
        Autoscaling, CpuMemory, DisruptionBudget, LiteLlmAvailabilityPolicy,
        LiteLlmAvailabilityPolicySpec, Resources, Rollout,
    };
    use crate::{GatewayPolicies, PolicyVerdict, ProblemReason, render_with_policies};
    use aigateway_api::policy::PolicyTargetReference;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn availability(spec: LiteLlmAvailabilityPolicySpec) -> LiteLlmAvailabilityPolicy {
        let mut policy = LiteLlmAvailabilityPolicy::new(
            "available",
            LiteLlmAvailabilityPolicySpec {
                target_refs: vec![PolicyTargetReference::new(
                    "runtime.agentic-layer.ai",
                    "AiGateway",
                    "gw",
                )],
                ..spec
            },
        );
        policy.metadata.namespace = Some("ns".into());
        policy
    }

    fn render_available(annotations: &str, policy: LiteLlmAvailabilityPolicy) -> Rendered {
        let yaml = gateway("  aiModels:\n  - provider: openai\n    name: gpt\n").replace(
            "  namespace: ns\n",
            &format!("  namespace: ns\n{annotations}"),
        );
        let (lookup, gateway) = setup(&yaml);
        let policies = GatewayPolicies {
            availability: &[policy],
            ..Default::default()
        };
        render_with_policies(&gateway, policies, &lookup, &RenderSettings::default()).unwrap()
    }

    #[test]
    fn a_request_above_the_limit_it_ends_up_with_refuses_the_whole_policy() {
        // The default CPU limit is 500m: a request of 2 alone would make the API server
        // refuse the Deployment, and the gateway would not be applied at all.
        let r = render_available(
            "",
            availability(LiteLlmAvailabilityPolicySpec {
                replicas: Some(3),
                resources: Some(Resources {
                    requests: Some(CpuMemory {
                        cpu: Some("2".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        );
        let PolicyVerdict::Refused(refusal) = &r.policies[0].verdict else {
            panic!("refused: {:?}", r.policies[0].verdict);
        };
        let message = refusal.to_string();
        assert!(
            message.contains("the cpu request 2 is above the cpu limit 500m")
                && message.contains("resources.limits.cpu"),
            "{message}"
        );
        let spec = r.deployment.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(1), "nothing of the policy applied");
        let container = &spec.template.spec.as_ref().unwrap().containers[0];
        let requests = container
            .resources
            .as_ref()
            .unwrap()
            .requests
            .as_ref()
            .unwrap();
        assert_ne!(requests["cpu"].0, "2");

        // With a limit to match, it applies.
        let r = render_available(
            "",
            availability(LiteLlmAvailabilityPolicySpec {
                resources: Some(Resources {
                    requests: Some(CpuMemory {
                        cpu: Some("2".into()),
                        ..Default::default()
                    }),
                    limits: Some(CpuMemory {
                        cpu: Some("2".into()),
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            }),
        );
        assert_eq!(r.policies[0].verdict, PolicyVerdict::Applied);
    }

    #[test]
    fn an_autoscaler_a_budget_a_rollout_resources_and_spread_shape_the_workload() {
        let r = render_available(
            "",
            availability(LiteLlmAvailabilityPolicySpec {
                autoscaling: Some(Autoscaling {
                    min_replicas: Some(2),
                    max_replicas: 6,
                    memory_utilization: Some(70),
                    ..Default::default()
                }),
                disruption_budget: Some(DisruptionBudget {
                    min_available: Some(IntOrString::Int(1)),
                    ..Default::default()
                }),
                rollout: Some(Rollout {
                    max_surge: Some(IntOrString::String("50%".into())),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
                resources: Some(Resources {
                    requests: Some(CpuMemory {
                        cpu: Some("250m".into()),
                        ..Default::default()
                    }),
                    limits: Some(CpuMemory {
                        memory: Some("4Gi".into()),
                        ..Default::default()
                    }),
                }),
                spread_across_nodes: true,
                ..Default::default()
            }),
        );
        assert_eq!(r.policies[0].verdict, PolicyVerdict::Applied);
        let spec = r.deployment.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, None, "the autoscaler owns the replicas");
        let rolling = spec
            .strategy
            .as_ref()
            .unwrap()
            .rolling_update
            .as_ref()
            .unwrap();
        assert_eq!(rolling.max_surge, Some(IntOrString::String("50%".into())));
        let pod = spec.template.spec.as_ref().unwrap();
        let spread = &pod.topology_spread_constraints.as_ref().unwrap()[0];
        assert_eq!(spread.topology_key, "kubernetes.io/hostname");
        let resources = pod.containers[0].resources.as_ref().unwrap();
        assert_eq!(resources.requests.as_ref().unwrap()["cpu"].0, "250m");
        assert!(
            resources.requests.as_ref().unwrap().contains_key("memory"),
            "the default memory request stays"
        );
        assert_eq!(resources.limits.as_ref().unwrap()["memory"].0, "4Gi");

        let hpa = r.autoscaler.as_ref().expect("an autoscaler");
        let hpa_spec = hpa.spec.as_ref().unwrap();
        assert_eq!(hpa_spec.scale_target_ref.name, "gw");
        assert_eq!((hpa_spec.min_replicas, hpa_spec.max_replicas), (Some(2), 6));
        let metrics: Vec<_> = (hpa_spec.metrics.iter().flatten())
            .map(|m| m.resource.as_ref().unwrap().name.clone())
            .collect();
        assert_eq!(metrics, ["memory"]);
        let pdb = r.disruption_budget.as_ref().expect("a disruption budget");
        let pdb_spec = pdb.spec.as_ref().unwrap();
        assert_eq!(pdb_spec.min_available, Some(IntOrString::Int(1)));
        assert_eq!(pdb_spec.selector.as_ref(), Some(&spec.selector));
    }

    #[test]
    fn fixed_replicas_win_over_the_annotation_which_is_reported() {
        let r = render_available(
            "  annotations:\n    ai-gateway-litellm.agentic-layer.ai/replicas: \"5\"\n",
            availability(LiteLlmAvailabilityPolicySpec {
                replicas: Some(3),
                ..Default::default()
            }),
        );
        assert_eq!(r.deployment.spec.as_ref().unwrap().replicas, Some(3));
        assert!(r.autoscaler.is_none() && r.disruption_budget.is_none());
        assert!(
            r.problems
                .iter()
                .any(|p| p.reason == ProblemReason::SuspiciousConfig
                    && p.message.contains(
                        "annotation ai-gateway-litellm.agentic-layer.ai/replicas is ignored"
                    )),
            "{:?}",
            r.problems
        );
    }

    #[test]
    fn hostile_availability_policies_are_refused_and_change_nothing() {
        let plain = render_available("", availability(Default::default()));
        for (spec, says) in [
            (
                LiteLlmAvailabilityPolicySpec {
                    replicas: Some(100_000),
                    ..Default::default()
                },
                "replicas must be",
            ),
            (
                LiteLlmAvailabilityPolicySpec {
                    replicas: Some(2),
                    autoscaling: Some(Autoscaling {
                        max_replicas: 3,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                "not both",
            ),
            (
                LiteLlmAvailabilityPolicySpec {
                    autoscaling: Some(Autoscaling {
                        min_replicas: Some(5),
                        max_replicas: 3,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                "minReplicas <= maxReplicas",
            ),
            (
                LiteLlmAvailabilityPolicySpec {
                    disruption_budget: Some(DisruptionBudget {
                        min_available: Some(IntOrString::Int(1)),
                        max_unavailable: Some(IntOrString::Int(1)),
                    }),
                    ..Default::default()
                },
                "exactly one",
            ),
            (
                LiteLlmAvailabilityPolicySpec {
                    disruption_budget: Some(DisruptionBudget {
                        max_unavailable: Some(IntOrString::String("150%".into())),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                "percentage",
            ),
            (
                LiteLlmAvailabilityPolicySpec {
                    rollout: Some(Rollout {
                        max_surge: Some(IntOrString::Int(0)),
                        max_unavailable: Some(IntOrString::String("0%".into())),
                    }),
                    ..Default::default()
                },
                "both maxSurge and maxUnavailable 0",
            ),
            (
                LiteLlmAvailabilityPolicySpec {
                    rollout: Some(Rollout {
                        max_surge: Some(IntOrString::String("00%".into())),
                        max_unavailable: Some(IntOrString::Int(0)),
                    }),
                    ..Default::default()
                },
                "both maxSurge and maxUnavailable 0",
            ),
            (
                LiteLlmAvailabilityPolicySpec {
                    disruption_budget: Some(DisruptionBudget {
                        max_unavailable: Some(IntOrString::String("+5%".into())),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                "percentage",
            ),
            (
                LiteLlmAvailabilityPolicySpec {
                    resources: Some(Resources {
                        limits: Some(CpuMemory {
                            memory: Some("os.environ/X".into()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                "not a quantity",
            ),
        ] {
            let r = render_available("", availability(spec));
            let PolicyVerdict::Refused(refusal) = &r.policies[0].verdict else {
                panic!("not refused ({says}): {:?}", r.policies)
            };
            assert!(refusal.to_string().contains(says), "{refusal}");
            assert_eq!(r.deployment, plain.deployment, "{says}");
            assert!(r.autoscaler.is_none() && r.disruption_budget.is_none());
        }
    }
}

mod monitoring {
    use super::*;
    use crate::policy::{
        LiteLlmObservabilityPolicy, LiteLlmObservabilityPolicySpec, MonitorKind, Monitoring,
    };
    use crate::{GatewayPolicies, PolicyVerdict, render_with_policies};
    use aigateway_api::policy::PolicyTargetReference;

    fn render_monitored(monitoring: Monitoring) -> Rendered {
        let mut policy = LiteLlmObservabilityPolicy::new(
            "metrics",
            LiteLlmObservabilityPolicySpec {
                target_refs: vec![PolicyTargetReference::new(
                    "runtime.agentic-layer.ai",
                    "AiGateway",
                    "gw",
                )],
                tracing: None,
                monitoring: Some(monitoring),
            },
        );
        policy.metadata.namespace = Some("ns".into());
        let (lookup, gateway) = setup(&gateway(
            "  aiModels:\n  - provider: openai\n    name: gpt\n",
        ));
        let policies = GatewayPolicies {
            observability: &[policy],
            ..Default::default()
        };
        render_with_policies(&gateway, policies, &lookup, &RenderSettings::default()).unwrap()
    }

    /// The spec of `r`'s monitor, after checking it is a `kind` named after the gateway
    /// with the policy's `release` label.
    fn monitor_spec(r: &Rendered, kind: MonitorKind) -> &serde_json::Value {
        assert_eq!(r.policies[0].verdict, PolicyVerdict::Applied);
        let monitor = r.monitor.as_ref().expect("a monitor");
        assert_eq!(monitor.kind, kind);
        let object = &monitor.object;
        assert_eq!(
            (object.types.as_ref()).map(|t| (t.api_version.as_str(), t.kind.as_str())),
            Some(("monitoring.coreos.com/v1", kind.kind()))
        );
        assert_eq!(object.metadata.name.as_deref(), Some("gw"));
        let labels = object.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["release"], "prometheus");
        &object.data["spec"]
    }

    #[test]
    fn a_service_monitor_scrapes_the_gateways_service() {
        let r = render_monitored(Monitoring {
            interval: Some("30s".into()),
            labels: BTreeMap::from([("release".into(), "prometheus".into())]),
            ..Default::default()
        });
        let spec = monitor_spec(&r, MonitorKind::ServiceMonitor);
        assert_eq!(
            spec["selector"]["matchLabels"],
            json!(r.service.spec.as_ref().unwrap().selector)
        );
        assert_eq!(
            spec["endpoints"],
            json!([{"port": "http", "path": "/metrics", "interval": "30s"}])
        );
    }

    #[test]
    fn a_pod_monitor_scrapes_the_gateways_pods() {
        let r = render_monitored(Monitoring {
            kind: MonitorKind::PodMonitor,
            interval: Some("1m".into()),
            labels: BTreeMap::from([("release".into(), "prometheus".into())]),
        });
        let spec = monitor_spec(&r, MonitorKind::PodMonitor);
        // The Deployment's own selector: exactly the gateway's pods.
        let deployment = r.deployment.spec.as_ref().unwrap();
        let pods = deployment.selector.match_labels.as_ref().unwrap();
        assert_eq!(spec["selector"]["matchLabels"], json!(pods));
        let template = &deployment.template;
        let template_labels = (template.metadata.as_ref()).and_then(|m| m.labels.as_ref());
        for (key, value) in pods {
            assert_eq!(
                template_labels.and_then(|l| l.get(key)),
                Some(value),
                "the pods carry {key}"
            );
        }
        // The container's port of that name.
        let container = &template.spec.as_ref().unwrap().containers[0];
        assert!(
            (container.ports.iter().flatten()).any(|p| p.name.as_deref() == Some("http")),
            "{container:?}"
        );
        assert_eq!(
            spec["podMetricsEndpoints"],
            json!([{"port": "http", "path": "/metrics", "interval": "1m"}])
        );
        assert!(spec.get("endpoints").is_none());
    }

    #[test]
    fn a_monitor_kind_other_than_the_two_is_refused_by_the_crd_and_never_read() {
        use kube::CustomResourceExt;
        let crd = serde_json::to_value(LiteLlmObservabilityPolicy::crd()).unwrap();
        let kind = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
            ["monitoring"]["properties"]["kind"];
        assert_eq!(
            kind["enum"],
            json!(["ServiceMonitor", "PodMonitor"]),
            "{kind}"
        );
        // An API server without the schema cannot make us read one: the policy does not
        // deserialise, and the runtime leaves it out.
        let policy = json!({
            "apiVersion": "litellm.aigateway.agentic-layer.ai/v1alpha1",
            "kind": "LiteLLMObservabilityPolicy",
            "metadata": {"name": "p", "namespace": "team"},
            "spec": {"targetRefs": [], "monitoring": {"kind": "Secret"}},
        });
        assert!(serde_json::from_value::<LiteLlmObservabilityPolicy>(policy).is_err());
    }

    #[test]
    fn hostile_monitoring_is_refused_and_makes_nothing() {
        for (monitoring, says) in [
            (
                Monitoring {
                    interval: Some("0s".into()),
                    ..Default::default()
                },
                "interval",
            ),
            (
                Monitoring {
                    interval: Some("1h; drop".into()),
                    ..Default::default()
                },
                "interval",
            ),
            (
                Monitoring {
                    labels: BTreeMap::from([("app".into(), "someone-else".into())]),
                    ..Default::default()
                },
                "the operator sets itself",
            ),
            (
                Monitoring {
                    labels: BTreeMap::from([("ok".into(), "not a value".into())]),
                    ..Default::default()
                },
                "not a Kubernetes label",
            ),
            (
                Monitoring {
                    labels: (0..100).map(|i| (format!("l{i}"), "v".into())).collect(),
                    ..Default::default()
                },
                "more than 16",
            ),
        ] {
            let r = render_monitored(monitoring);
            let PolicyVerdict::Refused(refusal) = &r.policies[0].verdict else {
                panic!("not refused ({says}): {:?}", r.policies)
            };
            assert!(refusal.to_string().contains(says), "{refusal}");
            assert!(r.monitor.is_none());
        }
    }
}
