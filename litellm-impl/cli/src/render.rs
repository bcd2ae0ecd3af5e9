//! `litellm-impl render`: AiGateways and ToolGateways from YAML in,
//! ConfigMap/Deployment/Service out.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;

use aigateway_api::{AiGateway, AiGatewayClass, ToolGateway, ToolGatewayClass, ToolRoute};
use aigateway_runtime::attached::{NOT_ALLOWED_BY_GATEWAY, consent_of};
use aigateway_runtime::class::{Claim, NotOursReason, claim};
use aigateway_runtime::kind::{AiGatewayKind, GatewayKind, ToolGatewayKind};
use aigateway_runtime::names::ALLOWED_ROUTES_ANNOTATION;
use clap::Args;

use aigateway_api::policy::{PolicyTarget, Precedence, Standing, TargetedPolicy};
use litellm_impl::policy::{
    LiteLlmAvailabilityPolicy, LiteLlmModelPolicy, LiteLlmObservabilityPolicy,
    LiteLlmRoutingPolicy, LiteLlmToolRoutePolicy,
};
use litellm_impl::tool_gateway::RouteState;
use litellm_impl::tool_gateway::policies::{RoutePolicyOutcome, RoutePolicyVerdict};
use litellm_impl::{
    CONTROLLER_NAME, GatewayPolicies, InMemoryObjects, InputObject, PolicyVerdict, Rendered,
    TOOL_GATEWAY_CONTROLLER_NAME, read_documents, render_tool_gateway_with_policies,
    render_with_policies,
};

use crate::flags::RenderFlags;
use crate::{EXIT_CODES, EXIT_INVALID_GATEWAY, EXIT_USAGE};

/// Arguments of `render`.
#[derive(Debug, Args)]
#[command(
    long_about = "Reads multi-document YAML (AiGateway, AiGatewayClass, ToolGateway, \
ToolGatewayClass, ToolRoute, ToolServer, Guard, GuardrailProvider, Secret, ConfigMap, Namespace, \
Gateway API ReferenceGrant, and this implementation's LiteLLMModelPolicy, LiteLLMRoutingPolicy, \
LiteLLMObservabilityPolicy, LiteLLMAvailabilityPolicy and LiteLLMToolRoutePolicy) and prints, \
for each AiGateway and ToolGateway in input order, the ConfigMap, Deployment and Service the \
operator would apply (and the PodDisruptionBudget, HorizontalPodAutoscaler and ServiceMonitor or \
PodMonitor its policies ask for; the operator applies a monitor only where prometheus-operator's \
CRD of its kind is installed), as multi-document YAML. The policies in effect on an AiGateway are chosen as \
the operator chooses them (per target, the oldest by creationTimestamp, then name); stderr says \
for each whether it was applied, refused or not in effect, and why. A ToolGateway serves the ToolRoutes of the input \
attached to it and admitted by it (annotation aigateway.agentic-layer.ai/allowed-routes, as the \
operator decides, with the labels of the input's Namespaces); stderr says for each route whether it is served, at which URL, or why not, and what became of the \
LiteLLMToolRoutePolicy in effect on it. The Secret of route credentials a ToolGateway copies from \
its routes' policies is not printed (stderr names it and its keys): the operator makes it. \
Objects without a namespace are in `default`. When the input holds classes of a gateway's kind, \
only gateways the LiteLLM operator would claim are rendered, as it decides. Documents not used \
(other kinds, gateways of other classes or of no class, routes of no rendered gateway) are \
listed on stderr with the reason, and so are problems that still let the proxy deploy. No \
message repeats a Secret's content.",
    after_help = EXIT_CODES
)]
pub struct RenderArgs {
    /// Input file; repeat for several; `-` reads standard input.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Print only each gateway's LiteLLM config.yaml (with one gateway exactly the file's
    /// content; with several, each after a `---` and a `# <Kind> namespace/name` line).
    #[arg(long)]
    pub config_only: bool,
    /// How gateways are rendered: the same flags, defaults and environment variables as
    /// `run`, so the output is what an operator started with them applies.
    #[command(flatten)]
    pub settings: RenderFlags,
}

/// Runs `render`, writing to stdout and stderr.
pub fn run(args: &RenderArgs) -> ExitCode {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let code = execute(
        args,
        &mut std::io::stdin().lock(),
        &mut stdout.lock(),
        &mut stderr.lock(),
    );
    ExitCode::from(code)
}

