//! Issue 20's attacks on a shared ToolGateway against a real control plane (RBAC, an
//! audit log, the real Deployment controller, kwok pods). Two tenants hold only
//! namespaced RBAC and act through their own ServiceAccount tokens: `victim` owns
//! ToolGateway `victim/tools` (and may write ToolGateways, ToolRoutes, ToolServers,
//! ConfigMaps, Secrets and ReferenceGrants in its namespace), `attacker` may write
//! ToolRoutes in namespace `attacker` only. The operator is the built `litellm-impl run`
//! binary, authenticated as the install bundle's ServiceAccount.
//!
//! Attack 7 (colliding keys) uses two tenants of its own, `a--b` and `a`. The same
//! attacks against the in-memory API server are in `tenancy.rs`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aigateway_api::{ToolGateway, ToolRoute};
use aigateway_testkit::real_cluster::{AuditEvent, AuditMark, RealCluster};
use aigateway_testkit::third_party;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{
    Api, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

const SYSTEM_NAMESPACE: &str = "ai-gateway-litellm-system";
const OPERATOR_USER: &str = "system:serviceaccount:ai-gateway-litellm-system:litellm-impl";
const GROUP: &str = "runtime.agentic-layer.ai";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn kubectl(cluster: &RealCluster, args: &[&str], stdin: Option<&str>) -> String {
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
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "kubectl {} failed:\n{text}",
        args.join(" ")
    );
    text
}

/// A fresh control plane with the install bundle (the README's install), its manager
/// Deployment scaled to zero: the operator under test is the built binary.
fn cluster_with_bundle() -> RealCluster {
    let cluster = RealCluster::start().unwrap();
    let deploy = workspace().join("deploy");
    let crds = deploy.join("crds");
    kubectl(
        &cluster,
        &["apply", "--server-side", "-f", crds.to_str().unwrap()],
        None,
    );
    cluster.wait_crds_established().unwrap();
    kubectl(
        &cluster,
        &["apply", "--server-side", "-k", deploy.to_str().unwrap()],
        None,
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
        None,
    );
    cluster
}

/// The `litellm-impl run` binary as the bundle's ServiceAccount; killed on drop.
struct Operator {
    child: Child,
    log: PathBuf,
}

impl Operator {
    async fn start(cluster: &RealCluster) -> Self {
        let kubeconfig = cluster
            .service_account_kubeconfig(SYSTEM_NAMESPACE, "litellm-impl", 3600)
            .await
            .unwrap();
        let log = cluster.dir().join("operator.log");
        let admin_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_litellm-impl"))
            .arg("run")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--leader-elect=false")
            .arg(format!(
                "--health-probe-bind-address=127.0.0.1:{admin_port}"
            ))
            .arg("--metrics-bind-address=0")
            .env("RUST_LOG", "info")
            .env_remove("KUBECONFIG")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::options().append(true).open(&log).unwrap())
            .spawn()
            .unwrap();
        Self { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 250 ms until it returns `Some`, or panics with `what` and the
/// operator's log.
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    operator: &Operator,
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}\noperator log:\n{}",
            operator.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn rule(group: &str, resources: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.to_owned()]),
        resources: Some(resources.iter().map(|r| (*r).to_owned()).collect()),
        verbs: [
            "get", "list", "watch", "create", "update", "patch", "delete",
        ]
        .map(str::to_owned)
        .to_vec(),
        ..Default::default()
    }
}

