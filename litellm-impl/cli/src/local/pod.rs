//! Running a gateway's pod on this machine, as a kubelet would run it on a node: the
//! container's command with its env resolved from Secrets and ConfigMaps, its volumes
//! materialised as directories, and its port mapped to a free loopback port.
//!
//! The process runs in its own process group; [`LocalPod::stop`] (or dropping the
//! [`LocalPod`]) ends the whole group, so nothing it started outlives it. On Linux the
//! process is also killed when the thread that started it dies (`PR_SET_PDEATHSIG`), so
//! even a SIGKILL of the parent leaves no LiteLLM running (processes LiteLLM itself
//! started are covered only by the group kill).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, EnvVar, PodTemplateSpec};
use tokio::process::{Child, Command};

use litellm_impl::ObjectLookup;
use litellm_impl::names;

/// Why a pod cannot run here (the messages read like the kubelet's reasons).
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    /// The pod template has no container.
    #[error("the pod template of {pod} has no container")]
    NoContainer {
        /// `namespace/name` of the workload.
        pod: String,
    },
    /// The container has no command.
    #[error("container {container} of {pod} has no command")]
    NoCommand {
        /// `namespace/name` of the workload.
        pod: String,
        /// The container.
        container: String,
    },
    /// A referenced Secret or ConfigMap (or one of its keys) is missing.
    #[error(
        "{pod} would not start (CreateContainerConfigError): {kind} {namespace}/{name}{} not found; create it or mark the reference optional",
        key.as_ref().map(|k| format!(" key {k}")).unwrap_or_default()
    )]
    MissingReference {
        /// `namespace/name` of the workload.
        pod: String,
        /// `Secret` or `ConfigMap`.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The key, for a single-key reference.
        key: Option<String>,
    },
    /// Something in the pod template this local runner does not emulate.
    #[error("{pod} uses {what}, which the local runner does not support")]
    Unsupported {
        /// `namespace/name` of the workload.
        pod: String,
        /// What it uses.
        what: String,
    },
    /// A file or directory could not be written.
    #[error("could not prepare {path} for {pod}: {source}")]
    Io {
        /// `namespace/name` of the workload.
        pod: String,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The process could not start.
    #[error("could not start {program} for {pod}: {source}")]
    Spawn {
        /// `namespace/name` of the workload.
        pod: String,
        /// The program.
        program: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The process exited before answering its liveness probe.
    #[error("{pod} exited ({status}) before it was live; last log line: {last_line}")]
    Exited {
        /// `namespace/name` of the workload.
        pod: String,
        /// The exit status.
        status: String,
        /// The last line of its log.
        last_line: String,
    },
    /// The liveness probe did not answer in time.
    #[error("{pod} was not live within {seconds} s; last log line: {last_line}")]
    NotLive {
        /// `namespace/name` of the workload.
        pod: String,
        /// The limit.
        seconds: u64,
        /// The last line of its log.
        last_line: String,
    },
}

/// An env var of the container that came from a Secret: its name and where from, never
/// its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretEnv {
    /// The variable.
    pub var: String,
    /// The Secret it was read from.
    pub secret: String,
    /// The key in that Secret.
    pub key: String,
    /// [`aigateway_testkit::fake_provider::key_fingerprint`] of its value.
    pub fingerprint: String,
}

/// What the container gets: program, arguments, env and files, resolved.
#[derive(Clone, Debug)]
pub struct ContainerPlan {
    /// `namespace/name` of the workload, for messages.
    pub pod: String,
    /// The command's program (resolved against the PATH the pod gets).
    pub program: String,
    /// The command's arguments after the program, then the container's args, with
    /// mount paths and the container port mapped.
    pub args: Vec<String>,
    /// The environment, in the kubelet's order of precedence, with mount paths mapped.
    pub env: BTreeMap<String, String>,
    /// Which variables came from Secrets.
    pub secret_env: Vec<SecretEnv>,
    /// Variables of the pod template left out because they would choose what code the
    /// process loads here (see [`is_loader_variable`]).
    pub ignored_env: Vec<String>,
    /// Mount path -> files (name, content) to materialise there (ConfigMap volumes;
    /// emptyDir volumes have none).
    pub mounts: BTreeMap<String, Vec<(String, String)>>,
}

