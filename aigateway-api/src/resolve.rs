//! Agent-side resolution: which gateway an agent uses, and the variables its pod gets.
//!
//! This matches agent-runtime-operator, which resolves an agent's gateway and injects
//! three variables into the agent's container (see [`ResolvedAgent::env`]):
//!
//! - an agent's explicit `aiGatewayRef` wins; its namespace defaults to the agent's. A
//!   reference to a gateway that does not exist, or while the AiGateway CRD is not
//!   installed, is an error;
//! - without a reference, the gateway in namespace [`DEFAULT_GATEWAY_NAMESPACE`] is used.
//!   When that namespace holds several gateways, the one whose name sorts first is
//!   chosen, so every agent (and every operator replica) picks the same one. When it holds
//!   none, or the AiGateway CRD is not installed, the agent has **no gateway**: that is
//!   not an error, and the agent gets none of the variables;
//! - the URL is `http://<name>.<namespace>.svc.cluster.local.:<port>` (the trailing dot
//!   makes the name fully qualified, skipping resolv.conf search domains).

use k8s_openapi::api::core::v1::{EnvVar, ObjectReference};
use kube::api::{Api, ListParams};

use crate::AiGateway;

/// The env var agent-runtime-operator sets on agents to the gateway URL.
pub const GATEWAY_URL_ENV: &str = "LITELLM_PROXY_API_BASE";
/// The env var agent-runtime-operator sets on agents to their pseudo API key,
/// `<agent-namespace>/<agent-name>` (see [`agent_pseudo_key`]).
pub const AGENT_KEY_ENV: &str = "LITELLM_PROXY_API_KEY";
/// The env var agent-runtime-operator sets on agents to [`USE_PROXY_VALUE`], telling
/// LiteLLM clients to send every call through the proxy.
pub const USE_PROXY_ENV: &str = "USE_LITELLM_PROXY";
/// The value of [`USE_PROXY_ENV`] (Python's spelling of true, as upstream writes it).
pub const USE_PROXY_VALUE: &str = "True";
/// Where agents without an explicit `aiGatewayRef` look for their gateway.
pub const DEFAULT_GATEWAY_NAMESPACE: &str = "ai-gateway";

/// The cluster-local URL of a gateway's Service.
///
/// ```
/// assert_eq!(
///     aigateway_api::resolve::service_url("ai-gateway", "ai-gateway", 80),
///     "http://ai-gateway.ai-gateway.svc.cluster.local.:80",
/// );
/// ```
pub fn service_url(name: &str, namespace: &str, port: i32) -> String {
    format!("http://{name}.{namespace}.svc.cluster.local.:{port}")
}

/// The pseudo API key an agent sends to its gateway: `<agent-namespace>/<agent-name>`.
/// It is not a credential: LiteLLM uses it to attribute requests (and metrics) to the
/// agent; a gateway with a master key refuses it.
///
/// ```
/// assert_eq!(aigateway_api::resolve::agent_pseudo_key("team-a", "weather"), "team-a/weather");
/// ```
pub fn agent_pseudo_key(agent_namespace: &str, agent_name: &str) -> String {
    format!("{agent_namespace}/{agent_name}")
}

impl AiGateway {
    /// The URL agents use to reach this gateway, or `None` for an object without a
    /// name or namespace (not yet stored in a cluster).
    pub fn service_url(&self) -> Option<String> {
        Some(service_url(
            self.metadata.name.as_deref()?,
            self.metadata.namespace.as_deref()?,
            self.spec.port(),
        ))
    }
}

/// The gateway an agent resolved to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedGateway {
    /// The gateway's name.
    pub name: String,
    /// The gateway's namespace.
    pub namespace: String,
    /// The port its Service listens on.
    pub port: i32,
    /// The URL injected as [`GATEWAY_URL_ENV`].
    pub url: String,
}

/// An agent and the gateway it resolved to: everything its pod is given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedAgent {
    /// The agent's namespace.
    pub agent_namespace: String,
    /// The agent's name.
    pub agent_name: String,
    /// The gateway.
    pub gateway: ResolvedGateway,
}