/// Runs `render` over the given streams and returns the exit code.
pub fn execute(
    args: &RenderArgs,
    stdin: &mut dyn Read,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let mut documents = Vec::new();
    let mut stdin_used = false;
    for file in &args.files {
        let (name, text) = if file.as_os_str() == "-" {
            if stdin_used {
                let _ = writeln!(err, "error: `-f -` (standard input) given more than once");
                return EXIT_USAGE;
            }
            stdin_used = true;
            let mut text = String::new();
            if let Err(e) = stdin.read_to_string(&mut text) {
                let _ = writeln!(err, "error: cannot read standard input: {e}");
                return EXIT_USAGE;
            }
            ("<stdin>".to_owned(), text)
        } else {
            match std::fs::read_to_string(file) {
                Ok(text) => (file.display().to_string(), text),
                Err(e) => {
                    let _ = writeln!(err, "error: cannot read {}: {e}", file.display());
                    return EXIT_USAGE;
                }
            }
        };
        match read_documents(&text, &name) {
            Ok(parsed) => documents.extend(parsed.into_iter().map(|d| (name.clone(), d))),
            Err(e) => {
                let _ = writeln!(err, "error: {e}");
                return EXIT_USAGE;
            }
        }
    }
    let objects: Vec<InputObject> = documents.iter().map(|(_, d)| d.object.clone()).collect();
    let mut lookup = InMemoryObjects::new();
    lookup.extend(&objects);
    let classes: Vec<Arc<AiGatewayClass>> = objects
        .iter()
        .filter_map(|o| match o {
            InputObject::AiGatewayClass(c) => Some(Arc::new(c.clone())),
            _ => None,
        })
        .collect();
    let tool_classes: Vec<Arc<ToolGatewayClass>> = objects
        .iter()
        .filter_map(|o| match o {
            InputObject::ToolGatewayClass(c) => Some(Arc::new(c.clone())),
            _ => None,
        })
        .collect();
    let namespace_labels: BTreeMap<String, BTreeMap<String, String>> = objects
        .iter()
        .filter_map(|o| match o {
            InputObject::Namespace(ns) => Some((
                ns.metadata.name.clone().unwrap_or_default(),
                ns.metadata.labels.clone().unwrap_or_default(),
            )),
            _ => None,
        })
        .collect();
    let routes: Vec<ToolRoute> = objects
        .iter()
        .filter_map(|o| match o {
            InputObject::ToolRoute(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    let policies = InputPolicies::of(&objects);
    let mut gateways: Vec<Gateway<'_>> = Vec::new();
    for (source, document) in &documents {
        let place = format!("{source} document {}", document.index);
        let (gateway, skipped) = match &document.object {
            InputObject::AiGateway(gateway) => (
                Gateway::Ai(gateway),
                skip_reason::<AiGatewayKind>(gateway, &classes, CONTROLLER_NAME, AI_CLASS),
            ),
            InputObject::ToolGateway(gateway) => (
                Gateway::Tool(gateway),
                skip_reason::<ToolGatewayKind>(
                    gateway,
                    &tool_classes,
                    TOOL_GATEWAY_CONTROLLER_NAME,
                    TOOL_CLASS,
                ),
            ),
            InputObject::Other { kind, name, .. } => {
                let _ = writeln!(
                    err,
                    "note: {place}: {kind} {name} not used: render reads AiGateway, AiGatewayClass, ToolGateway, ToolGatewayClass, ToolRoute, ToolServer, Guard, GuardrailProvider, Secret, ConfigMap, Namespace, ReferenceGrant and the LiteLLM policy kinds"
                );
                continue;
            }
            _ => continue,
        };
        match skipped {
            None => gateways.push(gateway),
            Some(reason) => {
                let _ = writeln!(
                    err,
                    "note: {place}: {} {} not rendered: {reason}",
                    gateway.kind(),
                    gateway.id()
                );
            }
        }
    }
    for route in &routes {
        let attached = route.gateway().is_some_and(|target| {
            gateways.iter().any(|g| match g {
                Gateway::Tool(gateway) => {
                    gateway.metadata.namespace.as_deref() == Some(target.namespace.as_str())
                        && gateway.metadata.name.as_deref() == Some(target.name.as_str())
                }
                Gateway::Ai(_) => false,
            })
        });
        if !attached {
            let target = route.gateway().map_or_else(
                || "it names no spec.toolGatewayRef".to_owned(),
                |g| {
                    format!(
                        "its ToolGateway {}/{} is not rendered from this input",
                        g.namespace, g.name
                    )
                },
            );
            let _ = writeln!(
                err,
                "note: ToolRoute {} not used: {target}",
                object_id(&route.metadata)
            );
        }
    }
    if gateways.is_empty() {
        let _ = writeln!(
            err,
            "warning: the input holds no AiGateway or ToolGateway; nothing to render"
        );
    }
    let settings = &args.settings.settings();
    let mut failed = false;
    let mut output = String::new();
    for gateway in &gateways {
        let (kind, id) = (gateway.kind(), gateway.id());
        let rendered = match gateway {
            Gateway::Ai(gateway) => {
                let in_effect = policies.in_effect_on(gateway, err);
                let rendered =
                    render_with_policies(gateway, in_effect.borrowed(), &lookup, settings);
                if let Ok(rendered) = &rendered {
                    report_policies(rendered, &id, err);
                }
                rendered
            }
            Gateway::Tool(gateway) => {
                let admitted =
                    admitted_routes(gateway, &routes, &tool_classes, &namespace_labels, err);
                let in_effect = policies.in_effect_on_routes(gateway, &admitted, err);
                render_tool_gateway_with_policies(gateway, &admitted, &in_effect, &lookup, settings)
                    .map(|tools| {
                        report_routes(&tools.routes, err);
                        report_route_policies(&tools.policies, err);
                        if let Some(credentials) = &tools.credentials {
                            let _ = writeln!(
                                err,
                                "note: ToolGateway {id}: Secret {}/{} (keys {}) not printed: it holds copies of the credentials its routes' LiteLLMToolRoutePolicies name, which the operator makes from their Secrets",
                                gateway.metadata.namespace.as_deref().unwrap_or_default(),
                                credentials.secret().metadata.name.as_deref().unwrap_or_default(),
                                credentials.keys().join(", ")
                            );
                        }
                        tools.rendered
                    })
            }
        };
        let rendered = match rendered {
            Ok(rendered) => rendered,
            Err(e) => {
                let _ = writeln!(err, "error: {e}");
                failed = true;
                continue;
            }
        };
        for problem in &rendered.problems {
            if problem.object.kind == kind {
                let _ = writeln!(err, "warning: {problem}");
            } else {
                let _ = writeln!(err, "warning: {problem} (for {kind} {id})");
            }
        }
        if args.config_only {
            if gateways.len() > 1 {
                output.push_str(&format!("---\n# {kind} {id}\n"));
            }
            output.push_str(&rendered.config_yaml);
        } else if let Err(e) = write_objects(&rendered, &mut output) {
            let _ = writeln!(
                err,
                "error: {kind} {id}: cannot write objects as YAML: {e}; this is a bug in litellm-impl"
            );
            failed = true;
        }
    }
    if let Err(e) = out.write_all(output.as_bytes()).and_then(|()| out.flush()) {
        let _ = writeln!(err, "error: cannot write output: {e}");
        return EXIT_USAGE;
    }
    if failed { EXIT_INVALID_GATEWAY } else { 0 }
}

/// A gateway of the input, of either kind.
enum Gateway<'a> {
    Ai(&'a AiGateway),
    Tool(&'a ToolGateway),
}

impl Gateway<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Gateway::Ai(_) => "AiGateway",
            Gateway::Tool(_) => "ToolGateway",
        }
    }

    fn id(&self) -> String {
        match self {
            Gateway::Ai(g) => object_id(&g.metadata),
            Gateway::Tool(g) => object_id(&g.metadata),
        }
    }
}

/// The ConfigMap, Deployment and Service, each after `---`.
fn write_objects(rendered: &Rendered, output: &mut String) -> Result<(), serde_saphyr::ser::Error> {
    let mut texts = vec![
        serde_saphyr::to_string(&rendered.config_map)?,
        serde_saphyr::to_string(&rendered.deployment)?,
        serde_saphyr::to_string(&rendered.service)?,
    ];
    if let Some(budget) = &rendered.disruption_budget {
        texts.push(serde_saphyr::to_string(budget)?);
    }
    if let Some(autoscaler) = &rendered.autoscaler {
        texts.push(serde_saphyr::to_string(autoscaler)?);
    }
    if let Some(monitor) = &rendered.monitor {
        texts.push(serde_saphyr::to_string(&monitor.object)?);
    }
    for text in texts {
        output.push_str("---\n");
        output.push_str(&text);
    }
    Ok(())
}

/// The input's policies, by kind.
#[derive(Default)]
struct InputPolicies {
    models: Vec<LiteLlmModelPolicy>,
    routing: Vec<LiteLlmRoutingPolicy>,
    observability: Vec<LiteLlmObservabilityPolicy>,
    availability: Vec<LiteLlmAvailabilityPolicy>,
    tool_routes: Vec<LiteLlmToolRoutePolicy>,
}

/// The policies in effect on one gateway, owned.
struct InEffect {
    models: Vec<LiteLlmModelPolicy>,
    routing: Vec<LiteLlmRoutingPolicy>,
    observability: Vec<LiteLlmObservabilityPolicy>,
    availability: Vec<LiteLlmAvailabilityPolicy>,
}

impl InEffect {
    fn borrowed(&self) -> GatewayPolicies<'_> {
        GatewayPolicies {
            models: &self.models,
            routing: &self.routing,
            observability: &self.observability,
            availability: &self.availability,
        }
    }
}

