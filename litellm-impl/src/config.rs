//! Gateway -> LiteLLM `config.yaml` (pure).
//!
//! The config is built as a JSON value and written with a serialiser, never by
//! formatting strings, so whatever users put in names, providers or guard fields the
//! result is valid YAML that reads back to the same values. Keys are written in one fixed
//! order (LiteLLM's usual keys first, then alphabetically), so the text is the same
//! whether or not a patch was merged.

use aigateway_api::AiModel;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value, json};

use crate::names;

/// `litellm_settings.request_timeout`, in seconds (as the Go operator).
pub const REQUEST_TIMEOUT_SECONDS: u64 = 600;
/// `litellm_settings.callbacks`: OpenTelemetry traces and Prometheus metrics.
pub const CALLBACKS: [&str; 2] = ["otel", "prometheus"];

/// The `model_list` entry for one model: `model: <provider>/<name>` and the provider's
/// API key read from the environment.
pub fn model_entry(model: &AiModel) -> Value {
    json!({
        "model_name": model.name,
        "litellm_params": {
            "model": model_string(model),
            "api_key": format!("os.environ/{}", names::provider_api_key_env(&model.provider)),
        }
    })
}

/// `litellm_params.model` of a model: `<provider>/<name>`.
pub fn model_string(model: &AiModel) -> String {
    format!("{}/{}", model.provider, model.name)
}

/// The generated config before any patch: `model_list`, `litellm_settings` and, when
/// there are any, `guardrails`.
pub fn base_config(model_list: Vec<Value>, guardrails: Vec<Value>) -> Value {
    let mut config = Map::new();
    config.insert("model_list".to_owned(), Value::Array(model_list));
    config.insert(
        "litellm_settings".to_owned(),
        json!({
            "request_timeout": REQUEST_TIMEOUT_SECONDS,
            "callbacks": CALLBACKS,
        }),
    );
    if !guardrails.is_empty() {
        config.insert("guardrails".to_owned(), Value::Array(guardrails));
    }
    Value::Object(config)
}

/// A form in which the pinned LiteLLM reads a config string as a pointer to something else
/// (an environment variable, a file, a token service, a secret manager) instead of as
/// text.
///
/// Found in the pinned LiteLLM's source (1.106.2, checked again for 1.108.7):
/// - `os.environ/<NAME>`: every string value in `config.yaml` (at any depth, in mappings
///   and in mappings inside lists) is replaced by that variable of the proxy's
///   environment when the config loads (`ProxyConfig._check_for_os_environ_vars`,
///   `secret_managers/main.py:get_secret`); with a secret manager configured, by that
///   secret.
/// - `oidc/<provider>/<audience>`: `get_secret` fetches a token: `oidc/env/<NAME>` and
///   `oidc/env_path/<NAME>` read the environment, `oidc/file/<path>` a file,
///   `oidc/google/...` the cloud metadata server, `oidc/azure/...`,
///   `oidc/github/...` and `oidc/circleci...` their token sources. Credential fields
///   such as `azure_ad_token` resolve it without the `os.environ/` prefix.
/// - `hashicorp_vault/`, `aws_secret_manager/`, `google_secret_manager/`: the secret
///   manager pointers LiteLLM's `*_ref` credential fields dereference.
///
/// A bare variable name is also resolved by `get_secret`, but only in fields this
/// implementation never writes (`aws_web_identity_token`, Azure `tenant_id`/`client_id`,
/// Slack webhook URLs, ...), so it is not a reference here. Mapping keys are never
/// resolved. Matching ignores ASCII case and leading whitespace, although LiteLLM
/// matches exactly: refusing a harmless look-alike costs less than missing a variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiteLlmReference {
    /// `os.environ/<NAME>`.
    Environ,
    /// `oidc/<provider>/<audience>`.
    Oidc,
    /// `hashicorp_vault/`, `aws_secret_manager/` or `google_secret_manager/`.
    SecretManager,
}

