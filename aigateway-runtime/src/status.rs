//! The status writes: gateways and classes (through `Shared`: guarded by the
//! resourceVersion they were computed from, remembered so that the next reconcile does
//! not conflict with our own write, with events on transitions), and the two writes
//! of attached objects. What to write is decided in `conditions` (re-exported here,
//! the public face of both).

use std::sync::Arc;

use aigateway_api::conditions::types;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::debug;

use crate::conditions::{MAX_NOTE_BYTES, cut_to_bytes, status_patch};
pub(crate) use crate::conditions::{
    Outcome, conditions_for, merge_conditions, now, without_conditions,
};
use crate::kind::GatewayKind;
use crate::retry::ReconcileError;
use crate::shared::{Shared, object_name};

/// Replaces the conditions and url of an attached object (guarded by its
/// `resourceVersion`, as on gateways); returns the object as written.
pub(crate) async fn patch_object_status(
    api: &Api<DynamicObject>,
    name: &str,
    resource_version: Option<&str>,
    conditions: &[Condition],
    url: Option<&str>,
    params: &PatchParams,
) -> Result<DynamicObject, kube::Error> {
    let patch = status_patch(resource_version, conditions, url);
    api.patch_status(name, params, &Patch::Merge(&patch)).await
}

/// Removes the legacy conditions-owner annotation of an attached object, guarded by its
/// `resourceVersion` (see [`CONDITIONS_OWNER_ANNOTATION`](crate::names::CONDITIONS_OWNER_ANNOTATION)).
pub(crate) async fn remove_legacy_owner(
    api: &Api<DynamicObject>,
    name: &str,
    resource_version: Option<&str>,
    params: &PatchParams,
) -> Result<DynamicObject, kube::Error> {
    let patch = json!({"metadata": {
        "resourceVersion": resource_version,
        "annotations": {crate::names::CONDITIONS_OWNER_ANNOTATION: null},
    }});
    api.patch(name, params, &Patch::Merge(&patch)).await
}

/// A gateway's conditions before and after a status write, for the event
/// ([`Shared::publish_transitions`]) published once the rest of the pass is written.
pub(crate) struct Transitions {
    old: Vec<Condition>,
    new: Vec<Condition>,
}

