//! The resource registry: what the server serves (`ResourceInfo`), the built-in
//! resources, and the resources a CustomResourceDefinition defines. Kept apart from the
//! objects so that readers of resource facts (selectors, discovery, errors) need not
//! depend on the store.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::patch::ListCtx;
use crate::schema;

/// `(group, plural)`; the core group is `""`.
pub(crate) type ResKey = (String, String);

/// What the CRD says about one of its resources.
#[derive(Clone, Debug, Default)]
pub(crate) struct CrdInfo {
    /// `openAPIV3Schema` per version.
    pub schemas: BTreeMap<String, Value>,
    /// `additionalPrinterColumns` per version.
    pub columns: BTreeMap<String, Vec<Value>>,
    /// `selectableFields` per version, as field selector paths (`spec.color`).
    pub selectable: BTreeMap<String, Vec<String>>,
}

/// A served resource.
#[derive(Clone, Debug)]
pub(crate) struct ResourceInfo {
    pub group: String,
    pub versions: Vec<String>,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub namespaced: bool,
    pub status: bool,
    pub generation: bool,
    pub crd: Option<CrdInfo>,
}

impl ResourceInfo {
    fn builtin(
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
        short: &[&str],
    ) -> Self {
        ResourceInfo {
            group: group.into(),
            versions: vec![version.into()],
            kind: kind.into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            short_names: short.iter().map(|s| s.to_string()).collect(),
            categories: Vec::new(),
            namespaced,
            status: false,
            generation: false,
            crd: None,
        }
    }
    /// `plural` or `plural.group`.
    pub(crate) fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
    pub(crate) fn key(&self) -> ResKey {
        (self.group.clone(), self.plural.clone())
    }
    pub(crate) fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }
    pub(crate) fn schema(&self, version: &str) -> Option<&Value> {
        self.crd.as_ref().and_then(|c| c.schemas.get(version))
    }
    pub(crate) fn list_ctx(&self, version: &str) -> ListCtx<'_> {
        ListCtx {
            schema: self.schema(version),
        }
    }
    fn with_status(mut self) -> Self {
        self.status = true;
        self
    }
    fn with_generation(mut self) -> Self {
        self.generation = true;
        self
    }
    fn in_category_all(mut self) -> Self {
        self.categories = vec!["all".into()];
        self
    }
    pub(crate) fn is(&self, group: &str, plural: &str) -> bool {
        self.group == group && self.plural == plural
    }
}

fn builtins() -> Vec<ResourceInfo> {
    use ResourceInfo as R;
    let rbac = "rbac.authorization.k8s.io";
    vec![
        R::builtin("", "v1", "Namespace", "namespaces", false, &["ns"]),
        R::builtin("", "v1", "ConfigMap", "configmaps", true, &["cm"]),
        R::builtin("", "v1", "Secret", "secrets", true, &[]),
        R::builtin("", "v1", "Service", "services", true, &["svc"])
            .with_status()
            .in_category_all(),
        R::builtin("", "v1", "ServiceAccount", "serviceaccounts", true, &["sa"]),
        R::builtin("", "v1", "Event", "events", true, &["ev"]),
        R::builtin("", "v1", "Pod", "pods", true, &["po"])
            .with_status()
            .in_category_all(),
        R::builtin("events.k8s.io", "v1", "Event", "events", true, &["ev"]),
        R::builtin("apps", "v1", "Deployment", "deployments", true, &["deploy"])
            .with_status()
            .with_generation()
            .in_category_all(),
        R::builtin("coordination.k8s.io", "v1", "Lease", "leases", true, &[]),
        R::builtin(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            true,
            &["pdb"],
        )
        .with_status()
        .with_generation(),
        R::builtin(
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            true,
            &["hpa"],
        )
        .with_status()
        .with_generation()
        .in_category_all(),
        R::builtin(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
            &["crd", "crds"],
        )
        .with_status()
        .with_generation(),
        R::builtin(rbac, "v1", "ClusterRole", "clusterroles", false, &[]),
        R::builtin(
            rbac,
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
            &[],
        ),
        R::builtin(rbac, "v1", "Role", "roles", true, &[]),
        R::builtin(rbac, "v1", "RoleBinding", "rolebindings", true, &[]),
    ]
}

/// The served resources: the built-ins and those of established CRDs.
#[derive(Debug)]
pub(crate) struct Registry {
    resources: BTreeMap<ResKey, Arc<ResourceInfo>>,
}

impl Registry {
    /// The built-in resources every cluster serves.
    pub(crate) fn with_builtins() -> Self {
        let resources = builtins()
            .into_iter()
            .map(|r| (r.key(), Arc::new(r)))
            .collect();
        Registry { resources }
    }

    /// The resource under `key`, if served.
    pub(crate) fn get(&self, key: &ResKey) -> Option<Arc<ResourceInfo>> {
        self.resources.get(key).cloned()
    }

