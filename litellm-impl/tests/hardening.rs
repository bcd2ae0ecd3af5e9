//! Regression tests for issue 12's rendering defects: LiteLLM references in copied
//! strings (1), names and env entries the API server would refuse (2), Bedrock's upstream
//! key names (4), restricted pods and `ReplicaFailure` readiness (5).

use std::sync::Arc;

use aigateway_api::AiGateway;
use aigateway_runtime::implementation::to_dynamic;
use aigateway_runtime::{Observed, Readiness};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus};
use k8s_openapi::api::core::v1::Container;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use litellm_impl::config::{LiteLlmReference, litellm_reference};
use litellm_impl::implementation::readiness_of;
use litellm_impl::{
    InMemoryObjects, InputObject, Problem, ProblemReason, RenderError, RenderSettings, Rendered,
    parse_documents, render,
};
use serde_json::Value;

const API: &str = "apiVersion: runtime.agentic-layer.ai/v1alpha1";
const KEYS: &str = "apiVersion: v1\nkind: Secret\nmetadata: {name: api-key-secrets, namespace: ns}\nstringData: {OPENAI_API_KEY: sk-gateway-own-key}\n";

fn try_render(yaml: &str) -> Result<Rendered, RenderError> {
    let objects = parse_documents(yaml, "test").unwrap();
    let mut lookup = InMemoryObjects::new();
    lookup.extend(&objects);
    let gateway: AiGateway = objects
        .into_iter()
        .find_map(|o| match o {
            InputObject::AiGateway(g) => Some(g),
            _ => None,
        })
        .expect("a gateway in the input");
    render(&gateway, &lookup, &RenderSettings::default())
}

fn gateway_named(name: &str, spec: &str) -> String {
    format!("{API}\nkind: AiGateway\nmetadata:\n  name: '{name}'\n  namespace: ns\nspec:\n{spec}")
}

fn gateway(spec: &str) -> String {
    gateway_named("gw", spec)
}

fn config(r: &Rendered) -> Value {
    serde_saphyr::from_str(&r.config_yaml).unwrap()
}

fn container(r: &Rendered) -> &Container {
    &r.deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
}

fn env_names(r: &Rendered) -> Vec<String> {
    container(r)
        .env
        .iter()
        .flatten()
        .map(|e| e.name.clone())
        .collect()
}

fn problem_about<'a>(r: &'a Rendered, object: &str) -> Option<&'a Problem> {
    r.problems.iter().find(|p| p.object.to_string() == object)
}

/// Every string value of the config that LiteLLM would resolve.
fn references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) if litellm_reference(s).is_some() => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        Value::Object(map) => map.values().for_each(|v| references(v, out)),
        _ => {}
    }
}

// ------------------------------------------------------------ 1: LiteLLM references

#[test]
fn the_reference_forms_litellm_resolves_are_recognised() {
    for (value, form) in [
        ("os.environ/OPENAI_API_KEY", LiteLlmReference::Environ),
        (" OS.ENVIRON/X", LiteLlmReference::Environ),
        ("oidc/env/OPENAI_API_KEY", LiteLlmReference::Oidc),
        ("oidc/file//var/run/secrets/token", LiteLlmReference::Oidc),
        ("hashicorp_vault/x", LiteLlmReference::SecretManager),
        ("aws_secret_manager/x", LiteLlmReference::SecretManager),
        ("google_secret_manager/x", LiteLlmReference::SecretManager),
    ] {
        assert_eq!(litellm_reference(value), Some(form), "{value}");
    }
    for text in ["en", "gpt-4o", "os.environ", "x/os.environ/Y", "ünï", ""] {
        assert_eq!(litellm_reference(text), None, "{text}");
    }
}

