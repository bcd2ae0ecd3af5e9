//! The [`ApiServer`]: request routing, content negotiation, counters, faults, and the
//! in-process and HTTP transports.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State as AxState;
use axum::response::Response;
use http::{HeaderValue, Method, Request, StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::discovery;
use crate::error::ApiError;
use crate::faults::{Faults, RequestFacts, reason_for};
use crate::registry::ResourceInfo;
use crate::selector::{FieldSelector, LabelSelector};
use crate::stats::{CountKey, RequestRecord, Stats};
use crate::store::{Config, ListOpts, State};
use crate::watch::{self, WatchParams};
use crate::write::{DeleteOpts, PatchType, Sub, Validation, WriteOpts, WriteResult};
use crate::{Error, events, simulate};

const MAX_BODY: usize = 64 * 1024 * 1024;
const MAX_LOG: usize = 100_000;

#[derive(Default)]
struct Recorder {
    counts: BTreeMap<CountKey, u64>,
    failures: BTreeMap<u16, BTreeMap<CountKey, u64>>,
    busy_micros: BTreeMap<String, u64>,
    log: Vec<RequestRecord>,
}

impl Recorder {
    fn clear(&mut self) {
        *self = Recorder::default();
    }
}

/// The latency model: a fixed delay per request by verb, as a real API server (etcd
/// behind it) takes milliseconds where the in-memory store takes microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct LatencyModel {
    /// `get` and `list`.
    reads: Duration,
    /// `create`, `update`, `patch`, `delete`, `deletecollection`.
    writes: Duration,
}

impl LatencyModel {
    /// The delay for one request. Watches are not delayed: on a real server an event
    /// reaches watchers as soon as its write commits, and the write paid the latency.
    fn delay(&self, verb: &str) -> Duration {
        match verb {
            "get" | "list" => self.reads,
            "create" | "update" | "patch" | "delete" | "deletecollection" => self.writes,
            _ => Duration::ZERO,
        }
    }
}

pub(crate) struct Inner {
    pub state: Arc<Mutex<State>>,
    faults: Faults,
    latency: LatencyModel,
    recorder: Mutex<Recorder>,
}

/// An in-memory Kubernetes API server. Cheap to clone: clones share the same store.
///
/// See the [crate documentation](crate) for what it emulates.
#[derive(Clone)]
pub struct ApiServer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self
            .inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f.debug_struct("ApiServer")
            .field("resource_version", &st.rv)
            .field("objects", &st.object_count())
            .finish()
    }
}

impl Default for ApiServer {
    fn default() -> Self {
        Self::new()
    }
}

/// Builds an [`ApiServer`] with non-default behaviour.
#[derive(Clone, Debug)]
pub struct ApiServerBuilder {
    config: Config,
    latency: LatencyModel,
}

impl Default for ApiServerBuilder {
    fn default() -> Self {
        ApiServerBuilder {
            config: Config {
                deployment_ready_delay: Duration::ZERO,
                simulate_deployments: true,
                watch_history: 10_000,
            },
            latency: LatencyModel::default(),
        }
    }
}

impl ApiServerBuilder {
    /// How long after a Deployment change its simulated status follows (default: immediately).
    pub fn deployment_ready_delay(mut self, delay: Duration) -> Self {
        self.config.deployment_ready_delay = delay;
        self
    }
    /// Whether Deployments get a simulated status at all (default: true).
    pub fn simulate_deployments(mut self, on: bool) -> Self {
        self.config.simulate_deployments = on;
        self
    }
    /// How many events the watch history keeps (default 10,000); watches from an older
    /// resourceVersion get `410 Expired`.
    pub fn watch_history(mut self, events: usize) -> Self {
        self.config.watch_history = events.max(1);
        self
    }
    /// Models a real API server's request latency: every `get` and `list` is answered
    /// `reads` later, every write (`create`, `update`, `patch`, `delete`,
    /// `deletecollection`) `writes` later, for example 1 ms and 5 ms as an etcd-backed
    /// server takes (default: no delay). Watches are not delayed: their events arrive as
    /// soon as the write that caused them is stored. Requests wait concurrently, so a
    /// client with more requests in flight gets more done, as on a cluster. Counted in
    /// neither [`Stats::busy_micros`] nor the request log.
    pub fn request_latency(mut self, reads: Duration, writes: Duration) -> Self {
        self.latency = LatencyModel { reads, writes };
        self
    }
    /// Builds the server.
    pub fn build(self) -> ApiServer {
        let state = Arc::new(Mutex::new(State::new(self.config)));
        ApiServer {
            inner: Arc::new(Inner {
                faults: Faults::new(state.clone()),
                state,
                latency: self.latency,
                recorder: Mutex::new(Recorder::default()),
            }),
        }
    }
}

/// Input accepted by [`ApiServer::install_crd`]: YAML or JSON text, a JSON value, or a
/// typed `CustomResourceDefinition`.
pub trait IntoCrd {
    /// Converts into the CRD as JSON.
    fn into_crd(self) -> Result<Value, Error>;
}

impl IntoCrd for &str {
    fn into_crd(self) -> Result<Value, Error> {
        parse_manifest(self)
    }
}
impl IntoCrd for &String {
    fn into_crd(self) -> Result<Value, Error> {
        parse_manifest(self)
    }
}
impl IntoCrd for String {
    fn into_crd(self) -> Result<Value, Error> {
        parse_manifest(&self)
    }
}
impl IntoCrd for Value {
    fn into_crd(self) -> Result<Value, Error> {
        Ok(self)
    }
}
impl IntoCrd for &Value {
    fn into_crd(self) -> Result<Value, Error> {
        Ok(self.clone())
    }
}
impl IntoCrd
    for k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition
{
    fn into_crd(self) -> Result<Value, Error> {
        serde_json::to_value(&self).map_err(|e| Error::Parse(e.to_string()))
    }
}
impl IntoCrd for &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    fn into_crd(self) -> Result<Value, Error> {
        serde_json::to_value(self).map_err(|e| Error::Parse(e.to_string()))
    }
}

