//! kube-rs `Api` against the in-process server: CRUD, every patch type, conflicts,
//! CRDs, validation, defaulting, pruning, status subresource, generation, selectors.

mod common;

use aigateway_testkit::ApiServer;
use common::{WIDGET_CRD, Widget, widget};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, ValidationDirective,
};
use serde_json::{Value, json};

fn cm(name: &str, data: Value) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": name}},
        "data": data,
    }))
    .unwrap()
}

fn api_code(e: kube::Error) -> (u16, String, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone(), s.message.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn configmap_crud_and_errors() {
    let server = ApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let created = api
        .create(&PostParams::default(), &cm("a", json!({"k": "v"})))
        .await
        .unwrap();
    let meta = &created.metadata;
    assert!(meta.uid.is_some());
    assert!(meta.creation_timestamp.is_some());
    assert_eq!(meta.namespace.as_deref(), Some("default"));
    let rv1: u64 = meta.resource_version.as_ref().unwrap().parse().unwrap();

    let (code, reason, _) = api_code(
        api.create(&PostParams::default(), &cm("a", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));

    let mut got = api.get("a").await.unwrap();
    got.data.as_mut().unwrap().insert("k".into(), "v2".into());
    let replaced = api
        .replace("a", &PostParams::default(), &got)
        .await
        .unwrap();
    let rv2: u64 = replaced
        .metadata
        .resource_version
        .as_ref()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv2 > rv1, "resourceVersion must grow: {rv1} -> {rv2}");

    // Stale resourceVersion: 409 Conflict.
    let (code, reason, _) = api_code(
        api.replace("a", &PostParams::default(), &got)
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));

    api.delete("a", &DeleteParams::default()).await.unwrap();
    let (code, reason, msg) = api_code(api.get("a").await.unwrap_err());
    assert_eq!((code, reason.as_str()), (404, "NotFound"));
    assert_eq!(msg, "configmaps \"a\" not found");
    assert!(api.get_opt("a").await.unwrap().is_none());

    // Unknown namespace.
    let other: Api<ConfigMap> = Api::namespaced(server.client(), "nope");
    let (code, _, _) = api_code(
        other
            .create(&PostParams::default(), &cm("x", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 404);
}

#[tokio::test]
async fn list_selectors_and_pagination() {
    let server = ApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    for i in 0..7 {
        let mut c = cm(&format!("c{i}"), json!({}));
        c.metadata.labels.as_mut().unwrap().insert(
            "parity".into(),
            if i % 2 == 0 { "even" } else { "odd" }.into(),
        );
        api.create(&PostParams::default(), &c).await.unwrap();
    }
    let names = |l: kube::core::ObjectList<ConfigMap>| {
        l.items
            .into_iter()
            .map(|c| c.metadata.name.unwrap())
            .collect::<Vec<_>>()
    };
    let even = api
        .list(&ListParams::default().labels("parity=even"))
        .await
        .unwrap();
    assert_eq!(names(even), ["c0", "c2", "c4", "c6"]);
    let some = api
        .list(&ListParams::default().labels("app in (c1,c2),parity!=even"))
        .await
        .unwrap();
    assert_eq!(names(some), ["c1"]);
    let none = api
        .list(&ListParams::default().labels("!parity"))
        .await
        .unwrap();
    assert!(none.items.is_empty());
    let by_name = api
        .list(&ListParams::default().fields("metadata.name=c3"))
        .await
        .unwrap();
    assert_eq!(names(by_name), ["c3"]);

    let mut all = Vec::new();
    let mut lp = ListParams::default().limit(3);
    let mut pages = 0;
    loop {
        let page = api.list(&lp).await.unwrap();
        pages += 1;
        let cont = page.metadata.continue_.clone();
        all.extend(names(page));
        match cont {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(all.len(), 7);

    // Cluster-wide list across namespaces.
    let all_ns: Api<ConfigMap> = Api::all(server.client());
    assert_eq!(
        all_ns
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        7
    );
}

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [
                    {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}]},
                    {"name": "sidecar", "image": "side:1"}
                ]}
            }
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn every_patch_type() {
    let server = ApiServer::new();
    let api: Api<Deployment> = Api::default_namespaced(server.client());
    api.create(&PostParams::default(), &deployment("web"))
        .await
        .unwrap();

    // JSON merge patch.
    let p = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "a"}}})),
        )
        .await
        .unwrap();
    assert_eq!(p.metadata.labels.unwrap()["team"], "a");

    // Strategic merge: containers and env merged by name, $patch: delete.
    let p = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "env": [{"name": "B", "value": "2"}]},
                {"name": "sidecar", "$patch": "delete"}
            ]}}}})),
        )
        .await
        .unwrap();
    let containers = p.spec.unwrap().template.spec.unwrap().containers;
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0].image.as_deref(), Some("app:1"));
    let env: Vec<_> = containers[0]
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| e.name.clone())
        .collect();
    assert_eq!(env, ["A", "B"]);

    // JSON patch with a passing and a failing `test`.
    let ok: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/spec/replicas", "value": 2},
        {"op": "replace", "path": "/spec/replicas", "value": 3}
    ]))
    .unwrap();
    let p = api
        .patch("web", &PatchParams::default(), &Patch::Json::<()>(ok))
        .await
        .unwrap();
    assert_eq!(p.spec.unwrap().replicas, Some(3));
    let bad: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/spec/replicas", "value": 99},
        {"op": "replace", "path": "/spec/replicas", "value": 5}
    ]))
    .unwrap();
    let (code, _, _) = api_code(
        api.patch("web", &PatchParams::default(), &Patch::Json::<()>(bad))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 422);

    // Server-side apply: creates when absent, records managedFields.
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let applied = cms
        .patch(
            "ssa",
            &PatchParams::apply("alice"),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "ssa"}, "data": {"a": "1", "b": "1"}})),
        )
        .await
        .unwrap();
    let mf = applied.metadata.managed_fields.unwrap();
    assert_eq!(mf.len(), 1);
    assert_eq!(mf[0].manager.as_deref(), Some("alice"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));

    // Another manager changing alice's field: 409 naming the field and manager.
    let (code, reason, msg) = api_code(
        cms.patch(
            "ssa",
            &PatchParams::apply("bob"),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "ssa"}, "data": {"a": "2"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert!(
        msg.contains("\"alice\"") && msg.contains(".data.a"),
        "{msg}"
    );

    // Forced: bob takes .data.a.
    let forced = cms
        .patch(
            "ssa",
            &PatchParams::apply("bob").force(),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "ssa"}, "data": {"a": "2"}})),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.as_ref().unwrap()["a"], "2");
    assert_eq!(forced.metadata.managed_fields.unwrap().len(), 2);

    // Alice drops .data.b from her manifest: it is removed (pruning by apply).
    let pruned = cms
        .patch(
            "ssa",
            &PatchParams::apply("alice").force(),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "ssa"}, "data": {}})),
        )
        .await
        .unwrap();
    assert_eq!(
        pruned.data.unwrap().into_iter().collect::<Vec<_>>(),
        vec![("a".to_string(), "2".to_string())]
    );

    // Apply without a field manager is refused (422 Invalid, as on a real API server).
    let (code, _, _) = api_code(
        cms.patch(
            "ssa",
            &PatchParams::default(),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "ssa"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(code, 422);

    // A patch carrying a stale resourceVersion: 409.
    let (code, _, _) = api_code(
        cms.patch(
            "ssa",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"resourceVersion": "1"}, "data": {"x": "y"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(code, 409);
}

#[tokio::test]
async fn unchanged_writes_are_silent() {
    let server = ApiServer::new();
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "same"}, "data": {"a": "1"}});
    let first = cms
        .patch("same", &PatchParams::apply("op"), &Patch::Apply(&body))
        .await
        .unwrap();
    let again = cms
        .patch("same", &PatchParams::apply("op"), &Patch::Apply(&body))
        .await
        .unwrap();
    assert_eq!(
        first.metadata.resource_version,
        again.metadata.resource_version
    );
    let stats = server.stats();
    assert_eq!(stats.writes_by_manager("op"), 2);
    assert_eq!(stats.count("patch", "configmaps"), 2);
}

