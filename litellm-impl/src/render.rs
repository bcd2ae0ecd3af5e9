//! One gateway in, its LiteLLM config and Kubernetes objects out (pure).
//!
//! [`render()`] renders AiGateways; the ToolGateway renderer
//! ([`crate::tool_gateway`]) shares every step that does not depend on what the proxy
//! serves: [`prepare`] (names, annotations, the user's env, literal credentials),
//! [`Prepared::add_guardrails`] and [`finish`] (config patch, authentication, env, the
//! offline check, hashes and the workload objects).

use std::collections::{BTreeMap, BTreeSet};

use aigateway_api::{AiGateway, EmbeddedMetadata};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{
    ConfigMap, EnvFromSource, EnvVar, ObjectReference, Secret, Service,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config;
use crate::guardrails::{self, GuardedTraffic, secret_env};
use crate::known_keys;
use crate::lookup::ObjectLookup;
use crate::names;
use crate::problem::{ObjectRef, Problem, ProblemReason};
use crate::settings::{LITELLM_VERSION, RenderSettings};
use crate::workload::{self, WorkloadInput};
use crate::{GatewayKind, RenderError};

mod policies;

use policies::{AvailabilityPolicies, ModelPolicies, ObservabilityPolicies, RoutingPolicies};
pub use policies::{GatewayPolicies, LiteLlmPolicyKind, PolicyOutcome, PolicyVerdict};

/// Everything rendered for one gateway.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    /// The LiteLLM `config.yaml` (also in the ConfigMap).
    pub config_yaml: String,
    /// ConfigMap `<gw>-config`.
    pub config_map: ConfigMap,
    /// Deployment `<gw>`.
    pub deployment: Deployment,
    /// Service `<gw>`.
    pub service: Service,
    /// PodDisruptionBudget `<gw>`, when an availability policy asks for one.
    pub disruption_budget: Option<PodDisruptionBudget>,
    /// HorizontalPodAutoscaler `<gw>`, when an availability policy asks for one.
    pub autoscaler: Option<HorizontalPodAutoscaler>,
    /// prometheus-operator ServiceMonitor or PodMonitor `<gw>` (`monitoring.coreos.com/v1`),
    /// when an observability policy asks for one; applied only where its CRD is
    /// installed.
    pub monitor: Option<Monitor>,
    /// What was skipped or looks wrong; the proxy still deploys for what works.
    pub problems: Vec<Problem>,
    /// What became of each policy in effect on the gateway, in the order given.
    pub policies: Vec<PolicyOutcome>,
}

/// A prometheus-operator monitor of the gateway, and its kind.
#[derive(Clone, Debug, PartialEq)]
pub struct Monitor {
    /// ServiceMonitor or PodMonitor.
    pub kind: crate::policy::MonitorKind,
    /// The object, of that kind.
    pub object: kube::api::DynamicObject,
}

/// Which env var names the container gets from the user (`spec.env` and the envFrom
/// sources that could be read).
struct UserEnv {
    /// Names set in `spec.env`.
    explicit: BTreeSet<String>,
    /// Names provided by readable envFrom sources (prefix applied).
    from_sources: BTreeSet<String>,
    /// Whether every envFrom source could be read (so `from_sources` is complete).
    complete: bool,
    /// Secrets of the gateway's namespace the user's env and envFrom read.
    secrets: BTreeSet<String>,
}

impl UserEnv {
    fn provides(&self, name: &str) -> bool {
        self.explicit.contains(name) || self.from_sources.contains(name)
    }
}

/// The fields every gateway kind shares, borrowed from the gateway.
#[derive(Clone, Copy)]
pub(crate) struct GatewayParts<'a> {
    pub kind: GatewayKind,
    pub name: &'a str,
    pub namespace: &'a str,
    pub annotations: Option<&'a BTreeMap<String, String>>,
    pub env: &'a [EnvVar],
    pub env_from: &'a [EnvFromSource],
    pub guardrails: &'a [ObjectReference],
    pub common_metadata: Option<&'a EmbeddedMetadata>,
    pub pod_metadata: Option<&'a EmbeddedMetadata>,
}

/// The gateway's name and namespace, both required.
pub(crate) fn name_and_namespace(
    kind: GatewayKind,
    metadata: &ObjectMeta,
) -> Result<(&str, &str), RenderError> {
    let name = metadata
        .name
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or(RenderError::MissingName { kind })?;
    let namespace = metadata
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| RenderError::MissingNamespace {
            kind,
            name: name.escape_debug().to_string(),
        })?;
    Ok((name, namespace))
}

/// A gateway whose names, annotations and env were checked and read, with what
/// rendering generates for it so far.
pub(crate) struct Prepared<'a> {
    pub parts: GatewayParts<'a>,
    /// `namespace/name`, escaped so that messages stay one line.
    pub id: String,
    pub gateway_ref: ObjectRef,
    /// The operator's settings with the gateway's annotations applied.
    pub settings: RenderSettings,
    user_env: UserEnv,
    /// Env vars rendering generates, in container order (the user's follow).
    pub generated: Vec<EnvVar>,
    /// Env var names the container is known to get.
    pub available: BTreeSet<String>,
    /// Secrets of the gateway's namespace the container reads.
    pub secrets: BTreeSet<String>,
    pub problems: Vec<Problem>,
}

