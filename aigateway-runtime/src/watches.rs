//! The plumbing every cache of the loop shares: its watch with health in `/readyz`,
//! backoff and the first-list gate ([`SyncGate`]), dynamic and metadata-only reflectors,
//! and the stream of objects that trigger reconciles once the cache holds them.
//!
//! It sits below everything that watches (attached objects, namespaces,
//! ReferenceGrants, related objects) and below the wiring that runs the controllers
//! (`controllers`, `operator`), so a cache can be read without the controllers that use
//! it. The operator's shutdown and resync signals are declared here because the wiring
//! of every layer above passes them on.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{BoxFuture, Shared as SharedFuture};
use futures::{Stream, StreamExt, TryStreamExt};
use kube::api::{Api, ApiResource, DynamicObject, PartialObjectMeta};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::{WatchStreamExt, reflector as reflect};
use kube::{Client, Resource};

use crate::admin::CacheHealth;
use crate::metrics::Metrics;

/// Resolves when the operator stops.
pub(crate) type ShutdownSignal = SharedFuture<BoxFuture<'static, ()>>;
/// Each item re-runs every gateway (`Operator::resync_every`, `Operator::resync_on`).
pub(crate) type ResyncTrigger = Pin<Box<dyn Stream<Item = ()> + Send>>;

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
    pub(crate) fn new() -> Self {
        SyncGate {
            pending: Arc::default(),
            synced: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }

    /// Registers a cache before its stream starts; the gate opens once all have listed.
    pub(crate) fn register(&self, cache: &str) {
        self.pending
            .lock()
            .expect("sync gate")
            .insert(cache.to_owned());
    }

    /// Records the end of a cache's first list (after the reflector applied it).
    pub(crate) fn listed(&self, cache: &str) {
        let mut pending = self.pending.lock().expect("sync gate");
        if pending.remove(cache) && pending.is_empty() {
            self.synced.send_replace(true);
        }
    }

    /// Resolves once every registered cache has listed once.
    pub(crate) async fn wait(&self) {
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

/// `events` of a kind whose CRD may not be installed (a policy kind of an implementation
/// whose CRDs an upgrade has not applied yet), with their failures recorded in `health`
/// under `cache`, the first answer that settles the cache opening `gate`, and backoff.
///
/// A 404 is a known answer ("not installed"), at any time: healthy, it opens the gate,
/// and the list is retried (the delay growing to 20 s) so that the kind is picked up once
/// its CRD appears. Before the first list succeeds it is an empty list to the cache (a
/// controller over it waits for its first list before it reconciles, and before it can
/// stop). After a list succeeded, the cache keeps what it holds: deleting a CRD deletes
/// its objects first, which the watch has reported, while an API server restarting may
/// answer 404 until it registers CRDs again, and gateways should not be rendered
/// without their policies for that moment. A 403 opens the gate too (nothing would
/// change by waiting; `/readyz` reports it). Other failures never open the gate: the
/// operator waits for the list, as for any cache.
pub(crate) fn tracked_optional<T, S>(
    tracking: &CacheTracking<'_>,
    cache: String,
    events: S,
) -> impl Stream<Item = Result<watcher::Event<T>, watcher::Error>> + Send + 'static
where
    T: Send + 'static,
    S: Stream<Item = Result<watcher::Event<T>, watcher::Error>> + Send + 'static,
{
    tracked_optional_notifying(tracking, cache, events, |_| {})
}

/// Whether the API server serves an optional kind, as its watch last found out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Served {
    /// A list succeeded.
    Yes,
    /// A list or watch was answered 404.
    No,
}

/// A change of [`Served`], as [`tracked_optional_notifying`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ServedChange {
    pub(crate) now: Served,
    /// `false` for the first answer after the operator started: nothing was rendered
    /// with another answer yet.
    pub(crate) was_known: bool,
}

