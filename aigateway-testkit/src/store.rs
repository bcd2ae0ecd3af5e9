//! The object store: objects by resource, the global resourceVersion, the owner index
//! garbage collection follows, and the event history watches read. Reads (get, list,
//! watch) live here; every change goes through one `put` or `remove_object`, so each
//! gets a resourceVersion and a watch event. Deciding what to store is the write
//! pipeline's (`write.rs`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::registry::{Registry, ResKey, ResourceInfo};
use crate::selector::{FieldSelector, LabelSelector};

/// `(namespace, name)`; cluster-scoped objects have namespace `""`.
pub(crate) type ObjKey = (String, String);

/// Watch event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One change, kept in the history and sent to watchers.
#[derive(Debug)]
pub(crate) struct HistEvent {
    pub rv: u64,
    pub res: ResKey,
    pub ty: EventType,
    pub obj: Arc<Value>,
    pub old: Option<Arc<Value>>,
}

struct WatcherReg {
    res: ResKey,
    ns: Option<String>,
    tx: mpsc::UnboundedSender<Arc<HistEvent>>,
}

/// Server behaviour switches.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub deployment_ready_delay: Duration,
    pub simulate_deployments: bool,
    pub watch_history: usize,
}

/// Options of list and watch.
#[derive(Clone, Debug, Default)]
pub(crate) struct ListOpts {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
}

/// The initial events of a watch and its live event channel.
pub(crate) type WatchHandle = (Vec<Arc<HistEvent>>, mpsc::UnboundedReceiver<Arc<HistEvent>>);

/// Why a watch could not start.
#[derive(Debug)]
pub(crate) enum WatchStart {
    /// The requested resourceVersion is older than the retained history.
    Expired { requested: u64, oldest: u64 },
}

/// All mutable state, behind one lock.
pub(crate) struct State {
    pub rv: u64,
    pub config: Config,
    pub registry: Registry,
    objects: HashMap<ResKey, BTreeMap<ObjKey, Arc<Value>>>,
    /// Dependents by owner uid, from `ownerReferences`.
    owners: HashMap<String, BTreeSet<(ResKey, ObjKey)>>,
    /// Owners in foreground deletion, by uid: removed once their dependents are gone.
    pub foreground: HashMap<String, (ResKey, ObjKey)>,
    history: VecDeque<Arc<HistEvent>>,
    history_floor: u64,
    watchers: Vec<WatcherReg>,
    /// Deployments waiting for simulated status: `(namespace, name)`.
    pub pending_deployments: Vec<ObjKey>,
    /// Uids of deleted objects (the newest [`MAX_DELETED_UIDS`]), oldest first in
    /// `deleted_order`: an object stored later whose owners are all among them is
    /// collected, as the garbage collector collects a dependent whose owners are absent.
    deleted_uids: HashSet<String>,
    deleted_order: VecDeque<String>,
    /// Objects stored with only deleted owners, collected when the request ends.
    pub orphans: Vec<(ResKey, ObjKey)>,
}

/// How many deleted uids the store remembers for garbage collection.
const MAX_DELETED_UIDS: usize = 100_000;

pub(crate) fn now_string() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub(crate) fn meta(v: &Value) -> Option<&Map<String, Value>> {
    v.get("metadata").and_then(Value::as_object)
}

