//! The operator `litellm-impl run` builds (both kinds in one process) against the
//! in-memory API server, and the condition helpers the ToolGateway tests share.
#![allow(dead_code)]

use std::time::Duration;

use aigateway_api::conditions::find_condition;
use aigateway_api::{ToolGateway, ToolRoute};
use aigateway_testkit::ApiServer;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use litellm_impl_cli::run::{BindAddress, OperatorArgs, ServedGatewayKind, operator};

/// How long a gateway or route may take to get where a test waits for it.
pub const WAIT: Duration = Duration::from_secs(30);

/// The Go operator's samples, imported unchanged (scripts/import-upstream.py).
pub const SAMPLES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../aigateway-api/tests/fixtures/samples"
);

/// The Go operator's ToolGatewayClass `litellm`, default for ToolGateways without a class.
pub const DEFAULT_TOOL_CLASS: &str = "apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: ToolGatewayClass
metadata:
  name: litellm
  annotations:
    toolgatewayclass.kubernetes.io/is-default-class: \"true\"
spec:
  controller: litellm.agentic-layer.ai/tool-gateway-litellm-controller
";

/// An API server with every CRD and the operator of `litellm-impl run` serving both
/// kinds, stopped with [`Running::stop`].
pub struct Running {
    pub server: ApiServer,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), aigateway_runtime::OperatorError>>,
}

impl Running {
    /// An API server with every CRD (Deployments roll out after `rollout`) and the
    /// operator of `litellm-impl run` serving both kinds.
    pub async fn start(rollout: Duration) -> Self {
        let server = ApiServer::builder().deployment_ready_delay(rollout).build();
        for crd in aigateway_api::crds::all() {
            server.install_crd(crd).await.unwrap();
        }
        let args = OperatorArgs {
            namespace: None,
            health_probe_bind_address: BindAddress::Off,
            metrics_bind_address: BindAddress::Off,
            metrics_secure: false,
            metrics_cert_path: None,
            metrics_cert_name: "tls.crt".into(),
            metrics_cert_key: "tls.key".into(),
            render: litellm_impl_cli::flags::RenderFlags::default(),
            concurrency: 4,
            log_format: aigateway_runtime::logging::LogFormat::Text,
            gateway_kinds: vec![ServedGatewayKind::AiGateway, ServedGatewayKind::ToolGateway],
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(
            operator(server.client(), &args)
                .shutdown_on(async move {
                    let _ = stopped.await;
                })
                .run(),
        );
        Self {
            server,
            stop: Some(stop),
            task,
        }
    }

    pub fn apply(&self, yaml: &str) {
        self.server.apply_manifests(yaml).unwrap();
    }

    pub fn apply_sample(&self, file: &str) {
        let text = std::fs::read_to_string(format!("{SAMPLES}/{file}")).unwrap();
        self.apply(&text);
    }

    pub async fn tool_gateway(&self, namespace: &str, name: &str) -> Option<ToolGateway> {
        Api::<ToolGateway>::namespaced(self.server.client(), namespace)
            .get(name)
            .await
            .ok()
    }

    pub async fn route(&self, namespace: &str, name: &str) -> Option<ToolRoute> {
        Api::<ToolRoute>::namespaced(self.server.client(), namespace)
            .get(name)
            .await
            .ok()
    }

    pub async fn config(&self, namespace: &str, gateway: &str) -> String {
        Api::<ConfigMap>::namespaced(self.server.client(), namespace)
            .get(&format!("{gateway}-config"))
            .await
            .ok()
            .and_then(|c| c.data)
            .and_then(|mut d| d.remove("config.yaml"))
            .unwrap_or_default()
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the operator stops")
            .unwrap()
            .unwrap();
    }
}

/// `(status, reason, message)` of condition `type_`.
pub fn condition_of(
    conditions: Option<&Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>,
    type_: &str,
) -> Option<(String, String, String)> {
    let c = find_condition(conditions?, type_)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

pub fn gateway_condition(gateway: &ToolGateway, type_: &str) -> Option<(String, String, String)> {
    condition_of(gateway.status.as_ref().map(|s| &s.conditions), type_)
}

pub fn route_condition(route: &ToolRoute, type_: &str) -> Option<(String, String, String)> {
    condition_of(route.status.as_ref().map(|s| &s.conditions), type_)
}

pub fn route_url(route: &ToolRoute) -> Option<&str> {
    route.status.as_ref()?.url.as_deref()
}

pub fn is_true(condition: Option<(String, String, String)>) -> bool {
    condition.is_some_and(|(status, _, _)| status == "True")
}