/// [`tracked_optional`], calling `on_change` at the first answer (a list that succeeds,
/// or a 404) and at each change of it after: the CRD was installed or removed while the
/// operator ran.
pub(crate) fn tracked_optional_notifying<T, S>(
    tracking: &CacheTracking<'_>,
    cache: String,
    events: S,
    mut on_change: impl FnMut(ServedChange) + Send + 'static,
) -> impl Stream<Item = Result<watcher::Event<T>, watcher::Error>> + Send + 'static
where
    T: Send + 'static,
    S: Stream<Item = Result<watcher::Event<T>, watcher::Error>> + Send + 'static,
{
    tracking.gate.register(&cache);
    let (gate, health) = (tracking.gate.clone(), tracking.health.clone());
    let listed = Arc::new(AtomicBool::new(false));
    let (seen, converted) = (listed.clone(), listed);
    let mut served: Option<Served> = None;
    let mut answer = move |now: Served| {
        if served != Some(now) {
            on_change(ServedChange {
                now,
                was_known: served.is_some(),
            });
            served = Some(now);
        }
    };
    events
        .inspect(move |event| match event {
            Ok(watcher::Event::InitDone) => {
                seen.store(true, Ordering::SeqCst);
                answer(Served::Yes);
                health.record::<String>(&cache, Ok(()));
                gate.listed(&cache);
            }
            Ok(_) => health.record::<String>(&cache, Ok(())),
            Err(error) if status_code(error) == Some(404) => {
                answer(Served::No);
                health.record::<String>(&cache, Ok(()));
                gate.listed(&cache);
            }
            // An expired resourceVersion only means "relist": routine, not a failure.
            Err(watcher::Error::WatchError(status)) if status.code == 410 => {}
            Err(error) => {
                health.record(&cache, Err(&watch_failure(error)));
                if status_code(error) == Some(403) {
                    gate.listed(&cache);
                }
            }
        })
        .paced()
        .flat_map(move |event| {
            let events = match event {
                Err(error) if status_code(&error) == Some(404) => {
                    if converted.load(Ordering::SeqCst) {
                        Vec::new()
                    } else {
                        vec![Ok(watcher::Event::Init), Ok(watcher::Event::InitDone)]
                    }
                }
                other => vec![other],
            };
            futures::stream::iter(events)
        })
}

/// `events` with their failures recorded in `health` under `cache`, and backoff.
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
        .paced()
}

/// The watch backoff: kube's (0.8 s doubling, with jitter, starting over at every item)
/// for failures that pass, its own for a list or watch the API server refuses in a way
/// retrying soon does not change (404: the kind is not installed, as Gateway API's
/// ReferenceGrant on most clusters; 403: not allowed). kube's `StreamBackoff` starts over
/// at the `Init` the watcher yields before each list, so such a list was sent again
/// every second, about 50 times a minute for nothing. While refused, the delay stays at
/// about 1 s for three lists (a kind the API server is still registering after its
/// restart), then doubles to [`MAX_REFUSAL_DELAY`], and starts over only after progress
/// (a list done, an event). No delay exceeds [`MAX_DELAY`], so `/readyz` keeps
/// reporting a lasting failure (kube's cap of 30 s with up to 100 % jitter did not).
pub(crate) struct RefusalBackoff {
    passing: watcher::DefaultBackoff,
    refusals: u32,
    seen: Arc<Seen>,
}

/// What the stream yielded last, as the backoff needs it (set by `Paced::paced`'s
/// `inspect`, read by the backoff on the same poll).
#[derive(Default)]
struct Seen {
    /// The last failure was a lasting refusal ([`is_lasting_refusal`]).
    refused: AtomicBool,
    /// An item other than `Init` arrived since the refusals were last counted from zero.
    progress: AtomicBool,
}

/// The longest delay between lists the API server refuses, before jitter (±25 %).
pub(crate) const MAX_REFUSAL_DELAY: Duration = Duration::from_secs(20);

/// The longest any watch waits before it tries again, jitter included: below
/// [`CacheHealth::FAILURE_MEMORY`], so a failure that lasts is repeated before `/readyz`
/// forgets it, and an installed kind or a repaired RBAC rule is seen within 25 s.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(25);

/// Refusals retried after about a second before the delay grows.
const FAST_REFUSALS: u32 = 3;

