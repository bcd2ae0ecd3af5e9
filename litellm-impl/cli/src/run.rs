//! `litellm-impl run`: the operator against a cluster.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use aigateway_runtime::logging::LogFormat;
use aigateway_runtime::operator::{MetricsServing, ServingCertificate};
use aigateway_runtime::{LeaderElection, Operator, OperatorError};
use clap::Args;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};

use litellm_impl::{LiteLlmGateway, LiteLlmToolGateway};

use crate::flags::RenderFlags;

pub use crate::bundle::{DEFAULT_LEASE_NAME, OPERATOR_NAMESPACE};

/// Where Kubernetes mounts the pod's service-account namespace.
pub const SERVICE_ACCOUNT_NAMESPACE_FILE: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// Exit codes of `run`, shown in its `--help`.
pub const RUN_EXIT_CODES: &str = "\
Exit codes:
  0  stopped by SIGTERM or Ctrl-C after finishing in-flight work (and releasing the lease)
  2  invalid invocation
  3  the operator could not start or failed: no usable kubeconfig or in-cluster config,
     a served kind's CRD is missing or may not be listed, the probe or metrics address is
     taken, the metrics certificate cannot be read, or leader election failed";

/// Settings of the operator shared by `run` and `demo`.
#[derive(Debug, Clone, Args)]
pub struct OperatorArgs {
    /// Watch gateways, children and related objects in this namespace only (default: all).
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub namespace: Option<String>,
    /// Where to serve /healthz and /readyz, over plain HTTP (`:8081` is every IPv4
    /// interface; `0` turns the probes off).
    #[arg(long, default_value = ":8081", env = "HEALTH_PROBE_BIND_ADDRESS", value_parser = parse_bind_address)]
    pub health_probe_bind_address: BindAddress,
    /// Where to serve /metrics (`0` turns it off).
    #[arg(long, default_value = ":8443", env = "METRICS_BIND_ADDRESS", value_parser = parse_bind_address)]
    pub metrics_bind_address: BindAddress,
    /// Serve /metrics over HTTPS, only to requests whose bearer token the API server
    /// authenticates (TokenReview) and authorises for get on the non-resource URL
    /// /metrics (SubjectAccessReview), as controller-runtime does; `false` serves plain
    /// HTTP to anyone who can connect, for local development only.
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_value_t = true,
        default_missing_value = "true",
        value_name = "true|false",
        action = clap::ArgAction::Set
    )]
    pub metrics_secure: bool,
    /// Directory holding the metrics serving certificate and key (a mounted Secret of
    /// type kubernetes.io/tls, re-read when it changes); without it, a self-signed
    /// certificate is made at start.
    #[arg(long)]
    pub metrics_cert_path: Option<PathBuf>,
    /// File name of the certificate in --metrics-cert-path.
    #[arg(long, default_value = "tls.crt")]
    pub metrics_cert_name: String,
    /// File name of the key in --metrics-cert-path.
    #[arg(long, default_value = "tls.key")]
    pub metrics_cert_key: String,
    /// How gateways are rendered (the flags `render` shares).
    #[command(flatten)]
    pub render: RenderFlags,
    /// Gateways reconciled at once (at least 1).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    /// Log lines as `text` or `json`.
    #[arg(long, default_value = "text", value_parser = parse_log_format)]
    pub log_format: LogFormat,
    /// Gateway kinds to serve, comma-separated (`ai-gateway`, `tool-gateway`): both by
    /// default, as the Go operator; one lets another operator keep the other kind
    #[arg(
        long,
        value_enum,
        hide_possible_values = true,
        value_delimiter = ',',
        default_value = "ai-gateway,tool-gateway",
        env = "GATEWAY_KINDS"
    )]
    pub gateway_kinds: Vec<ServedGatewayKind>,
}

/// A gateway kind `run` can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum ServedGatewayKind {
    /// AiGateways of classes whose controller is
    /// `aigateway.agentic-layer.ai/ai-gateway-litellm-controller`.
    AiGateway,
    /// ToolGateways (and their ToolRoutes) of classes whose controller is
    /// `litellm.agentic-layer.ai/tool-gateway-litellm-controller`.
    ToolGateway,
}

impl std::fmt::Display for ServedGatewayKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ServedGatewayKind::AiGateway => "AiGateways",
            ServedGatewayKind::ToolGateway => "ToolGateways",
        })
    }
}

