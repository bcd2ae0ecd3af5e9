//! Finalizers, owner-reference garbage collection, namespace deletion, Deployment status
//! simulation, direct store access and the stats endpoint contract.

mod common;

use std::time::Duration;

use aigateway_testkit::ApiServer;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn cm(name: &str, ns: &str, extra: serde_json::Value) -> ConfigMap {
    let mut v = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns}, "data": {"k": "v"}});
    json_patch::merge(&mut v, &extra);
    serde_json::from_value(v).unwrap()
}

#[tokio::test]
async fn finalizers_keep_the_object_until_removed() {
    let server = ApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    api.create(
        &PostParams::default(),
        &cm(
            "f",
            "default",
            json!({"metadata": {"finalizers": ["example.com/cleanup"]}}),
        ),
    )
    .await
    .unwrap();
    let res = api.delete("f", &DeleteParams::default()).await.unwrap();
    let left = res.left().expect("object still present");
    assert!(left.metadata.deletion_timestamp.is_some());
    let still = api.get("f").await.unwrap();
    assert!(still.metadata.deletion_timestamp.is_some());
    api.patch(
        "f",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(api.get_opt("f").await.unwrap().is_none());
}

#[tokio::test]
async fn owner_references_cascade_in_background_and_orphan() {
    let server = ApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let owner = api
        .create(&PostParams::default(), &cm("owner", "default", json!({})))
        .await
        .unwrap();
    let uid = owner.metadata.uid.clone().unwrap();
    let oref = json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid,
        "controller": true, "blockOwnerDeletion": true});
    api.create(
        &PostParams::default(),
        &cm(
            "child",
            "default",
            json!({"metadata": {"ownerReferences": [oref.clone()]}}),
        ),
    )
    .await
    .unwrap();
    api.create(
        &PostParams::default(),
        &cm(
            "grandchild-with-finalizer",
            "default",
            json!({"metadata": {"finalizers": ["x/y"], "ownerReferences": [{
                "apiVersion": "v1", "kind": "ConfigMap", "name": "child",
                "uid": api.get("child").await.unwrap().metadata.uid.unwrap()}]}}),
        ),
    )
    .await
    .unwrap();
    api.delete("owner", &DeleteParams::default()).await.unwrap();
    assert!(api.get_opt("child").await.unwrap().is_none());
    let gc = api.get("grandchild-with-finalizer").await.unwrap();
    assert!(gc.metadata.deletion_timestamp.is_some());

    // Orphan: the dependent stays and loses its owner reference.
    let owner2 = api
        .create(&PostParams::default(), &cm("owner2", "default", json!({})))
        .await
        .unwrap();
    let oref2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "owner2",
        "uid": owner2.metadata.uid.unwrap()});
    api.create(
        &PostParams::default(),
        &cm(
            "orphan",
            "default",
            json!({"metadata": {"ownerReferences": [oref2]}}),
        ),
    )
    .await
    .unwrap();
    api.delete("owner2", &DeleteParams::orphan()).await.unwrap();
    let orphan = api.get("orphan").await.unwrap();
    assert!(
        orphan
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
}

#[tokio::test]
async fn an_object_stored_with_only_deleted_owners_is_collected() {
    // A controller that re-applies the children of a gateway deleted a moment ago (its
    // cache has not seen the deletion yet) creates dependents of an absent owner: the
    // garbage collector removes them, and so does the testkit.
    let server = ApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let owner = api
        .create(&PostParams::default(), &cm("gone", "default", json!({})))
        .await
        .unwrap();
    let oref = json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "gone",
        "uid": owner.metadata.uid.clone().unwrap(), "controller": true});
    api.delete("gone", &DeleteParams::default()).await.unwrap();
    let late = cm(
        "late-child",
        "default",
        json!({"metadata": {"ownerReferences": [oref.clone()]}}),
    );
    let created = api.create(&PostParams::default(), &late).await;
    assert!(created.is_ok(), "the create itself succeeds: {created:?}");
    assert!(
        api.get_opt("late-child").await.unwrap().is_none(),
        "collected"
    );

    // A dependent with a live owner besides the deleted one stays.
    let live = api
        .create(&PostParams::default(), &cm("live", "default", json!({})))
        .await
        .unwrap();
    let live_ref = json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "live",
        "uid": live.metadata.uid.unwrap()});
    let shared = cm(
        "shared-child",
        "default",
        json!({"metadata": {"ownerReferences": [oref, live_ref]}}),
    );
    api.create(&PostParams::default(), &shared).await.unwrap();
    assert!(api.get_opt("shared-child").await.unwrap().is_some());
}

