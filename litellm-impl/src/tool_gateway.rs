//! One ToolGateway and its ToolRoutes in, the LiteLLM config with `mcp_servers`, the
//! Kubernetes objects and one outcome per route out (pure).
//!
//! Every step that does not depend on what the proxy serves (names, annotations, env,
//! Guards, the config patch, authentication, the offline check, the workload objects) is
//! the AiGateway's ([`crate::render()`]); this module adds the routes.
//!
//! # Routes
//! A ToolRoute attaches to the gateway named by `spec.toolGatewayRef` (namespace
//! defaulting to the route's, see [`ToolRoute::gateway`]). Each attached route becomes
//! one `mcp_servers` entry keyed [`route_key`] (`<route-namespace>__<route-name>`, `-`
//! replaced by `_`: the pinned LiteLLM refuses `-` in server names, which it uses as the
//! separator of prefixed tool names) and is served at [`route_url`]. The entry:
//!
//! | field | from |
//! |---|---|
//! | `url` | a ToolServer's published `status.url`, else `http://<name>.<ns>.svc.cluster.local:<port><path>`; an external URL as given |
//! | `transport` | the ToolServer's `transportType`; for an external URL `sse` when its path ends in `/sse`, else `http` (as the Go operator) |
//! | `allowed_tools`, `disallowed_tools` | the exact names of `toolFilter` where LiteLLM's exact matching means the same ([`tool_filter`]) |
//! | `allow_all_keys` | `true`: any key the proxy accepts may use the route (as the Go operator) |
//! | `timeout`, `static_headers`, `auth_type: oauth2` and its keys | the route's [`LiteLlmToolRoutePolicy`], if any; its credentials reach the container through the gateway's Secret `<gateway>-route-credentials` ([`policies`]) |
//!
//! # Where the Go operator is wrong and this renderer is not
//! - **Key collisions** (`a--b/c` and `a/b--c` both give `a__b__c` in the Go operator, so
//!   the gateway's config patch for one route's key reached the other's entry): a
//!   namespace or name holding `--` gets the suffix `__<length of the namespace>`
//!   ([`route_key`]), so no two routes share a key or a patch target; every other route
//!   keeps the Go operator's key.
//! - **Consent**: only the routes the gateway admits reach this function (the runtime
//!   filters them, see `aigateway_runtime::attached::AllowedRoutes`); a route naming a
//!   ToolServer in another namespace needs a Gateway API ReferenceGrant there, else it
//!   is `RefNotPermitted` and its message says nothing about the ToolServer.
//! - **Bounded contributions**: what one route adds to the config is bounded, and routes
//!   that would push the config past its ConfigMap's limit are refused newest first
//!   ([`bounds`]).
//! - **Tool filters**: served with the API's meaning (`*` and `?` patterns), enforced in
//!   the proxy by a guardrail shipped in the ConfigMap ([`tool_filter`]); the Go operator
//!   hands patterns to LiteLLM's exact-name lists, so `allow: [get_*]` hides every tool
//!   and `deny: [*delete*]` denies nothing. Syntax the API does not define refuses the
//!   route (`InvalidToolFilter`), with the rule.
//! - **A ToolServer without a port** is reported on the route, never routed to `:0`.
//! - **No provider-key hash**: the pod's secret hash covers only the Secrets the
//!   container reads ([`crate::referenced_secrets_hash`]), so rotating `api-key-secrets`
//!   does not restart ToolGateway pods.
//! - **Startup probe**: LiteLLM lists every server's tools before it answers; the
//!   container's [`workload::startup_probe`](crate::workload::startup_probe) (every
//!   LiteLLM pod has it) gives it five minutes.
//!
//! # Child names
//! The children are named as an AiGateway's (`<gw>`, `<gw>-config`, label `app: <gw>`),
//! as the Go operator names them: the Service name is part of every route URL agents
//! already use. An AiGateway and a ToolGateway of the same name in one namespace would
//! want the same children; the runtime reports the later one as `NameConflict` while the
//! earlier keeps its children and keeps working.

pub mod bounds;
pub mod policies;

use std::collections::{BTreeMap, BTreeSet};

