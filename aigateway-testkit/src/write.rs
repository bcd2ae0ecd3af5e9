//! The write pipeline: create, update, patch (merge, JSON, strategic, apply), delete and
//! delete-collection, from a request's body to the object stored. Everything a request
//! changes beyond the object itself happens here too, inside the request as the testkit
//! promises: garbage collection of dependents (background, foreground, orphan), and what
//! a kind's strategy asks for after a write or a removal.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::patch::{self, Managed, Scope};
use crate::registry::ResourceInfo;
use crate::schema;
use crate::store::{
    Config, ListOpts, ObjKey, State, finalizers, meta, meta_mut, meta_str, now_string, owner_uids,
};
use crate::strategy::{self, FollowUp, deployment, namespace};

/// How unknown fields are treated (`fieldValidation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum Validation {
    Strict,
    #[default]
    Warn,
    Ignore,
}

/// Options of a write request.
#[derive(Clone, Debug, Default)]
pub(crate) struct WriteOpts {
    pub dry_run: bool,
    pub field_manager: String,
    pub explicit_manager: bool,
    pub force: bool,
    pub validation: Validation,
}

/// The subresource a request addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sub {
    Main,
    Status,
}

/// The patch types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PatchType {
    Merge,
    Json,
    Strategic,
    Apply,
}

/// Result of a write.
#[derive(Debug)]
pub(crate) struct WriteResult {
    pub obj: Value,
    pub created: bool,
    pub warnings: Vec<String>,
}

/// Options of delete.
#[derive(Clone, Debug, Default)]
pub(crate) struct DeleteOpts {
    pub dry_run: bool,
    pub propagation: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
}

/// Compares two objects ignoring resourceVersion and managedFields timestamps.
fn same_content(a: &Value, b: &Value) -> bool {
    fn norm(v: &Value) -> Value {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            if let Some(Value::Array(mf)) = m.get_mut("managedFields") {
                for e in mf {
                    if let Some(e) = e.as_object_mut() {
                        e.remove("time");
                    }
                }
            }
        }
        v
    }
    norm(a) == norm(b)
}

impl State {
    /// A new cluster: the built-in resources, and the namespaces every cluster has,
    /// created through the pipeline like any other namespace.
    pub(crate) fn new(config: Config) -> Self {
        let mut st = State::empty(config);
        for ns in namespace::BUILTIN {
            let info = st.registry.builtin("", "namespaces");
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            st.create(&info, "v1", "", body, &WriteOpts::default())
                .expect("default namespaces are valid");
        }
        st
    }

    fn namespace_check(&self, info: &ResourceInfo, ns: &str) -> Result<(), ApiError> {
        if !info.namespaced {
            return Ok(());
        }
        if ns.is_empty() {
            return Err(ApiError::bad_request(
                "the server could not find the requested resource: namespace is required",
            ));
        }
        match self.get_raw(&(String::new(), "namespaces".into()), "", ns) {
            None => {
                let mut e =
                    ApiError::new(404, "NotFound", format!("namespaces \"{ns}\" not found"));
                e.details = Some(json!({"name": ns, "kind": "namespaces"}));
                Err(e)
            }
            Some(n) if !meta_str(&n, "deletionTimestamp").is_empty() => Err(ApiError::new(
                403,
                "Forbidden",
                format!(
                    "{} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    info.qualified()
                ),
            )),
            Some(_) => Ok(()),
        }
    }

