//! Simulated cluster behaviour that runs after writes: Deployment status after a delay.
//! (Garbage collection, namespace cleanup and CRD establishment run inside the write
//! pipeline, `write.rs`, so they are visible as soon as the triggering request returns.)

use std::sync::{Arc, Mutex};

use crate::store::{ObjKey, State};
use crate::strategy::deployment;

/// Schedules simulated status for Deployments written with a non-zero readiness delay.
pub(crate) fn schedule(state: &Arc<Mutex<State>>, pending: Vec<ObjKey>) {
    if pending.is_empty() {
        return;
    }
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        // No runtime (direct store access from synchronous code): apply now.
        let mut st = state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (ns, name) in pending {
            deployment::simulate_status(&mut st, &ns, &name);
        }
        return;
    };
    let delay = state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .config
        .deployment_ready_delay;
    let weak = Arc::downgrade(state);
    handle.spawn(async move {
        tokio::time::sleep(delay).await;
        if let Some(state) = weak.upgrade() {
            let mut st = state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (ns, name) in pending {
                deployment::simulate_status(&mut st, &ns, &name);
            }
        }
    });
}