fn parse_manifest(text: &str) -> Result<Value, Error> {
    serde_json::from_str(text)
        .or_else(|_| serde_saphyr::from_str::<Value>(text))
        .map_err(|e| Error::Parse(e.to_string()))
}

/// Parses a YAML stream (documents separated by `---`) or JSON text into objects; empty
/// documents and `List` wrappers are flattened.
pub fn parse_manifests(text: &str) -> Result<Vec<Value>, Error> {
    let docs: Vec<Value> = match serde_json::from_str::<Value>(text) {
        Ok(v) => vec![v],
        Err(_) => {
            serde_saphyr::from_multiple::<Value>(text).map_err(|e| Error::Parse(e.to_string()))?
        }
    };
    let mut out = Vec::new();
    for d in docs {
        if d.is_null() {
            continue;
        }
        if d.get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| k.ends_with("List"))
            && let Some(items) = d.get("items").and_then(Value::as_array)
        {
            out.extend(items.iter().cloned());
        } else {
            out.push(d);
        }
    }
    Ok(out)
}

fn split_api_version(av: &str) -> (&str, &str) {
    match av.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", av),
    }
}

impl ApiServer {
    /// A server with the defaults: namespaces `default`, `kube-system` and `kube-public`,
    /// Deployments become available immediately, 10,000 events of watch history.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder for non-default behaviour.
    pub fn builder() -> ApiServerBuilder {
        ApiServerBuilder::default()
    }

    /// The server as a `tower::Service` (an axum `Router`) handling `http::Request`s.
    pub fn service(&self) -> axum::Router {
        axum::Router::new()
            .fallback(handle)
            .with_state(self.inner.clone())
    }

    /// An in-process `kube::Client` (default namespace `default`). Must be called inside
    /// a Tokio runtime.
    pub fn client(&self) -> kube::Client {
        self.client_in("default")
    }

    /// An in-process `kube::Client` whose default namespace is `namespace`. Must be
    /// called inside a Tokio runtime.
    pub fn client_in(&self, namespace: &str) -> kube::Client {
        kube::Client::new(self.service(), namespace)
    }

    /// Serves the API over HTTP on `addr` (use port 0 for a free port), to anyone who
    /// can connect: for tests.
    pub async fn serve_http(&self, addr: SocketAddr) -> Result<HttpServer, Error> {
        let listener = bind(addr).await?;
        let addr = listener
            .local_addr()
            .map_err(|source| Error::Bind { addr, source })?;
        Ok(self.serve(listener, addr, None))
    }

