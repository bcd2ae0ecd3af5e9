//! Conditions from a reconcile outcome ([`Outcome`], [`conditions_for`]), and change
//! detection so that an unchanged status is never written ([`merge_conditions`],
//! [`without_conditions`]), with messages bounded and reasons valid for the CRDs.
//!
//! Pure rules over the implementation's values: below the shared state and the writes
//! (`status`, `attached::sync`) that apply what they decide, and tested without a
//! cluster.

use aigateway_api::conditions::{self, NewCondition, Reason, reasons, types};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde_json::{Value, json};

use crate::class::ClassInUse;
use crate::implementation::{AliasReasons, ConditionAlias, Readiness, RefProblem};

/// What one reconcile of an owned gateway found.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Children were applied (or already matched).
    Programmed {
        /// The class that makes the gateway ours.
        class: ClassInUse,
        /// Stable description of the children, e.g. `ConfigMap a, Deployment a`.
        children: String,
        /// Reference problems reported by the implementation.
        problems: Vec<RefProblem>,
        /// Warnings reported by the implementation.
        warnings: Vec<String>,
        /// Readiness judged from live children.
        readiness: Readiness,
    },
    /// The spec cannot work; nothing was applied (and the gateway is not accepted, so no
    /// class is named).
    InvalidSpec {
        /// Why.
        reason: Reason,
        /// What is wrong and what to do.
        message: String,
    },
    /// A reference the gateway cannot do without is missing; nothing was applied.
    UnresolvedRef {
        /// The class that makes the gateway ours.
        class: ClassInUse,
        /// Why.
        reason: Reason,
        /// What is missing and what to do.
        message: String,
    },
    /// Objects with children's names exist and are not controlled by the gateway;
    /// nothing was applied.
    NameConflict {
        /// The class that makes the gateway ours.
        class: ClassInUse,
        /// The conflicting objects and what to do.
        message: String,
    },
    /// Applying failed; retried with backoff.
    ApplyFailed {
        /// The class that makes the gateway ours.
        class: ClassInUse,
        /// What failed.
        message: String,
    },
}

impl Outcome {
    /// The reason an alias with `reasons` gets, by this outcome's variant and whether
    /// its source condition is `True`.
    pub fn alias_reason<'a>(&self, reasons: &'a AliasReasons, source_true: bool) -> &'a Reason {
        if source_true {
            return &reasons.true_;
        }
        match self {
            Outcome::Programmed { .. } => &reasons.applied,
            Outcome::InvalidSpec { .. } => &reasons.invalid_spec,
            Outcome::UnresolvedRef { .. } => &reasons.unresolved_ref,
            Outcome::NameConflict { .. } => &reasons.name_conflict,
            Outcome::ApplyFailed { .. } => &reasons.apply_failed,
        }
    }
}

/// The conditions an outcome implies, in a fixed order, with messages bounded, followed
/// by the `aliases` whose source is among them. Every reason is valid for the CRD: the
/// runtime's are constants and an implementation's are [`Reason`]s, checked where they
/// were written.
pub fn conditions_for(
    outcome: &Outcome,
    controller: &str,
    aliases: &[ConditionAlias],
) -> Vec<NewCondition> {
    let mut list: Vec<NewCondition> = unchecked_conditions_for(outcome, controller)
        .into_iter()
        .map(|c| NewCondition {
            message: bounded(c.message),
            ..c
        })
        .collect();
    let copies: Vec<NewCondition> = aliases
        .iter()
        .filter_map(|alias| {
            let source = list.iter().find(|c| c.type_ == alias.source)?;
            let reason = match &alias.reasons {
                Some(reasons) => outcome
                    .alias_reason(reasons, source.status == conditions::STATUS_TRUE)
                    .to_string(),
                None => source.reason.clone(),
            };
            Some(NewCondition {
                type_: alias.type_.clone(),
                reason,
                ..source.clone()
            })
        })
        .collect();
    list.extend(copies);
    list
}