#[tokio::test]
async fn dry_run_does_not_store() {
    let server = ApiServer::new();
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let out = cms
        .create(
            &PostParams {
                dry_run: true,
                field_manager: None,
            },
            &cm("dry", json!({})),
        )
        .await
        .unwrap();
    assert_eq!(out.metadata.name.as_deref(), Some("dry"));
    assert!(cms.get_opt("dry").await.unwrap().is_none());
    let out = cms
        .patch(
            "dry",
            &PatchParams::apply("op").dry_run(),
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dry"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(out.metadata.name.as_deref(), Some("dry"));
    assert!(cms.get_opt("dry").await.unwrap().is_none());
    assert!(server.requests().iter().any(|r| r.dry_run));
}

#[tokio::test]
async fn crd_created_through_the_api_is_established_and_served() {
    let server = ApiServer::new();
    let crds: Api<CustomResourceDefinition> = Api::all(server.client());
    let crd: CustomResourceDefinition = serde_saphyr::from_str(WIDGET_CRD).unwrap();
    let created = crds.create(&PostParams::default(), &crd).await.unwrap();
    let conds = created.status.unwrap().conditions.unwrap();
    for ty in ["NamesAccepted", "Established"] {
        assert!(
            conds.iter().any(|c| c.type_ == ty && c.status == "True"),
            "{ty} missing: {conds:?}"
        );
    }
    let widgets: Api<Widget> = Api::default_namespaced(server.client());
    let w = widgets
        .create(&PostParams::default(), &widget("w1", 8080))
        .await
        .unwrap();
    // Defaulting from the schema.
    assert_eq!(w.spec.mode.as_deref(), Some("fast"));
    assert_eq!(w.metadata.generation, Some(1));

    // Deleting the CRD removes its objects and stops serving: an open watch sees the
    // deletion, then ends (as the API server closes it), and a new list gets 404.
    let version = widgets
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut watch = Box::pin(
        widgets
            .watch(&kube::api::WatchParams::default(), &version)
            .await
            .unwrap(),
    );
    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    let mut seen = Vec::new();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Some(event) = futures::StreamExt::next(&mut watch).await {
            seen.push(event.unwrap());
        }
    })
    .await;
    assert!(ended.is_ok(), "the watch ends with its resource");
    assert!(
        matches!(seen.as_slice(), [kube::api::WatchEvent::Deleted(w)] if w.metadata.name.as_deref() == Some("w1")),
        "{seen:?}"
    );
    let (code, _, _) = api_code(widgets.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(code, 404);
}

