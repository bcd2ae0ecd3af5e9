//! Test support for class operators (feature `testing`): run an [`Operator`] against the
//! in-memory API server of `aigateway-testkit`, wait for what it should do, and prove
//! that a converged operator writes nothing when something makes it reconcile again.
//!
//! ```no_run
//! # use aigateway_runtime::{Context, DesiredState, GatewayImplementation, ImplementationError};
//! # struct MyProxy;
//! # #[async_trait::async_trait]
//! # impl GatewayImplementation for MyProxy {
//! #     fn controller_name(&self) -> &str { "example.com/my-proxy" }
//! #     async fn desired_state(&self, _: &aigateway_api::AiGateway, _: &Context) -> Result<DesiredState, ImplementationError> { Ok(DesiredState::new()) }
//! # }
//! use aigateway_api::AiGateway;
//! use aigateway_runtime::testing::{RunningOperator, api_server, touch, wait_ready};
//! use aigateway_runtime::{AiGatewayKind, Operator};
//!
//! # async fn test() {
//! let server = api_server(aigateway_testkit::ApiServer::builder(), &["demo"]).await;
//! let operator = RunningOperator::spawn(Operator::new(server.client()).gateway(MyProxy));
//! // ... create a class of "example.com/my-proxy" and a gateway "gw" in "demo" ...
//! wait_ready::<AiGatewayKind>(&server.client(), "demo", "gw").await;
//! operator
//!     .assert_silent_after(&server, touch::<AiGateway>(&server.client(), "demo", "gw"))
//!     .await;
//! operator.stop().await;
//! # }
//! ```

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aigateway_api::conditions;
use aigateway_testkit::{ApiServer, ApiServerBuilder};
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::kind::GatewayKind;
use crate::metrics::Metrics;
use crate::operator::{Operator, OperatorError};

/// How long [`eventually`] and the waits below wait before they fail the test.
pub const TIMEOUT: Duration = Duration::from_secs(20);
/// How long the operator must make no reconcile and the server see no write for
/// [`RunningOperator::wait_idle`] to call it idle.
pub const IDLE_WINDOW: Duration = Duration::from_millis(500);
/// The field manager of [`touch`]'s writes, which the steady-state check does not count.
pub const TOUCH_MANAGER: &str = "aigateway-testing-touch";
/// The annotation [`touch`] changes.
pub const TOUCH_ANNOTATION: &str = "testing.aigateway.agentic-layer.ai/touched";

const POLL: Duration = Duration::from_millis(50);

/// Polls `check` every 50 ms until it returns `Some`, and returns that value; panics
/// naming `what` after [`TIMEOUT`].
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_within(TIMEOUT, what, check).await
}

/// [`eventually`] with another deadline than [`TIMEOUT`], for what takes longer by design
/// (a rollout, a retry schedule).
pub async fn eventually_within<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// An API server from `builder` with the CRDs of `aigateway_api` installed and the
/// given namespaces created.
pub async fn api_server(builder: ApiServerBuilder, namespaces: &[&str]) -> ApiServer {
    let server = builder.build();
    for crd in aigateway_api::crds::all() {
        server
            .install_crd(&crd)
            .await
            .expect("the testkit installs our CRDs");
    }
    for namespace in namespaces {
        server
            .apply_manifests(&format!(
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n"
            ))
            .expect("the testkit creates namespaces");
    }
    server
}

/// Waits until the gateway `namespace/name` of kind `K` has `type_` with `status`
/// (`"True"`, `"False"`, `"Unknown"`) and returns it.
pub async fn wait_condition<K: GatewayKind>(
    client: &Client,
    namespace: &str,
    name: &str,
    type_: &str,
    status: &str,
) -> K::Gateway {
    let gateways: Api<K::Gateway> = Api::namespaced(client.clone(), namespace);
    let what = format!("{namespace}/{name} {type_}={status}");
    eventually(&what, || async {
        let gateway = gateways.get_opt(name).await.ok()??;
        K::gateway_conditions(&gateway)
            .iter()
            .any(|c| c.type_ == type_ && c.status == status)
            .then_some(gateway)
    })
    .await
}

/// Waits until the gateway `namespace/name` of kind `K` is `Ready=True` and returns it.
pub async fn wait_ready<K: GatewayKind>(
    client: &Client,
    namespace: &str,
    name: &str,
) -> K::Gateway {
    wait_condition::<K>(
        client,
        namespace,
        name,
        conditions::types::READY,
        conditions::STATUS_TRUE,
    )
    .await
}

