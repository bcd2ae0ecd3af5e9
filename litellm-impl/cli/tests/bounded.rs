//! Bounded memory and work (issue 11, item 5; issue 20), shown on the built
//! `litellm-impl` binary as a separate process against the testkit API server over HTTP:
//! Secrets no gateway reads neither grow the operator's memory nor reconcile anything,
//! nor do the annotations of Secrets and ConfigMaps, a Secret a gateway reads still
//! re-renders it, a persistent 409 on a gateway's status backs off exponentially, and a
//! tenant whose failing route keeps changing gets one warning per 30 s.
//!
//! The gateway lists a Guard, the case in which any Secret change of its namespace used
//! to re-run it (the Guard's provider may need credentials).

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aigateway_testkit::{ApiServer, HttpServer, RequestMatch};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Generous: two busy cores may also be compiling other tests.
const WAIT: Duration = Duration::from_secs(120);
const NS: &str = "team";

const OBJECTS: &str = include_str!("fixtures/guarded-gateway.yaml");

/// A ToolGateway `victim/tools` (the default ToolGatewayClass) and a namespace
/// `attacker` for the tenant's route.
const TOOL_OBJECTS: &str = "\
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

/// The testkit on loopback HTTP, the CRDs, the default class, a guarded gateway `gw`
/// with its Secret, and the operator binary running against it.
struct Setup {
    server: ApiServer,
    _http: HttpServer,
    dir: tempfile::TempDir,
    operator: Child,
    log: PathBuf,
    admin_port: u16,
}

/// Starts the operator binary against `kubeconfig` with `args`, its plain /metrics on
/// `metrics_port` and its log in `log`.
fn spawn_operator(
    kubeconfig: &std::path::Path,
    metrics_port: u16,
    log: &std::path::Path,
    args: &[&str],
) -> Child {
    Command::new(env!("CARGO_BIN_EXE_litellm-impl"))
        .arg("run")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        // Only /metrics, plain: the testkit has no TokenReview to check a scraper.
        .args([
            "--health-probe-bind-address=0",
            &format!("--metrics-bind-address=127.0.0.1:{metrics_port}"),
            "--metrics-secure=false",
        ])
        .args(args)
        .env("POD_NAME", "bounded-operator")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBECONFIG")
        .env_remove("WATCH_NAMESPACE")
        .env_remove("POD_NAMESPACE")
        .env_remove("HEALTH_PROBE_BIND_ADDRESS")
        .env_remove("METRICS_BIND_ADDRESS")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(log).unwrap())
        .spawn()
        .expect("the litellm-impl binary starts")
}

impl Setup {
    /// The guarded gateway `gw`, Ready.
    async fn start() -> Self {
        let setup = Self::start_with(OBJECTS, &[]).await;
        setup
            .eventually("gw Ready", || async {
                setup.condition("Ready").as_deref() == Some("True")
            })
            .await;
        setup
    }

