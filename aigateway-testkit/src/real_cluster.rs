//! A real Kubernetes control plane for end-to-end tests: etcd, kube-apiserver (RBAC,
//! TLS with a real CA, an audit log of every request), kube-controller-manager,
//! kube-scheduler and kwok, on 127.0.0.1.
//!
//! The processes are built from Go modules and started by the project's
//! `scripts/control-plane` (embedded here, so a test needs no path to it).
//! [`RealCluster::start`] builds the binaries on first use (cached under `~/.cache`,
//! many minutes the first time), starts a fresh control plane in its own directory and
//! stops exactly those processes when dropped.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use aigateway_testkit::real_cluster::RealCluster;
//!
//! let cluster = RealCluster::start()?;
//! let admin = cluster.admin_client().await?;
//! let mark = cluster.audit_log().mark();
//! // ... run an operator as a ServiceAccount ...
//! let writes = cluster
//!     .audit_log()
//!     .writes_since(mark)?
//!     .into_iter()
//!     .filter(|e| e.user == "system:serviceaccount:ns:operator")
//!     .count();
//! # let _ = (admin, writes); Ok(()) }
//! ```
//!
//! Tests that share one machine should not run two control planes at once: use
//! [`RealCluster::exclusive`] to serialise them within a test binary.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use serde::Deserialize;

/// The control-plane script, embedded so tests run it from any working directory.
const SCRIPT: &str = include_str!("../../scripts/control-plane");

/// What went wrong while starting or using a real control plane.
#[derive(Debug, thiserror::Error)]
pub enum RealClusterError {
    /// The script failed; its last line says why.
    #[error("scripts/control-plane {verb} failed: {reason}")]
    Script {
        /// `build`, `up` or `down`.
        verb: &'static str,
        /// The script's last line of output.
        reason: String,
    },
    /// A file of the control plane could not be read or written.
    #[error("{what} ({path}): {source}; check the directory's permissions and free space")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A kube client could not be built or a request failed.
    #[error("{what}: {source}")]
    Kube {
        /// What was being done.
        what: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The kubeconfig could not be read.
    #[error("reading the control plane's kubeconfig failed: {0}")]
    Kubeconfig(String),
    /// CustomResourceDefinitions did not become Established in time.
    #[error("CRDs not Established after 60 s: {0}; check the CRDs' status conditions")]
    CrdsNotEstablished(String),
    /// A component could not be stopped, started or signalled.
    #[error(
        "control-plane component {name}: {reason}; see its log under the control plane's logs/"
    )]
    Component {
        /// `etcd`, `kube-apiserver`, ...
        name: String,
        /// What failed.
        reason: String,
    },
    /// etcd's JSON gateway refused or failed a request.
    #[error("etcd {0}; check that etcd runs (logs/etcd.log)")]
    Etcd(String),
}

type Result<T, E = RealClusterError> = std::result::Result<T, E>;

/// A running control plane; dropping it stops its processes.
pub struct RealCluster {
    dir: PathBuf,
    script: PathBuf,
    server: String,
}

static EXCLUSIVE: Mutex<()> = Mutex::new(());

impl RealCluster {
    /// Serialises control planes within one test binary (two at once would compete for
    /// two cores). A panicking holder does not poison later tests.
    pub fn exclusive() -> MutexGuard<'static, ()> {
        EXCLUSIVE
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Builds the binaries if needed and starts a fresh control plane in a new
    /// directory under the system temp dir (kept after a failure for its logs).
    pub fn start() -> Result<Self> {
        Self::start_with_env(&[])
    }