    /// POST.
    pub(crate) fn create(
        &mut self,
        info: &Arc<ResourceInfo>,
        version: &str,
        ns: &str,
        mut body: Value,
        opts: &WriteOpts,
    ) -> Result<WriteResult, ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        let mut name = meta_str(&body, "name").to_string();
        if name.is_empty() {
            let gen_name = meta_str(&body, "generateName").to_string();
            if gen_name.is_empty() {
                return Err(ApiError::invalid(
                    info,
                    "",
                    vec![schema::FieldError {
                        reason: "FieldValueRequired",
                        field: "metadata.name".into(),
                        message: "metadata.name: Required value: name or generateName is required"
                            .into(),
                    }],
                ));
            }
            let suffix: String = (0..5)
                .map(|_| {
                    let chars = b"bcdfghjklmnpqrstvwxz2456789";
                    chars[rand::random_range(0..chars.len())] as char
                })
                .collect();
            name = format!("{gen_name}{suffix}");
            meta_mut(&mut body).insert("name".into(), json!(name));
        }
        if !meta_str(&body, "resourceVersion").is_empty() {
            return Err(ApiError::bad_request(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        let body_ns = meta_str(&body, "namespace").to_string();
        if info.namespaced && !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        self.namespace_check(info, ns)?;
        let ns = if info.namespaced { ns } else { "" };
        if self.get_raw(&info.key(), ns, &name).is_some() {
            return Err(ApiError::already_exists(info, &name));
        }
        self.write_new(info, version, ns, &name, body, Managers::Track, opts)
    }

    /// Stores a new object built from `body` (unless a dry run).
    #[allow(clippy::too_many_arguments)]
    fn write_new(
        &mut self,
        info: &Arc<ResourceInfo>,
        version: &str,
        ns: &str,
        name: &str,
        body: Value,
        managers: Managers,
        opts: &WriteOpts,
    ) -> Result<WriteResult, ApiError> {
        let mut warnings = Vec::new();
        let obj = self.finalize(
            info,
            version,
            ns,
            name,
            Sub::Main,
            None,
            body,
            managers,
            opts,
            &mut warnings,
        )?;
        Ok(self.commit(info, version, obj, true, warnings, opts))
    }

    /// Stores a finished object, unless a dry run, and answers with it.
    fn commit(
        &mut self,
        info: &ResourceInfo,
        version: &str,
        obj: Value,
        created: bool,
        warnings: Vec<String>,
        opts: &WriteOpts,
    ) -> WriteResult {
        if opts.dry_run {
            return WriteResult {
                obj,
                created,
                warnings,
            };
        }
        let stored = self.put(info, obj);
        self.after_put(info, &stored, false);
        WriteResult {
            obj: Self::with_version(info, version, &stored),
            created,
            warnings,
        }
    }

    /// PUT.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn update(
        &mut self,
        info: &Arc<ResourceInfo>,
        version: &str,
        ns: &str,
        name: &str,
        sub: Sub,
        body: Value,
        opts: &WriteOpts,
    ) -> Result<WriteResult, ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        let body_name = meta_str(&body, "name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let ns = if info.namespaced { ns } else { "" };
        let old = self
            .get_raw(&info.key(), ns, name)
            .ok_or_else(|| ApiError::not_found(info, name))?;
        let rv = meta_str(&body, "resourceVersion");
        if !rv.is_empty() && rv != meta_str(&old, "resourceVersion") {
            return Err(ApiError::conflict(info, name));
        }
        self.write_existing(
            info,
            version,
            ns,
            name,
            sub,
            old,
            body,
            Managers::Track,
            opts,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn write_existing(
        &mut self,
        info: &Arc<ResourceInfo>,
        version: &str,
        ns: &str,
        name: &str,
        sub: Sub,
        old: Arc<Value>,
        body: Value,
        managers: Managers,
        opts: &WriteOpts,
    ) -> Result<WriteResult, ApiError> {
        let mut warnings = Vec::new();
        let obj = self.finalize(
            info,
            version,
            ns,
            name,
            sub,
            Some(&old),
            body,
            managers,
            opts,
            &mut warnings,
        )?;
        if same_content(&obj, &old) {
            return Ok(WriteResult {
                obj: Self::with_version(info, version, &old),
                created: false,
                warnings,
            });
        }
        if opts.dry_run {
            return Ok(WriteResult {
                obj,
                created: false,
                warnings,
            });
        }
        let deleting = !meta_str(&obj, "deletionTimestamp").is_empty();
        if deleting && finalizers(&obj) == 0 {
            let key = (ns.to_string(), name.to_string());
            let removed = self
                .remove_with(info, &key, Some(obj))
                .expect("object exists");
            return Ok(WriteResult {
                obj: Self::with_version(info, version, &removed),
                created: false,
                warnings,
            });
        }
        Ok(self.commit(info, version, obj, false, warnings, opts))
    }

    /// PATCH (all four patch types).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn patch(
        &mut self,
        info: &Arc<ResourceInfo>,
        version: &str,
        ns: &str,
        name: &str,
        sub: Sub,
        ptype: PatchType,
        body: &[u8],
        opts: &WriteOpts,
    ) -> Result<WriteResult, ApiError> {
        let ns = if info.namespaced { ns } else { "" };
        let old = self.get_raw(&info.key(), ns, name);
        if ptype == PatchType::Apply {
            return self.apply(info, version, ns, name, sub, old, body, opts);
        }
        let old = old.ok_or_else(|| ApiError::not_found(info, name))?;
        let patch: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON patch body: {e}")))?;
        let mut candidate = Self::with_version(info, version, &old);
        match ptype {
            PatchType::Merge => {
                if !patch.is_object() {
                    return Err(ApiError::bad_request("merge patch must be a JSON object"));
                }
                patch::merge_patch(&mut candidate, &patch)
            }
            PatchType::Json => {
                patch::json_patch(&mut candidate, &patch).map_err(ApiError::from_json_patch)?
            }
            PatchType::Strategic => {
                if info.crd.is_some() {
                    return Err(ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                    ));
                }
                candidate = patch::strategic_merge(&candidate, &patch, &info.list_ctx(version))
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
            }
            PatchType::Apply => unreachable!("handled above"),
        }
        if !candidate.is_object() {
            return Err(ApiError::bad_request("patch result must be a JSON object"));
        }
        let rv = meta_str(&candidate, "resourceVersion");
        if !rv.is_empty() && rv != meta_str(&old, "resourceVersion") {
            return Err(ApiError::conflict(info, name));
        }
        if meta_str(&candidate, "name") != name {
            return Err(ApiError::bad_request(
                "metadata.name cannot be changed by a patch",
            ));
        }
        self.write_existing(
            info,
            version,
            ns,
            name,
            sub,
            old,
            candidate,
            Managers::Track,
            opts,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn apply(
        &mut self,
        info: &Arc<ResourceInfo>,
        version: &str,
        ns: &str,
        name: &str,
        sub: Sub,
        old: Option<Arc<Value>>,
        body: &[u8],
        opts: &WriteOpts,
    ) -> Result<WriteResult, ApiError> {
        if !opts.explicit_manager || opts.field_manager.is_empty() {
            let mut e = ApiError::new(
                422,
                "Invalid",
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            );
            e.details = Some(json!({"group": "meta.k8s.io", "kind": "PatchOptions",
                "causes": [{"reason": "FieldValueRequired", "field": "fieldManager",
                            "message": "Required value: is required for apply patch"}]}));
            return Err(e);
        }
        let applied: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => {
                let text = std::str::from_utf8(body)
                    .map_err(|_| ApiError::bad_request("apply patch body is not UTF-8"))?;
                serde_saphyr::from_str(text).map_err(|e| {
                    ApiError::bad_request(format!("error decoding YAML apply patch: {e}"))
                })?
            }
        };
        if !applied.is_object() {
            return Err(ApiError::bad_request("apply patch must be an object"));
        }
        let kind = applied.get("kind").and_then(Value::as_str).unwrap_or("");
        let api_version = applied
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        if kind.is_empty() || api_version.is_empty() {
            return Err(ApiError::bad_request(
                "invalid object type: apiVersion and kind must be set in an apply patch",
            ));
        }
        if kind != info.kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the apply patch ({kind}) does not match the resource ({})",
                info.kind
            )));
        }
        let applied_name = meta_str(&applied, "name");
        if !applied_name.is_empty() && applied_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({applied_name}) does not match the name on the URL ({name})"
            )));
        }
        if let Some(o) = &old {
            let rv = meta_str(&applied, "resourceVersion");
            if !rv.is_empty() && rv != meta_str(o, "resourceVersion") {
                return Err(ApiError::conflict(info, name));
            }
        } else if sub == Sub::Status {
            return Err(ApiError::not_found(info, name));
        }
        let ctx = info.list_ctx(version);
        if let Some(duplicate) = patch::duplicate_list_key(&applied, &ctx) {
            // The API server cannot type such an apply configuration and answers 500
            // (no reason) rather than 422; a create or update with it is accepted.
            return Err(ApiError::new(
                500,
                "",
                format!(
                    "failed to create typed patch object ({ns}/{name}; {}, Kind={}): {duplicate}",
                    info.api_version(version),
                    info.kind
                ),
            ));
        }
        let scope = match sub {
            Sub::Main => Scope::Main {
                has_status: info.status,
            },
            Sub::Status => Scope::Status,
        };
        let mut managers = old.as_deref().map(Managed::parse_all).unwrap_or_default();
        let now = now_string();
        let subresource = if sub == Sub::Status { "status" } else { "" };
        let live = old.as_deref().map(|o| Self::with_version(info, version, o));
        let merged = patch::server_side_apply(
            live.as_ref(),
            &applied,
            &mut managers,
            &opts.field_manager,
            opts.force,
            &info.api_version(version),
            subresource,
            &ctx,
            scope,
            &now,
        )
        .map_err(|conflicts| ApiError::apply_conflicts(&conflicts))?;
        match old {
            Some(old) => self.write_existing(
                info,
                version,
                ns,
                name,
                sub,
                old,
                merged,
                Managers::Set(managers),
                opts,
            ),
            None => {
                self.namespace_check(info, ns)?;
                self.write_new(
                    info,
                    version,
                    ns,
                    name,
                    merged,
                    Managers::Set(managers),
                    opts,
                )
            }
        }
    }

    /// Builds the object to store from a request's candidate object.
    #[allow(clippy::too_many_arguments)]
    fn finalize(
        &self,
        info: &ResourceInfo,
        version: &str,
        ns: &str,
        name: &str,
        sub: Sub,
        old: Option<&Value>,
        new: Value,
        managers: Managers,
        opts: &WriteOpts,
        warnings: &mut Vec<String>,
    ) -> Result<Value, ApiError> {
        let kind = new.get("kind").and_then(Value::as_str).unwrap_or("");
        if !kind.is_empty() && kind != info.kind {
            return Err(ApiError::bad_request(format!(
                "the kind of the object ({kind}) does not match the resource ({})",
                info.kind
            )));
        }
        let mut new = with_server_fields(info, version, ns, name, sub, old, new);
        let mut field_errs = Vec::new();
        if old.is_none()
            && let Some(e) = schema::validate_name(&info.group, &info.plural, name)
        {
            field_errs.push(e);
        }
        field_errs.extend(schema::validate_labels(&new));
        let strategy = strategy::of(info);
        field_errs.extend(strategy.validate(self, old, &new));
        if !field_errs.is_empty() {
            return Err(ApiError::invalid(info, name, field_errs));
        }
        strategy.prepare(self, old, &mut new);
        warnings.extend(strategy.warnings(old, &new));
        if let Some(schema) = info.schema(version) {
            check_schema(
                schema,
                info,
                version,
                name,
                opts.validation,
                &mut new,
                warnings,
            )?;
        }
        if info.generation {
            let next = next_generation(info, old, &new);
            meta_mut(&mut new).insert("generation".into(), json!(next));
        }
        let scope = match sub {
            Sub::Main => Scope::Main {
                has_status: info.status,
            },
            Sub::Status => Scope::Status,
        };
        let subresource = if sub == Sub::Status { "status" } else { "" };
        let list = match managers {
            Managers::Set(list) => list,
            Managers::Track => {
                let mut list = old.map(Managed::parse_all).unwrap_or_default();
                patch::track_update(
                    old,
                    &new,
                    &mut list,
                    &opts.field_manager,
                    &info.api_version(version),
                    subresource,
                    &info.list_ctx(version),
                    scope,
                    &now_string(),
                );
                list
            }
        };
        let m = meta_mut(&mut new);
        if list.is_empty() {
            m.remove("managedFields");
        } else {
            m.insert("managedFields".into(), Managed::render_all(&list));
        }
        Ok(new)
    }

    /// Removes an object for good, then runs what follows a removal.
    fn remove(&mut self, info: &ResourceInfo, key: &ObjKey) -> Option<Arc<Value>> {
        self.remove_with(info, key, None)
    }

    /// Removes an object; the DELETED event carries `last` (the final state) when given.
    fn remove_with(
        &mut self,
        info: &ResourceInfo,
        key: &ObjKey,
        last: Option<Value>,
    ) -> Option<Arc<Value>> {
        let removed = self.remove_object(&info.key(), key, last)?;
        self.after_remove(info, &removed);
        Some(removed)
    }

    /// Runs what the kind's strategy asks for after a write; `direct` for a test hook's.
    fn after_put(&mut self, info: &ResourceInfo, obj: &Value, direct: bool) {
        let follow_ups = strategy::of(info).after_write(self, obj, direct);
        self.follow(follow_ups);
    }

    /// Carries out what a strategy asked for.
    fn follow(&mut self, follow_ups: Vec<FollowUp>) {
        for follow_up in follow_ups {
            match follow_up {
                FollowUp::Serve(resource) => self.registry.serve(*resource),
                FollowUp::Unserve(key) => {
                    if let Some(res_info) = self.registry.get(&key) {
                        for k in self.keys(&key) {
                            self.remove(&res_info, &k);
                        }
                        self.registry.unserve(&key);
                        self.close_watches_of(&key);
                    }
                }
                FollowUp::SimulateDeployment(key) => deployment::schedule_status(self, key),
                FollowUp::EmptyNamespace(ns) => {
                    for (r, k) in self.namespace_contents(&ns) {
                        self.delete_internal(&r, &k, false);
                    }
                    self.maybe_finish_namespace(&ns);
                }
            }
        }
    }

    /// Finishes a foreground deletion once the owner has no dependents left.
    fn check_foreground(&mut self, uid: &str) {
        let Some((res, key)) = self.foreground.get(uid).cloned() else {
            return;
        };
        if self.has_dependents(uid) {
            return;
        }
        self.foreground.remove(uid);
        let (Some(info), Some(owner)) =
            (self.registry.get(&res), self.get_raw(&res, &key.0, &key.1))
        else {
            return;
        };
        let mut o = (*owner).clone();
        if let Some(Value::Array(f)) = o.pointer_mut("/metadata/finalizers") {
            f.retain(|x| x != FOREGROUND);
        }
        if finalizers(&o) == 0 {
            self.remove_with(&info, &key, Some(o));
        } else {
            self.put(&info, o);
        }
    }

    fn after_remove(&mut self, info: &ResourceInfo, obj: &Value) {
        for owner in owner_uids(obj) {
            self.check_foreground(&owner);
        }
        let follow_ups = strategy::of(info).after_delete(obj);
        self.follow(follow_ups);
        let uid = meta_str(obj, "uid").to_string();
        self.remember_deleted(&uid);
        for (res, key) in self.take_dependents(&uid) {
            let Some(dep_info) = self.registry.get(&res) else {
                continue;
            };
            let Some(dep) = self.get_raw(&res, &key.0, &key.1) else {
                continue;
            };
            let remaining = owner_uids(&dep).into_iter().filter(|u| *u != uid).count();
            if remaining == 0 {
                self.delete_internal(&dep_info, &key, false);
            } else {
                let mut d = (*dep).clone();
                if let Some(Value::Array(refs)) = d.pointer_mut("/metadata/ownerReferences") {
                    refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(&uid));
                }
                self.put(&dep_info, d);
            }
        }
        let ns = meta_str(obj, "namespace").to_string();
        if !ns.is_empty() {
            self.maybe_finish_namespace(&ns);
        }
    }

    /// Removes the namespace `ns` if it is terminating and nothing holds it any more.
    fn maybe_finish_namespace(&mut self, ns: &str) {
        if namespace::finished(self, ns) {
            let info = self.registry.builtin("", "namespaces");
            self.remove(&info, &(String::new(), ns.to_string()));
        }
    }

    /// Collects the objects stored during this request whose owners are all deleted
    /// objects, as the garbage collector does when a dependent names only absent owners
    /// (a controller that re-applies the children of a gateway deleted a moment ago),
    /// and returns the Deployments waiting for simulated status. Called once a request's
    /// writes are done.
    pub(crate) fn finish_writes(&mut self) -> Vec<ObjKey> {
        for (res, key) in std::mem::take(&mut self.orphans) {
            let (Some(info), Some(obj)) =
                (self.registry.get(&res), self.get_raw(&res, &key.0, &key.1))
            else {
                continue;
            };
            if self.owners_all_deleted(&obj) {
                self.delete_internal(&info, &key, false);
            }
        }
        std::mem::take(&mut self.pending_deployments)
    }

    /// Deletes (or marks deleting) an object; `orphan` drops owner references on dependents.
    fn delete_internal(
        &mut self,
        info: &Arc<ResourceInfo>,
        key: &ObjKey,
        orphan: bool,
    ) -> Option<Arc<Value>> {
        let obj = self.get_raw(&info.key(), &key.0, &key.1)?;
        let uid = meta_str(&obj, "uid").to_string();
        if orphan {
            for (res, k) in self.take_dependents(&uid) {
                let (Some(dep_info), Some(dep)) =
                    (self.registry.get(&res), self.get_raw(&res, &k.0, &k.1))
                else {
                    continue;
                };
                let mut d = (*dep).clone();
                if let Some(Value::Array(refs)) = d.pointer_mut("/metadata/ownerReferences") {
                    refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(&uid));
                    // The garbage collector leaves no empty list behind (JSON omits it).
                    if refs.is_empty() {
                        meta_mut(&mut d).remove("ownerReferences");
                    }
                }
                self.put(&dep_info, d);
            }
        }
        let strategy = strategy::of(info);
        if finalizers(&obj) > 0 || strategy.deletes_gracefully() {
            let result = if meta_str(&obj, "deletionTimestamp").is_empty() {
                let mut d = (*obj).clone();
                {
                    let m = meta_mut(&mut d);
                    m.insert("deletionTimestamp".into(), json!(now_string()));
                    m.insert("deletionGracePeriodSeconds".into(), json!(0));
                    if let Some(g) = m.get("generation").and_then(Value::as_i64) {
                        m.insert("generation".into(), json!(g + 1));
                    }
                }
                strategy.mark_deleting(&mut d);
                self.put(info, d)
            } else {
                obj
            };
            self.follow(strategy.while_deleting(key));
            // What followed may have removed it (an emptied namespace).
            return Some(self.get_raw(&info.key(), &key.0, &key.1).unwrap_or(result));
        }
        self.remove(info, key)
    }

    /// DELETE.
    pub(crate) fn delete(
        &mut self,
        info: &Arc<ResourceInfo>,
        version: &str,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
    ) -> Result<Value, ApiError> {
        let ns = if info.namespaced { ns } else { "" };
        let obj = self
            .get_raw(&info.key(), ns, name)
            .ok_or_else(|| ApiError::not_found(info, name))?;
        if let Some(uid) = &opts.precondition_uid
            && uid != meta_str(&obj, "uid")
        {
            let mut e = ApiError::conflict(info, name);
            e.message = format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                meta_str(&obj, "uid")
            );
            return Err(e);
        }
        if let Some(rv) = &opts.precondition_rv
            && rv != meta_str(&obj, "resourceVersion")
        {
            return Err(ApiError::conflict(info, name));
        }
        let strategy = strategy::of(info);
        strategy.check_delete(name)?;
        if opts.dry_run {
            return Ok(Self::with_version(info, version, &obj));
        }
        let key = (ns.to_string(), name.to_string());
        let uid = meta_str(&obj, "uid").to_string();
        let has_dependents = self.has_dependents(&uid);
        if opts.propagation.as_deref() == Some("Foreground") && has_dependents {
            let mut d = (*obj).clone();
            {
                let m = meta_mut(&mut d);
                let fins = m.entry("finalizers").or_insert_with(|| json!([]));
                if let Some(a) = fins.as_array_mut()
                    && !a.iter().any(|f| f == FOREGROUND)
                {
                    a.push(json!(FOREGROUND));
                }
                if !m.contains_key("deletionTimestamp") {
                    m.insert("deletionTimestamp".into(), json!(now_string()));
                    m.insert("deletionGracePeriodSeconds".into(), json!(0));
                    if let Some(g) = m.get("generation").and_then(Value::as_i64) {
                        m.insert("generation".into(), json!(g + 1));
                    }
                }
            }
            let marked = self.put(info, d);
            self.foreground
                .insert(uid.clone(), (info.key(), key.clone()));
            for (res, k) in self.dependents(&uid) {
                if let Some(dep_info) = self.registry.get(&res) {
                    self.delete_internal(&dep_info, &k, false);
                }
            }
            self.check_foreground(&uid);
            let out = self.get_raw(&info.key(), ns, name).unwrap_or(marked);
            return Ok(Self::with_version(info, version, &out));
        }
        let orphan = opts.propagation.as_deref() == Some("Orphan");
        let out = self
            .delete_internal(info, &(ns.to_string(), name.to_string()), orphan)
            .unwrap_or_else(|| obj.clone());
        if self.get_raw(&info.key(), ns, name).is_some() {
            return Ok(Self::with_version(info, version, &out));
        }
        // Gone already: the testkit collects garbage within the request. A real API server
        // answers before its garbage collector acts, with the object carrying the
        // collector's finalizer; without one, it answers with a Status for most kinds.
        let finalizer = match opts.propagation.as_deref() {
            Some("Orphan") => Some("orphan"),
            Some("Foreground") => Some(FOREGROUND),
            _ => strategy.cleanup_finalizer(),
        };
        if finalizer.is_some() || strategy.deletes_gracefully() {
            let mut marked = (*obj).clone();
            let m = meta_mut(&mut marked);
            if let Some(finalizer) = finalizer {
                let list = m.entry("finalizers").or_insert_with(|| json!([]));
                if let Some(a) = list.as_array_mut() {
                    a.push(json!(finalizer));
                }
            }
            m.entry("deletionTimestamp")
                .or_insert_with(|| json!(now_string()));
            m.entry("deletionGracePeriodSeconds").or_insert(json!(0));
            strategy.mark_deleting(&mut marked);
            return Ok(Self::with_version(info, version, &marked));
        }
        if strategy.delete_returns_object() {
            return Ok(Self::with_version(info, version, &out));
        }
        let mut details = json!({"name": name, "kind": info.plural, "uid": meta_str(&obj, "uid")});
        if !info.group.is_empty() {
            details["group"] = json!(info.group);
        }
        Ok(
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                  "details": details}),
        )
    }

    /// DELETE on a collection.
    pub(crate) fn delete_collection(
        &mut self,
        info: &Arc<ResourceInfo>,
        version: &str,
        ns: Option<&str>,
        list: &ListOpts,
        opts: &DeleteOpts,
    ) -> Result<Value, ApiError> {
        let mut lo = list.clone();
        lo.limit = None;
        lo.continue_token = None;
        let listed = self.list(info, version, ns, &lo)?;
        let mut items = Vec::new();
        for item in listed["items"].as_array().cloned().unwrap_or_default() {
            let ns = meta_str(&item, "namespace").to_string();
            let name = meta_str(&item, "name").to_string();
            match self.delete(info, version, &ns, &name, opts) {
                // A collection delete lists the objects, never per-item Statuses.
                Ok(v) if v["kind"] == "Status" => items.push(item),
                Ok(v) => items.push(v),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(json!({
            "apiVersion": info.api_version(version),
            "kind": format!("{}List", info.kind),
            "metadata": {"resourceVersion": self.rv.to_string()},
            "items": items,
        }))
    }

    /// Stores an object directly (test hook): no validation, no counters; keeps uid etc.
    pub(crate) fn put_direct(
        &mut self,
        info: &Arc<ResourceInfo>,
        mut obj: Value,
    ) -> Result<Value, ApiError> {
        let ns = meta_str(&obj, "namespace").to_string();
        let name = meta_str(&obj, "name").to_string();
        if name.is_empty() {
            return Err(ApiError::bad_request("metadata.name is required"));
        }
        let ns = if info.namespaced {
            if ns.is_empty() {
                "default".to_string()
            } else {
                ns
            }
        } else {
            String::new()
        };
        let version = info.versions[0].clone();
        obj["apiVersion"] = json!(info.api_version(&version));
        obj["kind"] = json!(info.kind);
        let old = self.get_raw(&info.key(), &ns, &name);
        {
            let m = meta_mut(&mut obj);
            if info.namespaced {
                m.insert("namespace".into(), json!(ns));
            }
            if !m.contains_key("uid") {
                let uid = old
                    .as_ref()
                    .map(|o| meta_str(o, "uid").to_string())
                    .filter(|u| !u.is_empty())
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                m.insert("uid".into(), json!(uid));
            }
            if !m.contains_key("creationTimestamp") {
                m.insert("creationTimestamp".into(), json!(now_string()));
            }
        }
        let stored = self.put(info, obj);
        // A direct write is taken as given: no simulated Deployment status on top.
        self.after_put(info, &stored, true);
        Ok((*stored).clone())
    }

    /// Deletes directly (test hook), honouring finalizers and garbage collection.
    pub(crate) fn delete_direct(
        &mut self,
        info: &Arc<ResourceInfo>,
        ns: &str,
        name: &str,
    ) -> Option<Value> {
        let ns = if info.namespaced { ns } else { "" };
        self.delete_internal(info, &(ns.to_string(), name.to_string()), false)
            .map(|v| (*v).clone())
    }
}

/// The candidate object with what the server owns: for a status write the stored
/// object with the new status, otherwise the new object with the stored status (when
/// there is a status subresource); apiVersion, kind, name and namespace from the
/// request; uid, timestamps, generation and managedFields from the stored object.
fn with_server_fields(
    info: &ResourceInfo,
    version: &str,
    ns: &str,
    name: &str,
    sub: Sub,
    old: Option<&Value>,
    mut new: Value,
) -> Value {
    if let Some(old) = old.filter(|_| sub == Sub::Status) {
        let status = new.get("status").cloned();
        new = old.clone();
        match status {
            Some(s) => new["status"] = s,
            None => {
                new.as_object_mut().map(|m| m.remove("status"));
            }
        }
    } else if info.status {
        match old.and_then(|o| o.get("status")) {
            Some(s) => new["status"] = s.clone(),
            None => {
                new.as_object_mut().map(|m| m.remove("status"));
            }
        }
    }
    new["apiVersion"] = json!(info.api_version(version));
    new["kind"] = json!(info.kind);
    {
        let m = meta_mut(&mut new);
        m.insert("name".into(), json!(name));
        if info.namespaced {
            m.insert("namespace".into(), json!(ns));
        } else {
            m.remove("namespace");
        }
        m.remove("resourceVersion");
        m.remove("selfLink");
        for key in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "managedFields",
        ] {
            match old.and_then(|o| meta(o)).and_then(|om| om.get(key)) {
                Some(v) => {
                    m.insert(key.into(), v.clone());
                }
                None => {
                    m.remove(key);
                }
            }
        }
        if old.is_none() {
            m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            m.insert("creationTimestamp".into(), json!(now_string()));
        }
        for key in ["labels", "annotations"] {
            if m.get(key).is_some_and(Value::is_null) {
                m.remove(key);
            }
        }
    }
    new
}

