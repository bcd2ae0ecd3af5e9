//! What differs between gateway kinds (AiGateway, ToolGateway, AgentGateway), so that
//! one loop serves them all.

use std::fmt::Debug;

use aigateway_api::agent_gateway::DEFAULT_AGENT_GATEWAY_CLASS_ANNOTATION;
use aigateway_api::tool_gateway::DEFAULT_TOOL_GATEWAY_CLASS_ANNOTATION;
use aigateway_api::{
    AgentGateway, AgentGatewayClass, AiGateway, AiGatewayClass, ToolGateway, ToolGatewayClass,
    class::DEFAULT_CLASS_ANNOTATION, conditions::types,
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A gateway resource and its class resource.
pub trait GatewayKind: Send + Sync + 'static {
    /// The namespaced gateway type, e.g. [`AiGateway`].
    type Gateway: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static;
    /// The cluster-scoped class type, e.g. [`AiGatewayClass`].
    type Class: Resource<DynamicType = (), Scope = ClusterResourceScope>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static;

    /// The annotation (value `"true"`) that marks a default class.
    const DEFAULT_CLASS_ANNOTATION: &'static str;
    /// Condition types the loop writes on gateways; removed again when a gateway stops
    /// being ours.
    const CONDITION_TYPES: &'static [&'static str] = &[
        types::ACCEPTED,
        types::RESOLVED_REFS,
        types::PROGRAMMED,
        types::READY,
    ];

    /// The class a gateway names; `None` or empty means "the default class".
    fn class_name(gateway: &Self::Gateway) -> Option<&str>;
    /// The controller a class names.
    fn controller(class: &Self::Class) -> &str;
    /// A gateway's current conditions.
    fn gateway_conditions(gateway: &Self::Gateway) -> &[Condition];
    /// A class's current conditions.
    fn class_conditions(class: &Self::Class) -> &[Condition];
    /// A gateway's current `status.url`, if the kind has one.
    fn gateway_url(gateway: &Self::Gateway) -> Option<&str>;
}

/// [`GatewayKind`] for `AiGateway` / `AiGatewayClass`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AiGatewayKind;

impl GatewayKind for AiGatewayKind {
    type Gateway = AiGateway;
    type Class = AiGatewayClass;
    const DEFAULT_CLASS_ANNOTATION: &'static str = DEFAULT_CLASS_ANNOTATION;

    fn class_name(gateway: &AiGateway) -> Option<&str> {
        gateway.spec.class_name()
    }
    fn controller(class: &AiGatewayClass) -> &str {
        &class.spec.controller
    }
    fn gateway_conditions(gateway: &AiGateway) -> &[Condition] {
        gateway.status.as_ref().map_or(&[], |s| &s.conditions)
    }
    fn class_conditions(class: &AiGatewayClass) -> &[Condition] {
        class.status.as_ref().map_or(&[], |s| &s.conditions)
    }
    fn gateway_url(gateway: &AiGateway) -> Option<&str> {
        gateway.status.as_ref().and_then(|s| s.url.as_deref())
    }
}

/// [`GatewayKind`] for `ToolGateway` / `ToolGatewayClass` (default-class annotation
/// `toolgatewayclass.kubernetes.io/is-default-class`). ToolRoutes attach to ToolGateways:
/// see [`ToolGatewayKind::routes`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ToolGatewayKind;

impl GatewayKind for ToolGatewayKind {
    type Gateway = ToolGateway;
    type Class = ToolGatewayClass;
    const DEFAULT_CLASS_ANNOTATION: &'static str = DEFAULT_TOOL_GATEWAY_CLASS_ANNOTATION;

    fn class_name(gateway: &ToolGateway) -> Option<&str> {
        gateway.spec.class_name()
    }
    fn controller(class: &ToolGatewayClass) -> &str {
        &class.spec.controller
    }
    fn gateway_conditions(gateway: &ToolGateway) -> &[Condition] {
        gateway.status.as_ref().map_or(&[], |s| &s.conditions)
    }
    fn class_conditions(class: &ToolGatewayClass) -> &[Condition] {
        class.status.as_ref().map_or(&[], |s| &s.conditions)
    }
    fn gateway_url(gateway: &ToolGateway) -> Option<&str> {
        gateway.status.as_ref().and_then(|s| s.url.as_deref())
    }
}

/// [`GatewayKind`] for `AgentGateway` / `AgentGatewayClass` (default-class annotation
/// `agentgatewayclass.kubernetes.io/is-default-class`). Upstream's AgentGateway has no
/// `status.url`; a URL in the desired state is written and pruned by the API server.
#[derive(Debug, Clone, Copy, Default)]
pub struct AgentGatewayKind;

impl GatewayKind for AgentGatewayKind {
    type Gateway = AgentGateway;
    type Class = AgentGatewayClass;
    const DEFAULT_CLASS_ANNOTATION: &'static str = DEFAULT_AGENT_GATEWAY_CLASS_ANNOTATION;

    fn class_name(gateway: &AgentGateway) -> Option<&str> {
        gateway.spec.class_name()
    }
    fn controller(class: &AgentGatewayClass) -> &str {
        &class.spec.controller
    }
    fn gateway_conditions(gateway: &AgentGateway) -> &[Condition] {
        gateway.status.as_ref().map_or(&[], |s| &s.conditions)
    }
    fn class_conditions(class: &AgentGatewayClass) -> &[Condition] {
        class.status.as_ref().map_or(&[], |s| &s.conditions)
    }
    fn gateway_url(_gateway: &AgentGateway) -> Option<&str> {
        None
    }
}