    /// Like [`RealCluster::start`], with environment variables for `scripts/control-plane
    /// up`, e.g. `CONTROLLER_MANAGER_QPS` (kube-controller-manager's client rate limit,
    /// 20 by default as in Kubernetes).
    pub fn start_with_env(env: &[(&str, &str)]) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "aigateway-control-plane-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        ));
        fs::create_dir_all(&dir).map_err(|source| RealClusterError::Io {
            what: "creating the control plane's directory",
            path: dir.clone(),
            source,
        })?;
        let script = dir.join("control-plane");
        fs::write(&script, SCRIPT).map_err(|source| RealClusterError::Io {
            what: "writing the control-plane script",
            path: script.clone(),
            source,
        })?;
        run_script(&script, "build", &[], &[])?;
        run_script(&script, "up", &[&dir], env)?;
        let env = read_env(&dir.join("cluster.env"))?;
        let server = env.get("SERVER").cloned().unwrap_or_default();
        Ok(Self {
            dir,
            script,
            server,
        })
    }

    /// The directory holding the kubeconfig, certificates, logs and audit log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The API server's URL (`https://127.0.0.1:PORT`).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The admin kubeconfig (group `system:masters`).
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// A `kubectl` command with the admin kubeconfig.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new("kubectl");
        command.env("KUBECONFIG", self.kubeconfig());
        command
    }

    /// Waits up to 60 s until every CustomResourceDefinition is Established. A bare
    /// `kubectl wait` fails at once on a CRD whose status the API server has not written
    /// yet, so it is retried until it succeeds.
    pub fn wait_crds_established(&self) -> Result<()> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let output = self
                .kubectl()
                .args([
                    "wait",
                    "--for=condition=Established",
                    "crd",
                    "--all",
                    "--timeout=5s",
                ])
                .output()
                .map_err(|source| RealClusterError::Io {
                    what: "running kubectl wait",
                    path: self.kubeconfig(),
                    source,
                })?;
            if output.status.success() {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                let reason = String::from_utf8_lossy(&output.stderr);
                return Err(RealClusterError::CrdsNotEstablished(
                    reason.lines().last().unwrap_or_default().to_owned(),
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
    }

    /// A kube client authenticated as the admin.
    pub async fn admin_client(&self) -> Result<kube::Client> {
        client_from_file(&self.kubeconfig()).await
    }

    /// Writes a kubeconfig that authenticates as ServiceAccount `namespace/name` with a
    /// token from the TokenRequest API (valid for `seconds`), and returns its path. The
    /// ServiceAccount must exist. RBAC applies to every request made with it.
    pub async fn service_account_kubeconfig(
        &self,
        namespace: &str,
        name: &str,
        seconds: i64,
    ) -> Result<PathBuf> {
        let admin = self.admin_client().await?;
        let accounts: Api<ServiceAccount> = Api::namespaced(admin, namespace);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: vec!["https://kubernetes.default.svc.cluster.local".into()],
                expiration_seconds: Some(seconds),
                ..Default::default()
            },
            ..Default::default()
        };
        let token = accounts
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .map_err(|source| RealClusterError::Kube {
                what: format!("requesting a token for ServiceAccount {namespace}/{name}"),
                source,
            })?
            .status
            .map(|status| status.token)
            .unwrap_or_default();
        let file = self.dir.join(format!("sa-{namespace}-{name}.kubeconfig"));
        let user = format!("system:serviceaccount:{namespace}:{name}");
        let config = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "control-plane", "cluster": {
                "server": self.server,
                "certificate-authority": self.dir.join("pki/ca.crt"),
            }}],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": "sa", "context": {"cluster": "control-plane", "user": user, "namespace": namespace}}],
            "current-context": "sa",
        });
        fs::write(&file, config.to_string()).map_err(|source| RealClusterError::Io {
            what: "writing a ServiceAccount kubeconfig",
            path: file.clone(),
            source,
        })?;
        Ok(file)
    }

    /// A kube client authenticated as ServiceAccount `namespace/name` (see
    /// [`RealCluster::service_account_kubeconfig`]).
    pub async fn service_account_client(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<kube::Client> {
        let file = self
            .service_account_kubeconfig(namespace, name, 3600)
            .await?;
        client_from_file(&file).await
    }

    /// The API server's audit log: one record per request.
    pub fn audit_log(&self) -> AuditLog {
        AuditLog {
            path: self.dir.join("audit.log"),
        }
    }

    /// The last lines of a component's log (`etcd`, `kube-apiserver`, ...), for
    /// assertion messages.
    pub fn log_tail(&self, component: &str, lines: usize) -> String {
        let text = fs::read_to_string(self.dir.join("logs").join(format!("{component}.log")))
            .unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for RealCluster {
    fn drop(&mut self) {
        if let Err(error) = run_script(&self.script, "down", &[&self.dir], &[]) {
            eprintln!("{error}");
        } else if !std::thread::panicking() {
            // Keep the directory (logs, audit log) when a test failed.
            let _ = fs::remove_dir_all(&self.dir);
        } else {
            eprintln!(
                "control plane files kept for inspection: {}",
                self.dir.display()
            );
        }
    }
}

fn run_script(
    script: &Path,
    verb: &'static str,
    args: &[&Path],
    env: &[(&str, &str)],
) -> Result<()> {
    let output = Command::new("bash")
        .arg(script)
        .arg(verb)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| RealClusterError::Io {
            what: "running bash",
            path: script.to_path_buf(),
            source,
        })?;
    // Progress of a (long) first build is worth seeing in the test's output.
    let stderr = String::from_utf8_lossy(&output.stderr);
    for line in stderr.lines().filter(|l| l.starts_with("control-plane:")) {
        eprintln!("{line}");
    }
    if output.status.success() {
        return Ok(());
    }
    let reason = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("control-plane: error:"))
        .or_else(|| stderr.lines().last())
        .unwrap_or("no output")
        .trim_start_matches("control-plane: error: ")
        .to_string();
    Err(RealClusterError::Script { verb, reason })
}

