//! The generic, class-aware reconcile loop for AI gateway operators.
//!
//! Implement [`GatewayImplementation`] for your proxy, hand it to [`Operator`], and the
//! runtime does the rest: it claims the gateways of your classes (Gateway API's
//! GatewayClass contract, default class included), server-side applies the children
//! you describe with an owner reference and standard labels (never over an object the
//! gateway does not control: that is reported as `NameConflict` and nothing is applied),
//! prunes the ones you no longer describe, keeps a finalizer on classes in use so that
//! deleting one is not an outage, writes `Accepted`, `ResolvedRefs`, `Programmed` and `Ready`
//! conditions with `observedGeneration` only when they change, emits events on
//! transitions, exports metrics, and runs behind leader election with its own lease
//! deadline. `/readyz` fails while a watch cannot list. Objects your desired state reads
//! through [`Context::get`] re-run exactly the gateways that read them when they change;
//! Secrets and ConfigMaps are cached as metadata, with content only for what was read
//! (see [`RelatedWatch`]).
//!
//! One loop serves every gateway kind: [`AiGatewayKind`] (the default),
//! [`ToolGatewayKind`] and [`AgentGatewayKind`](kind::AgentGatewayKind); one [`Operator`] serves one
//! implementation of each kind it is given, behind one admin server, one set of metrics
//! and one Lease (see [`Operator::gateway`]). Objects that attach
//! themselves to gateways, such as ToolRoutes, are declared once with
//! [`GatewayImplementation::attached`]: the runtime watches them, offers them to
//! `desired_state` ([`Context::attached`]) and writes their status from the
//! implementation's [`AttachedDecision`] (see [`attached`]).
//!
//! What most classes need besides the trait: [`RelatedWatch::named`] to watch one
//! object name per namespace (an API-key Secret) instead of the whole kind,
//! [`roll_pods_on`] to roll pods when content they read at start changes, the standard
//! [`RefProblem`] constructors ([`problems`]), [`ClusterRules`](rbac::ClusterRules) for the ClusterRole
//! ([`rbac`]), and with the `testing` feature the test support of `testing` (spawn an
//! operator against `aigateway-testkit`, wait, check that the steady state writes
//! nothing).
//!
//! The root holds what every class names; the modules are contracts with the rest:
//! [`implementation`] (the trait's less common values: aliases, cleanup, caches of
//! related objects), [`attached`] (objects that attach to gateways, and a gateway's
//! consent), [`kind`] (the gateway kinds), [`class`] (the claim of a gateway by its
//! class, for offline tools), [`operator`] (running it in a binary: serving, metrics,
//! signals, kube errors in one line), [`logging`], [`names`] (labels, annotations,
//! finalizers), [`rollout`], [`problems`], [`rbac`], [`reference_grants`], [`release`]
//! (uninstall) and, with the `testing` feature, `testing`.
//!
//! The data flow of one gateway, each step in its own module:
//!
//! ```text
//! watch events ─▶ triggers (controllers) ─▶ claim (class) ─▶ desired_state (your code)
//!   ─▶ apply + prune (apply) ─▶ observe children (caches) ─▶ readiness (your code)
//!   ─▶ conditions (conditions), written only if different (status)
//! ```
//!
//! # A complete implementation
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use aigateway_api::AiGateway;
//! use aigateway_runtime::{Context, DesiredState, GatewayImplementation, ImplementationError, Operator};
//! use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
//! use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec, PodTemplateSpec};
//! use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
//! use kube::ResourceExt;
//!
//! struct EchoProxy;
//!
//! #[async_trait::async_trait]
//! impl GatewayImplementation for EchoProxy {
//!     fn controller_name(&self) -> &str {
//!         "example.com/echo-proxy"
//!     }
//!
//!     async fn desired_state(&self, gateway: &AiGateway, _ctx: &Context) -> Result<DesiredState, ImplementationError> {
//!         let name = gateway.name_any();
//!         let models: Vec<String> = gateway.spec.ai_models.iter().map(|m| format!("{}/{}", m.provider, m.name)).collect();
//!         let labels = BTreeMap::from([("app".to_owned(), name.clone())]);
//!         let config = ConfigMap {
//!             metadata: ObjectMeta { name: Some(format!("{name}-models")), ..Default::default() },
//!             data: Some(BTreeMap::from([("models".to_owned(), models.join("\n"))])),
//!             ..Default::default()
//!         };
//!         let deployment = Deployment {
//!             metadata: ObjectMeta { name: Some(name.clone()), ..Default::default() },
//!             spec: Some(DeploymentSpec {
//!                 selector: LabelSelector { match_labels: Some(labels.clone()), ..Default::default() },
//!                 template: PodTemplateSpec {
//!                     metadata: Some(ObjectMeta { labels: Some(labels), ..Default::default() }),
//!                     spec: Some(PodSpec {
//!                         containers: vec![Container { name: "proxy".into(), image: Some("example/echo:1".into()), ..Default::default() }],
//!                         ..Default::default()
//!                     }),
//!                 },
//!                 ..Default::default()
//!             }),
//!             ..Default::default()
//!         };
//!         Ok(DesiredState::new().with(&config).with(&deployment).with_url(gateway.service_url().unwrap_or_default()))
//!     }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = kube::Client::try_default().await?;
//! Operator::new(client).gateway(EchoProxy).admin("0.0.0.0:8080".parse()?).run().await?;
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]
#![warn(unnameable_types)]

// The public face is the root's re-exports and the contract modules below (at most 30
// names: the `public_face` test counts them); everything else is the runtime's own and
// free to move.
mod admin;
mod apply;
pub mod attached;
mod children;
pub mod class;
mod conditions;
mod controllers;
mod dynamic;
mod group_index;
pub mod implementation;
pub mod kind;
mod kube_error;
mod leader;
pub mod logging;
mod metrics;
pub mod names;
pub mod operator;
mod ownership;
mod policies;
pub mod problems;
pub mod rbac;
mod reconcile;
pub mod reference_grants;
mod related;
pub mod release;
mod retry;
pub mod rollout;
mod secure_metrics;
mod shared;
mod status;
#[cfg(feature = "testing")]
pub mod testing;
mod watches;
mod work_queue;

pub use attached::{AttachedDecision, AttachedKind};
pub use implementation::{
    Context, DesiredState, GatewayImplementation, ImplementationError, Observed, Readiness,
    RefProblem, RelatedWatch, deployments_rolled_out,
};
pub use kind::{AiGatewayKind, ToolGatewayKind};
pub use operator::{LeaderElection, Operator, OperatorError};
pub use rollout::roll_pods_on;
