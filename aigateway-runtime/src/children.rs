//! The children of each gateway, by controller owner uid: one index per child kind,
//! maintained from that kind's watch events, so that a reconcile finds its children in
//! time proportional to their number, not to the number of cached children.

use kube::api::DynamicObject;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::{Map, Value};

use crate::group_index::GroupIndex;

/// A child by namespace and name (the kind is the index's).
pub(crate) type ChildKey = (String, String);

/// Children of one kind by the uid of their controller owner. The index keys a 64-bit
/// hash of the uid, not the uid (two copies of 36 bytes per child): a collision only
/// offers a child to the wrong gateway's lookup, which checks the owner uid of every
/// child it gets.
#[derive(Clone, Default)]
pub(crate) struct OwnerIndex(GroupIndex<ChildKey, u64>);

fn uid_hash(uid: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    uid.hash(&mut hasher);
    hasher.finish()
}

fn key_and_owner(object: &DynamicObject) -> (ChildKey, Option<u64>) {
    let owner = object
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| uid_hash(&o.uid));
    (
        (
            object.meta().namespace.clone().unwrap_or_default(),
            object.name_any(),
        ),
        owner,
    )
}

impl OwnerIndex {
    /// Follows one watch event of the kind.
    pub(crate) fn observe(&self, event: &watcher::Event<DynamicObject>) {
        self.0.observe(event, key_and_owner);
    }

    /// The children whose controller owner has `uid` (or, rarely, another uid with the
    /// same hash: callers check the owner).
    pub(crate) fn children_of(&self, uid: &str) -> Vec<ChildKey> {
        self.0.members_of(&uid_hash(uid))
    }
}

