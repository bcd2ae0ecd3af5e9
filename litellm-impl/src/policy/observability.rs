//! [`LiteLlmObservabilityPolicy`]: where a whole AiGateway sends its traces, under which
//! service name, and whether prompts and responses may appear in them.

use aigateway_api::AiGateway;
use aigateway_api::policy::{PolicyStatus, PolicyTargetReference, TargetedPolicy};
use kube::{CustomResource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{PolicyRefusal, check_http_url, check_secret_name, whole_gateway_only};

/// The longest service name accepted, in bytes.
pub const MAX_SERVICE_NAME_BYTES: usize = 253;
/// The key of the headers Secret whose value is the exporter's headers, as
/// `OTEL_EXPORTER_OTLP_HEADERS` reads them (`key=value,key2=value2`).
pub const HEADERS_KEY: &str = "headers";

/// Where an AiGateway's telemetry goes.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "litellm.aigateway.agentic-layer.ai",
    version = "v1alpha1",
    kind = "LiteLLMObservabilityPolicy",
    root = "LiteLlmObservabilityPolicy",
    plural = "litellmobservabilitypolicies",
    shortname = "llmobservabilitypolicy",
    namespaced,
    status = "PolicyStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct LiteLlmObservabilityPolicySpec {
    /// The AiGateways observed, in the policy's namespace; whole gateways only (no
    /// `sectionName`).
    #[schemars(length(min = 1, max = 16))]
    pub target_refs: Vec<PolicyTargetReference>,
    /// OpenTelemetry traces of every request, exported over OTLP/HTTP (protobuf).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<Tracing>,
}

/// An OTLP/HTTP trace exporter.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tracing {
    /// The collector's base URL (`/v1/traces` is appended), `http` or `https`, e.g.
    /// `http://otel-collector.observability:4318`.
    #[schemars(length(min = 1, max = 2048))]
    pub endpoint: String,
    /// The traces' `service.name`; the gateway's name when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub service_name: Option<String>,
    /// A Secret of the policy's namespace whose key `headers` holds the headers sent
    /// with every export (`Authorization=Bearer ...,X-Tenant=a`): a collector's
    /// credentials never reach the ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub headers_secret_name: Option<String>,
    /// Put prompts and responses in the spans. Off unless set: a trace backend is
    /// rarely cleared to hold what users type.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub log_content: bool,
}

impl TargetedPolicy for LiteLlmObservabilityPolicy {
    fn target_refs(&self) -> &[PolicyTargetReference] {
        &self.spec.target_refs
    }
}

/// What a valid observability policy sets, checked.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ObservabilitySettings {
    /// The trace exporter, if any.
    pub tracing: Option<TracingSettings>,
}

/// A checked [`Tracing`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TracingSettings {
    /// The collector's base URL.
    pub endpoint: String,
    /// `service.name`: the policy's, else the gateway's name.
    pub service_name: String,
    /// The Secret with the exporter's headers.
    pub headers_secret: Option<String>,
    /// Whether prompts and responses reach the spans.
    pub log_content: bool,
}

/// What `policy` sets on `gateway`, or why it cannot be applied. Nothing is looked up.
pub fn check_observability(
    policy: &LiteLlmObservabilityPolicy,
    gateway: &AiGateway,
) -> Result<ObservabilitySettings, PolicyRefusal> {
    let spec = &policy.spec;
    let invalid = |message: String| Err(PolicyRefusal::Invalid(message));
    if policy.namespace() != gateway.namespace() {
        return invalid("a policy configures gateways in its own namespace only".to_owned());
    }
    whole_gateway_only("observability", &spec.target_refs, gateway)?;
    let Some(tracing) = &spec.tracing else {
        return Ok(ObservabilitySettings::default());
    };
    check_http_url("tracing.endpoint", &tracing.endpoint).map_err(PolicyRefusal::Invalid)?;
    if let Some(name) = &tracing.service_name {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/');
        if name.is_empty() || name.len() > MAX_SERVICE_NAME_BYTES || !name.chars().all(allowed) {
            return invalid(format!(
                "tracing.serviceName must be 1 to {MAX_SERVICE_NAME_BYTES} letters, digits, '-', '_', '.' or '/'"
            ));
        }
    }
    if let Some(secret) = &tracing.headers_secret_name
        && !check_secret_name(secret)
    {
        return invalid(
            "tracing.headersSecretName must name a Secret (a lowercase DNS name)".to_owned(),
        );
    }
    Ok(ObservabilitySettings {
        tracing: Some(TracingSettings {
            endpoint: tracing.endpoint.clone(),
            service_name: (tracing.service_name.clone()).unwrap_or_else(|| gateway.name_any()),
            headers_secret: tracing.headers_secret_name.clone(),
            log_content: tracing.log_content,
        }),
    })
}