/// Creates namespace `namespace` and a ServiceAccount `tenant` in it that holds `rules`
/// there and nothing else; returns a client authenticated as that ServiceAccount.
async fn tenant(
    cluster: &RealCluster,
    admin: &Client,
    namespace: &str,
    rules: Vec<PolicyRule>,
) -> Client {
    let post = PostParams::default();
    let mut ns = Namespace::default();
    ns.metadata.name = Some(namespace.to_owned());
    Api::<Namespace>::all(admin.clone())
        .create(&post, &ns)
        .await
        .unwrap();
    let mut account = ServiceAccount::default();
    account.metadata.name = Some("tenant".into());
    Api::<ServiceAccount>::namespaced(admin.clone(), namespace)
        .create(&post, &account)
        .await
        .unwrap();
    let mut role = Role {
        rules: Some(rules),
        ..Default::default()
    };
    role.metadata.name = Some("tenant".into());
    Api::<Role>::namespaced(admin.clone(), namespace)
        .create(&post, &role)
        .await
        .unwrap();
    let mut binding = RoleBinding {
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: "tenant".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: "tenant".into(),
            namespace: Some(namespace.to_owned()),
            ..Default::default()
        }]),
        ..Default::default()
    };
    binding.metadata.name = Some("tenant".into());
    Api::<RoleBinding>::namespaced(admin.clone(), namespace)
        .create(&post, &binding)
        .await
        .unwrap();
    cluster
        .service_account_client(namespace, "tenant")
        .await
        .unwrap()
}

/// The two tenants' clients (the bundle installs the `litellm` ToolGatewayClass).
async fn tenants(cluster: &RealCluster, admin: &Client) -> (Client, Client) {
    let victim = tenant(
        cluster,
        admin,
        "victim",
        vec![
            rule(GROUP, &["toolgateways", "toolroutes", "toolservers"]),
            rule("", &["configmaps", "secrets"]),
            rule("gateway.networking.k8s.io", &["referencegrants"]),
        ],
    )
    .await;
    let attacker = tenant(
        cluster,
        admin,
        "attacker",
        vec![rule(GROUP, &["toolroutes"])],
    )
    .await;
    (victim, attacker)
}

fn resource_of(object: &Value) -> ApiResource {
    let api_version = object["apiVersion"].as_str().unwrap();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let kind = object["kind"].as_str().unwrap();
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind))
}

