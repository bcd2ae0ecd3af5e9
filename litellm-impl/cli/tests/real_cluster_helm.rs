//! Install, upgrade and uninstall against a real control plane (see `real_cluster.rs`
//! for the control plane): `litellm-impl uninstall` after the operator is gone, and the
//! Helm chart with the real `helm` (built from its Go module by `scripts/helm`).
//!
//! kwok runs no containers, so no image ever runs here. The chart's objects are the real
//! ones (installed by helm), and where a container would run our binary, the test runs
//! the built binary with that container's exact arguments and environment, authenticated
//! with a token of the pod's ServiceAccount, tied to one of the Deployment's real (kwok)
//! pods: started when that pod runs and stopped (SIGTERM) when the pod goes, as a
//! kubelet would. The pre-delete hook's Job is held Pending by a taint on the only Node
//! while the test runs the Job's command as the Job's ServiceAccount; when that command
//! succeeded the taint goes, kwok completes the Job, and helm carries on.
//!
//! Nothing here is skipped: without Go, kubectl or helm these tests fail and say why.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use aigateway_testkit::real_cluster::{AuditEvent, RealCluster};
use common::cluster::*;
use common::docs::{run_sh, sh_commands};
use common::{helm_binary, served_crds, workspace};
use serde_json::Value;

const RELEASE: &str = "litellm-impl";
const CLASS_FINALIZER: &str = "aigateway.agentic-layer.ai/gateway-exists";
const OWNER_ANNOTATION: &str = "aigateway.agentic-layer.ai/conditions-owner";
const HELM_HOW_TO: &str = "docs/how-to/install-with-helm.md";
const MIGRATION_HOW_TO: &str = "docs/how-to/migrate-from-go-operator.md";

/// The upstream AiGateway samples: (file, namespace, gateway).
const AI_SAMPLES: &[(&str, &str, &str)] = UPSTREAM_SAMPLES;

/// The Go operator's ToolGateway samples without the patched one: (file, namespace,
/// gateway, route namespace, route).
fn tool_samples() -> &'static [(
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
)] {
    &UPSTREAM_TOOL_SAMPLES[..2]
}

