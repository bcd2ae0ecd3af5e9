//! The agentgateway ToolGateway class against the testkit's API server: routes get
//! their URL only once the gateway serves them, each served route is one agentgateway
//! route with its MCP target and tool filter, a missing backend or one in another
//! namespace is `ResolvedRefs=False` and never in the config, a backend that appears
//! later is picked up, and a converged operator writes nothing.

use std::time::Duration;

use agentgateway_tool_class::{AgentgatewayToolClass, CONTROLLER_NAME};
use aigateway_api::tool_route::ExternalUpstream;
use aigateway_api::{
    ToolFilter, ToolGateway, ToolGatewayClass, ToolGatewayClassSpec, ToolGatewaySpec, ToolRoute,
    ToolRouteSpec, ToolRouteUpstream, ToolServer, ToolServerSpec, ToolServerTransport,
};
use aigateway_runtime::rollout::ROLLOUT_HASH_ANNOTATION;
use aigateway_runtime::testing::{
    RunningOperator, api_server, eventually, touch, wait_attached_condition, wait_ready,
};
use aigateway_runtime::{Operator, ToolGatewayKind};
use aigateway_testkit::ApiServer;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::Value;

const NS: &str = "team-a";
const OTHER_NS: &str = "team-b";
const GATEWAY_URL: &str = "http://tools.team-a.svc.cluster.local";

async fn start() -> (ApiServer, Client, RunningOperator) {
    // Deployments become available 2 s after each change: long enough to look at a route
    // before its gateway serves it.
    let builder = ApiServer::builder().deployment_ready_delay(Duration::from_secs(2));
    let server = api_server(builder, &[NS, OTHER_NS]).await;
    let client = server.client();
    let class = ToolGatewayClass::new(
        "agentgateway",
        ToolGatewayClassSpec {
            controller: CONTROLLER_NAME.into(),
        },
    );
    Api::<ToolGatewayClass>::all(client.clone())
        .create(&PostParams::default(), &class)
        .await
        .expect("create class");
    let operator =
        RunningOperator::spawn(Operator::new(client.clone()).gateway(AgentgatewayToolClass));
    (server, client, operator)
}

async fn create<T>(client: &Client, namespace: &str, mut object: T)
where
    T: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::Serialize
        + serde::de::DeserializeOwned,
{
    object.meta_mut().namespace = Some(namespace.into());
    Api::<T>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &object)
        .await
        .expect("create object");
}

fn route(name: &str, upstream: ToolRouteUpstream, filter: Option<ToolFilter>) -> ToolRoute {
    ToolRoute::new(
        name,
        ToolRouteSpec {
            tool_gateway_ref: Some(ObjectReference {
                name: Some("tools".into()),
                ..Default::default()
            }),
            upstream,
            tool_filter: filter,
        },
    )
}

fn gateway() -> ToolGateway {
    ToolGateway::new(
        "tools",
        ToolGatewaySpec {
            tool_gateway_class_name: Some("agentgateway".into()),
            ..Default::default()
        },
    )
}

fn server_ref(name: &str, namespace: Option<&str>) -> ToolRouteUpstream {
    ToolRouteUpstream {
        tool_server_ref: Some(ObjectReference {
            name: Some(name.into()),
            namespace: namespace.map(Into::into),
            ..Default::default()
        }),
        external: None,
    }
}

fn external(url: &str) -> ToolRouteUpstream {
    ToolRouteUpstream {
        tool_server_ref: None,
        external: Some(ExternalUpstream { url: url.into() }),
    }
}

fn tool_server(name: &str, port: i32) -> ToolServer {
    ToolServer::new(
        name,
        ToolServerSpec {
            image: "mcp/echo:1".into(),
            port: Some(port),
            transport_type: ToolServerTransport::Http,
            ..Default::default()
        },
    )
}

/// The gateway's agentgateway config, parsed.
async fn config(client: &Client) -> Value {
    let map = Api::<ConfigMap>::namespaced(client.clone(), NS)
        .get("tools-agentgateway")
        .await
        .expect("config map");
    let yaml = &map.data.expect("data")["config.yaml"];
    serde_saphyr::from_str(yaml).expect("the config is YAML")
}

