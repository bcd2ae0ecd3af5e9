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
//!
//! # Where the Go operator is wrong and this renderer is not
//! - **Key collisions** (`a--b/c` and `a/b--c` both give `a__b__c`): the route created
//!   first keeps the key (ties, e.g. in offline input without timestamps: the smaller
//!   `namespace/name`), whatever the order routes are listed in; the others are not
//!   served, and every route involved is told which routes share its key. A newer route
//!   can therefore never take over the URL an older route's agents use.
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

use std::collections::{BTreeMap, BTreeSet};

use aigateway_api::{NamespacedName, ToolGateway, ToolRoute, ToolServer};
use serde_json::{Map, Value, json};

use crate::config;
use crate::guardrails::GuardedTraffic;
use crate::lookup::ObjectLookup;
use crate::names;
use crate::problem::{ObjectRef, Problem, ProblemReason};
use crate::render::{
    GatewayParts, Rendered, SecretHashScope, WorkloadShape, finish, name_and_namespace, prepare,
};
use crate::settings::{LITELLM_VERSION, RenderSettings};
use crate::tool_filter::{self, CheckedFilter, RouteFilters};
use crate::{GatewayKind, RenderError};

/// The env var that changes LiteLLM's separator between a server's name and its tools'
/// names (default `-`); the pinned LiteLLM refuses to load a server whose name contains it.
pub const TOOL_PREFIX_SEPARATOR_ENV: &str = "MCP_TOOL_PREFIX_SEPARATOR";

/// The `mcp_servers` key of a route: `<namespace>__<name>` with every `-` replaced by
/// `_` (the Go operator's scheme; agents' route URLs depend on it).
///
/// ```
/// assert_eq!(litellm_impl::tool_gateway::route_key("team-a", "web-search"), "team_a__web_search");
/// ```
pub fn route_key(namespace: &str, name: &str) -> String {
    format!("{namespace}__{name}").replace('-', "_")
}

/// The cluster-local URL of a ToolGateway, `http://<gw>.<ns>.svc.cluster.local` (its
/// `status.url`).
pub fn gateway_url(name: &str, namespace: &str) -> String {
    format!("http://{name}.{namespace}.svc.cluster.local")
}

/// The URL agents use for a route: the gateway's URL, then `/mcp/<key>`.
pub fn route_url(gateway_name: &str, gateway_namespace: &str, key: &str) -> String {
    format!("{}/mcp/{key}", gateway_url(gateway_name, gateway_namespace))
}

/// Why a route is not served. [`RouteProblemReason::as_str`] is the reason of the route's
/// `Ready=False` condition; the Go operator's reasons where it has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteProblemReason {
    /// Another route has the same `mcp_servers` key and keeps it.
    DuplicateServerName,
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
}

impl RouteProblemReason {
    /// Every reason, for checks that each one is documented.
    pub const ALL: [RouteProblemReason; 5] = [
        RouteProblemReason::DuplicateServerName,
        RouteProblemReason::UpstreamUnresolved,
        RouteProblemReason::InvalidToolFilter,
        RouteProblemReason::InvalidRoute,
        RouteProblemReason::RemovedByPatch,
    ];

