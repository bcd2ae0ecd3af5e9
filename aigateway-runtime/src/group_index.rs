//! Members by group, kept from one watch's events: which children a gateway owns,
//! which gateways name a class. A reverse lookup in time proportional to the group's
//! size, where a scan of the cache would cost the whole cache on every event.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

use kube::runtime::watcher;

#[derive(Debug)]
struct Groups<M, G> {
    /// A group has one member or a few (a gateway's child of one kind; a class's
    /// gateways are the exception): a vector costs one small allocation where a set
    /// cost a table of several buckets per group.
    members: HashMap<G, Vec<M>>,
    group_of: HashMap<M, G>,
    /// Filled during a relist (between `Init` and `InitDone`), then swapped in, as the
    /// reflector swaps its store.
    relist: Option<Vec<(M, G)>>,
}

impl<M, G> Default for Groups<M, G> {
    fn default() -> Self {
        Self {
            members: HashMap::new(),
            group_of: HashMap::new(),
            relist: None,
        }
    }
}

impl<M: Hash + Eq + Clone, G: Hash + Eq + Clone> Groups<M, G> {
    fn set(&mut self, member: M, group: Option<G>) {
        // Most events change nothing here (a status write): the vector scan below is
        // for a member that moves or goes.
        if group.is_some() && self.group_of.get(&member) == group.as_ref() {
            return;
        }
        if let Some(previous) = self.group_of.remove(&member)
            && let Some(members) = self.members.get_mut(&previous)
        {
            members.retain(|m| *m != member);
            if members.is_empty() {
                self.members.remove(&previous);
            }
        }
        if let Some(group) = group {
            self.members
                .entry(group.clone())
                .or_default()
                .push(member.clone());
            self.group_of.insert(member, group);
        }
    }
}

/// Members `M` by group `G`, following the watch events of the members' kind; a
/// member is in at most one group. Clones share the index.
#[derive(Debug)]
pub(crate) struct GroupIndex<M, G>(Arc<Mutex<Groups<M, G>>>);

impl<M, G> Clone for GroupIndex<M, G> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<M, G> Default for GroupIndex<M, G> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<M: Hash + Eq + Clone, G: Hash + Eq + Clone> GroupIndex<M, G> {
    fn groups(&self) -> MutexGuard<'_, Groups<M, G>> {
        self.0.lock().expect("group index lock")
    }

    /// Follows one watch event; `member_of` names an object and its group, if any.
    pub(crate) fn observe<T>(
        &self,
        event: &watcher::Event<T>,
        member_of: impl Fn(&T) -> (M, Option<G>),
    ) {
        let mut groups = self.groups();
        match event {
            watcher::Event::Init => groups.relist = Some(Vec::new()),
            watcher::Event::InitApply(object) => {
                if let (Some(relist), (member, Some(group))) =
                    (groups.relist.as_mut(), member_of(object))
                {
                    relist.push((member, group));
                }
            }
            watcher::Event::InitDone => {
                let listed = groups.relist.take().unwrap_or_default();
                *groups = Groups::default();
                for (member, group) in listed {
                    groups.set(member, Some(group));
                }
            }
            watcher::Event::Apply(object) => {
                let (member, group) = member_of(object);
                groups.set(member, group);
            }
            watcher::Event::Delete(object) => groups.set(member_of(object).0, None),
        }
    }

    /// The members of `group`.
    pub(crate) fn members_of(&self, group: &G) -> Vec<M> {
        self.groups()
            .members
            .get(group)
            .map(|members| members.to_vec())
            .unwrap_or_default()
    }
}
