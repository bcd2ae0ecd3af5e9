//! Standard condition types and reasons, and helpers that update condition lists the
//! way Kubernetes API conventions ask: one condition per type, `lastTransitionTime` kept
//! while the status does not change, `observedGeneration` always current.
//!
//! ```
//! use aigateway_api::conditions::{self, NewCondition, reasons, types};
//! use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
//!
//! let mut list = Vec::new();
//! let t0 = Time(jiff::Timestamp::UNIX_EPOCH);
//! let ready = NewCondition::new(types::READY, true, reasons::READY, "all replicas available");
//! assert!(conditions::set_condition(&mut list, ready.clone(), Some(1), t0.clone()));
//! // Same status, newer generation: updated in place, transition time kept.
//! let t1 = Time(jiff::Timestamp::from_second(60).unwrap());
//! assert!(conditions::set_condition(&mut list, ready.clone(), Some(2), t1.clone()));
//! assert_eq!(list[0].last_transition_time, t0);
//! assert_eq!(list[0].observed_generation, Some(2));
//! // Nothing new: nothing changes.
//! assert!(!conditions::set_condition(&mut list, ready, Some(2), t1));
//! ```

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Condition types set by gateway implementations (Gateway API vocabulary plus `Ready`).
pub mod types {
    /// The class is ours and the gateway's spec is valid.
    pub const ACCEPTED: &str = "Accepted";
    /// Every object the gateway references (Secrets, Guards, ConfigMaps...) was found and usable.
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    /// The gateway's children were applied to the cluster.
    pub const PROGRAMMED: &str = "Programmed";
    /// The gateway serves traffic.
    pub const READY: &str = "Ready";
}

/// Condition reasons used with [`types`].
pub mod reasons {
    /// `Accepted=True`: the controller claimed the gateway or class.
    pub const ACCEPTED: &str = "Accepted";
    /// `Accepted=False`: the spec cannot be implemented as written.
    pub const INVALID_PARAMETERS: &str = "InvalidParameters";
    /// Any type: the controller has not finished processing yet.
    pub const PENDING: &str = "Pending";
    /// `ResolvedRefs=True`: every reference resolved.
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    /// `ResolvedRefs=False`: a referenced object does not exist.
    pub const REF_NOT_FOUND: &str = "RefNotFound";
    /// `ResolvedRefs=False`: a referenced object exists but cannot be used.
    pub const INVALID_REF: &str = "InvalidRef";
    /// `Programmed=True`: children applied.
    pub const PROGRAMMED: &str = "Programmed";
    /// `Programmed=False`: the desired state could not be computed from the spec.
    pub const INVALID: &str = "Invalid";
    /// `Programmed=False`: applying children failed (retried).
    pub const APPLY_FAILED: &str = "ApplyFailed";
    /// `Programmed=False`: an object with a child's name exists and is not controlled
    /// by the gateway; nothing was applied.
    pub const NAME_CONFLICT: &str = "NameConflict";
    /// `Accepted=True`: the gateway's class is being deleted; the gateway stays served
    /// until it moves to another class or is deleted.
    pub const CLASS_DELETING: &str = "ClassDeleting";
    /// `Ready=True`: the gateway serves traffic.
    pub const READY: &str = "Ready";
    /// `Ready=False` on an attached object (a ToolRoute): its gateway is not programmed.
    pub const GATEWAY_NOT_PROGRAMMED: &str = "GatewayNotProgrammed";
    /// `Ready=False` on an attached object (a ToolRoute): its gateway does not serve yet.
    pub const GATEWAY_NOT_READY: &str = "GatewayNotReady";
    /// `Ready=False`: a rollout is in progress.
    pub const ROLLING_OUT: &str = "RollingOut";
    /// `Ready=False`: the gateway does not serve traffic.
    pub const NOT_READY: &str = "NotReady";

    /// Every reason above, for checks that each one is documented.
    pub const ALL: &[&str] = &[
        ACCEPTED,
        INVALID_PARAMETERS,
        PENDING,
        RESOLVED_REFS,
        REF_NOT_FOUND,
        INVALID_REF,
        PROGRAMMED,
        INVALID,
        APPLY_FAILED,
        NAME_CONFLICT,
        CLASS_DELETING,
        READY,
        GATEWAY_NOT_PROGRAMMED,
        GATEWAY_NOT_READY,
        ROLLING_OUT,
        NOT_READY,
    ];
}

/// Condition status `"True"`.
pub const STATUS_TRUE: &str = "True";
/// Condition status `"False"`.
pub const STATUS_FALSE: &str = "False";
/// Condition status `"Unknown"`.
pub const STATUS_UNKNOWN: &str = "Unknown";

/// The most bytes a condition reason may have (the Condition schema's `maxLength`).
pub const MAX_REASON_BYTES: usize = 1024;

