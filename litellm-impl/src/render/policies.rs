//! The policies in effect on an AiGateway, applied to its config: model policies on
//! `model_list` entries, the routing policy on `router_settings`, the observability
//! policy on the OpenTelemetry exporter's env. What became of each policy is collected
//! for its status.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::core::v1::TopologySpreadConstraint;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use aigateway_api::AiGateway;
use serde_json::{Map, Value, json};

use super::{Prepared, Rendered, plain_env, secret_has, short_hash};
use crate::guardrails::secret_env;
use crate::lookup::ObjectLookup;
use crate::names;
use crate::policy::{
    self, AvailabilitySettings, HEADERS_KEY, LiteLlmAvailabilityPolicy, LiteLlmModelPolicy,
    LiteLlmObservabilityPolicy, LiteLlmRoutingPolicy, ModelSettings, MonitorKind,
    ObservabilitySettings, PolicyRefusal, REDIS_HOST_KEY, REDIS_PASSWORD_KEY, REDIS_PORT_KEY,
    RoutingSettings,
};
use crate::problem::{ObjectRef, Problem, ProblemReason};

/// The policies in effect on one gateway, each kind oldest first and at most one per
/// target, as the runtime offers them.
#[derive(Clone, Copy, Debug, Default)]
pub struct GatewayPolicies<'a> {
    /// [`LiteLlmModelPolicy`]s: per-model endpoints, keys, timeouts and limits.
    pub models: &'a [LiteLlmModelPolicy],
    /// [`LiteLlmRoutingPolicy`]s: fallbacks, retries, cooldown and shared limits.
    pub routing: &'a [LiteLlmRoutingPolicy],
    /// [`LiteLlmObservabilityPolicy`]s: traces.
    pub observability: &'a [LiteLlmObservabilityPolicy],
    /// [`LiteLlmAvailabilityPolicy`]s: replicas, autoscaler, disruption budget, rollout,
    /// resources, spread.
    pub availability: &'a [LiteLlmAvailabilityPolicy],
}

/// The policy kinds of the LiteLLM implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LiteLlmPolicyKind {
    /// [`LiteLlmModelPolicy`].
    Model,
    /// [`LiteLlmRoutingPolicy`].
    Routing,
    /// [`LiteLlmObservabilityPolicy`].
    Observability,
    /// [`LiteLlmAvailabilityPolicy`].
    Availability,
}

impl LiteLlmPolicyKind {
    /// The policy's `kind`, e.g. `LiteLLMRoutingPolicy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Model => "LiteLLMModelPolicy",
            Self::Routing => "LiteLLMRoutingPolicy",
            Self::Observability => "LiteLLMObservabilityPolicy",
            Self::Availability => "LiteLLMAvailabilityPolicy",
        }
    }
}

/// What rendering did with one policy in effect on the gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyOutcome {
    /// The policy's kind.
    pub kind: LiteLlmPolicyKind,
    /// The policy's name (in the gateway's namespace).
    pub policy: String,
    /// Applied, refused, or applied with a reference that cannot be used.
    pub verdict: PolicyVerdict,
}

/// See [`PolicyOutcome`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyVerdict {
    /// In the config.
    Applied,
    /// Not applied at all; the gateway runs without it.
    Refused(PolicyRefusal),
    /// Applied, but its Secret (or a key in it) is missing: what it reads stays unset
    /// until it appears (the pods roll then). The message says what to do.
    Unresolved(String),
}

/// Marks an applied policy unresolved, with why.
fn unresolve(outcomes: &mut [PolicyOutcome], kind: LiteLlmPolicyKind, policy: &str, why: String) {
    if let Some(outcome) = (outcomes.iter_mut()).find(|o| o.kind == kind && o.policy == policy)
        && outcome.verdict == PolicyVerdict::Applied
    {
        outcome.verdict = PolicyVerdict::Unresolved(why);
    }
}

/// What is missing of `keys` in Secret `namespace/name`, as a sentence; `None` when all
/// are there.
fn missing_keys(
    lookup: &dyn ObjectLookup,
    namespace: &str,
    name: &str,
    keys: &[&str],
) -> Option<String> {
    let Some(secret) = lookup.secret(namespace, name) else {
        return Some(format!("Secret {namespace}/{name} not found"));
    };
    let missing: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| !secret_has(&secret, k))
        .collect();
    match missing.as_slice() {
        [] => None,
        [key] => Some(format!("Secret {namespace}/{name} has no key {key}")),
        keys => Some(format!(
            "Secret {namespace}/{name} has no keys {}",
            keys.join(", ")
        )),
    }
}