    /// A built-in resource, which is always served.
    pub(crate) fn builtin(&self, group: &str, plural: &str) -> Arc<ResourceInfo> {
        self.get(&(group.to_string(), plural.to_string()))
            .expect("built-in resources are always served")
    }

    /// The resource serving `plural` in `group` at `version`.
    pub(crate) fn served(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<Arc<ResourceInfo>> {
        self.get(&(group.to_string(), plural.to_string()))
            .filter(|r| r.versions.iter().any(|v| v == version))
    }

    /// The resource of `kind` within `group`.
    pub(crate) fn for_kind(&self, group: &str, kind: &str) -> Option<Arc<ResourceInfo>> {
        self.resources
            .values()
            .find(|r| r.group == group && r.kind == kind)
            .cloned()
    }

    /// Every served resource.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Arc<ResourceInfo>> {
        self.resources.values()
    }

    /// Starts serving a resource (a CRD's), replacing what was served under its key.
    pub(crate) fn serve(&mut self, info: ResourceInfo) {
        self.resources.insert(info.key(), Arc::new(info));
    }

    /// Stops serving a resource.
    pub(crate) fn unserve(&mut self, key: &ResKey) {
        self.resources.remove(key);
    }
}

/// The resource a CRD object defines, or the field errors that make it invalid.
pub(crate) fn crd_resource(crd: &Value) -> Result<ResourceInfo, Vec<schema::FieldError>> {
    let mut errs = Vec::new();
    let s = |p: &str| crd.pointer(p).and_then(Value::as_str).unwrap_or("");
    let group = s("/spec/group");
    let plural = s("/spec/names/plural");
    let kind = s("/spec/names/kind");
    let scope = s("/spec/scope");
    let req = |errs: &mut Vec<schema::FieldError>, field: &str| {
        errs.push(schema::FieldError {
            reason: "FieldValueRequired",
            field: field.into(),
            message: format!("{field}: Required value"),
        })
    };
    if group.is_empty() {
        req(&mut errs, "spec.group");
    }
    if plural.is_empty() {
        req(&mut errs, "spec.names.plural");
    }
    if kind.is_empty() {
        req(&mut errs, "spec.names.kind");
    }
    if !matches!(scope, "Namespaced" | "Cluster") {
        errs.push(schema::FieldError {
            reason: "FieldValueNotSupported",
            field: "spec.scope".into(),
            message: format!(
                "spec.scope: Unsupported value: \"{scope}\": supported values: \"Cluster\", \"Namespaced\""
            ),
        });
    }
    let name = s("/metadata/name");
    if !plural.is_empty() && !group.is_empty() && name != format!("{plural}.{group}") {
        errs.push(schema::FieldError {
            reason: "FieldValueInvalid",
            field: "metadata.name".into(),
            message: format!(
                "metadata.name: Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"
            ),
        });
    }
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        req(&mut errs, "spec.versions");
    }
    let storage = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count();
    if !versions.is_empty() && storage != 1 {
        errs.push(schema::FieldError {
            reason: "FieldValueInvalid",
            field: "spec.versions".into(),
            message: format!(
                "spec.versions: Invalid value: {storage}: must have exactly one version marked as storage version"
            ),
        });
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    let mut info = CrdInfo::default();
    let mut served = Vec::new();
    let mut status = false;
    for v in &versions {
        let vname = v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if v.get("served").and_then(Value::as_bool) != Some(false) {
            served.push(vname.clone());
        }
        if v.pointer("/subresources/status").is_some() {
            status = true;
        }
        if let Some(sch) = v.pointer("/schema/openAPIV3Schema") {
            if !sch.is_object() {
                return Err(vec![schema::FieldError {
                    reason: "FieldValueInvalid",
                    field: "spec.versions[].schema.openAPIV3Schema".into(),
                    message:
                        "spec.versions[].schema.openAPIV3Schema: Invalid value: must be an object"
                            .into(),
                }]);
            }
            info.schemas.insert(vname.clone(), sch.clone());
        }
        let selectable: Vec<String> = v
            .get("selectableFields")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|f| f.get("jsonPath").and_then(Value::as_str))
            .map(|p| p.trim_start_matches('.').to_string())
            .collect();
        info.selectable.insert(vname.clone(), selectable);
        if let Some(cols) = v.get("additionalPrinterColumns").and_then(Value::as_array) {
            info.columns.insert(vname, cols.clone());
        }
    }
    let strs = |p: &str| -> Vec<String> {
        crd.pointer(p)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let singular = match s("/spec/names/singular") {
        "" => kind.to_lowercase(),
        other => other.to_string(),
    };
    Ok(ResourceInfo {
        group: group.into(),
        versions: served,
        kind: kind.into(),
        plural: plural.into(),
        singular,
        short_names: strs("/spec/names/shortNames"),
        categories: strs("/spec/names/categories"),
        namespaced: scope == "Namespaced",
        status,
        generation: true,
        crd: Some(info),
    })
}
