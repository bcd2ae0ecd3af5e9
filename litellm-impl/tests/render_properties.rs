//! Property test of `render`: for arbitrary gateways, Guards, GuardrailProviders, Secrets
//! and config patches, rendering never panics, the config is YAML that reads back, holds
//! no LiteLLM reference (`os.environ/`, `oidc/`, ...) other than the ones rendering
//! generates or the gateway owner's patch writes, no Secret value reaches any output, and
//! every child name, label and env name is one the API server accepts.
//!
//! Bounded for CI: a fixed number of cases from a fixed seed, so a run is reproducible;
//! failures found are also kept in `proptest-regressions/render_properties.txt` and
//! replayed first.

use std::collections::BTreeSet;

use aigateway_api::{AiGateway, Guard, GuardrailProvider};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use litellm_impl::config::litellm_reference;
use litellm_impl::names::{
    check_dns1035_label, check_dns1123_label, check_dns1123_subdomain, check_env_name,
    check_label_value, check_qualified_name, provider_api_key_env,
};
use litellm_impl::{InMemoryObjects, RenderError, RenderSettings, Rendered, render};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, RngSeed};
use serde_json::{Value, json};

/// Strings users write, strings YAML misreads, strings LiteLLM resolves, and noise.
fn text() -> impl Strategy<Value = String> {
    let hostile: Vec<String> =
        serde_json::from_str(include_str!("fixtures/hostile-strings.json")).unwrap();
    prop_oneof![
        3 => "[a-z][a-z0-9-]{0,10}",
        2 => prop::sample::select(hostile),
        2 => (
            prop::sample::select(vec![
                "os.environ/", "OS.ENVIRON/", " os.environ/", "oidc/", "oidc/env/",
                "hashicorp_vault/", "aws_secret_manager/", "google_secret_manager/",
            ]),
            "[A-Z_]{0,12}"
        )
            .prop_map(|(prefix, rest)| format!("{prefix}{rest}")),
        1 => ".{0,12}",
        1 => Just(String::new()),
    ]
}

/// Names: mostly valid DNS labels, sometimes anything.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z][a-z0-9-]{0,8}[a-z0-9]",
        1 => "[a-z]{60,70}",
        1 => text(),
    ]
}

fn namespace() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["ns".to_owned(), "other".to_owned()])
}

/// A Secret value: easy to find in any output, impossible to produce by chance.
fn secret_value() -> impl Strategy<Value = String> {
    "[A-Z]{10}".prop_map(|v| format!("SECRETVALUE{v}"))
}

fn secret_key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "OPENAI_API_KEY",
            "ANTHROPIC_API_KEY",
            "GUARDRAIL_MOD_API_KEY",
            "aws-access-key-id",
            "aws-secret-access-key",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "key",
        ])
        .prop_map(str::to_owned),
        text(),
    ]
}

fn secret() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["api-key-secrets", "creds", "extra"]),
        namespace(),
        prop::collection::btree_map(secret_key(), secret_value(), 0..5),
    )
        .prop_map(|(name, namespace, data)| {
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": name, "namespace": namespace}, "stringData": data})
        })
}

fn provider() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["p1", "p2"]),
        namespace(),
        prop::sample::select(vec!["presidio-api", "openai-moderation-api", "bedrock-api"]),
        text(),
        prop::option::of((prop::sample::select(vec!["creds", "extra"]), secret_key())),
        prop_oneof![Just("us-east-1".to_owned()), text()],
        prop::option::of(namespace()),
    )
        .prop_map(|(name, namespace, type_, url, key_ref, region, creds_namespace)| {
            let mut spec = json!({"type": type_,
                "presidio": {"baseUrl": url},
                "openaiModeration": {"baseUrl": url},
                "bedrock": {"region": region}});
            if let Some((secret, key)) = key_ref {
                spec["openaiModeration"]["apiKeySecretRef"] = json!({"name": secret, "key": key});
                spec["bedrock"]["credentialsSecretRef"] =
                    json!({"name": secret, "namespace": creds_namespace});
            }
            json!({"apiVersion": "runtime.agentic-layer.ai/v1alpha1", "kind": "GuardrailProvider",
                   "metadata": {"name": name, "namespace": namespace}, "spec": spec})
        })
}