    /// `objects` (after the default class), and the operator started with `args`.
    async fn start_with(objects: &str, args: &[&str]) -> Self {
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
        server.apply_manifests(objects).unwrap();
        let admin_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.path().join("operator.log");
        let operator = spawn_operator(&kubeconfig, admin_port, &log, args);
        Setup {
            server,
            _http: http,
            dir,
            operator,
            log,
            admin_port,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the operator and starts a new one, which lists every cache afresh, and
    /// waits until it has reconciled the gateway.
    async fn restart_operator(&mut self) {
        let _ = self.operator.kill();
        let _ = self.operator.wait();
        self.log = self.dir.path().join("operator-restarted.log");
        self.operator = spawn_operator(
            &self.dir.path().join("kubeconfig"),
            self.admin_port,
            &self.log,
            &[],
        );
        self.reconciled().await;
    }

    /// Waits until the operator answers /metrics and has reconciled something.
    async fn reconciled(&self) {
        self.eventually("a reconcile", || async {
            http_get(self.admin_port, "/metrics")
                .await
                .is_some_and(|m| {
                    m.lines()
                        .any(|l| l.starts_with("aigateway_reconciles_total") && !l.ends_with(" 0"))
                })
        })
        .await;
    }

    /// Fails when the operator process has exited (an OOM kill, a crash).
    fn assert_running(&mut self) {
        if let Some(status) = self.operator.try_wait().unwrap() {
            panic!("the operator exited ({status}):\n{}", self.log());
        }
    }

    fn gateway(&self) -> Value {
        self.server
            .get_object(
                "runtime.agentic-layer.ai/v1alpha1",
                "AiGateway",
                Some(NS),
                "gw",
            )
            .expect("gw exists")
    }

    fn condition(&self, type_: &str) -> Option<String> {
        self.gateway()["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == type_)
            .and_then(|c| c["status"].as_str())
            .map(str::to_owned)
    }

    /// The pod template's hash of the Secrets the gateway reads.
    fn secret_hash(&self) -> String {
        self.server
            .get_object("apps/v1", "Deployment", Some(NS), "gw")
            .map(|d| d["spec"]["template"]["metadata"]["annotations"]["gateway.agentic-layer.ai/secret-hash"].to_string())
            .unwrap_or_default()
    }

    async fn eventually<F, Fut>(&self, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let started = Instant::now();
        while !check().await {
            assert!(
                started.elapsed() < WAIT,
                "timed out waiting for {what}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A sample of the operator's `/metrics`: the sum of the series whose line starts
    /// with `series` (name and, optionally, labels).
    async fn metric(&self, series: &str) -> f64 {
        let body = http_get(self.admin_port, "/metrics")
            .await
            .unwrap_or_else(|| panic!("/metrics did not answer\n{}", self.log()));
        body.lines()
            .filter(|l| l.starts_with(series))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    async fn reconciles(&self) -> f64 {
        self.metric("aigateway_reconciles_total").await
    }

    /// Object events the operator's ConfigMap cache has received.
    async fn config_map_events(&self) -> f64 {
        self.metric("aigateway_watch_events_total{kind=\"shared\",cache=\"related ConfigMap\"}")
            .await
    }

    /// Object events the operator's Secret cache has received.
    async fn secret_events(&self) -> f64 {
        self.metric("aigateway_watch_events_total{kind=\"shared\",cache=\"related Secret\"}")
            .await
    }

    /// Waits until no reconcile ran for a second: the operator is idle.
    async fn settled(&self) -> f64 {
        let mut last = self.reconciles().await;
        let started = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = self.reconciles().await;
            if now == last {
                return now;
            }
            assert!(started.elapsed() < WAIT, "never idle\n{}", self.log());
            last = now;
        }
    }

    /// The operator's peak resident set size (`VmHWM`), in KiB.
    fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.operator.id()))
            .expect("the operator runs");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/<pid>/status")
    }

    /// Stores Secret `name` in the gateway's namespace with `bytes` of data.
    fn put_secret(&self, name: &str, key: &str, bytes: usize, fill: u8) {
        // Base64 of any byte string of this length: its content does not matter.
        let encoded = String::from_utf8(vec![fill; bytes / 4 * 4]).unwrap();
        self.server
            .put_object(json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": NS},
                "type": "Opaque",
                "data": {key: encoded},
            }))
            .unwrap();
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = self.operator.kill();
        let _ = self.operator.wait();
    }
}

async fn http_get(port: u16, path: &str) -> Option<String> {
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
    text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())
}

const MIB: u64 = 1024;

