//! Structured logs through `tracing`, as text for people or JSON for log pipelines.

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!(
                "unknown log format `{other}`: use `text` or `json`"
            )),
        }
    }
}

/// Installs the global subscriber; the filter comes from `RUST_LOG` (default `info`).
/// Returns `false` when a subscriber was already installed (tests, embedding programs).
pub fn init(format: LogFormat) -> bool {
    init_with_default(format, "info")
}

/// Targets quieter unless `RUST_LOG` is set: kube's client logs every failed request at
/// error level, one line each (during an API server outage, hundreds a second, one per
/// retry of every object), and a warning for every watch stream a dropped connection
/// ends (one per cache at once; the watch simply resumes). kube's watcher warns about
/// every list refused with 403, with a debug dump of the API server's answer, one line
/// per cache at once (an API server that restarts refuses for a moment, before its
/// authorizer has synced). The loop's own lines carry the errors, a few a second, and
/// `/readyz` names each failing cache with the API server's message.
pub const QUIET_BY_DEFAULT: &str =
    "kube_client::client::builder=off,kube_client::client=error,kube_runtime::watcher=error";

/// Like [`init`], with another filter when `RUST_LOG` is unset (e.g. `warn` for a
/// program whose own output matters more than the loop's logs). Either way
/// [`QUIET_BY_DEFAULT`] applies unless `RUST_LOG` is set.
pub fn init_with_default(format: LogFormat, default_filter: &str) -> bool {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(default_filter_with_quiet(default_filter)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.try_init().is_ok(),
        LogFormat::Json => builder.json().flatten_event(true).try_init().is_ok(),
    }
}

/// An object a warning or an error is about: kind, namespace (none for cluster-scoped
/// objects) and name. Shown as `Kind namespace/name` or `Kind name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectName {
    /// The kind, e.g. `ToolRoute`.
    pub kind: String,
    /// The namespace, `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
}

impl ObjectName {
    /// The name of the typed object `object`.
    pub fn of<R: kube::Resource<DynamicType = ()>>(object: &R) -> Self {
        Self {
            kind: R::kind(&()).into_owned(),
            namespace: object.meta().namespace.clone(),
            name: object.meta().name.clone().unwrap_or_default(),
        }
    }

