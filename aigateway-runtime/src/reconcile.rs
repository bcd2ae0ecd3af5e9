//! One pass of the data flow for one gateway: claim, desired state, apply, observe,
//! status. Plus the class pass (`Accepted` on our classes) and the error policy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aigateway_api::conditions::{NewCondition, reasons, types};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use rand::Rng;
use serde_json::json;
use tracing::{debug, info, warn};

use crate::apply::{Applier, ApplyError, ChildCache};
use crate::attached::{self, AttachedCache, GatewayState};
use crate::class::{Claim, claim};
use crate::implementation::{GatewayImplementation, ImplementationError, Observed, Readiness};
use crate::kind::GatewayKind;
use crate::logging::{LogThrottle, worth_a_line};
use crate::metrics::Metrics;
use crate::names;
use crate::related::{GatewayKey, RelatedCaches, with_reads};
use crate::status::{self, Outcome};

mod own_writes;
pub(crate) use own_writes::OwnWrites;

/// The longest retry delay of a failing reconcile.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// How often a gateway whose child names are taken looks again.
const NAME_CONFLICT_RECHECK: Duration = Duration::from_secs(30);

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
        "writing {what} of {gateway} failed: {}",
        crate::describe_kube_error(source)
    )]
    Write {
        /// What was written.
        what: &'static str,
        /// `namespace/name` or name of the object.
        gateway: String,
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
            ReconcileError::Write { what, gateway, .. } => FailedStep::Write {
                what,
                object: gateway.clone(),
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
        object: String,
    },
}

/// Our last writes of the gateways and classes of kind `K` (see [`OwnWrites`]).
pub(crate) struct KindWrites<K: GatewayKind> {
    pub(crate) gateways: OwnWrites<K::Gateway>,
    pub(crate) classes: OwnWrites<K::Class>,
}

impl<K: GatewayKind> Default for KindWrites<K> {
    fn default() -> Self {
        Self {
            gateways: OwnWrites::default(),
            classes: OwnWrites::default(),
        }
    }
}

/// The failures of one gateway in a row at the same step.
#[derive(Debug)]
pub(crate) struct Streak {
    step: FailedStep,
    count: u32,
}

/// Everything the reconcile functions share: one value per operator.
pub struct Shared<K: GatewayKind> {
    pub(crate) client: Client,
    pub(crate) implementation: Arc<dyn GatewayImplementation<K>>,
    pub(crate) controller: String,
    pub(crate) field_manager: String,
    pub(crate) controller_id: String,
    pub(crate) classes: Store<K::Class>,
    pub(crate) gateways: Store<K::Gateway>,
    pub(crate) children: Vec<ChildCache>,
    pub(crate) related: Arc<RelatedCaches>,
    pub(crate) recorder: Recorder,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) failures: Mutex<HashMap<ObjectRef<K::Gateway>, Streak>>,
    /// Failures in a row of each class (by name), and when the last one was.
    pub(crate) class_failures: Mutex<HashMap<String, (u32, std::time::Instant)>>,
    /// What our last write of each gateway and class returned, while the cache lags
    /// behind it.
    pub(crate) own_writes: KindWrites<K>,
    pub(crate) owned_condition_types: Vec<String>,
    /// The attached kind the implementation declared, if any.
    pub(crate) attached: Option<Arc<AttachedCache>>,
    /// Keeps failed-reconcile warnings to a few lines a second (see [`LogThrottle`]).
    pub(crate) failure_log: LogThrottle,
}

pub(crate) fn object_name<R: Resource>(object: &R) -> String {
    match object.meta().namespace.as_deref() {
        Some(ns) => format!("{ns}/{}", object.meta().name.as_deref().unwrap_or_default()),
        None => object.meta().name.clone().unwrap_or_default(),
    }
}

impl<K: GatewayKind> Shared<K> {
    pub(crate) fn patch_params(&self) -> PatchParams {
        PatchParams {
            field_manager: Some(self.field_manager.clone()),
            ..Default::default()
        }
    }

