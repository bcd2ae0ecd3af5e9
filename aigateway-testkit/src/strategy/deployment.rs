//! Deployments: the API server's defaults and pod template warnings, and the status a
//! healthy cluster would give them (observedGeneration, replicas, `Available` and
//! `Progressing`), now or after the configured delay, since no kubelet runs here.

use serde_json::{Value, json};

use super::{FollowUp, Strategy};
use crate::defaults;
use crate::patch::{self, ListCtx, Managed, Scope};
use crate::store::{ObjKey, State, meta_mut, meta_str, now_string};

/// `apps/v1` Deployment.
pub(crate) struct Deployment;

impl Strategy for Deployment {
    fn prepare(&self, _st: &State, _old: Option<&Value>, new: &mut Value) {
        defaults::deployment(new);
    }

    fn warnings(&self, old: Option<&Value>, new: &Value) -> Vec<String> {
        defaults::pod_template_warnings(new, old)
    }

    fn after_write(&self, st: &State, obj: &Value, direct: bool) -> Vec<FollowUp> {
        // A direct write is taken as given: no simulated status on top.
        if direct || !st.config.simulate_deployments {
            return Vec::new();
        }
        let key = (
            meta_str(obj, "namespace").to_string(),
            meta_str(obj, "name").to_string(),
        );
        vec![FollowUp::SimulateDeployment(key)]
    }
}

/// Simulates the Deployment's status now, or queues it for after the readiness delay.
pub(crate) fn schedule_status(st: &mut State, key: ObjKey) {
    if st.config.deployment_ready_delay.is_zero() {
        simulate_status(st, &key.0, &key.1);
    } else {
        st.pending_deployments.push(key);
    }
}

/// Gives a Deployment the status a healthy cluster would; no write when unchanged.
pub(crate) fn simulate_status(st: &mut State, ns: &str, name: &str) {
    let res = ("apps".to_string(), "deployments".to_string());
    let Some(obj) = st.get_raw(&res, ns, name) else {
        return;
    };
    if !meta_str(&obj, "deletionTimestamp").is_empty() {
        return;
    }
    let info = st.registry.builtin("apps", "deployments");
    let generation = obj
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let replicas = obj
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let now = now_string();
    let old_conds = obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let cond = |ty: &str, reason: &str, message: String| {
        let prev = old_conds
            .iter()
            .find(|c| c.get("type").and_then(Value::as_str) == Some(ty));
        let keep = prev.filter(|p| {
            p.get("status").and_then(Value::as_str) == Some("True")
                && p.get("reason").and_then(Value::as_str) == Some(reason)
        });
        let ts = |k: &str| {
            keep.and_then(|p| p.get(k).cloned())
                .unwrap_or_else(|| json!(now))
        };
        json!({"type": ty, "status": "True", "reason": reason, "message": message,
               "lastUpdateTime": ts("lastUpdateTime"), "lastTransitionTime": ts("lastTransitionTime")})
    };
    let mut status = json!({
        "observedGeneration": generation,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "conditions": [
            cond("Available", "MinimumReplicasAvailable", "Deployment has minimum availability.".into()),
            cond("Progressing", "NewReplicaSetAvailable", format!("ReplicaSet \"{name}\" has successfully progressed.")),
        ],
    });
    if replicas > 0 {
        status["readyReplicas"] = json!(replicas);
        status["availableReplicas"] = json!(replicas);
    } else {
        status.as_object_mut().map(|m| m.remove("replicas"));
        status.as_object_mut().map(|m| m.remove("updatedReplicas"));
    }
    if obj.get("status") == Some(&status) {
        return;
    }
    let mut new = (*obj).clone();
    new["status"] = status;
    let mut list = Managed::parse_all(&obj);
    patch::track_update(
        Some(&obj),
        &new,
        &mut list,
        "kube-controller-manager",
        "apps/v1",
        "status",
        &ListCtx::default(),
        Scope::Status,
        &now,
    );
    meta_mut(&mut new).insert("managedFields".into(), Managed::render_all(&list));
    st.put(&info, new);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::tests::state;

    #[test]
    fn only_api_writes_get_a_simulated_status_and_only_when_switched_on() {
        let mut st = state();
        let d = json!({"metadata": {"namespace": "default", "name": "web"}});
        match Deployment.after_write(&st, &d, false).as_slice() {
            [FollowUp::SimulateDeployment(key)] => {
                assert_eq!(*key, ("default".to_string(), "web".to_string()))
            }
            other => panic!("expected SimulateDeployment, got {other:?}"),
        }
        assert!(Deployment.after_write(&st, &d, true).is_empty());
        st.config.simulate_deployments = false;
        assert!(Deployment.after_write(&st, &d, false).is_empty());
    }
}
