//! `litellm-impl uninstall`: releases the finalizers and marks our operator keeps, once
//! it is gone, so deleting the classes, the gateways or the CRDs never waits for it.

use std::path::PathBuf;
use std::time::Duration;

use aigateway_api::ToolRoute;
use aigateway_runtime::release::{self, ReleaseError, ReleaseScope, ResourceOutcome};
use aigateway_runtime::{AiGatewayKind, ToolGatewayKind};
use clap::Args;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};

use super::run::{RunError, ServedGatewayKind};
use litellm_impl::names::{CONTROLLER_NAME, TOOL_GATEWAY_CONTROLLER_NAME};

/// Exit codes of `uninstall`, shown in its `--help`.
pub const UNINSTALL_EXIT_CODES: &str = "\
Exit codes:
  0  every mark of ours is released (or, with --dry-run, listed), or there was none
  2  invalid invocation
  3  no usable kubeconfig or in-cluster config (as for run)
  5  a mark could not be released, or the operator could not be stopped (the message says
     which object and what to do); running it again is safe";

/// Exit code: the uninstall could not finish.
pub const EXIT_UNINSTALL: u8 = 5;

impl UninstallError {
    /// The exit code for this error, as [`UNINSTALL_EXIT_CODES`] lists them.
    pub fn exit_code(&self) -> u8 {
        match self {
            UninstallError::Config(_) => super::EXIT_OPERATOR,
            _ => EXIT_UNINSTALL,
        }
    }
}

/// How long `--stop-operator` waits for the operator's pods to go: their grace period
/// (30 s in our bundle) with room for a slow node.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(120);

/// Arguments of `uninstall`.
#[derive(Debug, Args)]
#[command(after_help = UNINSTALL_EXIT_CODES)]
pub struct UninstallArgs {
    /// Kubeconfig to use instead of the default lookup.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Release marks on gateways and routes in this namespace only (default: all), as
    /// `run --namespace`; classes are cluster-wide.
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub namespace: Option<String>,
    /// Gateway kinds whose marks to release, comma-separated (`ai-gateway`,
    /// `tool-gateway`), as `run --gateway-kinds`.
    #[arg(
        long,
        value_enum,
        hide_possible_values = true,
        value_delimiter = ',',
        default_value = "ai-gateway,tool-gateway",
        env = "GATEWAY_KINDS"
    )]
    pub gateway_kinds: Vec<ServedGatewayKind>,
    /// Print what would be released (and stopped) without writing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// First scale the operator's Deployment NAMESPACE/NAME to zero and wait until its
    /// pods are gone (at most 120 s), so that it cannot put back what is released (the
    /// Helm chart's pre-delete hook uses this).
    #[arg(long, value_name = "NAMESPACE/NAME", value_parser = parse_deployment)]
    pub stop_operator: Option<(String, String)>,
}

fn parse_deployment(value: &str) -> Result<(String, String), String> {
    match value.split_once('/') {
        Some((namespace, name))
            if !namespace.is_empty() && !name.is_empty() && !name.contains('/') =>
        {
            Ok((namespace.to_owned(), name.to_owned()))
        }
        _ => Err(format!(
            "expected NAMESPACE/NAME of the operator's Deployment, got {value:?}"
        )),
    }
}

/// Why the uninstall could not finish. Each message is one line.
#[derive(Debug, thiserror::Error)]
pub enum UninstallError {
    /// No usable cluster configuration.
    #[error(transparent)]
    Config(#[from] RunError),
    /// A mark could not be released.
    #[error(transparent)]
    Release(#[from] ReleaseError),
    /// The operator's Deployment could not be read or scaled.
    #[error(
        "could not stop the operator: {action} Deployment {namespace}/{name}: {message}: scale it to zero yourself (kubectl -n {namespace} scale deployment/{name} --replicas=0) and run the uninstall without --stop-operator"
    )]
    Stop {
        /// What was done.
        action: &'static str,
        /// The Deployment's namespace.
        namespace: String,
        /// The Deployment's name.
        name: String,
        /// The error, as one line.
        message: String,
    },
    /// The operator's pods did not go in time.
    #[error(
        "the operator's pods did not go within {seconds} s after scaling Deployment {namespace}/{name} to zero (still there: {pods}): check why they do not terminate (kubectl -n {namespace} describe pod), then run the uninstall again"
    )]
    StopTimeout {
        /// The Deployment's namespace.
        namespace: String,
        /// The Deployment's name.
        name: String,
        /// The pods still there.
        pods: String,
        /// How long we waited.
        seconds: u64,
    },
}

