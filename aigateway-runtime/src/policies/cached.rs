//! One policy as the cache keeps it: its metadata without managedFields and foreign
//! annotations, the rest of the object as compact JSON.
//!
//! A `DynamicObject` in kube's `Store` cost about 4.4 KB of heap per policy (a
//! `serde_json` tree whose every map is a B-tree node of ~600 bytes, its status
//! included, behind an `ObjectRef` that carries its own copy of the kind's
//! `ApiResource`), most of why one policy per gateway added 35 % to the operator's peak
//! memory (`docs/reference/benchmarks.md`). Lists, watch events and our own status
//! writes deserialise straight into this form, so no tree is kept; readers parse the
//! fields they need, once per reconcile.

use std::borrow::Cow;
use std::sync::Arc;

use aigateway_api::policy::PolicyStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::api::{ApiResource, DynamicObject, TypeMeta};
use kube::core::DynamicResourceScope;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// A cached policy of a kind known at run time; its dynamic type is the kind, shared
/// by every key of the cache rather than copied into each.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CachedPolicy {
    pub(crate) metadata: ObjectMeta,
    /// Every top-level field but `apiVersion`, `kind` and `metadata` (`spec`, `status`),
    /// as a compact JSON object.
    fields: Box<str>,
}

impl CachedPolicy {
    /// What the cache keeps of an object with `metadata` and the other top-level
    /// `fields`.
    pub(crate) fn new(mut metadata: ObjectMeta, mut fields: Map<String, Value>) -> Self {
        // Entries of `status.ancestors` say whose they are: nothing reads managedFields.
        metadata.managed_fields = None;
        crate::names::keep_cached_annotations(&mut metadata);
        fields.remove("apiVersion");
        fields.remove("kind");
        Self {
            metadata,
            fields: Value::Object(fields).to_string().into(),
        }
    }

    fn fields(&self) -> Map<String, Value> {
        // Written by `new` from a map: it parses.
        serde_json::from_str(&self.fields).unwrap_or_default()
    }

    /// The field `name` (`spec`, `status`), parsed.
    pub(crate) fn field(&self, name: &str) -> Option<Value> {
        self.fields().remove(name)
    }

    /// `status`, as policies of Gateway API have it: `None` without a status, `Err`
    /// when it does not parse as one.
    pub(crate) fn status(&self) -> Option<Result<PolicyStatus, serde_json::Error>> {
        self.field("status").map(serde_json::from_value)
    }

    /// A policy with only this one's namespace and name: what a controller needs to
    /// queue it, without the resourceVersion and uid its queue would otherwise copy.
    pub(crate) fn reference(&self) -> Self {
        Self {
            metadata: ObjectMeta {
                namespace: self.metadata.namespace.clone(),
                name: self.metadata.name.clone(),
                ..ObjectMeta::default()
            },
            fields: Box::default(),
        }
    }

    /// The policy as an object of kind `resource`, holding what the cache keeps.
    pub(crate) fn to_object(&self, resource: &ApiResource) -> DynamicObject {
        DynamicObject {
            types: Some(TypeMeta {
                api_version: resource.api_version.clone(),
                kind: resource.kind.clone(),
            }),
            metadata: self.metadata.clone(),
            data: Value::Object(self.fields()),
        }
    }
}

impl<'de> Deserialize<'de> for CachedPolicy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Whole {
            #[serde(default)]
            metadata: ObjectMeta,
            #[serde(flatten)]
            fields: Map<String, Value>,
        }
        let whole = Whole::deserialize(deserializer)?;
        Ok(Self::new(whole.metadata, whole.fields))
    }
}

impl Resource for CachedPolicy {
    type DynamicType = Arc<ApiResource>;
    type Scope = DynamicResourceScope;

    fn group(dt: &Arc<ApiResource>) -> Cow<'_, str> {
        dt.group.as_str().into()
    }

    fn version(dt: &Arc<ApiResource>) -> Cow<'_, str> {
        dt.version.as_str().into()
    }

    fn kind(dt: &Arc<ApiResource>) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }

    fn api_version(dt: &Arc<ApiResource>) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }

    fn plural(dt: &Arc<ApiResource>) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_fields_and_our_annotations_only() {
        let policy: CachedPolicy = serde_json::from_value(serde_json::json!({
            "apiVersion": "example.com/v1", "kind": "TestPolicy",
            "metadata": {
                "name": "p", "namespace": "team", "generation": 2,
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "runtime.agentic-layer.ai/x": "y"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
            },
            "spec": {"targetRefs": [], "rpm": 600},
            "status": {"ancestors": []},
        }))
        .unwrap();
        assert!(policy.metadata.managed_fields.is_none());
        assert_eq!(
            policy.metadata.annotations.as_ref().map(|a| a.len()),
            Some(1)
        );
        assert_eq!(
            policy.field("spec"),
            Some(serde_json::json!({"targetRefs": [], "rpm": 600}))
        );
        assert!(matches!(policy.status(), Some(Ok(status)) if status.ancestors.is_empty()));
        let resource = ApiResource {
            group: "example.com".into(),
            version: "v1".into(),
            api_version: "example.com/v1".into(),
            kind: "TestPolicy".into(),
            plural: "testpolicies".into(),
        };
        let object = policy.to_object(&resource);
        assert_eq!(object.types.unwrap().kind, "TestPolicy");
        assert_eq!(object.data["spec"]["rpm"], 600);
        assert_eq!(object.metadata.generation, Some(2));
    }
}
