//! `LiteLlmGateway`: the LiteLLM rendering wired into the runtime's reconcile loop.
//!
//! Desired state is [`render`](crate::render()) over the loop's caches; reference problems
//! become `ResolvedRefs=False`, other problems become warnings on `Programmed`; a gateway
//! that cannot render at all is reported invalid. Related watches re-run a gateway when a
//! Secret, ConfigMap, Guard or GuardrailProvider it depends on changes, in any namespace.

use std::sync::Arc;

use aigateway_api::conditions::reasons;
use aigateway_api::{AiGateway, Guard, GuardrailProvider, ToolServer};
use aigateway_runtime::{
    Context, DesiredState, GatewayImplementation, ImplementationError, Observed, Readiness,
    RelatedWatch, deployments_rolled_out,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt;
use kube::api::DynamicObject;
use kube::runtime::reflector::ObjectRef as CacheRef;

use crate::names::{self, CONTROLLER_NAME};
use crate::{ObjectLookup, RenderError, RenderSettings, render};

/// The condition types of the Go operator, mirrored for tools that read them.
pub const GO_CONFIGURED_CONDITION: &str = "AiGatewayConfigured";
/// See [`GO_CONFIGURED_CONDITION`].
pub const GO_READY_CONDITION: &str = "AiGatewayReady";

/// The LiteLLM class implementation.
#[derive(Debug, Clone, Default)]
pub struct LiteLlmGateway {
    settings: RenderSettings,
}

impl LiteLlmGateway {
    /// An implementation rendering with operator-wide `settings` (per-gateway
    /// annotations still override them).
    pub fn new(settings: RenderSettings) -> Self {
        Self { settings }
    }
}

/// [`ObjectLookup`] over the loop's caches of related objects.
struct CachedObjects<'a>(&'a Context);

impl ObjectLookup for CachedObjects<'_> {
    fn guard(&self, namespace: &str, name: &str) -> Option<Guard> {
        self.0.get(namespace, name)
    }
    fn guardrail_provider(&self, namespace: &str, name: &str) -> Option<GuardrailProvider> {
        self.0.get(namespace, name)
    }
    fn secret(&self, namespace: &str, name: &str) -> Option<Secret> {
        self.0.get(namespace, name)
    }
    fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap> {
        self.0.get(namespace, name)
    }
    fn tool_server(&self, namespace: &str, name: &str) -> Option<ToolServer> {
        self.0.get(namespace, name)
    }
}

fn invalid(error: RenderError) -> ImplementationError {
    let reason = match &error {
        RenderError::PatchConfigMapNotFound { .. } | RenderError::PatchKeyMissing { .. } => {
            reasons::REF_NOT_FOUND
        }
        RenderError::InvalidPatch { .. } => reasons::INVALID_REF,
        _ => return ImplementationError::invalid(reasons::INVALID_PARAMETERS, error.to_string()),
    };
    ImplementationError::unresolved_ref(reason, error.to_string())
}

/// The reason of a Deployment condition that means its pods cannot be created.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// Readiness from the live Deployments: a `ReplicaFailure` condition (pods refused, e.g.
/// by Pod Security admission or a quota) is reported with the Deployment's own reason and
/// message, since waiting cannot fix it; otherwise the runtime's rollout check.
pub fn readiness_of(observed: &Observed) -> Readiness {
    for deployment in observed.of::<Deployment>() {
        let failure = deployment
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|conditions| {
                conditions
                    .iter()
                    .find(|c| c.type_ == REPLICA_FAILURE && c.status == "True")
            });
        if let Some(condition) = failure {
            return Readiness::NotReady {
                reason: REPLICA_FAILURE.to_owned(),
                message: format!(
                    "Deployment {} cannot create pods ({}): {}",
                    deployment.name_any(),
                    condition.reason.as_deref().unwrap_or("no reason given"),
                    condition.message.as_deref().unwrap_or("no message given")
                ),
            };
        }
    }
    deployments_rolled_out(observed)
}

fn refs(gateways: impl Iterator<Item = Arc<AiGateway>>) -> Vec<CacheRef<AiGateway>> {
    gateways.map(|g| CacheRef::from_obj(g.as_ref())).collect()
}

/// Whether `gateway` lists the guard `namespace/name` (a reference without namespace
/// points into the gateway's namespace).
fn references_guard(gateway: &AiGateway, namespace: &str, name: &str) -> bool {
    let own = gateway.namespace().unwrap_or_default();
    gateway.spec.guardrails.iter().any(|r| {
        r.name.as_deref() == Some(name)
            && r.namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(&own)
                == namespace
    })
}

/// Whether `gateway` reads Secret `namespace/name` itself (not through a guard).
fn reads_secret(gateway: &AiGateway, namespace: &str, name: &str) -> bool {
    if gateway.namespace().as_deref() != Some(namespace) {
        return false;
    }
    name == names::API_KEY_SECRET
        || gateway.spec.env.iter().any(|e| {
            e.value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref())
                .is_some_and(|r| r.name == name)
        })
        || gateway
            .spec
            .env_from
            .iter()
            .any(|e| e.secret_ref.as_ref().is_some_and(|r| r.name == name))
}

