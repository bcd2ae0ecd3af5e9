//! `/metrics` served the way controller-runtime serves it by default: over HTTPS, and
//! only to requests whose bearer token the API server authenticates (a `TokenReview`)
//! and authorises for `get` on the non-resource URL `/metrics` (a
//! `SubjectAccessReview`). Probes stay plain HTTP on their own address.
//!
//! The serving certificate is read from PEM files (a mounted Secret of type
//! `kubernetes.io/tls`), and read again when they change; without files, a self-signed
//! certificate is made at start. Answers: 401 without a token or with one the API
//! server does not authenticate, 403 when the token's user may not `get /metrics`, 500
//! when the API server cannot be asked. Decisions are cached briefly (authentication
//! 1 minute, an allowed scrape 5 minutes, a denied one 30 seconds, as
//! controller-runtime's delegating authenticator and authoriser do), so a scraper every
//! 15 s costs the API server a few requests an hour.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, UserInfo};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Client;
use kube::api::{Api, PostParams};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};

use crate::logging::{ObjectName, WarningLimit};

/// How `/metrics` is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsServing {
    /// Plain HTTP to anyone who can connect: for local development and demos
    /// (controller-runtime's `--metrics-secure=false`).
    Plain,
    /// HTTPS with this certificate, to requests the API server authenticates and
    /// authorises (controller-runtime's default).
    Secure(ServingCertificate),
}

/// The certificate `/metrics` is served with over HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServingCertificate {
    /// Made up at start and signed by itself, for `localhost` (scrapers skip
    /// verification, as for controller-runtime's self-signed certificate).
    SelfSigned,
    /// PEM files, e.g. `tls.crt` and `tls.key` of a mounted Secret of type
    /// `kubernetes.io/tls` (cert-manager's); read again when they change.
    Files {
        /// The certificate chain.
        certificate: PathBuf,
        /// Its private key.
        key: PathBuf,
    },
}

/// The serving certificate could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// A certificate or key file could not be read or is not a usable PEM file.
    #[error(
        "could not use the metrics serving certificate {}: {message}: mount a Secret of type kubernetes.io/tls there, or leave the certificate out for a self-signed one",
        path.display()
    )]
    Files {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A self-signed certificate could not be made.
    #[error("could not make a self-signed metrics serving certificate: {0}")]
    SelfSigned(String),
}

/// How often a certificate from files is checked for a newer version (on a handshake).
const RECHECK: Duration = Duration::from_secs(10);

