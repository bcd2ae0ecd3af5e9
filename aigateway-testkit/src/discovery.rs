//! Discovery documents (`/version`, `/api`, `/api/v1`, `/apis`, `/apis/<group>[/<version>]`)
//! and server-side printing (`as=Table`).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::registry::ResourceInfo;
use crate::store::meta_str;

/// `/version`.
pub(crate) fn version() -> Value {
    json!({
        "major": "1", "minor": "34", "gitVersion": "v1.34.0-aigateway-testkit",
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24", "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `/api`.
pub(crate) fn core_versions() -> Value {
    json!({
        "kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:0"}],
    })
}

fn groups(resources: &[Arc<ResourceInfo>]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in resources.iter().filter(|r| !r.group.is_empty()) {
        let vs = out.entry(r.group.clone()).or_default();
        for v in &r.versions {
            if !vs.contains(v) {
                vs.push(v.clone());
            }
        }
    }
    out
}

fn group_doc(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({
        "name": name,
        "versions": vs,
        "preferredVersion": vs.first().cloned().unwrap_or(json!({})),
    })
}

/// `/apis`.
pub(crate) fn group_list(resources: &[Arc<ResourceInfo>]) -> Value {
    let gs: Vec<Value> = groups(resources)
        .iter()
        .map(|(g, vs)| group_doc(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": gs})
}

/// `/apis/<group>`.
pub(crate) fn group(resources: &[Arc<ResourceInfo>], name: &str) -> Option<Value> {
    let gs = groups(resources);
    let vs = gs.get(name)?;
    let mut doc = group_doc(name, vs);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// `/api/v1` and `/apis/<group>/<version>`.
pub(crate) fn resource_list(
    resources: &[Arc<ResourceInfo>],
    group: &str,
    version: &str,
) -> Option<Value> {
    let mut list = Vec::new();
    for r in resources
        .iter()
        .filter(|r| r.group == group && r.versions.iter().any(|v| v == version))
    {
        let mut doc = json!({
            "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        });
        if !r.short_names.is_empty() {
            doc["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            doc["categories"] = json!(r.categories);
        }
        list.push(doc);
        if r.is("apps", "deployments") {
            list.push(json!({
                "name": format!("{}/scale", r.plural), "singularName": "",
                "namespaced": true, "kind": "Scale", "group": "autoscaling", "version": "v1",
                "verbs": ["get", "patch", "update"],
            }));
        }
        if r.status {
            list.push(json!({
                "name": format!("{}/status", r.plural), "singularName": "",
                "namespaced": r.namespaced, "kind": r.kind, "verbs": ["get", "patch", "update"],
            }));
        }
    }
    if list.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}),
    )
}

/// A human age like kubectl prints (`45s`, `3m12s`, `5h`, `2d`).
pub(crate) fn human_age(ts: &str) -> String {
    let Ok(t) = ts.parse::<jiff::Timestamp>() else {
        return "<unknown>".into();
    };
    let secs = (jiff::Timestamp::now().as_second() - t.as_second()).max(0);
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        format!("{m}m{}s", secs % 60)
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        format!("{h}h{}m", m % 60)
    } else if h < 48 {
        format!("{h}h")
    } else if d < 8 {
        format!("{d}d{}h", h % 24)
    } else {
        format!("{d}d")
    }
}

/// Evaluates the JSONPath subset used by printer columns: `.a.b`, `.a[0]`, `.a[*].b`,
/// `.a[?(@.type=="Ready")].status`.
pub(crate) fn json_path(obj: &Value, path: &str) -> Vec<Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let path = path.strip_prefix('$').unwrap_or(path);
    let mut cur: Vec<Value> = vec![obj.clone()];
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let field = &r[..end];
            rest = &r[end..];
            if field.is_empty() {
                continue;
            }
            cur = cur.iter().filter_map(|v| v.get(field).cloned()).collect();
        } else if let Some(r) = rest.strip_prefix('[') {
            let Some(end) = r.find(']') else {
                return Vec::new();
            };
            let inner = &r[..end];
            rest = &r[end + 1..];
            let items: Vec<Value> = cur
                .iter()
                .filter_map(Value::as_array)
                .flatten()
                .cloned()
                .collect();
            cur = if inner == "*" {
                items
            } else if let Ok(i) = inner.parse::<usize>() {
                cur.iter()
                    .filter_map(|v| v.as_array().and_then(|a| a.get(i)).cloned())
                    .collect()
            } else if let Some(f) = inner.strip_prefix("?(@.").and_then(|x| x.strip_suffix(')')) {
                let Some((field, want)) = f.split_once("==") else {
                    return Vec::new();
                };
                let want = want.trim().trim_matches('"').trim_matches('\'');
                items
                    .into_iter()
                    .filter(|it| {
                        let mut v = Some(it);
                        for seg in field.trim().split('.') {
                            v = v.and_then(|x| x.get(seg));
                        }
                        match v {
                            Some(Value::String(s)) => s == want,
                            Some(Value::Number(n)) => n.to_string() == want,
                            Some(Value::Bool(b)) => b.to_string() == want,
                            Some(_) => false,
                            None => false,
                        }
                    })
                    .collect()
            } else {
                return Vec::new();
            };
        } else {
            return Vec::new();
        }
    }
    cur
}

