//! Policy attachment (Gateway API GEP-713, *direct* attachment): the shapes every policy
//! kind shares and the rules that decide which policy applies to which object.
//!
//! A policy is a namespaced object of its own kind whose `spec.targetRefs` name the
//! objects it configures (a gateway, a model of it through `sectionName`, a ToolRoute);
//! its status says, per target, whether it was accepted. The rules here are Gateway API's:
//!
//! - a policy configures objects **in its own namespace only**. A reference naming
//!   another namespace is refused visibly ([`PolicyTargetReference::target_in`]), never
//!   resolved: a tenant must not reach into a namespace it cannot write, and must not
//!   learn whether an object exists there;
//! - of two policies of one kind on one target, the **older wins** (creation time, then
//!   name): [`Precedence`]. The other is `Accepted=False` with reason
//!   [`reasons::CONFLICTED`]; nothing is merged field by field;
//! - `status.ancestors` holds one entry per target and controller, at most
//!   [`MAX_ANCESTORS`]; a controller writes only its own entries ([`merge_ancestors`]).
//!
//! ```
//! use aigateway_api::policy::{PolicyTarget, PolicyTargetReference};
//!
//! let reference = PolicyTargetReference::new("runtime.agentic-layer.ai", "AiGateway", "team-gw");
//! let target = reference.target_in("team-a").unwrap();
//! assert_eq!(target, PolicyTarget::new("runtime.agentic-layer.ai", "AiGateway", "team-a", "team-gw"));
//!
//! // Naming another namespace is refused, whatever exists there.
//! let elsewhere = PolicyTargetReference { namespace: Some("team-b".into()), ..reference };
//! assert!(elsewhere.target_in("team-a").is_err());
//! ```

use std::cmp::Ordering;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
use kube::{Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::conditions::NewCondition;

/// The label Gateway API tools look for on a policy CRD; its value says how the policy
/// attaches.
pub const POLICY_LABEL: &str = "gateway.networking.k8s.io/policy";
/// The value of [`POLICY_LABEL`] for direct attachment (the only kind here).
pub const DIRECT: &str = "Direct";
/// At most this many `targetRefs` in one policy (the CRD's `maxItems`).
pub const MAX_TARGET_REFS: usize = 16;
/// At most this many entries in `status.ancestors` (Gateway API's limit).
pub const MAX_ANCESTORS: usize = 16;
/// At most this many conditions in one ancestor entry (Gateway API's limit).
pub const MAX_ANCESTOR_CONDITIONS: usize = 8;

/// The condition types of an ancestor entry.
pub mod types {
    /// Whether the policy is in effect on this target.
    pub const ACCEPTED: &str = "Accepted";
    /// Whether everything the policy references (a Secret, say) was found and usable.
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
}

/// Reasons of the `Accepted` condition (Gateway API's policy reasons).
pub mod reasons {
    /// In effect.
    pub const ACCEPTED: &str = "Accepted";
    /// An older policy of the same kind targets the same object and wins.
    pub const CONFLICTED: &str = "Conflicted";
    /// The policy cannot be applied as written (its message says why): a target in
    /// another namespace, a value the implementation refuses.
    pub const INVALID: &str = "Invalid";
    /// The target (or the section of it) does not exist.
    pub const TARGET_NOT_FOUND: &str = "TargetNotFound";
}

/// One object a policy targets: Gateway API's `LocalPolicyTargetReferenceWithSectionName`,
/// plus an optional `namespace` that exists only so that a reference to another
/// namespace is refused visibly (without the field, the API server would drop it and the
/// policy would attach to a same-named object in its own namespace).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyTargetReference {
    /// The API group of the target, e.g. `runtime.agentic-layer.ai`.
    #[schemars(length(max = 253))]
    pub group: String,
    /// The kind of the target, e.g. `AiGateway`.
    #[schemars(length(min = 1, max = 63))]
    pub kind: String,
    /// The name of the target.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// A part of the target (for an AiGateway, a model name); unset: the whole target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub section_name: Option<String>,
    /// Must be unset or the policy's own namespace: a policy configures objects in its
    /// own namespace only, and any other value is refused in the policy's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,
}

impl PolicyTargetReference {
    /// A reference to the whole object `group`/`kind` `name` in the policy's namespace.
    pub fn new(group: &str, kind: &str, name: &str) -> Self {
        Self {
            group: group.to_owned(),
            kind: kind.to_owned(),
            name: name.to_owned(),
            ..Self::default()
        }
    }

