//! [`LiteLlmRoutingPolicy`]: how a whole AiGateway routes between its models: fallbacks
//! when a model fails or its context window is too small, retries, timeouts, cooldown,
//! and rate limits shared by every replica through Redis.

use aigateway_api::AiGateway;
use aigateway_api::policy::{PolicyStatus, PolicyTargetReference, TargetedPolicy};
use kube::{CustomResource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{MAX_TIMEOUT_SECONDS, PolicyRefusal, check_secret_name, whole_gateway_only};

/// The most fallback entries (per list) a policy may set.
pub const MAX_FALLBACKS: usize = 64;
/// The most models one model may fall back to.
pub const MAX_FALLBACK_TARGETS: usize = 8;
/// The most retries a policy may set.
pub const MAX_RETRIES: u32 = 10;
/// The most failures per minute a policy may allow before a model cools down.
pub const MAX_ALLOWED_FAILS: u32 = 1000;
/// The key of the Redis Secret that holds the host name or address.
pub const REDIS_HOST_KEY: &str = "host";
/// The key of the Redis Secret that holds the port.
pub const REDIS_PORT_KEY: &str = "port";
/// The key of the Redis Secret that holds the password.
pub const REDIS_PASSWORD_KEY: &str = "password";

/// How an AiGateway routes between its models, for every replica.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "litellm.aigateway.agentic-layer.ai",
    version = "v1alpha1",
    kind = "LiteLLMRoutingPolicy",
    root = "LiteLlmRoutingPolicy",
    plural = "litellmroutingpolicies",
    shortname = "llmroutingpolicy",
    namespaced,
    status = "PolicyStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct LiteLlmRoutingPolicySpec {
    /// The AiGateways routed, in the policy's namespace; whole gateways only (no
    /// `sectionName`): fallbacks name models of the gateway.
    #[schemars(length(min = 1, max = 16))]
    pub target_refs: Vec<PolicyTargetReference>,
    /// When a model fails (after its retries), the models tried next, in order
    /// (`router_settings.fallbacks`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub fallbacks: Vec<Fallback>,
    /// When a request does not fit a model's context window, the models tried instead,
    /// in order (`router_settings.context_window_fallbacks`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub context_window_fallbacks: Vec<Fallback>,
    /// Retries of a failed request on the same model before its fallbacks
    /// (`router_settings.num_retries`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 10))]
    pub retries: Option<u32>,
    /// Seconds before a request fails, retries included (`router_settings.timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub timeout_seconds: Option<u32>,
    /// Failures per minute after which a model is taken out of rotation
    /// (`router_settings.allowed_fails`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub allowed_fails: Option<u32>,
    /// Seconds a failing model stays out of rotation (`router_settings.cooldown_time`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub cooldown_seconds: Option<u32>,
    /// Share rate limits (the models' `rpm`, `tpm`), usage and cooldowns between every
    /// replica of the gateway. Without it, each replica counts on its own, so a limit is
    /// multiplied by the number of replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_limits: Option<SharedLimits>,
}

/// One model and the models tried, in order, in its place.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct Fallback {
    /// A model of the gateway (its `aiModels[].name`).
    #[schemars(length(min = 1, max = 253))]
    pub model: String,
    /// Models of the gateway tried in its place, in order.
    #[schemars(length(min = 1, max = 8))]
    pub to: Vec<String>,
}

/// Where the replicas of a gateway share their counters.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct SharedLimits {
    /// A Redis server, from a Secret of the policy's namespace.
    pub redis: RedisReference,
}

/// A Secret of the policy's namespace with the keys `host`, `port` and `password` of a
/// Redis server. The values reach the proxy as environment variables, never the
/// ConfigMap.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisReference {
    /// The Secret's name, in the policy's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

impl TargetedPolicy for LiteLlmRoutingPolicy {
    fn target_refs(&self) -> &[PolicyTargetReference] {
        &self.spec.target_refs
    }
}

/// What a valid routing policy sets, checked.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RoutingSettings {
    /// `fallbacks`: model, then the models tried in its place.
    pub fallbacks: Vec<(String, Vec<String>)>,
    /// `context_window_fallbacks`.
    pub context_window_fallbacks: Vec<(String, Vec<String>)>,
    /// `num_retries`.
    pub retries: Option<u32>,
    /// `timeout`, in seconds.
    pub timeout_seconds: Option<u32>,
    /// `allowed_fails`.
    pub allowed_fails: Option<u32>,
    /// `cooldown_time`, in seconds.
    pub cooldown_seconds: Option<u32>,
    /// The Secret with the Redis server's `host`, `port` and `password`.
    pub redis_secret: Option<String>,
}

