//! The install bundle's ClusterRole grants exactly what the runtime derives from the two
//! LiteLLM implementations' declarations (`aigateway_runtime::rbac::ClusterRules`): a
//! hand-written rule can neither miss a verb the loop needs nor grant one it does not.

use std::collections::BTreeSet;

use aigateway_runtime::rbac::{ClusterRules, lease_rules};
use litellm_impl::bundle::{cluster_rules, namespace_rules};
use litellm_impl::{LiteLlmGateway, LiteLlmToolGateway, RenderSettings};
use serde_json::Value;

/// Every `(apiGroup, resource, verb)` a list of rules grants.
fn triples(rules: &Value) -> BTreeSet<(String, String, String)> {
    let strings = |rule: &Value, field: &str| -> Vec<String> {
        rule[field]
            .as_array()
            .unwrap_or_else(|| panic!("rule without {field}: {rule}"))
            .iter()
            .map(|v| v.as_str().expect("strings").to_owned())
            .collect()
    };
    let mut out = BTreeSet::new();
    for rule in rules.as_array().expect("a list of rules") {
        for group in strings(rule, "apiGroups") {
            for resource in strings(rule, "resources") {
                for verb in strings(rule, "verbs") {
                    out.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    out
}

#[test]
fn the_bundle_grants_exactly_what_the_implementations_declare() {
    let generated = ClusterRules::new()
        .gateway(&LiteLlmGateway::new(RenderSettings::default()))
        .gateway(&LiteLlmToolGateway::new(RenderSettings::default()));
    let bundle = triples(&cluster_rules());
    let derived = generated.grants();
    let missing: Vec<_> = derived.difference(&bundle).collect();
    let extra: Vec<_> = bundle.difference(&derived).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "the bundle lacks {missing:?} and grants beyond the declarations {extra:?}"
    );
    // The generated rules, as data, say the same.
    let as_json = serde_json::to_value(generated.rules()).expect("rules serialise");
    assert_eq!(triples(&as_json), bundle);

    let lease = serde_json::to_value(lease_rules()).expect("rules serialise");
    assert_eq!(triples(&lease), triples(&namespace_rules()));
}
