//! A ToolGateway class for [agentgateway](https://agentgateway.dev): each ToolGateway of
//! a [`CONTROLLER_NAME`] class gets an agentgateway proxy with one route per attached
//! ToolRoute (`/mcp/<namespace>/<name>`, one MCP target, the route's tool filter as an
//! authorization rule). A route gets its URL once served; a backend that is missing, or
//! in another namespace (this class takes no ReferenceGrants), is `ResolvedRefs=False`.
#![warn(missing_docs)]

use aigateway_api::conditions::Reason;
use aigateway_api::tool_upstream::{RouteUpstream, UpstreamObject};
use aigateway_api::{ToolFilter, ToolGateway, ToolRoute, ToolServer, ToolServerTransport};
use aigateway_runtime::{
    AttachedDecision, AttachedKind, Context, DesiredState, GatewayImplementation,
    ImplementationError, RelatedWatch, ToolGatewayKind, implementation::NotWatched,
    reference_grants::REF_NOT_PERMITTED, roll_pods_on,
};
use kube::{ResourceExt, api::DynamicObject};
use serde_json::{Value, json};

/// The `spec.controller` of the ToolGatewayClasses this operator implements.
pub const CONTROLLER_NAME: &str = "example.com/agentgateway-tool-class";
/// The proxy image.
pub const IMAGE: &str = "ghcr.io/agentgateway/agentgateway:0.10.5";
/// The port agentgateway listens on; the Service maps port 80 (the gateway's URL) to it.
pub const PORT: i32 = 3000;
const UNSUPPORTED: Reason = Reason::from_static("UnsupportedValue");
const BACKEND_NOT_FOUND: Reason = Reason::from_static("BackendNotFound");

/// The class operator; everything it needs is in the gateway and its routes.
#[derive(Debug, Default, Clone, Copy)]
pub struct AgentgatewayToolClass;

#[async_trait::async_trait]
impl GatewayImplementation<ToolGatewayKind> for AgentgatewayToolClass {
    fn controller_name(&self) -> &str {
        CONTROLLER_NAME
    }

    fn attached(&self) -> Option<AttachedKind<ToolGatewayKind>> {
        Some(ToolGatewayKind::routes())
    }

    fn related(&self) -> Vec<RelatedWatch> {
        vec![RelatedWatch::new::<ToolServer>()]
    }

    async fn desired_state(
        &self,
        gateway: &ToolGateway,
        ctx: &Context,
    ) -> Result<DesiredState, ImplementationError> {
        let url = gateway.service_url().unwrap_or_default();
        let (mut desired, mut routes) = (DesiredState::new(), Vec::new());
        for route in ctx.attached::<ToolRoute>(gateway)? {
            let namespace = route.namespace().unwrap_or_default();
            let id = format!("{namespace}/{}", route.name_any());
            let decision = match target(&route, ctx)? {
                Ok(target) => {
                    routes.push(agentgateway_route(&route, &id, target));
                    AttachedDecision::serve(format!("{url}/mcp/{id}"))
                }
                Err(not_served) => not_served,
            };
            desired = desired.with_attached(&route, decision);
        }
        Ok(with_children(desired, gateway, &routes).with_url(url))
    }
}

/// The agentgateway target of the MCP server `route` names, or why it cannot be served.
fn target(route: &ToolRoute, ctx: &Context) -> Result<Result<Value, AttachedDecision>, NotWatched> {
    let (refuse, unresolved) = (AttachedDecision::refuse, AttachedDecision::unresolved);
    let upstream = match route.upstream() {
        Ok(upstream) => upstream,
        Err(invalid) => return Ok(Err(refuse(UNSUPPORTED, invalid.to_string()))),
    };
    // This class takes no ReferenceGrants: a ToolServer, or a Service or Pod named through
    // the cluster's DNS, in another namespace is never reached (nor read).
    let namespace = route.namespace();
    let elsewhere = |o: &UpstreamObject| Some(&o.at.namespace) != namespace.as_ref();
    if let Some(object) = upstream.object().filter(elsewhere) {
        let why = format!("the upstream is a {} in another namespace", object.kind);
        return Ok(Err(unresolved(REF_NOT_PERMITTED, why)));
    }
    let (url, transport) = match upstream {
        RouteUpstream::External { url, transport } => (url.to_owned(), transport),
        RouteUpstream::ToolServer(server) => {
            let missing = |why: &dyn std::fmt::Display| {
                let message = format!("ToolServer {} {why}", server.name);
                Ok(Err(unresolved(BACKEND_NOT_FOUND, message)))
            };
            let Some(found) = ctx.get::<ToolServer>(&server.namespace, &server.name)? else {
                return missing(&"not found");
            };
            match found.url(&server) {
                Ok(url) => (url, found.spec.transport_type),
                Err(why) => return missing(&why),
            }
        }
    };
    let transport = match transport {
        ToolServerTransport::Sse => "sse",
        ToolServerTransport::Http => "mcp",
    };
    let target = json!({ "name": route.name_any(), transport: { "host": url } });
    Ok(Ok(target))
}

