//! The watch of an attached kind and its index from each gateway to the objects attached
//! to it: a changed object re-runs the gateway it names now and the one it named before,
//! a changed gateway looks at its objects, and a pass sees the objects its gateway
//! admits (see [`allowed_routes`](crate::attached::AllowedRoutes)).
//!
//! A cache, below the trait ([`Context::attached`](crate::Context::attached) reads it)
//! and below the writes and the pass that use it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use aigateway_api::NamespacedName;
use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use futures::{Stream, StreamExt};
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::{WatchStreamExt, reflector as reflect};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::attached::allowed_routes::{
    Consent, NOT_ALLOWED_BY_GATEWAY, NamespaceLabels, consent_of, not_allowed_message,
    watch_namespaces,
};
use crate::attached::declare::{AttachedDecision, AttachedKind, GatewayOf, NotAttached};
use crate::dynamic::from_dynamic;
use crate::kind::GatewayKind;
use crate::watches::{CacheTracking, dynamic_api, mark_listed, touched_once_stored, tracked};

/// Which objects are attached to which gateway, kept from the watch events.
#[derive(Debug, Default)]
pub(crate) struct AttachedIndex {
    by_gateway: HashMap<NamespacedName, BTreeSet<NamespacedName>>,
    gateway_of: HashMap<NamespacedName, NamespacedName>,
    /// The objects of a relist in progress, replacing the index when it ends.
    relist: Option<HashMap<NamespacedName, NamespacedName>>,
}

impl AttachedIndex {
    /// Records that `object` is attached to `gateway` (or to nothing); returns the
    /// gateways to reconcile: the one it named before and the one it names now.
    fn set(
        &mut self,
        object: NamespacedName,
        gateway: Option<NamespacedName>,
    ) -> Vec<NamespacedName> {
        let before = match &gateway {
            Some(gateway) => self.gateway_of.insert(object.clone(), gateway.clone()),
            None => self.gateway_of.remove(&object),
        };
        if let Some(before) = &before
            && let Some(objects) = self.by_gateway.get_mut(before)
        {
            objects.remove(&object);
            if objects.is_empty() {
                self.by_gateway.remove(before);
            }
        }
        if let Some(gateway) = &gateway {
            self.by_gateway
                .entry(gateway.clone())
                .or_default()
                .insert(object);
        }
        let mut affected: Vec<NamespacedName> = before.into_iter().chain(gateway).collect();
        affected.dedup();
        affected
    }

    /// Applies one watch event; returns the gateways whose attached objects changed.
    pub(crate) fn on_event(
        &mut self,
        event: &watcher::Event<DynamicObject>,
        gateway_of: &dyn Fn(&DynamicObject) -> Option<NamespacedName>,
    ) -> Vec<NamespacedName> {
        match event {
            watcher::Event::Apply(object) => self.set(key_of(object), gateway_of(object)),
            watcher::Event::Delete(object) => self.set(key_of(object), None),
            watcher::Event::Init => {
                self.relist = Some(HashMap::new());
                Vec::new()
            }
            watcher::Event::InitApply(object) => {
                if let (Some(relist), Some(gateway)) = (self.relist.as_mut(), gateway_of(object)) {
                    relist.insert(key_of(object), gateway);
                }
                Vec::new()
            }
            watcher::Event::InitDone => {
                let Some(relist) = self.relist.take() else {
                    return Vec::new();
                };
                // Objects may have changed while the watch was down: every gateway named
                // before or after the relist looks again.
                let mut affected: BTreeSet<NamespacedName> =
                    self.by_gateway.keys().cloned().collect();
                affected.extend(relist.values().cloned());
                self.by_gateway.clear();
                self.gateway_of.clear();
                for (object, gateway) in relist {
                    self.set(object, Some(gateway));
                }
                affected.into_iter().collect()
            }
        }
    }

    /// The objects attached to `gateway`, sorted by namespace and name.
    pub(crate) fn attached_to(&self, gateway: &NamespacedName) -> Vec<NamespacedName> {
        self.by_gateway
            .get(gateway)
            .map(|objects| objects.iter().cloned().collect())
            .unwrap_or_default()
    }
}

pub(crate) fn key_of(object: &impl Resource) -> NamespacedName {
    NamespacedName {
        namespace: object.meta().namespace.clone().unwrap_or_default(),
        name: object.meta().name.clone().unwrap_or_default(),
    }
}