    fn applier(&self) -> Applier<'_> {
        Applier {
            client: &self.client,
            field_manager: &self.field_manager,
            controller_id: &self.controller_id,
            caches: &self.children,
        }
    }

    /// Keeps what a write of `before` returned, for the reconciles that start before
    /// the cache sees it (see [`OwnWrites`]).
    pub(crate) fn remember(&self, before: &K::Gateway, written: K::Gateway) -> Arc<K::Gateway> {
        self.own_writes
            .gateways
            .record(before, written, &self.gateways)
    }

    /// Removes everything of ours from a gateway that is no longer ours.
    async fn release(&self, gateway: &Arc<K::Gateway>) -> Result<(), ReconcileError> {
        let uid = gateway.meta().uid.clone().unwrap_or_default();
        let deleted =
            self.applier()
                .delete_all(&uid)
                .await
                .map_err(|source| ReconcileError::Apply {
                    gateway: object_name(gateway.as_ref()),
                    source,
                })?;
        if !deleted.is_empty() {
            info!(gateway = %object_name(gateway.as_ref()), children = deleted.len(), "gateway is no longer ours: deleted its children");
        }
        // Other controllers use the same condition types: remove them only when the
        // gateway records us as their writer.
        let mut gateway = gateway.clone();
        if self.owns_conditions(&gateway)
            && let Some(list) = status::without_conditions(
                K::gateway_conditions(&gateway),
                &self.owned_condition_types,
            )
        {
            gateway = self.patch_status(&gateway, &list, None).await?;
        }
        attached::clear_gateway(self, &gateway).await?;
        if self.implementation.cleanup().is_some()
            && gateway.finalizers().iter().any(|f| f == names::FINALIZER)
        {
            self.cleanup(&gateway)
                .await
                .map_err(|source| ReconcileError::Transient {
                    gateway: object_name(gateway.as_ref()),
                    source,
                })?;
        }
        self.set_marks(&gateway, false, false).await?;
        Ok(())
    }

    /// The implementation's desired state, re-run while it read content not loaded yet;
    /// what it read is recorded for the gateway.
    async fn desired_state(
        &self,
        gateway: &K::Gateway,
    ) -> Result<crate::DesiredState, ImplementationError> {
        let implementation = &self.implementation;
        with_reads(
            &self.related,
            self.attached.as_ref(),
            &GatewayKey::of(gateway),
            Box::new(move |ctx| {
                Box::pin(async move { implementation.desired_state(gateway, &ctx).await })
            }),
        )
        .await
    }

    /// The implementation's cleanup (if it declares one), with the same related reads as
    /// desired state.
    async fn cleanup(&self, gateway: &K::Gateway) -> Result<(), ImplementationError> {
        let Some(implementation) = self.implementation.cleanup() else {
            return Ok(());
        };
        with_reads(
            &self.related,
            self.attached.as_ref(),
            &GatewayKey::of(gateway),
            Box::new(move |ctx| {
                Box::pin(async move { implementation.cleanup(gateway, &ctx).await })
            }),
        )
        .await
    }

    /// Whether any cached gateway is ours through class `name`. Every gateway event
    /// re-runs its class, so this stops at the first one: counting them all made each
    /// event cost O(N) (a quarter of the operator's CPU at 10,000 gateways).
    fn class_in_use(&self, name: &str) -> bool {
        let classes = self.classes.state();
        self.gateways
            .find(|g| {
                matches!(
                    claim::<K>(K::class_name(g), &classes, &self.controller),
                    Claim::Ours { class } if class.name == name
                )
            })
            .is_some()
    }

    /// Whether the gateway's conditions were written by us (see
    /// [`names::CONDITIONS_OWNER_ANNOTATION`]).
    fn owns_conditions(&self, gateway: &K::Gateway) -> bool {
        gateway
            .annotations()
            .get(names::CONDITIONS_OWNER_ANNOTATION)
            .is_some_and(|owner| *owner == self.controller)
    }

    /// Sets or clears our marks on the gateway, writing only when that changes
    /// something: the conditions-owner annotation (`owner`) and our finalizer
    /// (`finalizer`). Another controller's owner annotation is never removed. Returns
    /// the gateway as it is now (as written, when it was).
    async fn set_marks(
        &self,
        gateway: &Arc<K::Gateway>,
        owner: bool,
        finalizer: bool,
    ) -> Result<Arc<K::Gateway>, ReconcileError> {
        let mut metadata = serde_json::Map::new();
        if let Some(list) = finalizers_with(gateway.finalizers(), names::FINALIZER, finalizer) {
            metadata.insert("finalizers".into(), json!(list));
        }
        let recorded = gateway
            .annotations()
            .get(names::CONDITIONS_OWNER_ANNOTATION);
        if owner && recorded != Some(&self.controller) {
            metadata.insert(
                "annotations".into(),
                json!({ names::CONDITIONS_OWNER_ANNOTATION: self.controller }),
            );
        } else if !owner && recorded == Some(&self.controller) {
            metadata.insert(
                "annotations".into(),
                json!({ names::CONDITIONS_OWNER_ANNOTATION: null }),
            );
        }
        if metadata.is_empty() {
            return Ok(gateway.clone());
        }
        metadata.insert(
            "resourceVersion".into(),
            json!(gateway.meta().resource_version),
        );
        let api: Api<K::Gateway> = Api::namespaced(
            self.client.clone(),
            gateway.meta().namespace.as_deref().unwrap_or_default(),
        );
        let written = api
            .patch(
                &gateway.name_any(),
                &self.patch_params(),
                &Patch::Merge(&json!({ "metadata": metadata })),
            )
            .await
            .map_err(|source| ReconcileError::Write {
                what: "metadata",
                gateway: object_name(gateway.as_ref()),
                source,
            })?;
        Ok(self.remember(gateway, written))
    }
}

