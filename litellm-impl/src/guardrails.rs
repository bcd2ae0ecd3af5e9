//! Guards -> LiteLLM `guardrails` entries (pure).
//!
//! Every Guard a gateway lists either renders or is reported as a [`Problem`]: a missing
//! Guard or provider, an incomplete provider, credentials the pod cannot read, values
//! LiteLLM would reject. Supported provider types:
//!
//! | `GuardrailProvider.spec.type` | LiteLLM `guardrail` | credentials |
//! |---|---|---|
//! | `presidio-api` | `presidio` | none (LiteLLM sends no key; a configured key is reported) |
//! | `openai-moderation-api` | `openai_moderation` | `apiKeySecretRef` -> `api_key`, else the container's `OPENAI_API_KEY` |
//! | `bedrock-api` | `bedrock` | `credentialsSecretRef` -> `aws_access_key_id`, `aws_secret_access_key`, `aws_session_token` |
//!
//! Credentials reach the pod only as env vars with `valueFrom.secretKeyRef`; the config
//! refers to them as `os.environ/<VAR>`. Pods can only read Secrets of their own
//! namespace, so a credential Secret elsewhere is reported and its Guard not rendered.

use std::collections::{BTreeMap, BTreeSet};

use aigateway_api::{Guard, GuardMode, GuardrailProvider, GuardrailProviderType};
use k8s_openapi::api::core::v1::{
    EnvVar, EnvVarSource, ObjectReference, Secret, SecretKeySelector,
};
use serde_json::{Map, Value, json};

use crate::config::refuse_reference;
use crate::lookup::ObjectLookup;
use crate::names;
use crate::problem::{ObjectRef, Problem, ProblemReason};

/// One AWS credential read from a Bedrock provider's `credentialsSecretRef`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BedrockCredential {
    /// The Secret keys it may be stored under, in order of preference: the name the
    /// upstream CRD documents first, then the environment-variable style.
    pub keys: [&'static str; 2],
    /// The LiteLLM parameter it fills.
    pub param: &'static str,
    /// Whether the Secret must hold it.
    pub required: bool,
}

/// The AWS credentials of a Bedrock provider. The upstream CRD documents the keys
/// `aws-access-key-id` and `aws-secret-access-key`; `AWS_ACCESS_KEY_ID`-style keys are
/// accepted too (a Secret made for `envFrom` works unchanged). With both present, the
/// documented key wins.
pub const BEDROCK_CREDENTIALS: [BedrockCredential; 3] = [
    BedrockCredential {
        keys: ["aws-access-key-id", "AWS_ACCESS_KEY_ID"],
        param: "aws_access_key_id",
        required: true,
    },
    BedrockCredential {
        keys: ["aws-secret-access-key", "AWS_SECRET_ACCESS_KEY"],
        param: "aws_secret_access_key",
        required: true,
    },
    BedrockCredential {
        keys: ["aws-session-token", "AWS_SESSION_TOKEN"],
        param: "aws_session_token",
        required: false,
    },
];

/// The env var LiteLLM's OpenAI moderation guardrail falls back to without `api_key`.
pub const OPENAI_KEY_ENV: &str = "OPENAI_API_KEY";

/// Actions the pinned LiteLLM accepts in `pii_entities_config`.
pub const PII_ACTIONS: [&str; 2] = ["MASK", "BLOCK"];

/// One Guard, rendered.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderedGuardrail {
    /// The Guard it came from.
    pub guard: ObjectRef,
    /// `guardrail_name`: the Guard's name, or `<namespace>/<name>` when Guards of the
    /// same name from different namespaces are listed.
    pub name: String,
    /// `litellm_params`.
    pub params: Map<String, Value>,
    /// Env vars carrying its credentials (all `valueFrom.secretKeyRef`).
    pub env: Vec<EnvVar>,
    /// Names of the Secrets (in the gateway's namespace) its env reads.
    pub secrets: BTreeSet<String>,
    /// An env var that must be set in the container for LiteLLM to start this guardrail
    /// (the OpenAI moderation key fallback), checked by the caller.
    pub requires_env: Option<String>,
}

