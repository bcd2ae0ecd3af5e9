//! Gateway -> ConfigMap, Deployment and Service (pure).
//!
//! Objects carry the names, labels and ports of the Go operator and no ownerReferences
//! or managed-by labels: the runtime adds those when it applies them.

use std::collections::BTreeMap;

use aigateway_api::EmbeddedMetadata;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvFromSource, EnvVar, HTTPGetAction, PodSpec, PodTemplateSpec, Probe, Service, ServicePort,
    ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::names;
use crate::settings::RenderSettings;

/// What the workload objects are built from.
#[derive(Clone, Debug)]
pub struct WorkloadInput<'a> {
    /// The gateway's name.
    pub name: &'a str,
    /// The gateway's namespace.
    pub namespace: &'a str,
    /// The port the Service exposes (`spec.port`); LiteLLM listens on
    /// [`names::CONTAINER_PORT`].
    pub port: i32,
    /// The rendered `config.yaml`.
    pub config_yaml: &'a str,
    /// Value of [`names::CONFIG_HASH_ANNOTATION`].
    pub config_hash: &'a str,
    /// Value of [`names::SECRET_HASH_ANNOTATION`].
    pub secret_hash: &'a str,
    /// The container's env, in order.
    pub env: Vec<EnvVar>,
    /// The container's envFrom (the gateway's, passed through).
    pub env_from: Vec<EnvFromSource>,
    /// `spec.commonMetadata`.
    pub common_metadata: Option<&'a EmbeddedMetadata>,
    /// `spec.podMetadata`.
    pub pod_metadata: Option<&'a EmbeddedMetadata>,
    /// Files placed next to `config.yaml` in the ConfigMap (and so in the container's
    /// config directory): `(key, content)`.
    pub config_files: &'a [(&'static str, &'static str)],
    /// Image, replicas and resources.
    pub settings: &'a RenderSettings,
}

fn app_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(names::APP_LABEL.to_owned(), names::label_value(name))])
}

/// Merges label or annotation maps left to right (later wins); `None` when empty.
fn layered<'a>(
    layers: impl IntoIterator<Item = Option<&'a BTreeMap<String, String>>>,
) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for layer in layers.into_iter().flatten() {
        out.extend(layer.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    (!out.is_empty()).then_some(out)
}

/// The ConfigMap `<gw>-config` with key `config.yaml` (and the
/// [`config_files`](WorkloadInput::config_files)), labelled `app: <gw>`.
pub fn config_map(input: &WorkloadInput<'_>) -> ConfigMap {
    let mut data = BTreeMap::from([(names::CONFIG_KEY.to_owned(), input.config_yaml.to_owned())]);
    data.extend(
        input
            .config_files
            .iter()
            .map(|(key, content)| ((*key).to_owned(), (*content).to_owned())),
    );
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(names::config_map_name(input.name)),
            namespace: Some(input.namespace.to_owned()),
            labels: Some(app_labels(input.name)),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    }
}

fn http_probe(path: &str, initial_delay: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String(names::PORT_NAME.to_owned()),
            scheme: Some("HTTP".to_owned()),
            ..Default::default()
        }),
        initial_delay_seconds: Some(initial_delay),
        period_seconds: Some(10),
        timeout_seconds: Some(5),
        success_threshold: Some(1),
        failure_threshold: Some(failure_threshold),
        ..Default::default()
    }
}

/// How often [`startup_probe`] polls LiteLLM.
pub const STARTUP_PERIOD_SECONDS: i32 = 5;
/// How many failed polls [`startup_probe`] tolerates: with [`STARTUP_PERIOD_SECONDS`],
/// five minutes (see [`STARTUP_BUDGET_SECONDS`]).
pub const STARTUP_FAILURE_THRESHOLD: i32 = 60;
/// How long a LiteLLM container may take to start before the kubelet restarts it:
/// `period × failures` of [`startup_probe`]. At least the Go operator's budget (about
/// 130 s: liveness from 30 s, 10 failures 10 s apart) and LiteLLM's helm chart's (300 s:
/// 30 failures 10 s apart); cold starts of 120 to 136 s were measured under a 500m CPU
/// limit.
pub const STARTUP_BUDGET_SECONDS: i32 = STARTUP_PERIOD_SECONDS * STARTUP_FAILURE_THRESHOLD;

/// The startup probe of every LiteLLM container: the liveness endpoint, polled every
/// [`STARTUP_PERIOD_SECONDS`] for up to [`STARTUP_BUDGET_SECONDS`]. Until it succeeds the
/// kubelet runs neither the liveness nor the readiness probe, so a LiteLLM that starts
/// slowly (a small CPU limit, a ToolGateway listing every MCP server's tools at boot) is
/// not restarted in a loop; once it succeeds, liveness takes over with its usual 30 s.
pub fn startup_probe() -> Probe {
    Probe {
        period_seconds: Some(STARTUP_PERIOD_SECONDS),
        failure_threshold: Some(STARTUP_FAILURE_THRESHOLD),
        initial_delay_seconds: None,
        ..http_probe(names::LIVENESS_PATH, 0, STARTUP_FAILURE_THRESHOLD)
    }
}

