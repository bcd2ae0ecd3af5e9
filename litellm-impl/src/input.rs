//! Kubernetes objects read from multi-document YAML, as `kubectl apply -f` takes it.
//!
//! No error of this module repeats a Secret's content: a YAML error in a document that
//! may be a Secret gives only its position, and a Secret that does not match its schema
//! names the field at fault, never its value.

use aigateway_api::{
    AiGateway, AiGatewayClass, Guard, GuardrailProvider, ToolGateway, ToolGatewayClass, ToolRoute,
    ToolServer,
};
use aigateway_runtime::reference_grants::ReferenceGrantSpec;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::lookup::{DEFAULT_NAMESPACE, InMemoryObjects};
use crate::policy::{
    self, LiteLlmAvailabilityPolicy, LiteLlmModelPolicy, LiteLlmObservabilityPolicy,
    LiteLlmRoutingPolicy, LiteLlmToolRoutePolicy,
};

/// One object read from a YAML document.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum InputObject {
    /// An `AiGateway`.
    AiGateway(AiGateway),
    /// An `AiGatewayClass`.
    AiGatewayClass(AiGatewayClass),
    /// A `Guard`.
    Guard(Guard),
    /// A `GuardrailProvider`.
    GuardrailProvider(GuardrailProvider),
    /// A `Secret`.
    Secret(Secret),
    /// A `ConfigMap`.
    ConfigMap(ConfigMap),
    /// A `ToolGateway`.
    ToolGateway(ToolGateway),
    /// A `ToolGatewayClass`.
    ToolGatewayClass(ToolGatewayClass),
    /// A `ToolRoute`.
    ToolRoute(ToolRoute),
    /// A `ToolServer`.
    ToolServer(ToolServer),
    /// A Gateway API `ReferenceGrant` (`gateway.networking.k8s.io`).
    ReferenceGrant {
        /// Its namespace ([`DEFAULT_NAMESPACE`] when unset).
        namespace: String,
        /// Its name.
        name: String,
        /// What it grants.
        spec: ReferenceGrantSpec,
    },
    /// A `Namespace` (its labels decide which ToolGateways admit its routes).
    Namespace(Namespace),
    /// A `LiteLLMModelPolicy` (this implementation's group).
    ModelPolicy(LiteLlmModelPolicy),
    /// A `LiteLLMRoutingPolicy`.
    RoutingPolicy(LiteLlmRoutingPolicy),
    /// A `LiteLLMObservabilityPolicy`.
    ObservabilityPolicy(LiteLlmObservabilityPolicy),
    /// A `LiteLLMAvailabilityPolicy`.
    AvailabilityPolicy(LiteLlmAvailabilityPolicy),
    /// A `LiteLLMToolRoutePolicy` (configures ToolRoutes).
    ToolRoutePolicy(LiteLlmToolRoutePolicy),
    /// Any other kind (e.g. a `Deployment`); kept so callers can mention it.
    Other {
        /// Its `apiVersion`.
        api_version: String,
        /// Its `kind`.
        kind: String,
        /// Its `metadata.name`.
        name: String,
    },
}

/// One object of the input and where it came from.
#[derive(Clone, Debug)]
pub struct Document {
    /// 1-based number of the YAML document, counting documents that are not empty (the
    /// items of a `List` share their list's).
    pub index: usize,
    /// The object.
    pub object: InputObject,
}

/// Why a YAML input could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The text is not valid YAML.
    #[error("{source_name}: not valid YAML: {message}")]
    Yaml {
        /// Where the text came from (a file name or `-`).
        source_name: String,
        /// The parser's message and position, without a snippet of the input.
        message: String,
    },
    /// The text is not valid YAML in a document that may be a Secret: only the position
    /// is given, since the parser's message could quote a value.
    #[error(
        "{source_name}:{line}:{column}: not valid YAML in document {index}, which may be a Secret (details withheld so that no secret value is printed): fix the YAML at that position"
    )]
    SecretYaml {
        /// Where the text came from.
        source_name: String,
        /// 1-based document number.
        index: usize,
        /// 1-based line of the error.
        line: u64,
        /// 1-based column of the error.
        column: u64,
    },
    /// A document is not a mapping with `apiVersion` and `kind`.
    #[error(
        "{source_name}: document {index} has no `apiVersion` and `kind`: every document must be a Kubernetes object"
    )]
    NotAnObject {
        /// Where the text came from.
        source_name: String,
        /// 1-based document number.
        index: usize,
    },
    /// A document of a known kind does not match its schema.
    #[error("{source_name}: document {index} ({kind} {name}) is invalid: {message}")]
    Invalid {
        /// Where the text came from.
        source_name: String,
        /// 1-based document number.
        index: usize,
        /// The document's kind.
        kind: String,
        /// The document's `metadata.name`.
        name: String,
        /// What is wrong, from the deserializer (field path and expectation).
        message: String,
    },
}

