//! Differential check: one scripted sequence of raw HTTP requests and `kubectl` commands
//! runs against the testkit and against a real kube-apiserver (with etcd,
//! kube-controller-manager, kube-scheduler and kwok, see `scripts/control-plane`). Each
//! step yields a normalised [`Record`]: the status code (or kubectl exit code) and the
//! fields a client reads, with values that differ between any two servers (uids,
//! timestamps, resourceVersion numbers) reduced to their presence or ordering.
//!
//! Every step whose records differ fails the real-cluster test, except the steps listed
//! in [`KNOWN_DIFFERENCES`], each with its reason; `docs/explanation/testkit.md` lists the
//! same table (checked here), and a listed step that no longer differs fails too, so the
//! table cannot rot.
//!
//! The fast tier (`cargo test -- --skip real_cluster_`) runs the script against the
//! testkit alone and checks the comparison and the documentation.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use aigateway_testkit::ApiServer;
use aigateway_testkit::real_cluster::RealCluster;
use http_body_util::BodyExt;
use serde_json::{Value, json};

/// Steps whose outcome differs on purpose, with the reason; the same list, worded the
/// same, is in `docs/explanation/testkit.md` under "Known differences from a real API
/// server".
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[
    (
        "selector/label-invalid",
        "both answer 400 BadRequest, but the testkit's label selector parser words the message differently.",
    ),
    (
        "watch/from-resource-version-1-after-compaction",
        "the testkit's compaction hook (`Faults::compact_history`) expires every earlier resourceVersion at once, so that tests can force the 410 and relist path; after an etcd compaction a real API server keeps serving watches from its watch cache and answers 410 only once that cache has moved on (many writes and minutes later).",
    ),
    (
        "list/exact-recent-after-compaction",
        "the testkit serves every list at its latest resourceVersion and answers 410 for `resourceVersionMatch=Exact` below its compacted history; a real API server serves the exact version from its watch cache snapshots, even after an etcd compaction.",
    ),
    (
        "events/deployment-controller",
        "no Deployment or ReplicaSet controller runs in the testkit: Deployment status is simulated and no `ScalingReplicaSet` events are recorded.",
    ),
    (
        "namespace/root-ca-configmap",
        "no kube-controller-manager runs in the testkit: a new namespace gets no `kube-root-ca.crt` ConfigMap.",
    ),
    (
        "namespace/default-serviceaccount",
        "no kube-controller-manager runs in the testkit: a new namespace gets no `default` ServiceAccount.",
    ),
];

/// The namespace the script works in; it is created first and deleted last.
const NS: &str = "differential";

/// The CRD the script installs (one of ours), and its plural.
const CRD_FILE: &str = "deploy/crds/aigateways.runtime.agentic-layer.ai.yaml";
const CRS: &str = "/apis/runtime.agentic-layer.ai/v1alpha1/namespaces/differential/aigateways";
const CMS: &str = "/api/v1/namespaces/differential/configmaps";
const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/differential/deployments";

/// How long to wait for something a real cluster does asynchronously (garbage
/// collection, a rollout through kwok); the testkit does it within the request.
const CONVERGE: Duration = Duration::from_secs(90);

// ---------------------------------------------------------------------------------------
// Records and their comparison
// ---------------------------------------------------------------------------------------

/// The observable outcome of one step.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Record {
    step: String,
    /// `HTTP 201`, `exit 0`, ...
    status: String,
    fields: Value,
}

/// Compares the records of both servers; `Err` lists every unexpected difference and
/// every known difference that no longer differs.
fn compare(testkit: &[Record], real: &[Record], known: &[(&str, &str)]) -> Result<(), String> {
    let by_step = |records: &[Record]| -> BTreeMap<String, Record> {
        records
            .iter()
            .map(|r| (r.step.clone(), r.clone()))
            .collect()
    };
    let (ours, theirs) = (by_step(testkit), by_step(real));
    let steps: BTreeSet<&String> = ours.keys().chain(theirs.keys()).collect();
    let known: BTreeMap<&str, &str> = known.iter().copied().collect();
    let show = |r: Option<&Record>| match r {
        Some(r) => serde_json::to_string(&json!({"status": r.status, "fields": r.fields}))
            .unwrap_or_default(),
        None => "(step not run)".into(),
    };
    let mut problems = Vec::new();
    for step in &steps {
        let (a, b) = (ours.get(*step), theirs.get(*step));
        let same = a.map(|r| (&r.status, &r.fields)) == b.map(|r| (&r.status, &r.fields));
        match (same, known.get(step.as_str())) {
            (false, None) => problems.push(format!(
                "step `{step}` differs:\n    testkit: {}\n    real:    {}",
                show(a),
                show(b)
            )),
            (true, Some(_)) => problems.push(format!(
                "step `{step}` now behaves as on a real API server: remove it from KNOWN_DIFFERENCES and from docs/explanation/testkit.md"
            )),
            _ => {}
        }
    }
    for step in known.keys() {
        if !steps.iter().any(|s| s.as_str() == *step) {
            problems.push(format!(
                "KNOWN_DIFFERENCES names `{step}`, which the script does not run: remove it from KNOWN_DIFFERENCES"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} difference(s) between the testkit and a real API server:\n{}",
            problems.len(),
            problems.join("\n")
        ))
    }
}

// ---------------------------------------------------------------------------------------
// The two servers
// ---------------------------------------------------------------------------------------

/// How a server's history is compacted, so that old resourceVersions expire.
enum Compaction {
    Testkit(ApiServer),
    /// etcd's client URL (its JSON gateway accepts `/v3/kv/compaction`).
    Etcd(String),
}

/// One server the script runs against.
struct Target {
    kubeconfig: PathBuf,
    /// kubectl's HOME (its discovery cache), separate per server.
    home: tempfile::TempDir,
    client: kube::Client,
    compaction: Compaction,
}

/// The answer to one HTTP request.
struct Reply {
    code: u16,
    body: Value,
    warnings: Vec<String>,
}

/// The outcome of one kubectl command.
struct KubectlRun {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn client_for(kubeconfig: &Path) -> kube::Client {
    let file = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(file, &Default::default())
        .await
        .expect("kubeconfig is usable");
    kube::Client::try_from(config).expect("client builds")
}

impl Target {
    async fn new(kubeconfig: PathBuf, compaction: Compaction) -> Self {
        Self {
            client: client_for(&kubeconfig).await,
            kubeconfig,
            home: tempfile::tempdir().expect("temp dir"),
            compaction,
        }
    }

