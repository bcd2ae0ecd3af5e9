//! Gateway API ReferenceGrants: a namespace's consent to be referred to from another.
//!
//! An object may name an object in another namespace (a ToolRoute may name a ToolServer
//! anywhere). Following such a reference without the target namespace's consent is a
//! confused deputy: the gateway would serve, to every key it accepts and past the target
//! namespace's NetworkPolicies, a backend its owner never offered. Gateway API's answer
//! is the `ReferenceGrant` (group `gateway.networking.k8s.io`, the real CRD, read at
//! [`VERSION`]): created in the target's namespace, it lists which kinds in which
//! namespaces may refer to which kinds (optionally which names) there.
//!
//! An implementation that follows cross-namespace references declares
//! [`GatewayImplementation::uses_reference_grants`] and asks
//! [`Context::reference_grant`] before it reads the target. The runtime then watches
//! ReferenceGrants (list and watch, granted in the generated ClusterRole) and re-runs a
//! gateway when a grant in a namespace it asked about changes.
//!
//! The CRD need not be installed: while it is not, every cross-namespace reference is
//! [`ReferenceGrantCheck::NotInstalled`] (refused; the message should say what to
//! install). The watch keeps listing, three times a second apart and then ever less
//! often, at most 25 s apart (`watches::RefusalBackoff`), so when the CRD appears the grants are listed and every gateway that asked is re-run;
//! if it goes again, the gateways that asked are re-run and refuse again. The operator's
//! readiness does not depend on it.
//!
//! [`GatewayImplementation::uses_reference_grants`]: crate::GatewayImplementation::uses_reference_grants
//! [`Context::reference_grant`]: crate::Context::reference_grant

use std::sync::{Arc, Mutex};

use aigateway_api::conditions::Reason;
use kube::ResourceExt;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::reflector::{self, Store};
use serde::Deserialize;

pub(crate) mod watch;

/// The API group of ReferenceGrant.
pub const GROUP: &str = "gateway.networking.k8s.io";
/// The version read: served by every Gateway API release with ReferenceGrant in the
/// standard channel (v1.0 to v1.7 at least).
pub const VERSION: &str = "v1beta1";
/// The reason of `ResolvedRefs=False` for a reference no grant permits (Gateway API's).
pub const REF_NOT_PERMITTED: Reason = Reason::from_static("RefNotPermitted");

/// The ReferenceGrant resource, as the runtime watches it.
pub fn resource() -> ApiResource {
    ApiResource {
        group: GROUP.to_owned(),
        version: VERSION.to_owned(),
        api_version: format!("{GROUP}/{VERSION}"),
        kind: "ReferenceGrant".to_owned(),
        plural: "referencegrants".to_owned(),
    }
}

/// A reference from an object of kind `from_kind` (group `from_group`) in
/// `from_namespace` to the object `to_name` of kind `to_kind` (group `to_group`) in
/// `to_namespace`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossNamespaceRef<'a> {
    /// The referring object's API group (`""` for core).
    pub from_group: &'a str,
    /// The referring object's kind, e.g. `ToolRoute`.
    pub from_kind: &'a str,
    /// The referring object's namespace.
    pub from_namespace: &'a str,
    /// The target's API group.
    pub to_group: &'a str,
    /// The target's kind, e.g. `ToolServer`.
    pub to_kind: &'a str,
    /// The target's namespace.
    pub to_namespace: &'a str,
    /// The target's name.
    pub to_name: &'a str,
}

/// What a ReferenceGrant check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferenceGrantCheck {
    /// The reference stays in its namespace, or a grant in the target's namespace
    /// permits it.
    Permitted,
    /// No grant permits it.
    NotPermitted,
    /// The ReferenceGrant CRD is not installed (or cannot be listed): nothing can
    /// permit a cross-namespace reference.
    NotInstalled,
}

/// The `spec` of a ReferenceGrant (fields the check reads).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct ReferenceGrantSpec {
    /// Who may refer.
    #[serde(default)]
    pub from: Vec<GrantFrom>,
    /// To what, in the grant's namespace.
    #[serde(default)]
    pub to: Vec<GrantTo>,
}

/// One `spec.from` entry.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct GrantFrom {
    /// API group (`""` for core).
    #[serde(default)]
    pub group: String,
    /// Kind.
    #[serde(default)]
    pub kind: String,
    /// Namespace.
    #[serde(default)]
    pub namespace: String,
}

/// One `spec.to` entry.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct GrantTo {
    /// API group (`""` for core).
    #[serde(default)]
    pub group: String,
    /// Kind.
    #[serde(default)]
    pub kind: String,
    /// One name only, when set.
    #[serde(default)]
    pub name: Option<String>,
}

impl ReferenceGrantSpec {
    /// Whether this grant, living in `reference.to_namespace`, permits `reference`.
    pub fn permits(&self, reference: &CrossNamespaceRef<'_>) -> bool {
        self.from.iter().any(|from| {
            from.group == reference.from_group
                && from.kind == reference.from_kind
                && from.namespace == reference.from_namespace
        }) && self.to.iter().any(|to| {
            to.group == reference.to_group
                && to.kind == reference.to_kind
                && to
                    .name
                    .as_deref()
                    .is_none_or(|name| name.is_empty() || name == reference.to_name)
        })
    }
}

