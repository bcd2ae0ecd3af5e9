//! What an implementation provides: the [`GatewayImplementation`] trait and the values
//! it exchanges with the loop.

use std::collections::BTreeMap;
use std::sync::Arc;

use aigateway_api::NamespacedName;
use aigateway_api::conditions::Reason;

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{ApiResource, DynamicObject};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::attached::{
    AttachedDecision, AttachedKind, NotAttached, NotDeclaredPolicy, PolicyDecision, PolicyKind,
    PolicyRef,
};
pub use crate::dynamic::{from_dynamic, to_dynamic};
use crate::kind::{AiGatewayKind, GatewayKind};
use crate::reference_grants::GrantsNotDeclared;
pub use crate::related::{Context, NotWatched, RelatedCache, RelatedWatch};

/// A class operator: turns each gateway of its classes into child objects.
///
/// Only [`controller_name`](Self::controller_name) and
/// [`desired_state`](Self::desired_state) are required; everything else has a default
/// that suits a proxy deployed as a Deployment.
#[async_trait]
pub trait GatewayImplementation<K: GatewayKind = AiGatewayKind>: Send + Sync + 'static {
    /// The value of the class's `spec.controller` this implementation answers to.
    fn controller_name(&self) -> &str;

    /// The field manager for server-side apply, also the `app.kubernetes.io/managed-by`
    /// label of every child. Defaults to the last path segment of the controller name.
    fn field_manager(&self) -> String {
        crate::names::default_field_manager(self.controller_name())
    }

    /// The kinds of child objects [`desired_state`](Self::desired_state) may return. The
    /// loop watches them (label-selected) to see readiness, deleted children (which it
    /// re-creates) and leftovers to prune. Edits by others that keep our hash annotation
    /// are not reverted until the desired state changes.
    fn child_kinds(&self) -> Vec<ApiResource> {
        vec![
            ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&()),
            ApiResource::erase::<k8s_openapi::api::core::v1::Service>(&()),
            ApiResource::erase::<Deployment>(&()),
        ]
    }

    /// Child kinds whose CRD may not be installed (prometheus-operator's
    /// `ServiceMonitor`): watched like [`child_kinds`](Self::child_kinds) while the API
    /// server serves them. Until it does, their cache counts as listed and empty (the
    /// operator is ready without them), [`Context::serves`] says `false` so that
    /// `desired_state` can leave them out and say why, and once the CRD is installed
    /// every gateway is rendered again. When the CRD is removed (its objects go with
    /// it), `serves` says `false` again, every gateway is rendered again, and the
    /// loop neither applies nor prunes children of the kind until it is back.
    fn optional_child_kinds(&self) -> Vec<ApiResource> {
        Vec::new()
    }

    /// The objects that should exist for this gateway. Pure apart from reading
    /// [`Context`] caches: no writes.
    async fn desired_state(
        &self,
        gateway: &K::Gateway,
        ctx: &Context,
    ) -> Result<DesiredState, ImplementationError>;

    /// Whether the gateway serves traffic, judged from its live children. The default:
    /// every child Deployment has rolled out.
    fn readiness(&self, _gateway: &K::Gateway, observed: &Observed) -> Readiness {
        deployments_rolled_out(observed)
    }

    /// What releases the gateway's resources outside the cluster when it is deleted.
    /// `Some` makes the loop hold a finalizer on each gateway it serves until the cleanup
    /// succeeded (retried with backoff meanwhile); return `Some(self)` from an
    /// implementation that also implements [`GatewayCleanup`]. One declaration: there is
    /// no separate switch to keep in sync.
    fn cleanup(&self) -> Option<&dyn GatewayCleanup<K>> {
        None
    }

    /// The kinds of other objects [`desired_state`](Self::desired_state) reads through
    /// [`Context::get`] (Secrets, ConfigMaps, Guards...). No mapper is needed: the runtime
    /// records every lookup and re-runs a gateway exactly when an object it looked up
    /// changes, appears or goes.
    fn related(&self) -> Vec<RelatedWatch> {
        Vec::new()
    }

    /// A kind of objects that attach themselves to this implementation's gateways (such
    /// as [`ToolGatewayKind::routes`](crate::ToolGatewayKind::routes)). The runtime
    /// watches it, re-runs the gateway an object names (and the one it named before)
    /// when the object changes, offers the attached objects through
    /// [`Context::attached`], and writes their status from the decisions in
    /// [`DesiredState::with_attached`] (see [`attached`](crate::attached)).
    fn attached(&self) -> Option<AttachedKind<K>> {
        None
    }

    /// The policy kinds that configure this implementation's gateways (Gateway API
    /// policy attachment: objects that name a gateway in `spec.targetRefs`). The runtime
    /// watches each kind, re-runs exactly the gateways a policy names (now and before)
    /// when it changes, offers the policies in effect on a gateway through
    /// [`Context::policies`], and writes each policy's `status.ancestors` from the
    /// decisions in [`DesiredState::with_policy`] (see [`PolicyKind`]).
    fn policies(&self) -> Vec<PolicyKind<K>> {
        Vec::new()
    }

    /// Whether [`desired_state`](Self::desired_state) follows references across
    /// namespaces and asks [`Context::reference_grant`] for the target namespace's
    /// consent. `true` makes the runtime watch Gateway API ReferenceGrants (whether or
    /// not their CRD is installed; see [`reference_grants`](crate::reference_grants)).
    fn uses_reference_grants(&self) -> bool {
        false
    }

    /// Extra condition types that copy one of the standard ones, for compatibility with
    /// tools that read another operator's condition names and reasons.
    fn condition_aliases(&self) -> Vec<ConditionAlias> {
        Vec::new()
    }
}

