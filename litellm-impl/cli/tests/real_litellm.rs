//! Proof through the real LiteLLM proxy (the pinned release, `settings::LITELLM_VERSION`): configs rendered by this crate
//! load, every model is healthy, requests reach the provider's API with the Secret's key,
//! guardrails act, and the authentication modes behave as documented.
//!
//! The test bootstraps a Python venv under `target/litellm-venv` with the crate's own
//! installer (`litellm_impl_cli::local::install`; reused when present, guarded by a file lock
//! so parallel test binaries install once). If the install fails,
//! for example because PyPI is unreachable, the tests fail: CI installs it.

mod support;

use std::collections::BTreeMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aigateway_runtime::testing::eventually_within;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use litellm_impl::{
    InMemoryObjects, InputObject, ProblemReason, RenderSettings, Rendered, RenderedToolGateway,
    RouteState, names, parse_documents, render, render_tool_gateway,
    render_tool_gateway_with_policies,
};
use litellm_impl_cli::local::pod::{self, LocalPod};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// ---------------------------------------------------------------------------------------
// The venv.

fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/tmp has a parent")
        .to_path_buf()
}

/// The venv's `bin` directory, installing the pinned LiteLLM into `target/litellm-venv`
/// first if needed, with the same installer (and requirements) as `demo --with-proxy`
/// (`litellm_impl_cli::local::install`).
fn venv_bin() -> PathBuf {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        // Its own thread and runtime: callers are sync tests and tokio tests alike.
        std::thread::spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(litellm_impl_cli::local::install::ensure_venv(
                    &target_dir().join("litellm-venv"),
                    &mut |line: &str| eprintln!("{line}"),
                ))
        })
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("{e} (CI must be able to install it)"))
        .bin_dir
    })
    .clone()
}

// ---------------------------------------------------------------------------------------
// The fake upstream: OpenAI chat and moderation API, Anthropic messages API, Presidio.

#[derive(Clone, Debug)]
struct Recorded {
    path: String,
    authorization: Option<String>,
    x_api_key: Option<String>,
    body: Value,
}

#[derive(Clone, Default)]
struct Fake {
    requests: Arc<Mutex<Vec<Recorded>>>,
    exports: Arc<Mutex<Vec<TraceExport>>>,
}

/// One OTLP/HTTP trace export received: its `Authorization` header and what it holds.
#[derive(Clone, Debug)]
struct TraceExport {
    authorization: Option<String>,
    request: otlp::ExportTraceServiceRequest,
    /// The raw body, to look for text that must not be exported.
    body: Vec<u8>,
}

