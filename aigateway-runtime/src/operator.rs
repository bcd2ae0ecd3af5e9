//! The operator shell: watches, the two controllers (gateways and classes), leader
//! election, the admin server and graceful shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use futures::future::{BoxFuture, FutureExt, Shared as SharedFuture};
use futures::{Stream, StreamExt, TryStreamExt};
use kube::api::{Api, ApiResource, DynamicObject, PartialObjectMeta};
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::{WatchStreamExt, reflector as reflect};
use kube::{Client, Resource, ResourceExt};
use tracing::{info, warn};

use crate::admin::{self, AdminState, CacheHealth};
use crate::apply::ChildCache;
use crate::attached;
use crate::children::OwnerIndex;
use crate::class::claim;
use crate::implementation::GatewayImplementation;
use crate::kind::{AiGatewayKind, GatewayKind};
use crate::leader::LeaseClock;
use crate::metrics::{ConditionLabels, Metrics};
use crate::names;
use crate::reconcile::{self, Shared};
use crate::related::{GatewayKey, RelatedCache, RelatedCaches};

/// Errors that stop the operator.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// `run` was called without an implementation.
    #[error("no gateway implementation configured: call Operator::gateway(..) before run()")]
    NoImplementation,
    /// The controller name is not a domain-prefixed path.
    #[error("invalid controller name: {0}")]
    ControllerName(#[from] aigateway_api::class::ControllerNameError),
    /// The admin server could not bind.
    #[error("could not bind the admin server to {addr}: {source}")]
    Admin {
        /// The address.
        addr: SocketAddr,
        /// The bind error.
        #[source]
        source: std::io::Error,
    },
    /// Leader election failed.
    #[error("leader election on Lease {namespace}/{name} failed: {message}")]
    LeaderElection {
        /// Lease namespace.
        namespace: String,
        /// Lease name.
        name: String,
        /// What failed.
        message: String,
    },
}

/// Leader election settings: only the holder of the Lease reconciles (and writes).
#[derive(Debug, Clone)]
pub struct LeaderElection {
    /// Lease name.
    pub lease_name: String,
    /// Lease namespace.
    pub lease_namespace: String,
    /// This instance's identity (pod name by default).
    pub identity: String,
    /// How long a lease lasts without renewal, in seconds.
    pub lease_duration_seconds: u64,
    /// Renewal margin before expiry, in seconds.
    pub grace_seconds: u64,
}

impl LeaderElection {
    /// A lease `name` in `namespace`, identity from `$POD_NAME` or `$HOSTNAME`.
    pub fn new(name: impl Into<String>, namespace: impl Into<String>) -> Self {
        let identity = std::env::var("POD_NAME")
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| format!("aigateway-{}", std::process::id()));
        Self {
            lease_name: name.into(),
            lease_namespace: namespace.into(),
            identity,
            lease_duration_seconds: 15,
            grace_seconds: 5,
        }
    }

    /// Sets the identity.
    pub fn identity(mut self, identity: impl Into<String>) -> Self {
        self.identity = identity.into();
        self
    }

    /// Sets lease duration and grace, in seconds.
    pub fn timing(mut self, duration_seconds: u64, grace_seconds: u64) -> Self {
        self.lease_duration_seconds = duration_seconds;
        self.grace_seconds = grace_seconds;
        self
    }
}

/// Operator settings.
#[derive(Debug, Clone)]
pub struct OperatorConfig {
    /// Watch gateways, children and related objects in this namespace only.
    pub namespace: Option<String>,
    /// Where to serve `/healthz`, `/readyz` and `/metrics`.
    pub admin_addr: Option<SocketAddr>,
    /// Leader election; `None` runs without.
    pub leader_election: Option<LeaderElection>,
    /// Gateways reconciled at once (controller-runtime's default is 1).
    pub concurrency: u16,
    /// Reconcile every gateway this often even without changes (`None`: never).
    pub resync: Option<Duration>,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        Self {
            namespace: None,
            admin_addr: None,
            leader_election: None,
            concurrency: 16,
            resync: None,
        }
    }
}

type ShutdownSignal = SharedFuture<BoxFuture<'static, ()>>;
/// The gateway and class caches of the running controllers, for the metrics scrape.
type StoreSlot<K> = Arc<
    Mutex<
        Option<(
            Store<<K as GatewayKind>::Gateway>,
            Store<<K as GatewayKind>::Class>,
        )>,
    >,
>;

