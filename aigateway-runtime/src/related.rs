//! Related objects: what `desired_state` reads besides its gateway, which gateways read
//! what, and how much of it is held in memory.
//!
//! Every lookup through [`Context::get`] is recorded, found or not, as
//! `(kind, namespace, name)`. After a pass the runtime keeps, per gateway, the set it
//! read, and the reverse index from each read object to its readers. A watch event on a
//! related object re-runs exactly the gateways that read it (a hash lookup, whatever the
//! number of gateways); an object nobody read re-runs nothing. A lookup that found
//! nothing is recorded too, so creating the missing object re-runs its readers.
//!
//! How much is cached depends on the kind's [`RelatedCache`] policy:
//! - [`RelatedCache::Full`]: every object with its content (small custom resources).
//! - [`RelatedCache::ContentOnRead`] (Secrets and ConfigMaps by default): the watch carries
//!   metadata only (the API server never sends data), and content is held only for
//!   objects some gateway read. Content is fetched with a GET on first read, dropped when
//!   the metadata watch shows another resourceVersion or a delete, and evicted when no
//!   gateway reads the object any more.
//!
//! `desired_state` stays synchronous over its reads: when a pass read an object whose
//! content is not loaded (it saw `None`), the runtime loads what was missing and runs
//! the pass again ([`CONTENT_ROUNDS`] at most). A pass is pure, so a re-run is safe.
//!
//! One operator keeps one cache per related kind, whatever the number of gateway kinds
//! it serves: their declarations are merged (one label selector per related kind; named
//! only when every kind names the same object; full content when any kind asks), each
//! kind reads through its own view (what it declared, names included), and the read
//! index records the gateway kind of every reader.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::attached::{AttachedView, NotAttached, NotDeclaredPolicy};
use crate::children::ChildKindState;
use crate::dynamic::from_dynamic;
use crate::policies::{PolicyCache, TargetObject};
use crate::reference_grants::{
    CrossNamespaceRef, GrantsNotDeclared, ReferenceGrantCheck, ReferenceGrants,
};
use aigateway_api::NamespacedName;

/// How many passes of `desired_state` (or `cleanup`) one reconcile runs at most while
/// loading the content of what the previous pass read. Reads are discovered a level at a
/// time (a Guard names a provider, which names a Secret), and only content-on-read kinds
/// need a round, so two passes are the rule.
pub const CONTENT_ROUNDS: usize = 4;

/// What the runtime caches of a related kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelatedCache {
    /// Every object of the kind, with its content: for small objects most gateways read
    /// (custom resources such as Guards).
    Full,
    /// Metadata of every object, content only of the objects some gateway read: for
    /// kinds that are numerous, large or sensitive (Secrets, ConfigMaps).
    ContentOnRead,
}

/// A kind of object that `desired_state` reads through [`Context::get`]. Its changes
/// re-run the gateways that read the changed object, and nothing else.
#[derive(Debug, Clone)]
pub struct RelatedWatch {
    /// The kind to watch (in every namespace the operator watches).
    pub resource: ApiResource,
    /// Only objects matching this label selector, if set (others read as absent).
    pub label_selector: Option<String>,
    /// Only objects of this name, in every namespace, if set (see
    /// [`named`](Self::named)); reading another name is a [`NotWatched`] error.
    pub name: Option<String>,
    /// What is cached of the kind.
    pub cache: RelatedCache,
}

impl RelatedWatch {
    /// Watches the typed kind `T`. Secrets and ConfigMaps are cached
    /// [`ContentOnRead`](RelatedCache::ContentOnRead), every other kind
    /// [`Full`](RelatedCache::Full); change it with [`cache`](Self::cache).
    pub fn new<T: Resource<DynamicType = ()>>() -> Self {
        let resource = ApiResource::erase::<T>(&());
        let numerous = [
            ApiResource::erase::<Secret>(&()),
            ApiResource::erase::<ConfigMap>(&()),
        ]
        .iter()
        .any(|r| r.api_version == resource.api_version && r.kind == resource.kind);
        Self {
            resource,
            label_selector: None,
            name: None,
            cache: if numerous {
                RelatedCache::ContentOnRead
            } else {
                RelatedCache::Full
            },
        }
    }

    /// Watches only objects matching `selector`; the others read as absent.
    pub fn label_selector(mut self, selector: impl Into<String>) -> Self {
        self.label_selector = Some(selector.into());
        self
    }

    /// Sets what is cached of the kind.
    pub fn cache(mut self, cache: RelatedCache) -> Self {
        self.cache = cache;
        self
    }

