//! Real kubectl against the HTTP server. Skips (with a printed reason) when kubectl is
//! not installed.

mod common;

use std::path::Path;
use std::process::Output;

use aigateway_testkit::ApiServer;
use serde_json::Value;

struct Kubectl<'a> {
    kubeconfig: &'a Path,
}

impl Kubectl<'_> {
    async fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        use tokio::io::AsyncWriteExt;
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.args(args)
            .env("KUBECONFIG", self.kubeconfig)
            .env("HOME", self.kubeconfig.parent().unwrap())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("kubectl starts");
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).await.unwrap();
        }
        drop(input);
        child.wait_with_output().await.unwrap()
    }

    /// Runs and requires success; returns stdout.
    async fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin).await;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed\nstdout: {stdout}\nstderr: {stderr}"
        );
        stdout
    }

    /// Runs and requires failure; returns stderr.
    async fn fails(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin).await;
        assert!(
            !out.status.success(),
            "kubectl {args:?} should fail: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

fn kubectl_available() -> bool {
    std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success())
}

const WIDGET: &str =
    "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w1\nspec:\n  port: 8080\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_drives_crds_and_custom_resources() {
    if !kubectl_available() {
        println!("SKIPPED: kubectl is not installed (not found on PATH)");
        return;
    }
    let server = ApiServer::new();
    let http = server
        .serve_http("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    http.write_kubeconfig(&kubeconfig).unwrap();
    let k = Kubectl {
        kubeconfig: &kubeconfig,
    };

    let out = k.ok(&["apply", "-f", "-"], Some(common::WIDGET_CRD)).await;
    assert!(
        out.contains("customresourcedefinition.apiextensions.k8s.io/widgets.example.com created"),
        "{out}"
    );
    k.ok(
        &[
            "wait",
            "--for=condition=Established",
            "crd/widgets.example.com",
            "--timeout=10s",
        ],
        None,
    )
    .await;

    let out = k.ok(&["apply", "-f", "-"], Some(WIDGET)).await;
    assert!(out.contains("widget.example.com/w1 created"), "{out}");

    let json: Value =
        serde_json::from_str(&k.ok(&["get", "widget", "w1", "-o", "json"], None).await).unwrap();
    assert_eq!(json["spec"]["port"], 8080);
    assert_eq!(json["spec"]["mode"], "fast", "defaulted from the schema");

    k.ok(
        &[
            "patch",
            "widget",
            "w1",
            "--type=merge",
            "-p",
            r#"{"spec":{"port":9090}}"#,
        ],
        None,
    )
    .await;
    k.ok(
        &[
            "patch",
            "widget",
            "w1",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"conditions":[{"type":"Ready","status":"True"}]}}"#,
        ],
        None,
    )
    .await;
    k.ok(
        &[
            "wait",
            "--for=condition=Ready",
            "widget/w1",
            "--timeout=10s",
        ],
        None,
    )
    .await;

    // Server-side printing from additionalPrinterColumns.
    let table = k.ok(&["get", "wd"], None).await;
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "PORT", "READY", "AGE"], "{table}");
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..3], ["w1", "9090", "True"], "{table}");
    let ns_table = k.ok(&["get", "namespaces"], None).await;
    assert!(ns_table.starts_with("NAME"), "{ns_table}");
    assert!(ns_table.contains("kube-system"), "{ns_table}");

    // Server-side apply: create, update by the same manager, conflict with another.
    let w2 = WIDGET.replace("w1", "w2");
    let out = k
        .ok(&["apply", "--server-side", "-f", "-"], Some(&w2))
        .await;
    assert!(
        out.contains("widget.example.com/w2 serverside-applied"),
        "{out}"
    );
    let w2b = w2.replace("8080", "8081");
    k.ok(&["apply", "--server-side", "-f", "-"], Some(&w2b))
        .await;
    let err = k
        .fails(
            &["apply", "--server-side", "--field-manager=other", "-f", "-"],
            Some(&w2.replace("8080", "8082")),
        )
        .await;
    assert!(
        err.contains("conflict") && err.contains(".spec.port"),
        "{err}"
    );
    k.ok(
        &[
            "apply",
            "--server-side",
            "--field-manager=other",
            "--force-conflicts",
            "-f",
            "-",
        ],
        Some(&w2.replace("8080", "8082")),
    )
    .await;
    let port = k
        .ok(
            &["get", "widget", "w2", "-o", "jsonpath={.spec.port}"],
            None,
        )
        .await;
    assert_eq!(port, "8082");

    // An invalid custom resource is refused with a 422 naming the field.
    let bad = WIDGET.replace("w1", "bad").replace("8080", "0");
    let err = k.fails(&["apply", "-f", "-"], Some(&bad)).await;
    assert!(
        err.contains("spec.port") && err.contains("greater than or equal to 1"),
        "{err}"
    );
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.status == 422 && r.resource == "widgets")
    );

    let out = k.ok(&["delete", "widget", "w1", "w2"], None).await;
    assert!(
        out.contains("\"w1\" deleted") && out.contains("\"w2\" deleted"),
        "{out}"
    );
    let err = k.fails(&["get", "widget", "w1"], None).await;
    assert!(
        err.contains("NotFound") || err.contains("not found"),
        "{err}"
    );

    // The counters saw kubectl's field managers.
    let stats = server.stats();
    assert!(
        stats.writes_by_manager("kubectl-client-side-apply") >= 2,
        "{stats:?}"
    );
    assert!(stats.writes_by_manager("other") >= 1);
    http.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_builtins_twice() {
    if !kubectl_available() {
        println!("SKIPPED: kubectl is not installed (not found on PATH)");
        return;
    }
    let server = ApiServer::new();
    let http = server
        .serve_http("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    http.write_kubeconfig(&kubeconfig).unwrap();
    let k = Kubectl {
        kubeconfig: &kubeconfig,
    };
    let bundle = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: nginx:1
        ports: [{containerPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: op}
rules: [{apiGroups: [""], resources: [configmaps], verbs: [get]}]
"#;
    k.ok(&["apply", "-f", "-"], Some(bundle)).await;
    // Client-side apply of a change: a strategic merge patch.
    k.ok(
        &["apply", "-f", "-"],
        Some(&bundle.replace("nginx:1", "nginx:2")),
    )
    .await;
    let image = k
        .ok(
            &[
                "get",
                "deploy",
                "web",
                "-o",
                "jsonpath={.spec.template.spec.containers[0].image}",
            ],
            None,
        )
        .await;
    assert_eq!(image, "nginx:2");
    k.ok(
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        Some(bundle),
    )
    .await;
    k.ok(
        &[
            "wait",
            "--for=condition=Available",
            "deploy/web",
            "--timeout=10s",
        ],
        None,
    )
    .await;
    k.ok(&["rollout", "status", "deploy/web", "--timeout=10s"], None)
        .await;
    // The scale subresource.
    k.ok(&["scale", "deploy/web", "--replicas=5"], None).await;
    let replicas = k
        .ok(
            &[
                "get",
                "deploy",
                "web",
                "-o",
                "jsonpath={.spec.replicas}/{.status.availableReplicas}",
            ],
            None,
        )
        .await;
    assert_eq!(replicas, "5/5");
    // `kubectl create` sends protobuf bodies for these kinds.
    k.ok(&["create", "namespace", "team"], None).await;
    k.ok(
        &[
            "-n",
            "team",
            "create",
            "configmap",
            "settings",
            "--from-literal=a=b",
        ],
        None,
    )
    .await;
    k.ok(
        &[
            "-n",
            "team",
            "create",
            "secret",
            "generic",
            "creds",
            "--from-literal=p=q",
        ],
        None,
    )
    .await;
    k.ok(&["-n", "team", "create", "serviceaccount", "bot"], None)
        .await;
    let data = k
        .ok(
            &[
                "-n",
                "team",
                "get",
                "configmap",
                "settings",
                "-o",
                "jsonpath={.data.a}",
            ],
            None,
        )
        .await;
    assert_eq!(data, "b");
    let secret = k
        .ok(
            &[
                "-n",
                "team",
                "get",
                "secret",
                "creds",
                "-o",
                "jsonpath={.data.p}",
            ],
            None,
        )
        .await;
    assert_eq!(secret, "cQ==");
    k.ok(&["delete", "namespace", "team"], None).await;
    assert!(
        server
            .list_objects("v1", "ConfigMap", Some("team"))
            .is_empty()
    );
    k.ok(&["delete", "-f", "-"], Some(bundle)).await;
    assert!(
        server
            .list_objects("apps/v1", "Deployment", None)
            .is_empty()
    );
    http.shutdown().await;
}
