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