impl Iterator for RefusalBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if !self.seen.refused.load(Ordering::SeqCst) {
            return self.passing.next().map(|delay| delay.min(MAX_DELAY));
        }
        self.refusals = self.refusals.saturating_add(1);
        let growing = self.refusals.saturating_sub(FAST_REFUSALS).min(8);
        let delay = Duration::from_secs(1).saturating_mul(1 << growing);
        let jitter = rand::Rng::random_range(&mut rand::rng(), 0.75..1.25);
        Some(delay.min(MAX_REFUSAL_DELAY).mul_f64(jitter).min(MAX_DELAY))
    }
}

impl kube::runtime::utils::Backoff for RefusalBackoff {
    fn reset(&mut self) {
        if !self.seen.refused.load(Ordering::SeqCst) {
            self.passing.reset();
        }
        // A failure of another kind among refusals (a throttled request) is no progress.
        if self.seen.progress.swap(false, Ordering::SeqCst) {
            self.refusals = 0;
        }
    }
}

/// The HTTP status the API server answered a failed list or watch with, if it answered.
pub(crate) fn status_code(error: &watcher::Error) -> Option<u16> {
    match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => Some(status.code),
        watcher::Error::WatchError(status) => Some(status.code),
        _ => None,
    }
}

/// Whether `error` is the API server refusing a list or watch in a way retrying soon
/// does not change: the resource is not served (404) or not allowed (403).
pub(crate) fn is_lasting_refusal(error: &watcher::Error) -> bool {
    matches!(status_code(error), Some(403 | 404))
}

/// Backoff for the watches of the loop: [`RefusalBackoff`].
pub(crate) trait Paced<T>: Stream<Item = Result<watcher::Event<T>, watcher::Error>> {
    /// This stream, retried with [`RefusalBackoff`] after failures.
    fn paced(self) -> impl Stream<Item = Result<watcher::Event<T>, watcher::Error>> + Send
    where
        Self: Sized + Send,
        T: Send,
    {
        let seen = Arc::new(Seen::default());
        let backoff = RefusalBackoff {
            passing: watcher::DefaultBackoff::default(),
            refusals: 0,
            seen: seen.clone(),
        };
        self.inspect(move |event| match event {
            // The watcher says it starts a list; only what comes after it tells.
            Ok(watcher::Event::Init) => {}
            Ok(_) => {
                seen.refused.store(false, Ordering::SeqCst);
                seen.progress.store(true, Ordering::SeqCst);
            }
            Err(error) => seen
                .refused
                .store(is_lasting_refusal(error), Ordering::SeqCst),
        })
        .backoff(backoff)
    }
}

impl<T, S: Stream<Item = Result<watcher::Event<T>, watcher::Error>>> Paced<T> for S {}

/// One line for a failed watch: the API server's code, reason and message when it
/// answered, else the client's error.
pub(crate) fn watch_failure(error: &watcher::Error) -> String {
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
    /// The gateway kind whose controllers own the cache, or
    /// [`SHARED_CACHES`](crate::controllers::SHARED_CACHES) for the
    /// related caches every kind reads (a prefix of its name).
    pub(crate) kind: &'a str,
    pub(crate) health: &'a CacheHealth,
    pub(crate) gate: &'a SyncGate,
    pub(crate) metrics: &'a Arc<Metrics>,
}

impl CacheTracking<'_> {
    /// The name of `cache` in the gate and in `/readyz`: prefixed with the gateway kind.
    pub(crate) fn key(&self, cache: &str) -> String {
        format!("{} {cache}", self.kind)
    }
}

/// Objects per page of a dynamic cache's list: a (re)list holds one page of full objects
/// in memory at a time besides the cache, so pages stay small.
pub(crate) const LIST_PAGE_SIZE: u32 = 100;

/// What a dynamic cache keeps of each object (its metadata always, without
/// managedFields and annotations outside our domains).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Contents {
    /// The whole object: related objects `desired_state` reads.
    Whole,
    /// Metadata only, from a metadata watch (see [`metadata_events`]).
    Metadata,
    /// What readiness and the loop read of a child (see
    /// [`keep_child_fields`](crate::children::keep_child_fields)).
    ChildFields,
}

