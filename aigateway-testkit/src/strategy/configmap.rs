//! ConfigMaps: their data is bounded in size, as on a cluster.

use serde_json::Value;

use super::Strategy;
use crate::schema::{self, FieldError};
use crate::store::State;

/// `v1` ConfigMap.
pub(crate) struct ConfigMap;

impl Strategy for ConfigMap {
    fn validate(&self, _st: &State, _old: Option<&Value>, new: &Value) -> Vec<FieldError> {
        schema::validate_config_map_size(new).into_iter().collect()
    }
}