    /// The object this reference names for a policy in `policy_namespace`, or the
    /// refusal of a reference to another namespace. Nothing is looked up.
    pub fn target_in(&self, policy_namespace: &str) -> Result<PolicyTarget, ForeignTarget> {
        match self.namespace.as_deref() {
            Some(namespace) if namespace != policy_namespace => Err(ForeignTarget {
                kind: self.kind.clone(),
                namespace: namespace.to_owned(),
                name: self.name.clone(),
            }),
            _ => Ok(PolicyTarget {
                group: self.group.clone(),
                kind: self.kind.clone(),
                namespace: policy_namespace.to_owned(),
                name: self.name.clone(),
                section_name: self.section_name.clone(),
            }),
        }
    }
}

/// A target reference naming another namespace than the policy's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "targetRefs names {kind} {namespace}/{name}: a policy configures objects in its own namespace only; create the policy in namespace {namespace}"
)]
pub struct ForeignTarget {
    /// The kind named.
    pub kind: String,
    /// The other namespace.
    pub namespace: String,
    /// The name named.
    pub name: String,
}

/// An object a policy configures (in the policy's namespace), with the section if any:
/// the key under which policies of one kind compete.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyTarget {
    /// API group.
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace (the policy's).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The section (an AiGateway's model), if any.
    pub section_name: Option<String>,
}

impl PolicyTarget {
    /// The whole object `group`/`kind` `namespace/name`.
    pub fn new(group: &str, kind: &str, namespace: &str, name: &str) -> Self {
        Self {
            group: group.to_owned(),
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            section_name: None,
        }
    }

    /// The same object, section `section`.
    pub fn section(mut self, section: &str) -> Self {
        self.section_name = Some(section.to_owned());
        self
    }

    /// How `status.ancestors` names this target.
    pub fn ancestor_ref(&self) -> ParentReference {
        ParentReference {
            group: Some(self.group.clone()),
            kind: Some(self.kind.clone()),
            namespace: Some(self.namespace.clone()),
            name: self.name.clone(),
            section_name: self.section_name.clone(),
            port: None,
        }
    }
}

impl std::fmt::Display for PolicyTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)?;
        if let Some(section) = &self.section_name {
            write!(f, " section {section}")?;
        }
        Ok(())
    }
}

/// Gateway API's `ParentReference`, as `status.ancestors[].ancestorRef` uses it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    /// API group of the ancestor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub group: Option<String>,
    /// Kind of the ancestor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub kind: Option<String>,
    /// Namespace of the ancestor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,
    /// Name of the ancestor.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Section of the ancestor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub section_name: Option<String>,
    /// Port of the ancestor (unused here; kept for Gateway API's shape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
}

/// One target's status as one controller sees it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyAncestorStatus {
    /// The target.
    pub ancestor_ref: ParentReference,
    /// The controller that wrote this entry (`spec.controller` of the target's class).
    #[schemars(length(min = 1, max = 253))]
    pub controller_name: String,
    /// `Accepted`, `ResolvedRefs`, and any the implementation adds (at most 8).
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,
}

/// A policy's status: one entry per target and controller.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    /// At most 16 entries; an entry belongs to the controller it names.
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub ancestors: Vec<PolicyAncestorStatus>,
}

/// A policy kind: a namespaced resource with `spec.targetRefs`.
pub trait TargetedPolicy: Resource {
    /// The objects the policy names.
    fn target_refs(&self) -> &[PolicyTargetReference];
}