/// 500 Secrets of 200 KB that no gateway reads raise the operator's peak memory by
/// less than 5 MiB (they were 100 MB of data), and reconcile nothing; 20 updates of one
/// of them reconcile nothing either; an update of the Secret the gateway reads still
/// re-renders it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_no_gateway_reads_cost_no_memory_and_no_reconciles() {
    let setup = Setup::start().await;
    let reconciles = setup.settled().await;
    let events = setup.secret_events().await;
    let before_kib = setup.peak_rss_kib();

    for i in 0..500 {
        setup.put_secret(
            &format!("unrelated-{i}"),
            "blob",
            200_000,
            b'A' + (i % 26) as u8,
        );
    }
    // The operator has seen every one of them before anything is measured.
    setup
        .eventually("the operator saw the 500 Secrets", || async {
            setup.secret_events().await >= events + 500.0
        })
        .await;
    let grown_kib = setup.peak_rss_kib().saturating_sub(before_kib);
    eprintln!(
        "operator peak RSS: {before_kib} KiB before, +{grown_kib} KiB after 500 Secrets of 200 KB"
    );
    assert!(
        grown_kib < 5 * MIB,
        "500 unrelated Secrets raised the operator's peak RSS by {grown_kib} KiB"
    );
    assert_eq!(
        setup.settled().await,
        reconciles,
        "unrelated Secrets reconciled the gateway"
    );

    let events = setup.secret_events().await;
    for i in 0..20 {
        setup.put_secret("unrelated-7", "blob", 1_000, b'a' + i);
    }
    setup
        .eventually("the operator saw the 20 updates", || async {
            setup.secret_events().await >= events + 20.0
        })
        .await;
    assert_eq!(
        setup.settled().await,
        reconciles,
        "updates of an unrelated Secret reconciled the gateway"
    );

    // The Secret the gateway reads: re-rendered (its hash rolls the pods).
    let hash = setup.secret_hash();
    assert!(!hash.is_empty() && hash != "null", "{hash}");
    setup.put_secret("api-key-secrets", "OPENAI_API_KEY", 8, b'B');
    setup
        .eventually("a new secret hash", || async {
            setup.secret_hash() != hash
        })
        .await;
    assert!(setup.reconciles().await > reconciles);
}

/// The annotations a tenant can put on its objects (256 KiB each at most) of every
/// Secret and ConfigMap in the cluster: 300 Secrets and 200 ConfigMaps with 250 KB of
/// annotations that no gateway reads raise the operator's peak RSS by less than 10 MiB,
/// while they are created (watch events) and when a new operator lists them all at
/// start (a relist). The metadata caches used to keep every annotation, once per
/// gateway kind: 500 such objects took the operator from 19.5 MB to 269 MB, past its
/// 256 MiB limit, and it crash-looped on each relist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotations_of_objects_no_gateway_reads_cost_no_memory() {
    let mut setup = Setup::start().await;
    let reconciles = setup.settled().await;
    let (secrets, config_maps) = (setup.secret_events().await, setup.config_map_events().await);
    let before_kib = setup.peak_rss_kib();

    let annotations = |i: usize| {
        // 250 KB in one value, different per object (nothing to share).
        let fill = (b'a' + (i % 26) as u8) as char;
        json!({"example.com/blob": format!("{i}-{}", fill.to_string().repeat(250_000))})
    };
    for i in 0..300 {
        setup
            .server
            .put_object(json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": format!("annotated-{i}"), "namespace": NS, "annotations": annotations(i)},
                "type": "Opaque", "data": {"k": "dg=="},
            }))
            .unwrap();
    }
    for i in 0..200 {
        setup
            .server
            .put_object(json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": format!("annotated-{i}"), "namespace": NS, "annotations": annotations(i)},
                "data": {"k": "v"},
            }))
            .unwrap();
    }
    setup
        .eventually("the operator saw the 500 objects", || async {
            setup.secret_events().await >= secrets + 300.0
                && setup.config_map_events().await >= config_maps + 200.0
        })
        .await;
    let grown_kib = setup.peak_rss_kib().saturating_sub(before_kib);
    eprintln!(
        "operator peak RSS: {before_kib} KiB before, +{grown_kib} KiB after 300 Secrets and 200 ConfigMaps with 250 KB of annotations"
    );
    assert!(
        grown_kib < 10 * MIB,
        "500 annotated objects raised the operator's peak RSS by {grown_kib} KiB"
    );
    assert_eq!(
        setup.settled().await,
        reconciles,
        "objects no gateway reads reconciled the gateway"
    );
    setup.assert_running();

    // A new operator lists all of them at start.
    setup.restart_operator().await;
    setup.settled().await;
    let relisted_kib = setup.peak_rss_kib();
    eprintln!("a new operator's peak RSS after listing them: {relisted_kib} KiB");
    assert!(
        relisted_kib < before_kib + 10 * MIB,
        "listing 500 annotated objects took a new operator to {relisted_kib} KiB (the first was at {before_kib} KiB without them)"
    );
    setup.assert_running();
    // The Secret the gateway reads is still read: its change rolls the pods.
    let hash = setup.secret_hash();
    setup.put_secret("api-key-secrets", "OPENAI_API_KEY", 8, b'C');
    setup
        .eventually("a new secret hash", || async {
            setup.secret_hash() != hash
        })
        .await;
}

