//! The controllers of one gateway kind: its caches (gateways, classes, children,
//! related and attached objects), the gateway, class and attached-object controllers,
//! and the related caches every kind of the same [`Operator`] shares. The wiring: it
//! sits above the pass it runs; the plumbing each cache shares (the first-list gate,
//! health, reflectors) is in `watches`, below.
//!
//! [`Operator`]: crate::Operator

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};
use futures::{Stream, StreamExt};
use kube::api::Api;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::{WatchStreamExt, reflector as reflect};
use kube::{Client, Resource, ResourceExt};
use tracing::{debug, warn};

use crate::admin::CacheHealth;
use crate::apply::ChildCache;
use crate::attached;
use crate::children::OwnerIndex;
use crate::class::claim;
use crate::implementation::GatewayImplementation;
use crate::kind::GatewayKind;
use crate::logging::LogThrottle;
use crate::metrics::{ConditionLabels, Metrics};
use crate::names;
use crate::reconcile;
use crate::reference_grants;
use crate::related::{GatewayKey, RelatedCache, RelatedCaches, RelatedView, RelatedWatch};
use crate::shared::Shared;
use crate::watches::{
    CacheTracking, ResyncTrigger, ShutdownSignal, SyncGate, dynamic_reflector, mark_listed,
    touched_once_stored, tracked,
};

/// What the controllers of every kind share: the client, the settings, the metrics,
/// the cache health of `/readyz`, one first-list gate, and the related caches.
pub(crate) struct Wiring {
    pub(crate) client: Client,
    pub(crate) namespace: Option<String>,
    pub(crate) concurrency: u16,
    pub(crate) resync_every: Option<Duration>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) health: CacheHealth,
    pub(crate) gate: SyncGate,
    /// One cache per related kind, for every kind (see [`shared_related`]).
    pub(crate) related: Arc<RelatedCaches>,
    /// Per gateway kind, the gateways whose related reads changed; each kind's
    /// controllers take theirs.
    pub(crate) related_triggers: Mutex<HashMap<String, RelatedTriggers>>,
}

/// The gateways (of one kind) that read a related object that changed.
pub(crate) type RelatedTriggers = futures::channel::mpsc::UnboundedReceiver<GatewayKey>;

/// The label (`kind` of the watch-event metric, prefix in `/readyz`) of the related
/// caches, which belong to no one gateway kind.
pub(crate) const SHARED_CACHES: &str = "shared";

/// One gateway kind served by an implementation, with its type erased so that one
/// operator can hold several.
pub(crate) trait ServedKind: Send + Sync {
    /// The gateway kind, e.g. `ToolGateway`.
    fn gateway_kind(&self) -> String;
    fn controller_name(&self) -> &str;
    fn field_manager(&self) -> String;
    /// Gateways of our classes by condition, for the metrics gauge.
    fn counts(&self) -> Vec<(ConditionLabels, i64)>;
    /// A related kind the implementation declares twice, if any: each declaration
    /// would start its own watch while lookups used only one of them.
    fn duplicate_related_kind(&self) -> Option<String>;
    /// The related kinds the implementation reads.
    fn related(&self) -> Vec<RelatedWatch>;
    /// The kind's controllers, until `stop`.
    fn run<'a>(
        &'a self,
        wiring: &'a Wiring,
        stop: ShutdownSignal,
        resync: Option<ResyncTrigger>,
    ) -> BoxFuture<'a, ()>;
}

/// The gateway and class caches of a running kind, for the metrics scrape.
type StoreSlot<K> = Mutex<
    Option<(
        Store<<K as GatewayKind>::Gateway>,
        Store<<K as GatewayKind>::Class>,
    )>,
>;

pub(crate) struct Served<K: GatewayKind> {
    implementation: Arc<dyn GatewayImplementation<K>>,
    stores: StoreSlot<K>,
}

impl<K: GatewayKind> Served<K> {
    pub(crate) fn new(implementation: Arc<dyn GatewayImplementation<K>>) -> Self {
        Self {
            implementation,
            stores: Mutex::new(None),
        }
    }
}

