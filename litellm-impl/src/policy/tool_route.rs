//! [`LiteLlmToolRoutePolicy`]: how a ToolGateway's LiteLLM reaches the upstream MCP
//! server of one ToolRoute: its timeout, and the credential it presents there (a whole
//! header value from a Secret, or an OAuth2 client-credentials grant whose token LiteLLM
//! fetches itself).
//!
//! The policy lives with its routes (a route's owner writes it) and names them in
//! `spec.targetRefs`; its Secrets are in that namespace too. [`check_tool_route`]
//! decides, purely, whether it is valid and what it sets; the ToolGateway renderer
//! ([`crate::tool_gateway`]) resolves its Secrets and applies it to the route's
//! `mcp_servers` entry.

use aigateway_api::ToolRoute;
use aigateway_api::policy::{PolicyStatus, PolicyTargetReference, TargetedPolicy};
use kube::{CustomResource, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{MAX_TIMEOUT_SECONDS, PolicyRefusal, check_http_url, check_secret_name};
use crate::config;

/// The header an [`UpstreamHeader`] sets when it names none.
pub const DEFAULT_HEADER: &str = "Authorization";
/// The longest header name accepted, in bytes.
pub const MAX_HEADER_NAME_BYTES: usize = 128;
/// The longest `clientId` and `audience` accepted, in bytes.
pub const MAX_CLIENT_ID_BYTES: usize = 256;
/// The most scopes a policy may ask for.
pub const MAX_SCOPES: usize = 16;
/// The longest scope accepted, in bytes.
pub const MAX_SCOPE_BYTES: usize = 128;
/// The longest Secret value (a header value or a client secret) copied to a gateway.
pub const MAX_CREDENTIAL_BYTES: usize = 8 * 1024;

/// Headers the policy may not set: HTTP and LiteLLM own them. Compared without case;
/// every header starting with [`LITELLM_MCP_HEADER_PREFIX`] is refused too.
pub const RESERVED_HEADERS: [&str; 14] = [
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    "te",
    "trailer",
    "accept",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
];

/// The prefix of the headers LiteLLM reads as per-server credentials from callers.
pub const LITELLM_MCP_HEADER_PREFIX: &str = "x-mcp-";

/// How a ToolGateway reaches the upstream MCP servers of ToolRoutes.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "litellm.aigateway.agentic-layer.ai",
    version = "v1alpha1",
    kind = "LiteLLMToolRoutePolicy",
    root = "LiteLlmToolRoutePolicy",
    plural = "litellmtoolroutepolicies",
    shortname = "llmtoolroutepolicy",
    namespaced,
    status = "PolicyStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct LiteLlmToolRoutePolicySpec {
    /// The ToolRoutes configured (group `runtime.agentic-layer.ai`, kind `ToolRoute`), in
    /// the policy's namespace; whole routes only (no `sectionName`).
    #[schemars(length(min = 1, max = 16))]
    pub target_refs: Vec<PolicyTargetReference>,
    /// Seconds before a call to the upstream MCP server fails (the entry's `timeout`;
    /// LiteLLM's default is 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub timeout_seconds: Option<u32>,
    /// The credential LiteLLM presents to the upstream MCP server on every call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_auth: Option<UpstreamAuth>,
}

/// Exactly one way to authenticate to the upstream.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamAuth {
    /// One header whose whole value (e.g. `Bearer xyz`) is a Secret key's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<UpstreamHeader>,
    /// An OAuth2 client-credentials grant: LiteLLM fetches, caches and renews the token
    /// and sends `Authorization: Bearer <token>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2_client_credentials: Option<OAuth2ClientCredentials>,
}

/// A header sent on every call to the upstream, its value from a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamHeader {
    /// The header's name (default `Authorization`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub name: Option<String>,
    /// The Secret, in the policy's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
    /// The key whose value is the header's whole value (at most 8 KiB).
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// A Secret key in the policy's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteSecretKey {
    /// The Secret, in the policy's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
    /// The key (its value at most 8 KiB).
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// An OAuth2 client-credentials grant (RFC 6749 section 4.4).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuth2ClientCredentials {
    /// The token endpoint, `http` or `https`.
    #[schemars(length(min = 1, max = 2048))]
    pub token_url: String,
    /// The client's id.
    #[schemars(length(min = 1, max = 256))]
    pub client_id: String,
    /// The client's secret.
    pub client_secret: RouteSecretKey,
    /// The scopes asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 128)))]
    pub scopes: Vec<String>,
    /// The `audience` sent with the token request, for servers that need one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub audience: Option<String>,
}

