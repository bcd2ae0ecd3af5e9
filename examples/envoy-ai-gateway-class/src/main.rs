//! `envoy-ai-gateway-class`: runs the operator against the cluster of the current
//! kubeconfig. Settings come from the environment:
//!
//! - `ENVOY_GATEWAY`: the Gateway routes attach to, `<namespace>/<name>` or `<name>`
//!   (default `default/envoy-ai-gateway-basic`, the Gateway of Envoy AI Gateway's
//!   getting-started guide);
//! - `GATEWAY_URL`: the URL clients reach that Gateway at, published in `status.url`;
//! - `ADMIN_ADDR`: where `/healthz`, `/readyz` and `/metrics` listen (default
//!   `127.0.0.1:8081`).

use std::net::SocketAddr;

use aigateway_runtime::Operator;
use aigateway_runtime::logging::{self, LogFormat};
use envoy_ai_gateway_class::{EnvoyAiGatewayClass, ParentGateway};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    logging::init(LogFormat::Text);
    let parent = std::env::var("ENVOY_GATEWAY")
        .unwrap_or_else(|_| "default/envoy-ai-gateway-basic".to_owned());
    let parent = match parent.split_once('/') {
        Some((namespace, name)) => ParentGateway {
            name: name.to_owned(),
            namespace: Some(namespace.to_owned()),
        },
        None => ParentGateway {
            name: parent,
            namespace: None,
        },
    };
    let mut implementation = EnvoyAiGatewayClass::new(parent);
    if let Ok(url) = std::env::var("GATEWAY_URL") {
        implementation = implementation.with_url(url);
    }
    let admin: SocketAddr = std::env::var("ADMIN_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:8081".to_owned())
        .parse()?;
    let client = kube::Client::try_default().await?;
    // Stops gracefully on SIGTERM or Ctrl-C.
    Operator::new(client)
        .gateway(implementation)
        .admin(admin)
        .run()
        .await?;
    Ok(())
}
