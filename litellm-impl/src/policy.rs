//! The LiteLLM implementation's own policy kinds, in an API group this project owns
//! (never upstream's `runtime.agentic-layer.ai`): typed day-2 settings attached to
//! AiGateways by Gateway API policy attachment (see `aigateway_api::policy`).
//!
//! [`LiteLlmModelPolicy`] sets, for every model of a gateway or for one model
//! (`sectionName`), its own endpoint (`apiBase`, `apiVersion`), its own key from a Secret
//! of the policy's namespace, a timeout, a cap on parallel requests and rate limits.
//! [`check`] decides, purely, whether a policy can be applied to a gateway and what it
//! sets; `render` applies it to the model list.
//!
//! [`LiteLlmRoutingPolicy`] sets how a whole gateway routes between its models:
//! fallbacks, context-window fallbacks, retries, timeout, cooldown, and rate limits shared
//! by every replica through Redis ([`check_routing`]).
//!
//! [`LiteLlmToolRoutePolicy`] sets, for ToolRoutes of its own namespace, the timeout of
//! calls to their upstream MCP servers and the credential presented there
//! ([`check_tool_route`]); the ToolGateway a route attaches to applies it.
//!
//! ```
//! use aigateway_api::policy::PolicyTargetReference;
//! use litellm_impl::policy::{LiteLlmModelPolicy, LiteLlmModelPolicySpec};
//!
//! let mut policy = LiteLlmModelPolicy::new("azure-gpt", LiteLlmModelPolicySpec {
//!     target_refs: vec![PolicyTargetReference {
//!         section_name: Some("gpt-4o".into()),
//!         ..PolicyTargetReference::new("runtime.agentic-layer.ai", "AiGateway", "ai-gateway")
//!     }],
//!     api_base: Some("https://team-a.openai.azure.com".into()),
//!     api_version: Some("2024-10-21".into()),
//!     timeout_seconds: Some(30),
//!     ..Default::default()
//! });
//! policy.metadata.namespace = Some("team-a".into());
//! assert_eq!(litellm_impl::policy::crds()[0].spec.group, "litellm.aigateway.agentic-layer.ai");
//! ```

use std::collections::BTreeMap;

