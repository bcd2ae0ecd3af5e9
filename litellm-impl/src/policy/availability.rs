//! [`LiteLlmAvailabilityPolicy`]: how many replicas of a whole AiGateway run (fixed, or
//! an autoscaler's range), how many may be down at once (a PodDisruptionBudget, the
//! rollout), their resources and their spread across nodes.

use aigateway_api::AiGateway;
use aigateway_api::policy::{PolicyStatus, PolicyTargetReference, TargetedPolicy};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{PolicyRefusal, whole_gateway_only};

/// The most replicas a policy may ask for (fixed or as an autoscaler's maximum).
pub const MAX_REPLICAS: i32 = 100;

/// How an AiGateway stays available.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "litellm.aigateway.agentic-layer.ai",
    version = "v1alpha1",
    kind = "LiteLLMAvailabilityPolicy",
    root = "LiteLlmAvailabilityPolicy",
    plural = "litellmavailabilitypolicies",
    shortname = "llmavailabilitypolicy",
    namespaced,
    status = "PolicyStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct LiteLlmAvailabilityPolicySpec {
    /// The AiGateways, in the policy's namespace; whole gateways only (no `sectionName`).
    #[schemars(length(min = 1, max = 16))]
    pub target_refs: Vec<PolicyTargetReference>,
    /// A fixed number of replicas (not with `autoscaling`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub replicas: Option<i32>,
    /// A HorizontalPodAutoscaler owns the number of replicas (not with `replicas`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
    /// A PodDisruptionBudget: how many replicas a node drain may take down at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disruption_budget: Option<DisruptionBudget>,
    /// How a rollout replaces replicas (the Deployment's rolling update).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// CPU and memory of the LiteLLM container, replacing the operator's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// Prefer replicas on different nodes (a topology spread on `kubernetes.io/hostname`
    /// that still schedules when it cannot be met).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub spread_across_nodes: bool,
}

/// An autoscaler's range and targets.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Autoscaling {
    /// The fewest replicas (1 when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub min_replicas: Option<i32>,
    /// The most replicas.
    #[schemars(range(min = 1, max = 100))]
    pub max_replicas: i32,
    /// Average CPU use, in percent of the request, the autoscaler aims for (80 when
    /// neither target is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub cpu_utilization: Option<i32>,
    /// Average memory use, in percent of the request, the autoscaler aims for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub memory_utilization: Option<i32>,
}

/// One of `minAvailable` or `maxUnavailable`: a number of replicas or a percentage.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DisruptionBudget {
    /// Replicas that stay up during a voluntary disruption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<IntOrString>,
    /// Replicas a voluntary disruption may take down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
}

/// The Deployment's rolling update: numbers of replicas or percentages.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// Replicas created above the desired number during a rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,
    /// Replicas that may be unavailable during a rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
}

/// CPU and memory quantities (`500m`, `2Gi`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    /// What the scheduler reserves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<CpuMemory>,
    /// The most the container may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<CpuMemory>,
}

/// A CPU and a memory quantity.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct CpuMemory {
    /// CPU, e.g. `500m` or `2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32))]
    pub cpu: Option<String>,
    /// Memory, e.g. `512Mi` or `2G`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32))]
    pub memory: Option<String>,
}

impl TargetedPolicy for LiteLlmAvailabilityPolicy {
    fn target_refs(&self) -> &[PolicyTargetReference] {
        &self.spec.target_refs
    }
}

/// A checked availability policy: its spec, every value known to be accepted by the API
/// server (so applying the children never fails on it).
#[derive(Clone, Debug, PartialEq)]
pub struct AvailabilitySettings(pub LiteLlmAvailabilityPolicySpec);

