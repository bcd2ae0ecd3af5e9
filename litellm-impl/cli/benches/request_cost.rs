//! What each kind of request the operator sends costs a real API server, and how much of
//! the API server's work until all gateways are Ready is the cluster's own rollout of the
//! children (work any operator causes by creating them).
//!
//! Run it with:
//!
//!     cargo bench -p litellm-impl-cli --bench request_cost
//!
//! It starts a real control plane (`aigateway_testkit::real_cluster`; kube-controller-manager
//! at 200 requests a second, burst 300, as in the scale bench) and measures
//! kube-apiserver's and etcd's CPU seconds from `/proc` around each batch:
//!
//! - **requests**: N requests of one kind (default 1,000, `REQUEST_COST_N`), 16 at a time,
//!   on objects shaped like the operator's (a rendered LiteLLM ConfigMap, an AiGateway
//!   with the operator's five conditions), minus the control plane's idle CPU over the
//!   same time (measured first). Kinds: create by POST and by server-side apply, apply
//!   unchanged, apply with one annotation changed, metadata GET, status merge patch and
//!   status apply, Event create;
//! - **rollout floor**: the children `litellm-impl render` makes for N gateways (ConfigMap,
//!   Service, Deployment each), applied by the bench with no operator running, until
//!   every Deployment has its replica available (kwok runs the pods). This is what the
//!   cluster spends on the children themselves; the scale bench's figure for the whole
//!   operator (`kube-apiserver ... ms per gateway`) minus this one is the operator's share.
//!
//! It prints a table and writes `target/bench/request_cost.json` (`REQUEST_COST_OUT` to
//! change). The figures are printed, never asserted. The latest are in
//! docs/reference/benchmarks.md.

use std::time::{Duration, Instant};

use aigateway_testkit::real_cluster::RealCluster;
use futures::StreamExt;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde::Serialize;
use serde_json::{Value, json};

mod support;
use support::cpu_seconds;

/// Requests in flight at once (the operator's default concurrency).
const IN_FLIGHT: usize = 16;
/// Gateways' namespaces, as in the scale bench.
const NAMESPACES: usize = 10;
/// The field manager the bench applies with (the operator's).
const FIELD_MANAGER: &str = "ai-gateway-litellm-controller";

#[derive(Serialize)]
struct Cost {
    kind: String,
    requests: usize,
    seconds: f64,
    api_server_ms_per_request: f64,
    etcd_ms_per_request: f64,
}

#[derive(Serialize)]
struct Floor {
    gateways: usize,
    seconds_until_available: f64,
    api_server_ms_per_gateway: f64,
    etcd_ms_per_gateway: f64,
    controller_manager_ms_per_gateway: f64,
}

#[derive(Serialize)]
struct Report {
    requests_per_kind: usize,
    idle_api_server_cpu_per_second: f64,
    idle_etcd_cpu_per_second: f64,
    costs: Vec<Cost>,
    floor: Floor,
}

/// CPU seconds of the control plane's processes that the figures follow.
struct Pids {
    api_server: u32,
    etcd: u32,
    controller_manager: u32,
}

impl Pids {
    fn cpu(&self) -> (f64, f64, f64) {
        (
            cpu_seconds(Some(self.api_server)),
            cpu_seconds(Some(self.etcd)),
            cpu_seconds(Some(self.controller_manager)),
        )
    }
}

fn resource(api_version: &str, kind: &str, plural: &str) -> ApiResource {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    ApiResource {
        group: group.to_owned(),
        version: version.to_owned(),
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
        plural: plural.to_owned(),
    }
}

fn namespace_of(i: usize) -> String {
    format!("bench-{}", i % NAMESPACES)
}