/// Checks the parts every gateway kind shares and reads the user's env.
pub(crate) fn prepare<'a>(
    parts: GatewayParts<'a>,
    settings: &RenderSettings,
    lookup: &dyn ObjectLookup,
) -> Result<Prepared<'a>, RenderError> {
    // Messages are one line even for names no API server would store.
    let id = format!(
        "{}/{}",
        parts.namespace.escape_debug(),
        parts.name.escape_debug()
    );
    let gateway_ref = ObjectRef::new(parts.kind.as_str(), parts.namespace, parts.name);
    check_names(&parts, &id)?;
    let settings = settings.with_annotations(parts.kind, &id, parts.annotations)?;
    let mut problems = Vec::new();
    for key in parts.annotations.into_iter().flat_map(|a| a.keys()) {
        if key.starts_with(names::ANNOTATION_PREFIX)
            && !names::KNOWN_ANNOTATIONS.contains(&key.as_str())
        {
            problems.push(Problem::new(
                ProblemReason::SuspiciousConfig,
                gateway_ref.clone(),
                format!("annotation {key} is not one this implementation reads (known: {}); check its spelling", names::KNOWN_ANNOTATIONS.join(", ")),
            ));
        }
    }
    let user_env = user_env(&parts, lookup, &mut problems);
    for (index, var) in parts.env.iter().enumerate() {
        let literal = var.value.as_deref().is_some_and(|v| !v.is_empty());
        if literal && looks_like_a_credential(&var.name) {
            problems.push(Problem::new(
                ProblemReason::SuspiciousConfig,
                gateway_ref.clone(),
                format!("spec.env[{index}] ({}) holds a literal value, readable by anyone who can read the {} or its Deployment: keep it in a Secret and use valueFrom.secretKeyRef", var.name, parts.kind),
            ));
        }
    }
    let available = user_env
        .explicit
        .union(&user_env.from_sources)
        .cloned()
        .collect();
    Ok(Prepared {
        secrets: user_env.secrets.clone(),
        parts,
        id,
        gateway_ref,
        settings,
        user_env,
        generated: Vec::new(),
        available,
        problems,
    })
}

impl Prepared<'_> {
    /// Renders the gateway's Guards for `traffic` and wires their credentials; returns
    /// the `guardrails` entries. `reserved` are env var names rendering uses besides the
    /// user's and the fixed ones (provider keys).
    pub fn add_guardrails(
        &mut self,
        lookup: &dyn ObjectLookup,
        reserved: &BTreeSet<String>,
        traffic: GuardedTraffic,
    ) -> Vec<Value> {
        let taken: BTreeSet<String> = self
            .user_env
            .explicit
            .iter()
            .chain(&self.user_env.from_sources)
            .chain(reserved)
            .cloned()
            .chain(FIXED_ENV.iter().map(|n| (*n).to_owned()))
            .collect();
        let mut guards = guardrails::render_guardrails(
            self.parts.guardrails,
            &self.gateway_ref,
            lookup,
            &taken,
            traffic,
        );
        self.problems.append(&mut guards.problems);
        let mut entries = Vec::new();
        for guard in guards.rendered {
            if let Some(required) = &guard.requires_env
                && !self.available.contains(required)
            {
                self.problems.push(Problem::new(
                    ProblemReason::InvalidRef,
                    guard.guard.clone(),
                    format!("its OpenAI moderation provider has no apiKeySecretRef and the container has no {required}; LiteLLM would refuse to start: set the provider's apiKeySecretRef or provide {required}; not applied"),
                ));
                continue;
            }
            for var in &guard.env {
                self.available.insert(var.name.clone());
            }
            self.generated.extend(guard.env.iter().cloned());
            self.secrets.extend(guard.secrets.iter().cloned());
            entries.push(guard.to_config());
        }
        entries
    }
}

/// Which Secrets the pod's secret-hash annotation covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SecretHashScope {
    /// `api-key-secrets` (the provider keys, as the Go operator hashes them) and every
    /// Secret the container reads ([`secret_hash`]).
    ProviderKeysAndReferenced,
    /// Only the Secrets the container reads: a gateway without models does not roll
    /// its pods when a provider key rotates.
    Referenced,
}

/// How the workload of a gateway kind differs.
#[derive(Clone)]
pub(crate) struct WorkloadShape {
    /// The Service's port.
    pub service_port: i32,
    /// What the secret-hash annotation covers.
    pub secret_hash: SecretHashScope,
    /// Files shipped next to `config.yaml` in the ConfigMap (`(key, content)`), covered
    /// by the config hash.
    pub config_files: Vec<(&'static str, &'static str)>,
    /// Values rendering copies into a child Secret the container reads (a ToolGateway's
    /// route credentials), by key: covered by the secret hash, so a changed copy rolls
    /// the pods. Empty: the hash is that of the Secrets read alone.
    pub copied_secret: BTreeMap<String, Vec<u8>>,
}

