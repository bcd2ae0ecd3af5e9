//! Operator-wide defaults for the workload, and their per-gateway overrides.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, PodSecurityContext, ResourceRequirements, SeccompProfile, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::names;
use crate::{GatewayKind, RenderError};

/// The LiteLLM release this crate renders for and tests against: the 1.108 long-term
/// line (model price map read offline at start, MCP tool results over 1 MiB), at its
/// newest patch whose `litellm[proxy]` requirements PyPI serves. Never a 1.107.x
/// release (1.107.0 was compromised).
pub const LITELLM_VERSION: &str = pinned_litellm_version!();

/// The LiteLLM image used unless the operator or a gateway says otherwise: the non-root
/// variant (user `nobody`, admin UI prebuilt) of [`LITELLM_VERSION`], the release whose
/// behaviour the real-LiteLLM tests prove, which runs under Pod Security `restricted`.
pub const DEFAULT_IMAGE: &str = concat!(
    "ghcr.io/berriai/litellm-non_root:v",
    pinned_litellm_version!()
);
/// Default CPU request (as the Go operator).
pub const DEFAULT_CPU_REQUEST: &str = "100m";
/// Default memory request (as the Go operator).
pub const DEFAULT_MEMORY_REQUEST: &str = "250M";
/// Default CPU limit (as the Go operator).
pub const DEFAULT_CPU_LIMIT: &str = "500m";
/// Default memory limit.
pub const DEFAULT_MEMORY_LIMIT: &str = "2G";

/// Operator-wide workload settings. Each can be overridden per gateway by an annotation
/// under `ai-gateway-litellm.agentic-layer.ai/` (see [`names`]).
///
/// This one type carries the settings from the command line to rendering: the flags
/// `litellm-impl run` and `render` share convert into it field by field, so a flag cannot
/// be parsed and then lost on the way.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderSettings {
    /// The LiteLLM container image.
    pub image: String,
    /// `spec.replicas` of the Deployment; `None` leaves it unset so a
    /// HorizontalPodAutoscaler owns it.
    pub replicas: Option<i32>,
    /// CPU and memory requests and limits of the LiteLLM container.
    pub resources: ResourceRequirements,
    /// Whether a gateway may choose its image with the `image` annotation. Off by
    /// default: whoever may create an AiGateway could otherwise run any image with the
    /// namespace's Secrets in its env, through the operator's Deployment rights.
    pub allow_image_annotation: bool,
    /// The pod's and container's security contexts (default: Pod Security `restricted`).
    pub security: WorkloadSecurity,
}

/// The default requests and limits of the LiteLLM container.
fn default_resources() -> ResourceRequirements {
    let list = |cpu: &str, memory: &str| {
        Some(BTreeMap::from([
            ("cpu".to_owned(), Quantity(cpu.to_owned())),
            ("memory".to_owned(), Quantity(memory.to_owned())),
        ]))
    };
    ResourceRequirements {
        requests: list(DEFAULT_CPU_REQUEST, DEFAULT_MEMORY_REQUEST),
        limits: list(DEFAULT_CPU_LIMIT, DEFAULT_MEMORY_LIMIT),
        ..Default::default()
    }
}

impl Default for RenderSettings {
    fn default() -> Self {
        Self {
            image: DEFAULT_IMAGE.to_owned(),
            replicas: Some(1),
            resources: default_resources(),
            allow_image_annotation: false,
            security: Default::default(),
        }
    }
}

/// How the LiteLLM pod runs: the pod- and container-level security contexts. The
/// default passes Pod Security's `restricted` profile with LiteLLM's non-root image;
/// operators who run another image (or need a writable root filesystem, e.g. for
/// LiteLLM's database migrations) replace it in [`RenderSettings`].
///
/// The `litellm-impl` command sets them with `--pod-security-context` and
/// `--container-security-context` (each a JSON object of the Kubernetes type, read with
/// [`parse_security_context`]), which replace the default as a whole.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadSecurity {
    /// `spec.template.spec.securityContext`.
    pub pod: PodSecurityContext,
    /// The LiteLLM container's `securityContext`.
    pub container: SecurityContext,
}