/// Whether the Condition schema accepts `reason`: at most [`MAX_REASON_BYTES`], matching
/// `^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$` (CamelCase in practice, e.g. `RollingOut`).
pub const fn is_valid_reason(reason: &str) -> bool {
    let bytes = reason.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_REASON_BYTES || !bytes[0].is_ascii_alphabetic() {
        return false;
    }
    if matches!(bytes[bytes.len() - 1], b',' | b':') {
        return false;
    }
    let mut i = 1;
    while i < bytes.len() {
        let b = bytes[i];
        if !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b',' | b':')) {
            return false;
        }
        i += 1;
    }
    true
}

/// A condition reason the Condition schema accepts ([`is_valid_reason`]), checked where
/// it is written rather than when a status is written.
///
/// A literal is checked at compile time when it is a constant:
///
/// ```
/// use aigateway_api::conditions::Reason;
/// const STARTING: Reason = Reason::from_static("Starting");
/// assert_eq!(STARTING.as_str(), "Starting");
/// assert!(Reason::new("not a reason").is_err());
/// ```
///
/// ```compile_fail
/// use aigateway_api::conditions::Reason;
/// const BAD: Reason = Reason::from_static("Bad reason"); // a space: does not compile
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reason(std::borrow::Cow<'static, str>);

impl Reason {
    /// [`reasons::INVALID_PARAMETERS`]: the spec cannot be implemented as written.
    pub const INVALID_PARAMETERS: Reason = Reason::from_static(reasons::INVALID_PARAMETERS);
    /// [`reasons::REF_NOT_FOUND`]: a referenced object does not exist.
    pub const REF_NOT_FOUND: Reason = Reason::from_static(reasons::REF_NOT_FOUND);
    /// [`reasons::INVALID_REF`]: a referenced object exists but cannot be used.
    pub const INVALID_REF: Reason = Reason::from_static(reasons::INVALID_REF);
    /// [`reasons::INVALID`]: the desired state could not be computed from the spec.
    pub const INVALID: Reason = Reason::from_static(reasons::INVALID);
    /// [`reasons::ROLLING_OUT`]: a rollout is in progress.
    pub const ROLLING_OUT: Reason = Reason::from_static(reasons::ROLLING_OUT);
    /// [`reasons::NOT_READY`]: the gateway does not serve traffic.
    pub const NOT_READY: Reason = Reason::from_static(reasons::NOT_READY);

    /// `reason`, or why the Condition schema would refuse it.
    pub fn new(reason: impl Into<String>) -> Result<Self, InvalidReason> {
        let reason = reason.into();
        if is_valid_reason(&reason) {
            Ok(Self(std::borrow::Cow::Owned(reason)))
        } else {
            Err(InvalidReason { reason })
        }
    }

    /// A literal reason; panics when it is invalid, which fails the build when the
    /// result is a `const` (write `const X: Reason = Reason::from_static("X")`).
    pub const fn from_static(reason: &'static str) -> Self {
        assert!(
            is_valid_reason(reason),
            "a condition reason must match ^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$ and have at most 1024 bytes"
        );
        Self(std::borrow::Cow::Borrowed(reason))
    }

    /// The reason's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Reason {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Reason {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl From<Reason> for String {
    fn from(reason: Reason) -> Self {
        reason.0.into_owned()
    }
}

/// A reason the Condition schema would refuse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid condition reason {:?}: a reason starts with a letter, has only letters, digits, '_', ',' and ':', does not end with ',' or ':', and has at most 1024 bytes (e.g. RollingOut)",
    shown(reason)
)]
pub struct InvalidReason {
    /// The refused text.
    pub reason: String,
}

/// The first 64 characters of `reason`, for a one-line error message.
fn shown(reason: &str) -> String {
    match reason.char_indices().nth(64) {
        Some((cut, _)) => format!("{}...", &reason[..cut]),
        None => reason.to_owned(),
    }
}

/// A condition to set, without the bookkeeping fields that [`set_condition`] fills in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCondition {
    /// The condition type, e.g. [`types::READY`].
    pub type_: String,
    /// `"True"`, `"False"` or `"Unknown"`.
    pub status: String,
    /// A CamelCase reason, e.g. [`reasons::READY`].
    pub reason: String,
    /// A message a human can act on.
    pub message: String,
}

impl NewCondition {
    /// A condition with status `"True"` or `"False"`.
    pub fn new(
        type_: &str,
        status: bool,
        reason: impl AsRef<str>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_: type_.to_owned(),
            status: if status { STATUS_TRUE } else { STATUS_FALSE }.to_owned(),
            reason: reason.as_ref().to_owned(),
            message: message.into(),
        }
    }

    /// A condition with status `"Unknown"`.
    pub fn unknown(type_: &str, reason: &str, message: impl Into<String>) -> Self {
        Self {
            status: STATUS_UNKNOWN.to_owned(),
            ..Self::new(type_, false, reason, message)
        }
    }
}

