//! The status an attached object gets, decided from the implementation's
//! [`AttachedDecision`] and the gateway's state: pure, so that "what does a ToolRoute
//! say, and when" is answered in one place and tested without a cluster.

use aigateway_api::conditions::{NewCondition, reasons, types};

use crate::attached::AttachedDecision;
use crate::conditions;

/// The gateway's state as far as its attached objects are concerned. It carries no
/// message: an attached object may belong to another tenant, who must not read the
/// gateway owner's problems (they may quote the owner's annotations or patch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GatewayState {
    /// Nothing could be applied (invalid spec, missing reference, name conflict).
    NotProgrammed,
    /// Applied, not (all) serving the config applied yet: rolling out, or pods failing.
    NotReady,
    /// Serving what was applied.
    Ready,
}

/// What an attached object's status should be: conditions to set, our condition types
/// to remove, and `status.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AttachedStatus {
    pub(crate) set: Vec<NewCondition>,
    pub(crate) remove: Vec<String>,
    pub(crate) url: Option<String>,
}

/// The status an attached object gets, from the implementation's decision (`None`: it
/// made none), the state of `gateway` (`namespace/name`) and the URL the object
/// publishes now (`published`).
///
/// A URL is published once the gateway is `Ready` with a config that serves the object
/// (readiness means the rolled-out pods run the config just applied). Once published,
/// it stays, with `Ready=True` and the same message, for as long as the object is served
/// and the gateway programmed: later rollouts of the gateway (another route's edit) do
/// not touch it, so neither agents reading the URL nor the API server see anything.
/// Messages never repeat the gateway's own problems.
pub(crate) fn attached_status(
    decision: Option<&AttachedDecision>,
    state: GatewayState,
    gateway: &str,
    published: Option<&str>,
) -> AttachedStatus {
    let bounded = |c: NewCondition| NewCondition {
        message: conditions::bounded(c.message),
        ..c
    };
    let resolved_refs = vec![types::RESOLVED_REFS.to_owned()];
    let (accepted, url) = match decision {
        Some(AttachedDecision::Refuse { reason, message }) => {
            let refused = |type_| bounded(NewCondition::new(type_, false, reason, message.clone()));
            return AttachedStatus {
                set: vec![refused(types::ACCEPTED), refused(types::READY)],
                remove: resolved_refs,
                url: None,
            };
        }
        Some(AttachedDecision::Unresolved { reason, message }) => {
            let unresolved =
                |type_| bounded(NewCondition::new(type_, false, reason, message.clone()));
            return AttachedStatus {
                set: vec![
                    bounded(NewCondition::new(
                        types::ACCEPTED,
                        true,
                        reasons::ACCEPTED,
                        format!("attached to gateway {gateway}"),
                    )),
                    unresolved(types::RESOLVED_REFS),
                    unresolved(types::READY),
                ],
                remove: Vec::new(),
                url: None,
            };
        }
        Some(AttachedDecision::Serve { url, note }) => (
            NewCondition::new(
                types::ACCEPTED,
                true,
                reasons::ACCEPTED,
                match note {
                    Some(note) => format!("attached to gateway {gateway}; {note}"),
                    None => format!("attached to gateway {gateway}"),
                },
            ),
            Some(url),
        ),
        None => (
            NewCondition::unknown(
                types::ACCEPTED,
                reasons::PENDING,
                format!("gateway {gateway} has not decided on this object yet"),
            ),
            None,
        ),
    };
    let served = |url: &String| {
        (
            NewCondition::new(
                types::READY,
                true,
                reasons::READY,
                format!("served by gateway {gateway} at {url}"),
            ),
            Some(url.clone()),
        )
    };
    let (ready, url) = match (state, url) {
        (GatewayState::NotProgrammed, _) => (
            NewCondition::new(
                types::READY,
                false,
                reasons::GATEWAY_NOT_PROGRAMMED,
                format!(
                    "gateway {gateway} is not programmed; its owner sees why in the gateway's status"
                ),
            ),
            None,
        ),
        (_, None) => (
            NewCondition::new(
                types::READY,
                false,
                reasons::PENDING,
                format!("gateway {gateway} has not decided on this object yet"),
            ),
            None,
        ),
        (GatewayState::Ready, Some(url)) => served(url),
        // Published before and still served at the same URL: the rollout in progress
        // (another object's change, or this one's edit) does not take it away.
        (GatewayState::NotReady, Some(url)) if published == Some(url.as_str()) => served(url),
        (GatewayState::NotReady, Some(_)) => (
            NewCondition::new(
                types::READY,
                false,
                reasons::GATEWAY_NOT_READY,
                format!(
                    "gateway {gateway} does not serve this object yet: the URL is published once its pods run the config that includes it"
                ),
            ),
            None,
        ),
    };
    AttachedStatus {
        set: vec![bounded(accepted), bounded(ready)],
        remove: resolved_refs,
        url,
    }
}

#[cfg(test)]
mod tests {
    use aigateway_api::conditions::Reason;

    use super::*;

