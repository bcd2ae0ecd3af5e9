//! Standard reference problems, worded the same way by every class: what is missing,
//! which object, what to do. Use them with [`DesiredState::with_ref_problem`] when the
//! gateway can deploy without the reference, or turn them into an
//! [`ImplementationError`] with `?` or `.into()` when it cannot.
//!
//! ```
//! use aigateway_runtime::{DesiredState, ImplementationError, RefProblem};
//! use aigateway_api::conditions::Reason;
//!
//! let problem = RefProblem::missing_secret_key("team-a", "api-keys", "OPENAI_API_KEY");
//! assert_eq!(problem.reason, Reason::INVALID_REF);
//! assert_eq!(
//!     problem.message,
//!     "Secret team-a/api-keys has no key \"OPENAI_API_KEY\": add the key to the Secret or reference another key"
//! );
//! // The gateway deploys and shows ResolvedRefs=False with this message...
//! let desired = DesiredState::new().with_ref_problem(problem.clone());
//! assert_eq!(desired.problems, [problem.clone()]);
//! // ...or nothing is applied until the reference resolves.
//! let error: ImplementationError = problem.into();
//! assert!(matches!(error, ImplementationError::UnresolvedRef { .. }));
//! ```
//!
//! Messages name objects and keys, never values.

use aigateway_api::conditions::Reason;

use crate::attached::AttachedDecision;
use crate::implementation::{DesiredState, ImplementationError, RefProblem};

impl RefProblem {
    /// A problem with a reason (e.g. [`Reason::INVALID_REF`]) and a one-line message.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }

    /// `RefNotFound`: the Secret `namespace/name` does not exist.
    pub fn missing_secret(namespace: &str, name: &str) -> Self {
        Self::missing_object("Secret", namespace, name)
    }

    /// `InvalidRef`: the Secret `namespace/name` exists but has no `key` in its data.
    pub fn missing_secret_key(namespace: &str, name: &str, key: &str) -> Self {
        Self::new(
            Reason::INVALID_REF,
            format!(
                "Secret {namespace}/{name} has no key \"{key}\": add the key to the Secret or reference another key"
            ),
        )
    }

    /// `RefNotFound`: the object of `kind` (e.g. `ConfigMap`, `Guard`) `namespace/name`
    /// does not exist.
    pub fn missing_object(kind: &str, namespace: &str, name: &str) -> Self {
        Self::new(
            Reason::REF_NOT_FOUND,
            format!("{kind} {namespace}/{name} not found: create it or fix the reference"),
        )
    }
}

impl From<RefProblem> for ImplementationError {
    /// An [`ImplementationError::UnresolvedRef`]: nothing is applied until the
    /// reference resolves.
    fn from(problem: RefProblem) -> Self {
        Self::UnresolvedRef {
            reason: problem.reason,
            message: problem.message,
        }
    }
}

impl From<RefProblem> for AttachedDecision {
    /// An attached object whose reference is the problem (a route's missing backend):
    /// [`AttachedDecision::Unresolved`], so the object is accepted, `ResolvedRefs=False`
    /// with the problem's reason and message, and gets no URL.
    ///
    /// ```
    /// use aigateway_runtime::{AttachedDecision, RefProblem};
    /// let decision = AttachedDecision::from(RefProblem::missing_object("ToolServer", "team-a", "echo"));
    /// assert!(matches!(decision, AttachedDecision::Unresolved { ref reason, .. } if reason == "RefNotFound"));
    /// ```
    fn from(problem: RefProblem) -> Self {
        Self::unresolved(problem.reason, problem.message)
    }
}

impl DesiredState {
    /// Adds a reference problem such as [`RefProblem::missing_secret_key`]: the gateway
    /// deploys what works and shows `ResolvedRefs=False` with the problem's message.
    pub fn with_ref_problem(mut self, problem: RefProblem) -> Self {
        self.problems.push(problem);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_objects_are_not_found_and_name_what_to_create() {
        let secret = RefProblem::missing_secret("ns", "keys");
        assert_eq!(secret.reason, Reason::REF_NOT_FOUND);
        assert_eq!(
            secret.message,
            "Secret ns/keys not found: create it or fix the reference"
        );
        let config = RefProblem::missing_object("ConfigMap", "ns", "routes");
        assert_eq!(
            config.message,
            "ConfigMap ns/routes not found: create it or fix the reference"
        );
        assert!(!config.message.contains('\n'));
    }
}
