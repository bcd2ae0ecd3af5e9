//! The namespaced `AgentGateway` resource and the cluster-scoped `AgentGatewayClass`:
//! a gateway in front of agents.

use k8s_openapi::api::core::v1::{EnvFromSource, EnvVar, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::class::{CONTROLLER_NAME_PATTERN, has_default_annotation};
use crate::gateway::EmbeddedMetadata;

/// Annotation marking an `AgentGatewayClass` as the default for AgentGateways without
/// `agentGatewayClassName` (value `"true"`), as agent-runtime-operator spells it.
pub const DEFAULT_AGENT_GATEWAY_CLASS_ANNOTATION: &str =
    "agentgatewayclass.kubernetes.io/is-default-class";
/// Replicas of an agent gateway when `spec.replicas` is unset (the CRD's default).
pub const DEFAULT_AGENT_GATEWAY_REPLICAS: i32 = 1;
/// Request timeout of an agent gateway when `spec.timeout` is unset (the CRD's default).
pub const DEFAULT_AGENT_GATEWAY_TIMEOUT: &str = "360s";

/// Desired state of an agent gateway.
///
/// Field names, optionality, defaults and validation match agent-runtime-operator's
/// `AgentGatewaySpec`; unset optional fields are omitted when serialised.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "runtime.agentic-layer.ai",
    version = "v1alpha1",
    kind = "AgentGateway",
    plural = "agentgateways",
    singular = "agentgateway",
    namespaced,
    status = "AgentGatewayStatus",
    doc = "AgentGateway is the Schema for the agentgateways API.",
    printcolumn = r#"{"name": "Class", "type": "string", "jsonPath": ".spec.agentGatewayClassName"}"#,
    printcolumn = r#"{"name": "Programmed", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Programmed\")].status"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[schemars(description = "AgentGatewaySpec defines the desired state of AgentGateway.")]
#[serde(rename_all = "camelCase", remote = "Self")]
pub struct AgentGatewaySpec {
    /// The AgentGatewayClass that implements this gateway. Unset or empty: the class
    /// annotated as the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_gateway_class_name: Option<String>,

    /// Number of gateway replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1), extend("default" = 1))]
    pub replicas: Option<i32>,

    /// Request timeout of the gateway, a Go duration such as `360s` or `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "360s"))]
    pub timeout: Option<String>,

    /// Environment variables for the gateway container (settings, credentials, flags).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::env_vars")]
    pub env: Vec<EnvVar>,

    /// Sources (ConfigMaps, Secrets) whose keys become environment variables of the
    /// gateway container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::env_from_sources")]
    pub env_from: Vec<EnvFromSource>,

    /// The Guards applied to traffic through this gateway, in this order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::object_references")]
    pub guardrails: Vec<ObjectReference>,

    /// Labels and annotations for the Deployment, the Service and the pod template
    /// created for this gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_metadata: Option<EmbeddedMetadata>,

    /// Labels and annotations for the pod template only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_metadata: Option<EmbeddedMetadata>,
}

crate::tolerant::tolerant_spec!(AgentGatewaySpec);

impl AgentGatewaySpec {
    /// The class name, treating an empty string like an absent one (both mean "the
    /// default class").
    pub fn class_name(&self) -> Option<&str> {
        self.agent_gateway_class_name
            .as_deref()
            .filter(|name| !name.is_empty())
    }

    /// `spec.replicas`, or [`DEFAULT_AGENT_GATEWAY_REPLICAS`] when unset.
    pub fn replicas(&self) -> i32 {
        self.replicas.unwrap_or(DEFAULT_AGENT_GATEWAY_REPLICAS)
    }

    /// `spec.timeout`, or [`DEFAULT_AGENT_GATEWAY_TIMEOUT`] when unset.
    pub fn timeout(&self) -> &str {
        self.timeout
            .as_deref()
            .unwrap_or(DEFAULT_AGENT_GATEWAY_TIMEOUT)
    }
}

/// Observed state of an agent gateway.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[schemars(description = "AgentGatewayStatus defines the observed state of AgentGateway.")]
pub struct AgentGatewayStatus {
    /// Conditions describe the gateway's state: `Accepted`, `ResolvedRefs`, `Programmed`
    /// and `Ready`, plus conditions that other controllers own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,
}

/// Desired state of an agent gateway class: which controller implements it.
#[derive(
    CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema,
)]
#[kube(
    group = "runtime.agentic-layer.ai",
    version = "v1alpha1",
    kind = "AgentGatewayClass",
    plural = "agentgatewayclasses",
    singular = "agentgatewayclass",
    status = "AgentGatewayClassStatus",
    doc = "AgentGatewayClass is the Schema for the agentgatewayclasses API.",
    printcolumn = r#"{"name": "Controller", "type": "string", "jsonPath": ".spec.controller"}"#,
    printcolumn = r#"{"name": "Accepted", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Accepted\")].status"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[schemars(description = "AgentGatewayClassSpec defines the desired state of AgentGatewayClass.")]
#[serde(remote = "Self")]
pub struct AgentGatewayClassSpec {
    /// The controller that implements this class, a domain-prefixed path such as
    /// `example.com/agent-gateway-controller`.
    #[schemars(length(min = 1, max = 253), regex(pattern = CONTROLLER_NAME_PATTERN))]
    pub controller: String,
}

crate::tolerant::tolerant_spec!(AgentGatewayClassSpec);

/// Observed state of an agent gateway class.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[schemars(
    description = "AgentGatewayClassStatus defines the observed state of AgentGatewayClass."
)]
pub struct AgentGatewayClassStatus {
    /// Conditions of the class; the implementing controller sets `Accepted`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,
}

impl AgentGatewayClass {
    /// Whether this class carries [`DEFAULT_AGENT_GATEWAY_CLASS_ANNOTATION`] with value
    /// `"true"`.
    pub fn is_default(&self) -> bool {
        has_default_annotation(&self.metadata, DEFAULT_AGENT_GATEWAY_CLASS_ANNOTATION)
    }
}
