//! MCP on this machine: the demo's MCP server ([`DEMO_SERVER_SCRIPT`], the `mcp` Python
//! SDK of the LiteLLM venv) and the agent's side of the protocol ([`McpClient`]), MCP
//! JSON-RPC requests POSTed over streamable HTTP, answered as JSON or as server-sent
//! events.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::http::{self, HttpError};
use super::pod::ContainerPlan;

/// The demo's MCP server: tools `echo` and `delete_everything`, `/mcp` (streamable
/// HTTP), `/healthz`, one `MCP server: tools/call ...` line per call that reaches it.
pub const DEMO_SERVER_SCRIPT: &str = include_str!("mcp_demo_server.py");

/// Where [`demo_server_plan`] mounts the script, as a ConfigMap volume would.
const SCRIPT_DIR: &str = "/app";

/// The port the script's "container" declares (mapped to a free loopback port).
pub const DEMO_SERVER_PORT: u16 = 8000;

/// The path the demo's MCP server serves MCP at.
pub const DEMO_SERVER_MCP_PATH: &str = "/mcp";

/// The liveness path of the demo's MCP server.
pub const DEMO_SERVER_HEALTH_PATH: &str = "/healthz";

/// The prefix of the lines the demo's MCP server prints for each tool call.
pub const DEMO_SERVER_LOG_PREFIX: &str = "MCP server:";

/// The MCP protocol version the client asks for.
pub const PROTOCOL_VERSION: &str = "2025-06-18";

/// The pod of the demo's MCP server as `pod` (`namespace/name`): the venv's `python`
/// running [`DEMO_SERVER_SCRIPT`], mounted as a file, on [`DEMO_SERVER_PORT`].
pub fn demo_server_plan(pod: &str) -> ContainerPlan {
    ContainerPlan {
        pod: pod.to_owned(),
        program: "python".to_owned(),
        args: vec![
            format!("{SCRIPT_DIR}/server.py"),
            "--port".to_owned(),
            DEMO_SERVER_PORT.to_string(),
        ],
        env: BTreeMap::from([("PYTHONUNBUFFERED".to_owned(), "1".to_owned())]),
        secret_env: Vec::new(),
        ignored_env: Vec::new(),
        mounts: BTreeMap::from([(
            SCRIPT_DIR.to_owned(),
            vec![("server.py".to_owned(), DEMO_SERVER_SCRIPT.to_owned())],
        )]),
    }
}

/// Why an MCP request got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// No HTTP answer at all.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// An HTTP status other than 200 (202 for notifications).
    #[error("{method} at {url}: HTTP {status}: {message}")]
    Status {
        /// The JSON-RPC method.
        method: String,
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// The first line of the body, shortened.
        message: String,
    },
    /// The answer is not a JSON-RPC response to the request.
    #[error("{method} at {url}: {reason}")]
    Protocol {
        /// The JSON-RPC method.
        method: String,
        /// The URL.
        url: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A JSON-RPC error answer.
    #[error("{method} at {url}: JSON-RPC error {code}: {message}")]
    Rpc {
        /// The JSON-RPC method.
        method: String,
        /// The URL.
        url: String,
        /// The error code.
        code: i64,
        /// The error message, shortened.
        message: String,
    },
}

/// What a `tools/call` answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolAnswer {
    /// The result's `isError`.
    pub is_error: bool,
    /// The text blocks of its `content`, joined by newlines.
    pub text: String,
}

/// One line of at most 200 characters of `text`.
fn one_line(text: &str) -> String {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .trim()
        .chars()
        .take(200)
        .collect()
}

/// The JSON-RPC request `method` with `params` and `id`.
pub fn request(id: u64, method: &str, params: Option<Value>) -> Value {
    let mut request = json!({"jsonrpc": "2.0", "id": id, "method": method});
    if let Some(params) = params {
        request["params"] = params;
    }
    request
}

/// The JSON-RPC message answering `id` in `body`: the body itself (JSON) or one of its
/// server-sent events' `data` (SSE).
fn find_response(body: &str, id: u64) -> Option<Value> {
    let answers = |value: &Value| value.get("id") == Some(&json!(id));
    if let Ok(value) = serde_json::from_str::<Value>(body.trim()) {
        return answers(&value).then_some(value);
    }
    let mut data = String::new();
    let mut events = Vec::new();
    for line in body.lines().chain(std::iter::once("")) {
        if let Some(rest) = line.strip_prefix("data:") {
            data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
            data.push('\n');
        } else if line.trim().is_empty() && !data.is_empty() {
            events.push(std::mem::take(&mut data));
        }
    }
    events
        .iter()
        .filter_map(|event| serde_json::from_str::<Value>(event.trim()).ok())
        .find(answers)
}

/// An MCP client of one server URL, as an agent's MCP SDK uses it: `initialize`, the
/// `notifications/initialized` notification, then requests, carrying the session id
/// the server handed out (if any).
#[derive(Debug)]
pub struct McpClient {
    url: String,
    bearer: Option<String>,
    session: Option<String>,
    initialized: bool,
    next_id: u64,
}

