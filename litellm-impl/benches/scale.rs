//! Scale benchmark of the LiteLLM operator: N AiGateways created at once against the
//! in-process testkit API server (Deployments report ready immediately).
//!
//! Run it with:
//!
//!     cargo bench -p litellm-impl --bench scale
//!
//! For each N (default 100 and 1,000; `SCALE_BENCH_SIZES=100` for a quick run) it
//! reports the time until every gateway is Ready, the write requests per gateway, the
//! writes during 10 s of steady state (`SCALE_BENCH_STEADY_SECS` to change) and the
//! peak memory. Then it runs the largest N again with reconcile concurrency 1 (how the
//! Go operator runs: controller-runtime's default of one worker) and prints the ratio of
//! the two times-to-Ready.
//!
//! Each scenario runs in a fresh child process (this binary re-executed with
//! `SCALE_BENCH_SCENARIO=<N>:<concurrency>`), so that its peak memory (`VmHWM`) is its
//! own. The testkit shares the process, so the baseline `VmHWM` with the testkit loaded
//! (CRDs, class, Secrets and all N gateways stored) is taken before the operator starts,
//! and the operator's share is the difference.
//!
//! The figures are printed, never asserted: this is not a timed test. The latest are in
//! docs/reference/benchmarks.md.

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use aigateway_api::AiGateway;
use aigateway_testkit::{ApiServer, Stats, WRITE_VERBS};
use clap::Parser;
use kube::Api;
use litellm_impl::cli::run::{OperatorArgs, operator};
use serde_json::{Value, json};

/// The operator's field manager (also on every child it applies and status it writes).
const FIELD_MANAGER: &str = "ai-gateway-litellm-controller";
/// Gateways are spread over this many namespaces, each with its `api-key-secrets`.
const NAMESPACES: usize = 10;
/// The default of `litellm-impl run --concurrency`.
const DEFAULT_CONCURRENCY: u16 = 16;
/// Give up waiting for Ready after this long (and say so).
const READY_LIMIT: Duration = Duration::from_secs(600);

/// What one scenario measured.
#[derive(Debug, Clone)]
struct Figures {
    gateways: usize,
    concurrency: u16,
    /// The operator ran as the `litellm-impl run` binary, talking HTTP to the testkit.
    out_of_process: bool,
    /// From starting the operator until every gateway had `Ready=True`; `None` when
    /// [`READY_LIMIT`] passed first.
    ready_after: Option<Duration>,
    ready_count: usize,
    /// Writes until Ready, by kind: (resource, verb, count).
    writes: Vec<(String, String, u64)>,
    reconciles: u64,
    reconcile_errors: u64,
    /// `reason=count` of the failed reconciles.
    error_reasons: String,
    steady_secs: u64,
    steady_writes: u64,
    steady_detail: Vec<(String, String, u64)>,
    baseline_kib: u64,
    peak_kib: u64,
    /// Out of process only: the operator process's own `VmHWM`.
    operator_process_kib: Option<u64>,
}

impl Figures {
    fn total_writes(&self) -> u64 {
        self.writes.iter().map(|w| w.2).sum()
    }
    fn writes_per_gateway(&self) -> f64 {
        self.total_writes() as f64 / self.gateways as f64
    }
    fn writes_to(&self, resource: &str) -> u64 {
        self.writes
            .iter()
            .filter(|w| w.0 == resource)
            .map(|w| w.2)
            .sum()
    }

    fn to_json(&self) -> Value {
        json!({
            "gateways": self.gateways,
            "concurrency": self.concurrency,
            "out_of_process": self.out_of_process,
            "ready_after_ms": self.ready_after.map(|d| d.as_secs_f64() * 1000.0),
            "ready_count": self.ready_count,
            "writes": self.writes,
            "reconciles": self.reconciles,
            "reconcile_errors": self.reconcile_errors,
            "error_reasons": self.error_reasons,
            "steady_secs": self.steady_secs,
            "steady_writes": self.steady_writes,
            "steady_detail": self.steady_detail,
            "baseline_kib": self.baseline_kib,
            "peak_kib": self.peak_kib,
            "operator_process_kib": self.operator_process_kib,
        })
    }