    async fn send(
        &self,
        method: &str,
        uri: &str,
        content_type: &str,
        body: Option<&Value>,
    ) -> Reply {
        let bytes = match (content_type, body) {
            (_, None) => Vec::new(),
            (t, Some(b)) if t.contains("yaml") => serde_json::to_vec(b).unwrap(),
            (_, Some(b)) => serde_json::to_vec(b).unwrap(),
        };
        let request = http::Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", content_type)
            .header("accept", "application/json")
            .body(kube::client::Body::from(bytes))
            .unwrap();
        let response = self
            .client
            .send(request)
            .await
            .unwrap_or_else(|e| panic!("{method} {uri}: {e}"));
        let code = response.status().as_u16();
        let warnings = response
            .headers()
            .get_all("warning")
            .iter()
            .map(|v| normalise(v.to_str().unwrap_or_default()))
            .collect();
        let bytes = response
            .into_body()
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{method} {uri}: reading the body: {e}"))
            .to_bytes();
        let body = if uri.contains("watch=1") {
            // Watch streams are JSON lines.
            Value::Array(
                String::from_utf8_lossy(&bytes)
                    .lines()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect(),
            )
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Reply {
            code,
            body,
            warnings,
        }
    }

    async fn get(&self, uri: &str) -> Reply {
        self.send("GET", uri, "application/json", None).await
    }

    async fn post(&self, uri: &str, body: &Value) -> Reply {
        self.send("POST", uri, "application/json", Some(body)).await
    }

    async fn put(&self, uri: &str, body: &Value) -> Reply {
        self.send("PUT", uri, "application/json", Some(body)).await
    }

    async fn delete(&self, uri: &str) -> Reply {
        self.send("DELETE", uri, "application/json", None).await
    }

    async fn merge(&self, uri: &str, body: &Value) -> Reply {
        self.send("PATCH", uri, "application/merge-patch+json", Some(body))
            .await
    }

    async fn apply(&self, uri: &str, body: &Value) -> Reply {
        self.send("PATCH", uri, "application/apply-patch+yaml", Some(body))
            .await
    }

    /// Polls `uri` until `done` holds or [`CONVERGE`] passes; returns the last reply.
    async fn poll(&self, uri: &str, done: impl Fn(&Reply) -> bool) -> Reply {
        let deadline = tokio::time::Instant::now() + CONVERGE;
        loop {
            let reply = self.get(uri).await;
            if done(&reply) || tokio::time::Instant::now() > deadline {
                return reply;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn kubectl(&self, args: &[&str]) -> KubectlRun {
        let output = tokio::process::Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.home.path())
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .expect("kubectl runs (is it installed?)");
        KubectlRun {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Makes every resourceVersion up to `rv` unavailable for lists and watches.
    async fn compact(&self, rv: u64) {
        match &self.compaction {
            Compaction::Testkit(server) => server.faults().compact_history(),
            Compaction::Etcd(url) => {
                let body = json!({"revision": rv.to_string(), "physical": true}).to_string();
                let out = tokio::process::Command::new("curl")
                    .args([
                        "-fsS",
                        "-X",
                        "POST",
                        &format!("{url}/v3/kv/compaction"),
                        "-d",
                        &body,
                    ])
                    .output()
                    .await
                    .expect("curl runs");
                assert!(
                    out.status.success(),
                    "compacting etcd at revision {rv} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Normalisation
// ---------------------------------------------------------------------------------------

/// Replaces numbers (resourceVersions, generated suffixes, durations) by `N`.
fn normalise(text: &str) -> String {
    let numbers = regex::Regex::new(r"[0-9]+").unwrap();
    numbers.replace_all(text, "N").into_owned()
}

fn rv_of(v: &Value) -> u64 {
    v.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The keys present in `metadata` (values of uid, timestamps etc. differ by nature).
fn meta_keys(v: &Value) -> Value {
    let keys: Vec<&String> = v
        .get("metadata")
        .and_then(Value::as_object)
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    json!(keys)
}

/// `(manager, operation, subresource)` of each managedFields entry, sorted.
fn managers(v: &Value) -> Value {
    let mut out: Vec<String> = v
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|m| {
            format!(
                "{}/{}/{}",
                m["manager"].as_str().unwrap_or(""),
                m["operation"].as_str().unwrap_or(""),
                m["subresource"].as_str().unwrap_or("")
            )
        })
        .collect();
    out.sort();
    json!(out)
}

/// What a client reads from a `metav1.Status` error. The order of a 422's causes
/// (and so of the list in its message) is not stable on a real server: causes are
/// compared as a set, and the message as its prefix plus whether it names every cause.
fn status_fields(body: &Value) -> Value {
    let mut causes: Vec<Value> = body
        .pointer("/details/causes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    causes.sort_by_key(|c| c.to_string());
    let mut message = normalise(body["message"].as_str().unwrap_or(""));
    if body["reason"] == "Invalid"
        && causes.len() > 1
        && let Some((prefix, _)) = message.split_once(" is invalid: ")
    {
        let raw = body["message"].as_str().unwrap_or("");
        let names_all = causes.iter().all(|c| {
            raw.contains(&format!(
                "{}: {}",
                c["field"].as_str().unwrap_or(""),
                c["message"].as_str().unwrap_or("")
            ))
        });
        message = format!("{prefix} is invalid: [every cause, as `field: message`: {names_all}]");
    }
    json!({
        "kind": body["kind"],
        "status": body["status"],
        "reason": body["reason"],
        "code": body["code"],
        "message": message,
        "details": {
            "name": body.pointer("/details/name"),
            "group": body.pointer("/details/group"),
            "kind": body.pointer("/details/kind"),
            "causes": causes,
        },
    })
}

fn names(list: &Value) -> Value {
    let mut out: Vec<&str> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i.pointer("/metadata/name").and_then(Value::as_str))
        .collect();
    out.sort_unstable();
    json!(out)
}

/// The conditions' `(type, status, reason)`, sorted by type.
fn conditions(v: &Value, pointer: &str) -> Value {
    let mut out: Vec<Value> = v
        .pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| json!([c["type"], c["status"], c["reason"]]))
        .collect();
    out.sort_by_key(|c| c.to_string());
    json!(out)
}

/// Watch events as `(type, name, data or Status)`.
fn watch_events(lines: &Value) -> Value {
    json!(
        lines
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["type"] != "BOOKMARK")
            .map(|e| {
                let object = &e["object"];
                if e["type"] == "ERROR" {
                    json!([e["type"], status_fields(object)])
                } else {
                    json!([
                        e["type"],
                        object.pointer("/metadata/name"),
                        object.get("data")
                    ])
                }
            })
            .collect::<Vec<_>>()
    )
}

fn header_of(table: &str) -> Value {
    json!(
        table
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>()
    )
}

// ---------------------------------------------------------------------------------------
// The script
// ---------------------------------------------------------------------------------------

struct Script<'a> {
    target: &'a Target,
    records: Vec<Record>,
}

impl Script<'_> {
    fn http(&mut self, step: &str, reply: &Reply, fields: Value) {
        self.records.push(Record {
            step: step.into(),
            status: format!("HTTP {}", reply.code),
            fields,
        });
    }

    /// Records an error reply: its code and the Status a client reads.
    fn error(&mut self, step: &str, reply: &Reply) {
        let fields = status_fields(&reply.body);
        self.http(step, reply, fields);
    }

    fn kubectl(&mut self, step: &str, run: &KubectlRun, fields: Value) {
        self.records.push(Record {
            step: step.into(),
            status: format!("exit {}", run.code),
            fields,
        });
    }
}

fn configmap(name: &str, labels: Value, data: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "data": data,
    })
}

fn gateway(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "runtime.agentic-layer.ai/v1alpha1", "kind": "AiGateway",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    })
}

fn deployment(name: &str, env: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "nginx:1.27", "env": env}]},
            },
        },
    })
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the testkit lives in the workspace")
        .to_path_buf()
}

