//! Patch semantics: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge
//! patch for the built-in lists, and server-side apply with `managedFields` tracking.
//!
//! Objects are plain [`serde_json::Value`]s. Field ownership is tracked with [`FieldPath`]s,
//! which mirror the `fieldsV1` encoding of the Kubernetes API (`f:`, `k:`, `v:` prefixes).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

/// One step in a field path, as in `fieldsV1`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum PathElem {
    /// A map field: `f:<name>`.
    Field(String),
    /// An item of an associative list, identified by its key fields: `k:<json>`.
    Key(String),
    /// An item of a set-like list: `v:<json>`.
    Value(String),
}

/// A path from the object root to one owned field.
pub(crate) type FieldPath = Vec<PathElem>;

/// How a list merges (server-side apply and strategic merge patch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ListKind {
    /// Replaced as a whole.
    Atomic,
    /// Items merged by these key fields.
    Map(Vec<String>),
    /// Scalars merged as a set.
    Set,
}

/// Resolves list semantics: from the CRD schema when there is one, else from the
/// built-in table of the Kubernetes types that operators touch.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ListCtx<'a> {
    /// The `openAPIV3Schema` of the custom resource's version, if any.
    pub schema: Option<&'a Value>,
}

impl ListCtx<'_> {
    /// The merge behaviour of the list at `path`.
    pub(crate) fn list_kind(&self, path: &[PathElem]) -> ListKind {
        let in_metadata = matches!(path.first(), Some(PathElem::Field(f)) if f == "metadata");
        match self.schema {
            Some(schema) if !in_metadata => schema_list_kind(schema, path),
            _ => builtin_list_kind(path),
        }
    }
}

fn schema_list_kind(schema: &Value, path: &[PathElem]) -> ListKind {
    let mut s = schema;
    for elem in path {
        let next = match elem {
            PathElem::Field(name) => s
                .get("properties")
                .and_then(|p| p.get(name))
                .or_else(|| s.get("additionalProperties").filter(|a| a.is_object())),
            PathElem::Key(_) | PathElem::Value(_) => s.get("items"),
        };
        match next {
            Some(n) => s = n,
            None => return ListKind::Atomic,
        }
    }
    match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("map") => {
            let keys = s
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|k| k.as_str().map(str::to_string))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            if keys.is_empty() {
                ListKind::Atomic
            } else {
                ListKind::Map(keys)
            }
        }
        Some("set") => ListKind::Set,
        _ => ListKind::Atomic,
    }
}

fn builtin_list_kind(path: &[PathElem]) -> ListKind {
    let names: Vec<&str> = path
        .iter()
        .filter_map(|p| match p {
            PathElem::Field(n) => Some(n.as_str()),
            _ => None,
        })
        .collect();
    let Some(last) = names.last() else {
        return ListKind::Atomic;
    };
    let key = |k: &str| ListKind::Map(vec![k.to_string()]);
    match *last {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => key("name"),
        "volumeMounts" => key("mountPath"),
        "volumeDevices" => key("devicePath"),
        "hostAliases" => key("ip"),
        "conditions" => key("type"),
        "ownerReferences" => key("uid"),
        "finalizers" => ListKind::Set,
        "ports" => {
            let in_container = names
                .iter()
                .any(|n| matches!(*n, "containers" | "initContainers" | "ephemeralContainers"));
            if in_container {
                key("containerPort")
            } else {
                key("port")
            }
        }
        _ => ListKind::Atomic,
    }
}

/// The canonical `k:` string of a list item, or `None` when the item lacks a key field.
fn item_key(item: &Value, keys: &[String]) -> Option<String> {
    let mut m = BTreeMap::new();
    for k in keys {
        m.insert(k.clone(), item.get(k)?.clone());
    }
    serde_json::to_string(&m).ok()
}

fn value_key(item: &Value) -> String {
    serde_json::to_string(item).unwrap_or_default()
}

/// Which part of an object a write may touch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The main resource; `status` excluded when the resource has a status subresource.
    Main {
        /// Whether the resource has a status subresource.
        has_status: bool,
    },
    /// The `/status` subresource: only `status`.
    Status,
}