pub(crate) fn meta_str<'a>(v: &'a Value, key: &str) -> &'a str {
    meta(v)
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub(crate) fn meta_mut(v: &mut Value) -> &mut Map<String, Value> {
    if !v.get("metadata").is_some_and(Value::is_object) {
        v["metadata"] = json!({});
    }
    v["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

/// The number of finalizers holding an object.
pub(crate) fn finalizers(v: &Value) -> usize {
    v.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

/// The uids of an object's owners.
pub(crate) fn owner_uids(v: &Value) -> Vec<String> {
    v.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl State {
    /// A store serving the built-in resources, with no objects.
    pub(crate) fn empty(config: Config) -> Self {
        State {
            rv: 0,
            config,
            registry: Registry::with_builtins(),
            objects: HashMap::new(),
            owners: HashMap::new(),
            foreground: HashMap::new(),
            history: VecDeque::new(),
            history_floor: 0,
            watchers: Vec::new(),
            pending_deployments: Vec::new(),
            deleted_uids: HashSet::new(),
            deleted_order: VecDeque::new(),
            orphans: Vec::new(),
        }
    }

    /// All served resources.
    pub(crate) fn resources(&self) -> Vec<Arc<ResourceInfo>> {
        self.registry.all().cloned().collect()
    }

    /// Finds a resource by group, version and plural.
    pub(crate) fn resource(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Result<Arc<ResourceInfo>, ApiError> {
        self.registry.served(group, version, plural).ok_or_else(|| {
            ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        })
    }

    /// Finds a resource by kind within a group.
    pub(crate) fn resource_for_kind(&self, group: &str, kind: &str) -> Option<Arc<ResourceInfo>> {
        self.registry.for_kind(group, kind)
    }

    /// The object as seen through `version` of its resource.
    pub(crate) fn with_version(info: &ResourceInfo, version: &str, obj: &Value) -> Value {
        let mut v = obj.clone();
        let av = info.api_version(version);
        if v.get("apiVersion").and_then(Value::as_str) != Some(av.as_str()) {
            v["apiVersion"] = json!(av);
        }
        v
    }

    /// Reads an object without the API's checks.
    pub(crate) fn get_raw(&self, res: &ResKey, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.objects
            .get(res)?
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    /// GET.
    pub(crate) fn get(
        &self,
        info: &ResourceInfo,
        version: &str,
        ns: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.get_raw(&info.key(), ns, name)
            .map(|o| Self::with_version(info, version, &o))
            .ok_or_else(|| ApiError::not_found(info, name))
    }

    /// LIST.
    pub(crate) fn list(
        &self,
        info: &ResourceInfo,
        version: &str,
        ns: Option<&str>,
        opts: &ListOpts,
    ) -> Result<Value, ApiError> {
        let empty = BTreeMap::new();
        let objs = self.objects.get(&info.key()).unwrap_or(&empty);
        let start: Option<ObjKey> =
            match &opts.continue_token {
                Some(t) if !t.is_empty() => Some(decode_continue(t).ok_or_else(|| {
                    ApiError::bad_request(format!("invalid continue token {t:?}"))
                })?),
                _ => None,
            };
        let iter: Box<dyn Iterator<Item = (&ObjKey, &Arc<Value>)>> = match (&start, ns) {
            (Some(s), _) => Box::new(objs.range((
                std::ops::Bound::Excluded(s.clone()),
                std::ops::Bound::Unbounded,
            ))),
            (None, Some(n)) => Box::new(objs.range((n.to_string(), String::new())..)),
            (None, None) => Box::new(objs.iter()),
        };
        let mut items = Vec::new();
        let mut next = None;
        for (key, obj) in iter {
            if let Some(n) = ns
                && key.0 != n
            {
                if key.0.as_str() > n {
                    break;
                }
                continue;
            }
            if !opts.labels.matches(obj) || !opts.fields.matches(obj) {
                continue;
            }
            if let Some(limit) = opts.limit
                && limit > 0
                && items.len() >= limit
            {
                next = Some(encode_continue(&items_last_key(&items)));
                break;
            }
            items.push(Self::with_version(info, version, obj));
        }
        let mut metadata = json!({"resourceVersion": self.rv.to_string()});
        if let Some(c) = next {
            metadata["continue"] = json!(c);
        }
        Ok(json!({
            "apiVersion": info.api_version(version),
            "kind": format!("{}List", info.kind),
            "metadata": metadata,
            "items": items,
        }))
    }

    /// Remembers that the object with `uid` is gone (see `deleted_uids`).
    pub(crate) fn remember_deleted(&mut self, uid: &str) {
        if uid.is_empty() || !self.deleted_uids.insert(uid.to_owned()) {
            return;
        }
        self.deleted_order.push_back(uid.to_owned());
        if self.deleted_order.len() > MAX_DELETED_UIDS
            && let Some(oldest) = self.deleted_order.pop_front()
        {
            self.deleted_uids.remove(&oldest);
        }
    }

    /// Whether every owner of `obj` is a deleted object (and it has owners).
    pub(crate) fn owners_all_deleted(&self, obj: &Value) -> bool {
        let uids = owner_uids(obj);
        !uids.is_empty() && uids.iter().all(|uid| self.deleted_uids.contains(uid))
    }

    /// Stores an object under the next resourceVersion and emits ADDED or MODIFIED.
    pub(crate) fn put(&mut self, info: &ResourceInfo, mut obj: Value) -> Arc<Value> {
        self.rv += 1;
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        let key = (
            meta_str(&obj, "namespace").to_string(),
            meta_str(&obj, "name").to_string(),
        );
        let res = info.key();
        let arc = Arc::new(obj);
        let old = self
            .objects
            .entry(res.clone())
            .or_default()
            .insert(key.clone(), arc.clone());
        if let Some(o) = &old {
            for uid in owner_uids(o) {
                if let Some(s) = self.owners.get_mut(&uid) {
                    s.remove(&(res.clone(), key.clone()));
                }
            }
        }
        if self.owners_all_deleted(&arc) {
            self.orphans.push((res.clone(), key.clone()));
        }
        for uid in owner_uids(&arc) {
            self.owners
                .entry(uid)
                .or_default()
                .insert((res.clone(), key.clone()));
        }
        let ty = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.emit(res, ty, arc.clone(), old);
        arc
    }

    /// Removes an object for good and emits its DELETED event, which carries `last` (the
    /// final state) when given. What follows a removal is the write pipeline's.
    pub(crate) fn remove_object(
        &mut self,
        res: &ResKey,
        key: &ObjKey,
        last: Option<Value>,
    ) -> Option<Arc<Value>> {
        let old = self.objects.get_mut(res)?.remove(key)?;
        for uid in owner_uids(&old) {
            if let Some(s) = self.owners.get_mut(&uid) {
                s.remove(&(res.clone(), key.clone()));
            }
        }
        self.rv += 1;
        let mut obj = last.unwrap_or_else(|| (*old).clone());
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        let arc = Arc::new(obj);
        self.emit(res.clone(), EventType::Deleted, arc.clone(), Some(old));
        Some(arc)
    }

    fn emit(&mut self, res: ResKey, ty: EventType, obj: Arc<Value>, old: Option<Arc<Value>>) {
        let ns = meta_str(&obj, "namespace").to_string();
        let ev = Arc::new(HistEvent {
            rv: self.rv,
            res,
            ty,
            obj,
            old,
        });
        self.history.push_back(ev.clone());
        while self.history.len() > self.config.watch_history.max(1) {
            if let Some(e) = self.history.pop_front() {
                self.history_floor = e.rv;
            }
        }
        self.watchers.retain(|w| {
            if w.res != ev.res || w.ns.as_ref().is_some_and(|n| *n != ns) {
                return !w.tx.is_closed();
            }
            w.tx.send(ev.clone()).is_ok()
        });
    }

    /// Starts a watch: the initial events to send, and the live event channel.
    pub(crate) fn watch(
        &mut self,
        info: &ResourceInfo,
        ns: Option<&str>,
        rv: Option<u64>,
    ) -> Result<WatchHandle, WatchStart> {
        let res = info.key();
        let initial: Vec<Arc<HistEvent>> = match rv {
            None | Some(0) => self
                .objects
                .get(&res)
                .into_iter()
                .flat_map(|m| m.iter())
                .filter(|(k, _)| ns.is_none_or(|n| k.0 == n))
                .map(|(_, o)| {
                    Arc::new(HistEvent {
                        rv: meta_str(o, "resourceVersion").parse().unwrap_or(0),
                        res: res.clone(),
                        ty: EventType::Added,
                        obj: o.clone(),
                        old: None,
                    })
                })
                .collect(),
            Some(r) => {
                if r < self.history_floor {
                    return Err(WatchStart::Expired {
                        requested: r,
                        oldest: self.history_floor,
                    });
                }
                self.history
                    .iter()
                    .filter(|e| {
                        e.rv > r
                            && e.res == res
                            && ns.is_none_or(|n| meta_str(&e.obj, "namespace") == n)
                    })
                    .cloned()
                    .collect()
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        self.watchers.push(WatcherReg {
            res,
            ns: ns.map(str::to_string),
            tx,
        });
        Ok((initial, rx))
    }

    /// The oldest resourceVersion still in the history: lists and watches at an older
    /// one are expired.
    pub(crate) fn oldest_resource_version(&self) -> u64 {
        self.history_floor
    }

    /// Closes the open watch streams of `res` (its events so far are still delivered),
    /// as an API server does when a CRD's removal stops serving its resource.
    pub(crate) fn close_watches_of(&mut self, res: &ResKey) {
        self.watchers.retain(|w| w.res != *res);
    }

    /// Closes every open watch stream.
    pub(crate) fn cut_watches(&mut self) {
        self.watchers.clear();
    }

    /// Drops the whole event history: watches from any earlier resourceVersion get 410.
    pub(crate) fn compact(&mut self) {
        self.rv += 1;
        self.history.clear();
        self.history_floor = self.rv;
    }

    /// The keys of every object of a resource.
    pub(crate) fn keys(&self, res: &ResKey) -> Vec<ObjKey> {
        self.objects
            .get(res)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Every namespaced object in `ns`, with its resource.
    pub(crate) fn namespace_contents(&self, ns: &str) -> Vec<(Arc<ResourceInfo>, ObjKey)> {
        self.registry
            .all()
            .filter(|r| r.namespaced)
            .flat_map(|r| {
                self.objects
                    .get(&r.key())
                    .into_iter()
                    .flat_map(|m| m.keys())
                    .filter(|k| k.0 == ns)
                    .map(|k| (r.clone(), k.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Whether no object is left in `ns`.
    pub(crate) fn namespace_empty(&self, ns: &str) -> bool {
        self.objects.values().all(|m| {
            m.range((ns.to_string(), String::new())..)
                .next()
                .is_none_or(|((n, _), _)| n != ns)
        })
    }

    /// Whether anything names `uid` as its owner.
    pub(crate) fn has_dependents(&self, uid: &str) -> bool {
        self.owners.get(uid).is_some_and(|d| !d.is_empty())
    }

    /// The objects that name `uid` as their owner.
    pub(crate) fn dependents(&self, uid: &str) -> Vec<(ResKey, ObjKey)> {
        self.owners
            .get(uid)
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets `uid` as an owner, returning the objects that named it.
    pub(crate) fn take_dependents(&mut self, uid: &str) -> Vec<(ResKey, ObjKey)> {
        self.owners
            .remove(uid)
            .map(|d| d.into_iter().collect())
            .unwrap_or_default()
    }

    /// Number of stored objects.
    pub(crate) fn object_count(&self) -> usize {
        self.objects.values().map(BTreeMap::len).sum()
    }
}

fn items_last_key(items: &[Value]) -> ObjKey {
    items
        .last()
        .map(|o| {
            (
                meta_str(o, "namespace").to_string(),
                meta_str(o, "name").to_string(),
            )
        })
        .unwrap_or_default()
}

fn encode_continue(key: &ObjKey) -> String {
    let raw = format!("{}\u{1f}{}", key.0, key.1);
    raw.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_continue(t: &str) -> Option<ObjKey> {
    if !t.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..t.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(t.get(i..i + 2)?, 16).ok())
        .collect();
    let s = String::from_utf8(bytes?).ok()?;
    let (ns, name) = s.split_once('\u{1f}')?;
    Some((ns.to_string(), name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::WriteOpts;
    use crate::write::tests::state;

    #[test]
    fn continue_token_round_trip() {
        let k = ("ns".to_string(), "name-1".to_string());
        assert_eq!(decode_continue(&encode_continue(&k)), Some(k));
        assert_eq!(decode_continue("zz"), None);
    }

    #[test]
    fn history_overflow_expires_old_watches() {
        let mut st = state();
        let cm = st.resource("", "v1", "configmaps").unwrap();
        for i in 0..150 {
            let body = json!({"metadata": {"name": format!("c{i}")}});
            st.create(&cm, "v1", "default", body, &WriteOpts::default())
                .unwrap();
        }
        assert!(matches!(
            st.watch(&cm, None, Some(1)),
            Err(WatchStart::Expired { .. })
        ));
        let rv = st.rv;
        assert!(st.watch(&cm, None, Some(rv)).is_ok());
    }
}