fn unchecked_conditions_for(outcome: &Outcome, controller: &str) -> Vec<NewCondition> {
    let accepted = |class: &ClassInUse| {
        if class.deleting {
            NewCondition::new(
                types::ACCEPTED,
                true,
                reasons::CLASS_DELETING,
                format!(
                    "accepted by {controller} through class {}, which is being deleted: the gateway stays served until it moves to another class or is deleted",
                    class.name
                ),
            )
        } else {
            NewCondition::new(
                types::ACCEPTED,
                true,
                reasons::ACCEPTED,
                format!("accepted by {controller} through class {}", class.name),
            )
        }
    };
    match outcome {
        Outcome::Programmed {
            class,
            children,
            problems,
            warnings,
            readiness,
        } => {
            let resolved = if problems.is_empty() {
                NewCondition::new(
                    types::RESOLVED_REFS,
                    true,
                    reasons::RESOLVED_REFS,
                    "all references resolved",
                )
            } else {
                let message = problems
                    .iter()
                    .map(|p| p.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ");
                NewCondition::new(types::RESOLVED_REFS, false, &problems[0].reason, message)
            };
            let ready = match readiness {
                Readiness::Ready(message) => {
                    NewCondition::new(types::READY, true, reasons::READY, message.clone())
                }
                Readiness::Progressing { reason, message }
                | Readiness::Failed { reason, message } => {
                    NewCondition::new(types::READY, false, reason, message.clone())
                }
            };
            vec![
                accepted(class),
                resolved,
                NewCondition::new(
                    types::PROGRAMMED,
                    true,
                    reasons::PROGRAMMED,
                    if warnings.is_empty() {
                        format!("applied {children}")
                    } else {
                        format!("applied {children}; warnings: {}", warnings.join("; "))
                    },
                ),
                ready,
            ]
        }
        Outcome::InvalidSpec {
            reason, message, ..
        } => not_programmed(
            NewCondition::new(
                types::ACCEPTED,
                false,
                reason,
                format!("{message} (reported by {controller})"),
            ),
            message,
        ),
        Outcome::UnresolvedRef {
            class,
            reason,
            message,
        } => {
            let mut list = vec![accepted(class)];
            list.extend(not_programmed(
                NewCondition::new(types::RESOLVED_REFS, false, reason, message.clone()),
                message,
            ));
            list
        }
        Outcome::NameConflict { class, message } => vec![
            accepted(class),
            NewCondition::new(
                types::PROGRAMMED,
                false,
                reasons::NAME_CONFLICT,
                message.clone(),
            ),
            NewCondition::new(
                types::READY,
                false,
                reasons::NOT_READY,
                "the gateway is not programmed",
            ),
        ],
        Outcome::ApplyFailed { class, message } => vec![
            accepted(class),
            NewCondition::new(
                types::PROGRAMMED,
                false,
                reasons::APPLY_FAILED,
                message.clone(),
            ),
        ],
    }
}

/// `cause` followed by `Programmed=False` and `Ready=False`: nothing could be applied.
fn not_programmed(cause: NewCondition, message: &str) -> Vec<NewCondition> {
    vec![
        cause,
        NewCondition::new(
            types::PROGRAMMED,
            false,
            reasons::INVALID,
            message.to_owned(),
        ),
        NewCondition::new(
            types::READY,
            false,
            reasons::NOT_READY,
            "the gateway is not programmed",
        ),
    ]
}

/// The longest condition message we write; the CRD allows 32768 bytes, and a status
/// whose message is over the limit could never be written again.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// The longest Event note the API server accepts, in bytes (`events.k8s.io/v1`
/// refuses a longer one with 422, and the event is lost).
pub const MAX_NOTE_BYTES: usize = 1024;

/// `message` cut to [`MAX_MESSAGE_BYTES`] at a character boundary.
pub fn bounded(message: String) -> String {
    cut_to_bytes(message, MAX_MESSAGE_BYTES)
}

/// `text` cut to at most `max_bytes` bytes at a character boundary, ending with a
/// truncation marker when anything was cut. Limits of the API (condition messages, Event
/// notes) count bytes, not characters: a cut by characters lets non-ASCII text through
/// too long.
pub fn cut_to_bytes(text: String, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text;
    }
    let marker = " ... (truncated)";
    let mut end = max_bytes.saturating_sub(marker.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{marker}", &text[..end])
}

/// Applies `new` to `current`. Returns the new list when anything changed, `None` when
/// the status is already right.
pub fn merge_conditions(
    current: &[Condition],
    new: &[NewCondition],
    generation: Option<i64>,
    now: &Time,
) -> Option<Vec<Condition>> {
    let mut list = current.to_vec();
    let mut changed = false;
    for condition in new {
        changed |= conditions::set_condition(&mut list, condition.clone(), generation, now.clone());
    }
    changed.then_some(list)
}

/// Removes the condition types in `owned` from `current`; `None` when none was present.
pub fn without_conditions(current: &[Condition], owned: &[String]) -> Option<Vec<Condition>> {
    let list: Vec<Condition> = current
        .iter()
        .filter(|c| !owned.contains(&c.type_))
        .cloned()
        .collect();
    (list.len() != current.len()).then_some(list)
}

/// A JSON merge patch for the status subresource, guarded by `resourceVersion` so a
/// concurrent writer makes it fail with 409 instead of losing their conditions.
pub fn status_patch(
    resource_version: Option<&str>,
    conditions: &[Condition],
    url: Option<&str>,
) -> Value {
    json!({
        "metadata": {"resourceVersion": resource_version},
        "status": {"conditions": conditions, "url": url},
    })
}

/// The now used for condition timestamps.
pub fn now() -> Time {
    Time(jiff::Timestamp::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn programmed(problems: Vec<RefProblem>, readiness: Readiness) -> Outcome {
        Outcome::Programmed {
            class: "c".into(),
            children: "ConfigMap gw".into(),
            problems,
            warnings: Vec::new(),
            readiness,
        }
    }

    #[test]
    fn a_converged_gateway_needs_no_status_write() {
        let outcome = programmed(vec![], Readiness::Ready("rolled out".into()));
        let wanted = conditions_for(&outcome, "x.io/y", &[]);
        let first = merge_conditions(&[], &wanted, Some(1), &now()).expect("first write");
        assert_eq!(first.len(), 4);
        assert_eq!(merge_conditions(&first, &wanted, Some(1), &now()), None);
        assert!(
            merge_conditions(&first, &wanted, Some(2), &now()).is_some(),
            "new generation observed"
        );
    }

    #[test]
    fn messages_are_bounded_and_keep_the_implementations_reason() {
        let problem = RefProblem {
            reason: Reason::new("SecretKeyMissing").unwrap(),
            message: "é".repeat(5000),
        };
        let wanted = conditions_for(
            &programmed(vec![problem], Readiness::Ready("ok".into())),
            "x.io/y",
            &[],
        );
        let resolved = wanted
            .iter()
            .find(|c| c.type_ == types::RESOLVED_REFS)
            .unwrap();
        assert_eq!(resolved.reason, "SecretKeyMissing");
        assert!(
            resolved.message.len() <= MAX_MESSAGE_BYTES
                && resolved.message.ends_with("(truncated)")
        );
    }

    #[test]
    fn event_notes_are_cut_by_bytes_at_a_character_boundary() {
        let ascii = "a".repeat(MAX_NOTE_BYTES);
        assert_eq!(cut_to_bytes(ascii.clone(), MAX_NOTE_BYTES), ascii);
        // 1,000 characters of two bytes each: 2,000 bytes, which a cut at 1,000
        // characters let through and the API server refused.
        let note = cut_to_bytes("é".repeat(1000), MAX_NOTE_BYTES);
        assert!(note.len() <= MAX_NOTE_BYTES, "{} bytes", note.len());
        assert!(note.ends_with("(truncated)"));
        assert!(note.starts_with("éé"));
        // A three-byte character straddling the cut is dropped whole: the text keeps
        // 1,007 bytes, then the 16-byte marker.
        let note = cut_to_bytes(
            format!("{}{}", "a".repeat(1007), "€".repeat(10)),
            MAX_NOTE_BYTES,
        );
        assert_eq!(note, format!("{} ... (truncated)", "a".repeat(1007)));
    }

    #[test]
    fn warnings_show_in_programmed_and_keep_refs_resolved() {
        let mut outcome = programmed(vec![], Readiness::Ready("ok".into()));
        if let Outcome::Programmed { warnings, .. } = &mut outcome {
            warnings.push("open endpoint".into());
        }
        let wanted = conditions_for(&outcome, "x.io/y", &[]);
        let programmed = wanted
            .iter()
            .find(|c| c.type_ == types::PROGRAMMED)
            .unwrap();
        assert_eq!(programmed.status, "True");
        assert!(
            programmed.message.ends_with("warnings: open endpoint"),
            "{}",
            programmed.message
        );
        let resolved = wanted
            .iter()
            .find(|c| c.type_ == types::RESOLVED_REFS)
            .unwrap();
        assert_eq!(resolved.status, "True");
    }

    #[test]
    fn problems_make_resolved_refs_false_and_name_the_objects() {
        let problem = RefProblem {
            reason: Reason::from_static("RefNotFound"),
            message: "Guard ns/g not found".into(),
        };
        let wanted = conditions_for(
            &programmed(vec![problem], Readiness::Ready("ok".into())),
            "x.io/y",
            &[],
        );
        let resolved = wanted
            .iter()
            .find(|c| c.type_ == types::RESOLVED_REFS)
            .unwrap();
        assert_eq!(
            (resolved.status.as_str(), resolved.reason.as_str()),
            ("False", "RefNotFound")
        );
        assert!(resolved.message.contains("Guard ns/g"));
    }

    #[test]
    fn aliases_copy_their_source_and_foreign_conditions_survive() {
        let foreign = Condition {
            type_: "example.com/Audit".into(),
            status: "True".into(),
            reason: "Fine".into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: now(),
        };
        let aliases = [ConditionAlias::copy("AiGatewayReady", "Ready")];
        let wanted = conditions_for(
            &programmed(vec![], Readiness::Ready("ok".into())),
            "x.io/y",
            &aliases,
        );
        let list =
            merge_conditions(std::slice::from_ref(&foreign), &wanted, Some(1), &now()).unwrap();
        assert!(list.contains(&foreign));
        let alias = conditions::find_condition(&list, "AiGatewayReady").unwrap();
        assert_eq!(
            (alias.status.as_str(), alias.reason.as_str()),
            ("True", "Ready")
        );
        let owned: Vec<String> = [
            "Accepted",
            "ResolvedRefs",
            "Programmed",
            "Ready",
            "AiGatewayReady",
        ]
        .map(String::from)
        .into();
        assert_eq!(without_conditions(&list, &owned).unwrap(), vec![foreign]);
    }

    #[test]
    fn alias_reasons_follow_the_outcome_variant_not_the_source_reason() {
        let reasons = AliasReasons {
            true_: Reason::from_static("Fine"),
            applied: Reason::from_static("Waiting"),
            invalid_spec: Reason::from_static("BadSpec"),
            unresolved_ref: Reason::from_static("BadRef"),
            name_conflict: Reason::from_static("Taken"),
            apply_failed: Reason::from_static("Refused"),
        };
        let aliases = [
            ConditionAlias::with_reasons("LegacyReady", types::READY, reasons.clone()),
            ConditionAlias::with_reasons("LegacyConfigured", types::PROGRAMMED, reasons.clone()),
        ];
        let reason_of = |outcome: &Outcome, alias: &str| {
            let list = conditions_for(outcome, "x.io/y", &aliases);
            let alias = list.iter().find(|c| c.type_ == alias)?;
            let source = list.iter().find(|c| {
                aliases
                    .iter()
                    .any(|a| a.type_ == alias.type_ && a.source == c.type_)
            })?;
            assert_eq!(
                (&alias.status, &alias.message),
                (&source.status, &source.message)
            );
            Some(alias.reason.clone())
        };
        let ready = programmed(vec![], Readiness::Ready("ok".into()));
        assert_eq!(reason_of(&ready, "LegacyReady").as_deref(), Some("Fine"));
        assert_eq!(
            reason_of(&ready, "LegacyConfigured").as_deref(),
            Some("Fine")
        );
        // Two implementation reasons for one state give one alias reason.
        for reason in ["RollingOut", "ReplicaFailure"] {
            let pending = programmed(
                vec![],
                Readiness::Progressing {
                    reason: Reason::from_static(reason),
                    message: "m".into(),
                },
            );
            assert_eq!(
                reason_of(&pending, "LegacyReady").as_deref(),
                Some("Waiting")
            );
        }
        let cases = [
            (
                Outcome::InvalidSpec {
                    reason: Reason::from_static("InvalidParameters"),
                    message: "m".into(),
                },
                "BadSpec",
            ),
            (
                Outcome::UnresolvedRef {
                    class: "c".into(),
                    reason: Reason::from_static("RefNotFound"),
                    message: "m".into(),
                },
                "BadRef",
            ),
            (
                Outcome::NameConflict {
                    class: "c".into(),
                    message: "m".into(),
                },
                "Taken",
            ),
            (
                Outcome::ApplyFailed {
                    class: "c".into(),
                    message: "m".into(),
                },
                "Refused",
            ),
        ];
        for (outcome, expected) in cases {
            assert_eq!(
                reason_of(&outcome, "LegacyConfigured").as_deref(),
                Some(expected)
            );
        }
        assert_eq!(
            reasons.all(),
            ["Fine", "Waiting", "BadSpec", "BadRef", "Taken", "Refused"]
        );
    }

    #[test]
    fn invalid_specs_are_not_accepted_but_missing_refs_are() {
        let invalid = Outcome::InvalidSpec {
            reason: Reason::from_static("InvalidParameters"),
            message: "bad".into(),
        };
        let list = conditions_for(&invalid, "x.io/y", &[]);
        assert_eq!(list[0].type_, types::ACCEPTED);
        assert_eq!(list[0].status, "False");
        // Whatever reason an implementation picks, the variant decides.
        let missing = Outcome::UnresolvedRef {
            class: "c".into(),
            reason: Reason::from_static("PatchMissing"),
            message: "ConfigMap p".into(),
        };
        let list = conditions_for(&missing, "x.io/y", &[]);
        assert_eq!(list[0].status, "True");
        assert_eq!(list[1].type_, types::RESOLVED_REFS);
        assert_eq!(list[1].status, "False");
    }
}
