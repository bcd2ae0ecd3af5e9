//! What the real-control-plane scenarios (`real_cluster*.rs`) share: the upstream
//! samples, polling, conditions, and audit summaries.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aigateway_testkit::real_cluster::AuditEvent;
use serde_json::Value;

pub const SYSTEM_NAMESPACE: &str = "ai-gateway-litellm-system";
pub const OPERATOR_USER: &str = "system:serviceaccount:ai-gateway-litellm-system:litellm-impl";

/// The upstream samples (ai-gateway-litellm-operator's `config/samples`), as imported
/// into the API crate's fixtures, with the gateway each one declares.
pub const UPSTREAM_SAMPLES: &[(&str, &str, &str)] = &[
    ("aigateway.yaml", "ai-gateway", "ai-gateway"),
    (
        "aigateway-guarded.yaml",
        "ai-gateway-guarded",
        "ai-gateway-pii",
    ),
    (
        "aigateway-with-patch.yaml",
        "ai-gateway-patched",
        "ai-gateway",
    ),
];

/// The Go operator's ToolGateway samples (imported unchanged), with the gateway and the
/// route each one declares.
pub const UPSTREAM_TOOL_SAMPLES: &[(&str, &str, &str, &str, &str)] = &[
    // (file, gateway namespace, gateway, route namespace, route)
    (
        "toolgateway.yaml",
        "tool-gateway",
        "tool-gateway",
        "tool-gateway-routes",
        "echo",
    ),
    (
        "toolgateway-guarded.yaml",
        "tool-gateway-guarded",
        "tool-gateway-guarded",
        "tool-gateway-guarded-routes",
        "echo-guarded",
    ),
    (
        "toolgateway-with-patch.yaml",
        "tool-gateway-patched",
        "tool-gateway",
        "tool-gateway-patched-routes",
        "echo",
    ),
];

/// A sample's file.
pub fn sample(file: &str) -> PathBuf {
    super::workspace()
        .join("aigateway-api/tests/fixtures/samples")
        .join(file)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP GET on loopback: the status code and the body.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())?;
    Some((code, body))
}

/// Polls `check` until it returns `Some`, or panics with `what` and `context()`.
pub fn eventually<T>(
    what: &str,
    limit: Duration,
    context: impl Fn() -> String,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out after {limit:?} waiting for {what}\n{}",
                context()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

pub fn condition(object: &Value, type_: &str) -> Value {
    object["status"]["conditions"]
        .as_array()
        .and_then(|list| list.iter().find(|c| c["type"] == type_))
        .cloned()
        .unwrap_or(Value::Null)
}

/// The Secret `api-key-secrets` the AiGateway samples read, with `OPENAI_API_KEY: key`.
pub fn api_key_secret(namespace: &str, key: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: api-key-secrets\n  namespace: {namespace}\ntype: Opaque\nstringData:\n  OPENAI_API_KEY: {key}\n"
    )
}

/// One line per audit event: who did what to which object.
pub fn writes_summary(events: &[AuditEvent]) -> String {
    events
        .iter()
        .map(|e| {
            format!(
                "{} {} {} {}/{} {} ({})",
                e.user, e.verb, e.resource, e.namespace, e.name, e.subresource, e.code
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
