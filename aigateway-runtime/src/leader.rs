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

use http::{Method, Request};
use kube::Client;
use kube::client::Body;
use tokio::sync::watch;
use tokio::time::Instant;

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

    /// `client`, with writes to Lease `namespace/name` timed and each request bounded by
    /// `timeout`.
    pub(crate) fn client(
        &self,
        client: &Client,
        namespace: &str,
        name: &str,
        timeout: Duration,
    ) -> Client {
        let path = format!("/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}");
        let last_write = self.last_write.clone();
        let inner = client.clone();
        let service = tower::service_fn(move |request: Request<Body>| {
            let inner = inner.clone();
            let last_write = last_write.clone();
            let lease_write = request.method() != Method::GET && request.uri().path() == path;
            async move {
                let sent = Instant::now();
                let response = tokio::time::timeout(timeout, inner.send(request))
                    .await
                    .map_err(|_| kube::Error::Service("Lease request timed out".into()))??;
                if lease_write && response.status().is_success() {
                    last_write.send_replace(Some(sent));
                }
                Ok::<_, kube::Error>(response)
            }
        });
        Client::new(service, client.default_namespace())
    }
}