    /// Serves the API over HTTPS on `addr` (a self-signed certificate for 127.0.0.1 and
    /// localhost, made here) only to clients that present a bearer token made up here
    /// (random, 256 bits), which only [`HttpServer::kubeconfig_yaml`] holds, with the
    /// certificate (and the file [`HttpServer::write_kubeconfig`] writes, readable by its
    /// owner only): other users of the machine can connect to a loopback port too. Any
    /// other request is answered 401. HTTPS, because kubectl sends no credentials to a
    /// plain-HTTP server.
    pub async fn serve_https_with_token(&self, addr: SocketAddr) -> Result<HttpServer, Error> {
        let token: String = (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let tls_error = |e: &dyn std::fmt::Display| Error::Tls(e.to_string());
        let generated = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_owned(),
            "localhost".to_owned(),
        ])
        .map_err(|e| tls_error(&e))?;
        let key =
            rustls::pki_types::PrivateKeyDer::Pkcs8(generated.signing_key.serialize_der().into());
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(&e))?
        .with_no_client_auth()
        .with_single_cert(vec![generated.cert.der().clone()], key)
        .map_err(|e| tls_error(&e))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let listener = bind(addr).await?;
        let addr = listener
            .local_addr()
            .map_err(|source| Error::Bind { addr, source })?;
        let tls = TlsListener {
            tcp: listener,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        };
        Ok(self.serve(
            tls,
            addr,
            Some(Credentials {
                token,
                certificate: generated.cert.pem(),
            }),
        ))
    }

    fn serve<L>(
        &self,
        listener: L,
        addr: SocketAddr,
        credentials: Option<Credentials>,
    ) -> HttpServer
    where
        L: axum::serve::Listener,
        L::Addr: std::fmt::Debug,
    {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let router = match &credentials {
            Some(credentials) => self.service().layer(axum::middleware::from_fn_with_state(
                Arc::<str>::from(credentials.token.as_str()),
                require_token,
            )),
            None => self.service(),
        };
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        HttpServer {
            addr,
            credentials,
            shutdown: Some(tx),
            task: Some(task),
            server: self.clone(),
        }
    }

    /// Installs a CustomResourceDefinition (as `kubectl apply` would create it) and
    /// returns the stored CRD, with `Established` set. Re-installing replaces the spec.
    pub async fn install_crd(&self, crd: impl IntoCrd) -> Result<Value, Error> {
        let crd = crd.into_crd()?;
        self.apply_object(crd)
    }

    /// Creates or replaces every object in a YAML/JSON manifest stream, in order.
    pub fn apply_manifests(&self, text: &str) -> Result<Vec<Value>, Error> {
        parse_manifests(text)?
            .into_iter()
            .map(|o| self.apply_object(o))
            .collect()
    }

    /// Creates or replaces every manifest (`.yaml`, `.yml`, `.json`) in a directory.
    pub fn apply_dir(&self, dir: impl AsRef<Path>) -> Result<Vec<Value>, Error> {
        let dir = dir.as_ref();
        let io = |source| Error::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml" | "json")
                )
            })
            .collect();
        files.sort();
        let mut out = Vec::new();
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(|source| Error::Io {
                path: f.clone(),
                source,
            })?;
            out.extend(self.apply_manifests(&text)?);
        }
        Ok(out)
    }

    /// Creates the object, or updates it when it exists, through the normal write path
    /// (validation, defaulting) but without counting a request.
    fn apply_object(&self, obj: Value) -> Result<Value, Error> {
        let (info, version) = self.info_for(&obj)?;
        let ns = if info.namespaced {
            match obj.pointer("/metadata/namespace").and_then(Value::as_str) {
                Some(n) if !n.is_empty() => n.to_string(),
                _ => "default".to_string(),
            }
        } else {
            String::new()
        };
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let opts = WriteOpts {
            field_manager: "aigateway-testkit".into(),
            ..WriteOpts::default()
        };
        let mut st = self
            .inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let exists = st.get_raw(&info.key(), &ns, &name).is_some();
        let res = if exists {
            let mut o = obj;
            if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
            st.update(&info, &version, &ns, &name, Sub::Main, o, &opts)
        } else {
            st.create(&info, &version, &ns, obj, &opts)
        };
        let pending = st.finish_writes();
        drop(st);
        simulate::schedule(&self.inner.state, pending);
        res.map(|r| r.obj).map_err(api_err)
    }

    fn info_for(&self, obj: &Value) -> Result<(Arc<ResourceInfo>, String), Error> {
        let av = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
        self.info_for_kind(av, kind)
    }

    fn info_for_kind(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<(Arc<ResourceInfo>, String), Error> {
        let (g, v) = split_api_version(api_version);
        let st = self
            .inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        st.resource_for_kind(g, kind)
            .filter(|r| r.versions.iter().any(|x| x == v))
            .map(|r| (r, v.to_string()))
            .ok_or_else(|| Error::UnknownKind {
                api_version: api_version.to_string(),
                kind: kind.to_string(),
            })
    }

    /// Reads a stored object directly (no counters, no faults). `namespace` is ignored
    /// for cluster-scoped kinds.
    pub fn get_object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let (info, version) = self.info_for_kind(api_version, kind).ok()?;
        let st = self
            .inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let ns = if info.namespaced {
            namespace.unwrap_or("default")
        } else {
            ""
        };
        st.get(&info, &version, ns, name).ok()
    }

    /// Reads a stored object directly as a typed resource.
    pub fn get<K>(&self, namespace: Option<&str>, name: &str) -> Option<K>
    where
        K: kube::Resource<DynamicType = ()> + DeserializeOwned,
    {
        let v = self.get_object(&K::api_version(&()), &K::kind(&()), namespace, name)?;
        serde_json::from_value(v).ok()
    }

    /// Lists stored objects of a kind directly; `namespace: None` means all namespaces.
    pub fn list_objects(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Vec<Value> {
        let Ok((info, version)) = self.info_for_kind(api_version, kind) else {
            return Vec::new();
        };
        let st = self
            .inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let ns = namespace.filter(|_| info.namespaced);
        st.list(&info, &version, ns, &ListOpts::default())
            .ok()
            .and_then(|l| l.get("items").and_then(Value::as_array).cloned())
            .unwrap_or_default()
    }

    /// Stores an object directly, bypassing validation, defaulting and counters: the
    /// object (including `status`, which the Deployment simulation then leaves alone) is
    /// stored as given, with `uid` and `creationTimestamp` filled in when missing.
    /// Watchers see the change. Returns the stored object.
    pub fn put_object(&self, obj: Value) -> Result<Value, Error> {
        let (info, _) = self.info_for(&obj)?;
        let mut st = self
            .inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let res = st.put_direct(&info, obj);
        let pending = st.finish_writes();
        drop(st);
        simulate::schedule(&self.inner.state, pending);
        res.map_err(api_err)
    }

    /// Deletes an object directly, as a `DELETE` would (finalizers and garbage collection
    /// apply), without counters. Returns the object's last state, `None` if absent.
    pub fn delete_object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let (info, _) = self.info_for_kind(api_version, kind).ok()?;
        let mut st = self
            .inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        st.delete_direct(&info, namespace.unwrap_or("default"), name)
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .rv
    }

    /// Request counters by verb, group, resource and field manager. Every resource
    /// request counts, including dry runs, refused requests and injected failures;
    /// discovery and direct store access do not.
    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }

    /// Clears the counters, the handling times and the request log.
    pub fn reset_stats(&self) {
        self.inner
            .recorder
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// The request log (resource and non-resource requests), oldest first; the most
    /// recent 100,000 are kept.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.inner
            .recorder
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .log
            .clone()
    }

    /// Fault-injection hooks.
    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }
}

impl Inner {
    fn stats(&self) -> Stats {
        let recorder = self
            .recorder
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Stats::from_map(&recorder.counts)
            .with_failures_and_times(&recorder.failures, &recorder.busy_micros)
    }
}