/// `finalizers` with `finalizer` present or absent; `None` when that changes nothing.
fn finalizers_with(finalizers: &[String], finalizer: &str, present: bool) -> Option<Vec<String>> {
    if finalizers.iter().any(|f| f == finalizer) == present {
        return None;
    }
    let mut list: Vec<String> = finalizers
        .iter()
        .filter(|f| *f != finalizer)
        .cloned()
        .collect();
    if present {
        list.push(finalizer.to_owned());
    }
    Some(list)
}

/// Reconciles one gateway.
pub async fn reconcile<K: GatewayKind>(
    gateway: Arc<K::Gateway>,
    shared: Arc<Shared<K>>,
) -> Result<Action, ReconcileError> {
    let _timer = shared.metrics.reconcile_started();
    // Our own last write of the gateway, when the cache has not seen it yet: patching
    // from the cached version would conflict with ourselves.
    let gateway = shared.own_writes.gateways.freshest(gateway);
    let name = object_name(gateway.as_ref());
    let claim = claim::<K>(
        K::class_name(&gateway),
        &shared.classes.state(),
        &shared.controller,
    );

    if gateway.meta().deletion_timestamp.is_some() {
        if gateway.finalizers().iter().any(|f| f == names::FINALIZER) {
            // Without a cleanup (e.g. after an upgrade that dropped it) the finalizer
            // still goes, or the gateway would stay Terminating forever.
            shared
                .cleanup(&gateway)
                .await
                .map_err(|source| ReconcileError::Transient {
                    gateway: name.clone(),
                    source,
                })?;
            shared
                .set_marks(&gateway, shared.owns_conditions(&gateway), false)
                .await?;
        }
        return Ok(Action::await_change());
    }

    let class = match claim {
        Claim::Ours { class } => class,
        Claim::Ambiguous(message) => {
            warn!(gateway = %name, "default class is ambiguous, leaving the gateway alone: {message}");
            not_ours(&shared, &gateway);
            return Ok(Action::await_change());
        }
        Claim::NotOurs(reason) if reason.taken_by_another() => {
            debug!(gateway = %name, ?reason, "another controller has it");
            shared.release(&gateway).await?;
            not_ours(&shared, &gateway);
            return Ok(Action::await_change());
        }
        Claim::NotOurs(reason) => {
            // Nobody has it: whatever we deployed stays until a class takes it.
            debug!(gateway = %name, ?reason, "not ours, leaving it as it is");
            not_ours(&shared, &gateway);
            return Ok(Action::await_change());
        }
    };

    // Recorded before our first status write, so that a crash in between never leaves
    // conditions of ours that we would not recognise. The rest of the pass works from
    // the gateway as marked, whose resourceVersion the status write is guarded by.
    let gateway = shared
        .set_marks(&gateway, true, shared.implementation.cleanup().is_some())
        .await?;

    let generation = gateway.meta().generation;
    let aliases = shared.implementation.condition_aliases();
    let current = K::gateway_conditions(&gateway);
    let desired = match shared.desired_state(&gateway).await {
        Ok(desired) => desired,
        Err(source @ ImplementationError::Transient(_)) => {
            return Err(ReconcileError::Transient {
                gateway: name,
                source,
            });
        }
        Err(ImplementationError::InvalidSpec { reason, message }) => {
            let outcome = Outcome::InvalidSpec {
                class,
                reason,
                message,
            };
            return write_final(&shared, &gateway, &outcome).await;
        }
        Err(ImplementationError::UnresolvedRef { reason, message }) => {
            let outcome = Outcome::UnresolvedRef {
                class,
                reason,
                message,
            };
            return write_final(&shared, &gateway, &outcome).await;
        }
    };

    let children = {
        let mut ids: Vec<String> = desired
            .objects
            .iter()
            .map(|o| {
                format!(
                    "{} {}",
                    o.types.as_ref().map(|t| t.kind.as_str()).unwrap_or("?"),
                    o.metadata.name.as_deref().unwrap_or("?")
                )
            })
            .collect();
        ids.sort();
        ids.join(", ")
    };
    let applied = match shared
        .applier()
        .apply(gateway.as_ref(), desired.objects)
        .await
    {
        Ok(applied) => applied,
        Err(ApplyError::NameConflict(conflicts)) => {
            let message = ApplyError::NameConflict(conflicts).to_string();
            warn!(gateway = %name, "not applying anything: {message}");
            let outcome = Outcome::NameConflict { class, message };
            let wanted = status::conditions_for(&outcome, &shared.controller);
            let conditions =
                status::merge_conditions(current, &wanted, &aliases, generation, &status::now());
            shared
                .write_status(&gateway, conditions, desired.url.as_deref())
                .await?;
            attached::sync(
                &shared,
                &gateway,
                &desired.attached,
                GatewayState::NotProgrammed(outcome.problem().unwrap_or_default()),
            )
            .await?;
            forget_failures(&shared, &gateway);
            // The conflicting object is not cached (it lacks our labels), so its removal
            // triggers nothing: look again now and then.
            return Ok(Action::requeue(NAME_CONFLICT_RECHECK));
        }
        Err(source) => {
            let outcome = Outcome::ApplyFailed {
                class,
                message: source.to_string(),
            };
            let wanted = status::conditions_for(&outcome, &shared.controller);
            let conditions =
                status::merge_conditions(current, &wanted, &aliases, generation, &status::now());
            // Best effort: the apply error is what gets retried and reported.
            let _ = shared
                .write_status(&gateway, conditions, desired.url.as_deref())
                .await;
            return Err(ReconcileError::Apply {
                gateway: name,
                source,
            });
        }
    };

    // Children written this round are judged by what the API server returned (new
    // generation, old status), not by the cache that has not seen the write yet.
    let uid = gateway.meta().uid.clone().unwrap_or_default();
    let same = |a: &DynamicObject, b: &DynamicObject| {
        a.types == b.types
            && a.metadata.name == b.metadata.name
            && a.metadata.namespace == b.metadata.namespace
    };
    let mut live: Vec<Arc<DynamicObject>> = shared
        .applier()
        .owned_children(&uid)
        .into_iter()
        .map(|(_, o)| o)
        .filter(|cached| !applied.written.iter().any(|w| same(w, cached)))
        .collect();
    live.extend(applied.written.into_iter().map(Arc::new));
    let observed = Observed { children: live };
    let readiness = shared.implementation.readiness(&gateway, &observed);
    let gateway_state = match &readiness {
        Readiness::Ready(_) => GatewayState::Ready,
        Readiness::NotReady { message, .. } => GatewayState::NotReady(message),
    };
    attached::sync(&shared, &gateway, &desired.attached, gateway_state).await?;
    let outcome = Outcome::Programmed {
        class,
        children,
        problems: desired.problems,
        warnings: desired.warnings,
        readiness,
    };
    let wanted = status::conditions_for(&outcome, &shared.controller);
    let conditions =
        status::merge_conditions(current, &wanted, &aliases, generation, &status::now());
    shared
        .write_status(&gateway, conditions, desired.url.as_deref())
        .await?;
    forget_failures(&shared, &gateway);
    Ok(Action::await_change())
}