impl InputPolicies {
    fn of(objects: &[InputObject]) -> Self {
        let mut this = Self::default();
        for object in objects {
            match object {
                InputObject::ModelPolicy(p) => this.models.push(p.clone()),
                InputObject::RoutingPolicy(p) => this.routing.push(p.clone()),
                InputObject::ObservabilityPolicy(p) => this.observability.push(p.clone()),
                InputObject::AvailabilityPolicy(p) => this.availability.push(p.clone()),
                InputObject::ToolRoutePolicy(p) => this.tool_routes.push(p.clone()),
                _ => {}
            }
        }
        this
    }

    /// As the operator offers them: per target the oldest; a note on stderr for each
    /// policy naming the gateway that an older one beats.
    fn in_effect_on(&self, gateway: &AiGateway, err: &mut dyn Write) -> InEffect {
        let target = PolicyTarget::new(
            aigateway_api::GROUP,
            "AiGateway",
            gateway.metadata.namespace.as_deref().unwrap_or_default(),
            gateway.metadata.name.as_deref().unwrap_or_default(),
        );
        InEffect {
            models: in_effect(&self.models, &target, err),
            routing: in_effect(&self.routing, &target, err),
            observability: in_effect(&self.observability, &target, err),
            availability: in_effect(&self.availability, &target, err),
        }
    }
}