/// The OTLP trace messages a test reads, as opentelemetry-proto defines them
/// (`collector/trace/v1`, `trace/v1`, `resource/v1`, `common/v1`); other fields are
/// skipped when decoding.
mod otlp {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportTraceServiceRequest {
        #[prost(message, repeated, tag = "1")]
        pub resource_spans: Vec<ResourceSpans>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceSpans {
        #[prost(message, optional, tag = "1")]
        pub resource: Option<Resource>,
        #[prost(message, repeated, tag = "2")]
        pub scope_spans: Vec<ScopeSpans>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Resource {
        #[prost(message, repeated, tag = "1")]
        pub attributes: Vec<KeyValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ScopeSpans {
        #[prost(message, repeated, tag = "2")]
        pub spans: Vec<Span>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Span {
        #[prost(string, tag = "5")]
        pub name: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValue {
        #[prost(string, tag = "1")]
        pub key: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<AnyValue>,
    }

    /// `AnyValue`'s `string_value` (the first field of its `oneof`).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AnyValue {
        #[prost(string, optional, tag = "1")]
        pub string_value: Option<String>,
    }

    impl ResourceSpans {
        /// The resource's `service.name`.
        pub fn service_name(&self) -> Option<&str> {
            let attributes = &self.resource.as_ref()?.attributes;
            let service = attributes.iter().find(|a| a.key == "service.name")?;
            service.value.as_ref()?.string_value.as_deref()
        }
    }
}

/// The person name the fake Presidio recognises.
const PERSON: &str = "Jane Doe";

impl Fake {
    fn record(&self, uri: &Uri, headers: &HeaderMap, body: &Value) {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        self.requests.lock().unwrap().push(Recorded {
            path: uri.path().to_owned(),
            authorization: header("authorization"),
            x_api_key: header("x-api-key"),
            body: body.clone(),
        });
    }

    fn exports(&self) -> Vec<TraceExport> {
        self.exports.lock().unwrap().clone()
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// Requests whose body contains `marker`.
    fn with_marker(&self, marker: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.body.to_string().contains(marker))
            .collect()
    }
}

/// The model the fake provider always fails (HTTP 500), for fallbacks.
const FAILING_MODEL: &str = "always-failing";

async fn chat(
    State(fake): State<Fake>,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, axum::Json<Value>) {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    fake.record(&uri, &headers, &body);
    if body["model"] == FAILING_MODEL {
        let error = json!({"error": {"message": "the fake provider fails this model", "type": "server_error"}});
        return (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(error));
    }
    (
        StatusCode::OK,
        axum::Json(json!({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 1_700_000_000,
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "fake openai reply"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
        })),
    )
}

async fn messages(
    State(fake): State<Fake>,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> axum::Json<Value> {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    fake.record(&uri, &headers, &body);
    axum::Json(json!({
        "id": "msg_fake", "type": "message", "role": "assistant", "model": body["model"],
        "content": [{"type": "text", "text": "fake anthropic reply"}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 5, "output_tokens": 3}
    }))
}

async fn moderations(
    State(fake): State<Fake>,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> axum::Json<Value> {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    fake.record(&uri, &headers, &body);
    let categories = ["harassment", "hate", "self-harm", "sexual", "violence"];
    axum::Json(json!({
        "id": "modr-fake", "model": "omni-moderation-latest",
        "results": [{
            "flagged": false,
            "category_applied_input_types": null,
            "categories": categories.iter().map(|c| (c.to_string(), json!(false))).collect::<serde_json::Map<_, _>>(),
            "category_scores": categories.iter().map(|c| (c.to_string(), json!(0.0))).collect::<serde_json::Map<_, _>>(),
        }]
    }))
}

/// OTLP/HTTP trace export (protobuf): decoded and kept.
async fn traces(
    State(fake): State<Fake>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let Ok(request) = <otlp::ExportTraceServiceRequest as prost::Message>::decode(body.as_ref())
    else {
        return StatusCode::BAD_REQUEST;
    };
    let authorization = (headers.get("authorization"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    fake.exports.lock().unwrap().push(TraceExport {
        authorization,
        request,
        body: body.to_vec(),
    });
    StatusCode::OK
}

/// Presidio analyzer: finds [`PERSON`].
async fn analyze(
    State(fake): State<Fake>,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> axum::Json<Value> {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    fake.record(&uri, &headers, &body);
    let text = body["text"].as_str().unwrap_or_default();
    let found: Vec<Value> = text
        .match_indices(PERSON)
        .map(|(byte, _)| {
            let start = text[..byte].chars().count();
            json!({"entity_type": "PERSON", "start": start, "end": start + PERSON.chars().count(), "score": 0.95})
        })
        .collect();
    axum::Json(Value::Array(found))
}

/// Presidio anonymizer: replaces the analyzer's spans by `<ENTITY>`.
async fn anonymize(
    State(fake): State<Fake>,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> axum::Json<Value> {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    fake.record(&uri, &headers, &body);
    let text: Vec<char> = body["text"].as_str().unwrap_or_default().chars().collect();
    let mut spans: Vec<(usize, usize, String)> = body["analyzer_results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["start"].as_u64().unwrap() as usize,
                r["end"].as_u64().unwrap() as usize,
                r["entity_type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    spans.sort();
    let (mut out, mut at) = (String::new(), 0);
    for (start, end, entity) in &spans {
        out.extend(&text[at..*start]);
        out.push_str(&format!("<{entity}>"));
        at = *end;
    }
    out.extend(&text[at..]);
    axum::Json(
        json!({"text": out, "items": spans.iter().map(|(s, e, t)| json!({"start": s, "end": e, "entity_type": t, "text": format!("<{t}>"), "operator": "replace"})).collect::<Vec<_>>()}),
    )
}

async fn start_fake() -> (Fake, SocketAddr) {
    let fake = Fake::default();
    let app = Router::new()
        .route("/chat/completions", post(chat))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/messages", post(messages))
        .route("/moderations", post(moderations))
        .route("/v1/moderations", post(moderations))
        .route("/v1/traces", post(traces))
        .route("/analyze", post(analyze))
        .route("/anonymize", post(anonymize))
        .with_state(fake.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (fake, addr)
}

// ---------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client (one request per connection).

struct Response {
    status: u16,
    body: String,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): {}", self.body))
    }
}

async fn http(
    port: u16,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(token) = bearer {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no header end in {raw:?}")))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Ok(Response { status, body })
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

// ---------------------------------------------------------------------------------------
// Running LiteLLM with what the Deployment gives the container.

/// LiteLLM running the rendered Deployment's pod on this machine
/// (`litellm_impl_cli::local::pod`, as `demo --with-proxy` runs it); its process group ends
/// when dropped.
struct Proxy {
    pod: LocalPod,
    port: u16,
}

impl Proxy {
    fn log_text(&self) -> String {
        self.pod.log_text()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs the Deployment's pod with the container's env resolved from `lookup` and the
/// rendered ConfigMap as its config volume, and waits for the liveness probe.
async fn start(rendered: &Rendered, namespace: &str, lookup: &InMemoryObjects) -> Proxy {
    start_pod(
        &rendered.deployment,
        &rendered.config_map,
        namespace,
        lookup,
    )
    .await
}

/// Runs `deployment`'s pod with `config_map` as its config volume and the container's
/// env resolved from `lookup`, and waits for the liveness probe.
async fn start_pod(
    deployment: &Deployment,
    config_map: &ConfigMap,
    namespace: &str,
    lookup: &InMemoryObjects,
) -> Proxy {
    let bin = venv_bin();
    let mut objects = lookup.clone();
    objects.insert_config_map(config_map.clone());
    let template = &deployment.spec.as_ref().unwrap().template;
    let name = deployment.metadata.name.as_deref().unwrap();
    let plan = pod::plan(template, namespace, name, &objects).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.program, "litellm");
    // The port is free when picked, but another process (a parallel test's proxy) may
    // bind it before LiteLLM does: then LiteLLM exits at once, and a new port is tried.
    const ATTEMPTS: u32 = 3;
    for attempt in 1..=ATTEMPTS {
        let port = free_port();
        let mut pod = LocalPod::start(&plan, &bin, port).unwrap_or_else(|e| panic!("{e}"));
        match pod
            .wait_live(names::LIVENESS_PATH, Duration::from_secs(120))
            .await
        {
            Ok(()) => return Proxy { pod, port },
            Err(_) if attempt < ATTEMPTS && pod.log_text().contains("address already in use") => {}
            Err(error) => panic!("{error}; its log:\n{}", pod.log_text()),
        }
    }
    unreachable!("the last attempt returns or panics")
}

fn objects(yaml: &str) -> (InMemoryObjects, Vec<aigateway_api::AiGateway>) {
    let parsed = parse_documents(yaml, "test").unwrap();
    let mut lookup = InMemoryObjects::new();
    lookup.extend(&parsed);
    let gateways = parsed
        .into_iter()
        .filter_map(|o| match o {
            InputObject::AiGateway(g) => Some(g),
            _ => None,
        })
        .collect();
    (lookup, gateways)
}

async fn assert_all_healthy(proxy: &Proxy, key: Option<&str>, models: usize) {
    let response = http(proxy.port, "GET", "/health", key, None).await.unwrap();
    assert_eq!(response.status, 200, "{}", response.body);
    let health = response.json();
    assert_eq!(
        health["healthy_count"],
        json!(models),
        "GET /health: {health:#}\nlog:\n{}",
        proxy.log_text()
    );
    assert_eq!(
        health["unhealthy_count"],
        json!(0),
        "GET /health: {health:#}"
    );
}

/// A request with a key other than the master key is refused. Without a database
/// LiteLLM cannot look the key up as a virtual key and answers 400 "No connected db."
/// (401 with one); either way nothing reaches the upstream.
fn assert_refused(response: &Response) {
    let no_db = response.status == 400 && response.body.contains("no_db_connection");
    assert!(
        response.status == 401 || no_db,
        "{} {}",
        response.status,
        response.body
    );
}

async fn chat_completion(proxy: &Proxy, key: Option<&str>, model: &str, content: &str) -> Response {
    let body = json!({"model": model, "messages": [{"role": "user", "content": content}]});
    http(proxy.port, "POST", "/v1/chat/completions", key, Some(&body))
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// The cases.

/// Two providers through `api-key-secrets`, a presidio Guard and an OpenAI moderation
/// Guard from other namespaces and the gateway's, no master key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_guards_and_open_mode_work_in_real_litellm() {
    let (fake, addr) = start_fake().await;
    let yaml = format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: api-key-secrets, namespace: team}}
stringData: {{OPENAI_API_KEY: sk-openai-from-secret, ANTHROPIC_API_KEY: sk-ant-from-secret}}
---
apiVersion: v1
kind: Secret
metadata: {{name: moderation-key, namespace: team}}
stringData: {{token: sk-moderation-from-secret}}
---
apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: GuardrailProvider
metadata: {{name: presidio, namespace: providers}}
spec: {{type: presidio-api, presidio: {{baseUrl: "http://{addr}"}}}}
---
apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: Guard
metadata: {{name: pii, namespace: guards}}
spec:
  mode: [pre_call]
  providerRef: {{name: presidio, namespace: providers}}
  presidio:
    language: en
    scoreThresholds: {{ALL: "0.5"}}
    entityActions: {{PERSON: MASK}}
---
apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: GuardrailProvider
metadata: {{name: moderation, namespace: team}}
spec:
  type: openai-moderation-api
  openaiModeration: {{baseUrl: "http://{addr}/v1", apiKeySecretRef: {{name: moderation-key, key: token}}}}
---
apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: Guard
metadata: {{name: moderation, namespace: team}}
spec:
  mode: [pre_call]
  providerRef: {{name: moderation}}
  openaiModeration: {{model: omni-moderation-latest}}
---
apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: AiGateway
metadata: {{name: gw, namespace: team}}
spec:
  aiModels:
  - {{provider: openai, name: gpt-4o-mini}}
  - {{provider: anthropic, name: claude-3-5-haiku-20241022}}
  env:
  - {{name: OPENAI_API_BASE, value: "http://{addr}"}}
  - {{name: ANTHROPIC_API_BASE, value: "http://{addr}"}}
  - {{name: OTEL_EXPORTER_OTLP_PROTOCOL, value: http/json}}
  - {{name: OTEL_EXPORTER_OTLP_ENDPOINT, value: "http://{addr}"}}
  guardrails:
  - {{name: pii, namespace: guards}}
  - {{name: moderation}}
"#
    );
    let (lookup, gateways) = objects(&yaml);
    let rendered = render(&gateways[0], &lookup, &RenderSettings::default()).unwrap();
    let reasons: Vec<_> = rendered.problems.iter().map(|p| p.reason).collect();
    assert_eq!(
        reasons,
        [ProblemReason::Unauthenticated],
        "{:#?}",
        rendered.problems
    );
    assert!(
        rendered
            .config_yaml
            .contains("guardrail: openai_moderation"),
        "{}",
        rendered.config_yaml
    );

    let proxy = start(&rendered, "team", &lookup).await;
    assert_all_healthy(&proxy, None, 2).await;

    // OpenAI, with an agent's pseudo key (open mode accepts any key) and a name to mask.
    let response = chat_completion(
        &proxy,
        Some("sk-agent-pseudo-key"),
        "gpt-4o-mini",
        &format!("openai-marker: hello, I am {PERSON}"),
    )
    .await;
    assert_eq!(
        response.status,
        200,
        "{}\nlog:\n{}",
        response.body,
        proxy.log_text()
    );
    assert_eq!(
        response.json()["choices"][0]["message"]["content"],
        "fake openai reply"
    );
    let upstream: Vec<_> = fake
        .with_marker("openai-marker")
        .into_iter()
        .filter(|r| r.path.ends_with("/chat/completions"))
        .collect();
    assert_eq!(upstream.len(), 1, "{:#?}", fake.requests());
    assert_eq!(upstream[0].path, "/chat/completions");
    assert_eq!(
        upstream[0].authorization.as_deref(),
        Some("Bearer sk-openai-from-secret")
    );
    let sent = upstream[0].body["messages"].to_string();
    assert!(
        !sent.contains(PERSON) && sent.contains("<PERSON"),
        "the name must reach the upstream masked: {sent}"
    );
    let moderation: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/moderations"))
        .collect();
    assert!(
        !moderation.is_empty(),
        "the moderation guard was not called: {:#?}",
        fake.requests()
    );
    assert!(
        moderation
            .iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer sk-moderation-from-secret")),
        "{moderation:#?}"
    );

    // Anthropic, without any key at all.
    let response = chat_completion(
        &proxy,
        None,
        "claude-3-5-haiku-20241022",
        "anthropic-marker: hi",
    )
    .await;
    assert_eq!(
        response.status,
        200,
        "{}\nlog:\n{}",
        response.body,
        proxy.log_text()
    );
    let upstream = fake.with_marker("anthropic-marker");
    let upstream: Vec<_> = upstream
        .iter()
        .filter(|r| r.path == "/v1/messages")
        .collect();
    assert_eq!(upstream.len(), 1, "{:#?}", fake.requests());
    assert_eq!(upstream[0].x_api_key.as_deref(), Some("sk-ant-from-secret"));
}

/// The upstream "patched" sample: the config patch adds router and litellm settings and a
/// master key, so requests without it are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_patch_and_master_key_from_the_patch_work_in_real_litellm() {
    let (fake, addr) = start_fake().await;
    let yaml = format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: api-key-secrets, namespace: patched}}
stringData: {{OPENAI_API_KEY: sk-openai-patched}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: ai-gateway-patch, namespace: patched}}
data:
  patch.yaml: |
    router_settings:
      routing_strategy: usage-based-routing-v2
    litellm_settings:
      drop_params: true
    general_settings:
      master_key: sk-sample-1234
---
apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: AiGateway
metadata:
  name: ai-gateway
  namespace: patched
  annotations: {{ai-gateway-litellm.agentic-layer.ai/config-patch: ai-gateway-patch}}
spec:
  aiModels: [{{provider: openai, name: gpt-3.5-turbo}}]
  env: [{{name: OPENAI_API_BASE, value: "http://{addr}/v1"}}]
"#
    );
    let (lookup, gateways) = objects(&yaml);
    let rendered = render(&gateways[0], &lookup, &RenderSettings::default()).unwrap();
    // Authenticated through the patch; only the otel callback without an exporter (the
    // sample sets none) and the plain-text master key are reported.
    let messages: Vec<_> = rendered
        .problems
        .iter()
        .map(|p| (p.reason, p.message.as_str()))
        .collect();
    assert!(
        matches!(
            messages.as_slice(),
            [(ProblemReason::SuspiciousConfig, otel), (ProblemReason::SuspiciousConfig, key)]
                if otel.contains("otel") && key.contains("master_key")
        ),
        "{messages:#?}"
    );
    assert!(
        rendered
            .config_yaml
            .contains("routing_strategy: usage-based-routing-v2")
    );

    let proxy = start(&rendered, "patched", &lookup).await;
    assert_all_healthy(&proxy, Some("sk-sample-1234"), 1).await;
    let response = chat_completion(&proxy, None, "gpt-3.5-turbo", "refused-marker").await;
    assert_eq!(response.status, 401, "{}", response.body);
    let response =
        chat_completion(&proxy, Some("sk-wrong"), "gpt-3.5-turbo", "refused-marker").await;
    assert_refused(&response);
    assert!(
        fake.with_marker("refused-marker").is_empty(),
        "{:#?}",
        fake.requests()
    );
    let response = chat_completion(
        &proxy,
        Some("sk-sample-1234"),
        "gpt-3.5-turbo",
        "patched-marker",
    )
    .await;
    assert_eq!(
        response.status,
        200,
        "{}\nlog:\n{}",
        response.body,
        proxy.log_text()
    );
    let upstream = fake.with_marker("patched-marker");
    assert_eq!(upstream.len(), 1, "{:#?}", fake.requests());
    assert_eq!(upstream[0].path, "/v1/chat/completions");
    assert_eq!(
        upstream[0].authorization.as_deref(),
        Some("Bearer sk-openai-patched")
    );
}

/// The master key from a Secret through spec.env; a Bedrock Guard whose AWS credentials
/// come from a Secret loads (it is not called: that needs AWS); the user's own
/// OPENAI_API_KEY overrides the generated one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_key_from_env_and_bedrock_guard_work_in_real_litellm() {
    let (fake, addr) = start_fake().await;
    let yaml = format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: gateway-secrets, namespace: secure}}
stringData: {{master: sk-master-from-secret, openai: sk-openai-user}}
---
apiVersion: v1
kind: Secret
metadata: {{name: aws, namespace: secure}}
stringData: {{AWS_ACCESS_KEY_ID: AKIAFAKE, AWS_SECRET_ACCESS_KEY: fake-secret}}
---
apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: GuardrailProvider
metadata: {{name: bedrock, namespace: secure}}
spec: {{type: bedrock-api, bedrock: {{region: eu-central-1, credentialsSecretRef: {{name: aws}}}}}}
---
apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: Guard
metadata: {{name: bedrock-guard, namespace: secure}}
spec:
  mode: [during_call]
  providerRef: {{name: bedrock}}
  bedrock: {{guardrailId: gr-123, guardrailVersion: DRAFT}}
---
apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: AiGateway
metadata: {{name: secure, namespace: secure}}
spec:
  port: 4000
  aiModels: [{{provider: openai, name: gpt-4o}}]
  env:
  - {{name: OPENAI_API_BASE, value: "http://{addr}"}}
  - {{name: OTEL_EXPORTER, value: console}}
  - name: LITELLM_MASTER_KEY
    valueFrom: {{secretKeyRef: {{name: gateway-secrets, key: master}}}}
  - name: OPENAI_API_KEY
    valueFrom: {{secretKeyRef: {{name: gateway-secrets, key: openai}}}}
  guardrails: [{{name: bedrock-guard}}]
"#
    );
    let (lookup, gateways) = objects(&yaml);
    let rendered = render(&gateways[0], &lookup, &RenderSettings::default()).unwrap();
    assert_eq!(
        rendered.problems,
        [],
        "authenticated, every reference resolved"
    );
    assert!(
        rendered.config_yaml.contains("guardrail: bedrock"),
        "{}",
        rendered.config_yaml
    );

    let proxy = start(&rendered, "secure", &lookup).await;
    assert_all_healthy(&proxy, Some("sk-master-from-secret"), 1).await;
    let response = chat_completion(
        &proxy,
        Some("sk-agent-pseudo-key"),
        "gpt-4o",
        "refused-marker",
    )
    .await;
    assert_refused(&response);
    let response = chat_completion(&proxy, None, "gpt-4o", "refused-marker").await;
    assert_eq!(response.status, 401, "{}", response.body);
    let health_checks: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path == "/chat/completions")
        .collect();
    assert!(!health_checks.is_empty(), "{:#?}", fake.requests());
    assert!(
        health_checks
            .iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer sk-openai-user")),
        "the user's OPENAI_API_KEY must win over api-key-secrets: {health_checks:#?}"
    );
    assert!(fake.with_marker("refused-marker").is_empty());
}

/// `src/known_keys.txt` lists what the pinned LiteLLM knows; `UPDATE_GOLDEN=1` rewrites
/// it from the script's output (the only refresh that needs Python).
#[test]
fn known_keys_match_the_pinned_litellm() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/known_keys.py");
    let output = Command::new(venv_bin().join("python"))
        .arg(&script)
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .output()
        .expect("run scripts/known_keys.py");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let actual = String::from_utf8(output.stdout).unwrap();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let header: String = litellm_impl::known_keys::DATA
            .lines()
            .take_while(|l| l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../src/known_keys.txt");
        std::fs::write(&path, format!("{header}{actual}")).unwrap();
        return;
    }
    assert!(
        actual == litellm_impl::known_keys::as_script_output(),
        "src/known_keys.txt is stale for the pinned LiteLLM: refresh it with `UPDATE_GOLDEN=1 cargo test -p litellm-impl-cli --test real_litellm known_keys` and review the diff"
    );
}