/// The objects `litellm-impl render` makes for `gateways` gateways of two models, as the
/// scale bench stores them.
fn rendered_children(gateways: usize) -> Vec<DynamicObject> {
    let dir = std::env::temp_dir().join(format!("request-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let mut documents = Vec::new();
    for i in 0..gateways {
        documents.push(format!(
            "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: AiGateway\nmetadata:\n  name: gw-{i:05}\n  namespace: {}\nspec:\n  aiGatewayClassName: litellm\n  aiModels:\n    - provider: openai\n      name: gpt-4o-mini\n    - provider: anthropic\n      name: claude-sonnet-4-20250514\n",
            namespace_of(i)
        ));
    }
    let mut objects = Vec::new();
    // `render` reads at most a few hundred documents per file comfortably.
    for (n, chunk) in documents.chunks(250).enumerate() {
        let file = dir.join(format!("gateways-{n}.yaml"));
        std::fs::write(&file, chunk.join("---\n")).expect("write the gateways");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_litellm-impl"))
            .arg("render")
            .arg("-f")
            .arg(&file)
            .output()
            .expect("run litellm-impl render");
        let text = String::from_utf8(out.stdout).expect("render prints UTF-8");
        for value in aigateway_testkit::parse_manifests(&text).expect("render's output parses") {
            objects.push(serde_json::from_value(value).expect("an object"));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    objects
}

/// A rendered LiteLLM ConfigMap named `name` (the operator's largest child by bytes
/// after the Deployment), with an applied-hash annotation `hash`.
fn config_map(namespace: &str, name: &str, hash: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app": name, "app.kubernetes.io/managed-by": FIELD_MANAGER},
            "annotations": {"aigateway.agentic-layer.ai/applied-hash": hash},
        },
        "data": {"config.yaml": "model_list:\n- model_name: gpt-4o-mini\n  litellm_params:\n    model: openai/gpt-4o-mini\n    api_key: os.environ/OPENAI_API_KEY\n- model_name: claude-sonnet-4-20250514\n  litellm_params:\n    model: anthropic/claude-sonnet-4-20250514\n    api_key: os.environ/ANTHROPIC_API_KEY\nlitellm_settings:\n  callbacks:\n  - otel\n  - prometheus\n  request_timeout: 600\n"},
    })
}

/// The five conditions the operator writes on a Ready gateway.
fn conditions(message: &str) -> Value {
    let now = "2026-12-06T00:00:00Z";
    let condition = |type_: &str, reason: &str| {
        json!({"type": type_, "status": "True", "reason": reason, "message": message,
               "lastTransitionTime": now, "observedGeneration": 1})
    };
    json!([
        condition("Accepted", "Accepted"),
        condition("ResolvedRefs", "ResolvedRefs"),
        condition("Programmed", "Programmed"),
        condition("Ready", "Ready"),
        condition("Progressing", "Ready"),
    ])
}

/// Runs `count` requests made by `request`, `IN_FLIGHT` at a time, and returns the
/// control plane's CPU over them minus its idle CPU over the same time.
async fn measure<F, Fut>(
    kind: &str,
    count: usize,
    pids: &Pids,
    idle: (f64, f64),
    request: F,
) -> Cost
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (api_before, etcd_before, _) = pids.cpu();
    let started = Instant::now();
    futures::stream::iter((0..count).map(request))
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<()>>()
        .await;
    // Watch caches and etcd compaction trail the last response a little.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let seconds = started.elapsed().as_secs_f64();
    let (api_after, etcd_after, _) = pids.cpu();
    let per_request =
        |spent: f64, idle: f64| ((spent - idle * seconds).max(0.0) / count as f64) * 1000.0;
    let cost = Cost {
        kind: kind.to_owned(),
        requests: count,
        seconds,
        api_server_ms_per_request: per_request(api_after - api_before, idle.0),
        etcd_ms_per_request: per_request(etcd_after - etcd_before, idle.1),
    };
    eprintln!(
        "{kind}: {:.2} ms kube-apiserver, {:.2} ms etcd per request ({count} in {seconds:.1} s)",
        cost.api_server_ms_per_request, cost.etcd_ms_per_request
    );
    cost
}

fn expect_ok<T>(what: &str, result: Result<T, kube::Error>) {
    if let Err(error) = result {
        panic!("{what} failed: {error}");
    }
}

