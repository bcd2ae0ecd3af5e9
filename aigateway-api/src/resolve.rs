//! Agent-side resolution: which gateway an agent uses and the URL it is given.
//!
//! This matches agent-runtime-operator, which injects the gateway URL into agent pods:
//!
//! - an agent's explicit `aiGatewayRef` wins; its namespace defaults to the agent's;
//! - without a reference, the gateway in namespace [`DEFAULT_GATEWAY_NAMESPACE`] is used.
//!   When that namespace holds several gateways, the one whose name sorts first is
//!   chosen, so every agent (and every operator replica) picks the same one;
//! - the URL is `http://<name>.<namespace>.svc.cluster.local.:<port>` (the trailing dot
//!   makes the name fully qualified, skipping resolv.conf search domains) and reaches
//!   agents in the env var [`GATEWAY_URL_ENV`].

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, ListParams};

use crate::AiGateway;

/// The env var agent-runtime-operator sets on agents to the gateway URL.
pub const GATEWAY_URL_ENV: &str = "LITELLM_PROXY_API_BASE";
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

/// Why no gateway could be resolved.
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
    /// No reference was given and the default namespace holds no gateway.
    #[error(
        "no AiGateway in namespace `{namespace}` and the agent sets no aiGatewayRef: create a gateway there or set aiGatewayRef"
    )]
    NoDefault {
        /// The namespace that was searched.
        namespace: String,
    },
    /// The API server could not be asked.
    #[error("could not read AiGateways in namespace `{namespace}`: {source}")]
    Api {
        /// The namespace that was read.
        namespace: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

/// Picks the gateway an agent uses among `candidates` in the default namespace: the
/// one whose name sorts first. Pure, so the rule is testable without a cluster.
pub fn pick_default(candidates: &[AiGateway]) -> Option<&AiGateway> {
    candidates
        .iter()
        .filter(|gateway| gateway.metadata.name.is_some())
        .min_by(|a, b| a.metadata.name.cmp(&b.metadata.name))
}

/// Resolves the gateway of an agent in `agent_namespace`, as agent-runtime-operator does.
///
/// With `reference`, reads that gateway (namespace defaulting to `agent_namespace`);
/// otherwise lists [`DEFAULT_GATEWAY_NAMESPACE`] and applies [`pick_default`].
pub async fn resolve_ai_gateway(
    client: &kube::Client,
    reference: Option<&ObjectReference>,
    agent_namespace: &str,
) -> Result<ResolvedGateway, ResolveError> {
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
            api.get_opt(name)
                .await
                .map_err(|source| ResolveError::Api {
                    namespace: namespace.to_owned(),
                    source,
                })?
                .ok_or_else(|| ResolveError::NotFound {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                })?
        }
        None => {
            let namespace = DEFAULT_GATEWAY_NAMESPACE;
            let api: Api<AiGateway> = Api::namespaced(client.clone(), namespace);
            let list =
                api.list(&ListParams::default())
                    .await
                    .map_err(|source| ResolveError::Api {
                        namespace: namespace.to_owned(),
                        source,
                    })?;
            pick_default(&list.items)
                .cloned()
                .ok_or_else(|| ResolveError::NoDefault {
                    namespace: namespace.to_owned(),
                })?
        }
    };
    let name = gateway.metadata.name.clone().unwrap_or_default();
    let namespace = gateway
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| agent_namespace.to_owned());
    let port = gateway.spec.port();
    Ok(ResolvedGateway {
        url: service_url(&name, &namespace, port),
        name,
        namespace,
        port,
    })
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
        let resolved = resolve_ai_gateway(&client, None, "team-a").await.unwrap();
        assert_eq!(
            resolved.url,
            "http://alpha.ai-gateway.svc.cluster.local.:8080"
        );
    }

    #[tokio::test]
    async fn missing_gateways_are_errors_that_say_what_to_do() {
        let client = client_with(vec![gateway("elsewhere", "x", None)]);
        let err = resolve_ai_gateway(&client, Some(&reference("gone", None)), "team-a")
            .await
            .unwrap_err();
        assert!(matches!(err, ResolveError::NotFound { .. }));
        assert!(err.to_string().contains("team-a/gone"), "{err}");
        let err = resolve_ai_gateway(&client, None, "team-a")
            .await
            .unwrap_err();
        assert!(matches!(err, ResolveError::NoDefault { .. }));
        assert!(err.to_string().contains("`ai-gateway`"), "{err}");
        let err = resolve_ai_gateway(&client, Some(&ObjectReference::default()), "team-a")
            .await
            .unwrap_err();
        assert!(matches!(err, ResolveError::MissingName));
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
