//! The fault tier: the operator (the built `litellm-impl run`, as the install bundle's
//! ServiceAccount) rolls out 200 AiGateways on a real control plane while the cluster
//! misbehaves, one fault per test:
//!
//! 1. kube-apiserver stopped for 20 s and started again on the same etcd;
//! 2. etcd frozen (SIGSTOP) for 15 s;
//! 3. watches expired: etcd compacted and restarted, so that the API server's watch
//!    cache starts over and answers the operator's resumed watches with 410 Gone;
//! 4. the operator `kill -9`ed 20 times at random moments and started again each time;
//! 5. two replicas, the leader killed at 50 % Ready;
//! 6. the leader's network to the API server cut for 30 s (longer than its lease);
//! 7. 2,000 gateway edits in 10 s while the operator's network is cut.
//!
//! After each, from the audit log and the final state: every gateway is Ready with
//! exactly its desired children; no child was deleted or created twice; the operator
//! wrote nothing it did not create (besides the gateways' status and metadata, its
//! class, Events and its Lease) and nothing outside the scenario's namespaces; no two
//! leaders wrote in the same second; its writes per gateway after the fault are at most
//! 1.5 times what a fault-free rollout, measured first in the same run, costs; the
//! operator never exited on its own; `/readyz` says 503 while it cannot reach the API
//! server; its memory stays bounded; its log stays at a few lines per second.
//!
//! Faults strike once a quarter of the gateways are Programmed (the operator applies
//! the others' children while the first ones roll out), the leader change at half Ready,
//! the kills while the restarted operator writes.
//!
//! One control plane serves every scenario (each has its own namespaces and label), so
//! the tier costs one start-up; scenarios run one at a time. Each prints its figures and
//! writes them to `target/fault-tier/<scenario>.json`. docs/explanation/reliability.md
//! explains each fault and what the operator does.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use aigateway_api::AiGateway;
use aigateway_testkit::cut_proxy::CutProxy;
use aigateway_testkit::real_cluster::{AuditEvent, AuditMark, RealCluster};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use serde_json::{Value, json};

const SYSTEM_NAMESPACE: &str = "ai-gateway-litellm-system";
const ACCOUNT_A: &str = "litellm-impl";
const ACCOUNT_B: &str = "litellm-impl-b";
const LEASE: &str = "litellm-impl";
const GATEWAYS: usize = 200;
const NAMESPACES: usize = 4;
const SCENARIO_LABEL: &str = "faults.aigateway-rs.test/scenario";
const GATEWAY_LABEL: &str = "aigateway.agentic-layer.ai/gateway";
/// How long any rollout may take before a scenario fails (the real pace is well under).
const ROLLOUT_LIMIT: Duration = Duration::from_secs(240);