fn api_err(e: ApiError) -> Error {
    Error::Api {
        code: e.code,
        reason: e.reason.to_string(),
        message: e.message,
    }
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, Error> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

/// What clients of an HTTPS endpoint need: the bearer token, and the certificate to
/// trust (PEM).
struct Credentials {
    token: String,
    certificate: String,
}

/// Connections after their TLS handshake. Handshakes run one at a time, each for 5 s at
/// most: enough for a loopback endpoint of a demo or a test.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, peer)) = self.tcp.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            if let Ok(Ok(tls)) =
                tokio::time::timeout(Duration::from_secs(5), self.acceptor.accept(tcp)).await
            {
                return (tls, peer);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// Answers 401, as a real API server does to an unauthenticated request, unless the
/// request carries `Authorization: Bearer <token>`.
async fn require_token(
    AxState(token): AxState<Arc<str>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Compared without an early exit, so the time taken does not tell how much matched.
    let matches = presented.is_some_and(|presented| {
        presented.len() == token.len()
            && presented
                .bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if matches {
        return next.run(request).await;
    }
    let status = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "Unauthorized", "reason": "Unauthorized", "code": 401,
    });
    Response::builder()
        .status(StatusCode::UNAUTHORIZED)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(status.to_string()))
        .unwrap_or_default()
}

/// A running HTTP endpoint of an [`ApiServer`]. Dropping it stops the server.
pub struct HttpServer {
    addr: SocketAddr,
    /// The bearer token clients must present and the certificate served, for HTTPS.
    credentials: Option<Credentials>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    server: ApiServer,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl HttpServer {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, or `https://` for
    /// [`serve_https_with_token`](ApiServer::serve_https_with_token).
    pub fn url(&self) -> String {
        let scheme = if self.credentials.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// A kubeconfig for this server (context `testkit`, namespace `default`; for HTTPS,
    /// the certificate to trust and the bearer token, else no credentials).
    pub fn kubeconfig_yaml(&self) -> String {
        use base64::Engine;
        let (authority, user) = match &self.credentials {
            Some(Credentials { token, certificate }) => (
                format!(
                    "\n    certificate-authority-data: {}",
                    base64::engine::general_purpose::STANDARD.encode(certificate)
                ),
                format!("{{token: {token}}}"),
            ),
            None => (String::new(), "{}".to_owned()),
        };
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: testkit\n  cluster:\n    server: {}{authority}\ncontexts:\n- name: testkit\n  context:\n    cluster: testkit\n    user: testkit\n    namespace: default\ncurrent-context: testkit\nusers:\n- name: testkit\n  user: {user}\npreferences: {{}}\n",
            self.url()
        )
    }

    /// Writes [`kubeconfig_yaml`](Self::kubeconfig_yaml) to `path`, readable and
    /// writable by its owner only (mode 0600, as kubectl keeps kubeconfigs), also when
    /// the file existed with wider permissions.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path.as_ref();
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            options.mode(0o600);
            // `mode` applies to a new file only: narrow an existing one before writing.
            if path.exists() {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                    .map_err(io)?;
            }
        }
        let mut file = options.open(path).map_err(io)?;
        std::io::Write::write_all(&mut file, self.kubeconfig_yaml().as_bytes()).map_err(io)
    }

    /// Stops accepting connections and waits for the server to stop. Open watch streams
    /// are ended first (in-process watchers of the same [`ApiServer`] see their stream
    /// end too and simply re-watch).
    pub async fn shutdown(mut self) {
        self.server.faults().cut_watches();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Decodes `application/x-www-form-urlencoded` query strings.
fn parse_query(q: &str) -> BTreeMap<String, String> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz");
                    match u8::from_str_radix(hex, 16) {
                        Ok(b) => {
                            out.push(b);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

fn json_response(code: u16, body: &Value) -> Response {
    let mut r = Response::new(Body::from(serde_json::to_vec(body).unwrap_or_default()));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn error_response(e: &ApiError) -> Response {
    json_response(e.code, &e.to_status())
}

/// A parsed resource request.
struct Target {
    group: String,
    version: String,
    namespace: Option<String>,
    resource: String,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_target(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => (String::new(), v.to_string(), rest),
        ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest),
        _ => return None,
    };
    let t = |namespace: Option<&str>, resource: &str, name: Option<&&str>, sub: Option<&&str>| {
        Some(Target {
            group: group.clone(),
            version: version.clone(),
            namespace: namespace.map(str::to_string),
            resource: resource.to_string(),
            name: name.map(|s| s.to_string()),
            sub: sub.map(|s| s.to_string()),
        })
    };
    match rest {
        [] => None,
        ["namespaces", ns, res, more @ ..]
            if !(more.is_empty() && matches!(*res, "status" | "finalize")) =>
        {
            if more.len() > 2 {
                return None;
            }
            t(Some(ns), res, more.first(), more.get(1))
        }
        [res, more @ ..] => {
            if more.len() > 2 {
                return None;
            }
            t(None, res, more.first(), more.get(1))
        }
    }
}

fn accept_has(req: &http::request::Parts, needle: &str) -> bool {
    req.headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(needle))
}

async fn handle(AxState(inner): AxState<Arc<Inner>>, req: Request<Body>) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return error_response(&ApiError::bad_request(format!(
                "could not read the request body: {e}"
            )));
        }
    };
    let path = parts.uri.path().to_string();
    let query = parse_query(parts.uri.query().unwrap_or(""));
    let mut record = RequestRecord {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        verb: String::new(),
        group: String::new(),
        version: String::new(),
        resource: String::new(),
        subresource: String::new(),
        namespace: String::new(),
        name: String::new(),
        field_manager: query.get("fieldManager").cloned().unwrap_or_default(),
        dry_run: query.get("dryRun").is_some_and(|d| d == "All"),
        status: 0,
    };
    let (response, busy) = match non_resource(&inner, &parts, &path) {
        Some(r) => (r, Duration::ZERO),
        None => resource_request(&inner, &parts, &path, &query, &body, &mut record).await,
    };
    record.status = response.status().as_u16();
    let mut rec = inner
        .recorder
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !record.verb.is_empty() {
        let key = (
            record.verb.clone(),
            record.group.clone(),
            record.resource.clone(),
            record.field_manager.clone(),
        );
        if record.status >= 400 {
            *rec.failures
                .entry(record.status)
                .or_default()
                .entry(key.clone())
                .or_default() += 1;
        }
        *rec.counts.entry(key).or_default() += 1;
        *rec.busy_micros.entry(record.verb.clone()).or_default() +=
            u64::try_from(busy.as_micros()).unwrap_or(u64::MAX);
    }
    rec.log.push(record);
    if rec.log.len() > MAX_LOG {
        let excess = rec.log.len() - MAX_LOG;
        rec.log.drain(..excess);
    }
    response
}

