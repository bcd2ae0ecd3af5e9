//! The built `litellm-impl demo`: `--exit-when-ready` succeeds with the table, the
//! rendered config and the kubectl hint; a too short `--timeout` fails with a reason; and
//! a plain demo serves real kubectl, reconciles a gateway applied by the user, and exits
//! 0 on SIGINT and SIGTERM.
//!
//! With `--with-proxy` (the real LiteLLM proxy, installed into `target/litellm-venv` by
//! the same installer as the real-LiteLLM tests; a fresh machine installs it on the first
//! run): the agent's request is answered through LiteLLM with the gateway's key, its MCP
//! tool call through the ToolGateway's route reaches the demo's MCP server and the tool's
//! answer comes back, the denied tool is hidden on the filtered route, a Secret rotation
//! rolls the proxy and the next request carries the new key, and no process the demo
//! started outlives it (after `--exit-when-ready`, a roll, SIGTERM and SIGKILL).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn bin() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_litellm-impl"));
    command.env_remove("RUST_LOG").env_remove("KUBECONFIG");
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `namespace/name` of every AiGateway in the sample manifests the demo installs.
fn sample_gateways() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/manifests");
    let mut names = Vec::new();
    for file in [
        "basic-gateway.yaml",
        "multi-provider-gateway.yaml",
        "guarded-gateway.yaml",
        "config-patched-gateway.yaml",
    ] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        for object in aigateway_testkit::parse_manifests(&text).unwrap() {
            if object["kind"] == "AiGateway" {
                names.push(format!(
                    "{}/{}",
                    object["metadata"]["namespace"].as_str().unwrap(),
                    object["metadata"]["name"].as_str().unwrap()
                ));
            }
        }
    }
    assert_eq!(names.len(), 4, "{names:?}");
    names
}

/// The sample ToolGateway, and its routes with the URLs they publish.
const TOOL_GATEWAY: &str = "mcp-demo/tool-gateway";
const TOOL_ROUTES: &[(&str, &str)] = &[
    (
        "mcp-demo/all-tools",
        "http://tool-gateway.mcp-demo.svc.cluster.local/mcp/mcp_demo__all_tools",
    ),
    (
        "mcp-demo/safe-tools",
        "http://tool-gateway.mcp-demo.svc.cluster.local/mcp/mcp_demo__safe_tools",
    ),
];

/// The last table printed whose header starts with `header`, up to the next blank line.
fn last_table<'a>(stdout: &'a str, header: &str) -> Option<&'a str> {
    let start = stdout
        .match_indices(&format!("\n{header} "))
        .last()
        .map(|(i, _)| i + 1)?;
    let table = &stdout[start..];
    Some(table.split("\n\n").next().unwrap_or(table))
}

/// Whether the last tables printed show the sample ToolGateway Accepted, Programmed and
/// Ready with its URL, and each sample route Ready with the URL it publishes.
fn tools_ready_in_last_table(stdout: &str) -> bool {
    let gateway_ready = last_table(stdout, "TOOLGATEWAY").is_some_and(|table| {
        table.lines().any(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            cells.len() == 6
                && cells[0] == TOOL_GATEWAY
                && cells[2..5] == ["True", "True", "True"]
                && cells[5] == "http://tool-gateway.mcp-demo.svc.cluster.local"
        })
    });
    let routes_ready = last_table(stdout, "TOOLROUTE").is_some_and(|table| {
        TOOL_ROUTES.iter().all(|(route, url)| {
            table.lines().any(|line| {
                let cells: Vec<&str> = line.split_whitespace().collect();
                cells == [route, TOOL_GATEWAY, "True", url]
            })
        })
    });
    gateway_ready && routes_ready
}

/// Whether the last table printed shows each of `gateways` Accepted, Programmed and
/// Ready, with a URL.
fn all_ready_in_last_table(stdout: &str, gateways: &[String]) -> bool {
    let Some(table) = last_table(stdout, "GATEWAY") else {
        return false;
    };
    gateways.iter().all(|gateway| {
        table.lines().any(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            cells.len() == 7
                && cells[0] == gateway
                && cells[3..6] == ["True", "True", "True"]
                && cells[6].starts_with("http://")
                && cells[6].contains(".svc.cluster.local")
        })
    })
}