/// Waits until the attached object `namespace/name` of kind `T` (e.g. a ToolRoute) has
/// condition `type_` with `status` (`"True"`, `"False"`, `"Unknown"`) in
/// `status.conditions`, and returns it.
pub async fn wait_attached_condition<T>(
    client: &Client,
    namespace: &str,
    name: &str,
    type_: &str,
    status: &str,
) -> T
where
    T: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned
        + serde::Serialize,
{
    let objects: Api<T> = Api::namespaced(client.clone(), namespace);
    let what = format!("{} {namespace}/{name} {type_}={status}", T::kind(&()));
    eventually(&what, || async {
        let object = objects.get_opt(name).await.ok()??;
        let value = serde_json::to_value(&object).ok()?;
        let conditions = value.pointer("/status/conditions")?.as_array()?;
        conditions
            .iter()
            .any(|c| c["type"] == type_ && c["status"] == status)
            .then_some(object)
    })
    .await
}

/// Changes nothing but an annotation of `namespace/name` (field manager
/// [`TOUCH_MANAGER`]): a watch event that makes every operator reading the object
/// reconcile, without a change its desired state could depend on.
pub async fn touch<K>(client: &Client, namespace: &str, name: &str)
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let stamp = jiff::Timestamp::now().as_nanosecond().to_string();
    let patch = json!({"metadata": {"annotations": {TOUCH_ANNOTATION: stamp}}});
    let params = PatchParams {
        field_manager: Some(TOUCH_MANAGER.to_owned()),
        ..Default::default()
    };
    api.patch(name, &params, &Patch::Merge(&patch))
        .await
        .unwrap_or_else(|e| panic!("touch {} {namespace}/{name}: {e}", K::kind(&())));
}

/// An [`Operator`] running on a task until [`stop`](Self::stop).
pub struct RunningOperator {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), OperatorError>>>,
    metrics: Arc<Metrics>,
}

impl RunningOperator {
    /// Runs `operator` on a new task (its shutdown signal becomes [`stop`](Self::stop)).
    pub fn spawn(operator: Operator) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let operator = operator.shutdown_on(async move {
            let _ = stopped.await;
        });
        let metrics = operator.metrics();
        Self {
            stop: Some(stop),
            task: Some(tokio::spawn(operator.run())),
            metrics,
        }
    }

    /// The operator's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// How many reconciles the operator has run.
    pub fn reconciles(&self) -> u64 {
        self.metrics.reconciles()
    }

    /// Waits until the operator has started no reconcile, has none in flight, and
    /// `server` has seen no write for [`IDLE_WINDOW`]; panics after [`TIMEOUT`]. (A slow
    /// reconcile still running would write after an idleness judged by starts alone.)
    pub async fn wait_idle(&self, server: &ApiServer) {
        let sample = || {
            (
                self.reconciles(),
                self.metrics.reconciles_in_flight(),
                server.stats().writes(),
            )
        };
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        let mut last = sample();
        let mut quiet_since = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(POLL).await;
            let now = sample();
            if now != last || now.1 > 0 {
                last = now;
                quiet_since = tokio::time::Instant::now();
            } else if quiet_since.elapsed() >= IDLE_WINDOW {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the operator was still reconciling or writing after {TIMEOUT:?}"
            );
        }
    }

    /// The steady-state check: once the operator is idle, runs `trigger` (for example
    /// [`touch`] of a gateway or of an object it reads), waits until the operator has
    /// reconciled at least once more and is idle again, and panics if anyone but
    /// `trigger` ([`TOUCH_MANAGER`]) wrote in between, listing the writes. A trigger
    /// that causes no reconcile fails the check too: it would prove nothing.
    pub async fn assert_silent_after(&self, server: &ApiServer, trigger: impl Future<Output = ()>) {
        self.wait_idle(server).await;
        let before = server.stats();
        let reconciles = self.reconciles();
        trigger.await;
        eventually("the trigger to cause a reconcile", || async {
            (self.reconciles() > reconciles).then_some(())
        })
        .await;
        self.wait_idle(server).await;
        let after = server.stats();
        let others = |stats: &aigateway_testkit::Stats| {
            stats.writes() - stats.writes_by_manager(TOUCH_MANAGER)
        };
        let writes = others(&after).saturating_sub(others(&before));
        if writes > 0 {
            let listed: Vec<String> = after
                .counts
                .iter()
                .filter(|c| c.field_manager != TOUCH_MANAGER)
                .filter_map(|c| {
                    let earlier = before
                        .counts
                        .iter()
                        .find(|b| {
                            (&b.verb, &b.group, &b.resource, &b.field_manager)
                                == (&c.verb, &c.group, &c.resource, &c.field_manager)
                        })
                        .map_or(0, |b| b.count);
                    (c.count > earlier).then(|| {
                        format!(
                            "{} {} by {:?}: {}",
                            c.verb,
                            c.resource,
                            c.field_manager,
                            c.count - earlier
                        )
                    })
                })
                .collect();
            panic!(
                "{writes} writes in steady state after the trigger: {}",
                listed.join("; ")
            );
        }
    }

    /// Stops the operator gracefully and waits for it; panics if it failed.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("the operator task did not panic")
                .unwrap_or_else(|e| panic!("the operator failed: {e}"));
        }
    }
}

impl Drop for RunningOperator {
    /// A test that panics before [`stop`](Self::stop) still ends the operator.
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