    /// The CamelCase reason.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteProblemReason::DuplicateServerName => "DuplicateServerName",
            RouteProblemReason::UpstreamUnresolved => "UpstreamUnresolved",
            RouteProblemReason::InvalidToolFilter => "InvalidToolFilter",
            RouteProblemReason::InvalidRoute => "InvalidRoute",
            RouteProblemReason::RemovedByPatch => "RemovedByPatch",
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
    /// Things worth telling the route's owner that do not stop it (e.g. newer routes
    /// that share its key and are not served).
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
    let mut prepared = prepare(parts, settings, lookup)?;
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
    let keyed = assign_keys(&attached);
    let mut servers = Map::new();
    let mut filters = RouteFilters::default();
    let mut outcomes = Vec::new();
    for candidate in &keyed {
        let state = match &candidate.claim {
            Err(problem) => RouteState::NotServed(problem.clone()),
            Ok(key) if separator.is_some_and(|sep| key.contains(sep)) => {
                RouteState::NotServed(RouteProblem {
                    reason: RouteProblemReason::InvalidRoute,
                    message: format!(
                        "ToolGateway {namespace}/{name} sets {TOOL_PREFIX_SEPARATOR_ENV} to {:?}, which occurs in the route's key {key} and LiteLLM refuses such server names: remove {TOOL_PREFIX_SEPARATOR_ENV} from the gateway's spec.env; not served",
                        separator.unwrap_or_default().escape_debug().to_string()
                    ),
                })
            }
            Ok(key) => match mcp_server_entry(candidate.route, lookup) {
                Ok((entry, filter)) => {
                    servers.insert(key.clone(), entry);
                    filters.add(key, &candidate.id, filter);
                    RouteState::Served(ServedRoute {
                        key: key.clone(),
                        url: route_url(name, namespace, key),
                        warnings: candidate.warnings.clone(),
                    })
                }
                Err(problem) => RouteState::NotServed(problem),
            },
        };
        outcomes.push(RouteOutcome {
            route: candidate.id.clone(),
            state,
        });
    }

    let guardrails = prepared.add_guardrails(lookup, &BTreeSet::new(), GuardedTraffic::McpCalls);
    let config = tool_config(servers, guardrails);
    let shape = WorkloadShape {
        service_port: names::TOOL_GATEWAY_SERVICE_PORT,
        secret_hash: SecretHashScope::Referenced,
        config_files: filters.config_files(),
    };
    let (mut rendered, merged) = finish(
        prepared,
        lookup,
        config,
        BTreeSet::new(),
        shape,
        &|config| filters.enforce(config),
    )?;
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
    Ok(RenderedToolGateway {
        rendered,
        url: gateway_url(name, namespace),
        routes: outcomes,
    })
}

/// What the pinned LiteLLM refuses in `mcp_servers` entries at startup (the proxy exits,
/// so the gateway never becomes Ready), found in the config as patched: `auth_type:
/// oauth2` without `oauth2_flow` (`load_servers_from_config`). Reported on `source`,
/// the config-patch ConfigMap (rendering never writes `auth_type` itself).
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

/// An attached route with its key, or why it has none.
struct Keyed<'a> {
    id: NamespacedName,
    route: &'a ToolRoute,
    claim: Result<String, RouteProblem>,
    warnings: Vec<String>,
}

fn display(id: &NamespacedName) -> String {
    format!(
        "ToolRoute {}/{}",
        id.namespace.escape_debug(),
        id.name.escape_debug()
    )
}

