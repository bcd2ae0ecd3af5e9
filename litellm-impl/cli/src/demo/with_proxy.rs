//! `demo --with-proxy`: real traffic through a real LiteLLM proxy.
//!
//! 1. [`prepare_litellm`]: the pinned LiteLLM, on PATH or in a cached venv.
//! 2. [`AgentTarget::prepare`]: the demo's agent resolves its gateway exactly as
//!    agent-runtime-operator would ([`aigateway_api::resolve`]); that gateway's OpenAI
//!    models are pointed at the built-in fake provider through `spec.env`
//!    (`OPENAI_API_BASE`), as a user would for any OpenAI-compatible endpoint.
//! 3. [`ToolTarget::prepare`]: the demo's MCP server (the venv's `mcp` SDK running
//!    [`DEMO_SERVER_SCRIPT`](crate::local::mcp::DEMO_SERVER_SCRIPT)) starts on loopback,
//!    and the sample ToolRoutes of ToolGateway `mcp-demo/tool-gateway` are pointed at
//!    it (their `spec.upstream.external.url`), as a user would for any MCP server.
//! 4. [`Traffic::spawn`]: one task per gateway that plays kubelet for its Deployment
//!    (runs its pod whenever the pod template changes, e.g. after a Secret rotation rolls
//!    it) and keeps a loopback "Service" pointed at the live pod; after every roll the
//!    agent sends its chat completion (AiGateway), or MCP `tools/list` on every route and
//!    a `tools/call` on the filtered one, at the URLs the routes publish in `status.url`
//!    (ToolGateway).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aigateway_api::conditions::find_condition;
use aigateway_api::resolve::{self, AGENT_KEY_ENV, GATEWAY_URL_ENV, ResolvedAgent};
use aigateway_api::{AiGateway, NamespacedName, ToolRoute};
use aigateway_testkit::fake_provider::{FakeProvider, ProviderRequest};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams};
use litellm_impl::InMemoryObjects;
use litellm_impl::names;
use litellm_impl::tool_gateway::gateway_url;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};

use crate::local::forward::ServiceForward;
use crate::local::http;
use crate::local::install::{self, InstallError, LiteLlm, Origin, PINNED_LITELLM_VERSION};
use crate::local::mcp::{self, McpClient};
use crate::local::pod::{self, LocalPod, PodError};

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
/// The namespace of the sample ToolGateway the demo's agent calls tools through.
pub const TOOL_GATEWAY_NAMESPACE: &str = "mcp-demo";
/// Its name.
pub const TOOL_GATEWAY_NAME: &str = "tool-gateway";
/// The port of a ToolGateway's Service.
const TOOL_GATEWAY_SERVICE_PORT: i32 = 80;
/// The demo's MCP server, as the pod `namespace/name` of the Service the sample routes
/// name (`demo-tools.mcp-demo.svc.cluster.local:8000`).
pub const MCP_SERVER_POD: &str = "mcp-demo/demo-tools";
/// The tool the agent calls.
const ECHO_TOOL: &str = "echo";
/// What the agent asks the echo tool to repeat, unless `--tool-text` says otherwise.
pub const DEFAULT_TOOL_TEXT: &str = "hello from the demo agent";

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
    /// The agent's MCP calls through a ToolRoute failed, or the route exposed a tool its
    /// filter denies.
    #[error("the agent's MCP {what} through ToolRoute {route} failed: {reason}")]
    ToolCall {
        /// `tools/list` or `tools/call <name>`.
        what: String,
        /// `namespace/name` of the route.
        route: String,
        /// What went wrong, one line.
        reason: String,
    },
    /// The sample ToolGateway has nothing the demo can call.
    #[error(
        "ToolGateway {TOOL_GATEWAY_NAMESPACE}/{TOOL_GATEWAY_NAME} has no ToolRoute with an external upstream; apply examples/manifests/demo-tool-gateway.yaml"
    )]
    NoToolRoute,
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
}