/// The `Accept` header of every MCP request over streamable HTTP: the server may answer
/// with JSON or with server-sent events.
pub const ACCEPT: &str = "application/json, text/event-stream";

impl McpClient {
    /// Opens a session with the server at `url`, sending `bearer` as
    /// `Authorization: Bearer` when given.
    pub async fn connect(url: &str, bearer: Option<&str>) -> Result<Self, McpError> {
        let mut client = Self {
            url: url.to_owned(),
            bearer: bearer.map(str::to_owned),
            session: None,
            initialized: false,
            next_id: 1,
        };
        let params = json!({
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "litellm-impl-demo-agent", "version": env!("CARGO_PKG_VERSION")},
        });
        client.call("initialize", Some(params)).await?;
        client.initialized = true;
        client.notify("notifications/initialized").await?;
        Ok(client)
    }

    /// The names of the tools the server lists.
    pub async fn list_tools(&mut self) -> Result<Vec<String>, McpError> {
        let result = self.call("tools/list", None).await?;
        let tools = result["tools"]
            .as_array()
            .ok_or_else(|| self.protocol("tools/list", "the result has no tools list"))?;
        let mut names: Vec<String> = tools
            .iter()
            .filter_map(|tool| tool["name"].as_str().map(str::to_owned))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Calls tool `name` with `arguments`.
    pub async fn call_tool(
        &mut self,
        name: &str,
        arguments: Value,
    ) -> Result<ToolAnswer, McpError> {
        let result = self
            .call(
                "tools/call",
                Some(json!({"name": name, "arguments": arguments})),
            )
            .await?;
        let content = result["content"]
            .as_array()
            .ok_or_else(|| self.protocol("tools/call", "the result has no content"))?;
        let text = content
            .iter()
            .filter_map(|block| block["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n");
        Ok(ToolAnswer {
            is_error: result["isError"] == json!(true),
            text,
        })
    }

    fn protocol(&self, method: &str, reason: &str) -> McpError {
        McpError::Protocol {
            method: method.to_owned(),
            url: self.url.clone(),
            reason: reason.to_owned(),
        }
    }

    async fn post(&self, method: &str, body: &Value) -> Result<http::Response, McpError> {
        let mut headers = vec![("accept", ACCEPT)];
        if self.initialized {
            headers.push(("mcp-protocol-version", PROTOCOL_VERSION));
        }
        if let Some(session) = &self.session {
            headers.push(("mcp-session-id", session.as_str()));
        }
        let response = http::send_with_headers(
            "POST",
            &self.url,
            self.bearer.as_deref(),
            &headers,
            Some(body),
        )
        .await?;
        if !matches!(response.status, 200 | 202) {
            return Err(McpError::Status {
                method: method.to_owned(),
                url: self.url.clone(),
                status: response.status,
                message: one_line(&response.body),
            });
        }
        Ok(response)
    }

    async fn notify(&mut self, method: &str) -> Result<(), McpError> {
        self.post(method, &json!({"jsonrpc": "2.0", "method": method}))
            .await
            .map(drop)
    }

    async fn call(&mut self, method: &str, params: Option<Value>) -> Result<Value, McpError> {
        let id = self.next_id;
        self.next_id += 1;
        let response = self.post(method, &request(id, method, params)).await?;
        if let Some(session) = response
            .headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        {
            self.session = Some(session.to_owned());
        }
        let answer = find_response(&response.body, id).ok_or_else(|| {
            self.protocol(
                method,
                &format!(
                    "no JSON-RPC answer to request {id} in: {}",
                    one_line(&response.body)
                ),
            )
        })?;
        if let Some(error) = answer.get("error") {
            return Err(McpError::Rpc {
                method: method.to_owned(),
                url: self.url.clone(),
                code: error["code"].as_i64().unwrap_or_default(),
                message: one_line(error["message"].as_str().unwrap_or_default()),
            });
        }
        answer
            .get("result")
            .cloned()
            .ok_or_else(|| self.protocol(method, "the answer has neither result nor error"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_found_in_json_and_in_server_sent_events() {
        let answer = json!({"jsonrpc": "2.0", "id": 2, "result": {"tools": []}});
        assert_eq!(find_response(&answer.to_string(), 2), Some(answer.clone()));
        assert_eq!(find_response(&answer.to_string(), 3), None);
        let sse = format!(
            "event: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}}\n\nevent: message\ndata: {answer}\n\n"
        );
        assert_eq!(find_response(&sse, 2), Some(answer));
        assert_eq!(find_response("event: message\ndata: not json\n\n", 2), None);
    }

    #[test]
    fn the_demo_server_runs_the_embedded_script_from_a_mounted_file() {
        let plan = demo_server_plan("tool-gateway/demo-tools");
        assert_eq!(plan.program, "python");
        assert_eq!(plan.args, ["/app/server.py", "--port", "8000"]);
        assert_eq!(plan.mounts["/app"][0].1, DEMO_SERVER_SCRIPT);
        assert!(DEMO_SERVER_SCRIPT.contains("\"/healthz\""));
        assert!(DEMO_SERVER_SCRIPT.contains(DEMO_SERVER_LOG_PREFIX));
    }
}
