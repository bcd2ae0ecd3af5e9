//! An in-memory Kubernetes API server for controller tests.
//!
//! No kube-apiserver can run in our CI (no container engine, no etcd), yet an operator's
//! value is its reconcile loop: watches, server-side apply, status, finalizers, garbage
//! collection, a silent steady state. `aigateway-testkit` emulates the parts of the
//! Kubernetes API those loops touch, faithfully enough that kube-rs clients and real
//! `kubectl` cannot tell the difference for the supported operations.
//!
//! An [`ApiServer`] keeps objects in memory and is reachable two ways:
//! - in process: [`ApiServer::client`] gives a `kube::Client` backed directly by the
//!   server's `tower::Service` ([`ApiServer::service`]), no sockets involved;
//! - over HTTP: [`ApiServer::serve_http`] listens on 127.0.0.1 and writes a kubeconfig
//!   ([`HttpServer::write_kubeconfig`]) for `kubectl` or an out-of-process operator. The
//!   binary `aigateway-testkit serve [--port P] [--kubeconfig FILE] [--crds DIR]` does
//!   the same until Ctrl-C.
//!
//! # What it emulates
//! - **Discovery** (`/version`, `/api`, `/api/v1`, `/apis`, `/apis/<group>/<version>`)
//!   and an `/openapi/v3` index whose PATCH operations advertise `fieldValidation`, so
//!   kubectl validates on the server. Aggregated discovery requests get the legacy
//!   documents, which kubectl accepts as a fallback.
//! - **Kinds**: Namespace, ConfigMap, Secret, Service, ServiceAccount, Event (core/v1 and
//!   events.k8s.io/v1, one storage seen through both APIs as on a cluster, so
//!   `kubectl describe` shows events a kube `Recorder` published), Deployment (apps/v1,
//!   with the `scale` subresource for `kubectl scale`), Lease (coordination.k8s.io/v1),
//!   CustomResourceDefinition (apiextensions.k8s.io/v1), and storage-only kinds so that
//!   install bundles and examples apply: Pod (stays as created: nothing runs it), and
//!   RBAC (ClusterRole, ClusterRoleBinding, Role, RoleBinding). Creating a CRD (through the
//!   API, [`ApiServer::install_crd`] or `kubectl apply`) starts serving its resource,
//!   namespaced or cluster-scoped, with or without a status subresource, and sets the
//!   `NamesAccepted` and `Established` conditions; deleting it removes its objects.
//! - **Reads**: get; list with label selectors (`=`, `==`, `!=`, `in`, `notin`, exists,
//!   `!`exists), field selectors (`metadata.name`, `metadata.namespace`, the fields a
//!   resource supports on a real API server such as Event `involvedObject.*` or a CRD's
//!   `selectableFields`; 400 for any other),
//!   `limit`/`continue`; `PartialObjectMetadata` and `meta.k8s.io/v1` `Table` responses
//!   (columns from the CRD's `additionalPrinterColumns`; kubectl's usual columns for
//!   Deployments, Services, ConfigMaps, Secrets and Namespaces; NAME and AGE otherwise),
//!   also for watches (`kubectl get -w`).
//! - **Writes**: create (with `generateName`), update, delete, deletecollection, and
//!   patch: JSON merge (RFC 7386), JSON patch (RFC 6902 including `test`), strategic
//!   merge for the built-in lists (containers, env, ports, volumes, volumeMounts,
//!   conditions, ... merged by key; `$patch: delete`/`replace`), and server-side apply
//!   (`fieldManager` required, `force`, create when absent, `managedFields` per manager
//!   and operation, 409 conflicts naming field and manager, removal of fields a manager
//!   stops applying). `dryRun=All` on every write; `fieldValidation` Strict/Warn/Ignore.
//! - **Metadata semantics**: a global monotonic `resourceVersion`; 409 on a stale one;
//!   `uid`, `creationTimestamp`; `generation` bumped only when something outside
//!   `metadata` (and `status`, when there is a status subresource) changes, for CRDs,
//!   custom resources and Deployments; object names, label keys and values, and
//!   annotation keys validated as the API server does (422), and `events.k8s.io/v1`
//!   Event notes longer than 1,024 bytes refused (422); writes that change nothing
//!   are not stored and emit no event (the steady state stays silent, as on a cluster).
//! - **Status subresource**: writes to the main resource keep the stored `status`;
//!   writes to `/status` change only `status`.
//! - **Deletion**: finalizers keep an object with `deletionTimestamp` until they are
//!   removed; owner references are garbage collected (`Background` cascade by default,
//!   `Foreground` with the `foregroundDeletion` finalizer, `Orphan`); deleting a
//!   namespace deletes its contents, and it stays `Terminating` while finalizers hold
//!   something in it. `default`, `kube-system` and `kube-public` cannot be deleted.
//! - **Watch**: `resourceVersion`, `allowWatchBookmarks`, `timeoutSeconds`, label and
//!   field selectors (objects moving in or out of a selector appear as ADDED/DELETED),
//!   `sendInitialEvents` streaming lists, and a `410 Expired` error event for a
//!   resourceVersion older than the retained history
//!   ([`ApiServerBuilder::watch_history`]).
//! - **Custom resource schemas**: `openAPIV3Schema` validation (type, required, enum,
//!   minimum/maximum, exclusive bounds, multipleOf, minItems/maxItems, uniqueItems,
//!   minLength/maxLength, pattern, format int32/int64/date-time/..., additionalProperties,
//!   nullable, x-kubernetes-int-or-string, x-kubernetes-preserve-unknown-fields,
//!   allOf/anyOf/oneOf/not) answering 422 `Invalid` with field causes worded like the
//!   real server; defaulting from `default`; pruning of unknown fields;
//!   `x-kubernetes-list-type: map|set` for server-side apply merging.
//! - **Errors** are `metav1.Status` objects with code and reason (400, 403, 404, 405,
//!   409, 410, 415, 422 and injected codes).
//! - **Simulated cluster behaviour**: Deployments get a healthy status
//!   (observedGeneration, replicas, updated/ready/available replicas, `Available` and
//!   `Progressing` conditions) after a configurable delay, default immediately
//!   ([`ApiServerBuilder::deployment_ready_delay`], switch off with
//!   [`ApiServerBuilder::simulate_deployments`]); namespaces `default`, `kube-system`
//!   and `kube-public` exist.
//! - **A fake LLM provider** next to it ([`fake_provider`]): OpenAI-compatible chat
//!   completions and models on loopback, logging only a fingerprint of each key.
//! - **Test hooks**: counters by verb, group, resource and field manager
//!   ([`ApiServer::stats`], and `GET /testkit/stats` over HTTP, `DELETE` to reset),
//!   a request log
//!   ([`ApiServer::requests`]), fault injection ([`Faults`]: fail the next N or a
//!   fraction of matching requests, add latency, cut watches, compact history to force
//!   410) and direct store access ([`ApiServer::get_object`], [`ApiServer::put_object`],
//!   [`ApiServer::delete_object`]) that neither counts nor faults.
//!
//! # What it deliberately does not do, and why that is safe for controller tests
//! - **No authentication, RBAC enforcement or admission webhooks.** Every request is
//!   allowed (but [`ApiServer::serve_https_with_token`] answers 401 to requests without
//!   its token, so that a kubeconfig can be private). Controller logic does not depend
//!   on being authorized; RBAC manifests are stored so install bundles apply, and their
//!   correctness belongs to an e2e test on a real cluster.
//! - **No scheduling, kubelet or ReplicaSets; Pods are only stored.** Deployments only get a simulated
//!   status. Operators watch the Deployment's status, not its pods, so the loop sees
//!   the same signals; use the delay or [`ApiServer::put_object`] to script rollouts.
//! - **No schemas for built-in kinds.** Built-in objects are stored as sent plus the
//!   defaults controllers notice (Deployment `replicas`, `strategy`,
//!   `revisionHistoryLimit`, `progressDeadlineSeconds` and the pod template's defaults
//!   such as `imagePullPolicy`, `dnsPolicy`, port `protocol`; Service `type`, port
//!   `protocol`/`targetPort`, `clusterIP`; Secret `type` and `stringData`; Namespace
//!   phase). Mistyped fields in them are not rejected; render built-ins from typed
//!   `k8s-openapi` structs and that class of bug cannot occur. Custom resources, whose
//!   schemas are the operator's own contract, are validated fully.
//! - **No CRD version conversion and no CEL (`x-kubernetes-validations`).** All served
//!   versions read and write the same stored object. Tests of one version are unaffected.
//! - **Simplified server-side apply**: field ownership follows the structured-merge-diff
//!   rules for maps, atomic lists, and associative/set lists known from the schema or the
//!   built-in table, but not every built-in type's merge keys; no client-side to
//!   server-side apply ownership migration. Conflicts, force, and removal of fields a
//!   manager stopped applying, which operators rely on, behave as on a cluster.
//! - **Synchronous garbage collection and namespace cleanup.** They happen within the
//!   triggering request rather than some time after it, which a controller must tolerate
//!   anyway (a cluster may be fast); tests need no polling for them. Objects whose
//!   owner never existed are not collected (only the removal of an owner triggers
//!   collection).
//! - **Little protobuf, no CBOR, no aggregated discovery documents, no `/openapi/v2`.**
//!   Responses are JSON, which every client accepts, and clients fall back to legacy
//!   discovery. Protobuf request bodies are decoded only for what `kubectl create
//!   namespace|configmap|secret|serviceaccount|deployment` sends; use `kubectl apply`
//!   otherwise.
//! - **Server-side apply through the events.k8s.io view of Events** merges the applied
//!   configuration without field ownership (kube's event `Recorder` uses create and
//!   merge patch, which behave exactly).
//! - **Single process, no persistence.** A restart starts empty.
//!
//! # Example
//! A complete test of a small piece of controller code: it converges, stays silent in
//! steady state, survives an injected error, and rejects invalid input.
//!
//! ```
//! use aigateway_testkit::{ApiServer, RequestMatch};
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kube::api::{Api, DynamicObject, Patch, PatchParams};
//! use serde_json::json;
//!
//! /// The code under test: makes sure the config map exists with the desired port.
//! async fn ensure_config(api: &Api<ConfigMap>, port: u16) -> kube::Result<ConfigMap> {
//!     let desired = json!({
//!         "apiVersion": "v1", "kind": "ConfigMap",
//!         "metadata": {"name": "app-config"},
//!         "data": {"port": port.to_string()},
//!     });
//!     api.patch("app-config", &PatchParams::apply("my-operator"), &Patch::Apply(&desired))
//!         .await
//! }
//!
//! #[tokio::main]
//! async fn main() {
//!     let server = ApiServer::new();
//!     let api: Api<ConfigMap> = Api::default_namespaced(server.client());
//!
//!     // Converges, and a second pass changes nothing (no new resourceVersion).
//!     ensure_config(&api, 8080).await.unwrap();
//!     let rv = server.resource_version();
//!     ensure_config(&api, 8080).await.unwrap();
//!     assert_eq!(server.resource_version(), rv);
//!     assert_eq!(server.stats().writes_by_manager("my-operator"), 2);
//!
//!     // A transient server error surfaces, and the next attempt succeeds.
//!     server.faults().fail_next(1, RequestMatch::any().verb("patch"), 503);
//!     assert!(ensure_config(&api, 9090).await.is_err());
//!     ensure_config(&api, 9090).await.unwrap();
//!     let stored: ConfigMap = server.get(Some("default"), "app-config").unwrap();
//!     assert_eq!(stored.data.unwrap()["port"], "9090");
//!
//!     // Custom resources are validated against their CRD schema.
//!     server.install_crd(r#"
//! apiVersion: apiextensions.k8s.io/v1
//! kind: CustomResourceDefinition
//! metadata: {name: gadgets.example.com}
//! spec:
//!   group: example.com
//!   scope: Namespaced
//!   names: {kind: Gadget, plural: gadgets}
//!   versions:
//!   - name: v1
//!     served: true
//!     storage: true
//!     schema:
//!       openAPIV3Schema:
//!         type: object
//!         properties:
//!           spec:
//!             type: object
//!             properties:
//!               port: {type: integer, minimum: 1}
//! "#).await.unwrap();
//!     let gadgets: Api<DynamicObject> = Api::default_namespaced_with(
//!         server.client(),
//!         &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk("example.com", "v1", "Gadget")),
//!     );
//!     let bad = json!({"apiVersion": "example.com/v1", "kind": "Gadget",
//!         "metadata": {"name": "g"}, "spec": {"port": 0}});
//!     let err = gadgets.patch("g", &PatchParams::apply("my-operator"), &Patch::Apply(&bad))
//!         .await
//!         .unwrap_err();
//!     match err {
//!         kube::Error::Api(status) => {
//!             assert_eq!(status.code, 422);
//!             assert!(status.message.contains("spec.port in body should be greater than or equal to 1"));
//!         }
//!         other => panic!("unexpected {other}"),
//!     }
//! }
//! ```