async fn run_script(target: &Target) -> Vec<Record> {
    let mut s = Script {
        target,
        records: Vec::new(),
    };
    namespace_and_configmap_crud(&mut s).await;
    selectors(&mut s).await;
    server_side_apply(&mut s).await;
    custom_resources(&mut s).await;
    watches(&mut s).await;
    garbage_collection(&mut s).await;
    deployments(&mut s).await;
    events(&mut s).await;
    deletions(&mut s).await;
    namespace_deletion(&mut s).await;
    s.records
}

async fn namespace_and_configmap_crud(s: &mut Script<'_>) {
    let t = s.target;
    let r = t
        .post(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
        )
        .await;
    s.http(
        "namespace/create",
        &r,
        json!({"name": r.body.pointer("/metadata/name"), "phase": r.body.pointer("/status/phase"),
               "finalizers": r.body.pointer("/spec/finalizers"), "metadata": meta_keys(&r.body)}),
    );

    let settings = configmap("settings", json!({"suite": "diff"}), json!({"a": "1"}));
    let created = t.post(CMS, &settings).await;
    s.http(
        "configmap/create",
        &created,
        json!({"kind": created.body["kind"], "apiVersion": created.body["apiVersion"],
               "data": created.body["data"], "metadata": meta_keys(&created.body),
               "managers": managers(&created.body)}),
    );
    let r = t.post(CMS, &settings).await;
    s.error("configmap/create-existing", &r);
    let r = t
        .post(CMS, &configmap("Bad_Name", json!({}), json!({})))
        .await;
    s.error("configmap/create-invalid-name", &r);
    let r = t
        .post(
            CMS,
            &configmap("bad-label", json!({"app": "not valid!"}), json!({})),
        )
        .await;
    s.error("configmap/create-invalid-label", &r);
    let r = t
        .post(CMS, &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-", "namespace": NS}}))
        .await;
    s.http(
        "configmap/create-generate-name",
        &r,
        json!({"name": normalise(r.body.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("")).len() > 4,
               "generateName": r.body.pointer("/metadata/generateName")}),
    );

    let got = t.get(&format!("{CMS}/settings")).await;
    s.http(
        "configmap/get",
        &got,
        json!({"data": got.body["data"], "sameVersion": rv_of(&got.body) == rv_of(&created.body),
               "metadata": meta_keys(&got.body)}),
    );

    let mut update = got.body.clone();
    update["data"] = json!({"a": "2"});
    let updated = t.put(&format!("{CMS}/settings"), &update).await;
    s.http(
        "configmap/update",
        &updated,
        json!({"data": updated.body["data"], "newerVersion": rv_of(&updated.body) > rv_of(&got.body),
               "managers": managers(&updated.body)}),
    );
    let r = t.put(&format!("{CMS}/settings"), &update).await;
    s.error("configmap/update-stale", &r);
    let mut unconditional = update.clone();
    unconditional["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    unconditional["data"] = json!({"a": "3"});
    let r = t.put(&format!("{CMS}/settings"), &unconditional).await;
    s.http(
        "configmap/update-unconditional",
        &r,
        json!({"data": r.body["data"], "newerVersion": rv_of(&r.body) > rv_of(&updated.body)}),
    );
    let r = t
        .put(
            &format!("{CMS}/other"),
            &configmap("settings", json!({}), json!({})),
        )
        .await;
    s.error("configmap/update-name-mismatch", &r);
    let r = t
        .put(
            &format!("{CMS}/missing"),
            &configmap("missing", json!({}), json!({"x": "1"})),
        )
        .await;
    s.http(
        "configmap/update-missing-creates",
        &r,
        json!({"data": r.body["data"]}),
    );

    let before = t.get(&format!("{CMS}/settings")).await;
    let r = t
        .merge(
            &format!("{CMS}/settings?fieldManager=ops"),
            &json!({"data": {"b": "x", "a": null}}),
        )
        .await;
    s.http(
        "configmap/merge-patch",
        &r,
        json!({"data": r.body["data"], "newerVersion": rv_of(&r.body) > rv_of(&before.body)}),
    );
    let unchanged = t
        .merge(
            &format!("{CMS}/settings?fieldManager=ops"),
            &json!({"data": {"b": "x"}}),
        )
        .await;
    s.http(
        "configmap/merge-patch-no-change",
        &unchanged,
        json!({"sameVersion": rv_of(&unchanged.body) == rv_of(&r.body)}),
    );
    let r = t
        .send(
            "PATCH",
            &format!("{CMS}/settings"),
            "application/json-patch+json",
            Some(&json!([{"op": "test", "path": "/data/b", "value": "y"}, {"op": "remove", "path": "/data/b"}])),
        )
        .await;
    s.error("configmap/json-patch-test-fails", &r);
    let r = t
        .send(
            "PATCH",
            &format!("{CMS}/settings"),
            "application/json-patch+json",
            Some(&json!([{"op": "test", "path": "/data/b", "value": "x"}, {"op": "add", "path": "/data/c", "value": "z"}])),
        )
        .await;
    s.http("configmap/json-patch", &r, json!({"data": r.body["data"]}));
    let r = t
        .send(
            "PATCH",
            &format!("{CMS}/settings"),
            "application/strategic-merge-patch+json",
            Some(&json!({"data": {"d": "w"}})),
        )
        .await;
    s.http(
        "configmap/strategic-merge-patch",
        &r,
        json!({"data": r.body["data"]}),
    );
    let r = t
        .send(
            "PATCH",
            &format!("{CMS}/settings"),
            "text/plain",
            Some(&json!({})),
        )
        .await;
    s.error("configmap/patch-unsupported-type", &r);

    let r = t.get(&format!("{CMS}/nothing")).await;
    s.error("configmap/get-missing", &r);
    let r = t.get(&format!("{CMS}?labelSelector=suite%3Ddiff")).await;
    s.http(
        "configmap/list",
        &r,
        json!({"kind": r.body["kind"], "apiVersion": r.body["apiVersion"],
               "metadata": r.body["metadata"].as_object().map(|m| m.keys().cloned().collect::<Vec<_>>()),
               "names": names(&r.body),
               "itemsHaveKind": r.body["items"][0].get("kind").is_some()}),
    );
    let run = t
        .kubectl(&["get", "configmaps", "-n", NS, "-l", "suite=diff"])
        .await;
    s.kubectl("configmap/kubectl-get-table", &run, header_of(&run.stdout));

    let r = t.delete(&format!("{CMS}/settings")).await;
    s.http(
        "configmap/delete",
        &r,
        json!({"kind": r.body["kind"], "status": r.body["status"], "details": r.body.get("details").map(|d| {
            json!({"name": d["name"], "group": d.get("group"), "kind": d["kind"], "uid": d.get("uid").is_some()})
        })}),
    );
    let r = t.get(&format!("{CMS}/settings")).await;
    s.error("configmap/get-deleted", &r);
    let r = t.delete(&format!("{CMS}/settings")).await;
    s.error("configmap/delete-missing", &r);
}

async fn selectors(s: &mut Script<'_>) {
    let t = s.target;
    for (name, labels) in [
        ("sel-a", json!({"suite": "sel", "app": "a", "tier": "web"})),
        ("sel-b", json!({"suite": "sel", "app": "b", "tier": "db"})),
        ("sel-c", json!({"suite": "sel", "tier": "web"})),
    ] {
        t.post(CMS, &configmap(name, labels, json!({"k": name})))
            .await;
    }
    for (step, query) in [
        ("selector/label-equals", "labelSelector=suite%3Dsel,app%3Da"),
        (
            "selector/label-in",
            "labelSelector=suite%3Dsel,app+in+(a,b)",
        ),
        (
            "selector/label-notin",
            "labelSelector=suite%3Dsel,app+notin+(a)",
        ),
        (
            "selector/label-not-equals",
            "labelSelector=suite%3Dsel,tier!%3Dweb",
        ),
        ("selector/label-exists", "labelSelector=suite%3Dsel,app"),
        (
            "selector/label-not-exists",
            "labelSelector=suite%3Dsel,!app",
        ),
        ("selector/field-name", "fieldSelector=metadata.name%3Dsel-b"),
        (
            "selector/field-name-not",
            "labelSelector=suite%3Dsel&fieldSelector=metadata.name!%3Dsel-b",
        ),
        (
            "selector/field-namespace",
            "labelSelector=suite%3Dsel&fieldSelector=metadata.namespace%3Ddifferential",
        ),
    ] {
        let r = t.get(&format!("{CMS}?{query}")).await;
        s.http(step, &r, names(&r.body));
    }
    for (step, query) in [
        ("selector/field-unsupported", "fieldSelector=data.k%3Dsel-a"),
        ("selector/label-invalid", "labelSelector=app+in+(a"),
        ("selector/field-invalid", "fieldSelector=metadata.name"),
    ] {
        let r = t.get(&format!("{CMS}?{query}")).await;
        s.error(step, &r);
    }
    let run = t
        .kubectl(&[
            "get",
            "configmaps",
            "-n",
            NS,
            "-l",
            "suite=sel,tier=web",
            "-o",
            "name",
        ])
        .await;
    s.kubectl(
        "selector/kubectl-label",
        &run,
        json!(run.stdout.lines().collect::<Vec<_>>()),
    );
}

async fn server_side_apply(s: &mut Script<'_>) {
    let t = s.target;
    let uri = |manager: &str, force: bool| {
        format!(
            "{CMS}/applied?fieldManager={manager}{}",
            if force { "&force=true" } else { "" }
        )
    };
    let mine = configmap(
        "applied",
        json!({"suite": "ssa"}),
        json!({"key": "one", "alice": "yes"}),
    );
    let r = t.apply(&uri("alice", false), &mine).await;
    s.http(
        "apply/create",
        &r,
        json!({"data": r.body["data"], "managers": managers(&r.body),
               "fieldsV1": r.body.pointer("/metadata/managedFields/0/fieldsV1")}),
    );
    let again = t.apply(&uri("alice", false), &mine).await;
    s.http(
        "apply/no-change",
        &again,
        json!({"sameVersion": rv_of(&again.body) == rv_of(&r.body)}),
    );
    let theirs = configmap("applied", json!({}), json!({"key": "two"}));
    let r = t.apply(&uri("bob", false), &theirs).await;
    s.error("apply/conflict", &r);
    let r = t.apply(&uri("bob", true), &theirs).await;
    s.http(
        "apply/force",
        &r,
        json!({"data": r.body["data"], "managers": managers(&r.body)}),
    );
    // alice stops applying `alice`: the field she alone owned goes away.
    let fewer = configmap("applied", json!({"suite": "ssa"}), json!({}));
    let r = t.apply(&uri("alice", false), &fewer).await;
    s.http(
        "apply/remove-unapplied-field",
        &r,
        json!({"data": r.body["data"], "managers": managers(&r.body)}),
    );
    let r = t.apply(&format!("{CMS}/applied"), &theirs).await;
    s.error("apply/without-field-manager", &r);
    let r = t
        .apply(
            &uri("bob", false),
            &configmap("other-name", json!({}), json!({})),
        )
        .await;
    s.error("apply/name-mismatch", &r);
    let r = t
        .merge(
            &format!("{CMS}/applied?fieldManager=carol"),
            &json!({"data": {"key": "three"}}),
        )
        .await;
    s.http(
        "apply/update-takes-ownership",
        &r,
        json!({"data": r.body["data"], "managers": managers(&r.body)}),
    );
    let r = t.apply(&uri("bob", false), &theirs).await;
    s.error("apply/conflict-with-updater", &r);
    let run = t
        .kubectl(&["apply", "--server-side", "--field-manager=dave", "-f", "-"])
        .await;
    // stdin is null: kubectl reports that there is nothing to apply.
    s.kubectl(
        "apply/kubectl-no-input",
        &run,
        json!({"error": normalise(run.stderr.trim())}),
    );
}

async fn custom_resources(s: &mut Script<'_>) {
    let t = s.target;
    let crd = repo_root().join(CRD_FILE);
    let run = t
        .kubectl(&["apply", "--server-side", "-f", crd.to_str().unwrap()])
        .await;
    s.kubectl("crd/kubectl-apply", &run, json!(run.stdout.trim()));
    let run = t
        .kubectl(&[
            "wait",
            "--for=condition=Established",
            "crd/aigateways.runtime.agentic-layer.ai",
            "--timeout=60s",
        ])
        .await;
    s.kubectl(
        "crd/kubectl-wait-established",
        &run,
        json!(run.stdout.trim()),
    );
    let r = t
        .get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/aigateways.runtime.agentic-layer.ai")
        .await;
    s.http(
        "crd/get",
        &r,
        json!({"conditions": conditions(&r.body, "/status/conditions"),
               "acceptedNames": r.body.pointer("/status/acceptedNames"),
               "storedVersions": r.body.pointer("/status/storedVersions")}),
    );
    // Discovery can lag the Established condition by a moment on a real server.
    t.poll(CRS, |r| r.code == 200).await;

    let models = json!([{"name": "gpt-4", "provider": "openai"}]);
    let created = t
        .post(
            &format!("{CRS}?fieldManager=ops"),
            &gateway("gw", json!({"aiModels": models})),
        )
        .await;
    s.http(
        "cr/create",
        &created,
        json!({"spec": created.body["spec"], "generation": created.body.pointer("/metadata/generation"),
               "metadata": meta_keys(&created.body), "managers": managers(&created.body)}),
    );
    let r = t
        .post(CRS, &gateway("bad", json!({"aiModels": [], "port": 0})))
        .await;
    s.error("cr/create-invalid", &r);
    let r = t.post(CRS, &gateway("bad", json!({"port": 70000}))).await;
    s.error("cr/create-invalid-required-and-maximum", &r);
    let r = t
        .post(
            CRS,
            &gateway("bad", json!({"aiModels": [{"name": "", "provider": 7}]})),
        )
        .await;
    s.error("cr/create-invalid-item", &r);
    let r = t
        .post(
            CRS,
            &gateway("pruned", json!({"aiModels": models, "bogus": true})),
        )
        .await;
    s.http(
        "cr/create-unknown-field-pruned",
        &r,
        json!({"spec": r.body["spec"], "warnings": r.warnings}),
    );
    let r = t
        .post(
            &format!("{CRS}?fieldValidation=Strict"),
            &gateway("strict", json!({"aiModels": models, "bogus": true})),
        )
        .await;
    s.error("cr/create-unknown-field-strict", &r);
    let r = t.get(CRS).await;
    s.http(
        "cr/list",
        &r,
        json!({"kind": r.body["kind"], "names": names(&r.body)}),
    );
    let run = t.kubectl(&["get", "aigw", "-n", NS]).await;
    s.kubectl("cr/kubectl-get-table", &run, header_of(&run.stdout));

    // Status subresource.
    let condition = json!({"type": "Ready", "status": "True", "reason": "Tested", "message": "",
                           "lastTransitionTime": "2025-01-01T00:00:00Z"});
    let r = t
        .merge(
            &format!("{CRS}/gw/status?fieldManager=ctrl"),
            &json!({"status": {"conditions": [condition]}}),
        )
        .await;
    s.http(
        "status/write",
        &r,
        json!({"status": r.body["status"], "generation": r.body.pointer("/metadata/generation"),
               "managers": managers(&r.body)}),
    );
    let r = t
        .merge(
            &format!("{CRS}/gw?fieldManager=ops"),
            &json!({"spec": {"port": 81}, "status": {"url": "http://main"}}),
        )
        .await;
    s.http(
        "status/main-write-keeps-status",
        &r,
        json!({"status": r.body["status"], "port": r.body.pointer("/spec/port"),
               "generation": r.body.pointer("/metadata/generation")}),
    );
    let r = t
        .merge(
            &format!("{CRS}/gw/status?fieldManager=ctrl"),
            &json!({"spec": {"port": 82}, "status": {"url": "http://status"}}),
        )
        .await;
    s.http(
        "status/status-write-keeps-spec",
        &r,
        json!({"url": r.body.pointer("/status/url"), "port": r.body.pointer("/spec/port"),
               "generation": r.body.pointer("/metadata/generation")}),
    );
    let r = t
        .merge(
            &format!("{CRS}/gw/status?fieldManager=ctrl"),
            &json!({"status": {"conditions": [{"type": "Ready", "status": "Maybe"}]}}),
        )
        .await;
    s.error("status/invalid", &r);
    let r = t
        .apply(
            &format!("{CRS}/gw/status?fieldManager=ctrl2"),
            &json!({"apiVersion": "runtime.agentic-layer.ai/v1alpha1", "kind": "AiGateway",
                    "metadata": {"name": "gw", "namespace": NS},
                    "status": {"url": "http://other"}}),
        )
        .await;
    s.error("status/apply-conflict", &r);

    // Server-side apply on a custom resource.
    let applied = gateway("gw", json!({"aiModels": models, "port": 90}));
    let r = t
        .apply(&format!("{CRS}/gw?fieldManager=alice"), &applied)
        .await;
    s.error("cr-apply/conflict", &r);
    let r = t
        .apply(&format!("{CRS}/gw?fieldManager=alice&force=true"), &applied)
        .await;
    s.http(
        "cr-apply/force",
        &r,
        json!({"spec": r.body["spec"], "managers": managers(&r.body),
               "generation": r.body.pointer("/metadata/generation")}),
    );
    let r = t
        .apply(
            &format!("{CRS}/gw?fieldManager=alice"),
            &gateway("gw", json!({"aiModels": models, "port": 0})),
        )
        .await;
    s.error("cr-apply/invalid", &r);
    let r = t
        .apply(
            &format!("{CRS}/fresh?fieldManager=alice"),
            &gateway("fresh", json!({"aiModels": models})),
        )
        .await;
    s.http(
        "cr-apply/create",
        &r,
        json!({"spec": r.body["spec"], "managers": managers(&r.body),
               "fieldsV1": r.body.pointer("/metadata/managedFields/0/fieldsV1")}),
    );
}

async fn watches(s: &mut Script<'_>) {
    let t = s.target;
    let created = t
        .post(
            CMS,
            &configmap("watched", json!({"suite": "watch"}), json!({"v": "1"})),
        )
        .await;
    let from = rv_of(&created.body);
    t.merge(&format!("{CMS}/watched"), &json!({"data": {"v": "2"}}))
        .await;
    t.post(
        CMS,
        &configmap("watched-2", json!({"suite": "watch"}), json!({"v": "1"})),
    )
    .await;
    t.merge(
        &format!("{CMS}/watched"),
        &json!({"metadata": {"labels": {"suite": "gone"}}}),
    )
    .await;
    t.delete(&format!("{CMS}/watched-2")).await;
    let last = t.get(&format!("{CMS}/watched")).await;

    let r = t
        .get(&format!(
            "{CMS}?watch=1&resourceVersion={from}&timeoutSeconds=2"
        ))
        .await;
    s.http("watch/from-resource-version", &r, watch_events(&r.body));
    let r = t
        .get(&format!(
            "{CMS}?watch=1&resourceVersion={from}&labelSelector=suite%3Dwatch&timeoutSeconds=2"
        ))
        .await;
    s.http("watch/label-selector-moves", &r, watch_events(&r.body));
    let r = t
        .get(&format!(
            "{CMS}?watch=1&labelSelector=suite%3Dsel&timeoutSeconds=2"
        ))
        .await;
    let mut initial = watch_events(&r.body)
        .as_array()
        .cloned()
        .unwrap_or_default();
    initial.sort_by_key(|e| e.to_string());
    s.http("watch/without-resource-version", &r, json!(initial));
    let early = "fieldSelector=metadata.name%3Dwatched&timeoutSeconds=2";
    let r = t
        .get(&format!("{CMS}?watch=1&resourceVersion=1&{early}"))
        .await;
    s.http("watch/from-resource-version-1", &r, watch_events(&r.body));

    // etcd compaction (the testkit: its fault hook). A real kube-apiserver v1.34 keeps
    // answering from its watch cache, so no 410 follows there (see KNOWN_DIFFERENCES).
    t.compact(rv_of(&last.body)).await;
    let r = t
        .get(&format!("{CMS}?watch=1&resourceVersion=1&{early}"))
        .await;
    s.http(
        "watch/from-resource-version-1-after-compaction",
        &r,
        watch_events(&r.body),
    );
    let r = t
        .get(&format!(
            "{CMS}?resourceVersion={from}&resourceVersionMatch=Exact&labelSelector=suite%3Dwatch"
        ))
        .await;
    s.http("list/exact-recent-after-compaction", &r, names(&r.body));
    let r = t
        .get(&format!(
            "{CMS}?resourceVersion=0&labelSelector=suite%3Dsel"
        ))
        .await;
    s.http("list/resource-version-0", &r, names(&r.body));
    let r = t.get(&format!("{CMS}?resourceVersion=abc")).await;
    s.error("list/invalid-resource-version", &r);
}

async fn garbage_collection(s: &mut Script<'_>) {
    let t = s.target;
    let owned_by = |owner: &Reply, block: bool| {
        json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": owner.body["metadata"]["name"],
                "uid": owner.body["metadata"]["uid"], "blockOwnerDeletion": block}])
    };
    for (mode, query) in [
        ("background", ""),
        ("orphan", "?propagationPolicy=Orphan"),
        ("foreground", "?propagationPolicy=Foreground"),
    ] {
        let owner = t
            .post(
                CMS,
                &configmap(&format!("owner-{mode}"), json!({"suite": "gc"}), json!({})),
            )
            .await;
        let mut dependent = configmap(&format!("dep-{mode}"), json!({"suite": "gc"}), json!({}));
        dependent["metadata"]["ownerReferences"] = owned_by(&owner, mode == "foreground");
        t.post(CMS, &dependent).await;
        let r = t.delete(&format!("{CMS}/owner-{mode}{query}")).await;
        s.http(
            &format!("gc/{mode}-delete-owner"),
            &r,
            json!({"kind": r.body["kind"],
                   "deleting": r.body.pointer("/metadata/deletionTimestamp").is_some(),
                   "finalizers": r.body.pointer("/metadata/finalizers")}),
        );
        let owner_gone = t
            .poll(&format!("{CMS}/owner-{mode}"), |r| r.code == 404)
            .await;
        let dep_uri = format!("{CMS}/dep-{mode}");
        let dependent = if mode == "orphan" {
            t.poll(&dep_uri, |r| {
                r.body
                    .pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .is_none_or(Vec::is_empty)
            })
            .await
        } else {
            t.poll(&dep_uri, |r| r.code == 404).await
        };
        s.http(
            &format!("gc/{mode}-dependent"),
            &dependent,
            json!({"owner": owner_gone.code, "ownerReferences": dependent.body.pointer("/metadata/ownerReferences")}),
        );
    }
}