#[test]
fn guard_and_provider_strings_litellm_would_resolve_are_refused_naming_object_and_field() {
    // Someone else's Guard and provider, listed by the gateway: the Guard's language would
    // make LiteLLM send the gateway's own key (resolved from its environment) to their
    // Presidio.
    let r = try_render(&format!(
        "{KEYS}---\n\
         {API}\nkind: GuardrailProvider\nmetadata: {{name: presidio, namespace: theirs}}\nspec: {{type: presidio-api, presidio: {{baseUrl: 'http://collector.theirs'}}}}\n---\n\
         {API}\nkind: Guard\nmetadata: {{name: pii, namespace: theirs}}\nspec: {{mode: [pre_call], providerRef: {{name: presidio}}, presidio: {{language: os.environ/OPENAI_API_KEY}}}}\n---\n\
         {API}\nkind: GuardrailProvider\nmetadata: {{name: url, namespace: ns}}\nspec: {{type: presidio-api, presidio: {{baseUrl: oidc/env/OPENAI_API_KEY}}}}\n---\n\
         {API}\nkind: Guard\nmetadata: {{name: via-url, namespace: ns}}\nspec: {{mode: [pre_call], providerRef: {{name: url}}}}\n---\n{}",
        gateway(
            "  aiModels: [{provider: openai, name: gpt-4o}]\n  guardrails: [{name: pii, namespace: theirs}, {name: via-url}]\n"
        )
    ))
    .unwrap();
    let guard = problem_about(&r, "Guard theirs/pii").expect("the Guard is reported");
    assert_eq!(guard.reason, ProblemReason::InvalidRef);
    assert!(
        guard
            .message
            .contains("spec.presidio.language starts with os.environ/"),
        "{guard}"
    );
    let provider = problem_about(&r, "GuardrailProvider ns/url").expect("the provider is reported");
    assert!(
        provider
            .message
            .contains("spec.presidio.baseUrl starts with oidc/"),
        "{provider}"
    );
    assert!(config(&r).get("guardrails").is_none(), "{}", r.config_yaml);
    let mut found = Vec::new();
    references(&config(&r), &mut found);
    assert_eq!(
        found,
        ["os.environ/OPENAI_API_KEY"],
        "only our own reference"
    );
}

#[test]
fn models_whose_strings_litellm_would_resolve_are_not_served() {
    let r = try_render(&gateway(
        "  aiModels:\n  - {provider: openai, name: os.environ/OPENAI_API_KEY}\n  - {provider: os.environ, name: OPENAI_API_KEY}\n  - {provider: oidc, name: env/X}\n  - {provider: openai, name: gpt-4o}\n",
    ))
    .unwrap();
    let refused: Vec<&str> = r
        .problems
        .iter()
        .filter(|p| p.reason == ProblemReason::InvalidSpec)
        .map(|p| p.message.as_str())
        .collect();
    assert_eq!(refused.len(), 3, "{refused:#?}");
    assert!(refused[0].starts_with("spec.aiModels[0] name starts with os.environ/"));
    assert!(refused[1].starts_with("spec.aiModels[1] provider"));
    assert!(refused[2].starts_with("spec.aiModels[2] provider/name starts with oidc/"));
    let models = config(&r)["model_list"].as_array().unwrap().clone();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0]["model_name"], "gpt-4o");
}

#[test]
fn a_moderation_provider_in_another_namespace_never_gets_the_gateways_key() {
    let r = try_render(&format!(
        "{KEYS}---\n\
         {API}\nkind: GuardrailProvider\nmetadata: {{name: moderation, namespace: theirs}}\nspec: {{type: openai-moderation-api, openaiModeration: {{baseUrl: 'http://collector.theirs/v1'}}}}\n---\n\
         {API}\nkind: Guard\nmetadata: {{name: moderation, namespace: ns}}\nspec: {{mode: [pre_call], providerRef: {{name: moderation, namespace: theirs}}}}\n---\n{}",
        gateway(
            "  aiModels: [{provider: openai, name: gpt-4o}]\n  guardrails: [{name: moderation}]\n"
        )
    ))
    .unwrap();
    let problem =
        problem_about(&r, "GuardrailProvider theirs/moderation").expect("the provider is reported");
    assert_eq!(problem.reason, ProblemReason::InvalidRef);
    assert!(
        problem.message.contains("not the gateway's (ns)"),
        "{problem}"
    );
    assert!(config(&r).get("guardrails").is_none(), "{}", r.config_yaml);
    assert!(!r.config_yaml.contains("collector.theirs"));
}