/// The valid model policies by model, and what became of each policy.
pub(super) struct ModelPolicies<'p> {
    whole: Option<(&'p str, ModelSettings)>,
    by_model: BTreeMap<String, (&'p str, ModelSettings)>,
    outcomes: Vec<PolicyOutcome>,
}

impl<'p> ModelPolicies<'p> {
    pub(super) fn of(policies: &'p [LiteLlmModelPolicy], gateway: &AiGateway) -> Self {
        let mut this = Self {
            whole: None,
            by_model: BTreeMap::new(),
            outcomes: Vec::new(),
        };
        for policy in policies {
            let name = policy.metadata.name.as_deref().unwrap_or_default();
            let verdict = match policy::check(policy, gateway) {
                Err(refusal) => PolicyVerdict::Refused(refusal),
                Ok((None, settings)) => {
                    this.whole.get_or_insert((name, settings));
                    PolicyVerdict::Applied
                }
                Ok((Some(models), settings)) => {
                    for model in models {
                        this.by_model
                            .entry(model)
                            .or_insert((name, settings.clone()));
                    }
                    PolicyVerdict::Applied
                }
            };
            this.outcomes.push(PolicyOutcome {
                kind: LiteLlmPolicyKind::Model,
                policy: name.to_owned(),
                verdict,
            });
        }
        this
    }

    /// Sets what the policy of `model` (its own, else the gateway-wide one) says on its
    /// `model_list` entry; its key comes from an env var read from its Secret. Returns
    /// whether the model has its own key (and so needs no provider key).
    pub(super) fn apply(
        &mut self,
        model: &str,
        entry: &mut Value,
        prepared: &mut Prepared<'_>,
        lookup: &dyn ObjectLookup,
    ) -> bool {
        let Some((policy, settings)) = self.by_model.get(model).or(self.whole.as_ref()) else {
            return false;
        };
        let params = &mut entry["litellm_params"];
        let mut set = |key: &str, value: Option<Value>| {
            if let Some(value) = value {
                params[key] = value;
            }
        };
        set("api_base", settings.api_base.clone().map(Value::from));
        set("api_version", settings.api_version.clone().map(Value::from));
        set("timeout", settings.timeout_seconds.map(Value::from));
        set(
            "max_parallel_requests",
            settings.max_parallel_requests.map(Value::from),
        );
        set("rpm", settings.rpm.map(Value::from));
        set("tpm", settings.tpm.map(Value::from));
        let Some(credentials) = &settings.credentials else {
            return false;
        };
        let namespace = prepared.parts.namespace;
        let var = format!(
            "LITELLM_MODEL_KEY_{}",
            short_hash(format!("{}/{}", credentials.name, credentials.key).as_bytes())
                .to_uppercase()
        );
        params["api_key"] = Value::from(format!("os.environ/{var}"));
        if prepared.generated.iter().all(|e| e.name != var) {
            prepared
                .generated
                .push(secret_env(&var, &credentials.name, &credentials.key, true));
            prepared.secrets.insert(credentials.name.clone());
        }
        if let Some(missing) =
            missing_keys(lookup, namespace, &credentials.name, &[&credentials.key])
        {
            // `'p`, not a borrow of `self`.
            let policy: &'p str = policy;
            unresolve(
                &mut self.outcomes,
                LiteLlmPolicyKind::Model,
                policy,
                format!("{missing}: model {model} gets no API key until it is created"),
            );
        }
        true
    }

    pub(super) fn into_outcomes(self) -> Vec<PolicyOutcome> {
        self.outcomes
    }
}

/// The first valid policy of a kind that configures whole gateways (the runtime offers
/// at most one per gateway, the oldest; a policy naming a section is refused), and what
/// became of each policy offered.
pub(super) struct FirstValid<'p, S> {
    applied: Option<(&'p str, S)>,
    outcomes: Vec<PolicyOutcome>,
}

impl<'p, S> FirstValid<'p, S> {
    fn checked<P: kube::Resource>(
        policies: &'p [P],
        gateway: &AiGateway,
        kind: LiteLlmPolicyKind,
        check: impl Fn(&P, &AiGateway) -> Result<S, PolicyRefusal>,
    ) -> Self {
        let mut this = Self {
            applied: None,
            outcomes: Vec::new(),
        };
        for policy in policies {
            let name = policy.meta().name.as_deref().unwrap_or_default();
            let verdict = match check(policy, gateway) {
                Err(refusal) => PolicyVerdict::Refused(refusal),
                Ok(settings) => {
                    this.applied.get_or_insert((name, settings));
                    PolicyVerdict::Applied
                }
            };
            this.outcomes.push(PolicyOutcome {
                kind,
                policy: name.to_owned(),
                verdict,
            });
        }
        this
    }

    pub(super) fn into_outcomes(self) -> Vec<PolicyOutcome> {
        self.outcomes
    }
}

/// The routing policy applied, and what became of each.
pub(super) type RoutingPolicies<'p> = FirstValid<'p, RoutingSettings>;
/// The observability policy applied, and what became of each.
pub(super) type ObservabilityPolicies<'p> = FirstValid<'p, ObservabilitySettings>;
/// The availability policy applied, and what became of each.
pub(super) type AvailabilityPolicies<'p> = FirstValid<'p, AvailabilitySettings>;

/// Env vars the Redis of a routing policy reaches the proxy through.
const REDIS_ENV: [(&str, &str); 3] = [
    ("LITELLM_REDIS_HOST", REDIS_HOST_KEY),
    ("LITELLM_REDIS_PORT", REDIS_PORT_KEY),
    ("LITELLM_REDIS_PASSWORD", REDIS_PASSWORD_KEY),
];

impl<'p> FirstValid<'p, RoutingSettings> {
    pub(super) fn of(policies: &'p [LiteLlmRoutingPolicy], gateway: &AiGateway) -> Self {
        Self::checked(
            policies,
            gateway,
            LiteLlmPolicyKind::Routing,
            policy::check_routing,
        )
    }

    /// Sets `router_settings` from the applied policy; the Redis address and password
    /// come from env vars read from its Secret.
    pub(super) fn apply(
        &mut self,
        config: &mut Value,
        prepared: &mut Prepared<'_>,
        lookup: &dyn ObjectLookup,
    ) {
        let Some((policy, settings)) = &self.applied else {
            return;
        };
        let mut router = Map::new();
        let fallbacks = |list: &[(String, Vec<String>)]| {
            Value::Array(
                list.iter()
                    .map(|(model, to)| json!({ model: to }))
                    .collect(),
            )
        };
        if !settings.fallbacks.is_empty() {
            router.insert("fallbacks".into(), fallbacks(&settings.fallbacks));
        }
        if !settings.context_window_fallbacks.is_empty() {
            router.insert(
                "context_window_fallbacks".into(),
                fallbacks(&settings.context_window_fallbacks),
            );
        }
        let numbers = [
            ("num_retries", settings.retries),
            ("timeout", settings.timeout_seconds),
            ("allowed_fails", settings.allowed_fails),
            ("cooldown_time", settings.cooldown_seconds),
        ];
        for (key, value) in numbers {
            if let Some(value) = value {
                router.insert(key.into(), Value::from(value));
            }
        }
        if let Some(secret) = &settings.redis_secret {
            // A Redis without a password is common: a Secret without the key gets no
            // password setting (and a key added later rolls the pods, as any change).
            let namespace = prepared.parts.namespace;
            let passwordless = (lookup.secret(namespace, secret))
                .is_some_and(|found| !secret_has(&found, REDIS_PASSWORD_KEY));
            for (var, key) in REDIS_ENV {
                if passwordless && key == REDIS_PASSWORD_KEY {
                    continue;
                }
                let setting = var.trim_start_matches("LITELLM_").to_lowercase();
                router.insert(setting, Value::from(format!("os.environ/{var}")));
                prepared.generated.push(secret_env(var, secret, key, true));
            }
            prepared.secrets.insert(secret.clone());
            let keys = [REDIS_HOST_KEY, REDIS_PORT_KEY];
            if let Some(missing) = missing_keys(lookup, namespace, secret, &keys) {
                let policy: &'p str = policy;
                unresolve(
                    &mut self.outcomes,
                    LiteLlmPolicyKind::Routing,
                    policy,
                    format!(
                        "{missing}: each replica counts its limits on its own until it is created with keys {} (and {REDIS_PASSWORD_KEY} if the Redis has one)",
                        keys.join(", ")
                    ),
                );
            }
        }
        if !router.is_empty() {
            config["router_settings"] = Value::Object(router);
        }
    }
}

impl<'p> FirstValid<'p, ObservabilitySettings> {
    pub(super) fn of(policies: &'p [LiteLlmObservabilityPolicy], gateway: &AiGateway) -> Self {
        Self::checked(
            policies,
            gateway,
            LiteLlmPolicyKind::Observability,
            policy::check_observability,
        )
    }

    /// Points LiteLLM's `otel` callback at the collector through the OpenTelemetry SDK's
    /// env vars (the user's `spec.env` still wins by name), and keeps prompts and
    /// responses out of the spans unless asked.
    pub(super) fn apply(
        &mut self,
        config: &mut Value,
        prepared: &mut Prepared<'_>,
        lookup: &dyn ObjectLookup,
    ) {
        let Some((policy, settings)) = &self.applied else {
            return;
        };
        let Some(tracing) = &settings.tracing else {
            return;
        };
        // The pinned LiteLLM exports with the OTLP/HTTP protobuf exporter whatever the
        // protocol says; saying so keeps the SDK's defaults consistent.
        prepared
            .generated
            .push(plain_env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"));
        prepared
            .generated
            .push(plain_env("OTEL_EXPORTER_OTLP_ENDPOINT", &tracing.endpoint));
        prepared
            .generated
            .push(plain_env("OTEL_SERVICE_NAME", &tracing.service_name));
        if !tracing.log_content {
            config["litellm_settings"]["turn_off_message_logging"] = Value::Bool(true);
        }
        let Some(secret) = &tracing.headers_secret else {
            return;
        };
        prepared.generated.push(secret_env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            secret,
            HEADERS_KEY,
            true,
        ));
        prepared.secrets.insert(secret.clone());
        if let Some(missing) =
            missing_keys(lookup, prepared.parts.namespace, secret, &[HEADERS_KEY])
        {
            let policy: &'p str = policy;
            unresolve(
                &mut self.outcomes,
                LiteLlmPolicyKind::Observability,
                policy,
                format!("{missing}: traces are exported without headers until it is created"),
            );
        }
    }
}

impl FirstValid<'_, ObservabilitySettings> {
    /// The monitor the policy asks for: a ServiceMonitor of the gateway's Service, or a
    /// PodMonitor of its pods, scraping `/metrics` on the `http` port either way.
    pub(super) fn add_monitor(&self, rendered: &mut Rendered) {
        let Some((_, settings)) = &self.applied else {
            return;
        };
        let Some(monitoring) = &settings.monitoring else {
            return;
        };
        let service = &rendered.service.metadata;
        let mut labels = service.labels.clone().unwrap_or_default();
        labels.extend(monitoring.labels.clone());
        let mut endpoint = json!({"port": names::PORT_NAME, "path": "/metrics"});
        if let Some(interval) = &monitoring.interval {
            endpoint["interval"] = Value::from(interval.clone());
        }
        let spec = match monitoring.kind {
            MonitorKind::ServiceMonitor => {
                let selector = (rendered.service.spec.as_ref()).and_then(|s| s.selector.clone());
                json!({"selector": {"matchLabels": selector}, "endpoints": [endpoint]})
            }
            MonitorKind::PodMonitor => {
                let pods = (rendered.deployment.spec.as_ref())
                    .and_then(|s| s.selector.match_labels.clone());
                json!({"selector": {"matchLabels": pods}, "podMetricsEndpoints": [endpoint]})
            }
        };
        let mut monitor = kube::api::DynamicObject::new(
            service.name.as_deref().unwrap_or_default(),
            &monitoring.kind.resource(),
        )
        .within(service.namespace.as_deref().unwrap_or_default());
        monitor.metadata.labels = Some(labels);
        monitor.data = json!({"spec": spec});
        rendered.monitor = Some(super::Monitor {
            kind: monitoring.kind,
            object: monitor,
        });
    }
}