async fn request_costs(
    client: &kube::Client,
    count: usize,
    pids: &Pids,
    idle: (f64, f64),
) -> Vec<Cost> {
    let config_maps = resource("v1", "ConfigMap", "configmaps");
    let gateways = resource(
        "runtime.agentic-layer.ai/v1alpha1",
        "AiGateway",
        "aigateways",
    );
    let events = resource("events.k8s.io/v1", "Event", "events");
    let api = |resource: &ApiResource, i: usize| -> Api<DynamicObject> {
        Api::namespaced_with(client.clone(), &namespace_of(i), resource)
    };
    let apply = PatchParams::apply(FIELD_MANAGER).force();
    let object =
        |value: Value| -> DynamicObject { serde_json::from_value(value).expect("an object") };
    let mut costs = Vec::new();

    costs.push(
        measure("POST create ConfigMap", count, pids, idle, |i| {
            let api = api(&config_maps, i);
            let body = object(config_map(&namespace_of(i), &format!("post-{i}"), "h1"));
            async move { expect_ok("create", api.create(&PostParams::default(), &body).await) }
        })
        .await,
    );
    // The same apply three times: it creates, then changes nothing, then one annotation.
    for (kind, hash) in [
        ("server-side apply, create ConfigMap", "h1"),
        ("server-side apply, unchanged ConfigMap", "h1"),
        ("server-side apply, one annotation changed", "h2"),
    ] {
        let cost = measure(kind, count, pids, idle, |i| {
            let (api, apply) = (api(&config_maps, i), apply.clone());
            let name = format!("ssa-{i}");
            let body = config_map(&namespace_of(i), &name, hash);
            async move {
                expect_ok(
                    "apply",
                    api.patch(&name, &apply, &Patch::Apply(&body)).await,
                )
            }
        })
        .await;
        costs.push(cost);
    }
    costs.push(
        measure("metadata GET ConfigMap", count, pids, idle, |i| {
            let api = api(&config_maps, i);
            async move { expect_ok("get", api.get_metadata(&format!("ssa-{i}")).await) }
        })
        .await,
    );

    // Gateways to write status on, created outside the measurement.
    futures::stream::iter((0..2 * count).map(|i| {
        let api = api(&gateways, i);
        let body = object(json!({
            "apiVersion": "runtime.agentic-layer.ai/v1alpha1", "kind": "AiGateway",
            "metadata": {"name": format!("gw-{i:05}"), "namespace": namespace_of(i)},
            "spec": {"aiGatewayClassName": "litellm", "aiModels": [{"provider": "openai", "name": "gpt-4o-mini"}]},
        }));
        async move { expect_ok("create a gateway", api.create(&PostParams::default(), &body).await) }
    }))
    .buffer_unordered(IN_FLIGHT)
    .collect::<Vec<()>>()
    .await;
    let status_manager = format!("{FIELD_MANAGER}-status");
    costs.push(
        measure(
            "status JSON merge patch (5 conditions)",
            count,
            pids,
            idle,
            |i| {
                let api = api(&gateways, i);
                let params = PatchParams {
                    field_manager: Some(status_manager.clone()),
                    ..PatchParams::default()
                };
                let body =
                    json!({"status": {"conditions": conditions("The gateway serves traffic")}});
                async move {
                    expect_ok(
                        "patch status",
                        api.patch_status(&format!("gw-{i:05}"), &params, &Patch::Merge(&body))
                            .await,
                    )
                }
            },
        )
        .await,
    );
    costs.push(
        measure(
            "status server-side apply (5 conditions)",
            count,
            pids,
            idle,
            |i| {
                let i = i + count;
                let api = api(&gateways, i);
                let params = PatchParams::apply(&status_manager).force();
                let body = json!({
                    "apiVersion": "runtime.agentic-layer.ai/v1alpha1", "kind": "AiGateway",
                    "status": {"conditions": conditions("The gateway serves traffic")},
                });
                async move {
                    expect_ok(
                        "apply status",
                        api.patch_status(&format!("gw-{i:05}"), &params, &Patch::Apply(&body))
                            .await,
                    )
                }
            },
        )
        .await,
    );
    costs.push(measure("Event create", count, pids, idle, |i| {
        let api = api(&events, i);
        let body = object(json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": format!("gw-{i:05}.ready"), "namespace": namespace_of(i)},
            "eventTime": "2026-12-06T00:00:00.000000Z",
            "reportingController": FIELD_MANAGER, "reportingInstance": "bench",
            "action": "Reconcile", "reason": "Ready", "type": "Normal", "note": "The gateway serves traffic",
            "regarding": {"apiVersion": "runtime.agentic-layer.ai/v1alpha1", "kind": "AiGateway",
                          "name": format!("gw-{i:05}"), "namespace": namespace_of(i)},
        }));
        async move { expect_ok("create an event", api.create(&PostParams::default(), &body).await) }
    }).await);
    costs
}

