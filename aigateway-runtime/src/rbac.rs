//! The least-privilege RBAC rules an operator needs, derived from what its
//! implementations declare, so that an install bundle cannot drift from the code.
//!
//! What the loop does with each kind, and the verbs that takes:
//!
//! | kind | what the loop does | verbs |
//! |---|---|---|
//! | gateway (e.g. `aigateways`) | watches; marks the ones whose conditions it owns, and the cleanup finalizer | list, watch, patch |
//! | class (e.g. `aigatewayclasses`) | watches; the finalizer that keeps a used class | list, watch, patch |
//! | gateway and class `/status` | conditions, `url` | patch |
//! | child kinds ([`child_kinds`](crate::GatewayImplementation::child_kinds), [`optional_child_kinds`](crate::GatewayImplementation::optional_child_kinds)) | watches; reads a name's owner before the first apply; server-side apply (creates); prunes | get, list, watch, create, patch, delete |
//! | related kinds cached in full | watches | list, watch |
//! | related kinds cached content-on-read (Secrets, ConfigMaps) | watches metadata; reads the content of what a gateway read | get, list, watch |
//! | a [`named`](crate::RelatedWatch::named) related watch | the same, for one name only | the same, with `resourceNames: [<name>]` |
//! | attached kind (e.g. `toolroutes`) | watches; marks the ones whose conditions it owns | list, watch, patch |
//! | attached kind `/status` | conditions, `url` | patch |
//! | policy kinds ([`policies`](crate::GatewayImplementation::policies)) | watches | list, watch |
//! | policy kinds `/status` | `ancestors` entries | patch |
//! | `namespaces` (with an attached kind) | watches metadata, for gateways that admit attached objects by namespace label | list, watch |
//! | `gateway.networking.k8s.io` `referencegrants` ([`uses_reference_grants`](crate::GatewayImplementation::uses_reference_grants)) | watches | list, watch |
//! | `events.k8s.io` events | publishes transitions | create, patch |
//!
//! A named watch lists and watches with the field selector `metadata.name=<name>`, which
//! the API server authorises against `resourceNames` for `list` and `watch` as it does
//! for `get`: the operator can read no other object of the kind. (When the kind is also
//! granted without names, for example ConfigMaps that are children too, the named rule
//! adds nothing and is left out.)
//!
//! The leader-election Lease lives in the operator's namespace: [`lease_rules`] is for
//! a Role there, not for the ClusterRole.
//!
//! ```
//! use aigateway_api::AiGateway;
//! use aigateway_runtime::rbac::ClusterRules;
//! use aigateway_runtime::{Context, DesiredState, GatewayImplementation, ImplementationError, RelatedWatch};
//! use k8s_openapi::api::core::v1::Secret;
//!
//! struct Router;
//!
//! #[async_trait::async_trait]
//! impl GatewayImplementation for Router {
//!     fn controller_name(&self) -> &str { "example.com/router" }
//!     fn related(&self) -> Vec<RelatedWatch> { vec![RelatedWatch::new::<Secret>().named("router-keys")] }
//!     async fn desired_state(&self, _: &AiGateway, _: &Context) -> Result<DesiredState, ImplementationError> {
//!         Ok(DesiredState::new())
//!     }
//! }
//!
//! let rules = ClusterRules::new().gateway(&Router);
//! let yaml = rules.cluster_role_yaml("router");
//! assert!(yaml.contains("kind: ClusterRole"));
//! assert!(!rules.allows("", "secrets", "list"), "not every Secret");
//! assert!(rules.allows_named("", "secrets", "list", "router-keys"));
//! assert!(!rules.allows_named("", "secrets", "patch", "router-keys"));
//! ```

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::api::ApiResource;

use crate::implementation::GatewayImplementation;
use crate::kind::GatewayKind;
use crate::related::RelatedCache;

/// Verbs in the order Kubernetes documents them, so that generated rules read naturally.
const VERB_ORDER: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

const WATCH: &[&str] = &["list", "watch"];
const WATCH_AND_MARK: &[&str] = &["list", "watch", "patch"];
const STATUS: &[&str] = &["patch"];
const CHILDREN: &[&str] = &["get", "list", "watch", "create", "patch", "delete"];
const CONTENT_ON_READ: &[&str] = &["get", "list", "watch"];