#![warn(missing_docs)]

pub mod cut_proxy;
mod defaults;
mod discovery;
mod error;
mod events;
pub mod fake_provider;
mod faults;
pub mod imports;
mod patch;
mod proto;
pub mod real_cluster;
mod registry;
mod schema;
mod selector;
mod server;
mod simulate;
mod stats;
mod store;
mod strategy;
pub mod third_party;
mod watch;
mod write;

pub use faults::{Faults, RequestMatch};
pub use server::{ApiServer, ApiServerBuilder, HttpServer, IntoCrd, parse_manifests};
pub use stats::{RequestRecord, StatCount, Stats, WRITE_VERBS};

use std::net::SocketAddr;
use std::path::PathBuf;

/// Errors of the testkit's own API (not the HTTP API, which answers `metav1.Status`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The HTTP listener could not be bound.
    #[error("could not listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTPS endpoint's certificate could not be made.
    #[error("could not set up TLS for the API server: {0}")]
    Tls(String),
    /// A file could not be read or written.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Text was neither valid YAML nor JSON.
    #[error("invalid YAML or JSON manifest: {0}")]
    Parse(String),
    /// The object's apiVersion and kind are not served (install its CRD first).
    #[error("no resource serves {api_version} {kind}; install its CustomResourceDefinition first")]
    UnknownKind {
        /// The object's apiVersion.
        api_version: String,
        /// The object's kind.
        kind: String,
    },
    /// The server refused a direct write, as it would refuse the same request over the API.
    #[error("the API server refused the object ({code} {reason}): {message}")]
    Api {
        /// HTTP status code.
        code: u16,
        /// `metav1.Status` reason.
        reason: String,
        /// `metav1.Status` message.
        message: String,
    },
}