/// One agentgateway route: path `/mcp/<id>`, the route's MCP server as its one target,
/// and the tool filter as an authorization rule (denied tools are also never listed).
fn agentgateway_route(route: &ToolRoute, id: &str, target: Value) -> Value {
    let mut rule = json!({
        "name": id,
        "matches": [{ "path": { "pathPrefix": format!("/mcp/{id}") } }],
        "backends": [{ "mcp": { "targets": [target] } }],
    });
    let filter = route.spec.tool_filter.as_ref();
    if let Some(filter) = filter.filter(|f| !f.allow.is_empty() || !f.deny.is_empty()) {
        rule["policies"] = json!({ "mcpAuthorization": { "rules": [tool_rule(filter)] } });
    }
    rule
}

/// A CEL rule true for the tools `filter` exposes: allowed (or no allow list) and not
/// denied. Each `*`/`?` pattern becomes an anchored RE2 regex with everything else
/// escaped, written as a JSON-escaped CEL string, so no name can inject CEL.
fn tool_rule(filter: &ToolFilter) -> String {
    let any = |patterns: &[String], none: &str| match patterns {
        [] => none.to_owned(),
        _ => patterns
            .iter()
            .map(|p| json!(ToolFilter::pattern_regex(p)))
            .map(|regex| format!("mcp.tool.name.matches({regex})"))
            .collect::<Vec<_>>()
            .join(" || "),
    };
    let (allowed, denied) = (any(&filter.allow, "true"), any(&filter.deny, "false"));
    format!("({allowed}) && !({denied})")
}

/// `desired` with ConfigMap `<gw>-agentgateway` (the config), Deployment and Service `<gw>`.
fn with_children(desired: DesiredState, gateway: &ToolGateway, routes: &[Value]) -> DesiredState {
    let name = gateway.name_any();
    let config = json!({ "binds": [{ "port": PORT, "listeners": [{ "routes": routes }] }] });
    let config_yaml = serde_saphyr::to_string(&config).expect("JSON values serialise as YAML");
    let labels = json!({ "app": name });
    let mut deployment = dynamic(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": name },
        "spec": {
            "replicas": 1, "selector": { "matchLabels": labels },
            "template": {
                "metadata": { "labels": labels },
                "spec": {
                    "securityContext": { "runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": { "type": "RuntimeDefault" } },
                    "containers": [{
                        "name": "agentgateway", "image": IMAGE, "args": ["-f", "/config/config.yaml"],
                        "ports": [{ "name": "http", "containerPort": PORT }],
                        "readinessProbe": { "httpGet": { "path": "/healthz/ready", "port": 15021 } },
                        "volumeMounts": [{ "name": "config", "mountPath": "/config", "readOnly": true }],
                        "securityContext": { "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true, "capabilities": { "drop": ["ALL"] } },
                    }],
                    "volumes": [{ "name": "config", "configMap": { "name": format!("{name}-agentgateway") } }],
                },
            },
        },
    }));
    // The config is read at start: a new config rolls the pods.
    roll_pods_on(&mut deployment, &config_yaml);
    desired
        .with_dynamic(dynamic(json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": format!("{name}-agentgateway") },
            "data": { "config.yaml": config_yaml },
        })))
        .with_dynamic(deployment)
        .with_dynamic(dynamic(json!({
            "apiVersion": "v1", "kind": "Service", "metadata": { "name": name },
            "spec": { "selector": labels, "ports": [{ "name": "http", "port": 80, "targetPort": "http" }] },
        })))
}

fn dynamic(object: Value) -> DynamicObject {
    serde_json::from_value(object).expect("an object literal with apiVersion and kind")
}