impl<'p> FirstValid<'p, AvailabilitySettings> {
    pub(super) fn of(policies: &'p [LiteLlmAvailabilityPolicy], gateway: &AiGateway) -> Self {
        Self::checked(
            policies,
            gateway,
            LiteLlmPolicyKind::Availability,
            policy::check_availability,
        )
    }

    /// Replicas and resources, before the workload is built from the settings. The
    /// policy wins over the `replicas` annotation, which the gateway then warns about.
    /// A policy whose resources, with the gateway's own (annotations or defaults), ask
    /// for more than their limit is refused as a whole: the API server would refuse the
    /// Deployment, and the gateway would not be applied at all.
    pub(super) fn apply_to_settings(&mut self, prepared: &mut Prepared<'_>) {
        let Some((policy, AvailabilitySettings(spec))) = &self.applied else {
            return;
        };
        let mut resources = prepared.settings.resources.clone();
        if let Some(wanted) = &spec.resources {
            let lists = [
                (&wanted.requests, &mut resources.requests),
                (&wanted.limits, &mut resources.limits),
            ];
            for (wanted, list) in lists {
                let Some(wanted) = wanted else { continue };
                let list = list.get_or_insert_with(BTreeMap::new);
                for (key, value) in [("cpu", &wanted.cpu), ("memory", &wanted.memory)] {
                    if let Some(value) = value {
                        list.insert(key.to_owned(), Quantity(value.clone()));
                    }
                }
            }
        }
        if let Some(above) = crate::settings::request_above_limit(&resources) {
            let refusal = PolicyRefusal::Invalid(format!(
                "resources: the {} request {} is above the {} limit {} (the policy's, else the gateway's annotation or the default): set resources.limits.{} at least as high",
                above.resource, above.request, above.resource, above.limit, above.resource
            ));
            let policy = policy.to_owned();
            if let Some(outcome) = (self.outcomes.iter_mut())
                .find(|o| o.policy == policy && o.verdict == PolicyVerdict::Applied)
            {
                outcome.verdict = PolicyVerdict::Refused(refusal);
            }
            self.applied = None;
            return;
        }
        if spec.replicas.is_some() || spec.autoscaling.is_some() {
            prepared.settings.replicas = spec.replicas;
            let annotated = (prepared.parts.annotations)
                .is_some_and(|a| a.contains_key(names::REPLICAS_ANNOTATION));
            if annotated {
                prepared.problems.push(Problem::new(
                    ProblemReason::SuspiciousConfig,
                    prepared.gateway_ref.clone(),
                    format!("annotation {} is ignored: LiteLLMAvailabilityPolicy {policy} sets the replicas; remove one of them", names::REPLICAS_ANNOTATION),
                ));
            }
        }
        prepared.settings.resources = resources;
    }

