//! Server-side apply of children with ownership labels, and pruning of the rest.
//!
//! A child is applied only when its content differs from what we applied last
//! ([`names::APPLIED_HASH_ANNOTATION`] on the cached object), so a converged cluster sees
//! no writes. Children carrying our labels and owned by the gateway but not desired this
//! round are deleted, with the uid and resourceVersion we saw as preconditions.
//!
//! Nothing is written over an object the gateway does not control. Before any write,
//! every desired child is looked up: in the (label-selected) child cache, and when absent
//! there with a targeted metadata GET, because an object without our labels is invisible
//! to the cache. An object whose controller owner is another object is a
//! [`NameConflict`]: the gateway gets nothing applied at all. An object whose controller
//! owner is this gateway (for example created by another operator for it) is adopted in
//! place, so a Service keeps its ClusterIP.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use kube::{Client, Resource, ResourceExt};
use sha2::{Digest, Sha256};

use crate::children::{CachedChild, ChildStore};
use crate::names;

/// The identity of a child: kind plus namespaced name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChildId {
    /// `apiVersion` of the child.
    pub api_version: String,
    /// `kind` of the child.
    pub kind: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl std::fmt::Display for ChildId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// Errors while applying or pruning children.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A desired object lacks `apiVersion`/`kind` or a name.
    #[error("desired child #{index} has no {missing}: set it in desired_state")]
    Incomplete {
        /// Position in the desired list.
        index: usize,
        /// What is missing.
        missing: &'static str,
    },
    /// A desired object is in another namespace than its gateway (owner references
    /// cannot cross namespaces, so garbage collection would delete it).
    #[error(
        "desired child {0} is not in the gateway's namespace `{1}`: children must live with their gateway"
    )]
    ForeignNamespace(ChildId, String),
    /// A desired object's kind is not one of `child_kinds()`.
    #[error(
        "desired child {0} is of a kind not declared in child_kinds(): declare it so the loop can watch it"
    )]
    UndeclaredKind(ChildId),
    /// A desired object's kind is an optional child kind the API server does not serve
    /// now (its CRD is not installed, or was removed).
    #[error(
        "desired child {0} is of a kind the API server does not serve (its CRD is not installed): leave it out while Context::serves says false"
    )]
    KindNotServed(ChildId),
    /// Objects with the names of desired children exist and are not controlled by the
    /// gateway; nothing was applied.
    #[error(
        "{}: rename or delete {}, or give the gateway another name",
        .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
        if .0.len() == 1 { "it" } else { "them" }
    )]
    NameConflict(Vec<NameConflict>),
    /// The API server refused or failed a read or write.
    #[error(
        "could not {verb} {child}: {}",
        crate::kube_error::describe_kube_error(source)
    )]
    Api {
        /// `read`, `adopt`, `apply` or `delete`.
        verb: &'static str,
        /// The child.
        child: ChildId,
        /// The client error (boxed: it is large and rare).
        #[source]
        source: Box<kube::Error>,
    },
}

/// A desired child whose name is taken by an object the gateway does not control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameConflict {
    /// The child that could not be written.
    pub child: ChildId,
    /// The existing object's controller owner as `Kind name`, if it has one.
    pub controller: Option<String>,
}

impl std::fmt::Display for NameConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.controller {
            Some(owner) => write!(f, "{} already exists, controlled by {owner}", self.child),
            None => write!(
                f,
                "{} already exists and is not controlled by this gateway",
                self.child
            ),
        }
    }
}

/// A child kind with its label-selected cache.
#[derive(Clone)]
pub(crate) struct ChildCache {
    /// The kind.
    pub(crate) resource: ApiResource,
    /// Its cache (children carrying our controller label), by name and by owner.
    pub(crate) store: ChildStore,
    /// Whether the API server serves the kind (an optional kind's CRD may be missing).
    pub(crate) installed: Arc<std::sync::atomic::AtomicBool>,
}