impl InputPolicies {
    /// The tool-route policies in effect on `routes`, each once, as the operator offers
    /// them: per route the oldest; a note on stderr for each policy naming a route that
    /// an older one beats, and a warning for each naming `gateway` itself.
    fn in_effect_on_routes(
        &self,
        gateway: &ToolGateway,
        routes: &[ToolRoute],
        err: &mut dyn Write,
    ) -> Vec<LiteLlmToolRoutePolicy> {
        let namespace = gateway.metadata.namespace.as_deref().unwrap_or_default();
        let name = gateway.metadata.name.as_deref().unwrap_or_default();
        for policy in &self.tool_routes {
            let names_gateway = policy.spec.target_refs.iter().any(|r| {
                r.group == aigateway_api::GROUP
                    && r.kind == "ToolGateway"
                    && r.name == name
                    && policy.metadata.namespace.as_deref() == Some(namespace)
            });
            if names_gateway {
                let _ = writeln!(
                    err,
                    "warning: LiteLLMToolRoutePolicy {} not applied to ToolGateway {namespace}/{name}: it configures ToolRoutes; name the gateway's ToolRoutes (kind ToolRoute) in targetRefs",
                    object_id(&policy.metadata)
                );
            }
        }
        let mut out: Vec<LiteLlmToolRoutePolicy> = Vec::new();
        for route in routes {
            let target = PolicyTarget::new(
                aigateway_api::GROUP,
                "ToolRoute",
                route.metadata.namespace.as_deref().unwrap_or_default(),
                route.metadata.name.as_deref().unwrap_or_default(),
            );
            for policy in in_effect(&self.tool_routes, &target, err) {
                if !out.iter().any(|p| p.metadata == policy.metadata) {
                    out.push(policy);
                }
            }
        }
        out
    }
}

