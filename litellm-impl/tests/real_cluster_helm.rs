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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aigateway_testkit::real_cluster::{AuditEvent, RealCluster};
use serde_json::Value;

const SYSTEM_NAMESPACE: &str = "ai-gateway-litellm-system";
const OPERATOR_USER: &str = "system:serviceaccount:ai-gateway-litellm-system:litellm-impl";
const RELEASE: &str = "litellm-impl";
const CLASS_FINALIZER: &str = "aigateway.agentic-layer.ai/gateway-exists";
const OWNER_ANNOTATION: &str = "aigateway.agentic-layer.ai/conditions-owner";

/// The upstream AiGateway samples: (file, namespace, gateway).
const AI_SAMPLES: &[(&str, &str, &str)] = &[
    ("aigateway.yaml", "ai-gateway", "ai-gateway"),
    (
        "aigateway-guarded.yaml",
        "ai-gateway-guarded",
        "ai-gateway-pii",
    ),
    (
        "aigateway-with-patch.yaml",
        "ai-gateway-patched",
        "ai-gateway",
    ),
];
/// The Go operator's ToolGateway samples: (file, namespace, gateway, route namespace, route).
const TOOL_SAMPLES: &[(&str, &str, &str, &str, &str)] = &[
    (
        "toolgateway.yaml",
        "tool-gateway",
        "tool-gateway",
        "tool-gateway-routes",
        "echo",
    ),
    (
        "toolgateway-guarded.yaml",
        "tool-gateway-guarded",
        "tool-gateway-guarded",
        "tool-gateway-guarded-routes",
        "echo-guarded",
    ),
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn sample(file: &str) -> String {
    workspace()
        .join("aigateway-api/tests/fixtures/samples")
        .join(file)
        .to_string_lossy()
        .into_owned()
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

fn eventually<T>(what: &str, limit: Duration, check: impl FnMut() -> Option<T>) -> T {
    eventually_or(what, limit, String::new, check)
}

/// [`eventually`], with `context()` in the failure message.
fn eventually_or<T>(
    what: &str,
    limit: Duration,
    context: impl Fn() -> String,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn condition<'a>(object: &'a Value, type_: &str) -> &'a Value {
    object["status"]["conditions"]
        .as_array()
        .and_then(|list| list.iter().find(|c| c["type"] == type_))
        .unwrap_or(&Value::Null)
}

fn api_key_secret(namespace: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: api-key-secrets\n  namespace: {namespace}\ntype: Opaque\nstringData:\n  OPENAI_API_KEY: key-one\n"
    )
}

/// Applies the upstream AiGateway and ToolGateway samples (the classes come from the
/// install).
fn apply_samples(cluster: &RealCluster) {
    for (file, namespace, _) in AI_SAMPLES {
        kubectl(cluster, &["apply", "--server-side", "-f", &sample(file)]);
        kubectl_stdin(cluster, &["apply", "-f", "-"], &api_key_secret(namespace));
    }
    for (file, ..) in TOOL_SAMPLES {
        kubectl(cluster, &["apply", "--server-side", "-f", &sample(file)]);
    }
}