/// Applies the rendered children of `gateways` gateways and waits until every
/// Deployment has its replicas available.
async fn rollout_floor(
    client: &kube::Client,
    gateways: usize,
    pids: &Pids,
    idle: (f64, f64),
) -> Floor {
    let children = rendered_children(gateways);
    assert_eq!(
        children.len(),
        3 * gateways,
        "render makes three children per gateway"
    );
    let (api_before, etcd_before, cm_before) = pids.cpu();
    let started = Instant::now();
    let apply = PatchParams::apply(FIELD_MANAGER).force();
    futures::stream::iter(children.into_iter().map(|child| {
        let types = child.types.clone().unwrap_or_default();
        let plural = format!("{}s", types.kind.to_lowercase());
        let resource = resource(&types.api_version, &types.kind, &plural);
        let namespace = child.metadata.namespace.clone().unwrap_or_default();
        let name = child.metadata.name.clone().unwrap_or_default();
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, &resource);
        let apply = apply.clone();
        async move {
            expect_ok(
                "apply a child",
                api.patch(&name, &apply, &Patch::Apply(&child)).await,
            )
        }
    }))
    .buffer_unordered(IN_FLIGHT)
    .collect::<Vec<()>>()
    .await;
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::all(client.clone());
    loop {
        let listed = deployments
            .list(&ListParams::default())
            .await
            .expect("list Deployments");
        let available = (listed.items.iter())
            .filter(|d| {
                let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                d.status.as_ref().and_then(|s| s.available_replicas) == Some(wanted)
            })
            .count();
        if available >= gateways {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "{available} of {gateways} Deployments available after 10 minutes"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let (api_after, etcd_after, cm_after) = pids.cpu();
    let per_gateway =
        |spent: f64, idle: f64| ((spent - idle * seconds).max(0.0) / gateways as f64) * 1000.0;
    let floor = Floor {
        gateways,
        seconds_until_available: seconds,
        api_server_ms_per_gateway: per_gateway(api_after - api_before, idle.0),
        etcd_ms_per_gateway: per_gateway(etcd_after - etcd_before, idle.1),
        controller_manager_ms_per_gateway: per_gateway(cm_after - cm_before, 0.0),
    };
    eprintln!(
        "rollout floor: {gateways} gateways' children available in {seconds:.1} s; {:.1} ms kube-apiserver, {:.1} ms etcd, {:.1} ms controller manager per gateway",
        floor.api_server_ms_per_gateway,
        floor.etcd_ms_per_gateway,
        floor.controller_manager_ms_per_gateway
    );
    floor
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let count: usize = std::env::var("REQUEST_COST_N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let cluster = tokio::task::block_in_place(|| {
        RealCluster::start_with_env(&[
            ("CONTROLLER_MANAGER_QPS", "200"),
            ("CONTROLLER_MANAGER_BURST", "300"),
        ])
    })
    .unwrap_or_else(|e| panic!("starting the real control plane failed: {e}"));
    let client = cluster
        .admin_client()
        .await
        .unwrap_or_else(|e| panic!("no admin client: {e}"));
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    for crd in aigateway_api::crds::all() {
        crds.create(&PostParams::default(), &crd)
            .await
            .expect("create a CRD");
    }
    tokio::task::block_in_place(|| cluster.wait_crds_established())
        .expect("the CRDs are established");
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    for ns in 0..NAMESPACES {
        let body = serde_json::from_value(json!({"metadata": {"name": format!("bench-{ns}")}}))
            .expect("a namespace");
        namespaces
            .create(&PostParams::default(), &body)
            .await
            .expect("create a namespace");
    }
    let component = |name: &str| {
        cluster
            .component_pid(name)
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let pids = Pids {
        api_server: component("kube-apiserver"),
        etcd: component("etcd"),
        controller_manager: component("kube-controller-manager"),
    };
    // The idle rate, after the setup's own work has settled.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (api0, etcd0, _) = pids.cpu();
    let idle_window = 10.0;
    tokio::time::sleep(Duration::from_secs_f64(idle_window)).await;
    let (api1, etcd1, _) = pids.cpu();
    let idle = ((api1 - api0) / idle_window, (etcd1 - etcd0) / idle_window);
    eprintln!(
        "idle: {:.3} CPU s/s kube-apiserver, {:.3} etcd",
        idle.0, idle.1
    );

    let costs = request_costs(&client, count, &pids, idle).await;
    let floor = rollout_floor(&client, count, &pids, idle).await;

    println!(
        "\nRequest costs on a real control plane ({count} requests of each kind, {IN_FLIGHT} in flight; idle CPU subtracted)\n"
    );
    println!("| request | kube-apiserver ms | etcd ms |");
    println!("| ------- | ----------------- | ------- |");
    for cost in &costs {
        println!(
            "| {} | {:.2} | {:.2} |",
            cost.kind, cost.api_server_ms_per_request, cost.etcd_ms_per_request
        );
    }
    println!(
        "\nRollout floor: the rendered children of {count} gateways applied with no operator, until every Deployment is available: {:.1} s; per gateway {:.1} ms kube-apiserver, {:.1} ms etcd, {:.1} ms controller manager",
        floor.seconds_until_available,
        floor.api_server_ms_per_gateway,
        floor.etcd_ms_per_gateway,
        floor.controller_manager_ms_per_gateway
    );
    let report = Report {
        requests_per_kind: count,
        idle_api_server_cpu_per_second: idle.0,
        idle_etcd_cpu_per_second: idle.1,
        costs,
        floor,
    };
    let out = std::env::var_os("REQUEST_COST_OUT").map_or_else(
        || {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/bench/request_cost.json")
        },
        std::path::PathBuf::from,
    );
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).expect("create the output directory");
    }
    std::fs::write(&out, serde_json::to_string_pretty(&report).expect("JSON"))
        .expect("write the records");
    println!("\nrecords: {}", out.display());
}