/// The watched attached objects and their index, shared by the watch, the reconciles
/// and [`Context`](crate::Context).
pub(crate) struct AttachedCache {
    pub(crate) resource: ApiResource,
    pub(crate) store: Store<DynamicObject>,
    pub(crate) index: Mutex<AttachedIndex>,
    pub(crate) gateway_of: GatewayOf,
    /// Namespace labels, for gateways that admit objects by namespace selector.
    pub(crate) namespaces: Arc<NamespaceLabels>,
    /// Objects whose status write the API server refused as invalid (422), with the
    /// resourceVersion it refused: not written again until their owner changes them.
    pub(crate) refused_writes: Mutex<HashMap<NamespacedName, String>>,
}

/// How many refused objects [`AttachedCache::refused_writes`] remembers; beyond, it
/// starts over (each is then tried once more).
pub(crate) const MAX_REFUSED_WRITES: usize = 10_000;

/// Which attached objects a gateway admits (see [`allowed_routes`]): the ones offered to
/// `desired_state`, and a refusal for each of the others.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    pub(crate) admitted: HashSet<NamespacedName>,
    pub(crate) refused: BTreeMap<NamespacedName, AttachedDecision>,
    /// Why the consent annotation that applies could not be read.
    pub(crate) problem: Option<String>,
}

/// The attached objects one pass may see: those its gateway admits.
#[derive(Clone)]
pub(crate) struct AttachedView {
    pub(crate) cache: Arc<AttachedCache>,
    pub(crate) admitted: Arc<HashSet<NamespacedName>>,
}

impl AttachedCache {
    /// The cached objects attached to `gateway`, sorted by namespace and name.
    pub(crate) fn attached_to(&self, gateway: &NamespacedName) -> Vec<Arc<DynamicObject>> {
        let keys = self
            .index
            .lock()
            .expect("attached index")
            .attached_to(gateway);
        keys.iter()
            .filter_map(|key| {
                self.store.get(
                    &ObjectRef::new_with(&key.name, self.resource.clone()).within(&key.namespace),
                )
            })
            .collect()
    }

    /// Which of the objects attached to `gateway` (in `gateway.namespace`) `consent`
    /// admits.
    pub(crate) fn admission(&self, gateway: &NamespacedName, consent: Consent) -> Admission {
        let name = format!("{}/{}", gateway.namespace, gateway.name);
        let keys = self
            .index
            .lock()
            .expect("attached index")
            .attached_to(gateway);
        let mut admission = Admission {
            problem: consent.problem,
            ..Default::default()
        };
        let mut labels: HashMap<String, Option<BTreeMap<String, String>>> = HashMap::new();
        for key in keys {
            let namespace_labels = if consent.allowed.reads_namespace_labels() {
                labels
                    .entry(key.namespace.clone())
                    .or_insert_with(|| self.namespaces.labels(&key.namespace))
                    .as_ref()
            } else {
                None
            };
            if consent
                .allowed
                .admits(&gateway.namespace, &key.namespace, namespace_labels)
            {
                admission.admitted.insert(key);
            } else {
                let message = not_allowed_message(&name, &key.namespace);
                admission.refused.insert(
                    key,
                    AttachedDecision::refuse(NOT_ALLOWED_BY_GATEWAY, message),
                );
            }
        }
        admission
    }

    /// Whether this is the attached kind `group`/`kind`.
    pub(crate) fn is_kind(&self, group: &str, kind: &str) -> bool {
        self.resource.group == group && self.resource.kind == kind
    }

    /// The gateway `object` (of this kind) names, as the index knows it.
    pub(crate) fn gateway_of(&self, object: &NamespacedName) -> Option<NamespacedName> {
        (self.index.lock().expect("attached index").gateway_of)
            .get(object)
            .cloned()
    }

    /// The cached object `key`, unless it is being deleted.
    pub(crate) fn get(&self, key: &NamespacedName) -> Option<Arc<DynamicObject>> {
        let object = self
            .store
            .get(&ObjectRef::new_with(&key.name, self.resource.clone()).within(&key.namespace))?;
        object
            .metadata
            .deletion_timestamp
            .is_none()
            .then_some(object)
    }

    /// The gateways with attached objects in `namespace`.
    pub(crate) fn gateways_with_objects_in(&self, namespace: &str) -> BTreeSet<NamespacedName> {
        self.index
            .lock()
            .expect("attached index")
            .gateway_of
            .iter()
            .filter(|(object, _)| object.namespace == namespace)
            .map(|(_, gateway)| gateway.clone())
            .collect()
    }