impl ServedGatewayKind {
    /// The resources (plural, API group `runtime.agentic-layer.ai`) serving this kind
    /// needs, each from its own CRD, and whether they are namespaced.
    pub fn resources(self) -> &'static [(&'static str, Scope)] {
        match self {
            ServedGatewayKind::AiGateway => &[
                ("aigateways", Scope::Namespaced),
                ("aigatewayclasses", Scope::Cluster),
            ],
            ServedGatewayKind::ToolGateway => &[
                ("toolgateways", Scope::Namespaced),
                ("toolgatewayclasses", Scope::Cluster),
                ("toolroutes", Scope::Namespaced),
                ("toolservers", Scope::Namespaced),
            ],
        }
    }

    /// The resources of this kind the operator serves (gateways, classes, attached
    /// routes: it writes their status and marks), without those it only reads
    /// (ToolServers, agent-runtime-operator's). Their CRDs are the ones the Helm how-to
    /// upgrades and deletes.
    pub fn served_resources(self) -> Vec<&'static str> {
        self.resources()
            .iter()
            .map(|(plural, _)| *plural)
            .filter(|plural| *plural != "toolservers")
            .collect()
    }
}

/// Where a resource lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// In a namespace (gateways, routes, servers).
    Namespaced,
    /// Cluster-wide (classes).
    Cluster,
}

fn parse_log_format(value: &str) -> Result<LogFormat, String> {
    value.parse()
}

/// Where a server of the operator listens, in the Go operator's notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindAddress {
    /// `0`: not served.
    Off,
    /// `host:port`, or `:port` for every IPv4 interface.
    At(SocketAddr),
}

impl BindAddress {
    /// The address, unless off.
    pub fn addr(self) -> Option<SocketAddr> {
        match self {
            BindAddress::Off => None,
            BindAddress::At(addr) => Some(addr),
        }
    }
}

/// `0`, `:port` or `host:port` (`[::]:port` for IPv6), as controller-runtime's
/// `--metrics-bind-address` and `--health-probe-bind-address` take them.
pub fn parse_bind_address(value: &str) -> Result<BindAddress, String> {
    if value == "0" {
        return Ok(BindAddress::Off);
    }
    let full = match value.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => value.to_owned(),
    };
    full.parse().map(BindAddress::At).map_err(|_| {
        format!("`{value}` is not an address: use host:port, :port (every interface) or 0 (off)")
    })
}

impl OperatorArgs {
    /// How /metrics is served, from `--metrics-secure` and the certificate flags.
    pub fn metrics_serving(&self) -> MetricsServing {
        if !self.metrics_secure {
            return MetricsServing::Plain;
        }
        MetricsServing::Secure(match &self.metrics_cert_path {
            Some(dir) => ServingCertificate::Files {
                certificate: dir.join(&self.metrics_cert_name),
                key: dir.join(&self.metrics_cert_key),
            },
            None => ServingCertificate::SelfSigned,
        })
    }
}

/// Arguments of `run`.
#[derive(Debug, Args)]
#[command(
    long_about = "Runs the LiteLLM class operator: claims AiGateways of classes whose spec.controller is \
aigateway.agentic-layer.ai/ai-gateway-litellm-controller and ToolGateways of classes whose spec.controller is \
litellm.agentic-layer.ai/tool-gateway-litellm-controller (with the ToolRoutes attached to them), and keeps \
each one's ConfigMap, Deployment and Service in place. Uses --kubeconfig, then $KUBECONFIG, then ~/.kube/config, then the in-cluster config. \
Leader election is on when the operator runs in a pod and off otherwise, unless --leader-elect says.",
    after_help = RUN_EXIT_CODES
)]
pub struct RunArgs {
    /// Kubeconfig to use instead of the default lookup.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Operator settings.
    #[command(flatten)]
    pub operator: OperatorArgs,
    /// Compete for a Lease so that only one replica writes (default: on in a pod, off
    /// elsewhere; `--leader-elect` alone means true).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "true|false")]
    pub leader_elect: Option<bool>,
    /// Namespace of the Lease (default: the pod's namespace in a pod, else
    /// ai-gateway-litellm-system).
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Name of the Lease.
    #[arg(long, default_value = DEFAULT_LEASE_NAME)]
    pub lease_name: String,
}

