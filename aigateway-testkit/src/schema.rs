//! CRD `openAPIV3Schema` handling: pruning of unknown fields, defaulting, and validation
//! with Kubernetes-style field errors.

use serde_json::{Map, Value};

/// One field error, as in `metav1.StatusCause`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FieldError {
    /// The `reason` of the cause (`FieldValueInvalid`, `FieldValueRequired`, ...).
    pub reason: &'static str,
    /// The field path, `spec.port`.
    pub field: String,
    /// The full message, `spec.port: Invalid value: 0: ...`.
    pub message: String,
}

fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn render(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_true(s: &Value, key: &str) -> bool {
    s.get(key).and_then(Value::as_bool) == Some(true)
}

/// Removes fields the schema does not know; returns their paths.
pub(crate) fn prune(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut unknown = Vec::new();
    if let Some(m) = obj.as_object_mut() {
        for (k, v) in m.iter_mut() {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            if let Some(s) = schema.get("properties").and_then(|p| p.get(k)) {
                prune_value(s, v, k, &mut unknown);
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        let preserve = is_true(schema, "x-kubernetes-preserve-unknown-fields");
        if !preserve {
            m.retain(|k, _| {
                let keep = matches!(k.as_str(), "apiVersion" | "kind" | "metadata")
                    || props.is_some_and(|p| p.contains_key(k));
                if !keep {
                    unknown.push(k.clone());
                }
                keep
            });
        }
    }
    unknown
}

fn prune_value(schema: &Value, v: &mut Value, path: &str, unknown: &mut Vec<String>) {
    let preserve = is_true(schema, "x-kubernetes-preserve-unknown-fields");
    let embedded = is_true(schema, "x-kubernetes-embedded-resource");
    match v {
        Value::Object(m) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let addl = schema.get("additionalProperties");
            let mut remove = Vec::new();
            for (k, val) in m.iter_mut() {
                let p = child(path, k);
                if let Some(s) = props.and_then(|p| p.get(k)) {
                    prune_value(s, val, &p, unknown);
                } else if let Some(s) = addl.filter(|a| a.is_object()) {
                    prune_value(s, val, &p, unknown);
                } else if preserve
                    || addl.and_then(Value::as_bool) == Some(true)
                    || (embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata"))
                {
                } else {
                    remove.push(k.clone());
                }
            }
            for k in remove {
                m.remove(&k);
                unknown.push(child(path, &k));
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune_value(s, item, &format!("{path}[{i}]"), unknown);
                }
            }
        }
        _ => {}
    }
}

/// Fills in `default`s for missing fields.
pub(crate) fn apply_defaults(schema: &Value, v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, s) in props {
                    if !m.contains_key(k)
                        && let Some(d) = s.get("default")
                    {
                        m.insert(k.clone(), d.clone());
                    }
                    if let Some(val) = m.get_mut(k) {
                        apply_defaults(s, val);
                    }
                }
            }
            if let Some(s) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                let props = schema.get("properties").and_then(Value::as_object);
                for (k, val) in m.iter_mut() {
                    if props.is_none_or(|p| !p.contains_key(k)) {
                        apply_defaults(s, val);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for item in items {
                    apply_defaults(s, item);
                }
            }
        }
        _ => {}
    }
}

/// Validates a whole custom resource (the root skips `apiVersion`, `kind`, `metadata`).
pub(crate) fn validate(schema: &Value, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(m) = obj.as_object() else {
        return errs;
    };
    let mut root = Map::new();
    for (k, v) in m {
        if !matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            root.insert(k.clone(), v.clone());
        }
    }
    let mut root_schema = schema.clone();
    if let Some(props) = root_schema
        .get_mut("properties")
        .and_then(Value::as_object_mut)
    {
        props.remove("metadata");
        props.remove("apiVersion");
        props.remove("kind");
    }
    if let Some(req) = root_schema
        .get_mut("required")
        .and_then(Value::as_array_mut)
    {
        req.retain(|r| !matches!(r.as_str(), Some("metadata" | "apiVersion" | "kind")));
    }
    validate_value(&root_schema, &Value::Object(root), "", &mut errs);
    errs
}

fn invalid(errs: &mut Vec<FieldError>, path: &str, v: &Value, detail: String) {
    errs.push(FieldError {
        reason: "FieldValueInvalid",
        field: path.to_string(),
        message: format!("{path}: Invalid value: {}: {detail}", render(v)),
    });
}

