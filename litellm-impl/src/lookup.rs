//! How rendering reads the objects a gateway references, and an in-memory source of them.
//!
//! Rendering is pure: it never calls the API server. The runtime implements
//! [`ObjectLookup`] over its reflector caches; the `render` command and tests use
//! [`InMemoryObjects`], filled from YAML documents with
//! [`parse_documents`](crate::parse_documents) (it implements [`Extend`] for them).

use std::collections::BTreeMap;

use aigateway_api::{Guard, GuardrailProvider, ToolServer};
use aigateway_runtime::reference_grants::{self, ReferenceGrantSpec};
use aigateway_runtime::reference_grants::{CrossNamespaceRef, ReferenceGrantCheck};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};

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
    /// The ToolServer `namespace/name` (read only for ToolGateways).
    fn tool_server(&self, namespace: &str, name: &str) -> Option<ToolServer>;
    /// Whether a Gateway API ReferenceGrant in `reference.to_namespace` permits
    /// `reference` (always, within one namespace).
    fn reference_grant(&self, reference: &CrossNamespaceRef<'_>) -> ReferenceGrantCheck;
}

type Key = (String, String);

/// An [`ObjectLookup`] over objects held in memory.
#[derive(Clone, Debug, Default)]
pub struct InMemoryObjects {
    guards: BTreeMap<Key, Guard>,
    providers: BTreeMap<Key, GuardrailProvider>,
    secrets: BTreeMap<Key, Secret>,
    config_maps: BTreeMap<Key, ConfigMap>,
    tool_servers: BTreeMap<Key, ToolServer>,
    /// ReferenceGrants by namespace.
    grants: BTreeMap<String, Vec<ReferenceGrantSpec>>,
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

    /// Adds (or replaces) a ToolServer.
    pub fn insert_tool_server(&mut self, server: ToolServer) {
        let k = key(
            server.metadata.namespace.as_ref(),
            server.metadata.name.as_ref(),
        );
        self.tool_servers.insert(k, server);
    }

    /// Adds a ReferenceGrant (its `spec`) of `namespace`.
    pub fn insert_reference_grant(&mut self, namespace: &str, spec: ReferenceGrantSpec) {
        self.grants
            .entry(namespace.to_owned())
            .or_default()
            .push(spec);
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
    fn tool_server(&self, namespace: &str, name: &str) -> Option<ToolServer> {
        get(&self.tool_servers, namespace, name)
    }
    fn reference_grant(&self, reference: &CrossNamespaceRef<'_>) -> ReferenceGrantCheck {
        let grants = self
            .grants
            .get(reference.to_namespace)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if reference_grants::permitted(grants, reference) {
            ReferenceGrantCheck::Permitted
        } else {
            ReferenceGrantCheck::NotPermitted
        }
    }
}
