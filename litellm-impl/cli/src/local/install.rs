//! Getting the pinned LiteLLM proxy onto this machine: `litellm` on PATH when it is the
//! pinned version, otherwise a Python venv installed once and reused.
//!
//! The demo and the real-LiteLLM tests both come here, so the pinned version and the
//! packages next to it are written down once ([`PINNED_LITELLM_VERSION`],
//! [`REQUIREMENTS`]).

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// The LiteLLM version this crate renders for and tests against
/// ([`LITELLM_VERSION`](litellm_impl::settings::LITELLM_VERSION); the image the Deployment runs by
/// default carries the same version).
pub const PINNED_LITELLM_VERSION: &str = litellm_impl::settings::LITELLM_VERSION;

/// What the venv holds, as `pip install` arguments: the pinned proxy, the MCP SDK (for
/// the MCP servers of the ToolGateway demo) and the packages the rendered callbacks
/// import that `litellm[proxy]` does not pull in.
pub static REQUIREMENTS: LazyLock<Vec<String>> = LazyLock::new(|| {
    [
        &format!("litellm[proxy]=={PINNED_LITELLM_VERSION}"),
        "mcp==2.3.0",
        "prometheus_client",
        "opentelemetry-sdk",
        "opentelemetry-exporter-otlp-proto-http",
        "prisma",
    ]
    .map(str::to_owned)
    .to_vec()
});

/// Distribution names that must be importable next to a `litellm` found on PATH.
const REQUIRED_DISTRIBUTIONS: &[&str] = &["litellm", "prometheus_client", "opentelemetry-sdk"];

/// How long a first install usually takes, said before it starts.
pub const FIRST_INSTALL_HINT: &str = "the first install downloads a few hundred MB from PyPI and takes about 2 minutes (longer on a slow connection); later runs reuse it";

/// The file in the venv that records what was installed into it.
const MARKER: &str = ".aigateway-installed";

/// Why LiteLLM could not be made available.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// No home directory to put the cache in.
    #[error(
        "cannot find a cache directory for the LiteLLM venv: neither XDG_CACHE_HOME nor HOME is set; pass --venv DIR"
    )]
    NoCacheDir,
    /// A file or directory of the venv could not be written.
    #[error(
        "could not prepare the LiteLLM venv at {path}: {source}; check that it is writable or pass --venv DIR"
    )]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A command could not run or failed.
    #[error("`{command}` failed: {reason}; {hint}")]
    Command {
        /// The command line.
        command: String,
        /// The exit status or spawn error, with pip's last error line.
        reason: String,
        /// What to do.
        hint: &'static str,
    },
}

/// A LiteLLM installation: the directory holding its `litellm` executable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiteLlm {
    /// The directory of the `litellm` executable (and the Python next to it).
    pub bin_dir: PathBuf,
    /// Where it came from.
    pub origin: Origin,
}

/// Where a [`LiteLlm`] came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `litellm` on PATH, at the pinned version.
    Path,
    /// A venv that was already installed.
    CachedVenv,
    /// A venv installed just now, taking this long.
    InstalledVenv(Duration),
}

impl LiteLlm {
    /// The `litellm` executable.
    pub fn executable(&self) -> PathBuf {
        self.bin_dir.join("litellm")
    }
}

/// The default venv location: `$XDG_CACHE_HOME/aigateway-rs/litellm-<version>`, or
/// `$HOME/.cache/aigateway-rs/litellm-<version>` (empty values count as unset, as the XDG
/// spec says). `None` without either.
///
/// ```
/// use litellm_impl_cli::local::install::default_venv_dir;
/// let dir = default_venv_dir(None, Some("/home/me".into())).unwrap();
/// assert_eq!(dir.to_str().unwrap(), "/home/me/.cache/aigateway-rs/litellm-1.108.7");
/// let dir = default_venv_dir(Some("/cache".into()), Some("/home/me".into())).unwrap();
/// assert_eq!(dir.to_str().unwrap(), "/cache/aigateway-rs/litellm-1.108.7");
/// ```
pub fn default_venv_dir(
    xdg_cache_home: Option<OsString>,
    home: Option<OsString>,
) -> Option<PathBuf> {
    let set = |value: Option<OsString>| value.filter(|v| !v.is_empty()).map(PathBuf::from);
    let cache = set(xdg_cache_home).or_else(|| set(home).map(|home| home.join(".cache")))?;
    Some(
        cache
            .join("aigateway-rs")
            .join(format!("litellm-{PINNED_LITELLM_VERSION}")),
    )
}

