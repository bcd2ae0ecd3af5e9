//! Other projects' CRDs for tests, fetched from their Go modules through the Go module
//! proxy (`go mod download -json <module>@<version>`) and never copied into this
//! repository: the module cache (`$GOMODCACHE`, usually `~/go/pkg/mod`) holds them after
//! the first download, and the pinned versions below say exactly which CRD a test ran
//! against.
//!
//! ```no_run
//! use aigateway_testkit::third_party::{GATEWAY_API, crd};
//!
//! let reference_grants = crd(&GATEWAY_API, "config/crd/standard/gateway.networking.k8s.io_referencegrants.yaml")?;
//! assert!(reference_grants.contains("kind: CustomResourceDefinition"));
//! # Ok::<(), aigateway_testkit::third_party::ThirdPartyError>(())
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

/// A Go module at a pinned version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoModule {
    /// The module path, e.g. `sigs.k8s.io/gateway-api`.
    pub path: &'static str,
    /// The version, e.g. `v1.4.1`.
    pub version: &'static str,
}

/// Gateway API (ReferenceGrant, in its standard channel). v1.6.3 serves ReferenceGrant
/// as `v1` and `v1beta1`, the version the runtime reads; its module needs Go 1.26 (the
/// v1.7 module needs Go 1.27).
pub const GATEWAY_API: GoModule = GoModule {
    path: "sigs.k8s.io/gateway-api",
    version: "v1.6.3",
};

/// The ReferenceGrant CRD's file in [`GATEWAY_API`].
pub const REFERENCE_GRANT_CRD: &str =
    "config/crd/standard/gateway.networking.k8s.io_referencegrants.yaml";

/// Why a third-party file could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ThirdPartyError {
    /// `go` could not be run.
    #[error(
        "running `go mod download` for {module} failed: {source}; install Go 1.26 or newer and put it on PATH"
    )]
    Go {
        /// `path@version`.
        module: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `go mod download` answered with an error (no network to the module proxy, an
    /// unknown version...).
    #[error(
        "`go mod download -json {module}` failed: {message}; check GOPROXY and the network to the Go module proxy"
    )]
    Download {
        /// `path@version`.
        module: String,
        /// What `go` said.
        message: String,
    },
    /// The module has no such file.
    #[error("{module} has no file {file}: {source}")]
    MissingFile {
        /// `path@version`.
        module: String,
        /// The file asked for.
        file: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The directory of `module` in the Go module cache, downloaded if needed.
pub fn module_dir(module: &GoModule) -> Result<PathBuf, ThirdPartyError> {
    let id = format!("{}@{}", module.path, module.version);
    // Outside any Go module, with this Go only: no go.mod is read or written, and no
    // toolchain is downloaded.
    let output = Command::new("go")
        .args(["mod", "download", "-json", &id])
        .current_dir(std::env::temp_dir())
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .output()
        .map_err(|source| ThirdPartyError::Go {
            module: id.clone(),
            source,
        })?;
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    match answer.get("Dir").and_then(|d| d.as_str()) {
        Some(dir) if Path::new(dir).is_dir() => Ok(PathBuf::from(dir)),
        _ => Err(ThirdPartyError::Download {
            module: id,
            message: answer
                .get("Error")
                .and_then(|e| e.as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| {
                    String::from_utf8_lossy(&output.stderr)
                        .lines()
                        .last()
                        .unwrap_or("no output")
                        .to_owned()
                }),
        }),
    }
}

/// The text of `file` (a path inside the module) of `module`.
pub fn crd(module: &GoModule, file: &str) -> Result<String, ThirdPartyError> {
    let dir = module_dir(module)?;
    std::fs::read_to_string(dir.join(file)).map_err(|source| ThirdPartyError::MissingFile {
        module: format!("{}@{}", module.path, module.version),
        file: file.to_owned(),
        source,
    })
}

/// Gateway API's ReferenceGrant CRD ([`REFERENCE_GRANT_CRD`] of [`GATEWAY_API`]).
pub fn reference_grant_crd() -> Result<String, ThirdPartyError> {
    crd(&GATEWAY_API, REFERENCE_GRANT_CRD)
}