/// Prunes, defaults and validates a custom resource against its schema; unknown
/// fields fail, warn or pass as `fieldValidation` says.
fn check_schema(
    schema: &Value,
    info: &ResourceInfo,
    version: &str,
    name: &str,
    validation: Validation,
    new: &mut Value,
    warnings: &mut Vec<String>,
) -> Result<(), ApiError> {
    let unknown = schema::prune(schema, new);
    if !unknown.is_empty() {
        match validation {
            Validation::Strict => {
                let list: Vec<String> = unknown
                    .iter()
                    .map(|u| format!("unknown field \"{u}\""))
                    .collect();
                return Err(ApiError::bad_request(format!(
                    "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {}",
                    list.join(", "),
                    kind = info.kind,
                )));
            }
            Validation::Warn => {
                warnings.extend(unknown.iter().map(|u| format!("unknown field \"{u}\"")))
            }
            Validation::Ignore => {}
        }
    }
    schema::apply_defaults(schema, new);
    let errs = schema::validate(schema, new);
    if !errs.is_empty() {
        return Err(ApiError::invalid(info, name, errs));
    }
    Ok(())
}

/// The generation after a write: 1 on create (or when none is stored); one more when
/// anything outside the metadata (and the status, with a status subresource) changed
/// or deletion began.
fn next_generation(info: &ResourceInfo, old: Option<&Value>, new: &Value) -> i64 {
    let current_gen = old
        .and_then(|o| o.pointer("/metadata/generation"))
        .and_then(Value::as_i64);
    match (current_gen, old) {
        (Some(g), Some(o)) => {
            let strip = |v: &Value| {
                let mut v = v.clone();
                if let Some(m) = v.as_object_mut() {
                    m.remove("metadata");
                    m.remove("apiVersion");
                    m.remove("kind");
                    if info.status {
                        m.remove("status");
                    }
                }
                v
            };
            let became_deleting = meta_str(o, "deletionTimestamp").is_empty()
                && !meta_str(new, "deletionTimestamp").is_empty();
            if strip(o) != strip(new) || became_deleting {
                g + 1
            } else {
                g
            }
        }
        _ => 1,
    }
}

/// The finalizer that marks a foreground deletion.
const FOREGROUND: &str = "foregroundDeletion";

/// How managedFields are computed for a write.
enum Managers {
    /// From the diff, as an `Update` by the request's field manager.
    Track,
    /// Already computed (server-side apply).
    Set(Vec<Managed>),
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;

    /// A fresh cluster, as the API server starts it.
    pub(crate) fn state() -> State {
        State::new(Config {
            deployment_ready_delay: Duration::ZERO,
            simulate_deployments: true,
            watch_history: 100,
        })
    }

    #[test]
    fn default_namespaces_exist_and_rv_grows() {
        let st = state();
        let ns = st.resource("", "v1", "namespaces").unwrap();
        assert!(st.get(&ns, "v1", "", "default").is_ok());
        assert!(st.get(&ns, "v1", "", "kube-system").is_ok());
        assert!(st.rv >= 3);
    }
}