/// Finishes a gateway: checks that the generated `config` holds no string LiteLLM would
/// resolve besides `ours` and the generated env's references, merges the config patch,
/// applies `after_patch` (what the patch must not change), sets up authentication and
/// env, runs [`check_config`], and builds the objects. Returns them with the config as
/// merged.
pub(crate) fn finish(
    mut prepared: Prepared<'_>,
    lookup: &dyn ObjectLookup,
    mut config: Value,
    ours: BTreeSet<String>,
    shape: WorkloadShape,
    after_patch: &dyn Fn(&mut Value),
) -> Result<(Rendered, Value), RenderError> {
    let kind = prepared.parts.kind;
    let (name, namespace) = (prepared.parts.name, prepared.parts.namespace);
    let id = prepared.id.clone();
    let ours: BTreeSet<String> = prepared
        .generated
        .iter()
        .map(|e| format!("os.environ/{}", e.name))
        .chain(ours)
        .collect();
    if let Some(path) = config::foreign_references(&config, &ours)
        .into_iter()
        .next()
    {
        return Err(RenderError::ForeignReference {
            kind,
            gateway: id,
            path,
        });
    }
    let patch = match prepared
        .parts
        .annotations
        .and_then(|a| a.get(names::CONFIG_PATCH_ANNOTATION))
    {
        Some(patch_name) => Some(read_patch(kind, &id, namespace, patch_name, lookup)?),
        None => None,
    };
    if let Some(patch) = &patch {
        config::merge(&mut config, patch);
    }
    after_patch(&mut config);

    // Authentication.
    let user_env = &prepared.user_env;
    let master_key_in_config = config
        .pointer("/general_settings/master_key")
        .is_some_and(|v| !v.is_null());
    if !(user_env.provides(names::MASTER_KEY_ENV) || master_key_in_config) {
        prepared.problems.push(Problem::new(
            ProblemReason::Unauthenticated,
            prepared.gateway_ref.clone(),
            format!("no master key is configured, so the gateway accepts any in-cluster request (agents may send any key); to require one, set {} through spec.env or spec.envFrom from a Secret", names::MASTER_KEY_ENV),
        ));
        if !user_env.provides(names::PERMIT_UNSET_MASTER_KEY_ENV) {
            prepared
                .generated
                .push(plain_env(names::PERMIT_UNSET_MASTER_KEY_ENV, "true"));
        }
    }
    // The model price map ships with LiteLLM; downloading it at start fails (or waits for
    // retries) under a default-deny egress policy, behind a proxy or air-gapped.
    if !user_env.provides(names::LOCAL_MODEL_COST_MAP_ENV) {
        prepared
            .generated
            .push(plain_env(names::LOCAL_MODEL_COST_MAP_ENV, "True"));
    }
    if !user_env.provides(names::PROMETHEUS_MULTIPROC_ENV) {
        prepared.generated.push(plain_env(
            names::PROMETHEUS_MULTIPROC_ENV,
            names::PROMETHEUS_MOUNT_PATH,
        ));
    }

    // Env: generated first (minus those the user overrides by name), then the user's in
    // their order, so `$(VAR)` references in the user's entries resolve.
    let mut env: Vec<EnvVar> = std::mem::take(&mut prepared.generated)
        .into_iter()
        .filter(|e| !user_env.explicit.contains(&e.name))
        .collect();
    env.extend(prepared.parts.env.iter().cloned());
    debug_assert!(
        {
            let mut names = BTreeSet::new();
            env.iter().all(|e| names.insert(e.name.as_str()))
        },
        "env names are unique"
    );
    let env_names: BTreeSet<String> = env
        .iter()
        .map(|e| e.name.clone())
        .chain(user_env.from_sources.iter().cloned())
        .collect();

    let mut problems = std::mem::take(&mut prepared.problems);
    problems.extend(check_config(
        &config,
        patch.as_ref(),
        &env_names,
        user_env.complete,
        &prepared.gateway_ref,
    ));

    let config_yaml = config::to_yaml(&config).map_err(|message| RenderError::Serialize {
        kind,
        gateway: id.clone(),
        message,
    })?;
    check_config_map_size(kind, &id, &config_yaml, &shape.config_files)?;
    let config_hash = if shape.config_files.is_empty() {
        short_hash(config_yaml.as_bytes())
    } else {
        let mut hashed = config_yaml.clone().into_bytes();
        for (key, content) in &shape.config_files {
            hashed.extend_from_slice(format!("\0{key}\0{content}").as_bytes());
        }
        short_hash(&hashed)
    };
    let secret_hash = match shape.secret_hash {
        SecretHashScope::ProviderKeysAndReferenced => {
            secret_hash(namespace, lookup, &prepared.secrets)
        }
        SecretHashScope::Referenced if shape.copied_secret.is_empty() => {
            referenced_secrets_hash(namespace, lookup, &prepared.secrets)
        }
        SecretHashScope::Referenced => {
            let mut hasher = Sha256::new();
            hash_secrets(&mut hasher, namespace, lookup, prepared.secrets.iter());
            hasher.update(b"\0copied\0");
            hash_pairs(&mut hasher, &shape.copied_secret);
            hex16(&hasher.finalize())
        }
    };
    let input = WorkloadInput {
        name,
        namespace,
        port: shape.service_port,
        config_yaml: &config_yaml,
        config_hash: &config_hash,
        secret_hash: &secret_hash,
        env,
        env_from: prepared.parts.env_from.to_vec(),
        common_metadata: prepared.parts.common_metadata,
        pod_metadata: prepared.parts.pod_metadata,
        config_files: &shape.config_files,
        settings: &prepared.settings,
    };
    let rendered = Rendered {
        config_map: workload::config_map(&input),
        deployment: workload::deployment(&input),
        service: workload::service(&input),
        disruption_budget: None,
        autoscaler: None,
        monitor: None,
        config_yaml,
        problems,
        policies: Vec::new(),
    };
    Ok((rendered, config))
}

