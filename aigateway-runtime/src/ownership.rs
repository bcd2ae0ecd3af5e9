//! Which conditions on a gateway or an attached object are ours, read from the API
//! server's own record of who wrote them: the `managedFields` entry of our status field
//! manager ([`status_field_manager`](crate::names::status_field_manager)).
//!
//! The loop removes its condition types from an object that stops being ours, and must
//! never remove another controller's `Ready`. Upstream's CRDs leave `status.conditions`
//! atomic and messages are cut to a bound, so nothing in the list says who wrote it. The
//! API server records it with every status write, in the same request: the `Update`
//! entry of the writing manager on subresource `status` owns `f:status.f:conditions`
//! (the whole list when it is atomic; `k:{"type":"Ready"}` per item it changed when the
//! CRD makes it a map keyed by `type`, as ours does). Whoever writes the list after us
//! owns it then, and we leave it alone.
//!
//! Objects written by operators before this record was used carry the
//! [`CONDITIONS_OWNER_ANNOTATION`](crate::names::CONDITIONS_OWNER_ANNOTATION): read as
//! "all of them", never written.
//!
//! Caches drop `managedFields`; [`keep_status_ownership`] keeps this one record as a
//! short digest of what it owns, so that a cached object answers as the API server's
//! would.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, ObjectMeta};
use serde_json::{Map, Value};

use crate::names::CONDITIONS_OWNER_ANNOTATION;

/// The condition types of an object one controller's status writes own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum OwnedConditions {
    /// None: someone else wrote the list last, or nobody did.
    None,
    /// The whole list (atomic lists, and the legacy annotation).
    All,
    /// These types (a list keyed by `type`).
    Types(BTreeSet<String>),
}

impl OwnedConditions {
    /// Of `types`, those owned.
    pub(crate) fn among(&self, types: &[String]) -> Vec<String> {
        match self {
            Self::None => Vec::new(),
            Self::All => types.to_vec(),
            Self::Types(owned) => types
                .iter()
                .filter(|t| owned.contains(*t))
                .cloned()
                .collect(),
        }
    }

    /// Whether anything is owned.
    pub(crate) fn any(&self) -> bool {
        match self {
            Self::None => false,
            Self::All => true,
            Self::Types(owned) => !owned.is_empty(),
        }
    }
}

/// The condition types of `meta`'s object owned by `controller`, whose status field
/// manager is `manager`: the managedFields record, or the legacy annotation.
pub(crate) fn owned_conditions(
    meta: &ObjectMeta,
    manager: &str,
    controller: &str,
) -> OwnedConditions {
    if legacy_mark_names(meta, controller) {
        return OwnedConditions::All;
    }
    recorded(meta, manager)
}

/// Whether `meta` carries an earlier release's conditions-owner annotation naming
/// `controller`: ours to read, and to remove with our conditions.
pub(crate) fn legacy_mark_names(meta: &ObjectMeta, controller: &str) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(CONDITIONS_OWNER_ANNOTATION))
        .is_some_and(|owner| owner == controller)
}

/// Keeps of `meta`'s managedFields only what `manager`'s status record says about the
/// conditions, as one entry whose `fieldsV1` is a string (which the API server never
/// sends): `*` for the whole list, else the types it owns, one per line. About 100
/// bytes, where the record as sent is a tree of maps ten times that size.
pub(crate) fn keep_status_ownership(meta: &mut ObjectMeta, manager: &str) {
    let digest = match recorded(meta, manager) {
        OwnedConditions::None => None,
        OwnedConditions::All => Some(ALL.to_owned()),
        OwnedConditions::Types(types) => Some(types.into_iter().collect::<Vec<_>>().join("\n")),
    };
    meta.managed_fields = digest.map(|digest| {
        vec![ManagedFieldsEntry {
            manager: Some(manager.to_owned()),
            fields_v1: Some(FieldsV1(Value::String(digest))),
            ..Default::default()
        }]
    });
}

/// The digest of a record that owns the whole list.
const ALL: &str = "*";