fn crypto() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS configuration of the metrics server: HTTP/1.1 only (controller-runtime turns
/// HTTP/2 off by default too), the certificate from `certificate`.
pub(crate) fn server_config(
    certificate: &ServingCertificate,
) -> Result<Arc<rustls::ServerConfig>, CertificateError> {
    let resolver: Arc<dyn ResolvesServerCert> = match certificate {
        ServingCertificate::SelfSigned => Arc::new(Fixed(Arc::new(self_signed()?))),
        ServingCertificate::Files { certificate, key } => {
            Arc::new(FromFiles::load(certificate, key)?)
        }
    };
    let mut config = rustls::ServerConfig::builder_with_provider(crypto())
        .with_safe_default_protocol_versions()
        .map_err(|e| CertificateError::SelfSigned(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn self_signed() -> Result<CertifiedKey, CertificateError> {
    let error = |e: &dyn std::fmt::Display| CertificateError::SelfSigned(e.to_string());
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .map_err(|e| error(&e))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        generated.signing_key.serialize_der(),
    ));
    let signing = crypto()
        .key_provider
        .load_private_key(key)
        .map_err(|e| error(&e))?;
    Ok(CertifiedKey::new(
        vec![generated.cert.der().clone()],
        signing,
    ))
}

/// A certificate that never changes.
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// A certificate read from files, read again when their modification time changes (a
/// renewed Secret), checked at most every [`RECHECK`]. A renewal that cannot be read
/// keeps the previous certificate.
#[derive(Debug)]
struct FromFiles {
    certificate: PathBuf,
    key: PathBuf,
    loaded: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    checked: Instant,
    modified: (Option<SystemTime>, Option<SystemTime>),
    key: Arc<CertifiedKey>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl FromFiles {
    fn load(certificate: &Path, key: &Path) -> Result<Self, CertificateError> {
        let loaded = Loaded {
            checked: Instant::now(),
            modified: (modified(certificate), modified(key)),
            key: Arc::new(read_pem(certificate, key)?),
        };
        Ok(Self {
            certificate: certificate.to_owned(),
            key: key.to_owned(),
            loaded: Mutex::new(loaded),
        })
    }
}

fn read_pem(certificate: &Path, key: &Path) -> Result<CertifiedKey, CertificateError> {
    let error = |path: &Path, message: String| CertificateError::Files {
        path: path.to_owned(),
        message,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certificate)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| error(certificate, e.to_string()))?;
    if chain.is_empty() {
        return Err(error(certificate, "no certificate in the file".into()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| error(key, e.to_string()))?;
    let signing = crypto()
        .key_provider
        .load_private_key(private)
        .map_err(|e| error(key, e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| error(key, format!("the key does not match the certificate ({e})")))?;
    Ok(certified)
}

impl ResolvesServerCert for FromFiles {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut loaded = self
            .loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if loaded.checked.elapsed() >= RECHECK {
            loaded.checked = Instant::now();
            let now = (modified(&self.certificate), modified(&self.key));
            if now != loaded.modified {
                match read_pem(&self.certificate, &self.key) {
                    Ok(key) => {
                        loaded.key = Arc::new(key);
                        loaded.modified = now;
                        tracing::info!(certificate = %self.certificate.display(), "metrics serving certificate reloaded");
                    }
                    // Keep serving the previous one; a half-written renewal settles.
                    Err(error) => {
                        tracing::warn!(%error, "keeping the previous metrics serving certificate")
                    }
                }
            }
        }
        Some(loaded.key.clone())
    }
}

/// How many TLS handshakes may be under way at once, and how long one may take: a
/// client that connects and sends nothing holds a slot for that long at most.
const HANDSHAKES: usize = 64;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections of `listener` after their TLS handshake, for `axum::serve`. Handshakes
/// run concurrently, so a slow client does not hold up the others.
pub(crate) struct TlsListener {
    incoming: tokio::sync::mpsc::Receiver<(tokio_rustls::server::TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub(crate) fn new(
        listener: TcpListener,
        config: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let (tx, incoming) = tokio::sync::mpsc::channel(HANDSHAKES);
        let slots = Arc::new(tokio::sync::Semaphore::new(HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    // The server stopped: so do we.
                    () = tx.closed() => return,
                };
                let Ok((tcp, peer)) = accepted else {
                    // Out of file descriptors and the like: try again shortly.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    if let Ok(Ok(tls)) =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                    {
                        let _ = tx.send((tls, peer)).await;
                    }
                });
            }
        });
        Ok(Self { incoming, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.recv().await {
            Some(connection) => connection,
            // The acceptor only stops once we are dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Why a scrape was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No bearer token, or one the API server does not authenticate: 401.
    Unauthenticated,
    /// The token's user may not `get` the path: 403.
    Forbidden {
        /// The user.
        user: String,
        /// The path asked for.
        path: String,
    },
    /// The API server could not be asked (or refused the review): 500.
    AuthorizationError,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (code, text) = match self {
            Refusal::Unauthenticated => (StatusCode::UNAUTHORIZED, "Unauthorized".to_owned()),
            Refusal::Forbidden { user, path } => (
                StatusCode::FORBIDDEN,
                format!("Authorization denied for user {user}: get on the non-resource URL {path}"),
            ),
            Refusal::AuthorizationError => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Authorization error: the API server could not be asked".to_owned(),
            ),
        };
        let mut response = (code, text).into_response();
        if code == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// How long an authenticated token's user is remembered.
const AUTHENTICATED_FOR: Duration = Duration::from_secs(60);
/// How long an allowed scrape is remembered.
const ALLOWED_FOR: Duration = Duration::from_secs(300);
/// How long a denied scrape is remembered.
const DENIED_FOR: Duration = Duration::from_secs(30);
/// Entries per cache: what a flood of distinct tokens can make us hold.
const CACHE_ENTRIES: usize = 1024;

/// A small map whose entries expire; when full of live entries, it starts over.
struct Expiring<V> {
    entries: Mutex<HashMap<String, (V, Instant)>>,
}

impl<V: Clone> Expiring<V> {
    fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &str) -> Option<V> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries
            .get(key)
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(value, _)| value.clone())
    }

    fn insert(&self, key: String, value: V, ttl: Duration) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if entries.len() >= CACHE_ENTRIES {
            entries.retain(|_, (_, expires)| *expires > now);
            if entries.len() >= CACHE_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (value, now + ttl));
    }
}

/// Authenticates and authorises scrapes against the API server.
#[derive(Clone)]
pub(crate) struct MetricsAuth {
    client: Client,
    /// SHA-256 of a token (never the token) to its user.
    users: Arc<Expiring<UserInfo>>,
    /// User and path to the decision.
    decisions: Arc<Expiring<bool>>,
    /// Failures to ask the API server, logged once per window.
    warnings: Arc<WarningLimit>,
}

impl MetricsAuth {
    pub(crate) fn new(client: Client) -> Self {
        Self {
            client,
            users: Arc::new(Expiring::new()),
            decisions: Arc::new(Expiring::new()),
            warnings: Arc::default(),
        }
    }

    /// Whether the request with `headers` may `get` `path`.
    pub(crate) async fn check(&self, headers: &HeaderMap, path: &str) -> Result<(), Refusal> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(Refusal::Unauthenticated)?;
        let user = self.authenticate(token).await?;
        self.authorize(&user, path).await
    }

    async fn authenticate(&self, token: &str) -> Result<UserInfo, Refusal> {
        let key = format!("{:x}", Sha256::digest(token.as_bytes()));
        if let Some(user) = self.users.get(&key) {
            return Ok(user);
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                ..Default::default()
            },
            ..Default::default()
        };
        let reviewed = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|error| {
                self.warn("tokenreviews", &error);
                // As controller-runtime: a token we cannot check is not authenticated.
                Refusal::Unauthenticated
            })?;
        let status = reviewed.status.unwrap_or_default();
        match (status.authenticated, status.user) {
            (Some(true), Some(user)) => {
                self.users.insert(key, user.clone(), AUTHENTICATED_FOR);
                Ok(user)
            }
            _ => Err(Refusal::Unauthenticated),
        }
    }

    async fn authorize(&self, user: &UserInfo, path: &str) -> Result<(), Refusal> {
        let key = decision_key(user, path);
        let allowed = match self.decisions.get(&key) {
            Some(allowed) => allowed,
            None => {
                let review = SubjectAccessReview {
                    spec: SubjectAccessReviewSpec {
                        user: user.username.clone(),
                        uid: user.uid.clone(),
                        groups: user.groups.clone(),
                        extra: user.extra.clone(),
                        non_resource_attributes: Some(NonResourceAttributes {
                            path: Some(path.to_owned()),
                            verb: Some("get".to_owned()),
                        }),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                let reviewed = Api::<SubjectAccessReview>::all(self.client.clone())
                    .create(&PostParams::default(), &review)
                    .await
                    .map_err(|error| {
                        self.warn("subjectaccessreviews", &error);
                        Refusal::AuthorizationError
                    })?;
                let allowed = reviewed.status.is_some_and(|s| s.allowed);
                self.decisions
                    .insert(key, allowed, if allowed { ALLOWED_FOR } else { DENIED_FOR });
                allowed
            }
        };
        if allowed {
            Ok(())
        } else {
            Err(Refusal::Forbidden {
                user: user.username.clone().unwrap_or_default(),
                path: path.to_owned(),
            })
        }
    }

    /// A review the API server did not answer: one warning per window and resource (a
    /// missing grant fails every scrape).
    fn warn(&self, resource: &str, error: &kube::Error) {
        crate::logging::warn_about(
            &self.warnings,
            &ObjectName {
                kind: resource.to_owned(),
                namespace: None,
                name: "/metrics".to_owned(),
            },
            &crate::kube_error::describe_kube_error(error),
            "could not check a scrape of /metrics with the API server: grant the operator create on tokenreviews and subjectaccessreviews (see the bundle's metrics-auth ClusterRole)",
        );
    }
}

/// The middleware that lets a request through only when [`MetricsAuth::check`] does.
pub(crate) async fn require_authorization(
    State(auth): State<MetricsAuth>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    match auth.check(request.headers(), &path).await {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    }
}

/// The key of a cached SubjectAccessReview decision: everything the review decides on.
/// `extra` is part of it (a scoped token's scopes are there), so two users differing
/// only in it never share a decision; it is a BTreeMap, so its order is fixed.
fn decision_key(user: &UserInfo, path: &str) -> String {
    let mut groups = user.groups.clone().unwrap_or_default();
    groups.sort();
    let extra = serde_json::to_string(&user.extra).unwrap_or_default();
    format!(
        "{}\n{}\n{}\n{extra}\n{path}",
        user.username.as_deref().unwrap_or_default(),
        user.uid.as_deref().unwrap_or_default(),
        groups.join(",")
    )
}

#[cfg(test)]
mod tests {

    #[test]
    fn users_that_differ_only_in_extra_never_share_a_decision() {
        let user = |scopes: &[&str]| UserInfo {
            username: Some("system:serviceaccount:monitoring:prometheus".into()),
            groups: Some(vec!["b".into(), "a".into()]),
            extra: (!scopes.is_empty()).then(|| {
                [(
                    "scopes".to_owned(),
                    scopes.iter().map(|s| (*s).to_owned()).collect(),
                )]
                .into()
            }),
            ..Default::default()
        };
        assert_ne!(
            decision_key(&user(&[]), "/metrics"),
            decision_key(&user(&["user:info"]), "/metrics")
        );
        let mut reordered = user(&[]);
        reordered.groups = Some(vec!["a".into(), "b".into()]);
        assert_eq!(
            decision_key(&user(&[]), "/metrics"),
            decision_key(&reordered, "/metrics")
        );
    }
    use super::*;
    use axum::body::Body;
    use http::Request as HttpRequest;

    /// A client whose API server authenticates `good` and `reader` (as users `good`
    /// and `reader`), allows only `reader` to `get /metrics`, and answers 403 to every
    /// review when `broken`; it counts the reviews it answers.
    fn client(broken: bool, reviews: Arc<std::sync::atomic::AtomicUsize>) -> Client {
        let service = tower::service_fn(move |request: HttpRequest<kube::client::Body>| {
            let reviews = reviews.clone();
            async move {
                use http_body_util::BodyExt;
                let path = request.uri().path().to_owned();
                let body = request.into_body().collect().await.unwrap().to_bytes();
                let review: serde_json::Value = serde_json::from_slice(&body).unwrap();
                reviews.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let answer = if broken {
                    (
                        403,
                        serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403, "message": "forbidden"}),
                    )
                } else if path.ends_with("/tokenreviews") {
                    let token = review["spec"]["token"].as_str().unwrap_or_default();
                    let known = token == "good" || token == "reader";
                    let mut answer = review.clone();
                    answer["status"] = if known {
                        serde_json::json!({"authenticated": true, "user": {"username": token, "groups": ["system:authenticated"]}})
                    } else {
                        serde_json::json!({"authenticated": false})
                    };
                    (201, answer)
                } else {
                    let allowed = review["spec"]["user"] == "reader"
                        && review["spec"]["nonResourceAttributes"]
                            == serde_json::json!({"path": "/metrics", "verb": "get"});
                    let mut answer = review.clone();
                    answer["status"] = serde_json::json!({"allowed": allowed});
                    (201, answer)
                };
                Ok::<_, std::convert::Infallible>(
                    http::Response::builder()
                        .status(answer.0)
                        .header("content-type", "application/json")
                        .body(Body::from(answer.1.to_string()))
                        .unwrap(),
                )
            }
        });
        Client::new(service, "default")
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        headers
    }

    #[tokio::test]
    async fn scrapes_need_a_token_the_api_server_authenticates_and_authorises() {
        let reviews = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let auth = MetricsAuth::new(client(false, reviews.clone()));
        assert_eq!(
            auth.check(&HeaderMap::new(), "/metrics").await,
            Err(Refusal::Unauthenticated)
        );
        assert_eq!(
            reviews.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "no review without a token"
        );
        assert_eq!(
            auth.check(&bearer("stolen"), "/metrics").await,
            Err(Refusal::Unauthenticated)
        );
        assert_eq!(
            auth.check(&bearer("good"), "/metrics").await,
            Err(Refusal::Forbidden {
                user: "good".into(),
                path: "/metrics".into()
            })
        );
        assert_eq!(auth.check(&bearer("reader"), "/metrics").await, Ok(()));
        // Remembered: the next scrapes ask the API server nothing.
        let asked = reviews.load(std::sync::atomic::Ordering::SeqCst);
        for _ in 0..5 {
            assert_eq!(auth.check(&bearer("reader"), "/metrics").await, Ok(()));
        }
        assert_eq!(reviews.load(std::sync::atomic::Ordering::SeqCst), asked);
    }

    #[tokio::test]
    async fn an_api_server_that_refuses_the_review_answers_401_not_200() {
        let auth = MetricsAuth::new(client(true, Arc::default()));
        assert_eq!(
            auth.check(&bearer("reader"), "/metrics").await,
            Err(Refusal::Unauthenticated)
        );
    }

    #[test]
    fn a_self_signed_certificate_is_made_and_a_missing_file_is_one_line() {
        assert!(server_config(&ServingCertificate::SelfSigned).is_ok());
        let error = server_config(&ServingCertificate::Files {
            certificate: "/nonexistent/tls.crt".into(),
            key: "/nonexistent/tls.key".into(),
        })
        .unwrap_err();
        let text = error.to_string();
        assert!(
            text.starts_with(
                "could not use the metrics serving certificate /nonexistent/tls.crt: "
            ),
            "{text}"
        );
        assert!(!text.contains('\n'));
    }

    #[test]
    fn the_cache_forgets_expired_entries_and_stays_bounded() {
        let cache = Expiring::new();
        cache.insert("a".into(), 1, Duration::from_secs(60));
        cache.insert("gone".into(), 2, Duration::ZERO);
        assert_eq!(cache.get("a"), Some(1));
        assert_eq!(cache.get("gone"), None);
        for i in 0..(CACHE_ENTRIES * 2) {
            cache.insert(i.to_string(), i, Duration::from_secs(60));
        }
        assert!(cache.entries.lock().unwrap().len() <= CACHE_ENTRIES);
    }
}