impl TargetedPolicy for LiteLlmToolRoutePolicy {
    fn target_refs(&self) -> &[PolicyTargetReference] {
        &self.spec.target_refs
    }
}

/// What a valid policy sets on a route, checked.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ToolRouteSettings {
    /// The entry's `timeout`, in seconds.
    pub timeout_seconds: Option<u32>,
    /// How LiteLLM authenticates to the upstream.
    pub auth: Option<RouteAuth>,
}

/// A checked [`UpstreamAuth`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteAuth {
    /// `static_headers: {<name>: <the Secret's value>}`.
    Header {
        /// The header's name.
        name: String,
        /// Where its value is.
        secret: RouteSecretKey,
    },
    /// `auth_type: oauth2`, `oauth2_flow: client_credentials`.
    OAuth2 {
        /// `token_url`.
        token_url: String,
        /// `client_id`.
        client_id: String,
        /// Where `client_secret` is.
        client_secret: RouteSecretKey,
        /// `scopes`.
        scopes: Vec<String>,
        /// `audience`.
        audience: Option<String>,
    },
}

/// Whether `policy` names `route` (in its own namespace) in its `targetRefs`.
pub fn names_route(policy: &LiteLlmToolRoutePolicy, route: &ToolRoute) -> bool {
    let namespace = route.namespace();
    let name = route.name_any();
    policy.namespace() == namespace
        && policy.spec.target_refs.iter().any(|r| {
            r.group == ToolRoute::group(&())
                && r.kind == ToolRoute::kind(&())
                && r.name == name
                && (r.namespace.as_ref()).is_none_or(|ns| Some(ns) == namespace.as_ref())
        })
}

/// Whether `name` is an RFC 7230 token (an HTTP header name).
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// Whether `key` can be a Secret's key.
fn is_secret_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn check_secret_key(field: &str, secret: &str, key: &str) -> Result<(), PolicyRefusal> {
    if check_secret_name(secret) && is_secret_key(key) {
        return Ok(());
    }
    Err(PolicyRefusal::Invalid(format!(
        "{field} must name a Secret (a lowercase DNS name) and a key (letters, digits, '-', '_', '.')"
    )))
}

/// A string copied into the config as written: bounded, one line, no reference LiteLLM
/// would resolve.
fn check_text(field: &str, value: &str, max: usize, spaces: bool) -> Result<(), PolicyRefusal> {
    let invalid = |why: String| Err(PolicyRefusal::Invalid(format!("{field} {why}")));
    if value.is_empty() || value.len() > max {
        return invalid(format!("must be 1 to {max} bytes"));
    }
    if let Some(why) = config::refuse_reference(value) {
        return invalid(why);
    }
    if value
        .chars()
        .any(|c| c.is_control() || (!spaces && c.is_whitespace()))
    {
        return invalid(if spaces {
            "must not hold control characters".to_owned()
        } else {
            "must not hold spaces or control characters".to_owned()
        });
    }
    Ok(())
}