/// Waits until every sample gateway is Ready and every route has its URL.
fn wait_samples_ready(cluster: &RealCluster, log: &dyn Fn() -> String) {
    let gateways = AI_SAMPLES
        .iter()
        .map(|(_, ns, name)| ("aigateway", *ns, *name))
        .chain(
            TOOL_SAMPLES
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
        eventually_or(&what, Duration::from_secs(120), context, || {
            let gateway = get(cluster, &[kind, name, "-n", namespace])?;
            (condition(&gateway, "Ready")["status"] == "True").then_some(())
        });
    }
    for (_, _, _, namespace, name) in TOOL_SAMPLES {
        eventually(
            &format!("ToolRoute {namespace}/{name} to get its URL"),
            Duration::from_secs(60),
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
}

impl Process {
    fn spawn(mut command: Command, log: PathBuf) -> Self {
        let file = std::fs::File::create(&log).unwrap();
        let child = command
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Process { child, log }
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
            Some((flag @ ("--health-probe-bind-address" | "--metrics-bind-address"), _)) => {
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
    let mut extra = Vec::new();
    if !args.contains(&"--leader-elect=false") {
        extra.push("--leader-elect=true".into());
    }
    container_command(
        cluster,
        pod_spec,
        pod,
        SYSTEM_NAMESPACE,
        cluster.dir().join(format!("operator-{pod}.log")),
        &extra,
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
        .chain(TOOL_SAMPLES.iter().map(|(_, ns, ..)| *ns));
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

fn summary(events: &[AuditEvent]) -> String {
    events
        .iter()
        .map(|e| {
            format!(
                "{} {} {} {}/{} {} ({})",
                e.user, e.verb, e.resource, e.namespace, e.name, e.subresource, e.code
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Our CRDs, by name.
fn our_crds() -> Vec<String> {
    aigateway_api::crds::all()
        .into_iter()
        .map(|crd| crd.metadata.name.unwrap())
        .collect()
}

/// Deletes our CRDs and waits (at most `limit`) until they are gone; the time it took.
fn delete_crds(cluster: &RealCluster, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut args = vec!["delete", "crd", "--wait=true"];
    let timeout = format!("--timeout={}s", limit.as_secs());
    args.push(&timeout);
    let crds = our_crds();
    args.extend(crds.iter().map(String::as_str));
    kubectl(cluster, &args);
    for crd in &crds {
        assert!(
            get(cluster, &["crd", crd]).is_none(),
            "CRD {crd} is still there"
        );
    }
    started.elapsed()
}

// ---------------------------------------------------------------------------------------
// litellm-impl uninstall (issue 21: rollback and uninstall never hang)
// ---------------------------------------------------------------------------------------

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

/// The documented rollback: with our operator scaled to zero, `litellm-impl uninstall`
/// releases exactly our finalizers and marks (a finalizer someone else holds stays),
/// writes nothing the second time, and deleting the classes and the CRDs then completes
/// within 10 s.
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

    let audit = cluster.audit_log();
    let mark = audit.mark();
    let (ok, dry) = uninstall(&cluster, &["--dry-run"]);
    assert!(ok, "{dry}");
    assert!(
        dry.contains(&format!(
            "would release AiGatewayClass litellm: finalizer {CLASS_FINALIZER}"
        )),
        "{dry}"
    );
    assert!(
        dry.contains(&format!(
            "would release ToolRoute tool-gateway-routes/echo: annotation {OWNER_ANNOTATION}"
        )),
        "{dry}"
    );
    let writes = audit.writes_since(mark).unwrap();
    assert!(writes.is_empty(), "--dry-run wrote:\n{}", summary(&writes));

    let mark = audit.mark();
    let (ok, out) = uninstall(&cluster, &[]);
    assert!(ok, "{out}");
    let writes = audit.writes_since(mark).unwrap();
    // One patch per object that carried a mark: 2 classes, 5 gateways, 2 routes.
    let released: Vec<String> = out
        .lines()
        .filter(|l| l.starts_with("released "))
        .map(str::to_owned)
        .collect();
    assert_eq!(released.len(), 9, "{out}");
    assert_eq!(writes.len(), 9, "{}", summary(&writes));
    assert!(
        writes.iter().all(|e| e.verb == "patch" && e.code == 200),
        "{}",
        summary(&writes)
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
    let writes = audit.writes_since(mark).unwrap();
    assert!(writes.is_empty(), "{}", summary(&writes));

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
    let started = Instant::now();
    kubectl(
        &cluster,
        &[
            "delete",
            "aigatewayclass,toolgatewayclass",
            "litellm",
            "--wait=true",
            "--timeout=10s",
        ],
    );
    let took = started.elapsed() + delete_crds(&cluster, Duration::from_secs(10));
    println!("deleting the classes and the CRDs took {took:?}");
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

fn helm_binary() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        let script = workspace().join("scripts/helm");
        let build = Command::new("bash")
            .arg(&script)
            .arg("build")
            .output()
            .unwrap();
        assert!(
            build.status.success(),
            "scripts/helm build failed:\n{}",
            text(&build)
        );
        let env = Command::new("bash")
            .arg(&script)
            .arg("env")
            .output()
            .unwrap();
        PathBuf::from(String::from_utf8(env.stdout).unwrap().trim())
    })
}

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

fn helm(cluster: &RealCluster, args: &[&str]) -> String {
    let output = helm_command(cluster, args).output().unwrap();
    assert!(
        output.status.success(),
        "helm {} failed:\n{}",
        args.join(" "),
        text(&output)
    );
    text(&output)
}

fn chart() -> String {
    workspace()
        .join("deploy/helm")
        .to_string_lossy()
        .into_owned()
}

/// `helm template` of the chart with the release's values: what helm installs.
fn rendered(cluster: &RealCluster, extra: &[&str]) -> Vec<Value> {
    let chart = chart();
    let mut args = vec!["template", RELEASE, chart.as_str(), "-n", SYSTEM_NAMESPACE];
    args.extend(extra);
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

/// Install, upgrade and uninstall with the real helm: the samples become Ready under
/// the chart's operator; a new operator image keeps every gateway served without a
/// write on the gateway side; uninstalling (through the pre-delete hook) and deleting the
/// CRDs completes within 30 s and leaves nothing behind.
#[test]
fn real_cluster_helm_install_upgrade_uninstall() {
    let _one_at_a_time = RealCluster::exclusive();
    let cluster = RealCluster::start().unwrap();
    kubectl(&cluster, &["create", "namespace", SYSTEM_NAMESPACE]);
    kubectl(
        &cluster,
        &[
            "label",
            "namespace",
            SYSTEM_NAMESPACE,
            "pod-security.kubernetes.io/enforce=restricted",
        ],
    );
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

    // Install: CRDs from crds/, then the operator; its pods (kwok) pass "restricted".
    let started = Instant::now();
    helm(
        &cluster,
        &[
            "install",
            RELEASE,
            &chart,
            "-n",
            SYSTEM_NAMESPACE,
            "--wait",
            "--timeout=120s",
        ],
    );
    println!("helm install --wait took {:?}", started.elapsed());
    let deployment = get(
        &cluster,
        &["deployment", "litellm-impl", "-n", SYSTEM_NAMESPACE],
    )
    .unwrap();
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
        summary(&forbidden)
    );

    // Upgrade as the how-to says: the CRDs server-side first (Helm created them and
    // never upgrades crds/), then a new operator image: the Deployment rolls, our
    // process follows its pod.
    let crds = workspace().join("deploy/helm/crds");
    kubectl(
        &cluster,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=litellm-impl-crds",
            "-f",
            crds.to_str().unwrap(),
        ],
    );
    std::thread::sleep(Duration::from_secs(3));
    let (uids, ips) = children(&cluster);
    let audit = cluster.audit_log();
    let mark = audit.mark();
    let new_tag = "0.1.0-upgrade";
    helm(
        &cluster,
        &[
            "upgrade",
            RELEASE,
            &chart,
            "-n",
            SYSTEM_NAMESPACE,
            "--reuse-values",
            "--set",
            &format!("image.tag={new_tag}"),
            "--wait",
            "--timeout=120s",
        ],
    );
    let upgraded = get(
        &cluster,
        &["deployment", "litellm-impl", "-n", SYSTEM_NAMESPACE],
    )
    .unwrap();
    let new_image = upgraded["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(new_image.ends_with(new_tag), "{new_image}");
    let new_pod = eventually(
        "a Running pod with the new image",
        Duration::from_secs(60),
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
        || (!pod_alive(&cluster, &first_pod)).then_some(()),
    );
    assert_eq!(operator.terminate(), Some(0), "{}", operator.log());
    eventually(
        "the new operator to take the Lease",
        Duration::from_secs(60),
        || (lease_holder(&cluster).as_deref() == Some(new_pod.as_str())).then_some(()),
    );
    wait_samples_ready(&cluster, &|| new_operator.log());
    // Its first pass over every gateway, then 10 s of steady state.
    std::thread::sleep(Duration::from_secs(13));
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
        summary(&gateway_side)
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

    // Uninstall. The only Node is tainted, so the hook's Job pod waits, and the test
    // runs its command as the Job's ServiceAccount.
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
    let mut uninstalling = Process::spawn(
        helm_command(
            &cluster,
            &[
                "uninstall",
                RELEASE,
                "-n",
                SYSTEM_NAMESPACE,
                "--wait",
                "--timeout=120s",
            ],
        ),
        helm_log,
    );
    let job = eventually("the pre-delete hook's Job", Duration::from_secs(60), || {
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
    });
    // The hook's objects are the chart's.
    let chart_objects = rendered(&cluster, &["--set", &format!("image.tag={new_tag}")]);
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
        summary(&late)
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
    let crds_took = delete_crds(&cluster, Duration::from_secs(30));
    let took = started.elapsed();
    println!(
        "helm uninstall (with the hook) and deleting the CRDs took {took:?} (the CRDs {crds_took:?})"
    );
    assert!(
        took < Duration::from_secs(30),
        "uninstall took {took:?}:\n{}",
        uninstalling.log()
    );

    // Nothing left: not ours, not the hook's, no gateway child (garbage collected).
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
    eventually(
        "the gateways' children to be garbage collected",
        Duration::from_secs(60),
        || children(&cluster).0.is_empty().then_some(()),
    );
}

fn operator_alive(process: &mut Process) -> bool {
    process.child.try_wait().unwrap().is_none()
}