/// Every prefix the pinned LiteLLM interprets, with its form (see [`LiteLlmReference`]).
pub const REFERENCE_PREFIXES: [(&str, LiteLlmReference); 5] = [
    ("os.environ/", LiteLlmReference::Environ),
    ("oidc/", LiteLlmReference::Oidc),
    ("hashicorp_vault/", LiteLlmReference::SecretManager),
    ("aws_secret_manager/", LiteLlmReference::SecretManager),
    ("google_secret_manager/", LiteLlmReference::SecretManager),
];

fn matching_prefix(value: &str) -> Option<(&'static str, LiteLlmReference)> {
    let value = value.trim_start().as_bytes();
    REFERENCE_PREFIXES.iter().copied().find(|(prefix, _)| {
        value
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
    })
}

/// The form in which LiteLLM would interpret `value`, if any.
pub fn litellm_reference(value: &str) -> Option<LiteLlmReference> {
    matching_prefix(value).map(|(_, form)| form)
}

/// Why a copied string is refused, for a problem message; `None` when LiteLLM reads it
/// as text.
pub fn refuse_reference(value: &str) -> Option<String> {
    matching_prefix(value).map(|(prefix, _)| {
        format!("starts with {prefix}, which LiteLLM would resolve (from the proxy's environment, files or secret stores) instead of using it as written")
    })
}

/// The string values of a generated config that LiteLLM would interpret as references
/// but are not in `ours` (the references rendering generated itself), with their JSON
/// pointer. Empty for every config [`crate::render()`] produces before a patch is merged.
pub fn foreign_references(
    config: &Value,
    ours: &std::collections::BTreeSet<String>,
) -> Vec<String> {
    fn walk(
        value: &Value,
        path: &str,
        ours: &std::collections::BTreeSet<String>,
        out: &mut Vec<String>,
    ) {
        match value {
            Value::String(s) if litellm_reference(s).is_some() && !ours.contains(s) => {
                out.push(path.to_owned())
            }
            Value::Array(items) => items
                .iter()
                .enumerate()
                .for_each(|(i, v)| walk(v, &format!("{path}/{i}"), ours, out)),
            Value::Object(map) => map
                .iter()
                .for_each(|(k, v)| walk(v, &format!("{path}/{k}"), ours, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(config, "", ours, &mut out);
    out
}

/// Reads a patch: YAML whose top level is a mapping (an empty document is an empty patch).
pub fn parse_patch(text: &str) -> Result<Value, String> {
    // The parser's message quotes the offending lines, which may hold a master key or an
    // API key; conditions and events are readable more widely than the ConfigMap, so
    // only the position is reported.
    let value: Value = serde_saphyr::from_str(text).map_err(|e| match e.location() {
        Some(at) => format!(
            "not valid YAML (line {}, column {}): check the syntax there",
            at.line(),
            at.column()
        ),
        None => "not valid YAML: check its syntax".to_owned(),
    })?;
    match value {
        Value::Object(_) => Ok(value),
        Value::Null => Ok(Value::Object(Map::new())),
        other => Err(format!(
            "the top level is a {}, not a mapping of config sections",
            kind_of(&other)
        )),
    }
}

#[cfg(test)]
mod patch_errors {
    #[test]
    fn a_broken_patch_is_reported_without_its_content() {
        let error =
            super::parse_patch("general_settings:\n  master_key: sk-secret-value\n  - broken")
                .unwrap_err();
        assert!(!error.contains("sk-secret-value"), "{error}");
        assert!(error.contains("line"), "{error}");
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "mapping",
    }
}

/// Merges `patch` into `base`: mappings merge recursively, scalars and lists replace,
/// and `null` deletes the key.
pub fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    base.remove(key);
                } else if let Some(existing) = base.get_mut(key)
                    && existing.is_object()
                    && value.is_object()
                {
                    merge(existing, value);
                } else {
                    base.insert(key.clone(), without_nulls(value));
                }
            }
        }
        (base, patch) => *base = without_nulls(patch),
    }
}

/// A copy of `value` in which `null` map values are dropped (a patch's `null` means
/// "absent", also inside a newly added mapping).
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Keys written first, in this order, wherever they occur; all others follow
/// alphabetically.
const KEY_ORDER: &[&str] = &[
    "model_list",
    "mcp_servers",
    "litellm_settings",
    "guardrails",
    "model_name",
    "guardrail_name",
    "litellm_params",
    "guardrail",
    "mode",
    "default_on",
    "model",
    "api_key",
    "api_base",
];

