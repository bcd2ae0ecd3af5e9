//! The admin HTTP servers: the probes `/healthz` and `/readyz` (caches synced and every
//! watch able to list), plain HTTP, and `/metrics`, over HTTPS behind the API server's
//! authentication and authorisation (see [`crate::secure_metrics`]) or plain HTTP.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::metrics::Metrics;

/// What the admin endpoints report.
#[derive(Clone)]
pub struct AdminState {
    /// Set once every cache has synced (and, with leader election, for standbys once the
    /// lease is being watched).
    pub ready: Arc<AtomicBool>,
    /// The loop's metrics.
    pub metrics: Arc<Metrics>,
    /// Refreshes gauges computed from caches right before a scrape.
    pub refresh: Arc<dyn Fn() + Send + Sync>,
    /// Watches that currently fail (a cache that cannot list blocks reconciles).
    pub caches: CacheHealth,
}

/// Which of the operator's watches fail right now, and why: a watch whose list or watch
/// request errors (403 after an RBAC change, a CRD removed) keeps its cache stale or
/// unsynced, so `/readyz` reports it until a request succeeds again. With leader
/// election, the Lease requests say too whether the API server answers at all: a watch
/// behind a dead link fails silently, a Lease request times out.
///
/// A resumed watch yields nothing until an object changes, so a failure also stops
/// counting once it is older than [`CacheHealth::FAILURE_MEMORY`]: a watch that still
/// fails retries (and fails again) well within it.
#[derive(Clone, Default, Debug)]
pub struct CacheHealth(Arc<Mutex<BTreeMap<Source, (String, std::time::Instant)>>>);

/// What failed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    /// A cache's list or watch, by cache name.
    Cache(String),
    /// A request the API server did not answer (or answered with a server error).
    ApiServer,
}

impl CacheHealth {
    /// How long a failure counts without being repeated (every watch retries within 25 s:
    /// `watches::MAX_DELAY`).
    pub const FAILURE_MEMORY: std::time::Duration = std::time::Duration::from_secs(45);

    fn set(&self, source: Source, problem: Option<String>) {
        let mut failing = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match problem {
            None => {
                failing.remove(&source);
            }
            Some(line) => {
                failing.insert(source, (line, std::time::Instant::now()));
            }
        }
    }

    /// Records the outcome of one watch event of the cache named `cache`.
    pub fn record<E: std::fmt::Display>(&self, cache: &str, outcome: Result<(), &E>) {
        self.set(
            Source::Cache(cache.to_owned()),
            outcome
                .err()
                .map(|error| format!("{cache} cache cannot list or watch: {error}")),
        );
    }

    /// Records whether the API server answered `request` (`Err`: what went wrong, e.g.
    /// no answer in time or a server error).
    pub(crate) fn record_api_server(&self, request: &str, outcome: Result<(), String>) {
        self.set(
            Source::ApiServer,
            outcome
                .err()
                .map(|error| format!("the API server did not answer {request}: {error}")),
        );
    }

    /// Forgets the failures of every cache: their watches stopped (leadership lost), so
    /// they no longer say anything about this instance.
    pub(crate) fn forget_caches(&self) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|source, _| !matches!(source, Source::Cache(_)));
    }

    /// One line per problem: `<cache> cache cannot list or watch: <error>`, or `the API
    /// server did not answer <request>: <error>`.
    pub fn problems(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .filter(|(_, at)| at.elapsed() < Self::FAILURE_MEMORY)
            .map(|(line, _)| line.clone())
            .collect()
    }
}

/// Every admin endpoint on one router, unprotected: for tests and local runs.
pub fn router(state: AdminState) -> Router {
    probes_router(state.clone()).merge(metrics_router(state))
}

/// `/healthz` and `/readyz`.
pub fn probes_router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// `/metrics`.
pub fn metrics_router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(state): State<AdminState>) -> (StatusCode, String) {
    let problems = state.caches.problems();
    if !problems.is_empty() {
        (StatusCode::SERVICE_UNAVAILABLE, problems.join("\n"))
    } else if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready".to_owned())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "caches not synced".to_owned(),
        )
    }
}

async fn metrics(
    State(state): State<AdminState>,
) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    (state.refresh)();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

/// Serves `router` over plain HTTP on `addr` until `shutdown` resolves; returns the
/// bound address.
pub(crate) async fn serve_router(
    addr: SocketAddr,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((bound, spawn(listener, router, shutdown)))
}

/// Serves `/metrics` over HTTPS with `tls` on `addr` until `shutdown` resolves, only to
/// requests the API server (through `client`) authenticates and authorises; returns the
/// bound address.
pub(crate) async fn serve_secure_metrics(
    addr: SocketAddr,
    state: AdminState,
    tls: Arc<rustls::ServerConfig>,
    client: kube::Client,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    use crate::secure_metrics::{MetricsAuth, TlsListener, require_authorization};
    let listener = TlsListener::new(tokio::net::TcpListener::bind(addr).await?, tls)?;
    let bound = axum::serve::Listener::local_addr(&listener)?;
    let router = metrics_router(state).layer(axum::middleware::from_fn_with_state(
        MetricsAuth::new(client),
        require_authorization,
    ));
    Ok((bound, spawn(listener, router, shutdown)))
}

/// Serves `router` on `listener` in a task of its own until `shutdown` resolves.
fn spawn<L>(
    listener: L,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(%error, "admin server failed");
        }
    })
}