/// The API server's limit on a ConfigMap's data: the keys and values of `data` and
/// `binaryData` together (1 MiB).
pub const MAX_CONFIG_MAP_DATA_BYTES: usize = 1024 * 1024;

/// Refuses a config whose ConfigMap (one key, [`names::CONFIG_KEY`]) the API server would
/// refuse.
fn check_config_map_size(
    kind: GatewayKind,
    id: &str,
    config_yaml: &str,
    config_files: &[(&str, &str)],
) -> Result<(), RenderError> {
    // Every key and value of the ConfigMap counts towards the API server's limit: the
    // config and the files shipped beside it (the tool-filter guardrail).
    let bytes = names::CONFIG_KEY.len()
        + config_yaml.len()
        + config_files
            .iter()
            .map(|(key, content)| key.len() + content.len())
            .sum::<usize>();
    if bytes <= MAX_CONFIG_MAP_DATA_BYTES {
        return Ok(());
    }
    Err(RenderError::ConfigTooLarge {
        kind,
        gateway: id.to_owned(),
        bytes,
        limit: MAX_CONFIG_MAP_DATA_BYTES,
        hint: match kind {
            GatewayKind::AiGateway => {
                "list fewer models per gateway (split them over several AiGateways) or shorten what the config patch adds"
            }
            GatewayKind::ToolGateway => {
                "even without any route it does not fit: shorten what the config patch adds"
            }
        },
    })
}

/// Renders `gateway` into its LiteLLM config, ConfigMap, Deployment and Service.
///
/// Reads referenced Guards, GuardrailProviders, Secrets and ConfigMaps through `lookup`;
/// never writes anything. Returns an error only when nothing sensible can be deployed
/// (see [`RenderError`]); everything else that is wrong is in [`Rendered::problems`].
pub fn render(
    gateway: &AiGateway,
    lookup: &dyn ObjectLookup,
    settings: &RenderSettings,
) -> Result<Rendered, RenderError> {
    render_with_policies(gateway, GatewayPolicies::default(), lookup, settings)
}