    /// Watches only the objects called `name`, one per namespace (a field selector
    /// `metadata.name=<name>`): for a class that reads, say, one Secret `api-keys` in
    /// each gateway's namespace, the operator neither lists nor caches any other Secret,
    /// and no other Secret's change reaches it. [`Context::get`] of another name of the
    /// kind is a [`NotWatched`] error, never a silent `None`. One watch per kind: a later
    /// declaration of the same kind replaces an earlier one.
    ///
    /// ```
    /// use aigateway_runtime::RelatedWatch;
    /// use k8s_openapi::api::core::v1::Secret;
    ///
    /// let watch = RelatedWatch::new::<Secret>().named("api-keys");
    /// assert_eq!(watch.field_selector().as_deref(), Some("metadata.name=api-keys"));
    /// ```
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The field selector of the watch, if it is [`named`](Self::named).
    pub fn field_selector(&self) -> Option<String> {
        self.name
            .as_ref()
            .map(|name| format!("metadata.name={name}"))
    }
}

/// [`Context::get`] of a kind that [`related()`](crate::GatewayImplementation::related)
/// does not declare, or of a name its [`named`](RelatedWatch::named) watch does not
/// cover: the runtime has no cache for it and cannot tell whether it exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotWatched {
    /// The kind read.
    pub kind: String,
    /// The namespace read.
    pub namespace: String,
    /// The name read.
    pub name: String,
    /// The only name watched of the kind, when the watch is [`named`](RelatedWatch::named).
    pub watched_name: Option<String>,
}

impl std::fmt::Display for NotWatched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            kind,
            namespace,
            name,
            watched_name,
        } = self;
        match watched_name {
            None => write!(
                f,
                "desired_state read {kind} {namespace}/{name}, but {kind} is not watched: declare RelatedWatch::new::<{kind}>() in related()"
            ),
            Some(watched) => write!(
                f,
                "desired_state read {kind} {namespace}/{name}, but only {kind} objects named {watched} are watched: read that name or widen RelatedWatch::new::<{kind}>().named(..) in related()"
            ),
        }
    }
}

impl std::error::Error for NotWatched {}

/// Errors while loading the content of related objects.
#[derive(Debug, thiserror::Error)]
pub enum RelatedError {
    /// The GET of an object's content failed.
    #[error(
        "could not read {kind} {namespace}/{name}: {}",
        crate::kube_error::describe_kube_error(source)
    )]
    Read {
        /// The kind.
        kind: String,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The client error.
        #[source]
        source: Box<kube::Error>,
    },
    /// Objects kept changing (or new ones were read) while their content was loaded.
    #[error(
        "related objects kept changing during {CONTENT_ROUNDS} passes; retrying (a watch event re-runs it too)"
    )]
    Unsettled,
}

/// A gateway, by kind (e.g. `ToolGateway`), namespace and name: gateways of two kinds
/// may share a name, and read through one cache.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct GatewayKey {
    pub(crate) kind: String,
    pub(crate) namespace: String,
    pub(crate) name: String,
}

impl GatewayKey {
    pub(crate) fn of<G: Resource<DynamicType = ()>>(gateway: &G) -> Self {
        Self {
            kind: G::kind(&()).into_owned(),
            namespace: gateway.meta().namespace.clone().unwrap_or_default(),
            name: gateway.meta().name.clone().unwrap_or_default(),
        }
    }

    /// The reference the controller queues.
    pub(crate) fn object_ref<G: Resource<DynamicType = ()>>(&self) -> ObjectRef<G> {
        ObjectRef::new(&self.name).within(&self.namespace)
    }
}

/// A related object, by kind (the store key), namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ObjectKey {
    kind: String,
    namespace: String,
    name: String,
}

/// The store key of a kind: `apiVersion/plural`.
pub(crate) fn kind_key(resource: &ApiResource) -> String {
    format!("{}/{}", resource.api_version, resource.plural)
}

/// One related kind and its cache, shared by every gateway kind that declared it.
struct RelatedKind {
    resource: ApiResource,
    store: Store<DynamicObject>,
    cache: RelatedCache,
}

/// Two gateway kinds of one operator declare one related kind with different label
/// selectors: one cache cannot serve both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConflictingSelectors {
    pub(crate) related_kind: String,
    pub(crate) gateway_kinds: (String, String),
}

