//! One pass of the data flow for one gateway: claim, desired state, apply, observe,
//! status. Plus the class pass (`Accepted` on our classes) and the error policy.
//!
//! The pass sits above everything it uses: the shared state (`shared`), the retry
//! policy (`retry`), the caches, the trait, the status and attached-object writes; only
//! the wiring (`controllers`, `operator`) sits above it. Running `desired_state` over
//! recorded reads (`with_reads`) is here too: it is the pass's use of the related caches.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aigateway_api::NamespacedName;
use aigateway_api::conditions::{NewCondition, reasons, types};
use kube::api::{Api, DynamicObject, Patch, TypeMeta};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{debug, info};

use crate::apply::{ApplyError, ChildId};
use crate::attached::AttachedDecision;
use crate::attached::{self, GatewayState};
use crate::children::CachedChild;
use crate::class::{Claim, ClassInUse, claim};
use crate::implementation::{ImplementationError, Observed, Readiness, RefProblem};
use crate::kind::GatewayKind;
use crate::logging::{ObjectName, warn_about};
use crate::names;
use crate::related::{CONTENT_ROUNDS, Context, GatewayKey, RelatedError, RelatedView};
use std::collections::HashSet;

use futures::future::BoxFuture;

use crate::attached::{AttachedView, PolicyDecision, PolicyRef};
use crate::children::ChildKindState;
use crate::policies::{self, PolicyCache};
use crate::retry::{MAX_BACKOFF, ReconcileError, backoff, conflict_backoff, failed_at};
use crate::shared::{Shared, object_name};
use crate::status::{self, Outcome};

/// How often a gateway whose child names are taken looks again.
const NAME_CONFLICT_RECHECK: Duration = Duration::from_secs(30);

impl<K: GatewayKind> Shared<K> {
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
        // Other controllers use the same condition types: remove only those the API
        // server records as written by us.
        let mut gateway = gateway.clone();
        let ours = self
            .owned_conditions(gateway.meta())
            .among(&self.owned_condition_types);
        if let Some(list) = status::without_conditions(K::gateway_conditions(&gateway), &ours) {
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
        self.set_marks(&gateway, false, Legacy::Release).await?;
        Ok(())
    }

    /// The implementation's desired state, re-run while it read content not loaded yet;
    /// what it read is recorded for the gateway. It sees only the attached objects the
    /// gateway admits; the others are refused here, whatever it decides.
    async fn desired_state(
        &self,
        gateway: &K::Gateway,
        class: &str,
    ) -> Result<crate::DesiredState, ImplementationError> {
        let implementation = &self.implementation;
        let admitted = attached::admit(self, gateway, Some(class));
        let mut desired = with_reads(
            &self.related,
            admitted.as_ref().map(|(view, _)| view),
            &self.policies,
            &self.child_kinds,
            &GatewayKey::of(gateway),
            Box::new(move |ctx| {
                Box::pin(async move { implementation.desired_state(gateway, &ctx).await })
            }),
        )
        .await?;
        if let Some((_, admission)) = admitted {
            desired.attached.extend(admission.refused);
            if let Some(message) = admission.problem {
                desired.problems.push(RefProblem {
                    reason: attached::INVALID_ALLOWED_ROUTES,
                    message,
                });
            }
        }
        Ok(desired)
    }

    /// The refusals of the attached objects `gateway` does not admit, for a pass whose
    /// desired state failed.
    fn refused(
        &self,
        gateway: &K::Gateway,
        class: &str,
    ) -> BTreeMap<NamespacedName, AttachedDecision> {
        attached::admit(self, gateway, Some(class))
            .map(|(_, admission)| admission.refused)
            .unwrap_or_default()
    }