/// Where the operator runs, as far as its defaults care.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// The pod's namespace when running in a pod (`KUBERNETES_SERVICE_HOST` is set and
    /// the service-account namespace file is readable); `None` elsewhere.
    pub pod_namespace: Option<String>,
}

impl Environment {
    /// The environment of this process.
    pub fn detect() -> Self {
        let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some_and(|h| !h.is_empty());
        let pod_namespace = in_cluster
            .then(|| std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE_FILE).ok())
            .flatten()
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty());
        Self { pod_namespace }
    }
}

/// The Lease to compete for, or `None` when leader election is off.
pub fn lease(args: &RunArgs, environment: &Environment) -> Option<(String, String)> {
    let enabled = args
        .leader_elect
        .unwrap_or(environment.pod_namespace.is_some());
    enabled.then(|| {
        let namespace = args
            .lease_namespace
            .clone()
            .filter(|n| !n.is_empty())
            .or_else(|| environment.pod_namespace.clone())
            .unwrap_or_else(|| OPERATOR_NAMESPACE.to_owned());
        (namespace, args.lease_name.clone())
    })
}

/// Why the operator could not run. Each message is one line: what failed, on which
/// object, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The kubeconfig file could not be read or used.
    #[error(
        "could not use kubeconfig {path}: {message}: fix the file or pass another with --kubeconfig"
    )]
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
    /// Leader election is on but the Lease's namespace does not exist.
    #[error(
        "leader election: namespace {namespace} (for Lease {namespace}/{name}) does not exist: create it (kubectl create namespace {namespace}), pick another with --lease-namespace, or turn leader election off with --leader-elect=false"
    )]
    LeaseNamespaceMissing {
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        name: String,
    },
    /// The API server refused the operator access to its Lease.
    #[error(
        "leader election: not allowed to create Lease {namespace}/{name}: {message}: grant the operator's identity create on leases.coordination.k8s.io there, and get and patch on that Lease (see deploy/), or pass --leader-elect=false"
    )]
    LeaseForbidden {
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        name: String,
        /// The API server's message.
        message: String,
    },
    /// The Lease could not be checked for another reason.
    #[error(
        "leader election: could not check Lease {namespace}/{name}: {message}: check that the API server is reachable, or pass --leader-elect=false"
    )]
    Lease {
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        name: String,
        /// What failed.
        message: String,
    },
    /// A CRD the selected gateway kinds need is not installed.
    #[error(
        "the API server does not serve {resource}, which serving {kind} needs: install the CRDs (litellm-impl crds | kubectl apply -f -), or leave that kind out with --gateway-kinds"
    )]
    CrdMissing {
        /// `<plural>.<group>`.
        resource: String,
        /// The kind that needs it.
        kind: ServedGatewayKind,
    },
    /// The operator may not list a resource a served kind needs (RBAC).
    #[error(
        "the operator may not list {resource}, which serving {kind} needs: grant list and watch on it to the operator's ServiceAccount (see deploy/rbac.yaml), or leave that kind out with --gateway-kinds"
    )]
    ListForbidden {
        /// `<plural>.<group>`.
        resource: String,
        /// The kind that needs it.
        kind: ServedGatewayKind,
    },
    /// The probes address could not be bound.
    #[error(
        "could not serve /healthz and /readyz on {addr}: {message}: pass a free address with --health-probe-bind-address"
    )]
    ProbeAddress {
        /// The address.
        addr: SocketAddr,
        /// The bind error.
        message: String,
    },
    /// The metrics address could not be bound.
    #[error(
        "could not serve /metrics on {addr}: {message}: pass a free address with --metrics-bind-address"
    )]
    MetricsAddress {
        /// The address.
        addr: SocketAddr,
        /// The bind error.
        message: String,
    },
    /// The operator stopped with an error.
    #[error("the operator stopped: {0}")]
    Operator(OperatorError),
}

impl From<OperatorError> for RunError {
    fn from(error: OperatorError) -> Self {
        match error {
            OperatorError::Admin { addr, source } => RunError::ProbeAddress {
                addr,
                message: source.to_string(),
            },
            OperatorError::Metrics { addr, source } => RunError::MetricsAddress {
                addr,
                message: source.to_string(),
            },
            other => RunError::Operator(other),
        }
    }
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
    kube::Client::try_from(config)
        .map_err(|e| RunError::NoConfig(aigateway_runtime::operator::describe_kube_error(&e)))
}

