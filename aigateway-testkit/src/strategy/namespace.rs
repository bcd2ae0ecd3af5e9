//! Namespaces: the `kubernetes.io/metadata.name` label, the namespace controller's
//! finalizer and `status.phase`; a delete always terminates first and deletes the
//! contents, and the namespaces every cluster has cannot be deleted.

use serde_json::{Value, json};

use super::{FollowUp, Strategy};
use crate::error::ApiError;
use crate::store::{ObjKey, State, finalizers, meta_mut, meta_str};

/// The namespaces every cluster has; none of them can be deleted.
pub(crate) const BUILTIN: [&str; 3] = ["default", "kube-system", "kube-public"];

/// `v1` Namespace.
pub(crate) struct Namespace;

impl Strategy for Namespace {
    fn prepare(&self, _st: &State, old: Option<&Value>, new: &mut Value) {
        let name = meta_str(new, "name").to_string();
        let m = meta_mut(new);
        if !m.get("labels").is_some_and(Value::is_object) {
            m.insert("labels".into(), json!({}));
        }
        m["labels"]["kubernetes.io/metadata.name"] = json!(name);
        if old.is_none() {
            // The namespace controller's finalizer; the testkit's synchronous
            // cleanup never waits for it.
            if !new.get("spec").is_some_and(Value::is_object) {
                new["spec"] = json!({});
            }
            new["spec"]["finalizers"] = json!(["kubernetes"]);
        }
        let phase = if meta_str(new, "deletionTimestamp").is_empty() {
            "Active"
        } else {
            "Terminating"
        };
        new["status"] = json!({"phase": phase});
    }

    fn check_delete(&self, name: &str) -> Result<(), ApiError> {
        if !BUILTIN.contains(&name) {
            return Ok(());
        }
        let mut e = ApiError::new(
            403,
            "Forbidden",
            format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"),
        );
        e.details = Some(json!({"name": name, "kind": "namespaces"}));
        Err(e)
    }

    fn deletes_gracefully(&self) -> bool {
        true
    }

    fn mark_deleting(&self, obj: &mut Value) {
        obj["status"] = json!({"phase": "Terminating"});
    }

    fn while_deleting(&self, key: &ObjKey) -> Vec<FollowUp> {
        vec![FollowUp::EmptyNamespace(key.1.clone())]
    }
}

/// Whether the namespace `ns` is terminating, held by no finalizer and empty: then it
/// goes for good.
pub(crate) fn finished(st: &State, ns: &str) -> bool {
    let Some(n) = st.get_raw(&(String::new(), "namespaces".into()), "", ns) else {
        return false;
    };
    !meta_str(&n, "deletionTimestamp").is_empty() && finalizers(&n) == 0 && st.namespace_empty(ns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::tests::state;

    #[test]
    fn the_namespaces_every_cluster_has_cannot_be_deleted() {
        for name in BUILTIN {
            let e = Namespace.check_delete(name).unwrap_err();
            assert_eq!((e.code, e.reason), (403, "Forbidden"));
        }
        assert!(Namespace.check_delete("team-a").is_ok());
    }

    #[test]
    fn a_namespace_is_finished_only_when_terminating_unheld_and_empty() {
        let mut st = state();
        let namespaces = st.registry.builtin("", "namespaces");
        let config_maps = st.registry.builtin("", "configmaps");
        let terminating = |name: &str, finalizers: Value| {
            json!({"metadata": {"name": name, "deletionTimestamp": "2026-01-01T00:00:00Z",
                                "finalizers": finalizers}})
        };
        // `default` holds nothing but is not terminating.
        assert!(!finished(&st, "default"));
        assert!(!finished(&st, "no-such-namespace"));
        st.put_direct(&namespaces, terminating("held", json!(["example.com/x"])))
            .unwrap();
        assert!(!finished(&st, "held"));
        st.put_direct(&namespaces, terminating("full", json!([])))
            .unwrap();
        st.put_direct(
            &config_maps,
            json!({"metadata": {"namespace": "full", "name": "c"}}),
        )
        .unwrap();
        assert!(!finished(&st, "full"));
        st.put_direct(&namespaces, terminating("empty", json!([])))
            .unwrap();
        assert!(finished(&st, "empty"));
    }

    #[test]
    fn a_deleted_namespace_terminates_and_takes_its_contents() {
        let mut ns = json!({"metadata": {"name": "team-a"}});
        Namespace.mark_deleting(&mut ns);
        assert_eq!(ns["status"]["phase"], "Terminating");
        assert!(Namespace.deletes_gracefully());
        match Namespace
            .while_deleting(&(String::new(), "team-a".into()))
            .as_slice()
        {
            [FollowUp::EmptyNamespace(n)] => assert_eq!(n, "team-a"),
            other => panic!("expected EmptyNamespace, got {other:?}"),
        }
    }
}
