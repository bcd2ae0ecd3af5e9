//! Releasing the runtime's marks when its operator is gone for good (uninstall, or a
//! rollback to another operator).
//!
//! While an operator runs, the loop keeps marks on objects (see [`names`]): the
//! class finalizer on its classes while gateways use them, the gateway finalizer on
//! gateways of implementations with a cleanup; operators of earlier releases also set
//! the conditions-owner annotation on gateways and attached objects. Without the
//! operator nothing removes them, and deleting a class (or the CRDs) waits for a
//! finalizer forever. [`release`] removes exactly those marks of one controller, and
//! nothing else:
//!
//! - on classes whose `spec.controller` is the controller: the class finalizer;
//! - on gateways and attached objects it served (its status writes own conditions
//!   there, per the API server's managedFields record, or the legacy annotation names
//!   it): the legacy annotation, and on gateways the gateway finalizer (a gateway
//!   finalizer on a gateway another controller writes the conditions of is not ours to
//!   remove).
//!
//! Each object is changed with a JSON patch whose `test` operations check every value it
//! removes, so a finalizer or annotation someone else changed at the same moment is
//! never dropped: the patch fails, and the object is read again. Nothing is written
//! where there is nothing to release, so running it twice writes nothing the second
//! time. A resource whose CRD is not installed is reported and skipped.
//!
//! Run it only when no operator with that controller runs: a running one puts its
//! marks back.

use std::collections::BTreeSet;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::kind::GatewayKind;
use crate::names;

/// Objects asked for per list request.
const PAGE: u32 = 500;
/// Rounds of "list, patch" while objects change under us before giving up.
const ATTEMPTS: usize = 5;

/// What [`release`] releases, and where.
#[derive(Debug, Clone)]
pub struct ReleaseScope<'a> {
    /// The controller whose marks are released (the classes' `spec.controller`, and the
    /// value of the legacy conditions-owner annotation).
    pub controller: &'a str,
    /// Its implementation's field manager
    /// ([`default_field_manager`](names::default_field_manager) unless it overrides it):
    /// a gateway whose conditions its status writes own is one it served.
    pub field_manager: &'a str,
    /// Gateways and attached objects are looked for in this namespace only (classes
    /// are cluster-scoped); `None`: in every namespace.
    pub namespace: Option<&'a str>,
    /// Report what would be released without writing anything.
    pub dry_run: bool,
}

/// One object whose marks were released (or, in a dry run, would be).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    /// The object's kind, e.g. `AiGatewayClass`.
    pub kind: String,
    /// `namespace/name`, or `name` for a cluster-scoped object.
    pub object: String,
    /// The finalizers removed.
    pub finalizers: Vec<String>,
    /// Whether the conditions-owner annotation was removed.
    pub owner_annotation: bool,
}

impl fmt::Display for Released {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut marks: Vec<String> = self
            .finalizers
            .iter()
            .map(|finalizer| format!("finalizer {finalizer}"))
            .collect();
        if self.owner_annotation {
            marks.push(format!("annotation {}", names::CONDITIONS_OWNER_ANNOTATION));
        }
        write!(f, "{} {}: {}", self.kind, self.object, marks.join(", "))
    }
}

/// What [`release`] did on one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceOutcome {
    /// The API server does not serve the resource (its CRD is not installed): skipped.
    NotInstalled {
        /// `<plural>.<group>`.
        resource: String,
    },
    /// The resource was listed.
    Listed {
        /// `<plural>.<group>`.
        resource: String,
        /// How many objects were looked at.
        objects: usize,
        /// The objects whose marks were released.
        released: Vec<Released>,
    },
}

/// Why marks could not be released. Each message is one line: what failed, on which
/// object, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// RBAC refused a request.
    #[error(
        "not allowed to {verb} {target}: {message}: grant {verb} on {resource} to the identity running the uninstall"
    )]
    Forbidden {
        /// `list`, `get` or `patch`.
        verb: &'static str,
        /// The object or resource.
        target: String,
        /// `<plural>.<group>`.
        resource: String,
        /// The API server's message.
        message: String,
    },
    /// Another request failed.
    #[error(
        "could not {verb} {target}: {message}: check that the API server is reachable and run the uninstall again"
    )]
    Api {
        /// `list` or `patch`.
        verb: &'static str,
        /// The object or resource.
        target: String,
        /// The error, as one line.
        message: String,
    },
    /// Objects kept changing between our read and our write.
    #[error(
        "{resource}: {objects} kept changing while their marks were released ({ATTEMPTS} attempts): run the uninstall again"
    )]
    Contended {
        /// `<plural>.<group>`.
        resource: String,
        /// The objects, comma-separated.
        objects: String,
    },
}