use aigateway_api::tool_upstream::{
    ClusterDnsKind, ClusterDnsTarget, RouteUpstream, cluster_dns_target,
};
use aigateway_api::{NamespacedName, ToolGateway, ToolRoute};
use aigateway_runtime::reference_grants::{CrossNamespaceRef, ReferenceGrantCheck};
use serde_json::{Map, Value, json};

use crate::config;
use crate::guardrails::{GuardedTraffic, secret_env};
use crate::lookup::ObjectLookup;
use crate::names;
use crate::policy::LiteLlmToolRoutePolicy;
use crate::problem::{ObjectRef, Problem, ProblemReason};
use crate::render::{
    GatewayParts, Prepared, Rendered, SecretHashScope, WorkloadShape, finish, name_and_namespace,
    prepare,
};
use crate::settings::{LITELLM_VERSION, RenderSettings};
use crate::tool_filter::{self, CheckedFilter, RouteFilters};
use crate::{GatewayKind, RenderError};
use policies::{Credential, RouteCredentials, RoutePolicyOutcome};

/// The env var that changes LiteLLM's separator between a server's name and its tools'
/// names (default `-`); the pinned LiteLLM refuses to load a server whose name contains it.
pub const TOOL_PREFIX_SEPARATOR_ENV: &str = "MCP_TOOL_PREFIX_SEPARATOR";

/// The `mcp_servers` key of a route: `<namespace>__<name>` with every `-` replaced by
/// `_` (the Go operator's scheme; agents' route URLs depend on it), followed by
/// `__<length of the namespace>` when the namespace or the name contains `--`.
///
/// The key is a function of the route's namespace and name alone, and no two routes
/// share one (so no two routes share a config-patch target either). Namespaces and
/// names hold no `_` and neither start nor end with `-`, so the Go key holds exactly one
/// `__` (and can be split back) unless one of them contains `--`: only then would two
/// routes collide (`a/b--c` and `a--b/c` both give `a__b__c`). Such a key gets the
/// suffix, which says where the namespace ends and gives it at least three `__`, so it
/// can equal neither a Go key nor another suffixed key.
///
/// ```
/// use litellm_impl::tool_gateway::route_key;
/// assert_eq!(route_key("team-a", "web-search"), "team_a__web_search");
/// assert_eq!(route_key("a", "b--c"), "a__b__c__1");
/// assert_eq!(route_key("a--b", "c"), "a__b__c__4");
/// ```
pub fn route_key(namespace: &str, name: &str) -> String {
    let key = format!("{namespace}__{name}").replace('-', "_");
    if namespace.contains("--") || name.contains("--") {
        format!("{key}__{}", namespace.len())
    } else {
        key
    }
}

/// The cluster-local URL of a ToolGateway (its `status.url`).
pub use aigateway_api::tool_upstream::tool_gateway_url as gateway_url;

/// The URL agents use for a route: the gateway's URL, then `/mcp/<key>`.
pub fn route_url(gateway_name: &str, gateway_namespace: &str, key: &str) -> String {
    format!("{}/mcp/{key}", gateway_url(gateway_name, gateway_namespace))
}

/// Why a route is not served. [`RouteProblemReason::as_str`] is the reason of the route's
/// `Ready=False` condition; the Go operator's reasons where it has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteProblemReason {
    /// The upstream cannot be used: the ToolServer is missing or has no port, the URL is
    /// unusable, or neither (or both) of `toolServerRef` and `external` is set.
    UpstreamUnresolved,
    /// A `toolFilter` entry uses syntax the API does not define (only `*` and `?` are
    /// wildcards; see [`tool_filter::RULE`]).
    InvalidToolFilter,
    /// The route's own name or namespace cannot form a key (or a key LiteLLM would
    /// refuse under the gateway's `MCP_TOOL_PREFIX_SEPARATOR`).
    InvalidRoute,
    /// The gateway's config patch removed the route's `mcp_servers` entry.
    RemovedByPatch,
    /// The route names a ToolServer in another namespace, which no ReferenceGrant of
    /// that namespace lets it name (or the ReferenceGrant CRD is not installed). Not
    /// served, and the message says nothing about the ToolServer.
    RefNotPermitted,
    /// A string the route adds to the config is over its bound (see
    /// [`bounds`]).
    RouteTooLarge,
    /// With this route the config would not fit into its ConfigMap; routes are refused
    /// newest first until the rest fits.
    ConfigTooLarge,
}

