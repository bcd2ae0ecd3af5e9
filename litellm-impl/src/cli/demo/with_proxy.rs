//! `demo --with-proxy`: real traffic through a real LiteLLM proxy.
//!
//! 1. [`prepare_litellm`]: the pinned LiteLLM, on PATH or in a cached venv.
//! 2. [`AgentTarget::prepare`]: the demo's agent resolves its gateway exactly as
//!    agent-runtime-operator would ([`aigateway_api::resolve`]); that gateway's OpenAI
//!    models are pointed at the built-in fake provider through `spec.env`
//!    (`OPENAI_API_BASE`), as a user would for any OpenAI-compatible endpoint.
//! 3. [`Traffic::spawn`]: a task that plays kubelet for that gateway's Deployment (runs
//!    its pod whenever the pod template changes, e.g. after a Secret rotation rolls it),
//!    keeps a loopback "Service" pointed at the live pod, and sends the agent's chat
//!    completion after every roll.
//!
//! The ToolGateway half (an MCP server from the venv's `mcp` SDK, and a `tools/list` +
//! `tools/call` through the route URL) slots in as a second `Kubelet` target (the
//! ToolGateway's Deployment) and a second kind of agent call next to `Kubelet::ask`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aigateway_api::AiGateway;
use aigateway_api::resolve::{self, AGENT_KEY_ENV, GATEWAY_URL_ENV, ResolvedAgent};
use aigateway_testkit::fake_provider::{FakeProvider, ProviderRequest};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::InMemoryObjects;
use crate::local::forward::ServiceForward;
use crate::local::http;
use crate::local::install::{self, InstallError, LiteLlm, Origin, PINNED_LITELLM_VERSION};
use crate::local::pod::{self, LocalPod, PodError};
use crate::names;

/// The agent whose traffic the demo shows (it has no `aiGatewayRef`, so it gets the
/// default gateway of namespace `ai-gateway`).
pub const AGENT_NAMESPACE: &str = "demo-agents";
/// The agent's name.
pub const AGENT_NAME: &str = "demo-agent";
/// The field manager of the demo's own change to the sample gateway.
pub const FIELD_MANAGER: &str = "litellm-impl-demo";
/// The env var LiteLLM reads the OpenAI base URL from.
const OPENAI_BASE_ENV: &str = "OPENAI_API_BASE";
/// The question the agent asks.
const QUESTION: &str = "Say hello to the demo.";
/// How long a LiteLLM pod may take to answer its liveness probe.
const LIVE_LIMIT: Duration = Duration::from_secs(180);
/// How long a pod gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

/// Why the traffic part of the demo failed.
#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    /// LiteLLM could not be found or installed.
    #[error("LiteLLM is not available: {0}")]
    Install(#[from] InstallError),
    /// A local socket could not be opened.
    #[error("could not listen on 127.0.0.1 for the {what}: {source}")]
    Listen {
        /// The fake provider or the Service.
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The agent has no gateway, or resolution failed.
    #[error("the demo agent {AGENT_NAMESPACE}/{AGENT_NAME} {0}")]
    Resolve(String),
    /// The resolved gateway has no OpenAI model the fake provider could serve.
    #[error(
        "AiGateway {gateway} has no openai model: the demo's fake provider speaks the OpenAI API; add one to spec.aiModels"
    )]
    NoOpenAiModel {
        /// `namespace/name`.
        gateway: String,
    },
    /// The API server refused a read or the demo's patch.
    #[error("{what}: {reason}")]
    Api {
        /// What was attempted.
        what: String,
        /// The API server's one-line answer.
        reason: String,
    },
    /// The gateway's pod could not run.
    #[error(transparent)]
    Pod(#[from] PodError),
    /// The agent's request failed.
    #[error("the agent's chat completion through {url} failed: {reason}")]
    Request {
        /// The URL.
        url: String,
        /// Status and the error message of the answer.
        reason: String,
    },
}