    fn from_json(value: &Value) -> Self {
        let triples = |v: &Value| -> Vec<(String, String, u64)> {
            serde_json::from_value(v.clone()).expect("a list of (resource, verb, count)")
        };
        Figures {
            gateways: value["gateways"].as_u64().unwrap() as usize,
            concurrency: value["concurrency"].as_u64().unwrap() as u16,
            out_of_process: value["out_of_process"].as_bool().unwrap(),
            ready_after: value["ready_after_ms"]
                .as_f64()
                .map(|ms| Duration::from_secs_f64(ms / 1000.0)),
            ready_count: value["ready_count"].as_u64().unwrap() as usize,
            writes: triples(&value["writes"]),
            reconciles: value["reconciles"].as_u64().unwrap(),
            reconcile_errors: value["reconcile_errors"].as_u64().unwrap(),
            error_reasons: value["error_reasons"].as_str().unwrap().to_owned(),
            steady_secs: value["steady_secs"].as_u64().unwrap(),
            steady_writes: value["steady_writes"].as_u64().unwrap(),
            steady_detail: triples(&value["steady_detail"]),
            baseline_kib: value["baseline_kib"].as_u64().unwrap(),
            peak_kib: value["peak_kib"].as_u64().unwrap(),
            operator_process_kib: value["operator_process_kib"].as_u64(),
        }
    }
}

/// A process's peak resident set size (`VmHWM`), in KiB; `pid` `None` is this process.
fn peak_rss_kib(pid: Option<u32>) -> u64 {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_owned(),
    };
    std::fs::read_to_string(path)
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

/// Writes attributable to the operator: its field manager (children, status) plus
/// Events (kube's event recorder sends no field manager). Leases are not involved: the
/// benchmark runs without leader election.
fn operator_writes(stats: &Stats) -> Vec<(String, String, u64)> {
    let mut writes: Vec<(String, String, u64)> = stats
        .counts
        .iter()
        .filter(|c| WRITE_VERBS.contains(&c.verb.as_str()))
        .filter(|c| c.field_manager == FIELD_MANAGER || c.resource == "events")
        .map(|c| (c.resource.clone(), c.verb.clone(), c.count))
        .collect();
    writes.sort();
    writes
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn is_ready(gateway: &AiGateway) -> bool {
    gateway.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// Watches the gateways until all `gateways` are Ready or `limit` passes; returns how
/// many were Ready. A watch, not repeated lists: listing every gateway again and again
/// would cost the two cores the operator and the API server share.
async fn wait_until_all_ready(client: kube::Client, gateways: usize, limit: Duration) -> usize {
    use futures::StreamExt;
    use kube::runtime::watcher::{self, Event};
    let api: Api<AiGateway> = Api::all(client);
    let mut stream = std::pin::pin!(watcher::watcher(api, watcher::Config::default()));
    let mut ready: HashSet<String> = HashSet::new();
    let deadline = tokio::time::Instant::now() + limit;
    while ready.len() < gateways {
        let gateway = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(Event::Apply(g) | Event::InitApply(g) | Event::Delete(g)))) => g,
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => break,
        };
        let key = format!(
            "{}/{}",
            gateway.metadata.namespace.as_deref().unwrap_or_default(),
            gateway.metadata.name.as_deref().unwrap_or_default()
        );
        if is_ready(&gateway) {
            ready.insert(key);
        } else {
            ready.remove(&key);
        }
    }
    ready.len()
}

