//! `litellm-impl demo`: the whole pattern on a laptop, no cluster needed.
//!
//! Starts the in-memory API server (aigateway-testkit) on loopback, installs the CRDs,
//! the default `litellm` class, sample gateways from `examples/manifests/` and
//! `api-key-secrets` Secrets with placeholder keys, runs the same operator as `run`, and
//! prints the gateways as they change.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aigateway_api::AiGateway;
use aigateway_api::conditions::find_condition;
use aigateway_testkit::ApiServer;
use clap::Args;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};

use crate::cli::run::{OperatorArgs, RunError, operator};
use crate::names;

/// The sample manifests the demo applies, in order.
const SAMPLES: &[(&str, &str)] = &[
    (
        "litellm-class-default.yaml",
        include_str!("../../../examples/manifests/litellm-class-default.yaml"),
    ),
    (
        "basic-gateway.yaml",
        include_str!("../../../examples/manifests/basic-gateway.yaml"),
    ),
    (
        "multi-provider-gateway.yaml",
        include_str!("../../../examples/manifests/multi-provider-gateway.yaml"),
    ),
    (
        "guarded-gateway.yaml",
        include_str!("../../../examples/manifests/guarded-gateway.yaml"),
    ),
    (
        "config-patched-gateway.yaml",
        include_str!("../../../examples/manifests/config-patched-gateway.yaml"),
    ),
];

/// Namespaces of sample gateways that get an `api-key-secrets` with a placeholder key.
const PLACEHOLDER_SECRET_NAMESPACES: &[&str] =
    &["ai-gateway", "ai-gateway-guarded", "ai-gateway-patched"];

/// Exit codes of `demo`, shown in its `--help`.
pub const DEMO_EXIT_CODES: &str = "\
Exit codes:
  0  stopped with Ctrl-C, or (with --exit-when-ready) every sample gateway became Ready
  1  --exit-when-ready: not every sample gateway was Ready before --timeout (the reason is printed)
  2  invalid invocation
  3  the demo could not start (port taken, kubeconfig not writable)";

/// Arguments of `demo`.
#[derive(Debug, Args)]
#[command(
    long_about = "Runs the LiteLLM operator against an embedded in-memory Kubernetes API server with \
sample gateways, prints the gateways as they become Ready and one rendered LiteLLM config, and keeps \
running until Ctrl-C so you can explore it with kubectl and apply your own gateways.",
    after_help = DEMO_EXIT_CODES
)]
pub struct DemoArgs {
    /// Port of the API server on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Where to write the kubeconfig for kubectl (default: a file in the temp directory).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Exit 0 once every sample gateway is Ready (non-zero on --timeout).
    #[arg(long)]
    pub exit_when_ready: bool,
    /// How long --exit-when-ready waits, in seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// How long the simulated Deployments take to become available, in milliseconds.
    #[arg(long, default_value_t = 1500)]
    pub rollout_ms: u64,
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
    #[error("not every sample gateway was Ready after {seconds} s:\n{details}")]
    Timeout {
        /// The timeout.
        seconds: u64,
        /// Which gateways, and what their conditions say.
        details: String,
    },
}

impl DemoError {
    /// The exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            DemoError::Timeout { .. } => 1,
            _ => 3,
        }
    }
}

/// One row of the gateway table.
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

fn status_of(gateway: &AiGateway, type_: &str) -> String {
    let conditions = gateway
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    find_condition(conditions, type_).map_or_else(|| "-".to_owned(), |c| c.status.clone())
}

fn row(gateway: &AiGateway) -> Row {
    Row {
        name: format!(
            "{}/{}",
            gateway.metadata.namespace.as_deref().unwrap_or_default(),
            gateway.metadata.name.as_deref().unwrap_or_default()
        ),
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

fn table(rows: &[Row]) -> String {
    let header = Row {
        name: "GATEWAY".into(),
        class: "CLASS".into(),
        models: "MODELS".into(),
        accepted: "ACCEPTED".into(),
        programmed: "PROGRAMMED".into(),
        ready: "READY".into(),
        url: "URL".into(),
    };
    let all: Vec<&Row> = std::iter::once(&header).chain(rows).collect();
    let width = |f: fn(&Row) -> &str| all.iter().map(|r| f(r).len()).max().unwrap_or(0);
    let widths = [
        width(|r| &r.name),
        width(|r| &r.class),
        width(|r| &r.models),
        width(|r| &r.accepted),
        width(|r| &r.programmed),
        width(|r| &r.ready),
    ];
    all.iter()
        .map(|r| {
            format!(
                "{:w0$}  {:w1$}  {:w2$}  {:w3$}  {:w4$}  {:w5$}  {}\n",
                r.name,
                r.class,
                r.models,
                r.accepted,
                r.programmed,
                r.ready,
                r.url,
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3],
                w4 = widths[4],
                w5 = widths[5]
            )
        })
        .collect()
}

fn placeholder_secret(namespace: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {}\n  namespace: {namespace}\nstringData:\n  OPENAI_API_KEY: demo-placeholder-not-a-real-key\n",
        names::API_KEY_SECRET
    )
}