#[tokio::test]
async fn schema_validation_pruning_and_strict_fields() {
    let server = ApiServer::new();
    server.install_crd(WIDGET_CRD).await.unwrap();
    let widgets: Api<Widget> = Api::default_namespaced(server.client());
    let (code, reason, msg) = api_code(
        widgets
            .create(&PostParams::default(), &widget("bad", 0))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert_eq!(
        msg,
        "Widget.example.com \"bad\" is invalid: spec.port: Invalid value: 0: spec.port in body should be greater than or equal to 1"
    );

    let raw: Api<kube::api::DynamicObject> = Api::default_namespaced_with(
        server.client(),
        &kube::api::ApiResource::erase::<Widget>(&()),
    );
    let obj: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "extra"},
        "spec": {"port": 80, "mode": "slow", "unknown": true}, "junk": 1
    }))
    .unwrap();
    // Strict field validation refuses unknown fields.
    let strict = PostParams::default();
    let pp = PatchParams {
        field_validation: Some(ValidationDirective::Strict),
        ..PatchParams::apply("op")
    };
    let (code, _, msg) = api_code(
        raw.patch("extra", &pp, &Patch::Apply(&obj))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 400);
    assert!(msg.contains("unknown field \"spec.unknown\""), "{msg}");
    // Default (Warn): pruned.
    let created = raw.create(&strict, &obj).await.unwrap();
    assert!(created.data.get("junk").is_none());
    assert!(created.data["spec"].get("unknown").is_none());
    assert_eq!(created.data["spec"]["mode"], "slow");

    let bad: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "bad2"}, "spec": {"mode": "medium", "port": "x"}
    }))
    .unwrap();
    let (code, _, msg) = api_code(raw.create(&strict, &bad).await.unwrap_err());
    assert_eq!(code, 422);
    assert!(
        msg.contains("spec.mode: Unsupported value: \"medium\""),
        "{msg}"
    );
    assert!(
        msg.contains("spec.port in body must be of type integer"),
        "{msg}"
    );
}

