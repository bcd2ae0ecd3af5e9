//! `examples/manifests/agent-snippet.yaml` shows exactly what agent-runtime-operator
//! injects into an agent, as `aigateway_api::resolve` computes it: the gateway URL, the
//! agent's pseudo key and the proxy switch, for each stand-in agent Pod.

use aigateway_api::resolve::{ResolvedAgent, ResolvedGateway, service_url};
use k8s_openapi::api::core::v1::Pod;

/// Defect: the snippet (and `resolve`) carried only `LITELLM_PROXY_API_BASE`; upstream
/// injects three variables.
#[test]
fn each_stand_in_agent_carries_the_full_agent_contract() {
    let text = include_str!("../../examples/manifests/agent-snippet.yaml");
    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(text).unwrap();
    // Which gateway each stand-in agent resolves to (see the snippet's comments).
    let gateways = [
        ("agents", "weather-agent", ("ai-gateway", "ai-gateway", 80)),
        (
            "team-a",
            "research-agent",
            ("multi-provider", "team-a", 4000),
        ),
    ];
    let pods: Vec<Pod> = documents
        .into_iter()
        .filter(|d| d["kind"] == "Pod")
        .map(|d| serde_json::from_value(d).unwrap())
        .collect();
    assert_eq!(pods.len(), gateways.len());
    for (namespace, name, (gateway, gateway_namespace, port)) in gateways {
        let pod = pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("Pod {namespace}/{name}"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some(namespace));
        let expected = ResolvedAgent {
            agent_namespace: namespace.into(),
            agent_name: name.into(),
            gateway: ResolvedGateway {
                name: gateway.into(),
                namespace: gateway_namespace.into(),
                port,
                url: service_url(gateway, gateway_namespace, port),
            },
        }
        .env();
        let env = pod.spec.as_ref().unwrap().containers[0]
            .env
            .clone()
            .unwrap_or_default();
        assert_eq!(env, expected, "Pod {namespace}/{name}");
    }
}