/// [`render`] with the policies in effect on the gateway (oldest first, at most one per
/// target, as the runtime offers them): each valid
/// [`LiteLlmModelPolicy`](crate::policy::LiteLlmModelPolicy) sets its models' endpoint,
/// key, timeout and limits (a policy on a model replaces a gateway-wide one for that
/// model); the first valid
/// [`LiteLlmRoutingPolicy`](crate::policy::LiteLlmRoutingPolicy) sets fallbacks, retries,
/// cooldown and shared limits. An invalid policy is left out and reported in
/// [`Rendered::policies`], never failing the gateway. The config patch annotation is
/// merged after, so it wins where both set a key.
pub fn render_with_policies(
    gateway: &AiGateway,
    policies: GatewayPolicies<'_>,
    lookup: &dyn ObjectLookup,
    settings: &RenderSettings,
) -> Result<Rendered, RenderError> {
    let kind = GatewayKind::AiGateway;
    let (name, namespace) = name_and_namespace(kind, &gateway.metadata)?;
    let parts = GatewayParts {
        kind,
        name,
        namespace,
        annotations: gateway.metadata.annotations.as_ref(),
        env: &gateway.spec.env,
        env_from: &gateway.spec.env_from,
        guardrails: &gateway.spec.guardrails,
        common_metadata: gateway.spec.common_metadata.as_ref(),
        pod_metadata: gateway.spec.pod_metadata.as_ref(),
    };
    let mut prepared = prepare(parts, settings, lookup)?;
    let id = prepared.id.clone();
    let port = gateway.spec.port();
    if !(1..=65535).contains(&port) {
        return Err(RenderError::InvalidPort { gateway: id, port });
    }
    if gateway.spec.ai_models.is_empty() {
        return Err(RenderError::NoModels { gateway: id });
    }
    if let Some(index) = gateway
        .spec
        .ai_models
        .iter()
        .position(|m| m.name.is_empty())
    {
        return Err(RenderError::EmptyModelName { gateway: id, index });
    }
    let gateway_ref = prepared.gateway_ref.clone();
    let mut model_policies = ModelPolicies::of(policies.models, gateway);
    let mut routing = RoutingPolicies::of(policies.routing, gateway);
    let mut observability = ObservabilityPolicies::of(policies.observability, gateway);
    let mut availability = AvailabilityPolicies::of(policies.availability, gateway);

    // Models and their provider keys.
    let mut model_list = Vec::new();
    let mut providers: Vec<&str> = Vec::new();
    for (index, model) in gateway.spec.ai_models.iter().enumerate() {
        if model.provider.trim().is_empty() {
            prepared.problems.push(Problem::new(
                ProblemReason::InvalidSpec,
                gateway_ref.clone(),
                format!("spec.aiModels[{index}] ({}) has an empty provider: set one such as openai or anthropic; the model is not served", model.name),
            ));
            continue;
        }
        let model_string = config::model_string(model);
        let refused = [
            ("name", model.name.as_str()),
            ("provider", model.provider.as_str()),
            ("provider/name", model_string.as_str()),
        ]
        .into_iter()
        .find_map(|(field, value)| config::refuse_reference(value).map(|why| (field, why)));
        if let Some((field, why)) = refused {
            prepared.problems.push(Problem::new(
                ProblemReason::InvalidSpec,
                gateway_ref.clone(),
                format!("spec.aiModels[{index}] {field} {why}: name the model as its provider does; the model is not served"),
            ));
            continue;
        }
        let mut entry = config::model_entry(model);
        let own_key = model_policies.apply(&model.name, &mut entry, &mut prepared, lookup);
        model_list.push(entry);
        // A model with its own key from a policy needs no provider key: asking for one
        // would report a missing reference that nothing uses.
        if !own_key && !providers.contains(&model.provider.as_str()) {
            providers.push(&model.provider);
        }
    }
    let api_key_secret = lookup.secret(namespace, names::API_KEY_SECRET);
    let mut provider_vars = BTreeSet::new();
    for provider in providers {
        let var = names::provider_api_key_env(provider);
        // Providers spelt differently (`openai`, `OpenAI`) share one variable and key.
        if prepared.user_env.provides(&var) || !provider_vars.insert(var.clone()) {
            continue;
        }
        if !is_secret_key(&var) {
            prepared.problems.push(Problem::new(
                ProblemReason::InvalidSpec,
                gateway_ref.clone(),
                format!("provider {provider:?} gives the key name {var:?}, which cannot be a Secret key (letters, digits, '-', '_', '.'): its models get no API key from {}; set {var} through spec.env if the provider needs one", names::API_KEY_SECRET),
            ));
            continue;
        }
        prepared
            .generated
            .push(secret_env(&var, names::API_KEY_SECRET, &var, true));
        match &api_key_secret {
            Some(secret) if secret_has(secret, &var) => {
                prepared.available.insert(var);
            }
            found => prepared.problems.push(Problem::new(
                ProblemReason::RefNotFound,
                ObjectRef::new("Secret", namespace, names::API_KEY_SECRET),
                format!(
                    "{}: the models of provider {provider} get no API key and their requests will fail authentication; add key {var} to Secret {namespace}/{} or set {var} through spec.env or spec.envFrom",
                    if found.is_some() { format!("has no key {var}") } else { "not found".to_owned() },
                    names::API_KEY_SECRET
                ),
            )),
        }
    }

    // Guardrails and their credentials.
    let guardrail_entries =
        prepared.add_guardrails(lookup, &provider_vars, GuardedTraffic::ModelCalls);

    let mut config = config::base_config(model_list, guardrail_entries);
    routing.apply(&mut config, &mut prepared, lookup);
    policies::enforce_limits(&mut config);
    observability.apply(&mut config, &mut prepared, lookup);
    availability.apply_to_settings(&mut prepared);
    let replicas = prepared.settings.replicas;
    let ours = gateway
        .spec
        .ai_models
        .iter()
        .map(|m| format!("os.environ/{}", names::provider_api_key_env(&m.provider)))
        .collect();
    let shape = WorkloadShape {
        service_port: port,
        secret_hash: SecretHashScope::ProviderKeysAndReferenced,
        config_files: Vec::new(),
        copied_secret: BTreeMap::new(),
    };
    let (mut rendered, config) = finish(prepared, lookup, config, ours, shape, &|_| {})?;
    availability.apply_to_workload(&mut rendered);
    observability.add_monitor(&mut rendered);
    rendered
        .problems
        .extend(policies::per_replica_limits(&config, replicas, gateway_ref));
    rendered.policies = model_policies.into_outcomes();
    rendered.policies.extend(routing.into_outcomes());
    rendered.policies.extend(observability.into_outcomes());
    rendered.policies.extend(availability.into_outcomes());
    Ok(rendered)
}

/// Env var names rendering may set itself besides provider keys and guard credentials.
const FIXED_ENV: [&str; 4] = [
    names::LOCAL_MODEL_COST_MAP_ENV,
    names::PERMIT_UNSET_MASTER_KEY_ENV,
    names::PROMETHEUS_MULTIPROC_ENV,
    names::MASTER_KEY_ENV,
];

