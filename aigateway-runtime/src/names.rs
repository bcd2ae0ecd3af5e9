//! Label, annotation and finalizer keys the runtime writes: one owner per fact.

/// `app.kubernetes.io/managed-by` on every child: the implementation's field manager.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// `app.kubernetes.io/part-of` on every child.
pub const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";
/// The value of [`PART_OF_LABEL`].
pub const PART_OF_VALUE: &str = "aigateway";
/// The name of the gateway a child belongs to.
pub const GATEWAY_LABEL: &str = "aigateway.agentic-layer.ai/gateway";
/// SHA-256 of the child as last applied; an unchanged child is not applied again.
pub const APPLIED_HASH_ANNOTATION: &str = "aigateway.agentic-layer.ai/applied-hash";
/// Finalizer added to gateways of implementations that override `cleanup`.
pub const FINALIZER: &str = "aigateway.agentic-layer.ai/cleanup";
/// On a gateway or an attached object (a ToolRoute) written by an operator of an earlier
/// release: the full name of the controller whose conditions its status carries. Read,
/// never written: which conditions are ours is now the API server's record of our
/// status writes (the `managedFields` entry of [`status_field_manager`]). Removed where
/// the loop removes its conditions (a gateway that is no longer ours), and by
/// [`release`](crate::release).
pub const CONDITIONS_OWNER_ANNOTATION: &str = "aigateway.agentic-layer.ai/conditions-owner";
/// Finalizer on our classes while gateways use them (Gateway API's
/// `gateway-exists-finalizer` pattern): deleting a class in use leaves its gateways served.
pub const CLASS_FINALIZER: &str = "aigateway.agentic-layer.ai/gateway-exists";
/// On a gateway with attached objects (a ToolGateway), or as the default on its class:
/// which namespaces may attach objects (ToolRoutes) to it, modelled on Gateway API's
/// `allowedRoutes.namespaces`: `Same` (the default: the gateway's own namespace only),
/// `All`, or `{from: Selector, selector: {matchLabels: {...}, matchExpressions: [...]}}`
/// (namespaces whose labels match). The gateway's annotation wins over its class's. See
/// [`AllowedRoutes`](crate::attached::AllowedRoutes).
pub const ALLOWED_ROUTES_ANNOTATION: &str = "aigateway.agentic-layer.ai/allowed-routes";
/// Hash of the full controller name on every child: two implementations whose field
/// managers happen to be equal still never prune each other's children.
pub const CONTROLLER_LABEL: &str = "aigateway.agentic-layer.ai/controller";

/// The value of [`CONTROLLER_LABEL`] for `controller`: 16 hex characters of its SHA-256.
pub fn controller_label_value(controller: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(controller.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The field manager an implementation of `controller` has unless it says otherwise
/// ([`GatewayImplementation::field_manager`](crate::GatewayImplementation::field_manager)):
/// the last path segment of the controller name, at most 63 characters.
pub fn default_field_manager(controller: &str) -> String {
    let last = controller.rsplit('/').next().unwrap_or(controller);
    last.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect()
}

/// The field manager of our status writes on gateways and attached objects: the
/// implementation's field manager and 8 hex characters of the controller name's hash,
/// so that two controllers whose field managers are equal never take each other's
/// conditions for their own. Children keep the plain field manager.
pub fn status_field_manager(field_manager: &str, controller: &str) -> String {
    // managedFields names are at most 128 bytes.
    let mut end = field_manager.len().min(119);
    while !field_manager.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}-{}",
        &field_manager[..end],
        &controller_label_value(controller)[..8]
    )
}

/// The longest annotation value a cache keeps (see [`keep_cached_annotations`]).
pub(crate) const MAX_CACHED_ANNOTATION_BYTES: usize = 4096;

/// Drops the annotations of a cached child, attached or related object that nothing
/// reads: all but those in the `agentic-layer.ai` domains (the runtime's and the
/// implementations' own keys), and any value over [`MAX_CACHED_ANNOTATION_BYTES`]
/// (ours are hashes, names and short settings). Whoever may write such an object (a
/// tenant, for ToolRoutes and ToolServers) could otherwise make every copy of it cost
/// up to 256 KiB of the operator's memory, kubectl's last-applied copy included.
pub(crate) fn keep_cached_annotations(
    meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) {
    let Some(annotations) = meta.annotations.as_mut() else {
        return;
    };
    annotations.retain(|key, value| {
        let ours = key.split_once('/').is_some_and(|(domain, _)| {
            domain == "agentic-layer.ai" || domain.ends_with(".agentic-layer.ai")
        });
        ours && value.len() <= MAX_CACHED_ANNOTATION_BYTES
    });
    if annotations.is_empty() {
        meta.annotations = None;
    }
}

#[cfg(test)]
mod cached_annotation_tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn caches_keep_only_short_annotations_of_our_domains() {
        let mut meta = ObjectMeta {
            annotations: Some(
                [
                    (CONDITIONS_OWNER_ANNOTATION, "example.com/c".to_owned()),
                    (
                        "ai-gateway-litellm.agentic-layer.ai/image",
                        "img".to_owned(),
                    ),
                    (
                        "kubectl.kubernetes.io/last-applied-configuration",
                        "{}".to_owned(),
                    ),
                    ("pad", "p".repeat(10)),
                    ("evil.agentic-layer.ai.example.com/x", "y".to_owned()),
                    (
                        "pad.agentic-layer.ai/x",
                        "p".repeat(MAX_CACHED_ANNOTATION_BYTES + 1),
                    ),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            ),
            ..Default::default()
        };
        keep_cached_annotations(&mut meta);
        let kept: Vec<&str> = meta
            .annotations
            .as_ref()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            kept,
            [
                "ai-gateway-litellm.agentic-layer.ai/image",
                CONDITIONS_OWNER_ANNOTATION,
            ]
        );
        let mut bare = ObjectMeta {
            annotations: Some([("pad".to_owned(), "p".to_owned())].into()),
            ..Default::default()
        };
        keep_cached_annotations(&mut bare);
        assert_eq!(bare.annotations, None);
    }
}
