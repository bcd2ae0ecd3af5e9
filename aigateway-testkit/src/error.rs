//! `ApiError`: a refused request as the API server words it. Every module that answers a
//! request (the store, the write pipeline, the per-kind strategies, the HTTP front) builds
//! its refusals here, so codes, reasons and `details` stay worded one way.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::patch;
use crate::registry::ResourceInfo;
use crate::schema;

/// An error answered as a `metav1.Status`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    pub(crate) fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }
    pub(crate) fn from_json_patch(e: patch::JsonPatchError) -> Self {
        let code = e.code();
        let reason = if code == 400 { "BadRequest" } else { "Invalid" };
        Self::new(code, reason, e.to_string())
    }
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }
    pub(crate) fn not_found(info: &ResourceInfo, name: &str) -> Self {
        let mut e = Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", info.qualified()),
        );
        e.details = Some(json!({"name": name, "group": info.group, "kind": info.plural}));
        e
    }
    pub(crate) fn conflict(info: &ResourceInfo, name: &str) -> Self {
        let mut e = Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                info.qualified()
            ),
        );
        e.details = Some(json!({"name": name, "group": info.group, "kind": info.plural}));
        e
    }
    pub(crate) fn already_exists(info: &ResourceInfo, name: &str) -> Self {
        let mut e = Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", info.qualified()),
        );
        e.details = Some(json!({"name": name, "group": info.group, "kind": info.plural}));
        e
    }
    pub(crate) fn invalid(info: &ResourceInfo, name: &str, errs: Vec<schema::FieldError>) -> Self {
        let msgs: Vec<String> = errs.iter().map(|e| e.message.clone()).collect();
        let joined = if msgs.len() == 1 {
            msgs[0].clone()
        } else {
            format!("[{}]", msgs.join(", "))
        };
        let kind_group = if info.group.is_empty() {
            info.kind.clone()
        } else {
            format!("{}.{}", info.kind, info.group)
        };
        let causes: Vec<Value> = errs
            .iter()
            .map(|e| {
                let prefix = format!("{}: ", e.field);
                let message = e.message.strip_prefix(&prefix).unwrap_or(&e.message);
                json!({"reason": e.reason, "message": message, "field": e.field})
            })
            .collect();
        let mut err = Self::new(
            422,
            "Invalid",
            format!("{kind_group} \"{name}\" is invalid: {joined}"),
        );
        err.details =
            Some(json!({"name": name, "group": info.group, "kind": info.kind, "causes": causes}));
        err
    }

    /// A server-side apply that conflicts with other managers' fields.
    pub(crate) fn apply_conflicts(conflicts: &[patch::Conflict]) -> Self {
        let n = conflicts.len();
        let mut by_manager: BTreeMap<String, Vec<&patch::Conflict>> = BTreeMap::new();
        for c in conflicts {
            by_manager
                .entry(c.manager_description())
                .or_default()
                .push(c);
        }
        let message = if n == 1 {
            let c = &conflicts[0];
            format!(
                "Apply failed with 1 conflict: conflict with {}: {}",
                c.manager_description(),
                c.path
            )
        } else {
            let parts: Vec<String> = by_manager
                .iter()
                .map(|(m, cs)| {
                    let paths: Vec<String> = cs.iter().map(|c| format!("- {}", c.path)).collect();
                    format!("conflicts with {m}:\n{}", paths.join("\n"))
                })
                .collect();
            format!("Apply failed with {n} conflicts: {}", parts.join("\n"))
        };
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|c| {
                json!({"reason": "FieldManagerConflict",
                       "message": format!("conflict with {}", c.manager_description()),
                       "field": c.path})
            })
            .collect();
        // The API server's apply conflicts name no object, only the conflicting fields.
        let mut e = ApiError::new(409, "Conflict", message);
        e.details = Some(json!({"causes": causes}));
        e
    }

    /// The `metav1.Status` body.
    pub(crate) fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            let mut d = d.clone();
            // Core-group details carry no `group` (JSON omits the empty string).
            if let Some(m) = d.as_object_mut()
                && m.get("group").is_some_and(|g| g == "")
            {
                m.remove("group");
            }
            s["details"] = d;
        }
        if self.reason.is_empty() {
            // An internal error carries no reason.
            if let Some(m) = s.as_object_mut() {
                m.remove("reason");
            }
        }
        s
    }
}