/// Installs CRDs and samples; returns the names (`namespace/name`) of the sample gateways.
async fn install(server: &ApiServer) -> Result<Vec<String>, DemoError> {
    for crd in aigateway_api::crds::all() {
        server.install_crd(crd).await?;
    }
    let mut gateways = Vec::new();
    for (file, text) in SAMPLES {
        for object in server.apply_manifests(text)? {
            if object["kind"] == "AiGateway" {
                gateways.push(format!(
                    "{}/{}",
                    object["metadata"]["namespace"].as_str().unwrap_or_default(),
                    object["metadata"]["name"].as_str().unwrap_or_default()
                ));
            }
        }
        tracing::debug!(file, "applied sample");
    }
    for namespace in PLACEHOLDER_SECRET_NAMESPACES {
        server.apply_manifests(&placeholder_secret(namespace))?;
    }
    Ok(gateways)
}

/// Runs the demo; `out` receives the human-readable progress.
pub async fn run(args: &DemoArgs, out: &mut (dyn Write + Send)) -> Result<(), DemoError> {
    let server = ApiServer::builder()
        .deployment_ready_delay(Duration::from_millis(args.rollout_ms))
        .build();
    let http = server
        .serve_http(SocketAddr::from(([127, 0, 0, 1], args.port)))
        .await?;
    let kubeconfig = args.kubeconfig.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "litellm-impl-demo-{}.kubeconfig",
            std::process::id()
        ))
    });
    http.write_kubeconfig(&kubeconfig)
        .map_err(|e| DemoError::Kubeconfig(e.to_string()))?;
    let samples = install(&server).await?;

    let operator_args = OperatorArgs {
        namespace: None,
        admin_address: SocketAddr::from(([127, 0, 0, 1], 0)),
        render: crate::RenderSettings::default(),
        concurrency: 16,
        log_format: aigateway_runtime::LogFormat::Text,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let operator = operator(server.client(), &operator_args).shutdown_on(async move {
        let _ = stopped.await;
    });
    let admin = operator.admin_address();
    let task = tokio::spawn(operator.run());

    let _ = writeln!(out, "In-memory Kubernetes API server: {}", http.url());
    let _ = writeln!(
        out,
        "Explore it with kubectl:\n  export KUBECONFIG={}\n  kubectl get aigatewayclasses,aigateways -A\n",
        kubeconfig.display()
    );

    let gateways: Api<AiGateway> = Api::all(server.client());
    let started = Instant::now();
    let mut last: Vec<Row> = Vec::new();
    let mut printed_config = false;
    let mut printed_admin = false;
    // Ctrl-C in a terminal, SIGTERM from process managers and `timeout`.
    let mut stop_signal = std::pin::pin!(aigateway_runtime::operator::termination_signal());
    let result = loop {
        if !printed_admin && let Some(addr) = *admin.lock().expect("admin slot") {
            let _ = writeln!(out, "Operator metrics: http://{addr}/metrics\n");
            printed_admin = true;
        }
        let list = gateways
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        let mut rows: Vec<Row> = list.iter().map(row).collect();
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        if rows != last {
            let _ = writeln!(
                out,
                "[{:>5.1}s]\n{}",
                started.elapsed().as_secs_f64(),
                table(&rows)
            );
            last = rows.clone();
        }
        if !printed_config
            && let Some(gateway) = list.iter().find(|g| status_of(g, "Programmed") == "True")
        {
            let namespace = gateway.metadata.namespace.clone().unwrap_or_default();
            let name = names::config_map_name(gateway.metadata.name.as_deref().unwrap_or_default());
            if let Ok(config_map) = Api::<ConfigMap>::namespaced(server.client(), &namespace)
                .get(&name)
                .await
            {
                let config = config_map
                    .data
                    .unwrap_or_default()
                    .remove(names::CONFIG_KEY)
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "Rendered LiteLLM config of {namespace}/{} (ConfigMap {name}):\n{config}",
                    gateway.metadata.name.as_deref().unwrap_or_default()
                );
                printed_config = true;
            }
        }
        let by_name: BTreeMap<String, &Row> = rows.iter().map(|r| (r.name.clone(), r)).collect();
        let all_ready = samples
            .iter()
            .all(|s| by_name.get(s).is_some_and(|r| r.ready == "True"));
        if args.exit_when_ready && all_ready {
            let _ = writeln!(
                out,
                "Every sample gateway is Ready after {:.1} s.",
                started.elapsed().as_secs_f64()
            );
            break Ok(());
        }
        if args.exit_when_ready && started.elapsed() > Duration::from_secs(args.timeout) {
            let details = samples
                .iter()
                .map(|s| match by_name.get(s) {
                    Some(r) => format!(
                        "  {s}: Accepted={} Programmed={} Ready={}",
                        r.accepted, r.programmed, r.ready
                    ),
                    None => format!("  {s}: not found"),
                })
                .collect::<Vec<_>>()
                .join("\n");
            break Err(DemoError::Timeout {
                seconds: args.timeout,
                details,
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = &mut stop_signal => break Ok(()),
        }
    };
    let _ = stop.send(());
    let stopped = tokio::time::timeout(Duration::from_secs(10), task).await;
    if let Ok(Ok(Err(error))) = stopped {
        return Err(DemoError::Operator(RunError::Operator(error)));
    }
    http.shutdown().await;
    if args.kubeconfig.is_none() {
        let _ = std::fs::remove_file(&kubeconfig);
    }
    result
}