fn read_env(file: &Path) -> Result<BTreeMap<String, String>> {
    let text = fs::read_to_string(file).map_err(|source| RealClusterError::Io {
        what: "reading the control plane's cluster.env",
        path: file.to_path_buf(),
        source,
    })?;
    Ok(text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

async fn client_from_file(file: &Path) -> Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(file)
        .map_err(|error| RealClusterError::Kubeconfig(error.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .map_err(|error| RealClusterError::Kubeconfig(error.to_string()))?;
    kube::Client::try_from(config).map_err(|source| RealClusterError::Kube {
        what: format!("building a client from {}", file.display()),
        source,
    })
}

/// The API server's audit log (JSON lines, level `Metadata`, one record per request at
/// stage `ResponseComplete`).
pub struct AuditLog {
    path: PathBuf,
}

/// A position in the audit log: records after it are "since" the mark.
/// [`AuditMark::default`] is the start of the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct AuditMark(u64);

/// One request as the API server recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// The authenticated user, e.g. `system:serviceaccount:ns:name` or `admin`.
    pub user: String,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, ...
    pub verb: String,
    /// The resource (`deployments`, `aigateways`, ...), empty for non-resource URLs.
    pub resource: String,
    /// The subresource (`status`, `scale`, ...), empty when none.
    pub subresource: String,
    /// The object's namespace, empty for cluster-scoped objects and lists.
    pub namespace: String,
    /// The object's name, empty for lists and creates without a name in the URL.
    pub name: String,
    /// The HTTP status code of the response.
    pub code: u16,
    /// The request URI.
    pub uri: String,
    /// When the API server received the request (RFC 3339, microseconds).
    pub received: String,
    /// When the response completed (RFC 3339, microseconds).
    pub completed: String,
}

impl AuditEvent {
    /// Whether the request could change stored state.
    pub fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        )
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEvent {
    #[serde(default)]
    stage: String,
    #[serde(default)]
    verb: String,
    /// `requestURI`, which `camelCase` would spell `requestUri`.
    #[serde(default, rename = "requestURI")]
    request_uri: String,
    #[serde(default)]
    user: RawUser,
    #[serde(default)]
    object_ref: Option<RawObjectRef>,
    #[serde(default)]
    response_status: Option<RawStatus>,
    #[serde(default)]
    request_received_timestamp: String,
    #[serde(default)]
    stage_timestamp: String,
}

#[derive(Deserialize, Default)]
struct RawUser {
    #[serde(default)]
    username: String,
}

#[derive(Deserialize, Default)]
struct RawObjectRef {
    #[serde(default)]
    resource: String,
    #[serde(default)]
    subresource: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize, Default)]
struct RawStatus {
    #[serde(default)]
    code: u16,
}

impl AuditLog {
    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current end of the log.
    pub fn mark(&self) -> AuditMark {
        AuditMark(fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0))
    }

    /// Every completed request recorded after `mark`.
    pub fn since(&self, mark: AuditMark) -> Result<Vec<AuditEvent>> {
        let io = |source| RealClusterError::Io {
            what: "reading the audit log",
            path: self.path.clone(),
            source,
        };
        let mut file = fs::File::open(&self.path).map_err(io)?;
        file.seek(SeekFrom::Start(mark.0)).map_err(io)?;
        let mut events = Vec::new();
        for line in BufReader::new(file.take(u64::MAX)).lines() {
            let line = line.map_err(io)?;
            // The last line may be half written; it is read again next time.
            let Ok(raw) = serde_json::from_str::<RawEvent>(&line) else {
                continue;
            };
            if raw.stage != "ResponseComplete" {
                continue;
            }
            let object = raw.object_ref.unwrap_or_default();
            events.push(AuditEvent {
                user: raw.user.username,
                verb: raw.verb,
                resource: object.resource,
                subresource: object.subresource,
                namespace: object.namespace,
                name: object.name,
                code: raw.response_status.map(|s| s.code).unwrap_or_default(),
                uri: raw.request_uri,
                received: raw.request_received_timestamp,
                completed: raw.stage_timestamp,
            });
        }
        Ok(events)
    }

    /// Write requests (create, update, patch, delete) recorded after `mark`.
    pub fn writes_since(&self, mark: AuditMark) -> Result<Vec<AuditEvent>> {
        Ok(self
            .since(mark)?
            .into_iter()
            .filter(AuditEvent::is_write)
            .collect())
    }

    /// Requests recorded after `mark`, counted by user.
    pub fn count_by_user(&self, mark: AuditMark) -> Result<BTreeMap<String, usize>> {
        let mut counts = BTreeMap::new();
        for event in self.since(mark)? {
            *counts.entry(event.user).or_insert(0) += 1;
        }
        Ok(counts)
    }
}