impl RenderedGuardrail {
    /// The `guardrails` list entry.
    pub fn to_config(&self) -> Value {
        json!({"guardrail_name": self.name, "litellm_params": self.params})
    }
}

/// The guardrails of a gateway and what could not be rendered.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Guardrails {
    /// Rendered guardrails, in `spec.guardrails` order.
    pub rendered: Vec<RenderedGuardrail>,
    /// Guards that were skipped or partly ignored, and why.
    pub problems: Vec<Problem>,
}

/// A credential to wire: `os.environ/<env>` under `param`, from `secret`/`key`.
struct Credential {
    param: &'static str,
    env_suffix: String,
    secret: String,
    key: String,
}

struct Resolved {
    guard: ObjectRef,
    params: Map<String, Value>,
    credentials: Vec<Credential>,
    requires_env: Option<String>,
}

/// What a gateway's guardrails inspect, which decides the names of LiteLLM's modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardedTraffic {
    /// Model calls (AiGateways): `pre_call`, `during_call`, `post_call`.
    ModelCalls,
    /// MCP tool calls (ToolGateways): `pre_mcp_call`, `during_mcp_call`,
    /// `post_mcp_call`, the hooks the pinned LiteLLM runs around a tool call.
    McpCalls,
}

impl GuardedTraffic {
    /// LiteLLM's `mode` value for a Guard's mode on this traffic.
    pub fn mode(self, mode: GuardMode) -> &'static str {
        match (self, mode) {
            (GuardedTraffic::ModelCalls, mode) => mode.as_str(),
            (GuardedTraffic::McpCalls, GuardMode::PreCall) => "pre_mcp_call",
            (GuardedTraffic::McpCalls, GuardMode::DuringCall) => "during_mcp_call",
            (GuardedTraffic::McpCalls, GuardMode::PostCall) => "post_mcp_call",
        }
    }
}

/// Resolves and renders the Guards a gateway lists (`references`, its
/// `spec.guardrails`), naming LiteLLM's modes for `traffic`.
///
/// `taken` are the env var names the container already has (the user's, the provider
/// keys, the fixed ones): credential variables are named around them, so every env name
/// stays unique.
pub fn render_guardrails(
    references: &[ObjectReference],
    gateway_ref: &ObjectRef,
    lookup: &dyn ObjectLookup,
    taken: &BTreeSet<String>,
    traffic: GuardedTraffic,
) -> Guardrails {
    let namespace = gateway_ref.namespace.as_deref().unwrap_or_default();
    let mut problems = Vec::new();
    let mut resolved = Vec::new();
    let mut seen = BTreeSet::new();
    for (index, reference) in references.iter().enumerate() {
        let Some(guard_ref) =
            guard_reference(reference, index, namespace, gateway_ref, &mut problems)
        else {
            continue;
        };
        if !seen.insert(guard_ref.clone()) {
            problems.push(Problem::new(
                ProblemReason::SuspiciousConfig,
                guard_ref,
                format!("listed more than once in spec.guardrails (again at index {index}); it is applied once"),
            ));
            continue;
        }
        match resolve(&guard_ref, namespace, lookup, traffic) {
            Ok((guard, mut warnings)) => {
                problems.append(&mut warnings);
                resolved.push(guard);
            }
            Err(problem) => problems.push(problem),
        }
    }
    Guardrails {
        rendered: finish(resolved, namespace, taken),
        problems,
    }
}

fn guard_reference(
    reference: &ObjectReference,
    index: usize,
    namespace: &str,
    gateway: &ObjectRef,
    problems: &mut Vec<Problem>,
) -> Option<ObjectRef> {
    let name = reference.name.as_deref().unwrap_or_default();
    if name.is_empty() {
        problems.push(Problem::new(
            ProblemReason::InvalidRef,
            gateway.clone(),
            format!("spec.guardrails[{index}] has no name: set the name of a Guard"),
        ));
        return None;
    }
    if let Some(kind) = reference
        .kind
        .as_deref()
        .filter(|k| !k.is_empty() && *k != "Guard")
    {
        problems.push(Problem::new(
            ProblemReason::InvalidRef,
            gateway.clone(),
            format!("spec.guardrails[{index}] ({name}) has kind {kind}: only Guard is supported"),
        ));
        return None;
    }
    let guard_namespace = reference
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(namespace);
    Some(ObjectRef::new("Guard", guard_namespace, name))
}