/// [`default_venv_dir`] for this process's environment.
pub fn default_venv_dir_from_env() -> Result<PathBuf, InstallError> {
    default_venv_dir(std::env::var_os("XDG_CACHE_HOME"), std::env::var_os("HOME"))
        .ok_or(InstallError::NoCacheDir)
}

/// The interpreter a Python entry-point script runs with: its `#!` line, when that is
/// a plain absolute path (no `env`, no arguments).
fn shebang_interpreter(script: &Path) -> Option<PathBuf> {
    let text = std::fs::read(script).ok()?;
    let first = text.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(first).ok()?.strip_prefix("#!")?.trim();
    (line.starts_with('/') && !line.contains(' ')).then(|| PathBuf::from(line))
}

/// `litellm` on `path` (a PATH value) when its Python has the pinned LiteLLM and the
/// packages the rendered config needs.
pub async fn find_on_path(path: Option<OsString>) -> Option<LiteLlm> {
    let executable = std::env::split_paths(&path?)
        .map(|dir| dir.join("litellm"))
        .find(|candidate| candidate.is_file())?;
    let python = shebang_interpreter(&executable)?;
    // Asking Python's package metadata takes milliseconds; `litellm --version` imports
    // the whole proxy (15 s and more).
    let script = format!(
        "import importlib.metadata as m\nfor name in {REQUIRED_DISTRIBUTIONS:?}: print(name, m.version(name))"
    );
    let output = Command::new(&python)
        .args(["-c", &script])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .ok()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let pinned = stdout
        .lines()
        .any(|line| line == format!("litellm {PINNED_LITELLM_VERSION}"));
    let bin_dir = executable.parent()?.to_path_buf();
    (output.status.success() && pinned).then_some(LiteLlm {
        bin_dir,
        origin: Origin::Path,
    })
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> InstallError + '_ {
    move |source| InstallError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Makes sure the venv at `venv` holds [`REQUIREMENTS`], installing them when it does not
/// (or holds something else), and returns it. `progress` receives one line per step
/// (and pip's "Collecting"/"Installing" lines), for a human to watch.
///
/// Concurrent callers (parallel test binaries, two demos) wait for each other on a lock
/// file next to the venv. Dropping the future kills pip; the next call finishes the job.
pub async fn ensure_venv(
    venv: &Path,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<LiteLlm, InstallError> {
    // Absolute: pods run with their own working directory.
    let venv = &std::path::absolute(venv).map_err(io_error(venv))?;
    let parent = venv.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent).map_err(io_error(parent))?;
    let mut lock_name = venv.file_name().unwrap_or_default().to_os_string();
    lock_name.push(".lock");
    let lock_path = parent.join(lock_name);
    let lock = File::create(&lock_path).map_err(io_error(&lock_path))?;
    let mut told = false;
    loop {
        match lock.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) => {
                if !told {
                    progress(&format!(
                        "waiting for another installation into {} to finish (lock file {})",
                        venv.display(),
                        lock_path.display()
                    ));
                    told = true;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(std::fs::TryLockError::Error(source)) => return Err(io_error(&lock_path)(source)),
        }
    }
    let marker = venv.join(MARKER);
    let wanted = REQUIREMENTS.join("\n");
    let bin_dir = venv.join("bin");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(LiteLlm {
            bin_dir,
            origin: Origin::CachedVenv,
        });
    }
    let started = Instant::now();
    progress(&format!(
        "installing LiteLLM {PINNED_LITELLM_VERSION} ({}) into {}: {FIRST_INSTALL_HINT}",
        REQUIREMENTS.join(" "),
        venv.display()
    ));
    if !bin_dir.join("python").exists() {
        progress("creating the venv (python3 -m venv)");
        let mut command = Command::new("python3");
        command.args(["-m", "venv"]).arg(venv);
        run(
            command,
            "python3 -m venv",
            "install Python 3 (3.10 or newer) with its venv module",
            progress,
        )
        .await?;
    }
    let mut command = Command::new(bin_dir.join("pip"));
    command
        .args([
            "install",
            "--disable-pip-version-check",
            "--progress-bar",
            "off",
        ])
        .args(REQUIREMENTS.iter());
    run(
        command,
        &format!("pip install {}", REQUIREMENTS.join(" ")),
        "check that PyPI is reachable (or set PIP_INDEX_URL) and run the demo again",
        progress,
    )
    .await?;
    std::fs::write(&marker, &wanted).map_err(io_error(&marker))?;
    let took = started.elapsed();
    progress(&format!(
        "installed LiteLLM into {} in {:.0} s",
        venv.display(),
        took.as_secs_f64()
    ));
    drop(lock);
    Ok(LiteLlm {
        bin_dir,
        origin: Origin::InstalledVenv(took),
    })
}

