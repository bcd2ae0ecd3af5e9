//! `docs/reference/crds.md` is generated from the CRDs, so the field reference cannot
//! drift from the code. Regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p aigateway-api --test docs_reference`.

use std::fmt::Write;

use aigateway_api::crds;
use serde_json::Value;

fn type_of(schema: &Value) -> String {
    if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        return "int or string".into();
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("array") => format!("[]{}", schema.get("items").map(type_of).unwrap_or_default()),
        Some("object") if schema.get("additionalProperties").is_some() => {
            format!("map[string]{}", type_of(&schema["additionalProperties"]))
        }
        Some(other) => other.to_owned(),
        None => "any".into(),
    }
}

fn validation(schema: &Value) -> String {
    let mut rules = Vec::new();
    let number = |v: &Value| v.as_f64().map(|f| format!("{f}")).unwrap_or_default();
    if let Some(v) = schema.get("enum").and_then(Value::as_array) {
        rules.push(format!(
            "one of {}",
            v.iter()
                .map(|e| format!("`{}`", e.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for (key, label) in [("minimum", "≥"), ("maximum", "≤")] {
        if let Some(v) = schema.get(key) {
            rules.push(format!("{label} {}", number(v)));
        }
    }
    for (key, label) in [
        ("minItems", "at least {} items"),
        ("minLength", "at least {} characters"),
        ("maxLength", "at most {} characters"),
    ] {
        if let Some(v) = schema.get(key) {
            rules.push(label.replace("{}", &number(v)));
        }
    }
    if let Some(format) = schema.get("format").and_then(Value::as_str) {
        rules.push(format!("format `{format}`"));
    }
    if schema.get("pattern").is_some() {
        rules.push("pattern (see CRD)".into());
    }
    if schema.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map") {
        rules.push("list-map by `type`".into());
    }
    rules.join("; ")
}

fn one_line(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

/// One table row per field, depth first; core Kubernetes types are not expanded.
fn rows(out: &mut String, path: &str, schema: &Value, required: bool, depth: usize) {
    let default = schema
        .get("default")
        .map(|d| format!("`{d}`"))
        .unwrap_or_default();
    let description = schema
        .get("description")
        .and_then(Value::as_str)
        .map(one_line)
        .unwrap_or_default();
    writeln!(
        out,
        "| `{path}` | {} | {} | {default} | {} | {description} |",
        type_of(schema),
        if required { "yes" } else { "" },
        validation(schema)
    )
    .unwrap();
    // EnvVar, EnvFromSource, ObjectReference and Condition are documented by Kubernetes.
    let core = [
        "env",
        "envFrom",
        "guardrails",
        "conditions",
        "providerRef",
        "apiKeySecretRef",
        "credentialsSecretRef",
    ];
    if depth > 0 && core.iter().any(|c| path.ends_with(c)) {
        return;
    }
    let target = if schema.get("type").and_then(Value::as_str) == Some("array") {
        &schema["items"]
    } else {
        schema
    };
    let suffix = if std::ptr::eq(target, schema) {
        ""
    } else {
        "[]"
    };
    let required_fields: Vec<&str> = target
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(properties) = target.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            rows(
                out,
                &format!("{path}{suffix}.{name}"),
                child,
                required_fields.contains(&name.as_str()),
                depth + 1,
            );
        }
    }
}

fn render() -> String {
    let mut out = String::from(
        "# CRD field reference\n\n\
         Generated from the Rust types by `aigateway-api/tests/docs_reference.rs`; do not edit by hand.\n\
         Regenerate with `UPDATE_GOLDEN=1 cargo test -p aigateway-api --test docs_reference`.\n\n\
         All kinds are in API group `runtime.agentic-layer.ai`, version `v1alpha1`. Fields of core\n\
         Kubernetes types (`EnvVar`, `EnvFromSource`, `ObjectReference`, `SecretKeySelector`,\n\
         `SecretReference`, `metav1.Condition`) are documented by Kubernetes and not expanded here.\n",
    );
    for crd in crds::all() {
        let value = serde_json::to_value(&crd).unwrap();
        let names = &value["spec"]["names"];
        let version = &value["spec"]["versions"][0];
        let schema = &version["schema"]["openAPIV3Schema"];
        writeln!(out, "\n## {}\n", names["kind"].as_str().unwrap()).unwrap();
        writeln!(
            out,
            "Scope: {}. Plural `{}`{}.\n",
            value["spec"]["scope"].as_str().unwrap(),
            names["plural"].as_str().unwrap(),
            names
                .get("shortNames")
                .map(|s| format!(", short names {s}"))
                .unwrap_or_default()
        )
        .unwrap();
        if let Some(columns) = version
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
        {
            let names: Vec<String> = columns
                .iter()
                .map(|c| format!("`{}`", c["name"].as_str().unwrap()))
                .collect();
            writeln!(out, "`kubectl get` columns: {}.\n", names.join(", ")).unwrap();
        }
        out.push_str("| field | type | required | default | validation | description |\n|---|---|---|---|---|---|\n");
        for part in ["spec", "status"] {
            if let Some(sub) = schema["properties"].get(part) {
                rows(&mut out, part, sub, false, 0);
            }
        }
    }
    out
}

#[test]
fn the_crd_field_reference_is_up_to_date() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/reference/crds.md");
    let expected = render();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &expected).unwrap();
    }
    let actual = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/reference/crds.md is stale. Regenerate with:\n    UPDATE_GOLDEN=1 cargo test -p aigateway-api --test docs_reference"
    );
}

#[test]
fn crd_descriptions_hold_no_rustdoc_link_syntax() {
    // Doc comments become CRD descriptions, which kubectl explain and this reference
    // show as text: an intra-doc link would read as "[`Type::item`]" there.
    let reference = render();
    let links: Vec<&str> = reference
        .lines()
        .filter(|line| line.contains("[`"))
        .collect();
    assert!(
        links.is_empty(),
        "rustdoc links in CRD descriptions:\n{}",
        links.join("\n")
    );
}