/// What `policy` sets on the routes it names, or why it cannot be applied. Nothing is
/// looked up: its Secrets are read when it is applied.
///
/// Refused: `targetRefs` naming anything but whole ToolRoutes of the policy's namespace
/// (so a policy naming a ToolGateway never configures its routes), both or neither
/// `upstreamAuth` method, header names HTTP or LiteLLM own, token URLs other than
/// `http(s)`, strings LiteLLM would resolve, unbounded strings and lists.
pub fn check_tool_route(
    policy: &LiteLlmToolRoutePolicy,
) -> Result<ToolRouteSettings, PolicyRefusal> {
    let spec = &policy.spec;
    let invalid = |message: String| Err(PolicyRefusal::Invalid(message));
    let namespace = policy.namespace();
    for reference in &spec.target_refs {
        let route =
            reference.group == ToolRoute::group(&()) && reference.kind == ToolRoute::kind(&());
        if !route {
            return invalid(format!(
                "a LiteLLMToolRoutePolicy configures ToolRoutes: targetRefs must name group {} kind ToolRoute, not {:?} kind {:?}",
                ToolRoute::group(&()),
                reference.group.escape_debug().to_string(),
                reference.kind.escape_debug().to_string()
            ));
        }
        if reference.section_name.is_some() {
            return invalid(
                "a LiteLLMToolRoutePolicy configures whole ToolRoutes: remove sectionName from its targetRefs"
                    .to_owned(),
            );
        }
        if reference.namespace.is_some() && reference.namespace != namespace {
            return invalid(
                "a LiteLLMToolRoutePolicy configures ToolRoutes in its own namespace only: remove namespace from its targetRefs"
                    .to_owned(),
            );
        }
    }
    if spec
        .timeout_seconds
        .is_some_and(|t| !(1..=MAX_TIMEOUT_SECONDS).contains(&t))
    {
        return invalid(format!("timeoutSeconds must be 1 to {MAX_TIMEOUT_SECONDS}"));
    }
    let auth = match &spec.upstream_auth {
        None => None,
        Some(UpstreamAuth {
            header: Some(header),
            oauth2_client_credentials: None,
        }) => Some(check_header(header)?),
        Some(UpstreamAuth {
            header: None,
            oauth2_client_credentials: Some(oauth2),
        }) => Some(check_oauth2(oauth2)?),
        Some(_) => {
            return invalid(
                "upstreamAuth needs exactly one of header and oauth2ClientCredentials".to_owned(),
            );
        }
    };
    Ok(ToolRouteSettings {
        timeout_seconds: spec.timeout_seconds,
        auth,
    })
}

fn check_header(header: &UpstreamHeader) -> Result<RouteAuth, PolicyRefusal> {
    let name = header.name.as_deref().unwrap_or(DEFAULT_HEADER);
    if name.len() > MAX_HEADER_NAME_BYTES || !is_token(name) {
        return Err(PolicyRefusal::Invalid(format!(
            "upstreamAuth.header.name must be an HTTP header name (1 to {MAX_HEADER_NAME_BYTES} letters, digits or !#$%&'*+-.^_`|~)"
        )));
    }
    let lower = name.to_ascii_lowercase();
    if lower.starts_with(LITELLM_MCP_HEADER_PREFIX) {
        return Err(PolicyRefusal::Invalid(format!(
            "upstreamAuth.header.name {name} starts with {LITELLM_MCP_HEADER_PREFIX}, which LiteLLM reads as a caller's credential: use another header, such as Authorization"
        )));
    }
    if RESERVED_HEADERS.contains(&lower.as_str()) {
        return Err(PolicyRefusal::Invalid(format!(
            "upstreamAuth.header.name {name} is a header HTTP or the MCP transport sets itself: use another header, such as Authorization"
        )));
    }
    check_secret_key(
        "upstreamAuth.header (secretName, key)",
        &header.secret_name,
        &header.key,
    )?;
    Ok(RouteAuth::Header {
        name: name.to_owned(),
        secret: RouteSecretKey {
            secret_name: header.secret_name.clone(),
            key: header.key.clone(),
        },
    })
}

fn check_oauth2(oauth2: &OAuth2ClientCredentials) -> Result<RouteAuth, PolicyRefusal> {
    const FIELD: &str = "upstreamAuth.oauth2ClientCredentials";
    check_http_url(&format!("{FIELD}.tokenUrl"), &oauth2.token_url)
        .map_err(PolicyRefusal::Invalid)?;
    check_text(
        &format!("{FIELD}.clientId"),
        &oauth2.client_id,
        MAX_CLIENT_ID_BYTES,
        false,
    )?;
    check_secret_key(
        &format!("{FIELD}.clientSecret (secretName, key)"),
        &oauth2.client_secret.secret_name,
        &oauth2.client_secret.key,
    )?;
    if oauth2.scopes.len() > MAX_SCOPES {
        return Err(PolicyRefusal::Invalid(format!(
            "{FIELD}.scopes has {} entries, more than {MAX_SCOPES}",
            oauth2.scopes.len()
        )));
    }
    for (index, scope) in oauth2.scopes.iter().enumerate() {
        check_text(
            &format!("{FIELD}.scopes[{index}]"),
            scope,
            MAX_SCOPE_BYTES,
            false,
        )?;
    }
    if let Some(audience) = &oauth2.audience {
        check_text(
            &format!("{FIELD}.audience"),
            audience,
            MAX_CLIENT_ID_BYTES,
            false,
        )?;
    }
    Ok(RouteAuth::OAuth2 {
        token_url: oauth2.token_url.clone(),
        client_id: oauth2.client_id.clone(),
        client_secret: oauth2.client_secret.clone(),
        scopes: oauth2.scopes.clone(),
        audience: oauth2.audience.clone(),
    })
}

