//! ToolRoute tool filters (`spec.toolFilter`), served with agent-runtime-operator's
//! meaning and enforced by the proxy itself.
//!
//! # The meaning
//! An entry of `allow` or `deny` is a tool name in which `*` matches any run of
//! characters (none too) and `?` exactly one; every other character stands for itself
//! and a pattern matches the whole name (agent-runtime-operator's ToolRoute reference).
//! A tool is exposed when `allow` is empty or one of its entries matches, and no `deny`
//! entry matches: deny wins. Entries are checked here ([`check`]); syntax the API does
//! not define is refused with the rule ([`FilterError`]).
//!
//! # Who enforces it
//! LiteLLM matches its own `allowed_tools` / `disallowed_tools` exactly (the pinned
//! release's `litellm/proxy/_experimental/mcp_server/utils.py: match_known_tool_name`,
//! used by `operations.py: filter_tools_by_allowed_tools` for tools/list and
//! `MCPServerManager.check_allowed_or_banned_tools` for tools/call); it has no pattern
//! matching for MCP tools. So the rendered config carries a custom guardrail, the Python
//! module [`MODULE_SOURCE`] shipped in the gateway's ConfigMap as [`MODULE_FILE`] next
//! to `config.yaml` (LiteLLM loads a `guardrail: <module>.<class>` from the config's
//! directory). As a `pre_mcp_call` guardrail with `default_on: true` it runs on every
//! tool of each upstream's tools/list answer (`tool_catalog_guard.py:
//! scan_tool_descriptions` hides a tool it refuses) and before every tools/call
//! (`MCPServerManager.pre_call_tool_check`, which fails the call), for the
//! `mcp_servers` entry the request resolved to. Where LiteLLM's exact lists mean the
//! same (every `deny` name without wildcards; `allow` when none of its entries has
//! one), they are rendered too, so LiteLLM also applies them itself.
//!
//! The guardrail goes first in `guardrails` and is put back after the config patch is
//! merged ([`RouteFilters::enforce`]): a patch that sets its own `guardrails` list
//! cannot drop the routes' filters by accident.

use aigateway_api::{NamespacedName, ToolFilter};
use serde_json::{Map, Value, json};

use crate::config::refuse_reference;

/// The `guardrail_name` of the filter guardrail. `_` never occurs in a Kubernetes name,
/// so no Guard's name collides with it.
pub const GUARDRAIL_NAME: &str = "aigateway_tool_filter";

/// The ConfigMap key (and so the file name next to `config.yaml`) of the guardrail's
/// module.
pub const MODULE_FILE: &str = "aigateway_tool_filter.py";

/// The guardrail's Python module.
pub const MODULE_SOURCE: &str = include_str!("tool_filter.py");

/// The `guardrail` value naming the module's class.
pub const GUARDRAIL_CLASS: &str = "aigateway_tool_filter.ToolFilterGuardrail";

/// The longest entry: the longest tool name the MCP specification allows.
pub const MAX_ENTRY_LENGTH: usize = 128;

/// The most entries `allow` or `deny` may have.
pub const MAX_ENTRIES: usize = 128;

/// The two wildcards the API defines.
const WILDCARDS: [char; 2] = ['*', '?'];

/// The rule every entry follows, as a message states it.
pub const RULE: &str = "an entry is a tool name of 1 to 128 letters, digits, '_', '-' and '.', in which '*' matches any run of characters and '?' exactly one";

/// Why a filter is refused: the entry and the rule it breaks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("spec.toolFilter.{field}{position} {problem}: {rule}; not served until then", rule = RULE)]
pub struct FilterError {
    /// `allow` or `deny`.
    pub field: &'static str,
    /// `[index] "entry"` (escaped), or empty when the list as a whole is refused.
    pub position: String,
    /// What is wrong with it.
    pub problem: String,
}

/// A `spec.toolFilter` whose entries all follow [`RULE`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckedFilter {
    allow: Vec<String>,
    deny: Vec<String>,
}

