//! The rendering flags `run`, `demo` and `render` share, and their conversion into the
//! library's [`RenderSettings`].
//!
//! The conversion names every field of both types, so a setting the library gains
//! fails to compile here until it has a flag or a stated default, and a parsed flag
//! cannot be lost on the way to rendering.

use std::sync::LazyLock;

use clap::Args;
use k8s_openapi::api::core::v1::{PodSecurityContext, SecurityContext};
use litellm_impl::settings::DEFAULT_IMAGE;
use litellm_impl::settings::{WorkloadSecurity, parse_security_context};
use litellm_impl::{RenderSettings, names};

/// How gateways are rendered: the flags of [`RenderSettings`] (replicas and resources
/// are per-gateway annotations, not flags).
#[derive(Clone, Debug, PartialEq, Args)]
pub struct RenderFlags {
    /// The LiteLLM container image.
    #[arg(
        long,
        default_value = DEFAULT_IMAGE,
        env = "LITELLM_IMAGE",
        help = "LiteLLM image of every gateway (see --allow-gateway-image for per-gateway images)"
    )]
    pub image: String,
    /// Whether a gateway may choose its image with the `image` annotation. Off by
    /// default: whoever may create an AiGateway could otherwise run any image with the
    /// namespace's Secrets in its env, through the operator's Deployment rights.
    #[arg(
        long = "allow-gateway-image",
        help = "Honour the `ai-gateway-litellm.agentic-layer.ai/image` annotation of gateways (off: whoever may create an AiGateway could run any image with the namespace's Secrets)"
    )]
    pub allow_image_annotation: bool,
    /// The pod's and container's security contexts (default: Pod Security `restricted`).
    #[command(flatten)]
    pub security: SecurityFlags,
}

/// The flags of [`WorkloadSecurity`]: each a JSON object of the Kubernetes type, which
/// replaces the default as a whole.
#[derive(Clone, Debug, PartialEq, Args)]
pub struct SecurityFlags {
    /// `spec.template.spec.securityContext`.
    #[arg(
        long = "pod-security-context",
        env = "LITELLM_POD_SECURITY_CONTEXT",
        value_name = "JSON",
        value_parser = parse_security_context::<PodSecurityContext>,
        default_value = default_json::POD.as_str(),
        hide_default_value = true,
        help = default_json::POD_HELP.as_str()
    )]
    pub pod: PodSecurityContext,
    /// The LiteLLM container's `securityContext`.
    #[arg(
        long = "container-security-context",
        env = "LITELLM_CONTAINER_SECURITY_CONTEXT",
        value_name = "JSON",
        value_parser = parse_security_context::<SecurityContext>,
        default_value = default_json::CONTAINER.as_str(),
        hide_default_value = true,
        help = "securityContext of every LiteLLM container, as a JSON SecurityContext that replaces the default as a whole (default: Pod Security restricted: no privilege escalation, every capability dropped, read-only root filesystem, runAsNonRoot, seccompProfile RuntimeDefault)"
    )]
    pub container: SecurityContext,
}

/// The default security contexts as JSON: the flags' defaults, parsed like a user's.
mod default_json {
    use super::{LazyLock, WorkloadSecurity, names};

    pub(super) static POD: LazyLock<String> = LazyLock::new(|| {
        serde_json::to_string(&WorkloadSecurity::default().pod)
            .expect("a PodSecurityContext serialises")
    });
    /// The help of `--pod-security-context`, with the user the default really names.
    pub(super) static POD_HELP: LazyLock<String> = LazyLock::new(|| {
        format!(
            "securityContext of every LiteLLM pod, as a JSON PodSecurityContext that replaces the default as a whole (default: Pod Security restricted: runAsNonRoot, runAsUser, runAsGroup and fsGroup {}, seccompProfile RuntimeDefault)",
            names::NON_ROOT_ID
        )
    });
    pub(super) static CONTAINER: LazyLock<String> = LazyLock::new(|| {
        serde_json::to_string(&WorkloadSecurity::default().container)
            .expect("a SecurityContext serialises")
    });
}

impl From<RenderFlags> for RenderSettings {
    fn from(flags: RenderFlags) -> Self {
        let RenderFlags {
            image,
            allow_image_annotation,
            security: SecurityFlags { pod, container },
        } = flags;
        let RenderSettings {
            replicas,
            resources,
            ..
        } = RenderSettings::default();
        RenderSettings {
            image,
            replicas,
            resources,
            allow_image_annotation,
            security: WorkloadSecurity { pod, container },
        }
    }
}

impl From<RenderSettings> for RenderFlags {
    /// The flags that render as `settings` do, but for replicas and resources (which are
    /// not flags).
    fn from(settings: RenderSettings) -> Self {
        let RenderSettings {
            image,
            replicas: _,
            resources: _,
            allow_image_annotation,
            security: WorkloadSecurity { pod, container },
        } = settings;
        RenderFlags {
            image,
            allow_image_annotation,
            security: SecurityFlags { pod, container },
        }
    }
}

impl Default for RenderFlags {
    /// The library's defaults: what `run` and `render` use without flags.
    fn default() -> Self {
        RenderSettings::default().into()
    }
}

impl RenderFlags {
    /// The settings these flags render with.
    pub fn settings(&self) -> RenderSettings {
        self.clone().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flags' defaults are the library's defaults: `run` and `render` without flags
    /// render exactly what `RenderSettings::default()` renders.
    #[test]
    fn flag_defaults_are_the_library_defaults() {
        use clap::Parser;
        #[derive(Parser)]
        struct Flags {
            #[command(flatten)]
            settings: RenderFlags,
        }
        assert!(
            std::env::var_os("LITELLM_IMAGE").is_none(),
            "unset LITELLM_IMAGE to run this test: clap reads it as --image"
        );
        let parsed = Flags::try_parse_from(["flags"]).unwrap().settings;
        assert_eq!(parsed.settings(), RenderSettings::default());
        let parsed = Flags::try_parse_from(["flags", "--image", "x/y:1", "--allow-gateway-image"])
            .unwrap()
            .settings;
        assert_eq!(
            parsed.settings(),
            RenderSettings {
                image: "x/y:1".into(),
                allow_image_annotation: true,
                ..RenderSettings::default()
            }
        );
    }
}