fn validate_value(schema: &Value, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let int_or_string = is_true(schema, "x-kubernetes-int-or-string");
    let ty = schema.get("type").and_then(Value::as_str);
    if v.is_null() {
        if is_true(schema, "nullable") || ty.is_none() {
            return;
        }
        errs.push(FieldError {
            reason: "FieldValueTypeInvalid",
            field: path.to_string(),
            message: format!(
                "{path}: Invalid value: \"null\": {path} in body must be of type {}: \"null\"",
                ty.unwrap_or("object")
            ),
        });
        return;
    }
    if int_or_string {
        let ok = matches!(v, Value::String(_)) || type_name(v) == "integer";
        if !ok {
            errs.push(FieldError {
                reason: "FieldValueTypeInvalid",
                field: path.to_string(),
                message: format!(
                    "{path}: Invalid value: \"{}\": {path} in body must be of type integer,string: \"{}\"",
                    type_name(v),
                    type_name(v)
                ),
            });
            return;
        }
    } else if let Some(t) = ty {
        let actual = type_name(v);
        let ok = match t {
            "integer" => {
                actual == "integer"
                    || v.as_f64()
                        .is_some_and(|f| f.fract() == 0.0 && f.is_finite())
            }
            "number" => matches!(actual, "integer" | "number"),
            other => other == actual,
        };
        if !ok {
            errs.push(FieldError {
                reason: "FieldValueTypeInvalid",
                field: path.to_string(),
                message: format!(
                    "{path}: Invalid value: \"{actual}\": {path} in body must be of type {t}: \"{actual}\""
                ),
            });
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(render).collect();
        errs.push(FieldError {
            reason: "FieldValueNotSupported",
            field: path.to_string(),
            message: format!(
                "{path}: Unsupported value: {}: supported values: {}",
                render(v),
                list.join(", ")
            ),
        });
    }
    match v {
        Value::Number(n) => validate_number(schema, v, n, path, errs),
        Value::String(s) => validate_string(schema, v, s, path, errs),
        Value::Array(items) => {
            let n = items.len() as u64;
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && n < min
            {
                invalid(
                    errs,
                    path,
                    &Value::from(n),
                    format!("{path} in body should have at least {min} items"),
                );
            }
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && n > max
            {
                errs.push(FieldError {
                    reason: "FieldValueTooMany",
                    field: path.to_string(),
                    message: format!("{path}: Too many: {n}: must have at most {max} items"),
                });
            }
            if is_true(schema, "uniqueItems") {
                for (i, a) in items.iter().enumerate() {
                    if items[..i].contains(a) {
                        errs.push(FieldError {
                            reason: "FieldValueDuplicate",
                            field: format!("{path}[{i}]"),
                            message: format!("{path}[{i}]: Duplicate value: {}", render(a)),
                        });
                    }
                }
            }
            if let Some(s) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate_value(s, item, &format!("{path}[{i}]"), errs);
                }
            }
        }
        Value::Object(m) => {
            if let Some(req) = schema.get("required").and_then(Value::as_array) {
                for r in req.iter().filter_map(Value::as_str) {
                    if !m.contains_key(r) {
                        let f = child(path, r);
                        errs.push(FieldError {
                            reason: "FieldValueRequired",
                            field: f.clone(),
                            message: format!("{f}: Required value"),
                        });
                    }
                }
            }
            let n = m.len() as u64;
            if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
                && n < min
            {
                invalid(
                    errs,
                    path,
                    &Value::from(n),
                    format!("{path} in body should have at least {min} properties"),
                );
            }
            if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
                && n > max
            {
                invalid(
                    errs,
                    path,
                    &Value::from(n),
                    format!("{path} in body should have at most {max} properties"),
                );
            }
            let props = schema.get("properties").and_then(Value::as_object);
            let addl = schema.get("additionalProperties");
            for (k, val) in m {
                let f = child(path, k);
                if let Some(s) = props.and_then(|p| p.get(k)) {
                    validate_value(s, val, &f, errs);
                } else if let Some(s) = addl.filter(|a| a.is_object()) {
                    validate_value(s, val, &f, errs);
                } else if addl.and_then(Value::as_bool) == Some(false) && props.is_some() {
                    errs.push(FieldError {
                        reason: "FieldValueForbidden",
                        field: f.clone(),
                        message: format!("{f}: Forbidden: additional properties are not allowed"),
                    });
                }
            }
        }
        _ => {}
    }
    validate_combinators(schema, v, path, errs);
}

