//! Helpers shared by the integration tests that compare manifests.

use serde_json::Value;

/// The documents of a multi-document YAML stream (empty ones dropped), numbers
/// normalised.
pub fn parse_yaml_stream(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap()
        .into_iter()
        .filter(|v| !v.is_null())
        .map(normalize)
        .collect()
}

/// `0.0` and `0` are the same YAML number; JSONSchemaProps keeps bounds as floats.
pub fn normalize(value: Value) -> Value {
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => Value::from(f as i64),
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(normalize).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, normalize(v))).collect())
        }
        other => other,
    }
}
