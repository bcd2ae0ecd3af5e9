//! The watch of one policy kind, its index from each targeted object to the policies
//! naming it, and the decisions gateway passes recorded for the policies in effect on
//! them.
//!
//! A cache, below the trait ([`Context::policies`](crate::Context::policies) reads it)
//! and below the rules and writes that use it.

use std::collections::{BTreeSet, HashMap};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use aigateway_api::NamespacedName;
use aigateway_api::policy::{MAX_TARGET_REFS, PolicyTarget, PolicyTargetReference};
use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use futures::{Stream, StreamExt, TryStreamExt};
use kube::api::{Api, ApiResource};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::{self, watcher};
use kube::{Client, Resource};

use crate::attached::{AttachedCache, PolicyDecision, PolicyKind};
use crate::kind::GatewayKind;
use crate::policies::CachedPolicy;
use crate::watches::{CacheTracking, LIST_PAGE_SIZE, touched_once, tracked_optional};

/// An object policies target, without the section: the unit whose change re-runs
/// policies, and whose policies a gateway pass reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct TargetObject {
    pub(crate) group: String,
    pub(crate) kind: String,
    pub(crate) key: NamespacedName,
}

impl TargetObject {
    pub(crate) fn of(target: &PolicyTarget) -> Self {
        Self {
            group: target.group.clone(),
            kind: target.kind.clone(),
            key: NamespacedName {
                namespace: target.namespace.clone(),
                name: target.name.clone(),
            },
        }
    }

    /// `object` (a gateway), as a target.
    pub(crate) fn of_object<R: Resource<DynamicType = ()>>(object: &R) -> Self {
        Self {
            group: R::group(&()).into_owned(),
            kind: R::kind(&()).into_owned(),
            key: key_of(object),
        }
    }
}

pub(crate) fn key_of(object: &impl Resource) -> NamespacedName {
    NamespacedName {
        namespace: object.meta().namespace.clone().unwrap_or_default(),
        name: object.meta().name.clone().unwrap_or_default(),
    }
}

/// The references of `policy`'s `spec.targetRefs`, at most [`MAX_TARGET_REFS`] (the
/// CRD's limit; an API server without it cannot make us do more work). A reference that
/// does not parse is skipped: the CRD's schema refuses it before it gets here.
pub(crate) fn target_refs(policy: &CachedPolicy) -> Vec<PolicyTargetReference> {
    let Some(serde_json::Value::Array(refs)) = (policy.field("spec"))
        .and_then(|mut spec| spec.get_mut("targetRefs").map(serde_json::Value::take))
    else {
        return Vec::new();
    };
    refs.into_iter()
        .take(MAX_TARGET_REFS)
        .filter_map(|r| serde_json::from_value(r).ok())
        .collect()
}

/// What the cache keeps of one policy: the policy, its targets in its own namespace
/// (once each), its rank (older first: creation time, then name), and what the passes of
/// its targets' gateways decided about it.
#[derive(Debug)]
struct Indexed {
    policy: Arc<CachedPolicy>,
    /// Boxed: a `Vec` would keep room for four.
    targets: Box<[PolicyTarget]>,
    rank: Rank,
    /// By target: what the last pass of the target's gateway decided. A policy has at
    /// most [`MAX_TARGET_REFS`] targets: a list, not a map of its own.
    decisions: Vec<(DecidedOn, Recorded)>,
}

/// Gateway API's precedence: the older policy first (a policy without a creation time
/// counts as the newest), then by name: compared with the policy's key after it (the
/// policies competing for an object share its namespace), so the name is not kept twice.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Rank {
    no_time: bool,
    created: Option<jiff::Timestamp>,
}

impl Indexed {
    fn of(policy: CachedPolicy) -> Self {
        let namespace = policy.metadata.namespace.clone().unwrap_or_default();
        let mut targets: Vec<PolicyTarget> = Vec::new();
        for reference in target_refs(&policy) {
            if let Ok(target) = reference.target_in(&namespace)
                && !targets.contains(&target)
            {
                targets.push(target);
            }
        }
        let created = policy.metadata.creation_timestamp.as_ref().map(|t| t.0);
        Self {
            policy: Arc::new(policy),
            targets: targets.into_boxed_slice(),
            rank: Rank {
                no_time: created.is_none(),
                created,
            },
            decisions: Vec::new(),
        }
    }

    /// Whether this policy names `object` (any section of it).
    fn names(&self, object: &TargetObject) -> bool {
        self.targets.iter().any(|target| is_on(target, object))
    }
}

