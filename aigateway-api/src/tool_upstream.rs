//! Where a ToolGateway's traffic goes: the MCP server a [`ToolRoute`] names (checked,
//! its namespace defaulted, before anything is looked up), the URL a [`ToolServer`] is
//! reached at, the Service or Pod a URL names through the cluster's DNS, and the
//! gateway's own address.
//!
//! Every ToolGateway class needs these, with the same rules the Go operators apply, so
//! they live here rather than in each implementation. Errors say what is wrong with the
//! object; the implementation adds what it does about it (e.g. "not served").

use crate::tool_route::NamespacedName;
use crate::{ToolGateway, ToolRoute, ToolServer, ToolServerTransport};

/// The address of the ToolGateway `name` in `namespace`,
/// `http://<name>.<namespace>.svc.cluster.local` (its Service on port 80, as the Go
/// operators publish it in `status.url`).
///
/// ```
/// assert_eq!(
///     aigateway_api::tool_upstream::tool_gateway_url("tools", "team-a"),
///     "http://tools.team-a.svc.cluster.local",
/// );
/// ```
pub fn tool_gateway_url(name: &str, namespace: &str) -> String {
    format!("http://{name}.{namespace}.svc.cluster.local")
}

impl ToolGateway {
    /// The URL agents use to reach this gateway ([`tool_gateway_url`]), or `None` for
    /// an object without a name or namespace (not yet stored in a cluster).
    ///
    /// ```
    /// use aigateway_api::{ToolGateway, ToolGatewaySpec};
    /// let mut gateway = ToolGateway::new("tools", ToolGatewaySpec::default());
    /// assert_eq!(gateway.service_url(), None);
    /// gateway.metadata.namespace = Some("team-a".into());
    /// assert_eq!(gateway.service_url().as_deref(), Some("http://tools.team-a.svc.cluster.local"));
    /// ```
    pub fn service_url(&self) -> Option<String> {
        Some(tool_gateway_url(
            self.metadata.name.as_deref()?,
            self.metadata.namespace.as_deref()?,
        ))
    }
}

/// What a route's `spec.upstream` names, checked but not looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteUpstream<'a> {
    /// A ToolServer; its namespace is the route's unless the reference names one.
    ToolServer(NamespacedName),
    /// An MCP server reached at a URL, with the transport the URL's path implies.
    External {
        /// The URL, as written (checked by [`check_mcp_url`]).
        url: &'a str,
        /// [`ToolServerTransport::of_url`] of the URL.
        transport: ToolServerTransport,
    },
}

/// An object in the cluster that a route's upstream reaches, whose namespace must
/// consent when it is not the route's (a Gateway API ReferenceGrant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamObject {
    /// The object's API group (`""` for Services and Pods).
    pub group: &'static str,
    /// `ToolServer`, `Service` or `Pod`.
    pub kind: &'static str,
    /// Where it is.
    pub at: NamespacedName,
}

impl RouteUpstream<'_> {
    /// What the upstream reaches in the cluster: the ToolServer, or the Service or Pod
    /// its URL names through the cluster's DNS ([`cluster_dns_target`]); `None` for a
    /// URL outside the cluster.
    ///
    /// ```
    /// use aigateway_api::ToolServerTransport;
    /// use aigateway_api::tool_upstream::RouteUpstream;
    /// let upstream = RouteUpstream::External { url: "http://db.team-b.svc:80/mcp", transport: ToolServerTransport::Http };
    /// let object = upstream.object().unwrap();
    /// assert_eq!((object.kind, object.at.namespace.as_str()), ("Service", "team-b"));
    /// ```
    pub fn object(&self) -> Option<UpstreamObject> {
        match self {
            RouteUpstream::ToolServer(server) => Some(UpstreamObject {
                group: crate::GROUP,
                kind: "ToolServer",
                at: server.clone(),
            }),
            RouteUpstream::External { url, .. } => {
                cluster_dns_target(url).map(|dns| UpstreamObject {
                    group: "",
                    kind: dns.kind.as_str(),
                    at: NamespacedName {
                        namespace: dns.namespace,
                        name: dns.name,
                    },
                })
            }
        }
    }
}

