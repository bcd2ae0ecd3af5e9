//! Which namespaces may attach objects to a gateway: the gateway owner's consent,
//! modelled on Gateway API's `allowedRoutes.namespaces` (`from: Same | All | Selector`).
//!
//! A namespace is a trust boundary: a ToolRoute names the gateway it wants to join, and
//! anyone who may write ToolRoutes in *some* namespace could otherwise add their MCP
//! server to any gateway in the cluster. So the gateway's owner decides, with the
//! annotation [`ALLOWED_ROUTES_ANNOTATION`] on the gateway, or a platform team with the
//! same annotation on the class (a default for every gateway of the class that sets
//! none). Without either, only objects of the gateway's own namespace are admitted
//! (`Same`, as in Gateway API). A value that cannot be read admits only the gateway's
//! own namespace too (it fails closed) and says why on the gateway.
//!
//! The runtime applies the consent before `desired_state` sees anything: refused objects
//! are never offered through [`Context::attached`](crate::Context::attached), so they can
//! reach no config, and they get `Accepted=False` with reason [`NOT_ALLOWED_BY_GATEWAY`].

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use aigateway_api::conditions::Reason;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PartialObjectMeta};
use kube::core::{Expression, Selector, SelectorExt};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::{WatchStreamExt, reflector as reflect};
use kube::{Client, ResourceExt};
use serde::Deserialize;

use crate::names::ALLOWED_ROUTES_ANNOTATION;
use crate::watches::{CacheTracking, mark_listed, tracked};

/// The reason of `Accepted=False` on an attached object from a namespace its gateway
/// does not admit (Gateway API's reason for the same case).
pub const NOT_ALLOWED_BY_GATEWAY: Reason = Reason::from_static("NotAllowedByGateway");

/// The reason of the gateway's `ResolvedRefs=False` when its (or its class's)
/// [`ALLOWED_ROUTES_ANNOTATION`] cannot be read.
pub const INVALID_ALLOWED_ROUTES: Reason = Reason::from_static("InvalidAllowedRoutes");

/// The longest annotation value read; a longer one is refused as malformed.
pub const MAX_ALLOWED_ROUTES_BYTES: usize = 4096;

/// Which namespaces may attach objects to a gateway.
///
/// ```
/// use std::collections::BTreeMap;
/// use aigateway_runtime::attached::AllowedRoutes;
///
/// assert_eq!(AllowedRoutes::parse("Same"), Ok(AllowedRoutes::Same));
/// let tools = AllowedRoutes::parse("{from: Selector, selector: {matchLabels: {tools: shared}}}").unwrap();
/// let labels = BTreeMap::from([("tools".to_owned(), "shared".to_owned())]);
/// assert!(tools.admits("gateways", "team-a", Some(&labels)));
/// assert!(!tools.admits("gateways", "team-b", Some(&BTreeMap::new())));
/// assert!(AllowedRoutes::parse("{from: Selector, selector: {matchLabel: {tools: shared}}}").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AllowedRoutes {
    /// Only the gateway's own namespace (the default).
    #[default]
    Same,
    /// Every namespace.
    All,
    /// Namespaces whose labels match the selector (the gateway's own included only if
    /// it matches, as in Gateway API).
    Selector(Selector),
}

/// Gateway API's `RouteNamespaces`, as the annotation spells it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RouteNamespaces {
    from: String,
    #[serde(default)]
    selector: Option<SelectorSpec>,
}

/// A `LabelSelector` that refuses unknown fields: a misspelt `matchLabel` must not turn
/// into the empty selector, which admits every namespace.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SelectorSpec {
    #[serde(default)]
    match_labels: BTreeMap<String, String>,
    #[serde(default)]
    match_expressions: Vec<Requirement>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Requirement {
    key: String,
    operator: String,
    #[serde(default)]
    values: Vec<String>,
}

