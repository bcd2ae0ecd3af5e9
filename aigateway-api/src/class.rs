//! The cluster-scoped `AiGatewayClass` resource and class helpers.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Annotation marking a class as the default for gateways without `aiGatewayClassName`.
pub const DEFAULT_CLASS_ANNOTATION: &str = "aigatewayclass.kubernetes.io/is-default-class";
/// The value of [`DEFAULT_CLASS_ANNOTATION`] that marks a default class.
pub const DEFAULT_CLASS_ANNOTATION_VALUE: &str = "true";

/// The pattern a controller name must match: a DNS-subdomain prefix, a slash and a path,
/// as Gateway API's `GatewayClass.spec.controllerName`.
pub const CONTROLLER_NAME_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9\/\-._~%!$&'()*+,;=:]+$";

/// Desired state of a gateway class: which controller implements it.
#[derive(
    CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema,
)]
#[kube(
    group = "runtime.agentic-layer.ai",
    version = "v1alpha1",
    kind = "AiGatewayClass",
    plural = "aigatewayclasses",
    singular = "aigatewayclass",
    shortname = "aigwclass",
    status = "AiGatewayClassStatus",
    doc = "AiGatewayClass is the Schema for the aigatewayclasses API.",
    printcolumn = r#"{"name": "Controller", "type": "string", "jsonPath": ".spec.controller"}"#,
    printcolumn = r#"{"name": "Accepted", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Accepted\")].status"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[schemars(description = "AiGatewayClassSpec defines the desired state of AiGatewayClass.")]
#[serde(remote = "Self")]
pub struct AiGatewayClassSpec {
    /// Controller is the name of the controller that should handle this gateway class,
    /// a domain-prefixed path such as `example.com/my-gateway-controller`.
    #[schemars(length(min = 1, max = 253), regex(pattern = CONTROLLER_NAME_PATTERN))]
    pub controller: String,
}

crate::tolerant::tolerant_spec!(AiGatewayClassSpec);

/// Observed state of a gateway class.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[schemars(description = "AiGatewayClassStatus defines the observed state of AiGatewayClass.")]
pub struct AiGatewayClassStatus {
    /// Conditions of the class; the implementing controller sets `Accepted`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,
}

impl AiGatewayClass {
    /// Whether this class carries the default-class annotation with value `"true"`.
    pub fn is_default(&self) -> bool {
        has_default_annotation(&self.metadata, DEFAULT_CLASS_ANNOTATION)
    }
}

/// Whether `metadata` carries `annotation` with exactly [`DEFAULT_CLASS_ANNOTATION_VALUE`].
pub(crate) fn has_default_annotation(metadata: &ObjectMeta, annotation: &str) -> bool {
    metadata
        .annotations
        .as_ref()
        .and_then(|annotations| annotations.get(annotation))
        .is_some_and(|value| value == DEFAULT_CLASS_ANNOTATION_VALUE)
}

/// Why a controller name is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControllerNameError {
    /// The name is empty.
    #[error(
        "controller name is empty: use a domain-prefixed path such as `example.com/my-controller`"
    )]
    Empty,
    /// The name is longer than 253 characters.
    #[error("controller name `{0}` is longer than 253 characters")]
    TooLong(String),
    /// The name has no `/` separating a domain from a path.
    #[error(
        "controller name `{0}` has no domain prefix: use `<domain>/<path>`, e.g. `example.com/my-controller`"
    )]
    MissingDomain(String),
    /// The domain part is not a lowercase DNS subdomain.
    #[error("controller name `{name}`: `{domain}` is not a lowercase DNS subdomain")]
    InvalidDomain {
        /// The whole controller name.
        name: String,
        /// Its domain part.
        domain: String,
    },
    /// The path part is empty or contains characters outside the allowed set.
    #[error(
        "controller name `{name}`: path `{path}` must be non-empty and use only letters, digits and -._~%!$&'()*+,;=:/"
    )]
    InvalidPath {
        /// The whole controller name.
        name: String,
        /// Its path part.
        path: String,
    },
}