/// An extra condition type that copies the status, message and observedGeneration of a
/// standard one ([`GatewayImplementation::condition_aliases`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionAlias {
    /// The alias's type, e.g. `AiGatewayReady`.
    pub type_: String,
    /// The standard type it copies: `Accepted`, `ResolvedRefs`, `Programmed` or `Ready`.
    pub source: String,
    /// Its own reasons, chosen by what the reconcile found; `None` copies the source's
    /// reason.
    pub reasons: Option<AliasReasons>,
}

impl ConditionAlias {
    /// An alias of `source` that copies its reason too.
    pub fn copy(type_: &str, source: &str) -> Self {
        Self {
            type_: type_.to_owned(),
            source: source.to_owned(),
            reasons: None,
        }
    }

    /// An alias of `source` with its own `reasons`.
    pub fn with_reasons(type_: &str, source: &str, reasons: AliasReasons) -> Self {
        Self {
            reasons: Some(reasons),
            ..Self::copy(type_, source)
        }
    }
}

/// The reasons of a [`ConditionAlias`], one per state. The runtime picks one by the
/// variant of what the reconcile found (and the source's status), never by the source's
/// reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasReasons {
    /// The source condition is `True`.
    pub true_: Reason,
    /// Every child was applied but the source is not `True`: `Ready` while a rollout is
    /// pending or pods cannot be created, `ResolvedRefs` while a reference the gateway
    /// can do without is missing.
    pub applied: Reason,
    /// [`ImplementationError::InvalidSpec`]: nothing was applied.
    pub invalid_spec: Reason,
    /// [`ImplementationError::UnresolvedRef`]: nothing was applied.
    pub unresolved_ref: Reason,
    /// A child's name is held by an object the gateway does not control.
    pub name_conflict: Reason,
    /// The API server refused a child.
    pub apply_failed: Reason,
}

impl AliasReasons {
    /// Every reason, once each, in field order (for documentation checks).
    pub fn all(&self) -> Vec<&Reason> {
        let mut all = Vec::new();
        for reason in [
            &self.true_,
            &self.applied,
            &self.invalid_spec,
            &self.unresolved_ref,
            &self.name_conflict,
            &self.apply_failed,
        ] {
            if !all.contains(&reason) {
                all.push(reason);
            }
        }
        all
    }
}

/// Releases what a gateway holds outside the cluster (a cloud resource, a registration)
/// before the gateway goes; declared through [`GatewayImplementation::cleanup`].
///
/// ```
/// use aigateway_api::AiGateway;
/// use aigateway_runtime::implementation::GatewayCleanup;
/// use aigateway_runtime::{Context, DesiredState, GatewayImplementation, ImplementationError};
///
/// struct Registered;
///
/// #[async_trait::async_trait]
/// impl GatewayImplementation for Registered {
///     fn controller_name(&self) -> &str { "example.com/registered" }
///     async fn desired_state(&self, _: &AiGateway, _: &Context) -> Result<DesiredState, ImplementationError> {
///         Ok(DesiredState::new())
///     }
///     fn cleanup(&self) -> Option<&dyn GatewayCleanup> { Some(self) }
/// }
///
/// #[async_trait::async_trait]
/// impl GatewayCleanup for Registered {
///     async fn cleanup(&self, _gateway: &AiGateway, _ctx: &Context) -> Result<(), ImplementationError> {
///         // Deregister the gateway from the external service here.
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait GatewayCleanup<K: GatewayKind = AiGatewayKind>: Send + Sync {
    /// Releases `gateway`'s external resources. Reads related objects through `ctx` as
    /// [`GatewayImplementation::desired_state`] does; an error keeps the finalizer and
    /// is retried.
    async fn cleanup(&self, gateway: &K::Gateway, ctx: &Context)
    -> Result<(), ImplementationError>;
}