impl AllowedRoutes {
    /// Reads an annotation value: `Same`, `All`, or Gateway API's `RouteNamespaces` as
    /// YAML or JSON (`{from: Selector, selector: {matchLabels: {..}, matchExpressions:
    /// [..]}}`; `{from: All}` and `{from: Same}` too). Returns why otherwise.
    pub fn parse(value: &str) -> Result<Self, String> {
        if value.len() > MAX_ALLOWED_ROUTES_BYTES {
            return Err(format!(
                "it is longer than {MAX_ALLOWED_ROUTES_BYTES} bytes"
            ));
        }
        match value.trim() {
            "Same" => return Ok(Self::Same),
            "All" => return Ok(Self::All),
            "Selector" => {
                return Err("from: Selector needs a selector, e.g. {from: Selector, selector: {matchLabels: {tools: shared}}}".to_owned());
            }
            _ => {}
        }
        let spec: RouteNamespaces = serde_saphyr::from_str(value)
            .map_err(|_| "it is neither Same nor All nor a mapping {from: ..., selector: ...} with only those fields".to_owned())?;
        match (spec.from.as_str(), spec.selector) {
            ("Same", None) => Ok(Self::Same),
            ("All", None) => Ok(Self::All),
            ("Same" | "All", Some(_)) => Err(format!(
                "a selector is only read with from: Selector, not from: {}",
                spec.from
            )),
            ("Selector", None) => Err("from: Selector needs a selector".to_owned()),
            ("Selector", Some(selector)) => selector.into_selector().map(Self::Selector),
            (other, _) => Err(format!(
                "from must be Same, All or Selector, not {:?}",
                other.chars().take(64).collect::<String>()
            )),
        }
    }

    /// Whether an object in `namespace` (whose labels are `labels`, when known) may
    /// attach to a gateway in `gateway_namespace`. Unknown labels admit nothing under a
    /// selector.
    pub fn admits(
        &self,
        gateway_namespace: &str,
        namespace: &str,
        labels: Option<&BTreeMap<String, String>>,
    ) -> bool {
        match self {
            Self::Same => namespace == gateway_namespace,
            Self::All => true,
            Self::Selector(selector) => labels.is_some_and(|labels| selector.matches(labels)),
        }
    }

    /// Whether the decision depends on namespace labels.
    pub fn reads_namespace_labels(&self) -> bool {
        matches!(self, Self::Selector(_))
    }
}

impl SelectorSpec {
    fn into_selector(self) -> Result<Selector, String> {
        let mut selector: Selector = self.match_labels.into_iter().collect();
        for (index, requirement) in self.match_expressions.into_iter().enumerate() {
            let values: std::collections::BTreeSet<String> =
                requirement.values.into_iter().collect();
            let key = requirement.key;
            let expression = match requirement.operator.as_str() {
                "In" if !values.is_empty() => Expression::In(key, values),
                "NotIn" if !values.is_empty() => Expression::NotIn(key, values),
                "Exists" if values.is_empty() => Expression::Exists(key),
                "DoesNotExist" if values.is_empty() => Expression::DoesNotExist(key),
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {
                    return Err(format!(
                        "selector.matchExpressions[{index}]: In and NotIn need values, Exists and DoesNotExist take none"
                    ));
                }
                _ => {
                    return Err(format!(
                        "selector.matchExpressions[{index}].operator must be In, NotIn, Exists or DoesNotExist"
                    ));
                }
            };
            selector.extend(expression);
        }
        Ok(selector)
    }
}

/// The consent that applies to a gateway, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    /// The rule applied: the gateway's annotation, else its class's, else `Same`; `Same`
    /// too when the annotation that applies cannot be read.
    pub allowed: AllowedRoutes,
    /// Why the annotation that applies was not read (for the gateway's status).
    pub problem: Option<String>,
}

