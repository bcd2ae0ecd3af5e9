//! Scale benchmark of the LiteLLM operator: N AiGateways stored at once, then the
//! operator started, until every gateway is Programmed and Ready, and 10 s of steady
//! state.
//!
//! Run it with:
//!
//!     cargo bench -p litellm-impl-cli --bench scale
//!
//! It prints a table and writes `target/bench/scale.json` (one record per scenario). The
//! API server is the testkit with a latency model (every get/list answered 1 ms late,
//! every write 5 ms, as an etcd-backed server; `SCALE_BENCH_LATENCY_MS=reads,writes` to
//! change, `0,0` for none), or a real control plane. Each scenario runs in a fresh child
//! process (this binary re-executed with `SCALE_BENCH_SCENARIO=<N>:<concurrency>:<backend>`)
//! so that its peak memory is its own. Backends:
//!
//! - `in-process`: the operator as `litellm-impl run` builds it, in this process, with
//!   an in-process client of the testkit (memory and CPU are shared with the testkit);
//! - `binary`: the built `litellm-impl run` binary talking HTTP to the testkit, whose
//!   own peak RSS and CPU seconds are read from `/proc/<pid>`;
//! - `real`: the binary against a real kube-apiserver, etcd, controller manager,
//!   scheduler and kwok (`aigateway_testkit::real_cluster`; binaries cached under
//!   `~/.cache`), writes counted from the audit log.
//!
//! The default set: N = 1,000 at concurrency 16 and 1, in process and binary; N = 10,000
//! at concurrency 16, in process and binary. Environment:
//!
//! - `SCALE_BENCH_QUICK=1`: N = 100 only, 2 s of steady state (a smoke run);
//! - `SCALE_BENCH_SLOW=1`: adds N = 10,000 at concurrency 1 (binary; many minutes);
//! - `SCALE_BENCH_REAL=1`: adds the real control plane at N = 1,000, concurrency 16;
//! - `SCALE_BENCH_SCENARIOS=1000:16:binary,100:1:real`: exactly these scenarios;
//! - `SCALE_BENCH_STEADY_SECS`: the steady-state window (default 10);
//! - `SCALE_BENCH_LIMIT_SECS`: stop waiting for all Ready after this long (default
//!   1,800; 300 on the real control plane) and report how many were;
//! - `SCALE_BENCH_OUT`: the JSON file (default `target/bench/scale.json`).
//!
//! The figures are printed, never asserted: this is not a timed test. The latest are in
//! docs/reference/benchmarks.md.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use aigateway_api::AiGateway;
use aigateway_testkit::real_cluster::RealCluster;
use aigateway_testkit::{ApiServer, Stats, WRITE_VERBS};
use clap::Parser;
use kube::Api;
use litellm_impl_cli::run::{OperatorArgs, operator};
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod support;
use support::{cpu_seconds, mib, peak_rss_kib};

/// The operator's field manager (on every child it applies; status goes under
/// [`status_manager`]).
const FIELD_MANAGER: &str = "ai-gateway-litellm-controller";
/// Gateways are spread over this many namespaces, each with its `api-key-secrets`.
const NAMESPACES: usize = 10;
/// The default of `litellm-impl run --concurrency`.
const DEFAULT_CONCURRENCY: u16 = 16;
/// Give up waiting for Ready after this long (and say so), unless
/// `SCALE_BENCH_LIMIT_SECS` says otherwise.
const READY_LIMIT: Duration = Duration::from_secs(1800);
/// The same on the real control plane, where a missing piece (a pod that never runs)
/// would otherwise hold the run for half an hour.
const REAL_READY_LIMIT: Duration = Duration::from_secs(300);

/// How long to wait for all Ready: `SCALE_BENCH_LIMIT_SECS`, or `default`.
fn ready_limit(default: Duration) -> Duration {
    std::env::var("SCALE_BENCH_LIMIT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(default, Duration::from_secs)
}
/// The latency model unless `SCALE_BENCH_LATENCY_MS` says otherwise: 1 ms reads, 5 ms
/// writes, as etcd-backed writes cost.
const DEFAULT_LATENCY_MS: (f64, f64) = (1.0, 5.0);

/// Where the operator runs and which API server it talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    InProcess,
    Binary,
    Real,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::InProcess => "in-process",
            Backend::Binary => "binary",
            Backend::Real => "real",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Backend::InProcess, Backend::Binary, Backend::Real]
            .into_iter()
            .find(|b| b.name() == text)
    }

    fn describe(self) -> &'static str {
        match self {
            Backend::InProcess => "in process, testkit",
            Backend::Binary => "binary over HTTP, testkit",
            Backend::Real => "binary, real control plane",
        }
    }
}

/// One scenario to run.
#[derive(Clone, Copy, Debug)]
struct Scenario {
    gateways: usize,
    concurrency: u16,
    backend: Backend,
    /// One LiteLLMModelPolicy per gateway (spec suffix `:policies`).
    policies: bool,
}

impl Scenario {
    fn spec(self) -> String {
        format!(
            "{}:{}:{}{}",
            self.gateways,
            self.concurrency,
            self.backend.name(),
            if self.policies { ":policies" } else { "" }
        )
    }

    fn parse(spec: &str) -> Option<Self> {
        let mut parts = spec.trim().split(':');
        let scenario = Scenario {
            gateways: parts.next()?.parse().ok().filter(|n| *n > 0)?,
            concurrency: parts.next()?.parse().ok().filter(|c| *c > 0)?,
            backend: Backend::parse(parts.next().unwrap_or("in-process"))?,
            policies: false,
        };
        match parts.next() {
            None => Some(scenario),
            Some("policies") => parts.next().is_none().then_some(Scenario {
                policies: true,
                ..scenario
            }),
            Some(_) => None,
        }
    }
}

/// Requests of one resource and verb.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
struct Count {
    resource: String,
    verb: String,
    count: u64,
}

/// CPU and memory of one process of the real control plane.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ProcessFigures {
    cpu_seconds: f64,
    peak_rss_mib: f64,
}