/// Errors an implementation reports. The variant decides what the gateway's conditions
/// say and whether the loop retries; the reason and message only describe it.
#[derive(Debug, thiserror::Error)]
pub enum ImplementationError {
    /// The spec cannot work as written: `Accepted=False` and `Programmed=False`; nothing
    /// is applied. Not retried until the gateway or something watched changes.
    #[error("{reason}: {message}")]
    InvalidSpec {
        /// The reason for the `Accepted` condition, e.g. [`Reason::INVALID_PARAMETERS`].
        reason: Reason,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A referenced object the gateway cannot be rendered without is missing or
    /// unusable: `Accepted=True`, `ResolvedRefs=False`, `Programmed=False`; nothing is
    /// applied. Not retried until something watched changes. (References the gateway
    /// can do without belong in [`DesiredState::with_problem`].)
    #[error("{reason}: {message}")]
    UnresolvedRef {
        /// The reason for the `ResolvedRefs` condition, e.g. [`Reason::REF_NOT_FOUND`].
        reason: Reason,
        /// Which object is missing or unusable, and what to do.
        message: String,
    },
    /// Something failed that may work on retry (API errors, timeouts). Retried with
    /// exponential backoff; the cause is kept as the error's source.
    #[error("{0}")]
    Transient(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl ImplementationError {
    /// An invalid-spec error with a reason and an actionable message.
    pub fn invalid(reason: Reason, message: impl Into<String>) -> Self {
        Self::InvalidSpec {
            reason,
            message: message.into(),
        }
    }

    /// An unresolved-reference error with a reason and a message naming the object.
    pub fn unresolved_ref(reason: Reason, message: impl Into<String>) -> Self {
        Self::UnresolvedRef {
            reason,
            message: message.into(),
        }
    }

    /// A transient error caused by `source`.
    pub fn transient(
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Self::Transient(source.into())
    }
}

impl From<NotDeclaredPolicy> for ImplementationError {
    /// A programming error, not the user's: retried with backoff and logged loudly.
    fn from(error: NotDeclaredPolicy) -> Self {
        Self::Transient(Box::new(error))
    }
}

impl From<NotAttached> for ImplementationError {
    /// A programming error, not the user's: retried with backoff and logged loudly.
    fn from(error: NotAttached) -> Self {
        Self::Transient(Box::new(error))
    }
}

impl From<aigateway_api::conditions::InvalidReason> for ImplementationError {
    /// A reason built at run time that the Condition schema would refuse: a programming
    /// error, reported loudly and retried with backoff until fixed.
    fn from(error: aigateway_api::conditions::InvalidReason) -> Self {
        ImplementationError::transient(error)
    }
}

impl From<NotWatched> for ImplementationError {
    /// A programming error, reported loudly and retried with backoff until fixed.
    fn from(error: NotWatched) -> Self {
        ImplementationError::transient(error)
    }
}

impl From<GrantsNotDeclared> for ImplementationError {
    /// A programming error, reported loudly and retried with backoff until fixed.
    fn from(error: GrantsNotDeclared) -> Self {
        ImplementationError::transient(error)
    }
}

impl From<kube::Error> for ImplementationError {
    fn from(error: kube::Error) -> Self {
        Self::Transient(Box::new(error))
    }
}

/// A referenced object that is missing or unusable: shown as `ResolvedRefs=False`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefProblem {
    /// Why, e.g. [`Reason::REF_NOT_FOUND`].
    pub reason: Reason,
    /// What is wrong, naming the object, and what to do.
    pub message: String,
}

/// What the gateway should look like: child objects plus status details.
#[derive(Debug, Clone, Default)]
pub struct DesiredState {
    /// Child objects, each with `apiVersion`, `kind`, `metadata.name` (namespace defaults
    /// to the gateway's). The loop adds owner reference and labels.
    pub objects: Vec<DynamicObject>,
    /// The URL to publish in `status.url`.
    pub url: Option<String>,
    /// Reference problems; the gateway still deploys what works.
    pub problems: Vec<RefProblem>,
    /// Things worth a human's attention that are not reference problems (an open
    /// endpoint, a suspicious setting). Shown in the `Programmed` condition's message.
    pub warnings: Vec<String>,
    /// What becomes of each attached object, by namespace and name. An attached object
    /// without a decision gets `Accepted=Unknown` and no URL.
    pub attached: BTreeMap<NamespacedName, AttachedDecision>,
    /// What becomes of each policy in effect on the gateway (from
    /// [`Context::policies`]). A policy without a decision is accepted.
    pub policies: BTreeMap<PolicyRef, PolicyDecision>,
}

impl DesiredState {
    /// An empty desired state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a typed child object.
    ///
    /// # Panics
    /// Never for Kubernetes types: they always serialise to JSON objects.
    pub fn with<T: Resource<DynamicType = ()> + Serialize>(mut self, object: &T) -> Self {
        self.objects.push(to_dynamic(object));
        self
    }

    /// Adds a dynamic child object.
    pub fn with_dynamic(mut self, object: DynamicObject) -> Self {
        self.objects.push(object);
        self
    }

    /// Sets the URL published in status.
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Adds a warning shown in the `Programmed` condition's message.
    pub fn with_warning(mut self, message: impl Into<String>) -> Self {
        self.warnings.push(message.into());
        self
    }

    /// Decides about one attached object (from [`Context::attached`]): served at a URL,
    /// published once the gateway is `Ready`, or refused with a reason.
    pub fn with_attached(mut self, object: &impl Resource, decision: AttachedDecision) -> Self {
        let key = NamespacedName {
            namespace: object.meta().namespace.clone().unwrap_or_default(),
            name: object.meta().name.clone().unwrap_or_default(),
        };
        self.attached.insert(key, decision);
        self
    }

    /// Decides about one policy in effect on the gateway (from [`Context::policies`]):
    /// accepted, refused, or accepted with a reference that cannot be used. Written into
    /// the policy's `status.ancestors` entry for this gateway.
    pub fn with_policy<P: Resource<DynamicType = ()>>(
        mut self,
        policy: &P,
        decision: PolicyDecision,
    ) -> Self {
        self.policies.insert(PolicyRef::of(policy), decision);
        self
    }

    /// Adds a reference problem.
    pub fn with_problem(mut self, reason: Reason, message: impl Into<String>) -> Self {
        self.problems.push(RefProblem {
            reason,
            message: message.into(),
        });
        self
    }
}

/// The live children of a gateway, read from the loop's caches. Each holds what
/// readiness judges: of its metadata the name, namespace, uid, resourceVersion,
/// generation, the annotations of the `agentic-layer.ai` domains and the controller
/// owner reference (no labels, timestamps or finalizers), then `spec.replicas` and
/// `status` (of a Deployment's status: `observedGeneration`, `replicas`,
/// `updatedReplicas`, `availableReplicas` and a `ReplicaFailure` condition); the rest is
/// not cached.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Children owned by the gateway, of every declared child kind.
    pub children: Vec<Arc<DynamicObject>>,
}

impl Observed {
    /// Children of one kind, typed.
    pub fn of<T: Resource<DynamicType = ()> + DeserializeOwned>(&self) -> Vec<T> {
        let (api_version, kind) = (T::api_version(&()), T::kind(&()));
        self.children
            .iter()
            .filter(|o| {
                o.types
                    .as_ref()
                    .is_some_and(|t| t.api_version == api_version && t.kind == kind)
            })
            .filter_map(|o| from_dynamic(o))
            .collect()
    }
}

/// Whether a gateway serves traffic: `Ready=True`, or `Ready=False` with the reason and
/// message given. The variant, not the reason, says whether not being ready is worth a
/// Warning event: a new gateway that is [`Progressing`](Self::Progressing) gets none
/// until it is Ready; one that has [`Failed`](Self::Failed) gets one at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Serving; the message says why we think so.
    Ready(String),
    /// Not serving yet, and on its way without anyone's help (a rollout in progress).
    Progressing {
        /// Why, e.g. [`Reason::ROLLING_OUT`].
        reason: Reason,
        /// What is still missing.
        message: String,
    },
    /// Not serving, and waiting will not fix it: someone must change something (pods
    /// that cannot be created, a spec the proxy refuses).
    Failed {
        /// Why, e.g. `ReplicaFailure` (a [`Reason`] the implementation defines).
        reason: Reason,
        /// What is wrong and what to do.
        message: String,
    },
}

