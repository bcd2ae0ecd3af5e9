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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::write::tests::state;

    fn crd(group: &str, plural: &str, kind: &str) -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{plural}.{group}")},
            "spec": {
                "group": group,
                "scope": "Namespaced",
                "names": {"plural": plural, "kind": kind},
                "versions": [{"name": "v1", "served": true, "storage": true}],
            },
        })
    }

    #[test]
    fn a_crd_cannot_take_over_a_built_in_resource() {
        let st = state();
        let errs =
            CustomResourceDefinition.validate(&st, None, &crd("apps", "deployments", "Deployment"));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.names.plural");
        assert!(
            errs[0]
                .message
                .contains("conflicts with a built-in resource")
        );
        let own = crd("example.com", "gadgets", "Gadget");
        assert!(
            CustomResourceDefinition
                .validate(&st, None, &own)
                .is_empty()
        );
    }

    #[test]
    fn a_stored_crd_is_served_and_a_removed_one_unserved() {
        let st = state();
        let own = crd("example.com", "gadgets", "Gadget");
        let key = ("example.com".to_string(), "gadgets".to_string());
        match CustomResourceDefinition
            .after_write(&st, &own, false)
            .as_slice()
        {
            [FollowUp::Serve(r)] => assert_eq!(r.key(), key),
            other => panic!("expected one Serve, got {other:?}"),
        }
        match CustomResourceDefinition.after_delete(&own).as_slice() {
            [FollowUp::Unserve(k)] => assert_eq!(*k, key),
            other => panic!("expected one Unserve, got {other:?}"),
        }
    }

    #[test]
    fn the_status_keeps_transition_times_and_stored_versions() {
        let mut first = crd("example.com", "gadgets", "Gadget");
        set_crd_status(&mut first, None);
        let established = first["status"]["conditions"][1].clone();
        assert_eq!(established["type"], "Established");
        assert_eq!(first["status"]["storedVersions"], json!(["v1"]));
        let mut next = crd("example.com", "gadgets", "Gadget");
        next["spec"]["versions"] = json!([
            {"name": "v1", "served": true, "storage": false},
            {"name": "v2", "served": true, "storage": true},
        ]);
        set_crd_status(&mut next, Some(&first));
        assert_eq!(
            next["status"]["conditions"][1]["lastTransitionTime"],
            established["lastTransitionTime"]
        );
        assert_eq!(next["status"]["storedVersions"], json!(["v1", "v2"]));
    }
}