#[test]
fn exit_when_ready_prints_the_gateways_and_exits_0() {
    let started = Instant::now();
    let output = bin()
        .args([
            "demo",
            "--exit-when-ready",
            "--timeout",
            "60",
            "--rollout-ms",
            "300",
        ])
        .output()
        .unwrap();
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );

    let header = stdout
        .lines()
        .find(|l| l.starts_with("GATEWAY"))
        .unwrap_or_else(|| panic!("no table header:\n{stdout}"));
    let columns: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(
        columns,
        [
            "GATEWAY",
            "CLASS",
            "MODELS",
            "ACCEPTED",
            "PROGRAMMED",
            "READY",
            "URL"
        ],
        "{header}"
    );
    // The last table shows every sample gateway Accepted, Programmed and Ready.
    let gateways = sample_gateways();
    for gateway in &gateways {
        assert!(
            stdout.contains(gateway.as_str()),
            "{gateway} missing:\n{stdout}"
        );
    }
    assert!(
        all_ready_in_last_table(&stdout, &gateways),
        "not every sample gateway is Ready in the last table:\n{stdout}"
    );
    assert!(
        tools_ready_in_last_table(&stdout),
        "the sample ToolGateway and its routes are not Ready with their URLs in the last tables:\n{stdout}"
    );
    // The ToolGateway's config: one mcp_servers entry per route, the filter as LiteLLM
    // reads it.
    assert!(
        stdout.contains("Rendered LiteLLM config of ToolGateway mcp-demo/tool-gateway"),
        "{stdout}"
    );
    assert!(stdout.contains("mcp_demo__safe_tools:"), "{stdout}");
    assert!(stdout.contains("disallowed_tools:"), "{stdout}");
    assert!(stdout.contains("Rendered LiteLLM config of"), "{stdout}");
    assert!(stdout.contains("model_list:"), "{stdout}");
    assert!(stdout.contains("litellm_params:"), "{stdout}");
    assert!(stdout.contains("export KUBECONFIG="), "{stdout}");
    assert!(
        stdout.contains("kubectl get aigatewayclasses,aigateways -A"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Every sample gateway is Ready after"),
        "{stdout}"
    );
    // The plain demo points at the one with traffic.
    assert!(
        stdout.contains("cargo run --release -p litellm-impl-cli -- demo --with-proxy"),
        "{stdout}"
    );
    println!("demo --exit-when-ready took {:?}", started.elapsed());
}

#[test]
fn exit_when_ready_fails_with_a_reason_on_timeout() {
    let output = bin()
        .args([
            "demo",
            "--exit-when-ready",
            "--timeout",
            "0",
            "--rollout-ms",
            "60000",
        ])
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout:\n{}\nstderr:\n{stderr}",
        text(&output.stdout)
    );
    assert!(
        stderr.contains("not every sample gateway and route was Ready after 0 s"),
        "{stderr}"
    );
    let gateways = sample_gateways();
    assert!(
        gateways.iter().any(|g| stderr.contains(&format!("{g}: "))),
        "the reason names no gateway:\n{stderr}"
    );
    assert!(!stderr.contains("Ready=True"), "{stderr}");
}

fn kubectl_available() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A running `demo`; killed on drop so a failing test leaves nothing behind.
struct Demo {
    child: Child,
    stdout: Arc<Mutex<String>>,
}

impl Demo {
    fn start(kubeconfig: &Path) -> Self {
        Self::start_with(kubeconfig, &[])
    }

    fn start_with(kubeconfig: &Path, extra: &[&str]) -> Self {
        let mut command = bin();
        command
            .args(["demo", "--rollout-ms", "300", "--kubeconfig"])
            .arg(kubeconfig)
            .args(extra);
        Self::spawn(command)
    }

    fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // Drain stdout on a thread so the demo never blocks on a full pipe.
        let stdout = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stdout.take().unwrap();
        let sink = stdout.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        Demo { child, stdout }
    }

    fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits until stdout contains `needle`.
    fn wait_for_output(&mut self, needle: &str, limit: Duration) {
        self.wait_until(&format!("{needle:?} in the output"), limit, |out| {
            out.contains(needle)
        });
    }

    /// Waits until `check` holds for stdout.
    fn wait_until(&mut self, what: &str, limit: Duration, check: impl Fn(&str) -> bool) {
        let started = Instant::now();
        while !check(&self.stdout()) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the demo exited with {status}:\n{}", self.stdout());
            }
            assert!(
                started.elapsed() < limit,
                "timed out waiting for {what}:\n{}",
                self.stdout()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `signal` and waits up to `limit` for the exit status.
    fn signal(&mut self, signal: &str, limit: Duration) -> ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap()
                .success()
        );
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < limit,
                "the demo did not exit within {limit:?} of {signal}:\n{}",
                self.stdout()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn kubectl(kubeconfig: &Path, home: &Path, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env("HOME", home)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "kubectl {args:?} failed:\n{}\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

const EXTRA_GATEWAY: &str = "\
apiVersion: runtime.agentic-layer.ai/v1alpha1
kind: AiGateway
metadata:
  name: my-gateway
  namespace: ai-gateway
spec:
  aiModels:
    - provider: openai
      name: gpt-4o
";

/// Runs a plain demo, applies one gateway of the user's (no class name: the default
/// class takes it) with kubectl, waits for it to be Ready, and stops the demo with
/// `signal`.
fn plain_demo_serves_kubectl_until(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig: PathBuf = dir.path().join("demo.kubeconfig");
    let mut demo = Demo::start(&kubeconfig);
    demo.wait_for_output("export KUBECONFIG=", Duration::from_secs(60));
    assert!(
        demo.stdout()
            .contains(&format!("export KUBECONFIG={}", kubeconfig.display())),
        "{}",
        demo.stdout()
    );
    assert!(kubeconfig.exists());

    if kubectl_available() {
        let out = kubectl(
            &kubeconfig,
            dir.path(),
            &["apply", "-f", "-"],
            Some(EXTRA_GATEWAY),
        );
        assert!(
            out.contains("aigateway.runtime.agentic-layer.ai/my-gateway created"),
            "{out}"
        );
        kubectl(
            &kubeconfig,
            dir.path(),
            &[
                "wait",
                "--for=condition=Ready",
                "aigw/my-gateway",
                "-n",
                "ai-gateway",
                "--timeout=60s",
            ],
            None,
        );
        let config = kubectl(
            &kubeconfig,
            dir.path(),
            &[
                "get",
                "configmap",
                "my-gateway-config",
                "-n",
                "ai-gateway",
                "-o",
                "jsonpath={.data.config\\.yaml}",
            ],
            None,
        );
        assert!(config.contains("model: openai/gpt-4o"), "{config}");
        // The demo's table picks the new gateway up too.
        demo.wait_for_output("ai-gateway/my-gateway", Duration::from_secs(30));
    } else {
        println!("SKIPPED the kubectl part: kubectl is not installed (not found on PATH)");
    }
    // Every sample reaches Ready while the demo keeps running.
    let gateways = sample_gateways();
    demo.wait_until(
        "every sample gateway Ready in the table",
        Duration::from_secs(60),
        |out| all_ready_in_last_table(out, &gateways),
    );
    demo.wait_for_output("model_list:", Duration::from_secs(60));

    let status = demo.signal(signal, Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "{status}:\n{}", demo.stdout());
}

#[test]
fn plain_demo_reconciles_a_user_gateway_and_exits_0_on_sigint() {
    plain_demo_serves_kubectl_until("-INT");
}

/// `docker stop`, systemd and `timeout` stop programs with SIGTERM. The demo so far
/// stops only on Ctrl-C (SIGINT): on SIGTERM it dies by the signal, skipping its cleanup
/// (the kubeconfig it wrote to the temp directory stays behind).
#[test]
fn plain_demo_exits_0_on_sigterm() {
    plain_demo_serves_kubectl_until("-TERM");
}

/// The demo's kubeconfig, by default, is a file only its owner can read, in a directory
/// of its own with an unpredictable name (not `$TMPDIR/litellm-impl-demo-<pid>.kubeconfig`,
/// world-readable, which another user could read, or create first as a symlink); the API
/// server listens on loopback only and answers only requests with the token that file
/// holds (a loopback port is open to every user of the machine). Both go when the demo
/// exits. (kubectl itself, with that kubeconfig, is checked by the plain demo tests.)
#[test]
fn the_demo_kubeconfig_is_private_and_its_api_server_wants_the_token() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let mut command = bin();
    command
        .args(["demo", "--rollout-ms", "300"])
        .env("TMPDIR", tmp.path());
    let mut demo = Demo::spawn(command);
    demo.wait_for_output("export KUBECONFIG=", Duration::from_secs(60));
    let stdout = demo.stdout();
    let kubeconfig = PathBuf::from(
        stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("export KUBECONFIG="))
            .unwrap(),
    );
    let dir = kubeconfig.parent().unwrap();
    assert_ne!(dir, tmp.path(), "not directly in the shared temp directory");
    assert!(dir.starts_with(tmp.path()), "{}", kubeconfig.display());
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&kubeconfig), 0o600, "{}", kubeconfig.display());
    assert_eq!(mode(dir), 0o700, "{}", dir.display());

    let url = stdout
        .lines()
        .find_map(|l| l.strip_prefix("In-memory Kubernetes API server: "))
        .unwrap()
        .trim()
        .to_owned();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    // The status code of a GET of the namespaces, taking any certificate.
    let get = |token: Option<&str>| {
        let mut curl = Command::new("curl");
        curl.args(["-sk", "-o", "/dev/null", "-w", "%{http_code}"]);
        if let Some(token) = token {
            curl.args(["-H", &format!("Authorization: Bearer {token}")]);
        }
        let output = curl
            .arg(format!("{url}/api/v1/namespaces"))
            .output()
            .expect("curl is installed");
        text(&output.stdout)
    };
    assert_eq!(get(None), "401");
    assert_eq!(get(Some("guessed")), "401");
    let config = std::fs::read_to_string(&kubeconfig).unwrap();
    let token = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("user: {token: "))
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or_else(|| panic!("no token in the kubeconfig:\n{config}"));
    assert_eq!(get(Some(token)), "200");

    let status = demo.signal("-TERM", Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(!dir.exists(), "{} stays behind", dir.display());
}