fn validate_combinators(schema: &Value, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            validate_value(s, v, path, errs);
        }
    }
    let passes = |s: &Value| {
        let mut e = Vec::new();
        validate_value(s, v, path, &mut e);
        e.is_empty()
    };
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array)
        && !any.is_empty()
        && !any.iter().any(passes)
    {
        invalid(
            errs,
            path,
            v,
            format!("{path} in body must match at least one schema in anyOf"),
        );
    }
    if let Some(one) = schema.get("oneOf").and_then(Value::as_array)
        && !one.is_empty()
        && one.iter().filter(|s| passes(s)).count() != 1
    {
        invalid(
            errs,
            path,
            v,
            format!("{path} in body must match exactly one schema in oneOf"),
        );
    }
    if let Some(not) = schema.get("not")
        && passes(not)
    {
        invalid(
            errs,
            path,
            v,
            format!("{path} in body should not match the schema in not"),
        );
    }
}

fn validate_number(
    schema: &Value,
    v: &Value,
    n: &serde_json::Number,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    let f = n.as_f64().unwrap_or(0.0);
    let fmt = |x: f64| {
        if x.fract() == 0.0 {
            format!("{}", x as i64)
        } else {
            format!("{x}")
        }
    };
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
        let exclusive = is_true(schema, "exclusiveMinimum");
        if (exclusive && f <= min) || (!exclusive && f < min) {
            let rel = if exclusive {
                "greater than"
            } else {
                "greater than or equal to"
            };
            invalid(
                errs,
                path,
                v,
                format!("{path} in body should be {rel} {}", fmt(min)),
            );
        }
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
        let exclusive = is_true(schema, "exclusiveMaximum");
        if (exclusive && f >= max) || (!exclusive && f > max) {
            let rel = if exclusive {
                "less than"
            } else {
                "less than or equal to"
            };
            invalid(
                errs,
                path,
                v,
                format!("{path} in body should be {rel} {}", fmt(max)),
            );
        }
    }
    if let Some(m) = schema.get("multipleOf").and_then(Value::as_f64)
        && m != 0.0
        && (f / m).fract() != 0.0
    {
        invalid(
            errs,
            path,
            v,
            format!("{path} in body should be a multiple of {}", fmt(m)),
        );
    }
    let range = match schema.get("format").and_then(Value::as_str) {
        Some("int32") => Some((i32::MIN as i128, i32::MAX as i128, "int32")),
        Some("int64") => Some((i64::MIN as i128, i64::MAX as i128, "int64")),
        _ => None,
    };
    if let Some((lo, hi, name)) = range {
        let as_int = n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from));
        if as_int.is_none_or(|i| i < lo || i > hi) {
            invalid(
                errs,
                path,
                v,
                format!("{path} in body must be of type {name}: \"{n}\""),
            );
        }
    }
}

fn validate_string(schema: &Value, v: &Value, s: &str, path: &str, errs: &mut Vec<FieldError>) {
    let len = s.chars().count() as u64;
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        invalid(
            errs,
            path,
            v,
            format!("{path} in body should be at least {min} chars long"),
        );
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        errs.push(FieldError {
            reason: "FieldValueTooLong",
            field: path.to_string(),
            message: format!("{path}: Too long: may not be more than {max} bytes"),
        });
    }
    if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
        match regex::Regex::new(p) {
            Ok(re) if !re.is_match(s) => {
                invalid(errs, path, v, format!("{path} in body should match '{p}'"))
            }
            Ok(_) => {}
            Err(_) => {}
        }
    }
    if let Some(format) = schema.get("format").and_then(Value::as_str) {
        let ok = match format {
            "date-time" => s.parse::<jiff::Timestamp>().is_ok(),
            "hostname" => is_dns_subdomain(&s.to_ascii_lowercase()),
            "uuid" => uuid::Uuid::parse_str(s).is_ok(),
            "byte" => is_base64(s),
            _ => true,
        };
        if !ok {
            invalid(
                errs,
                path,
                v,
                format!("{path} in body must be of type {format}: {}", render(v)),
            );
        }
    }
}

fn is_base64(s: &str) -> bool {
    s.len().is_multiple_of(4)
        && s.trim_end_matches('=')
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
}

/// Whether `s` is a valid DNS-1123 subdomain (object names).
pub(crate) fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && is_dns_subdomain(s) && !s.contains('.')
}

