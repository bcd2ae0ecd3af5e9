//! An OpenAI-compatible router class: each gateway gets a router Deployment reading a
//! JSON route table (ConfigMap `<gw>-routes`) and one API key per provider from the
//! gateway namespace's Secret [`KEYS_SECRET`] (key `<PROVIDER>_API_KEY`), and a Service.
//! A missing key is reported (`ResolvedRefs=False`) and its provider's models are left
//! out; rotating a key or changing the routes rolls the pods.
#![warn(missing_docs)]

use std::collections::{BTreeMap, BTreeSet};

use aigateway_api::AiGateway;
use aigateway_runtime::{
    Context, DesiredState, GatewayImplementation, ImplementationError, RefProblem, RelatedWatch,
    roll_pods_on,
};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::DynamicObject;
use serde_json::{Value, json};

/// The `spec.controller` of the classes this operator implements.
pub const CONTROLLER_NAME: &str = "example.com/router-class";
/// The Secret, in each gateway's namespace, holding the providers' API keys.
pub const KEYS_SECRET: &str = "router-keys";
/// The router image: it reads `/etc/router/routes.json` and the keys from env at start.
pub const IMAGE: &str = "ghcr.io/example/openai-router:1.4.0";
const PORT: i32 = 8000;

/// The class operator.
#[derive(Debug, Default, Clone, Copy)]
pub struct RouterClass;

/// The Secret key (and environment variable) holding `provider`'s API key.
pub fn key_name(provider: &str) -> String {
    let provider = provider.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
    format!("{}_API_KEY", provider.to_ascii_uppercase())
}

#[async_trait::async_trait]
impl GatewayImplementation for RouterClass {
    fn controller_name(&self) -> &str {
        CONTROLLER_NAME
    }

    fn related(&self) -> Vec<RelatedWatch> {
        vec![RelatedWatch::new::<Secret>().named(KEYS_SECRET)]
    }

    async fn desired_state(
        &self,
        gateway: &AiGateway,
        ctx: &Context,
    ) -> Result<DesiredState, ImplementationError> {
        let (name, namespace) = (gateway.name_any(), gateway.namespace().unwrap_or_default());
        let secret = ctx.get::<Secret>(&namespace, KEYS_SECRET)?;
        let data = secret
            .as_ref()
            .and_then(|s| s.data.clone())
            .unwrap_or_default();
        let (mut routes, mut keys, mut missing) = (Vec::new(), BTreeMap::new(), BTreeSet::new());
        for model in &gateway.spec.ai_models {
            let key = key_name(&model.provider);
            let Some(value) = data.get(&key) else {
                missing.insert(key);
                continue;
            };
            routes
                .push(json!({ "model": model.name, "provider": model.provider, "apiKeyEnv": key }));
            keys.insert(key, value);
        }
        // Models whose key is missing are left out; the others are served meanwhile.
        let mut desired = DesiredState::new();
        if secret.is_none() && !missing.is_empty() {
            desired = desired.with_ref_problem(RefProblem::missing_secret(&namespace, KEYS_SECRET));
        } else {
            for key in &missing {
                let problem = RefProblem::missing_secret_key(&namespace, KEYS_SECRET, key);
                desired = desired.with_ref_problem(problem);
            }
        }
        let config = json!({ "listen": PORT, "routes": routes }).to_string();
        let env: Vec<Value> = keys
            .keys()
            .map(|key| {
                json!({ "name": key,
            "valueFrom": { "secretKeyRef": { "name": KEYS_SECRET, "key": key } } })
            })
            .collect();
        let labels = json!({ "app": name });
        let mut deployment = dynamic(json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": name },
            "spec": {
                "replicas": 1,
                "selector": { "matchLabels": labels },
                "template": {
                    "metadata": { "labels": labels },
                    "spec": {
                        "securityContext": { "runAsNonRoot": true, "seccompProfile": { "type": "RuntimeDefault" } },
                        "containers": [{
                            "name": "router", "image": IMAGE, "env": env,
                            "args": ["--config", "/etc/router/routes.json"],
                            "ports": [{ "name": "http", "containerPort": PORT }],
                            "readinessProbe": { "httpGet": { "path": "/v1/models", "port": "http" } },
                            "volumeMounts": [{ "name": "routes", "mountPath": "/etc/router", "readOnly": true }],
                            "securityContext": { "allowPrivilegeEscalation": false,
                                "readOnlyRootFilesystem": true, "capabilities": { "drop": ["ALL"] } },
                        }],
                        "volumes": [{ "name": "routes", "configMap": { "name": format!("{name}-routes") } }],
                    },
                },
            },
        }));
        // The router reads both only at start: a new route table or a rotated key rolls it.
        roll_pods_on(&mut deployment, &(&config, &keys));
        let service = dynamic(json!({
            "apiVersion": "v1", "kind": "Service", "metadata": { "name": name },
            "spec": { "selector": labels,
                "ports": [{ "name": "http", "port": gateway.spec.port(), "targetPort": "http" }] },
        }));
        let routes_map = dynamic(json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": format!("{name}-routes") },
            "data": { "routes.json": config },
        }));
        Ok(desired
            .with_dynamic(routes_map)
            .with_dynamic(deployment)
            .with_dynamic(service)
            .with_url(gateway.service_url().unwrap_or_default()))
    }
}

fn dynamic(object: Value) -> DynamicObject {
    serde_json::from_value(object).expect("an object literal with apiVersion and kind")
}
