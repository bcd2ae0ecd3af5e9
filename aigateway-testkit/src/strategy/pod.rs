//! Pods are only stored (nothing runs them); what is theirs is the answer to a DELETE.

use super::Strategy;

/// `v1` Pod.
pub(crate) struct Pod;

impl Strategy for Pod {
    fn delete_returns_object(&self) -> bool {
        true
    }
}