#[tokio::test]
async fn foreground_deletion_waits_for_dependents() {
    let server = ApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let owner = api
        .create(
            &PostParams::default(),
            &cm("fg-owner", "default", json!({})),
        )
        .await
        .unwrap();
    let oref = json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "fg-owner",
        "uid": owner.metadata.uid.unwrap(), "blockOwnerDeletion": true});
    api.create(
        &PostParams::default(),
        &cm(
            "fg-child",
            "default",
            json!({"metadata": {"ownerReferences": [oref], "finalizers": ["x/hold"]}}),
        ),
    )
    .await
    .unwrap();
    api.delete("fg-owner", &DeleteParams::foreground())
        .await
        .unwrap();
    // The owner waits, Terminating with the foregroundDeletion finalizer, for its child.
    let waiting = api.get("fg-owner").await.unwrap();
    assert!(waiting.metadata.deletion_timestamp.is_some());
    assert_eq!(waiting.finalizers(), ["foregroundDeletion"]);
    assert!(
        api.get("fg-child")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );
    api.patch(
        "fg-child",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(api.get_opt("fg-child").await.unwrap().is_none());
    assert!(api.get_opt("fg-owner").await.unwrap().is_none());
}

#[tokio::test]
async fn deleting_a_namespace_removes_its_contents() {
    let server = ApiServer::new();
    let nss: Api<Namespace> = Api::all(server.client());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap(),
    )
    .await
    .unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client_in("team"));
    api.create(&PostParams::default(), &cm("a", "team", json!({})))
        .await
        .unwrap();
    api.create(
        &PostParams::default(),
        &cm("held", "team", json!({"metadata": {"finalizers": ["x/y"]}})),
    )
    .await
    .unwrap();
    nss.delete("team", &DeleteParams::default()).await.unwrap();
    assert!(api.get_opt("a").await.unwrap().is_none());
    // A finalizer keeps the namespace Terminating; new content is refused.
    let ns = nss.get("team").await.unwrap();
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Terminating"));
    let err = api
        .create(&PostParams::default(), &cm("new", "team", json!({})))
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 403));
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(nss.get_opt("team").await.unwrap().is_none());
    let err = nss
        .delete("default", &DeleteParams::default())
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 403));
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "i"}]}}}}))
    .unwrap()
}

#[tokio::test]
async fn deployments_become_available() {
    let server = ApiServer::new();
    let api: Api<Deployment> = Api::default_namespaced(server.client());
    api.create(&PostParams::default(), &deployment("d", 3))
        .await
        .unwrap();
    let d = api.get("d").await.unwrap();
    let st = d.status.unwrap();
    assert_eq!(st.observed_generation, Some(1));
    assert_eq!(
        (
            st.replicas,
            st.updated_replicas,
            st.ready_replicas,
            st.available_replicas
        ),
        (Some(3), Some(3), Some(3), Some(3))
    );
    assert!(
        st.conditions
            .unwrap()
            .iter()
            .any(|c| c.type_ == "Available" && c.status == "True")
    );
}

#[tokio::test]
async fn deployment_status_follows_after_the_configured_delay() {
    let server = ApiServer::builder()
        .deployment_ready_delay(Duration::from_millis(200))
        .build();
    let api: Api<Deployment> = Api::default_namespaced(server.client());
    api.create(&PostParams::default(), &deployment("d", 1))
        .await
        .unwrap();
    assert!(api.get("d").await.unwrap().status.is_none());
    common::eventually(|| {
        let api = api.clone();
        async move {
            api.get("d")
                .await
                .unwrap()
                .status
                .and_then(|s| s.available_replicas)
        }
    })
    .await;

    let off = ApiServer::builder().simulate_deployments(false).build();
    let api: Api<Deployment> = Api::default_namespaced(off.client());
    api.create(&PostParams::default(), &deployment("d", 1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(api.get("d").await.unwrap().status.is_none());
}

#[tokio::test]
async fn put_object_scripts_a_deployment_status() {
    let server = ApiServer::new();
    let api: Api<Deployment> = Api::default_namespaced(server.client());
    api.create(&PostParams::default(), &deployment("d", 2))
        .await
        .unwrap();
    let mut d = server
        .get_object("apps/v1", "Deployment", Some("default"), "d")
        .unwrap();
    d["status"] = json!({"observedGeneration": 1, "replicas": 2, "availableReplicas": 0,
        "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}]});
    server.put_object(d).unwrap();
    let st = api.get("d").await.unwrap().status.unwrap();
    assert_eq!(st.available_replicas, Some(0));
    assert_eq!(st.conditions.unwrap()[0].status, "False");
}

#[tokio::test]
async fn direct_store_access_skips_counters() {
    let server = ApiServer::new();
    let stored = server
        .put_object(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "direct", "namespace": "default"}, "data": {"a": "b"}}))
        .unwrap();
    assert!(stored["metadata"]["uid"].is_string());
    let typed: ConfigMap = server.get(Some("default"), "direct").unwrap();
    assert_eq!(typed.data.unwrap()["a"], "b");
    assert_eq!(
        server
            .list_objects("v1", "ConfigMap", Some("default"))
            .len(),
        1
    );
    assert!(
        server
            .delete_object("v1", "ConfigMap", Some("default"), "direct")
            .is_some()
    );
    assert!(
        server
            .get_object("v1", "ConfigMap", Some("default"), "direct")
            .is_none()
    );
    assert_eq!(server.stats().total(), 0);
    assert!(
        server
            .put_object(json!({"apiVersion": "x/v1", "kind": "Nope",
        "metadata": {"name": "n"}}))
            .is_err()
    );
}

#[tokio::test]
async fn stats_over_http_follow_the_contract() {
    let server = ApiServer::new();
    let http = server
        .serve_http("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let api: Api<Deployment> = Api::default_namespaced(server.client());
    for _ in 0..3 {
        api.patch(
            "d",
            &PatchParams::apply("my-operator").force(),
            &Patch::Apply(&deployment("d", 1)),
        )
        .await
        .unwrap();
    }
    let body = raw_get(http.addr(), "/testkit/stats").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let counts = v["counts"].as_array().unwrap();
    assert!(
        counts.contains(&json!({"verb": "patch", "group": "apps",
        "resource": "deployments", "fieldManager": "my-operator", "count": 3})),
        "{v}"
    );
    assert!(v["busyMicrosByVerb"]["patch"].is_u64(), "{v}");
    assert_eq!(v["failuresByCode"], json!({}), "{v}");
    // DELETE /testkit/stats resets the counters (for out-of-process tests).
    let reset = raw_request(http.addr(), "DELETE", "/testkit/stats").await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&reset).unwrap(),
        json!({"counts": [], "failuresByCode": {}, "busyMicrosByVerb": {}})
    );
    assert_eq!(server.stats().total(), 0);
    http.shutdown().await;
}