impl CheckedFilter {
    /// Whether it filters nothing (both lists empty).
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// LiteLLM's own `allowed_tools` and `disallowed_tools`, where they mean the same as
    /// the filter: every `deny` entry without a wildcard; `allow` when none of its
    /// entries has one (a partial allow list would hide what the patterns allow).
    pub fn native_fields(&self) -> Map<String, Value> {
        let mut fields = Map::new();
        if !self.allow.is_empty() && !self.allow.iter().any(|e| has_wildcard(e)) {
            fields.insert("allowed_tools".to_owned(), json!(self.allow));
        }
        let exact: Vec<&String> = self.deny.iter().filter(|e| !has_wildcard(e)).collect();
        if !exact.is_empty() {
            fields.insert("disallowed_tools".to_owned(), json!(exact));
        }
        fields
    }
}

fn has_wildcard(entry: &str) -> bool {
    entry.contains(WILDCARDS)
}

/// Checks every entry of `filter` against [`RULE`].
///
/// ```
/// use aigateway_api::ToolFilter;
/// use litellm_impl::tool_filter::check;
///
/// let sample = ToolFilter { allow: vec!["get_*".into(), "list_*".into()], deny: vec!["*delete*".into()] };
/// assert!(check(&sample).is_ok());
/// let regex = ToolFilter { allow: vec!["^get_.*$".into()], deny: vec![] };
/// assert!(check(&regex).unwrap_err().to_string().contains("'^'"));
/// ```
pub fn check(filter: &ToolFilter) -> Result<CheckedFilter, FilterError> {
    for (field, entries) in [("allow", &filter.allow), ("deny", &filter.deny)] {
        if entries.len() > MAX_ENTRIES {
            return Err(FilterError {
                field,
                position: String::new(),
                problem: format!(
                    "has {} entries, more than the {MAX_ENTRIES} this implementation serves (use patterns)",
                    entries.len()
                ),
            });
        }
        for (index, entry) in entries.iter().enumerate() {
            if let Some(problem) = entry_problem(entry) {
                let shown: String = entry.chars().take(MAX_ENTRY_LENGTH + 1).collect();
                return Err(FilterError {
                    field,
                    position: format!("[{index}] {shown:?}"),
                    problem,
                });
            }
        }
    }
    Ok(CheckedFilter {
        allow: filter.allow.clone(),
        deny: filter.deny.clone(),
    })
}

/// What is wrong with one entry, if anything.
fn entry_problem(entry: &str) -> Option<String> {
    if entry.is_empty() {
        return Some("is empty".to_owned());
    }
    if entry.len() > MAX_ENTRY_LENGTH {
        return Some(format!("is longer than {MAX_ENTRY_LENGTH} characters"));
    }
    if let Some(why) = refuse_reference(entry) {
        return Some(why);
    }
    let bad = entry.chars().find(|c| {
        !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') || WILDCARDS.contains(c))
    })?;
    let shown = bad.escape_debug();
    Some(if "[]{}()\\^$|+".contains(bad) {
        format!(
            "uses '{shown}', which is not part of the API's pattern syntax (only '*' and '?' are)"
        )
    } else {
        format!("holds '{shown}', which no MCP tool name has")
    })
}

/// One route's item under the guardrail's `routes`: the names the route's server goes
/// by (see `server_names`) and its patterns.
fn route_item(route: &NamespacedName, filter: &CheckedFilter, servers: Vec<String>) -> Value {
    json!({
        "route": format!("{}/{}", route.namespace, route.name),
        "servers": servers,
        "allow": filter.allow,
        "deny": filter.deny,
    })
}

/// The filters of a gateway's served routes, rendered into its config and ConfigMap.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteFilters {
    routes: Vec<(String, NamespacedName, CheckedFilter)>,
}