/// One ToolRoute of the sample ToolGateway.
#[derive(Clone, Debug)]
struct RouteTarget {
    route: NamespacedName,
    /// Its `toolFilter.deny`.
    deny: Vec<String>,
    /// Its `toolFilter.allow`.
    allow: Vec<String>,
}

impl RouteTarget {
    fn label(&self) -> String {
        format!("{}/{}", self.route.namespace, self.route.name)
    }

    fn filter(&self) -> String {
        match (self.allow.is_empty(), self.deny.is_empty()) {
            (true, true) => "no toolFilter".to_owned(),
            (false, true) => format!("toolFilter allow: {}", self.allow.join(", ")),
            (true, false) => format!("toolFilter deny: {}", self.deny.join(", ")),
            (false, false) => format!(
                "toolFilter allow: {}, deny: {}",
                self.allow.join(", "),
                self.deny.join(", ")
            ),
        }
    }
}

/// The demo's MCP server and the sample ToolGateway's routes to it.
pub struct ToolTarget {
    routes: Vec<RouteTarget>,
    server: LocalPod,
    server_live: bool,
    /// How many of the server's log lines were passed on.
    relayed: usize,
    tool_text: String,
}

impl ToolTarget {
    /// Starts the demo's MCP server (the venv's `python` running
    /// [`mcp::DEMO_SERVER_SCRIPT`] on a free loopback port; its liveness is awaited
    /// before the ToolGateway's pod starts) and points the `external` upstream of every
    /// ToolRoute attached to `mcp-demo/tool-gateway` at it (server-side apply, field
    /// manager [`FIELD_MANAGER`]). The agent will ask the echo tool to repeat
    /// `tool_text`. Lines for the user go to `out`.
    pub async fn prepare(
        client: &kube::Client,
        litellm: &LiteLlm,
        tool_text: &str,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<Self, TrafficError> {
        let gateway = NamespacedName {
            namespace: TOOL_GATEWAY_NAMESPACE.to_owned(),
            name: TOOL_GATEWAY_NAME.to_owned(),
        };
        let all: Api<ToolRoute> = Api::all(client.clone());
        let mut routes: Vec<ToolRoute> = all
            .list(&ListParams::default())
            .await
            .map_err(|e| TrafficError::Api {
                what: "could not list ToolRoutes".to_owned(),
                reason: describe(&e),
            })?
            .items
            .into_iter()
            .filter(|r| {
                r.gateway().as_ref() == Some(&gateway) && r.spec.upstream.external.is_some()
            })
            .collect();
        routes.sort_by_key(|r| (r.metadata.namespace.clone(), r.metadata.name.clone()));
        if routes.is_empty() {
            return Err(TrafficError::NoToolRoute);
        }
        let port = free_port().map_err(|source| TrafficError::Listen {
            what: "MCP server",
            source,
        })?;
        let server = LocalPod::start(
            &mcp::demo_server_plan(MCP_SERVER_POD),
            &litellm.bin_dir,
            port,
        )?;
        let server_url = format!("http://127.0.0.1:{port}{}", mcp::DEMO_SERVER_MCP_PATH);
        let _ = writeln!(
            out,
            "MCP server (the mcp SDK, tools {ECHO_TOOL} and delete_everything): {server_url} (pid {}, its own process group), standing in for {MCP_SERVER_POD}",
            server.pid()
        );
        let mut targets = Vec::new();
        for route in routes {
            let namespace = route.metadata.namespace.clone().unwrap_or_default();
            let name = route.metadata.name.clone().unwrap_or_default();
            let patch = json!({
                "apiVersion": "runtime.agentic-layer.ai/v1alpha1",
                "kind": "ToolRoute",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"upstream": {"external": {"url": server_url}}},
            });
            // Forced: the demo applied these samples itself, under the testkit's manager,
            // which owns the URL; the demo's manager takes it over.
            Api::<ToolRoute>::namespaced(client.clone(), &namespace)
                .patch(
                    &name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&patch),
                )
                .await
                .map_err(|e| TrafficError::Api {
                    what: format!("could not point ToolRoute {namespace}/{name} at the MCP server"),
                    reason: describe(&e),
                })?;
            let filter = route.spec.tool_filter.unwrap_or_default();
            let target = RouteTarget {
                route: NamespacedName { namespace, name },
                deny: filter.deny,
                allow: filter.allow,
            };
            let _ = writeln!(
                out,
                "ToolRoute {} ({}): spec.upstream.external.url={server_url} (field manager {FIELD_MANAGER})",
                target.label(),
                target.filter()
            );
            targets.push(target);
        }
        let _ = writeln!(out);
        Ok(Self {
            routes: targets,
            server,
            server_live: false,
            relayed: 0,
            tool_text: tool_text.to_owned(),
        })
    }
}