fn describe(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("{} (HTTP {})", status.message.trim(), status.code),
        other => other.to_string(),
    }
}

/// Finds or installs the pinned LiteLLM, printing progress to `out`. `venv`: an explicit
/// venv (no PATH lookup); otherwise `litellm` on PATH at the pinned version, else the
/// venv in the user's cache directory.
pub async fn prepare_litellm(
    venv: Option<PathBuf>,
    out: &mut (dyn std::io::Write + Send),
) -> Result<LiteLlm, TrafficError> {
    let mut progress = |line: &str| {
        let _ = writeln!(out, "LiteLLM: {line}");
    };
    let litellm = match venv {
        Some(dir) => install::ensure_venv(&dir, &mut progress).await?,
        None => {
            let dir = install::default_venv_dir_from_env()?;
            install::locate_or_install(&dir, &mut progress).await?
        }
    };
    let origin = match &litellm.origin {
        Origin::Path => "on PATH".to_owned(),
        Origin::CachedVenv => "cached venv".to_owned(),
        Origin::InstalledVenv(took) => format!("installed just now in {:.0} s", took.as_secs_f64()),
    };
    progress(&format!(
        "using {} ({PINNED_LITELLM_VERSION}, {origin})",
        litellm.executable().display()
    ));
    Ok(litellm)
}

/// The demo's agent and the gateway it resolved to.
#[derive(Clone, Debug)]
pub struct AgentTarget {
    /// The agent and its gateway, as agent-runtime-operator resolves them.
    pub agent: ResolvedAgent,
    /// The env its pod gets ([`ResolvedAgent::env`]), name and value.
    pub env: Vec<(String, String)>,
    /// The OpenAI model it asks.
    pub model: String,
}