#[tokio::test]
async fn status_subresource_and_generation() {
    let server = ApiServer::new();
    server.install_crd(WIDGET_CRD).await.unwrap();
    let widgets: Api<Widget> = Api::default_namespaced(server.client());
    let mut w = widget("s", 80);
    w.status = Some(common::WidgetStatus {
        ready: Some(true),
        ..Default::default()
    });
    let created = widgets.create(&PostParams::default(), &w).await.unwrap();
    assert!(created.status.is_none(), "status is dropped on create");
    assert_eq!(created.metadata.generation, Some(1));

    // Main resource ignores status; spec change bumps generation.
    let p = widgets
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"port": 81}, "status": {"ready": true}})),
        )
        .await
        .unwrap();
    assert!(p.status.is_none());
    assert_eq!(p.metadata.generation, Some(2));

    // Metadata-only change: no generation bump.
    let p = widgets
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(p.metadata.generation, Some(2));

    // /status changes only status, and does not bump generation.
    let p = widgets
        .patch_status(
            "s",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"port": 99}, "status": {"ready": true, "message": "ok"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(p.spec.port, 81);
    assert_eq!(p.status.as_ref().unwrap().message.as_deref(), Some("ok"));
    assert_eq!(p.metadata.generation, Some(2));

    // Server-side apply to /status: the merge patch above owns .status.ready, so
    // taking it over needs force (as on a real cluster).
    let p = widgets
        .patch_status(
            "s",
            &PatchParams::apply("status-writer").force(),
            &Patch::Apply(json!({"apiVersion": "example.com/v1", "kind": "Widget",
                "status": {"ready": false}})),
        )
        .await
        .unwrap();
    assert_eq!(p.status.as_ref().unwrap().ready, Some(false));
    let mf = p.metadata.managed_fields.unwrap();
    assert!(
        mf.iter()
            .any(|m| m.manager.as_deref() == Some("status-writer")
                && m.subresource.as_deref() == Some("status"))
    );

    // Deployment: generation tracks spec only.
    let deps: Api<Deployment> = Api::default_namespaced(server.client());
    let d = deps
        .create(&PostParams::default(), &deployment("g"))
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(1));
    let d = deps
        .patch(
            "g",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(2));
}

#[tokio::test]
async fn secrets_namespaces_and_generate_name() {
    let server = ApiServer::new();
    let secrets: Api<Secret> = Api::default_namespaced(server.client());
    let s: Secret = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"generateName": "tok-"}, "stringData": {"k": "hello"}}))
    .unwrap();
    let created = secrets.create(&PostParams::default(), &s).await.unwrap();
    let name = created.metadata.name.clone().unwrap();
    assert!(name.starts_with("tok-") && name.len() == 9, "{name}");
    assert_eq!(created.data.unwrap()["k"].0, b"hello");
    assert_eq!(created.type_.as_deref(), Some("Opaque"));

    let nss: Api<Namespace> = Api::all(server.client());
    let names: Vec<_> = nss
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|n| n.metadata.name.unwrap())
        .collect();
    assert!(names.contains(&"default".to_string()));
    assert!(names.contains(&"kube-system".to_string()));
}