    /// The name of `object`, whose kind comes from its type information (`object` when
    /// it has none).
    pub fn of_dynamic(object: &kube::api::DynamicObject) -> Self {
        Self {
            kind: object
                .types
                .as_ref()
                .map_or_else(|| "object".to_owned(), |t| t.kind.clone()),
            namespace: object.metadata.namespace.clone(),
            name: object.metadata.name.clone().unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for ObjectName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{} {namespace}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// At most one warning per object every [`WarningLimit::EVERY`]: an object that keeps
/// failing (a tenant editing a route in a loop re-runs the gateway it names each time)
/// fills the logs with one line per window, not one per attempt. The line that ends a
/// quiet window says how many were left out (`suppressed`). And all objects together
/// write a few lines a second (3 at once, then 1 a second): during an API server outage every
/// gateway fails at once; what that holds back goes to the debug level and is counted in
/// the next line's `held_back`.
///
/// Warnings go out in a span of their own naming the object (see `warn_about`): filed
/// under the object that caused them, not under the gateway whose reconcile happened to
/// meet it.
#[derive(Debug, Default)]
pub struct WarningLimit {
    seen: std::sync::Mutex<std::collections::HashMap<ObjectName, Window>>,
    /// The lines of all objects together: a few a second (see [`LogThrottle`]).
    all_objects: LogThrottle,
}

#[derive(Debug)]
struct Window {
    opened: std::time::Instant,
    suppressed: u64,
}

impl WarningLimit {
    /// One warning per object per this long.
    pub const EVERY: std::time::Duration = std::time::Duration::from_secs(30);
    /// How many objects the limit remembers at once; beyond, warnings about objects it
    /// has no room for are left out until windows end (so the limit's own memory is
    /// bounded whatever the number of failing objects).
    pub const MAX_OBJECTS: usize = 10_000;

    /// Whether a warning about `object` may go out at `now`: `Some(n)` with the number
    /// of warnings about it left out since the last one that went out, or `None` (left
    /// out, and counted).
    pub fn admit(&self, object: &ObjectName, now: std::time::Instant) -> Option<u64> {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(window) = seen.get_mut(object) {
            if now.saturating_duration_since(window.opened) < Self::EVERY {
                window.suppressed += 1;
                return None;
            }
            let suppressed = window.suppressed;
            *window = Window {
                opened: now,
                suppressed: 0,
            };
            return Some(suppressed);
        }
        if seen.len() >= Self::MAX_OBJECTS {
            seen.retain(|_, w| now.saturating_duration_since(w.opened) < Self::EVERY);
            if seen.len() >= Self::MAX_OBJECTS {
                return None;
            }
        }
        seen.insert(
            object.clone(),
            Window {
                opened: now,
                suppressed: 0,
            },
        );
        Some(0)
    }

    /// A warning about `object` that [`admit`](Self::admit) let through was held back
    /// by the budget shared by all objects: its window did not really open, so the next
    /// warning about it may go out at once, counting this one and the `suppressed`
    /// before it.
    fn held_back(&self, object: &ObjectName, suppressed: u64) {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(window) = seen.get_mut(object) {
            match window.opened.checked_sub(Self::EVERY) {
                Some(closed) => {
                    window.opened = closed;
                    window.suppressed = suppressed + 1;
                }
                None => {
                    seen.remove(object);
                }
            }
        }
    }
}

/// Logs `message` at WARN about `object`, through `limit`, with `error` and `suppressed`
/// (the warnings about it left out before this one), inside a span of its own (no
/// parent) whose fields name the object: `object.ref` (`Kind namespace/name`),
/// `object.kind`, `object.namespace` and `object.name`. The span of the reconcile that
/// met the failure (another gateway's, say) is not its parent.
pub(crate) fn warn_about(
    limit: &WarningLimit,
    object: &ObjectName,
    error: &dyn std::fmt::Display,
    message: &str,
) {
    let Some(suppressed) = limit.admit(object, std::time::Instant::now()) else {
        return;
    };
    // Many objects failing at once (an API server outage) share one budget of lines.
    let Some(held_back) = limit.all_objects.admit() else {
        limit.held_back(object, suppressed);
        tracing::debug!(%error, object = %object, suppressed, "{message}");
        return;
    };
    // A root span rather than an event without parent: the JSON formatter lists the
    // current span for an event without parent too.
    let span = tracing::warn_span!(
        parent: None,
        "warning about",
        "object.ref" = %object,
        "object.kind" = %object.kind,
        "object.namespace" = object.namespace.as_deref().unwrap_or_default(),
        "object.name" = %object.name,
    );
    let _entered = span.enter();
    tracing::warn!(%error, suppressed, held_back, "{message}");
}

/// `default_filter` with [`QUIET_BY_DEFAULT`] added.
fn default_filter_with_quiet(default_filter: &str) -> String {
    format!("{default_filter},{QUIET_BY_DEFAULT}")
}

/// Keeps one kind of repeated warning (failed reconciles, failed watches) to a few lines
/// per second, however many objects fail at once: up to [`LogThrottle::BURST`] lines at
/// once, then [`LogThrottle::PER_SECOND`] a second. A line held back goes to the debug
/// level instead, and the next line written says how many were held back.
///
/// During an outage of the API server every gateway fails at each retry: without this,
/// 200 gateways log hundreds of lines a second, burying the one line that says what is
/// wrong.
#[derive(Debug)]
pub(crate) struct LogThrottle {
    bucket: std::sync::Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: std::time::Instant,
    held_back: u64,
}

impl Default for LogThrottle {
    fn default() -> Self {
        Self {
            bucket: std::sync::Mutex::new(Bucket {
                tokens: Self::BURST,
                refilled: std::time::Instant::now(),
                held_back: 0,
            }),
        }
    }
}

impl LogThrottle {
    /// Lines written at once before the rate applies.
    pub(crate) const BURST: f64 = 3.0;
    /// Lines written per second in the long run.
    pub(crate) const PER_SECOND: f64 = 1.0;

    /// `Some(n)` when a line may be written now, `n` being how many were held back since
    /// the last one written; `None` when this one is held back.
    pub(crate) fn admit(&self) -> Option<u64> {
        self.admit_at(std::time::Instant::now())
    }

    fn admit_at(&self, now: std::time::Instant) -> Option<u64> {
        let mut bucket = self
            .bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * Self::PER_SECOND).min(Self::BURST);
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Some(std::mem::take(&mut bucket.held_back))
        } else {
            bucket.held_back += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn route(name: &str) -> ObjectName {
        ObjectName {
            kind: "ToolRoute".into(),
            namespace: Some("attacker".into()),
            name: name.into(),
        }
    }

    #[test]
    fn one_warning_per_object_per_window_and_the_next_counts_the_rest() {
        let limit = WarningLimit::default();
        let start = Instant::now();
        assert_eq!(limit.admit(&route("a"), start), Some(0));
        for i in 1..=100 {
            assert_eq!(
                limit.admit(&route("a"), start + Duration::from_millis(i)),
                None
            );
        }
        // Another object has its own window.
        assert_eq!(limit.admit(&route("b"), start), Some(0));
        assert_eq!(
            limit.admit(&route("a"), start + WarningLimit::EVERY),
            Some(100)
        );
        assert_eq!(
            limit.admit(
                &route("a"),
                start + WarningLimit::EVERY + Duration::from_secs(1)
            ),
            None
        );
    }

    #[test]
    fn the_limit_remembers_a_bounded_number_of_objects() {
        let limit = WarningLimit::default();
        let start = Instant::now();
        for i in 0..WarningLimit::MAX_OBJECTS {
            assert_eq!(limit.admit(&route(&i.to_string()), start), Some(0));
        }
        assert_eq!(limit.admit(&route("one more"), start), None, "no room");
        // Once the windows are over, there is room again.
        let later = start + WarningLimit::EVERY;
        assert_eq!(limit.admit(&route("one more"), later), Some(0));
        assert!(limit.seen.lock().unwrap().len() <= 1);
    }

    #[test]
    fn a_warning_the_shared_budget_held_back_leaves_the_objects_window_closed() {
        let limit = WarningLimit::default();
        let start = Instant::now();
        assert_eq!(limit.admit(&route("a"), start), Some(0));
        limit.held_back(&route("a"), 0);
        // The next warning about it may go out at once, and counts the one held back.
        assert_eq!(
            limit.admit(&route("a"), start + Duration::from_millis(1)),
            Some(1)
        );
    }

    #[test]
    fn object_names_read_as_kind_namespace_and_name() {
        assert_eq!(route("r").to_string(), "ToolRoute attacker/r");
        let class = ObjectName {
            kind: "AiGatewayClass".into(),
            namespace: None,
            name: "litellm".into(),
        };
        assert_eq!(class.to_string(), "AiGatewayClass litellm");
    }

    #[test]
    fn a_burst_of_failures_writes_three_lines_then_one_a_second_and_counts_the_rest() {
        let throttle = LogThrottle::default();
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        // 200 failures within 10 ms: three lines.
        let admitted: Vec<Option<u64>> = (0..200).map(|i| throttle.admit_at(at(i / 20))).collect();
        assert_eq!(admitted.iter().filter(|a| a.is_some()).count(), 3);
        assert_eq!(admitted[0], Some(0));
        // A second later one more line, saying how many were held back.
        assert_eq!(throttle.admit_at(at(1010)), Some(197));
        assert_eq!(throttle.admit_at(at(1020)), None);
        // In the long run: one line a second.
        let lines = (0..1000)
            .filter(|i| throttle.admit_at(at(2000 + i * 10)).is_some())
            .count();
        assert!((9..=11).contains(&lines), "{lines} lines in 10 s");
    }

    #[test]
    fn the_default_filter_leaves_out_kube_clients_per_request_errors_and_watch_dumps() {
        let filter = default_filter_with_quiet("info");
        assert_eq!(
            filter,
            "info,kube_client::client::builder=off,kube_client::client=error,kube_runtime::watcher=error"
        );
        // It parses as a filter (EnvFilter::new would log and ignore a bad directive).
        assert!(EnvFilter::try_new(&filter).is_ok());
    }
}