/// Why a Secret value cannot be copied to the gateway as a header value or client
/// secret; `None` when it can. Never quotes the value.
///
/// Over [`MAX_CREDENTIAL_BYTES`], empty, anything but printable ASCII (a line break
/// would be a header injection, and `kubectl create secret --from-file` keeps a file's
/// final newline), leading or trailing spaces, and `true`/`false` (LiteLLM's
/// `os.environ/` lookup turns those into booleans, and the proxy would refuse its
/// config).
pub fn refuse_credential(value: &[u8]) -> Option<String> {
    if value.is_empty() {
        return Some("is empty".to_owned());
    }
    if value.len() > MAX_CREDENTIAL_BYTES {
        return Some(format!(
            "is {} bytes, over the {MAX_CREDENTIAL_BYTES} a credential may have",
            value.len()
        ));
    }
    if value.ends_with(b"\n") {
        return Some(
            "ends with a line break (as kubectl create secret --from-file keeps a file's last newline): store the value without it"
                .to_owned(),
        );
    }
    if !value.iter().all(|b| (0x20..0x7f).contains(b)) {
        return Some(
            "holds characters other than printable ASCII (line breaks, control characters or non-ASCII), which cannot be sent in an HTTP header"
                .to_owned(),
        );
    }
    if value.first() == Some(&b' ') || value.last() == Some(&b' ') {
        return Some("starts or ends with a space".to_owned());
    }
    let text = String::from_utf8_lossy(value).to_ascii_lowercase();
    if text == "true" || text == "false" {
        return Some(
            "is true or false, which LiteLLM reads as a boolean instead of text".to_owned(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(spec: LiteLlmToolRoutePolicySpec) -> LiteLlmToolRoutePolicy {
        let mut policy = LiteLlmToolRoutePolicy::new(
            "p",
            LiteLlmToolRoutePolicySpec {
                target_refs: vec![PolicyTargetReference::new(
                    "runtime.agentic-layer.ai",
                    "ToolRoute",
                    "web",
                )],
                ..spec
            },
        );
        policy.metadata.namespace = Some("team".into());
        policy
    }

    fn header(name: Option<&str>) -> LiteLlmToolRoutePolicySpec {
        LiteLlmToolRoutePolicySpec {
            upstream_auth: Some(UpstreamAuth {
                header: Some(UpstreamHeader {
                    name: name.map(Into::into),
                    secret_name: "upstream".into(),
                    key: "token".into(),
                }),
                oauth2_client_credentials: None,
            }),
            ..Default::default()
        }
    }

    fn oauth2(change: impl FnOnce(&mut OAuth2ClientCredentials)) -> LiteLlmToolRoutePolicySpec {
        let mut grant = OAuth2ClientCredentials {
            token_url: "https://idp.example.com/token".into(),
            client_id: "gateway".into(),
            client_secret: RouteSecretKey {
                secret_name: "idp".into(),
                key: "secret".into(),
            },
            scopes: vec!["tools.read".into()],
            audience: None,
        };
        change(&mut grant);
        LiteLlmToolRoutePolicySpec {
            upstream_auth: Some(UpstreamAuth {
                header: None,
                oauth2_client_credentials: Some(grant),
            }),
            ..Default::default()
        }
    }

    fn refused(spec: LiteLlmToolRoutePolicySpec) -> String {
        match check_tool_route(&policy(spec)) {
            Err(PolicyRefusal::Invalid(message)) => message,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn a_header_defaults_to_authorization_and_an_oauth2_grant_is_kept_as_written() {
        let settings = check_tool_route(&policy(header(None))).unwrap();
        assert!(matches!(
            settings.auth,
            Some(RouteAuth::Header { ref name, .. }) if name == "Authorization"
        ));
        let settings = check_tool_route(&policy(LiteLlmToolRoutePolicySpec {
            timeout_seconds: Some(90),
            ..oauth2(|g| g.audience = Some("tools".into()))
        }))
        .unwrap();
        assert_eq!(settings.timeout_seconds, Some(90));
        assert!(matches!(settings.auth, Some(RouteAuth::OAuth2 { .. })));
    }

    #[test]
    fn hostile_values_are_refused_with_what_is_wrong() {
        assert!(refused(header(Some("Bad Header"))).contains("HTTP header name"));
        assert!(refused(header(Some("a:b"))).contains("HTTP header name"));
        assert!(refused(header(Some(&"a".repeat(200)))).contains("HTTP header name"));
        assert!(refused(header(Some("X-MCP-tools-Authorization"))).contains("x-mcp-"));
        for reserved in ["Host", "content-length", "Content-Type", "Connection", "TE"] {
            assert!(
                refused(header(Some(reserved))).contains("sets itself"),
                "{reserved}"
            );
        }
        let mut bad_secret = header(None);
        bad_secret
            .upstream_auth
            .as_mut()
            .unwrap()
            .header
            .as_mut()
            .unwrap()
            .secret_name = "../etc".into();
        assert!(refused(bad_secret).contains("must name a Secret"));
        assert!(
            refused(oauth2(|g| g.token_url = "file:///etc/passwd".into()))
                .contains("http:// or https://")
        );
        assert!(refused(oauth2(|g| g.token_url = "os.environ/IDP".into())).contains("tokenUrl"));
        assert!(
            refused(oauth2(|g| g.client_id = "os.environ/CLIENT".into()))
                .contains("clientId starts with os.environ/")
        );
        assert!(refused(oauth2(|g| g.client_id = "a\nb".into())).contains("clientId"));
        assert!(refused(oauth2(|g| g.scopes = vec!["s".into(); 17])).contains("more than 16"));
        assert!(refused(oauth2(|g| g.scopes = vec!["a b".into()])).contains("scopes[0]"));
        assert!(refused(oauth2(|g| g.scopes = vec!["x".repeat(129)])).contains("1 to 128 bytes"));
        assert!(
            refused(oauth2(|g| g.audience = Some("hashicorp_vault/x".into()))).contains("audience")
        );
        let both = LiteLlmToolRoutePolicySpec {
            upstream_auth: Some(UpstreamAuth {
                header: header(None).upstream_auth.unwrap().header,
                oauth2_client_credentials: oauth2(|_| {})
                    .upstream_auth
                    .unwrap()
                    .oauth2_client_credentials,
            }),
            ..Default::default()
        };
        assert!(refused(both).contains("exactly one"));
        let neither = LiteLlmToolRoutePolicySpec {
            upstream_auth: Some(UpstreamAuth::default()),
            ..Default::default()
        };
        assert!(refused(neither).contains("exactly one"));
        let timeout = LiteLlmToolRoutePolicySpec {
            timeout_seconds: Some(3601),
            ..Default::default()
        };
        assert!(refused(timeout).contains("timeoutSeconds"));
    }

    #[test]
    fn only_whole_tool_routes_of_the_policys_namespace_are_targets() {
        let mut gateway = policy(header(None));
        gateway.spec.target_refs = vec![PolicyTargetReference::new(
            "runtime.agentic-layer.ai",
            "ToolGateway",
            "tools",
        )];
        let message = |p: &LiteLlmToolRoutePolicy| match check_tool_route(p) {
            Err(PolicyRefusal::Invalid(message)) => message,
            other => panic!("not refused: {other:?}"),
        };
        assert!(message(&gateway).contains("kind ToolRoute"));
        let mut section = policy(header(None));
        section.spec.target_refs[0].section_name = Some("x".into());
        assert!(message(&section).contains("sectionName"));
        let mut foreign = policy(header(None));
        foreign.spec.target_refs[0].namespace = Some("other".into());
        assert!(matches!(
            check_tool_route(&foreign),
            Err(PolicyRefusal::Invalid(m)) if m.contains("own namespace")
        ));
    }

    #[test]
    fn credentials_that_would_break_the_header_or_litellm_are_refused_without_quoting_them() {
        assert_eq!(refuse_credential(b"Bearer s3cret"), None);
        for bad in [
            &b""[..],
            b"Bearer x\n",
            b"Bearer x\r\nX-Evil: 1",
            b" Bearer x",
            b"TRUE",
            b"false",
            "Bearer \u{e9}".as_bytes(),
            &[b'a'; MAX_CREDENTIAL_BYTES + 1],
        ] {
            let why = refuse_credential(bad).expect("refused");
            assert!(!why.contains("Bearer"), "{why}");
        }
    }
}