/// Builds and runs a class operator.
///
/// ```no_run
/// # async fn doc(client: kube::Client, my_impl: impl aigateway_runtime::GatewayImplementation) -> Result<(), aigateway_runtime::OperatorError> {
/// use aigateway_runtime::{LeaderElection, Operator};
/// Operator::new(client)
///     .gateway(my_impl)
///     .admin("0.0.0.0:8080".parse().unwrap())
///     .leader_election(LeaderElection::new("my-operator", "my-system"))
///     .run()
///     .await
/// # }
/// ```
pub struct Operator<K: GatewayKind = AiGatewayKind> {
    client: Client,
    config: OperatorConfig,
    implementation: Option<Arc<dyn GatewayImplementation<K>>>,
    shutdown: ShutdownSignal,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    caches: CacheHealth,
    admin_bound: Arc<Mutex<Option<SocketAddr>>>,
    resync_trigger: Mutex<Option<Pin<Box<dyn Stream<Item = ()> + Send>>>>,
}

impl Operator<AiGatewayKind> {
    /// An AiGateway operator on `client`, stopping on SIGTERM or Ctrl-C.
    pub fn new(client: Client) -> Self {
        Self::for_kind(client)
    }
}

impl<K: GatewayKind> Operator<K> {
    /// An operator for gateway kind `K`.
    pub fn for_kind(client: Client) -> Self {
        Self {
            client,
            config: OperatorConfig::default(),
            implementation: None,
            shutdown: termination_signal().boxed().shared(),
            metrics: Arc::new(Metrics::default()),
            ready: Arc::new(AtomicBool::new(false)),
            caches: CacheHealth::default(),
            admin_bound: Arc::new(Mutex::new(None)),
            resync_trigger: Mutex::new(None),
        }
    }

    /// The implementation that serves the gateways of its classes.
    pub fn gateway(self, implementation: impl GatewayImplementation<K>) -> Self {
        self.gateway_arc(Arc::new(implementation))
    }

    /// Like [`gateway`](Self::gateway), for an implementation already behind an `Arc`.
    pub fn gateway_arc(mut self, implementation: Arc<dyn GatewayImplementation<K>>) -> Self {
        self.implementation = Some(implementation);
        self
    }

    /// Replaces all settings.
    pub fn config(mut self, config: OperatorConfig) -> Self {
        self.config = config;
        self
    }