const IGNORED_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "generateName",
];

/// The set of fields an object (or apply configuration) sets, as ownership paths.
pub(crate) fn managed_fields_of(v: &Value, ctx: &ListCtx, scope: Scope) -> BTreeSet<FieldPath> {
    let mut out = BTreeSet::new();
    let Some(obj) = v.as_object() else {
        return out;
    };
    for (k, val) in obj {
        match (k.as_str(), scope) {
            ("apiVersion" | "kind", _) => {}
            ("status", Scope::Status) => {
                collect(val, ctx, &mut vec![PathElem::Field(k.clone())], &mut out)
            }
            (_, Scope::Status) => {}
            ("status", Scope::Main { has_status: true }) => {}
            ("metadata", _) => {
                if let Some(m) = val.as_object() {
                    for (mk, mv) in m {
                        if IGNORED_META.contains(&mk.as_str()) {
                            continue;
                        }
                        let mut p = vec![
                            PathElem::Field("metadata".into()),
                            PathElem::Field(mk.clone()),
                        ];
                        collect(mv, ctx, &mut p, &mut out);
                    }
                }
            }
            _ => collect(val, ctx, &mut vec![PathElem::Field(k.clone())], &mut out),
        }
    }
    out
}

fn collect(v: &Value, ctx: &ListCtx, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, val) in m {
                path.push(PathElem::Field(k.clone()));
                collect(val, ctx, path, out);
                path.pop();
            }
        }
        Value::Array(items) => match ctx.list_kind(path) {
            ListKind::Atomic => {
                out.insert(path.clone());
            }
            ListKind::Set => {
                if items.is_empty() {
                    out.insert(path.clone());
                }
                for item in items {
                    let mut p = path.clone();
                    p.push(PathElem::Value(value_key(item)));
                    out.insert(p);
                }
            }
            ListKind::Map(keys) => {
                if items.is_empty() {
                    out.insert(path.clone());
                }
                for item in items {
                    match item_key(item, &keys) {
                        Some(k) => {
                            path.push(PathElem::Key(k));
                            out.insert(path.clone());
                            collect(item, ctx, path, out);
                            path.pop();
                        }
                        None => {
                            // Without its key the item cannot be addressed: own the list.
                            out.insert(path.clone());
                        }
                    }
                }
            }
        },
        _ => {
            out.insert(path.clone());
        }
    }
}

/// The value at `path`, if present.
pub(crate) fn value_at<'a>(v: &'a Value, path: &[PathElem], ctx: &ListCtx) -> Option<&'a Value> {
    let mut cur = v;
    for (i, elem) in path.iter().enumerate() {
        cur = match elem {
            PathElem::Field(f) => cur.get(f)?,
            PathElem::Key(k) => {
                let ListKind::Map(keys) = ctx.list_kind(&path[..i]) else {
                    return None;
                };
                cur.as_array()?
                    .iter()
                    .find(|it| item_key(it, &keys).as_deref() == Some(k.as_str()))?
            }
            PathElem::Value(s) => cur.as_array()?.iter().find(|it| value_key(it) == *s)?,
        };
    }
    Some(cur)
}

/// Removes the field at `path`; returns whether something was removed.
pub(crate) fn remove_at(v: &mut Value, path: &[PathElem], ctx: &ListCtx) -> bool {
    let Some((last, parent_path)) = path.split_last() else {
        return false;
    };
    let keys = match ctx.list_kind(parent_path) {
        ListKind::Map(keys) => keys,
        _ => Vec::new(),
    };
    let Some(parent) = value_at_mut(v, parent_path, ctx) else {
        return false;
    };
    match last {
        PathElem::Field(f) => parent
            .as_object_mut()
            .is_some_and(|m| m.remove(f).is_some()),
        PathElem::Key(k) => match parent.as_array_mut() {
            Some(a) => {
                let before = a.len();
                a.retain(|it| item_key(it, &keys).as_deref() != Some(k.as_str()));
                a.len() != before
            }
            None => false,
        },
        PathElem::Value(s) => match parent.as_array_mut() {
            Some(a) => {
                let before = a.len();
                a.retain(|it| value_key(it) != *s);
                a.len() != before
            }
            None => false,
        },
    }
}