/// The ClusterRole rules of an operator: the union of what each of its implementations
/// needs. Build it with one [`gateway`](Self::gateway) call per implementation, as the
/// operator is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterRules {
    /// `(apiGroup, resource)` to verbs.
    grants: BTreeMap<(String, String), BTreeSet<String>>,
    /// `(apiGroup, resource, name)` to verbs, for named watches.
    named: BTreeMap<(String, String, String), BTreeSet<String>>,
}

impl Default for ClusterRules {
    fn default() -> Self {
        Self::new()
    }
}

impl ClusterRules {
    /// The rules every operator needs: publishing events.
    pub fn new() -> Self {
        let mut rules = Self {
            grants: BTreeMap::new(),
            named: BTreeMap::new(),
        };
        rules.grant("events.k8s.io", "events", &["create", "patch"]);
        rules
    }

    /// Adds what `implementation` needs: its gateway and class kinds, child kinds,
    /// related watches, attached kind and policy kinds.
    pub fn gateway<K: GatewayKind>(
        mut self,
        implementation: &impl GatewayImplementation<K>,
    ) -> Self {
        let gateway = ApiResource::erase::<K::Gateway>(&());
        let class = ApiResource::erase::<K::Class>(&());
        for resource in [&gateway, &class] {
            self.grant(&resource.group, &resource.plural, WATCH_AND_MARK);
            self.grant(
                &resource.group,
                &format!("{}/status", resource.plural),
                STATUS,
            );
        }
        let optional = implementation.optional_child_kinds();
        for child in implementation.child_kinds().iter().chain(&optional) {
            self.grant(&child.group, &child.plural, CHILDREN);
        }
        for watch in implementation.related() {
            let verbs = match watch.cache {
                RelatedCache::Full => WATCH,
                RelatedCache::ContentOnRead => CONTENT_ON_READ,
            };
            let (group, plural) = (&watch.resource.group, &watch.resource.plural);
            match &watch.name {
                None => self.grant(group, plural, verbs),
                Some(name) => {
                    self.named
                        .entry((group.clone(), plural.clone(), name.clone()))
                        .or_default()
                        .extend(verbs.iter().map(|v| (*v).to_owned()));
                }
            }
        }
        if let Some(attached) = implementation.attached() {
            let resource = attached.resource();
            self.grant(&resource.group, &resource.plural, WATCH_AND_MARK);
            self.grant(
                &resource.group,
                &format!("{}/status", resource.plural),
                STATUS,
            );
            // Namespace labels, for `AllowedRoutes::Selector`.
            self.grant("", "namespaces", WATCH);
        }
        for policy in implementation.policies() {
            let resource = policy.resource();
            self.grant(&resource.group, &resource.plural, WATCH);
            self.grant(
                &resource.group,
                &format!("{}/status", resource.plural),
                STATUS,
            );
        }
        if implementation.uses_reference_grants() {
            let grants = crate::reference_grants::resource();
            self.grant(&grants.group, &grants.plural, WATCH);
        }
        self
    }

    fn grant(&mut self, group: &str, resource: &str, verbs: &[&str]) {
        self.grants
            .entry((group.to_owned(), resource.to_owned()))
            .or_default()
            .extend(verbs.iter().map(|v| (*v).to_owned()));
    }

    /// Whether `verb` on `resource` (plural, `/status` for the subresource) of `group`
    /// (`""` for core) is granted.
    pub fn allows(&self, group: &str, resource: &str, verb: &str) -> bool {
        self.grants
            .get(&(group.to_owned(), resource.to_owned()))
            .is_some_and(|verbs| verbs.contains(verb))
    }

    /// Whether `verb` on the object `name` of `resource` of `group` is granted, by a rule
    /// for every name or one for that name.
    pub fn allows_named(&self, group: &str, resource: &str, verb: &str, name: &str) -> bool {
        self.allows(group, resource, verb)
            || self
                .named
                .get(&(group.to_owned(), resource.to_owned(), name.to_owned()))
                .is_some_and(|verbs| verbs.contains(verb))
    }

    /// Every `(apiGroup, resource, verb)` granted for all names, for comparisons (rules
    /// restricted to names are not included).
    pub fn grants(&self) -> BTreeSet<(String, String, String)> {
        self.grants
            .iter()
            .flat_map(|((group, resource), verbs)| {
                verbs
                    .iter()
                    .map(move |verb| (group.clone(), resource.clone(), verb.clone()))
            })
            .collect()
    }