/// Gives each route its key; of routes sharing a key, the one created first keeps it
/// (ties: the smaller `namespace/name`; a route without a creation time counts as
/// newest). Decided on every attached route with a valid name, before its upstream is
/// looked at, so fixing an older route's upstream never moves a URL.
fn assign_keys<'a>(attached: &BTreeMap<NamespacedName, &'a ToolRoute>) -> Vec<Keyed<'a>> {
    let mut keyed: Vec<Keyed<'a>> = attached
        .iter()
        .map(|(id, route)| Keyed {
            id: id.clone(),
            route,
            claim: check_route_names(id).map(|()| route_key(&id.namespace, &id.name)),
            warnings: Vec::new(),
        })
        .collect();
    let mut by_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (index, candidate) in keyed.iter().enumerate() {
        if let Ok(key) = &candidate.claim {
            by_key.entry(key.clone()).or_default().push(index);
        }
    }
    for (key, mut sharing) in by_key {
        if sharing.len() < 2 {
            continue;
        }
        sharing.sort_by_key(|&index| {
            let candidate = &keyed[index];
            let created = candidate.route.metadata.creation_timestamp.clone();
            (created.is_none(), created, candidate.id.clone())
        });
        let winner = sharing[0];
        let winner_name = display(&keyed[winner].id);
        let losers: Vec<String> = sharing[1..]
            .iter()
            .map(|&index| display(&keyed[index].id))
            .collect();
        keyed[winner].warnings.push(format!(
            "{} also map to mcp_servers key {key}; this route was created first and keeps it, the others are not served",
            losers.join(", ")
        ));
        for &index in &sharing[1..] {
            keyed[index].claim = Err(RouteProblem {
                reason: RouteProblemReason::DuplicateServerName,
                message: format!(
                    "its mcp_servers key {key} (namespace and name with '-' replaced by '_') is also the key of {winner_name}, which was created first and keeps it: rename this route or move it to another namespace; not served"
                ),
            });
        }
    }
    keyed
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
    match (
        &route.spec.upstream.tool_server_ref,
        &route.spec.upstream.external,
    ) {
        (Some(_), Some(_)) | (None, None) => Err(upstream_problem(
            "spec.upstream must set exactly one of toolServerRef and external; not served"
                .to_owned(),
        )),
        (None, Some(external)) => {
            check_url(&external.url).map_err(|why| {
                upstream_problem(format!(
                    "spec.upstream.external.url {:?} {why}; not served",
                    external.url.escape_debug().to_string()
                ))
            })?;
            Ok((external.url.clone(), external_transport(&external.url)))
        }
        (Some(reference), None) => {
            let name = reference.name.as_deref().unwrap_or_default();
            if name.is_empty() {
                return Err(upstream_problem(
                    "spec.upstream.toolServerRef has no name: name a ToolServer; not served"
                        .to_owned(),
                ));
            }
            if let Some(kind) = reference
                .kind
                .as_deref()
                .filter(|k| !k.is_empty() && *k != "ToolServer")
            {
                return Err(upstream_problem(format!(
                    "spec.upstream.toolServerRef has kind {kind:?}: only ToolServer is supported; not served"
                )));
            }
            let namespace = reference
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(route_namespace);
            let Some(server) = lookup.tool_server(namespace, name) else {
                return Err(upstream_problem(format!(
                    "ToolServer {}/{} (spec.upstream.toolServerRef) not found: create it or fix the reference; not served",
                    namespace.escape_debug(),
                    name.escape_debug()
                )));
            };
            tool_server_upstream(&server, namespace, name)
        }
    }
}

/// A ToolServer's URL: the one it publishes in `status.url`, else its Service address
/// from `spec.port` and the path.
fn tool_server_upstream(
    server: &ToolServer,
    namespace: &str,
    name: &str,
) -> Result<(String, &'static str), RouteProblem> {
    let id = format!(
        "ToolServer {}/{}",
        namespace.escape_debug(),
        name.escape_debug()
    );
    let transport = server.spec.transport_type.as_str();
    if let Some(url) = server
        .status
        .as_ref()
        .and_then(|s| s.url.as_deref())
        .filter(|u| !u.is_empty())
    {
        check_url(url).map_err(|why| {
            upstream_problem(format!(
                "{id} publishes status.url {:?}, which {why}; not served",
                url.escape_debug().to_string()
            ))
        })?;
        return Ok((url.to_owned(), transport));
    }
    let Some(port) = server.spec.port.filter(|p| (1..=65535).contains(p)) else {
        return Err(upstream_problem(format!(
            "{id} has no spec.port (and publishes no status.url): set the port its MCP server listens on; not served"
        )));
    };
    let path = server.spec.path();
    if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(upstream_problem(format!(
            "{id} has spec.path {:?}, which is not a URL path: start it with '/' and leave out spaces; not served",
            path.escape_debug().to_string()
        )));
    }
    Ok((
        format!("http://{name}.{namespace}.svc.cluster.local:{port}{path}"),
        transport,
    ))
}

/// `sse` when the URL's path ends in `/sse`, else `http` (the Go operator's rule).
fn external_transport(url: &str) -> &'static str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = after_scheme
        .find('/')
        .map_or("", |slash| &after_scheme[slash..]);
    let path = path.split(['?', '#']).next().unwrap_or_default();
    if path.ends_with("/sse") {
        "sse"
    } else {
        "http"
    }
}

/// Why a URL is refused (a sentence fragment after the URL): not `http://` or `https://` with a host, or with spaces or
/// control characters.
fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or_default());
    if host.is_none_or(str::is_empty) {
        return Err("is not an http:// or https:// URL with a host".to_owned());
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("holds spaces or control characters".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