// Status I/O: the only writes of gateway and class status. Each is guarded by the
// resourceVersion it was computed from, and what it returns is remembered so that the
// next reconcile does not conflict with our own write.
impl<K: GatewayKind> Shared<K> {
    /// Replaces the gateway's conditions and url (guarded by its resourceVersion);
    /// returns the gateway as written.
    pub(crate) async fn patch_status(
        &self,
        gateway: &K::Gateway,
        conditions: &[Condition],
        url: Option<&str>,
    ) -> Result<Arc<K::Gateway>, ReconcileError> {
        let patch = status_patch(gateway.meta().resource_version.as_deref(), conditions, url);
        let api: Api<K::Gateway> = Api::namespaced(
            self.client.clone(),
            gateway.meta().namespace.as_deref().unwrap_or_default(),
        );
        let written = api
            .patch_status(
                &gateway.name_any(),
                &self.status_params(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(|source| ReconcileError::Write {
                what: "status",
                object: crate::logging::ObjectName::of(gateway),
                source,
            })?;
        Ok(self.remember(gateway, written))
    }

    /// Writes conditions and url to the gateway's status when they differ; returns the
    /// transitions written, whose event the caller publishes once the pass is written.
    pub(crate) async fn write_status(
        &self,
        gateway: &K::Gateway,
        conditions: Option<Vec<Condition>>,
        url: Option<&str>,
    ) -> Result<Option<Transitions>, ReconcileError> {
        // The URL only changes with the spec, whose new generation changes the
        // conditions; comparing it alone would write forever under upstream's CRD,
        // which prunes `status.url`.
        let Some(list) = conditions else {
            return Ok(None);
        };
        let old = K::gateway_conditions(gateway).to_vec();
        self.patch_status(gateway, &list, url).await?;
        Ok(Some(Transitions { old, new: list }))
    }

    /// One event per standard condition whose status changed in `transitions`:
    /// transitions only. `progressing`: the implementation said the gateway is on its
    /// way to Ready ([`Readiness::Progressing`](crate::Readiness::Progressing)).
    pub(crate) async fn publish_transitions(
        &self,
        gateway: &K::Gateway,
        transitions: &Transitions,
        progressing: bool,
    ) {
        let (old, new) = (&transitions.old, &transitions.new);
        // One event per status write at most: the most telling transition names it and the
        // note lists them all.
        let transitions: Vec<&Condition> = [
            types::READY,
            types::PROGRAMMED,
            types::RESOLVED_REFS,
            types::ACCEPTED,
        ]
        .into_iter()
        .filter_map(|type_| {
            let after = new.iter().find(|c| c.type_ == type_)?;
            let before = old.iter().find(|c| c.type_ == type_);
            worth_an_event(before, after, progressing).then_some(after)
        })
        .collect();
        let Some(headline) = transitions
            .iter()
            .find(|c| c.status != "True")
            .or(transitions.first())
        else {
            return;
        };
        let note = transitions
            .iter()
            .map(|c| format!("{}={}: {}", c.type_, c.status, c.message))
            .collect::<Vec<_>>()
            .join("; ");
        let event = Event {
            type_: if headline.status == "True" {
                EventType::Normal
            } else {
                EventType::Warning
            },
            reason: headline.reason.clone(),
            note: Some(cut_to_bytes(note, MAX_NOTE_BYTES)),
            action: "Reconcile".into(),
            secondary: None,
        };
        let reference: ObjectReference = gateway.object_ref(&());
        // A recorder per event: kube's keeps every event it published for 6 minutes (to
        // count repeats as a series) and scans them all on each publish, 3 KiB and O(N)
        // per gateway on the way to Ready. Ours publishes transitions, which do not
        // repeat in a row.
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        if let Err(error) = recorder.publish(&event, &reference).await {
            // Events are best effort: status already says the same.
            debug!(%error, gateway = %object_name(gateway), "could not publish event");
        }
    }

    /// Replaces the class's conditions (guarded by its resourceVersion).
    pub(crate) async fn patch_class_status(
        &self,
        class: &K::Class,
        conditions: &[Condition],
    ) -> Result<(), ReconcileError> {
        let patch = json!({"metadata": {"resourceVersion": class.meta().resource_version}, "status": {"conditions": conditions}});
        let api: Api<K::Class> = Api::all(self.client.clone());
        let written = api
            .patch_status(
                &class.name_any(),
                &self.patch_params(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(|source| ReconcileError::Write {
                what: "class status",
                object: crate::logging::ObjectName::of(class),
                source,
            })?;
        self.own_writes
            .classes
            .record(class, written, &self.classes);
        Ok(())
    }
}

/// Whether a standard condition as written (`after`) is worth an event, given what it was
/// (`None` on a gateway that had no such condition) and whether the implementation said
/// the gateway is progressing. On the way to Ready, conditions appear True one by one and
/// Ready appears False while the gateway is progressing: routine, so a new gateway gets
/// one event, when it becomes Ready. A condition that turns False (other than Ready while
/// progressing), or True again after something else, is worth one.
fn worth_an_event(before: Option<&Condition>, after: &Condition, progressing: bool) -> bool {
    let changed = before.is_none_or(|b| b.status != after.status);
    let routine = before.is_none()
        && if after.type_ == types::READY {
            after.status == "False" && progressing
        } else {
            after.status == "True"
        };
    changed && !routine
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(type_: &str, status: &str, reason: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: crate::conditions::now(),
        }
    }

    #[test]
    fn a_new_gateway_on_its_way_to_ready_is_routine_whatever_the_reason_says() {
        // A class's own reason for a normal rollout ("Starting") is as routine as ours.
        for reason in ["RollingOut", "NotReady", "Starting"] {
            let ready = condition(types::READY, "False", reason);
            assert!(!worth_an_event(None, &ready, true), "{reason}");
        }
        let accepted = condition(types::ACCEPTED, "True", "Accepted");
        assert!(!worth_an_event(None, &accepted, false));
    }

    #[test]
    fn a_failed_gateway_is_worth_an_event_at_once_even_with_a_rollout_reason() {
        let ready = condition(types::READY, "False", "RollingOut");
        assert!(worth_an_event(None, &ready, false));
        let refused = condition(types::ACCEPTED, "False", "InvalidParameters");
        assert!(worth_an_event(None, &refused, false));
    }

    #[test]
    fn ready_and_changes_are_worth_an_event_and_no_change_is_not() {
        let ready = condition(types::READY, "True", "Ready");
        assert!(worth_an_event(None, &ready, false));
        let rolling = condition(types::READY, "False", "RollingOut");
        assert!(worth_an_event(Some(&ready), &rolling, true));
        assert!(!worth_an_event(Some(&ready), &ready, false));
    }
}
