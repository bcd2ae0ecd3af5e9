//! Outside-in end-to-end test: the built `litellm-impl run` binary, as a separate
//! process, against the testkit API server over HTTP, driven with real `kubectl`.
//!
//! The test starts the in-memory API server in this process (so it can read the request
//! counters), installs the CRDs printed by `litellm-impl crds`, starts the operator with
//! `run --kubeconfig`, applies the sample class, gateways and Secrets from
//! `examples/manifests/`, and then checks what a user would check: every gateway Ready,
//! the rendered ConfigMap, Deployment and Service, `/readyz`, a silent steady state, pods
//! rolled on gateway and Secret edits, children collected on delete, and a clean exit
//! on SIGTERM. A second test does the same with leader election on.
//!
//! Skips (with a printed reason) only when kubectl is not installed.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use aigateway_runtime::testing::eventually_within;
use aigateway_testkit::{ApiServer, HttpServer, StatCount, Stats, WRITE_VERBS};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The operator's field manager (and `app.kubernetes.io/managed-by` value).
const FIELD_MANAGER: &str = "ai-gateway-litellm-controller";
const CONFIG_HASH: &str = "gateway.agentic-layer.ai/config-hash";
const SECRET_HASH: &str = "gateway.agentic-layer.ai/secret-hash";
/// Generous: two busy cores may also be compiling other tests.
const WAIT: Duration = Duration::from_secs(60);

/// The sample gateways as `(namespace, name)`, with the sample file they come from.
const GATEWAYS: &[(&str, &str, &str)] = &[
    ("basic-gateway.yaml", "ai-gateway", "ai-gateway"),
    ("multi-provider-gateway.yaml", "team-a", "multi-provider"),
    (
        "guarded-gateway.yaml",
        "ai-gateway-guarded",
        "ai-gateway-pii",
    ),
    (
        "config-patched-gateway.yaml",
        "ai-gateway-patched",
        "ai-gateway",
    ),
];

fn kubectl_available() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn manifests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/manifests")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The operator child process; killed on drop so a failing test leaves nothing behind.
struct Operator {
    child: Child,
    log: PathBuf,
    /// Where /metrics answers, over plain HTTP (the testkit has no TokenReview).
    metrics_port: u16,
}

impl Operator {
    /// Starts the operator with its probes on `probe_port`.
    fn start(kubeconfig: &Path, probe_port: u16, extra: &[&str], log: PathBuf) -> Self {
        let stderr = File::create(&log).unwrap();
        let metrics_port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_litellm-impl"))
            .arg("run")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg(format!(
                "--health-probe-bind-address=127.0.0.1:{probe_port}"
            ))
            .arg(format!("--metrics-bind-address=127.0.0.1:{metrics_port}"))
            .arg("--metrics-secure=false")
            .args(extra)
            .env("RUST_LOG", "info")
            .env("POD_NAME", "e2e-operator")
            .env_remove("KUBECONFIG")
            .env_remove("WATCH_NAMESPACE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("the litellm-impl binary starts");
        Operator {
            child,
            log,
            metrics_port,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Asserts the process is still running (it must not die on its own).
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("the operator exited early with {status}\n{}", self.log());
        }
    }

    /// Sends SIGTERM and waits up to `limit` for the exit status.
    async fn terminate(&mut self, limit: Duration) -> Option<(ExitStatus, Duration)> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid} failed");
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some((status, started.elapsed()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
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

struct Kubectl {
    kubeconfig: PathBuf,
    home: PathBuf,
}

impl Kubectl {
    async fn run(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        let mut child = tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            // kubectl caches discovery under $HOME/.kube: keep it in the test's tempdir.
            .env("HOME", &self.home)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("kubectl starts");
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).await.unwrap();
        }
        drop(input);
        child.wait_with_output().await.unwrap()
    }

    /// Runs and requires success; returns stdout.
    async fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, None).await
    }

    async fn ok_with(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin).await;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json", "--show-managed-fields"]);
        serde_json::from_str(&self.ok(&all).await).unwrap()
    }
}