    /// Watches one namespace instead of all.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.config.namespace = Some(namespace.into());
        self
    }

    /// Serves `/healthz`, `/readyz` and `/metrics` on `addr`.
    pub fn admin(mut self, addr: SocketAddr) -> Self {
        self.config.admin_addr = Some(addr);
        self
    }

    /// Enables leader election.
    pub fn leader_election(mut self, election: LeaderElection) -> Self {
        self.config.leader_election = Some(election);
        self
    }

    /// How many gateways are reconciled at once.
    pub fn concurrency(mut self, concurrency: u16) -> Self {
        self.config.concurrency = concurrency.max(1);
        self
    }

    /// Reconciles every gateway whenever `trigger` yields (tests use this to force a
    /// resync; production uses [`OperatorConfig::resync`]).
    pub fn resync_on(mut self, trigger: impl Stream<Item = ()> + Send + 'static) -> Self {
        self.resync_trigger = Mutex::new(Some(Box::pin(trigger)));
        self
    }

    /// Stops (gracefully) when `signal` resolves instead of on SIGTERM/Ctrl-C.
    pub fn shutdown_on(
        mut self,
        signal: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Self {
        self.shutdown = signal.boxed().shared();
        self
    }

    /// The operator's metrics (shared with the admin server).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// A flag that turns true once caches are synced (what `/readyz` reports).
    pub fn ready_flag(&self) -> Arc<AtomicBool> {
        self.ready.clone()
    }

    /// Where the admin server listens once running (resolves port 0).
    pub fn admin_address(&self) -> Arc<Mutex<Option<SocketAddr>>> {
        self.admin_bound.clone()
    }

    /// Runs until the shutdown signal: in-flight reconciles finish, the lease is released.
    pub async fn run(self) -> Result<(), OperatorError> {
        let implementation = self
            .implementation
            .clone()
            .ok_or(OperatorError::NoImplementation)?;
        aigateway_api::class::validate_controller_name(implementation.controller_name())?;
        let gateway_store: StoreSlot<K> = Arc::default();

        if let Some(addr) = self.config.admin_addr {
            let metrics = self.metrics.clone();
            let stores = gateway_store.clone();
            let controller = implementation.controller_name().to_owned();
            let refresh = Arc::new(move || {
                if let Some((gateways, classes)) = stores.lock().expect("store slot").as_ref() {
                    metrics.set_gateway_counts(gateway_counts::<K>(gateways, classes, &controller));
                }
            });
            let state = AdminState {
                ready: self.ready.clone(),
                metrics: self.metrics.clone(),
                refresh,
                caches: self.caches.clone(),
            };
            let (bound, _) = admin::serve(addr, state, self.shutdown.clone())
                .await
                .map_err(|source| OperatorError::Admin { addr, source })?;
            *self.admin_bound.lock().expect("admin slot") = Some(bound);
            info!(%bound, "admin server listening");
        }

        let resync = self.resync_trigger.lock().expect("resync slot").take();
        match self.config.leader_election.clone() {
            None => {
                self.metrics.set_leader(true);
                run_controllers::<K>(
                    &self,
                    implementation,
                    gateway_store,
                    self.shutdown.clone(),
                    resync,
                )
                .await;
                Ok(())
            }
            Some(election) => {
                self.run_with_leader_election(election, implementation, gateway_store, resync)
                    .await
            }
        }
    }

    async fn run_with_leader_election(
        &self,
        election: LeaderElection,
        implementation: Arc<dyn GatewayImplementation<K>>,
        gateway_store: StoreSlot<K>,
        mut resync: Option<Pin<Box<dyn Stream<Item = ()> + Send>>>,
    ) -> Result<(), OperatorError> {
        let error = |message: String| OperatorError::LeaderElection {
            namespace: election.lease_namespace.clone(),
            name: election.lease_name.clone(),
            message,
        };
        let duration = Duration::from_secs(election.lease_duration_seconds);
        let clock = LeaseClock::new(duration);
        // One Lease request may take at most the renewal margin, so a hanging one is
        // given up (and retried by the lease client) well before the deadline.
        let request_timeout = Duration::from_secs(election.grace_seconds.max(1));
        let lease_client = clock.client(
            &self.client,
            (&election.lease_namespace, &election.lease_name),
            &election.identity,
            request_timeout,
        );
        let manager =
            kube_lease_manager::LeaseManagerBuilder::new(lease_client, &election.lease_name)
                .with_namespace(&election.lease_namespace)
                .with_identity(&election.identity)
                .with_duration(election.lease_duration_seconds)
                .with_grace(election.grace_seconds)
                .with_field_manager(implementation.field_manager())
                .build()
                .await
                .map_err(|e| {
                    error(match &e {
                        kube_lease_manager::LeaseManagerError::KubeError(kube) => {
                            crate::describe_kube_error(kube)
                        }
                        other => other.to_string(),
                    })
                })?;
        let (mut leader, lease_task) = manager.watch().await;
        let mut renewed = clock.subscribe();
        // A standby is healthy and ready: it serves probes and waits for the lease.
        self.ready.store(true, Ordering::Release);
        let mut shutdown = self.shutdown.clone();
        loop {
            // Standby until we hold a lease whose last renewal is recent enough, or are
            // told to stop.
            while !(*leader.borrow_and_update() && clock.valid_at(Instant::now())) {
                tokio::select! {
                    changed = leader.changed() => if changed.is_err() { return Err(error("the lease manager stopped".into())) },
                    _ = renewed.changed() => {}
                    _ = &mut shutdown => { drop(leader); let _ = lease_task.await; return Ok(()) }
                }
            }
            info!(identity = %election.identity, "acquired leadership");
            self.metrics.set_leader(true);
            // A new leader is ready once its own caches have listed (run_controllers
            // sets the flag again), not because it was a ready standby.
            self.ready.store(false, Ordering::Release);
            let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
            let stop: ShutdownSignal = {
                let shutdown = self.shutdown.clone();
                async move {
                    tokio::select! { _ = shutdown => {}, _ = lost_rx => {} }
                }
                .boxed()
                .shared()
            };
            let controllers = run_controllers::<K>(
                self,
                implementation.clone(),
                gateway_store.clone(),
                stop,
                resync.take(),
            );
            tokio::pin!(controllers);
            loop {
                let deadline = clock.deadline().unwrap_or_else(Instant::now);
                tokio::select! {
                    _ = &mut controllers => break,
                    changed = leader.changed() => {
                        if changed.is_err() || !*leader.borrow_and_update() {
                            // Another instance holds the lease now: stop at once, in-flight
                            // reconciles included, rather than finishing writes from stale caches.
                            warn!(identity = %election.identity, "lost leadership: stopping controllers");
                            let _ = lost_tx.send(());
                            break;
                        }
                    }
                    _ = renewed.changed() => {}
                    _ = tokio::time::sleep_until(deadline) => {
                        if !clock.valid_at(Instant::now()) {
                            // The lease client may still be retrying, but another instance
                            // may hold the lease from now on: stop writing.
                            warn!(identity = %election.identity, "the lease was not renewed within its duration: stopping controllers");
                            let _ = lost_tx.send(());
                            break;
                        }
                    }
                }
            }
            self.metrics.set_leader(false);
            if shutdown.peek().is_some() {
                drop(leader);
                let _ = lease_task.await;
                info!("released the lease");
                return Ok(());
            }
        }
    }
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
        .map(|((condition, status), n)| (ConditionLabels { condition, status }, n))
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

pub(crate) fn dynamic_api(
    client: &Client,
    namespace: Option<&str>,
    resource: &ApiResource,
) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    }
}

