//! Services: the API server's defaults (`type`, `sessionAffinity`, port `protocol` and
//! `targetPort`) and an allocated `clusterIP` that stays across updates; a DELETE
//! answers with the Service, as on a cluster.

use serde_json::{Value, json};

use super::Strategy;
use crate::store::State;

/// `v1` Service.
pub(crate) struct Service;

impl Strategy for Service {
    fn prepare(&self, st: &State, old: Option<&Value>, new: &mut Value) {
        let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else {
            return;
        };
        spec.entry("type").or_insert(json!("ClusterIP"));
        spec.entry("sessionAffinity").or_insert(json!("None"));
        if let Some(Value::Array(ports)) = spec.get_mut("ports") {
            for p in ports {
                if let Some(p) = p.as_object_mut() {
                    p.entry("protocol").or_insert(json!("TCP"));
                    if let Some(port) = p.get("port").cloned() {
                        p.entry("targetPort").or_insert(port);
                    }
                }
            }
        }
        let old_ip = old.and_then(|o| o.pointer("/spec/clusterIP")).cloned();
        if spec.get("type").and_then(Value::as_str) != Some("ExternalName") {
            // Unique enough for a test cluster: derived from the next resourceVersion.
            let ip = old_ip.unwrap_or_else(|| {
                json!(format!("10.96.{}.{}", (st.rv / 250) % 250, st.rv % 250 + 2))
            });
            spec.entry("clusterIP").or_insert(ip.clone());
            spec.entry("clusterIPs").or_insert(json!([ip]));
        }
    }

    fn delete_returns_object(&self) -> bool {
        true
    }
}
