//! A fake OpenAI-compatible LLM provider on loopback, for tests and the demo.
//!
//! It answers `POST /v1/chat/completions` (also without the `/v1` prefix; plain JSON, or
//! server-sent events when the request sets `"stream": true`) and `GET /v1/models`, and
//! records every request it receives. The API key a request carries is kept only as a
//! [`key_fingerprint`]: no key, even a demo placeholder, is stored or printed.
//!
//! ```
//! use aigateway_testkit::fake_provider::{FakeProvider, key_fingerprint};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let provider = FakeProvider::start(([127, 0, 0, 1], 0).into(), &["gpt-4o-mini"]).await.unwrap();
//! assert!(provider.base_url().starts_with("http://127.0.0.1:"));
//! assert!(provider.base_url().ends_with("/v1"));
//! assert!(provider.requests().is_empty());
//! assert_eq!(key_fingerprint("sk-test").len(), "sha256:".len() + 8);
//! # }
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;

/// A short, non-reversible fingerprint of an API key: `sha256:` and the first 8 hex
/// characters of its SHA-256. Enough to tell two keys apart in a log line, useless to
/// recover the key.
pub fn key_fingerprint(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// One request the fake provider received.
#[derive(Clone, Debug, PartialEq)]
pub struct ProviderRequest {
    /// The HTTP method.
    pub method: String,
    /// The request path, without the query.
    pub path: String,
    /// The `model` of a chat completion request.
    pub model: Option<String>,
    /// The [`key_fingerprint`] of the API key (`Authorization: Bearer`, `x-api-key` or
    /// `api-key` header), `None` when the request carried none.
    pub key_fingerprint: Option<String>,
    /// The request body (`Null` when it was empty or not JSON).
    pub body: Value,
}

impl fmt::Display for ProviderRequest {
    /// The provider's log line: method, path, model and key fingerprint, never the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fake provider: {} {}", self.method, self.path)?;
        if let Some(model) = &self.model {
            write!(f, " model={model}")?;
        }
        write!(
            f,
            " key={}",
            self.key_fingerprint.as_deref().unwrap_or("(none)")
        )
    }
}

#[derive(Clone)]
struct Shared {
    models: Arc<Vec<String>>,
    requests: Arc<Mutex<Vec<ProviderRequest>>>,
    log: broadcast::Sender<ProviderRequest>,
}

impl Shared {
    fn record(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &Value) {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let key = header(header::AUTHORIZATION.as_str())
            .map(|value| value.strip_prefix("Bearer ").unwrap_or(value))
            .or_else(|| header("x-api-key"))
            .or_else(|| header("api-key"));
        let request = ProviderRequest {
            method: method.to_string(),
            path: uri.path().to_owned(),
            model: body["model"].as_str().map(str::to_owned),
            key_fingerprint: key.map(key_fingerprint),
            body: body.clone(),
        };
        self.requests
            .lock()
            .expect("the request log is never poisoned")
            .push(request.clone());
        // Nobody listening is fine: the log is also kept in `requests`.
        let _ = self.log.send(request);
    }
}

/// The reply text for a chat completion: names the model and echoes the last user
/// message, so a caller can tell its own request's answer apart.
fn reply_text(body: &Value) -> String {
    let said = body["messages"]
        .as_array()
        .and_then(|messages| {
            messages
                .iter()
                .rev()
                .find(|m| m["role"] == "user")
                .and_then(|m| m["content"].as_str())
        })
        .unwrap_or_default();
    let said: String = said.chars().take(200).collect();
    format!(
        "Hello from the fake provider ({}). You said: {said}",
        body["model"].as_str().unwrap_or("no model")
    )
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"message": message, "type": "invalid_request_error"}})),
    )
        .into_response()
}

async fn chat_completions(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    let Ok(body) = serde_json::from_str::<Value>(&body) else {
        shared.record(&method, &uri, &headers, &Value::Null);
        return error(StatusCode::BAD_REQUEST, "the body is not JSON");
    };
    shared.record(&method, &uri, &headers, &body);
    if !body["model"].is_string() || !body["messages"].is_array() {
        return error(
            StatusCode::BAD_REQUEST,
            "a chat completion needs `model` and `messages`",
        );
    }
    let model = body["model"].clone();
    let text = reply_text(&body);
    if body["stream"] == json!(true) {
        let chunk = |delta: Value, finish: Value| {
            json!({
                "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
            })
        };
        let events = [
            chunk(json!({"role": "assistant", "content": text}), Value::Null),
            chunk(json!({}), json!("stop")),
        ];
        let mut stream: String = events
            .iter()
            .map(|event| format!("data: {event}\n\n"))
            .collect();
        stream.push_str("data: [DONE]\n\n");
        return ([(header::CONTENT_TYPE, "text/event-stream")], stream).into_response();
    }
    axum::Json(json!({
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 12, "total_tokens": 17}
    }))
    .into_response()
}