async fn deployments(s: &mut Script<'_>) {
    let t = s.target;
    let run = t
        .kubectl(&[
            "create",
            "deployment",
            "web",
            "--image=nginx:1.27",
            "-n",
            NS,
        ])
        .await;
    s.kubectl("deployment/kubectl-create", &run, json!(run.stdout.trim()));
    let r = t.get(&format!("{DEPLOYMENTS}/web")).await;
    let spec = &r.body["spec"];
    let pod = &spec["template"]["spec"];
    s.http(
        "deployment/defaults",
        &r,
        json!({"replicas": spec["replicas"], "strategy": spec["strategy"],
               "revisionHistoryLimit": spec["revisionHistoryLimit"],
               "progressDeadlineSeconds": spec["progressDeadlineSeconds"],
               "selector": spec["selector"], "templateLabels": spec["template"]["metadata"]["labels"],
               "restartPolicy": pod["restartPolicy"], "dnsPolicy": pod["dnsPolicy"],
               "schedulerName": pod["schedulerName"],
               "terminationGracePeriodSeconds": pod["terminationGracePeriodSeconds"],
               "securityContext": pod["securityContext"], "container": pod["containers"][0],
               "generation": r.body.pointer("/metadata/generation")}),
    );
    let run = t
        .kubectl(&[
            "rollout",
            "status",
            "deployment/web",
            "-n",
            NS,
            "--timeout=90s",
        ])
        .await;
    s.kubectl(
        "deployment/kubectl-rollout-status",
        &run,
        json!(run.stdout.lines().last()),
    );
    let status_of = |r: &Reply| {
        let st = &r.body["status"];
        json!({"observedGeneration": st["observedGeneration"], "replicas": st["replicas"],
               "updatedReplicas": st["updatedReplicas"], "readyReplicas": st["readyReplicas"],
               "availableReplicas": st["availableReplicas"],
               "unavailableReplicas": st["unavailableReplicas"],
               "conditions": conditions(&r.body, "/status/conditions")})
    };
    let r = t.get(&format!("{DEPLOYMENTS}/web")).await;
    s.http("deployment/status", &r, status_of(&r));
    let run = t
        .kubectl(&["scale", "deployment/web", "--replicas=2", "-n", NS])
        .await;
    s.kubectl("deployment/kubectl-scale", &run, json!(run.stdout.trim()));
    let r = t
        .poll(&format!("{DEPLOYMENTS}/web"), |r| {
            r.body.pointer("/status/availableReplicas") == Some(&json!(2))
        })
        .await;
    s.http("deployment/status-after-scale", &r, status_of(&r));
    let run = t.kubectl(&["get", "deployments", "-n", NS]).await;
    s.kubectl("deployment/kubectl-get-table", &run, header_of(&run.stdout));

    let duplicated = json!([{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]);
    let r = t
        .apply(
            &format!("{DEPLOYMENTS}/dup-apply?fieldManager=ops"),
            &deployment("dup-apply", duplicated.clone()),
        )
        .await;
    s.error("deployment/apply-duplicate-env", &r);
    let r = t
        .post(DEPLOYMENTS, &deployment("dup-create", duplicated))
        .await;
    s.http(
        "deployment/create-duplicate-env",
        &r,
        json!({"env": r.body.pointer("/spec/template/spec/containers/0/env"), "warnings": r.warnings}),
    );
    let r = t
        .apply(
            &format!("{DEPLOYMENTS}/dup-create?fieldManager=ops"),
            &deployment("dup-create", json!([{"name": "A", "value": "3"}])),
        )
        .await;
    s.http(
        "deployment/apply-over-duplicate-env",
        &r,
        json!({"env": r.body.pointer("/spec/template/spec/containers/0/env")}),
    );
}

async fn events(s: &mut Script<'_>) {
    let t = s.target;
    let event = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "probe.1", "namespace": NS},
        "involvedObject": {"apiVersion": "v1", "kind": "ConfigMap", "name": "probe", "namespace": NS},
        "reason": "Probed", "message": "the script probed", "type": "Normal",
        "source": {"component": "differential"}, "count": 1,
        "firstTimestamp": "2025-01-01T00:00:00Z", "lastTimestamp": "2025-01-01T00:00:00Z",
    });
    let r = t
        .post(&format!("/api/v1/namespaces/{NS}/events"), &event)
        .await;
    s.http(
        "events/create",
        &r,
        json!({"reason": r.body["reason"], "type": r.body["type"], "count": r.body["count"],
               "involvedObject": r.body["involvedObject"], "metadata": meta_keys(&r.body)}),
    );
    let r = t
        .get(&format!(
            "/apis/events.k8s.io/v1/namespaces/{NS}/events/probe.1"
        ))
        .await;
    s.http(
        "events/read-through-events-k8s-io",
        &r,
        json!({"reason": r.body["reason"], "note": r.body["note"], "type": r.body["type"],
               "regarding": r.body["regarding"], "deprecatedCount": r.body["deprecatedCount"],
               "deprecatedSource": r.body["deprecatedSource"]}),
    );
    let run = t
        .kubectl(&[
            "get",
            "events",
            "-n",
            NS,
            "--field-selector",
            "involvedObject.name=probe",
            "-o",
            "json",
        ])
        .await;
    let items: Value = serde_json::from_str(&run.stdout).unwrap_or(Value::Null);
    s.kubectl(
        "events/kubectl-get-field-selector",
        &run,
        json!(
            items["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| json!([
                    e["reason"],
                    e["type"],
                    e["message"],
                    e["involvedObject"]["kind"]
                ]))
                .collect::<Vec<_>>()
        ),
    );
    let run = t
        .kubectl(&[
            "get",
            "events",
            "-n",
            NS,
            "--field-selector",
            "involvedObject.name=probe",
        ])
        .await;
    s.kubectl(
        "events/kubectl-get-table",
        &run,
        json!(
            run.stdout
                .lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .collect::<Vec<_>>()
        ),
    );
    let run = t
        .kubectl(&[
            "get",
            "events",
            "-n",
            NS,
            "--field-selector",
            "involvedObject.name=probe",
            "-o",
            "wide",
        ])
        .await;
    s.kubectl(
        "events/kubectl-get-wide",
        &run,
        json!(
            run.stdout
                .lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .collect::<Vec<_>>()
        ),
    );
    // The Deployment controller reports its scaling on the Deployment.
    let r = t
        .get(&format!(
            "/api/v1/namespaces/{NS}/events?fieldSelector=involvedObject.kind%3DDeployment,involvedObject.name%3Dweb"
        ))
        .await;
    let reasons: BTreeSet<&str> = r.body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["reason"].as_str())
        .collect();
    s.http("events/deployment-controller", &r, json!(reasons));
}

