//! The [`LiteLlmToolRoutePolicy`]s of attached routes, applied to their `mcp_servers`
//! entries, and the gateway's Secret of copied route credentials.
//!
//! A route's policy, its Secret and the route live in the route's namespace; the
//! gateway's pods can only read Secrets of the gateway's namespace. So each credential
//! a route needs is copied into one child Secret of the gateway
//! (`<gateway>-route-credentials`, [`names::route_credentials_secret_name`]), one key
//! per route and purpose; the container reads each key as an env var, and the config
//! names only `os.environ/<VAR>`. A copy is made only of a value the proxy can use (see
//! [`refuse_credential`]): LiteLLM refuses to start when a variable its config names is
//! missing, so a credential that cannot be copied leaves the route without it (the
//! policy says why), never the gateway without a proxy.
//!
//! | policy field | entry field |
//! |---|---|
//! | `timeoutSeconds` | `timeout` (seconds, a float) |
//! | `upstreamAuth.header` | `static_headers: {<name>: os.environ/MCP_UPSTREAM_<hash>_HEADER}` |
//! | `upstreamAuth.oauth2ClientCredentials` | `auth_type: oauth2`, `oauth2_flow: client_credentials`, `client_id`, `client_secret: os.environ/MCP_UPSTREAM_<hash>_CLIENT_SECRET`, `token_url`, `scopes`, `audience` |
//!
//! `<hash>` is that of the route's `mcp_servers` key. The copies together are bounded
//! ([`MAX_COPIED_BYTES`]); past it, the credentials of routes are left out in the order
//! routes are refused when the config does not fit (other namespaces' first, newest
//! first).

use std::collections::{BTreeMap, VecDeque};

use aigateway_api::tool_upstream::{ClusterDnsKind, cluster_dns_target};
use aigateway_api::{NamespacedName, ToolRoute};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Map, Value, json};

use super::{Target, check_grant};
use crate::lookup::ObjectLookup;
use crate::names;
use crate::policy::{
    LiteLlmToolRoutePolicy, PolicyRefusal, RouteAuth, RouteSecretKey, ToolRouteSettings,
    check_tool_route, names_route, refuse_credential,
};
use crate::render::short_hash;

/// The most bytes of credentials one gateway copies from its routes' Secrets (a
/// Secret holds at most 1 MiB).
pub const MAX_COPIED_BYTES: usize = 256 * 1024;

/// What became of a policy on one route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoutePolicyVerdict {
    /// In the route's entry.
    Applied,
    /// Not applied at all (the route runs without its settings).
    Refused(PolicyRefusal),
    /// Applied without its credential: a Secret or key is missing, or its value cannot
    /// be used. The message says which and what to do, never the value.
    Unresolved(String),
    /// Applied without its credential: its `tokenUrl` names a Service or Pod of another
    /// namespace, which has not consented with a ReferenceGrant.
    NotPermitted(String),
}

impl RoutePolicyVerdict {
    /// How bad it is, to pick one verdict for a policy on several routes.
    pub fn severity(&self) -> u8 {
        match self {
            Self::Applied => 0,
            Self::Unresolved(_) => 1,
            Self::NotPermitted(_) => 2,
            Self::Refused(_) => 3,
        }
    }
}

/// What rendering did with one policy on one route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutePolicyOutcome {
    /// The policy (in the route's namespace).
    pub policy: NamespacedName,
    /// The route.
    pub route: NamespacedName,
    /// See [`RoutePolicyVerdict`].
    pub verdict: RoutePolicyVerdict,
}

/// One credential to copy into the gateway's Secret. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Credential {
    /// The env var and Secret key.
    pub var: String,
    /// The value, checked with [`refuse_credential`].
    pub value: Vec<u8>,
    /// The entry fields it needs (removed when the credential is left out).
    pub fields: &'static [&'static str],
    policy: NamespacedName,
    route: NamespacedName,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("var", &self.var)
            .field(
                "value",
                &format_args!("<{} bytes withheld>", self.value.len()),
            )
            .finish_non_exhaustive()
    }
}

/// The gateway's Secret of copied route credentials. Its `Debug` shows the name and
/// keys, never the values.
#[derive(Clone, PartialEq)]
pub struct RouteCredentials(Secret);

impl RouteCredentials {
    /// The Secret to apply.
    pub fn secret(&self) -> &Secret {
        &self.0
    }

    /// Its keys (the env vars the container reads), in order.
    pub fn keys(&self) -> Vec<&str> {
        (self.0.data.iter().flatten())
            .map(|(k, _)| k.as_str())
            .collect()
    }
}