#[test]
fn a_bedrock_provider_in_another_namespace_cannot_use_the_gateways_credentials() {
    let r = try_render(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: aws, namespace: ns}}\nstringData: {{aws-access-key-id: AKIA-gateway, aws-secret-access-key: gateway-secret}}\n---\n\
         {API}\nkind: GuardrailProvider\nmetadata: {{name: bedrock, namespace: theirs}}\nspec: {{type: bedrock-api, bedrock: {{region: us-east-1, credentialsSecretRef: {{name: aws, namespace: ns}}}}}}\n---\n\
         {API}\nkind: Guard\nmetadata: {{name: bedrock, namespace: ns}}\nspec: {{mode: [pre_call], providerRef: {{name: bedrock, namespace: theirs}}, bedrock: {{guardrailId: g}}}}\n---\n{}",
        gateway("  aiModels: [{provider: openai, name: gpt-4o}]\n  guardrails: [{name: bedrock}]\n")
    ))
    .unwrap();
    assert!(problem_about(&r, "GuardrailProvider theirs/bedrock").is_some());
    assert!(!env_names(&r).iter().any(|n| n.starts_with("GUARDRAIL_")));
}

#[test]
fn a_bedrock_region_that_is_not_an_aws_region_is_refused() {
    let r = try_render(&format!(
        "{API}\nkind: GuardrailProvider\nmetadata: {{name: bedrock, namespace: ns}}\nspec: {{type: bedrock-api, bedrock: {{region: 'collector.example/x?'}}}}\n---\n\
         {API}\nkind: Guard\nmetadata: {{name: bedrock, namespace: ns}}\nspec: {{mode: [pre_call], providerRef: {{name: bedrock}}, bedrock: {{guardrailId: g}}}}\n---\n{}",
        gateway("  aiModels: [{provider: openai, name: gpt-4o}]\n  guardrails: [{name: bedrock}]\n")
    ))
    .unwrap();
    let problem = problem_about(&r, "GuardrailProvider ns/bedrock").unwrap();
    assert!(problem.message.contains("not an AWS region"), "{problem}");
    for region in ["us-east-1", "us-gov-west-1", "ap-southeast-5"] {
        assert!(litellm_impl::guardrails::is_aws_region(region), "{region}");
    }
    for region in ["r", "us-east", "US-EAST-1", "us-east-1.evil", "us-east-1/x"] {
        assert!(!litellm_impl::guardrails::is_aws_region(region), "{region}");
    }
}

// ------------------------------------------------------------------- 2: names

#[test]
fn gateways_whose_children_cannot_be_named_are_refused_before_anything_is_applied() {
    let long = "g".repeat(70);
    for name in ["a.b", "1gw", long.as_str(), "Gw", "gw-"] {
        let err = try_render(&gateway_named(
            name,
            "  aiModels: [{provider: openai, name: gpt-4o}]\n",
        ))
        .unwrap_err();
        assert!(
            matches!(&err, RenderError::InvalidName { field, .. } if field.starts_with("metadata.name")),
            "{name}: {err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("DNS-1035 label") && text.contains("nothing is applied"),
            "{text}"
        );
    }
    // 63 characters is the longest name a Service can have.
    let longest = "g".repeat(63);
    let r = try_render(&gateway_named(
        &longest,
        "  aiModels: [{provider: openai, name: gpt-4o}]\n",
    ))
    .unwrap();
    assert_eq!(r.service.metadata.name.as_deref(), Some(longest.as_str()));
}