/// The API server, its HTTP endpoint, a kubeconfig and kubectl, in one tempdir.
struct Cluster {
    server: ApiServer,
    http: HttpServer,
    kubectl: Kubectl,
    dir: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Self {
        let server = ApiServer::builder()
            .deployment_ready_delay(Duration::from_millis(200))
            .build();
        let http = server
            .serve_http("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        http.write_kubeconfig(&kubeconfig).unwrap();
        let kubectl = Kubectl {
            kubeconfig,
            home: dir.path().to_owned(),
        };
        Cluster {
            server,
            http,
            kubectl,
            dir,
        }
    }

    /// Installs the CRDs `litellm-impl crds` prints, with server-side apply, and waits
    /// until they are Established.
    async fn install_crds(&self) {
        let crds = Command::new(env!("CARGO_BIN_EXE_litellm-impl"))
            .arg("crds")
            .output()
            .unwrap();
        assert!(crds.status.success());
        let crds = String::from_utf8(crds.stdout).unwrap();
        let out = self
            .kubectl
            .ok_with(&["apply", "--server-side", "-f", "-"], Some(&crds))
            .await;
        for crd in [
            "aigatewayclasses.runtime.agentic-layer.ai",
            "aigateways.runtime.agentic-layer.ai",
            "guards.runtime.agentic-layer.ai",
            "guardrailproviders.runtime.agentic-layer.ai",
        ] {
            assert!(out.contains(crd), "{crd} not applied:\n{out}");
        }
        self.kubectl
            .ok(&[
                "wait",
                "--for=condition=Established",
                "crd",
                "--all",
                "--timeout=30s",
            ])
            .await;
    }

    async fn apply_file(&self, file: &str) -> String {
        let path = manifests_dir().join(file);
        self.kubectl
            .ok(&["apply", "-f", path.to_str().unwrap()])
            .await
    }

    async fn wait_ready(&self, namespace: &str, name: &str, operator: &Operator) {
        let target = format!("aigw/{name}");
        let out = self
            .kubectl
            .run(
                &[
                    "wait",
                    "--for=condition=Ready",
                    &target,
                    "-n",
                    namespace,
                    "--timeout=60s",
                ],
                None,
            )
            .await;
        if !out.status.success() {
            let status = self
                .kubectl
                .ok(&["get", &target, "-n", namespace, "-o", "yaml"])
                .await;
            panic!(
                "{namespace}/{name} did not become Ready: {}\n{status}\noperator log:\n{}",
                String::from_utf8_lossy(&out.stderr),
                operator.log()
            );
        }
    }
}

/// An `api-key-secrets` Secret with one placeholder key.
fn api_key_secret(namespace: &str, key: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: api-key-secrets\n  namespace: {namespace}\ntype: Opaque\nstringData:\n  OPENAI_API_KEY: {key}\n"
    )
}

/// GET on the operator's admin server; returns the status code and body.
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
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((code, body))
}