impl RouteProblemReason {
    /// Every reason, for checks that each one is documented.
    pub const ALL: [RouteProblemReason; 7] = [
        RouteProblemReason::UpstreamUnresolved,
        RouteProblemReason::InvalidToolFilter,
        RouteProblemReason::InvalidRoute,
        RouteProblemReason::RemovedByPatch,
        RouteProblemReason::RefNotPermitted,
        RouteProblemReason::RouteTooLarge,
        RouteProblemReason::ConfigTooLarge,
    ];

    /// The CamelCase reason.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteProblemReason::UpstreamUnresolved => "UpstreamUnresolved",
            RouteProblemReason::InvalidToolFilter => "InvalidToolFilter",
            RouteProblemReason::InvalidRoute => "InvalidRoute",
            RouteProblemReason::RemovedByPatch => "RemovedByPatch",
            RouteProblemReason::RefNotPermitted => "RefNotPermitted",
            RouteProblemReason::RouteTooLarge => "RouteTooLarge",
            RouteProblemReason::ConfigTooLarge => "ConfigTooLarge",
        }
    }
}

impl From<RouteProblemReason> for aigateway_api::conditions::Reason {
    fn from(reason: RouteProblemReason) -> Self {
        // One constant per variant: the compiler checks each text.
        match reason {
            RouteProblemReason::UpstreamUnresolved => {
                const { Self::from_static("UpstreamUnresolved") }
            }
            RouteProblemReason::InvalidToolFilter => {
                const { Self::from_static("InvalidToolFilter") }
            }
            RouteProblemReason::InvalidRoute => const { Self::from_static("InvalidRoute") },
            RouteProblemReason::RemovedByPatch => const { Self::from_static("RemovedByPatch") },
            RouteProblemReason::RefNotPermitted => {
                aigateway_runtime::reference_grants::REF_NOT_PERMITTED
            }
            RouteProblemReason::RouteTooLarge => const { Self::from_static("RouteTooLarge") },
            RouteProblemReason::ConfigTooLarge => const { Self::from_static("ConfigTooLarge") },
        }
    }
}

impl std::fmt::Display for RouteProblemReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a route is not served, for its status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteProblem {
    /// The condition reason.
    pub reason: RouteProblemReason,
    /// One line: what is wrong, its effect, what to do. Never holds a secret value.
    pub message: String,
}

/// A route in the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServedRoute {
    /// Its `mcp_servers` key.
    pub key: String,
    /// The URL agents use ([`route_url`]); publish it only once the gateway is Ready.
    pub url: String,
    /// Things worth telling the route's owner that do not stop it.
    pub warnings: Vec<String>,
}

/// What became of one attached route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteState {
    /// In the config, at this key and URL.
    Served(ServedRoute),
    /// Not in the config, and why.
    NotServed(RouteProblem),
}

/// One attached route and what became of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteOutcome {
    /// The route.
    pub route: NamespacedName,
    /// Served (key, URL) or not (reason, message).
    pub state: RouteState,
}

/// Everything rendered for one ToolGateway.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderedToolGateway {
    /// The config, ConfigMap, Deployment, Service and the gateway's own problems.
    pub rendered: Rendered,
    /// The gateway's `status.url` ([`gateway_url`]).
    pub url: String,
    /// One outcome per attached route, ordered by namespace and name.
    pub routes: Vec<RouteOutcome>,
    /// What became of each [`LiteLlmToolRoutePolicy`] on each route it names, in route
    /// order.
    pub policies: Vec<RoutePolicyOutcome>,
    /// The Secret of the routes' upstream credentials the container reads
    /// (`<gateway>-route-credentials`), when any route has one.
    pub credentials: Option<RouteCredentials>,
}

/// Renders `gateway` with the routes of `routes` attached to it (others are ignored, so
/// callers may pass every route they know) into its LiteLLM config, ConfigMap,
/// Deployment and Service, and one outcome per attached route.
///
/// Reads ToolServers, Guards, GuardrailProviders, Secrets and ConfigMaps through
/// `lookup`; never writes anything. The result does not depend on the order of
/// `routes`. Errors are those of an AiGateway that cannot be rendered at all
/// ([`RenderError`]); a route that cannot be served is an outcome, not an error.
pub fn render_tool_gateway(
    gateway: &ToolGateway,
    routes: &[ToolRoute],
    lookup: &dyn ObjectLookup,
    settings: &RenderSettings,
) -> Result<RenderedToolGateway, RenderError> {
    render_tool_gateway_with_policies(gateway, routes, &[], lookup, settings)
}