impl AgentTarget {
    /// Resolves the agent's gateway, and points that gateway's OpenAI models at
    /// `provider` by applying `spec.env` `OPENAI_API_BASE` (field manager
    /// [`FIELD_MANAGER`]). Lines for the user go to `out`.
    pub async fn prepare(
        client: &kube::Client,
        provider: &FakeProvider,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<Self, TrafficError> {
        let gateway = resolve::resolve_ai_gateway(client, None, AGENT_NAMESPACE)
            .await
            .map_err(|e| TrafficError::Resolve(format!("cannot resolve its gateway: {e}")))?
            .ok_or_else(|| {
                TrafficError::Resolve(format!(
                    "has no gateway: namespace {} holds no AiGateway",
                    resolve::DEFAULT_GATEWAY_NAMESPACE
                ))
            })?;
        let label = format!("{}/{}", gateway.namespace, gateway.name);
        let api: Api<AiGateway> = Api::namespaced(client.clone(), &gateway.namespace);
        let stored = api
            .get(&gateway.name)
            .await
            .map_err(|e| TrafficError::Api {
                what: format!("could not read AiGateway {label}"),
                reason: describe(&e),
            })?;
        let model = stored
            .spec
            .ai_models
            .iter()
            .find(|m| m.provider == "openai")
            .map(|m| m.name.clone())
            .ok_or_else(|| TrafficError::NoOpenAiModel {
                gateway: label.clone(),
            })?;
        let patch = json!({
            "apiVersion": "runtime.agentic-layer.ai/v1alpha1",
            "kind": "AiGateway",
            "metadata": {"name": gateway.name, "namespace": gateway.namespace},
            "spec": {"env": [{"name": OPENAI_BASE_ENV, "value": provider.base_url()}]},
        });
        api.patch(
            &gateway.name,
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(|e| TrafficError::Api {
            what: format!("could not point AiGateway {label} at the fake provider"),
            reason: describe(&e),
        })?;
        let _ = writeln!(
            out,
            "Fake OpenAI-compatible provider: {} (it logs a fingerprint of each key it receives, never the key)",
            provider.base_url()
        );
        let _ = writeln!(
            out,
            "AiGateway {label}: spec.env {OPENAI_BASE_ENV}={} (field manager {FIELD_MANAGER}), as you would for any OpenAI-compatible endpoint",
            provider.base_url()
        );
        let agent = ResolvedAgent {
            agent_namespace: AGENT_NAMESPACE.to_owned(),
            agent_name: AGENT_NAME.to_owned(),
            gateway,
        };
        let env: Vec<(String, String)> = agent
            .env()
            .into_iter()
            .map(|e| (e.name, e.value.unwrap_or_default()))
            .collect();
        let _ = writeln!(
            out,
            "Agent {AGENT_NAMESPACE}/{AGENT_NAME} (no aiGatewayRef) resolves to {label}; agent-runtime-operator would give its pod:"
        );
        for (name, value) in &env {
            let _ = writeln!(out, "  {name}={value}");
        }
        let _ = writeln!(out);
        Ok(Self { agent, env, model })
    }

    fn var(&self, name: &str) -> &str {
        self.env
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    fn label(&self) -> String {
        format!(
            "{}/{}",
            self.agent.gateway.namespace, self.agent.gateway.name
        )
    }
}

/// What the traffic task reports.
#[derive(Debug)]
pub enum TrafficEvent {
    /// A line for the user.
    Line(String),
    /// The agent's request succeeded.
    Answered,
    /// Something failed; the task keeps running (the next roll may fix it).
    Failed(TrafficError),
}

/// The running traffic task. Dropping it aborts the task, whose pods then kill their
/// process groups.
pub struct Traffic {
    events: mpsc::Receiver<TrafficEvent>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Traffic {
    /// Starts the task for `target` (see the module docs).
    pub async fn spawn(
        client: kube::Client,
        litellm: LiteLlm,
        target: AgentTarget,
        provider: FakeProvider,
    ) -> Result<Self, TrafficError> {
        let service = ServiceForward::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .map_err(|source| TrafficError::Listen {
                what: "gateway's Service",
                source,
            })?;
        let (events, receiver) = mpsc::channel(64);
        let (stop, stopped) = oneshot::channel();
        let kubelet = Kubelet {
            client,
            litellm,
            target,
            service,
            events,
            running: None,
            last_problem: None,
            provider_log: provider.subscribe(),
        };
        let task = tokio::spawn(kubelet.run(provider, stopped));
        Ok(Self {
            events: receiver,
            stop: Some(stop),
            task,
        })
    }

    /// The next event; `None` once the task ended.
    pub async fn next(&mut self) -> Option<TrafficEvent> {
        self.events.recv().await
    }

    /// Stops the task, letting it stop its pods gracefully (killed after a deadline).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let deadline = GRACE + Duration::from_secs(5);
        if tokio::time::timeout(deadline, &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
            let _ = (&mut self.task).await;
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The pod that runs now, and the template it runs.
struct Running {
    template: String,
    pod: LocalPod,
}

/// Plays kubelet (and kube-proxy) for the target gateway's Deployment.
struct Kubelet {
    client: kube::Client,
    litellm: LiteLlm,
    target: AgentTarget,
    service: ServiceForward,
    events: mpsc::Sender<TrafficEvent>,
    running: Option<Running>,
    last_problem: Option<String>,
    /// The fake provider's log.
    provider_log: broadcast::Receiver<ProviderRequest>,
}

impl Kubelet {
    async fn say(&self, line: String) {
        let _ = self.events.send(TrafficEvent::Line(line)).await;
    }

    /// Passes on what the fake provider logged so far.
    async fn relay_provider_log(&mut self) {
        while let Ok(request) = self.provider_log.try_recv() {
            self.say(request.to_string()).await;
        }
    }

    async fn run(mut self, provider: FakeProvider, mut stopped: oneshot::Receiver<()>) {
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                request = self.provider_log.recv() => {
                    if let Ok(request) = request {
                        self.say(request.to_string()).await;
                    }
                }
                () = tokio::time::sleep(Duration::from_millis(500)) => {
                    let rolled = tokio::select! {
                        _ = &mut stopped => break,
                        rolled = self.sync() => rolled,
                    };
                    match rolled {
                        Ok(false) => {}
                        Ok(true) => self.ask().await,
                        Err(error) => {
                            let _ = self.events.send(TrafficEvent::Failed(error)).await;
                        }
                    }
                }
            }
        }
        if let Some(running) = self.running.take() {
            running.pod.stop(GRACE).await;
        }
        drop(provider);
    }

    /// Brings the local pod in line with the Deployment's pod template; `true` when a
    /// new pod went live.
    async fn sync(&mut self) -> Result<bool, TrafficError> {
        let gateway = &self.target.agent.gateway;
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &gateway.namespace);
        let Some(deployment) =
            deployments
                .get_opt(&gateway.name)
                .await
                .map_err(|e| TrafficError::Api {
                    what: format!("could not read Deployment {}", self.target.label()),
                    reason: describe(&e),
                })?
        else {
            // The gateway (and so its Deployment) was deleted: its pod goes too.
            if let Some(running) = self.running.take() {
                self.service.point_to(None);
                running.pod.stop(GRACE).await;
                self.say(format!(
                    "Deployment {} is gone: stopped its LiteLLM pod",
                    self.target.label()
                ))
                .await;
            }
            return Ok(false);
        };
        let Some(template) = deployment.spec.map(|s| s.template) else {
            return Ok(false);
        };
        let fingerprint = serde_json::to_string(&template).unwrap_or_default();
        if self
            .running
            .as_ref()
            .is_some_and(|r| r.template == fingerprint)
        {
            return Ok(false);
        }
        let objects = self.objects().await?;
        let plan = match pod::plan(&template, &gateway.namespace, &gateway.name, &objects) {
            Ok(plan) => plan,
            // As the kubelet: the pod waits (and is retried) until the reference exists.
            Err(error) => {
                let text = error.to_string();
                if self.last_problem.as_deref() != Some(text.as_str()) {
                    self.last_problem = Some(text);
                    return Err(error.into());
                }
                return Ok(false);
            }
        };
        self.last_problem = None;
        let rolling = self.running.is_some();
        let port = free_port().map_err(|source| TrafficError::Listen {
            what: "LiteLLM pod",
            source,
        })?;
        self.say(format!(
            "{} LiteLLM for {} (Deployment pod template changed): {} {} on 127.0.0.1:{port}",
            if rolling { "Rolling" } else { "Starting" },
            self.target.label(),
            plan.program,
            plan.args.join(" ")
        ))
        .await;
        for secret in &plan.secret_env {
            self.say(format!(
                "  env {} from Secret {}/{} key {}: {}",
                secret.var, gateway.namespace, secret.secret, secret.key, secret.fingerprint
            ))
            .await;
        }
        let started = Instant::now();
        let mut pod = LocalPod::start(&plan, &self.litellm.bin_dir, port)?;
        pod.wait_live(names::LIVENESS_PATH, LIVE_LIMIT).await?;
        self.service
            .point_to(Some(SocketAddr::from(([127, 0, 0, 1], port))));
        self.say(format!(
            "LiteLLM for {} is live after {:.1} s (pid {}, its own process group); Service {} port {} -> http://{}",
            self.target.label(),
            started.elapsed().as_secs_f64(),
            pod.pid(),
            self.target.label(),
            gateway.port,
            self.service.addr()
        ))
        .await;
        if let Some(old) = self.running.replace(Running {
            template: fingerprint,
            pod,
        }) {
            old.pod.stop(GRACE).await;
        }
        Ok(true)
    }

    /// The namespace's Secrets and ConfigMaps, for the env and volumes of the pod.
    async fn objects(&self) -> Result<InMemoryObjects, TrafficError> {
        let namespace = &self.target.agent.gateway.namespace;
        let failed = |kind: &str, e: kube::Error| TrafficError::Api {
            what: format!("could not list {kind} in namespace {namespace}"),
            reason: describe(&e),
        };
        let mut objects = InMemoryObjects::new();
        for secret in Api::<Secret>::namespaced(self.client.clone(), namespace)
            .list(&ListParams::default())
            .await
            .map_err(|e| failed("Secrets", e))?
        {
            objects.insert_secret(secret);
        }
        for config_map in Api::<ConfigMap>::namespaced(self.client.clone(), namespace)
            .list(&ListParams::default())
            .await
            .map_err(|e| failed("ConfigMaps", e))?
        {
            objects.insert_config_map(config_map);
        }
        Ok(objects)
    }

    /// The agent's chat completion, sent to its `LITELLM_PROXY_API_BASE` with its
    /// `LITELLM_PROXY_API_KEY`, through the local Service.
    async fn ask(&mut self) {
        let cluster_url = self.target.var(GATEWAY_URL_ENV).to_owned();
        let key = self.target.var(AGENT_KEY_ENV).to_owned();
        let local_base = format!("http://{}", self.service.addr());
        let url = format!("{local_base}/chat/completions");
        let body = json!({"model": self.target.model, "messages": [{"role": "user", "content": QUESTION}]});
        self.say(format!(
            "Agent {AGENT_NAMESPACE}/{AGENT_NAME}: POST {cluster_url}/chat/completions (here {url}) with {AGENT_KEY_ENV}={key}, model {}",
            self.target.model
        ))
        .await;
        let failed = |reason: String| TrafficError::Request {
            url: url.clone(),
            reason,
        };
        let response = http::send("POST", &url, Some(&key), Some(&body)).await;
        // The provider logged the request before answering it: its line comes first.
        self.relay_provider_log().await;
        let result = match response {
            Err(error) => Err(failed(error.to_string())),
            Ok(response) if response.status != 200 => {
                let message = serde_json::from_str::<Value>(&response.body)
                    .ok()
                    .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                let message: String = message
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .chars()
                    .take(200)
                    .collect();
                Err(failed(format!("HTTP {}: {message}", response.status)))
            }
            Ok(response) => {
                let answer: Value = serde_json::from_str(&response.body).unwrap_or(Value::Null);
                match answer["choices"][0]["message"]["content"].as_str() {
                    Some(content) => {
                        let version = response
                            .headers
                            .get("x-litellm-version")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("unknown version");
                        self.say(format!("Answer through LiteLLM {version}: {content}"))
                            .await;
                        self.say(format!(
                            "Repeat it:\n  curl -s {url} -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' -d '{body}'\n"
                        ))
                        .await;
                        Ok(())
                    }
                    None => Err(failed(
                        "the answer has no choices[0].message.content".into(),
                    )),
                }
            }
        };
        let event = match result {
            Ok(()) => TrafficEvent::Answered,
            Err(error) => TrafficEvent::Failed(error),
        };
        let _ = self.events.send(event).await;
    }
}

/// A free loopback port (bound and released: the pod binds it next).
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts the fake provider on loopback.
pub async fn start_provider() -> Result<FakeProvider, TrafficError> {
    FakeProvider::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        &["gpt-4o-mini", "gpt-4o"],
    )
    .await
    .map_err(|source| TrafficError::Listen {
        what: "fake provider",
        source,
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::PINNED_LITELLM_VERSION;

    /// The `--venv` help names the default venv, which carries the pinned version.
    #[test]
    fn the_venv_help_names_the_pinned_version() {
        let help = crate::cli::Cli::command()
            .find_subcommand_mut("demo")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(
            help.contains(&format!("aigateway-rs/litellm-{PINNED_LITELLM_VERSION}")),
            "{help}"
        );
    }
}