/// The name of gateway kind `K`, e.g. `AiGateway`.
pub(crate) fn served_kind_name<K: GatewayKind>() -> String {
    K::Gateway::kind(&()).into_owned()
}

/// The gate entry a kind removes once it has registered all its caches.
pub(crate) fn setup_token(served: &dyn ServedKind) -> String {
    format!("{} controllers set up", served.gateway_kind())
}

impl<K: GatewayKind> ServedKind for Served<K> {
    fn gateway_kind(&self) -> String {
        served_kind_name::<K>()
    }

    fn controller_name(&self) -> &str {
        self.implementation.controller_name()
    }

    fn field_manager(&self) -> String {
        self.implementation.field_manager()
    }

    fn duplicate_related_kind(&self) -> Option<String> {
        let mut seen = std::collections::HashSet::new();
        self.implementation
            .related()
            .into_iter()
            .map(|watch| watch.resource)
            .find(|resource| !seen.insert((resource.group.clone(), resource.kind.clone())))
            .map(|resource| resource.kind)
    }

    fn related(&self) -> Vec<RelatedWatch> {
        self.implementation.related()
    }

    fn counts(&self) -> Vec<(ConditionLabels, i64)> {
        match self.stores.lock().expect("store slot").as_ref() {
            Some((gateways, classes)) => {
                gateway_counts::<K>(gateways, classes, self.implementation.controller_name())
            }
            None => Vec::new(),
        }
    }

    fn run<'a>(
        &'a self,
        wiring: &'a Wiring,
        stop: ShutdownSignal,
        resync: Option<ResyncTrigger>,
    ) -> BoxFuture<'a, ()> {
        run_controllers::<K>(wiring, self, stop, resync).boxed()
    }
}

/// Splits `trigger` into `n` streams that each yield when it does, and the future that
/// forwards (it never resolves while the trigger lasts).
pub(crate) fn fan_out(
    trigger: Option<ResyncTrigger>,
    n: usize,
) -> (VecDeque<Option<ResyncTrigger>>, BoxFuture<'static, ()>) {
    let Some(mut trigger) = trigger else {
        return (
            (0..n).map(|_| None).collect(),
            futures::future::pending().boxed(),
        );
    };
    let (senders, receivers): (Vec<_>, VecDeque<_>) = (0..n)
        .map(|_| {
            let (tx, rx) = futures::channel::mpsc::unbounded::<()>();
            (tx, Some(rx.boxed() as ResyncTrigger))
        })
        .unzip();
    let forward = async move {
        while trigger.next().await.is_some() {
            for sender in &senders {
                let _ = sender.unbounded_send(());
            }
        }
        futures::future::pending::<()>().await
    }
    .boxed();
    (receivers, forward)
}