fn non_resource(inner: &Arc<Inner>, parts: &http::request::Parts, path: &str) -> Option<Response> {
    let path = path.trim_end_matches('/');
    let resources = || {
        inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .resources()
    };
    let not_found = || {
        error_response(&ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ))
    };
    if parts.method == Method::DELETE && path == "/testkit/stats" {
        let mut rec = inner
            .recorder
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        rec.clear();
        return Some(json_response(200, &Stats::default().to_json()));
    }
    if parts.method != Method::GET {
        return match path {
            "/version" | "/api" | "/apis" | "/testkit/stats" => {
                Some(error_response(&ApiError::new(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                )))
            }
            _ => None,
        };
    }
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    Some(match segs.as_slice() {
        ["version"] => json_response(200, &discovery::version()),
        ["healthz" | "livez" | "readyz"] => {
            let mut r = Response::new(Body::from("ok"));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            r
        }
        ["testkit", "stats"] => json_response(200, &inner.stats().to_json()),
        ["openapi", "v3"] => json_response(200, &discovery::openapi_v3_root(&resources())),
        ["openapi", "v3", "api", v] => match discovery::openapi_v3_gv(&resources(), "", v) {
            Some(d) => json_response(200, &d),
            None => not_found(),
        },
        ["openapi", "v3", "apis", g, v] => match discovery::openapi_v3_gv(&resources(), g, v) {
            Some(d) => json_response(200, &d),
            None => not_found(),
        },
        ["openapi", ..] => not_found(),
        ["api"] => json_response(200, &discovery::core_versions()),
        ["apis"] => json_response(200, &discovery::group_list(&resources())),
        ["api", v] => match discovery::resource_list(&resources(), "", v) {
            Some(d) => json_response(200, &d),
            None => not_found(),
        },
        ["apis", g] => match discovery::group(&resources(), g) {
            Some(d) => json_response(200, &d),
            None => not_found(),
        },
        ["apis", g, v] => match discovery::resource_list(&resources(), g, v) {
            Some(d) => json_response(200, &d),
            None => not_found(),
        },
        ["api", ..] | ["apis", ..] => return None,
        _ => not_found(),
    })
}

fn write_opts(
    query: &BTreeMap<String, String>,
    parts: &http::request::Parts,
) -> Result<WriteOpts, ApiError> {
    let explicit = query.get("fieldManager").filter(|m| !m.is_empty()).cloned();
    let ua_manager = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
        .to_string();
    let validation = match query.get("fieldValidation").map(String::as_str) {
        None | Some("") | Some("Warn") => Validation::Warn,
        Some("Strict") => Validation::Strict,
        Some("Ignore") => Validation::Ignore,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation must be one of Ignore, Warn, Strict, got {other:?}"
            )));
        }
    };
    let dry_run = match query.get("dryRun").map(String::as_str) {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: {other:?}: supported values: \"All\""
            )));
        }
    };
    Ok(WriteOpts {
        dry_run,
        explicit_manager: explicit.is_some(),
        field_manager: explicit.unwrap_or(ua_manager),
        force: query.get("force").is_some_and(|f| f == "true"),
        validation,
    })
}

fn list_opts(
    query: &BTreeMap<String, String>,
    info: &ResourceInfo,
    version: &str,
) -> Result<ListOpts, ApiError> {
    let fields = FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str))
        .map_err(ApiError::bad_request)?;
    fields
        .check_supported(info, version)
        .map_err(ApiError::bad_request)?;
    if let Some(rv) = query.get("resourceVersion")
        && !rv.is_empty()
        && rv.parse::<u64>().is_err()
    {
        return Err(ApiError::bad_request(format!(
            "invalid resource version: resourceVersion: Invalid value: {rv:?}: strconv.ParseUint: parsing {rv:?}: invalid syntax"
        )));
    }
    Ok(ListOpts {
        labels: LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))
            .map_err(ApiError::bad_request)?,
        fields,
        limit: match query.get("limit") {
            Some(l) if !l.is_empty() => Some(
                l.parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
            ),
            _ => None,
        },
        continue_token: query.get("continue").cloned(),
    })
}

