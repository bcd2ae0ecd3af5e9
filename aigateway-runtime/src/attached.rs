//! Attached objects: objects of another kind that name a gateway and are served by it,
//! such as ToolRoutes naming their ToolGateway in `spec.toolGatewayRef`.
//!
//! An implementation declares the kind once ([`GatewayImplementation::attached`], e.g.
//! [`ToolGatewayKind::routes`](crate::ToolGatewayKind::routes)). The runtime then:
//!
//! - watches the kind and keeps an index from each gateway to the objects attached to
//!   it, so that a changed object re-runs the reconcile of the gateway it names now
//!   *and* of the one it named before (no scan of all gateways or all objects);
//! - gives the implementation the objects attached to the gateway being reconciled
//!   ([`Context::attached`]); its desired state may depend on them;
//! - writes each attached object's status from the implementation's
//!   [`AttachedDecision`] (see [`DesiredState::with_attached`]) and the gateway's own
//!   state: `Accepted`, `Ready` (with `observedGeneration`) and `status.url`, the URL
//!   only while the gateway is `Ready`. As for gateways, a status is written only when
//!   it changes, and the object's conditions-owner annotation
//!   ([`CONDITIONS_OWNER_ANNOTATION`](crate::names::CONDITIONS_OWNER_ANNOTATION)) records
//!   that the conditions are ours before the first write;
//! - clears what it wrote (our condition types and `status.url`, then the annotation)
//!   when the object detaches, its gateway is deleted, or another controller takes the
//!   gateway. Objects attached to a gateway that is not ours are never written, and an
//!   object whose owner annotation names another controller is never cleared.
//!
//! [`GatewayImplementation::attached`]: crate::GatewayImplementation::attached
//! [`Context::attached`]: crate::Context::attached
//! [`DesiredState::with_attached`]: crate::DesiredState::with_attached

mod allowed_routes;

pub use allowed_routes::{
    AllowedRoutes, Consent, INVALID_ALLOWED_ROUTES, MAX_ALLOWED_ROUTES_BYTES,
    NOT_ALLOWED_BY_GATEWAY, consent_of,
};
pub(crate) use allowed_routes::{NamespaceLabels, watch_namespaces};

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aigateway_api::NamespacedName;
use aigateway_api::conditions::{NewCondition, reasons, types};
use futures::Stream;
use futures::StreamExt;
use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::{WatchStreamExt, reflector as reflect};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tracing::debug;

use crate::class::{Claim, claim};
use crate::controllers::{CacheTracking, dynamic_api, mark_listed, touched_once_stored, tracked};
use crate::implementation::from_dynamic;
use crate::kind::GatewayKind;
use crate::names;
use crate::reconcile::{ReconcileError, Shared, backoff};
use crate::status;

/// The condition types the runtime writes on attached objects, and removes again when
/// they detach.
pub const ATTACHED_CONDITION_TYPES: &[&str] =
    &[types::ACCEPTED, types::RESOLVED_REFS, types::READY];

/// Maps an attached object to the gateway it names.
type GatewayOf = Arc<dyn Fn(&DynamicObject) -> Option<NamespacedName> + Send + Sync>;

/// A kind of objects attached to gateways of kind `K`, and how an object names its
/// gateway. Declared once by an implementation.
///
/// ```
/// use aigateway_api::ToolRoute;
/// use aigateway_runtime::{AttachedKind, ToolGatewayKind};
/// use kube::runtime::reflector::ObjectRef;
///
/// // What `ToolGatewayKind::routes()` declares.
/// let routes: AttachedKind<ToolGatewayKind> = AttachedKind::new(|route: &ToolRoute| {
///     route.gateway().map(|g| ObjectRef::new(&g.name).within(&g.namespace))
/// });
/// assert_eq!(routes.resource().kind, "ToolRoute");
/// ```
pub struct AttachedKind<K: GatewayKind> {
    resource: ApiResource,
    gateway_of: GatewayOf,
    kind: PhantomData<fn() -> K>,
}

