//! Typed objects and kube's `DynamicObject`, back and forth.
//!
//! The loop handles children, related and attached objects of kinds it learns at run
//! time, so its caches hold `DynamicObject`s, while implementations and gateway kinds
//! speak typed objects. Both conversions sit at the bottom of the crate, importing
//! nothing of it, so that declarations (an attached kind's mapper), caches and the trait
//! can all use them without depending on each other.

use kube::Resource;
use kube::api::DynamicObject;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A typed object as a `kube::api::DynamicObject` carrying `apiVersion` and `kind`.
pub fn to_dynamic<T: Resource<DynamicType = ()> + Serialize>(object: &T) -> DynamicObject {
    let mut value = serde_json::to_value(object).expect("Kubernetes objects serialise to JSON");
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), T::api_version(&()).into());
        map.insert("kind".into(), T::kind(&()).into());
    }
    serde_json::from_value(value).expect("a serialised Kubernetes object is a DynamicObject")
}

/// A dynamic object as a typed one, if it has that shape.
pub fn from_dynamic<T: DeserializeOwned>(object: &DynamicObject) -> Option<T> {
    serde_json::to_value(object)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
}