/// A child kind whose CRD may be missing: `installed` follows what its watch finds
/// out, and `changed` is told when that changes while the operator runs (the CRD was
/// installed or removed), so that every gateway is rendered again.
pub(crate) struct OptionalKind {
    pub(crate) installed: Arc<AtomicBool>,
    pub(crate) changed: futures::channel::mpsc::UnboundedSender<()>,
}

/// A label- (and field-) selected watch of one dynamic kind into `writer`'s cache
/// (what of each object is kept: `contents`); `on_event` sees every
/// event once the cache has applied it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn dynamic_reflector(
    tracking: &CacheTracking<'_>,
    cache: String,
    client: &Client,
    namespace: Option<&str>,
    resource: &ApiResource,
    writer: reflector::store::Writer<DynamicObject>,
    label_selector: Option<&str>,
    field_selector: Option<&str>,
    contents: Contents,
    on_event: impl FnMut(&watcher::Event<DynamicObject>) + Send + 'static,
) -> impl Stream<Item = Result<DynamicObject, watcher::Error>> + Send + 'static {
    let events = dynamic_events(
        client,
        namespace,
        resource,
        label_selector,
        field_selector,
        contents,
    );
    let key = tracking.key(&cache);
    let store = writer.as_reader();
    let stored = reflect(writer, tracked(tracking.health, key, events));
    touched_once_stored(counted(tracking, cache, stored, on_event), store)
}

/// The watch of one child kind (children carrying `selector`, our controller label)
/// into `store`, which keeps what the loop reads (see
/// [`CachedChild`](crate::children::CachedChild)). The objects it yields, for owner
/// triggers, are projected the same way.
pub(crate) fn child_reflector(
    tracking: &CacheTracking<'_>,
    client: &Client,
    namespace: Option<&str>,
    resource: &ApiResource,
    selector: &str,
    store: crate::children::ChildStore,
    optional: Option<OptionalKind>,
) -> impl Stream<Item = Result<DynamicObject, watcher::Error>> + Send + 'static {
    let cache = format!("child {}", resource.kind);
    let events = dynamic_events(
        client,
        namespace,
        resource,
        Some(selector),
        None,
        Contents::ChildFields,
    );
    let key = tracking.key(&cache);
    let writer = store.clone();
    let events = match optional {
        None => tracked(tracking.health, key, events).boxed(),
        Some(kind) => tracked_optional_notifying(tracking, key, events, move |change| {
            (kind.installed).store(change.now == Served::Yes, Ordering::SeqCst);
            if change.was_known {
                let _ = kind.changed.unbounded_send(());
            }
        })
        .boxed(),
    };
    let stored = events.inspect(move |event| {
        if let Ok(event) = event {
            writer.observe(event);
        }
    });
    let types = kube::api::TypeMeta {
        api_version: resource.api_version.clone(),
        kind: resource.kind.clone(),
    };
    touched_once(counted(tracking, cache, stored, |_| ()), move || {
        let types = types.clone();
        (store.all().into_iter()).map(move |child| child.to_object(&types))
    })
}

/// The watch events of one dynamic kind, each object reduced to what `contents` keeps.
fn dynamic_events(
    client: &Client,
    namespace: Option<&str>,
    resource: &ApiResource,
    label_selector: Option<&str>,
    field_selector: Option<&str>,
    contents: Contents,
) -> impl Stream<Item = Result<watcher::Event<DynamicObject>, watcher::Error>> + Send + 'static {
    let mut config = watcher::Config::default().page_size(LIST_PAGE_SIZE);
    if let Some(selector) = label_selector {
        config = config.labels(selector);
    }
    if let Some(selector) = field_selector {
        config = config.fields(selector);
    }
    let events = if contents == Contents::Metadata {
        let api: Api<PartialObjectMeta<DynamicObject>> = match namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
            None => Api::all_with(client.clone(), resource),
        };
        metadata_events(api, config, resource)
    } else {
        watcher(dynamic_api(client, namespace, resource), config).boxed()
    };
    // A real API server sends the items of a list without apiVersion and kind (only
    // watch events carry them), and readiness finds children by their type: without
    // this, a Deployment that existed when the operator started (or relisted) was
    // "no Deployment exists yet" for good.
    let types = kube::api::TypeMeta {
        api_version: resource.api_version.clone(),
        kind: resource.kind.clone(),
    };
    // managedFields are a large share of every object and the loop never reads them.
    // Annotations nothing reads go too: whoever may write a child, related or attached
    // object could otherwise make each one cost up to 256 KiB here.
    events.modify(move |object: &mut DynamicObject| {
        object.metadata.managed_fields = None;
        crate::names::keep_cached_annotations(&mut object.metadata);
        if object.types.is_none() {
            object.types = Some(types.clone());
        }
        if contents == Contents::ChildFields {
            crate::children::keep_child_fields(object);
        }
    })
}

