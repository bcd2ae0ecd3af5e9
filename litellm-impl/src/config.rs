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
            "model": format!("{}/{}", model.provider, model.name),
            "api_key": format!("os.environ/{}", names::provider_api_key_env(&model.provider)),
        }
    })
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
