//! Why a gateway cannot be rendered at all.

use std::fmt;

/// The kind of gateway a [`RenderError`] is about, named in its message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GatewayKind {
    /// An `AiGateway` (models).
    AiGateway,
    /// A `ToolGateway` (MCP tools).
    ToolGateway,
}

impl GatewayKind {
    /// The Kubernetes kind, e.g. `AiGateway`.
    pub fn as_str(self) -> &'static str {
        match self {
            GatewayKind::AiGateway => "AiGateway",
            GatewayKind::ToolGateway => "ToolGateway",
        }
    }
}

impl fmt::Display for GatewayKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A gateway that cannot be rendered: nothing is deployed for it until it is fixed.
///
/// Each message names the gateway (`namespace/name`), the field or annotation at fault,
/// and what to do. Problems that still allow a working proxy are
/// [`Problem`](crate::Problem)s instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The gateway has no `metadata.name`.
    #[error("{kind} without metadata.name: every gateway needs a name")]
    MissingName {
        /// The kind of the gateway.
        kind: GatewayKind,
    },
    /// The gateway has no `metadata.namespace`.
    #[error("{kind} {name}: metadata.namespace is not set: the gateway must be namespaced")]
    MissingNamespace {
        /// The kind of the gateway.
        kind: GatewayKind,
        /// The gateway's name.
        name: String,
    },
    /// `spec.aiModels` is empty.
    #[error("AiGateway {gateway}: spec.aiModels is empty: list at least one model")]
    NoModels {
        /// `namespace/name` of the gateway.
        gateway: String,
    },
    /// A model has an empty name.
    #[error(
        "AiGateway {gateway}: spec.aiModels[{index}].name is empty: set the model's name at its provider"
    )]
    EmptyModelName {
        /// `namespace/name` of the gateway.
        gateway: String,
        /// Index of the model in `spec.aiModels`.
        index: usize,
    },
    /// `spec.port` is outside 1..=65535.
    #[error("AiGateway {gateway}: spec.port {port} is not a TCP port: use 1-65535")]
    InvalidPort {
        /// `namespace/name` of the gateway.
        gateway: String,
        /// The port given.
        port: i32,
    },
    /// An annotation under `ai-gateway-litellm.agentic-layer.ai/` has an unusable value.
    #[error("{kind} {gateway}: annotation {key}: value {value:?} is invalid: {expected}")]
    InvalidAnnotation {
        /// The kind of the gateway.
        kind: GatewayKind,
        /// `namespace/name` of the gateway.
        gateway: String,
        /// The annotation key.
        key: String,
        /// The value given.
        value: String,
        /// What a valid value looks like.
        expected: String,
    },
    /// The config-patch ConfigMap does not exist.
    #[error(
        "{kind} {gateway}: annotation ai-gateway-litellm.agentic-layer.ai/config-patch names ConfigMap {namespace}/{name}, which does not exist: create it (key patch.yaml) or remove the annotation"
    )]
    PatchConfigMapNotFound {
        /// The kind of the gateway.
        kind: GatewayKind,
        /// `namespace/name` of the gateway.
        gateway: String,
        /// The ConfigMap's namespace (the gateway's).
        namespace: String,
        /// The ConfigMap's name.
        name: String,
    },
    /// The config-patch ConfigMap has no `patch.yaml` key.
    #[error(
        "{kind} {gateway}: ConfigMap {namespace}/{name} (from annotation ai-gateway-litellm.agentic-layer.ai/config-patch) has no key patch.yaml: put the patch under data.patch.yaml"
    )]
    PatchKeyMissing {
        /// The kind of the gateway.
        kind: GatewayKind,
        /// `namespace/name` of the gateway.
        gateway: String,
        /// The ConfigMap's namespace.
        namespace: String,
        /// The ConfigMap's name.
        name: String,
    },
    /// The patch is not valid YAML or not a mapping.
    #[error(
        "{kind} {gateway}: ConfigMap {namespace}/{name} key patch.yaml is not a usable patch: {message}"
    )]
    InvalidPatch {
        /// The kind of the gateway.
        kind: GatewayKind,
        /// `namespace/name` of the gateway.
        gateway: String,
        /// The ConfigMap's namespace.
        namespace: String,
        /// The ConfigMap's name.
        name: String,
        /// What is wrong (from the YAML parser, or "not a mapping").
        message: String,
    },
    /// The config could not be serialised (a bug; report it).
    #[error(
        "{kind} {gateway}: the LiteLLM config could not be written as YAML: {message}; this is a bug in litellm-impl, please report it"
    )]
    Serialize {
        /// The kind of the gateway.
        kind: GatewayKind,
        /// `namespace/name` of the gateway.
        gateway: String,
        /// The serialiser's message.
        message: String,
    },
    /// The rendered config does not fit into a ConfigMap: the API server would refuse
    /// the write, and nothing of the gateway could change until it fits.
    #[error(
        "{kind} {gateway}: the rendered LiteLLM config is {bytes} bytes, over the {limit}-byte limit of a ConfigMap's data, so the API server would refuse it: {hint}; nothing is applied until it fits"
    )]
    ConfigTooLarge {
        /// The kind of the gateway.
        kind: GatewayKind,
        /// `namespace/name` of the gateway.
        gateway: String,
        /// The size of the ConfigMap's data (key and value).
        bytes: usize,
        /// [`MAX_CONFIG_MAP_DATA_BYTES`](crate::MAX_CONFIG_MAP_DATA_BYTES).
        limit: usize,
        /// What to do.
        hint: &'static str,
    },
    /// Something that becomes a Kubernetes name, label, annotation or env var name is not
    /// valid there, so the API server would refuse a child object.
    #[error("{kind} {gateway}: {field} {value:?} {rule}; nothing is applied until it is fixed")]
    InvalidName {
        /// The kind of the gateway.
        kind: GatewayKind,
        /// `namespace/name` of the gateway.
        gateway: String,
        /// The field holding it, and what it names.
        field: String,
        /// The value given.
        value: String,
        /// The rule it breaks.
        rule: String,
    },
    /// Two `spec.env` entries set the same variable; server-side apply keys env entries by
    /// name and refuses the Deployment.
    #[error(
        "{kind} {gateway}: spec.env[{second}] sets {name} again (first set by spec.env[{first}]): remove one of them; nothing is applied until it is fixed"
    )]
    DuplicateEnv {
        /// The kind of the gateway.
        kind: GatewayKind,
        /// `namespace/name` of the gateway.
        gateway: String,
        /// The variable's name.
        name: String,
        /// Index of its first entry.
        first: usize,
        /// Index of the repeated entry.
        second: usize,
    },
    /// The generated config holds a string LiteLLM would resolve that rendering did not
    /// generate itself (a bug: copied strings are checked first).
    #[error(
        "{kind} {gateway}: the generated LiteLLM config holds a string LiteLLM would resolve at {path}; this is a bug in litellm-impl, please report it"
    )]
    ForeignReference {
        /// The kind of the gateway.
        kind: GatewayKind,
        /// `namespace/name` of the gateway.
        gateway: String,
        /// JSON pointer of the value in the config.
        path: String,
    },
}
