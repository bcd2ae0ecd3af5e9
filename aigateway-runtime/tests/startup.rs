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

/// A restarted operator judges readiness from the Deployments it listed. The items of a
/// list carry no kind (on a real API server as on the testkit) and readiness looked for
/// typed Deployments only: every converged gateway turned Ready=False ("no Deployment
/// exists yet") after a restart, a fail-over or a relist, and stayed so until its
/// Deployment next changed. Found by the fault tier on the real control plane.
#[tokio::test]
async fn a_restarted_operator_keeps_converged_gateways_ready_and_writes_nothing() {
    restart_converged(false).await;
}

/// Gateways an earlier release served carry its conditions-owner annotation. The
/// upgraded operator reads it and leaves it: tidying it away would cost one write per
/// gateway at the first restart, for nothing a user sees.
#[tokio::test]
async fn an_upgraded_operator_leaves_the_annotation_of_an_earlier_release_and_writes_nothing() {
    restart_converged(true).await;
}

/// Converges three gateways, stops the operator (marking them as an earlier release did,
/// when `legacy`), starts it again: it must write nothing.
async fn restart_converged(legacy: bool) {
    use aigateway_runtime::testing::RunningOperator;
    use kube::api::{Api, Patch, PatchParams};
    const OWNER: &str = "aigateway.agentic-layer.ai/conditions-owner";
    let server = server(Duration::ZERO).await;
    let client = server.client();
    create_class(&client, "minimal", CONTROLLER, true).await;
    let names = ["kept-a", "kept-b", "kept-c"];
    for name in names {
        create_gateway(&client, &gateway(name, None, &["m"])).await;
    }
    let first = RunningOperator::spawn(Operator::new(client.clone()).gateway(Minimal::default()));
    for name in names {
        wait_condition(&client, name, "Ready", "True").await;
    }
    first.wait_idle(&server).await;
    first.stop().await;
    let gateways = Api::<aigateway_api::AiGateway>::namespaced(client.clone(), NS);
    if legacy {
        for name in names {
            let mark = serde_json::json!({"metadata": {"annotations": {OWNER: CONTROLLER}}});
            gateways
                .patch(name, &PatchParams::default(), &Patch::Merge(&mark))
                .await
                .unwrap();
        }
    }

    let writes = server.stats().writes();
    let second = RunningOperator::spawn(Operator::new(client.clone()).gateway(Minimal::default()));
    aigateway_runtime::testing::eventually(
        "the restarted operator to reconcile every gateway",
        || async { (second.reconciles() >= names.len() as u64).then_some(()) },
    )
    .await;
    second.wait_idle(&server).await;
    for name in names {
        let ready = condition(&client, name, "Ready").await;
        assert_eq!(ready.map(|c| c.0), Some("True".to_owned()), "{name}");
    }
    assert_eq!(
        server.stats().writes(),
        writes,
        "the restarted operator wrote to converged gateways"
    );
    for name in names {
        let annotation = gateways.get(name).await.unwrap().metadata.annotations;
        let annotation = annotation.as_ref().and_then(|a| a.get(OWNER));
        assert_eq!(annotation.is_some(), legacy, "{name}");
    }
    second.stop().await;
}
