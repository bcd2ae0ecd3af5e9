//! The `litellm-impl` command: `run`, `demo`, `render`, `crds`, `manifests` and
//! `uninstall`, over the [`litellm_impl`] library.
//!
//! Everything only the command needs lives here, so the library links none of it: clap,
//! the in-memory API server the demo embeds (aigateway-testkit), the local pod runner of
//! `demo --with-proxy` ([`local`]) and the install bundle and Helm chart `manifests`
//! prints ([`bundle`]).
#![warn(missing_docs)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod bundle;
pub mod crds;
pub mod demo;
pub mod flags;
pub mod local;
pub mod manifests;
pub mod render;
pub mod run;
pub mod uninstall;

/// Exit codes, shown in `--help`.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success (problems that still let the proxy deploy are printed to stderr as warnings)
  1  at least one gateway cannot be rendered (the message names the object and field)
  2  invalid invocation, or input that cannot be read or parsed";

/// Exit codes of every subcommand, shown in the top-level `--help`.
pub const ALL_EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  render: a gateway cannot be rendered; demo --exit-when-ready: not Ready in time, or the
     request through LiteLLM failed
  2  invalid invocation, or unreadable input
  3  run/demo: the operator could not start or failed
  4  demo --with-proxy: LiteLLM could not be installed, or its pod could not start
  5  uninstall: a mark could not be released, or the operator could not be stopped";

/// Exit code: at least one gateway could not be rendered.
pub const EXIT_INVALID_GATEWAY: u8 = 1;
/// Exit code: bad invocation or unreadable input.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the operator could not start or failed.
pub const EXIT_OPERATOR: u8 = 3;

/// The LiteLLM implementation of runtime.agentic-layer.ai AI gateways.
#[derive(Debug, Parser)]
#[command(name = "litellm-impl", version, about, after_help = ALL_EXIT_CODES)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the operator against a cluster (kubeconfig or in-cluster config).
    Run(Box<run::RunArgs>),
    /// Run the operator on an embedded in-memory API server with sample gateways.
    Demo(demo::DemoArgs),
    /// Render AiGateways and ToolGateways offline into the objects the operator would apply.
    Render(Box<render::RenderArgs>),
    /// Print every CRD the operator needs, as YAML.
    Crds,
    /// Print the whole install bundle (CRDs, namespace, RBAC, operator, class), as YAML.
    Manifests,
    /// Release the finalizers and marks our operator keeps, once it is gone for good.
    ///
    /// For uninstalling, or a rollback to the Go operator: removes the finalizer
    /// aigateway.agentic-layer.ai/gateway-exists from AiGatewayClasses and
    /// ToolGatewayClasses whose spec.controller is ours, and from AiGateways, ToolGateways
    /// and ToolRoutes it served (its status writes own their conditions, or the annotation
    /// aigateway.agentic-layer.ai/conditions-owner of an earlier release names it) that
    /// annotation and a gateway's finalizer aigateway.agentic-layer.ai/cleanup. Nothing
    /// else changes: not another controller's
    /// marks, not a condition, not a child. Each removal is a JSON patch that tests the
    /// value it removes, so a finalizer someone adds or moves at the same moment is never
    /// dropped. A kind whose CRD is not installed is skipped and said; where nothing is
    /// left to release, nothing is written.
    ///
    /// Run it once our operator no longer runs (scale it to zero, or pass
    /// --stop-operator): a running operator puts its marks back. Uses --kubeconfig, then
    /// $KUBECONFIG, then ~/.kube/config, then the in-cluster config.
    Uninstall(uninstall::UninstallArgs),
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("start the Tokio runtime")
}

fn print_result(result: std::io::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`| head`) is not an error of ours.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: could not write output: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Render(args) => render::run(&args),
        Command::Crds => print_result(crds::run()),
        Command::Manifests => print_result(manifests::run()),
        Command::Run(args) => match runtime().block_on(run::run(&args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::from(EXIT_OPERATOR)
            }
        },
        Command::Uninstall(args) => {
            let mut stdout = std::io::stdout();
            match runtime().block_on(uninstall::run(&args, &mut stdout)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::from(error.exit_code())
                }
            }
        }
        Command::Demo(args) => {
            // The table is the demo's output; the loop's logs only when asked (RUST_LOG).
            aigateway_runtime::logging::init_with_default(
                aigateway_runtime::logging::LogFormat::Text,
                "warn",
            );
            let mut stdout = std::io::stdout();
            match runtime().block_on(demo::run(&args, &mut stdout)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::from(error.exit_code())
                }
            }
        }
    }
}