    #[test]
    fn a_note_on_a_served_object_reaches_its_accepted_message_and_never_a_refusal() {
        let served = AttachedDecision::serve("http://gw/mcp/a").with_note("route b shares its key");
        let status = attached_status(Some(&served), GatewayState::Ready, "ns/gw", None);
        assert_eq!(
            status.set[0].message,
            "attached to gateway ns/gw; route b shares its key"
        );
        assert_eq!(status.url.as_deref(), Some("http://gw/mcp/a"));
        let refused =
            AttachedDecision::refuse(Reason::from_static("Bad"), "no").with_note("ignored");
        assert_eq!(
            refused,
            AttachedDecision::refuse(Reason::from_static("Bad"), "no")
        );
    }

    fn types_and_statuses(conditions: &[NewCondition]) -> Vec<(&str, &str, &str)> {
        conditions
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_str()))
            .collect()
    }

    #[test]
    fn a_new_url_is_published_once_the_gateway_serves_it() {
        let serve = AttachedDecision::serve("http://gw.ns.svc.cluster.local/mcp/r");
        let status = attached_status(Some(&serve), GatewayState::Ready, "ns/gw", None);
        assert_eq!(
            status.url.as_deref(),
            Some("http://gw.ns.svc.cluster.local/mcp/r")
        );
        assert_eq!(
            types_and_statuses(&status.set),
            [("Accepted", "True", "Accepted"), ("Ready", "True", "Ready")]
        );
        assert_eq!(status.remove, ["ResolvedRefs"]);
        let status = attached_status(Some(&serve), GatewayState::NotReady, "ns/gw", None);
        assert_eq!(status.url, None);
        assert_eq!(
            types_and_statuses(&status.set),
            [
                ("Accepted", "True", "Accepted"),
                ("Ready", "False", reasons::GATEWAY_NOT_READY)
            ]
        );
        let status = attached_status(Some(&serve), GatewayState::NotProgrammed, "ns/gw", None);
        assert_eq!(status.url, None);
        assert_eq!(status.set[1].reason, reasons::GATEWAY_NOT_PROGRAMMED);
    }

    #[test]
    fn a_published_url_survives_a_rollout_with_the_very_same_status() {
        let url = "http://gw.ns.svc.cluster.local/mcp/r";
        let serve = AttachedDecision::serve(url);
        let ready = attached_status(Some(&serve), GatewayState::Ready, "ns/gw", Some(url));
        let rolling = attached_status(Some(&serve), GatewayState::NotReady, "ns/gw", Some(url));
        assert_eq!(
            ready, rolling,
            "nothing to write while another change rolls out"
        );
        assert_eq!(rolling.url.as_deref(), Some(url));
        // Not programmed any more: the URL goes.
        let broken = attached_status(
            Some(&serve),
            GatewayState::NotProgrammed,
            "ns/gw",
            Some(url),
        );
        assert_eq!(broken.url, None);
        // A URL the object publishes that is not the one decided proves nothing.
        let other = attached_status(
            Some(&serve),
            GatewayState::NotReady,
            "ns/gw",
            Some("http://elsewhere/mcp/r"),
        );
        assert_eq!(other.url, None);
    }

    #[test]
    fn messages_never_carry_the_gateways_own_problems() {
        let serve = AttachedDecision::serve("http://gw/mcp/r");
        for state in [GatewayState::NotProgrammed, GatewayState::NotReady] {
            let status = attached_status(Some(&serve), state, "ns/gw", None);
            for condition in &status.set {
                assert!(
                    condition.message.starts_with("attached to gateway ns/gw")
                        || condition.message.starts_with("gateway ns/gw "),
                    "{}",
                    condition.message
                );
            }
        }
    }

    #[test]
    fn a_refused_unresolved_or_undecided_object_gets_no_url() {
        let refuse = AttachedDecision::refuse(
            Reason::from_static("InvalidToolFilter"),
            "globs are not supported",
        );
        let status = attached_status(Some(&refuse), GatewayState::Ready, "ns/gw", Some("u"));
        assert_eq!(status.url, None);
        assert_eq!(
            types_and_statuses(&status.set),
            [
                ("Accepted", "False", "InvalidToolFilter"),
                ("Ready", "False", "InvalidToolFilter")
            ]
        );
        assert_eq!(status.remove, ["ResolvedRefs"]);
        let unresolved =
            AttachedDecision::unresolved(Reason::from_static("RefNotPermitted"), "no grant");
        let status = attached_status(Some(&unresolved), GatewayState::Ready, "ns/gw", Some("u"));
        assert_eq!(status.url, None);
        assert_eq!(
            types_and_statuses(&status.set),
            [
                ("Accepted", "True", "Accepted"),
                ("ResolvedRefs", "False", "RefNotPermitted"),
                ("Ready", "False", "RefNotPermitted")
            ]
        );
        assert!(status.remove.is_empty());
        let status = attached_status(None, GatewayState::Ready, "ns/gw", None);
        assert_eq!(status.url, None);
        assert_eq!(
            types_and_statuses(&status.set),
            [
                ("Accepted", "Unknown", reasons::PENDING),
                ("Ready", "False", reasons::PENDING)
            ]
        );
    }
}