fn value_at_mut<'a>(v: &'a mut Value, path: &[PathElem], ctx: &ListCtx) -> Option<&'a mut Value> {
    let mut cur = v;
    for (i, elem) in path.iter().enumerate() {
        cur = match elem {
            PathElem::Field(f) => cur.get_mut(f)?,
            PathElem::Key(k) => {
                let ListKind::Map(keys) = ctx.list_kind(&path[..i]) else {
                    return None;
                };
                cur.as_array_mut()?
                    .iter_mut()
                    .find(|it| item_key(it, &keys).as_deref() == Some(k.as_str()))?
            }
            PathElem::Value(s) => cur
                .as_array_mut()?
                .iter_mut()
                .find(|it| value_key(it) == *s)?,
        };
    }
    Some(cur)
}

/// Renders a path the way apiserver conflict messages do: `.spec.containers[name="app"].image`.
pub(crate) fn path_string(path: &[PathElem]) -> String {
    let mut s = String::new();
    for e in path {
        match e {
            PathElem::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            PathElem::Key(k) => {
                let m: BTreeMap<String, Value> = serde_json::from_str(k).unwrap_or_default();
                let inner: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
                s.push_str(&format!("[{}]", inner.join(",")));
            }
            PathElem::Value(v) => s.push_str(&format!("[={v}]")),
        }
    }
    s
}

/// The first associative list of an apply configuration that holds two items with the
/// same key, worded as the API server's structured-merge-diff does:
/// `.spec.template.spec.containers[name="main"].env: duplicate entries for key [name="A"]`.
/// A real server refuses such an apply configuration (the merge is ambiguous), while a
/// create or update with the same list is stored as sent.
pub(crate) fn duplicate_list_key(applied: &Value, ctx: &ListCtx) -> Option<String> {
    fn walk(v: &Value, ctx: &ListCtx, path: &mut FieldPath) -> Option<String> {
        match v {
            Value::Object(m) => m.iter().find_map(|(k, child)| {
                path.push(PathElem::Field(k.clone()));
                let found = walk(child, ctx, path);
                path.pop();
                found
            }),
            Value::Array(items) => {
                let ListKind::Map(keys) = ctx.list_kind(path) else {
                    return None;
                };
                let mut seen = BTreeSet::new();
                for item in items {
                    let Some(key) = item_key(item, &keys) else {
                        continue;
                    };
                    if !seen.insert(key.clone()) {
                        let shown = path_string(&[PathElem::Key(key)]);
                        return Some(format!(
                            "{}: duplicate entries for key {shown}",
                            path_string(path)
                        ));
                    }
                    path.push(PathElem::Key(key));
                    let found = walk(item, ctx, path);
                    path.pop();
                    if found.is_some() {
                        return found;
                    }
                }
                None
            }
            _ => None,
        }
    }
    walk(applied, ctx, &mut Vec::new())
}

/// Encodes a field set as a `fieldsV1` tree.
pub(crate) fn to_fields_v1(set: &BTreeSet<FieldPath>) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for (i, e) in path.iter().enumerate() {
            let key = match e {
                PathElem::Field(f) => format!("f:{f}"),
                PathElem::Key(k) => format!("k:{k}"),
                PathElem::Value(v) => format!("v:{v}"),
            };
            let entry = node.entry(key).or_insert_with(|| json!({}));
            let child = entry.as_object_mut().expect("fieldsV1 nodes are objects");
            if i + 1 == path.len() && matches!(e, PathElem::Key(_)) {
                child.insert(".".into(), json!({}));
            }
            node = child;
        }
    }
    Value::Object(root)
}

