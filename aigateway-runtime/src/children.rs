//! The cache of each child kind: every child with our controller label, kept densely
//! (a [`CachedChild`] of a few hundred bytes) and findable by name and by the uid of its
//! controller owner, so that a reconcile finds its children in time proportional to
//! their number, not to the number of cached children.
//!
//! kube's `Store` would hold a whole `DynamicObject` per child (an `ObjectMeta` of 30
//! optional fields, a `serde_json` tree whose every map is a B-tree node of ~600
//! bytes) behind an `ObjectRef` key that carries its own copy of the kind's
//! `ApiResource`: about 10 KB per gateway, most of the operator's memory at 10,000
//! gateways (`docs/reference/benchmarks.md`, heap profile).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use hashbrown::HashTable;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DynamicObject, TypeMeta};
use kube::runtime::watcher;
use serde_json::{Map, Value};

fn uid_hash(uid: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    uid.hash(&mut hasher);
    hasher.finish()
}

/// A child kind, and whether the API server serves it (an optional kind's CRD may be
/// missing).
pub(crate) type ChildKindState = (
    kube::api::ApiResource,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
);

/// One child as the cache keeps it: what [`keep_child_fields`] keeps, in owned boxes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CachedChild {
    namespace: Box<str>,
    name: Box<str>,
    uid: Option<Box<str>>,
    resource_version: Option<Box<str>>,
    generation: Option<i64>,
    controller: Option<Box<OwnerReference>>,
    annotations: Box<[(Box<str>, Box<str>)]>,
    /// `spec.replicas` and `status` as compact JSON ("" for none): parsed, each
    /// non-empty map would cost a B-tree node; readers parse it once per pass.
    fields: Box<str>,
}

impl CachedChild {
    /// What the cache keeps of `object` (see [`keep_child_fields`]).
    pub(crate) fn of(object: &DynamicObject) -> Self {
        let mut kept = DynamicObject {
            types: object.types.clone(),
            metadata: ObjectMeta {
                annotations: object.metadata.annotations.clone(),
                owner_references: object.metadata.owner_references.clone(),
                ..ObjectMeta::default()
            },
            data: object.data.clone(),
        };
        crate::names::keep_cached_annotations(&mut kept.metadata);
        keep_child_fields(&mut kept);
        let meta = &object.metadata;
        let boxed = |s: &Option<String>| s.as_deref().map(Box::from);
        let fields = match &kept.data {
            Value::Object(map) if map.is_empty() => String::new(),
            data => data.to_string(),
        };
        CachedChild {
            namespace: meta.namespace.as_deref().unwrap_or_default().into(),
            name: meta.name.as_deref().unwrap_or_default().into(),
            uid: boxed(&meta.uid),
            resource_version: boxed(&meta.resource_version),
            generation: meta.generation,
            controller: (kept.metadata.owner_references.unwrap_or_default())
                .into_iter()
                .next()
                .map(Box::new),
            annotations: (kept.metadata.annotations.unwrap_or_default())
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            fields: fields.into(),
        }
    }

    /// The child's namespace.
    pub(crate) fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The child's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The uid, for a delete's precondition.
    pub(crate) fn uid(&self) -> Option<&str> {
        self.uid.as_deref()
    }

    /// The resourceVersion, for a delete's precondition.
    pub(crate) fn resource_version(&self) -> Option<&str> {
        self.resource_version.as_deref()
    }

    /// The controller owner reference.
    pub(crate) fn controller(&self) -> Option<&OwnerReference> {
        self.controller.as_deref()
    }

    /// The value of one of the cached annotations (those of our domains).
    pub(crate) fn annotation(&self, key: &str) -> Option<&str> {
        (self.annotations.iter())
            .find(|(k, _)| &**k == key)
            .map(|(_, v)| &**v)
    }

    /// Whether the gateway with `uid` controls this child.
    pub(crate) fn controlled_by(&self, uid: &str) -> bool {
        self.controller().is_some_and(|owner| owner.uid == uid)
    }

    /// The child as an object of kind `types`, holding what the cache keeps.
    pub(crate) fn to_object(&self, types: &TypeMeta) -> DynamicObject {
        let owned = |s: &Option<Box<str>>| s.as_deref().map(str::to_owned);
        let annotations = (!self.annotations.is_empty()).then(|| {
            (self.annotations.iter())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        });
        let data = if self.fields.is_empty() {
            Value::Object(Map::new())
        } else {
            // Written by `of` from a `Value`: it parses.
            serde_json::from_str(&self.fields).unwrap_or_else(|_| Value::Object(Map::new()))
        };
        DynamicObject {
            types: Some(types.clone()),
            metadata: ObjectMeta {
                namespace: Some(self.namespace.to_string()),
                name: Some(self.name.to_string()),
                uid: owned(&self.uid),
                resource_version: owned(&self.resource_version),
                generation: self.generation,
                annotations,
                owner_references: self.controller.as_deref().map(|o| vec![o.clone()]),
                ..ObjectMeta::default()
            },
            data,
        }
    }
}