type ResolveResult = Result<(Resolved, Vec<Problem>), Problem>;

fn resolve(
    guard_ref: &ObjectRef,
    gateway_namespace: &str,
    lookup: &dyn ObjectLookup,
    traffic: GuardedTraffic,
) -> ResolveResult {
    let guard_namespace = guard_ref.namespace.as_deref().unwrap_or(gateway_namespace);
    let problem =
        |reason, object: &ObjectRef, message: String| Problem::new(reason, object.clone(), message);
    let Some(guard) = lookup.guard(guard_namespace, &guard_ref.name) else {
        return Err(problem(
            ProblemReason::RefNotFound,
            guard_ref,
            "not found: create it or remove it from spec.guardrails; the gateway runs without it"
                .to_owned(),
        ));
    };
    if let Some(why) = refuse_reference(&guard_ref.name) {
        return Err(problem(
            ProblemReason::InvalidRef,
            guard_ref,
            format!("metadata.name {why}: rename the Guard; not applied"),
        ));
    }
    if guard.spec.mode.is_empty() {
        return Err(problem(
            ProblemReason::InvalidRef,
            guard_ref,
            "spec.mode is empty: list when it applies (pre_call, post_call, during_call); not applied".to_owned(),
        ));
    }
    let provider_name = guard.spec.provider_ref.name.as_deref().unwrap_or_default();
    if provider_name.is_empty() {
        return Err(problem(
            ProblemReason::InvalidRef,
            guard_ref,
            "spec.providerRef.name is empty: name a GuardrailProvider; not applied".to_owned(),
        ));
    }
    let provider_namespace = guard
        .spec
        .provider_ref
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(guard_namespace);
    let provider_ref = ObjectRef::new("GuardrailProvider", provider_namespace, provider_name);
    let Some(provider) = lookup.guardrail_provider(provider_namespace, provider_name) else {
        return Err(problem(
            ProblemReason::RefNotFound,
            &provider_ref,
            format!(
                "not found (referenced by {guard_ref}): create it or fix the Guard's spec.providerRef; the Guard is not applied"
            ),
        ));
    };
    if provider_namespace != gateway_namespace
        && let Some(what) = credentials_used(&provider)
    {
        return Err(problem(
            ProblemReason::InvalidRef,
            &provider_ref,
            format!(
                "is in namespace {provider_namespace}, not the gateway's ({gateway_namespace}), and {what}; a gateway uses credentials only for providers of its own namespace: create the GuardrailProvider in {gateway_namespace}; {guard_ref} is not applied"
            ),
        ));
    }
    let mut resolved = Resolved {
        guard: guard_ref.clone(),
        params: Map::new(),
        credentials: Vec::new(),
        requires_env: None,
    };
    let modes: Vec<Value> = guard
        .spec
        .mode
        .iter()
        .map(|m| Value::from(traffic.mode(*m)))
        .collect();
    let mut warnings = Vec::new();
    let ctx = Ctx {
        guard: &guard,
        guard_ref,
        provider: &provider,
        provider_ref: &provider_ref,
        gateway_namespace,
    };
    let guardrail = match provider.spec.type_ {
        GuardrailProviderType::PresidioApi => presidio(&ctx, &mut resolved, &mut warnings)?,
        GuardrailProviderType::OpenAiModerationApi => {
            openai_moderation(&ctx, &mut resolved, lookup)?
        }
        GuardrailProviderType::BedrockApi => bedrock(&ctx, &mut resolved, lookup)?,
    };
    ignored_guard_settings(&ctx, &mut warnings);
    resolved
        .params
        .insert("guardrail".to_owned(), Value::from(guardrail));
    resolved
        .params
        .insert("mode".to_owned(), Value::Array(modes));
    resolved
        .params
        .insert("default_on".to_owned(), Value::Bool(true));
    Ok((resolved, warnings))
}