/// `events` with their failures recorded in `health` under `cache`, and backoff.
/// Whether every cache has listed once, derived from the watch events themselves.
///
/// `Store::wait_until_ready` is not used for this: its one-shot channel keeps the waker
/// of the task that polled it last, so with two waiters on one store (the controller's
/// own start-up hold and our gate) one of them can wait forever. Seen on a real API
/// server: an operator that started while gateways existed never reconciled them.
#[derive(Clone)]
pub(crate) struct SyncGate {
    pending: Arc<Mutex<std::collections::BTreeSet<String>>>,
    synced: Arc<tokio::sync::watch::Sender<bool>>,
}

impl SyncGate {
    fn new() -> Self {
        SyncGate {
            pending: Arc::default(),
            synced: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }

    /// Registers a cache before its stream starts; the gate opens once all have listed.
    fn register(&self, cache: &str) {
        self.pending
            .lock()
            .expect("sync gate")
            .insert(cache.to_owned());
    }

    /// Records the end of a cache's first list (after the reflector applied it).
    fn listed(&self, cache: &str) {
        let mut pending = self.pending.lock().expect("sync gate");
        if pending.remove(cache) && pending.is_empty() {
            self.synced.send_replace(true);
        }
    }

    /// Resolves once every registered cache has listed once.
    async fn wait(&self) {
        let mut synced = self.synced.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = synced.wait_for(|synced| *synced).await;
    }
}

/// Marks `cache` as listed in `gate` when its reflected stream passes the end of a list.
pub(crate) fn mark_listed<T, E>(
    gate: &SyncGate,
    cache: String,
) -> impl FnMut(&Result<watcher::Event<T>, E>) + Send + 'static {
    let gate = gate.clone();
    gate.register(&cache);
    move |event| {
        if let Ok(watcher::Event::InitDone) = event {
            gate.listed(&cache);
        }
    }
}

pub(crate) fn tracked<T, S>(
    health: &CacheHealth,
    cache: String,
    events: S,
) -> impl Stream<Item = Result<watcher::Event<T>, watcher::Error>> + Send + 'static
where
    T: Send + 'static,
    S: Stream<Item = Result<watcher::Event<T>, watcher::Error>> + Send + 'static,
{
    let health = health.clone();
    events
        .inspect(move |event| match event {
            // An expired resourceVersion only means "relist": routine, not a failure.
            Err(watcher::Error::WatchError(status)) if status.code == 410 => {}
            Err(error) => health.record(&cache, Err(&watch_failure(error))),
            Ok(_) => health.record::<String>(&cache, Ok(())),
        })
        .default_backoff()
}

/// One line for a failed watch: the API server's code, reason and message when it
/// answered, else the client's error.
fn watch_failure(error: &watcher::Error) -> String {
    let api = match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => status.as_ref(),
        watcher::Error::WatchError(status) => status.as_ref(),
        other => return other.to_string(),
    };
    format!("{} {}: {}", api.code, api.reason, api.message)
}

/// What every cache reports to: watch health (for `/readyz`), the first-list gate and
/// the watch-event counter.
pub(crate) struct CacheTracking<'a> {
    pub(crate) health: &'a CacheHealth,
    pub(crate) gate: &'a SyncGate,
    pub(crate) metrics: &'a Arc<Metrics>,
}

/// Objects per page of a dynamic cache's list: a (re)list holds one page of full objects
/// in memory at a time besides the cache, so pages stay small.
const LIST_PAGE_SIZE: u32 = 100;