/// Whether `target` is (a section of) `object`.
fn is_on(target: &PolicyTarget, object: &TargetObject) -> bool {
    target.name == object.key.name
        && target.namespace == object.key.namespace
        && target.kind == object.kind
        && target.group == object.group
}

/// The policies of one kind as the watch reports them, indexed by the objects they name,
/// with the decisions gateway passes recorded for them.
#[derive(Debug, Default)]
pub(crate) struct PolicyIndex {
    policies: HashMap<NamespacedName, Indexed>,
    /// The policies naming each object, by the object's hash (see
    /// [`PolicyIndex::hash_of`]): a key of four strings per object would cost more than
    /// the policies' own keys. Sorted and without duplicates; an object is usually named
    /// by one policy, and a `BTreeSet` of one costs a ~600-byte node. Two objects of one
    /// hash share a list: readers keep the policies that name the object they ask about.
    by_object: HashMap<u64, Vec<NamespacedName>>,
    hasher: std::hash::RandomState,
    /// The policies of a relist in progress, replacing the index when it ends.
    relist: Option<HashMap<NamespacedName, Indexed>>,
}

impl PolicyIndex {
    fn hash_of(&self, group: &str, kind: &str, namespace: &str, name: &str) -> u64 {
        self.hasher.hash_one((group, kind, namespace, name))
    }

    fn hash_of_target(&self, target: &PolicyTarget) -> u64 {
        self.hash_of(&target.group, &target.kind, &target.namespace, &target.name)
    }

    fn hash_of_object(&self, object: &TargetObject) -> u64 {
        let key = &object.key;
        self.hash_of(&object.group, &object.kind, &key.namespace, &key.name)
    }

    /// Records `policy` (`None`: deleted), keeping the decisions recorded for it;
    /// returns the objects it named before or names now, each once.
    fn set(&mut self, policy: NamespacedName, indexed: Option<Indexed>) -> Vec<TargetObject> {
        let before = match indexed {
            Some(mut indexed) => {
                if let Some(known) = self.policies.get_mut(&policy) {
                    indexed.decisions = std::mem::take(&mut known.decisions);
                }
                self.policies.insert(policy.clone(), indexed)
            }
            None => self.policies.remove(&policy),
        };
        let mut affected: BTreeSet<TargetObject> = BTreeSet::new();
        if let Some(before) = &before {
            for target in &before.targets {
                let hash = self.hash_of_target(target);
                if let Some(named) = self.by_object.get_mut(&hash) {
                    if let Ok(at) = named.binary_search(&policy) {
                        named.remove(at);
                    }
                    if named.is_empty() {
                        self.by_object.remove(&hash);
                    }
                }
                affected.insert(TargetObject::of(target));
            }
        }
        if let Some(now) = self.policies.get(&policy) {
            for target in &now.targets {
                let named = self
                    .by_object
                    .entry(self.hash_of_target(target))
                    .or_default();
                if let Err(at) = named.binary_search(&policy) {
                    // Exactly: most objects are named by one policy.
                    named.reserve_exact(1);
                    named.insert(at, policy.clone());
                }
                affected.insert(TargetObject::of(target));
            }
        }
        // Unchanged targets of a changed policy still re-run: its spec may have changed.
        affected.into_iter().collect()
    }

    /// Applies one watch event; returns the objects whose policies changed.
    pub(crate) fn on_event(&mut self, event: watcher::Event<CachedPolicy>) -> Vec<TargetObject> {
        match event {
            watcher::Event::Apply(policy) => {
                let key = key_of(&policy);
                // Our own status writes come back as events: the gateways read nothing
                // they changed (the policy's own controller still looks, from the watch).
                if let Some(known) = self.policies.get_mut(&key)
                    && known.policy.differs_only_in_status(&policy)
                {
                    known.policy = Arc::new(policy);
                    return Vec::new();
                }
                self.set(key, Some(Indexed::of(policy)))
            }
            watcher::Event::Delete(policy) => self.set(key_of(&policy), None),
            watcher::Event::Init => {
                self.relist = Some(HashMap::new());
                Vec::new()
            }
            watcher::Event::InitApply(policy) => {
                if let Some(relist) = self.relist.as_mut() {
                    relist.insert(key_of(&policy), Indexed::of(policy));
                }
                Vec::new()
            }
            watcher::Event::InitDone => {
                let Some(relist) = self.relist.take() else {
                    return Vec::new();
                };
                // Policies may have changed while the watch was down: every object named
                // before or after the relist looks again.
                let mut known = std::mem::take(&mut self.policies);
                let mut affected: BTreeSet<TargetObject> = (known.values())
                    .flat_map(|indexed| indexed.targets.iter().map(TargetObject::of))
                    .collect();
                self.by_object.clear();
                for (policy, mut indexed) in relist {
                    if let Some(before) = known.get_mut(&policy) {
                        indexed.decisions = std::mem::take(&mut before.decisions);
                    }
                    affected.extend(self.set(policy, Some(indexed)));
                }
                known.clear();
                affected.into_iter().collect()
            }
        }
    }

