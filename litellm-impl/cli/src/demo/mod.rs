//! `litellm-impl demo`: the whole pattern on a laptop, no cluster needed.
//!
//! Starts the in-memory API server (aigateway-testkit) on loopback, installs the CRDs,
//! the default `litellm` class, sample gateways from `examples/manifests/` (AiGateways,
//! and a ToolGateway with two ToolRoutes) and `api-key-secrets` Secrets with placeholder
//! keys, runs the same operator as `run`, and prints the gateways and routes as they
//! change.
//!
//! With `--with-proxy` it also runs the real LiteLLM proxy for the AiGateway the demo's
//! agent resolves to and for the sample ToolGateway, sends a chat completion through the
//! first and MCP calls through the second's routes ([`with_proxy`]).

pub mod with_proxy;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use aigateway_api::conditions::find_condition;
use aigateway_api::{AiGateway, ToolGateway, ToolRoute};
use aigateway_testkit::ApiServer;
use clap::Args;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ListParams};
use litellm_impl::names;

use crate::run::{BindAddress, OperatorArgs, RunError, ServedGatewayKind, operator};

/// The sample manifests the demo applies, in order (from `examples/manifests/` unless
/// the name says otherwise).
const SAMPLES: &[(&str, &str)] = &[
    (
        "litellm-class-default.yaml",
        include_str!("../../../../examples/manifests/litellm-class-default.yaml"),
    ),
    (
        "basic-gateway.yaml",
        include_str!("../../../../examples/manifests/basic-gateway.yaml"),
    ),
    (
        "multi-provider-gateway.yaml",
        include_str!("../../../../examples/manifests/multi-provider-gateway.yaml"),
    ),
    (
        "guarded-gateway.yaml",
        include_str!("../../../../examples/manifests/guarded-gateway.yaml"),
    ),
    (
        "config-patched-gateway.yaml",
        include_str!("../../../../examples/manifests/config-patched-gateway.yaml"),
    ),
    (
        "deploy/toolgatewayclass.yaml",
        include_str!("../../../../deploy/toolgatewayclass.yaml"),
    ),
    (
        "demo-tool-gateway.yaml",
        include_str!("../../../../examples/manifests/demo-tool-gateway.yaml"),
    ),
];

/// Namespaces of sample gateways that get an `api-key-secrets` with a placeholder key.
const PLACEHOLDER_SECRET_NAMESPACES: &[&str] =
    &["ai-gateway", "ai-gateway-guarded", "ai-gateway-patched"];

/// Exit codes of `demo`, shown in its `--help`.
pub const DEMO_EXIT_CODES: &str = "\
Exit codes:
  0  stopped with Ctrl-C or SIGTERM, or (with --exit-when-ready) every sample gateway and route
     became Ready (and, with --with-proxy, the agent's chat completion and MCP tool call through
     LiteLLM succeeded)
  1  --exit-when-ready: not every sample gateway and route was Ready before --timeout, or
     (--with-proxy) the agent's chat completion or MCP calls through LiteLLM failed or got no
     answer in time (the reason is printed)
  2  invalid invocation
  3  the demo could not start (port taken, kubeconfig not writable)
  4  --with-proxy: LiteLLM could not be installed, or a LiteLLM pod or the MCP server could not
     start";

/// The help of `demo --venv`, naming the default venv of the pinned LiteLLM.
pub static VENV_HELP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "The venv to install LiteLLM into for --with-proxy (default: `litellm` on PATH at the pinned version, else the venv aigateway-rs/litellm-{} in $XDG_CACHE_HOME, or in ~/.cache without XDG_CACHE_HOME)",
        litellm_impl::settings::LITELLM_VERSION
    )
});