/// Why a route's `spec.upstream` names no usable MCP server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// Neither or both of `toolServerRef` and `external` are set (the CRD's CEL rule
    /// refuses this; an API server without CEL does not).
    #[error("spec.upstream must set exactly one of toolServerRef and external")]
    NotExactlyOne,
    /// `toolServerRef` has no name.
    #[error("spec.upstream.toolServerRef has no name: name a ToolServer")]
    RefWithoutName,
    /// `toolServerRef` names a kind other than ToolServer.
    #[error("spec.upstream.toolServerRef has kind {0:?}: only ToolServer is supported")]
    UnsupportedKind(String),
    /// `external.url` is not a usable URL.
    #[error("spec.upstream.external.url {:?} {problem}", .url.escape_debug().to_string())]
    InvalidUrl {
        /// The URL as written.
        url: String,
        /// What is wrong with it.
        problem: UrlProblem,
    },
}

/// Why a URL cannot be an MCP server's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UrlProblem {
    /// Not `http://` or `https://`, or no host after the scheme.
    #[error("is not an http:// or https:// URL with a host")]
    NotHttpWithHost,
    /// Whitespace or control characters, which would break the config it is written to.
    #[error("holds spaces or control characters")]
    SpacesOrControlCharacters,
}

/// Checks that `url` can address an MCP server: `http://` or `https://` with a host,
/// without spaces or control characters.
///
/// ```
/// use aigateway_api::tool_upstream::{UrlProblem, check_mcp_url};
/// assert_eq!(check_mcp_url("https://mcp.example.com/mcp"), Ok(()));
/// assert_eq!(check_mcp_url("file:///etc/passwd"), Err(UrlProblem::NotHttpWithHost));
/// assert_eq!(check_mcp_url("http://a b/"), Err(UrlProblem::SpacesOrControlCharacters));
/// ```
pub fn check_mcp_url(url: &str) -> Result<(), UrlProblem> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or_default());
    if host.is_none_or(str::is_empty) {
        return Err(UrlProblem::NotHttpWithHost);
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(UrlProblem::SpacesOrControlCharacters);
    }
    Ok(())
}

impl ToolServerTransport {
    /// The transport of an MCP server known only by its URL: `sse` when the URL's path
    /// ends in `/sse`, else `http` (the Go operator's rule).
    ///
    /// ```
    /// use aigateway_api::ToolServerTransport;
    /// assert_eq!(ToolServerTransport::of_url("https://x.example/v1/sse?k=1"), ToolServerTransport::Sse);
    /// assert_eq!(ToolServerTransport::of_url("https://x.example/mcp"), ToolServerTransport::Http);
    /// ```
    pub fn of_url(url: &str) -> Self {
        let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
        let path = after_scheme
            .find('/')
            .map_or("", |slash| &after_scheme[slash..]);
        let path = path.split(['?', '#']).next().unwrap_or_default();
        if path.ends_with("/sse") {
            ToolServerTransport::Sse
        } else {
            ToolServerTransport::Http
        }
    }
}

impl ToolRoute {
    /// The MCP server this route names, checked: exactly one of `toolServerRef` (with a
    /// name, of kind ToolServer, its namespace defaulting to the route's) and `external`
    /// (a URL [`check_mcp_url`] accepts). Whether a ToolServer in another namespace may
    /// be named (a ReferenceGrant) and whether it exists are the caller's to check.
    ///
    /// ```
    /// use aigateway_api::tool_upstream::{RouteUpstream, UpstreamError};
    /// use aigateway_api::{ToolRoute, ToolRouteSpec, ToolRouteUpstream, ToolServerTransport};
    /// use aigateway_api::tool_route::ExternalUpstream;
    ///
    /// let mut route = ToolRoute::new("search", ToolRouteSpec::default());
    /// assert_eq!(route.upstream(), Err(UpstreamError::NotExactlyOne));
    /// route.spec.upstream = ToolRouteUpstream {
    ///     external: Some(ExternalUpstream { url: "https://mcp.example.com/sse".into() }),
    ///     ..Default::default()
    /// };
    /// assert_eq!(
    ///     route.upstream(),
    ///     Ok(RouteUpstream::External { url: "https://mcp.example.com/sse", transport: ToolServerTransport::Sse }),
    /// );
    /// ```
    pub fn upstream(&self) -> Result<RouteUpstream<'_>, UpstreamError> {
        let upstream = &self.spec.upstream;
        match (&upstream.tool_server_ref, &upstream.external) {
            (Some(_), Some(_)) | (None, None) => Err(UpstreamError::NotExactlyOne),
            (None, Some(external)) => {
                check_mcp_url(&external.url).map_err(|problem| UpstreamError::InvalidUrl {
                    url: external.url.clone(),
                    problem,
                })?;
                Ok(RouteUpstream::External {
                    url: &external.url,
                    transport: ToolServerTransport::of_url(&external.url),
                })
            }
            (Some(reference), None) => {
                let name = reference.name.as_deref().unwrap_or_default();
                if name.is_empty() {
                    return Err(UpstreamError::RefWithoutName);
                }
                if let Some(kind) = reference
                    .kind
                    .as_deref()
                    .filter(|k| !k.is_empty() && *k != "ToolServer")
                {
                    return Err(UpstreamError::UnsupportedKind(kind.to_owned()));
                }
                let namespace = reference
                    .namespace
                    .as_deref()
                    .filter(|n| !n.is_empty())
                    .or(self.metadata.namespace.as_deref())
                    .unwrap_or_default();
                Ok(RouteUpstream::ToolServer(NamespacedName {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                }))
            }
        }
    }
}

