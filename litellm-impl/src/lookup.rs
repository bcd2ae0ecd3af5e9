//! How rendering reads the objects a gateway references, and an in-memory source of them.
//!
//! Rendering is pure: it never calls the API server. The runtime implements
//! [`ObjectLookup`] over its reflector caches; the `render` command and tests use
//! [`InMemoryObjects`], filled from YAML documents with [`parse_documents`].

use std::collections::BTreeMap;

use aigateway_api::{AiGateway, AiGatewayClass, Guard, GuardrailProvider};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use serde::de::DeserializeOwned;

/// The namespace of objects given without one, as `kubectl apply` would place them.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Read access to the objects a gateway references, by namespace and name.
///
/// Implementations return `None` for objects that do not exist (or are not cached).
pub trait ObjectLookup {
    /// The Guard `namespace/name`.
    fn guard(&self, namespace: &str, name: &str) -> Option<Guard>;
    /// The GuardrailProvider `namespace/name`.
    fn guardrail_provider(&self, namespace: &str, name: &str) -> Option<GuardrailProvider>;
    /// The Secret `namespace/name`.
    fn secret(&self, namespace: &str, name: &str) -> Option<Secret>;
    /// The ConfigMap `namespace/name`.
    fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap>;
}

type Key = (String, String);

/// An [`ObjectLookup`] over objects held in memory.
#[derive(Clone, Debug, Default)]
pub struct InMemoryObjects {
    guards: BTreeMap<Key, Guard>,
    providers: BTreeMap<Key, GuardrailProvider>,
    secrets: BTreeMap<Key, Secret>,
    config_maps: BTreeMap<Key, ConfigMap>,
}

fn key(namespace: Option<&String>, name: Option<&String>) -> Key {
    (
        namespace
            .cloned()
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
        name.cloned().unwrap_or_default(),
    )
}

impl InMemoryObjects {
    /// An empty set of objects.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a Guard; without a namespace it is in [`DEFAULT_NAMESPACE`].
    pub fn insert_guard(&mut self, guard: Guard) {
        let k = key(
            guard.metadata.namespace.as_ref(),
            guard.metadata.name.as_ref(),
        );
        self.guards.insert(k, guard);
    }

    /// Adds (or replaces) a GuardrailProvider.
    pub fn insert_guardrail_provider(&mut self, provider: GuardrailProvider) {
        let k = key(
            provider.metadata.namespace.as_ref(),
            provider.metadata.name.as_ref(),
        );
        self.providers.insert(k, provider);
    }

    /// Adds (or replaces) a Secret. `stringData` is folded into `data`, as the API server
    /// does on write.
    pub fn insert_secret(&mut self, mut secret: Secret) {
        if let Some(string_data) = secret.string_data.take() {
            let data = secret.data.get_or_insert_with(BTreeMap::new);
            for (k, v) in string_data {
                data.insert(k, ByteString(v.into_bytes()));
            }
        }
        let k = key(
            secret.metadata.namespace.as_ref(),
            secret.metadata.name.as_ref(),
        );
        self.secrets.insert(k, secret);
    }

    /// Adds (or replaces) a ConfigMap.
    pub fn insert_config_map(&mut self, config_map: ConfigMap) {
        let k = key(
            config_map.metadata.namespace.as_ref(),
            config_map.metadata.name.as_ref(),
        );
        self.config_maps.insert(k, config_map);
    }

    /// Adds every lookup-relevant object of `objects` (Guards, GuardrailProviders,
    /// Secrets, ConfigMaps); other kinds are ignored.
    pub fn extend<'a>(&mut self, objects: impl IntoIterator<Item = &'a InputObject>) {
        for object in objects {
            match object {
                InputObject::Guard(o) => self.insert_guard(o.clone()),
                InputObject::GuardrailProvider(o) => self.insert_guardrail_provider(o.clone()),
                InputObject::Secret(o) => self.insert_secret(o.clone()),
                InputObject::ConfigMap(o) => self.insert_config_map(o.clone()),
                InputObject::AiGateway(_)
                | InputObject::AiGatewayClass(_)
                | InputObject::Other { .. } => {}
            }
        }
    }
}

fn get<T: Clone>(map: &BTreeMap<Key, T>, namespace: &str, name: &str) -> Option<T> {
    map.get(&(namespace.to_owned(), name.to_owned())).cloned()
}

impl ObjectLookup for InMemoryObjects {
    fn guard(&self, namespace: &str, name: &str) -> Option<Guard> {
        get(&self.guards, namespace, name)
    }
    fn guardrail_provider(&self, namespace: &str, name: &str) -> Option<GuardrailProvider> {
        get(&self.providers, namespace, name)
    }
    fn secret(&self, namespace: &str, name: &str) -> Option<Secret> {
        get(&self.secrets, namespace, name)
    }
    fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap> {
        get(&self.config_maps, namespace, name)
    }
}

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
    /// Any other kind (e.g. a `Namespace`); kept so callers can mention it.
    Other {
        /// Its `apiVersion`.
        api_version: String,
        /// Its `kind`.
        kind: String,
        /// Its `metadata.name`.
        name: String,
    },
}

/// Why a YAML input could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The text is not valid YAML.
    #[error("{source_name}: not valid YAML: {message}")]
    Yaml {
        /// Where the text came from (a file name or `-`).
        source_name: String,
        /// The parser's message.
        message: String,
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
    let documents: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(text).map_err(|e| ParseError::Yaml {
            source_name: source_name.to_owned(),
            message: e.to_string(),
        })?;
    let mut objects = Vec::new();
    for (i, document) in documents.into_iter().enumerate() {
        if !document.is_null() {
            parse_object(document, source_name, i + 1, &mut objects)?;
        }
    }
    Ok(objects)
}

/// Reads one object, or each item of a `v1` `List` (as `kubectl get -o yaml` prints).
fn parse_object(
    document: serde_json::Value,
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
        ("", "Secret") => InputObject::Secret(namespaced(ctx.decode(document)?)),
        ("", "ConfigMap") => InputObject::ConfigMap(namespaced(ctx.decode(document)?)),
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
    fn decode<T: DeserializeOwned>(&self, document: serde_json::Value) -> Result<T, ParseError> {
        serde_json::from_value(document).map_err(|e| ParseError::Invalid {
            source_name: self.source_name.to_owned(),
            index: self.index,
            kind: self.kind.to_owned(),
            name: self.name.to_owned(),
            message: e.to_string(),
        })
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
has_metadata!(AiGateway, Guard, GuardrailProvider, Secret, ConfigMap);

fn namespaced<T: HasMetadata>(mut object: T) -> T {
    let namespace = object.namespace_mut();
    if namespace.as_deref().is_none_or(str::is_empty) {
        *namespace = Some(DEFAULT_NAMESPACE.to_owned());
    }
    object
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_parse_in_order_with_default_namespace() {
        let text = "---\n# comment\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n---\n\
            apiVersion: v1\nkind: Secret\nmetadata:\n  name: api-key-secrets\nstringData:\n  OPENAI_API_KEY: sk-1\n---\n\
            apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: AiGateway\nmetadata:\n  name: gw\nspec:\n  aiModels: []\n";
        let objects = parse_documents(text, "test.yaml").unwrap();
        assert_eq!(objects.len(), 3);
        assert!(matches!(&objects[0], InputObject::Other { kind, .. } if kind == "Namespace"));
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
}