// ---------------------------------------------------------------------------------------
// --with-proxy

/// The key the demo puts into every sample namespace's `api-key-secrets`.
const DEMO_KEY: &str = "demo-placeholder-not-a-real-key";

fn venv_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/tmp has a parent")
        .join("litellm-venv")
}

fn venv_arg() -> String {
    venv_dir().display().to_string()
}

/// Processes (not zombies) whose process group is `pgid`, from /proc.
fn processes_in_group(pgid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        let Some((_, after)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        if fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string() {
            found.push(pid);
        }
    }
    found
}

/// Waits until no process of group `pgid` is left.
fn assert_group_gone(pgid: u32, context: &str) {
    let started = Instant::now();
    loop {
        let left = processes_in_group(pgid);
        if left.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{context}: processes {left:?} of LiteLLM's process group {pgid} are still running"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The process group ids of the LiteLLM pods the demo reported for `gateway` (e.g.
/// `AiGateway ai-gateway/ai-gateway`), in order.
fn pod_groups(stdout: &str, gateway: &str) -> Vec<u32> {
    let live = format!("LiteLLM for {gateway} is live after");
    stdout
        .lines()
        .filter(|l| l.starts_with(&live))
        .map(|l| {
            let pid = l.split("(pid ").nth(1).unwrap_or_else(|| panic!("{l}"));
            pid.split(',').next().unwrap().parse().unwrap()
        })
        .collect()
}

const AI_GATEWAY: &str = "AiGateway ai-gateway/ai-gateway";
const TOOL_GATEWAY_POD: &str = "ToolGateway mcp-demo/tool-gateway";

/// The process group of the demo's MCP server.
fn mcp_server_group(stdout: &str) -> u32 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("MCP server (the mcp SDK"))
        .unwrap_or_else(|| panic!("no MCP server line:\n{stdout}"));
    let pid = line
        .split("(pid ")
        .nth(1)
        .unwrap_or_else(|| panic!("{line}"));
    pid.split(',').next().unwrap().parse().unwrap()
}

/// Every process group the demo reported starting: LiteLLM pods and the MCP server.
fn all_groups(stdout: &str) -> Vec<u32> {
    let mut groups = pod_groups(stdout, AI_GATEWAY);
    groups.extend(pod_groups(stdout, TOOL_GATEWAY_POD));
    groups.push(mcp_server_group(stdout));
    groups
}