/// What a DELETE answers for each kind: the deleted object or a `Status`.
async fn deletions(s: &mut Script<'_>) {
    let t = s.target;
    t.post(
        &format!("/api/v1/namespaces/{NS}/services"),
        &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"},
                "spec": {"ports": [{"port": 80}]}}),
    )
    .await;
    t.post(
        &format!("/api/v1/namespaces/{NS}/secrets"),
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec"},
                "stringData": {"k": "v"}}),
    )
    .await;
    for (step, uri) in [
        ("delete/deployment", format!("{DEPLOYMENTS}/web")),
        ("delete/custom-resource", format!("{CRS}/pruned")),
        ("delete/service", format!("/api/v1/namespaces/{NS}/services/svc")),
        ("delete/secret", format!("/api/v1/namespaces/{NS}/secrets/sec")),
        ("delete/event", format!("/api/v1/namespaces/{NS}/events/probe.1")),
        (
            "delete/custom-resource-definition",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/aigateways.runtime.agentic-layer.ai".into(),
        ),
    ] {
        let r = t.delete(&uri).await;
        let details = r.body.get("details").map(|d| {
            json!({"name": d["name"], "group": d.get("group"), "kind": d["kind"], "uid": d.get("uid").is_some()})
        });
        s.http(
            step,
            &r,
            json!({"kind": r.body["kind"], "status": r.body.get("status").filter(|v| v.is_string()),
                   "details": details,
                   "deleting": r.body.pointer("/metadata/deletionTimestamp").is_some(),
                   "finalizers": r.body.pointer("/metadata/finalizers")}),
        );
    }
}