impl std::fmt::Debug for RouteCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteCredentials")
            .field("name", &self.0.metadata.name)
            .field("keys", &self.keys())
            .finish_non_exhaustive()
    }
}

/// The env var (and Secret key) of a route's credential for `purpose`.
fn env_name(key: &str, purpose: &str) -> String {
    format!(
        "MCP_UPSTREAM_{}_{purpose}",
        short_hash(key.as_bytes()).to_uppercase()
    )
}

/// Applies the first valid policy of `policies` naming `route` to its `entry` (`None`
/// when the route is not served: the policies are only checked) and records what became
/// of each in `outcomes`. Returns the credential to copy, if any.
pub(super) fn apply(
    route: &ToolRoute,
    id: &NamespacedName,
    key: Option<&str>,
    entry: Option<&mut Value>,
    policies: &[LiteLlmToolRoutePolicy],
    lookup: &dyn ObjectLookup,
    outcomes: &mut Vec<RoutePolicyOutcome>,
) -> Option<Credential> {
    let mut entry = entry;
    let mut applied = false;
    let mut credential = None;
    for policy in policies.iter().filter(|p| names_route(p, route)) {
        let policy_id = NamespacedName {
            namespace: id.namespace.clone(),
            name: policy.metadata.name.clone().unwrap_or_default(),
        };
        let verdict = match check_tool_route(policy) {
            Err(refusal) => RoutePolicyVerdict::Refused(refusal),
            // At most one policy is in effect on a route; a later valid one is not.
            Ok(_) if applied => continue,
            Ok(settings) => {
                applied = true;
                match (entry.as_deref_mut(), key) {
                    (Some(entry), Some(key)) => {
                        let (verdict, copied) =
                            apply_settings(entry, &settings, id, key, &policy_id, lookup);
                        credential = copied;
                        verdict
                    }
                    _ => RoutePolicyVerdict::Applied,
                }
            }
        };
        outcomes.push(RoutePolicyOutcome {
            policy: policy_id,
            route: id.clone(),
            verdict,
        });
    }
    credential
}

fn apply_settings(
    entry: &mut Value,
    settings: &ToolRouteSettings,
    route: &NamespacedName,
    key: &str,
    policy: &NamespacedName,
    lookup: &dyn ObjectLookup,
) -> (RoutePolicyVerdict, Option<Credential>) {
    let Some(fields) = entry.as_object_mut() else {
        return (RoutePolicyVerdict::Applied, None);
    };
    if let Some(seconds) = settings.timeout_seconds {
        fields.insert("timeout".into(), json!(f64::from(seconds)));
    }
    let without = |why: String| {
        format!(
            "{why}: ToolRoute {}/{} calls its upstream without the policy's credential until it is fixed",
            route.namespace, route.name
        )
    };
    let credential = |var: String, value: Vec<u8>, fields: &'static [&'static str]| Credential {
        var,
        value,
        fields,
        policy: policy.clone(),
        route: route.clone(),
    };
    match &settings.auth {
        None => (RoutePolicyVerdict::Applied, None),
        Some(RouteAuth::Header { name, secret }) => {
            let value = match read(lookup, &route.namespace, secret) {
                Ok(value) => value,
                Err(why) => return (RoutePolicyVerdict::Unresolved(without(why)), None),
            };
            let var = env_name(key, "HEADER");
            let mut headers = Map::new();
            headers.insert(name.clone(), Value::from(format!("os.environ/{var}")));
            fields.insert("static_headers".into(), Value::Object(headers));
            (
                RoutePolicyVerdict::Applied,
                Some(credential(var, value, &["static_headers"])),
            )
        }
        Some(RouteAuth::OAuth2 {
            token_url,
            client_id,
            client_secret,
            scopes,
            audience,
        }) => {
            if let Some(target) = cluster_dns_target(token_url)
                && target.namespace != route.namespace
            {
                let target = Target {
                    group: "",
                    kind: target.kind.as_str(),
                    namespace: &target.namespace,
                    name: &target.name,
                    field: match target.kind {
                        ClusterDnsKind::Service => {
                            "upstreamAuth.oauth2ClientCredentials.tokenUrl names a Service (through the cluster's DNS)"
                        }
                        ClusterDnsKind::Pod => {
                            "upstreamAuth.oauth2ClientCredentials.tokenUrl names a Pod (through the cluster's DNS)"
                        }
                    },
                };
                if let Err(problem) = check_grant(&route.namespace, &target, lookup) {
                    let message = problem.message;
                    let message = message.strip_suffix("; not served").unwrap_or(&message);
                    return (
                        RoutePolicyVerdict::NotPermitted(without(message.to_owned())),
                        None,
                    );
                }
            }
            let value = match read(lookup, &route.namespace, client_secret) {
                Ok(value) => value,
                Err(why) => return (RoutePolicyVerdict::Unresolved(without(why)), None),
            };
            let var = env_name(key, "CLIENT_SECRET");
            fields.insert("auth_type".into(), json!("oauth2"));
            fields.insert("oauth2_flow".into(), json!("client_credentials"));
            fields.insert("token_url".into(), json!(token_url));
            fields.insert("client_id".into(), json!(client_id));
            fields.insert("client_secret".into(), json!(format!("os.environ/{var}")));
            if !scopes.is_empty() {
                fields.insert("scopes".into(), json!(scopes));
            }
            if let Some(audience) = audience {
                fields.insert("audience".into(), json!(audience));
            }
            (
                RoutePolicyVerdict::Applied,
                Some(credential(var, value, &OAUTH2_FIELDS)),
            )
        }
    }
}

