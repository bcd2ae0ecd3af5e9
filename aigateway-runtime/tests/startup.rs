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

/// A restarted operator (an upgrade, a new leader, a crash) finds its gateways' children
/// in the lists it starts with. A real API server sends the items of a list of a built-in
/// kind without apiVersion and kind (the testkit too): the operator must still tell its
/// Deployments apart, so the gateways stay Ready and nothing is written.
#[tokio::test]
async fn a_restarted_operator_writes_nothing_for_gateways_that_are_up_to_date() {
    let server = server(Duration::ZERO).await;
    let client = server.client();
    create_class(&client, "minimal", CONTROLLER, true).await;
    let names = ["steady-a", "steady-b"];
    for name in names {
        create_gateway(&client, &gateway(name, None, &["m"])).await;
    }
    let first = start(Operator::new(client.clone()).gateway(Minimal::default()));
    for name in names {
        wait_condition(&client, name, "Ready", "True").await;
    }
    first.stop().await;

    let before = server.requests().len();
    let operator = Operator::new(client.clone()).gateway(Minimal::default());
    let metrics = operator.metrics();
    let restarted = start(operator);
    // Its first pass over both gateways, then a quiet second with nothing in flight.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let done =
            metrics.reconciles() >= names.len() as u64 && metrics.reconciles_in_flight() == 0;
        if done {
            let seen = metrics.reconciles();
            tokio::time::sleep(Duration::from_secs(1)).await;
            if metrics.reconciles() == seen && metrics.reconciles_in_flight() == 0 {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the restarted operator never settled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let writes: Vec<String> = server.requests()[before..]
        .iter()
        .filter(|r| ["create", "update", "patch", "delete"].contains(&r.verb.as_str()))
        .map(|r| {
            format!(
                "{} {} {}/{} {}",
                r.verb, r.resource, r.namespace, r.name, r.subresource
            )
        })
        .collect();
    assert_eq!(writes, Vec::<String>::new(), "the restart wrote");
    for name in names {
        wait_condition(&client, name, "Ready", "True").await;
    }
    restarted.stop().await;
}
