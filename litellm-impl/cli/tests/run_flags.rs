//! Every flag of `litellm-impl run`, each shown by its effect: the built binary as a
//! separate process against the testkit API server over HTTP (as `e2e.rs`), read back
//! through the testkit. The `render` flags are in `cli.rs`.
//!
//! Every operator is started outside a pod (`KUBERNETES_SERVICE_HOST` removed), so the
//! tests mean the same on a laptop and in a CI pod.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use aigateway_testkit::{ApiServer, HttpServer, RequestMatch};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Generous: two busy cores may also be compiling other tests.
const WAIT: Duration = Duration::from_secs(60);
const FIELD_MANAGER: &str = "ai-gateway-litellm-controller";
const IMAGE_ANNOTATION: &str = "ai-gateway-litellm.agentic-layer.ai/image";

/// The testkit API server on loopback HTTP with the CRDs, the default `litellm` class and
/// a kubeconfig pointing at it.
struct Cluster {
    server: ApiServer,
    _http: HttpServer,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Cluster {
    async fn start() -> Self {
        let server = ApiServer::builder()
            .deployment_ready_delay(Duration::from_millis(100))
            .build();
        let http = server
            .serve_http("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        http.write_kubeconfig(&kubeconfig).unwrap();
        for crd in aigateway_api::crds::all() {
            server.install_crd(crd).await.unwrap();
        }
        server
            .apply_manifests(include_str!(
                "../../../examples/manifests/litellm-class-default.yaml"
            ))
            .unwrap();
        Cluster {
            server,
            _http: http,
            dir,
            kubeconfig,
        }
    }

    /// Creates `namespace` and a gateway `name` in it (one model), with `annotations`.
    fn gateway(&self, namespace: &str, name: &str, annotations: &[(&str, &str)]) {
        let annotations: String = annotations
            .iter()
            .map(|(k, v)| format!("\n    {k}: {v:?}"))
            .collect();
        let annotations = if annotations.is_empty() {
            String::new()
        } else {
            format!("\n  annotations:{annotations}")
        };
        self.server
            .apply_manifests(&format!(
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n---\n\
                 apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: AiGateway\nmetadata:\n  name: {name}\n  namespace: {namespace}{annotations}\n\
                 spec:\n  aiGatewayClassName: litellm\n  aiModels:\n    - {{provider: openai, name: gpt-4o-mini}}\n"
            ))
            .unwrap();
    }

    fn namespace(&self, namespace: &str) {
        self.server
            .apply_manifests(&format!(
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n"
            ))
            .unwrap();
    }

    fn object(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        self.server
            .get_object(api_version, kind, Some(namespace), name)
    }

    fn gateway_object(&self, namespace: &str, name: &str) -> Option<Value> {
        self.object(
            "runtime.agentic-layer.ai/v1alpha1",
            "AiGateway",
            namespace,
            name,
        )
    }

    fn deployment(&self, namespace: &str, name: &str) -> Option<Value> {
        self.object("apps/v1", "Deployment", namespace, name)
    }

    /// Starts `litellm-impl run --kubeconfig <this cluster>` with its probes and (plain,
    /// unless `args` say otherwise) metrics on free ports, and `args`, outside a pod.
    fn run(&self, args: &[&str]) -> Operator {
        self.run_with(&self.kubeconfig, args)
    }

    /// [`Cluster::run`] against the API server of another kubeconfig.
    fn run_with(&self, kubeconfig: &std::path::Path, args: &[&str]) -> Operator {
        let admin_port = free_port();
        let metrics_port = free_port();
        let log = self.dir.path().join(format!("operator-{admin_port}.log"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_litellm-impl"));
        command
            .arg("run")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg(format!(
                "--health-probe-bind-address=127.0.0.1:{admin_port}"
            ))
            .arg(format!("--metrics-bind-address=127.0.0.1:{metrics_port}"));
        if !args.iter().any(|a| a.starts_with("--metrics-secure")) {
            // The testkit has no TokenReview to check a scraper.
            command.arg("--metrics-secure=false");
        }
        let child = command
            .args(args)
            .env("POD_NAME", "flags-operator")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBECONFIG")
            .env_remove("WATCH_NAMESPACE")
            .env_remove("POD_NAMESPACE")
            .env_remove("LITELLM_IMAGE")
            .env_remove("HEALTH_PROBE_BIND_ADDRESS")
            .env_remove("METRICS_BIND_ADDRESS")
            .env_remove("GATEWAY_KINDS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .expect("the litellm-impl binary starts");
        Operator {
            child,
            log,
            admin_port,
            metrics_port,
        }
    }

    /// [`Cluster::run`], then waits until the operator answers `/readyz` (gateways are
    /// created after that, as a user would).
    async fn started(&self, args: &[&str]) -> Operator {
        let mut operator = self.run(args);
        let port = operator.admin_port;
        eventually_get(&mut operator, port, "/readyz").await;
        operator
    }
}

/// The operator child process; killed on drop.
struct Operator {
    child: Child,
    log: PathBuf,
    /// Where /healthz and /readyz answer.
    admin_port: u16,
    /// Where /metrics answers.
    metrics_port: u16,
}

impl Operator {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("the operator exited early with {status}\n{}", self.log());
        }
    }

    /// Waits for the process to exit on its own.
    async fn exit(&mut self) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < WAIT,
                "the operator did not exit\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` (every 100 ms, up to [`WAIT`]) until it returns `Some`, while the
/// operator keeps running.
async fn eventually<T>(
    what: &str,
    operator: &mut Operator,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let started = Instant::now();
    loop {
        operator.assert_running();
        if let Some(value) = check() {
            return value;
        }
        assert!(
            started.elapsed() < WAIT,
            "timed out waiting for {what}\noperator log:\n{}",
            operator.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn condition(gateway: &Value, type_: &str) -> Option<(String, String, String)> {
    let c = gateway["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)?;
    Some((
        c["status"].as_str()?.to_owned(),
        c["reason"].as_str().unwrap_or_default().to_owned(),
        c["message"].as_str().unwrap_or_default().to_owned(),
    ))
}

fn is_ready(gateway: Option<Value>) -> Option<Value> {
    let gateway = gateway?;
    (condition(&gateway, "Ready")?.0 == "True").then_some(gateway)
}

fn image_of(deployment: &Value) -> String {
    deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// GET on the operator's admin server; the status code and body.
async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .ok()?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((code, body))
}

/// Defect: `run` turned leader election on by default and failed (exit 3, a `Debug`
/// dump of the API status) in a cluster without `ai-gateway-litellm-system`. Outside a
/// pod it is now off by default: the first `run` works, and writes no Lease.
#[tokio::test]
async fn run_outside_a_pod_works_without_the_operator_namespace() {
    let cluster = Cluster::start().await;
    let mut operator = cluster.started(&[]).await;
    cluster.gateway("ai-gateway", "ai-gateway", &[]);
    eventually("a Ready gateway", &mut operator, || {
        is_ready(cluster.gateway_object("ai-gateway", "ai-gateway"))
    })
    .await;
    assert!(
        cluster
            .server
            .requests()
            .iter()
            .all(|r| r.resource != "leases"),
        "no leader election outside a pod"
    );
}

/// Defect: asked for leader election without its namespace, `run` printed a `Debug`
/// dump. Now one line names the namespace and the flags that fix it.
#[tokio::test]
async fn leader_elect_without_the_lease_namespace_fails_in_one_line() {
    let cluster = Cluster::start().await;
    let mut operator = cluster.run(&["--leader-elect"]);
    let status = operator.exit().await;
    assert_eq!(status.code(), Some(3), "{}", operator.log());
    let log = operator.log();
    let errors: Vec<&str> = log.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{log}");
    let error = errors[0];
    for expected in [
        "namespace ai-gateway-litellm-system",
        "Lease ai-gateway-litellm-system/litellm-impl",
        "--lease-namespace",
        "--leader-elect=false",
        "kubectl create namespace ai-gateway-litellm-system",
    ] {
        assert!(error.contains(expected), "{expected:?} missing: {error}");
    }
    for debug in ["Status {", "ApiError", "Some(", "StatusDetails"] {
        assert!(!log.contains(debug), "Debug output {debug:?} in: {log}");
    }
}

/// `--leader-elect`, `--lease-namespace` and `--lease-name` choose the Lease the
/// operator holds before it reconciles.
#[tokio::test]
async fn lease_flags_choose_the_lease() {
    let cluster = Cluster::start().await;
    cluster.namespace("ops");
    let mut operator = cluster
        .started(&[
            "--leader-elect=true",
            "--lease-namespace",
            "ops",
            "--lease-name",
            "my-lease",
        ])
        .await;
    cluster.gateway("ai-gateway", "ai-gateway", &[]);
    eventually("a Ready gateway", &mut operator, || {
        is_ready(cluster.gateway_object("ai-gateway", "ai-gateway"))
    })
    .await;
    let lease = cluster
        .object("coordination.k8s.io/v1", "Lease", "ops", "my-lease")
        .expect("the Lease ops/my-lease");
    assert_eq!(lease["spec"]["holderIdentity"], "flags-operator", "{lease}");
    let leases = cluster
        .server
        .list_objects("coordination.k8s.io/v1", "Lease", None);
    assert_eq!(leases.len(), 1, "only the chosen Lease: {leases:?}");
}

/// `--image` sets the LiteLLM image of every gateway.
#[tokio::test]
async fn image_flag_sets_the_litellm_image() {
    let cluster = Cluster::start().await;
    let mut operator = cluster
        .started(&["--image", "registry.local/litellm:flag"])
        .await;
    cluster.gateway("ai-gateway", "ai-gateway", &[]);
    let deployment = eventually("the Deployment", &mut operator, || {
        cluster.deployment("ai-gateway", "ai-gateway")
    })
    .await;
    assert_eq!(image_of(&deployment), "registry.local/litellm:flag");
}

/// Defect: `run --allow-gateway-image` was parsed and never reached rendering, so the
/// annotation was refused even with the flag. Without the flag the gateway is refused
/// with a message naming the flag; with it, the Deployment runs the gateway's image.
#[tokio::test]
async fn allow_gateway_image_lets_a_gateway_choose_its_image() {
    let annotation = [(IMAGE_ANNOTATION, "registry.local/litellm:custom")];
    // One cluster per operator: each sees the gateway created while it runs.
    let cluster = Cluster::start().await;
    let mut refusing = cluster.started(&[]).await;
    cluster.gateway("team", "custom", &annotation);
    let (_, _, message) = eventually("Accepted=False", &mut refusing, || {
        let gateway = cluster.gateway_object("team", "custom")?;
        condition(&gateway, "Accepted").filter(|(status, ..)| status == "False")
    })
    .await;
    assert!(message.contains("--allow-gateway-image"), "{message}");
    assert!(cluster.deployment("team", "custom").is_none());

    let cluster = Cluster::start().await;
    let mut allowing = cluster.started(&["--allow-gateway-image"]).await;
    cluster.gateway("team", "custom", &annotation);
    let deployment = eventually("the Deployment", &mut allowing, || {
        cluster.deployment("team", "custom")
    })
    .await;
    assert_eq!(image_of(&deployment), "registry.local/litellm:custom");
}

/// `--namespace` limits the operator to one namespace.
#[tokio::test]
async fn namespace_flag_limits_what_is_watched() {
    let cluster = Cluster::start().await;
    let mut operator = cluster.started(&["--namespace", "watched"]).await;
    cluster.gateway("ignored", "gw", &[]);
    cluster.gateway("watched", "gw", &[]);
    eventually("the watched gateway Ready", &mut operator, || {
        is_ready(cluster.gateway_object("watched", "gw"))
    })
    .await;
    let ignored = cluster.gateway_object("ignored", "gw").unwrap();
    assert!(ignored["status"].is_null(), "{ignored}");
    assert!(cluster.deployment("ignored", "gw").is_none());
    assert!(
        cluster
            .server
            .requests()
            .iter()
            .filter(|r| r.field_manager.starts_with(FIELD_MANAGER))
            .all(|r| r.namespace != "ignored"),
        "no write in the unwatched namespace"
    );
}

/// `--health-probe-bind-address` is where /healthz and /readyz answer, over plain
/// HTTP; `--metrics-bind-address` where /metrics does (plain here, with
/// `--metrics-secure=false`), and nowhere else.
#[tokio::test]
async fn probes_and_metrics_answer_on_their_own_addresses() {
    let cluster = Cluster::start().await;
    let mut operator = cluster.started(&[]).await;
    operator.assert_running();
    let (code, _) = http_get(operator.admin_port, "/healthz").await.unwrap();
    assert_eq!(code, 200);
    let (code, _) = http_get(operator.admin_port, "/metrics").await.unwrap();
    assert_eq!(code, 404, "no metrics on the probes address");
    let (code, metrics) = http_get(operator.metrics_port, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert!(metrics.contains("# TYPE"), "{metrics}");
}

/// `curl` against the operator's HTTPS metrics: the status code, and whether the TLS
/// handshake worked (`000` when it did not). `--cacert` verifies the certificate
/// against `ca` (for the name `localhost`), else any certificate is taken.
fn curl_metrics(port: u16, token: Option<&str>, ca: Option<&std::path::Path>) -> String {
    let mut command = Command::new("curl");
    command.args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "10",
    ]);
    match ca {
        Some(ca) => {
            command
                .arg("--cacert")
                .arg(ca)
                .args(["--resolve", &format!("localhost:{port}:127.0.0.1")]);
        }
        None => {
            command.arg("-k");
        }
    }
    if let Some(token) = token {
        command.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let host = if ca.is_some() {
        "localhost"
    } else {
        "127.0.0.1"
    };
    let output = command
        .arg(format!("https://{host}:{port}/metrics"))
        .output()
        .expect("curl is installed");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// By default /metrics is HTTPS (with a self-signed certificate made at start) and
/// refuses a scrape without a token (401) or with a token the API server cannot check
/// (the testkit serves no TokenReview: 401, never 200), while the probes stay plain
/// HTTP. Plain HTTP on the metrics port gets nothing.
#[tokio::test]
async fn metrics_are_https_and_refuse_scrapes_without_a_checked_token() {
    let cluster = Cluster::start().await;
    let mut operator = cluster.started(&["--metrics-secure"]).await;
    operator.assert_running();
    let port = operator.metrics_port;
    let (code, _) = http_get(operator.admin_port, "/readyz").await.unwrap();
    assert_eq!(code, 200);
    let curl = |token| async move {
        tokio::task::spawn_blocking(move || curl_metrics(port, token, None))
            .await
            .unwrap()
    };
    assert_eq!(curl(None).await, "401");
    assert_eq!(curl(Some("made-up")).await, "401");
    assert!(
        http_get(port, "/metrics")
            .await
            .is_none_or(|(code, _)| code != 200),
        "plain HTTP answered on the metrics port"
    );
    assert!(
        !operator.log().contains("made-up"),
        "the token reached the log:\n{}",
        operator.log()
    );
}

/// `--metrics-cert-path` serves the certificate of that directory (`tls.crt`,
/// `tls.key`, as a mounted Secret of type kubernetes.io/tls holds them): a client that
/// trusts only that certificate completes the handshake.
#[tokio::test]
async fn metrics_are_served_with_the_mounted_certificate() {
    let cluster = Cluster::start().await;
    let certs = tempfile::tempdir().unwrap();
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
        ])
        .arg(certs.path().join("tls.key"))
        .arg("-out")
        .arg(certs.path().join("tls.crt"))
        .output()
        .expect("openssl is installed");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let dir = certs.path().to_str().unwrap().to_owned();
    let mut operator = cluster
        .started(&["--metrics-secure=true", "--metrics-cert-path", &dir])
        .await;
    operator.assert_running();
    let port = operator.metrics_port;
    let ca = certs.path().join("tls.crt");
    let code = tokio::task::spawn_blocking(move || curl_metrics(port, None, Some(&ca)))
        .await
        .unwrap();
    assert_eq!(
        code, "401",
        "the handshake with the mounted certificate failed"
    );

    // A directory without the files: one line, exit code 3. (Off the runtime thread:
    // the API server it asks first is served by this test's runtime.)
    let empty = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_litellm-impl"));
    command
        .args(["run", "--kubeconfig"])
        .arg(&cluster.kubeconfig)
        .args([
            "--health-probe-bind-address=0",
            "--metrics-bind-address=127.0.0.1:0",
        ])
        .arg("--metrics-cert-path")
        .arg(empty.path())
        .env_remove("KUBERNETES_SERVICE_HOST");
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("could not use the metrics serving certificate"),
        "{stderr}"
    );
}

async fn eventually_get(operator: &mut Operator, port: u16, path: &str) -> String {
    let started = Instant::now();
    loop {
        operator.assert_running();
        if let Some((200, body)) = http_get(port, path).await {
            return body;
        }
        assert!(
            started.elapsed() < WAIT,
            "{path} never answered 200\n{}",
            operator.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `--log-format json` writes one JSON object per line.
#[tokio::test]
async fn log_format_json_writes_json_lines() {
    let cluster = Cluster::start().await;
    let mut operator = cluster.started(&["--log-format", "json"]).await;
    cluster.gateway("ai-gateway", "ai-gateway", &[]);
    eventually("a Ready gateway", &mut operator, || {
        is_ready(cluster.gateway_object("ai-gateway", "ai-gateway"))
    })
    .await;
    let log = operator.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "the operator logs at info by default");
    for line in lines {
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(value["level"].is_string(), "{line}");
    }
}

/// `--concurrency 1` reconciles one gateway at a time: with a slow API server, the
/// children of one gateway are applied before the next gateway's. `0` is refused.
#[tokio::test]
async fn concurrency_flag_bounds_parallel_reconciles() {
    let cluster = Cluster::start().await;
    let namespaces = ["c1", "c2", "c3", "c4"];
    // Slow applies make parallel reconciles overlap if the bound is not honoured.
    cluster.server.faults().add_latency(
        RequestMatch::any().verb("patch").resource("configmaps"),
        Duration::from_millis(300),
    );
    let mut operator = cluster.started(&["--concurrency", "1"]).await;
    for namespace in namespaces {
        cluster.gateway(namespace, "gw", &[]);
    }
    for namespace in namespaces {
        // The Service is applied after the Deployment: wait for the last child.
        eventually("every Deployment and Service", &mut operator, || {
            cluster
                .deployment(namespace, "gw")
                .and(cluster.object("v1", "Service", namespace, "gw"))
        })
        .await;
    }
    let children: Vec<String> = cluster
        .server
        .requests()
        .iter()
        .filter(|r| {
            r.field_manager == FIELD_MANAGER
                && r.verb == "patch"
                && r.subresource.is_empty()
                && ["configmaps", "deployments", "services"].contains(&r.resource.as_str())
        })
        .map(|r| r.namespace.clone())
        .collect();
    let mut runs: Vec<(String, usize)> = Vec::new();
    for namespace in &children {
        match runs.last_mut() {
            Some((last, count)) if last == namespace => *count += 1,
            _ => runs.push((namespace.clone(), 1)),
        }
    }
    assert!(
        runs.iter().all(|(_, count)| *count >= 3),
        "one gateway's ConfigMap, Deployment and Service are applied together: {children:?}"
    );

    let output = Command::new(env!("CARGO_BIN_EXE_litellm-impl"))
        .args(["run", "--concurrency", "0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--concurrency"), "{stderr}");
}

/// `--kubeconfig` chooses the cluster; an unusable one is one line naming the file and
/// the flag.
#[tokio::test]
async fn kubeconfig_flag_chooses_the_cluster() {
    let cluster = Cluster::start().await;
    let mut operator = cluster.started(&[]).await;
    cluster.gateway("ai-gateway", "ai-gateway", &[]);
    eventually("a Ready gateway", &mut operator, || {
        is_ready(cluster.gateway_object("ai-gateway", "ai-gateway"))
    })
    .await;
    drop(operator);

    let missing = cluster.dir.path().join("missing.kubeconfig");
    let output = Command::new(env!("CARGO_BIN_EXE_litellm-impl"))
        .arg("run")
        .arg("--kubeconfig")
        .arg(&missing)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains(missing.to_str().unwrap()) && errors[0].contains("--kubeconfig"),
        "{stderr}"
    );
}

/// A served kind whose resources the API server does not serve, or may not be listed
/// (an upgrade that kept the old RBAC): `run` stops at start with one line naming the
/// resource and what to do, instead of staying unready with every kind waiting.
#[tokio::test]
async fn a_kind_whose_resources_are_missing_or_forbidden_fails_at_start_in_one_line() {
    let cluster = Cluster::start().await;
    cluster.server.faults().fail_fraction(
        1.0,
        RequestMatch::any().verb("list").resource("toolroutes"),
        403,
    );
    let mut operator = cluster.run(&[]);
    assert_eq!(operator.exit().await.code(), Some(3), "{}", operator.log());
    let log = operator.log();
    let errors: Vec<&str> = log.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{log}");
    for expected in [
        "may not list toolroutes.runtime.agentic-layer.ai",
        "which serving ToolGateways needs",
        "deploy/rbac.yaml",
        "--gateway-kinds",
    ] {
        assert!(errors[0].contains(expected), "{expected:?} missing: {log}");
    }
    // Without the ToolGateway kind, the same cluster is served.
    let operator = cluster.started(&["--gateway-kinds", "ai-gateway"]).await;
    drop(operator);
    cluster.server.faults().clear();

    let empty = ApiServer::builder().build();
    for crd in aigateway_api::crds::all()
        .into_iter()
        .filter(|crd| crd.spec.names.plural != "toolservers")
    {
        empty.install_crd(crd).await.unwrap();
    }
    let http = empty
        .serve_http("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let kubeconfig = cluster.dir.path().join("no-toolservers");
    http.write_kubeconfig(&kubeconfig).unwrap();
    let mut operator = cluster.run_with(&kubeconfig, &[]);
    assert_eq!(operator.exit().await.code(), Some(3), "{}", operator.log());
    let log = operator.log();
    assert!(
        log.contains(
            "does not serve toolservers.runtime.agentic-layer.ai, which serving ToolGateways needs"
        ),
        "{log}"
    );
}

/// When every write fails (an API server that cannot store anything), every gateway
/// fails at every retry: the log stays at a few lines a second and names no gateway more
/// than a few times. The fault tier on the real control plane found hundreds of lines a
/// second: one warning per failed reconcile.
#[tokio::test(flavor = "multi_thread")]
async fn failing_writes_of_many_gateways_log_a_few_lines_a_second() {
    let cluster = Cluster::start().await;
    cluster
        .server
        .faults()
        .fail_fraction(1.0, RequestMatch::any().verb("patch"), 500);
    let gateways: Vec<(String, String)> = (0..100)
        .map(|i| (format!("ns-{}", i % 4), format!("gw-{i:03}")))
        .collect();
    for (namespace, name) in &gateways {
        cluster.gateway(namespace, name, &[]);
    }
    let mut operator = cluster.started(&["--log-format", "json"]).await;
    let watched = Duration::from_secs(10);
    tokio::time::sleep(watched).await;
    operator.assert_running();
    let log = operator.log();
    let failures = log
        .lines()
        .filter(|l| l.contains("reconcile failed"))
        .count();
    assert!(failures >= 1, "the failures are logged:\n{log}");
    assert!(
        failures <= 3 + watched.as_secs() as usize,
        "{failures} failure lines in {watched:?}:\n{log}"
    );
    for (namespace, name) in &gateways {
        let lines = log
            .lines()
            .filter(|l| l.contains(&format!("{namespace}/{name}")))
            .count();
        assert!(
            lines <= 2,
            "{namespace}/{name} is named in {lines} lines:\n{log}"
        );
    }
    assert!(
        log.lines().any(|l| serde_json::from_str::<Value>(l)
            .is_ok_and(|v| v["held_back"].as_u64().unwrap_or(0) > 0)),
        "the lines held back are counted:\n{log}"
    );
}

/// A replica whose link to the API server is dead (its requests hang, nothing fails
/// fast) says so on `/readyz` once a Lease request goes unanswered, keeps `/healthz` at
/// 200, and is ready again once the link is back. The fault tier found `/readyz` at 200
/// through a 30-s cut: the hung watches reported nothing, and once the lease lapsed the
/// instance reported itself a ready standby.
#[tokio::test(flavor = "multi_thread")]
async fn readyz_fails_while_the_api_server_does_not_answer() {
    let cluster = Cluster::start().await;
    cluster.namespace("ops");
    let proxy = aigateway_testkit::cut_proxy::CutProxy::start(cluster._http.addr()).unwrap();
    let kubeconfig = cluster.dir.path().join("proxied.kubeconfig");
    std::fs::write(
        &kubeconfig,
        cluster._http.kubeconfig_yaml().replace(
            &cluster._http.addr().to_string(),
            &proxy.address().to_string(),
        ),
    )
    .unwrap();
    let mut operator =
        cluster.run_with(&kubeconfig, &["--leader-elect", "--lease-namespace", "ops"]);
    let port = operator.admin_port;
    eventually_get(&mut operator, port, "/readyz").await;

    proxy.cut();
    // The leader renews every 10 s; a renewal times out after 5 s.
    let cut = Instant::now();
    let body = loop {
        operator.assert_running();
        if let Some((503, body)) = http_get(port, "/readyz").await {
            break body;
        }
        assert!(
            cut.elapsed() < WAIT,
            "/readyz never failed behind the cut\n{}",
            operator.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        body.contains("the API server did not answer requests for Lease ops/"),
        "{body}"
    );
    assert_eq!(http_get(port, "/healthz").await.map(|(c, _)| c), Some(200));

    proxy.restore();
    eventually_get(&mut operator, port, "/readyz").await;
    operator.assert_running();
}