/// A minimal HTTP/1.1 GET, to check the wire format without a client library.
pub async fn raw_get(addr: std::net::SocketAddr, path: &str) -> String {
    raw_request(addr, "GET", path).await
}

/// A minimal HTTP/1.1 request without a body; returns the response body.
pub async fn raw_request(addr: std::net::SocketAddr, method: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let (_, body) = out.split_once("\r\n\r\n").unwrap();
    body.to_string()
}

#[tokio::test]
async fn event_recorder_publishes_events_k8s_io_events() {
    use futures::StreamExt;
    use k8s_openapi::api::events::v1::Event as K8sEvent;
    use kube::Resource;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let server = ApiServer::new();
    let client = server.client();
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let target = api
        .create(&PostParams::default(), &cm("target", "default", json!({})))
        .await
        .unwrap();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "test-controller".into(),
            instance: None,
        },
    );
    let ev = Event {
        type_: EventType::Normal,
        reason: "Synced".into(),
        note: Some("all good".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    let oref = target.object_ref(&());
    recorder.publish(&ev, &oref).await.unwrap();
    recorder.publish(&ev, &oref).await.unwrap();
    let events: Api<K8sEvent> = Api::default_namespaced(client);
    let list = events.list(&Default::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].reason.as_deref(), Some("Synced"));
    assert_eq!(list.items[0].series.as_ref().map(|s| s.count), Some(2));
    assert_eq!(list.items[0].note.as_deref(), Some("all good"));
    let mut watch = events
        .watch(&kube::api::WatchParams::default().timeout(1), "0")
        .await
        .unwrap()
        .boxed();
    match futures::StreamExt::next(&mut watch).await {
        Some(Ok(kube::api::WatchEvent::Added(e))) => {
            assert_eq!(e.note.as_deref(), Some("all good"));
            assert_eq!(e.regarding.and_then(|r| r.name).as_deref(), Some("target"));
        }
        other => panic!("expected an ADDED event, got {other:?}"),
    }
    // The same event through the core API (what `kubectl describe` lists).
    let core: Api<k8s_openapi::api::core::v1::Event> = Api::default_namespaced(server.client());
    let list = core
        .list(&kube::api::ListParams::default().fields("involvedObject.name=target"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].message.as_deref(), Some("all good"));
    assert_eq!(
        list.items[0].reporting_component.as_deref(),
        Some("test-controller")
    );
}

#[tokio::test]
async fn delete_collection_honours_selectors() {
    let server = ApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    for (name, app) in [("a", "x"), ("b", "x"), ("c", "y")] {
        api.create(
            &PostParams::default(),
            &cm(
                name,
                "default",
                json!({"metadata": {"labels": {"app": app}}}),
            ),
        )
        .await
        .unwrap();
    }
    api.delete_collection(
        &DeleteParams::default(),
        &kube::api::ListParams::default().labels("app=x"),
    )
    .await
    .unwrap();
    let left: Vec<_> = api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| c.metadata.name.unwrap())
        .collect();
    assert_eq!(left, ["c"]);
    assert_eq!(server.stats().verb("deletecollection"), 1);
}