/// Runs `command` to completion, passing its step lines to `progress`; on failure the
/// error carries its last error line.
async fn run(
    mut command: Command,
    what: &str,
    hint: &'static str,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<(), InstallError> {
    let failed = |reason: String| InstallError::Command {
        command: what.to_owned(),
        reason,
        hint,
    };
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    // stderr is read concurrently so that neither pipe fills up and blocks pip.
    let errors = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        let mut last = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            if !line.trim().is_empty() && !line.starts_with("WARNING") {
                last = line;
            }
        }
        last
    });
    let mut lines = BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.starts_with("Collecting")
            || line.starts_with("Installing")
            || line.starts_with("Successfully")
        {
            progress(&format!("  {}", line.trim()));
        }
    }
    let status = child.wait().await.map_err(|e| failed(e.to_string()))?;
    let last_error = errors.await.unwrap_or_default();
    if status.success() {
        Ok(())
    } else {
        Err(failed(format!("{status}: {}", last_error.trim())))
    }
}

/// [`find_on_path`] with this process's PATH, else [`ensure_venv`] at `venv`.
pub async fn locate_or_install(
    venv: &Path,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<LiteLlm, InstallError> {
    if let Some(found) = find_on_path(std::env::var_os("PATH")).await {
        return Ok(found);
    }
    ensure_venv(venv, progress).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_dir_follows_xdg_and_ignores_empty_values() {
        assert_eq!(default_venv_dir(None, None), None);
        assert_eq!(default_venv_dir(Some("".into()), Some("".into())), None);
        assert_eq!(
            default_venv_dir(Some("".into()), Some("/h".into())).unwrap(),
            Path::new("/h/.cache/aigateway-rs/litellm-1.108.7")
        );
    }

    #[test]
    fn the_requirements_pin_the_version_this_crate_renders_for() {
        assert_eq!(
            REQUIREMENTS[0],
            format!("litellm[proxy]=={PINNED_LITELLM_VERSION}")
        );
        assert!(REQUIREMENTS.iter().any(|r| r.starts_with("mcp==")));
    }

    #[test]
    fn the_default_image_and_the_python_pin_are_the_same_release() {
        let image = litellm_impl::settings::DEFAULT_IMAGE;
        let (repository, tag) = image.rsplit_once(':').unwrap();
        assert_eq!(repository, "ghcr.io/berriai/litellm-non_root");
        assert_eq!(
            tag.strip_prefix('v'),
            Some(PINNED_LITELLM_VERSION),
            "{image}"
        );
        let requirement = REQUIREMENTS[0].strip_prefix("litellm[proxy]==");
        assert_eq!(requirement, Some(PINNED_LITELLM_VERSION));
        assert!(
            !PINNED_LITELLM_VERSION.starts_with("1.107."),
            "1.107.x must never be used (1.107.0 was compromised)"
        );
    }

    #[tokio::test]
    async fn litellm_on_path_counts_only_at_the_pinned_version() {
        let dir = tempfile::tempdir().unwrap();
        let fake_python = |version: &str| {
            format!(
                "#!/bin/sh\nfor n in litellm prometheus_client opentelemetry-sdk; do [ $n = litellm ] && echo \"$n {version}\" || echo \"$n 1.0\"; done\n"
            )
        };
        let write_exec = |path: &Path, text: &str| {
            std::fs::write(path, text).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        let python = dir.path().join("python");
        let litellm = dir.path().join("litellm");
        write_exec(
            &litellm,
            &format!("#!{}\nimport litellm\n", python.display()),
        );

        write_exec(&python, &fake_python("1.0.0"));
        assert_eq!(find_on_path(Some(dir.path().into())).await, None);

        write_exec(&python, &fake_python(PINNED_LITELLM_VERSION));
        let found = find_on_path(Some(dir.path().into())).await.unwrap();
        assert_eq!(found.bin_dir, dir.path());
        assert_eq!(found.origin, Origin::Path);

        assert_eq!(find_on_path(None).await, None);
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(find_on_path(Some(empty.path().into())).await, None);
    }
}