impl ChildCache {
    /// Whether the API server serves the kind now, as its watch last found out.
    pub(crate) fn is_served(&self) -> bool {
        self.installed.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Everything needed to apply one gateway's children.
pub(crate) struct Applier<'a> {
    /// The client to write with.
    pub(crate) client: &'a Client,
    /// The field manager (also the managed-by label value).
    pub(crate) field_manager: &'a str,
    /// The value of [`names::CONTROLLER_LABEL`] for our controller.
    pub(crate) controller_id: &'a str,
    /// Caches of every child kind.
    pub(crate) caches: &'a [ChildCache],
}

/// What applying did.
#[derive(Debug, Default, Clone)]
pub struct ApplyOutcome {
    /// Children written this round.
    pub applied: Vec<ChildId>,
    /// Children left alone because they already match.
    pub unchanged: usize,
    /// Children deleted because they are no longer desired.
    pub pruned: Vec<ChildId>,
    /// The objects the API server returned this round for the children written, and for
    /// those of ours read because their cache had not seen them yet: fresher than the
    /// caches, so readiness judges the new generation, not the old one, and never takes
    /// a child the cache lags behind on for a missing one.
    pub fresh: Vec<DynamicObject>,
}

/// The labels every child of `gateway_name` carries.
pub fn child_labels(
    field_manager: &str,
    controller_id: &str,
    gateway_name: &str,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        (names::MANAGED_BY_LABEL.to_owned(), field_manager.to_owned()),
        (names::CONTROLLER_LABEL.to_owned(), controller_id.to_owned()),
        (
            names::PART_OF_LABEL.to_owned(),
            names::PART_OF_VALUE.to_owned(),
        ),
        (names::GATEWAY_LABEL.to_owned(), gateway_name.to_owned()),
    ])
}

/// A gateway's controller owner reference.
pub fn owner_reference<G: Resource<DynamicType = ()>>(gateway: &G) -> Option<OwnerReference> {
    gateway.controller_owner_ref(&())
}

/// Adds labels, owner reference, default namespace and the content hash to a child.
pub fn prepare_child(
    mut child: DynamicObject,
    index: usize,
    labels: &BTreeMap<String, String>,
    owner: &OwnerReference,
    namespace: &str,
) -> Result<(ChildId, DynamicObject), ApplyError> {
    let types = child.types.clone().ok_or(ApplyError::Incomplete {
        index,
        missing: "apiVersion/kind",
    })?;
    let name = child
        .metadata
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or(ApplyError::Incomplete {
            index,
            missing: "metadata.name",
        })?;
    let gateway_namespace = namespace;
    let namespace = child
        .metadata
        .namespace
        .get_or_insert_with(|| namespace.to_owned())
        .clone();
    if namespace != gateway_namespace {
        let id = ChildId {
            api_version: types.api_version,
            kind: types.kind,
            namespace,
            name,
        };
        return Err(ApplyError::ForeignNamespace(
            id,
            gateway_namespace.to_owned(),
        ));
    }
    child.labels_mut().extend(labels.clone());
    child.metadata.owner_references = Some(vec![owner.clone()]);
    child.metadata.managed_fields = None;
    child.metadata.resource_version = None;
    child
        .annotations_mut()
        .remove(names::APPLIED_HASH_ANNOTATION);
    let hash = content_hash(&child);
    child
        .annotations_mut()
        .insert(names::APPLIED_HASH_ANNOTATION.to_owned(), hash);
    Ok((
        ChildId {
            api_version: types.api_version,
            kind: types.kind,
            namespace,
            name,
        },
        child,
    ))
}

/// SHA-256 over the canonical JSON of an object (serde_json sorts map keys).
pub fn content_hash(object: &DynamicObject) -> String {
    let value = serde_json::to_value(object).expect("a DynamicObject serialises");
    let bytes = serde_json::to_vec(&value).expect("a JSON value serialises");
    let digest = Sha256::digest(&bytes);
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// Who holds the name of a desired child.
enum Existing {
    /// Nothing: the child will be created.
    Absent,
    /// An object this gateway controls, with the hash we last applied to it (none for
    /// an object created by someone else for this gateway: it is adopted), and the
    /// object itself when it was read from the API server (its cache had not seen it).
    Ours(Option<String>, Option<Box<DynamicObject>>),
    /// An object controlled by another owner (`Kind name`) or by nobody.
    Foreign(Option<String>),
}

fn cache_for<'c>(caches: &'c [ChildCache], id: &ChildId) -> Option<&'c ChildCache> {
    caches
        .iter()
        .find(|c| c.resource.api_version == id.api_version && c.resource.kind == id.kind)
}