fn guard() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["g1", "g2", "mod", "oidc"]),
        namespace(),
        prop::sample::select(vec!["p1", "p2"]),
        prop::option::of(namespace()),
        (text(), text(), text(), text()),
    )
        .prop_map(|(name, namespace, provider, provider_namespace, (a, b, c, d))| {
            json!({"apiVersion": "runtime.agentic-layer.ai/v1alpha1", "kind": "Guard",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"mode": ["pre_call"],
                    "providerRef": {"name": provider, "namespace": provider_namespace},
                    "presidio": {"language": a, "scoreThresholds": {b.clone(): "0.5"}, "entityActions": {b: "MASK"}},
                    "openaiModeration": {"model": c},
                    "bedrock": {"guardrailId": d, "guardrailVersion": "1"}}})
        })
}

/// A config patch: a mapping of sections with arbitrary strings, or text that is not
/// YAML at all.
fn patch() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::collection::btree_map(
            prop::sample::select(vec!["litellm_settings", "general_settings", "router_settings", "model_list"]),
            prop::collection::btree_map(text(), text(), 0..3),
            0..3,
        )
        .prop_map(|sections| serde_json::to_string(&sections).unwrap()),
        1 => ".{0,30}",
    ]
}

#[derive(Debug, Clone)]
struct Case {
    gateway: Value,
    objects: Vec<Value>,
    patch: Option<String>,
}

fn case() -> impl Strategy<Value = Case> {
    let env = prop::collection::vec(
        (
            text(),
            prop_oneof![
                text().prop_map(|v| json!({"value": v})),
                (prop::sample::select(vec!["extra", "creds"]), secret_key()).prop_map(
                    |(s, k)| json!({"valueFrom": {"secretKeyRef": {"name": s, "key": k, "optional": true}}})
                ),
            ],
        ),
        0..3,
    );
    (
        name(),
        prop::collection::vec((text(), text()), 0..4),
        env,
        prop::collection::vec((prop::sample::select(vec!["g1", "g2", "mod", "oidc"]), prop::option::of(namespace())), 0..3),
        prop::option::of(prop::collection::btree_map(text(), text(), 0..3)),
        prop::collection::vec(prop_oneof![secret(), provider(), guard()], 0..8),
        prop::option::of(patch()),
        any::<bool>(),
    )
        .prop_map(|(name, models, env, guards, labels, objects, patch, env_from)| {
            let env: Vec<Value> = env
                .into_iter()
                .map(|(n, mut source)| {
                    source["name"] = json!(n);
                    source
                })
                .collect();
            let mut gateway = json!({
                "apiVersion": "runtime.agentic-layer.ai/v1alpha1", "kind": "AiGateway",
                "metadata": {"name": name, "namespace": "ns"},
                "spec": {
                    "aiModels": models.into_iter().map(|(p, n)| json!({"provider": p, "name": n})).collect::<Vec<_>>(),
                    "env": env,
                    "guardrails": guards.into_iter().map(|(n, ns)| json!({"name": n, "namespace": ns})).collect::<Vec<_>>(),
                    "commonMetadata": {"labels": labels},
                }
            });
            if env_from {
                gateway["spec"]["envFrom"] = json!([{"secretRef": {"name": "extra", "optional": true}}]);
            }
            if patch.is_some() {
                gateway["metadata"]["annotations"] =
                    json!({"ai-gateway-litellm.agentic-layer.ai/config-patch": "patch"});
            }
            Case { gateway, objects, patch }
        })
}

