//! What an implementation declares about policies (Gateway API GEP-713, direct
//! attachment): the kinds ([`PolicyKind`]), what it decides per policy
//! ([`PolicyDecision`], keyed by [`PolicyRef`]), and the error of asking for an
//! undeclared kind ([`NotDeclaredPolicy`]).
//!
//! Declarations only, like `declare`: the caches, the status writes and the policies'
//! own controller live in the crate's `policies` module.

use std::marker::PhantomData;

use aigateway_api::conditions::Reason;
use aigateway_api::policy::TargetedPolicy;
use k8s_openapi::NamespaceResourceScope;
use kube::Resource;
use kube::api::ApiResource;
use serde::de::DeserializeOwned;

use crate::kind::GatewayKind;

/// A policy kind whose objects configure gateways of kind `K` by naming them in
/// `spec.targetRefs` (see [`aigateway_api::policy`]). Declared once by an
/// implementation ([`GatewayImplementation::policies`](crate::GatewayImplementation::policies)).
///
/// The runtime then watches the kind, re-runs exactly the gateways a policy names (now
/// and before) when it changes, offers each gateway the policies in effect on it
/// ([`Context::policies`](crate::Context::policies)), and writes every policy's
/// `status.ancestors` entries: `Accepted` (or why not: `Conflicted` with an older
/// policy, `Invalid`, `TargetNotFound`) and `ResolvedRefs`, with `observedGeneration`.
///
/// ```
/// use aigateway_api::policy::{PolicyTargetReference, TargetedPolicy};
/// use aigateway_runtime::AiGatewayKind;
/// use aigateway_runtime::attached::PolicyKind;
/// use kube::CustomResource;
/// use schemars::JsonSchema;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(CustomResource, Serialize, Deserialize, Clone, Debug, JsonSchema)]
/// #[kube(group = "example.com", version = "v1", kind = "TimeoutPolicy", namespaced)]
/// #[serde(rename_all = "camelCase")]
/// pub struct TimeoutPolicySpec {
///     target_refs: Vec<PolicyTargetReference>,
///     seconds: u32,
/// }
///
/// impl TargetedPolicy for TimeoutPolicy {
///     fn target_refs(&self) -> &[PolicyTargetReference] {
///         &self.spec.target_refs
///     }
/// }
///
/// let timeouts: PolicyKind<AiGatewayKind> = PolicyKind::of::<TimeoutPolicy>();
/// assert_eq!(timeouts.resource().plural, "timeoutpolicies");
/// ```
pub struct PolicyKind<K: GatewayKind> {
    pub(crate) resource: ApiResource,
    kind: PhantomData<fn() -> K>,
}

impl<K: GatewayKind> PolicyKind<K> {
    /// The namespaced policy kind `P`.
    pub fn of<P>() -> Self
    where
        P: TargetedPolicy
            + Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + DeserializeOwned,
    {
        Self {
            resource: ApiResource::erase::<P>(&()),
            kind: PhantomData,
        }
    }

    /// The policy kind.
    pub fn resource(&self) -> &ApiResource {
        &self.resource
    }
}

/// One policy, by kind, namespace and name: the key of
/// [`DesiredState::policies`](crate::DesiredState::policies).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PolicyRef {
    /// The policy's API group.
    pub group: String,
    /// The policy's kind.
    pub kind: String,
    /// The policy's namespace.
    pub namespace: String,
    /// The policy's name.
    pub name: String,
}

impl PolicyRef {
    /// The reference to `policy`.
    pub fn of<P: Resource<DynamicType = ()>>(policy: &P) -> Self {
        Self {
            group: P::group(&()).into_owned(),
            kind: P::kind(&()).into_owned(),
            namespace: policy.meta().namespace.clone().unwrap_or_default(),
            name: policy.meta().name.clone().unwrap_or_default(),
        }
    }
}

/// What the implementation decides about a policy in effect on the gateway it reconciles
/// (see [`DesiredState::with_policy`](crate::DesiredState::with_policy)). A policy
/// offered without a decision is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyDecision {
    /// The policy is in effect: `Accepted=True`, `ResolvedRefs=True`.
    Accept,
    /// The policy cannot be applied as written: `Accepted=False` with this reason
    /// (usually [`aigateway_api::policy::reasons::INVALID`], or `TargetNotFound` for a
    /// `sectionName` the gateway lacks) and message; `ResolvedRefs` is removed.
    Refuse {
        /// Why.
        reason: Reason,
        /// What is wrong and what to do.
        message: String,
    },
    /// The policy is accepted but something it references (a Secret, say) is missing or
    /// unusable: `Accepted=True`, `ResolvedRefs=False` with this reason and message.
    Unresolved {
        /// Why, e.g. [`Reason::REF_NOT_FOUND`].
        reason: Reason,
        /// What is wrong and what to do; names nothing the policy's owner may not see.
        message: String,
    },
}

impl PolicyDecision {
    /// Refuse the policy as invalid (`Accepted=False`, reason `Invalid`).
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Refuse {
            reason: Reason::from_static(aigateway_api::policy::reasons::INVALID),
            message: message.into(),
        }
    }

    /// Refuse the policy with `reason`.
    pub fn refuse(reason: Reason, message: impl Into<String>) -> Self {
        Self::Refuse {
            reason,
            message: message.into(),
        }
    }

    /// Accept the policy, but a reference it makes cannot be used.
    pub fn unresolved(reason: Reason, message: impl Into<String>) -> Self {
        Self::Unresolved {
            reason,
            message: message.into(),
        }
    }
}

/// `kind` is not a policy kind the implementation declared.
#[derive(Debug, thiserror::Error)]
#[error(
    "{kind} is not a policy kind of these gateways: declare it in GatewayImplementation::policies"
)]
#[non_exhaustive]
pub struct NotDeclaredPolicy {
    /// The kind asked for.
    pub kind: String,
}
