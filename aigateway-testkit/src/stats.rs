//! Request counters and the request log.

use std::collections::BTreeMap;

use serde::Serialize;

/// Verbs that change state.
pub const WRITE_VERBS: &[&str] = &["create", "update", "patch", "delete", "deletecollection"];

/// One counter: requests with this verb, group, resource and field manager.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatCount {
    /// Audit-log verb: get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    /// API group, `""` for core.
    pub group: String,
    /// Resource (plural), without subresource.
    pub resource: String,
    /// The `fieldManager` query parameter, `""` when absent.
    #[serde(rename = "fieldManager")]
    pub field_manager: String,
    /// Number of requests.
    pub count: u64,
}

/// A counter key: verb, group, resource and field manager.
pub(crate) type CountKey = (String, String, String, String);

/// A snapshot of the request counters; the JSON form is what `GET /testkit/stats` answers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// All non-zero counters, sorted by verb, group, resource and field manager.
    pub counts: Vec<StatCount>,
    /// The requests answered with an error status (`409` conflicts, `404`, `422`, injected
    /// faults, ...), by status code, counted like [`Stats::counts`].
    #[serde(rename = "failuresByCode")]
    pub failures: BTreeMap<u16, Vec<StatCount>>,
    /// Time the server spent handling resource requests, by verb, in microseconds: from
    /// the request's arrival to its answer, without the delays of the latency model or
    /// injected latency, and for watches only until the stream starts. It is where the
    /// server's own CPU goes, which in process is shared with the code under test.
    #[serde(rename = "busyMicrosByVerb")]
    pub busy_micros: BTreeMap<String, u64>,
}

fn to_counts(map: &BTreeMap<CountKey, u64>) -> Vec<StatCount> {
    map.iter()
        .map(|((verb, group, resource, fm), count)| StatCount {
            verb: verb.clone(),
            group: group.clone(),
            resource: resource.clone(),
            field_manager: fm.clone(),
            count: *count,
        })
        .collect()
}

impl Stats {
    pub(crate) fn from_map(map: &BTreeMap<CountKey, u64>) -> Self {
        Stats {
            counts: to_counts(map),
            ..Stats::default()
        }
    }

    /// Adds the failure counters (by status code) and the handling times (by verb).
    pub(crate) fn with_failures_and_times(
        mut self,
        failures: &BTreeMap<u16, BTreeMap<CountKey, u64>>,
        busy_micros: &BTreeMap<String, u64>,
    ) -> Self {
        self.failures = failures
            .iter()
            .map(|(code, map)| (*code, to_counts(map)))
            .collect();
        self.busy_micros = busy_micros.clone();
        self
    }

    /// Requests answered with `code` that were sent with `fieldManager=<manager>` (for
    /// example `409` conflicts of an operator's writes).
    pub fn failed_by_manager(&self, code: u16, manager: &str) -> u64 {
        self.failures
            .get(&code)
            .into_iter()
            .flatten()
            .filter(|c| c.field_manager == manager)
            .map(|c| c.count)
            .sum()
    }

    /// Total number of counted requests.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.count).sum()
    }

    /// Requests with this verb, on any resource.
    pub fn verb(&self, verb: &str) -> u64 {
        self.counts
            .iter()
            .filter(|c| c.verb == verb)
            .map(|c| c.count)
            .sum()
    }

    /// Requests with this verb on this resource (plural), any group.
    pub fn count(&self, verb: &str, resource: &str) -> u64 {
        self.counts
            .iter()
            .filter(|c| c.verb == verb && c.resource == resource)
            .map(|c| c.count)
            .sum()
    }

    /// All write requests (create, update, patch, delete, deletecollection).
    pub fn writes(&self) -> u64 {
        self.counts
            .iter()
            .filter(|c| WRITE_VERBS.contains(&c.verb.as_str()))
            .map(|c| c.count)
            .sum()
    }

    /// Write requests sent with `fieldManager=<manager>`.
    pub fn writes_by_manager(&self, manager: &str) -> u64 {
        self.counts
            .iter()
            .filter(|c| WRITE_VERBS.contains(&c.verb.as_str()) && c.field_manager == manager)
            .map(|c| c.count)
            .sum()
    }

    /// Write requests to one resource (plural).
    pub fn writes_to(&self, resource: &str) -> u64 {
        self.counts
            .iter()
            .filter(|c| WRITE_VERBS.contains(&c.verb.as_str()) && c.resource == resource)
            .map(|c| c.count)
            .sum()
    }

    /// The `GET /testkit/stats` JSON document.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// One request as the server saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Audit-log verb; empty for non-resource requests (discovery, `/version`).
    pub verb: String,
    /// API group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Resource (plural).
    pub resource: String,
    /// Subresource (`status`) or empty.
    pub subresource: String,
    /// Namespace or empty.
    pub namespace: String,
    /// Object name or empty.
    pub name: String,
    /// `fieldManager` query parameter or empty.
    pub field_manager: String,
    /// Whether `dryRun=All` was set.
    pub dry_run: bool,
    /// Response status code (for watches, the status when the stream started).
    pub status: u16,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_sum_the_right_counters() {
        let mut m = BTreeMap::new();
        m.insert(
            (
                "patch".into(),
                "apps".into(),
                "deployments".into(),
                "op".into(),
            ),
            3,
        );
        m.insert(("get".into(), "".into(), "configmaps".into(), "".into()), 2);
        m.insert(
            (
                "create".into(),
                "".into(),
                "configmaps".into(),
                "other".into(),
            ),
            1,
        );
        let s = Stats::from_map(&m);
        assert_eq!(s.total(), 6);
        assert_eq!(s.writes(), 4);
        assert_eq!(s.writes_by_manager("op"), 3);
        assert_eq!(s.writes_to("configmaps"), 1);
        assert_eq!(s.count("get", "configmaps"), 2);
        assert_eq!(s.verb("patch"), 3);
        assert_eq!(s.failed_by_manager(409, "op"), 0);
        let mut failures = BTreeMap::new();
        failures.insert(
            409,
            BTreeMap::from([(
                (
                    "patch".into(),
                    "apps".into(),
                    "deployments".into(),
                    "op".into(),
                ),
                1,
            )]),
        );
        let busy = BTreeMap::from([("patch".to_owned(), 1500)]);
        let s = s.with_failures_and_times(&failures, &busy);
        assert_eq!(s.failed_by_manager(409, "op"), 1);
        assert_eq!(s.failed_by_manager(409, "other"), 0);
        assert_eq!(s.failed_by_manager(404, "op"), 0);
        let j = s.to_json();
        assert_eq!(j["failuresByCode"]["409"][0]["resource"], "deployments");
        assert_eq!(j["busyMicrosByVerb"]["patch"], 1500);
        assert_eq!(j["counts"][0]["verb"], "create");
        assert_eq!(j["counts"][0]["fieldManager"], "other");
        assert_eq!(j["counts"][2]["count"], 3);
    }
}
