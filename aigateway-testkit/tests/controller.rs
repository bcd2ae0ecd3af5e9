//! A real kube-runtime `Controller` with `.owns()` and the `finalizer` helper, run to
//! convergence against the in-process server; then steady state (zero writes), drift
//! repair, and cleanup on deletion.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aigateway_testkit::ApiServer;
use common::{WIDGET_CRD, Widget, WidgetStatus, eventually, widget};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event, finalizer};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;

const MANAGER: &str = "widget-operator";

#[derive(Debug, thiserror::Error)]
enum ReconcileError {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Finalizer(#[from] Box<kube::runtime::finalizer::Error<kube::Error>>),
}

struct Ctx {
    client: kube::Client,
    cleanups: AtomicUsize,
}

async fn apply(w: Arc<Widget>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
    let ns = w.namespace().unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let oref = w.controller_owner_ref(&()).unwrap();
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("{}-config", w.name_any()), "ownerReferences": [oref]},
        "data": {"port": w.spec.port.to_string()},
    });
    cms.patch(
        &format!("{}-config", w.name_any()),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&cm),
    )
    .await?;
    let desired = WidgetStatus {
        ready: Some(true),
        message: Some(format!("serving on {}", w.spec.port)),
        conditions: Vec::new(),
    };
    if w.status.as_ref() != Some(&desired) {
        let widgets: Api<Widget> = Api::namespaced(ctx.client.clone(), &ns);
        widgets
            .patch_status(
                &w.name_any(),
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(json!({"apiVersion": "example.com/v1", "kind": "Widget",
                    "status": desired})),
            )
            .await?;
    }
    Ok(Action::await_change())
}

async fn reconcile(w: Arc<Widget>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let api: Api<Widget> = Api::namespaced(ctx.client.clone(), &w.namespace().unwrap());
    let c = ctx.clone();
    finalizer(&api, "example.com/cleanup", w, |event| async move {
        match event {
            Event::Apply(w) => apply(w, c).await,
            Event::Cleanup(_) => {
                c.cleanups.fetch_add(1, Ordering::SeqCst);
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(|e| ReconcileError::Finalizer(Box::new(e)))
}

fn error_policy(_: Arc<Widget>, _: &ReconcileError, _: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_millis(50))
}

#[tokio::test]
async fn controller_with_owns_and_finalizer_converges() {
    let server = ApiServer::new();
    server.install_crd(WIDGET_CRD).await.unwrap();
    let client = server.client();
    let widgets: Api<Widget> = Api::default_namespaced(client.clone());
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        cleanups: AtomicUsize::new(0),
    });
    let controller = Controller::new(widgets.clone(), watcher::Config::default())
        .owns(cms.clone(), watcher::Config::default())
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|_| async {});
    let task = tokio::spawn(controller);

    widgets
        .create(&PostParams::default(), &widget("w", 8080))
        .await
        .unwrap();
    let converged = eventually(|| {
        let widgets = widgets.clone();
        async move {
            let w = widgets.get("w").await.unwrap();
            (w.status.as_ref().and_then(|s| s.ready) == Some(true)).then_some(w)
        }
    })
    .await;
    assert_eq!(converged.finalizers(), ["example.com/cleanup"]);
    let cm = cms.get("w-config").await.unwrap();
    assert_eq!(cm.data.unwrap()["port"], "8080");
    assert_eq!(cm.metadata.owner_references.unwrap()[0].name, "w");

    // Steady state: no writes while nothing changes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.reset_stats();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.stats().writes(), 0, "{:?}", server.stats());

    // A spec change propagates to the owned ConfigMap.
    widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"port": 9090}})),
        )
        .await
        .unwrap();
    eventually(|| {
        let cms = cms.clone();
        async move {
            let cm = cms.get("w-config").await.unwrap();
            (cm.data.unwrap()["port"] == "9090").then_some(())
        }
    })
    .await;

    // Deleting the owned object triggers a reconcile through .owns(), which recreates it.
    cms.delete("w-config", &DeleteParams::default())
        .await
        .unwrap();
    eventually(|| {
        let cms = cms.clone();
        async move { cms.get_opt("w-config").await.unwrap() }
    })
    .await;
    assert!(server.stats().writes_by_manager(MANAGER) >= 2);

    // Deleting the widget runs cleanup, removes the finalizer, and GC removes the child.
    widgets.delete("w", &DeleteParams::default()).await.unwrap();
    eventually(|| {
        let widgets = widgets.clone();
        async move { widgets.get_opt("w").await.unwrap().is_none().then_some(()) }
    })
    .await;
    assert_eq!(ctx.cleanups.load(Ordering::SeqCst), 1);
    assert!(cms.get_opt("w-config").await.unwrap().is_none());
    task.abort();
}

#[tokio::test]
async fn install_crd_accepts_a_generated_crd() {
    use kube::CustomResourceExt;
    let server = ApiServer::new();
    let stored = server.install_crd(Widget::crd()).await.unwrap();
    assert_eq!(stored["metadata"]["name"], "widgets.example.com");
    let widgets: Api<Widget> = Api::default_namespaced(server.client());
    widgets
        .create(&PostParams::default(), &widget("gen", 1))
        .await
        .unwrap();
    // Re-installing (a changed spec) keeps the objects.
    let yaml = WIDGET_CRD.to_string();
    server.install_crd(&yaml).await.unwrap();
    assert!(widgets.get_opt("gen").await.unwrap().is_some());
}