impl Applier<'_> {
    /// Checks every desired child for a [`NameConflict`], then applies each one that
    /// changed and deletes owned children that were not desired. Writes nothing when any
    /// child conflicts; stops at the first failed write (the next round retries).
    pub(crate) async fn apply<G: Resource<DynamicType = ()>>(
        &self,
        gateway: &G,
        desired: Vec<DynamicObject>,
    ) -> Result<ApplyOutcome, ApplyError> {
        let mut outcome = ApplyOutcome::default();
        let owner =
            owner_reference(gateway).expect("a gateway read from the API has a name and uid");
        let namespace = gateway.meta().namespace.clone().unwrap_or_default();
        let labels = child_labels(
            self.field_manager,
            self.controller_id,
            &gateway.meta().name.clone().unwrap_or_default(),
        );
        let mut wanted = HashSet::new();
        let mut changed = Vec::new();
        let mut adopted = Vec::new();
        let mut conflicts = Vec::new();
        for (index, child) in desired.into_iter().enumerate() {
            let (id, child) = prepare_child(child, index, &labels, &owner, &namespace)?;
            let cache = cache_for(self.caches, &id)
                .ok_or_else(|| ApplyError::UndeclaredKind(id.clone()))?;
            if !cache.is_served() {
                return Err(ApplyError::KindNotServed(id));
            }
            wanted.insert(id.clone());
            match self.existing(cache, &id, &owner.uid).await? {
                Existing::Foreign(controller) => conflicts.push(NameConflict {
                    child: id,
                    controller,
                }),
                Existing::Ours(hash, read)
                    if hash.as_deref()
                        == child
                            .annotations()
                            .get(names::APPLIED_HASH_ANNOTATION)
                            .map(String::as_str) =>
                {
                    outcome.unchanged += 1;
                    // Our own write the cache has not seen yet (its watch lags): what
                    // the API server has is what readiness judges.
                    outcome.fresh.extend(read.map(|object| *object));
                }
                // Created for this gateway by someone else (the Go operator, say): taken
                // over whole once, so that none of their list entries (a container port
                // named like ours, env) survives next to ours and breaks the object.
                Existing::Ours(None, _) => adopted.push((id, child, cache)),
                Existing::Ours(Some(_), _) | Existing::Absent => changed.push((id, child, cache)),
            }
        }
        if !conflicts.is_empty() {
            return Err(ApplyError::NameConflict(conflicts));
        }
        for (id, child, cache) in adopted {
            // A JSON merge patch replaces every list it names and keeps what it does
            // not name (the uid, a Service's ClusterIP). Server-side apply would merge
            // lists by key and keep the previous owner's entries.
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), &id.namespace, &cache.resource);
            let params = PatchParams {
                field_manager: Some(self.field_manager.to_owned()),
                ..PatchParams::default()
            };
            let written = api
                .patch(&id.name, &params, &Patch::Merge(&child))
                .await
                .map_err(|source| ApplyError::Api {
                    verb: "adopt",
                    child: id.clone(),
                    source: Box::new(source),
                })?;
            outcome.fresh.push(written);
            outcome.applied.push(id);
        }
        for (id, child, cache) in changed {
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), &id.namespace, &cache.resource);
            let params = PatchParams::apply(self.field_manager).force();
            let written = api
                .patch(&id.name, &params, &Patch::Apply(&child))
                .await
                .map_err(|source| ApplyError::Api {
                    verb: "apply",
                    child: id.clone(),
                    source: Box::new(source),
                })?;
            outcome.fresh.push(written);
            outcome.applied.push(id);
        }
        for (id, object) in self
            .owned_children(&owner.uid)
            .into_iter()
            .filter(|(id, _)| !wanted.contains(id))
        {
            self.delete(&id, &object).await?;
            outcome.pruned.push(id);
        }
        Ok(outcome)
    }

    /// What holds the name of child `id` now. The cache answers for objects with our
    /// labels; anything else needs a GET, since unlabelled objects are not cached (nor
    /// ours yet, while the watch lags behind our write): a whole object, which readiness
    /// judges when it is ours.
    async fn existing(
        &self,
        cache: &ChildCache,
        id: &ChildId,
        gateway_uid: &str,
    ) -> Result<Existing, ApplyError> {
        let found = match cache.store.get(&id.namespace, &id.name) {
            Some(live) => {
                return Ok(match live.controller() {
                    Some(o) if o.uid == gateway_uid => Existing::Ours(
                        live.annotation(names::APPLIED_HASH_ANNOTATION)
                            .map(str::to_owned),
                        None,
                    ),
                    Some(o) => Existing::Foreign(Some(format!("{} {}", o.kind, o.name))),
                    None => Existing::Foreign(None),
                });
            }
            None => {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(self.client.clone(), &id.namespace, &cache.resource);
                match api.get_opt(&id.name).await {
                    Ok(Some(found)) => found,
                    Ok(None) => return Ok(Existing::Absent),
                    Err(source) => {
                        return Err(ApplyError::Api {
                            verb: "read",
                            child: id.clone(),
                            source: Box::new(source),
                        });
                    }
                }
            }
        };
        let controller =
            (found.metadata.owner_references.iter().flatten()).find(|o| o.controller == Some(true));
        Ok(match controller {
            Some(o) if o.uid == gateway_uid => Existing::Ours(
                (found.metadata.annotations.as_ref())
                    .and_then(|a| a.get(names::APPLIED_HASH_ANNOTATION).cloned()),
                Some(Box::new(found)),
            ),
            Some(o) => Existing::Foreign(Some(format!("{} {}", o.kind, o.name))),
            None => Existing::Foreign(None),
        })
    }

    /// Every cached child owned by the gateway with `uid`, found through the caches'
    /// owner indexes (no scan). A kind the API server does not serve now is left out: its
    /// CRD was removed (which deleted its objects) or an API server restarting has not
    /// registered it yet (its objects are still there, and must not be pruned).
    ///
    /// Our labels need no check: the cache holds only objects whose controller label is
    /// ours (its watch selects them by it), and keeps no labels (see
    /// `keep_child_fields`).
    pub(crate) fn owned_children(&self, uid: &str) -> Vec<(ChildId, Arc<CachedChild>)> {
        let mut children = Vec::new();
        for cache in self.caches.iter().filter(|cache| cache.is_served()) {
            for child in cache.store.children_of(uid) {
                let id = ChildId {
                    api_version: cache.resource.api_version.clone(),
                    kind: cache.resource.kind.clone(),
                    namespace: child.namespace().to_owned(),
                    name: child.name().to_owned(),
                };
                children.push((id, child));
            }
        }
        children
    }

    /// Deletes every cached child owned by the gateway with `uid`.
    pub(crate) async fn delete_all(&self, uid: &str) -> Result<Vec<ChildId>, ApplyError> {
        let mut deleted = Vec::new();
        for (id, object) in self.owned_children(uid) {
            self.delete(&id, &object).await?;
            deleted.push(id);
        }
        Ok(deleted)
    }

    /// Deletes the child `id` only if it is still the object we saw (same uid and
    /// resourceVersion): an object replaced or re-labelled since (adopted by another
    /// controller) fails the precondition instead of being deleted.
    async fn delete(&self, id: &ChildId, seen: &CachedChild) -> Result<(), ApplyError> {
        let cache =
            cache_for(self.caches, id).ok_or_else(|| ApplyError::UndeclaredKind(id.clone()))?;
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &id.namespace, &cache.resource);
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: seen.uid().map(str::to_owned),
                resource_version: seen.resource_version().map(str::to_owned),
            }),
            ..DeleteParams::background()
        };
        match api.delete(&id.name, &params).await {
            Ok(_) => Ok(()),
            // Already gone (a previous round or garbage collection got there first).
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(source) => Err(ApplyError::Api {
                verb: "delete",
                child: id.clone(),
                source: Box::new(source),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::TypeMeta;

    fn config_map(name: &str, data: &str) -> DynamicObject {
        let mut object = DynamicObject {
            types: Some(TypeMeta {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
            }),
            metadata: Default::default(),
            data: serde_json::json!({"data": {"k": data}}),
        };
        object.metadata.name = Some(name.into());
        object
    }

    fn owner() -> OwnerReference {
        OwnerReference {
            api_version: "x/v1".into(),
            kind: "G".into(),
            name: "gw".into(),
            uid: "u1".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    #[test]
    fn prepared_children_carry_labels_owner_namespace_and_a_stable_hash() {
        let labels = child_labels("mgr", "c1", "gw");
        let (id, a) = prepare_child(config_map("cm", "1"), 0, &labels, &owner(), "ns").unwrap();
        assert_eq!(id.to_string(), "ConfigMap ns/cm");
        assert_eq!(a.labels().get(names::GATEWAY_LABEL).unwrap(), "gw");
        assert_eq!(a.labels().get(names::MANAGED_BY_LABEL).unwrap(), "mgr");
        assert_eq!(a.labels().get(names::CONTROLLER_LABEL).unwrap(), "c1");
        let mut elsewhere = config_map("cm", "1");
        elsewhere.metadata.namespace = Some("other".into());
        let err = prepare_child(elsewhere, 0, &labels, &owner(), "ns").unwrap_err();
        assert!(matches!(err, ApplyError::ForeignNamespace(..)), "{err}");
        assert_eq!(a.metadata.owner_references.as_ref().unwrap()[0].uid, "u1");
        let (_, again) = prepare_child(a.clone(), 0, &labels, &owner(), "ns").unwrap();
        assert_eq!(
            a.annotations(),
            again.annotations(),
            "re-preparing keeps the hash"
        );
        let (_, changed) =
            prepare_child(config_map("cm", "2"), 0, &labels, &owner(), "ns").unwrap();
        assert_ne!(
            a.annotations().get(names::APPLIED_HASH_ANNOTATION),
            changed.annotations().get(names::APPLIED_HASH_ANNOTATION)
        );
    }

    #[test]
    fn incomplete_children_are_reported() {
        let mut nameless = config_map("x", "1");
        nameless.metadata.name = None;
        let err =
            prepare_child(nameless, 3, &child_labels("m", "c", "g"), &owner(), "ns").unwrap_err();
        assert_eq!(
            err.to_string(),
            "desired child #3 has no metadata.name: set it in desired_state"
        );
    }
}
