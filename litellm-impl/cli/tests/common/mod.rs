//! Helpers shared by the integration tests: manifests and YAML streams here, the real
//! control plane's scenarios in [`cluster`], the documents' commands in [`docs`].
// Each test crate uses a part of these.
#![allow(dead_code)]

pub mod cluster;
pub mod docs;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

/// The workspace's root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The CRDs of the kinds the operator serves, by name: the only ones the Helm how-to
/// upgrades and deletes (the chart's others are agent-runtime-operator's).
pub fn served_crds() -> Vec<String> {
    use clap::ValueEnum;
    litellm_impl_cli::run::ServedGatewayKind::value_variants()
        .iter()
        .flat_map(|kind| kind.served_resources())
        .map(|plural| format!("{plural}.{}", aigateway_api::GROUP))
        // The implementation's own policy kinds, read by the AiGateway controller.
        .chain(
            litellm_impl::policy::crds()
                .into_iter()
                .filter_map(|crd| crd.metadata.name),
        )
        .collect()
}

/// The helm binary: `scripts/helm build` (a no-op once cached), then its path.
pub fn helm_binary() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        let script = workspace().join("scripts/helm");
        let build = Command::new("bash").arg(&script).arg("build").output().unwrap();
        assert!(
            build.status.success(),
            "scripts/helm build failed (helm is needed by these tests; it is built from Go modules):\n{}",
            String::from_utf8_lossy(&build.stderr)
        );
        let env = Command::new("bash").arg(&script).arg("env").output().unwrap();
        let path = PathBuf::from(String::from_utf8(env.stdout).unwrap().trim());
        assert!(path.is_file(), "scripts/helm env names {path:?}, which is missing");
        path
    })
}

/// The documents of a multi-document YAML stream (empty ones dropped), numbers
/// normalised.
pub fn parse_yaml_stream(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap()
        .into_iter()
        .filter(|v| !v.is_null())
        .map(normalize)
        .collect()
}

/// `0.0` and `0` are the same YAML number; JSONSchemaProps keeps bounds as floats.
pub fn normalize(value: Value) -> Value {
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => Value::from(f as i64),
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(normalize).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, normalize(v))).collect())
        }
        other => other,
    }
}