/// The Deployment `<gw>` running LiteLLM.
pub fn deployment(input: &WorkloadInput<'_>) -> Deployment {
    let app = app_labels(input.name);
    let common = input.common_metadata;
    let pod = input.pod_metadata;
    let hashes = BTreeMap::from([
        (
            names::CONFIG_HASH_ANNOTATION.to_owned(),
            input.config_hash.to_owned(),
        ),
        (
            names::SECRET_HASH_ANNOTATION.to_owned(),
            input.secret_hash.to_owned(),
        ),
    ]);
    let container = Container {
        name: names::CONTAINER_NAME.to_owned(),
        image: Some(input.settings.image.clone()),
        command: Some(vec![
            "litellm".to_owned(),
            "--config".to_owned(),
            names::CONFIG_FILE_PATH.to_owned(),
            "--port".to_owned(),
            names::CONTAINER_PORT.to_string(),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some(names::PORT_NAME.to_owned()),
            container_port: names::CONTAINER_PORT,
            protocol: Some("TCP".to_owned()),
            ..Default::default()
        }]),
        env: (!input.env.is_empty()).then(|| input.env.clone()),
        env_from: (!input.env_from.is_empty()).then(|| input.env_from.clone()),
        resources: Some(input.settings.resources.clone()),
        volume_mounts: Some(vec![
            VolumeMount {
                name: names::CONFIG_VOLUME.to_owned(),
                mount_path: names::CONFIG_MOUNT_PATH.to_owned(),
                read_only: Some(true),
                ..Default::default()
            },
            VolumeMount {
                name: names::PROMETHEUS_VOLUME.to_owned(),
                mount_path: names::PROMETHEUS_MOUNT_PATH.to_owned(),
                ..Default::default()
            },
            VolumeMount {
                name: names::TMP_VOLUME.to_owned(),
                mount_path: names::TMP_MOUNT_PATH.to_owned(),
                ..Default::default()
            },
        ]),
        // Both run only once the startup probe has succeeded.
        liveness_probe: Some(http_probe(names::LIVENESS_PATH, 0, 3)),
        readiness_probe: Some(http_probe(names::READINESS_PATH, 0, 3)),
        startup_probe: Some(startup_probe()),
        security_context: Some(input.settings.security.container.clone()),
        ..Default::default()
    };
    Deployment {
        metadata: ObjectMeta {
            name: Some(input.name.to_owned()),
            namespace: Some(input.namespace.to_owned()),
            labels: layered([common.and_then(|m| m.labels.as_ref()), Some(&app)]),
            annotations: layered([common.and_then(|m| m.annotations.as_ref())]),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: input.settings.replicas,
            selector: LabelSelector {
                match_labels: Some(app.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: layered([
                        common.and_then(|m| m.labels.as_ref()),
                        pod.and_then(|m| m.labels.as_ref()),
                        Some(&app),
                    ]),
                    annotations: layered([
                        common.and_then(|m| m.annotations.as_ref()),
                        pod.and_then(|m| m.annotations.as_ref()),
                        Some(&hashes),
                    ]),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    // LiteLLM never calls the Kubernetes API.
                    automount_service_account_token: Some(false),
                    security_context: Some(input.settings.security.pod.clone()),
                    volumes: Some(vec![
                        Volume {
                            name: names::CONFIG_VOLUME.to_owned(),
                            config_map: Some(ConfigMapVolumeSource {
                                name: names::config_map_name(input.name),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                        Volume {
                            name: names::PROMETHEUS_VOLUME.to_owned(),
                            empty_dir: Some(EmptyDirVolumeSource::default()),
                            ..Default::default()
                        },
                        Volume {
                            name: names::TMP_VOLUME.to_owned(),
                            empty_dir: Some(EmptyDirVolumeSource::default()),
                            ..Default::default()
                        },
                    ]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The ClusterIP Service `<gw>` exposing port `http` `<port>` -> the container's port
/// `http` ([`names::CONTAINER_PORT`]); agents reach the gateway through its name and
/// port.
pub fn service(input: &WorkloadInput<'_>) -> Service {
    let common = input.common_metadata;
    Service {
        metadata: ObjectMeta {
            name: Some(input.name.to_owned()),
            namespace: Some(input.namespace.to_owned()),
            labels: layered([
                common.and_then(|m| m.labels.as_ref()),
                Some(&app_labels(input.name)),
            ]),
            annotations: layered([common.and_then(|m| m.annotations.as_ref())]),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(app_labels(input.name)),
            ports: Some(vec![ServicePort {
                name: Some(names::PORT_NAME.to_owned()),
                port: input.port,
                target_port: Some(IntOrString::String(names::PORT_NAME.to_owned())),
                protocol: Some("TCP".to_owned()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}
