//! `litellm-impl render`: AiGateways from YAML in, ConfigMap/Deployment/Service out.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::cli::{EXIT_CODES, EXIT_INVALID_GATEWAY, EXIT_USAGE};
use crate::{InMemoryObjects, InputObject, RenderSettings, parse_documents, render};

/// Arguments of `render`.
#[derive(Debug, Args)]
#[command(
    long_about = "Reads multi-document YAML (AiGateway, Guard, GuardrailProvider, Secret, ConfigMap, \
AiGatewayClass; other kinds are skipped) and prints, for each AiGateway in input order, the \
ConfigMap, Deployment and Service the operator would apply, as multi-document YAML. Objects \
without a namespace are in `default`. Problems that still let the proxy deploy go to stderr.",
    after_help = EXIT_CODES
)]
pub struct RenderArgs {
    /// Input file; repeat for several; `-` reads standard input.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Print only each gateway's LiteLLM config.yaml (with one gateway exactly the file's
    /// content; with several, each after a `---` and a `# AiGateway namespace/name` line).
    #[arg(long)]
    pub config_only: bool,
    /// How gateways are rendered: the same flags, defaults and environment variables as
    /// `run`, so the output is what an operator started with them applies.
    #[command(flatten)]
    pub settings: RenderSettings,
}

/// Runs `render`, writing to stdout and stderr.
pub fn run(args: &RenderArgs) -> ExitCode {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let code = execute(
        args,
        &mut std::io::stdin().lock(),
        &mut stdout.lock(),
        &mut stderr.lock(),
    );
    ExitCode::from(code)
}

/// Runs `render` over the given streams and returns the exit code.
pub fn execute(
    args: &RenderArgs,
    stdin: &mut dyn Read,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let mut objects = Vec::new();
    let mut stdin_used = false;
    for file in &args.files {
        let (name, text) = if file.as_os_str() == "-" {
            if stdin_used {
                let _ = writeln!(err, "error: `-f -` (standard input) given more than once");
                return EXIT_USAGE;
            }
            stdin_used = true;
            let mut text = String::new();
            if let Err(e) = stdin.read_to_string(&mut text) {
                let _ = writeln!(err, "error: cannot read standard input: {e}");
                return EXIT_USAGE;
            }
            ("<stdin>".to_owned(), text)
        } else {
            match std::fs::read_to_string(file) {
                Ok(text) => (file.display().to_string(), text),
                Err(e) => {
                    let _ = writeln!(err, "error: cannot read {}: {e}", file.display());
                    return EXIT_USAGE;
                }
            }
        };
        match parse_documents(&text, &name) {
            Ok(mut parsed) => objects.append(&mut parsed),
            Err(e) => {
                let _ = writeln!(err, "error: {e}");
                return EXIT_USAGE;
            }
        }
    }
    let mut lookup = InMemoryObjects::new();
    lookup.extend(&objects);
    let gateways: Vec<_> = objects
        .iter()
        .filter_map(|o| match o {
            InputObject::AiGateway(g) => Some(g),
            _ => None,
        })
        .collect();
    if gateways.is_empty() {
        let _ = writeln!(
            err,
            "warning: the input holds no AiGateway; nothing to render"
        );
    }
    let settings = &args.settings;
    let mut failed = false;
    let mut output = String::new();
    for gateway in &gateways {
        let id = format!(
            "{}/{}",
            gateway.metadata.namespace.as_deref().unwrap_or_default(),
            gateway.metadata.name.as_deref().unwrap_or_default()
        );
        let rendered = match render(gateway, &lookup, settings) {
            Ok(rendered) => rendered,
            Err(e) => {
                let _ = writeln!(err, "error: {e}");
                failed = true;
                continue;
            }
        };
        for problem in &rendered.problems {
            if problem.object.kind == "AiGateway" {
                let _ = writeln!(err, "warning: {problem}");
            } else {
                let _ = writeln!(err, "warning: {problem} (for AiGateway {id})");
            }
        }
        if args.config_only {
            if gateways.len() > 1 {
                output.push_str(&format!("---\n# AiGateway {id}\n"));
            }
            output.push_str(&rendered.config_yaml);
        } else {
            let documents = [
                serde_saphyr::to_string(&rendered.config_map),
                serde_saphyr::to_string(&rendered.deployment),
                serde_saphyr::to_string(&rendered.service),
            ];
            for document in documents {
                match document {
                    Ok(text) => {
                        output.push_str("---\n");
                        output.push_str(&text);
                    }
                    Err(e) => {
                        let _ = writeln!(
                            err,
                            "error: AiGateway {id}: cannot write objects as YAML: {e}; this is a bug in litellm-impl"
                        );
                        failed = true;
                    }
                }
            }
        }
    }
    if let Err(e) = out.write_all(output.as_bytes()).and_then(|()| out.flush()) {
        let _ = writeln!(err, "error: cannot write output: {e}");
        return EXIT_USAGE;
    }
    if failed { EXIT_INVALID_GATEWAY } else { 0 }
}