/// What credentials a provider makes the proxy send, or `None` when it sends none
/// (Presidio: LiteLLM sends no key to it).
fn credentials_used(provider: &GuardrailProvider) -> Option<&'static str> {
    match provider.spec.type_ {
        GuardrailProviderType::PresidioApi => None,
        GuardrailProviderType::OpenAiModerationApi => Some(
            "an OpenAI moderation provider is sent an API key (without apiKeySecretRef, the gateway's own OPENAI_API_KEY)",
        ),
        GuardrailProviderType::BedrockApi => Some(
            "a Bedrock provider's requests are signed with AWS credentials (without credentialsSecretRef, the gateway pod's own identity)",
        ),
    }
}

/// Refuses a copied string LiteLLM would interpret (see [`LiteLlmReference`](crate::config::LiteLlmReference)).
fn plain_text(value: &str, refuse: impl FnOnce(&str) -> Problem) -> Result<(), Problem> {
    match refuse_reference(value) {
        Some(why) => Err(refuse(&why)),
        None => Ok(()),
    }
}

/// Whether `region` looks like an AWS region (`us-east-1`, `us-gov-west-1`): LiteLLM
/// builds the Bedrock endpoint's host name from it, so anything else could point the
/// signed request at another host.
pub fn is_aws_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

struct Ctx<'a> {
    guard: &'a Guard,
    guard_ref: &'a ObjectRef,
    provider: &'a GuardrailProvider,
    provider_ref: &'a ObjectRef,
    gateway_namespace: &'a str,
}

impl Ctx<'_> {
    fn invalid_provider(&self, what: &str) -> Problem {
        Problem::new(
            ProblemReason::InvalidRef,
            self.provider_ref.clone(),
            format!("{what}; {} (which uses it) is not applied", self.guard_ref),
        )
    }
    fn invalid_guard(&self, what: &str) -> Problem {
        Problem::new(
            ProblemReason::InvalidRef,
            self.guard_ref.clone(),
            format!("{what}; not applied"),
        )
    }

    /// The credentials Secret `namespace/name`, checked to be readable by the gateway's
    /// pods (its namespace, a valid name) and to exist.
    fn credential_secret(
        &self,
        lookup: &dyn ObjectLookup,
        namespace: &str,
        name: &str,
        field: &str,
    ) -> Result<Secret, Problem> {
        if namespace != self.gateway_namespace {
            return Err(self.invalid_provider(&format!(
                "{field} points at Secret {namespace}/{name}, but the gateway's pods run in namespace {} and can only read Secrets there: copy the Secret into {} and point the provider at it",
                self.gateway_namespace, self.gateway_namespace
            )));
        }
        if let Err(rule) = names::check_dns1123_subdomain(name) {
            return Err(self.invalid_provider(&format!("{field}.name {rule}")));
        }
        lookup.secret(namespace, name).ok_or_else(|| {
            Problem::new(
                ProblemReason::RefNotFound,
                ObjectRef::new("Secret", namespace, name),
                format!(
                    "not found (referenced by {} {field}): create it; {} is not applied",
                    self.provider_ref, self.guard_ref
                ),
            )
        })
    }

    /// A Secret that lacks a key the provider needs.
    fn missing_key(&self, namespace: &str, name: &str, field: &str, keys: &str) -> Problem {
        Problem::new(
            ProblemReason::RefNotFound,
            ObjectRef::new("Secret", namespace, name),
            format!(
                "has no key {keys} (referenced by {} {field}): add it; {} is not applied",
                self.provider_ref, self.guard_ref
            ),
        )
    }
}

fn secret_has(secret: &Secret, key: &str) -> bool {
    secret.data.as_ref().is_some_and(|d| d.contains_key(key))
        || secret
            .string_data
            .as_ref()
            .is_some_and(|d| d.contains_key(key))
}

