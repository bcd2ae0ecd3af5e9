//! The `litellm-impl` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod render;

/// Exit codes, shown in `--help`.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success (problems that still let the proxy deploy are printed to stderr as warnings)
  1  at least one AiGateway cannot be rendered (the message names the object and field)
  2  invalid invocation, or input that cannot be read or parsed";

/// Exit code: at least one gateway could not be rendered.
pub const EXIT_INVALID_GATEWAY: u8 = 1;
/// Exit code: bad invocation or unreadable input.
pub const EXIT_USAGE: u8 = 2;

/// The LiteLLM implementation of runtime.agentic-layer.ai AI gateways.
#[derive(Debug, Parser)]
#[command(name = "litellm-impl", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render AiGateways offline into the objects the operator would apply.
    Render(render::RenderArgs),
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
    }
}