/// What one scenario measured: one record of `scale.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Record {
    gateways: usize,
    concurrency: u16,
    backend: String,
    /// One LiteLLMModelPolicy per gateway.
    #[serde(default)]
    policies: bool,
    /// `reads 1 ms, writes 5 ms`, `none`, or `real API server`.
    latency_model: String,
    /// From starting the operator until every gateway had `Programmed=True`; `None`
    /// when [`READY_LIMIT`] passed first.
    seconds_to_all_programmed: Option<f64>,
    /// Until every gateway had `Ready=True`.
    seconds_to_all_ready: Option<f64>,
    programmed: usize,
    ready: usize,
    reconciles: u64,
    reconcile_errors: u64,
    /// Failed reconciles by the loop's error reason.
    reconcile_error_reasons: BTreeMap<String, u64>,
    /// The operator's writes until all were Ready (and its last writes settled), by
    /// resource and verb, Events included.
    writes: Vec<Count>,
    writes_total: u64,
    /// Of those, Events.
    events: u64,
    /// The operator's write requests answered `409 Conflict`.
    conflicts: u64,
    steady_seconds: u64,
    steady_writes: u64,
    steady_detail: Vec<Count>,
    /// The operator's peak resident set; see `memory_measure`.
    operator_peak_rss_mib: f64,
    memory_measure: String,
    /// CPU seconds (user + system) until all were Ready; see `cpu_measure`.
    operator_cpu_seconds: f64,
    cpu_measure: String,
    /// CPU seconds of the API server until all were Ready: the bench process (testkit)
    /// for `binary`, kube-apiserver + etcd for `real`; `None` in process (shared).
    api_server_cpu_seconds: Option<f64>,
    /// Every request the API server answered from the operator's start until Ready, by
    /// verb (the operator's, plus the one list and watch the bench uses to see Ready).
    requests_by_verb: BTreeMap<String, u64>,
    /// Time the API server spent on them, by verb, in ms: the testkit's handling time
    /// without the latency model, or the real server's request durations from its audit
    /// log (watches excluded).
    api_server_ms_by_verb: BTreeMap<String, f64>,
    /// `real` only: every process of the control plane.
    control_plane: BTreeMap<String, ProcessFigures>,
    /// `binary` with `SCALE_BENCH_RESTART=1`: the converged operator replaced by a new
    /// process.
    #[serde(default)]
    restart: Option<RestartFigures>,
}

/// What a new operator process costs when it takes over converged gateways (a rollout of
/// the operator, a new leader): nothing changed, so it may write nothing.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct RestartFigures {
    /// From starting the new process until its `/readyz` answered 200 (every cache
    /// listed); `None` if it did not within the window.
    seconds_to_ready: Option<f64>,
    window_seconds: u64,
    /// The new operator's writes in the window, by resource and verb (must be none).
    writes: Vec<Count>,
    writes_total: u64,
    /// Every request the API server answered in the window, by verb: the cost of
    /// filling the caches (lists, watches) and of the reconciles (gets).
    requests_by_verb: BTreeMap<String, u64>,
    peak_rss_mib: f64,
    cpu_seconds: f64,
}

impl Record {
    fn writes_to(&self, resources: &[&str]) -> u64 {
        self.writes
            .iter()
            .filter(|w| resources.contains(&w.resource.as_str()))
            .map(|w| w.count)
            .sum()
    }

    fn seconds_per_gateway(&self) -> Option<f64> {
        self.seconds_to_all_ready
            .map(|s| s / self.gateways as f64 * 1000.0)
    }
}

/// The latency model of the testkit, in ms (reads, writes).
fn latency_model() -> (f64, f64) {
    let Ok(text) = std::env::var("SCALE_BENCH_LATENCY_MS") else {
        return DEFAULT_LATENCY_MS;
    };
    let parsed: Vec<f64> = text
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .filter(|ms: &f64| ms.is_finite() && *ms >= 0.0)
        .collect();
    match parsed.as_slice() {
        [reads, writes] => (*reads, *writes),
        _ => {
            panic!("SCALE_BENCH_LATENCY_MS={text} is not `reads,writes` in milliseconds (e.g. 1,5)")
        }
    }
}

fn describe_latency((reads, writes): (f64, f64)) -> String {
    if reads == 0.0 && writes == 0.0 {
        "none".to_owned()
    } else {
        format!("reads {reads} ms, writes {writes} ms")
    }
}

// ---------------------------------------------------------------------------------------
// Process figures from /proc.

// ---------------------------------------------------------------------------------------
// Fixtures and observation.

/// The objects of a scenario as YAML texts of at most 500 documents each (a YAML
/// stream of 10,000 documents would exceed the parser's budget): the default class,
/// [`NAMESPACES`] namespaces with their `api-key-secrets`, and N gateways of two models.
fn fixtures(gateways: usize, policies: bool) -> Vec<String> {
    let mut documents = vec![String::from(
        "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: AiGatewayClass\nmetadata:\n  name: litellm\n  annotations:\n    aigatewayclass.kubernetes.io/is-default-class: \"true\"\nspec:\n  controller: aigateway.agentic-layer.ai/ai-gateway-litellm-controller\n",
    )];
    for ns in 0..NAMESPACES {
        documents.push(format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: bench-{ns}\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: api-key-secrets\n  namespace: bench-{ns}\nstringData:\n  OPENAI_API_KEY: bench-placeholder\n  ANTHROPIC_API_KEY: bench-placeholder\n"
        ));
    }
    for i in 0..gateways {
        documents.push(format!(
            "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: AiGateway\nmetadata:\n  name: gw-{i:05}\n  namespace: bench-{}\nspec:\n  aiGatewayClassName: litellm\n  aiModels:\n    - provider: openai\n      name: gpt-4o-mini\n    - provider: anthropic\n      name: claude-sonnet-4-20250514\n",
            i % NAMESPACES
        ));
        if policies {
            documents.push(format!(
                "apiVersion: {}/v1alpha1\nkind: LiteLLMModelPolicy\nmetadata:\n  name: gw-{i:05}-models\n  namespace: bench-{}\nspec:\n  targetRefs:\n  - group: runtime.agentic-layer.ai\n    kind: AiGateway\n    name: gw-{i:05}\n  timeoutSeconds: 30\n  rpm: 600\n",
                litellm_impl::policy::GROUP,
                i % NAMESPACES
            ));
        }
    }
    documents.chunks(500).map(|c| c.join("---\n")).collect()
}