#[test]
fn invalid_labels_annotations_and_env_names_are_refused() {
    let model = "  aiModels: [{provider: openai, name: gpt-4o}]\n";
    let long_value = "v".repeat(64);
    for (spec, field) in [
        (
            format!("{model}  commonMetadata: {{labels: {{team: '{long_value}'}}}}\n"),
            "spec.commonMetadata.labels[team]",
        ),
        (
            format!("{model}  podMetadata: {{labels: {{'bad key!': x}}}}\n"),
            "spec.podMetadata.labels key",
        ),
        (
            format!("{model}  podMetadata: {{annotations: {{'/x': v}}}}\n"),
            "spec.podMetadata.annotations key",
        ),
        (
            format!("{model}  env: [{{name: 'A=B', value: x}}]\n"),
            "spec.env[0].name",
        ),
        (
            format!(
                "{model}  env: [{{name: X, valueFrom: {{secretKeyRef: {{name: Not_Valid, key: k}}}}}}]\n"
            ),
            "spec.env[0].valueFrom.secretKeyRef.name",
        ),
        (
            format!("{model}  envFrom: [{{configMapRef: {{name: 'a b'}}}}]\n"),
            "spec.envFrom[0].configMapRef.name",
        ),
    ] {
        let err = try_render(&gateway(&spec)).unwrap_err();
        assert!(
            matches!(&err, RenderError::InvalidName { field: f, .. } if f == field),
            "{field}: {err}"
        );
    }
    let err = try_render(&gateway(&format!(
        "{model}  env: [{{name: X, value: a}}, {{name: Z, value: b}}, {{name: X, value: c}}]\n"
    )))
    .unwrap_err();
    assert_eq!(
        err,
        RenderError::DuplicateEnv {
            kind: litellm_impl::GatewayKind::AiGateway,
            gateway: "ns/gw".into(),
            name: "X".into(),
            first: 0,
            second: 2
        }
    );
}

#[test]
fn generated_label_values_are_shortened_with_a_hash() {
    use litellm_impl::names::{check_label_value, label_value};
    assert_eq!(label_value("gw"), "gw");
    let long = "a".repeat(80);
    let short = label_value(&long);
    assert!(
        short.len() <= 63 && check_label_value(&short).is_ok(),
        "{short}"
    );
    assert_ne!(
        short,
        label_value(&format!("{long}b")),
        "distinct inputs stay distinct"
    );
    let odd = label_value("a.b/c: d");
    assert!(check_label_value(&odd).is_ok(), "{odd}");
}

#[test]
fn provider_spellings_and_guard_credentials_never_repeat_an_env_name() {
    let r = try_render(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: api-key-secrets, namespace: ns}}\nstringData: {{OPENAI_API_KEY: a, GUARDRAIL_MOD_API_KEY: b}}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {{name: moderation, namespace: ns}}\nstringData: {{key: c}}\n---\n\
         {API}\nkind: GuardrailProvider\nmetadata: {{name: m, namespace: ns}}\nspec: {{type: openai-moderation-api, openaiModeration: {{apiKeySecretRef: {{name: moderation, key: key}}}}}}\n---\n\
         {API}\nkind: Guard\nmetadata: {{name: mod, namespace: ns}}\nspec: {{mode: [pre_call], providerRef: {{name: m}}}}\n---\n{}",
        gateway(
            "  aiModels:\n  - {provider: openai, name: a}\n  - {provider: OpenAI, name: b}\n  - {provider: guardrail_mod, name: c}\n  guardrails: [{name: mod}]\n"
        )
    ))
    .unwrap();
    let names = env_names(&r);
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "{names:#?}");
    assert_eq!(
        names.iter().filter(|n| *n == "OPENAI_API_KEY").count(),
        1,
        "openai and OpenAI share one key"
    );
    // The provider guardrail_mod keeps its variable; the Guard's credential moves aside.
    assert!(names.contains(&"GUARDRAIL_MOD_API_KEY".to_owned()));
    let guard = &config(&r)["guardrails"][0]["litellm_params"];
    assert_eq!(guard["api_key"], "os.environ/GUARDRAIL_MOD_2_API_KEY");
    assert!(names.contains(&"GUARDRAIL_MOD_2_API_KEY".to_owned()));
}

// ------------------------------------------------------------------ 4: Bedrock

