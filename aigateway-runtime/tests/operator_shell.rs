//! The operator shell: admin endpoints, namespace scope, events on transitions.

mod fixtures;

use std::time::Duration;

use aigateway_runtime::Operator;
use fixtures::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};

#[tokio::test]
async fn admin_endpoints_report_health_readiness_and_metrics() {
    let server = server(Duration::ZERO).await;
    let client = server.client();
    create_class(&client, "minimal", CONTROLLER, true).await;
    let operator = Operator::new(client.clone())
        .gateway(Minimal::default())
        .admin("127.0.0.1:0".parse().unwrap());
    let running = operator.start().await.expect("the operator starts");
    let addr = running
        .admin_addr()
        .expect("the admin server is bound once started");
    assert_eq!(http_get(addr, "/healthz").await.0, 200);
    eventually_within(Duration::from_secs(10), "caches synced", || async {
        running.is_ready().then_some(())
    })
    .await;
    assert_eq!(http_get(addr, "/readyz").await.0, 200);

    create_gateway(&client, &gateway("gw", None, &["m"])).await;
    wait_condition(&client, "gw", "Ready", "True").await;
    let (status, metrics) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("aigateway_reconciles_total"), "{metrics}");
    assert!(
        metrics.contains("aigateway_reconcile_duration_seconds_bucket"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains(r#"aigateway_gateways{kind="AiGateway",condition="Ready",status="True"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_namespace_scoped_operator_ignores_other_namespaces() {
    let server = server(Duration::ZERO).await;
    let client = server.client();
    server
        .apply_manifests("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: elsewhere\n")
        .unwrap();
    create_class(&client, "minimal", CONTROLLER, true).await;
    let _running = start(
        Operator::new(client.clone())
            .gateway(Minimal::default())
            .namespace(NS),
    );
    let mut outside = gateway("outside", None, &["m"]);
    outside.metadata.namespace = Some("elsewhere".into());
    create_gateway(&client, &outside).await;
    create_gateway(&client, &gateway("inside", None, &["m"])).await;
    wait_condition(&client, "inside", "Ready", "True").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        Api::<Deployment>::namespaced(client.clone(), "elsewhere")
            .get_opt("outside")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn transitions_emit_events_and_steady_state_emits_none() {
    let server = server(Duration::from_millis(500)).await;
    let client = server.client();
    create_class(&client, "minimal", CONTROLLER, true).await;
    let _running = start(Operator::new(client.clone()).gateway(Minimal::default()));
    create_gateway(&client, &gateway("gw", None, &["m"])).await;
    wait_condition(&client, "gw", "Ready", "True").await;
    let events = Api::<Event>::namespaced(client.clone(), NS);
    let reasons = eventually_within(Duration::from_secs(10), "a Ready event", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        let reasons: Vec<String> = list
            .items
            .iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("gw"))
            .filter_map(|e| e.reason.clone())
            .collect();
        reasons.iter().any(|r| r == "Ready").then_some(reasons)
    })
    .await;
    // Accepted, ResolvedRefs and Programmed appearing True (and Ready=False while the
    // Deployment rolls out) are the routine way to Ready: one event, for Ready.
    assert_eq!(reasons, ["Ready"]);
    server.reset_stats();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(server.stats().writes_to("events"), 0);
}

/// An event whose note is long in bytes but not in characters (non-ASCII text in a
/// gateway's problem) is still published: the note is cut to the API server's limit of
/// 1,024 bytes at a character boundary. Cut at 1,000 characters, it was 2,000 bytes, the
/// API server refused it (422) and the event was lost without a trace.
#[tokio::test]
async fn a_long_non_ascii_note_is_cut_by_bytes_and_the_event_published() {
    let server = server(Duration::from_millis(100)).await;
    let client = server.client();
    create_class(&client, "minimal", CONTROLLER, true).await;
    let _running = start(Operator::new(client.clone()).gateway(Minimal::default()));
    let mut invalid = gateway("accents", None, &["invalid"]);
    invalid.metadata.annotations = Some(
        [
            (PADDING_ANNOTATION.to_owned(), "1000".to_owned()),
            (PADDING_TEXT_ANNOTATION.to_owned(), "é".to_owned()),
        ]
        .into(),
    );
    create_gateway(&client, &invalid).await;
    wait_condition(&client, "accents", "Accepted", "False").await;
    let events = Api::<Event>::namespaced(client.clone(), NS);
    let note = eventually_within(
        Duration::from_secs(10),
        "an event of the gateway",
        || async {
            let list = events.list(&ListParams::default()).await.ok()?;
            list.items
                .into_iter()
                .find(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("accents"))
                .and_then(|e| e.note)
        },
    )
    .await;
    assert!(note.len() <= 1024, "{} bytes", note.len());
    assert!(
        note.contains("ééé") && note.ends_with("(truncated)"),
        "{note}"
    );
}
