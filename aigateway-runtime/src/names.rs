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