/// Checks everything of the gateway that becomes a Kubernetes name, label, annotation
/// key or env var name, so the API server never refuses one child after another was
/// applied.
fn check_names(parts: &GatewayParts<'_>, id: &str) -> Result<(), RenderError> {
    let (name, namespace) = (parts.name, parts.namespace);
    let invalid = |field: &str, value: &str, rule: String| RenderError::InvalidName {
        kind: parts.kind,
        gateway: id.to_owned(),
        field: field.to_owned(),
        value: value.to_owned(),
        rule,
    };
    names::check_dns1035_label(name).map_err(|rule| {
        invalid(
            "metadata.name (also the name of its Service and Deployment)",
            name,
            format!("{rule}; recreate the gateway under such a name"),
        )
    })?;
    names::check_dns1123_label(namespace)
        .map_err(|rule| invalid("metadata.namespace", namespace, rule))?;
    for (field, metadata) in [
        ("spec.commonMetadata", parts.common_metadata),
        ("spec.podMetadata", parts.pod_metadata),
    ] {
        let Some(metadata) = metadata else { continue };
        for (key, value) in metadata.labels.iter().flatten() {
            names::check_qualified_name(key)
                .map_err(|rule| invalid(&format!("{field}.labels key"), key, rule))?;
            names::check_label_value(value)
                .map_err(|rule| invalid(&format!("{field}.labels[{key}]"), value, rule))?;
        }
        for key in metadata.annotations.iter().flatten().map(|(k, _)| k) {
            names::check_qualified_name(key)
                .map_err(|rule| invalid(&format!("{field}.annotations key"), key, rule))?;
        }
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, var) in parts.env.iter().enumerate() {
        names::check_env_name(&var.name)
            .map_err(|rule| invalid(&format!("spec.env[{index}].name"), &var.name, rule))?;
        if let Some(first) = seen.insert(&var.name, index) {
            return Err(RenderError::DuplicateEnv {
                kind: parts.kind,
                gateway: id.to_owned(),
                name: var.name.clone(),
                first,
                second: index,
            });
        }
        let source = var.value_from.as_ref();
        let refs = [
            source
                .and_then(|s| s.secret_key_ref.as_ref())
                .map(|r| ("secretKeyRef", &r.name, &r.key)),
            source
                .and_then(|s| s.config_map_key_ref.as_ref())
                .map(|r| ("configMapKeyRef", &r.name, &r.key)),
        ];
        for (kind, ref_name, key) in refs.into_iter().flatten() {
            let field = format!("spec.env[{index}].valueFrom.{kind}");
            names::check_dns1123_subdomain(ref_name)
                .map_err(|rule| invalid(&format!("{field}.name"), ref_name, rule))?;
            names::check_data_key(key)
                .map_err(|rule| invalid(&format!("{field}.key"), key, rule))?;
        }
    }
    for (index, source) in parts.env_from.iter().enumerate() {
        let refs = [
            source.secret_ref.as_ref().map(|r| ("secretRef", &r.name)),
            source
                .config_map_ref
                .as_ref()
                .map(|r| ("configMapRef", &r.name)),
        ];
        for (kind, ref_name) in refs.into_iter().flatten() {
            names::check_dns1123_subdomain(ref_name).map_err(|rule| {
                invalid(
                    &format!("spec.envFrom[{index}].{kind}.name"),
                    ref_name,
                    rule,
                )
            })?;
        }
        if let Some(prefix) = source.prefix.as_deref().filter(|p| !p.is_empty()) {
            names::check_env_name(prefix)
                .map_err(|rule| invalid(&format!("spec.envFrom[{index}].prefix"), prefix, rule))?;
        }
    }
    Ok(())
}

/// Suffixes of env var names that usually carry credentials.
const CREDENTIAL_SUFFIXES: [&str; 5] = [
    "_API_KEY",
    "_MASTER_KEY",
    "_SECRET_ACCESS_KEY",
    "_TOKEN",
    "_PASSWORD",
];

fn looks_like_a_credential(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    CREDENTIAL_SUFFIXES
        .iter()
        .any(|suffix| upper.ends_with(suffix))
}

/// An env var with the literal `value`. The kubelet expands `$(NAME)` in `env[].value`
/// from the variables defined before it (provider keys among them), so `$` is written
/// `$$`: a value that came from a policy (a collector's URL) reaches the process as
/// written and can never carry a key to where it points.
fn plain_env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.replace('$', "$$")),
        value_from: None,
    }
}

fn is_secret_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn secret_has(secret: &Secret, key: &str) -> bool {
    secret.data.as_ref().is_some_and(|d| d.contains_key(key))
        || secret
            .string_data
            .as_ref()
            .is_some_and(|d| d.contains_key(key))
}

