//! Every fault-injection hook: fail next N, fail a fraction, latency, cut watches, and
//! compacted history forcing a relist.

use std::time::{Duration, Instant};

use aigateway_testkit::{ApiServer, RequestMatch};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchParams};
use kube::runtime::watcher;
use serde_json::json;

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name}}))
    .unwrap()
}

fn code(e: kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("expected API error, got {other:?}"),
    }
}

#[tokio::test]
async fn fail_next_n_matching_requests() {
    let server = ApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    server.faults().fail_next(
        2,
        RequestMatch::any().verb("create").resource("configmaps"),
        503,
    );
    // A non-matching request is unaffected.
    api.list(&ListParams::default()).await.unwrap();
    assert_eq!(
        code(
            api.create(&PostParams::default(), &cm("a"))
                .await
                .unwrap_err()
        ),
        503
    );
    let e = api
        .create(&PostParams::default(), &cm("a"))
        .await
        .unwrap_err();
    match e {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (503, "ServiceUnavailable"));
        }
        other => panic!("{other:?}"),
    }
    api.create(&PostParams::default(), &cm("a")).await.unwrap();
    // Failed requests are counted and logged too.
    assert_eq!(server.stats().count("create", "configmaps"), 3);
    let statuses: Vec<u16> = server
        .requests()
        .iter()
        .filter(|r| r.verb == "create")
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [503, 503, 201]);
}

#[tokio::test]
async fn fail_a_fraction_then_clear() {
    let server = ApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    server
        .faults()
        .fail_fraction(1.0, RequestMatch::any().verb("get"), 500);
    assert_eq!(code(api.get("x").await.unwrap_err()), 500);
    server.faults().clear();
    assert_eq!(code(api.get("x").await.unwrap_err()), 404);

    server
        .faults()
        .fail_fraction(0.5, RequestMatch::any().verb("get"), 500);
    let mut failed = 0;
    for _ in 0..200 {
        if code(api.get("x").await.unwrap_err()) == 500 {
            failed += 1;
        }
    }
    assert!((40..=160).contains(&failed), "{failed} of 200 failed");
    server.faults().fail_fraction(0.0, RequestMatch::any(), 500);
}

#[tokio::test]
async fn latency_is_added_to_matching_requests() {
    let server = ApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    server.faults().add_latency(
        RequestMatch::any().verb("list").namespace("default"),
        Duration::from_millis(300),
    );
    let start = Instant::now();
    api.list(&ListParams::default()).await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn cut_watches_ends_open_streams() {
    let server = ApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let list = api.list(&ListParams::default()).await.unwrap();
    let mut stream = api
        .watch(
            &WatchParams::default().timeout(60),
            &list.metadata.resource_version.unwrap(),
        )
        .await
        .unwrap()
        .boxed();
    server.faults().cut_watches();
    let next = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("stream should end promptly");
    assert!(next.is_none(), "{next:?}");
}

#[tokio::test]
async fn compacted_history_forces_410_and_a_relist() {
    let server = ApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let created = api.create(&PostParams::default(), &cm("a")).await.unwrap();
    let old_rv = created.metadata.resource_version.unwrap();
    server.faults().compact_history();
    let events: Vec<_> = api
        .watch(&WatchParams::default().timeout(1), &old_rv)
        .await
        .unwrap()
        .collect()
        .await;
    assert!(
        matches!(&events[..], [Ok(kube::api::WatchEvent::Error(e))] if e.code == 410),
        "{events:?}"
    );

    // A running watcher relists after its stream is cut and its resourceVersion expired.
    let mut w = watcher(api.clone(), watcher::Config::default()).boxed();
    let mut inits = 0;
    loop {
        if let watcher::Event::InitDone = w.try_next().await.unwrap().unwrap() {
            inits += 1;
            break;
        }
    }
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"x": "1"}})),
    )
    .await
    .unwrap();
    server.faults().expire_watches();
    let deadline = Instant::now() + Duration::from_secs(10);
    while inits < 2 && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), w.next()).await {
            Ok(Some(Ok(watcher::Event::InitDone))) => inits += 1,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    assert_eq!(inits, 2, "the watcher should relist after a 410");
    assert!(server.stats().count("list", "configmaps") >= 2);
}

#[tokio::test]
async fn latency_model_delays_reads_and_writes_by_verb() {
    let server = ApiServer::builder()
        .request_latency(Duration::from_millis(40), Duration::from_millis(120))
        .build();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());

    let start = Instant::now();
    api.create(&PostParams::default(), &cm("slow"))
        .await
        .unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(120),
        "a create took {:?}, less than the write latency",
        start.elapsed()
    );
    let start = Instant::now();
    api.patch(
        "slow",
        &PatchParams::apply("op"),
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}})),
    )
    .await
    .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(120));
    let start = Instant::now();
    api.get("slow").await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(40));
    let start = Instant::now();
    api.list(&ListParams::default()).await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(40));
    // The modelled delay is not time the server spent: both are reported apart.
    let stats = server.stats();
    assert_eq!(stats.count("create", "configmaps"), 1);
    assert!(stats.busy_micros.contains_key("patch"));
}

#[tokio::test]
async fn conflicts_are_counted_by_status_code_and_manager() {
    let server = ApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let created = api.create(&PostParams::default(), &cm("c")).await.unwrap();
    let stale_rv = created.metadata.resource_version.clone().unwrap();
    api.patch(
        "c",
        &PatchParams::apply("op"),
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "1"}})),
    )
    .await
    .unwrap();
    // A merge patch guarded by the old resourceVersion: 409, as an operator's status
    // write based on a stale cache gets.
    let err = api
        .patch(
            "c",
            &PatchParams {
                field_manager: Some("op".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"metadata": {"resourceVersion": stale_rv}, "data": {"a": "2"}})),
        )
        .await
        .unwrap_err();
    assert_eq!(code(err), 409);
    let stats = server.stats();
    assert_eq!(stats.failed_by_manager(409, "op"), 1);
    assert_eq!(stats.failed_by_manager(409, "someone-else"), 0);
    assert_eq!(stats.writes_by_manager("op"), 2);
    server.reset_stats();
    assert_eq!(server.stats().failed_by_manager(409, "op"), 0);
}