/// The watches of the shared related caches: one per related kind that any gateway kind
/// (`(gateway kind, declaration)`) declared. The label selector must be the same in
/// every declaration of a kind; the watch is named only when every declaration names
/// the same object (each kind's view still refuses the names it did not declare); the
/// content is cached in full when any declaration asks for it.
pub(crate) fn shared_watches(
    declared: impl IntoIterator<Item = (String, RelatedWatch)>,
) -> Result<Vec<RelatedWatch>, ConflictingSelectors> {
    let mut merged: Vec<(String, RelatedWatch)> = Vec::new();
    for (gateway_kind, watch) in declared {
        let key = kind_key(&watch.resource);
        let Some((first_kind, shared)) = merged
            .iter_mut()
            .find(|(_, shared)| kind_key(&shared.resource) == key)
        else {
            merged.push((gateway_kind, watch));
            continue;
        };
        if shared.label_selector != watch.label_selector {
            return Err(ConflictingSelectors {
                related_kind: watch.resource.kind,
                gateway_kinds: (first_kind.clone(), gateway_kind),
            });
        }
        if shared.name != watch.name {
            shared.name = None;
        }
        if watch.cache == RelatedCache::Full {
            shared.cache = RelatedCache::Full;
        }
    }
    Ok(merged.into_iter().map(|(_, watch)| watch).collect())
}

/// The content of one content-on-read object some gateway read.
#[derive(Default)]
struct Content {
    /// Bumped by every invalidation, so that a GET answered before the invalidation is
    /// not stored after it.
    epoch: u64,
    /// `None`: not loaded. `Some(None)`: the GET found nothing.
    loaded: Option<Option<Arc<DynamicObject>>>,
}

#[derive(Default)]
struct Reads {
    by_gateway: HashMap<GatewayKey, HashSet<ObjectKey>>,
    by_object: HashMap<ObjectKey, HashSet<GatewayKey>>,
    /// Only for objects of content-on-read kinds that some gateway reads.
    contents: HashMap<ObjectKey, Content>,
}

/// The related caches of one operator (shared by its gateway kinds), the read index and
/// the loaded contents.
pub(crate) struct RelatedCaches {
    kinds: HashMap<String, RelatedKind>,
    reads: Mutex<Reads>,
    client: Client,
}

/// What a lookup found.
enum Lookup {
    Found(Arc<DynamicObject>),
    Absent,
    /// The object exists but its content is not loaded yet.
    Unloaded,
}

impl RelatedCaches {
    pub(crate) fn new(client: Client) -> Self {
        Self {
            kinds: HashMap::new(),
            reads: Mutex::default(),
            client,
        }
    }

