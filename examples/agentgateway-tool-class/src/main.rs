//! `agentgateway-tool-class`: runs the operator against the cluster of the current kubeconfig.

use agentgateway_tool_class::AgentgatewayToolClass;
use aigateway_runtime::{Operator, logging};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    logging::init(logging::LogFormat::Text);
    let client = kube::Client::try_default().await?;
    Operator::new(client)
        .gateway(AgentgatewayToolClass)
        .admin("0.0.0.0:8081".parse()?) // /healthz, /readyz, /metrics
        .run() // until SIGTERM or Ctrl-C
        .await?;
    Ok(())
}
