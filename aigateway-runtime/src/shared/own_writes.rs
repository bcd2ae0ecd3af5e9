//! Read your own writes: a gateway (or class) as our last write of it returned it, until
//! the cache shows that version (or a later one).
//!
//! Status and metadata writes of gateways and classes are guarded by their
//! `resourceVersion`, so that a concurrent writer makes them fail with 409 instead of
//! losing their changes. A reconcile starts from the cached object, and the cache learns
//! of our own writes only when their watch events arrive. Without this memo, a reconcile
//! that starts (or a write that follows another in the same reconcile) before that event
//! patches with the `resourceVersion` our own previous write replaced, and gets 409 from
//! ourselves: at scale, one conflict and one extra reconcile per gateway.
//!
//! The memo never compares resourceVersions for order (they are opaque). It keeps the
//! versions our writes replaced and the object the last write returned. A cached gateway
//! still at one of those versions has simply not seen our write: the returned object is
//! used instead. A cached gateway at any other version has seen it, or a later change by
//! someone else: the cache is used and the memo dropped. A reconcile therefore never
//! works from an object older than the cache, and never overwrites another writer's
//! change (their write moves the cache past the versions we replaced, and a guarded
//! patch from a memo that is outdated fails with 409 as before).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};

/// How many replaced versions one memo keeps: a reconcile writes a gateway at most
/// twice (metadata, then status), and a memo lives until the next reconcile.
const MAX_REPLACED: usize = 4;

struct Memo<G> {
    /// The resourceVersions our writes replaced, oldest first.
    replaced: Vec<String>,
    /// The object our last write returned.
    latest: Arc<G>,
}

/// Per object, what our last write of it returned, while the cache lags behind.
pub(crate) struct OwnWrites<G: Resource> {
    memos: Mutex<HashMap<ObjectRef<G>, Memo<G>>>,
}

impl<G: Resource> Default for OwnWrites<G> {
    fn default() -> Self {
        Self {
            memos: Mutex::default(),
        }
    }
}

