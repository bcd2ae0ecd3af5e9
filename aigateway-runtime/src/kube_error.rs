//! kube client errors as one line a user can act on.
//!
//! `kube::Error`'s own `Display` for an API error appends a `Debug` dump of the whole
//! `Status`; conditions, events, logs and CLI errors need the API server's message, its
//! reason and code, and for a 403 what to change.

/// One line for `error`: the API server's message, reason and code, and for a refusal
/// by RBAC (403) a hint to grant the verb. Never a `Debug` dump.
///
/// ```
/// use kube::core::Status;
/// let forbidden = kube::Error::Api(Box::new(Status::failure(
///     "services \"gw\" is forbidden: User \"op\" cannot create resource \"services\"",
///     "Forbidden",
/// ).with_code(403)));
/// let line = aigateway_runtime::operator::describe_kube_error(&forbidden);
/// assert!(line.starts_with("services \"gw\" is forbidden"));
/// assert!(line.contains("RBAC"));
/// assert!(!line.contains("Status {"));
/// ```
pub fn describe_kube_error(error: &kube::Error) -> String {
    let text = match error {
        kube::Error::Api(status) => {
            let message = if status.message.is_empty() {
                "the API server gave no message"
            } else {
                status.message.as_str()
            };
            let reason = if status.reason.is_empty() {
                format!("HTTP {}", status.code)
            } else {
                format!("{}, HTTP {}", status.reason, status.code)
            };
            let hint = if status.code == 403 {
                "; grant it to the operator's ServiceAccount in its RBAC (ClusterRole or Role)"
            } else {
                ""
            };
            format!("{message} ({reason}){hint}")
        }
        other => other.to_string(),
    };
    // One line, whatever the server or a transport error put in the text.
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    #[test]
    fn api_errors_are_one_line_with_reason_code_and_no_debug_dump() {
        let error = kube::Error::Api(Box::new(
            Status::failure("conflict\non two\tlines", "Conflict").with_code(409),
        ));
        assert_eq!(
            describe_kube_error(&error),
            "conflict on two lines (Conflict, HTTP 409)"
        );
    }

    #[test]
    fn only_a_forbidden_request_says_to_grant_rbac() {
        let forbidden =
            kube::Error::Api(Box::new(Status::failure("no", "Forbidden").with_code(403)));
        let missing =
            kube::Error::Api(Box::new(Status::failure("gone", "NotFound").with_code(404)));
        assert!(describe_kube_error(&forbidden).contains("RBAC"));
        assert!(!describe_kube_error(&missing).contains("RBAC"));
    }
}
