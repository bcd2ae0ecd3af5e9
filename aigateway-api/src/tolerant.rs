//! Reading objects whose `spec` is absent or null.
//!
//! The published CRDs do not require `spec`, so an API server accepts an AiGateway or
//! AiGatewayClass without one. A typed watch fails on the whole list when one item does
//! not deserialise, so one such object would stop every controller that lists these
//! kinds. Specs therefore read "absent" and `null` as their default (an AiGateway with
//! no models, a class with no controller), which controllers then report as invalid.

use std::marker::PhantomData;

use serde::de::{Deserializer, Visitor};

/// A spec whose derived deserialiser is available under another name
/// (`#[serde(remote = "Self")]`).
pub(crate) trait DerivedDeserialize: Sized + Default {
    fn derived<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error>;
}

/// Deserialises `T`, reading an absent or `null` value as `T::default()`.
pub(crate) fn or_default<'de, D: Deserializer<'de>, T: DerivedDeserialize>(
    deserializer: D,
) -> Result<T, D::Error> {
    struct OrDefault<T>(PhantomData<T>);
    impl<'de, T: DerivedDeserialize> Visitor<'de> for OrDefault<T> {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a spec object, null, or nothing")
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<T, E> {
            Ok(T::default())
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<T, E> {
            Ok(T::default())
        }
        fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
            T::derived(deserializer)
        }
    }
    deserializer.deserialize_option(OrDefault(PhantomData))
}

/// Implements `Serialize`/`Deserialize` for a spec declared with
/// `#[serde(remote = "Self")]`, reading an absent spec as the default one.
macro_rules! tolerant_spec {
    ($spec:ty) => {
        impl $crate::tolerant::DerivedDeserialize for $spec {
            fn derived<'de, D: serde::Deserializer<'de>>(
                deserializer: D,
            ) -> Result<Self, D::Error> {
                <$spec>::deserialize(deserializer)
            }
        }
        impl<'de> serde::Deserialize<'de> for $spec {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                $crate::tolerant::or_default(deserializer)
            }
        }
        impl serde::Serialize for $spec {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                <$spec>::serialize(self, serializer)
            }
        }
    };
}
pub(crate) use tolerant_spec;