/// Arguments of `demo`.
#[derive(Debug, Args)]
#[command(
    long_about = "Runs the LiteLLM operator against an embedded in-memory Kubernetes API server with \
sample gateways, prints the gateways as they become Ready and one rendered LiteLLM config, and keeps \
running until Ctrl-C so you can explore it with kubectl and apply your own gateways.",
    after_help = DEMO_EXIT_CODES
)]
pub struct DemoArgs {
    /// Port of the API server (HTTPS) on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Where to write the kubeconfig for kubectl, readable by you only (default: a file
    /// in a new private directory under the temp directory, removed on exit). The API
    /// server answers only requests with the token it holds.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Exit 0 once every sample gateway and route is Ready (with --with-proxy: and the
    /// agent's chat completion and MCP tool call through LiteLLM succeeded); non-zero
    /// with the reason otherwise.
    #[arg(long)]
    pub exit_when_ready: bool,
    /// How long --exit-when-ready waits, in seconds (default 60, with --with-proxy 300;
    /// installing LiteLLM does not count).
    #[arg(long)]
    pub timeout: Option<u64>,
    /// How long the simulated Deployments take to become available, in milliseconds.
    #[arg(long, default_value_t = 1500)]
    pub rollout_ms: u64,
    /// Also run the real LiteLLM proxy (pinned version) for the AiGateway the demo's
    /// agent resolves to, with a built-in fake OpenAI-compatible provider behind it, and
    /// for the sample ToolGateway, with an MCP server behind its routes; send a chat
    /// completion and MCP tools/list and tools/call through them as an agent would.
    #[arg(long)]
    pub with_proxy: bool,
    /// The text the agent asks the MCP server's echo tool to repeat (--with-proxy).
    #[arg(long, requires = "with_proxy", default_value = with_proxy::DEFAULT_TOOL_TEXT)]
    pub tool_text: String,
    /// The venv to install LiteLLM into for --with-proxy ([`VENV_HELP`]).
    #[arg(long, requires = "with_proxy", help = VENV_HELP.as_str())]
    pub venv: Option<PathBuf>,
}

impl DemoArgs {
    /// The effective --timeout, in seconds.
    pub fn timeout_seconds(&self) -> u64 {
        self.timeout
            .unwrap_or(if self.with_proxy { 300 } else { 60 })
    }
}

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The API server could not start.
    #[error("could not start the in-memory API server: {0}")]
    Server(#[from] aigateway_testkit::Error),
    /// The kubeconfig could not be written.
    #[error("could not write the kubeconfig: {0}")]
    Kubeconfig(String),
    /// The operator failed.
    #[error(transparent)]
    Operator(#[from] RunError),
    /// Not every gateway became Ready in time.
    #[error("not every sample gateway and route was Ready after {seconds} s:\n{details}")]
    Timeout {
        /// The timeout.
        seconds: u64,
        /// Which gateways, and what their conditions say.
        details: String,
    },
    /// The gateways were Ready but the agent's requests through LiteLLM did not all
    /// succeed in time.
    #[error("the agent's requests through LiteLLM did not succeed within {seconds} s: {reason}")]
    NoAnswer {
        /// The timeout.
        seconds: u64,
        /// The last failure, or what was still missing.
        reason: String,
    },
    /// The traffic task (`--with-proxy`) ended on its own.
    #[error("the --with-proxy traffic task ended unexpectedly; its last lines above say why")]
    TrafficEnded,
    /// The traffic part (`--with-proxy`) failed.
    #[error(transparent)]
    Traffic(#[from] with_proxy::TrafficError),
}

impl DemoError {
    /// The exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            DemoError::Timeout { .. } | DemoError::NoAnswer { .. } => 1,
            DemoError::Traffic(
                with_proxy::TrafficError::Request { .. }
                | with_proxy::TrafficError::ToolCall { .. },
            ) => 1,
            DemoError::Traffic(_) => 4,
            _ => 3,
        }
    }
}

/// One row of the AiGateway table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    name: String,
    class: String,
    models: String,
    accepted: String,
    programmed: String,
    ready: String,
    url: String,
}

fn condition_status(conditions: &[Condition], type_: &str) -> String {
    find_condition(conditions, type_).map_or_else(|| "-".to_owned(), |c| c.status.clone())
}

fn status_of(gateway: &AiGateway, type_: &str) -> String {
    let conditions = gateway
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    condition_status(conditions, type_)
}

fn qualified(metadata: &kube::api::ObjectMeta) -> String {
    format!(
        "{}/{}",
        metadata.namespace.as_deref().unwrap_or_default(),
        metadata.name.as_deref().unwrap_or_default()
    )
}

