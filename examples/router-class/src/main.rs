//! `router-class`: runs the operator against the cluster of the current kubeconfig.

use aigateway_runtime::{Operator, logging};
use router_class::RouterClass;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    logging::init(logging::LogFormat::Text);
    let client = kube::Client::try_default().await?;
    Operator::new(client)
        .gateway(RouterClass)
        .admin("0.0.0.0:8081".parse()?) // /healthz, /readyz, /metrics
        .run() // until SIGTERM or Ctrl-C
        .await?;
    Ok(())
}
