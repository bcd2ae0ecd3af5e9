//! [`LiteLlmObservabilityPolicy`]: where a whole AiGateway sends its traces, under which
//! service name, and whether prompts and responses may appear in them.

use std::collections::BTreeMap;

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
    /// Prometheus scrapes of the gateway's `/metrics`, through prometheus-operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<Monitoring>,
}

/// A prometheus-operator `ServiceMonitor` for the gateway's Service, or a `PodMonitor`
/// for its pods, made when the `monitoring.coreos.com` CRD of that kind is installed
/// (the policy's status says so otherwise).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Monitoring {
    /// Which monitor: `ServiceMonitor` (the default) scrapes through the gateway's
    /// Service; `PodMonitor` scrapes its pods directly, for a Prometheus that selects
    /// PodMonitors only.
    #[serde(default)]
    pub kind: MonitorKind,
    /// How often Prometheus scrapes, such as `30s` or `1m` (Prometheus' default when
    /// unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 6))]
    pub interval: Option<String>,
    /// Labels on the monitor, for a Prometheus that selects monitors by label (e.g.
    /// `release: prometheus`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// The prometheus-operator kind a [`Monitoring`] makes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum MonitorKind {
    /// `monitoring.coreos.com/v1` `ServiceMonitor`, selecting the gateway's Service.
    #[default]
    ServiceMonitor,
    /// `monitoring.coreos.com/v1` `PodMonitor`, selecting the gateway's pods.
    PodMonitor,
}

impl MonitorKind {
    /// The kind as the API server names it.
    pub fn kind(self) -> &'static str {
        match self {
            Self::ServiceMonitor => "ServiceMonitor",
            Self::PodMonitor => "PodMonitor",
        }
    }

    /// The kind's API resource.
    pub fn resource(self) -> kube::api::ApiResource {
        let plural = match self {
            Self::ServiceMonitor => "servicemonitors",
            Self::PodMonitor => "podmonitors",
        };
        let gvk = kube::api::GroupVersionKind::gvk("monitoring.coreos.com", "v1", self.kind());
        kube::api::ApiResource::from_gvk_with_plural(&gvk, plural)
    }
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
    /// The monitor asked for, if any.
    pub monitoring: Option<Monitoring>,
}

/// The most labels a monitor may get from a policy.
pub const MAX_MONITOR_LABELS: usize = 16;

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
    if let Some(monitoring) = &spec.monitoring {
        check_monitoring(monitoring)?;
    }
    let Some(tracing) = &spec.tracing else {
        return Ok(ObservabilitySettings {
            tracing: None,
            monitoring: spec.monitoring.clone(),
        });
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
        monitoring: spec.monitoring.clone(),
    })
}

/// A scrape interval Prometheus reads (`30s`, `1m`: 1 to 9999 seconds or minutes), and
/// labels the API server accepts.
fn check_monitoring(monitoring: &Monitoring) -> Result<(), PolicyRefusal> {
    let invalid = |message: String| Err(PolicyRefusal::Invalid(message));
    if let Some(interval) = &monitoring.interval {
        let number = interval.strip_suffix(['s', 'm']).unwrap_or_default();
        let ok = (1..=4).contains(&number.len())
            && number.chars().all(|c| c.is_ascii_digit())
            && !number.starts_with('0');
        if !ok {
            return invalid(format!(
                "monitoring.interval {:?} is not a duration such as 30s or 1m",
                interval.escape_debug().to_string()
            ));
        }
    }
    if monitoring.labels.len() > MAX_MONITOR_LABELS {
        return invalid(format!(
            "monitoring.labels has more than {MAX_MONITOR_LABELS} labels"
        ));
    }
    for (key, value) in &monitoring.labels {
        // The operator's own labels say which gateway and controller a child belongs to.
        if key == crate::names::APP_LABEL || key.contains("agentic-layer.ai/") {
            return invalid(format!(
                "monitoring.labels: {:?} is a label the operator sets itself",
                key.escape_debug().to_string()
            ));
        }
        if crate::names::check_qualified_name(key).is_err()
            || crate::names::check_label_value(value).is_err()
        {
            return invalid(format!(
                "monitoring.labels: {:?}: {:?} is not a Kubernetes label",
                key.escape_debug().to_string(),
                value.escape_debug().to_string()
            ));
        }
    }
    Ok(())
}