impl RouteFilters {
    /// Forgets the filter of the route at `mcp_servers` key `key` (a route that is no
    /// longer served).
    pub fn remove(&mut self, key: &str) {
        self.routes.retain(|(served, _, _)| served != key);
    }

    /// How many bytes of config the guardrail holds for the route at `key`: its item
    /// under the guardrail's `routes` (when it has a filter) and its line in the
    /// guardrail's `servers` (when any route has one), rendered as YAML at the depth they
    /// take in the config. Exact unless the owner's config patch gives the server other
    /// names (an alias adds a line), so a caller freeing room refuses no more routes than
    /// needed.
    pub fn config_bytes(&self, key: &str) -> usize {
        if self.is_empty() {
            return 0;
        }
        let size = |params: Value| {
            crate::config::to_yaml(&json!({ "guardrails": [{ "litellm_params": params }] }))
                .map(|yaml| yaml.len())
                .unwrap_or(0)
        };
        // Differences of renderings with and without the route, each list kept non-empty
        // by another entry (an empty list renders as `[]`).
        let other = || json!({"route": "", "servers": [], "allow": [], "deny": []});
        let mut with_items = vec![other()];
        with_items.extend(
            self.routes
                .iter()
                .filter(|(served, _, _)| served == key)
                .map(|(served, route, filter)| route_item(route, filter, vec![served.clone()])),
        );
        let routes = size(json!({ "routes": with_items })) - size(json!({ "routes": [other()] }));
        let servers = size(json!({ "servers": ["", key] })) - size(json!({ "servers": [""] }));
        routes + servers
    }

    /// Records the filter of the route served at `mcp_servers` key `key` (empty filters
    /// are not recorded).
    pub fn add(&mut self, key: &str, route: &NamespacedName, filter: CheckedFilter) {
        if !filter.is_empty() {
            self.routes.push((key.to_owned(), route.clone(), filter));
        }
    }

    /// Whether no route has a filter.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The files the ConfigMap carries next to `config.yaml`: the guardrail's module when
    /// any route has a filter.
    pub fn config_files(&self) -> Vec<(&'static str, &'static str)> {
        if self.is_empty() {
            Vec::new()
        } else {
            vec![(MODULE_FILE, MODULE_SOURCE)]
        }
    }

    /// The `guardrails` entry: each filtered route with every name LiteLLM may give its
    /// `mcp_servers` entry in `config`, and every name of every other entry (`servers`),
    /// so the guardrail refuses a server name it was not told about (fail closed).
    fn guardrail(&self, config: &Value) -> Value {
        let routes: Vec<Value> = self
            .routes
            .iter()
            .map(|(key, route, filter)| route_item(route, filter, server_names(config, key)))
            .collect();
        let servers: Vec<String> = config
            .get("mcp_servers")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|entries| entries.keys())
            .flat_map(|key| server_names(config, key))
            .collect();
        json!({
            "guardrail_name": GUARDRAIL_NAME,
            "litellm_params": {
                "guardrail": GUARDRAIL_CLASS,
                "mode": "pre_mcp_call",
                "default_on": true,
                "routes": routes,
                "servers": servers,
            },
        })
    }

    /// Puts the filter guardrail first in `config`'s `guardrails` (replacing any entry of
    /// the same name), after the config patch was merged. Does nothing without filters.
    pub fn enforce(&self, config: &mut Value) {
        if self.is_empty() {
            return;
        }
        let entry = self.guardrail(config);
        let Some(object) = config.as_object_mut() else {
            return;
        };
        let mut guardrails = match object.remove("guardrails") {
            Some(Value::Array(list)) => list,
            _ => Vec::new(),
        };
        guardrails
            .retain(|g| g.get("guardrail_name").and_then(Value::as_str) != Some(GUARDRAIL_NAME));
        guardrails.insert(0, entry);
        object.insert("guardrails".to_owned(), Value::Array(guardrails));
    }
}

