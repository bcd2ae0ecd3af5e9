//! `LiteLlmGateway`: the LiteLLM rendering wired into the runtime's reconcile loop.
//!
//! Desired state is [`render`](crate::render()) over the loop's caches; reference problems
//! become `ResolvedRefs=False`, other problems become warnings on `Programmed`; a gateway
//! that cannot render at all is reported invalid. Rendering reads Secrets, ConfigMaps,
//! Guards and GuardrailProviders through the runtime's [`Context`], which records each
//! lookup: a change re-runs exactly the gateways that looked that object up, in any
//! namespace, and nothing else.

use std::cell::RefCell;

use aigateway_api::conditions::{Reason, types};
use aigateway_api::{AiGateway, Guard, GuardrailProvider, ToolGateway, ToolRoute, ToolServer};
use aigateway_runtime::attached::{PolicyDecision, PolicyKind};
use aigateway_runtime::implementation::{AliasReasons, ConditionAlias, NotWatched};
use aigateway_runtime::reference_grants::{CrossNamespaceRef, ReferenceGrantCheck};
use aigateway_runtime::{
    AiGatewayKind, AttachedDecision, AttachedKind, Context, DesiredState, GatewayImplementation,
    ImplementationError, Observed, Readiness, RelatedWatch, ToolGatewayKind,
    deployments_rolled_out,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::discovery::ApiResource;
use serde::de::DeserializeOwned;

use crate::names::{CONTROLLER_NAME, TOOL_GATEWAY_CONTROLLER_NAME};
use crate::policy::{
    LiteLlmAvailabilityPolicy, LiteLlmModelPolicy, LiteLlmObservabilityPolicy,
    LiteLlmRoutingPolicy, LiteLlmToolRoutePolicy, MonitorKind, PolicyRefusal,
};
use crate::tool_gateway::policies::RoutePolicyVerdict;
use crate::tool_gateway::{
    RenderedToolGateway, RouteProblemReason, RouteState, render_tool_gateway_with_policies,
};
use crate::{
    GatewayPolicies, LiteLlmPolicyKind, ObjectLookup, PolicyVerdict, RenderError, RenderSettings,
    render_with_policies,
};

/// The condition types of the Go operator, mirrored for tools that read them.
pub const GO_CONFIGURED_CONDITION: &str = "AiGatewayConfigured";
/// See [`GO_CONFIGURED_CONDITION`].
pub const GO_READY_CONDITION: &str = "AiGatewayReady";

/// The Go operator's reasons when it could not render a config (its default).
const GO_CONFIG_GENERATION_FAILED: Reason = Reason::from_static("ConfigGenerationFailed");
/// The Go operator's reason for a missing or malformed config-patch ConfigMap. Our only
/// `UnresolvedRef` errors are those ([`invalid`]).
const GO_CONFIG_PATCH_INVALID: Reason = Reason::from_static("ConfigPatchInvalid");
/// The Go operator's reason when writing a child failed.
const GO_WORKLOAD_FAILED: Reason = Reason::from_static("WorkloadFailed");
/// The Go operator's reason while the Deployment rolls out.
const GO_ROLLING_OUT: Reason = Reason::from_static("DeploymentRollingOut");

/// The Go operator's reasons on `AiGatewayConfigured` and `ToolGatewayConfigured` (copies
/// of `Programmed`), by state.
pub const GO_CONFIGURED_REASONS: AliasReasons = AliasReasons {
    true_: Reason::from_static("ConfigurationApplied"),
    // `Programmed` is True whenever every child was applied.
    applied: Reason::from_static("ConfigurationApplied"),
    invalid_spec: GO_CONFIG_GENERATION_FAILED,
    unresolved_ref: GO_CONFIG_PATCH_INVALID,
    name_conflict: GO_WORKLOAD_FAILED,
    apply_failed: GO_WORKLOAD_FAILED,
};

/// The Go operator's reasons on `AiGatewayReady` (a copy of `Ready`), by state.
pub const GO_READY_REASONS: AliasReasons = AliasReasons {
    true_: Reason::from_static("AiGatewayReady"),
    applied: GO_ROLLING_OUT,
    invalid_spec: GO_CONFIG_GENERATION_FAILED,
    unresolved_ref: GO_CONFIG_PATCH_INVALID,
    name_conflict: GO_WORKLOAD_FAILED,
    apply_failed: GO_WORKLOAD_FAILED,
};

/// The Go operator's reasons on `ToolGatewayReady` (a copy of `Ready`), by state.
pub const GO_TOOL_READY_REASONS: AliasReasons = AliasReasons {
    true_: Reason::from_static("ToolGatewayReady"),
    applied: GO_ROLLING_OUT,
    invalid_spec: GO_CONFIG_GENERATION_FAILED,
    unresolved_ref: GO_CONFIG_PATCH_INVALID,
    name_conflict: GO_WORKLOAD_FAILED,
    apply_failed: GO_WORKLOAD_FAILED,
};

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

/// [`ObjectLookup`] over the loop's caches of related objects. A lookup of a kind that
/// [`related()`](GatewayImplementation::related) does not declare is kept and returned
/// by [`finish`](Self::finish), since rendering cannot tell it from a missing object.
struct CachedObjects<'a> {
    ctx: &'a Context,
    not_watched: RefCell<Option<ImplementationError>>,
}