/// Releases the marks of `scope.controller` on the classes and the gateways of kind `K`.
/// Returns one outcome per resource: classes, then gateways.
pub async fn release<K: GatewayKind>(
    client: &Client,
    scope: &ReleaseScope<'_>,
) -> Result<Vec<ResourceOutcome>, ReleaseError> {
    let classes: Api<K::Class> = Api::all(client.clone());
    let class_outcome = release_resource(&classes, scope, |page: Vec<K::Class>| {
        page.into_iter()
            .filter(|class| K::controller(class) == scope.controller)
            .map(|class| Candidate {
                meta: class.meta().clone(),
                finalizer: Some(names::CLASS_FINALIZER),
                owner: None,
            })
            .collect()
    })
    .await?;
    let gateways: Api<K::Gateway> = match scope.namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    let gateway_outcome = release_owned(&gateways, scope, Some(names::FINALIZER)).await?;
    Ok(vec![class_outcome, gateway_outcome])
}

/// Releases the conditions-owner annotation of `scope.controller` on attached objects of
/// kind `A` (e.g. ToolRoutes).
pub async fn release_attached<A>(
    client: &Client,
    scope: &ReleaseScope<'_>,
) -> Result<ResourceOutcome, ReleaseError>
where
    A: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + fmt::Debug
        + DeserializeOwned,
{
    let objects: Api<A> = match scope.namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    release_owned(&objects, scope, None).await
}

/// Objects we served (our status writes own conditions there, or the legacy annotation
/// names us): the legacy annotation, and `finalizer`.
async fn release_owned<T>(
    api: &Api<T>,
    scope: &ReleaseScope<'_>,
    finalizer: Option<&'static str>,
) -> Result<ResourceOutcome, ReleaseError>
where
    T: Resource<DynamicType = ()> + Clone + fmt::Debug + DeserializeOwned,
{
    // Metadata only: the decision needs nothing else, and gateways may be many.
    let metadata = api.clone();
    let controller = scope.controller;
    let status_manager = names::status_field_manager(scope.field_manager, controller);
    release_pages(api, scope, move |params| {
        let status_manager = status_manager.clone();
        let metadata = metadata.clone();
        async move {
            let list = metadata.list_metadata(&params).await?;
            let next = list.metadata.continue_.clone().filter(|c| !c.is_empty());
            let listed = list.items.len();
            let candidates = list
                .items
                .into_iter()
                .filter(|object| {
                    crate::ownership::owned_conditions(
                        &object.metadata,
                        &status_manager,
                        controller,
                    )
                    .any()
                })
                .map(|object| Candidate {
                    meta: object.metadata,
                    finalizer,
                    owner: Some(controller.to_owned()),
                })
                .collect();
            Ok(Page {
                candidates,
                listed,
                next,
            })
        }
    })
    .await
}

/// Full objects, decided by `select` (classes: their `spec.controller`).
async fn release_resource<T>(
    api: &Api<T>,
    scope: &ReleaseScope<'_>,
    select: impl Fn(Vec<T>) -> Vec<Candidate> + Clone,
) -> Result<ResourceOutcome, ReleaseError>
where
    T: Resource<DynamicType = ()> + Clone + fmt::Debug + DeserializeOwned,
{
    let full = api.clone();
    release_pages(api, scope, move |params| {
        let full = full.clone();
        let select = select.clone();
        async move {
            let list = full.list(&params).await?;
            Ok(Page {
                listed: list.items.len(),
                next: list.metadata.continue_.clone().filter(|c| !c.is_empty()),
                candidates: select(list.items),
            })
        }
    })
    .await
}

/// An object with marks that may be ours: `finalizer` is removed if present, and the
/// conditions-owner annotation if its value is `owner`.
#[derive(Debug, Clone)]
struct Candidate {
    meta: ObjectMeta,
    finalizer: Option<&'static str>,
    owner: Option<String>,
}

