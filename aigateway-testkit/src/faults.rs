//! Fault injection: fail matching requests (the next N, or a fraction), add latency, cut
//! open watch streams, and compact the watch history so that resumed watches get 410.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::store::State;

/// Selects requests by verb, API group, resource, subresource, namespace and name; unset
/// parts match all.
///
/// Verbs are the audit-log verbs: `get`, `list`, `watch`, `create`, `update`, `patch`,
/// `delete`, `deletecollection`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestMatch {
    verb: Option<String>,
    group: Option<String>,
    resource: Option<String>,
    subresource: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
}

impl RequestMatch {
    /// Matches every resource request.
    pub fn any() -> Self {
        Self::default()
    }
    /// Only this verb (`patch`, `watch`, ...).
    pub fn verb(mut self, verb: &str) -> Self {
        self.verb = Some(verb.to_string());
        self
    }
    /// Only this API group (`""` for core).
    pub fn group(mut self, group: &str) -> Self {
        self.group = Some(group.to_string());
        self
    }
    /// Only this resource (plural, `deployments`).
    pub fn resource(mut self, resource: &str) -> Self {
        self.resource = Some(resource.to_string());
        self
    }
    /// Only this subresource (`status`); `""` selects requests to the object itself.
    pub fn subresource(mut self, subresource: &str) -> Self {
        self.subresource = Some(subresource.to_string());
        self
    }
    /// Only this namespace.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.to_string());
        self
    }
    /// Only this object name.
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }

    pub(crate) fn matches(&self, r: &RequestFacts<'_>) -> bool {
        let ok = |want: &Option<String>, got: &str| want.as_deref().is_none_or(|w| w == got);
        ok(&self.verb, r.verb)
            && ok(&self.group, r.group)
            && ok(&self.resource, r.resource)
            && ok(&self.subresource, r.subresource)
            && ok(&self.namespace, r.namespace)
            && ok(&self.name, r.name)
    }
}

/// What the fault layer knows about a request.
pub(crate) struct RequestFacts<'a> {
    pub verb: &'a str,
    pub group: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
}

#[derive(Clone, Debug)]
enum Action {
    Fail {
        status: u16,
        remaining: Option<u64>,
        fraction: f64,
    },
    Latency(Duration),
}

#[derive(Clone, Debug)]
struct Rule {
    matcher: RequestMatch,
    action: Action,
}

/// The decision for one request.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    pub latency: Duration,
    pub fail: Option<u16>,
}

/// Fault-injection hooks of an [`ApiServer`](crate::ApiServer); get them with
/// [`ApiServer::faults`](crate::ApiServer::faults).
pub struct Faults {
    rules: Mutex<Vec<Rule>>,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field(
                "rules",
                &*self
                    .rules
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            )
            .finish()
    }
}

impl Faults {
    pub(crate) fn new(state: Arc<Mutex<State>>) -> Self {
        Faults {
            rules: Mutex::new(Vec::new()),
            state,
        }
    }

    fn push(&self, matcher: RequestMatch, action: Action) {
        self.rules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Rule { matcher, action });
    }

    /// Fails the next `n` matching requests with `status` (500, 503, 409, 429, ...),
    /// answered as a `metav1.Status`.
    pub fn fail_next(&self, n: u64, matcher: RequestMatch, status: u16) {
        self.push(
            matcher,
            Action::Fail {
                status,
                remaining: Some(n),
                fraction: 1.0,
            },
        );
    }

    /// Fails each matching request with probability `fraction` (0.0..=1.0), until cleared.
    pub fn fail_fraction(&self, fraction: f64, matcher: RequestMatch, status: u16) {
        self.push(
            matcher,
            Action::Fail {
                status,
                remaining: None,
                fraction: fraction.clamp(0.0, 1.0),
            },
        );
    }

    /// Delays every matching request by `latency`, until cleared.
    pub fn add_latency(&self, matcher: RequestMatch, latency: Duration) {
        self.push(matcher, Action::Latency(latency));
    }

    /// Removes every failure and latency rule.
    pub fn clear(&self) {
        self.rules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// Ends every open watch stream now (clients see the stream close and re-watch).
    pub fn cut_watches(&self) {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .cut_watches();
    }

    /// Drops the retained event history: a watch from any resourceVersion issued before
    /// this call is answered with a `410 Expired` error event, forcing a relist.
    pub fn compact_history(&self) {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .compact();
    }

    /// Compacts the history and cuts open watches: every watcher must relist.
    pub fn expire_watches(&self) {
        let mut st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        st.compact();
        st.cut_watches();
    }

    pub(crate) fn decide(&self, facts: &RequestFacts<'_>) -> Verdict {
        let mut verdict = Verdict::default();
        let mut rules = self
            .rules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for rule in rules.iter_mut() {
            if !rule.matcher.matches(facts) {
                continue;
            }
            match &mut rule.action {
                Action::Latency(d) => verdict.latency += *d,
                Action::Fail {
                    status,
                    remaining,
                    fraction,
                } => {
                    if verdict.fail.is_some() || remaining == &Some(0) {
                        continue;
                    }
                    if *fraction < 1.0 && rand::random::<f64>() >= *fraction {
                        continue;
                    }
                    if let Some(n) = remaining {
                        *n -= 1;
                    }
                    verdict.fail = Some(*status);
                }
            }
        }
        rules.retain(|r| {
            !matches!(
                r.action,
                Action::Fail {
                    remaining: Some(0),
                    ..
                }
            )
        });
        verdict
    }
}

/// The `reason` Kubernetes uses for a status code.
pub(crate) fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}
