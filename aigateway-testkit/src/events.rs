//! `events.k8s.io/v1` Events are stored as core `v1` Events, as on a real cluster, so
//! both APIs (and `kubectl describe`) see the same objects. These functions convert
//! between the two shapes.

use serde_json::{Map, Value, json};

use crate::error::ApiError;

/// `(events.k8s.io/v1 field, core/v1 field)`.
const RENAMES: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn rename(obj: &Value, from_v1: bool, api_version: &str) -> Value {
    let Some(m) = obj.as_object() else {
        return obj.clone();
    };
    let mut out = Map::new();
    for (k, v) in m {
        let key = RENAMES
            .iter()
            .find_map(|(v1, core)| {
                if from_v1 && k == v1 {
                    Some(*core)
                } else if !from_v1 && k == core {
                    Some(*v1)
                } else {
                    None
                }
            })
            .unwrap_or(k.as_str());
        out.insert(key.to_string(), v.clone());
    }
    out.insert("apiVersion".into(), json!(api_version));
    out.insert("kind".into(), json!("Event"));
    Value::Object(out)
}

/// The longest `note` an `events.k8s.io/v1` Event may have, in bytes.
pub(crate) const NOTE_LENGTH_LIMIT: usize = 1024;

/// Refuses an `events.k8s.io/v1` Event whose `note` is longer than
/// [`NOTE_LENGTH_LIMIT`] bytes, as the real API server does (422; it counts bytes, so a
/// note of 1,000 non-ASCII characters is refused).
pub(crate) fn check_note(v1: &Value) -> Result<(), ApiError> {
    let Some(note) = v1.get("note").and_then(Value::as_str) else {
        return Ok(());
    };
    if note.len() <= NOTE_LENGTH_LIMIT {
        return Ok(());
    }
    let name = v1["metadata"]["name"].as_str().unwrap_or_default();
    let message = format!("Too long: may not be more than {NOTE_LENGTH_LIMIT} bytes");
    let mut error = ApiError::new(
        422,
        "Invalid",
        format!("Event.events.k8s.io \"{name}\" is invalid: note: {message}"),
    );
    error.details = Some(
        json!({"name": name, "group": "events.k8s.io", "kind": "Event",
        "causes": [{"reason": "FieldValueTooLong", "field": "note", "message": message}]}),
    );
    Err(error)
}

/// An `events.k8s.io/v1` Event as a core `v1` Event.
pub(crate) fn to_core(v1: &Value) -> Value {
    rename(v1, true, "v1")
}

/// A core `v1` Event as an `events.k8s.io/v1` Event.
pub(crate) fn to_v1(core: &Value) -> Value {
    rename(core, false, "events.k8s.io/v1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_longer_than_1024_bytes_are_refused() {
        let event = |note: String| json!({"metadata": {"name": "e"}, "note": note});
        assert!(check_note(&event("a".repeat(1024))).is_ok());
        let error = check_note(&event("é".repeat(600))).unwrap_err();
        assert_eq!(error.code, 422);
        assert!(
            error.message.contains("note: Too long"),
            "{}",
            error.message
        );
    }

    #[test]
    fn round_trip() {
        let v1 = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e"}, "regarding": {"name": "x"}, "note": "hi",
            "reason": "R", "reportingController": "c", "series": {"count": 2}});
        let core = to_core(&v1);
        assert_eq!(core["involvedObject"]["name"], "x");
        assert_eq!(core["message"], "hi");
        assert_eq!(core["reportingComponent"], "c");
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(to_v1(&core), v1);
    }
}