fn user(account: &str) -> String {
    format!("system:serviceaccount:{SYSTEM_NAMESPACE}:{account}")
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

// ---------------------------------------------------------------------------------------
// The shared control plane and the fault-free baseline
// ---------------------------------------------------------------------------------------

/// The control plane every scenario of this binary shares, with the install bundle (its
/// manager Deployment scaled to zero: the operator under test is the built binary) and a
/// second ServiceAccount with the same rights, so that two replicas tell apart in the
/// audit log.
struct Tier {
    cluster: RealCluster,
}

static TIER: OnceLock<Tier> = OnceLock::new();

fn tier() -> &'static Tier {
    TIER.get_or_init(|| {
        // kube-controller-manager's client limit (20 requests a second by default) would
        // set the pace of every rollout: 200 Deployments take about a minute behind it.
        // Raised, the tier runs at the machine's pace (and in the CI budget); the
        // operator's own requests and the API server's latency are unchanged.
        // And the Node's lease lapses while the API server is stopped or etcd frozen:
        // marked NotReady, its pods turn unready, and kwok (unlike a kubelet) never makes
        // them ready again, so gateways whose pods it held would stay unready for a
        // reason that is not the operator's.
        let cluster = RealCluster::start_with_env(&[
            ("CONTROLLER_MANAGER_QPS", "200"),
            ("CONTROLLER_MANAGER_BURST", "400"),
            ("CONTROLLER_MANAGER_NODE_MONITOR_GRACE_PERIOD", "10m"),
        ])
        .expect("the real control plane starts");
        cluster
            .stop_when_process_exits()
            .expect("the control plane's watchdog starts");
        let kubectl = |args: &[&str]| {
            let out = cluster.kubectl().args(args).output().unwrap();
            assert!(
                out.status.success(),
                "kubectl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let deploy = workspace().join("deploy");
        kubectl(&[
            "apply",
            "--server-side",
            "-f",
            deploy.join("crds").to_str().unwrap(),
        ]);
        cluster.wait_crds_established().unwrap();
        kubectl(&["apply", "--server-side", "-k", deploy.to_str().unwrap()]);
        kubectl(&[
            "-n",
            SYSTEM_NAMESPACE,
            "scale",
            "deployment/litellm-impl",
            "--replicas=0",
        ]);
        kubectl(&[
            "-n",
            SYSTEM_NAMESPACE,
            "create",
            "serviceaccount",
            ACCOUNT_B,
        ]);
        kubectl(&[
            "create",
            "clusterrolebinding",
            ACCOUNT_B,
            "--clusterrole=litellm-impl",
            &format!("--serviceaccount={SYSTEM_NAMESPACE}:{ACCOUNT_B}"),
        ]);
        kubectl(&[
            "-n",
            SYSTEM_NAMESPACE,
            "create",
            "rolebinding",
            ACCOUNT_B,
            "--role=litellm-impl-leader-election",
            &format!("--serviceaccount={SYSTEM_NAMESPACE}:{ACCOUNT_B}"),
        ]);
        Tier { cluster }
    })
}

/// What the fault-free rollout of [`GATEWAYS`] gateways cost.
#[derive(Debug, Clone, Copy)]
struct Baseline {
    writes_per_gateway: f64,
    peak_rss_kib: u64,
}

static BASELINE: OnceLock<Baseline> = OnceLock::new();

fn baseline(tier: &'static Tier) -> Baseline {
    *BASELINE.get_or_init(|| {
        runtime().block_on(async {
            let mut run = Run::new(tier, "baseline").await;
            run.start_operator(ACCOUNT_A, "replica-a", Link::Direct, true)
                .await;
            run.wait_leader("replica-a").await;
            run.create_gateways().await;
            let fault = run.fault_starts();
            run.fault_ends(fault);
            run.wait_all_ready().await;
            let figures = run.finish(None).await;
            Baseline {
                writes_per_gateway: figures.writes_per_gateway_after,
                peak_rss_kib: figures.peak_rss_kib,
            }
        })
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs one scenario on the shared control plane, keeping its files if it fails.
fn scenario(body: impl AsyncFnOnce(&'static Tier, Baseline)) {
    let _one_at_a_time = RealCluster::exclusive();
    let tier = tier();
    let guard = KeepOnFailure(&tier.cluster);
    let baseline = baseline(tier);
    runtime().block_on(body(tier, baseline));
    drop(guard);
}

struct KeepOnFailure<'a>(&'a RealCluster);

impl Drop for KeepOnFailure<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.keep_files();
        }
    }
}

// ---------------------------------------------------------------------------------------
// The operator as a process
// ---------------------------------------------------------------------------------------

/// How a replica reaches the API server.
enum Link<'a> {
    Direct,
    Through(&'a CutProxy),
}

/// One `litellm-impl run` process (JSON logs in its own file).
struct OperatorProcess {
    child: Child,
    identity: String,
    log: PathBuf,
    probe_port: u16,
    killed: bool,
}

impl OperatorProcess {
    fn readyz(&self) -> Option<(u16, String)> {
        http_get(self.probe_port, "/readyz")
    }

    fn healthz(&self) -> Option<u16> {
        http_get(self.probe_port, "/healthz").map(|(code, _)| code)
    }

    fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.killed = true;
    }

    /// Panics when the process ended without being killed by the test.
    fn assert_running(&mut self) {
        if !self.killed
            && let Some(status) = self.child.try_wait().unwrap()
        {
            panic!(
                "operator {} exited on its own ({status}); last lines:\n{}",
                self.identity,
                tail(&self.log, 30)
            );
        }
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((code, body))
}

fn tail(file: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------------------------
// Progress: a watch of the scenario's gateways
// ---------------------------------------------------------------------------------------

#[derive(Default, Clone, Copy)]
struct GatewayProgress {
    generation: i64,
    ready: bool,
    programmed: bool,
}

/// The scenario's gateways as the admin's watch sees them.
#[derive(Clone, Default)]
struct Progress(Arc<Mutex<HashMap<String, GatewayProgress>>>);

impl Progress {
    fn follow(client: kube::Client, scenario: &str) -> (Self, tokio::task::JoinHandle<()>) {
        let progress = Progress::default();
        let api: Api<AiGateway> = Api::all(client);
        let config = watcher::Config::default().labels(&format!("{SCENARIO_LABEL}={scenario}"));
        let state = progress.clone();
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(
                watcher::watcher(api, config)
                    .default_backoff()
                    .touched_objects()
            );
            while let Some(item) = stream.next().await {
                let Ok(gateway) = item else { continue };
                let generation = gateway.metadata.generation.unwrap_or_default();
                let current = |type_: &str| {
                    gateway.status.as_ref().is_some_and(|s| {
                        s.conditions.iter().any(|c| {
                            c.type_ == type_
                                && c.status == "True"
                                && c.observed_generation == Some(generation)
                        })
                    })
                };
                let entry = GatewayProgress {
                    generation,
                    ready: current("Ready"),
                    programmed: current("Programmed"),
                };
                let key = format!(
                    "{}/{}",
                    gateway.namespace().unwrap_or_default(),
                    gateway.name_any()
                );
                state.0.lock().unwrap().insert(key, entry);
            }
        });
        (progress, task)
    }

    fn ready(&self) -> usize {
        self.0.lock().unwrap().values().filter(|g| g.ready).count()
    }

    fn programmed(&self) -> usize {
        self.0
            .lock()
            .unwrap()
            .values()
            .filter(|g| g.programmed)
            .count()
    }

    fn at_generation(&self, generation: i64) -> usize {
        self.0
            .lock()
            .unwrap()
            .values()
            .filter(|g| g.generation >= generation)
            .count()
    }
}

// ---------------------------------------------------------------------------------------
// One scenario
// ---------------------------------------------------------------------------------------

/// When a fault began and ended (wall clock for logs and the audit log, monotonic for
/// durations) and the audit position at its end.
#[derive(Clone, Copy)]
struct FaultWindow {
    began: SystemTime,
    began_at: Instant,
    ended: SystemTime,
    ended_at: Instant,
    audit_at_end: AuditMark,
}

/// What a scenario measured.
#[derive(Debug, Clone, serde::Serialize)]
struct Figures {
    scenario: String,
    gateways: usize,
    seconds_total: f64,
    seconds_fault: f64,
    seconds_to_all_ready: f64,
    seconds_recovery: f64,
    writes_total: usize,
    writes_per_gateway_after: f64,
    baseline_writes_per_gateway: Option<f64>,
    peak_rss_kib: u64,
    rss_before_fault_kib: u64,
    baseline_peak_rss_kib: Option<u64>,
    log_lines_in_fault: usize,
    max_log_lines_per_second: usize,
    most_lines_about_one_gateway: usize,
    relists: BTreeMap<String, usize>,
    /// kube-controller-manager restarts the rollout needed (0 but when it got stuck).
    controller_manager_restarts: u32,
}

struct Run {
    tier: &'static Tier,
    name: String,
    admin: kube::Client,
    namespaces: Vec<String>,
    progress: Progress,
    follower: tokio::task::JoinHandle<()>,
    started: Instant,
    mark: AuditMark,
    operators: Vec<OperatorProcess>,
    /// Log files of every process the scenario started (killed ones included).
    logs: Vec<PathBuf>,
    peak_rss_kib: u64,
    fault: Option<FaultWindow>,
    /// The generation every gateway must reach (edits raise it).
    generation: i64,
    /// The model name the rendered configs must carry in the end.
    model: String,
    /// When every gateway was first Ready at its latest generation.
    all_ready_at: Option<Instant>,
    /// The operators' resident memory right before the fault (the most of any replica).
    rss_before_fault_kib: u64,
    /// How often kube-controller-manager had to be restarted for the rollout to finish
    /// (see [`Run::wait_all_ready`]).
    controller_manager_restarts: u32,
}

impl Run {
    async fn new(tier: &'static Tier, name: &str) -> Self {
        let admin = tier.cluster.admin_client().await.unwrap();
        let namespaces: Vec<String> = (0..NAMESPACES).map(|i| format!("f-{name}-{i}")).collect();
        let mark = tier.cluster.audit_log().mark();
        for namespace in &namespaces {
            let object: Namespace = serde_json::from_value(json!({
                "metadata": {"name": namespace, "labels": {SCENARIO_LABEL: name}}
            }))
            .unwrap();
            Api::<Namespace>::all(admin.clone())
                .create(&PostParams::default(), &object)
                .await
                .unwrap();
            let secret: Secret = serde_json::from_value(json!({
                "metadata": {"name": "api-key-secrets", "namespace": namespace},
                "stringData": {"OPENAI_API_KEY": "fault-tier", "ANTHROPIC_API_KEY": "fault-tier"}
            }))
            .unwrap();
            Api::<Secret>::namespaced(admin.clone(), namespace)
                .create(&PostParams::default(), &secret)
                .await
                .unwrap();
        }
        let (progress, follower) = Progress::follow(admin.clone(), name);
        Run {
            tier,
            name: name.to_owned(),
            admin,
            namespaces,
            progress,
            follower,
            started: Instant::now(),
            mark,
            operators: Vec::new(),
            logs: Vec::new(),
            peak_rss_kib: 0,
            fault: None,
            generation: 1,
            model: "gpt-4o-mini".to_owned(),
            all_ready_at: None,
            controller_manager_restarts: 0,
            rss_before_fault_kib: 0,
        }
    }

    fn cluster(&self) -> &RealCluster {
        &self.tier.cluster
    }

    /// Starts a replica as ServiceAccount `account` with leader-election identity
    /// `identity`, reaching the API server through `link`.
    async fn start_operator(
        &mut self,
        account: &str,
        identity: &str,
        link: Link<'_>,
        leader_elect: bool,
    ) {
        let kubeconfig = self
            .cluster()
            .service_account_kubeconfig(SYSTEM_NAMESPACE, account, 3600)
            .await
            .unwrap();
        let kubeconfig = match link {
            Link::Direct => kubeconfig,
            Link::Through(proxy) => {
                let mut config: Value =
                    serde_json::from_str(&std::fs::read_to_string(&kubeconfig).unwrap()).unwrap();
                config["clusters"][0]["cluster"]["server"] =
                    json!(format!("https://{}", proxy.address()));
                let file = kubeconfig.with_extension("proxied.kubeconfig");
                std::fs::write(&file, config.to_string()).unwrap();
                file
            }
        };
        let probe_port = free_port();
        let log = self.cluster().dir().join(format!(
            "operator-{}-{identity}-{}.log",
            self.name,
            self.logs.len()
        ));
        let child = Command::new(env!("CARGO_BIN_EXE_litellm-impl"))
            .arg("run")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg(format!(
                "--health-probe-bind-address=127.0.0.1:{probe_port}"
            ))
            .arg("--metrics-bind-address=0")
            .arg("--log-format=json")
            .arg(format!("--leader-elect={leader_elect}"))
            .args(["--lease-namespace", SYSTEM_NAMESPACE])
            // The default filter, as a pod gets it.
            .env_remove("RUST_LOG")
            .env("POD_NAME", identity)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::options().append(true).open(&log).unwrap())
            .spawn()
            .unwrap();
        self.logs.push(log.clone());
        self.operators.push(OperatorProcess {
            child,
            identity: identity.to_owned(),
            log,
            probe_port,
            killed: false,
        });
    }

    /// Starts replica-a (leader election on) reaching the API server through a proxy
    /// the test can cut, and waits until it leads.
    async fn start_leader_behind_a_proxy(&mut self) -> CutProxy {
        let api_server: std::net::SocketAddr = self
            .cluster()
            .server()
            .trim_start_matches("https://")
            .parse()
            .unwrap();
        let proxy = CutProxy::start(api_server).unwrap();
        self.start_operator(ACCOUNT_A, "replica-a", Link::Through(&proxy), true)
            .await;
        self.wait_leader("replica-a").await;
        proxy
    }

    fn operator(&mut self, identity: &str) -> &mut OperatorProcess {
        self.operators
            .iter_mut()
            .rev()
            .find(|o| o.identity == identity && !o.killed)
            .unwrap_or_else(|| panic!("no running operator {identity}"))
    }

    /// Samples memory and checks that no replica exited on its own.
    fn check_operators(&mut self) {
        for operator in &mut self.operators {
            operator.assert_running();
            if !operator.killed {
                self.peak_rss_kib = self.peak_rss_kib.max(operator.rss_kib());
            }
        }
    }

    fn context(&self) -> String {
        let logs: Vec<String> = self
            .logs
            .iter()
            .map(|l| format!("--- {}\n{}", l.display(), tail(l, 15)))
            .collect();
        format!(
            "scenario {}: {} of {GATEWAYS} Programmed, {} Ready\n{}",
            self.name,
            self.progress.programmed(),
            self.progress.ready(),
            logs.join("\n")
        )
    }

    /// Polls `check` every 100 ms (sampling the operators meanwhile) until it holds.
    async fn until(
        &mut self,
        what: &str,
        limit: Duration,
        mut check: impl FnMut(&mut Self) -> bool,
    ) {
        let deadline = Instant::now() + limit;
        loop {
            self.check_operators();
            if check(self) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {limit:?} waiting for {what}\n{}",
                self.context()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn lease_holder(&self) -> Option<String> {
        let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
            Api::namespaced(self.admin.clone(), SYSTEM_NAMESPACE);
        leases
            .get_opt(LEASE)
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec?.holder_identity)
    }

    async fn wait_leader(&mut self, identity: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.lease_holder().await.as_deref() != Some(identity) {
            self.check_operators();
            assert!(
                Instant::now() < deadline,
                "{identity} never held the lease\n{}",
                self.context()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // It leads once its caches have synced: /readyz turns 200.
        let operator = self.operator(identity).probe_port;
        self.until("the leader to be ready", Duration::from_secs(60), |_| {
            http_get(operator, "/readyz").is_some_and(|(code, _)| code == 200)
        })
        .await;
    }

    fn gateway(&self, index: usize) -> (String, String) {
        (
            self.namespaces[index % NAMESPACES].clone(),
            format!("gw-{index:03}"),
        )
    }

    fn models(model: &str) -> Value {
        json!([
            {"provider": "openai", "name": model},
            {"provider": "anthropic", "name": "claude-sonnet-4-20250514"},
        ])
    }

    /// Creates the scenario's gateways, 32 requests at a time.
    async fn create_gateways(&mut self) {
        let requests = (0..GATEWAYS).map(|index| {
            let (namespace, name) = self.gateway(index);
            let gateway: AiGateway = serde_json::from_value(json!({
                "apiVersion": "runtime.agentic-layer.ai/v1alpha1",
                "kind": "AiGateway",
                "metadata": {"name": name, "namespace": namespace, "labels": {SCENARIO_LABEL: self.name}},
                "spec": {"aiGatewayClassName": "litellm", "aiModels": Self::models(&self.model)},
            }))
            .unwrap();
            let api: Api<AiGateway> = Api::namespaced(self.admin.clone(), &namespace);
            async move { api.create(&PostParams::default(), &gateway).await.map(|_| ()) }
        });
        let results: Vec<Result<(), kube::Error>> = futures::stream::iter(requests)
            .buffer_unordered(32)
            .collect()
            .await;
        for result in results {
            result.expect("creating a gateway");
        }
    }

    /// Waits until `programmed` gateways are Programmed: the operator is applying the
    /// others' children, the Deployment controller rolling out the first ones. Faults
    /// strike there.
    async fn wait_programmed_count(&mut self, programmed: usize) {
        self.until(
            &format!("{programmed} gateways Programmed"),
            ROLLOUT_LIMIT,
            |run| run.progress.programmed() >= programmed,
        )
        .await;
    }

    /// Waits until `ready` gateways are Ready.
    async fn wait_ready_count(&mut self, ready: usize) {
        self.until(&format!("{ready} gateways Ready"), ROLLOUT_LIMIT, |run| {
            run.progress.ready() >= ready
        })
        .await;
    }

    fn fault_starts(&mut self) -> (SystemTime, Instant) {
        self.check_operators();
        self.rss_before_fault_kib = self
            .operators
            .iter()
            .filter(|o| !o.killed)
            .map(OperatorProcess::rss_kib)
            .max()
            .unwrap_or(0);
        self.peak_rss_kib = self.rss_before_fault_kib;
        (SystemTime::now(), Instant::now())
    }

    fn fault_ends(&mut self, (began, began_at): (SystemTime, Instant)) {
        self.fault = Some(FaultWindow {
            began,
            began_at,
            ended: SystemTime::now(),
            ended_at: Instant::now(),
            audit_at_end: self.cluster().audit_log().mark(),
        });
    }

    /// Waits until every gateway is Ready at the generation it must reach.
    async fn wait_all_ready(&mut self) {
        let generation = self.generation;
        let all_ready = move |run: &mut Self| {
            run.progress.at_generation(generation) == GATEWAYS && run.progress.ready() == GATEWAYS
        };
        if !self.poll_until(ROLLOUT_LIMIT, all_ready).await {
            // Whose fault? The operator's when the API server says every Deployment is
            // available; the control plane's otherwise: its kube-controller-manager (not
            // ours, not under test) once never caught up after the API server's restart
            // on a compacted etcd. Then it is restarted once, said in the figures, and the
            // operator must still bring every gateway to Ready.
            let lagging = self.unavailable_deployments();
            assert!(
                !lagging.is_empty(),
                "timed out after {ROLLOUT_LIMIT:?} waiting for every gateway Ready at its latest generation, though the API server says every Deployment is available\n{}",
                self.context()
            );
            println!(
                "fault-tier {}: {} Deployments still unavailable after {ROLLOUT_LIMIT:?} (first: {}): restarting kube-controller-manager",
                self.name,
                lagging.len(),
                lagging[..lagging.len().min(3)].join(", ")
            );
            self.controller_manager_restarts += 1;
            let cluster = &self.tier.cluster;
            let stopped = block(|| cluster.stop_component("kube-controller-manager").unwrap());
            cluster.start_component(stopped).unwrap();
            self.until(
                "every gateway Ready at its latest generation (after kube-controller-manager's restart)",
                ROLLOUT_LIMIT,
                all_ready,
            )
            .await;
        }
        self.all_ready_at = Some(Instant::now());
    }

    /// Like [`Run::until`], but says whether `check` held in time instead of failing.
    async fn poll_until(
        &mut self,
        limit: Duration,
        mut check: impl FnMut(&mut Self) -> bool,
    ) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            self.check_operators();
            if check(self) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The scenario's Deployments the API server does not report as rolled out and
    /// available (as `namespace/name`).
    fn unavailable_deployments(&self) -> Vec<String> {
        let mut lagging = Vec::new();
        for namespace in &self.namespaces {
            let output = block(|| {
                self.tier
                    .cluster
                    .kubectl()
                    .args(["get", "deployments", "-n", namespace, "-o", "json"])
                    .output()
                    .unwrap()
            });
            let list: Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
            for item in list["items"].as_array().into_iter().flatten() {
                let wanted = item["spec"]["replicas"].as_i64().unwrap_or(1);
                let status = &item["status"];
                let rolled_out = status["observedGeneration"].as_i64()
                    >= item["metadata"]["generation"].as_i64()
                    && status["updatedReplicas"].as_i64().unwrap_or(0) >= wanted
                    && status["availableReplicas"].as_i64().unwrap_or(0) >= wanted;
                if !rolled_out {
                    lagging.push(format!(
                        "{namespace}/{}",
                        item["metadata"]["name"].as_str().unwrap_or_default()
                    ));
                }
            }
        }
        lagging
    }

    /// The operators' writes in the audit log since `mark`, Lease renewals aside.
    fn operator_writes(&self, mark: AuditMark) -> Vec<AuditEvent> {
        let users = [user(ACCOUNT_A), user(ACCOUNT_B)];
        self.cluster()
            .audit_log()
            .writes_since(mark)
            .unwrap()
            .into_iter()
            .filter(|e| users.contains(&e.user) && e.resource != "leases")
            .collect()
    }

    /// Waits until the operators wrote nothing for 3 s.
    async fn settle(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mark = self.cluster().audit_log().mark();
            tokio::time::sleep(Duration::from_secs(3)).await;
            self.check_operators();
            if self.operator_writes(mark).is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the operator never stopped writing\n{}",
                self.context()
            );
        }
    }

    /// Edits every gateway `rounds` times, one round a second (or as fast as the API
    /// server takes them, 48 requests at a time): the first model's name gets the
    /// round's number, so the last round wins. Returns how long it took.
    async fn edit_burst(&mut self, rounds: usize) -> Duration {
        let started = Instant::now();
        for round in 1..=rounds {
            let model = format!("gpt-4o-mini-e{round}");
            let requests = (0..GATEWAYS).map(|index| {
                let (namespace, name) = self.gateway(index);
                let api: Api<AiGateway> = Api::namespaced(self.admin.clone(), &namespace);
                let patch = json!({"spec": {"aiModels": Self::models(&model)}});
                async move {
                    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .map(|_| ())
                }
            });
            let results: Vec<Result<(), kube::Error>> = futures::stream::iter(requests)
                .buffer_unordered(48)
                .collect()
                .await;
            for result in results {
                result.expect("editing a gateway");
            }
            self.model = model;
            self.generation += 1;
            tokio::time::sleep_until((started + Duration::from_secs(round as u64)).into()).await;
        }
        started.elapsed()
    }

    /// Checks every invariant and returns the figures (printed and written to
    /// `target/fault-tier/<scenario>.json`).
    async fn finish(&mut self, baseline: Option<Baseline>) -> Figures {
        self.settle().await;
        self.check_operators();
        let fault = self.fault.expect("the scenario recorded its fault window");
        let all_ready = self
            .all_ready_at
            .expect("the scenario waited for all Ready");
        self.assert_desired_children().await;
        let events: Vec<AuditEvent> = self.cluster().audit_log().since(self.mark).unwrap();
        self.assert_children_created_once(&events);
        self.assert_only_our_objects_written(&events);
        self.assert_one_leader_per_second(&events);
        let after = self.operator_writes(fault.audit_at_end);
        let writes_per_gateway_after = after.len() as f64 / GATEWAYS as f64;
        if let Some(baseline) = baseline {
            assert!(
                writes_per_gateway_after <= 1.5 * baseline.writes_per_gateway,
                "{writes_per_gateway_after:.2} writes per gateway after the fault, more than 1.5 × the fault-free {:.2}:\n{}",
                baseline.writes_per_gateway,
                summary(&after)
            );
        }
        // Bounded: the fault does not make the operator grow beyond what it held before
        // (the cluster grows from scenario to scenario, so the baseline is no yardstick).
        let bound = self.rss_before_fault_kib * 3 / 2 + 64 * 1024;
        assert!(
            self.peak_rss_kib <= bound,
            "peak RSS {} KiB from the fault on, over 1.5 × the {} KiB before it + 64 MiB",
            self.peak_rss_kib,
            self.rss_before_fault_kib
        );
        let logs = self.log_rate(&fault);
        let relists = self.relists(&events, &fault);
        let figures = Figures {
            scenario: self.name.clone(),
            gateways: GATEWAYS,
            seconds_total: self.started.elapsed().as_secs_f64(),
            seconds_fault: fault.ended_at.duration_since(fault.began_at).as_secs_f64(),
            seconds_to_all_ready: all_ready.duration_since(self.started).as_secs_f64(),
            seconds_recovery: all_ready
                .saturating_duration_since(fault.ended_at)
                .as_secs_f64(),
            writes_total: self.operator_writes(self.mark).len(),
            writes_per_gateway_after,
            baseline_writes_per_gateway: baseline.map(|b| b.writes_per_gateway),
            peak_rss_kib: self.peak_rss_kib,
            rss_before_fault_kib: self.rss_before_fault_kib,
            baseline_peak_rss_kib: baseline.map(|b| b.peak_rss_kib),
            log_lines_in_fault: logs.0,
            max_log_lines_per_second: logs.1,
            most_lines_about_one_gateway: logs.2,
            relists,
            controller_manager_restarts: self.controller_manager_restarts,
        };
        println!(
            "fault-tier {}: {}",
            self.name,
            serde_json::to_string(&figures).unwrap()
        );
        let dir = workspace().join("target/fault-tier");
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(
            dir.join(format!("{}.json", self.name)),
            serde_json::to_string_pretty(&figures).unwrap(),
        );
        self.follower.abort();
        figures
    }
}

// ---------------------------------------------------------------------------------------
// Invariants
// ---------------------------------------------------------------------------------------

/// The names of the children of gateway `name`, by resource.
fn child_names(name: &str) -> [(&'static str, String); 3] {
    [
        ("configmaps", format!("{name}-config")),
        ("deployments", name.to_owned()),
        ("services", name.to_owned()),
    ]
}

fn summary(events: &[AuditEvent]) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for e in events {
        *counts
            .entry(format!(
                "{} {} {} -> {}",
                e.verb, e.resource, e.subresource, e.code
            ))
            .or_default() += 1;
    }
    counts
        .iter()
        .map(|(what, n)| format!("{n:6} {what}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Run {
    fn children(&self) -> BTreeSet<(String, String, String)> {
        (0..GATEWAYS)
            .flat_map(|index| {
                let (namespace, name) = self.gateway(index);
                child_names(&name)
                    .into_iter()
                    .map(move |(resource, child)| (resource.to_owned(), namespace.clone(), child))
            })
            .collect()
    }

    /// Every gateway has exactly its ConfigMap, Deployment and Service, controlled by it,
    /// rendering its latest spec.
    async fn assert_desired_children(&self) {
        for namespace in &self.namespaces {
            let params = ListParams::default().labels(GATEWAY_LABEL);
            let gateways = Api::<AiGateway>::namespaced(self.admin.clone(), namespace)
                .list(&ListParams::default())
                .await
                .unwrap();
            let uids: HashMap<String, String> = gateways
                .iter()
                .map(|g| (g.name_any(), g.uid().unwrap_or_default()))
                .collect();
            let mut found: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
            let mut record = |resource: &str, meta: &kube::api::ObjectMeta| {
                let gateway = meta
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(GATEWAY_LABEL))
                    .cloned()
                    .unwrap_or_default();
                let owner = meta
                    .owner_references
                    .iter()
                    .flatten()
                    .find(|o| o.controller == Some(true))
                    .map(|o| o.uid.clone());
                assert_eq!(
                    owner.as_ref(),
                    uids.get(&gateway),
                    "{resource} {namespace}/{:?} is not controlled by gateway {gateway}",
                    meta.name
                );
                found
                    .entry(gateway)
                    .or_default()
                    .insert((resource.to_owned(), meta.name.clone().unwrap_or_default()));
            };
            let configs = Api::<ConfigMap>::namespaced(self.admin.clone(), namespace)
                .list(&params)
                .await
                .unwrap();
            for config in &configs {
                record("configmaps", &config.metadata);
                let rendered = config
                    .data
                    .as_ref()
                    .and_then(|d| d.get("config.yaml"))
                    .cloned()
                    .unwrap_or_default();
                assert!(
                    rendered.contains(&format!("model: openai/{}\n", self.model)),
                    "{} does not render the latest spec (model {}):\n{rendered}",
                    config.name_any(),
                    self.model
                );
            }
            for deployment in &Api::<Deployment>::namespaced(self.admin.clone(), namespace)
                .list(&params)
                .await
                .unwrap()
            {
                record("deployments", &deployment.metadata);
            }
            for service in &Api::<Service>::namespaced(self.admin.clone(), namespace)
                .list(&params)
                .await
                .unwrap()
            {
                record("services", &service.metadata);
            }
            for gateway in gateways.iter().map(|g| g.name_any()) {
                let want: BTreeSet<(String, String)> = child_names(&gateway)
                    .into_iter()
                    .map(|(r, n)| (r.to_owned(), n))
                    .collect();
                assert_eq!(
                    found.remove(&gateway).unwrap_or_default(),
                    want,
                    "the children of {namespace}/{gateway}"
                );
            }
            assert!(found.is_empty(), "children of no gateway: {found:?}");
        }
    }

    /// No child was created twice or deleted (its uid never changed). A create whose
    /// client was killed may show as 504 in the audit log though it went through: every
    /// child exists at the end ([`Run::assert_desired_children`]), at most one create
    /// of it succeeded and nobody deleted it.
    fn assert_children_created_once(&self, events: &[AuditEvent]) {
        let children = self.children();
        let mut created: BTreeMap<(String, String, String), usize> = BTreeMap::new();
        for event in events {
            let key = (
                event.resource.clone(),
                event.namespace.clone(),
                event.name.clone(),
            );
            if !children.contains(&key) || !event.subresource.is_empty() {
                continue;
            }
            assert!(
                !(event.verb == "delete" && event.code < 300),
                "{} {}/{} was deleted by {}",
                event.resource,
                event.namespace,
                event.name,
                event.user
            );
            if event.code == 201 {
                *created.entry(key).or_default() += 1;
            }
        }
        let twice: Vec<_> = created.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            twice.is_empty(),
            "children created more than once: {twice:?}"
        );
    }

    /// The operators wrote only what they created, the status and metadata of the
    /// scenario's gateways, their classes, Events and their Lease.
    fn assert_only_our_objects_written(&self, events: &[AuditEvent]) {
        let users = [user(ACCOUNT_A), user(ACCOUNT_B)];
        let children = self.children();
        // Who created each object: the first write to the object itself (not its status)
        // that was not refused. A create whose client was killed, or that etcd answered
        // late, shows as 5xx though it went through; controllers write later.
        let mut first_writer: HashMap<(String, String, String), &AuditEvent> = HashMap::new();
        let mut writes: Vec<&AuditEvent> = events
            .iter()
            .filter(|e| e.is_write() && e.subresource.is_empty())
            .filter(|e| !(400..500).contains(&e.code))
            .collect();
        writes.sort_by(|a, b| a.received.cmp(&b.received));
        for event in writes {
            first_writer
                .entry((
                    event.resource.clone(),
                    event.namespace.clone(),
                    event.name.clone(),
                ))
                .or_insert(event);
        }
        let ours = |namespace: &str| self.namespaces.iter().any(|n| n == namespace);
        let foreign: Vec<&AuditEvent> = events
            .iter()
            .filter(|e| e.is_write() && users.contains(&e.user))
            .filter(|e| {
                let key = (e.resource.clone(), e.namespace.clone(), e.name.clone());
                let allowed = match e.resource.as_str() {
                    "leases" => e.namespace == SYSTEM_NAMESPACE && e.name == LEASE,
                    "events" => {
                        e.verb == "create" && (ours(&e.namespace) || e.namespace == "default")
                    }
                    "aigateways" => ours(&e.namespace),
                    "aigatewayclasses" | "toolgatewayclasses" => e.name == "litellm",
                    "configmaps" | "deployments" | "services" => {
                        children.contains(&key)
                            && first_writer
                                .get(&key)
                                .is_none_or(|f| users.contains(&f.user))
                    }
                    _ => false,
                };
                !allowed
            })
            .collect();
        assert!(
            foreign.is_empty(),
            "the operator wrote objects it did not create or outside the scenario:\n{}",
            foreign
                .iter()
                .take(20)
                .map(|e| format!(
                    "{} {} {}/{} {} by {}",
                    e.verb, e.resource, e.namespace, e.name, e.subresource, e.user
                ))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    /// No second in which two replicas wrote (Lease renewals aside).
    fn assert_one_leader_per_second(&self, events: &[AuditEvent]) {
        let users = [user(ACCOUNT_A), user(ACCOUNT_B)];
        let mut writers: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for event in events
            .iter()
            .filter(|e| e.is_write() && users.contains(&e.user) && e.resource != "leases")
        {
            writers
                .entry(event.received.get(..19).unwrap_or(&event.received))
                .or_default()
                .insert(event.user.as_str());
        }
        let shared: Vec<_> = writers.iter().filter(|(_, w)| w.len() > 1).collect();
        assert!(
            shared.is_empty(),
            "two replicas wrote in the same second: {shared:?}"
        );
    }

    /// The operators' log lines from the fault's start to 5 s after its end: how many,
    /// the most in one second, and the most about one gateway.
    fn log_rate(&self, fault: &FaultWindow) -> (usize, usize, usize) {
        let from = jiff::Timestamp::try_from(fault.began).unwrap();
        let to = jiff::Timestamp::try_from(fault.ended + Duration::from_secs(5)).unwrap();
        let mut per_second: BTreeMap<i64, usize> = BTreeMap::new();
        let mut per_gateway: BTreeMap<String, usize> = BTreeMap::new();
        let mut lines = Vec::new();
        for file in &self.logs {
            for line in std::fs::read_to_string(file).unwrap_or_default().lines() {
                let Ok(record) = serde_json::from_str::<Value>(line) else {
                    continue;
                };
                let Some(at) = record["timestamp"]
                    .as_str()
                    .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                else {
                    continue;
                };
                if at < from || at > to {
                    continue;
                }
                *per_second.entry(at.as_second()).or_default() += 1;
                for index in 0..GATEWAYS {
                    let (namespace, name) = self.gateway(index);
                    if line.contains(&format!("{namespace}/{name}")) {
                        *per_gateway.entry(name).or_default() += 1;
                    }
                }
                lines.push(line.to_owned());
            }
        }
        let total = lines.len();
        let max_per_second = per_second.values().copied().max().unwrap_or(0);
        let max_per_gateway = per_gateway.values().copied().max().unwrap_or(0);
        let seconds = (to.as_second() - from.as_second()).max(1) as usize;
        let sample = || {
            lines
                .iter()
                .take(40)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert!(
            max_per_second <= 10 && total <= 3 * seconds,
            "{total} log lines in {seconds} s, up to {max_per_second} in one second:\n{}",
            sample()
        );
        assert!(
            max_per_gateway <= 3,
            "one gateway is named in {max_per_gateway} log lines during the fault:\n{}",
            sample()
        );
        (total, max_per_second, max_per_gateway)
    }

    /// The operators' list requests since the fault began, by resource: relists.
    fn relists(&self, events: &[AuditEvent], fault: &FaultWindow) -> BTreeMap<String, usize> {
        let users = [user(ACCOUNT_A), user(ACCOUNT_B)];
        let from = jiff::Timestamp::try_from(fault.began).unwrap();
        let mut lists = BTreeMap::new();
        for event in events
            .iter()
            .filter(|e| e.verb == "list" && users.contains(&e.user))
        {
            if event
                .received
                .parse::<jiff::Timestamp>()
                .is_ok_and(|at| at >= from)
            {
                *lists.entry(event.resource.clone()).or_default() += 1;
            }
        }
        lists
    }

    /// `/readyz` and `/healthz` of replica `identity`, sampled every 250 ms for
    /// `duration`: (seconds since the start, readyz code, healthz code).
    async fn sample_probes(&mut self, identity: &str, duration: Duration) -> Vec<(f64, u16, u16)> {
        let started = Instant::now();
        let mut samples = Vec::new();
        while started.elapsed() < duration {
            self.check_operators();
            let operator = self.operator(identity);
            let readyz = operator.readyz().map_or(0, |(code, _)| code);
            let healthz = operator.healthz().unwrap_or(0);
            samples.push((started.elapsed().as_secs_f64(), readyz, healthz));
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        samples
    }
}

/// `/healthz` answered 200 throughout, and `/readyz` 503 from `after` seconds on.
fn assert_probes_tell_the_truth(samples: &[(f64, u16, u16)], after: f64) {
    let wrong: Vec<_> = samples
        .iter()
        .filter(|(at, readyz, healthz)| *healthz != 200 || (*at >= after && *readyz != 503))
        .collect();
    assert!(
        wrong.is_empty(),
        "while the API server was out of reach, /readyz was not 503 from {after} s on or /healthz not 200: {wrong:?}\nall samples: {samples:?}"
    );
}

fn block<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

// ---------------------------------------------------------------------------------------
// The scenarios
// ---------------------------------------------------------------------------------------

#[test]
fn real_cluster_faults_api_server_stopped_for_20_s_mid_rollout() {
    scenario(async |tier, baseline| {
        let mut run = Run::new(tier, "apiserver").await;
        run.start_operator(ACCOUNT_A, "replica-a", Link::Direct, true)
            .await;
        run.wait_leader("replica-a").await;
        run.create_gateways().await;
        run.wait_programmed_count(GATEWAYS / 4).await;
        let fault = run.fault_starts();
        // After SIGTERM it drains in-flight requests on the connections it has (up to
        // 10 s here) and still answers on them: the 20 s count once it is gone.
        let stopped = block(|| run.cluster().stop_component("kube-apiserver").unwrap());
        let probes = run
            .sample_probes("replica-a", Duration::from_secs(20))
            .await;
        block(|| {
            run.cluster().start_component(stopped).unwrap();
            run.cluster()
                .wait_api_server_ready(Duration::from_secs(120))
                .unwrap();
        });
        run.fault_ends(fault);
        assert_probes_tell_the_truth(&probes, 5.0);
        run.wait_all_ready().await;
        run.finish(Some(baseline)).await;
    });
}

#[test]
fn real_cluster_faults_etcd_frozen_for_15_s_mid_rollout() {
    scenario(async |tier, baseline| {
        let mut run = Run::new(tier, "etcd-pause").await;
        run.start_operator(ACCOUNT_A, "replica-a", Link::Direct, true)
            .await;
        run.wait_leader("replica-a").await;
        run.create_gateways().await;
        run.wait_programmed_count(GATEWAYS / 4).await;
        let fault = run.fault_starts();
        run.cluster().pause_component("etcd").unwrap();
        let paused = run
            .sample_probes("replica-a", Duration::from_secs(15))
            .await;
        run.cluster().resume_component("etcd").unwrap();
        block(|| {
            run.cluster()
                .wait_api_server_ready(Duration::from_secs(120))
                .unwrap()
        });
        run.fault_ends(fault);
        println!("etcd-pause probes (s, readyz, healthz): {paused:?}");
        run.wait_all_ready().await;
        run.finish(Some(baseline)).await;
    });
}

#[test]
fn real_cluster_faults_watches_expire_after_etcd_compaction() {
    scenario(async |tier, baseline| {
        let mut run = Run::new(tier, "compaction").await;
        run.start_operator(ACCOUNT_A, "replica-a", Link::Direct, true)
            .await;
        run.wait_leader("replica-a").await;
        run.create_gateways().await;
        run.wait_programmed_count(GATEWAYS / 4).await;
        let gateways: Api<AiGateway> = Api::all(run.admin.clone());
        let before = gateways
            .list_metadata(&ListParams::default().limit(1))
            .await
            .unwrap()
            .metadata
            .resource_version
            .unwrap();
        let fault = run.fault_starts();
        // Compacted, etcd serves nothing older; but the watch cache answers watches from
        // its own window of events, which compaction does not touch. It starts over
        // (from a list at the newest revision) when the API server restarts: every
        // resumed watch is then older than its window and gets 410 Gone.
        let revision = block(|| {
            let revision = run.cluster().compact_etcd().unwrap();
            let stopped = run.cluster().stop_component("kube-apiserver").unwrap();
            run.cluster().start_component(stopped).unwrap();
            run.cluster()
                .wait_api_server_ready(Duration::from_secs(120))
                .unwrap();
            revision
        });
        run.fault_ends(fault);
        // A watch from before the fault is answered 410 Gone by the watch cache.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut stream = gateways
                .watch(&kube::api::WatchParams::default().timeout(5), &before)
                .await
                .unwrap()
                .boxed();
            let first = stream.try_next().await;
            if let Ok(Some(kube::api::WatchEvent::Error(status))) = &first
                && status.code == 410
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "a watch from resourceVersion {before} (etcd compacted at {revision}) was not answered 410: {first:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        run.wait_all_ready().await;
        let figures = run.finish(Some(baseline)).await;
        assert!(
            figures.relists.get("aigateways").copied().unwrap_or(0) >= 1,
            "the operator never relisted its gateways: {:?}",
            figures.relists
        );
    });
}

/// A small xorshift generator: the kill moments are random but reproducible from the
/// printed seed.
struct Moments(u64);

impl Moments {
    fn next_millis(&mut self, low: u64, high: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        low + self.0 % (high - low)
    }
}

#[test]
fn real_cluster_faults_operator_killed_20_times_mid_rollout() {
    scenario(async |tier, baseline| {
        let mut run = Run::new(tier, "kill9").await;
        let seed = std::env::var("FAULT_TIER_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        println!("kill moments seed: FAULT_TIER_SEED={seed}");
        let mut moments = Moments(seed);
        run.start_operator(ACCOUNT_A, "replica-a", Link::Direct, false)
            .await;
        let port = run.operator("replica-a").probe_port;
        run.until("the operator to be ready", Duration::from_secs(60), |_| {
            http_get(port, "/readyz").is_some_and(|(code, _)| code == 200)
        })
        .await;
        run.create_gateways().await;
        let fault = run.fault_starts();
        let mut kills = Vec::new();
        for _ in 0..20 {
            // Killed while it writes: once this process has written an object of the
            // scenario (a restart lists everything and reconciles every gateway of the
            // cluster first), a random moment later.
            let mark = run.cluster().audit_log().mark();
            let namespaces = run.namespaces.clone();
            run.until(
                "the restarted operator to write",
                Duration::from_secs(60),
                |run| {
                    run.operator_writes(mark)
                        .iter()
                        .any(|e| namespaces.contains(&e.namespace))
                },
            )
            .await;
            tokio::time::sleep(Duration::from_millis(moments.next_millis(10, 1000))).await;
            run.check_operators();
            kills.push((run.progress.programmed(), run.progress.ready()));
            run.operator("replica-a").kill9();
            run.start_operator(ACCOUNT_A, "replica-a", Link::Direct, false)
                .await;
        }
        run.fault_ends(fault);
        println!("kill9: (Programmed, Ready) at each kill: {kills:?}");
        run.wait_all_ready().await;
        run.finish(Some(baseline)).await;
    });
}

#[test]
fn real_cluster_faults_leader_killed_at_half_ready() {
    scenario(async |tier, baseline| {
        let mut run = Run::new(tier, "leader-change").await;
        run.start_operator(ACCOUNT_A, "replica-a", Link::Direct, true)
            .await;
        run.wait_leader("replica-a").await;
        run.start_operator(ACCOUNT_B, "replica-b", Link::Direct, true)
            .await;
        run.create_gateways().await;
        run.wait_ready_count(GATEWAYS / 2).await;
        let fault = run.fault_starts();
        run.operator("replica-a").kill9();
        run.wait_leader("replica-b").await;
        run.fault_ends(fault);
        run.wait_all_ready().await;
        run.finish(Some(baseline)).await;
    });
}

#[test]
fn real_cluster_faults_leader_network_cut_for_30_s() {
    scenario(async |tier, baseline| {
        let mut run = Run::new(tier, "network-cut").await;
        let proxy = run.start_leader_behind_a_proxy().await;
        run.start_operator(ACCOUNT_B, "replica-b", Link::Direct, true)
            .await;
        run.create_gateways().await;
        run.wait_programmed_count(GATEWAYS / 4).await;
        let fault = run.fault_starts();
        let cut_mark = run.cluster().audit_log().mark();
        proxy.cut();
        let probes = run
            .sample_probes("replica-a", Duration::from_secs(30))
            .await;
        proxy.restore();
        run.fault_ends(fault);
        // The lease lasts 15 s and a renewal may take 5 s to time out.
        assert_probes_tell_the_truth(&probes, 20.0);
        run.wait_all_ready().await;
        assert_eq!(run.lease_holder().await.as_deref(), Some("replica-b"));
        // Requests the proxy forwarded just before the cut may still reach the API
        // server: only what it received a second after the cut began counts.
        let cut_at = jiff::Timestamp::try_from(fault.0 + Duration::from_secs(1)).unwrap();
        let writes_a: Vec<AuditEvent> = run
            .operator_writes(cut_mark)
            .into_iter()
            .filter(|e| e.user == user(ACCOUNT_A))
            .filter(|e| {
                e.received
                    .parse::<jiff::Timestamp>()
                    .is_ok_and(|at| at > cut_at)
            })
            .collect();
        assert!(
            writes_a.is_empty(),
            "the cut-off leader wrote after the cut:\n{}",
            summary(&writes_a)
        );
        run.finish(Some(baseline)).await;
    });
}

#[test]
fn real_cluster_faults_2000_edits_in_10_s_while_the_network_is_cut() {
    scenario(async |tier, baseline| {
        let mut run = Run::new(tier, "edit-burst").await;
        let proxy = run.start_leader_behind_a_proxy().await;
        run.create_gateways().await;
        run.wait_programmed_count(GATEWAYS / 4).await;
        let fault = run.fault_starts();
        proxy.cut();
        let took = run.edit_burst(10).await;
        proxy.restore();
        run.fault_ends(fault);
        println!(
            "edit-burst: {} edits in {:.1} s",
            GATEWAYS * 10,
            took.as_secs_f64()
        );
        run.wait_all_ready().await;
        run.finish(Some(baseline)).await;
    });
}