/// Reads the user's env and envFrom: which names they provide, which Secrets they read,
/// and which referenced objects are missing (the container would not start).
fn user_env(
    parts: &GatewayParts<'_>,
    lookup: &dyn ObjectLookup,
    problems: &mut Vec<Problem>,
) -> UserEnv {
    let namespace = parts.namespace;
    let mut user = UserEnv {
        explicit: parts.env.iter().map(|e| e.name.clone()).collect(),
        from_sources: BTreeSet::new(),
        complete: true,
        secrets: BTreeSet::new(),
    };
    let missing = |kind: &str, name: &str, what: String| {
        Problem::new(
            ProblemReason::RefNotFound,
            ObjectRef::new(kind, namespace, name),
            format!("{what}, not optional: the LiteLLM container cannot start until it exists"),
        )
    };
    for (index, var) in parts.env.iter().enumerate() {
        let Some(source) = &var.value_from else {
            continue;
        };
        if let Some(selector) = &source.secret_key_ref {
            user.secrets.insert(selector.name.clone());
            let found = lookup.secret(namespace, &selector.name);
            let ok = found.as_ref().is_some_and(|s| secret_has(s, &selector.key));
            if !ok && selector.optional != Some(true) {
                let what = if found.is_some() {
                    format!("has no key {}", selector.key)
                } else {
                    "not found".to_owned()
                };
                problems.push(missing(
                    "Secret",
                    &selector.name,
                    format!("{what} for spec.env[{index}] ({})", var.name),
                ));
            }
        }
        if let Some(selector) = &source.config_map_key_ref {
            let found = lookup.config_map(namespace, &selector.name);
            let ok = found.as_ref().is_some_and(|c| {
                c.data
                    .as_ref()
                    .is_some_and(|d| d.contains_key(&selector.key))
                    || c.binary_data
                        .as_ref()
                        .is_some_and(|d| d.contains_key(&selector.key))
            });
            if !ok && selector.optional != Some(true) {
                let what = if found.is_some() {
                    format!("has no key {}", selector.key)
                } else {
                    "not found".to_owned()
                };
                problems.push(missing(
                    "ConfigMap",
                    &selector.name,
                    format!("{what} for spec.env[{index}] ({})", var.name),
                ));
            }
        }
    }
    for (index, source) in parts.env_from.iter().enumerate() {
        let prefix = source.prefix.as_deref().unwrap_or_default();
        let keys: Option<Vec<String>> = if let Some(reference) = &source.secret_ref {
            user.secrets.insert(reference.name.clone());
            match lookup.secret(namespace, &reference.name) {
                Some(secret) => Some(
                    secret
                        .data
                        .unwrap_or_default()
                        .into_keys()
                        .chain(secret.string_data.unwrap_or_default().into_keys())
                        .collect(),
                ),
                None => {
                    if reference.optional != Some(true) {
                        problems.push(missing(
                            "Secret",
                            &reference.name,
                            format!("not found for spec.envFrom[{index}]"),
                        ));
                    }
                    None
                }
            }
        } else if let Some(reference) = &source.config_map_ref {
            match lookup.config_map(namespace, &reference.name) {
                Some(config_map) => Some(config_map.data.unwrap_or_default().into_keys().collect()),
                None => {
                    if reference.optional != Some(true) {
                        problems.push(missing(
                            "ConfigMap",
                            &reference.name,
                            format!("not found for spec.envFrom[{index}]"),
                        ));
                    }
                    None
                }
            }
        } else {
            None
        };
        match keys {
            Some(keys) => user
                .from_sources
                .extend(keys.into_iter().map(|k| format!("{prefix}{k}"))),
            None => user.complete = false,
        }
    }
    user
}

