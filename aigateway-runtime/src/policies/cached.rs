//! One policy as the cache keeps it: its metadata without managedFields and foreign
//! annotations, its spec as compact JSON, and of its status only what merging our
//! entries into it reads (an [`AncestorsMemo`]).
//!
//! A `DynamicObject` in kube's `Store` (which the policies no longer use: see the
//! index) cost about 4.4 KB of heap per policy (a
//! `serde_json` tree whose every map is a B-tree node of ~600 bytes, its status
//! included, behind an `ObjectRef` that carries its own copy of the kind's
//! `ApiResource`), most of why one policy per gateway added 35 % to the operator's peak
//! memory (`docs/reference/benchmarks.md`). Lists, watch events and our own status
//! writes deserialise straight into this form, so no tree is kept; readers parse the
//! fields they need, once per reconcile. The status was most of what remained (an
//! entry per target with names, reasons and messages); the memo keeps a few hashes and
//! transition times of ours, and other controllers' entries as they are.

use std::borrow::Cow;
use std::sync::Arc;

use aigateway_api::conditions::NewCondition;
use aigateway_api::policy::{AncestorsMemo, MergedAncestors, ParentReference, PolicyStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Resource;
use kube::api::{ApiResource, DynamicObject, TypeMeta};
use kube::core::DynamicResourceScope;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// A cached policy of a kind known at run time; its dynamic type is the kind, shared
/// by every key of the cache rather than copied into each.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CachedPolicy {
    pub(crate) metadata: ObjectMeta,
    /// Every top-level field but `apiVersion`, `kind`, `metadata` and `status` (`spec`),
    /// as a compact JSON object.
    fields: Box<str>,
    status: CachedStatus,
}

/// What the cache keeps of a policy's `status`.
#[derive(Debug, Clone, Default, PartialEq)]
enum CachedStatus {
    /// No status.
    #[default]
    Absent,
    /// As read, until [`CachedPolicy::keep_memo`] knows whose entries are ours.
    Read(Box<str>),
    /// A status that does not parse as one of Gateway API's policies (a looser CRD
    /// schema): never written over, which would replace other controllers' entries.
    Unparsable,
    Memo(AncestorsMemo),
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
        let status = match fields.remove("status") {
            None | Some(Value::Null) => CachedStatus::Absent,
            Some(status) => CachedStatus::Read(status.to_string().into()),
        };
        Self {
            metadata,
            fields: Value::Object(fields).to_string().into(),
            status,
        }
    }

    /// Keeps of the status only its [`AncestorsMemo`], the entries naming `controller`
    /// being ours.
    pub(crate) fn keep_memo(&mut self, controller: &str) {
        if let CachedStatus::Read(json) = &self.status {
            self.status = match serde_json::from_str::<PolicyStatus>(json) {
                Ok(status) => CachedStatus::Memo(AncestorsMemo::of(&status.ancestors, controller)),
                Err(_) => CachedStatus::Unparsable,
            };
        }
    }

    /// [`merge_ancestors`](aigateway_api::policy::merge_ancestors) of `controller`'s
    /// entries `ours` into this policy's status; `None` when the status does not parse
    /// as a policy's.
    pub(crate) fn merge_status(
        &self,
        controller: &str,
        ours: Vec<(ParentReference, Vec<NewCondition>)>,
        generation: Option<i64>,
        now: &Time,
    ) -> Option<MergedAncestors> {
        let read;
        let memo = match &self.status {
            CachedStatus::Absent => {
                read = AncestorsMemo::default();
                &read
            }
            CachedStatus::Read(json) => {
                let status: PolicyStatus = serde_json::from_str(json).ok()?;
                read = AncestorsMemo::of(&status.ancestors, controller);
                &read
            }
            CachedStatus::Unparsable => return None,
            CachedStatus::Memo(memo) => memo,
        };
        Some(memo.merge(controller, ours, generation, now))
    }

    fn fields(&self) -> Map<String, Value> {
        // Written by `new` from a map: it parses.
        serde_json::from_str(&self.fields).unwrap_or_default()
    }

    /// The field `name` (`spec`), parsed; never `status`, which is not kept.
    pub(crate) fn field(&self, name: &str) -> Option<Value> {
        self.fields().remove(name)
    }

    /// Whether `newer` is this policy with only its status or resourceVersion changed:
    /// nothing a gateway pass reads (those read the metadata and spec).
    pub(crate) fn differs_only_in_status(&self, newer: &CachedPolicy) -> bool {
        self.fields == newer.fields
            && self.metadata
                == ObjectMeta {
                    resource_version: self.metadata.resource_version.clone(),
                    ..newer.metadata.clone()
                }
    }

    /// The policy as an object of kind `resource`: its metadata and spec, without its
    /// status (which the cache does not keep, and implementations do not read).
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
    /// Reads the object field by field, skipping what is never kept as it goes:
    /// `managedFields` (the largest part of a policy as the API server sends it, in
    /// every list page, watch event and status-write response) is never built as a tree,
    /// nor are `apiVersion` and `kind`.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Whole;
        impl<'de> Visitor<'de> for Whole {
            type Value = CachedPolicy;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a policy object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CachedPolicy, A::Error> {
                let mut metadata = ObjectMeta::default();
                let mut fields = Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "metadata" => {
                            metadata = map.next_value::<MetadataWithoutManagedFields>()?.0
                        }
                        "apiVersion" | "kind" => {
                            map.next_value::<IgnoredAny>()?;
                        }
                        _ => {
                            fields.insert(key, map.next_value::<Value>()?);
                        }
                    }
                }
                Ok(CachedPolicy::new(metadata, fields))
            }
        }
        deserializer.deserialize_map(Whole)
    }
}

