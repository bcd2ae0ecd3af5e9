//! End-to-end scenarios against a real Kubernetes control plane: kube-apiserver with
//! RBAC and an audit log, etcd, kube-controller-manager (Deployments, ReplicaSets,
//! garbage collection), kube-scheduler and kwok (a fake Node that runs pods without
//! containers), all built from Go modules by `scripts/control-plane`.
//!
//! The operator is the built `litellm-impl run` binary, authenticated as the install
//! bundle's ServiceAccount with a token from the TokenRequest API, so RBAC applies to
//! every request it makes. Each scenario starts its own control plane (about 10 s) and
//! they run one at a time.
//!
//! The first run builds the control plane (many minutes; cached under `~/.cache`).
//! Nothing here is skipped: without Go or kubectl these tests fail and say why.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use aigateway_testkit::real_cluster::{AuditEvent, RealCluster};
use common::cluster::*;
use common::workspace;
use serde_json::Value;

const SERVICE_ACCOUNT: &str = "litellm-impl";

/// kubectl against one control plane, as admin.
struct Kubectl<'a> {
    cluster: &'a RealCluster,
}

impl Kubectl<'_> {
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut command = self.cluster.kubectl();
        command
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = command.spawn().expect("kubectl is installed and on PATH");
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, None)
    }

    fn ok_with(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "kubectl {} failed:\n{text}",
            args.join(" ")
        );
        text
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    fn wait_crds_established(&self) {
        self.cluster.wait_crds_established().unwrap();
    }

    fn exists(&self, args: &[&str]) -> bool {
        let mut all = vec!["get"];
        all.extend(args);
        let out = self.run(&all, None);
        if out.status.success() {
            return true;
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("NotFound"),
            "kubectl get {}: {stderr}",
            args.join(" ")
        );
        false
    }
}

/// The `litellm-impl run` binary as a child process with its log in a file.
struct Operator {
    child: Child,
    log: PathBuf,
    /// Where /healthz and /readyz answer.
    admin_port: u16,
    /// Where /metrics answers (plain HTTP unless the scenario asked for
    /// `--metrics-secure`).
    metrics_port: u16,
}