async fn namespace_deletion(s: &mut Script<'_>) {
    let t = s.target;
    let r = t.get(&format!("{CMS}/kube-root-ca.crt")).await;
    s.http(
        "namespace/root-ca-configmap",
        &r,
        json!(r.body.pointer("/metadata/name")),
    );
    let r = t
        .get(&format!("/api/v1/namespaces/{NS}/serviceaccounts/default"))
        .await;
    s.http(
        "namespace/default-serviceaccount",
        &r,
        json!(r.body.pointer("/metadata/name")),
    );
    let r = t.delete(&format!("/api/v1/namespaces/{NS}")).await;
    s.http(
        "namespace/delete",
        &r,
        json!({"kind": r.body["kind"], "phase": r.body.pointer("/status/phase"),
               "deleting": r.body.pointer("/metadata/deletionTimestamp").is_some()}),
    );
    let r = t
        .poll(&format!("/api/v1/namespaces/{NS}"), |r| r.code == 404)
        .await;
    s.error("namespace/deleted", &r);
    let r = t.delete("/api/v1/namespaces/default").await;
    s.error("namespace/delete-default", &r);
}

// ---------------------------------------------------------------------------------------
// Running it
// ---------------------------------------------------------------------------------------

async fn testkit_target() -> (Target, aigateway_testkit::HttpServer, tempfile::TempDir) {
    let server = ApiServer::builder().build();
    let http = server
        .serve_http("127.0.0.1:0".parse().unwrap())
        .await
        .expect("the testkit listens");
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dir.path().join("kubeconfig");
    http.write_kubeconfig(&kubeconfig)
        .expect("kubeconfig written");
    let target = Target::new(kubeconfig, Compaction::Testkit(server)).await;
    (target, http, dir)
}