fn partial(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
    })
}

/// A printer column of a built-in kind: header and cell function.
type Column = (&'static str, fn(&Value) -> Value);

fn count_of(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn keys_of(obj: &Value, fields: &[&str]) -> usize {
    fields
        .iter()
        .filter_map(|f| obj.get(*f).and_then(Value::as_object))
        .map(serde_json::Map::len)
        .sum()
}

/// The columns `kubectl get` shows for built-in kinds, between NAME and AGE.
fn builtin_columns(info: &ResourceInfo) -> Vec<Column> {
    match (info.group.as_str(), info.plural.as_str()) {
        ("apps", "deployments") => vec![
            ("Ready", |o| {
                json!(format!(
                    "{}/{}",
                    count_of(o, "/status/readyReplicas"),
                    o.pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                ))
            }),
            ("Up-to-date", |o| {
                json!(count_of(o, "/status/updatedReplicas"))
            }),
            ("Available", |o| {
                json!(count_of(o, "/status/availableReplicas"))
            }),
        ],
        ("", "services") => vec![
            ("Type", |o| {
                o.pointer("/spec/type")
                    .cloned()
                    .unwrap_or(json!("ClusterIP"))
            }),
            ("Cluster-IP", |o| {
                o.pointer("/spec/clusterIP")
                    .cloned()
                    .unwrap_or(json!("<none>"))
            }),
            ("External-IP", |_| json!("<none>")),
            ("Port(s)", |o| {
                let ports: Vec<String> = o
                    .pointer("/spec/ports")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .map(|p| {
                                format!(
                                    "{}/{}",
                                    p.get("port").map(Value::to_string).unwrap_or_default(),
                                    p.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                json!(if ports.is_empty() {
                    "<none>".to_string()
                } else {
                    ports.join(",")
                })
            }),
        ],
        ("", "configmaps") => vec![("Data", |o| json!(keys_of(o, &["data", "binaryData"])))],
        ("", "secrets") => vec![
            ("Type", |o| {
                o.get("type").cloned().unwrap_or(json!("Opaque"))
            }),
            ("Data", |o| json!(keys_of(o, &["data"]))),
        ],
        ("", "namespaces") => vec![("Status", |o| {
            o.pointer("/status/phase")
                .cloned()
                .unwrap_or(json!("Active"))
        })],
        _ => Vec::new(),
    }
}

/// A `meta.k8s.io/v1` Table for objects of a resource.
pub(crate) fn table(
    info: &ResourceInfo,
    version: &str,
    items: &[Value],
    resource_version: &str,
    include: &str,
) -> Value {
    if info.group.is_empty() && info.plural == "events" {
        return events_table(items, resource_version, include);
    }
    let columns: Vec<Value> = info
        .crd
        .as_ref()
        .and_then(|c| c.columns.get(version))
        .cloned()
        .unwrap_or_default();
    let mut defs = vec![json!({"name": "Name", "type": "string", "format": "name",
        "description": "Name must be unique within a namespace.", "priority": 0})];
    let custom = !columns.is_empty();
    if custom {
        for c in &columns {
            defs.push(json!({
                "name": c.get("name").cloned().unwrap_or(json!("")),
                "type": c.get("type").cloned().unwrap_or(json!("string")),
                "format": c.get("format").cloned().unwrap_or(json!("")),
                "description": c.get("description").cloned().unwrap_or(json!("")),
                "priority": c.get("priority").cloned().unwrap_or(json!(0)),
            }));
        }
    } else {
        for (name, _) in builtin_columns(info) {
            defs.push(json!({"name": name, "type": "string", "format": "", "description": "", "priority": 0}));
        }
        defs.push(json!({"name": "Age", "type": "string", "format": "",
            "description": "CreationTimestamp is a timestamp representing the server time when this object was created.",
            "priority": 0}));
    }
    let rows: Vec<Value> = items
        .iter()
        .map(|obj| {
            let mut cells = vec![json!(meta_str(obj, "name"))];
            if custom {
                for c in &columns {
                    let path = c.get("jsonPath").and_then(Value::as_str).unwrap_or("");
                    let ty = c.get("type").and_then(Value::as_str).unwrap_or("string");
                    let found = json_path(obj, path);
                    let cell = match found.first() {
                        None => Value::Null,
                        Some(v) if ty == "date" => json!(human_age(v.as_str().unwrap_or(""))),
                        Some(Value::String(s)) if found.len() > 1 => {
                            let all: Vec<String> = found
                                .iter()
                                .map(|x| x.as_str().map_or(x.to_string(), str::to_string))
                                .collect();
                            json!(if s.is_empty() {
                                String::new()
                            } else {
                                all.join(",")
                            })
                        }
                        Some(v @ (Value::Object(_) | Value::Array(_))) => json!(v.to_string()),
                        Some(v) => v.clone(),
                    };
                    cells.push(cell);
                }
            } else {
                for (_, cell) in builtin_columns(info) {
                    cells.push(cell(obj));
                }
                cells.push(json!(human_age(meta_str(obj, "creationTimestamp"))));
            }
            table_row(cells, obj, include)
        })
        .collect();
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": defs,
        "rows": rows,
    })
}

fn table_row(cells: Vec<Value>, obj: &Value, include: &str) -> Value {
    let mut row = json!({"cells": cells});
    match include {
        "None" => {}
        "Object" => row["object"] = obj.clone(),
        _ => row["object"] = partial(obj),
    }
    row
}

/// The Table of core/v1 Events, with the API server's columns (the ones `kubectl get
/// events` shows, and with `-o wide` the priority-1 ones): no leading Name column.
fn events_table(items: &[Value], resource_version: &str, include: &str) -> Value {
    const COLUMNS: [(&str, u8); 10] = [
        ("Last Seen", 0),
        ("Type", 0),
        ("Reason", 0),
        ("Object", 0),
        ("Subobject", 1),
        ("Source", 1),
        ("Message", 0),
        ("First Seen", 1),
        ("Count", 1),
        ("Name", 1),
    ];
    let defs: Vec<Value> = COLUMNS
        .iter()
        .map(|(name, priority)| {
            let format = if *name == "Name" { "name" } else { "" };
            json!({"name": name, "type": "string", "format": format, "description": "", "priority": priority})
        })
        .collect();
    let text = |v: &Value, pointer: &str| {
        v.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let rows: Vec<Value> = items
        .iter()
        .map(|e| {
            let first = match text(e, "/firstTimestamp") {
                t if t.is_empty() => human_age(&text(e, "/eventTime")),
                t => human_age(&t),
            };
            let mut last = match text(e, "/lastTimestamp") {
                t if t.is_empty() => first.clone(),
                t => human_age(&t),
            };
            let mut count = e.get("count").and_then(Value::as_i64).unwrap_or(0);
            if let Some(series) = e.get("series").filter(|s| s.is_object()) {
                last = human_age(&text(series, "/lastObservedTime"));
                count = series.get("count").and_then(Value::as_i64).unwrap_or(0);
            } else if count == 0 {
                count = 1;
            }
            let kind = text(e, "/involvedObject/kind").to_lowercase();
            let target = match text(e, "/involvedObject/name") {
                n if n.is_empty() => kind,
                n => format!("{kind}/{n}"),
            };
            let component = match text(e, "/source/component") {
                c if c.is_empty() => text(e, "/reportingComponent"),
                c => c,
            };
            let instance = match text(e, "/source/host") {
                h if h.is_empty() => text(e, "/reportingInstance"),
                h => h,
            };
            let source = match (component.is_empty(), instance.is_empty()) {
                (true, _) => String::new(),
                (false, true) => component,
                (false, false) => format!("{component}, {instance}"),
            };
            let cells = vec![
                json!(last),
                json!(text(e, "/type")),
                json!(text(e, "/reason")),
                json!(target),
                json!(text(e, "/involvedObject/fieldPath")),
                json!(source),
                json!(text(e, "/message").trim()),
                json!(first),
                json!(count),
                json!(meta_str(e, "name")),
            ];
            table_row(cells, e, include)
        })
        .collect();
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": defs,
        "rows": rows,
    })
}

/// Turns objects into `PartialObjectMetadata`.
pub(crate) fn partial_list(items: &[Value], resource_version: &str, cont: Option<&str>) -> Value {
    let mut metadata = json!({"resourceVersion": resource_version});
    if let Some(c) = cont {
        metadata["continue"] = json!(c);
    }
    json!({
        "kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "items": items.iter().map(partial).collect::<Vec<_>>(),
    })
}

/// One object as `PartialObjectMetadata`.
pub(crate) fn partial_object(obj: &Value) -> Value {
    partial(obj)
}

/// The `/openapi/v3` group-version document for one group version: enough for kubectl
/// to see that PATCH supports `fieldValidation` (so it validates server-side) and, for
/// custom resources, the schemas (`kubectl explain`).
pub(crate) fn openapi_v3_gv(
    resources: &[Arc<ResourceInfo>],
    group: &str,
    version: &str,
) -> Option<Value> {
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let param = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string"}, "uniqueItems": true});
    for r in resources
        .iter()
        .filter(|r| r.group == group && r.versions.iter().any(|v| v == version))
    {
        let gvk = json!({"group": group, "version": version, "kind": r.kind});
        let item = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{prefix}/{}/{{name}}", r.plural)
        };
        let schema_name = format!(
            "{}.{version}.{}",
            group.split('.').rev().collect::<Vec<_>>().join("."),
            r.kind
        );
        let body_ref = json!({"schema": {"$ref": format!("#/components/schemas/{schema_name}")}});
        let mut ops = serde_json::Map::new();
        for (method, action) in [
            ("get", "get"),
            ("put", "put"),
            ("patch", "patch"),
            ("delete", "delete"),
        ] {
            let mut op = json!({
                "x-kubernetes-group-version-kind": gvk,
                "x-kubernetes-action": action,
                "operationId": format!("{action}{}", r.kind),
                "responses": {"200": {"description": "OK", "content": {"application/json": body_ref}}},
            });
            if method == "patch" || method == "put" {
                op["parameters"] = json!([
                    param("dryRun"),
                    param("fieldManager"),
                    param("fieldValidation"),
                    param("force")
                ]);
            }
            if method == "patch" {
                op["requestBody"] = json!({"content": {
                    "application/json-patch+json": {"schema": {"type": "object"}},
                    "application/merge-patch+json": {"schema": {"type": "object"}},
                    "application/apply-patch+yaml": {"schema": {"type": "object"}},
                }});
            }
            ops.insert(method.to_string(), op);
        }
        paths.insert(item, Value::Object(ops));
        let mut schema = r
            .schema(version)
            .filter(|s| s.is_object())
            .cloned()
            .unwrap_or_else(
                || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
            );
        schema["x-kubernetes-group-version-kind"] = json!([gvk]);
        schemas.insert(schema_name, schema);
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.34.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

fn content_hash(v: &Value) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.to_string().hash(&mut h);
    format!("{:016X}", h.finish())
}

/// The `/openapi/v3` root: one entry per group version, with a content hash.
pub(crate) fn openapi_v3_root(resources: &[Arc<ResourceInfo>]) -> Value {
    let mut gvs: Vec<(String, String)> = Vec::new();
    for r in resources {
        for v in &r.versions {
            let gv = (r.group.clone(), v.clone());
            if !gvs.contains(&gv) {
                gvs.push(gv);
            }
        }
    }
    let mut paths = serde_json::Map::new();
    for (g, v) in gvs {
        let Some(doc) = openapi_v3_gv(resources, &g, &v) else {
            continue;
        };
        let key = if g.is_empty() {
            format!("api/{v}")
        } else {
            format!("apis/{g}/{v}")
        };
        paths.insert(
            key.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={}", content_hash(&doc))}),
        );
    }
    json!({"paths": paths})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_path_subset() {
        let obj = json!({"spec": {"port": 8080, "list": [{"n": "a"}, {"n": "b"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "X", "status": "False"}]}});
        assert_eq!(json_path(&obj, ".spec.port"), vec![json!(8080)]);
        assert_eq!(
            json_path(&obj, ".status.conditions[?(@.type==\"Ready\")].status"),
            vec![json!("True")]
        );
        assert_eq!(
            json_path(&obj, ".spec.list[*].n"),
            vec![json!("a"), json!("b")]
        );
        assert_eq!(json_path(&obj, ".spec.list[1].n"), vec![json!("b")]);
        assert!(json_path(&obj, ".spec.missing").is_empty());
    }

    #[test]
    fn human_age_formats() {
        let t = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(30);
        assert_eq!(human_age(&t.to_string()), "30s");
        let t = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(3 * 86400);
        assert_eq!(human_age(&t.to_string()), "3d0h");
        assert_eq!(human_age("garbage"), "<unknown>");
    }
}