/// Runs `uninstall`, writing what it does to `out`.
pub async fn run(
    args: &UninstallArgs,
    out: &mut impl std::io::Write,
) -> Result<(), UninstallError> {
    let client = super::run::client(args.kubeconfig.as_deref()).await?;
    if let Some((namespace, name)) = &args.stop_operator {
        stop_operator(&client, namespace, name, args.dry_run, out).await?;
    }
    let field_managers = [CONTROLLER_NAME, TOOL_GATEWAY_CONTROLLER_NAME]
        .map(aigateway_runtime::names::default_field_manager);
    let scope = |controller| ReleaseScope {
        controller,
        field_manager: if controller == CONTROLLER_NAME {
            &field_managers[0]
        } else {
            &field_managers[1]
        },
        namespace: args.namespace.as_deref().filter(|n| !n.is_empty()),
        dry_run: args.dry_run,
    };
    let mut outcomes: Vec<ResourceOutcome> = Vec::new();
    let mut kinds = args.gateway_kinds.clone();
    kinds.sort();
    kinds.dedup();
    for kind in kinds {
        match kind {
            ServedGatewayKind::AiGateway => {
                outcomes.extend(
                    release::release::<AiGatewayKind>(&client, &scope(CONTROLLER_NAME)).await?,
                );
            }
            ServedGatewayKind::ToolGateway => {
                let scope = scope(TOOL_GATEWAY_CONTROLLER_NAME);
                outcomes.extend(release::release::<ToolGatewayKind>(&client, &scope).await?);
                outcomes.push(release::release_attached::<ToolRoute>(&client, &scope).await?);
            }
        }
    }
    for line in release::summary(&outcomes, args.dry_run) {
        let _ = writeln!(out, "{line}");
    }
    Ok(())
}

/// Scales the operator's Deployment to zero (if it is not) and waits until none of its
/// pods is left.
async fn stop_operator(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    dry_run: bool,
    out: &mut impl std::io::Write,
) -> Result<(), UninstallError> {
    let error = |action: &'static str, e: kube::Error| UninstallError::Stop {
        action,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        message: aigateway_runtime::operator::describe_kube_error(&e),
    };
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let Some(deployment) = deployments
        .get_opt(name)
        .await
        .map_err(|e| error("reading", e))?
    else {
        let _ = writeln!(
            out,
            "operator Deployment {namespace}/{name} does not exist: nothing to stop"
        );
        return Ok(());
    };
    let scaled = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .is_some_and(|r| r == 0);
    if dry_run {
        if !scaled {
            let _ = writeln!(
                out,
                "would scale Deployment {namespace}/{name} to zero and wait for its pods to go"
            );
        }
        return Ok(());
    }
    if !scaled {
        deployments
            .patch_scale(
                name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"replicas": 0}})),
            )
            .await
            .map_err(|e| error("scaling", e))?;
        let _ = writeln!(out, "scaled Deployment {namespace}/{name} to zero");
    }
    let selector = deployment
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.as_ref())
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    if selector.is_empty() {
        // A Deployment without matchLabels selects with expressions only; the
        // Deployment's own count is then what there is to wait for.
        return Ok(());
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
    loop {
        let left = pods
            .list_metadata(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| error("listing the pods of", e))?;
        if left.items.is_empty() {
            let _ = writeln!(out, "the operator's pods are gone");
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(UninstallError::StopTimeout {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                pods: left
                    .items
                    .iter()
                    .map(|p| p.metadata.name.clone().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(", "),
                seconds: STOP_TIMEOUT.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operator_deployment_is_namespace_slash_name() {
        assert_eq!(
            parse_deployment("ops/litellm-impl").unwrap(),
            ("ops".to_owned(), "litellm-impl".to_owned())
        );
        for bad in ["litellm-impl", "/x", "x/", "a/b/c"] {
            assert!(parse_deployment(bad).is_err(), "{bad}");
        }
    }
}