impl Operator {
    /// Starts the operator with `POD_NAME=identity` (its leader-election identity).
    fn start_as(kubeconfig: &Path, log: PathBuf, extra: &[&str], identity: &str) -> Self {
        let admin_port = free_port();
        let metrics_port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_litellm-impl"));
        command
            .arg("run")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg(format!(
                "--health-probe-bind-address=127.0.0.1:{admin_port}"
            ))
            .arg(format!("--metrics-bind-address=127.0.0.1:{metrics_port}"));
        if !extra.iter().any(|a| a.starts_with("--metrics-secure")) {
            command.arg("--metrics-secure=false");
        }
        let child = command
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("AIGATEWAY_TEST_OPERATOR_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("POD_NAME", identity)
            .env_remove("KUBECONFIG")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::options().append(true).open(&log).unwrap())
            .spawn()
            .unwrap();
        Operator {
            child,
            log,
            admin_port,
            metrics_port,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("the operator exited ({status}):\n{}", self.log());
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    fn readyz(&self) -> Option<u16> {
        http_get(self.admin_port, "/readyz").map(|(code, _)| code)
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Installs the bundle as the README says: CRDs, wait for Established, then `-k deploy/`.
fn install_bundle(k: &Kubectl) {
    let deploy = workspace().join("deploy");
    k.ok(&[
        "apply",
        "--server-side",
        "-f",
        deploy.join("crds").to_str().unwrap(),
    ]);
    k.wait_crds_established();
    k.ok(&["apply", "--server-side", "-k", deploy.to_str().unwrap()]);
}

/// The bundle without our CRDs: upstream's published CRDs instead (drop-in check).
fn install_bundle_with_upstream_crds(k: &Kubectl) {
    let crds = workspace().join("aigateway-api/tests/fixtures/upstream-crds");
    for entry in std::fs::read_dir(&crds).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            k.ok(&["apply", "--server-side", "-f", path.to_str().unwrap()]);
        }
    }
    k.wait_crds_established();
    let deploy = workspace().join("deploy");
    for file in [
        "namespace.yaml",
        "rbac.yaml",
        "manager.yaml",
        "aigatewayclass.yaml",
        "toolgatewayclass.yaml",
    ] {
        k.ok(&[
            "apply",
            "--server-side",
            "-f",
            deploy.join(file).to_str().unwrap(),
        ]);
    }
}

/// Which CRDs a scenario's cluster gets.
#[derive(Clone, Copy)]
enum Crds {
    /// Ours, from `deploy/crds/` (the README's install).
    Ours,
    /// agent-runtime-operator's published ones (the drop-in case).
    Upstream,
}

/// A fresh control plane with the install bundle, whose manager Deployment is scaled to
/// zero: its pods are kwok fakes, and the operator under test is the built binary.
fn cluster_with_bundle(crds: Crds) -> RealCluster {
    let cluster = RealCluster::start().unwrap();
    let k = Kubectl { cluster: &cluster };
    match crds {
        Crds::Ours => install_bundle(&k),
        Crds::Upstream => install_bundle_with_upstream_crds(&k),
    }
    k.ok(&[
        "-n",
        SYSTEM_NAMESPACE,
        "scale",
        "deployment/litellm-impl",
        "--replicas=0",
    ]);
    cluster
}

/// The built operator, authenticated as ServiceAccount `account` of the bundle's
/// namespace, with leader-election identity `identity`.
fn start_operator(cluster: &RealCluster, account: &str, identity: &str, args: &[&str]) -> Operator {
    Operator::start_as(
        &operator_kubeconfig(cluster, account),
        cluster.dir().join(format!("operator-{identity}.log")),
        args,
        identity,
    )
}

fn apply_upstream_samples(k: &Kubectl) {
    for (file, namespace, _) in UPSTREAM_SAMPLES {
        k.ok(&[
            "apply",
            "--server-side",
            "-f",
            sample(file).to_str().unwrap(),
        ]);
        k.ok_with(
            &["apply", "-f", "-"],
            Some(&api_key_secret(namespace, "key-one")),
        );
    }
}

/// Applies the first upstream sample and its key Secret; returns the gateway's
/// namespace and name.
fn apply_first_sample(k: &Kubectl) -> (&'static str, &'static str) {
    let (file, namespace, name) = UPSTREAM_SAMPLES[0];
    k.ok(&[
        "apply",
        "--server-side",
        "-f",
        sample(file).to_str().unwrap(),
    ]);
    k.ok_with(
        &["apply", "-f", "-"],
        Some(&api_key_secret(namespace, "key-one")),
    );
    (namespace, name)
}

/// The LiteLLM config the operator rendered for gateway `namespace/name`.
fn rendered_config(k: &Kubectl, namespace: &str, name: &str) -> String {
    let config = k.json(&[
        "get",
        "configmap",
        &format!("{name}-config"),
        "-n",
        namespace,
    ]);
    config["data"]["config.yaml"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn wait_gateway_ready(k: &Kubectl, operator: &Operator, namespace: &str, name: &str) -> Value {
    eventually(
        &format!("AiGateway {namespace}/{name} to become Ready"),
        Duration::from_secs(90),
        || {
            format!(
                "gateway: {}\noperator log:\n{}",
                k.run(
                    &["get", "aigateway", name, "-n", namespace, "-o", "yaml"],
                    None
                )
                .stdout
                .iter()
                .map(|b| *b as char)
                .collect::<String>(),
                operator.log()
            )
        },
        || {
            let gateway = k.json(&["get", "aigateway", name, "-n", namespace]);
            (condition(&gateway, "Ready")["status"] == "True").then_some(gateway)
        },
    )
}

fn operator_kubeconfig(cluster: &RealCluster, account: &str) -> PathBuf {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(cluster.service_account_kubeconfig(SYSTEM_NAMESPACE, account, 3600))
        .unwrap()
}

/// The replica sets of a gateway's Deployment, by pod-template hash.
fn replica_sets(k: &Kubectl, namespace: &str, deployment: &str) -> Vec<String> {
    let sets = k.json(&["get", "replicasets", "-n", namespace]);
    let mut names: Vec<String> = sets["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|rs| {
            rs["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|owners| owners.iter().any(|o| o["name"] == deployment))
        })
        .map(|rs| rs["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

/// The operator's writes in 10 s of steady state (after 3 s for its last writes to
/// land), from the audit log.
fn steady_state_writes(cluster: &RealCluster) -> Vec<AuditEvent> {
    std::thread::sleep(Duration::from_secs(3));
    let audit = cluster.audit_log();
    let mark = audit.mark();
    std::thread::sleep(Duration::from_secs(10));
    audit
        .writes_since(mark)
        .unwrap()
        .into_iter()
        .filter(|e| e.user == OPERATOR_USER)
        .collect()
}

/// The operator never got a 403: the bundle's RBAC covers everything it did.
fn assert_never_forbidden(cluster: &RealCluster) {
    let forbidden: Vec<AuditEvent> = cluster
        .audit_log()
        .since(aigateway_testkit::real_cluster::AuditMark::default())
        .unwrap()
        .into_iter()
        .filter(|e| e.user == OPERATOR_USER && e.code == 403)
        .collect();
    assert!(
        forbidden.is_empty(),
        "forbidden requests:\n{}",
        writes_summary(&forbidden)
    );
}

#[test]
fn real_cluster_bundle_installs_and_the_operator_pods_run() {
    let _one_at_a_time = RealCluster::exclusive();
    let cluster = RealCluster::start().unwrap();
    let k = Kubectl { cluster: &cluster };
    install_bundle(&k);
    for crd in [
        "aigateways.runtime.agentic-layer.ai",
        "aigatewayclasses.runtime.agentic-layer.ai",
        "guards.runtime.agentic-layer.ai",
        "guardrailproviders.runtime.agentic-layer.ai",
    ] {
        let crd = k.json(&["get", "crd", crd]);
        assert_eq!(condition(&crd, "Established")["status"], "True", "{crd}");
    }
    // The manager's pods pass the namespace's Pod Security "restricted" admission and
    // run (kwok plays the kubelet).
    k.ok(&[
        "-n",
        SYSTEM_NAMESPACE,
        "rollout",
        "status",
        "deployment/litellm-impl",
        "--timeout=90s",
    ]);
    let pods = k.json(&["get", "pods", "-n", SYSTEM_NAMESPACE]);
    let phases: Vec<&str> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["status"]["phase"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(phases, ["Running", "Running"], "{pods}");
    println!("scenario bundle: passed");
}

#[test]
fn real_cluster_operator_as_its_service_account_reconciles_the_upstream_samples() {
    let _one_at_a_time = RealCluster::exclusive();
    let cluster = cluster_with_bundle(Crds::Ours);
    let k = Kubectl { cluster: &cluster };
    let mut operator = start_operator(
        &cluster,
        SERVICE_ACCOUNT,
        "replica-a",
        &["--leader-elect", "--lease-namespace", SYSTEM_NAMESPACE],
    );
    apply_upstream_samples(&k);
    for (_, namespace, name) in UPSTREAM_SAMPLES {
        let gateway = wait_gateway_ready(&k, &operator, namespace, name);
        let url = gateway["status"]["url"].as_str().unwrap_or_default();
        assert!(
            url.starts_with(&format!("http://{name}.{namespace}.svc.cluster.local")),
            "{gateway}"
        );
        // Ready came from the real Deployment controller: pods exist and are Ready.
        let deployment = k.json(&["get", "deployment", name, "-n", namespace]);
        assert_eq!(deployment["status"]["readyReplicas"], 1, "{deployment}");
    }
    operator.assert_running();
    assert_eq!(operator.readyz(), Some(200), "{}", operator.log());

    // Editing a gateway rolls its pods (a new ReplicaSet), and it becomes Ready again.
    let (_, namespace, name) = UPSTREAM_SAMPLES[0];
    let before = replica_sets(&k, namespace, name);
    k.ok(&[
        "patch",
        "aigateway",
        name,
        "-n",
        namespace,
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/spec/aiModels/-","value":{"provider":"openai","name":"gpt-4o"}}]"#,
    ]);
    let after_edit = eventually(
        "a new ReplicaSet after editing the gateway",
        Duration::from_secs(60),
        || operator.log(),
        || {
            let now = replica_sets(&k, namespace, name);
            (now.len() > before.len()).then_some(now)
        },
    );
    wait_gateway_ready(&k, &operator, namespace, name);

    // Rotating the gateway's Secret rolls its pods too.
    k.ok_with(
        &["apply", "-f", "-"],
        Some(&api_key_secret(namespace, "key-two")),
    );
    eventually(
        "a new ReplicaSet after rotating the Secret",
        Duration::from_secs(60),
        || operator.log(),
        || (replica_sets(&k, namespace, name).len() > after_edit.len()).then_some(()),
    );
    for (_, namespace, name) in UPSTREAM_SAMPLES {
        wait_gateway_ready(&k, &operator, namespace, name);
    }
    availability_policy_adds_and_prunes_a_budget_and_an_autoscaler(&k, &operator);
    monitoring_waits_for_prometheus_operators_crd_then_makes_a_service_monitor(&k, &operator);

    // Steady state: no write by the operator's user in 10 s, Lease renewals aside.
    let writes = steady_state_writes(&cluster);
    let (lease, other): (Vec<_>, Vec<_>) = writes.into_iter().partition(|e| e.resource == "leases");
    assert!(
        other.is_empty(),
        "the operator wrote in steady state:\n{}",
        writes_summary(&other)
    );
    assert!(
        lease
            .iter()
            .all(|e| e.name == "litellm-impl" && e.namespace == SYSTEM_NAMESPACE),
        "{}",
        writes_summary(&lease)
    );
    // The operator never got a 403: the bundle's RBAC covers everything it does.
    assert_never_forbidden(&cluster);

    // Deleting a gateway removes its children through the garbage collector.
    k.ok(&["delete", "aigateway", name, "-n", namespace, "--wait=true"]);
    eventually(
        "the deleted gateway's children to be garbage collected",
        Duration::from_secs(60),
        || operator.log(),
        || {
            let gone = !k.exists(&["deployment", name, "-n", namespace])
                && !k.exists(&["service", name, "-n", namespace])
                && !k.exists(&["configmap", &format!("{name}-config"), "-n", namespace]);
            gone.then_some(())
        },
    );

    operator.signal("TERM");
    let status = operator.wait_exit(Duration::from_secs(20));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", operator.log());
    println!("scenario operator-as-service-account: passed");
}

/// On the second sample, as the bundle's ServiceAccount: an availability policy gives
/// the gateway a PodDisruptionBudget and a HorizontalPodAutoscaler (built-in kinds,
/// validated by the real API server) controlled by the gateway, the real autoscaler
/// takes over the replicas, a hostile policy is refused in its status, and deleting the
/// policy prunes both.
fn availability_policy_adds_and_prunes_a_budget_and_an_autoscaler(
    k: &Kubectl,
    operator: &Operator,
) {
    let (_, namespace, name) = UPSTREAM_SAMPLES[1];
    let gateway = k.json(&["get", "aigateway", name, "-n", namespace]);
    let uid = gateway["metadata"]["uid"].as_str().unwrap().to_owned();
    let policy = |policy: &str, spec: &str| {
        format!(
            "apiVersion: litellm.aigateway.agentic-layer.ai/v1alpha1\nkind: LiteLLMAvailabilityPolicy\nmetadata:\n  name: {policy}\n  namespace: {namespace}\nspec:\n  targetRefs:\n  - {{group: runtime.agentic-layer.ai, kind: AiGateway, name: {name}}}\n{spec}"
        )
    };
    k.ok_with(
        &["apply", "-f", "-"],
        Some(&policy(
            "available",
            "  autoscaling: {minReplicas: 2, maxReplicas: 4}\n  disruptionBudget: {maxUnavailable: 1}\n  rollout: {maxSurge: 1, maxUnavailable: 0}\n  spreadAcrossNodes: true\n",
        )),
    );
    let controlled_by_gateway = |kind: &str| {
        let object = k.json(&["get", kind, name, "-n", namespace]);
        let owners = object["metadata"]["ownerReferences"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        owners
            .iter()
            .any(|o| o["uid"] == uid.as_str() && o["controller"] == true)
    };
    eventually(
        "a PodDisruptionBudget and a HorizontalPodAutoscaler controlled by the gateway",
        Duration::from_secs(60),
        || operator.log(),
        || {
            let made = k.exists(&["poddisruptionbudget", name, "-n", namespace])
                && k.exists(&["horizontalpodautoscaler", name, "-n", namespace])
                && controlled_by_gateway("poddisruptionbudget")
                && controlled_by_gateway("horizontalpodautoscaler");
            made.then_some(())
        },
    );
    eventually(
        "the real autoscaler to raise the Deployment to its minimum of 2",
        Duration::from_secs(90),
        || operator.log(),
        || {
            let deployment = k.json(&["get", "deployment", name, "-n", namespace]);
            (deployment["spec"]["replicas"] == 2).then_some(())
        },
    );
    let accepted = |policy: &str| {
        let object = k.json(&["get", "litellmavailabilitypolicy", policy, "-n", namespace]);
        let ancestors = object["status"]["ancestors"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        ancestors.first().and_then(|a| {
            let conditions = a["conditions"].as_array()?;
            let c = conditions.iter().find(|c| c["type"] == "Accepted")?;
            Some((
                c["status"].as_str()?.to_owned(),
                c["message"].as_str()?.to_owned(),
            ))
        })
    };
    eventually(
        "the policy to be Accepted",
        Duration::from_secs(30),
        || operator.log(),
        || accepted("available").filter(|(s, _)| s == "True"),
    );
    // The real API server refuses what the CRD's schema bounds (a huge replica count);
    // a newer, hostile policy within them on the same gateway conflicts, and the older
    // one stays in effect.
    let refused = k.run(
        &["apply", "-f", "-"],
        Some(&policy("huge", "  replicas: 100000\n")),
    );
    assert!(!refused.status.success(), "the CRD bounds replicas");
    k.ok_with(
        &["apply", "-f", "-"],
        Some(&policy(
            "hostile",
            "  resources: {limits: {memory: os.environ/X}}\n",
        )),
    );
    let (_, message) = eventually(
        "the newer policy to be refused",
        Duration::from_secs(30),
        || operator.log(),
        || accepted("hostile").filter(|(s, _)| s == "False"),
    );
    assert!(
        message.contains("available"),
        "Conflicted names the policy in effect: {message}"
    );
    k.ok(&[
        "delete",
        "litellmavailabilitypolicy",
        "hostile",
        "-n",
        namespace,
    ]);

    k.ok(&[
        "delete",
        "litellmavailabilitypolicy",
        "available",
        "-n",
        namespace,
    ]);
    eventually(
        "the budget and the autoscaler to be pruned with the policy",
        Duration::from_secs(60),
        || operator.log(),
        || {
            let gone = !k.exists(&["poddisruptionbudget", name, "-n", namespace])
                && !k.exists(&["horizontalpodautoscaler", name, "-n", namespace]);
            gone.then_some(())
        },
    );
    wait_gateway_ready(k, operator, namespace, name);
}

/// On the second sample, as the bundle's ServiceAccount: an observability policy asks
/// for a ServiceMonitor before prometheus-operator's CRDs are installed, and says why
/// there is none; once the real CRDs (from prometheus-operator's Go module) are applied,
/// the ServiceMonitor appears, controlled by the gateway, with no other change; asking
/// for a PodMonitor instead replaces it; deleting the policy prunes that.
fn monitoring_waits_for_prometheus_operators_crd_then_makes_a_service_monitor(
    k: &Kubectl,
    operator: &Operator,
) {
    let (_, namespace, name) = UPSTREAM_SAMPLES[1];
    let gateway = k.json(&["get", "aigateway", name, "-n", namespace]);
    let uid = gateway["metadata"]["uid"].as_str().unwrap().to_owned();
    k.ok_with(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: litellm.aigateway.agentic-layer.ai/v1alpha1\nkind: LiteLLMObservabilityPolicy\nmetadata:\n  name: scraped\n  namespace: {namespace}\nspec:\n  targetRefs:\n  - {{group: runtime.agentic-layer.ai, kind: AiGateway, name: {name}}}\n  monitoring: {{interval: 30s, labels: {{release: prometheus}}}}\n"
        )),
    );
    let resolved = || {
        let policy = k.json(&[
            "get",
            "litellmobservabilitypolicy",
            "scraped",
            "-n",
            namespace,
        ]);
        let ancestors = policy["status"]["ancestors"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let conditions = ancestors.first()?["conditions"].as_array()?.clone();
        let c = conditions.iter().find(|c| c["type"] == "ResolvedRefs")?;
        Some((
            c["status"].as_str()?.to_owned(),
            c["reason"].as_str()?.to_owned(),
            c["message"].as_str()?.to_owned(),
        ))
    };
    let (_, _, message) = eventually(
        "the policy to say why there is no ServiceMonitor",
        Duration::from_secs(60),
        || operator.log(),
        || resolved().filter(|(s, r, _)| s == "False" && r == "KindNotInstalled"),
    );
    assert!(message.contains("monitoring.coreos.com"), "{message}");

    let script = workspace().join("scripts/prometheus-operator-crds");
    let fetched = Command::new(&script)
        .arg("fetch")
        .output()
        .expect("run scripts/prometheus-operator-crds");
    assert!(
        fetched.status.success(),
        "scripts/prometheus-operator-crds fetch: {}",
        String::from_utf8_lossy(&fetched.stderr)
    );
    let dir = PathBuf::from(String::from_utf8_lossy(&fetched.stdout).trim());
    for crd in [
        "monitoring.coreos.com_servicemonitors.yaml",
        "monitoring.coreos.com_podmonitors.yaml",
    ] {
        let crd = dir.join(crd);
        k.ok(&["apply", "--server-side", "-f", crd.to_str().unwrap()]);
    }
    k.wait_crds_established();
    let monitor = eventually(
        "the ServiceMonitor once prometheus-operator's CRD is installed",
        Duration::from_secs(90),
        || operator.log(),
        || {
            k.exists(&["servicemonitor", name, "-n", namespace])
                .then(|| k.json(&["get", "servicemonitor", name, "-n", namespace]))
        },
    );
    assert_controlled_by(&monitor, &uid);
    assert_eq!(
        monitor["metadata"]["labels"]["release"], "prometheus",
        "{monitor}"
    );
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "http", "{monitor}");
    eventually(
        "the policy to resolve",
        Duration::from_secs(30),
        || operator.log(),
        || resolved().filter(|(s, _, _)| s == "True"),
    );

    // A PodMonitor instead: made, and the ServiceMonitor pruned.
    k.ok(&[
        "patch",
        "litellmobservabilitypolicy",
        "scraped",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        r#"{"spec":{"monitoring":{"kind":"PodMonitor"}}}"#,
    ]);
    let pod_monitor = eventually(
        "a PodMonitor in place of the ServiceMonitor",
        Duration::from_secs(60),
        || operator.log(),
        || {
            (k.exists(&["podmonitor", name, "-n", namespace])
                && !k.exists(&["servicemonitor", name, "-n", namespace]))
            .then(|| k.json(&["get", "podmonitor", name, "-n", namespace]))
        },
    );
    assert_controlled_by(&pod_monitor, &uid);
    let deployment = k.json(&["get", "deployment", name, "-n", namespace]);
    assert_eq!(
        pod_monitor["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"],
        "the PodMonitor selects the gateway's pods: {pod_monitor}"
    );
    assert_eq!(
        pod_monitor["spec"]["podMetricsEndpoints"][0]["port"], "http",
        "{pod_monitor}"
    );

    k.ok(&[
        "delete",
        "litellmobservabilitypolicy",
        "scraped",
        "-n",
        namespace,
    ]);
    eventually(
        "the PodMonitor to be pruned with the policy",
        Duration::from_secs(60),
        || operator.log(),
        || (!k.exists(&["podmonitor", name, "-n", namespace])).then_some(()),
    );
    wait_gateway_ready(k, operator, namespace, name);
}

/// Asserts that `object` is controlled by the object whose uid is `uid`.
fn assert_controlled_by(object: &serde_json::Value, uid: &str) {
    let owners = object["metadata"]["ownerReferences"].as_array();
    assert!(
        (owners.into_iter().flatten()).any(|o| o["uid"] == uid && o["controller"] == true),
        "not controlled by {uid}: {object}"
    );
}

/// ToolGateways from the same binary: the Go operator's class and samples, applied
/// unchanged (the class annotated to admit routes from every namespace), become Ready
/// through the real Deployment controller; each route gets its
/// URL; the operator's RBAC covers it; steady state is silent; deleting a gateway
/// clears its route's status and garbage-collects its children.
#[test]
fn real_cluster_tool_gateway_samples_become_ready_with_route_urls() {
    let _one_at_a_time = RealCluster::exclusive();
    let cluster = cluster_with_bundle(Crds::Ours);
    let k = Kubectl { cluster: &cluster };
    let mut operator = start_operator(
        &cluster,
        SERVICE_ACCOUNT,
        "replica-a",
        &["--leader-elect=false"],
    );
    k.ok(&[
        "apply",
        "--server-side",
        "-f",
        sample("toolgatewayclass.yaml").to_str().unwrap(),
    ]);
    // The samples' routes live beside their gateways' namespaces: the migration guide's
    // one line lets the class's gateways admit them, as the Go operator did.
    k.ok(&[
        "annotate",
        "toolgatewayclass",
        "litellm",
        "aigateway.agentic-layer.ai/allowed-routes=All",
    ]);
    for (file, ..) in UPSTREAM_TOOL_SAMPLES {
        k.ok(&[
            "apply",
            "--server-side",
            "-f",
            sample(file).to_str().unwrap(),
        ]);
    }
    for (_, namespace, name, route_namespace, route) in UPSTREAM_TOOL_SAMPLES {
        let gateway = eventually(
            &format!("ToolGateway {namespace}/{name} to become Ready"),
            Duration::from_secs(90),
            || operator.log(),
            || {
                let gateway = k.json(&["get", "toolgateway", name, "-n", namespace]);
                (condition(&gateway, "Ready")["status"] == "True").then_some(gateway)
            },
        );
        assert_eq!(
            condition(&gateway, "ToolGatewayReady")["status"],
            "True",
            "{gateway}"
        );
        let deployment = k.json(&["get", "deployment", name, "-n", namespace]);
        assert_eq!(deployment["status"]["readyReplicas"], 1, "{deployment}");
        let key = format!("{route_namespace}__{route}").replace('-', "_");
        let expected = format!("http://{name}.{namespace}.svc.cluster.local/mcp/{key}");
        let route = eventually(
            &format!("ToolRoute {route_namespace}/{route} to get its URL"),
            Duration::from_secs(30),
            || operator.log(),
            || {
                let route = k.json(&["get", "toolroute", route, "-n", route_namespace]);
                route["status"]["url"].is_string().then_some(route)
            },
        );
        assert_eq!(route["status"]["url"], expected.as_str(), "{route}");
        assert_eq!(condition(&route, "Ready")["status"], "True", "{route}");
    }
    operator.assert_running();
    assert_eq!(operator.readyz(), Some(200), "{}", operator.log());

    let writes = steady_state_writes(&cluster);
    assert!(
        writes.is_empty(),
        "the operator wrote in steady state:\n{}",
        writes_summary(&writes)
    );
    assert_never_forbidden(&cluster);

    // Deleting a gateway: its route loses the URL and conditions we wrote, and its
    // children go with it.
    let (_, namespace, name, route_namespace, route) = UPSTREAM_TOOL_SAMPLES[0];
    k.ok(&[
        "delete",
        "toolgateway",
        name,
        "-n",
        namespace,
        "--wait=true",
    ]);
    eventually(
        "the route's status to be cleared",
        Duration::from_secs(30),
        || operator.log(),
        || {
            let route = k.json(&["get", "toolroute", route, "-n", route_namespace]);
            let cleared = route["status"]["url"].is_null()
                && condition(&route, "Ready").is_null()
                && condition(&route, "Accepted").is_null();
            cleared.then_some(())
        },
    );
    eventually(
        "the deleted ToolGateway's children to be garbage collected",
        Duration::from_secs(60),
        || operator.log(),
        || {
            let gone = !k.exists(&["deployment", name, "-n", namespace])
                && !k.exists(&["service", name, "-n", namespace]);
            gone.then_some(())
        },
    );
    operator.signal("TERM");
    let status = operator.wait_exit(Duration::from_secs(20));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", operator.log());
    println!("scenario tool-gateway-samples: passed");
}

/// Drop-in: with agent-runtime-operator's own CRDs (atomic `conditions` list, no
/// `status.url`), the samples still become Ready and the operator does not loop.
#[test]
fn real_cluster_drop_in_with_the_upstream_crds() {
    let _one_at_a_time = RealCluster::exclusive();
    let cluster = cluster_with_bundle(Crds::Upstream);
    let k = Kubectl { cluster: &cluster };
    let mut operator = start_operator(
        &cluster,
        SERVICE_ACCOUNT,
        "replica-a",
        &["--leader-elect=false"],
    );
    apply_upstream_samples(&k);
    for (_, namespace, name) in UPSTREAM_SAMPLES {
        let gateway = wait_gateway_ready(&k, &operator, namespace, name);
        // Upstream's schema has no status.url: the API server prunes it.
        assert!(gateway["status"].get("url").is_none(), "{gateway}");
    }
    operator.assert_running();
    let writes = steady_state_writes(&cluster);
    assert!(
        writes.is_empty(),
        "the operator loops on upstream's CRDs:\n{}",
        writes_summary(&writes)
    );
    println!("scenario drop-in-upstream-crds: passed");
}

/// A permission the bundle does not grant: the request fails with 403 and the operator
/// says so on the gateway, in one line that names what to grant, instead of retrying
/// silently.
#[test]
fn real_cluster_a_missing_permission_is_reported_on_the_gateway() {
    let _one_at_a_time = RealCluster::exclusive();
    let cluster = cluster_with_bundle(Crds::Ours);
    let k = Kubectl { cluster: &cluster };
    // Take `patch` on Services away from the operator's ClusterRole.
    let role = k.json(&["get", "clusterrole", "litellm-impl"]);
    let mut rules = role["rules"].as_array().unwrap().clone();
    let index = rules
        .iter()
        .position(|r| {
            r["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == "services")
        })
        .expect("the bundle grants access to services");
    let mut services = rules[index].clone();
    rules[index]["resources"] = serde_json::json!(
        rules[index]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| *r != "services")
            .collect::<Vec<_>>()
    );
    services["resources"] = serde_json::json!(["services"]);
    services["verbs"] = serde_json::json!(["list", "watch", "delete"]);
    rules.push(services);
    let patch = serde_json::json!([{"op": "replace", "path": "/rules", "value": rules}]);
    k.ok(&[
        "patch",
        "clusterrole",
        "litellm-impl",
        "--type=json",
        "-p",
        &patch.to_string(),
    ]);

    let mut operator = start_operator(
        &cluster,
        SERVICE_ACCOUNT,
        "replica-a",
        &["--leader-elect=false"],
    );
    let (namespace, name) = apply_first_sample(&k);
    let programmed = eventually(
        "Programmed=False naming the forbidden request",
        Duration::from_secs(60),
        || operator.log(),
        || {
            let gateway = k.json(&["get", "aigateway", name, "-n", namespace]);
            let programmed = condition(&gateway, "Programmed");
            (programmed["status"] == "False"
                && programmed["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("forbidden"))
            .then_some(programmed)
        },
    );
    let message = programmed["message"].as_str().unwrap();
    assert!(!message.contains('\n'), "one line: {message}");
    assert!(
        !message.contains("ErrorResponse") && !message.contains("Status {"),
        "no Debug dump in a condition: {message}"
    );
    assert!(
        message.contains("services"),
        "names the resource: {message}"
    );
    assert!(
        message.contains("RBAC") || message.contains("ClusterRole"),
        "says what to do: {message}"
    );
    operator.assert_running();
    // It keeps retrying with backoff, not in a tight loop: a handful of denied requests.
    std::thread::sleep(Duration::from_secs(5));
    let denied = cluster
        .audit_log()
        .since(Default::default())
        .unwrap()
        .into_iter()
        .filter(|e| e.user == OPERATOR_USER && e.code == 403)
        .count();
    assert!((1..=20).contains(&denied), "{denied} forbidden requests");
    println!("scenario rbac-denied: passed");
}

/// Two replicas with leader election, as different ServiceAccounts so the audit log
/// tells their requests apart: kill -9 the leader; the standby takes over within the
/// lease duration, and the two never write at the same time.
#[test]
fn real_cluster_leader_election_hands_over_after_the_leader_is_killed() {
    let _one_at_a_time = RealCluster::exclusive();
    let cluster = cluster_with_bundle(Crds::Ours);
    let k = Kubectl { cluster: &cluster };
    let second = "litellm-impl-b";
    k.ok(&["-n", SYSTEM_NAMESPACE, "create", "serviceaccount", second]);
    k.ok(&[
        "create",
        "clusterrolebinding",
        second,
        "--clusterrole=litellm-impl",
        &format!("--serviceaccount={SYSTEM_NAMESPACE}:{second}"),
    ]);
    k.ok(&[
        "-n",
        SYSTEM_NAMESPACE,
        "create",
        "rolebinding",
        second,
        "--role=litellm-impl-leader-election",
        &format!("--serviceaccount={SYSTEM_NAMESPACE}:{second}"),
    ]);
    let user_b = format!("system:serviceaccount:{SYSTEM_NAMESPACE}:{second}");
    let lease_args = ["--leader-elect", "--lease-namespace", SYSTEM_NAMESPACE];
    let mut a = start_operator(&cluster, SERVICE_ACCOUNT, "replica-a", &lease_args);
    let holder = |k: &Kubectl| {
        k.run(
            &[
                "get",
                "lease",
                "litellm-impl",
                "-n",
                SYSTEM_NAMESPACE,
                "-o",
                "json",
            ],
            None,
        )
        .status
        .success()
        .then(|| k.json(&["get", "lease", "litellm-impl", "-n", SYSTEM_NAMESPACE]))
        .and_then(|lease| lease["spec"]["holderIdentity"].as_str().map(str::to_string))
    };
    eventually(
        "replica-a to hold the lease",
        Duration::from_secs(30),
        || a.log(),
        || (holder(&k).as_deref() == Some("replica-a")).then_some(()),
    );
    let mut b = start_operator(&cluster, second, "replica-b", &lease_args);
    apply_upstream_samples(&k);
    for (_, namespace, name) in UPSTREAM_SAMPLES {
        wait_gateway_ready(&k, &a, namespace, name);
    }
    b.assert_running();
    let lease = k.json(&["get", "lease", "litellm-impl", "-n", SYSTEM_NAMESPACE]);
    let duration = lease["spec"]["leaseDurationSeconds"].as_u64().unwrap();

    a.signal("KILL");
    let killed = Instant::now();
    a.wait_exit(Duration::from_secs(5))
        .expect("kill -9 ends the process");
    eventually(
        "replica-b to take the lease over",
        Duration::from_secs(duration + 10),
        || b.log(),
        || (holder(&k).as_deref() == Some("replica-b")).then_some(()),
    );
    let takeover = killed.elapsed();
    assert!(
        takeover <= Duration::from_secs(duration + 3),
        "takeover took {takeover:?}, lease duration {duration} s"
    );
    // The new leader serves: an edit is reconciled.
    let (_, namespace, name) = UPSTREAM_SAMPLES[0];
    k.ok(&[
        "patch",
        "aigateway",
        name,
        "-n",
        namespace,
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/spec/aiModels/-","value":{"provider":"openai","name":"gpt-4o"}}]"#,
    ]);
    eventually(
        "the new leader to render the edit",
        Duration::from_secs(60),
        || b.log(),
        || {
            rendered_config(&k, namespace, name)
                .contains("gpt-4o")
                .then_some(())
        },
    );
    wait_gateway_ready(&k, &b, namespace, name);

    let writes: Vec<AuditEvent> = cluster
        .audit_log()
        .writes_since(Default::default())
        .unwrap()
        .into_iter()
        .filter(|e| e.resource != "leases" && e.code < 300)
        .collect();
    let by = |user: &str| writes.iter().filter(|e| e.user == user).collect::<Vec<_>>();
    let (writes_a, writes_b) = (by(OPERATOR_USER), by(&user_b));
    assert!(
        !writes_a.is_empty() && !writes_b.is_empty(),
        "both replicas led once"
    );
    let last_a = writes_a.iter().map(|e| e.completed.as_str()).max().unwrap();
    let first_b = writes_b.iter().map(|e| e.received.as_str()).min().unwrap();
    assert!(
        last_a < first_b,
        "replica-b wrote at {first_b} before replica-a's last write at {last_a}"
    );
    b.signal("TERM");
    assert_eq!(
        b.wait_exit(Duration::from_secs(20)).and_then(|s| s.code()),
        Some(0),
        "{}",
        b.log()
    );
    println!(
        "scenario leader-election: passed (takeover in {:.1} s)",
        takeover.as_secs_f64()
    );
}

/// Pod Security admission: namespaces enforcing "restricted" admit the generated LiteLLM
/// pods (startup probe and all) of an AiGateway and of a ToolGateway, and both become
/// Ready. The ToolGateway serves agent-runtime-operator's ToolRoute sample, applied
/// unchanged (with the CRD of the Agent it declares): the route becomes Ready with its
/// URL.
#[test]
fn real_cluster_generated_pods_pass_pod_security_restricted() {
    let _one_at_a_time = RealCluster::exclusive();
    let cluster = cluster_with_bundle(Crds::Ours);
    let k = Kubectl { cluster: &cluster };
    let operator = start_operator(
        &cluster,
        SERVICE_ACCOUNT,
        "replica-a",
        &["--leader-elect=false"],
    );
    let (_, namespace, name) = UPSTREAM_SAMPLES[0];
    k.ok(&["create", "namespace", namespace]);
    k.ok(&[
        "label",
        "namespace",
        namespace,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    ]);
    apply_first_sample(&k);
    wait_gateway_ready(&k, &operator, namespace, name);
    let pods = k.json(&["get", "pods", "-n", namespace]);
    assert_eq!(pods["items"].as_array().unwrap().len(), 1, "{pods}");
    let probe = &pods["items"][0]["spec"]["containers"][0]["startupProbe"];
    assert_eq!(probe["httpGet"]["path"], "/health/liveliness", "{pods}");

    let agents = workspace()
        .join("aigateway-api/tests/fixtures/upstream-crds/agents.runtime.agentic-layer.ai.json");
    k.ok(&["apply", "--server-side", "-f", agents.to_str().unwrap()]);
    k.wait_crds_established();
    let route_sample = sample("agent-runtime-toolroute.yaml");
    k.ok(&[
        "apply",
        "--server-side",
        "-f",
        route_sample.to_str().unwrap(),
    ]);
    let tools = "test-tool-servers";
    k.ok(&[
        "label",
        "namespace",
        tools,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    ]);
    k.ok_with(
        &["apply", "--server-side", "-f", "-"],
        Some(
            "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: ToolGateway\nmetadata: {name: example-toolgateway, namespace: test-tool-servers}\nspec: {toolGatewayClassName: litellm}\n",
        ),
    );
    let route = eventually(
        "the ToolRoute sample to get its URL",
        Duration::from_secs(90),
        || operator.log(),
        || {
            let route = k.json(&["get", "toolroute", "example-toolroute", "-n", tools]);
            route["status"]["url"].is_string().then_some(route)
        },
    );
    assert_eq!(
        route["status"]["url"],
        "http://example-toolgateway.test-tool-servers.svc.cluster.local/mcp/test_tool_servers__example_toolroute",
        "{route}"
    );
    assert_eq!(condition(&route, "Ready")["status"], "True", "{route}");
    let gateway = k.json(&["get", "toolgateway", "example-toolgateway", "-n", tools]);
    assert_eq!(condition(&gateway, "Ready")["status"], "True", "{gateway}");
    assert_eq!(
        condition(&gateway, "ToolGatewayReady")["reason"],
        "ToolGatewayReady",
        "{gateway}"
    );
    let pods = k.json(&["get", "pods", "-n", tools]);
    assert_eq!(pods["items"].as_array().unwrap().len(), 1, "{pods}");
    let config = k.json(&[
        "get",
        "configmap",
        "example-toolgateway-config",
        "-n",
        tools,
    ]);
    assert!(
        config["data"]["aigateway_tool_filter.py"].is_string(),
        "the filter guardrail ships with the config: {config}"
    );
    println!("scenario pod-security-restricted: passed");
}

/// The ConfigMap, Deployment and Service the Go LiteLLM operator creates for a gateway:
/// controlled by the gateway, written with `create` (not server-side apply), proxy on
/// the gateway's port, no labels of ours.
fn go_operator_children(namespace: &str, name: &str, gateway_uid: &str) -> String {
    let owner = format!(
        "ownerReferences: [{{apiVersion: runtime.agentic-layer.ai/v1alpha1, kind: AiGateway, name: {name}, uid: {gateway_uid}, controller: true, blockOwnerDeletion: true}}]"
    );
    format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}-config, namespace: {namespace}, labels: {{app: {name}}}, {owner}}}
data: {{config.yaml: "model_list: []\n"}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {namespace}, labels: {{app: {name}}}, {owner}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: litellm
        image: ghcr.io/berriai/litellm:v1.83.14-stable.patch.2
        command: [litellm, --config, /app/config/config.yaml, --port, "80"]
        ports: [{{name: http, containerPort: 80, protocol: TCP}}]
        env: [{{name: GO_OPERATOR_ONLY, value: "1"}}]
        volumeMounts: [{{name: config, mountPath: /app/config, readOnly: true}}]
      volumes: [{{name: config, configMap: {{name: {name}-config}}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {namespace}, labels: {{app: {name}}}, {owner}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 80, targetPort: 80, protocol: TCP}}]
"#
    )
}

/// Migration from the Go operator: the children it created for a gateway are adopted in
/// place. The Service keeps its uid and ClusterIP (agents keep their connections), and
/// the Deployment ends up exactly ours: one container port, none of the Go operator's
/// list entries left beside ours.
#[test]
fn real_cluster_children_of_the_go_operator_are_adopted_in_place() {
    let _one_at_a_time = RealCluster::exclusive();
    let cluster = cluster_with_bundle(Crds::Ours);
    let k = Kubectl { cluster: &cluster };
    let (namespace, name) = apply_first_sample(&k);
    let gateway = k.json(&["get", "aigateway", name, "-n", namespace]);
    let uid = gateway["metadata"]["uid"].as_str().unwrap();
    k.ok_with(
        &["create", "-f", "-"],
        Some(&go_operator_children(namespace, name, uid)),
    );
    let before = k.json(&["get", "service", name, "-n", namespace]);

    let operator = start_operator(
        &cluster,
        SERVICE_ACCOUNT,
        "replica-a",
        &["--leader-elect=false"],
    );
    wait_gateway_ready(&k, &operator, namespace, name);
    let service = k.json(&["get", "service", name, "-n", namespace]);
    assert_eq!(service["metadata"]["uid"], before["metadata"]["uid"]);
    assert_eq!(service["spec"]["clusterIP"], before["spec"]["clusterIP"]);
    assert_eq!(
        service["spec"]["ports"].as_array().unwrap().len(),
        1,
        "{service}"
    );
    let deployment = k.json(&["get", "deployment", name, "-n", namespace]);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["ports"],
        serde_json::json!([{"containerPort": 4000, "name": "http", "protocol": "TCP"}]),
        "{deployment}"
    );
    let env = container["env"].to_string();
    assert!(
        !env.contains("GO_OPERATOR_ONLY"),
        "the Go operator's env survived: {env}"
    );
    let config = k.json(&[
        "get",
        "configmap",
        &format!("{name}-config"),
        "-n",
        namespace,
    ]);
    assert!(
        config["data"]["config.yaml"]
            .as_str()
            .unwrap()
            .contains("gpt-3.5-turbo"),
        "{config}"
    );
    println!("scenario go-operator-migration: passed");
}

/// A user's Deployment, Service and ConfigMap that happen to carry the names of a
/// gateway's children: not ours, with nobody's owner reference.
fn unowned_objects(namespace: &str, name: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {namespace}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: payments
  template:
    metadata:
      labels:
        app: payments
    spec:
      containers:
      - name: payments
        image: example.com/payments:1.0
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: {namespace}
spec:
  selector:
    app: payments
  ports:
  - name: web
    port: 8080
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}-config
  namespace: {namespace}
data:
  settings: "the user's own"
"#
    )
}

/// The uid and resourceVersion of an object: unchanged means nobody wrote it.
fn identity(object: &Value) -> (String, String) {
    (
        object["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .into(),
        object["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .into(),
    )
}

#[test]
fn real_cluster_objects_we_did_not_create_survive_a_gateway_that_wants_their_names() {
    let _one_at_a_time = RealCluster::exclusive();
    let cluster = cluster_with_bundle(Crds::Ours);
    let k = Kubectl { cluster: &cluster };
    let (_, namespace, name) = UPSTREAM_SAMPLES[0];
    k.ok_with(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n"
        )),
    );
    k.ok_with(
        &["create", "-f", "-"],
        Some(&unowned_objects(namespace, name)),
    );
    let config_name = format!("{name}-config");
    let victims = [
        ("deployment", name.to_owned()),
        ("service", name.to_owned()),
        ("configmap", config_name),
    ];
    let before: Vec<(String, String)> = victims
        .iter()
        .map(|(kind, object)| identity(&k.json(&["get", kind, object, "-n", namespace])))
        .collect();

    let operator = start_operator(
        &cluster,
        SERVICE_ACCOUNT,
        "replica-a",
        &["--leader-elect=false"],
    );
    apply_first_sample(&k);
    // The gateway says why it has no proxy, naming the objects in the way.
    let gateway = eventually(
        "the gateway to report the name conflict",
        Duration::from_secs(60),
        || operator.log(),
        || {
            let gateway = k.json(&["get", "aigateway", name, "-n", namespace]);
            let programmed = condition(&gateway, "Programmed");
            (programmed["reason"] == "NameConflict").then_some(gateway)
        },
    );
    let programmed = condition(&gateway, "Programmed");
    assert_eq!(programmed["status"], "False", "{gateway}");
    let message = programmed["message"].as_str().unwrap();
    for (kind, object) in &victims {
        assert!(
            message.to_lowercase().contains(kind) && message.contains(object.as_str()),
            "the message names {kind} {object}: {message}"
        );
    }

    // Deleting the gateway: the garbage collector finds no owner reference of ours.
    k.ok(&["delete", "aigateway", name, "-n", namespace, "--wait=true"]);
    // The garbage collector acts within seconds of the owner's deletion.
    std::thread::sleep(Duration::from_secs(5));
    let after: Vec<(String, String)> = victims
        .iter()
        .map(|(kind, object)| {
            assert!(
                k.exists(&[kind, object, "-n", namespace]),
                "{kind} {object} was deleted"
            );
            identity(&k.json(&["get", kind, object, "-n", namespace]))
        })
        .collect();
    assert_eq!(after, before, "an object we did not create was written");
    let touched: Vec<AuditEvent> = cluster
        .audit_log()
        .writes_since(aigateway_testkit::real_cluster::AuditMark::default())
        .unwrap()
        .into_iter()
        .filter(|e| e.user == OPERATOR_USER)
        .filter(|e| {
            victims
                .iter()
                .any(|(kind, object)| e.resource == format!("{kind}s") && e.name == *object)
        })
        .collect();
    assert!(
        touched.is_empty(),
        "the operator wrote objects it did not create:\n{}",
        writes_summary(&touched)
    );
    assert_never_forbidden(&cluster);
    println!("scenario unowned-names: passed");
}

#[test]
fn real_cluster_deleting_a_class_in_use_keeps_its_gateways_served() {
    let _one_at_a_time = RealCluster::exclusive();
    let cluster = cluster_with_bundle(Crds::Ours);
    let k = Kubectl { cluster: &cluster };
    let operator = start_operator(
        &cluster,
        SERVICE_ACCOUNT,
        "replica-a",
        &["--leader-elect=false"],
    );
    let (namespace, name) = apply_first_sample(&k);
    wait_gateway_ready(&k, &operator, namespace, name);
    let service = |k: &Kubectl| {
        let service = k.json(&["get", "service", name, "-n", namespace]);
        (
            service["metadata"]["uid"].clone(),
            service["spec"]["clusterIP"].clone(),
        )
    };
    let service_before = service(&k);
    let deployment_uid =
        k.json(&["get", "deployment", name, "-n", namespace])["metadata"]["uid"].clone();

    // The class is deleted while the gateway uses it: our finalizer holds it, and the
    // gateway stays served and says why.
    k.ok(&["delete", "aigatewayclass", "litellm", "--wait=false"]);
    eventually(
        "Accepted to say the class is being deleted",
        Duration::from_secs(30),
        || operator.log(),
        || {
            let gateway = k.json(&["get", "aigateway", name, "-n", namespace]);
            let accepted = condition(&gateway, "Accepted");
            (accepted["status"] == "True" && accepted["reason"] == "ClassDeleting").then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(3));
    let class = k.json(&["get", "aigatewayclass", "litellm"]);
    assert!(
        class["metadata"]["deletionTimestamp"].is_string(),
        "{class}"
    );
    let gateway = k.json(&["get", "aigateway", name, "-n", namespace]);
    assert_eq!(condition(&gateway, "Ready")["status"], "True", "{gateway}");
    assert_eq!(
        k.json(&["get", "deployment", name, "-n", namespace])["metadata"]["uid"],
        deployment_uid
    );

    // An administrator forces the class away and creates it again: the same Service.
    k.ok(&[
        "patch",
        "aigatewayclass",
        "litellm",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    eventually(
        "the class to be gone",
        Duration::from_secs(30),
        || operator.log(),
        || (!k.exists(&["aigatewayclass", "litellm"])).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(k.exists(&["deployment", name, "-n", namespace]));
    k.ok(&[
        "apply",
        "--server-side",
        "-f",
        workspace()
            .join("deploy/aigatewayclass.yaml")
            .to_str()
            .unwrap(),
    ]);
    eventually(
        "the gateway to be accepted through the new class",
        Duration::from_secs(60),
        || operator.log(),
        || {
            let gateway = k.json(&["get", "aigateway", name, "-n", namespace]);
            let accepted = condition(&gateway, "Accepted");
            (accepted["status"] == "True" && accepted["reason"] == "Accepted").then_some(())
        },
    );
    wait_gateway_ready(&k, &operator, namespace, name);
    assert_eq!(
        service(&k),
        service_before,
        "the Service was recreated (new uid or ClusterIP)"
    );
    assert_eq!(
        k.json(&["get", "deployment", name, "-n", namespace])["metadata"]["uid"],
        deployment_uid
    );
    assert_never_forbidden(&cluster);
    println!("scenario class-deletion: passed");
}

/// A leader that can no longer renew its Lease (here: its RoleBinding for Leases is
/// deleted, so every renewal gets 403) stops writing within the lease duration, and
/// serves again once it can renew.
#[test]
fn real_cluster_a_leader_that_cannot_renew_stops_writing_within_the_lease_duration() {
    let _one_at_a_time = RealCluster::exclusive();
    let cluster = cluster_with_bundle(Crds::Ours);
    let k = Kubectl { cluster: &cluster };
    let operator = start_operator(
        &cluster,
        SERVICE_ACCOUNT,
        "replica-a",
        &["--leader-elect", "--lease-namespace", SYSTEM_NAMESPACE],
    );
    let (namespace, name) = apply_first_sample(&k);
    wait_gateway_ready(&k, &operator, namespace, name);
    let lease = k.json(&["get", "lease", "litellm-impl", "-n", SYSTEM_NAMESPACE]);
    let duration = lease["spec"]["leaseDurationSeconds"].as_u64().unwrap();
    let binding = k.json(&[
        "get",
        "rolebinding",
        "litellm-impl-leader-election",
        "-n",
        SYSTEM_NAMESPACE,
    ]);

    k.ok(&[
        "delete",
        "rolebinding",
        "litellm-impl-leader-election",
        "-n",
        SYSTEM_NAMESPACE,
    ]);
    std::thread::sleep(Duration::from_secs(duration + 1));
    // An edit that a leader would render: nobody may write it now.
    let mark = cluster.audit_log().mark();
    let add_model = |model: &str| {
        k.ok(&[
            "patch",
            "aigateway",
            name,
            "-n",
            namespace,
            "--type=json",
            "-p",
            &format!(
                r#"[{{"op":"add","path":"/spec/aiModels/-","value":{{"provider":"openai","name":"{model}"}}}}]"#
            ),
        ]);
    };
    add_model("gpt-4o");
    std::thread::sleep(Duration::from_secs(5));
    let writes: Vec<AuditEvent> = cluster
        .audit_log()
        .writes_since(mark)
        .unwrap()
        .into_iter()
        .filter(|e| e.user == OPERATOR_USER && e.resource != "leases")
        .collect();
    assert!(
        writes.is_empty(),
        "the operator wrote without a renewed lease:\n{}\n{}",
        writes_summary(&writes),
        operator.log()
    );
    assert!(
        operator
            .log()
            .contains("was not renewed within its duration: stopping controllers")
            || operator
                .log()
                .contains("lost leadership: stopping controllers"),
        "{}",
        operator.log()
    );

    // Renewals work again: the same process leads and renders the edit.
    let mut restored = binding.clone();
    for field in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "managedFields",
    ] {
        restored["metadata"].as_object_mut().unwrap().remove(field);
    }
    k.ok_with(&["create", "-f", "-"], Some(&restored.to_string()));
    eventually(
        "the operator to lead again and render the edit",
        Duration::from_secs(duration * 2 + 30),
        || operator.log(),
        || {
            rendered_config(&k, namespace, name)
                .contains("gpt-4o")
                .then_some(())
        },
    );
    wait_gateway_ready(&k, &operator, namespace, name);
    println!("scenario lease-revoked: passed");
}

impl Operator {
    /// The sum of the `/metrics` series whose line starts with `series`.
    fn metric(&self, series: &str) -> f64 {
        let (_, body) = http_get(self.metrics_port, "/metrics")
            .unwrap_or_else(|| panic!("/metrics did not answer\n{}", self.log()));
        body.lines()
            .filter(|l| l.starts_with(series))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    fn reconciles(&self) -> f64 {
        self.metric("aigateway_reconciles_total")
    }

    /// Object events the operator's Secret cache (shared by its gateway kinds) has
    /// received.
    fn secret_events(&self) -> f64 {
        self.metric("aigateway_watch_events_total{kind=\"shared\",cache=\"related Secret\"}")
    }

    /// Waits until no reconcile ran for two seconds; returns the reconcile count.
    fn settled(&self) -> f64 {
        let started = Instant::now();
        let mut last = self.reconciles();
        loop {
            std::thread::sleep(Duration::from_secs(2));
            let now = self.reconciles();
            if now == last {
                return now;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "never idle\n{}",
                self.log()
            );
            last = now;
        }
    }

    /// Peak resident set size (`VmHWM`) in KiB.
    fn peak_rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the operator runs")
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/<pid>/status")
    }
}

/// A gateway with a Guard (the case in which any Secret change of its namespace used to
/// re-run it), its key Secret, in namespace `team`.
const GUARDED_GATEWAY: &str = include_str!("fixtures/guarded-gateway.yaml");

/// 500 Secrets of 200 KB that no gateway reads (100 MB in etcd) raise the operator's
/// peak memory by less than 5 MiB and reconcile nothing, nor do 20 updates of one of
/// them; the Secret the gateway reads still rolls its pods.
#[test]
fn real_cluster_secrets_no_gateway_reads_cost_no_memory_and_no_reconciles() {
    let _one_at_a_time = RealCluster::exclusive();
    let cluster = cluster_with_bundle(Crds::Ours);
    let k = Kubectl { cluster: &cluster };
    let operator = start_operator(
        &cluster,
        SERVICE_ACCOUNT,
        "replica-a",
        &["--leader-elect=false"],
    );
    k.ok_with(&["apply", "-f", "-"], Some(GUARDED_GATEWAY));
    wait_gateway_ready(&k, &operator, "team", "gw");
    let reconciles = operator.settled();
    let events = operator.secret_events();
    let before_kib = operator.peak_rss_kib();

    let secret = |name: &str, bytes: usize, fill: char| {
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": "team"},
            "type": "Opaque",
            "data": {"blob": fill.to_string().repeat(bytes / 4 * 4)},
        })
    };
    for batch in 0..10 {
        let items: Vec<Value> = (0..50)
            .map(|i| {
                let n = batch * 50 + i;
                secret(
                    &format!("unrelated-{n}"),
                    200_000,
                    (b'A' + (n % 26) as u8) as char,
                )
            })
            .collect();
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
        k.ok_with(&["create", "-f", "-"], Some(&list.to_string()));
    }
    eventually(
        "the operator to see the 500 Secrets",
        Duration::from_secs(120),
        || operator.log(),
        || (operator.secret_events() >= events + 500.0).then_some(()),
    );
    let grown_kib = operator.peak_rss_kib().saturating_sub(before_kib);
    println!(
        "operator peak RSS: {before_kib} KiB before, +{grown_kib} KiB after 500 Secrets of 200 KB"
    );
    assert!(
        grown_kib < 5 * 1024,
        "500 unrelated Secrets raised the operator's peak RSS by {grown_kib} KiB"
    );
    assert_eq!(
        operator.settled(),
        reconciles,
        "unrelated Secrets reconciled the gateway"
    );

    let events = operator.secret_events();
    let mark = cluster.audit_log().mark();
    for i in 0..20 {
        let update = secret("unrelated-7", 1_000, (b'a' + i) as char);
        k.ok_with(&["apply", "-f", "-"], Some(&update.to_string()));
    }
    eventually(
        "the operator to see the 20 updates",
        Duration::from_secs(60),
        || operator.log(),
        || (operator.secret_events() >= events + 20.0).then_some(()),
    );
    assert_eq!(
        operator.settled(),
        reconciles,
        "updates of an unrelated Secret reconciled the gateway"
    );
    let writes: Vec<AuditEvent> = cluster
        .audit_log()
        .writes_since(mark)
        .unwrap()
        .into_iter()
        .filter(|e| e.user == OPERATOR_USER)
        .collect();
    assert!(writes.is_empty(), "{}", writes_summary(&writes));

    // The Secret the gateway reads: its new content rolls the pods.
    let hash = |k: &Kubectl| {
        k.json(&["get", "deployment", "gw", "-n", "team"])["spec"]["template"]["metadata"]
            ["annotations"]["gateway.agentic-layer.ai/secret-hash"]
            .clone()
    };
    let before = hash(&k);
    assert!(before.is_string(), "{before}");
    k.ok_with(
        &["apply", "-f", "-"],
        Some(&api_key_secret("team", "second")),
    );
    eventually(
        "a new secret hash on the pod template",
        Duration::from_secs(60),
        || operator.log(),
        || (hash(&k) != before).then_some(()),
    );
    assert!(operator.reconciles() > reconciles);
    assert_never_forbidden(&cluster);
    println!("scenario unrelated-secrets: passed (+{grown_kib} KiB)");
}

/// The annotations a tenant can put on its own objects, on every Secret and ConfigMap of
/// the cluster: 300 Secrets and 200 ConfigMaps with 250 KB of annotations each, which no
/// gateway reads, raise the operator's peak RSS by less than 10 MiB, both while they are
/// created (watch events) and when a new operator lists them at start (a streaming
/// list: no `list` of Secrets, one object at a time), and it never exits.
/// The metadata caches used to keep every annotation, once per gateway kind, and listed
/// in pages of 100 (25 MB of annotations a page): the same objects took it from 19.5 MB
/// to 269 MB, past the bundle's 256 MiB limit, and it crash-looped on every relist.
#[test]
fn real_cluster_annotations_of_objects_no_gateway_reads_cost_no_memory() {
    let _one_at_a_time = RealCluster::exclusive();
    let cluster = cluster_with_bundle(Crds::Ours);
    let k = Kubectl { cluster: &cluster };
    let mut operator = start_operator(
        &cluster,
        SERVICE_ACCOUNT,
        "replica-a",
        &["--leader-elect=false"],
    );
    k.ok_with(&["apply", "-f", "-"], Some(GUARDED_GATEWAY));
    wait_gateway_ready(&k, &operator, "team", "gw");
    let reconciles = operator.settled();
    let config_map_events = || {
        operator.metric("aigateway_watch_events_total{kind=\"shared\",cache=\"related ConfigMap\"}")
    };
    let (secrets, config_maps) = (operator.secret_events(), config_map_events());
    let before_kib = operator.peak_rss_kib();

    // 250 KB in one annotation, different per object; created (not applied: kubectl
    // apply would keep a second copy in its last-applied annotation) 25 per request.
    let object = |kind: &str, i: usize| {
        let fill = ((b'a' + (i % 26) as u8) as char)
            .to_string()
            .repeat(250_000);
        let mut object = serde_json::json!({
            "apiVersion": "v1",
            "kind": kind,
            "metadata": {"name": format!("annotated-{i}"), "namespace": "team",
                "annotations": {"example.com/blob": format!("{i}-{fill}")}},
        });
        object["data"] = if kind == "Secret" {
            serde_json::json!({"k": "dg=="})
        } else {
            serde_json::json!({"k": "v"})
        };
        object
    };
    for (kind, count) in [("Secret", 300), ("ConfigMap", 200)] {
        for batch in (0..count).collect::<Vec<_>>().chunks(25) {
            let items: Vec<Value> = batch.iter().map(|i| object(kind, *i)).collect();
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
            k.ok_with(&["create", "-f", "-"], Some(&list.to_string()));
        }
    }
    eventually(
        "the operator to see the 500 objects",
        Duration::from_secs(180),
        || operator.log(),
        || {
            (operator.secret_events() >= secrets + 300.0
                && config_map_events() >= config_maps + 200.0)
                .then_some(())
        },
    );
    let grown_kib = operator.peak_rss_kib().saturating_sub(before_kib);
    println!(
        "operator peak RSS: {before_kib} KiB before, +{grown_kib} KiB after 300 Secrets and 200 ConfigMaps with 250 KB of annotations"
    );
    assert!(
        grown_kib < 10 * 1024,
        "500 annotated objects raised the operator's peak RSS by {grown_kib} KiB"
    );
    assert_eq!(
        operator.settled(),
        reconciles,
        "objects no gateway reads reconciled the gateway"
    );
    operator.assert_running();
    drop(operator);

    // A new operator lists them all at start.
    let mark = cluster.audit_log().mark();
    let mut restarted = start_operator(
        &cluster,
        SERVICE_ACCOUNT,
        "replica-b",
        &["--leader-elect=false"],
    );
    eventually(
        "the new operator to reconcile",
        Duration::from_secs(120),
        || restarted.log(),
        || {
            (http_get(restarted.metrics_port, "/metrics").is_some() && restarted.reconciles() > 0.0)
                .then_some(())
        },
    );
    restarted.settled();
    let relisted_kib = restarted.peak_rss_kib();
    println!(
        "a new operator's peak RSS after listing them: {relisted_kib} KiB (the first had {before_kib} KiB without them)"
    );
    assert!(
        relisted_kib < before_kib + 10 * 1024,
        "listing 500 annotated objects took a new operator to {relisted_kib} KiB, the first was at {before_kib} KiB without them"
    );
    let lists: Vec<AuditEvent> = cluster
        .audit_log()
        .since(mark)
        .unwrap()
        .into_iter()
        .filter(|e| {
            // Secrets are also children (a ToolGateway's copies of its routes'
            // credentials), listed by the child cache with our label, as ConfigMaps are.
            e.user == OPERATOR_USER
                && e.verb == "list"
                && e.resource == "secrets"
                && !e.uri.contains("labelSelector=")
        })
        .collect();
    assert!(
        lists.is_empty(),
        "the metadata caches listed instead of streaming: {}",
        lists
            .iter()
            .map(|e| e.uri.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    restarted.assert_running();
    assert_never_forbidden(&cluster);
    println!("scenario annotated-objects: passed (+{grown_kib} KiB, relist {relisted_kib} KiB)");
}

/// An HTTPS GET of the operator's `/metrics` with `curl`, taking its self-signed
/// certificate, with `token` as bearer token: the status code and the body.
fn scrape(port: u16, token: Option<&str>) -> (String, String) {
    let body = tempfile::NamedTempFile::new().unwrap();
    let mut command = Command::new("curl");
    command
        .args(["-sk", "--max-time", "20", "-w", "%{http_code}", "-o"])
        .arg(body.path());
    if let Some(token) = token {
        command.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let output = command
        .arg(format!("https://127.0.0.1:{port}/metrics"))
        .output()
        .expect("curl is installed");
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        std::fs::read_to_string(body.path()).unwrap_or_default(),
    )
}

/// `/metrics` served as controller-runtime serves it by default, by the operator running
/// as the bundle's ServiceAccount: over HTTPS (a self-signed certificate), 401 without a
/// token or with one the API server does not authenticate, 403 for a ServiceAccount
/// without the bundle's `litellm-impl-metrics-reader` ClusterRole, 200 with it; the
/// probes stay plain HTTP. The bundle's `litellm-impl-metrics-auth` role covers the
/// reviews (no 403 for the operator), and repeated scrapes are answered from the
/// decision cache, not with a review each.
#[test]
fn real_cluster_metrics_answer_only_authorised_scrapers() {
    let _one_at_a_time = RealCluster::exclusive();
    let cluster = cluster_with_bundle(Crds::Ours);
    let k = Kubectl { cluster: &cluster };
    let mut operator = start_operator(
        &cluster,
        SERVICE_ACCOUNT,
        "replica-a",
        &["--leader-elect=false", "--metrics-secure"],
    );
    eventually(
        "/readyz over plain HTTP",
        Duration::from_secs(60),
        || operator.log(),
        || (operator.readyz() == Some(200)).then_some(()),
    );
    k.ok(&["create", "namespace", "monitoring"]);
    for account in ["scraper", "nosy"] {
        k.ok(&["create", "serviceaccount", account, "-n", "monitoring"]);
    }
    k.ok(&[
        "create",
        "clusterrolebinding",
        "scraper-reads-metrics",
        "--clusterrole=litellm-impl-metrics-reader",
        "--serviceaccount=monitoring:scraper",
    ]);
    let token = |account: &str| {
        k.ok(&["create", "token", account, "-n", "monitoring"])
            .trim()
            .to_owned()
    };
    let (scraper, nosy) = (token("scraper"), token("nosy"));
    let port = operator.metrics_port;

    assert_eq!(scrape(port, None).0, "401");
    assert_eq!(scrape(port, Some("not-a-token")).0, "401");
    let (code, body) = scrape(port, Some(&nosy));
    assert_eq!(code, "403", "{body}");
    let mark = cluster.audit_log().mark();
    let (code, body) = scrape(port, Some(&scraper));
    assert_eq!(code, "200", "{body}\n{}", operator.log());
    assert!(body.contains("aigateway_reconciles_total"), "{body}");
    for _ in 0..5 {
        assert_eq!(scrape(port, Some(&scraper)).0, "200");
    }
    let reviews: Vec<AuditEvent> = cluster
        .audit_log()
        .since(mark)
        .unwrap()
        .into_iter()
        .filter(|e| {
            e.user == OPERATOR_USER
                && (e.resource == "tokenreviews" || e.resource == "subjectaccessreviews")
        })
        .collect();
    assert!(
        reviews.len() <= 2,
        "six scrapes cost {} reviews: {}",
        reviews.len(),
        reviews
            .iter()
            .map(|e| e.resource.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert!(
        !operator.log().contains(&scraper),
        "a scraper's token reached the log"
    );
    operator.assert_running();
    assert_never_forbidden(&cluster);
    println!("scenario secure-metrics: passed");
}

/// Sets the verbs the operator's ClusterRole grants on `resource` (core group).
fn grant_on(k: &Kubectl, resource: &str, verbs: &[&str]) {
    let role = k.json(&["get", "clusterrole", "litellm-impl"]);
    let rules: Vec<Value> = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| {
            let mut rule = rule.clone();
            if rule["resources"] == serde_json::json!([resource]) {
                rule["verbs"] = serde_json::json!(verbs);
            }
            rule
        })
        .collect();
    let patch = serde_json::json!([{"op": "replace", "path": "/rules", "value": rules}]);
    k.ok(&[
        "patch",
        "clusterrole",
        "litellm-impl",
        "--type=json",
        "-p",
        &patch.to_string(),
    ]);
}

/// A related cache that cannot list (RBAC lost `list` on Secrets) makes `/readyz` fail
/// and say which cache and why, in one line per problem; it recovers once the
/// permission is back.
#[test]
fn real_cluster_readyz_fails_while_a_related_list_is_forbidden() {
    let _one_at_a_time = RealCluster::exclusive();
    let cluster = cluster_with_bundle(Crds::Ours);
    let k = Kubectl { cluster: &cluster };
    let role = k.json(&["get", "clusterrole", "litellm-impl"]);
    assert!(
        role["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["resources"] == serde_json::json!(["secrets"])
                && r["verbs"] == serde_json::json!(["get", "list", "watch"])),
        "the bundle grants get, list and watch on Secrets in a rule of their own: {role}"
    );
    grant_on(&k, "secrets", &["get"]);
    let operator = start_operator(
        &cluster,
        SERVICE_ACCOUNT,
        "replica-a",
        &["--leader-elect=false"],
    );
    let body = eventually(
        "/readyz to fail",
        Duration::from_secs(60),
        || operator.log(),
        || {
            let (status, body) = http_get(operator.admin_port, "/readyz")?;
            (status == 503 && body.contains("Secret")).then_some(body)
        },
    );
    assert!(
        body.contains("cannot list or watch") && body.contains("403"),
        "{body}"
    );
    assert!(!body.contains("Status {"), "no debug dump: {body}");

    grant_on(&k, "secrets", &["get", "list", "watch"]);
    // The watch retries with backoff (capped at 30 s).
    eventually(
        "/readyz to recover",
        Duration::from_secs(60),
        || operator.log(),
        || (operator.readyz() == Some(200)).then_some(()),
    );
    println!("scenario readyz-forbidden: passed");
}