use aigateway_api::AiGateway;
use aigateway_api::policy::{
    DIRECT, POLICY_LABEL, PolicyStatus, PolicyTargetReference, TargetedPolicy,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{CustomResource, CustomResourceExt, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config;

mod availability;
mod observability;
mod routing;
mod tool_route;

pub use availability::{
    Autoscaling, AvailabilitySettings, CpuMemory, DisruptionBudget, LiteLlmAvailabilityPolicy,
    LiteLlmAvailabilityPolicySpec, MAX_REPLICAS, Resources, Rollout, check_availability,
};
pub use observability::{
    HEADERS_KEY, LiteLlmObservabilityPolicy, LiteLlmObservabilityPolicySpec, MAX_MONITOR_LABELS,
    MAX_SERVICE_NAME_BYTES, MonitorKind, Monitoring, ObservabilitySettings, Tracing,
    TracingSettings, check_observability,
};

pub use routing::{
    Fallback, LiteLlmRoutingPolicy, LiteLlmRoutingPolicySpec, MAX_ALLOWED_FAILS,
    MAX_FALLBACK_TARGETS, MAX_FALLBACKS, MAX_RETRIES, REDIS_HOST_KEY, REDIS_PASSWORD_KEY,
    REDIS_PORT_KEY, RedisReference, RoutingSettings, SharedLimits, check_routing,
};
pub use tool_route::{
    DEFAULT_HEADER, LITELLM_MCP_HEADER_PREFIX, LiteLlmToolRoutePolicy, LiteLlmToolRoutePolicySpec,
    MAX_CLIENT_ID_BYTES, MAX_CREDENTIAL_BYTES, MAX_HEADER_NAME_BYTES, MAX_SCOPE_BYTES, MAX_SCOPES,
    OAuth2ClientCredentials, RESERVED_HEADERS, RouteAuth, RouteSecretKey, ToolRouteSettings,
    UpstreamAuth, UpstreamHeader, check_tool_route, names_route, refuse_credential,
};

/// The API group of the LiteLLM implementation's policy kinds.
pub const GROUP: &str = "litellm.aigateway.agentic-layer.ai";
/// The longest `apiBase` accepted, in bytes.
pub const MAX_API_BASE_BYTES: usize = 2048;
/// The longest `apiVersion` accepted, in bytes.
pub const MAX_API_VERSION_BYTES: usize = 64;
/// The longest request timeout a policy may set, in seconds.
pub const MAX_TIMEOUT_SECONDS: u32 = 3600;

/// A Secret key in the policy's own namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct SecretKeyReference {
    /// The Secret's name, in the policy's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key in the Secret whose value is the model's API key.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// How LiteLLM reaches one model (or every model) of an AiGateway.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "litellm.aigateway.agentic-layer.ai",
    version = "v1alpha1",
    kind = "LiteLLMModelPolicy",
    root = "LiteLlmModelPolicy",
    plural = "litellmmodelpolicies",
    shortname = "llmmodelpolicy",
    namespaced,
    status = "PolicyStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct LiteLlmModelPolicySpec {
    /// The AiGateways configured, in the policy's namespace: a whole gateway (every
    /// model), or one model with `sectionName` set to the model's name. A policy on a
    /// model replaces a gateway-wide one for that model.
    #[schemars(length(min = 1, max = 16))]
    pub target_refs: Vec<PolicyTargetReference>,
    /// The model's endpoint (`litellm_params.api_base`): an `http` or `https` URL, such as
    /// an Azure OpenAI resource or an in-cluster vLLM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub api_base: Option<String>,
    /// The provider's API version (`litellm_params.api_version`, e.g. Azure's
    /// `2024-10-21`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub api_version: Option<String>,
    /// The model's own API key, from a Secret of the policy's namespace, instead of the
    /// provider's key in `api-key-secrets`. The value reaches the proxy as an environment
    /// variable, never the ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<SecretKeyReference>,
    /// Seconds before a request to the model fails (`litellm_params.timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub timeout_seconds: Option<u32>,
    /// At most this many requests to the model at once, per proxy replica
    /// (`litellm_params.max_parallel_requests`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub max_parallel_requests: Option<u32>,
    /// Requests per minute the model's deployment allows (`litellm_params.rpm`), used by
    /// LiteLLM's router; per replica unless limits are shared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub rpm: Option<u32>,
    /// Tokens per minute the model's deployment allows (`litellm_params.tpm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub tpm: Option<u64>,
}

impl TargetedPolicy for LiteLlmModelPolicy {
    fn target_refs(&self) -> &[PolicyTargetReference] {
        &self.spec.target_refs
    }
}

/// The CRDs of the LiteLLM implementation's policy kinds (the four that configure
/// AiGateways, then the one that configures ToolRoutes), labelled for Gateway API tools
/// as direct policy attachment.
pub fn crds() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![
        LiteLlmModelPolicy::crd(),
        LiteLlmRoutingPolicy::crd(),
        LiteLlmObservabilityPolicy::crd(),
        LiteLlmAvailabilityPolicy::crd(),
        LiteLlmToolRoutePolicy::crd(),
    ];
    for crd in &mut crds {
        crd.metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POLICY_LABEL.to_owned(), DIRECT.to_owned());
    }
    crds
}

/// The references of `refs` that name `gateway`. A reference with a `namespace` other
/// than the gateway's names nothing here: the runtime refuses it in the policy's status,
/// and it must not apply a section to a gateway of the same name.
fn naming<'r>(
    refs: &'r [PolicyTargetReference],
    gateway: &AiGateway,
) -> impl Iterator<Item = &'r PolicyTargetReference> {
    let namespace = gateway.namespace();
    let name = gateway.name_any();
    refs.iter().filter(move |r| {
        r.group == AiGateway::group(&())
            && r.kind == AiGateway::kind(&())
            && r.name == name
            && (r.namespace.as_ref()).is_none_or(|ns| Some(ns) == namespace.as_ref())
    })
}

/// Refuses a policy of `kind` (configuring whole gateways) whose reference to `gateway`
/// names a section.
fn whole_gateway_only(
    kind: &str,
    refs: &[PolicyTargetReference],
    gateway: &AiGateway,
) -> Result<(), PolicyRefusal> {
    if naming(refs, gateway).any(|r| r.section_name.is_some()) {
        return Err(PolicyRefusal::Invalid(format!(
            "a {kind} policy configures a whole gateway: remove sectionName from its targetRefs"
        )));
    }
    Ok(())
}

/// Whether `url` is an `http(s)` URL with a host that LiteLLM uses as written: bounded,
/// no whitespace, no `os.environ/` or secret-manager reference. The error names `field`.
fn check_http_url(field: &str, url: &str) -> Result<(), String> {
    if url.len() > MAX_API_BASE_BYTES {
        return Err(format!("{field} is longer than {MAX_API_BASE_BYTES} bytes"));
    }
    if let Some(why) = config::refuse_reference(url) {
        return Err(format!("{field} {why}"));
    }
    let host = (url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://")))
    .unwrap_or_default();
    if host.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{field} must be an http:// or https:// URL with a host and no spaces"
        ));
    }
    Ok(())
}

