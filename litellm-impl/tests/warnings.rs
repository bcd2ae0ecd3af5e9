//! Warnings of the built `litellm-impl` binary against the testkit API server over HTTP:
//! a tenant that keeps changing a route whose writes fail (here: every patch of it
//! answers 422, as the API server answers an object at its annotation limit) re-runs the
//! gateway it names at every change. That used to log one WARN line per attempt, filed
//! under the victim's gateway (6,152 lines in 60 s); now it logs at most one line per
//! object per 30 s, filed under the route.

use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aigateway_testkit::{ApiServer, HttpServer, RequestMatch};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(120);

const OBJECTS: &str = "\
apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: ToolGatewayClass
metadata:
  name: litellm
  annotations:
    toolgatewayclass.kubernetes.io/is-default-class: \"true\"
spec:
  controller: litellm.agentic-layer.ai/tool-gateway-litellm-controller
---
apiVersion: v1
kind: Namespace
metadata: {name: victim}
---
apiVersion: v1
kind: Namespace
metadata: {name: attacker}
---
apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: ToolGateway
metadata: {name: tools, namespace: victim}
spec: {toolGatewayClassName: litellm}
";

fn route(generation: u64) -> Value {
    json!({
        "apiVersion": "runtime.agentic-layer.ai/v1alpha1",
        "kind": "ToolRoute",
        "metadata": {"name": "r", "namespace": "attacker", "annotations": {"loop": generation.to_string()}},
        "spec": {
            "toolGatewayRef": {"name": "tools", "namespace": "victim"},
            "upstream": {"external": {"url": format!("https://mcp.example.com/{generation}")}},
        },
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn reconciles(port: u16) -> Option<f64> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    response
        .lines()
        .find(|l| l.starts_with("aigateway_reconciles_total"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_tenant_gets_one_warning_per_window_filed_under_its_route() {
    let server = ApiServer::builder()
        .deployment_ready_delay(Duration::from_millis(100))
        .build();
    let http: HttpServer = server
        .serve_http("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    http.write_kubeconfig(&kubeconfig).unwrap();
    for crd in aigateway_api::crds::all() {
        server.install_crd(crd).await.unwrap();
    }
    server.apply_manifests(OBJECTS).unwrap();
    // Every write of the tenant's route fails, whatever the operator writes to it.
    server.faults().fail_fraction(
        1.0,
        RequestMatch::any()
            .verb("patch")
            .resource("toolroutes")
            .namespace("attacker")
            .name("r"),
        422,
    );
    server.put_object(route(0)).unwrap();

    let metrics_port = free_port();
    let log = dir.path().join("operator.log");
    let _operator = Operator(
        Command::new(env!("CARGO_BIN_EXE_litellm-impl"))
            .arg("run")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args([
                "--log-format=json",
                "--health-probe-bind-address=0",
                &format!("--metrics-bind-address=127.0.0.1:{metrics_port}"),
                "--metrics-secure=false",
                "--leader-elect=false",
            ])
            .env("RUST_LOG", "info")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBECONFIG")
            .env_remove("WATCH_NAMESPACE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .expect("the litellm-impl binary starts"),
    );
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let started = Instant::now();
    let before = loop {
        if let Some(n) = reconciles(metrics_port).await
            && n > 0.0
        {
            break n;
        }
        assert!(started.elapsed() < WAIT, "never reconciled\n{}", read_log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // The tenant changes its route in a loop for 15 s: each change re-runs the gateway.
    let looping = Instant::now();
    let mut generation = 1;
    while looping.elapsed() < Duration::from_secs(15) {
        server.put_object(route(generation)).unwrap();
        generation += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = reconciles(metrics_port).await.unwrap_or_default();
    assert!(
        after - before >= 50.0,
        "the loop re-ran the gateway only {} times: the test shows nothing",
        after - before
    );

    let text = read_log();
    let warnings: Vec<Value> = text
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["level"] == "WARN")
        .collect();
    let lines = |list: &[Value]| {
        list.iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let about_route: Vec<Value> = warnings
        .iter()
        .filter(|w| w.to_string().contains("attacker/r"))
        .cloned()
        .collect();
    assert!(
        !about_route.is_empty(),
        "no warning about the failing route at all:\n{text}"
    );
    assert!(
        about_route.len() <= 2,
        "{} warnings about the route in {generation} changes over 15 s (one per 30 s expected):\n{}",
        about_route.len(),
        lines(&about_route)
    );
    for warning in &about_route {
        assert_eq!(
            warning["span"]["object.ref"], "ToolRoute attacker/r",
            "not filed under the route: {warning}"
        );
        assert!(
            !warning.to_string().contains("tools.victim"),
            "filed under the victim's gateway: {warning}"
        );
    }
    assert!(
        warnings.len() <= 4,
        "{} warnings in all:\n{}",
        warnings.len(),
        lines(&warnings)
    );
}