/// One page of a list: the candidates among `listed` objects, and the continue token.
struct Page {
    candidates: Vec<Candidate>,
    listed: usize,
    next: Option<String>,
}

/// Lists page by page with `page`, patches each candidate that carries a mark, and
/// repeats (for the objects whose patch found them changed) up to [`ATTEMPTS`] times.
async fn release_pages<T, F, Fut>(
    api: &Api<T>,
    scope: &ReleaseScope<'_>,
    page: F,
) -> Result<ResourceOutcome, ReleaseError>
where
    T: Resource<DynamicType = ()> + Clone + fmt::Debug + DeserializeOwned,
    F: Fn(ListParams) -> Fut,
    Fut: std::future::Future<Output = Result<Page, kube::Error>>,
{
    let kind = T::kind(&()).into_owned();
    let resource = format!("{}.{}", T::plural(&()), T::group(&()));
    let mut released = Vec::new();
    let mut objects = 0;
    // `None`: every object; afterwards only those whose patch found them changed.
    let mut retry: Option<BTreeSet<String>> = None;
    for _ in 0..ATTEMPTS {
        let mut changed = BTreeSet::new();
        let mut params = ListParams::default().limit(PAGE);
        loop {
            let Page {
                candidates,
                listed,
                next,
            } = match page(params.clone()).await {
                Ok(found) => found,
                // A real API server answers a resource it does not serve with a
                // plain-text "404 page not found", which kube's `is_not_found` (keyed on
                // the reason) does not recognise: the code decides.
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    return Ok(ResourceOutcome::NotInstalled { resource });
                }
                Err(error) => return Err(list_error(&resource, error)),
            };
            if retry.is_none() {
                objects += listed;
            }
            for candidate in candidates {
                let key = object_key(&candidate.meta);
                if retry.as_ref().is_some_and(|names| !names.contains(&key)) {
                    continue;
                }
                let Some((patch, marks)) = release_patch(&candidate) else {
                    continue;
                };
                let done = Released {
                    kind: kind.clone(),
                    object: key.clone(),
                    finalizers: marks.finalizers,
                    owner_annotation: marks.owner_annotation,
                };
                if scope.dry_run {
                    released.push(done);
                    continue;
                }
                match patch_object(api, &candidate.meta, patch).await {
                    Ok(()) => released.push(done),
                    Err(kube::Error::Api(status)) if status.code == 404 => {}
                    // A `test` that failed (422), or a conflict: read it again.
                    Err(kube::Error::Api(status)) if status.code == 422 || status.code == 409 => {
                        changed.insert(key);
                    }
                    Err(error) => return Err(patch_error(&resource, &kind, &key, error)),
                }
            }
            match next {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
        if changed.is_empty() {
            return Ok(ResourceOutcome::Listed {
                resource,
                objects,
                released,
            });
        }
        retry = Some(changed);
    }
    Err(ReleaseError::Contended {
        resource,
        objects: retry
            .unwrap_or_default()
            .into_iter()
            .collect::<Vec<_>>()
            .join(", "),
    })
}

async fn patch_object<T>(api: &Api<T>, meta: &ObjectMeta, patch: Value) -> Result<(), kube::Error>
where
    T: Resource<DynamicType = ()> + Clone + fmt::Debug + DeserializeOwned,
{
    let patch: json_patch::Patch =
        serde_json::from_value(patch).expect("release_patch builds a valid JSON patch");
    let name = meta.name.as_deref().unwrap_or_default();
    let resource = ApiResource::erase::<T>(&());
    let client = api.clone().into_client();
    // A namespaced resource listed across namespaces is patched in the object's own.
    let api: Api<DynamicObject> = match meta.namespace.as_deref() {
        Some(namespace) => Api::namespaced_with(client, namespace, &resource),
        None => Api::all_with(client, &resource),
    };
    api.patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await
        .map(|_| ())
}

/// The marks a patch removes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Marks {
    finalizers: Vec<String>,
    owner_annotation: bool,
}