/// Answers a resource request, and how long the server was busy with it (without the
/// modelled and injected delays).
async fn resource_request(
    inner: &Arc<Inner>,
    parts: &http::request::Parts,
    path: &str,
    query: &BTreeMap<String, String>,
    body: &[u8],
    record: &mut RequestRecord,
) -> (Response, Duration) {
    let arrived = Instant::now();
    let Some(t) = parse_target(path) else {
        let response = error_response(&ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
        return (response, arrived.elapsed());
    };
    let is_watch = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    let verb = match (&parts.method, t.name.is_some()) {
        (&Method::GET, true) => "get",
        (&Method::GET, false) if is_watch => "watch",
        (&Method::GET, false) => "list",
        (&Method::POST, false) => "create",
        (&Method::PUT, true) => "update",
        (&Method::PATCH, true) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => "",
    };
    record.verb = verb.to_string();
    record.group = t.group.clone();
    record.version = t.version.clone();
    record.resource = t.resource.clone();
    record.subresource = t.sub.clone().unwrap_or_default();
    record.namespace = t.namespace.clone().unwrap_or_default();
    record.name = t.name.clone().unwrap_or_default();
    let verdict = inner.faults.decide(&RequestFacts {
        verb,
        group: &t.group,
        resource: &t.resource,
        subresource: &record.subresource,
        namespace: &record.namespace,
        name: &record.name,
    });
    let busy_before = arrived.elapsed();
    // The delay comes before the request is handled: a write is stored (and its watch
    // events sent) at the end of its latency, as a real server commits to etcd and
    // then answers.
    let delay = verdict.latency + inner.latency.delay(verb);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let handling = Instant::now();
    let response = if let Some(code) = verdict.fail {
        error_response(&ApiError::new(
            code,
            reason_for(code),
            format!("injected fault: {verb} {} failed with {code}", t.resource),
        ))
    } else if verb.is_empty() {
        error_response(&ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        ))
    } else {
        match dispatch(inner, parts, &t, verb, query, body) {
            Ok(r) => r,
            Err(e) => error_response(&e),
        }
    };
    (response, busy_before + handling.elapsed())
}

fn dispatch(
    inner: &Arc<Inner>,
    parts: &http::request::Parts,
    t: &Target,
    verb: &str,
    query: &BTreeMap<String, String>,
    body: &[u8],
) -> Result<Response, ApiError> {
    let info = inner
        .state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .resource(&t.group, &t.version, &t.resource)?;
    if t.namespace.is_some() && !info.namespaced {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    if !info.namespaced && t.namespace.is_none() && t.name.is_none() && verb == "create" {
        // cluster-scoped create: fine
    } else if info.namespaced && t.namespace.is_none() && !matches!(verb, "list" | "watch") {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    if t.sub.as_deref() == Some("scale") && info.is("apps", "deployments") {
        return scale(inner, parts, t, verb, query, body, &info);
    }
    // events.k8s.io/v1 Events live in the core Events storage.
    let view = info.clone();
    let events_view = view.is("events.k8s.io", "events");
    let (info, version) = if events_view {
        let core = inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .resource("", "v1", "events")?;
        (core, "v1")
    } else {
        (info, t.version.as_str())
    };
    let present = |v: Value| if events_view { events::to_v1(&v) } else { v };
    let sub = match t.sub.as_deref() {
        None => Sub::Main,
        Some("status") if info.status || info.is("", "namespaces") => Sub::Status,
        Some(_) => {
            return Err(ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ));
        }
    };
    let ns = t.namespace.clone().unwrap_or_default();
    let name = t.name.clone().unwrap_or_default();
    let table = accept_has(parts, "as=Table");
    let partial = accept_has(parts, "as=PartialObjectMetadata");
    let include = query
        .get("includeObject")
        .map_or("Metadata", String::as_str);

    if verb == "watch" {
        let lo = list_opts(query, &info, version)?;
        let rv = match query.get("resourceVersion").map(String::as_str) {
            None | Some("") => None,
            Some(r) => Some(
                r.parse::<u64>()
                    .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {r:?}")))?,
            ),
        };
        let params = WatchParams {
            info: view.clone(),
            storage: info.clone(),
            convert: events_view.then_some(events::to_v1 as fn(&Value) -> Value),
            table: table.then(|| include.to_string()),
            version: t.version.clone(),
            ns: t.namespace.clone(),
            rv,
            bookmarks: query
                .get("allowWatchBookmarks")
                .is_some_and(|b| b == "true"),
            timeout: query
                .get("timeoutSeconds")
                .and_then(|s| s.parse::<u64>().ok())
                .map(Duration::from_secs),
            send_initial: query.get("sendInitialEvents").is_some_and(|b| b == "true"),
            list: lo,
            partial,
        };
        let stream = watch::start(&inner.state, params);
        let mut r = Response::new(Body::from_stream(stream));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return Ok(r);
    }

    let mut st = inner
        .state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let result: Result<(u16, Value, Vec<String>), ApiError> = match verb {
        "get" => {
            let obj = present(st.get(&info, version, &ns, &name)?);
            let out = if table {
                let rv = obj
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                discovery::table(&info, version, &[obj], &rv, include)
            } else if partial {
                discovery::partial_object(&obj)
            } else {
                obj
            };
            Ok((200, out, Vec::new()))
        }
        "list" => {
            let lo = list_opts(query, &info, version)?;
            // A list at an exact resourceVersion the history no longer holds is expired;
            // otherwise lists are served at the latest resourceVersion.
            if query
                .get("resourceVersionMatch")
                .is_some_and(|m| m == "Exact")
                && let Some(rv) = query
                    .get("resourceVersion")
                    .and_then(|r| r.parse::<u64>().ok())
                && rv < st.oldest_resource_version()
            {
                return Err(ApiError::new(
                    410,
                    "Expired",
                    "The resourceVersion for the provided list is too old.",
                ));
            }
            let mut list = st.list(&info, version, t.namespace.as_deref(), &lo)?;
            let items: Vec<Value> = list["items"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(present)
                .collect();
            if events_view {
                list["items"] = Value::Array(items.clone());
                list["apiVersion"] = Value::from("events.k8s.io/v1");
            }
            let rv = list["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let out = if table {
                let mut tb = discovery::table(&info, version, &items, &rv, include);
                if let Some(c) = list["metadata"].get("continue") {
                    tb["metadata"]["continue"] = c.clone();
                }
                tb
            } else if partial {
                discovery::partial_list(
                    &items,
                    &rv,
                    list["metadata"].get("continue").and_then(Value::as_str),
                )
            } else {
                // Items of a list of a built-in kind carry no apiVersion or kind on a
                // real API server (the list's own kind says it); clients must not rely on
                // them. Items of a custom resource's list do carry them (kube-apiserver
                // v1.34, checked with `kubectl get --raw`).
                let mut list = list;
                let builtin = info.crd.is_none();
                for item in list["items"]
                    .as_array_mut()
                    .into_iter()
                    .flatten()
                    .filter(|_| builtin)
                {
                    if let Some(m) = item.as_object_mut() {
                        m.remove("apiVersion");
                        m.remove("kind");
                    }
                }
                list
            };
            Ok((200, out, Vec::new()))
        }
        "create" => {
            let opts = write_opts(query, parts)?;
            let mut obj = parse_body(parts, body)?;
            if events_view {
                events::check_note(&obj)?;
                obj = events::to_core(&obj);
            }
            st.create(&info, version, &ns, obj, &opts)
                .map(|r| write_answer(r, opts.dry_run))
        }
        "update" => {
            let opts = write_opts(query, parts)?;
            let mut obj = parse_body(parts, body)?;
            if events_view {
                events::check_note(&obj)?;
                obj = events::to_core(&obj);
            }
            st.update(&info, version, &ns, &name, sub, obj, &opts)
                .map(|r| write_answer(r, opts.dry_run))
        }
        "patch" => {
            let opts = write_opts(query, parts)?;
            let ct = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let ptype = if ct.starts_with("application/merge-patch+json") {
                PatchType::Merge
            } else if ct.starts_with("application/json-patch+json") {
                PatchType::Json
            } else if ct.starts_with("application/strategic-merge-patch+json") {
                PatchType::Strategic
            } else if ct.starts_with("application/apply-patch+yaml")
                || ct.starts_with("application/apply-patch+cbor")
            {
                PatchType::Apply
            } else {
                // Worded as the API server words it (it names no accepted types here).
                return Err(ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    "415: Unsupported Media Type",
                ));
            };
            if events_view {
                patch_event_view(&mut st, &info, &ns, &name, ptype, body, &opts)
            } else {
                st.patch(&info, version, &ns, &name, sub, ptype, body, &opts)
            }
            .map(|r| write_answer(r, opts.dry_run))
        }
        "delete" | "deletecollection" => {
            let dopts = delete_opts(query, body)?;
            if verb == "delete" {
                st.delete(&info, version, &ns, &name, &dopts)
                    .map(|v| (200, v, Vec::new()))
            } else {
                let lo = list_opts(query, &info, version)?;
                st.delete_collection(&info, version, t.namespace.as_deref(), &lo, &dopts)
                    .map(|v| (200, v, Vec::new()))
            }
        }
        _ => Err(ApiError::new(405, "MethodNotAllowed", "method not allowed")),
    };
    let pending = st.finish_writes();
    drop(st);
    simulate::schedule(&inner.state, pending);
    let (code, obj, warnings) = result?;
    let obj = if events_view && verb != "list" && verb != "deletecollection" {
        present(obj)
    } else {
        obj
    };
    let mut r = json_response(code, &obj);
    for w in warnings {
        if let Ok(v) = HeaderValue::from_str(&format!("299 - {:?}", w)) {
            r.headers_mut().append("Warning", v);
        }
    }
    Ok(r)
}

/// The `autoscaling/v1` Scale view of a Deployment.
fn scale_of(d: &Value) -> Value {
    let labels = d
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let meta = d.get("metadata").cloned().unwrap_or_default();
    serde_json::json!({
        "apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {
            "name": meta.get("name"), "namespace": meta.get("namespace"),
            "uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion"),
            "creationTimestamp": meta.get("creationTimestamp"),
        },
        "spec": {"replicas": d.pointer("/spec/replicas").cloned().unwrap_or(serde_json::json!(1))},
        "status": {
            "replicas": d.pointer("/status/replicas").cloned().unwrap_or(serde_json::json!(0)),
            "selector": labels,
        },
    })
}

