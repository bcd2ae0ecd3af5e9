//! `litellm-impl run`: the operator against a cluster.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use aigateway_runtime::{LeaderElection, LogFormat, Operator};
use clap::{ArgAction, Args};

use crate::settings::DEFAULT_IMAGE;
use crate::{LiteLlmGateway, RenderSettings};

/// The namespace the install bundle runs the operator in (and keeps its Lease in).
pub const DEFAULT_NAMESPACE: &str = "ai-gateway-litellm-system";
/// The Lease the replicas compete for.
pub const DEFAULT_LEASE_NAME: &str = "litellm-impl";

/// Exit codes of `run`, shown in its `--help`.
pub const RUN_EXIT_CODES: &str = "\
Exit codes:
  0  stopped by SIGTERM or Ctrl-C after finishing in-flight work (and releasing the lease)
  2  invalid invocation
  3  the operator could not start or failed: no usable kubeconfig or in-cluster config,
     the admin address is taken, or leader election failed";

/// Settings of the operator shared by `run` and `demo`.
#[derive(Debug, Clone, Args)]
pub struct OperatorArgs {
    /// Watch gateways, children and related objects in this namespace only (default: all).
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub namespace: Option<String>,
    /// Where to serve /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:8080", env = "ADMIN_ADDRESS")]
    pub admin_address: SocketAddr,
    /// Default LiteLLM image (see --allow-gateway-image for per-gateway images).
    #[arg(long, default_value = DEFAULT_IMAGE, env = "LITELLM_IMAGE")]
    pub image: String,
    /// Let gateways choose their LiteLLM image with the
    /// `ai-gateway-litellm.agentic-layer.ai/image` annotation (off: whoever may create an
    /// AiGateway could run any image with the namespace's Secrets).
    #[arg(long)]
    pub allow_gateway_image: bool,
    /// Gateways reconciled at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: u16,
    /// Log lines as `text` or `json`.
    #[arg(long, default_value = "text", value_parser = parse_log_format)]
    pub log_format: LogFormat,
}

fn parse_log_format(value: &str) -> Result<LogFormat, String> {
    value.parse()
}

/// Arguments of `run`.
#[derive(Debug, Args)]
#[command(
    long_about = "Runs the LiteLLM class operator: claims AiGateways of classes whose spec.controller is \
aigateway.agentic-layer.ai/ai-gateway-litellm-controller and keeps their ConfigMap, Deployment and \
Service in place. Uses --kubeconfig, then $KUBECONFIG, then ~/.kube/config, then the in-cluster config.",
    after_help = RUN_EXIT_CODES
)]
pub struct RunArgs {
    /// Kubeconfig to use instead of the default lookup.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Operator settings.
    #[command(flatten)]
    pub operator: OperatorArgs,
    /// Compete for a Lease so that only one replica writes (`--leader-elect=false` to
    /// turn off).
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    pub leader_elect: bool,
    /// Namespace of the Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = DEFAULT_NAMESPACE)]
    pub lease_namespace: String,
    /// Name of the Lease.
    #[arg(long, default_value = DEFAULT_LEASE_NAME)]
    pub lease_name: String,
}

/// Why the operator could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The kubeconfig file could not be read or used.
    #[error("could not use kubeconfig {path}: {message}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// No configuration was found.
    #[error(
        "no Kubernetes configuration: pass --kubeconfig, set KUBECONFIG, or run in a cluster ({0})"
    )]
    NoConfig(String),
    /// The operator stopped with an error.
    #[error(transparent)]
    Operator(#[from] aigateway_runtime::OperatorError),
}

/// A client from `path`, or from the default lookup.
pub async fn client(path: Option<&Path>) -> Result<kube::Client, RunError> {
    let config = match path {
        Some(path) => {
            let error = |message: String| RunError::Kubeconfig {
                path: path.to_owned(),
                message,
            };
            let kubeconfig =
                kube::config::Kubeconfig::read_from(path).map_err(|e| error(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(
                kubeconfig,
                &kube::config::KubeConfigOptions::default(),
            )
            .await
            .map_err(|e| error(e.to_string()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| RunError::NoConfig(e.to_string()))?,
    };
    kube::Client::try_from(config).map_err(|e| RunError::NoConfig(e.to_string()))
}

/// The operator `run` and `demo` both run.
pub fn operator(client: kube::Client, args: &OperatorArgs) -> Operator {
    let settings = RenderSettings {
        image: args.image.clone(),
        ..RenderSettings::default()
    };
    let mut operator = Operator::new(client)
        .gateway(LiteLlmGateway::new(settings))
        .admin(args.admin_address)
        .concurrency(args.concurrency);
    if let Some(namespace) = &args.namespace {
        operator = operator.namespace(namespace.clone());
    }
    operator
}

/// Runs the operator until SIGTERM or Ctrl-C.
pub async fn run(args: &RunArgs) -> Result<(), RunError> {
    aigateway_runtime::logging::init(args.operator.log_format);
    let client = client(args.kubeconfig.as_deref()).await?;
    let mut operator = operator(client, &args.operator);
    if args.leader_elect {
        operator =
            operator.leader_election(LeaderElection::new(&args.lease_name, &args.lease_namespace));
    }
    tracing::info!(controller = crate::CONTROLLER_NAME, "starting");
    operator.run().await?;
    tracing::info!("stopped");
    Ok(())
}
