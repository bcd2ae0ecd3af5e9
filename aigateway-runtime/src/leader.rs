//! Our own lease deadline: the lease client retries failed renewals for as long as it
//! likes and keeps reporting leadership meanwhile, so the operator times renewals
//! itself and stops writing once the lease may have expired.
//!
//! Every write to the Lease that succeeds extends the deadline to the moment the
//! request was *sent* plus the lease duration: the API server stamped the renewal no
//! earlier than that, so a standby cannot take over before the deadline. Each Lease
//! request is bounded by a timeout, so a hanging request cannot outlive it either.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response};
use kube::Client;
use kube::client::Body;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::admin::CacheHealth;

/// When the last successful Lease write was sent, shared with the leader loop.
pub(crate) struct LeaseClock {
    last_write: Arc<watch::Sender<Option<Instant>>>,
    duration: Duration,
}

impl LeaseClock {
    /// A clock for a lease of `duration`.
    pub(crate) fn new(duration: Duration) -> Self {
        Self {
            last_write: Arc::new(watch::channel(None).0),
            duration,
        }
    }

    /// Wakes when a Lease write succeeds.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Option<Instant>> {
        self.last_write.subscribe()
    }

    /// Until when we may write: the last successful Lease write plus the duration.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        (*self.last_write.borrow()).map(|sent| sent + self.duration)
    }

    /// Whether the lease is certainly still ours at `now` (as far as our writes go).
    pub(crate) fn valid_at(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|deadline| now < deadline)
    }

    /// `client`, with writes to Lease `namespace/name` that leave `identity` holding it
    /// timed, and each request bounded by `timeout`. Whether the API server answers each
    /// request goes to `health` (`/readyz`): the Lease is the one thing every instance,
    /// leader or standby, asks for again and again.
    pub(crate) fn client(
        &self,
        client: &Client,
        lease: (&str, &str),
        identity: &str,
        timeout: Duration,
        health: CacheHealth,
    ) -> Client {
        let (namespace, name) = lease;
        let path = format!("/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}");
        let last_write = self.last_write.clone();
        let identity = identity.to_owned();
        let inner = client.clone();
        let request_name = format!("requests for Lease {namespace}/{name}");
        let service = tower::service_fn(move |request: Request<Body>| {
            let inner = inner.clone();
            let last_write = last_write.clone();
            let identity = identity.clone();
            let health = health.clone();
            let request_name = request_name.clone();
            let lease_write = request.method() != Method::GET && request.uri().path() == path;
            async move {
                let sent = Instant::now();
                let bounded = async {
                    let response = inner.send(request).await?;
                    if !(lease_write && response.status().is_success()) {
                        return Ok::<_, kube::Error>(response);
                    }
                    // A renewal patch succeeds even when another instance took the lease
                    // meanwhile; only the written object says who holds it now.
                    let (parts, body) = response.into_parts();
                    let bytes = body.collect_bytes().await?;
                    if holder(&bytes).as_deref() == Some(identity.as_str()) {
                        last_write.send_replace(Some(sent));
                    }
                    Ok(Response::from_parts(parts, Body::from(bytes)))
                };
                let outcome = tokio::time::timeout(timeout, bounded).await;
                health.record_api_server(&request_name, answered(&outcome, timeout));
                outcome.map_err(|_| kube::Error::Service("Lease request timed out".into()))?
            }
        });
        Client::new(service, client.default_namespace())
    }
}

/// Whether the API server answered a Lease request: any answer but a server error counts
/// (a 409 or a 404 is an answer); no answer in time, a failed connection or a 5xx does not.
fn answered(
    outcome: &Result<Result<Response<Body>, kube::Error>, tokio::time::error::Elapsed>,
    timeout: Duration,
) -> Result<(), String> {
    match outcome {
        Err(_) => Err(format!("no answer within {} s", timeout.as_secs())),
        Ok(Err(error)) => Err(crate::kube_error::describe_kube_error(error)),
        Ok(Ok(response)) if response.status().is_server_error() => {
            Err(format!("HTTP {}", response.status()))
        }
        Ok(Ok(_)) => Ok(()),
    }
}

/// `spec.holderIdentity` of a Lease in JSON.
fn holder(lease: &[u8]) -> Option<String> {
    let lease: serde_json::Value = serde_json::from_slice(lease).ok()?;
    lease
        .pointer("/spec/holderIdentity")?
        .as_str()
        .map(str::to_owned)
}