/// Which policy comes first: the older (creation time; none counts as newest), then the
/// name. Gateway API's rule for policies of one kind that target one object.
pub fn older_first(a: &ObjectMeta, b: &ObjectMeta) -> Ordering {
    let created = |m: &ObjectMeta| m.creation_timestamp.as_ref().map(|t| t.0);
    let by_time = match (created(a), created(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    by_time
        .then_with(|| a.name.cmp(&b.name))
        .then_with(|| a.namespace.cmp(&b.namespace))
}

/// Where a policy stands on one of its targets.
#[derive(Debug, PartialEq)]
pub enum Standing<'p, P> {
    /// It is the oldest policy of its kind on the target: in effect.
    Wins,
    /// An older policy of the same kind targets the same object and wins.
    LosesTo(&'p P),
    /// The policy does not target this object.
    NotTargeting,
}

/// The policies of one kind by target, oldest first; and the references that were refused
/// for naming another namespace.
#[derive(Debug)]
pub struct Precedence<'p, P> {
    by_target: BTreeMap<PolicyTarget, Vec<&'p P>>,
    refused: Vec<(&'p P, ForeignTarget)>,
}

impl<'p, P: TargetedPolicy> Precedence<'p, P> {
    /// Ranks `policies` (of one kind) on every target they name. A policy naming one
    /// target twice competes once; only the first [`MAX_TARGET_REFS`] references count.
    pub fn of(policies: impl IntoIterator<Item = &'p P>) -> Self {
        let mut by_target: BTreeMap<PolicyTarget, Vec<&'p P>> = BTreeMap::new();
        let mut refused = Vec::new();
        for policy in policies {
            let namespace = policy.namespace().unwrap_or_default();
            for reference in policy.target_refs().iter().take(MAX_TARGET_REFS) {
                match reference.target_in(&namespace) {
                    Ok(target) => {
                        let ranked = by_target.entry(target).or_default();
                        if !ranked.iter().any(|p| std::ptr::eq(*p, policy)) {
                            ranked.push(policy);
                        }
                    }
                    Err(foreign) => refused.push((policy, foreign)),
                }
            }
        }
        for ranked in by_target.values_mut() {
            ranked.sort_by(|a, b| older_first(a.meta(), b.meta()));
        }
        Self { by_target, refused }
    }

    /// The policy in effect on `target`, if any targets it.
    pub fn winner(&self, target: &PolicyTarget) -> Option<&'p P> {
        self.by_target
            .get(target)
            .and_then(|ranked| ranked.first().copied())
    }

    /// Where `policy` stands on `target`.
    pub fn standing(&self, policy: &P, target: &PolicyTarget) -> Standing<'p, P> {
        let Some(ranked) = self.by_target.get(target) else {
            return Standing::NotTargeting;
        };
        match ranked.iter().position(|p| std::ptr::eq(*p, policy)) {
            None => Standing::NotTargeting,
            Some(0) => Standing::Wins,
            Some(_) => Standing::LosesTo(ranked[0]),
        }
    }

    /// The policies in effect on `object` (its `section_name` ignored) or on any of its
    /// sections: each target's winner, each policy once, oldest first. What a runtime
    /// offers an implementation rendering `object`.
    pub fn in_effect_on(&self, object: &PolicyTarget) -> Vec<&'p P> {
        let same_object = |t: &PolicyTarget| {
            (t.group == object.group && t.kind == object.kind)
                && (t.namespace == object.namespace && t.name == object.name)
        };
        let mut winners: Vec<&'p P> = (self.by_target.iter())
            .filter(|(target, _)| same_object(target))
            .filter_map(|(_, ranked)| ranked.first().copied())
            .collect();
        winners.sort_by(|a, b| older_first(a.meta(), b.meta()));
        winners.dedup_by(|a, b| std::ptr::eq(*a, *b));
        winners
    }

    /// Every target some policy names, in a stable order.
    pub fn targets(&self) -> impl Iterator<Item = &PolicyTarget> {
        self.by_target.keys()
    }

    /// The references refused for naming another namespace, with their policies.
    pub fn refused(&self) -> &[(&'p P, ForeignTarget)] {
        &self.refused
    }
}

/// The `Accepted=False` condition of a policy that an older one beats on a target.
pub fn conflicted<P: Resource<DynamicType = ()>>(winner: &P) -> NewCondition {
    NewCondition::new(
        types::ACCEPTED,
        false,
        reasons::CONFLICTED,
        format!(
            "{} {}/{} is older and applies to this target; delete one of the two or make them target different objects",
            P::kind(&()),
            winner.meta().namespace.as_deref().unwrap_or_default(),
            winner.name_any()
        ),
    )
}

/// What [`merge_ancestors`] decided.
#[derive(Debug, PartialEq)]
pub struct MergedAncestors {
    /// The new `status.ancestors`, or `None` when it would not change.
    pub ancestors: Option<Vec<PolicyAncestorStatus>>,
    /// Targets of ours left out because the list was full (Gateway API: the policy is
    /// then not implementable there; say so on the target).
    pub left_out: Vec<ParentReference>,
}

