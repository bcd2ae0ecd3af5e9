//! An AiGateway class operator whose children are another operator's custom resources:
//! it translates each gateway into [Envoy AI Gateway] objects (API
//! `aigateway.envoyproxy.io/v1alpha1`, as of Envoy AI Gateway v0.4) and judges readiness
//! from the status Envoy AI Gateway's controller writes on them.
//!
//! | AiGateway                          | Envoy AI Gateway                                        |
//! |------------------------------------|---------------------------------------------------------|
//! | the gateway `<gw>`                 | one `AIGatewayRoute` `<gw>` attached to a [`ParentGateway`] |
//! | each model name                    | one route rule matching header `x-ai-eg-model: <model>` |
//! | each distinct provider `<p>`       | one `AIServiceBackend` `<gw>-<p>`, schema by [`schema_for`] |
//! | the provider's key in `api-key-secrets` | one `BackendSecurityPolicy` `<gw>-<p>-apikey` of type `APIKey` |
//!
//! The gateway is Ready when every one of these objects exists and carries
//! `Accepted=True` for its current generation.
//!
//! [Envoy AI Gateway]: https://aigateway.envoyproxy.io
#![warn(missing_docs)]

use std::collections::BTreeMap;

use aigateway_api::AiGateway;
use aigateway_api::conditions::Reason;
use aigateway_runtime::{
    Context, DesiredState, GatewayImplementation, ImplementationError, Observed, Readiness,
};
use kube::ResourceExt;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};

/// The `spec.controller` of the AiGatewayClasses this operator implements.
pub const CONTROLLER_NAME: &str = "example.com/envoy-ai-gateway-class";
/// The field manager and `app.kubernetes.io/managed-by` label of every child (the last
/// path segment of [`CONTROLLER_NAME`], as the runtime derives it).
pub const FIELD_MANAGER: &str = "envoy-ai-gateway-class";
/// The API group of Envoy AI Gateway's resources.
pub const ENVOY_AI_GATEWAY_GROUP: &str = "aigateway.envoyproxy.io";
/// The API version of Envoy AI Gateway's resources this example writes.
pub const ENVOY_AI_GATEWAY_VERSION: &str = "v1alpha1";
/// The header Envoy AI Gateway fills with the request's model name before routing.
pub const MODEL_HEADER: &str = "x-ai-eg-model";
/// The Secret holding one `<PROVIDER>_API_KEY` key per provider, in the gateway's
/// namespace: the same contract as the LiteLLM class.
pub const API_KEY_SECRET: &str = "api-key-secrets";
/// Annotation on each BackendSecurityPolicy naming the key of [`API_KEY_SECRET`] that
/// holds the provider's API key. Envoy AI Gateway v1alpha1 has no field for the key
/// (its controller reads the key `apiKey`); see the README.
pub const API_KEY_ANNOTATION: &str = "aigateway.agentic-layer.ai/api-key-secret-key";

/// `AIGatewayRoute`: routes requests by model name to backends.
pub fn route_resource() -> ApiResource {
    envoy_resource("AIGatewayRoute", "aigatewayroutes")
}

/// `AIServiceBackend`: one upstream AI service and the API schema it speaks.
pub fn backend_resource() -> ApiResource {
    envoy_resource("AIServiceBackend", "aiservicebackends")
}

/// `BackendSecurityPolicy`: the credentials Envoy uses towards a backend.
pub fn policy_resource() -> ApiResource {
    envoy_resource("BackendSecurityPolicy", "backendsecuritypolicies")
}

fn envoy_resource(kind: &str, plural: &str) -> ApiResource {
    let gvk = GroupVersionKind::gvk(ENVOY_AI_GATEWAY_GROUP, ENVOY_AI_GATEWAY_VERSION, kind);
    ApiResource::from_gvk_with_plural(&gvk, plural)
}

/// The Gateway API `Gateway` (run by Envoy Gateway) that every route attaches to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentGateway {
    /// The Gateway's name.
    pub name: String,
    /// The Gateway's namespace; `None` means the AiGateway's own namespace. Another
    /// namespace works only if the Gateway's listeners allow routes from it.
    pub namespace: Option<String>,
}

/// An `AIServiceBackend`'s `spec.schema`: the API an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiSchema {
    /// `OpenAI`, `AWSBedrock`, `AzureOpenAI`, `GCPVertexAI`, `Anthropic`, `Cohere`...
    pub name: &'static str,
    /// The schema version (for `OpenAI`, the path prefix), when not the default.
    pub version: Option<&'static str>,
}