/// What `manager`'s status record (or its digest) says it owns of `status.conditions`.
/// An atomic list is one leaf (`{}`), which one manager owns at a time. A keyed list
/// has an entry per item: ours are the items no other manager's entry names (an item
/// whose message another writer changed after us is shared, and so not ours to remove).
fn recorded(meta: &ObjectMeta, manager: &str) -> OwnedConditions {
    let digest = (meta.managed_fields.iter().flatten())
        .filter(|entry| entry.manager.as_deref() == Some(manager))
        .find_map(|entry| match entry.fields_v1.as_ref() {
            Some(FieldsV1(Value::String(digest))) => Some(digest),
            _ => None,
        });
    if let Some(digest) = digest {
        return if digest == ALL {
            OwnedConditions::All
        } else {
            OwnedConditions::Types(
                digest
                    .lines()
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect(),
            )
        };
    }
    let Some(ours) = status_entry(meta, manager).and_then(conditions_of) else {
        return OwnedConditions::None;
    };
    if ours.is_empty() {
        return OwnedConditions::All;
    }
    let others: BTreeSet<&String> = (meta.managed_fields.iter().flatten())
        .filter(|entry| !is_status_entry(entry, manager))
        .filter_map(|entry| conditions_of(&entry.fields_v1.as_ref()?.0))
        .flat_map(Map::keys)
        .collect();
    OwnedConditions::Types(
        ours.keys()
            .filter(|key| !others.contains(key))
            .filter_map(|key| condition_type(key))
            .collect(),
    )
}

/// The fieldsV1 of `manager`'s `Update` of subresource `status`.
fn status_entry<'a>(meta: &'a ObjectMeta, manager: &str) -> Option<&'a Value> {
    meta.managed_fields
        .as_deref()?
        .iter()
        .find(|entry| is_status_entry(entry, manager))
        .and_then(|entry| entry.fields_v1.as_ref())
        .map(|fields| &fields.0)
}

/// Whether `entry` is `manager`'s `Update` of subresource `status`.
fn is_status_entry(entry: &ManagedFieldsEntry, manager: &str) -> bool {
    entry.manager.as_deref() == Some(manager)
        && entry.operation.as_deref() == Some("Update")
        && entry.subresource.as_deref() == Some("status")
}

/// The `f:conditions` node of a fieldsV1 tree.
fn conditions_of(fields: &Value) -> Option<&Map<String, Value>> {
    fields.get("f:status")?.get("f:conditions")?.as_object()
}