fn condition_true(gateway: &AiGateway, type_: &str) -> bool {
    gateway.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == "True")
    })
}

/// When every gateway was first Programmed and first Ready (from `started`), and how
/// many were at the end.
#[derive(Default)]
struct Convergence {
    programmed_after: Option<Duration>,
    ready_after: Option<Duration>,
    programmed: usize,
    ready: usize,
}

/// Watches the gateways until all `gateways` are Ready or `limit` passes. A watch, not
/// repeated lists: listing every gateway again and again would cost the two cores the
/// operator and the API server share.
async fn wait_until_all_ready(
    client: kube::Client,
    gateways: usize,
    started: Instant,
    limit: Duration,
) -> Convergence {
    use futures::StreamExt;
    use kube::runtime::watcher::{self, Event};
    let api: Api<AiGateway> = Api::all(client);
    let mut stream = std::pin::pin!(watcher::watcher(api, watcher::Config::default()));
    let mut programmed: HashSet<String> = HashSet::new();
    let mut ready: HashSet<String> = HashSet::new();
    let mut result = Convergence::default();
    let deadline = tokio::time::Instant::now() + limit;
    while ready.len() < gateways {
        let gateway = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(Event::Apply(g) | Event::InitApply(g)))) => g,
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => break,
        };
        let key = format!(
            "{}/{}",
            gateway.metadata.namespace.as_deref().unwrap_or_default(),
            gateway.metadata.name.as_deref().unwrap_or_default()
        );
        for (set, type_) in [(&mut programmed, "Programmed"), (&mut ready, "Ready")] {
            if condition_true(&gateway, type_) {
                set.insert(key.clone());
            } else {
                set.remove(&key);
            }
        }
        if programmed.len() == gateways && result.programmed_after.is_none() {
            result.programmed_after = Some(started.elapsed());
        }
    }
    if ready.len() == gateways {
        result.ready_after = Some(started.elapsed());
        result.programmed_after.get_or_insert(started.elapsed());
    }
    result.programmed = programmed.len();
    result.ready = ready.len();
    result
}

/// Waits until `count()` has not changed for a second: the last gateways' final status
/// writes and Events land just after Ready and belong to reaching it, not to the steady
/// state. (When not all became Ready, the operator is still at work: no point waiting.)
async fn settle<T: PartialEq>(mut count: impl FnMut() -> T) {
    let mut last = count();
    let mut quiet_since = Instant::now();
    let started = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(1) && started.elapsed() < READY_LIMIT {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = count();
        if now != last {
            last = now;
            quiet_since = Instant::now();
        }
    }
}

/// The operator's status field manager (gateway status), next to [`FIELD_MANAGER`].
fn status_manager() -> String {
    aigateway_runtime::names::status_field_manager(
        FIELD_MANAGER,
        litellm_impl::names::CONTROLLER_NAME,
    )
}

/// Writes attributable to the operator in the testkit's counters: its field managers
/// (children, status) plus Events (kube's event recorder sends no field manager).
/// Leases are not involved: the benchmark runs without leader election.
fn operator_writes(stats: &Stats) -> Vec<Count> {
    let mut writes: BTreeMap<(String, String), u64> = BTreeMap::new();
    for c in stats
        .counts
        .iter()
        .filter(|c| WRITE_VERBS.contains(&c.verb.as_str()))
        .filter(|c| {
            c.field_manager == FIELD_MANAGER
                || c.field_manager == status_manager()
                || c.resource == "events"
        })
    {
        // The testkit counts no subresource; the status field manager writes only status.
        let resource = if c.field_manager == status_manager() {
            format!("{}/status", c.resource)
        } else {
            c.resource.clone()
        };
        *writes.entry((resource, c.verb.clone())).or_default() += c.count;
    }
    to_counts(writes)
}

fn to_counts(map: BTreeMap<(String, String), u64>) -> Vec<Count> {
    map.into_iter()
        .map(|((resource, verb), count)| Count {
            resource,
            verb,
            count,
        })
        .collect()
}

