//! Every name, label, annotation key and path this implementation uses, in one place.
//!
//! The object names, labels, paths and the Secret contract match the Go
//! ai-gateway-litellm-operator, so existing clusters, agents and Secrets keep working.

/// The `spec.controller` of the AiGatewayClasses this implementation claims.
pub const CONTROLLER_NAME: &str = "aigateway.agentic-layer.ai/ai-gateway-litellm-controller";

/// The `spec.controller` of the ToolGatewayClasses this implementation claims (the Go
/// operator's, so its `install_toolgatewayclass.yaml` keeps working).
pub const TOOL_GATEWAY_CONTROLLER_NAME: &str =
    "litellm.agentic-layer.ai/tool-gateway-litellm-controller";

/// The port of a ToolGateway's Service (as the Go operator); LiteLLM listens on
/// [`CONTAINER_PORT`]. Route URLs carry no port, so agents reach port 80.
pub const TOOL_GATEWAY_SERVICE_PORT: i32 = 80;

/// Prefix of every annotation this implementation reads on an AiGateway or a
/// ToolGateway.
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
/// The port LiteLLM listens on inside the pod, whatever `spec.port` (the Service's port)
/// is: unprivileged, so the container needs no `NET_BIND_SERVICE`; LiteLLM's own default
/// and the port the Go operator's ToolGateway uses.
pub const CONTAINER_PORT: i32 = 4000;
/// Name of the emptyDir volume mounted at [`TMP_MOUNT_PATH`].
pub const TMP_VOLUME: &str = "tmp";
/// The only path LiteLLM writes to without a database, besides the Prometheus
/// multiprocess directory: Python's temporary files (the root filesystem is read-only).
pub const TMP_MOUNT_PATH: &str = "/tmp";
/// The unprivileged user and group of LiteLLM's non-root image (`nobody` in its Wolfi
/// base). The image names its user, not its number, so the kubelet could not otherwise
/// verify `runAsNonRoot`.
pub const NON_ROOT_ID: i64 = 65534;
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

/// Env var that makes LiteLLM use the model price map it ships with instead of
/// downloading one at start; rendering sets it to `True` unless the gateway's env does.
pub const LOCAL_MODEL_COST_MAP_ENV: &str = "LITELLM_LOCAL_MODEL_COST_MAP";

/// Env var carrying the LiteLLM master key; when set, every request must present it
/// (or a virtual key) as a bearer token.
pub const MASTER_KEY_ENV: &str = "LITELLM_MASTER_KEY";
/// Env var that lets the pinned LiteLLM start without a master key.
pub const PERMIT_UNSET_MASTER_KEY_ENV: &str = "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY";

/// The name of the ConfigMap holding a gateway's LiteLLM config.
pub fn config_map_name(gateway: &str) -> String {
    format!("{gateway}-config")
}

/// The name of the Secret holding a ToolGateway's copies of its routes' upstream
/// credentials (from their LiteLLMToolRoutePolicies' Secrets).
pub fn route_credentials_secret_name(gateway: &str) -> String {
    format!("{gateway}-route-credentials")
}

/// The env var (and `api-key-secrets` key) holding a provider's API key: the provider
/// upper-cased, plus [`API_KEY_SUFFIX`].
pub fn provider_api_key_env(provider: &str) -> String {
    format!("{}{API_KEY_SUFFIX}", provider.to_uppercase())
}

/// The longest DNS label, label value and label-key name part Kubernetes accepts.
pub const MAX_LABEL_LENGTH: usize = 63;
/// The longest DNS subdomain (object names, label-key prefixes) Kubernetes accepts.
pub const MAX_SUBDOMAIN_LENGTH: usize = 253;

/// The rule a name breaks, as a sentence fragment for a message; `Ok` when it is valid.
pub type NameCheck = Result<(), String>;

fn lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// Checks a DNS-1035 label (Service names): at most 63 characters, lowercase letters,
/// digits and `-`, starting with a letter and ending with a letter or digit.
pub fn check_dns1035_label(s: &str) -> NameCheck {
    check_dns1123_label(s).map_err(|_| dns1035_rule())?;
    if s.starts_with(|c: char| c.is_ascii_lowercase()) {
        Ok(())
    } else {
        Err(dns1035_rule())
    }
}

fn dns1035_rule() -> String {
    format!(
        "must be a DNS-1035 label: at most {MAX_LABEL_LENGTH} lowercase letters, digits and '-', starting with a letter and ending with a letter or digit"
    )
}

