//! Which gateways are ours: the GatewayClass contract, as pure functions.

use std::sync::Arc;

use kube::ResourceExt;

use crate::kind::GatewayKind;

/// The class through which a gateway is ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassInUse {
    /// Its name (the named class or the default one).
    pub name: String,
    /// Whether it is being deleted: the gateway stays served (our finalizer holds the
    /// class) until it moves to another class or is deleted, and its conditions say so.
    pub deleting: bool,
}

impl From<&str> for ClassInUse {
    fn from(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            deleting: false,
        }
    }
}

impl<C: kube::Resource> From<&C> for ClassInUse {
    fn from(class: &C) -> Self {
        Self {
            name: class.meta().name.clone().unwrap_or_default(),
            deleting: class.meta().deletion_timestamp.is_some(),
        }
    }
}

/// The outcome of asking "is this gateway ours?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The gateway is ours through a class.
    Ours {
        /// The class that makes it ours.
        class: ClassInUse,
    },
    /// Not ours; nothing of ours may be left on it.
    NotOurs(NotOursReason),
    /// The gateway names no class and the default is ambiguous: leave it alone.
    Ambiguous(String),
}

/// Why a gateway is not ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotOursReason {
    /// It names a class that does not exist (yet, or any more).
    UnknownClass(String),
    /// It names a class of another controller.
    ForeignClass {
        /// The class name.
        class: String,
        /// The controller of that class.
        controller: String,
    },
    /// It names no class and none of our classes is the default.
    NoDefaultClass,
}

impl NotOursReason {
    /// Whether another controller has the gateway now. Only then does the loop delete
    /// our children and conditions: a class that is missing (force-deleted, or not
    /// created yet) must not turn into an outage, and recreating it finds the children
    /// in place.
    pub fn taken_by_another(&self) -> bool {
        matches!(self, NotOursReason::ForeignClass { .. })
    }
}

/// Whether `class` carries the default-class annotation with value `"true"`.
pub fn is_default_class<K: GatewayKind>(class: &K::Class) -> bool {
    class
        .annotations()
        .get(K::DEFAULT_CLASS_ANNOTATION)
        .is_some_and(|v| v == "true")
}

/// Decides whether a gateway naming `class_name` belongs to `controller`.
///
/// A named class is ours iff it exists and its `spec.controller` is ours. A gateway
/// without a class name is ours iff exactly one of our classes is marked default and no
/// class of another controller is. A class being deleted still claims its gateways (see
/// [`ClassInUse::deleting`]).
pub fn claim<K: GatewayKind>(
    class_name: Option<&str>,
    classes: &[Arc<K::Class>],
    controller: &str,
) -> Claim {
    let live_classes = classes.iter();
    match class_name.filter(|n| !n.is_empty()) {
        Some(name) => match live_classes.into_iter().find(|c| c.name_any() == name) {
            None => Claim::NotOurs(NotOursReason::UnknownClass(name.to_owned())),
            Some(class) if K::controller(class) == controller => Claim::Ours {
                class: ClassInUse::from(class.as_ref()),
            },
            Some(class) => Claim::NotOurs(NotOursReason::ForeignClass {
                class: name.to_owned(),
                controller: K::controller(class).to_owned(),
            }),
        },
        None => {
            let (ours, foreign): (Vec<_>, Vec<_>) = live_classes
                .filter(|c| is_default_class::<K>(c))
                .partition(|c| K::controller(c) == controller);
            match (ours.as_slice(), foreign.as_slice()) {
                ([only], []) => Claim::Ours {
                    class: ClassInUse::from(only.as_ref()),
                },
                ([], [theirs]) => Claim::NotOurs(NotOursReason::ForeignClass {
                    class: theirs.name_any(),
                    controller: K::controller(theirs).to_owned(),
                }),
                ([], []) => Claim::NotOurs(NotOursReason::NoDefaultClass),
                _ => Claim::Ambiguous(format!(
                    "{} classes are marked default ({}): mark exactly one",
                    ours.len() + foreign.len(),
                    ours.iter()
                        .chain(&foreign)
                        .map(|c| c.name_any())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::AiGatewayKind;
    use aigateway_api::class::DEFAULT_CLASS_ANNOTATION;
    use aigateway_api::{AiGatewayClass, AiGatewayClassSpec};

    const OURS: &str = "example.com/ours";

    fn class(name: &str, controller: &str, default: bool) -> Arc<AiGatewayClass> {
        let mut class = AiGatewayClass::new(
            name,
            AiGatewayClassSpec {
                controller: controller.into(),
            },
        );
        if default {
            class.metadata.annotations =
                Some([(DEFAULT_CLASS_ANNOTATION.to_owned(), "true".to_owned())].into());
        }
        Arc::new(class)
    }

    fn claim_of(name: Option<&str>, classes: &[Arc<AiGatewayClass>]) -> Claim {
        claim::<AiGatewayKind>(name, classes, OURS)
    }

    #[test]
    fn a_named_class_decides() {
        let classes = [
            class("mine", OURS, false),
            class("theirs", "example.com/other", true),
        ];
        assert_eq!(
            claim_of(Some("mine"), &classes),
            Claim::Ours {
                class: "mine".into()
            }
        );
        assert!(matches!(
            claim_of(Some("theirs"), &classes),
            Claim::NotOurs(NotOursReason::ForeignClass { .. })
        ));
        assert!(matches!(
            claim_of(Some("nope"), &classes),
            Claim::NotOurs(NotOursReason::UnknownClass(_))
        ));
    }

    #[test]
    fn the_default_class_must_be_unique_across_controllers() {
        assert_eq!(
            claim_of(None, &[class("a", OURS, true), class("b", OURS, false)]),
            Claim::Ours { class: "a".into() }
        );
        assert_eq!(
            claim_of(Some(""), &[class("a", OURS, true)]),
            Claim::Ours { class: "a".into() }
        );
        assert!(matches!(
            claim_of(None, &[class("a", OURS, false)]),
            Claim::NotOurs(NotOursReason::NoDefaultClass)
        ));
        assert!(matches!(
            claim_of(None, &[class("a", OURS, true), class("b", OURS, true)]),
            Claim::Ambiguous(_)
        ));
        assert!(matches!(
            claim_of(
                None,
                &[
                    class("a", OURS, true),
                    class("b", "example.com/other", true)
                ]
            ),
            Claim::Ambiguous(_)
        ));
        assert!(matches!(
            claim_of(None, &[class("b", "example.com/other", true)]),
            Claim::NotOurs(NotOursReason::ForeignClass { .. })
        ));
    }

    #[test]
    fn a_class_being_deleted_keeps_its_gateways_and_says_so() {
        let mut deleting = (*class("a", OURS, true)).clone();
        deleting.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        );
        let classes = [Arc::new(deleting)];
        let held = Claim::Ours {
            class: ClassInUse {
                name: "a".into(),
                deleting: true,
            },
        };
        assert_eq!(claim_of(Some("a"), &classes), held);
        assert_eq!(claim_of(None, &classes), held);
    }

    #[test]
    fn only_another_controller_takes_a_gateway_away() {
        assert!(!NotOursReason::UnknownClass("x".into()).taken_by_another());
        assert!(!NotOursReason::NoDefaultClass.taken_by_another());
        assert!(
            NotOursReason::ForeignClass {
                class: "x".into(),
                controller: "y".into()
            }
            .taken_by_another()
        );
    }
}