fn row(gateway: &AiGateway) -> Row {
    Row {
        name: qualified(&gateway.metadata),
        class: gateway.spec.class_name().unwrap_or("(default)").to_owned(),
        models: gateway
            .spec
            .ai_models
            .iter()
            .map(|m| format!("{}/{}", m.provider, m.name))
            .collect::<Vec<_>>()
            .join(","),
        accepted: status_of(gateway, "Accepted"),
        programmed: status_of(gateway, "Programmed"),
        ready: status_of(gateway, "Ready"),
        url: gateway
            .status
            .as_ref()
            .and_then(|s| s.url.clone())
            .unwrap_or_else(|| "-".into()),
    }
}

/// The ToolGateway table's row of `gateway`: name, class, Accepted, Programmed, Ready, URL.
fn tool_gateway_row(gateway: &ToolGateway) -> Vec<String> {
    let status = gateway.status.clone().unwrap_or_default();
    vec![
        qualified(&gateway.metadata),
        gateway.spec.class_name().unwrap_or("(default)").to_owned(),
        condition_status(&status.conditions, "Accepted"),
        condition_status(&status.conditions, "Programmed"),
        condition_status(&status.conditions, "Ready"),
        status.url.unwrap_or_else(|| "-".into()),
    ]
}

/// The ToolRoute table's row of `route`: name, gateway, Ready, URL.
fn tool_route_row(route: &ToolRoute) -> Vec<String> {
    let status = route.status.clone().unwrap_or_default();
    vec![
        qualified(&route.metadata),
        route
            .gateway()
            .map_or_else(|| "-".to_owned(), |g| format!("{}/{}", g.namespace, g.name)),
        condition_status(&status.conditions, "Ready"),
        status.url.unwrap_or_else(|| "-".into()),
    ]
}

/// `rows` under `header`, in columns; the last column is not padded.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let all: Vec<&Vec<String>> = std::iter::once(&header).chain(rows).collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            all.iter()
                .map(|r| r.get(i).map_or(0, String::len))
                .max()
                .unwrap_or(0)
        })
        .collect();
    all.iter()
        .map(|row| {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:w$}  ", w = widths[i]));
                }
            }
            line.push('\n');
            line
        })
        .collect()
}

fn gateway_table(rows: &[Row]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.class.clone(),
                r.models.clone(),
                r.accepted.clone(),
                r.programmed.clone(),
                r.ready.clone(),
                r.url.clone(),
            ]
        })
        .collect();
    table(
        &[
            "GATEWAY",
            "CLASS",
            "MODELS",
            "ACCEPTED",
            "PROGRAMMED",
            "READY",
            "URL",
        ],
        &rows,
    )
}

/// The sample objects the demo installed, each as `namespace/name`.
#[derive(Debug, Default)]
struct Samples {
    ai_gateways: Vec<String>,
    tool_gateways: Vec<String>,
    tool_routes: Vec<String>,
}

fn placeholder_secret(namespace: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {}\n  namespace: {namespace}\nstringData:\n  OPENAI_API_KEY: demo-placeholder-not-a-real-key\n",
        names::API_KEY_SECRET
    )
}

/// Installs CRDs and samples; returns the sample gateways and routes.
/// The LiteLLM config rendered for gateway `namespace/gateway`, with its ConfigMap's
/// name, once the operator has written it.
async fn rendered_config(
    server: &ApiServer,
    namespace: &str,
    gateway: &str,
) -> Option<(String, String)> {
    let name = names::config_map_name(gateway);
    let config_map = Api::<ConfigMap>::namespaced(server.client(), namespace)
        .get(&name)
        .await
        .ok()?;
    let config = config_map
        .data
        .unwrap_or_default()
        .remove(names::CONFIG_KEY)
        .unwrap_or_default();
    Some((name, config))
}

