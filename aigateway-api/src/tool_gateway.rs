//! The namespaced `ToolGateway` resource and the cluster-scoped `ToolGatewayClass`:
//! a gateway that exposes MCP tools to agents, one route per [`ToolRoute`](crate::ToolRoute).

use k8s_openapi::api::core::v1::{EnvFromSource, EnvVar, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::class::{CONTROLLER_NAME_PATTERN, has_default_annotation};
use crate::gateway::EmbeddedMetadata;

/// Annotation marking a `ToolGatewayClass` as the default for ToolGateways without
/// `toolGatewayClassName` (value `"true"`), as agent-runtime-operator spells it.
pub const DEFAULT_TOOL_GATEWAY_CLASS_ANNOTATION: &str =
    "toolgatewayclass.kubernetes.io/is-default-class";

/// Desired state of a tool gateway: the proxy that serves the MCP servers of the
/// ToolRoutes attached to it.
///
/// Field names, optionality and validation match agent-runtime-operator's
/// `ToolGatewaySpec`; unset optional fields are omitted when serialised.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "runtime.agentic-layer.ai",
    version = "v1alpha1",
    kind = "ToolGateway",
    plural = "toolgateways",
    singular = "toolgateway",
    namespaced,
    status = "ToolGatewayStatus",
    doc = "ToolGateway is the Schema for the toolgateways API.",
    printcolumn = r#"{"name": "Class", "type": "string", "jsonPath": ".spec.toolGatewayClassName"}"#,
    printcolumn = r#"{"name": "URL", "type": "string", "jsonPath": ".status.url"}"#,
    printcolumn = r#"{"name": "Programmed", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Programmed\")].status"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[schemars(description = "ToolGatewaySpec defines the desired state of ToolGateway.")]
#[serde(rename_all = "camelCase", remote = "Self")]
pub struct ToolGatewaySpec {
    /// The ToolGatewayClass that implements this gateway. Unset or empty: the class
    /// annotated as the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_gateway_class_name: Option<String>,

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

crate::tolerant::tolerant_spec!(ToolGatewaySpec);

impl ToolGatewaySpec {
    /// The class name, treating an empty string like an absent one (both mean "the
    /// default class").
    pub fn class_name(&self) -> Option<&str> {
        self.tool_gateway_class_name
            .as_deref()
            .filter(|name| !name.is_empty())
    }
}

/// Observed state of a tool gateway.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[schemars(description = "ToolGatewayStatus defines the observed state of ToolGateway.")]
pub struct ToolGatewayStatus {
    /// Conditions describe the gateway's state: `Accepted`, `ResolvedRefs`, `Programmed`
    /// and `Ready`, plus conditions that other controllers own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,

    /// The cluster-local address of this gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Desired state of a tool gateway class: which controller implements it.
#[derive(
    CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema,
)]
#[kube(
    group = "runtime.agentic-layer.ai",
    version = "v1alpha1",
    kind = "ToolGatewayClass",
    plural = "toolgatewayclasses",
    singular = "toolgatewayclass",
    status = "ToolGatewayClassStatus",
    doc = "ToolGatewayClass is the Schema for the toolgatewayclasses API.",
    printcolumn = r#"{"name": "Controller", "type": "string", "jsonPath": ".spec.controller"}"#,
    printcolumn = r#"{"name": "Accepted", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Accepted\")].status"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[schemars(description = "ToolGatewayClassSpec defines the desired state of ToolGatewayClass.")]
#[serde(remote = "Self")]
pub struct ToolGatewayClassSpec {
    /// The controller that implements this class, a domain-prefixed path such as
    /// `litellm.agentic-layer.ai/tool-gateway-litellm-controller`.
    #[schemars(length(min = 1, max = 253), regex(pattern = CONTROLLER_NAME_PATTERN))]
    pub controller: String,
}

crate::tolerant::tolerant_spec!(ToolGatewayClassSpec);

/// Observed state of a tool gateway class.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[schemars(description = "ToolGatewayClassStatus defines the observed state of ToolGatewayClass.")]
pub struct ToolGatewayClassStatus {
    /// Conditions of the class; the implementing controller sets `Accepted`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,
}

impl ToolGatewayClass {
    /// Whether this class carries [`DEFAULT_TOOL_GATEWAY_CLASS_ANNOTATION`] with value
    /// `"true"`.
    pub fn is_default(&self) -> bool {
        has_default_annotation(&self.metadata, DEFAULT_TOOL_GATEWAY_CLASS_ANNOTATION)
    }
}