/// What a fault test needs from the control plane's processes: stop and start one
/// component with the command line it ran with, pause and resume it, compact etcd, and
/// keep one control plane for every test of a binary.
///
/// ```no_run
/// # fn demo() -> Result<(), aigateway_testkit::real_cluster::RealClusterError> {
/// use std::time::Duration;
/// use aigateway_testkit::real_cluster::RealCluster;
///
/// let cluster = RealCluster::start()?;
/// let stopped = cluster.stop_component("kube-apiserver")?;
/// std::thread::sleep(Duration::from_secs(20));
/// cluster.start_component(stopped)?;
/// cluster.wait_api_server_ready(Duration::from_secs(90))?;
/// # Ok(()) }
/// ```
impl RealCluster {
    /// The pid of component `name` (`etcd`, `kube-apiserver`, `kube-controller-manager`,
    /// `kube-scheduler`, `kwok`) as the control plane recorded it.
    pub fn component_pid(&self, name: &str) -> Result<u32> {
        let file = self.dir.join("pids");
        let text = fs::read_to_string(&file).map_err(|source| RealClusterError::Io {
            what: "reading the control plane's pids",
            path: file.clone(),
            source,
        })?;
        text.lines()
            .filter_map(|line| line.split_once(' '))
            .filter(|(component, _)| *component == name)
            .find_map(|(_, pid)| pid.trim().parse().ok())
            .ok_or_else(|| RealClusterError::Component {
                name: name.to_owned(),
                reason: format!("not recorded in {}", file.display()),
            })
    }

