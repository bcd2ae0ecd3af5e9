//! Per-kind behaviour of the write pipeline behind one trait, in the spirit of
//! kube-apiserver's REST strategies (`pkg/registry/<group>/<kind>/strategy.go`): the
//! pipeline in `write.rs` is the same for every resource and asks the resource's
//! [`Strategy`] at fixed points, so what is special about a Deployment or a Namespace
//! lives in one file instead of in checks spread over the pipeline. Kinds with nothing
//! special (most built-ins, every custom resource) use the defaults, which do nothing.
//!
//! Hooks decide; they do not write. What must happen to other objects after a write
//! or a removal is returned as a [`FollowUp`] that the pipeline carries out, so that
//! this module depends on the store but not on the pipeline.

pub(crate) mod configmap;
pub(crate) mod crd;
pub(crate) mod deployment;
pub(crate) mod namespace;
pub(crate) mod pod;
pub(crate) mod secret;
pub(crate) mod service;

use serde_json::Value;

use crate::error::ApiError;
use crate::registry::{ResKey, ResourceInfo};
use crate::schema::FieldError;
use crate::store::{ObjKey, State};

/// How the API server treats objects of one kind, at each point of the write pipeline.
/// Every hook defaults to doing nothing.
pub(crate) trait Strategy: Sync {
    /// Field errors of the object as sent (before [`Strategy::prepare`]), reported
    /// together with those of its metadata.
    fn validate(&self, _st: &State, _old: Option<&Value>, _new: &Value) -> Vec<FieldError> {
        Vec::new()
    }

    /// Fills in what the API server sets on create and update (defaults, server-owned
    /// fields, status); `old` is the stored object on an update.
    fn prepare(&self, _st: &State, _old: Option<&Value>, _new: &mut Value) {}

    /// Warnings for the client about the object to store.
    fn warnings(&self, _old: Option<&Value>, _new: &Value) -> Vec<String> {
        Vec::new()
    }

    /// What follows once the object is stored; `direct` for a test's direct write,
    /// which is taken as given.
    fn after_write(&self, _st: &State, _obj: &Value, _direct: bool) -> Vec<FollowUp> {
        Vec::new()
    }

    /// What follows once the object is removed for good.
    fn after_delete(&self, _obj: &Value) -> Vec<FollowUp> {
        Vec::new()
    }

    /// Refuses to delete an object that may never be deleted.
    fn check_delete(&self, _name: &str) -> Result<(), ApiError> {
        Ok(())
    }

    /// Whether a delete always marks the object deleting first, finalizers or not.
    fn deletes_gracefully(&self) -> bool {
        false
    }

    /// Changes the object when it is marked deleting.
    fn mark_deleting(&self, _obj: &mut Value) {}

    /// What follows a delete that leaves the object marked deleting.
    fn while_deleting(&self, _key: &ObjKey) -> Vec<FollowUp> {
        Vec::new()
    }

    /// The finalizer a cluster's controller holds while it cleans up after a deleted
    /// object: a DELETE the testkit finished at once still answers with it, as a
    /// cluster answers before its controller acts.
    fn cleanup_finalizer(&self) -> Option<&'static str> {
        None
    }

    /// Whether a DELETE that removes the object at once answers with the object rather
    /// than a `Status`.
    fn delete_returns_object(&self) -> bool {
        false
    }
}

/// A change to other objects or to the registry that a hook asks the pipeline for.
#[derive(Debug)]
pub(crate) enum FollowUp {
    /// Start serving the resource an established CRD defines.
    Serve(Box<ResourceInfo>),
    /// Remove every object of a resource, then stop serving it.
    Unserve(ResKey),
    /// Give a Deployment the status a healthy cluster would (now or after the delay).
    SimulateDeployment(ObjKey),
    /// Delete everything in a terminating namespace, then the namespace once empty.
    EmptyNamespace(String),
}

/// Kinds whose behaviour is all in the generic pipeline.
struct Plain;

impl Strategy for Plain {}

/// The strategy of a resource: the one place that maps a resource to its behaviour.
pub(crate) fn of(info: &ResourceInfo) -> &'static dyn Strategy {
    match (info.group.as_str(), info.plural.as_str()) {
        ("", "configmaps") => &configmap::ConfigMap,
        ("", "namespaces") => &namespace::Namespace,
        ("", "pods") => &pod::Pod,
        ("", "secrets") => &secret::Secret,
        ("", "services") => &service::Service,
        ("apps", "deployments") => &deployment::Deployment,
        ("apiextensions.k8s.io", "customresourcedefinitions") => &crd::CustomResourceDefinition,
        _ => &Plain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::tests::state;

    #[test]
    fn services_and_pods_answer_a_delete_with_the_object_other_kinds_with_a_status() {
        let st = state();
        let answers_object = |group: &str, plural: &str| {
            of(&st.registry.builtin(group, plural)).delete_returns_object()
        };
        assert!(answers_object("", "services"));
        assert!(answers_object("", "pods"));
        assert!(!answers_object("", "configmaps"));
        assert!(!answers_object("apps", "deployments"));
    }
}