fn sample_path(file: &str) -> String {
    sample(file).to_string_lossy().into_owned()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// kubectl as admin; panics with its output when it fails.
fn kubectl(cluster: &RealCluster, args: &[&str]) -> String {
    let output = cluster
        .kubectl()
        .args(args)
        .output()
        .expect("kubectl is installed");
    assert!(
        output.status.success(),
        "kubectl {} failed:\n{}",
        args.join(" "),
        text(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn kubectl_stdin(cluster: &RealCluster, args: &[&str], input: &str) {
    use std::io::Write;
    let mut child = cluster
        .kubectl()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl is installed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "kubectl {} failed:\n{}",
        args.join(" "),
        text(&output)
    );
}

/// `kubectl get ... -o json`, or `None` when the object does not exist.
fn get(cluster: &RealCluster, args: &[&str]) -> Option<Value> {
    let mut all = vec!["get"];
    all.extend(args);
    all.extend(["-o", "json"]);
    let output = cluster.kubectl().args(&all).output().unwrap();
    if output.status.success() {
        return Some(serde_json::from_slice(&output.stdout).unwrap());
    }
    assert!(
        text(&output).contains("NotFound"),
        "kubectl {}: {}",
        all.join(" "),
        text(&output)
    );
    None
}

/// Applies the upstream AiGateway and ToolGateway samples (the classes come from the
/// install).
fn apply_samples(cluster: &RealCluster) {
    for (file, namespace, _) in AI_SAMPLES {
        kubectl(
            cluster,
            &["apply", "--server-side", "-f", &sample_path(file)],
        );
        kubectl_stdin(
            cluster,
            &["apply", "-f", "-"],
            &api_key_secret(namespace, "key-one"),
        );
    }
    // The samples' routes live beside their gateways' namespaces: admitted as documented.
    let admit = documented(HELM_HOW_TO, "Routes from other namespaces");
    assert_eq!(admit.len(), 1, "{admit:?}");
    doc_command(cluster, &admit[0]);
    for (file, ..) in tool_samples() {
        kubectl(
            cluster,
            &["apply", "--server-side", "-f", &sample_path(file)],
        );
    }
}

/// Waits until every sample gateway is Ready and every route has its URL.
fn wait_samples_ready(cluster: &RealCluster, log: &dyn Fn() -> String) {
    let gateways = AI_SAMPLES
        .iter()
        .map(|(_, ns, name)| ("aigateway", *ns, *name))
        .chain(
            tool_samples()
                .iter()
                .map(|(_, ns, name, ..)| ("toolgateway", *ns, *name)),
        );
    for (kind, namespace, name) in gateways {
        let what = format!("{kind} {namespace}/{name} to become Ready");
        let context = || {
            let gateway = get(cluster, &[kind, name, "-n", namespace]);
            format!(
                "{}\noperator log:\n{}",
                serde_json::to_string_pretty(&gateway).unwrap_or_default(),
                log()
            )
        };
        eventually(&what, Duration::from_secs(120), context, || {
            let gateway = get(cluster, &[kind, name, "-n", namespace])?;
            (condition(&gateway, "Ready")["status"] == "True").then_some(())
        });
    }
    for (_, _, _, namespace, name) in tool_samples() {
        eventually(
            &format!("ToolRoute {namespace}/{name} to get its URL"),
            Duration::from_secs(60),
            String::new,
            || {
                let route = get(cluster, &["toolroute", name, "-n", namespace])?;
                route["status"]["url"].is_string().then_some(())
            },
        );
    }
}

/// Our binary as a child process with its output in a file.
struct Process {
    child: Child,
    log: PathBuf,
    /// Where an operator serves /metrics.
    metrics_port_plain: Option<u16>,
}

impl Process {
    fn spawn(mut command: Command, log: PathBuf) -> Self {
        let file = std::fs::File::create(&log).unwrap();
        let child = command
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Process {
            child,
            log,
            metrics_port_plain: None,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, as a kubelet stops a container; the exit code.
    fn terminate(&mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    fn wait(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn service_account_kubeconfig(cluster: &RealCluster, namespace: &str, name: &str) -> PathBuf {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(cluster.service_account_kubeconfig(namespace, name, 3600))
        .unwrap()
}

/// What a container would run: its args, and its env with `fieldRef`s resolved for `pod`.
fn container_command(
    cluster: &RealCluster,
    pod_spec: &Value,
    pod: &str,
    namespace: &str,
    log: PathBuf,
    extra: &[String],
    metrics_port: Option<u16>,
) -> Process {
    let container = &pod_spec["containers"][0];
    let account = pod_spec["serviceAccountName"].as_str().unwrap();
    let kubeconfig = service_account_kubeconfig(cluster, namespace, account);
    let mut command = Command::new(env!("CARGO_BIN_EXE_litellm-impl"));
    command
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("WATCH_NAMESPACE")
        .env_remove("GATEWAY_KINDS");
    for arg in container["args"].as_array().unwrap() {
        let arg = arg.as_str().unwrap();
        // Each pod has its own ports; here the processes share one host.
        match arg.split_once('=') {
            Some((flag @ "--metrics-bind-address", _)) => command.arg(format!(
                "{flag}=127.0.0.1:{}",
                metrics_port.unwrap_or_else(free_port)
            )),
            Some((flag @ "--health-probe-bind-address", _)) => {
                command.arg(format!("{flag}=127.0.0.1:{}", free_port()))
            }
            _ => command.arg(arg),
        };
    }
    command.args(extra).arg("--kubeconfig").arg(&kubeconfig);
    for env in container["env"].as_array().into_iter().flatten() {
        let name = env["name"].as_str().unwrap();
        let value = match env["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            Some("metadata.name") => pod.to_owned(),
            Some("metadata.namespace") => namespace.to_owned(),
            Some(other) => panic!("the test does not resolve fieldRef {other}"),
            None => env["value"].as_str().unwrap_or_default().to_owned(),
        };
        command.env(name, value);
    }
    Process::spawn(command, log)
}

/// The operator as one of the chart Deployment's pods would run it. Outside a pod it
/// needs to be told two things a pod gives it: leader election is on (in a pod it is
/// by default), and free probe and metrics ports (each pod has its own).
fn operator_for_pod(cluster: &RealCluster, deployment: &Value, pod: &str) -> Process {
    let pod_spec = &deployment["spec"]["template"]["spec"];
    let args: Vec<&str> = pod_spec["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    // Its /metrics over plain HTTP on a port of its own, for the test to read the
    // reconcile counters without a token.
    let port = free_port();
    let mut extra = vec!["--metrics-secure=false".to_owned()];
    if !args.contains(&"--leader-elect=false") {
        extra.push("--leader-elect=true".into());
    }
    let mut process = container_command(
        cluster,
        pod_spec,
        pod,
        SYSTEM_NAMESPACE,
        cluster.dir().join(format!("operator-{pod}.log")),
        &extra,
        Some(port),
    );
    process.metrics_port_plain = Some(port);
    process
}

/// An operator's reconcile counters from its /metrics: (started, finished). Started
/// minus finished is what is in flight.
fn reconcile_counts(operator: &Process) -> Option<(f64, f64)> {
    let (_, body) = http_get(operator.metrics_port_plain?, "/metrics")?;
    let sum = |series: &str| -> f64 {
        body.lines()
            .filter(|l| l.starts_with(series))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    Some((
        sum("aigateway_reconciles_total"),
        sum("aigateway_reconcile_duration_seconds_count"),
    ))
}

/// Waits until `operator` has run at least `at_least` reconciles and has none in flight,
/// on two reads a second apart with no reconcile in between; the number run.
fn wait_reconciled(operator: &Process, at_least: f64) -> f64 {
    let mut last = None;
    eventually(
        &format!("the operator to finish at least {at_least} reconciles"),
        Duration::from_secs(120),
        || format!("{:?}\n{}", reconcile_counts(operator), operator.log()),
        || {
            let now = reconcile_counts(operator);
            let done = matches!(now, Some((started, finished)) if started >= at_least && started == finished);
            let settled = done && last == now;
            last = now;
            if !settled {
                std::thread::sleep(Duration::from_secs(1));
            }
            settled.then(|| now.unwrap().0)
        },
    )
}

/// The Running pods of the operator Deployment with `image`, by name.
fn running_operator_pods(cluster: &RealCluster, image: &str) -> Vec<String> {
    let pods = get(
        cluster,
        &[
            "pods",
            "-n",
            SYSTEM_NAMESPACE,
            "-l",
            "app.kubernetes.io/name=litellm-impl",
        ],
    )
    .unwrap();
    let mut names: Vec<String> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["status"]["phase"] == "Running"
                && p["metadata"]["deletionTimestamp"].is_null()
                && p["spec"]["containers"][0]["image"] == image
        })
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// Whether a pod exists and is not being deleted.
fn pod_alive(cluster: &RealCluster, name: &str) -> bool {
    get(cluster, &["pod", name, "-n", SYSTEM_NAMESPACE])
        .is_some_and(|p| p["metadata"]["deletionTimestamp"].is_null())
}

fn lease_holder(cluster: &RealCluster) -> Option<String> {
    get(cluster, &["lease", "litellm-impl", "-n", SYSTEM_NAMESPACE])
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
}

/// The objects a gateway of ours owns, by (kind, namespace/name) → uid, and the
/// Services' ClusterIPs.
fn children(cluster: &RealCluster) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut uids = BTreeMap::new();
    let mut ips = BTreeMap::new();
    let namespaces = AI_SAMPLES
        .iter()
        .map(|(_, ns, _)| *ns)
        .chain(tool_samples().iter().map(|(_, ns, ..)| *ns));
    for namespace in namespaces {
        for kind in ["deployments", "services", "configmaps"] {
            let list = get(
                cluster,
                &[
                    kind,
                    "-n",
                    namespace,
                    "-l",
                    "app.kubernetes.io/part-of=aigateway",
                ],
            )
            .unwrap();
            for item in list["items"].as_array().unwrap() {
                let key = format!(
                    "{kind} {namespace}/{}",
                    item["metadata"]["name"].as_str().unwrap()
                );
                uids.insert(
                    key.clone(),
                    item["metadata"]["uid"].as_str().unwrap().to_owned(),
                );
                if let Some(ip) = item["spec"]["clusterIP"].as_str() {
                    ips.insert(key, ip.to_owned());
                }
            }
        }
    }
    (uids, ips)
}

/// The CRDs the chart installs that are not [`served_crds`].
fn unserved_crds() -> Vec<String> {
    let served = served_crds();
    aigateway_api::crds::all()
        .into_iter()
        .map(|crd| crd.metadata.name.unwrap())
        .filter(|name| !served.contains(name))
        .collect()
}

/// A CRD of agent-runtime-operator's that the chart does not install (Agents), as on a
/// cluster that runs it: no documented command of ours may delete it.
const FOREIGN_CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: agents.runtime.agentic-layer.ai
spec:
  group: runtime.agentic-layer.ai
  names: {kind: Agent, listKind: AgentList, plural: agents, singular: agent}
  scope: Namespaced
  versions:
  - name: v1alpha1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
";

/// Asserts that no served CRD is left, and that every other CRD of the group is.
fn assert_only_served_crds_deleted(cluster: &RealCluster) {
    for crd in served_crds() {
        assert!(
            get(cluster, &["crd", &crd]).is_none(),
            "CRD {crd} is still there"
        );
    }
    for crd in unserved_crds()
        .into_iter()
        .chain(["agents.runtime.agentic-layer.ai".to_owned()])
    {
        assert!(
            get(cluster, &["crd", &crd]).is_some(),
            "CRD {crd}, agent-runtime-operator's, was deleted"
        );
    }
}

/// The directories a documented command finds `helm` and `litellm-impl` in.
fn doc_path_dirs() -> Vec<PathBuf> {
    let ours = Path::new(env!("CARGO_BIN_EXE_litellm-impl"));
    vec![
        helm_binary().parent().unwrap().to_path_buf(),
        ours.parent().unwrap().to_path_buf(),
    ]
}

/// A documented command as a reader runs it in `dir`: with the admin kubeconfig, the
/// test's helm home, and `helm` and `litellm-impl` on `PATH`.
fn doc_command_in(cluster: &RealCluster, dir: &Path, command: &str) -> Output {
    let home = cluster.dir().join("helm-home");
    let dirs = doc_path_dirs();
    let dirs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
    let started = Instant::now();
    let output = run_sh(
        command,
        dir,
        &dirs,
        &[
            ("KUBECONFIG", &cluster.kubeconfig()),
            ("HELM_CONFIG_HOME", &home.join("config")),
            ("HELM_CACHE_HOME", &home.join("cache")),
            ("HELM_DATA_HOME", &home.join("data")),
        ],
    );
    println!("$ {command}  ({:?})\n{}", started.elapsed(), text(&output));
    output
}

/// [`doc_command_in`] from the workspace's root; panics when the command fails.
fn doc_command(cluster: &RealCluster, command: &str) -> String {
    let output = doc_command_in(cluster, &workspace(), command);
    assert!(
        output.status.success(),
        "{command} failed:\n{}",
        text(&output)
    );
    text(&output)
}

/// The documented commands under `heading` of `doc`.
fn documented(doc: &str, heading: &str) -> Vec<String> {
    sh_commands(doc, heading)
}

// ---------------------------------------------------------------------------------------
// litellm-impl uninstall (issue 21: rollback and uninstall never hang)
// ---------------------------------------------------------------------------------------

/// The writes since `mark` but the control plane's own Lease renewals (kube-system),
/// which come every few seconds whatever a command does.
fn command_writes(
    audit: &aigateway_testkit::real_cluster::AuditLog,
    mark: aigateway_testkit::real_cluster::AuditMark,
) -> Vec<AuditEvent> {
    audit
        .writes_since(mark)
        .unwrap()
        .into_iter()
        .filter(|e| !(e.resource == "leases" && e.namespace == "kube-system"))
        .collect()
}

/// Runs kubectl (as admin) and returns how long it took; panics when it fails.
fn timed_kubectl(cluster: &RealCluster, args: &[String]) -> Duration {
    let started = Instant::now();
    let output = cluster.kubectl().args(args).output().unwrap();
    let took = started.elapsed();
    assert!(
        output.status.success(),
        "kubectl {} failed:\n{}",
        args.join(" "),
        text(&output)
    );
    took
}

fn uninstall(cluster: &RealCluster, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_litellm-impl"))
        .arg("uninstall")
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(args)
        .env_remove("KUBECONFIG")
        .env_remove("WATCH_NAMESPACE")
        .env_remove("GATEWAY_KINDS")
        .output()
        .unwrap();
    (output.status.success(), text(&output))
}

/// The documented rollback: with our operator scaled to zero, the migration guide's
/// `litellm-impl uninstall` releases exactly our finalizers and marks (a finalizer
/// someone else holds stays), writes nothing the second time; its step 4 deletes our
/// operator's objects and nothing the Go operator serves; deleting the classes and the
/// served CRDs then completes within 10 s and leaves agent-runtime-operator's CRDs.
#[test]
fn real_cluster_uninstall_releases_our_marks_so_classes_and_crds_delete() {
    let _one_at_a_time = RealCluster::exclusive();
    let cluster = RealCluster::start().unwrap();
    let deploy = workspace().join("deploy");
    kubectl(
        &cluster,
        &[
            "apply",
            "--server-side",
            "-f",
            deploy.join("crds").to_str().unwrap(),
        ],
    );
    cluster.wait_crds_established().unwrap();
    kubectl(
        &cluster,
        &["apply", "--server-side", "-k", deploy.to_str().unwrap()],
    );
    kubectl(
        &cluster,
        &[
            "-n",
            SYSTEM_NAMESPACE,
            "scale",
            "deployment/litellm-impl",
            "--replicas=0",
        ],
    );
    let deployment = get(
        &cluster,
        &["deployment", "litellm-impl", "-n", SYSTEM_NAMESPACE],
    )
    .unwrap();
    let mut operator = operator_for_pod(&cluster, &deployment, "litellm-impl-0");
    apply_samples(&cluster);
    wait_samples_ready(&cluster, &|| operator.log());
    // A finalizer of someone else's on our class, which must stay.
    kubectl(
        &cluster,
        &[
            "patch",
            "aigatewayclass",
            "litellm",
            "--type=json",
            "-p",
            r#"[{"op":"add","path":"/metadata/finalizers/-","value":"example.com/keep"}]"#,
        ],
    );
    let class = get(&cluster, &["aigatewayclass", "litellm"]).unwrap();
    assert!(
        class["metadata"]["finalizers"]
            .to_string()
            .contains(CLASS_FINALIZER),
        "{class}"
    );

    // The rollback: our operator stops.
    assert_eq!(operator.terminate(), Some(0), "{}", operator.log());

    // Step 2 of the migration guide's rollback, as documented.
    let rollback = documented(MIGRATION_HOW_TO, "Roll back");
    let step = |prefix: &str| -> String {
        let found: Vec<&String> = rollback.iter().filter(|c| c.starts_with(prefix)).collect();
        assert_eq!(found.len(), 1, "{prefix}: {rollback:?}");
        found[0].clone()
    };
    let audit = cluster.audit_log();
    let mark = audit.mark();
    let dry = doc_command(&cluster, &step("litellm-impl uninstall --dry-run"));
    assert!(
        dry.contains(&format!(
            "would release AiGatewayClass litellm: finalizer {CLASS_FINALIZER}"
        )),
        "{dry}"
    );
    // Gateways and routes carry no mark: which conditions are ours is the API server's
    // record of our status writes, not an annotation.
    assert!(!dry.contains("annotation"), "{dry}");
    let writes = command_writes(&audit, mark);
    assert!(
        writes.is_empty(),
        "--dry-run wrote:\n{}",
        writes_summary(&writes)
    );

    let mark = audit.mark();
    let release = rollback
        .iter()
        .find(|c| c.as_str() == "litellm-impl uninstall")
        .unwrap_or_else(|| panic!("the rollback runs litellm-impl uninstall: {rollback:?}"));
    let out = doc_command(&cluster, release);
    let writes = command_writes(&audit, mark);
    // One patch per object that carried a mark: the 2 classes.
    let released: Vec<String> = out
        .lines()
        .filter(|l| l.starts_with("released "))
        .map(str::to_owned)
        .collect();
    assert_eq!(released.len(), 2, "{out}");
    assert_eq!(writes.len(), 2, "{}", writes_summary(&writes));
    assert!(
        writes.iter().all(|e| e.verb == "patch" && e.code == 200),
        "{}",
        writes_summary(&writes)
    );

    let class = get(&cluster, &["aigatewayclass", "litellm"]).unwrap();
    assert_eq!(
        class["metadata"]["finalizers"],
        serde_json::json!(["example.com/keep"]),
        "{class}"
    );
    let tool_class = get(&cluster, &["toolgatewayclass", "litellm"]).unwrap();
    assert!(
        tool_class["metadata"]["finalizers"].is_null(),
        "{tool_class}"
    );
    for (_, namespace, name) in AI_SAMPLES {
        let gateway = get(&cluster, &["aigateway", name, "-n", namespace]).unwrap();
        assert!(
            gateway["metadata"]["annotations"][OWNER_ANNOTATION].is_null(),
            "{gateway}"
        );
        // Nothing else: our conditions and children stay.
        assert_eq!(condition(&gateway, "Ready")["status"], "True");
        assert!(get(&cluster, &["deployment", name, "-n", namespace]).is_some());
    }

    // Idempotent: nothing left, nothing written.
    let mark = audit.mark();
    let (ok, again) = uninstall(&cluster, &[]);
    assert!(ok, "{again}");
    assert!(again.contains("nothing to release"), "{again}");
    let writes = command_writes(&audit, mark);
    assert!(writes.is_empty(), "{}", writes_summary(&writes));

    // Step 4: our operator's own objects go; the CRDs, the classes (which the Go
    // operator now serves) and the gateways stay.
    kubectl_stdin(&cluster, &["apply", "-f", "-"], FOREIGN_CRD);
    doc_command(&cluster, &step("kubectl delete"));
    for (kind, name) in [
        ("namespace", SYSTEM_NAMESPACE),
        ("clusterrole", "litellm-impl"),
        ("clusterrolebinding", "litellm-impl"),
    ] {
        assert!(
            get(&cluster, &[kind, name]).is_none(),
            "{kind} {name} is left"
        );
    }
    assert!(get(&cluster, &["aigatewayclass", "litellm"]).is_some());
    assert!(get(&cluster, &["toolgatewayclass", "litellm"]).is_some());
    for crd in served_crds().iter().chain(&unserved_crds()) {
        assert!(
            get(&cluster, &["crd", crd]).is_some(),
            "CRD {crd} was deleted"
        );
    }
    for (_, namespace, name) in AI_SAMPLES {
        assert!(get(&cluster, &["aigateway", name, "-n", namespace]).is_some());
    }

    // The other finalizer is its owner's to remove; then everything deletes at once.
    kubectl(
        &cluster,
        &[
            "patch",
            "aigatewayclass",
            "litellm",
            "--type=json",
            "-p",
            r#"[{"op":"test","path":"/metadata/finalizers/0","value":"example.com/keep"},{"op":"remove","path":"/metadata/finalizers/0"}]"#,
        ],
    );
    let mut delete = vec![
        "delete".to_owned(),
        "aigatewayclass,toolgatewayclass".to_owned(),
        "litellm".to_owned(),
        "--wait=true".to_owned(),
        "--timeout=10s".to_owned(),
    ];
    let classes_took = timed_kubectl(&cluster, &delete);
    delete = ["delete", "crd", "--wait=true", "--timeout=10s"]
        .map(str::to_owned)
        .to_vec();
    delete.extend(served_crds());
    let crds_took = timed_kubectl(&cluster, &delete);
    assert_only_served_crds_deleted(&cluster);
    let took = classes_took + crds_took;
    println!(
        "deleting the classes took {classes_took:?}, the served CRDs {crds_took:?} (kubectl's own start included)"
    );
    assert!(
        took < Duration::from_secs(10),
        "deleting the classes and CRDs took {took:?}"
    );
}

/// Without the CRD of a kind, `uninstall` says so and goes on; a foreign controller's
/// marks are never touched.
#[test]
fn real_cluster_uninstall_skips_a_kind_that_is_not_installed() {
    let _one_at_a_time = RealCluster::exclusive();
    let cluster = RealCluster::start().unwrap();
    let crds = workspace().join("deploy/crds");
    for file in [
        "aigateways.runtime.agentic-layer.ai.yaml",
        "aigatewayclasses.runtime.agentic-layer.ai.yaml",
    ] {
        kubectl(
            &cluster,
            &[
                "apply",
                "--server-side",
                "-f",
                crds.join(file).to_str().unwrap(),
            ],
        );
    }
    cluster.wait_crds_established().unwrap();
    kubectl_stdin(
        &cluster,
        &["apply", "-f", "-"],
        &format!(
            "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: AiGatewayClass\nmetadata:\n  name: theirs\n  finalizers: [{CLASS_FINALIZER}]\nspec:\n  controller: example.com/theirs\n"
        ),
    );
    let (ok, out) = uninstall(&cluster, &[]);
    assert!(ok, "{out}");
    for resource in ["toolgatewayclasses", "toolgateways", "toolroutes"] {
        assert!(
            out.contains(&format!(
                "{resource}.runtime.agentic-layer.ai: not installed, skipped"
            )),
            "{out}"
        );
    }
    assert!(out.contains("nothing to release"), "{out}");
    let theirs = get(&cluster, &["aigatewayclass", "theirs"]).unwrap();
    assert_eq!(
        theirs["metadata"]["finalizers"],
        serde_json::json!([CLASS_FINALIZER])
    );
}

// ---------------------------------------------------------------------------------------
// The Helm chart
// ---------------------------------------------------------------------------------------

fn helm_command(cluster: &RealCluster, args: &[&str]) -> Command {
    let home = cluster.dir().join("helm-home");
    let mut command = Command::new(helm_binary());
    command
        .args(args)
        .env("KUBECONFIG", cluster.kubeconfig())
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"));
    command
}

fn chart() -> String {
    workspace()
        .join("deploy/helm")
        .to_string_lossy()
        .into_owned()
}

/// `helm template` of the chart in `chart` with the release's values: what helm
/// installs.
fn rendered(cluster: &RealCluster, chart: &Path) -> Vec<Value> {
    let chart = chart.to_string_lossy();
    let args = ["template", RELEASE, &chart, "-n", SYSTEM_NAMESPACE];
    let out = helm_command(cluster, &args).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    serde_saphyr::from_multiple::<Value>(&String::from_utf8_lossy(&out.stdout))
        .unwrap()
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

fn find_rendered<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("the chart renders no {kind} {name}"))
}

/// The LiteLLM image the chart passes on by default.
fn default_litellm_image() -> String {
    litellm_impl_cli::bundle::helm::default_values()["litellm"]["image"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The next release of the chart, as a reader would have it: a copy of `deploy/helm`
/// under `<dir>/deploy/helm` with a new appVersion (so a new operator image) and a new
/// default LiteLLM image, every other file as generated. The copy's directory is where
/// the documented commands then run.
fn next_chart(dir: &Path, app_version: &str, litellm_image: &str) -> PathBuf {
    let root = dir.join("next");
    let chart = root.join("deploy/helm");
    let source = workspace().join("deploy/helm");
    let old_image = default_litellm_image();
    for entry in walk(&source) {
        let relative = entry.strip_prefix(&source).unwrap();
        let target = chart.join(relative);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        let mut text = std::fs::read_to_string(&entry).unwrap();
        text = text.replace(&old_image, litellm_image);
        if relative == Path::new("Chart.yaml") {
            let version = env!("CARGO_PKG_VERSION");
            text = text.replace(
                &format!("appVersion: \"{version}\""),
                &format!("appVersion: \"{app_version}\""),
            );
            assert!(text.contains(app_version), "{text}");
        }
        std::fs::write(target, text).unwrap();
    }
    root
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// The operator Deployment's `--NAME=...` arguments.
fn operator_args(deployment: &Value) -> Vec<String> {
    deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect()
}

/// Install, upgrade and uninstall with the real helm, each with the how-to's commands:
/// the samples become Ready under the chart's operator; the next chart (a new operator
/// image and a new default LiteLLM image) keeps every gateway served without a write on
/// the gateway side and takes the new default; uninstalling (through the pre-delete
/// hook) and deleting the served CRDs completes within 30 s, leaves nothing of ours
/// behind, and leaves agent-runtime-operator's CRDs alone.
#[test]
fn real_cluster_helm_install_upgrade_uninstall() {
    let _one_at_a_time = RealCluster::exclusive();
    let cluster = RealCluster::start().unwrap();
    // As on a cluster with agent-runtime-operator.
    kubectl_stdin(&cluster, &["apply", "-f", "-"], FOREIGN_CRD);
    let install = documented(HELM_HOW_TO, "Install");
    assert_eq!(install.len(), 3, "{install:?}");
    // The namespace, as documented.
    doc_command(&cluster, &install[0]);
    doc_command(&cluster, &install[1]);
    let chart = chart();

    // A wrong value is refused by helm install, naming it; nothing is installed.
    let values = cluster.dir().join("wrong-values.yaml");
    std::fs::write(&values, "replicas: \"two\"\n").unwrap();
    let output = helm_command(
        &cluster,
        &[
            "install",
            RELEASE,
            &chart,
            "-n",
            SYSTEM_NAMESPACE,
            "-f",
            values.to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    assert!(!output.status.success(), "{}", text(&output));
    let refused = text(&output);
    println!("helm install with replicas: \"two\":\n{refused}");
    assert!(
        refused.contains("at '/replicas': got string, want integer"),
        "{refused}"
    );
    assert!(
        get(
            &cluster,
            &["deployment", "litellm-impl", "-n", SYSTEM_NAMESPACE]
        )
        .is_none()
    );

    // Install as documented: CRDs from crds/, then the operator; its pods (kwok) pass
    // "restricted".
    let started = Instant::now();
    doc_command(&cluster, &install[2]);
    let deployment = eventually(
        "the operator's two pods to run",
        Duration::from_secs(120),
        String::new,
        || {
            let deployment = get(
                &cluster,
                &["deployment", "litellm-impl", "-n", SYSTEM_NAMESPACE],
            )?;
            let image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()?
                .to_owned();
            (running_operator_pods(&cluster, &image).len() == 2).then_some(deployment)
        },
    );
    println!(
        "install until both operator pods ran: {:?}",
        started.elapsed()
    );
    let image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_owned();
    let pods = running_operator_pods(&cluster, &image);
    assert_eq!(pods.len(), 2, "{pods:?}");
    let mut operator = operator_for_pod(&cluster, &deployment, &pods[0]);
    let first_pod = pods[0].clone();
    apply_samples(&cluster);
    wait_samples_ready(&cluster, &|| operator.log());
    eventually(
        "the operator to hold the Lease",
        Duration::from_secs(30),
        String::new,
        || (lease_holder(&cluster).as_deref() == Some(first_pod.as_str())).then_some(()),
    );
    let forbidden: Vec<AuditEvent> = cluster
        .audit_log()
        .since(Default::default())
        .unwrap()
        .into_iter()
        .filter(|e| e.user == OPERATOR_USER && e.code == 403)
        .collect();
    assert!(
        forbidden.is_empty(),
        "the chart's RBAC refused:\n{}",
        writes_summary(&forbidden)
    );
    let gateways = (AI_SAMPLES.len() + tool_samples().len()) as f64;

    // Upgrade as documented, to the next chart: the served CRDs server-side first (Helm
    // created them and never upgrades crds/), then helm upgrade. The Deployment rolls;
    // our process follows its pod.
    let new_version = "0.1.0-upgrade";
    let new_litellm = "ghcr.io/berriai/litellm-non_root:v1.108.99-next";
    let next = next_chart(cluster.dir(), new_version, new_litellm);
    let upgrade = documented(HELM_HOW_TO, "Upgrade");
    assert_eq!(upgrade.len(), 2, "{upgrade:?}");
    let applied = doc_command_in(&cluster, &next, &upgrade[0]);
    assert!(applied.status.success(), "{}", text(&applied));
    for crd in served_crds() {
        assert!(
            text(&applied).contains(&format!(
                "customresourcedefinition.apiextensions.k8s.io/{crd} serverside-applied"
            )),
            "the documented CRD upgrade applies {crd}"
        );
    }
    for crd in unserved_crds() {
        assert!(
            !text(&applied).contains(&crd),
            "the documented CRD upgrade applies agent-runtime-operator's {crd}"
        );
    }
    // Whatever the CRD apply set off is done before the mark.
    wait_reconciled(&operator, gateways);
    let (uids, ips) = children(&cluster);
    let audit = cluster.audit_log();
    let mark = audit.mark();
    let upgraded = doc_command_in(&cluster, &next, &upgrade[1]);
    assert!(upgraded.status.success(), "{}", text(&upgraded));
    let upgraded = get(
        &cluster,
        &["deployment", "litellm-impl", "-n", SYSTEM_NAMESPACE],
    )
    .unwrap();
    let new_image = upgraded["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(new_image.ends_with(new_version), "{new_image}");
    // The new chart's default LiteLLM image is the operator's own default: no --image.
    // (`--reuse-values` would have kept the old default and passed it as if chosen.)
    let args = operator_args(&upgraded);
    assert!(
        !args.iter().any(|a| a.starts_with("--image=")),
        "the old default LiteLLM image is pinned after the upgrade: {args:?}"
    );
    let new_pod = eventually(
        "a Running pod with the new image",
        Duration::from_secs(60),
        String::new,
        || {
            running_operator_pods(&cluster, &new_image)
                .into_iter()
                .next()
        },
    );
    let mut new_operator = operator_for_pod(&cluster, &upgraded, &new_pod);
    eventually(
        "the old operator pod to go",
        Duration::from_secs(60),
        String::new,
        || (!pod_alive(&cluster, &first_pod)).then_some(()),
    );
    assert_eq!(operator.terminate(), Some(0), "{}", operator.log());
    eventually(
        "the new operator to take the Lease",
        Duration::from_secs(60),
        String::new,
        || (lease_holder(&cluster).as_deref() == Some(new_pod.as_str())).then_some(()),
    );
    wait_samples_ready(&cluster, &|| new_operator.log());
    // Its first pass over every gateway is over, and nothing is in flight.
    let reconciles = wait_reconciled(&new_operator, gateways);
    println!("the new leader ran {reconciles} reconciles for {gateways} gateways");
    let writes = audit.writes_since(mark).unwrap();
    let gateway_side: Vec<AuditEvent> = writes
        .iter()
        .filter(|e| {
            (e.user == OPERATOR_USER && e.resource != "leases")
                || (e.verb == "delete"
                    && e.namespace != SYSTEM_NAMESPACE
                    && !e.namespace.is_empty())
        })
        .cloned()
        .collect();
    assert!(
        gateway_side.is_empty(),
        "gateway-side writes during the upgrade:\n{}",
        writes_summary(&gateway_side)
    );
    let (uids_after, ips_after) = children(&cluster);
    assert_eq!(uids_after, uids, "a child was replaced");
    assert_eq!(ips_after, ips, "a Service's ClusterIP changed");
    assert!(!uids.is_empty());
    assert!(
        operator_alive(&mut new_operator),
        "the new operator exited:\n{}",
        new_operator.log()
    );

    // Uninstall as documented. The only Node is tainted, so the hook's Job pod waits,
    // and the test runs its command as the Job's ServiceAccount.
    let uninstall = documented(HELM_HOW_TO, "Uninstall");
    assert_eq!(uninstall.len(), 4, "{uninstall:?}");
    kubectl(
        &cluster,
        &[
            "taint",
            "node",
            "kwok-node-0",
            "aigateway.test/hold=hook:NoSchedule",
        ],
    );
    let started = Instant::now();
    let helm_log = cluster.dir().join("helm-uninstall.log");
    let mut sh = Command::new("sh");
    let home = cluster.dir().join("helm-home");
    let mut path = doc_path_dirs();
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    sh.arg("-c")
        .arg(&uninstall[0])
        .current_dir(&next)
        .env("PATH", std::env::join_paths(path).unwrap())
        .env("KUBECONFIG", cluster.kubeconfig())
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"));
    let mut uninstalling = Process::spawn(sh, helm_log);
    let job = eventually(
        "the pre-delete hook's Job",
        Duration::from_secs(60),
        String::new,
        || {
            if let Some(status) = uninstalling.child.try_wait().unwrap() {
                panic!(
                    "helm uninstall exited ({status}) before its hook ran:\n{}",
                    uninstalling.log()
                );
            }
            get(
                &cluster,
                &["job", "litellm-impl-uninstall", "-n", SYSTEM_NAMESPACE],
            )
        },
    );
    // The hook's objects are the chart's.
    let chart_objects = rendered(&cluster, &next.join("deploy/helm"));
    let chart_job = find_rendered(&chart_objects, "Job", "litellm-impl-uninstall");
    for field in ["serviceAccountName", "securityContext", "restartPolicy"] {
        assert_eq!(
            job["spec"]["template"]["spec"][field], chart_job["spec"]["template"]["spec"][field],
            "{field}"
        );
    }
    for field in ["args", "image", "securityContext"] {
        assert_eq!(
            job["spec"]["template"]["spec"]["containers"][0][field],
            chart_job["spec"]["template"]["spec"]["containers"][0][field],
            "{field}"
        );
    }
    // The hook's RBAC: each object's rules, or subjects and roleRef, as rendered.
    for (kind, fields) in [
        ("ClusterRole", &["rules"][..]),
        ("Role", &["rules"]),
        ("ClusterRoleBinding", &["subjects", "roleRef"]),
        ("RoleBinding", &["subjects", "roleRef"]),
    ] {
        let args = [
            &kind.to_lowercase(),
            "litellm-impl-uninstall",
            "-n",
            SYSTEM_NAMESPACE,
        ];
        let live = get(&cluster, &args).unwrap();
        let chart = find_rendered(&chart_objects, kind, "litellm-impl-uninstall");
        for field in fields {
            assert_eq!(live[field], chart[field], "{kind} {field}");
        }
    }
    let mark = audit.mark();
    let hook_pod = format!("{}-hook", job["metadata"]["name"].as_str().unwrap());
    let mut hook = container_command(
        &cluster,
        &job["spec"]["template"]["spec"],
        &hook_pod,
        SYSTEM_NAMESPACE,
        cluster.dir().join("uninstall-hook.log"),
        &[],
        None,
    );
    // The kubelet's part for the operator: its container stops once the hook scaled
    // the Deployment to zero. A kubelet stops it before the pod object goes, which is
    // what the hook waits for; kwok removes a pod at once, so the test stops our process
    // as soon as the API server has answered the hook's scale request.
    let hook_user = "system:serviceaccount:ai-gateway-litellm-system:litellm-impl-uninstall";
    let status = loop {
        if let Some(status) = hook.child.try_wait().unwrap() {
            break status;
        }
        if operator_alive(&mut new_operator)
            && audit.since(mark).unwrap().iter().any(|e| {
                e.user == hook_user
                    && e.resource == "deployments"
                    && e.subresource == "scale"
                    && e.code == 200
            })
        {
            assert_eq!(new_operator.terminate(), Some(0), "{}", new_operator.log());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let hook_log = hook.log();
    assert!(
        status.success(),
        "the hook's command failed ({status}):\n{hook_log}"
    );
    assert!(
        !operator_alive(&mut new_operator),
        "the operator still runs:\n{hook_log}"
    );
    assert!(
        hook_log.contains(&format!(
            "released AiGatewayClass litellm: finalizer {CLASS_FINALIZER}"
        )),
        "{hook_log}"
    );
    let events = audit.since(mark).unwrap();
    let refused: Vec<&AuditEvent> = events
        .iter()
        .filter(|e| e.user == hook_user && e.code == 403)
        .collect();
    assert!(refused.is_empty(), "the hook's RBAC refused:\n{refused:?}");
    // The hook stopped the operator before it released anything: no write of the
    // operator's after the hook's first release.
    let first_release = events
        .iter()
        .position(|e| e.user == hook_user && e.verb == "patch" && e.resource.ends_with("classes"))
        .expect("the hook released a class finalizer");
    let late: Vec<AuditEvent> = events[first_release..]
        .iter()
        .filter(|e| e.user == OPERATOR_USER && e.is_write() && e.resource != "leases")
        .cloned()
        .collect();
    assert!(
        late.is_empty(),
        "the operator wrote after the hook released:\n{}",
        writes_summary(&late)
    );
    let scaled = get(
        &cluster,
        &["deployment", "litellm-impl", "-n", SYSTEM_NAMESPACE],
    )
    .unwrap();
    assert_eq!(
        scaled["spec"]["replicas"], 0,
        "the hook scaled the operator to zero"
    );
    assert!(
        hook_log.contains("the operator's pods are gone"),
        "{hook_log}"
    );
    // The command succeeded: the Job's pod may run (kwok completes it), helm goes on.
    kubectl(
        &cluster,
        &["taint", "node", "kwok-node-0", "aigateway.test/hold-"],
    );
    let status = uninstalling
        .wait(Duration::from_secs(120))
        .expect("helm uninstall to finish");
    assert!(
        status.success(),
        "helm uninstall failed:\n{}",
        uninstalling.log()
    );
    let helm_took = started.elapsed();
    // Helm keeps the classes (shared with whatever serves them after us), without our
    // finalizer now.
    for kind in ["aigatewayclass", "toolgatewayclass"] {
        let class = get(&cluster, &[kind, "litellm"]).expect("the class is kept");
        assert!(
            !class["metadata"]["finalizers"]
                .to_string()
                .contains(CLASS_FINALIZER),
            "{class}"
        );
    }
    // The gateways first, their children collected, then the served CRDs.
    let deletions_started = Instant::now();
    for command in &uninstall[1..] {
        doc_command(&cluster, command);
    }
    let deletions_took = deletions_started.elapsed();
    assert!(
        children(&cluster).0.is_empty(),
        "the documented wait left children: {:?}",
        children(&cluster).0.keys().collect::<Vec<_>>()
    );
    assert_only_served_crds_deleted(&cluster);
    let took = helm_took + deletions_took;
    println!(
        "helm uninstall (with the hook) took {helm_took:?}; deleting the gateways, waiting for their children and deleting the served CRDs {deletions_took:?} (each command with its own start)"
    );
    assert!(
        took < Duration::from_secs(30),
        "uninstall took {took:?}:\n{}",
        uninstalling.log()
    );

    // Nothing left: not ours, not the hook's (the children were checked above).
    // (`-n` is ignored for the cluster-scoped kinds.)
    for (kind, name) in [
        ("clusterrole", "litellm-impl"),
        ("clusterrole", "litellm-impl-uninstall"),
        ("clusterrolebinding", "litellm-impl-uninstall"),
        ("deployment", "litellm-impl"),
        ("job", "litellm-impl-uninstall"),
        ("serviceaccount", "litellm-impl-uninstall"),
        ("role", "litellm-impl-uninstall"),
        ("rolebinding", "litellm-impl-uninstall"),
    ] {
        assert!(
            get(&cluster, &[kind, name, "-n", SYSTEM_NAMESPACE]).is_none(),
            "{kind} {name} is left"
        );
    }
}

fn operator_alive(process: &mut Process) -> bool {
    process.child.try_wait().unwrap().is_none()
}

/// A cluster migrating from the Go operator: its `litellm` classes exist, `helm install`
/// refuses to take them over, and the how-to's adoption commands let it. An upgrade that
/// drops a kind whose class still carries our finalizer is refused with the way out, and
/// the how-to's steps then succeed; the classes stay through the upgrade and through
/// `helm uninstall`.
#[test]
fn real_cluster_helm_adopts_existing_classes_and_refuses_to_drop_a_served_kind() {
    let _one_at_a_time = RealCluster::exclusive();
    let cluster = RealCluster::start().unwrap();
    let crds = workspace().join("deploy/helm/crds");
    kubectl(
        &cluster,
        &["apply", "--server-side", "-f", crds.to_str().unwrap()],
    );
    cluster.wait_crds_established().unwrap();
    for class in ["aigatewayclass.yaml", "toolgatewayclass.yaml"] {
        kubectl(&cluster, &["apply", "-f", &sample_path(class)]);
    }

    // Install as documented: refused over the Go operator's classes.
    let install = documented(HELM_HOW_TO, "Install");
    doc_command(&cluster, &install[0]);
    doc_command(&cluster, &install[1]);
    let refused = doc_command_in(&cluster, &workspace(), &install[2]);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains("exists and cannot be imported into the current release"),
        "{}",
        text(&refused)
    );
    // Adopted as documented, then installed.
    for command in documented(HELM_HOW_TO, "Classes that exist already") {
        doc_command(&cluster, &command);
    }
    for kind in ["aigatewayclass", "toolgatewayclass"] {
        let class = get(&cluster, &[kind, "litellm"]).unwrap();
        assert_eq!(
            class["metadata"]["annotations"]["helm.sh/resource-policy"], "keep",
            "{class}"
        );
        assert_eq!(
            class["metadata"]["annotations"]["meta.helm.sh/release-name"],
            RELEASE
        );
    }

    // As if our operator served a ToolGateway: its finalizer on the class.
    kubectl(
        &cluster,
        &[
            "patch",
            "toolgatewayclass",
            "litellm",
            "--type=merge",
            "-p",
            &format!(r#"{{"metadata":{{"finalizers":["{CLASS_FINALIZER}"]}}}}"#),
        ],
    );
    let fewer = documented(HELM_HOW_TO, "Serving fewer kinds or fewer namespaces");
    let upgrade = fewer.last().unwrap();
    assert!(upgrade.starts_with("helm upgrade"), "{fewer:?}");
    let refused = doc_command_in(&cluster, &workspace(), upgrade);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains(&format!(
            "gatewayKinds drops tool-gateway, but ToolGatewayClass litellm still carries the operator's finalizer {CLASS_FINALIZER}"
        )),
        "{}",
        text(&refused)
    );
    let deployment = get(
        &cluster,
        &["deployment", "litellm-impl", "-n", SYSTEM_NAMESPACE],
    )
    .unwrap();
    assert!(
        !operator_args(&deployment)
            .iter()
            .any(|a| a.starts_with("--gateway-kinds")),
        "the refused upgrade changed nothing"
    );

    // The documented way: stop, release, upgrade.
    for command in &fewer {
        doc_command(&cluster, command);
    }
    let deployment = get(
        &cluster,
        &["deployment", "litellm-impl", "-n", SYSTEM_NAMESPACE],
    )
    .unwrap();
    assert!(
        operator_args(&deployment).contains(&"--gateway-kinds=ai-gateway".to_owned()),
        "{:?}",
        operator_args(&deployment)
    );
    assert_eq!(deployment["spec"]["replicas"], 2, "helm scaled it back up");
    let tool_class = get(&cluster, &["toolgatewayclass", "litellm"]).expect("kept");
    assert!(
        tool_class["metadata"]["finalizers"].is_null(),
        "{tool_class}"
    );

    // helm uninstall keeps both classes (kwok completes the hook's Job).
    let uninstall = documented(HELM_HOW_TO, "Uninstall");
    doc_command(&cluster, &uninstall[0]);
    for kind in ["aigatewayclass", "toolgatewayclass"] {
        assert!(
            get(&cluster, &[kind, "litellm"]).is_some(),
            "{kind} litellm was deleted"
        );
    }
    assert!(
        get(
            &cluster,
            &["deployment", "litellm-impl", "-n", SYSTEM_NAMESPACE]
        )
        .is_none()
    );
}