    /// The gateways that asked about objects of kind `resource` anywhere in `namespace`
    /// (recorded with an empty name, as [`Context::reference_grant`] does).
    pub(crate) fn namespace_readers(
        &self,
        resource: &ApiResource,
        namespace: &str,
    ) -> Vec<GatewayKey> {
        let key = ObjectKey {
            kind: kind_key(resource),
            namespace: namespace.to_owned(),
            name: String::new(),
        };
        self.reads()
            .by_object
            .get(&key)
            .map(|readers| readers.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The gateways that read any object of kind `resource`.
    pub(crate) fn kind_readers(&self, resource: &ApiResource) -> Vec<GatewayKey> {
        let kind = kind_key(resource);
        let readers: HashSet<GatewayKey> = self
            .reads()
            .by_object
            .iter()
            .filter(|(key, _)| key.kind == kind)
            .flat_map(|(_, readers)| readers.iter().cloned())
            .collect();
        readers.into_iter().collect()
    }

    /// Adds a kind (a [`shared_watches`] watch) with its (metadata-only, for
    /// content-on-read) store.
    pub(crate) fn add(&mut self, watch: &RelatedWatch, store: Store<DynamicObject>) {
        self.kinds.insert(
            kind_key(&watch.resource),
            RelatedKind {
                resource: watch.resource.clone(),
                store,
                cache: watch.cache,
            },
        );
    }

    fn reads(&self) -> std::sync::MutexGuard<'_, Reads> {
        self.reads.lock().expect("related reads lock")
    }

    fn is_content_on_read(&self, key: &ObjectKey) -> bool {
        self.kinds
            .get(&key.kind)
            .is_some_and(|k| k.cache == RelatedCache::ContentOnRead)
    }

    fn lookup(&self, kind: &RelatedKind, key: &ObjectKey) -> Lookup {
        let reference =
            ObjectRef::new_with(&key.name, kind.resource.clone()).within(&key.namespace);
        let Some(cached) = kind.store.get(&reference) else {
            return Lookup::Absent;
        };
        if kind.cache == RelatedCache::Full {
            return Lookup::Found(cached);
        }
        match self.reads().contents.get(key).map(|c| c.loaded.clone()) {
            Some(Some(Some(object))) => Lookup::Found(object),
            Some(Some(None)) => Lookup::Absent,
            _ => Lookup::Unloaded,
        }
    }

    /// Records that `gateway` read exactly `reads`: the reverse index follows, content
    /// nobody reads any more is dropped, and content-on-read objects newly read get a
    /// slot to load into.
    pub(crate) fn record(&self, gateway: &GatewayKey, reads: HashSet<ObjectKey>) {
        let content_kinds: HashSet<ObjectKey> = reads
            .iter()
            .filter(|k| self.is_content_on_read(k))
            .cloned()
            .collect();
        let mut state = self.reads();
        let old = if reads.is_empty() {
            state.by_gateway.remove(gateway).unwrap_or_default()
        } else {
            state
                .by_gateway
                .insert(gateway.clone(), reads.clone())
                .unwrap_or_default()
        };
        for key in old.difference(&reads) {
            if let Some(readers) = state.by_object.get_mut(key) {
                readers.remove(gateway);
                if readers.is_empty() {
                    state.by_object.remove(key);
                    state.contents.remove(key);
                }
            }
        }
        for key in reads.difference(&old) {
            state
                .by_object
                .entry(key.clone())
                .or_default()
                .insert(gateway.clone());
            if content_kinds.contains(key) {
                state.contents.entry(key.clone()).or_default();
            }
        }
    }

    /// Forgets what a deleted gateway read.
    pub(crate) fn forget(&self, gateway: &GatewayKey) {
        self.record(gateway, HashSet::new());
    }

    /// Forgets the reads of every gateway for which `exists` is false (after a relist,
    /// deletions during a watch gap come without a delete event); `exists` sees gateways
    /// of every kind.
    pub(crate) fn retain(&self, exists: impl Fn(&GatewayKey) -> bool) {
        let gone: Vec<GatewayKey> = self
            .reads()
            .by_gateway
            .keys()
            .filter(|g| !exists(g))
            .cloned()
            .collect();
        for gateway in gone {
            self.forget(&gateway);
        }
    }

    /// The gateways (of every kind) that read the changed object `object` of kind
    /// `resource`.
    pub(crate) fn readers(
        &self,
        resource: &ApiResource,
        object: &DynamicObject,
    ) -> Vec<GatewayKey> {
        let key = ObjectKey {
            kind: kind_key(resource),
            namespace: object.namespace().unwrap_or_default(),
            name: object.name_any(),
        };
        self.reads()
            .by_object
            .get(&key)
            .map(|readers| readers.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Drops loaded content that a watch event shows to be outdated: another
    /// resourceVersion, or a delete.
    pub(crate) fn observe(&self, resource: &ApiResource, event: &watcher::Event<DynamicObject>) {
        let (object, deleted) = match event {
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) => (o, false),
            watcher::Event::Delete(o) => (o, true),
            watcher::Event::Init | watcher::Event::InitDone => return,
        };
        let key = ObjectKey {
            kind: kind_key(resource),
            namespace: object.namespace().unwrap_or_default(),
            name: object.name_any(),
        };
        let mut state = self.reads();
        let Some(content) = state.contents.get_mut(&key) else {
            return;
        };
        let current = !deleted
            && matches!(&content.loaded, Some(Some(loaded))
                if loaded.metadata.resource_version.is_some()
                    && loaded.metadata.resource_version == object.metadata.resource_version);
        if !current {
            content.loaded = None;
            content.epoch += 1;
        }
    }

    /// Loads the content of `keys` with one GET each. A load that an invalidation
    /// overtook (or whose object nobody reads any more) is discarded.
    pub(crate) async fn load(&self, keys: &HashSet<ObjectKey>) -> Result<(), RelatedError> {
        for key in keys {
            let Some(kind) = self.kinds.get(&key.kind) else {
                continue;
            };
            let Some(epoch) = self.reads().contents.get(key).map(|c| c.epoch) else {
                continue;
            };
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), &key.namespace, &kind.resource);
            let found = api
                .get_opt(&key.name)
                .await
                .map_err(|source| RelatedError::Read {
                    kind: kind.resource.kind.clone(),
                    namespace: key.namespace.clone(),
                    name: key.name.clone(),
                    source: Box::new(source),
                })?
                .map(|mut object| {
                    object.metadata.managed_fields = None;
                    Arc::new(object)
                });
            let mut state = self.reads();
            if let Some(content) = state.contents.get_mut(key)
                && content.epoch == epoch
            {
                content.loaded = Some(found);
            }
        }
        Ok(())
    }

    /// How many objects' content is held.
    #[cfg(test)]
    fn loaded_contents(&self) -> usize {
        self.reads()
            .contents
            .values()
            .filter(|c| c.loaded.is_some())
            .count()
    }
}

