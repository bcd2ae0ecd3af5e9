//! `events.k8s.io/v1` Events are stored as core `v1` Events, as on a real cluster, so
//! both APIs (and `kubectl describe`) see the same objects. These functions convert
//! between the two shapes.

use serde_json::{Map, Value, json};

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