/// The Envoy AI Gateway schema for a provider name as LiteLLM spells it. Providers not
/// listed speak the OpenAI API, as most hosted and self-hosted model servers do.
pub fn schema_for(provider: &str) -> ApiSchema {
    let (name, version) = match provider {
        "azure" | "azure_openai" => ("AzureOpenAI", None),
        "bedrock" | "aws_bedrock" => ("AWSBedrock", None),
        "vertex_ai" | "gcp_vertex_ai" => ("GCPVertexAI", None),
        "anthropic" => ("Anthropic", None),
        "cohere" => ("Cohere", None),
        // Gemini's OpenAI-compatible endpoints live under this prefix.
        "gemini" => ("OpenAI", Some("v1beta/openai")),
        _ => ("OpenAI", None),
    };
    ApiSchema { name, version }
}

/// Why a gateway cannot be translated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// A provider name has no letter or digit to build object names from.
    #[error("provider {0:?} has no letters or digits: it cannot name an AIServiceBackend")]
    UnnamableProvider(String),
    /// Two provider names map to the same object name.
    #[error(
        "providers {first:?} and {second:?} both map to AIServiceBackend suffix {slug:?}: use one spelling"
    )]
    ProviderClash {
        /// The provider seen first.
        first: String,
        /// The provider seen second.
        second: String,
        /// The shared object-name suffix.
        slug: String,
    },
}

/// A provider name as a DNS label: lower case, runs of other characters become `-`.
pub fn provider_slug(provider: &str) -> Result<String, TranslateError> {
    let mut slug = String::new();
    for c in provider.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_matches('-').to_owned();
    if slug.is_empty() {
        return Err(TranslateError::UnnamableProvider(provider.to_owned()));
    }
    Ok(slug)
}

/// The Secret key holding a provider's API key: `openai` -> `OPENAI_API_KEY`.
pub fn api_key_name(provider: &str) -> String {
    format!("{}_API_KEY", provider.to_uppercase())
}