/// Writes the conditions of an outcome that only a change can alter (nothing to retry).
async fn write_final<K: GatewayKind>(
    shared: &Shared<K>,
    gateway: &K::Gateway,
    outcome: &Outcome,
) -> Result<Action, ReconcileError> {
    let wanted = status::conditions_for(outcome, &shared.controller);
    let conditions = status::merge_conditions(
        K::gateway_conditions(gateway),
        &wanted,
        &shared.implementation.condition_aliases(),
        gateway.meta().generation,
        &status::now(),
    );
    shared
        .write_status(gateway, conditions, K::gateway_url(gateway))
        .await?;
    attached::sync(
        shared,
        gateway,
        &Default::default(),
        GatewayState::NotProgrammed(outcome.problem().unwrap_or_default()),
    )
    .await?;
    forget_failures(shared, gateway);
    Ok(Action::await_change())
}

/// Forgets a gateway that is not ours: no backoff to keep, no reads whose changes
/// should re-run it (a class change does).
fn not_ours<K: GatewayKind>(shared: &Shared<K>, gateway: &K::Gateway) {
    forget_failures(shared, gateway);
    shared.related.forget(&GatewayKey::of(gateway));
}

fn forget_failures<K: GatewayKind>(shared: &Shared<K>, gateway: &K::Gateway) {
    shared
        .failures
        .lock()
        .expect("failure map lock")
        .remove(&ObjectRef::from_obj(gateway));
}