async fn install(server: &ApiServer) -> Result<Samples, DemoError> {
    for crd in crate::crds::all() {
        server.install_crd(crd).await?;
    }
    let mut samples = Samples::default();
    for (file, text) in SAMPLES {
        for object in server.apply_manifests(text)? {
            let list = match object["kind"].as_str() {
                Some("AiGateway") => &mut samples.ai_gateways,
                Some("ToolGateway") => &mut samples.tool_gateways,
                Some("ToolRoute") => &mut samples.tool_routes,
                _ => continue,
            };
            list.push(format!(
                "{}/{}",
                object["metadata"]["namespace"].as_str().unwrap_or_default(),
                object["metadata"]["name"].as_str().unwrap_or_default()
            ));
        }
        tracing::debug!(file, "applied sample");
    }
    for namespace in PLACEHOLDER_SECRET_NAMESPACES {
        server.apply_manifests(&placeholder_secret(namespace))?;
    }
    Ok(samples)
}

/// Runs the demo; `out` receives the human-readable progress.
pub async fn run(args: &DemoArgs, out: &mut (dyn Write + Send)) -> Result<(), DemoError> {
    // Ctrl-C in a terminal, SIGTERM from process managers and `timeout`; also during the
    // LiteLLM install (dropping the install kills pip).
    let mut stop_signal = std::pin::pin!(aigateway_runtime::operator::termination_signal());
    let litellm = if args.with_proxy {
        tokio::select! {
            litellm = with_proxy::prepare_litellm(args.venv.clone(), out) => Some(litellm?),
            () = &mut stop_signal => return Ok(()),
        }
    } else {
        None
    };
    let server = ApiServer::builder()
        .deployment_ready_delay(Duration::from_millis(args.rollout_ms))
        .build();
    // Loopback only, and only for whoever holds the token: other users of this machine
    // can reach a loopback port too.
    let http = server
        .serve_https_with_token(SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, args.port)))
        .await?;
    // A directory of our own (mode 0700, unpredictable name), not a guessable path in
    // the shared temp directory that someone else could create first.
    let (kubeconfig, private_dir) = match &args.kubeconfig {
        Some(path) => (path.clone(), None),
        None => {
            let dir = tempfile::Builder::new()
                .prefix("litellm-impl-demo-")
                .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .tempdir()
                .map_err(|e| DemoError::Kubeconfig(e.to_string()))?;
            (dir.path().join("kubeconfig"), Some(dir))
        }
    };
    http.write_kubeconfig(&kubeconfig)
        .map_err(|e| DemoError::Kubeconfig(e.to_string()))?;
    let samples = install(&server).await?;
    let traffic = match litellm {
        Some(litellm) => {
            let provider = with_proxy::start_provider().await?;
            let target = with_proxy::AgentTarget::prepare(&server.client(), &provider, out).await?;
            let tools =
                with_proxy::ToolTarget::prepare(&server.client(), &litellm, &args.tool_text, out)
                    .await?;
            Some(
                with_proxy::Traffic::spawn(server.client(), litellm, target, provider, tools)
                    .await?,
            )
        }
        None => None,
    };

    let operator_args = OperatorArgs {
        namespace: None,
        // Loopback, plain: the demo's API server has no TokenReview to check scrapers.
        health_probe_bind_address: BindAddress::At(SocketAddr::from(([127, 0, 0, 1], 0))),
        metrics_bind_address: BindAddress::At(SocketAddr::from(([127, 0, 0, 1], 0))),
        metrics_secure: false,
        metrics_cert_path: None,
        metrics_cert_name: "tls.crt".into(),
        metrics_cert_key: "tls.key".into(),
        render: crate::flags::RenderFlags::default(),
        concurrency: 16,
        log_format: aigateway_runtime::logging::LogFormat::Text,
        gateway_kinds: vec![ServedGatewayKind::AiGateway, ServedGatewayKind::ToolGateway],
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let operator = operator(server.client(), &operator_args).shutdown_on(async move {
        let _ = stopped.await;
    });
    let running = operator
        .start()
        .await
        .map_err(|error| DemoError::Operator(error.into()))?;

    let _ = writeln!(out, "In-memory Kubernetes API server: {}", http.url());
    let _ = writeln!(
        out,
        "Explore it with kubectl:\n  export KUBECONFIG={}\n  kubectl get aigatewayclasses,aigateways -A\n  kubectl get toolgatewayclasses,toolgateways,toolroutes -A\n",
        kubeconfig.display()
    );
    if traffic.is_none() {
        let _ = writeln!(
            out,
            "To see requests served by the real LiteLLM proxy, run the demo with --with-proxy:\n  cargo run --release -p litellm-impl-cli -- demo --with-proxy\n"
        );
    } else {
        let _ = writeln!(
            out,
            "Rotate the gateway's key (or `kubectl -n ai-gateway edit secret api-key-secrets`) and watch LiteLLM roll and the provider see the new key:\n  kubectl -n ai-gateway patch secret api-key-secrets --type=merge -p '{{\"stringData\":{{\"OPENAI_API_KEY\":\"sk-my-new-demo-key\"}}}}'\n"
        );
    }

    let gateways: Api<AiGateway> = Api::all(server.client());
    let tool_gateways: Api<ToolGateway> = Api::all(server.client());
    let tool_routes: Api<ToolRoute> = Api::all(server.client());
    let started = Instant::now();
    let mut last = String::new();
    let mut printed_config = false;
    let mut printed_tool_config = false;
    if let Some(addr) = running.metrics_addr() {
        let _ = writeln!(out, "Operator metrics: http://{addr}/metrics\n");
    }
    let mut traffic = traffic;
    let mut answered = false;
    let mut tools_answered = false;
    let mut last_failure: Option<String> = None;
    let mut waiting: Option<String> = None;
    let timeout = args.timeout_seconds();
    let result = loop {
        let list = gateways
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        let mut rows: Vec<Row> = list.iter().map(row).collect();
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        let tool_list = tool_gateways
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        let mut tool_rows: Vec<Vec<String>> = tool_list.iter().map(tool_gateway_row).collect();
        tool_rows.sort();
        let mut route_rows: Vec<Vec<String>> = tool_routes
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
            .iter()
            .map(tool_route_row)
            .collect();
        route_rows.sort();
        let tables = format!(
            "{}\n{}\n{}",
            gateway_table(&rows),
            table(
                &[
                    "TOOLGATEWAY",
                    "CLASS",
                    "ACCEPTED",
                    "PROGRAMMED",
                    "READY",
                    "URL"
                ],
                &tool_rows
            ),
            table(&["TOOLROUTE", "TOOLGATEWAY", "READY", "URL"], &route_rows)
        );
        if tables != last {
            let _ = writeln!(out, "[{:>5.1}s]\n{tables}", started.elapsed().as_secs_f64());
            last = tables;
        }
        if !printed_config
            && let Some(gateway) = list.iter().find(|g| status_of(g, "Programmed") == "True")
        {
            let namespace = gateway.metadata.namespace.as_deref().unwrap_or_default();
            let gateway = gateway.metadata.name.as_deref().unwrap_or_default();
            if let Some((name, config)) = rendered_config(&server, namespace, gateway).await {
                let _ = writeln!(
                    out,
                    "Rendered LiteLLM config of {namespace}/{gateway} (ConfigMap {name}):\n{config}"
                );
                printed_config = true;
            }
        }
        if !printed_tool_config
            && let Some(gateway) = tool_list.iter().find(|g| {
                let status = g.status.clone().unwrap_or_default();
                condition_status(&status.conditions, "Programmed") == "True"
            })
        {
            let namespace = gateway.metadata.namespace.as_deref().unwrap_or_default();
            let gateway = gateway.metadata.name.as_deref().unwrap_or_default();
            if let Some((name, config)) = rendered_config(&server, namespace, gateway).await {
                let _ = writeln!(
                    out,
                    "Rendered LiteLLM config of ToolGateway {namespace}/{gateway} (ConfigMap {name}), one mcp_servers entry per ToolRoute:\n{config}"
                );
                printed_tool_config = true;
            }
        }
        // Every sample gateway and route, and the cells that tell whether it is Ready.
        let mut states: BTreeMap<String, String> = BTreeMap::new();
        for r in &rows {
            states.insert(
                format!("AiGateway {}", r.name),
                format!(
                    "Accepted={} Programmed={} Ready={}",
                    r.accepted, r.programmed, r.ready
                ),
            );
        }
        for r in &tool_rows {
            states.insert(
                format!("ToolGateway {}", r[0]),
                format!("Accepted={} Programmed={} Ready={}", r[2], r[3], r[4]),
            );
        }
        for r in &route_rows {
            states.insert(
                format!("ToolRoute {}", r[0]),
                format!("Ready={} url={}", r[2], r[3]),
            );
        }
        let expected: Vec<String> = samples
            .ai_gateways
            .iter()
            .map(|s| format!("AiGateway {s}"))
            .chain(
                samples
                    .tool_gateways
                    .iter()
                    .map(|s| format!("ToolGateway {s}")),
            )
            .chain(samples.tool_routes.iter().map(|s| format!("ToolRoute {s}")))
            .collect();
        let all_ready = expected.iter().all(|s| {
            states
                .get(s)
                .is_some_and(|state| state.contains("Ready=True") && !state.ends_with("url=-"))
        });
        let traffic_done = traffic.is_none() || (answered && tools_answered);
        if args.exit_when_ready && all_ready && traffic_done {
            let _ = writeln!(
                out,
                "Every sample gateway is Ready after {:.1} s{}.",
                started.elapsed().as_secs_f64(),
                if answered {
                    ", and the agent's chat completion and MCP tool call through LiteLLM succeeded"
                } else {
                    ""
                }
            );
            break Ok(());
        }
        let timed_out = started.elapsed() > Duration::from_secs(timeout);
        if args.exit_when_ready && timed_out && all_ready {
            let missing = match (answered, tools_answered) {
                (false, false) => "neither the chat completion nor the MCP tool call succeeded",
                (false, true) => "the chat completion did not succeed",
                _ => "the MCP tool call did not succeed",
            };
            let why = last_failure
                .clone()
                .or_else(|| waiting.clone())
                .unwrap_or_else(|| "a LiteLLM pod was not live yet".to_owned());
            break Err(DemoError::NoAnswer {
                seconds: timeout,
                reason: format!("{missing}; last: {why}"),
            });
        }
        if args.exit_when_ready && timed_out {
            let details = expected
                .iter()
                .filter(|s| {
                    !states
                        .get(*s)
                        .is_some_and(|state| state.contains("Ready=True"))
                })
                .map(|s| match states.get(s) {
                    Some(state) => format!("  {s}: {state}"),
                    None => format!("  {s}: not found"),
                })
                .collect::<Vec<_>>()
                .join("\n");
            break Err(DemoError::Timeout {
                seconds: timeout,
                details,
            });
        }
        let traffic_event = async {
            match traffic.as_mut() {
                Some(traffic) => traffic.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = &mut stop_signal => break Ok(()),
            event = traffic_event => match event {
                Some(with_proxy::TrafficEvent::Line(line)) => {
                    let _ = writeln!(out, "{line}");
                }
                Some(with_proxy::TrafficEvent::Answered) => {
                    answered = true;
                    last_failure = None;
                }
                Some(with_proxy::TrafficEvent::ToolsAnswered) => {
                    tools_answered = true;
                    last_failure = None;
                }
                Some(with_proxy::TrafficEvent::Waiting(what)) => {
                    if waiting.as_deref() != Some(what.as_str()) {
                        let _ = writeln!(out, "Waiting: {what}");
                        waiting = Some(what);
                    }
                }
                Some(with_proxy::TrafficEvent::Failed(error)) => {
                    // Pods that cannot start and failed requests end --exit-when-ready at
                    // once; an interactive demo reports them and waits for the next roll.
                    if args.exit_when_ready {
                        break Err(error.into());
                    }
                    let _ = writeln!(out, "error: {error}");
                    last_failure = Some(error.to_string());
                }
                // The task ends only when told to, or when it panicked.
                None => break Err(DemoError::TrafficEnded),
            },
        }
    };
    if let Some(traffic) = traffic {
        traffic.shutdown().await;
    }
    let _ = stop.send(());
    let stopped = tokio::time::timeout(Duration::from_secs(10), running.wait()).await;
    if let Ok(Err(error)) = stopped {
        return Err(DemoError::Operator(RunError::Operator(error)));
    }
    http.shutdown().await;
    drop(private_dir);
    result
}