/// The `scale` subresource of Deployments (`kubectl scale`).
fn scale(
    inner: &Arc<Inner>,
    parts: &http::request::Parts,
    t: &Target,
    verb: &str,
    query: &BTreeMap<String, String>,
    body: &[u8],
    info: &Arc<ResourceInfo>,
) -> Result<Response, ApiError> {
    let ns = t.namespace.clone().unwrap_or_default();
    let name = t.name.clone().unwrap_or_default();
    let mut st = inner
        .state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let current = st.get(info, &t.version, &ns, &name)?;
    let mut sc = scale_of(&current);
    let replicas = match verb {
        "get" => return Ok(json_response(200, &sc)),
        "update" => parse_body(parts, body)?,
        "patch" => {
            let ct = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let p: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid patch body: {e}")))?;
            if ct.starts_with("application/json-patch+json") {
                crate::patch::json_patch(&mut sc, &p).map_err(ApiError::from_json_patch)?;
            } else {
                crate::patch::merge_patch(&mut sc, &p);
            }
            sc
        }
        _ => {
            return Err(ApiError::new(
                405,
                "MethodNotAllowed",
                "the scale subresource supports get, update and patch",
            ));
        }
    };
    let rv = replicas
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !rv.is_empty()
        && Some(rv)
            != current
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
    {
        return Err(ApiError::conflict(info, &name));
    }
    let n = replicas
        .pointer("/spec/replicas")
        .cloned()
        .ok_or_else(|| ApiError::bad_request("spec.replicas is required"))?;
    let opts = write_opts(query, parts)?;
    let patch =
        serde_json::to_vec(&serde_json::json!({"spec": {"replicas": n}})).unwrap_or_default();
    let res = st.patch(
        info,
        &t.version,
        &ns,
        &name,
        Sub::Main,
        PatchType::Merge,
        &patch,
        &opts,
    )?;
    let pending = st.finish_writes();
    let after = st.get(info, &t.version, &ns, &name).unwrap_or(res.obj);
    drop(st);
    simulate::schedule(&inner.state, pending);
    Ok(json_response(200, &scale_of(&after)))
}

