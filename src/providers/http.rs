//! The HTTP plumbing every adapter shares, written once: the client (timeouts, pool, no Nagle),
//! credential headers (read from their cell per request, kept out of Debug output), sending a request and turning a non-2xx answer
//! into a classified [`ProviderError`] (with the gateway's credentials never quoted back), the
//! time limits, and the clock the converted answers are stamped with. An adapter adds only what
//! its provider does differently: URLs, signing, and how its error bodies read
//! ([`ReadError`]).

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{BuildError, ProviderError, transport_error};
use crate::config::ProviderSpec;
use crate::secrets::Credential;

/// What an adapter read of a provider's error answer.
#[derive(Debug, Default)]
pub struct ErrorDetail {
    pub message: Option<String>,
    /// The provider's own name for the error (`invalid_request_error`, `RESOURCE_EXHAUSTED`…).
    pub error_type: Option<String>,
    pub code: Option<String>,
    /// A wait asked for in the body (Google's `RetryInfo`), used when no `Retry-After` came.
    pub retry_after: Option<Duration>,
    /// The status to act on when the provider's own misleads (Google answers a bad key 400).
    pub status: Option<u16>,
}

/// How an adapter reads its provider's error answers: status, headers, body.
pub type ReadError = fn(u16, &HeaderMap, &[u8]) -> ErrorDetail;

/// The client every adapter uses, with `headers` on every request.
pub fn client(spec: &ProviderSpec, headers: HeaderMap) -> Result<reqwest::Client, BuildError> {
    Ok(reqwest::Client::builder()
        .connect_timeout(spec.connect_timeout)
        .pool_max_idle_per_host(1024)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .default_headers(headers)
        .build()?)
}

/// The current value of `credential` (after `prefix`, e.g. `Bearer `) as a header value for
/// the request being built, marked sensitive so reqwest's Debug output hides it. Read per
/// request, so a refreshed credential is used by the next request and never changes one in
/// flight.
pub fn credential_header(
    prefix: &str,
    credential: &Credential,
) -> Result<HeaderValue, ProviderError> {
    let secret = credential.current();
    // invariant: every value was checked to fit a header when it was read or fetched
    // (`secrets::usable`); should one not, the request goes nowhere and another deployment
    // is tried, as for any failure of ours to reach the provider.
    let mut value =
        HeaderValue::try_from(format!("{prefix}{}", secret.expose())).map_err(|_| {
            ProviderError::Connect("the credential is not a valid header value".to_owned())
        })?;
    value.set_sensitive(true);
    Ok(value)
}

/// A JSON POST of `body` to `url`, ready to sign or send.
pub fn post_json(
    client: &reqwest::Client,
    url: reqwest::Url,
    body: Vec<u8>,
) -> reqwest::RequestBuilder {
    client
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .body(body)
}

/// Send; a non-2xx answer becomes a classified error read by `read`.
pub async fn send(
    request: reqwest::RequestBuilder,
    read: ReadError,
) -> Result<reqwest::Response, ProviderError> {
    checked(request.send().await, read).await
}

/// Send a built (e.g. signed) request; a non-2xx answer becomes a classified error.
pub async fn execute(
    client: &reqwest::Client,
    request: reqwest::Request,
    read: ReadError,
) -> Result<reqwest::Response, ProviderError> {
    checked(client.execute(request).await, read).await
}

async fn checked(
    sent: Result<reqwest::Response, reqwest::Error>,
    read: ReadError,
) -> Result<reqwest::Response, ProviderError> {
    let resp = sent.map_err(transport_error)?;
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.unwrap_or_default();
    Err(upstream_error(status, &headers, &body, read))
}

/// The longest part of an unreadable error body quoted in a message.
const QUOTED_BODY_CHARS: usize = 512;

/// A provider's non-2xx answer as an error. A 401/403 is about the gateway's credentials, and
/// providers quote them back (parts of the key, AWS's canonical request with its session
/// token, Google's debug details): that message is never passed on.
pub fn upstream_error(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    read: ReadError,
) -> ProviderError {
    let detail = read(status, headers, body);
    let status = detail.status.unwrap_or(status);
    let message = if matches!(status, 401 | 403) {
        "the provider rejected the gateway's credentials".to_owned()
    } else {
        detail.message.unwrap_or_else(|| {
            String::from_utf8_lossy(body)
                .chars()
                .take(QUOTED_BODY_CHARS)
                .collect()
        })
    };
    ProviderError::upstream(
        status,
        message,
        detail.error_type,
        detail.code,
        retry_after(headers).or(detail.retry_after),
    )
}

/// `fut` within `limit`, else a timeout in `phase` (`response`, `first_byte`).
pub async fn within<T>(
    limit: Duration,
    phase: &'static str,
    fut: impl Future<Output = Result<T, ProviderError>>,
) -> Result<T, ProviderError> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| ProviderError::Timeout { phase })?
}

/// The whole body of an answer.
pub async fn read_all(resp: reqwest::Response) -> Result<Bytes, ProviderError> {
    resp.bytes().await.map_err(transport_error)
}

/// A request body as JSON.
pub fn to_json(body: &impl serde::Serialize) -> Result<Vec<u8>, ProviderError> {
    serde_json::to_vec(body).map_err(|e| ProviderError::Decode(e.to_string()))
}

/// Seconds since the epoch, for the `created` field of converted answers.
pub fn unix_now() -> u64 {
    // A clock before 1970 is a broken host; 0 only makes `created` wrong, not the answer.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Parse a `Retry-After` header given in seconds (the form providers use).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// An adapter's reading of an error answer with an optional `Retry-After` header, for the
/// adapters' tests.
#[cfg(test)]
pub fn answer_error(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
    read: ReadError,
) -> ProviderError {
    let mut headers = HeaderMap::new();
    if let Some(d) = retry_after
        && let Ok(v) = HeaderValue::from_str(&d.as_secs().to_string())
    {
        headers.insert(reqwest::header::RETRY_AFTER, v);
    }
    upstream_error(status, &headers, body, read)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(_: u16, _: &HeaderMap, _: &[u8]) -> ErrorDetail {
        ErrorDetail {
            message: Some("the key sk-live-123 is wrong".into()),
            ..ErrorDetail::default()
        }
    }

    #[test]
    fn credential_failures_never_quote_the_provider() {
        let e = upstream_error(401, &HeaderMap::new(), b"{}", plain);
        assert!(!e.to_string().contains("sk-live"), "{e}");
        let e = upstream_error(400, &HeaderMap::new(), b"{}", plain);
        assert!(
            e.to_string().contains("sk-live"),
            "a client error keeps its message"
        );
    }

    #[test]
    fn an_unreadable_body_is_quoted_short_and_retry_after_comes_from_the_header_first() {
        let none = |_: u16, _: &HeaderMap, _: &[u8]| ErrorDetail {
            retry_after: Some(Duration::from_secs(9)),
            ..ErrorDetail::default()
        };
        let mut h = HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, HeaderValue::from_static("2"));
        let e = upstream_error(503, &h, "x".repeat(2000).as_bytes(), none);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        assert!(e.to_string().len() < 600);
        let e = upstream_error(429, &HeaderMap::new(), b"", none);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(9)));
    }
}