/// [`render_tool_gateway`] with the [`LiteLlmToolRoutePolicy`]s in effect on the routes
/// (as the runtime offers them: at most one per route; a policy naming no attached route
/// is ignored). A valid policy sets its route's timeout and upstream credential (see
/// [`policies`]); an invalid one is left out, and a credential that cannot be read
/// leaves the route without it: the gateway and the other routes never suffer. What
/// became of each policy is in [`RenderedToolGateway::policies`]. The config patch is
/// merged after, so it wins where both set a key.
pub fn render_tool_gateway_with_policies(
    gateway: &ToolGateway,
    routes: &[ToolRoute],
    route_policies: &[LiteLlmToolRoutePolicy],
    lookup: &dyn ObjectLookup,
    settings: &RenderSettings,
) -> Result<RenderedToolGateway, RenderError> {
    let kind = GatewayKind::ToolGateway;
    let (name, namespace) = name_and_namespace(kind, &gateway.metadata)?;
    let parts = GatewayParts {
        kind,
        name,
        namespace,
        annotations: gateway.metadata.annotations.as_ref(),
        env: &gateway.spec.env,
        env_from: &gateway.spec.env_from,
        guardrails: &gateway.spec.guardrails,
        common_metadata: gateway.spec.common_metadata.as_ref(),
        pod_metadata: gateway.spec.pod_metadata.as_ref(),
    };
    let prepared = prepare(parts, settings, lookup)?;
    let this = NamespacedName {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    };

    // Every key contains `__`: a separator such as `_` would make LiteLLM refuse them.
    let separator = gateway
        .spec
        .env
        .iter()
        .find(|e| e.name == TOOL_PREFIX_SEPARATOR_ENV)
        .and_then(|e| e.value.as_deref())
        .filter(|v| !v.is_empty());

    let attached = attached_routes(&this, routes);
    let mut servers = Map::new();
    let mut filters = RouteFilters::default();
    let mut outcomes = Vec::new();
    let mut policy_outcomes = Vec::new();
    let mut credentials: BTreeMap<String, Credential> = BTreeMap::new();
    for (id, route) in &attached {
        let key = check_route_names(id).map(|()| route_key(&id.namespace, &id.name));
        let state = match key {
            Err(problem) => RouteState::NotServed(problem),
            Ok(key) if separator.is_some_and(|sep| key.contains(sep)) => {
                // The separator's value is the gateway owner's: not for the route's status.
                RouteState::NotServed(RouteProblem {
                    reason: RouteProblemReason::InvalidRoute,
                    message: format!(
                        "ToolGateway {namespace}/{name} sets {TOOL_PREFIX_SEPARATOR_ENV} to a string that occurs in the route's key {key}, and LiteLLM refuses such server names: the gateway's owner can remove {TOOL_PREFIX_SEPARATOR_ENV} from its spec.env; not served"
                    ),
                })
            }
            Ok(key) => match mcp_server_entry(route, lookup) {
                Ok((mut entry, filter)) => {
                    if let Some(credential) = policies::apply(
                        route,
                        id,
                        Some(&key),
                        Some(&mut entry),
                        route_policies,
                        lookup,
                        &mut policy_outcomes,
                    ) {
                        credentials.insert(key.clone(), credential);
                    }
                    filters.add(&key, id, filter);
                    servers.insert(key.clone(), entry);
                    RouteState::Served(ServedRoute {
                        url: route_url(name, namespace, &key),
                        key,
                        warnings: Vec::new(),
                    })
                }
                Err(problem) => RouteState::NotServed(problem),
            },
        };
        if let RouteState::NotServed(_) = state {
            // Not served: its policies are only checked.
            policies::apply(
                route,
                id,
                None,
                None,
                route_policies,
                lookup,
                &mut policy_outcomes,
            );
        }
        outcomes.push(RouteOutcome {
            route: id.clone(),
            state,
        });
    }

    // The copies of credentials are bounded as the config is.
    policies::limit(
        &mut credentials,
        bounds::refusal_order(&attached, &outcomes, namespace),
        &mut servers,
        &mut policy_outcomes,
        &this,
    );
    let credentials_name = names::route_credentials_secret_name(name);
    let finish_with =
        |prepared: Prepared<'_>, servers: Map<String, Value>, filters: &RouteFilters| {
            let mut prepared = prepared;
            let guardrails =
                prepared.add_guardrails(lookup, &BTreeSet::new(), GuardedTraffic::McpCalls);
            // The credentials of the routes in the config, read from the gateway's own
            // Secret of copies: never optional, so the proxy never starts without one
            // its config names.
            let mut copied_secret = BTreeMap::new();
            for (key, credential) in &credentials {
                if servers.contains_key(key) {
                    prepared.generated.push(secret_env(
                        &credential.var,
                        &credentials_name,
                        &credential.var,
                        false,
                    ));
                    copied_secret.insert(credential.var.clone(), credential.value.clone());
                }
            }
            let shape = WorkloadShape {
                service_port: names::TOOL_GATEWAY_SERVICE_PORT,
                secret_hash: SecretHashScope::Referenced,
                config_files: filters.config_files(),
                copied_secret,
            };
            finish(
                prepared,
                lookup,
                tool_config(servers, guardrails),
                BTreeSet::new(),
                shape,
                &|config| filters.enforce(config),
            )
        };
    // Routes that would push the config past its ConfigMap's limit are refused, other
    // namespaces' first and newest first, so that the routes the gateway already serves,
    // and its owner's, keep being served.
    let mut refusal_order = bounds::refusal_order(&attached, &outcomes, namespace);
    let mut attempt = finish_with(prepared, servers.clone(), &filters);
    let (mut rendered, merged) = loop {
        let excess = match attempt {
            Err(RenderError::ConfigTooLarge { bytes, limit, .. }) if !refusal_order.is_empty() => {
                bytes - limit
            }
            other => break other?,
        };
        for key in bounds::take_until(&mut refusal_order, &servers, excess, |key| {
            filters.config_bytes(key)
        }) {
            servers.remove(&key);
            // The guardrail's patterns of a refused route go too: they are config bytes.
            filters.remove(&key);
            for outcome in &mut outcomes {
                if matches!(&outcome.state, RouteState::Served(served) if served.key == key) {
                    outcome.state =
                        RouteState::NotServed(bounds::config_too_large(namespace, name));
                }
            }
        }
        attempt = finish_with(prepare(parts, settings, lookup)?, servers.clone(), &filters);
    };
    let patch_ref = gateway
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(names::CONFIG_PATCH_ANNOTATION))
        .map(|patch| ObjectRef::new("ConfigMap", namespace, patch));
    rendered.problems.extend(check_mcp_servers(
        &merged,
        patch_ref.unwrap_or_else(|| ObjectRef::new(kind.as_str(), namespace, name)),
    ));

    // A patch may remove an entry (`<key>: null`): such a route is not served.
    for outcome in &mut outcomes {
        if let RouteState::Served(served) = &outcome.state
            && !merged
                .get("mcp_servers")
                .and_then(|s| s.get(&served.key))
                .is_some_and(Value::is_object)
        {
            outcome.state = RouteState::NotServed(RouteProblem {
                reason: RouteProblemReason::RemovedByPatch,
                message: format!(
                    "the config patch of ToolGateway {namespace}/{name} removes mcp_servers.{}: remove that from the patch to serve the route",
                    served.key
                ),
            });
        }
    }
    let credentials = policies::credentials_secret(
        name,
        namespace,
        (credentials.iter())
            .filter(|(key, _)| servers.contains_key(*key))
            .map(|(_, credential)| credential),
    );
    Ok(RenderedToolGateway {
        rendered,
        url: gateway_url(name, namespace),
        routes: outcomes,
        policies: policy_outcomes,
        credentials,
    })
}