/// The related caches as one gateway kind sees them: only the kinds it declared, and of
/// a [`named`](RelatedWatch::named) declaration only that name, even when the shared
/// cache holds more for another gateway kind.
pub(crate) struct RelatedView {
    pub(crate) caches: Arc<RelatedCaches>,
    /// Store key of each declared kind to the only name declared, if named.
    declared: HashMap<String, Option<String>>,
    /// ReferenceGrants, when the implementation uses them.
    grants: Option<Arc<ReferenceGrants>>,
}

impl RelatedView {
    pub(crate) fn new(caches: Arc<RelatedCaches>, declared: &[RelatedWatch]) -> Self {
        Self {
            caches,
            declared: declared
                .iter()
                .map(|watch| (kind_key(&watch.resource), watch.name.clone()))
                .collect(),
            grants: None,
        }
    }

    /// Answers [`Context::reference_grant`] from `grants`.
    pub(crate) fn set_grants(&mut self, grants: Arc<ReferenceGrants>) {
        self.grants = Some(grants);
    }

    /// Forgets what a deleted gateway read.
    pub(crate) fn forget(&self, gateway: &GatewayKey) {
        self.caches.forget(gateway);
    }
}

#[derive(Default)]
pub(crate) struct ReadLog {
    pub(crate) reads: HashSet<ObjectKey>,
    pub(crate) unloaded: HashSet<ObjectKey>,
}

/// What an implementation can read while computing desired state: the related objects
/// it declared in [`related()`](crate::GatewayImplementation::related), and the client.
///
/// Each reconcile gets its own `Context`, which records every lookup: the gateway is
/// re-run when one of the objects it looked up changes, appears or goes.
pub struct Context {
    related: Arc<RelatedView>,
    attached: Option<AttachedView>,
    policies: Arc<[Arc<PolicyCache>]>,
    child_kinds: Arc<[ChildKindState]>,
    log: Mutex<ReadLog>,
}

impl Context {
    pub(crate) fn new(
        related: Arc<RelatedView>,
        attached: Option<AttachedView>,
        policies: Arc<[Arc<PolicyCache>]>,
    ) -> Self {
        Self {
            related,
            attached,
            policies,
            child_kinds: Arc::new([]),
            log: Mutex::default(),
        }
    }

    pub(crate) fn with_child_kinds(mut self, child_kinds: Arc<[ChildKindState]>) -> Self {
        self.child_kinds = child_kinds;
        self
    }

    /// Whether the API server serves `kind`, a child kind the implementation declared
    /// ([`child_kinds`](crate::GatewayImplementation::child_kinds) are taken as served;
    /// an [optional](crate::GatewayImplementation::optional_child_kinds) one while its
    /// last list succeeded, not after a 404). Matched by `apiVersion` and kind, as the
    /// loop applies children: `false` for an undeclared kind or version, which the loop
    /// could not apply.
    pub fn serves(&self, kind: &ApiResource) -> bool {
        (self.child_kinds.iter()).any(|(resource, installed)| {
            resource.api_version == kind.api_version
                && resource.kind == kind.kind
                && installed.load(std::sync::atomic::Ordering::SeqCst)
        })
    }

    /// The policies of kind `P` (see
    /// [`GatewayImplementation::policies`](crate::GatewayImplementation::policies)) in
    /// effect on `target`: the gateway being reconciled, or an object attached to it (a
    /// ToolRoute from [`Context::attached`]). For each target a policy names (the object,
    /// or a section of it such as a model), the oldest policy naming it, by
    /// `creationTimestamp` then name (Gateway API's precedence); each policy once,
    /// oldest first. The newer ones are never offered: their status says `Conflicted`.
    /// A policy that does not deserialise as `P` is left out; policies are offered
    /// without their status (the loop writes it, and the cache keeps only a memo of
    /// it). Not recorded as reads: a policy's change re-runs the gateway it names, or
    /// the gateway the object it names is attached to, through the policy index.
    ///
    /// What the pass decides about a policy
    /// ([`DesiredState::with_policy`](crate::DesiredState::with_policy)) holds for
    /// each of its targets the pass sees; a policy on an attached object the gateway
    /// does not serve (not admitted, or refused) is refused with the object's reason.
    ///
    /// # Errors
    /// [`NotDeclaredPolicy`] when `P` is not a declared policy kind.
    pub fn policies<P: Resource<DynamicType = ()> + DeserializeOwned>(
        &self,
        target: &impl Resource<DynamicType = ()>,
    ) -> Result<Vec<P>, NotDeclaredPolicy> {
        let resource = ApiResource::erase::<P>(&());
        let cache = (self.policies.iter())
            .find(|cache| {
                cache.resource.api_version == resource.api_version
                    && cache.resource.plural == resource.plural
            })
            .ok_or_else(|| NotDeclaredPolicy {
                kind: resource.kind.clone(),
            })?;
        let target = TargetObject::of_object(target);
        Ok((cache.in_effect_on(&target).iter())
            .filter_map(|policy| from_dynamic(&policy.to_object(&cache.resource)))
            .collect())
    }

