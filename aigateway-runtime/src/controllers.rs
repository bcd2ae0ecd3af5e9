//! The controllers of one gateway kind and the related caches every kind of the same
//! [`Operator`] shares. The wiring: it sits above the pass it runs. Each watch of a
//! kind (gateways, classes, children, related and attached objects) is a value built in
//! `kind_watches`; `run_controllers` folds them into the gateway, class and
//! attached-object controllers. The plumbing each cache shares (the first-list gate,
//! health, reflectors) is in `watches`, below.
//!
//! [`Operator`]: crate::Operator

mod kind_watches;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::future::{BoxFuture, FutureExt};
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, Store};
use kube::{Client, Resource, ResourceExt};

use crate::admin::CacheHealth;
use crate::attached::{self, AttachedWatch};
use crate::class::claim;
use crate::implementation::GatewayImplementation;
use crate::kind::GatewayKind;
use crate::logging::LogThrottle;
use crate::metrics::{ConditionLabels, Metrics};
use crate::names;
use crate::policies::{self, PolicyWatch};
use crate::reconcile;
use crate::related::{GatewayKey, RelatedCache, RelatedCaches, RelatedWatch};
use crate::shared::Shared;
use crate::watches::{
    CacheTracking, Contents, ResyncTrigger, ShutdownSignal, SyncGate, dynamic_reflector,
};
use kind_watches::{
    ChildWatch, ClassWatch, GatewayWatch, PolicyControllers, RelatedReads, after_first_list, drain,
    ours, resync_all, run_policies, with_attached, with_triggers,
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
                if watch.cache == RelatedCache::ContentOnRead {
                    Contents::Metadata
                } else {
                    Contents::Whole
                },
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

/// The watches of one gateway kind (see `kind_watches`).
struct KindWatches<K: GatewayKind> {
    gateways: GatewayWatch<K>,
    classes: ClassWatch<K>,
    children: Vec<ChildWatch>,
    related: RelatedReads<K>,
    attached: Option<AttachedWatch<K>>,
    policies: Vec<PolicyWatch<K>>,
}

impl<K: GatewayKind> KindWatches<K> {
    /// Starts every watch of kind `K`, each registered in the shared first-list gate.
    fn start(wiring: &Wiring, implementation: &dyn GatewayImplementation<K>) -> Self {
        let (client, namespace) = (&wiring.client, wiring.namespace.as_deref());
        let kind = served_kind_name::<K>();
        let tracking = CacheTracking {
            kind: &kind,
            health: &wiring.health,
            gate: &wiring.gate,
            metrics: &wiring.metrics,
        };
        let status_manager = names::status_field_manager(
            &implementation.field_manager(),
            implementation.controller_name(),
        );
        let attached = (implementation.attached()).map(|declaration| {
            attached::watch(declaration, &tracking, client, namespace, &status_manager)
        });
        let attached_cache = attached.as_ref().map(|watch| watch.cache.clone());
        let policies = (implementation.policies().into_iter())
            .map(|declaration| {
                let controller = implementation.controller_name();
                let attached = attached_cache.clone();
                policies::watch(
                    declaration,
                    controller,
                    attached,
                    &tracking,
                    client,
                    namespace,
                )
            })
            .collect();
        let changed = wiring
            .related_triggers
            .lock()
            .expect("related triggers")
            .remove(&kind);
        let related = RelatedReads::<K>::start(
            &tracking,
            client,
            namespace,
            wiring.related.clone(),
            &implementation.related(),
            changed,
            implementation.uses_reference_grants(),
        );
        let on_gateway = attached.as_ref().map(|watch| watch.on_gateway.clone());
        let gateways = GatewayWatch::<K>::start(
            &tracking,
            client,
            namespace,
            &related.view,
            on_gateway,
            &status_manager,
        );
        let controller_id = names::controller_label_value(implementation.controller_name());
        let mandatory = implementation.child_kinds().into_iter().map(|r| (r, false));
        let optional = (implementation.optional_child_kinds().into_iter()).map(|r| (r, true));
        let children = (mandatory.chain(optional))
            .map(|(resource, optional)| {
                ChildWatch::start(
                    &tracking,
                    client,
                    namespace,
                    resource,
                    &controller_id,
                    optional,
                )
            })
            .collect();
        Self {
            gateways,
            classes: ClassWatch::<K>::start(&tracking, client),
            children,
            related,
            attached,
            policies,
        }
    }
}

/// The controllers of kind `K` until `stop`: start every watch (then this kind's setup
/// token is released from the gate), then run the gateway, class and attached-object
/// controllers.
async fn run_controllers<K: GatewayKind>(
    wiring: &Wiring,
    served: &Served<K>,
    stop: ShutdownSignal,
    resync: Option<ResyncTrigger>,
) {
    let controller = served.implementation.controller_name().to_owned();
    let watches = KindWatches::<K>::start(wiring, served.implementation.as_ref());
    let shared = Arc::new(shared_state(wiring, served, &watches));
    let KindWatches {
        gateways,
        classes,
        children,
        related,
        mut attached,
        policies,
    } = watches;
    *served.stores.lock().expect("store slot") =
        Some((gateways.store.clone(), classes.store.clone()));

    // A gateway change (deletion included) re-runs our classes, whose finalizer depends
    // on the gateways using them; a class change re-runs the gateways that name it (or
    // name no class).
    let class_store = classes.store.clone();
    let (gateway_events, class_triggers) = with_triggers(gateways.stream, move |_| {
        ours::<K>(&class_store, &controller)
    });
    let policies = PolicyControllers::of(gateway_events, attached.as_mut(), policies, wiring);
    let by_class = gateways.by_class.clone();
    let (class_events, gateway_triggers) = with_triggers(classes.stream, move |class| {
        by_class.gateways_of(&class.name_any())
    });
    let gateway_controller =
        Controller::for_stream(policies.gateway_events, gateways.store.clone())
            .with_config(ControllerConfig::default().concurrency(wiring.concurrency))
            .reconcile_on(gateway_triggers)
            .reconcile_on(related.triggers)
            .reconcile_on(policies.gateway_triggers);
    let gateway_controller = ChildWatch::owned_by(gateway_controller, children);
    let (gateway_controller, attached_controller) = with_attached(
        gateway_controller,
        attached,
        &gateways.store,
        &classes.store,
        served.implementation.controller_name(),
    );
    let gateway_controller = resync_all::<K>(gateway_controller, resync, wiring.resync_every);
    let class_controller =
        Controller::for_stream(class_events, classes.store).reconcile_on(class_triggers);
    // Every cache of this kind is registered: the gate may open once they have listed.
    wiring.gate.listed(&setup_token(served));

    let (gate, log) = (&wiring.gate, Arc::new(LogThrottle::default()));
    let gateways = (gateway_controller.graceful_shutdown_on(stop.clone())).run(
        after_first_list(gate, reconcile::reconcile),
        reconcile::error_policy,
        shared.clone(),
    );
    let classes = (class_controller.graceful_shutdown_on(stop.clone())).run(
        after_first_list(gate, reconcile::reconcile_class),
        reconcile::class_error_policy,
        shared.clone(),
    );
    let policy_objects = run_policies(policies.controllers, gate, &shared, &stop, &log);
    let attached_objects = futures::stream::iter(attached_controller.map(|controller| {
        (controller.graceful_shutdown_on(stop)).run(
            after_first_list(gate, attached::reconcile),
            attached::error_policy,
            shared,
        )
    }));
    tokio::join!(
        drain(gateways, log.clone()),
        drain(classes, log.clone()),
        drain(attached_objects.flatten(), log),
        policy_objects,
    );
}

/// The state the reconciles of kind `K` share, over the caches of its watches.
fn shared_state<K: GatewayKind>(
    wiring: &Wiring,
    served: &Served<K>,
    watches: &KindWatches<K>,
) -> Shared<K> {
    let implementation = served.implementation.clone();
    let controller = implementation.controller_name().to_owned();
    let field_manager = implementation.field_manager();
    let reporter = Reporter {
        controller: field_manager.clone(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let owned_condition_types = (K::CONDITION_TYPES.iter().map(|s| (*s).to_owned()))
        .chain(
            implementation
                .condition_aliases()
                .into_iter()
                .map(|alias| alias.type_),
        )
        .collect();
    Shared::<K> {
        client: wiring.client.clone(),
        controller_id: names::controller_label_value(&controller),
        status_manager: names::status_field_manager(&field_manager, &controller),
        controller,
        field_manager,
        classes: watches.classes.store.clone(),
        gateways: watches.gateways.store.clone(),
        children: watches
            .children
            .iter()
            .map(|child| child.cache.clone())
            .collect(),
        child_kinds: (watches.children.iter())
            .map(|child| (child.cache.resource.clone(), child.cache.installed.clone()))
            .collect(),
        related: watches.related.view.clone(),
        reporter,
        metrics: wiring.metrics.clone(),
        failures: Mutex::default(),
        class_failures: Mutex::default(),
        own_writes: Default::default(),
        owned_condition_types,
        attached: watches.attached.as_ref().map(|watch| watch.cache.clone()),
        policies: watches
            .policies
            .iter()
            .map(|watch| watch.cache.clone())
            .collect(),
        warnings: Default::default(),
        implementation,
    }
}
