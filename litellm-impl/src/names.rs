//! Every name, label, annotation key and path this implementation uses, in one place.
//!
//! The object names, labels, paths and the Secret contract match the Go
//! ai-gateway-litellm-operator, so existing clusters, agents and Secrets keep working.

/// The `spec.controller` of the AiGatewayClasses this implementation claims.
pub const CONTROLLER_NAME: &str = "aigateway.agentic-layer.ai/ai-gateway-litellm-controller";

/// Prefix of every annotation this implementation reads on an AiGateway.
pub const ANNOTATION_PREFIX: &str = "ai-gateway-litellm.agentic-layer.ai/";

/// Annotation naming a ConfigMap (same namespace, key [`PATCH_KEY`]) whose YAML is merged
/// into the generated LiteLLM config.
pub const CONFIG_PATCH_ANNOTATION: &str = "ai-gateway-litellm.agentic-layer.ai/config-patch";
/// Annotation overriding the container image for one gateway.
pub const IMAGE_ANNOTATION: &str = "ai-gateway-litellm.agentic-layer.ai/image";
/// Annotation overriding the replica count for one gateway: a non-negative integer, or
/// [`REPLICAS_EXTERNAL`] to leave `spec.replicas` unset for a HorizontalPodAutoscaler.
pub const REPLICAS_ANNOTATION: &str = "ai-gateway-litellm.agentic-layer.ai/replicas";
/// The value of [`REPLICAS_ANNOTATION`] that leaves the replica count to an autoscaler.
pub const REPLICAS_EXTERNAL: &str = "hpa";
/// Annotation overriding the container's CPU request (a Kubernetes quantity).
pub const CPU_REQUEST_ANNOTATION: &str = "ai-gateway-litellm.agentic-layer.ai/cpu-request";
/// Annotation overriding the container's memory request (a Kubernetes quantity).
pub const MEMORY_REQUEST_ANNOTATION: &str = "ai-gateway-litellm.agentic-layer.ai/memory-request";
/// Annotation overriding the container's CPU limit (a Kubernetes quantity).
pub const CPU_LIMIT_ANNOTATION: &str = "ai-gateway-litellm.agentic-layer.ai/cpu-limit";
/// Annotation overriding the container's memory limit (a Kubernetes quantity).
pub const MEMORY_LIMIT_ANNOTATION: &str = "ai-gateway-litellm.agentic-layer.ai/memory-limit";

/// Every annotation key this implementation understands, for typo detection.
pub const KNOWN_ANNOTATIONS: &[&str] = &[
    CONFIG_PATCH_ANNOTATION,
    IMAGE_ANNOTATION,
    REPLICAS_ANNOTATION,
    CPU_REQUEST_ANNOTATION,
    MEMORY_REQUEST_ANNOTATION,
    CPU_LIMIT_ANNOTATION,
    MEMORY_LIMIT_ANNOTATION,
];

/// Pod-template annotation carrying the first 16 hex characters of the SHA-256 of the
/// rendered `config.yaml`, so a config change rolls the pods.
pub const CONFIG_HASH_ANNOTATION: &str = "gateway.agentic-layer.ai/config-hash";
/// Pod-template annotation carrying a hash of the Secrets the container reads through
/// env, so a credential change rolls the pods.
pub const SECRET_HASH_ANNOTATION: &str = "gateway.agentic-layer.ai/secret-hash";

/// The label every generated object carries and the Deployment and Service select on:
/// `app: <gateway name>`.
pub const APP_LABEL: &str = "app";

/// The Secret (in the gateway's namespace) holding one `<PROVIDER>_API_KEY` key per
/// model provider.
pub const API_KEY_SECRET: &str = "api-key-secrets";
/// Suffix of the per-provider env var and Secret key: `<PROVIDER>_API_KEY`.
pub const API_KEY_SUFFIX: &str = "_API_KEY";

/// Key of the LiteLLM config in the generated ConfigMap.
pub const CONFIG_KEY: &str = "config.yaml";
/// Key of the patch in the ConfigMap named by [`CONFIG_PATCH_ANNOTATION`].
pub const PATCH_KEY: &str = "patch.yaml";

/// Name of the LiteLLM container.
pub const CONTAINER_NAME: &str = "litellm";
/// Name of the container port and the Service port.
pub const PORT_NAME: &str = "http";
/// Name of the volume holding the ConfigMap.
pub const CONFIG_VOLUME: &str = "config";
/// Where the ConfigMap is mounted.
pub const CONFIG_MOUNT_PATH: &str = "/app/config";
/// Full path of the LiteLLM config inside the container.
pub const CONFIG_FILE_PATH: &str = "/app/config/config.yaml";
/// Name of the emptyDir volume for Prometheus multiprocess mode.
pub const PROMETHEUS_VOLUME: &str = "prometheus-multiproc";
/// Where the Prometheus multiprocess volume is mounted.
pub const PROMETHEUS_MOUNT_PATH: &str = "/prometheus_multiproc";
/// Env var telling prometheus_client where to keep multiprocess metrics.
pub const PROMETHEUS_MULTIPROC_ENV: &str = "PROMETHEUS_MULTIPROC_DIR";
/// LiteLLM's liveness endpoint (LiteLLM spells it "liveliness").
pub const LIVENESS_PATH: &str = "/health/liveliness";
/// LiteLLM's readiness endpoint.
pub const READINESS_PATH: &str = "/health/readiness";

/// Env var carrying the LiteLLM master key; when set, every request must present it
/// (or a virtual key) as a bearer token.
pub const MASTER_KEY_ENV: &str = "LITELLM_MASTER_KEY";
/// Env var that lets LiteLLM 1.106 start without a master key.
pub const PERMIT_UNSET_MASTER_KEY_ENV: &str = "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY";

/// The name of the ConfigMap holding a gateway's LiteLLM config.
pub fn config_map_name(gateway: &str) -> String {
    format!("{gateway}-config")
}

/// The env var (and `api-key-secrets` key) holding a provider's API key: the provider
/// upper-cased, plus [`API_KEY_SUFFIX`].
pub fn provider_api_key_env(provider: &str) -> String {
    format!("{}{API_KEY_SUFFIX}", provider.to_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_go_operator() {
        assert_eq!(config_map_name("ai-gateway"), "ai-gateway-config");
        assert_eq!(provider_api_key_env("openai"), "OPENAI_API_KEY");
        assert_eq!(provider_api_key_env("azure_ai"), "AZURE_AI_API_KEY");
        assert!(
            KNOWN_ANNOTATIONS
                .iter()
                .all(|key| key.starts_with(ANNOTATION_PREFIX))
        );
    }
}