/// Every name LiteLLM may hand a guardrail for the `mcp_servers` entry `key` of
/// `config`: it names a server `alias or server_name` (`mcp_rate_limit_server_name` in
/// `mcp_server_manager.py` and `tool_catalog_guard.py`), where the alias is the entry's
/// own `alias` or, without one, a name `litellm_settings.mcp_aliases` maps to the key
/// (`load_servers_from_config`). Every mapped name is included, not only the one LiteLLM
/// picks: a name too many makes the guardrail stricter, never laxer.
fn server_names(config: &Value, key: &str) -> Vec<String> {
    let mut names = vec![key.to_owned()];
    let entry = config.get("mcp_servers").and_then(|s| s.get(key));
    if let Some(alias) = entry.and_then(|e| e.get("alias")).and_then(Value::as_str) {
        names.push(alias.to_owned());
    }
    let aliases = config
        .pointer("/litellm_settings/mcp_aliases")
        .and_then(Value::as_object);
    for (alias, target) in aliases.into_iter().flatten() {
        if target.as_str() == Some(key) {
            names.push(alias.clone());
        }
    }
    names.retain(|name| !name.is_empty());
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|name| seen.insert(name.clone()));
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(allow: &[&str], deny: &[&str]) -> ToolFilter {
        ToolFilter {
            allow: allow.iter().map(|s| (*s).to_owned()).collect(),
            deny: deny.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn route(namespace: &str, name: &str) -> NamespacedName {
        NamespacedName {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    #[test]
    fn the_upstream_sample_and_exact_names_pass() {
        for ok in [
            filter(&["get_*", "list_*"], &["*delete*"]),
            filter(&["search.v2", "a-b_c", "?"], &[]),
            filter(&[], &["*"]),
        ] {
            assert!(check(&ok).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn syntax_the_api_does_not_define_is_refused_with_the_rule() {
        let cases = [
            (
                filter(&["[abc]_tool"], &[]),
                "spec.toolFilter.allow[0] \"[abc]_tool\" uses '['",
            ),
            (
                filter(&[], &["delete_{a,b}"]),
                "spec.toolFilter.deny[0] \"delete_{a,b}\" uses '{'",
            ),
            (filter(&["^get_.*$"], &[]), "uses '^'"),
            (filter(&[], &["delete\\*"]), "uses '\\\\'"),
            (
                filter(&["get", ""], &[]),
                "spec.toolFilter.allow[1] \"\" is empty",
            ),
            (
                filter(&[], &[" delete_item"]),
                "holds ' ', which no MCP tool name has",
            ),
            (
                filter(&[], &["os.environ/LITELLM_MASTER_KEY"]),
                "LiteLLM would resolve",
            ),
            (filter(&[], &["a/b"]), "holds '/'"),
            (filter(&[], &["bell\u{7}"]), "holds '\\u{7}'"),
        ];
        for (refused, expected) in cases {
            let message = check(&refused).unwrap_err().to_string();
            assert!(message.contains(expected), "{message}");
            assert!(message.contains(RULE), "{message}");
            assert!(message.ends_with("; not served until then"), "{message}");
            assert!(!message.contains('\n'), "{message}");
        }
        let long = "a".repeat(MAX_ENTRY_LENGTH + 1);
        let message = check(&filter(&[&long], &[])).unwrap_err().to_string();
        assert!(message.contains("longer than 128"), "{message}");
        assert!(
            message.len() < 600,
            "the entry is cut in the message: {message}"
        );
        let many: Vec<String> = (0..=MAX_ENTRIES).map(|i| format!("t{i}")).collect();
        let many = ToolFilter {
            allow: Vec::new(),
            deny: many,
        };
        let message = check(&many).unwrap_err().to_string();
        assert!(
            message.starts_with("spec.toolFilter.deny has 129 entries"),
            "{message}"
        );
    }

    #[test]
    fn native_lists_carry_only_what_litellm_matches_the_same_way() {
        let sample = check(&filter(&["get_*", "list_items"], &["*delete*", "drop"])).unwrap();
        assert_eq!(
            Value::Object(sample.native_fields()),
            json!({"disallowed_tools": ["drop"]})
        );
        let exact = check(&filter(&["echo"], &["drop"])).unwrap();
        assert_eq!(
            Value::Object(exact.native_fields()),
            json!({"allowed_tools": ["echo"], "disallowed_tools": ["drop"]})
        );
        assert!(
            check(&filter(&["get_?"], &["*x*"]))
                .unwrap()
                .native_fields()
                .is_empty()
        );
    }

    #[test]
    fn the_guardrail_goes_first_and_survives_a_patch_that_replaces_the_list() {
        let mut filters = RouteFilters::default();
        filters.add(
            "team__r",
            &route("team", "r"),
            check(&filter(&["get_*"], &[])).unwrap(),
        );
        filters.add(
            "team__open",
            &route("team", "open"),
            CheckedFilter::default(),
        );
        assert_eq!(filters.config_files(), [(MODULE_FILE, MODULE_SOURCE)]);

        // As if the patch had replaced `guardrails` and set an alias on the route.
        let mut config = json!({
            "mcp_servers": {"team__r": {"url": "http://x", "alias": "friendly"}},
            "guardrails": [
                {"guardrail_name": "pii", "litellm_params": {}},
                {"guardrail_name": GUARDRAIL_NAME, "litellm_params": {"routes": []}},
            ],
        });
        filters.enforce(&mut config);
        let guardrails = config["guardrails"].as_array().unwrap();
        assert_eq!(guardrails.len(), 2);
        assert_eq!(
            guardrails[0],
            json!({
                "guardrail_name": GUARDRAIL_NAME,
                "litellm_params": {
                    "guardrail": GUARDRAIL_CLASS,
                    "mode": "pre_mcp_call",
                    "default_on": true,
                    "routes": [{"route": "team/r", "servers": ["team__r", "friendly"], "allow": ["get_*"], "deny": []}],
                    "servers": ["team__r", "friendly"],
                },
            })
        );
        assert_eq!(guardrails[1]["guardrail_name"], "pii");

        let mut without = json!({"mcp_servers": {}});
        RouteFilters::default().enforce(&mut without);
        assert_eq!(without, json!({"mcp_servers": {}}));
        assert!(RouteFilters::default().config_files().is_empty());
    }

    /// A patch that names a filtered route's server otherwise (its `alias`, or
    /// `litellm_settings.mcp_aliases`) names the route's filter too; every other server's
    /// names are listed, so the guardrail can refuse a name it does not know.
    #[test]
    fn every_name_a_patch_gives_a_server_is_rendered() {
        let mut filters = RouteFilters::default();
        filters.add(
            "team__r",
            &route("team", "r"),
            check(&filter(&["get_*"], &[])).unwrap(),
        );
        let mut config = json!({
            "mcp_servers": {
                "team__r": {"url": "http://x"},
                "team__open": {"url": "http://y", "alias": "open"},
            },
            "litellm_settings": {"mcp_aliases": {"friendly": "team__r", "other": "team__r", "o2": "team__open", "gone": "nowhere"}},
        });
        filters.enforce(&mut config);
        let params = &config["guardrails"][0]["litellm_params"];
        assert_eq!(
            params["routes"][0]["servers"],
            json!(["team__r", "friendly", "other"])
        );
        assert_eq!(
            params["servers"],
            json!(["team__open", "open", "o2", "team__r", "friendly", "other"])
        );
    }

    #[test]
    fn the_module_names_the_class_the_config_loads() {
        let (module, class) = GUARDRAIL_CLASS.split_once('.').unwrap();
        assert_eq!(format!("{module}.py"), MODULE_FILE);
        assert!(MODULE_SOURCE.contains(&format!("class {class}(CustomGuardrail)")));
    }
}
