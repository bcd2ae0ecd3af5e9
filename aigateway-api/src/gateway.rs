//! The namespaced `AiGateway` resource.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvFromSource, EnvVar, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The port a gateway listens on when `spec.port` is unset (the CRD's default).
pub const DEFAULT_PORT: i32 = 80;

/// Desired state of an AI gateway: the models it serves, how it is reached and which
/// guardrails apply.
///
/// Field names, optionality and validation match agent-runtime-operator's
/// `AiGatewaySpec`; unset optional fields are omitted when serialised.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "runtime.agentic-layer.ai",
    version = "v1alpha1",
    kind = "AiGateway",
    plural = "aigateways",
    singular = "aigateway",
    shortname = "aigw",
    namespaced,
    status = "AiGatewayStatus",
    doc = "AiGateway is the Schema for the aigateways API.",
    printcolumn = r#"{"name": "Class", "type": "string", "jsonPath": ".spec.aiGatewayClassName"}"#,
    printcolumn = r#"{"name": "Port", "type": "integer", "jsonPath": ".spec.port"}"#,
    printcolumn = r#"{"name": "Programmed", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Programmed\")].status"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[schemars(description = "AiGatewaySpec defines the desired state of AiGateway.")]
#[serde(rename_all = "camelCase", remote = "Self")]
pub struct AiGatewaySpec {
    /// AiGatewayClassName specifies which AiGatewayClass to use for this AI gateway instance.
    /// This is only needed if multiple AI gateway classes are defined in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ai_gateway_class_name: Option<String>,

    /// Port on which the AI gateway will be exposed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535), extend("default" = 80))]
    pub port: Option<i32>,

    /// List of AI models to be made available through the gateway.
    #[schemars(length(min = 1))]
    pub ai_models: Vec<AiModel>,

    /// Environment variables to pass to the AI gateway container.
    /// These can include configuration values, credentials, or feature flags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::env_vars")]
    pub env: Vec<EnvVar>,

    /// List of sources to populate environment variables in the AI gateway container.
    /// This allows loading variables from ConfigMaps and Secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::env_from_sources")]
    pub env_from: Vec<EnvFromSource>,

    /// Guardrails lists the Guard resources to be applied to requests through this AI gateway.
    /// Guards are applied in the order they are listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::object_references")]
    pub guardrails: Vec<ObjectReference>,

    /// CommonMetadata defines labels and annotations to be applied to the Deployment and Service
    /// resources created for this gateway, as well as the pod template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_metadata: Option<EmbeddedMetadata>,

    /// PodMetadata defines labels and annotations to be applied only to the pod template
    /// of the Deployment created for this gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_metadata: Option<EmbeddedMetadata>,
}

crate::tolerant::tolerant_spec!(AiGatewaySpec);

impl AiGatewaySpec {
    /// The port the gateway listens on: `spec.port`, or [`DEFAULT_PORT`] when unset.
    pub fn port(&self) -> i32 {
        self.port.unwrap_or(DEFAULT_PORT)
    }

    /// The class name, treating an empty string like an absent one (both mean "the
    /// default class").
    pub fn class_name(&self) -> Option<&str> {
        self.ai_gateway_class_name
            .as_deref()
            .filter(|name| !name.is_empty())
    }
}

/// One model served by a gateway.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[schemars(description = "AiModel defines a model made available through the gateway.")]
pub struct AiModel {
    /// Name is the model identifier at the provider (e.g. "gpt-4", "claude-3-opus").
    #[schemars(length(min = 1))]
    pub name: String,
    /// Provider is the model provider (e.g. "openai", "anthropic", "azure").
    #[schemars(length(min = 1))]
    pub provider: String,
}

impl AiModel {
    /// A model `name` served by `provider`.
    pub fn new(provider: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            provider: provider.into(),
        }
    }
}

/// Labels and annotations that a gateway's generated objects carry.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[schemars(description = "EmbeddedMetadata holds labels and annotations for generated resources.")]
pub struct EmbeddedMetadata {
    /// Labels to add to the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations to add to the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Observed state of an AI gateway.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[schemars(description = "AiGatewayStatus defines the observed state of AiGateway.")]
pub struct AiGatewayStatus {
    /// Conditions describe the gateway's state: `Accepted`, `ResolvedRefs`, `Programmed`
    /// and `Ready`, plus conditions that other controllers own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,

    /// URL is the cluster-local address agents use to reach this gateway. An addition
    /// of this project; upstream's CRD has no such field and prunes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}
