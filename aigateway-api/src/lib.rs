//! Kubernetes API types for `runtime.agentic-layer.ai/v1alpha1` AI gateways.
//!
//! This crate holds the custom resources that platform teams declare and that class
//! operators implement:
//!
//! - [`AiGateway`] (namespaced): which models, from which providers, on which port, with
//!   which guardrails.
//! - [`AiGatewayClass`] (cluster-scoped): `spec.controller` names the operator that
//!   implements the class.
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

pub mod class;
pub mod conditions;
pub mod crds;
pub mod gateway;
pub mod guard;
pub mod resolve;
mod schema;
mod tolerant;

pub use class::{AiGatewayClass, AiGatewayClassSpec, AiGatewayClassStatus};
pub use gateway::{AiGateway, AiGatewaySpec, AiGatewayStatus, AiModel, EmbeddedMetadata};
pub use guard::{
    BedrockGuardConfig, BedrockProviderConfig, Guard, GuardMode, GuardSpec, GuardStatus,
    GuardrailProvider, GuardrailProviderSpec, GuardrailProviderStatus, GuardrailProviderType,
    OpenAiModerationGuardConfig, OpenAiModerationProviderConfig, PresidioGuardConfig,
    PresidioProviderConfig,
};

/// The API group of every resource in this crate.
pub const GROUP: &str = "runtime.agentic-layer.ai";
/// The API version of every resource in this crate.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as it appears in manifests.
pub const API_VERSION: &str = "runtime.agentic-layer.ai/v1alpha1";
