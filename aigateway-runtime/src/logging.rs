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
/// ends (one per cache at once; the watch simply resumes). The loop's own lines carry
/// the errors, a few a second.
pub const QUIET_BY_DEFAULT: &str = "kube_client::client::builder=off,kube_client::client=error";

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

/// Whether the `attempt`-th failure in a row of one object deserves a line of its own:
/// the 1st, 4th, 16th, 64th, ... (a gateway retrying with backoff does so at about 1 s,
/// 8 s, 9 min, ...), so that one object's retries never stack up in the log. Its status
/// says what fails meanwhile.
pub(crate) fn worth_a_line(attempt: u32) -> bool {
    attempt.is_power_of_two() && attempt.trailing_zeros().is_multiple_of(2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

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
    fn the_default_filter_leaves_out_kube_clients_per_request_errors() {
        let filter = default_filter_with_quiet("info");
        assert_eq!(
            filter,
            "info,kube_client::client::builder=off,kube_client::client=error"
        );
        // It parses as a filter (EnvFilter::new would log and ignore a bad directive).
        assert!(EnvFilter::try_new(&filter).is_ok());
    }

    #[test]
    fn one_object_is_named_on_its_1st_4th_16th_and_64th_failure() {
        let named: Vec<u32> = (1..=100).filter(|a| worth_a_line(*a)).collect();
        assert_eq!(named, [1, 4, 16, 64]);
    }
}
