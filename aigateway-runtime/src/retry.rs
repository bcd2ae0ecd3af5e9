//! Why a reconcile failed and when it is tried again: [`ReconcileError`], the step it
//! failed at, and the backoff that grows only while the same step keeps failing.
//!
//! Pure policy over the errors of the layers below (the implementation's, apply's, the
//! API server's), used by the writes, the passes and the controllers above.

use std::collections::HashMap;
use std::time::Duration;

use rand::Rng;

use crate::apply::ApplyError;
use crate::implementation::ImplementationError;
use crate::logging::ObjectName;

/// The longest retry delay of a failing reconcile.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Why a reconcile failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The implementation reported a transient failure.
    #[error("desired state or cleanup of {gateway} failed: {source}")]
    Transient {
        /// `namespace/name` of the gateway.
        gateway: String,
        /// What failed.
        #[source]
        source: ImplementationError,
    },
    /// Applying or pruning children failed.
    #[error("applying children of {gateway} failed: {source}")]
    Apply {
        /// `namespace/name` of the gateway.
        gateway: String,
        /// The apply error.
        #[source]
        source: ApplyError,
    },
    /// Writing status or metadata failed (409 conflicts included; retried soon).
    #[error(
        "writing {what} of {object} failed: {}",
        crate::kube_error::describe_kube_error(source)
    )]
    Write {
        /// What was written.
        what: &'static str,
        /// The object written: the gateway, its class or an attached object.
        object: ObjectName,
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

impl ReconcileError {
    /// The metrics label of this error.
    pub fn metric_reason(&self) -> &'static str {
        match self {
            ReconcileError::Transient { .. } => "Transient",
            ReconcileError::Apply { .. } => "Apply",
            ReconcileError::Write { .. } if self.is_conflict() => "Conflict",
            ReconcileError::Write { .. } => "Write",
        }
    }

    /// Whether a write was refused with 409 Conflict: it was guarded by a
    /// resourceVersion that someone else's write has replaced since.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            ReconcileError::Write {
                source: kube::Error::Api(status),
                ..
            } if status.code == 409
        )
    }

    /// The object whose write failed, when it is not simply the gateway or class being
    /// reconciled (an attached object), or is: warnings are filed under it.
    pub fn object(&self) -> Option<&ObjectName> {
        match self {
            ReconcileError::Write { object, .. } => Some(object),
            ReconcileError::Transient { .. } | ReconcileError::Apply { .. } => None,
        }
    }

    /// Where the reconcile failed.
    pub(crate) fn step(&self) -> FailedStep {
        match self {
            ReconcileError::Transient { .. } => FailedStep::Implementation,
            ReconcileError::Apply {
                source: ApplyError::Api { verb, child, .. },
                ..
            } => FailedStep::Child {
                verb,
                child: child.clone(),
            },
            ReconcileError::Apply { .. } => FailedStep::Children,
            ReconcileError::Write { what, object, .. } => FailedStep::Write {
                what,
                object: object.clone(),
            },
        }
    }
}

/// Where a reconcile failed. The retry delay grows only while the same step keeps
/// failing (see [`error_policy`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FailedStep {
    /// The implementation's desired state or cleanup (related reads included).
    Implementation,
    /// Reading, adopting, applying or deleting one child.
    Child {
        /// `read`, `adopt`, `apply` or `delete`.
        verb: &'static str,
        /// The child.
        child: crate::apply::ChildId,
    },
    /// The desired children themselves (incomplete, in another namespace, undeclared).
    Children,
    /// A write of the gateway, its class or an attached object.
    Write {
        /// What was written.
        what: &'static str,
        /// Which object.
        object: ObjectName,
    },
}

/// The failures of one gateway in a row at the same step.
#[derive(Debug)]
pub(crate) struct Streak {
    step: FailedStep,
    count: u32,
}

/// Records a failure of `key` at `step`; returns how many times in a row `key` has now
/// failed at that step.
pub(crate) fn failed_at<Key: std::hash::Hash + Eq>(
    failures: &mut HashMap<Key, Streak>,
    key: Key,
    step: FailedStep,
) -> u32 {
    let streak = failures.entry(key).or_insert_with(|| Streak {
        step: step.clone(),
        count: 0,
    });
    if streak.step != step {
        *streak = Streak { step, count: 0 };
    }
    streak.count += 1;
    streak.count
}

/// The delay before retry `attempt` (1-based): 1 s doubling, capped at 5 min, ±25 % jitter.
pub fn backoff(attempt: u32) -> Duration {
    doubling(Duration::from_secs(1), attempt)
}

/// The delay before retry `attempt` (1-based) after a conflict: 200 ms doubling, capped
/// at 5 min, ±25 % jitter.
pub fn conflict_backoff(attempt: u32) -> Duration {
    doubling(Duration::from_millis(200), attempt)
}

fn doubling(first: Duration, attempt: u32) -> Duration {
    let base = first
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(11))
        .min(MAX_BACKOFF);
    let jitter = rand::rng().random_range(0.75..1.25);
    base.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap_with_jitter() {
        for attempt in 1..=20 {
            let base = (1u64 << (attempt - 1).min(9)).min(300) as f64;
            let delay = backoff(attempt).as_secs_f64();
            assert!(
                delay >= base * 0.75 && delay <= base * 1.25,
                "attempt {attempt}: {delay}"
            );
        }
        assert!(backoff(30) <= Duration::from_secs(375));
    }

    #[test]
    fn only_a_step_that_keeps_failing_backs_off_further() {
        let child = |name: &str| FailedStep::Child {
            verb: "apply",
            child: crate::apply::ChildId {
                api_version: "v1".into(),
                kind: "Service".into(),
                namespace: "ns".into(),
                name: name.into(),
            },
        };
        let status = FailedStep::Write {
            what: "status",
            object: ObjectName {
                kind: "AiGateway".into(),
                namespace: Some("ns".into()),
                name: "gw".into(),
            },
        };
        let mut failures = HashMap::new();
        let counts: Vec<u32> = [
            child("gw"),
            child("gw"),
            child("gw"),
            // The Service went through: the status write is a new problem.
            status.clone(),
            status.clone(),
            child("gw"),
            child("other"),
        ]
        .into_iter()
        .map(|step| failed_at(&mut failures, "ns/gw", step))
        .collect();
        assert_eq!(counts, [1, 2, 3, 1, 2, 1, 1]);
        // Other gateways keep their own count.
        assert_eq!(failed_at(&mut failures, "ns/other", status), 1);
    }

    #[test]
    fn conflicts_back_off_from_200_ms_doubling_to_the_same_cap() {
        for attempt in 1..=20u32 {
            let base = (0.2 * f64::from(1u32 << (attempt - 1).min(11))).min(300.0);
            let delay = conflict_backoff(attempt).as_secs_f64();
            assert!(
                delay >= base * 0.75 && delay <= base * 1.25,
                "attempt {attempt}: {delay}"
            );
        }
    }
}