/// What `policy` sets on `gateway`, or why it cannot be applied. Fallbacks may name only
/// models of the gateway, never the model itself; every size is bounded. Nothing is
/// looked up.
pub fn check_routing(
    policy: &LiteLlmRoutingPolicy,
    gateway: &AiGateway,
) -> Result<RoutingSettings, PolicyRefusal> {
    let spec = &policy.spec;
    let invalid = |message: String| Err(PolicyRefusal::Invalid(message));
    if policy.namespace() != gateway.namespace() {
        return invalid("a policy configures gateways in its own namespace only".to_owned());
    }
    whole_gateway_only("routing", &spec.target_refs, gateway)?;
    let fallbacks = check_fallbacks("fallbacks", &spec.fallbacks, gateway)?;
    let context_window_fallbacks = check_fallbacks(
        "contextWindowFallbacks",
        &spec.context_window_fallbacks,
        gateway,
    )?;
    if spec.retries.is_some_and(|r| r > MAX_RETRIES) {
        return invalid(format!("retries must be 0 to {MAX_RETRIES}"));
    }
    let in_range = |value: Option<u32>, max: u32| value.is_none_or(|v| (1..=max).contains(&v));
    if !in_range(spec.timeout_seconds, MAX_TIMEOUT_SECONDS) {
        return invalid(format!("timeoutSeconds must be 1 to {MAX_TIMEOUT_SECONDS}"));
    }
    if !in_range(spec.cooldown_seconds, MAX_TIMEOUT_SECONDS) {
        return invalid(format!(
            "cooldownSeconds must be 1 to {MAX_TIMEOUT_SECONDS}"
        ));
    }
    if !in_range(spec.allowed_fails, MAX_ALLOWED_FAILS) {
        return invalid(format!("allowedFails must be 1 to {MAX_ALLOWED_FAILS}"));
    }
    let redis_secret = match &spec.shared_limits {
        Some(shared) => {
            if !check_secret_name(&shared.redis.secret_name) {
                return invalid(
                    "sharedLimits.redis.secretName must name a Secret (a lowercase DNS name)"
                        .to_owned(),
                );
            }
            Some(shared.redis.secret_name.clone())
        }
        None => None,
    };
    Ok(RoutingSettings {
        fallbacks,
        context_window_fallbacks,
        retries: spec.retries,
        timeout_seconds: spec.timeout_seconds,
        allowed_fails: spec.allowed_fails,
        cooldown_seconds: spec.cooldown_seconds,
        redis_secret,
    })
}

/// Each entry names models of the gateway, at most once each, never falling back to
/// itself; the lists are bounded.
fn check_fallbacks(
    field: &str,
    fallbacks: &[Fallback],
    gateway: &AiGateway,
) -> Result<Vec<(String, Vec<String>)>, PolicyRefusal> {
    let invalid = |message: String| Err(PolicyRefusal::Invalid(message));
    if fallbacks.len() > MAX_FALLBACKS {
        return invalid(format!("{field} has more than {MAX_FALLBACKS} entries"));
    }
    let served = |model: &str| gateway.spec.ai_models.iter().any(|m| m.name == model);
    let mut checked: Vec<(String, Vec<String>)> = Vec::with_capacity(fallbacks.len());
    for fallback in fallbacks {
        let unknown = std::iter::once(&fallback.model).chain(&fallback.to);
        if let Some(unknown) = unknown.into_iter().find(|m| !served(m)) {
            return invalid(format!(
                "{field} names model {unknown:?}, which the gateway does not serve: name models of its spec.aiModels"
            ));
        }
        if checked.iter().any(|(model, _)| *model == fallback.model) {
            return invalid(format!(
                "{field} lists model {:?} twice: merge its entries",
                fallback.model
            ));
        }
        if fallback.to.is_empty() || fallback.to.len() > MAX_FALLBACK_TARGETS {
            return invalid(format!(
                "{field} for model {:?} must name 1 to {MAX_FALLBACK_TARGETS} models",
                fallback.model
            ));
        }
        let repeats = (fallback.to.iter().enumerate())
            .any(|(i, m)| *m == fallback.model || fallback.to[..i].contains(m));
        if repeats {
            return invalid(format!(
                "{field} for model {:?} names the model itself or one model twice",
                fallback.model
            ));
        }
        checked.push((fallback.model.clone(), fallback.to.clone()));
    }
    Ok(checked)
}
