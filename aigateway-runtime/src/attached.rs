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

use std::collections::{BTreeMap, BTreeSet, HashMap};
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
use crate::controllers::{CacheTracking, dynamic_api, mark_listed, tracked};
use crate::implementation::from_dynamic;
use crate::kind::GatewayKind;
use crate::names;
use crate::reconcile::{ReconcileError, Shared, backoff};
use crate::status;

/// The condition types the runtime writes on attached objects, and removes again when
/// they detach.
pub const ATTACHED_CONDITION_TYPES: &[&str] = &[types::ACCEPTED, types::READY];

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
}

/// `kind` is not the attached kind the implementation declared.
#[derive(Debug, thiserror::Error)]
#[error("{kind} is not attached to these gateways: declare it in GatewayImplementation::attached")]
pub struct NotAttached {
    /// The kind asked for.
    pub kind: String,
}

/// The gateway's state as far as its attached objects are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GatewayState<'a> {
    /// Nothing could be applied; the message says why.
    NotProgrammed(&'a str),
    /// Applied, not serving yet; the message says what is missing.
    NotReady(&'a str),
    /// Serving.
    Ready,
}

/// The conditions and URL an attached object gets, from the implementation's decision
/// (`None`: it made none) and the state of `gateway` (`namespace/name`).
pub(crate) fn attached_status(
    decision: Option<&AttachedDecision>,
    state: GatewayState<'_>,
    gateway: &str,
) -> (Vec<NewCondition>, Option<String>) {
    let valid = |c: NewCondition| NewCondition {
        reason: status::valid_reason(&c.reason, reasons::INVALID).to_owned(),
        message: status::bounded(c.message),
        ..c
    };
    let (accepted, url) = match decision {
        Some(AttachedDecision::Refuse { reason, message }) => {
            let refused = |type_| valid(NewCondition::new(type_, false, reason, message.clone()));
            return (vec![refused(types::ACCEPTED), refused(types::READY)], None);
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
    let ready = match (state, url) {
        (GatewayState::NotProgrammed(why), _) => NewCondition::new(
            types::READY,
            false,
            reasons::GATEWAY_NOT_PROGRAMMED,
            format!("gateway {gateway} is not programmed: {why}"),
        ),
        (GatewayState::NotReady(why), _) => NewCondition::new(
            types::READY,
            false,
            reasons::GATEWAY_NOT_READY,
            format!("gateway {gateway} is not ready: {why}"),
        ),
        (GatewayState::Ready, Some(url)) => NewCondition::new(
            types::READY,
            true,
            reasons::READY,
            format!("served by gateway {gateway} at {url}"),
        ),
        (GatewayState::Ready, None) => NewCondition::new(
            types::READY,
            false,
            reasons::PENDING,
            format!("gateway {gateway} has not decided on this object yet"),
        ),
    };
    let url = (state == GatewayState::Ready)
        .then_some(url.cloned())
        .flatten();
    (vec![valid(accepted), valid(ready)], url)
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

    /// The objects attached to `gateway`, typed; `NotAttached` when `T` is not the
    /// attached kind.
    pub(crate) fn typed<T: Resource<DynamicType = ()> + DeserializeOwned>(
        &self,
        gateway: &NamespacedName,
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
    let cache = Arc::new(AttachedCache {
        resource: resource.clone(),
        store: writer.as_reader(),
        index: Mutex::default(),
        gateway_of: declaration.gateway_of,
    });
    let (gateway_tx, gateway_triggers) = unbounded();
    let (object_tx, object_triggers) = unbounded();
    let events = watcher(
        dynamic_api(client, namespace, &resource),
        watcher::Config::default(),
    )
    .modify(|object: &mut DynamicObject| object.metadata.managed_fields = None);
    let listed = mark_listed(tracking.gate, cache_name.clone());
    let indexed = cache.clone();
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
        .inspect(listed)
        .touched_objects()
        .boxed();
    AttachedWatch {
        on_gateway: GatewayEvents {
            cache: cache.clone(),
            triggers: object_tx,
        },
        cache,
        objects,
        gateway_triggers,
        object_triggers,
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

fn write_error(object: &DynamicObject, what: &'static str, source: kube::Error) -> ReconcileError {
    ReconcileError::Write {
        what,
        gateway: format!(
            "{} {}/{}",
            object.types.as_ref().map_or("object", |t| t.kind.as_str()),
            object.metadata.namespace.as_deref().unwrap_or_default(),
            object.metadata.name.as_deref().unwrap_or_default()
        ),
        source,
    }
}

/// Writes the status of every object attached to `gateway` (ours) from `decisions` and
/// the gateway's `state`, where it differs.
pub(crate) async fn sync<K: GatewayKind>(
    shared: &Shared<K>,
    gateway: &K::Gateway,
    decisions: &BTreeMap<NamespacedName, AttachedDecision>,
    state: GatewayState<'_>,
) -> Result<(), ReconcileError> {
    let Some(cache) = shared.attached.as_ref() else {
        return Ok(());
    };
    let gateway_key = key_of(gateway);
    let gateway_name = format!("{}/{}", gateway_key.namespace, gateway_key.name);
    for object in cache.attached_to(&gateway_key) {
        let (wanted, url) = attached_status(
            decisions.get(&key_of(object.as_ref())),
            state,
            &gateway_name,
        );
        let now = status_now(&object);
        let conditions = status::merge_conditions(
            &now.conditions,
            &wanted,
            &[],
            object.metadata.generation,
            &status::now(),
        );
        if conditions.is_none() && now.url == url {
            continue;
        }
        let conditions = conditions.unwrap_or(now.conditions);
        let api = object_api(&shared.client, &cache.resource, &object);
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
            .map_err(|source| write_error(&object, "conditions owner", source))?;
            resource_version = marked.metadata.resource_version;
        }
        status::patch_object_status(
            &api,
            &object.name_any(),
            resource_version.as_deref(),
            &conditions,
            url.as_deref(),
            &params,
        )
        .await
        .map_err(|source| write_error(&object, "status", source))?;
        debug!(object = %key_of(object.as_ref()).name, gateway = %gateway_name, "wrote attached status");
    }
    Ok(())
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
        .map_err(|source| write_error(object, "status", source))?;
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
    .map_err(|source| write_error(object, "conditions owner", source))?;
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
    _object: Arc<DynamicObject>,
    error: &ReconcileError,
    shared: Arc<Shared<K>>,
) -> Action {
    shared.metrics.reconcile_failed(error.metric_reason());
    let delay = if error.is_conflict() {
        Duration::from_millis(200)
    } else {
        backoff(2)
    };
    crate::reconcile::log_failure(
        &shared.failure_log,
        error,
        1,
        delay,
        "attached object reconcile failed",
    );
    Action::requeue(delay)
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
        let (conditions, url) = attached_status(Some(&served), GatewayState::Ready, "ns/gw");
        assert_eq!(
            conditions[0].message,
            "attached to gateway ns/gw; route b shares its key"
        );
        assert_eq!(url.as_deref(), Some("http://gw/mcp/a"));
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
    fn the_url_is_published_only_while_the_gateway_is_ready() {
        let serve = AttachedDecision::serve("http://gw.ns.svc.cluster.local/mcp/r");
        let (conditions, url) = attached_status(Some(&serve), GatewayState::Ready, "ns/gw");
        assert_eq!(url.as_deref(), Some("http://gw.ns.svc.cluster.local/mcp/r"));
        assert_eq!(
            types_and_statuses(&conditions),
            [("Accepted", "True", "Accepted"), ("Ready", "True", "Ready")]
        );
        let (conditions, url) = attached_status(
            Some(&serve),
            GatewayState::NotReady("Deployment gw: 0 available"),
            "ns/gw",
        );
        assert_eq!(url, None);
        assert_eq!(
            types_and_statuses(&conditions),
            [
                ("Accepted", "True", "Accepted"),
                ("Ready", "False", reasons::GATEWAY_NOT_READY)
            ]
        );
        assert!(conditions[1].message.contains("0 available"));
        let (conditions, url) = attached_status(
            Some(&serve),
            GatewayState::NotProgrammed("bad spec"),
            "ns/gw",
        );
        assert_eq!(url, None);
        assert_eq!(conditions[1].reason, reasons::GATEWAY_NOT_PROGRAMMED);
    }

    #[test]
    fn a_refused_or_undecided_object_gets_no_url() {
        let refuse = AttachedDecision::refuse("InvalidToolFilter", "globs are not supported");
        let (conditions, url) = attached_status(Some(&refuse), GatewayState::Ready, "ns/gw");
        assert_eq!(url, None);
        assert_eq!(
            types_and_statuses(&conditions),
            [
                ("Accepted", "False", "InvalidToolFilter"),
                ("Ready", "False", "InvalidToolFilter")
            ]
        );
        let (conditions, url) = attached_status(None, GatewayState::Ready, "ns/gw");
        assert_eq!(url, None);
        assert_eq!(
            types_and_statuses(&conditions),
            [
                ("Accepted", "Unknown", reasons::PENDING),
                ("Ready", "False", reasons::PENDING)
            ]
        );
        // An implementation's reason that the CRD would refuse is replaced.
        let odd = AttachedDecision::refuse("not a reason!", "x");
        let (conditions, _) = attached_status(Some(&odd), GatewayState::Ready, "ns/gw");
        assert_eq!(conditions[0].reason, reasons::INVALID);
    }
}