    /// The objects attached to `gateway` and in `admitted`, typed; `NotAttached` when
    /// `T` is not the attached kind.
    pub(crate) fn typed<T: Resource<DynamicType = ()> + DeserializeOwned>(
        &self,
        gateway: &NamespacedName,
        admitted: &HashSet<NamespacedName>,
    ) -> Result<Vec<T>, NotAttached> {
        let resource = ApiResource::erase::<T>(&());
        if resource.api_version != self.resource.api_version
            || resource.plural != self.resource.plural
        {
            return Err(NotAttached {
                kind: resource.kind,
            });
        }
        let mut objects: Vec<Arc<DynamicObject>> = self
            .attached_to(gateway)
            .into_iter()
            .filter(|object| admitted.contains(&key_of(object.as_ref())))
            .collect();
        // Stable: equal ages keep the namespace-and-name order of `attached_to`.
        objects.sort_by_key(|object| oldest_first(object));
        Ok(objects
            .iter()
            .filter_map(|object| from_dynamic(object))
            .collect())
    }
}

/// The sort key of [`AttachedCache::typed`]: creation time, an object without one last.
fn oldest_first(object: &DynamicObject) -> (bool, Option<jiff::Timestamp>) {
    let created = object.metadata.creation_timestamp.as_ref().map(|t| t.0);
    (created.is_none(), created)
}

/// The running watch of an attached kind.
pub(crate) struct AttachedWatch<K: GatewayKind> {
    pub(crate) cache: Arc<AttachedCache>,
    /// The reflected objects, for the attached controller.
    pub(crate) objects: std::pin::Pin<
        Box<dyn Stream<Item = Result<DynamicObject, watcher::Error>> + Send + 'static>,
    >,
    /// Gateways to reconcile because their attached objects changed.
    pub(crate) gateway_triggers: UnboundedReceiver<ObjectRef<K::Gateway>>,
    /// Attached objects to look at because their gateway changed or went.
    pub(crate) object_triggers: UnboundedReceiver<ObjectRef<DynamicObject>>,
    /// Where gateway events are turned into [`Self::object_triggers`].
    pub(crate) on_gateway: GatewayEvents,
    /// Namespaces whose labels changed (the stream drives the namespace watch).
    pub(crate) namespace_changes: std::pin::Pin<Box<dyn Stream<Item = String> + Send + 'static>>,
}

/// Sends the objects attached to a changed (or deleted) gateway to the attached
/// controller, which clears them when the gateway is gone or no longer ours.
#[derive(Clone)]
pub(crate) struct GatewayEvents {
    cache: Arc<AttachedCache>,
    triggers: UnboundedSender<ObjectRef<DynamicObject>>,
}

impl GatewayEvents {
    pub(crate) fn touched(&self, gateway: &impl Resource) {
        for object in self.cache.attached_to(&key_of(gateway)) {
            let _ = self.triggers.unbounded_send(
                ObjectRef::new_with(&object.name_any(), self.cache.resource.clone())
                    .within(&object.namespace().unwrap_or_default()),
            );
        }
    }
}

/// Starts watching `declaration`'s kind (in `namespace`, or everywhere).
pub(crate) fn watch<K: GatewayKind>(
    declaration: AttachedKind<K>,
    tracking: &CacheTracking<'_>,
    client: &Client,
    namespace: Option<&str>,
    status_manager: &str,
) -> AttachedWatch<K> {
    let resource = declaration.resource.clone();
    let cache_name = tracking.key(&format!("attached {}", resource.kind));
    let writer = reflector::store::Writer::new(resource.clone());
    let (namespaces, namespace_changes) = watch_namespaces(tracking, client, namespace);
    let cache = Arc::new(AttachedCache {
        resource: resource.clone(),
        store: writer.as_reader(),
        index: Mutex::default(),
        gateway_of: declaration.gateway_of,
        namespaces,
        refused_writes: Mutex::default(),
    });
    let (gateway_tx, gateway_triggers) = unbounded();
    let (object_tx, object_triggers) = unbounded();
    let events = watcher(
        dynamic_api(client, namespace, &resource),
        watcher::Config::default(),
    )
    .modify({
        let status_manager = status_manager.to_owned();
        move |object: &mut DynamicObject| {
            crate::ownership::keep_status_ownership(&mut object.metadata, &status_manager);
            crate::names::keep_cached_annotations(&mut object.metadata);
        }
    });
    let listed = mark_listed(tracking.gate, cache_name.clone());
    let indexed = cache.clone();
    let store = writer.as_reader();
    let objects = reflect(writer, tracked(tracking.health, cache_name, events))
        .inspect(move |event| {
            if let Ok(event) = event {
                let gateway_of = indexed.gateway_of.clone();
                let affected = indexed
                    .index
                    .lock()
                    .expect("attached index")
                    .on_event(event, gateway_of.as_ref());
                for gateway in affected {
                    let _ = gateway_tx
                        .unbounded_send(ObjectRef::new(&gateway.name).within(&gateway.namespace));
                }
            }
        })
        .inspect(listed);
    let objects = touched_once_stored(objects, store).boxed();
    AttachedWatch {
        on_gateway: GatewayEvents {
            cache: cache.clone(),
            triggers: object_tx,
        },
        cache,
        objects,
        gateway_triggers,
        object_triggers,
        namespace_changes: namespace_changes.boxed(),
    }
}

