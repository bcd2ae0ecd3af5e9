//! Leader safety and honest health.

mod fixtures;

use std::collections::BTreeSet;
use std::time::Duration;

use aigateway_runtime::{LeaderElection, Operator};
use aigateway_testkit::{RequestMatch, WRITE_VERBS};
use fixtures::*;
use kube::Client;
use kube::api::Api;

const SECOND: Duration = Duration::from_secs(1);
const LEASE_SECONDS: u64 = 3;

async fn lease_holder(client: &Client) -> Option<String> {
    let lease = Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(client.clone(), NS)
        .get_opt("minimal")
        .await
        .ok()??;
    lease.spec?.holder_identity
}

fn instance(client: &Client, id: &'static str) -> Operator {
    Operator::new(client.clone())
        .gateway(Minimal {
            field_manager: Some(id),
            ..Default::default()
        })
        .leader_election(
            LeaderElection::new("minimal", NS)
                .identity(id)
                .timing(LEASE_SECONDS, 1),
        )
}

/// Whether the leadership gauge is 1.
fn leads(metrics: &aigateway_runtime::operator::Metrics) -> bool {
    metrics.encode().lines().any(|l| l == "aigateway_leader 1")
}

/// Field managers that wrote anything but the Lease since the last stats reset.
fn writers(server: &aigateway_testkit::ApiServer) -> BTreeSet<String> {
    server
        .requests()
        .into_iter()
        .filter(|r| {
            WRITE_VERBS.contains(&r.verb.as_str())
                && r.resource != "leases"
                && !r.field_manager.is_empty()
        })
        // An instance's status writes go under its status field manager
        // (`<field manager>-<8 hex>`): one writer.
        .map(|r| match r.field_manager.rsplit_once('-') {
            Some((instance, hash)) if hash.len() == 8 => instance.to_owned(),
            _ => r.field_manager,
        })
        .collect()
}

#[tokio::test]
async fn a_leader_that_cannot_renew_stops_writing_within_the_lease_duration() {
    let server = server(Duration::ZERO).await;
    let client = server.client();
    create_class(&client, "minimal", CONTROLLER, true).await;
    let first = instance(&client, "first");
    let first_metrics = first.metrics();
    let _first = start(first);
    eventually_within(15 * SECOND, "first holds the lease", || async {
        (lease_holder(&client).await.as_deref() == Some("first")).then_some(())
    })
    .await;
    let second = instance(&client, "second");
    let second_metrics = second.metrics();
    let _second = start(second);
    create_gateway(&client, &gateway("gw", None, &["m"])).await;
    wait_condition(&client, "gw", "Ready", "True").await;
    assert!(leads(&first_metrics));
    assert!(!leads(&second_metrics));

    // From now on no Lease write succeeds: nobody can renew or take over.
    for verb in ["create", "update", "patch"] {
        server
            .faults()
            .fail_fraction(1.0, RequestMatch::any().verb(verb).resource("leases"), 503);
    }
    tokio::time::sleep(Duration::from_secs(LEASE_SECONDS) + SECOND / 2).await;
    assert!(
        !leads(&first_metrics),
        "the leader still counts itself as leading after the lease duration"
    );
    server.reset_stats();
    create_gateway(&client, &gateway("late", None, &["m"])).await;
    tokio::time::sleep(2 * SECOND).await;
    assert_eq!(
        writers(&server),
        BTreeSet::new(),
        "an instance kept writing without a renewed lease"
    );

    // Renewals work again: exactly one instance leads and serves the new gateway.
    server.faults().clear();
    wait_condition(&client, "late", "Ready", "True").await;
    let writing = writers(&server);
    assert_eq!(writing.len(), 1, "writers: {writing:?}");
    // The lease client's takeover of an expired lease is not guarded by a precondition,
    // so both may briefly believe they lead; the loser learns it at its next renewal.
    eventually_within(
        Duration::from_secs(2 * LEASE_SECONDS),
        "exactly one leader",
        || async {
            let leading = [&first_metrics, &second_metrics]
                .iter()
                .filter(|m| leads(m))
                .count();
            (leading == 1).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn readyz_fails_while_a_related_list_is_forbidden() {
    let server = server(Duration::ZERO).await;
    let client = server.client();
    create_class(&client, "minimal", CONTROLLER, true).await;
    let operator =
        operator(client.clone(), Minimal::default()).admin("127.0.0.1:0".parse().unwrap());
    let _running = operator.start().await.expect("the operator starts");
    let addr = _running
        .admin_addr()
        .expect("the admin server is bound once started");
    eventually_within(10 * SECOND, "ready", || async {
        (http_get(addr, "/readyz").await.0 == 200).then_some(())
    })
    .await;

    // RBAC loses `list configmaps`; every watch must relist.
    server
        .faults()
        .fail_fraction(1.0, RequestMatch::any().resource("configmaps"), 403);
    server.faults().expire_watches();
    let body = eventually_within(10 * SECOND, "/readyz fails", || async {
        let (status, body) = http_get(addr, "/readyz").await;
        (status == 503).then_some(body)
    })
    .await;
    assert!(
        body.contains("ConfigMap cache cannot list or watch") && body.contains("403 Forbidden"),
        "{body}"
    );
    assert!(!body.contains("Status {"), "no debug dump: {body}");

    server.faults().clear();
    // Resumed watches report success with their next event.
    create_gateway(&client, &gateway("after", None, &["m"])).await;
    let settings: k8s_openapi::api::core::v1::ConfigMap =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "unrelated"}})).unwrap();
    Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), NS)
        .create(&Default::default(), &settings)
        .await
        .unwrap();
    // The watch retries with backoff (capped at 30 s), so recovery may take that long.
    let deadline = tokio::time::Instant::now() + 45 * SECOND;
    loop {
        let (status, body) = http_get(addr, "/readyz").await;
        if status == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz does not recover: {body}"
        );
        tokio::time::sleep(SECOND / 10).await;
    }
}
