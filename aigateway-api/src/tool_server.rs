//! The namespaced `ToolServer` resource: an MCP server run in the cluster, which
//! ToolRoutes reference through `spec.upstream.toolServerRef`.

use k8s_openapi::api::core::v1::{
    EnvFromSource, EnvVar, LocalObjectReference, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::gateway::EmbeddedMetadata;

/// The protocol a tool server speaks.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum ToolServerProtocol {
    /// The Model Context Protocol.
    #[default]
    #[serde(rename = "mcp")]
    Mcp,
}

/// How a tool server is reached.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum ToolServerTransport {
    /// Streamable HTTP, path `/mcp` unless `spec.path` says otherwise.
    #[default]
    #[serde(rename = "http")]
    Http,
    /// Server-sent events, path `/sse` unless `spec.path` says otherwise.
    #[serde(rename = "sse")]
    Sse,
}

impl ToolServerTransport {
    /// The wire value, `http` or `sse`.
    pub fn as_str(self) -> &'static str {
        match self {
            ToolServerTransport::Http => "http",
            ToolServerTransport::Sse => "sse",
        }
    }

    /// The URL path a server of this transport serves when `spec.path` is unset.
    pub fn default_path(self) -> &'static str {
        match self {
            ToolServerTransport::Http => "/mcp",
            ToolServerTransport::Sse => "/sse",
        }
    }
}

/// Desired state of a tool server: the container that serves MCP and how it is reached.
///
/// Field names, optionality, defaults and validation match agent-runtime-operator's
/// `ToolServerSpec`. `protocol` and `transportType` are required on the wire and
/// defaulted by the API server, so objects read from a cluster always carry them.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "runtime.agentic-layer.ai",
    version = "v1alpha1",
    kind = "ToolServer",
    plural = "toolservers",
    singular = "toolserver",
    namespaced,
    status = "ToolServerStatus",
    doc = "ToolServer is the Schema for the toolservers API.",
    printcolumn = r#"{"name": "Transport", "type": "string", "jsonPath": ".spec.transportType"}"#,
    printcolumn = r#"{"name": "URL", "type": "string", "jsonPath": ".status.url"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[schemars(description = "ToolServerSpec defines the desired state of ToolServer.")]
#[serde(rename_all = "camelCase", remote = "Self")]
pub struct ToolServerSpec {
    /// The protocol the server speaks.
    #[schemars(extend("default" = "mcp"))]
    pub protocol: ToolServerProtocol,

    /// How the server is reached: `http` (streamable HTTP) or `sse`.
    #[schemars(extend("default" = "http"))]
    pub transport_type: ToolServerTransport,

    /// The container image of the server.
    #[schemars(length(min = 1))]
    pub image: String,

    /// Replaces the image's ENTRYPOINT, as in a Pod's container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,

    /// Replaces the image's CMD, as in a Pod's container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,

    /// The port the server listens on; needed for the `http` and `sse` transports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,

    /// The URL path of the MCP endpoint, starting with `/`; unset: the transport's
    /// default, `/mcp` for `http` and `/sse` for `sse`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^/.*"))]
    pub path: Option<String>,

    /// Number of server replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,

    /// Environment variables for the server container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::env_vars")]
    pub env: Vec<EnvVar>,

    /// Sources (ConfigMaps, Secrets) whose keys become environment variables of the
    /// server container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::env_from_sources")]
    pub env_from: Vec<EnvFromSource>,

    /// Compute resources of the server container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::optional_resource_requirements")]
    pub resources: Option<ResourceRequirements>,

    /// Secrets for pulling the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::local_object_references")]
    pub image_pull_secrets: Vec<LocalObjectReference>,

    /// Labels and annotations for the Deployment, the Service and the pod template
    /// created for this server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_metadata: Option<EmbeddedMetadata>,

    /// Labels and annotations for the pod template only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_metadata: Option<EmbeddedMetadata>,
}

crate::tolerant::tolerant_spec!(ToolServerSpec);

impl ToolServerSpec {
    /// `spec.path`, or the transport's default path when unset.
    pub fn path(&self) -> &str {
        self.path
            .as_deref()
            .unwrap_or(self.transport_type.default_path())
    }
}

/// Observed state of a tool server.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[schemars(description = "ToolServerStatus defines the observed state of ToolServer.")]
pub struct ToolServerStatus {
    /// Conditions of the server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,

    /// The cluster-local URL of the server,
    /// `http://<name>.<namespace>.svc.cluster.local:<port><path>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}