/// Strings YAML could misread if written unquoted (YAML 1.1 booleans such as `on`, `no`
/// and `y` matter here: LiteLLM reads its config with PyYAML, a YAML 1.1 parser).
static HOSTILE: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
    serde_json::from_str(include_str!("../../tests/fixtures/hostile-strings.json"))
        .expect("the hostile-strings fixture is a JSON list of strings")
});

/// The config rendered for hostile names, providers and guard fields reads back in
/// LiteLLM's own YAML parser (PyYAML `safe_load`, as the proxy) to exactly the values given.
#[test]
fn hostile_strings_read_back_the_same_in_litellms_yaml_parser() {
    let models: Vec<Value> = HOSTILE
        .iter()
        .map(|h| json!({"name": h, "provider": h}))
        .collect();
    let guards: Vec<Value> = HOSTILE.iter().map(|h| json!({"name": h})).collect();
    let mut gateway: aigateway_api::AiGateway = serde_json::from_value(json!({
        "apiVersion": "runtime.agentic-layer.ai/v1alpha1", "kind": "AiGateway",
        "metadata": {"name": "gw", "namespace": "ns"},
        "spec": {"aiModels": models, "guardrails": guards}
    }))
    .unwrap();
    gateway.metadata.namespace = Some("ns".into());
    let mut lookup = InMemoryObjects::new();
    lookup.insert_guardrail_provider(
        serde_json::from_value(json!({
            "apiVersion": "runtime.agentic-layer.ai/v1alpha1", "kind": "GuardrailProvider",
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"type": "presidio-api", "presidio": {"baseUrl": "http://x/?a=b&c: d #e"}}
        }))
        .unwrap(),
    );
    for h in HOSTILE.iter() {
        lookup.insert_guard(serde_json::from_value(json!({
            "apiVersion": "runtime.agentic-layer.ai/v1alpha1", "kind": "Guard",
            "metadata": {"name": h, "namespace": "ns"},
            "spec": {"mode": ["pre_call"], "providerRef": {"name": "p"},
                     "presidio": {"language": h, "scoreThresholds": {h.as_str(): "0.5"}, "entityActions": {h.as_str(): "MASK"}}}
        }))
        .unwrap());
    }
    let rendered = render(&gateway, &lookup, &RenderSettings::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, &rendered.config_yaml).unwrap();
    let output = Command::new(venv_bin().join("python"))
        .args(["-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1], encoding='utf-8'))))"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let parsed: Value = serde_json::from_slice(&output.stdout).unwrap();
    let models = parsed["model_list"].as_array().unwrap();
    assert_eq!(models.len(), HOSTILE.len());
    for (entry, h) in models.iter().zip(HOSTILE.iter()) {
        assert_eq!(entry["model_name"], json!(h), "{}", rendered.config_yaml);
        assert_eq!(entry["litellm_params"]["model"], json!(format!("{h}/{h}")));
    }
    let guardrails = parsed["guardrails"].as_array().unwrap();
    assert_eq!(guardrails.len(), HOSTILE.len());
    for (guard, h) in guardrails.iter().zip(HOSTILE.iter()) {
        assert_eq!(
            guard["guardrail_name"],
            json!(h),
            "{}",
            rendered.config_yaml
        );
        assert_eq!(guard["litellm_params"]["presidio_language"], json!(h));
        assert_eq!(
            guard["litellm_params"]["pii_entities_config"],
            json!({h.as_str(): "MASK"})
        );
        assert_eq!(
            guard["litellm_params"]["presidio_score_thresholds"],
            json!({h.as_str(): 0.5})
        );
        assert_eq!(
            guard["litellm_params"]["presidio_analyzer_api_base"],
            json!("http://x/?a=b&c: d #e")
        );
        assert_eq!(guard["litellm_params"]["default_on"], json!(true));
    }
}

// ---------------------------------------------------------------------------------------
// MCP tools through a ToolGateway: a real MCP server (the `mcp` SDK, installed with
// LiteLLM's proxy extra), the real proxy with the rendered config and env, the SDK's
// client at the route's URL path.

/// A Python process of the venv in its own process group, ended with its group on drop.
struct PythonProcess {
    child: Child,
    log: PathBuf,
}

impl PythonProcess {
    fn spawn(script: &Path, args: &[String], dir: &Path, name: &str) -> Self {
        Self::spawn_with_env(script, args, &[], dir, name)
    }

    fn spawn_with_env(
        script: &Path,
        args: &[String],
        env: &[(&str, &str)],
        dir: &Path,
        name: &str,
    ) -> Self {
        let log = dir.join(format!("{name}.log"));
        let log_file = File::create(&log).unwrap();
        let mut command = Command::new(venv_bin().join("python"));
        command
            .arg(script)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file);
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().expect("start python");
        Self { child, log }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for PythonProcess {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--"])
            .arg(format!("-{}", self.child.id()))
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mcp_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mcp")
        .join(name)
}

/// The MCP server of `tests/fixtures/mcp/server.py` with the tool set `tools` on a free
/// port, once it accepts connections.
async fn start_mcp_server(dir: &Path, tools: &str) -> (PythonProcess, u16, PathBuf) {
    start_mcp_server_with_env(dir, tools, &[]).await
}

/// [`start_mcp_server`] with environment variables (see the fixture's
/// `MCP_ACCEPTED_AUTHORIZATION` and `MCP_HEADER_LOG`).
async fn start_mcp_server_with_env(
    dir: &Path,
    tools: &str,
    env: &[(&str, &str)],
) -> (PythonProcess, u16, PathBuf) {
    let port = free_port();
    let calls = dir.join("calls.log");
    let server = PythonProcess::spawn_with_env(
        &mcp_fixture("server.py"),
        &[
            port.to_string(),
            calls.display().to_string(),
            tools.to_owned(),
        ],
        env,
        dir,
        "mcp-server",
    );
    wait_listening(&server, port, "the MCP server").await;
    (server, port, calls)
}

/// Waits up to 60 s for `process` to accept connections on `port`.
async fn wait_listening(process: &PythonProcess, port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen within 60 s; its log:\n{}",
            process.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs `tests/fixtures/mcp/client.py` (the SDK's client) against `url` with `key`,
/// calling `calls` after listing the tools; its JSON answer.
async fn mcp_client(url: &str, key: &str, calls: &[Value]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("calls.jsonl");
    let lines: String = calls.iter().map(|c| format!("{c}\n")).collect();
    std::fs::write(&input, lines).unwrap();
    let output = dir.path().join("client.out");
    let mut command = Command::new(venv_bin().join("python"));
    command
        .arg(mcp_fixture("client.py"))
        .args([url, key])
        .stdin(File::open(&input).unwrap())
        .stdout(File::create(&output).unwrap())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut client = PythonProcess {
        child: command.spawn().expect("start the MCP client"),
        log: output.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(status) = client.child.try_wait().unwrap() {
            assert!(
                status.success(),
                "the MCP client failed: {}",
                client.log_text()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the MCP client did not finish within 90 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = client.log_text();
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("the MCP client printed no JSON ({e}): {text}"))
}

/// The objects as a lookup, and the first ToolGateway among them rendered with the
/// routes among them.
fn render_first_tool_gateway(parsed: Vec<InputObject>) -> (InMemoryObjects, RenderedToolGateway) {
    let mut lookup = InMemoryObjects::new();
    lookup.extend(&parsed);
    let (mut gateways, mut routes) = (Vec::new(), Vec::new());
    for object in parsed {
        match object {
            InputObject::ToolGateway(g) => gateways.push(g),
            InputObject::ToolRoute(r) => routes.push(r),
            _ => {}
        }
    }
    let rendered =
        render_tool_gateway(&gateways[0], &routes, &lookup, &RenderSettings::default()).unwrap();
    (lookup, rendered)
}

fn tool_calls(calls: &Path) -> Vec<String> {
    std::fs::read_to_string(calls)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A ToolGateway with a master key from a Secret and two external routes to one real
/// MCP server: one denies `delete_everything`, one allows only `echo`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_tools_through_a_tool_gateway_route_in_real_litellm() {
    let dir = tempfile::tempdir().unwrap();
    let (mcp_server, mcp_port, calls) = start_mcp_server(dir.path(), "echo").await;
    let yaml = format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: gateway-secrets, namespace: agents}}
stringData: {{master: sk-tools-master}}
---
apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: ToolGateway
metadata: {{name: tools, namespace: agents}}
spec:
  env:
  - name: LITELLM_MASTER_KEY
    valueFrom: {{secretKeyRef: {{name: gateway-secrets, key: master}}}}
  - {{name: OTEL_EXPORTER, value: console}}
---
apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: ToolRoute
metadata: {{name: echo-route, namespace: team-tools}}
spec:
  toolGatewayRef: {{name: tools, namespace: agents}}
  upstream: {{external: {{url: "http://127.0.0.1:{mcp_port}/mcp"}}}}
  toolFilter: {{deny: [delete_everything]}}
---
apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: ToolRoute
metadata: {{name: echo-only, namespace: team-tools}}
spec:
  toolGatewayRef: {{name: tools, namespace: agents}}
  upstream: {{external: {{url: "http://127.0.0.1:{mcp_port}/mcp"}}}}
  toolFilter: {{allow: [echo]}}
"#
    );
    let parsed = parse_documents(&yaml, "test").unwrap();
    let (lookup, rendered) = render_first_tool_gateway(parsed);
    assert_eq!(
        rendered.rendered.problems,
        [],
        "authenticated, nothing unresolved"
    );
    let paths: BTreeMap<String, String> = rendered
        .routes
        .iter()
        .map(|outcome| match &outcome.state {
            RouteState::Served(served) => (
                outcome.route.name.clone(),
                served
                    .url
                    .strip_prefix(&rendered.url)
                    .expect("a route URL starts with the gateway's")
                    .to_owned(),
            ),
            other => panic!("{} not served: {other:?}", outcome.route.name),
        })
        .collect();
    assert_eq!(paths["echo-route"], "/mcp/team_tools__echo_route");

    let proxy = start(&rendered.rendered, "agents", &lookup).await;
    let url = |route: &str| format!("http://127.0.0.1:{}{}", proxy.port, paths[route]);
    let echo = json!({"name": "echo", "arguments": {"text": "hello through the gateway"}});
    let delete = json!({"name": "delete_everything", "arguments": {"confirm": true}});
    let prefixed_delete = json!({
        "name": "team_tools__echo_route-delete_everything",
        "arguments": {"confirm": true}
    });

    // The SDK lists and calls through the route; the denied tool is hidden and refused.
    let answer = mcp_client(
        &url("echo-route"),
        "sk-tools-master",
        &[echo.clone(), delete, prefixed_delete],
    )
    .await;
    assert_eq!(
        answer["tools"],
        json!(["team_tools__echo_route-echo"]),
        "{answer:#}\nproxy log:\n{}",
        proxy.log_text()
    );
    assert_eq!(answer["calls"][0]["is_error"], json!(false), "{answer:#}");
    assert_eq!(
        answer["calls"][0]["text"],
        json!("echo: hello through the gateway")
    );
    for denied in &answer["calls"].as_array().unwrap()[1..] {
        let refused = denied["is_error"] == json!(true) || denied.get("mcp_error").is_some();
        assert!(refused, "a denied tool must fail: {answer:#}");
    }
    assert_eq!(
        tool_calls(&calls),
        ["echo"],
        "only the allowed call reaches the MCP server"
    );

    // An allow list exposes only what it names.
    let answer = mcp_client(&url("echo-only"), "sk-tools-master", &[echo]).await;
    assert_eq!(
        answer["tools"],
        json!(["team_tools__echo_only-echo"]),
        "{answer:#}"
    );
    assert_eq!(tool_calls(&calls), ["echo", "echo"]);

    // A wrong key, or none, is refused before anything reaches the MCP server.
    let answer = mcp_client(&url("echo-route"), "sk-agent-guess", &[]).await;
    assert!(answer.get("error").is_some(), "{answer:#}");
    for key in [Some("sk-agent-guess"), None] {
        let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"}}});
        let response = http(
            proxy.port,
            "POST",
            &paths["echo-route"],
            key,
            Some(&initialize),
        )
        .await
        .unwrap();
        // Without a database LiteLLM cannot look a non-master key up as a virtual key
        // and answers 400 "No connected db." (401 with one, or without a key).
        let no_db = response.status == 400 && response.body.contains("No connected db");
        assert!(
            response.status == 401 || no_db,
            "{key:?}: {} {}",
            response.status,
            response.body
        );
    }
    assert_eq!(tool_calls(&calls), ["echo", "echo"]);
    drop(proxy);
    drop(mcp_server);
}

/// LiteLLMToolRoutePolicies against a real MCP server that answers 401 unless it gets
/// the right `Authorization`: a header from the route's Secret (in the route's
/// namespace, copied into the gateway's Secret), an OAuth2 client-credentials grant
/// whose token LiteLLM fetches from a real token endpoint, and a policy whose Secret is
/// missing, which leaves its route without a credential while LiteLLM still starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_route_policies_authenticate_to_the_upstream_in_real_litellm() {
    const HEADER: &str = "Bearer s3cret-header-value";
    const CLIENT_SECRET: &str = "c1ient-s3cret-value";
    const MINTED: &str = "m2m-minted-token";
    let dir = tempfile::tempdir().unwrap();
    let header_log = dir.path().join("headers.log");
    let accepted = format!("{HEADER}|Bearer {MINTED}");
    let (mcp_server, mcp_port, calls) = start_mcp_server_with_env(
        dir.path(),
        "echo",
        &[
            ("MCP_ACCEPTED_AUTHORIZATION", &accepted),
            ("MCP_HEADER_LOG", &header_log.display().to_string()),
        ],
    )
    .await;
    let token_port = free_port();
    let token_log = dir.path().join("token-requests.log");
    let token_server = PythonProcess::spawn(
        &mcp_fixture("token_server.py"),
        &[
            token_port.to_string(),
            token_log.display().to_string(),
            "tools-gateway".to_owned(),
            CLIENT_SECRET.to_owned(),
            MINTED.to_owned(),
        ],
        dir.path(),
        "token-server",
    );
    wait_listening(&token_server, token_port, "the token endpoint").await;

    let route = |name: &str| {
        format!(
            "---\napiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: ToolRoute\nmetadata: {{name: {name}, namespace: team-tools}}\nspec:\n  toolGatewayRef: {{name: tools, namespace: agents}}\n  upstream: {{external: {{url: \"http://127.0.0.1:{mcp_port}/mcp\"}}}}\n  toolFilter: {{allow: [echo]}}\n"
        )
    };
    let policy = |name: &str, route: &str, rest: &str| {
        format!(
            "---\napiVersion: litellm.aigateway.agentic-layer.ai/v1alpha1\nkind: LiteLLMToolRoutePolicy\nmetadata: {{name: {name}, namespace: team-tools}}\nspec:\n  targetRefs: [{{group: runtime.agentic-layer.ai, kind: ToolRoute, name: {route}}}]\n{rest}"
        )
    };
    let yaml = format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: gateway-secrets, namespace: agents}}
stringData: {{master: sk-tools-master}}
---
apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: ToolGateway
metadata: {{name: tools, namespace: agents}}
spec:
  env:
  - name: LITELLM_MASTER_KEY
    valueFrom: {{secretKeyRef: {{name: gateway-secrets, key: master}}}}
  - {{name: OTEL_EXPORTER, value: console}}
---
apiVersion: v1
kind: Secret
metadata: {{name: upstream, namespace: team-tools}}
stringData: {{authorization: "{HEADER}", client-secret: "{CLIENT_SECRET}"}}
{}{}{}{}{}{}"#,
        route("with-header"),
        route("with-m2m"),
        route("without"),
        policy(
            "header-auth",
            "with-header",
            "  timeoutSeconds: 45\n  upstreamAuth: {header: {secretName: upstream, key: authorization}}\n"
        ),
        policy(
            "m2m",
            "with-m2m",
            &format!(
                "  upstreamAuth:\n    oauth2ClientCredentials:\n      tokenUrl: http://127.0.0.1:{token_port}/token\n      clientId: tools-gateway\n      clientSecret: {{secretName: upstream, key: client-secret}}\n      scopes: [tools.call]\n"
            )
        ),
        policy(
            "missing",
            "without",
            "  upstreamAuth: {header: {secretName: not-there, key: token}}\n"
        ),
    );
    let parsed = parse_documents(&yaml, "test").unwrap();
    let mut lookup = InMemoryObjects::new();
    lookup.extend(&parsed);
    let (mut gateways, mut routes, mut policies) = (Vec::new(), Vec::new(), Vec::new());
    for object in parsed {
        match object {
            InputObject::ToolGateway(g) => gateways.push(g),
            InputObject::ToolRoute(r) => routes.push(r),
            InputObject::ToolRoutePolicy(p) => policies.push(p),
            _ => {}
        }
    }
    let rendered = render_tool_gateway_with_policies(
        &gateways[0],
        &routes,
        &policies,
        &lookup,
        &RenderSettings::default(),
    )
    .unwrap();
    let verdicts: BTreeMap<&str, String> = (rendered.policies.iter())
        .map(|o| (o.route.name.as_str(), format!("{:?}", o.verdict)))
        .collect();
    assert_eq!(verdicts["with-header"], "Applied");
    assert_eq!(verdicts["with-m2m"], "Applied");
    assert!(
        verdicts["without"].contains("Secret team-tools/not-there not found"),
        "{verdicts:?}"
    );
    let config = &rendered.rendered.config_yaml;
    assert!(
        !config.contains("s3cret") && !config.contains(MINTED),
        "no credential in the ConfigMap:\n{config}"
    );
    let entries: Value = serde_saphyr::from_str(config).unwrap();
    assert_eq!(
        entries["mcp_servers"]["team_tools__with_header"]["timeout"],
        json!(45.0)
    );
    assert!(entries["mcp_servers"]["team_tools__without"]["static_headers"].is_null());
    let copies = rendered.credentials.as_ref().expect("a Secret of copies");
    assert_eq!(copies.keys().len(), 2, "{copies:?}");
    // The pod reads the copies from the gateway's namespace, as the operator makes them.
    lookup.insert_secret(copies.secret().clone());
    let paths: BTreeMap<String, String> = (rendered.routes.iter())
        .map(|outcome| match &outcome.state {
            RouteState::Served(served) => (
                outcome.route.name.clone(),
                served.url.strip_prefix(&rendered.url).unwrap().to_owned(),
            ),
            other => panic!("{} not served: {other:?}", outcome.route.name),
        })
        .collect();

    let proxy = start(&rendered.rendered, "agents", &lookup).await;
    let url = |route: &str| format!("http://127.0.0.1:{}{}", proxy.port, paths[route]);
    let echo = json!({"name": "echo", "arguments": {"text": "authenticated"}});
    let seen = || std::fs::read_to_string(&header_log).unwrap_or_default();

    // A header from the route's Secret.
    let answer = mcp_client(
        &url("with-header"),
        "sk-tools-master",
        std::slice::from_ref(&echo),
    )
    .await;
    assert_eq!(
        answer["tools"],
        json!(["team_tools__with_header-echo"]),
        "{answer:#}\nproxy log:\n{}\nupstream saw:\n{}",
        proxy.log_text(),
        seen()
    );
    assert_eq!(
        answer["calls"][0]["text"],
        json!("echo: authenticated"),
        "{answer:#}"
    );
    assert!(seen().lines().any(|l| l == HEADER), "{}", seen());

    // A token LiteLLM fetched with the client's secret.
    let answer = mcp_client(
        &url("with-m2m"),
        "sk-tools-master",
        std::slice::from_ref(&echo),
    )
    .await;
    assert_eq!(
        answer["tools"],
        json!(["team_tools__with_m2m-echo"]),
        "{answer:#}\nproxy log:\n{}\nupstream saw:\n{}\ntoken endpoint saw:\n{}",
        proxy.log_text(),
        seen(),
        std::fs::read_to_string(&token_log).unwrap_or_default()
    );
    assert_eq!(
        answer["calls"][0]["text"],
        json!("echo: authenticated"),
        "{answer:#}"
    );
    assert!(
        seen().lines().any(|l| l == format!("Bearer {MINTED}")),
        "{}",
        seen()
    );
    let token_requests = std::fs::read_to_string(&token_log).unwrap();
    let first: Value = serde_json::from_str(token_requests.lines().next().unwrap()).unwrap();
    assert_eq!(first["grant_type"], "client_credentials");
    assert_eq!(first["client_id"], "tools-gateway");
    assert_eq!(first["client_secret"], CLIENT_SECRET);
    assert_eq!(first["scope"], "tools.call");

    // Without its credential the route's upstream refuses the gateway: nothing reaches
    // the tool, and the gateway serves the other routes all along.
    let answer = mcp_client(&url("without"), "sk-tools-master", &[echo]).await;
    let succeeded = answer["calls"]
        .as_array()
        .is_some_and(|calls| calls.iter().any(|c| c["is_error"] == json!(false)));
    assert!(!succeeded, "{answer:#}");
    assert!(
        seen().lines().any(str::is_empty),
        "the upstream saw requests without Authorization: {}",
        seen()
    );
    assert_eq!(tool_calls(&calls), ["echo", "echo"]);
    drop(proxy);
    drop(token_server);
    drop(mcp_server);
}