    /// The objects of the attached kind `T` (see
    /// [`GatewayImplementation::attached`](crate::GatewayImplementation::attached))
    /// attached to `gateway` and admitted by it (see
    /// [`AllowedRoutes`](crate::attached::AllowedRoutes): objects from namespaces the
    /// gateway does not admit are never offered), oldest first: by `creationTimestamp`
    /// (an object without one counts as the newest), then by namespace and name. So
    /// where two objects claim the same thing (a path, a name in the proxy's config),
    /// serving the first and refusing the later ones keeps what already worked, as
    /// Gateway API resolves conflicting routes. Not recorded as reads: a change of an
    /// attached object re-runs its gateway through the attached index.
    ///
    /// # Errors
    /// [`NotAttached`] when `T` is not the declared attached kind.
    pub fn attached<T: Resource<DynamicType = ()> + DeserializeOwned>(
        &self,
        gateway: &impl Resource,
    ) -> Result<Vec<T>, NotAttached> {
        let Some(view) = self.attached.as_ref() else {
            return Err(NotAttached {
                kind: T::kind(&()).into_owned(),
            });
        };
        view.cache.typed(
            &NamespacedName {
                namespace: gateway.meta().namespace.clone().unwrap_or_default(),
                name: gateway.meta().name.clone().unwrap_or_default(),
            },
            &view.admitted,
        )
    }

    /// Whether the target namespace of `reference` consents to it with a Gateway API
    /// ReferenceGrant (see [`reference_grants`](crate::reference_grants)); a reference
    /// within one namespace is always [`Permitted`](ReferenceGrantCheck::Permitted).
    /// Ask before reading the target, and when the answer is not `Permitted`, say
    /// nothing about the target (not even whether it exists). Recorded: the gateway is
    /// re-run when a grant in the target's namespace changes, or the CRD comes or goes.
    ///
    /// # Errors
    /// [`GrantsNotDeclared`] when the implementation does not declare
    /// [`uses_reference_grants`](crate::GatewayImplementation::uses_reference_grants).
    pub fn reference_grant(
        &self,
        reference: &CrossNamespaceRef<'_>,
    ) -> Result<ReferenceGrantCheck, GrantsNotDeclared> {
        let Some(grants) = self.related.grants.as_ref() else {
            return Err(GrantsNotDeclared);
        };
        if reference.from_namespace == reference.to_namespace {
            return Ok(ReferenceGrantCheck::Permitted);
        }
        self.log
            .lock()
            .expect("read log lock")
            .reads
            .insert(ObjectKey {
                kind: kind_key(&crate::reference_grants::resource()),
                namespace: reference.to_namespace.to_owned(),
                name: String::new(),
            });
        Ok(grants.check(reference))
    }

    pub(crate) fn take_log(&self) -> ReadLog {
        std::mem::take(&mut *self.log.lock().expect("read log lock"))
    }

    /// The Kubernetes client, for reads the caches cannot answer. Reads made with it
    /// are not recorded: their objects' changes re-run nothing.
    pub fn client(&self) -> &Client {
        &self.related.caches.client
    }