/// Backoff for a failed reconcile, per gateway: about 1 s doubling to a 5 min cap, with
/// jitter. A conflict (409: someone else wrote the gateway since our cache saw it) is
/// usually over once the watch delivers the newer version, so it starts at 200 ms; a
/// persistent one (another writer racing us, a stuck watch) backs off the same way.
///
/// The delay doubles only while the *same step* keeps failing (the same child, the same
/// write, desired state). A failure at another step means the step that failed before
/// now succeeds: the gateway is getting somewhere, and its schedule starts over. So a
/// step that fails for good backs off exponentially, while independent failures of
/// different writes (a flaky API server) each cost one short retry instead of adding up
/// to minutes. A success resets the schedule too.
pub fn error_policy<K: GatewayKind>(
    gateway: Arc<K::Gateway>,
    error: &ReconcileError,
    shared: Arc<Shared<K>>,
) -> Action {
    shared.metrics.reconcile_failed(error.metric_reason());
    let attempts = failed_at(
        &mut shared.failures.lock().expect("failure map lock"),
        ObjectRef::from_obj(gateway.as_ref()),
        error.step(),
    );
    let delay = if error.is_conflict() {
        conflict_backoff(attempts)
    } else {
        backoff(attempts)
    };
    log_failure(
        &shared.failure_log,
        error,
        attempts,
        delay,
        "reconcile failed",
    );
    Action::requeue(delay)
}