/// What `policy` sets on `gateway`, or why it cannot be applied. Nothing is looked up.
pub fn check_availability(
    policy: &LiteLlmAvailabilityPolicy,
    gateway: &AiGateway,
) -> Result<AvailabilitySettings, PolicyRefusal> {
    let spec = &policy.spec;
    let invalid = |message: String| Err(PolicyRefusal::Invalid(message));
    if policy.namespace() != gateway.namespace() {
        return invalid("a policy configures gateways in its own namespace only".to_owned());
    }
    whole_gateway_only("availability", &spec.target_refs, gateway)?;
    let replicas_ok = |n: i32| (1..=MAX_REPLICAS).contains(&n);
    if spec.replicas.is_some_and(|n| !replicas_ok(n)) {
        return invalid(format!("replicas must be 1 to {MAX_REPLICAS}"));
    }
    if let Some(scaling) = &spec.autoscaling {
        if spec.replicas.is_some() {
            return invalid(
                "set replicas or autoscaling, not both: the autoscaler owns the number of replicas"
                    .to_owned(),
            );
        }
        let min = scaling.min_replicas.unwrap_or(1);
        if !replicas_ok(min) || !replicas_ok(scaling.max_replicas) || min > scaling.max_replicas {
            return invalid(format!(
                "autoscaling needs 1 <= minReplicas <= maxReplicas <= {MAX_REPLICAS}"
            ));
        }
        let percent_ok = |p: Option<i32>| p.is_none_or(|p| (1..=100).contains(&p));
        if !percent_ok(scaling.cpu_utilization) || !percent_ok(scaling.memory_utilization) {
            return invalid("cpuUtilization and memoryUtilization must be 1 to 100".to_owned());
        }
    }
    if let Some(budget) = &spec.disruption_budget {
        let set = [&budget.min_available, &budget.max_unavailable];
        let ([Some(value), None] | [None, Some(value)]) = set else {
            return invalid(
                "disruptionBudget needs exactly one of minAvailable and maxUnavailable".to_owned(),
            );
        };
        check_count("disruptionBudget", value)?;
    }
    if let Some(rollout) = &spec.rollout {
        for value in [&rollout.max_surge, &rollout.max_unavailable]
            .into_iter()
            .flatten()
        {
            check_count("rollout", value)?;
        }
        // Checked counts: a percentage is digits then `%`, so `00%` is zero too.
        let zero = |v: &Option<IntOrString>| match v {
            Some(IntOrString::Int(n)) => *n == 0,
            Some(IntOrString::String(s)) => s.trim_end_matches('%').bytes().all(|b| b == b'0'),
            None => false,
        };
        if zero(&rollout.max_surge) && zero(&rollout.max_unavailable) {
            return invalid(
                "rollout cannot have both maxSurge and maxUnavailable 0: no replica could ever be replaced"
                    .to_owned(),
            );
        }
    }
    if let Some(resources) = &spec.resources {
        let quantities = [&resources.requests, &resources.limits]
            .into_iter()
            .flatten()
            .flat_map(|list| [&list.cpu, &list.memory])
            .flatten();
        for quantity in quantities {
            if !is_quantity(quantity) {
                return invalid(format!(
                    "resources: {:?} is not a quantity such as 500m, 2 or 512Mi",
                    quantity.escape_debug().to_string()
                ));
            }
        }
    }
    Ok(AvailabilitySettings(spec.clone()))
}

/// A count of replicas (0 to [`MAX_REPLICAS`]) or a percentage (`0%` to `100%`).
fn check_count(field: &str, value: &IntOrString) -> Result<(), PolicyRefusal> {
    let ok = match value {
        IntOrString::Int(n) => (0..=MAX_REPLICAS).contains(n),
        // Digits only, as the API server's `^[0-9]+%$`: Rust's parse would take `+5`.
        IntOrString::String(s) => s
            .strip_suffix('%')
            .filter(|n| !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u8>().ok())
            .is_some_and(|n| n <= 100),
    };
    if ok {
        Ok(())
    } else {
        Err(PolicyRefusal::Invalid(format!(
            "{field}: counts are 0 to {MAX_REPLICAS} replicas or a percentage such as 25%"
        )))
    }
}

/// Whether `value` is a Kubernetes quantity as written by people: a decimal number with
/// an optional binary or decimal suffix (no exponents), at most 32 bytes.
fn is_quantity(value: &str) -> bool {
    const SUFFIXES: [&str; 13] = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "m", "k", "M", "G", "T", "P", "E",
    ];
    if value.is_empty() || value.len() > 32 {
        return false;
    }
    let number = SUFFIXES
        .iter()
        .find_map(|suffix| value.strip_suffix(suffix))
        .unwrap_or(value);
    let mut parts = number.splitn(2, '.');
    let whole = parts.next().unwrap_or_default();
    let fraction = parts.next();
    !whole.is_empty()
        && whole.chars().all(|c| c.is_ascii_digit())
        && fraction.is_none_or(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_people_write_are_accepted_and_nothing_else() {
        for ok in ["500m", "2", "0.5", "512Mi", "2G", "1.5Gi"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in [
            "",
            "-1",
            "1e3",
            "2 Gi",
            "os.environ/X",
            "Gi",
            ".5",
            "1.",
            &"9".repeat(40),
        ] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }
}
