//! The `Guard` and `GuardrailProvider` resources that gateways reference as guardrails.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ObjectReference, SecretKeySelector, SecretReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// When a guard runs relative to the LLM call.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
pub enum GuardMode {
    /// Before the request reaches the model.
    #[serde(rename = "pre_call")]
    PreCall,
    /// After the model answered.
    #[serde(rename = "post_call")]
    PostCall,
    /// In parallel with the model call.
    #[serde(rename = "during_call")]
    DuringCall,
}

impl GuardMode {
    /// The wire value (`pre_call`, `post_call`, `during_call`), which is also LiteLLM's.
    pub fn as_str(self) -> &'static str {
        match self {
            GuardMode::PreCall => "pre_call",
            GuardMode::PostCall => "post_call",
            GuardMode::DuringCall => "during_call",
        }
    }
}

/// Desired state of a guard: when it applies, which provider hosts it, and the
/// provider-specific settings.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "runtime.agentic-layer.ai",
    version = "v1alpha1",
    kind = "Guard",
    plural = "guards",
    singular = "guard",
    namespaced,
    status = "GuardStatus",
    doc = "Guard is the Schema for the guards API.",
    printcolumn = r#"{"name": "Provider", "type": "string", "jsonPath": ".spec.providerRef.name"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[schemars(description = "GuardSpec defines the desired state of Guard.")]
#[serde(rename_all = "camelCase")]
pub struct GuardSpec {
    /// Description provides a human-readable description of the guard's purpose.
    /// This field is for documentation purposes only and has no effect on the guard's behavior.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,

    /// Mode defines when the guard is applied relative to the LLM call.
    /// Multiple modes can be specified to apply the guard at multiple points.
    #[schemars(length(min = 1), extend("x-kubernetes-list-type" = "set"))]
    pub mode: Vec<GuardMode>,

    /// ProviderRef references the GuardrailProvider that hosts this guard.
    /// If Namespace is not specified, defaults to the same namespace as the Guard.
    #[schemars(schema_with = "crate::schema::object_reference")]
    pub provider_ref: ObjectReference,

    /// Presidio holds guard-level configuration for the Presidio API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presidio: Option<PresidioGuardConfig>,

    /// OpenAIModeration holds guard-level configuration for the OpenAI Moderation API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openai_moderation: Option<OpenAiModerationGuardConfig>,

    /// Bedrock holds guard-level configuration for the AWS Bedrock Guardrails API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bedrock: Option<BedrockGuardConfig>,
}

/// Guard-level settings for a Presidio provider.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(
    description = "PresidioGuardConfig holds guard-level configuration for the Presidio API."
)]
pub struct PresidioGuardConfig {
    /// Language is the language code used for PII detection (e.g. "en").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// ScoreThresholds maps entity types (or "ALL") to minimum confidence scores, as strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_thresholds: Option<BTreeMap<String, String>>,
    /// EntityActions maps entity types to the action taken on them (e.g. "MASK", "BLOCK").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_actions: Option<BTreeMap<String, String>>,
}

/// Guard-level settings for an OpenAI moderation provider.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[schemars(
    description = "OpenAIModerationGuardConfig holds guard-level configuration for the OpenAI Moderation API."
)]
pub struct OpenAiModerationGuardConfig {
    /// Model is the moderation model to use (e.g. "omni-moderation-latest").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// Guard-level settings for an AWS Bedrock guardrail.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(
    description = "BedrockGuardConfig holds guard-level configuration for the AWS Bedrock Guardrails API."
)]
pub struct BedrockGuardConfig {
    /// GuardrailID is the identifier of the Bedrock guardrail.
    #[serde(rename = "guardrailId")]
    pub guardrail_id: String,
    /// GuardrailVersion is the version of the Bedrock guardrail (e.g. "DRAFT" or "1").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardrail_version: Option<String>,
}

/// Observed state of a guard.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[schemars(description = "GuardStatus defines the observed state of Guard.")]
pub struct GuardStatus {
    /// Conditions of the guard.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,
}