/// agent-runtime-operator's ToolRoute sample (`allow: [get_*, list_*]`, `deny:
/// [*delete*]`), its ToolServer publishing the URL of a real MCP server with the tools
/// get_weather, list_items, delete_item and get_delete_log: through the real proxy an
/// agent sees and calls exactly get_weather and list_items, and the others are refused
/// by name without reaching the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tool_route_samples_glob_filter_is_enforced_by_real_litellm() {
    let dir = tempfile::tempdir().unwrap();
    let (mcp_server, mcp_port, calls) = start_mcp_server(dir.path(), "sample").await;
    let sample = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../aigateway-api/tests/fixtures/samples/agent-runtime-toolroute.yaml"
    ))
    .unwrap();
    let mut parsed = parse_documents(&sample, "agent-runtime-toolroute.yaml").unwrap();
    // The URL agent-runtime-operator would publish for the ToolServer's Deployment.
    for object in &mut parsed {
        if let InputObject::ToolServer(server) = object {
            server.status = Some(aigateway_api::ToolServerStatus {
                url: Some(format!("http://127.0.0.1:{mcp_port}/mcp")),
                ..Default::default()
            });
        }
    }
    parsed.extend(
        parse_documents(
            r#"
apiVersion: v1
kind: Secret
metadata: {name: gateway-secrets, namespace: test-tool-servers}
stringData: {master: sk-sample-master}
---
apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: ToolGateway
metadata: {name: example-toolgateway, namespace: test-tool-servers}
spec:
  env:
  - name: LITELLM_MASTER_KEY
    valueFrom: {secretKeyRef: {name: gateway-secrets, key: master}}
  - {name: OTEL_EXPORTER, value: console}
"#,
            "test",
        )
        .unwrap(),
    );
    let (lookup, rendered) = render_first_tool_gateway(parsed);
    assert_eq!(rendered.rendered.problems, []);
    let path = match &rendered.routes[0].state {
        RouteState::Served(served) => served.url.strip_prefix(&rendered.url).unwrap().to_owned(),
        other => panic!("the sample route is not served: {other:?}"),
    };
    assert_eq!(path, "/mcp/test_tool_servers__example_toolroute");

    let proxy = start(&rendered.rendered, "test-tool-servers", &lookup).await;
    let url = format!("http://127.0.0.1:{}{path}", proxy.port);
    let prefixed = |tool: &str| format!("test_tool_servers__example_toolroute-{tool}");
    let answer = mcp_client(
        &url,
        "sk-sample-master",
        &[
            json!({"name": "get_weather", "arguments": {"city": "Lisbon"}}),
            json!({"name": prefixed("list_items"), "arguments": {}}),
            json!({"name": "delete_item", "arguments": {"name": "apple"}}),
            json!({"name": prefixed("delete_item"), "arguments": {"name": "pear"}}),
            json!({"name": "get_delete_log", "arguments": {}}),
        ],
    )
    .await;
    assert_eq!(
        answer["tools"],
        json!([prefixed("get_weather"), prefixed("list_items")]),
        "{answer:#}\nproxy log:\n{}",
        proxy.log_text()
    );
    let calls_made = answer["calls"].as_array().unwrap();
    assert_eq!(
        calls_made[0]["text"],
        json!("sunny in Lisbon"),
        "{answer:#}"
    );
    assert_eq!(calls_made[1]["text"], json!("apple, pear"), "{answer:#}");
    for (call, tool, why) in [
        (
            &calls_made[2],
            "delete_item",
            "matches none of spec.toolFilter.allow",
        ),
        (
            &calls_made[3],
            "delete_item",
            "matches none of spec.toolFilter.allow",
        ),
        (
            &calls_made[4],
            "get_delete_log",
            "matches spec.toolFilter.deny pattern *delete*",
        ),
    ] {
        assert_eq!(call["is_error"], json!(true), "{answer:#}");
        let text = call["text"].as_str().unwrap_or_default();
        assert!(
            text.contains(&format!(
                "tool {tool} is not exposed by ToolRoute test-tool-servers/example-toolroute"
            )) && text.contains(why),
            "{answer:#}"
        );
    }
    assert_eq!(
        tool_calls(&calls),
        ["get_weather", "list_items"],
        "only the allowed calls reach the MCP server"
    );
    drop(proxy);
    drop(mcp_server);
}