/// Checks that the API server serves every resource the selected kinds need and lets
/// us list it (in `namespace` when the operator watches one): a missing CRD or a missing
/// grant would otherwise keep the operator unready forever, and every kind with it, since
/// the kinds start together once all their caches have synced.
pub async fn check_resources(
    client: &kube::Client,
    kinds: &[ServedGatewayKind],
    namespace: Option<&str>,
) -> Result<(), RunError> {
    for kind in kinds {
        for (plural, scope) in kind.resources() {
            let resource = kube::api::ApiResource {
                group: aigateway_api::GROUP.to_owned(),
                version: aigateway_api::VERSION.to_owned(),
                api_version: aigateway_api::API_VERSION.to_owned(),
                kind: String::new(),
                plural: (*plural).to_owned(),
            };
            let api: Api<kube::api::DynamicObject> = match (scope, namespace) {
                (Scope::Namespaced, Some(namespace)) => {
                    Api::namespaced_with(client.clone(), namespace, &resource)
                }
                _ => Api::all_with(client.clone(), &resource),
            };
            let qualified = format!("{plural}.{}", aigateway_api::GROUP);
            match api
                .list_metadata(&kube::api::ListParams::default().limit(1))
                .await
            {
                Err(kube::Error::Api(status)) if status.is_not_found() => {
                    return Err(RunError::CrdMissing {
                        resource: qualified,
                        kind: *kind,
                    });
                }
                Err(kube::Error::Api(status)) if status.is_forbidden() => {
                    return Err(RunError::ListForbidden {
                        resource: qualified,
                        kind: *kind,
                    });
                }
                // Anything else (a network error) shows in /readyz and the logs, and may
                // pass.
                _ => {}
            }
        }
    }
    Ok(())
}

/// Checks, before competing for it, that the Lease can be created: a server-side dry
/// run, so a missing namespace or missing rights are reported at start in one line
/// instead of as a failed election.
pub async fn check_lease(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<(), RunError> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let mut lease = Lease::default();
    lease.metadata.name = Some(name.to_owned());
    let params = PostParams {
        dry_run: true,
        field_manager: None,
    };
    match leases.create(&params, &lease).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_already_exists() || status.code == 409 => Ok(()),
        Err(kube::Error::Api(status))
            if status.is_not_found()
                && status
                    .details
                    .as_ref()
                    .is_some_and(|d| d.kind == "namespaces") =>
        {
            Err(RunError::LeaseNamespaceMissing {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            })
        }
        Err(kube::Error::Api(status)) if status.is_forbidden() => Err(RunError::LeaseForbidden {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            message: aigateway_runtime::operator::describe_kube_error(&kube::Error::Api(status)),
        }),
        Err(error) => Err(RunError::Lease {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            message: aigateway_runtime::operator::describe_kube_error(&error),
        }),
    }
}

/// The operator `run` and `demo` both run: one implementation per selected kind.
pub fn operator(client: kube::Client, args: &OperatorArgs) -> Operator {
    let kinds: BTreeSet<ServedGatewayKind> = args.gateway_kinds.iter().copied().collect();
    let mut operator = Operator::new(client);
    for kind in kinds {
        operator = match kind {
            ServedGatewayKind::AiGateway => {
                operator.gateway(LiteLlmGateway::new(args.render.settings()))
            }
            ServedGatewayKind::ToolGateway => {
                operator.gateway(LiteLlmToolGateway::new(args.render.settings()))
            }
        };
    }
    let mut operator = operator.concurrency(args.concurrency);
    if let Some(addr) = args.health_probe_bind_address.addr() {
        operator = operator.probes(addr);
    }
    if let Some(addr) = args.metrics_bind_address.addr() {
        operator = operator.metrics_on(addr, args.metrics_serving());
    }
    if let Some(namespace) = &args.namespace {
        operator = operator.namespace(namespace.clone());
    }
    operator
}

