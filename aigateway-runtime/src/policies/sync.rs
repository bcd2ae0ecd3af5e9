//! The policies' own controller: one writer per policy, which computes every entry of
//! ours in its `status.ancestors` from the caches (rules) and writes the list when it
//! differs; and [`record`], where a gateway pass leaves its decisions for it.
//!
//! One writer per policy, not one per target: a policy naming two gateways is written by
//! one reconcile that knows both entries (two gateway passes writing in turn would each
//! need the other's entry, and race for the list).

use std::collections::BTreeMap;
use std::sync::Arc;

use aigateway_api::NamespacedName;
use kube::Resource;
use kube::api::{Api, Patch};
use kube::runtime::reflector::ObjectRef;
use serde_json::json;
use tracing::debug;

use crate::attached::{AttachedDecision, PolicyDecision, PolicyRef};
use crate::class::{Claim, claim};
use crate::kind::GatewayKind;
use crate::policies::CachedPolicy;
use crate::policies::index::{
    DecidedOn, MAX_REFUSED_WRITES, PolicyCache, TargetObject, key_of, locked, target_refs,
};
use crate::policies::rules::{Entry, TargetState, entry, foreign};
use crate::retry::{ReconcileError, backoff, conflict_backoff};
use crate::shared::Shared;
use crate::status;
use crate::work_queue::Rerun;

/// What a policy reconcile works with: the kind's shared state and the policy kind's
/// cache.
pub(crate) struct PolicyContext<K: GatewayKind> {
    pub(crate) shared: Arc<Shared<K>>,
    pub(crate) cache: Arc<PolicyCache>,
}

/// Records what the pass of `gateway` (ours) decided about the policies in effect on
/// it and on the objects attached to it (`attached`: the pass's decision on each); a
/// policy it made no decision about is accepted, and a policy on an attached object the
/// gateway does not serve (not admitted, or refused) is refused with the object's reason.
pub(crate) fn record<K: GatewayKind>(
    shared: &Shared<K>,
    gateway: &K::Gateway,
    decisions: &BTreeMap<PolicyRef, PolicyDecision>,
    attached: Option<&BTreeMap<NamespacedName, AttachedDecision>>,
) {
    let decided = |cache: &PolicyCache, key: &NamespacedName| {
        decisions
            .get(&PolicyRef {
                group: cache.resource.group.clone(),
                kind: cache.resource.kind.clone(),
                namespace: key.namespace.clone(),
                name: key.name.clone(),
            })
            .cloned()
    };
    let target = TargetObject::of_object(gateway);
    let on = DecidedOn::Gateway(target.key.clone());
    for cache in shared.policies.iter() {
        let in_effect = cache.in_effect_on(&target);
        cache.record(&target, &on, &in_effect, |key| decided(cache, key));
    }
    let (Some(kind), Some(attached)) = (&shared.attached, attached) else {
        return;
    };
    for (object, decision) in attached {
        let target = TargetObject {
            group: kind.resource.group.clone(),
            kind: kind.resource.kind.clone(),
            key: object.clone(),
        };
        let on = DecidedOn::Attached(object.clone());
        let not_served = match decision {
            AttachedDecision::Refuse { reason, message } => Some(PolicyDecision::Refuse {
                reason: reason.clone(),
                message: format!(
                    "{} {}/{} is not served by {} {}/{}: {message}",
                    target.kind,
                    object.namespace,
                    object.name,
                    K::Gateway::kind(&()),
                    gateway.meta().namespace.as_deref().unwrap_or_default(),
                    gateway.meta().name.as_deref().unwrap_or_default(),
                ),
            }),
            _ => None,
        };
        for cache in shared.policies.iter() {
            let in_effect = cache.in_effect_on(&target);
            cache.record(&target, &on, &in_effect, |key| {
                not_served.clone().or_else(|| decided(cache, key))
            });
        }
    }
}

/// `gateway` is not ours (any more): the policies naming it, or an object attached to
/// it, look again, so that our entries go even when letting go of it wrote nothing that
/// a watch would report.
pub(crate) fn not_ours<K: GatewayKind>(shared: &Shared<K>, gateway: &K::Gateway) {
    let attached: Vec<TargetObject> = (shared.attached.iter())
        .flat_map(|kind| {
            (kind.attached_to(&key_of(gateway)).into_iter()).map(|object| TargetObject {
                group: kind.resource.group.clone(),
                kind: kind.resource.kind.clone(),
                key: key_of(object.as_ref()),
            })
        })
        .collect();
    for cache in shared.policies.iter() {
        let naming = (cache.naming(gateway).into_iter()).chain(
            attached
                .iter()
                .flat_map(|object| cache.naming_target(object)),
        );
        for key in naming {
            cache.trigger(&key);
        }
    }
}

