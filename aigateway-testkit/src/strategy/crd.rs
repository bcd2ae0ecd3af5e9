//! CustomResourceDefinitions: validated as definitions (names, scope, one storage
//! version, no clash with a built-in), given the `NamesAccepted` and `Established`
//! conditions, served once stored, and unserved with all their objects once removed.

use serde_json::{Value, json};

use super::{FollowUp, Strategy};
use crate::registry::crd_resource;
use crate::schema::FieldError;
use crate::store::{State, now_string};

/// `apiextensions.k8s.io/v1` CustomResourceDefinition.
pub(crate) struct CustomResourceDefinition;

impl Strategy for CustomResourceDefinition {
    fn validate(&self, st: &State, _old: Option<&Value>, new: &Value) -> Vec<FieldError> {
        let parsed = match crd_resource(new) {
            Ok(parsed) => parsed,
            Err(errs) => return errs,
        };
        match st.registry.get(&parsed.key()) {
            Some(existing) if existing.crd.is_none() => vec![FieldError {
                reason: "FieldValueInvalid",
                field: "spec.names.plural".into(),
                message: format!(
                    "spec.names.plural: Invalid value: \"{}\": conflicts with a built-in resource",
                    parsed.plural
                ),
            }],
            _ => Vec::new(),
        }
    }

    fn prepare(&self, _st: &State, old: Option<&Value>, new: &mut Value) {
        set_crd_status(new, old);
    }

    fn after_write(&self, _st: &State, obj: &Value, _direct: bool) -> Vec<FollowUp> {
        crd_resource(obj)
            .map(|r| FollowUp::Serve(Box::new(r)))
            .into_iter()
            .collect()
    }

    fn after_delete(&self, obj: &Value) -> Vec<FollowUp> {
        crd_resource(obj)
            .map(|r| FollowUp::Unserve(r.key()))
            .into_iter()
            .collect()
    }

    fn cleanup_finalizer(&self) -> Option<&'static str> {
        Some("customresourcecleanup.apiextensions.k8s.io")
    }
}

fn set_crd_status(crd: &mut Value, old: Option<&Value>) {
    let now = now_string();
    let prev = |ty: &str| {
        old.and_then(|o| o.pointer("/status/conditions"))
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
                    .and_then(|c| c.get("lastTransitionTime").cloned())
            })
            .unwrap_or_else(|| json!(now))
    };
    let storage: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    let mut stored: Vec<Value> = old
        .and_then(|o| o.pointer("/status/storedVersions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for v in storage {
        if !stored.contains(&v) {
            stored.push(v);
        }
    }
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    crd["status"] = json!({
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": prev("NamesAccepted")},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": prev("Established")},
        ],
        "acceptedNames": names,
        "storedVersions": stored,
    });
}