fn presidio(
    ctx: &Ctx<'_>,
    resolved: &mut Resolved,
    warnings: &mut Vec<Problem>,
) -> Result<&'static str, Problem> {
    let Some(config) = &ctx.provider.spec.presidio else {
        return Err(ctx.invalid_provider("type presidio-api needs spec.presidio.baseUrl"));
    };
    if config.base_url.trim().is_empty() {
        return Err(ctx.invalid_provider("spec.presidio.baseUrl is empty"));
    }
    plain_text(&config.base_url, |why| {
        ctx.invalid_provider(&format!("spec.presidio.baseUrl {why}"))
    })?;
    let params = &mut resolved.params;
    params.insert("output_parse_pii".to_owned(), Value::Bool(true));
    params.insert(
        "presidio_analyzer_api_base".to_owned(),
        Value::from(config.base_url.clone()),
    );
    params.insert(
        "presidio_anonymizer_api_base".to_owned(),
        Value::from(config.base_url.clone()),
    );
    if config.api_key_secret_ref.is_some() {
        warnings.push(Problem::new(
            ProblemReason::Unsupported,
            ctx.provider_ref.clone(),
            "spec.presidio.apiKeySecretRef is ignored: LiteLLM's presidio guardrail sends no API key; put an authenticating proxy in front of Presidio if it needs one",
        ));
    }
    if let Some(guard_config) = &ctx.guard.spec.presidio {
        if let Some(language) = guard_config.language.as_deref().filter(|l| !l.is_empty()) {
            plain_text(language, |why| {
                ctx.invalid_guard(&format!("spec.presidio.language {why}"))
            })?;
            params.insert("presidio_language".to_owned(), Value::from(language));
        }
        if let Some(thresholds) = guard_config
            .score_thresholds
            .as_ref()
            .filter(|t| !t.is_empty())
        {
            let mut out = Map::new();
            for (entity, score) in thresholds {
                let parsed = score
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|s| (0.0..=1.0).contains(s));
                let Some(parsed) = parsed else {
                    return Err(ctx.invalid_guard(&format!(
                        "spec.presidio.scoreThresholds[{entity}] is {score:?}: use a number between 0 and 1 such as \"0.5\""
                    )));
                };
                out.insert(entity.clone(), json!(parsed));
            }
            params.insert("presidio_score_thresholds".to_owned(), Value::Object(out));
        }
        if let Some(actions) = guard_config
            .entity_actions
            .as_ref()
            .filter(|a| !a.is_empty())
        {
            let mut out = Map::new();
            for (entity, action) in actions {
                if !PII_ACTIONS.contains(&action.as_str()) {
                    return Err(ctx.invalid_guard(&format!(
                        "spec.presidio.entityActions[{entity}] is {action:?}: LiteLLM accepts MASK or BLOCK"
                    )));
                }
                out.insert(entity.clone(), Value::from(action.clone()));
            }
            params.insert("pii_entities_config".to_owned(), Value::Object(out));
        }
    }
    Ok("presidio")
}

fn openai_moderation(
    ctx: &Ctx<'_>,
    resolved: &mut Resolved,
    lookup: &dyn ObjectLookup,
) -> Result<&'static str, Problem> {
    let Some(config) = &ctx.provider.spec.openai_moderation else {
        return Err(ctx.invalid_provider("type openai-moderation-api needs spec.openaiModeration"));
    };
    if let Some(base_url) = config.base_url.as_deref().filter(|u| !u.is_empty()) {
        plain_text(base_url, |why| {
            ctx.invalid_provider(&format!("spec.openaiModeration.baseUrl {why}"))
        })?;
        resolved
            .params
            .insert("api_base".to_owned(), Value::from(base_url));
    }
    if let Some(model) = ctx
        .guard
        .spec
        .openai_moderation
        .as_ref()
        .and_then(|c| c.model.as_deref())
        .filter(|m| !m.is_empty())
    {
        plain_text(model, |why| {
            ctx.invalid_guard(&format!("spec.openaiModeration.model {why}"))
        })?;
        resolved
            .params
            .insert("model".to_owned(), Value::from(model));
    }
    match &config.api_key_secret_ref {
        Some(selector) => {
            let field = "spec.openaiModeration.apiKeySecretRef";
            let credential = selector_credential(ctx, selector, "api_key", "API_KEY")?;
            let secret =
                ctx.credential_secret(lookup, ctx.gateway_namespace, &credential.secret, field)?;
            if !secret_has(&secret, &credential.key) {
                return Err(ctx.missing_key(
                    ctx.gateway_namespace,
                    &credential.secret,
                    field,
                    &credential.key,
                ));
            }
            resolved.credentials.push(credential);
        }
        None => resolved.requires_env = Some(OPENAI_KEY_ENV.to_owned()),
    }
    Ok("openai_moderation")
}

