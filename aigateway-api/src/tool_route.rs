//! The namespaced `ToolRoute` resource: one MCP server exposed through a ToolGateway.
//!
//! A route *attaches* to the ToolGateway named by `spec.toolGatewayRef` (its namespace
//! defaults to the route's, so a route may live in another namespace than its gateway).
//! The gateway's implementation publishes the route's address in `status.url`.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The CEL rule on `spec.upstream`, as upstream's CRD carries it: exactly one of
/// `toolServerRef` and `external`.
pub const UPSTREAM_ONE_OF_RULE: &str =
    "(has(self.toolServerRef) ? 1 : 0) + (has(self.external) ? 1 : 0) == 1";
/// The message of [`UPSTREAM_ONE_OF_RULE`].
pub const UPSTREAM_ONE_OF_MESSAGE: &str = "exactly one of toolServerRef or external must be set";
/// The pattern `spec.upstream.external.url` must match.
pub const EXTERNAL_URL_PATTERN: &str = "^https?://.+";

/// Desired state of a tool route: the MCP server it proxies, the gateway hosting it and
/// which of the server's tools it exposes.
///
/// Field names, optionality and validation match agent-runtime-operator's
/// `ToolRouteSpec`, the CEL rule on `upstream` included.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "runtime.agentic-layer.ai",
    version = "v1alpha1",
    kind = "ToolRoute",
    plural = "toolroutes",
    singular = "toolroute",
    namespaced,
    status = "ToolRouteStatus",
    doc = "ToolRoute is the Schema for the toolroutes API.",
    printcolumn = r#"{"name": "Gateway", "type": "string", "jsonPath": ".spec.toolGatewayRef.name"}"#,
    printcolumn = r#"{"name": "URL", "type": "string", "jsonPath": ".status.url"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[schemars(description = "ToolRouteSpec defines the desired state of ToolRoute.")]
#[serde(rename_all = "camelCase", remote = "Self")]
pub struct ToolRouteSpec {
    /// The ToolGateway hosting this route; its namespace defaults to the route's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::object_reference")]
    pub tool_gateway_ref: Option<ObjectReference>,

    /// The MCP server this route proxies: exactly one of `toolServerRef` and `external`.
    pub upstream: ToolRouteUpstream,

    /// Which tools the route exposes; unset: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_filter: Option<ToolFilter>,
}

crate::tolerant::tolerant_spec!(ToolRouteSpec);

/// The MCP server behind a route. The CRD accepts exactly one of the two fields.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(
    description = "ToolRouteUpstream names the MCP server a route proxies: a ToolServer in the cluster or an external URL.",
    extend("x-kubernetes-validations" = [{"message": UPSTREAM_ONE_OF_MESSAGE, "rule": UPSTREAM_ONE_OF_RULE}])
)]
pub struct ToolRouteUpstream {
    /// A ToolServer in the cluster; its namespace defaults to the route's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::object_reference")]
    pub tool_server_ref: Option<ObjectReference>,

    /// An MCP server outside the cluster's ToolServers, reached at an HTTP(S) URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalUpstream>,
}

/// An MCP server reached at a URL.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[schemars(description = "ExternalUpstream is an MCP server reachable at an HTTP URL.")]
pub struct ExternalUpstream {
    /// The server's MCP endpoint, `http://` or `https://`.
    #[schemars(url, regex(pattern = EXTERNAL_URL_PATTERN))]
    pub url: String,
}

/// Tool names a route allows and denies.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[schemars(description = "ToolFilter restricts which tools a route exposes.")]
pub struct ToolFilter {
    /// Only these tools are exposed; empty: every tool not denied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// These tools are never exposed, even when allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

impl ToolFilter {
    /// `pattern` (an `allow` or `deny` entry: `*` any run of characters, `?` one
    /// character, everything else literal) as an anchored regular expression, for proxies
    /// that match tool names with RE2, PCRE or Rust's `regex` (every other
    /// metacharacter is escaped, so no entry can widen what it matches).
    ///
    /// ```
    /// use aigateway_api::ToolFilter;
    /// assert_eq!(ToolFilter::pattern_regex("get_*"), "^get_.*$");
    /// assert_eq!(ToolFilter::pattern_regex("a.b?(c)"), r"^a\.b.\(c\)$");
    /// ```
    pub fn pattern_regex(pattern: &str) -> String {
        let mut regex = String::from("^");
        for c in pattern.chars() {
            match c {
                '*' => regex.push_str(".*"),
                '?' => regex.push('.'),
                c if "\\.+()|[]{}^$".contains(c) => regex.extend(['\\', c]),
                c => regex.push(c),
            }
        }
        regex + "$"
    }
}

/// Observed state of a tool route, written by the implementation of its gateway.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[schemars(description = "ToolRouteStatus defines the observed state of ToolRoute.")]
pub struct ToolRouteStatus {
    /// Conditions of the route, e.g. `Ready`, plus conditions other controllers own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,

    /// The address agents use for this route, verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A namespaced object named by a reference, its namespace resolved.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NamespacedName {
    /// The object's namespace.
    pub namespace: String,
    /// The object's name.
    pub name: String,
}

impl ToolRoute {
    /// The ToolGateway this route attaches to: `spec.toolGatewayRef`, its namespace
    /// defaulting to the route's. `None` when the route names no gateway (or an empty
    /// name), or when the route itself has no namespace.
    ///
    /// ```
    /// use aigateway_api::{ToolRoute, ToolRouteSpec};
    /// use k8s_openapi::api::core::v1::ObjectReference;
    ///
    /// let mut route = ToolRoute::new("echo", ToolRouteSpec {
    ///     tool_gateway_ref: Some(ObjectReference { name: Some("tools".into()), ..Default::default() }),
    ///     ..Default::default()
    /// });
    /// route.metadata.namespace = Some("team-a".into());
    /// let gateway = route.gateway().unwrap();
    /// assert_eq!((gateway.namespace.as_str(), gateway.name.as_str()), ("team-a", "tools"));
    /// ```
    pub fn gateway(&self) -> Option<NamespacedName> {
        let reference = self.spec.tool_gateway_ref.as_ref()?;
        let name = reference.name.as_deref().filter(|n| !n.is_empty())?;
        let namespace = reference
            .namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .or(self.metadata.namespace.as_deref())?;
        Some(NamespacedName {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }
}