/// Events of a cache that has applied them, counted (the watch-event metric), shown to
/// `on_event`, and reported to the first-list gate.
fn counted<S>(
    tracking: &CacheTracking<'_>,
    cache: String,
    stored: S,
    mut on_event: impl FnMut(&watcher::Event<DynamicObject>) + Send + 'static,
) -> impl Stream<Item = Result<watcher::Event<DynamicObject>, watcher::Error>> + Send + 'static
where
    S: Stream<Item = Result<watcher::Event<DynamicObject>, watcher::Error>> + Send + 'static,
{
    let listed = mark_listed(tracking.gate, tracking.key(&cache));
    let metrics = tracking.metrics.clone();
    let kind = tracking.kind.to_owned();
    stored
        .inspect(move |event| {
            if let Ok(event) = event {
                if matches!(
                    event,
                    watcher::Event::Apply(_)
                        | watcher::Event::Delete(_)
                        | watcher::Event::InitApply(_)
                ) {
                    metrics.watch_event(&kind, &cache);
                }
                on_event(event);
            }
        })
        .inspect(listed)
}

/// Like kube's `touched_objects`, but the objects of a (re)list come out once the list
/// is complete, read from `store`, which then holds them. The reflector's store takes a
/// relist's objects at its end: yielded at once, they triggered reconciles that read the
/// store from before the relist, so a gateway whose Deployment became available while
/// the watch was down (an API server restart on a compacted etcd) stayed not Ready, with
/// nothing left to trigger it (the fault tier found six such gateways of 200), and a
/// gateway created during the outage was not found and never reconciled. Reading the
/// store at the end costs no copy of the list: objects are cloned one at a time, as
/// the consumer takes them.
pub(crate) fn touched_once_stored<K>(
    events: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    store: Store<K>,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    touched_once(events, move || {
        (store.state().into_iter()).map(|object| K::clone(&object))
    })
}

/// [`touched_once_stored`] over any cache: `snapshot` yields what the cache holds.
pub(crate) fn touched_once<K, I>(
    events: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    mut snapshot: impl FnMut() -> I + Send + 'static,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Send + 'static,
    I: Iterator<Item = K> + Send + 'static,
{
    use futures::future::Either;
    events.flat_map(move |event| match event {
        Ok(watcher::Event::Apply(object) | watcher::Event::Delete(object)) => {
            Either::Left(futures::stream::iter(Some(Ok(object))))
        }
        Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {
            Either::Left(futures::stream::iter(None))
        }
        Ok(watcher::Event::InitDone) => Either::Right(futures::stream::iter(snapshot().map(Ok))),
        Err(error) => Either::Left(futures::stream::iter(Some(Err(error)))),
    })
}

/// Objects per page of a metadata list, when the API server cannot stream lists: a page
/// is held in memory (as received, then parsed) while it is applied, and the metadata
/// of an object can carry 256 KiB of annotations, so pages stay small.
const METADATA_PAGE_SIZE: u32 = 10;

/// The metadata watch of a content-on-read kind, reduced to what the runtime reads of
/// it: name, namespace, uid and resourceVersion (existence, and when loaded content is
/// outdated). Labels, annotations (up to 256 KiB an object, and some tools keep secret
/// material there), owner references and managedFields of every Secret and ConfigMap
/// in the cluster are never held.
///
/// The API server sends metadata only (`PartialObjectMetadata`), never data. The first
/// list and every relist is a streaming list (`sendInitialEvents`: one object at a
/// time, so a relist does not hold a page of large objects); an API server without it
/// (the `WatchList` feature off, as by default in Kubernetes 1.33) refuses the request,
/// and the watch falls back to lists in pages of [`METADATA_PAGE_SIZE`].
fn metadata_events(
    api: Api<PartialObjectMeta<DynamicObject>>,
    config: watcher::Config,
    resource: &ApiResource,
) -> futures::stream::BoxStream<'static, Result<watcher::Event<DynamicObject>, watcher::Error>> {
    let types = kube::api::TypeMeta {
        api_version: resource.api_version.clone(),
        kind: resource.kind.clone(),
    };
    let slim = move |meta: PartialObjectMeta<DynamicObject>| DynamicObject {
        types: Some(types.clone()),
        metadata: kube::api::ObjectMeta {
            name: meta.metadata.name,
            namespace: meta.metadata.namespace,
            uid: meta.metadata.uid,
            resource_version: meta.metadata.resource_version,
            ..Default::default()
        },
        data: serde_json::Value::Null,
    };
    streaming_or_paged(api, config, METADATA_PAGE_SIZE)
        .map_ok(move |event| match event {
            watcher::Event::Apply(o) => watcher::Event::Apply(slim(o)),
            watcher::Event::Delete(o) => watcher::Event::Delete(slim(o)),
            watcher::Event::InitApply(o) => watcher::Event::InitApply(slim(o)),
            watcher::Event::Init => watcher::Event::Init,
            watcher::Event::InitDone => watcher::Event::InitDone,
        })
        .boxed()
}

