//! Prometheus metrics of the loop.

use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label set of a reconcile error.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ErrorLabels {
    /// The error's reason, e.g. `Transient`, `Apply`, `Conflict`.
    pub(crate) reason: String,
}

/// Label set of the watch-event counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CacheLabels {
    /// The gateway kind whose controllers own the cache, e.g. `AiGateway`.
    pub kind: String,
    /// The cache, e.g. `related Secret` or `child Deployment`.
    pub cache: String,
}

/// Label set of the gateways-by-condition gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ConditionLabels {
    /// The gateway kind, e.g. `ToolGateway`.
    pub kind: String,
    /// Condition type.
    pub condition: String,
    /// `True`, `False`, `Unknown` or `Missing`.
    pub status: String,
}

/// The loop's metrics, registered in one registry.
pub struct Metrics {
    /// All metrics, for encoding.
    pub(crate) registry: Registry,
    reconciles: Counter,
    errors: Family<ErrorLabels, Counter>,
    duration: Histogram,
    gateways: Family<ConditionLabels, Gauge>,
    leader: Gauge,
    watch_events: Family<CacheLabels, Counter>,
    /// Reconciles that have returned (not exported: `reconciles` minus this is what is
    /// in flight, which tests need to call an operator idle).
    finished: std::sync::atomic::AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("aigateway");
        let reconciles = Counter::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        let gateways = Family::<ConditionLabels, Gauge>::default();
        registry.register("reconciles", "Gateway reconciles run", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Gateway reconciles that failed, by reason",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one gateway reconcile",
            duration.clone(),
        );
        registry.register(
            "gateways",
            "Gateways of our classes by condition and status",
            gateways.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "Whether this instance reconciles and writes: it holds a freshly renewed lease, or runs without leader election",
            leader.clone(),
        );
        let watch_events = Family::<CacheLabels, Counter>::default();
        registry.register(
            "watch_events",
            "Object events (added, modified, deleted, listed) received by each child and related cache",
            watch_events.clone(),
        );
        Self {
            registry,
            watch_events,
            reconciles,
            errors,
            duration,
            gateways,
            leader,
            finished: Default::default(),
        }
    }
}

/// Records a reconcile's duration when dropped, whatever path it returns by.
pub(crate) struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    start: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .duration
            .observe(self.start.elapsed().as_secs_f64());
        self.metrics
            .finished
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Metrics {
    /// Counts a reconcile and times it until the guard drops.
    pub(crate) fn reconcile_started(&self) -> ReconcileTimer<'_> {
        self.reconciles.inc();
        ReconcileTimer {
            metrics: self,
            start: Instant::now(),
        }
    }

    /// How many reconciles have started: for tests and tools that need the number,
    /// not the Prometheus text.
    pub fn reconciles(&self) -> u64 {
        self.reconciles.get()
    }

    /// How many reconciles have started and not yet returned.
    pub fn reconciles_in_flight(&self) -> u64 {
        let finished = self.finished.load(std::sync::atomic::Ordering::Relaxed);
        self.reconciles.get().saturating_sub(finished)
    }

    /// Counts a failed reconcile.
    pub(crate) fn reconcile_failed(&self, reason: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts an object event received by the cache named `cache` of gateway kind `kind`.
    pub(crate) fn watch_event(&self, kind: &str, cache: &str) {
        self.watch_events
            .get_or_create(&CacheLabels {
                kind: kind.to_owned(),
                cache: cache.to_owned(),
            })
            .inc();
    }

    /// How many object events the cache `cache` (e.g. `related Secret`) of gateway kind
    /// `kind` (e.g. `AiGateway`) has received.
    pub fn watch_events(&self, kind: &str, cache: &str) -> u64 {
        let labels = CacheLabels {
            kind: kind.to_owned(),
            cache: cache.to_owned(),
        };
        self.watch_events
            .get(&labels)
            .map_or(0, |counter| counter.get())
    }

    /// Sets the leadership gauge.
    pub(crate) fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Replaces the gateways-by-condition gauge with fresh counts.
    pub(crate) fn set_gateway_counts(
        &self,
        counts: impl IntoIterator<Item = (ConditionLabels, i64)>,
    ) {
        self.gateways.clear();
        for (labels, count) in counts {
            self.gateways.get_or_create(&labels).set(count);
        }
    }

    /// The registry in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