/// A label-selected watch of one dynamic kind into `writer`'s cache (metadata only when
/// `metadata_only`); `on_event` sees every event once the cache has applied it.
#[allow(clippy::too_many_arguments)]
fn dynamic_reflector(
    tracking: &CacheTracking<'_>,
    cache: String,
    client: &Client,
    namespace: Option<&str>,
    resource: &ApiResource,
    writer: reflector::store::Writer<DynamicObject>,
    label_selector: Option<&str>,
    metadata_only: bool,
    mut on_event: impl FnMut(&watcher::Event<DynamicObject>) + Send + 'static,
) -> impl Stream<Item = Result<DynamicObject, watcher::Error>> + Send + 'static {
    let api = dynamic_api(client, namespace, resource);
    let mut config = watcher::Config::default().page_size(LIST_PAGE_SIZE);
    if let Some(selector) = label_selector {
        config = config.labels(selector);
    }
    let events = if metadata_only {
        let types = kube::api::TypeMeta {
            api_version: resource.api_version.clone(),
            kind: resource.kind.clone(),
        };
        let api: Api<PartialObjectMeta<DynamicObject>> = match namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
            None => Api::all_with(client.clone(), resource),
        };
        let as_dynamic = move |mut meta: PartialObjectMeta<DynamicObject>| {
            // kubectl keeps a copy of the whole object it applied here: for a Secret,
            // its data. A metadata cache must not hold it.
            if let Some(annotations) = meta.metadata.annotations.as_mut() {
                annotations.remove(LAST_APPLIED_ANNOTATION);
            }
            DynamicObject {
                types: Some(types.clone()),
                metadata: meta.metadata,
                data: serde_json::Value::Null,
            }
        };
        watcher(api, config)
            .map_ok(move |event| match event {
                watcher::Event::Apply(o) => watcher::Event::Apply(as_dynamic(o)),
                watcher::Event::Delete(o) => watcher::Event::Delete(as_dynamic(o)),
                watcher::Event::InitApply(o) => watcher::Event::InitApply(as_dynamic(o)),
                watcher::Event::Init => watcher::Event::Init,
                watcher::Event::InitDone => watcher::Event::InitDone,
            })
            .boxed()
    } else {
        watcher(api, config).boxed()
    };
    // managedFields are a large share of every object and the loop never reads them.
    let events = events.modify(|object: &mut DynamicObject| object.metadata.managed_fields = None);
    let listed = mark_listed(tracking.gate, cache.clone());
    let metrics = tracking.metrics.clone();
    let label = cache.clone();
    reflect(writer, tracked(tracking.health, cache, events))
        .inspect(move |event| {
            if let Ok(event) = event {
                if matches!(
                    event,
                    watcher::Event::Apply(_)
                        | watcher::Event::Delete(_)
                        | watcher::Event::InitApply(_)
                ) {
                    metrics.watch_event(&label);
                }
                on_event(event);
            }
        })
        .inspect(listed)
        .touched_objects()
}

/// The annotation in which `kubectl apply` keeps the last applied object.
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