/// The guardrail module's pattern matching, in the pinned LiteLLM's Python: `*` any run
/// (none too), `?` exactly one character, everything else literal, whole names only,
/// deny wins, and no pattern makes it slow.
#[test]
fn the_tool_filter_module_matches_patterns_as_the_api_defines_them() {
    let program = r#"
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("aigateway_tool_filter", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
sample = module.RouteFilter("ns/r", ["get_*", "list_*", "search.v?"], ["*delete*"])
names = ["get_weather", "get_", "list_items", "delete_item", "get_delete_log", "forget_x",
         "search.v2", "searchXv2", "search.v10", "xget_weather", "GET_weather"]
print(json.dumps({name: sample.refusal(name) is None for name in names}))
deny_only = module.RouteFilter("ns/r", [], ["drop"])
print(json.dumps([deny_only.refusal("drop") is None, deny_only.refusal("dropped") is None]))
# Patterns come from route authors: one that makes a backtracking regex take exponential
# time is answered at once.
hostile = "*a" * 40 + "*b"
print(json.dumps([module.matches(hostile, "a" * 128), module.matches(hostile, "a" * 127 + "b"),
                  module.matches("*", ""), module.matches("?", ""), module.matches("a*?", "ab")]))
# Characters a regular expression would read (the module's matcher compiles one) are
# literal, and it agrees with a plain matcher of the API's rules on random cases.
print(json.dumps([module.matches("a+b(c)|d$", "a+b(c)|d$"), module.matches("a+b", "aab"),
                  module.matches("x.y", "xzy"), module.matches("a\\b", "a\\b")]))
def reference(p, n):
    if not p:
        return not n
    if p[0] == "*":
        return any(reference(p[1:], n[i:]) for i in range(len(n) + 1))
    return bool(n) and (p[0] == "?" or p[0] == n[0]) and reference(p[1:], n[1:])
import random
random.seed(7)
disagree = []
for _ in range(5000):
    p = "".join(random.choice("ab*?.") for _ in range(random.randint(0, 7)))
    n = "".join(random.choice("ab.") for _ in range(random.randint(0, 7)))
    if module.matches(p, n) != reference(p, n):
        disagree.append([p, n])
print(json.dumps(disagree[:5]))
"#;
    let module = dir_with_module();
    let output = Command::new(venv_bin().join("python"))
        .args(["-c", program])
        .arg(module.path().join(litellm_impl::tool_filter::MODULE_FILE))
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let mut lines = stdout.lines();
    let exposed: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(
        exposed,
        json!({
            "get_weather": true, "get_": true, "list_items": true, "delete_item": false,
            "get_delete_log": false, "forget_x": false, "search.v2": true,
            "searchXv2": false, "search.v10": false, "xget_weather": false,
            "GET_weather": false
        })
    );
    let deny_only: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(deny_only, json!([false, true]));
    let edges: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(edges, json!([false, true, true, false, true]));
    let literal: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(literal, json!([true, false, false, true]));
    let disagree: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(
        disagree,
        json!([]),
        "the module and the API's rules disagree"
    );
}

fn dir_with_module() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(litellm_impl::tool_filter::MODULE_FILE),
        litellm_impl::tool_filter::MODULE_SOURCE,
    )
    .unwrap();
    dir
}