/// `status.ancestors` with `controller`'s entries replaced by `ours` (target and
/// conditions), other controllers' entries kept as they are.
///
/// Every entry keeps its place: an entry of ours is updated where it is (or dropped when
/// its target is no longer ours), and entries for new targets are appended, ordered by
/// target. Two controllers writing one policy's list in turn therefore converge: neither
/// sees the other's write as a reason to write again.
///
/// An entry's conditions keep their `lastTransitionTime` while their status holds and
/// carry `generation` (the policy's) as `observedGeneration`. When an entry of ours
/// already observed a newer generation, nothing is written (this cache is behind; the
/// newer version's event follows). When the list would exceed [`MAX_ANCESTORS`], the
/// new entries that do not fit are left out and reported.
///
/// The same as [`AncestorsMemo::merge`] on the memo of `existing`, which a cache keeps
/// instead of the list.
pub fn merge_ancestors(
    existing: &[PolicyAncestorStatus],
    controller: &str,
    ours: Vec<(ParentReference, Vec<NewCondition>)>,
    generation: Option<i64>,
    now: &Time,
) -> MergedAncestors {
    AncestorsMemo::of(existing, controller).merge(controller, ours, generation, now)
}

/// What a cache keeps of a policy's `status.ancestors` to merge one controller's entries
/// into it ([`AncestorsMemo::merge`]): other controllers' entries verbatim, and of each
/// entry of that controller only what merging reads (its target and each condition's
/// type and status, hashed, with the transition time) and a hash of the whole entry to
/// tell whether it changed. A few dozen bytes per entry instead of its messages and
/// names: an operator caches one status per policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AncestorsMemo {
    entries: Box<[MemoEntry]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum MemoEntry {
    /// Another controller's entry, as compact JSON.
    Theirs(Box<str>),
    Ours(OurEntryMemo),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct OurEntryMemo {
    target: u64,
    whole: u64,
    /// The newest `observedGeneration` of its conditions.
    observed: Option<i64>,
    conditions: Box<[ConditionMemo]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ConditionMemo {
    type_: u64,
    status: u64,
    last_transition_time: Time,
}

/// A hash of `value` (its JSON), stable within a process: entries are compared with the
/// hash of what this process last read.
fn digest(value: &impl Serialize) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    // Serialising our own types cannot fail.
    serde_json::to_string(value)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

fn digest_str(value: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

impl AncestorsMemo {
    /// The memo of `ancestors`, whose entries naming `controller` are ours.
    pub fn of(ancestors: &[PolicyAncestorStatus], controller: &str) -> Self {
        let entries = ancestors.iter().map(|entry| {
            if entry.controller_name != controller {
                return MemoEntry::Theirs(serde_json::to_string(entry).unwrap_or_default().into());
            }
            MemoEntry::Ours(OurEntryMemo {
                target: digest(&entry.ancestor_ref),
                whole: digest(entry),
                observed: entry
                    .conditions
                    .iter()
                    .filter_map(|c| c.observed_generation)
                    .max(),
                conditions: (entry.conditions.iter())
                    .map(|c| ConditionMemo {
                        type_: digest_str(&c.type_),
                        status: digest_str(&c.status),
                        last_transition_time: c.last_transition_time.clone(),
                    })
                    .collect(),
            })
        });
        Self {
            entries: entries.collect(),
        }
    }

    /// [`merge_ancestors`] on the list this memo was made of.
    pub fn merge(
        &self,
        controller: &str,
        ours: Vec<(ParentReference, Vec<NewCondition>)>,
        generation: Option<i64>,
        now: &Time,
    ) -> MergedAncestors {
        let unchanged = MergedAncestors {
            ancestors: None,
            left_out: Vec::new(),
        };
        let behind = self
            .entries
            .iter()
            .any(|entry| matches!(entry, MemoEntry::Ours(memo) if memo.observed > generation));
        if behind {
            return unchanged;
        }
        let mut ours = ours;
        ours.sort_by(|a, b| ancestor_key(&a.0).cmp(&ancestor_key(&b.0)));
        ours.dedup_by(|a, b| a.0 == b.0);
        let entry = |previous: Option<&OurEntryMemo>,
                     ancestor_ref: ParentReference,
                     conditions: Vec<NewCondition>| {
            // One condition per type: a later one of a type replaces the earlier, where
            // it stood.
            let mut unique: Vec<NewCondition> = Vec::new();
            for condition in conditions.into_iter().take(MAX_ANCESTOR_CONDITIONS) {
                match unique.iter_mut().find(|c| c.type_ == condition.type_) {
                    Some(earlier) => *earlier = condition,
                    None => unique.push(condition),
                }
            }
            let kept = previous.map_or(&[][..], |memo| &memo.conditions[..]);
            // Conditions keep their place; new types follow, in the order given.
            let mut placed: Vec<(Option<usize>, NewCondition)> = unique
                .into_iter()
                .map(|c| {
                    let at = kept.iter().position(|k| k.type_ == digest_str(&c.type_));
                    (at, c)
                })
                .collect();
            placed.sort_by_key(|(at, _)| at.map_or(usize::MAX, |at| at));
            let conditions = placed
                .into_iter()
                .map(|(at, new)| {
                    let held = at
                        .map(|at| &kept[at])
                        .filter(|k| k.status == digest_str(&new.status));
                    Condition {
                        last_transition_time: held
                            .map_or_else(|| now.clone(), |k| k.last_transition_time.clone()),
                        message: new.message,
                        observed_generation: generation,
                        reason: new.reason,
                        status: new.status,
                        type_: new.type_,
                    }
                })
                .collect();
            PolicyAncestorStatus {
                ancestor_ref,
                controller_name: controller.to_owned(),
                conditions,
            }
        };
        let mut changed = false;
        let mut merged = Vec::with_capacity(self.entries.len() + ours.len());
        for memo in &self.entries {
            match memo {
                MemoEntry::Theirs(json) => match serde_json::from_str(json) {
                    Ok(theirs) => merged.push(theirs),
                    // Written by `of` from an entry: it parses.
                    Err(_) => changed = true,
                },
                MemoEntry::Ours(memo) => {
                    let Some(at) = ours.iter().position(|(r, _)| digest(r) == memo.target) else {
                        changed = true;
                        continue;
                    };
                    let (ancestor_ref, conditions) = ours.remove(at);
                    let updated = entry(Some(memo), ancestor_ref, conditions);
                    changed |= digest(&updated) != memo.whole;
                    merged.push(updated);
                }
            }
        }
        let mut left_out = Vec::new();
        for (ancestor_ref, conditions) in ours {
            if merged.len() >= MAX_ANCESTORS {
                left_out.push(ancestor_ref);
            } else {
                merged.push(entry(None, ancestor_ref, conditions));
                changed = true;
            }
        }
        MergedAncestors {
            ancestors: changed.then_some(merged),
            left_out,
        }
    }
}

fn ancestor_key(r: &ParentReference) -> (&str, &str, &str, &str, &str) {
    (
        r.group.as_deref().unwrap_or_default(),
        r.kind.as_deref().unwrap_or_default(),
        r.namespace.as_deref().unwrap_or_default(),
        &r.name,
        r.section_name.as_deref().unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;
    use kube::CustomResource;

    /// A policy kind for the tests.
    #[derive(
        CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema,
    )]
    #[kube(
        group = "example.com",
        version = "v1",
        kind = "TestPolicy",
        namespaced,
        derive = "PartialEq"
    )]
    #[serde(rename_all = "camelCase")]
    struct TestPolicySpec {
        target_refs: Vec<PolicyTargetReference>,
    }

    impl TargetedPolicy for TestPolicy {
        fn target_refs(&self) -> &[PolicyTargetReference] {
            &self.spec.target_refs
        }
    }

    const GROUP: &str = "runtime.agentic-layer.ai";

    fn policy(name: &str, created: Option<i64>, refs: Vec<PolicyTargetReference>) -> TestPolicy {
        let mut policy = TestPolicy::new(name, TestPolicySpec { target_refs: refs });
        policy.metadata.namespace = Some("team-a".into());
        policy.metadata.creation_timestamp =
            created.map(|s| Time(Timestamp::from_second(s).unwrap()));
        policy
    }

    fn gateway(name: &str) -> PolicyTargetReference {
        PolicyTargetReference::new(GROUP, "AiGateway", name)
    }

    fn target(name: &str) -> PolicyTarget {
        PolicyTarget::new(GROUP, "AiGateway", "team-a", name)
    }

    #[test]
    fn the_older_policy_wins_then_the_name_and_a_policy_without_a_time_comes_last() {
        let young = policy("a-young", Some(200), vec![gateway("gw")]);
        let old = policy("z-old", Some(100), vec![gateway("gw")]);
        let twin = policy("b-twin", Some(200), vec![gateway("gw")]);
        let timeless = policy("0-timeless", None, vec![gateway("gw")]);
        let all = [&young, &twin, &timeless, &old];
        let precedence = Precedence::of(all);
        assert_eq!(
            precedence.winner(&target("gw")).unwrap().name_any(),
            "z-old"
        );
        assert_eq!(precedence.standing(&old, &target("gw")), Standing::Wins);
        assert_eq!(
            precedence.standing(&young, &target("gw")),
            Standing::LosesTo(&old)
        );
        assert_eq!(
            precedence.standing(&old, &target("other")),
            Standing::NotTargeting
        );
        let ranked: Vec<String> = precedence.by_target[&target("gw")]
            .iter()
            .map(|p| p.name_any())
            .collect();
        assert_eq!(ranked, ["z-old", "a-young", "b-twin", "0-timeless"]);
    }

    #[test]
    fn in_effect_are_the_winners_of_the_object_and_its_sections_each_once_oldest_first() {
        let mut model = gateway("gw");
        model.section_name = Some("gpt-4o".into());
        let on_model = policy("on-model", Some(300), vec![model.clone()]);
        let whole = policy("whole", Some(100), vec![gateway("gw"), model]);
        let loser = policy("loser", Some(200), vec![gateway("gw")]);
        let elsewhere = policy("elsewhere", Some(50), vec![gateway("other")]);
        let precedence = Precedence::of([&on_model, &whole, &loser, &elsewhere]);
        let names: Vec<String> = (precedence.in_effect_on(&target("gw")).into_iter())
            .map(|p| p.name_any())
            .collect();
        assert_eq!(names, ["whole"], "whole wins the gateway and the model");
        let precedence = Precedence::of([&on_model, &loser, &elsewhere]);
        let names: Vec<String> = (precedence.in_effect_on(&target("gw")).into_iter())
            .map(|p| p.name_any())
            .collect();
        assert_eq!(names, ["loser", "on-model"]);
    }

    #[test]
    fn sections_are_targets_of_their_own_and_a_repeated_reference_competes_once() {
        let mut model = gateway("gw");
        model.section_name = Some("gpt-4o".into());
        let both = policy(
            "both",
            Some(200),
            vec![model.clone(), model.clone(), gateway("gw")],
        );
        let whole = policy("whole", Some(100), vec![gateway("gw")]);
        let precedence = Precedence::of([&both, &whole]);
        let section = target("gw").section("gpt-4o");
        assert_eq!(precedence.standing(&both, &section), Standing::Wins);
        assert_eq!(
            precedence.standing(&both, &target("gw")),
            Standing::LosesTo(&whole)
        );
        assert_eq!(precedence.by_target[&section].len(), 1);
        assert_eq!(precedence.targets().count(), 2);
    }

    #[test]
    fn a_reference_to_another_namespace_is_refused_and_competes_nowhere() {
        let mut foreign = gateway("gw");
        foreign.namespace = Some("team-b".into());
        let mut own = gateway("mine");
        own.namespace = Some("team-a".into());
        let reaching = policy("reaching", Some(1), vec![foreign, own]);
        let precedence = Precedence::of([&reaching]);
        assert_eq!(precedence.targets().collect::<Vec<_>>(), [&target("mine")]);
        let (by, refusal) = &precedence.refused()[0];
        assert_eq!(by.name_any(), "reaching");
        assert_eq!(
            refusal.to_string(),
            "targetRefs names AiGateway team-b/gw: a policy configures objects in its own namespace only; create the policy in namespace team-b"
        );
        assert!(
            precedence
                .winner(&PolicyTarget::new(GROUP, "AiGateway", "team-b", "gw"))
                .is_none()
        );
    }

    #[test]
    fn only_the_first_sixteen_references_count() {
        let refs = (0..20).map(|i| gateway(&format!("gw-{i:02}"))).collect();
        let many = policy("many", Some(1), refs);
        assert_eq!(Precedence::of([&many]).targets().count(), MAX_TARGET_REFS);
    }

    fn at(second: i64) -> Time {
        Time(Timestamp::from_second(second).unwrap())
    }

    fn accepted(ok: bool) -> Vec<NewCondition> {
        vec![NewCondition::new(
            types::ACCEPTED,
            ok,
            if ok {
                reasons::ACCEPTED
            } else {
                reasons::CONFLICTED
            },
            "m",
        )]
    }

    fn foreign_entry() -> PolicyAncestorStatus {
        PolicyAncestorStatus {
            ancestor_ref: target("gw").ancestor_ref(),
            controller_name: "example.com/other".into(),
            conditions: vec![Condition {
                type_: "Accepted".into(),
                status: "True".into(),
                reason: "Accepted".into(),
                message: "theirs".into(),
                last_transition_time: at(5),
                observed_generation: Some(9),
            }],
        }
    }

    #[test]
    fn our_entries_replace_ours_only_and_keep_their_transition_time() {
        const US: &str = "example.com/us";
        let existing = vec![foreign_entry()];
        let first = merge_ancestors(
            &existing,
            US,
            vec![(target("gw").ancestor_ref(), accepted(true))],
            Some(1),
            &at(10),
        );
        let first = first.ancestors.expect("our entry is new");
        assert_eq!(
            first[0],
            foreign_entry(),
            "theirs kept as it was, where it was"
        );
        assert_eq!(first[1].controller_name, US);
        assert_eq!(first[1].conditions[0].observed_generation, Some(1));

        let same = merge_ancestors(
            &first,
            US,
            vec![(target("gw").ancestor_ref(), accepted(true))],
            Some(1),
            &at(20),
        );
        assert_eq!(same.ancestors, None, "nothing changed: nothing to write");

        let bumped = merge_ancestors(
            &first,
            US,
            vec![(target("gw").ancestor_ref(), accepted(true))],
            Some(2),
            &at(30),
        )
        .ancestors
        .expect("a new generation is observed");
        assert_eq!(bumped[1].conditions[0].last_transition_time, at(10));
        assert_eq!(bumped[1].conditions[0].observed_generation, Some(2));

        let lost = merge_ancestors(
            &bumped,
            US,
            vec![(target("gw").ancestor_ref(), accepted(false))],
            Some(2),
            &at(40),
        )
        .ancestors
        .unwrap();
        assert_eq!(lost[1].conditions[0].reason, reasons::CONFLICTED);
        assert_eq!(lost[1].conditions[0].last_transition_time, at(40));

        let gone = merge_ancestors(&lost, US, vec![], Some(2), &at(50))
            .ancestors
            .unwrap();
        assert_eq!(
            gone,
            vec![foreign_entry()],
            "a target no longer ours loses our entry"
        );
    }

    #[test]
    fn two_controllers_writing_one_list_in_turn_converge() {
        const US: &str = "example.com/us";
        const THEM: &str = "example.com/other";
        let ours = || vec![(target("gw").ancestor_ref(), accepted(true))];
        let theirs = || vec![(target("their-gw").ancestor_ref(), accepted(true))];
        // We wrote first: our entry leads the list.
        let after_us = merge_ancestors(&[], US, ours(), Some(1), &at(1))
            .ancestors
            .unwrap();
        let after_them = merge_ancestors(&after_us, THEM, theirs(), Some(1), &at(2))
            .ancestors
            .unwrap();
        assert_eq!(
            after_them[0].controller_name, US,
            "our entry keeps its place"
        );
        assert_eq!(
            merge_ancestors(&after_them, US, ours(), Some(1), &at(3)).ancestors,
            None,
            "nothing of ours changed: no write, however the list is ordered"
        );
        assert_eq!(
            merge_ancestors(&after_them, THEM, theirs(), Some(1), &at(4)).ancestors,
            None
        );
    }

    #[test]
    fn conditions_keep_their_place_and_time_through_the_memo() {
        const US: &str = "example.com/us";
        let condition = |type_: &str, ok: bool, message: &str| {
            NewCondition::new(type_, ok, if ok { "Yes" } else { "No" }, message)
        };
        let first = merge_ancestors(
            &[],
            US,
            vec![(
                target("gw").ancestor_ref(),
                vec![
                    condition("ResolvedRefs", true, "r"),
                    condition("Accepted", true, "a"),
                ],
            )],
            Some(1),
            &at(10),
        )
        .ancestors
        .unwrap();
        let memo = AncestorsMemo::of(&first, US);
        let next = memo
            .merge(
                US,
                vec![(
                    target("gw").ancestor_ref(),
                    vec![
                        condition("Extra", true, "e"),
                        condition("Accepted", true, "a, reworded"),
                        condition("ResolvedRefs", false, "r broke"),
                    ],
                )],
                Some(1),
                &at(20),
            )
            .ancestors
            .expect("messages and a status changed");
        let seen: Vec<_> = (next[0].conditions.iter())
            .map(|c| (c.type_.as_str(), c.last_transition_time.clone()))
            .collect();
        assert_eq!(
            seen,
            [
                ("ResolvedRefs", at(20)),
                ("Accepted", at(10)),
                ("Extra", at(20))
            ],
            "kept in place, a held status keeps its time, a new type follows"
        );
        assert_eq!(next[0].conditions[1].message, "a, reworded");
        // Only a message changes: still a write; nothing changes: none.
        let memo = AncestorsMemo::of(&next, US);
        let same = |message: &str| {
            vec![(
                target("gw").ancestor_ref(),
                vec![
                    condition("Extra", true, "e"),
                    condition("Accepted", true, message),
                    condition("ResolvedRefs", false, "r broke"),
                ],
            )]
        };
        assert_eq!(
            memo.merge(US, same("a, reworded"), Some(1), &at(30))
                .ancestors,
            None
        );
        assert!(
            memo.merge(US, same("again"), Some(1), &at(30))
                .ancestors
                .is_some()
        );
    }

    #[test]
    fn an_entry_that_observed_a_newer_generation_is_left_alone() {
        const US: &str = "example.com/us";
        let newer = merge_ancestors(
            &[],
            US,
            vec![(target("gw").ancestor_ref(), accepted(true))],
            Some(5),
            &at(10),
        )
        .ancestors
        .unwrap();
        let stale = merge_ancestors(
            &newer,
            US,
            vec![(target("gw").ancestor_ref(), accepted(false))],
            Some(4),
            &at(20),
        );
        assert_eq!(stale.ancestors, None);
    }

    #[test]
    fn a_full_list_takes_no_more_of_ours_and_says_which_were_left_out() {
        const US: &str = "example.com/us";
        let existing: Vec<PolicyAncestorStatus> = (0..14)
            .map(|i| PolicyAncestorStatus {
                ancestor_ref: target(&format!("theirs-{i:02}")).ancestor_ref(),
                ..foreign_entry()
            })
            .collect();
        let ours = (0..4)
            .map(|i| (target(&format!("ours-{i}")).ancestor_ref(), accepted(true)))
            .collect();
        let merged = merge_ancestors(&existing, US, ours, Some(1), &at(1));
        assert_eq!(merged.ancestors.unwrap().len(), MAX_ANCESTORS);
        let left: Vec<&str> = merged.left_out.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(left, ["ours-2", "ours-3"]);
    }

    #[test]
    fn the_status_has_gateway_apis_field_names() {
        let status = PolicyStatus {
            ancestors: vec![PolicyAncestorStatus {
                ancestor_ref: target("gw").section("gpt-4o").ancestor_ref(),
                controller_name: "example.com/us".into(),
                conditions: vec![],
            }],
        };
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            serde_json::json!({"ancestors": [{
                "ancestorRef": {"group": GROUP, "kind": "AiGateway", "namespace": "team-a", "name": "gw", "sectionName": "gpt-4o"},
                "controllerName": "example.com/us",
                "conditions": [],
            }]})
        );
        let reference: PolicyTargetReference = serde_json::from_value(serde_json::json!(
            {"group": GROUP, "kind": "AiGateway", "name": "gw", "sectionName": "m"}
        ))
        .unwrap();
        assert_eq!(reference.section_name.as_deref(), Some("m"));
    }

    #[test]
    fn a_conflict_names_the_winner_and_what_to_do() {
        let old = policy("old", Some(1), vec![]);
        let condition = conflicted(&old);
        assert_eq!(
            (condition.status.as_str(), condition.reason.as_str()),
            ("False", "Conflicted")
        );
        assert_eq!(
            condition.message,
            "TestPolicy team-a/old is older and applies to this target; delete one of the two or make them target different objects"
        );
    }
}