/// Whether the consent of `gateway` (of class `class`) depends on namespace labels.
pub(crate) fn reads_namespace_labels<K: GatewayKind>(
    gateway: &K::Gateway,
    class: Option<&K::Class>,
) -> bool {
    consent_of(
        gateway.meta().annotations.as_ref(),
        class.map(|c| {
            (
                c.meta().name.as_deref().unwrap_or_default(),
                c.meta().annotations.as_ref(),
            )
        }),
    )
    .allowed
    .reads_namespace_labels()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(namespace: &str, name: &str) -> NamespacedName {
        NamespacedName {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    fn route(namespace: &str, name: &str, gateway: Option<&str>) -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "runtime.agentic-layer.ai/v1alpha1", "kind": "ToolRoute",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"gateway": gateway},
        }))
        .unwrap()
    }

    fn gateway_of(object: &DynamicObject) -> Option<NamespacedName> {
        let name = object.data["spec"]["gateway"].as_str()?;
        let (namespace, name) = name.split_once('/')?;
        Some(key(namespace, name))
    }

    #[test]
    fn a_moved_object_reconciles_its_old_and_new_gateway() {
        let mut index = AttachedIndex::default();
        let apply = |index: &mut AttachedIndex, object| {
            index.on_event(&watcher::Event::Apply(object), &gateway_of)
        };
        assert_eq!(
            apply(&mut index, route("r", "a", Some("g/one"))),
            vec![key("g", "one")]
        );
        assert_eq!(index.attached_to(&key("g", "one")), vec![key("r", "a")]);
        assert_eq!(
            apply(&mut index, route("r", "a", Some("g/two"))),
            vec![key("g", "one"), key("g", "two")]
        );
        assert!(index.attached_to(&key("g", "one")).is_empty());
        // Detached: only the gateway it left.
        assert_eq!(
            apply(&mut index, route("r", "a", None)),
            vec![key("g", "two")]
        );
        assert!(index.attached_to(&key("g", "two")).is_empty());
        apply(&mut index, route("r", "b", Some("g/two")));
        apply(&mut index, route("q", "c", Some("g/two")));
        assert_eq!(
            index.attached_to(&key("g", "two")),
            vec![key("q", "c"), key("r", "b")],
            "sorted by namespace and name"
        );
        assert_eq!(
            index.on_event(
                &watcher::Event::Delete(route("r", "b", Some("g/two"))),
                &gateway_of
            ),
            vec![key("g", "two")]
        );
        assert_eq!(index.attached_to(&key("g", "two")), vec![key("q", "c")]);
    }

    #[test]
    fn a_relist_replaces_the_index_and_reconciles_every_gateway_named() {
        let mut index = AttachedIndex::default();
        index.on_event(
            &watcher::Event::Apply(route("r", "gone", Some("g/old"))),
            &gateway_of,
        );
        assert!(
            index
                .on_event(&watcher::Event::Init, &gateway_of)
                .is_empty()
        );
        assert!(
            index
                .on_event(
                    &watcher::Event::InitApply(route("r", "new", Some("g/new"))),
                    &gateway_of
                )
                .is_empty()
        );
        assert_eq!(
            index.on_event(&watcher::Event::InitDone, &gateway_of),
            vec![key("g", "new"), key("g", "old")]
        );
        assert!(index.attached_to(&key("g", "old")).is_empty());
        assert_eq!(index.attached_to(&key("g", "new")), vec![key("r", "new")]);
    }
}