fn bedrock(secret_data: &str) -> Result<Rendered, RenderError> {
    try_render(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: aws, namespace: ns}}\nstringData: {secret_data}\n---\n\
         {API}\nkind: GuardrailProvider\nmetadata: {{name: bedrock, namespace: ns}}\nspec: {{type: bedrock-api, bedrock: {{region: eu-central-1, credentialsSecretRef: {{name: aws}}}}}}\n---\n\
         {API}\nkind: Guard\nmetadata: {{name: bedrock, namespace: ns}}\nspec: {{mode: [pre_call], providerRef: {{name: bedrock}}, bedrock: {{guardrailId: g}}}}\n---\n{}",
        gateway(
            "  aiModels: [{provider: openai, name: gpt-4o}]\n  guardrails: [{name: bedrock}]\n"
        )
    ))
}

fn secret_keys_read(r: &Rendered) -> Vec<(String, String)> {
    container(r)
        .env
        .iter()
        .flatten()
        .filter_map(|e| {
            let selector = e.value_from.as_ref()?.secret_key_ref.as_ref()?;
            (selector.name == "aws").then(|| (e.name.clone(), selector.key.clone()))
        })
        .collect()
}

#[test]
fn bedrock_reads_the_key_names_upstream_documents_and_the_env_style_ones() {
    let upstream =
        bedrock("{aws-access-key-id: AKIA-x, aws-secret-access-key: s, aws-session-token: t}")
            .unwrap();
    assert!(
        problem_about(&upstream, "Secret ns/aws").is_none(),
        "{:#?}",
        upstream.problems
    );
    assert_eq!(
        secret_keys_read(&upstream),
        [
            (
                "GUARDRAIL_BEDROCK_AWS_ACCESS_KEY_ID".to_owned(),
                "aws-access-key-id".to_owned()
            ),
            (
                "GUARDRAIL_BEDROCK_AWS_SECRET_ACCESS_KEY".to_owned(),
                "aws-secret-access-key".to_owned()
            ),
            (
                "GUARDRAIL_BEDROCK_AWS_SESSION_TOKEN".to_owned(),
                "aws-session-token".to_owned()
            ),
        ]
    );
    let env_style = bedrock("{AWS_ACCESS_KEY_ID: AKIA-x, AWS_SECRET_ACCESS_KEY: s}").unwrap();
    assert_eq!(
        secret_keys_read(&env_style)
            .into_iter()
            .map(|(_, key)| key)
            .collect::<Vec<_>>(),
        ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
    );
    let missing = bedrock("{aws-access-key-id: AKIA-x}").unwrap();
    let problem = problem_about(&missing, "Secret ns/aws").unwrap();
    assert!(
        problem
            .message
            .contains("has no key aws-secret-access-key (or AWS_SECRET_ACCESS_KEY)"),
        "{problem}"
    );
}

#[test]
fn the_bedrock_crd_keeps_upstreams_description() {
    let crd = aigateway_api::crds::all()
        .into_iter()
        .find(|c| c.metadata.name.as_deref() == Some("guardrailproviders.runtime.agentic-layer.ai"))
        .unwrap();
    let text = serde_json::to_string(&crd).unwrap();
    assert!(
        text.contains(
            r#"The secret should contain \"aws-access-key-id\" and \"aws-secret-access-key\" keys."#
        ),
        "{text}"
    );
}

// ---------------------------------------------------------- 5: restricted pods