/// Polls `/readyz` until it answers 200.
async fn wait_readyz(port: u16, operator: &mut Operator) {
    let started = Instant::now();
    loop {
        operator.assert_running();
        if let Some((200, _)) = http_get(port, "/readyz").await {
            return;
        }
        assert!(
            started.elapsed() < WAIT,
            "/readyz never answered 200\n{}",
            operator.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn is_write(count: &StatCount) -> bool {
    WRITE_VERBS.contains(&count.verb.as_str())
}

/// Whether `manager` is the operator's field manager or its status field manager.
fn is_ours(manager: &str) -> bool {
    manager == FIELD_MANAGER
        || manager
            == aigateway_runtime::names::status_field_manager(
                FIELD_MANAGER,
                litellm_impl::names::CONTROLLER_NAME,
            )
}

/// Writes the operator is responsible for: anything under its field managers except the
/// Lease (leader election renews it by design), plus Events (the event recorder sends no
/// field manager).
fn operator_writes(stats: &Stats) -> u64 {
    stats
        .counts
        .iter()
        .filter(|c| is_write(c))
        .filter(|c| (is_ours(&c.field_manager) && c.resource != "leases") || c.resource == "events")
        .map(|c| c.count)
        .sum()
}

/// The write counters that grew between two snapshots (Leases excluded), for messages.
fn writes_between(before: &Stats, after: &Stats) -> Vec<String> {
    after
        .counts
        .iter()
        .filter(|c| is_write(c) && c.resource != "leases")
        .filter_map(|c| {
            let old = before
                .counts
                .iter()
                .find(|b| {
                    b.verb == c.verb
                        && b.group == c.group
                        && b.resource == c.resource
                        && b.field_manager == c.field_manager
                })
                .map_or(0, |b| b.count);
            (c.count > old).then(|| {
                format!(
                    "{} {}/{} by {:?}: {}",
                    c.verb,
                    c.group,
                    c.resource,
                    c.field_manager,
                    c.count - old
                )
            })
        })
        .collect()
}

fn annotation(deployment: &Value, key: &str) -> String {
    deployment["spec"]["template"]["metadata"]["annotations"][key]
        .as_str()
        .unwrap_or_else(|| panic!("pod template annotation {key} missing: {deployment}"))
        .to_owned()
}

fn condition<'a>(gateway: &'a Value, type_: &str) -> &'a Value {
    gateway["status"]["conditions"]
        .as_array()
        .and_then(|list| list.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("condition {type_} missing: {}", gateway["status"]))
}

/// Checks the ConfigMap, Deployment and Service of one gateway; returns the Deployment.
async fn check_children(kubectl: &Kubectl, namespace: &str, name: &str) -> Value {
    let gateway = kubectl
        .json(&["get", "aigateway", name, "-n", namespace])
        .await;
    let uid = gateway["metadata"]["uid"].as_str().unwrap().to_owned();
    for type_ in [
        "Accepted",
        "ResolvedRefs",
        "Programmed",
        "Ready",
        "AiGatewayConfigured",
        "AiGatewayReady",
    ] {
        assert_eq!(
            condition(&gateway, type_)["status"],
            "True",
            "{namespace}/{name} {type_}: {}",
            condition(&gateway, type_)
        );
    }
    assert_eq!(
        condition(&gateway, "Ready")["observedGeneration"],
        gateway["metadata"]["generation"]
    );

    let config_map = kubectl
        .json(&[
            "get",
            "configmap",
            &format!("{name}-config"),
            "-n",
            namespace,
        ])
        .await;
    let deployment = kubectl
        .json(&["get", "deployment", name, "-n", namespace])
        .await;
    let service = kubectl
        .json(&["get", "service", name, "-n", namespace])
        .await;
    for child in [&config_map, &deployment, &service] {
        let kind = child["kind"].as_str().unwrap();
        assert_eq!(
            child["metadata"]["labels"]["app.kubernetes.io/managed-by"], FIELD_MANAGER,
            "{kind} of {namespace}/{name}"
        );
        let owner = &child["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "AiGateway", "{kind} of {namespace}/{name}");
        assert_eq!(owner["uid"], uid.as_str(), "{kind} of {namespace}/{name}");
        assert_eq!(owner["controller"], true, "{kind} of {namespace}/{name}");
        let managers: Vec<&str> = child["metadata"]["managedFields"]
            .as_array()
            .map(|m| m.iter().filter_map(|f| f["manager"].as_str()).collect())
            .unwrap_or_default();
        assert!(
            managers.contains(&FIELD_MANAGER),
            "{kind} of {namespace}/{name} not applied by {FIELD_MANAGER}: {managers:?}"
        );
    }

    let config = config_map["data"]["config.yaml"].as_str().unwrap();
    assert!(config.contains("model_list:"), "{config}");
    for model in gateway["spec"]["aiModels"].as_array().unwrap() {
        let id = format!(
            "model: {}/{}",
            model["provider"].as_str().unwrap(),
            model["name"].as_str().unwrap()
        );
        assert!(
            config.contains(&id),
            "{namespace}/{name}: {id} missing from\n{config}"
        );
    }

    let template = &deployment["spec"]["template"];
    let hash = annotation(&deployment, CONFIG_HASH);
    assert_eq!(hash.len(), 16, "{hash}");
    assert!(hash.chars().all(|c| c.is_ascii_hexdigit()), "{hash}");
    annotation(&deployment, SECRET_HASH);
    let container = &template["spec"]["containers"][0];
    assert_eq!(container["name"], "litellm");
    let key = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "OPENAI_API_KEY")
        .unwrap_or_else(|| panic!("no OPENAI_API_KEY env: {container}"));
    assert_eq!(
        key["valueFrom"]["secretKeyRef"]["name"], "api-key-secrets",
        "the key is referenced, not copied: {key}"
    );
    let mounted = template["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["configMap"]["name"] == format!("{name}-config"));
    assert!(mounted, "the config ConfigMap is not mounted: {template}");
    let replicas = deployment["spec"]["replicas"].as_i64().unwrap();
    assert_eq!(
        deployment["status"]["availableReplicas"].as_i64(),
        Some(replicas)
    );

    let port = gateway["spec"]["port"].as_i64().unwrap_or(80);
    assert_eq!(service["spec"]["ports"][0]["port"].as_i64(), Some(port));
    assert_eq!(service["spec"]["selector"]["app"], name);
    assert_eq!(
        gateway["status"]["url"],
        format!("http://{name}.{namespace}.svc.cluster.local.:{port}").as_str(),
        "{}",
        gateway["status"]
    );
    deployment
}

async fn deployment_hashes(kubectl: &Kubectl, namespace: &str, name: &str) -> (String, String) {
    let deployment = kubectl
        .json(&["get", "deployment", name, "-n", namespace])
        .await;
    (
        annotation(&deployment, CONFIG_HASH),
        annotation(&deployment, SECRET_HASH),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_binary_reconciles_the_samples_and_stays_quiet() {
    if !kubectl_available() {
        println!("SKIPPED: kubectl is not installed (not found on PATH)");
        return;
    }
    let started = Instant::now();
    let cluster = Cluster::start().await;
    let k = &cluster.kubectl;
    cluster.install_crds().await;

    let admin = free_port();
    let mut operator = Operator::start(
        &k.kubeconfig,
        admin,
        &["--leader-elect=false"],
        cluster.dir.path().join("operator.log"),
    );

    let out = cluster.apply_file("litellm-class-default.yaml").await;
    assert!(
        out.contains("aigatewayclass.runtime.agentic-layer.ai/litellm created"),
        "{out}"
    );
    for (file, _, _) in GATEWAYS {
        cluster.apply_file(file).await;
    }
    // multi-provider-gateway.yaml brings its own Secret; the others get one here.
    let secrets = ["ai-gateway", "ai-gateway-guarded", "ai-gateway-patched"]
        .iter()
        .map(|ns| api_key_secret(ns, "placeholder"))
        .collect::<Vec<_>>()
        .join("---\n");
    k.ok_with(&["apply", "-f", "-"], Some(&secrets)).await;

    for (_, namespace, name) in GATEWAYS {
        cluster.wait_ready(namespace, name, &operator).await;
    }
    let class = k.json(&["get", "aigatewayclass", "litellm"]).await;
    assert_eq!(condition(&class, "Accepted")["status"], "True", "{class}");

    // The rendered children, as kubectl sees them.
    for (_, namespace, name) in GATEWAYS {
        check_children(k, namespace, name).await;
    }
    let guarded = k
        .json(&[
            "get",
            "configmap",
            "ai-gateway-pii-config",
            "-n",
            "ai-gateway-guarded",
        ])
        .await;
    let config = guarded["data"]["config.yaml"].as_str().unwrap();
    assert!(
        config.contains("guardrail_name: pii-guard") && config.contains("guardrail: presidio"),
        "{config}"
    );
    let patched = k
        .json(&[
            "get",
            "configmap",
            "ai-gateway-config",
            "-n",
            "ai-gateway-patched",
        ])
        .await;
    let config = patched["data"]["config.yaml"].as_str().unwrap();
    assert!(
        config.contains("routing_strategy: usage-based-routing-v2")
            && config.contains("drop_params: true"),
        "the config patch is not merged:\n{config}"
    );

    wait_readyz(admin, &mut operator).await;
    assert_eq!(http_get(admin, "/healthz").await.map(|r| r.0), Some(200));
    let (code, metrics) = http_get(operator.metrics_port, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert!(metrics.contains("reconciles"), "{metrics}");

    // Steady state: once the operator's last writes (the final Ready events) are in,
    // it must not write anything for 10 s.
    let stats = cluster.server.stats();
    assert!(
        operator_writes(&stats) >= 4 * 4,
        "the operator should have applied children and status: {stats:?}"
    );
    assert!(
        stats.writes_to("events") > 0,
        "events are counted: {stats:?}"
    );
    // Settled: the operator's write count has not moved for a second.
    let mut previous = operator_writes(&stats);
    let mut quiet_since = Instant::now();
    let settling = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(1) {
        assert!(
            settling.elapsed() < WAIT,
            "the operator kept writing: {:?}",
            cluster.server.stats()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = operator_writes(&cluster.server.stats());
        if now != previous {
            previous = now;
            quiet_since = Instant::now();
        }
    }
    let before = cluster.server.stats();
    let window = Instant::now();
    while window.elapsed() < Duration::from_secs(10) {
        operator.assert_running();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let after = cluster.server.stats();
    assert_eq!(
        operator_writes(&after) - operator_writes(&before),
        0,
        "the operator wrote during steady state: {:?}\noperator log:\n{}",
        writes_between(&before, &after),
        operator.log()
    );
    assert!(
        writes_between(&before, &after).is_empty(),
        "nothing but Leases may be written in steady state: {:?}",
        writes_between(&before, &after)
    );

    // A new model rolls the pods through the config hash only.
    let (config_hash, secret_hash) = deployment_hashes(k, "ai-gateway", "ai-gateway").await;
    k.ok(&[
        "patch",
        "aigateway",
        "ai-gateway",
        "-n",
        "ai-gateway",
        "--type=merge",
        "-p",
        r#"{"spec":{"aiModels":[{"provider":"openai","name":"gpt-4o-mini"},{"provider":"openai","name":"gpt-4o"}]}}"#,
    ])
    .await;
    let new_config_hash = eventually_within(
        WAIT,
        "the config hash to change after adding a model",
        || async {
            let (config, _) = deployment_hashes(k, "ai-gateway", "ai-gateway").await;
            (config != config_hash).then_some(config)
        },
    )
    .await;
    let (_, unchanged_secret_hash) = deployment_hashes(k, "ai-gateway", "ai-gateway").await;
    assert_eq!(unchanged_secret_hash, secret_hash, "no Secret changed");
    cluster
        .wait_ready("ai-gateway", "ai-gateway", &operator)
        .await;
    eventually_within(
        WAIT,
        "the gateway to be Ready for its new generation",
        || async {
            let gateway = k
                .json(&["get", "aigateway", "ai-gateway", "-n", "ai-gateway"])
                .await;
            let ready = condition(&gateway, "Ready");
            (ready["status"] == "True"
                && ready["observedGeneration"] == gateway["metadata"]["generation"])
                .then_some(())
        },
    )
    .await;
    let config = k
        .ok(&[
            "get",
            "configmap",
            "ai-gateway-config",
            "-n",
            "ai-gateway",
            "-o",
            "jsonpath={.data.config\\.yaml}",
        ])
        .await;
    assert!(config.contains("model: openai/gpt-4o\n"), "{config}");

    // A rotated key rolls the pods through the secret hash only.
    k.ok_with(
        &["apply", "-f", "-"],
        Some(&api_key_secret("ai-gateway", "rotated")),
    )
    .await;
    let rolled = eventually_within(
        WAIT,
        "the secret hash to change after editing the Secret",
        || async {
            let (config, secret) = deployment_hashes(k, "ai-gateway", "ai-gateway").await;
            (secret != secret_hash).then_some(config)
        },
    )
    .await;
    assert_eq!(rolled, new_config_hash, "the config did not change");

    // Deleting a gateway collects its children, and only those.
    k.ok(&[
        "delete",
        "aigateway",
        "ai-gateway",
        "-n",
        "ai-gateway-patched",
        "--wait=true",
    ])
    .await;
    eventually_within(
        WAIT,
        "the deleted gateway's children to be collected",
        || async {
            let left = k
                .ok(&[
                    "get",
                    "configmap/ai-gateway-config",
                    "deployment/ai-gateway",
                    "service/ai-gateway",
                    "-n",
                    "ai-gateway-patched",
                    "--ignore-not-found",
                    "-o",
                    "name",
                ])
                .await;
            left.trim().is_empty().then_some(())
        },
    )
    .await;
    k.ok(&[
        "get",
        "configmap",
        "ai-gateway-patch",
        "-n",
        "ai-gateway-patched",
    ])
    .await;
    k.ok(&["get", "deployment", "ai-gateway", "-n", "ai-gateway"])
        .await;

    // SIGTERM: a clean exit, status 0, within 10 s.
    operator.assert_running();
    let (status, took) = operator
        .terminate(Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("no exit within 10 s of SIGTERM\n{}", operator.log()));
    assert_eq!(status.code(), Some(0), "{status}\n{}", operator.log());
    println!(
        "operator exited 0 {took:?} after SIGTERM; whole test took {:?}",
        started.elapsed()
    );
    drop(cluster.http);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_binary_with_leader_election_holds_and_releases_the_lease() {
    if !kubectl_available() {
        println!("SKIPPED: kubectl is not installed (not found on PATH)");
        return;
    }
    let cluster = Cluster::start().await;
    let k = &cluster.kubectl;
    cluster.install_crds().await;
    k.ok(&["create", "namespace", "e2e-system"]).await;

    let admin = free_port();
    let mut operator = Operator::start(
        &k.kubeconfig,
        admin,
        &[
            "--leader-elect=true",
            "--lease-namespace",
            "e2e-system",
            "--lease-name",
            "litellm-impl-e2e",
        ],
        cluster.dir.path().join("operator.log"),
    );
    cluster.apply_file("litellm-class-default.yaml").await;
    cluster.apply_file("basic-gateway.yaml").await;
    k.ok_with(
        &["apply", "-f", "-"],
        Some(&api_key_secret("ai-gateway", "placeholder")),
    )
    .await;
    cluster
        .wait_ready("ai-gateway", "ai-gateway", &operator)
        .await;
    check_children(k, "ai-gateway", "ai-gateway").await;
    wait_readyz(admin, &mut operator).await;

    let lease = k
        .json(&["get", "lease", "litellm-impl-e2e", "-n", "e2e-system"])
        .await;
    assert_eq!(lease["spec"]["holderIdentity"], "e2e-operator", "{lease}");
    let stats = cluster.server.stats();
    assert!(
        stats
            .counts
            .iter()
            .any(|c| is_write(c) && c.resource == "leases" && c.field_manager == FIELD_MANAGER),
        "the lease is written under the operator's field manager: {stats:?}"
    );

    operator.assert_running();
    let (status, _) = operator
        .terminate(Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("no exit within 10 s of SIGTERM\n{}", operator.log()));
    assert_eq!(status.code(), Some(0), "{status}\n{}", operator.log());
    let lease = k
        .json(&["get", "lease", "litellm-impl-e2e", "-n", "e2e-system"])
        .await;
    assert!(
        lease["spec"]["holderIdentity"].is_null(),
        "the lease is released on shutdown: {lease}"
    );
}
