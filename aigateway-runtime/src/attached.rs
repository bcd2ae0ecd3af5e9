//! Attached objects: objects of another kind that name a gateway and are served by it,
//! such as ToolRoutes naming their ToolGateway in `spec.toolGatewayRef`.
//!
//! An implementation declares the kind once ([`GatewayImplementation::attached`], e.g.
//! [`ToolGatewayKind::routes`](crate::ToolGatewayKind::routes)). The runtime then:
//!
//! - watches the kind and keeps an index from each gateway to the objects attached to
//!   it, so that a changed object re-runs the reconcile of the gateway it names now
//!   *and* of the one it named before (no scan of all gateways or all objects);
//! - gives the implementation the objects attached to the gateway being reconciled
//!   ([`Context::attached`]); its desired state may depend on them;
//! - writes each attached object's status from the implementation's
//!   [`AttachedDecision`] (see [`DesiredState::with_attached`]) and the gateway's own
//!   state: `Accepted`, `Ready` (with `observedGeneration`) and `status.url`, the URL
//!   only while the gateway is `Ready`. As for gateways, a status is written only when
//!   it changes, under our status field manager, whose managedFields entry records that
//!   the conditions are ours;
//! - clears what it wrote (our condition types and `status.url`, and the conditions-owner
//!   annotation of an earlier release,
//!   [`CONDITIONS_OWNER_ANNOTATION`](crate::names::CONDITIONS_OWNER_ANNOTATION)) when the
//!   object detaches, its gateway is deleted, or another controller takes the gateway.
//!   Objects attached to a gateway that is not ours are never written, and an object
//!   whose conditions another controller wrote last is never cleared.
//!
//! The parts follow the data flow, each importing only from the ones before it (and
//! from the crate's lower layers): `declare` (what an implementation declares: the
//! kind, its decisions), `allowed_routes` (a gateway's consent, and the namespace
//! labels it reads), `index` (the watch and the gateway-to-objects index, read by
//! [`Context::attached`]), `rules` (the status an object gets: pure), and `sync` (the
//! writes, and the attached objects' own controller). This file only re-exports them.
//!
//! [`GatewayImplementation::attached`]: crate::GatewayImplementation::attached
//! [`Context::attached`]: crate::Context::attached
//! [`DesiredState::with_attached`]: crate::DesiredState::with_attached

mod allowed_routes;
mod declare;
mod index;
mod policy;
mod rules;
mod sync;

pub use allowed_routes::{
    AllowedRoutes, Consent, INVALID_ALLOWED_ROUTES, MAX_ALLOWED_ROUTES_BYTES,
    NOT_ALLOWED_BY_GATEWAY, consent_of,
};
pub use declare::{AttachedDecision, AttachedKind, NotAttached};
pub(crate) use index::{
    AttachedCache, AttachedView, AttachedWatch, GatewayEvents, key_of, reads_namespace_labels,
    watch,
};
/// A reference to an object by kind, name and namespace, as [`AttachedKind::new`] and
/// kube's caches take it: re-exported so that implementations need no `kube-runtime`.
pub use kube::runtime::reflector::ObjectRef;
pub use policy::{NotDeclaredPolicy, PolicyDecision, PolicyKind, PolicyRef};
pub(crate) use rules::GatewayState;
pub(crate) use sync::{admit, clear_gateway, error_policy, reconcile, sync};