/// The entry fields an OAuth2 grant sets.
const OAUTH2_FIELDS: [&str; 7] = [
    "auth_type",
    "oauth2_flow",
    "token_url",
    "client_id",
    "client_secret",
    "scopes",
    "audience",
];

/// The value of `secret` in `namespace`, checked; or why it cannot be used (naming the
/// Secret and key, never the value).
fn read(
    lookup: &dyn ObjectLookup,
    namespace: &str,
    secret: &RouteSecretKey,
) -> Result<Vec<u8>, String> {
    let RouteSecretKey { secret_name, key } = secret;
    let Some(found) = lookup.secret(namespace, secret_name) else {
        return Err(format!("Secret {namespace}/{secret_name} not found"));
    };
    let value = (found.string_data.as_ref())
        .and_then(|d| d.get(key))
        .map(|v| v.as_bytes().to_vec())
        .or_else(|| {
            (found.data.as_ref())
                .and_then(|d| d.get(key))
                .map(|v| v.0.clone())
        });
    let Some(value) = value else {
        return Err(format!("Secret {namespace}/{secret_name} has no key {key}"));
    };
    match refuse_credential(&value) {
        None => Ok(value),
        Some(why) => Err(format!(
            "the value of key {key} of Secret {namespace}/{secret_name} {why}"
        )),
    }
}

/// Leaves out credentials, in `order` (route keys), until the rest fits into
/// [`MAX_COPIED_BYTES`]: their fields leave the route's entry, and the policy says why.
pub(super) fn limit(
    credentials: &mut BTreeMap<String, Credential>,
    mut order: VecDeque<String>,
    servers: &mut Map<String, Value>,
    outcomes: &mut [RoutePolicyOutcome],
    gateway: &NamespacedName,
) {
    let size = |c: &BTreeMap<String, Credential>| -> usize {
        c.values().map(|c| c.var.len() + c.value.len()).sum()
    };
    while size(credentials) > MAX_COPIED_BYTES {
        let Some(key) = order.pop_front() else { return };
        let Some(credential) = credentials.remove(&key) else {
            continue;
        };
        if let Some(Value::Object(entry)) = servers.get_mut(&key) {
            for field in credential.fields {
                entry.remove(*field);
            }
        }
        for outcome in outcomes.iter_mut().filter(|o| {
            o.policy == credential.policy
                && o.route == credential.route
                && o.verdict == RoutePolicyVerdict::Applied
        }) {
            outcome.verdict = RoutePolicyVerdict::Unresolved(format!(
                "ToolGateway {}/{} already copies {MAX_COPIED_BYTES} bytes of its routes' credentials, its most: ToolRoute {}/{} calls its upstream without the policy's credential; use a shorter credential, or ask the gateway's owner for a gateway of its own",
                gateway.namespace, gateway.name, credential.route.namespace, credential.route.name
            ));
        }
    }
}

/// The gateway's Secret holding `credentials` (`None` when there are none), labelled
/// as the gateway's other children.
pub(super) fn credentials_secret<'c>(
    gateway: &str,
    namespace: &str,
    credentials: impl Iterator<Item = &'c Credential>,
) -> Option<RouteCredentials> {
    let data: BTreeMap<String, ByteString> = credentials
        .map(|c| (c.var.clone(), ByteString(c.value.clone())))
        .collect();
    if data.is_empty() {
        return None;
    }
    Some(RouteCredentials(Secret {
        metadata: ObjectMeta {
            name: Some(names::route_credentials_secret_name(gateway)),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(
                names::APP_LABEL.to_owned(),
                names::label_value(gateway),
            )])),
            ..Default::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(data),
        ..Default::default()
    }))
}