    /// The implementation's cleanup (if it declares one), with the same related reads as
    /// desired state.
    async fn cleanup(&self, gateway: &K::Gateway) -> Result<(), ImplementationError> {
        let Some(implementation) = self.implementation.cleanup() else {
            return Ok(());
        };
        let admitted = attached::admit(self, gateway, K::class_name(gateway));
        with_reads(
            &self.related,
            admitted.as_ref().map(|(view, _)| view),
            &self.policies,
            &self.child_kinds,
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

    /// Sets or clears our finalizer on the gateway (`finalizer`) and, on release, removes
    /// the legacy conditions-owner annotation when it names us (it is never written:
    /// see [`names::CONDITIONS_OWNER_ANNOTATION`]); writes only when that changes
    /// something. Returns the gateway as it is now (as written, when it was).
    async fn set_marks(
        &self,
        gateway: &Arc<K::Gateway>,
        finalizer: bool,
        legacy: Legacy,
    ) -> Result<Arc<K::Gateway>, ReconcileError> {
        let mut metadata = serde_json::Map::new();
        if let Some(list) = finalizers_with(gateway.finalizers(), names::FINALIZER, finalizer) {
            metadata.insert("finalizers".into(), json!(list));
        }
        if legacy == Legacy::Release
            && crate::ownership::legacy_mark_names(gateway.meta(), &self.controller)
        {
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
                object: ObjectName::of(gateway.as_ref()),
                source,
            })?;
        Ok(self.remember(gateway, written))
    }
}

/// What [`Shared::set_marks`] does with the legacy conditions-owner annotation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Legacy {
    /// Leaves it as it is.
    Keep,
    /// Removes it when it names us: our conditions are gone.
    Release,
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
    if gateway.meta().deletion_timestamp.is_some() {
        return finalize(&shared, &gateway).await;
    }
    let class = match claim::<K>(
        K::class_name(&gateway),
        &shared.classes.state(),
        &shared.controller,
    ) {
        Claim::Ours { class } => class,
        not_ours => return let_go(&shared, &gateway, not_ours).await,
    };
    // The rest of the pass works from the gateway as marked, whose resourceVersion the
    // status write is guarded by.
    let cleanup = shared.implementation.cleanup().is_some();
    let gateway = shared.set_marks(&gateway, cleanup, Legacy::Keep).await?;
    let pass = run_pass(&shared, &gateway, class).await?;
    write_outcome(&shared, &gateway, pass).await
}

/// What one pass over an owned gateway found, to be written by [`write_outcome`].
struct Pass {
    outcome: Outcome,
    /// The `status.url` to write.
    url: Option<String>,
    /// The implementation's decisions on the attached objects and the gateway's state
    /// for them; `None` leaves them as they are (a failed apply is retried first).
    attached: Option<(BTreeMap<NamespacedName, AttachedDecision>, GatewayState)>,
    /// The implementation's decisions on the policies in effect on the gateway; `None`
    /// records nothing (a failed apply is retried first).
    policies: Option<BTreeMap<PolicyRef, PolicyDecision>>,
    /// What the controller does once the outcome is written.
    then: Next,
}

/// What follows a written pass.
enum Next {
    /// Nothing until something changes.
    AwaitChange,
    /// Look again after a while: what decided the outcome triggers no watch event.
    Requeue(Duration),
    /// Retry with backoff: the error is what gets reported.
    Retry(ReconcileError),
}

/// The gateway is being deleted: runs the implementation's cleanup and removes our
/// marks (the finalizer last). Without a cleanup (e.g. after an upgrade that dropped
/// it) the finalizer still goes, or the gateway would stay Terminating forever.
async fn finalize<K: GatewayKind>(
    shared: &Shared<K>,
    gateway: &Arc<K::Gateway>,
) -> Result<Action, ReconcileError> {
    if gateway.finalizers().iter().any(|f| f == names::FINALIZER) {
        shared
            .cleanup(gateway)
            .await
            .map_err(|source| ReconcileError::Transient {
                gateway: object_name(gateway.as_ref()),
                source,
            })?;
        shared.set_marks(gateway, false, Legacy::Keep).await?;
    }
    Ok(Action::await_change())
}

/// A gateway that is not ours (`claim` is never [`Claim::Ours`]): what we deployed is
/// removed only when another controller has it; nobody's gateway, or one whose default
/// class is ambiguous, is left as it is.
async fn let_go<K: GatewayKind>(
    shared: &Shared<K>,
    gateway: &Arc<K::Gateway>,
    claim: Claim,
) -> Result<Action, ReconcileError> {
    let name = object_name(gateway.as_ref());
    match claim {
        Claim::Ours { .. } => return Ok(Action::await_change()),
        Claim::Ambiguous(message) => warn_about(
            &shared.warnings,
            &ObjectName::of(gateway.as_ref()),
            &message,
            "default class is ambiguous, leaving the gateway alone",
        ),
        Claim::NotOurs(reason) if reason.taken_by_another() => {
            debug!(gateway = %name, ?reason, "another controller has it");
            shared.release(gateway).await?;
        }
        // Nobody has it: whatever we deployed stays until a class takes it.
        Claim::NotOurs(reason) => debug!(gateway = %name, ?reason, "not ours, leaving it as it is"),
    }
    // Letting go may write nothing (its class went): the policies naming it say so.
    policies::not_ours(shared, gateway.as_ref());
    not_ours(shared, gateway);
    Ok(Action::await_change())
}

