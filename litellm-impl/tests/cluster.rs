//! The install bundle on a real cluster. Needs a cluster (e.g. kind) in the current
//! kubeconfig context and the operator image loaded into it:
//!
//! ```sh
//! kind create cluster --name aigateway
//! docker build -t ghcr.io/aigateway-rs/litellm-impl:0.1.0 .
//! kind load docker-image ghcr.io/aigateway-rs/litellm-impl:0.1.0 --name aigateway
//! cargo test -p litellm-impl --test cluster -- --ignored
//! ```
//!
//! It installs `deploy/`, waits for the two operator replicas, creates a gateway with an
//! `api-key-secrets` Secret and waits until the gateway is Ready, i.e. the real LiteLLM
//! pod passed its readiness probe.

use std::path::Path;
use std::process::Command;

fn kubectl(args: &[&str]) -> String {
    let output = Command::new("kubectl")
        .args(args)
        .output()
        .expect("kubectl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "kubectl {}:\n{text}",
        args.join(" ")
    );
    text
}

#[test]
#[ignore = "needs a cluster"]
fn the_bundle_runs_the_operator_and_a_gateway_becomes_ready_on_a_real_cluster() {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let crds = deploy.join("crds");
    kubectl(&["apply", "--server-side", "-f", crds.to_str().unwrap()]);
    kubectl(&[
        "wait",
        "--for=condition=Established",
        "crd",
        "--all",
        "--timeout=60s",
    ]);
    kubectl(&["apply", "--server-side", "-k", deploy.to_str().unwrap()]);
    kubectl(&[
        "-n",
        "ai-gateway-litellm-system",
        "rollout",
        "status",
        "deploy/litellm-impl",
        "--timeout=180s",
    ]);
    kubectl(&[
        "wait",
        "--for=condition=Accepted",
        "aigatewayclass/litellm",
        "--timeout=60s",
    ]);

    let manifests =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/manifests/basic-gateway.yaml");
    kubectl(&["apply", "-f", manifests.to_str().unwrap()]);
    let secret = Command::new("kubectl")
        .args([
            "-n",
            "ai-gateway",
            "create",
            "secret",
            "generic",
            "api-key-secrets",
            "--from-literal=OPENAI_API_KEY=placeholder",
        ])
        .output()
        .unwrap();
    assert!(
        secret.status.success()
            || String::from_utf8_lossy(&secret.stderr).contains("AlreadyExists")
    );
    kubectl(&[
        "-n",
        "ai-gateway",
        "wait",
        "--for=condition=Ready",
        "aigw/ai-gateway",
        "--timeout=300s",
    ]);
    let url = kubectl(&[
        "-n",
        "ai-gateway",
        "get",
        "aigw",
        "ai-gateway",
        "-o",
        "jsonpath={.status.url}",
    ]);
    assert_eq!(url, "http://ai-gateway.ai-gateway.svc.cluster.local.:80");
}