/// Reads multi-document YAML into objects, in document order.
///
/// Empty documents are skipped; the items of a `v1` `List` are read in order. Namespaced objects without a namespace are placed in
/// [`DEFAULT_NAMESPACE`]. `source_name` only appears in error messages.
pub fn parse_documents(text: &str, source_name: &str) -> Result<Vec<InputObject>, ParseError> {
    Ok(read_documents(text, source_name)?
        .into_iter()
        .map(|d| d.object)
        .collect())
}

/// [`parse_documents`], keeping each object's document number (for messages about
/// documents a caller does not use).
pub fn read_documents(text: &str, source_name: &str) -> Result<Vec<Document>, ParseError> {
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|e| yaml_error(&e, text, source_name))?;
    let mut objects = Vec::new();
    let mut index = 0;
    for document in documents {
        // from_multiple skips empty documents; count the ones it returns.
        index += 1;
        if !document.is_null() {
            let mut parsed = Vec::new();
            parse_object(document, source_name, index, &mut parsed)?;
            objects.extend(parsed.into_iter().map(|object| Document { index, object }));
        }
    }
    Ok(objects)
}

/// The YAML error as a [`ParseError`]: never with a snippet of the input, and with only
/// the position when the document at fault may be a Secret.
fn yaml_error(error: &serde_saphyr::Error, text: &str, source_name: &str) -> ParseError {
    let location = error.location();
    let (line, column) = location.map_or((0, 0), |l| (l.line(), l.column()));
    let (index, document) = document_at(text, line);
    if location.is_none() || document.contains("Secret") {
        return ParseError::SecretYaml {
            source_name: source_name.to_owned(),
            index,
            line,
            column,
        };
    }
    ParseError::Yaml {
        source_name: source_name.to_owned(),
        message: error
            .without_snippet()
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// The 1-based number and the text of the YAML document holding 1-based `line`. A line
/// starting with `---` always begins a new document (YAML forbids it inside one), so
/// splitting there is exact. Unknown lines (0) give the whole text.
fn document_at(text: &str, line: u64) -> (usize, &str) {
    if line == 0 {
        return (1, text);
    }
    let mut index = 1;
    let mut start = 0;
    let mut offset = 0;
    let mut seen_content = false;
    for (number, raw) in text.split_inclusive('\n').enumerate() {
        let number = number as u64 + 1;
        let is_marker =
            raw.starts_with("---") && raw[3..].chars().next().is_none_or(char::is_whitespace);
        if is_marker && number <= line {
            if seen_content {
                index += 1;
            }
            start = offset;
            seen_content = false;
        } else if number > line && is_marker {
            return (index, &text[start..offset]);
        }
        let content = raw.trim();
        if !is_marker && !content.is_empty() && !content.starts_with('#') {
            seen_content = true;
        }
        offset += raw.len();
    }
    (index, &text[start..])
}

/// Reads one object, or each item of a `v1` `List` (as `kubectl get -o yaml` prints).
fn parse_object(
    document: Value,
    source_name: &str,
    index: usize,
    objects: &mut Vec<InputObject>,
) -> Result<(), ParseError> {
    let field = |name: &str| {
        document
            .get(name)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let (Some(api_version), Some(kind)) = (field("apiVersion"), field("kind")) else {
        return Err(ParseError::NotAnObject {
            source_name: source_name.to_owned(),
            index,
        });
    };
    if api_version == "v1" && kind == "List" {
        let items = document.get("items").and_then(|v| v.as_array()).cloned();
        for item in items.unwrap_or_default() {
            parse_object(item, source_name, index, objects)?;
        }
        return Ok(());
    }
    let name = document
        .pointer("/metadata/name")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned();
    let group = api_version
        .rsplit_once('/')
        .map(|(group, _)| group)
        .unwrap_or("");
    let ctx = Ctx {
        source_name,
        index,
        kind: &kind,
        name: &name,
    };
    let object = match (group, kind.as_str()) {
        (aigateway_api::GROUP, "AiGateway") => {
            InputObject::AiGateway(namespaced(ctx.decode(document)?))
        }
        (aigateway_api::GROUP, "AiGatewayClass") => {
            InputObject::AiGatewayClass(ctx.decode(document)?)
        }
        (aigateway_api::GROUP, "Guard") => InputObject::Guard(namespaced(ctx.decode(document)?)),
        (aigateway_api::GROUP, "GuardrailProvider") => {
            InputObject::GuardrailProvider(namespaced(ctx.decode(document)?))
        }
        (aigateway_api::GROUP, "ToolGateway") => {
            InputObject::ToolGateway(namespaced(ctx.decode(document)?))
        }
        (aigateway_api::GROUP, "ToolGatewayClass") => {
            InputObject::ToolGatewayClass(ctx.decode(document)?)
        }
        (aigateway_api::GROUP, "ToolRoute") => {
            InputObject::ToolRoute(namespaced(ctx.decode(document)?))
        }
        (aigateway_api::GROUP, "ToolServer") => {
            InputObject::ToolServer(namespaced(ctx.decode(document)?))
        }
        (aigateway_runtime::reference_grants::GROUP, "ReferenceGrant") => {
            InputObject::ReferenceGrant {
                namespace: document
                    .pointer("/metadata/namespace")
                    .and_then(|v| v.as_str())
                    .filter(|n| !n.is_empty())
                    .unwrap_or(crate::DEFAULT_NAMESPACE)
                    .to_owned(),
                spec: ctx.decode(
                    document
                        .get("spec")
                        .cloned()
                        .unwrap_or_else(|| Value::Object(Default::default())),
                )?,
                name: name.clone(),
            }
        }
        ("", "Secret") => InputObject::Secret(namespaced(ctx.decode_secret(document)?)),
        ("", "ConfigMap") => InputObject::ConfigMap(namespaced(ctx.decode(document)?)),
        ("", "Namespace") => InputObject::Namespace(ctx.decode(document)?),
        (policy::GROUP, "LiteLLMModelPolicy") => {
            InputObject::ModelPolicy(namespaced(ctx.decode(document)?))
        }
        (policy::GROUP, "LiteLLMRoutingPolicy") => {
            InputObject::RoutingPolicy(namespaced(ctx.decode(document)?))
        }
        (policy::GROUP, "LiteLLMObservabilityPolicy") => {
            InputObject::ObservabilityPolicy(namespaced(ctx.decode(document)?))
        }
        (policy::GROUP, "LiteLLMAvailabilityPolicy") => {
            InputObject::AvailabilityPolicy(namespaced(ctx.decode(document)?))
        }
        (policy::GROUP, "LiteLLMToolRoutePolicy") => {
            InputObject::ToolRoutePolicy(namespaced(ctx.decode(document)?))
        }
        _ => InputObject::Other {
            api_version,
            kind,
            name,
        },
    };
    objects.push(object);
    Ok(())
}

struct Ctx<'a> {
    source_name: &'a str,
    index: usize,
    kind: &'a str,
    name: &'a str,
}

impl Ctx<'_> {
    fn invalid(&self, message: String) -> ParseError {
        ParseError::Invalid {
            source_name: self.source_name.to_owned(),
            index: self.index,
            kind: self.kind.to_owned(),
            name: self.name.to_owned(),
            message,
        }
    }

    fn decode<T: DeserializeOwned>(&self, document: Value) -> Result<T, ParseError> {
        serde_json::from_value(document).map_err(|e| self.invalid(e.to_string()))
    }

    /// Decodes a Secret without ever quoting its content: the deserializer's messages
    /// repeat the value at fault (`invalid type: integer `12345``), so the shape of
    /// `data` and `stringData` is checked first and named by field, and anything else
    /// the schema refuses is reported without details.
    fn decode_secret(&self, document: Value) -> Result<Secret, ParseError> {
        for field in ["data", "stringData"] {
            match document.get(field) {
                None | Some(Value::Null) => {}
                Some(Value::Object(entries)) => {
                    for (key, value) in entries {
                        if !value.is_string() {
                            return Err(self.invalid(format!(
                                "{field}.{key} is {} where a string is expected: quote the value{}",
                                json_type(value),
                                if field == "data" {
                                    " (data holds base64; plain text goes under stringData)"
                                } else {
                                    ""
                                }
                            )));
                        }
                    }
                }
                Some(other) => {
                    return Err(self.invalid(format!(
                        "{field} is {} where a mapping of keys to strings is expected",
                        json_type(other)
                    )));
                }
            }
        }
        serde_json::from_value(document).map_err(|_| {
            self.invalid(
                "it does not match the Secret schema (data must be base64; details withheld so that no secret value is printed)"
                    .to_owned(),
            )
        })
    }
}

/// What kind of JSON value `value` is, for messages that must not show it.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

trait HasMetadata {
    fn namespace_mut(&mut self) -> &mut Option<String>;
}

macro_rules! has_metadata {
    ($($t:ty),*) => {$(
        impl HasMetadata for $t {
            fn namespace_mut(&mut self) -> &mut Option<String> {
                &mut self.metadata.namespace
            }
        }
    )*};
}
has_metadata!(
    LiteLlmModelPolicy,
    LiteLlmRoutingPolicy,
    LiteLlmObservabilityPolicy,
    LiteLlmAvailabilityPolicy,
    LiteLlmToolRoutePolicy,
    AiGateway,
    Guard,
    GuardrailProvider,
    Secret,
    ConfigMap,
    ToolGateway,
    ToolRoute,
    ToolServer
);

fn namespaced<T: HasMetadata>(mut object: T) -> T {
    let namespace = object.namespace_mut();
    if namespace.as_deref().is_none_or(str::is_empty) {
        *namespace = Some(DEFAULT_NAMESPACE.to_owned());
    }
    object
}

/// Adds every lookup-relevant object (Guards, GuardrailProviders, Secrets, ConfigMaps,
/// ToolServers, ReferenceGrants); other kinds are ignored.
impl<'a> Extend<&'a InputObject> for InMemoryObjects {
    fn extend<I: IntoIterator<Item = &'a InputObject>>(&mut self, objects: I) {
        for object in objects {
            match object {
                InputObject::Guard(o) => self.insert_guard(o.clone()),
                InputObject::GuardrailProvider(o) => self.insert_guardrail_provider(o.clone()),
                InputObject::Secret(o) => self.insert_secret(o.clone()),
                InputObject::ConfigMap(o) => self.insert_config_map(o.clone()),
                InputObject::ToolServer(o) => self.insert_tool_server(o.clone()),
                InputObject::ReferenceGrant {
                    namespace, spec, ..
                } => self.insert_reference_grant(namespace, spec.clone()),
                InputObject::AiGateway(_)
                | InputObject::AiGatewayClass(_)
                | InputObject::ToolGateway(_)
                | InputObject::ToolGatewayClass(_)
                | InputObject::ToolRoute(_)
                | InputObject::Namespace(_)
                | InputObject::ModelPolicy(_)
                | InputObject::RoutingPolicy(_)
                | InputObject::ObservabilityPolicy(_)
                | InputObject::AvailabilityPolicy(_)
                | InputObject::ToolRoutePolicy(_)
                | InputObject::Other { .. } => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ObjectLookup;

    #[test]
    fn documents_parse_in_order_with_default_namespace() {
        let text = "---\n# comment\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n---\n\
            apiVersion: v1\nkind: Secret\nmetadata:\n  name: api-key-secrets\nstringData:\n  OPENAI_API_KEY: sk-1\n---\n\
            apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: AiGateway\nmetadata:\n  name: gw\nspec:\n  aiModels: []\n";
        let objects = parse_documents(text, "test.yaml").unwrap();
        assert_eq!(objects.len(), 3);
        assert!(
            matches!(&objects[0], InputObject::Namespace(ns) if ns.metadata.name.as_deref() == Some("x"))
        );
        let InputObject::AiGateway(gateway) = &objects[2] else {
            panic!("{objects:?}")
        };
        assert_eq!(
            gateway.metadata.namespace.as_deref(),
            Some(DEFAULT_NAMESPACE)
        );
        let mut lookup = InMemoryObjects::new();
        lookup.extend(&objects);
        let secret = lookup.secret("default", "api-key-secrets").unwrap();
        assert_eq!(secret.data.unwrap()["OPENAI_API_KEY"].0, b"sk-1");
        assert!(lookup.secret("other", "api-key-secrets").is_none());
    }

    #[test]
    fn lists_as_kubectl_prints_them_are_read_item_by_item() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: a, namespace: x}\n\
            - apiVersion: runtime.agentic-layer.ai/v1alpha1\n  kind: Guard\n  metadata: {name: g}\n  spec: {mode: [pre_call], providerRef: {name: p}}\n";
        let objects = parse_documents(text, "list.yaml").unwrap();
        assert!(
            matches!(
                &objects[..],
                [InputObject::ConfigMap(_), InputObject::Guard(_)]
            ),
            "{objects:?}"
        );
    }

    #[test]
    fn invalid_documents_name_the_object() {
        let text = "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: AiGateway\nmetadata:\n  name: broken\nspec:\n  port: eighty\n  aiModels: []\n";
        let err = parse_documents(text, "in.yaml").unwrap_err().to_string();
        assert!(
            err.contains("in.yaml") && err.contains("AiGateway broken"),
            "{err}"
        );
        let err = parse_documents("just: a map\n", "in.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no `apiVersion`"), "{err}");
        let err = parse_documents("a: [unclosed\n", "in.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not valid YAML"), "{err}");
    }

    const SECRET_VALUE: &str = "sk-very-secret-4711";

    #[test]
    fn a_yaml_error_in_a_secret_shows_no_value() {
        let text = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: api-key-secrets\nstringData:\n  OPENAI_API_KEY: \"{SECRET_VALUE}\n  OTHER: [unclosed\n"
        );
        let error = parse_documents(&text, "in.yaml").unwrap_err();
        assert!(
            matches!(error, ParseError::SecretYaml { index: 2, .. }),
            "{error}"
        );
        let message = error.to_string();
        assert!(
            !message.contains("sk-very") && !message.contains("4711"),
            "{message}"
        );
        assert!(
            message.starts_with("in.yaml:") && !message.contains('\n'),
            "{message}"
        );
    }

    #[test]
    fn a_yaml_error_elsewhere_keeps_the_parser_message_without_a_snippet() {
        let text = format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\nstringData: {{K: {SECRET_VALUE}}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\ndata: [unclosed\n"
        );
        let error = parse_documents(&text, "in.yaml").unwrap_err();
        assert!(matches!(error, ParseError::Yaml { .. }), "{error}");
        let message = error.to_string();
        assert!(
            !message.contains(SECRET_VALUE) && !message.contains('\n'),
            "{message}"
        );
    }

    #[test]
    fn a_secret_of_the_wrong_shape_names_the_field_not_the_value() {
        for (body, field) in [
            ("stringData:\n  PIN: 4711\n", "stringData.PIN is a number"),
            ("data:\n  PIN: 4711\n", "data.PIN is a number"),
            ("stringData: 4711\n", "stringData is a number"),
            (
                "data:\n  PIN: \"not base64 4711!\"\n",
                "does not match the Secret schema",
            ),
        ] {
            let text = format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\n{body}");
            let message = parse_documents(&text, "in.yaml").unwrap_err().to_string();
            assert!(message.contains(field), "{field:?} missing: {message}");
            assert!(!message.contains("4711"), "{message}");
        }
    }

    #[test]
    fn documents_keep_their_numbers() {
        let text = "---\n# only a comment\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n";
        let documents = read_documents(text, "in.yaml").unwrap();
        let numbers: Vec<usize> = documents.iter().map(|d| d.index).collect();
        assert_eq!(numbers.len(), 2);
        assert!(numbers[0] < numbers[1], "{numbers:?}");
    }
}