/// Keeps of a child what the loop and readiness read, and nothing else:
///
/// - metadata without managedFields and with only the annotations of our domains (the
///   cache's rule for every object), without labels (the watch selects children by our
///   controller label, so every cached child has it), and with only the controller
///   owner reference;
/// - `spec.replicas` and `status`; of a Deployment's status, what rollout and failure
///   readiness read: `observedGeneration`, `updatedReplicas`, `availableReplicas` and a
///   `ReplicaFailure` condition.
///
/// The rest of a spec (a Deployment's pod template, a ConfigMap's data) and of a
/// Deployment's status (timestamps, the `Available` and `Progressing` messages) was most
/// of the operator's memory, and nothing reads it: a child is re-applied from its desired
/// state and recognised by its applied-hash annotation, and readiness judges status.
/// [`Observed`](crate::Observed) holds children as kept here, including the ones a pass
/// has just written.
pub(crate) fn keep_child_fields(object: &mut DynamicObject) {
    let meta = &mut object.metadata;
    // The watch selects children by our controller label, and nothing reads the others.
    meta.labels = None;
    if let Some(owners) = meta.owner_references.as_mut() {
        owners.retain(|owner| owner.controller == Some(true));
    }
    let replicas = object.data.pointer("/spec/replicas").cloned();
    let mut status = object.data.get_mut("status").map(Value::take);
    let deployment = object
        .types
        .as_ref()
        .is_some_and(|t| t.api_version == "apps/v1" && t.kind == "Deployment");
    if deployment && let Some(Value::Object(fields)) = status.as_mut() {
        fields.retain(|key, _| {
            matches!(
                key.as_str(),
                "observedGeneration" | "updatedReplicas" | "availableReplicas" | "conditions"
            )
        });
        if let Some(Value::Array(conditions)) = fields.get_mut("conditions") {
            conditions.retain(|c| c["type"] == "ReplicaFailure");
            if conditions.is_empty() {
                fields.remove("conditions");
            }
        }
    }
    let mut kept = Map::new();
    if let Some(replicas) = replicas {
        kept.insert("spec".into(), serde_json::json!({ "replicas": replicas }));
    }
    if let Some(status) = status {
        kept.insert("status".into(), status);
    }
    object.data = Value::Object(kept);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use kube::api::ApiResource;

    #[test]
    fn a_cached_child_keeps_replicas_and_status_and_no_other_content() {
        use k8s_openapi::api::apps::v1::Deployment;
        let resource = ApiResource::erase::<Deployment>(&());
        let mut deployment = DynamicObject::new("gw", &resource)
            .within("ns")
            .data(serde_json::json!({
                "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "proxy", "image": "litellm"}]}}},
                "status": {"observedGeneration": 3, "availableReplicas": 2, "readyReplicas": 2, "conditions": [
                    {"type": "Available", "status": "True", "message": "Deployment has minimum availability."},
                    {"type": "ReplicaFailure", "status": "False"},
                ]},
            }));
        deployment.metadata.labels = Some(
            [
                (names::MANAGED_BY_LABEL, "litellm"),
                (names::CONTROLLER_LABEL, "0123456789abcdef"),
                ("app", "gw"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        );
        deployment.metadata.owner_references = Some(vec![
            OwnerReference {
                controller: Some(true),
                uid: "gw-uid".into(),
                ..Default::default()
            },
            OwnerReference {
                uid: "other".into(),
                ..Default::default()
            },
        ]);
        keep_child_fields(&mut deployment);
        assert_eq!(
            deployment.data,
            serde_json::json!({
                "spec": {"replicas": 2},
                "status": {"observedGeneration": 3, "availableReplicas": 2, "conditions": [{"type": "ReplicaFailure", "status": "False"}]},
            })
        );
        assert!(deployment.labels().is_empty());
        assert_eq!(deployment.owner_references().len(), 1);
        let typed: Deployment = deployment.try_parse().unwrap();
        assert_eq!(typed.status.unwrap().available_replicas, Some(2));

        let mut config = child("gw-config", None)
            .data(serde_json::json!({"data": {"config.yaml": "x".repeat(4096)}}));
        keep_child_fields(&mut config);
        assert_eq!(config.data, serde_json::json!({}));
    }

    fn child(name: &str, owner: Option<&str>) -> DynamicObject {
        let resource = ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&());
        let mut object = DynamicObject::new(name, &resource).within("ns");
        object.metadata.owner_references = owner.map(|uid| {
            vec![OwnerReference {
                uid: uid.into(),
                controller: Some(true),
                ..Default::default()
            }]
        });
        object
    }

    fn names(index: &OwnerIndex, uid: &str) -> Vec<String> {
        let mut names: Vec<String> = index.children_of(uid).into_iter().map(|c| c.1).collect();
        names.sort();
        names
    }

    #[test]
    fn children_follow_applies_deletes_owner_changes_and_relists() {
        let index = OwnerIndex::default();
        index.observe(&watcher::Event::Apply(child("a", Some("u1"))));
        index.observe(&watcher::Event::Apply(child("b", Some("u1"))));
        index.observe(&watcher::Event::Apply(child("c", Some("u2"))));
        assert_eq!(names(&index, "u1"), ["a", "b"]);
        index.observe(&watcher::Event::Apply(child("b", Some("u2"))));
        assert_eq!(names(&index, "u1"), ["a"]);
        assert_eq!(names(&index, "u2"), ["b", "c"]);
        index.observe(&watcher::Event::Apply(child("a", None)));
        index.observe(&watcher::Event::Delete(child("c", Some("u2"))));
        assert!(names(&index, "u1").is_empty());
        assert_eq!(names(&index, "u2"), ["b"]);

        // A relist replaces the index at its end; until then the old one answers.
        index.observe(&watcher::Event::Init);
        index.observe(&watcher::Event::InitApply(child("d", Some("u1"))));
        assert_eq!(names(&index, "u2"), ["b"]);
        index.observe(&watcher::Event::InitDone);
        assert_eq!(names(&index, "u1"), ["d"]);
        assert!(names(&index, "u2").is_empty(), "b went during the gap");
    }
}