/// Patches an `events.k8s.io/v1` Event stored as a core Event: the patch applies to the
/// events.k8s.io shape, the result is stored as a core Event. Server-side apply on this
/// view behaves as a merge of the applied configuration.
#[allow(clippy::too_many_arguments)]
fn patch_event_view(
    st: &mut State,
    core: &Arc<ResourceInfo>,
    ns: &str,
    name: &str,
    ptype: PatchType,
    body: &[u8],
    opts: &WriteOpts,
) -> Result<WriteResult, ApiError> {
    let patch: Value = match ptype {
        PatchType::Apply => serde_json::from_slice(body)
            .or_else(|_| {
                serde_saphyr::from_str(std::str::from_utf8(body).unwrap_or_default())
                    .map_err(|e| e.to_string())
            })
            .map_err(|e| ApiError::bad_request(format!("invalid apply patch: {e}")))?,
        _ => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid patch body: {e}")))?,
    };
    let Ok(current) = st.get(core, "v1", ns, name) else {
        if ptype == PatchType::Apply {
            events::check_note(&patch)?;
            return st.create(core, "v1", ns, events::to_core(&patch), opts);
        }
        return Err(ApiError::not_found(core, name));
    };
    let mut view = events::to_v1(&current);
    match ptype {
        PatchType::Json => {
            crate::patch::json_patch(&mut view, &patch).map_err(ApiError::from_json_patch)?
        }
        _ => crate::patch::merge_patch(&mut view, &patch),
    }
    events::check_note(&view)?;
    let mut core_obj = events::to_core(&view);
    if let Some(m) = core_obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.entry("resourceVersion")
            .or_insert_with(|| current["metadata"]["resourceVersion"].clone());
    }
    st.update(core, "v1", ns, name, Sub::Main, core_obj, opts)
}

fn write_answer(r: WriteResult, _dry_run: bool) -> (u16, Value, Vec<String>) {
    (if r.created { 201 } else { 200 }, r.obj, r.warnings)
}

fn parse_body(parts: &http::request::Parts, body: &[u8]) -> Result<Value, ApiError> {
    let ct = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if ct.contains("protobuf") {
        return crate::proto::decode(body)
            .map_err(|e| ApiError::new(415, "UnsupportedMediaType", e.to_string()));
    }
    if ct.contains("cbor") {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml; got {ct:?}"
            ),
        ));
    }
    if ct.contains("yaml") {
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::bad_request("request body is not UTF-8"))?;
        return serde_saphyr::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("invalid YAML body: {e}")));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

fn delete_opts(query: &BTreeMap<String, String>, body: &[u8]) -> Result<DeleteOpts, ApiError> {
    let mut d = DeleteOpts {
        dry_run: query.get("dryRun").is_some_and(|v| v == "All"),
        propagation: query.get("propagationPolicy").cloned(),
        ..DeleteOpts::default()
    };
    if !body.is_empty() {
        let b: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?;
        if let Some(p) = b.get("propagationPolicy").and_then(Value::as_str) {
            d.propagation = Some(p.to_string());
        }
        if let Some(dr) = b.get("dryRun").and_then(Value::as_array) {
            d.dry_run |= dr.iter().any(|x| x == "All");
        }
        d.precondition_uid = b
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string);
        d.precondition_rv = b
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    if let Some(p) = &d.propagation
        && !matches!(p.as_str(), "Orphan" | "Background" | "Foreground")
    {
        return Err(ApiError::bad_request(format!(
            "propagationPolicy: Unsupported value: {p:?}"
        )));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn query_decoding() {
        let q = parse_query("labelSelector=app%3Dweb%2Ctier+in+%28a%29&watch=true&x");
        assert_eq!(q["labelSelector"], "app=web,tier in (a)");
        assert_eq!(q["watch"], "true");
        assert_eq!(q["x"], "");
    }

    #[test]
    fn target_parsing() {
        let t = parse_target("/api/v1/namespaces/ns/configmaps/cm").unwrap();
        assert_eq!(
            (
                t.namespace.as_deref(),
                t.resource.as_str(),
                t.name.as_deref()
            ),
            (Some("ns"), "configmaps", Some("cm"))
        );
        let t = parse_target("/api/v1/namespaces/ns").unwrap();
        assert_eq!(
            (t.resource.as_str(), t.name.as_deref()),
            ("namespaces", Some("ns"))
        );
        let t = parse_target("/api/v1/namespaces/ns/status").unwrap();
        assert_eq!(
            (t.resource.as_str(), t.name.as_deref(), t.sub.as_deref()),
            ("namespaces", Some("ns"), Some("status"))
        );
        let t = parse_target("/apis/apps/v1/namespaces/a/deployments/d/status").unwrap();
        assert_eq!(
            (t.group.as_str(), t.sub.as_deref()),
            ("apps", Some("status"))
        );
        let t = parse_target("/apis/example.com/v1/widgets").unwrap();
        assert!(t.namespace.is_none() && t.name.is_none());
        assert!(parse_target("/apis/x/v1/a/b/c/d").is_none());
    }

    #[test]
    fn manifests_parse_multi_doc_and_lists() {
        let docs = parse_manifests("a: 1\n---\n---\nkind: List\nitems:\n- b: 2\n- c: 3\n").unwrap();
        assert_eq!(
            docs,
            vec![json!({"a": 1}), json!({"b": 2}), json!({"c": 3})]
        );
    }
}
