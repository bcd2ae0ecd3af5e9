//! The children of each gateway, by controller owner uid: one index per child kind,
//! maintained from that kind's watch events, so that a reconcile finds its children in
//! time proportional to their number, not to the number of cached children.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use kube::api::DynamicObject;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

/// A child by namespace and name (the kind is the index's).
pub(crate) type ChildKey = (String, String);

#[derive(Default)]
struct Owners {
    by_owner: HashMap<String, HashSet<ChildKey>>,
    owner_of: HashMap<ChildKey, String>,
    /// Filled during a relist (between `Init` and `InitDone`), then swapped in, as the
    /// reflector swaps its store.
    relist: Option<Vec<(ChildKey, String)>>,
}

impl Owners {
    fn set(&mut self, child: ChildKey, owner: Option<String>) {
        if let Some(previous) = self.owner_of.remove(&child)
            && let Some(children) = self.by_owner.get_mut(&previous)
        {
            children.remove(&child);
            if children.is_empty() {
                self.by_owner.remove(&previous);
            }
        }
        if let Some(owner) = owner {
            self.by_owner
                .entry(owner.clone())
                .or_default()
                .insert(child.clone());
            self.owner_of.insert(child, owner);
        }
    }
}

/// Children of one kind by the uid of their controller owner.
#[derive(Clone, Default)]
pub(crate) struct OwnerIndex(Arc<Mutex<Owners>>);

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
    fn owners(&self) -> std::sync::MutexGuard<'_, Owners> {
        self.0.lock().expect("owner index lock")
    }

    /// Follows one watch event of the kind.
    pub(crate) fn observe(&self, event: &watcher::Event<DynamicObject>) {
        let mut owners = self.owners();
        match event {
            watcher::Event::Init => owners.relist = Some(Vec::new()),
            watcher::Event::InitApply(object) => {
                let (child, owner) = key_and_owner(object);
                if let (Some(relist), Some(owner)) = (owners.relist.as_mut(), owner) {
                    relist.push((child, owner));
                }
            }
            watcher::Event::InitDone => {
                let listed = owners.relist.take().unwrap_or_default();
                *owners = Owners::default();
                for (child, owner) in listed {
                    owners.set(child, Some(owner));
                }
            }
            watcher::Event::Apply(object) => {
                let (child, owner) = key_and_owner(object);
                owners.set(child, owner);
            }
            watcher::Event::Delete(object) => {
                let (child, _) = key_and_owner(object);
                owners.set(child, None);
            }
        }
    }

    /// The children whose controller owner has `uid`.
    pub(crate) fn children_of(&self, uid: &str) -> Vec<ChildKey> {
        self.owners()
            .by_owner
            .get(uid)
            .map(|children| children.iter().cloned().collect())
            .unwrap_or_default()
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