fn lookup(case: &Case) -> (InMemoryObjects, Vec<String>) {
    let mut lookup = InMemoryObjects::new();
    let mut secret_values = Vec::new();
    for object in &case.objects {
        match object["kind"].as_str() {
            Some("Secret") => {
                let secret: Secret = serde_json::from_value(object.clone()).unwrap();
                secret_values.extend(secret.string_data.iter().flatten().map(|(_, v)| v.clone()));
                lookup.insert_secret(secret);
            }
            Some("Guard") => {
                lookup.insert_guard(serde_json::from_value::<Guard>(object.clone()).unwrap())
            }
            _ => lookup.insert_guardrail_provider(
                serde_json::from_value::<GuardrailProvider>(object.clone()).unwrap(),
            ),
        }
    }
    if let Some(patch) = &case.patch {
        lookup.insert_config_map(ConfigMap {
            metadata: ObjectMeta {
                name: Some("patch".into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            data: Some([("patch.yaml".to_owned(), patch.clone())].into()),
            ..Default::default()
        });
    }
    (lookup, secret_values)
}

fn strings(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::String(s) => {
            out.insert(s.clone());
        }
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

fn check_labels(what: &str, labels: Option<&std::collections::BTreeMap<String, String>>) {
    for (key, value) in labels.into_iter().flatten() {
        assert!(
            check_qualified_name(key).is_ok(),
            "{what} label key {key:?}"
        );
        assert!(
            check_label_value(value).is_ok(),
            "{what} label {key}={value:?}"
        );
    }
}

fn check_annotations(what: &str, annotations: Option<&std::collections::BTreeMap<String, String>>) {
    for key in annotations.into_iter().flatten().map(|(k, _)| k) {
        assert!(
            check_qualified_name(key).is_ok(),
            "{what} annotation key {key:?}"
        );
    }
}

fn check_rendered(case: &Case, gateway: &AiGateway, r: &Rendered, secret_values: &[String]) {
    // The config is YAML that reads back.
    let config: Value = serde_saphyr::from_str(&r.config_yaml).expect("the config is YAML");
    assert_eq!(
        r.config_map.data.as_ref().unwrap()["config.yaml"],
        r.config_yaml
    );

    // Its LiteLLM references are ours or the owner's patch's.
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
    let env: Vec<&str> = container
        .env
        .iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect();
    let mut allowed: BTreeSet<String> = env.iter().map(|n| format!("os.environ/{n}")).collect();
    allowed.extend(
        gateway
            .spec
            .ai_models
            .iter()
            .map(|m| format!("os.environ/{}", provider_api_key_env(&m.provider))),
    );
    if let Some(patch) = &case.patch
        && let Ok(patch) = serde_saphyr::from_str::<Value>(patch)
    {
        strings(&patch, &mut allowed);
    }
    let mut found = BTreeSet::new();
    strings(&config, &mut found);
    for s in found.iter().filter(|s| litellm_reference(s).is_some()) {
        assert!(
            allowed.contains(s),
            "the config holds a reference nobody wrote: {s:?}\n{}",
            r.config_yaml
        );
    }

    // Child names, labels and env names.
    let name = r.service.metadata.name.as_deref().unwrap();
    assert!(check_dns1035_label(name).is_ok(), "Service {name:?}");
    assert!(check_dns1123_subdomain(r.deployment.metadata.name.as_deref().unwrap()).is_ok());
    assert!(check_dns1123_subdomain(r.config_map.metadata.name.as_deref().unwrap()).is_ok());
    assert!(check_dns1123_label(r.service.metadata.namespace.as_deref().unwrap()).is_ok());
    check_labels("ConfigMap", r.config_map.metadata.labels.as_ref());
    check_labels("Deployment", r.deployment.metadata.labels.as_ref());
    check_labels("Service", r.service.metadata.labels.as_ref());
    check_annotations("Deployment", r.deployment.metadata.annotations.as_ref());
    let template = &r.deployment.spec.as_ref().unwrap().template;
    check_labels("pod", template.metadata.as_ref().unwrap().labels.as_ref());
    check_annotations(
        "pod",
        template.metadata.as_ref().unwrap().annotations.as_ref(),
    );
    let mut unique = BTreeSet::new();
    for name in &env {
        assert!(check_env_name(name).is_ok(), "env {name:?}");
        assert!(unique.insert(*name), "env {name} twice: {env:?}");
    }
    for e in container.env.iter().flatten() {
        if let Some(selector) = e
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
        {
            assert!(
                check_dns1123_subdomain(&selector.name).is_ok(),
                "{selector:?}"
            );
        }
    }

    // No Secret value anywhere.
    let everything = format!(
        "{}\n{}\n{}\n{}\n{}",
        r.config_yaml,
        serde_json::to_string(&r.config_map).unwrap(),
        serde_json::to_string(&r.deployment).unwrap(),
        serde_json::to_string(&r.service).unwrap(),
        r.problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    );
    for value in secret_values {
        assert!(
            !everything.contains(value.as_str()),
            "Secret value {value} leaked"
        );
    }
}

proptest! {
    #![proptest_config(Config {
        cases: 300,
        rng_seed: RngSeed::Fixed(0x1_2a_12),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/proptest-regressions/render_properties.txt"
        )))),
        ..Config::default()
    })]

    #[test]
    fn rendering_is_total_safe_and_leak_free(case in case()) {
        let gateway: AiGateway = serde_json::from_value(case.gateway.clone()).unwrap();
        let (lookup, secret_values) = lookup(&case);
        match render(&gateway, &lookup, &RenderSettings::default()) {
            Ok(rendered) => check_rendered(&case, &gateway, &rendered, &secret_values),
            Err(error) => {
                // The safety net behind the per-field checks must never be what stops a
                // string: that would be a field the checks missed.
                prop_assert!(
                    !matches!(error, RenderError::ForeignReference { .. }),
                    "{error}"
                );
                let message = error.to_string();
                for value in &secret_values {
                    prop_assert!(!message.contains(value.as_str()), "Secret value in {message}");
                }
                prop_assert!(!message.contains('\n'), "one line: {message}");
            }
        }
    }
}
