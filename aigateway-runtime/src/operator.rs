//! The operator shell: watches, the two controllers (gateways and classes), leader
//! election, the admin server and graceful shutdown.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use tokio::time::Instant;

use futures::Stream;
use futures::future::FutureExt;
use kube::Client;
use tracing::{info, warn};

use crate::admin::{self, AdminState, CacheHealth};
use crate::controllers::{
    SHARED_CACHES, Served, ServedKind, Wiring, fan_out, served_kind_name, setup_token,
    shared_related,
};
use crate::implementation::GatewayImplementation;
use crate::kind::GatewayKind;
pub use crate::kube_error::describe_kube_error;
use crate::leader::LeaseClock;
pub use crate::metrics::Metrics;
use crate::related::{RelatedWatch, shared_watches};
use crate::secure_metrics::server_config;
pub use crate::secure_metrics::{CertificateError, MetricsServing, ServingCertificate};
use crate::watches::{CacheTracking, ResyncTrigger, ShutdownSignal, SyncGate};

/// Errors that stop the operator.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// `run` was called without an implementation.
    #[error("no gateway implementation configured: call Operator::gateway(..) before run()")]
    NoImplementation,
    /// Two implementations of one gateway kind were given.
    #[error("two implementations serve {kind}: call Operator::gateway(..) once per gateway kind")]
    DuplicateKind {
        /// The gateway kind, e.g. `ToolGateway`.
        kind: String,
    },
    /// An implementation declares one related kind twice.
    #[error(
        "the implementation of {gateway_kind} declares related kind {related_kind} twice: declare each kind once in related() (one RelatedWatch, named or not)"
    )]
    DuplicateRelatedWatch {
        /// The gateway kind whose implementation declares it.
        gateway_kind: String,
        /// The related kind, e.g. `Secret`.
        related_kind: String,
    },
    /// Two served kinds declare one related kind with different label selectors: the
    /// operator keeps one cache per related kind, for every kind it serves.
    #[error(
        "the implementations of {first_kind} and {second_kind} declare related kind {related_kind} with different label selectors: one cache per related kind serves every gateway kind, so declare the same selector (or none) in both related()"
    )]
    ConflictingRelatedWatch {
        /// The related kind, e.g. `ConfigMap`.
        related_kind: String,
        /// The gateway kind that declared it first.
        first_kind: String,
        /// The gateway kind whose declaration differs.
        second_kind: String,
    },
    /// The controller name is not a domain-prefixed path.
    #[error("invalid controller name: {0}")]
    ControllerName(#[from] aigateway_api::class::ControllerNameError),
    /// The admin (or probes) server could not bind.
    #[error("could not bind the admin server to {addr}: {source}")]
    Admin {
        /// The address.
        addr: SocketAddr,
        /// The bind error.
        #[source]
        source: std::io::Error,
    },
    /// The metrics server could not bind.
    #[error("could not bind the metrics server to {addr}: {source}")]
    Metrics {
        /// The address.
        addr: SocketAddr,
        /// The bind error.
        #[source]
        source: std::io::Error,
    },
    /// The metrics serving certificate could not be used.
    #[error(transparent)]
    MetricsCertificate(#[from] crate::secure_metrics::CertificateError),
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

/// Operator settings, set through the builder methods of [`Operator`].
#[derive(Debug, Clone)]
struct OperatorConfig {
    /// Watch gateways, children and related objects in this namespace only.
    namespace: Option<String>,
    /// Where to serve `/healthz`, `/readyz` and `/metrics`, all plain.
    admin_addr: Option<SocketAddr>,
    /// Where to serve `/healthz` and `/readyz` (plain HTTP).
    probes_addr: Option<SocketAddr>,
    /// Where and how to serve `/metrics`.
    metrics: Option<(SocketAddr, MetricsServing)>,
    /// Leader election; `None` runs without.
    leader_election: Option<LeaderElection>,
    /// Gateways reconciled at once (controller-runtime's default is 1).
    concurrency: u16,
    /// Reconcile every gateway this often even without changes (`None`: never).
    resync: Option<Duration>,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        Self {
            namespace: None,
            admin_addr: None,
            probes_addr: None,
            metrics: None,
            leader_election: None,
            concurrency: 16,
            resync: None,
        }
    }
}

/// Builds and runs a class operator: one process serving one or more gateway kinds
/// (AiGateway, ToolGateway, AgentGateway), each through its own implementation, behind
/// one admin server, one set of metrics and one Lease.
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
pub struct Operator {
    client: Client,
    config: OperatorConfig,
    kinds: Vec<Arc<dyn ServedKind>>,
    duplicate_kind: Option<String>,
    shutdown: ShutdownSignal,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    caches: CacheHealth,
    resync_trigger: Mutex<Option<ResyncTrigger>>,
}

impl Operator {
    /// An operator on `client` serving no kind yet, stopping on SIGTERM or Ctrl-C.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            config: OperatorConfig::default(),
            kinds: Vec::new(),
            duplicate_kind: None,
            shutdown: termination_signal().boxed().shared(),
            metrics: Arc::new(Metrics::default()),
            ready: Arc::new(AtomicBool::new(false)),
            caches: CacheHealth::default(),
            resync_trigger: Mutex::new(None),
        }
    }

    /// Serves the gateways of `implementation`'s classes, of the kind it implements
    /// (`K` is inferred: an `impl GatewayImplementation<ToolGatewayKind>` serves
    /// ToolGateways). Call once per kind; a second implementation of the same kind makes
    /// [`run`](Self::run) fail with [`OperatorError::DuplicateKind`].
    pub fn gateway<K: GatewayKind>(self, implementation: impl GatewayImplementation<K>) -> Self {
        self.gateway_arc::<K>(Arc::new(implementation))
    }

    /// Like [`gateway`](Self::gateway), for an implementation already behind an `Arc`.
    pub fn gateway_arc<K: GatewayKind>(
        mut self,
        implementation: Arc<dyn GatewayImplementation<K>>,
    ) -> Self {
        let kind = served_kind_name::<K>();
        if self
            .kinds
            .iter()
            .any(|served| served.gateway_kind() == kind)
        {
            self.duplicate_kind.get_or_insert(kind);
        } else {
            self.kinds.push(Arc::new(Served::new(implementation)));
        }
        self
    }

    /// Watches one namespace instead of all.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.config.namespace = Some(namespace.into());
        self
    }

    /// Serves `/healthz`, `/readyz` and `/metrics` on `addr`, over plain HTTP and to
    /// anyone who can connect: for tests and local runs. In a cluster, serve the probes
    /// with [`probes`](Self::probes) and the metrics with [`metrics`](Self::metrics).
    pub fn admin(mut self, addr: SocketAddr) -> Self {
        self.config.admin_addr = Some(addr);
        self
    }

    /// Serves the probes `/healthz` and `/readyz` on `addr`, over plain HTTP (the
    /// kubelet probes without credentials).
    pub fn probes(mut self, addr: SocketAddr) -> Self {
        self.config.probes_addr = Some(addr);
        self
    }

    /// Serves `/metrics` on `addr`: with [`MetricsServing::Secure`], over HTTPS and only
    /// to requests the API server authenticates (TokenReview) and authorises for `get`
    /// on the non-resource URL `/metrics` (SubjectAccessReview), as controller-runtime
    /// does by default; the operator's identity then needs `create` on `tokenreviews`
    /// and `subjectaccessreviews` ([`rbac::metrics_auth_rules`](crate::rbac::metrics_auth_rules)).
    pub fn metrics_on(mut self, addr: SocketAddr, serving: MetricsServing) -> Self {
        self.config.metrics = Some((addr, serving));
        self
    }

    /// Enables leader election.
    pub fn leader_election(mut self, election: LeaderElection) -> Self {
        self.config.leader_election = Some(election);
        self
    }

    /// How many gateways of each kind are reconciled at once; as many policies of each
    /// declared policy kind (see
    /// [`GatewayImplementation::policies`]).
    pub fn concurrency(mut self, concurrency: u16) -> Self {
        self.config.concurrency = concurrency.max(1);
        self
    }

    /// Reconciles every gateway of every kind this often even without changes (default:
    /// never; watches deliver every change).
    pub fn resync_every(mut self, every: Duration) -> Self {
        self.config.resync = Some(every);
        self
    }

    /// Reconciles every gateway (of every kind) whenever `trigger` yields (tests use
    /// this to force a resync; production uses [`resync_every`](Self::resync_every)).
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

    /// Runs until the shutdown signal: in-flight reconciles finish, the lease is released.
    /// The same as [`start`](Self::start) and then [`OperatorHandle::wait`].
    pub async fn run(self) -> Result<(), OperatorError> {
        self.start().await?.wait().await
    }

    /// Checks what was configured and binds the admin, probes and metrics servers, then
    /// runs the operator on a new task: errors in the configuration or a port in use
    /// are returned here, before anything watches or writes. The handle says where the
    /// servers listen and whether the operator is ready; the operator runs until its
    /// shutdown signal, [`OperatorHandle::stop`], or the handle is dropped.
    pub async fn start(mut self) -> Result<OperatorHandle, OperatorError> {
        let related = self.validate()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let signal = self.shutdown.clone();
        // A dropped handle closes the channel: that stops the operator as `stop` does.
        self.shutdown = async move {
            tokio::select! { _ = signal => {}, _ = stopped => {} }
        }
        .boxed()
        .shared();
        let (admin_addr, metrics_addr) = self.serve_admin().await?;
        let ready = self.ready.clone();
        let metrics = self.metrics.clone();
        let task = tokio::spawn(async move { self.run_started(&related).await });
        Ok(OperatorHandle {
            admin_addr,
            metrics_addr,
            ready,
            metrics,
            stop,
            task,
        })
    }

    /// The configuration's errors, found before anything is bound or watched; the
    /// related watches every served kind shares.
    fn validate(&self) -> Result<Vec<RelatedWatch>, OperatorError> {
        if let Some(kind) = self.duplicate_kind.clone() {
            return Err(OperatorError::DuplicateKind { kind });
        }
        if self.kinds.is_empty() {
            return Err(OperatorError::NoImplementation);
        }
        for served in &self.kinds {
            aigateway_api::class::validate_controller_name(served.controller_name())?;
            if let Some(related_kind) = served.duplicate_related_kind() {
                return Err(OperatorError::DuplicateRelatedWatch {
                    gateway_kind: served.gateway_kind(),
                    related_kind,
                });
            }
        }
        shared_watches(self.kinds.iter().flat_map(|served| {
            let kind = served.gateway_kind();
            served
                .related()
                .into_iter()
                .map(move |watch| (kind.clone(), watch))
        }))
        .map_err(|conflict| OperatorError::ConflictingRelatedWatch {
            related_kind: conflict.related_kind,
            first_kind: conflict.gateway_kinds.0,
            second_kind: conflict.gateway_kinds.1,
        })
    }

    /// Runs the controllers (behind leader election when configured) until the shutdown
    /// signal, once the servers are bound.
    async fn run_started(&self, related: &[RelatedWatch]) -> Result<(), OperatorError> {
        let resync = self.resync_trigger.lock().expect("resync slot").take();
        match self.config.leader_election.clone() {
            None => {
                self.metrics.set_leader(true);
                self.run_kinds(self.shutdown.clone(), resync, related).await;
                Ok(())
            }
            Some(election) => {
                self.run_with_leader_election(election, resync, related)
                    .await
            }
        }
    }

    /// Starts the admin, probes and metrics servers that are configured; returns where
    /// the admin (or, without one, the probes) server and the metrics server listen.
    async fn serve_admin(&self) -> Result<(Option<SocketAddr>, Option<SocketAddr>), OperatorError> {
        let metrics = self.metrics.clone();
        let kinds = self.kinds.clone();
        let refresh = Arc::new(move || {
            metrics.set_gateway_counts(kinds.iter().flat_map(|served| served.counts()));
        });
        let state = AdminState {
            ready: self.ready.clone(),
            metrics: self.metrics.clone(),
            refresh,
            caches: self.caches.clone(),
        };
        let plain = [
            (
                self.config.admin_addr,
                admin::router(state.clone()),
                "admin",
            ),
            (
                self.config.probes_addr,
                admin::probes_router(state.clone()),
                "probes",
            ),
        ];
        let mut admin_addr = None;
        for (addr, router, what) in plain {
            let Some(addr) = addr else { continue };
            let (bound, _) = admin::serve_router(addr, router, self.shutdown.clone())
                .await
                .map_err(|source| OperatorError::Admin { addr, source })?;
            admin_addr.get_or_insert(bound);
            info!(%bound, "{what} server listening");
        }
        let mut metrics_addr = None;
        if let Some((addr, serving)) = &self.config.metrics {
            let addr = *addr;
            let error = |source| OperatorError::Metrics { addr, source };
            let bound = match serving {
                MetricsServing::Plain => {
                    admin::serve_router(addr, admin::metrics_router(state), self.shutdown.clone())
                        .await
                        .map_err(error)?
                        .0
                }
                MetricsServing::Secure(certificate) => {
                    let tls = server_config(certificate)?;
                    admin::serve_secure_metrics(
                        addr,
                        state,
                        tls,
                        self.client.clone(),
                        self.shutdown.clone(),
                    )
                    .await
                    .map_err(error)?
                    .0
                }
            };
            metrics_addr = Some(bound);
            let secure = matches!(serving, MetricsServing::Secure(_));
            info!(%bound, secure, "metrics server listening");
        }
        Ok((admin_addr, metrics_addr))
    }

    /// Runs the controllers of every kind until `stop`; ready once all their caches have
    /// listed. A kind's gateways wait for every cache, so readiness means "all kinds".
    async fn run_kinds(
        &self,
        stop: ShutdownSignal,
        resync: Option<ResyncTrigger>,
        related: &[RelatedWatch],
    ) {
        let gate = SyncGate::new();
        // Each kind holds the gate closed until it has registered all its caches, so the
        // first kind to list cannot open it for the others.
        for served in &self.kinds {
            gate.register(&setup_token(served.as_ref()));
        }
        // One cache per related kind, for every kind served.
        let gateway_kinds: Vec<String> = self.kinds.iter().map(|s| s.gateway_kind()).collect();
        let (related_caches, related_triggers, feed_related) = shared_related(
            &CacheTracking {
                kind: SHARED_CACHES,
                health: &self.caches,
                gate: &gate,
                metrics: &self.metrics,
            },
            &self.client,
            self.config.namespace.as_deref(),
            related,
            &gateway_kinds,
        );
        let wiring = Wiring {
            client: self.client.clone(),
            namespace: self.config.namespace.clone(),
            concurrency: self.config.concurrency,
            resync_every: self.config.resync,
            metrics: self.metrics.clone(),
            health: self.caches.clone(),
            gate,
            related: related_caches,
            related_triggers: Mutex::new(related_triggers),
        };
        let (mut triggers, forward) = fan_out(resync, self.kinds.len());
        let runs = self.kinds.iter().map(|served| {
            let resync = triggers.pop_front().flatten();
            served.run(&wiring, stop.clone(), resync)
        });
        let ready = self.ready.clone();
        let readiness = async {
            wiring.gate.wait().await;
            ready.store(true, Ordering::Release);
            info!("caches synced");
        };
        tokio::select! {
            _ = futures::future::join_all(runs) => {}
            // Readiness never finishes the select: it resolves once and then waits.
            _ = async { readiness.await; futures::future::pending::<()>().await } => {}
            _ = forward => {}
            _ = feed_related => {}
        }
        self.ready
            .store(self.config.leader_election.is_some(), Ordering::Release);
    }

    async fn run_with_leader_election(
        &self,
        election: LeaderElection,
        mut resync: Option<ResyncTrigger>,
        related: &[RelatedWatch],
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
            self.caches.clone(),
        );
        let manager =
            kube_lease_manager::LeaseManagerBuilder::new(lease_client, &election.lease_name)
                .with_namespace(&election.lease_namespace)
                .with_identity(&election.identity)
                .with_duration(election.lease_duration_seconds)
                .with_grace(election.grace_seconds)
                .with_field_manager(self.kinds[0].field_manager())
                .build()
                .await
                .map_err(|e| {
                    error(match &e {
                        kube_lease_manager::LeaseManagerError::KubeError(kube) => {
                            crate::kube_error::describe_kube_error(kube)
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
            // A new leader is ready once its own caches have listed (run_kinds
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
            let controllers = self.run_kinds(stop, resync.take(), related);
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
            // The stopped watches' failures say nothing about a standby.
            self.caches.forget_caches();
            if shutdown.peek().is_some() {
                drop(leader);
                let _ = lease_task.await;
                info!("released the lease");
                return Ok(());
            }
        }
    }
}

/// A started [`Operator`] ([`Operator::start`]): its servers are bound and it runs on a
/// task until its shutdown signal, [`stop`](Self::stop), or until the handle is dropped
/// (which stops it gracefully without waiting).
pub struct OperatorHandle {
    admin_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    ready: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), OperatorError>>,
}

impl OperatorHandle {
    /// Where the admin server (or, without one, the probes server) listens, port 0
    /// resolved; `None` when neither was configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Where the metrics server of [`Operator::metrics_on`] listens, port 0 resolved.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Whether the operator is ready, as `/readyz` reports it before watch health: every
    /// cache of every kind has listed (or, with leader election, it is a standby).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The operator's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Waits until the operator stops on its shutdown signal; its error, if it failed.
    pub async fn wait(self) -> Result<(), OperatorError> {
        let Self { stop, task, .. } = self;
        let result = joined(task).await;
        drop(stop);
        result
    }

    /// Stops the operator gracefully (in-flight reconciles finish, the lease is
    /// released) and waits for it.
    pub async fn stop(self) -> Result<(), OperatorError> {
        let Self { stop, task, .. } = self;
        let _ = stop.send(());
        joined(task).await
    }
}

/// What the operator's task returned; its panic, resumed.
async fn joined(task: JoinHandle<Result<(), OperatorError>>) -> Result<(), OperatorError> {
    match task.await {
        Ok(result) => result,
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        // The task is never aborted: only a runtime shutting down cancels it.
        Err(_) => Ok(()),
    }
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
