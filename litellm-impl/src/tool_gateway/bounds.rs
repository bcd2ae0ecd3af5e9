//! What one route may add to its gateway's config, and what happens when the routes
//! together would not fit into the gateway's ConfigMap.
//!
//! A route is written by whoever may write ToolRoutes in its namespace, and its entry
//! lands in a config that is the gateway owner's: a route must never be able to make
//! the gateway undeployable. So every string a route adds has a bound (checked before
//! the entry is built; a route over one is refused with reason `RouteTooLarge`):
//!
//! | what | bound |
//! |---|---|
//! | the upstream URL (`external.url`, or the ToolServer's URL) | [`MAX_UPSTREAM_URL_BYTES`] bytes |
//! | `toolFilter.allow`, `toolFilter.deny` | [`MAX_ENTRIES`](crate::tool_filter::MAX_ENTRIES) entries each (reason `InvalidToolFilter`, checked with the filter's syntax in [`tool_filter`](crate::tool_filter)) |
//! | each filter entry | [`MAX_ENTRY_LENGTH`](crate::tool_filter::MAX_ENTRY_LENGTH) characters (likewise) |
//! | the `mcp_servers` key | the route's namespace and name (63 and 253 characters at most) |
//!
//! And the config as a whole must fit into its ConfigMap
//! ([`MAX_CONFIG_MAP_DATA_BYTES`](crate::MAX_CONFIG_MAP_DATA_BYTES), the API server's
//! limit): when it would not, routes are refused one after the other, with reason
//! `ConfigTooLarge`, until the rest fits: routes of other namespaces before the gateway
//! owner's, each newest first (by creation time; ties: the greater namespace and name
//! first). Among a group, the routes the gateway already serves are older than the one
//! that tipped it over, so they stay; the owner's routes are refused only when no
//! route of another namespace is left. Only when the gateway's own config does not fit
//! without any route is the gateway itself refused.

use std::collections::{BTreeMap, VecDeque};

use aigateway_api::{NamespacedName, ToolRoute};
use serde_json::{Map, Value, json};

use super::{RouteOutcome, RouteProblem, RouteProblemReason, RouteState};
use crate::config;

/// The longest upstream URL a route may add to the config.
pub const MAX_UPSTREAM_URL_BYTES: usize = 2048;

fn too_large(message: String) -> RouteProblem {
    RouteProblem {
        reason: RouteProblemReason::RouteTooLarge,
        message,
    }
}

/// Refuses an upstream URL over [`MAX_UPSTREAM_URL_BYTES`].
pub(super) fn check_url(url: &str) -> Result<(), RouteProblem> {
    if url.len() <= MAX_UPSTREAM_URL_BYTES {
        return Ok(());
    }
    Err(too_large(format!(
        "the upstream URL is {} bytes, over the {MAX_UPSTREAM_URL_BYTES} a route may add to its gateway's config: use a shorter URL; not served",
        url.len()
    )))
}

/// The keys of the served routes in the order they are refused when the config would
/// not fit: routes of other namespaces before those of the gateway's own (its owner's
/// routes go last, so tenants cannot crowd them out), each group newest first (by
/// creation time, a route without one counting as newest; ties: the greater namespace
/// and name first).
pub(super) fn refusal_order(
    attached: &BTreeMap<NamespacedName, &ToolRoute>,
    outcomes: &[RouteOutcome],
    gateway_namespace: &str,
) -> VecDeque<String> {
    let mut served: Vec<(_, &NamespacedName, &String)> = outcomes
        .iter()
        .filter_map(|outcome| match &outcome.state {
            RouteState::Served(served) => {
                let created = attached
                    .get(&outcome.route)
                    .and_then(|route| route.metadata.creation_timestamp.clone());
                Some((created, &outcome.route, &served.key))
            }
            RouteState::NotServed(_) => None,
        })
        .collect();
    served.sort_by(|(a_time, a_id, _), (b_time, b_id, _)| {
        let own = |id: &NamespacedName| id.namespace == gateway_namespace;
        // `None` (no creation time) sorts as the newest.
        let newer = match (a_time, b_time) {
            (None, None) => std::cmp::Ordering::Equal,
            (None, Some(_)) => std::cmp::Ordering::Less,
            (Some(_), None) => std::cmp::Ordering::Greater,
            (Some(a), Some(b)) => b.cmp(a),
        };
        own(a_id)
            .cmp(&own(b_id))
            .then(newer)
            .then_with(|| b_id.cmp(a_id))
    });
    served.into_iter().map(|(_, _, key)| key.clone()).collect()
}

/// What the entry `key` adds to the config: the YAML it takes under `mcp_servers`.
fn entry_bytes(key: &str, entry: &Value) -> usize {
    let mut one = Map::new();
    one.insert(key.to_owned(), entry.clone());
    let yaml = config::to_yaml(&json!({ "mcp_servers": one })).unwrap_or_default();
    yaml.len().saturating_sub("mcp_servers:\n".len())
}

/// Takes keys from the front of `queue` (newest first) until the entries taken add up
/// to `excess` bytes, at least one; `elsewhere` is what a key holds in the config
/// besides its `mcp_servers` entry (the tool-filter guardrail's patterns).
pub(super) fn take_until(
    queue: &mut VecDeque<String>,
    servers: &Map<String, Value>,
    excess: usize,
    elsewhere: impl Fn(&str) -> usize,
) -> Vec<String> {
    let mut taken = Vec::new();
    let mut freed = 0;
    while let Some(key) = queue.pop_front() {
        freed += servers
            .get(&key)
            .map_or(0, |entry| entry_bytes(&key, entry))
            + elsewhere(&key);
        taken.push(key);
        if freed >= excess {
            break;
        }
    }
    taken
}

/// Why a route is refused for the config's size. It names no value of the gateway's
/// owner: the config is theirs.
pub(super) fn config_too_large(gateway_namespace: &str, gateway_name: &str) -> RouteProblem {
    RouteProblem {
        reason: RouteProblemReason::ConfigTooLarge,
        message: format!(
            "with this route the config of ToolGateway {gateway_namespace}/{gateway_name} would not fit into its ConfigMap ({} bytes at most), and routes of other namespaces are refused before the gateway's own, newest first, until the rest fits: shorten this route's URL and tool filter, or ask the gateway's owner for room; not served",
            crate::MAX_CONFIG_MAP_DATA_BYTES
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entries_taken_cover_the_excess_newest_first_and_at_least_one() {
        let mut servers = Map::new();
        for key in ["old", "mid", "new"] {
            servers.insert(key.to_owned(), json!({"url": "x".repeat(100)}));
        }
        let one = entry_bytes("new", &servers["new"]);
        assert!(one > 100, "{one}");
        let mut queue: VecDeque<String> = ["new", "mid", "old"].map(String::from).into();
        assert_eq!(take_until(&mut queue, &servers, 1, |_| 0), ["new"]);
        assert_eq!(
            take_until(&mut queue, &servers, one + 1, |_| 0),
            ["mid", "old"]
        );
        assert!(take_until(&mut queue, &servers, 1, |_| 0).is_empty());
    }
}