/// Whether both of the agent's calls were answered.
fn both_answered(stdout: &str) -> bool {
    stdout.contains("Answer through LiteLLM") && stdout.contains("Tool answer through LiteLLM")
}

fn provider_lines(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|l| l.starts_with("fake provider: POST /v1/chat/completions"))
        .collect()
}

#[test]
fn with_proxy_exit_when_ready_answers_through_litellm_with_the_gateways_key() {
    // A value only this run knows: the tool's answer can only contain it if the call
    // went through LiteLLM to the MCP server and back.
    let chosen = format!("tested {} it's", std::process::id());
    let output = bin()
        .args([
            "demo",
            "--with-proxy",
            "--exit-when-ready",
            "--rollout-ms",
            "300",
            "--venv",
            &venv_arg(),
            "--tool-text",
            &chosen,
        ])
        .output()
        .unwrap();
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let gateway_key = aigateway_testkit::fake_provider::key_fingerprint(DEMO_KEY);
    let agent_key = aigateway_testkit::fake_provider::key_fingerprint("demo-agents/demo-agent");
    // The pod got the Secret's key...
    assert!(
        stdout.contains(&format!(
            "env OPENAI_API_KEY from Secret ai-gateway/api-key-secrets key OPENAI_API_KEY: {gateway_key}"
        )),
        "{stdout}"
    );
    // ...the agent sent its pseudo key to the gateway's URL...
    assert!(
        stdout
            .contains("LITELLM_PROXY_API_BASE=http://ai-gateway.ai-gateway.svc.cluster.local.:80"),
        "{stdout}"
    );
    assert!(
        stdout.contains("with LITELLM_PROXY_API_KEY=demo-agents/demo-agent, model gpt-4o-mini"),
        "{stdout}"
    );
    // ...and the provider received the gateway's key, not the agent's.
    let lines = provider_lines(&stdout);
    assert_eq!(
        lines,
        [format!(
            "fake provider: POST /v1/chat/completions model=gpt-4o-mini key={gateway_key}"
        )],
        "{stdout}"
    );
    assert!(!stdout.contains(&format!("key={agent_key}")), "{stdout}");
    // The answer is the provider's, and came back through LiteLLM (its version header).
    assert!(
        stdout.contains(&format!(
            "Answer through LiteLLM {}: Hello from the fake provider (gpt-4o-mini). You said: Say hello to the demo.",
            litellm_impl::settings::LITELLM_VERSION
        )),
        "{stdout}"
    );
    assert!(stdout.contains("curl -s http://127.0.0.1:"), "{stdout}");
    assert!(
        stdout.contains(
            "and the agent's chat completion and MCP tool call through LiteLLM succeeded"
        ),
        "{stdout}"
    );

    // MCP: the agent lists the tools of both routes at the URLs they publish, through
    // the ToolGateway's LiteLLM (which prefixes every tool with the route's key)...
    let (all_route, all_url) = TOOL_ROUTES[0];
    let (safe_route, safe_url) = TOOL_ROUTES[1];
    assert!(
        stdout.contains(&format!(
            "MCP tools/list at {all_url} (status.url of ToolRoute {all_route}, no toolFilter;"
        )),
        "{stdout}"
    );
    assert!(
        stdout
            .contains("  tools: mcp_demo__all_tools-delete_everything, mcp_demo__all_tools-echo\n"),
        "{stdout}"
    );
    // ...the filtered route hides the denied tool...
    assert!(
        stdout.contains(&format!(
            "MCP tools/list at {safe_url} (status.url of ToolRoute {safe_route}, toolFilter deny: delete_everything;"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("  tools: mcp_demo__safe_tools-echo\n"),
        "{stdout}"
    );
    // ...and the tool call on it reaches the MCP server with the chosen text, whose
    // answer comes back through LiteLLM.
    let arguments = serde_json::json!({ "text": chosen });
    assert!(
        stdout.contains(&format!(
            "MCP tools/call mcp_demo__safe_tools-echo {arguments} at {safe_url} (here http://127.0.0.1:"
        )),
        "{stdout}"
    );
    let server_calls: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("MCP server: tools/call"))
        .collect();
    assert_eq!(
        server_calls,
        [format!(
            "MCP server: tools/call echo {{\"text\": \"{chosen}\"}}"
        )],
        "exactly the one call reached the MCP server:\n{stdout}"
    );
    assert!(
        stdout.contains(&format!("Tool answer through LiteLLM: echo: {chosen}\n")),
        "{stdout}"
    );
    // The denied tool cannot be called on the filtered route either (and, as the server's
    // log above shows, never reached the server).
    assert!(
        stdout.contains(
            "MCP tools/call mcp_demo__safe_tools-delete_everything {\"confirm\":true} (denied by the route's toolFilter): refused: "
        ),
        "{stdout}"
    );
    // The commands to repeat the calls go to the same local Service URLs.
    for (method, route) in [
        ("tools/list", "/mcp/mcp_demo__all_tools "),
        ("tools/list", "/mcp/mcp_demo__safe_tools "),
        ("tools/call", "/mcp/mcp_demo__safe_tools "),
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("  curl -s http://127.0.0.1:")
                    && l.contains(route)
                    && l.contains(&format!("\"method\":\"{method}\""))),
            "no curl for {method} at {route}:\n{stdout}"
        );
    }
    assert!(tools_ready_in_last_table(&stdout), "{stdout}");

    // No secret value is printed, even a demo one.
    assert!(!stdout.contains(DEMO_KEY) && !stderr.contains(DEMO_KEY));
    // Nothing the demo started outlives it: one LiteLLM per gateway and the MCP server.
    assert_eq!(pod_groups(&stdout, AI_GATEWAY).len(), 1, "{stdout}");
    assert_eq!(pod_groups(&stdout, TOOL_GATEWAY_POD).len(), 1, "{stdout}");
    let groups = all_groups(&stdout);
    assert_eq!(groups.len(), 3, "{stdout}");
    for group in groups {
        assert_group_gone(group, "after --exit-when-ready");
    }
}

