//! Watches: raw watch events, bookmarks, timeouts, selectors, 410 Expired, and the
//! kube-runtime `watcher` and `reflector` on top.

mod common;

use std::time::Duration;

use aigateway_testkit::ApiServer;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;

fn cm(name: &str, app: &str) -> ConfigMap {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": app}}, "data": {"v": "0"}}))
    .unwrap()
}

fn rv(c: &ConfigMap) -> String {
    c.metadata.resource_version.clone().unwrap()
}

#[tokio::test]
async fn raw_watch_events_from_a_resource_version() {
    let server = ApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let first = api
        .create(&PostParams::default(), &cm("a", "x"))
        .await
        .unwrap();
    let stream = api
        .watch(&WatchParams::default().timeout(2), &rv(&first))
        .await
        .unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "1"}})),
    )
    .await
    .unwrap();
    api.create(&PostParams::default(), &cm("b", "y"))
        .await
        .unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    let events: Vec<String> = stream
        .take(3)
        .map(|e| match e.unwrap() {
            WatchEvent::Added(o) => format!("ADDED {}", o.metadata.name.unwrap()),
            WatchEvent::Modified(o) => format!("MODIFIED {}", o.metadata.name.unwrap()),
            WatchEvent::Deleted(o) => format!("DELETED {}", o.metadata.name.unwrap()),
            other => format!("{other:?}"),
        })
        .collect()
        .await;
    assert_eq!(events, ["MODIFIED a", "ADDED b", "DELETED a"]);
}

#[tokio::test]
async fn watch_from_zero_replays_state_and_selectors_filter() {
    let server = ApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    api.create(&PostParams::default(), &cm("a", "x"))
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("b", "y"))
        .await
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default().labels("app=x").timeout(2), "0")
        .await
        .unwrap()
        .boxed();
    match stream.next().await.unwrap().unwrap() {
        WatchEvent::Added(o) => assert_eq!(o.metadata.name.as_deref(), Some("a")),
        other => panic!("unexpected {other:?}"),
    }
    // b moves into the selector: ADDED; a moves out: DELETED.
    api.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "x"}}})),
    )
    .await
    .unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "z"}}})),
    )
    .await
    .unwrap();
    match stream.next().await.unwrap().unwrap() {
        WatchEvent::Added(o) => assert_eq!(o.metadata.name.as_deref(), Some("b")),
        other => panic!("unexpected {other:?}"),
    }
    match stream.next().await.unwrap().unwrap() {
        WatchEvent::Deleted(o) => assert_eq!(o.metadata.name.as_deref(), Some("a")),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn timeout_ends_the_stream_with_a_bookmark() {
    let server = ApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let list = api.list(&Default::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let stream = api
        .watch(&WatchParams::default().timeout(1), &rv)
        .await
        .unwrap();
    // A write to another resource: the bookmark still advances to the global version.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::default_namespaced(server.client());
    let s = secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "s"}})).unwrap(),
        )
        .await
        .unwrap();
    let events: Vec<_> = stream.collect().await;
    assert_eq!(events.len(), 1, "{events:?}");
    match &events[0] {
        Ok(WatchEvent::Bookmark(b)) => {
            assert_eq!(
                Some(&b.metadata.resource_version),
                s.metadata.resource_version.as_ref()
            );
        }
        other => panic!("expected a bookmark, got {other:?}"),
    }
}

#[tokio::test]
async fn metadata_watcher_gets_partial_objects() {
    let server = ApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    api.create(&PostParams::default(), &cm("m", "x"))
        .await
        .unwrap();
    let meta = api.get_metadata("m").await.unwrap();
    assert_eq!(meta.metadata.name.as_deref(), Some("m"));
    let list = api.list_metadata(&Default::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    let meta_api: Api<kube::core::PartialObjectMeta<ConfigMap>> =
        Api::default_namespaced(server.client());
    let mut w = watcher(meta_api, watcher::Config::default()).boxed();
    loop {
        match w.try_next().await.unwrap().unwrap() {
            watcher::Event::InitApply(o) => {
                assert_eq!(o.metadata.labels.unwrap()["app"], "x");
            }
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    api.delete("m", &DeleteParams::default()).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), w.try_next())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(next, Some(watcher::Event::Delete(o)) if o.metadata.name.as_deref() == Some("m"))
    );
}

