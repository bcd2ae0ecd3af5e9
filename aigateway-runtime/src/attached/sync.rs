//! The writes of attached objects' status, from [`attached_status`] and the gateway's
//! state (through [`Shared`]), their clearing when an object detaches or its gateway is
//! no longer ours, and the attached objects' own controller (`reconcile`,
//! `error_policy`), which only clears.
//!
//! Writes sit above the pure rules and the shared state they use, and below the gateway
//! pass that calls [`sync`] and [`clear_gateway`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use aigateway_api::NamespacedName;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource, ResourceExt};
use tracing::debug;

use crate::attached::allowed_routes::consent_of;
use crate::attached::declare::{ATTACHED_CONDITION_TYPES, AttachedDecision};
use crate::attached::index::{Admission, AttachedCache, AttachedView, MAX_REFUSED_WRITES, key_of};
use crate::attached::rules::{GatewayState, attached_status};
use crate::class::{Claim, claim};
use crate::kind::GatewayKind;
use crate::retry::{ReconcileError, backoff};
use crate::shared::Shared;
use crate::status;

/// The attached kind's state on one object: its conditions and url.
struct AttachedStatusNow {
    conditions: Vec<Condition>,
    url: Option<String>,
}

fn status_now(object: &DynamicObject) -> AttachedStatusNow {
    let status = object.data.get("status");
    AttachedStatusNow {
        conditions: status
            .and_then(|s| s.get("conditions"))
            .and_then(|c| serde_json::from_value(c.clone()).ok())
            .unwrap_or_default(),
        url: status
            .and_then(|s| s.get("url"))
            .and_then(|u| u.as_str())
            .map(str::to_owned),
    }
}

fn object_api(
    client: &Client,
    resource: &ApiResource,
    object: &DynamicObject,
) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        object.metadata.namespace.as_deref().unwrap_or_default(),
        resource,
    )
}

fn write_error(
    resource: &ApiResource,
    object: &DynamicObject,
    what: &'static str,
    source: kube::Error,
) -> ReconcileError {
    let mut name = crate::logging::ObjectName::of_dynamic(object);
    // Listed objects carry no kind of their own.
    name.kind = resource.kind.clone();
    ReconcileError::Write {
        what,
        object: name,
        source,
    }
}