/// The ConfigMap and Deployment the operator applied for gateway `namespace/name`.
async fn applied(
    running: &support::Running,
    namespace: &str,
    name: &str,
) -> (ConfigMap, Deployment) {
    let client = running.server.client();
    let config_map = Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .get(&format!("{name}-config"))
        .await
        .unwrap();
    let deployment = Api::<Deployment>::namespaced(client, namespace)
        .get(name)
        .await
        .unwrap();
    (config_map, deployment)
}

/// Issue 20, attack 1 through the real proxy: a tenant's ToolRoute naming another
/// tenant's ToolGateway (which did not consent) must never put its MCP server's tools in
/// front of the gateway's agents. The operator (on the testkit) decides and applies the
/// config; the real LiteLLM runs that ConfigMap and Deployment; the SDK's client lists
/// the tools of the aggregated `/mcp/` endpoint with the master key, which may use every
/// server. Then, as a control, the gateway consents and the same listing shows the
/// other tenant's tools, so the first listing could have shown them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_foreign_route_never_lists_its_tools_in_real_litellm() {
    let victim_dir = tempfile::tempdir().unwrap();
    let attacker_dir = tempfile::tempdir().unwrap();
    let (victim_server, victim_port, _) = start_mcp_server(victim_dir.path(), "echo").await;
    let (attacker_server, attacker_port, attacker_calls) =
        start_mcp_server(attacker_dir.path(), "echo").await;
    let running = support::Running::start(Duration::ZERO).await;
    let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: gateway-secrets, namespace: victim}\nstringData: {master: sk-victim-master}\n";
    let gateway = |annotations: &str| {
        format!(
            "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: ToolGateway\nmetadata:\n  name: tools\n  namespace: victim\n  annotations: {{{annotations}}}\nspec:\n  env:\n  - name: LITELLM_MASTER_KEY\n    valueFrom: {{secretKeyRef: {{name: gateway-secrets, key: master}}}}\n  - {{name: OTEL_EXPORTER, value: console}}\n"
        )
    };
    let route = |namespace: &str, name: &str, port: u16| {
        format!(
            "apiVersion: runtime.agentic-layer.ai/v1alpha1\nkind: ToolRoute\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  toolGatewayRef: {{name: tools, namespace: victim}}\n  upstream: {{external: {{url: \"http://127.0.0.1:{port}/mcp\"}}}}\n"
        )
    };
    running.apply(support::DEFAULT_TOOL_CLASS);
    running.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: victim}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: attacker}\n");
    running.apply(secret);
    running.apply(&gateway(""));
    running.apply(&route("victim", "search", victim_port));
    running.apply(&route("attacker", "injected", attacker_port));
    let injected = eventually_within(support::WAIT, "the foreign route refused", || async {
        let route = running.route("attacker", "injected").await?;
        support::route_condition(&route, "Accepted")
            .is_some_and(|(status, reason, _)| status == "False" && reason == "NotAllowedByGateway")
            .then_some(route)
    })
    .await;
    assert_eq!(support::route_url(&injected), None);
    eventually_within(support::WAIT, "the victim's route served", || async {
        let route = running.route("victim", "search").await?;
        support::route_url(&route).map(str::to_owned)
    })
    .await;

    let (lookup, _) = objects(secret);
    let (config_map, deployment) = applied(&running, "victim", "tools").await;
    let proxy = start_pod(&deployment, &config_map, "victim", &lookup).await;
    let aggregated = format!("http://127.0.0.1:{}/mcp/", proxy.port);
    let stolen = json!({"name": "attacker__injected-echo", "arguments": {"text": "x"}});
    let answer = mcp_client(&aggregated, "sk-victim-master", &[stolen]).await;
    assert_eq!(
        answer["tools"],
        json!(["victim__search-delete_everything", "victim__search-echo"]),
        "{answer:#}\nproxy log:\n{}",
        proxy.log_text()
    );
    let call = &answer["calls"][0];
    assert!(
        call["is_error"] == json!(true) || call.get("mcp_error").is_some(),
        "{answer:#}"
    );
    assert!(
        tool_calls(&attacker_calls).is_empty(),
        "the attacker's server was called"
    );
    drop(proxy);

    // Control: with the gateway's consent the same listing shows the foreign tools.
    running.apply(&gateway("aigateway.agentic-layer.ai/allowed-routes: All"));
    eventually_within(
        support::WAIT,
        "the foreign route served once admitted",
        || async {
            let route = running.route("attacker", "injected").await?;
            support::route_url(&route).map(str::to_owned)
        },
    )
    .await;
    let (config_map, deployment) = applied(&running, "victim", "tools").await;
    let proxy = start_pod(&deployment, &config_map, "victim", &lookup).await;
    let aggregated = format!("http://127.0.0.1:{}/mcp/", proxy.port);
    let answer = mcp_client(&aggregated, "sk-victim-master", &[]).await;
    let tools: Vec<&str> = answer["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer:#}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        tools.contains(&"attacker__injected-echo") && tools.contains(&"victim__search-echo"),
        "{answer:#}"
    );
    drop(proxy);
    running.stop().await;
    drop(victim_server);
    drop(attacker_server);
}