/// A ConfigMap key used as a file name must be one path component (the API server
/// enforces `[-._a-zA-Z0-9]+`; a hostile store might not).
fn is_plain_file_name(key: &str) -> bool {
    !key.is_empty()
        && key != "."
        && key != ".."
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Kubernetes `$(VAR)` expansion: defined variables are replaced, `$$` is `$`, anything
/// else stays as written.
///
/// ```
/// use std::collections::BTreeMap;
/// use litellm_impl_cli::local::pod::expand;
/// let env = BTreeMap::from([("A".to_owned(), "x".to_owned())]);
/// assert_eq!(expand("$(A)-$(B)-$$(A)", &env), "x-$(B)-$(A)");
/// ```
pub fn expand(value: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(after) = after.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
            && let Some(v) = env.get(&inner[..end])
        {
            out.push_str(v);
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Variables that choose which code a process loads, or from where, besides
/// `LD_*`, `DYLD_*` and `PYTHON*`: glibc's list of variables it ignores in setuid
/// programs for that reason (`sysdeps/generic/unsecvars.h`), the shells' startup files,
/// Node's options (LiteLLM may start Node for Prisma), and `PATH` and `HOME`, which the
/// local runner sets itself.
const LOADER_VARIABLES: &[&str] = &[
    "GCONV_PATH",
    "GETCONF_DIR",
    "GLIBC_TUNABLES",
    "HOSTALIASES",
    "LOCALDOMAIN",
    "LOCPATH",
    "MALLOC_TRACE",
    "NIS_PATH",
    "NLSPATH",
    "RESOLV_HOST_CONF",
    "RES_OPTIONS",
    "TMPDIR",
    "TZDIR",
    "BASH_ENV",
    "ENV",
    "NODE_OPTIONS",
    "NODE_PATH",
    "PATH",
    "HOME",
];

/// Whether the variable `name` would let a pod template choose what code a process
/// started on this machine loads: the dynamic loader's (`LD_PRELOAD`,
/// `LD_LIBRARY_PATH`, every `LD_*` and macOS's `DYLD_*`), Python's (every `PYTHON*`
/// variable, which `python -E` ignores: `PYTHONPATH`, `PYTHONHOME`, `PYTHONSTARTUP`,
/// `PYTHONUSERBASE`, `PYTHONWARNINGS`, `PYTHONBREAKPOINT` all import code), the other
/// variables glibc ignores in setuid programs (`GCONV_PATH`, `LOCPATH`, `TMPDIR`, ...),
/// the shells' startup files (`BASH_ENV`, `ENV`), Node's `NODE_OPTIONS` and `NODE_PATH`,
/// and `PATH` and `HOME`. In a pod they act inside the container's image; run here, they
/// would act on this machine's programs, so the local runner never takes them from a
/// Deployment.
///
/// ```
/// use litellm_impl_cli::local::pod::is_loader_variable;
/// assert!(is_loader_variable("LD_PRELOAD"));
/// assert!(is_loader_variable("PYTHONPATH"));
/// assert!(!is_loader_variable("OPENAI_API_KEY"));
/// ```
pub fn is_loader_variable(name: &str) -> bool {
    ["LD_", "DYLD_", "PYTHON"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
        || LOADER_VARIABLES.contains(&name)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Resolves the LiteLLM container of `template` (workload `namespace/name`) as the
/// kubelet would: `envFrom` then `env` (later wins, `$(VAR)` expanded), Secret and
/// ConfigMap references read through `lookup` (a missing non-optional one stops the pod,
/// as on a node), ConfigMap volumes as files.
pub fn plan(
    template: &PodTemplateSpec,
    namespace: &str,
    name: &str,
    lookup: &dyn ObjectLookup,
) -> Result<ContainerPlan, PodError> {
    let pod = format!("{namespace}/{name}");
    let spec = template.spec.as_ref();
    let containers = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    let container: &Container = containers
        .iter()
        .find(|c| c.name == names::CONTAINER_NAME)
        .or(containers.first())
        .ok_or_else(|| PodError::NoContainer { pod: pod.clone() })?;
    let missing = |kind, reference: &str, key: Option<&str>| PodError::MissingReference {
        pod: pod.clone(),
        kind,
        namespace: namespace.to_owned(),
        name: reference.to_owned(),
        key: key.map(str::to_owned),
    };
    let unsupported = |what: String| PodError::Unsupported {
        pod: pod.clone(),
        what,
    };

    let mut env = BTreeMap::new();
    let mut secret_env = Vec::new();
    let mut note_secret = |var: &str, secret: &str, key: &str, value: &str| {
        secret_env.retain(|s: &SecretEnv| s.var != var);
        secret_env.push(SecretEnv {
            var: var.to_owned(),
            secret: secret.to_owned(),
            key: key.to_owned(),
            fingerprint: aigateway_testkit::fake_provider::key_fingerprint(value),
        });
    };
    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.clone().unwrap_or_default();
        if let Some(reference) = &source.secret_ref {
            match lookup.secret(namespace, &reference.name) {
                Some(secret) => {
                    for (key, value) in secret.data.unwrap_or_default() {
                        let var = format!("{prefix}{key}");
                        let value = text(&value.0);
                        note_secret(&var, &reference.name, &key, &value);
                        env.insert(var, value);
                    }
                }
                None if reference.optional == Some(true) => {}
                None => return Err(missing("Secret", &reference.name, None)),
            }
        }
        if let Some(reference) = &source.config_map_ref {
            match lookup.config_map(namespace, &reference.name) {
                Some(config_map) => {
                    for (key, value) in config_map.data.unwrap_or_default() {
                        env.insert(format!("{prefix}{key}"), value);
                    }
                }
                None if reference.optional == Some(true) => {}
                None => return Err(missing("ConfigMap", &reference.name, None)),
            }
        }
    }
    for EnvVar {
        name: var,
        value,
        value_from,
    } in container.env.iter().flatten()
    {
        let resolved = match (value, value_from) {
            (Some(value), _) => Some(expand(value, &env)),
            (None, None) => Some(String::new()),
            (None, Some(source)) => {
                if let Some(selector) = &source.secret_key_ref {
                    let found = lookup
                        .secret(namespace, &selector.name)
                        .and_then(|s| s.data.unwrap_or_default().remove(&selector.key))
                        .map(|v| text(&v.0));
                    match found {
                        Some(value) => {
                            note_secret(var, &selector.name, &selector.key, &value);
                            Some(value)
                        }
                        None if selector.optional == Some(true) => None,
                        None => {
                            return Err(missing("Secret", &selector.name, Some(&selector.key)));
                        }
                    }
                } else if let Some(selector) = &source.config_map_key_ref {
                    let found = lookup
                        .config_map(namespace, &selector.name)
                        .and_then(|c| c.data.unwrap_or_default().remove(&selector.key));
                    match found {
                        Some(value) => Some(value),
                        None if selector.optional == Some(true) => None,
                        None => {
                            return Err(missing("ConfigMap", &selector.name, Some(&selector.key)));
                        }
                    }
                } else if let Some(field) = &source.field_ref {
                    match field.field_path.as_str() {
                        "metadata.namespace" => Some(namespace.to_owned()),
                        "metadata.name" => Some(format!("{name}-local")),
                        other => return Err(unsupported(format!("env {var} from field {other}"))),
                    }
                } else {
                    return Err(unsupported(format!("env {var} from a resource field")));
                }
            }
        };
        if let Some(value) = resolved {
            env.insert(var.clone(), value);
        }
    }

    let mut mounts = BTreeMap::new();
    let volumes = spec.and_then(|s| s.volumes.as_ref());
    for mount in container.volume_mounts.iter().flatten() {
        let volume = volumes
            .into_iter()
            .flatten()
            .find(|v| v.name == mount.name)
            .ok_or_else(|| unsupported(format!("volume mount {} without a volume", mount.name)))?;
        let files = if let Some(source) = &volume.config_map {
            match lookup.config_map(namespace, &source.name) {
                Some(config_map) => {
                    let data = config_map.data.unwrap_or_default();
                    let mut files = Vec::new();
                    match &source.items {
                        Some(items) => {
                            for item in items {
                                if let Some(value) = data.get(&item.key) {
                                    files.push((item.path.clone(), value.clone()));
                                }
                            }
                        }
                        None => files.extend(data),
                    }
                    if let Some((bad, _)) = files.iter().find(|(file, _)| !is_plain_file_name(file))
                    {
                        return Err(unsupported(format!(
                            "file name {bad:?} in ConfigMap volume {}",
                            volume.name
                        )));
                    }
                    files
                }
                None if source.optional == Some(true) => Vec::new(),
                None => return Err(missing("ConfigMap", &source.name, None)),
            }
        } else if volume.empty_dir.is_some() {
            Vec::new()
        } else {
            return Err(unsupported(format!(
                "volume {} of a kind other than configMap or emptyDir",
                volume.name
            )));
        };
        mounts.insert(mount.mount_path.clone(), files);
    }

    let mut command: Vec<String> = container.command.clone().unwrap_or_default();
    command.extend(container.args.iter().flatten().map(|a| expand(a, &env)));
    if command.is_empty() {
        return Err(PodError::NoCommand {
            pod,
            container: container.name.clone(),
        });
    }
    let program = command.remove(0);
    let ignored_env: Vec<String> = env
        .keys()
        .filter(|var| is_loader_variable(var))
        .cloned()
        .collect();
    env.retain(|var, _| !is_loader_variable(var));
    secret_env.retain(|s| !is_loader_variable(&s.var));
    Ok(ContainerPlan {
        pod,
        program,
        args: command,
        env,
        secret_env,
        ignored_env,
        mounts,
    })
}

/// `value` with a leading mount path replaced by its local directory.
fn map_path(value: &str, mounts: &BTreeMap<String, PathBuf>) -> String {
    for (mount, local) in mounts {
        if value == mount {
            return local.display().to_string();
        }
        if let Some(rest) = value.strip_prefix(mount.as_str())
            && rest.starts_with('/')
        {
            return format!("{}{rest}", local.display());
        }
    }
    value.to_owned()
}

/// The container's arguments for this machine: mount paths mapped to their local
/// directories, `--port` set to `port`, and `--host 127.0.0.1`. LiteLLM listens on
/// 0.0.0.0 by default, which in a pod is the pod's own network; on a laptop it would
/// expose a gateway without a master key to the whole network.
fn local_args(args: &[String], mounts: &BTreeMap<String, PathBuf>, port: u16) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len() + 2);
    let mut previous = "";
    for arg in args {
        out.push(match previous {
            "--port" => port.to_string(),
            "--host" => "127.0.0.1".to_owned(),
            _ => map_path(arg, mounts),
        });
        previous = arg;
    }
    if !args.iter().any(|a| a == "--host") {
        out.extend(["--host".to_owned(), "127.0.0.1".to_owned()]);
    }
    out
}

/// Sends `signal` to every process of the group led by `pgid`.
fn signal_group(pgid: u32, signal: libc::c_int) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    if pgid <= 1 {
        return;
    }
    // SAFETY: killpg only sends a signal; a group that is gone yields ESRCH, ignored.
    unsafe {
        libc::killpg(pgid, signal);
    }
}

/// A pod's container running on this machine. Dropping it kills its process group.
#[derive(Debug)]
pub struct LocalPod {
    pod: String,
    child: Child,
    pid: u32,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
    stopped: bool,
}

impl LocalPod {
    /// Starts `plan` with the programs in `bin_dir`, listening on 127.0.0.1:`port` (see
    /// `local_args`). The process gets only the
    /// plan's env (which, rendered, sets `LITELLM_LOCAL_MODEL_COST_MAP=True`), plus PATH
    /// (`bin_dir` first) and a temporary HOME.
    pub fn start(plan: &ContainerPlan, bin_dir: &Path, port: u16) -> Result<Self, PodError> {
        let pod = plan.pod.clone();
        let io = |path: &Path| {
            let pod = pod.clone();
            let path = path.to_path_buf();
            move |source| PodError::Io { pod, path, source }
        };
        let dir = tempfile::Builder::new()
            .prefix("litellm-impl-pod-")
            .tempdir()
            .map_err(io(&std::env::temp_dir()))?;
        let mut local_mounts = BTreeMap::new();
        for (index, (mount, files)) in plan.mounts.iter().enumerate() {
            let local = dir.path().join(format!("volume-{index}"));
            std::fs::create_dir(&local).map_err(io(&local))?;
            for (file, content) in files {
                let path = local.join(file);
                std::fs::write(&path, content).map_err(io(&path))?;
            }
            local_mounts.insert(mount.clone(), local);
        }
        let home = dir.path().join("home");
        std::fs::create_dir(&home).map_err(io(&home))?;
        let log = dir.path().join("container.log");
        let log_file = std::fs::File::create(&log).map_err(io(&log))?;
        let log_err = log_file.try_clone().map_err(io(&log))?;

        let args = local_args(&plan.args, &local_mounts, port);
        let program = bin_dir.join(&plan.program);
        let mut command = Command::new(&program);
        command
            .args(&args)
            .env_clear()
            .envs(
                plan.env
                    .iter()
                    .map(|(k, v)| (k, map_path(v, &local_mounts))),
            )
            // Last, so that the plan cannot replace them.
            .env(
                "PATH",
                format!("{}:/usr/local/bin:/usr/bin:/bin", bin_dir.display()),
            )
            .env("HOME", &home)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .process_group(0)
            .kill_on_drop(true);
        #[cfg(target_os = "linux")]
        // SAFETY: runs in the forked child before exec and calls only async-signal-safe
        // functions (prctl, getppid, kill, getpid).
        unsafe {
            let parent = libc::getpid();
            command.pre_exec(move || {
                // Even if we are killed with SIGKILL (no destructor runs), the pod dies
                // with us instead of running on as an orphan.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != parent {
                    libc::kill(libc::getpid(), libc::SIGKILL);
                }
                Ok(())
            });
        }
        let child = command.spawn().map_err(|source| PodError::Spawn {
            pod: pod.clone(),
            program: program.display().to_string(),
            source,
        })?;
        let pid = child.id().unwrap_or_default();
        Ok(Self {
            pod,
            child,
            pid,
            port,
            log,
            _dir: dir,
            stopped: false,
        })
    }

    /// The process id, which is also its process group id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its combined stdout and stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn last_log_line(&self) -> String {
        let log = self.log_text();
        let line = log
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("(empty log)")
            .trim();
        line.chars().take(300).collect()
    }

    /// Waits until `GET <path>` on its port answers 200 (the liveness probe), failing
    /// when the process exits first or `limit` passes.
    pub async fn wait_live(&mut self, path: &str, limit: Duration) -> Result<(), PodError> {
        let started = Instant::now();
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(PodError::Exited {
                    pod: self.pod.clone(),
                    status: status.to_string(),
                    last_line: self.last_log_line(),
                });
            }
            if let Ok(response) = super::http::send("GET", &url, None, None).await
                && response.status == 200
            {
                return Ok(());
            }
            if started.elapsed() > limit {
                return Err(PodError::NotLive {
                    pod: self.pod.clone(),
                    seconds: limit.as_secs(),
                    last_line: self.last_log_line(),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Stops it as the kubelet does: SIGTERM to the whole process group, SIGKILL after
    /// `grace`.
    pub async fn stop(mut self, grace: Duration) {
        signal_group(self.pid, libc::SIGTERM);
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            signal_group(self.pid, libc::SIGKILL);
            let _ = self.child.wait().await;
        }
        // Anything the process left in its group goes too.
        signal_group(self.pid, libc::SIGKILL);
        self.stopped = true;
    }
}

impl Drop for LocalPod {
    fn drop(&mut self) {
        if !self.stopped {
            // No time to be graceful in a destructor; kill_on_drop reaps the leader.
            signal_group(self.pid, libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use litellm_impl::InMemoryObjects;
    use serde_json::json;

    fn template(value: serde_json::Value) -> PodTemplateSpec {
        serde_json::from_value(value).unwrap()
    }

    fn lookup() -> InMemoryObjects {
        let mut lookup = InMemoryObjects::new();
        lookup.insert_secret(
            serde_json::from_value(json!({"metadata": {"name": "keys", "namespace": "ns"},
                "stringData": {"OPENAI_API_KEY": "sk-1", "other": "o"}}))
            .unwrap(),
        );
        lookup.insert_config_map(
            serde_json::from_value(json!({"metadata": {"name": "cfg", "namespace": "ns"},
                "data": {"config.yaml": "model_list: []"}}))
            .unwrap(),
        );
        lookup
    }

    #[test]
    fn env_and_volumes_resolve_as_the_kubelet_does() {
        let template = template(json!({"spec": {
            "containers": [{"name": "litellm", "command": ["litellm", "--config", "/app/config/config.yaml", "--port", "4000"],
                "envFrom": [{"secretRef": {"name": "keys"}}],
                "env": [
                    {"name": "OPENAI_API_KEY", "valueFrom": {"secretKeyRef": {"name": "keys", "key": "other"}}},
                    {"name": "BASE", "value": "http://x/$(OPENAI_API_KEY)"},
                    {"name": "GONE", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": true}}},
                    {"name": "DIR", "value": "/prom"}
                ],
                "volumeMounts": [{"name": "config", "mountPath": "/app/config"}, {"name": "prom", "mountPath": "/prom"}]}],
            "volumes": [{"name": "config", "configMap": {"name": "cfg"}}, {"name": "prom", "emptyDir": {}}]
        }}));
        let plan = plan(&template, "ns", "gw", &lookup()).unwrap();
        assert_eq!(plan.program, "litellm");
        assert_eq!(plan.env["OPENAI_API_KEY"], "o");
        assert_eq!(plan.env["BASE"], "http://x/o");
        assert!(!plan.env.contains_key("GONE"));
        assert_eq!(
            plan.mounts["/app/config"],
            [("config.yaml".to_owned(), "model_list: []".to_owned())]
        );
        assert!(plan.mounts["/prom"].is_empty());
        let secret_vars: Vec<_> = plan
            .secret_env
            .iter()
            .map(|s| (s.var.as_str(), s.secret.as_str(), s.key.as_str()))
            .collect();
        assert_eq!(
            secret_vars,
            [
                ("other", "keys", "other"),
                ("OPENAI_API_KEY", "keys", "other")
            ]
        );
        assert!(
            plan.secret_env
                .iter()
                .all(|s| s.fingerprint.starts_with("sha256:"))
        );
        let mapped = BTreeMap::from([("/app/config".to_owned(), PathBuf::from("/l/v0"))]);
        assert_eq!(
            map_path("/app/config/config.yaml", &mapped),
            "/l/v0/config.yaml"
        );
        assert_eq!(map_path("/app/configx", &mapped), "/app/configx");
        let args: Vec<String> = ["--config", "/app/config/config.yaml", "--port", "4000"]
            .map(str::to_owned)
            .to_vec();
        assert_eq!(
            local_args(&args, &mapped, 1234),
            [
                "--config",
                "/l/v0/config.yaml",
                "--port",
                "1234",
                "--host",
                "127.0.0.1"
            ]
        );
        let args: Vec<String> = ["--host", "0.0.0.0"].map(str::to_owned).to_vec();
        assert_eq!(local_args(&args, &mapped, 1), ["--host", "127.0.0.1"]);
    }

    #[test]
    fn a_missing_secret_stops_the_pod_with_a_one_line_reason() {
        let template = template(
            json!({"spec": {"containers": [{"name": "litellm", "command": ["litellm"],
            "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "keys", "key": "missing"}}}]}]}}),
        );
        let error = plan(&template, "ns", "gw", &lookup()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "ns/gw would not start (CreateContainerConfigError): Secret ns/keys key missing not found; create it or mark the reference optional"
        );
    }

    #[test]
    fn hostile_config_map_keys_are_not_written_outside_the_volume() {
        let mut lookup = lookup();
        lookup.insert_config_map(
            serde_json::from_value(json!({"metadata": {"name": "cfg", "namespace": "ns"},
                "data": {"../escape": "x"}}))
            .unwrap(),
        );
        let template = template(json!({"spec": {
            "containers": [{"name": "litellm", "command": ["litellm"], "volumeMounts": [{"name": "c", "mountPath": "/c"}]}],
            "volumes": [{"name": "c", "configMap": {"name": "cfg"}}]}}));
        let error = plan(&template, "ns", "gw", &lookup).unwrap_err();
        assert!(matches!(error, PodError::Unsupported { .. }), "{error}");
    }

    #[tokio::test]
    async fn stopping_ends_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        // A "container" that starts a grandchild and waits.
        let script = dir.path().join("server");
        std::fs::write(&script, "#!/bin/sh\nsleep 300 &\necho started $!\nwait\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plan = ContainerPlan {
            pod: "ns/gw".into(),
            program: "server".into(),
            args: vec![],
            env: BTreeMap::new(),
            secret_env: vec![],
            ignored_env: vec![],
            mounts: BTreeMap::new(),
        };
        let pod = LocalPod::start(&plan, dir.path(), 1).unwrap();
        let pgid = pod.pid();
        let started = Instant::now();
        while !pod.log_text().contains("started") {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{}",
                pod.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let grandchild: u32 = pod
            .log_text()
            .trim()
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(Path::new(&format!("/proc/{grandchild}")).exists());
        pod.stop(Duration::from_secs(5)).await;
        let started = Instant::now();
        while Path::new(&format!("/proc/{grandchild}")).exists()
            && !std::fs::read_to_string(format!("/proc/{grandchild}/stat"))
                .unwrap_or_default()
                .contains(") Z ")
        {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "grandchild {grandchild} of group {pgid} survived"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A Deployment's env cannot make a process started here load other code: the
    /// loader and interpreter variables are left out (and named), PATH and HOME stay the
    /// runner's, and everything else (a provider key) passes.
    #[tokio::test]
    async fn a_deployment_env_never_sets_loader_variables_here() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("printenv-server");
        std::fs::write(&script, "#!/bin/sh\nenv\necho done\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let hostile = [
            ("LD_PRELOAD", "/tmp/evil.so"),
            ("LD_LIBRARY_PATH", "/tmp"),
            ("LD_AUDIT", "/tmp/evil.so"),
            ("PYTHONPATH", "/tmp/evil"),
            ("PYTHONHOME", "/tmp/evil"),
            ("PYTHONSTARTUP", "/tmp/evil.py"),
            ("PYTHONUSERBASE", "/tmp/evil"),
            ("GCONV_PATH", "/tmp/evil"),
            ("BASH_ENV", "/tmp/evil.sh"),
            ("NODE_OPTIONS", "--require /tmp/evil.js"),
            ("PATH", "/tmp/evil-bin"),
            ("HOME", "/tmp/evil-home"),
        ];
        let mut env: Vec<serde_json::Value> = hostile
            .iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect();
        env.push(json!({"name": "OPENAI_API_KEY", "valueFrom": {"secretKeyRef": {"name": "keys", "key": "other"}}}));
        let template = template(json!({"spec": {"containers": [{
            "name": "litellm", "command": ["printenv-server"], "env": env,
            "envFrom": [{"prefix": "LD_", "secretRef": {"name": "keys"}}]}]}}));
        let plan = plan(&template, "ns", "gw", &lookup()).unwrap();
        let mut expected: Vec<String> = hostile.iter().map(|(n, _)| (*n).to_owned()).collect();
        expected.extend(["LD_OPENAI_API_KEY".to_owned(), "LD_other".to_owned()]);
        expected.sort();
        assert_eq!(plan.ignored_env, expected);
        assert!(
            plan.secret_env.iter().all(|s| !s.var.starts_with("LD_")),
            "{:?}",
            plan.secret_env
        );

        let pod = LocalPod::start(&plan, dir.path(), 1).unwrap();
        let started = Instant::now();
        while !pod.log_text().contains("done") {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{}",
                pod.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let seen: BTreeMap<String, String> = pod
            .log_text()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        for (name, value) in hostile {
            assert!(
                seen.get(name).is_none_or(|seen| seen != value),
                "{name}={value} reached the process"
            );
        }
        assert!(seen["PATH"].starts_with(&dir.path().display().to_string()));
        assert_eq!(seen["OPENAI_API_KEY"], "o");
        pod.stop(Duration::from_secs(5)).await;
    }
}