impl ResolvedAgent {
    /// The variables agent-runtime-operator injects into the agent's container, in its
    /// order: [`GATEWAY_URL_ENV`] (the gateway URL), [`AGENT_KEY_ENV`] (the agent's
    /// pseudo key) and [`USE_PROXY_ENV`] = [`USE_PROXY_VALUE`]. Variables the agent sets
    /// itself in `spec.env` take precedence over these, as upstream merges them.
    ///
    /// ```
    /// use aigateway_api::resolve::{ResolvedAgent, ResolvedGateway};
    /// let agent = ResolvedAgent {
    ///     agent_namespace: "team-a".into(),
    ///     agent_name: "weather".into(),
    ///     gateway: ResolvedGateway {
    ///         name: "ai-gateway".into(),
    ///         namespace: "ai-gateway".into(),
    ///         port: 80,
    ///         url: "http://ai-gateway.ai-gateway.svc.cluster.local.:80".into(),
    ///     },
    /// };
    /// let env: Vec<(String, String)> = agent
    ///     .env()
    ///     .into_iter()
    ///     .map(|e| (e.name, e.value.unwrap()))
    ///     .collect();
    /// assert_eq!(env[1], ("LITELLM_PROXY_API_KEY".into(), "team-a/weather".into()));
    /// assert_eq!(env[2], ("USE_LITELLM_PROXY".into(), "True".into()));
    /// ```
    pub fn env(&self) -> Vec<EnvVar> {
        let var = |name: &str, value: String| EnvVar {
            name: name.to_owned(),
            value: Some(value),
            value_from: None,
        };
        vec![
            var(GATEWAY_URL_ENV, self.gateway.url.clone()),
            var(
                AGENT_KEY_ENV,
                agent_pseudo_key(&self.agent_namespace, &self.agent_name),
            ),
            var(USE_PROXY_ENV, USE_PROXY_VALUE.to_owned()),
        ]
    }
}

/// Why resolution failed. "No gateway" is not among them: it is `Ok(None)`.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The agent's `aiGatewayRef` names a gateway that does not exist.
    #[error(
        "AiGateway {namespace}/{name} referenced by the agent's aiGatewayRef was not found: create it or fix the reference"
    )]
    NotFound {
        /// The referenced namespace.
        namespace: String,
        /// The referenced name.
        name: String,
    },
    /// The reference has no name.
    #[error("the agent's aiGatewayRef has no name: set aiGatewayRef.name")]
    MissingName,
    /// The agent references a gateway but the AiGateway CRD is not installed.
    #[error(
        "AiGateway {namespace}/{name} referenced by the agent's aiGatewayRef cannot exist: the AiGateway CRD is not installed; install the CRDs (deploy/crds/) or remove the reference"
    )]
    CrdNotInstalled {
        /// The referenced namespace.
        namespace: String,
        /// The referenced name.
        name: String,
    },
    /// The API server could not be asked.
    #[error(
        "could not read AiGateways in namespace {namespace}: {}: check the API server and the agent operator's RBAC (get and list on aigateways)",
        describe(.source)
    )]
    Api {
        /// The namespace that was read.
        namespace: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

/// A client error in one line, without the `Debug` form kube's `Display` appends.
fn describe(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("{} (HTTP {})", status.message.trim(), status.code),
        other => other.to_string(),
    }
}

/// Picks the gateway an agent uses among `candidates` in the default namespace: the
/// one whose name sorts first. Pure, so the rule is testable without a cluster.
pub fn pick_default(candidates: &[AiGateway]) -> Option<&AiGateway> {
    candidates
        .iter()
        .filter(|gateway| gateway.metadata.name.is_some())
        .min_by(|a, b| a.metadata.name.cmp(&b.metadata.name))
}

/// Whether `error` is a 404. On a collection it means the resource itself is unknown to
/// the API server (the CRD is not installed), which answers with a plain-text body that
/// kube turns into a status without a `NotFound` reason: the code decides.
fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// Resolves the gateway of an agent in `agent_namespace`, as agent-runtime-operator does.
///
/// With `reference`, reads that gateway (namespace defaulting to `agent_namespace`);
/// otherwise lists [`DEFAULT_GATEWAY_NAMESPACE`] and applies [`pick_default`]. Returns
/// `Ok(None)` when the agent has no gateway: no reference and no gateway in the default
/// namespace, or no reference and the AiGateway CRD is not installed.
pub async fn resolve_ai_gateway(
    client: &kube::Client,
    reference: Option<&ObjectReference>,
    agent_namespace: &str,
) -> Result<Option<ResolvedGateway>, ResolveError> {
    let gateway = match reference {
        Some(reference) => {
            let name = reference
                .name
                .as_deref()
                .filter(|n| !n.is_empty())
                .ok_or(ResolveError::MissingName)?;
            let namespace = reference
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(agent_namespace);
            let api: Api<AiGateway> = Api::namespaced(client.clone(), namespace);
            let api_error = |source| ResolveError::Api {
                namespace: namespace.to_owned(),
                source,
            };
            // Not `get_opt`: it misses the plain-text 404 of an unknown resource.
            let found = match api.get(name).await {
                Ok(gateway) => Some(gateway),
                Err(error) if is_not_found(&error) => None,
                Err(error) => return Err(api_error(error)),
            };
            match found {
                Some(gateway) => gateway,
                None => {
                    // A 404 on the object, or on the whole resource? The collection tells.
                    return Err(match api.list(&ListParams::default().limit(1)).await {
                        Err(error) if is_not_found(&error) => ResolveError::CrdNotInstalled {
                            namespace: namespace.to_owned(),
                            name: name.to_owned(),
                        },
                        Err(error) => api_error(error),
                        Ok(_) => ResolveError::NotFound {
                            namespace: namespace.to_owned(),
                            name: name.to_owned(),
                        },
                    });
                }
            }
        }
        None => {
            let namespace = DEFAULT_GATEWAY_NAMESPACE;
            let api: Api<AiGateway> = Api::namespaced(client.clone(), namespace);
            let list = match api.list(&ListParams::default()).await {
                Ok(list) => list,
                // Upstream: without the CRD there is no default gateway, not an error.
                Err(error) if is_not_found(&error) => return Ok(None),
                Err(source) => {
                    return Err(ResolveError::Api {
                        namespace: namespace.to_owned(),
                        source,
                    });
                }
            };
            match pick_default(&list.items) {
                Some(gateway) => gateway.clone(),
                None => return Ok(None),
            }
        }
    };
    let name = gateway.metadata.name.clone().unwrap_or_default();
    let namespace = gateway
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| agent_namespace.to_owned());
    let port = gateway.spec.port();
    Ok(Some(ResolvedGateway {
        url: service_url(&name, &namespace, port),
        name,
        namespace,
        port,
    }))
}