/// What the traffic tasks report.
#[derive(Debug)]
pub enum TrafficEvent {
    /// A line for the user.
    Line(String),
    /// The agent's chat completion through the AiGateway succeeded.
    Answered,
    /// The agent's MCP calls through the ToolGateway succeeded.
    ToolsAnswered,
    /// What the next call still waits for (sent when it changes), e.g. a route URL.
    Waiting(String),
    /// Something failed; the task keeps running (the next roll may fix it).
    Failed(TrafficError),
}

/// The running traffic tasks, one per gateway. Dropping it aborts them, whose pods then
/// kill their process groups.
pub struct Traffic {
    events: mpsc::Receiver<TrafficEvent>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Traffic {
    /// Starts the tasks for the AiGateway of `target` and the ToolGateway of `tools`
    /// (see the module docs).
    pub async fn spawn(
        client: kube::Client,
        litellm: LiteLlm,
        target: AgentTarget,
        provider: FakeProvider,
        tools: ToolTarget,
    ) -> Result<Self, TrafficError> {
        let (events, receiver) = mpsc::channel(64);
        let (stop, stopped) = watch::channel(false);
        let bind = || async {
            ServiceForward::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                .await
                .map_err(|source| TrafficError::Listen {
                    what: "gateway's Service",
                    source,
                })
        };
        let chat = Kubelet {
            client: client.clone(),
            litellm: litellm.clone(),
            workload: Workload {
                kind: "AiGateway",
                namespace: target.agent.gateway.namespace.clone(),
                name: target.agent.gateway.name.clone(),
                port: target.agent.gateway.port,
            },
            service: bind().await?,
            events: events.clone(),
            running: None,
            last_problem: None,
            pending: false,
            caller: Caller::Chat {
                provider_log: provider.subscribe(),
                _provider: provider,
                target,
            },
        };
        let tools = Kubelet {
            client,
            litellm,
            workload: Workload {
                kind: "ToolGateway",
                namespace: TOOL_GATEWAY_NAMESPACE.to_owned(),
                name: TOOL_GATEWAY_NAME.to_owned(),
                port: TOOL_GATEWAY_SERVICE_PORT,
            },
            service: bind().await?,
            events,
            running: None,
            last_problem: None,
            pending: false,
            caller: Caller::Tools(tools),
        };
        let tasks = vec![
            tokio::spawn(chat.run(stopped.clone())),
            tokio::spawn(tools.run(stopped)),
        ];
        Ok(Self {
            events: receiver,
            stop,
            tasks,
        })
    }

    /// The next event; `None` once every task ended.
    pub async fn next(&mut self) -> Option<TrafficEvent> {
        self.events.recv().await
    }

    /// Stops the tasks, letting them stop their pods gracefully (killed after a
    /// deadline).
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        let deadline = tokio::time::Instant::now() + GRACE + Duration::from_secs(5);
        for task in &mut self.tasks {
            if tokio::time::timeout_at(deadline, &mut *task).await.is_err() {
                task.abort();
                let _ = task.await;
            }
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The pod that runs now, and the template it runs.
struct Running {
    template: String,
    pod: LocalPod,
}

/// A gateway whose Deployment the demo runs.
#[derive(Clone, Debug)]
struct Workload {
    /// `AiGateway` or `ToolGateway`.
    kind: &'static str,
    namespace: String,
    name: String,
    /// Its Service port.
    port: i32,
}

impl Workload {
    fn label(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// What the agent does through a gateway once its pod is live.
enum Caller {
    /// A chat completion through the AiGateway, answered by the fake provider.
    Chat {
        target: AgentTarget,
        /// Kept alive as long as the task runs.
        _provider: FakeProvider,
        /// The fake provider's log.
        provider_log: broadcast::Receiver<ProviderRequest>,
    },
    /// MCP calls through the ToolGateway's routes to the demo's MCP server.
    Tools(ToolTarget),
}

/// The next request the fake provider logged (never, for a ToolGateway).
async fn next_provider_request(caller: &mut Caller) -> Option<ProviderRequest> {
    match caller {
        Caller::Chat { provider_log, .. } => provider_log.recv().await.ok(),
        Caller::Tools(_) => std::future::pending().await,
    }
}

/// Plays kubelet (and kube-proxy) for one gateway's Deployment.
struct Kubelet {
    client: kube::Client,
    litellm: LiteLlm,
    workload: Workload,
    service: ServiceForward,
    events: mpsc::Sender<TrafficEvent>,
    running: Option<Running>,
    last_problem: Option<String>,
    /// A new pod went live and the agent has not got through yet.
    pending: bool,
    caller: Caller,
}

/// Whether the demo is stopping.
async fn stopping(stop: &mut watch::Receiver<bool>) {
    // A dropped sender means the demo is gone: stop too.
    let _ = stop.wait_for(|stop| *stop).await;
}

impl Kubelet {
    async fn say(&self, line: String) {
        let _ = self.events.send(TrafficEvent::Line(line)).await;
    }

    /// What the fake provider (or the MCP server) logged since the last call.
    fn drain_logs(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        match &mut self.caller {
            Caller::Chat { provider_log, .. } => {
                while let Ok(request) = provider_log.try_recv() {
                    lines.push(request.to_string());
                }
            }
            Caller::Tools(tools) => {
                let log = tools.server.log_text();
                let calls: Vec<&str> = log
                    .lines()
                    .filter(|l| l.starts_with(mcp::DEMO_SERVER_LOG_PREFIX))
                    .collect();
                lines.extend(calls.iter().skip(tools.relayed).map(|l| (*l).to_owned()));
                tools.relayed = calls.len();
            }
        }
        lines
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                () = stopping(&mut stop) => break,
                request = next_provider_request(&mut self.caller) => {
                    if let Some(request) = request {
                        self.say(request.to_string()).await;
                    }
                }
                () = tokio::time::sleep(Duration::from_millis(500)) => {
                    let rolled = tokio::select! {
                        () = stopping(&mut stop) => break,
                        rolled = self.sync() => rolled,
                    };
                    match rolled {
                        Ok(false) => {}
                        Ok(true) => self.pending = true,
                        Err(error) => {
                            let _ = self.events.send(TrafficEvent::Failed(error)).await;
                        }
                    }
                    // Calls that reach the MCP server from elsewhere (the printed curl
                    // commands) show up too.
                    if matches!(self.caller, Caller::Tools(_)) {
                        for line in self.drain_logs() {
                            self.say(line).await;
                        }
                    }
                    if self.pending {
                        let done = tokio::select! {
                            () = stopping(&mut stop) => break,
                            done = self.ask() => done,
                        };
                        self.pending = !done;
                    }
                }
            }
        }
        if let Some(running) = self.running.take() {
            running.pod.stop(GRACE).await;
        }
        if let Caller::Tools(tools) = self.caller {
            tools.server.stop(GRACE).await;
        }
    }

    /// The agent's call for this gateway; `false` when it has to wait (the route URLs
    /// are not published yet).
    async fn ask(&mut self) -> bool {
        match &self.caller {
            Caller::Chat { .. } => {
                self.ask_chat().await;
                true
            }
            Caller::Tools(_) => self.ask_tools().await,
        }
    }

    /// Brings the local pod in line with the Deployment's pod template; `true` when a
    /// new pod went live.
    async fn sync(&mut self) -> Result<bool, TrafficError> {
        let workload = self.workload.clone();
        let deployments: Api<Deployment> =
            Api::namespaced(self.client.clone(), &workload.namespace);
        let Some(deployment) =
            deployments
                .get_opt(&workload.name)
                .await
                .map_err(|e| TrafficError::Api {
                    what: format!("could not read the Deployment of {}", workload.label()),
                    reason: describe(&e),
                })?
        else {
            // The gateway (and so its Deployment) was deleted: its pod goes too.
            if let Some(running) = self.running.take() {
                self.service.point_to(None);
                running.pod.stop(GRACE).await;
                self.say(format!(
                    "The Deployment of {} is gone: stopped its LiteLLM pod",
                    workload.label()
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
        // LiteLLM lists every MCP server's tools as it starts: the server goes first.
        if let Caller::Tools(tools) = &mut self.caller
            && !tools.server_live
        {
            let started = Instant::now();
            tools
                .server
                .wait_live(mcp::DEMO_SERVER_HEALTH_PATH, LIVE_LIMIT)
                .await?;
            tools.server_live = true;
            let line = format!(
                "MCP server {MCP_SERVER_POD} is live after {:.1} s",
                started.elapsed().as_secs_f64()
            );
            self.say(line).await;
        }
        let objects = self.objects().await?;
        let plan = match pod::plan(&template, &workload.namespace, &workload.name, &objects) {
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
            workload.label(),
            plan.program,
            plan.args.join(" ")
        ))
        .await;
        for secret in &plan.secret_env {
            self.say(format!(
                "  env {} from Secret {}/{} key {}: {}",
                secret.var, workload.namespace, secret.secret, secret.key, secret.fingerprint
            ))
            .await;
        }
        if !plan.ignored_env.is_empty() {
            self.say(format!(
                "  env {} left out: it would choose what code runs on this machine",
                plan.ignored_env.join(", ")
            ))
            .await;
        }
        let started = Instant::now();
        let mut pod = LocalPod::start(&plan, &self.litellm.bin_dir, port)?;
        pod.wait_live(names::LIVENESS_PATH, LIVE_LIMIT).await?;
        self.service
            .point_to(Some(SocketAddr::from(([127, 0, 0, 1], port))));
        self.say(format!(
            "LiteLLM for {} is live after {:.1} s (pid {}, its own process group); Service {}/{} port {} -> http://{}",
            workload.label(),
            started.elapsed().as_secs_f64(),
            pod.pid(),
            workload.namespace,
            workload.name,
            workload.port,
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
        let namespace = &self.workload.namespace;
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
    async fn ask_chat(&mut self) {
        let Caller::Chat { target, .. } = &self.caller else {
            return;
        };
        let cluster_url = target.var(GATEWAY_URL_ENV).to_owned();
        let key = target.var(AGENT_KEY_ENV).to_owned();
        let model = target.model.clone();
        let local_base = format!("http://{}", self.service.addr());
        let url = format!("{local_base}/chat/completions");
        let body = json!({"model": model, "messages": [{"role": "user", "content": QUESTION}]});
        // One block, so that the other gateway's lines do not land in the middle.
        let mut report = vec![format!(
            "Agent {AGENT_NAMESPACE}/{AGENT_NAME}: POST {cluster_url}/chat/completions (here {url}) with {AGENT_KEY_ENV}={key}, model {model}"
        )];
        let failed = |reason: String| TrafficError::Request {
            url: url.clone(),
            reason,
        };
        let response = http::send("POST", &url, Some(&key), Some(&body)).await;
        // The provider logged the request before answering it: its line comes first.
        report.extend(self.drain_logs());
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
                        report.push(format!("Answer through LiteLLM {version}: {content}"));
                        report.push(format!(
                            "Repeat it:\n  curl -s {url} -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' -d '{body}'\n"
                        ));
                        Ok(())
                    }
                    None => Err(failed(
                        "the answer has no choices[0].message.content".into(),
                    )),
                }
            }
        };
        self.say(report.join("\n")).await;
        let event = match result {
            Ok(()) => TrafficEvent::Answered,
            Err(error) => TrafficEvent::Failed(error),
        };
        let _ = self.events.send(event).await;
    }

    /// The agent's MCP calls through the ToolGateway, at the URLs its routes publish;
    /// `false` (after a [`TrafficEvent::Waiting`]) while a route has published none.
    async fn ask_tools(&mut self) -> bool {
        let Caller::Tools(tools) = &self.caller else {
            return true;
        };
        let routes = tools.routes.clone();
        let text = tools.tool_text.clone();
        let mut published = Vec::new();
        for route in &routes {
            match self.published_url(route).await {
                Ok(Some(url)) => published.push(url),
                Ok(None) => {
                    let waiting = format!(
                        "ToolRoute {} has no status.url yet (the operator publishes it once {} is Ready)",
                        route.label(),
                        self.workload.label()
                    );
                    let _ = self.events.send(TrafficEvent::Waiting(waiting)).await;
                    return false;
                }
                Err(error) => {
                    let _ = self.events.send(TrafficEvent::Failed(error)).await;
                    return true;
                }
            }
        }
        // One block, so that the other gateway's lines do not land in the middle.
        let mut report = Vec::new();
        let result = self
            .call_tools(&routes, &published, &text, &mut report)
            .await;
        self.say(report.join("\n")).await;
        let event = match result {
            Ok(()) => TrafficEvent::ToolsAnswered,
            Err(error) => TrafficEvent::Failed(error),
        };
        let _ = self.events.send(event).await;
        true
    }

    /// The route's `status.url`, once it is `Ready`.
    async fn published_url(&self, route: &RouteTarget) -> Result<Option<String>, TrafficError> {
        let stored = Api::<ToolRoute>::namespaced(self.client.clone(), &route.route.namespace)
            .get_opt(&route.route.name)
            .await
            .map_err(|e| TrafficError::Api {
                what: format!("could not read ToolRoute {}", route.label()),
                reason: describe(&e),
            })?
            .ok_or_else(|| TrafficError::ToolCall {
                what: "tools/list".to_owned(),
                route: route.label(),
                reason: "the ToolRoute was deleted".to_owned(),
            })?;
        let status = stored.status.unwrap_or_default();
        let ready = find_condition(&status.conditions, "Ready").is_some_and(|c| c.status == "True");
        Ok(status.url.filter(|_| ready))
    }

    /// `tools/list` on every route (`urls`: their `status.url`), checking that no route
    /// lists a tool its filter denies, then `tools/call echo` with `text` on the first
    /// filtered route that lists it (else the first that does), and a call of each tool
    /// that route denies, which must be refused. Lines for the user go to `report`.
    async fn call_tools(
        &mut self,
        routes: &[RouteTarget],
        urls: &[String],
        text: &str,
        report: &mut Vec<String>,
    ) -> Result<(), TrafficError> {
        let service = gateway_url(&self.workload.name, &self.workload.namespace);
        let mut curls = Vec::new();
        // (route, its URL, the local URL, the echo tool's name there)
        let mut echo_route: Option<(&RouteTarget, &String, String, String)> = None;
        for (route, url) in routes.iter().zip(urls) {
            let failed = |what: &str, reason: String| TrafficError::ToolCall {
                what: what.to_owned(),
                route: route.label(),
                reason,
            };
            let local = local_url(url, &service, self.service.addr()).ok_or_else(|| {
                failed(
                    "tools/list",
                    format!(
                        "its status.url {url} is not an address of the Service of {}",
                        self.workload.label()
                    ),
                )
            })?;
            report.push(format!(
                "Agent {AGENT_NAMESPACE}/{AGENT_NAME}: MCP tools/list at {url} (status.url of ToolRoute {}, {}; here {local})",
                route.label(),
                route.filter()
            ));
            let mut client = McpClient::connect(&local, None)
                .await
                .map_err(|e| failed("initialize", e.to_string()))?;
            let tools = client
                .list_tools()
                .await
                .map_err(|e| failed("tools/list", e.to_string()))?;
            let key = local.rsplit('/').next().unwrap_or_default();
            let unprefixed = |tool: &str| -> String {
                tool.strip_prefix(key)
                    .and_then(|t| t.strip_prefix('-'))
                    .unwrap_or(tool)
                    .to_owned()
            };
            report.push(format!("  tools: {}", tools.join(", ")));
            if let Some(exposed) = tools.iter().find(|t| route.deny.contains(&unprefixed(t))) {
                return Err(failed(
                    "tools/list",
                    format!("it lists {exposed}, which its toolFilter denies"),
                ));
            }
            if !route.deny.is_empty() {
                report.push(format!(
                    "  hidden by the route's toolFilter: {}",
                    route.deny.join(", ")
                ));
            }
            curls.push(curl(&local, &mcp::request(1, "tools/list", None)));
            let filtered = !route.deny.is_empty() || !route.allow.is_empty();
            if let Some(echo) = tools.iter().find(|t| unprefixed(t) == ECHO_TOOL) {
                let better = match &echo_route {
                    None => true,
                    Some((chosen, ..)) => {
                        filtered && chosen.deny.is_empty() && chosen.allow.is_empty()
                    }
                };
                if better {
                    echo_route = Some((route, url, local, echo.clone()));
                }
            }
        }
        let Some((route, url, local, tool)) = echo_route else {
            return Err(TrafficError::ToolCall {
                what: "tools/list".to_owned(),
                route: routes
                    .iter()
                    .map(RouteTarget::label)
                    .collect::<Vec<_>>()
                    .join(", "),
                reason: format!("no route lists the {ECHO_TOOL} tool of the demo's MCP server"),
            });
        };
        let what = format!("tools/call {tool}");
        let failed = |reason: String| TrafficError::ToolCall {
            what: what.clone(),
            route: route.label(),
            reason,
        };
        let arguments = json!({ "text": text });
        report.push(format!(
            "Agent {AGENT_NAMESPACE}/{AGENT_NAME}: MCP tools/call {tool} {arguments} at {url} (here {local})"
        ));
        let mut client = McpClient::connect(&local, None)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let answer = client
            .call_tool(&tool, arguments.clone())
            .await
            .map_err(|e| failed(e.to_string()));
        // The server logged the call before answering it: its line comes first.
        report.extend(self.drain_logs());
        let answer = answer?;
        if answer.is_error {
            return Err(failed(format!(
                "the tool answered with an error: {}",
                answer.text
            )));
        }
        report.push(format!("Tool answer through LiteLLM: {}", answer.text));
        curls.push(curl(
            &local,
            &mcp::request(
                2,
                "tools/call",
                Some(json!({"name": tool, "arguments": arguments})),
            ),
        ));
        // What the filter is for: the denied tool cannot be called either, even by an
        // agent that knows its name.
        let key = local.rsplit('/').next().unwrap_or_default();
        for denied in &route.deny {
            let name = format!("{key}-{denied}");
            let arguments = json!({"confirm": true});
            let refused = match client.call_tool(&name, arguments.clone()).await {
                Ok(answer) if answer.is_error => answer.text,
                Err(mcp::McpError::Rpc { message, .. }) => message,
                Ok(_) => {
                    report.extend(self.drain_logs());
                    return Err(TrafficError::ToolCall {
                        what: format!("tools/call {name}"),
                        route: route.label(),
                        reason: format!(
                            "the route let the agent call {denied}, which its toolFilter denies"
                        ),
                    });
                }
                Err(error) => {
                    return Err(TrafficError::ToolCall {
                        what: format!("tools/call {name}"),
                        route: route.label(),
                        reason: error.to_string(),
                    });
                }
            };
            report.extend(self.drain_logs());
            report.push(format!(
                "Agent {AGENT_NAMESPACE}/{AGENT_NAME}: MCP tools/call {name} {arguments} (denied by the route's toolFilter): refused: {}",
                refused.lines().next().unwrap_or_default()
            ));
            curls.push(curl(
                &local,
                &mcp::request(
                    3,
                    "tools/call",
                    Some(json!({"name": name, "arguments": arguments})),
                ),
            ));
        }
        report.push(format!("Repeat them:\n  {}\n", curls.join("\n  ")));
        Ok(())
    }
}

/// `url`, a route's `status.url` on the gateway's Service (`service`, e.g.
/// `http://tool-gateway.mcp-demo.svc.cluster.local`, with or without the FQDN's
/// trailing dot and port 80), with that address replaced by the local Service's.
fn local_url(url: &str, service: &str, local: SocketAddr) -> Option<String> {
    let rest = url.strip_prefix(service)?;
    let rest = rest.strip_prefix('.').unwrap_or(rest);
    let rest = rest.strip_prefix(":80").unwrap_or(rest);
    rest.starts_with('/')
        .then(|| format!("http://{local}{rest}"))
}

/// The `curl` command that POSTs the MCP request `body` to `url`.
fn curl(url: &str, body: &Value) -> String {
    // Inside single quotes only a single quote needs escaping.
    let body = body.to_string().replace('\'', r"'\''");
    format!(
        "curl -s {url} -H 'Content-Type: application/json' -H 'Accept: {}' -d '{body}'",
        mcp::ACCEPT
    )
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
    use serde_json::json;

    use super::{PINNED_LITELLM_VERSION, curl, local_url};

    /// A route URL is mapped onto the local Service only when it is on the gateway's
    /// Service; its path is kept as published.
    #[test]
    fn route_urls_map_onto_the_local_service() {
        let service = "http://tool-gateway.mcp-demo.svc.cluster.local";
        let local = "127.0.0.1:4321".parse().unwrap();
        for url in [
            "http://tool-gateway.mcp-demo.svc.cluster.local/mcp/k",
            "http://tool-gateway.mcp-demo.svc.cluster.local./mcp/k",
            "http://tool-gateway.mcp-demo.svc.cluster.local:80/mcp/k",
        ] {
            assert_eq!(
                local_url(url, service, local).as_deref(),
                Some("http://127.0.0.1:4321/mcp/k"),
                "{url}"
            );
        }
        for url in [
            "http://tool-gateway.mcp-demo.svc.cluster.local.evil/mcp/k",
            "http://tool-gateway.mcp-demo.svc.cluster.local:8080/mcp/k",
            "http://other.tool-gateway.svc.cluster.local/mcp/k",
        ] {
            assert_eq!(local_url(url, service, local), None, "{url}");
        }
    }

    /// The printed curl survives a single quote in what the agent sends.
    #[test]
    fn curl_quotes_the_body_for_the_shell() {
        let command = curl("http://127.0.0.1:1/mcp/k", &json!({"text": "it's"}));
        assert!(command.ends_with(r#"-d '{"text":"it'\''s"}'"#), "{command}");
    }

    /// The `--venv` help names the default venv, which carries the pinned version.
    #[test]
    fn the_venv_help_names_the_pinned_version() {
        let help = crate::Cli::command()
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
