//! The CustomResourceDefinitions generated from this crate's types.
//!
//! Use these functions rather than `CustomResourceExt::crd()`: they finish the derived
//! CRD so that it matches controller-gen's output for the upstream Go types (list kind,
//! no `nullable` on optional fields, `spec` optional at the root as upstream has it).
//! `deploy/crds/` holds these as YAML files; a test fails when they are stale.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::{Value, json};

use crate::{
    AgentGateway, AgentGatewayClass, AiGateway, AiGatewayClass, Guard, GuardrailProvider,
    ToolGateway, ToolGatewayClass, ToolRoute, ToolServer,
};

/// The AiGateway CRD.
pub fn ai_gateway() -> CustomResourceDefinition {
    finish(AiGateway::crd())
}

/// The AiGatewayClass CRD.
pub fn ai_gateway_class() -> CustomResourceDefinition {
    finish(AiGatewayClass::crd())
}

/// The Guard CRD.
pub fn guard() -> CustomResourceDefinition {
    finish(Guard::crd())
}

/// The GuardrailProvider CRD.
pub fn guardrail_provider() -> CustomResourceDefinition {
    finish(GuardrailProvider::crd())
}

/// The ToolGateway CRD.
pub fn tool_gateway() -> CustomResourceDefinition {
    finish(ToolGateway::crd())
}

/// The ToolGatewayClass CRD.
pub fn tool_gateway_class() -> CustomResourceDefinition {
    finish(ToolGatewayClass::crd())
}

/// The ToolRoute CRD (with upstream's CEL rule: exactly one of `toolServerRef` and
/// `external`).
pub fn tool_route() -> CustomResourceDefinition {
    finish(ToolRoute::crd())
}

/// The ToolServer CRD.
pub fn tool_server() -> CustomResourceDefinition {
    finish(ToolServer::crd())
}

/// The AgentGateway CRD.
pub fn agent_gateway() -> CustomResourceDefinition {
    finish(AgentGateway::crd())
}

/// The AgentGatewayClass CRD.
pub fn agent_gateway_class() -> CustomResourceDefinition {
    finish(AgentGatewayClass::crd())
}

/// Every CRD of this crate: AiGateway, AiGatewayClass, Guard, GuardrailProvider,
/// ToolGateway, ToolGatewayClass, ToolRoute, ToolServer, AgentGateway and
/// AgentGatewayClass.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        ai_gateway(),
        ai_gateway_class(),
        guard(),
        guardrail_provider(),
        tool_gateway(),
        tool_gateway_class(),
        tool_route(),
        tool_server(),
        agent_gateway(),
        agent_gateway_class(),
    ]
}

/// The file name a CRD is kept under: `<plural>.<group>.yaml`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}

/// A CRD as a YAML document, the form `kubectl apply -f` takes.
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_saphyr::ser_error::Error> {
    serde_saphyr::to_string(crd)
}

fn finish(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    crd.spec.names.list_kind = Some(format!("{}List", crd.spec.names.kind));
    for version in &mut crd.spec.versions {
        let Some(validation) = version.schema.as_mut() else {
            continue;
        };
        let Some(schema) = validation.open_api_v3_schema.take() else {
            continue;
        };
        let mut value = serde_json::to_value(schema).expect("a JSONSchemaProps serialises");
        finish_schema(&mut value);
        if let Some(root) = value.as_object_mut() {
            // controller-gen leaves `spec` optional and lists the standard fields.
            root.remove("required");
            if let Some(Value::Object(properties)) = root.get_mut("properties") {
                properties.insert(
                    "apiVersion".into(),
                    json!({"type": "string", "description": API_VERSION_DOC}),
                );
                properties.insert(
                    "kind".into(),
                    json!({"type": "string", "description": KIND_DOC}),
                );
                properties.insert("metadata".into(), json!({"type": "object"}));
            }
        }
        validation.open_api_v3_schema = Some(
            serde_json::from_value(value).expect("the finished schema is still a JSONSchemaProps"),
        );
    }
    crd
}

const API_VERSION_DOC: &str = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values.";
const KIND_DOC: &str = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. In CamelCase.";

/// Drops `nullable` (the Go types omit empty optional fields rather than sending null)
/// and restores the typed branches of int-or-string `anyOf` that the structural rewrite
/// leaves empty.
fn finish_schema(schema: &mut Value) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    object.remove("nullable");
    if object.get("x-kubernetes-int-or-string") == Some(&json!(true)) {
        object.insert(
            "anyOf".into(),
            json!([{"type": "integer"}, {"type": "string"}]),
        );
    }
    for key in ["properties"] {
        if let Some(Value::Object(children)) = object.get_mut(key) {
            children.values_mut().for_each(finish_schema);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = object.get_mut(key) {
            finish_schema(child);
        }
    }
}
