//! The `aigateway-testkit serve` binary: loads `--crds`, writes `--kubeconfig`, and an
//! out-of-process kube client connects with that kubeconfig.

mod common;

use std::time::Duration;

use common::Widget;
use kube::api::{Api, ListParams, PostParams};

#[tokio::test]
async fn serve_writes_a_kubeconfig_and_loads_crds() {
    let dir = tempfile::tempdir().unwrap();
    let crds = dir.path().join("crds");
    std::fs::create_dir(&crds).unwrap();
    std::fs::write(crds.join("widget.yaml"), common::WIDGET_CRD).unwrap();
    std::fs::write(crds.join("ignored.txt"), "not a manifest").unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_aigateway-testkit"))
        .args(["serve", "--port", "0", "--kubeconfig"])
        .arg(&kubeconfig)
        .arg("--crds")
        .arg(&crds)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut waited = 0;
    while !kubeconfig.exists() && waited < 100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    assert!(kubeconfig.exists(), "the kubeconfig was not written");
    tokio::time::sleep(Duration::from_millis(50)).await;

    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    let kc = kube::config::Kubeconfig::from_yaml(&text).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    assert_eq!(cfg.default_namespace, "default");
    let client = kube::Client::try_from(cfg).unwrap();
    let widgets: Api<Widget> = Api::default_namespaced(client);
    widgets
        .create(&PostParams::default(), &common::widget("from-outside", 443))
        .await
        .unwrap();
    let names: Vec<_> = widgets
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|w| w.metadata.name.unwrap())
        .collect();
    assert_eq!(names, ["from-outside"]);
    child.start_kill().unwrap();
    let _ = child.wait().await;
}

#[tokio::test]
async fn watcher_over_http_sees_changes() {
    use futures::{StreamExt, TryStreamExt};
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::watcher;
    let server = aigateway_testkit::ApiServer::new();
    let http = server
        .serve_http("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let kc = kube::config::Kubeconfig::from_yaml(&http.kubeconfig_yaml()).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(cfg).unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
    loop {
        if let watcher::Event::InitDone = events.try_next().await.unwrap().unwrap() {
            break;
        }
    }
    api.create(
        &PostParams::default(),
        &serde_json::from_value(serde_json::json!({"metadata": {"name": "over-http"}})).unwrap(),
    )
    .await
    .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), events.try_next())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(next, Some(watcher::Event::Apply(o)) if o.metadata.name.as_deref() == Some("over-http"))
    );
    let watches = server
        .requests()
        .iter()
        .filter(|r| r.verb == "watch")
        .count();
    assert_eq!(watches, 1);
    drop(events);
    http.shutdown().await;
}

#[tokio::test]
async fn serve_applies_the_latency_model_to_writes() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_aigateway-testkit"))
        .args([
            "serve",
            "--port",
            "0",
            "--write-latency-ms",
            "150",
            "--kubeconfig",
        ])
        .arg(&kubeconfig)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut waited = 0;
    while !kubeconfig.exists() && waited < 100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    assert!(kubeconfig.exists(), "the kubeconfig was not written");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    let kc = kube::config::Kubeconfig::from_yaml(&text).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(cfg).unwrap();
    let widgets: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::default_namespaced(client);
    let cm = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late"}
    }))
    .unwrap();
    let start = std::time::Instant::now();
    widgets.create(&PostParams::default(), &cm).await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(150),
        "a create took {:?}, less than --write-latency-ms",
        start.elapsed()
    );
    child.start_kill().unwrap();
    let _ = child.wait().await;
}

#[test]
fn serve_refuses_a_negative_latency() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aigateway-testkit"))
        .args(["serve", "--read-latency-ms=-1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("non-negative number of milliseconds"),
        "{stderr}"
    );
}