    /// Stops component `name` and waits until it is gone: SIGTERM, then SIGKILL after
    /// 10 s, as a kubelet with a short grace period does (kube-apiserver stops listening
    /// at once but may take a minute to finish in-flight requests). Returns what
    /// [`RealCluster::start_component`] needs to start it again as it ran.
    pub fn stop_component(&self, name: &str) -> Result<StoppedComponent> {
        let pid = self.component_pid(name)?;
        let cmdline =
            fs::read(format!("/proc/{pid}/cmdline")).map_err(|source| RealClusterError::Io {
                what: "reading a component's command line",
                path: PathBuf::from(format!("/proc/{pid}/cmdline")),
                source,
            })?;
        let command: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|arg| !arg.is_empty())
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .collect();
        signal(pid, "TERM", name)?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while process_runs(pid) {
            if std::time::Instant::now() > deadline {
                signal(pid, "KILL", name)?;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Ok(StoppedComponent {
            name: name.to_owned(),
            command,
        })
    }

    /// Starts a stopped component again with the same command line, its output appended
    /// to the same log; the control plane stops it like the others. Returns its pid.
    pub fn start_component(&self, stopped: StoppedComponent) -> Result<u32> {
        use std::os::unix::process::CommandExt;
        let log = self.dir.join("logs").join(format!("{}.log", stopped.name));
        let open = || {
            fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&log)
                .map_err(|source| RealClusterError::Io {
                    what: "opening a component's log",
                    path: log.clone(),
                    source,
                })
        };
        let (program, args) =
            stopped
                .command
                .split_first()
                .ok_or_else(|| RealClusterError::Component {
                    name: stopped.name.clone(),
                    reason: "its command line was empty".to_owned(),
                })?;
        let mut child = Command::new(program)
            .args(args)
            // Its own process group: a signal to the test's group does not reach it.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(open()?)
            .stderr(open()?)
            .spawn()
            .map_err(|source| RealClusterError::Io {
                what: "starting a component again",
                path: PathBuf::from(program),
                source,
            })?;
        let pid = child.id();
        // Reaped as soon as it exits, so that `down` does not wait for a zombie.
        std::thread::spawn(move || child.wait());
        let file = self.dir.join("pids");
        let text = fs::read_to_string(&file).unwrap_or_default();
        let mut lines: Vec<String> = text
            .lines()
            .filter(|line| line.split_once(' ').map(|(n, _)| n) != Some(stopped.name.as_str()))
            .map(str::to_owned)
            .collect();
        lines.push(format!("{} {pid}", stopped.name));
        fs::write(&file, lines.join("\n") + "\n").map_err(|source| RealClusterError::Io {
            what: "recording a restarted component's pid",
            path: file,
            source,
        })?;
        Ok(pid)
    }

    /// Freezes component `name` (SIGSTOP): it keeps its connections but answers nothing.
    pub fn pause_component(&self, name: &str) -> Result<()> {
        signal(self.component_pid(name)?, "STOP", name)
    }

    /// Lets a paused component run again (SIGCONT).
    pub fn resume_component(&self, name: &str) -> Result<()> {
        signal(self.component_pid(name)?, "CONT", name)
    }

