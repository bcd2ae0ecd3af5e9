//! The watches of one gateway kind as values, each built by one function that returns
//! its cache's store, the stream of objects the cache holds, and what a change re-runs:
//! [`GatewayWatch`] (with the [`ClassIndex`] of the gateways by the class they name),
//! [`ClassWatch`], a [`ChildWatch`] per child kind, and [`RelatedReads`]; the attached
//! kind's watch is `attached::watch`. `run_controllers` folds them into kube's
//! `Controller`s.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc::UnboundedReceiver;
use futures::future::{BoxFuture, FutureExt};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::controller::{self, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::{WatchStreamExt, reflector as reflect};
use kube::{Client, Resource};
use tracing::{debug, warn};

use crate::apply::ChildCache;
use crate::attached::{self, AttachedCache, AttachedWatch};
use crate::children::OwnerIndex;
use crate::class::{Claim, claim};
use crate::group_index::GroupIndex;
use crate::kind::GatewayKind;
use crate::logging::LogThrottle;
use crate::names;
use crate::reference_grants;
use crate::related::{GatewayKey, RelatedCaches, RelatedView, RelatedWatch};
use crate::watches::{
    CacheTracking, ResyncTrigger, SyncGate, dynamic_reflector, mark_listed, touched_once_stored,
    tracked,
};

/// The objects a cache holds, as they change (a relist's once the cache holds it).
pub(crate) type Objects<T> = BoxStream<'static, Result<T, watcher::Error>>;

/// Gateways of kind `K` to re-run.
pub(crate) type GatewayTriggers<K> = BoxStream<'static, ObjectRef<<K as GatewayKind>::Gateway>>;

/// The gateways of kind `K` by the name of the class they name; those naming none (or
/// an empty name) are under `""`.
pub(crate) struct ClassIndex<K: GatewayKind>(GroupIndex<ObjectRef<K::Gateway>, String>);

impl<K: GatewayKind> Clone for ClassIndex<K> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<K: GatewayKind> Default for ClassIndex<K> {
    fn default() -> Self {
        Self(GroupIndex::default())
    }
}

impl<K: GatewayKind> ClassIndex<K> {
    /// Follows one event of the gateway watch.
    pub(crate) fn observe(&self, event: &watcher::Event<K::Gateway>) {
        self.0.observe(event, |gateway| {
            let class = K::class_name(gateway).unwrap_or_default().to_owned();
            (ObjectRef::from_obj(gateway), Some(class))
        });
    }

    /// The gateways a change of class `class` concerns: those naming it, and those
    /// naming no class, whose default class it may be (or have been).
    pub(crate) fn gateways_of(&self, class: &str) -> Vec<ObjectRef<K::Gateway>> {
        let mut gateways = self.0.members_of(&class.to_owned());
        if !class.is_empty() {
            gateways.extend(self.0.members_of(&String::new()));
        }
        gateways
    }
}

/// The gateways of kind `K`, watched once.
pub(crate) struct GatewayWatch<K: GatewayKind> {
    pub(crate) store: Store<K::Gateway>,
    pub(crate) stream: Objects<K::Gateway>,
    pub(crate) by_class: ClassIndex<K>,
}

impl<K: GatewayKind> GatewayWatch<K> {
    /// Watches the gateways (in `namespace`, or everywhere). Each event also keeps
    /// `by_class` and the related read index (a deleted gateway's reads go) and shows
    /// the attached objects of a changed gateway to `attached`.
    pub(crate) fn start(
        tracking: &CacheTracking<'_>,
        client: &Client,
        namespace: Option<&str>,
        related: &Arc<RelatedView>,
        attached: Option<attached::GatewayEvents>,
    ) -> Self {
        let (store, writer) = reflector::store::<K::Gateway>();
        let api = match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        // The gateway cache is the largest one; managedFields are never read from it.
        let events = watcher(api, watcher::Config::default())
            .modify(|gateway: &mut K::Gateway| gateway.meta_mut().managed_fields = None);
        let cache = K::Gateway::kind(&()).into_owned();
        let listed = mark_listed(tracking.gate, cache.clone());
        let by_class = ClassIndex::<K>::default();
        let keep_indexes = {
            let (by_class, related, gateways) = (by_class.clone(), related.clone(), store.clone());
            move |event: &Result<watcher::Event<K::Gateway>, watcher::Error>| {
                let Ok(event) = event else { return };
                by_class.observe(event);
                match event {
                    watcher::Event::Delete(gateway) => related.forget(&GatewayKey::of(gateway)),
                    // Only this kind's gateways: the read index holds every kind's.
                    watcher::Event::InitDone => related.caches.retain(|key| {
                        key.kind != K::Gateway::kind(&())
                            || gateways.get(&key.object_ref()).is_some()
                    }),
                    _ => {}
                }
            }
        };
        let reflected = reflect(writer, tracked(tracking.health, cache, events))
            .inspect(keep_indexes)
            .inspect(listed);
        let stream = touched_once_stored(reflected, store.clone())
            .inspect(move |gateway| {
                // A changed or deleted gateway: its attached objects look again.
                if let (Ok(gateway), Some(attached)) = (gateway, attached.as_ref()) {
                    attached.touched(gateway);
                }
            })
            .boxed();
        Self {
            store,
            stream,
            by_class,
        }
    }
}

/// The classes of kind `K` (cluster-scoped), watched once.
pub(crate) struct ClassWatch<K: GatewayKind> {
    pub(crate) store: Store<K::Class>,
    pub(crate) stream: Objects<K::Class>,
}

impl<K: GatewayKind> ClassWatch<K> {
    pub(crate) fn start(tracking: &CacheTracking<'_>, client: &Client) -> Self {
        let (store, writer) = reflector::store::<K::Class>();
        let cache = K::Class::kind(&()).into_owned();
        let listed = mark_listed(tracking.gate, cache.clone());
        let events = watcher(
            Api::<K::Class>::all(client.clone()),
            watcher::Config::default(),
        );
        let reflected = reflect(writer, tracked(tracking.health, cache, events)).inspect(listed);
        let stream = touched_once_stored(reflected, store.clone()).boxed();
        Self { store, stream }
    }
}

/// The classes of `controller` in `classes`: a gateway change re-runs them, since their
/// finalizer depends on the gateways using them.
pub(crate) fn ours<K: GatewayKind>(
    classes: &Store<K::Class>,
    controller: &str,
) -> Vec<ObjectRef<K::Class>> {
    classes
        .state()
        .iter()
        .filter(|class| K::controller(class) == controller)
        .map(|class| ObjectRef::from_obj(class.as_ref()))
        .collect()
}

/// The children of one kind, selected by the hash of our controller name.
pub(crate) struct ChildWatch {
    pub(crate) cache: ChildCache,
    pub(crate) stream: Objects<DynamicObject>,
}

impl ChildWatch {
    pub(crate) fn start(
        tracking: &CacheTracking<'_>,
        client: &Client,
        namespace: Option<&str>,
        resource: ApiResource,
        controller_id: &str,
    ) -> Self {
        let selector = format!("{}={}", names::CONTROLLER_LABEL, controller_id);
        let writer = reflector::store::Writer::new(resource.clone());
        let store = writer.as_reader();
        let owners = OwnerIndex::default();
        let stream = dynamic_reflector(
            tracking,
            format!("child {}", resource.kind),
            client,
            namespace,
            &resource,
            writer,
            Some(&selector),
            None,
            false,
            {
                let owners = owners.clone();
                move |event| owners.observe(event)
            },
        )
        .boxed();
        Self {
            cache: ChildCache {
                resource,
                store,
                owners,
            },
            stream,
        }
    }
}

/// What this kind reads of the operator's related caches (and of ReferenceGrants, if it
/// asks about them), and the gateways whose reads changed.
pub(crate) struct RelatedReads<K: GatewayKind> {
    pub(crate) view: Arc<RelatedView>,
    pub(crate) triggers: GatewayTriggers<K>,
}

impl<K: GatewayKind> RelatedReads<K> {
    /// `changed` are the gateways of this kind that the shared caches' feed re-runs.
    pub(crate) fn start(
        tracking: &CacheTracking<'_>,
        client: &Client,
        namespace: Option<&str>,
        caches: Arc<RelatedCaches>,
        declared: &[RelatedWatch],
        changed: Option<UnboundedReceiver<GatewayKey>>,
        reference_grants: bool,
    ) -> Self {
        let mut view = RelatedView::new(caches, declared);
        let grants = reference_grants.then(|| {
            let (grants, writer) = reference_grants::cache();
            view.set_grants(grants.clone());
            (grants, writer)
        });
        let view = Arc::new(view);
        let changed = changed.map_or_else(|| futures::stream::empty().boxed(), StreamExt::boxed);
        // A grant's change re-runs the gateways that asked about its namespace; the read
        // index is the operator's, so only this kind's gateways are ours to queue.
        let granted = match grants {
            Some((grants, writer)) => reference_grants::watch::watch(
                grants,
                writer,
                tracking,
                client,
                namespace,
                view.caches.clone(),
            )
            .filter(|gateway| std::future::ready(gateway.kind == K::Gateway::kind(&())))
            .boxed(),
            None => futures::stream::empty().boxed(),
        };
        let triggers = futures::stream::select(changed, granted)
            .map(|gateway| gateway.object_ref::<K::Gateway>())
            .boxed();
        Self { view, triggers }
    }
}

/// `gateways` also re-run by the attached kind's `watch`, if any: a gateway whose
/// attached objects changed, or that admits them by namespace label when a namespace's
/// labels change; and the attached controller, which clears objects whose gateway is
/// gone or not ours.
pub(crate) fn with_attached<K: GatewayKind>(
    gateways: Controller<K::Gateway>,
    watch: Option<AttachedWatch<K>>,
    gateway_store: &Store<K::Gateway>,
    class_store: &Store<K::Class>,
    controller: &str,
) -> (Controller<K::Gateway>, Option<Controller<DynamicObject>>) {
    let Some(watch) = watch else {
        return (gateways, None);
    };
    let relabelled = relabelled::<K>(
        watch.namespace_changes,
        watch.cache.clone(),
        gateway_store.clone(),
        class_store.clone(),
        controller.to_owned(),
    );
    let gateways = (gateways.reconcile_on(watch.gateway_triggers)).reconcile_on(relabelled);
    let (store, resource) = (watch.cache.store.clone(), watch.cache.resource.clone());
    let objects = Controller::for_stream_with(watch.objects, store, resource)
        .reconcile_on(watch.object_triggers);
    (gateways, Some(objects))
}

/// The gateways to re-run when a namespace's labels change: those that admit attached
/// objects by namespace label and have some in that namespace, and no other.
fn relabelled<K: GatewayKind>(
    namespace_changes: impl Stream<Item = String> + Send + 'static,
    attached: Arc<AttachedCache>,
    gateways: Store<K::Gateway>,
    classes: Store<K::Class>,
    controller: String,
) -> GatewayTriggers<K> {
    namespace_changes
        .flat_map(move |namespace| {
            let all_classes = classes.state();
            let affected: Vec<ObjectRef<K::Gateway>> = attached
                .gateways_with_objects_in(&namespace)
                .into_iter()
                .filter_map(|key| gateways.get(&ObjectRef::new(&key.name).within(&key.namespace)))
                .filter(|gateway| {
                    let class = match claim::<K>(K::class_name(gateway), &all_classes, &controller)
                    {
                        Claim::Ours { class } => classes.get(&ObjectRef::new(&class.name)),
                        _ => None,
                    };
                    attached::reads_namespace_labels::<K>(gateway, class.as_deref())
                })
                .map(|gateway| ObjectRef::from_obj(gateway.as_ref()))
                .collect();
            futures::stream::iter(affected)
        })
        .boxed()
}

/// `objects` unchanged, and the receiver of what `triggers` maps each of them to: a
/// change of one cache that re-runs objects of another controller.
pub(crate) fn with_triggers<T: Send + 'static, R: Send + 'static>(
    objects: Objects<T>,
    mut triggers: impl FnMut(&T) -> Vec<R> + Send + 'static,
) -> (Objects<T>, UnboundedReceiver<R>) {
    let (sender, receiver) = futures::channel::mpsc::unbounded();
    let objects = objects
        .inspect(move |object| {
            if let Ok(object) = object {
                for trigger in triggers(object) {
                    let _ = sender.unbounded_send(trigger);
                }
            }
        })
        .boxed();
    (objects, receiver)
}

/// Every gateway re-runs on each item of `resync`, else every `every`, else never.
pub(crate) fn resync_all<K: GatewayKind>(
    controller: Controller<K::Gateway>,
    resync: Option<ResyncTrigger>,
    every: Option<Duration>,
) -> Controller<K::Gateway> {
    match (resync, every) {
        (Some(trigger), _) => controller.reconcile_all_on(trigger),
        (None, Some(every)) => {
            controller.reconcile_all_on(futures::stream::unfold((), move |()| async move {
                tokio::time::sleep(every).await;
                Some(((), ()))
            }))
        }
        (None, None) => controller,
    }
}

/// `reconcile`, held until every cache has listed once: so that a restart neither
/// releases gateways nor re-applies unchanged children, nor takes "not listed yet" for
/// "missing" (a class's finalizer depends on the gateways using it).
pub(crate) fn after_first_list<T, C, F, Fut>(
    gate: &SyncGate,
    reconcile: F,
) -> impl FnMut(Arc<T>, Arc<C>) -> BoxFuture<'static, Fut::Output>
where
    T: Send + Sync + 'static,
    C: Send + Sync + 'static,
    F: Fn(Arc<T>, Arc<C>) -> Fut + Clone + Send + 'static,
    Fut: Future + Send + 'static,
{
    let gate = gate.clone();
    move |object, context| {
        let (gate, reconcile) = (gate.clone(), reconcile.clone());
        async move {
            gate.wait().await;
            reconcile(object, context).await
        }
        .boxed()
    }
}

/// Runs a controller's results to the end. Reconcile failures are logged by the error
/// policies; anything else (a watch that cannot list, e.g. an object that does not
/// deserialise) would otherwise be silent. Every watch fails at once when the API
/// server goes away: `throttle` keeps that to a few lines a second.
pub(crate) async fn drain<T, E, Q>(
    results: impl Stream<Item = Result<T, controller::Error<E, Q>>>,
    throttle: Arc<LogThrottle>,
) where
    E: std::error::Error + 'static,
    Q: std::error::Error + 'static,
{
    results
        .for_each(|result| {
            match result {
                Ok(_) | Err(controller::Error::ReconcilerFailed(..)) => {}
                Err(error) => match throttle.admit() {
                    Some(held_back) => {
                        warn!(%error, held_back, "controller error: a watch or queue failed; retrying")
                    }
                    None => debug!(%error, "controller error: a watch or queue failed; retrying"),
                },
            }
            futures::future::ready(())
        })
        .await;
}