    /// The policy `key`.
    pub(crate) fn get(&self, key: &NamespacedName) -> Option<Arc<CachedPolicy>> {
        self.policies.get(key).map(|indexed| indexed.policy.clone())
    }

    /// Every policy's key.
    pub(crate) fn keys(&self) -> Vec<NamespacedName> {
        self.policies.keys().cloned().collect()
    }

    /// The policies naming `object` (any section of it).
    pub(crate) fn naming(&self, object: &TargetObject) -> Vec<NamespacedName> {
        let named = self.by_object.get(&self.hash_of_object(object));
        (named.into_iter().flatten())
            .filter(|key| (self.policies.get(*key)).is_some_and(|indexed| indexed.names(object)))
            .cloned()
            .collect()
    }

    /// The policy in effect on `target`: the oldest of those naming it.
    pub(crate) fn winner(&self, target: &PolicyTarget) -> Option<&NamespacedName> {
        let named = self.by_object.get(&self.hash_of_target(target))?;
        named
            .iter()
            .filter_map(|key| Some((key, self.policies.get(key)?)))
            .filter(|(_, indexed)| indexed.targets.contains(target))
            .min_by(|(a_key, a), (b_key, b)| (&a.rank, a_key).cmp(&(&b.rank, b_key)))
            .map(|(key, _)| key)
    }

    /// The policies in effect on `object` or a section of it (each once), oldest first.
    fn in_effect_on(&self, object: &TargetObject) -> Vec<(&NamespacedName, &Indexed)> {
        let Some(named) = self.by_object.get(&self.hash_of_object(object)) else {
            return Vec::new();
        };
        let mut winners: Vec<(&NamespacedName, &Indexed)> = Vec::new();
        for key in named {
            let Some(indexed) = self.policies.get(key) else {
                continue;
            };
            let wins = (indexed.targets.iter())
                .filter(|target| is_on(target, object))
                .any(|target| self.winner(target) == Some(key));
            if wins {
                winners.push((key, indexed));
            }
        }
        winners.sort_by(|(a_key, a), (b_key, b)| (&a.rank, a_key).cmp(&(&b.rank, b_key)));
        winners
    }

    /// The keys of the policies in effect on `object`, oldest first.
    #[cfg(test)]
    fn in_effect_keys(&self, object: &TargetObject) -> Vec<NamespacedName> {
        (self.in_effect_on(object).into_iter())
            .map(|(key, _)| key.clone())
            .collect()
    }
}

/// What a recorded decision is about: a gateway, or an object attached to one (a
/// ToolRoute); decided by the gateway's pass either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecidedOn {
    Gateway(NamespacedName),
    Attached(NamespacedName),
}

/// A decision a gateway pass recorded for a policy in effect on its gateway or on an
/// object attached to it, at the policy's generation it saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Recorded {
    pub(crate) generation: Option<i64>,
    pub(crate) decision: PolicyDecision,
}

/// The watched policies of one kind, their index and the recorded decisions, shared by
/// the watch, the gateway passes, the policy reconciles and [`Context`](crate::Context).
pub(crate) struct PolicyCache {
    pub(crate) resource: Arc<ApiResource>,
    /// The policies, by key and by the objects they name, with their decisions: one
    /// map, not kube's `Store` beside an index (whose keys would each repeat the kind
    /// and the name).
    pub(crate) index: Mutex<PolicyIndex>,
    /// Policies whose status write the API server refused as invalid (422), with the
    /// resourceVersion it refused: not written again until their owner changes them.
    pub(crate) refused_writes: Mutex<HashMap<NamespacedName, String>>,
    /// What our last status write of each policy returned, while the cache lags behind
    /// it (see [`PolicyCache::freshest`]).
    pub(crate) written: Mutex<HashMap<NamespacedName, OwnWrite>>,
    /// Failed reconciles in a row, by policy, for the backoff.
    pub(crate) failures: Mutex<HashMap<NamespacedName, u32>>,
    /// Policies to look at again (their decisions or their targets changed).
    pub(crate) triggers: UnboundedSender<NamespacedName>,
}

