//! What differs between gateway kinds (AiGateway today; ToolGateway and AgentGateway
//! follow the same pattern), so that one loop serves them all.

use std::fmt::Debug;

use aigateway_api::{
    AiGateway, AiGatewayClass, class::DEFAULT_CLASS_ANNOTATION, conditions::types,
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