/// The guardrail in the pinned LiteLLM's Python, past its pattern matching: a server name
/// it was not told about is refused (fail closed), a tool name longer than the MCP
/// limit is refused before any pattern is matched, and a key's or team's opt-out of
/// global guardrails (admin metadata `disable_global_guardrails`,
/// `opted_out_global_guardrails`) does not switch it off, while it does switch off a
/// plain `default_on` guardrail of LiteLLM's.
#[test]
fn the_tool_filter_guardrail_fails_closed_and_cannot_be_opted_out_of() {
    let program = r#"
import importlib.util, json, sys
from litellm.integrations.custom_guardrail import CustomGuardrail
from litellm.types.guardrails import GuardrailEventHooks
spec = importlib.util.spec_from_file_location("aigateway_tool_filter", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
params = dict(guardrail_name="aigateway_tool_filter", event_hook="pre_mcp_call", default_on=True)
guard = module.ToolFilterGuardrail(
    routes=[{"route": "ns/r", "servers": ["ns__r", "friendly"], "allow": ["get_*"], "deny": []}],
    servers=["ns__r", "friendly", "ns__open"], **params)
print(json.dumps([guard.refusal(s, "get_x") for s in ["ns__r", "friendly", "ns__open", "unknown"]]))
print(json.dumps(guard.refusal("ns__r", "get_" + "x" * 200)))
opted_out = [
    {"metadata": {"user_api_key_metadata": {"disable_global_guardrails": True}}},
    {"metadata": {"user_api_key_team_metadata": {"opted_out_global_guardrails": ["aigateway_tool_filter"]}}},
]
plain = CustomGuardrail(**params)
event = GuardrailEventHooks.pre_mcp_call
print(json.dumps([[plain.should_run_guardrail(d, event), guard.should_run_guardrail(d, event)] for d in opted_out]))
print(json.dumps(guard.should_run_guardrail({}, GuardrailEventHooks.pre_call)))
"#;
    let module = dir_with_module();
    let output = Command::new(venv_bin().join("python"))
        .args(["-c", program])
        .arg(module.path().join(litellm_impl::tool_filter::MODULE_FILE))
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0][0], Value::Null);
    assert_eq!(lines[0][1], Value::Null);
    assert_eq!(lines[0][2], Value::Null);
    assert!(
        lines[0][3].as_str().is_some_and(
            |m| m.contains("MCP server unknown is not one the gateway's ToolRoutes declared")
        ),
        "{stdout}"
    );
    assert!(
        lines[1]
            .as_str()
            .is_some_and(|m| m.contains("longer than 128 characters")),
        "{stdout}"
    );
    assert_eq!(lines[2], json!([[false, true], [false, true]]), "{stdout}");
    assert_eq!(lines[3], json!(false), "{stdout}");
}

/// A Secret with the master key `sk-tools-master` and the ToolGateway `agents/tools`
/// that reads it, with `annotations` (a YAML flow mapping, or empty).
fn tools_gateway(annotations: &str) -> String {
    let annotations = if annotations.is_empty() {
        String::new()
    } else {
        format!("\n  annotations: {annotations}")
    };
    format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: gateway-secrets, namespace: agents}}
stringData: {{master: sk-tools-master}}
---
apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: ToolGateway
metadata:
  name: tools
  namespace: agents{annotations}
spec:
  env:
  - name: LITELLM_MASTER_KEY
    valueFrom: {{secretKeyRef: {{name: gateway-secrets, key: master}}}}
"#
    )
}

/// The ToolRoute `team-tools/<name>` of `agents/tools` to the MCP server on `mcp_port`,
/// denying `delete_*`.
fn delete_denying_route(name: &str, mcp_port: u16) -> String {
    format!(
        r#"---
apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: ToolRoute
metadata: {{name: {name}, namespace: team-tools}}
spec:
  toolGatewayRef: {{name: tools, namespace: agents}}
  upstream: {{external: {{url: "http://127.0.0.1:{mcp_port}/mcp"}}}}
  toolFilter: {{deny: ["delete_*"]}}
"#
    )
}

/// A config patch that renames a filtered route's server, by its own `alias` or by
/// `litellm_settings.mcp_aliases`, does not switch the route's filter off: the denied
/// tool stays hidden and refused through the real proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_that_aliases_a_filtered_route_keeps_its_filter_in_real_litellm() {
    let dir = tempfile::tempdir().unwrap();
    let (mcp_server, mcp_port, calls) = start_mcp_server(dir.path(), "echo").await;
    let route = |name: &str| delete_denying_route(name, mcp_port);
    let yaml = format!(
        r#"{}---
apiVersion: v1
kind: ConfigMap
metadata: {{name: tools-patch, namespace: agents}}
data:
  patch.yaml: |
    mcp_servers:
      team_tools__own_alias:
        alias: friendly
    litellm_settings:
      mcp_aliases:
        mapped: team_tools__mapped_alias
{}{}"#,
        tools_gateway("{ai-gateway-litellm.agentic-layer.ai/config-patch: tools-patch}"),
        route("own-alias"),
        route("mapped-alias")
    );
    let parsed = parse_documents(&yaml, "test").unwrap();
    let (lookup, rendered) = render_first_tool_gateway(parsed);
    let proxy = start(&rendered.rendered, "agents", &lookup).await;
    for (name, alias) in [("own-alias", "friendly"), ("mapped-alias", "mapped")] {
        let url = format!("http://127.0.0.1:{}/mcp/{alias}", proxy.port);
        let answer = mcp_client(
            &url,
            "sk-tools-master",
            &[
                json!({"name": format!("{alias}-delete_everything"), "arguments": {"confirm": true}}),
                json!({"name": "delete_everything", "arguments": {"confirm": true}}),
                json!({"name": format!("{alias}-echo"), "arguments": {"text": name}}),
            ],
        )
        .await;
        assert_eq!(
            answer["tools"],
            json!([format!("{alias}-echo")]),
            "{name}: {answer:#}\nproxy log:\n{}",
            proxy.log_text()
        );
        let calls_made = answer["calls"].as_array().unwrap();
        for denied in &calls_made[..2] {
            let refused = denied["is_error"] == json!(true) || denied.get("mcp_error").is_some();
            assert!(refused, "{name}: a denied tool must fail: {answer:#}");
        }
        assert_eq!(
            calls_made[2]["text"],
            json!(format!("echo: {name}")),
            "{answer:#}"
        );
    }
    assert_eq!(
        tool_calls(&calls),
        ["echo", "echo"],
        "no denied call reaches the MCP server"
    );
    drop(proxy);
    drop(mcp_server);
}

/// LiteLLM hands the filter only tools that have a description or a non-empty input
/// schema. MCP requires every tool's input schema to say `"type": "object"` (a listing
/// without it fails the SDK client LiteLLM uses), so the barest tool an upstream can
/// list, no description and `{"type": "object"}`, is still filtered: hidden from the
/// listing, and its call refused without reaching the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_barest_tool_a_route_denies_is_hidden_and_refused_in_real_litellm() {
    let dir = tempfile::tempdir().unwrap();
    let (mcp_server, mcp_port, calls) = start_mcp_server(dir.path(), "bare").await;
    let yaml = tools_gateway("") + &delete_denying_route("bare", mcp_port);
    let (lookup, rendered) = render_first_tool_gateway(parse_documents(&yaml, "test").unwrap());
    let proxy = start(&rendered.rendered, "agents", &lookup).await;
    let url = format!("http://127.0.0.1:{}/mcp/team_tools__bare", proxy.port);
    let answer = mcp_client(
        &url,
        "sk-tools-master",
        &[
            json!({"name": "team_tools__bare-delete_bare", "arguments": {}}),
            json!({"name": "team_tools__bare-echo", "arguments": {"text": "hi"}}),
        ],
    )
    .await;
    assert_eq!(
        answer["tools"],
        json!(["team_tools__bare-echo"]),
        "{answer:#}\nproxy log:\n{}",
        proxy.log_text()
    );
    let calls_made = answer["calls"].as_array().unwrap();
    let refused = &calls_made[0];
    assert!(
        refused["is_error"] == json!(true) || refused.get("mcp_error").is_some(),
        "{answer:#}"
    );
    assert!(
        refused
            .to_string()
            .contains("tool delete_bare is not exposed by ToolRoute team-tools/bare"),
        "{answer:#}"
    );
    assert_eq!(calls_made[1]["text"], json!("echo: hi"), "{answer:#}");
    assert_eq!(
        tool_calls(&calls),
        ["echo"],
        "the denied call never reached the server"
    );
    drop(proxy);
    drop(mcp_server);
}

/// A LiteLLMModelPolicy on one model: that model reaches its own endpoint with its own
/// key from the policy's Secret, while the gateway's other model keeps the provider's
/// endpoint and the provider key from `api-key-secrets`. The key's value never reaches
/// the config.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_policy_gives_one_model_its_own_endpoint_and_key_in_real_litellm() {
    use aigateway_api::policy::PolicyTargetReference;
    use litellm_impl::policy::{LiteLlmModelPolicy, LiteLlmModelPolicySpec, SecretKeyReference};

    let (fake, addr) = start_fake().await;
    let yaml = format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: api-key-secrets, namespace: team}}
stringData: {{OPENAI_API_KEY: sk-provider-key}}
---
apiVersion: v1
kind: Secret
metadata: {{name: own-key, namespace: team}}
stringData: {{key: sk-model-own-key}}
---
apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: AiGateway
metadata: {{name: gw, namespace: team}}
spec:
  aiModels:
  - {{provider: openai, name: gpt-4o-mini}}
  - {{provider: openai, name: gpt-4o}}
  env:
  - {{name: OPENAI_API_BASE, value: "http://{addr}"}}
"#
    );
    let (lookup, gateways) = objects(&yaml);
    let mut target = PolicyTargetReference::new("runtime.agentic-layer.ai", "AiGateway", "gw");
    target.section_name = Some("gpt-4o".into());
    let mut policy = LiteLlmModelPolicy::new(
        "own-endpoint",
        LiteLlmModelPolicySpec {
            target_refs: vec![target],
            api_base: Some(format!("http://{addr}/v1")),
            credentials: Some(SecretKeyReference {
                name: "own-key".into(),
                key: "key".into(),
            }),
            timeout_seconds: Some(30),
            ..Default::default()
        },
    );
    policy.metadata.namespace = Some("team".into());
    let policies = litellm_impl::GatewayPolicies {
        models: &[policy],
        ..Default::default()
    };
    let rendered = litellm_impl::render_with_policies(
        &gateways[0],
        policies,
        &lookup,
        &RenderSettings::default(),
    )
    .unwrap();
    assert!(
        rendered
            .policies
            .iter()
            .all(|o| o.verdict == litellm_impl::PolicyVerdict::Applied),
        "{:?}",
        rendered.policies
    );
    assert!(!rendered.config_yaml.contains("sk-model-own-key"));

    let proxy = start(&rendered, "team", &lookup).await;
    for (model, marker) in [("gpt-4o", "own-marker"), ("gpt-4o-mini", "shared-marker")] {
        let response = chat_completion(&proxy, Some("sk-agent"), model, marker).await;
        assert_eq!(
            response.status,
            200,
            "{model}: {}\nlog:\n{}",
            response.body,
            proxy.log_text()
        );
    }
    let own = fake.with_marker("own-marker");
    assert_eq!(own.len(), 1, "{:#?}", fake.requests());
    assert_eq!(own[0].path, "/v1/chat/completions");
    assert_eq!(
        own[0].authorization.as_deref(),
        Some("Bearer sk-model-own-key")
    );
    let shared = fake.with_marker("shared-marker");
    assert_eq!(shared.len(), 1, "{:#?}", fake.requests());
    assert_eq!(shared[0].path, "/chat/completions");
    assert_eq!(
        shared[0].authorization.as_deref(),
        Some("Bearer sk-provider-key")
    );
}