/// Sets `new` in `conditions`, replacing the condition of the same type.
///
/// `lastTransitionTime` becomes `now` only when the status changes (or the type is
/// new); `observedGeneration` is set to `generation`. Returns whether the list changed,
/// so callers can skip writing an unchanged status.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    new: NewCondition,
    generation: Option<i64>,
    now: Time,
) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(existing) => {
            let updated = Condition {
                last_transition_time: if existing.status == new.status {
                    existing.last_transition_time.clone()
                } else {
                    now
                },
                message: new.message,
                observed_generation: generation,
                reason: new.reason,
                status: new.status,
                type_: new.type_,
            };
            if *existing == updated {
                false
            } else {
                *existing = updated;
                true
            }
        }
        None => {
            conditions.push(Condition {
                last_transition_time: now,
                message: new.message,
                observed_generation: generation,
                reason: new.reason,
                status: new.status,
                type_: new.type_,
            });
            true
        }
    }
}

/// The condition of type `type_`, if present.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of type `type_` is present with status `"True"`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find_condition(conditions, type_).is_some_and(|c| c.status == STATUS_TRUE)
}

/// Removes the condition of type `type_`; returns whether one was removed.
pub fn remove_condition(conditions: &mut Vec<Condition>, type_: &str) -> bool {
    let before = conditions.len();
    conditions.retain(|c| c.type_ != type_);
    conditions.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_checked_against_the_condition_schema() {
        for good in [
            "Ready",
            "RollingOut",
            "a",
            "Not_Ready2",
            "Go:Configured,Now_",
        ] {
            assert!(Reason::new(good).is_ok(), "{good}");
        }
        let too_long = "A".repeat(MAX_REASON_BYTES + 1);
        for bad in [
            "",
            "Bad reason",
            "1st",
            "_x",
            "Ends:",
            "Ends,",
            "Ünicode",
            &too_long,
        ] {
            let error = Reason::new(bad).expect_err(bad);
            assert!(!error.to_string().contains('\n'), "one line: {error}");
            assert!(error.to_string().len() < 400, "bounded: {error}");
        }
        assert!(Reason::new("A".repeat(MAX_REASON_BYTES)).is_ok());
        // Every standard reason is one.
        for reason in reasons::ALL {
            assert!(is_valid_reason(reason), "{reason}");
        }
    }

    #[test]
    #[should_panic(expected = "a condition reason must match")]
    fn a_static_reason_that_is_invalid_panics() {
        let _ = Reason::from_static(["Bad reason"][std::hint::black_box(0)]);
    }

    #[test]
    fn reasons_all_lists_every_reason_constant() {
        let source = include_str!("conditions.rs");
        let module = &source[source.find("pub mod reasons {").unwrap()..];
        let module = &module[..module.find("pub const ALL").unwrap()];
        let declared: Vec<&str> = module
            .lines()
            .filter_map(|line| line.trim().strip_prefix("pub const "))
            .filter_map(|rest| rest.split_once(": &str = \""))
            .map(|(_, value)| value.trim_end_matches("\";"))
            .collect();
        assert_eq!(declared.len(), reasons::ALL.len(), "{declared:?}");
        for reason in declared {
            assert!(
                reasons::ALL.contains(&reason),
                "{reason} is missing from reasons::ALL"
            );
        }
    }

    fn at(seconds: i64) -> Time {
        Time(jiff::Timestamp::from_second(seconds).unwrap())
    }

    #[test]
    fn a_status_change_moves_the_transition_time() {
        let mut list = Vec::new();
        set_condition(
            &mut list,
            NewCondition::new(types::READY, false, reasons::ROLLING_OUT, "0/1"),
            Some(1),
            at(0),
        );
        assert!(set_condition(
            &mut list,
            NewCondition::new(types::READY, true, reasons::READY, "1/1"),
            Some(1),
            at(5)
        ));
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].last_transition_time, at(5));
        assert_eq!(list[0].status, STATUS_TRUE);
        assert_eq!(list[0].reason, reasons::READY);
    }

    #[test]
    fn a_message_change_keeps_the_transition_time() {
        let mut list = Vec::new();
        set_condition(
            &mut list,
            NewCondition::new(types::READY, false, reasons::ROLLING_OUT, "0/2"),
            Some(1),
            at(0),
        );
        assert!(set_condition(
            &mut list,
            NewCondition::new(types::READY, false, reasons::ROLLING_OUT, "1/2"),
            Some(1),
            at(9)
        ));
        assert_eq!(list[0].last_transition_time, at(0));
        assert_eq!(list[0].message, "1/2");
    }

    #[test]
    fn other_types_are_left_alone_and_removal_is_by_type() {
        let mut list = Vec::new();
        set_condition(
            &mut list,
            NewCondition::new("example.com/Healthy", true, "Fine", ""),
            None,
            at(0),
        );
        set_condition(
            &mut list,
            NewCondition::unknown(types::ACCEPTED, reasons::PENDING, "waiting"),
            Some(3),
            at(1),
        );
        assert_eq!(list.len(), 2);
        assert!(is_true(&list, "example.com/Healthy"));
        assert!(!is_true(&list, types::ACCEPTED));
        assert_eq!(
            find_condition(&list, types::ACCEPTED).unwrap().status,
            STATUS_UNKNOWN
        );
        assert!(remove_condition(&mut list, types::ACCEPTED));
        assert!(!remove_condition(&mut list, types::ACCEPTED));
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].type_, "example.com/Healthy");
    }
}