/// What the pinned LiteLLM refuses in `mcp_servers` entries at startup (the proxy exits,
/// so the gateway never becomes Ready), found in the config as patched: `auth_type:
/// oauth2` without `oauth2_flow` (`load_servers_from_config`). Reported on `source`,
/// the config-patch ConfigMap (rendering writes `auth_type: oauth2` only with
/// `oauth2_flow`, from a [`LiteLlmToolRoutePolicy`]).
fn check_mcp_servers(config: &Value, source: ObjectRef) -> Vec<Problem> {
    let Some(Value::Object(servers)) = config.get("mcp_servers") else {
        return Vec::new();
    };
    servers
        .iter()
        .filter(|(_, entry)| {
            entry.get("auth_type").and_then(Value::as_str) == Some("oauth2")
                && entry.get("oauth2_flow").is_none_or(Value::is_null)
        })
        .map(|(key, _)| {
            Problem::new(
                ProblemReason::InvalidRef,
                source.clone(),
                format!("sets mcp_servers.{key}.auth_type oauth2 without oauth2_flow, which LiteLLM {LITELLM_VERSION} refuses at startup (the proxy exits and the gateway never becomes Ready): add oauth2_flow: client_credentials (with client_id, client_secret and token_url) or authorization_code"),
            )
        })
        .collect()
}