/// The Envoy AI Gateway objects for `gateway`: the route first, then per provider (in
/// order of first use) its backend and its security policy.
pub fn translate(
    gateway: &AiGateway,
    parent: &ParentGateway,
) -> Result<Vec<DynamicObject>, TranslateError> {
    let name = gateway.name_any();
    let namespace = gateway.namespace().unwrap_or_default();

    // Providers in order of first use keep the object order, and so the applied
    // content, stable from one reconcile to the next.
    let mut providers: Vec<(&str, String)> = Vec::new();
    for model in &gateway.spec.ai_models {
        let slug = provider_slug(&model.provider)?;
        match providers.iter().find(|(_, s)| *s == slug) {
            Some((first, _)) if *first != model.provider => {
                return Err(TranslateError::ProviderClash {
                    first: (*first).to_owned(),
                    second: model.provider.clone(),
                    slug,
                });
            }
            Some(_) => {}
            None => providers.push((&model.provider, slug)),
        }
    }
    let backend_name = |provider: &str| {
        let slug = &providers
            .iter()
            .find(|(p, _)| *p == provider)
            .expect("collected above")
            .1;
        format!("{name}-{slug}")
    };

    // One rule per model name; a name served by several providers gets all their backends.
    let mut rules: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    for model in &gateway.spec.ai_models {
        let backends = rules.entry(&model.name).or_insert_with(|| {
            order.push(&model.name);
            Vec::new()
        });
        let backend = backend_name(&model.provider);
        if !backends.contains(&backend) {
            backends.push(backend);
        }
    }
    let rules: Vec<Value> = order
        .iter()
        .map(|model| {
            json!({
                "matches": [{ "headers": [{ "type": "Exact", "name": MODEL_HEADER, "value": model }] }],
                "backendRefs": rules[model].iter().map(|b| json!({ "name": b })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut parent_ref =
        json!({ "group": "gateway.networking.k8s.io", "kind": "Gateway", "name": parent.name });
    if let Some(parent_namespace) = &parent.namespace {
        parent_ref["namespace"] = json!(parent_namespace);
    }
    let mut objects = vec![
        DynamicObject::new(&name, &route_resource())
            .data(json!({ "spec": { "parentRefs": [parent_ref], "rules": rules } })),
    ];

    for (provider, slug) in &providers {
        let backend = backend_name(provider);
        let schema = schema_for(provider);
        let mut schema_json = json!({ "name": schema.name });
        if let Some(version) = schema.version {
            schema_json["version"] = json!(version);
        }
        objects.push(DynamicObject::new(&backend, &backend_resource()).data(json!({
            "spec": {
                "schema": schema_json,
                // An Envoy Gateway `Backend` per provider (endpoint, TLS) is platform
                // infrastructure shared by all gateways of the namespace.
                "backendRef": { "group": "gateway.envoyproxy.io", "kind": "Backend", "name": slug },
            }
        })));
        let mut policy = DynamicObject::new(&format!("{backend}-apikey"), &policy_resource()).data(json!({
            "spec": {
                "targetRefs": [{ "group": ENVOY_AI_GATEWAY_GROUP, "kind": "AIServiceBackend", "name": backend }],
                "type": "APIKey",
                "apiKey": { "secretRef": { "name": API_KEY_SECRET, "namespace": namespace } },
            }
        }));
        policy
            .annotations_mut()
            .insert(API_KEY_ANNOTATION.to_owned(), api_key_name(provider));
        objects.push(policy);
    }
    Ok(objects)
}

/// The class operator.
#[derive(Debug, Clone)]
pub struct EnvoyAiGatewayClass {
    parent: ParentGateway,
    url: Option<String>,
}

impl EnvoyAiGatewayClass {
    /// An operator attaching every gateway's route to `parent`.
    pub fn new(parent: ParentGateway) -> Self {
        Self { parent, url: None }
    }

    /// The URL clients reach `parent` at, published as every gateway's `status.url`
    /// (Envoy Gateway names its Service itself, so only the platform knows it).
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }
}

#[async_trait::async_trait]
impl GatewayImplementation for EnvoyAiGatewayClass {
    fn controller_name(&self) -> &str {
        CONTROLLER_NAME
    }

    // Replaces the default ConfigMap, Service and Deployment: these are all we create.
    fn child_kinds(&self) -> Vec<ApiResource> {
        vec![route_resource(), backend_resource(), policy_resource()]
    }

    async fn desired_state(
        &self,
        gateway: &AiGateway,
        _ctx: &Context,
    ) -> Result<DesiredState, ImplementationError> {
        let objects = translate(gateway, &self.parent)
            .map_err(|e| ImplementationError::invalid(Reason::INVALID_PARAMETERS, e.to_string()))?;
        let desired = objects
            .into_iter()
            .fold(DesiredState::new(), DesiredState::with_dynamic);
        Ok(match &self.url {
            Some(url) => desired.with_url(url),
            None => desired,
        })
    }

    fn readiness(&self, gateway: &AiGateway, observed: &Observed) -> Readiness {
        let expected = match translate(gateway, &self.parent) {
            Ok(expected) => expected,
            Err(error) => {
                return Readiness::Failed {
                    reason: Reason::INVALID,
                    message: error.to_string(),
                };
            }
        };
        for object in &expected {
            let kind = object.types.as_ref().map_or("", |t| t.kind.as_str());
            let name = object.name_any();
            let live = observed.children.iter().find(|child| {
                child.types.as_ref().is_some_and(|t| t.kind == kind) && child.name_any() == name
            });
            let Some(live) = live else {
                return not_ready(format!("{kind} {name} does not exist yet"));
            };
            if let Some(problem) = acceptance_problem(live) {
                return not_ready(format!("{kind} {name}: {problem}"));
            }
        }
        Readiness::Ready(format!(
            "Envoy AI Gateway accepted all {} objects",
            expected.len()
        ))
    }
}

fn not_ready(message: String) -> Readiness {
    Readiness::Progressing {
        reason: Reason::NOT_READY,
        message,
    }
}

/// Why Envoy AI Gateway has not accepted `object` (its controller sets one condition,
/// `Accepted` or `NotAccepted`), or `None` when it has, for the current generation.
pub fn acceptance_problem(object: &DynamicObject) -> Option<String> {
    let conditions = object.data["status"]["conditions"].as_array();
    let find = |type_: &str| {
        conditions?
            .iter()
            .find(|c| c["type"] == type_ && c["status"] == "True")
    };
    if let Some(rejected) = find("NotAccepted") {
        let message = rejected["message"].as_str().unwrap_or_default();
        return Some(format!("not accepted by Envoy AI Gateway: {message}"));
    }
    let Some(accepted) = find("Accepted") else {
        return Some("waiting for Envoy AI Gateway to accept it".to_owned());
    };
    // A condition about an older spec says nothing about the current one.
    let observed = accepted["observedGeneration"].as_i64();
    match (observed, object.metadata.generation) {
        (Some(observed), Some(current)) if observed < current => Some(format!(
            "Envoy AI Gateway has not processed generation {current} yet (accepted {observed})"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aigateway_api::{AiGatewaySpec, AiModel};

    fn gateway(models: &[(&str, &str)]) -> AiGateway {
        let mut gateway = AiGateway::new(
            "gw",
            AiGatewaySpec {
                ai_models: models.iter().map(|(p, m)| AiModel::new(*p, *m)).collect(),
                ..Default::default()
            },
        );
        gateway.metadata.namespace = Some("team".into());
        gateway
    }

    fn parent() -> ParentGateway {
        ParentGateway {
            name: "envoy".into(),
            namespace: Some("envoy-gateway-system".into()),
        }
    }

    fn ids(objects: &[DynamicObject]) -> Vec<String> {
        objects
            .iter()
            .map(|o| format!("{} {}", o.types.as_ref().unwrap().kind, o.name_any()))
            .collect()
    }

    #[test]
    fn one_route_and_a_backend_and_policy_per_distinct_provider() {
        let objects = translate(
            &gateway(&[("openai", "gpt-4o"), ("azure", "gpt-4o"), ("openai", "o3")]),
            &parent(),
        )
        .unwrap();
        assert_eq!(
            ids(&objects),
            [
                "AIGatewayRoute gw",
                "AIServiceBackend gw-openai",
                "BackendSecurityPolicy gw-openai-apikey",
                "AIServiceBackend gw-azure",
                "BackendSecurityPolicy gw-azure-apikey",
            ]
        );
        let route = &objects[0].data["spec"];
        assert_eq!(
            route["parentRefs"][0],
            json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "envoy", "namespace": "envoy-gateway-system"})
        );
        // The model served by two providers is one rule with both backends.
        assert_eq!(
            route["rules"],
            json!([
                {"matches": [{"headers": [{"type": "Exact", "name": "x-ai-eg-model", "value": "gpt-4o"}]}],
                 "backendRefs": [{"name": "gw-openai"}, {"name": "gw-azure"}]},
                {"matches": [{"headers": [{"type": "Exact", "name": "x-ai-eg-model", "value": "o3"}]}],
                 "backendRefs": [{"name": "gw-openai"}]},
            ])
        );
        assert_eq!(
            objects[3].data["spec"]["schema"],
            json!({"name": "AzureOpenAI"})
        );
        let policy = &objects[4];
        assert_eq!(
            policy.data["spec"]["apiKey"],
            json!({"secretRef": {"name": "api-key-secrets", "namespace": "team"}})
        );
        assert_eq!(policy.annotations()[API_KEY_ANNOTATION], "AZURE_API_KEY");
    }

    #[test]
    fn schemas_follow_the_provider_and_default_to_openai() {
        assert_eq!(schema_for("bedrock").name, "AWSBedrock");
        assert_eq!(schema_for("vertex_ai").name, "GCPVertexAI");
        assert_eq!(schema_for("anthropic").name, "Anthropic");
        assert_eq!(
            schema_for("gemini"),
            ApiSchema {
                name: "OpenAI",
                version: Some("v1beta/openai")
            }
        );
        assert_eq!(schema_for("mistral").name, "OpenAI");
    }

    #[test]
    fn provider_names_become_dns_labels_and_clashes_are_refused() {
        assert_eq!(provider_slug("azure_ai").unwrap(), "azure-ai");
        assert_eq!(provider_slug("Vertex AI!").unwrap(), "vertex-ai");
        assert_eq!(
            provider_slug("__"),
            Err(TranslateError::UnnamableProvider("__".into()))
        );
        let clash = translate(&gateway(&[("azure_ai", "m"), ("azure-ai", "n")]), &parent());
        assert!(
            matches!(clash, Err(TranslateError::ProviderClash { ref slug, .. }) if slug == "azure-ai"),
            "{clash:?}"
        );
    }

    #[test]
    fn acceptance_needs_accepted_true_for_the_current_generation() {
        let mut object = DynamicObject::new("gw", &route_resource());
        object.metadata.generation = Some(2);
        assert!(acceptance_problem(&object).unwrap().contains("waiting"));
        let condition = |type_: &str, generation: i64| json!({"status": {"conditions": [{"type": type_, "status": "True", "reason": type_, "message": "bad backendRef", "observedGeneration": generation}]}});
        object.data = condition("Accepted", 1);
        assert!(
            acceptance_problem(&object)
                .unwrap()
                .contains("generation 2")
        );
        object.data = condition("Accepted", 2);
        assert_eq!(acceptance_problem(&object), None);
        object.data = condition("NotAccepted", 2);
        assert!(
            acceptance_problem(&object)
                .unwrap()
                .contains("bad backendRef")
        );
    }
}