impl<K: GatewayKind> AttachedKind<K> {
    /// Objects of the namespaced kind `T`, attached to the gateway `gateway_of` returns
    /// (`None`: attached to nothing). A returned reference without a namespace attaches
    /// to nothing either: resolve defaults (such as "the object's own namespace") in
    /// `gateway_of`.
    pub fn new<T>(
        gateway_of: impl Fn(&T) -> Option<ObjectRef<K::Gateway>> + Send + Sync + 'static,
    ) -> Self
    where
        T: Resource<DynamicType = (), Scope = NamespaceResourceScope> + DeserializeOwned,
    {
        Self {
            resource: ApiResource::erase::<T>(&()),
            gateway_of: Arc::new(move |object: &DynamicObject| {
                let typed: T = from_dynamic(object)?;
                let gateway = gateway_of(&typed)?;
                Some(NamespacedName {
                    namespace: gateway.namespace?,
                    name: gateway.name,
                })
            }),
            kind: PhantomData,
        }
    }

    /// The attached kind.
    pub fn resource(&self) -> &ApiResource {
        &self.resource
    }
}

/// What the implementation decides about one attached object (see
/// [`DesiredState::with_attached`](crate::DesiredState::with_attached)). The runtime
/// turns it into the object's status together with the gateway's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachedDecision {
    /// The gateway serves the object at `url`: `Accepted=True`; `Ready=True` and
    /// `status.url` once the gateway is `Ready`, `Ready=False` without a URL until then.
    Serve {
        /// The address clients use for this object, published verbatim.
        url: String,
        /// Something the object's owner should know that does not stop it (e.g. newer
        /// objects that collide with it and are refused), appended to `Accepted`.
        note: Option<String>,
    },
    /// The gateway does not serve the object: `Accepted=False` and `Ready=False` with
    /// this reason and message, no URL.
    Refuse {
        /// A CamelCase reason, e.g. `InvalidToolFilter`.
        reason: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// The gateway accepts the object, but a reference it makes may not or cannot be
    /// used (Gateway API's `ResolvedRefs=False`, e.g. `RefNotPermitted`): `Accepted=True`,
    /// `ResolvedRefs=False` and `Ready=False` with this reason and message, no URL.
    Unresolved {
        /// A CamelCase reason, e.g. `RefNotPermitted`.
        reason: String,
        /// What is wrong and what to do; names nothing the object's owner may not see.
        message: String,
    },
}

impl AttachedDecision {
    /// Serve the object at `url`.
    pub fn serve(url: impl Into<String>) -> Self {
        Self::Serve {
            url: url.into(),
            note: None,
        }
    }

    /// Adds a note to a served object's `Accepted` message (no effect on a refusal).
    pub fn with_note(mut self, text: impl Into<String>) -> Self {
        if let Self::Serve { note, .. } = &mut self {
            *note = Some(text.into());
        }
        self
    }

