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
//! | child kinds ([`child_kinds`](crate::GatewayImplementation::child_kinds)) | watches; reads a name's owner before the first apply; server-side apply (creates); prunes | get, list, watch, create, patch, delete |
//! | related kinds cached in full | watches | list, watch |
//! | related kinds cached content-on-read (Secrets, ConfigMaps) | watches metadata; reads the content of what a gateway read | get, list, watch |
//! | attached kind (e.g. `toolroutes`) | watches; marks the ones whose conditions it owns | list, watch, patch |
//! | attached kind `/status` | conditions, `url` | patch |
//! | `events.k8s.io` events | publishes transitions | create, patch |
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
//! assert!(rules.allows("", "secrets", "get"));
//! assert!(!rules.allows("", "secrets", "patch"));
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
        };
        rules.grant("events.k8s.io", "events", &["create", "patch"]);
        rules
    }

    /// Adds what `implementation` needs: its gateway and class kinds, child kinds,
    /// related watches and attached kind.
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
        for child in implementation.child_kinds() {
            self.grant(&child.group, &child.plural, CHILDREN);
        }
        for watch in implementation.related() {
            let verbs = match watch.cache {
                RelatedCache::Full => WATCH,
                RelatedCache::ContentOnRead => CONTENT_ON_READ,
            };
            self.grant(&watch.resource.group, &watch.resource.plural, verbs);
        }
        if let Some(attached) = implementation.attached() {
            let resource = attached.resource();
            self.grant(&resource.group, &resource.plural, WATCH_AND_MARK);
            self.grant(
                &resource.group,
                &format!("{}/status", resource.plural),
                STATUS,
            );
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

    /// Every `(apiGroup, resource, verb)` granted, for comparisons.
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

    /// The rules, one per API group and set of verbs, resources sorted.
    pub fn rules(&self) -> Vec<PolicyRule> {
        let mut grouped: BTreeMap<(String, Vec<String>), Vec<String>> = BTreeMap::new();
        for ((group, resource), verbs) in &self.grants {
            let mut verbs: Vec<String> = verbs.iter().cloned().collect();
            verbs.sort_by_key(|verb| {
                VERB_ORDER
                    .iter()
                    .position(|known| known == verb)
                    .unwrap_or(VERB_ORDER.len())
            });
            grouped
                .entry((group.clone(), verbs))
                .or_default()
                .push(resource.clone());
        }
        grouped
            .into_iter()
            .map(|((group, verbs), resources)| PolicyRule {
                api_groups: Some(vec![group]),
                resources: Some(resources),
                verbs,
                ..Default::default()
            })
            .collect()
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

/// The rules for a Role in the operator's namespace: the leader-election Lease (read,
/// created once, renewed by patch).
pub fn lease_rules() -> Vec<PolicyRule> {
    vec![PolicyRule {
        api_groups: Some(vec!["coordination.k8s.io".into()]),
        resources: Some(vec!["leases".into()]),
        verbs: vec!["get".into(), "create".into(), "patch".into()],
        ..Default::default()
    }]
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