/// The type of the list item a fieldsV1 key (`k:{"type":"Ready"}`) names.
fn condition_type(key: &str) -> Option<String> {
    let item: Value = serde_json::from_str(key.strip_prefix("k:")?).ok()?;
    item.get("type")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MANAGER: &str = "minimal-1a2b3c4d";
    const CONTROLLER: &str = "example.com/minimal";

    fn entry(manager: &str, subresource: Option<&str>, fields: Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.to_owned()),
            operation: Some("Update".to_owned()),
            subresource: subresource.map(str::to_owned),
            api_version: Some("runtime.agentic-layer.ai/v1alpha1".to_owned()),
            fields_type: Some("FieldsV1".to_owned()),
            fields_v1: Some(FieldsV1(fields)),
            time: None,
        }
    }

    fn meta(entries: Vec<ManagedFieldsEntry>) -> ObjectMeta {
        ObjectMeta {
            managed_fields: Some(entries),
            ..Default::default()
        }
    }

    /// As kube-apiserver 1.34 records a status merge patch under upstream's CRD (an
    /// atomic list) and under ours (a map keyed by type).
    fn atomic() -> Value {
        json!({"f:status": {".": {}, "f:conditions": {}, "f:url": {}}})
    }
    fn keyed() -> Value {
        json!({"f:status": {".": {}, "f:conditions": {
            ".": {},
            "k:{\"type\":\"Accepted\"}": {".": {}, "f:lastTransitionTime": {}, "f:message": {}, "f:observedGeneration": {}, "f:reason": {}, "f:status": {}, "f:type": {}},
            "k:{\"type\":\"Ready\"}": {".": {}, "f:message": {}},
        }}})
    }

    #[test]
    fn an_atomic_list_written_by_our_manager_is_all_ours() {
        let m = meta(vec![entry(MANAGER, Some("status"), atomic())]);
        assert_eq!(
            owned_conditions(&m, MANAGER, CONTROLLER),
            OwnedConditions::All
        );
    }

    #[test]
    fn a_keyed_list_gives_the_types_our_manager_wrote() {
        let m = meta(vec![entry(MANAGER, Some("status"), keyed())]);
        let owned = owned_conditions(&m, MANAGER, CONTROLLER);
        assert_eq!(
            owned,
            OwnedConditions::Types(["Accepted".to_owned(), "Ready".to_owned()].into())
        );
        let types = ["Accepted", "Programmed"].map(str::to_owned);
        assert_eq!(owned.among(&types), ["Accepted"]);
    }

    #[test]
    fn an_item_another_writer_changed_after_us_is_no_longer_ours() {
        let m = meta(vec![
            entry(MANAGER, Some("status"), keyed()),
            entry(
                "other-controller",
                Some("status"),
                json!({"f:status": {"f:conditions": {"k:{\"type\":\"Ready\"}": {"f:message": {}}}}}),
            ),
        ]);
        let owned = owned_conditions(&m, MANAGER, CONTROLLER);
        assert_eq!(
            owned,
            OwnedConditions::Types(["Accepted".to_owned()].into())
        );
        let mut kept = m.clone();
        keep_status_ownership(&mut kept, MANAGER);
        assert_eq!(owned_conditions(&kept, MANAGER, CONTROLLER), owned);
    }

    #[test]
    fn another_managers_or_a_main_resource_record_is_not_ours() {
        let m = meta(vec![
            entry("other-controller", Some("status"), atomic()),
            entry(MANAGER, None, atomic()),
            entry(MANAGER, Some("status"), json!({"f:status": {"f:url": {}}})),
        ]);
        assert_eq!(
            owned_conditions(&m, MANAGER, CONTROLLER),
            OwnedConditions::None
        );
        assert!(!owned_conditions(&ObjectMeta::default(), MANAGER, CONTROLLER).any());
        // A keyed list whose items all went to other writers: nothing of it is ours.
        let emptied = meta(vec![entry(
            MANAGER,
            Some("status"),
            json!({"f:status": {"f:conditions": {".": {}}}}),
        )]);
        assert!(!owned_conditions(&emptied, MANAGER, CONTROLLER).any());
    }

    #[test]
    fn the_legacy_annotation_of_our_controller_still_counts_and_no_other() {
        let mut m = meta(Vec::new());
        m.annotations = Some(
            [(
                CONDITIONS_OWNER_ANNOTATION.to_owned(),
                CONTROLLER.to_owned(),
            )]
            .into(),
        );
        assert_eq!(
            owned_conditions(&m, MANAGER, CONTROLLER),
            OwnedConditions::All
        );
        assert_eq!(
            owned_conditions(&m, MANAGER, "example.com/other"),
            OwnedConditions::None
        );
    }

    #[test]
    fn the_kept_record_answers_as_the_whole_one_and_drops_the_rest() {
        for fields in [atomic(), keyed()] {
            let mut m = meta(vec![
                entry("kubectl", None, json!({"f:spec": {"f:models": {}}})),
                entry(MANAGER, Some("status"), fields),
            ]);
            let before = owned_conditions(&m, MANAGER, CONTROLLER);
            keep_status_ownership(&mut m, MANAGER);
            assert_eq!(owned_conditions(&m, MANAGER, CONTROLLER), before);
            let kept = m.managed_fields.as_ref().unwrap();
            assert_eq!(kept.len(), 1);
            assert!(kept[0].time.is_none() && kept[0].api_version.is_none());
        }
        let mut foreign = meta(vec![entry("kubectl", None, json!({"f:spec": {}}))]);
        keep_status_ownership(&mut foreign, MANAGER);
        assert_eq!(foreign.managed_fields, None);
    }
}