    /// The rules, one per API group and set of verbs, resources sorted; then one per
    /// named resource and set of verbs not already granted for every name.
    pub fn rules(&self) -> Vec<PolicyRule> {
        let ordered = |verbs: BTreeSet<String>| {
            let mut verbs: Vec<String> = verbs.into_iter().collect();
            verbs.sort_by_key(|verb| {
                VERB_ORDER
                    .iter()
                    .position(|known| known == verb)
                    .unwrap_or(VERB_ORDER.len())
            });
            verbs
        };
        let mut grouped: BTreeMap<(String, Vec<String>), Vec<String>> = BTreeMap::new();
        for ((group, resource), verbs) in &self.grants {
            grouped
                .entry((group.clone(), ordered(verbs.clone())))
                .or_default()
                .push(resource.clone());
        }
        let mut rules: Vec<PolicyRule> = grouped
            .into_iter()
            .map(|((group, verbs), resources)| PolicyRule {
                api_groups: Some(vec![group]),
                resources: Some(resources),
                verbs,
                ..Default::default()
            })
            .collect();
        let mut named: BTreeMap<(String, String, Vec<String>), Vec<String>> = BTreeMap::new();
        for ((group, resource, name), verbs) in &self.named {
            let unrestricted = self.grants.get(&(group.clone(), resource.clone()));
            let missing: BTreeSet<String> = verbs
                .iter()
                .filter(|verb| !unrestricted.is_some_and(|granted| granted.contains(*verb)))
                .cloned()
                .collect();
            if !missing.is_empty() {
                named
                    .entry((group.clone(), resource.clone(), ordered(missing)))
                    .or_default()
                    .push(name.clone());
            }
        }
        rules.extend(
            named
                .into_iter()
                .map(|((group, resource, verbs), names)| PolicyRule {
                    api_groups: Some(vec![group]),
                    resources: Some(vec![resource]),
                    resource_names: Some(names),
                    verbs,
                    ..Default::default()
                }),
        );
        rules
    }

    /// A ClusterRole called `name` with [`rules`](Self::rules).
    pub fn cluster_role(&self, name: &str) -> ClusterRole {
        ClusterRole {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..Default::default()
            },
            rules: Some(self.rules()),
            ..Default::default()
        }
    }

    /// [`cluster_role`](Self::cluster_role) as a YAML document, `apiVersion` and `kind`
    /// included, for an install bundle or `kubectl apply -f -`.
    pub fn cluster_role_yaml(&self, name: &str) -> String {
        let mut value =
            serde_json::to_value(self.cluster_role(name)).expect("a ClusterRole serialises");
        if let Some(map) = value.as_object_mut() {
            map.insert("apiVersion".into(), ClusterRole::api_version(&()).into());
            map.insert("kind".into(), ClusterRole::kind(&()).into());
        }
        serde_saphyr::to_string(&value).expect("JSON values serialise to YAML")
    }
}

/// The rules that let the operator check scrapes of `/metrics` served securely (see
/// [`MetricsServing::Secure`](crate::operator::MetricsServing::Secure)): a `TokenReview` for the
/// scraper's token and a `SubjectAccessReview` for its user (what Kubernetes'
/// `system:auth-delegator` role grants, and kubebuilder's `metrics-auth-role`), for a
/// ClusterRole bound to the operator's identity.
pub fn metrics_auth_rules() -> Vec<PolicyRule> {
    [
        ("authentication.k8s.io", "tokenreviews"),
        ("authorization.k8s.io", "subjectaccessreviews"),
    ]
    .into_iter()
    .map(|(group, resource)| PolicyRule {
        api_groups: Some(vec![group.into()]),
        resources: Some(vec![resource.into()]),
        verbs: vec!["create".into()],
        ..Default::default()
    })
    .collect()
}

/// The rules a scraper (Prometheus' ServiceAccount) needs to read `/metrics` served
/// securely: `get` on the non-resource URL `/metrics`, for a ClusterRole bound to it.
pub fn metrics_reader_rules() -> Vec<PolicyRule> {
    vec![PolicyRule {
        non_resource_urls: Some(vec!["/metrics".into()]),
        verbs: vec!["get".into()],
        ..Default::default()
    }]
}

