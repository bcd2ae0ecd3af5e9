//! The install bundle's ClusterRole grants exactly what the runtime derives from the two
//! LiteLLM implementations' declarations (`aigateway_runtime::rbac::ClusterRules`): a
//! hand-written rule can neither miss a verb the loop needs nor grant one it does not.

use std::collections::BTreeSet;

use aigateway_runtime::rbac::{ClusterRules, lease_rules};
use litellm_impl::{LiteLlmGateway, LiteLlmToolGateway, RenderSettings};
use litellm_impl_cli::bundle::{cluster_rules, namespace_rules};
use serde_json::Value;

/// Every `(apiGroup, resource, verb, resourceName)` a list of rules grants; `*` when a
/// rule names no objects (it grants all of them).
fn grants(rules: &Value) -> BTreeSet<(String, String, String, String)> {
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
        let names = if rule["resourceNames"].is_array() {
            strings(rule, "resourceNames")
        } else {
            vec!["*".to_owned()]
        };
        for group in strings(rule, "apiGroups") {
            for resource in strings(rule, "resources") {
                for verb in strings(rule, "verbs") {
                    for name in &names {
                        out.insert((group.clone(), resource.clone(), verb.clone(), name.clone()));
                    }
                }
            }
        }
    }
    out
}

/// [`grants`] without the names: what `ClusterRules::grants` compares.
fn triples(rules: &Value) -> BTreeSet<(String, String, String)> {
    grants(rules)
        .into_iter()
        .map(|(group, resource, verb, _)| (group, resource, verb))
        .collect()
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
    // The generated rules, as data, say the same, down to the objects they name.
    let as_json = serde_json::to_value(generated.rules()).expect("rules serialise");
    assert_eq!(grants(&as_json), grants(&cluster_rules()));

    let lease = serde_json::to_value(lease_rules(litellm_impl_cli::bundle::DEFAULT_LEASE_NAME))
        .expect("rules serialise");
    assert_eq!(grants(&lease), grants(&namespace_rules()));
}