/// The JSON patch that removes the candidate's marks, each guarded by a `test` of the
/// value it removes; `None` when it carries none.
fn release_patch(candidate: &Candidate) -> Option<(Value, Marks)> {
    let mut operations = Vec::new();
    let mut marks = Marks {
        finalizers: Vec::new(),
        owner_annotation: false,
    };
    if let Some(finalizer) = candidate.finalizer {
        // From the end, so that each removal leaves the indices before it in place.
        let finalizers = candidate.meta.finalizers.as_deref().unwrap_or_default();
        for (index, value) in finalizers.iter().enumerate().rev() {
            if value == finalizer {
                let path = format!("/metadata/finalizers/{index}");
                operations.push(json!({"op": "test", "path": path, "value": value}));
                operations.push(json!({"op": "remove", "path": path}));
                marks.finalizers.push(value.clone());
            }
        }
    }
    if let Some(owner) = &candidate.owner {
        let recorded = candidate
            .meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(names::CONDITIONS_OWNER_ANNOTATION));
        if recorded == Some(owner) {
            let path = format!(
                "/metadata/annotations/{}",
                escape_pointer(names::CONDITIONS_OWNER_ANNOTATION)
            );
            operations.push(json!({"op": "test", "path": path, "value": owner}));
            operations.push(json!({"op": "remove", "path": path}));
            marks.owner_annotation = true;
        }
    }
    (!operations.is_empty()).then_some((Value::Array(operations), marks))
}