impl<'a> CachedObjects<'a> {
    fn new(ctx: &'a Context) -> Self {
        Self {
            ctx,
            not_watched: RefCell::new(None),
        }
    }

    fn get<T: kube::Resource<DynamicType = ()> + DeserializeOwned>(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<T> {
        self.ctx
            .get(namespace, name)
            .unwrap_or_else(|error: NotWatched| {
                self.not_watched.borrow_mut().get_or_insert(error.into());
                None
            })
    }

    /// The first lookup of an undeclared kind, if any.
    fn finish(self) -> Result<(), ImplementationError> {
        self.not_watched.into_inner().map_or(Ok(()), Err)
    }
}

impl ObjectLookup for CachedObjects<'_> {
    fn guard(&self, namespace: &str, name: &str) -> Option<Guard> {
        self.get(namespace, name)
    }
    fn guardrail_provider(&self, namespace: &str, name: &str) -> Option<GuardrailProvider> {
        self.get(namespace, name)
    }
    fn secret(&self, namespace: &str, name: &str) -> Option<Secret> {
        self.get(namespace, name)
    }
    fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap> {
        self.get(namespace, name)
    }
    fn tool_server(&self, namespace: &str, name: &str) -> Option<ToolServer> {
        self.get(namespace, name)
    }
    fn reference_grant(&self, reference: &CrossNamespaceRef<'_>) -> ReferenceGrantCheck {
        self.ctx.reference_grant(reference).unwrap_or_else(|error| {
            self.not_watched.borrow_mut().get_or_insert(error.into());
            ReferenceGrantCheck::NotInstalled
        })
    }
}