fn read_patch(
    kind: GatewayKind,
    gateway: &str,
    namespace: &str,
    name: &str,
    lookup: &dyn ObjectLookup,
) -> Result<Value, RenderError> {
    let Some(config_map) = lookup.config_map(namespace, name) else {
        return Err(RenderError::PatchConfigMapNotFound {
            kind,
            gateway: gateway.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        });
    };
    let Some(text) = config_map
        .data
        .as_ref()
        .and_then(|d| d.get(names::PATCH_KEY))
    else {
        return Err(RenderError::PatchKeyMissing {
            kind,
            gateway: gateway.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        });
    };
    config::parse_patch(text).map_err(|message| RenderError::InvalidPatch {
        kind,
        gateway: gateway.to_owned(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        message,
    })
}

/// Env vars that choose LiteLLM's OpenTelemetry exporter; without either it is `console`.
const OTEL_EXPORTER_ENVS: [&str; 2] = ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER"];

/// The offline check: what LiteLLM's `--validate_config` lets through but is almost
/// certainly a mistake.
///
/// - two `model_list` entries with the same `model_name` and identical `litellm_params`;
/// - a `litellm_params.model` with an empty provider (`/name`) or empty;
/// - keys in the patch's `litellm_settings`, `general_settings` or `router_settings`
///   that the pinned LiteLLM does not know (typos are silently ignored by LiteLLM);
/// - `os.environ/VAR` references to variables the container does not get (LiteLLM
///   silently falls back to the provider's default variable); only checked when every
///   envFrom source could be read (`env_complete`);
/// - a literal `general_settings.master_key`, which ends up in a ConfigMap;
/// - the `otel` callback without an exporter chosen, which makes LiteLLM print every
///   trace span to stdout.
pub fn check_config(
    config: &Value,
    patch: Option<&Value>,
    env_names: &BTreeSet<String>,
    env_complete: bool,
    gateway: &ObjectRef,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut report = |message: String| {
        problems.push(Problem::new(
            ProblemReason::SuspiciousConfig,
            gateway.clone(),
            message,
        ))
    };
    if let Some(models) = config.get("model_list").and_then(Value::as_array) {
        let mut seen: Vec<(&Value, &Value)> = Vec::new();
        for (index, entry) in models.iter().enumerate() {
            let (Some(name), Some(params)) = (entry.get("model_name"), entry.get("litellm_params"))
            else {
                report(format!(
                    "model_list[{index}] lacks model_name or litellm_params: LiteLLM cannot serve it"
                ));
                continue;
            };
            if seen.contains(&(name, params)) {
                report(format!(
                    "model_list[{index}] ({}) repeats an earlier entry with identical litellm_params: LiteLLM load-balances between the copies; remove the duplicate",
                    display(name)
                ));
            }
            seen.push((name, params));
            match params.get("model").and_then(Value::as_str) {
                Some(model) if model.starts_with('/') || model.trim().is_empty() => {
                    report(format!(
                        "model_list[{index}] ({}) has model {model:?} with an empty provider: write <provider>/<model>",
                        display(name)
                    ));
                }
                _ => {}
            }
        }
    }
    if let Some(Value::Object(patch)) = patch {
        for (section, keys) in patch {
            let (Some(known), Value::Object(keys)) = (known_keys::for_section(section), keys)
            else {
                continue;
            };
            for key in keys.keys() {
                if known.binary_search(&key.as_str()).is_err() {
                    report(format!(
                        "the config patch sets {section}.{key}, which LiteLLM {LITELLM_VERSION} does not know and silently ignores: check its spelling"
                    ));
                }
            }
        }
    }
    if env_complete {
        let mut refs = BTreeSet::new();
        collect_env_refs(config, &mut refs);
        for var in refs {
            if !env_names.contains(&var) {
                report(format!(
                    "the config reads os.environ/{var}, but the container gets no {var}: LiteLLM treats it as unset (for api_key it silently falls back to the provider's default variable); set it through spec.env or spec.envFrom"
                ));
            }
        }
    }
    let uses_otel = ["callbacks", "success_callback"].iter().any(|list| {
        config
            .pointer(&format!("/litellm_settings/{list}"))
            .and_then(Value::as_array)
            .is_some_and(|items| items.iter().any(|i| i == "otel"))
    });
    if uses_otel
        && env_complete
        && !OTEL_EXPORTER_ENVS
            .iter()
            .any(|var| env_names.contains(*var))
    {
        report(format!(
            "litellm_settings.callbacks includes otel but the container sets neither {}: LiteLLM then prints every trace span to stdout; set OTEL_EXPORTER_OTLP_PROTOCOL and OTEL_EXPORTER_OTLP_ENDPOINT through spec.env, or drop otel from the callbacks with the config patch",
            OTEL_EXPORTER_ENVS.join(" nor ")
        ));
    }
    if let Some(Value::String(key)) = config.pointer("/general_settings/master_key")
        && !key.starts_with("os.environ/")
    {
        report(format!(
            "general_settings.master_key is written in plain text into the ConfigMap: keep it in a Secret and set {} through spec.env instead",
            names::MASTER_KEY_ENV
        ));
    }
    problems
}

fn display(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn collect_env_refs(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::String(s) => {
            if let Some(var) = s.strip_prefix("os.environ/") {
                out.insert(var.to_owned());
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_env_refs(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_env_refs(v, out)),
        _ => {}
    }
}

/// The first 16 hex characters of the SHA-256 of `bytes`.
pub fn short_hash(bytes: &[u8]) -> String {
    hex16(&Sha256::digest(bytes))
}

fn hex16(digest: &[u8]) -> String {
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The pod's secret-hash annotation of an AiGateway.
///
/// The SHA-256 (first 16 hex characters) of Secret `api-key-secrets`' keys and values in
/// key order, concatenated (exactly the Go operator's value, so migrating does not roll
/// the pods), followed, for every other Secret of the namespace the container reads
/// through env or envFrom (sorted by name), by its name and its keys and values with
/// separators. A missing Secret contributes only its name.
pub fn secret_hash(
    namespace: &str,
    lookup: &dyn ObjectLookup,
    secrets: &BTreeSet<String>,
) -> String {
    let mut hasher = Sha256::new();
    if let Some(secret) = lookup.secret(namespace, names::API_KEY_SECRET) {
        for (key, value) in secret_pairs(&secret) {
            hasher.update(key.as_bytes());
            hasher.update(&value);
        }
    }
    let others = secrets.iter().filter(|n| *n != names::API_KEY_SECRET);
    hash_secrets(&mut hasher, namespace, lookup, others);
    hex16(&hasher.finalize())
}

/// The pod's secret-hash annotation of a gateway without models (a ToolGateway): like
/// [`secret_hash`] without the `api-key-secrets` prefix, so only the Secrets the
/// container reads (by env, envFrom or guard credentials) roll its pods. A gateway that
/// reads no Secret gets the hash of nothing, whatever the namespace's provider keys.
pub fn referenced_secrets_hash(
    namespace: &str,
    lookup: &dyn ObjectLookup,
    secrets: &BTreeSet<String>,
) -> String {
    let mut hasher = Sha256::new();
    hash_secrets(&mut hasher, namespace, lookup, secrets.iter());
    hex16(&hasher.finalize())
}

fn secret_pairs(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut all: BTreeMap<String, Vec<u8>> = secret
        .data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    for (k, v) in secret.string_data.clone().unwrap_or_default() {
        all.insert(k, v.into_bytes());
    }
    all
}

/// Each Secret's name, then its keys and values, with separators and lengths so that
/// no two different sets hash alike.
fn hash_secrets<'a>(
    hasher: &mut Sha256,
    namespace: &str,
    lookup: &dyn ObjectLookup,
    secrets: impl Iterator<Item = &'a String>,
) {
    for name in secrets {
        hasher.update(b"\0secret\0");
        hasher.update(name.as_bytes());
        if let Some(secret) = lookup.secret(namespace, name) {
            hash_pairs(hasher, &secret_pairs(&secret));
        }
    }
}

/// Keys and values, with separators and lengths.
fn hash_pairs(hasher: &mut Sha256, pairs: &BTreeMap<String, Vec<u8>>) {
    for (key, value) in pairs {
        hasher.update(b"\0");
        hasher.update(key.as_bytes());
        hasher.update(b"\0");
        hasher.update((value.len() as u64).to_be_bytes());
        hasher.update(value);
    }
}