type MetadataEvents = futures::stream::BoxStream<
    'static,
    Result<watcher::Event<PartialObjectMeta<DynamicObject>>, watcher::Error>,
>;

/// How a metadata watch lists.
enum Listing {
    /// A streaming list that has not answered yet.
    Trying(MetadataEvents),
    /// Streaming lists work, or paged lists since they did not.
    Settled(MetadataEvents),
}

/// A metadata watch that lists by streaming, or in pages of `page_size` from the moment
/// the API server refuses a streaming list (422 or 400 before anything was received).
fn streaming_or_paged(
    api: Api<PartialObjectMeta<DynamicObject>>,
    config: watcher::Config,
    page_size: u32,
) -> MetadataEvents {
    let streaming = watcher(api.clone(), config.clone().streaming_lists());
    futures::stream::unfold(Listing::Trying(streaming.boxed()), move |listing| {
        let api = api.clone();
        let config = config.clone();
        async move {
            match listing {
                Listing::Trying(mut events) => match events.next().await? {
                    Err(watcher::Error::WatchStartFailed(kube::Error::Api(status)))
                        if status.code == 422 || status.code == 400 =>
                    {
                        tracing::info!(
                            reason = %status.message,
                            "the API server does not stream lists; listing metadata in pages of {page_size}"
                        );
                        let mut paged = watcher(api, config.page_size(page_size)).boxed();
                        let first = paged.next().await?;
                        Some((first, Listing::Settled(paged)))
                    }
                    Ok(event) => Some((Ok(event), Listing::Settled(events))),
                    Err(error) => Some((Err(error), Listing::Trying(events))),
                },
                Listing::Settled(mut events) => {
                    let next = events.next().await?;
                    Some((next, Listing::Settled(events)))
                }
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector::ObjectRef;

    fn object(name: &str, version: &str) -> DynamicObject {
        DynamicObject {
            types: None,
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                resource_version: Some(version.into()),
                ..Default::default()
            },
            data: serde_json::json!({"spec": {"version": version}}),
        }
    }

    fn failed(code: u16) -> kube::Error {
        let status = kube::core::Status::failure("refused", "Failure").with_code(code);
        kube::Error::Api(status.boxed())
    }

    /// Seconds from each item of `items` to the next, on Tokio's paused clock, as the
    /// paced stream yields them (each failure waits out its backoff first).
    async fn seconds_between(
        items: Vec<Result<watcher::Event<DynamicObject>, watcher::Error>>,
    ) -> Vec<f64> {
        let mut stream = std::pin::pin!(futures::stream::iter(items).paced());
        let mut at = Vec::new();
        while stream.next().await.is_some() {
            at.push(tokio::time::Instant::now());
        }
        at.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect()
    }

    /// `lists` lists that each fail with `code`, as the watcher yields them (`Init`
    /// before each list).
    fn failed_lists(
        code: u16,
        lists: usize,
    ) -> Vec<Result<watcher::Event<DynamicObject>, watcher::Error>> {
        (0..lists)
            .flat_map(|_| {
                [
                    Ok(watcher::Event::Init),
                    Err(watcher::Error::InitialListFailed(failed(code))),
                ]
            })
            .collect()
    }

    /// The seconds from each list to the next (from one `Init` to the next).
    fn list_gaps(gaps: &[f64]) -> Vec<f64> {
        gaps.chunks_exact(2).map(|pair| pair.iter().sum()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_list_refused_for_a_missing_kind_is_sent_ever_less_often() {
        // Gateway API's ReferenceGrant not installed (404), or not allowed (403): kube's
        // backoff alone sent a list every 0.8 to 1.6 s, over 75 in two minutes.
        for code in [404, 403] {
            let lists = list_gaps(&seconds_between(failed_lists(code, 40)).await);
            let mut elapsed = 0.0;
            let in_two_minutes = lists.iter().take_while(|gap| {
                elapsed += **gap;
                elapsed <= 120.0
            });
            assert!(in_two_minutes.count() <= 15, "{code}: {lists:?}");
            // The first few at once (a kind still being registered), then less often,
            // but often enough for /readyz to keep reporting the failure.
            assert!(lists[..3].iter().all(|gap| *gap < 1.5), "{code}: {lists:?}");
            assert!(
                lists[10..].iter().all(|gap| (15.0..=25.0).contains(gap)),
                "{code}: {lists:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_watch_is_retried_before_readyz_forgets_its_failure() {
        assert!(MAX_DELAY < CacheHealth::FAILURE_MEMORY);
        // A resumed watch that fails to start yields no `Init`: a 403 after RBAC was
        // revoked, or an API server answering 500 for minutes (kube's own backoff grew
        // to 30 s plus up to 100 % jitter, past the 45 s /readyz remembers a failure).
        for code in [403, 500] {
            let failures = (0..30)
                .map(|_| Err(watcher::Error::WatchStartFailed(failed(code))))
                .collect();
            let gaps = seconds_between(failures).await;
            assert!(
                gaps.iter().all(|gap| *gap <= MAX_DELAY.as_secs_f64()),
                "{code}: {gaps:?}"
            );
            assert!(
                gaps[20..].iter().all(|gap| *gap >= 10.0),
                "{code}: {gaps:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_list_failing_otherwise_is_retried_within_a_second_or_two() {
        // An API server restarting answers 500s or nothing: it is back in seconds, and
        // every list starts over at kube's first step.
        let lists = list_gaps(&seconds_between(failed_lists(500, 10)).await);
        assert!(lists.iter().all(|gap| *gap < 2.0), "{lists:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn progress_after_refusals_starts_the_backoff_over() {
        let mut items = failed_lists(404, 10);
        // The CRD is installed: the next list succeeds. Then it is removed again.
        items.extend([Ok(watcher::Event::Init), Ok(watcher::Event::InitDone)]);
        items.extend(failed_lists(404, 2));
        let gaps = seconds_between(items).await;
        let refused_again = &gaps[gaps.len() - 3..];
        assert!(
            refused_again.iter().all(|gap| *gap < 1.5),
            "after an InitDone a refusal is retried at once again: {gaps:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttled_request_among_refusals_does_not_start_them_over() {
        let mut items = failed_lists(404, 10);
        items.extend([
            Ok(watcher::Event::Init),
            Err(watcher::Error::InitialListFailed(failed(429))),
        ]);
        items.extend(failed_lists(404, 2));
        let gaps = seconds_between(items).await;
        // From the last refusal to the last list (the final item is that list's failure).
        let last = gaps[gaps.len() - 2];
        assert!(last >= 15.0, "still refused, still slow: {gaps:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_optional_kind_removed_after_its_first_list_counts_as_missing_and_keeps_its_cache() {
        let (health, gate, metrics) = (
            CacheHealth::default(),
            SyncGate::new(),
            Arc::new(crate::metrics::Metrics::default()),
        );
        let tracking = CacheTracking {
            kind: "AiGateway",
            health: &health,
            gate: &gate,
            metrics: &metrics,
        };
        let not_found = || Err(watcher::Error::InitialListFailed(failed(404)));
        let events = vec![
            Ok(watcher::Event::Init),
            not_found(),
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(object("a", "1"))),
            Ok(watcher::Event::InitDone),
            // The CRD is removed: its objects went first, then lists are refused.
            Ok(watcher::Event::Delete(object("a", "1"))),
            Ok(watcher::Event::Init),
            not_found(),
            Ok(watcher::Event::Init),
            not_found(),
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitDone),
        ];
        let changes = Arc::new(Mutex::new(Vec::new()));
        let seen = changes.clone();
        let yielded: Vec<_> = tracked_optional_notifying(
            &tracking,
            "child Widget".into(),
            futures::stream::iter(events),
            move |change| seen.lock().unwrap().push(change),
        )
        .map(|event| match event {
            Ok(watcher::Event::Init) => "init",
            Ok(watcher::Event::InitApply(_)) => "init-apply",
            Ok(watcher::Event::InitDone) => "init-done",
            Ok(watcher::Event::Apply(_)) => "apply",
            Ok(watcher::Event::Delete(_)) => "delete",
            Err(_) => "error",
        })
        .collect()
        .await;
        // Before the first list, a 404 is an empty list; after it, the cache is left as
        // it is (a relist that fails leaves the reflector's store unchanged).
        assert_eq!(
            yielded,
            [
                "init",
                "init",
                "init-done",
                "init",
                "init-apply",
                "init-done",
                "delete",
                "init",
                "init",
                "init",
                "init-done"
            ]
        );
        let no = |was_known| ServedChange {
            now: Served::No,
            was_known,
        };
        let yes = ServedChange {
            now: Served::Yes,
            was_known: true,
        };
        assert_eq!(*changes.lock().unwrap(), [no(false), yes, no(true), yes]);
        assert!(health.problems().is_empty(), "{:?}", health.problems());
    }

    /// What a reconcile triggered by each yielded object would read from the cache.
    async fn seen_by_triggers(
        events: Vec<watcher::Event<DynamicObject>>,
    ) -> Vec<(String, Option<String>)> {
        let resource = ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&());
        let writer = reflector::store::Writer::new(resource.clone());
        let store = writer.as_reader();
        let stream = reflect(writer, futures::stream::iter(events.into_iter().map(Ok)));
        let reader = store.clone();
        touched_once_stored(stream, store)
            .map(|object| {
                let object = object.expect("no watch error");
                let name = object.metadata.name.clone().expect("named");
                let cached = reader
                    .get(&ObjectRef::new_with(&name, resource.clone()).within("ns"))
                    .and_then(|cached| cached.metadata.resource_version.clone());
                (name, cached)
            })
            .collect()
            .await
    }

    #[tokio::test]
    async fn a_relists_objects_trigger_once_the_cache_holds_the_relisted_versions() {
        let seen = seen_by_triggers(vec![
            watcher::Event::Init,
            watcher::Event::InitApply(object("stale", "1")),
            watcher::Event::InitDone,
            // The watch expired; the relist brings a newer version and an object created
            // while the watch was down.
            watcher::Event::Init,
            watcher::Event::InitApply(object("stale", "7")),
            watcher::Event::InitApply(object("created-meanwhile", "8")),
            watcher::Event::InitDone,
            watcher::Event::Apply(object("stale", "9")),
        ])
        .await;
        let mut relisted = seen[1..3].to_vec();
        relisted.sort();
        assert_eq!(seen[0], ("stale".into(), Some("1".into())));
        assert_eq!(
            relisted,
            [
                ("created-meanwhile".into(), Some("8".into())),
                ("stale".into(), Some("7".into())),
            ]
        );
        assert_eq!(seen[3], ("stale".into(), Some("9".into())));
        assert_eq!(seen.len(), 4);
    }
}