/// Whether `name` can be a Secret's name (a lowercase DNS subdomain).
fn check_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && (name.chars())
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'))
}

/// What a valid policy sets on a model, checked.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ModelSettings {
    /// `api_base`.
    pub api_base: Option<String>,
    /// `api_version`.
    pub api_version: Option<String>,
    /// The Secret key of the model's own API key.
    pub credentials: Option<SecretKeyReference>,
    /// `timeout`, in seconds.
    pub timeout_seconds: Option<u32>,
    /// `max_parallel_requests`.
    pub max_parallel_requests: Option<u32>,
    /// `rpm`.
    pub rpm: Option<u32>,
    /// `tpm`.
    pub tpm: Option<u64>,
}

/// Why a policy cannot be applied to a gateway.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyRefusal {
    /// A value is not allowed (the message says which and why).
    #[error("{0}")]
    Invalid(String),
    /// `sectionName` names a model the gateway does not have.
    #[error(
        "the gateway has no model {model:?}: name one of its models in sectionName, or leave it unset for every model"
    )]
    NoSuchModel {
        /// The model named.
        model: String,
    },
}

/// Which of `gateway`'s models `policy` configures (`None`: every model), and what it
/// sets; or why it cannot be applied. Strings that LiteLLM interprets are checked like
/// the rest of the config: no `os.environ/` or secret-manager reference, URLs `http(s)`
/// only, bounded sizes. Nothing is looked up.
pub fn check(
    policy: &LiteLlmModelPolicy,
    gateway: &AiGateway,
) -> Result<(Option<Vec<String>>, ModelSettings), PolicyRefusal> {
    let spec = &policy.spec;
    let invalid = |message: String| Err(PolicyRefusal::Invalid(message));
    if policy.namespace() != gateway.namespace() {
        return invalid("a policy configures gateways in its own namespace only".to_owned());
    }
    if let Some(base) = &spec.api_base {
        check_http_url("apiBase", base).map_err(PolicyRefusal::Invalid)?;
    }
    if let Some(version) = &spec.api_version {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if version.is_empty()
            || version.len() > MAX_API_VERSION_BYTES
            || !version.chars().all(allowed)
        {
            return invalid(format!(
                "apiVersion must be 1 to {MAX_API_VERSION_BYTES} letters, digits, '-', '_' or '.'"
            ));
        }
    }
    if spec.api_base.is_some() && spec.credentials.is_none() {
        // The model would keep the provider key of `api-key-secrets`, and send it to an
        // endpoint the policy's author chose.
        return invalid("apiBase needs credentials: without them the provider key from api-key-secrets would be sent to that endpoint; name a Secret key of this namespace (any value for an endpoint that needs none)".to_owned());
    }
    if let Some(credentials) = &spec.credentials {
        let key_ok = !credentials.key.is_empty()
            && credentials.key.len() <= 253
            && (credentials.key.chars())
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !check_secret_name(&credentials.name) || !key_ok {
            return invalid("credentials must name a Secret (a lowercase DNS name) and a key (letters, digits, '-', '_', '.')".to_owned());
        }
    }
    if spec
        .timeout_seconds
        .is_some_and(|t| !(1..=MAX_TIMEOUT_SECONDS).contains(&t))
    {
        return invalid(format!("timeoutSeconds must be 1 to {MAX_TIMEOUT_SECONDS}"));
    }
    if spec.max_parallel_requests == Some(0) || spec.rpm == Some(0) || spec.tpm == Some(0) {
        return invalid("maxParallelRequests, rpm and tpm must be at least 1 when set".to_owned());
    }
    let mut models: Vec<String> = Vec::new();
    let mut whole = false;
    for reference in naming(&spec.target_refs, gateway) {
        match &reference.section_name {
            None => whole = true,
            Some(model) if gateway.spec.ai_models.iter().any(|m| &m.name == model) => {
                models.push(model.clone())
            }
            Some(model) => {
                return Err(PolicyRefusal::NoSuchModel {
                    model: model.clone(),
                });
            }
        }
    }
    let settings = ModelSettings {
        api_base: spec.api_base.clone(),
        api_version: spec.api_version.clone(),
        credentials: spec.credentials.clone(),
        timeout_seconds: spec.timeout_seconds,
        max_parallel_requests: spec.max_parallel_requests,
        rpm: spec.rpm,
        tpm: spec.tpm,
    };
    Ok(((!whole).then_some(models), settings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aigateway_api::{AiGatewaySpec, AiModel};

    fn gateway() -> AiGateway {
        let mut gateway = AiGateway::new(
            "gw",
            AiGatewaySpec {
                ai_models: vec![AiModel::new("openai", "gpt"), AiModel::new("azure", "big")],
                ..Default::default()
            },
        );
        gateway.metadata.namespace = Some("team".into());
        gateway
    }

    fn policy(section: Option<&str>, spec: LiteLlmModelPolicySpec) -> LiteLlmModelPolicy {
        let mut reference =
            PolicyTargetReference::new("runtime.agentic-layer.ai", "AiGateway", "gw");
        reference.section_name = section.map(Into::into);
        let mut policy = LiteLlmModelPolicy::new(
            "p",
            LiteLlmModelPolicySpec {
                target_refs: vec![reference],
                ..spec
            },
        );
        policy.metadata.namespace = Some("team".into());
        policy
    }

    #[test]
    fn a_policy_configures_the_whole_gateway_or_the_models_it_names() {
        let (models, _) = check(&policy(None, Default::default()), &gateway()).unwrap();
        assert_eq!(models, None);
        let (models, _) = check(&policy(Some("big"), Default::default()), &gateway()).unwrap();
        assert_eq!(models, Some(vec!["big".to_owned()]));
        assert_eq!(
            check(&policy(Some("nope"), Default::default()), &gateway()),
            Err(PolicyRefusal::NoSuchModel {
                model: "nope".into()
            })
        );
    }

    #[test]
    fn hostile_values_are_refused_with_what_is_wrong() {
        let refused = |spec: LiteLlmModelPolicySpec| match check(&policy(None, spec), &gateway()) {
            Err(PolicyRefusal::Invalid(message)) => message,
            other => panic!("not refused: {other:?}"),
        };
        let base = |b: &str| LiteLlmModelPolicySpec {
            api_base: Some(b.into()),
            ..Default::default()
        };
        assert!(refused(base("os.environ/SECRET")).contains("apiBase"));
        assert!(refused(base("file:///etc/passwd")).contains("http:// or https://"));
        assert!(refused(base("https://")).contains("with a host"));
        assert!(refused(base("https://a b")).contains("no spaces"));
        assert!(refused(base(&format!("https://{}", "a".repeat(3000)))).contains("longer than"));
        let version = LiteLlmModelPolicySpec {
            api_version: Some("os.environ/X".into()),
            ..Default::default()
        };
        assert!(refused(version).contains("apiVersion"));
        let credentials = LiteLlmModelPolicySpec {
            credentials: Some(SecretKeyReference {
                name: "../etc".into(),
                key: "k".into(),
            }),
            ..Default::default()
        };
        assert!(refused(credentials).contains("credentials"));
        let timeout = LiteLlmModelPolicySpec {
            timeout_seconds: Some(0),
            ..Default::default()
        };
        assert!(refused(timeout).contains("timeoutSeconds"));
        let rpm = LiteLlmModelPolicySpec {
            rpm: Some(0),
            ..Default::default()
        };
        assert!(refused(rpm).contains("at least 1"));
        assert!(
            refused(base("http://vllm.models.svc:8000/v1")).contains("apiBase needs credentials")
        );
        let ok = LiteLlmModelPolicySpec {
            credentials: Some(SecretKeyReference {
                name: "vllm-key".into(),
                key: "key".into(),
            }),
            ..base("http://vllm.models.svc:8000/v1")
        };
        assert!(check(&policy(None, ok), &gateway()).is_ok());
    }

    #[test]
    fn a_reference_to_another_namespace_applies_nothing_here() {
        let mut foreign = PolicyTargetReference::new("runtime.agentic-layer.ai", "AiGateway", "gw");
        foreign.namespace = Some("other".into());
        foreign.section_name = Some("big".into());
        let mut mixed = policy(Some("gpt"), Default::default());
        mixed.spec.target_refs.push(foreign);
        let (models, _) = check(&mixed, &gateway()).unwrap();
        assert_eq!(
            models,
            Some(vec!["gpt".to_owned()]),
            "other/gw's section is not ours"
        );
    }

    #[test]
    fn a_policy_of_another_namespace_is_refused() {
        let mut foreign = policy(None, Default::default());
        foreign.metadata.namespace = Some("other".into());
        assert!(matches!(
            check(&foreign, &gateway()),
            Err(PolicyRefusal::Invalid(_))
        ));
    }

    #[test]
    fn the_crd_is_labelled_as_a_direct_policy() {
        let crd = &crds()[0];
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("litellmmodelpolicies.litellm.aigateway.agentic-layer.ai")
        );
        assert_eq!(
            crd.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(POLICY_LABEL))
                .map(String::as_str),
            Some(DIRECT)
        );
        assert!(
            crd.spec.versions[0]
                .subresources
                .as_ref()
                .is_some_and(|s| s.status.is_some())
        );
    }
}