impl<G> OwnWrites<G>
where
    G: Resource<DynamicType = ()> + Clone,
{
    fn memos(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectRef<G>, Memo<G>>> {
        self.memos.lock().expect("own writes lock")
    }

    /// The freshest known version of `cached`: what our last write returned when the
    /// cache has not seen that write yet, else `cached` itself.
    pub(crate) fn freshest(&self, cached: Arc<G>) -> Arc<G> {
        let key = ObjectRef::from_obj(cached.as_ref());
        let mut memos = self.memos();
        let Some(memo) = memos.get(&key) else {
            return cached;
        };
        let same_object = memo.latest.meta().uid == cached.meta().uid;
        let behind = cached
            .meta()
            .resource_version
            .as_ref()
            .is_some_and(|rv| memo.replaced.contains(rv));
        if same_object && behind {
            return memo.latest.clone();
        }
        // The cache has caught up with our write, or moved past it.
        memos.remove(&key);
        cached
    }

    /// Records that a write of ours replaced `before` and the API server returned
    /// `after`; returns `after`, the object to continue from. `cache` is the kind's
    /// cache: memos of objects no longer in it are dropped once there are more memos
    /// than cached objects.
    /// `after` should be trimmed as the cache trims what it holds.
    pub(crate) fn record(&self, before: &G, after: G, cache: &Store<G>) -> Arc<G> {
        let after = Arc::new(after);
        let key = ObjectRef::from_obj(after.as_ref());
        let mut memos = self.memos();
        let mut replaced = match memos.remove(&key) {
            // A write that follows ours: the versions before it were replaced too.
            Some(memo) if memo.latest.meta().resource_version == before.meta().resource_version => {
                memo.replaced
            }
            _ => Vec::new(),
        };
        if let Some(rv) = before.meta().resource_version.clone() {
            replaced.push(rv);
        }
        if replaced.len() > MAX_REPLACED {
            replaced.drain(..replaced.len() - MAX_REPLACED);
        }
        memos.insert(
            key,
            Memo {
                replaced,
                latest: after.clone(),
            },
        );
        // A memo is dropped by the next reconcile of its object; an object deleted
        // before that has none. There is at most one memo per cached object otherwise.
        if memos.len() > cache.len() {
            memos.retain(|key, _| cache.get(key).is_some());
        }
        after
    }

    /// How many memos are held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.memos().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aigateway_api::{AiGateway, AiGatewaySpec};
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher;

    /// A cache holding `gateways`.
    fn cache(gateways: &[AiGateway]) -> Store<AiGateway> {
        let mut writer = Writer::default();
        for gateway in gateways {
            writer.apply_watcher_event(&watcher::Event::Apply(gateway.clone()));
        }
        writer.as_reader()
    }

    use kube::ResourceExt;

    fn gateway(name: &str, uid: &str, rv: &str) -> AiGateway {
        let mut gateway = AiGateway::new(name, AiGatewaySpec::default());
        gateway.metadata.namespace = Some("ns".into());
        gateway.metadata.uid = Some(uid.into());
        gateway.metadata.resource_version = Some(rv.into());
        gateway
    }

    fn rv(gateway: &AiGateway) -> &str {
        gateway.metadata.resource_version.as_deref().unwrap()
    }

    #[test]
    fn a_cache_behind_our_writes_reads_what_they_returned() {
        let writes = OwnWrites::<AiGateway>::default();
        let cached = Arc::new(gateway("gw", "u1", "10"));
        // Metadata, then status, in one reconcile.
        let store = cache(&[cached.as_ref().clone()]);
        let marked = writes.record(&cached, gateway("gw", "u1", "11"), &store);
        let written = writes.record(&marked, gateway("gw", "u1", "12"), &store);
        assert_eq!(rv(&written), "12");
        // The cache has seen neither write, or only the first.
        assert_eq!(rv(&writes.freshest(cached.clone())), "12");
        assert_eq!(rv(&writes.freshest(marked)), "12");
        // Caught up: the cache is used and the memo dropped.
        assert_eq!(
            rv(&writes.freshest(Arc::new(gateway("gw", "u1", "12")))),
            "12"
        );
        assert_eq!(writes.len(), 0);
        assert_eq!(rv(&writes.freshest(cached)), "10", "no memo, the cache");
    }

    #[test]
    fn another_writers_change_wins_over_our_memo() {
        let writes = OwnWrites::<AiGateway>::default();
        let cached = Arc::new(gateway("gw", "u1", "10"));
        writes.record(&cached, gateway("gw", "u1", "11"), &cache(&[]));
        // Someone wrote after us: the cache is at a version we did not produce.
        let theirs = Arc::new(gateway("gw", "u1", "15"));
        assert_eq!(rv(&writes.freshest(theirs)), "15");
        assert_eq!(writes.len(), 0);
    }

    #[test]
    fn a_recreated_gateway_is_not_confused_with_the_old_one() {
        let writes = OwnWrites::<AiGateway>::default();
        let old = Arc::new(gateway("gw", "u1", "10"));
        writes.record(&old, gateway("gw", "u1", "11"), &cache(&[]));
        // Deleted and created again under the same name; its version string happens
        // to be one we replaced on the old object.
        let new = Arc::new(gateway("gw", "u2", "10"));
        assert_eq!(writes.freshest(new).metadata.uid.as_deref(), Some("u2"));
    }

    #[test]
    fn memos_of_deleted_gateways_do_not_pile_up() {
        let writes = OwnWrites::<AiGateway>::default();
        let all: Vec<AiGateway> = (0..4)
            .map(|i| gateway(&format!("gw-{i}"), "u", "1"))
            .collect();
        let store = cache(&all);
        for before in &all[..3] {
            writes.record(before, gateway(&before.name_any(), "u", "2"), &store);
        }
        assert_eq!(writes.len(), 3);
        // gw-0 and gw-1 were deleted: two gateways are cached.
        let store = cache(&all[2..]);
        writes.record(&all[3], gateway("gw-3", "u", "2"), &store);
        assert_eq!(writes.len(), 2);
    }
}