/// Parses a security context from JSON, refusing a field the Kubernetes type does not
/// have (its deserialiser would drop it silently: a misspelt `runAsUsr` would leave the
/// pods running as the image's user).
pub fn parse_security_context<T>(text: &str) -> Result<T, String>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let given: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    if !given.is_object() {
        return Err("expected a JSON object".to_owned());
    }
    let parsed: T = serde_json::from_value(given.clone()).map_err(|e| e.to_string())?;
    let kept = serde_json::to_value(&parsed).map_err(|e| e.to_string())?;
    match unknown_field(&given, &kept, "") {
        Some(path) => Err(format!("unknown field {path}")),
        None => Ok(parsed),
    }
}

/// The first field path in `given` that `kept` (the same value after a round trip
/// through the typed form) lost; explicit nulls are not fields.
fn unknown_field(given: &serde_json::Value, kept: &serde_json::Value, at: &str) -> Option<String> {
    match (given, kept) {
        (serde_json::Value::Object(given), serde_json::Value::Object(kept)) => {
            given.iter().find_map(|(key, value)| {
                let path = format!("{at}.{key}");
                match kept.get(key) {
                    None if !value.is_null() => Some(path),
                    None => None,
                    Some(kept) => unknown_field(value, kept, &path),
                }
            })
        }
        (serde_json::Value::Array(given), serde_json::Value::Array(kept)) => given
            .iter()
            .zip(kept)
            .enumerate()
            .find_map(|(i, (g, k))| unknown_field(g, k, &format!("{at}[{i}]"))),
        _ => None,
    }
}

impl Default for WorkloadSecurity {
    /// Pod Security `restricted`: a fixed non-root user ([`names::NON_ROOT_ID`]), the
    /// runtime's default seccomp profile, every capability dropped, no privilege
    /// escalation, a read-only root filesystem (LiteLLM writes only to the emptyDir
    /// volumes the pod mounts).
    fn default() -> Self {
        let seccomp = || {
            Some(SeccompProfile {
                type_: "RuntimeDefault".to_owned(),
                ..Default::default()
            })
        };
        Self {
            pod: PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(names::NON_ROOT_ID),
                run_as_group: Some(names::NON_ROOT_ID),
                fs_group: Some(names::NON_ROOT_ID),
                seccomp_profile: seccomp(),
                ..Default::default()
            },
            container: SecurityContext {
                allow_privilege_escalation: Some(false),
                capabilities: Some(Capabilities {
                    drop: Some(vec!["ALL".to_owned()]),
                    add: None,
                }),
                read_only_root_filesystem: Some(true),
                run_as_non_root: Some(true),
                seccomp_profile: seccomp(),
                ..Default::default()
            },
        }
    }
}