/// `after - before`, per resource and verb, the non-zero ones.
fn difference(after: &[Count], before: &[Count]) -> Vec<Count> {
    after
        .iter()
        .filter_map(|a| {
            let old = before
                .iter()
                .find(|b| b.resource == a.resource && b.verb == a.verb)
                .map_or(0, |b| b.count);
            (a.count > old).then(|| Count {
                count: a.count - old,
                ..a.clone()
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The operator under test.

/// The operator flags of `litellm-impl run`.
#[derive(Parser)]
struct RunFlags {
    #[command(flatten)]
    operator: OperatorArgs,
}

/// The operator: in this process (as `litellm-impl run` builds it), or the built
/// `litellm-impl run` binary.
enum Running {
    InProcess {
        stop: tokio::sync::oneshot::Sender<()>,
        task: tokio::task::JoinHandle<Result<(), aigateway_runtime::OperatorError>>,
        metrics: std::sync::Arc<aigateway_runtime::operator::Metrics>,
    },
    Process {
        child: std::process::Child,
        admin_port: u16,
    },
}

impl Running {
    fn in_process(client: kube::Client, concurrency: u16) -> Self {
        // The flags of `litellm-impl run`, parsed as it parses them: defaults for all
        // but the probe and metrics addresses (no servers; metrics are read in process)
        // and the concurrency.
        let args = RunFlags::parse_from([
            "litellm-impl-run",
            "--health-probe-bind-address=0",
            "--metrics-bind-address=0",
            "--concurrency",
            &concurrency.to_string(),
        ])
        .operator;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let operator = operator(client, &args).shutdown_on(async move {
            let _ = stopped.await;
        });
        let metrics = operator.metrics();
        Running::InProcess {
            stop,
            task: tokio::spawn(operator.run()),
            metrics,
        }
    }

    fn binary(kubeconfig: &Path, concurrency: u16, probe_port: Option<u16>) -> Self {
        let admin_port = free_port();
        let probes = probe_port.map_or_else(|| "0".to_owned(), |p| format!("127.0.0.1:{p}"));
        // Another build of the operator (e.g. the commit before a change), so that two
        // builds can be compared on one machine within minutes of each other.
        let program = std::env::var_os("SCALE_BENCH_OPERATOR_BIN")
            .map_or_else(|| env!("CARGO_BIN_EXE_litellm-impl").into(), PathBuf::from);
        let child = Command::new(program)
            .arg("run")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args([
                &format!("--health-probe-bind-address={probes}"),
                &format!("--metrics-bind-address=127.0.0.1:{admin_port}"),
                "--metrics-secure=false",
                "--leader-elect=false",
                "--concurrency",
                &concurrency.to_string(),
            ])
            // Conflicts and retries are counted; their warnings would flood the output.
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start litellm-impl run");
        Running::Process { child, admin_port }
    }

    /// (reconciles, failed reconciles by reason) from the loop's metrics (over
    /// `/metrics` for the binary).
    fn reconciles(&self) -> (u64, BTreeMap<String, u64>) {
        let text = match self {
            Running::InProcess { metrics, .. } => metrics.encode(),
            Running::Process { admin_port, .. } => scrape_metrics(*admin_port).unwrap_or_default(),
        };
        let reconciles = text
            .lines()
            .filter(|l| l.starts_with("aigateway_reconciles_total"))
            .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .sum::<f64>() as u64;
        let mut errors = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| l.starts_with("aigateway_reconcile_errors_total{"))
        {
            let reason = line
                .split("reason=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("unknown");
            let count = line
                .split_whitespace()
                .last()
                .and_then(|c| c.parse::<f64>().ok())
                .unwrap_or(0.0) as u64;
            *errors.entry(reason.to_owned()).or_default() += count;
        }
        (reconciles, errors)
    }

    fn pid(&self) -> Option<u32> {
        match self {
            Running::Process { child, .. } => Some(child.id()),
            Running::InProcess { .. } => None,
        }
    }

    async fn stop(self) {
        match self {
            Running::InProcess { stop, task, .. } => {
                let _ = stop.send(());
                let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
            }
            Running::Process { mut child, .. } => {
                let _ = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status();
                let started = Instant::now();
                while child.try_wait().ok().flatten().is_none() {
                    if started.elapsed() > Duration::from_secs(30) {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The whole response to `GET path` on 127.0.0.1:`port`.
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// `GET /metrics` on the operator's admin server.
fn scrape_metrics(port: u16) -> Option<String> {
    http_get(port, "/metrics")
}

/// Starts a new operator process on a converged testkit and measures its first
/// `window`: time to `/readyz`, writes, requests, memory and CPU.
async fn restart_converged(
    server: &ApiServer,
    kubeconfig: &Path,
    concurrency: u16,
    window: Duration,
) -> RestartFigures {
    let before = server.stats();
    let probe_port = free_port();
    let started = Instant::now();
    let running = Running::binary(kubeconfig, concurrency, Some(probe_port));
    let mut seconds_to_ready = None;
    while started.elapsed() < window {
        let ready = http_get(probe_port, "/readyz")
            .is_some_and(|response| response.starts_with("HTTP/1.1 200"));
        if ready {
            seconds_to_ready = Some(started.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(window.saturating_sub(started.elapsed())).await;
    let after = server.stats();
    let writes = difference(&operator_writes(&after), &operator_writes(&before));
    let by_verb = |stats: &Stats| {
        let mut map: BTreeMap<String, u64> = BTreeMap::new();
        for c in &stats.counts {
            *map.entry(c.verb.clone()).or_default() += c.count;
        }
        map
    };
    let earlier = by_verb(&before);
    let requests_by_verb = by_verb(&after)
        .into_iter()
        .map(|(verb, count)| {
            let since = count.saturating_sub(earlier.get(&verb).copied().unwrap_or(0));
            (verb, since)
        })
        .filter(|(_, count)| *count > 0)
        .collect();
    let figures = RestartFigures {
        seconds_to_ready,
        window_seconds: window.as_secs(),
        writes_total: writes.iter().map(|w| w.count).sum(),
        writes,
        requests_by_verb,
        peak_rss_mib: mib(peak_rss_kib(running.pid())),
        cpu_seconds: cpu_seconds(running.pid()),
    };
    running.stop().await;
    figures
}

// ---------------------------------------------------------------------------------------
// Scenarios.

/// One scenario against the testkit, in this process.
async fn testkit_scenario(scenario: Scenario, steady: Duration) -> Record {
    let latency = latency_model();
    let server = ApiServer::builder()
        .request_latency(
            Duration::from_secs_f64(latency.0 / 1000.0),
            Duration::from_secs_f64(latency.1 / 1000.0),
        )
        // Every write of N gateways stays resumable for the operator's watches.
        .watch_history(scenario.gateways * 20)
        .build();
    for crd in litellm_impl_cli::crds::all() {
        server.install_crd(crd).await.expect("install a CRD");
    }
    // Direct store access: not counted as requests.
    for batch in fixtures(scenario.gateways, scenario.policies) {
        server.apply_manifests(&batch).expect("store the fixtures");
    }
    let baseline_kib = peak_rss_kib(None);
    server.reset_stats();

    let mut _http = None;
    let mut _dir = None;
    let mut kubeconfig_path = None;
    let cpu_before = cpu_seconds(None);
    let started = Instant::now();
    let running = match scenario.backend {
        Backend::InProcess => Running::in_process(server.client(), scenario.concurrency),
        Backend::Binary => {
            let http = server
                .serve_http("127.0.0.1:0".parse().unwrap())
                .await
                .expect("serve the testkit over HTTP");
            let dir = tempfile::tempdir().unwrap();
            let kubeconfig = dir.path().join("kubeconfig");
            http.write_kubeconfig(&kubeconfig).unwrap();
            let running = Running::binary(&kubeconfig, scenario.concurrency, None);
            kubeconfig_path = Some(kubeconfig);
            _http = Some(http);
            _dir = Some(dir);
            running
        }
        Backend::Real => unreachable!("the real control plane has its own scenario"),
    };
    let convergence = wait_until_all_ready(
        server.client(),
        scenario.gateways,
        started,
        ready_limit(READY_LIMIT),
    )
    .await;
    if convergence.ready == scenario.gateways {
        settle(|| operator_writes(&server.stats())).await;
    }
    let to_ready = server.stats();
    let own_cpu = cpu_seconds(None) - cpu_before;
    let operator_cpu = running.pid().map(|pid| cpu_seconds(Some(pid)));
    let (reconciles, reconcile_error_reasons) = running.reconciles();

    // Steady state: nothing changes, so nothing may be written.
    tokio::time::sleep(steady).await;
    let writes = operator_writes(&to_ready);
    let steady_detail = difference(&operator_writes(&server.stats()), &writes);

    let peak_kib = peak_rss_kib(None);
    let operator_kib = running.pid().map(|pid| peak_rss_kib(Some(pid)));
    running.stop().await;
    let restart = match kubeconfig_path {
        Some(kubeconfig)
            if restart_window().is_some() && convergence.ready == scenario.gateways =>
        {
            let window = restart_window().expect("checked");
            Some(restart_converged(&server, &kubeconfig, scenario.concurrency, window).await)
        }
        _ => None,
    };

    let mut requests_by_verb = BTreeMap::new();
    for c in &to_ready.counts {
        *requests_by_verb.entry(c.verb.clone()).or_default() += c.count;
    }
    let (operator_peak_rss_mib, memory_measure) = match operator_kib {
        Some(kib) => (mib(kib), "the operator process's own VmHWM".to_owned()),
        None => (
            mib(peak_kib.saturating_sub(baseline_kib)),
            format!(
                "upper bound: the process's VmHWM ({:.1} MiB) minus the testkit's with all objects stored ({:.1} MiB); includes the testkit's growth while serving",
                mib(peak_kib),
                mib(baseline_kib)
            ),
        ),
    };
    let (operator_cpu_seconds, cpu_measure, api_server_cpu_seconds) = match operator_cpu {
        Some(cpu) => (
            cpu,
            "the operator process's own user + system time".to_owned(),
            Some(own_cpu),
        ),
        None => (
            own_cpu,
            "the whole process: operator and testkit share it".to_owned(),
            None,
        ),
    };
    let events = writes
        .iter()
        .filter(|w| w.resource == "events")
        .map(|w| w.count)
        .sum();
    Record {
        gateways: scenario.gateways,
        concurrency: scenario.concurrency,
        backend: scenario.backend.name().to_owned(),
        policies: scenario.policies,
        latency_model: describe_latency(latency),
        seconds_to_all_programmed: convergence.programmed_after.map(|d| d.as_secs_f64()),
        seconds_to_all_ready: convergence.ready_after.map(|d| d.as_secs_f64()),
        programmed: convergence.programmed,
        ready: convergence.ready,
        reconciles,
        reconcile_errors: reconcile_error_reasons.values().sum(),
        reconcile_error_reasons,
        writes_total: writes.iter().map(|w| w.count).sum(),
        writes,
        events,
        conflicts: to_ready.failed_by_manager(409, FIELD_MANAGER)
            + to_ready.failed_by_manager(409, &status_manager()),
        steady_seconds: steady.as_secs(),
        steady_writes: steady_detail.iter().map(|d| d.count).sum(),
        steady_detail,
        operator_peak_rss_mib,
        memory_measure,
        operator_cpu_seconds,
        cpu_measure,
        api_server_cpu_seconds,
        requests_by_verb,
        api_server_ms_by_verb: to_ready
            .busy_micros
            .iter()
            .map(|(verb, micros)| (verb.clone(), *micros as f64 / 1000.0))
            .collect(),
        control_plane: BTreeMap::new(),
        restart,
    }
}

/// `SCALE_BENCH_RESTART=1`: after the steady state, the binary scenarios replace the
/// operator by a new process and watch it for 60 s (`SCALE_BENCH_RESTART_SECS`).
fn restart_window() -> Option<Duration> {
    if !std::env::var("SCALE_BENCH_RESTART").is_ok_and(|v| v == "1") {
        return None;
    }
    let seconds = std::env::var("SCALE_BENCH_RESTART_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    Some(Duration::from_secs(seconds))
}

/// The processes of a real control plane (`name pid` lines of its `pids` file).
fn control_plane_pids(dir: &Path) -> Vec<(String, u32)> {
    std::fs::read_to_string(dir.join("pids"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (name, pid) = l.split_once(' ')?;
            Some((name.to_owned(), pid.trim().parse().ok()?))
        })
        .collect()
}

/// Creates the fixtures on a real API server, 32 requests at a time.
async fn create_on_cluster(client: &kube::Client, batches: &[String]) {
    use futures::StreamExt;
    use kube::api::{DynamicObject, PostParams};
    use kube::discovery::ApiResource;
    let objects: Vec<Value> = batches
        .iter()
        .flat_map(|yaml| aigateway_testkit::parse_manifests(yaml).expect("the fixtures parse"))
        .collect();
    let create = |object: Value| {
        let client = client.clone();
        async move {
            let api_version = object["apiVersion"].as_str().unwrap_or_default().to_owned();
            let kind = object["kind"].as_str().unwrap_or_default().to_owned();
            let (group, version) = api_version
                .rsplit_once('/')
                .unwrap_or(("", api_version.as_str()));
            let plural = match kind.as_str() {
                "AiGateway" => "aigateways".to_owned(),
                "AiGatewayClass" => "aigatewayclasses".to_owned(),
                other => format!("{}s", other.to_lowercase()),
            };
            let resource = ApiResource {
                group: group.to_owned(),
                version: version.to_owned(),
                api_version: api_version.clone(),
                kind: kind.clone(),
                plural,
            };
            let object: DynamicObject = serde_json::from_value(object).expect("an object");
            let api: Api<DynamicObject> = match object.metadata.namespace.as_deref() {
                Some(ns) => Api::namespaced_with(client, ns, &resource),
                None => Api::all_with(client, &resource),
            };
            if let Err(error) = api.create(&PostParams::default(), &object).await {
                panic!("creating {kind} {:?} failed: {error}", object.metadata.name);
            }
        }
    };
    // Cluster-scoped objects and namespaces first, then what lives in them.
    let (first, rest): (Vec<Value>, Vec<Value>) = objects
        .into_iter()
        .partition(|o| o["metadata"]["namespace"].is_null());
    for batch in [first, rest] {
        futures::stream::iter(batch.into_iter().map(create))
            .buffer_unordered(32)
            .collect::<Vec<()>>()
            .await;
    }
}

/// Milliseconds between the audit log's `received` and `completed` timestamps.
fn audit_duration_ms(received: &str, completed: &str) -> Option<f64> {
    let received: jiff::Timestamp = received.parse().ok()?;
    let completed: jiff::Timestamp = completed.parse().ok()?;
    Some(completed.duration_since(received).as_secs_f64() * 1000.0)
}

/// kube-controller-manager's `--kube-api-qps` and `--kube-api-burst` for the real
/// scenario: `SCALE_BENCH_CM_QPS` and `SCALE_BENCH_CM_BURST`, default 200 and 300.
fn controller_manager_limit() -> (String, String) {
    let read = |name: &str, default: u32| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(default)
            .to_string()
    };
    (
        read("SCALE_BENCH_CM_QPS", 200),
        read("SCALE_BENCH_CM_BURST", 300),
    )
}

/// One scenario against a real control plane, the operator as the built binary with the
/// admin's credentials (its writes are the admin's after the fixtures are stored: the
/// bench itself only watches).
async fn real_scenario(scenario: Scenario, steady: Duration) -> Record {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    // The controller manager's client limit raised (kube's default is 20 requests a
    // second per controller), so that the operator, not the Deployment and ReplicaSet
    // controllers, sets the pace of Ready: the setup of the Go operator's figures.
    let (qps, burst) = controller_manager_limit();
    let cluster = tokio::task::block_in_place(|| {
        RealCluster::start_with_env(&[
            ("CONTROLLER_MANAGER_QPS", &qps),
            ("CONTROLLER_MANAGER_BURST", &burst),
        ])
    })
    .unwrap_or_else(|e| panic!("starting the real control plane failed: {e}"));
    let admin = cluster
        .admin_client()
        .await
        .unwrap_or_else(|e| panic!("no admin client for the real control plane: {e}"));
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    for crd in litellm_impl_cli::crds::all() {
        crds.create(&Default::default(), &crd)
            .await
            .expect("create a CRD");
    }
    for crd in litellm_impl_cli::crds::all() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let established = kube::runtime::wait::await_condition(
            crds.clone(),
            &name,
            kube::runtime::wait::conditions::is_crd_established(),
        );
        tokio::time::timeout(Duration::from_secs(60), established)
            .await
            .expect("the CRDs are established within a minute")
            .expect("watch the CRD");
    }
    let created = Instant::now();
    create_on_cluster(&admin, &fixtures(scenario.gateways, scenario.policies)).await;
    eprintln!(
        "stored {} gateways on the real control plane in {:.1} s",
        scenario.gateways,
        created.elapsed().as_secs_f64()
    );
    let pids = control_plane_pids(cluster.dir());
    let cpu_before: BTreeMap<String, f64> = pids
        .iter()
        .map(|(name, pid)| (name.clone(), cpu_seconds(Some(*pid))))
        .collect();
    let audit = cluster.audit_log();
    let mark = audit.mark();
    let admin_user = {
        // The admin's user name as the audit log records it: the last request was ours.
        let events = audit
            .since(aigateway_testkit::real_cluster::AuditMark::default())
            .unwrap_or_default();
        events
            .iter()
            .rev()
            .find(|e| e.resource == "aigateways" && e.verb == "create")
            .map(|e| e.user.clone())
            .expect("the audit log records the fixtures' creation")
    };

    let started = Instant::now();
    let running = Running::binary(&cluster.kubeconfig(), scenario.concurrency, None);
    let convergence = wait_until_all_ready(
        admin.clone(),
        scenario.gateways,
        started,
        ready_limit(REAL_READY_LIMIT),
    )
    .await;
    let operator_writes_since = |mark| {
        let mut writes: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut conflicts = 0;
        for event in audit.writes_since(mark).unwrap_or_default() {
            if event.user != admin_user {
                continue;
            }
            conflicts += u64::from(event.code == 409);
            let resource = if event.subresource.is_empty() {
                event.resource
            } else {
                format!("{}/{}", event.resource, event.subresource)
            };
            *writes.entry((resource, event.verb)).or_default() += 1;
        }
        (to_counts(writes), conflicts)
    };
    if convergence.ready == scenario.gateways {
        settle(|| operator_writes_since(mark).0).await;
    }
    let operator_cpu_seconds = running.pid().map_or(0.0, |pid| cpu_seconds(Some(pid)));
    let control_cpu: BTreeMap<String, f64> = pids
        .iter()
        .map(|(name, pid)| {
            let before = cpu_before.get(name).copied().unwrap_or(0.0);
            (name.clone(), cpu_seconds(Some(*pid)) - before)
        })
        .collect();
    let (reconciles, reconcile_error_reasons) = running.reconciles();
    let to_ready = audit.mark();
    let (writes, conflicts) = operator_writes_since(mark);
    let mut requests_by_verb = BTreeMap::new();
    let mut api_server_ms_by_verb = BTreeMap::new();
    for event in audit.since(mark).unwrap_or_default() {
        if event.user != admin_user {
            continue;
        }
        *requests_by_verb.entry(event.verb.clone()).or_default() += 1;
        if event.verb != "watch"
            && let Some(ms) = audit_duration_ms(&event.received, &event.completed)
        {
            *api_server_ms_by_verb.entry(event.verb).or_default() += ms;
        }
    }

    tokio::time::sleep(steady).await;
    let (steady_detail, _) = operator_writes_since(to_ready);
    let operator_kib = running.pid().map_or(0, |pid| peak_rss_kib(Some(pid)));
    let control_plane: BTreeMap<String, ProcessFigures> = pids
        .iter()
        .map(|(name, pid)| {
            (
                name.clone(),
                ProcessFigures {
                    cpu_seconds: control_cpu.get(name).copied().unwrap_or(0.0),
                    peak_rss_mib: mib(peak_rss_kib(Some(*pid))),
                },
            )
        })
        .collect();
    running.stop().await;
    drop(cluster);

    let events = writes
        .iter()
        .filter(|w| w.resource == "events")
        .map(|w| w.count)
        .sum();
    Record {
        gateways: scenario.gateways,
        concurrency: scenario.concurrency,
        backend: scenario.backend.name().to_owned(),
        policies: scenario.policies,
        latency_model: "real API server".to_owned(),
        seconds_to_all_programmed: convergence.programmed_after.map(|d| d.as_secs_f64()),
        seconds_to_all_ready: convergence.ready_after.map(|d| d.as_secs_f64()),
        programmed: convergence.programmed,
        ready: convergence.ready,
        reconciles,
        reconcile_errors: reconcile_error_reasons.values().sum(),
        reconcile_error_reasons,
        writes_total: writes.iter().map(|w| w.count).sum(),
        writes,
        events,
        conflicts,
        steady_seconds: steady.as_secs(),
        steady_writes: steady_detail.iter().map(|d| d.count).sum(),
        steady_detail,
        operator_peak_rss_mib: mib(operator_kib),
        memory_measure: "the operator process's own VmHWM".to_owned(),
        operator_cpu_seconds,
        cpu_measure: "the operator process's own user + system time".to_owned(),
        api_server_cpu_seconds: Some(
            ["kube-apiserver", "etcd"]
                .iter()
                .filter_map(|name| control_cpu.get(*name))
                .sum(),
        ),
        requests_by_verb,
        api_server_ms_by_verb,
        control_plane,
        restart: None,
    }
}

/// Runs one scenario in a child process (for its own `VmHWM`); `None` when it failed
/// (its output says why; the other scenarios still run).
fn run_child(scenario: Scenario) -> Option<Record> {
    eprintln!(
        "running N = {}, concurrency {}, {} ...",
        scenario.gateways,
        scenario.concurrency,
        scenario.backend.describe()
    );
    let output = Command::new(std::env::current_exe().expect("the bench binary"))
        .env("SCALE_BENCH_SCENARIO", scenario.spec())
        // `run` would read these: the scenario sets what it needs by flags.
        .env_remove("WATCH_NAMESPACE")
        .env_remove("LITELLM_IMAGE")
        .env_remove("HEALTH_PROBE_BIND_ADDRESS")
        .env_remove("METRICS_BIND_ADDRESS")
        .env_remove("KUBECONFIG")
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("re-run the bench binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let Some(line) = stdout.lines().find_map(|l| l.strip_prefix("SCALE_RESULT ")) else {
        eprintln!(
            "!!! scenario {} failed ({}) and is left out of the records:\n{stdout}",
            scenario.spec(),
            output.status,
        );
        return None;
    };
    Some(serde_json::from_str(line).expect("result JSON"))
}

// ---------------------------------------------------------------------------------------
// Output.

fn print_table(all: &[Record]) {
    let header = [
        "gateways",
        "conc.",
        "operator",
        "all Programmed",
        "all Ready",
        "ms/gw",
        "reconciles/gw",
        "writes/gw",
        "children/gw",
        "status/gw",
        "events/gw",
        "conflicts",
        "steady writes",
        "operator peak RSS",
        "operator CPU",
    ];
    let seconds =
        |s: Option<f64>| s.map_or_else(|| "NOT REACHED".to_owned(), |s| format!("{s:.2} s"));
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|r| {
            let n = r.gateways as f64;
            vec![
                r.gateways.to_string(),
                r.concurrency.to_string(),
                if r.policies {
                    format!("{} + a policy per gateway", r.backend)
                } else {
                    r.backend.clone()
                },
                seconds(r.seconds_to_all_programmed),
                if r.seconds_to_all_ready.is_some() {
                    seconds(r.seconds_to_all_ready)
                } else {
                    format!("NOT REACHED ({}/{})", r.ready, r.gateways)
                },
                r.seconds_per_gateway()
                    .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.2}")),
                format!("{:.2}", r.reconciles as f64 / n),
                format!("{:.2}", r.writes_total as f64 / n),
                format!(
                    "{:.2}",
                    r.writes_to(&["configmaps", "deployments", "services"]) as f64 / n
                ),
                format!(
                    "{:.2}",
                    r.writes_to(&["aigateways", "aigateways/status"]) as f64 / n
                ),
                format!("{:.2}", r.events as f64 / n),
                format!(
                    "{} ({:.1} % of reconciles)",
                    r.conflicts,
                    100.0 * r.conflicts as f64 / (r.reconciles.max(1)) as f64
                ),
                format!("{} in {} s", r.steady_writes, r.steady_seconds),
                format!(
                    "{:.1} MiB{}",
                    r.operator_peak_rss_mib,
                    if r.backend == "in-process" {
                        " (bound)"
                    } else {
                        ""
                    }
                ),
                format!(
                    "{:.1} s{}",
                    r.operator_cpu_seconds,
                    if r.backend == "in-process" {
                        " (+testkit)"
                    } else {
                        ""
                    }
                ),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("| {} |", padded.join(" | "));
    };
    line(header.iter().map(|h| (*h).to_owned()).collect());
    line(widths.iter().map(|w| "-".repeat(*w)).collect());
    for row in rows {
        line(row);
    }
}

fn print_details(all: &[Record]) {
    for r in all {
        let writes: Vec<String> = r
            .writes
            .iter()
            .map(|w| format!("{} {}: {}", w.verb, w.resource, w.count))
            .collect();
        let requests: Vec<String> = r
            .requests_by_verb
            .iter()
            .map(|(verb, count)| {
                let ms = r.api_server_ms_by_verb.get(verb).copied().unwrap_or(0.0);
                format!("{verb} {count} ({ms:.0} ms)")
            })
            .collect();
        println!(
            "N = {}, concurrency {}, {} ({}): {} writes until Ready ({}); {} reconciles, {} failed {:?}; requests and API server time by verb: {}; API server CPU {}",
            r.gateways,
            r.concurrency,
            r.backend,
            r.latency_model,
            r.writes_total,
            writes.join(", "),
            r.reconciles,
            r.reconcile_errors,
            r.reconcile_error_reasons,
            requests.join(", "),
            r.api_server_cpu_seconds
                .map_or_else(|| "shared".to_owned(), |s| format!("{s:.1} s")),
        );
        for (name, p) in &r.control_plane {
            // CPU seconds are work: per gateway they move less with the machine's load
            // than wall time does.
            println!(
                "    {name}: {:.1} CPU s ({:.1} ms per gateway), peak RSS {:.1} MiB",
                p.cpu_seconds,
                p.cpu_seconds * 1000.0 / r.gateways as f64,
                p.peak_rss_mib
            );
        }
        if r.steady_writes > 0 {
            println!(
                "!!! WARNING: {} writes during {} s of steady state (must be 0): {:?}",
                r.steady_writes, r.steady_seconds, r.steady_detail
            );
        }
        if let Some(restart) = &r.restart {
            let requests: Vec<String> = restart
                .requests_by_verb
                .iter()
                .map(|(verb, count)| format!("{verb} {count}"))
                .collect();
            println!(
                "    restart of the converged operator: /readyz after {}; {} writes in its first {} s {:?}; requests {}; peak RSS {:.1} MiB, CPU {:.1} s",
                restart
                    .seconds_to_ready
                    .map_or_else(|| "never".to_owned(), |s| format!("{s:.2} s")),
                restart.writes_total,
                restart.window_seconds,
                restart.writes,
                requests.join(", "),
                restart.peak_rss_mib,
                restart.cpu_seconds,
            );
        }
    }
    // The ratios the targets speak of, from this run.
    let find = |n: usize, c: u16, backend: &str| {
        all.iter()
            .find(|r| r.gateways == n && r.concurrency == c && r.backend == backend)
    };
    for backend in ["in-process", "binary"] {
        if let (Some(one), Some(many)) = (
            find(1000, 1, backend),
            find(1000, DEFAULT_CONCURRENCY, backend),
        ) && let (Some(s1), Some(s16)) = (one.seconds_to_all_ready, many.seconds_to_all_ready)
        {
            println!(
                "N = 1000, {backend}: concurrency 1 takes {s1:.2} s, concurrency {DEFAULT_CONCURRENCY} takes {s16:.2} s: {:.2}x",
                s1 / s16
            );
        }
        if let (Some(small), Some(large)) = (
            find(1000, DEFAULT_CONCURRENCY, backend).and_then(Record::seconds_per_gateway),
            find(10_000, DEFAULT_CONCURRENCY, backend).and_then(Record::seconds_per_gateway),
        ) {
            println!(
                "{backend}, concurrency {DEFAULT_CONCURRENCY}: {small:.2} ms per gateway at N = 1000, {large:.2} ms at N = 10000: {:.2}x",
                large / small
            );
        }
    }
}

fn default_scenarios() -> Vec<Scenario> {
    let flag = |name: &str| std::env::var(name).is_ok_and(|v| v == "1");
    let s = |gateways, concurrency, backend| Scenario {
        gateways,
        concurrency,
        backend,
        policies: false,
    };
    if flag("SCALE_BENCH_QUICK") {
        return vec![
            s(100, DEFAULT_CONCURRENCY, Backend::InProcess),
            s(100, 1, Backend::InProcess),
            s(100, DEFAULT_CONCURRENCY, Backend::Binary),
        ];
    }
    let mut all = vec![
        s(1000, DEFAULT_CONCURRENCY, Backend::InProcess),
        s(1000, 1, Backend::InProcess),
        s(1000, DEFAULT_CONCURRENCY, Backend::Binary),
        s(1000, 1, Backend::Binary),
        s(10_000, DEFAULT_CONCURRENCY, Backend::InProcess),
        s(10_000, DEFAULT_CONCURRENCY, Backend::Binary),
    ];
    if flag("SCALE_BENCH_SLOW") {
        all.push(s(10_000, 1, Backend::Binary));
    }
    if flag("SCALE_BENCH_REAL") {
        all.push(s(1000, DEFAULT_CONCURRENCY, Backend::Real));
    }
    all
}

fn output_path() -> PathBuf {
    std::env::var_os("SCALE_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // Benches run with the package as working directory; the JSON goes to the
            // workspace's target directory.
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench/scale.json")
        })
}

fn main() {
    let quick = std::env::var("SCALE_BENCH_QUICK").is_ok_and(|v| v == "1");
    let steady = Duration::from_secs(
        std::env::var("SCALE_BENCH_STEADY_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(if quick { 2 } else { 10 }),
    );
    if let Ok(spec) = std::env::var("SCALE_BENCH_SCENARIO") {
        let scenario = Scenario::parse(&spec)
            .unwrap_or_else(|| panic!("SCALE_BENCH_SCENARIO={spec} is not N:concurrency:backend"));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a Tokio runtime");
        let record = runtime.block_on(async {
            match scenario.backend {
                Backend::Real => real_scenario(scenario, steady).await,
                _ => testkit_scenario(scenario, steady).await,
            }
        });
        println!(
            "SCALE_RESULT {}",
            serde_json::to_string(&record).expect("a record serialises")
        );
        return;
    }

    let scenarios = match std::env::var("SCALE_BENCH_SCENARIOS") {
        Ok(list) => list
            .split(',')
            .map(|spec| {
                Scenario::parse(spec).unwrap_or_else(|| {
                    panic!("SCALE_BENCH_SCENARIOS: `{spec}` is not N:concurrency:backend (backend in-process, binary or real)")
                })
            })
            .collect(),
        Err(_) => default_scenarios(),
    };
    let all: Vec<Record> = scenarios.into_iter().filter_map(run_child).collect();

    let path = output_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("create the output directory");
    }
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&all).expect("records serialise"),
    )
    .unwrap_or_else(|e| panic!("writing {} failed: {e}", path.display()));

    println!();
    println!(
        "Scale benchmark: LiteLLM operator ({} cores; testkit latency model: {})",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        describe_latency(latency_model())
    );
    println!();
    print_table(&all);
    println!();
    print_details(&all);
    println!();
    println!("records: {}", path.display());
}