/// Resolves the gateway of agent `agent_namespace/agent_name` (see [`resolve_ai_gateway`])
/// and returns the variables its container gets ([`ResolvedAgent::env`]); none when the
/// agent has no gateway.
pub async fn resolve_agent_env(
    client: &kube::Client,
    reference: Option<&ObjectReference>,
    agent_namespace: &str,
    agent_name: &str,
) -> Result<Vec<EnvVar>, ResolveError> {
    Ok(resolve_ai_gateway(client, reference, agent_namespace)
        .await?
        .map(|gateway| {
            ResolvedAgent {
                agent_namespace: agent_namespace.to_owned(),
                agent_name: agent_name.to_owned(),
                gateway,
            }
            .env()
        })
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AiGatewaySpec, AiModel};
    use http::{Request, Response, StatusCode};
    use kube::client::Body;
    use serde_json::json;

    fn gateway(namespace: &str, name: &str, port: Option<i32>) -> serde_json::Value {
        json!({
            "apiVersion": "runtime.agentic-layer.ai/v1alpha1",
            "kind": "AiGateway",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"aiModels": [{"name": "gpt-4o", "provider": "openai"}], "port": port},
        })
    }

    /// A client whose API server does not know AiGateways at all (CRD not installed): a
    /// plain-text 404 for every path, as kube-apiserver answers unknown resources.
    fn client_without_crd() -> kube::Client {
        let service = tower::service_fn(move |_request: Request<Body>| async move {
            Ok::<_, std::convert::Infallible>(
                Response::builder()
                    .status(StatusCode::NOT_FOUND)
                    .body(Body::from(b"404 page not found".to_vec()))
                    .unwrap(),
            )
        });
        kube::Client::new(service, "default")
    }

    /// A client whose API server holds `gateways` and answers get and list for them.
    fn client_with(gateways: Vec<serde_json::Value>) -> kube::Client {
        let service = tower::service_fn(move |request: Request<Body>| {
            let gateways = gateways.clone();
            async move {
                let path = request.uri().path().to_owned();
                let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
                // apis/runtime.agentic-layer.ai/v1alpha1/namespaces/<ns>/aigateways[/<name>]
                let namespace = parts.get(4).copied().unwrap_or_default();
                let in_namespace: Vec<_> = gateways
                    .iter()
                    .filter(|g| g["metadata"]["namespace"] == namespace)
                    .cloned()
                    .collect();
                let (status, body) = match parts.get(6) {
                    Some(name) => {
                        match in_namespace.iter().find(|g| g["metadata"]["name"] == *name) {
                            Some(found) => (StatusCode::OK, found.clone()),
                            None => (
                                StatusCode::NOT_FOUND,
                                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
                            ),
                        }
                    }
                    None => (
                        StatusCode::OK,
                        json!({"apiVersion": "runtime.agentic-layer.ai/v1alpha1", "kind": "AiGatewayList", "metadata": {}, "items": in_namespace}),
                    ),
                };
                Ok::<_, std::convert::Infallible>(
                    Response::builder()
                        .status(status)
                        .body(Body::from(serde_json::to_vec(&body).unwrap()))
                        .unwrap(),
                )
            }
        });
        kube::Client::new(service, "default")
    }

    fn reference(name: &str, namespace: Option<&str>) -> ObjectReference {
        ObjectReference {
            name: Some(name.into()),
            namespace: namespace.map(Into::into),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn an_explicit_reference_wins_and_defaults_to_the_agents_namespace() {
        let client = client_with(vec![
            gateway("team-a", "mine", Some(4000)),
            gateway("ai-gateway", "ai-gateway", None),
        ]);
        let resolved = resolve_ai_gateway(&client, Some(&reference("mine", None)), "team-a")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resolved.url, "http://mine.team-a.svc.cluster.local.:4000");
        assert_eq!(
            (
                resolved.name.as_str(),
                resolved.namespace.as_str(),
                resolved.port
            ),
            ("mine", "team-a", 4000)
        );

        let cross = resolve_ai_gateway(
            &client,
            Some(&reference("ai-gateway", Some("ai-gateway"))),
            "team-a",
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(
            cross.url,
            "http://ai-gateway.ai-gateway.svc.cluster.local.:80"
        );
    }

    #[tokio::test]
    async fn without_a_reference_the_first_gateway_by_name_in_ai_gateway_is_used() {
        let client = client_with(vec![
            gateway("ai-gateway", "zeta", None),
            gateway("ai-gateway", "alpha", Some(8080)),
            gateway("elsewhere", "aaa", None),
        ]);
        let resolved = resolve_ai_gateway(&client, None, "team-a")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            resolved.url,
            "http://alpha.ai-gateway.svc.cluster.local.:8080"
        );
    }

    /// Upstream: a missing explicit reference is an error; no gateway in the default
    /// namespace is "no gateway", and the agent gets no variables.
    #[tokio::test]
    async fn a_missing_reference_is_an_error_and_no_default_is_no_gateway() {
        let client = client_with(vec![gateway("elsewhere", "x", None)]);
        let err = resolve_ai_gateway(&client, Some(&reference("gone", None)), "team-a")
            .await
            .unwrap_err();
        assert!(matches!(err, ResolveError::NotFound { .. }));
        assert!(err.to_string().contains("team-a/gone"), "{err}");
        assert_eq!(
            resolve_ai_gateway(&client, None, "team-a").await.unwrap(),
            None
        );
        assert!(
            resolve_agent_env(&client, None, "team-a", "agent")
                .await
                .unwrap()
                .is_empty()
        );
        let err = resolve_ai_gateway(&client, Some(&ObjectReference::default()), "team-a")
            .await
            .unwrap_err();
        assert!(matches!(err, ResolveError::MissingName));
    }

    /// Upstream: without the AiGateway CRD, an agent without a reference has no gateway;
    /// one with a reference gets an error saying the CRD is missing.
    #[tokio::test]
    async fn without_the_crd_there_is_no_default_gateway() {
        let client = client_without_crd();
        assert_eq!(
            resolve_ai_gateway(&client, None, "team-a").await.unwrap(),
            None
        );
        let err = resolve_ai_gateway(&client, Some(&reference("mine", None)), "team-a")
            .await
            .unwrap_err();
        assert!(matches!(err, ResolveError::CrdNotInstalled { .. }), "{err}");
        assert!(err.to_string().contains("CRD is not installed"), "{err}");
    }

    /// The three variables agent-runtime-operator injects, in its order.
    #[tokio::test]
    async fn an_agent_gets_the_url_its_pseudo_key_and_the_proxy_switch() {
        let client = client_with(vec![gateway("ai-gateway", "ai-gateway", Some(4000))]);
        let env: Vec<(String, String)> = resolve_agent_env(&client, None, "team-a", "weather")
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.value.unwrap_or_default()))
            .collect();
        let expected: Vec<(String, String)> = [
            (
                "LITELLM_PROXY_API_BASE",
                "http://ai-gateway.ai-gateway.svc.cluster.local.:4000",
            ),
            ("LITELLM_PROXY_API_KEY", "team-a/weather"),
            ("USE_LITELLM_PROXY", "True"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(env, expected);
    }

    #[test]
    fn api_errors_read_without_debug_output() {
        let status =
            kube::core::Status::failure("aigateways is forbidden", "Forbidden").with_code(403);
        let err = ResolveError::Api {
            namespace: "ai-gateway".into(),
            source: kube::Error::Api(status.boxed()),
        };
        let text = err.to_string();
        assert!(
            text.contains("aigateways is forbidden (HTTP 403)"),
            "{text}"
        );
        assert!(!text.contains("Status {"), "{text}");
    }

    #[test]
    fn a_gateway_knows_its_own_url() {
        let mut gw = AiGateway::new(
            "gw",
            AiGatewaySpec {
                ai_models: vec![AiModel::new("openai", "m")],
                ..Default::default()
            },
        );
        assert_eq!(gw.service_url(), None);
        gw.metadata.namespace = Some("ns".into());
        gw.spec.port = Some(4000);
        assert_eq!(
            gw.service_url().unwrap(),
            "http://gw.ns.svc.cluster.local.:4000"
        );
    }
}