#[tokio::test]
async fn cluster_scoped_custom_resources_and_replace_status() {
    let server = ApiServer::new();
    let crd = WIDGET_CRD
        .replace("scope: Namespaced", "scope: Cluster")
        .replace("widgets.example.com", "gizmos.example.com")
        .replace("kind: Widget", "kind: Gizmo")
        .replace("plural: widgets", "plural: gizmos")
        .replace("singular: widget", "singular: gizmo")
        .replace("shortNames: [wd]", "shortNames: [gz]");
    server.install_crd(crd.as_str()).await.unwrap();
    let ar = kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
        "example.com",
        "v1",
        "Gizmo",
    ));
    let gizmos: Api<kube::api::DynamicObject> = Api::all_with(server.client(), &ar);
    let g: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Gizmo",
        "metadata": {"name": "g1"}, "spec": {"port": 1}
    }))
    .unwrap();
    let created = gizmos.create(&PostParams::default(), &g).await.unwrap();
    assert!(created.metadata.namespace.is_none());
    let mut with_status = created.clone();
    with_status.data["status"] = json!({"ready": true});
    let replaced = gizmos
        .replace_status("g1", &PostParams::default(), &with_status)
        .await
        .unwrap();
    assert_eq!(replaced.data["status"]["ready"], true);
    assert_eq!(replaced.metadata.generation, Some(1));
    // A namespaced path for a cluster-scoped resource is not found.
    let namespaced: Api<kube::api::DynamicObject> =
        Api::namespaced_with(server.client(), "default", &ar);
    let (code, _, _) = api_code(namespaced.get("g1").await.unwrap_err());
    assert_eq!(code, 404);
}

#[tokio::test]
async fn malformed_requests_get_statuses_and_the_server_survives() {
    use tower::ServiceExt;
    let server = ApiServer::new();
    server.install_crd(WIDGET_CRD).await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    cms.create(&PostParams::default(), &cm("x", json!({})))
        .await
        .unwrap();
    let cases: &[(&str, &str, &str, &str, u16)] = &[
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            "not json",
            400,
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            "[1,2]",
            400,
        ),
        (
            "PATCH",
            "/api/v1/namespaces/default/configmaps/x",
            "application/merge-patch+json",
            r#"{"metadata":"x"}"#,
            400,
        ),
        (
            "PATCH",
            "/api/v1/namespaces/default/configmaps/x",
            "application/json-patch+json",
            r#"[{"op":"replace","path":"/metadata","value":7}]"#,
            400,
        ),
        (
            "PATCH",
            "/api/v1/namespaces/default/configmaps/x",
            "application/json-patch+json",
            r#"{"op":"add"}"#,
            400,
        ),
        (
            "PATCH",
            "/api/v1/namespaces/default/configmaps/x",
            "text/plain",
            "{}",
            415,
        ),
        (
            "PATCH",
            "/apis/example.com/v1/namespaces/default/widgets/w",
            "application/strategic-merge-patch+json",
            "{}",
            404,
        ),
        (
            "PATCH",
            "/api/v1/namespaces/default/configmaps/y",
            "application/apply-patch+yaml",
            "kind: ConfigMap\n",
            // No fieldManager: 422, as a real API server answers.
            422,
        ),
        (
            "PUT",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            "{}",
            405,
        ),
        (
            "GET",
            "/api/v1/namespaces/default/configmaps?labelSelector=a%20in%20b",
            "",
            "",
            400,
        ),
        (
            "GET",
            "/api/v1/namespaces/default/configmaps?limit=x",
            "",
            "",
            400,
        ),
        (
            "GET",
            "/api/v1/namespaces/default/configmaps?continue=zz",
            "",
            "",
            400,
        ),
        (
            "GET",
            "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=abc",
            "",
            "",
            400,
        ),
        ("GET", "/apis/nope.io/v1/things", "", "", 404),
        (
            "GET",
            "/api/v1/namespaces/default/configmaps/x/scale",
            "",
            "",
            404,
        ),
        (
            "POST",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            "application/json",
            r#"{"metadata":{"name":"x.y"},"spec":{"group":"y","names":{"plural":"x","kind":"X"},"scope":"Namespaced","versions":[{"name":"v1","served":true,"storage":true,"schema":{"openAPIV3Schema":true}}]}}"#,
            422,
        ),
        (
            "DELETE",
            "/api/v1/namespaces/default/configmaps/x",
            "application/json",
            "{\"propagationPolicy\":\"Sideways\"}",
            400,
        ),
    ];
    for (method, uri, ct, body, want) in cases {
        let mut req = http::Request::builder().method(*method).uri(*uri);
        if !ct.is_empty() {
            req = req.header("Content-Type", *ct);
        }
        let resp = server
            .service()
            .oneshot(req.body(axum::body::Body::from(body.to_string())).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), *want, "{method} {uri} {body}");
    }
    // Still serving.
    assert_eq!(
        cms.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
}