/// Runs the operator until SIGTERM or Ctrl-C.
pub async fn run(args: &RunArgs) -> Result<(), RunError> {
    aigateway_runtime::logging::init(args.operator.log_format);
    let client = client(args.kubeconfig.as_deref()).await?;
    let mut operator = operator(client.clone(), &args.operator);
    match lease(args, &Environment::detect()) {
        Some((namespace, name)) => {
            check_lease(&client, &namespace, &name).await?;
            tracing::info!(lease = %format!("{namespace}/{name}"), "leader election on");
            operator = operator.leader_election(LeaderElection::new(&name, &namespace));
        }
        None => tracing::info!(
            "leader election off: not running in a pod (--leader-elect to turn it on)"
        ),
    }
    check_resources(
        &client,
        &args.operator.gateway_kinds,
        args.operator.namespace.as_deref(),
    )
    .await?;
    let kinds: Vec<String> = args
        .operator
        .gateway_kinds
        .iter()
        .map(ToString::to_string)
        .collect();
    tracing::info!(kinds = %kinds.join(", "), "starting");
    operator.run().await?;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn parse(args: &[&str]) -> RunArgs {
        Cli::try_parse_from(std::iter::once("run").chain(args.iter().copied()))
            .unwrap()
            .run
    }

    fn in_pod(namespace: &str) -> Environment {
        Environment {
            pod_namespace: Some(namespace.to_owned()),
        }
    }

    #[test]
    fn leader_election_is_on_in_a_pod_and_off_elsewhere_by_default() {
        let args = parse(&[]);
        assert_eq!(lease(&args, &Environment::default()), None);
        assert_eq!(
            lease(&args, &in_pod("ops")),
            Some(("ops".to_owned(), DEFAULT_LEASE_NAME.to_owned()))
        );
    }

    #[test]
    fn the_flag_wins_over_the_environment() {
        assert_eq!(
            lease(&parse(&["--leader-elect"]), &Environment::default()),
            Some((OPERATOR_NAMESPACE.to_owned(), DEFAULT_LEASE_NAME.to_owned()))
        );
        assert_eq!(
            lease(&parse(&["--leader-elect=false"]), &in_pod("ops")),
            None
        );
        assert_eq!(
            lease(
                &parse(&[
                    "--leader-elect=true",
                    "--lease-namespace",
                    "x",
                    "--lease-name",
                    "l"
                ]),
                &in_pod("ops")
            ),
            Some(("x".to_owned(), "l".to_owned()))
        );
    }

    #[test]
    fn bind_addresses_read_as_controller_runtime_writes_them() {
        assert_eq!(parse_bind_address("0"), Ok(BindAddress::Off));
        assert_eq!(
            parse_bind_address(":8443"),
            Ok(BindAddress::At("0.0.0.0:8443".parse().unwrap()))
        );
        assert_eq!(
            parse_bind_address("127.0.0.1:9"),
            Ok(BindAddress::At("127.0.0.1:9".parse().unwrap()))
        );
        assert!(parse_bind_address("[::]:8081").is_ok());
        assert!(parse_bind_address("eight").is_err());
    }

    #[test]
    fn metrics_are_secure_by_default_and_plain_only_when_asked() {
        assert_eq!(
            parse(&[]).operator.metrics_serving(),
            MetricsServing::Secure(ServingCertificate::SelfSigned)
        );
        assert_eq!(
            parse(&["--metrics-cert-path", "/certs"])
                .operator
                .metrics_serving(),
            MetricsServing::Secure(ServingCertificate::Files {
                certificate: "/certs/tls.crt".into(),
                key: "/certs/tls.key".into(),
            })
        );
        assert_eq!(
            parse(&["--metrics-secure=false"])
                .operator
                .metrics_serving(),
            MetricsServing::Plain
        );
        let args = parse(&[]).operator;
        assert_eq!(
            args.health_probe_bind_address,
            BindAddress::At("0.0.0.0:8081".parse().unwrap())
        );
        assert_eq!(
            args.metrics_bind_address,
            BindAddress::At("0.0.0.0:8443".parse().unwrap())
        );
    }

    #[test]
    fn api_errors_read_as_one_line_without_debug_output() {
        let status =
            kube::core::Status::failure("namespaces \"x\" not found", "NotFound").with_code(404);
        let error = kube::Error::Api(status.boxed());
        let text = aigateway_runtime::operator::describe_kube_error(&error);
        assert_eq!(text, "namespaces \"x\" not found (NotFound, HTTP 404)");
        assert!(
            error.to_string().contains("Status {"),
            "kube's own Display appends the Debug form; if it no longer does, this mapping may go"
        );
    }
}
