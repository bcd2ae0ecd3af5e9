//! The state every reconcile of one gateway kind shares ([`Shared`]): the client, the
//! implementation, the caches, metrics, the failure streaks and our own last writes.
//!
//! Only the value and the helpers every writer needs (patch parameters, the applier,
//! remembering our writes, [`OwnWrites`]) live here, below the writes (`status`,
//! `attached::sync`) and the passes (`reconcile`) that add their methods to it.

mod own_writes;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::api::{ObjectMeta, PatchParams};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource};

use crate::apply::{Applier, ChildCache};
use crate::attached::AttachedCache;
use crate::implementation::GatewayImplementation;
use crate::kind::GatewayKind;
use crate::logging::WarningLimit;
use crate::metrics::Metrics;
use crate::ownership::{self, OwnedConditions};
use crate::policies::PolicyCache;
use crate::related::RelatedView;
use crate::retry::Streak;
pub(crate) use own_writes::OwnWrites;

/// Our last writes of the gateways and classes of kind `K` (see [`OwnWrites`]).
pub(crate) struct KindWrites<K: GatewayKind> {
    pub(crate) gateways: OwnWrites<K::Gateway>,
    pub(crate) classes: OwnWrites<K::Class>,
}

impl<K: GatewayKind> Default for KindWrites<K> {
    fn default() -> Self {
        Self {
            gateways: OwnWrites::default(),
            classes: OwnWrites::default(),
        }
    }
}

/// Everything the reconcile functions share: one value per operator.
pub struct Shared<K: GatewayKind> {
    pub(crate) client: Client,
    pub(crate) implementation: Arc<dyn GatewayImplementation<K>>,
    pub(crate) controller: String,
    pub(crate) field_manager: String,
    /// The field manager of gateway and attached status writes, whose managedFields
    /// record says which conditions are ours (see `ownership`).
    pub(crate) status_manager: String,
    pub(crate) controller_id: String,
    pub(crate) classes: Store<K::Class>,
    pub(crate) gateways: Store<K::Gateway>,
    pub(crate) children: Vec<ChildCache>,
    /// Each child kind and whether it is installed, for [`Context::serves`](crate::Context::serves).
    pub(crate) child_kinds: Arc<[crate::children::ChildKindState]>,
    pub(crate) related: Arc<RelatedView>,
    /// Who publishes our Events (see [`Shared::publish_transitions`]).
    pub(crate) reporter: Reporter,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) failures: Mutex<HashMap<ObjectRef<K::Gateway>, Streak>>,
    /// Failures in a row of each class (by name), and when the last one was.
    pub(crate) class_failures: Mutex<HashMap<String, (u32, std::time::Instant)>>,
    /// What our last write of each gateway and class returned, while the cache lags
    /// behind it.
    pub(crate) own_writes: KindWrites<K>,
    pub(crate) owned_condition_types: Vec<String>,
    /// The attached kind the implementation declared, if any.
    pub(crate) attached: Option<Arc<AttachedCache>>,
    /// The policy kinds the implementation declared.
    pub(crate) policies: Arc<[Arc<PolicyCache>]>,
    /// One warning per object per window (see [`WarningLimit`]).
    pub(crate) warnings: WarningLimit,
}

pub(crate) fn object_name<R: Resource>(object: &R) -> String {
    match object.meta().namespace.as_deref() {
        Some(ns) => format!("{ns}/{}", object.meta().name.as_deref().unwrap_or_default()),
        None => object.meta().name.clone().unwrap_or_default(),
    }
}

impl<K: GatewayKind> Shared<K> {
    pub(crate) fn patch_params(&self) -> PatchParams {
        PatchParams {
            field_manager: Some(self.field_manager.clone()),
            ..Default::default()
        }
    }

    /// Parameters of gateway and attached status writes: our status field manager.
    pub(crate) fn status_params(&self) -> PatchParams {
        PatchParams {
            field_manager: Some(self.status_manager.clone()),
            ..Default::default()
        }
    }

    /// The condition types on `object` (a gateway or an attached object) that our
    /// status writes own.
    pub(crate) fn owned_conditions(&self, object: &ObjectMeta) -> OwnedConditions {
        ownership::owned_conditions(object, &self.status_manager, &self.controller)
    }

    pub(crate) fn applier(&self) -> Applier<'_> {
        Applier {
            client: &self.client,
            field_manager: &self.field_manager,
            controller_id: &self.controller_id,
            caches: &self.children,
        }
    }

    /// Keeps what a write of `before` returned, for the reconciles that start before
    /// the cache sees it (see [`OwnWrites`]).
    pub(crate) fn remember(&self, before: &K::Gateway, mut written: K::Gateway) -> Arc<K::Gateway> {
        // As the gateway cache keeps it.
        ownership::keep_status_ownership(written.meta_mut(), &self.status_manager);
        self.own_writes
            .gateways
            .record(before, written, &self.gateways)
    }
}