/// The policies of one kind in effect on `gateway` (or its sections), oldest first.
fn in_effect<P: TargetedPolicy<DynamicType = ()> + Clone>(
    policies: &[P],
    gateway: &PolicyTarget,
    err: &mut dyn Write,
) -> Vec<P> {
    let precedence = Precedence::of(policies);
    let gateway_targets: Vec<&PolicyTarget> = (precedence.targets())
        .filter(|t| {
            (t.group == gateway.group && t.kind == gateway.kind)
                && (t.namespace == gateway.namespace && t.name == gateway.name)
        })
        .collect();
    for policy in policies {
        for target in &gateway_targets {
            if let Standing::LosesTo(winner) = precedence.standing(policy, target) {
                let section = (target.section_name.as_deref())
                    .map(|s| format!(" model {s}"))
                    .unwrap_or_default();
                // Files written by hand seldom carry a creationTimestamp: then the name
                // decides, which the cluster would not (it orders by creation).
                let why = if policy.meta().creation_timestamp.is_none()
                    || winner.meta().creation_timestamp.is_none()
                {
                    "comes first by name (without creationTimestamp in the input; in the cluster the older wins)"
                } else {
                    "is older"
                };
                let _ = writeln!(
                    err,
                    "note: {} {} not in effect on {} {}/{}{section}: {} {why} and targets it too",
                    P::kind(&()),
                    object_id(policy.meta()),
                    gateway.kind,
                    gateway.namespace,
                    gateway.name,
                    winner.meta().name.as_deref().unwrap_or_default()
                );
            }
        }
    }
    (precedence.in_effect_on(gateway).into_iter())
        .cloned()
        .collect()
}

/// One line on stderr for each policy in effect: applied, or why not (fully).
fn report_policies(rendered: &Rendered, gateway: &str, err: &mut dyn Write) {
    for outcome in &rendered.policies {
        let kind = outcome.kind.as_str();
        let policy = &outcome.policy;
        let _ = match &outcome.verdict {
            PolicyVerdict::Applied => {
                writeln!(err, "note: {kind} {policy} applied to AiGateway {gateway}")
            }
            PolicyVerdict::Refused(refusal) => writeln!(
                err,
                "warning: {kind} {policy} not applied to AiGateway {gateway}: {refusal}"
            ),
            PolicyVerdict::Unresolved(message) => writeln!(
                err,
                "warning: {kind} {policy} applied to AiGateway {gateway} without a reference: {message}"
            ),
        };
    }
}

/// One line on stderr for each tool-route policy on each route: applied, or why not.
fn report_route_policies(outcomes: &[RoutePolicyOutcome], err: &mut dyn Write) {
    for outcome in outcomes {
        let policy = format!(
            "LiteLLMToolRoutePolicy {}/{}",
            outcome.policy.namespace, outcome.policy.name
        );
        let route = format!(
            "ToolRoute {}/{}",
            outcome.route.namespace, outcome.route.name
        );
        let _ = match &outcome.verdict {
            RoutePolicyVerdict::Applied => writeln!(err, "note: {policy} applied to {route}"),
            RoutePolicyVerdict::Refused(refusal) => {
                writeln!(err, "warning: {policy} not applied to {route}: {refusal}")
            }
            RoutePolicyVerdict::Unresolved(message) | RoutePolicyVerdict::NotPermitted(message) => {
                writeln!(
                    err,
                    "warning: {policy} applied to {route} without its credential: {message}"
                )
            }
        };
    }
}