    /// Waits until the API server answers `/readyz` (through `kubectl get --raw`).
    pub fn wait_api_server_ready(&self, limit: std::time::Duration) -> Result<()> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let output = self
                .kubectl()
                .args(["get", "--raw", "/readyz", "--request-timeout=5s"])
                .output()
                .map_err(|source| RealClusterError::Io {
                    what: "running kubectl get --raw /readyz",
                    path: self.kubeconfig(),
                    source,
                })?;
            if output.status.success() {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(RealClusterError::Component {
                    name: "kube-apiserver".to_owned(),
                    reason: format!(
                        "not ready after {limit:?}: {}",
                        String::from_utf8_lossy(&output.stderr).trim()
                    ),
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
    }

    /// Compacts etcd's history up to its current revision (physically), so that nothing
    /// older can be read or watched from etcd any more; returns that revision.
    pub fn compact_etcd(&self) -> Result<u64> {
        let env = read_env(&self.dir.join("cluster.env"))?;
        let etcd = env.get("ETCD").cloned().unwrap_or_default();
        let address = etcd.trim_start_matches("http://").to_owned();
        // etcd's JSON gateway: a range over one key answers with the current revision.
        let range = etcd_post(&address, "/v3/kv/range", r#"{"key":"AA=="}"#)?;
        let revision: u64 = range
            .pointer("/header/revision")
            .and_then(|r| r.as_str())
            .and_then(|r| r.parse().ok())
            .ok_or_else(|| RealClusterError::Etcd(format!("no revision in {range}")))?;
        etcd_post(
            &address,
            "/v3/kv/compaction",
            &format!(r#"{{"revision":"{revision}","physical":true}}"#),
        )?;
        Ok(revision)
    }

    /// Stops this control plane when the current process exits, however it exits: for a
    /// control plane kept in a `static` and shared by the tests of one binary (statics are
    /// never dropped). A watchdog process runs `down` then and removes the directory,
    /// unless [`RealCluster::keep_files`] was called.
    pub fn stop_when_process_exits(&self) -> Result<()> {
        let watchdog = r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done
bash "$2" down "$3" >/dev/null 2>&1
[ -e "$3/keep" ] || rm -rf "$3""#;
        Command::new("setsid")
            .args(["bash", "-c", watchdog, "watchdog"])
            .arg(std::process::id().to_string())
            .arg(&self.script)
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| RealClusterError::Io {
                what: "starting the control plane's watchdog (setsid bash)",
                path: self.dir.clone(),
                source,
            })?;
        Ok(())
    }

    /// Keeps the directory (logs, audit log) after the control plane stops, e.g. once a
    /// test sharing it failed.
    pub fn keep_files(&self) {
        let _ = fs::write(self.dir.join("keep"), "");
        eprintln!(
            "control plane files kept for inspection: {}",
            self.dir.display()
        );
    }
}

/// A control-plane component that [`RealCluster::stop_component`] stopped.
#[derive(Debug, Clone)]
pub struct StoppedComponent {
    name: String,
    command: Vec<String>,
}

fn signal(pid: u32, signal: &str, name: &str) -> Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .map_err(|source| RealClusterError::Io {
            what: "running kill",
            path: PathBuf::from("kill"),
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(RealClusterError::Component {
            name: name.to_owned(),
            reason: format!("kill -{signal} {pid} failed"),
        })
    }
}

/// Whether `pid` runs (a zombie does not).
fn process_runs(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
            Some(state != 'Z' && state != 'X')
        })
        .unwrap_or(false)
}

/// A POST of `body` to etcd's JSON gateway at `address` (`127.0.0.1:PORT`); the answer.
fn etcd_post(address: &str, path: &str, body: &str) -> Result<serde_json::Value> {
    use std::io::Write;
    let fail = |what: String| RealClusterError::Etcd(format!("POST {path}: {what}"));
    let mut stream =
        std::net::TcpStream::connect(address).map_err(|e| fail(format!("connect: {e}")))?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .map_err(|e| fail(e.to_string()))?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| fail(format!("write: {e}")))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| fail(format!("read: {e}")))?;
    let (head, payload) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| fail("no HTTP response".to_owned()))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(fail(format!(
            "{}: {payload}",
            head.lines().next().unwrap_or("")
        )));
    }
    // A chunked answer: the JSON object sits between the chunk sizes.
    let json = payload
        .find('{')
        .and_then(|start| payload.rfind('}').map(|end| &payload[start..=end]))
        .ok_or_else(|| fail(format!("no JSON in {payload}")))?;
    serde_json::from_str(json).map_err(|e| fail(format!("{e}: {json}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_log_reads_completed_requests_after_a_mark_and_skips_partial_lines() {
        let dir = std::env::temp_dir().join(format!("audit-{}", uuid::Uuid::new_v4().simple()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.log");
        let line = |user: &str, verb: &str, stage: &str| {
            format!(
                r#"{{"stage":"{stage}","verb":"{verb}","requestURI":"/api/v1/namespaces/a/configmaps/x","user":{{"username":"{user}"}},"objectRef":{{"resource":"configmaps","namespace":"a","name":"x"}},"responseStatus":{{"code":200}},"requestReceivedTimestamp":"t0","stageTimestamp":"t1"}}"#
            )
        };
        fs::write(
            &path,
            format!("{}\n", line("admin", "create", "ResponseComplete")),
        )
        .unwrap();
        let log = AuditLog { path: path.clone() };
        let mark = log.mark();
        let more = format!(
            "{}\n{}\n{}\n{{\"stage\":\"Resp",
            line("op", "patch", "ResponseComplete"),
            line("op", "get", "ResponseComplete"),
            line("op", "watch", "ResponseStarted"),
        );
        let mut file = fs::OpenOptions::new().append(true).open(&path).unwrap();
        std::io::Write::write_all(&mut file, more.as_bytes()).unwrap();
        let events = log.since(mark).unwrap();
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(log.writes_since(mark).unwrap()[0].verb, "patch");
        assert_eq!(log.count_by_user(AuditMark(0)).unwrap()["op"], 2);
        assert_eq!(events[0].namespace, "a");
        assert_eq!(events[0].uri, "/api/v1/namespaces/a/configmaps/x");
        fs::remove_dir_all(dir).unwrap();
    }
}