/// Whether `gateway` reads ConfigMap `namespace/name` (its config patch or env).
fn reads_config_map(gateway: &AiGateway, namespace: &str, name: &str) -> bool {
    if gateway.namespace().as_deref() != Some(namespace) {
        return false;
    }
    gateway
        .annotations()
        .get(names::CONFIG_PATCH_ANNOTATION)
        .is_some_and(|n| n == name)
        || gateway.spec.env.iter().any(|e| {
            e.value_from
                .as_ref()
                .and_then(|v| v.config_map_key_ref.as_ref())
                .is_some_and(|r| r.name == name)
        })
        || gateway
            .spec
            .env_from
            .iter()
            .any(|e| e.config_map_ref.as_ref().is_some_and(|r| r.name == name))
}

#[async_trait::async_trait]
impl GatewayImplementation for LiteLlmGateway {
    fn controller_name(&self) -> &str {
        CONTROLLER_NAME
    }

    async fn desired_state(
        &self,
        gateway: &AiGateway,
        ctx: &Context,
    ) -> Result<DesiredState, ImplementationError> {
        let rendered = render(gateway, &CachedObjects(ctx), &self.settings).map_err(invalid)?;
        let mut desired = DesiredState::new()
            .with(&rendered.config_map)
            .with(&rendered.deployment)
            .with(&rendered.service)
            .with_url(gateway.service_url().unwrap_or_default());
        for problem in rendered.problems {
            let message = format!("{}: {}", problem.object, problem.message);
            desired = if problem.reason.is_unresolved_ref() {
                desired.with_problem(problem.reason.to_string(), message)
            } else {
                desired.with_warning(message)
            };
        }
        Ok(desired)
    }

    fn readiness(&self, _gateway: &AiGateway, observed: &Observed) -> Readiness {
        readiness_of(observed)
    }

    fn related(&self) -> Vec<RelatedWatch> {
        vec![
            // Secrets a gateway reads: api-key-secrets, env/envFrom references and guard
            // credentials, all in its own namespace (credentials from other namespaces
            // are refused), so a Secret elsewhere reconciles no gateway.
            RelatedWatch::new::<Secret>(|secret: &DynamicObject, gateways: &[Arc<AiGateway>]| {
                let (namespace, name) = (secret.namespace().unwrap_or_default(), secret.name_any());
                refs(
                    gateways
                        .iter()
                        .filter(|g| {
                            g.namespace().as_deref() == Some(namespace.as_str())
                                && (!g.spec.guardrails.is_empty()
                                    || reads_secret(g, &namespace, &name))
                        })
                        .cloned(),
                )
            }),
            // The config-patch ConfigMap and env/envFrom ConfigMaps, in the gateway's namespace.
            RelatedWatch {
                // Our own `<gw>-config` children are cached as children already.
                label_selector: Some(format!(
                    "{}!={}",
                    aigateway_runtime::names::CONTROLLER_LABEL,
                    aigateway_runtime::names::controller_label_value(CONTROLLER_NAME)
                )),
                ..RelatedWatch::new::<ConfigMap>(
                    |config_map: &DynamicObject, gateways: &[Arc<AiGateway>]| {
                        let (namespace, name) = (
                            config_map.namespace().unwrap_or_default(),
                            config_map.name_any(),
                        );
                        refs(
                            gateways
                                .iter()
                                .filter(|g| reads_config_map(g, &namespace, &name))
                                .cloned(),
                        )
                    },
                )
            },
            RelatedWatch::new::<Guard>(|guard: &DynamicObject, gateways: &[Arc<AiGateway>]| {
                let (namespace, name) = (guard.namespace().unwrap_or_default(), guard.name_any());
                refs(
                    gateways
                        .iter()
                        .filter(|g| references_guard(g, &namespace, &name))
                        .cloned(),
                )
            }),
            // A provider may serve guards of any namespace: re-run every guarded gateway.
            RelatedWatch::new::<GuardrailProvider>(
                |_: &DynamicObject, gateways: &[Arc<AiGateway>]| {
                    refs(
                        gateways
                            .iter()
                            .filter(|g| !g.spec.guardrails.is_empty())
                            .cloned(),
                    )
                },
            ),
        ]
    }

    fn condition_aliases(&self) -> Vec<(String, String)> {
        vec![
            (
                GO_CONFIGURED_CONDITION.to_owned(),
                aigateway_api::conditions::types::PROGRAMMED.to_owned(),
            ),
            (
                GO_READY_CONDITION.to_owned(),
                aigateway_api::conditions::types::READY.to_owned(),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway(yaml: &str) -> AiGateway {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn related_objects_map_to_the_gateways_that_read_them() {
        let gw = gateway(
            "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: AiGateway\nmetadata:\n  name: gw\n  namespace: a\n  annotations:\n    ai-gateway-litellm.agentic-layer.ai/config-patch: patch\nspec:\n  aiModels: [{name: m, provider: openai}]\n  env:\n  - name: X\n    valueFrom: {secretKeyRef: {name: extra, key: k}}\n  - name: Y\n    valueFrom: {configMapKeyRef: {name: settings, key: k}}\n  envFrom:\n  - secretRef: {name: bulk}\n",
        );
        for secret in ["api-key-secrets", "extra", "bulk"] {
            assert!(reads_secret(&gw, "a", secret), "{secret}");
            assert!(
                !reads_secret(&gw, "b", secret),
                "{secret} in another namespace"
            );
        }
        assert!(!reads_secret(&gw, "a", "unrelated"));
        for config_map in ["patch", "settings"] {
            assert!(reads_config_map(&gw, "a", config_map), "{config_map}");
        }
        assert!(
            !reads_config_map(&gw, "a", "gw-config"),
            "its own child is not a related object"
        );
    }
}