/// The generated config of a ToolGateway: `mcp_servers` (when any route is served),
/// `litellm_settings` as an AiGateway's, and `guardrails` when there are any. No
/// `model_list`: the proxy serves no models.
fn tool_config(servers: Map<String, Value>, guardrails: Vec<Value>) -> Value {
    let mut config = config::base_config(Vec::new(), guardrails);
    let object = config.as_object_mut().expect("base_config is a mapping");
    object.remove("model_list");
    if !servers.is_empty() {
        object.insert("mcp_servers".to_owned(), Value::Object(servers));
    }
    config
}

/// The routes of `routes` attached to `gateway`, one per namespace and name (a later
/// copy replaces an earlier one, as `kubectl apply` would), ordered by namespace and
/// name.
fn attached_routes<'a>(
    gateway: &NamespacedName,
    routes: &'a [ToolRoute],
) -> BTreeMap<NamespacedName, &'a ToolRoute> {
    let mut attached = BTreeMap::new();
    for route in routes {
        let (Some(namespace), Some(name)) = (
            route
                .metadata
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty()),
            route.metadata.name.as_deref().filter(|n| !n.is_empty()),
        ) else {
            continue;
        };
        if route.gateway().as_ref() == Some(gateway) {
            let id = NamespacedName {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            };
            attached.insert(id, route);
        }
    }
    attached
}

/// A route's namespace and name as Kubernetes stores them; anything else (offline
/// input) cannot form a key LiteLLM and agents read the same way.
fn check_route_names(id: &NamespacedName) -> Result<(), RouteProblem> {
    let invalid = |field: &str, value: &str, rule: String| RouteProblem {
        reason: RouteProblemReason::InvalidRoute,
        message: format!(
            "metadata.{field} {:?} {rule}; not served",
            value.escape_debug().to_string()
        ),
    };
    names::check_dns1123_label(&id.namespace)
        .map_err(|rule| invalid("namespace", &id.namespace, rule))?;
    names::check_dns1123_subdomain(&id.name).map_err(|rule| invalid("name", &id.name, rule))
}

fn upstream_problem(message: String) -> RouteProblem {
    RouteProblem {
        reason: RouteProblemReason::UpstreamUnresolved,
        message,
    }
}

/// The `mcp_servers` entry of a route, and its checked tool filter.
fn mcp_server_entry(
    route: &ToolRoute,
    lookup: &dyn ObjectLookup,
) -> Result<(Value, CheckedFilter), RouteProblem> {
    let filter = match &route.spec.tool_filter {
        Some(filter) => tool_filter::check(filter).map_err(|error| RouteProblem {
            reason: RouteProblemReason::InvalidToolFilter,
            message: error.to_string(),
        })?,
        None => CheckedFilter::default(),
    };
    let (url, transport) = upstream(route, lookup)?;
    bounds::check_url(&url)?;
    let mut entry = json!({"url": url, "transport": transport, "allow_all_keys": true});
    if let Some(fields) = entry.as_object_mut() {
        fields.extend(filter.native_fields());
    }
    Ok((entry, filter))
}

