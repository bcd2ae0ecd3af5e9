//! An operator that starts (or takes over leadership) while gateways already exist must
//! reconcile them: restarts, upgrades and fail-overs all look like this.
mod fixtures;

use std::time::Duration;

use aigateway_runtime::Operator;
use fixtures::*;

#[tokio::test]
async fn gateways_that_exist_before_the_operator_starts_are_reconciled() {
    let server = server(Duration::ZERO).await;
    let client = server.client();
    create_class(&client, "minimal", CONTROLLER, true).await;
    for name in ["before-a", "before-b"] {
        create_gateway(&client, &gateway(name, None, &["m"])).await;
    }
    let running = start(Operator::new(client.clone()).gateway(Minimal::default()));
    for name in ["before-a", "before-b"] {
        wait_condition(&client, name, "Ready", "True").await;
    }
    running.stop().await;
}