/// Our last status write of a policy: the resourceVersions our writes replaced, and what
/// the last one returned.
pub(crate) struct OwnWrite {
    replaced: Vec<String>,
    latest: Arc<CachedPolicy>,
}

/// How many replaced versions an [`OwnWrite`] keeps.
const MAX_REPLACED: usize = 4;

/// How many refused policies [`PolicyCache::refused_writes`] remembers; beyond, it
/// starts over (each is then tried once more).
pub(crate) const MAX_REFUSED_WRITES: usize = 10_000;

pub(crate) fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl PolicyCache {
    /// The freshest known version of `cached`: what our last status write returned while
    /// the cache still holds a version that write replaced (a reconcile started from the
    /// cache would patch with that version and get 409 from ourselves), else `cached`.
    /// resourceVersions are never compared for order, only for equality, as the gateways'
    /// own-write memo does.
    pub(crate) fn freshest(&self, cached: Arc<CachedPolicy>) -> Arc<CachedPolicy> {
        let key = key_of(cached.as_ref());
        let mut written = locked(&self.written);
        let Some(memo) = written.get(&key) else {
            return cached;
        };
        let same_object = memo.latest.metadata.uid == cached.metadata.uid;
        let behind = (cached.metadata.resource_version.as_ref())
            .is_some_and(|rv| memo.replaced.contains(rv));
        if same_object && behind {
            return memo.latest.clone();
        }
        written.remove(&key);
        cached
    }

    /// Remembers that our status write over `before` returned `after`.
    pub(crate) fn remember(&self, before: &CachedPolicy, after: CachedPolicy) {
        let key = key_of(before);
        let mut written = locked(&self.written);
        let memo = written.entry(key).or_insert_with(|| OwnWrite {
            replaced: Vec::new(),
            latest: Arc::new(after.clone()),
        });
        if let Some(rv) = before.metadata.resource_version.clone() {
            memo.replaced.push(rv);
            if memo.replaced.len() > MAX_REPLACED {
                memo.replaced.remove(0);
            }
        }
        memo.latest = Arc::new(after);
    }

    /// The cached policy `key`.
    pub(crate) fn get(&self, key: &NamespacedName) -> Option<Arc<CachedPolicy>> {
        locked(&self.index).get(key)
    }

    /// Forgets what the reconciles kept about the deleted policy `key`.
    fn forget(&self, key: &NamespacedName) {
        locked(&self.written).remove(key);
        locked(&self.refused_writes).remove(key);
        locked(&self.failures).remove(key);
    }

    /// Forgets what the reconciles kept about every policy no longer cached.
    fn forget_all_but_listed(&self) {
        let index = locked(&self.index);
        let listed = |key: &NamespacedName| index.policies.contains_key(key);
        locked(&self.written).retain(|key, _| listed(key));
        locked(&self.refused_writes).retain(|key, _| listed(key));
        locked(&self.failures).retain(|key, _| listed(key));
    }

    /// Asks the policy controller to look at `key` again.
    pub(crate) fn trigger(&self, key: &NamespacedName) {
        let _ = self.triggers.unbounded_send(key.clone());
    }

    /// The policies naming `object` (a gateway; any section of it).
    pub(crate) fn naming<R: Resource<DynamicType = ()>>(&self, object: &R) -> Vec<NamespacedName> {
        locked(&self.index).naming(&TargetObject::of_object(object))
    }

    /// The policies naming `object` (any kind; any section of it).
    pub(crate) fn naming_target(&self, object: &TargetObject) -> Vec<NamespacedName> {
        locked(&self.index).naming(object)
    }

    /// The policies in effect on `object`, oldest first.
    pub(crate) fn in_effect_on(&self, object: &TargetObject) -> Vec<Arc<CachedPolicy>> {
        (locked(&self.index).in_effect_on(object).into_iter())
            .map(|(_, indexed)| indexed.policy.clone())
            .collect()
    }

    /// Records what a gateway's pass decided about the policies in effect on `target`
    /// (the gateway or an object attached to it: `on`), `decided` by policy, and forgets
    /// the decisions of policies no longer in effect there; the policies whose decision
    /// changed are looked at again.
    pub(crate) fn record(
        &self,
        target: &TargetObject,
        on: &DecidedOn,
        in_effect: &[Arc<CachedPolicy>],
        decided: impl Fn(&NamespacedName) -> Option<PolicyDecision>,
    ) {
        let mut changed = Vec::new();
        {
            let mut index = locked(&self.index);
            for key in index.naming(target) {
                let Some(indexed) = index.policies.get_mut(&key) else {
                    continue;
                };
                let of_policy = &mut indexed.decisions;
                let policy = in_effect.iter().find(|p| key_of(p.as_ref()) == key);
                let Some(policy) = policy else {
                    of_policy.retain(|(decided_on, _)| decided_on != on);
                    continue;
                };
                let recorded = Recorded {
                    generation: policy.metadata.generation,
                    decision: decided(&key).unwrap_or(PolicyDecision::Accept),
                };
                match of_policy
                    .iter_mut()
                    .find(|(decided_on, _)| decided_on == on)
                {
                    Some((_, known)) if *known == recorded => {}
                    Some((_, known)) => {
                        *known = recorded;
                        changed.push(key);
                    }
                    None => {
                        // Exactly: most policies are in effect on one gateway.
                        of_policy.reserve_exact(1);
                        of_policy.push((on.clone(), recorded));
                        changed.push(key);
                    }
                }
            }
        }
        for key in changed {
            self.trigger(&key);
        }
    }

    /// What the last pass decided about `policy` on `on`.
    pub(crate) fn recorded(&self, policy: &NamespacedName, on: &DecidedOn) -> Option<Recorded> {
        let index = locked(&self.index);
        let indexed = index.policies.get(policy)?;
        (indexed.decisions.iter())
            .find(|(decided_on, _)| decided_on == on)
            .map(|(_, recorded)| recorded.clone())
    }

    /// Forgets the decisions about `policy` on the targets not in `keep`.
    pub(crate) fn forget_decisions(&self, policy: &NamespacedName, keep: &[DecidedOn]) {
        if let Some(indexed) = locked(&self.index).policies.get_mut(policy) {
            (indexed.decisions).retain(|(decided_on, _)| keep.contains(decided_on));
            if indexed.decisions.is_empty() {
                indexed.decisions = Vec::new();
            }
        }
    }
}

