//! Our generated CRDs against the ones agent-runtime-operator publishes.
//!
//! The upstream CRDs live in `tests/fixtures/upstream-crds/` (structure only; see
//! `scripts/import-upstream.py`). Every structural difference is reported; the only ones
//! allowed are the documented additions listed per kind below, and each of those must
//! actually be present, so the lists cannot silently go stale.

use std::collections::BTreeSet;

use aigateway_api::crds;
use serde_json::Value;

/// Schema keywords that change what the API server accepts, stores or defaults.
const COMPARED_KEYWORDS: &[&str] = &[
    "type",
    "format",
    "enum",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "minProperties",
    "maxProperties",
    "pattern",
    "default",
    "nullable",
    "x-kubernetes-map-type",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-validations",
    "anyOf",
    "oneOf",
    "allOf",
];

fn upstream(file: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/upstream-crds/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn ours(name: &str) -> Value {
    let crd = crds::all()
        .into_iter()
        .find(|crd| crd.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("we generate no CRD named {name}"));
    serde_json::to_value(crd).unwrap()
}

/// Every structural difference between two schemas, one line each.
fn schema_differences(path: &str, ours: &Value, theirs: &Value, out: &mut Vec<String>) {
    for keyword in COMPARED_KEYWORDS {
        let (a, b) = (ours.get(*keyword), theirs.get(*keyword));
        if !same_value(a, b) {
            out.push(format!(
                "{path}: {keyword}: ours {}, upstream {}",
                show(a),
                show(b)
            ));
        }
    }
    let required = |v: &Value| -> BTreeSet<String> {
        v.get("required")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (ra, rb) = (required(ours), required(theirs));
    if ra != rb {
        out.push(format!("{path}: required: ours {ra:?}, upstream {rb:?}"));
    }
    let properties = |v: &Value| {
        v.get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let (pa, pb) = (properties(ours), properties(theirs));
    for (name, schema) in &pa {
        match pb.get(name) {
            Some(other) => schema_differences(&format!("{path}.{name}"), schema, other, out),
            None => out.push(format!("{path}.{name}: only in ours")),
        }
    }
    for name in pb.keys().filter(|name| !pa.contains_key(*name)) {
        out.push(format!("{path}.{name}: only upstream"));
    }
    for nested in ["items", "additionalProperties"] {
        match (ours.get(nested), theirs.get(nested)) {
            (Some(a), Some(b)) if a.is_object() && b.is_object() => {
                schema_differences(&format!("{path}.{nested}"), a, b, out)
            }
            (a, b) if a != b => out.push(format!(
                "{path}: {nested}: ours {}, upstream {}",
                show(a),
                show(b)
            )),
            _ => {}
        }
    }
}

/// Equality that treats `1` and `1.0` alike: JSONSchemaProps keeps bounds as floats.
fn same_value(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn show(value: Option<&Value>) -> String {
    value.map_or_else(|| "absent".to_owned(), |v| v.to_string())
}

/// Every difference between two CRDs: identity, versions and schemas.
fn crd_differences(ours: &Value, theirs: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for pointer in [
        "/spec/group",
        "/spec/scope",
        "/spec/names/kind",
        "/spec/names/listKind",
        "/spec/names/plural",
        "/spec/names/singular",
        "/spec/names/categories",
    ] {
        if ours.pointer(pointer) != theirs.pointer(pointer) {
            out.push(format!(
                "{pointer}: ours {}, upstream {}",
                show(ours.pointer(pointer)),
                show(theirs.pointer(pointer))
            ));
        }
    }
    let versions = |v: &Value| {
        v.pointer("/spec/versions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (va, vb) = (versions(ours), versions(theirs));
    let names = |vs: &[Value]| vs.iter().map(|v| v["name"].to_string()).collect::<Vec<_>>();
    if names(&va) != names(&vb) {
        out.push(format!(
            "versions: ours {:?}, upstream {:?}",
            names(&va),
            names(&vb)
        ));
    }
    for (a, b) in va.iter().zip(&vb) {
        let version = a["name"].as_str().unwrap_or_default();
        for field in ["served", "storage", "subresources", "deprecated"] {
            if a.get(field) != b.get(field) {
                out.push(format!(
                    "{version}: {field}: ours {}, upstream {}",
                    show(a.get(field)),
                    show(b.get(field))
                ));
            }
        }
        schema_differences(
            version,
            &a["schema"]["openAPIV3Schema"],
            &b["schema"]["openAPIV3Schema"],
            &mut out,
        );
    }
    out
}

/// What conditions gain over upstream in every CRD: SSA merges them by type.
const CONDITIONS_LIST_MAP: &[&str] = &[
    r#"v1alpha1.status.conditions: x-kubernetes-list-type: ours "map", upstream absent"#,
    r#"v1alpha1.status.conditions: x-kubernetes-list-map-keys: ours ["type"], upstream absent"#,
];

fn assert_only_allowed(file: &str, extra_allowed: &[&str]) {
    let name = file.trim_end_matches(".json");
    let differences = crd_differences(&ours(name), &upstream(file));
    let allowed: BTreeSet<String> = CONDITIONS_LIST_MAP
        .iter()
        .chain(extra_allowed)
        .map(|s| (*s).to_owned())
        .collect();
    let found: BTreeSet<String> = differences.into_iter().collect();
    let unexpected: Vec<_> = found.difference(&allowed).collect();
    let missing: Vec<_> = allowed.difference(&found).collect();
    assert!(
        unexpected.is_empty() && missing.is_empty(),
        "{name}\nunexpected differences from upstream (fix the types):\n  {}\nallowed additions no longer present (update this list and the docs):\n  {}",
        unexpected
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
        missing
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
    );
}

#[test]
fn aigateway_matches_upstream_but_for_documented_additions() {
    assert_only_allowed(
        "aigateways.runtime.agentic-layer.ai.json",
        &["v1alpha1.status.url: only in ours"],
    );
}

#[test]
fn aigatewayclass_matches_upstream_but_for_documented_additions() {
    assert_only_allowed(
        "aigatewayclasses.runtime.agentic-layer.ai.json",
        &[
            r#"v1alpha1.spec.controller: pattern: ours "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\\/[A-Za-z0-9\\/\\-._~%!$&'()*+,;=:]+$", upstream absent"#,
            "v1alpha1.spec.controller: minLength: ours 1, upstream absent",
            "v1alpha1.spec.controller: maxLength: ours 253, upstream absent",
        ],
    );
}

#[test]
fn guard_matches_upstream_but_for_documented_additions() {
    assert_only_allowed("guards.runtime.agentic-layer.ai.json", &[]);
}

#[test]
fn guardrailprovider_matches_upstream_but_for_documented_additions() {
    assert_only_allowed("guardrailproviders.runtime.agentic-layer.ai.json", &[]);
}

#[test]
fn the_comparison_catches_a_renamed_field_and_a_lost_default() {
    let theirs = upstream("aigateways.runtime.agentic-layer.ai.json");
    let mut renamed = theirs.clone();
    let spec = renamed
        .pointer_mut("/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties")
        .unwrap();
    let models = spec.as_object_mut().unwrap().remove("aiModels").unwrap();
    spec.as_object_mut()
        .unwrap()
        .insert("models".into(), models);
    let differences = crd_differences(&renamed, &theirs);
    assert!(
        differences.contains(&"v1alpha1.spec.models: only in ours".to_owned()),
        "{differences:?}"
    );
    assert!(
        differences.contains(&"v1alpha1.spec.aiModels: only upstream".to_owned()),
        "{differences:?}"
    );

    let mut no_default = theirs.clone();
    no_default
        .pointer_mut("/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/port")
        .unwrap()
        .as_object_mut()
        .unwrap()
        .remove("default");
    assert_eq!(
        crd_differences(&no_default, &theirs),
        vec!["v1alpha1.spec.port: default: ours absent, upstream 80".to_owned()]
    );
}

#[test]
fn documented_additions_printer_columns_and_short_names() {
    let gateway = ours("aigateways.runtime.agentic-layer.ai");
    let columns: Vec<&str> = gateway["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Class", "Port", "Programmed", "Ready", "Age"]);
    assert_eq!(
        gateway["spec"]["names"]["shortNames"],
        serde_json::json!(["aigw"])
    );

    let class = ours("aigatewayclasses.runtime.agentic-layer.ai");
    let columns: Vec<&str> = class["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Controller", "Accepted", "Age"]);
    assert_eq!(
        class["spec"]["names"]["shortNames"],
        serde_json::json!(["aigwclass"])
    );
}

/// What our class CRDs add over upstream's: the controller-name rule of
/// `aigateway_api::class::validate_controller_name`.
const CONTROLLER_NAME_RULE: &[&str] = &[
    r#"v1alpha1.spec.controller: pattern: ours "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\\/[A-Za-z0-9\\/\\-._~%!$&'()*+,;=:]+$", upstream absent"#,
    "v1alpha1.spec.controller: minLength: ours 1, upstream absent",
    "v1alpha1.spec.controller: maxLength: ours 253, upstream absent",
];

#[test]
fn toolgateway_matches_upstream_but_for_documented_additions() {
    assert_only_allowed("toolgateways.runtime.agentic-layer.ai.json", &[]);
}

#[test]
fn toolgatewayclass_matches_upstream_but_for_documented_additions() {
    assert_only_allowed(
        "toolgatewayclasses.runtime.agentic-layer.ai.json",
        CONTROLLER_NAME_RULE,
    );
}

#[test]
fn toolroute_matches_upstream_but_for_documented_additions() {
    assert_only_allowed("toolroutes.runtime.agentic-layer.ai.json", &[]);
}

#[test]
fn toolserver_matches_upstream_but_for_documented_additions() {
    assert_only_allowed("toolservers.runtime.agentic-layer.ai.json", &[]);
}

#[test]
fn agentgateway_matches_upstream_but_for_documented_additions() {
    assert_only_allowed("agentgateways.runtime.agentic-layer.ai.json", &[]);
}

#[test]
fn agentgatewayclass_matches_upstream_but_for_documented_additions() {
    assert_only_allowed(
        "agentgatewayclasses.runtime.agentic-layer.ai.json",
        CONTROLLER_NAME_RULE,
    );
}