/// Validates an object name as the apiserver does for the resource: DNS-1035 labels for
/// Services, DNS-1123 labels for Namespaces, DNS-1123 subdomains otherwise.
pub(crate) fn validate_name(group: &str, plural: &str, name: &str) -> Option<FieldError> {
    let (ok, rule) = match (group, plural) {
        ("", "services") => (
            is_dns_label(name) && name.starts_with(|c: char| c.is_ascii_lowercase()),
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
        ),
        ("", "namespaces") => (
            is_dns_label(name),
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        ),
        _ => (
            is_dns_subdomain(name),
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        ),
    };
    (!ok).then(|| FieldError {
        reason: "FieldValueInvalid",
        field: "metadata.name".into(),
        message: format!("metadata.name: Invalid value: \"{name}\": {rule}"),
    })
}

fn is_label_part(s: &str) -> bool {
    s.len() <= 63
        && (s.is_empty()
            || (s.starts_with(|c: char| c.is_ascii_alphanumeric())
                && s.ends_with(|c: char| c.is_ascii_alphanumeric())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))))
}

/// Validates `metadata.labels` keys and values and `metadata.annotations` keys.
pub(crate) fn validate_labels(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let key_ok = |k: &str| {
        let (prefix, name) = match k.rsplit_once('/') {
            Some((p, n)) => (Some(p), n),
            None => (None, k),
        };
        !name.is_empty() && is_label_part(name) && prefix.is_none_or(is_dns_subdomain)
    };
    for field in ["labels", "annotations"] {
        let Some(m) = obj
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_object)
        else {
            continue;
        };
        for (k, v) in m {
            if !key_ok(k) {
                errs.push(FieldError {
                    reason: "FieldValueInvalid",
                    field: format!("metadata.{field}"),
                    message: format!(
                        "metadata.{field}: Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
                    ),
                });
            }
            if field == "labels" {
                let value = v.as_str().unwrap_or("");
                if !v.is_string() || !is_label_part(value) {
                    errs.push(FieldError {
                        reason: "FieldValueInvalid",
                        field: "metadata.labels".into(),
                        message: format!(
                            "metadata.labels: Invalid value: {}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
                            render(v)
                        ),
                    });
                }
            }
        }
    }
    errs.extend(validate_annotations_size(obj));
    errs
}

/// The API server's limit on the keys and values of an object's annotations together.
pub(crate) const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

/// The API server's limit on a ConfigMap's `data` and `binaryData` together.
pub(crate) const MAX_CONFIG_MAP_BYTES: usize = 1024 * 1024;

fn too_long(field: &str, limit: usize) -> FieldError {
    FieldError {
        reason: "FieldValueTooLong",
        field: field.to_owned(),
        message: format!("{field}: Too long: may not be more than {limit} bytes"),
    }
}

/// Annotations over [`MAX_ANNOTATIONS_BYTES`] (keys and values), as the API server
/// refuses them.
fn validate_annotations_size(obj: &Value) -> Option<FieldError> {
    let annotations = obj.pointer("/metadata/annotations")?.as_object()?;
    let total: usize = annotations
        .iter()
        .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
        .sum();
    (total > MAX_ANNOTATIONS_BYTES).then(|| too_long("metadata.annotations", MAX_ANNOTATIONS_BYTES))
}