/// Desired state, apply and prune, observe and readiness for an owned gateway of
/// `class`: every refusal of the implementation and every apply failure becomes an
/// [`Outcome`]. Only a transient failure of the implementation ends the pass without
/// one (nothing is written; it is retried).
async fn run_pass<K: GatewayKind>(
    shared: &Shared<K>,
    gateway: &K::Gateway,
    class: ClassInUse,
) -> Result<Pass, ReconcileError> {
    let refused = |outcome| Pass {
        outcome,
        url: K::gateway_url(gateway).map(str::to_owned),
        attached: Some((
            shared.refused(gateway, &class.name),
            GatewayState::NotProgrammed,
        )),
        // The gateway's problem is its own: the policies in effect on it are accepted.
        policies: Some(BTreeMap::new()),
        then: Next::AwaitChange,
    };
    let desired = match shared.desired_state(gateway, &class.name).await {
        Ok(desired) => desired,
        Err(source @ ImplementationError::Transient(_)) => {
            return Err(ReconcileError::Transient {
                gateway: object_name(gateway),
                source,
            });
        }
        Err(ImplementationError::InvalidSpec { reason, message }) => {
            return Ok(refused(Outcome::InvalidSpec { reason, message }));
        }
        Err(ImplementationError::UnresolvedRef { reason, message }) => {
            let class = class.clone();
            return Ok(refused(Outcome::UnresolvedRef {
                class,
                reason,
                message,
            }));
        }
    };

    let children = child_list(&desired.objects);
    let applied = match shared.applier().apply(gateway, desired.objects).await {
        Ok(applied) => applied,
        Err(ApplyError::NameConflict(conflicts)) => {
            let message = ApplyError::NameConflict(conflicts).to_string();
            warn_about(
                &shared.warnings,
                &ObjectName::of(gateway),
                &message,
                "not applying anything",
            );
            return Ok(Pass {
                outcome: Outcome::NameConflict { class, message },
                url: desired.url,
                attached: Some((desired.attached, GatewayState::NotProgrammed)),
                policies: Some(desired.policies),
                // The conflicting object is not cached (it lacks our labels), so its
                // removal triggers nothing: look again now and then.
                then: Next::Requeue(NAME_CONFLICT_RECHECK),
            });
        }
        Err(source) => {
            return Ok(Pass {
                outcome: Outcome::ApplyFailed {
                    class,
                    message: source.to_string(),
                },
                url: desired.url,
                attached: None,
                policies: None,
                then: Next::Retry(ReconcileError::Apply {
                    gateway: object_name(gateway),
                    source,
                }),
            });
        }
    };

    let observed = observe(shared, gateway, applied.fresh);
    let readiness = shared.implementation.readiness(gateway, &observed);
    let gateway_state = match &readiness {
        Readiness::Ready(_) => GatewayState::Ready,
        Readiness::Progressing { .. } | Readiness::Failed { .. } => GatewayState::NotReady,
    };
    Ok(Pass {
        outcome: Outcome::Programmed {
            class,
            children,
            problems: desired.problems,
            warnings: desired.warnings,
            readiness,
        },
        url: desired.url,
        attached: Some((desired.attached, gateway_state)),
        policies: Some(desired.policies),
        then: Next::AwaitChange,
    })
}

/// The desired children as `Kind name`, sorted, for the `Programmed` message.
fn child_list(objects: &[DynamicObject]) -> String {
    let mut ids: Vec<String> = objects
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
}

/// The gateway's live children: the cached ones, except that children written or read
/// this round are judged by what the API server returned (`fresh`: a write's new
/// generation and old status, or a child the cache has not seen yet), not by the cache.
fn observe<K: GatewayKind>(
    shared: &Shared<K>,
    gateway: &K::Gateway,
    fresh: Vec<DynamicObject>,
) -> Observed {
    let uid = gateway.meta().uid.clone().unwrap_or_default();
    let written: Vec<(ChildId, DynamicObject)> = (fresh.into_iter())
        .map(|object| {
            let types = object.types.clone().unwrap_or_default();
            let id = ChildId {
                api_version: types.api_version.clone(),
                kind: types.kind.clone(),
                namespace: object.metadata.namespace.clone().unwrap_or_default(),
                name: object.metadata.name.clone().unwrap_or_default(),
            };
            // Kept as the cache keeps them, so that a pass judges the same fields
            // either way.
            (id, CachedChild::of(&object).to_object(&types))
        })
        .collect();
    let mut live: Vec<Arc<DynamicObject>> = (shared.applier().owned_children(&uid).into_iter())
        .filter(|(id, _)| !written.iter().any(|(w, _)| w == id))
        .map(|(id, cached)| {
            Arc::new(cached.to_object(&TypeMeta {
                api_version: id.api_version,
                kind: id.kind,
            }))
        })
        .collect();
    live.extend(written.into_iter().map(|(_, object)| Arc::new(object)));
    Observed { children: live }
}