/// Creates `object` with `client` (in `namespace` when given).
async fn create(client: &Client, namespace: Option<&str>, object: Value) -> DynamicObject {
    try_create(client, namespace, object)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn try_create(
    client: &Client,
    namespace: Option<&str>,
    object: Value,
) -> Result<DynamicObject, kube::Error> {
    let resource = resource_of(&object);
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let object: DynamicObject = serde_json::from_value(object).unwrap();
    api.create(&PostParams::default(), &object).await
}

fn gateway(annotations: Value, env: Value) -> Value {
    json!({"apiVersion": "runtime.agentic-layer.ai/v1alpha1", "kind": "ToolGateway",
        "metadata": {"name": "tools", "annotations": annotations},
        "spec": {"toolGatewayClassName": "litellm", "env": env}})
}

fn route(name: &str, upstream: Value) -> Value {
    json!({"apiVersion": "runtime.agentic-layer.ai/v1alpha1", "kind": "ToolRoute",
        "metadata": {"name": name},
        "spec": {"toolGatewayRef": {"name": "tools", "namespace": "victim"}, "upstream": upstream}})
}

fn external(url: &str) -> Value {
    json!({"external": {"url": url}})
}

async fn get_route(admin: &Client, namespace: &str, name: &str) -> Option<ToolRoute> {
    Api::<ToolRoute>::namespaced(admin.clone(), namespace)
        .get_opt(name)
        .await
        .unwrap()
}

fn condition(route: &ToolRoute, type_: &str) -> Option<(String, String, String)> {
    let c = aigateway_api::conditions::find_condition(&route.status.as_ref()?.conditions, type_)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn url(route: &ToolRoute) -> Option<&str> {
    route.status.as_ref()?.url.as_deref()
}

fn served(route: &ToolRoute) -> bool {
    url(route).is_some() && condition(route, "Ready").is_some_and(|c| c.0 == "True")
}

/// Waits until route `namespace/name` satisfies `check`.
async fn wait_route(
    operator: &Operator,
    admin: &Client,
    namespace: &str,
    name: &str,
    what: &str,
    check: impl Fn(&ToolRoute) -> bool,
) -> ToolRoute {
    eventually(operator, what, Duration::from_secs(90), || async {
        let route = get_route(admin, namespace, name).await?;
        check(&route).then_some(route)
    })
    .await
}

fn refused_with(reason: &'static str) -> impl Fn(&ToolRoute) -> bool {
    move |r| condition(r, "Accepted").is_some_and(|c| c.0 == "False" && c.1 == reason)
}

fn unresolved_with(text: &'static str) -> impl Fn(&ToolRoute) -> bool {
    move |r| {
        condition(r, "ResolvedRefs")
            .is_some_and(|c| c.0 == "False" && c.1 == "RefNotPermitted" && c.2.contains(text))
    }
}

async fn config(admin: &Client) -> String {
    Api::<ConfigMap>::namespaced(admin.clone(), "victim")
        .get_opt("tools-config")
        .await
        .unwrap()
        .and_then(|c| c.data)
        .and_then(|mut d| d.remove("config.yaml"))
        .unwrap_or_default()
}

/// Waits until the victim's gateway is Ready at its current generation.
async fn wait_gateway_ready(operator: &Operator, admin: &Client) -> ToolGateway {
    eventually(
        operator,
        "victim/tools Ready",
        Duration::from_secs(120),
        || async {
            let gateway = Api::<ToolGateway>::namespaced(admin.clone(), "victim")
                .get_opt("tools")
                .await
                .unwrap()?;
            let conditions = &gateway.status.as_ref()?.conditions;
            let ready = aigateway_api::conditions::find_condition(conditions, "Ready")?;
            (ready.status == "True" && ready.observed_generation == gateway.metadata.generation)
                .then_some(gateway)
        },
    )
    .await
}

/// Every condition message of a route, joined.
fn messages(route: &ToolRoute) -> String {
    route
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().map(|c| c.message.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The operator's requests answered 403 since `mark`: none, or its RBAC is short.
fn assert_operator_never_forbidden(cluster: &RealCluster, mark: AuditMark) {
    let forbidden: Vec<AuditEvent> = cluster
        .audit_log()
        .since(mark)
        .unwrap()
        .into_iter()
        .filter(|e| e.user == OPERATOR_USER && e.code == 403)
        .collect();
    assert!(
        forbidden.is_empty(),
        "the operator was refused: {forbidden:#?}"
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Attacks 1 and 2: a route in `attacker` naming `victim/tools` is refused until the
/// victim consents (here by namespace label, which the platform sets); a route naming
/// the victim's ToolServer is refused, telling nothing about it, while Gateway API is
/// not installed, then until the victim grants it with a ReferenceGrant.
#[test]
fn real_cluster_a_tenant_can_neither_inject_routes_nor_borrow_tool_servers() {
    let _one_at_a_time = RealCluster::exclusive();
    let cluster = cluster_with_bundle();
    runtime().block_on(async {
        let admin = cluster.admin_client().await.unwrap();
        let (victim, attacker) = tenants(&cluster, &admin).await;
        let operator = Operator::start(&cluster).await;
        create(&victim, Some("victim"), gateway(json!({}), json!([]))).await;
        create(
            &victim,
            Some("victim"),
            route("search", external("http://search.victim/mcp")),
        )
        .await;
        create(
            &victim,
            Some("victim"),
            json!({"apiVersion": "runtime.agentic-layer.ai/v1alpha1", "kind": "ToolServer",
                "metadata": {"name": "internal"},
                "spec": {"protocol": "mcp", "transportType": "http", "image": "example/internal:1",
                    "port": 8443, "path": "/very-secret-path"}}),
        )
        .await;
        wait_route(&operator, &admin, "victim", "search", "the victim's route", served).await;

        // Attack 1: injection.
        create(
            &attacker,
            Some("attacker"),
            route("injected", external("http://evil.attacker.example/mcp")),
        )
        .await;
        let injected = wait_route(
            &operator,
            &admin,
            "attacker",
            "injected",
            "the injected route refused",
            refused_with("NotAllowedByGateway"),
        )
        .await;
        assert_eq!(url(&injected), None);
        assert!(!config(&admin).await.contains("evil.attacker.example"));
        // The attacker cannot consent on the victim's behalf.
        let denied = try_create(
            &attacker,
            Some("victim"),
            route("inside", external("http://evil.attacker.example/mcp")),
        )
        .await;
        assert!(
            matches!(&denied, Err(kube::Error::Api(s)) if s.code == 403),
            "{denied:?}"
        );

        // The victim admits the namespaces the platform labels.
        Api::<ToolGateway>::namespaced(victim.clone(), "victim")
            .patch(
                "tools",
                &PatchParams::default(),
                &Patch::Merge(&json!({"metadata": {"annotations": {
                    "aigateway.agentic-layer.ai/allowed-routes":
                        "{from: Selector, selector: {matchLabels: {tools.example.com/consumer: \"true\"}}}"}}})),
            )
            .await
            .unwrap();
        Api::<Namespace>::all(admin.clone())
            .patch(
                "attacker",
                &PatchParams::default(),
                &Patch::Merge(
                    &json!({"metadata": {"labels": {"tools.example.com/consumer": "true"}}}),
                ),
            )
            .await
            .unwrap();
        wait_route(
            &operator,
            &admin,
            "attacker",
            "injected",
            "the route served once the namespace is admitted",
            served,
        )
        .await;

        // Attack 2: the victim's ToolServer, without Gateway API installed.
        create(
            &attacker,
            Some("attacker"),
            route(
                "deputy",
                json!({"toolServerRef": {"name": "internal", "namespace": "victim"}}),
            ),
        )
        .await;
        create(
            &attacker,
            Some("attacker"),
            route(
                "probe",
                json!({"toolServerRef": {"name": "no-such-server", "namespace": "victim"}}),
            ),
        )
        .await;
        let deputy = wait_route(
            &operator,
            &admin,
            "attacker",
            "deputy",
            "refused without the CRD",
            unresolved_with("not installed"),
        )
        .await;
        assert!(messages(&deputy).contains("referencegrants.gateway.networking.k8s.io"));
        assert_eq!(url(&deputy), None);

        // Gateway API appears: still refused, and an existing server looks like a
        // missing one.
        kubectl(
            &cluster,
            &["apply", "--server-side", "-f", "-"],
            Some(&third_party::reference_grant_crd().unwrap()),
        );
        cluster.wait_crds_established().unwrap();
        let deputy = wait_route(
            &operator,
            &admin,
            "attacker",
            "deputy",
            "refused without a grant (the CRD is picked up within 30 s)",
            unresolved_with("has not granted"),
        )
        .await;
        let probe = wait_route(
            &operator,
            &admin,
            "attacker",
            "probe",
            "the probe refused without a grant",
            unresolved_with("has not granted"),
        )
        .await;
        let told = format!("{}\n{}", messages(&deputy), messages(&probe));
        for leak in ["8443", "very-secret-path", "not found", "svc.cluster.local"] {
            assert!(!told.contains(leak), "{leak} told to the attacker:\n{told}");
        }
        assert_eq!(
            messages(&deputy).replace("internal", "X"),
            messages(&probe).replace("no-such-server", "X")
        );
        assert!(!config(&admin).await.contains("internal.victim"));

        // The attacker cannot grant itself; the victim can.
        let grant = json!({"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
            "metadata": {"name": "attacker-may-use-internal"},
            "spec": {"from": [{"group": GROUP, "kind": "ToolRoute", "namespace": "attacker"}],
                "to": [{"group": GROUP, "kind": "ToolServer", "name": "internal"}]}});
        let denied = try_create(&attacker, Some("victim"), grant.clone()).await;
        assert!(
            matches!(&denied, Err(kube::Error::Api(s)) if s.code == 403),
            "{denied:?}"
        );
        create(&victim, Some("victim"), grant).await;
        wait_route(
            &operator,
            &admin,
            "attacker",
            "deputy",
            "served with the victim's grant",
            served,
        )
        .await;
        assert!(config(&admin).await.contains("http://internal.victim.svc.cluster.local:8443/very-secret-path"));
        let probe = get_route(&admin, "attacker", "probe").await.unwrap();
        assert!(unresolved_with("has not granted")(&probe), "{:?}", probe.status);
        // The same Service by URL through the cluster's DNS: the grant is for the
        // ToolServer, not for the victim's Services, so the URL is refused.
        create(
            &attacker,
            Some("attacker"),
            route(
                "by-url",
                external("http://internal.victim.svc.cluster.local:8443/very-secret-path"),
            ),
        )
        .await;
        wait_route(
            &operator,
            &admin,
            "attacker",
            "by-url",
            "a URL into the victim's namespace refused",
            unresolved_with("has not granted"),
        )
        .await;
        assert!(!config(&admin).await.contains("by-url"));
        assert_operator_never_forbidden(&cluster, AuditMark::default());
    });
}

/// Attack 7, key collision: routes `a/b--c` (the attacker's) and `a--b/c` (the victim's)
/// both had key `a__b__c`, so the victim's config patch for its own route's key was
/// merged into the attacker's entry and sent the victim's credential header to the
/// attacker's URL. Here each tenant holds namespaced RBAC only; the keys differ, and the
/// patch reaches the victim's entry alone.
#[test]
fn real_cluster_routes_whose_go_keys_collide_never_share_an_entry_or_a_patch() {
    let _one_at_a_time = RealCluster::exclusive();
    let cluster = cluster_with_bundle();
    runtime().block_on(async {
        let admin = cluster.admin_client().await.unwrap();
        let victim = tenant(
            &cluster,
            &admin,
            "a--b",
            vec![
                rule(GROUP, &["toolgateways", "toolroutes"]),
                rule("", &["configmaps"]),
            ],
        )
        .await;
        let attacker = tenant(&cluster, &admin, "a", vec![rule(GROUP, &["toolroutes"])]).await;
        let operator = Operator::start(&cluster).await;
        // A central gateway that admits routes from every namespace.
        let all = json!({"aigateway.agentic-layer.ai/allowed-routes": "All"});
        create(&victim, Some("a--b"), gateway(all, json!([]))).await;
        let to_central = |name: &str, url: &str| {
            let mut route = route(name, external(url));
            route["spec"]["toolGatewayRef"]["namespace"] = json!("a--b");
            route
        };
        create(
            &attacker,
            Some("a"),
            to_central("b--c", "http://attacker.example/mcp"),
        )
        .await;
        create(
            &victim,
            Some("a--b"),
            to_central("c", "http://victim.internal/mcp"),
        )
        .await;
        let victim_route =
            wait_route(&operator, &admin, "a--b", "c", "the victim's route", served).await;
        let attacker_route = wait_route(
            &operator,
            &admin,
            "a",
            "b--c",
            "the attacker's route",
            served,
        )
        .await;
        assert_ne!(url(&victim_route), url(&attacker_route));
        // The victim patches the entry its route's URL names.
        let victim_key = url(&victim_route)
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned();
        create(
            &victim,
            Some("a--b"),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "patch"},
            "data": {"patch.yaml": format!(
                "mcp_servers:\n  {victim_key}:\n    extra_headers: [x-victim-credential]\n"
            )}}),
        )
        .await;
        Api::<ToolGateway>::namespaced(victim.clone(), "a--b")
            .patch(
                "tools",
                &PatchParams::default(),
                &Patch::Merge(&json!({"metadata": {"annotations": {
                    "ai-gateway-litellm.agentic-layer.ai/config-patch": "patch"
                }}})),
            )
            .await
            .unwrap();
        let config = eventually(
            &operator,
            "the victim's patch applied",
            Duration::from_secs(90),
            || async {
                let config = Api::<ConfigMap>::namespaced(admin.clone(), "a--b")
                    .get_opt("tools-config")
                    .await
                    .unwrap()?
                    .data?
                    .remove("config.yaml")?;
                config.contains("x-victim-credential").then_some(config)
            },
        )
        .await;
        let parsed: Value = serde_saphyr::from_str(&config).unwrap();
        let servers = parsed["mcp_servers"].as_object().unwrap();
        assert_eq!(servers.len(), 2, "{config}");
        let with_header: Vec<&str> = servers
            .values()
            .filter(|entry| entry.get("extra_headers").is_some())
            .map(|entry| entry["url"].as_str().unwrap())
            .collect();
        assert_eq!(with_header, ["http://victim.internal/mcp"], "{config}");
        assert_operator_never_forbidden(&cluster, AuditMark::default());
    });
}

/// A route with tool filters as large as a route may have (about 70 KB of config).
fn bulky_route(name: &str) -> Value {
    use litellm_impl::tool_filter::{MAX_ENTRIES, MAX_ENTRY_LENGTH};
    let tools = |prefix: &str| -> Vec<String> {
        (0..MAX_ENTRIES)
            .map(|i| format!("{prefix}{i:03}_{}", "x".repeat(MAX_ENTRY_LENGTH - 8)))
            .collect()
    };
    let mut route = route(name, external(&format!("http://{name}.attacker/mcp")));
    route["spec"]["toolFilter"] = json!({"allow": tools("a"), "deny": tools("d")});
    route
}

/// Attacks 4 and 5: the victim's gateway admits every namespace (a central gateway).
/// The attacker adds a route whose annotations are at the API server's limit (an
/// operator that writes a metadata mark on routes, as ours did, fails every write of
/// it), one with a 1 MB URL, and twenty that together overflow the config. The victim's gateway keeps its status current, serves
/// its own route and deploys its owner's change.
#[test]
fn real_cluster_a_tenants_routes_can_neither_make_the_gateway_undeployable_nor_freeze_it() {
    let _one_at_a_time = RealCluster::exclusive();
    let cluster = cluster_with_bundle();
    runtime().block_on(async {
        let admin = cluster.admin_client().await.unwrap();
        let (victim, attacker) = tenants(&cluster, &admin).await;
        let operator = Operator::start(&cluster).await;
        let all = json!({"aigateway.agentic-layer.ai/allowed-routes": "All"});
        create(&victim, Some("victim"), gateway(all.clone(), json!([]))).await;
        create(
            &victim,
            Some("victim"),
            route("search", external("http://search.victim/mcp")),
        )
        .await;
        wait_route(
            &operator,
            &admin,
            "victim",
            "search",
            "the victim's route",
            served,
        )
        .await;
        // Creation times have one-second resolution: the attacker's routes are newer.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let mark = cluster.audit_log().mark();

        // Attack 5: annotations at the limit; `aaa` sorts before every other route.
        // (That one failed write stops nothing else is shown with an injected refusal
        // in `tests/tenancy.rs`.)
        let mut heavy = route("aaa-heavy", external("http://heavy.attacker/mcp"));
        heavy["metadata"]["annotations"] = json!({"pad": "p".repeat(256 * 1024 - 64)});
        create(&attacker, Some("attacker"), heavy).await;
        // Attack 4: a 1 MB URL, and routes that overflow the config together.
        let huge = format!("http://evil.example/{}", "a".repeat(1_000_000));
        create(&attacker, Some("attacker"), route("huge", external(&huge))).await;
        for i in 1..=20 {
            create(
                &attacker,
                Some("attacker"),
                bulky_route(&format!("bulk-{i:02}")),
            )
            .await;
        }
        let huge = wait_route(
            &operator,
            &admin,
            "attacker",
            "huge",
            "the 1 MB URL refused",
            refused_with("RouteTooLarge"),
        )
        .await;
        assert_eq!(url(&huge), None);
        wait_route(
            &operator,
            &admin,
            "attacker",
            "bulk-20",
            "the newest bulky route refused",
            refused_with("ConfigTooLarge"),
        )
        .await;
        wait_route(
            &operator,
            &admin,
            "attacker",
            "bulk-01",
            "the oldest bulky route served",
            served,
        )
        .await;
        // Refused newest first: in creation order, the served ones come before the
        // refused ones.
        let routes = Api::<ToolRoute>::namespaced(admin.clone(), "attacker")
            .list(&ListParams::default())
            .await
            .unwrap();
        let mut bulky: Vec<&ToolRoute> = routes
            .items
            .iter()
            .filter(|r| r.name_any().starts_with("bulk-"))
            .collect();
        bulky.sort_by_key(|r| (r.metadata.creation_timestamp.clone(), r.name_any()));
        let states: Vec<bool> = bulky.iter().map(|r| served(r)).collect();
        let first_refused = states.iter().position(|s| !s).unwrap();
        assert!(
            states[first_refused..].iter().all(|s| !s) && first_refused > 0,
            "not refused newest first: {states:?}"
        );

        // The victim's change deploys, and its status is current.
        Api::<ToolGateway>::namespaced(victim.clone(), "victim")
            .patch(
                "tools",
                &PatchParams::default(),
                &Patch::Merge(
                    &json!({"spec": {"env": [{"name": "LITELLM_LOG", "value": "DEBUG"}]}}),
                ),
            )
            .await
            .unwrap();
        wait_gateway_ready(&operator, &admin).await;
        let deployment = Api::<Deployment>::namespaced(admin.clone(), "victim")
            .get("tools")
            .await
            .unwrap();
        let env = serde_json::to_string(
            &deployment.spec.unwrap().template.spec.unwrap().containers[0].env,
        )
        .unwrap();
        assert!(env.contains("LITELLM_LOG"), "{env}");
        let search = get_route(&admin, "victim", "search").await.unwrap();
        assert!(served(&search), "{:?}", search.status);
        let config = config(&admin).await;
        assert!(config.contains("victim__search") && !config.contains("evil.example"));

        // The heavy route's status is written like any other route's: the operator
        // writes no metadata on routes, so annotations at the limit cannot make its
        // writes fail.
        let heavy: Vec<AuditEvent> = cluster
            .audit_log()
            .since(mark)
            .unwrap()
            .into_iter()
            .filter(|e| e.user == OPERATOR_USER && e.name == "aaa-heavy" && e.is_write())
            .collect();
        assert!(
            heavy
                .iter()
                .any(|e| e.subresource == "status" && e.code < 300),
            "the heavy route's status was never written: {:?}",
            heavy
                .iter()
                .map(|e| (&e.verb, &e.subresource, e.code))
                .collect::<Vec<_>>()
        );
        // A 409 is a guarded write that met a newer version of the route; it is retried.
        assert!(
            heavy
                .iter()
                .all(|e| e.subresource == "status" && (e.code < 300 || e.code == 409)),
            "a write to the heavy route was refused or touched its metadata: {:?}",
            heavy
                .iter()
                .map(|e| (&e.verb, &e.subresource, e.code))
                .collect::<Vec<_>>()
        );
        assert_operator_never_forbidden(&cluster, AuditMark::default());
    });
}

/// A route's name and URL, as a watch event showed them.
type RouteUrl = (String, Option<String>);

/// With 2,000 routes on one gateway, editing one route writes the status of that route
/// only (counted from the audit log), and every other route keeps its URL throughout
/// the rollout the edit causes.
#[test]
fn real_cluster_editing_one_of_2000_routes_writes_that_route_only() {
    const ROUTES: usize = 2000;
    let _one_at_a_time = RealCluster::exclusive();
    let cluster = cluster_with_bundle();
    runtime().block_on(async {
        let admin = cluster.admin_client().await.unwrap();
        let (victim, _) = tenants(&cluster, &admin).await;
        let operator = Operator::start(&cluster).await;
        create(&victim, Some("victim"), gateway(json!({}), json!([]))).await;
        let started = Instant::now();
        futures::stream::iter(0..ROUTES)
            .map(|i| {
                let victim = victim.clone();
                async move {
                    let name = format!("r{i:04}");
                    let url = format!("http://{name}.victim/mcp");
                    create(&victim, Some("victim"), route(&name, external(&url))).await;
                }
            })
            .buffer_unordered(8)
            .collect::<Vec<()>>()
            .await;
        let routes = Api::<ToolRoute>::namespaced(admin.clone(), "victim");
        eventually(&operator, "2,000 routes served", Duration::from_secs(600), || async {
            let list = routes.list(&ListParams::default()).await.ok()?;
            (list.items.len() == ROUTES && list.items.iter().all(served)).then_some(())
        })
        .await;
        println!(
            "{ROUTES} routes created and served in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        wait_gateway_ready(&operator, &admin).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let deployments = Api::<Deployment>::namespaced(admin.clone(), "victim");
        let before = deployments.get("tools").await.unwrap().metadata.generation;

        // Every change of every route from here on, as a watch delivers it: a route
        // that loses its URL, even for a moment, shows up here.
        let from = routes
            .list_metadata(&ListParams::default().limit(1))
            .await
            .unwrap()
            .metadata
            .resource_version
            .unwrap();
        let mut changes = routes
            .watch(&WatchParams::default().timeout(290), &from)
            .await
            .unwrap()
            .boxed();
        let seen: Arc<Mutex<Vec<RouteUrl>>> = Arc::default();
        let watched = tokio::spawn({
            let seen = seen.clone();
            async move {
                while let Some(Ok(event)) = changes.next().await {
                    if let WatchEvent::Added(route) | WatchEvent::Modified(route) = event {
                        let url = url(&route).map(str::to_owned);
                        seen.lock().unwrap().push((route.name_any(), url));
                    }
                }
            }
        });

        let mark = cluster.audit_log().mark();
        routes
            .patch(
                "r0007",
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"toolFilter": {"deny": ["drop_table"]}}})),
            )
            .await
            .unwrap();
        // Until the rollout is over, and 5 s more.
        let mut settled_since: Option<Instant> = None;
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let deployment = deployments.get("tools").await.unwrap();
            let status = deployment.status.clone().unwrap_or_default();
            let rolled = deployment.metadata.generation != before
                && status.observed_generation == deployment.metadata.generation
                && status.updated_replicas == status.replicas
                && status.ready_replicas == status.replicas;
            if rolled {
                let since = *settled_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(5) {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "the rollout did not end\n{}", operator.log());
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        watched.abort();
        let seen = seen.lock().unwrap().clone();
        let list = routes.list(&ListParams::default()).await.unwrap();
        let without = list.items.iter().filter(|r| url(r).is_none()).count();
        assert_eq!(without, 0, "routes without a URL 5 s after the rollout");
        let lost: Vec<&RouteUrl> = seen.iter().filter(|(_, url)| url.is_none()).collect();
        assert!(lost.is_empty(), "routes without a URL during the rollout: {lost:?}");
        wait_gateway_ready(&operator, &admin).await;
        let writes: Vec<String> = cluster
            .audit_log()
            .writes_since(mark)
            .unwrap()
            .into_iter()
            .filter(|e| e.user == OPERATOR_USER && e.resource == "toolroutes")
            .map(|e| format!("{} {}/{} {}", e.verb, e.namespace, e.name, e.subresource))
            .collect();
        println!(
            "one edit among {ROUTES} routes: {} route writes; {} route changes watched during the rollout, none without a URL",
            writes.len(),
            seen.len()
        );
        assert_eq!(writes, ["patch victim/r0007 status"]);
        assert!(config(&admin).await.contains("drop_table"));
        assert_operator_never_forbidden(&cluster, AuditMark::default());
    });
}