/// `metadata`, read without its `managedFields`.
struct MetadataWithoutManagedFields(ObjectMeta);

impl<'de> Deserialize<'de> for MetadataWithoutManagedFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Metadata;
        impl<'de> Visitor<'de> for Metadata {
            type Value = MetadataWithoutManagedFields;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("object metadata")
            }

            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<MetadataWithoutManagedFields, A::Error> {
                let mut kept = Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "managedFields" {
                        map.next_value::<IgnoredAny>()?;
                    } else {
                        kept.insert(key, map.next_value::<Value>()?);
                    }
                }
                ObjectMeta::deserialize(Value::Object(kept))
                    .map(MetadataWithoutManagedFields)
                    .map_err(serde::de::Error::custom)
            }
        }
        deserializer.deserialize_map(Metadata)
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
        assert!(matches!(policy.status, CachedStatus::Read(_)));
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
        assert!(object.data.get("status").is_none());
    }

    #[test]
    fn of_the_status_only_a_memo_is_kept_and_it_merges_as_the_status() {
        use aigateway_api::policy::{PolicyTarget, merge_ancestors};
        let target = PolicyTarget::new("runtime.agentic-layer.ai", "AiGateway", "team", "gw");
        let status = serde_json::json!({"ancestors": [
            {"ancestorRef": target.ancestor_ref(), "controllerName": "example.com/us",
             "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted",
                             "message": "a message of some length, as ours are", "observedGeneration": 1,
                             "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
            {"ancestorRef": {"name": "theirs"}, "controllerName": "example.com/them",
             "conditions": []},
        ]});
        let mut policy: CachedPolicy = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "team", "generation": 1},
            "spec": {"targetRefs": []},
            "status": status.clone(),
        }))
        .unwrap();
        policy.keep_memo("example.com/us");
        assert!(matches!(policy.status, CachedStatus::Memo(_)));
        let existing: PolicyStatus = serde_json::from_value(status).unwrap();
        let now = Time(jiff::Timestamp::from_second(1_900_000_000).unwrap());
        for accepted in [true, false] {
            let ours = || {
                vec![(
                    target.ancestor_ref(),
                    vec![NewCondition::new(
                        "Accepted",
                        accepted,
                        "Accepted",
                        "a message of some length, as ours are",
                    )],
                )]
            };
            assert_eq!(
                policy.merge_status("example.com/us", ours(), Some(1), &now),
                Some(merge_ancestors(
                    &existing.ancestors,
                    "example.com/us",
                    ours(),
                    Some(1),
                    &now
                )),
            );
        }
        let unchanged = policy.merge_status("example.com/us", Vec::new(), Some(1), &now);
        assert!(unchanged.unwrap().ancestors.is_some(), "our entry goes");

        let mut odd: CachedPolicy = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "team"},
            "status": {"ancestors": "not a list"},
        }))
        .unwrap();
        odd.keep_memo("example.com/us");
        assert_eq!(
            odd.merge_status("example.com/us", Vec::new(), None, &now),
            None
        );
    }
}