/// Gateways of our classes by condition type and status, for the metrics gauge.
fn gateway_counts<K: GatewayKind>(
    gateways: &Store<K::Gateway>,
    classes: &Store<K::Class>,
    controller: &str,
) -> Vec<(ConditionLabels, i64)> {
    let classes = classes.state();
    let mut counts: HashMap<(String, String), i64> = HashMap::new();
    for gateway in gateways.state() {
        if !matches!(
            claim::<K>(K::class_name(&gateway), &classes, controller),
            crate::class::Claim::Ours { .. }
        ) {
            continue;
        }
        for type_ in K::CONDITION_TYPES {
            let status = K::gateway_conditions(&gateway)
                .iter()
                .find(|c| c.type_ == *type_)
                .map_or_else(|| "Missing".to_owned(), |c| c.status.clone());
            *counts.entry(((*type_).to_owned(), status)).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .map(|((condition, status), n)| {
            (
                ConditionLabels {
                    kind: served_kind_name::<K>(),
                    condition,
                    status,
                },
                n,
            )
        })
        .collect()
}

fn api_for<T: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>>(
    client: &Client,
    namespace: Option<&str>,
) -> Api<T> {
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The related caches of an operator: one per related kind in `watches` (from
/// [`shared_watches`](crate::related::shared_watches)), for every gateway kind in
/// `gateway_kinds`; the receivers of each gateway kind's triggers (the gateways whose
/// reads changed); and the future that feeds the caches and sends the triggers (it
/// never resolves).
pub(crate) fn shared_related(
    tracking: &CacheTracking<'_>,
    client: &Client,
    namespace: Option<&str>,
    watches: &[RelatedWatch],
    gateway_kinds: &[String],
) -> (
    Arc<RelatedCaches>,
    HashMap<String, RelatedTriggers>,
    BoxFuture<'static, ()>,
) {
    // Every kind is added before any stream runs (lookups need them all).
    let mut caches = RelatedCaches::new(client.clone());
    let mut writers = Vec::new();
    for watch in watches {
        let writer = reflector::store::Writer::new(watch.resource.clone());
        caches.add(watch, writer.as_reader());
        writers.push((watch, writer));
    }
    let caches = Arc::new(caches);
    let mut senders = HashMap::new();
    let mut receivers = HashMap::new();
    for kind in gateway_kinds {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        senders.insert(kind.clone(), tx);
        receivers.insert(kind.clone(), rx);
    }
    let streams: Vec<_> = writers
        .into_iter()
        .map(|(watch, writer)| {
            let resource = watch.resource.clone();
            dynamic_reflector(
                tracking,
                format!("related {}", watch.resource.kind),
                client,
                namespace,
                &watch.resource,
                writer,
                watch.label_selector.as_deref(),
                watch.field_selector().as_deref(),
                watch.cache == RelatedCache::ContentOnRead,
                {
                    // Loaded content that a newer version or a delete outdates goes.
                    let caches = caches.clone();
                    let resource = resource.clone();
                    move |event| caches.observe(&resource, event)
                },
            )
            .map(move |object| (resource.clone(), object))
            .boxed()
        })
        .collect();
    let feed = {
        let caches = caches.clone();
        // A related object's change re-runs exactly the gateways that read it.
        futures::stream::select_all(streams)
            .for_each(move |(resource, object)| {
                if let Ok(object) = object {
                    for reader in caches.readers(&resource, &object) {
                        if let Some(sender) = senders.get(&reader.kind) {
                            let _ = sender.unbounded_send(reader);
                        }
                    }
                }
                futures::future::ready(())
            })
            .then(|()| futures::future::pending::<()>())
            .boxed()
    };
    (caches, receivers, feed)
}

/// The controllers of kind `K` until `stop`: set up every cache (registered in the
/// shared gate, then this kind's setup token is released), then run.
async fn run_controllers<K: GatewayKind>(
    wiring: &Wiring,
    served: &Served<K>,
    stop: ShutdownSignal,
    resync: Option<ResyncTrigger>,
) {
    let implementation = served.implementation.clone();
    let client = wiring.client.clone();
    let health = wiring.health.clone();
    let namespace = wiring.namespace.clone();
    let controller_name = implementation.controller_name().to_owned();
    let field_manager = implementation.field_manager();
    let gate = wiring.gate.clone();
    let kind = served_kind_name::<K>();
    // Objects attached to gateways (ToolRoutes): see `attached`.
    let attached = implementation.attached().map(|declaration| {
        let tracking = CacheTracking {
            kind: &kind,
            health: &health,
            gate: &gate,
            metrics: &wiring.metrics,
        };
        attached::watch(declaration, &tracking, &client, namespace.as_deref())
    });
    let attached_on_gateway = attached.as_ref().map(|a| a.on_gateway.clone());

    // Gateways and classes, each watched once. A class change re-runs every gateway that
    // names it (or names no class); a gateway change (deletion included) re-runs our
    // classes, whose finalizer depends on the gateways using them.
    let (gateway_reader, gateway_writer) = reflector::store::<K::Gateway>();
    let (class_reader, class_writer) = reflector::store::<K::Class>();
    let (class_triggers, gateways_of_classes) =
        futures::channel::mpsc::unbounded::<ObjectRef<K::Class>>();
    let (gateway_triggers, classes_of_gateways) =
        futures::channel::mpsc::unbounded::<ObjectRef<K::Gateway>>();
    // The gateway cache is the largest one; managedFields are never read from it.
    let gateway_events = watcher(
        api_for::<K::Gateway>(&client, namespace.as_deref()),
        watcher::Config::default(),
    )
    .modify(|gateway: &mut K::Gateway| gateway.meta_mut().managed_fields = None);
    let gateway_cache = K::Gateway::kind(&()).into_owned();
    let gateway_listed = mark_listed(&gate, gateway_cache.clone());
    // Related objects: the operator's shared caches, through what this kind declared.
    let mut related_view = RelatedView::new(wiring.related.clone(), &implementation.related());
    let grants = implementation.uses_reference_grants().then(|| {
        let (grants, writer) = reference_grants::cache();
        related_view.set_grants(grants.clone());
        (grants, writer)
    });
    let related = Arc::new(related_view);
    let related_triggers = wiring
        .related_triggers
        .lock()
        .expect("related triggers")
        .remove(&kind);
    let gateway_events = touched_once_stored(
        reflect(
            gateway_writer,
            tracked(&health, gateway_cache, gateway_events),
        )
        .inspect({
            let related = related.clone();
            let gateways = gateway_reader.clone();
            let kind = kind.clone();
            move |event| match event {
                Ok(watcher::Event::Delete(gateway)) => related.forget(&GatewayKey::of(gateway)),
                // Only this kind's gateways: the read index holds every kind's.
                Ok(watcher::Event::InitDone) => related
                    .caches
                    .retain(|key| key.kind != kind || gateways.get(&key.object_ref()).is_some()),
                _ => {}
            }
        })
        .inspect(gateway_listed),
        gateway_reader.clone(),
    )
    .inspect(move |gateway| {
        // A changed or deleted gateway: its attached objects look again.
        if let (Ok(gateway), Some(attached)) = (gateway, attached_on_gateway.as_ref()) {
            attached.touched(gateway);
        }
    })
    .inspect({
        let classes = class_reader.clone();
        let controller = controller_name.clone();
        move |gateway| {
            if gateway.is_ok() {
                for class in classes.state() {
                    if K::controller(&class) == controller {
                        let _ = class_triggers.unbounded_send(ObjectRef::from_obj(class.as_ref()));
                    }
                }
            }
        }
    });
    let class_cache = K::Class::kind(&()).into_owned();
    let class_listed = mark_listed(&gate, class_cache.clone());
    let class_events = touched_once_stored(
        reflect(
            class_writer,
            tracked(
                &health,
                class_cache,
                watcher(
                    Api::<K::Class>::all(client.clone()),
                    watcher::Config::default(),
                ),
            ),
        )
        .inspect(class_listed),
        class_reader.clone(),
    )
    .inspect({
        let gateways = gateway_reader.clone();
        move |class| {
            if let Ok(class) = class {
                let name = class.name_any();
                for gateway in gateways.state() {
                    if K::class_name(&gateway).is_none_or(|n| n.is_empty() || n == name) {
                        let _ =
                            gateway_triggers.unbounded_send(ObjectRef::from_obj(gateway.as_ref()));
                    }
                }
            }
        }
    });
    let mut gateway_controller = Controller::for_stream(gateway_events, gateway_reader.clone())
        .with_config(ControllerConfig::default().concurrency(wiring.concurrency))
        .reconcile_on(classes_of_gateways);
    let class_controller = Controller::for_stream(class_events, class_reader.clone())
        .reconcile_on(gateways_of_classes);
    *served.stores.lock().expect("store slot") =
        Some((gateway_reader.clone(), class_reader.clone()));

    let tracking = CacheTracking {
        kind: &kind,
        health: &health,
        gate: &gate,
        metrics: &wiring.metrics,
    };
    // Children, selected by the hash of our controller name.
    let controller_id = names::controller_label_value(&controller_name);
    let selector = format!("{}={}", names::CONTROLLER_LABEL, controller_id);
    let mut children = Vec::new();
    let mut child_streams = Vec::new();
    for resource in implementation.child_kinds() {
        let writer = reflector::store::Writer::new(resource.clone());
        let store = writer.as_reader();
        let owners = OwnerIndex::default();
        let stream = dynamic_reflector(
            &tracking,
            format!("child {}", resource.kind),
            &client,
            namespace.as_deref(),
            &resource,
            writer,
            Some(&selector),
            None,
            false,
            {
                let owners = owners.clone();
                move |event| owners.observe(event)
            },
        );
        children.push(ChildCache {
            resource: resource.clone(),
            store,
            owners,
        });
        child_streams.push((resource, stream));
    }

    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: field_manager.clone(),
            instance: std::env::var("POD_NAME").ok(),
        },
    );
    let mut owned_condition_types: Vec<String> =
        K::CONDITION_TYPES.iter().map(|s| (*s).to_owned()).collect();
    owned_condition_types.extend(
        implementation
            .condition_aliases()
            .into_iter()
            .map(|alias| alias.type_),
    );
    let shared = Arc::new(Shared::<K> {
        client: client.clone(),
        implementation: implementation.clone(),
        controller: controller_name.clone(),
        field_manager,
        controller_id,
        classes: class_reader.clone(),
        gateways: gateway_reader.clone(),
        children: children.clone(),
        related: related.clone(),
        recorder,
        metrics: wiring.metrics.clone(),
        failures: Mutex::default(),
        class_failures: Mutex::default(),
        own_writes: Default::default(),
        owned_condition_types,
        attached: attached.as_ref().map(|a| a.cache.clone()),
        warnings: Default::default(),
    });

    for (resource, stream) in child_streams {
        gateway_controller = gateway_controller.owns_stream_with(stream, resource);
    }
    // A related object's change re-runs exactly the gateways (of this kind) that read
    // it: the shared caches' feed sends them here.
    if let Some(triggers) = related_triggers {
        gateway_controller = gateway_controller
            .reconcile_on(triggers.map(|gateway| gateway.object_ref::<K::Gateway>()));
    }
    // The attached controller clears objects whose gateway is gone or not ours; the
    // gateway controller re-runs gateways whose attached objects changed.
    let mut attached_controller = None;
    if let Some(watch) = attached {
        gateway_controller = gateway_controller.reconcile_on(watch.gateway_triggers);
        // A namespace's labels changed: re-run the gateways that admit by namespace
        // label and have attached objects there, and no other.
        let cache = watch.cache.clone();
        let gateways = gateway_reader.clone();
        let classes = class_reader.clone();
        let controller = controller_name.clone();
        let relabelled = watch.namespace_changes.flat_map(move |namespace| {
            let all_classes = classes.state();
            let affected: Vec<ObjectRef<K::Gateway>> = cache
                .gateways_with_objects_in(&namespace)
                .into_iter()
                .filter_map(|key| gateways.get(&ObjectRef::new(&key.name).within(&key.namespace)))
                .filter(|gateway| {
                    let class = match claim::<K>(K::class_name(gateway), &all_classes, &controller)
                    {
                        crate::class::Claim::Ours { class } => {
                            classes.get(&ObjectRef::new(&class.name))
                        }
                        _ => None,
                    };
                    attached::reads_namespace_labels::<K>(gateway, class.as_deref())
                })
                .map(|gateway| ObjectRef::from_obj(gateway.as_ref()))
                .collect();
            futures::stream::iter(affected)
        });
        gateway_controller = gateway_controller.reconcile_on(relabelled);
        attached_controller = Some(
            Controller::for_stream_with(
                watch.objects,
                watch.cache.store.clone(),
                watch.cache.resource.clone(),
            )
            .reconcile_on(watch.object_triggers),
        );
    }
    // ReferenceGrants: a change re-runs the gateways that asked about its namespace.
    if let Some((grants, writer)) = grants {
        let triggers = reference_grants::watch::watch(
            grants,
            writer,
            &tracking,
            &client,
            namespace.as_deref(),
            related.caches.clone(),
        )
        // The read index is the operator's: only this kind's gateways are ours to queue.
        .filter(|gateway| std::future::ready(gateway.kind == K::Gateway::kind(&())))
        .map(|gateway| gateway.object_ref::<K::Gateway>());
        gateway_controller = gateway_controller.reconcile_on(triggers);
    }
    if let Some(trigger) = resync {
        gateway_controller = gateway_controller.reconcile_all_on(trigger);
    } else if let Some(every) = wiring.resync_every {
        let ticks = futures::stream::unfold((), move |()| async move {
            tokio::time::sleep(every).await;
            Some(((), ()))
        });
        gateway_controller = gateway_controller.reconcile_all_on(ticks);
    }

    // Every cache of this kind is registered: the gate may open once they have listed.
    gate.listed(&setup_token(served));

    let gateway_shared = shared.clone();
    let class_gate = gate.clone();
    let attached_gate = gate.clone();
    let gateways = gateway_controller.graceful_shutdown_on(stop.clone()).run(
        move |gateway, shared| {
            let gate = gate.clone();
            async move {
                // Gateways reconcile only once classes, children and related objects
                // are known, so that a restart neither releases gateways nor re-applies
                // unchanged children, nor takes "not listed yet" for "missing".
                gate.wait().await;
                reconcile::reconcile(gateway, shared).await
            }
        },
        reconcile::error_policy,
        gateway_shared,
    );
    // Classes wait too: their finalizer depends on which gateways use them, and an
    // unlisted gateway cache would read as "none", dropping the finalizer of every class
    // in use at each start.
    let classes = class_controller.graceful_shutdown_on(stop.clone()).run(
        move |class, shared| {
            let gate = class_gate.clone();
            async move {
                gate.wait().await;
                reconcile::reconcile_class(class, shared).await
            }
        },
        reconcile::class_error_policy,
        shared.clone(),
    );

    // Reconcile failures are logged by the error policies; anything else (a watch that
    // cannot list, e.g. an object that does not deserialise) would otherwise be silent.
    // Every watch fails at once when the API server goes away: a few lines a second.
    fn log_controller_error<
        T: std::fmt::Debug,
        E: std::error::Error + 'static,
        Q: std::error::Error + 'static,
    >(
        throttle: &LogThrottle,
        result: Result<T, kube::runtime::controller::Error<E, Q>>,
    ) {
        match result {
            Ok(_) | Err(kube::runtime::controller::Error::ReconcilerFailed(..)) => {}
            Err(error) => match throttle.admit() {
                Some(held_back) => {
                    warn!(%error, held_back, "controller error: a watch or queue failed; retrying")
                }
                None => debug!(%error, "controller error: a watch or queue failed; retrying"),
            },
        }
    }
    fn logged<
        T: std::fmt::Debug,
        E: std::error::Error + 'static,
        Q: std::error::Error + 'static,
    >(
        throttle: &Arc<LogThrottle>,
    ) -> impl FnMut(Result<T, kube::runtime::controller::Error<E, Q>>) + use<T, E, Q> {
        let throttle = throttle.clone();
        move |result| log_controller_error(&throttle, result)
    }
    let watch_log = Arc::new(LogThrottle::default());
    let attached_objects: Pin<Box<dyn Stream<Item = ()> + Send>> = match attached_controller {
        Some(controller) => controller
            .graceful_shutdown_on(stop.clone())
            .run(
                move |object, shared| {
                    let gate = attached_gate.clone();
                    async move {
                        gate.wait().await;
                        attached::reconcile(object, shared).await
                    }
                },
                attached::error_policy,
                shared.clone(),
            )
            .map(logged(&watch_log))
            .boxed(),
        None => futures::stream::empty().boxed(),
    };
    let drain = |stream: Pin<Box<dyn Stream<Item = ()> + Send>>| stream.for_each(|_| async {});
    let gateways = drain(gateways.map(logged(&watch_log)).boxed());
    let classes = drain(classes.map(logged(&watch_log)).boxed());
    let attached_objects = drain(attached_objects);
    tokio::join!(gateways, classes, attached_objects);
}