    /// The related object `namespace/name` of kind `T`, typed; `Ok(None)` when it does
    /// not exist (or does not match the watch's label selector). The lookup is recorded:
    /// the gateway is re-run when that object changes, is created or is deleted.
    ///
    /// # Errors
    /// [`NotWatched`] when `T` is not declared in
    /// [`related()`](crate::GatewayImplementation::related); convert it with `?` into an
    /// [`ImplementationError`](crate::ImplementationError).
    pub fn get<T: Resource<DynamicType = ()> + DeserializeOwned>(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<T>, NotWatched> {
        let resource = ApiResource::erase::<T>(&());
        let key = ObjectKey {
            kind: kind_key(&resource),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        let (Some(declared), Some(kind)) = (
            self.related.declared.get(&key.kind),
            self.related.caches.kinds.get(&key.kind),
        ) else {
            return Err(NotWatched {
                kind: resource.kind,
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                watched_name: None,
            });
        };
        if let Some(watched) = declared.as_ref().filter(|watched| *watched != name) {
            return Err(NotWatched {
                kind: resource.kind,
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                watched_name: Some(watched.clone()),
            });
        }
        let found = self.related.caches.lookup(kind, &key);
        let mut log = self.log.lock().expect("read log lock");
        log.reads.insert(key.clone());
        Ok(match found {
            Lookup::Found(object) => from_dynamic(&object),
            Lookup::Absent => None,
            Lookup::Unloaded => {
                log.unloaded.insert(key);
                None
            }
        })
    }

    /// Whether related objects of kind `T` are watched.
    pub fn watches<T: Resource<DynamicType = ()>>(&self) -> bool {
        self.related
            .declared
            .contains_key(&kind_key(&ApiResource::erase::<T>(&())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway(name: &str) -> GatewayKey {
        GatewayKey {
            kind: "AiGateway".into(),
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    fn secret_key(name: &str) -> ObjectKey {
        ObjectKey {
            kind: kind_key(&ApiResource::erase::<Secret>(&())),
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    fn secret(name: &str, resource_version: &str) -> DynamicObject {
        let mut object = DynamicObject::new(name, &ApiResource::erase::<Secret>(&())).within("ns");
        object.metadata.resource_version = Some(resource_version.into());
        object
    }

    fn caches() -> RelatedCaches {
        // The client is never used by these tests: no content is loaded over HTTP.
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = Client::try_from(config).unwrap();
        let mut caches = RelatedCaches::new(client);
        let writer =
            kube::runtime::reflector::store::Writer::new(ApiResource::erase::<Secret>(&()));
        caches.add(&RelatedWatch::new::<Secret>(), writer.as_reader());
        caches
    }

    #[tokio::test]
    async fn reads_map_objects_to_their_readers_and_unread_content_is_evicted() {
        let caches = caches();
        let resource = ApiResource::erase::<Secret>(&());
        caches.record(
            &gateway("a"),
            HashSet::from([secret_key("keys"), secret_key("shared")]),
        );
        caches.record(&gateway("b"), HashSet::from([secret_key("shared")]));
        let readers = |name: &str| {
            let mut r = caches.readers(&resource, &secret(name, "1"));
            r.sort_by(|x, y| x.name.cmp(&y.name));
            r.into_iter().map(|g| g.name).collect::<Vec<_>>()
        };
        assert_eq!(readers("keys"), ["a"]);
        assert_eq!(readers("shared"), ["a", "b"]);
        assert!(readers("unrelated").is_empty());

        caches
            .reads()
            .contents
            .get_mut(&secret_key("keys"))
            .unwrap()
            .loaded = Some(Some(Arc::new(secret("keys", "1"))));
        assert_eq!(caches.loaded_contents(), 1);
        // `a` no longer reads `keys`: its content goes, `shared` stays for `b`.
        caches.record(&gateway("a"), HashSet::from([secret_key("shared")]));
        assert!(readers("keys").is_empty());
        assert_eq!(caches.loaded_contents(), 0);
        caches.forget(&gateway("b"));
        assert_eq!(readers("shared"), ["a"]);
        caches.retain(|g| g.name != "a");
        assert!(readers("shared").is_empty());
        assert!(caches.reads().contents.is_empty());
    }

    #[tokio::test]
    async fn content_is_dropped_on_a_new_resource_version_or_a_delete_only() {
        let caches = caches();
        let resource = ApiResource::erase::<Secret>(&());
        caches.record(&gateway("a"), HashSet::from([secret_key("keys")]));
        let load = |rv: &str| {
            caches
                .reads()
                .contents
                .get_mut(&secret_key("keys"))
                .unwrap()
                .loaded = Some(Some(Arc::new(secret("keys", rv))));
        };
        let loaded = || caches.loaded_contents() == 1;
        load("1");
        caches.observe(&resource, &watcher::Event::Apply(secret("keys", "1")));
        assert!(loaded(), "the same resourceVersion keeps the content");
        caches.observe(&resource, &watcher::Event::Apply(secret("other", "7")));
        assert!(loaded(), "another object's event keeps it");
        caches.observe(&resource, &watcher::Event::Apply(secret("keys", "2")));
        assert!(!loaded(), "a new resourceVersion drops it");
        load("2");
        caches.observe(&resource, &watcher::Event::Delete(secret("keys", "2")));
        assert!(!loaded(), "a delete drops it");
    }

    fn view(caches: RelatedCaches, declared: &[RelatedWatch]) -> Arc<RelatedView> {
        Arc::new(RelatedView::new(Arc::new(caches), declared))
    }

    #[tokio::test]
    async fn reading_an_undeclared_kind_is_an_error_and_lookups_are_recorded() {
        let ctx = Context::new(
            view(caches(), &[RelatedWatch::new::<Secret>()]),
            None,
            Arc::new([]),
        );
        let error = ctx
            .get::<k8s_openapi::api::core::v1::Service>("ns", "api")
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "desired_state read Service ns/api, but Service is not watched: declare RelatedWatch::new::<Service>() in related()"
        );
        // A declared kind: absent from the (empty) cache, and recorded as read, so that
        // its creation re-runs the gateway.
        assert_eq!(ctx.get::<Secret>("ns", "keys"), Ok(None));
        let log = ctx.take_log();
        assert_eq!(log.reads, HashSet::from([secret_key("keys")]));
        assert!(log.unloaded.is_empty(), "absent, not unloaded");
    }

    #[tokio::test]
    async fn a_named_watch_refuses_reads_of_other_names() {
        // The shared cache watches every Secret (another gateway kind reads any); this
        // kind declared one name only.
        let ctx = Context::new(
            view(caches(), &[RelatedWatch::new::<Secret>().named("api-keys")]),
            None,
            Arc::new([]),
        );
        assert_eq!(ctx.get::<Secret>("team-a", "api-keys"), Ok(None));
        let error = ctx.get::<Secret>("team-a", "other").unwrap_err();
        assert_eq!(error.watched_name.as_deref(), Some("api-keys"));
        assert_eq!(
            error.to_string(),
            "desired_state read Secret team-a/other, but only Secret objects named api-keys are watched: read that name or widen RelatedWatch::new::<Secret>().named(..) in related()"
        );
        let log = ctx.take_log();
        assert_eq!(log.reads.len(), 1, "the refused read is not recorded");
    }

    #[tokio::test]
    async fn secrets_and_config_maps_are_content_on_read_by_default() {
        assert_eq!(
            RelatedWatch::new::<Secret>().cache,
            RelatedCache::ContentOnRead
        );
        assert_eq!(
            RelatedWatch::new::<ConfigMap>().cache,
            RelatedCache::ContentOnRead
        );
        assert_eq!(
            RelatedWatch::new::<k8s_openapi::api::core::v1::Service>().cache,
            RelatedCache::Full
        );
    }

    #[test]
    fn gateway_kinds_share_one_watch_per_related_kind() {
        let selected = || RelatedWatch::new::<ConfigMap>().label_selector("a!=b");
        let watches = shared_watches([
            ("AiGateway".to_owned(), RelatedWatch::new::<Secret>()),
            ("AiGateway".to_owned(), selected()),
            (
                "ToolGateway".to_owned(),
                RelatedWatch::new::<Secret>().cache(RelatedCache::Full),
            ),
            ("ToolGateway".to_owned(), selected()),
        ])
        .unwrap();
        assert_eq!(watches.len(), 2, "one Secret watch, one ConfigMap watch");
        assert_eq!(watches[0].cache, RelatedCache::Full, "full wins");
        assert_eq!(watches[1].label_selector.as_deref(), Some("a!=b"));

        // Named the same by both: still named. Named differently: every name is
        // watched, and each kind's view refuses the other's.
        let named = |name: &str| RelatedWatch::new::<Secret>().named(name);
        let same = shared_watches([
            ("AiGateway".to_owned(), named("keys")),
            ("ToolGateway".to_owned(), named("keys")),
        ])
        .unwrap();
        assert_eq!(same[0].name.as_deref(), Some("keys"));
        let different = shared_watches([
            ("AiGateway".to_owned(), named("keys")),
            ("ToolGateway".to_owned(), named("other")),
        ])
        .unwrap();
        assert_eq!(different[0].name, None);

        let conflict = shared_watches([
            ("AiGateway".to_owned(), RelatedWatch::new::<ConfigMap>()),
            ("ToolGateway".to_owned(), selected()),
        ])
        .unwrap_err();
        assert_eq!(conflict.related_kind, "ConfigMap");
        assert_eq!(
            conflict.gateway_kinds,
            ("AiGateway".to_owned(), "ToolGateway".to_owned())
        );
    }

    #[tokio::test]
    async fn reads_of_gateways_of_two_kinds_with_one_name_are_kept_apart() {
        let caches = caches();
        let resource = ApiResource::erase::<Secret>(&());
        let tool = GatewayKey {
            kind: "ToolGateway".into(),
            ..gateway("gw")
        };
        caches.record(&gateway("gw"), HashSet::from([secret_key("keys")]));
        caches.record(&tool, HashSet::from([secret_key("keys")]));
        caches.forget(&gateway("gw"));
        assert_eq!(caches.readers(&resource, &secret("keys", "1")), [tool]);
    }
}