#[derive(Default)]
struct Children {
    hasher: std::hash::RandomState,
    /// Keyed by the entry's own namespace and name: no second copy of either.
    by_name: HashTable<Arc<CachedChild>>,
    /// By a 64-bit hash of the controller owner's uid (readers check the uid itself).
    by_owner: HashMap<u64, Vec<Arc<CachedChild>>>,
    /// Filled during a relist (between `Init` and `InitDone`), then swapped in, as
    /// kube's reflector swaps its store: until then the old state answers.
    relist: Option<Vec<CachedChild>>,
}

fn name_hash(hasher: &std::hash::RandomState, namespace: &str, name: &str) -> u64 {
    hasher.hash_one((namespace, name))
}

impl Children {
    fn remove(&mut self, namespace: &str, name: &str) {
        let hash = name_hash(&self.hasher, namespace, name);
        let Ok(entry) = self
            .by_name
            .find_entry(hash, |c| &*c.namespace == namespace && &*c.name == name)
        else {
            return;
        };
        let (old, _) = entry.remove();
        if let Some(owner) = old.controller() {
            let key = uid_hash(&owner.uid);
            if let Some(group) = self.by_owner.get_mut(&key) {
                group.retain(|c| !Arc::ptr_eq(c, &old));
                if group.is_empty() {
                    self.by_owner.remove(&key);
                }
            }
        }
    }

    fn insert(&mut self, child: CachedChild) {
        self.remove(&child.namespace, &child.name);
        let child = Arc::new(child);
        if let Some(owner) = child.controller() {
            (self.by_owner.entry(uid_hash(&owner.uid)).or_default()).push(child.clone());
        }
        let hasher = &self.hasher;
        let hash = name_hash(hasher, &child.namespace, &child.name);
        self.by_name
            .insert_unique(hash, child, |c| name_hash(hasher, &c.namespace, &c.name));
    }
}

/// The cache of one child kind. Clones share it.
#[derive(Clone, Default)]
pub(crate) struct ChildStore(Arc<RwLock<Children>>);

impl ChildStore {
    fn read(&self) -> RwLockReadGuard<'_, Children> {
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Children> {
        self.0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Follows one watch event of the kind (objects as the watch projected them).
    pub(crate) fn observe(&self, event: &watcher::Event<DynamicObject>) {
        // Projected before the lock is taken: readers never wait for a conversion.
        let child = match event {
            watcher::Event::Apply(object) | watcher::Event::InitApply(object) => {
                Some(CachedChild::of(object))
            }
            _ => None,
        };
        let mut children = self.write();
        match (event, child) {
            (watcher::Event::Apply(_), Some(child)) => children.insert(child),
            (watcher::Event::Delete(object), _) => children.remove(
                object.metadata.namespace.as_deref().unwrap_or_default(),
                object.metadata.name.as_deref().unwrap_or_default(),
            ),
            (watcher::Event::Init, _) => children.relist = Some(Vec::new()),
            (watcher::Event::InitApply(_), Some(child)) => {
                children.relist.get_or_insert_with(Vec::new).push(child);
            }
            (watcher::Event::InitDone, _) => {
                let listed = children.relist.take().unwrap_or_default();
                children.by_name = HashTable::with_capacity(listed.len());
                children.by_owner = HashMap::with_capacity(listed.len());
                for child in listed {
                    children.insert(child);
                }
            }
            (watcher::Event::Apply(_) | watcher::Event::InitApply(_), None) => {}
        }
    }

    /// The child `namespace/name`, if cached.
    pub(crate) fn get(&self, namespace: &str, name: &str) -> Option<Arc<CachedChild>> {
        let children = self.read();
        let hash = name_hash(&children.hasher, namespace, name);
        (children.by_name)
            .find(hash, |c| &*c.namespace == namespace && &*c.name == name)
            .cloned()
    }

    /// The children whose controller owner has `uid`.
    pub(crate) fn children_of(&self, uid: &str) -> Vec<Arc<CachedChild>> {
        let children = self.read();
        (children.by_owner.get(&uid_hash(uid)).into_iter().flatten())
            .filter(|c| c.controlled_by(uid))
            .cloned()
            .collect()
    }

    /// Every cached child.
    pub(crate) fn all(&self) -> Vec<Arc<CachedChild>> {
        self.read().by_name.iter().cloned().collect()
    }

    /// How many children are cached.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.read().by_name.len()
    }
}

