//! Our CRDs on a real kube-apiserver (see `aigateway_testkit::real_cluster`): the rules
//! the in-memory API server does not evaluate, ToolRoute's CEL rule on `spec.upstream`
//! first, and the upstream ToolGateway samples applied unchanged.
//!
//! The first run builds the control plane (many minutes; cached under `~/.cache`).
//! Nothing here is skipped: without Go or kubectl this test fails and says why.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Output, Stdio};

use aigateway_testkit::real_cluster::RealCluster;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs kubectl as admin with `stdin`; returns its output.
fn kubectl(cluster: &RealCluster, args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = cluster.kubectl();
    command
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("kubectl is installed and on PATH");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn ok(cluster: &RealCluster, args: &[&str], stdin: Option<&str>) {
    let output = kubectl(cluster, args, stdin);
    assert!(
        output.status.success(),
        "kubectl {} failed:\n{}",
        args.join(" "),
        text(&output)
    );
}

fn route(name: &str, upstream: &str) -> String {
    format!(
        "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: ToolRoute\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  toolGatewayRef:\n    name: tools\n  upstream:\n{upstream}"
    )
}

#[test]
fn real_cluster_tool_routes_need_exactly_one_upstream_and_the_upstream_samples_apply() {
    let _one_at_a_time = RealCluster::exclusive();
    let cluster = RealCluster::start().unwrap();
    let crds = manifest_dir().join("../deploy/crds");
    ok(
        &cluster,
        &["apply", "--server-side", "-f", crds.to_str().unwrap()],
        None,
    );
    cluster.wait_crds_established().unwrap();

    let external = "    external:\n      url: https://tools.example.com/mcp\n";
    let server = "    toolServerRef:\n      name: search\n";
    for (name, upstream) in [
        ("both", format!("{external}{server}")),
        ("neither", "    {}\n".to_owned()),
    ] {
        let output = kubectl(
            &cluster,
            &["apply", "--server-side", "-f", "-"],
            Some(&route(name, &upstream)),
        );
        assert!(
            !output.status.success()
                && text(&output).contains("exactly one of toolServerRef or external must be set"),
            "a route with {name} upstream was not refused by the CEL rule:\n{}",
            text(&output)
        );
    }
    for (name, upstream) in [("external", external), ("server", server)] {
        ok(
            &cluster,
            &["apply", "--server-side", "-f", "-"],
            Some(&route(name, upstream)),
        );
    }

    let samples = manifest_dir().join("tests/fixtures/samples");
    for sample in [
        "toolgatewayclass.yaml",
        "toolgateway.yaml",
        "toolgateway-guarded.yaml",
        "toolgateway-with-patch.yaml",
    ] {
        ok(
            &cluster,
            &[
                "apply",
                "--server-side",
                "-f",
                samples.join(sample).to_str().unwrap(),
            ],
            None,
        );
    }
}