/// The running watch of one policy kind.
pub(crate) struct PolicyWatch<K: GatewayKind> {
    pub(crate) cache: Arc<PolicyCache>,
    /// The keys of the reflected policies as they change (each once after a relist),
    /// for the policy controller.
    pub(crate) objects: std::pin::Pin<
        Box<dyn Stream<Item = Result<NamespacedName, watcher::Error>> + Send + 'static>,
    >,
    /// Gateways to reconcile because the policies naming them changed.
    pub(crate) gateway_triggers: UnboundedReceiver<ObjectRef<K::Gateway>>,
    /// Policies to look at again (see [`PolicyCache::triggers`]).
    pub(crate) policy_triggers: UnboundedReceiver<NamespacedName>,
}

/// Starts watching `declaration`'s kind (in `namespace`, or everywhere) for
/// `controller`, whose status entries the cache keeps a memo of. The kind's CRD may be
/// missing: the operator then runs without its policies (see [`tracked_optional`]).
/// A policy naming an object attached to a gateway (`attached`: the kind's objects and
/// the gateway each names) re-runs that gateway.
pub(crate) fn watch<K: GatewayKind>(
    declaration: PolicyKind<K>,
    controller: &str,
    attached: Option<Arc<AttachedCache>>,
    tracking: &CacheTracking<'_>,
    client: &Client,
    namespace: Option<&str>,
) -> PolicyWatch<K> {
    let resource = Arc::new(declaration.resource);
    let cache_name = tracking.key(&format!("policy {}", resource.kind));
    let (policy_tx, policy_triggers) = unbounded();
    let cache = Arc::new(PolicyCache {
        resource: resource.clone(),
        index: Mutex::default(),
        refused_writes: Mutex::default(),
        written: Mutex::default(),
        failures: Mutex::default(),
        triggers: policy_tx,
    });
    let (gateway_tx, gateway_triggers) = unbounded();
    let api: Api<CachedPolicy> = match namespace {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let controller = controller.to_owned();
    // Small pages: a list holds one page of whole objects (managedFields, status and
    // all) in memory at a time, besides the cache.
    let events = watcher(api, watcher::Config::default().page_size(LIST_PAGE_SIZE))
        .map_ok(move |event| event.modify(|policy| policy.keep_memo(&controller)));
    let indexed = cache.clone();
    let (gateway_group, gateway_kind) = (K::Gateway::group(&()), K::Gateway::kind(&()));
    let objects = tracked_optional(tracking, cache_name, events).map_ok(move |event| {
        let keys = keys_of(&event);
        if let watcher::Event::Delete(policy) = &event {
            indexed.forget(&key_of(policy));
        }
        let relisted = matches!(event, watcher::Event::InitDone);
        let changed = locked(&indexed.index).on_event(event);
        if relisted {
            // Policies deleted while the watch was down got no Delete event.
            indexed.forget_all_but_listed();
        }
        for object in changed {
            // The gateway re-runs with the policies now in effect on it (or on an
            // object attached to it); the other policies naming the object may have
            // won or lost: they look again too.
            let gateway = if object.group == gateway_group && object.kind == gateway_kind {
                Some(object.key.clone())
            } else {
                (attached.as_ref())
                    .filter(|cache| cache.is_kind(&object.group, &object.kind))
                    .and_then(|cache| cache.gateway_of(&object.key))
            };
            if let Some(gateway) = gateway {
                let _ = gateway_tx
                    .unbounded_send(ObjectRef::new(&gateway.name).within(&gateway.namespace));
            }
            for policy in locked(&indexed.index).naming(&object) {
                indexed.trigger(&policy);
            }
        }
        keys
    });
    let listed = cache.clone();
    let objects = touched_once(objects, move || locked(&listed.index).keys().into_iter()).boxed();
    PolicyWatch {
        cache,
        objects,
        gateway_triggers,
        policy_triggers,
    }
}

/// `event` with each policy's key in its place.
fn keys_of(event: &watcher::Event<CachedPolicy>) -> watcher::Event<NamespacedName> {
    match event {
        watcher::Event::Apply(policy) => watcher::Event::Apply(key_of(policy)),
        watcher::Event::Delete(policy) => watcher::Event::Delete(key_of(policy)),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(policy) => watcher::Event::InitApply(key_of(policy)),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(namespace: &str, name: &str) -> NamespacedName {
        NamespacedName {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    fn gateway(name: &str) -> TargetObject {
        TargetObject {
            group: "runtime.agentic-layer.ai".into(),
            kind: "AiGateway".into(),
            key: key("team", name),
        }
    }

    fn policy(name: &str, created: &str, targets: serde_json::Value) -> CachedPolicy {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "example.com/v1", "kind": "TestPolicy",
            "metadata": {"name": name, "namespace": "team", "creationTimestamp": created},
            "spec": {"targetRefs": targets},
        }))
        .unwrap()
    }

    fn on(name: &str) -> serde_json::Value {
        serde_json::json!({"group": "runtime.agentic-layer.ai", "kind": "AiGateway", "name": name})
    }

    fn apply(index: &mut PolicyIndex, policy: CachedPolicy) -> Vec<TargetObject> {
        index.on_event(watcher::Event::Apply(policy))
    }

    #[test]
    fn a_retargeted_policy_reruns_its_old_and_new_targets() {
        let mut index = PolicyIndex::default();
        let p = |targets| policy("p", "2026-01-01T00:00:00Z", targets);
        assert_eq!(
            apply(&mut index, p(serde_json::json!([on("a")]))),
            vec![gateway("a")]
        );
        assert_eq!(
            apply(&mut index, p(serde_json::json!([on("b")]))),
            vec![gateway("a"), gateway("b")]
        );
        assert!(index.naming(&gateway("a")).is_empty());
        assert_eq!(index.naming(&gateway("b")), vec![key("team", "p")]);
        assert_eq!(
            index.on_event(watcher::Event::Delete(p(serde_json::json!([on("b")])))),
            vec![gateway("b")]
        );
        assert!(index.naming(&gateway("b")).is_empty());
    }

    #[test]
    fn the_older_policy_is_in_effect_and_a_foreign_target_is_not_indexed() {
        let mut index = PolicyIndex::default();
        let foreign = serde_json::json!({"group": "runtime.agentic-layer.ai", "kind": "AiGateway", "name": "a", "namespace": "other"});
        apply(
            &mut index,
            policy("new", "2026-02-01T00:00:00Z", serde_json::json!([on("a")])),
        );
        apply(
            &mut index,
            policy(
                "old",
                "2026-01-01T00:00:00Z",
                serde_json::json!([on("a"), foreign]),
            ),
        );
        // Same age: the name decides.
        apply(
            &mut index,
            policy(
                "b-same",
                "2026-03-01T00:00:00Z",
                serde_json::json!([on("c")]),
            ),
        );
        apply(
            &mut index,
            policy(
                "a-same",
                "2026-03-01T00:00:00Z",
                serde_json::json!([on("c")]),
            ),
        );
        assert_eq!(
            index.in_effect_keys(&gateway("a")),
            vec![key("team", "old")]
        );
        assert_eq!(
            index.in_effect_keys(&gateway("c")),
            vec![key("team", "a-same")]
        );
        assert!(
            index
                .naming(&TargetObject {
                    key: key("other", "a"),
                    ..gateway("a")
                })
                .is_empty()
        );
        index.on_event(watcher::Event::Delete(policy(
            "old",
            "2026-01-01T00:00:00Z",
            serde_json::json!([on("a")]),
        )));
        assert_eq!(
            index.in_effect_keys(&gateway("a")),
            vec![key("team", "new")]
        );
    }

    #[test]
    fn policies_on_different_sections_are_all_in_effect_oldest_first() {
        let mut index = PolicyIndex::default();
        let section = |name: &str| serde_json::json!({"group": "runtime.agentic-layer.ai", "kind": "AiGateway", "name": "a", "sectionName": name});
        apply(
            &mut index,
            policy(
                "gpt",
                "2026-02-01T00:00:00Z",
                serde_json::json!([section("gpt")]),
            ),
        );
        apply(
            &mut index,
            policy(
                "claude",
                "2026-01-01T00:00:00Z",
                serde_json::json!([section("claude")]),
            ),
        );
        apply(
            &mut index,
            policy(
                "gpt-late",
                "2026-03-01T00:00:00Z",
                serde_json::json!([section("gpt")]),
            ),
        );
        assert_eq!(
            index.in_effect_keys(&gateway("a")),
            vec![key("team", "claude"), key("team", "gpt")]
        );
    }

    #[test]
    fn a_relist_replaces_the_index_and_reruns_every_object_named() {
        let mut index = PolicyIndex::default();
        apply(
            &mut index,
            policy(
                "gone",
                "2026-01-01T00:00:00Z",
                serde_json::json!([on("old")]),
            ),
        );
        assert!(index.on_event(watcher::Event::Init).is_empty());
        let new = policy(
            "new",
            "2026-01-01T00:00:00Z",
            serde_json::json!([on("new")]),
        );
        assert!(index.on_event(watcher::Event::InitApply(new)).is_empty());
        assert_eq!(
            index.on_event(watcher::Event::InitDone),
            vec![gateway("new"), gateway("old")]
        );
        assert!(index.naming(&gateway("old")).is_empty());
    }

    #[test]
    fn decisions_survive_an_update_and_a_relist_and_go_with_the_policy() {
        let mut index = PolicyIndex::default();
        let p = || policy("p", "2026-01-01T00:00:00Z", serde_json::json!([on("a")]));
        apply(&mut index, p());
        let decided = (
            DecidedOn::Gateway(key("team", "a")),
            Recorded {
                generation: Some(1),
                decision: PolicyDecision::Accept,
            },
        );
        let decisions = |index: &PolicyIndex| {
            (index.policies.get(&key("team", "p"))).map(|indexed| indexed.decisions.clone())
        };
        index.policies.get_mut(&key("team", "p")).unwrap().decisions = vec![decided.clone()];
        apply(&mut index, p());
        assert_eq!(decisions(&index), Some(vec![decided.clone()]));
        index.on_event(watcher::Event::Init);
        index.on_event(watcher::Event::InitApply(p()));
        index.on_event(watcher::Event::InitDone);
        assert_eq!(decisions(&index), Some(vec![decided]));
        index.on_event(watcher::Event::Delete(p()));
        assert_eq!(decisions(&index), None);
        apply(&mut index, p());
        assert_eq!(
            decisions(&index),
            Some(Vec::new()),
            "a new policy of that name starts afresh"
        );
    }

    #[test]
    fn an_object_is_named_only_by_the_policies_naming_it_whatever_its_hash() {
        let mut index = PolicyIndex::default();
        apply(
            &mut index,
            policy("p", "2026-01-01T00:00:00Z", serde_json::json!([on("a")])),
        );
        // Another object's lookup that lands on `a`'s list (as a hash collision would)
        // keeps nothing: readers check the policy's targets.
        let hash = index.hash_of_object(&gateway("a"));
        let named = index.by_object.remove(&hash).unwrap();
        index
            .by_object
            .insert(index.hash_of_object(&gateway("b")), named);
        assert!(index.naming(&gateway("b")).is_empty());
        assert!(index.in_effect_keys(&gateway("b")).is_empty());
    }

    #[test]
    fn a_status_change_reruns_nothing_and_a_spec_or_label_change_reruns_the_targets() {
        let mut index = PolicyIndex::default();
        let p = |rv: &str, status: serde_json::Value, extra: serde_json::Value| {
            let mut object = serde_json::json!({
                "metadata": {"name": "p", "namespace": "team", "resourceVersion": rv,
                             "creationTimestamp": "2026-01-01T00:00:00Z", "generation": 1},
                "spec": {"targetRefs": [on("a")], "rpm": 600},
                "status": status,
            });
            json_patch(&mut object, extra);
            serde_json::from_value::<CachedPolicy>(object).unwrap()
        };
        let none = serde_json::Value::Null;
        assert_eq!(
            apply(&mut index, p("1", none.clone(), none.clone())),
            vec![gateway("a")]
        );
        let written = serde_json::json!({"ancestors": []});
        assert!(apply(&mut index, p("2", written.clone(), none.clone())).is_empty());
        assert_eq!(
            index
                .get(&key("team", "p"))
                .unwrap()
                .metadata
                .resource_version
                .as_deref(),
            Some("2"),
            "the newer version is kept"
        );
        let spec = serde_json::json!({"spec": {"rpm": 60}, "metadata": {"generation": 2}});
        assert_eq!(
            apply(&mut index, p("3", written.clone(), spec)),
            vec![gateway("a")]
        );
        let labelled = serde_json::json!({"metadata": {"labels": {"tier": "gold"}}});
        assert_eq!(
            apply(&mut index, p("4", written, labelled)),
            vec![gateway("a")]
        );
    }

    #[test]
    fn a_relist_forgets_what_reconciles_kept_about_policies_gone_meanwhile() {
        let (triggers, _received) = unbounded();
        let cache = PolicyCache {
            resource: Arc::new(ApiResource {
                group: "example.com".into(),
                version: "v1".into(),
                api_version: "example.com/v1".into(),
                kind: "TestPolicy".into(),
                plural: "testpolicies".into(),
            }),
            index: Mutex::default(),
            refused_writes: Mutex::default(),
            written: Mutex::default(),
            failures: Mutex::default(),
            triggers,
        };
        let kept = || policy("kept", "2026-01-01T00:00:00Z", serde_json::json!([on("a")]));
        apply(&mut locked(&cache.index), kept());
        for name in ["kept", "gone"] {
            locked(&cache.failures).insert(key("team", name), 3);
            locked(&cache.refused_writes).insert(key("team", name), "7".into());
        }
        let mut index = locked(&cache.index);
        index.on_event(watcher::Event::Init);
        index.on_event(watcher::Event::InitApply(kept()));
        index.on_event(watcher::Event::InitDone);
        drop(index);
        cache.forget_all_but_listed();
        let failing: Vec<_> = locked(&cache.failures).keys().cloned().collect();
        assert_eq!(failing, vec![key("team", "kept")]);
        let refused: Vec<_> = locked(&cache.refused_writes).keys().cloned().collect();
        assert_eq!(refused, vec![key("team", "kept")]);
    }

    /// Merges `patch` into `object` (objects key by key, anything else replaced).
    fn json_patch(object: &mut serde_json::Value, patch: serde_json::Value) {
        match (object, patch) {
            (serde_json::Value::Object(object), serde_json::Value::Object(patch)) => {
                for (key, value) in patch {
                    json_patch(object.entry(key).or_insert(serde_json::Value::Null), value);
                }
            }
            (_, serde_json::Value::Null) => {}
            (object, patch) => *object = patch,
        }
    }

    #[test]
    fn at_most_the_crd_limit_of_target_refs_count() {
        let refs: Vec<serde_json::Value> = (0..100).map(|i| on(&format!("g{i}"))).collect();
        let p = policy(
            "many",
            "2026-01-01T00:00:00Z",
            serde_json::Value::Array(refs),
        );
        assert_eq!(target_refs(&p).len(), MAX_TARGET_REFS);
    }
}
