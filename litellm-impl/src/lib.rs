//! LiteLLM implementation of `runtime.agentic-layer.ai` AI gateways: the pure part.
//!
//! [`render`] turns one [`AiGateway`](aigateway_api::AiGateway) into the LiteLLM
//! `config.yaml` and the ConfigMap, Deployment and Service that run the LiteLLM proxy,
//! reading the Guards, GuardrailProviders, Secrets and ConfigMaps it references through
//! an [`ObjectLookup`]. [`render_tool_gateway`] does the same for a
//! [`ToolGateway`](aigateway_api::ToolGateway) and the ToolRoutes attached to it (see
//! [`tool_gateway`]), with one outcome per route. Neither touches the network; the
//! runtime calls them from its reconcile loop, the `litellm-impl render` command calls
//! them offline.
//!
//! ```
//! use aigateway_api::{AiGateway, AiGatewaySpec, AiModel};
//! use litellm_impl::{InMemoryObjects, ProblemReason, RenderSettings, render};
//!
//! let mut gateway = AiGateway::new(
//!     "ai-gateway",
//!     AiGatewaySpec { ai_models: vec![AiModel::new("openai", "gpt-4o")], ..Default::default() },
//! );
//! gateway.metadata.namespace = Some("ai-gateway".into());
//! let rendered = render(&gateway, &InMemoryObjects::new(), &RenderSettings::default()).unwrap();
//! assert!(rendered.config_yaml.contains("model: openai/gpt-4o"));
//! assert_eq!(rendered.config_map.metadata.name.as_deref(), Some("ai-gateway-config"));
//! // No Secret `api-key-secrets`, no master key, the otel callback without an exporter:
//! // all reported, and the proxy still deploys.
//! let reasons: Vec<_> = rendered.problems.iter().map(|p| p.reason).collect();
//! assert_eq!(
//!     reasons,
//!     [ProblemReason::RefNotFound, ProblemReason::Unauthenticated, ProblemReason::SuspiciousConfig]
//! );
//! ```
//!
//! # Compatibility with the Go operator
//! Object names, labels, ports, paths, the `api-key-secrets` contract, the config
//! layout and the config-patch annotation are those of ai-gateway-litellm-operator.
//!
//! # Authentication
//! The pinned LiteLLM refuses to start without a master key. Two modes:
//! - **Authenticated**: the user sets `LITELLM_MASTER_KEY` (in `spec.env`, through an
//!   `envFrom` source, or `general_settings.master_key` in the config patch). Every
//!   request must then carry that key (or a LiteLLM virtual key) as a bearer token.
//! - **Open (default)**: otherwise the container gets
//!   `LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY=true`, so agents that send a
//!   per-agent pseudo key keep working, and a [`ProblemReason::Unauthenticated`] problem
//!   says the gateway accepts any in-cluster request.
//!
//! # Per-gateway overrides
//! Annotations under `ai-gateway-litellm.agentic-layer.ai/` (see [`names`]): `config-patch`,
//! `image`, `replicas` (an integer, or `hpa` to leave it to an autoscaler),
//! `cpu-request`, `memory-request`, `cpu-limit`, `memory-limit`.
//!
//! # The command line
//! The `litellm-impl` binary (`run`, `demo`, `render`, `crds`, `manifests`,
//! `uninstall`) is the package `litellm-impl-cli` beside this one: this library links
//! neither clap nor the in-memory API server the demo embeds. Like every library of the
//! workspace it picks no Kubernetes version feature of k8s-openapi; the binary does.
#![warn(missing_docs)]

/// The pinned LiteLLM release, written once: the default image
/// ([`settings::DEFAULT_IMAGE`]), the Python requirement the tests and the demo install
/// and every message naming the version derive from it (outside this crate through
/// [`settings::LITELLM_VERSION`]).
macro_rules! pinned_litellm_version {
    () => {
        "1.108.7"
    };
}

pub mod config;
mod error;
pub mod guardrails;
pub mod implementation;
pub mod input;
pub mod known_keys;
pub mod lookup;
pub mod names;
pub mod policy;
mod problem;
mod render;
pub mod settings;
pub mod tool_filter;
pub mod tool_gateway;
pub mod workload;

#[cfg(test)]
mod tests;

pub use error::{GatewayKind, RenderError};
pub use implementation::{LiteLlmGateway, LiteLlmToolGateway};
pub use input::{Document, InputObject, ParseError, parse_documents, read_documents};
pub use lookup::{DEFAULT_NAMESPACE, InMemoryObjects, ObjectLookup};
pub use names::{CONTROLLER_NAME, TOOL_GATEWAY_CONTROLLER_NAME};
pub use problem::{ObjectRef, Problem, ProblemReason};
pub use render::{
    GatewayPolicies, LiteLlmPolicyKind, MAX_CONFIG_MAP_DATA_BYTES, PolicyOutcome, PolicyVerdict,
    Rendered, check_config, referenced_secrets_hash, render, render_with_policies, secret_hash,
    short_hash,
};
pub use settings::RenderSettings;
pub use tool_gateway::{
    RenderedToolGateway, RouteOutcome, RouteState, render_tool_gateway,
    render_tool_gateway_with_policies,
};