/// The consent of a gateway whose annotations are `gateway` and whose class (name and
/// annotations) is `class`, if known.
pub fn consent_of(
    gateway: Option<&BTreeMap<String, String>>,
    class: Option<(&str, Option<&BTreeMap<String, String>>)>,
) -> Consent {
    let from_gateway = gateway
        .and_then(|a| a.get(ALLOWED_ROUTES_ANNOTATION))
        .map(|value| (value, "the gateway".to_owned()));
    let from_class = || {
        let (name, annotations) = class?;
        annotations?
            .get(ALLOWED_ROUTES_ANNOTATION)
            .map(|value| (value, format!("its class {name}")))
    };
    let Some((value, source)) = from_gateway.or_else(from_class) else {
        return Consent {
            allowed: AllowedRoutes::Same,
            problem: None,
        };
    };
    match AllowedRoutes::parse(value) {
        Ok(allowed) => Consent {
            allowed,
            problem: None,
        },
        Err(why) => Consent {
            allowed: AllowedRoutes::Same,
            problem: Some(format!(
                "annotation {ALLOWED_ROUTES_ANNOTATION} of {source} cannot be read: {why}; write Same, All or {{from: Selector, selector: {{matchLabels: {{...}}}}}}. Until then only routes of the gateway's own namespace are admitted"
            )),
        },
    }
}

/// The message on an object its gateway does not admit. It names no value of the
/// gateway's owner (not even which rule applies): the object's owner learns only that
/// the gateway has not consented, and who can change that.
pub(crate) fn not_allowed_message(gateway: &str, namespace: &str) -> String {
    format!(
        "gateway {gateway} does not admit objects from namespace {namespace}: its owner (or the platform team, on its class) allows that with the annotation {ALLOWED_ROUTES_ANNOTATION}; not served"
    )
}

/// The labels of the namespaces the operator watches, for [`AllowedRoutes::Selector`]:
/// a metadata-only watch of Namespaces that keeps names and labels and nothing else
/// (annotations, owner references and managed fields are dropped as they arrive).
pub(crate) struct NamespaceLabels {
    store: Store<PartialObjectMeta<Namespace>>,
}

impl NamespaceLabels {
    /// The labels of `namespace`, `None` when it is not known.
    pub(crate) fn labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        self.store
            .get(&ObjectRef::new(namespace))
            .map(|ns| ns.metadata.labels.clone().unwrap_or_default())
    }
}

fn labels_hash(labels: Option<&BTreeMap<String, String>>) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    labels.hash(&mut hasher);
    hasher.finish()
}

