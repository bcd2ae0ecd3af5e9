//! The entry a policy gets in `status.ancestors` for one of its targets: pure, so that
//! "what does a policy say about this gateway, and when" is answered in one place and
//! tested without a cluster.

use aigateway_api::NamespacedName;
use aigateway_api::conditions::NewCondition;
use aigateway_api::policy::{ForeignTarget, PolicyTarget, reasons, types};

use crate::attached::PolicyDecision;
use crate::conditions;

/// Where one of a policy's targets stands, as far as this controller knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TargetState {
    /// No such object (or it is being deleted).
    Missing,
    /// The object exists and another controller (or none) has it: not ours to say.
    NotOurs,
    /// Ours, and an older policy of the same kind is in effect on it.
    LosesTo(NamespacedName),
    /// Ours, and this policy is in effect on it; the gateway's pass decided `decision`
    /// (`None`: it has not run on this generation of the policy yet).
    InEffect(Option<PolicyDecision>),
}

/// What to write for one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    /// An entry of ours with these conditions.
    Conditions(Vec<NewCondition>),
    /// No entry of ours: the target is another controller's.
    None,
    /// Not known yet: the gateway's pass will decide, then ask again.
    Pending,
}

/// The entry for `target` of a policy of kind `policy_kind`.
pub(crate) fn entry(policy_kind: &str, target: &PolicyTarget, state: TargetState) -> Entry {
    let bounded = |c: NewCondition| NewCondition {
        message: conditions::bounded(c.message),
        ..c
    };
    let accepted = || {
        bounded(NewCondition::new(
            types::ACCEPTED,
            true,
            reasons::ACCEPTED,
            format!("in effect on {} {}", target.kind, target_name(target)),
        ))
    };
    let list = match state {
        TargetState::NotOurs => return Entry::None,
        TargetState::InEffect(None) => return Entry::Pending,
        TargetState::Missing => vec![NewCondition::new(
            types::ACCEPTED,
            false,
            reasons::TARGET_NOT_FOUND,
            format!(
                "{} {} does not exist; create it or fix targetRefs",
                target.kind,
                target_name(target)
            ),
        )],
        TargetState::LosesTo(winner) => vec![NewCondition::new(
            types::ACCEPTED,
            false,
            reasons::CONFLICTED,
            format!(
                "{policy_kind} {}/{} is older and applies to this target; delete one of the two or make them target different objects",
                winner.namespace, winner.name
            ),
        )],
        TargetState::InEffect(Some(PolicyDecision::Accept)) => vec![
            accepted(),
            NewCondition::new(
                types::RESOLVED_REFS,
                true,
                types::RESOLVED_REFS,
                "every reference resolved",
            ),
        ],
        TargetState::InEffect(Some(PolicyDecision::Refuse { reason, message })) => {
            vec![NewCondition::new(types::ACCEPTED, false, reason, message)]
        }
        TargetState::InEffect(Some(PolicyDecision::Unresolved { reason, message })) => vec![
            accepted(),
            NewCondition::new(types::RESOLVED_REFS, false, reason, message),
        ],
    };
    Entry::Conditions(list.into_iter().map(bounded).collect())
}

/// The entry for a reference to another namespace: refused, whatever is there.
pub(crate) fn foreign(target: &ForeignTarget) -> Vec<NewCondition> {
    vec![NewCondition::new(
        types::ACCEPTED,
        false,
        reasons::INVALID,
        conditions::bounded(target.to_string()),
    )]
}

fn target_name(target: &PolicyTarget) -> String {
    match &target.section_name {
        Some(section) => format!("{}/{} (section {section})", target.namespace, target.name),
        None => format!("{}/{}", target.namespace, target.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aigateway_api::conditions::Reason;

    fn target() -> PolicyTarget {
        PolicyTarget::new("runtime.agentic-layer.ai", "AiGateway", "team", "gw")
    }

    fn single(entry: Entry) -> Vec<(String, String, String)> {
        let Entry::Conditions(list) = entry else {
            panic!("no conditions: {entry:?}")
        };
        list.into_iter()
            .map(|c| (c.type_, c.status, c.reason))
            .collect()
    }

    #[test]
    fn each_standing_says_so_in_accepted() {
        let t = target();
        let triple = |t: &str, s: &str, r: &str| (t.to_owned(), s.to_owned(), r.to_owned());
        assert_eq!(
            single(entry(
                "P",
                &t,
                TargetState::InEffect(Some(PolicyDecision::Accept))
            )),
            vec![
                triple("Accepted", "True", "Accepted"),
                triple("ResolvedRefs", "True", "ResolvedRefs")
            ]
        );
        assert_eq!(
            single(entry("P", &t, TargetState::Missing)),
            vec![triple("Accepted", "False", "TargetNotFound")]
        );
        let winner = NamespacedName {
            namespace: "team".into(),
            name: "older".into(),
        };
        let Entry::Conditions(conflicted) = entry("P", &t, TargetState::LosesTo(winner)) else {
            panic!()
        };
        assert_eq!(conflicted[0].reason, "Conflicted");
        assert!(conflicted[0].message.contains("P team/older is older"));
        assert_eq!(
            single(entry(
                "P",
                &t,
                TargetState::InEffect(Some(PolicyDecision::invalid("no such model")))
            )),
            vec![triple("Accepted", "False", "Invalid")]
        );
        assert_eq!(
            single(entry(
                "P",
                &t,
                TargetState::InEffect(Some(PolicyDecision::unresolved(
                    Reason::REF_NOT_FOUND,
                    "Secret team/key not found"
                )))
            )),
            vec![
                triple("Accepted", "True", "Accepted"),
                triple("ResolvedRefs", "False", "RefNotFound")
            ]
        );
        assert_eq!(entry("P", &t, TargetState::NotOurs), Entry::None);
        assert_eq!(entry("P", &t, TargetState::InEffect(None)), Entry::Pending);
    }

    #[test]
    fn messages_are_bounded() {
        let huge = "x".repeat(100_000);
        let Entry::Conditions(list) = entry(
            "P",
            &target(),
            TargetState::InEffect(Some(PolicyDecision::invalid(huge))),
        ) else {
            panic!()
        };
        assert!(list[0].message.len() <= conditions::MAX_MESSAGE_BYTES);
    }
}