fn key_rank(key: &str) -> usize {
    KEY_ORDER
        .iter()
        .position(|k| *k == key)
        .unwrap_or(KEY_ORDER.len())
}

/// Serialises a JSON value with map keys in [`KEY_ORDER`], then alphabetical order.
struct Ordered<'a>(&'a Value);

impl Serialize for Ordered<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries
                    .sort_by(|(a, _), (b, _)| key_rank(a).cmp(&key_rank(b)).then_with(|| a.cmp(b)));
                let mut out = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    out.serialize_entry(key, &Ordered(value))?;
                }
                out.end()
            }
            Value::Array(items) => {
                let mut out = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    out.serialize_element(&Ordered(item))?;
                }
                out.end()
            }
            other => other.serialize(serializer),
        }
    }
}

/// Writes a config as YAML text.
pub fn to_yaml(config: &Value) -> Result<String, String> {
    serde_saphyr::to_string(&Ordered(config)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_entries_follow_the_go_operator() {
        let entry = model_entry(&AiModel::new("openai", "gpt-4o"));
        assert_eq!(
            entry,
            json!({"model_name": "gpt-4o", "litellm_params": {"model": "openai/gpt-4o", "api_key": "os.environ/OPENAI_API_KEY"}})
        );
        let entry = model_entry(&AiModel::new("azure_ai", "x"));
        assert_eq!(
            entry["litellm_params"]["api_key"],
            "os.environ/AZURE_AI_API_KEY"
        );
    }

    #[test]
    fn base_config_has_timeout_and_callbacks_and_omits_empty_guardrails() {
        let config = base_config(vec![model_entry(&AiModel::new("openai", "a"))], vec![]);
        assert_eq!(
            config["litellm_settings"],
            json!({"request_timeout": 600, "callbacks": ["otel", "prometheus"]})
        );
        assert!(config.get("guardrails").is_none());
        let config = base_config(vec![], vec![json!({"guardrail_name": "g"})]);
        assert_eq!(config["guardrails"][0]["guardrail_name"], "g");
    }

    #[test]
    fn merge_maps_recursively_replaces_scalars_and_lists_and_deletes_on_null() {
        let mut base = json!({
            "litellm_settings": {"request_timeout": 600, "callbacks": ["otel", "prometheus"]},
            "model_list": [1, 2],
            "keep": "me",
        });
        let patch = json!({
            "litellm_settings": {"request_timeout": 30, "callbacks": null, "drop_params": true},
            "model_list": [3],
            "router_settings": {"routing_strategy": "x", "gone": null},
            "keep": null,
        });
        merge(&mut base, &patch);
        assert_eq!(
            base,
            json!({
                "litellm_settings": {"request_timeout": 30, "drop_params": true},
                "model_list": [3],
                "router_settings": {"routing_strategy": "x"},
            })
        );
    }

    #[test]
    fn patches_must_be_mappings() {
        assert!(parse_patch("a: 1\n").is_ok());
        assert_eq!(parse_patch("").unwrap(), json!({}));
        assert!(parse_patch("- 1\n").unwrap_err().contains("list"));
        assert!(
            parse_patch("a: [\n")
                .unwrap_err()
                .contains("not valid YAML")
        );
    }

    #[test]
    fn keys_are_written_in_a_fixed_order() {
        let config = base_config(
            vec![model_entry(&AiModel::new("openai", "m"))],
            vec![
                json!({"litellm_params": {"mode": ["pre_call"], "guardrail": "presidio", "default_on": true}, "guardrail_name": "g"}),
            ],
        );
        let text = to_yaml(&config).unwrap();
        let order: Vec<usize> = [
            "model_list:",
            "model_name:",
            "litellm_params:",
            "model:",
            "api_key:",
            "litellm_settings:",
            "callbacks:",
            "request_timeout:",
            "guardrails:",
            "guardrail_name:",
            "guardrail:",
            "mode:",
            "default_on:",
        ]
        .iter()
        .map(|k| text.find(k).unwrap_or_else(|| panic!("{k} in {text}")))
        .collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted, "{text}");
    }
}