#[test]
fn pods_pass_pod_security_restricted_and_listen_on_an_unprivileged_port() {
    let r = try_render(&gateway("  aiModels: [{provider: openai, name: gpt-4o}]\n")).unwrap();
    let pod = r
        .deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap();
    assert_eq!(pod.automount_service_account_token, Some(false));
    let pod_sc = pod.security_context.as_ref().unwrap();
    assert_eq!(pod_sc.run_as_non_root, Some(true));
    assert!(
        pod_sc.run_as_user.is_some_and(|u| u > 0),
        "a numeric non-root user"
    );
    assert_eq!(
        pod_sc.seccomp_profile.as_ref().unwrap().type_,
        "RuntimeDefault"
    );
    let c = container(&r);
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.privileged, None);
    let capabilities = sc.capabilities.as_ref().unwrap();
    assert_eq!(capabilities.drop.as_deref(), Some(&["ALL".to_owned()][..]));
    assert_eq!(capabilities.add, None, "no NET_BIND_SERVICE");
    assert_eq!(
        c.image.as_deref(),
        Some(litellm_impl::settings::DEFAULT_IMAGE),
        "the non-root image of the pinned release"
    );
    assert!(
        litellm_impl::settings::DEFAULT_IMAGE.contains("/litellm-non_root:"),
        "{:?}",
        c.image
    );
    // Everything LiteLLM writes is an emptyDir.
    let writable: Vec<&str> = c
        .volume_mounts
        .iter()
        .flatten()
        .filter(|m| m.read_only != Some(true))
        .map(|m| m.mount_path.as_str())
        .collect();
    assert_eq!(writable, ["/prometheus_multiproc", "/tmp"]);
    // The Service keeps spec.port (80 by default) and forwards to the container's 4000.
    assert_eq!(c.ports.as_ref().unwrap()[0].container_port, 4000);
    assert!(
        c.command
            .as_ref()
            .unwrap()
            .ends_with(&["--port".to_owned(), "4000".to_owned()])
    );
    let port = &r.service.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
    assert_eq!(port.port, 80);
    assert_eq!(port.target_port, Some(IntOrString::String("http".into())));
}

#[test]
fn security_settings_can_be_replaced_by_the_operator() {
    let objects = parse_documents(
        &gateway("  aiModels: [{provider: openai, name: gpt-4o}]\n"),
        "t",
    )
    .unwrap();
    let Some(InputObject::AiGateway(gw)) = objects.into_iter().next() else {
        panic!("a gateway")
    };
    let mut settings = RenderSettings {
        image: "ghcr.io/berriai/litellm:v1.108.7".into(),
        ..Default::default()
    };
    settings.security.container.read_only_root_filesystem = Some(false);
    settings.security.pod.run_as_user = None;
    let r = render(&gw, &InMemoryObjects::new(), &settings).unwrap();
    let pod = r
        .deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap();
    assert_eq!(pod.security_context.as_ref().unwrap().run_as_user, None);
    let c = container(&r);
    assert_eq!(c.image.as_deref(), Some("ghcr.io/berriai/litellm:v1.108.7"));
    assert_eq!(
        c.security_context
            .as_ref()
            .unwrap()
            .read_only_root_filesystem,
        Some(false)
    );
}

fn observed(conditions: Vec<DeploymentCondition>) -> Observed {
    let deployment = Deployment {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("gw".into()),
            namespace: Some("ns".into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: Some(Default::default()),
        status: Some(DeploymentStatus {
            observed_generation: Some(1),
            conditions: Some(conditions),
            ..Default::default()
        }),
    };
    Observed {
        children: vec![Arc::new(to_dynamic(&deployment))],
    }
}

#[test]
fn readiness_reports_replica_failure_instead_of_rolling_out() {
    let refused = observed(vec![DeploymentCondition {
        type_: "ReplicaFailure".into(),
        status: "True".into(),
        reason: Some("FailedCreate".into()),
        message: Some(
            "pods \"gw-1\" is forbidden: violates PodSecurity \"restricted:latest\": runAsNonRoot != true".into(),
        ),
        ..Default::default()
    }]);
    match readiness_of(&refused) {
        Readiness::Failed { reason, message } => {
            assert_eq!(reason, "ReplicaFailure");
            assert!(
                message.contains("FailedCreate") && message.contains("violates PodSecurity"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Without the condition it is the ordinary rollout state.
    match readiness_of(&observed(vec![])) {
        Readiness::Progressing { reason, .. } => assert_eq!(reason, "RollingOut"),
        other => panic!("{other:?}"),
    }
}