/// A failed reconcile as a warning when it is the object's 1st, 4th, 16th, ... failure in
/// a row and `throttle` admits a line; as a debug line otherwise. During an outage every
/// gateway fails at once and at every retry: the warnings stay a few a second.
pub(crate) fn log_failure(
    throttle: &LogThrottle,
    error: &ReconcileError,
    attempts: u32,
    delay: Duration,
    message: &'static str,
) {
    let retry_in_ms = delay.as_millis() as u64;
    match worth_a_line(attempts).then(|| throttle.admit()).flatten() {
        Some(held_back) => warn!(%error, attempts, retry_in_ms, held_back, "{message}"),
        None => debug!(%error, attempts, retry_in_ms, "{message}"),
    }
}

/// Records a failure of `key` at `step`; returns how many times in a row `key` has now
/// failed at that step.
fn failed_at<Key: std::hash::Hash + Eq>(
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

/// How often a class being deleted looks again for the gateways that hold it.
const CLASS_RECHECK: Duration = Duration::from_secs(10);

/// On our classes: `Accepted=True`, and our finalizer while gateways use the class, so
/// that deleting a class in use leaves its gateways served until they move or go. Never
/// touches another controller's class.
pub async fn reconcile_class<K: GatewayKind>(
    class: Arc<K::Class>,
    shared: Arc<Shared<K>>,
) -> Result<Action, ReconcileError> {
    if K::controller(&class) != shared.controller {
        return Ok(Action::await_change());
    }
    // Every gateway change re-runs our classes, usually before the cache has seen our
    // last write of the class: patching from the cached version would conflict with
    // ourselves.
    let mut class = shared.own_writes.classes.freshest(class);
    let in_use = shared.class_in_use(&class.name_any());
    // The API server refuses a new finalizer on an object being deleted: then ours can
    // only stay or go.
    let holds = class
        .finalizers()
        .iter()
        .any(|f| f == names::CLASS_FINALIZER);
    let keep = in_use && (holds || class.meta().deletion_timestamp.is_none());
    if let Some(list) = finalizers_with(class.finalizers(), names::CLASS_FINALIZER, keep) {
        let patch = json!({"metadata": {"finalizers": list, "resourceVersion": class.meta().resource_version}});
        let written = Api::<K::Class>::all(shared.client.clone())
            .patch(
                &class.name_any(),
                &shared.patch_params(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(|source| ReconcileError::Write {
                what: "class finalizers",
                gateway: class.name_any(),
                source,
            })?;
        class = shared
            .own_writes
            .classes
            .record(&class, written, &shared.classes);
    }
    if class.meta().deletion_timestamp.is_some() {
        return Ok(if in_use {
            Action::requeue(CLASS_RECHECK)
        } else {
            Action::await_change()
        });
    }
    let accepted = NewCondition::new(
        types::ACCEPTED,
        true,
        reasons::ACCEPTED,
        format!("handled by {}", shared.controller),
    );
    let Some(list) = status::merge_conditions(
        K::class_conditions(&class),
        &[accepted],
        &[],
        class.meta().generation,
        &status::now(),
    ) else {
        return Ok(Action::await_change());
    };
    shared.patch_class_status(&class, &list).await?;
    info!(class = %class.name_any(), "accepted class");
    Ok(Action::await_change())
}

/// Error policy of the class pass.
/// Error policy of the class pass: the same schedule as gateways (1 s doubling to 5 min),
/// per class. A class whose last failure is older than the cap starts over, so an old
/// failure does not slow a new one.
pub fn class_error_policy<K: GatewayKind>(
    class: Arc<K::Class>,
    error: &ReconcileError,
    shared: Arc<Shared<K>>,
) -> Action {
    shared.metrics.reconcile_failed(error.metric_reason());
    let attempts = {
        let mut failures = shared
            .class_failures
            .lock()
            .expect("class failure map lock");
        let now = std::time::Instant::now();
        let entry = failures.entry(class.name_any()).or_insert((0, now));
        if now.duration_since(entry.1) > MAX_BACKOFF {
            entry.0 = 0;
        }
        *entry = (entry.0 + 1, now);
        entry.0
    };
    let delay = backoff(attempts);
    log_failure(
        &shared.failure_log,
        error,
        attempts,
        delay,
        "class reconcile failed",
    );
    Action::requeue(delay)
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
            object: "ns/gw".into(),
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