/// Why a ToolServer has no usable URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolServerUrlError {
    /// Its `status.url` is not a usable URL.
    #[error("publishes status.url {:?}, which {problem}", .url.escape_debug().to_string())]
    PublishedUrl {
        /// The published URL.
        url: String,
        /// What is wrong with it.
        problem: UrlProblem,
    },
    /// No `status.url` and no port in the spec to build one from.
    #[error(
        "has no spec.port (and publishes no status.url): set the port its MCP server listens on"
    )]
    NoPort,
    /// `spec.path` does not start with `/` or holds whitespace or control characters.
    #[error("has spec.path {:?}, which is not a URL path: start it with '/' and leave out spaces", .0.escape_debug().to_string())]
    InvalidPath(String),
}

impl ToolServer {
    /// Where the server's MCP endpoint is reached: the URL it publishes in
    /// `status.url` (its operator knows best), else its Service address
    /// `http://<server>.<namespace>.svc.cluster.local:<port><path>` built from the spec,
    /// for `server` (the reference a route resolved: the object may come from a cache
    /// that dropped its metadata).
    ///
    /// ```
    /// use aigateway_api::tool_route::NamespacedName;
    /// use aigateway_api::tool_upstream::ToolServerUrlError;
    /// use aigateway_api::{ToolServer, ToolServerSpec};
    ///
    /// let server_ref = NamespacedName { namespace: "tools".into(), name: "echo".into() };
    /// let mut server = ToolServer::new("echo", ToolServerSpec::default());
    /// assert_eq!(server.url(&server_ref), Err(ToolServerUrlError::NoPort));
    /// server.spec.port = Some(8000);
    /// assert_eq!(server.url(&server_ref).unwrap(), "http://echo.tools.svc.cluster.local:8000/mcp");
    /// ```
    pub fn url(&self, server: &NamespacedName) -> Result<String, ToolServerUrlError> {
        if let Some(url) = self
            .status
            .as_ref()
            .and_then(|s| s.url.as_deref())
            .filter(|u| !u.is_empty())
        {
            check_mcp_url(url).map_err(|problem| ToolServerUrlError::PublishedUrl {
                url: url.to_owned(),
                problem,
            })?;
            return Ok(url.to_owned());
        }
        let port = self
            .spec
            .port
            .filter(|p| (1..=65535).contains(p))
            .ok_or(ToolServerUrlError::NoPort)?;
        let path = self.spec.path();
        if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ToolServerUrlError::InvalidPath(path.to_owned()));
        }
        Ok(format!(
            "http://{}.{}.svc.cluster.local:{port}{path}",
            server.name, server.namespace
        ))
    }
}

/// The kind of object a cluster DNS name resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClusterDnsKind {
    /// `<service>.<namespace>.svc...` (or a Pod of a headless Service, which names the
    /// Service).
    Service,
    /// `<address>.<namespace>.pod...`.
    Pod,
}