/// Checks a DNS-1123 label (namespaces): at most 63 characters, lowercase letters,
/// digits and `-`, starting and ending with a letter or digit.
pub fn check_dns1123_label(s: &str) -> NameCheck {
    let ok = !s.is_empty()
        && s.len() <= MAX_LABEL_LENGTH
        && s.chars().all(|c| lower_alnum(c) || c == '-')
        && s.starts_with(lower_alnum)
        && s.ends_with(lower_alnum);
    ok.then_some(()).ok_or_else(|| format!("must be a DNS-1123 label: at most {MAX_LABEL_LENGTH} lowercase letters, digits and '-', starting and ending with a letter or digit"))
}

/// Checks a DNS-1123 subdomain (most object names): at most 253 characters of
/// dot-separated DNS-1123 labels.
pub fn check_dns1123_subdomain(s: &str) -> NameCheck {
    // Kubernetes limits only the whole name, not each part, to 253 characters.
    let part_ok = |part: &str| {
        !part.is_empty()
            && part.chars().all(|c| lower_alnum(c) || c == '-')
            && part.starts_with(lower_alnum)
            && part.ends_with(lower_alnum)
    };
    let ok = !s.is_empty() && s.len() <= MAX_SUBDOMAIN_LENGTH && s.split('.').all(part_ok);
    ok.then_some(()).ok_or_else(|| format!("must be a DNS-1123 subdomain: at most {MAX_SUBDOMAIN_LENGTH} lowercase letters, digits, '-' and '.', each dot-separated part starting and ending with a letter or digit"))
}

fn label_name_part_ok(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    !s.is_empty()
        && s.len() <= MAX_LABEL_LENGTH
        && s.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
        && s.starts_with(alnum)
        && s.ends_with(alnum)
}

/// Checks a label value: empty, or at most 63 letters, digits, `-`, `_` and `.`,
/// starting and ending with a letter or digit.
pub fn check_label_value(s: &str) -> NameCheck {
    (s.is_empty() || label_name_part_ok(s)).then_some(()).ok_or_else(|| format!("must be a label value: at most {MAX_LABEL_LENGTH} letters, digits, '-', '_' and '.', starting and ending with a letter or digit"))
}

/// Checks a label or annotation key: an optional DNS-1123 subdomain prefix and `/`, then
/// a name of at most 63 letters, digits, `-`, `_` and `.` starting and ending with a
/// letter or digit.
pub fn check_qualified_name(s: &str) -> NameCheck {
    let (prefix, name) = match s.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, s),
    };
    let ok = label_name_part_ok(name) && prefix.is_none_or(|p| check_dns1123_subdomain(p).is_ok());
    ok.then_some(()).ok_or_else(|| format!("must be a qualified name: an optional DNS-1123 subdomain prefix and '/', then at most {MAX_LABEL_LENGTH} letters, digits, '-', '_' and '.', starting and ending with a letter or digit"))
}

/// Checks an environment variable name as Kubernetes 1.34 accepts it: printable ASCII
/// other than `=`, not empty.
pub fn check_env_name(s: &str) -> NameCheck {
    let ok = !s.is_empty() && s.chars().all(|c| (' '..='~').contains(&c) && c != '=');
    ok.then_some(()).ok_or_else(|| "must be an environment variable name: printable ASCII characters other than '=', not empty".to_owned())
}

/// Checks a Secret or ConfigMap data key: at most 253 letters, digits, `-`, `_` and `.`.
pub fn check_data_key(s: &str) -> NameCheck {
    let ok = !s.is_empty()
        && s.len() <= MAX_SUBDOMAIN_LENGTH
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    ok.then_some(()).ok_or_else(|| format!("must be a Secret or ConfigMap key: at most {MAX_SUBDOMAIN_LENGTH} letters, digits, '-', '_' and '.'"))
}

/// `value` as a label value: unchanged when it is one; otherwise its valid characters
/// cut to leave room for `-` and 10 hex characters of the SHA-256 of the whole value,
/// so distinct inputs stay distinct and the result is always a valid label value.
pub fn label_value(value: &str) -> String {
    if check_label_value(value).is_ok() {
        return value.to_owned();
    }
    use sha2::{Digest, Sha256};
    let hash: String = Sha256::digest(value.as_bytes())
        .iter()
        .take(5)
        .map(|b| format!("{b:02x}"))
        .collect();
    let keep = MAX_LABEL_LENGTH - hash.len() - 1;
    let cleaned: String = value
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(keep)
        .collect();
    let cleaned = cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if cleaned.is_empty() {
        hash
    } else {
        format!("{cleaned}-{hash}")
    }
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