/// The default readiness: every child Deployment is rolled out as `kubectl rollout
/// status` says (observed generation current, updated and available replicas at the
/// desired count, and no replica of an older template left).
pub fn deployments_rolled_out(observed: &Observed) -> Readiness {
    let deployments: Vec<Deployment> = observed.of();
    if deployments.is_empty() {
        return Readiness::Progressing {
            reason: Reason::NOT_READY,
            message: "no Deployment exists yet".into(),
        };
    }
    for deployment in &deployments {
        if let Some(message) = rollout_pending(deployment) {
            return Readiness::Progressing {
                reason: Reason::ROLLING_OUT,
                message,
            };
        }
    }
    let names: Vec<String> = deployments.iter().map(|d| d.name_any()).collect();
    Readiness::Ready(format!("Deployment {} rolled out", names.join(", ")))
}

/// Why a Deployment is not rolled out yet, or `None` when it is.
///
/// One message for every step of a rollout (no status yet, the new spec not observed,
/// replicas updating or becoming available): it changes only with the Deployment's spec.
/// A message with live counts changed with each step, and each change was one more
/// status write per gateway that said nothing a user acts on (`kubectl rollout status`
/// shows the steps).
pub(crate) fn rollout_pending(deployment: &Deployment) -> Option<String> {
    let desired = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let rolled_out = deployment.status.as_ref().is_some_and(|status| {
        let updated = status.updated_replicas.unwrap_or(0);
        status.observed_generation >= deployment.metadata.generation
            && updated >= desired
            && status.available_replicas.unwrap_or(0) >= desired
            // Pods of the previous template still serve some requests with the old
            // configuration until they are gone.
            && status.replicas.unwrap_or(0) <= updated
    });
    (!rolled_out).then(|| {
        let noun = if desired == 1 { "replica" } else { "replicas" };
        format!(
            "Deployment {} is rolling out ({desired} {noun} wanted)",
            deployment.name_any()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Deployment at `generation` with `replicas` wanted and this status.
    fn deployment(generation: i64, replicas: i32, status: Option<(i64, i32, i32)>) -> Deployment {
        use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};
        Deployment {
            metadata: kube::api::ObjectMeta {
                name: Some("gw".into()),
                generation: Some(generation),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                ..Default::default()
            }),
            status: status.map(|(observed, updated, available)| DeploymentStatus {
                observed_generation: Some(observed),
                updated_replicas: Some(updated),
                available_replicas: Some(available),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn every_step_of_a_rollout_says_the_same_until_it_is_done() {
        let steps = [
            deployment(1, 2, None),
            deployment(2, 2, Some((1, 2, 2))),
            deployment(2, 2, Some((2, 1, 2))),
            deployment(2, 2, Some((2, 2, 1))),
        ];
        let messages: std::collections::BTreeSet<Option<String>> =
            steps.iter().map(rollout_pending).collect();
        assert_eq!(
            messages,
            [Some(
                "Deployment gw is rolling out (2 replicas wanted)".to_owned()
            )]
            .into()
        );
        assert_eq!(rollout_pending(&deployment(2, 2, Some((2, 2, 2)))), None);
        // The new pods are available, an old one is still there (surge).
        let mut surging = deployment(2, 2, Some((2, 2, 2)));
        surging.status.as_mut().unwrap().replicas = Some(3);
        assert_eq!(
            rollout_pending(&surging).as_deref(),
            Some("Deployment gw is rolling out (2 replicas wanted)")
        );
        surging.status.as_mut().unwrap().replicas = Some(2);
        assert_eq!(rollout_pending(&surging), None);
        assert_eq!(
            rollout_pending(&deployment(1, 1, None)).as_deref(),
            Some("Deployment gw is rolling out (1 replica wanted)")
        );
    }

    #[test]
    fn reading_what_is_not_declared_is_a_transient_error() {
        let not_watched = NotWatched {
            kind: "Service".into(),
            namespace: "ns".into(),
            name: "api".into(),
            watched_name: None,
        };
        assert!(matches!(
            ImplementationError::from(not_watched),
            ImplementationError::Transient(_)
        ));
        assert!(matches!(
            ImplementationError::from(GrantsNotDeclared),
            ImplementationError::Transient(_)
        ));
    }
}