/// Writes the status of every object attached to `gateway` (ours) from `decisions` and
/// the gateway's `state`, where it differs. One object's failed write (a 403, a 409, a
/// 422 for an object whose annotations are at their limit) is logged and does not stop
/// the others. The first failure that a retry may cure is returned once every object
/// was tried, so the gateway is retried with backoff; a 422 is not: the object cannot
/// hold what we write until its owner changes it, and that change re-runs the gateway.
pub(crate) async fn sync<K: GatewayKind>(
    shared: &Shared<K>,
    gateway: &K::Gateway,
    decisions: &BTreeMap<NamespacedName, AttachedDecision>,
    state: GatewayState,
) -> Result<(), ReconcileError> {
    let Some(cache) = shared.attached.as_ref() else {
        return Ok(());
    };
    let gateway_key = key_of(gateway);
    let gateway_name = format!("{}/{}", gateway_key.namespace, gateway_key.name);
    let mut first_error = None;
    for object in cache.attached_to(&gateway_key) {
        let object_key = key_of(object.as_ref());
        let version = object.metadata.resource_version.clone().unwrap_or_default();
        // Refused as invalid at this version: trying again costs a request per pass and
        // fails the same way (a tenant's 500 such routes would cost 500 per pass of a
        // gateway that never admitted them). Its owner's change re-runs the gateway.
        if refused_writes(cache).get(&object_key) == Some(&version) {
            continue;
        }
        let decision = decisions.get(&object_key);
        let written = write_one(shared, cache, &object, decision, state, &gateway_name).await;
        {
            let mut refused = refused_writes(cache);
            match &written {
                Err(error) if refused_as_invalid(error) => {
                    if refused.len() >= MAX_REFUSED_WRITES {
                        refused.clear();
                    }
                    refused.insert(object_key, version);
                }
                _ => {
                    refused.remove(&object_key);
                }
            }
        }
        if let Err(error) = written {
            // Filed under the attached object, whose owner can act on it, and limited per
            // object: another tenant's route failing on every pass must not flood the log.
            let mut name = crate::logging::ObjectName::of_dynamic(&object);
            name.kind = cache.resource.kind.clone();
            crate::logging::warn_about(
                &shared.warnings,
                &name,
                &error,
                "could not write an attached object's status; the others are written",
            );
            if !refused_as_invalid(&error) {
                first_error.get_or_insert(error);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn refused_writes(
    cache: &AttachedCache,
) -> std::sync::MutexGuard<'_, HashMap<NamespacedName, String>> {
    cache
        .refused_writes
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether the API server refused a write as invalid (422).
fn refused_as_invalid(error: &ReconcileError) -> bool {
    matches!(error, ReconcileError::Write { source: kube::Error::Api(status), .. } if status.code == 422)
}

/// Writes one attached object's status, if it differs.
async fn write_one<K: GatewayKind>(
    shared: &Shared<K>,
    cache: &AttachedCache,
    object: &DynamicObject,
    decision: Option<&AttachedDecision>,
    state: GatewayState,
    gateway_name: &str,
) -> Result<(), ReconcileError> {
    let now = status_now(object);
    let wanted = attached_status(decision, state, gateway_name, now.url.as_deref());
    let mut conditions = now.conditions;
    let mut changed = false;
    if let Some(list) = status::merge_conditions(
        &conditions,
        &wanted.set,
        object.metadata.generation,
        &status::now(),
    ) {
        conditions = list;
        changed = true;
    }
    if let Some(list) = status::without_conditions(&conditions, &wanted.remove) {
        conditions = list;
        changed = true;
    }
    if !changed && now.url == wanted.url {
        return Ok(());
    }
    let api = object_api(&shared.client, &cache.resource, object);
    status::patch_object_status(
        &api,
        &object.name_any(),
        object.metadata.resource_version.as_deref(),
        &conditions,
        wanted.url.as_deref(),
        &shared.status_params(),
    )
    .await
    .map_err(|source| write_error(&cache.resource, object, "status", source))?;
    debug!(object = %key_of(object).name, gateway = %gateway_name, "wrote attached status");
    Ok(())
}

/// The attached objects `gateway` (of class `class`, when known) admits, as the view a
/// pass gets, and the refusals of the others; `None` without an attached kind.
pub(crate) fn admit<K: GatewayKind>(
    shared: &Shared<K>,
    gateway: &K::Gateway,
    class: Option<&str>,
) -> Option<(AttachedView, Admission)> {
    let cache = shared.attached.as_ref()?;
    let class = class.and_then(|name| shared.classes.get(&ObjectRef::new(name)));
    let consent = consent_of(
        gateway.meta().annotations.as_ref(),
        class.as_ref().map(|c| {
            (
                c.meta().name.as_deref().unwrap_or_default(),
                c.meta().annotations.as_ref(),
            )
        }),
    );
    let mut admission = cache.admission(&key_of(gateway), consent);
    let view = AttachedView {
        cache: cache.clone(),
        admitted: Arc::new(std::mem::take(&mut admission.admitted)),
    };
    Some((view, admission))
}

/// Removes our conditions and url from `object`, then the legacy owner annotation if it
/// names us; writes nothing when none of the object's conditions are recorded as ours.
async fn clear<K: GatewayKind>(
    shared: &Shared<K>,
    resource: &ApiResource,
    object: &DynamicObject,
) -> Result<(), ReconcileError> {
    let owned = shared.owned_conditions(&object.metadata);
    if !owned.any() {
        return Ok(());
    }
    let now = status_now(object);
    let api = object_api(&shared.client, resource, object);
    let mut resource_version = object.metadata.resource_version.clone();
    let types: Vec<String> = ATTACHED_CONDITION_TYPES
        .iter()
        .map(|t| (*t).to_owned())
        .collect();
    let remaining = status::without_conditions(&now.conditions, &owned.among(&types));
    if remaining.is_some() || now.url.is_some() {
        let conditions = remaining.unwrap_or(now.conditions);
        let cleared = status::patch_object_status(
            &api,
            &object.name_any(),
            resource_version.as_deref(),
            &conditions,
            None,
            &shared.status_params(),
        )
        .await
        .map_err(|source| write_error(resource, object, "status", source))?;
        resource_version = cleared.metadata.resource_version;
    }
    if crate::ownership::legacy_mark_names(&object.metadata, &shared.controller) {
        status::remove_legacy_owner(
            &api,
            &object.name_any(),
            resource_version.as_deref(),
            &shared.patch_params(),
        )
        .await
        .map_err(|source| write_error(resource, object, "conditions owner", source))?;
    }
    debug!(object = %object.name_any(), "cleared attached status");
    Ok(())
}

/// Clears every object attached to `gateway`, which is no longer ours.
pub(crate) async fn clear_gateway<K: GatewayKind>(
    shared: &Shared<K>,
    gateway: &K::Gateway,
) -> Result<(), ReconcileError> {
    let Some(cache) = shared.attached.as_ref() else {
        return Ok(());
    };
    for object in cache.attached_to(&key_of(gateway)) {
        clear(shared, &cache.resource, &object).await?;
    }
    Ok(())
}

/// One attached object: nothing to do while its gateway is ours (the gateway's reconcile
/// writes it); cleared when it names no gateway, its gateway is gone or being deleted, or
/// another controller has the gateway. A gateway whose class is merely missing keeps its
/// objects as they are, as it keeps its children.
pub(crate) async fn reconcile<K: GatewayKind>(
    object: Arc<DynamicObject>,
    shared: Arc<Shared<K>>,
) -> Result<Action, ReconcileError> {
    let Some(cache) = shared.attached.as_ref() else {
        return Ok(Action::await_change());
    };
    let gateway = (cache.gateway_of)(&object).and_then(|key| {
        shared
            .gateways
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
    });
    let keep = match gateway {
        Some(gateway) if gateway.meta().deletion_timestamp.is_none() => {
            match claim::<K>(
                K::class_name(&gateway),
                &shared.classes.state(),
                &shared.controller,
            ) {
                Claim::Ours { .. } | Claim::Ambiguous(_) => true,
                Claim::NotOurs(reason) => !reason.taken_by_another(),
            }
        }
        _ => false,
    };
    if !keep {
        clear(&shared, &cache.resource, &object).await?;
    }
    Ok(Action::await_change())
}

/// Backoff for a failed attached reconcile.
pub(crate) fn error_policy<K: GatewayKind>(
    object: Arc<DynamicObject>,
    error: &ReconcileError,
    shared: Arc<Shared<K>>,
) -> Action {
    shared.metrics.reconcile_failed(error.metric_reason());
    let mut name = crate::logging::ObjectName::of_dynamic(&object);
    if let Some(cache) = &shared.attached {
        // Listed objects carry no kind of their own.
        name.kind = cache.resource.kind.clone();
    }
    crate::logging::warn_about(
        &shared.warnings,
        &name,
        error,
        "attached object reconcile failed",
    );
    if error.is_conflict() {
        Action::requeue(Duration::from_millis(200))
    } else {
        Action::requeue(backoff(2))
    }
}