fn fixtures(gateways: usize) -> String {
    let mut yaml = String::from(
        "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: AiGatewayClass\nmetadata:\n  name: litellm\n  annotations:\n    aigatewayclass.kubernetes.io/is-default-class: \"true\"\nspec:\n  controller: aigateway.agentic-layer.ai/ai-gateway-litellm-controller\n",
    );
    for ns in 0..NAMESPACES {
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: bench-{ns}\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: api-key-secrets\n  namespace: bench-{ns}\nstringData:\n  OPENAI_API_KEY: bench-placeholder\n  ANTHROPIC_API_KEY: bench-placeholder\n"
        ));
    }
    for i in 0..gateways {
        yaml.push_str(&format!(
            "---\napiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: AiGateway\nmetadata:\n  name: gw-{i:04}\n  namespace: bench-{}\nspec:\n  aiGatewayClassName: litellm\n  aiModels:\n    - provider: openai\n      name: gpt-4o-mini\n    - provider: anthropic\n      name: claude-sonnet-4-20250514\n",
            i % NAMESPACES
        ));
    }
    yaml
}

/// The operator flags of `litellm-impl run`.
#[derive(Parser)]
struct RunFlags {
    #[command(flatten)]
    operator: OperatorArgs,
}

/// The operator under test: in this process (as `litellm-impl run` builds it), or the
/// built `litellm-impl run` binary against the testkit's HTTP endpoint.
enum Running {
    InProcess {
        stop: tokio::sync::oneshot::Sender<()>,
        task: tokio::task::JoinHandle<Result<(), aigateway_runtime::OperatorError>>,
        metrics: std::sync::Arc<aigateway_runtime::metrics::Metrics>,
    },
    Process {
        child: std::process::Child,
        admin_port: u16,
        _http: aigateway_testkit::HttpServer,
        _dir: tempfile::TempDir,
    },
}

impl Running {
    async fn start(server: &ApiServer, concurrency: u16, out_of_process: bool) -> Self {
        if out_of_process {
            let http = server
                .serve_http("127.0.0.1:0".parse().unwrap())
                .await
                .expect("serve the testkit over HTTP");
            let dir = tempfile::tempdir().unwrap();
            let kubeconfig = dir.path().join("kubeconfig");
            http.write_kubeconfig(&kubeconfig).unwrap();
            let admin_port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let child = Command::new(env!("CARGO_BIN_EXE_litellm-impl"))
                .arg("run")
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args([
                    "--admin-address",
                    &format!("127.0.0.1:{admin_port}"),
                    "--leader-elect=false",
                    "--concurrency",
                    &concurrency.to_string(),
                ])
                .env("RUST_LOG", "warn")
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("start litellm-impl run");
            return Running::Process {
                child,
                admin_port,
                _http: http,
                _dir: dir,
            };
        }
        // The flags of `litellm-impl run`, parsed as it parses them: defaults for all
        // but the admin address and the concurrency.
        let args = RunFlags::parse_from([
            "litellm-impl-run",
            "--admin-address",
            "127.0.0.1:0",
            "--concurrency",
            &concurrency.to_string(),
        ])
        .operator;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let operator = operator(server.client(), &args).shutdown_on(async move {
            let _ = stopped.await;
        });
        let metrics = operator.metrics();
        Running::InProcess {
            stop,
            task: tokio::spawn(operator.run()),
            metrics,
        }
    }

