//! Rolling pods when content they read only at start changes.
//!
//! A proxy that reads its configuration file or an API key at start keeps the old value
//! until its pods restart. Kubernetes restarts them when the pod template changes, so
//! [`roll_pods_on`] writes a hash of that content into a pod-template annotation
//! ([`ROLLOUT_HASH_ANNOTATION`]): new content, new template, a rolling update; the same
//! content, the same template, no write at all (the runtime skips unchanged children).
//!
//! ```
//! use std::collections::BTreeMap;
//! use aigateway_runtime::rollout::{ROLLOUT_HASH_ANNOTATION, roll_pods_on};
//! use k8s_openapi::api::apps::v1::Deployment;
//!
//! let config = r#"{"routes": []}"#;
//! let api_keys = BTreeMap::from([("openai", "sk-old")]);
//! let mut deployment = Deployment::default();
//! roll_pods_on(&mut deployment, &(config, &api_keys));
//! let before = deployment.spec.as_ref().unwrap().template.metadata.as_ref().unwrap()
//!     .annotations.as_ref().unwrap()[ROLLOUT_HASH_ANNOTATION].clone();
//!
//! let rotated = BTreeMap::from([("openai", "sk-new")]);
//! roll_pods_on(&mut deployment, &(config, &rotated));
//! let after = &deployment.spec.as_ref().unwrap().template.metadata.as_ref().unwrap()
//!     .annotations.as_ref().unwrap()[ROLLOUT_HASH_ANNOTATION];
//! assert_ne!(&before, after);
//! assert!(!after.contains("sk-"));
//! ```
//!
//! The annotation holds an unsalted SHA-256 digest, never the content. It does not keep
//! a weak value secret: whoever can read the Deployment can hash guesses (and can read
//! the configuration hashed with it in the ConfigMap), so a short or guessable key can
//! be confirmed offline. Hash long random keys, or what identifies a Secret's version
//! (its uid and resourceVersion) instead of its values.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::api::DynamicObject;
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The pod-template annotation [`roll_pods_on`] sets.
pub const ROLLOUT_HASH_ANNOTATION: &str = "aigateway.agentic-layer.ai/rollout-hash";

/// Sets [`ROLLOUT_HASH_ANNOTATION`] on the pod template of `workload` to a hash of
/// `content`, so that the pods roll exactly when `content` changes. Pass everything the
/// pods read only at start in one value: a tuple or a map of the configuration and the
/// Secret data they use. Calling it again replaces the earlier hash.
pub fn roll_pods_on(workload: &mut impl PodTemplate, content: &impl Serialize) {
    workload.set_pod_template_annotation(ROLLOUT_HASH_ANNOTATION, content_hash(content));
}

/// A stable hex SHA-256 of `content`'s JSON form (map keys in order for `BTreeMap` and
/// structs; a `HashMap`'s order is not stable, so use `BTreeMap`).
pub fn content_hash(content: &impl Serialize) -> String {
    let json = serde_json::to_vec(content).expect("content serialises to JSON");
    Sha256::digest(&json)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A workload with a pod template: a `Deployment`, `StatefulSet` or `DaemonSet` of
/// `k8s_openapi::api::apps::v1`, or a `kube::api::DynamicObject` of such a kind (its
/// `spec.template`). (Plain names: rustdoc does not resolve links into k8s-openapi,
/// whose types depend on the Kubernetes version feature a binary picks.)
pub trait PodTemplate {
    /// Sets one annotation of the pod template, creating what is missing on the way.
    fn set_pod_template_annotation(&mut self, key: &str, value: String);
}

fn set_annotation(template: &mut PodTemplateSpec, key: &str, value: String) {
    template
        .metadata
        .get_or_insert_with(Default::default)
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(key.to_owned(), value);
}

impl PodTemplate for Deployment {
    fn set_pod_template_annotation(&mut self, key: &str, value: String) {
        let spec = self.spec.get_or_insert_with(Default::default);
        set_annotation(&mut spec.template, key, value);
    }
}

impl PodTemplate for StatefulSet {
    fn set_pod_template_annotation(&mut self, key: &str, value: String) {
        let spec = self.spec.get_or_insert_with(Default::default);
        set_annotation(&mut spec.template, key, value);
    }
}

impl PodTemplate for DaemonSet {
    fn set_pod_template_annotation(&mut self, key: &str, value: String) {
        let spec = self.spec.get_or_insert_with(Default::default);
        set_annotation(&mut spec.template, key, value);
    }
}

/// A dynamic workload: the annotation goes to `spec.template.metadata.annotations`;
/// anything on that path that is not a JSON object is replaced by one.
impl PodTemplate for DynamicObject {
    fn set_pod_template_annotation(&mut self, key: &str, value: String) {
        let mut node = &mut self.data;
        for field in ["spec", "template", "metadata", "annotations"] {
            if !node.is_object() {
                *node = Value::Object(Map::new());
            }
            node = node
                .as_object_mut()
                .expect("made an object above")
                .entry(field)
                .or_insert_with(|| Value::Object(Map::new()));
        }
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        node.as_object_mut()
            .expect("made an object above")
            .insert(key.to_owned(), Value::String(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_hash_follows_the_content_and_dynamic_deployments_get_it_too() {
        let mut typed = Deployment::default();
        roll_pods_on(&mut typed, &("config", "key-1"));
        let mut dynamic: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "gw"},
            "spec": {"template": {"metadata": {"labels": {"app": "gw"}}}},
        }))
        .unwrap();
        roll_pods_on(&mut dynamic, &("config", "key-1"));
        let typed_hash = typed
            .spec
            .unwrap()
            .template
            .metadata
            .unwrap()
            .annotations
            .unwrap()[ROLLOUT_HASH_ANNOTATION]
            .clone();
        let template = &dynamic.data["spec"]["template"]["metadata"];
        assert_eq!(template["annotations"][ROLLOUT_HASH_ANNOTATION], typed_hash);
        assert_eq!(template["labels"]["app"], "gw", "other fields are kept");
        assert_eq!(typed_hash, content_hash(&("config", "key-1")));
        assert_ne!(typed_hash, content_hash(&("config", "key-2")));
        assert_eq!(typed_hash.len(), 64);
    }
}