/// A credential from a `SecretKeySelector`, which names a Secret in the provider's
/// namespace.
fn selector_credential(
    ctx: &Ctx<'_>,
    selector: &SecretKeySelector,
    param: &'static str,
    env_suffix: &'static str,
) -> Result<Credential, Problem> {
    if selector.name.is_empty() || selector.key.is_empty() {
        return Err(ctx.invalid_provider("apiKeySecretRef needs both name and key"));
    }
    if let Err(rule) = names::check_data_key(&selector.key) {
        return Err(ctx.invalid_provider(&format!("apiKeySecretRef.key {rule}")));
    }
    Ok(Credential {
        param,
        env_suffix: env_suffix.to_owned(),
        secret: selector.name.clone(),
        key: selector.key.clone(),
    })
}

fn bedrock(
    ctx: &Ctx<'_>,
    resolved: &mut Resolved,
    lookup: &dyn ObjectLookup,
) -> Result<&'static str, Problem> {
    let Some(config) = &ctx.provider.spec.bedrock else {
        return Err(ctx.invalid_provider("type bedrock-api needs spec.bedrock.region"));
    };
    if config.region.trim().is_empty() {
        return Err(ctx.invalid_provider("spec.bedrock.region is empty"));
    }
    if !is_aws_region(&config.region) {
        return Err(ctx.invalid_provider(&format!(
            "spec.bedrock.region {:?} is not an AWS region name such as us-east-1 (LiteLLM builds the endpoint's host name from it)",
            config.region
        )));
    }
    let Some(guard_config) = &ctx.guard.spec.bedrock else {
        return Err(ctx
            .invalid_guard("its provider is bedrock-api but spec.bedrock.guardrailId is not set"));
    };
    if guard_config.guardrail_id.trim().is_empty() {
        return Err(ctx.invalid_guard("spec.bedrock.guardrailId is empty"));
    }
    plain_text(&guard_config.guardrail_id, |why| {
        ctx.invalid_guard(&format!("spec.bedrock.guardrailId {why}"))
    })?;
    if let Some(version) = &guard_config.guardrail_version {
        plain_text(version, |why| {
            ctx.invalid_guard(&format!("spec.bedrock.guardrailVersion {why}"))
        })?;
    }
    let params = &mut resolved.params;
    params.insert(
        "guardrailIdentifier".to_owned(),
        Value::from(guard_config.guardrail_id.clone()),
    );
    if let Some(version) = guard_config
        .guardrail_version
        .as_deref()
        .filter(|v| !v.is_empty())
    {
        params.insert("guardrailVersion".to_owned(), Value::from(version));
    }
    params.insert(
        "aws_region_name".to_owned(),
        Value::from(config.region.clone()),
    );
    if let Some(reference) = &config.credentials_secret_ref {
        let name = reference.name.as_deref().unwrap_or_default();
        if name.is_empty() {
            return Err(ctx.invalid_provider("spec.bedrock.credentialsSecretRef.name is empty"));
        }
        let provider_namespace = ctx
            .provider_ref
            .namespace
            .as_deref()
            .unwrap_or(ctx.gateway_namespace);
        let namespace = reference
            .namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(provider_namespace);
        let field = "spec.bedrock.credentialsSecretRef";
        let secret = ctx.credential_secret(lookup, namespace, name, field)?;
        for credential in &BEDROCK_CREDENTIALS {
            match credential.keys.iter().find(|key| secret_has(&secret, key)) {
                Some(key) => resolved.credentials.push(Credential {
                    param: credential.param,
                    env_suffix: credential.param.to_ascii_uppercase(),
                    secret: name.to_owned(),
                    key: (*key).to_owned(),
                }),
                None if credential.required => {
                    let [documented, alternative] = credential.keys;
                    return Err(ctx.missing_key(
                        namespace,
                        name,
                        field,
                        &format!("{documented} (or {alternative})"),
                    ));
                }
                None => {}
            }
        }
    }
    Ok("bedrock")
}