    /// Refuse the object, saying why.
    pub fn refuse(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Refuse {
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// Accept the object but not serve it, because of a reference it makes.
    pub fn unresolved(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Unresolved {
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// `kind` is not the attached kind the implementation declared.
#[derive(Debug, thiserror::Error)]
#[error("{kind} is not attached to these gateways: declare it in GatewayImplementation::attached")]
pub struct NotAttached {
    /// The kind asked for.
    pub kind: String,
}

/// The gateway's state as far as its attached objects are concerned. It carries no
/// message: an attached object may belong to another tenant, who must not read the
/// gateway owner's problems (they may quote the owner's annotations or patch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GatewayState {
    /// Nothing could be applied (invalid spec, missing reference, name conflict).
    NotProgrammed,
    /// Applied, not (all) serving the config applied yet: rolling out, or pods failing.
    NotReady,
    /// Serving what was applied.
    Ready,
}

/// What an attached object's status should be: conditions to set, our condition types
/// to remove, and `status.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AttachedStatus {
    pub(crate) set: Vec<NewCondition>,
    pub(crate) remove: Vec<String>,
    pub(crate) url: Option<String>,
}

/// The status an attached object gets, from the implementation's decision (`None`: it
/// made none), the state of `gateway` (`namespace/name`) and the URL the object
/// publishes now (`published`).
///
/// A URL is published once the gateway is `Ready` with a config that serves the object
/// (readiness means the rolled-out pods run the config just applied). Once published,
/// it stays, with `Ready=True` and the same message, for as long as the object is served
/// and the gateway programmed: later rollouts of the gateway (another route's edit) do
/// not touch it, so neither agents reading the URL nor the API server see anything.
/// Messages never repeat the gateway's own problems.
pub(crate) fn attached_status(
    decision: Option<&AttachedDecision>,
    state: GatewayState,
    gateway: &str,
    published: Option<&str>,
) -> AttachedStatus {
    let valid = |c: NewCondition| NewCondition {
        reason: status::valid_reason(&c.reason, reasons::INVALID).to_owned(),
        message: status::bounded(c.message),
        ..c
    };
    let resolved_refs = vec![types::RESOLVED_REFS.to_owned()];
    let (accepted, url) = match decision {
        Some(AttachedDecision::Refuse { reason, message }) => {
            let refused = |type_| valid(NewCondition::new(type_, false, reason, message.clone()));
            return AttachedStatus {
                set: vec![refused(types::ACCEPTED), refused(types::READY)],
                remove: resolved_refs,
                url: None,
            };
        }
        Some(AttachedDecision::Unresolved { reason, message }) => {
            let unresolved =
                |type_| valid(NewCondition::new(type_, false, reason, message.clone()));
            return AttachedStatus {
                set: vec![
                    valid(NewCondition::new(
                        types::ACCEPTED,
                        true,
                        reasons::ACCEPTED,
                        format!("attached to gateway {gateway}"),
                    )),
                    unresolved(types::RESOLVED_REFS),
                    unresolved(types::READY),
                ],
                remove: Vec::new(),
                url: None,
            };
        }
        Some(AttachedDecision::Serve { url, note }) => (
            NewCondition::new(
                types::ACCEPTED,
                true,
                reasons::ACCEPTED,
                match note {
                    Some(note) => format!("attached to gateway {gateway}; {note}"),
                    None => format!("attached to gateway {gateway}"),
                },
            ),
            Some(url),
        ),
        None => (
            NewCondition::unknown(
                types::ACCEPTED,
                reasons::PENDING,
                format!("gateway {gateway} has not decided on this object yet"),
            ),
            None,
        ),
    };
    let served = |url: &String| {
        (
            NewCondition::new(
                types::READY,
                true,
                reasons::READY,
                format!("served by gateway {gateway} at {url}"),
            ),
            Some(url.clone()),
        )
    };
    let (ready, url) = match (state, url) {
        (GatewayState::NotProgrammed, _) => (
            NewCondition::new(
                types::READY,
                false,
                reasons::GATEWAY_NOT_PROGRAMMED,
                format!(
                    "gateway {gateway} is not programmed; its owner sees why in the gateway's status"
                ),
            ),
            None,
        ),
        (_, None) => (
            NewCondition::new(
                types::READY,
                false,
                reasons::PENDING,
                format!("gateway {gateway} has not decided on this object yet"),
            ),
            None,
        ),
        (GatewayState::Ready, Some(url)) => served(url),
        // Published before and still served at the same URL: the rollout in progress
        // (another object's change, or this one's edit) does not take it away.
        (GatewayState::NotReady, Some(url)) if published == Some(url.as_str()) => served(url),
        (GatewayState::NotReady, Some(_)) => (
            NewCondition::new(
                types::READY,
                false,
                reasons::GATEWAY_NOT_READY,
                format!(
                    "gateway {gateway} does not serve this object yet: the URL is published once its pods run the config that includes it"
                ),
            ),
            None,
        ),
    };
    AttachedStatus {
        set: vec![valid(accepted), valid(ready)],
        remove: resolved_refs,
        url,
    }
}

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

fn key_of(object: &impl Resource) -> NamespacedName {
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
    gateway_of: GatewayOf,
    /// Namespace labels, for gateways that admit objects by namespace selector.
    pub(crate) namespaces: Arc<NamespaceLabels>,
    /// Objects whose status write the API server refused as invalid (422), with the
    /// resourceVersion it refused: not written again until their owner changes them.
    refused_writes: Mutex<HashMap<NamespacedName, String>>,
}

/// How many refused objects [`AttachedCache::refused_writes`] remembers; beyond, it
/// starts over (each is then tried once more).
const MAX_REFUSED_WRITES: usize = 10_000;

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
                let message = allowed_routes::not_allowed_message(&name, &key.namespace);
                admission.refused.insert(
                    key,
                    AttachedDecision::refuse(NOT_ALLOWED_BY_GATEWAY, message),
                );
            }
        }
        admission
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
        Ok(self
            .attached_to(gateway)
            .iter()
            .filter(|object| admitted.contains(&key_of(object.as_ref())))
            .filter_map(|object| from_dynamic(object))
            .collect())
    }
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
    .modify(|object: &mut DynamicObject| {
        object.metadata.managed_fields = None;
        crate::names::keep_cached_annotations(&mut object.metadata);
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

/// The attached kind's state on one object: our conditions, url and owner mark.
struct AttachedStatusNow {
    conditions: Vec<Condition>,
    url: Option<String>,
    owned_by: Option<String>,
}

fn status_now(object: &DynamicObject) -> AttachedStatusNow {
    let status = object.data.get("status");
    AttachedStatusNow {
        conditions: status
            .and_then(|s| s.get("conditions"))
            .and_then(|c| serde_json::from_value(c.clone()).ok())
            .unwrap_or_default(),
        url: status
            .and_then(|s| s.get("url"))
            .and_then(|u| u.as_str())
            .map(str::to_owned),
        owned_by: object
            .annotations()
            .get(names::CONDITIONS_OWNER_ANNOTATION)
            .cloned(),
    }
}

fn object_api(
    client: &Client,
    resource: &ApiResource,
    object: &DynamicObject,
) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        object.metadata.namespace.as_deref().unwrap_or_default(),
        resource,
    )
}