/// The upstream's URL and LiteLLM transport.
fn upstream(
    route: &ToolRoute,
    lookup: &dyn ObjectLookup,
) -> Result<(String, &'static str), RouteProblem> {
    let route_namespace = route.metadata.namespace.as_deref().unwrap_or_default();
    let not_served =
        |problem: &dyn std::fmt::Display| upstream_problem(format!("{problem}; not served"));
    match route.upstream().map_err(|e| not_served(&e))? {
        RouteUpstream::External { url, transport } => {
            // A URL may name a Service or a Pod of another namespace through the
            // cluster's DNS: the gateway's pods would reach it from their network
            // position (past that namespace's NetworkPolicies), so it needs that
            // namespace's consent, as a ToolServer reference does.
            if let Some(target) = cluster_dns_target(url)
                && target.namespace != route_namespace
            {
                check_grant(route_namespace, &Target::from_dns(&target), lookup)?;
            }
            Ok((url.to_owned(), transport.as_str()))
        }
        RouteUpstream::ToolServer(server) => {
            // Consent first: without it the ToolServer is not even looked up, and the
            // message says nothing about it.
            check_grant(
                route_namespace,
                &Target {
                    group: aigateway_api::GROUP,
                    kind: "ToolServer",
                    namespace: &server.namespace,
                    name: &server.name,
                    field: "spec.upstream.toolServerRef names a ToolServer",
                },
                lookup,
            )?;
            let id = format!(
                "ToolServer {}/{}",
                server.namespace.escape_debug(),
                server.name.escape_debug()
            );
            let Some(found) = lookup.tool_server(&server.namespace, &server.name) else {
                return Err(upstream_problem(format!(
                    "{id} (spec.upstream.toolServerRef) not found: create it or fix the reference; not served"
                )));
            };
            let url = found
                .url(&server)
                .map_err(|e| not_served(&format_args!("{id} {e}")))?;
            Ok((url, found.spec.transport_type.as_str()))
        }
    }
}

/// What a route names in another namespace, for [`check_grant`].
struct Target<'a> {
    group: &'a str,
    kind: &'a str,
    namespace: &'a str,
    name: &'a str,
    /// How the route names it, e.g. `spec.upstream.toolServerRef names a ToolServer`.
    field: &'a str,
}

impl<'a> Target<'a> {
    fn from_dns(target: &'a ClusterDnsTarget) -> Self {
        Self {
            group: "",
            kind: target.kind.as_str(),
            namespace: &target.namespace,
            name: &target.name,
            field: match target.kind {
                ClusterDnsKind::Service => {
                    "spec.upstream.external.url names a Service (through the cluster's DNS)"
                }
                ClusterDnsKind::Pod => {
                    "spec.upstream.external.url names a Pod (through the cluster's DNS)"
                }
            },
        }
    }
}

/// Whether namespace `target.namespace` lets ToolRoutes of `route_namespace` name
/// `target`, with a Gateway API ReferenceGrant.
fn check_grant(
    route_namespace: &str,
    target: &Target<'_>,
    lookup: &dyn ObjectLookup,
) -> Result<(), RouteProblem> {
    let reference = CrossNamespaceRef {
        from_group: aigateway_api::GROUP,
        from_kind: "ToolRoute",
        from_namespace: route_namespace,
        to_group: target.group,
        to_kind: target.kind,
        to_namespace: target.namespace,
        to_name: target.name,
    };
    let grant = format!(
        "a ReferenceGrant in namespace {} from group {} kind ToolRoute namespace {} to group {:?} kind {} (name {})",
        target.namespace.escape_debug(),
        aigateway_api::GROUP,
        route_namespace.escape_debug(),
        target.group,
        target.kind,
        target.name.escape_debug()
    );
    let message = match lookup.reference_grant(&reference) {
        ReferenceGrantCheck::Permitted => return Ok(()),
        ReferenceGrantCheck::NotPermitted => format!(
            "{} in namespace {}, which has not granted ToolRoutes of namespace {} to name it: its owner can create {grant}; not served",
            target.field,
            target.namespace.escape_debug(),
            route_namespace.escape_debug()
        ),
        ReferenceGrantCheck::NotInstalled => format!(
            "{} in namespace {}, and naming something in another namespace needs that namespace's consent through a Gateway API ReferenceGrant, whose CRD (referencegrants.gateway.networking.k8s.io) is not installed: install Gateway API's standard CRDs, then its owner can create {grant}; not served",
            target.field,
            target.namespace.escape_debug()
        ),
    };
    Err(RouteProblem {
        reason: RouteProblemReason::RefNotPermitted,
        message,
    })
}

#[cfg(test)]
mod tests;