/// Checks that `name` is a domain-prefixed path, the same rule the generated CRD
/// enforces on `spec.controller` (and Gateway API on `controllerName`).
///
/// ```
/// use aigateway_api::class::validate_controller_name;
/// assert!(validate_controller_name("aigateway.agentic-layer.ai/ai-gateway-litellm-controller").is_ok());
/// assert!(validate_controller_name("litellm").is_err());
/// ```
pub fn validate_controller_name(name: &str) -> Result<(), ControllerNameError> {
    if name.is_empty() {
        return Err(ControllerNameError::Empty);
    }
    if name.len() > 253 {
        return Err(ControllerNameError::TooLong(name.to_owned()));
    }
    let Some((domain, path)) = name.split_once('/') else {
        return Err(ControllerNameError::MissingDomain(name.to_owned()));
    };
    let label_ok = |label: &str| {
        let bytes = label.as_bytes();
        !bytes.is_empty()
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
            && bytes[0] != b'-'
            && bytes[bytes.len() - 1] != b'-'
    };
    if !domain.split('.').all(label_ok) {
        return Err(ControllerNameError::InvalidDomain {
            name: name.to_owned(),
            domain: domain.to_owned(),
        });
    }
    let path_ok = !path.is_empty()
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-._~%!$&'()*+,;=:".contains(c));
    if !path_ok {
        return Err(ControllerNameError::InvalidPath {
            name: name.to_owned(),
            path: path.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_names_follow_the_gateway_api_rule() {
        for ok in [
            "aigateway.agentic-layer.ai/ai-gateway-litellm-controller",
            "example.com/a",
            "a/b/c:d",
        ] {
            assert_eq!(validate_controller_name(ok), Ok(()), "{ok}");
        }
        assert_eq!(
            validate_controller_name(""),
            Err(ControllerNameError::Empty)
        );
        assert!(matches!(
            validate_controller_name("litellm"),
            Err(ControllerNameError::MissingDomain(_))
        ));
        assert!(matches!(
            validate_controller_name("Example.com/x"),
            Err(ControllerNameError::InvalidDomain { .. })
        ));
        assert!(matches!(
            validate_controller_name("-a.com/x"),
            Err(ControllerNameError::InvalidDomain { .. })
        ));
        assert!(matches!(
            validate_controller_name("a.com/"),
            Err(ControllerNameError::InvalidPath { .. })
        ));
        assert!(matches!(
            validate_controller_name("a.com/x y"),
            Err(ControllerNameError::InvalidPath { .. })
        ));
        assert!(matches!(
            validate_controller_name(&format!("a.com/{}", "x".repeat(260))),
            Err(ControllerNameError::TooLong(_))
        ));
    }

    #[test]
    fn the_validator_and_the_crd_pattern_agree() {
        let pattern = regex_lite_check(CONTROLLER_NAME_PATTERN);
        for name in [
            "example.com/a",
            "litellm",
            "Example.com/x",
            "a.com/",
            "a.com/x y",
            "a.b-c.d/e_f~g",
        ] {
            assert_eq!(
                pattern(name),
                validate_controller_name(name).is_ok(),
                "{name}"
            );
        }
    }

    /// The CRD pattern, evaluated by the same regex engine family the API server's
    /// validation uses (RE2 semantics; the `regex` crate matches them for this pattern).
    fn regex_lite_check(pattern: &str) -> impl Fn(&str) -> bool {
        let re = regex::Regex::new(pattern).expect("the CRD pattern compiles");
        move |name| re.is_match(name)
    }

    #[test]
    fn default_class_needs_the_exact_value_true() {
        let mut class = AiGatewayClass::new(
            "litellm",
            AiGatewayClassSpec {
                controller: "a.io/b".into(),
            },
        );
        assert!(!class.is_default());
        class.metadata.annotations =
            Some([(DEFAULT_CLASS_ANNOTATION.to_owned(), "True".to_owned())].into());
        assert!(!class.is_default());
        class.metadata.annotations =
            Some([(DEFAULT_CLASS_ANNOTATION.to_owned(), "true".to_owned())].into());
        assert!(class.is_default());
    }
}