/// Reports settings on the Guard for a provider type other than its provider's.
fn ignored_guard_settings(ctx: &Ctx<'_>, warnings: &mut Vec<Problem>) {
    let spec = &ctx.guard.spec;
    let ty = ctx.provider.spec.type_;
    for (set, field, owner) in [
        (
            spec.presidio.is_some(),
            "spec.presidio",
            GuardrailProviderType::PresidioApi,
        ),
        (
            spec.openai_moderation.is_some(),
            "spec.openaiModeration",
            GuardrailProviderType::OpenAiModerationApi,
        ),
        (
            spec.bedrock.is_some(),
            "spec.bedrock",
            GuardrailProviderType::BedrockApi,
        ),
    ] {
        if set && ty != owner {
            warnings.push(Problem::new(
                ProblemReason::Unsupported,
                ctx.guard_ref.clone(),
                format!(
                    "{field} is ignored: its provider {} has type {ty}",
                    ctx.provider_ref
                ),
            ));
        }
    }
}

/// Names the guardrails (disambiguating equal names from different namespaces) and wires
/// their credentials as env vars.
///
/// Each guard's variables share a prefix `GUARDRAIL_<NAME>`; when one of them would
/// repeat a name in `taken` or of an earlier guard, the prefix gets `_2`, `_3`, ...
/// (deterministic: spec order). Equal names from different namespaces become
/// `<namespace>/<name>`, or `guard:<namespace>/<name>` when that would read as a LiteLLM
/// reference (a namespace called `oidc`).
fn finish(
    resolved: Vec<Resolved>,
    gateway_namespace: &str,
    taken: &BTreeSet<String>,
) -> Vec<RenderedGuardrail> {
    let mut name_counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &resolved {
        *name_counts.entry(r.guard.name.as_str()).or_default() += 1;
    }
    let names: Vec<String> = resolved
        .iter()
        .map(|r| {
            if name_counts[r.guard.name.as_str()] > 1 {
                let qualified = format!(
                    "{}/{}",
                    r.guard.namespace.as_deref().unwrap_or(gateway_namespace),
                    r.guard.name
                );
                if refuse_reference(&qualified).is_some() {
                    format!("guard:{qualified}")
                } else {
                    qualified
                }
            } else {
                r.guard.name.clone()
            }
        })
        .collect();
    let mut used_prefixes = BTreeSet::new();
    let mut used_names = taken.clone();
    resolved
        .into_iter()
        .zip(names)
        .map(|(mut r, name)| {
            let base = format!("GUARDRAIL_{}", env_token(&name));
            let vars = |prefix: &str| -> Vec<String> {
                r.credentials
                    .iter()
                    .map(|c| format!("{prefix}_{}", c.env_suffix))
                    .collect()
            };
            let mut prefix = base.clone();
            let mut n = 2;
            while used_prefixes.contains(&prefix)
                || vars(&prefix).iter().any(|v| used_names.contains(v))
            {
                prefix = format!("{base}_{n}");
                n += 1;
            }
            used_prefixes.insert(prefix.clone());
            let mut env = Vec::new();
            let mut secrets = BTreeSet::new();
            for credential in r.credentials {
                let var = format!("{prefix}_{}", credential.env_suffix);
                r.params.insert(
                    credential.param.to_owned(),
                    Value::from(format!("os.environ/{var}")),
                );
                env.push(secret_env(&var, &credential.secret, &credential.key, false));
                used_names.insert(var);
                secrets.insert(credential.secret);
            }
            RenderedGuardrail {
                guard: r.guard,
                name,
                params: r.params,
                env,
                secrets,
                requires_env: r.requires_env,
            }
        })
        .collect()
}

/// `name` upper-cased with every character other than `A-Z0-9` replaced by `_`.
fn env_token(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// An env var read from Secret `secret` key `key`.
pub fn secret_env(name: &str, secret: &str, key: &str, optional: bool) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_owned(),
                key: key.to_owned(),
                optional: optional.then_some(true),
            }),
            ..Default::default()
        }),
    }
}