/// The guardrail API a provider implements.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum GuardrailProviderType {
    /// The OpenAI moderation API.
    #[serde(rename = "openai-moderation-api")]
    OpenAiModerationApi,
    /// The AWS Bedrock Guardrails API.
    #[serde(rename = "bedrock-api")]
    BedrockApi,
    /// The Presidio analyzer and anonymizer API.
    #[serde(rename = "presidio-api")]
    PresidioApi,
}

impl GuardrailProviderType {
    /// The wire value, e.g. `presidio-api`.
    pub fn as_str(self) -> &'static str {
        match self {
            GuardrailProviderType::OpenAiModerationApi => "openai-moderation-api",
            GuardrailProviderType::BedrockApi => "bedrock-api",
            GuardrailProviderType::PresidioApi => "presidio-api",
        }
    }
}

impl std::fmt::Display for GuardrailProviderType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Desired state of a guardrail provider: the API it implements and how to reach it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "runtime.agentic-layer.ai",
    version = "v1alpha1",
    kind = "GuardrailProvider",
    plural = "guardrailproviders",
    singular = "guardrailprovider",
    namespaced,
    status = "GuardrailProviderStatus",
    doc = "GuardrailProvider is the Schema for the guardrailproviders API.",
    printcolumn = r#"{"name": "Type", "type": "string", "jsonPath": ".spec.type"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[schemars(description = "GuardrailProviderSpec defines the desired state of GuardrailProvider.")]
#[serde(rename_all = "camelCase")]
pub struct GuardrailProviderSpec {
    /// Type defines the guardrail API type implemented by this provider.
    /// Each type corresponds to a specific guardrail API contract.
    #[serde(rename = "type")]
    pub type_: GuardrailProviderType,

    /// Presidio holds configuration for providers implementing the Presidio API.
    /// Required when type is "presidio-api".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presidio: Option<PresidioProviderConfig>,

    /// OpenAIModeration holds configuration for providers implementing the OpenAI Moderation API.
    /// Required when type is "openai-moderation-api".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openai_moderation: Option<OpenAiModerationProviderConfig>,

    /// Bedrock holds configuration for providers implementing the AWS Bedrock Guardrails API.
    /// Required when type is "bedrock-api".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bedrock: Option<BedrockProviderConfig>,
}

/// How to reach a Presidio service.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(description = "PresidioProviderConfig holds configuration for the Presidio API.")]
pub struct PresidioProviderConfig {
    /// BaseURL is the URL serving both the Presidio analyzer and anonymizer.
    #[schemars(url)]
    pub base_url: String,
    /// APIKeySecretRef references a Secret key holding an API key for the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::optional_secret_key_selector")]
    pub api_key_secret_ref: Option<SecretKeySelector>,
}

/// How to reach an OpenAI-compatible moderation API.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(
    description = "OpenAIModerationProviderConfig holds configuration for the OpenAI Moderation API."
)]
pub struct OpenAiModerationProviderConfig {
    /// BaseURL overrides the OpenAI API base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(url)]
    pub base_url: Option<String>,
    /// APIKeySecretRef references a Secret key holding the OpenAI API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::optional_secret_key_selector")]
    pub api_key_secret_ref: Option<SecretKeySelector>,
}

/// How to reach AWS Bedrock Guardrails.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(
    description = "BedrockProviderConfig holds configuration for the AWS Bedrock Guardrails API."
)]
pub struct BedrockProviderConfig {
    /// Region is the AWS region for the Bedrock service.
    pub region: String,
    /// CredentialsSecretRef references a secret containing AWS credentials.
    /// The secret should contain "aws-access-key-id" and "aws-secret-access-key" keys.
    /// When omitted, uses IRSA or pod identity for authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::optional_secret_reference")]
    pub credentials_secret_ref: Option<SecretReference>,
}

/// Observed state of a guardrail provider.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[schemars(
    description = "GuardrailProviderStatus defines the observed state of GuardrailProvider."
)]
pub struct GuardrailProviderStatus {
    /// Conditions of the provider.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,
}
