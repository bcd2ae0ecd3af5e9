//! Problems: things that are wrong with a gateway or what it references, but do not stop
//! the proxy from deploying for what works.

use std::fmt;

use aigateway_api::conditions::Reason;

/// Why something is reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProblemReason {
    /// A referenced object (Guard, GuardrailProvider, Secret, Secret key, ConfigMap) does
    /// not exist.
    RefNotFound,
    /// A referenced object exists but cannot be used as written (incomplete, in a
    /// namespace the pod cannot read, invalid values).
    InvalidRef,
    /// The object asks for something this implementation or LiteLLM does not support; it
    /// is ignored.
    Unsupported,
    /// The gateway accepts requests without a master key.
    Unauthenticated,
    /// A field of the gateway itself is unusable; that part (e.g. one model) is skipped.
    InvalidSpec,
    /// The rendered config loads in LiteLLM but is very likely not what the user meant
    /// (checks LiteLLM's own `--validate_config` does not make).
    SuspiciousConfig,
    /// Rate limits are counted by each replica on its own while the gateway may run more
    /// than one: each replica allows the whole limit.
    PerReplicaLimits,
}

impl ProblemReason {
    /// Every reason, for checks that each one is documented.
    pub const ALL: [ProblemReason; 7] = [
        ProblemReason::RefNotFound,
        ProblemReason::InvalidRef,
        ProblemReason::Unsupported,
        ProblemReason::Unauthenticated,
        ProblemReason::InvalidSpec,
        ProblemReason::SuspiciousConfig,
        ProblemReason::PerReplicaLimits,
    ];

    /// The CamelCase reason, as used in conditions and events.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemReason::RefNotFound => aigateway_api::conditions::reasons::REF_NOT_FOUND,
            ProblemReason::InvalidRef => aigateway_api::conditions::reasons::INVALID_REF,
            ProblemReason::Unsupported => "Unsupported",
            ProblemReason::Unauthenticated => "Unauthenticated",
            ProblemReason::InvalidSpec => "InvalidSpec",
            ProblemReason::SuspiciousConfig => "SuspiciousConfig",
            ProblemReason::PerReplicaLimits => "PerReplicaLimits",
        }
    }

    /// Whether this problem means a reference did not resolve, i.e. should make
    /// `ResolvedRefs` false. The other reasons are warnings about a working proxy.
    pub fn is_unresolved_ref(self) -> bool {
        matches!(
            self,
            ProblemReason::RefNotFound | ProblemReason::InvalidRef | ProblemReason::Unsupported
        )
    }
}

impl From<ProblemReason> for Reason {
    fn from(reason: ProblemReason) -> Self {
        // One constant per variant: the compiler checks each text.
        match reason {
            ProblemReason::RefNotFound => Reason::REF_NOT_FOUND,
            ProblemReason::InvalidRef => Reason::INVALID_REF,
            ProblemReason::Unsupported => const { Reason::from_static("Unsupported") },
            ProblemReason::Unauthenticated => const { Reason::from_static("Unauthenticated") },
            ProblemReason::InvalidSpec => const { Reason::from_static("InvalidSpec") },
            ProblemReason::SuspiciousConfig => const { Reason::from_static("SuspiciousConfig") },
            ProblemReason::PerReplicaLimits => const { Reason::from_static("PerReplicaLimits") },
        }
    }
}

impl fmt::Display for ProblemReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The object a problem is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    /// Its kind, e.g. `Guard` or `Secret`.
    pub kind: String,
    /// Its namespace (`None` for cluster-scoped objects).
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
}

impl ObjectRef {
    /// A namespaced object reference.
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            namespace: Some(namespace.to_owned()),
            name: name.to_owned(),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{} {}/{}", self.kind, namespace, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// Something wrong that rendering worked around; the runtime shows these on the gateway
/// (e.g. as `ResolvedRefs=False` with [`ProblemReason::as_str`] as reason).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Why it is reported.
    pub reason: ProblemReason,
    /// The object involved.
    pub object: ObjectRef,
    /// What is wrong, its effect, and what to do. Never contains a secret value.
    pub message: String,
}

impl Problem {
    /// A problem about `object`.
    pub fn new(reason: ProblemReason, object: ObjectRef, message: impl Into<String>) -> Self {
        Self {
            reason,
            object,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.reason, self.object, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_one_a_condition_accepts() {
        for reason in ProblemReason::ALL {
            assert_eq!(Reason::new(reason.as_str()), Ok(Reason::from(reason)));
        }
    }
}