async fn run_controllers<K: GatewayKind>(
    operator: &Operator<K>,
    implementation: Arc<dyn GatewayImplementation<K>>,
    gateway_slot: StoreSlot<K>,
    stop: ShutdownSignal,
    resync: Option<Pin<Box<dyn Stream<Item = ()> + Send>>>,
) {
    let client = operator.client.clone();
    let health = operator.caches.clone();
    let namespace = operator.config.namespace.clone();
    let controller_name = implementation.controller_name().to_owned();
    let field_manager = implementation.field_manager();
    let gate = SyncGate::new();
    // Objects attached to gateways (ToolRoutes): see `attached`.
    let attached = implementation.attached().map(|declaration| {
        let tracking = CacheTracking {
            health: &health,
            gate: &gate,
            metrics: &operator.metrics,
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
    // Related objects: every kind is declared before any stream runs (lookups need them
    // all); the streams below feed the caches and drop outdated content.
    let mut related_caches = RelatedCaches::new(client.clone());
    let mut related_writers = Vec::new();
    for watch in implementation.related() {
        let writer = reflector::store::Writer::new(watch.resource.clone());
        related_caches.add(&watch, writer.as_reader());
        related_writers.push((watch, writer));
    }
    let related = Arc::new(related_caches);
    let gateway_events = reflect(
        gateway_writer,
        tracked(&health, gateway_cache, gateway_events),
    )
    .inspect({
        let related = related.clone();
        let gateways = gateway_reader.clone();
        move |event| match event {
            Ok(watcher::Event::Delete(gateway)) => related.forget(&GatewayKey::of(gateway)),
            Ok(watcher::Event::InitDone) => {
                related.retain(|key| gateways.get(&key.object_ref()).is_some())
            }
            _ => {}
        }
    })
    .inspect(gateway_listed)
    .touched_objects()
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
    let class_events = reflect(
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
    .inspect(class_listed)
    .touched_objects()
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
        .with_config(ControllerConfig::default().concurrency(operator.config.concurrency))
        .reconcile_on(classes_of_gateways);
    let class_controller = Controller::for_stream(class_events, class_reader.clone())
        .reconcile_on(gateways_of_classes);
    *gateway_slot.lock().expect("store slot") =
        Some((gateway_reader.clone(), class_reader.clone()));

    let tracking = CacheTracking {
        health: &health,
        gate: &gate,
        metrics: &operator.metrics,
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

    let mut related_streams = Vec::new();
    for (watch, writer) in related_writers {
        let stream = dynamic_reflector(
            &tracking,
            format!("related {}", watch.resource.kind),
            &client,
            namespace.as_deref(),
            &watch.resource,
            writer,
            watch.label_selector.as_deref(),
            watch.cache == RelatedCache::ContentOnRead,
            {
                let related = related.clone();
                let resource = watch.resource.clone();
                move |event| related.observe(&resource, event)
            },
        );
        related_streams.push((watch, stream));
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
            .map(|(alias, _)| alias),
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
        metrics: operator.metrics.clone(),
        failures: Mutex::default(),
        own_writes: Default::default(),
        owned_condition_types,
        attached: attached.as_ref().map(|a| a.cache.clone()),
    });

    for (resource, stream) in child_streams {
        gateway_controller = gateway_controller.owns_stream_with(stream, resource);
    }
    // A related object's change re-runs exactly the gateways that read it.
    for (watch, stream) in related_streams {
        let related = related.clone();
        let resource = watch.resource.clone();
        gateway_controller = gateway_controller.watches_stream_with(
            stream,
            move |object: DynamicObject| {
                related
                    .readers(&resource, &object)
                    .into_iter()
                    .map(|gateway| gateway.object_ref::<K::Gateway>())
                    .collect::<Vec<_>>()
            },
            watch.resource.clone(),
        );
    }
    // The attached controller clears objects whose gateway is gone or not ours; the
    // gateway controller re-runs gateways whose attached objects changed.
    let mut attached_controller = None;
    if let Some(watch) = attached {
        gateway_controller = gateway_controller.reconcile_on(watch.gateway_triggers);
        attached_controller = Some(
            Controller::for_stream_with(
                watch.objects,
                watch.cache.store.clone(),
                watch.cache.resource.clone(),
            )
            .reconcile_on(watch.object_triggers),
        );
    }
    if let Some(trigger) = resync {
        gateway_controller = gateway_controller.reconcile_all_on(trigger);
    } else if let Some(every) = operator.config.resync {
        let ticks = futures::stream::unfold((), move |()| async move {
            tokio::time::sleep(every).await;
            Some(((), ()))
        });
        gateway_controller = gateway_controller.reconcile_all_on(ticks);
    }

    // Readiness: every cache synced.
    let ready = operator.ready.clone();
    let readiness = {
        let gate = gate.clone();
        async move {
            gate.wait().await;
            ready.store(true, Ordering::Release);
            info!("caches synced");
        }
    };

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
    fn log_controller_error<
        T: std::fmt::Debug,
        E: std::error::Error + 'static,
        Q: std::error::Error + 'static,
    >(
        result: Result<T, kube::runtime::controller::Error<E, Q>>,
    ) {
        match result {
            Ok(_) | Err(kube::runtime::controller::Error::ReconcilerFailed(..)) => {}
            Err(error) => warn!(%error, "controller error: a watch or queue failed; retrying"),
        }
    }
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
            .map(log_controller_error)
            .boxed(),
        None => futures::stream::empty().boxed(),
    };
    let drain = |stream: Pin<Box<dyn Stream<Item = ()> + Send>>| stream.for_each(|_| async {});
    let gateways = drain(gateways.map(log_controller_error).boxed());
    let classes = drain(classes.map(log_controller_error).boxed());
    let attached_objects = drain(attached_objects);
    tokio::select! {
        _ = async { tokio::join!(gateways, classes, attached_objects, readiness) } => {}
    }
    operator
        .ready
        .store(operator.config.leader_election.is_some(), Ordering::Release);
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn termination_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
