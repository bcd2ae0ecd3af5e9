//! What an implementation declares about attached objects: the kind and how an object
//! names its gateway ([`AttachedKind`], with [`ToolGatewayKind::routes`] for
//! ToolRoutes), what it decides per object ([`AttachedDecision`]), and the error of
//! asking for an undeclared kind ([`NotAttached`]).
//!
//! Declarations only: they sit below the trait that returns them and below the caches
//! that use them, and depend on nothing of the loop.

use std::marker::PhantomData;
use std::sync::Arc;

use aigateway_api::conditions::{Reason, types};
use aigateway_api::{NamespacedName, ToolRoute};
use k8s_openapi::NamespaceResourceScope;
use kube::Resource;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::reflector::ObjectRef;
use serde::de::DeserializeOwned;

use crate::dynamic::from_dynamic;
use crate::kind::{GatewayKind, ToolGatewayKind};

/// The condition types the runtime writes on attached objects, and removes again when
/// they detach.
pub(crate) const ATTACHED_CONDITION_TYPES: &[&str] =
    &[types::ACCEPTED, types::RESOLVED_REFS, types::READY];

/// Maps an attached object to the gateway it names.
pub(crate) type GatewayOf = Arc<dyn Fn(&DynamicObject) -> Option<NamespacedName> + Send + Sync>;

/// A kind of objects attached to gateways of kind `K`, and how an object names its
/// gateway. Declared once by an implementation.
///
/// ```
/// use aigateway_api::ToolRoute;
/// use aigateway_runtime::{AttachedKind, ToolGatewayKind};
/// use kube::runtime::reflector::ObjectRef;
///
/// // What `ToolGatewayKind::routes()` declares.
/// let routes: AttachedKind<ToolGatewayKind> = AttachedKind::new(|route: &ToolRoute| {
///     route.gateway().map(|g| ObjectRef::new(&g.name).within(&g.namespace))
/// });
/// assert_eq!(routes.resource().kind, "ToolRoute");
/// ```
pub struct AttachedKind<K: GatewayKind> {
    pub(crate) resource: ApiResource,
    pub(crate) gateway_of: GatewayOf,
    kind: PhantomData<fn() -> K>,
}

impl<K: GatewayKind> AttachedKind<K> {
    /// Objects of the namespaced kind `T`, attached to the gateway `gateway_of` returns
    /// (`None`: attached to nothing). A returned reference without a namespace attaches
    /// to nothing either: resolve defaults (such as "the object's own namespace") in
    /// `gateway_of`.
    pub fn new<T>(
        gateway_of: impl Fn(&T) -> Option<ObjectRef<K::Gateway>> + Send + Sync + 'static,
    ) -> Self
    where
        T: Resource<DynamicType = (), Scope = NamespaceResourceScope> + DeserializeOwned,
    {
        Self {
            resource: ApiResource::erase::<T>(&()),
            gateway_of: Arc::new(move |object: &DynamicObject| {
                let typed: T = from_dynamic(object)?;
                let gateway = gateway_of(&typed)?;
                Some(NamespacedName {
                    namespace: gateway.namespace?,
                    name: gateway.name,
                })
            }),
            kind: PhantomData,
        }
    }

    /// The attached kind.
    pub fn resource(&self) -> &ApiResource {
        &self.resource
    }
}

/// What the implementation decides about one attached object (see
/// [`DesiredState::with_attached`](crate::DesiredState::with_attached)). The runtime
/// turns it into the object's status together with the gateway's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachedDecision {
    /// The gateway serves the object at `url`: `Accepted=True`; `Ready=True` and
    /// `status.url` once the gateway is `Ready`, `Ready=False` without a URL until then.
    Serve {
        /// The address clients use for this object, published verbatim.
        url: String,
        /// Something the object's owner should know that does not stop it (e.g. newer
        /// objects that collide with it and are refused), appended to `Accepted`.
        note: Option<String>,
    },
    /// The gateway does not serve the object: `Accepted=False` and `Ready=False` with
    /// this reason and message, no URL.
    Refuse {
        /// Why, e.g. `InvalidToolFilter` (a [`Reason`] the implementation defines).
        reason: Reason,
        /// What is wrong and what to do.
        message: String,
    },
    /// The gateway accepts the object, but a reference it makes may not or cannot be
    /// used (Gateway API's `ResolvedRefs=False`, e.g. `RefNotPermitted`): `Accepted=True`,
    /// `ResolvedRefs=False` and `Ready=False` with this reason and message, no URL.
    Unresolved {
        /// Why, e.g. `RefNotPermitted` (a [`Reason`] the implementation defines).
        reason: Reason,
        /// What is wrong and what to do; names nothing the object's owner may not see.
        message: String,
    },
}

impl AttachedDecision {
    /// Serve the object at `url`.
    pub fn serve(url: impl Into<String>) -> Self {
        Self::Serve {
            url: url.into(),
            note: None,
        }
    }

    /// Adds a note to a served object's `Accepted` message (no effect on a refusal).
    pub fn with_note(mut self, text: impl Into<String>) -> Self {
        if let Self::Serve { note, .. } = &mut self {
            *note = Some(text.into());
        }
        self
    }

    /// Refuse the object, saying why.
    pub fn refuse(reason: Reason, message: impl Into<String>) -> Self {
        Self::Refuse {
            reason,
            message: message.into(),
        }
    }

    /// Accept the object but not serve it, because of a reference it makes.
    pub fn unresolved(reason: Reason, message: impl Into<String>) -> Self {
        Self::Unresolved {
            reason,
            message: message.into(),
        }
    }
}

/// `kind` is not the attached kind the implementation declared.
#[derive(Debug, thiserror::Error)]
#[error("{kind} is not attached to these gateways: declare it in GatewayImplementation::attached")]
pub struct NotAttached {
    /// The kind asked for.
    pub kind: String,
}

impl ToolGatewayKind {
    /// ToolRoutes as objects attached to ToolGateways: a route attaches to the gateway
    /// named by `spec.toolGatewayRef`, its namespace defaulting to the route's; a route
    /// without one is attached to nothing. Return it from
    /// [`GatewayImplementation::attached`](crate::GatewayImplementation::attached).
    pub fn routes() -> AttachedKind<ToolGatewayKind> {
        AttachedKind::new(|route: &ToolRoute| {
            route
                .gateway()
                .map(|gateway| ObjectRef::new(&gateway.name).within(&gateway.namespace))
        })
    }
}
