//! `minimal-class`: runs the operator against the cluster of the current kubeconfig
//! (`KUBECONFIG`, `~/.kube/config`, or the pod's service account in a cluster).

use std::net::SocketAddr;

use aigateway_runtime::Operator;
use aigateway_runtime::logging::{self, LogFormat};
use aigateway_runtime::operator::termination_signal;
use minimal_class::MinimalClass;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    logging::init(LogFormat::Text);
    // Loopback by default so a local run exposes nothing; in a pod set 0.0.0.0:8081.
    let admin: SocketAddr = std::env::var("ADMIN_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:8081".to_owned())
        .parse()?;
    let client = kube::Client::try_default().await?;
    Operator::new(client)
        .gateway(MinimalClass)
        .admin(admin)
        // The default, spelled out: on SIGTERM in-flight reconciles finish, then we exit.
        .shutdown_on(termination_signal())
        .run()
        .await?;
    Ok(())
}