impl ClusterDnsKind {
    /// The Kubernetes kind, `Service` or `Pod`.
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterDnsKind::Service => "Service",
            ClusterDnsKind::Pod => "Pod",
        }
    }
}

/// A Service or Pod a URL names through the cluster's DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDnsTarget {
    /// Service or Pod.
    pub kind: ClusterDnsKind,
    /// The namespace the name points into.
    pub namespace: String,
    /// The Service's name, or the Pod's dashed address.
    pub name: String,
}

/// What `url`'s host names in the cluster's DNS schema, when it has one of its explicit
/// forms: `<service>.<namespace>.svc[.<zone>]`, `<host>.<service>.<namespace>.svc[...]`
/// (a Pod of a headless Service: the Service is what is named) and
/// `<address>.<namespace>.pod[.<zone>]`.
///
/// A URL into another namespace reaches it from the gateway's network position (past
/// that namespace's NetworkPolicies), so a class asks that namespace's consent as for a
/// ToolServer reference. Short forms that only a pod's DNS search list completes
/// (`<service>.<namespace>`) and IP addresses are not recognised: a name like
/// `example.com` has the same shape.
///
/// ```
/// use aigateway_api::tool_upstream::{ClusterDnsKind, cluster_dns_target};
/// let target = cluster_dns_target("http://db.team-b.svc.cluster.local:8080/mcp").unwrap();
/// assert_eq!((target.kind, target.namespace.as_str(), target.name.as_str()), (ClusterDnsKind::Service, "team-b", "db"));
/// assert_eq!(cluster_dns_target("https://mcp.example.com/mcp"), None);
/// ```
pub fn cluster_dns_target(url: &str) -> Option<ClusterDnsTarget> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.starts_with('[') {
        return None;
    }
    let host = host.split_once(':').map_or(host, |(h, _)| h);
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = host.split('.').collect();
    let at = labels
        .iter()
        .enumerate()
        .skip(2)
        .find(|(_, label)| matches!(**label, "svc" | "pod"))
        .map(|(i, _)| i)?;
    let kind = if labels[at] == "svc" {
        ClusterDnsKind::Service
    } else {
        ClusterDnsKind::Pod
    };
    Some(ClusterDnsTarget {
        kind,
        namespace: labels[at - 1].to_owned(),
        name: labels[at - 2].to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tool_route::ExternalUpstream;
    use crate::{ToolRouteSpec, ToolRouteUpstream, ToolServerSpec, ToolServerStatus};
    use k8s_openapi::api::core::v1::ObjectReference;

    fn route(namespace: &str, upstream: ToolRouteUpstream) -> ToolRoute {
        let mut route = ToolRoute::new(
            "r",
            ToolRouteSpec {
                upstream,
                ..Default::default()
            },
        );
        route.metadata.namespace = Some(namespace.into());
        route
    }

    fn server_ref(
        name: Option<&str>,
        namespace: Option<&str>,
        kind: Option<&str>,
    ) -> ToolRouteUpstream {
        ToolRouteUpstream {
            tool_server_ref: Some(ObjectReference {
                name: name.map(Into::into),
                namespace: namespace.map(Into::into),
                kind: kind.map(Into::into),
                ..Default::default()
            }),
            external: None,
        }
    }

    #[test]
    fn a_tool_server_reference_defaults_to_the_routes_namespace_and_names_only_tool_servers() {
        let named = |namespace: &str, name: &str| {
            Ok(RouteUpstream::ToolServer(NamespacedName {
                namespace: namespace.into(),
                name: name.into(),
            }))
        };
        assert_eq!(
            route("team-a", server_ref(Some("echo"), None, None)).upstream(),
            named("team-a", "echo")
        );
        assert_eq!(
            route(
                "team-a",
                server_ref(Some("echo"), Some(""), Some("ToolServer"))
            )
            .upstream(),
            named("team-a", "echo")
        );
        assert_eq!(
            route("team-a", server_ref(Some("echo"), Some("tools"), None)).upstream(),
            named("tools", "echo")
        );
        assert_eq!(
            route("team-a", server_ref(Some(""), None, None)).upstream(),
            Err(UpstreamError::RefWithoutName)
        );
        let wrong_kind = route("team-a", server_ref(Some("echo"), None, Some("Service")));
        assert_eq!(
            wrong_kind.upstream(),
            Err(UpstreamError::UnsupportedKind("Service".into()))
        );
        assert_eq!(
            wrong_kind.upstream().unwrap_err().to_string(),
            "spec.upstream.toolServerRef has kind \"Service\": only ToolServer is supported"
        );
    }

    #[test]
    fn an_external_url_must_be_http_with_a_host_and_gets_its_transport_from_the_path() {
        let external = |url: &str| {
            route(
                "team-a",
                ToolRouteUpstream {
                    tool_server_ref: None,
                    external: Some(ExternalUpstream { url: url.into() }),
                },
            )
        };
        assert_eq!(
            external("http://mcp.example.com:9000/events/sse#x").upstream(),
            Ok(RouteUpstream::External {
                url: "http://mcp.example.com:9000/events/sse#x",
                transport: ToolServerTransport::Sse
            })
        );
        let bad = external("http://\nevil");
        assert_eq!(
            bad.upstream().unwrap_err().to_string(),
            "spec.upstream.external.url \"http://\\\\nevil\" holds spaces or control characters"
        );
        for url in ["ftp://x", "http://", "https:///path", "mcp.example.com"] {
            assert_eq!(
                external(url).upstream(),
                Err(UpstreamError::InvalidUrl {
                    url: url.into(),
                    problem: UrlProblem::NotHttpWithHost
                }),
                "{url}"
            );
        }
        let both = route(
            "team-a",
            ToolRouteUpstream {
                external: Some(ExternalUpstream {
                    url: "https://x.example".into(),
                }),
                ..server_ref(Some("echo"), None, None)
            },
        );
        assert_eq!(both.upstream(), Err(UpstreamError::NotExactlyOne));
    }

    #[test]
    fn a_tool_servers_published_url_wins_and_is_checked_like_any_url() {
        let at = NamespacedName {
            namespace: "tools".into(),
            name: "echo".into(),
        };
        let mut server = ToolServer::new(
            "echo",
            ToolServerSpec {
                port: Some(8080),
                transport_type: ToolServerTransport::Sse,
                ..Default::default()
            },
        );
        assert_eq!(
            server.url(&at).unwrap(),
            "http://echo.tools.svc.cluster.local:8080/sse"
        );
        server.spec.path = Some("/v1 mcp".into());
        assert_eq!(
            server.url(&at),
            Err(ToolServerUrlError::InvalidPath("/v1 mcp".into()))
        );
        server.status = Some(ToolServerStatus {
            url: Some("http://published.example/mcp".into()),
            ..Default::default()
        });
        assert_eq!(server.url(&at).unwrap(), "http://published.example/mcp");
        server.status = Some(ToolServerStatus {
            url: Some("javascript:alert(1)".into()),
            ..Default::default()
        });
        assert_eq!(
            server.url(&at).unwrap_err().to_string(),
            "publishes status.url \"javascript:alert(1)\", which is not an http:// or https:// URL with a host"
        );
        server.spec.port = Some(70000);
        server.status = None;
        assert_eq!(server.url(&at), Err(ToolServerUrlError::NoPort));
    }

    #[test]
    fn cluster_dns_names_are_recognised_in_their_explicit_forms_only() {
        let target = |url: &str| cluster_dns_target(url).map(|t| (t.kind, t.namespace, t.name));
        let service =
            |ns: &str, name: &str| Some((ClusterDnsKind::Service, ns.into(), name.into()));
        assert_eq!(target("http://db.team-b.svc"), service("team-b", "db"));
        assert_eq!(
            target("https://user:pw@DB.Team-B.svc.cluster.local.:443/x"),
            service("team-b", "db")
        );
        assert_eq!(
            target("http://pod-0.db.team-b.svc.cluster.local/mcp"),
            service("team-b", "db")
        );
        assert_eq!(
            target("http://10-0-0-1.team-b.pod.cluster.local:80"),
            Some((ClusterDnsKind::Pod, "team-b".into(), "10-0-0-1".into()))
        );
        for url in [
            "http://db.team-b:80/",
            "http://10.0.0.1/",
            "http://[::1]:80/",
            "https://svc.example.com/",
            "http://x.svc/",
        ] {
            assert_eq!(target(url), None, "{url}");
        }
    }
}
