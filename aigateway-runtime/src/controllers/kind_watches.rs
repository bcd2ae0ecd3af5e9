//! The watches of one gateway kind as values, each built by one function that returns
//! its cache's store, the stream of objects the cache holds, and what a change re-runs:
//! [`GatewayWatch`] (with the [`ClassIndex`] of the gateways by the class they name),
//! [`ClassWatch`], a [`ChildWatch`] per child kind, and [`RelatedReads`]; the attached
//! kind's watch is `attached::watch`. `run_controllers` folds them into kube's
//! `Controller`s; the policy kinds' watches ([`PolicyControllers`]) run on the
//! runtime's own [`work_queue`](crate::work_queue).

use std::future::Future;

use aigateway_api::NamespacedName;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
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
use crate::children::ChildStore;
use crate::class::{Claim, claim};
use crate::group_index::GroupIndex;
use crate::kind::GatewayKind;
use crate::logging::LogThrottle;
use crate::names;
use crate::policies::{self, PolicyCache, PolicyContext, PolicyWatch, TargetObject};
use crate::reference_grants;
use crate::related::{GatewayKey, RelatedCaches, RelatedView, RelatedWatch};
use crate::shared::Shared;
use crate::watches::{
    CacheTracking, OptionalKind, ResyncTrigger, ShutdownSignal, SyncGate, child_reflector,
    mark_listed, touched_once_stored, tracked, watch_failure,
};
use crate::work_queue;

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
            // Name and namespace only: a reference without the uid and resourceVersion
            // `from_obj` copies is two allocations fewer per gateway, held twice here.
            let meta = gateway.meta();
            let name = meta.name.as_deref().unwrap_or_default();
            let member = ObjectRef::new(name).within(meta.namespace.as_deref().unwrap_or_default());
            (member, Some(class))
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
        status_manager: &str,
    ) -> Self {
        let (store, writer) = reflector::store::<K::Gateway>();
        let api = match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        // The gateway cache is the largest one; nothing reads kubectl's copy of the last
        // applied object (as large as the spec again) from it, nor managedFields beyond
        // the record of our status writes.
        let status_manager = status_manager.to_owned();
        let events =
            watcher(api, watcher::Config::default()).modify(move |gateway: &mut K::Gateway| {
                let meta = gateway.meta_mut();
                crate::ownership::keep_status_ownership(meta, &status_manager);
                drop_last_applied(meta);
            });
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

/// kubectl's copy of the object as last applied (`kubectl apply` without server-side
/// apply writes it).
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Removes what the loop never reads from a cached class: managedFields and kubectl's
/// last-applied copy. Other annotations stay: implementations read their own.
fn drop_unread_metadata(meta: &mut kube::api::ObjectMeta) {
    meta.managed_fields = None;
    drop_last_applied(meta);
}

/// Removes kubectl's last-applied copy.
fn drop_last_applied(meta: &mut kube::api::ObjectMeta) {
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED_ANNOTATION);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

impl<K: GatewayKind> ClassWatch<K> {
    pub(crate) fn start(tracking: &CacheTracking<'_>, client: &Client) -> Self {
        let (store, writer) = reflector::store::<K::Class>();
        let cache = K::Class::kind(&()).into_owned();
        let listed = mark_listed(tracking.gate, cache.clone());
        let events = watcher(
            Api::<K::Class>::all(client.clone()),
            watcher::Config::default(),
        )
        .modify(|class: &mut K::Class| drop_unread_metadata(class.meta_mut()));
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
    /// For a kind whose CRD may be missing: a message when it appears or goes.
    pub(crate) served_changed: Option<UnboundedReceiver<()>>,
}

impl ChildWatch {
    /// `optional`: the kind's CRD may be missing (see
    /// [`optional_child_kinds`](crate::GatewayImplementation::optional_child_kinds)).
    pub(crate) fn start(
        tracking: &CacheTracking<'_>,
        client: &Client,
        namespace: Option<&str>,
        resource: ApiResource,
        controller_id: &str,
        optional: bool,
    ) -> Self {
        let selector = format!("{}={}", names::CONTROLLER_LABEL, controller_id);
        let store = ChildStore::default();
        let installed = Arc::new(AtomicBool::new(!optional));
        let (kind, served_changed) = if optional {
            let (sender, receiver) = futures::channel::mpsc::unbounded();
            let kind = OptionalKind {
                installed: installed.clone(),
                changed: sender,
            };
            (Some(kind), Some(receiver))
        } else {
            (None, None)
        };
        let stream = child_reflector(
            tracking,
            client,
            namespace,
            &resource,
            &selector,
            store.clone(),
            kind,
        )
        .boxed();
        Self {
            cache: ChildCache {
                resource,
                store,
                installed,
            },
            stream,
            served_changed,
        }
    }

    /// `controller` watching `children` as the gateways' own; a child kind whose CRD
    /// appears or goes re-runs every gateway, which may now make children of it, or
    /// must say why it makes none.
    pub(crate) fn owned_by<G>(controller: Controller<G>, children: Vec<Self>) -> Controller<G>
    where
        G: Resource<DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + serde::de::DeserializeOwned
            + Send
            + Sync
            + 'static,
    {
        (children.into_iter()).fold(controller, |gateways, child| {
            let gateways = match child.served_changed {
                Some(changed) => gateways.reconcile_all_on(changed),
                None => gateways,
            };
            gateways.owns_stream_with(child.stream, child.cache.resource)
        })
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

/// The controllers of the declared policy kinds, and what they add to the gateway
/// controller.
pub(crate) struct PolicyControllers<K: GatewayKind> {
    /// The gateway events, which now also re-run the policies naming each gateway (one
    /// that appears, goes or changes class changes what they say about it).
    pub(crate) gateway_events: Objects<K::Gateway>,
    /// Gateways to re-run because a policy naming them changed.
    pub(crate) gateway_triggers: GatewayTriggers<K>,
    /// One controller per policy kind.
    pub(crate) controllers: PolicyRunners,
}

/// The policy controllers: per kind, the policies to look at, with the kind's cache;
/// at most `concurrency` reconciles at once per kind.
pub(crate) struct PolicyRunners {
    kinds: Vec<(PolicyTriggers, Arc<PolicyCache>)>,
    concurrency: usize,
}

/// The policies of one kind to look at: those its watch reports, those whose decisions
/// changed, and those naming a gateway or attached object that changed; a watch error
/// is an item too, to be logged.
pub(crate) type PolicyTriggers = BoxStream<'static, Result<NamespacedName, watcher::Error>>;

impl<K: GatewayKind> PolicyControllers<K> {
    /// Each policy kind's controller runs on its own watch, the decisions recorded for
    /// it, the gateways its policies name and the attached objects they name (one that
    /// appears, goes or moves to another gateway changes what they say about it); at
    /// most `wiring.concurrency` reconciles at once, as the gateways: unbounded, every
    /// policy due after the first list would run at once, each holding its future and,
    /// while writing, a pooled connection with its buffers (kept by the pool after).
    pub(crate) fn of(
        gateway_events: Objects<K::Gateway>,
        mut attached: Option<&mut AttachedWatch<K>>,
        watches: Vec<PolicyWatch<K>>,
        wiring: &super::Wiring,
    ) -> Self {
        let mut gateway_events = gateway_events;
        let mut gateway_triggers = Vec::new();
        let mut controllers = Vec::new();
        for watch in watches {
            let cache = watch.cache.clone();
            let (events, from_gateways) =
                with_triggers(gateway_events, move |gateway| cache.naming(gateway));
            gateway_events = events;
            gateway_triggers.push(watch.gateway_triggers);
            let mut sources = vec![
                watch.objects,
                watch.policy_triggers.map(Ok).boxed(),
                from_gateways.map(Ok).boxed(),
            ];
            if let Some(attached) = attached.as_deref_mut() {
                let cache = watch.cache.clone();
                let kind = attached.cache.resource.clone();
                let objects =
                    std::mem::replace(&mut attached.objects, futures::stream::empty().boxed());
                let (objects, from_attached) = with_triggers(objects, move |object| {
                    cache.naming_target(&TargetObject {
                        group: kind.group.clone(),
                        kind: kind.kind.clone(),
                        key: attached::key_of(object),
                    })
                });
                attached.objects = objects;
                sources.push(from_attached.map(Ok).boxed());
            }
            controllers.push((futures::stream::select_all(sources).boxed(), watch.cache));
        }
        Self {
            gateway_events,
            gateway_triggers: futures::stream::select_all(gateway_triggers).boxed(),
            controllers: PolicyRunners {
                kinds: controllers,
                concurrency: usize::from(wiring.concurrency),
            },
        }
    }
}

/// Runs the policy controllers until `stop`, each reconcile after the first list, at
/// most `concurrency` at once per kind, as the gateways: unbounded, every policy due
/// after the first list would run at once, each holding its future and, while writing,
/// a pooled connection with its buffers (kept by the pool after). A watch error is
/// logged as the gateway controller's are (see [`drain`]).
pub(crate) fn run_policies<K: GatewayKind>(
    runners: PolicyRunners,
    gate: &SyncGate,
    shared: &Arc<Shared<K>>,
    stop: &ShutdownSignal,
    throttle: &Arc<LogThrottle>,
) -> impl Future<Output = ()> + use<K> {
    let concurrency = runners.concurrency;
    let runs = runners.kinds.into_iter().map(|(triggers, cache)| {
        let context = Arc::new(PolicyContext {
            shared: shared.clone(),
            cache,
        });
        let throttle = throttle.clone();
        let keys = triggers.filter_map(move |trigger| {
            futures::future::ready(match trigger {
                Ok(key) => Some(key),
                Err(failed) => {
                    log_controller_error(&throttle, &watch_failure(&failed));
                    None
                }
            })
        });
        let gate = gate.clone();
        work_queue::run(keys, concurrency, stop.clone(), move |key| {
            let (gate, context) = (gate.clone(), context.clone());
            async move {
                gate.wait().await;
                policies::reconcile(key, context).await
            }
        })
    });
    futures::future::join_all(runs.collect::<Vec<_>>()).map(|_| ())
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
) -> impl FnMut(Arc<T>, Arc<C>) -> BoxFuture<'static, Fut::Output> + use<T, C, F, Fut>
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
pub(crate) async fn drain<T, E>(
    results: impl Stream<Item = Result<T, controller::Error<E, watcher::Error>>>,
    throttle: Arc<LogThrottle>,
) where
    E: std::error::Error + 'static,
{
    results
        .for_each(|result| {
            match result {
                Ok(_) | Err(controller::Error::ReconcilerFailed(..)) => {}
                Err(error) => {
                    // The API server's code, reason and message: kube's own text of a
                    // failed watch ends in a debug dump of the answer.
                    let error = match &error {
                        controller::Error::QueueError(failed) => watch_failure(failed),
                        other => other.to_string(),
                    };
                    log_controller_error(&throttle, &error);
                }
            }
            futures::future::ready(())
        })
        .await;
}

/// Logs a failed watch or queue: a few lines a second at `warn`, the rest at `debug`.
fn log_controller_error(throttle: &LogThrottle, error: &str) {
    match throttle.admit() {
        Some(held_back) => {
            warn!(%error, held_back, "controller error: a watch or queue failed; retrying")
        }
        None => debug!(%error, "controller error: a watch or queue failed; retrying"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aigateway_api::{AiGateway, AiGatewayClass, AiGatewayClassSpec, AiGatewaySpec, AiModel};
    use aigateway_testkit::ApiServer;
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use kube::ResourceExt;
    use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};

    use crate::admin::CacheHealth;
    use crate::kind::AiGatewayKind;
    use crate::metrics::Metrics;

    const NS: &str = "team-a";

    fn gateway(name: &str, class: Option<&str>) -> AiGateway {
        let mut gateway = AiGateway::new(
            name,
            AiGatewaySpec {
                ai_gateway_class_name: class.map(str::to_owned),
                ai_models: vec![AiModel::new("openai", "gpt-4")],
                ..Default::default()
            },
        );
        gateway.metadata.namespace = Some(NS.into());
        gateway
    }

    fn sorted_names<T>(refs: Vec<ObjectRef<T>>) -> Vec<String>
    where
        T: Resource,
        T::DynamicType: Eq + std::hash::Hash + Clone,
    {
        let mut names: Vec<String> = refs.into_iter().map(|r| r.name).collect();
        names.sort();
        names
    }

    fn index_of(events: Vec<watcher::Event<AiGateway>>) -> ClassIndex<AiGatewayKind> {
        let index = ClassIndex::default();
        for event in &events {
            index.observe(event);
        }
        index
    }

    #[test]
    fn a_class_reruns_the_gateways_naming_it_and_those_naming_no_class() {
        let index = index_of(vec![
            watcher::Event::Apply(gateway("on-x", Some("x"))),
            watcher::Event::Apply(gateway("on-y", Some("y"))),
            watcher::Event::Apply(gateway("unnamed", None)),
            watcher::Event::Apply(gateway("empty", Some(""))),
        ]);
        assert_eq!(
            sorted_names(index.gateways_of("x")),
            ["empty", "on-x", "unnamed"]
        );
        assert_eq!(
            sorted_names(index.gateways_of("y")),
            ["empty", "on-y", "unnamed"]
        );
        assert_eq!(sorted_names(index.gateways_of("z")), ["empty", "unnamed"]);
    }

    #[test]
    fn a_gateway_that_moves_class_or_goes_leaves_its_old_class() {
        let index = index_of(vec![
            watcher::Event::Apply(gateway("a", Some("x"))),
            watcher::Event::Apply(gateway("b", Some("x"))),
            watcher::Event::Apply(gateway("a", Some("y"))),
        ]);
        assert_eq!(sorted_names(index.gateways_of("x")), ["b"]);
        assert_eq!(sorted_names(index.gateways_of("y")), ["a"]);
        index.observe(&watcher::Event::Apply(gateway("b", None)));
        assert_eq!(
            sorted_names(index.gateways_of("x")),
            ["b"],
            "now by default"
        );
        index.observe(&watcher::Event::Delete(gateway("b", None)));
        index.observe(&watcher::Event::Delete(gateway("a", Some("y"))));
        assert!(index.gateways_of("x").is_empty());
        assert!(index.gateways_of("y").is_empty());
    }

    #[test]
    fn a_relist_replaces_the_class_index_at_its_end() {
        let index = index_of(vec![
            watcher::Event::Apply(gateway("gone-meanwhile", Some("x"))),
            watcher::Event::Apply(gateway("moved-meanwhile", Some("x"))),
            watcher::Event::Init,
            watcher::Event::InitApply(gateway("moved-meanwhile", Some("y"))),
            watcher::Event::InitApply(gateway("created-meanwhile", Some("x"))),
        ]);
        // Until the relist ends, the index answers as the cache does: from before it.
        assert_eq!(
            sorted_names(index.gateways_of("x")),
            ["gone-meanwhile", "moved-meanwhile"]
        );
        index.observe(&watcher::Event::InitDone);
        assert_eq!(sorted_names(index.gateways_of("x")), ["created-meanwhile"]);
        assert_eq!(sorted_names(index.gateways_of("y")), ["moved-meanwhile"]);
    }

    #[tokio::test]
    async fn triggers_map_each_object_and_let_errors_through_without_any() {
        let objects: Objects<u32> =
            futures::stream::iter(vec![Ok(1), Err(watcher::Error::NoResourceVersion), Ok(2)])
                .boxed();
        let (objects, triggers) = with_triggers(objects, |n| vec![n * 10, n * 10 + 1]);
        let passed: Vec<bool> = objects.map(|object| object.is_ok()).collect().await;
        assert_eq!(passed, [true, false, true]);
        assert_eq!(triggers.collect::<Vec<_>>().await, [10, 11, 20, 21]);
    }

    #[tokio::test]
    async fn a_reconcile_waits_for_every_cache_to_have_listed() {
        let gate = SyncGate::new();
        gate.register("gateways");
        let mut reconcile = after_first_list(&gate, |object: Arc<u32>, context: Arc<u32>| {
            futures::future::ready(*object + *context)
        });
        let mut pass = reconcile(Arc::new(1), Arc::new(2));
        assert!((&mut pass).now_or_never().is_none(), "held before the list");
        gate.listed("gateways");
        assert_eq!(pass.await, 3);
    }

    /// The shared state a watch reports to, kept alive by the test.
    struct Tracking {
        health: CacheHealth,
        gate: SyncGate,
        metrics: Arc<Metrics>,
    }

    impl Tracking {
        fn new() -> Self {
            Self {
                health: CacheHealth::default(),
                gate: SyncGate::new(),
                metrics: Arc::new(Metrics::default()),
            }
        }

        fn of(&self) -> CacheTracking<'_> {
            CacheTracking {
                kind: "AiGateway",
                health: &self.health,
                gate: &self.gate,
                metrics: &self.metrics,
            }
        }

        /// The first-list gate opens once every watch started on it has listed.
        async fn opened(&self) {
            tokio::time::timeout(Duration::from_secs(30), self.gate.wait())
                .await
                .expect("the gate opens once the watch has listed");
        }
    }

    async fn cluster() -> (ApiServer, Client) {
        let server = ApiServer::builder().simulate_deployments(false).build();
        for crd in aigateway_api::crds::all() {
            server.install_crd(crd).await.expect("install CRD");
        }
        let client = server.client();
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(NS.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .expect("create namespace");
        (server, client)
    }

    async fn next_names<T: ResourceExt>(stream: &mut Objects<T>, n: usize) -> Vec<String> {
        let mut names = Vec::new();
        for _ in 0..n {
            let object = tokio::time::timeout(Duration::from_secs(30), stream.next())
                .await
                .expect("the watch yields")
                .expect("the watch goes on")
                .expect("no watch error");
            names.push(object.name_any());
        }
        names.sort();
        names
    }

    #[tokio::test]
    async fn the_gateway_watch_yields_gateways_the_cache_holds_and_keeps_the_class_index() {
        let (_server, client) = cluster().await;
        let gateways = Api::<AiGateway>::namespaced(client.clone(), NS);
        let create = PostParams::default();
        gateways
            .create(&create, &gateway("a", Some("x")))
            .await
            .unwrap();
        let mut applied_with_kubectl = gateway("b", None);
        applied_with_kubectl.metadata.annotations = Some(
            [
                (LAST_APPLIED_ANNOTATION.to_owned(), "x".repeat(100_000)),
                ("example.com/setting".to_owned(), "kept".to_owned()),
            ]
            .into(),
        );
        gateways
            .create(&create, &applied_with_kubectl)
            .await
            .unwrap();
        let tracking = Tracking::new();
        let related = Arc::new(RelatedView::new(
            Arc::new(RelatedCaches::new(client.clone())),
            &[],
        ));
        let mut watch = GatewayWatch::<AiGatewayKind>::start(
            &tracking.of(),
            &client,
            None,
            &related,
            None,
            "minimal-status",
        );

        assert_eq!(next_names(&mut watch.stream, 2).await, ["a", "b"]);
        assert_eq!(
            watch.store.state().len(),
            2,
            "listed gateways come out stored"
        );
        let cached = watch
            .store
            .get(&ObjectRef::new("b").within(NS))
            .expect("b is cached");
        assert_eq!(
            cached.metadata.annotations,
            Some([("example.com/setting".to_owned(), "kept".to_owned())].into()),
            "kubectl's last-applied copy is not cached; the implementation's annotations are"
        );
        assert_eq!(
            cached.metadata.managed_fields, None,
            "no status write of ours: no managedFields record kept"
        );
        tracking.opened().await;
        assert_eq!(sorted_names(watch.by_class.gateways_of("x")), ["a", "b"]);
        assert_eq!(sorted_names(watch.by_class.gateways_of("y")), ["b"]);

        let moved = serde_json::json!({"spec": {"aiGatewayClassName": "y"}});
        gateways
            .patch("a", &PatchParams::default(), &Patch::Merge(&moved))
            .await
            .unwrap();
        assert_eq!(next_names(&mut watch.stream, 1).await, ["a"]);
        assert_eq!(sorted_names(watch.by_class.gateways_of("x")), ["b"]);
        assert_eq!(sorted_names(watch.by_class.gateways_of("y")), ["a", "b"]);

        gateways
            .delete("b", &DeleteParams::default())
            .await
            .unwrap();
        assert_eq!(next_names(&mut watch.stream, 1).await, ["b"]);
        assert_eq!(sorted_names(watch.by_class.gateways_of("y")), ["a"]);
    }

    #[tokio::test]
    async fn the_class_watch_lists_classes_and_a_gateway_change_reruns_only_ours() {
        let (_server, client) = cluster().await;
        let classes = Api::<AiGatewayClass>::all(client.clone());
        for (name, controller) in [
            ("mine", "example.com/ours"),
            ("other", "example.com/theirs"),
        ] {
            let class = AiGatewayClass::new(
                name,
                AiGatewayClassSpec {
                    controller: controller.into(),
                },
            );
            classes
                .create(&PostParams::default(), &class)
                .await
                .unwrap();
        }
        let tracking = Tracking::new();
        let mut watch = ClassWatch::<AiGatewayKind>::start(&tracking.of(), &client);

        assert_eq!(next_names(&mut watch.stream, 2).await, ["mine", "other"]);
        tracking.opened().await;
        let rerun = ours::<AiGatewayKind>(&watch.store, "example.com/ours");
        assert_eq!(sorted_names(rerun), ["mine"]);
    }

    #[tokio::test]
    async fn a_child_watch_holds_our_labelled_children_by_owner() {
        let (_server, client) = cluster().await;
        let controller_id = names::controller_label_value("example.com/ours");
        let config_maps = Api::<ConfigMap>::namespaced(client.clone(), NS);
        for (name, labelled) in [("child", true), ("stranger", false)] {
            let mut object = ConfigMap::default();
            object.metadata.name = Some(name.into());
            object.metadata.owner_references = Some(vec![OwnerReference {
                api_version: "runtime.agentic-layer.ai/v1alpha1".into(),
                kind: "AiGateway".into(),
                name: "a".into(),
                uid: "gateway-uid".into(),
                controller: Some(true),
                ..Default::default()
            }]);
            if labelled {
                object.metadata.labels =
                    Some([(names::CONTROLLER_LABEL.to_owned(), controller_id.clone())].into());
            }
            config_maps
                .create(&PostParams::default(), &object)
                .await
                .unwrap();
        }
        let tracking = Tracking::new();
        let resource = ApiResource::erase::<ConfigMap>(&());
        let mut watch = ChildWatch::start(
            &tracking.of(),
            &client,
            None,
            resource,
            &controller_id,
            false,
        );

        assert_eq!(next_names(&mut watch.stream, 1).await, ["child"]);
        tracking.opened().await;
        assert_eq!(watch.cache.store.len(), 1, "only our children");
        let owned = watch.cache.store.children_of("gateway-uid");
        assert_eq!(
            owned
                .iter()
                .map(|c| (c.namespace(), c.name()))
                .collect::<Vec<_>>(),
            [(NS, "child")]
        );
    }

    #[tokio::test]
    async fn related_reads_rerun_the_gateways_the_shared_feed_names() {
        let (_server, client) = cluster().await;
        let tracking = Tracking::new();
        let (changed, receiver) = futures::channel::mpsc::unbounded();
        let mut related = RelatedReads::<AiGatewayKind>::start(
            &tracking.of(),
            &client,
            None,
            Arc::new(RelatedCaches::new(client.clone())),
            &[],
            Some(receiver),
            false,
        );
        changed
            .unbounded_send(GatewayKey::of(&gateway("a", Some("x"))))
            .unwrap();
        let rerun = related.triggers.next().await.expect("a trigger");
        assert_eq!(
            (rerun.name.as_str(), rerun.namespace.as_deref()),
            ("a", Some(NS))
        );
    }
}
