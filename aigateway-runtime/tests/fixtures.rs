//! Test fixtures shared by the loop tests: a minimal implementation, a running operator
//! on an in-memory API server, and polling helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aigateway_api::class::DEFAULT_CLASS_ANNOTATION;
use aigateway_api::conditions::{Reason, find_condition};
use aigateway_api::{AiGateway, AiGatewayClass, AiGatewayClassSpec, AiGatewaySpec, AiModel, crds};
use aigateway_runtime::{
    Context, DesiredState, GatewayImplementation, ImplementationError, Operator, RelatedWatch,
};
use aigateway_testkit::ApiServer;
use aigateway_testkit::real_cluster::RealCluster;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, PodSpec, PodTemplateSpec, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use tokio::sync::oneshot;

pub const CONTROLLER: &str = "example.com/minimal";
pub const MANAGER: &str = "minimal";
pub const NS: &str = "default";

/// A ConfigMap listing the models and a Deployment, per gateway. Options make it drop
/// the ConfigMap, or read a related ConfigMap named by an annotation (any namespace).
#[derive(Default)]
pub struct Minimal {
    pub skip_config_map: Arc<AtomicBool>,
    /// Another controller name than [`CONTROLLER`], to run two implementations.
    pub controller: Option<&'static str>,
    /// Another field manager than the default, to tell two instances' writes apart.
    pub field_manager: Option<&'static str>,
}

pub const SETTINGS_ANNOTATION: &str = "example.com/settings";
/// Lengthens the invalid-spec message by this many copies of the padding text.
pub const PADDING_ANNOTATION: &str = "example.com/padding";
/// The padding text (default `.`).
pub const PADDING_TEXT_ANNOTATION: &str = "example.com/padding-text";

#[async_trait::async_trait]
impl GatewayImplementation for Minimal {
    fn controller_name(&self) -> &str {
        self.controller.unwrap_or(CONTROLLER)
    }

    fn field_manager(&self) -> String {
        match self.field_manager {
            Some(manager) => manager.to_owned(),
            // The runtime's default for the controller names used here.
            None => self
                .controller_name()
                .rsplit('/')
                .next()
                .unwrap()
                .to_owned(),
        }
    }

