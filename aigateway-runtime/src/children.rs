//! The children of each gateway, by controller owner uid: one index per child kind,
//! maintained from that kind's watch events, so that a reconcile finds its children in
//! time proportional to their number, not to the number of cached children.

use kube::api::DynamicObject;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use crate::group_index::GroupIndex;

/// A child by namespace and name (the kind is the index's).
pub(crate) type ChildKey = (String, String);

/// Children of one kind by the uid of their controller owner.
#[derive(Clone, Default)]
pub(crate) struct OwnerIndex(GroupIndex<ChildKey, String>);

fn key_and_owner(object: &DynamicObject) -> (ChildKey, Option<String>) {
    let owner = object
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.clone());
    (
        (
            object.meta().namespace.clone().unwrap_or_default(),
            object.name_any(),
        ),
        owner,
    )
}

impl OwnerIndex {
    /// Follows one watch event of the kind.
    pub(crate) fn observe(&self, event: &watcher::Event<DynamicObject>) {
        self.0.observe(event, key_and_owner);
    }

    /// The children whose controller owner has `uid`.
    pub(crate) fn children_of(&self, uid: &str) -> Vec<ChildKey> {
        self.0.members_of(&uid.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use kube::api::ApiResource;

    fn child(name: &str, owner: Option<&str>) -> DynamicObject {
        let resource = ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&());
        let mut object = DynamicObject::new(name, &resource).within("ns");
        object.metadata.owner_references = owner.map(|uid| {
            vec![OwnerReference {
                uid: uid.into(),
                controller: Some(true),
                ..Default::default()
            }]
        });
        object
    }

    fn names(index: &OwnerIndex, uid: &str) -> Vec<String> {
        let mut names: Vec<String> = index.children_of(uid).into_iter().map(|c| c.1).collect();
        names.sort();
        names
    }

    #[test]
    fn children_follow_applies_deletes_owner_changes_and_relists() {
        let index = OwnerIndex::default();
        index.observe(&watcher::Event::Apply(child("a", Some("u1"))));
        index.observe(&watcher::Event::Apply(child("b", Some("u1"))));
        index.observe(&watcher::Event::Apply(child("c", Some("u2"))));
        assert_eq!(names(&index, "u1"), ["a", "b"]);
        index.observe(&watcher::Event::Apply(child("b", Some("u2"))));
        assert_eq!(names(&index, "u1"), ["a"]);
        assert_eq!(names(&index, "u2"), ["b", "c"]);
        index.observe(&watcher::Event::Apply(child("a", None)));
        index.observe(&watcher::Event::Delete(child("c", Some("u2"))));
        assert!(names(&index, "u1").is_empty());
        assert_eq!(names(&index, "u2"), ["b"]);

        // A relist replaces the index at its end; until then the old one answers.
        index.observe(&watcher::Event::Init);
        index.observe(&watcher::Event::InitApply(child("d", Some("u1"))));
        assert_eq!(names(&index, "u2"), ["b"]);
        index.observe(&watcher::Event::InitDone);
        assert_eq!(names(&index, "u1"), ["d"]);
        assert!(names(&index, "u2").is_empty(), "b went during the gap");
    }
}