/// Every status write of one gateway answers 409: the retries space out (200 ms
/// doubling, with jitter) instead of hammering the API server every 200 ms; once the
/// conflicts stop, the status is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_conflict_on_status_backs_off_exponentially() {
    let setup = Setup::start().await;
    setup.settled().await;
    let status_patches = RequestMatch::any()
        .verb("patch")
        .resource("aigateways")
        .subresource("status")
        .namespace(NS)
        .name("gw");
    setup
        .server
        .faults()
        .fail_fraction(1.0, status_patches, 409);
    let conflicts = || {
        setup
            .server
            .requests()
            .iter()
            .filter(|r| {
                r.verb == "patch"
                    && r.resource == "aigateways"
                    && r.subresource == "status"
                    && r.name == "gw"
                    && r.status == 409
            })
            .count()
    };
    let seen = conflicts();
    // Someone drops our conditions: the operator must write them back, and cannot.
    let mut gateway = setup.gateway();
    gateway["status"]["conditions"] = json!([]);
    setup.server.put_object(gateway).unwrap();

    // When each attempt arrived, as seen by polling the request log.
    let mut attempts: Vec<Instant> = Vec::new();
    let started = Instant::now();
    while attempts.len() < 6 {
        let count = conflicts() - seen;
        while attempts.len() < count {
            attempts.push(Instant::now());
        }
        assert!(
            started.elapsed() < WAIT,
            "only {} attempts\n{}",
            attempts.len(),
            setup.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let gaps: Vec<f64> = attempts
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    eprintln!("gaps between status attempts (s): {gaps:.2?}");
    // 200 ms doubling with ±25 % jitter: 0.2, 0.4, 0.8, 1.6, 3.2 s (at least 4.65 s in
    // all); a fixed 200 ms retry takes about 1 s for the five.
    assert!(
        gaps.iter().sum::<f64>() >= 4.0,
        "five retries within {:.2} s: {gaps:.2?}",
        gaps.iter().sum::<f64>()
    );
    assert!(
        gaps[4] > 3.0 * gaps[0],
        "the retries do not space out: {gaps:.2?}"
    );

    setup.server.faults().clear();
    setup
        .eventually("the conditions written back", || async {
            setup.condition("Ready").as_deref() == Some("True")
        })
        .await;
}

/// A tenant that keeps changing a route whose writes fail (here: every patch of it
/// answers 422, as the API server answers an object at its annotation limit) re-runs the
/// gateway it names at every change. That used to log one WARN line per attempt, filed
/// under the victim's gateway (6,152 lines in 60 s); now at most one line per object per
/// 30 s, filed under the route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_tenant_gets_one_warning_per_window_filed_under_its_route() {
    let setup =
        Setup::start_with(TOOL_OBJECTS, &["--log-format=json", "--leader-elect=false"]).await;
    // Every write of the tenant's route fails, whatever the operator writes to it.
    setup.server.faults().fail_fraction(
        1.0,
        RequestMatch::any()
            .verb("patch")
            .resource("toolroutes")
            .namespace("attacker")
            .name("r"),
        422,
    );
    setup.server.put_object(tenant_route(0)).unwrap();
    setup.reconciled().await;
    let before = setup.reconciles().await;

    // The tenant changes its route in a loop for 15 s: each change re-runs the gateway.
    let looping = Instant::now();
    let mut generation = 1;
    while looping.elapsed() < Duration::from_secs(15) {
        setup.server.put_object(tenant_route(generation)).unwrap();
        generation += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = setup.reconciles().await;
    assert!(
        after - before >= 50.0,
        "the loop re-ran the gateway only {} times: the test shows nothing",
        after - before
    );

    let text = setup.log();
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

/// The tenant's route `attacker/r`, naming `victim/tools`, at its `generation`-th change.
fn tenant_route(generation: u64) -> Value {
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