    /// (reconciles, failed reconciles) from the loop's metrics (over `/metrics` for the
    /// binary).
    fn reconciles(&self) -> Option<(u64, u64, String)> {
        let text = match self {
            Running::InProcess { metrics, .. } => metrics.encode(),
            Running::Process { admin_port, .. } => scrape_metrics(*admin_port)?,
        };
        let reasons: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("aigateway_reconcile_errors_total{"))
            .map(|l| l.replace("} ", " = "))
            .collect();
        Some((
            metric(&text, "aigateway_reconciles_total"),
            metric(&text, "aigateway_reconcile_errors_total"),
            reasons.join(", "),
        ))
    }

    fn process_peak_kib(&self) -> Option<u64> {
        match self {
            Running::Process { child, .. } => Some(peak_rss_kib(Some(child.id()))),
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

/// `GET /metrics` on the operator's admin server.
fn scrape_metrics(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// One scenario, in this process.
async fn scenario(
    gateways: usize,
    concurrency: u16,
    out_of_process: bool,
    steady: Duration,
) -> Figures {
    let server = ApiServer::builder().build();
    for crd in aigateway_api::crds::all() {
        server.install_crd(crd).await.expect("install a CRD");
    }
    // Direct store access: not counted as requests.
    server
        .apply_manifests(&fixtures(gateways))
        .expect("store the fixtures");
    let baseline_kib = peak_rss_kib(None);
    server.reset_stats();

    let started = Instant::now();
    let running = Running::start(&server, concurrency, out_of_process).await;
    let ready = wait_until_all_ready(server.client(), gateways, READY_LIMIT).await;
    let ready_after = (ready == gateways).then(|| started.elapsed());
    // The last gateways' final status writes and Events land just after Ready: they
    // belong to reaching Ready, not to the steady state. Wait until the operator's write
    // count has not moved for a second.
    let mut last = operator_writes(&server.stats());
    let mut quiet_since = Instant::now();
    let settle = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(1) && settle.elapsed() < READY_LIMIT {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = operator_writes(&server.stats());
        if now != last {
            last = now;
            quiet_since = Instant::now();
        }
    }
    let to_ready = server.stats();
    let reconciles = running.reconciles();

    // Steady state: nothing changes, so nothing may be written.
    tokio::time::sleep(steady).await;
    let steady_end = server.stats();
    let before = operator_writes(&to_ready);
    let steady_detail: Vec<(String, String, u64)> = operator_writes(&steady_end)
        .into_iter()
        .filter_map(|(resource, verb, count)| {
            let old = before
                .iter()
                .find(|b| b.0 == resource && b.1 == verb)
                .map_or(0, |b| b.2);
            (count > old).then(|| (resource, verb, count - old))
        })
        .collect();

    let peak_kib = peak_rss_kib(None);
    let operator_process_kib = running.process_peak_kib();
    running.stop().await;

    let (reconciles, reconcile_errors, error_reasons) = reconciles.unwrap_or_default();
    Figures {
        gateways,
        concurrency,
        out_of_process,
        ready_after,
        ready_count: ready,
        writes: operator_writes(&to_ready),
        reconciles,
        reconcile_errors,
        error_reasons,
        steady_secs: steady.as_secs(),
        steady_writes: steady_detail.iter().map(|d| d.2).sum(),
        steady_detail,
        baseline_kib,
        peak_kib,
        operator_process_kib,
    }
}

/// Runs one scenario in a child process (for a clean `VmHWM`).
fn run_child(gateways: usize, concurrency: u16, out_of_process: bool) -> Figures {
    let mode = if out_of_process {
        "process"
    } else {
        "in-process"
    };
    eprintln!("running N = {gateways}, concurrency {concurrency}, {mode} ...");
    let output = Command::new(std::env::current_exe().expect("the bench binary"))
        .env(
            "SCALE_BENCH_SCENARIO",
            format!("{gateways}:{concurrency}:{mode}"),
        )
        // `run` would read these: the scenario sets what it needs by flags.
        .env_remove("WATCH_NAMESPACE")
        .env_remove("LITELLM_IMAGE")
        .env_remove("ADMIN_ADDRESS")
        .env_remove("KUBECONFIG")
        .output()
        .expect("re-run the bench binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("SCALE_RESULT "))
        .unwrap_or_else(|| {
            panic!(
                "the scenario printed no result ({}):\n{stdout}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
        });
    Figures::from_json(&serde_json::from_str(line).expect("result JSON"))
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn print_table(all: &[Figures]) {
    let header = [
        "gateways",
        "concurrency",
        "operator",
        "time to Ready",
        "reconciles/gw",
        "writes/gw",
        "apply/gw",
        "status/gw",
        "events/gw",
        "steady writes",
        "peak RSS (bench process)",
        "testkit baseline",
        "operator memory",
    ];
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|f| {
            let n = f.gateways as f64;
            let children =
                f.writes_to("configmaps") + f.writes_to("deployments") + f.writes_to("services");
            vec![
                f.gateways.to_string(),
                f.concurrency.to_string(),
                if f.out_of_process {
                    "binary over HTTP".to_owned()
                } else {
                    "in process".to_owned()
                },
                f.ready_after.map_or_else(
                    || format!("NOT READY ({}/{})", f.ready_count, f.gateways),
                    |d| format!("{:.2} s", d.as_secs_f64()),
                ),
                format!("{:.2}", f.reconciles as f64 / n),
                format!("{:.2}", f.writes_per_gateway()),
                format!("{:.2}", children as f64 / n),
                format!("{:.2}", f.writes_to("aigateways") as f64 / n),
                format!("{:.2}", f.writes_to("events") as f64 / n),
                format!("{} in {} s", f.steady_writes, f.steady_secs),
                mib(f.peak_kib),
                mib(f.baseline_kib),
                match f.operator_process_kib {
                    Some(kib) => format!("{} (own VmHWM)", mib(kib)),
                    None => format!(
                        "{} (difference)",
                        mib(f.peak_kib.saturating_sub(f.baseline_kib))
                    ),
                },
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap()
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

fn main() {
    let steady = Duration::from_secs(
        std::env::var("SCALE_BENCH_STEADY_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10),
    );
    if let Ok(spec) = std::env::var("SCALE_BENCH_SCENARIO") {
        let parts: Vec<&str> = spec.split(':').collect();
        let (n, c): (usize, u16) = (parts[0].parse().unwrap(), parts[1].parse().unwrap());
        let out_of_process = parts.get(2) == Some(&"process");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let figures = runtime.block_on(scenario(n, c, out_of_process, steady));
        println!("SCALE_RESULT {}", figures.to_json());
        return;
    }

    let sizes: Vec<usize> = std::env::var("SCALE_BENCH_SIZES")
        .unwrap_or_else(|_| "100,1000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .filter(|n| *n > 0)
        .collect();
    let largest = *sizes.iter().max().expect("SCALE_BENCH_SIZES names no size");
    let mut all: Vec<Figures> = sizes
        .iter()
        .map(|n| run_child(*n, DEFAULT_CONCURRENCY, false))
        .collect();
    let serial = run_child(largest, 1, false);
    all.push(serial.clone());
    all.push(run_child(largest, DEFAULT_CONCURRENCY, true));

    println!();
    println!(
        "Scale benchmark: LiteLLM operator on the in-process testkit ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    print_table(&all);
    println!();
    for f in &all {
        let detail: Vec<String> = f
            .writes
            .iter()
            .map(|(resource, verb, count)| format!("{verb} {resource}: {count}"))
            .collect();
        println!(
            "N = {}, concurrency {}{}: {} writes until Ready ({}); {} reconciles, {} failed {}",
            f.gateways,
            f.concurrency,
            if f.out_of_process {
                ", binary over HTTP"
            } else {
                ""
            },
            f.total_writes(),
            detail.join(", "),
            f.reconciles,
            f.reconcile_errors,
            if f.error_reasons.is_empty() {
                String::new()
            } else {
                format!("({})", f.error_reasons)
            }
        );
        if f.steady_writes > 0 {
            println!(
                "!!! WARNING: {} writes during {} s of steady state (must be 0): {:?}",
                f.steady_writes, f.steady_secs, f.steady_detail
            );
        }
        if f.ready_after.is_none() {
            println!(
                "!!! WARNING: only {}/{} gateways Ready after {:?}",
                f.ready_count, f.gateways, READY_LIMIT
            );
        }
    }
    let parallel = all.iter().find(|f| {
        f.gateways == largest && f.concurrency == DEFAULT_CONCURRENCY && !f.out_of_process
    });
    if let (Some(parallel), Some(p), Some(s)) = (
        parallel,
        parallel.and_then(|f| f.ready_after),
        serial.ready_after,
    ) {
        println!();
        println!(
            "N = {largest}: concurrency 1 takes {:.2} s, concurrency {} takes {:.2} s: ratio {:.2}x",
            s.as_secs_f64(),
            parallel.concurrency,
            p.as_secs_f64(),
            s.as_secs_f64() / p.as_secs_f64()
        );
    }
}