#[tokio::test]
async fn expired_resource_version_gets_410() {
    let server = ApiServer::builder().watch_history(5).build();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let first = api
        .create(&PostParams::default(), &cm("a", "x"))
        .await
        .unwrap();
    for i in 0..10 {
        api.patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"v": i.to_string()}})),
        )
        .await
        .unwrap();
    }
    let events: Vec<_> = api
        .watch(&WatchParams::default().timeout(1), &rv(&first))
        .await
        .unwrap()
        .collect()
        .await;
    match &events[..] {
        [Ok(WatchEvent::Error(e))] => {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
        }
        other => panic!("expected one 410 error event, got {other:?}"),
    }
}

#[tokio::test]
async fn watcher_and_reflector_follow_changes() {
    let server = ApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    api.create(&PostParams::default(), &cm("pre", "x"))
        .await
        .unwrap();
    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream = reflector(writer, watcher(api.clone(), watcher::Config::default()))
        .applied_objects()
        .boxed();
    let task = tokio::spawn(stream.try_for_each(|_| async { Ok(()) }));
    reader.wait_until_ready().await.unwrap();
    assert_eq!(reader.state().len(), 1);
    api.create(&PostParams::default(), &cm("post", "x"))
        .await
        .unwrap();
    api.delete("pre", &DeleteParams::default()).await.unwrap();
    common::eventually(|| {
        let names: Vec<_> = reader
            .state()
            .iter()
            .map(|c| c.metadata.name.clone().unwrap())
            .collect();
        async move { (names == ["post"]).then_some(()) }
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn streaming_list_initial_events() {
    let server = ApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    api.create(&PostParams::default(), &cm("a", "x"))
        .await
        .unwrap();
    let cfg = watcher::Config::default().streaming_lists();
    let mut events = watcher(api.clone(), cfg).boxed();
    let mut seen = Vec::new();
    while let Some(e) = events.try_next().await.unwrap() {
        match e {
            watcher::Event::InitApply(o) => seen.push(o.metadata.name.unwrap()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(seen, ["a"]);
    api.create(&PostParams::default(), &cm("b", "x"))
        .await
        .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), events.try_next())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(next, Some(watcher::Event::Apply(o)) if o.metadata.name.as_deref() == Some("b"))
    );
}

#[tokio::test]
async fn table_watch_and_table_list_over_the_service() {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let server = ApiServer::new();
    server.install_crd(common::WIDGET_CRD).await.unwrap();
    let widgets: Api<common::Widget> = Api::default_namespaced(server.client());
    widgets
        .create(&PostParams::default(), &common::widget("t", 8443))
        .await
        .unwrap();
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let req = |uri: &str| {
        http::Request::get(uri)
            .header("Accept", accept)
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let resp = server
        .service()
        .oneshot(req("/apis/example.com/v1/namespaces/default/widgets"))
        .await
        .unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let table: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(table["kind"], "Table");
    let cols: Vec<_> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(cols, ["Name", "Port", "Ready", "Age"]);
    assert_eq!(table["rows"][0]["cells"][1], 8443);
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");

    let resp = server
        .service()
        .oneshot(req(
            "/apis/example.com/v1/namespaces/default/widgets?watch=true&resourceVersion=0&timeoutSeconds=1",
        ))
        .await
        .unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let first: serde_json::Value =
        serde_json::from_slice(body.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(first["type"], "ADDED");
    assert_eq!(first["object"]["kind"], "Table");
    assert_eq!(first["object"]["rows"][0]["cells"][0], "t");
}