    /// The rollout and the spread on the Deployment; the disruption budget and the
    /// autoscaler beside it, selecting its pods and naming it.
    pub(super) fn apply_to_workload(&self, rendered: &mut Rendered) {
        let Some((_, AvailabilitySettings(spec))) = &self.applied else {
            return;
        };
        let deployment = &mut rendered.deployment;
        let meta = ObjectMeta {
            name: deployment.metadata.name.clone(),
            namespace: deployment.metadata.namespace.clone(),
            labels: deployment.metadata.labels.clone(),
            ..Default::default()
        };
        let Some(deployment_spec) = deployment.spec.as_mut() else {
            return;
        };
        let pods = deployment_spec.selector.clone();
        if let Some(rollout) = &spec.rollout {
            deployment_spec.strategy = Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: rollout.max_surge.clone(),
                    max_unavailable: rollout.max_unavailable.clone(),
                }),
            });
        }
        if spec.spread_across_nodes
            && let Some(pod) = deployment_spec.template.spec.as_mut()
        {
            pod.topology_spread_constraints = Some(vec![TopologySpreadConstraint {
                max_skew: 1,
                topology_key: "kubernetes.io/hostname".to_owned(),
                when_unsatisfiable: "ScheduleAnyway".to_owned(),
                label_selector: Some(pods.clone()),
                ..Default::default()
            }]);
        }
        rendered.disruption_budget =
            spec.disruption_budget
                .as_ref()
                .map(|budget| PodDisruptionBudget {
                    metadata: meta.clone(),
                    spec: Some(PodDisruptionBudgetSpec {
                        selector: Some(pods.clone()),
                        min_available: budget.min_available.clone(),
                        max_unavailable: budget.max_unavailable.clone(),
                        ..Default::default()
                    }),
                    ..Default::default()
                });
        rendered.autoscaler = spec.autoscaling.as_ref().map(|scaling| {
            let utilization = |name: &str, percent: i32| MetricSpec {
                type_: "Resource".to_owned(),
                resource: Some(ResourceMetricSource {
                    name: name.to_owned(),
                    target: MetricTarget {
                        type_: "Utilization".to_owned(),
                        average_utilization: Some(percent),
                        ..Default::default()
                    },
                }),
                ..Default::default()
            };
            let mut metrics = Vec::new();
            let cpu = match (scaling.cpu_utilization, scaling.memory_utilization) {
                (None, None) => Some(DEFAULT_CPU_UTILIZATION),
                (cpu, _) => cpu,
            };
            metrics.extend(cpu.map(|p| utilization("cpu", p)));
            metrics.extend(scaling.memory_utilization.map(|p| utilization("memory", p)));
            HorizontalPodAutoscaler {
                metadata: meta.clone(),
                spec: Some(HorizontalPodAutoscalerSpec {
                    scale_target_ref: CrossVersionObjectReference {
                        api_version: Some("apps/v1".to_owned()),
                        kind: "Deployment".to_owned(),
                        name: meta.name.clone().unwrap_or_default(),
                    },
                    min_replicas: Some(scaling.min_replicas.unwrap_or(1)),
                    max_replicas: scaling.max_replicas,
                    metrics: Some(metrics),
                    ..Default::default()
                }),
                ..Default::default()
            }
        });
    }
}