/// A ConfigMap whose data (keys and values of `data`, decoded `binaryData`) is over
/// [`MAX_CONFIG_MAP_BYTES`], as the API server refuses it.
pub(crate) fn validate_config_map_size(obj: &Value) -> Option<FieldError> {
    let sum = |field: &str, size: &dyn Fn(&str) -> usize| -> usize {
        obj.get(field)
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| k.len() + v.as_str().map_or(0, size))
                    .sum()
            })
            .unwrap_or(0)
    };
    let total = sum("data", &str::len) + sum("binaryData", &|b64: &str| b64.len() / 4 * 3);
    (total > MAX_CONFIG_MAP_BYTES).then(|| too_long("[]", MAX_CONFIG_MAP_BYTES))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["port"],
                    "properties": {
                        "port": {"type": "integer", "format": "int32", "minimum": 1, "maximum": 65535},
                        "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
                        "name": {"type": "string", "minLength": 1, "maxLength": 5, "pattern": "^[a-z]+$"},
                        "items": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                        "size": {"x-kubernetes-int-or-string": true},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "opt": {"type": "string", "nullable": true}
                    }
                }
            }
        })
    }

    fn messages(obj: Value) -> Vec<String> {
        validate(&schema(), &obj)
            .into_iter()
            .map(|e| e.message)
            .collect()
    }

    #[test]
    fn minimum_message_matches_kubernetes() {
        assert_eq!(
            messages(json!({"spec": {"port": 0}})),
            vec![
                "spec.port: Invalid value: 0: spec.port in body should be greater than or equal to 1"
            ]
        );
    }

    #[test]
    fn required_type_enum_and_strings() {
        let m = messages(json!({"spec": {"mode": "c", "name": "ABCDEFG"}}));
        assert!(
            m.contains(&"spec.port: Required value".to_string()),
            "{m:?}"
        );
        assert!(
            m.iter()
                .any(|s| s.starts_with("spec.mode: Unsupported value: \"c\""))
        );
        assert!(m.iter().any(|s| s.contains("should match '^[a-z]+$'")));
        assert!(m.iter().any(|s| s.starts_with("spec.name: Too long")));
        let m = messages(json!({"spec": {"port": "x"}}));
        assert_eq!(
            m,
            vec![
                "spec.port: Invalid value: \"string\": spec.port in body must be of type integer: \"string\""
            ]
        );
    }

    #[test]
    fn int_or_string_nullable_items_and_int32() {
        assert!(messages(json!({"spec": {"port": 1, "size": "10%", "opt": null}})).is_empty());
        assert!(messages(json!({"spec": {"port": 1, "size": 3}})).is_empty());
        assert_eq!(
            messages(json!({"spec": {"port": 1, "size": true}})).len(),
            1
        );
        assert_eq!(messages(json!({"spec": {"port": 1, "items": []}})).len(), 1);
        assert_eq!(
            messages(json!({"spec": {"port": 1, "labels": {"a": 1}}})).len(),
            1
        );
        assert_eq!(messages(json!({"spec": {"port": 3000000000u64}})).len(), 2);
    }

    #[test]
    fn names_and_labels() {
        assert!(validate_name("", "services", "1abc").is_some());
        assert!(validate_name("", "services", "web").is_none());
        assert!(validate_name("", "namespaces", "a.b").is_some());
        assert!(validate_name("apps", "deployments", "a.b").is_none());
        assert!(validate_name("apps", "deployments", "A").is_some());
        let ok = json!({"metadata": {"labels": {"app.kubernetes.io/name": "x", "e": ""}}});
        assert!(validate_labels(&ok).is_empty());
        let long = "x".repeat(64);
        let bad =
            json!({"metadata": {"labels": {"a": long, "b c": "d"}, "annotations": {"-x": "y"}}});
        assert_eq!(validate_labels(&bad).len(), 3);
    }

    #[test]
    fn prune_and_default() {
        let mut obj = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"},
            "spec": {"port": 1, "bogus": 1, "free": {"any": {"thing": 1}}, "labels": {"a": "b"}}, "extra": 1});
        let unknown = prune(&schema(), &mut obj);
        assert_eq!(unknown, vec!["spec.bogus".to_string(), "extra".to_string()]);
        apply_defaults(&schema(), &mut obj);
        assert_eq!(obj["spec"]["mode"], "a");
        assert_eq!(obj["spec"]["free"]["any"]["thing"], 1);
        assert_eq!(obj["metadata"]["name"], "n");
    }

    #[test]
    fn annotations_and_config_map_data_are_bounded_as_the_api_server_bounds_them() {
        let annotated = |bytes: usize| json!({"metadata": {"name": "x", "annotations": {"k": "v".repeat(bytes - 1)}}});
        assert!(validate_annotations_size(&annotated(MAX_ANNOTATIONS_BYTES)).is_none());
        let error = validate_annotations_size(&annotated(MAX_ANNOTATIONS_BYTES + 1)).unwrap();
        assert_eq!(error.field, "metadata.annotations");
        let config_map = |bytes: usize| json!({"data": {"k": "v".repeat(bytes - 1)}});
        assert!(validate_config_map_size(&config_map(MAX_CONFIG_MAP_BYTES)).is_none());
        assert!(validate_config_map_size(&config_map(MAX_CONFIG_MAP_BYTES + 1)).is_some());
        // binaryData counts decoded.
        let binary = json!({"binaryData": {"k": "AAAA".repeat(MAX_CONFIG_MAP_BYTES / 3 + 1)}});
        assert!(validate_config_map_size(&binary).is_some());
    }
}