fn pretty(records: &[Record]) -> String {
    serde_json::to_string_pretty(records).unwrap_or_default()
}

/// Runs the script against a real control plane and the testkit and compares. Fails
/// (never skips) when the control plane cannot be built or started.
#[test]
fn real_cluster_differential_testkit_answers_as_a_real_api_server() {
    // One control plane at a time per test binary; held across the whole test, so the
    // runtime is built inside it.
    let _exclusive = RealCluster::exclusive();
    let cluster = RealCluster::start()
        .unwrap_or_else(|e| panic!("the real control plane did not start: {e}"));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(compare_with(&cluster));
}

async fn compare_with(cluster: &RealCluster) {
    let env = std::fs::read_to_string(cluster.dir().join("cluster.env")).expect("cluster.env");
    let etcd = env
        .lines()
        .find_map(|l| l.strip_prefix("ETCD="))
        .expect("cluster.env names etcd's URL")
        .to_string();
    let real_target = Target::new(cluster.kubeconfig(), Compaction::Etcd(etcd)).await;
    let real = run_script(&real_target).await;

    let (testkit_target, _http, _dir) = testkit_target().await;
    let testkit = run_script(&testkit_target).await;

    let out = std::env::temp_dir().join("aigateway-differential");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("real.json"), pretty(&real)).unwrap();
    std::fs::write(out.join("testkit.json"), pretty(&testkit)).unwrap();
    if let Err(report) = compare(&testkit, &real, KNOWN_DIFFERENCES) {
        panic!(
            "{report}\n(all records: {} and {})",
            out.join("testkit.json").display(),
            out.join("real.json").display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_script_runs_against_the_testkit() {
    let (target, _http, _dir) = testkit_target().await;
    let records = run_script(&target).await;
    let out = std::env::temp_dir().join("aigateway-differential");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("testkit-only.json"), pretty(&records)).unwrap();
    let steps: BTreeSet<&str> = records.iter().map(|r| r.step.as_str()).collect();
    assert_eq!(steps.len(), records.len(), "step names are unique");
    for (step, _) in KNOWN_DIFFERENCES {
        assert!(
            steps.contains(step),
            "KNOWN_DIFFERENCES names `{step}`, which the script does not run"
        );
    }
    let by_step: BTreeMap<&str, &Record> = records.iter().map(|r| (r.step.as_str(), r)).collect();
    // A few answers every client relies on, as a sanity check of the script itself.
    assert_eq!(
        by_step["configmap/create"].status,
        "HTTP 201",
        "{}",
        pretty(&records)
    );
    assert_eq!(
        by_step["apply/conflict"].status,
        "HTTP 409",
        "{}",
        pretty(&records)
    );
    assert_eq!(
        by_step["cr/create-invalid"].status,
        "HTTP 422",
        "{}",
        pretty(&records)
    );
    assert_eq!(
        by_step["deployment/kubectl-rollout-status"].status,
        "exit 0",
        "{}",
        pretty(&records)
    );
}

fn record(step: &str, status: &str, fields: Value) -> Record {
    Record {
        step: step.into(),
        status: status.into(),
        fields,
    }
}

#[test]
fn comparison_lists_every_unexpected_difference() {
    let testkit = [
        record("a", "HTTP 200", json!(1)),
        record("b", "HTTP 200", json!(1)),
    ];
    let real = [
        record("a", "HTTP 200", json!(2)),
        record("b", "HTTP 422", json!(1)),
    ];
    let report = compare(&testkit, &real, &[]).unwrap_err();
    assert!(report.starts_with("2 difference(s)"), "{report}");
    assert!(report.contains("step `a` differs"), "{report}");
    assert!(report.contains("step `b` differs"), "{report}");
    assert!(compare(&testkit, &testkit, &[]).is_ok());
    assert!(compare(&testkit, &real, &[("a", "why"), ("b", "why")]).is_ok());
}

#[test]
fn a_known_difference_that_no_longer_differs_fails() {
    let records = [record("a", "HTTP 200", json!(1))];
    let report = compare(&records, &records, &[("a", "it used to differ")]).unwrap_err();
    assert!(
        report.contains("remove it from KNOWN_DIFFERENCES"),
        "{report}"
    );
    let report = compare(&records, &records, &[("gone", "no such step")]).unwrap_err();
    assert!(
        report.contains("`gone`, which the script does not run"),
        "{report}"
    );
}

#[test]
fn known_differences_match_the_documentation() {
    let doc = std::fs::read_to_string(repo_root().join("docs/explanation/testkit.md"))
        .expect("docs/explanation/testkit.md exists");
    let heading = "## Known differences from a real API server";
    let section = doc
        .split_once(heading)
        .map(|(_, rest)| rest.split("\n## ").next().unwrap_or(""))
        .unwrap_or_else(|| panic!("docs/explanation/testkit.md has no section \"{heading}\""));
    let documented: BTreeSet<String> = section
        .lines()
        .filter(|l| l.starts_with("- `"))
        .map(str::to_string)
        .collect();
    let listed: BTreeSet<String> = KNOWN_DIFFERENCES
        .iter()
        .map(|(step, reason)| format!("- `{step}`: {reason}"))
        .collect();
    let missing: Vec<&String> = listed.difference(&documented).collect();
    let extra: Vec<&String> = documented.difference(&listed).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "docs/explanation/testkit.md and KNOWN_DIFFERENCES disagree (one line per difference, \
         \"- `step`: reason\")\nmissing from the doc: {missing:#?}\nnot in KNOWN_DIFFERENCES: {extra:#?}"
    );
}
