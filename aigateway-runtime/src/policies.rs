//! Policies (Gateway API GEP-713, direct attachment) in the loop: the watch and index of
//! each declared policy kind (`index`), the entry a policy gets per target (`rules`:
//! pure), and the policies' own controller, which writes `status.ancestors` (`sync`).
//!
//! The declarations an implementation makes live in
//! [`attached`](crate::attached) ([`PolicyKind`](crate::attached::PolicyKind),
//! [`PolicyDecision`](crate::attached::PolicyDecision)). Data flow: a policy event
//! re-runs the gateways it names (now and before) and the other policies naming them;
//! a gateway pass reads the policies in effect on it
//! ([`Context::policies`](crate::Context::policies)) and records its decisions
//! ([`record`]); a recorded change, a gateway event or the policy's own event re-runs
//! the policy's reconcile, the only writer of its status.

mod cached;
mod index;
mod rules;
mod sync;

pub(crate) use cached::CachedPolicy;
pub(crate) use index::{PolicyCache, PolicyWatch, TargetObject, watch};
pub(crate) use sync::{PolicyContext, not_ours, reconcile, record};