/// Whether one of `grants` (the ReferenceGrants of `reference.to_namespace`) permits
/// `reference`; a reference within one namespace needs none.
pub fn permitted<'a>(
    grants: impl IntoIterator<Item = &'a ReferenceGrantSpec>,
    reference: &CrossNamespaceRef<'_>,
) -> bool {
    reference.from_namespace == reference.to_namespace
        || grants.into_iter().any(|grant| grant.permits(reference))
}

/// [`Context::reference_grant`](crate::Context::reference_grant) from an implementation
/// that does not declare
/// [`uses_reference_grants`](crate::GatewayImplementation::uses_reference_grants): no
/// grant is watched, so none can be told from a missing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "desired_state asked for a ReferenceGrant, but ReferenceGrants are not watched: return true from GatewayImplementation::uses_reference_grants"
)]
pub struct GrantsNotDeclared;

/// Whether the CRD is known to be installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Installed {
    /// No list has been answered yet.
    Unknown,
    Yes,
    No,
}

/// The watched ReferenceGrants and whether their CRD is installed.
pub(crate) struct ReferenceGrants {
    store: Store<DynamicObject>,
    installed: Mutex<Installed>,
}

impl ReferenceGrants {
    /// A cache over `store` (fed by [`watch`]).
    pub(crate) fn new(store: Store<DynamicObject>) -> Self {
        Self {
            store,
            installed: Mutex::new(Installed::Unknown),
        }
    }

    /// Checks `reference` against the grants of its target's namespace.
    pub(crate) fn check(&self, reference: &CrossNamespaceRef<'_>) -> ReferenceGrantCheck {
        if reference.from_namespace == reference.to_namespace {
            return ReferenceGrantCheck::Permitted;
        }
        if *self.installed.lock().expect("grants state") != Installed::Yes {
            return ReferenceGrantCheck::NotInstalled;
        }
        let grants: Vec<ReferenceGrantSpec> = self
            .store
            .state()
            .iter()
            .filter(|grant| grant.namespace().as_deref() == Some(reference.to_namespace))
            .filter_map(|grant| serde_json::from_value(grant.data.get("spec")?.clone()).ok())
            .collect();
        if permitted(&grants, reference) {
            ReferenceGrantCheck::Permitted
        } else {
            ReferenceGrantCheck::NotPermitted
        }
    }

    /// Records the answer of a list; returns whether it changed what checks answer.
    pub(crate) fn set_installed(&self, now: bool) -> bool {
        let mut installed = self.installed.lock().expect("grants state");
        // Checks answer from grants only while the CRD is known to be there.
        let was_listed = *installed == Installed::Yes;
        *installed = if now { Installed::Yes } else { Installed::No };
        was_listed != now
    }
}

/// The ReferenceGrant cache and the writer that fills it.
pub(crate) fn cache() -> (
    Arc<ReferenceGrants>,
    reflector::store::Writer<DynamicObject>,
) {
    let writer = reflector::store::Writer::new(resource());
    (Arc::new(ReferenceGrants::new(writer.as_reader())), writer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route_to_server<'a>(from: &'a str, to: &'a str, name: &'a str) -> CrossNamespaceRef<'a> {
        CrossNamespaceRef {
            from_group: "runtime.agentic-layer.ai",
            from_kind: "ToolRoute",
            from_namespace: from,
            to_group: "runtime.agentic-layer.ai",
            to_kind: "ToolServer",
            to_namespace: to,
            to_name: name,
        }
    }

    fn grant(from_namespace: &str, name: Option<&str>) -> ReferenceGrantSpec {
        ReferenceGrantSpec {
            from: vec![GrantFrom {
                group: "runtime.agentic-layer.ai".into(),
                kind: "ToolRoute".into(),
                namespace: from_namespace.into(),
            }],
            to: vec![GrantTo {
                group: "runtime.agentic-layer.ai".into(),
                kind: "ToolServer".into(),
                name: name.map(str::to_owned),
            }],
        }
    }

    #[test]
    fn a_grant_permits_exactly_what_it_lists() {
        let reference = route_to_server("team-a", "tools", "search");
        assert!(permitted(&[], &route_to_server("tools", "tools", "x")));
        assert!(!permitted(&[], &reference));
        assert!(permitted(&[grant("team-a", None)], &reference));
        assert!(permitted(&[grant("team-a", Some("search"))], &reference));
        assert!(!permitted(&[grant("team-a", Some("other"))], &reference));
        assert!(!permitted(&[grant("team-b", None)], &reference));
        let mut wrong_kind = grant("team-a", None);
        wrong_kind.from[0].kind = "HTTPRoute".into();
        assert!(!permitted(&[wrong_kind], &reference));
    }

    #[test]
    fn without_a_listed_crd_nothing_crosses_namespaces() {
        let (grants, _writer) = cache();
        assert_eq!(
            grants.check(&route_to_server("a", "b", "s")),
            ReferenceGrantCheck::NotInstalled
        );
        assert_eq!(
            grants.check(&route_to_server("a", "a", "s")),
            ReferenceGrantCheck::Permitted
        );
        assert!(
            !grants.set_installed(false),
            "unknown to absent changes no answer"
        );
        assert!(grants.set_installed(true));
        assert_eq!(
            grants.check(&route_to_server("a", "b", "s")),
            ReferenceGrantCheck::NotPermitted
        );
        assert!(grants.set_installed(false), "the CRD went");
    }
}