/// A render error as the loop's error: the config patch's errors are unresolved
/// references (and the Go operator's `ConfigPatchInvalid`), every other one an invalid
/// spec.
fn invalid(error: RenderError) -> ImplementationError {
    let reason = match &error {
        RenderError::PatchConfigMapNotFound { .. } | RenderError::PatchKeyMissing { .. } => {
            Reason::REF_NOT_FOUND
        }
        RenderError::InvalidPatch { .. } => Reason::INVALID_REF,
        _ => return ImplementationError::invalid(Reason::INVALID_PARAMETERS, error.to_string()),
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
            return Readiness::Failed {
                reason: const { Reason::from_static(REPLICA_FAILURE) },
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
        let models = ctx.policies::<LiteLlmModelPolicy>(gateway)?;
        let routing = ctx.policies::<LiteLlmRoutingPolicy>(gateway)?;
        let observability = ctx.policies::<LiteLlmObservabilityPolicy>(gateway)?;
        let availability = ctx.policies::<LiteLlmAvailabilityPolicy>(gateway)?;
        let objects = CachedObjects::new(ctx);
        let policies = GatewayPolicies {
            models: &models,
            routing: &routing,
            observability: &observability,
            availability: &availability,
        };
        let rendered = render_with_policies(gateway, policies, &objects, &self.settings);
        objects.finish()?;
        let rendered = rendered.map_err(invalid)?;
        let mut desired = DesiredState::new()
            .with(&rendered.config_map)
            .with(&rendered.deployment)
            .with(&rendered.service)
            .with_url(gateway.service_url().unwrap_or_default());
        if let Some(budget) = &rendered.disruption_budget {
            desired = desired.with(budget);
        }
        if let Some(autoscaler) = &rendered.autoscaler {
            desired = desired.with(autoscaler);
        }
        // The monitor's kind is served: a monitor of a kind whose CRD is missing is not
        // applied (the API server would refuse it), and the policy says why.
        let monitor_missing = (rendered.monitor.as_ref())
            .filter(|monitor| !ctx.serves(&monitor.kind.resource()))
            .map(|monitor| monitor.kind.kind());
        if let Some(monitor) = &rendered.monitor
            && monitor_missing.is_none()
        {
            desired = desired.with_dynamic(monitor.object.clone());
        }
        for outcome in &rendered.policies {
            let decision = policy_decision(&outcome.verdict);
            let named = |p: &kube::api::ObjectMeta| p.name.as_deref() == Some(&outcome.policy);
            desired = match outcome.kind {
                LiteLlmPolicyKind::Model => match models.iter().find(|p| named(&p.metadata)) {
                    Some(policy) => desired.with_policy(policy, decision),
                    None => desired,
                },
                LiteLlmPolicyKind::Routing => match routing.iter().find(|p| named(&p.metadata)) {
                    Some(policy) => desired.with_policy(policy, decision),
                    None => desired,
                },
                LiteLlmPolicyKind::Observability => {
                    // A monitor asked for where prometheus-operator's CRD of its kind is
                    // missing: the rest of the policy applies, and it says why.
                    let decision = match (monitor_missing, &outcome.verdict) {
                        (Some(kind), PolicyVerdict::Applied) => PolicyDecision::unresolved(
                            Reason::from_static(KIND_NOT_INSTALLED),
                            format!(
                                "no {kind}: its monitoring.coreos.com CRD (prometheus-operator) is not installed; it is made once it is"
                            ),
                        ),
                        _ => decision,
                    };
                    match observability.iter().find(|p| named(&p.metadata)) {
                        Some(policy) => desired.with_policy(policy, decision),
                        None => desired,
                    }
                }
                LiteLlmPolicyKind::Availability => {
                    match availability.iter().find(|p| named(&p.metadata)) {
                        Some(policy) => desired.with_policy(policy, decision),
                        None => desired,
                    }
                }
            };
        }
        Ok(with_problems(desired, rendered.problems))
    }

    fn policies(&self) -> Vec<PolicyKind<AiGatewayKind>> {
        vec![
            PolicyKind::of::<LiteLlmModelPolicy>(),
            PolicyKind::of::<LiteLlmRoutingPolicy>(),
            PolicyKind::of::<LiteLlmObservabilityPolicy>(),
            PolicyKind::of::<LiteLlmAvailabilityPolicy>(),
        ]
    }

    /// prometheus-operator's ServiceMonitor and PodMonitor, which an observability
    /// policy may ask for; their CRDs are often not installed.
    fn optional_child_kinds(&self) -> Vec<ApiResource> {
        vec![
            MonitorKind::ServiceMonitor.resource(),
            MonitorKind::PodMonitor.resource(),
        ]
    }

    /// The workload's kinds, and the disruption budget and autoscaler an availability
    /// policy adds.
    fn child_kinds(&self) -> Vec<ApiResource> {
        vec![
            ApiResource::erase::<ConfigMap>(&()),
            ApiResource::erase::<Service>(&()),
            ApiResource::erase::<Deployment>(&()),
            ApiResource::erase::<PodDisruptionBudget>(&()),
            ApiResource::erase::<HorizontalPodAutoscaler>(&()),
        ]
    }

    fn readiness(&self, _gateway: &AiGateway, observed: &Observed) -> Readiness {
        readiness_of(observed)
    }

    fn related(&self) -> Vec<RelatedWatch> {
        related_watches()
    }

    fn condition_aliases(&self) -> Vec<ConditionAlias> {
        vec![
            ConditionAlias::with_reasons(
                GO_CONFIGURED_CONDITION,
                types::PROGRAMMED,
                GO_CONFIGURED_REASONS,
            ),
            ConditionAlias::with_reasons(GO_READY_CONDITION, types::READY, GO_READY_REASONS),
        ]
    }
}

/// The `ResolvedRefs` reason of a policy that asks for a child whose CRD is missing.
pub const KIND_NOT_INSTALLED: &str = "KindNotInstalled";

/// The status a model policy gets from what rendering did with it.
fn policy_decision(verdict: &PolicyVerdict) -> PolicyDecision {
    match verdict {
        PolicyVerdict::Applied => PolicyDecision::Accept,
        PolicyVerdict::Refused(PolicyRefusal::NoSuchModel { .. }) => PolicyDecision::refuse(
            Reason::from_static(aigateway_api::policy::reasons::TARGET_NOT_FOUND),
            verdict_message(verdict),
        ),
        PolicyVerdict::Refused(PolicyRefusal::Invalid(_)) => {
            PolicyDecision::invalid(verdict_message(verdict))
        }
        PolicyVerdict::Unresolved(message) => {
            PolicyDecision::unresolved(Reason::REF_NOT_FOUND, message.clone())
        }
    }
}

/// The status a tool-route policy gets from what rendering did with it.
fn route_policy_decision(verdict: &RoutePolicyVerdict) -> PolicyDecision {
    match verdict {
        RoutePolicyVerdict::Applied => PolicyDecision::Accept,
        RoutePolicyVerdict::Refused(refusal) => PolicyDecision::invalid(refusal.to_string()),
        RoutePolicyVerdict::Unresolved(message) => {
            PolicyDecision::unresolved(Reason::REF_NOT_FOUND, message.clone())
        }
        RoutePolicyVerdict::NotPermitted(message) => PolicyDecision::unresolved(
            aigateway_runtime::reference_grants::REF_NOT_PERMITTED,
            message.clone(),
        ),
    }
}

fn verdict_message(verdict: &PolicyVerdict) -> String {
    match verdict {
        PolicyVerdict::Refused(refusal) => refusal.to_string(),
        PolicyVerdict::Unresolved(message) => message.clone(),
        PolicyVerdict::Applied => String::new(),
    }
}

/// The condition types of the Go operator's ToolGateways, mirrored for tools that read
/// them.
pub const GO_TOOL_CONFIGURED_CONDITION: &str = "ToolGatewayConfigured";
/// See [`GO_TOOL_CONFIGURED_CONDITION`].
pub const GO_TOOL_READY_CONDITION: &str = "ToolGatewayReady";

/// The LiteLLM ToolGateway class implementation: one LiteLLM proxy per ToolGateway,
/// serving each attached ToolRoute as an `mcp_servers` entry (see
/// [`render_tool_gateway_with_policies`]), with the routes'
/// status written by the runtime from one decision per route. The
/// [`LiteLlmToolRoutePolicy`]s in effect on the routes set their timeouts and upstream
/// credentials; the credentials reach the proxy through one child Secret of the gateway
/// (`<gateway>-route-credentials`), copied from the policies' Secrets.
#[derive(Debug, Clone, Default)]
pub struct LiteLlmToolGateway {
    settings: RenderSettings,
}

impl LiteLlmToolGateway {
    /// An implementation rendering with operator-wide `settings` (per-gateway
    /// annotations still override them).
    pub fn new(settings: RenderSettings) -> Self {
        Self { settings }
    }
}

/// The gateway's own problems as conditions: unresolved references make
/// `ResolvedRefs=False`, the rest are warnings on `Programmed`.
fn with_problems(mut desired: DesiredState, problems: Vec<crate::Problem>) -> DesiredState {
    for problem in problems {
        let message = format!("{}: {}", problem.object, problem.message);
        desired = if problem.reason.is_unresolved_ref() {
            desired.with_problem(problem.reason.into(), message)
        } else {
            desired.with_warning(message)
        };
    }
    desired
}

/// The related kinds both LiteLLM implementations read.
fn related_watches() -> Vec<RelatedWatch> {
    // Our children (the rendered configs of both kinds) are cached as children already;
    // without excluding both, serving two kinds cached each kind's configs twice.
    let not_our_children = [CONTROLLER_NAME, TOOL_GATEWAY_CONTROLLER_NAME]
        .map(|controller| {
            format!(
                "{}!={}",
                aigateway_runtime::names::CONTROLLER_LABEL,
                aigateway_runtime::names::controller_label_value(controller)
            )
        })
        .join(",");
    vec![
        // Metadata of every Secret and ConfigMap, content only of those a gateway read
        // (api-key-secrets, env/envFrom references, guard credentials, the config patch).
        RelatedWatch::new::<Secret>(),
        RelatedWatch::new::<ConfigMap>().label_selector(not_our_children),
        RelatedWatch::new::<Guard>(),
        RelatedWatch::new::<GuardrailProvider>(),
    ]
}

#[async_trait::async_trait]
impl GatewayImplementation<ToolGatewayKind> for LiteLlmToolGateway {
    fn controller_name(&self) -> &str {
        TOOL_GATEWAY_CONTROLLER_NAME
    }

    fn attached(&self) -> Option<AttachedKind<ToolGatewayKind>> {
        Some(ToolGatewayKind::routes())
    }

    async fn desired_state(
        &self,
        gateway: &ToolGateway,
        ctx: &Context,
    ) -> Result<DesiredState, ImplementationError> {
        let routes: Vec<ToolRoute> = ctx.attached(gateway)?;
        // The policies in effect on each route, each once.
        let mut route_policies: Vec<LiteLlmToolRoutePolicy> = Vec::new();
        for route in &routes {
            for policy in ctx.policies::<LiteLlmToolRoutePolicy>(route)? {
                let known = route_policies.iter().any(|p| {
                    p.namespace() == policy.namespace() && p.name_any() == policy.name_any()
                });
                if !known {
                    route_policies.push(policy);
                }
            }
        }
        let objects = CachedObjects::new(ctx);
        let rendered = render_tool_gateway_with_policies(
            gateway,
            &routes,
            &route_policies,
            &objects,
            &self.settings,
        );
        objects.finish()?;
        let RenderedToolGateway {
            rendered,
            url,
            routes: outcomes,
            policies: policy_outcomes,
            credentials,
        } = rendered.map_err(invalid)?;
        let mut desired = DesiredState::new()
            .with(&rendered.config_map)
            .with(&rendered.deployment)
            .with(&rendered.service)
            .with_url(url);
        if let Some(credentials) = &credentials {
            desired = desired.with(credentials.secret());
        }
        // One decision per policy: the worst of its routes'.
        for policy in &route_policies {
            let worst = (policy_outcomes.iter())
                .filter(|o| {
                    Some(o.policy.namespace.as_str()) == policy.metadata.namespace.as_deref()
                        && Some(o.policy.name.as_str()) == policy.metadata.name.as_deref()
                })
                .max_by_key(|o| o.verdict.severity());
            if let Some(outcome) = worst {
                desired = desired.with_policy(policy, route_policy_decision(&outcome.verdict));
            }
        }
        // A policy naming the gateway itself configures nothing here.
        for policy in ctx.policies::<LiteLlmToolRoutePolicy>(gateway)? {
            desired = desired.with_policy(
                &policy,
                PolicyDecision::invalid(format!(
                    "a LiteLLMToolRoutePolicy configures ToolRoutes, not ToolGateway {}/{}: name the gateway's ToolRoutes (group {}, kind ToolRoute) in targetRefs",
                    gateway.namespace().unwrap_or_default(),
                    gateway.name_any(),
                    aigateway_api::GROUP
                )),
            );
        }
        for outcome in outcomes {
            let Some(route) = routes.iter().find(|route| {
                route.namespace().as_deref() == Some(outcome.route.namespace.as_str())
                    && route.name_any() == outcome.route.name
            }) else {
                continue;
            };
            let decision = match outcome.state {
                RouteState::Served(served) => {
                    let decision = AttachedDecision::serve(served.url);
                    if served.warnings.is_empty() {
                        decision
                    } else {
                        decision.with_note(served.warnings.join("; "))
                    }
                }
                RouteState::NotServed(problem)
                    if problem.reason == RouteProblemReason::RefNotPermitted =>
                {
                    AttachedDecision::unresolved(problem.reason.into(), problem.message)
                }
                RouteState::NotServed(problem) => {
                    AttachedDecision::refuse(problem.reason.into(), problem.message)
                }
            };
            desired = desired.with_attached(route, decision);
        }
        Ok(with_problems(desired, rendered.problems))
    }

    fn readiness(&self, _gateway: &ToolGateway, observed: &Observed) -> Readiness {
        readiness_of(observed)
    }

    fn policies(&self) -> Vec<PolicyKind<ToolGatewayKind>> {
        vec![PolicyKind::of::<LiteLlmToolRoutePolicy>()]
    }

    /// The workload's kinds, and the Secret of the routes' upstream credentials (copied
    /// from the Secrets their LiteLLMToolRoutePolicies name).
    fn child_kinds(&self) -> Vec<ApiResource> {
        vec![
            ApiResource::erase::<ConfigMap>(&()),
            ApiResource::erase::<Service>(&()),
            ApiResource::erase::<Deployment>(&()),
            ApiResource::erase::<Secret>(&()),
        ]
    }

    fn uses_reference_grants(&self) -> bool {
        // A route may name a ToolServer in another namespace that grants it.
        true
    }

    fn related(&self) -> Vec<RelatedWatch> {
        let mut watches = related_watches();
        // Routes name ToolServers; their port, path and published URL shape the entry.
        watches.push(RelatedWatch::new::<ToolServer>());
        watches
    }

    fn condition_aliases(&self) -> Vec<ConditionAlias> {
        vec![
            ConditionAlias::with_reasons(
                GO_TOOL_CONFIGURED_CONDITION,
                types::PROGRAMMED,
                GO_CONFIGURED_REASONS,
            ),
            ConditionAlias::with_reasons(
                GO_TOOL_READY_CONDITION,
                types::READY,
                GO_TOOL_READY_REASONS,
            ),
        ]
    }
}