/// Writes what a pass found, in one order on every exit: the gateway's status first
/// (no attached object, another tenant's perhaps, one whose writes fail, may hold it
/// back), then the attached objects' status, then the event of the gateway's
/// transitions. Each write happens only when something changed. A pass that ends in a
/// retry writes its status best effort and returns its own error.
async fn write_outcome<K: GatewayKind>(
    shared: &Shared<K>,
    gateway: &K::Gateway,
    pass: Pass,
) -> Result<Action, ReconcileError> {
    let aliases = shared.implementation.condition_aliases();
    let wanted = status::conditions_for(&pass.outcome, &shared.controller, &aliases);
    let conditions = status::merge_conditions(
        K::gateway_conditions(gateway),
        &wanted,
        gateway.meta().generation,
        &status::now(),
    );
    let written = shared
        .write_status(gateway, conditions, pass.url.as_deref())
        .await;
    let synced = match (&written, &pass.attached) {
        (Ok(_), Some((decisions, state))) => {
            attached::sync(shared, gateway, decisions, *state).await
        }
        _ => Ok(()),
    };
    if let Some(decisions) = &pass.policies {
        let attached = pass.attached.as_ref().map(|(decisions, _)| decisions);
        policies::record(shared, gateway, decisions, attached);
    }
    if let Ok(Some(transitions)) = &written {
        let progressing = matches!(
            &pass.outcome,
            Outcome::Programmed {
                readiness: Readiness::Progressing { .. },
                ..
            }
        );
        shared
            .publish_transitions(gateway, transitions, progressing)
            .await;
    }
    let action = match pass.then {
        Next::Retry(error) => return Err(error),
        Next::AwaitChange => Action::await_change(),
        Next::Requeue(after) => Action::requeue(after),
    };
    written?;
    synced?;
    forget_failures(shared, gateway);
    Ok(action)
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
    // Filed under the object whose write failed (an attached object of another
    // namespace, say), else the gateway; once per object per window.
    let object = error
        .object()
        .cloned()
        .unwrap_or_else(|| ObjectName::of(gateway.as_ref()));
    warn_about(
        &shared.warnings,
        &object,
        error,
        &format!(
            "reconcile failed (attempt {attempts}, retry in {} ms)",
            delay.as_millis()
        ),
    );
    Action::requeue(delay)
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
        let mut written = Api::<K::Class>::all(shared.client.clone())
            .patch(
                &class.name_any(),
                &shared.patch_params(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(|source| ReconcileError::Write {
                what: "class finalizers",
                object: ObjectName::of(class.as_ref()),
                source,
            })?;
        // As the class cache keeps it.
        written.meta_mut().managed_fields = None;
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
    warn_about(
        &shared.warnings,
        &ObjectName::of(class.as_ref()),
        error,
        &format!(
            "class reconcile failed (attempt {attempts}, retry in {} ms)",
            delay.as_millis()
        ),
    );
    Action::requeue(delay)
}

/// One pass of `desired_state` or `cleanup`, given its [`Context`].
type ReadingPass<'a, T> =
    Box<dyn FnMut(Arc<Context>) -> BoxFuture<'a, Result<T, ImplementationError>> + Send + 'a>;

/// Runs `pass` until it read no object whose content was missing (loading that content
/// between passes), at most [`CONTENT_ROUNDS`] times, and records what it read for
/// `gateway`. Load failures are transient errors.
async fn with_reads<T>(
    related: &Arc<RelatedView>,
    attached: Option<&AttachedView>,
    policies: &Arc<[Arc<PolicyCache>]>,
    child_kinds: &Arc<[ChildKindState]>,
    gateway: &GatewayKey,
    mut pass: ReadingPass<'_, T>,
) -> Result<T, ImplementationError> {
    let mut reads = HashSet::new();
    for _ in 0..CONTENT_ROUNDS {
        let ctx = Arc::new(
            Context::new(related.clone(), attached.cloned(), policies.clone())
                .with_child_kinds(child_kinds.clone()),
        );
        let result = pass(ctx.clone()).await;
        let log = ctx.take_log();
        reads.extend(log.reads);
        related.caches.record(gateway, reads.clone());
        if log.unloaded.is_empty() {
            return result;
        }
        related
            .caches
            .load(&log.unloaded)
            .await
            .map_err(ImplementationError::transient)?;
    }
    Err(ImplementationError::transient(RelatedError::Unsettled))
}
