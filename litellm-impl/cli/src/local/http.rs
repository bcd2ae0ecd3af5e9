//! A one-shot HTTP/1.1 client for loopback calls (probes, the agent's requests).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// An HTTP response, its body read as text.
#[derive(Clone, Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The response headers.
    pub headers: http::HeaderMap,
    /// The body (lossily decoded as UTF-8).
    pub body: String,
}

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL or headers are invalid.
    #[error("invalid request to {url}: {reason}")]
    Invalid {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Connecting, sending or reading failed.
    #[error("no answer from {url}: {reason}")]
    Transport {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

/// Sends one request; `bearer` becomes `Authorization: Bearer <bearer>`, `body` is sent
/// as JSON.
pub async fn send(
    method: &str,
    url: &str,
    bearer: Option<&str>,
    body: Option<&serde_json::Value>,
) -> Result<Response, HttpError> {
    send_with_headers(method, url, bearer, &[], body).await
}

/// [`send`] with extra request headers (name, value).
pub async fn send_with_headers(
    method: &str,
    url: &str,
    bearer: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&serde_json::Value>,
) -> Result<Response, HttpError> {
    let invalid = |reason: String| HttpError::Invalid {
        url: url.to_owned(),
        reason,
    };
    let transport = |reason: String| HttpError::Transport {
        url: url.to_owned(),
        reason,
    };
    let mut request = http::Request::builder()
        .method(method)
        .uri(url)
        .header(http::header::CONTENT_TYPE, "application/json");
    if let Some(token) = bearer {
        request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let request = request
        .body(Full::new(Bytes::from(payload)))
        .map_err(|e| invalid(e.to_string()))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let response = client
        .request(request)
        .await
        .map_err(|e| transport(e.to_string()))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| transport(e.to_string()))?
        .to_bytes();
    Ok(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}