/// The rules for a Role in the operator's namespace: the leader-election Lease `name`
/// (created once, then read and renewed by patch: only that Lease, since `create`
/// cannot be limited to a name and the others can).
pub fn lease_rules(name: &str) -> Vec<PolicyRule> {
    let rule = |verbs: &[&str], names: Option<Vec<String>>| PolicyRule {
        api_groups: Some(vec!["coordination.k8s.io".into()]),
        resources: Some(vec!["leases".into()]),
        resource_names: names,
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        ..Default::default()
    };
    vec![
        rule(&["create"], None),
        rule(&["get", "patch"], Some(vec![name.to_owned()])),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        AttachedKind, Context, DesiredState, ImplementationError, RelatedWatch, ToolGatewayKind,
    };
    use aigateway_api::{Guard, ToolGateway};
    use k8s_openapi::api::core::v1::Secret;

    struct Tools;

    #[async_trait::async_trait]
    impl GatewayImplementation<ToolGatewayKind> for Tools {
        fn controller_name(&self) -> &str {
            "example.com/tools"
        }
        fn related(&self) -> Vec<RelatedWatch> {
            vec![RelatedWatch::new::<Secret>(), RelatedWatch::new::<Guard>()]
        }
        fn attached(&self) -> Option<AttachedKind<ToolGatewayKind>> {
            Some(ToolGatewayKind::routes())
        }
        async fn desired_state(
            &self,
            _: &ToolGateway,
            _: &Context,
        ) -> Result<DesiredState, ImplementationError> {
            Ok(DesiredState::new())
        }
    }

    struct Named;

    #[async_trait::async_trait]
    impl GatewayImplementation for Named {
        fn controller_name(&self) -> &str {
            "example.com/named"
        }
        fn related(&self) -> Vec<RelatedWatch> {
            vec![
                RelatedWatch::new::<Secret>().named("keys"),
                // ConfigMaps are children too: the unrestricted grant covers the name.
                RelatedWatch::new::<k8s_openapi::api::core::v1::ConfigMap>().named("routes"),
            ]
        }
        async fn desired_state(
            &self,
            _: &aigateway_api::AiGateway,
            _: &Context,
        ) -> Result<DesiredState, ImplementationError> {
            Ok(DesiredState::new())
        }
    }

    #[test]
    fn a_named_watch_is_granted_for_its_name_only() {
        let rules = ClusterRules::new().gateway(&Named);
        assert!(!rules.allows("", "secrets", "get"));
        assert!(rules.allows_named("", "secrets", "watch", "keys"));
        assert!(!rules.allows_named("", "secrets", "watch", "other"));
        let named: Vec<PolicyRule> = rules
            .rules()
            .into_iter()
            .filter(|r| r.resource_names.is_some())
            .collect();
        assert_eq!(named.len(), 1, "{named:?}");
        assert_eq!(
            named[0].resources.as_deref(),
            Some(&["secrets".to_owned()][..])
        );
        assert_eq!(
            named[0].resource_names.as_deref(),
            Some(&["keys".to_owned()][..])
        );
        assert_eq!(named[0].verbs, ["get", "list", "watch"]);
    }

    #[test]
    fn rules_follow_the_declarations_and_grant_nothing_else() {
        let rules = ClusterRules::new().gateway(&Tools);
        let group = aigateway_api::GROUP;
        assert!(rules.allows(group, "toolgateways", "patch"));
        assert!(rules.allows(group, "toolgatewayclasses/status", "patch"));
        assert!(rules.allows(group, "toolroutes/status", "patch"));
        assert!(rules.allows(group, "guards", "watch"));
        assert!(!rules.allows(group, "guards", "get"), "cached in full");
        assert!(rules.allows("", "secrets", "get"), "content on read");
        assert!(!rules.allows("", "secrets", "patch"));
        assert!(rules.allows("apps", "deployments", "delete"));
        assert!(!rules.allows(group, "aigateways", "list"), "not declared");
        assert!(
            !rules.allows("", "configmaps", "update"),
            "apply is a patch"
        );
        let yaml = rules.cluster_role_yaml("tools");
        assert!(yaml.contains("kind: ClusterRole"), "{yaml}");
        assert!(yaml.contains("name: tools"), "{yaml}");
        let core = rules
            .rules()
            .into_iter()
            .find(|r| r.api_groups.as_deref() == Some(&["".to_owned()][..]) && r.verbs.len() == 6)
            .expect("a core rule for the children");
        assert_eq!(
            core.verbs,
            ["get", "list", "watch", "create", "patch", "delete"]
        );
        assert_eq!(
            core.resources.as_deref(),
            Some(&["configmaps".to_owned(), "services".to_owned()][..])
        );
    }
}