/// The config's routes by name.
fn routes(config: &Value) -> Vec<(String, Value)> {
    config["binds"][0]["listeners"][0]["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .map(|r| (r["name"].as_str().unwrap().to_owned(), r.clone()))
        .collect()
}

fn condition(route: &ToolRoute, type_: &str) -> (String, String) {
    let c = route
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .unwrap_or_else(|| panic!("no {type_} on {:?}", route.metadata.name));
    (c.status.clone(), c.reason.clone())
}

#[tokio::test]
async fn routes_become_agentgateway_routes_with_urls_once_the_gateway_serves_them() {
    let (server, client, operator) = start().await;
    create(&client, NS, tool_server("echo", 8000)).await;
    let filter = ToolFilter {
        allow: vec!["get_*".into()],
        deny: vec!["get_secret\")||true||(\"".into()],
    };
    create(
        &client,
        NS,
        route("echo", server_ref("echo", None), Some(filter)),
    )
    .await;
    create(
        &client,
        NS,
        route("events", external("https://mcp.example.com/v1/sse"), None),
    )
    .await;
    create(&client, NS, gateway()).await;

    // Accepted before the gateway is Ready, but no URL yet: the proxy does not serve it.
    let echo: ToolRoute = wait_attached_condition(&client, NS, "echo", "Accepted", "True").await;
    assert_eq!(echo.status.as_ref().and_then(|s| s.url.as_deref()), None);
    assert_eq!(condition(&echo, "Ready").0, "False");

    let gateway = wait_ready::<ToolGatewayKind>(&client, NS, "tools").await;
    assert_eq!(
        gateway.status.and_then(|s| s.url).as_deref(),
        Some(GATEWAY_URL)
    );
    let echo: ToolRoute = wait_attached_condition(&client, NS, "echo", "Ready", "True").await;
    assert_eq!(
        echo.status.and_then(|s| s.url),
        Some(format!("{GATEWAY_URL}/mcp/team-a/echo"))
    );
    let events: ToolRoute = wait_attached_condition(&client, NS, "events", "Ready", "True").await;
    assert_eq!(
        events.status.and_then(|s| s.url),
        Some(format!("{GATEWAY_URL}/mcp/team-a/events"))
    );

    let config = config(&client).await;
    assert_eq!(config["binds"][0]["port"], 3000);
    let routes = routes(&config);
    let names: Vec<&str> = routes.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["team-a/echo", "team-a/events"]);
    let (_, echo) = &routes[0];
    assert_eq!(echo["matches"][0]["path"]["pathPrefix"], "/mcp/team-a/echo");
    assert_eq!(
        echo["backends"][0]["mcp"]["targets"][0]["mcp"]["host"],
        "http://echo.team-a.svc.cluster.local:8000/mcp"
    );
    // The deny entry tries to close the CEL string: it stays one escaped literal.
    let rule = echo["policies"]["mcpAuthorization"]["rules"][0]
        .as_str()
        .unwrap();
    assert_eq!(
        rule,
        r#"(mcp.tool.name.matches("^get_.*$")) && !(mcp.tool.name.matches("^get_secret\"\\)\\|\\|true\\|\\|\\(\"$"))"#
    );
    let (_, events) = &routes[1];
    assert_eq!(
        events["backends"][0]["mcp"]["targets"][0]["sse"]["host"],
        "https://mcp.example.com/v1/sse"
    );
    assert!(events.get("policies").is_none(), "no filter, no rule");

    // Restricted pods.
    let deployment = Api::<Deployment>::namespaced(client.clone(), NS)
        .get("tools")
        .await
        .unwrap();
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.security_context.unwrap().run_as_non_root, Some(true));
    let container = pod.containers[0].security_context.clone().unwrap();
    assert_eq!(container.allow_privilege_escalation, Some(false));
    assert_eq!(
        container.capabilities.unwrap().drop,
        Some(vec!["ALL".into()])
    );

    // Converged: a gateway event writes nothing.
    operator
        .assert_silent_after(&server, touch::<ToolGateway>(&client, NS, "tools"))
        .await;
    operator.stop().await;
}

#[tokio::test]
async fn a_missing_or_foreign_backend_is_unresolved_and_a_backend_that_appears_is_served() {
    let (_server, client, operator) = start().await;
    create(&client, OTHER_NS, tool_server("shared", 8000)).await;
    create(&client, NS, gateway()).await;
    create(&client, NS, route("later", server_ref("later", None), None)).await;
    create(
        &client,
        NS,
        route("foreign", server_ref("shared", Some(OTHER_NS)), None),
    )
    .await;
    create(
        &client,
        NS,
        route(
            "dns",
            external("http://db.team-b.svc.cluster.local:8080/mcp"),
            None,
        ),
    )
    .await;
    create(
        &client,
        NS,
        route("bad-url", external("http://mcp example.com/mcp"), None),
    )
    .await;
    wait_ready::<ToolGatewayKind>(&client, NS, "tools").await;

    let later: ToolRoute =
        wait_attached_condition(&client, NS, "later", "ResolvedRefs", "False").await;
    assert_eq!(condition(&later, "ResolvedRefs").1, "BackendNotFound");
    assert_eq!(condition(&later, "Accepted").0, "True");
    assert_eq!(later.status.and_then(|s| s.url), None);
    for name in ["foreign", "dns"] {
        let route: ToolRoute =
            wait_attached_condition(&client, NS, name, "ResolvedRefs", "False").await;
        assert_eq!(
            condition(&route, "ResolvedRefs").1,
            "RefNotPermitted",
            "{name}"
        );
        assert_eq!(route.status.and_then(|s| s.url), None, "{name}");
    }
    let bad: ToolRoute = wait_attached_condition(&client, NS, "bad-url", "Accepted", "False").await;
    assert_eq!(condition(&bad, "Accepted").1, "UnsupportedValue");
    assert!(
        routes(&config(&client).await).is_empty(),
        "nothing unresolved is served"
    );
    let hash_before = rollout_hash(&client).await;

    // The missing ToolServer appears: the route is served, and the pods roll.
    create(&client, NS, tool_server("later", 9000)).await;
    let later: ToolRoute = wait_attached_condition(&client, NS, "later", "Ready", "True").await;
    assert_eq!(
        later.status.and_then(|s| s.url),
        Some(format!("{GATEWAY_URL}/mcp/team-a/later"))
    );
    let routes = routes(&config(&client).await);
    assert_eq!(routes.len(), 1);
    assert_eq!(
        routes[0].1["backends"][0]["mcp"]["targets"][0]["mcp"]["host"],
        "http://later.team-a.svc.cluster.local:9000/mcp"
    );
    let hash_after = eventually("the pods roll on the new config", || async {
        let hash = rollout_hash(&client).await;
        (hash != hash_before).then_some(hash)
    })
    .await;
    assert!(hash_after.is_some());
    operator.stop().await;
}

async fn rollout_hash(client: &Client) -> Option<String> {
    let deployment = Api::<Deployment>::namespaced(client.clone(), NS)
        .get("tools")
        .await
        .ok()?;
    deployment
        .spec?
        .template
        .metadata?
        .annotations?
        .remove(ROLLOUT_HASH_ANNOTATION)
}
