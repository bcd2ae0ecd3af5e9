//! Sub-schemas that make the generated CRDs match controller-gen's output.
//!
//! k8s-openapi describes core types as the API server's OpenAPI document does, which
//! differs from what controller-gen writes into a CRD for the same Go types: references
//! such as `secretKeyRef.name` default to `""` instead of being required, selectors are
//! `x-kubernetes-map-type: atomic`, quantities are int-or-string with a pattern, and
//! `metav1.Condition` carries its kubebuilder enum and length limits. Each function here
//! starts from k8s-openapi's schema and applies exactly those differences, so a field the
//! upstream CRD accepts is accepted by ours and vice versa.

use k8s_openapi::api::core::v1::{
    EnvFromSource, EnvVar, LocalObjectReference, ObjectReference, ResourceRequirements,
    SecretKeySelector, SecretReference,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::{Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

/// Properties holding a reference whose `name` controller-gen defaults to `""`.
const NAME_DEFAULTED_REFS: &[&str] = &[
    "configMapKeyRef",
    "secretKeyRef",
    "configMapRef",
    "secretRef",
];
/// Properties whose struct is marked `+structType=atomic` in the Kubernetes Go types.
const ATOMIC_REFS: &[&str] = &[
    "configMapKeyRef",
    "secretKeyRef",
    "configMapRef",
    "secretRef",
    "fieldRef",
    "resourceFieldRef",
    "fileKeyRef",
];
/// The pattern controller-gen puts on `resource.Quantity`.
const QUANTITY_PATTERN: &str = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";
/// The pattern and limits kubebuilder markers put on `metav1.Condition`.
const CONDITION_REASON_PATTERN: &str = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$";
const CONDITION_TYPE_PATTERN: &str = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$";

/// `[]corev1.EnvVar` as controller-gen renders it.
pub(crate) fn env_vars(generator: &mut SchemaGenerator) -> Schema {
    compat(generator.subschema_for::<Vec<EnvVar>>())
}

/// `[]corev1.EnvFromSource` as controller-gen renders it.
pub(crate) fn env_from_sources(generator: &mut SchemaGenerator) -> Schema {
    compat(generator.subschema_for::<Vec<EnvFromSource>>())
}

/// `[]corev1.ObjectReference` as controller-gen renders it.
pub(crate) fn object_references(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<Vec<ObjectReference>>();
    if let Some(items) = schema.as_object_mut().and_then(|s| s.get_mut("items")) {
        mark_atomic(items);
    }
    schema
}

/// `corev1.ObjectReference` as controller-gen renders it.
pub(crate) fn object_reference(generator: &mut SchemaGenerator) -> Schema {
    edit(generator.subschema_for::<ObjectReference>(), mark_atomic)
}

/// `[]corev1.LocalObjectReference` as controller-gen renders it (`name` defaults to
/// `""`, each item atomic).
pub(crate) fn local_object_references(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<Vec<LocalObjectReference>>();
    if let Some(items) = schema.as_object_mut().and_then(|s| s.get_mut("items")) {
        default_name_to_empty(items);
        mark_atomic(items);
    }
    schema
}

/// `corev1.ResourceRequirements` as controller-gen renders it: quantities with their
/// pattern, `claims` a list-map keyed by `name`.
pub(crate) fn optional_resource_requirements(generator: &mut SchemaGenerator) -> Schema {
    edit(
        generator.subschema_for::<ResourceRequirements>(),
        |schema| {
            let Some(Value::Object(properties)) = schema.get_mut("properties") else {
                return;
            };
            for quantities in ["limits", "requests"] {
                if let Some(quantity) = properties
                    .get_mut(quantities)
                    .and_then(|q| q.get_mut("additionalProperties"))
                {
                    visit(quantity, None);
                }
            }
            if let Some(Value::Object(claims)) = properties.get_mut("claims") {
                claims.insert("x-kubernetes-list-type".into(), json!("map"));
                claims.insert("x-kubernetes-list-map-keys".into(), json!(["name"]));
            }
        },
    )
}

/// `*corev1.SecretKeySelector` as controller-gen renders it.
pub(crate) fn optional_secret_key_selector(generator: &mut SchemaGenerator) -> Schema {
    edit(generator.subschema_for::<SecretKeySelector>(), |schema| {
        default_name_to_empty(schema);
        mark_atomic(schema);
    })
}

/// `*corev1.SecretReference` as controller-gen renders it.
pub(crate) fn optional_secret_reference(generator: &mut SchemaGenerator) -> Schema {
    edit(generator.subschema_for::<SecretReference>(), mark_atomic)
}

/// `[]metav1.Condition` with its kubebuilder validation, as a list-map keyed by `type`
/// so that server-side apply merges conditions of different writers by type.
pub(crate) fn conditions(generator: &mut SchemaGenerator) -> Schema {
    let mut item = generator.subschema_for::<Condition>();
    if let Some(properties) = item
        .as_object_mut()
        .and_then(|s| s.get_mut("properties"))
        .and_then(Value::as_object_mut)
    {
        let mut constrain = |name: &str, extra: Value| {
            if let (Some(Value::Object(target)), Value::Object(extra)) =
                (properties.get_mut(name), extra)
            {
                target.extend(extra);
            }
        };
        constrain("status", json!({"enum": ["True", "False", "Unknown"]}));
        constrain(
            "reason",
            json!({"maxLength": 1024, "minLength": 1, "pattern": CONDITION_REASON_PATTERN}),
        );
        constrain(
            "type",
            json!({"maxLength": 316, "pattern": CONDITION_TYPE_PATTERN}),
        );
        constrain("message", json!({"maxLength": 32768}));
        constrain("observedGeneration", json!({"minimum": 0}));
    }
    Schema::try_from(json!({
        "type": "array",
        "items": item.to_value(),
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
    }))
    .expect("a JSON object is a valid schema")
}

fn compat(schema: Schema) -> Schema {
    edit(schema, |value| visit(value, None))
}

/// Applies `change` to the JSON form of `schema`.
fn edit(schema: Schema, change: impl FnOnce(&mut Value)) -> Schema {
    let mut value = schema.to_value();
    change(&mut value);
    Schema::try_from(value).expect("editing an object schema keeps it an object")
}

/// Walks a schema and applies controller-gen's renderings by property name.
fn visit(schema: &mut Value, property: Option<&str>) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    if let Some(name) = property {
        if NAME_DEFAULTED_REFS.contains(&name) {
            default_name_to_empty_in(object);
        }
        if ATOMIC_REFS.contains(&name) {
            object.insert("x-kubernetes-map-type".into(), json!("atomic"));
        }
        if name == "fileKeyRef"
            && let Some(Value::Object(optional)) = object
                .get_mut("properties")
                .and_then(|p| p.get_mut("optional"))
        {
            optional.insert("default".into(), json!(false));
        }
    }
    // Only quantities are int-or-string here; their `anyOf` is restored in `crds`.
    if object.get("x-kubernetes-int-or-string") == Some(&json!(true)) {
        object.insert("pattern".into(), json!(QUANTITY_PATTERN));
    }
    if let Some(Value::Object(properties)) = object.get_mut("properties") {
        for (name, child) in properties.iter_mut() {
            visit(child, Some(name));
        }
    }
    if let Some(items) = object.get_mut("items") {
        visit(items, None);
    }
}

fn default_name_to_empty(schema: &mut Value) {
    if let Some(object) = schema.as_object_mut() {
        default_name_to_empty_in(object);
    }
}

fn default_name_to_empty_in(object: &mut Map<String, Value>) {
    if let Some(Value::Object(name)) = object.get_mut("properties").and_then(|p| p.get_mut("name"))
    {
        name.insert("default".into(), json!(""));
    }
    if let Some(Value::Array(required)) = object.get_mut("required") {
        required.retain(|field| field != "name");
        if required.is_empty() {
            object.remove("required");
        }
    }
}

fn mark_atomic(schema: &mut Value) {
    if let Some(object) = schema.as_object_mut() {
        object.insert("x-kubernetes-map-type".into(), json!("atomic"));
    }
}