impl RenderSettings {
    /// These settings with the gateway's annotations applied.
    ///
    /// `kind` and `gateway` (`namespace/name`) are only used in errors. An annotation
    /// with an unusable value is an error naming it.
    pub fn with_annotations(
        &self,
        kind: GatewayKind,
        gateway: &str,
        annotations: Option<&BTreeMap<String, String>>,
    ) -> Result<RenderSettings, RenderError> {
        let mut settings = self.clone();
        let Some(annotations) = annotations else {
            return Ok(settings);
        };
        let invalid = |key: &str, value: &str, expected: &str| RenderError::InvalidAnnotation {
            kind,
            gateway: gateway.to_owned(),
            key: key.to_owned(),
            value: value.to_owned(),
            expected: expected.to_owned(),
        };
        if let Some(image) = annotations.get(names::IMAGE_ANNOTATION) {
            if !self.allow_image_annotation {
                return Err(invalid(
                    names::IMAGE_ANNOTATION,
                    image,
                    "per-gateway images are disabled on this operator: remove the annotation, or start the operator with --allow-gateway-image",
                ));
            }
            if image.trim().is_empty() || image.chars().any(char::is_whitespace) {
                return Err(invalid(
                    names::IMAGE_ANNOTATION,
                    image,
                    concat!(
                        "use an image reference such as ghcr.io/berriai/litellm:v",
                        pinned_litellm_version!()
                    ),
                ));
            }
            settings.image = image.clone();
        }
        if let Some(replicas) = annotations.get(names::REPLICAS_ANNOTATION) {
            settings.replicas = if replicas == names::REPLICAS_EXTERNAL {
                None
            } else {
                match replicas.parse::<i32>() {
                    Ok(n) if n >= 0 => Some(n),
                    _ => {
                        return Err(invalid(
                            names::REPLICAS_ANNOTATION,
                            replicas,
                            "use a non-negative integer, or `hpa` to leave the replica count to an autoscaler",
                        ));
                    }
                }
            };
        }
        for (key, field, resource) in [
            (names::CPU_REQUEST_ANNOTATION, Field::Requests, "cpu"),
            (names::MEMORY_REQUEST_ANNOTATION, Field::Requests, "memory"),
            (names::CPU_LIMIT_ANNOTATION, Field::Limits, "cpu"),
            (names::MEMORY_LIMIT_ANNOTATION, Field::Limits, "memory"),
        ] {
            let Some(value) = annotations.get(key) else {
                continue;
            };
            if !is_quantity(value) {
                return Err(invalid(
                    key,
                    value,
                    "use a Kubernetes quantity such as 250m, 1, 512Mi or 2G",
                ));
            }
            let list = match field {
                Field::Requests => &mut settings.resources.requests,
                Field::Limits => &mut settings.resources.limits,
            };
            list.get_or_insert_with(BTreeMap::new)
                .insert(resource.to_owned(), Quantity(value.clone()));
        }
        // The API server refuses a request above its limit (after the ConfigMap was
        // applied): refuse it here, so the gateway is applied completely or not at all.
        if let Some(above) = request_above_limit(&settings.resources) {
            let (key, limit_key) = if above.resource == "cpu" {
                (names::CPU_REQUEST_ANNOTATION, names::CPU_LIMIT_ANNOTATION)
            } else {
                (
                    names::MEMORY_REQUEST_ANNOTATION,
                    names::MEMORY_LIMIT_ANNOTATION,
                )
            };
            return Err(invalid(
                key,
                &above.request,
                &format!(
                    "a request at most the {} limit {} (or raise {limit_key})",
                    above.resource, above.limit
                ),
            ));
        }
        Ok(settings)
    }
}

/// A request above its limit, which the API server refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestAboveLimit {
    /// `cpu` or `memory`.
    pub(crate) resource: &'static str,
    pub(crate) request: String,
    pub(crate) limit: String,
}

/// The first of CPU and memory whose request in `resources` is above its limit.
pub(crate) fn request_above_limit(
    resources: &k8s_openapi::api::core::v1::ResourceRequirements,
) -> Option<RequestAboveLimit> {
    ["cpu", "memory"].into_iter().find_map(|resource| {
        let get = |list: &Option<BTreeMap<String, Quantity>>| {
            list.as_ref()
                .and_then(|l| l.get(resource))
                .and_then(|q| quantity_value(&q.0).map(|v| (q.0.clone(), v)))
        };
        match (get(&resources.requests), get(&resources.limits)) {
            (Some((request, r)), Some((limit, l))) if r > l => Some(RequestAboveLimit {
                resource,
                request,
                limit,
            }),
            _ => None,
        }
    })
}

enum Field {
    Requests,
    Limits,
}

/// Whether `s` is a Kubernetes quantity usable as a container resource: a non-negative
/// decimal number with an optional binary (`Ki`..`Ei`) or decimal (`m`, `k`, `M`..`E`)
/// suffix or exponent.
pub fn is_quantity(s: &str) -> bool {
    quantity_value(s).is_some()
}