/// The gateway (ours or not) that `target`, an object of the attached kind, is attached
/// to, if it exists.
fn gateway_of_attached<K: GatewayKind>(
    shared: &Shared<K>,
    target: &aigateway_api::policy::PolicyTarget,
) -> Result<Arc<K::Gateway>, TargetState> {
    let Some(kind) = &shared.attached else {
        return Err(TargetState::NotOurs);
    };
    let key = NamespacedName {
        namespace: target.namespace.clone(),
        name: target.name.clone(),
    };
    if kind.get(&key).is_none() {
        return Err(TargetState::Missing);
    }
    let gateway = kind.gateway_of(&key).ok_or(TargetState::NotOurs)?;
    shared
        .gateways
        .get(&ObjectRef::new(&gateway.name).within(&gateway.namespace))
        .filter(|g| g.meta().deletion_timestamp.is_none())
        .ok_or(TargetState::NotOurs)
}

/// Where `target` (a gateway of kind `K`, or an object attached to one: `on`) stands
/// for `policy`; `true` when its gateway is ours.
fn standing<K: GatewayKind>(
    shared: &Shared<K>,
    cache: &PolicyCache,
    policy: &NamespacedName,
    generation: Option<i64>,
    target: &aigateway_api::policy::PolicyTarget,
    on: &DecidedOn,
) -> (TargetState, bool) {
    let gateway = match on {
        DecidedOn::Gateway(_) => shared
            .gateways
            .get(&ObjectRef::new(&target.name).within(&target.namespace))
            .filter(|g| g.meta().deletion_timestamp.is_none())
            .ok_or(TargetState::Missing),
        DecidedOn::Attached(_) => gateway_of_attached(shared, target),
    };
    let gateway = match gateway {
        Ok(gateway) => gateway,
        Err(state) => return (state, false),
    };
    match claim::<K>(
        K::class_name(&gateway),
        &shared.classes.state(),
        &shared.controller,
    ) {
        Claim::Ours { .. } => {}
        Claim::Ambiguous(_) | Claim::NotOurs(_) => return (TargetState::NotOurs, false),
    }
    let winner = locked(&cache.index).winner(target).cloned();
    match winner {
        Some(winner) if winner != *policy => (TargetState::LosesTo(winner), true),
        _ => {
            let decision = cache
                .recorded(policy, on)
                .filter(|recorded| recorded.generation == generation)
                .map(|recorded| recorded.decision);
            (TargetState::InEffect(decision), true)
        }
    }
}

/// One policy (`key`, if it is still cached): every entry of ours, from the caches;
/// written when the list differs. Nothing is written while a gateway the policy is in
/// effect on has not decided on this generation of it yet (its pass records, then asks
/// again): one write, not two. After a failure, when to try again.
pub(crate) async fn reconcile<K: GatewayKind>(
    key: NamespacedName,
    ctx: Arc<PolicyContext<K>>,
) -> Rerun {
    let Some(policy) = ctx.cache.get(&key) else {
        // Deleted since it was queued.
        return Rerun::OnChange;
    };
    let policy = ctx.cache.freshest(policy);
    match write_status(&policy, &ctx).await {
        Ok(()) => {
            succeeded(&ctx.cache, &policy);
            Rerun::OnChange
        }
        Err(error) => error_policy(&policy, &error, &ctx),
    }
}

