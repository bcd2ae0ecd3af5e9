//! Kubernetes API types for `runtime.agentic-layer.ai/v1alpha1` gateways.
//!
//! This crate holds the custom resources that platform teams declare and that class
//! operators implement:
//!
//! - [`AiGateway`] (namespaced): which models, from which providers, on which port, with
//!   which guardrails.
//! - [`AiGatewayClass`] (cluster-scoped): `spec.controller` names the operator that
//!   implements the class.
//! - [`ToolGateway`] and [`ToolGatewayClass`]: a gateway exposing MCP tools; the
//!   [`ToolRoute`]s attached to it (each an MCP server: a [`ToolServer`] in the cluster
//!   or an external URL) say which.
//! - [`AgentGateway`] and [`AgentGatewayClass`]: a gateway in front of agents.
//! - [`Guard`] and [`GuardrailProvider`]: guardrails that gateways reference.
//!
//! The types are **wire-compatible** with the CRDs published by agent-runtime-operator:
//! the same JSON field names, optionality, defaults and validation. The CRDs generated
//! from these types ([`crds::all`]) may add only printer columns, short names, list-map
//! markers on `conditions`, validation of `spec.controller` and extra *status* fields; a
//! test in this crate compares them structurally with the published ones.
//!
//! Besides the types the crate carries the helpers every implementation needs:
//! [`conditions`] (standard condition types and `set_condition`), [`class`] (the
//! default-class annotation and controller-name validation) and [`resolve`] (how an agent
//! finds its gateway's URL, exactly as agent-runtime-operator injects it).
//!
//! ```
//! use aigateway_api::{AiGateway, AiGatewaySpec, AiModel};
//!
//! let gateway = AiGateway::new(
//!     "ai-gateway",
//!     AiGatewaySpec {
//!         ai_models: vec![AiModel::new("openai", "gpt-4o")],
//!         ..Default::default()
//!     },
//! );
//! assert_eq!(gateway.spec.port(), 80);
//! // Unset optional fields are omitted, exactly as the Go types do.
//! let json = serde_json::to_value(&gateway.spec).unwrap();
//! assert_eq!(json, serde_json::json!({"aiModels": [{"name": "gpt-4o", "provider": "openai"}]}));
//! ```
#![warn(missing_docs)]

pub mod agent_gateway;
pub mod class;
pub mod conditions;
pub mod crds;
pub mod gateway;
pub mod guard;
pub mod policy;
pub mod resolve;
mod schema;
mod tolerant;
pub mod tool_gateway;
pub mod tool_route;
pub mod tool_server;
pub mod tool_upstream;

pub use agent_gateway::{
    AgentGateway, AgentGatewayClass, AgentGatewayClassSpec, AgentGatewayClassStatus,
    AgentGatewaySpec, AgentGatewayStatus,
};
pub use class::{AiGatewayClass, AiGatewayClassSpec, AiGatewayClassStatus};
pub use gateway::{AiGateway, AiGatewaySpec, AiGatewayStatus, AiModel, EmbeddedMetadata};
pub use guard::{
    BedrockGuardConfig, BedrockProviderConfig, Guard, GuardMode, GuardSpec, GuardStatus,
    GuardrailProvider, GuardrailProviderSpec, GuardrailProviderStatus, GuardrailProviderType,
    OpenAiModerationGuardConfig, OpenAiModerationProviderConfig, PresidioGuardConfig,
    PresidioProviderConfig,
};
pub use tool_gateway::{
    ToolGateway, ToolGatewayClass, ToolGatewayClassSpec, ToolGatewayClassStatus, ToolGatewaySpec,
    ToolGatewayStatus,
};
pub use tool_route::{
    ExternalUpstream, NamespacedName, ToolFilter, ToolRoute, ToolRouteSpec, ToolRouteStatus,
    ToolRouteUpstream,
};
pub use tool_server::{
    ToolServer, ToolServerProtocol, ToolServerSpec, ToolServerStatus, ToolServerTransport,
};

/// The API group of every resource in this crate.
pub const GROUP: &str = "runtime.agentic-layer.ai";
/// The API version of every resource in this crate.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as it appears in manifests.
pub const API_VERSION: &str = "runtime.agentic-layer.ai/v1alpha1";