/// Keeps of a child what the loop and readiness read, and nothing else:
///
/// - metadata without managedFields and with only the annotations of our domains (the
///   cache's rule for every object), without labels (the watch selects children by our
///   controller label, so every cached child has it), and with only the controller
///   owner reference;
/// - `spec.replicas` and `status`; of a Deployment's status, what rollout and failure
///   readiness read: `observedGeneration`, `replicas`, `updatedReplicas`,
///   `availableReplicas` and a `ReplicaFailure` condition.
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
                "observedGeneration"
                    | "replicas"
                    | "updatedReplicas"
                    | "availableReplicas"
                    | "conditions"
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
    use kube::ResourceExt;
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

    fn names(store: &ChildStore, uid: &str) -> Vec<String> {
        let mut names: Vec<String> = (store.children_of(uid).into_iter())
            .map(|c| c.name().to_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn children_follow_applies_deletes_owner_changes_and_relists() {
        let store = ChildStore::default();
        store.observe(&watcher::Event::Apply(child("a", Some("u1"))));
        store.observe(&watcher::Event::Apply(child("b", Some("u1"))));
        store.observe(&watcher::Event::Apply(child("c", Some("u2"))));
        assert_eq!(names(&store, "u1"), ["a", "b"]);
        store.observe(&watcher::Event::Apply(child("b", Some("u2"))));
        assert_eq!(names(&store, "u1"), ["a"]);
        assert_eq!(names(&store, "u2"), ["b", "c"]);
        store.observe(&watcher::Event::Apply(child("a", None)));
        store.observe(&watcher::Event::Delete(child("c", Some("u2"))));
        assert!(names(&store, "u1").is_empty());
        assert_eq!(names(&store, "u2"), ["b"]);
        assert!(
            store.get("ns", "a").is_some(),
            "an orphan is still cached by name"
        );
        assert!(store.get("ns", "c").is_none());
        assert!(store.get("other", "b").is_none(), "names are per namespace");
        assert_eq!(store.len(), 2);

        // A relist replaces the cache at its end; until then the old one answers.
        store.observe(&watcher::Event::Init);
        store.observe(&watcher::Event::InitApply(child("d", Some("u1"))));
        assert_eq!(names(&store, "u2"), ["b"]);
        store.observe(&watcher::Event::InitDone);
        assert_eq!(names(&store, "u1"), ["d"]);
        assert!(names(&store, "u2").is_empty(), "b went during the gap");
        assert!(store.get("ns", "b").is_none());
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn a_cached_child_answers_as_the_projected_object_did() {
        let resource = ApiResource::erase::<k8s_openapi::api::apps::v1::Deployment>(&());
        let mut object = child("gw", Some("u1")).data(serde_json::json!({
            "spec": {"replicas": 3, "template": {}},
            "status": {"observedGeneration": 4, "updatedReplicas": 3, "replicas": 3},
        }));
        object.types = Some(TypeMeta {
            api_version: resource.api_version.clone(),
            kind: resource.kind.clone(),
        });
        object.metadata.uid = Some("child-uid".into());
        object.metadata.resource_version = Some("42".into());
        object.metadata.generation = Some(4);
        object.metadata.annotations = Some(
            [
                (names::APPLIED_HASH_ANNOTATION.to_owned(), "h1".to_owned()),
                ("example.com/note".to_owned(), "not ours".to_owned()),
            ]
            .into(),
        );
        object.metadata.labels = Some([("app".to_owned(), "gw".to_owned())].into());

        let cached = CachedChild::of(&object);
        assert_eq!(
            cached.annotation(names::APPLIED_HASH_ANNOTATION),
            Some("h1")
        );
        assert_eq!(cached.annotation("example.com/note"), None);
        assert!(cached.controlled_by("u1") && !cached.controlled_by("u2"));
        assert_eq!(
            (cached.uid(), cached.resource_version()),
            (Some("child-uid"), Some("42"))
        );

        let mut projected = object.clone();
        names::keep_cached_annotations(&mut projected.metadata);
        keep_child_fields(&mut projected);
        let rebuilt = cached.to_object(projected.types.as_ref().unwrap());
        assert_eq!(rebuilt, projected);
        let typed: k8s_openapi::api::apps::v1::Deployment = rebuilt.clone().try_parse().unwrap();
        assert_eq!(typed.spec.unwrap().replicas, Some(3));
        assert_eq!(
            CachedChild::of(&rebuilt),
            cached,
            "projecting again changes nothing"
        );
    }
}
