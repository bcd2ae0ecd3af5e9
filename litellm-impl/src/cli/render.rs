//! `litellm-impl render`: AiGateways from YAML in, ConfigMap/Deployment/Service out.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;

use aigateway_api::{AiGateway, AiGatewayClass};
use aigateway_runtime::AiGatewayKind;
use aigateway_runtime::class::{Claim, NotOursReason, claim};
use clap::Args;

use crate::cli::{EXIT_CODES, EXIT_INVALID_GATEWAY, EXIT_USAGE};
use crate::{
    CONTROLLER_NAME, InMemoryObjects, InputObject, RenderSettings, read_documents, render,
};

/// Arguments of `render`.
#[derive(Debug, Args)]
#[command(
    long_about = "Reads multi-document YAML (AiGateway, Guard, GuardrailProvider, Secret, ConfigMap, \
AiGatewayClass) and prints, for each AiGateway in input order, the ConfigMap, Deployment and \
Service the operator would apply, as multi-document YAML. Objects without a namespace are in \
`default`. When the input holds AiGatewayClasses, only gateways the LiteLLM operator would claim \
are rendered, as it decides. Documents not used (other kinds, gateways of other classes or of no \
class) are listed on stderr with the reason, and so are problems that still let the proxy \
deploy. No message repeats a Secret's content.",
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
    let mut documents = Vec::new();
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
        match read_documents(&text, &name) {
            Ok(parsed) => documents.extend(parsed.into_iter().map(|d| (name.clone(), d))),
            Err(e) => {
                let _ = writeln!(err, "error: {e}");
                return EXIT_USAGE;
            }
        }
    }
    let objects: Vec<InputObject> = documents.iter().map(|(_, d)| d.object.clone()).collect();
    let mut lookup = InMemoryObjects::new();
    lookup.extend(&objects);
    let classes: Vec<Arc<AiGatewayClass>> = objects
        .iter()
        .filter_map(|o| match o {
            InputObject::AiGatewayClass(c) => Some(Arc::new(c.clone())),
            _ => None,
        })
        .collect();
    let mut gateways: Vec<&AiGateway> = Vec::new();
    for (source, document) in &documents {
        let place = format!("{source} document {}", document.index);
        match &document.object {
            InputObject::AiGateway(gateway) => match skip_reason(gateway, &classes) {
                None => gateways.push(gateway),
                Some(reason) => {
                    let _ = writeln!(
                        err,
                        "note: {place}: AiGateway {} not rendered: {reason}",
                        id(gateway)
                    );
                }
            },
            InputObject::Other { kind, name, .. } => {
                let _ = writeln!(
                    err,
                    "note: {place}: {kind} {name} not used: render reads AiGateway, AiGatewayClass, Guard, GuardrailProvider, Secret and ConfigMap"
                );
            }
            _ => {}
        }
    }
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
        let id = id(gateway);
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

/// `namespace/name` of a gateway.
fn id(gateway: &AiGateway) -> String {
    format!(
        "{}/{}",
        gateway.metadata.namespace.as_deref().unwrap_or_default(),
        gateway.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Why the operator would not claim `gateway`, judged by the classes of the input as the
/// operator judges by the cluster's; `None` when it would, or when the input holds no
/// class at all (then every gateway is rendered, as if its class were LiteLLM's).
fn skip_reason(gateway: &AiGateway, classes: &[Arc<AiGatewayClass>]) -> Option<String> {
    if classes.is_empty() {
        return None;
    }
    match claim::<AiGatewayKind>(gateway.spec.class_name(), classes, CONTROLLER_NAME) {
        Claim::Ours { .. } => None,
        Claim::NotOurs(NotOursReason::ForeignClass { class, controller }) => Some(format!(
            "other class: its class {class} belongs to controller {controller}"
        )),
        Claim::NotOurs(NotOursReason::UnknownClass(class)) => Some(format!(
            "no class: it names class {class}, which the input does not hold; add the AiGatewayClass to the input"
        )),
        Claim::NotOurs(NotOursReason::NoDefaultClass) => Some(
            "no class: it names no class and no LiteLLM class of the input is the default; set spec.aiGatewayClassName"
                .to_owned(),
        ),
        Claim::Ambiguous(why) => Some(format!("no class: the default class is ambiguous: {why}")),
    }
}
