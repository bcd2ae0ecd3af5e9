//! The ReferenceGrant watch: fills the grants cache and re-runs the gateways whose
//! answers it changes.
//!
//! Apart from the grants themselves (`reference_grants`, which the related objects'
//! [`Context`](crate::Context) reads) because it needs the related objects' read index
//! to find the gateways to re-run: a child module, reached by its own path and not
//! re-exported, so that its parent stays below `related`.

use std::sync::Arc;

use futures::{Stream, StreamExt};
use kube::api::DynamicObject;
use kube::runtime::reflector;
use kube::runtime::watcher::{self, watcher};
use kube::runtime::{WatchStreamExt, reflector as reflect};
use kube::{Client, ResourceExt};

use crate::reference_grants::{ReferenceGrants, resource};
use crate::related::{GatewayKey, RelatedCaches};
use crate::watches::{CacheTracking, Paced, dynamic_api, status_code, watch_failure};

fn not_installed(error: &watcher::Error) -> bool {
    status_code(error) == Some(404)
}

/// Watches ReferenceGrants into `writer` (in `namespace`, or everywhere) and yields the
/// gateways to re-run: those that asked about the namespace of a changed grant, and
/// every gateway that asked about any, when the CRD appears or goes.
///
/// The first answer of the API server, a list or an error, opens the operator's first-
/// list gate for this cache: a 404 (the CRD is not installed) is a known answer, so
/// the operator neither waits for the CRD nor flaps route status at start. Errors other
/// than a 404 show in `/readyz` like any watch's; a 404 does not, since running
/// without Gateway API is a supported setup.
pub(crate) fn watch(
    grants: Arc<ReferenceGrants>,
    writer: reflector::store::Writer<DynamicObject>,
    tracking: &CacheTracking<'_>,
    client: &Client,
    namespace: Option<&str>,
    related: Arc<RelatedCaches>,
) -> impl Stream<Item = GatewayKey> + Send + 'static {
    let resource = resource();
    let cache = tracking.key("ReferenceGrants");
    tracking.gate.register(&cache);
    let gate = tracking.gate.clone();
    let health = tracking.health.clone();
    // Set when an answer changed what checks return; read once the event has reached
    // the cache, so that the gateways re-run see the new state.
    let state_changed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answered = {
        let grants = grants.clone();
        let cache = cache.clone();
        let state_changed = state_changed.clone();
        move |event: &Result<watcher::Event<DynamicObject>, watcher::Error>| {
            let changed = match event {
                Ok(watcher::Event::InitDone) => {
                    health.record::<String>(&cache, Ok(()));
                    gate.listed(&cache);
                    grants.set_installed(true)
                }
                Ok(_) => {
                    health.record::<String>(&cache, Ok(()));
                    false
                }
                Err(error) if not_installed(error) => {
                    health.record::<String>(&cache, Ok(()));
                    gate.listed(&cache);
                    grants.set_installed(false)
                }
                Err(error) => {
                    // An expired resourceVersion only means "relist".
                    if !matches!(error, watcher::Error::WatchError(status) if status.code == 410) {
                        health.record(&cache, Err(&watch_failure(error)));
                    }
                    gate.listed(&cache);
                    false
                }
            };
            if changed {
                state_changed.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
    };
    let events = watcher(
        dynamic_api(client, namespace, &resource),
        watcher::Config::default(),
    )
    .modify(|grant: &mut DynamicObject| {
        grant.metadata.managed_fields = None;
        crate::names::keep_cached_annotations(&mut grant.metadata);
    })
    .inspect(answered)
    // While the CRD is missing every list fails with 404: the delay grows to 20 s.
    .paced();
    let kind = resource.clone();
    reflect(writer, events)
        .map(move |event| {
            let readers = if state_changed.swap(false, std::sync::atomic::Ordering::SeqCst) {
                related.kind_readers(&kind)
            } else {
                match &event {
                    Ok(watcher::Event::Apply(grant) | watcher::Event::Delete(grant)) => {
                        related.namespace_readers(&kind, &grant.namespace().unwrap_or_default())
                    }
                    // Grants may have changed while the watch was down.
                    Ok(watcher::Event::InitDone) => related.kind_readers(&kind),
                    _ => Vec::new(),
                }
            };
            futures::stream::iter(readers)
        })
        .flatten()
}