/// The CPU use an autoscaler aims for when the policy names no target, in percent.
const DEFAULT_CPU_UTILIZATION: i32 = 80;

/// LiteLLM's router enforces `rpm` and `tpm` per minute only with this strategy (the
/// default, `simple-shuffle`, uses them as weights): set it whenever a model has limits.
pub(super) const LIMITING_STRATEGY: &str = "usage-based-routing-v2";

/// Sets the router's strategy to [`LIMITING_STRATEGY`] when a model has `rpm` or `tpm`.
pub(super) fn enforce_limits(config: &mut Value) {
    if limited_models(config).is_empty() {
        return;
    }
    if !config["router_settings"].is_object() {
        config["router_settings"] = json!({});
    }
    config["router_settings"]["routing_strategy"] = Value::from(LIMITING_STRATEGY);
}

/// The models whose entries set `rpm` or `tpm`.
fn limited_models(config: &Value) -> Vec<&str> {
    (config["model_list"].as_array().into_iter().flatten())
        .filter(|entry| {
            let params = &entry["litellm_params"];
            !params["rpm"].is_null() || !params["tpm"].is_null()
        })
        .filter_map(|entry| entry["model_name"].as_str())
        .collect()
}

/// When the gateway may run more than one replica, its models have rate limits and no
/// Redis shares them, a warning: each replica allows the whole limit.
pub(super) fn per_replica_limits(
    config: &Value,
    replicas: Option<i32>,
    gateway: ObjectRef,
) -> Option<Problem> {
    if replicas.is_some_and(|r| r <= 1) {
        return None;
    }
    let shared = config.pointer("/router_settings/redis_host").is_some()
        || config.pointer("/router_settings/redis_url").is_some();
    let limited = limited_models(config);
    if shared || limited.is_empty() {
        return None;
    }
    let replicas = match replicas {
        Some(n) => format!("{n} replicas"),
        None => "replicas set by an autoscaler".to_owned(),
    };
    Some(Problem::new(
        ProblemReason::PerReplicaLimits,
        gateway,
        format!(
            "the rate limits of {} are counted by each replica on its own, and the gateway runs {replicas}: each allows the whole limit; share them through Redis with a LiteLLMRoutingPolicy's sharedLimits",
            listed(&limited)
        ),
    ))
}

/// At most five names, then how many more: a message stays short on a gateway with
/// hundreds of models.
fn listed(names: &[&str]) -> String {
    match names.len() {
        0..=5 => names.join(", "),
        n => format!("{} and {} more", names[..5].join(", "), n - 5),
    }
}