    async fn desired_state(
        &self,
        gateway: &AiGateway,
        ctx: &Context,
    ) -> Result<DesiredState, ImplementationError> {
        let name = gateway.name_any();
        let models: Vec<String> = gateway
            .spec
            .ai_models
            .iter()
            .map(|m| format!("{}/{}", m.provider, m.name))
            .collect();
        if models.iter().any(|m| m.contains("invalid")) {
            let padding = gateway
                .annotations()
                .get(PADDING_ANNOTATION)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let text = gateway
                .annotations()
                .get(PADDING_TEXT_ANNOTATION)
                .map_or(".", String::as_str);
            return Err(ImplementationError::invalid(
                Reason::INVALID_PARAMETERS,
                format!(
                    "model names must not contain `invalid`{}",
                    text.repeat(padding)
                ),
            ));
        }
        let mut desired = DesiredState::new().with_url(gateway.service_url().unwrap_or_default());
        // A related ConfigMap `<ns>/<name>` whose `replicas` key sets the replica count.
        let mut replicas = 1;
        if let Some(reference) = gateway.annotations().get(SETTINGS_ANNOTATION) {
            let (ns, cm) = reference.split_once('/').unwrap_or((NS, reference));
            match ctx.get::<ConfigMap>(ns, cm)? {
                Some(settings) => {
                    replicas = settings
                        .data
                        .unwrap_or_default()
                        .get("replicas")
                        .and_then(|r| r.parse().ok())
                        .unwrap_or(1)
                }
                None => {
                    desired = desired.with_problem(
                        Reason::REF_NOT_FOUND,
                        format!("ConfigMap {ns}/{cm} not found"),
                    )
                }
            }
        }
        if !self.skip_config_map.load(Ordering::SeqCst) {
            desired = desired.with(&ConfigMap {
                metadata: ObjectMeta {
                    name: Some(format!("{name}-models")),
                    ..Default::default()
                },
                data: Some(BTreeMap::from([("models".to_owned(), models.join("\n"))])),
                ..Default::default()
            });
        }
        let labels = BTreeMap::from([("app".to_owned(), name.clone())]);
        let service = Service {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                selector: Some(labels.clone()),
                ports: Some(vec![ServicePort {
                    port: 80,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        Ok(desired.with(&service).with(&Deployment {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                selector: LabelSelector {
                    match_labels: Some(labels.clone()),
                    ..Default::default()
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "proxy".into(),
                            image: Some("example/proxy:1".into()),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    fn related(&self) -> Vec<RelatedWatch> {
        vec![RelatedWatch::new::<ConfigMap>()]
    }

    fn condition_aliases(&self) -> Vec<aigateway_runtime::implementation::ConditionAlias> {
        vec![aigateway_runtime::implementation::ConditionAlias::copy(
            "MinimalReady",
            "Ready",
        )]
    }
}

/// An API server with our CRDs installed.
pub async fn server(deployment_delay: Duration) -> ApiServer {
    let server = ApiServer::builder()
        .deployment_ready_delay(deployment_delay)
        .build();
    for crd in crds::all() {
        server.install_crd(crd).await.expect("install CRD");
    }
    server
}

/// A running operator; stops gracefully when dropped or `stop`ped.
pub struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), aigateway_runtime::OperatorError>>>,
}

impl Running {
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("operator stops within 10 s")
                .unwrap()
                .unwrap();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn start(operator: Operator) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let operator = operator.shutdown_on(async move {
        let _ = stopped.await;
    });
    Running {
        stop: Some(stop),
        task: Some(tokio::spawn(operator.run())),
    }
}

pub fn operator(client: Client, implementation: Minimal) -> Operator {
    Operator::new(client).gateway(implementation)
}

pub async fn create_class(client: &Client, name: &str, controller: &str, default: bool) {
    let mut class = AiGatewayClass::new(
        name,
        AiGatewayClassSpec {
            controller: controller.into(),
        },
    );
    if default {
        class.metadata.annotations =
            Some([(DEFAULT_CLASS_ANNOTATION.to_owned(), "true".to_owned())].into());
    }
    Api::<AiGatewayClass>::all(client.clone())
        .create(&PostParams::default(), &class)
        .await
        .expect("create class");
}

pub fn gateway(name: &str, class: Option<&str>, models: &[&str]) -> AiGateway {
    let mut gateway = AiGateway::new(
        name,
        AiGatewaySpec {
            ai_gateway_class_name: class.map(Into::into),
            ai_models: models.iter().map(|m| AiModel::new("openai", *m)).collect(),
            ..Default::default()
        },
    );
    gateway.metadata.namespace = Some(NS.into());
    gateway
}

pub async fn create_gateway(client: &Client, gateway: &AiGateway) {
    let ns = gateway.namespace().unwrap_or_else(|| NS.into());
    Api::<AiGateway>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), gateway)
        .await
        .expect("create gateway");
}

/// The one polling helper of every test here (and of class operators' tests).
pub use aigateway_runtime::testing::eventually_within;

/// The status of condition `type_` on gateway `name`, if set.
pub async fn condition(
    client: &Client,
    name: &str,
    type_: &str,
) -> Option<(String, String, Option<i64>)> {
    let gateway = Api::<AiGateway>::namespaced(client.clone(), NS)
        .get_opt(name)
        .await
        .ok()??;
    let conditions = gateway.status.map(|s| s.conditions).unwrap_or_default();
    find_condition(&conditions, type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.observed_generation))
}

/// Waits until condition `type_` on `name` has `status`.
pub async fn wait_condition(client: &Client, name: &str, type_: &str, status: &str) {
    // Long enough for a real control plane, where a Deployment waits for the scheduler,
    // kwok and the controller manager; a test on the testkit is done long before.
    eventually_within(
        Duration::from_secs(60),
        &format!("{name}: {type_}={status}"),
        || async {
            condition(client, name, type_)
                .await
                .filter(|(s, _, _)| s == status)
                .map(|_| ())
        },
    )
    .await
}

/// `GET path` on the admin server at `addr`: the status code and the body.
#[allow(dead_code)]
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect admin server");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Where a scenario runs: the testkit, or a real control plane (tests named
/// `real_cluster_*`, one at a time: hold [`RealCluster::exclusive`]).
pub enum Cluster {
    Testkit(ApiServer),
    Real(RealCluster, Client),
}

impl Cluster {
    pub async fn testkit() -> Self {
        Cluster::Testkit(server(Duration::ZERO).await)
    }

    /// A fresh real control plane with our CRDs established.
    pub async fn real() -> Self {
        let cluster = tokio::task::block_in_place(|| RealCluster::start().unwrap());
        let crds: Vec<serde_json::Value> = aigateway_api::crds::all()
            .iter()
            .map(|crd| serde_json::to_value(crd).unwrap())
            .collect();
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": crds});
        let kubectl = |args: &[&str], stdin: Option<&str>| {
            let mut child = cluster
                .kubectl()
                .args(args)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("kubectl is installed");
            let mut input = child.stdin.take().unwrap();
            if let Some(text) = stdin {
                use std::io::Write;
                input.write_all(text.as_bytes()).unwrap();
            }
            drop(input);
            child.wait_with_output().unwrap()
        };
        let applied = kubectl(
            &["apply", "--server-side", "-f", "-"],
            Some(&list.to_string()),
        );
        assert!(
            applied.status.success(),
            "{}",
            String::from_utf8_lossy(&applied.stderr)
        );
        cluster.wait_crds_established().unwrap();
        let client = cluster.admin_client().await.unwrap();
        Cluster::Real(cluster, client)
    }

    pub fn client(&self) -> Client {
        match self {
            Cluster::Testkit(server) => server.client(),
            Cluster::Real(_, client) => client.clone(),
        }
    }

    /// Installs `crd` and waits until it is served.
    #[allow(dead_code)]
    pub async fn install_crd(
        &self,
        crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    ) {
        match self {
            Cluster::Testkit(server) => {
                server.install_crd(crd).await.expect("install CRD");
            }
            Cluster::Real(real, client) => {
                Api::all(client.clone())
                    .create(&PostParams::default(), &crd)
                    .await
                    .expect("create the CRD");
                tokio::task::block_in_place(|| real.wait_crds_established()).unwrap();
            }
        }
    }

    /// The writes anybody makes during `window`, one line each.
    pub async fn writes_during(&self, window: Duration) -> Vec<String> {
        match self {
            Cluster::Testkit(server) => {
                server.reset_stats();
                tokio::time::sleep(window).await;
                let stats = server.stats();
                if stats.writes() == 0 {
                    Vec::new()
                } else {
                    vec![format!("{:?}", stats.counts)]
                }
            }
            Cluster::Real(cluster, _) => {
                let mark = cluster.audit_log().mark();
                tokio::time::sleep(window).await;
                cluster
                    .audit_log()
                    .writes_since(mark)
                    .unwrap()
                    .into_iter()
                    // The operators run as the admin; the control plane's own
                    // controllers and kwok (user `kwok`) write pods and nodes.
                    .filter(|e| e.user == "admin")
                    .map(|e| {
                        format!(
                            "{} {} {}/{} {}",
                            e.verb, e.resource, e.namespace, e.name, e.subresource
                        )
                    })
                    .collect()
            }
        }
    }
}

/// Runs `scenario` on a fresh real control plane, one at a time in this test binary,
/// in a runtime of its own (so that no test holds the one-at-a-time lock across an
/// await of a shared runtime).
pub fn on_real_cluster<Fut: std::future::Future<Output = ()>>(
    scenario: impl FnOnce(Cluster) -> Fut,
) {
    let _one_at_a_time = RealCluster::exclusive();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(async { scenario(Cluster::real().await).await });
}

/// The field managers the API server records as writers of `status.conditions` (an
/// `Update` of subresource `status`), in record order.
#[allow(dead_code)]
pub fn condition_writers(meta: &ObjectMeta) -> Vec<String> {
    meta.managed_fields
        .iter()
        .flatten()
        .filter(|entry| {
            entry.subresource.as_deref() == Some("status")
                && entry
                    .fields_v1
                    .as_ref()
                    .and_then(|f| f.0.get("f:status")?.get("f:conditions"))
                    .is_some()
        })
        .filter_map(|entry| entry.manager.clone())
        .collect()
}