/// Starts watching the namespaces' labels (only `namespace` when the operator watches
/// one). The stream drives the watch and yields the name of every namespace whose labels
/// changed, appeared or went (after a relist too), once the cache holds the change.
pub(crate) fn watch_namespaces(
    tracking: &CacheTracking<'_>,
    client: &Client,
    namespace: Option<&str>,
) -> (
    Arc<NamespaceLabels>,
    impl Stream<Item = String> + Send + 'static,
) {
    let api: Api<PartialObjectMeta<Namespace>> = Api::all(client.clone());
    let mut config = watcher::Config::default();
    if let Some(namespace) = namespace {
        config = config.fields(&format!("metadata.name={namespace}"));
    }
    // `Api<PartialObjectMeta<_>>`: the API server sends metadata only.
    let events = watcher(api, config).modify(|ns| {
        let labels = ns.metadata.labels.take();
        ns.metadata = ObjectMeta {
            name: ns.metadata.name.take(),
            resource_version: ns.metadata.resource_version.take(),
            labels,
            ..Default::default()
        };
    });
    let cache_name = tracking.key("namespaces");
    let listed = mark_listed(tracking.gate, cache_name.clone());
    let (reader, writer) = reflector::store::<PartialObjectMeta<Namespace>>();
    let mut known: HashMap<String, u64> = HashMap::new();
    let mut relist: Option<HashMap<String, u64>> = None;
    let changes = reflect(writer, tracked(tracking.health, cache_name, events))
        .inspect(listed)
        .filter_map(move |event| {
            let changed: Vec<String> = match event {
                Ok(watcher::Event::Apply(ns)) => {
                    let name = ns.name_any();
                    let hash = labels_hash(ns.metadata.labels.as_ref());
                    if known.insert(name.clone(), hash) == Some(hash) {
                        Vec::new()
                    } else {
                        vec![name]
                    }
                }
                Ok(watcher::Event::Delete(ns)) => {
                    let name = ns.name_any();
                    known.remove(&name).map(|_| name).into_iter().collect()
                }
                Ok(watcher::Event::Init) => {
                    relist = Some(HashMap::new());
                    Vec::new()
                }
                Ok(watcher::Event::InitApply(ns)) => {
                    if let Some(relist) = relist.as_mut() {
                        relist.insert(ns.name_any(), labels_hash(ns.metadata.labels.as_ref()));
                    }
                    Vec::new()
                }
                Ok(watcher::Event::InitDone) => match relist.take() {
                    Some(fresh) => {
                        let mut changed: Vec<String> = fresh
                            .iter()
                            .filter(|(name, hash)| known.get(*name) != Some(*hash))
                            .map(|(name, _)| name.clone())
                            .collect();
                        changed.extend(
                            known
                                .keys()
                                .filter(|name| !fresh.contains_key(*name))
                                .cloned(),
                        );
                        known = fresh;
                        changed
                    }
                    None => Vec::new(),
                },
                Err(_) => Vec::new(),
            };
            futures::future::ready(Some(futures::stream::iter(changed)))
        })
        .flatten();
    (Arc::new(NamespaceLabels { store: reader }), changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn same_is_the_default_and_admits_only_the_gateways_namespace() {
        let consent = consent_of(None, None);
        assert_eq!(consent.allowed, AllowedRoutes::Same);
        assert!(consent.allowed.admits("gw", "gw", None));
        assert!(!consent.allowed.admits("gw", "attacker", None));
    }

    #[test]
    fn the_gateways_annotation_wins_over_its_classs() {
        let all = labels(&[(ALLOWED_ROUTES_ANNOTATION, "All")]);
        let same = labels(&[(ALLOWED_ROUTES_ANNOTATION, "Same")]);
        assert_eq!(
            consent_of(Some(&same), Some(("c", Some(&all)))).allowed,
            AllowedRoutes::Same
        );
        assert_eq!(
            consent_of(Some(&BTreeMap::new()), Some(("c", Some(&all)))).allowed,
            AllowedRoutes::All
        );
    }

    #[test]
    fn selectors_match_namespace_labels_and_unknown_labels_admit_nothing() {
        let allowed = AllowedRoutes::parse(
            r#"{"from": "Selector", "selector": {"matchLabels": {"team": "a"}, "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]}}"#,
        )
        .unwrap();
        assert!(allowed.admits("gw", "x", Some(&labels(&[("team", "a"), ("env", "prod")]))));
        assert!(!allowed.admits("gw", "x", Some(&labels(&[("team", "a")]))));
        assert!(!allowed.admits("gw", "x", None));
        // As in Gateway API, the gateway's own namespace is not special under a selector.
        assert!(!allowed.admits("gw", "gw", Some(&BTreeMap::new())));
    }

    #[test]
    fn malformed_values_fail_closed_and_say_why_on_the_gateway() {
        for value in [
            "all",
            "Selector",
            "{from: Selector}",
            "{from: Selector, selector: {matchLabel: {team: a}}}",
            "{from: All, selector: {matchLabels: {team: a}}}",
            "{from: Selector, selector: {matchExpressions: [{key: a, operator: Exists, values: [x]}]}}",
            "{from: Selector, selector: {matchExpressions: [{key: a, operator: Equals}]}}",
            "[All]",
        ] {
            let annotations = labels(&[(ALLOWED_ROUTES_ANNOTATION, value)]);
            let consent = consent_of(Some(&annotations), None);
            assert_eq!(consent.allowed, AllowedRoutes::Same, "{value}");
            let problem = consent.problem.expect(value);
            assert!(problem.contains("of the gateway"), "{problem}");
        }
        let long = labels(&[(ALLOWED_ROUTES_ANNOTATION, &"x".repeat(5000))]);
        let consent = consent_of(None, Some(("shared", Some(&long))));
        assert!(consent.problem.unwrap().contains("its class shared"));
    }

    #[test]
    fn the_refusal_names_no_value_of_the_gateways_owner() {
        let message = not_allowed_message("gw/tools", "attacker");
        assert!(message.contains("gw/tools") && message.contains("attacker"));
        assert!(!message.contains("Same") && !message.contains("Selector"));
    }
}
