//! `litellm-impl crds`: every CRD the operator needs, as multi-document YAML.

use std::io::Write;

/// The CRDs as one YAML stream (`kubectl apply -f -` takes it): upstream's, then the
/// LiteLLM implementation's policy kinds.
pub fn yaml() -> String {
    all()
        .iter()
        .map(|crd| aigateway_api::crds::to_yaml(crd).expect("a CRD serialises to YAML"))
        .map(|doc| format!("---\n{doc}"))
        .collect()
}

/// Prints the CRDs.
pub fn run() -> std::io::Result<()> {
    std::io::stdout().lock().write_all(yaml().as_bytes())
}

/// Every CRD the operator serves or reads: upstream's `runtime.agentic-layer.ai` kinds and
/// the LiteLLM implementation's own policy kinds
/// ([`litellm_impl::policy::crds`]).
pub fn all()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    let mut crds = aigateway_api::crds::all();
    crds.extend(litellm_impl::policy::crds());
    crds
}