/// Decodes a `fieldsV1` tree into a field set.
pub(crate) fn from_fields_v1(v: &Value) -> BTreeSet<FieldPath> {
    let mut out = BTreeSet::new();
    fn walk(v: &Value, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
        let Some(m) = v.as_object() else { return };
        let children: Vec<_> = m.iter().filter(|(k, _)| k.as_str() != ".").collect();
        if (children.is_empty() || m.contains_key(".")) && !path.is_empty() {
            out.insert(path.clone());
        }
        for (k, child) in children {
            let elem = if let Some(f) = k.strip_prefix("f:") {
                PathElem::Field(f.to_string())
            } else if let Some(key) = k.strip_prefix("k:") {
                PathElem::Key(key.to_string())
            } else if let Some(val) = k.strip_prefix("v:") {
                PathElem::Value(val.to_string())
            } else {
                continue;
            };
            path.push(elem);
            walk(child, path, out);
            path.pop();
        }
    }
    walk(v, &mut Vec::new(), &mut out);
    out
}

/// One `metadata.managedFields` entry.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Managed {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: String,
    pub fields: BTreeSet<FieldPath>,
}

impl Managed {
    /// Parses the `managedFields` of an object.
    pub(crate) fn parse_all(obj: &Value) -> Vec<Managed> {
        obj.pointer("/metadata/managedFields")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|e| Managed {
                        manager: str_of(e, "manager"),
                        operation: str_of(e, "operation"),
                        api_version: str_of(e, "apiVersion"),
                        time: str_of(e, "time"),
                        subresource: str_of(e, "subresource"),
                        fields: e.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Renders entries as `managedFields` JSON.
    pub(crate) fn render_all(entries: &[Managed]) -> Value {
        Value::Array(
            entries
                .iter()
                .map(|m| {
                    let mut e = json!({
                        "manager": m.manager,
                        "operation": m.operation,
                        "apiVersion": m.api_version,
                        "time": m.time,
                        "fieldsType": "FieldsV1",
                        "fieldsV1": to_fields_v1(&m.fields),
                    });
                    if !m.subresource.is_empty() {
                        e["subresource"] = json!(m.subresource);
                    }
                    e
                })
                .collect(),
        )
    }
}

fn str_of(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn related(a: &[PathElem], b: &[PathElem]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// Records an `Update` operation by `manager`: it owns what it changed, others lose it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn track_update(
    old: Option<&Value>,
    new: &Value,
    managers: &mut Vec<Managed>,
    manager: &str,
    api_version: &str,
    subresource: &str,
    ctx: &ListCtx,
    scope: Scope,
    now: &str,
) {
    let new_fields = managed_fields_of(new, ctx, scope);
    let old_fields = old
        .map(|o| managed_fields_of(o, ctx, scope))
        .unwrap_or_default();
    let changed: BTreeSet<FieldPath> = new_fields
        .iter()
        .filter(|p| {
            let node = matches!(p.last(), Some(PathElem::Key(_) | PathElem::Value(_)));
            !old_fields.contains(*p)
                || (!node && old.and_then(|o| value_at(o, p, ctx)) != value_at(new, p, ctx))
        })
        .cloned()
        .collect();
    let removed: BTreeSet<FieldPath> = old_fields.difference(&new_fields).cloned().collect();
    if changed.is_empty() && removed.is_empty() {
        return;
    }
    for m in managers.iter_mut() {
        m.fields.retain(|p| !removed.contains(p));
        let mine = m.manager == manager && m.operation == "Update" && m.subresource == subresource;
        if !mine {
            m.fields.retain(|p| !changed.contains(p));
        }
    }
    if !changed.is_empty() {
        match managers.iter_mut().find(|m| {
            m.manager == manager && m.operation == "Update" && m.subresource == subresource
        }) {
            Some(m) => {
                m.fields.extend(changed);
                m.time = now.to_string();
                m.api_version = api_version.to_string();
            }
            None => managers.push(Managed {
                manager: manager.to_string(),
                operation: "Update".into(),
                api_version: api_version.to_string(),
                time: now.to_string(),
                subresource: subresource.to_string(),
                fields: changed,
            }),
        }
    }
    managers.retain(|m| !m.fields.is_empty());
}

/// A server-side apply conflict: the other manager and the field path.
#[derive(Clone, Debug)]
pub(crate) struct Conflict {
    pub manager: String,
    pub api_version: String,
    pub path: String,
    /// The conflicting manager's operation (`Apply` or `Update`).
    pub operation: String,
    /// The conflicting manager's subresource (`status`, or empty).
    pub subresource: String,
}

impl Conflict {
    /// The manager as the API server names it in a conflict: `"m"` for an applier,
    /// `"m" using v1` for an updater, with `with subresource "status"` when it wrote
    /// through one.
    pub(crate) fn manager_description(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == "Update" {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }
}

/// Server-side apply: merges `applied` into `live`, updating field ownership.
#[allow(clippy::too_many_arguments)]
pub(crate) fn server_side_apply(
    live: Option<&Value>,
    applied: &Value,
    managers: &mut Vec<Managed>,
    manager: &str,
    force: bool,
    api_version: &str,
    subresource: &str,
    ctx: &ListCtx,
    scope: Scope,
    now: &str,
) -> Result<Value, Vec<Conflict>> {
    let empty = json!({});
    let live = live.unwrap_or(&empty);
    let applied_fields = managed_fields_of(applied, ctx, scope);
    let is_me = |m: &Managed| {
        m.manager == manager && m.operation == "Apply" && m.subresource == subresource
    };

    let mut conflicts = Vec::new();
    let mut conflicting: BTreeSet<FieldPath> = BTreeSet::new();
    for m in managers.iter() {
        if is_me(m) || m.manager == manager {
            continue;
        }
        for p in applied_fields.intersection(&m.fields) {
            // List items are owned as nodes; only their leaf fields can conflict.
            let node = matches!(p.last(), Some(PathElem::Key(_) | PathElem::Value(_)));
            if !node && value_at(live, p, ctx) != value_at(applied, p, ctx) {
                conflicts.push(Conflict {
                    manager: m.manager.clone(),
                    api_version: m.api_version.clone(),
                    path: path_string(p),
                    operation: m.operation.clone(),
                    subresource: m.subresource.clone(),
                });
                conflicting.insert(p.clone());
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }

    let mut merged = apply_merge(live, applied, ctx, &mut Vec::new());

    // Fields this manager applied before but no longer does: remove them unless someone else owns them.
    let previous: BTreeSet<FieldPath> = managers
        .iter()
        .filter(|m| is_me(m))
        .flat_map(|m| m.fields.iter().cloned())
        .collect();
    for p in previous.difference(&applied_fields) {
        if applied_fields.iter().any(|a| a.starts_with(p)) {
            continue;
        }
        let owned_by_other = managers
            .iter()
            .filter(|m| !is_me(m))
            .any(|m| m.fields.iter().any(|q| related(q, p)));
        if !owned_by_other {
            remove_at(&mut merged, p, ctx);
        }
    }

    for m in managers.iter_mut() {
        if !is_me(m) {
            m.fields.retain(|p| !conflicting.contains(p));
        }
    }
    managers.retain(|m| !is_me(m));
    // Update-operation entries of the same manager give their fields to the apply entry.
    for m in managers.iter_mut() {
        if m.manager == manager && m.subresource == subresource {
            m.fields.retain(|p| !applied_fields.contains(p));
        }
    }
    managers.retain(|m| !m.fields.is_empty());
    if !applied_fields.is_empty() {
        managers.push(Managed {
            manager: manager.to_string(),
            operation: "Apply".into(),
            api_version: api_version.to_string(),
            time: now.to_string(),
            subresource: subresource.to_string(),
            fields: applied_fields,
        });
    }
    Ok(merged)
}

/// Merges an apply configuration into a live object (structural merge).
fn apply_merge(live: &Value, applied: &Value, ctx: &ListCtx, path: &mut FieldPath) -> Value {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) => {
            let mut out = l.clone();
            for (k, av) in a {
                if av.is_null() {
                    out.remove(k);
                    continue;
                }
                path.push(PathElem::Field(k.clone()));
                let merged = match l.get(k) {
                    Some(lv) => apply_merge(lv, av, ctx, path),
                    None => av.clone(),
                };
                path.pop();
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(a)) => match ctx.list_kind(path) {
            ListKind::Atomic => applied.clone(),
            ListKind::Set => {
                let mut out = l.clone();
                for item in a {
                    if !out.contains(item) {
                        out.push(item.clone());
                    }
                }
                Value::Array(out)
            }
            ListKind::Map(keys) => {
                let mut out = l.clone();
                for item in a {
                    let k = item_key(item, &keys);
                    let pos = k.as_ref().and_then(|k| {
                        out.iter()
                            .position(|it| item_key(it, &keys).as_ref() == Some(k))
                    });
                    match pos {
                        Some(i) => {
                            path.push(PathElem::Key(k.unwrap_or_default()));
                            out[i] = apply_merge(&out[i], item, ctx, path);
                            path.pop();
                        }
                        None => out.push(item.clone()),
                    }
                }
                Value::Array(out)
            }
        },
        _ => applied.clone(),
    }
}

/// Errors from strategic merge patch.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StrategicError {
    /// The patch is not a JSON object.
    #[error("strategic merge patch must be a JSON object")]
    NotAnObject,
    /// A `$patch` directive has an unknown value.
    #[error("unknown patch directive {0:?}")]
    UnknownDirective(String),
}

/// Applies a strategic merge patch to `target`.
pub(crate) fn strategic_merge(
    target: &Value,
    patch: &Value,
    ctx: &ListCtx,
) -> Result<Value, StrategicError> {
    if !patch.is_object() {
        return Err(StrategicError::NotAnObject);
    }
    Ok(smp_object(target, patch, ctx, &mut Vec::new())?.unwrap_or(Value::Null))
}

/// Returns `None` when the object is to be deleted (`$patch: delete`).
fn smp_object(
    target: &Value,
    patch: &Value,
    ctx: &ListCtx,
    path: &mut FieldPath,
) -> Result<Option<Value>, StrategicError> {
    let p = patch.as_object().ok_or(StrategicError::NotAnObject)?;
    match p.get("$patch").and_then(Value::as_str) {
        Some("delete") => return Ok(None),
        Some("replace") => return Ok(Some(strip_directives(patch))),
        Some("merge") | None => {}
        Some(other) => return Err(StrategicError::UnknownDirective(other.to_string())),
    }
    let mut out = target.as_object().cloned().unwrap_or_default();
    for (k, pv) in p {
        if k == "$patch" || k.starts_with("$setElementOrder/") || k == "$retainKeys" {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Some(del)) = (out.get_mut(field), pv.as_array()) {
                list.retain(|v| !del.contains(v));
            }
            continue;
        }
        if pv.is_null() {
            out.remove(k);
            continue;
        }
        path.push(PathElem::Field(k.clone()));
        let current = out.get(k).cloned().unwrap_or(Value::Null);
        let merged = match pv {
            Value::Object(_) => smp_object(&current, pv, ctx, path)?,
            Value::Array(items) => Some(smp_list(&current, items, ctx, path)?),
            _ => Some(pv.clone()),
        };
        path.pop();
        match merged {
            Some(v) => {
                out.insert(k.clone(), v);
            }
            None => {
                out.remove(k);
            }
        }
    }
    if let Some(Value::Array(keep)) = p.get("$retainKeys") {
        out.retain(|k, _| keep.iter().any(|x| x.as_str() == Some(k.as_str())));
    }
    Ok(Some(Value::Object(out)))
}

fn smp_list(
    current: &Value,
    items: &[Value],
    ctx: &ListCtx,
    path: &mut FieldPath,
) -> Result<Value, StrategicError> {
    let replace_all = items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"));
    let items_clean: Vec<&Value> = items
        .iter()
        .filter(|i| i.get("$patch").and_then(Value::as_str) != Some("replace"))
        .collect();
    let mut out = if replace_all {
        Vec::new()
    } else {
        current.as_array().cloned().unwrap_or_default()
    };
    match ctx.list_kind(path) {
        ListKind::Atomic => {
            return Ok(Value::Array(
                items_clean.into_iter().map(strip_directives).collect(),
            ));
        }
        ListKind::Set => {
            for item in items_clean {
                if !out.contains(item) {
                    out.push(item.clone());
                }
            }
        }
        ListKind::Map(keys) => {
            for item in items_clean {
                let Some(k) = item_key(item, &keys) else {
                    out.push(strip_directives(item));
                    continue;
                };
                let pos = out
                    .iter()
                    .position(|it| item_key(it, &keys).as_deref() == Some(k.as_str()));
                let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                match (pos, delete) {
                    (Some(i), true) => {
                        out.remove(i);
                    }
                    (None, true) => {}
                    (Some(i), false) => {
                        path.push(PathElem::Key(k));
                        let merged = smp_object(&out[i], item, ctx, path)?;
                        path.pop();
                        match merged {
                            Some(v) => out[i] = v,
                            None => {
                                out.remove(i);
                            }
                        }
                    }
                    (None, false) => out.push(strip_directives(item)),
                }
            }
        }
    }
    Ok(Value::Array(out))
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

/// Applies an RFC 7386 JSON merge patch.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// Applies an RFC 6902 JSON patch. As on a real API server, `test` with value `null`
/// succeeds on a missing path (kube's finalizer helper relies on this).
pub(crate) fn json_patch(target: &mut Value, patch: &Value) -> Result<(), JsonPatchError> {
    let p: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| JsonPatchError::Parse(e.to_string()))?;
    for op in p.0 {
        if let json_patch::PatchOperation::Test(t) = &op
            && t.value.is_null()
            && target.pointer(t.path.as_str()).is_none_or(Value::is_null)
        {
            continue;
        }
        json_patch::patch(target, &[op]).map_err(|e| JsonPatchError::Apply(e.to_string()))?;
    }
    Ok(())
}

/// Why a JSON patch failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JsonPatchError {
    /// The document is not a JSON patch (answered 400).
    #[error("invalid JSON patch: {0}")]
    Parse(String),
    /// An operation failed, for example a `test` (answered 422). The API server names
    /// neither the operation nor the path, and neither does this message.
    #[error("the server rejected our request due to an error in our request")]
    Apply(String),
}

impl JsonPatchError {
    /// The HTTP status for this error.
    pub(crate) fn code(&self) -> u16 {
        match self {
            JsonPatchError::Parse(_) => 400,
            JsonPatchError::Apply(_) => 422,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIN: Scope = Scope::Main { has_status: true };

    #[test]
    fn strategic_merges_containers_by_name_and_deletes() {
        let ctx = ListCtx::default();
        let target = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}
        ]}}}});
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "env": [{"name": "Y", "value": "2"}]},
            {"name": "b", "$patch": "delete"},
            {"name": "c", "image": "c:1"}
        ]}}}});
        let out = strategic_merge(&target, &patch, &ctx).unwrap();
        let cs = out.pointer("/spec/template/spec/containers").unwrap();
        assert_eq!(
            cs,
            &json!([
                {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]},
                {"name": "c", "image": "c:1"}
            ])
        );
    }

    #[test]
    fn strategic_replaces_atomic_lists_and_removes_nulls() {
        let ctx = ListCtx::default();
        let target = json!({"spec": {"args": ["a", "b"], "keep": 1, "drop": 2}});
        let patch = json!({"spec": {"args": ["c"], "drop": null}});
        let out = strategic_merge(&target, &patch, &ctx).unwrap();
        assert_eq!(out, json!({"spec": {"args": ["c"], "keep": 1}}));
    }

    #[test]
    fn fields_v1_round_trip() {
        let ctx = ListCtx::default();
        let obj = json!({"metadata": {"labels": {"a": "b"}, "finalizers": ["x"]},
            "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "i"}]}}}});
        let set = managed_fields_of(&obj, &ctx, MAIN);
        let v1 = to_fields_v1(&set);
        assert!(
            v1.pointer("/f:spec/f:template/f:spec/f:containers/k:{\"name\":\"app\"}/.")
                .is_some()
        );
        assert!(v1.pointer("/f:metadata/f:finalizers/v:\"x\"").is_some());
        assert_eq!(from_fields_v1(&v1), set);
    }

    #[test]
    fn apply_conflicts_then_force_takes_ownership() {
        let ctx = ListCtx::default();
        let mut managers = Vec::new();
        let a = json!({"spec": {"replicas": 1, "x": "a"}});
        let live = server_side_apply(
            None,
            &a,
            &mut managers,
            "alice",
            false,
            "v1",
            "",
            &ctx,
            MAIN,
            "t",
        )
        .unwrap();
        let b = json!({"spec": {"replicas": 2}});
        let err = server_side_apply(
            Some(&live),
            &b,
            &mut managers,
            "bob",
            false,
            "v1",
            "",
            &ctx,
            MAIN,
            "t",
        )
        .unwrap_err();
        assert_eq!(err[0].manager, "alice");
        assert_eq!(err[0].path, ".spec.replicas");
        let live = server_side_apply(
            Some(&live),
            &b,
            &mut managers,
            "bob",
            true,
            "v1",
            "",
            &ctx,
            MAIN,
            "t",
        )
        .unwrap();
        assert_eq!(live, json!({"spec": {"replicas": 2, "x": "a"}}));
        let alice = managers.iter().find(|m| m.manager == "alice").unwrap();
        assert_eq!(alice.fields.len(), 1);
    }

    #[test]
    fn list_items_conflict_only_on_leaves() {
        let ctx = ListCtx::default();
        let mut managers = Vec::new();
        let svc = json!({"spec": {"ports": [{"port": 80}]}});
        track_update(None, &svc, &mut managers, "old", "v1", "", &ctx, MAIN, "t");
        let live = json!({"spec": {"ports": [{"port": 80, "protocol": "TCP"}]}});
        let out = server_side_apply(
            Some(&live),
            &svc,
            &mut managers,
            "new",
            false,
            "v1",
            "",
            &ctx,
            MAIN,
            "t",
        )
        .unwrap();
        assert_eq!(out, live);
    }

    #[test]
    fn apply_removes_fields_no_longer_applied() {
        let ctx = ListCtx::default();
        let mut managers = Vec::new();
        let first =
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "data": {"k": "v", "old": "x"}});
        let live = server_side_apply(
            None,
            &first,
            &mut managers,
            "op",
            false,
            "v1",
            "",
            &ctx,
            MAIN,
            "t",
        )
        .unwrap();
        let second = json!({"metadata": {"labels": {"a": "1"}}, "data": {"k": "v"}});
        let live = server_side_apply(
            Some(&live),
            &second,
            &mut managers,
            "op",
            false,
            "v1",
            "",
            &ctx,
            MAIN,
            "t",
        )
        .unwrap();
        assert_eq!(
            live,
            json!({"metadata": {"labels": {"a": "1"}}, "data": {"k": "v"}})
        );
    }

    #[test]
    fn update_tracking_moves_ownership() {
        let ctx = ListCtx::default();
        let mut managers = Vec::new();
        let v1 = json!({"data": {"a": "1", "b": "1"}});
        track_update(None, &v1, &mut managers, "m1", "v1", "", &ctx, MAIN, "t");
        let v2 = json!({"data": {"a": "2", "b": "1"}});
        track_update(
            Some(&v1),
            &v2,
            &mut managers,
            "m2",
            "v1",
            "",
            &ctx,
            MAIN,
            "t",
        );
        let m1 = managers.iter().find(|m| m.manager == "m1").unwrap();
        let m2 = managers.iter().find(|m| m.manager == "m2").unwrap();
        assert_eq!(m1.fields.len(), 1);
        assert_eq!(m2.fields.len(), 1);
        assert_eq!(path_string(m2.fields.iter().next().unwrap()), ".data.a");
    }

    #[test]
    fn json_patch_test_null_matches_missing_path() {
        let mut v = json!({"metadata": {}});
        json_patch(
            &mut v,
            &json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
                    {"op": "add", "path": "/metadata/finalizers", "value": ["f"]}]),
        )
        .unwrap();
        assert_eq!(v, json!({"metadata": {"finalizers": ["f"]}}));
    }

    #[test]
    fn json_patch_test_op_fails_on_mismatch() {
        let mut v = json!({"a": 1});
        let err = json_patch(
            &mut v,
            &json!([{"op": "test", "path": "/a", "value": 2}, {"op": "replace", "path": "/a", "value": 3}]),
        );
        assert!(err.is_err());
        assert_eq!(v, json!({"a": 1}));
    }
}