fn write_error(
    resource: &ApiResource,
    object: &DynamicObject,
    what: &'static str,
    source: kube::Error,
) -> ReconcileError {
    let mut name = crate::logging::ObjectName::of_dynamic(object);
    // Listed objects carry no kind of their own.
    name.kind = resource.kind.clone();
    ReconcileError::Write {
        what,
        object: name,
        source,
    }
}

/// Writes the status of every object attached to `gateway` (ours) from `decisions` and
/// the gateway's `state`, where it differs. One object's failed write (a 403, a 409, a
/// 422 for an object whose annotations are at their limit) is logged and does not stop
/// the others. The first failure that a retry may cure is returned once every object
/// was tried, so the gateway is retried with backoff; a 422 is not: the object cannot
/// hold what we write until its owner changes it, and that change re-runs the gateway.
pub(crate) async fn sync<K: GatewayKind>(
    shared: &Shared<K>,
    gateway: &K::Gateway,
    decisions: &BTreeMap<NamespacedName, AttachedDecision>,
    state: GatewayState,
) -> Result<(), ReconcileError> {
    let Some(cache) = shared.attached.as_ref() else {
        return Ok(());
    };
    let gateway_key = key_of(gateway);
    let gateway_name = format!("{}/{}", gateway_key.namespace, gateway_key.name);
    let mut first_error = None;
    for object in cache.attached_to(&gateway_key) {
        let object_key = key_of(object.as_ref());
        let version = object.metadata.resource_version.clone().unwrap_or_default();
        // Refused as invalid at this version: trying again costs a request per pass and
        // fails the same way (a tenant's 500 such routes would cost 500 per pass of a
        // gateway that never admitted them). Its owner's change re-runs the gateway.
        if refused_writes(cache).get(&object_key) == Some(&version) {
            continue;
        }
        let decision = decisions.get(&object_key);
        let written = write_one(shared, cache, &object, decision, state, &gateway_name).await;
        {
            let mut refused = refused_writes(cache);
            match &written {
                Err(error) if refused_as_invalid(error) => {
                    if refused.len() >= MAX_REFUSED_WRITES {
                        refused.clear();
                    }
                    refused.insert(object_key, version);
                }
                _ => {
                    refused.remove(&object_key);
                }
            }
        }
        if let Err(error) = written {
            // Filed under the attached object, whose owner can act on it, and limited per
            // object: another tenant's route failing on every pass must not flood the log.
            let mut name = crate::logging::ObjectName::of_dynamic(&object);
            name.kind = cache.resource.kind.clone();
            crate::logging::warn_about(
                &shared.warnings,
                &name,
                &error,
                "could not write an attached object's status; the others are written",
            );
            if !refused_as_invalid(&error) {
                first_error.get_or_insert(error);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn refused_writes(
    cache: &AttachedCache,
) -> std::sync::MutexGuard<'_, HashMap<NamespacedName, String>> {
    cache
        .refused_writes
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether the API server refused a write as invalid (422).
fn refused_as_invalid(error: &ReconcileError) -> bool {
    matches!(error, ReconcileError::Write { source: kube::Error::Api(status), .. } if status.code == 422)
}

/// Writes one attached object's status, if it differs.
async fn write_one<K: GatewayKind>(
    shared: &Shared<K>,
    cache: &AttachedCache,
    object: &DynamicObject,
    decision: Option<&AttachedDecision>,
    state: GatewayState,
    gateway_name: &str,
) -> Result<(), ReconcileError> {
    let now = status_now(object);
    let wanted = attached_status(decision, state, gateway_name, now.url.as_deref());
    let mut conditions = now.conditions;
    let mut changed = false;
    if let Some(list) = status::merge_conditions(
        &conditions,
        &wanted.set,
        object.metadata.generation,
        &status::now(),
    ) {
        conditions = list;
        changed = true;
    }
    if let Some(list) = status::without_conditions(&conditions, &wanted.remove) {
        conditions = list;
        changed = true;
    }
    if !changed && now.url == wanted.url {
        return Ok(());
    }
    let api = object_api(&shared.client, &cache.resource, object);
    let params = shared.patch_params();
    let mut resource_version = object.metadata.resource_version.clone();
    // Recorded before the first status write, as on gateways.
    if now.owned_by.as_deref() != Some(shared.controller.as_str()) {
        let marked = status::set_conditions_owner(
            &api,
            &object.name_any(),
            resource_version.as_deref(),
            Some(&shared.controller),
            &params,
        )
        .await
        .map_err(|source| write_error(&cache.resource, object, "conditions owner", source))?;
        resource_version = marked.metadata.resource_version;
    }
    status::patch_object_status(
        &api,
        &object.name_any(),
        resource_version.as_deref(),
        &conditions,
        wanted.url.as_deref(),
        &params,
    )
    .await
    .map_err(|source| write_error(&cache.resource, object, "status", source))?;
    debug!(object = %key_of(object).name, gateway = %gateway_name, "wrote attached status");
    Ok(())
}

/// The attached objects `gateway` (of class `class`, when known) admits, as the view a
/// pass gets, and the refusals of the others; `None` without an attached kind.
pub(crate) fn admit<K: GatewayKind>(
    shared: &Shared<K>,
    gateway: &K::Gateway,
    class: Option<&str>,
) -> Option<(AttachedView, Admission)> {
    let cache = shared.attached.as_ref()?;
    let class = class.and_then(|name| shared.classes.get(&ObjectRef::new(name)));
    let consent = consent_of(
        gateway.meta().annotations.as_ref(),
        class.as_ref().map(|c| {
            (
                c.meta().name.as_deref().unwrap_or_default(),
                c.meta().annotations.as_ref(),
            )
        }),
    );
    let mut admission = cache.admission(&key_of(gateway), consent);
    let view = AttachedView {
        cache: cache.clone(),
        admitted: Arc::new(std::mem::take(&mut admission.admitted)),
    };
    Some((view, admission))
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

/// Removes our conditions and url from `object`, then our owner mark; writes nothing
/// when the object's conditions are not recorded as ours.
async fn clear<K: GatewayKind>(
    shared: &Shared<K>,
    resource: &ApiResource,
    object: &DynamicObject,
) -> Result<(), ReconcileError> {
    let now = status_now(object);
    if now.owned_by.as_deref() != Some(shared.controller.as_str()) {
        return Ok(());
    }
    let api = object_api(&shared.client, resource, object);
    let params = shared.patch_params();
    let mut resource_version = object.metadata.resource_version.clone();
    let owned: Vec<String> = ATTACHED_CONDITION_TYPES
        .iter()
        .map(|t| (*t).to_owned())
        .collect();
    let remaining = status::without_conditions(&now.conditions, &owned);
    if remaining.is_some() || now.url.is_some() {
        let conditions = remaining.unwrap_or(now.conditions);
        let cleared = status::patch_object_status(
            &api,
            &object.name_any(),
            resource_version.as_deref(),
            &conditions,
            None,
            &params,
        )
        .await
        .map_err(|source| write_error(resource, object, "status", source))?;
        resource_version = cleared.metadata.resource_version;
    }
    status::set_conditions_owner(
        &api,
        &object.name_any(),
        resource_version.as_deref(),
        None,
        &params,
    )
    .await
    .map_err(|source| write_error(resource, object, "conditions owner", source))?;
    debug!(object = %object.name_any(), "cleared attached status");
    Ok(())
}

/// Clears every object attached to `gateway`, which is no longer ours.
pub(crate) async fn clear_gateway<K: GatewayKind>(
    shared: &Shared<K>,
    gateway: &K::Gateway,
) -> Result<(), ReconcileError> {
    let Some(cache) = shared.attached.as_ref() else {
        return Ok(());
    };
    for object in cache.attached_to(&key_of(gateway)) {
        clear(shared, &cache.resource, &object).await?;
    }
    Ok(())
}

/// One attached object: nothing to do while its gateway is ours (the gateway's reconcile
/// writes it); cleared when it names no gateway, its gateway is gone or being deleted, or
/// another controller has the gateway. A gateway whose class is merely missing keeps its
/// objects as they are, as it keeps its children.
pub(crate) async fn reconcile<K: GatewayKind>(
    object: Arc<DynamicObject>,
    shared: Arc<Shared<K>>,
) -> Result<Action, ReconcileError> {
    let Some(cache) = shared.attached.as_ref() else {
        return Ok(Action::await_change());
    };
    let gateway = (cache.gateway_of)(&object).and_then(|key| {
        shared
            .gateways
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
    });
    let keep = match gateway {
        Some(gateway) if gateway.meta().deletion_timestamp.is_none() => {
            match claim::<K>(
                K::class_name(&gateway),
                &shared.classes.state(),
                &shared.controller,
            ) {
                Claim::Ours { .. } | Claim::Ambiguous(_) => true,
                Claim::NotOurs(reason) => !reason.taken_by_another(),
            }
        }
        _ => false,
    };
    if !keep {
        clear(&shared, &cache.resource, &object).await?;
    }
    Ok(Action::await_change())
}

/// Backoff for a failed attached reconcile.
pub(crate) fn error_policy<K: GatewayKind>(
    object: Arc<DynamicObject>,
    error: &ReconcileError,
    shared: Arc<Shared<K>>,
) -> Action {
    shared.metrics.reconcile_failed(error.metric_reason());
    let mut name = crate::logging::ObjectName::of_dynamic(&object);
    if let Some(cache) = &shared.attached {
        // Listed objects carry no kind of their own.
        name.kind = cache.resource.kind.clone();
    }
    crate::logging::warn_about(
        &shared.warnings,
        &name,
        error,
        "attached object reconcile failed",
    );
    if error.is_conflict() {
        Action::requeue(Duration::from_millis(200))
    } else {
        Action::requeue(backoff(2))
    }
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
    fn a_note_on_a_served_object_reaches_its_accepted_message_and_never_a_refusal() {
        let served = AttachedDecision::serve("http://gw/mcp/a").with_note("route b shares its key");
        let status = attached_status(Some(&served), GatewayState::Ready, "ns/gw", None);
        assert_eq!(
            status.set[0].message,
            "attached to gateway ns/gw; route b shares its key"
        );
        assert_eq!(status.url.as_deref(), Some("http://gw/mcp/a"));
        let refused = AttachedDecision::refuse("Bad", "no").with_note("ignored");
        assert_eq!(refused, AttachedDecision::refuse("Bad", "no"));
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

    fn types_and_statuses(conditions: &[NewCondition]) -> Vec<(&str, &str, &str)> {
        conditions
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_str()))
            .collect()
    }

    #[test]
    fn a_new_url_is_published_once_the_gateway_serves_it() {
        let serve = AttachedDecision::serve("http://gw.ns.svc.cluster.local/mcp/r");
        let status = attached_status(Some(&serve), GatewayState::Ready, "ns/gw", None);
        assert_eq!(
            status.url.as_deref(),
            Some("http://gw.ns.svc.cluster.local/mcp/r")
        );
        assert_eq!(
            types_and_statuses(&status.set),
            [("Accepted", "True", "Accepted"), ("Ready", "True", "Ready")]
        );
        assert_eq!(status.remove, ["ResolvedRefs"]);
        let status = attached_status(Some(&serve), GatewayState::NotReady, "ns/gw", None);
        assert_eq!(status.url, None);
        assert_eq!(
            types_and_statuses(&status.set),
            [
                ("Accepted", "True", "Accepted"),
                ("Ready", "False", reasons::GATEWAY_NOT_READY)
            ]
        );
        let status = attached_status(Some(&serve), GatewayState::NotProgrammed, "ns/gw", None);
        assert_eq!(status.url, None);
        assert_eq!(status.set[1].reason, reasons::GATEWAY_NOT_PROGRAMMED);
    }

    #[test]
    fn a_published_url_survives_a_rollout_with_the_very_same_status() {
        let url = "http://gw.ns.svc.cluster.local/mcp/r";
        let serve = AttachedDecision::serve(url);
        let ready = attached_status(Some(&serve), GatewayState::Ready, "ns/gw", Some(url));
        let rolling = attached_status(Some(&serve), GatewayState::NotReady, "ns/gw", Some(url));
        assert_eq!(
            ready, rolling,
            "nothing to write while another change rolls out"
        );
        assert_eq!(rolling.url.as_deref(), Some(url));
        // Not programmed any more: the URL goes.
        let broken = attached_status(
            Some(&serve),
            GatewayState::NotProgrammed,
            "ns/gw",
            Some(url),
        );
        assert_eq!(broken.url, None);
        // A URL the object publishes that is not the one decided proves nothing.
        let other = attached_status(
            Some(&serve),
            GatewayState::NotReady,
            "ns/gw",
            Some("http://elsewhere/mcp/r"),
        );
        assert_eq!(other.url, None);
    }

    #[test]
    fn messages_never_carry_the_gateways_own_problems() {
        let serve = AttachedDecision::serve("http://gw/mcp/r");
        for state in [GatewayState::NotProgrammed, GatewayState::NotReady] {
            let status = attached_status(Some(&serve), state, "ns/gw", None);
            for condition in &status.set {
                assert!(
                    condition.message.starts_with("attached to gateway ns/gw")
                        || condition.message.starts_with("gateway ns/gw "),
                    "{}",
                    condition.message
                );
            }
        }
    }

    #[test]
    fn a_refused_unresolved_or_undecided_object_gets_no_url() {
        let refuse = AttachedDecision::refuse("InvalidToolFilter", "globs are not supported");
        let status = attached_status(Some(&refuse), GatewayState::Ready, "ns/gw", Some("u"));
        assert_eq!(status.url, None);
        assert_eq!(
            types_and_statuses(&status.set),
            [
                ("Accepted", "False", "InvalidToolFilter"),
                ("Ready", "False", "InvalidToolFilter")
            ]
        );
        assert_eq!(status.remove, ["ResolvedRefs"]);
        let unresolved = AttachedDecision::unresolved("RefNotPermitted", "no grant");
        let status = attached_status(Some(&unresolved), GatewayState::Ready, "ns/gw", Some("u"));
        assert_eq!(status.url, None);
        assert_eq!(
            types_and_statuses(&status.set),
            [
                ("Accepted", "True", "Accepted"),
                ("ResolvedRefs", "False", "RefNotPermitted"),
                ("Ready", "False", "RefNotPermitted")
            ]
        );
        assert!(status.remove.is_empty());
        let status = attached_status(None, GatewayState::Ready, "ns/gw", None);
        assert_eq!(status.url, None);
        assert_eq!(
            types_and_statuses(&status.set),
            [
                ("Accepted", "Unknown", reasons::PENDING),
                ("Ready", "False", reasons::PENDING)
            ]
        );
        // An implementation's reason that the CRD would refuse is replaced.
        let odd = AttachedDecision::refuse("not a reason!", "x");
        let status = attached_status(Some(&odd), GatewayState::Ready, "ns/gw", None);
        assert_eq!(status.set[0].reason, reasons::INVALID);
    }
}