/// What `kubectl -n ai-gateway edit secret api-key-secrets` does: replace the key.
fn rotate_key(kubeconfig: &Path, new_key: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(kubeconfig).unwrap(),
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .unwrap();
        let client = kube::Client::try_from(config).unwrap();
        let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
            kube::Api::namespaced(client, "ai-gateway");
        let patch = serde_json::json!({"stringData": {"OPENAI_API_KEY": new_key}});
        secrets
            .patch(
                "api-key-secrets",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
            .unwrap();
    });
}

#[test]
fn with_proxy_rolls_litellm_on_a_secret_rotation_and_leaves_nothing_after_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("demo.kubeconfig");
    let mut demo = Demo::start_with(&kubeconfig, &["--with-proxy", "--venv", &venv_arg()]);
    let limit = Duration::from_secs(300);
    demo.wait_until("both answers", limit, both_answered);
    let gateway_key = aigateway_testkit::fake_provider::key_fingerprint(DEMO_KEY);
    assert_eq!(
        provider_lines(&demo.stdout()),
        [format!(
            "fake provider: POST /v1/chat/completions model=gpt-4o-mini key={gateway_key}"
        )]
    );

    let rotated = "sk-rotated-demo-key";
    let rotated_key = aigateway_testkit::fake_provider::key_fingerprint(rotated);
    rotate_key(&kubeconfig, rotated);
    // The curl line is the last one printed for an answer.
    demo.wait_until("a second answer after the roll", limit, |out| {
        out.matches("/chat/completions -H").count() == 2
    });
    let stdout = demo.stdout();
    assert!(
        stdout.contains("Rolling LiteLLM for AiGateway ai-gateway/ai-gateway"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "env OPENAI_API_KEY from Secret ai-gateway/api-key-secrets key OPENAI_API_KEY: {rotated_key}"
        )),
        "{stdout}"
    );
    assert_eq!(
        provider_lines(&stdout),
        [
            format!("fake provider: POST /v1/chat/completions model=gpt-4o-mini key={gateway_key}"),
            format!("fake provider: POST /v1/chat/completions model=gpt-4o-mini key={rotated_key}"),
        ],
        "{stdout}"
    );
    // The same Service URL serves before and after the roll.
    let curls: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("curl -s") && l.contains("/chat/completions"))
        .collect();
    assert_eq!(curls.len(), 2, "{stdout}");
    assert_eq!(curls[0], curls[1]);
    let groups = pod_groups(&stdout, AI_GATEWAY);
    assert_eq!(groups.len(), 2, "{stdout}");
    assert_group_gone(groups[0], "after the roll, the old pod");
    assert!(
        !processes_in_group(groups[1]).is_empty(),
        "the new pod runs"
    );
    // The ToolGateway reads no provider key: the rotation does not roll it.
    assert_eq!(pod_groups(&stdout, TOOL_GATEWAY_POD).len(), 1, "{stdout}");
    assert!(!stdout.contains(rotated) && !stdout.contains(DEMO_KEY));

    let status = demo.signal("-TERM", Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{status}:\n{}", demo.stdout());
    let stdout = demo.stdout();
    let mut running = all_groups(&stdout);
    running.retain(|g| *g != groups[0]);
    assert_eq!(running.len(), 3, "{stdout}");
    for group in running {
        assert_group_gone(group, "after SIGTERM");
    }
}