async fn write_status<K: GatewayKind>(
    policy: &CachedPolicy,
    ctx: &PolicyContext<K>,
) -> Result<(), ReconcileError> {
    let (shared, cache) = (&ctx.shared, &ctx.cache);
    if policy.metadata.deletion_timestamp.is_some() {
        return Ok(());
    }
    let key = key_of(policy);
    let version = policy.metadata.resource_version.clone().unwrap_or_default();
    if locked(&cache.refused_writes).get(&key) == Some(&version) {
        return Ok(());
    }
    let generation = policy.metadata.generation;
    let (group, kind) = (K::Gateway::group(&()), K::Gateway::kind(&()));
    let mut ours = Vec::new();
    let mut our_targets = Vec::new();
    for reference in target_refs(policy) {
        let target = match reference.target_in(&key.namespace) {
            Ok(target) => target,
            Err(refused) => {
                let mut ancestor = reference.clone();
                ancestor.namespace = Some(refused.namespace.clone());
                let ancestor = aigateway_api::policy::ParentReference {
                    group: Some(ancestor.group),
                    kind: Some(ancestor.kind),
                    namespace: ancestor.namespace,
                    name: ancestor.name,
                    section_name: ancestor.section_name,
                    port: None,
                };
                ours.push((ancestor, foreign(&refused)));
                continue;
            }
        };
        let object = NamespacedName {
            namespace: target.namespace.clone(),
            name: target.name.clone(),
        };
        let on = if target.group == group && target.kind == kind {
            DecidedOn::Gateway(object)
        } else if (shared.attached.as_ref()).is_some_and(|a| a.is_kind(&target.group, &target.kind))
        {
            DecidedOn::Attached(object)
        } else {
            // Another kind's target is that kind's business (or nobody's).
            continue;
        };
        let (state, is_ours) = standing(shared, cache, &key, generation, &target, &on);
        if is_ours {
            our_targets.push(on);
        }
        match entry(&cache.resource.kind, &target, state) {
            Entry::Conditions(conditions) => ours.push((target.ancestor_ref(), conditions)),
            Entry::None => {}
            Entry::Pending => return Ok(()),
        }
    }
    cache.forget_decisions(&key, &our_targets);
    let merged = policy.merge_status(&shared.controller, ours, generation, &status::now());
    // Not a shape we can merge into (a looser CRD schema): writing would replace other
    // controllers' entries.
    let Some(merged) = merged else {
        debug!(policy = %key.name, namespace = %key.namespace, "status.ancestors does not parse; not written");
        return Ok(());
    };
    if !merged.left_out.is_empty() {
        debug!(policy = %key.name, namespace = %key.namespace, left_out = merged.left_out.len(), "status.ancestors is full");
    }
    let Some(ancestors) = merged.ancestors else {
        return Ok(());
    };
    let api: Api<CachedPolicy> =
        Api::namespaced_with(shared.client.clone(), &key.namespace, &cache.resource);
    let patch = json!({
        "metadata": {"resourceVersion": version},
        "status": {"ancestors": ancestors},
    });
    let written = api
        .patch_status(&key.name, &shared.status_params(), &Patch::Merge(&patch))
        .await;
    match written {
        Ok(mut written) => {
            written.keep_memo(&shared.controller);
            cache.remember(policy, written);
            locked(&cache.refused_writes).remove(&key);
            debug!(policy = %key.name, namespace = %key.namespace, "wrote policy status");
            Ok(())
        }
        Err(source) => {
            if matches!(&source, kube::Error::Api(status) if status.code == 422) {
                // The object cannot hold what we write until its owner changes it (an
                // annotation-heavy object at its size limit, say); that change re-runs it.
                let mut refused = locked(&cache.refused_writes);
                if refused.len() >= MAX_REFUSED_WRITES {
                    refused.clear();
                }
                refused.insert(key, version);
            }
            Err(ReconcileError::Write {
                what: "status",
                object: object_name(policy, cache),
                source,
            })
        }
    }
}

/// Backoff for a failed policy reconcile: soon after a conflict (someone else wrote the
/// list in between), growing with each failure in a row otherwise, and never again for
/// a write refused as invalid until the policy changes (see `reconcile`).
fn error_policy<K: GatewayKind>(
    policy: &CachedPolicy,
    error: &ReconcileError,
    ctx: &PolicyContext<K>,
) -> Rerun {
    let shared = &ctx.shared;
    shared.metrics.reconcile_failed(error.metric_reason());
    crate::logging::warn_about(
        &shared.warnings,
        &object_name(policy, &ctx.cache),
        error,
        "could not write a policy's status",
    );
    if matches!(error, ReconcileError::Write { source: kube::Error::Api(status), .. } if status.code == 422)
    {
        return Rerun::OnChange;
    }
    let failures = {
        let mut streaks = locked(&ctx.cache.failures);
        let count = streaks.entry(key_of(policy)).or_insert(0);
        *count = count.saturating_add(1);
        *count
    };
    if error.is_conflict() {
        Rerun::After(conflict_backoff(failures))
    } else {
        Rerun::After(backoff(failures))
    }
}

/// Forgets the failure streak of a policy written (or found unchanged).
fn succeeded(cache: &PolicyCache, policy: &CachedPolicy) {
    let mut streaks = locked(&cache.failures);
    if !streaks.is_empty() {
        streaks.remove(&key_of(policy));
    }
}

/// How logs and errors name `policy`.
fn object_name(policy: &CachedPolicy, cache: &PolicyCache) -> crate::logging::ObjectName {
    crate::logging::ObjectName {
        kind: cache.resource.kind.clone(),
        namespace: policy.metadata.namespace.clone(),
        name: policy.metadata.name.clone().unwrap_or_default(),
    }
}