/// A real `redis-server` (Debian's package, which `.ci/run` installs) on loopback with a
/// password and no persistence; killed on drop.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    const PASSWORD: &str = "r3dis-test-pass";

    async fn start() -> Self {
        let mut command = Command::new("redis-server");
        command
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--requirepass", Self::PASSWORD])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let port = free_port();
        let child = command
            .arg("--port")
            .arg(port.to_string())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run redis-server ({e}): install Debian's redis-server (apt-get install redis-server), as .ci/run does")
            });
        let redis = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen on {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        redis
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A routing policy on two real LiteLLM processes with the same rendered config: a model
/// whose provider fails is answered by its fallback, and a limit of 6 requests per minute
/// (a model policy) holds for both processes together through one real Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routing_policy_falls_back_and_shares_limits_across_two_real_litellm_processes() {
    use aigateway_api::policy::PolicyTargetReference;
    use litellm_impl::policy::{
        Fallback, LiteLlmModelPolicy, LiteLlmModelPolicySpec, LiteLlmRoutingPolicy,
        LiteLlmRoutingPolicySpec, RedisReference, SharedLimits,
    };

    let redis = Redis::start().await;
    let (fake, addr) = start_fake().await;
    let yaml = format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: api-key-secrets, namespace: team}}
stringData: {{OPENAI_API_KEY: sk-provider-key}}
---
apiVersion: v1
kind: Secret
metadata: {{name: redis, namespace: team}}
stringData: {{host: 127.0.0.1, port: "{port}", password: {password}}}
---
apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: AiGateway
metadata: {{name: gw, namespace: team}}
spec:
  aiModels:
  - {{provider: openai, name: limited}}
  - {{provider: openai, name: {FAILING_MODEL}}}
  - {{provider: openai, name: gpt-4o-mini}}
  env:
  - {{name: OPENAI_API_BASE, value: "http://{addr}"}}
"#,
        port = redis.port,
        password = Redis::PASSWORD,
    );
    let (lookup, gateways) = objects(&yaml);
    let target = || PolicyTargetReference::new("runtime.agentic-layer.ai", "AiGateway", "gw");
    let mut limit = LiteLlmModelPolicy::new(
        "six-per-minute",
        LiteLlmModelPolicySpec {
            target_refs: vec![PolicyTargetReference {
                section_name: Some("limited".into()),
                ..target()
            }],
            rpm: Some(6),
            ..Default::default()
        },
    );
    limit.metadata.namespace = Some("team".into());
    let mut routing = LiteLlmRoutingPolicy::new(
        "resilient",
        LiteLlmRoutingPolicySpec {
            target_refs: vec![target()],
            fallbacks: vec![Fallback {
                model: FAILING_MODEL.into(),
                to: vec!["gpt-4o-mini".into()],
            }],
            // Over the limit, a retry would wait for the next minute instead of a 429.
            retries: Some(0),
            shared_limits: Some(SharedLimits {
                redis: RedisReference {
                    secret_name: "redis".into(),
                },
            }),
            ..Default::default()
        },
    );
    routing.metadata.namespace = Some("team".into());
    let policies = litellm_impl::GatewayPolicies {
        models: &[limit],
        routing: &[routing],
        ..Default::default()
    };
    let rendered = litellm_impl::render_with_policies(
        &gateways[0],
        policies,
        &lookup,
        &RenderSettings::default(),
    )
    .unwrap();
    assert!(
        rendered
            .policies
            .iter()
            .all(|o| o.verdict == litellm_impl::PolicyVerdict::Applied),
        "{:?}",
        rendered.policies
    );
    assert!(!rendered.config_yaml.contains(Redis::PASSWORD));

    let (first, second) = tokio::join!(
        start(&rendered, "team", &lookup),
        start(&rendered, "team", &lookup)
    );

    // Fallback: the failing model's request reaches its provider once (no retries), then
    // the fallback answers.
    let response =
        chat_completion(&first, Some("sk-agent"), FAILING_MODEL, "fallback-marker").await;
    assert_eq!(
        response.status,
        200,
        "{}\nlog:\n{}",
        response.body,
        first.log_text()
    );
    let tried: Vec<String> = fake
        .with_marker("fallback-marker")
        .iter()
        .map(|r| r.body["model"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(tried, [FAILING_MODEL, "gpt-4o-mini"]);

    // Shared limits: LiteLLM counts per UTC minute, so the 12 requests must fall in one
    // minute (a burst that straddles two gets a fresh budget halfway): a burst starts in
    // the first half of a minute, and one that still crosses into the next is sent again
    // in the minute after (whose budget it has not touched).
    let minute = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let mut statuses = Vec::new();
    let mut marker = String::new();
    for attempt in 1..=3 {
        marker = format!("limit-marker-{attempt}");
        let second_of_minute = minute() % 60;
        if second_of_minute > 30 {
            tokio::time::sleep(Duration::from_secs(61 - second_of_minute)).await;
        }
        let started = minute() / 60;
        statuses.clear();
        for i in 0..12 {
            let proxy = if i % 2 == 0 { &first } else { &second };
            let response = chat_completion(proxy, Some("sk-agent"), "limited", &marker).await;
            statuses.push(response.status);
            // LiteLLM writes its counters to Redis every 0.1 s.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        if minute() / 60 == started {
            break;
        }
        assert!(
            attempt < 3,
            "three bursts of 12 requests each crossed a minute's end"
        );
        let second_of_minute = minute() % 60;
        tokio::time::sleep(Duration::from_secs(61 - second_of_minute)).await;
    }
    let answered = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        (5..=7).contains(&answered),
        "6 per minute over two processes: {statuses:?}\nfirst:\n{}\nsecond:\n{}",
        first.log_text(),
        second.log_text()
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    assert_eq!(
        fake.with_marker(&marker).len(),
        answered,
        "a refused request never reaches the provider"
    );
}

/// An observability policy on real LiteLLM: a chat completion produces a `litellm_request`
/// span with the gateway's name as `service.name` at an OTLP/HTTP receiver, exported with
/// the headers from the policy's Secret, and without the prompt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observability_policy_exports_spans_named_after_the_gateway_from_real_litellm() {
    use aigateway_api::policy::PolicyTargetReference;
    use litellm_impl::policy::{
        LiteLlmObservabilityPolicy, LiteLlmObservabilityPolicySpec, Tracing,
    };

    let (fake, addr) = start_fake().await;
    let yaml = format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: api-key-secrets, namespace: team}}
stringData: {{OPENAI_API_KEY: sk-provider-key}}
---
apiVersion: v1
kind: Secret
metadata: {{name: collector, namespace: team}}
stringData: {{headers: "Authorization=Bearer collector-token"}}
---
apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: AiGateway
metadata: {{name: traced-gw, namespace: team}}
spec:
  aiModels:
  - {{provider: openai, name: gpt-4o-mini}}
  env:
  - {{name: OPENAI_API_BASE, value: "http://{addr}"}}
  # The SDK's batch delay, 5 s by default, shortened for the test.
  - {{name: OTEL_BSP_SCHEDULE_DELAY, value: "100"}}
"#
    );
    let (lookup, gateways) = objects(&yaml);
    let mut policy = LiteLlmObservabilityPolicy::new(
        "traces",
        LiteLlmObservabilityPolicySpec {
            target_refs: vec![PolicyTargetReference::new(
                "runtime.agentic-layer.ai",
                "AiGateway",
                "traced-gw",
            )],
            tracing: Some(Tracing {
                endpoint: format!("http://{addr}"),
                headers_secret_name: Some("collector".into()),
                ..Default::default()
            }),
            monitoring: None,
        },
    );
    policy.metadata.namespace = Some("team".into());
    let policies = litellm_impl::GatewayPolicies {
        observability: &[policy],
        ..Default::default()
    };
    let rendered = litellm_impl::render_with_policies(
        &gateways[0],
        policies,
        &lookup,
        &RenderSettings::default(),
    )
    .unwrap();
    assert!(
        rendered
            .policies
            .iter()
            .all(|o| o.verdict == litellm_impl::PolicyVerdict::Applied),
        "{:?}",
        rendered.policies
    );
    assert!(!rendered.config_yaml.contains("collector-token"));

    let proxy = start(&rendered, "team", &lookup).await;
    let prompt = "a-prompt-that-must-not-be-exported";
    let response = chat_completion(&proxy, Some("sk-agent"), "gpt-4o-mini", prompt).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let request_span = || {
        fake.exports().into_iter().find_map(|export| {
            export.request.resource_spans.iter().find_map(|spans| {
                let named = (spans.scope_spans.iter().flat_map(|s| &s.spans))
                    .any(|span| span.name == "litellm_request");
                named.then(|| (spans.service_name().map(str::to_owned), export.clone()))
            })
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let (service, export) = loop {
        if let Some(found) = request_span() {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "no litellm_request span in {} exports\nlog:\n{}",
            fake.exports().len(),
            proxy.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(service.as_deref(), Some("traced-gw"));
    assert_eq!(
        export.authorization.as_deref(),
        Some("Bearer collector-token")
    );
    // Spans of the request may still be on their way: give them the batch delay.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let leaked = fake
        .exports()
        .iter()
        .any(|e| e.body.windows(prompt.len()).any(|w| w == prompt.as_bytes()));
    assert!(!leaked, "the prompt reached the trace backend");
}
