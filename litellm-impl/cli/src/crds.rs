//! `litellm-impl crds`: every CRD the operator needs, as multi-document YAML.

use std::io::Write;

/// The CRDs as one YAML stream (`kubectl apply -f -` takes it).
pub fn yaml() -> String {
    aigateway_api::crds::all()
        .iter()
        .map(|crd| aigateway_api::crds::to_yaml(crd).expect("a CRD serialises to YAML"))
        .map(|doc| format!("---\n{doc}"))
        .collect()
}

/// Prints the CRDs.
pub fn run() -> std::io::Result<()> {
    std::io::stdout().lock().write_all(yaml().as_bytes())
}