/// The routes of `routes` that `gateway` admits, as the operator decides (the
/// gateway's or its class's `allowed-routes` annotation, with the labels of the
/// Namespaces in `namespace_labels`); one line on stderr for each route it does not
/// admit, and for an annotation that cannot be read.
fn admitted_routes(
    gateway: &ToolGateway,
    routes: &[ToolRoute],
    classes: &[Arc<ToolGatewayClass>],
    namespace_labels: &BTreeMap<String, BTreeMap<String, String>>,
    err: &mut dyn Write,
) -> Vec<ToolRoute> {
    let class = match claim::<ToolGatewayKind>(
        ToolGatewayKind::class_name(gateway),
        classes,
        TOOL_GATEWAY_CONTROLLER_NAME,
    ) {
        Claim::Ours { class } => classes
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(class.name.as_str())),
        _ => None,
    };
    let consent = consent_of(
        gateway.metadata.annotations.as_ref(),
        class.map(|c| {
            (
                c.metadata.name.as_deref().unwrap_or_default(),
                c.metadata.annotations.as_ref(),
            )
        }),
    );
    let id = object_id(&gateway.metadata);
    if let Some(problem) = &consent.problem {
        let _ = writeln!(err, "warning: ToolGateway {id}: {problem}");
    }
    let namespace = gateway.metadata.namespace.as_deref().unwrap_or_default();
    let this = aigateway_api::NamespacedName {
        namespace: namespace.to_owned(),
        name: gateway.metadata.name.clone().unwrap_or_default(),
    };
    routes
        .iter()
        .filter(|route| route.gateway().as_ref() == Some(&this))
        .filter(|route| {
            let route_namespace = route.metadata.namespace.as_deref().unwrap_or_default();
            let labels = namespace_labels.get(route_namespace);
            let admitted = consent.allowed.admits(namespace, route_namespace, labels);
            if !admitted {
                let unknown = if consent.allowed.reads_namespace_labels() && labels.is_none() {
                    " (the input holds no Namespace of that name, whose labels a selector reads)"
                } else {
                    ""
                };
                let _ = writeln!(
                    err,
                    "warning: ToolRoute {} not served ({NOT_ALLOWED_BY_GATEWAY}): ToolGateway {id} does not admit routes from namespace {route_namespace}{unknown}: its owner consents with the annotation {ALLOWED_ROUTES_ANNOTATION}",
                    object_id(&route.metadata)
                );
            }
            admitted
        })
        .cloned()
        .collect()
}

/// One line per route on stderr: served at which URL, or not and why.
fn report_routes(routes: &[litellm_impl::RouteOutcome], err: &mut dyn Write) {
    for outcome in routes {
        let route = format!(
            "ToolRoute {}/{}",
            outcome.route.namespace.escape_debug(),
            outcome.route.name.escape_debug()
        );
        match &outcome.state {
            RouteState::Served(served) => {
                let _ = writeln!(
                    err,
                    "note: {route}: served at {} (mcp_servers key {})",
                    served.url, served.key
                );
                for warning in &served.warnings {
                    let _ = writeln!(err, "warning: {route}: {warning}");
                }
            }
            RouteState::NotServed(problem) => {
                let _ = writeln!(
                    err,
                    "warning: {route} not served ({}): {}",
                    problem.reason, problem.message
                );
            }
        }
    }
}

/// How messages name a gateway kind's class and the field that picks it.
struct ClassWords {
    kind: &'static str,
    field: &'static str,
}

const AI_CLASS: ClassWords = ClassWords {
    kind: "AiGatewayClass",
    field: "spec.aiGatewayClassName",
};
const TOOL_CLASS: ClassWords = ClassWords {
    kind: "ToolGatewayClass",
    field: "spec.toolGatewayClassName",
};

/// `namespace/name` of an object.
fn object_id(metadata: &kube::api::ObjectMeta) -> String {
    format!(
        "{}/{}",
        metadata.namespace.as_deref().unwrap_or_default(),
        metadata.name.as_deref().unwrap_or_default()
    )
}

/// Why the operator would not claim `gateway`, judged by the classes of the input as the
/// operator judges by the cluster's; `None` when it would, or when the input holds no
/// class of its kind at all (then every gateway is rendered, as if its class were
/// LiteLLM's).
fn skip_reason<K: GatewayKind>(
    gateway: &K::Gateway,
    classes: &[Arc<K::Class>],
    controller: &str,
    ClassWords {
        kind: class_kind,
        field: class_field,
    }: ClassWords,
) -> Option<String> {
    if classes.is_empty() {
        return None;
    }
    match claim::<K>(K::class_name(gateway), classes, controller) {
        Claim::Ours { .. } => None,
        Claim::NotOurs(NotOursReason::ForeignClass { class, controller }) => Some(format!(
            "other class: its class {class} belongs to controller {controller}"
        )),
        Claim::NotOurs(NotOursReason::UnknownClass(class)) => Some(format!(
            "no class: it names class {class}, which the input does not hold; add the {class_kind} to the input"
        )),
        Claim::NotOurs(NotOursReason::NoDefaultClass) => Some(format!(
            "no class: it names no class and no LiteLLM {class_kind} of the input is the default; set {class_field}"
        )),
        Claim::Ambiguous(why) => Some(format!("no class: the default class is ambiguous: {why}")),
    }
}