/// A `litellm` (on PATH, reporting the pinned version) that starts a helper process and
/// fails (so does the MCP server, run by the same `python`): `--exit-when-ready` exits 4
/// with the reason in one line, and no helper, each in its pod's process group,
/// outlives the demo.
#[test]
fn with_proxy_stops_what_it_started_when_litellm_fails() {
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = dir.path().join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    let helper_pid = dir.path().join("helper.pid");
    let python = bin_dir.join("python");
    // Asked for package versions (`-c`), it reports the pinned LiteLLM; run as the
    // `litellm` entry point, it leaves a helper behind and fails.
    let script = format!(
        "#!/bin/sh\nif [ \"$1\" = -c ]; then\n  for n in litellm prometheus_client opentelemetry-sdk; do\n    if [ $n = litellm ]; then echo \"$n {}\"; else echo \"$n 1.0\"; fi\n  done\n  exit 0\nfi\nsleep 300 &\necho $! >> {}\necho 'fake litellm fails on purpose'\nexit 1\n",
        litellm_impl_cli::local::install::PINNED_LITELLM_VERSION,
        helper_pid.display()
    );
    let write_exec = |path: &Path, text: &str| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    write_exec(&python, &script);
    write_exec(
        &bin_dir.join("litellm"),
        &format!("#!{}\n# entry point\n", python.display()),
    );
    let output = bin()
        .args([
            "demo",
            "--with-proxy",
            "--exit-when-ready",
            "--rollout-ms",
            "300",
        ])
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
        .env("HOME", dir.path())
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .output()
        .unwrap();
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(4),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains(&format!(
            "({}, on PATH)",
            litellm_impl::settings::LITELLM_VERSION
        )),
        "{stdout}"
    );
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("{stderr}"));
    // Whichever of the LiteLLM pods or the MCP server is found failed first.
    assert!(
        [
            "ai-gateway/ai-gateway",
            "mcp-demo/tool-gateway",
            "mcp-demo/demo-tools"
        ]
        .iter()
        .any(|pod| error.contains(&format!("{pod} exited")))
            && error.contains("before it was live; last log line: fake litellm fails on purpose"),
        "{error}"
    );
    assert!(!dir.path().join("cache").exists(), "nothing installed");
    let helpers: Vec<u32> = std::fs::read_to_string(&helper_pid)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert!(!helpers.is_empty());
    for pid in helpers {
        assert_process_gone(pid);
    }
}

/// Waits until process `pid` is gone (or a zombie).
fn assert_process_gone(pid: u32) {
    let started = Instant::now();
    while Path::new(&format!("/proc/{pid}/stat")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the pod's helper {pid} outlived the demo"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `kill -9` of the demo runs no cleanup code: the LiteLLM pods and the MCP server must
/// still not outlive it.
#[test]
fn with_proxy_leaves_no_litellm_behind_when_killed() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("demo.kubeconfig");
    let mut demo = Demo::start_with(&kubeconfig, &["--with-proxy", "--venv", &venv_arg()]);
    demo.wait_until("both answers", Duration::from_secs(300), both_answered);
    let groups = all_groups(&demo.stdout());
    assert_eq!(groups.len(), 3, "{}", demo.stdout());
    for group in &groups {
        assert!(!processes_in_group(*group).is_empty(), "group {group} runs");
    }
    let status = demo.signal("-KILL", Duration::from_secs(10));
    assert_eq!(status.code(), None, "killed by a signal");
    for group in groups {
        assert_group_gone(group, "after SIGKILL of the demo");
    }
}