async fn list_models(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> axum::Json<Value> {
    shared.record(&method, &uri, &headers, &Value::Null);
    let data: Vec<Value> = shared
        .models
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": "fake-provider"}))
        .collect();
    axum::Json(json!({"object": "list", "data": data}))
}

async fn not_found(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    shared.record(&method, &uri, &headers, &Value::Null);
    error(
        StatusCode::NOT_FOUND,
        "the fake provider serves /v1/chat/completions and /v1/models only",
    )
}

/// A running fake provider; it stops when dropped.
pub struct FakeProvider {
    addr: SocketAddr,
    shared: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl FakeProvider {
    /// Listens on `addr` (port 0 picks a free one) and serves until dropped. `models`
    /// are what `GET /v1/models` lists; chat completions accept any model.
    pub async fn start(addr: SocketAddr, models: &[&str]) -> std::io::Result<Self> {
        let (log, _) = broadcast::channel(256);
        let shared = Shared {
            models: Arc::new(models.iter().map(|m| (*m).to_owned()).collect()),
            requests: Arc::default(),
            log,
        };
        let app = Router::new()
            .route("/v1/chat/completions", post(chat_completions))
            .route("/chat/completions", post(chat_completions))
            .route("/v1/models", get(list_models))
            .route("/models", get(list_models))
            .fallback(not_found)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("fake provider on {addr} stopped: {error}");
            }
        });
        Ok(Self {
            addr,
            shared,
            server,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The OpenAI-style base URL, `http://<addr>/v1`, for `OPENAI_API_BASE`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<ProviderRequest> {
        self.shared
            .requests
            .lock()
            .expect("the request log is never poisoned")
            .clone()
    }

    /// Requests received from now on, as they arrive (the provider's log).
    pub fn subscribe(&self) -> broadcast::Receiver<ProviderRequest> {
        self.shared.log.subscribe()
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn shared() -> Shared {
        Shared {
            models: Arc::new(vec!["gpt-4o-mini".into()]),
            requests: Arc::default(),
            log: broadcast::channel(8).0,
        }
    }

    fn app(shared: &Shared) -> Router {
        Router::new()
            .route("/v1/chat/completions", post(chat_completions))
            .route("/v1/models", get(list_models))
            .fallback(not_found)
            .with_state(shared.clone())
    }

    async fn call(app: Router, request: axum::http::Request<String>) -> (StatusCode, String) {
        let response = app
            .oneshot(request.map(axum::body::Body::from))
            .await
            .unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    fn chat(body: &str, key: Option<&str>) -> axum::http::Request<String> {
        let mut builder = axum::http::Request::post("/v1/chat/completions")
            .header("content-type", "application/json");
        if let Some(key) = key {
            builder = builder.header("authorization", format!("Bearer {key}"));
        }
        builder.body(body.to_owned()).unwrap()
    }

    #[tokio::test]
    async fn a_chat_completion_is_answered_and_logged_with_the_key_fingerprint_only() {
        let shared = shared();
        let mut log = shared.log.subscribe();
        let (status, body) = call(
            app(&shared),
            chat(
                r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"ping-42"}]}"#,
                Some("sk-secret-value"),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        let text = answer["choices"][0]["message"]["content"].as_str().unwrap();
        assert!(
            text.contains("ping-42") && text.contains("gpt-4o-mini"),
            "{text}"
        );

        let logged = log.try_recv().unwrap();
        assert_eq!(
            logged.key_fingerprint.as_deref(),
            Some(key_fingerprint("sk-secret-value").as_str())
        );
        let line = logged.to_string();
        assert_eq!(
            line,
            format!(
                "fake provider: POST /v1/chat/completions model=gpt-4o-mini key={}",
                key_fingerprint("sk-secret-value")
            )
        );
        assert!(!line.contains("sk-secret-value"), "{line}");
        assert_ne!(
            key_fingerprint("sk-secret-value"),
            key_fingerprint("sk-other")
        );
    }

    #[tokio::test]
    async fn streaming_models_and_bad_requests() {
        let shared = shared();
        let (status, body) = call(
            app(&shared),
            chat(
                r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
                None,
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.starts_with("data: {"), "{body}");
        assert!(body.ends_with("data: [DONE]\n\n"), "{body}");

        let (status, body) = call(
            app(&shared),
            axum::http::Request::get("/v1/models")
                .body(String::new())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let models: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(models["data"][0]["id"], "gpt-4o-mini");

        let (status, _) = call(app(&shared), chat("not json", None)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = call(app(&shared), chat(r#"{"model":"m"}"#, None)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = call(
            app(&shared),
            axum::http::Request::get("/v1/embeddings")
                .body(String::new())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        let requests = shared.requests.lock().unwrap().clone();
        assert_eq!(requests.len(), 5);
        assert!(requests.iter().all(|r| r.key_fingerprint.is_none()));
    }
}