/// The value of a non-negative quantity (`250m` is 0.25, `1Ki` is 1024), or `None`.
fn quantity_value(s: &str) -> Option<f64> {
    // A negative request or limit is refused by the API server (422) after the
    // ConfigMap was applied: refuse it before anything is written.
    let s = s.strip_prefix('+').unwrap_or(s);
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits_end);
    let number_ok = !number.is_empty()
        && number != "."
        && number.matches('.').count() <= 1
        && number.chars().any(|c| c.is_ascii_digit());
    if !number_ok {
        return None;
    }
    let number: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exp => {
            let rest = exp.strip_prefix(['e', 'E'])?;
            let digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
            if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            10f64.powi(rest.parse::<i32>().ok()?)
        }
    };
    Some(number * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_the_go_operator_requests() {
        let settings = RenderSettings::default();
        let requests = settings.resources.requests.unwrap();
        assert_eq!(requests["cpu"].0, "100m");
        assert_eq!(requests["memory"].0, "250M");
        let limits = settings.resources.limits.unwrap();
        assert_eq!(limits["cpu"].0, "500m");
        assert_eq!(limits["memory"].0, "2G");
        assert_eq!(settings.replicas, Some(1));
    }

    #[test]
    fn annotations_override_per_gateway() {
        let a = annotations(&[
            (names::IMAGE_ANNOTATION, "registry.local/litellm:1"),
            (names::REPLICAS_ANNOTATION, "3"),
            (names::CPU_LIMIT_ANNOTATION, "2"),
            (names::MEMORY_REQUEST_ANNOTATION, "1Gi"),
        ]);
        let allowed = RenderSettings {
            allow_image_annotation: true,
            ..RenderSettings::default()
        };
        let s = allowed
            .with_annotations(GatewayKind::AiGateway, "ns/gw", Some(&a))
            .unwrap();
        assert_eq!(s.image, "registry.local/litellm:1");
        let refused = RenderSettings::default()
            .with_annotations(GatewayKind::AiGateway, "ns/gw", Some(&a))
            .unwrap_err();
        assert!(
            refused.to_string().contains("--allow-gateway-image"),
            "{refused}"
        );
        assert_eq!(s.replicas, Some(3));
        assert_eq!(s.resources.limits.as_ref().unwrap()["cpu"].0, "2");
        assert_eq!(s.resources.requests.as_ref().unwrap()["memory"].0, "1Gi");
        assert_eq!(s.resources.requests.as_ref().unwrap()["cpu"].0, "100m");

        let hpa = annotations(&[(names::REPLICAS_ANNOTATION, "hpa")]);
        let s = RenderSettings::default()
            .with_annotations(GatewayKind::AiGateway, "ns/gw", Some(&hpa))
            .unwrap();
        assert_eq!(s.replicas, None);
    }

    #[test]
    fn bad_annotation_values_are_errors_naming_the_key() {
        for (key, value) in [
            (names::REPLICAS_ANNOTATION, "-1"),
            (names::REPLICAS_ANNOTATION, "many"),
            (names::CPU_REQUEST_ANNOTATION, "lots"),
            (names::MEMORY_LIMIT_ANNOTATION, "2 G"),
            (names::IMAGE_ANNOTATION, ""),
        ] {
            let a = annotations(&[(key, value)]);
            let err = RenderSettings {
                allow_image_annotation: true,
                ..RenderSettings::default()
            }
            .with_annotations(GatewayKind::AiGateway, "ns/gw", Some(&a))
            .unwrap_err();
            let text = err.to_string();
            assert!(text.contains(key) && text.contains("ns/gw"), "{text}");
        }
    }

    #[test]
    fn quantities() {
        for ok in [
            "1", "100m", "250M", "2G", "1.5Gi", "0.5", "1e3", "+1", ".5", "5E-2",
        ] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in [
            "", "m", "1.2.3", "1x", "Gi", "1 Gi", "1e", ".", "-1", "-100m",
        ] {
            assert!(!is_quantity(bad), "{bad}");
        }
        assert_eq!(quantity_value("250m"), Some(0.25));
        assert_eq!(quantity_value("2Ki"), Some(2048.0));
        assert_eq!(quantity_value("5E-2"), Some(0.05));
    }

    #[test]
    fn a_request_above_its_limit_is_refused_before_anything_is_applied() {
        let annotations =
            BTreeMap::from([(names::CPU_REQUEST_ANNOTATION.to_owned(), "1".to_owned())]);
        let error = RenderSettings::default()
            .with_annotations(GatewayKind::AiGateway, "ns/gw", Some(&annotations))
            .unwrap_err()
            .to_string();
        assert!(error.contains("at most the cpu limit 500m"), "{error}");
        assert!(!error.contains('\n'), "{error}");
        let both = BTreeMap::from([
            (names::CPU_REQUEST_ANNOTATION.to_owned(), "1".to_owned()),
            (names::CPU_LIMIT_ANNOTATION.to_owned(), "2".to_owned()),
        ]);
        assert!(
            RenderSettings::default()
                .with_annotations(GatewayKind::AiGateway, "ns/gw", Some(&both))
                .is_ok()
        );
    }
}