/// A JSON pointer segment (RFC 6901): `~` and `/` escaped.
fn escape_pointer(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

fn object_key(meta: &ObjectMeta) -> String {
    let name = meta.name.as_deref().unwrap_or_default();
    match meta.namespace.as_deref() {
        Some(namespace) => format!("{namespace}/{name}"),
        None => name.to_owned(),
    }
}

fn list_error(resource: &str, error: kube::Error) -> ReleaseError {
    match error {
        kube::Error::Api(status) if status.code == 403 => ReleaseError::Forbidden {
            verb: "list",
            target: resource.to_owned(),
            resource: resource.to_owned(),
            message: status.message.clone(),
        },
        other => ReleaseError::Api {
            verb: "list",
            target: resource.to_owned(),
            message: crate::kube_error::describe_kube_error(&other),
        },
    }
}

fn patch_error(resource: &str, kind: &str, object: &str, error: kube::Error) -> ReleaseError {
    let target = format!("{kind} {object}");
    match error {
        kube::Error::Api(status) if status.code == 403 => ReleaseError::Forbidden {
            verb: "patch",
            target,
            resource: resource.to_owned(),
            message: status.message.clone(),
        },
        other => ReleaseError::Api {
            verb: "patch",
            target,
            message: crate::kube_error::describe_kube_error(&other),
        },
    }
}

/// Everything released by a run, as the lines a person reads: what was (or would be)
/// released per object, and per resource whether it was skipped.
pub fn summary(outcomes: &[ResourceOutcome], dry_run: bool) -> Vec<String> {
    let verb = if dry_run { "would release" } else { "released" };
    let mut lines = Vec::new();
    let mut any = false;
    for outcome in outcomes {
        match outcome {
            ResourceOutcome::NotInstalled { resource } => {
                lines.push(format!("{resource}: not installed, skipped"));
            }
            ResourceOutcome::Listed { released, .. } => {
                for object in released {
                    any = true;
                    lines.push(format!("{verb} {object}"));
                }
            }
        }
    }
    if !any {
        let looked: usize = outcomes
            .iter()
            .map(|o| match o {
                ResourceOutcome::Listed { objects, .. } => *objects,
                ResourceOutcome::NotInstalled { .. } => 0,
            })
            .sum();
        lines.push(format!(
            "nothing to release: none of the {looked} objects looked at carries a mark of ours"
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn meta(finalizers: &[&str], owner: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some("gw".into()),
            namespace: Some("team".into()),
            finalizers: Some(finalizers.iter().map(|f| (*f).to_owned()).collect()),
            annotations: owner.map(|o| {
                BTreeMap::from([(names::CONDITIONS_OWNER_ANNOTATION.to_owned(), o.to_owned())])
            }),
            ..Default::default()
        }
    }

    fn candidate(
        meta: ObjectMeta,
        finalizer: Option<&'static str>,
        owner: Option<&str>,
    ) -> Candidate {
        Candidate {
            meta,
            finalizer,
            owner: owner.map(str::to_owned),
        }
    }

    fn apply(meta: &ObjectMeta, patch: Value) -> Result<ObjectMeta, json_patch::PatchError> {
        let mut doc = json!({"metadata": meta});
        let patch: json_patch::Patch = serde_json::from_value(patch).unwrap();
        json_patch::patch(&mut doc, &patch)?;
        Ok(serde_json::from_value(doc["metadata"].clone()).unwrap())
    }

    #[test]
    fn only_our_finalizer_goes_and_every_removal_is_tested() {
        let object = meta(&["example.com/theirs", names::CLASS_FINALIZER, "x/y"], None);
        let (patch, marks) = release_patch(&candidate(
            object.clone(),
            Some(names::CLASS_FINALIZER),
            None,
        ))
        .unwrap();
        assert_eq!(marks.finalizers, [names::CLASS_FINALIZER]);
        assert!(!marks.owner_annotation);
        assert_eq!(
            patch,
            json!([
                {"op": "test", "path": "/metadata/finalizers/1", "value": names::CLASS_FINALIZER},
                {"op": "remove", "path": "/metadata/finalizers/1"},
            ])
        );
        let after = apply(&object, patch).unwrap();
        assert_eq!(after.finalizers.unwrap(), ["example.com/theirs", "x/y"]);
    }

    #[test]
    fn a_finalizer_moved_by_someone_else_fails_the_test_instead_of_removing_theirs() {
        let read = meta(&["a/first", names::FINALIZER], Some("me/ctl"));
        let (patch, _) =
            release_patch(&candidate(read, Some(names::FINALIZER), Some("me/ctl"))).unwrap();
        // Between our read and our write, someone removed the first finalizer: index 1
        // no longer holds ours.
        let now = meta(&[names::FINALIZER], Some("me/ctl"));
        assert!(apply(&now, patch.clone()).is_err());
        // Someone appended theirs: ours is still at index 1, theirs stays.
        let now = meta(&["a/first", names::FINALIZER, "b/late"], Some("me/ctl"));
        let after = apply(&now, patch).unwrap();
        assert_eq!(after.finalizers.unwrap(), ["a/first", "b/late"]);
        assert!(after.annotations.unwrap_or_default().is_empty());
    }

    #[test]
    fn another_controllers_annotation_is_never_removed() {
        let object = meta(&[names::FINALIZER], Some("example.com/other"));
        assert!(release_patch(&candidate(object, None, Some("me/ctl"))).is_none());
        // An owner annotation changed to another controller after our read fails the test.
        let read = meta(&[], Some("me/ctl"));
        let (patch, marks) = release_patch(&candidate(read, None, Some("me/ctl"))).unwrap();
        assert!(marks.owner_annotation);
        assert!(apply(&meta(&[], Some("example.com/other")), patch).is_err());
    }

    #[test]
    fn nothing_to_release_writes_nothing() {
        let object = meta(&["example.com/theirs"], None);
        assert!(release_patch(&candidate(object, Some(names::CLASS_FINALIZER), None)).is_none());
        let empty = ObjectMeta::default();
        assert!(release_patch(&candidate(empty, Some(names::FINALIZER), Some("me/ctl"))).is_none());
    }

    #[test]
    fn the_summary_names_each_object_and_each_skipped_resource() {
        let outcomes = vec![
            ResourceOutcome::Listed {
                resource: "aigatewayclasses.runtime.agentic-layer.ai".into(),
                objects: 2,
                released: vec![Released {
                    kind: "AiGatewayClass".into(),
                    object: "litellm".into(),
                    finalizers: vec![names::CLASS_FINALIZER.into()],
                    owner_annotation: false,
                }],
            },
            ResourceOutcome::NotInstalled {
                resource: "toolroutes.runtime.agentic-layer.ai".into(),
            },
        ];
        assert_eq!(
            summary(&outcomes, true),
            [
                "would release AiGatewayClass litellm: finalizer aigateway.agentic-layer.ai/gateway-exists",
                "toolroutes.runtime.agentic-layer.ai: not installed, skipped",
            ]
        );
        let nothing = vec![ResourceOutcome::Listed {
            resource: "aigateways.runtime.agentic-layer.ai".into(),
            objects: 3,
            released: vec![],
        }];
        assert_eq!(
            summary(&nothing, false),
            ["nothing to release: none of the 3 objects looked at carries a mark of ours"]
        );
    }
}
